//! Image grids of generated samples (a GAN's `sample Generator(z)`), written as PNG so a person
//! can look at how training is going.

use std::path::Path;

/// Write a `[N, C, H, W]` batch (C = 1 or 3) as a grid PNG. Values in [-1, 1] (a `tanh`
/// output) are mapped to [0, 1] when any value is negative; everything is clamped to [0, 1].
pub fn save_grid(path: &Path, values: &[f32], shape: &[usize]) -> Result<(), String> {
    let [n, c, h, w] = shape else {
        return Err(format!(
            "sample grids need a [N, C, H, W] tensor, got shape {shape:?}"
        ));
    };
    let (n, c, h, w) = (*n, *c, *h, *w);
    if c != 1 && c != 3 {
        return Err(format!("sample grids need 1 or 3 channels, got {c}"));
    }
    let cols = (n as f64).sqrt().ceil().max(1.0) as usize;
    let rows = n.div_ceil(cols).max(1);
    let (width, height) = (cols * (w + 1) + 1, rows * (h + 1) + 1);
    let signed = values.iter().any(|&v| v < 0.0);
    let mut pixels = vec![0u8; width * height * 3];
    for img in 0..n {
        let (gx, gy) = ((img % cols) * (w + 1) + 1, (img / cols) * (h + 1) + 1);
        for y in 0..h {
            for x in 0..w {
                for ch in 0..3 {
                    let v = values[((img * c + ch.min(c - 1)) * h + y) * w + x];
                    let v = if signed { (v + 1.0) / 2.0 } else { v };
                    pixels[((gy + y) * width + gx + x) * 3 + ch] =
                        (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                }
            }
        }
    }
    let file =
        std::fs::File::create(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width as u32, height as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder
        .write_header()
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    writer
        .write_image_data(&pixels)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn writes_a_png_grid() {
        let dir = std::env::temp_dir().join(format!("netc-grid-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("g.png");
        let values: Vec<f32> = (0..5 * 3 * 4 * 4)
            .map(|i| (i as f32 / 240.0) * 2.0 - 1.0)
            .collect();
        super::save_grid(&path, &values, &[5, 3, 4, 4]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        assert!(super::save_grid(&path, &values, &[5, 60, 1]).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
