//! The server's own view: a background task polls `/metrics`, maps vLLM, SGLang and llama.cpp
//! names (old and new) onto one set of concepts, turns counters into rates, and publishes a
//! [`ServerSample`] per poll on the run's event channel. A failed or slow scrape is a sample
//! with `error` set — a recorded gap — and never waits longer than one interval, so it cannot
//! hold the load generator up (which runs on its own threads anyway).

use std::time::{Duration, Instant};

use rand::Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedSender;

use super::event::{Event, Scraped, ServerSample};
use super::prom::{self, Scrape};
use crate::config::{FrameworkKind, Secret};

/// Whose metric names a scrape carries.
fn detect(s: &Scrape) -> Option<FrameworkKind> {
    let has = |p: &str| s.samples.iter().any(|x| x.metric.starts_with(p));
    if has("vllm:") {
        Some(FrameworkKind::Vllm)
    } else if has("sglang:") {
        Some(FrameworkKind::Sglang)
    } else if has("llamacpp:") {
        Some(FrameworkKind::Llamacpp)
    } else if has("trtllm_") {
        Some(FrameworkKind::Trtllm)
    } else {
        None
    }
}

/// Names per concept, first found wins: current names before the ones older releases used.
mod names {
    pub const RUNNING: &[&str] = &[
        "vllm:num_requests_running",
        "sglang:num_running_reqs",
        "llamacpp:requests_processing",
    ];
    pub const WAITING: &[&str] = &[
        "vllm:num_requests_waiting",
        "sglang:num_queue_reqs",
        "llamacpp:requests_deferred",
    ];
    pub const KV: &[&str] = &[
        "vllm:kv_cache_usage_perc",
        "vllm:gpu_cache_usage_perc",
        "sglang:token_usage",
        "llamacpp:kv_cache_usage_ratio",
        "trtllm_kv_cache_utilization",
    ];
    pub const PREFIX_HITS: &[&str] = &[
        "vllm:prefix_cache_hits_total",
        "vllm:gpu_prefix_cache_hits_total",
    ];
    pub const PREFIX_QUERIES: &[&str] = &[
        "vllm:prefix_cache_queries_total",
        "vllm:gpu_prefix_cache_queries_total",
    ];
    /// Gauges of the hit rate as the server computes it (SGLang's, TensorRT-LLM's by blocks).
    pub const PREFIX_RATE: &[&str] = &["sglang:cache_hit_rate", "trtllm_kv_cache_hit_rate"];
    pub const PROMPT: &[&str] = &[
        "vllm:prompt_tokens_total",
        "sglang:prompt_tokens_total",
        "llamacpp:prompt_tokens_total",
    ];
    pub const GENERATION: &[&str] = &[
        "vllm:generation_tokens_total",
        "sglang:generation_tokens_total",
        "llamacpp:tokens_predicted_total",
    ];
    pub const PREEMPTIONS: &[&str] = &["vllm:num_preemptions_total"];
    /// Speculative decoding: vLLM's counters (draft steps, draft tokens, accepted tokens),
    /// SGLang's gauges (acceptance rate, acceptance length).
    pub const SPEC_DRAFTS: &[&str] = &["vllm:spec_decode_num_drafts_total"];
    pub const SPEC_DRAFT_TOKENS: &[&str] = &["vllm:spec_decode_num_draft_tokens_total"];
    pub const SPEC_ACCEPTED: &[&str] = &["vllm:spec_decode_num_accepted_tokens_total"];
    pub const SPEC_RATE: &[&str] = &["sglang:spec_accept_rate"];
    pub const SPEC_LENGTH: &[&str] = &["sglang:spec_accept_length"];
    /// The engine's own estimate of the work done, per GPU (vLLM ≥ 0.2x with
    /// `--enable-mfu-metrics`): with the GPU's peak, MFU and memory-bandwidth utilisation.
    pub const FLOPS: &[&str] = &["vllm:estimated_flops_per_gpu_total"];
    pub const READ_BYTES: &[&str] = &["vllm:estimated_read_bytes_per_gpu_total"];
    pub const WRITE_BYTES: &[&str] = &["vllm:estimated_write_bytes_per_gpu_total"];

    /// Every metric family vLLM 0.32 exports (CPU build, one model, `--enable-mfu-metrics`),
    /// mapped above or known and left alone. A name not here is listed once in the run log and
    /// the result (`server_metrics.unknown_names`): the next rename is seen the day it ships.
    pub const VLLM_KNOWN: &[&str] = &[
        "vllm:admission_rejections",
        "vllm:cache_config_info",
        "vllm:e2e_request_latency_seconds",
        "vllm:engine_sleep_state",
        "vllm:estimated_flops_per_gpu",
        "vllm:estimated_read_bytes_per_gpu",
        "vllm:estimated_write_bytes_per_gpu",
        "vllm:external_prefix_cache_hits",
        "vllm:external_prefix_cache_queries",
        "vllm:generation_tokens",
        "vllm:inter_token_latency_seconds",
        "vllm:iteration_tokens_total",
        "vllm:kv_cache_usage_perc",
        "vllm:mm_cache_hits",
        "vllm:mm_cache_queries",
        "vllm:num_preemptions",
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:num_requests_waiting_by_reason",
        "vllm:prefix_cache_hits",
        "vllm:prefix_cache_queries",
        "vllm:prompt_tokens",
        "vllm:prompt_tokens_by_source",
        "vllm:prompt_tokens_cached",
        "vllm:prompt_tokens_cached_by_source",
        "vllm:request_decode_time_seconds",
        "vllm:request_generation_tokens",
        "vllm:request_inference_time_seconds",
        "vllm:request_max_num_generation_tokens",
        "vllm:request_num_preemptions",
        "vllm:request_params_max_tokens",
        "vllm:request_params_n",
        "vllm:request_prefill_kv_computed_tokens",
        "vllm:request_prefill_time_seconds",
        "vllm:request_prompt_tokens",
        "vllm:request_queue_time_seconds",
        "vllm:request_success",
        "vllm:request_time_per_output_token_seconds",
        "vllm:time_to_first_token_seconds",
        // Older names the maps above still read.
        "vllm:gpu_cache_usage_perc",
        "vllm:gpu_prefix_cache_hits",
        "vllm:gpu_prefix_cache_queries",
        "vllm:time_per_output_token_seconds",
        // Speculative decoding and LoRA, when enabled.
        "vllm:spec_decode_num_drafts",
        "vllm:spec_decode_num_draft_tokens",
        "vllm:spec_decode_num_accepted_tokens",
        "vllm:spec_decode_num_accepted_tokens_per_pos",
        "vllm:lora_requests_info",
    ];
    pub const TTFT: &[&str] = &[
        "vllm:time_to_first_token_seconds",
        "sglang:time_to_first_token_seconds",
        "trtllm_time_to_first_token_seconds",
    ];
    pub const ITL: &[&str] = &[
        "vllm:inter_token_latency_seconds",
        "vllm:time_per_output_token_seconds",
        "sglang:inter_token_latency_seconds",
        "sglang:time_per_output_token_seconds",
        "trtllm_time_per_output_token_seconds",
    ];
}

fn first(s: &Scrape, names: &[&str], f: fn(&Scrape, &str) -> Option<f64>) -> Option<f64> {
    names.iter().find_map(|n| f(s, n))
}

/// A sample's metric family: `vllm:foo` of `vllm:foo_total`, `…_bucket`, `…_created`.
fn family(metric: &str) -> &str {
    ["_bucket", "_count", "_sum", "_created", "_total"]
        .iter()
        .find_map(|suffix| metric.strip_suffix(suffix))
        .unwrap_or(metric)
}

/// vLLM metric families in `s` that [`names::VLLM_KNOWN`] does not list, sorted. The parser
/// gathers a histogram's lines under its own name (`vllm:iteration_tokens_total` is one):
/// only counters and gauges carry a suffix to strip.
fn unknown_vllm_names(s: &Scrape) -> Vec<String> {
    let mut v: Vec<String> = s
        .samples
        .iter()
        .map(|x| match x.value {
            prom::Value::Histogram(_) | prom::Value::Summary(_) => x.metric.as_str(),
            _ => family(&x.metric),
        })
        .filter(|f| f.starts_with("vllm:") && !names::VLLM_KNOWN.contains(f))
        .map(String::from)
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Counters and histogram sums as read, for the next interval's rates.
#[derive(Clone, Copy, Default)]
struct Raw {
    prompt: Option<f64>,
    generation: Option<f64>,
    hits: Option<f64>,
    queries: Option<f64>,
    flops: Option<f64>,
    bytes: Option<f64>,
    drafts: Option<f64>,
    draft_tokens: Option<f64>,
    accepted: Option<f64>,
    ttft: Option<(f64, f64)>,
    itl: Option<(f64, f64)>,
}

fn histogram(s: &Scrape, names: &[&str]) -> Option<(f64, f64)> {
    names.iter().find_map(|n| {
        Some((
            prom::sum(s, &format!("{n}_sum"))?,
            prom::sum(s, &format!("{n}_count"))?,
        ))
    })
}

/// Maps scrapes to samples, remembering the previous one for rates.
#[derive(Default)]
pub struct Mapper {
    prev: Option<(Instant, Raw)>,
    /// Whose names were found (`None` until a scrape carries known names).
    pub framework: Option<FrameworkKind>,
    /// vLLM names the tool does not know, from the first scrape that had any vLLM names.
    pub unknown_names: Option<Vec<String>>,
}

impl Mapper {
    /// Maps one `/metrics` text read at `at`. `t_ms` is left for the caller.
    pub fn sample(&mut self, text: &str, at: Instant) -> Result<ServerSample, String> {
        let s = prom::parse(text).map_err(|e| format!("unparseable /metrics: {e}"))?;
        if self.framework.is_none() {
            self.framework = detect(&s);
        }
        if self.unknown_names.is_none() && self.framework == Some(FrameworkKind::Vllm) {
            self.unknown_names = Some(unknown_vllm_names(&s));
        }
        // Per GPU: engines (data parallel) each report their own share; their mean.
        let bytes = match (
            first(&s, names::READ_BYTES, prom::mean),
            first(&s, names::WRITE_BYTES, prom::mean),
        ) {
            (Some(r), w) => Some(r + w.unwrap_or(0.0)),
            (None, w) => w,
        };
        let raw = Raw {
            prompt: first(&s, names::PROMPT, prom::sum),
            generation: first(&s, names::GENERATION, prom::sum),
            hits: first(&s, names::PREFIX_HITS, prom::sum),
            queries: first(&s, names::PREFIX_QUERIES, prom::sum),
            flops: first(&s, names::FLOPS, prom::mean),
            bytes,
            drafts: first(&s, names::SPEC_DRAFTS, prom::sum),
            draft_tokens: first(&s, names::SPEC_DRAFT_TOKENS, prom::sum),
            accepted: first(&s, names::SPEC_ACCEPTED, prom::sum),
            ttft: histogram(&s, names::TTFT),
            itl: histogram(&s, names::ITL),
        };
        let mut out = ServerSample {
            running: first(&s, names::RUNNING, prom::sum),
            waiting: first(&s, names::WAITING, prom::sum),
            kv_cache_usage: first(&s, names::KV, prom::mean),
            prefix_cache_hit_rate: first(&s, names::PREFIX_RATE, prom::mean),
            prompt_tokens_total: raw.prompt,
            generation_tokens_total: raw.generation,
            preemptions_total: first(&s, names::PREEMPTIONS, prom::sum),
            prefix_cache_hits_total: raw.hits,
            prefix_cache_queries_total: raw.queries,
            flops_per_gpu_total: raw.flops,
            bytes_per_gpu_total: raw.bytes,
            spec_drafts_total: raw.drafts,
            spec_draft_tokens_total: raw.draft_tokens,
            spec_accepted_tokens_total: raw.accepted,
            spec_acceptance_rate: first(&s, names::SPEC_RATE, prom::mean),
            spec_acceptance_length: first(&s, names::SPEC_LENGTH, prom::mean),
            ..ServerSample::default()
        };
        if let Some((t, p)) = self.prev {
            let dt = at.duration_since(t).as_secs_f64();
            // A negative delta is a server restart (counters reset): no rate for that interval.
            let delta = |a: Option<f64>, b: Option<f64>| Some(a? - b?).filter(|d| *d >= 0.0);
            let rate = |a, b| delta(a, b).filter(|_| dt > 0.0).map(|d| d / dt);
            out.prompt_tokens_per_s = rate(raw.prompt, p.prompt);
            out.generation_tokens_per_s = rate(raw.generation, p.generation);
            out.tflops_per_gpu = rate(raw.flops, p.flops).map(|f| f / 1e12);
            out.tb_per_s_per_gpu = rate(raw.bytes, p.bytes).map(|b| b / 1e12);
            if out.prefix_cache_hit_rate.is_none() {
                out.prefix_cache_hit_rate =
                    match (delta(raw.hits, p.hits), delta(raw.queries, p.queries)) {
                        (Some(h), Some(q)) if q > 0.0 => Some(h / q),
                        _ => None,
                    };
            }
            if let Some((rate, length)) = spec_figures(
                delta(raw.drafts, p.drafts),
                delta(raw.draft_tokens, p.draft_tokens),
                delta(raw.accepted, p.accepted),
            ) {
                out.spec_acceptance_rate = Some(rate);
                out.spec_acceptance_length = length;
            }
            let mean_ms = |a: Option<(f64, f64)>, b: Option<(f64, f64)>| {
                let (sa, ca) = a?;
                let (sb, cb) = b?;
                (ca > cb && sa >= sb).then(|| (sa - sb) / (ca - cb) * 1e3)
            };
            out.ttft_mean_ms = mean_ms(raw.ttft, p.ttft);
            out.itl_mean_ms = mean_ms(raw.itl, p.itl);
        }
        self.prev = Some((at, raw));
        Ok(out)
    }
}

/// Speculative decoding's figures from counter deltas: the acceptance rate (accepted / draft
/// tokens) and, where draft steps are counted, the acceptance length (1 + accepted / drafts:
/// the tokens one target step yields). `None` when no draft token was proposed.
fn spec_figures(
    drafts: Option<f64>,
    draft_tokens: Option<f64>,
    accepted: Option<f64>,
) -> Option<(f64, Option<f64>)> {
    let (t, a) = (draft_tokens?, accepted?);
    (t > 0.0 && a >= 0.0 && a <= t).then(|| {
        let length = drafts.filter(|d| *d > 0.0).map(|d| 1.0 + a / d);
        (a / t, length)
    })
}

/// What the run keeps of the server's view: the samples and their summary.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct ServerMetrics {
    /// Whose metric names were found (`null`: none this tool knows).
    #[serde(default, deserialize_with = "framework_or_unknown")]
    pub framework: Option<FrameworkKind>,
    pub interval_ms: f64,
    pub summary: ServerSummary,
    pub samples: Vec<ServerSample>,
    /// Metric families the server exports that this tool does not know (vLLM): a rename or a
    /// new figure since the release it was checked against (vLLM 0.32).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown_names: Vec<String>,
    /// Several servers behind the run (`infrastructure.replicas`, `base_urls`): each one's own
    /// view, in the run's order; then `summary` is theirs combined and `samples` is empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<ServerMetrics>,
}

/// Files written before `null` meant "unknown" carry `"unknown"`.
fn framework_or_unknown<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<FrameworkKind>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    Ok(s.and_then(|s| serde_json::from_value(serde_json::Value::String(s)).ok()))
}

/// The server's view over the timed window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServerSummary {
    pub scrapes: usize,
    /// Scrapes that failed or timed out.
    pub gaps: usize,
    pub peak_running: Option<f64>,
    pub mean_running: Option<f64>,
    pub peak_waiting: Option<f64>,
    pub mean_waiting: Option<f64>,
    pub peak_kv_cache_usage: Option<f64>,
    pub mean_kv_cache_usage: Option<f64>,
    pub mean_prefix_cache_hit_rate: Option<f64>,
    /// Generated tokens per second by the server's own counter over the window — to
    /// cross-check the client's `output_throughput`.
    pub generation_tokens_per_s: Option<f64>,
    pub prompt_tokens_per_s: Option<f64>,
    /// Preemptions during the window (vLLM).
    pub preemptions: Option<f64>,
    /// Prefix-cache hit rate over the whole window, 0–1: Δhits / Δqueries (vLLM's counters) —
    /// every token weighs the same, unlike `mean_prefix_cache_hit_rate`'s mean of intervals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_cache_hit_rate: Option<f64>,
    /// Achieved TFLOP/s per GPU over the window, from the engine's own estimate
    /// (`vllm:estimated_flops_per_gpu_total`, with `--enable-mfu-metrics`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tflops_per_gpu: Option<f64>,
    /// Achieved memory traffic per GPU over the window, TB/s (estimated bytes read + written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tb_per_s_per_gpu: Option<f64>,
    /// Model FLOPs utilisation: `tflops_per_gpu` over the GPU's dense BF16 peak
    /// (`metrics::gpus`), when the GPU type is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfu: Option<f64>,
    /// Memory-bandwidth utilisation: `tb_per_s_per_gpu` over the GPU's peak bandwidth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mbu: Option<f64>,
    /// Speculative decoding over the window, 0–1: accepted / proposed draft tokens (vLLM's
    /// counters), else the mean of SGLang's gauge over the scrapes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_acceptance_rate: Option<f64>,
    /// Speculative decoding over the window: tokens one target step yields, 1 + accepted /
    /// draft steps (vLLM's "mean acceptance length"), else the mean of SGLang's gauge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_acceptance_length: Option<f64>,
    /// Draft tokens proposed over the window (vLLM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_draft_tokens: Option<f64>,
}

impl ServerSummary {
    /// The prefix-cache hit rate over the window: vLLM's token-weighted counters, else
    /// SGLang's gauge averaged over the scrapes.
    pub fn hit_rate(&self) -> Option<f64> {
        self.prefix_cache_hit_rate
            .or(self.mean_prefix_cache_hit_rate)
    }
}

impl ServerMetrics {
    /// Summarises the samples that fall in the timed window `[0, duration_ms]`; counter
    /// deltas run from the last good sample at or before the start to the last one in it.
    pub fn summarize(&mut self, duration_ms: f64) {
        // The last scrape is taken after the last request, up to two intervals later.
        let slack = self.interval_ms * 2.0 + 1000.0;
        let window: Vec<&ServerSample> = self
            .samples
            .iter()
            .filter(|s| s.t_ms >= 0.0 && s.t_ms <= duration_ms + slack)
            .collect();
        let good: Vec<&ServerSample> = window
            .iter()
            .copied()
            .filter(|s| s.error.is_none())
            .collect();
        let vals = |f: fn(&ServerSample) -> Option<f64>| -> Vec<f64> {
            good.iter().filter_map(|s| f(s)).collect()
        };
        let peak = |v: &[f64]| v.iter().copied().reduce(f64::max);
        let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        let running = vals(|s| s.running);
        let waiting = vals(|s| s.waiting);
        let kv = vals(|s| s.kv_cache_usage);
        let hit = vals(|s| s.prefix_cache_hit_rate);
        let start = self
            .samples
            .iter()
            .rfind(|s| s.error.is_none() && s.t_ms <= 0.0)
            .or_else(|| good.first().copied());
        let end = good.last().copied();
        let rate = |f: fn(&ServerSample) -> Option<f64>| {
            let (a, b) = (start?, end?);
            let dt = (b.t_ms - a.t_ms) / 1e3;
            let d = f(b)? - f(a)?;
            (dt > 0.0 && d >= 0.0).then(|| d / dt)
        };
        let delta = |f: fn(&ServerSample) -> Option<f64>| Some(f(end?)? - f(start?)?);
        let hit_rate = match (
            delta(|s| s.prefix_cache_hits_total),
            delta(|s| s.prefix_cache_queries_total),
        ) {
            (Some(h), Some(q)) if q > 0.0 && h >= 0.0 => Some(h / q),
            _ => None,
        };
        let spec = spec_figures(
            delta(|s| s.spec_drafts_total),
            delta(|s| s.spec_draft_tokens_total),
            delta(|s| s.spec_accepted_tokens_total),
        );
        self.summary = ServerSummary {
            scrapes: window.len(),
            gaps: window.len() - good.len(),
            peak_running: peak(&running),
            mean_running: mean(&running),
            peak_waiting: peak(&waiting),
            mean_waiting: mean(&waiting),
            peak_kv_cache_usage: peak(&kv),
            mean_kv_cache_usage: mean(&kv),
            mean_prefix_cache_hit_rate: mean(&hit),
            generation_tokens_per_s: rate(|s| s.generation_tokens_total),
            prompt_tokens_per_s: rate(|s| s.prompt_tokens_total),
            preemptions: delta(|s| s.preemptions_total),
            prefix_cache_hit_rate: hit_rate,
            tflops_per_gpu: rate(|s| s.flops_per_gpu_total).map(|f| f / 1e12),
            tb_per_s_per_gpu: rate(|s| s.bytes_per_gpu_total).map(|b| b / 1e12),
            mfu: None,
            mbu: None,
            spec_acceptance_rate: spec
                .map(|(r, _)| r)
                .or_else(|| mean(&vals(|s| s.spec_acceptance_rate))),
            spec_acceptance_length: match spec {
                Some((_, length)) => length,
                None => mean(&vals(|s| s.spec_acceptance_length)),
            },
            spec_draft_tokens: delta(|s| s.spec_draft_tokens_total).filter(|d| *d >= 0.0),
        };
    }

    /// A replica's speculative-decoding figure weighted by its draft tokens (vLLM's
    /// counters): the fleet's accepted / proposed, and — every replica drafting the same K
    /// — its tokens per step. A plain mean where a replica has no count (SGLang's gauges).
    fn by_drafts(parts: &[ServerMetrics], f: fn(&ServerSummary) -> Option<f64>) -> Option<f64> {
        let each: Vec<(f64, Option<f64>)> = parts
            .iter()
            .filter_map(|m| Some((f(&m.summary)?, m.summary.spec_draft_tokens)))
            .collect();
        if each.is_empty() {
            return None;
        }
        let drafts: Option<Vec<f64>> = each.iter().map(|(_, d)| *d).collect();
        match drafts.filter(|d| d.iter().sum::<f64>() > 0.0) {
            Some(d) => Some(
                each.iter().zip(&d).map(|((v, _), w)| v * w).sum::<f64>() / d.iter().sum::<f64>(),
            ),
            None => Some(each.iter().map(|(v, _)| v).sum::<f64>() / each.len() as f64),
        }
    }

    /// Several replicas' views as one: their token rates, preemptions, requests running and
    /// waiting (peaks and means) summed — the fleet's —; cache usage the highest peak and
    /// the mean of means; the window's prefix-cache hit rate weighted by each one's prompt
    /// tokens (what its counters query); per-GPU figures the mean. Each one's own view is kept
    /// in `replicas`; speculative decoding by draft tokens.
    pub fn combine(parts: Vec<ServerMetrics>) -> ServerMetrics {
        let each = |f: fn(&ServerSummary) -> Option<f64>| -> Vec<f64> {
            parts.iter().filter_map(|m| f(&m.summary)).collect()
        };
        let sum = |f: fn(&ServerSummary) -> Option<f64>| {
            let v = each(f);
            (!v.is_empty()).then(|| v.iter().sum::<f64>())
        };
        let mean = |f: fn(&ServerSummary) -> Option<f64>| {
            let v = each(f);
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        };
        let weighted: Vec<(f64, f64)> = parts
            .iter()
            .filter_map(|m| {
                Some((
                    m.summary.prefix_cache_hit_rate?,
                    m.summary.prompt_tokens_per_s?,
                ))
            })
            .collect();
        let weight: f64 = weighted.iter().map(|(_, w)| w).sum();
        let summary = ServerSummary {
            scrapes: parts.iter().map(|m| m.summary.scrapes).sum(),
            gaps: parts.iter().map(|m| m.summary.gaps).sum(),
            peak_running: sum(|s| s.peak_running),
            mean_running: sum(|s| s.mean_running),
            peak_waiting: sum(|s| s.peak_waiting),
            mean_waiting: sum(|s| s.mean_waiting),
            peak_kv_cache_usage: each(|s| s.peak_kv_cache_usage).into_iter().reduce(f64::max),
            mean_kv_cache_usage: mean(|s| s.mean_kv_cache_usage),
            mean_prefix_cache_hit_rate: mean(|s| s.mean_prefix_cache_hit_rate),
            generation_tokens_per_s: sum(|s| s.generation_tokens_per_s),
            prompt_tokens_per_s: sum(|s| s.prompt_tokens_per_s),
            preemptions: sum(|s| s.preemptions),
            prefix_cache_hit_rate: (weight > 0.0)
                .then(|| weighted.iter().map(|(r, w)| r * w).sum::<f64>() / weight),
            tflops_per_gpu: mean(|s| s.tflops_per_gpu),
            tb_per_s_per_gpu: mean(|s| s.tb_per_s_per_gpu),
            mfu: None,
            mbu: None,
            spec_acceptance_rate: Self::by_drafts(&parts, |s| s.spec_acceptance_rate),
            spec_acceptance_length: Self::by_drafts(&parts, |s| s.spec_acceptance_length),
            spec_draft_tokens: sum(|s| s.spec_draft_tokens),
        };
        ServerMetrics {
            framework: parts.iter().find_map(|m| m.framework),
            interval_ms: parts.first().map_or(0.0, |m| m.interval_ms),
            summary,
            samples: Vec::new(),
            unknown_names: parts
                .iter()
                .find(|m| !m.unknown_names.is_empty())
                .map(|m| m.unknown_names.clone())
                .unwrap_or_default(),
            replicas: parts,
        }
    }

    /// MFU and MBU against the peaks of `gpu_type` (`metrics::gpus`), when it is known.
    pub fn utilisation(&mut self, gpu_type: Option<&str>) {
        let Some(peak) = gpu_type.and_then(super::gpus::peak) else {
            return;
        };
        let s = &mut self.summary;
        s.mfu = s.tflops_per_gpu.map(|t| t / peak.bf16_tflops);
        s.mbu = s.tb_per_s_per_gpu.map(|b| b / peak.tb_per_s);
    }
}

/// Polls `url` (the server's `/metrics`) every `interval` until the task is dropped, sending
/// each sample (or gap) as [`Event::Server`]. Stops when the channel closes.
pub async fn run(
    url: String,
    api_key: Option<Secret>,
    interval: Duration,
    tx: UnboundedSender<Event>,
) {
    run_replica(url, api_key, interval, 0, tx).await
}

/// [`run`] for replica `replica` of the run's servers (its samples say which).
pub async fn run_replica(
    url: String,
    api_key: Option<Secret>,
    interval: Duration,
    replica: u16,
    tx: UnboundedSender<Event>,
) {
    let http = match reqwest::Client::builder()
        .no_proxy()
        .timeout(interval)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("no /metrics client: {e}");
            return;
        }
    };
    let mut mapper = Mapper::default();
    let mut told = false;
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::from_os_rng();
    let mut next = tokio::time::Instant::now();
    loop {
        tokio::time::sleep_until(next).await;
        next = (next + jittered(interval, rng.random::<f64>())).max(tokio::time::Instant::now());
        let at = Instant::now();
        let sample = match fetch(&http, &url, api_key.as_ref()).await {
            Ok(text) => mapper.sample(&text, at),
            Err(e) => Err(e),
        }
        .unwrap_or_else(|e| ServerSample {
            error: Some(e),
            ..ServerSample::default()
        });
        let ev = Event::Server(Box::new(Scraped {
            at,
            sample,
            framework: mapper.framework,
            // Said once: the collector keeps it.
            unknown_names: mapper.unknown_names.as_ref().filter(|_| !told).cloned(),
            replica,
        }));
        told |= mapper.unknown_names.is_some();
        if tx.send(ev).is_err() {
            return;
        }
    }
}

/// The gap to the next scrape: `interval` ± 25 % (`u` uniform in [0, 1)). A fixed period
/// phase-locks with a closed loop's lock-step requests — 16 requests of ~500 ms scraped every
/// 1 s were always caught in the same instant of their cycle, and the gauges read 1 running of
/// 16 — while gaps at random phases make the mean of a gauge its mean over time.
pub fn jittered(interval: Duration, u: f64) -> Duration {
    interval.mul_f64(0.75 + 0.5 * u.clamp(0.0, 1.0))
}

/// The largest `/metrics` page read. vLLM's is ~100 KB (50 KB on the CPU build with one
/// model); a page past this is a gap, not gigabytes of memory and half a minute of parsing.
pub const MAX_PAGE_BYTES: usize = 8 << 20;

async fn fetch(http: &reqwest::Client, url: &str, key: Option<&Secret>) -> Result<String, String> {
    let mut req = http.get(url);
    if let Some(k) = key {
        req = req.bearer_auth(k.expose());
    }
    let mut resp = req.send().await.map_err(|e| {
        if e.is_timeout() {
            "no answer within the scrape interval".to_string()
        } else {
            chain(&e.without_url())
        }
    })?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("HTTP {}", status.as_u16()));
    }
    let too_big = || {
        format!(
            "a /metrics page over {} MiB: not read (a vLLM page is ~100 KB)",
            MAX_PAGE_BYTES >> 20
        )
    };
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_PAGE_BYTES as u64)
    {
        return Err(too_big());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| {
        if e.is_timeout() {
            "no whole page within the scrape interval".to_string()
        } else {
            e.without_url().to_string()
        }
    })? {
        if body.len() + chunk.len() > MAX_PAGE_BYTES {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body).map_err(|_| "a /metrics page that is not UTF-8".to_string())
}

/// An error with its causes: "error sending request: … : Connection refused".
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(file: &str) -> String {
        let p = format!("{}/../shared/reference/{file}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(p).unwrap()
    }

    #[test]
    fn the_captured_vllm_and_sglang_samples_map_onto_the_concepts() {
        let t = Instant::now();
        let mut m = Mapper::default();
        let v = m.sample(&reference("vllm-metrics-sample.txt"), t).unwrap();
        assert_eq!(m.framework, Some(FrameworkKind::Vllm));
        assert!(v.running.is_some() && v.waiting.is_some());
        let kv = v.kv_cache_usage.unwrap();
        assert!((0.0..=1.0).contains(&kv));
        assert!(v.generation_tokens_total.unwrap() > 0.0);
        assert!(v.prompt_tokens_total.unwrap() > 0.0);
        assert!(v.preemptions_total.is_some());
        // Rates need two scrapes.
        assert_eq!(v.generation_tokens_per_s, None);

        let mut m = Mapper::default();
        let s = m
            .sample(&reference("sglang-metrics-sample.txt"), t)
            .unwrap();
        assert_eq!(m.framework, Some(FrameworkKind::Sglang));
        assert!(s.running.is_some() && s.waiting.is_some());
        assert!(s.kv_cache_usage.is_some());
        assert!(s.prefix_cache_hit_rate.is_some());
        assert!(s.generation_tokens_total.unwrap() > 0.0);
    }

    #[test]
    fn old_vllm_names_still_work_and_counters_become_rates() {
        let old = |gen: f64, hits: f64, queries: f64, ttft_sum: f64, ttft_n: f64| {
            format!(
                "# TYPE vllm:gpu_cache_usage_perc gauge\nvllm:gpu_cache_usage_perc{{engine=\"0\",model_name=\"m\"}} 0.25\n\
                 vllm:gpu_cache_usage_perc{{engine=\"1\",model_name=\"m\"}} 0.75\n\
                 # TYPE vllm:generation_tokens_total counter\nvllm:generation_tokens_total{{model_name=\"m\"}} {gen}\n\
                 # TYPE vllm:gpu_prefix_cache_hits_total counter\nvllm:gpu_prefix_cache_hits_total {hits}\n\
                 # TYPE vllm:gpu_prefix_cache_queries_total counter\nvllm:gpu_prefix_cache_queries_total {queries}\n\
                 # TYPE vllm:time_per_output_token_seconds histogram\n\
                 vllm:time_per_output_token_seconds_sum {ttft_sum}\nvllm:time_per_output_token_seconds_bucket{{le=\"+Inf\"}} {ttft_n}\n\
                 vllm:time_per_output_token_seconds_count {ttft_n}\n"
            )
        };
        let t0 = Instant::now();
        let mut m = Mapper::default();
        let a = m.sample(&old(100.0, 10.0, 40.0, 1.0, 100.0), t0).unwrap();
        // Two engines: KV use is their mean, not their sum.
        assert_eq!(a.kv_cache_usage, Some(0.5));
        let b = m
            .sample(
                &old(600.0, 40.0, 100.0, 1.5, 150.0),
                t0 + Duration::from_millis(500),
            )
            .unwrap();
        assert_eq!(b.generation_tokens_per_s, Some(1000.0));
        assert_eq!(b.prefix_cache_hit_rate, Some(0.5));
        assert!((b.itl_mean_ms.unwrap() - 10.0).abs() < 1e-9);
        // A restart resets counters: no rate rather than a negative one.
        let c = m
            .sample(&old(5.0, 0.0, 0.0, 0.0, 0.0), t0 + Duration::from_secs(1))
            .unwrap();
        assert_eq!(c.generation_tokens_per_s, None);
    }

    #[test]
    fn replicas_speculate_as_one_fleet_weighted_by_their_draft_tokens() {
        let part = |rate: f64, length: f64, drafts: Option<f64>| ServerMetrics {
            summary: ServerSummary {
                spec_acceptance_rate: Some(rate),
                spec_acceptance_length: Some(length),
                spec_draft_tokens: drafts,
                ..ServerSummary::default()
            },
            ..ServerMetrics::default()
        };
        // 80 of 100 and 60 of 300 draft tokens accepted: 140 of 400, K = 4 on both.
        let both = ServerMetrics::combine(vec![
            part(0.8, 4.2, Some(100.0)),
            part(0.2, 1.8, Some(300.0)),
        ]);
        assert!((both.summary.spec_acceptance_rate.unwrap() - 0.35).abs() < 1e-12);
        assert!((both.summary.spec_acceptance_length.unwrap() - 2.4).abs() < 1e-12);
        assert_eq!(both.summary.spec_draft_tokens, Some(400.0));
        // SGLang's gauges carry no count: a plain mean.
        let gauges = ServerMetrics::combine(vec![part(0.8, 3.0, None), part(0.2, 2.0, None)]);
        assert!((gauges.summary.spec_acceptance_rate.unwrap() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn speculative_decoding_counters_become_acceptance_rate_and_length() {
        let page = |drafts: f64, tokens: f64, accepted: f64| {
            format!(
                "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running 1\n\
                 # TYPE vllm:spec_decode_num_drafts_total counter\nvllm:spec_decode_num_drafts_total{{engine=\"0\",model_name=\"m\"}} {drafts}\n\
                 # TYPE vllm:spec_decode_num_draft_tokens_total counter\nvllm:spec_decode_num_draft_tokens_total{{engine=\"0\",model_name=\"m\"}} {tokens}\n\
                 # TYPE vllm:spec_decode_num_accepted_tokens_total counter\nvllm:spec_decode_num_accepted_tokens_total{{engine=\"0\",model_name=\"m\"}} {accepted}\n"
            )
        };
        let t = Instant::now();
        let mut m = Mapper::default();
        let a = m.sample(&page(10.0, 30.0, 12.0), t).unwrap();
        assert_eq!(a.spec_acceptance_rate, None, "a rate needs two scrapes");
        let b = m
            .sample(&page(110.0, 330.0, 162.0), t + Duration::from_secs(1))
            .unwrap();
        // 150 of 300 draft tokens accepted over 100 draft steps: 50 %, 2.5 tokens a step.
        assert_eq!(b.spec_acceptance_rate, Some(0.5));
        assert_eq!(b.spec_acceptance_length, Some(2.5));
        // The window: from the last sample before it to the last in it.
        let mut w = ServerMetrics {
            interval_ms: 1000.0,
            samples: vec![
                ServerSample { t_ms: -10.0, ..a },
                ServerSample { t_ms: 990.0, ..b },
            ],
            ..ServerMetrics::default()
        };
        w.summarize(1000.0);
        assert_eq!(w.summary.spec_acceptance_rate, Some(0.5));
        assert_eq!(w.summary.spec_acceptance_length, Some(2.5));
        assert_eq!(w.summary.spec_draft_tokens, Some(300.0));
        // SGLang's gauges are read as they are, their mean over the window.
        let sgl = "# TYPE sglang:spec_accept_rate gauge\nsglang:spec_accept_rate{model_name=\"m\"} 0.6\n\
                   # TYPE sglang:spec_accept_length gauge\nsglang:spec_accept_length{model_name=\"m\"} 2.8\n";
        let g = Mapper::default().sample(sgl, t).unwrap();
        assert_eq!(
            (g.spec_acceptance_rate, g.spec_acceptance_length),
            (Some(0.6), Some(2.8))
        );
        // No draft proposed: no figure (not 0 %).
        assert_eq!(spec_figures(Some(0.0), Some(0.0), Some(0.0)), None);
    }

    #[test]
    fn the_summary_covers_the_window_and_counts_gaps() {
        let s = |t_ms: f64, gen: f64, running: f64| ServerSample {
            t_ms,
            generation_tokens_total: Some(gen),
            running: Some(running),
            ..ServerSample::default()
        };
        let mut m = ServerMetrics {
            interval_ms: 1000.0,
            samples: vec![
                s(-500.0, 100.0, 0.0),
                s(500.0, 600.0, 4.0),
                ServerSample {
                    t_ms: 1500.0,
                    error: Some("HTTP 500".into()),
                    ..ServerSample::default()
                },
                s(2500.0, 2100.0, 8.0),
                s(9000.0, 9000.0, 1.0),
            ],
            ..ServerMetrics::default()
        };
        m.summarize(3000.0);
        let x = &m.summary;
        assert_eq!((x.scrapes, x.gaps), (3, 1));
        assert_eq!(x.peak_running, Some(8.0));
        assert_eq!(x.mean_running, Some(6.0));
        // (2100 − 100) tokens over 3 s, from the last sample before the start.
        assert!((x.generation_tokens_per_s.unwrap() - 2000.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn jittered_scrapes_see_a_lock_step_gauge_as_its_mean_over_time() {
        use rand::{Rng, SeedableRng};
        // 16 requests in lock-step, a cycle of 500 ms: 16 running for 90 % of it, 1 for the
        // rest (the end of the cycle). Scraped every 1 s from the cycle's low phase, a fixed
        // period reads 1 every time.
        let running = |t: f64| if (t % 0.5) < 0.45 { 16.0 } else { 1.0 };
        let truth = 0.9 * 16.0 + 0.1 * 1.0;
        let fixed: f64 = (0..60).map(|k| running(0.47 + k as f64)).sum::<f64>() / 60.0;
        assert_eq!(fixed, 1.0);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut t = 0.47;
        let mut sum = 0.0;
        for _ in 0..60 {
            sum += running(t);
            t += jittered(Duration::from_secs(1), rng.random::<f64>()).as_secs_f64();
        }
        let mean = sum / 60.0;
        assert!((mean - truth).abs() < 0.15 * truth, "{mean} vs {truth}");
        assert_eq!(
            jittered(Duration::from_secs(1), 0.0),
            Duration::from_millis(750)
        );
        assert_eq!(
            jittered(Duration::from_secs(1), 1.0),
            Duration::from_millis(1250)
        );
    }

    #[tokio::test]
    async fn a_huge_metrics_page_is_a_gap_not_gigabytes() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // A page that never ends (no Content-Length): 1 MiB chunks of valid exposition text.
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = sock.read(&mut buf).await;
                    let _ = sock
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n")
                        .await;
                    let line = "vllm:num_requests_running{engine=\"0\"} 1.0\n".repeat(1 << 14);
                    for _ in 0..1024 {
                        if sock.write_all(line.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let url = format!("http://{addr}/metrics");
        let e = fetch(&http, &url, None).await.unwrap_err();
        assert!(e.contains("over 8 MiB"), "{e}");
    }

    #[test]
    fn vllm_names_the_tool_does_not_know_are_listed_and_mfu_counters_become_rates() {
        let page = |flops: f64| {
            format!(
                "vllm:num_requests_running{{engine=\"0\"}} 1.0\n\
                 vllm:generation_tokens_total{{engine=\"0\"}} 5.0\n\
                 vllm:generation_tokens_created{{engine=\"0\"}} 1.7e9\n\
                 vllm:estimated_flops_per_gpu_total{{engine=\"0\"}} {flops}\n\
                 vllm:estimated_read_bytes_per_gpu_total{{engine=\"0\"}} {}\n\
                 vllm:estimated_write_bytes_per_gpu_total{{engine=\"0\"}} 0\n\
                 vllm:brand_new_figure_seconds_bucket{{le=\"1\"}} 3\n\
                 vllm:brand_new_figure_seconds_count 3\n",
                flops / 100.0
            )
        };
        let t0 = Instant::now();
        let mut m = Mapper::default();
        m.sample(&page(0.0), t0).unwrap();
        assert_eq!(
            m.unknown_names.as_deref(),
            Some(&["vllm:brand_new_figure_seconds".to_string()][..])
        );
        let b = m
            .sample(&page(2e12), t0 + Duration::from_millis(500))
            .unwrap();
        assert_eq!(b.tflops_per_gpu, Some(4.0));
        assert_eq!(b.tb_per_s_per_gpu, Some(0.04));
        // MFU against a known GPU's peak; none for an unknown one.
        let mut sm = ServerMetrics {
            summary: ServerSummary {
                tflops_per_gpu: Some(98.94),
                tb_per_s_per_gpu: Some(0.335),
                ..ServerSummary::default()
            },
            ..ServerMetrics::default()
        };
        sm.utilisation(Some("NVIDIA H100 80GB HBM3"));
        assert!((sm.summary.mfu.unwrap() - 0.1).abs() < 1e-9);
        assert!((sm.summary.mbu.unwrap() - 0.1).abs() < 1e-9);
        sm.summary.mfu = None;
        sm.utilisation(Some("a CPU"));
        assert_eq!(sm.summary.mfu, None);
    }
}
