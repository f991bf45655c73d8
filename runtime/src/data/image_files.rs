//! Image files as samples, for `netc predict --input digit.png`: each PNG is one sample, its
//! pixels 0–255 laid out `[H, W]` for greyscale and `[3, H, W]` for colour (alpha dropped,
//! palettes expanded, 16-bit reduced to 8), as the IDX and CIFAR-10 loaders lay theirs out, so
//! a field declared for those (`[1, 28, 28]`, `[784]`, `[3, 32, 32]`) and its transforms
//! (`scale(1 / 255)`, ...) take them unchanged.

use std::path::{Path, PathBuf};

use super::{Column, DataError, Features, Loaded, Locator, Raw, Reshape, read_file};

pub(crate) fn load(paths: &[PathBuf]) -> Result<Loaded, DataError> {
    let mut pixels = Vec::new();
    let mut dims: Option<(Vec<usize>, &PathBuf)> = None;
    for path in paths {
        let (planes, shape) = decode(path)?;
        match &dims {
            Some((first, first_path)) if *first != shape => {
                return Err(DataError::at(
                    path,
                    format!(
                        "the image is {}, but {} is {}; every input image must have the same size and channels",
                        describe(&shape),
                        first_path.display(),
                        describe(first)
                    ),
                ));
            }
            Some(_) => {}
            None => dims = Some((shape, path)),
        }
        pixels.extend(planes);
    }
    let (dims, first) = dims.ok_or_else(|| DataError::new("no image files given"))?;
    Ok(Loaded {
        len: paths.len(),
        features: Features::Dense(Column {
            values: Raw::U8(pixels),
            what: format!("the images are {}", describe(&dims)),
            dims,
            path: first.clone(),
            reshape: Reshape::Image,
            locate: Locator::Files(paths.to_vec()),
        }),
        labels: None,
    })
}

fn describe(dims: &[usize]) -> String {
    match dims {
        [h, w] => format!("{w}x{h} greyscale"),
        [_, h, w] => format!("{w}x{h} colour"),
        _ => format!("{dims:?}"),
    }
}

/// One PNG as bytes in planes and its dims (`[H, W]` or `[3, H, W]`).
fn decode(path: &Path) -> Result<(Vec<u8>, Vec<usize>), DataError> {
    let bytes = read_file(path)?;
    if !bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Err(DataError::at(
            path,
            "not a PNG file (expected the PNG signature at byte 0); give a .png, .npy or .csv",
        ));
    }
    let mut decoder = png::Decoder::new(std::io::Cursor::new(&bytes[..]));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let bad = |e: png::DecodingError| DataError::at(path, format!("a damaged PNG file: {e}"));
    let mut reader = decoder.read_info().map_err(bad)?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| DataError::at(path, "the image is too large"))?;
    let mut buf = vec![0u8; size];
    let frame = reader.next_frame(&mut buf).map_err(bad)?;
    let (w, h) = (frame.width as usize, frame.height as usize);
    let (channels, kept) = match frame.color_type {
        png::ColorType::Grayscale => (1, 1),
        png::ColorType::GrayscaleAlpha => (2, 1),
        png::ColorType::Rgb => (3, 3),
        png::ColorType::Rgba => (4, 3),
        png::ColorType::Indexed => {
            return Err(DataError::at(
                path,
                "a palette image the decoder did not expand",
            ));
        }
    };
    let interleaved = &buf[..frame.buffer_size()];
    let mut planes = vec![0u8; kept * h * w];
    for (p, px) in interleaved.chunks_exact(channels).enumerate() {
        for c in 0..kept {
            planes[c * h * w + p] = px[c];
        }
    }
    let dims = if kept == 1 {
        vec![h, w]
    } else {
        vec![kept, h, w]
    };
    Ok((planes, dims))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_png(path: &std::path::Path, w: u32, h: u32, color: png::ColorType, data: &[u8]) {
        let mut encoder = png::Encoder::new(std::fs::File::create(path).unwrap(), w, h);
        encoder.set_color(color);
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(data).unwrap();
        writer.finish().unwrap();
    }

    fn pixels(loaded: &Loaded) -> (&[u8], &[usize]) {
        match &loaded.features {
            Features::Dense(Column {
                values: Raw::U8(v),
                dims,
                ..
            }) => (v, dims),
            _ => panic!("expected dense bytes"),
        }
    }

    #[test]
    fn rgba_becomes_three_planes_and_grey_one() {
        let dir = tempfile::tempdir().unwrap();
        let rgba = dir.path().join("a.png");
        // 2x1: pixel 0 = (1, 2, 3, 255), pixel 1 = (4, 5, 6, 0).
        write_png(
            &rgba,
            2,
            1,
            png::ColorType::Rgba,
            &[1, 2, 3, 255, 4, 5, 6, 0],
        );
        let loaded = load(std::slice::from_ref(&rgba)).unwrap();
        assert_eq!(pixels(&loaded), (&[1, 4, 2, 5, 3, 6][..], &[3, 1, 2][..]));

        let grey = dir.path().join("g.png");
        write_png(
            &grey,
            3,
            2,
            png::ColorType::Grayscale,
            &[0, 1, 2, 3, 4, 255],
        );
        let loaded = load(&[grey.clone(), grey]).unwrap();
        assert_eq!(loaded.len, 2);
        assert_eq!(pixels(&loaded).1, &[2, 3]);
        assert_eq!(pixels(&loaded).0[6..], [0, 1, 2, 3, 4, 255]);
    }

    #[test]
    fn malformed_images_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small.png");
        let large = dir.path().join("large.png");
        write_png(&small, 2, 2, png::ColorType::Grayscale, &[0; 4]);
        write_png(&large, 3, 2, png::ColorType::Rgb, &[0; 18]);
        let e = load(&[small.clone(), large.clone()]).err().unwrap();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: the image is 3x2 colour, but {} is 2x2 greyscale; every input image must have the same size and channels",
                large.display(),
                small.display()
            )
        );

        let truncated = dir.path().join("truncated.png");
        let bytes = std::fs::read(&large).unwrap();
        std::fs::write(&truncated, &bytes[..bytes.len() - 20]).unwrap();
        let e = load(std::slice::from_ref(&truncated)).err().unwrap();
        assert!(
            e.to_string()
                .starts_with(&format!("{}: a damaged PNG file: ", truncated.display())),
            "{e}"
        );
    }
}
