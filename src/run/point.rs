//! One point of a run on the ready server: its prompts, the pre-flight request, the timed
//! window (executor and scraper feeding the collector and the live view), and its result —
//! `completed`, `interrupted` or `failed` with why, always with whatever was measured.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;

use super::progress::Progress;
use super::stop::Stop;
use super::view::{Screen, Watchers};
use super::{ready, Prepared, RunOptions};
use crate::client::Endpoint;
use crate::config::{Experiment, Pace, ProviderKind, RampStrategy};
use crate::metrics::collector::{Collector, Measured, Settings, StopReason};
use crate::metrics::event::Event;
use crate::metrics::scrape;
use crate::provider::Handle;
use crate::results::{Environment, RunResult, Status};
use crate::ui::say;
use crate::workload::dataset;
use crate::workload::executor::{self, Arrivals, Plan, Router};
use crate::workload::source::{self, Feed, Source};
use crate::workload::sweep::Point;
use crate::workload::{RateCurve, Schedule};

/// What every point on one deployment shares: the server, its key, the screen, the stop.
pub struct PointContext<'a> {
    pub p: &'a Prepared,
    pub opts: &'a RunOptions,
    /// Each server (replica), with its key; requests spread over them by `workload.routing`.
    pub eps: &'a [Endpoint],
    /// Ctrl-C, `q` or SIGTERM, with why: ends the run.
    pub stop: &'a Stop,
    pub screen: &'a mut Screen,
    pub handle: &'a mut Handle,
    /// The run's spend across every deployment (one budget for all).
    pub ledger: &'a super::shared::Ledger,
    /// This deployment's name in the ledger (empty without a matrix).
    pub who: &'a str,
    pub workers: usize,
    pub server_version: Option<String>,
    /// When the tool asked for the server, and how long it took to be ready: the cold start,
    /// recorded (with the first token) on the first point only.
    pub cold: Option<(Instant, Duration)>,
}

impl PointContext<'_> {
    /// The first server: the one asked what every replica of one spec answers alike (its
    /// tokenizer, its cache block size).
    pub fn ep(&self) -> &Endpoint {
        &self.eps[0]
    }
}

/// One point's result, and whether the server was found gone after it.
pub struct PointOutcome {
    pub result: RunResult,
    pub server_gone: bool,
}

/// Runs one point: prompts, pre-flight, the timed window; then judges how it ended.
pub async fn run_point(s: &mut PointContext<'_>, pt: &Point, n_points: usize) -> PointOutcome {
    let e = &pt.experiment;
    let started_at = chrono::Utc::now();
    let key = pt.key();
    let label = match (&pt.deployment, pt.label.is_empty()) {
        (Some(d), true) => Some(format!("deployment {d}")),
        _ if key.is_empty() => None,
        _ => Some(format!("point {key} ({n_points} points)")),
    };
    s.screen.live.start_point(label, e.workload.requests);
    s.screen.phase("preparing prompts");
    let (feed, lengths, block) = sources(s, e, pt.prompt_seed()).await;
    let mut env = environment(s, e, lengths);
    env.cache_block_size = block;
    let outcome = match prepare_servers(s, e, &feed.0).await {
        Ok(first_token) => {
            env.startup = s.cold.take().map(|(asked, ready)| crate::results::Startup {
                ready_s: ready.as_secs_f64(),
                first_token_s: Some(first_token.saturating_duration_since(asked).as_secs_f64()),
            });
            Ok(drive(s, e, feed).await)
        }
        Err(err) => Err(err),
    };
    s.screen.phase("saving");
    let (status, error, measured) = match outcome {
        Err(super::RunError::Interrupted) => (Status::Interrupted, None, None),
        Err(why) => (Status::Failed, Some(why.to_string()), None),
        Ok(m) => {
            tell_unknown_names(&m);
            let (status, error) = judge(&m);
            (status, error, Some(m))
        }
    };
    // A point with failures may have lost its server: look before the sweep goes on.
    let suspect = status == Status::Failed || failures(&measured) > 0;
    let gone = match status != Status::Interrupted && suspect {
        true => still_there(s, &e.model.id).await,
        false => None,
    };
    let (status, error) = match &gone {
        Some(why) => (
            Status::Failed,
            Some(format!("the server stopped answering: {why}")),
        ),
        None => (status, error),
    };
    let mut result = RunResult::new(e, measured, status, error, env, started_at);
    result.invalid = overflowed(e, &result.summary);
    result.client.warnings.extend(cache_gap(&result));
    result.client.warnings.extend(target_gap(e, &result));
    result.sweep_point = (!key.is_empty()).then_some(key);
    result.prompt_seed = Some(pt.prompt_seed());
    result.deployment = pt.deployment.clone();
    PointOutcome {
        result,
        server_gone: gone.is_some(),
    }
}

/// Every replica's pre-flight request and prefix-cache preparation, in turn; the first
/// server's first token is the cold start's.
async fn prepare_servers(
    s: &PointContext<'_>,
    e: &Experiment,
    feed: &Feed,
) -> Result<Instant, super::RunError> {
    let timeout = e.workload.request_timeout.as_duration();
    let mut first = None;
    for ep in s.eps {
        let t = ready::preflight(ep, &e.model.id, e.workload.api, timeout, s.stop.token()).await?;
        first.get_or_insert(t);
        super::cache::prepare(ep, e, feed, s.stop.token()).await?;
    }
    first.ok_or_else(|| super::RunError::Endpoint("no server to send to".into()))
}

/// After a failed point: does every replica still answer? What the first one that does not
/// said.
async fn still_there(s: &mut PointContext<'_>, model: &str) -> Option<String> {
    let many = s.eps.len() > 1;
    for ep in s.eps {
        if let Some(why) = ready::still_there(ep, model, s.handle).await {
            return Some(match many {
                true => format!("{}: {why}", ep.base_url()),
                false => why,
            });
        }
    }
    None
}

/// Why an agent-trace point is invalid: more of its requests overflowed `model.max_model_len`
/// than `workload.dataset.max_overflow_share` allows.
fn overflowed(e: &Experiment, s: &crate::metrics::summary::Summary) -> Option<String> {
    let crate::config::Dataset::Agentic {
        max_overflow_share, ..
    } = &e.workload.dataset
    else {
        return None;
    };
    let n = s.context_overflows?;
    let total = s.completed + s.failed;
    let share = n as f64 / total.max(1) as f64;
    (share > *max_overflow_share).then(|| {
        format!(
            "{n} of {total} requests ({:.1} %) asked for more than the model's context (`model.max_model_len` = {}); `workload.dataset.max_overflow_share` allows {:.1} %",
            share * 100.0,
            e.model.max_model_len.unwrap_or_default(),
            max_overflow_share * 100.0
        )
    })
}

/// A server whose prefix cache served clearly less than an ideal one would (5 points or more
/// below the workload's ideal rate): said, since the figures then measure the cache's size
/// (or a router scattering sessions), not only the engine.
fn cache_gap(r: &RunResult) -> Option<String> {
    let ideal = r.summary.ideal_prefix_cache_hit_rate?;
    let measured = r.server_metrics.as_ref()?.summary.hit_rate()?;
    (measured < ideal - 0.05).then(|| {
        format!(
            "the server's prefix cache served {:.1} % of prompt tokens where an ideal cache would serve {:.1} % of this workload: its cache is too small for the working set (evictions), or requests of one session reach different replicas",
            measured * 100.0,
            ideal * 100.0
        )
    })
}

/// A point with `target_hit_rate` (shared prefixes, synthetic sessions) whose server measured
/// a rate more than 5 points away from it: said, with the likely reason.
fn target_gap(e: &Experiment, r: &RunResult) -> Option<String> {
    use crate::config::Dataset;
    let (Dataset::SharedPrefix {
        target_hit_rate: Some(target),
        ..
    }
    | Dataset::Conversation {
        target_hit_rate: Some(target),
        ..
    }) = &e.workload.dataset
    else {
        return None;
    };
    let measured = r.server_metrics.as_ref()?.summary.hit_rate()?;
    ((measured - target).abs() > 0.05).then(|| {
        let why = match (e.workload.cache.flush, e.workload.cache.prime) {
            (_, false) => "without `workload.cache.prime` each shared prefix's first request misses",
            (false, _) => "without `workload.cache.flush` the cache may hold earlier prompts",
            _ if !e.workload.ignore_eos
                && matches!(e.workload.dataset, Dataset::Conversation { .. }) =>
            {
                "answers ended before `output_len` (the target counts whole answers: set `workload.ignore_eos`)"
            }
            _ => "the server's tokens differ from the prompt's calibrated lengths, or its cache block is not `environment.cache_block_size`",
        };
        format!(
            "the server's prefix cache served {:.1} % of prompt tokens, `target_hit_rate` asked {:.1} %: {why}",
            measured * 100.0,
            target * 100.0
        )
    })
}

/// Metric names the server exports that the tool does not know: said once a run, so the
/// next rename is seen the day it ships (they are in every point's result too).
fn tell_unknown_names(m: &Measured) {
    static TOLD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let Some(names) = m.server_metrics.as_ref().map(|s| &s.unknown_names) else {
        return;
    };
    if !names.is_empty() && !TOLD.swap(true, std::sync::atomic::Ordering::Relaxed) {
        say(format!(
            "the server exports metrics this tool does not know (new, or renamed since vLLM 0.32): {}",
            names.join(", ")
        ));
    }
}

fn failures(m: &Option<Measured>) -> u64 {
    m.as_ref().map_or(0, |m| m.summary.failed)
}

/// How a point that ran ended: interrupted by the user, failed (its error-rate rule fired, or
/// no request succeeded on its own), or completed (to its bounds, or cut by a stop rule).
fn judge(m: &Measured) -> (Status, Option<String>) {
    if let Some(why) = &m.stop {
        if why.is_interrupt() {
            return (Status::Interrupted, None);
        }
        if matches!(why, StopReason::ErrorRate { .. }) {
            return (Status::Failed, Some(why.to_string()));
        }
    }
    let s = &m.summary;
    if s.completed == 0 {
        let why = match m.errors.by_kind.iter().max_by_key(|(_, n)| **n) {
            Some((kind, n)) => format!(
                "every request failed ({} requests; most often {kind} ×{n}, e.g. {})",
                s.failed,
                m.errors.samples.get(kind).cloned().unwrap_or_default()
            ),
            // A budget or lifetime rule ended the point before its first request finished:
            // cut short (its reason says by what), not failed.
            None if m.stop.is_some() => return (Status::Completed, None),
            None => "no request finished in the timed window".to_string(),
        };
        return (Status::Failed, Some(why));
    }
    (Status::Completed, None)
}

/// Where the point's requests come from (the measured feed and the warm-up's prompts, both
/// from the point's own `seed`), and how prompt lengths were made.
async fn sources(
    s: &PointContext<'_>,
    e: &Experiment,
    seed: u64,
) -> ((Feed, Arc<dyn Source>), Option<String>, Option<u32>) {
    let w = &e.workload;
    // Bounded like a request, and ended by a stop: a server that takes `/tokenize` and never
    // answers cannot hold the run (the pre-flight then says what is wrong).
    let limit = w.request_timeout.as_duration();
    let calibrated = tokio::time::timeout(
        limit,
        dataset::calibrate(s.ep(), &e.model.id, w.api, e.seed),
    );
    let cal = tokio::select! {
        biased;
        _ = s.stop.token().cancelled() => dataset::Calibration::ESTIMATED,
        c = calibrated => c.unwrap_or(dataset::Calibration::ESTIMATED),
    };
    let lengths = dataset::Lengths {
        cal,
        tokenizer: s.p.tokenizer.clone(),
        api: w.api,
    };
    let described = dataset::describe_lengths(&lengths);
    let warmup = w.warmup_requests as u64;
    let block = super::cache::block_size(s.ep(), e).await;
    // The other datasets never count in cache blocks.
    let feed = source::sources(e, &s.p.loaded, (seed, warmup), lengths, block.unwrap_or(1));
    (feed, Some(described), block)
}

/// The point's pollers, each on its own task (ended when dropped): a `/metrics` scraper per
/// server (replica), and the provider's GPU gauges (an API call never holds the point's loop).
fn pollers(
    s: &PointContext<'_>,
    e: &Experiment,
    tx: &mpsc::UnboundedSender<Event>,
) -> Vec<AbortOnDropHandle<()>> {
    let interval = e.metrics.scrape_interval.as_duration();
    let scrapers = s
        .eps
        .iter()
        .enumerate()
        .filter(|_| e.metrics.scrape)
        .map(|(k, ep)| {
            let url =
                super::monitor::metrics_url(&ep.base_url(), Some(super::monitor::engine_of(e)));
            let k = u16::try_from(k).unwrap_or(u16::MAX);
            let scraper = scrape::run_replica(url, ep.api_key.clone(), interval, k, tx.clone());
            AbortOnDropHandle::new(tokio::spawn(scraper))
        });
    let gpu = s
        .handle
        .gpu_poll(crate::metrics::collector::GPU_POLL, tx.clone())
        .map(|poll| AbortOnDropHandle::new(tokio::spawn(poll)));
    scrapers.chain(gpu).collect()
}

/// The timed window: the executor on its threads, the scraper, and the collector reading their
/// events until the executor returns (or a second Ctrl-C says to save at once).
async fn drive(
    s: &mut PointContext<'_>,
    e: &Experiment,
    feed: (Feed, Arc<dyn Source>),
) -> Measured {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _pollers = pollers(s, e, &tx);
    let mut col = collector(s, e);
    let replicas = s.eps.len();
    first_scrape(e, replicas, &mut rx, &mut col).await;
    let warmup = e.workload.warmup_requests as u64;
    let plan = plan(e, s.eps, feed, &s.p.loaded, s.workers);
    // This point's own stop: a rule ends the point; Ctrl-C (the run's stop) ends it too.
    let point_stop = s.stop.child();
    let mut watchers = Watchers {
        progress: progress_of(s, e),
        metrics_url: super::monitor::metrics_url(
            &s.eps[0].base_url(),
            Some(super::monitor::engine_of(e)),
        ),
        sent: plan.sent.clone(),
        // With several replicas the server panel sums their scrapes.
        fleet: vec![None; if replicas > 1 { replicas } else { 0 }],
        screen: &mut *s.screen,
    };
    let stop = point_stop.clone();
    let abort = plan.abort.clone();
    let (in_flight, planned) = (plan.in_flight.clone(), planned_concurrency(&plan));
    let mut exec = tokio::task::spawn_blocking(move || executor::run(plan, stop, tx.clone()));
    let handle = &*s.handle;
    let (ledger, who, sent) = (s.ledger, s.who, watchers.sent.clone());
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut frame = tokio::time::interval(Duration::from_millis(100));
    watchers
        .screen
        .phase(if warmup > 0 { "warm-up" } else { "connecting" });
    let mut presses = s.stop.watch();
    let take = |col: &mut Collector, w: &mut Watchers, ev: Event| {
        w.show(&ev);
        if let Some(why) = col.on(ev) {
            say(format!("{why}; stopping"));
            point_stop.cancel();
            // A saturated server's queue is not waited for: those requests are abandoned.
            if matches!(why, StopReason::Saturated(_)) {
                abort.cancel();
            }
        }
        w.progress(col.finished(), col.failed());
    };
    loop {
        tokio::select! {
            _ = tick.tick() => {
                // The budget is the run's: every deployment's spend counts.
                let spent_usd = ledger.report(who, handle.spent_usd());
                let sent = sent.load(std::sync::atomic::Ordering::Relaxed);
                let ev = Event::Tick { spent_usd, pod_age: handle.age(), sent };
                take(&mut col, &mut watchers, ev);
            }
            _ = frame.tick(), if watchers.screen.tui => watchers.frame(handle, col.finished()),
            // The executor has returned, so every event it sent is queued: take them and stop.
            _ = &mut exec => {
                while let Ok(ev) = rx.try_recv() {
                    take(&mut col, &mut watchers, ev);
                }
                break;
            }
            ev = rx.recv() => match ev {
                Some(ev) => take(&mut col, &mut watchers, ev),
                None => break,
            },
            Ok(()) = presses.changed() => {
                let n = *presses.borrow_and_update();
                col.stop(s.stop.reason().cloned().unwrap_or(StopReason::Interrupted));
                if n >= 2 {
                    say("stopping now: saving what was measured");
                    // Requests in flight are abandoned (their connections closed), so the
                    // process exits within moments of saving, not when they time out.
                    abort.cancel();
                    break;
                }
                say("stopping: no new requests; waiting for those in flight (Ctrl-C again to stop now)");
            }
        }
    }
    // Stopped as the executor ended: the point is interrupted all the same (the reason was set
    // before the cancel, so it is here).
    if let Some(why) = s.stop.reason() {
        col.stop(why.clone());
    }
    let end = Instant::now();
    if e.metrics.scrape && s.stop.presses() < 2 {
        for ev in last_scrape(e, replicas, &mut rx, end).await {
            take(&mut col, &mut watchers, ev);
        }
    }
    watchers.done();
    let mut m = col.finish(end);
    reached(&mut m, in_flight.peak(), planned);
    m
}

/// A point's progress on stderr, without the live view.
fn progress_of(s: &PointContext<'_>, e: &Experiment) -> Progress {
    match s.opts.tui {
        true => Progress::Off,
        false => Progress::new(
            s.opts.progress,
            e.workload.requests,
            e.workload.duration.map(|d| d.as_duration()),
            s.who,
        ),
    }
}

/// How many servers the point drives (replicas).
fn servers(s: &PointContext<'_>) -> u32 {
    u32::try_from(s.eps.len()).unwrap_or(u32::MAX)
}

/// The point's collector, which knows the servers' URLs (the per-replica figures).
fn collector(s: &PointContext<'_>, e: &Experiment) -> Collector {
    let mut settings = Settings::of(e);
    settings.replicas = s.eps.iter().map(Endpoint::base_url).collect();
    // Per-GPU figures are per GPU of every replica.
    settings.gpu_count = servers(s) * e.infrastructure.gpu_count;
    Collector::new(settings)
}

/// The concurrency a closed loop of requests means to reach (sessions hold a slot while they
/// think, so theirs is not a count of requests in flight).
fn planned_concurrency(plan: &Plan) -> Option<u64> {
    match (&plan.arrivals, &plan.feed) {
        (Arrivals::Closed { concurrency, .. }, Feed::Requests(_)) => Some(u64::from(*concurrency)),
        _ => None,
    }
}

/// The concurrency the point reached, and a warning when a closed loop never reached its own.
fn reached(m: &mut Measured, peak: u64, planned: Option<u64>) {
    m.client.peak_in_flight = Some(peak);
    let ran = m.summary.completed + m.summary.failed;
    if let Some(c) = planned.filter(|c| peak < *c && ran >= 2 * *c) {
        m.client.warnings.push(format!(
            "the concurrency of {c} was never reached: at most {peak} requests were in flight at once (see the connect errors)"
        ));
    }
}

/// One more scrape of each replica after the last request, so the server's counters cover
/// the whole window: the first one that *began* after `end`. A scrape already in flight when
/// the last answer arrived can read counters the server has not yet updated (llama.cpp under
/// load was seen a whole wave short), so it is taken as an ordinary sample, not as the last one.
async fn last_scrape(
    e: &Experiment,
    replicas: usize,
    rx: &mut mpsc::UnboundedReceiver<Event>,
    end: Instant,
) -> Vec<Event> {
    let wait = e.metrics.scrape_interval.as_duration() * 2 + Duration::from_secs(1);
    let mut taken = Vec::new();
    let mut after = vec![false; replicas];
    let next = async {
        while let Some(ev) = rx.recv().await {
            if let Event::Server(s) = &ev {
                if s.at >= end {
                    if let Some(a) = after.get_mut(usize::from(s.replica)) {
                        *a = true;
                    }
                }
                taken.push(ev);
                if after.iter().all(|a| *a) {
                    return;
                }
            }
        }
    };
    let _ = tokio::time::timeout(wait, next).await;
    taken
}

/// Each server's counters before the first request of the window (or of its warm-up).
async fn first_scrape(
    e: &Experiment,
    replicas: usize,
    rx: &mut mpsc::UnboundedReceiver<Event>,
    col: &mut Collector,
) {
    if e.metrics.scrape {
        let wait = e.metrics.scrape_interval.as_duration() + Duration::from_millis(500);
        let all = async {
            for _ in 0..replicas {
                match rx.recv().await {
                    Some(ev) => {
                        col.on(ev);
                    }
                    None => return,
                }
            }
        };
        let _ = tokio::time::timeout(wait, all).await;
    }
}

/// The executor's plan for this point.
fn plan(
    e: &Experiment,
    eps: &[Endpoint],
    (feed, warm): (Feed, Arc<dyn Source>),
    loaded: &source::Loaded,
    workers: usize,
) -> Plan {
    let w = &e.workload;
    let closed = |concurrency: u32| Arrivals::Closed {
        concurrency,
        starts: Arc::new(crate::workload::slot_starts(concurrency, w.ramp.as_ref())),
    };
    let arrivals = match w.load().pace {
        Pace::Trace { max_in_flight } => Arrivals::Open {
            schedule: Schedule::Fixed(Arc::new(
                loaded.trace.as_ref().map(|t| t.times()).unwrap_or_default(),
            )),
            max_in_flight,
        },
        Pace::Closed { concurrency } => closed(concurrency),
        Pace::Open {
            rate,
            max_in_flight,
        } => Arrivals::Open {
            schedule: Schedule::Process {
                kind: w.arrival,
                curve: rate_curve(rate, w.ramp.as_ref()),
                burstiness: w.burstiness,
                seed: e.seed,
            },
            max_in_flight,
        },
    };
    let conc = match &arrivals {
        Arrivals::Closed { concurrency, .. } => *concurrency as usize,
        Arrivals::Open { max_in_flight, .. } => max_in_flight.unwrap_or(workers as u32) as usize,
    };
    // A trace plays once: no more requests than it has.
    let trace_len = loaded.trace.as_ref().map(|t| t.requests.len() as u64);
    let count = match (w.requests, trace_len) {
        (Some(n), Some(t)) => Some(n.min(t)),
        (n, t) => n.or(t),
    };
    // Sessions stay on one replica unless told otherwise (their prefix cache is there).
    let routing = super::plan::routing(e);
    Plan {
        endpoints: eps.into(),
        router: Arc::new(Router::new(routing, eps.len())),
        model: e.model.id.clone(),
        api: w.api,
        feed,
        warmup: w.warmup_requests as u64,
        warm,
        ignore_eos: w.ignore_eos,
        request_timeout: w.request_timeout.as_duration(),
        max_event_bytes: usize::try_from(w.max_event_bytes).unwrap_or(usize::MAX),
        arrivals,
        count,
        sessions: w.sessions,
        duration: w.duration.map(|d| d.as_duration()),
        on_deadline: w.on_deadline,
        // Never more worker threads than slots.
        workers: workers.min(conc.max(1)),
        sent: Arc::new(AtomicU64::new(0)),
        abort: tokio_util::sync::CancellationToken::new(),
        in_flight: Arc::default(),
        adapters: e
            .model
            .adapters
            .as_ref()
            .map(|a| Arc::new(crate::workload::adapters::AdapterMix::new(a, e.seed))),
    }
}

/// The open loop's rate over time: `rate`, or a ramp to it.
fn rate_curve(rate: f64, ramp: Option<&crate::config::Ramp>) -> RateCurve {
    RateCurve {
        to: rate,
        ramp: ramp.map(|r| {
            let from = match r.strategy {
                RampStrategy::Linear => r.from.unwrap_or(0.0),
                RampStrategy::Exponential => r.from.unwrap_or(1.0_f64.min(rate)),
            };
            (from, r.over.as_duration().as_secs_f64(), r.strategy)
        }),
    }
}

/// Where the point ran: provider, server, pod, GPU, price, client.
fn environment(
    s: &PointContext<'_>,
    e: &Experiment,
    prompt_lengths: Option<String>,
) -> Environment {
    let inf = &e.infrastructure;
    let price = s.handle.price();
    Environment {
        provider: inf.provider.as_str().into(),
        base_url: Some(s.ep().base_url()),
        pod_id: s.handle.pod_id(),
        gpu_type: match (inf.provider, &price) {
            (ProviderKind::Simulator, _) => Some(format!("simulated ({})", inf.simulator.profile)),
            (_, Some((gpu, _))) => Some(gpu.clone()),
            _ => inf.gpu_type.clone(),
        },
        gpu_count: servers(s) * inf.gpu_count,
        replicas: (servers(s) > 1).then(|| servers(s)),
        // RunPod's price is the pods'; elsewhere the user's own per server (for the cost of
        // work), times the replicas.
        price_per_hour_usd: price
            .map(|(_, p)| p)
            .or(inf.price_per_hour_usd.map(|p| p * f64::from(servers(s)))),
        image: crate::framework::container_image(e),
        server_version: s.server_version.clone(),
        client_host: std::env::var("HOSTNAME").ok(),
        client_cores: s.workers,
        prompt_lengths,
        provider_drift: s.handle.drift(),
        startup: None,
        cache_block_size: None,
    }
}
