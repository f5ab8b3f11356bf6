//! The capacity-search panel: every probe on the load axis (log scale), its worst measured /
//! limit on the y axis — at or below the dashed line at 1 it met every SLO —, filled if it
//! passed and hollow if not (a saturated or failed probe sits on the top edge), numbered in the
//! order it ran, in its series' colour (a tier's own marker), and each search's answer ringed.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::panel::{place_labels, Marks};
use super::{colour, marker, three_digits, SLO_RED};
use crate::results::index::{IndexProbe, IndexSearch};
use crate::results::sweeps::Series;

/// The highest ratio drawn; probes beyond it (and those with none) sit on this edge.
const TOP: f64 = 3.0;

pub(super) fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    series: &[Series],
) -> Result<(), String> {
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    // (series index, tier index, its name in labels, the search)
    let searches: Vec<(usize, usize, String, &IndexSearch)> = series
        .iter()
        .enumerate()
        .flat_map(|(k, s)| {
            s.searches
                .iter()
                .enumerate()
                .map(move |(t, x)| (k, t, x.tier.clone().unwrap_or_default(), x))
        })
        .collect();
    let loads = searches
        .iter()
        .flat_map(|(.., s)| s.probes.iter().map(|p| p.value));
    let (lo, hi) = loads.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let (x0, x1) = (
        (lo.max(1e-3)).log10() - 0.1,
        hi.max(lo * 1.01).log10() + 0.1,
    );
    let unit = match searches.first().map_or("rate", |(.., s)| s.over.as_str()) {
        "rate" => "rate (req/s)",
        "sessions" => "sessions at once",
        _ => "concurrency",
    };
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Capacity search: probes in the order run (filled met the SLO, hollow did not)",
            ("sans-serif", 18),
        )
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
            SLO_RED.stroke_width(1),
        ))
        .map_err(e)?;
    let mut marks = Marks::default();
    marks.first.push((x0, 1.0, "SLO".into()));
    for (k, t, tier, s) in &searches {
        probes(&mut chart, (*k, *t), tier, s, &mut marks).map_err(e)?;
    }
    place_labels(&mut chart, &marks).map_err(e)
}

/// Where a probe is drawn: its load (log), its worst ratio to the SLO (capped at `TOP`).
fn at(p: &IndexProbe) -> (f64, f64) {
    (
        p.value.max(1e-3).log10(),
        p.margin.map_or(TOP, |m| (m + 1.0).clamp(0.0, TOP)),
    )
}

/// One search's probes: joined in load order, marked, numbered; its answer ringed.
fn probes<'a, DB: DrawingBackend + 'a>(
    chart: &mut super::panel::Chart<'a, DB>,
    (k, t): (usize, usize),
    tier: &str,
    s: &IndexSearch,
    marks: &mut Marks,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let color = colour(k);
    let mut line: Vec<(f64, f64)> = s.probes.iter().map(at).collect();
    line.sort_by(|a, b| a.0.total_cmp(&b.0));
    chart.draw_series(LineSeries::new(line, color.mix(0.4).stroke_width(1)))?;
    chart.draw_series(
        s.probes
            .iter()
            .map(|p| EmptyElement::at(at(p)) + marker(k + t, (0, 0), color, p.passed)),
    )?;
    for (n, p) in s.probes.iter().enumerate() {
        let (x, y) = at(p);
        marks.points.push((x, y));
        marks.rest.push((x, y, format!("{}", n + 1)));
    }
    if let Some(p) = s
        .answer
        .and_then(|a| s.probes.iter().find(|p| p.value == a))
    {
        let (x, y) = at(p);
        chart.draw_series(std::iter::once(Circle::new(
            (x, y),
            11,
            color.stroke_width(2),
        )))?;
        let label = match tier {
            "" => format!("answer {}", three_digits(p.value)),
            t => format!("answer {} ({t})", three_digits(p.value)),
        };
        marks.rings.push((x, y));
        marks.first.push((x, y, label));
    }
    Ok(())
}

/// A load on a log axis, with three significant digits at most: `3.16`, `31.6`, `316`, `1000`.
fn load_label(v: f64) -> String {
    three_digits(10f64.powf(v))
}
