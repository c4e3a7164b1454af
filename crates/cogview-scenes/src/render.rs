//! Anti-aliased rendering of scenes onto a white square canvas.

use cogview_core::Image;
use tiny_skia::{Color, FillRule, Paint, Path, PathBuilder, Pixmap, Rect, Transform};

use crate::grammar::{Object, Scene, SceneError, Shape};

/// The canvas colour (sRGB white).
pub const BACKGROUND: [u8; 3] = [255, 255, 255];

/// The smallest canvas side [`render`] accepts, in pixels.
pub const MIN_SIDE_PX: usize = 16;

/// The largest canvas side [`render`] accepts, in pixels.
pub const MAX_SIDE_PX: usize = 4096;

/// Why a scene could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The scene is not valid.
    #[error("cannot render an invalid scene: {0}")]
    InvalidScene(#[from] SceneError),
    /// The canvas side is outside [`MIN_SIDE_PX`]..=[`MAX_SIDE_PX`].
    #[error("a canvas side of {0} px is outside {MIN_SIDE_PX}..={MAX_SIDE_PX}")]
    Side(usize),
    /// The rasteriser refused a shape (not expected for sides within the accepted range).
    #[error("the rasteriser could not build the outline of {0}")]
    Outline(Object),
}

/// Renders `scene` on a `side_px` × `side_px` white canvas, anti-aliased, as RGB8.
///
/// Each object is centred in its cell (cell centres at 1/6, 3/6 and 5/6 of the side) with a square
/// bounding box of [`crate::Size::side_fraction`] of the side; see [`crate::Shape`] for the shapes.
///
/// ```
/// use cogview_scenes::{render, Scene};
/// let scene = Scene::parse("a large blue square in the center").unwrap();
/// let image = render(&scene, 96).unwrap();
/// assert_eq!((image.width, image.height), (96, 96));
/// let centre = (48 * 96 + 48) * 3;
/// assert_eq!(&image.pixels[centre..centre + 3], &[40, 70, 220]);
/// assert_eq!(&image.pixels[..3], &[255, 255, 255]);
/// ```
pub fn render(scene: &Scene, side_px: usize) -> Result<Image, RenderError> {
    scene.validate()?;
    if !(MIN_SIDE_PX..=MAX_SIDE_PX).contains(&side_px) {
        return Err(RenderError::Side(side_px));
    }
    // The range check above keeps the side well inside u32 and tiny-skia's limits.
    let side = side_px as u32;
    let mut pixmap = Pixmap::new(side, side).ok_or(RenderError::Side(side_px))?;
    pixmap.fill(Color::WHITE);
    for object in &scene.objects {
        let path = outline(object, side_px as f32).ok_or(RenderError::Outline(*object))?;
        let [r, g, b] = object.colour.rgb();
        let mut paint = Paint::default();
        paint.set_color_rgba8(r, g, b, 255);
        paint.anti_alias = true;
        pixmap.fill_path(
            &path,
            &paint,
            FillRule::Winding,
            Transform::identity(),
            None,
        );
    }
    // Everything drawn is opaque, so the premultiplied RGBA is plain RGB plus alpha 255.
    let mut pixels = Vec::with_capacity(side_px * side_px * 3);
    for px in pixmap.data().chunks_exact(4) {
        pixels.extend_from_slice(&px[..3]);
    }
    Ok(Image {
        width: side_px,
        height: side_px,
        pixels,
    })
}

/// The outline of `object` on a canvas of side `side` (pixel units, y down).
fn outline(object: &Object, side: f32) -> Option<Path> {
    let (fx, fy) = object.cell.centre();
    let (cx, cy) = (fx * side, fy * side);
    let s = object.size.side_fraction() * side;
    let half = s / 2.0;
    match object.shape {
        Shape::Circle => PathBuilder::from_circle(cx, cy, half),
        Shape::Square => Rect::from_xywh(cx - half, cy - half, s, s).map(PathBuilder::from_rect),
        Shape::Triangle => {
            let mut pb = PathBuilder::new();
            pb.move_to(cx, cy - half);
            pb.line_to(cx + half, cy + half);
            pb.line_to(cx - half, cy + half);
            pb.close();
            pb.finish()
        }
    }
}
