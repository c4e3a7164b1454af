//! Reading the Iconify JSON icon-set format and building standalone SVG documents from it.
//!
//! The format (`IconifyJSON`, <https://iconify.design/docs/types/iconify-json.html>):
//! `prefix`, `icons: {name: {body, left?, top?, width?, height?, rotate?, hFlip?, vFlip?, hidden?}}`,
//! `aliases: {name: {parent, <the same optional fields>}}` and top-level `left`/`top`/`width`/`height`
//! defaults. Fields this crate does not use (`lastModified`, `info`, `chars`, ...) are ignored.
//!
//! Aliases are resolved the way Iconify's own `getIconData` does it: dimensions set on an alias
//! override its parent's, flips combine by exclusive or, quarter-turn rotations add up (mod 4).
//! [`svg_document`] then applies the transformations the way Iconify's `iconToSVG` does.

use cogview_core::{Error, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Iconify's default icon width and height, used when neither the icon nor the set gives one.
const DEFAULT_SIZE: f64 = 16.0;

/// The longest alias chain followed before it is reported as a cycle.
const MAX_ALIAS_DEPTH: usize = 64;

/// The optional fields that icons, aliases and (for the dimensions) the set itself may carry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Optional {
    left: Option<f64>,
    top: Option<f64>,
    width: Option<f64>,
    height: Option<f64>,
    rotate: Option<i64>,
    h_flip: Option<bool>,
    v_flip: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawIcon {
    body: String,
    #[serde(default)]
    hidden: bool,
    #[serde(flatten)]
    props: Optional,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawAlias {
    parent: String,
    #[serde(default)]
    hidden: bool,
    #[serde(flatten)]
    props: Optional,
}

/// The parts of an Iconify JSON file this crate reads.
#[derive(Debug, Deserialize)]
pub(crate) struct RawSet {
    pub(crate) prefix: String,
    pub(crate) icons: BTreeMap<String, RawIcon>,
    #[serde(default)]
    pub(crate) aliases: BTreeMap<String, RawAlias>,
    #[serde(flatten)]
    defaults: Optional,
}

/// Where an icon's drawing sits (its view box) and how it is turned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Geometry {
    pub(crate) left: f64,
    pub(crate) top: f64,
    pub(crate) width: f64,
    pub(crate) height: f64,
    /// Quarter turns clockwise, 0..4.
    pub(crate) rotate: u8,
    pub(crate) h_flip: bool,
    pub(crate) v_flip: bool,
}

/// One named drawing after alias resolution.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) name: String,
    /// Index into [`ResolvedSet::bodies`].
    pub(crate) body: usize,
    pub(crate) geometry: Geometry,
    pub(crate) hidden: bool,
    /// `Some(parent)` for an alias (its direct parent, as written in the file).
    pub(crate) parent: Option<String>,
    /// The icon whose body this draws: the name itself for an icon, the end of the chain for an
    /// alias.
    pub(crate) icon: String,
    /// For an alias: whether it draws exactly what its final icon draws (a pure rename).
    pub(crate) same_as_parent: bool,
}

/// A parsed and resolved icon set: every icon and alias, sorted by name.
#[derive(Debug)]
pub(crate) struct ResolvedSet {
    pub(crate) prefix: String,
    pub(crate) bodies: Vec<String>,
    pub(crate) items: Vec<Resolved>,
    pub(crate) icon_count: usize,
    pub(crate) alias_count: usize,
}

fn check_finite(what: &str, field: &str, v: Option<f64>, positive: bool) -> Result<Option<f64>> {
    match v {
        Some(x) if !x.is_finite() || (positive && x <= 0.0) => Err(Error::invalid_input(
            what,
            format!(
                "`{field}` is {x}; it must be a finite{} number",
                if positive { ", positive" } else { "" }
            ),
        )),
        other => Ok(other),
    }
}

fn validate(what: &str, o: &Optional) -> Result<()> {
    check_finite(what, "left", o.left, false)?;
    check_finite(what, "top", o.top, false)?;
    check_finite(what, "width", o.width, true)?;
    check_finite(what, "height", o.height, true)?;
    Ok(())
}

/// Applies `child`'s optional fields on top of `base` (Iconify's `mergeIconData`).
fn merge(base: Geometry, child: &Optional) -> Geometry {
    let turns = i64::from(base.rotate) + child.rotate.unwrap_or(0).rem_euclid(4);
    Geometry {
        left: child.left.unwrap_or(base.left),
        top: child.top.unwrap_or(base.top),
        width: child.width.unwrap_or(base.width),
        height: child.height.unwrap_or(base.height),
        // `turns` is in 0..8, so the narrowing cannot lose anything.
        rotate: (turns % 4) as u8,
        h_flip: base.h_flip != child.h_flip.unwrap_or(false),
        v_flip: base.v_flip != child.v_flip.unwrap_or(false),
    }
}

impl RawSet {
    /// Parses Iconify JSON text; `source` names the data in errors.
    pub(crate) fn parse(json: &[u8], source: &str) -> Result<Self> {
        serde_json::from_slice(json)
            .map_err(|e| Error::invalid_input(source, format!("not an Iconify JSON icon set: {e}")))
    }

    /// Validates the numbers and resolves every alias to its icon.
    pub(crate) fn resolve(self, source: &str) -> Result<ResolvedSet> {
        validate(source, &self.defaults)?;
        let set_default = Geometry {
            left: self.defaults.left.unwrap_or(0.0),
            top: self.defaults.top.unwrap_or(0.0),
            width: self.defaults.width.unwrap_or(DEFAULT_SIZE),
            height: self.defaults.height.unwrap_or(DEFAULT_SIZE),
            rotate: 0,
            h_flip: false,
            v_flip: false,
        };
        let mut bodies = Vec::with_capacity(self.icons.len());
        let mut items = Vec::with_capacity(self.icons.len() + self.aliases.len());
        let mut icon_index = BTreeMap::new();
        for (name, icon) in &self.icons {
            validate(&format!("{source}: icon `{name}`"), &icon.props)?;
            icon_index.insert(name.as_str(), items.len());
            items.push(Resolved {
                name: name.clone(),
                body: bodies.len(),
                geometry: merge(set_default, &icon.props),
                hidden: icon.hidden,
                parent: None,
                icon: name.clone(),
                same_as_parent: false,
            });
            bodies.push(icon.body.clone());
        }
        for (name, alias) in &self.aliases {
            let what = format!("{source}: alias `{name}`");
            if icon_index.contains_key(name.as_str()) {
                return Err(Error::invalid_input(
                    &what,
                    "an icon of the same name exists; a name must be an icon or an alias, not both",
                ));
            }
            validate(&what, &alias.props)?;
            // Walk up to the icon, collecting the aliases on the way (nearest first).
            let mut chain = vec![&alias.props];
            let mut parent = alias.parent.as_str();
            let icon = loop {
                if let Some(&i) = icon_index.get(parent) {
                    break &items[i];
                }
                let Some(next) = self.aliases.get(parent) else {
                    return Err(Error::invalid_input(
                        &what,
                        format!("its parent `{parent}` is neither an icon nor an alias"),
                    ));
                };
                if chain.len() >= MAX_ALIAS_DEPTH || parent == name {
                    return Err(Error::invalid_input(
                        &what,
                        "its chain of parents loops back on itself",
                    ));
                }
                validate(&format!("{source}: alias `{parent}`"), &next.props)?;
                chain.push(&next.props);
                parent = next.parent.as_str();
            };
            let geometry = chain
                .iter()
                .rev()
                .fold(icon.geometry, |g, props| merge(g, props));
            items.push(Resolved {
                name: name.clone(),
                body: icon.body,
                same_as_parent: geometry == icon.geometry,
                geometry,
                hidden: alias.hidden,
                parent: Some(alias.parent.clone()),
                icon: icon.name.clone(),
            });
        }
        items.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(ResolvedSet {
            prefix: self.prefix,
            bodies,
            items,
            icon_count: self.icons.len(),
            alias_count: self.aliases.len(),
        })
    }
}

/// A complete SVG document for `body` drawn with `geometry` (Iconify's `iconToSVG`): the flips and
/// the rotation become a `<g transform>` around the body and the view box follows them.
pub(crate) fn svg_document(body: &str, geometry: &Geometry) -> String {
    let g = geometry;
    let (mut left, mut top, mut width, mut height) = (g.left, g.top, g.width, g.height);
    let mut transforms: Vec<String> = Vec::new();
    let mut rotate = g.rotate;
    // `0.0 - x` below, not `-x`: it never prints a negative zero (as in Iconify's JavaScript).
    if g.h_flip {
        if g.v_flip {
            // Both flips are a half turn.
            rotate = (rotate + 2) % 4;
        } else {
            transforms.push(format!("translate({} {})", width + left, 0.0 - top));
            transforms.push("scale(-1 1)".into());
            left = 0.0;
            top = 0.0;
        }
    } else if g.v_flip {
        transforms.push(format!("translate({} {})", 0.0 - left, height + top));
        transforms.push("scale(1 -1)".into());
        left = 0.0;
        top = 0.0;
    }
    match rotate {
        1 => {
            let c = height / 2.0 + top;
            transforms.insert(0, format!("rotate(90 {c} {c})"));
        }
        2 => transforms.insert(
            0,
            format!("rotate(180 {} {})", width / 2.0 + left, height / 2.0 + top),
        ),
        3 => {
            let c = width / 2.0 + left;
            transforms.insert(0, format!("rotate(-90 {c} {c})"));
        }
        _ => {}
    }
    if rotate % 2 == 1 {
        std::mem::swap(&mut left, &mut top);
        std::mem::swap(&mut width, &mut height);
    }
    let mut svg = String::with_capacity(body.len() + 200);
    // Writing to a String cannot fail.
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="{width}" height="{height}" viewBox="{left} {top} {width} {height}">"#
    );
    if transforms.is_empty() {
        svg.push_str(body);
    } else {
        let _ = write!(svg, r#"<g transform="{}">"#, transforms.join(" "));
        svg.push_str(body);
        svg.push_str("</g>");
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(json: &str) -> Result<ResolvedSet> {
        RawSet::parse(json.as_bytes(), "test")?.resolve("test")
    }

    #[test]
    fn defaults_and_overrides() {
        let set = resolve(
            r#"{"prefix":"p","width":32,"height":32,"icons":{
                "a":{"body":"<path/>"},
                "b":{"body":"<path/>","height":33,"left":-1}},
               "unknownField":[1,2]}"#,
        )
        .unwrap();
        assert_eq!(set.prefix, "p");
        let a = &set.items[0].geometry;
        assert_eq!((a.left, a.top, a.width, a.height), (0.0, 0.0, 32.0, 32.0));
        let b = &set.items[1].geometry;
        assert_eq!((b.left, b.top, b.width, b.height), (-1.0, 0.0, 32.0, 33.0));
        let bare = resolve(r#"{"prefix":"p","icons":{"a":{"body":""}}}"#).unwrap();
        assert_eq!(bare.items[0].geometry.width, DEFAULT_SIZE);
    }

    #[test]
    fn alias_chains_combine_transformations() {
        let set = resolve(
            r#"{"prefix":"p","icons":{"i":{"body":"<path/>","rotate":1}},
               "aliases":{"a1":{"parent":"i","hFlip":true,"rotate":2},
                          "a2":{"parent":"a1","hFlip":true,"rotate":3,"width":8},
                          "same":{"parent":"i"}}}"#,
        )
        .unwrap();
        let get = |n: &str| set.items.iter().find(|r| r.name == n).unwrap();
        let a1 = get("a1");
        assert_eq!((a1.geometry.rotate, a1.geometry.h_flip), (3, true));
        assert!(!a1.same_as_parent);
        let a2 = get("a2");
        assert_eq!((a2.geometry.rotate, a2.geometry.h_flip), (2, false));
        assert_eq!(a2.geometry.width, 8.0);
        assert_eq!(a2.parent.as_deref(), Some("a1"));
        assert_eq!(a2.body, get("i").body);
        assert_eq!(a2.icon, "i");
        assert!(get("same").same_as_parent);
        assert_eq!((set.icon_count, set.alias_count), (1, 3));
    }

    #[test]
    fn broken_data_is_a_typed_error() {
        for bad in [
            "not json",
            r#"{"icons":{}}"#,
            r#"{"prefix":"p","icons":{"a":{}}}"#,
            r#"{"prefix":"p","icons":{"a":{"body":"","width":0}}}"#,
            r#"{"prefix":"p","icons":{"a":{"body":"","height":-3}}}"#,
            r#"{"prefix":"p","icons":{},"aliases":{"x":{"parent":"nothing"}}}"#,
            r#"{"prefix":"p","icons":{},"aliases":{"x":{"parent":"y"},"y":{"parent":"x"}}}"#,
            r#"{"prefix":"p","icons":{},"aliases":{"x":{"parent":"x"}}}"#,
            r#"{"prefix":"p","icons":{"x":{"body":""}},"aliases":{"x":{"parent":"x"}}}"#,
        ] {
            let err = resolve(bad).expect_err(bad);
            assert!(matches!(err, Error::InvalidInput { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn svg_transforms_follow_iconify() {
        let g = Geometry {
            left: 0.0,
            top: 0.0,
            width: 32.0,
            height: 32.0,
            rotate: 0,
            h_flip: false,
            v_flip: false,
        };
        assert_eq!(
            svg_document("<path/>", &g),
            r#"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="32" height="32" viewBox="0 0 32 32"><path/></svg>"#
        );
        let h = svg_document("B", &Geometry { h_flip: true, ..g });
        assert!(
            h.contains(r#"<g transform="translate(32 0) scale(-1 1)">B</g>"#),
            "{h}"
        );
        let v = svg_document("B", &Geometry { v_flip: true, ..g });
        assert!(
            v.contains(r#"<g transform="translate(0 32) scale(1 -1)">B</g>"#),
            "{v}"
        );
        let hv = svg_document(
            "B",
            &Geometry {
                h_flip: true,
                v_flip: true,
                ..g
            },
        );
        assert!(
            hv.contains(r#"<g transform="rotate(180 16 16)">B</g>"#),
            "{hv}"
        );
        let r1 = svg_document(
            "B",
            &Geometry {
                rotate: 1,
                width: 20.0,
                ..g
            },
        );
        assert!(r1.contains(r#"viewBox="0 0 32 20""#), "{r1}");
        assert!(
            r1.contains(r#"<g transform="rotate(90 16 16)">B</g>"#),
            "{r1}"
        );
    }
}
