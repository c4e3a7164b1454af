//! Tests on the committed Fluent Emoji Flat data (data/fluent-emoji-flat/).

use cogview_core::Image;
use cogview_emoji::{heldout_tone, EmojiSet, Entry, SkinTone, Split, DEFAULT_ICONS_PATH};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

fn data_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(DEFAULT_ICONS_PATH)
}

fn set() -> &'static EmojiSet {
    static SET: OnceLock<EmojiSet> = OnceLock::new();
    SET.get_or_init(|| EmojiSet::load(data_path()).expect("the committed emoji data loads"))
}

fn entry(name: &str) -> &'static Entry {
    set()
        .get(name)
        .unwrap_or_else(|| panic!("`{name}` is in the set"))
}

/// The JSON read independently of the crate, with serde_json's generic value.
fn raw_json() -> serde_json::Value {
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(data_path()).unwrap())
        .read_to_end(&mut text)
        .unwrap();
    serde_json::from_slice(&text).unwrap()
}

fn px(img: &Image, x: usize, y: usize) -> [u8; 3] {
    let i = (y * img.width + x) * 3;
    [img.pixels[i], img.pixels[i + 1], img.pixels[i + 2]]
}

#[test]
fn counts_match_the_json() {
    let json = raw_json();
    let icons = json["icons"].as_object().unwrap();
    let aliases = json["aliases"].as_object().unwrap();
    let set = set();
    assert_eq!(set.prefix(), "fluent-emoji-flat");
    assert_eq!(set.icon_count(), icons.len());
    assert_eq!(set.alias_count(), aliases.len());
    assert_eq!(set.len(), icons.len() + aliases.len());
    assert_eq!(
        set.entries()
            .iter()
            .filter(|e| e.alias_of().is_none())
            .count(),
        icons.len()
    );
    for name in icons.keys().chain(aliases.keys()) {
        assert!(set.get(name).is_some(), "{name}");
    }
    // The version this data was pinned at: 3,174 icons and 7 aliases.
    assert_eq!((icons.len(), aliases.len()), (3174, 7));
}

#[test]
fn captions_of_hand_picked_names() {
    for (name, want) in [
        ("face-with-raised-eyebrow", "face with raised eyebrow"),
        ("red-apple", "red apple"),
        ("thumbs-up", "thumbs up"),
        ("thumbs-up-medium-dark", "thumbs up, medium-dark skin tone"),
        ("waving-hand-light", "waving hand, light skin tone"),
        (
            "woman-technologist-medium-light",
            "woman technologist, medium-light skin tone",
        ),
        ("ear-medium", "ear, medium skin tone"),
        ("man-dark", "man, dark skin tone"),
        // Ends in `-light` but is not a toned variant.
        ("vertical-traffic-light", "vertical traffic light"),
        ("police-car-light", "police car light"),
        ("slightly-smiling-face", "slightly smiling face"),
        // An alias that is itself a tone variant.
        (
            "backhand-index-pointing-right-dark",
            "backhand index pointing right, dark skin tone",
        ),
        ("keycap-7", "keycap 7"),
        ("keycap-asterisk", "keycap *"),
        ("2nd-place-medal", "2nd place medal"),
        ("ten-oclock", "ten o'clock"),
        ("twelve-thirty", "twelve-thirty"),
        ("womans-hat", "woman's hat"),
        ("ab-button-blood-type", "AB button (blood type)"),
        ("sos-button", "SOS button"),
        ("dna", "DNA"),
        ("chequered-flag", "chequered flag"),
        ("map-of-japan", "map of Japan"),
        ("t-rex", "t-rex"),
    ] {
        assert_eq!(entry(name).caption(), want, "{name}");
    }
}

#[test]
fn every_caption_is_readable() {
    for e in set().entries() {
        let c = e.caption();
        assert!(!c.is_empty() && c.is_ascii(), "{}: {c:?}", e.name());
        assert!(!c.contains("  ") && c.trim() == c, "{}: {c:?}", e.name());
        assert!(
            !c.contains("oclock") && !c.contains("mans "),
            "{}: {c:?}",
            e.name()
        );
    }
}

#[test]
fn heldout_has_one_variant_per_toned_emoji() {
    let set = set();
    let mut tones_by_base: BTreeMap<&str, BTreeSet<SkinTone>> = BTreeMap::new();
    for e in set.entries() {
        if let Some(tone) = e.skin_tone() {
            tones_by_base.entry(e.base()).or_default().insert(tone);
        }
    }
    assert!(
        tones_by_base.len() > 300,
        "{} toned emoji",
        tones_by_base.len()
    );
    for (base, tones) in &tones_by_base {
        assert_eq!(tones.len(), 5, "{base}");
        assert!(set.get(base).is_some(), "{base} has a default drawing");
    }
    let heldout: Vec<&Entry> = set.heldout().collect();
    let mut held_bases = BTreeSet::new();
    for e in &heldout {
        let tone = e.skin_tone().expect("held-out entries are toned");
        // Aliases hold out the tone of the emoji they draw (the pointing-right hands mirror the
        // pointing-left ones).
        let drawn = match e.alias_of() {
            Some(parent) => entry(parent).base(),
            None => e.base(),
        };
        assert_eq!(tone, heldout_tone(drawn), "{}", e.name());
        assert!(held_bases.insert(e.base()), "{} held out twice", e.base());
        assert_eq!(e.split(), Split::HeldOut);
    }
    assert_eq!(held_bases, tones_by_base.keys().copied().collect());

    let train: BTreeSet<&str> = set.train().map(Entry::name).collect();
    for e in &heldout {
        assert!(!train.contains(e.name()), "{} is in train", e.name());
        // No training image is the held-out one under another name or mirrored.
        if let Some(parent) = e.alias_of() {
            assert!(
                !train.contains(parent),
                "{} draws train's {parent}",
                e.name()
            );
        }
        for t in set.train() {
            assert_ne!(
                t.alias_of(),
                Some(e.name()),
                "{} draws {}",
                t.name(),
                e.name()
            );
        }
    }
    assert_eq!(
        entry("backhand-index-pointing-right").alias_of(),
        Some("backhand-index-pointing-left")
    );
    assert_eq!(
        heldout
            .iter()
            .filter(|e| e.base().starts_with("backhand-index-pointing-"))
            .filter(|e| e.base().ends_with("-left") || e.base().ends_with("-right"))
            .map(|e| e.skin_tone())
            .collect::<BTreeSet<_>>()
            .len(),
        1,
        "left and right hold out the same tone"
    );
    // Train and held-out together are everything but the pure-rename aliases.
    let duplicates: Vec<&str> = set
        .entries()
        .iter()
        .filter(|e| e.split() == Split::Duplicate)
        .map(Entry::name)
        .collect();
    assert_eq!(duplicates, ["japanese-hear-button"]);
    assert_eq!(train.len() + heldout.len() + duplicates.len(), set.len());

    let mut per_tone: BTreeMap<SkinTone, usize> = BTreeMap::new();
    for e in &heldout {
        *per_tone.entry(e.skin_tone().unwrap()).or_default() += 1;
    }
    assert_eq!(
        per_tone.len(),
        5,
        "every tone is held out somewhere: {per_tone:?}"
    );
    // Roughly even: no tone has fewer than half its fair share.
    let fair = heldout.len() / 5;
    assert!(per_tone.values().all(|&n| n >= fair / 2), "{per_tone:?}");
}

#[test]
fn aliases_resolve() {
    let set = set();
    let json = raw_json();
    for (name, alias) in json["aliases"].as_object().unwrap() {
        let e = entry(name);
        assert_eq!(e.alias_of(), alias["parent"].as_str(), "{name}");
        assert!(set.render(e, 16).is_ok(), "{name}");
    }
    // A pure rename draws exactly its parent.
    let here = set.render(entry("japanese-here-button"), 48).unwrap();
    let hear = set.render(entry("japanese-hear-button"), 48).unwrap();
    assert_eq!(here.pixels, hear.pixels);
    // A flipped alias draws its parent mirrored.
    let left = set
        .render(entry("backhand-index-pointing-left-medium"), 64)
        .unwrap();
    let right = set
        .render(entry("backhand-index-pointing-right-medium"), 64)
        .unwrap();
    assert_ne!(left.pixels, right.pixels);
    let mut diff = 0u64;
    for y in 0..64 {
        for x in 0..64 {
            let a = px(&left, x, y);
            let b = px(&right, 63 - x, y);
            diff += a
                .iter()
                .zip(b)
                .map(|(&p, q)| u64::from(p.abs_diff(q)))
                .sum::<u64>();
        }
    }
    let mean = diff as f64 / (64.0 * 64.0 * 3.0);
    assert!(
        mean < 1.0,
        "mirror differs by {mean} per channel on average"
    );
}

/// The dominant (most frequent) non-white colour in the central quarter of the image.
fn centre_colour(img: &Image) -> [u8; 3] {
    let mut counts: BTreeMap<[u8; 3], usize> = BTreeMap::new();
    let (w, h) = (img.width, img.height);
    for y in h * 3 / 8..h * 5 / 8 {
        for x in w * 3 / 8..w * 5 / 8 {
            let p = px(img, x, y);
            // Quantise to merge anti-aliasing shades.
            let q = p.map(|c| c & 0xf0);
            *counts.entry(q).or_default() += 1;
        }
    }
    counts.into_iter().max_by_key(|&(_, n)| n).unwrap().0
}

#[test]
fn known_emoji_have_their_colours() {
    let set = set();
    let white = [255, 255, 255];
    for (name, is_expected) in [
        (
            "red-apple",
            (|[r, g, b]: [u8; 3]| r >= 0xd0 && g < 0x60 && b < 0x60) as fn([u8; 3]) -> bool,
        ),
        ("red-heart", |[r, g, b]| r >= 0xd0 && g < 0x60 && b < 0x60),
        ("green-apple", |[r, g, b]| g >= 0x90 && r < g && b < g),
        ("blue-circle", |[r, g, b]| b >= 0xa0 && r < 0x40 && g < b),
    ] {
        let img = set.render(entry(name), 64).unwrap();
        assert_eq!(
            (img.width, img.height, img.pixels.len()),
            (64, 64, 64 * 64 * 3)
        );
        let c = centre_colour(&img);
        assert!(is_expected(c), "{name}: centre colour {c:02x?}");
        for (x, y) in [(0, 0), (63, 0), (0, 63), (63, 63)] {
            assert_eq!(px(&img, x, y), white, "{name}: corner ({x}, {y})");
        }
    }
    // Skin tones differ where the skin is.
    let light = centre_colour(&set.render(entry("raised-fist-light"), 64).unwrap());
    let dark = centre_colour(&set.render(entry("raised-fist-dark"), 64).unwrap());
    let luma = |[r, g, b]: [u8; 3]| u32::from(r) * 3 + u32::from(g) * 6 + u32::from(b);
    assert!(
        luma(light) > luma(dark) + 300,
        "{light:02x?} vs {dark:02x?}"
    );
}

#[test]
fn bad_requests_are_errors() {
    let set = set();
    assert!(set.render(entry("red-apple"), 0).is_err());
    assert!(set
        .render(entry("red-apple"), cogview_emoji::MAX_RENDER_SIZE + 1)
        .is_err());
    assert!(EmojiSet::load(data_path().with_file_name("missing.json")).is_err());
}

/// Renders `entries` at `size` px, checking each image is well formed and not blank.
fn render_all<'a>(entries: impl Iterator<Item = &'a Entry>, size: u32) -> usize {
    let set = set();
    let mut n = 0;
    for e in entries {
        let img = set
            .render(e, size)
            .unwrap_or_else(|err| panic!("{}: {err}", e.name()));
        assert_eq!(img.pixels.len(), (size * size * 3) as usize);
        let drawn = img
            .pixels
            .chunks(3)
            .filter(|p| p != &[255, 255, 255])
            .count();
        assert!(
            drawn * 100 >= (size * size) as usize,
            "{} renders blank",
            e.name()
        );
        n += 1;
    }
    n
}

#[test]
fn every_emoji_renders_at_64px() {
    let start = Instant::now();
    let n = render_all(set().entries().iter(), 64);
    assert_eq!(n, set().len());
    eprintln!(
        "rendered {n} emoji at 64 px in {:.2} s",
        start.elapsed().as_secs_f64()
    );
}
