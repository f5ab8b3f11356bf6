//! One panel of the plot: every series' points of one ISL/OSL shape against one axis, and the
//! labels of its points, placed last where they cover nothing.

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::place::{Placer, Rect};
use super::{amount, colour, marker, range, tag, three_digits, Axis, PlotOptions, SLO_RED};
use crate::results::sweeps::{self, PointData, Series};

pub(super) type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// What a panel draws last: its markers (which labels avoid) and its labels, the first ones
/// placed first (they get the nearest free places).
#[derive(Default)]
pub(super) struct Marks {
    pub points: Vec<(f64, f64)>,
    /// Rings around marked points (the best in the SLO, an answer): labels keep off them too.
    pub rings: Vec<(f64, f64)>,
    pub first: Vec<(f64, f64, String)>,
    pub rest: Vec<(f64, f64, String)>,
}

pub(super) fn panel<DB: DrawingBackend>(
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
    let xs: Vec<f64> = all().filter_map(|p| axis.x(p)).collect();
    let window = x_window(axis, &xs, o);
    let (x0, x1) = window.range;
    let (_, y1) = range(all().filter_map(|p| o.y(p, axis)));
    let (what, y_desc) = match (axis.pooled(), o.per_dollar) {
        (true, _) => ("texts per second", "texts/s"),
        (false, true) => ("tokens per $", "output tokens per USD"),
        (false, false) => ("throughput per GPU", "output tok/s per GPU"),
    };
    let (x_name, x_desc) = axis.names();
    let x_desc = match window.clipped {
        true => format!("{x_desc}; beyond 2× the SLO on the edge"),
        false => x_desc.to_string(),
    };
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
        .x_label_formatter(&|v| three_digits(*v))
        .y_label_formatter(&|v| amount(*v))
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .draw()
        .map_err(e)?;

    let mut marks = Marks::default();
    // The SLO's bound on this panel's axis.
    if let Some((b, label)) = axis.bound(o).filter(|(b, _)| (x0..x1).contains(b)) {
        chart
            .draw_series(DashedLineSeries::new(
                vec![(b, 0.0), (b, y1)],
                6,
                4,
                SLO_RED.stroke_width(1),
            ))
            .map_err(e)?;
        marks.first.push((b, y1 * 0.97, label.to_string()));
    }
    for (i, pts) in of_shape.iter().enumerate() {
        if !pts.is_empty() {
            draw_one(&mut chart, pts, i, axis, o, &window, &mut marks).map_err(e)?;
        }
    }
    place_labels(&mut chart, &marks).map_err(e)
}

/// A panel's x range, and whether it was cut short.
pub(super) struct Window {
    pub range: (f64, f64),
    pub clipped: bool,
}

impl Window {
    /// Where a point at `x` is drawn: on the right edge when it lies beyond.
    fn x(&self, x: f64) -> f64 {
        let (x0, x1) = self.range;
        match self.clipped {
            true => x.min(x1 - (x1 - x0) * 0.01),
            false => x,
        }
    }

    fn beyond(&self, x: f64) -> bool {
        self.clipped && x > self.range.1
    }
}

/// The x range of a panel: every point's, except that a TTFT axis with an SLO stops at twice
/// the SLO when two points or more lie within that — one saturated probe's ten seconds of
/// TTFT would otherwise press every point that matters against the left edge.
pub(super) fn x_window(axis: Axis, xs: &[f64], o: &PlotOptions) -> Window {
    let whole = Window {
        range: range(xs.iter().copied()),
        clipped: false,
    };
    let Some((bound, _)) = axis.bound(o).filter(|_| axis == Axis::Ttft) else {
        return whole;
    };
    let limit = 2.0 * bound;
    let inside: Vec<f64> = xs.iter().copied().filter(|&x| x <= limit).collect();
    if inside.len() < 2 || inside.len() == xs.len() {
        return whole;
    }
    let (x0, x1) = range(inside.into_iter().chain([bound]));
    Window {
        range: (x0, x1.min(limit * 1.05)),
        clipped: true,
    }
}

/// A latency as a label: `850 ms`, `10.2 s`.
fn ms(v: f64) -> String {
    match v >= 1000.0 {
        true => format!("{:.1} s", v / 1000.0),
        false => format!("{v:.0} ms"),
    }
}

/// The k-th series of a panel: its points joined and marked, their labels (a point beyond the
/// clipped axis says its value), its frontier (a throughput panel) and its best point within
/// the SLO ringed.
fn draw_one<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    pts: &[&PointData],
    k: usize,
    axis: Axis,
    o: &PlotOptions,
    window: &Window,
    marks: &mut Marks,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let color = colour(k);
    let at = |p: &PointData| Some((window.x(axis.x(p)?), o.y(p, axis)?));
    let line: Vec<(f64, f64)> = pts.iter().filter_map(|p| at(p)).collect();
    chart.draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))?;
    chart.draw_series(
        line.iter()
            .map(|&(x, y)| EmptyElement::at((x, y)) + marker(k, (0, 0), color, true)),
    )?;
    for p in pts {
        let (Some(xy), Some(x)) = (at(p), axis.x(p)) else {
            continue;
        };
        marks.points.push(xy);
        let text = match window.beyond(x) {
            true => format!("{} → {}", tag(p), ms(x)),
            false => tag(p),
        };
        marks.rest.push((xy.0, xy.1, text));
    }
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
        if let Some((x, y)) = best.and_then(at) {
            chart.draw_series(std::iter::once(Circle::new(
                (x, y),
                11,
                SLO_RED.stroke_width(2),
            )))?;
            marks.rings.push((x, y));
            marks
                .first
                .push((x, y, format!("best in SLO: {}", amount(y))));
        }
    }
    Ok(())
}

/// Draws the panel's labels where they cover no marker, no other label, and stay inside.
pub(super) fn place_labels<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    marks: &Marks,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let style: TextStyle = ("sans-serif", 12).into_font().into();
    let area = chart.plotting_area();
    let (xs, ys) = area.get_pixel_range();
    let mut placer = Placer::new(Rect {
        x0: xs.start,
        y0: ys.start,
        x1: xs.end,
        y1: ys.end,
    });
    for p in &marks.points {
        placer.block_point(chart.backend_coord(p), 7);
    }
    for p in &marks.rings {
        placer.block_point(chart.backend_coord(p), 13);
    }
    let mut placed = Vec::new();
    for (x, y, text) in marks.first.iter().chain(&marks.rest) {
        let (w, h) = area.estimate_text_size(text, &style)?;
        let off = placer.place(chart.backend_coord(&(*x, *y)), (w as i32, h as i32));
        placed.push(EmptyElement::at((*x, *y)) + Text::new(text.clone(), off, style.clone()));
    }
    chart.draw_series(placed)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slo(ttft: f64) -> PlotOptions {
        PlotOptions {
            slo_ttft_ms: Some(ttft),
            ..PlotOptions::default()
        }
    }

    #[test]
    fn a_ttft_axis_stops_at_twice_the_slo_and_what_lies_beyond_sits_on_the_edge() {
        let w = x_window(Axis::Ttft, &[80.0, 200.0, 420.0, 10_000.0], &slo(500.0));
        assert!(w.clipped);
        let (x0, x1) = w.range;
        assert!((500.0..=1050.0).contains(&x1), "{x1}");
        assert!(x0 < 80.0);
        assert!(w.beyond(10_000.0) && !w.beyond(420.0));
        assert!(w.x(10_000.0) < x1 && w.x(10_000.0) > 420.0);
    }

    #[test]
    fn an_axis_is_whole_without_outliers_without_an_slo_or_with_too_few_points_inside() {
        let o = slo(500.0);
        assert!(!x_window(Axis::Ttft, &[80.0, 200.0, 900.0], &o).clipped);
        assert!(!x_window(Axis::Ttft, &[80.0, 5000.0, 9000.0], &o).clipped);
        let none = PlotOptions::default();
        let w = x_window(Axis::Ttft, &[80.0, 200.0, 10_000.0], &none);
        assert!(!w.clipped && w.range.1 > 10_000.0);
        let tpot = PlotOptions {
            slo_tpot_ms: Some(50.0),
            ..PlotOptions::default()
        };
        assert!(!x_window(Axis::Interactivity, &[1.0, 30.0, 900.0], &tpot).clipped);
    }

    #[test]
    fn latencies_read_in_ms_then_seconds() {
        assert_eq!(ms(850.4), "850 ms");
        assert_eq!(ms(10_240.0), "10.2 s");
    }
}
