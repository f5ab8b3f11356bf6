//! `plot`: throughput per GPU against interactivity (1000 / median TPOT) and against median
//! TTFT, one row of panels per ISL/OSL shape, every series (sweep) overlaid in its own colour,
//! points labelled with their concurrency (or rate), each series' throughput/interactivity
//! frontier dashed, and with an SLO the best point meeting it ringed; a capacity search adds a
//! panel of its probes with the answer ringed. PNG and SVG through
//! plotters; text is drawn with DejaVu Sans, embedded, so no system font is needed.

use std::path::Path;
use std::sync::Once;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::results::sweeps::{self, PointData, Series};

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

#[derive(Clone, Debug, Default)]
pub struct PlotOptions {
    /// SLO on median TTFT (ms).
    pub slo_ttft_ms: Option<f64>,
    /// SLO on median TPOT (ms); interactivity ≥ 1000 / this.
    pub slo_tpot_ms: Option<f64>,
    pub title: Option<String>,
    /// Output tokens per USD on the y axis instead of output tok/s per GPU.
    pub per_dollar: bool,
}

impl PlotOptions {
    /// The y value of `p` on a panel of `axis`: tok/s per GPU, or output tokens per USD; a
    /// pooling API's texts per second.
    fn y(&self, p: &PointData, axis: Axis) -> Option<f64> {
        match (axis.pooled(), self.per_dollar) {
            (true, _) => p.texts_per_s,
            (false, true) => p.tokens_per_usd(),
            (false, false) => Some(p.output_throughput_per_gpu),
        }
    }
}

/// A panel's x axis: generation against interactivity or TTFT; a pooling API (no first token)
/// against its latency, median or p99.
#[derive(Clone, Copy, PartialEq)]
enum Axis {
    Interactivity,
    Ttft,
    E2elP50,
    E2elP99,
}

impl Axis {
    fn x(self, p: &PointData) -> Option<f64> {
        match self {
            Axis::Interactivity => p.interactivity,
            Axis::Ttft => p.ttft_p50,
            Axis::E2elP50 => p.e2el_p50,
            Axis::E2elP99 => p.e2el_p99,
        }
    }

    fn pooled(self) -> bool {
        matches!(self, Axis::E2elP50 | Axis::E2elP99)
    }

    /// The axis' name in a caption, and its description.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Axis::Interactivity => (
                "interactivity",
                "interactivity (tok/s per user = 1000 / TPOT p50)",
            ),
            Axis::Ttft => ("TTFT", "TTFT p50 (ms)"),
            Axis::E2elP50 => ("E2EL p50", "E2EL p50 (ms)"),
            Axis::E2elP99 => ("E2EL p99", "E2EL p99 (ms)"),
        }
    }

    /// The SLO's bound on this axis, and its label.
    fn bound(self, o: &PlotOptions) -> Option<(f64, &'static str)> {
        match self {
            Axis::Ttft => o.slo_ttft_ms.map(|t| (t, "TTFT SLO")),
            Axis::Interactivity => o.slo_tpot_ms.map(|t| (1000.0 / t, "TPOT SLO")),
            Axis::E2elP50 | Axis::E2elP99 => None,
        }
    }
}

/// A pooling API's points (`embeddings`, `rerank`): texts per second and no TTFT or TPOT.
fn pooled(series: &[Series]) -> bool {
    let mut points = series.iter().flat_map(|s| &s.points).peekable();
    points.peek().is_some() && points.all(|p| p.texts_per_s.is_some())
}

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error(
        "nothing to plot: no point has a throughput and a TPOT (or, for a pooling API, an E2EL)"
    )]
    Empty,
    #[error("nothing to plot per dollar: no point has a price (RunPod's, or `infrastructure.price_per_hour_usd`)")]
    NoPrice,
    #[error("drawing {path}: {message}")]
    Draw { path: String, message: String },
}

pub const PANEL_W: u32 = 700;
pub const PANEL_H: u32 = 480;

/// The image's size for these series: two panels per shape, and a row for capacity searches.
pub fn size(series: &[Series]) -> (u32, u32) {
    let rows = sweeps::shapes(series).len().max(1) as u32 + u32::from(has_search(series));
    (2 * PANEL_W, rows * PANEL_H + 40)
}

fn has_search(series: &[Series]) -> bool {
    series
        .iter()
        .any(|s| s.searches.iter().any(|x| !x.probes.is_empty()))
}

/// The plot as an SVG document in memory (`report --html` inlines it).
pub fn svg(series: &[Series], o: &PlotOptions) -> Result<String, PlotError> {
    drawable(series, o)?;
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, size(series)).into_drawing_area();
        let err = |message: String| PlotError::Draw {
            path: "the inline SVG".into(),
            message,
        };
        draw(&root, series, o).map_err(err)?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    Ok(text)
}

/// Whether `series` have anything to draw (with a price, when drawn per dollar).
fn drawable(series: &[Series], o: &PlotOptions) -> Result<(), PlotError> {
    register_font();
    let drawable = |p: &PointData| match pooled(series) {
        true => p.e2el_p50.is_some(),
        false => p.interactivity.is_some(),
    };
    if !series.iter().flat_map(|s| &s.points).any(drawable) {
        return Err(PlotError::Empty);
    }
    if o.per_dollar
        && !pooled(series)
        && !series
            .iter()
            .flat_map(|s| &s.points)
            .any(|p| p.tokens_per_usd().is_some())
    {
        return Err(PlotError::NoPrice);
    }
    Ok(())
}

/// Writes the plot as PNG (`.png`) or SVG (anything else) to `path`.
pub fn write(series: &[Series], o: &PlotOptions, path: &Path) -> Result<(), PlotError> {
    drawable(series, o)?;
    let err = |e: String| PlotError::Draw {
        path: path.display().to_string(),
        message: e,
    };
    let dims = size(series);
    if path.extension().is_some_and(|e| e == "png") {
        let root = BitMapBackend::new(path, dims).into_drawing_area();
        draw(&root, series, o).map_err(err)?;
        root.present().map_err(|e| err(e.to_string()))
    } else {
        let root = SVGBackend::new(path, dims).into_drawing_area();
        draw(&root, series, o).map_err(err)?;
        root.present().map_err(|e| err(e.to_string()))
    }
}

/// What a point is called on the plot: its concurrency, else its rate, else its label.
fn tag(p: &PointData) -> String {
    match (p.concurrency, p.rate) {
        (Some(c), _) => format!("c{c}"),
        (None, Some(r)) => format!("{r}/s"),
        _ => p.label.clone(),
    }
}

fn range(vals: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = vals.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.12).max(hi.abs() * 0.05).max(1e-3);
    ((lo - pad).max(0.0), hi + pad)
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    series: &[Series],
    o: &PlotOptions,
) -> Result<(), String> {
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    root.fill(&WHITE).map_err(e)?;
    let axes = match pooled(series) {
        true => [Axis::E2elP50, Axis::E2elP99],
        false => [Axis::Interactivity, Axis::Ttft],
    };
    let title = o
        .title
        .clone()
        .unwrap_or_else(|| match (axes[0].pooled(), o.per_dollar) {
            (true, _) => "Texts per second against latency (pooling API: no first token)".into(),
            (false, true) => "Output tokens per dollar against interactivity and TTFT".into(),
            (false, false) => "Throughput per GPU against interactivity and TTFT".into(),
        });
    let (top, body) = root.split_vertically(40);
    top.titled(&title, ("sans-serif", 24)).map_err(e)?;
    let shapes = sweeps::shapes(series);
    let body = match has_search(series) {
        true => {
            let h = body.dim_in_pixel().1 as i32;
            let (grid, bottom) = body.split_vertically(h - PANEL_H as i32);
            search_panel(&bottom, series)?;
            grid
        }
        false => body,
    };
    let rows = body.split_evenly((shapes.len().max(1), 2));
    for (r, shape) in shapes.iter().enumerate() {
        for (c, axis) in axes.into_iter().enumerate() {
            panel(&rows[r * 2 + c], series, shape, axis, o)?;
        }
    }
    Ok(())
}

/// One panel: every series' points of `shape`, against the axis.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    series: &[Series],
    shape: &str,
    axis: Axis,
    o: &PlotOptions,
) -> Result<(), String> {
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    let of_shape: Vec<Vec<&PointData>> = series
        .iter()
        .map(|s| {
            s.points
                .iter()
                .filter(|p| p.shape() == shape && axis.x(p).is_some() && o.y(p, axis).is_some())
                .collect()
        })
        .collect();
    let all = || of_shape.iter().flatten();
    let (x0, x1) = range(all().filter_map(|p| axis.x(p)));
    let (_, y1) = range(all().filter_map(|p| o.y(p, axis)));
    let (what, y_desc) = match (axis.pooled(), o.per_dollar) {
        (true, _) => ("texts per second", "texts/s"),
        (false, true) => ("tokens per $", "output tokens per USD"),
        (false, false) => ("throughput per GPU", "output tok/s per GPU"),
    };
    let (x_name, x_desc) = axis.names();
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("ISL/OSL {shape}: {what} vs {x_name}"),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, 0.0..y1)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .draw()
        .map_err(e)?;

    // The SLO's bound on this panel's axis.
    if let Some((b, label)) = axis.bound(o).filter(|(b, _)| (x0..x1).contains(b)) {
        chart
            .draw_series(DashedLineSeries::new(
                vec![(b, 0.0), (b, y1)],
                6,
                4,
                RGBColor(200, 60, 60).stroke_width(1),
            ))
            .map_err(e)?
            .label(label)
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RGBColor(200, 60, 60)));
    }

    for (i, (s, pts)) in series.iter().zip(&of_shape).enumerate() {
        if !pts.is_empty() {
            draw_one(&mut chart, &s.name, pts, (colour(i), i), axis, o).map_err(e)?;
        }
    }
    // A pooling API's throughput rises to a plateau on the right: the legend goes below it.
    let at = match axis.pooled() {
        true => SeriesLabelPosition::LowerRight,
        false => SeriesLabelPosition::UpperRight,
    };
    legend(&mut chart, at).map_err(e)?;
    Ok(())
}

/// One series of a panel: its points joined, labelled with their load, its frontier (a
/// throughput panel) and its best point within the SLO ringed.
fn draw_one<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    name: &str,
    pts: &[&PointData],
    (color, k): (RGBAColor, usize),
    axis: Axis,
    o: &PlotOptions,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let at = |p: &PointData| Some((axis.x(p)?, o.y(p, axis)?));
    let line: Vec<(f64, f64)> = pts.iter().filter_map(|p| at(p)).collect();
    chart
        .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))?
        .label(name.to_string())
        .legend(move |(x, y)| {
            EmptyElement::at((x, y))
                + PathElement::new(vec![(0, 0), (18, 0)], color.stroke_width(2))
                + marker(k, (9, 0), color)
        });
    chart.draw_series(
        line.iter()
            .map(|&(x, y)| EmptyElement::at((x, y)) + marker(k, (0, 0), color)),
    )?;
    chart.draw_series(pts.iter().filter_map(|p| {
        Some(EmptyElement::at(at(p)?) + Text::new(tag(p), (7, -16), ("sans-serif", 12).into_font()))
    }))?;
    if axis == Axis::Interactivity && !o.per_dollar {
        let f: Vec<(f64, f64)> = sweeps::frontier(pts)
            .iter()
            .filter_map(|p| Some((p.interactivity?, p.output_throughput_per_gpu)))
            .collect();
        if f.len() > 1 {
            chart.draw_series(DashedLineSeries::new(
                f,
                4,
                4,
                color.mix(0.5).stroke_width(1),
            ))?;
        }
    }
    if !axis.pooled() && (o.slo_ttft_ms.is_some() || o.slo_tpot_ms.is_some()) {
        let best = match o.per_dollar {
            true => sweeps::cheapest_within(pts, o.slo_ttft_ms, o.slo_tpot_ms),
            false => sweeps::best_within(pts, o.slo_ttft_ms, o.slo_tpot_ms),
        };
        if let Some(b) = best {
            if let Some((x, y)) = at(b) {
                let label = format!("best in SLO: {y:.0}");
                let red = RGBColor(200, 60, 60).to_rgba();
                ring(chart, (x, y), red, label)?;
            }
        }
    }
    Ok(())
}

/// The k-th series' colour: Okabe and Ito's palette, which colour-blind readers tell apart
/// (yellow last: faint on white).
fn colour(k: usize) -> RGBAColor {
    const OKABE_ITO: [(u8, u8, u8); 8] = [
        (0, 114, 178),
        (213, 94, 0),
        (0, 158, 115),
        (230, 159, 0),
        (204, 121, 167),
        (86, 180, 233),
        (0, 0, 0),
        (240, 228, 66),
    ];
    let (r, g, b) = OKABE_ITO[k % OKABE_ITO.len()];
    RGBColor(r, g, b).to_rgba()
}

/// The k-th series' marker: a circle, a triangle, a square, a diamond — so series differ in
/// print and in grey, not only in colour.
fn marker<DB: DrawingBackend>(
    k: usize,
    at: (i32, i32),
    color: RGBAColor,
) -> DynElement<'static, DB, (i32, i32)> {
    let (x, y) = at;
    let style = color.filled();
    match k % 4 {
        0 => Circle::new((x, y), 5, style).into_dyn(),
        1 => Polygon::new(vec![(x, y - 6), (x - 6, y + 5), (x + 6, y + 5)], style).into_dyn(),
        2 => Rectangle::new([(x - 5, y - 5), (x + 5, y + 5)], style).into_dyn(),
        _ => Polygon::new(vec![(x, y - 6), (x + 6, y), (x, y + 6), (x - 6, y)], style).into_dyn(),
    }
}

/// A load on a log axis, with three significant digits at most: `3.16`, `31.6`, `316`, `1000`.
fn load_label(v: f64) -> String {
    let x = 10f64.powf(v);
    let digits = match x {
        x if x >= 100.0 => 0,
        x if x >= 10.0 => 1,
        _ => 2,
    };
    let s = format!("{x:.digits$}");
    match s.contains('.') {
        true => s.trim_end_matches('0').trim_end_matches('.').to_string(),
        false => s,
    }
}

/// Rings a marked point (the best in the SLO, a search's answer) and labels it.
fn ring<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    at: (f64, f64),
    color: RGBAColor,
    label: String,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    chart.draw_series(std::iter::once(
        EmptyElement::at(at)
            + Circle::new((0, 0), 11, color.stroke_width(2))
            + Text::new(label, (10, 6), ("sans-serif", 12).into_font()),
    ))?;
    Ok(())
}

/// The series' legend box.
fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    at: SeriesLabelPosition,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 12))
        .position(at)
        .draw()
}

// The capacity-search panel: every probe on the load axis (log scale), its worst measured /
// limit on the y axis — at or below the dashed line at 1 it met every SLO — green if it
// passed, red if not (a saturated or failed probe sits on the top edge), numbered in the order
// it ran, and each search's answer ringed.

/// The highest ratio drawn; probes beyond it (and those with none) sit on this edge.
const TOP: f64 = 3.0;

fn search_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    series: &[Series],
) -> Result<(), String> {
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    let searches: Vec<(String, &crate::results::index::IndexSearch)> =
        series.iter().flat_map(|s| s.named_searches()).collect();
    let loads = searches
        .iter()
        .flat_map(|(_, s)| s.probes.iter().map(|p| p.value));
    let (lo, hi) = loads.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let (x0, x1) = (
        (lo.max(1e-3)).log10() - 0.1,
        hi.max(lo * 1.01).log10() + 0.1,
    );
    let over = searches.first().map_or("rate", |(_, s)| s.over.as_str());
    let unit = match over {
        "rate" => "rate (req/s)",
        "sessions" => "sessions at once",
        _ => "concurrency",
    };
    let mut chart = ChartBuilder::on(area)
        .caption("Capacity search: probes and the answer", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, 0.0..TOP * 1.05)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc(format!("{unit}, log scale"))
        .y_desc("worst measured / SLO limit")
        // Ticks at whole decades where the range spans them (10, 100, 1000), not 3.162.
        .x_labels(((x1 - x0).ceil() as usize + 1).max(3))
        .x_label_formatter(&|v| load_label(*v))
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .draw()
        .map_err(e)?;
    chart
        .draw_series(DashedLineSeries::new(
            vec![(x0, 1.0), (x1, 1.0)],
            6,
            4,
            RGBColor(200, 60, 60).stroke_width(1),
        ))
        .map_err(e)?
        .label("SLO")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RGBColor(200, 60, 60)));
    for (i, (name, s)) in searches.iter().enumerate() {
        let color = colour(i);
        let at = |p: &crate::results::index::IndexProbe| {
            (
                p.value.max(1e-3).log10(),
                p.margin.map_or(TOP, |m| (m + 1.0).clamp(0.0, TOP)),
            )
        };
        let line: Vec<(f64, f64)> = {
            let mut v: Vec<_> = s.probes.iter().map(at).collect();
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            v
        };
        chart
            .draw_series(LineSeries::new(line, color.mix(0.4).stroke_width(1)))
            .map_err(e)?
            .label(name.to_string())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart
            .draw_series(s.probes.iter().enumerate().map(|(k, p)| {
                let fill = if p.passed {
                    RGBColor(40, 150, 60)
                } else {
                    RGBColor(200, 50, 50)
                };
                EmptyElement::at(at(p))
                    + Circle::new((0, 0), 5, fill.filled())
                    + Text::new(
                        format!("{}", k + 1),
                        (7, -16),
                        ("sans-serif", 12).into_font(),
                    )
            }))
            .map_err(e)?;
        if let Some(p) = s
            .answer
            .and_then(|a| s.probes.iter().find(|p| p.value == a))
        {
            ring(&mut chart, at(p), color, format!("answer {}", p.value)).map_err(e)?;
        }
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft).map_err(e)?;
    Ok(())
}
