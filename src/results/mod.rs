//! The result file (DESIGN §5): schema, atomic writes, listing, showing, exporting.

pub mod columns;
pub mod compare;
pub mod export;
pub mod index;
pub mod parquet;
pub mod storage;
pub mod sweeps;

pub use storage::{save, write_atomic, Saved};

use std::path::{Path, PathBuf};

use std::time::Instant;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::Experiment;
use crate::metrics::collector::{Collector, Measured, Settings};

pub use crate::metrics::collector::{Bucket, ClientHealth, Errors};
pub use crate::metrics::event::RequestRecord;
pub use crate::metrics::scrape::ServerMetrics;
pub use crate::metrics::summary::{Stats, Summary};

/// 2: a typed summary with `null` for figures without data, both interactivities by name,
/// `status: failed` with `error`. Files of version 1 are read too.
pub const SCHEMA_VERSION: u32 = 2;

/// How a run (or sweep point) ended.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The workload ran to its bounds (or a budget/lifetime rule stopped it: see
    /// `termination_reason`).
    Completed,
    /// Stopped by Ctrl-C, SIGTERM, SIGHUP or `q`: what was measured is kept.
    Interrupted,
    /// The run failed after it started (`error` says why); what was measured is kept.
    Failed,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Tool {
    pub name: String,
    pub version: String,
    pub git_sha: Option<String>,
}

impl Status {
    /// The name used in result files (`completed`, `interrupted`, `failed`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Interrupted => "interrupted",
            Self::Failed => "failed",
        }
    }
}

impl Tool {
    pub fn current() -> Self {
        Self {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            git_sha: option_env!("LLMIB_BUILD_GIT_SHA")
                .filter(|s| !s.is_empty())
                .map(String::from),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Environment {
    pub provider: String,
    pub base_url: Option<String>,
    pub pod_id: Option<String>,
    pub gpu_type: Option<String>,
    /// The GPUs serving the run: `infrastructure.gpu_count` per server, times the replicas.
    pub gpu_count: u32,
    /// Several servers behind the run (`infrastructure.replicas`, `base_urls`): how many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    pub price_per_hour_usd: Option<f64>,
    pub image: Option<String>,
    pub server_version: Option<String>,
    pub client_host: Option<String>,
    pub client_cores: usize,
    /// How random prompt lengths were made: `calibrated` via the server's /tokenize, `estimated`.
    pub prompt_lengths: Option<String>,
    /// The first way the provider's API answered differently from its document (the run went
    /// on: only fields the tool does not need differed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_drift: Option<String>,
    /// The server's cold start, on the first point measured on it (later points find it warm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup: Option<Startup>,
    /// The server's prefix-cache block the ideal hit rate counted in (`metrics.cache_block_size`,
    /// else the server's own, else the engine's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_block_size: Option<u32>,
}

/// How long the server took to come up — on a pod, paid time — from the moment the tool asked
/// for it (the pod created, the process started, the job submitted; for `existing` and the
/// simulator, from the first look at it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Startup {
    /// To `/health` answering 200 with the model listed by `/v1/models`.
    pub ready_s: f64,
    /// To the first token of the pre-flight request (loading, compiling and the first prefill
    /// included).
    pub first_token_s: Option<f64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct Cost {
    /// The estimate shown before anything was rented (this point's share, in a sweep).
    pub estimated_usd: f64,
    /// What the server cost while this run (point) had it.
    pub actual_usd: f64,
}

/// One result file: one run, or one point of a sweep (DESIGN §5).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct RunResult {
    pub schema_version: u32,
    pub tool: Tool,
    pub name: String,
    pub status: Status,
    /// Why a failed run failed.
    #[serde(default)]
    pub error: Option<String>,
    /// Why the workload stopped: `completed`, `duration`, `interrupted`, `max_error_rate: …`,
    /// `max_cost_usd: …`, `max_lifetime: …`, `not started` (nothing ran).
    pub termination_reason: String,
    /// UTC, RFC 3339.
    pub started_at: String,
    pub finished_at: String,
    pub seed: u64,
    /// The seed this point's prompts were drawn from: `seed` for a run of one point, else
    /// `seed` mixed with the point's label (`workload::sweep::Point::prompt_seed`), so points
    /// on one server never share a prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_seed: Option<u64>,
    /// The fully resolved experiment (secrets redacted), as it was run.
    pub config: Value,
    pub environment: Environment,
    pub cost: Cost,
    pub summary: Summary,
    pub errors: Errors,
    /// Per-second buckets of the timed window.
    pub time_series: Vec<Bucket>,
    /// The server's `/metrics` over the run (absent when scraping was off or found nothing).
    #[serde(default, deserialize_with = "lenient_server_metrics")]
    pub server_metrics: Option<ServerMetrics>,
    /// The provider's GPU gauges over the run (RunPod's `runtime.gpus`), where it has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_telemetry: Option<crate::metrics::event::GpuTelemetry>,
    /// The sweep point this run is (`c16`, `1k1k-c16`; `vllm-h100/c16` in a deployment
    /// matrix), when it is part of a sweep or a matrix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep_point: Option<String>,
    /// The deployment of a matrix it ran on (`deployments`), by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// Why the figures do not stand for the workload asked (more requests overflowed the
    /// model's context than `workload.dataset.max_overflow_share` allows); absent when valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid: Option<String>,
    pub client: ClientHealth,
    /// Graded tasks (`evals`) on this deployment's server: after its points (on its last
    /// point's result) or beside this point (`evals.under_load`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evals: Vec<crate::evals::EvalScore>,
    /// One record per measured request (warm-up excluded), by id — or, for a run of more
    /// than 100 000 requests, the records not in `requests_file`.
    pub requests: Vec<RequestRecord>,
    /// The side file holding the records (JSON Lines, one record per line, in the order they
    /// finished), named relative to this file, when there were too many to hold inline.
    /// `results::read` (and so `compare`, `report`, `results`) reads it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_file: Option<String>,
    /// Records in `requests_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_in_file: Option<u64>,
    /// Where the side file is while the result is being saved (not stored).
    #[serde(skip)]
    #[schemars(skip)]
    pub spill: Option<PathBuf>,
}

/// The side file's name for a result at `result`: `x.json` → `x.requests.jsonl`.
pub fn requests_file_for(result: &Path) -> PathBuf {
    result.with_extension("requests.jsonl")
}

/// Where the side file `name` of the result at `result` is: a plain file name (no directory,
/// no `..`) ending in `.requests.jsonl`, beside the result. A result file is data a reader may
/// have been sent (a pull request's result in CI): it must not make `compare` read
/// `/dev/zero`, a FIFO or a file elsewhere on the reader's machine.
pub fn side_file_path(result: &Path, name: &str) -> Result<PathBuf, ResultsError> {
    let plain = Path::new(name)
        .file_name()
        .is_some_and(|n| n == std::ffi::OsStr::new(name));
    if !plain || !name.ends_with(".requests.jsonl") || name.starts_with('.') {
        return Err(ResultsError::Parse {
            path: result.to_path_buf(),
            message: format!(
                "`requests_file` must be the plain name of a `*.requests.jsonl` file beside it, found `{name}` (move the side file next to the result and name it there)"
            ),
        });
    }
    Ok(result.parent().unwrap_or(Path::new(".")).join(name))
}

/// The records of a side file, every line checked.
fn read_requests_file(result: &Path, name: &str) -> Result<Vec<RequestRecord>, ResultsError> {
    let path = side_file_path(result, name)?;
    let text = crate::files::read_text(&path, crate::files::MAX_SIDE_FILE_BYTES, "a side file")
        .map_err(|source| ResultsError::Read {
            path: path.clone(),
            source,
        })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| ResultsError::Parse {
                path: path.clone(),
                message: format!("line {}: {e}", i + 1),
            })
        })
        .collect()
}

/// Files written before scraping existed carry `server_metrics: []`: read that as none.
fn lenient_server_metrics<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<ServerMetrics>, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(serde_json::from_value(v).ok())
}

/// What readers (`compare`, `plot`, `report`, export) need of a result's `config`, decoded
/// tolerantly: the snapshot is of whatever experiment format wrote it, so unknown keys are
/// ignored and missing ones are `None`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct RunFacts {
    pub model: ModelFacts,
    pub framework: FrameworkFacts,
    pub workload: WorkloadFacts,
    pub metrics: MetricsFacts,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ModelFacts {
    pub id: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct FrameworkFacts {
    pub kind: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct WorkloadFacts {
    pub pattern: Option<String>,
    pub concurrency: Option<u64>,
    pub rate: Option<f64>,
    pub max_concurrency: Option<u64>,
    pub dataset: DatasetFacts,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct DatasetFacts {
    pub kind: Option<String>,
    pub input_len: Option<u64>,
    pub output_len: Option<u64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct MetricsFacts {
    pub slo: Option<crate::config::Slo>,
}

/// The JSON Schema of result files, from the types (`schemas/result.schema.json` is this).
pub fn result_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(RunResult)).unwrap_or_default()
}

/// The JSON Schema of sweep index files (`schemas/sweep-index.schema.json` is this).
pub fn index_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(index::SweepIndex)).unwrap_or_default()
}

/// Why the workload stopped: a stop rule or the user, its duration, its request count — or
/// `not started` when nothing ran.
fn termination(e: &Experiment, m: Option<&Measured>) -> String {
    let Some(m) = m else {
        return "not started".into();
    };
    if let Some(why) = &m.stop {
        return why.to_string();
    }
    let w = &e.workload;
    let finished = m.summary.completed + m.summary.failed;
    let short = w.requests.is_none_or(|n| finished < n);
    match w.duration.is_some() && short {
        true => "duration".into(),
        false => "completed".into(),
    }
}

/// The resolved experiment as stored in results and indexes: every `framework.env` value
/// redacted (they may hold tokens; the names are kept).
pub fn redacted_config(e: &Experiment) -> Value {
    crate::config::redacted(e)
}

impl RunResult {
    /// What stopped this point before its own bounds, if anything did.
    pub fn stopped_by(&self) -> Option<crate::metrics::collector::StopKind> {
        crate::metrics::collector::StopKind::of_written(&self.termination_reason)
    }

    /// Whether `infrastructure.max_cost_usd` stopped this point before its own bounds.
    pub fn stopped_by_budget(&self) -> bool {
        self.stopped_by() == Some(crate::metrics::collector::StopKind::Budget)
    }

    /// The result file's content for one run (or point) of `e`; `measured` is `None` when
    /// nothing ran (the server never became ready, the pre-flight request failed).
    pub fn new(
        e: &Experiment,
        measured: Option<Measured>,
        status: Status,
        error: Option<String>,
        environment: Environment,
        started_at: chrono::DateTime<chrono::Utc>,
    ) -> Self {
        let stamp = |t: chrono::DateTime<chrono::Utc>| {
            t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        };
        let termination_reason = termination(e, measured.as_ref());
        let mut m =
            measured.unwrap_or_else(|| Collector::new(Settings::of(e)).finish(Instant::now()));
        m.summary.price(environment.price_per_hour_usd);
        if let Some(sm) = m.server_metrics.as_mut() {
            sm.utilisation(environment.gpu_type.as_deref());
        }
        Self {
            schema_version: SCHEMA_VERSION,
            tool: Tool::current(),
            name: e.name.clone(),
            status,
            error,
            termination_reason,
            started_at: stamp(started_at),
            finished_at: stamp(chrono::Utc::now()),
            seed: e.seed,
            prompt_seed: None,
            config: redacted_config(e),
            environment,
            cost: Cost::default(),
            summary: m.summary,
            errors: m.errors,
            time_series: m.time_series,
            server_metrics: m.server_metrics,
            gpu_telemetry: m.gpu,
            sweep_point: None,
            deployment: None,
            invalid: None,
            client: m.client,
            evals: Vec::new(),
            requests: m.requests,
            requests_file: None,
            requests_in_file: m.requests_file.as_ref().map(|f| f.1),
            spill: m.requests_file.map(|f| f.0),
        }
    }

    /// The facts of the run's `config` that readers need.
    pub fn facts(&self) -> RunFacts {
        RunFacts::deserialize(&self.config).unwrap_or_default()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: crate::files::FileError,
    },
    #[error("{} is not a result file: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("--resume: {0}")]
    Resume(String),
    #[error("{0}")]
    Parquet(String),
}

/// `{dir}/{name}-{YYYYMMDD-HHMMSS}.json`, with a numeric suffix (`-2`, `-3`, …) when another
/// run has that name: every file of a run (its points, index, logs, side files) is named from
/// this stem, so the stem is reserved atomically — a hidden `.{stem}.lock` created exclusively
/// in `dir` — and runs started in the same second never write each other's files. The
/// reservation ends when the returned guard is dropped (the run's files exist by then).
pub fn reserve_result_path(
    dir: &Path,
    name: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> (PathBuf, Option<Reservation>) {
    let stamp = at.format("%Y%m%d-%H%M%S");
    let _ = std::fs::create_dir_all(dir);
    for n in 1u32..=u32::MAX {
        let stem = match n {
            1 => format!("{name}-{stamp}"),
            n => format!("{name}-{stamp}-{n}"),
        };
        let taken = [".json", ".sweep.json"]
            .iter()
            .any(|ext| dir.join(format!("{stem}{ext}")).exists());
        if taken {
            continue;
        }
        let lock = dir.join(format!(".{stem}.lock"));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
        {
            Ok(_) => return (dir.join(format!("{stem}.json")), Some(Reservation(lock))),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            // A directory that takes no file: the writes will fall back elsewhere anyway.
            Err(_) => return (dir.join(format!("{stem}.json")), None),
        }
    }
    let stem = format!("{name}-{stamp}-{}", std::process::id());
    (dir.join(format!("{stem}.json")), None)
}

/// A reserved result name; dropping it frees the name (its files exist by then).
#[derive(Debug)]
pub struct Reservation(PathBuf);

impl Drop for Reservation {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// What `report` and `plot` need of a result file: everything but its per-request records,
/// which are skipped unread (a 1 000 000-request run's side file is never opened).
#[derive(Clone, Debug, Deserialize)]
pub struct ResultHead {
    pub name: String,
    pub status: Status,
    pub summary: Summary,
    pub config: Value,
    pub environment: Environment,
    #[serde(default, deserialize_with = "lenient_server_metrics")]
    pub server_metrics: Option<ServerMetrics>,
    #[serde(default)]
    pub sweep_point: Option<String>,
    #[serde(default)]
    pub deployment: Option<String>,
    #[serde(default)]
    pub termination_reason: String,
    /// The graded tasks' scores (their answers are not read).
    #[serde(default, deserialize_with = "index::IndexEval::graded_in")]
    pub evals: Vec<index::IndexEval>,
}

impl ResultHead {
    /// The facts of the run's `config` that readers need.
    pub fn facts(&self) -> RunFacts {
        RunFacts::deserialize(&self.config).unwrap_or_default()
    }
}

/// Compares names with their runs of digits as numbers: `c2` < `c16` < `c128`, and
/// `run-20261205-…` still by date (equal-length numbers compare as text does).
pub fn natural(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(p), Some(q)) if p.is_ascii_digit() && q.is_ascii_digit() => {
                let run = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
                let (m, n) = (run(x), run(y));
                let trim = |d: &[u8]| {
                    let z = d.iter().take_while(|c| **c == b'0').count();
                    d[z..].to_vec()
                };
                let (dx, dy) = (trim(&x[..m]), trim(&y[..n]));
                let by = dx
                    .len()
                    .cmp(&dy.len())
                    .then_with(|| dx.cmp(&dy))
                    .then(m.cmp(&n));
                if by != Ordering::Equal {
                    return by;
                }
                (x, y) = (&x[m..], &y[n..]);
            }
            (Some(p), Some(q)) if p != q => return p.cmp(q),
            _ => (x, y) = (&x[1..], &y[1..]),
        }
    }
}

/// The `*.json` files in `dir` (regular files only: a symlink or a FIFO is not followed), by
/// name as people read names (`c2` before `c16`: [`natural`]), each with its head when it is a
/// result file.
pub fn list(dir: &Path) -> Result<Vec<(String, Option<ResultHead>)>, ResultsError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| ResultsError::Read {
            path: dir.to_path_buf(),
            source: e.into(),
        })?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort_by(|a, b| natural(&a.to_string_lossy(), &b.to_string_lossy()));
    Ok(files
        .iter()
        .map(|f| {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, read_head(f).ok())
        })
        .collect())
}

/// Reads a result file's head (no records).
pub fn read_head(path: &Path) -> Result<ResultHead, ResultsError> {
    let text = read_result_text(path)?;
    serde_json::from_str(&text).map_err(|e| ResultsError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Reads a result file, with the records of its side file (if it has one) merged in by id.
pub fn read(path: &Path) -> Result<RunResult, ResultsError> {
    let text = read_result_text(path)?;
    let mut r: RunResult = serde_json::from_str(&text).map_err(|e| ResultsError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    attach_requests_file(path, &mut r)?;
    Ok(r)
}

/// The text of a result (or index) file: a regular file, of a bounded size.
pub fn read_result_text(path: &Path) -> Result<String, ResultsError> {
    crate::files::read_text(path, crate::files::MAX_RESULT_BYTES, "a result file").map_err(
        |source| ResultsError::Read {
            path: path.to_path_buf(),
            source,
        },
    )
}

/// Merges the records of `r`'s side file (if it names one) into `r.requests`, by id.
pub fn attach_requests_file(path: &Path, r: &mut RunResult) -> Result<(), ResultsError> {
    if let Some(name) = r.requests_file.clone() {
        let mut all = read_requests_file(path, &name)?;
        all.append(&mut r.requests);
        all.sort_by_key(|q| q.id);
        r.requests = all;
    }
    Ok(())
}

/// The flat JSON `vllm bench serve --save-result` writes (summary keys at the top level).
/// vLLM writes 0 where a figure has no data, so `null` figures become 0 here.
pub fn export_vllm(r: &RunResult) -> Value {
    let facts = r.facts();
    let mut m = Map::new();
    m.insert("date".into(), r.started_at.clone().into());
    m.insert("backend".into(), "openai-chat".into());
    m.insert("model_id".into(), facts.model.id.clone().into());
    m.insert("tokenizer_id".into(), facts.model.id.into());
    m.insert("num_prompts".into(), (r.requests.len() as u64).into());
    m.insert("max_concurrency".into(), facts.workload.concurrency.into());
    m.insert(
        "request_rate".into(),
        match facts.workload.rate {
            Some(x) => x.into(),
            None => "inf".into(),
        },
    );
    if let Ok(Value::Object(summary)) = serde_json::to_value(&r.summary) {
        for (k, v) in summary {
            if k == "percentiles" || k == "duration_s" {
                continue;
            }
            m.insert(k, if v.is_null() { 0.into() } else { v });
        }
    }
    // Per-request lists cover every measured request, failed ones included, as vLLM's do.
    let reqs = &r.requests;
    let list = |f: &dyn Fn(&RequestRecord) -> Value| -> Value {
        Value::Array(reqs.iter().map(f).collect())
    };
    m.insert(
        "input_lens".into(),
        list(&|x| x.input_tokens.unwrap_or(0).into()),
    );
    m.insert("output_lens".into(), list(&|x| x.output_tokens.into()));
    m.insert(
        "ttfts".into(),
        list(&|x| x.ttft_ms.map(|t| t / 1000.0).unwrap_or(0.0).into()),
    );
    m.insert(
        "errors".into(),
        list(&|x| {
            x.error
                .as_ref()
                .map(|e| e.message.clone())
                .unwrap_or_default()
                .into()
        }),
    );
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::natural;

    #[test]
    fn names_sort_as_people_read_them() {
        let mut v = vec![
            "sweep-c16.json",
            "sweep-c2.json",
            "sweep-c128.json",
            "sweep-c02.json",
            "run-20261205-120000.json",
            "run-20261204-235959.json",
            "a.json",
        ];
        v.sort_by(|a, b| natural(a, b));
        assert_eq!(
            v,
            [
                "a.json",
                "run-20261204-235959.json",
                "run-20261205-120000.json",
                "sweep-c2.json",
                "sweep-c02.json",
                "sweep-c16.json",
                "sweep-c128.json",
            ]
        );
    }
}
