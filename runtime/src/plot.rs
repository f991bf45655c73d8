//! The training curves of a run as an SVG image: training loss per logged step, and each
//! validation metric per epoch.

use plotters::prelude::*;

/// Render the curves. `losses` are `(step, loss)`; `epochs` are `(step, metric, value)`.
pub fn curves(losses: &[(u64, f64)], epochs: &[(u64, String, f64)]) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 400)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let (left, right) = root.split_horizontally(450);
        draw(
            &left,
            "training loss",
            &[(
                "loss".to_string(),
                losses.iter().map(|&(s, l)| (s as f64, l)).collect(),
            )],
        );
        let mut names: Vec<String> = epochs.iter().map(|(_, n, _)| n.clone()).collect();
        names.sort();
        names.dedup();
        let series: Vec<(String, Vec<(f64, f64)>)> = names
            .into_iter()
            .map(|n| {
                let points = epochs
                    .iter()
                    .filter(|(_, m, _)| *m == n)
                    .map(|(s, _, v)| (*s as f64, *v))
                    .collect();
                (n, points)
            })
            .collect();
        draw(&right, "validation (per epoch)", &series);
        let _ = root.present();
    }
    svg
}

fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    series: &[(String, Vec<(f64, f64)>)],
) {
    let points = series
        .iter()
        .flat_map(|(_, p)| p.iter())
        .filter(|(_, y)| y.is_finite());
    let (mut x_max, mut y_min, mut y_max) = (1.0f64, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in points {
        x_max = x_max.max(x);
        y_min = y_min.min(y);
        y_max = y_max.max(y);
    }
    if !y_min.is_finite() {
        (y_min, y_max) = (0.0, 1.0);
    }
    if y_max - y_min < 1e-9 {
        y_max = y_min + 1.0;
    }
    let Ok(mut chart) = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..x_max, y_min..y_max)
    else {
        return;
    };
    let _ = chart.configure_mesh().x_desc("step").draw();
    let colors = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    for (i, (name, points)) in series.iter().enumerate() {
        let color = colors[i % colors.len()];
        if let Ok(drawn) = chart.draw_series(LineSeries::new(
            points.iter().copied().filter(|p| p.1.is_finite()),
            color,
        )) {
            drawn
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
    }
    let _ = chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .draw();
}

#[cfg(test)]
mod tests {
    #[test]
    fn draws_an_svg_with_both_panels() {
        let svg = super::curves(
            &[(1, 2.3), (2, 1.5), (3, 0.9)],
            &[(3, "accuracy".into(), 0.8), (3, "loss".into(), 0.7)],
        );
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(100)]);
        assert!(svg.contains("training loss") && svg.contains("accuracy"));
        assert!(svg.contains("<polyline") || svg.contains("<path"));
    }
}
