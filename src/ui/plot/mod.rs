//! `plot`: throughput per GPU against interactivity (1000 / median TPOT) and against median
//! TTFT, one row of panels per ISL/OSL shape, every series (sweep) overlaid in its own colour
//! and marker, points labelled with their concurrency (or rate), each series'
//! throughput/interactivity frontier dashed, and with an SLO the best point meeting it ringed;
//! a capacity search adds a panel of its probes with the answer ringed. One legend for the
//! figure sits under its title; labels are placed where they cover nothing (`place`); with a
//! TTFT SLO the TTFT axis stops at twice it and points beyond sit on the edge, their value
//! written. PNG and SVG through plotters; text is drawn with DejaVu Sans, embedded, so no
//! system font is needed.

mod panel;
mod place;
mod search;

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::results::sweeps::{self, PointData, Series};

static FONT: &[u8] = include_bytes!("../../../assets/DejaVuSans.ttf");
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
    pub(super) fn y(&self, p: &PointData, axis: Axis) -> Option<f64> {
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
pub(super) enum Axis {
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

/// The title's height.
const TITLE_H: u32 = 40;

/// The image's size for these series: the title, the legend, two panels per shape, and a row
/// for capacity searches.
pub fn size(series: &[Series], o: &PlotOptions) -> (u32, u32) {
    let rows = sweeps::shapes(series).len().max(1) as u32 + u32::from(has_search(series));
    let legend = legend_height(&keys(series, o), 2 * PANEL_W);
    (2 * PANEL_W, TITLE_H + legend + rows * PANEL_H)
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
        let root = SVGBackend::with_string(&mut text, size(series, o)).into_drawing_area();
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
    let dims = size(series, o);
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
        (None, Some(r)) => format!("{}/s", three_digits(r)),
        _ => p.label.clone(),
    }
}

/// A number with three significant digits at most, no trailing zeros: `3.16`, `31.6`, `316`,
/// `1000` (a searched rate of 60.607 reads `60.6`).
fn three_digits(x: f64) -> String {
    let digits = match x.abs() {
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

/// A y value (throughput, tokens per dollar): whole, or in millions past a million (`14.2M`).
fn amount(v: f64) -> String {
    match v.abs() >= 1e6 {
        true => format!("{}M", three_digits(v / 1e6)),
        false => format!("{v:.0}"),
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

/// The SLO's colour: its bound's dashed line, the ring of the best point within it.
const SLO_RED: RGBColor = RGBColor(200, 60, 60);

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
    let (top, body) = root.split_vertically(TITLE_H);
    top.titled(&title, ("sans-serif", 24)).map_err(e)?;
    let keys = keys(series, o);
    let (strip, body) = body.split_vertically(legend_height(&keys, 2 * PANEL_W));
    draw_legend(&strip, &keys).map_err(e)?;
    let shapes = sweeps::shapes(series);
    let body = match has_search(series) {
        true => {
            let h = body.dim_in_pixel().1 as i32;
            let (grid, bottom) = body.split_vertically(h - PANEL_H as i32);
            search::panel(&bottom, series)?;
            grid
        }
        false => body,
    };
    let rows = body.split_evenly((shapes.len().max(1), 2));
    for (r, shape) in shapes.iter().enumerate() {
        for (c, axis) in axes.into_iter().enumerate() {
            panel::panel(&rows[r * 2 + c], series, shape, axis, o)?;
        }
    }
    Ok(())
}

/// One entry of the figure's legend.
#[derive(Clone, Debug, PartialEq)]
enum Key {
    /// The k-th series: its colour, marker and line.
    Series(usize, String),
    Slo,
    Frontier,
    Best,
}

impl Key {
    fn text(&self) -> &str {
        match self {
            Key::Series(_, name) => name,
            Key::Slo => "SLO bound",
            Key::Frontier => "frontier (no point both faster and higher)",
            Key::Best => "best point within the SLO",
        }
    }

    /// Its width in the strip: the sample, the text (about 6 px a character at 13 px), a gap.
    fn width(&self) -> u32 {
        30 + 6 * self.text().chars().count() as u32 + 24
    }
}

/// The legend's entries: every series with a point, then what the marks mean.
fn keys(series: &[Series], o: &PlotOptions) -> Vec<Key> {
    let mut keys: Vec<Key> = series
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.points.is_empty())
        .map(|(k, s)| Key::Series(k, s.name.clone()))
        .collect();
    let slo = !pooled(series) && (o.slo_ttft_ms.is_some() || o.slo_tpot_ms.is_some());
    if slo || has_search(series) {
        keys.push(Key::Slo);
    }
    if !pooled(series) && !o.per_dollar {
        keys.push(Key::Frontier);
    }
    if slo {
        keys.push(Key::Best);
    }
    keys
}

/// The height of a row of the legend.
const KEY_ROW: u32 = 24;

/// The keys packed into rows of `width`: each key's row and x.
fn key_rows(keys: &[Key], width: u32) -> Vec<(u32, u32)> {
    let (mut row, mut x) = (0, 20);
    keys.iter()
        .map(|k| {
            if x > 20 && x + k.width() > width - 20 {
                (row, x) = (row + 1, 20);
            }
            let at = (row, x);
            x += k.width();
            at
        })
        .collect()
}

fn legend_height(keys: &[Key], width: u32) -> u32 {
    let rows = key_rows(keys, width).last().map_or(0, |(r, _)| r + 1);
    rows * KEY_ROW + 6
}

fn draw_legend<DB: DrawingBackend>(
    strip: &DrawingArea<DB, Shift>,
    keys: &[Key],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let width = strip.dim_in_pixel().0;
    for (key, (row, x)) in keys.iter().zip(key_rows(keys, width)) {
        let (x, y) = (x as i32, (row * KEY_ROW + KEY_ROW / 2) as i32);
        match key {
            Key::Series(k, _) => {
                let c = colour(*k);
                strip.draw(&PathElement::new(
                    vec![(x, y), (x + 24, y)],
                    c.stroke_width(2),
                ))?;
                strip.draw(&marker::<DB>(*k, (x + 12, y), c, true))?;
            }
            Key::Slo | Key::Frontier => {
                let style = match key {
                    Key::Slo => SLO_RED.stroke_width(1),
                    _ => BLACK.mix(0.5).stroke_width(1),
                };
                for s in [x, x + 10, x + 20] {
                    strip.draw(&PathElement::new(vec![(s, y), (s + 5, y)], style))?;
                }
            }
            Key::Best => strip.draw(&Circle::new((x + 12, y), 8, SLO_RED.stroke_width(2)))?,
        }
        strip.draw(&Text::new(
            key.text().to_string(),
            (x + 30, y - 7),
            ("sans-serif", 13).into_font(),
        ))?;
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
/// print and in grey, not only in colour. Hollow where `filled` is false (a search's probe
/// that missed the SLO).
fn marker<DB: DrawingBackend>(
    k: usize,
    at: (i32, i32),
    color: RGBAColor,
    filled: bool,
) -> DynElement<'static, DB, (i32, i32)> {
    let (x, y) = at;
    let style = match filled {
        true => color.filled(),
        false => color.stroke_width(2),
    };
    // A polygon is always filled: a hollow one is its outline, closed.
    let shape = |mut v: Vec<(i32, i32)>| match filled {
        true => Polygon::new(v, style).into_dyn(),
        false => {
            v.push(v[0]);
            PathElement::new(v, style).into_dyn()
        }
    };
    match k % 4 {
        0 => Circle::new((x, y), 5, style).into_dyn(),
        1 => shape(vec![(x, y - 6), (x - 6, y + 5), (x + 6, y + 5)]),
        2 => Rectangle::new([(x - 5, y - 5), (x + 5, y + 5)], style).into_dyn(),
        _ => shape(vec![(x, y - 6), (x + 6, y), (x, y + 6), (x - 6, y)]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_with_three_significant_digits_at_most() {
        assert_eq!(three_digits(60.607), "60.6");
        assert_eq!(three_digits(10f64.powf(0.5)), "3.16");
        assert_eq!(three_digits(10f64.powf(1.5)), "31.6");
        assert_eq!(three_digits(1000.0), "1000");
        assert_eq!(three_digits(2.0), "2");
        assert_eq!(three_digits(0.05), "0.05");
        assert_eq!(three_digits(150.0), "150");
        assert_eq!(amount(14_202_585.0), "14.2M");
        assert_eq!(amount(10_612.4), "10612");
    }

    #[test]
    fn the_legend_wraps_into_rows_that_fit_the_figure() {
        let keys: Vec<Key> = (0..12)
            .map(|k| Key::Series(k, format!("deployment-{k}-with-a-long-name")))
            .chain([Key::Slo, Key::Frontier, Key::Best])
            .collect();
        let rows = key_rows(&keys, 1400);
        assert!(rows.last().unwrap().0 >= 2, "{rows:?}");
        for (key, (row, x)) in keys.iter().zip(&rows) {
            assert!(
                x + key.width() <= 1400 - 20 || *x == 20,
                "{key:?} in row {row} at {x}"
            );
        }
        assert_eq!(
            legend_height(&keys, 1400),
            (rows.last().unwrap().0 + 1) * KEY_ROW + 6
        );
    }
}
