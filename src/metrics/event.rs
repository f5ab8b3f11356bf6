//! What a run's producers tell its consumers: the executor and the `/metrics` scraper send
//! [`Event`]s on one channel; the collector, the live view and the progress bar read them.
//! The per-request record is made by the client, completed by the executor, kept by the
//! collector and written to the result file — one type, [`RequestRecord`], all the way.

use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::FrameworkKind;

/// One thing that happened during a run's timed window (or just before it).
#[derive(Debug)]
pub enum Event {
    /// Connections are warm; the timed window starts at `t0`.
    Started {
        t0: Instant,
        connect_times: Vec<Duration>,
        connect_errors: Vec<String>,
    },
    /// A measured request finished (successfully or not).
    Request(Box<RequestRecord>),
    /// A `/metrics` scrape (or a gap), from the scraper.
    Server(Box<Scraped>),
    /// The provider's GPU gauges (RunPod's `runtime.gpus`), one reading of every GPU.
    Gpu(GpuReading),
    /// The run's clock, every half second: what the server has cost so far and how long it
    /// has lived (budget, lifetime), and how many measured requests have been sent (in flight =
    /// sent − finished, for the saturation rule; the steady-state rule reads the clock).
    Tick {
        spent_usd: f64,
        /// Time since the pod was created, for pod providers.
        pod_age: Option<Duration>,
        sent: u64,
    },
}

/// Why a request failed. Failures are data: counted per kind, excluded from latencies.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No connection, or none that answered.
    Connect,
    /// An HTTP error status (its body's message is kept).
    Status,
    /// No complete answer within `request_timeout`.
    Timeout,
    /// The stream ended (or the connection closed) before `[DONE]`.
    StreamCut,
    /// A chunk or frame that could not be read.
    Parse,
    /// An error event inside the stream.
    ServerError,
    /// Cancelled at the workload's deadline (`on_deadline: abort`).
    Aborted,
    /// More content than `max_tokens` asked for (a server that does not stop): closed.
    Overrun,
    /// A 2xx answer that is not an event stream (an HTML error page of a proxy, a compressed
    /// body): its content type or encoding and first bytes are quoted.
    NotSse,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Status => "status",
            Self::Timeout => "timeout",
            Self::StreamCut => "stream_cut",
            Self::Parse => "parse",
            Self::ServerError => "server_error",
            Self::Aborted => "aborted",
            Self::Overrun => "overrun",
            Self::NotSse => "not_sse",
        }
    }
}

/// A failed request's error: its kind, the message to show, and the HTTP status if any.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RequestError {
    pub kind: ErrorKind,
    pub message: String,
    /// HTTP status, for `status` errors.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status: Option<u16>,
    /// A TLS handshake the server (or this client) refused: trying again will not help.
    #[serde(skip)]
    pub tls_refused: bool,
}

impl RequestError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            status: None,
            tls_refused: false,
        }
    }
}

/// Where `output_tokens` came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokensSource {
    /// The server's `usage` (asked for with `stream_options.include_usage`).
    Usage,
    /// A local tokenizer.
    Tokenizer,
    /// Content events counted (no usage sent).
    #[default]
    Chunks,
}

/// One request, measured (warm-up excluded from the result file). Times are milliseconds
/// from the benchmark's start (`t0`, when the warmed connections begin the timed window),
/// each taken from the read that carried the bytes (see `client`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RequestRecord {
    /// The request's number in the run's order (0-based, warm-up not counted).
    pub id: u64,
    /// Intended send time (open loop only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scheduled_ms: Option<f64>,
    /// Actual send time: just before the request head was written.
    pub sent_ms: f64,
    /// Send → first chunk with content or reasoning text (the first token of any kind).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ttft_ms: Option<f64>,
    /// Send → first chunk with content (time to first output token), when reasoning came
    /// first; absent when the stream had no reasoning (then it equals `ttft_ms`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ttfo_ms: Option<f64>,
    /// Reasoning tokens among `output_tokens`: the server's usage
    /// (`completion_tokens_details.reasoning_tokens`, or SGLang's `usage.reasoning_tokens`)
    /// when it is at least the reasoning events the stream carried (an event carries one token
    /// or more), else those events counted; absent without reasoning.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reasoning_tokens: Option<u32>,
    /// The server's own count of reasoning tokens, kept only when it contradicted the stream
    /// (fewer than the reasoning events streamed: vLLM 0.32 says 0 while streaming every
    /// token as `delta.reasoning`); `reasoning_tokens` is then the stream's count.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reasoning_usage_disagreed: Option<u32>,
    /// The prompt length the tool made this prompt to (random, shared-prefix and trace
    /// prompts), kept when the server counted another (`input_tokens` from its usage): a chat
    /// template's tokens, or a length the calibration missed. Absent when they agree.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub expected_input_tokens: Option<u32>,
    /// The session this request is a turn of (`dataset: {kind: conversation}`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub session: Option<u64>,
    /// The turn's index in its session (0 = first); for agent sessions, the main agent's call
    /// (a sub-agent's calls have none).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub turn: Option<u32>,
    /// The prompt tokens an ideal prefix cache would have served this request: its prefix
    /// shared with the prompts sent before it, in whole server blocks (a workload built from
    /// blocks: traces, agent traces).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ideal_cached_tokens: Option<u32>,
    /// Its prompt and answer together exceed `model.max_model_len` (agent traces).
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub context_overflow: bool,
    /// Send → last byte (the `[DONE]` event's read).
    pub e2el_ms: f64,
    /// Prompt tokens: the server's `usage`, else what the prompt was built to hold.
    pub input_tokens: Option<u32>,
    /// Output tokens (see `tokens_source`).
    pub output_tokens: u32,
    pub tokens_source: TokensSource,
    /// A pooling API's request: the texts the answer pooled (`embeddings`' `data`, `rerank`'s
    /// scored `results`). Absent for generation.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub inputs: Option<u32>,
    /// The LoRA adapter it went to: its index in `model.adapters` (`summary.by_adapter` names
    /// each).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub adapter: Option<u16>,
    /// The server it went to, with several (`infrastructure.replicas`, `base_urls`): its index
    /// in the run's servers (`summary.by_replica` names each).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub replica: Option<u16>,
    /// Body reads that carried data.
    pub reads: u32,
    /// Of those, reads stamped with the kernel's receive time (summed into `client.read_stamps`).
    #[serde(skip)]
    pub kernel_reads: u32,
    /// Gaps between consecutive content events, ms (per event; one event may hold several
    /// tokens). Always filled while the record travels; kept in the file only with
    /// `output.detail: full`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub itl_ms: Option<Vec<f64>>,
    pub error: Option<RequestError>,
    /// The server's own prefill and decode time in ms (llama.cpp's `timings`), when it sent them.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub server_prefill_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub server_decode_ms: Option<f64>,
    /// The answer's content text, kept only when a conversation needs it for its history;
    /// taken out by the executor, never stored.
    #[serde(skip)]
    #[schemars(skip)]
    pub text: Option<String>,
}

impl RequestRecord {
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }

    /// (E2EL − TTFT) / (output_tokens − 1), for answers of more than one token.
    pub fn tpot_ms(&self) -> Option<f64> {
        let ttft = self.ttft_ms?;
        (self.output_tokens > 1).then(|| (self.e2el_ms - ttft) / (self.output_tokens - 1) as f64)
    }

    /// When the last byte arrived, ms from the benchmark's start.
    pub fn end_ms(&self) -> f64 {
        self.sent_ms + self.e2el_ms
    }
}

/// One reading of a server's GPUs, as the provider reports them: (utilisation, memory use) in
/// percent per GPU, each `None` where the provider left it out.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuReading {
    pub at: Instant,
    pub gpus: Vec<(Option<f64>, Option<f64>)>,
}

/// A GPU reading in the result file: ms from the benchmark's start, percent per GPU.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GpuSample {
    pub t_ms: f64,
    pub util_pct: Vec<Option<f64>>,
    pub memory_pct: Vec<Option<f64>>,
}

/// The provider's GPU gauges over the run (RunPod's `runtime.gpus`, read with the pod polls).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GpuTelemetry {
    /// Where they come from, e.g. `runpod runtime.gpus`.
    pub source: String,
    pub interval_ms: f64,
    /// Utilisation of all GPUs, mean and peak over the samples, percent.
    pub mean_util_pct: Option<f64>,
    pub peak_util_pct: Option<f64>,
    /// Memory use of all GPUs, mean and peak, percent.
    pub mean_memory_pct: Option<f64>,
    pub peak_memory_pct: Option<f64>,
    pub samples: Vec<GpuSample>,
}

impl GpuTelemetry {
    /// The samples, stamped from `t0`, with their means and peaks.
    pub fn of(source: &str, interval_ms: f64, readings: Vec<GpuReading>, t0: Instant) -> Self {
        let samples: Vec<GpuSample> = readings
            .into_iter()
            .map(|r| GpuSample {
                t_ms: signed_ms(r.at, t0),
                util_pct: r.gpus.iter().map(|g| g.0).collect(),
                memory_pct: r.gpus.iter().map(|g| g.1).collect(),
            })
            .collect();
        let all = |f: fn(&GpuSample) -> &Vec<Option<f64>>| -> Vec<f64> {
            samples
                .iter()
                .flat_map(|s| f(s).iter().flatten().copied())
                .collect()
        };
        let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        let peak = |v: &[f64]| v.iter().copied().reduce(f64::max);
        let (u, m) = (all(|s| &s.util_pct), all(|s| &s.memory_pct));
        Self {
            source: source.to_string(),
            interval_ms,
            mean_util_pct: mean(&u),
            peak_util_pct: peak(&u),
            mean_memory_pct: mean(&m),
            peak_memory_pct: peak(&m),
            samples,
        }
    }
}

/// A scraped sample on its way to the collector, stamped with when the scrape started.
#[derive(Debug)]
pub struct Scraped {
    pub at: Instant,
    pub sample: ServerSample,
    /// Whose metric names the scraper found (`None` until it recognises them).
    pub framework: Option<FrameworkKind>,
    /// vLLM metric families the tool does not know (from the scrape that first saw vLLM).
    pub unknown_names: Option<Vec<String>>,
    /// Which server (replica) was scraped: its index in the run's servers.
    pub replica: u16,
}

/// One scrape, mapped. Gauges as the server reported them; `*_per_s` and the interval means
/// are computed against the previous successful scrape.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServerSample {
    /// Milliseconds from the benchmark's start (negative: before the timed window).
    pub t_ms: f64,
    /// Why this scrape has no data (a gap): HTTP status, timeout, unparseable text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<f64>,
    /// KV-cache use, 0–1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_cache_usage: Option<f64>,
    /// Prefix-cache hit rate, 0–1: Δhits/Δqueries over the interval (vLLM), the server's gauge
    /// (SGLang).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_cache_hit_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_total: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_tokens_total: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_per_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_tokens_per_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preemptions_total: Option<f64>,
    /// Mean of the server's TTFT histogram over the interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_mean_ms: Option<f64>,
    /// Mean of the server's inter-token-latency histogram over the interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub itl_mean_ms: Option<f64>,
    /// vLLM's prefix-cache counters as read (for the window's hit rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_cache_hits_total: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_cache_queries_total: Option<f64>,
    /// The engine's estimated FLOPs per GPU so far (vLLM `--enable-mfu-metrics`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flops_per_gpu_total: Option<f64>,
    /// The engine's estimated bytes read + written per GPU so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_gpu_total: Option<f64>,
    /// Achieved TFLOP/s per GPU over the interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tflops_per_gpu: Option<f64>,
    /// Achieved TB/s of memory traffic per GPU over the interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tb_per_s_per_gpu: Option<f64>,
    /// Speculative decoding, vLLM's counters as read: draft steps, draft tokens proposed,
    /// draft tokens accepted (`vllm:spec_decode_num_{drafts,draft_tokens,accepted_tokens}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_drafts_total: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_draft_tokens_total: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_accepted_tokens_total: Option<f64>,
    /// Over the interval, 0–1: accepted / proposed draft tokens (vLLM's counters), the
    /// server's gauge (SGLang's `spec_accept_rate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_acceptance_rate: Option<f64>,
    /// Over the interval: tokens a draft step yields, 1 + accepted / drafts (vLLM's counters,
    /// its own "mean acceptance length"), the server's gauge (SGLang's `spec_accept_length`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_acceptance_length: Option<f64>,
}

/// `at − t0` in ms, negative when `at` is earlier.
pub fn signed_ms(at: Instant, t0: Instant) -> f64 {
    if at >= t0 {
        (at - t0).as_secs_f64() * 1e3
    } else {
        -(t0 - at).as_secs_f64() * 1e3
    }
}
