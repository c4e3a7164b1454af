//! Rasterising an SVG document with resvg into an RGB image over white.

use cogview_core::{Error, Image, Result};
use resvg::{tiny_skia, usvg};

/// The largest side, in pixels, [`crate::EmojiSet::render`] accepts.
pub const MAX_RENDER_SIZE: u32 = 4096;

/// usvg options that never touch the file system: `<image>` references resolve to nothing, so a
/// drawing can only be the vector content of its own document.
fn options() -> usvg::Options<'static> {
    usvg::Options {
        image_href_resolver: usvg::ImageHrefResolver {
            resolve_data: Box::new(|_, _, _| None),
            resolve_string: Box::new(|_, _| None),
        },
        ..usvg::Options::default()
    }
}

/// Renders `svg` into a `size`×`size` RGB8 image: scaled to fit (aspect ratio kept), centred,
/// composited over white. `what` names the drawing in errors.
pub(crate) fn render_svg(svg: &str, size: u32, what: &str) -> Result<Image> {
    if size == 0 || size > MAX_RENDER_SIZE {
        return Err(Error::invalid_input(
            "size_px",
            format!("{size} pixels; use 1..={MAX_RENDER_SIZE}"),
        ));
    }
    let tree = usvg::Tree::from_str(svg, &options())
        .map_err(|e| Error::invalid_input(what, format!("the SVG does not parse: {e}")))?;
    let mut pixmap = tiny_skia::Pixmap::new(size, size).ok_or_else(|| {
        Error::invalid_input("size_px", format!("cannot allocate a {size}x{size} canvas"))
    })?;
    pixmap.fill(tiny_skia::Color::WHITE);
    let drawing = tree.size();
    let side = size as f32;
    let scale = (side / drawing.width()).min(side / drawing.height());
    let dx = (side - drawing.width() * scale) / 2.0;
    let dy = (side - drawing.height() * scale) / 2.0;
    resvg::render(
        &tree,
        tiny_skia::Transform::from_row(scale, 0.0, 0.0, scale, dx, dy),
        &mut pixmap.as_mut(),
    );
    // Everything was drawn over opaque white, so every pixel is opaque and its premultiplied
    // colour is its colour.
    let rgb: Vec<u8> = pixmap
        .pixels()
        .iter()
        .flat_map(|p| [p.red(), p.green(), p.blue()])
        .collect();
    Image::new(size as usize, size as usize, rgb)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HALF_RED: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" width="2" height="1" viewBox="0 0 2 1"><rect width="1" height="1" fill="#ff0000"/><rect x="1" width="1" height="1" fill="#0000ff" fill-opacity="0.5"/></svg>"##;

    fn px(img: &Image, x: usize, y: usize) -> [u8; 3] {
        let i = (y * img.width + x) * 3;
        [img.pixels[i], img.pixels[i + 1], img.pixels[i + 2]]
    }

    #[test]
    fn fits_centres_and_composites_over_white() {
        let img = render_svg(HALF_RED, 8, "test").unwrap();
        assert_eq!((img.width, img.height, img.pixels.len()), (8, 8, 8 * 8 * 3));
        // A 2:1 drawing fills rows 2..6 of an 8x8 square; above and below stay white.
        assert_eq!(px(&img, 1, 0), [255, 255, 255]);
        assert_eq!(px(&img, 6, 7), [255, 255, 255]);
        assert_eq!(px(&img, 1, 3), [255, 0, 0]);
        // Half-transparent blue over white.
        let [r, g, b] = px(&img, 6, 3);
        assert!((126..=129).contains(&r) && (126..=129).contains(&g) && b == 255);
    }

    #[test]
    fn bad_sizes_and_documents_are_errors() {
        for size in [0, MAX_RENDER_SIZE + 1] {
            let err = render_svg(HALF_RED, size, "test").unwrap_err();
            assert!(matches!(err, Error::InvalidInput { ref field, .. } if field == "size_px"));
        }
        for bad in [
            "",
            "<svg",
            "<html/>",
            r#"<svg xmlns="http://www.w3.org/2000/svg"><g></svg>"#,
        ] {
            let err = render_svg(bad, 16, "bad").unwrap_err();
            assert!(matches!(err, Error::InvalidInput { ref field, .. } if field == "bad"));
        }
    }
}
