//! Orchestration, phase by phase: provision → health → for each point (pre-flight, warm-up,
//! workload with its collector, save) → release. Glue only: each phase lives in its module
//! (`ready`, `point`, `view`; the providers, the executor, the collector). A result file is
//! written for every point that started — `completed`, `interrupted` or `failed` with why —
//! and the server is released on every way out.

mod cache;
mod deployment;
mod evals;
mod matrix;
pub mod monitor;
pub mod plan;
mod point;
pub mod progress;
mod ready;
mod save;
mod search;
mod shared;
pub mod stop;
mod view;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::client;
use crate::config::{deploy, ExistingSite, Experiment, ProviderKind, Resolved, Secret, Site};
use crate::provider::{self, CostEstimate};
use crate::results::{self, RunResult};
use crate::workload::sweep;
use crate::workload::{dataset, source};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Dataset(#[from] dataset::DatasetError),
    #[error("{0}")]
    Config(String),
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
    /// Progress on stderr without the live view: a bar, plain lines, or nothing.
    pub progress: progress::ProgressMode,
    /// The live terminal view (needs a terminal on stdin and stdout).
    pub tui: bool,
    pub client_cores: Option<usize>,
    /// The estimate shown before renting, per deployment (in `Matrix::deployments` order),
    /// recorded in the results (`cost.estimated_usd`).
    pub estimated_cost_usd: Vec<f64>,
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
    /// Each capacity search's answer.
    pub answers: Vec<String>,
    /// What the points are judged against in the run's table (`ui::table_slo`).
    pub slo: Option<(crate::config::Slo, f64)>,
    /// Stopped by the user (Ctrl-C, SIGTERM, `q`) between points: the points after were not run.
    pub interrupted: bool,
    /// `max_cost_usd` stopped the run: a point was cut short, or points were not run.
    pub budget_spent: bool,
}

/// What a run deploys: its deployments (one, unnamed, without `deployments`), each checked as
/// far as it can be before anything is started or spent.
pub struct Matrix {
    /// The experiment as written (with its `deployments`).
    pub experiment: Experiment,
    pub deployments: Vec<Prepared>,
    /// How many deployments run at once.
    pub max_parallel: usize,
}

impl Matrix {
    /// Whether the run is a matrix of named deployments.
    pub fn is_matrix(&self) -> bool {
        self.experiment.deployments.is_some()
    }

    /// Every point of every deployment, in order.
    pub fn points(&self) -> Vec<sweep::Point> {
        self.deployments
            .iter()
            .flat_map(|p| sweep::expand_on(&p.resolved.experiment, p.deployment.as_deref()))
            .collect()
    }
}

/// One deployment's experiment, checked as far as it can be before anything is started.
pub struct Prepared {
    pub resolved: Resolved,
    /// Its name in a matrix.
    pub deployment: Option<String>,
    /// The dataset's files (JSONL prompts, a trace, recorded conversations), read and checked
    /// line by line.
    loaded: source::Loaded,
    /// `model.tokenizer`, loaded.
    tokenizer: Option<Arc<dataset::LocalTokenizer>>,
    /// `infrastructure.tls_ca_file`, read: the TLS settings that trust only it.
    tls_ca: Option<Arc<rustls::ClientConfig>>,
    /// `evals`, read — when this deployment is one of those graded.
    evals: Option<evals::EvalPlan>,
}

/// Reads and checks what the run needs from disk (the JSONL prompts, the tokenizer) for every
/// deployment, so a bad line or file is reported before any server is started.
pub fn prepare(resolved: Resolved) -> Result<Matrix, RunError> {
    let deployments = deploy::expand(&resolved).map_err(|e| RunError::Config(e.to_string()))?;
    let experiment = resolved.experiment.clone();
    let max_parallel = experiment
        .deployments
        .as_ref()
        .map_or(1, |d| d.max_parallel.max(1) as usize);
    let deployments = match deployments.is_empty() {
        true => vec![prepare_one(resolved, None)?],
        false => deployments
            .into_iter()
            .map(|d| prepare_one(d.resolved, Some(d.name)))
            .collect::<Result<_, _>>()?,
    };
    let mut m = Matrix {
        experiment,
        deployments,
        max_parallel,
    };
    if let Some(rule) = m.experiment.evals.as_ref().map(|e| e.deployments) {
        let exps: Vec<&Experiment> = m
            .deployments
            .iter()
            .map(|p| &p.resolved.experiment)
            .collect();
        let chosen = evals::selected(&exps, rule);
        for (p, graded) in m.deployments.iter_mut().zip(chosen) {
            if !graded {
                p.evals = None;
            }
        }
    }
    room_for_streams(&m)?;
    Ok(m)
}

/// Raises the open-file limit to what the run's streams need (say so), or refuses the run up
/// front when even the hard limit is too low: past the limit every connection fails.
fn room_for_streams(m: &Matrix) -> Result<(), RunError> {
    let most = m
        .points()
        .iter()
        .map(|p| streams_of(&p.experiment))
        .max()
        .unwrap_or(1);
    let streams = most.saturating_mul(m.max_parallel.min(m.deployments.len()) as u64);
    match client::limits::ensure_open_files(streams) {
        Ok(client::limits::Raised::Raised { from, to }) => {
            crate::ui::say(format!(
                "open-file limit raised from {from} to {to} for {streams} concurrent streams"
            ));
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(why) => Err(RunError::Config(why)),
    }
}

/// The most streams one point of `e` holds open at once: its concurrency (a capacity search:
/// its largest probe), or an open loop's `max_concurrency` (without one, the 256 connections it
/// keeps warm — beyond them it opens more only while requests pile up).
fn streams_of(e: &Experiment) -> u64 {
    use crate::config::{Pace, Points};
    let load = e.workload.load();
    match (load.points, load.pace) {
        (Points::Search(s), _) if s.over.is_closed() => s.max.max(1.0) as u64,
        (_, Pace::Closed { concurrency }) => u64::from(concurrency),
        (_, Pace::Open { max_in_flight, .. } | Pace::Trace { max_in_flight }) => {
            max_in_flight.map_or(256, u64::from)
        }
    }
}

fn prepare_one(resolved: Resolved, deployment: Option<String>) -> Result<Prepared, RunError> {
    if let Some(var) = resolved.experiment.infrastructure.api_key_env() {
        if Secret::from_env(var).is_none() {
            return Err(RunError::ApiKey(format!(
                "infrastructure.api_key_env names `{var}`, which is not set (or empty) in this \
                 environment: export {var}=<the server's key>, or remove api_key_env to send no key"
            )));
        }
    }
    // A CA file that cannot be read or holds no certificate is found before anything starts.
    let tls_ca = match resolved.experiment.infrastructure.site() {
        Site::Existing(ExistingSite {
            tls_ca_file: Some(ca),
            ..
        }) => Some(
            client::ca_config(&resolved.resolve_path("infrastructure.tls_ca_file", ca))
                .map_err(|m| RunError::Endpoint(format!("infrastructure.tls_ca_file: {m}")))?,
        ),
        _ => None,
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
    let evals = evals::load(&resolved).map_err(RunError::Config)?;
    Ok(Prepared {
        resolved,
        deployment,
        loaded,
        tokenizer,
        tls_ca,
        evals,
    })
}

/// The cost estimate of each deployment (every point), from its provider.
pub async fn estimate_cost(m: &Matrix) -> Result<Vec<CostEstimate>, RunError> {
    let mut out = Vec::new();
    for p in &m.deployments {
        out.push(estimate_one(p).await?);
    }
    Ok(out)
}

/// The most USD per hour running at once: the `max_parallel` dearest deployments together.
pub fn peak_usd_per_hour(estimates: &[CostEstimate], max_parallel: usize) -> f64 {
    let mut prices: Vec<f64> = estimates
        .iter()
        .map(|c| c.price_per_hour_usd.unwrap_or(0.0))
        .collect();
    prices.sort_by(|a, b| b.total_cmp(a));
    prices.iter().take(max_parallel.max(1)).sum()
}

async fn estimate_one(p: &Prepared) -> Result<CostEstimate, RunError> {
    let mut workload = crate::workload::expected_duration(&p.resolved.experiment);
    // A trace lasts as long as its timestamps say (and its last answers).
    if let Some(last) = p.loaded.trace.as_ref().and_then(|t| t.requests.last()) {
        workload = workload.max(last.at + Duration::from_secs(60));
    }
    // Grading keeps the server too.
    workload += p
        .evals
        .as_ref()
        .map(evals::expected_duration)
        .unwrap_or_default();
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

/// Runs a prepared experiment end to end: every deployment (at most `max_parallel` at once),
/// every point on each, the results saved as they come, every server released.
pub async fn run(m: &Matrix, opts: &RunOptions) -> Result<Outcome, RunError> {
    matrix::run(m, opts).await
}
