//! The result file (DESIGN §5): schema, atomic writes, listing, showing, exporting.

pub mod compare;
pub mod sweeps;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::metrics::summary::RequestRecord;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Completed,
    Interrupted,
    Failed,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
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

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Environment {
    pub provider: String,
    pub base_url: Option<String>,
    pub pod_id: Option<String>,
    pub gpu_type: Option<String>,
    pub gpu_count: u32,
    pub price_per_hour_usd: Option<f64>,
    pub image: Option<String>,
    pub server_version: Option<String>,
    pub client_host: Option<String>,
    pub client_cores: usize,
    /// How random prompt lengths were made: `calibrated` via the server's /tokenize, `estimated`.
    pub prompt_lengths: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Cost {
    pub estimated_usd: f64,
    pub actual_usd: f64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Errors {
    /// Failed requests per kind (`status`, `timeout`, `stream_cut`, …).
    pub by_kind: BTreeMap<String, u64>,
    /// One message per kind.
    pub samples: BTreeMap<String, String>,
}

/// Per-second bucket, by completion time.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Bucket {
    pub second: u64,
    pub completed: u64,
    pub failed: u64,
    pub output_tokens: u64,
    pub ttft_p50_ms: Option<f64>,
    pub ttft_p99_ms: Option<f64>,
}

/// Latency-style stats in ms.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Stats {
    pub count: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Stats {
    pub fn of(mut xs: Vec<f64>) -> Self {
        xs.sort_by(f64::total_cmp);
        use crate::metrics::summary::{mean_std, percentile};
        Self {
            count: xs.len(),
            p50: percentile(&xs, 50.0),
            p99: percentile(&xs, 99.0),
            max: xs.last().copied().unwrap_or(0.0),
            mean: mean_std(&xs).0,
        }
    }
}

/// The client's view of itself: did it distort the figures?
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
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
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunResult {
    pub schema_version: u32,
    pub tool: Tool,
    pub name: String,
    pub status: Status,
    /// The error that ended a failed run.
    pub error: Option<String>,
    /// Why the workload stopped: `completed`, `duration`, `interrupted`, `max_error_rate`, …
    pub termination_reason: String,
    pub started_at: String,
    pub finished_at: String,
    pub seed: u64,
    pub config: Value,
    pub environment: Environment,
    pub cost: Cost,
    pub summary: Map<String, Value>,
    pub errors: Errors,
    pub time_series: Vec<Bucket>,
    /// The server's `/metrics` over the run (absent when scraping was off or found nothing).
    #[serde(default, deserialize_with = "lenient_server_metrics")]
    pub server_metrics: Option<crate::metrics::scrape::ServerMetrics>,
    /// The sweep point this run is (`c16`, `1k1k-c16`), when it is part of a sweep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep_point: Option<String>,
    pub client: ClientHealth,
    pub requests: Vec<RequestRecord>,
}

/// Files written before scraping existed carry `server_metrics: []`: read that as none.
fn lenient_server_metrics<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<crate::metrics::scrape::ServerMetrics>, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(serde_json::from_value(v).ok())
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
        source: std::io::Error,
    },
    #[error("{} is not a result file: {message}", path.display())]
    Parse { path: PathBuf, message: String },
}

/// `{dir}/{name}-{YYYYMMDD-HHMMSS}.json`, with a numeric suffix if that exists already.
pub fn result_path(dir: &Path, name: &str, at: chrono::DateTime<chrono::Utc>) -> PathBuf {
    let stamp = at.format("%Y%m%d-%H%M%S");
    let mut p = dir.join(format!("{name}-{stamp}.json"));
    let mut n = 2;
    while p.exists() {
        p = dir.join(format!("{name}-{stamp}-{n}.json"));
        n += 1;
    }
    p
}

/// Writes `value` as pretty JSON atomically: a temp file in the same directory, then rename.
pub fn write_atomic(path: &Path, value: &impl Serialize) -> Result<(), ResultsError> {
    let err = |source| ResultsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    // serde_json writes token by token: unbuffered, that was one syscall per JSON token.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, tmp.as_file_mut());
    serde_json::to_writer_pretty(&mut out, value).map_err(|e| err(e.into()))?;
    out.write_all(b"\n").map_err(err)?;
    out.flush().map_err(err)?;
    drop(out);
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

pub fn read(path: &Path) -> Result<RunResult, ResultsError> {
    let text = std::fs::read_to_string(path).map_err(|source| ResultsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| ResultsError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// The flat JSON `vllm bench serve --save-result` writes (summary keys at the top level).
pub fn export_vllm(r: &RunResult) -> Value {
    let mut m = Map::new();
    m.insert("date".into(), r.started_at.clone().into());
    m.insert("backend".into(), "openai-chat".into());
    m.insert(
        "model_id".into(),
        r.config
            .pointer("/model/id")
            .cloned()
            .unwrap_or(Value::Null),
    );
    m.insert(
        "tokenizer_id".into(),
        r.config
            .pointer("/model/id")
            .cloned()
            .unwrap_or(Value::Null),
    );
    m.insert("num_prompts".into(), (r.requests.len() as u64).into());
    m.insert(
        "max_concurrency".into(),
        r.config
            .pointer("/workload/concurrency")
            .cloned()
            .unwrap_or(Value::Null),
    );
    m.insert(
        "request_rate".into(),
        r.config
            .pointer("/workload/rate")
            .cloned()
            .unwrap_or("inf".into()),
    );
    for (k, v) in &r.summary {
        if k != "percentiles" && k != "duration_s" {
            m.insert(k.clone(), v.clone());
        }
    }
    // Per-request lists cover every measured request, failed ones included, as vLLM's do.
    let reqs = &r.requests;
    m.insert(
        "input_lens".into(),
        reqs.iter()
            .map(|x| x.input_tokens.unwrap_or(0))
            .collect::<Vec<_>>()
            .into(),
    );
    m.insert(
        "output_lens".into(),
        reqs.iter()
            .map(|x| x.output_tokens)
            .collect::<Vec<_>>()
            .into(),
    );
    m.insert(
        "ttfts".into(),
        reqs.iter()
            .map(|x| x.ttft_ms.map(|t| t / 1000.0).unwrap_or(0.0))
            .collect::<Vec<_>>()
            .into(),
    );
    m.insert(
        "errors".into(),
        reqs.iter()
            .map(|x| {
                x.error
                    .as_ref()
                    .map(|e| e.message.clone())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .into(),
    );
    Value::Object(m)
}
