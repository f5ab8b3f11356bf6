//! The live view's charts: TTFT and ITL p50 / p99 second by second, the offered load (requests
//! sent per second, which shows a ramp or a trace's shape) with the pacer's lag, and TTFT by
//! turn for conversations. [`Series`] is the aggregator's side, bounded in memory (per second
//! at most [`PER_SECOND_CAP`] samples per figure, [`HISTORY_S`] seconds kept); [`Charts`] is
//! the plain numbers the widget draws.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::symbols::Marker;
use ratatui::text::Line;
use ratatui::widgets::{Axis, Block, Borders, Chart, Dataset, GraphType, Paragraph, Widget};

use crate::metrics::event::RequestRecord;
use crate::metrics::summary::percentile;

/// Seconds of chart history.
const HISTORY_S: u64 = 600;
/// Samples per second and figure kept for its percentiles.
const PER_SECOND_CAP: usize = 4096;

/// One second's samples, until the second is complete.
#[derive(Default)]
struct Second {
    ttft: Vec<f64>,
    itl: Vec<f64>,
    sent: u64,
    lag_max: Option<f64>,
}

/// One complete second, as drawn.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Point {
    ttft: [Option<f64>; 2],
    itl: [Option<f64>; 2],
    sent: u64,
    lag_max: Option<f64>,
}

/// What the charts have seen so far.
#[derive(Default)]
pub struct Series {
    /// The latest second a request ended in: the seconds before it are complete.
    latest: u64,
    open: BTreeMap<u64, Second>,
    done: BTreeMap<u64, Point>,
    by_turn: BTreeMap<u32, Histogram<u64>>,
    open_loop: bool,
    /// A pooling API's requests: no first token; E2EL is charted in TTFT's place.
    pooled: bool,
}

fn push(v: &mut Vec<f64>, x: f64) {
    if v.len() < PER_SECOND_CAP && x.is_finite() {
        v.push(x);
    }
}

impl Series {
    /// One finished request, filed under the second it ended in (latencies) and the second it
    /// was sent in (offered load, lag).
    pub fn on_record(&mut self, r: &RequestRecord) {
        let second = |ms: f64| (ms.max(0.0) / 1e3) as u64;
        let sent = self.open.entry(second(r.sent_ms)).or_default();
        sent.sent += 1;
        if let Some(s) = r.scheduled_ms {
            self.open_loop = true;
            let lag = (r.sent_ms - s).max(0.0);
            sent.lag_max = Some(sent.lag_max.map_or(lag, |m| m.max(lag)));
        }
        self.latest = self.latest.max(second(r.end_ms()));
        self.pooled |= r.inputs.is_some();
        if r.ok() {
            let end = self.open.entry(second(r.end_ms())).or_default();
            let first = match r.inputs {
                Some(_) => Some(r.e2el_ms),
                None => r.ttft_ms,
            };
            push(&mut end.ttft, first.unwrap_or(f64::NAN));
            for g in r.itl_ms.as_deref().unwrap_or_default() {
                push(&mut end.itl, *g);
            }
            if let (Some(t), Some(ttft)) = (r.turn, r.ttft_ms) {
                let h = self.by_turn.entry(t.min(63)).or_insert_with(|| {
                    Histogram::new(3).unwrap_or_else(|_| Histogram::new(2).expect("2 sigfigs"))
                });
                h.auto(true);
                let _ = h.record((ttft * 1e3).max(1.0) as u64);
            }
        }
    }

    /// Closes every second before the latest (which is still filling) and returns the
    /// numbers to draw.
    pub fn charts(&mut self) -> Charts {
        let complete: Vec<u64> = self.open.range(..self.latest).map(|(s, _)| *s).collect();
        for s in complete {
            if let Some(mut sec) = self.open.remove(&s) {
                let p = |v: &mut Vec<f64>| -> [Option<f64>; 2] {
                    v.sort_by(f64::total_cmp);
                    [percentile(v, 50.0), percentile(v, 99.0)]
                };
                // A second closes again when a long request sent in it ends later: its
                // sends add up, and its latencies stay those of the requests that ended in it.
                let prev = self.done.get(&s).copied().unwrap_or_default();
                let keep = |new: [Option<f64>; 2], old| if new[0].is_some() { new } else { old };
                self.done.insert(
                    s,
                    Point {
                        ttft: keep(p(&mut sec.ttft), prev.ttft),
                        itl: keep(p(&mut sec.itl), prev.itl),
                        sent: prev.sent + sec.sent,
                        lag_max: match (sec.lag_max, prev.lag_max) {
                            (Some(a), Some(b)) => Some(a.max(b)),
                            (a, b) => a.or(b),
                        },
                    },
                );
            }
        }
        while self.done.len() as u64 > HISTORY_S {
            self.done.pop_first();
        }
        let line = |f: &dyn Fn(&Point) -> Option<f64>| -> Vec<(f64, f64)> {
            self.done
                .iter()
                .filter_map(|(s, p)| f(p).map(|v| (*s as f64, v)))
                .collect()
        };
        Charts {
            ttft: [line(&|p| p.ttft[0]), line(&|p| p.ttft[1])],
            itl: [line(&|p| p.itl[0]), line(&|p| p.itl[1])],
            sent: line(&|p| Some(p.sent as f64)),
            lag: line(&|p| p.lag_max),
            open_loop: self.open_loop,
            pooled: self.pooled,
            by_turn: self
                .by_turn
                .iter()
                .map(|(t, h)| {
                    let q = |x: f64| h.value_at_quantile(x) as f64 / 1e3;
                    (*t, h.len(), q(0.5), q(0.99))
                })
                .collect(),
        }
    }
}

/// The charts' numbers: (second, value) lines.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Charts {
    /// p50 and p99 per second, ms.
    pub ttft: [Vec<(f64, f64)>; 2],
    pub itl: [Vec<(f64, f64)>; 2],
    /// Requests sent per second (by send time; a second counts once its requests finished).
    pub sent: Vec<(f64, f64)>,
    /// Worst pacer lag per second, ms (open loop and traces).
    pub lag: Vec<(f64, f64)>,
    pub open_loop: bool,
    /// Per turn index: requests, TTFT p50 and p99 (ms).
    pub by_turn: Vec<(u32, u64, f64, f64)>,
    /// A pooling API: `ttft` holds E2EL (there is no first token) and `itl` nothing.
    pub pooled: bool,
}

impl Charts {
    pub fn is_empty(&self) -> bool {
        self.sent.is_empty()
    }
}

fn bounds(lines: &[&[(f64, f64)]]) -> ([f64; 2], [f64; 2]) {
    let pts = lines.iter().flat_map(|l| l.iter());
    let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, 0.0f64);
    for (x, y) in pts {
        (x0, x1, y1) = (x0.min(*x), x1.max(*x), y1.max(*y));
    }
    if x0 > x1 {
        (x0, x1) = (0.0, 1.0);
    }
    ([x0, x1.max(x0 + 1.0)], [0.0, (y1 * 1.1).max(1e-3)])
}

fn num(v: f64) -> String {
    match v {
        v if v >= 100.0 => format!("{v:.0}"),
        v if v >= 1.0 => format!("{v:.1}"),
        v => format!("{v:.2}"),
    }
}

/// One line of a chart: its name, its (second, value) points, its colour.
type Line2<'a> = (&'a str, &'a [(f64, f64)], Color);

/// A two-line chart (p50, p99 or any pair) over seconds.
fn chart(title: &str, lines: [Line2<'_>; 2], area: Rect, buf: &mut Buffer) {
    let (x, y) = bounds(&[lines[0].1, lines[1].1]);
    let sets = lines
        .iter()
        .filter(|(_, d, _)| !d.is_empty())
        .map(|(name, d, c)| {
            Dataset::default()
                .name(*name)
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(Style::new().fg(*c))
                .data(d)
        })
        .collect();
    Chart::new(sets)
        .block(Block::new().borders(Borders::TOP).title(title.to_string()))
        .x_axis(
            Axis::default()
                .bounds(x)
                .labels([format!("{:.0}s", x[0]), format!("{:.0}s", x[1])]),
        )
        .y_axis(
            Axis::default()
                .bounds(y)
                .labels(["0".to_string(), num(y[1] / 2.0), num(y[1])]),
        )
        // The title names the lines; a legend box would hide the newest seconds.
        .legend_position(None)
        .render(area, buf);
}

impl Widget for &Charts {
    /// TTFT and ITL side by side; then the offered load (open loop) or TTFT by turn
    /// (conversations) when there is one, each sized to what the terminal has.
    fn render(self, area: Rect, buf: &mut Buffer) {
        let third = !self.by_turn.is_empty() || self.open_loop;
        let n = if third { 3 } else { 2 };
        let cols = Layout::horizontal(vec![Constraint::Ratio(1, n); n as usize]).split(area);
        let (g, r) = (Color::Green, Color::Red);
        let (first, gaps) = match self.pooled {
            true => (
                " E2EL ms: p50 green, p99 red (not streamed) ",
                " ITL: none (not streamed) ",
            ),
            false => (" TTFT ms: p50 green, p99 red ", " ITL ms: p50, p99 "),
        };
        chart(
            first,
            [("p50", &self.ttft[0], g), ("p99", &self.ttft[1], r)],
            cols[0],
            buf,
        );
        chart(
            gaps,
            [("p50", &self.itl[0], g), ("p99", &self.itl[1], r)],
            cols[1],
            buf,
        );
        if !self.by_turn.is_empty() {
            by_turn(&self.by_turn, cols[2], buf);
        } else if self.open_loop {
            let lag = format!(
                " sent req/s · worst lag {} ms ",
                self.lag.last().map_or("–".into(), |l| num(l.1))
            );
            let (_, y) = bounds(&[&self.sent]);
            let (_, ly) = bounds(&[&self.lag]);
            // The lag, scaled onto the sent axis (its own maximum is in the title).
            let scaled: Vec<(f64, f64)> = self
                .lag
                .iter()
                .map(|(s, l)| (*s, l / ly[1].max(1e-9) * y[1]))
                .collect();
            chart(
                &lag,
                [
                    ("sent", &self.sent, Color::Cyan),
                    ("lag", &scaled, Color::Yellow),
                ],
                cols[2],
                buf,
            );
        }
    }
}

/// TTFT by turn: one bar per turn index, p50 with its p99.
fn by_turn(turns: &[(u32, u64, f64, f64)], area: Rect, buf: &mut Buffer) {
    let block = Block::new()
        .borders(Borders::TOP | Borders::LEFT)
        .title(" TTFT by turn: p50 / p99 ms (n) ");
    let inner = block.inner(area);
    block.render(area, buf);
    let max = turns.iter().map(|t| t.2).fold(1e-9, f64::max);
    // The label takes 26 columns and the count "  (n)" its digits and 4: the bar the rest.
    let count_w = turns
        .iter()
        .map(|t| t.1.to_string().len())
        .max()
        .unwrap_or(1)
        + 4;
    let bar_w = (inner.width as usize).saturating_sub(26 + count_w) as f64;
    let lines: Vec<Line> = turns
        .iter()
        .take(inner.height as usize)
        .map(|(t, n, p50, p99)| {
            let w = ((p50 / max) * bar_w).round() as usize;
            Line::from(format!(
                "turn {t:<2} {:>7} / {:<7} {}  ({n})",
                num(*p50),
                num(*p99),
                "█".repeat(w.max(1))
            ))
        })
        .collect();
    Paragraph::new(lines).render(inner, buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(sent_ms: f64, ttft: f64, turn: Option<u32>) -> RequestRecord {
        RequestRecord {
            sent_ms,
            scheduled_ms: Some(sent_ms - 1.0),
            ttft_ms: Some(ttft),
            e2el_ms: ttft + 10.0,
            output_tokens: 3,
            itl_ms: Some(vec![5.0, 5.0]),
            turn,
            ..RequestRecord::default()
        }
    }

    #[test]
    fn seconds_close_once_past_and_turns_are_kept_apart() {
        let mut s = Series::default();
        // Sent over 0–990 ms; the last ones end in second 1.
        for i in 0..100 {
            s.on_record(&rec(i as f64 * 10.0, 10.0 + (i % 10) as f64, Some(i % 3)));
        }
        let c = s.charts();
        assert_eq!(c.sent, [(0.0, 100.0)], "second 1 is still open");
        assert_eq!(c.ttft[0].len(), 1);
        assert!(c.open_loop);
        assert_eq!(c.lag, [(0.0, 1.0)]);
        s.on_record(&rec(5000.0, 10.0, None));
        // A long request sent in second 0 ends in second 6: second 0 counts it, keeps its TTFT.
        let mut long = rec(900.0, 10.0, None);
        long.e2el_ms = 5200.0;
        s.on_record(&long);
        let c = s.charts();
        assert_eq!(c.sent, [(0.0, 101.0), (1.0, 0.0), (5.0, 1.0)]);
        assert!(c.ttft[0][0].1 > 10.0);
        assert_eq!(c.itl[1], [(0.0, 5.0), (1.0, 5.0), (5.0, 5.0)]);
        assert_eq!(c.by_turn.iter().map(|t| t.0).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(c.by_turn.iter().map(|t| t.1).sum::<u64>(), 100);
    }

    #[test]
    fn the_charts_fill_the_space_they_are_given() {
        let mut s = Series::default();
        for i in 0..3000 {
            s.on_record(&rec(i as f64 * 2.0, 10.0 + (i % 50) as f64, Some(i % 4)));
        }
        let c = s.charts();
        let area = Rect::new(0, 0, 120, 20);
        let mut buf = Buffer::empty(area);
        (&c).render(area, &mut buf);
        let text: String = (0..area.height)
            .map(|y| {
                (0..area.width)
                    .map(|x| buf[(x, y)].symbol().to_string())
                    .collect::<String>()
                    + "\n"
            })
            .collect();
        assert!(
            text.contains("TTFT ms: p50") && text.contains("ITL ms: p50"),
            "{text}"
        );
        assert!(
            text.contains("TTFT by turn") && text.contains("turn 3"),
            "{text}"
        );
        // Braille dots of the lines, in every chart's body.
        let dots = text
            .chars()
            .filter(|c| ('\u{2801}'..='\u{28FF}').contains(c))
            .count();
        assert!(dots > 20, "{text}");
    }

    #[test]
    fn each_turn_shows_its_count_beside_its_bar() {
        // The slowest turn's bar is the longest: its count must still fit the panel.
        let turns = [(0, 1234, 60.2, 61.0), (1, 34, 8.5, 17.3), (2, 5, 8.8, 10.9)];
        let area = Rect::new(0, 0, 52, 6);
        let mut buf = Buffer::empty(area);
        by_turn(&turns, area, &mut buf);
        let lines: Vec<String> = (0..area.height)
            .map(|y| (0..area.width).map(|x| buf[(x, y)].symbol()).collect())
            .collect();
        for (t, n, ..) in turns {
            let line = lines
                .iter()
                .find(|l| l.contains(&format!("turn {t} ")))
                .unwrap_or_else(|| panic!("turn {t} in {lines:#?}"));
            assert!(line.contains(&format!("({n})")), "{line}");
        }
    }
}
