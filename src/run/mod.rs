//! Orchestration, phase by phase: provision → health → for each point (pre-flight, warm-up,
//! workload with its collector, save) → release. Glue only: each phase lives in its module
//! (`ready`, `point`, `view`; the providers, the executor, the collector). A result file is
//! written for every point that started — `completed`, `interrupted` or `failed` with why —
//! and the server is released on every way out.

pub mod monitor;
mod point;
mod ready;
mod save;
mod view;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::client::{self, Endpoint};
use crate::config::{ProviderKind, Resolved, Secret};
use crate::metrics::collector::StopReason;
use crate::provider::{self, CostEstimate, Handle};
use crate::results::index::SweepIndex;
use crate::results::{self, RunResult, Status};
use crate::ui::say;
use crate::workload::sweep;
use crate::workload::{dataset, source};
use point::{PointOutcome, Session};
use view::Screen;

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
    /// The output directory cannot take the results (checked before anything starts).
    #[error("{0}")]
    Output(String),
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

/// What `run` produced: one result per point that started (one for a run without a sweep),
/// with where each was saved.
pub struct Outcome {
    pub points: Vec<(RunResult, PathBuf)>,
    /// The sweep's index file.
    pub index: Option<PathBuf>,
    /// Files that could not go where they belong (saved to a fallback, or nowhere).
    pub notes: Vec<String>,
    /// Stopped by the user (Ctrl-C, SIGTERM, `q`) between points: the points after were not run.
    pub interrupted: bool,
}

/// An experiment checked as far as it can be before anything is started or spent.
pub struct Prepared {
    pub resolved: Resolved,
    /// The dataset's files (JSONL prompts, a trace, recorded conversations), read and checked
    /// line by line.
    loaded: source::Loaded,
    /// `model.tokenizer`, loaded.
    tokenizer: Option<Arc<dataset::LocalTokenizer>>,
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
    // Where the results go can take them: checked before anything is rented or started.
    let e = &resolved.experiment;
    let needed = results::storage::expected_bytes(e);
    results::storage::check_output_dir(&e.output.dir, needed).map_err(RunError::Output)?;
    let loaded = source::load(&resolved)?;
    let tokenizer = match &resolved.experiment.model.tokenizer {
        Some(p) => Some(Arc::new(dataset::LocalTokenizer::load(
            &resolved.resolve_path("model.tokenizer", p),
        )?)),
        None => None,
    };
    Ok(Prepared {
        resolved,
        loaded,
        tokenizer,
        tls_ca,
    })
}

/// The cost estimate for the whole experiment (every point), from its provider.
pub async fn estimate_cost(p: &Prepared) -> Result<CostEstimate, RunError> {
    let mut workload = crate::workload::expected_duration(&p.resolved.experiment);
    // A trace lasts as long as its timestamps say (and its last answers).
    if let Some(last) = p.loaded.trace.as_ref().and_then(|t| t.requests.last()) {
        workload = workload.max(last.at + Duration::from_secs(60));
    }
    Ok(provider::estimate_cost(&p.resolved, workload).await?)
}

/// Client worker threads: one core is left to a server on this machine.
fn client_workers(p: &Prepared, opts: &RunOptions) -> usize {
    let local_server = matches!(
        p.resolved.experiment.infrastructure.provider,
        ProviderKind::Simulator | ProviderKind::Local
    );
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let default = if local_server {
        (cores - 1).max(1)
    } else {
        cores
    };
    opts.client_cores.unwrap_or(default).max(1)
}

/// Runs one prepared experiment end to end.
pub async fn run(p: &Prepared, opts: &RunOptions) -> Result<Outcome, RunError> {
    let e = &p.resolved.experiment;
    let started_at = chrono::Utc::now();
    // Kernel receive stamps on before the first connection, so no read of the run falls back
    // to the clock while the kernel switches them on (the result says how reads were stamped).
    let _ = tokio::task::spawn_blocking(client::wire::prime_kernel_stamps).await;

    // One stop for the whole run (Ctrl-C, `q`), from before anything is started: before the
    // workload it ends the run, releasing what was started; during it, see `point`.
    let stop = CancellationToken::new();
    let (stops_tx, mut stops) = mpsc::unbounded_channel::<StopReason>();
    let _signals = view::listen_for_signals(&stop, &stops_tx);
    let mut screen = Screen::start(e, opts.tui, &stop, &stops_tx);
    screen.phase("provisioning");

    // The sweep's points (one, unlabelled, without a sweep), and what a resumed sweep has done.
    let points = sweep::expand(e);
    let mut index = match (e.workload.sweep.is_some(), opts.resume) {
        (false, _) => None,
        (true, true) => Some(SweepIndex::resumable(e)?),
        (true, false) => Some(SweepIndex::new(e, started_at)),
    };
    let stamp = index.as_ref().map(|i| i.started).unwrap_or(started_at);
    let path = results::result_path(&e.output.dir, &e.name, stamp);

    // Provision: the handle releases the server on every way out of this function.
    let server_log = path.with_extension("server.log");
    let provider::Provisioned {
        base_url,
        api_key,
        mut handle,
    } = provider::provision(&p.resolved, &server_log, &run_id(&path), &stop).await?;
    screen.pod(&handle);
    screen.phase("waiting for the server");
    let ep = Endpoint::parse_trusting(&base_url, e.workload.api, api_key.clone(), p.tls_ca.clone())
        .map_err(RunError::Endpoint)?;
    let timeout = e.infrastructure.health_timeout.as_duration();
    let ready = ready::wait_ready(&ep, &e.model.id, timeout, &mut handle, &stop).await;
    let server_version = match ready {
        Ok(v) => v,
        // Stopped, or refused for a reason of the configuration (a key, a certificate): nothing
        // was measured and there is nothing to record but the error.
        Err(err @ (RunError::Interrupted | RunError::ApiKey(_) | RunError::Endpoint(_))) => {
            handle.release().await;
            return Err(err);
        }
        // The server did not become ready: the run is recorded as failed, with why.
        Err(err) => {
            let failed = not_ready(&points, &mut index, &path, &handle, err)?;
            handle.release().await;
            return Ok(failed);
        }
    };
    let mut s = Session {
        p,
        opts,
        ep: &ep,
        api_key,
        stop: &stop,
        stops: &mut stops,
        screen: &mut screen,
        handle: &mut handle,
        workers: client_workers(p, opts),
        server_version,
    };
    let mut saver = save::Saver::default();
    let (mut outcomes, spent) = sweep_points(&mut s, &points, &mut index, &path, &mut saver).await;
    drop(s);
    screen.phase("releasing the server");
    let pod = handle.pod_id().is_some();
    let spent = handle.spent_usd().max(spent);
    handle.release().await;
    // Stopped after the server was ready but before any point started: nothing was measured.
    if outcomes.is_empty() && stop.is_cancelled() {
        return Err(RunError::Interrupted);
    }
    let index_path = match &mut index {
        Some(x) => {
            x.finish(points.len());
            Some(saver.index(x, &path, spent))
        }
        None => {
            if let (true, Some((result, ppath))) = (pod, outcomes.last_mut()) {
                // One run: its cost includes the pod's whole life, termination included.
                result.cost.actual_usd = spent.max(result.cost.actual_usd);
                *ppath = saver.result(ppath, result);
            }
            None
        }
    };
    Ok(Outcome {
        points: outcomes,
        index: index_path,
        notes: saver.notes,
        interrupted: stop.is_cancelled(),
    })
}

/// Runs the points in order, writing each result (and the index) as soon as it exists.
/// Rule: after an interrupted point the sweep stops; after a failed point it goes on when the
/// server still answers, and stops when the server is gone. Returns the results and the USD
/// spent so far.
async fn sweep_points(
    s: &mut Session<'_>,
    points: &[sweep::Point],
    index: &mut Option<SweepIndex>,
    path: &Path,
    saver: &mut save::Saver,
) -> (Vec<(RunResult, PathBuf)>, f64) {
    let mut outcomes = Vec::new();
    let mut spent_before = 0.0;
    let n = points.len();
    for (i, pt) in points.iter().enumerate() {
        if index.as_ref().is_some_and(|x| x.done(&pt.label)) {
            say(format!(
                "resume: point {} already measured; skipping",
                pt.label
            ));
            continue;
        }
        if s.stop.is_cancelled() {
            break;
        }
        if index.is_some() {
            say(format!("sweep point {}/{n}: {}", i + 1, pt.label));
        }
        let PointOutcome {
            mut result,
            server_gone,
        } = point::run_point(s, pt, n).await;
        result.cost.estimated_usd = s.opts.estimated_cost_usd / n as f64;
        let spent = s.handle.spent_usd();
        result.cost.actual_usd = spent - spent_before;
        spent_before = spent;
        let intended = save::point_file(path, index.is_some(), &pt.label);
        let ppath = save_point(saver, &intended, &mut result, index, pt, path, spent);
        let go_on = match result.status {
            Status::Completed => true,
            Status::Interrupted => false,
            Status::Failed => !server_gone,
        };
        outcomes.push((result, ppath));
        if !go_on {
            if server_gone && i + 1 < n {
                say("the server is gone: the remaining points are not run (`run --resume` runs them on a new server)");
            }
            break;
        }
    }
    (outcomes, spent_before)
}

/// Writes a point's result and, in a sweep, the index after it: measured data before anything
/// else can go wrong (a slow or failing terminate cannot lose it). Returns where the result is.
fn save_point(
    saver: &mut save::Saver,
    intended: &Path,
    result: &mut RunResult,
    index: &mut Option<SweepIndex>,
    pt: &sweep::Point,
    base: &Path,
    spent: f64,
) -> PathBuf {
    let saved = saver.result(intended, result);
    if let Some(x) = index {
        let dir = base.parent().unwrap_or(Path::new(""));
        x.record(pt, &saved, dir, result);
        saver.index(x, base, spent);
    }
    saved
}

/// The server never became ready: the first point still to run is recorded as failed with the
/// reason (nothing measured), so the result and the index say what happened.
fn not_ready(
    points: &[sweep::Point],
    index: &mut Option<SweepIndex>,
    path: &Path,
    handle: &Handle,
    err: RunError,
) -> Result<Outcome, RunError> {
    let Some(pt) = points
        .iter()
        .find(|pt| !index.as_ref().is_some_and(|x| x.done(&pt.label)))
    else {
        return Err(err);
    };
    let e = &pt.experiment;
    let env = results::Environment {
        provider: e.infrastructure.provider.as_str().into(),
        pod_id: handle.pod_id(),
        gpu_count: e.infrastructure.gpu_count,
        price_per_hour_usd: handle
            .price()
            .map(|(_, p)| p)
            .or(e.infrastructure.price_per_hour_usd),
        image: e.framework.image.clone(),
        ..Default::default()
    };
    let started = chrono::Utc::now();
    let mut result = RunResult::new(e, None, Status::Failed, Some(err.to_string()), env, started);
    result.sweep_point = (!pt.label.is_empty()).then(|| pt.label.clone());
    result.cost.actual_usd = handle.spent_usd();
    let mut saver = save::Saver::default();
    let intended = save::point_file(path, index.is_some(), &pt.label);
    let spent = handle.spent_usd();
    let ppath = save_point(&mut saver, &intended, &mut result, index, pt, path, spent);
    let index_path = index.as_mut().map(|x| {
        x.finish(points.len());
        saver.index(x, path, spent)
    });
    Ok(Outcome {
        points: vec![(result, ppath)],
        index: index_path,
        notes: saver.notes,
        interrupted: false,
    })
}

/// `name-YYYYMMDD-HHMMSS` of a result path: names the run's pod and logs.
fn run_id(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}
