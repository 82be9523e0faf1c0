//! SVG plots for `compare`, drawn with plotters' SVG backend: a grid of panels, one per
//! workload, with one series per server.

use std::path::Path;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
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

/// What sets one kind of plot apart from the other: its x axis and where the legend sits.
/// The rest (page, panel frames, log y axis, series, legend box) is [`draw`]'s, so that
/// the two plots of a `compare` report look alike.
struct Style<'a> {
    x_desc: &'a str,
    y_desc: &'a str,
    x_labels: usize,
    x_label: &'a dyn Fn(&f64) -> String,
    legend: SeriesLabelPosition,
}

/// Draws `panels` on a grid under `title`; `x_axis` gives each panel's x coordinates
/// (the y axis is always the log range of the panel's values).
fn draw<X>(
    path: &Path,
    title: &str,
    panels: &[Panel],
    style: &Style,
    x_axis: impl Fn(&Panel) -> X,
) -> Result<(), String>
where
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
{
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
            .build_cartesian_2d(x_axis(panel), (y0..y1).log_scale())
            .map_err(err(path))?;
        chart
            .configure_mesh()
            .x_desc(style.x_desc)
            .y_desc(style.y_desc)
            .x_labels(style.x_labels)
            .y_labels(6)
            .x_label_formatter(style.x_label)
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
            .position(style.legend.clone())
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()
            .map_err(err(path))?;
    }
    root.present().map_err(err(path))?;
    Ok(())
}

/// Throughput (x, ops/s) against p99 latency (y, ms), both log scale.
pub fn throughput_vs_latency(path: &Path, title: &str, panels: &[Panel]) -> Result<(), String> {
    let style = Style {
        x_desc: "ops/s",
        y_desc: "p99 (ms)",
        x_labels: 6,
        x_label: &|v| short_num(*v),
        legend: SeriesLabelPosition::LowerRight,
    };
    draw(path, title, panels, &style, |panel| {
        let (x0, x1) = log_range(
            panel
                .series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.0)),
        );
        (x0..x1).log_scale()
    })
}

const PERCENTILES: [&str; 5] = ["p50", "p90", "p99", "p99.9", "max"];

/// Latency (y, ms, log scale) at p50, p90, p99, p99.9 and max (x).
pub fn percentiles(path: &Path, title: &str, panels: &[Panel]) -> Result<(), String> {
    let style = Style {
        x_desc: "percentile",
        y_desc: "latency (ms)",
        x_labels: 5,
        x_label: &|v| {
            let i = v.round();
            // Only the whole positions 0..=4 are percentiles; ticks between stay blank.
            if (v - i).abs() < 0.01 && (0.0..=4.0).contains(&i) {
                PERCENTILES[i as usize].to_string()
            } else {
                String::new()
            }
        },
        legend: SeriesLabelPosition::UpperLeft,
    };
    draw(path, title, panels, &style, |_| -0.3f64..4.3f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panels() -> Vec<Panel> {
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
    }

    /// The texts of an SVG in document order (plotters writes each on its own line).
    fn texts(svg: &str) -> Vec<&str> {
        let lines: Vec<&str> = svg.lines().collect();
        lines
            .windows(2)
            .filter(|w| w[0].starts_with("<text"))
            .map(|w| w[1])
            .collect()
    }

    /// The x of the `<text>` element whose text is `label`.
    fn text_x(svg: &str, label: &str) -> i32 {
        let lines: Vec<&str> = svg.lines().collect();
        let i = lines.iter().position(|l| *l == label).expect("label");
        let x = lines[i - 1].split("x=\"").nth(1).expect("x");
        x[..x.find('"').expect("quote")].parse().expect("number")
    }

    /// Renders one plot of [`panels`] and returns its SVG, after checking what both plots
    /// share: the page and one dot per point.
    fn render(name: &str, plot: fn(&Path, &str, &[Panel]) -> Result<(), String>) -> String {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(format!("{name}.svg"));
        plot(&path, name, &panels()).expect("plot");
        let svg = std::fs::read_to_string(&path).expect("svg");
        // Two panels: one row of two 460-px columns, plus 40 px for the title.
        assert!(
            svg.starts_with("<svg width=\"920\" height=\"380\""),
            "{svg}"
        );
        assert_eq!(svg.matches("<circle").count(), 4);
        svg
    }

    // Pins what each plot shows (page size, texts, dots, legend side) rather than the
    // bytes, which follow plotters' layout arithmetic. The shared drawing was checked
    // byte-identical against the two separate functions it replaced.
    #[test]
    fn throughput_plot_structure() {
        let svg = render("tput", throughput_vs_latency);
        assert_eq!(
            texts(&svg).join("|"),
            "tput|set|p99 (ms)|ops/s|1|10|1k|10k|ZooKeeper|Keel|empty|p99 (ms)|ops/s|1|10|1|10"
        );
        assert_eq!(svg.matches("fill=\"#1E64B4\"").count(), 2);
        // Legend in the lower right of the first panel.
        assert!(text_x(&svg, "Keel") > 230);
    }

    #[test]
    fn percentile_plot_structure() {
        let svg = render("pct", percentiles);
        let t = texts(&svg);
        assert_eq!(t[..4].join("|"), "pct|set|latency (ms)|percentile");
        for p in PERCENTILES {
            assert_eq!(t.iter().filter(|x| **x == p).count(), 2, "{p} in {t:?}");
        }
        assert!(t.contains(&"Keel") && t.contains(&"ZooKeeper") && t.contains(&"empty"));
        assert_eq!(svg.matches("fill=\"#C85A28\"").count(), 2);
        // Legend in the upper left of the first panel.
        assert!(text_x(&svg, "Keel") < 230);
    }

    #[test]
    fn grid_and_ranges() {
        assert_eq!(grid(0), (1, 1));
        assert_eq!(grid(2), (1, 2));
        assert_eq!(grid(5), (2, 3));
        assert_eq!(log_range([].into_iter()), (0.1, 10.0));
        assert_eq!(log_range([0.0, 16.0, 1.6].into_iter()), (1.0, 25.6));
    }
}
