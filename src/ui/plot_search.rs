//! The capacity-search panel of `plot`: every probe on the load axis (log scale), its worst
//! measured / limit on the y axis — at or below the dashed line at 1 it met every SLO — green
//! if it passed, red if not (a saturated or failed probe sits on the top edge), numbered in the
//! order it ran, and each search's answer ringed.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::results::sweeps::Series;

/// The highest ratio drawn; probes beyond it (and those with none) sit on this edge.
const TOP: f64 = 3.0;

pub fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    series: &[Series],
) -> Result<(), String> {
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    let searches: Vec<(&str, &crate::results::index::IndexSearch)> = series
        .iter()
        .filter_map(|s| Some((s.name.as_str(), s.search.as_ref()?)))
        .collect();
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
    let unit = if over == "rate" {
        "rate (req/s)"
    } else {
        "concurrency"
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
        .x_label_formatter(&|v| format!("{:.3}", 10f64.powf(*v)))
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
        let color = Palette99::pick(i).to_rgba();
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
            chart
                .draw_series(std::iter::once(
                    EmptyElement::at(at(p))
                        + Circle::new((0, 0), 11, color.stroke_width(2))
                        + Text::new(
                            format!("answer {}", p.value),
                            (10, 6),
                            ("sans-serif", 12).into_font(),
                        ),
                ))
                .map_err(e)?;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 12))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(e)?;
    Ok(())
}
