//! SVG plots for `compare`, drawn with plotters' SVG backend: a grid of panels, one per
//! workload, with one series per server.

use std::path::Path;

use plotters::prelude::*;

/// An RGB colour.
#[derive(Debug, Clone, Copy)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    fn color(self) -> RGBColor {
        RGBColor(self.0, self.1, self.2)
    }
}

pub struct Series {
    pub label: String,
    pub color: Rgb,
    pub points: Vec<(f64, f64)>,
}

pub struct Panel {
    pub title: String,
    pub series: Vec<Series>,
}

fn grid(n: usize) -> (usize, usize) {
    let cols = if n <= 1 {
        1
    } else if n <= 4 {
        2
    } else {
        3
    };
    (n.div_ceil(cols).max(1), cols)
}

/// The range of positive values, widened a little, for a log axis.
fn log_range(vals: impl Iterator<Item = f64>) -> (f64, f64) {
    let mut lo = f64::INFINITY;
    let mut hi = 0.0f64;
    for v in vals.filter(|v| v.is_finite() && *v > 0.0) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() || hi <= 0.0 {
        return (0.1, 10.0);
    }
    (lo / 1.6, hi * 1.6)
}

fn err<E: std::fmt::Display>(path: &Path) -> impl Fn(E) -> String + '_ {
    move |e| format!("drawing {}: {e}", path.display())
}

fn short_num(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Throughput (x, ops/s) against p99 latency (y, ms), both log scale.
pub fn throughput_vs_latency(path: &Path, title: &str, panels: &[Panel]) -> Result<(), String> {
    let (rows, cols) = grid(panels.len());
    let size = (460 * cols as u32, 340 * rows as u32 + 40);
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let root = root.titled(title, ("sans-serif", 20)).map_err(err(path))?;
    let areas = root.split_evenly((rows, cols));
    for (area, panel) in areas.iter().zip(panels) {
        let (x0, x1) = log_range(
            panel
                .series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.0)),
        );
        let (y0, y1) = log_range(
            panel
                .series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.1)),
        );
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
            .map_err(err(path))?;
        chart
            .configure_mesh()
            .x_desc("ops/s")
            .y_desc("p99 (ms)")
            .x_labels(6)
            .y_labels(6)
            .x_label_formatter(&|v| short_num(*v))
            .y_label_formatter(&|v| short_num(*v))
            .draw()
            .map_err(err(path))?;
        for s in &panel.series {
            let c = s.color.color();
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))
                .map_err(err(path))?
                .label(s.label.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                });
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 4, c.filled())))
                .map_err(err(path))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()
            .map_err(err(path))?;
    }
    root.present().map_err(err(path))?;
    Ok(())
}

const PERCENTILES: [&str; 5] = ["p50", "p90", "p99", "p99.9", "max"];

/// Latency (y, ms, log scale) at p50, p90, p99, p99.9 and max (x).
pub fn percentiles(path: &Path, title: &str, panels: &[Panel]) -> Result<(), String> {
    let (rows, cols) = grid(panels.len());
    let size = (460 * cols as u32, 340 * rows as u32 + 40);
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let root = root.titled(title, ("sans-serif", 20)).map_err(err(path))?;
    let areas = root.split_evenly((rows, cols));
    for (area, panel) in areas.iter().zip(panels) {
        let (y0, y1) = log_range(
            panel
                .series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.1)),
        );
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(-0.3f64..4.3f64, (y0..y1).log_scale())
            .map_err(err(path))?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("latency (ms)")
            .x_labels(5)
            .y_labels(6)
            .x_label_formatter(&|v| {
                let i = v.round();
                if (v - i).abs() < 0.01 && (0.0..=4.0).contains(&i) {
                    PERCENTILES[i as usize].to_string()
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|v| short_num(*v))
            .draw()
            .map_err(err(path))?;
        for s in &panel.series {
            let c = s.color.color();
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))
                .map_err(err(path))?
                .label(s.label.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                });
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 4, c.filled())))
                .map_err(err(path))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()
            .map_err(err(path))?;
    }
    root.present().map_err(err(path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_both_plots() {
        let dir = std::env::temp_dir().join(format!("keel-bench-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let panels = || {
            vec![
                Panel {
                    title: "set".into(),
                    series: vec![
                        Series {
                            label: "ZooKeeper".into(),
                            color: Rgb(200, 90, 40),
                            points: vec![(500.0, 2.0), (9000.0, 20.0)],
                        },
                        Series {
                            label: "Keel".into(),
                            color: Rgb(30, 100, 180),
                            points: vec![(800.0, 1.2), (20000.0, 9.0)],
                        },
                    ],
                },
                Panel {
                    title: "empty".into(),
                    series: vec![],
                },
            ]
        };
        let a = dir.join("t.svg");
        throughput_vs_latency(&a, "t", &panels()).expect("plot");
        let b = dir.join("p.svg");
        percentiles(&b, "p", &panels()).expect("plot");
        let svg = std::fs::read_to_string(&a).expect("svg");
        assert!(svg.starts_with("<svg") && svg.contains("Keel"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
