//! Orchestration: provision → health → pre-flight → warm-up → workload (+ collector) →
//! aggregate → save → cleanup. Glue only; each phase lives in its module. The result file is
//! written on every way out that has measured anything (completed, interrupted, failed).

pub mod monitor;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::client::{self, Endpoint};
use crate::config::{Dataset, Detail, Experiment, Pattern, ProviderKind, Resolved, Secret};
use crate::metrics::scrape::{self, Framework, ServerMetrics, ServerSample};
use crate::metrics::summary::{self, RequestRecord};
use crate::provider::{self, Handle};
use crate::results::{
    self, Bucket, ClientHealth, Cost, Environment, Errors, RunResult, Stats, Status,
};
use crate::ui::live::{Live, Snapshot};
use crate::ui::say;
use crate::ui::tui;
use crate::workload::dataset::{self, Prompt};
use crate::workload::executor::{self, Arrivals, Control, Event, Plan};
use crate::workload::sweep;

pub mod index;
use index::SweepIndex;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Dataset(#[from] dataset::DatasetError),
    #[error(transparent)]
    Provider(#[from] provider::ProviderError),
    #[error("{0}")]
    Endpoint(String),
    #[error("server at {url} did not become ready within {timeout:?}: {last}")]
    Health {
        url: String,
        timeout: Duration,
        last: String,
    },
    #[error("interrupted before the workload started; nothing was measured")]
    Interrupted,
    #[error("the server stopped before it was ready: {0}")]
    ServerGone(String),
    #[error("pre-flight request failed: {0}")]
    Preflight(String),
    #[error("{0}")]
    ApiKey(String),
    #[error("--resume: {0}")]
    Resume(String),
    #[error(transparent)]
    Results(#[from] results::ResultsError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// How the run should behave on this terminal.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub progress: bool,
    /// The live terminal view (needs a terminal on stdin and stdout).
    pub tui: bool,
    pub client_cores: Option<usize>,
    /// The estimate shown before renting, recorded in the result (`cost.estimated_usd`).
    pub estimated_cost_usd: f64,
    /// Continue the newest unfinished sweep of this experiment instead of starting anew.
    pub resume: bool,
}

/// What `run` produced: one result per point (one for a run without a sweep).
pub struct Outcome {
    pub points: Vec<(RunResult, PathBuf)>,
    /// The sweep's index file.
    pub index: Option<PathBuf>,
}

/// An experiment checked as far as it can be before anything is started or spent.
pub struct Prepared {
    pub resolved: Resolved,
    /// The JSONL prompts, read and checked line by line (`None` for generated datasets).
    jsonl: Option<Vec<Prompt>>,
    /// `model.tokenizer`, loaded.
    tokenizer: Option<dataset::LocalTokenizer>,
    /// `infrastructure.tls_ca_file`, read: the TLS settings that trust only it.
    tls_ca: Option<Arc<rustls::ClientConfig>>,
}

/// Reads and checks what the run needs from disk (the JSONL prompts, the tokenizer), so a bad
/// line or file is reported before any server is started.
pub fn prepare(resolved: Resolved) -> Result<Prepared, RunError> {
    if let Some(var) = &resolved.experiment.infrastructure.api_key_env {
        if Secret::from_env(var).is_none() {
            return Err(RunError::ApiKey(format!(
                "infrastructure.api_key_env names `{var}`, which is not set (or empty) in this \
                 environment: export {var}=<the server's key>, or remove api_key_env to send no key"
            )));
        }
    }
    // A CA file that cannot be read or holds no certificate is found before anything starts.
    let tls_ca = match &resolved.experiment.infrastructure.tls_ca_file {
        Some(ca) => Some(
            client::ca_config(&resolved.resolve_path("infrastructure.tls_ca_file", ca))
                .map_err(|m| RunError::Endpoint(format!("infrastructure.tls_ca_file: {m}")))?,
        ),
        None => None,
    };
    let w = &resolved.experiment.workload;
    let jsonl = match &w.dataset {
        Dataset::Jsonl { path } => {
            let p = resolved.resolve_path("workload.dataset.path", path);
            Some(dataset::load_jsonl(&p, w.api, w.max_tokens)?)
        }
        _ => None,
    };
    let tokenizer = match &resolved.experiment.model.tokenizer {
        Some(p) => Some(dataset::LocalTokenizer::load(
            &resolved.resolve_path("model.tokenizer", p),
        )?),
        None => None,
    };
    Ok(Prepared {
        resolved,
        jsonl,
        tokenizer,
        tls_ca,
    })
}

/// What a run is expected to cost, shown before anything is rented.
#[derive(Clone, Debug)]
pub struct CostEstimate {
    /// USD per hour for the whole pod (all its GPUs); `None` when free (no rented hardware).
    pub price_per_hour_usd: Option<f64>,
    /// Where the price came from.
    pub price_source: String,
    /// Provisioning + model load + warm-up + workload + margin.
    pub hours: f64,
}

impl CostEstimate {
    pub fn usd(&self) -> f64 {
        self.price_per_hour_usd.unwrap_or(0.0) * self.hours
    }
}

/// Assumed time to get a pod running and the model loaded (RunPod image pull + weights).
const PROVISION_AND_LOAD: Duration = Duration::from_secs(10 * 60);
/// Assumed decode speed per stream when nothing better is known (conservative).
const ASSUMED_TOKENS_PER_S_PER_STREAM: f64 = 20.0;

/// Expected wall time of the workload — of every point, for a sweep — from its bounds (a
/// deliberately pessimistic guess when only a request count is given).
pub fn workload_estimate(e: &Experiment) -> Duration {
    sweep::expand(e)
        .iter()
        .map(|p| point_estimate(&p.experiment))
        .sum()
}

fn point_estimate(e: &Experiment) -> Duration {
    let w = &e.workload;
    if let Some(d) = w.duration {
        return d.as_duration();
    }
    let n = (w.requests.unwrap_or(0) + w.warmup_requests as u64) as f64;
    let out = match &w.dataset {
        Dataset::Random { output_len, .. } | Dataset::SharedPrefix { output_len, .. } => {
            *output_len as f64
        }
        Dataset::Jsonl { .. } => w.max_tokens as f64,
    };
    let secs = match w.pattern {
        Pattern::Rate => {
            n / w.rate.unwrap_or(1.0).max(1e-3) + out / ASSUMED_TOKENS_PER_S_PER_STREAM
        }
        Pattern::Sequential => n * out / ASSUMED_TOKENS_PER_S_PER_STREAM,
        Pattern::Concurrent => {
            n * out / (ASSUMED_TOKENS_PER_S_PER_STREAM * w.concurrency.unwrap_or(1).max(1) as f64)
        }
    };
    Duration::from_secs_f64(secs.min(1e7))
}

/// The cost estimate: for RunPod, the catalog's price × GPU count (fallback:
/// `infrastructure.price_per_hour_usd`) × (provisioning and load + workload) + 20 % margin.
pub async fn estimate_cost(p: &Prepared) -> Result<CostEstimate, RunError> {
    let e = &p.resolved.experiment;
    let inf = &e.infrastructure;
    if inf.provider != ProviderKind::Runpod {
        return Ok(CostEstimate {
            price_per_hour_usd: None,
            price_source: "no rented hardware".into(),
            hours: workload_estimate(e).as_secs_f64() / 3600.0,
        });
    }
    let hours = (PROVISION_AND_LOAD + workload_estimate(e)).as_secs_f64() * 1.2 / 3600.0;
    let key = provider::runpod::api_key(Some(&p.resolved))?;
    let api = provider::runpod::api::RunPodApi::new(key, None)
        .map_err(provider::ProviderError::RunPod)?;
    let gpu = inf.gpu_type.clone().unwrap_or_default();
    let (price, source) = match api.gpu_type(&gpu).await {
        Ok(t) => {
            let per_gpu = match inf.cloud {
                crate::config::Cloud::Secure => t.price.secure,
                crate::config::Cloud::Community => t.price.community,
            } as f64;
            (
                Some(per_gpu * inf.gpu_count as f64),
                format!(
                    "RunPod catalog: ${per_gpu:.2}/hour per {gpu} × {}",
                    inf.gpu_count
                ),
            )
        }
        Err(err) => match inf.price_per_hour_usd {
            Some(pp) => (
                Some(pp),
                format!("infrastructure.price_per_hour_usd (catalog unavailable: {err})"),
            ),
            None => return Err(provider::ProviderError::RunPod(err).into()),
        },
    };
    Ok(CostEstimate {
        price_per_hour_usd: price,
        price_source: source,
        hours,
    })
}

/// Runs one prepared experiment end to end.
pub async fn run(p: &Prepared, opts: &RunOptions) -> Result<Outcome, RunError> {
    let r = &p.resolved;
    let e = &r.experiment;
    let started_at = chrono::Utc::now();
    let local_server = matches!(
        e.infrastructure.provider,
        ProviderKind::Simulator | ProviderKind::Local
    );
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let workers = opts
        .client_cores
        .unwrap_or(if local_server {
            (cores - 1).max(1)
        } else {
            cores
        })
        .max(1);

    // Kernel receive stamps on before the first connection, so no read of the run falls back
    // to the clock while the kernel switches them on (the result says how reads were stamped).
    let _ = tokio::task::spawn_blocking(client::wire::prime_kernel_stamps).await;

    let control = Arc::new(Control::default());
    // Ctrl-C, from before anything is started: before the workload it ends the run (releasing
    // what was started); during it the first stops sending (in-flight requests finish), the
    // second saves at once. Once installed, SIGINT no longer kills the process by default.
    let (int_tx, mut int_rx) = mpsc::unbounded_channel::<Stop>();
    // The listener belongs to this run: a later experiment in the same invocation installs its
    // own, and a stale one would keep stopping a control nobody reads.
    let _sigint = {
        let control = control.clone();
        let int_tx = int_tx.clone();
        AbortOnDrop(tokio::spawn(async move {
            let mut n = 0;
            while tokio::signal::ctrl_c().await.is_ok() {
                n += 1;
                control.stop();
                let _ = int_tx.send(Stop::Interrupt);
                if n >= 2 {
                    break;
                }
            }
        }))
    };

    // The live view: it draws snapshots this function publishes, and its keys act like Ctrl-C.
    let mut live = Live::new(
        format!(
            "{} · {} on {}",
            e.name,
            e.model.id,
            e.infrastructure.provider.as_str()
        ),
        e.workload.requests,
        true,
    );
    let (snap_tx, snap_rx) = watch::channel(Snapshot::default());
    let _tui = if opts.tui {
        let (control, int_tx) = (control.clone(), int_tx.clone());
        let keys = move |k: tui::Request| {
            control.stop();
            let _ = int_tx.send(match k {
                tui::Request::Quit => Stop::Quit,
                tui::Request::Interrupt => Stop::Interrupt,
            });
        };
        tui::start_or_plain(snap_rx, Instant::now(), keys)
    } else {
        None
    };
    live.set_phase("provisioning");
    publish(&snap_tx, &mut live, 0);

    // The sweep's points (one, unlabelled, without a sweep), and what a resumed sweep has done.
    let points = sweep::expand(e);
    let mut index = if e.workload.sweep.is_some() {
        Some(match opts.resume {
            true => SweepIndex::resumable(e)?,
            false => SweepIndex::new(e, started_at),
        })
    } else {
        None
    };
    let stamp = index.as_ref().map(|i| i.started).unwrap_or(started_at);

    // Provision: the handle releases the server on every way out of this function.
    let path = results::result_path(&e.output.dir, &e.name, stamp);
    let server_log = path.with_extension("server.log");
    let provider::Provisioned {
        base_url,
        api_key,
        mut handle,
    } = provider::provision(r, &server_log, &run_id(&path), &control).await?;
    live.set_pod(
        pod_line(&handle),
        handle.pod_id().map(|_| handle.spent_usd()),
    );
    live.set_phase("waiting for the server");
    publish(&snap_tx, &mut live, 0);
    let ep = Endpoint::parse_trusting(&base_url, e.workload.api, api_key.clone(), p.tls_ca.clone())
        .map_err(RunError::Endpoint)?;
    let health_timeout = e.infrastructure.health_timeout.as_duration();
    let server_version =
        wait_ready(&ep, &e.model.id, health_timeout, &mut handle, &control).await?;

    let mut s = Session {
        p,
        opts,
        ep: &ep,
        api_key,
        control: &control,
        int_rx: &mut int_rx,
        live: &mut live,
        snap_tx: &snap_tx,
        handle: &handle,
        workers,
        server_version,
    };
    let mut outcomes: Vec<(RunResult, PathBuf)> = Vec::new();
    let mut spent_before = 0.0;
    let n_points = points.len();
    for (i, pt) in points.iter().enumerate() {
        if index.as_ref().is_some_and(|x| x.done(&pt.label)) {
            say(format!(
                "resume: point {} already measured; skipping",
                pt.label
            ));
            continue;
        }
        if control.stopped() {
            break;
        }
        let ppath = match &index {
            Some(_) => point_path(&path, &pt.label),
            None => path.clone(),
        };
        if index.is_some() {
            say(format!("sweep point {}/{n_points}: {}", i + 1, pt.label));
        }
        let point_started = chrono::Utc::now();
        let mut result = run_point(&mut s, pt, point_started, n_points).await?;
        result.cost.estimated_usd = opts.estimated_cost_usd / n_points as f64;
        let spent = s.handle.spent_usd();
        result.cost.actual_usd = spent - spent_before;
        spent_before = spent;
        // Measured data first, then the pod: a slow or failing terminate cannot lose the results.
        results::write_atomic(&ppath, &result)?;
        if let Some(x) = &mut index {
            x.record(pt, &ppath, &result);
            x.write(&path, spent)?;
        }
        let stop = result.status != Status::Completed;
        outcomes.push((result, ppath));
        if stop {
            break;
        }
    }
    drop(s);
    live.set_phase("releasing the server");
    publish(&snap_tx, &mut live, 0);
    let pod = handle.pod_id().is_some();
    handle.release().await;
    if let Some(x) = &mut index {
        x.finish(points.len());
        x.write(&path, spent_before)?;
    } else if let (true, Some((result, ppath))) = (pod, outcomes.last_mut()) {
        // One run: its cost includes the pod's whole life, termination included.
        result.cost.actual_usd = spent_before.max(result.cost.actual_usd);
        results::write_atomic(ppath, result)?;
    }
    Ok(Outcome {
        points: outcomes,
        index: index.map(|_| SweepIndex::path(&path)),
    })
}

/// What every point of a run shares: the server, the keys, the view.
struct Session<'a> {
    p: &'a Prepared,
    opts: &'a RunOptions,
    ep: &'a Endpoint,
    api_key: Option<Secret>,
    control: &'a Arc<Control>,
    int_rx: &'a mut mpsc::UnboundedReceiver<Stop>,
    live: &'a mut Live,
    snap_tx: &'a watch::Sender<Snapshot>,
    handle: &'a Handle,
    workers: usize,
    server_version: Option<String>,
}

fn publish(tx: &watch::Sender<Snapshot>, live: &mut Live, in_flight: u64) {
    tx.send_replace(live.snapshot(Instant::now(), in_flight, Vec::new()));
}

/// `dir/name-stamp.json` → `dir/name-stamp-LABEL.json`.
fn point_path(path: &std::path::Path, label: &str) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!("{stem}-{label}.json"))
}

/// One workload on the ready server: prompts, pre-flight, the timed window with its scraper,
/// and the result (not yet written).
async fn run_point(
    s: &mut Session<'_>,
    pt: &sweep::Point,
    started_at: chrono::DateTime<chrono::Utc>,
    n_points: usize,
) -> Result<RunResult, RunError> {
    let e = &pt.experiment;
    let (ep, control) = (s.ep, s.control);
    control.sent.store(0, std::sync::atomic::Ordering::Relaxed);
    s.live.start_point(
        if pt.label.is_empty() {
            None
        } else {
            Some(format!("point {} ({} points)", pt.label, n_points))
        },
        e.workload.requests,
    );

    // The server's own view, from now until the workload ends, on the run's event channel.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let metrics_url = monitor::metrics_url(&ep.base_url());
    let _scraper = e.metrics.scrape.then(|| {
        AbortOnDrop(tokio::spawn(scrape::run(
            metrics_url.clone(),
            s.api_key.clone(),
            e.metrics.scrape_interval.as_duration(),
            tx.clone(),
        )))
    });
    s.live.set_phase("preparing prompts");
    publish(s.snap_tx, s.live, 0);

    // Prompts.
    let measured = e.workload.requests.unwrap_or(1000) as usize;
    let warmup = e.workload.warmup_requests as usize;
    let (prompts, lengths) = match s.p.jsonl.clone() {
        Some(p) => (p, None),
        None => {
            let lengths = dataset::Lengths {
                cal: dataset::calibrate(ep, &e.model.id, e.workload.api, e.seed).await,
                tokenizer: s.p.tokenizer.as_ref(),
                api: e.workload.api,
            };
            let n = (measured + warmup).min(100_000);
            let prompts =
                dataset::synthesize(&e.workload.dataset, e.workload.api, n, e.seed, &lengths);
            (prompts, Some(describe_lengths(&lengths)))
        }
    };
    let prompts = Arc::new(prompts);

    preflight(ep, &e.model.id, e.workload.api).await?;

    // The measured workload.
    let plan = plan(e, ep, prompts.clone(), warmup as u64, s.workers);
    let c = control.clone();
    let mut exec = tokio::task::spawn_blocking(move || executor::run(plan, c, tx));
    let mut col = Collector::new(e);
    let bar = (s.opts.progress && !s.opts.tui).then(|| progress_bar(e.workload.requests));
    let mut interrupted = 0;
    let budget = e.infrastructure.max_cost_usd;
    let handle = s.handle;
    let watch_pod = budget.is_some() || handle.pod_id().is_some();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut frame = tokio::time::interval(Duration::from_millis(100));
    s.live
        .set_phase(if warmup > 0 { "warm-up" } else { "connecting" });
    let tui = s.opts.tui;
    let snap_tx = s.snap_tx;
    let int_rx = &mut *s.int_rx;
    let mut on = OnEvent {
        e,
        control,
        bar: bar.as_ref(),
        live: tui.then_some(&mut *s.live),
        metrics_url: &metrics_url,
    };
    loop {
        tokio::select! {
            _ = tick.tick(), if watch_pod => {
                let spent = handle.spent_usd();
                let stop = match budget.filter(|m| spent >= *m) {
                    Some(max) => Some(format!("max_cost_usd: ${spent:.2} spent, budget ${max:.2}")),
                    None => handle.expired(),
                };
                if let Some(why) = stop.filter(|_| col.termination.is_none()) {
                    say(format!("{why}; stopping"));
                    col.termination = Some(why);
                    control.stop();
                }
            }
            _ = frame.tick(), if on.live.is_some() => {
                if let Some(l) = on.live.as_deref_mut() {
                    l.set_pod(pod_line(handle), handle.pod_id().map(|_| handle.spent_usd()));
                    let finished = col.records.len() as u64;
                    let sent = control.sent.load(std::sync::atomic::Ordering::Relaxed);
                    publish(snap_tx, l, sent.saturating_sub(finished));
                }
            }
            // The executor has returned, so every event it sent is queued: take them and stop.
            _ = &mut exec => {
                while let Ok(ev) = rx.try_recv() {
                    on.event(&mut col, ev);
                }
                break;
            }
            ev = rx.recv() => match ev {
                Some(ev) => on.event(&mut col, ev),
                None => break,
            },
            Some(why) = int_rx.recv() => {
                interrupted += 1;
                if col.termination.is_none() {
                    col.termination = Some(match why {
                        Stop::Interrupt => "interrupted".into(),
                        Stop::Quit => "interrupted: q pressed in the live view".into(),
                    });
                }
                if interrupted >= 2 {
                    say("second Ctrl-C: saving what was measured and exiting");
                    break;
                }
                say("stopping: no new requests; waiting for those in flight (Ctrl-C again to stop now)");
            }
        }
    }
    let end = Instant::now();
    // One more scrape after the last request, so the server's counters cover the whole window.
    if e.metrics.scrape && interrupted < 2 {
        let wait = e.metrics.scrape_interval.as_duration() * 2 + Duration::from_secs(1);
        let _ = tokio::time::timeout(wait, async {
            while let Some(ev) = rx.recv().await {
                if matches!(ev, Event::Server(_)) {
                    on.event(&mut col, ev);
                    break;
                }
            }
        })
        .await;
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let status = if interrupted > 0 {
        Status::Interrupted
    } else {
        Status::Completed
    };
    let termination = col.termination.clone().unwrap_or_else(|| {
        if e.workload.duration.is_some()
            && e.workload
                .requests
                .is_none_or(|n| (col.records.len() as u64) < n)
        {
            "duration".into()
        } else {
            "completed".into()
        }
    });
    let env = Environment {
        provider: e.infrastructure.provider.as_str().into(),
        base_url: Some(ep.base_url()),
        pod_id: handle.pod_id(),
        gpu_type: match (e.infrastructure.provider, handle.price()) {
            (ProviderKind::Simulator, _) => Some(format!(
                "simulated ({})",
                e.infrastructure.simulator.profile
            )),
            (_, Some((gpu, _))) => Some(gpu),
            _ => e.infrastructure.gpu_type.clone(),
        },
        gpu_count: e.infrastructure.gpu_count,
        price_per_hour_usd: handle.price().map(|(_, p)| p),
        image: e.framework.image.clone(),
        server_version: s.server_version.clone(),
        client_host: std::env::var("HOSTNAME").ok(),
        client_cores: s.workers,
        prompt_lengths: lengths,
    };
    s.live.set_phase("saving");
    publish(s.snap_tx, s.live, 0);
    let mut result = col.finish(e, end, status, termination, started_at, env);
    result.sweep_point = (!pt.label.is_empty()).then(|| pt.label.clone());
    Ok(result)
}

fn plan(
    e: &Experiment,
    ep: &Endpoint,
    prompts: Arc<Vec<Prompt>>,
    warmup: u64,
    workers: usize,
) -> Plan {
    let w = &e.workload;
    let arrivals = match w.pattern {
        Pattern::Sequential => Arrivals::Closed { concurrency: 1 },
        Pattern::Concurrent => Arrivals::Closed {
            concurrency: w.concurrency.unwrap_or(1),
        },
        Pattern::Rate => Arrivals::Open {
            offsets: Arc::new(crate::workload::arrival_offsets(
                w.arrival,
                w.rate.unwrap_or(1.0),
                w.burstiness,
                w.requests,
                w.duration.map(|d| d.as_duration()),
                e.seed,
            )),
            max_in_flight: w.max_concurrency,
        },
    };
    let conc = match &arrivals {
        Arrivals::Closed { concurrency } => *concurrency as usize,
        Arrivals::Open { max_in_flight, .. } => max_in_flight.unwrap_or(workers as u32) as usize,
    };
    Plan {
        endpoint: ep.clone(),
        model: e.model.id.clone(),
        api: w.api,
        prompts,
        warmup,
        ignore_eos: w.ignore_eos,
        request_timeout: w.request_timeout.as_duration(),
        arrivals,
        count: w.requests,
        duration: w.duration.map(|d| d.as_duration()),
        on_deadline: w.on_deadline,
        // Never more worker threads than slots.
        workers: workers.min(conc.max(1)),
    }
}

/// `name-YYYYMMDD-HHMMSS` of a result path: names the run's pod and logs.
fn run_id(path: &std::path::Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// How random prompt lengths were made, for the result file.
fn describe_lengths(l: &dataset::Lengths) -> String {
    let c = &l.cal;
    let server = if c.calibrated {
        format!(
            "calibrated via /tokenize ({:.3} tokens/word, {:.1} template tokens)",
            c.tokens_per_word, c.overhead
        )
    } else {
        "estimated (no /tokenize: 1 word = 1 token)".into()
    };
    match l.tokenizer {
        Some(t) => format!("exact with tokenizer {}; template: {server}", t.path()),
        None => server,
    }
}

/// Why a `GET` was not a 200.
enum NotOk {
    /// 401 or 403, or a TLS certificate refused: waiting will not change it.
    Refused(String),
    Other(String),
}

/// The body of a 200 answer to `GET path`, or what the server said instead.
async fn get_ok(ep: &Endpoint, path: &str, timeout: Duration) -> Result<Vec<u8>, NotOk> {
    match client::http_call(ep, "GET", path, None, timeout).await {
        Ok((200, body)) => Ok(body),
        Ok((s, body)) => {
            let said = format!(
                "{path} answered {s}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            );
            Err(match s {
                401 | 403 => NotOk::Refused(said),
                _ => NotOk::Other(said),
            })
        }
        Err(e) if e.message.contains(client::TLS_REFUSED) => Err(NotOk::Refused(e.message)),
        Err(e) => Err(NotOk::Other(e.message)),
    }
}

/// A 401/403 or a refused TLS certificate, with what to do about it.
fn refused(ep: &Endpoint, said: String) -> RunError {
    if said.contains(client::TLS_REFUSED) && said.contains("certificate") {
        return RunError::Endpoint(format!(
            "{said} — if the server's certificate comes from a private CA (or is self-signed), \
             name that CA's PEM file in `infrastructure.tls_ca_file`; otherwise use the host name \
             the certificate was issued for"
        ));
    }
    if said.contains(client::TLS_REFUSED) {
        return RunError::Endpoint(said);
    }
    let hint = match ep.api_key {
        Some(_) => "the server refused the API key that was sent (from `infrastructure.api_key_env`, else `api_keys.openai` in the user config)",
        None => "the server wants an API key: name the variable that holds it in `infrastructure.api_key_env` (or set `api_keys.openai` in the user config)",
    };
    RunError::ApiKey(format!("{said} — {hint}"))
}

/// `/health` answers 200 and `/v1/models` lists the model; returns the server's version.
async fn wait_ready(
    ep: &Endpoint,
    model: &str,
    timeout: Duration,
    handle: &mut Handle,
    control: &Control,
) -> Result<Option<String>, RunError> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(50);
    loop {
        let models = async {
            get_ok(ep, "/health", Duration::from_secs(10)).await?;
            get_ok(ep, "/v1/models", Duration::from_secs(10)).await
        };
        let last = match models.await.map_err(|e| match e {
            NotOk::Refused(said) => Err(refused(ep, said)),
            NotOk::Other(said) => Ok(said),
        }) {
            Ok(body) => {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let ids: Vec<&str> = v["data"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|m| m["id"].as_str()).collect())
                    .unwrap_or_default();
                if !ids.contains(&model) {
                    return Err(RunError::Preflight(format!(
                        "the server does not serve `{model}`; it serves: {}",
                        ids.join(", ")
                    )));
                }
                let version = get_ok(ep, "/version", Duration::from_secs(5))
                    .await
                    .ok()
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                    .and_then(|v| v["version"].as_str().map(String::from));
                return Ok(version);
            }
            Err(Err(refused)) => return Err(refused),
            Err(Ok(last)) => last,
        };
        if let Some(reason) = handle.gone() {
            return Err(RunError::ServerGone(reason));
        }
        if control.stopped() {
            return Err(RunError::Interrupted);
        }
        if start.elapsed() >= timeout {
            let last = match handle.diagnostics() {
                Some(d) => format!("{last}\n{d}"),
                None => last,
            };
            return Err(RunError::Health {
                url: ep.base_url(),
                timeout,
                last,
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// One small streaming request through the benchmark client; quotes the server's error.
async fn preflight(ep: &Endpoint, model: &str, api: crate::config::Api) -> Result<(), RunError> {
    let mut conn = client::connect(ep)
        .await
        .map_err(|e| RunError::Preflight(e.message))?;
    let prompt = client::api::of(api).text_prompt("Say hello.").to_string();
    let body = client::request_body(api, model, &prompt, 2, false);
    let r = client::send(&mut conn, ep, body, Duration::from_secs(120), None).await;
    match r.error {
        None => Ok(()),
        Some(e) => Err(RunError::Preflight(e.message)),
    }
}

fn progress_bar(total: Option<u64>) -> indicatif::ProgressBar {
    let b = match total {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    b.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} requests  {per_sec}  {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    b.enable_steady_tick(Duration::from_millis(200));
    b
}

/// Aborts a background task when the run that started it ends, on every path out.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Why the workload is asked to stop early, besides the stop rules.
enum Stop {
    /// Ctrl-C (the signal, or the key in the live view).
    Interrupt,
    /// `q` in the live view.
    Quit,
}

/// The live view's pod line: id, GPU and price, for pod providers.
fn pod_line(h: &Handle) -> Option<String> {
    let id = h.pod_id()?;
    Some(match h.price() {
        Some((gpu, p)) => format!("pod {id} · {gpu} · ${p:.2}/hour"),
        None => format!("pod {id}"),
    })
}

/// Routes one event to the aggregator and, when they are on, the progress bar and live view;
/// applies the error-rate stop rule.
struct OnEvent<'a> {
    e: &'a Experiment,
    control: &'a Control,
    bar: Option<&'a indicatif::ProgressBar>,
    live: Option<&'a mut Live>,
    metrics_url: &'a str,
}

impl OnEvent<'_> {
    fn event(&mut self, col: &mut Collector, ev: Event) {
        match ev {
            Event::Started {
                t0,
                connect_times,
                connect_errors,
            } => {
                col.t0 = Some(t0);
                col.connect_ms = connect_times
                    .iter()
                    .map(|d| d.as_secs_f64() * 1e3)
                    .collect();
                col.connect_errors = connect_errors;
                if let Some(l) = self.live.as_deref_mut() {
                    l.set_phase("running");
                }
            }
            Event::Request(rec) => {
                let (r, gaps) = col.add(*rec);
                if let Some(l) = self.live.as_deref_mut() {
                    l.on_record(r, gaps, Instant::now());
                }
                if let Some(b) = self.bar {
                    b.set_position(col.records.len() as u64);
                    b.set_message(format!("{} failed", col.failed()));
                }
                if let Some(max) = self.e.workload.max_error_rate {
                    let n = col.records.len();
                    if n >= 20 && col.failed() as f64 / n as f64 > max && col.termination.is_none()
                    {
                        col.termination = Some(format!(
                            "max_error_rate: {} of {n} requests failed (limit {:.0}%)",
                            col.failed(),
                            max * 100.0
                        ));
                        self.control.stop();
                    }
                }
            }
            Event::Server(s) => {
                if let Some(l) = self.live.as_deref_mut() {
                    l.on_server(self.metrics_url, s.framework, &s.sample);
                }
                col.framework = s.framework;
                col.server.push((s.at, s.sample));
            }
        }
    }
}

/// The one owner of measured data during a run.
struct Collector {
    t0: Option<Instant>,
    records: Vec<RequestRecord>,
    itl_ms: Vec<f64>,
    lag_ms: Vec<f64>,
    connect_ms: Vec<f64>,
    connect_errors: Vec<String>,
    errors: Errors,
    buckets: BTreeMap<u64, (Bucket, Vec<f64>)>,
    termination: Option<String>,
    full: bool,
    total_reads: u64,
    kernel_reads: u64,
    /// Scrapes of the server's `/metrics`, with when each started.
    server: Vec<(Instant, ServerSample)>,
    framework: Framework,
    scrape_interval: Duration,
}

impl Collector {
    fn new(e: &Experiment) -> Self {
        Self {
            t0: None,
            records: Vec::new(),
            itl_ms: Vec::new(),
            lag_ms: Vec::new(),
            connect_ms: Vec::new(),
            connect_errors: Vec::new(),
            errors: Errors::default(),
            buckets: BTreeMap::new(),
            termination: None,
            full: e.output.detail == Detail::Full,
            total_reads: 0,
            kernel_reads: 0,
            server: Vec::new(),
            framework: Framework::Unknown,
            scrape_interval: e.metrics.scrape_interval.as_duration(),
        }
    }

    /// Adds one finished request; returns its record and inter-token gaps (ms).
    fn add(&mut self, rec: executor::Record) -> (&RequestRecord, &[f64]) {
        let t0 = self.t0.unwrap_or(rec.result.sent);
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let r = &rec.result;
        let sent_ms = if r.sent >= t0 {
            ms(r.sent - t0)
        } else {
            -ms(t0 - r.sent)
        };
        if let Some(s) = rec.scheduled {
            self.lag_ms.push((sent_ms - ms(s)).max(0.0));
        }
        let (output_tokens, source) = match r.usage_completion_tokens {
            Some(n) => (n, "usage"),
            None => (r.token_times.len() as u32, "chunks"),
        };
        let input_tokens = r.usage_prompt_tokens.or(rec.expected_input_tokens);
        let gaps: Vec<f64> = r.itl().map(ms).collect();
        let gaps_at = self.itl_ms.len();
        match &r.error {
            None => self.itl_ms.extend_from_slice(&gaps),
            Some(err) => {
                let k = err.kind.as_str().to_string();
                *self.errors.by_kind.entry(k.clone()).or_default() += 1;
                self.errors
                    .samples
                    .entry(k)
                    .or_insert_with(|| err.message.clone());
            }
        }
        self.total_reads += r.reads as u64;
        self.kernel_reads += r.kernel_reads as u64;
        let rec_out = RequestRecord {
            id: rec.index,
            scheduled_ms: rec.scheduled.map(ms),
            sent_ms,
            ttft_ms: r.ttft().map(ms),
            e2el_ms: ms(r.e2el()),
            input_tokens,
            output_tokens,
            tokens_source: source.into(),
            reads: r.reads,
            itl_ms: self.full.then_some(gaps),
            error: r.error.clone(),
            server_prefill_ms: r.server_timings.map(|t| t.0),
            server_decode_ms: r.server_timings.map(|t| t.1),
        };
        let second = if r.end >= t0 {
            (r.end - t0).as_secs()
        } else {
            0
        };
        let (b, ttfts) = self.buckets.entry(second).or_insert_with(|| {
            (
                Bucket {
                    second,
                    ..Default::default()
                },
                Vec::new(),
            )
        });
        if rec_out.ok() {
            b.completed += 1;
            b.output_tokens += output_tokens as u64;
            if let Some(t) = rec_out.ttft_ms {
                ttfts.push(t);
            }
        } else {
            b.failed += 1;
        }
        self.records.push(rec_out);
        let last = self.records.len() - 1;
        (&self.records[last], &self.itl_ms[gaps_at..])
    }

    /// The scrapes, stamped relative to the timed window's start, and their summary.
    fn server_metrics(&mut self, duration_s: f64) -> Option<ServerMetrics> {
        if self.server.is_empty() {
            return None;
        }
        let t0 = self.t0.unwrap_or(self.server[0].0);
        let ms = |at: Instant| {
            if at >= t0 {
                (at - t0).as_secs_f64() * 1e3
            } else {
                -(t0 - at).as_secs_f64() * 1e3
            }
        };
        let mut m = ServerMetrics {
            framework: self.framework,
            interval_ms: self.scrape_interval.as_secs_f64() * 1e3,
            summary: Default::default(),
            samples: std::mem::take(&mut self.server)
                .into_iter()
                .map(|(at, mut s)| {
                    s.t_ms = ms(at);
                    s
                })
                .collect(),
        };
        m.summarize(duration_s * 1e3);
        Some(m)
    }

    /// Failed requests so far (the sum over error kinds).
    fn failed(&self) -> u64 {
        self.errors.by_kind.values().sum()
    }

    fn finish(
        mut self,
        e: &Experiment,
        end: Instant,
        status: Status,
        termination: String,
        started_at: chrono::DateTime<chrono::Utc>,
        env: Environment,
    ) -> RunResult {
        let duration_s = self
            .t0
            .map(|t| end.saturating_duration_since(t).as_secs_f64())
            .unwrap_or(0.0);
        // Throughput divides by the time to the last completion, not to the collector's wake-up.
        let last_end_ms = self
            .records
            .iter()
            .map(|r| r.sent_ms + r.e2el_ms)
            .fold(0.0, f64::max);
        let duration_s = if last_end_ms > 0.0 {
            last_end_ms / 1e3
        } else {
            duration_s
        };
        self.records.sort_by_key(|r| r.id);
        let summary = summary::summarize(
            &self.records,
            std::mem::take(&mut self.itl_ms),
            duration_s,
            &e.metrics.percentiles,
            e.metrics.slo.as_ref(),
            e.infrastructure.gpu_count,
        );
        let server_metrics = self.server_metrics(duration_s);
        let mut warnings = Vec::new();
        let lag = (!self.lag_ms.is_empty()).then(|| Stats::of(std::mem::take(&mut self.lag_ms)));
        if let Some(l) = &lag {
            if l.p99 > 10.0 {
                warnings.push(format!("requests left up to {:.1} ms late (p99) against the schedule: the client or this machine was saturated; rates are lower than asked", l.p99));
            }
        }
        for c in &self.connect_errors {
            warnings.push(format!("pre-warm connect failed: {c}"));
        }
        let n = self.records.len().max(1) as f64;
        let time_series = self
            .buckets
            .into_values()
            .map(|(mut b, mut t)| {
                t.sort_by(f64::total_cmp);
                if !t.is_empty() {
                    b.ttft_p50_ms = Some(summary::percentile(&t, 50.0));
                    b.ttft_p99_ms = Some(summary::percentile(&t, 99.0));
                }
                b
            })
            .collect();
        let mut config = serde_json::to_value(e).unwrap_or_default();
        if let Some(m) = config
            .pointer_mut("/framework/env")
            .and_then(|v| v.as_object_mut())
        {
            for v in m.values_mut() {
                *v = "<redacted>".into();
            }
        }
        RunResult {
            schema_version: results::SCHEMA_VERSION,
            tool: results::Tool::current(),
            name: e.name.clone(),
            status,
            error: None,
            termination_reason: termination,
            started_at: started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            finished_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            seed: e.seed,
            config,
            environment: env,
            cost: Cost::default(),
            summary,
            errors: self.errors,
            time_series,
            server_metrics,
            sweep_point: None,
            client: ClientHealth {
                connect_ms: Stats::of(self.connect_ms),
                pacer_lag_ms: lag,
                reads_per_request: self.total_reads as f64 / n,
                read_stamps: read_stamps(self.kernel_reads, self.total_reads),
                warnings,
            },
            requests: self.records,
        }
    }
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
