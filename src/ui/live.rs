//! The live view's state and its rendering. [`Live`] is fed by the aggregator (request records,
//! scrapes, phases) and turns itself into a [`Snapshot`] of plain numbers; `impl Widget for
//! &Snapshot` only draws that snapshot, so the view can be tested with ratatui's TestBackend
//! and never changes anything.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, Cell, Clear, Gauge, Paragraph, Row, Sparkline, Table, Widget, Wrap,
};

use crate::config::FrameworkKind;
use crate::metrics::event::{RequestRecord, ServerSample};
use crate::metrics::summary::percentile;

/// How far back the "recent" latency percentiles look.
pub const WINDOW: Duration = Duration::from_secs(10);
/// At most this many values per window series (a bound on memory and redraw cost).
const WINDOW_CAP: usize = 50_000;
/// Seconds of throughput history kept for the sparklines.
const HISTORY_S: u64 = 120;

/// Everything the view shows, as plain values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub title: String,
    pub phase: String,
    pub elapsed: Duration,
    pub pod: Option<String>,
    pub cost_usd: Option<f64>,
    /// Requests the workload will send, when it is count-bounded.
    pub planned: Option<u64>,
    pub done: u64,
    pub failed: u64,
    pub in_flight: u64,
    /// Completed requests and output tokens per second, oldest first (last completed seconds).
    pub req_per_s: Vec<u64>,
    pub tok_per_s: Vec<u64>,
    /// TTFT, ITL, E2EL: (name, recent p50, recent p99, overall p50, overall p99), in ms.
    pub latency: Vec<(String, [Option<f64>; 4])>,
    pub server: Option<ServerPanel>,
    /// The latest request errors, newest last.
    pub errors: Vec<String>,
    /// The latest notices (pod created, budget, …), newest last.
    pub notices: Vec<String>,
    pub help: bool,
    /// Whether a workload is part of this view (`monitor` has none).
    pub workload: bool,
    /// TTFT / ITL over time, offered load, TTFT by turn.
    pub charts: super::charts::Charts,
    /// The provider's latest GPU gauges: (utilisation, memory use) percent per GPU.
    pub gpus: Vec<(Option<f64>, Option<f64>)>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerPanel {
    pub url: String,
    /// Whose metric names were found (`None`: not recognised yet).
    pub framework: Option<FrameworkKind>,
    pub last: ServerSample,
    pub scrapes: u64,
    pub gaps: u64,
    /// The recent scrapes' gauges, oldest first (`monitor` charts them).
    pub history: ServerHistory,
    /// The GPU's peaks, for MFU / MBU beside the engine's achieved rates.
    pub gpu_peak: Option<crate::metrics::gpus::Peak>,
    /// The workload's ideal prefix-cache hit rate so far, beside the server's.
    pub ideal_hit_rate: Option<f64>,
}

/// A server's gauges over its last `HISTORY_S` good scrapes, oldest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerHistory {
    pub generation_tok_s: Vec<u64>,
    pub prompt_tok_s: Vec<u64>,
    pub running: Vec<u64>,
    pub waiting: Vec<u64>,
    /// KV-cache use, percent.
    pub kv_pct: Vec<u64>,
}

impl ServerHistory {
    fn push(&mut self, s: &ServerSample) {
        let at = |v: Option<f64>| v.map_or(0, |x| x.max(0.0).round() as u64);
        for (q, v) in [
            (&mut self.generation_tok_s, at(s.generation_tokens_per_s)),
            (&mut self.prompt_tok_s, at(s.prompt_tokens_per_s)),
            (&mut self.running, at(s.running)),
            (&mut self.waiting, at(s.waiting)),
            (&mut self.kv_pct, at(s.kv_cache_usage.map(|k| k * 100.0))),
        ] {
            if q.len() >= HISTORY_S as usize {
                q.remove(0);
            }
            q.push(v);
        }
    }
}

/// The aggregator's side: what has happened so far, bounded in memory.
pub struct Live {
    title: String,
    phase: String,
    planned: Option<u64>,
    pod: Option<String>,
    cost_usd: Option<f64>,
    done: u64,
    failed: u64,
    per_second: BTreeMap<u64, (u64, u64)>,
    window: VecDeque<(Instant, f64, f64)>,
    window_itl: VecDeque<(Instant, f64)>,
    ttft: Histogram<u64>,
    itl: Histogram<u64>,
    e2el: Histogram<u64>,
    server: Option<ServerPanel>,
    errors: VecDeque<String>,
    workload: bool,
    series: super::charts::Series,
    gpus: Vec<(Option<f64>, Option<f64>)>,
    /// The GPU's peaks, for MFU / MBU beside the engine's achieved rates.
    gpu_peak: Option<crate::metrics::gpus::Peak>,
    /// Σ ideal cached tokens and Σ prompt tokens of the requests that know theirs (the ideal
    /// prefix-cache hit rate so far).
    ideal: (u64, u64),
}

fn histogram() -> Histogram<u64> {
    // Microseconds, 3 significant digits (0.1 % precision), auto-resizing.
    let mut h = Histogram::new(3).unwrap_or_else(|_| Histogram::new(2).expect("2 sigfigs"));
    h.auto(true);
    h
}

fn push_capped<T>(q: &mut VecDeque<T>, v: T) {
    if q.len() >= WINDOW_CAP {
        q.pop_front();
    }
    q.push_back(v);
}

impl Live {
    pub fn new(title: impl Into<String>, planned: Option<u64>, workload: bool) -> Self {
        Self {
            title: title.into(),
            phase: "starting".into(),
            planned,
            pod: None,
            cost_usd: None,
            done: 0,
            failed: 0,
            per_second: BTreeMap::new(),
            window: VecDeque::new(),
            window_itl: VecDeque::new(),
            ttft: histogram(),
            itl: histogram(),
            e2el: histogram(),
            server: None,
            errors: VecDeque::new(),
            workload,
            series: super::charts::Series::default(),
            gpus: Vec::new(),
            gpu_peak: None,
            ideal: (0, 0),
        }
    }

    /// The GPU the server runs on (its name as the provider gives it), for MFU and MBU.
    pub fn set_gpu(&mut self, gpu_type: Option<&str>) {
        self.gpu_peak = gpu_type.and_then(crate::metrics::gpus::peak);
    }

    /// A new workload on the same server (the next point of a sweep): counters start over.
    pub fn start_point(&mut self, point: Option<String>, planned: Option<u64>) {
        let title = self
            .title
            .split(" · point ")
            .next()
            .unwrap_or_default()
            .to_string();
        *self = Self {
            title: match point {
                Some(p) => format!("{title} · {p}"),
                None => title,
            },
            pod: self.pod.take(),
            cost_usd: self.cost_usd,
            ..Self::new("", planned, self.workload)
        };
    }

    pub fn set_phase(&mut self, phase: impl Into<String>) {
        self.phase = phase.into();
    }

    pub fn set_pod(&mut self, pod: Option<String>, cost_usd: Option<f64>) {
        self.pod = pod;
        self.cost_usd = cost_usd;
    }

    /// One finished request; `gaps` are its inter-token gaps (ms), `now` when it arrived here.
    /// One finished request (its gaps still in `itl_ms`, as the collector has not taken them).
    pub fn on_record(&mut self, r: &RequestRecord, now: Instant) {
        let gaps = r.itl_ms.as_deref().unwrap_or_default();
        let second = ((r.sent_ms + r.e2el_ms).max(0.0) / 1e3) as u64;
        let b = self.per_second.entry(second).or_default();
        self.series.on_record(r);
        match &r.error {
            Some(e) => {
                self.failed += 1;
                if self.errors.len() >= 5 {
                    self.errors.pop_front();
                }
                self.errors
                    .push_back(format!("#{} {}: {}", r.id, e.kind.as_str(), e.message));
            }
            None => {
                self.done += 1;
                b.0 += 1;
                // A pooling API's texts in place of output tokens (it has none).
                b.1 += r.inputs.map_or(r.output_tokens, |n| n) as u64;
                if let (Some(c), Some(i)) = (r.ideal_cached_tokens, r.input_tokens) {
                    self.ideal.0 += u64::from(c);
                    self.ideal.1 += u64::from(i);
                }
                let us = |ms: f64| (ms * 1e3).max(0.0) as u64;
                let ttft = r.ttft_ms.unwrap_or(f64::NAN);
                if r.ttft_ms.is_some() {
                    let _ = self.ttft.record(us(ttft));
                }
                let _ = self.e2el.record(us(r.e2el_ms));
                push_capped(&mut self.window, (now, ttft, r.e2el_ms));
                for g in gaps {
                    let _ = self.itl.record(us(*g));
                    push_capped(&mut self.window_itl, (now, *g));
                }
            }
        }
        while self.per_second.len() as u64 > HISTORY_S + 1 {
            self.per_second.pop_first();
        }
    }

    /// The ideal prefix-cache hit rate of the requests so far, when they know theirs.
    fn ideal_rate(&self) -> Option<f64> {
        let (cached, input) = self.ideal;
        (input > 0).then(|| cached as f64 / input as f64)
    }

    /// The provider's GPU gauges (RunPod's `runtime.gpus`).
    pub fn on_gpu(&mut self, gpus: &[(Option<f64>, Option<f64>)]) {
        self.gpus = gpus.to_vec();
    }

    /// One scrape of the server's `/metrics` at `url`.
    pub fn on_server(&mut self, url: &str, framework: Option<FrameworkKind>, s: &ServerSample) {
        let p = self.server.get_or_insert_with(|| ServerPanel {
            url: url.to_string(),
            ..ServerPanel::default()
        });
        p.framework = framework;
        p.scrapes += 1;
        if s.error.is_some() {
            p.gaps += 1;
            // Keep the last good gauges on screen, with the gap counted and its reason shown.
            p.last.error = s.error.clone();
            return;
        }
        p.last = s.clone();
        p.history.push(s);
    }

    /// The numbers to draw now. `in_flight` comes from the executor's counters.
    pub fn snapshot(&mut self, now: Instant, in_flight: u64, notices: Vec<String>) -> Snapshot {
        let cutoff = now.checked_sub(WINDOW).unwrap_or(now);
        while self.window.front().is_some_and(|w| w.0 < cutoff) {
            self.window.pop_front();
        }
        while self.window_itl.front().is_some_and(|w| w.0 < cutoff) {
            self.window_itl.pop_front();
        }
        let recent = |mut v: Vec<f64>| -> [Option<f64>; 2] {
            v.retain(|x| x.is_finite());
            v.sort_by(f64::total_cmp);
            [percentile(&v, 50.0), percentile(&v, 99.0)]
        };
        let overall = |h: &Histogram<u64>| -> [Option<f64>; 2] {
            if h.is_empty() {
                [None, None]
            } else {
                [
                    Some(h.value_at_quantile(0.5) as f64 / 1e3),
                    Some(h.value_at_quantile(0.99) as f64 / 1e3),
                ]
            }
        };
        let row = |name: &str, r: [Option<f64>; 2], o: [Option<f64>; 2]| {
            (name.to_string(), [r[0], r[1], o[0], o[1]])
        };
        let latency = vec![
            row(
                "TTFT",
                recent(self.window.iter().map(|w| w.1).collect()),
                overall(&self.ttft),
            ),
            row(
                "ITL",
                recent(self.window_itl.iter().map(|w| w.1).collect()),
                overall(&self.itl),
            ),
            row(
                "E2EL",
                recent(self.window.iter().map(|w| w.2).collect()),
                overall(&self.e2el),
            ),
        ];
        // The last second is still filling: leave it out of the sparklines.
        let complete: Vec<(u64, u64)> = match self.per_second.last_key_value() {
            Some((&last, _)) => {
                let first = last.saturating_sub(HISTORY_S);
                (first..last)
                    .map(|s| self.per_second.get(&s).copied().unwrap_or_default())
                    .collect()
            }
            None => Vec::new(),
        };
        Snapshot {
            title: self.title.clone(),
            phase: self.phase.clone(),
            elapsed: Duration::ZERO,
            pod: self.pod.clone(),
            cost_usd: self.cost_usd,
            planned: self.planned,
            done: self.done,
            failed: self.failed,
            in_flight,
            req_per_s: complete.iter().map(|c| c.0).collect(),
            tok_per_s: complete.iter().map(|c| c.1).collect(),
            latency,
            server: self.server.clone().map(|mut p| {
                p.gpu_peak = self.gpu_peak;
                p.ideal_hit_rate = self.ideal_rate();
                p
            }),
            errors: self.errors.iter().cloned().collect(),
            notices,
            help: false,
            workload: self.workload,
            charts: self.series.charts(),
            gpus: self.gpus.clone(),
        }
    }
}

fn ms(v: Option<f64>) -> String {
    match v {
        Some(x) if x >= 100.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.2}"),
        None => "–".into(),
    }
}

fn pct(v: Option<f64>) -> String {
    v.map(|x| format!("{:.1}%", x * 100.0))
        .unwrap_or_else(|| "–".into())
}

/// A percentage already in percent (the provider's gauges).
fn pct100(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.0}%")).unwrap_or_else(|| "–".into())
}

fn whole(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.0}")).unwrap_or_else(|| "–".into())
}

fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

const HELP: &str = "q       stop sending, let requests in flight finish, save (same as Ctrl-C)\n\
Ctrl-C  the same; a second Ctrl-C saves at once\n\
?       show or hide this help\n\n\
recent = the last 10 s; overall = since the timed window started (0.1 % precision).\n\
Charts: per second, p50 green, p99 red; sent req/s cyan, the pacer's worst lag yellow.\n\
Server gauges come from the server's /metrics; a gap is a scrape that failed or was late.";

impl Widget for &Snapshot {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let title = Line::from(vec![
            Span::styled(" llm-inf-bench ", Style::new().bold()),
            Span::raw(format!("· {} ", self.title)),
        ]);
        let status =
            Line::from(format!(" {} {} ", self.phase, clock(self.elapsed))).right_aligned();
        let outer = Block::new()
            .borders(Borders::ALL)
            .title(title)
            .title(status)
            .title_bottom(Line::from(" q stop & save · ? help ").dim());
        let inner = outer.inner(area);
        outer.render(area, buf);

        // A short terminal (80×24) gets the compact layout: two lines of progress, three of
        // server, a single line of notes, so the charts keep their rows.
        let compact = inner.height < COMPACT_BELOW;
        let server_h = match (&self.server, compact) {
            (None, _) => 0,
            (Some(_), true) => 4,
            (Some(_), false) => 5,
        };
        let (head_h, mid_h) = match (self.workload, compact) {
            (true, true) => (2, 7),
            (true, false) => (3, 7),
            // `monitor`: no pod, no progress; the server panel and its history.
            (false, _) => (0, 0),
        };
        let [head, mid, server, rest] = Layout::vertical([
            Constraint::Length(head_h),
            Constraint::Length(mid_h),
            Constraint::Length(server_h),
            Constraint::Min(0),
        ])
        .areas(inner);
        self.render_progress(head, buf);
        if self.workload {
            // Throughput sparklines | latency table.
            let [left, right] =
                Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)])
                    .areas(mid);
            self.render_throughput(left, buf);
            self.render_latency(right, buf);
        }
        if let Some(s) = &self.server {
            s.render_panel(&self.gpus, server, buf);
        }
        self.render_notes(rest, compact, buf);
        if self.help {
            render_help(area, buf);
        }
    }
}

/// Inner heights below this draw the compact layout.
const COMPACT_BELOW: u16 = 28;

impl Snapshot {
    /// Pod, cost, progress.
    fn render_progress(&self, head: Rect, buf: &mut Buffer) {
        // Pod, cost, progress.
        let pod = self.pod.clone().unwrap_or_else(|| "no pod".into());
        let cost = self
            .cost_usd
            .map(|c| format!("${c:.2} so far"))
            .unwrap_or_default();
        let compact = head.height == 2;
        let [line1, line2, line3] = match compact {
            true => {
                let [a, b] = Layout::vertical([Constraint::Length(1); 2]).areas(head);
                [a, b, a]
            }
            false => Layout::vertical([Constraint::Length(1); 3]).areas(head),
        };
        if !compact {
            Paragraph::new(format!("{pod}   {cost}")).render(line1, buf);
        }
        if self.workload {
            let finished = self.done + self.failed;
            let label = match self.planned {
                Some(n) => format!("{finished}/{n}"),
                None => format!("{finished}"),
            };
            let ratio = self
                .planned
                .filter(|n| *n > 0)
                .map(|n| (finished as f64 / n as f64).min(1.0))
                .unwrap_or(0.0);
            Gauge::default()
                .ratio(ratio)
                .label(label)
                .gauge_style(Style::new().fg(Color::Cyan))
                .render(line2, buf);
            let failed = Span::styled(
                format!("failed {}", self.failed),
                if self.failed > 0 {
                    Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
                } else {
                    Style::new()
                },
            );
            let mut counts = vec![
                Span::raw(format!("done {}   ", self.done)),
                failed,
                Span::raw(format!("   in flight {}", self.in_flight)),
            ];
            // Compact: the pod and cost after the counts, on the same line.
            if compact {
                counts.push(Span::raw(format!("   ·   {cost}   {pod}")).dim());
            }
            Paragraph::new(Line::from(counts)).render(line3, buf);
        }
    }

    /// Completed requests and output tokens per second, as sparklines.
    fn render_throughput(&self, left: Rect, buf: &mut Buffer) {
        let tb = Block::new()
            .borders(Borders::TOP)
            .title(" throughput (per second) ");
        let t_inner = tb.inner(left);
        tb.render(left, buf);
        let [r1, s1, r2, s2] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(2),
            Constraint::Length(1),
            Constraint::Length(2),
        ])
        .areas(t_inner);
        let last = |v: &[u64]| {
            v.last()
                .map(|x| x.to_string())
                .unwrap_or_else(|| "–".into())
        };
        let width = s1.width as usize;
        let tail = |v: &[u64]| v[v.len().saturating_sub(width)..].to_vec();
        Paragraph::new(format!("req/s {}", last(&self.req_per_s))).render(r1, buf);
        Sparkline::default()
            .data(tail(&self.req_per_s))
            .style(Style::new().fg(Color::Green))
            .render(s1, buf);
        let what = if self.charts.pooled {
            "texts/s"
        } else {
            "output tok/s"
        };
        Paragraph::new(format!("{what} {}", last(&self.tok_per_s))).render(r2, buf);
        Sparkline::default()
            .data(tail(&self.tok_per_s))
            .style(Style::new().fg(Color::Blue))
            .render(s2, buf);
    }

    /// TTFT, ITL, E2EL: p50 and p99, recent and overall.
    fn render_latency(&self, right: Rect, buf: &mut Buffer) {
        // Narrow (80 columns): "10s" for "recent" (the last 10 s, as the help says).
        let wide = right.width >= 50;
        let heads = match wide {
            true => ["ms", "p50 recent", "p99 recent", "p50 all", "p99 all"],
            false => ["ms", "p50 10s", "p99 10s", "p50 all", "p99 all"],
        };
        let header = Row::new(heads).style(Style::new().bold());
        let (recent_w, all_w) = if wide { (11, 9) } else { (8, 8) };
        let rows = self.latency.iter().map(|(n, v)| {
            Row::new(
                std::iter::once(Cell::from(n.clone())).chain(v.iter().map(|x| Cell::from(ms(*x)))),
            )
        });
        Table::new(
            rows,
            [
                Constraint::Length(5),
                Constraint::Length(recent_w),
                Constraint::Length(recent_w),
                Constraint::Length(all_w),
                Constraint::Length(all_w),
            ],
        )
        .header(header)
        .block(
            Block::new()
                .borders(Borders::TOP | Borders::LEFT)
                .title(" latency "),
        )
        .render(right, buf);
    }

    /// The latest errors and notices, under the charts (which take what the panels leave).
    fn render_notes(&self, rest: Rect, compact: bool, buf: &mut Buffer) {
        // Errors and notices.
        let mut lines: Vec<Line> = self
            .errors
            .iter()
            .map(|e| Line::styled(e.clone(), Style::new().fg(Color::Red)))
            .collect();
        lines.extend(self.notices.iter().map(|n| Line::raw(n.clone())));
        // Charts take what the panels leave, above a few lines of errors and notices (one in
        // a short terminal: the newest).
        let notes_h = match (lines.is_empty(), compact) {
            (true, _) => 0,
            (false, true) => 2,
            (false, false) => (lines.len() as u16 + 1).min(6),
        };
        let charts_min = if compact { 7 } else { 8 };
        let rest =
            if self.workload && !self.charts.is_empty() && rest.height >= notes_h + charts_min {
                let [charts, notes] =
                    Layout::vertical([Constraint::Min(charts_min), Constraint::Length(notes_h)])
                        .areas(rest);
                self.charts.render(charts, buf);
                notes
            } else if let Some(server) = self.server.as_ref().filter(|_| !self.workload) {
                // `monitor`: the server's gauges over time.
                let [charts, notes] =
                    Layout::vertical([Constraint::Min(0), Constraint::Length(notes_h)]).areas(rest);
                server.history.render(charts, buf);
                notes
            } else {
                rest
            };
        if !lines.is_empty() {
            let keep = rest.height.saturating_sub(1) as usize;
            let lines = lines.split_off(lines.len().saturating_sub(keep));
            Paragraph::new(lines)
                .block(
                    Block::new()
                        .borders(Borders::TOP)
                        .title(" recent errors and notices "),
                )
                .wrap(Wrap { trim: true })
                .render(rest, buf);
        }
    }
}

impl ServerPanel {
    /// The server's gauges, its own rates and latencies, and the provider's GPU gauges.
    fn render_panel(&self, gpus: &[(Option<f64>, Option<f64>)], server: Rect, buf: &mut Buffer) {
        let s = self;
        let b = Block::new().borders(Borders::TOP).title(format!(
            " server ({}) {} · {} scrapes, {} gaps ",
            s.framework.map_or("unknown", FrameworkKind::as_str),
            s.url,
            s.scrapes,
            s.gaps
        ));
        let si = b.inner(server);
        b.render(server, buf);
        let l = &s.last;
        // Compact (three lines): a failed scrape's reason takes the server's rates' line.
        let compact = si.height < 4;
        let [g1, g2, g3, g4] = match compact {
            true => {
                let [a, b, c] = Layout::vertical([Constraint::Length(1); 3]).areas(si);
                [a, b, c, Rect::default()]
            }
            false => Layout::vertical([Constraint::Length(1); 4]).areas(si),
        };
        let ideal = self.ideal_hit_rate.map_or(String::new(), |x| {
            format!(" (ideal so far {})", pct(Some(x)))
        });
        let spec = match (l.spec_acceptance_rate, l.spec_acceptance_length) {
            (None, None) => String::new(),
            (r, len) => format!(
                "   spec accepted {} (length {})",
                pct(r),
                len.map_or("-".into(), |x| format!("{x:.2}"))
            ),
        };
        Paragraph::new(format!(
            "running {}   waiting {}   prefix-cache hits {}{ideal}   preemptions {}{spec}",
            whole(l.running),
            whole(l.waiting),
            pct(l.prefix_cache_hit_rate),
            whole(l.preemptions_total)
        ))
        .render(g1, buf);
        let kv = l.kv_cache_usage.unwrap_or(0.0).clamp(0.0, 1.0);
        Gauge::default()
            .ratio(kv)
            .label(format!("KV cache {}", pct(l.kv_cache_usage)))
            .gauge_style(Style::new().fg(if kv > 0.9 { Color::Red } else { Color::Magenta }))
            .render(g2, buf);
        let mut line = format!(
            "server tok/s: generation {}   prompt {}   TTFT mean {} ms   ITL mean {} ms",
            whole(l.generation_tokens_per_s),
            whole(l.prompt_tokens_per_s),
            ms(l.ttft_mean_ms),
            ms(l.itl_mean_ms),
        );
        if let Some(t) = l.tflops_per_gpu {
            line.push_str(&format!("   {t:.2} TFLOP/s/GPU"));
            if let Some(p) = s.gpu_peak {
                line.push_str(&format!(" (MFU {})", pct(Some(t / p.bf16_tflops))));
            }
        }
        if let (Some(b), Some(p)) = (l.tb_per_s_per_gpu, s.gpu_peak) {
            line.push_str(&format!("   MBU {}", pct(Some(b / p.tb_per_s))));
        }
        if let Some(e) = &l.error {
            Paragraph::new(format!("last scrape failed: {e}"))
                .style(Style::new().fg(Color::Yellow))
                .render(if compact { g3 } else { g4 }, buf);
            if !compact {
                Paragraph::new(line).render(g3, buf);
            }
        } else if !gpus.is_empty() {
            Paragraph::new(line).render(g3, buf);
            let each: Vec<String> = gpus
                .iter()
                .map(|(u, m)| format!("{} util, {} mem", pct100(*u), pct100(*m)))
                .collect();
            Paragraph::new(format!("GPUs (provider): {}", each.join(" · "))).render(g4, buf);
        } else {
            Paragraph::new(line).render(g3, buf);
        }
    }
}

impl ServerHistory {
    /// `monitor`'s charts: each gauge as a sparkline under its name and latest value.
    fn render(&self, area: Rect, buf: &mut Buffer) {
        let b = Block::new()
            .borders(Borders::TOP)
            .title(format!(" the last {HISTORY_S} scrapes "));
        let inner = b.inner(area);
        b.render(area, buf);
        let rows: [(&str, &[u64], Color); 5] = [
            ("generation tok/s", &self.generation_tok_s, Color::Blue),
            ("prompt tok/s", &self.prompt_tok_s, Color::Cyan),
            ("running requests", &self.running, Color::Green),
            ("waiting requests", &self.waiting, Color::Yellow),
            ("KV cache %", &self.kv_pct, Color::Magenta),
        ];
        // Each gauge: a label line, then its sparkline over what is left (at least a row).
        let areas = Layout::vertical(vec![Constraint::Fill(1); rows.len()]).split(inner);
        for ((name, v, colour), at) in rows.iter().zip(areas.iter()) {
            if at.height < 2 {
                continue;
            }
            let [label, line] =
                Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(*at);
            let last = v.last().map_or("–".to_string(), |x| x.to_string());
            Paragraph::new(format!("{name} {last}")).render(label, buf);
            let width = line.width as usize;
            Sparkline::default()
                .data(v[v.len().saturating_sub(width)..].to_vec())
                .style(Style::new().fg(*colour))
                .render(line, buf);
        }
    }
}

/// The help popup, over the middle of the view.
fn render_help(area: Rect, buf: &mut Buffer) {
    let w = area.width.min(84);
    let h = area.height.min(12);
    let popup = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    Clear.render(popup, buf);
    Paragraph::new(HELP)
        .wrap(Wrap { trim: false })
        .block(Block::bordered().title(" help "))
        .render(popup, buf);
}
