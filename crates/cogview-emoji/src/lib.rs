//! # cogview-emoji
//!
//! The "real images" part of cogview's default training data: Microsoft's Fluent Emoji Flat set
//! (MIT), committed as the Iconify JSON of the npm package `@iconify-json/fluent-emoji-flat` in
//! `data/fluent-emoji-flat/` (see its README for provenance), rendered offline with resvg.
//!
//! - [`EmojiSet::load`] reads the JSON (plain or gzip-compressed; the committed file is
//!   [`DEFAULT_ICONS_PATH`]) and resolves its aliases;
//! - every [`Entry`] has a [`caption`](Entry::caption) made from its name (rules in [`caption()`]);
//! - [`EmojiSet::train`] and [`EmojiSet::heldout`] split the set: for every person emoji with
//!   skin-tone variants, exactly one variant, chosen by [`heldout_tone`], is held out to test
//!   whether a model generalises to unseen emoji–tone combinations;
//! - [`EmojiSet::render`] draws an entry as a square RGB [`Image`] over white.
//!
//! ```no_run
//! use cogview_emoji::{EmojiSet, DEFAULT_ICONS_PATH};
//! let set = EmojiSet::load(DEFAULT_ICONS_PATH)?;
//! for entry in set.train().take(3) {
//!     let image = set.render(entry, 160)?;
//!     println!("{}: {}x{}", entry.caption(), image.width, image.height);
//! }
//! # Ok::<(), cogview_core::Error>(())
//! ```

#![warn(missing_docs)]

mod caption;
mod iconify;
mod render;

pub use caption::{caption, SkinTone};
pub use render::MAX_RENDER_SIZE;

use cogview_core::{Error, Image, Result};
use iconify::{Geometry, RawSet};
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;

/// Where the committed icon data lives, relative to the repository root.
pub const DEFAULT_ICONS_PATH: &str = "data/fluent-emoji-flat/icons.json.gz";

/// The largest icon JSON accepted, after decompression (the Fluent set is about 9 MB).
pub const MAX_JSON_BYTES: u64 = 256 << 20;

/// Which part of the data an entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// Returned by [`EmojiSet::train`].
    Train,
    /// The one skin-tone variant of its emoji that is held out ([`EmojiSet::heldout`]).
    HeldOut,
    /// An alias that draws exactly what its parent draws under another name (a pure rename, such
    /// as `japanese-hear-button` for `japanese-here-button`); left out of both lists so no
    /// picture is counted twice.
    Duplicate,
}

/// One named emoji: an icon of the set, or an alias of one.
#[derive(Debug, Clone)]
pub struct Entry {
    name: String,
    base: String,
    tone: Option<SkinTone>,
    caption: String,
    parent: Option<String>,
    hidden: bool,
    split: Split,
    body: usize,
    geometry: Geometry,
}

impl Entry {
    /// The emoji's name in the set, e.g. `waving-hand-medium-dark`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name without its skin-tone suffix (`waving-hand`); the name itself when it has no tone.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The skin tone, for a toned variant of a person emoji.
    pub fn skin_tone(&self) -> Option<SkinTone> {
        self.tone
    }

    /// The caption, e.g. `waving hand, medium-dark skin tone` (see [`caption()`]).
    pub fn caption(&self) -> &str {
        &self.caption
    }

    /// For an alias: the name it points to (as written in the data); `None` for an icon.
    pub fn alias_of(&self) -> Option<&str> {
        self.parent.as_deref()
    }

    /// Whether the data marks this emoji hidden (Iconify's flag for names kept for compatibility;
    /// in this set, tones of emoji that Unicode does not give tones, such as `skier-dark`). Hidden
    /// emoji are still distinct drawings and are part of the splits.
    pub fn hidden(&self) -> bool {
        self.hidden
    }

    /// The split this entry belongs to.
    pub fn split(&self) -> Split {
        self.split
    }
}

/// The skin tone held out for a person emoji with tone variants, chosen from its base name alone
/// (64-bit FNV-1a hash modulo 5, indexing [`SkinTone::ALL`]), so the choice does not depend on
/// what else is in the data and the five tones are spread across emoji.
///
/// [`EmojiSet`] hashes the base of the emoji a base's variants draw: when `B-light` is an alias of
/// another toned emoji's `C-light`, `B` holds out `heldout_tone(C)`. So the mirrored variants
/// `backhand-index-pointing-right-*` (aliases of `backhand-index-pointing-left-*`) hold out the
/// same tone as the emoji they mirror.
pub fn heldout_tone(base: &str) -> SkinTone {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in base.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // The remainder is below 5, so it indexes ALL.
    SkinTone::ALL[(hash % 5) as usize]
}

/// A loaded emoji set: every icon and alias with its caption and split, ready to render.
#[derive(Debug, Clone)]
pub struct EmojiSet {
    source: String,
    prefix: String,
    bodies: Vec<String>,
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
    icon_count: usize,
    alias_count: usize,
}

impl EmojiSet {
    /// Loads an Iconify JSON icon set from `path`, plain or gzip-compressed (detected from the
    /// content). The committed Fluent set is at [`DEFAULT_ICONS_PATH`] under the repository root.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    /// Reads an icon set from the bytes of an Iconify JSON file, plain or gzip-compressed;
    /// `source` names the data in errors.
    pub fn from_bytes(bytes: &[u8], source: &str) -> Result<Self> {
        let json;
        let json = if bytes.starts_with(&[0x1f, 0x8b]) {
            json = gunzip(bytes, source)?;
            &json[..]
        } else {
            bytes
        };
        let resolved = RawSet::parse(json, source)?.resolve(source)?;
        let names: HashSet<&str> = resolved.items.iter().map(|r| r.name.as_str()).collect();
        // A name is a toned variant when its base exists in all five tones.
        let toned = |name: &str| -> Option<(String, SkinTone)> {
            let (base, tone) = SkinTone::split(name)?;
            SkinTone::ALL
                .iter()
                .all(|t| names.contains(format!("{base}-{}", t.suffix()).as_str()))
                .then(|| (base.to_string(), tone))
        };
        let drawn_by: HashMap<&str, &str> = resolved
            .items
            .iter()
            .map(|r| (r.name.as_str(), r.icon.as_str()))
            .collect();
        let mut entries = Vec::with_capacity(resolved.items.len());
        for item in &resolved.items {
            let (base, tone) = match toned(&item.name) {
                Some((base, tone)) => (base, Some(tone)),
                None => (item.name.clone(), None),
            };
            // The held-out tone follows the drawing: when a base's variants are aliases of
            // another emoji's (`backhand-index-pointing-right-*` flips `...-left-*`), it holds
            // out the same tone, so no training image is a mirror of a held-out one. The key
            // depends on the base alone (through its light variant), so each base holds out
            // exactly one variant.
            let held = tone.map(|_| {
                let light = format!("{base}-{}", SkinTone::Light.suffix());
                let key = drawn_by
                    .get(light.as_str())
                    .and_then(|icon| toned(icon))
                    .map_or_else(|| base.clone(), |(icon_base, _)| icon_base);
                heldout_tone(&key)
            });
            let split = if tone.is_some() && tone == held {
                Split::HeldOut
            } else if item.same_as_parent {
                Split::Duplicate
            } else {
                Split::Train
            };
            entries.push(Entry {
                caption: caption(&base, tone),
                name: item.name.clone(),
                base,
                tone,
                parent: item.parent.clone(),
                hidden: item.hidden,
                split,
                body: item.body,
                geometry: item.geometry,
            });
        }
        let index = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name.clone(), i))
            .collect();
        Ok(EmojiSet {
            source: source.to_string(),
            prefix: resolved.prefix,
            bodies: resolved.bodies,
            entries,
            index,
            icon_count: resolved.icon_count,
            alias_count: resolved.alias_count,
        })
    }

    /// The set's Iconify prefix (`fluent-emoji-flat`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// How many icons (not aliases) the data defines.
    pub fn icon_count(&self) -> usize {
        self.icon_count
    }

    /// How many aliases the data defines.
    pub fn alias_count(&self) -> usize {
        self.alias_count
    }

    /// The number of entries: icons plus aliases.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the set has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every icon and alias, sorted by name.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry of that name, if any.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.index.get(name).map(|&i| &self.entries[i])
    }

    /// The training entries, sorted by name: all except the held-out tone variants and the
    /// duplicate aliases.
    pub fn train(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.in_split(Split::Train)
    }

    /// The held-out entries, sorted by name: for each emoji with skin-tone variants, the variant
    /// in its [`heldout_tone`]. Never returned by [`EmojiSet::train`], and no training entry
    /// draws the same body as a held-out one.
    pub fn heldout(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.in_split(Split::HeldOut)
    }

    fn in_split(&self, split: Split) -> impl Iterator<Item = &Entry> + '_ {
        self.entries.iter().filter(move |e| e.split == split)
    }

    fn own(&self, entry: &Entry) -> Result<&Entry> {
        self.get(&entry.name).ok_or_else(|| {
            Error::invalid_input(
                "entry",
                format!("`{}` is not in the emoji set {}", entry.name, self.source),
            )
        })
    }

    /// The entry as a standalone SVG document (view box, flips and rotation applied).
    pub fn svg(&self, entry: &Entry) -> Result<String> {
        let entry = self.own(entry)?;
        let body = self.bodies.get(entry.body).ok_or_else(|| {
            Error::invalid_input(
                format!("emoji `{}`", entry.name),
                "its drawing is missing from the set",
            )
        })?;
        Ok(iconify::svg_document(body, &entry.geometry))
    }

    /// Renders the entry as a `size_px`×`size_px` RGB image: the drawing scaled to fit with its
    /// aspect ratio kept, centred, transparency composited over white.
    ///
    /// Errors: `size_px` outside 1..=[`MAX_RENDER_SIZE`], an entry not in this set, or a drawing
    /// that is not valid SVG.
    pub fn render(&self, entry: &Entry, size_px: u32) -> Result<Image> {
        let svg = self.svg(entry)?;
        render::render_svg(&svg, size_px, &format!("emoji `{}`", entry.name))
    }
}

fn gunzip(bytes: &[u8], source: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(MAX_JSON_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::invalid_input(source, format!("corrupt gzip data: {e}")))?;
    if out.len() as u64 > MAX_JSON_BYTES {
        return Err(Error::invalid_input(
            source,
            format!("the JSON is larger than {MAX_JSON_BYTES} bytes once decompressed"),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: &str = r##"{"prefix":"t","width":2,"height":2,
        "icons":{
          "square":{"body":"<rect width='1' height='2' fill='#ff0000'/>"},
          "hand":{"body":"<rect width='2' height='2' fill='#ffcc00'/>"},
          "hand-light":{"body":"<rect width='2' height='2' fill='#ffe0c0'/>"},
          "hand-medium-light":{"body":"<rect width='2' height='2' fill='#e0b090'/>"},
          "hand-medium":{"body":"<rect width='2' height='2' fill='#c09070'/>"},
          "hand-medium-dark":{"body":"<rect width='2' height='2' fill='#906040'/>"},
          "hand-dark":{"body":"<rect width='2' height='2' fill='#503020'/>"},
          "traffic-light":{"body":"<circle r='1' cx='1' cy='1' fill='#00ff00'/>"}},
        "aliases":{
          "square-flipped":{"parent":"square","hFlip":true},
          "square-again":{"parent":"square"},
          "square-turned":{"parent":"square-flipped","rotate":1},
          "mirror":{"parent":"hand","hFlip":true},
          "mirror-light":{"parent":"hand-light","hFlip":true},
          "mirror-medium-light":{"parent":"hand-medium-light","hFlip":true},
          "mirror-medium":{"parent":"hand-medium","hFlip":true},
          "mirror-medium-dark":{"parent":"hand-medium-dark","hFlip":true},
          "mirror-dark":{"parent":"hand-dark","hFlip":true}}}"##;

    fn tiny() -> EmojiSet {
        EmojiSet::from_bytes(TINY.as_bytes(), "tiny").unwrap()
    }

    fn px(img: &Image, x: usize, y: usize) -> [u8; 3] {
        let i = (y * img.width + x) * 3;
        [img.pixels[i], img.pixels[i + 1], img.pixels[i + 2]]
    }

    #[test]
    fn splits_tones_by_siblings() {
        let set = tiny();
        assert_eq!((set.icon_count(), set.alias_count(), set.len()), (8, 9, 17));
        let light = set.get("traffic-light").unwrap();
        assert_eq!((light.skin_tone(), light.base()), (None, "traffic-light"));
        assert_eq!(light.caption(), "traffic light");
        let held: Vec<&Entry> = set.heldout().collect();
        assert_eq!(held.len(), 2);
        // The mirrored variants hold out the tone of the emoji they mirror.
        assert_eq!(held[0].base(), "hand");
        assert_eq!(held[1].base(), "mirror");
        assert_eq!(held[1].alias_of(), Some(held[0].name()));
        for h in &held {
            assert!(set.train().all(|t| t.body != h.body), "{}", h.name());
        }
        assert_eq!(held[0].skin_tone(), Some(heldout_tone("hand")));
        assert_eq!(held[0].base(), "hand");
        assert_eq!(
            held[0].caption(),
            format!("hand, {} skin tone", heldout_tone("hand").suffix())
        );
        assert_eq!(set.get("square-again").unwrap().split(), Split::Duplicate);
        let train: Vec<&str> = set.train().map(Entry::name).collect();
        assert_eq!(train.len(), 17 - 3);
        assert!(!train.contains(&held[0].name()) && !train.contains(&"square-again"));
        assert!(train.contains(&"square-flipped") && train.contains(&"hand"));
    }

    #[test]
    fn aliases_render_transformed() {
        let set = tiny();
        let red = [255, 0, 0];
        let white = [255, 255, 255];
        let img = set.render(set.get("square").unwrap(), 4).unwrap();
        assert_eq!((px(&img, 0, 0), px(&img, 3, 3)), (red, white));
        let img = set.render(set.get("square-flipped").unwrap(), 4).unwrap();
        assert_eq!((px(&img, 0, 0), px(&img, 3, 3)), (white, red));
        // The flipped square (red on the right) turned a quarter clockwise: red at the bottom.
        let img = set.render(set.get("square-turned").unwrap(), 4).unwrap();
        assert_eq!(
            (px(&img, 0, 0), px(&img, 3, 3), px(&img, 0, 3)),
            (white, red, red)
        );
        assert_eq!(
            set.get("square-turned").unwrap().alias_of(),
            Some("square-flipped")
        );
    }

    #[test]
    fn foreign_entries_and_bad_data_are_errors() {
        let set = tiny();
        let mut other = EmojiSet::from_bytes(
            br#"{"prefix":"o","icons":{"only-here":{"body":""}}}"#,
            "other",
        )
        .unwrap();
        let foreign = other.entries[0].clone();
        assert!(matches!(
            set.render(&foreign, 8),
            Err(Error::InvalidInput { .. })
        ));
        other.bodies.clear();
        assert!(other.svg(&foreign).is_err());
        assert!(EmojiSet::from_bytes(&[0x1f, 0x8b, 0, 1, 2], "junk").is_err());
        assert!(matches!(
            EmojiSet::load("/nonexistent/icons.json"),
            Err(Error::Io { .. })
        ));
    }

    #[test]
    fn reads_gzip() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(TINY.as_bytes()).unwrap();
        let set = EmojiSet::from_bytes(&gz.finish().unwrap(), "tiny.gz").unwrap();
        assert_eq!(set.len(), 17);
        assert_eq!(set.prefix(), "t");
    }

    #[test]
    fn heldout_tone_is_stable() {
        // Pinned so that a change of hash (which would reshuffle the held-out set) is noticed.
        assert_eq!(
            heldout_tone(""),
            SkinTone::ALL[(0xcbf2_9ce4_8422_2325_u64 % 5) as usize]
        );
        assert_eq!(heldout_tone("waving-hand"), heldout_tone("waving-hand"));
    }
}
