//! # cogview-image
//!
//! Images in and out:
//! - [`load_image`]: any common format (PNG, JPEG, GIF, BMP, WebP, TIFF, PNM, TGA, ICO, QOI);
//!   transparency is composited over white (icetk's PIL `convert('RGB')` drops alpha instead, which
//!   turns transparent pixels into whatever colour they hide);
//! - [`resize_center_crop`]: the official preprocessing, torchvision `Resize(size)` (shorter side to
//!   `size`, antialiased bilinear) then `CenterCrop(size)`, in PyTorch's fixed-point arithmetic;
//!   [`resize_bilinear`] reproduces PIL's resampler exactly;
//! - [`save_png`]: 8-bit RGB PNG with `tEXt` chunks (for metadata).

use cogview_core::{Error, Image, Result};
use std::path::Path;

/// The default upper bound on a decoded image's pixels, checked from its header before
/// allocating; the bound in force is [`cogview_core::limits::IMAGE_PIXELS`] (environment variable
/// `COGVIEW_MAX_IMAGE_PIXELS`).
pub const MAX_PIXELS: u64 = cogview_core::limits::IMAGE_PIXELS.default;

/// Decodes image bytes of any supported format; `what` names the source in errors.
pub fn decode_image(bytes: &[u8], what: &str) -> Result<Image> {
    if bytes.is_empty() {
        return Err(Error::invalid_input(what, "the image file is empty"));
    }
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::invalid_input(what, format!("cannot read the image: {e}")))?;
    if reader.format().is_none() {
        return Err(Error::invalid_input(what, "not an image in a supported format (PNG, JPEG, GIF, BMP, WebP, TIFF, PNM, TGA, ICO, QOI)"));
    }
    // The header's size is checked against the limit before any pixel is allocated; the
    // decoder's own `Limits` bound its dimensions and every allocation it makes as well.
    let max_pixels = cogview_core::limits::IMAGE_PIXELS.value();
    let mut limits = image::Limits::default();
    let side = u32::try_from(max_pixels).unwrap_or(u32::MAX);
    limits.max_image_width = Some(side);
    limits.max_image_height = Some(side);
    limits.max_alloc = Some(max_pixels.saturating_mul(16));
    let mut probe = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::invalid_input(what, format!("cannot read the image: {e}")))?;
    probe.limits(limits.clone());
    let (w, h) = probe
        .into_dimensions()
        .map_err(|e| Error::invalid_input(what, format!("cannot decode the image: {e}")))?;
    cogview_core::limits::IMAGE_PIXELS.check(w as u64 * h as u64, what)?;
    let mut reader = reader;
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| Error::invalid_input(what, format!("cannot decode the image: {e}")))?;
    let rgba = img.to_rgba8();
    let (w, h) = (rgba.width() as usize, rgba.height() as usize);
    if w == 0 || h == 0 {
        return Err(Error::invalid_input(what, "the image has no pixels"));
    }
    let mut pixels = Vec::with_capacity(w * h * 3);
    for px in rgba.pixels() {
        let [r, g, b, a] = px.0;
        let a = a as u32;
        // Composite over white: c·α + 255·(1 − α), rounded.
        for c in [r, g, b] {
            pixels.push(((c as u32 * a + 255 * (255 - a) + 127) / 255) as u8);
        }
    }
    Image::new(w, h, pixels)
}

/// Reads an image file.
pub fn load_image(path: impl AsRef<Path>) -> Result<Image> {
    let path = path.as_ref();
    let bytes = cogview_core::limits::read_file(path)?;
    decode_image(&bytes, &path.display().to_string())
}

/// Whose arithmetic an antialiased bilinear resize reproduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Precision {
    /// PIL's `ImagingResample`: 8-bit passes with 22-bit fixed-point weights.
    Pil,
    /// What icetk runs: torchvision's `Resize` on a uint8 tensor converts it to float32, calls
    /// PyTorch's antialiased bilinear interpolation (weights and sums in f32, width pass first),
    /// and rounds half to even back to uint8.
    Torch,
}

/// Fixed-point coefficients of an antialiased bilinear (triangle) filter for one axis:
/// per output index its first input index and tap count, the weights, taps per output, and the
/// number of fractional bits.
fn coefficients(in_size: usize, out_size: usize) -> (Vec<(usize, usize)>, Vec<i32>, usize, u32) {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 1.0 * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0f64; out_size * ksize];
    for x in 0..out_size {
        let center = (x as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        let xmin = ((center - support + 0.5) as isize).max(0) as usize;
        let xmax = ((center + support + 0.5) as isize).min(in_size as isize) as usize - xmin;
        let k = &mut weights[x * ksize..x * ksize + xmax];
        let mut total = 0.0;
        for (i, ki) in k.iter_mut().enumerate() {
            let t = ((i + xmin) as f64 - center + 0.5) * ss;
            *ki = (1.0 - t.abs()).max(0.0);
            total += *ki;
        }
        if total != 0.0 {
            k.iter_mut().for_each(|v| *v /= total);
        }
        bounds.push((xmin, xmax));
    }
    let bits = 32 - 8 - 2;
    let kk = weights
        .iter()
        .map(|w| {
            let f = w * (1u64 << bits) as f64;
            if f < 0.0 {
                (f - 0.5) as i32
            } else {
                (f + 0.5) as i32
            }
        })
        .collect();
    (bounds, kk, ksize, bits)
}

/// PyTorch's `_compute_weights_aa` for the bilinear filter, in f32: per output index the first
/// input index and the normalised weights.
fn torch_weights(in_size: usize, out_size: usize) -> Vec<(usize, Vec<f32>)> {
    let scale = in_size as f32 / out_size as f32;
    let (support, invscale) = if scale >= 1.0 {
        (scale, 1.0 / scale)
    } else {
        (1.0f32, 1.0f32)
    };
    (0..out_size)
        .map(|i| {
            let center = scale * (i as f32 + 0.5);
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xsize = ((center + support + 0.5) as i64).min(in_size as i64) as usize - xmin;
            let mut w: Vec<f32> = (0..xsize)
                .map(|j| (1.0 - (((j + xmin) as f32 - center + 0.5) * invscale).abs()).max(0.0))
                .collect();
            let total: f32 = w.iter().fold(0.0, |a, b| a + b);
            if total != 0.0 {
                w.iter_mut().for_each(|v| *v /= total);
            }
            (xmin, w)
        })
        .collect()
}

/// The float32 path of torchvision's `Resize` on a uint8 tensor (see [`Precision::Torch`]).
fn resize_torch(img: &Image, out_w: usize, out_h: usize) -> Result<Image> {
    let (w, h) = (img.width, img.height);
    let mut cur: Vec<f32> = img.pixels.iter().map(|&p| p as f32).collect();
    let mut cw = w;
    if out_w != w {
        let taps = torch_weights(w, out_w);
        let mut out = vec![0f32; out_w * h * 3];
        for y in 0..h {
            for (x, (xmin, ws)) in taps.iter().enumerate() {
                for c in 0..3 {
                    let mut t = cur[(y * w + xmin) * 3 + c] * ws[0];
                    for (j, wj) in ws.iter().enumerate().skip(1) {
                        t += cur[(y * w + xmin + j) * 3 + c] * wj;
                    }
                    out[(y * out_w + x) * 3 + c] = t;
                }
            }
        }
        cur = out;
        cw = out_w;
    }
    if out_h != h {
        let taps = torch_weights(h, out_h);
        let mut out = vec![0f32; cw * out_h * 3];
        for (y, (ymin, ws)) in taps.iter().enumerate() {
            for x in 0..cw {
                for c in 0..3 {
                    let mut t = cur[(ymin * cw + x) * 3 + c] * ws[0];
                    for (j, wj) in ws.iter().enumerate().skip(1) {
                        t += cur[((ymin + j) * cw + x) * 3 + c] * wj;
                    }
                    out[(y * cw + x) * 3 + c] = t;
                }
            }
        }
        cur = out;
    }
    Image::new(
        cw,
        out_h,
        cur.into_iter()
            .map(|v| v.round_ties_even().clamp(0.0, 255.0) as u8)
            .collect(),
    )
}

/// Resizes an RGB image with an antialiased bilinear filter (a separable triangle filter widened
/// by the scale when shrinking), horizontal pass first, in PIL's or PyTorch's arithmetic.
pub fn resize_bilinear_with(
    img: &Image,
    out_w: usize,
    out_h: usize,
    precision: Precision,
) -> Result<Image> {
    if out_w == 0 || out_h == 0 {
        return Err(Error::invalid_input(
            "size",
            format!("cannot resize to {out_w}x{out_h}"),
        ));
    }
    if precision == Precision::Torch {
        return resize_torch(img, out_w, out_h);
    }
    let (w, h) = (img.width, img.height);
    let clip8 = |v: i64, bits: u32| (v >> bits).clamp(0, 255) as u8;
    let mut cur = img.clone();
    if out_w != w {
        let (bounds, kk, ksize, bits) = coefficients(w, out_w);
        let mut out = vec![0u8; out_w * h * 3];
        for y in 0..h {
            for (x, &(xmin, xmax)) in bounds.iter().enumerate() {
                for c in 0..3 {
                    let mut ss: i64 = 1 << (bits - 1);
                    for i in 0..xmax {
                        ss += cur.pixels[(y * w + xmin + i) * 3 + c] as i64
                            * kk[x * ksize + i] as i64;
                    }
                    out[(y * out_w + x) * 3 + c] = clip8(ss, bits);
                }
            }
        }
        cur = Image::new(out_w, h, out)?;
    }
    if out_h != h {
        let (bounds, kk, ksize, bits) = coefficients(h, out_h);
        let cw = cur.width;
        let mut out = vec![0u8; cw * out_h * 3];
        for (y, &(ymin, ymax)) in bounds.iter().enumerate() {
            for x in 0..cw {
                for c in 0..3 {
                    let mut ss: i64 = 1 << (bits - 1);
                    for i in 0..ymax {
                        ss += cur.pixels[((ymin + i) * cw + x) * 3 + c] as i64
                            * kk[y * ksize + i] as i64;
                    }
                    out[(y * cw + x) * 3 + c] = clip8(ss, bits);
                }
            }
        }
        cur = Image::new(cw, out_h, out)?;
    }
    Ok(cur)
}

/// PIL's `Image.resize((w, h), Image.BILINEAR)` on an RGB image, exactly.
pub fn resize_bilinear(img: &Image, out_w: usize, out_h: usize) -> Result<Image> {
    resize_bilinear_with(img, out_w, out_h, Precision::Pil)
}

/// Crops `w × h` pixels starting at (`left`, `top`).
pub fn crop(img: &Image, left: usize, top: usize, w: usize, h: usize) -> Result<Image> {
    let fits = |a: usize, b: usize, max: usize| a.checked_add(b).is_some_and(|e| e <= max);
    if !fits(left, w, img.width) || !fits(top, h, img.height) || w == 0 || h == 0 {
        return Err(Error::invalid_input(
            "crop",
            format!(
                "{w}x{h} at ({left}, {top}) is outside the {}x{} image",
                img.width, img.height
            ),
        ));
    }
    let mut out = Vec::with_capacity(w * h * 3);
    for y in top..top + h {
        let row = (y * img.width + left) * 3;
        out.extend_from_slice(&img.pixels[row..row + w * 3]);
    }
    Image::new(w, h, out)
}

/// Python's `round` (half to even) of a non-negative half-integer or integer.
fn round_half_even(x: f64) -> usize {
    let r = x.round();
    let r = if (x - x.trunc() - 0.5).abs() < 1e-12 && r % 2.0 != 0.0 {
        r - 1.0
    } else {
        r
    };
    r as usize
}

/// Where [`resize_center_crop`] takes its square from: the resized size `(width, height)` and the
/// crop's `(left, top)` in it.
pub fn center_crop_geometry(
    width: usize,
    height: usize,
    size: usize,
) -> ((usize, usize), (usize, usize)) {
    let (nw, nh) = if width <= height {
        (size, (size as f64 * height as f64 / width as f64) as usize)
    } else {
        ((size as f64 * width as f64 / height as f64) as usize, size)
    };
    let top = round_half_even((nh - size) as f64 / 2.0);
    let left = round_half_even((nw - size) as f64 / 2.0);
    ((nw, nh), (left, top))
}

/// Nearest-neighbour resizing as PyTorch's `F.interpolate(mode="nearest")` (its default mode):
/// output pixel `i` takes input pixel `floor(i · in / out)`.
pub fn resize_nearest(img: &Image, out_w: usize, out_h: usize) -> Result<Image> {
    if out_w == 0 || out_h == 0 {
        return Err(Error::invalid_input(
            "size",
            format!("cannot resize to {out_w}x{out_h}"),
        ));
    }
    let src = |i: usize, n_in: usize, n_out: usize| {
        (((i as f32) * (n_in as f32 / n_out as f32)).floor() as usize).min(n_in - 1)
    };
    let mut out = Vec::with_capacity(out_w * out_h * 3);
    for y in 0..out_h {
        let sy = src(y, img.height, out_h);
        for x in 0..out_w {
            let sx = src(x, img.width, out_w);
            let i = (sy * img.width + sx) * 3;
            out.extend_from_slice(&img.pixels[i..i + 3]);
        }
    }
    Image::new(out_w, out_h, out)
}

/// Copies `src` into `dst` with its top-left corner at (`left`, `top`).
pub fn paste(dst: &mut Image, src: &Image, left: usize, top: usize) -> Result<()> {
    let fits = |a: usize, b: usize, max: usize| a.checked_add(b).is_some_and(|e| e <= max);
    if !fits(left, src.width, dst.width) || !fits(top, src.height, dst.height) {
        return Err(Error::invalid_input(
            "paste",
            format!(
                "a {}x{} image at ({left}, {top}) does not fit the {}x{} image",
                src.width, src.height, dst.width, dst.height
            ),
        ));
    }
    for y in 0..src.height {
        let d = ((top + y) * dst.width + left) * 3;
        dst.pixels[d..d + src.width * 3]
            .copy_from_slice(&src.pixels[y * src.width * 3..(y + 1) * src.width * 3]);
    }
    Ok(())
}

/// icetk's preprocessing: torchvision `Resize(size)` on the uint8 image tensor (the shorter side
/// becomes `size`, the longer `int(size · long / short)`, antialiased bilinear as PyTorch computes
/// it for uint8) then `CenterCrop(size)`.
pub fn resize_center_crop(img: &Image, size: usize) -> Result<Image> {
    if size == 0 {
        return Err(Error::invalid_input("size", "must be positive"));
    }
    let ((nw, nh), (left, top)) = center_crop_geometry(img.width, img.height, size);
    let resized = if (nw, nh) == (img.width, img.height) {
        img.clone()
    } else {
        resize_bilinear_with(img, nw, nh, Precision::Torch)?
    };
    crop(&resized, left, top, size, size)
}

/// Writes an 8-bit RGB PNG with `tEXt` chunks.
pub fn save_png(img: &Image, path: impl AsRef<Path>, text: &[(String, String)]) -> Result<()> {
    let path = path.as_ref();
    // Written beside the target and renamed into place (cogview_core::output), so an interrupted
    // or failed write never leaves a partial PNG under the final name.
    cogview_core::output::write_with(path, |tmp| {
        let io = |e: std::io::Error| cogview_core::output::write_error(path, e);
        let file = std::fs::File::create(tmp).map_err(io)?;
        encode_png(img, text, std::io::BufWriter::new(file)).map_err(|e| match e {
            png::EncodingError::IoError(e) => io(e),
            e => Error::io(path, std::io::Error::other(e.to_string())),
        })
    })
}

/// The bytes of an 8-bit RGB PNG with `tEXt` chunks (what [`save_png`] writes), for results that
/// go to a store instead of a file.
pub fn png_bytes(img: &Image, text: &[(String, String)]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    encode_png(img, text, &mut out).map_err(|e| Error::invalid_input("image", e.to_string()))?;
    Ok(out)
}

fn encode_png<W: std::io::Write>(
    img: &Image,
    text: &[(String, String)],
    out: W,
) -> std::result::Result<(), png::EncodingError> {
    let mut enc = png::Encoder::new(out, img.width as u32, img.height as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    for (k, v) in text {
        enc.add_itxt_chunk(k.clone(), v.clone())?;
    }
    let mut writer = enc.write_header()?;
    writer.write_image_data(&img.pixels)?;
    writer.finish()
}

/// Scales an image up by an integer factor per side, repeating pixels (nearest neighbour), as
/// CogView2 enlarges its first-stage images.
pub fn upscale_nearest(img: &Image, factor: usize) -> Result<Image> {
    if factor == 0 {
        return Err(Error::invalid_input("factor", "must be at least 1"));
    }
    let (w, h) = (img.width * factor, img.height * factor);
    let mut pixels = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        let row = &img.pixels[(y / factor) * img.width * 3..][..img.width * 3];
        for px in row.chunks_exact(3) {
            for _ in 0..factor {
                pixels.extend_from_slice(px);
            }
        }
    }
    Image::new(w, h, pixels)
}

/// Tiles equally sized images in rows of `columns`, without padding (torchvision's `make_grid`
/// with `padding=0`, as CogView2 saves a batch); a short last row is filled with black.
pub fn tile(images: &[Image], columns: usize) -> Result<Image> {
    let first = images
        .first()
        .ok_or_else(|| Error::invalid_input("images", "no images to tile"))?;
    if columns == 0 {
        return Err(Error::invalid_input("columns", "must be at least 1"));
    }
    if images
        .iter()
        .any(|i| i.width != first.width || i.height != first.height)
    {
        return Err(Error::invalid_input(
            "images",
            "images of different sizes cannot be tiled",
        ));
    }
    let cols = columns.min(images.len());
    let rows = images.len().div_ceil(cols);
    let (tw, th) = (first.width, first.height);
    let (w, h) = (tw * cols, th * rows);
    let mut pixels = vec![0u8; w * h * 3];
    for (i, img) in images.iter().enumerate() {
        let (r, c) = (i / cols, i % cols);
        for y in 0..th {
            let dst = ((r * th + y) * w + c * tw) * 3;
            pixels[dst..dst + tw * 3].copy_from_slice(&img.pixels[y * tw * 3..(y + 1) * tw * 3]);
        }
    }
    Image::new(w, h, pixels)
}

/// Reads the text chunks (tEXt, zTXt, iTXt) of a PNG file.
pub fn read_png_text(path: impl AsRef<Path>) -> Result<Vec<(String, String)>> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    png_text(std::io::BufReader::new(file), &path.display().to_string())
}

/// The text chunks (tEXt, zTXt, iTXt) of a PNG in memory; `what` names it in errors.
pub fn png_text_from_bytes(bytes: &[u8], what: &str) -> Result<Vec<(String, String)>> {
    png_text(std::io::Cursor::new(bytes), what)
}

fn png_text<R: std::io::BufRead + std::io::Seek>(
    input: R,
    what: &str,
) -> Result<Vec<(String, String)>> {
    // The png crate's limits bound what a header may make it allocate (64 MiB by default).
    let reader = png::Decoder::new(input)
        .read_info()
        .map_err(|e| Error::invalid_input(what, format!("not a PNG file: {e}")))?;
    let info = reader.info();
    let mut out: Vec<(String, String)> = info
        .uncompressed_latin1_text
        .iter()
        .map(|t| (t.keyword.clone(), t.text.clone()))
        .collect();
    for t in &info.compressed_latin1_text {
        if let Ok(s) = t.get_text() {
            out.push((t.keyword.clone(), s));
        }
    }
    for t in &info.utf8_text {
        if let Ok(s) = t.get_text() {
            out.push((t.keyword.clone(), s));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {

    #[test]
    fn nearest_upscaling_repeats_each_pixel() {
        let img = Image::new(2, 1, vec![1, 2, 3, 4, 5, 6]).unwrap();
        let up = upscale_nearest(&img, 2).unwrap();
        assert_eq!((up.width, up.height), (4, 2));
        let row = [1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6];
        assert_eq!(up.pixels, [row, row].concat());
        assert!(upscale_nearest(&img, 0).is_err());
    }

    #[test]
    fn tiling_puts_images_in_rows_and_fills_the_rest_black() {
        let px = |v: u8| Image::new(1, 1, vec![v; 3]).unwrap();
        let t = tile(&[px(1), px(2), px(3), px(4)], 3).unwrap();
        assert_eq!((t.width, t.height), (3, 2));
        assert_eq!(
            t.pixels,
            [[1u8; 3], [2; 3], [3; 3], [4; 3], [0; 3], [0; 3]].concat()
        );
        assert!(tile(&[], 3).is_err());
        assert!(tile(&[px(1), Image::new(2, 1, vec![0; 6]).unwrap()], 3).is_err());
    }

    use super::*;

    #[test]
    fn alpha_is_composited_over_white() {
        let mut buf = Vec::new();
        let img = image::RgbaImage::from_raw(2, 1, vec![255, 0, 0, 0, 0, 0, 255, 128]).unwrap();
        img.write_to(&mut std::io::Cursor::new(&mut buf), image::ImageFormat::Png)
            .unwrap();
        let got = decode_image(&buf, "t").unwrap();
        // Fully transparent red → white; half-transparent blue → (127, 127, 255).
        assert_eq!(got.pixels, vec![255, 255, 255, 127, 127, 255]);
    }

    #[test]
    fn bad_images_are_errors() {
        assert!(decode_image(&[], "empty")
            .unwrap_err()
            .to_string()
            .contains("empty"));
        assert!(decode_image(b"definitely not an image", "junk").is_err());
        let mut buf = Vec::new();
        image::RgbImage::new(4, 4)
            .write_to(&mut std::io::Cursor::new(&mut buf), image::ImageFormat::Png)
            .unwrap();
        assert!(decode_image(&buf[..buf.len() / 2], "cut").is_err());
    }

    /// A PNG whose header declares `w × h` pixels, with no pixel data.
    fn png_header_only(w: u32, h: u32) -> Vec<u8> {
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend_from_slice(&w.to_be_bytes());
        ihdr.extend_from_slice(&h.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        let crc = png_crc(&ihdr);
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        out.extend_from_slice(&13u32.to_be_bytes());
        out.extend_from_slice(&ihdr);
        out.extend_from_slice(&crc.to_be_bytes());
        // An empty IDAT, so the header is complete and the data missing.
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(b"IDAT");
        out.extend_from_slice(&png_crc(b"IDAT").to_be_bytes());
        out
    }

    fn png_crc(data: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb88320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }

    #[test]
    fn a_huge_declared_image_is_refused_before_decoding_by_the_named_limit() {
        // 100,000 x 100,000 pixels declared in a 33-byte header.
        let e = decode_image(&png_header_only(100_000, 100_000), "huge.png")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("max_image_pixels") && e.contains("COGVIEW_MAX_IMAGE_PIXELS"),
            "{e}"
        );
        // Within the limit but truncated: an ordinary decoding error.
        let e = decode_image(&png_header_only(64, 64), "cut.png").unwrap_err();
        assert!(!e.to_string().contains("max_image_pixels"), "{e}");
    }

    #[test]
    fn crop_and_paste_coordinates_that_overflow_are_errors() {
        let img = Image::new(2, 2, vec![0; 12]).unwrap();
        assert!(crop(&img, usize::MAX, 0, 2, 1).is_err());
        assert!(crop(&img, 1, usize::MAX, 1, 2).is_err());
        let mut dst = img.clone();
        assert!(paste(&mut dst, &img, usize::MAX, 0).is_err());
    }

    #[test]
    fn resizing_a_constant_image_keeps_it_constant_and_identity_is_exact() {
        let img = Image::new(7, 5, [10u8, 200, 33].repeat(35)).unwrap();
        let r = resize_bilinear(&img, 3, 9).unwrap();
        assert!(r.pixels.chunks(3).all(|p| p == [10, 200, 33]));
        let ramp = Image::new(
            4,
            1,
            vec![0, 0, 0, 85, 85, 85, 170, 170, 170, 255, 255, 255],
        )
        .unwrap();
        assert_eq!(resize_bilinear(&ramp, 4, 1).unwrap(), ramp);
        // Halving: the triangle widens to support 2; PIL's `Image.resize((2, 1), BILINEAR)` of
        // this ramp gives [61, 194] (by hand: (0·0.75 + 85·0.75 + 170·0.25) / 1.75 = 60.7).
        let half = resize_bilinear(&ramp, 2, 1).unwrap();
        assert_eq!(
            half.pixels.chunks(3).map(|p| p[0]).collect::<Vec<_>>(),
            vec![61, 194]
        );
    }

    #[test]
    fn center_crop_uses_the_shorter_side() {
        let img = Image::new(300, 200, vec![7; 300 * 200 * 3]).unwrap();
        let out = resize_center_crop(&img, 160).unwrap();
        assert_eq!((out.width, out.height), (160, 160));
    }

    #[test]
    fn png_round_trip_keeps_pixels_and_text() {
        let dir = std::env::temp_dir().join(format!("cogview-png-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x.png");
        let img = Image::new(3, 2, (0..18).map(|i| i as u8 * 10).collect()).unwrap();
        save_png(&img, &p, &[("prompt".into(), "一只猫 a cat".into())]).unwrap();
        assert_eq!(load_image(&p).unwrap(), img);
        assert_eq!(
            read_png_text(&p).unwrap(),
            vec![("prompt".to_string(), "一只猫 a cat".to_string())]
        );
    }
}
