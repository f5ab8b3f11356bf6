//! The one owner of a run's measured data. It reads every [`Event`] of the timed window —
//! request records, `/metrics` scrapes, the run's clock — keeps the records, the ITL gaps, the
//! per-second buckets, the server's samples and the client's own health, applies the stop
//! rules (error rate, budget, lifetime), and at the end hands everything over as [`Measured`].

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::columns::{Brief, Gaps};
use super::event::signed_ms;
use super::event::{Event, GpuReading, GpuTelemetry, RequestRecord, ServerSample};
use super::scrape::ServerMetrics;
use super::stability::{self, Runaway, SaturationRule, SteadyRule, Trend};
use super::summary::{self, Stats, Summary};
use crate::config::{Detail, Experiment, FrameworkKind, Slo};

/// Failed requests by kind.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Errors {
    /// Failed requests per kind (`status`, `timeout`, `stream_cut`, …).
    pub by_kind: BTreeMap<String, u64>,
    /// One message per kind.
    pub samples: BTreeMap<String, String>,
}

/// One second of the timed window, by completion time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Bucket {
    /// Seconds since the benchmark's start (this bucket covers `[second, second + 1)`).
    pub second: u64,
    /// Requests sent in this second (the offered load: shows a ramp, or a trace's shape).
    #[serde(default)]
    pub sent: u64,
    pub completed: u64,
    pub failed: u64,
    pub output_tokens: u64,
    pub ttft_p50_ms: Option<f64>,
    pub ttft_p99_ms: Option<f64>,
    /// Mean ITL of the requests completed in this second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub itl_mean_ms: Option<f64>,
    /// How late requests sent in this second left against their schedule, worst case (open
    /// loop and traces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pacer_lag_max_ms: Option<f64>,
    /// Mean GPU utilisation (percent, all GPUs) of the provider's readings in this second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_util_pct: Option<f64>,
}

/// The client's view of itself: did it distort the figures?
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClientHealth {
    /// TCP connect + HTTP handshake of the pre-warmed connections (never inside TTFT).
    pub connect_ms: Stats,
    /// How late requests left against their schedule (open loop).
    pub pacer_lag_ms: Option<Stats>,
    pub reads_per_request: f64,
    /// How reads were stamped: `kernel` (the socket's receive time), `clock` (the time of the
    /// read), or `kernel for N%` when mixed.
    #[serde(default)]
    pub read_stamps: String,
    /// The most requests in flight at once in the timed window: the concurrency reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_in_flight: Option<u64>,
    pub warnings: Vec<String>,
}

/// Why a point stopped before its workload's own bounds.
#[derive(Clone, Debug, PartialEq)]
pub enum StopReason {
    /// `workload.max_error_rate`: more than `limit` of the requests so far failed.
    ErrorRate { failed: u64, of: u64, limit: f64 },
    /// `infrastructure.max_cost_usd` reached.
    Budget { spent_usd: f64, max_usd: f64 },
    /// The pod has lived `infrastructure.max_lifetime`.
    Lifetime { max: Duration },
    /// Ctrl-C, SIGTERM or SIGHUP.
    Interrupted,
    /// `q` in the live view.
    Quit,
    /// `workload.steady_state`: the figures settled (from this many seconds on).
    Steady { from_s: f64 },
    /// `workload.saturation`: the server's queue grows without bound.
    Saturated(Runaway),
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ErrorRate { failed, of, limit } => write!(
                f,
                "max_error_rate: {failed} of {of} requests failed (limit {:.0}%)",
                limit * 100.0
            ),
            Self::Budget { spent_usd, max_usd } => write!(
                f,
                "max_cost_usd: ${spent_usd:.2} spent, budget ${max_usd:.2}"
            ),
            Self::Lifetime { max } => {
                write!(f, "max_lifetime: the pod has run for {}s", max.as_secs())
            }
            Self::Interrupted => f.write_str("interrupted"),
            Self::Steady { from_s } => write!(f, "steady_state: the figures settled from {from_s:.1}s"),
            Self::Saturated(r) => write!(
                f,
                "saturated: requests in flight grew {:.1}/s (to {:.0}) and TTFT {:.0} ms/s over {:.0}s",
                r.in_flight_per_s, r.in_flight, r.ttft_ms_per_s, r.over_s
            ),
            Self::Quit => f.write_str("interrupted: q pressed in the live view"),
        }
    }
}

impl StopReason {
    /// The user stopped the run (the result is `interrupted`).
    pub fn is_interrupt(&self) -> bool {
        matches!(self, Self::Interrupted | Self::Quit)
    }

    pub fn kind(&self) -> StopKind {
        match self {
            Self::ErrorRate { .. } => StopKind::ErrorRate,
            Self::Budget { .. } => StopKind::Budget,
            Self::Lifetime { .. } => StopKind::Lifetime,
            Self::Interrupted | Self::Quit => StopKind::Interrupted,
            Self::Steady { .. } => StopKind::Steady,
            Self::Saturated(_) => StopKind::Saturated,
        }
    }
}

/// What kind of stop a result's `termination_reason` records: the reason's first word, as
/// [`StopReason`]'s `Display` writes it. Read back from files (a resumed search, a report).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopKind {
    ErrorRate,
    Budget,
    Lifetime,
    Interrupted,
    Steady,
    Saturated,
}

impl StopKind {
    const WRITTEN: [(&'static str, StopKind); 6] = [
        ("max_error_rate", Self::ErrorRate),
        ("max_cost_usd", Self::Budget),
        ("max_lifetime", Self::Lifetime),
        ("interrupted", Self::Interrupted),
        ("steady_state", Self::Steady),
        ("saturated", Self::Saturated),
    ];

    /// The kind of a written `termination_reason` (`None`: the point ran to its own bounds).
    pub fn of_written(reason: &str) -> Option<Self> {
        let head = reason.split([':', ' ']).next().unwrap_or_default();
        Self::WRITTEN
            .iter()
            .find(|(w, _)| *w == head)
            .map(|(_, k)| *k)
    }
}

/// The rules that stop a point early.
#[derive(Clone, Debug, Default)]
pub struct StopRules {
    pub max_error_rate: Option<f64>,
    pub max_cost_usd: Option<f64>,
    pub max_lifetime: Option<Duration>,
    pub steady: Option<SteadyRule>,
    /// Open loop only.
    pub saturation: Option<SaturationRule>,
}

/// The error-rate rule waits for this many requests, so one early failure cannot stop a run.
pub const ERROR_RATE_MIN_REQUESTS: u64 = 20;

/// What the collector computes, from the experiment.
#[derive(Clone, Debug)]
pub struct Settings {
    pub percentiles: Vec<f64>,
    pub slo: Option<Slo>,
    pub gpu_count: u32,
    /// Keep every ITL gap in each record (`output.detail: full`).
    pub full: bool,
    pub scrape_interval: Duration,
    /// `workload.duration`: a window that ran to it lasted at least this long, whenever its
    /// last request ended (a trace idle until its next timestamp still took the time).
    pub duration: Option<Duration>,
    pub rules: StopRules,
    /// Where records go once a point has more than [`INLINE_RECORDS`] (a side file next to
    /// the results); `None` keeps every record in memory.
    pub spill_dir: Option<PathBuf>,
    /// `model.adapters`' names (the per-adapter figures), in order.
    pub adapters: Vec<String>,
    /// The servers' base URLs, with several (the per-replica figures), in the run's order.
    pub replicas: Vec<String>,
}

/// Records a result file holds inline; past this they are written to a side file as they
/// come (`<result>.requests.jsonl`), so memory does not grow with them.
pub const INLINE_RECORDS: usize = 100_000;

impl Settings {
    pub fn of(e: &Experiment) -> Self {
        Self {
            percentiles: e.metrics.percentiles.clone(),
            slo: e.metrics.slo.clone(),
            gpu_count: e.infrastructure.gpu_count,
            full: e.output.detail == Detail::Full,
            scrape_interval: e.metrics.scrape_interval.as_duration(),
            duration: e.workload.duration.map(|d| d.as_duration()),
            rules: StopRules {
                max_error_rate: e.workload.max_error_rate,
                max_cost_usd: e.infrastructure.max_cost_usd,
                max_lifetime: Some(e.infrastructure.max_lifetime.as_duration()),
                steady: e.workload.steady_state.as_ref().map(|s| SteadyRule {
                    window_ms: s.window.as_duration().as_secs_f64() * 1e3,
                    threshold: s.threshold.0,
                }),
                saturation: saturation_rule(e),
            },
            spill_dir: Some(e.output.dir.clone()),
            adapters: e
                .model
                .adapters
                .as_ref()
                .map(|a| a.all())
                .unwrap_or_default(),
            replicas: Vec::new(),
        }
    }
}

/// The saturation rule of an open-loop point (a rate, or a trace) with `saturation.stop`.
fn saturation_rule(e: &Experiment) -> Option<SaturationRule> {
    let w = &e.workload;
    (w.load().pace.is_open() && w.saturation.stop).then(|| SaturationRule {
        after_s: w.saturation.after.as_duration().as_secs_f64(),
        window_s: w.saturation.window.as_duration().as_secs_f64(),
    })
}

/// Everything one point measured, ready for its result file.
#[derive(Debug)]
pub struct Measured {
    pub summary: Summary,
    /// The records kept in memory, by id (all of them unless some went to `requests_file`).
    pub requests: Vec<RequestRecord>,
    /// The side file holding the other records (JSON Lines), and how many it holds.
    pub requests_file: Option<(PathBuf, u64)>,
    /// The provider's GPU gauges, where it has them.
    pub gpu: Option<GpuTelemetry>,
    pub errors: Errors,
    pub time_series: Vec<Bucket>,
    pub server_metrics: Option<ServerMetrics>,
    pub client: ClientHealth,
    /// Why the point stopped early, if a rule or the user stopped it.
    pub stop: Option<StopReason>,
}

/// The one owner of measured data during a point.
pub struct Collector {
    settings: Settings,
    t0: Option<Instant>,
    records: Vec<RequestRecord>,
    briefs: Vec<Brief>,
    itl: Gaps,
    /// Per turn index: ITL gap sum and count.
    itl_by_turn: Vec<(f64, u64)>,
    /// Per session: first send, last end (ms), turns, all ok.
    sessions: HashMap<u64, (f64, f64, u32, bool)>,
    spill: Option<Spill>,
    /// A side file closed after a write failed: its path and the records it holds.
    spilled: Option<(PathBuf, u64)>,
    spill_failed: Option<String>,
    /// Requests whose usage said fewer reasoning tokens than their stream carried, and the
    /// first one's two counts (usage, stream).
    reasoning_disagreed: Option<(u64, u32, u32)>,
    /// Metric families the server exports that the tool does not know.
    unknown_names: Vec<String>,
    lag_ms: Vec<f64>,
    connect_ms: Vec<f64>,
    connect_errors: Vec<String>,
    errors: Errors,
    failed: u64,
    /// Per second: the bucket, its successful requests' TTFTs, and ITL gap sum and count.
    buckets: BTreeMap<u64, (Bucket, Vec<f64>, f64, u64)>,
    stop: Option<StopReason>,
    total_reads: u64,
    kernel_reads: u64,
    /// Scrapes of the server's `/metrics`, with when each started.
    /// Each replica's scrapes (one list per server of the run).
    server: Vec<Vec<(Instant, ServerSample)>>,
    framework: Option<FrameworkKind>,
    gpu: Vec<GpuReading>,
    steady: SteadyWatch,
    trend: Trend,
    /// The last whole second the saturation trend has a sample of.
    trend_second: u64,
}

/// The steady-state rule's state: where the steady part starts once found; until then the ITL
/// gaps of the recent past by end time (older ones are the transient's), after it the steady
/// part's own gaps.
#[derive(Default)]
struct SteadyWatch {
    from_ms: Option<f64>,
    recent: std::collections::VecDeque<(f64, Vec<f64>)>,
    gaps: Gaps,
}

impl Collector {
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            t0: None,
            records: Vec::new(),
            briefs: Vec::new(),
            itl: Gaps::default(),
            itl_by_turn: Vec::new(),
            sessions: HashMap::new(),
            spill: None,
            spilled: None,
            spill_failed: None,
            reasoning_disagreed: None,
            unknown_names: Vec::new(),
            lag_ms: Vec::new(),
            connect_ms: Vec::new(),
            connect_errors: Vec::new(),
            errors: Errors::default(),
            failed: 0,
            buckets: BTreeMap::new(),
            stop: None,
            total_reads: 0,
            kernel_reads: 0,
            server: Vec::new(),
            framework: None,
            gpu: Vec::new(),
            steady: SteadyWatch::default(),
            trend: Trend::default(),
            trend_second: 0,
        }
    }

    /// Takes one event; returns the reason when a stop rule fires now (once per point).
    pub fn on(&mut self, ev: Event) -> Option<StopReason> {
        let fired = match ev {
            Event::Started {
                t0,
                connect_times,
                connect_errors,
            } => {
                self.t0 = Some(t0);
                self.connect_ms = connect_times.iter().map(|d| ms(*d)).collect();
                self.connect_errors = connect_errors;
                None
            }
            Event::Request(rec) => {
                self.add(*rec);
                self.error_rate_rule()
            }
            Event::Server(s) => {
                self.framework = s.framework.or(self.framework);
                if let Some(u) = s.unknown_names {
                    self.unknown_names = u;
                }
                let k = usize::from(s.replica);
                if self.server.len() <= k {
                    self.server.resize_with(k + 1, Vec::new);
                }
                self.server[k].push((s.at, s.sample));
                None
            }
            Event::Gpu(g) => {
                self.gpu.push(g);
                None
            }
            Event::Tick {
                spent_usd,
                pod_age,
                sent,
            } => self
                .clock_rules(spent_usd, pod_age)
                .or_else(|| self.steady_rule())
                .or_else(|| self.saturation_rule(sent)),
        };
        match fired {
            Some(why) if self.stop.is_none() => {
                self.stop = Some(why.clone());
                Some(why)
            }
            _ => None,
        }
    }

    /// A stop from outside (Ctrl-C, `q`); the first reason of a point is the one kept.
    pub fn stop(&mut self, why: StopReason) {
        self.stop.get_or_insert(why);
    }

    pub fn stopped(&self) -> Option<&StopReason> {
        self.stop.as_ref()
    }

    /// Requests finished so far (failed ones included).
    pub fn finished(&self) -> u64 {
        self.briefs.len() as u64
    }

    /// Failed requests so far.
    pub fn failed(&self) -> u64 {
        self.failed
    }

    fn error_rate_rule(&self) -> Option<StopReason> {
        let limit = self.settings.rules.max_error_rate?;
        let n = self.finished();
        (n >= ERROR_RATE_MIN_REQUESTS && self.failed as f64 / n as f64 > limit).then_some(
            StopReason::ErrorRate {
                failed: self.failed,
                of: n,
                limit,
            },
        )
    }

    fn clock_rules(&self, spent_usd: f64, pod_age: Option<Duration>) -> Option<StopReason> {
        let r = &self.settings.rules;
        if let Some(max_usd) = r.max_cost_usd.filter(|m| spent_usd >= *m) {
            return Some(StopReason::Budget { spent_usd, max_usd });
        }
        match (pod_age, r.max_lifetime) {
            (Some(age), Some(max)) if age >= max => Some(StopReason::Lifetime { max }),
            _ => None,
        }
    }

    /// Milliseconds since the timed window's start.
    fn now_ms(&self) -> Option<f64> {
        self.t0.map(|t| t.elapsed().as_secs_f64() * 1e3)
    }

    /// `workload.steady_state`: the last three windows alike → steady from the first of them.
    fn steady_rule(&mut self) -> Option<StopReason> {
        let rule = self.settings.rules.steady?;
        if self.steady.from_ms.is_some() {
            return None;
        }
        let from = stability::steady_from(&self.briefs, self.now_ms()?, rule)?;
        self.steady.from_ms = Some(from);
        // The steady part's gaps: those of requests that ended from `from` on.
        for (end, gaps) in std::mem::take(&mut self.steady.recent) {
            match end >= from {
                true => self.steady.gaps.extend(&gaps),
                false => self.itl.extend(&gaps),
            }
        }
        Some(StopReason::Steady { from_s: from / 1e3 })
    }

    /// `workload.saturation`: one sample a second (in flight now, the last second's mean TTFT).
    fn saturation_rule(&mut self, sent: u64) -> Option<StopReason> {
        let rule = self.settings.rules.saturation?;
        let second = (self.now_ms()? / 1e3) as u64;
        if second <= self.trend_second {
            return None;
        }
        self.trend_second = second;
        let ttft = self
            .buckets
            .get(&(second - 1))
            .filter(|b| !b.1.is_empty())
            .map(|b| b.1.iter().sum::<f64>() / b.1.len() as f64);
        let in_flight = sent.saturating_sub(self.finished()) as f64;
        self.trend.push(second as f64, in_flight, ttft);
        self.trend.runaway(rule).map(StopReason::Saturated)
    }

    /// A successful request's ITL gaps: to the run's, or — while a steady part is looked for —
    /// held by end time, and then to the steady part's.
    fn keep_gaps(&mut self, end_ms: f64, gaps: &[f64]) {
        let Some(rule) = self.settings.rules.steady else {
            self.itl.extend(gaps);
            return;
        };
        if self.steady.from_ms.is_some() {
            self.steady.gaps.extend(gaps);
            return;
        }
        self.steady.recent.push_back((end_ms, gaps.to_vec()));
        // Older than three windows (and a second's slack): never in a steady part found later.
        let horizon = end_ms - 3.0 * rule.window_ms - 1000.0;
        while self
            .steady
            .recent
            .front()
            .is_some_and(|(e, _)| *e < horizon)
        {
            if let Some((_, old)) = self.steady.recent.pop_front() {
                self.itl.extend(&old);
            }
        }
    }

    /// Keeps one finished request: its gaps (successful requests only), its error, its
    /// second's bucket, its brief, and the record itself — in memory, or in the side file past
    /// [`INLINE_RECORDS`] (gaps dropped unless `output.detail: full`).
    fn add(&mut self, mut rec: RequestRecord) {
        let lag = rec.scheduled_ms.map(|s| (rec.sent_ms - s).max(0.0));
        self.lag_ms.extend(lag);
        if let (Some(said), Some(streamed)) = (rec.reasoning_usage_disagreed, rec.reasoning_tokens)
        {
            let d = self.reasoning_disagreed.get_or_insert((0, said, streamed));
            d.0 += 1;
        }
        let gaps = rec.itl_ms.take().unwrap_or_default();
        let gap_sum: f64 = gaps.iter().sum();
        match &rec.error {
            None => {
                self.keep_gaps(rec.end_ms(), &gaps);
                if let Some(t) = rec.turn {
                    let t = t as usize;
                    if self.itl_by_turn.len() <= t {
                        self.itl_by_turn.resize(t + 1, (0.0, 0));
                    }
                    self.itl_by_turn[t].0 += gap_sum;
                    self.itl_by_turn[t].1 += gaps.len() as u64;
                }
            }
            Some(err) => {
                let k = err.kind.as_str().to_string();
                *self.errors.by_kind.entry(k.clone()).or_default() += 1;
                self.errors
                    .samples
                    .entry(k)
                    .or_insert_with(|| err.message.clone());
                self.failed += 1;
            }
        }
        if let Some(n) = rec.session {
            let e = self
                .sessions
                .entry(n)
                .or_insert((rec.sent_ms, rec.end_ms(), 0, true));
            e.0 = e.0.min(rec.sent_ms);
            e.1 = e.1.max(rec.end_ms());
            e.2 += 1;
            e.3 &= rec.ok();
        }
        self.total_reads += rec.reads as u64;
        self.kernel_reads += rec.kernel_reads as u64;
        self.bucket(&rec, lag, gap_sum, gaps.len() as u64);
        self.briefs.push(Brief::of(&rec));
        if self.settings.full {
            rec.itl_ms = Some(gaps);
        }
        self.keep(rec);
    }

    /// Counts `rec` in the bucket of the second it ended in (and the one it was sent in).
    fn bucket(&mut self, rec: &RequestRecord, lag: Option<f64>, gap_sum: f64, gaps: u64) {
        let at = |ms: f64| (ms.max(0.0) / 1e3) as u64;
        let new = |second| {
            (
                Bucket {
                    second,
                    ..Bucket::default()
                },
                Vec::new(),
                0.0,
                0,
            )
        };
        let sent = self
            .buckets
            .entry(at(rec.sent_ms))
            .or_insert_with_key(|s| new(*s));
        sent.0.sent += 1;
        if let Some(l) = lag {
            sent.0.pacer_lag_max_ms = Some(sent.0.pacer_lag_max_ms.map_or(l, |m: f64| m.max(l)));
        }
        let (b, ttfts, sum, n) = self
            .buckets
            .entry(at(rec.end_ms()))
            .or_insert_with_key(|s| new(*s));
        if rec.ok() {
            b.completed += 1;
            b.output_tokens += rec.output_tokens as u64;
            ttfts.extend(rec.ttft_ms);
            (*sum, *n) = (*sum + gap_sum, *n + gaps);
        } else {
            b.failed += 1;
        }
    }

    /// Holds `rec` in memory, or writes it to the side file once there are too many to hold.
    fn keep(&mut self, rec: RequestRecord) {
        if self.spill.is_none()
            && self.records.len() >= INLINE_RECORDS
            && self.spill_failed.is_none()
        {
            if let Some(dir) = self.settings.spill_dir.clone() {
                match Spill::create(&dir) {
                    Ok(s) => self.spill = Some(s),
                    Err(e) => self.spill_failed = Some(e),
                }
                // The records so far go first.
                for r in std::mem::take(&mut self.records) {
                    self.spill_one(r);
                }
            }
        }
        self.spill_one(rec);
    }

    fn spill_one(&mut self, rec: RequestRecord) {
        let Some(s) = self.spill.as_mut() else {
            self.records.push(rec);
            return;
        };
        if let Err(e) = s.write(&rec) {
            // Disk full or gone: keep the rest in memory; what was written stays written.
            self.spill_failed = Some(format!("writing {}: {e}", s.path.display()));
            self.records.push(rec);
            let mut s = self.spill.take();
            if let Some(s) = s.as_mut() {
                let _ = s.out.flush();
            }
            self.spilled = s.map(|s| (s.path, s.count));
        }
    }

    /// Everything measured. `end` is when the point stopped waiting for requests.
    pub fn finish(mut self, end: Instant) -> Measured {
        // Throughput divides by the time to the last completion, not to the collector's wake-up.
        let last_end_ms = self.briefs.iter().map(|b| b.end_ms).fold(0.0, f64::max);
        let window_s = self
            .t0
            .map_or(0.0, |t| end.saturating_duration_since(t).as_secs_f64());
        // Up to the window's bound when it had one and ran to it, else to the last completion.
        let bound_s = self
            .settings
            .duration
            .map_or(0.0, |d| d.as_secs_f64().min(window_s));
        let duration_s = match self.t0 {
            _ if last_end_ms > 0.0 => (last_end_ms / 1e3).max(bound_s),
            Some(_) => window_s,
            None => 0.0,
        };
        self.records.sort_by_key(|r| r.id);
        let (part, itl, duration_s, steady) = self.steady_part(duration_s, last_end_ms);
        let s = &self.settings;
        let mut summary = summary::summarize_briefs(
            part.as_deref().unwrap_or(&self.briefs),
            itl,
            duration_s,
            &s.percentiles,
            s.slo.as_ref(),
            s.gpu_count,
        );
        summary.steady_state = steady;
        summary.by_turn = summary::by_turn(&self.briefs, &self.itl_by_turn);
        summary.by_adapter = summary::by_adapter(
            part.as_deref().unwrap_or(&self.briefs),
            &s.adapters,
            duration_s,
        );
        summary.by_replica = summary::by_replica(
            part.as_deref().unwrap_or(&self.briefs),
            &s.replicas,
            duration_s,
        );
        summary.sessions = summary::sessions(self.sessions.values().copied());
        let server_metrics = self.server_metrics(duration_s);
        if let Some(m) = &server_metrics {
            summary.spec_acceptance_rate = m.summary.spec_acceptance_rate;
            summary.spec_acceptance_length = m.summary.spec_acceptance_length;
        }
        let client = self.client_health();
        let gpu = self.gpu_telemetry();
        if let Some(g) = &gpu {
            summary.mean_gpu_util_pct = g.mean_util_pct;
            summary.peak_gpu_memory_pct = g.peak_memory_pct;
        }
        let mut time_series = buckets(std::mem::take(&mut self.buckets));
        for b in &mut time_series {
            b.gpu_util_pct = gpu.as_ref().and_then(|g| second_util(g, b.second));
        }
        let requests_file = match self.spill.take() {
            Some(s) => s.close(),
            None => self.spilled.take(),
        };
        Measured {
            summary,
            requests: self.records,
            requests_file,
            gpu,
            errors: self.errors,
            time_series,
            server_metrics,
            client,
            stop: self.stop,
        }
    }

    /// What the summary covers: with a steady part found, the requests that ended in it (its
    /// own gaps, its own duration); else every request (`None`: all the briefs).
    fn steady_part(
        &mut self,
        duration_s: f64,
        last_end_ms: f64,
    ) -> (Option<Vec<Brief>>, Gaps, f64, Option<summary::SteadyReport>) {
        for (_, gaps) in std::mem::take(&mut self.steady.recent) {
            self.itl.extend(&gaps);
        }
        let all = std::mem::take(&mut self.itl);
        let Some(rule) = self.settings.rules.steady else {
            return (None, all, duration_s, None);
        };
        let mut report = summary::SteadyReport {
            reached: self.steady.from_ms.is_some(),
            steady_from_s: self.steady.from_ms.map(|f| f / 1e3),
            window_s: rule.window_ms / 1e3,
            threshold: rule.threshold,
            transient_requests: 0,
        };
        let Some(from) = self.steady.from_ms else {
            return (None, all, duration_s, Some(report));
        };
        let steady: Vec<Brief> = self
            .briefs
            .iter()
            .filter(|b| b.end_ms >= from)
            .copied()
            .collect();
        report.transient_requests = (self.briefs.len() - steady.len()) as u64;
        let gaps = std::mem::take(&mut self.steady.gaps);
        let duration = ((last_end_ms - from) / 1e3).max(0.0);
        (Some(steady), gaps, duration, Some(report))
    }

    /// The GPU readings, stamped from the timed window's start.
    fn gpu_telemetry(&mut self) -> Option<GpuTelemetry> {
        let first = self.gpu.first()?.at;
        let t0 = self.t0.unwrap_or(first);
        let readings = std::mem::take(&mut self.gpu);
        let interval = ms(GPU_POLL);
        Some(GpuTelemetry::of(
            "runpod runtime.gpus",
            interval,
            readings,
            t0,
        ))
    }

    fn client_health(&mut self) -> ClientHealth {
        let mut warnings = Vec::new();
        let lag = (!self.lag_ms.is_empty()).then(|| Stats::of(std::mem::take(&mut self.lag_ms)));
        if let Some(p99) = lag.as_ref().and_then(|l| l.p99).filter(|p| *p > 10.0) {
            warnings.push(format!("requests left up to {p99:.1} ms late (p99) against the schedule: the client or this machine was saturated; rates are lower than asked"));
        }
        // The same failure on many connections (a limit reached) is one line with its count.
        let mut seen: Vec<(&String, usize)> = Vec::new();
        for c in &self.connect_errors {
            match seen.iter_mut().find(|(m, _)| *m == c) {
                Some((_, n)) => *n += 1,
                None => seen.push((c, 1)),
            }
        }
        for (c, n) in seen {
            warnings.push(match n {
                1 => format!("pre-warm connect failed: {c}"),
                n => format!("pre-warm connect failed on {n} connections: {c}"),
            });
        }
        if let Some((n, said, streamed)) = self.reasoning_disagreed {
            warnings.push(format!(
                "the server's usage counted fewer reasoning tokens than the stream carried in {n} requests (e.g. {said} against {streamed} streamed as reasoning): the stream's count is used (vLLM 0.32 reports 0 with a reasoning parser)"
            ));
        }
        if let Some(why) = &self.spill_failed {
            warnings.push(format!("request records could not all go to the side file ({why}); the rest are in the result file"));
        }
        ClientHealth {
            connect_ms: Stats::of(std::mem::take(&mut self.connect_ms)),
            pacer_lag_ms: lag,
            reads_per_request: self.total_reads as f64 / self.briefs.len().max(1) as f64,
            read_stamps: read_stamps(self.kernel_reads, self.total_reads),
            peak_in_flight: None,
            warnings,
        }
    }

    /// The scrapes, stamped relative to the timed window's start, and their summary; with
    /// several replicas, each one's and theirs combined ([`ServerMetrics::combine`]).
    fn server_metrics(&mut self, duration_s: f64) -> Option<ServerMetrics> {
        let first = self
            .server
            .iter()
            .filter_map(|s| s.first())
            .map(|s| s.0)
            .min()?;
        let t0 = self.t0.unwrap_or(first);
        let unknown = std::mem::take(&mut self.unknown_names);
        let mut each: Vec<ServerMetrics> = std::mem::take(&mut self.server)
            .into_iter()
            .map(|scrapes| {
                let mut m = ServerMetrics {
                    framework: self.framework,
                    interval_ms: ms(self.settings.scrape_interval),
                    samples: scrapes
                        .into_iter()
                        .map(|(at, mut s)| {
                            s.t_ms = signed_ms(at, t0);
                            s
                        })
                        .collect(),
                    unknown_names: unknown.clone(),
                    ..ServerMetrics::default()
                };
                m.summarize(duration_s * 1e3);
                m
            })
            .collect();
        match each.len() {
            1 => each.pop(),
            _ => Some(ServerMetrics::combine(each)),
        }
    }
}

/// How often a provider's GPU gauges are read.
pub const GPU_POLL: Duration = Duration::from_secs(5);

/// Mean utilisation of every GPU in the readings of `second`.
fn second_util(g: &GpuTelemetry, second: u64) -> Option<f64> {
    let v: Vec<f64> = g
        .samples
        .iter()
        .filter(|s| s.t_ms >= 0.0 && (s.t_ms / 1e3) as u64 == second)
        .flat_map(|s| s.util_pct.iter().flatten().copied())
        .collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// The per-second buckets with their TTFT percentiles and mean ITL.
fn buckets(b: BTreeMap<u64, (Bucket, Vec<f64>, f64, u64)>) -> Vec<Bucket> {
    b.into_values()
        .map(|(mut b, mut t, sum, n)| {
            t.sort_by(f64::total_cmp);
            b.ttft_p50_ms = summary::percentile(&t, 50.0);
            b.ttft_p99_ms = summary::percentile(&t, 99.0);
            b.itl_mean_ms = (n > 0).then(|| sum / n as f64);
            b
        })
        .collect()
}

/// The side file of a point's records while it runs: JSON Lines in the output directory,
/// hidden until the result is saved (then renamed next to it). If the run dies, what it holds
/// is still on disk.
struct Spill {
    path: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
    count: u64,
}

impl Spill {
    fn create(dir: &std::path::Path) -> Result<Self, String> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!(
            ".requests-{}-{n}.partial.jsonl",
            std::process::id()
        ));
        let f = std::fs::create_dir_all(dir)
            .and_then(|_| std::fs::File::create(&path))
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(Self {
            path,
            out: std::io::BufWriter::with_capacity(1 << 20, f),
            count: 0,
        })
    }

    fn write(&mut self, r: &RequestRecord) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, r)?;
        self.out.write_all(b"\n")?;
        self.count += 1;
        Ok(())
    }

    /// Flushes and closes; the path and the record count.
    fn close(mut self) -> Option<(PathBuf, u64)> {
        let _ = self.out.flush();
        Some((self.path, self.count))
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// How the run's reads were stamped, for the result's `client.read_stamps`.
fn read_stamps(kernel: u64, total: u64) -> String {
    match (kernel, total) {
        (_, 0) => String::new(),
        (k, t) if k == t => "kernel".into(),
        (0, _) => "clock".into(),
        (k, t) => format!("kernel for {:.1}%", k as f64 * 100.0 / t as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::event::{ErrorKind, RequestError};

    fn settings(max_error_rate: Option<f64>, full: bool) -> Settings {
        Settings {
            percentiles: vec![50.0, 99.0],
            slo: None,
            gpu_count: 1,
            full,
            scrape_interval: Duration::from_secs(1),
            duration: None,
            rules: StopRules {
                max_error_rate,
                max_cost_usd: Some(1.0),
                max_lifetime: Some(Duration::from_secs(60)),
                ..StopRules::default()
            },
            spill_dir: None,
            adapters: Vec::new(),
            replicas: Vec::new(),
        }
    }

    /// Request `id`, sent at `sent_ms`, 10 ms to its first token, then three 5 ms gaps.
    fn ok(id: u64, sent_ms: f64) -> Event {
        Event::Request(Box::new(RequestRecord {
            id,
            sent_ms,
            ttft_ms: Some(10.0),
            e2el_ms: 25.0,
            output_tokens: 4,
            itl_ms: Some(vec![5.0, 5.0, 5.0]),
            reads: 4,
            kernel_reads: 4,
            ..RequestRecord::default()
        }))
    }

    /// A request that failed after two gaps of 1000 ms (a stall): they must not count.
    fn failed(id: u64, sent_ms: f64) -> Event {
        Event::Request(Box::new(RequestRecord {
            id,
            sent_ms,
            ttft_ms: Some(10.0),
            e2el_ms: 2010.0,
            output_tokens: 3,
            itl_ms: Some(vec![1000.0, 1000.0]),
            error: Some(RequestError::new(ErrorKind::StreamCut, "cut")),
            ..RequestRecord::default()
        }))
    }

    fn started() -> Event {
        Event::Started {
            t0: Instant::now(),
            connect_times: vec![Duration::from_millis(2)],
            connect_errors: vec![],
        }
    }

    #[test]
    fn every_stop_reason_reads_back_as_its_kind() {
        let r = Runaway {
            in_flight_per_s: 1.0,
            in_flight: 2.0,
            ttft_ms_per_s: 3.0,
            over_s: 4.0,
        };
        let all = [
            StopReason::ErrorRate {
                failed: 1,
                of: 2,
                limit: 0.5,
            },
            StopReason::Budget {
                spent_usd: 1.0,
                max_usd: 1.0,
            },
            StopReason::Lifetime {
                max: Duration::from_secs(3),
            },
            StopReason::Interrupted,
            StopReason::Quit,
            StopReason::Steady { from_s: 2.0 },
            StopReason::Saturated(r),
        ];
        for why in all {
            assert_eq!(
                StopKind::of_written(&why.to_string()),
                Some(why.kind()),
                "{why}"
            );
        }
        for bounds in ["completed", "duration", "not started", ""] {
            assert_eq!(StopKind::of_written(bounds), None, "{bounds}");
        }
    }

    #[test]
    fn failed_requests_gaps_are_excluded_from_itl() {
        let mut c = Collector::new(settings(None, false));
        c.on(started());
        c.on(ok(0, 0.0));
        c.on(failed(1, 0.0));
        let m = c.finish(Instant::now());
        assert_eq!(m.summary.figure("p99_itl_ms"), Some(5.0));
        assert_eq!(m.summary.mean_itl_ms, Some(5.0));
        assert_eq!((m.summary.completed, m.summary.failed), (1, 1));
        assert_eq!(m.errors.by_kind.get("stream_cut"), Some(&1));
        // `detail: summary` keeps no gaps in the records.
        assert!(m.requests.iter().all(|r| r.itl_ms.is_none()));
        assert_eq!(m.client.read_stamps, "kernel");
    }

    #[test]
    fn full_detail_keeps_every_gap_and_records_come_out_in_id_order() {
        let mut c = Collector::new(settings(None, true));
        c.on(started());
        c.on(ok(1, 30.0));
        c.on(ok(0, 0.0));
        let m = c.finish(Instant::now());
        let ids: Vec<u64> = m.requests.iter().map(|r| r.id).collect();
        assert_eq!(ids, [0, 1]);
        assert_eq!(m.requests[0].itl_ms.as_deref(), Some(&[5.0, 5.0, 5.0][..]));
    }

    #[test]
    fn warm_up_is_not_counted_because_it_never_reaches_the_collector() {
        // The executor sends warm-up requests before `Started` and never as events; what the
        // collector counts is exactly the requests it was given, from `Started` on.
        let mut c = Collector::new(settings(None, false));
        c.on(started());
        for i in 0..3 {
            c.on(ok(i, i as f64 * 10.0));
        }
        let m = c.finish(Instant::now());
        assert_eq!(m.summary.completed, 3);
        assert_eq!(m.requests.len(), 3);
        assert_eq!(m.client.connect_ms.count, 1);
    }

    #[test]
    fn per_second_buckets_count_by_completion_time() {
        let mut c = Collector::new(settings(None, false));
        c.on(started());
        c.on(ok(0, 0.0)); // ends at 25 ms: second 0
        c.on(ok(1, 980.0)); // ends at 1005 ms: second 1
        c.on(ok(2, 1500.0)); // second 1
        c.on(failed(3, 500.0)); // ends at 2510 ms: second 2
        let m = c.finish(Instant::now());
        let got: Vec<(u64, u64, u64, u64)> = m
            .time_series
            .iter()
            .map(|b| (b.second, b.completed, b.failed, b.output_tokens))
            .collect();
        assert_eq!(got, [(0, 1, 0, 4), (1, 2, 0, 8), (2, 0, 1, 0)]);
        assert_eq!(m.time_series[1].ttft_p50_ms, Some(10.0));
        assert_eq!(m.time_series[2].ttft_p50_ms, None);
        // Throughput divides by the time to the last completion.
        assert!((m.summary.duration_s - 2.51).abs() < 1e-9);
    }

    #[test]
    fn the_error_rate_rule_fires_on_the_first_request_past_its_threshold() {
        // Limit 10 %: 2 of 20 is exactly at the limit (no stop); the 21st, failed, makes 3 of
        // 21 (14 %) and stops.
        let mut c = Collector::new(settings(Some(0.10), false));
        c.on(started());
        for i in 0..18 {
            assert_eq!(c.on(ok(i, 0.0)), None, "request {i}");
        }
        assert_eq!(c.on(failed(18, 0.0)), None);
        assert_eq!(c.on(failed(19, 0.0)), None, "2 of 20 is not more than 10 %");
        let fired = c.on(failed(20, 0.0));
        assert_eq!(
            fired,
            Some(StopReason::ErrorRate {
                failed: 3,
                of: 21,
                limit: 0.10
            })
        );
        // It fires once; later events do not repeat it.
        assert_eq!(c.on(failed(21, 0.0)), None);
        assert_eq!(
            c.stopped().map(|s| s.to_string()).as_deref(),
            Some("max_error_rate: 3 of 21 requests failed (limit 10%)")
        );
    }

    #[test]
    fn the_error_rate_rule_waits_for_twenty_requests() {
        let mut c = Collector::new(settings(Some(0.10), false));
        for i in 0..19 {
            assert_eq!(c.on(failed(i, 0.0)), None);
        }
        assert!(matches!(
            c.on(failed(19, 0.0)),
            Some(StopReason::ErrorRate { of: 20, .. })
        ));
    }

    #[test]
    fn budget_and_lifetime_stop_on_the_clock() {
        let mut c = Collector::new(settings(None, false));
        let tick = |usd: f64, age: u64| Event::Tick {
            spent_usd: usd,
            pod_age: Some(Duration::from_secs(age)),
            sent: 0,
        };
        assert_eq!(c.on(tick(0.5, 10)), None);
        assert_eq!(
            c.on(tick(1.0, 10)),
            Some(StopReason::Budget {
                spent_usd: 1.0,
                max_usd: 1.0
            })
        );
        let mut c = Collector::new(settings(None, false));
        assert_eq!(
            c.on(tick(0.1, 60)),
            Some(StopReason::Lifetime {
                max: Duration::from_secs(60)
            })
        );
        // A user's stop that comes later does not replace the rule's reason.
        c.stop(StopReason::Interrupted);
        assert!(matches!(c.stopped(), Some(StopReason::Lifetime { .. })));
    }
}
