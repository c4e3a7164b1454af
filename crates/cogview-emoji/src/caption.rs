//! Captions from Fluent Emoji names, and the skin-tone suffixes (rules on [`caption`]).

use std::fmt;

/// A skin tone of a person emoji, in the order Unicode lists them (light to dark).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkinTone {
    /// Suffix `-light`: Fitzpatrick type 1–2.
    Light,
    /// Suffix `-medium-light`: type 3.
    MediumLight,
    /// Suffix `-medium`: type 4.
    Medium,
    /// Suffix `-medium-dark`: type 5.
    MediumDark,
    /// Suffix `-dark`: type 6.
    Dark,
}

impl SkinTone {
    /// All five tones, light to dark.
    pub const ALL: [SkinTone; 5] = [
        SkinTone::Light,
        SkinTone::MediumLight,
        SkinTone::Medium,
        SkinTone::MediumDark,
        SkinTone::Dark,
    ];

    /// The name suffix without its leading `-`: `light`, `medium-light`, `medium`, `medium-dark`,
    /// `dark`. It is also the adjective used in captions.
    pub fn suffix(self) -> &'static str {
        match self {
            SkinTone::Light => "light",
            SkinTone::MediumLight => "medium-light",
            SkinTone::Medium => "medium",
            SkinTone::MediumDark => "medium-dark",
            SkinTone::Dark => "dark",
        }
    }

    /// Splits a tone suffix off `name`: `thumbs-up-medium-dark` → (`thumbs-up`, `MediumDark`).
    ///
    /// This looks at the spelling only, so `vertical-traffic-light` also splits; whether a name is
    /// really a toned variant depends on its siblings, which [`crate::EmojiSet`] checks.
    pub fn split(name: &str) -> Option<(&str, SkinTone)> {
        // The two-word suffixes first: `-medium-dark` also ends in `-dark`.
        const BY_LENGTH: [SkinTone; 5] = [
            SkinTone::MediumLight,
            SkinTone::MediumDark,
            SkinTone::Medium,
            SkinTone::Light,
            SkinTone::Dark,
        ];
        BY_LENGTH.into_iter().find_map(|tone| {
            let base = name.strip_suffix(tone.suffix())?.strip_suffix('-')?;
            (!base.is_empty()).then_some((base, tone))
        })
    }
}

impl fmt::Display for SkinTone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} skin tone", self.suffix())
    }
}

/// Whole names whose caption is not a word-by-word one.
const WHOLE_NAMES: &[(&str, &str)] = &[
    ("a-button-blood-type", "A button (blood type)"),
    ("ab-button-blood-type", "AB button (blood type)"),
    ("b-button-blood-type", "B button (blood type)"),
    ("o-button-blood-type", "O button (blood type)"),
    ("p-button", "P button"),
    ("up-button", "UP! button"),
    ("on-arrow", "ON! arrow"),
    ("circled-m", "circled M"),
    ("keycap-hashtag", "keycap #"),
    ("keycap-asterisk", "keycap *"),
    ("jack-o-lantern", "jack-o'-lantern"),
    ("fleur-de-lis", "fleur-de-lis"),
    ("mrs-claus", "Mrs. Claus"),
    ("mx-claus", "Mx Claus"),
    ("statue-of-liberty", "Statue of Liberty"),
    ("piata", "pinata"),
];

/// Single words written differently in captions.
const WORDS: &[(&str, &str)] = &[
    // Apostrophes the names dropped.
    ("oclock", "o'clock"),
    ("mans", "man's"),
    ("womans", "woman's"),
    ("mens", "men's"),
    ("womens", "women's"),
    // Acronyms.
    ("atm", "ATM"),
    ("dna", "DNA"),
    ("dvd", "DVD"),
    ("ok", "OK"),
    // Proper nouns.
    ("africa", "Africa"),
    ("americas", "Americas"),
    ("asia", "Asia"),
    ("australia", "Australia"),
    ("christmas", "Christmas"),
    ("claus", "Claus"),
    ("david", "David"),
    ("europe", "Europe"),
    ("fuji", "Fuji"),
    ("japan", "Japan"),
    ("japanese", "Japanese"),
    ("latin", "Latin"),
    ("santa", "Santa"),
    ("tokyo", "Tokyo"),
];

/// Names that are a zodiac sign alone; they are capitalised.
const ZODIAC: &[&str] = &[
    "aries",
    "taurus",
    "gemini",
    "cancer",
    "leo",
    "virgo",
    "libra",
    "scorpio",
    "sagittarius",
    "capricorn",
    "aquarius",
    "pisces",
    "ophiuchus",
];

/// Words printed on a button or arrow, written in upper case before `button`/`arrow`.
const BUTTON_WORDS: &[&str] = &["cl", "cool", "free", "id", "new", "ng", "ok", "sos", "vs"];
const ARROW_WORDS: &[&str] = &["back", "end", "soon", "top"];

/// Adjacent words that form one hyphenated compound.
const COMPOUNDS: &[(&str, &str)] = &[
    ("down", "left"),
    ("down", "right"),
    ("e", "mail"),
    ("front", "facing"),
    ("high", "heeled"),
    ("high", "speed"),
    ("left", "facing"),
    ("left", "right"),
    ("non", "potable"),
    ("one", "piece"),
    ("right", "facing"),
    ("rolled", "up"),
    ("snow", "capped"),
    ("t", "rex"),
    ("t", "shirt"),
    ("tear", "off"),
    ("two", "hump"),
    ("up", "down"),
    ("up", "left"),
    ("up", "right"),
    ("upside", "down"),
    ("x", "ray"),
    ("yo", "yo"),
];

fn lookup<'a>(table: &[(&str, &'a str)], key: &str) -> Option<&'a str> {
    table.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// The caption of an emoji drawn from its base name (without a tone suffix) and its tone.
///
/// Names are lowercase ASCII words joined by `-` (`face-with-raised-eyebrow`). A caption is the
/// words joined by spaces (`face with raised eyebrow`), with these repairs (fixed tables in this
/// module's source):
///
/// - **Skin tones.** A person emoji comes in a default (yellow) drawing, `waving-hand`, and five
///   tones named by a suffix: `-light`, `-medium-light`, `-medium`, `-medium-dark`, `-dark`. The
///   toned caption is the base caption, a comma, and the tone as Unicode names it:
///   `waving-hand-medium-dark` → `waving hand, medium-dark skin tone`. Which names really are
///   toned is decided by the data (see [`crate::EmojiSet`]): `vertical-traffic-light` is not.
/// - **Apostrophes and hyphens the names dropped**: `oclock` → `o'clock`; `mans`, `womans`,
///   `mens`, `womens` → `man's`, `woman's`, `men's`, `women's`; word pairs that are one compound
///   keep their hyphen (`t-shirt`, `x-ray`, `upside-down face`, `left-right arrow`,
///   `eight-thirty`, ...).
/// - **Letters, numbers and acronyms stay readable**: digits stay digits (`keycap 5`,
///   `1st place medal`, `pool 8 ball`); the keycap symbols are written as the symbol (`keycap #`,
///   `keycap *`); acronyms and the words printed on buttons and arrows are upper case as on the
///   picture (`ATM sign`, `DNA`, `OK hand`, `NEW button`, `UP! button`, `SOON arrow`,
///   `B button (blood type)`, `circled M`).
/// - **Proper nouns are capitalised** (`Japanese castle`, `mount Fuji`, `Statue of Liberty`,
///   `Santa Claus`, `Mrs. Claus`, `Aries`, ...); `piata` (the name lost its `ñ`) is `pinata`.
///
/// The set has no country flags; its flag emoji (`chequered flag`, `rainbow flag`, ...) are
/// ordinary words.
///
/// ```
/// use cogview_emoji::{caption, SkinTone};
/// assert_eq!(caption("face-with-raised-eyebrow", None), "face with raised eyebrow");
/// assert_eq!(
///     caption("waving-hand", Some(SkinTone::MediumDark)),
///     "waving hand, medium-dark skin tone"
/// );
/// assert_eq!(caption("eight-oclock", None), "eight o'clock");
/// ```
pub fn caption(base: &str, tone: Option<SkinTone>) -> String {
    let mut text = base_caption(base);
    if let Some(tone) = tone {
        text.push_str(", ");
        text.push_str(&tone.to_string());
    }
    text
}

fn base_caption(base: &str) -> String {
    if let Some(whole) = lookup(WHOLE_NAMES, base) {
        return whole.to_string();
    }
    if ZODIAC.contains(&base) {
        let mut chars = base.chars();
        return match chars.next() {
            Some(first) => first.to_uppercase().chain(chars).collect(),
            None => String::new(),
        };
    }
    let words: Vec<&str> = base.split('-').filter(|w| !w.is_empty()).collect();
    let mut out: Vec<String> = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        let word = words[i];
        let next = words.get(i + 1).copied();
        if let Some(next) = next {
            let hour_thirty = next == "thirty" && i == 0;
            if hour_thirty || COMPOUNDS.contains(&(word, next)) {
                out.push(format!("{word}-{next}"));
                i += 2;
                continue;
            }
        }
        let printed = (next == Some("button") && BUTTON_WORDS.contains(&word))
            || (next == Some("arrow") && ARROW_WORDS.contains(&word));
        out.push(if printed {
            word.to_ascii_uppercase()
        } else {
            lookup(WORDS, word).unwrap_or(word).to_string()
        });
        i += 1;
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_become_words() {
        assert_eq!(
            caption("face-with-raised-eyebrow", None),
            "face with raised eyebrow"
        );
        assert_eq!(caption("red-apple", None), "red apple");
        assert_eq!(caption("zzz", None), "zzz");
    }

    #[test]
    fn tones_split_longest_suffix_first() {
        assert_eq!(
            SkinTone::split("thumbs-up-medium-dark"),
            Some(("thumbs-up", SkinTone::MediumDark))
        );
        assert_eq!(
            SkinTone::split("thumbs-up-medium-light"),
            Some(("thumbs-up", SkinTone::MediumLight))
        );
        assert_eq!(
            SkinTone::split("baby-medium"),
            Some(("baby", SkinTone::Medium))
        );
        assert_eq!(SkinTone::split("man-dark"), Some(("man", SkinTone::Dark)));
        assert_eq!(SkinTone::split("ear-light"), Some(("ear", SkinTone::Light)));
        assert_eq!(SkinTone::split("flashlight"), None);
        assert_eq!(SkinTone::split("dark"), None);
        assert_eq!(SkinTone::split("-dark"), None);
        for tone in SkinTone::ALL {
            let name = format!("x-{}", tone.suffix());
            assert_eq!(SkinTone::split(&name), Some(("x", tone)));
        }
    }

    #[test]
    fn tone_phrasing() {
        assert_eq!(
            caption("waving-hand", Some(SkinTone::Light)),
            "waving hand, light skin tone"
        );
        assert_eq!(
            caption("man-mechanic", Some(SkinTone::MediumLight)),
            "man mechanic, medium-light skin tone"
        );
    }

    #[test]
    fn repairs() {
        for (name, want) in [
            ("eight-oclock", "eight o'clock"),
            ("eight-thirty", "eight-thirty"),
            ("mans-shoe", "man's shoe"),
            ("womens-room", "women's room"),
            ("t-shirt", "t-shirt"),
            ("x-ray", "x-ray"),
            ("e-mail", "e-mail"),
            ("upside-down-face", "upside-down face"),
            ("left-right-arrow", "left-right arrow"),
            ("right-arrow-curving-left", "right arrow curving left"),
            ("rolled-up-newspaper", "rolled-up newspaper"),
            ("keycap-5", "keycap 5"),
            ("keycap-10", "keycap 10"),
            ("keycap-hashtag", "keycap #"),
            ("1st-place-medal", "1st place medal"),
            ("pool-8-ball", "pool 8 ball"),
            ("atm-sign", "ATM sign"),
            ("ok-hand", "OK hand"),
            ("man-gesturing-ok", "man gesturing OK"),
            ("new-button", "NEW button"),
            ("new-moon", "new moon"),
            ("up-button", "UP! button"),
            ("up-arrow", "up arrow"),
            ("soon-arrow", "SOON arrow"),
            ("b-button-blood-type", "B button (blood type)"),
            ("face-blowing-a-kiss", "face blowing a kiss"),
            ("japanese-here-button", "Japanese here button"),
            ("mount-fuji", "mount Fuji"),
            ("globe-showing-europe-africa", "globe showing Europe Africa"),
            ("santa-claus", "Santa Claus"),
            ("cancer", "Cancer"),
            ("crab", "crab"),
            ("jack-o-lantern", "jack-o'-lantern"),
        ] {
            assert_eq!(caption(name, None), want, "{name}");
        }
    }
}
