//! The run summary (DESIGN §3) from per-request records, with vLLM-compatible names
//! (`mean_ttft_ms`, `p99_itl_ms`, `request_throughput`, …) so existing plot scripts read it.
//! Percentiles interpolate linearly between order statistics (numpy's default, as
//! `vllm bench serve` uses); std is the population std; latencies cover successful requests
//! only, ITL all gaps of all successful requests. A figure without data is `None` (`null` in
//! the file, "n/a" in tables), never 0.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::columns::{Brief, Gaps};
use super::event::RequestRecord;
use crate::config::Slo;

/// `named` and `named_mut`: the summary's optional figures by their names in the file, from
/// one list so the two cannot disagree.
macro_rules! named_figures {
    ($($field:ident),* $(,)?) => {
        fn named(&self, name: &str) -> Option<Option<f64>> {
            Some(match name {
                $(stringify!($field) => self.$field,)*
                _ => return None,
            })
        }

        fn named_mut(&mut self, name: &str) -> Option<&mut Option<f64>> {
            Some(match name {
                $(stringify!($field) => &mut self.$field,)*
                _ => return None,
            })
        }
    };
}

/// Every figure of one run (or sweep point).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Summary {
    /// The benchmark's wall time in seconds (timed window start → last completion); every
    /// throughput divides by it.
    pub duration_s: f64,
    /// The same, under the name `vllm bench serve` writes.
    pub duration: f64,
    /// Successful requests.
    pub completed: u64,
    /// Failed requests (every kind).
    pub failed: u64,
    /// Prompt tokens of successful requests.
    pub total_input_tokens: u64,
    /// Output tokens of successful requests.
    pub total_output_tokens: u64,
    /// Successful requests per second.
    pub request_throughput: Option<f64>,
    /// Successful requests per second meeting every SLO of `metrics.slo` (`null` without one).
    pub request_goodput: Option<f64>,
    pub input_throughput: Option<f64>,
    pub output_throughput: Option<f64>,
    pub total_token_throughput: Option<f64>,
    /// `output_throughput` ÷ `infrastructure.gpu_count`.
    pub output_throughput_per_gpu: Option<f64>,
    /// `total_token_throughput` ÷ `infrastructure.gpu_count`.
    pub total_token_throughput_per_gpu: Option<f64>,
    pub mean_ttft_ms: Option<f64>,
    pub median_ttft_ms: Option<f64>,
    pub std_ttft_ms: Option<f64>,
    pub mean_tpot_ms: Option<f64>,
    pub median_tpot_ms: Option<f64>,
    pub std_tpot_ms: Option<f64>,
    pub mean_itl_ms: Option<f64>,
    pub median_itl_ms: Option<f64>,
    pub std_itl_ms: Option<f64>,
    pub mean_e2el_ms: Option<f64>,
    pub median_e2el_ms: Option<f64>,
    pub std_e2el_ms: Option<f64>,
    /// Tokens per second per user from the mean TPOT: 1000 / `mean_tpot_ms`.
    #[serde(alias = "interactivity_tok_s_user")]
    pub mean_interactivity_tok_s_user: Option<f64>,
    /// Tokens per second per user from the median TPOT: 1000 / `median_tpot_ms` (what `plot`
    /// and `report` put on their axis).
    pub median_interactivity_tok_s_user: Option<f64>,
    /// USD per million output tokens at the measured throughput: the server's price per hour
    /// (`environment.price_per_hour_usd`) ÷ (`output_throughput` × 3600) × 10⁶; `null`
    /// without a price.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usd_per_million_output_tokens: Option<f64>,
    /// The same per million tokens in and out (`total_token_throughput`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usd_per_million_total_tokens: Option<f64>,
    /// Mean GPU utilisation over the run, percent, where the provider reports it
    /// (`gpu_telemetry`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_gpu_util_pct: Option<f64>,
    /// Peak GPU memory use, percent (`gpu_telemetry`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_gpu_memory_pct: Option<f64>,
    /// Speculative decoding over the window, 0–1: the share of proposed draft tokens the
    /// target model accepted (`server_metrics.summary.spec_acceptance_rate`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec_acceptance_rate: Option<f64>,
    /// Speculative decoding: tokens one target step yields on average, 1 + accepted / draft
    /// steps (`server_metrics.summary.spec_acceptance_length`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec_acceptance_length: Option<f64>,
    /// The configured percentiles of every latency: `p99_ttft_ms`, `p50_itl_ms`, …
    #[serde(flatten)]
    pub percentiles_ms: BTreeMap<String, Option<f64>>,
    /// Which percentiles were computed (`metrics.percentiles`).
    pub percentiles: Vec<f64>,
    /// Time to first output token (content, after any reasoning), when a stream reasoned;
    /// its percentiles are `p99_ttfo_ms` and the like. Without reasoning TTFO equals TTFT and
    /// these are absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_ttfo_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median_ttfo_ms: Option<f64>,
    /// Reasoning tokens of successful requests (part of `total_output_tokens`), when any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_reasoning_tokens: Option<u64>,
    /// Successful requests whose stream carried reasoning and never a content token (no TTFO:
    /// they are not in the TTFO figures), when a stream reasoned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_only_requests: Option<u64>,
    /// `false` when the run had more ITL gaps than are kept exactly: ITL percentiles then come
    /// from a histogram (within 0.1 %); mean and std stay exact.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub itl_from_histogram: bool,
    /// Conversations: the figures of each turn index (turn 0 first), to see the prefix cache.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub by_turn: Vec<TurnSummary>,
    /// Conversations: whole sessions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions: Option<SessionSummary>,
    /// `model.adapters`: the figures of each LoRA adapter's requests, in `model.adapters`
    /// order (the server's own counters carry only the base model).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_adapter: Vec<AdapterSummary>,
    /// Several servers behind the run (`infrastructure.replicas`, `base_urls`): the figures of
    /// each one's requests, in the run's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_replica: Vec<ReplicaSummary>,
    /// The share of prompt tokens an ideal prefix cache (infinite, never evicting) would have
    /// served, over successful requests of a workload built from blocks (traces, agent
    /// traces): each prompt's prefix shared with prompts sent before it, in whole
    /// `metrics.cache_block_size` blocks. Beside `server_metrics`' measured
    /// `prefix_cache_hit_rate` it tells a small cache (or a scattering router) from a workload
    /// without reuse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ideal_prefix_cache_hit_rate: Option<f64>,
    /// Requests whose prompt and answer exceed `model.max_model_len` (agent traces), when any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_overflows: Option<u64>,
    /// A pooling API (`embeddings`, `rerank`): the texts the successful requests pooled
    /// (embedded, or documents scored). Its output figures (`output_throughput`, TTFT, TPOT,
    /// ITL) are `null`: nothing was generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_inputs: Option<u64>,
    /// `total_inputs` per second: texts embedded (or documents scored) per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_item_throughput: Option<f64>,
    /// `workload.steady_state`: whether the figures settled, and from when. When they did,
    /// every figure above covers the steady part only (requests that ended from
    /// `steady_from_s` on); the transient before it is left out and counted here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steady_state: Option<SteadyReport>,
}

/// How a point with `workload.steady_state` went.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SteadyReport {
    /// The figures settled before the point's cap.
    pub reached: bool,
    /// Where the steady part starts, seconds from the timed window's start.
    pub steady_from_s: Option<f64>,
    pub window_s: f64,
    pub threshold: f64,
    /// Requests that ended before `steady_from_s` (the transient, left out of the figures).
    pub transient_requests: u64,
}

/// One group of a point's requests (an adapter's, a replica's): how many, how fast, how long.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GroupFigures {
    pub completed: u64,
    pub failed: u64,
    /// Its share of all requests sent (successful or not).
    pub share: f64,
    /// Its successful requests per second, over the whole window.
    pub request_throughput: Option<f64>,
    /// Its output tokens per second, over the whole window.
    pub output_throughput: Option<f64>,
    pub p50_ttft_ms: Option<f64>,
    pub p99_ttft_ms: Option<f64>,
    pub p50_tpot_ms: Option<f64>,
    pub p99_tpot_ms: Option<f64>,
    pub p50_e2el_ms: Option<f64>,
    pub p99_e2el_ms: Option<f64>,
}

impl GroupFigures {
    /// The figures `compare` and `report` show per group (`adapter.NAME.p99_ttft_ms`,
    /// `replica.0.p99_ttft_ms`, …).
    pub const FIGURES: [&'static str; 8] = [
        "request_throughput",
        "output_throughput",
        "p50_ttft_ms",
        "p99_ttft_ms",
        "p50_tpot_ms",
        "p99_tpot_ms",
        "p50_e2el_ms",
        "p99_e2el_ms",
    ];

    pub fn figure(&self, name: &str) -> Option<f64> {
        match name {
            "request_throughput" => self.request_throughput,
            "output_throughput" => self.output_throughput,
            "p50_ttft_ms" => self.p50_ttft_ms,
            "p99_ttft_ms" => self.p99_ttft_ms,
            "p50_tpot_ms" => self.p50_tpot_ms,
            "p99_tpot_ms" => self.p99_tpot_ms,
            "p50_e2el_ms" => self.p50_e2el_ms,
            "p99_e2el_ms" => self.p99_e2el_ms,
            _ => None,
        }
    }

    /// The figures of the briefs `of` picks out of `briefs`, over a window of `duration_s`.
    fn of(briefs: &[Brief], of: impl Fn(&Brief) -> bool, duration_s: f64) -> Self {
        let sorted = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v
        };
        let group: Vec<&Brief> = briefs.iter().filter(|b| of(b)).collect();
        let ok: Vec<&Brief> = group.iter().copied().filter(|b| b.ok()).collect();
        let ttft = sorted(ok.iter().filter_map(|b| b.ttft()).collect());
        let tpot = sorted(ok.iter().filter_map(|b| b.tpot()).collect());
        let e2el = sorted(ok.iter().map(|b| b.e2el_ms).collect());
        let out: u64 = ok.iter().map(|b| u64::from(b.output_tokens)).sum();
        Self {
            completed: ok.len() as u64,
            failed: (group.len() - ok.len()) as u64,
            share: group.len() as f64 / briefs.len().max(1) as f64,
            request_throughput: per_s(ok.len() as f64, duration_s),
            output_throughput: per_s(out as f64, duration_s).filter(|_| out > 0),
            p50_ttft_ms: percentile(&ttft, 50.0),
            p99_ttft_ms: percentile(&ttft, 99.0),
            p50_tpot_ms: percentile(&tpot, 50.0),
            p99_tpot_ms: percentile(&tpot, 99.0),
            p50_e2el_ms: percentile(&e2el, 50.0),
            p99_e2el_ms: percentile(&e2el, 99.0),
        }
    }
}

/// One LoRA adapter's requests (`model.adapters`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AdapterSummary {
    /// Its name (the requests' `model`).
    pub adapter: String,
    #[serde(flatten)]
    pub figures: GroupFigures,
}

/// One server's requests, with several behind a run (`infrastructure.replicas`, `base_urls`):
/// an unbalanced router shows here.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReplicaSummary {
    /// Its index in the run's servers (`replica` in the records).
    pub replica: u16,
    /// Where it answered.
    pub base_url: String,
    #[serde(flatten)]
    pub figures: GroupFigures,
}

/// `adapter.NAME.p99_ttft_ms` → ("NAME", "p99_ttft_ms").
pub fn adapter_figure(name: &str) -> Option<(&str, &str)> {
    group_figure("adapter.", name)
}

/// `replica.1.p99_ttft_ms` → (1, "p99_ttft_ms").
pub fn replica_figure(name: &str) -> Option<(u16, &str)> {
    let (k, f) = group_figure("replica.", name)?;
    Some((k.parse().ok()?, f))
}

fn group_figure<'a>(prefix: &str, name: &'a str) -> Option<(&'a str, &'a str)> {
    let rest = name.strip_prefix(prefix)?;
    let (group, figure) = rest.rsplit_once('.')?;
    GroupFigures::FIGURES
        .contains(&figure)
        .then_some((group, figure))
}

/// Each adapter's figures over `briefs` (`names` in `model.adapters` order), over a window of
/// `duration_s`; none without adapters.
pub fn by_adapter(briefs: &[Brief], names: &[String], duration_s: f64) -> Vec<AdapterSummary> {
    names
        .iter()
        .enumerate()
        .map(|(k, name)| AdapterSummary {
            adapter: name.clone(),
            figures: GroupFigures::of(briefs, |b| usize::from(b.adapter) == k, duration_s),
        })
        .collect()
}

/// Each server's figures over `briefs` (`base_urls` in the run's order); none with one.
pub fn by_replica(briefs: &[Brief], base_urls: &[String], duration_s: f64) -> Vec<ReplicaSummary> {
    if base_urls.len() < 2 {
        return Vec::new();
    }
    base_urls
        .iter()
        .enumerate()
        .map(|(k, url)| ReplicaSummary {
            replica: k as u16,
            base_url: url.clone(),
            figures: GroupFigures::of(briefs, |b| usize::from(b.replica) == k, duration_s),
        })
        .collect()
}

/// One turn index of a conversation workload, over its successful requests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TurnSummary {
    /// 0 for the first turn of every session.
    pub turn: u32,
    pub completed: u64,
    pub failed: u64,
    /// Prompt tokens per request at this turn (the history grows with the turns).
    pub mean_input_tokens: Option<f64>,
    pub mean_ttft_ms: Option<f64>,
    pub p50_ttft_ms: Option<f64>,
    pub p99_ttft_ms: Option<f64>,
    pub mean_itl_ms: Option<f64>,
    pub p50_tpot_ms: Option<f64>,
    pub p99_tpot_ms: Option<f64>,
    pub mean_e2el_ms: Option<f64>,
    pub p50_e2el_ms: Option<f64>,
    pub p99_e2el_ms: Option<f64>,
    /// The share of this turn's prompt tokens an ideal prefix cache serves (`workload::ideal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ideal_prefix_cache_hit_rate: Option<f64>,
}

impl TurnSummary {
    /// The figures `compare` and `report` show per turn (`turn1_p99_ttft_ms`, …).
    pub const FIGURES: [&'static str; 5] = [
        "mean_input_tokens",
        "mean_ttft_ms",
        "p50_ttft_ms",
        "p99_ttft_ms",
        "mean_e2el_ms",
    ];

    pub fn figure(&self, name: &str) -> Option<f64> {
        match name {
            "mean_input_tokens" => self.mean_input_tokens,
            "mean_ttft_ms" => self.mean_ttft_ms,
            "p50_ttft_ms" => self.p50_ttft_ms,
            "p99_ttft_ms" => self.p99_ttft_ms,
            "mean_itl_ms" => self.mean_itl_ms,
            "p50_tpot_ms" => self.p50_tpot_ms,
            "p99_tpot_ms" => self.p99_tpot_ms,
            "mean_e2el_ms" => self.mean_e2el_ms,
            "p50_e2el_ms" => self.p50_e2el_ms,
            "p99_e2el_ms" => self.p99_e2el_ms,
            _ => None,
        }
    }
}

/// `turn2_p99_ttft_ms` → (2, "p99_ttft_ms").
pub fn turn_figure(name: &str) -> Option<(u32, &str)> {
    let rest = name.strip_prefix("turn")?;
    let (n, figure) = rest.split_once('_')?;
    Some((n.parse().ok()?, figure))
}

/// Whole sessions of a conversation workload: first send to last byte.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionSummary {
    /// Sessions with at least one measured turn.
    pub count: u64,
    /// Of those, sessions whose every measured turn succeeded.
    pub all_turns_ok: u64,
    pub mean_turns: Option<f64>,
    pub mean_duration_s: Option<f64>,
    pub p50_duration_s: Option<f64>,
    pub p99_duration_s: Option<f64>,
}

/// The latencies every summary reports, in the order tables show them.
pub const LATENCIES: [&str; 4] = ["ttft", "tpot", "itl", "e2el"];

/// The summary's figures other than latencies and counts, by name, in table order.
const RATES: [&str; 15] = [
    "request_throughput",
    "request_goodput",
    "input_throughput",
    "output_throughput",
    "total_token_throughput",
    "output_throughput_per_gpu",
    "total_token_throughput_per_gpu",
    "mean_interactivity_tok_s_user",
    "median_interactivity_tok_s_user",
    "usd_per_million_output_tokens",
    "usd_per_million_total_tokens",
    "mean_gpu_util_pct",
    "peak_gpu_memory_pct",
    "spec_acceptance_rate",
    "spec_acceptance_length",
];

impl Summary {
    /// The figure called `name` (its name in the file), if the summary has it.
    pub fn figure(&self, name: &str) -> Option<f64> {
        match name {
            "duration_s" => Some(self.duration_s),
            "duration" => Some(self.duration),
            "completed" => Some(self.completed as f64),
            "failed" => Some(self.failed as f64),
            "total_input_tokens" => Some(self.total_input_tokens as f64),
            "total_output_tokens" => Some(self.total_output_tokens as f64),
            "total_reasoning_tokens" => self.total_reasoning_tokens.map(|n| n as f64),
            "total_inputs" => self.total_inputs.map(|n| n as f64),
            _ => match self.named(name) {
                Some(v) => v,
                None => self.group_figure(name),
            },
        }
    }

    /// A figure of a turn, an adapter or a replica (`turn1_p50_ttft_ms`,
    /// `adapter.a1.p99_ttft_ms`, `replica.0.request_throughput`), else a percentile.
    fn group_figure(&self, name: &str) -> Option<f64> {
        if let Some((t, f)) = turn_figure(name) {
            return self.by_turn.iter().find(|x| x.turn == t)?.figure(f);
        }
        if let Some((a, f)) = adapter_figure(name) {
            return self
                .by_adapter
                .iter()
                .find(|x| x.adapter == a)?
                .figures
                .figure(f);
        }
        if let Some((k, f)) = replica_figure(name) {
            return self
                .by_replica
                .iter()
                .find(|x| x.replica == k)?
                .figures
                .figure(f);
        }
        self.percentiles_ms.get(name).copied().flatten()
    }

    /// Sets the figure called `name`; false when no figure has that name.
    pub fn set(&mut self, name: &str, v: f64) -> bool {
        let n = v.max(0.0) as u64;
        match name {
            "duration_s" => self.duration_s = v,
            "duration" => self.duration = v,
            "completed" => self.completed = n,
            "failed" => self.failed = n,
            "total_input_tokens" => self.total_input_tokens = n,
            "total_output_tokens" => self.total_output_tokens = n,
            _ => match self.named_mut(name) {
                Some(slot) => *slot = Some(v),
                None if percentile_name(name).is_some() => {
                    self.percentiles_ms.insert(name.to_string(), Some(v));
                }
                None => return false,
            },
        }
        true
    }

    /// Every figure's name, in the order tables show them: counts, rates, then each latency's
    /// mean, median and percentiles.
    pub fn names(&self) -> Vec<String> {
        let mut out: Vec<String> = ["completed", "failed", "duration"]
            .iter()
            .chain(RATES.iter())
            .map(|s| s.to_string())
            .collect();
        for m in LATENCIES {
            out.push(format!("mean_{m}_ms"));
            out.push(format!("median_{m}_ms"));
            out.extend(self.percentile_names(m));
        }
        if self.mean_ttfo_ms.is_some() {
            out.extend(["mean_ttfo_ms".into(), "median_ttfo_ms".into()]);
            out.extend(self.percentile_names("ttfo"));
            out.push("total_reasoning_tokens".into());
        }
        if self.ideal_prefix_cache_hit_rate.is_some() {
            out.push("ideal_prefix_cache_hit_rate".into());
        }
        if self.total_inputs.is_some() {
            out.extend(["total_inputs".into(), "input_item_throughput".into()]);
        }
        for t in &self.by_turn {
            for f in TurnSummary::FIGURES {
                out.push(format!("turn{}_{f}", t.turn));
            }
        }
        for a in &self.by_adapter {
            for f in GroupFigures::FIGURES {
                out.push(format!("adapter.{}.{f}", a.adapter));
            }
        }
        for r in &self.by_replica {
            for f in GroupFigures::FIGURES {
                out.push(format!("replica.{}.{f}", r.replica));
            }
        }
        out
    }

    /// `p50_ttft_ms`, `p99_ttft_ms`, … for `metric`, by rising percentile.
    pub fn percentile_names(&self, metric: &str) -> Vec<String> {
        let mut ps: Vec<(f64, String)> = self
            .percentiles_ms
            .keys()
            .filter_map(|k| {
                let (p, m) = percentile_name(k)?;
                (m == metric).then(|| (p, k.clone()))
            })
            .collect();
        ps.sort_by(|a, b| a.0.total_cmp(&b.0));
        ps.into_iter().map(|(_, k)| k).collect()
    }

    named_figures!(
        request_throughput,
        request_goodput,
        input_throughput,
        output_throughput,
        total_token_throughput,
        output_throughput_per_gpu,
        total_token_throughput_per_gpu,
        mean_ttft_ms,
        median_ttft_ms,
        std_ttft_ms,
        mean_tpot_ms,
        median_tpot_ms,
        std_tpot_ms,
        mean_itl_ms,
        median_itl_ms,
        std_itl_ms,
        mean_e2el_ms,
        median_e2el_ms,
        std_e2el_ms,
        mean_interactivity_tok_s_user,
        median_interactivity_tok_s_user,
        mean_ttfo_ms,
        median_ttfo_ms,
        usd_per_million_output_tokens,
        usd_per_million_total_tokens,
        mean_gpu_util_pct,
        peak_gpu_memory_pct,
        spec_acceptance_rate,
        spec_acceptance_length,
        ideal_prefix_cache_hit_rate,
        input_item_throughput,
    );

    /// Mean, median and std of `metric` (`ttft`, …), to be filled.
    fn moments_mut(&mut self, metric: &str) -> [&mut Option<f64>; 3] {
        match metric {
            "ttft" => [
                &mut self.mean_ttft_ms,
                &mut self.median_ttft_ms,
                &mut self.std_ttft_ms,
            ],
            "tpot" => [
                &mut self.mean_tpot_ms,
                &mut self.median_tpot_ms,
                &mut self.std_tpot_ms,
            ],
            "itl" => [
                &mut self.mean_itl_ms,
                &mut self.median_itl_ms,
                &mut self.std_itl_ms,
            ],
            _ => [
                &mut self.mean_e2el_ms,
                &mut self.median_e2el_ms,
                &mut self.std_e2el_ms,
            ],
        }
    }

    /// Sets the cost of work from the server's price per hour (`None`: no price, no figure).
    pub fn price(&mut self, usd_per_hour: Option<f64>) {
        self.usd_per_million_output_tokens = usd_per_million(usd_per_hour, self.output_throughput);
        self.usd_per_million_total_tokens =
            usd_per_million(usd_per_hour, self.total_token_throughput);
    }

    /// The median interactivity, also for files written before it was stored (from their
    /// median TPOT, by the same definition).
    pub fn median_interactivity(&self) -> Option<f64> {
        self.median_interactivity_tok_s_user
            .or_else(|| interactivity(self.median_tpot_ms))
    }
}

/// USD per million tokens at `tokens_per_s` for a server costing `usd_per_hour`; `None` without
/// a price or a throughput.
pub fn usd_per_million(usd_per_hour: Option<f64>, tokens_per_s: Option<f64>) -> Option<f64> {
    let (p, t) = (usd_per_hour?, tokens_per_s?);
    (t > 0.0).then(|| p / (t * 3600.0) * 1e6)
}

/// `p99_ttft_ms` → (99, "ttft"); `p99.9_itl_ms` → (99.9, "itl").
pub fn percentile_name(name: &str) -> Option<(f64, &str)> {
    let rest = name.strip_prefix('p')?.strip_suffix("_ms")?;
    let (p, metric) = rest.split_once('_')?;
    Some((p.parse().ok()?, metric))
}

/// Tokens per second per user from a TPOT in ms: 1000 / TPOT.
pub fn interactivity(tpot_ms: Option<f64>) -> Option<f64> {
    tpot_ms.filter(|t| *t > 0.0).map(|t| 1000.0 / t)
}

/// Percentile with linear interpolation (numpy `method="linear"`). `sorted` must be
/// ascending; `None` when it is empty.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0).clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64))
}

/// Mean and population std; `None` when `xs` is empty.
pub fn mean_std(xs: &[f64]) -> Option<(f64, f64)> {
    if xs.is_empty() {
        return None;
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    Some((mean, var.sqrt()))
}

/// `50` → `p50`, `99.9` → `p99.9` (vLLM's key style).
pub fn pname(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("p{}", p as u64)
    } else {
        format!("p{p}")
    }
}

/// Latency-style statistics in ms (the client's own lag and connect times).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Stats {
    pub count: usize,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
}

impl Stats {
    pub fn of(mut xs: Vec<f64>) -> Self {
        xs.sort_by(f64::total_cmp);
        Self {
            count: xs.len(),
            p50: percentile(&xs, 50.0),
            p99: percentile(&xs, 99.0),
            max: xs.last().copied(),
            mean: mean_std(&xs).map(|m| m.0),
        }
    }
}

fn put_stats(s: &mut Summary, metric: &str, mut xs: Vec<f64>, percentiles: &[f64]) {
    xs.sort_by(f64::total_cmp);
    put_sorted(
        s,
        metric,
        mean_std(&xs),
        &|p| percentile(&xs, p),
        percentiles,
    );
}

/// Fills `metric`'s mean, median, std and percentiles from its moments and a percentile
/// function.
fn put_sorted(
    s: &mut Summary,
    metric: &str,
    ms: Option<(f64, f64)>,
    pct: &dyn Fn(f64) -> Option<f64>,
    percentiles: &[f64],
) {
    let median = pct(50.0);
    if metric == "ttfo" {
        (s.mean_ttfo_ms, s.median_ttfo_ms) = (ms.map(|m| m.0), median);
    } else {
        let [mean, med, std] = s.moments_mut(metric);
        *mean = ms.map(|m| m.0);
        *med = median;
        *std = ms.map(|m| m.1);
    }
    for p in percentiles {
        s.percentiles_ms
            .insert(format!("{}_{metric}_ms", pname(*p)), pct(*p));
    }
}

/// The ITL figures, exact or from the histogram.
fn put_gaps(s: &mut Summary, mut gaps: Gaps, percentiles: &[f64]) {
    let ms = gaps.mean_std();
    s.itl_from_histogram = !gaps.is_exact();
    match gaps.sorted() {
        Some(sorted) => put_sorted(s, "itl", ms, &|p| percentile(sorted, p), percentiles),
        None => put_sorted(s, "itl", ms, &|p| gaps.hist_percentile(p), percentiles),
    }
}

/// Per-second rate of `n` over `duration_s`; `None` without a duration.
fn per_s(n: f64, duration_s: f64) -> Option<f64> {
    (duration_s > 0.0).then(|| n / duration_s)
}

/// Every figure of DESIGN §3 over `records` (tests and tools; a run uses
/// [`summarize_briefs`]).
pub fn summarize(
    records: &[RequestRecord],
    itl_gaps_ms: Vec<f64>,
    duration_s: f64,
    percentiles: &[f64],
    slo: Option<&Slo>,
    gpu_count: u32,
) -> Summary {
    let briefs: Vec<Brief> = records.iter().map(Brief::of).collect();
    summarize_briefs(
        &briefs,
        Gaps::from_vec(itl_gaps_ms),
        duration_s,
        percentiles,
        slo,
        gpu_count,
    )
}

/// Every figure of DESIGN §3 over the run's requests, with `duration_s` the benchmark's wall
/// time. `itl` holds the ITL gaps of successful requests (kept apart so records stay small).
pub fn summarize_briefs(
    briefs: &[Brief],
    itl: Gaps,
    duration_s: f64,
    percentiles: &[f64],
    slo: Option<&Slo>,
    gpu_count: u32,
) -> Summary {
    let ok: Vec<&Brief> = briefs.iter().filter(|r| r.ok()).collect();
    let input: u64 = ok.iter().map(|r| r.input_tokens as u64).sum();
    let output: u64 = ok.iter().map(|r| r.output_tokens as u64).sum();
    let good = slo.map(|s| {
        ok.iter()
            .filter(|r| {
                s.ttft_ms.is_none_or(|l| r.ttft().is_some_and(|t| t <= l))
                    && s.tpot_ms.is_none_or(|l| r.tpot().is_none_or(|t| t <= l))
                    && s.e2el_ms.is_none_or(|l| r.e2el_ms <= l)
            })
            .count()
    });
    let gpus = gpu_count.max(1) as f64;
    let d = duration_s;
    let mut s = Summary {
        duration_s,
        duration: duration_s,
        completed: ok.len() as u64,
        failed: (briefs.len() - ok.len()) as u64,
        total_input_tokens: input,
        total_output_tokens: output,
        request_throughput: per_s(ok.len() as f64, d),
        request_goodput: good.and_then(|g| per_s(g as f64, d)),
        input_throughput: per_s(input as f64, d),
        output_throughput: per_s(output as f64, d),
        total_token_throughput: per_s((input + output) as f64, d),
        output_throughput_per_gpu: per_s(output as f64 / gpus, d),
        total_token_throughput_per_gpu: per_s((input + output) as f64 / gpus, d),
        percentiles: percentiles.to_vec(),
        ..Summary::default()
    };
    put_stats(
        &mut s,
        "ttft",
        ok.iter().filter_map(|r| r.ttft()).collect(),
        percentiles,
    );
    put_stats(
        &mut s,
        "tpot",
        ok.iter().filter_map(|r| r.tpot()).collect(),
        percentiles,
    );
    put_gaps(&mut s, itl, percentiles);
    put_stats(
        &mut s,
        "e2el",
        ok.iter().map(|r| r.e2el_ms).collect(),
        percentiles,
    );
    if ok.iter().any(|r| r.reasoned()) {
        let ttfos = ok.iter().filter_map(|r| some(r.ttfo_ms)).collect();
        put_stats(&mut s, "ttfo", ttfos, percentiles);
        s.total_reasoning_tokens = Some(ok.iter().map(|r| r.reasoning_tokens as u64).sum());
        s.reasoning_only_requests = Some(
            ok.iter()
                .filter(|r| r.reasoned() && r.ttfo_ms.is_nan())
                .count() as u64,
        );
    }
    s.mean_interactivity_tok_s_user = interactivity(s.mean_tpot_ms);
    s.median_interactivity_tok_s_user = interactivity(s.median_tpot_ms);
    s.ideal_prefix_cache_hit_rate = ideal_hit_rate(&ok);
    pooled(&mut s, &ok, d);
    let overflows = briefs.iter().filter(|b| b.overflow()).count() as u64;
    s.context_overflows = (overflows > 0).then_some(overflows);
    s
}

/// A pooling API's run: texts pooled and their rate; the figures of generation are `null`
/// (nothing generated is not a measured 0 tokens/s).
fn pooled(s: &mut Summary, ok: &[&Brief], duration_s: f64) {
    if !ok.iter().any(|b| b.inputs > 0) {
        return;
    }
    let inputs: u64 = ok.iter().map(|b| u64::from(b.inputs)).sum();
    s.total_inputs = Some(inputs);
    s.input_item_throughput = per_s(inputs as f64, duration_s);
    s.output_throughput = None;
    s.output_throughput_per_gpu = None;
}

/// Σ ideal cached tokens ÷ Σ prompt tokens, over the requests that know theirs.
fn ideal_hit_rate(ok: &[&Brief]) -> Option<f64> {
    let (cached, input) = ok
        .iter()
        .filter(|b| b.ideal_cached != u32::MAX)
        .fold((0u64, 0u64), |(c, i), b| {
            (c + u64::from(b.ideal_cached), i + u64::from(b.input_tokens))
        });
    (input > 0).then(|| (cached as f64 / input as f64).min(1.0))
}

fn some(x: f64) -> Option<f64> {
    (!x.is_nan()).then_some(x)
}

/// Per-turn figures over `briefs`; `itl_by_turn` holds each turn's (gap sum, gap count).
pub fn by_turn(briefs: &[Brief], itl_by_turn: &[(f64, u64)]) -> Vec<TurnSummary> {
    let turns = briefs
        .iter()
        .filter_map(Brief::turn)
        .max()
        .map_or(0, |t| t as usize + 1);
    (0..turns)
        .map(|t| {
            let of: Vec<&Brief> = briefs
                .iter()
                .filter(|b| b.turn() == Some(t as u32))
                .collect();
            let ok: Vec<&Brief> = of.iter().copied().filter(|b| b.ok()).collect();
            let sorted = |mut v: Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v
            };
            let ttft = sorted(ok.iter().filter_map(|b| b.ttft()).collect());
            let tpot = sorted(ok.iter().filter_map(|b| b.tpot()).collect());
            let e2el = sorted(ok.iter().map(|b| b.e2el_ms).collect());
            let inputs: Vec<f64> = ok.iter().map(|b| b.input_tokens as f64).collect();
            let itl = itl_by_turn
                .get(t)
                .filter(|(_, n)| *n > 0)
                .map(|(s, n)| s / *n as f64);
            TurnSummary {
                turn: t as u32,
                completed: ok.len() as u64,
                failed: (of.len() - ok.len()) as u64,
                mean_input_tokens: mean_std(&inputs).map(|m| m.0),
                mean_ttft_ms: mean_std(&ttft).map(|m| m.0),
                p50_ttft_ms: percentile(&ttft, 50.0),
                p99_ttft_ms: percentile(&ttft, 99.0),
                mean_itl_ms: itl,
                p50_tpot_ms: percentile(&tpot, 50.0),
                p99_tpot_ms: percentile(&tpot, 99.0),
                mean_e2el_ms: mean_std(&e2el).map(|m| m.0),
                p50_e2el_ms: percentile(&e2el, 50.0),
                p99_e2el_ms: percentile(&e2el, 99.0),
                ideal_prefix_cache_hit_rate: ideal_hit_rate(&ok),
            }
        })
        .collect()
}

/// Session figures from each session's (first send ms, last end ms, turns, all ok).
pub fn sessions(spans: impl Iterator<Item = (f64, f64, u32, bool)>) -> Option<SessionSummary> {
    let spans: Vec<_> = spans.collect();
    if spans.is_empty() {
        return None;
    }
    let mut durations: Vec<f64> = spans
        .iter()
        .map(|(a, b, _, _)| (b - a).max(0.0) / 1e3)
        .collect();
    durations.sort_by(f64::total_cmp);
    let turns: Vec<f64> = spans.iter().map(|s| s.2 as f64).collect();
    Some(SessionSummary {
        count: spans.len() as u64,
        all_turns_ok: spans.iter().filter(|s| s.3).count() as u64,
        mean_turns: mean_std(&turns).map(|m| m.0),
        mean_duration_s: mean_std(&durations).map(|m| m.0),
        p50_duration_s: percentile(&durations, 50.0),
        p99_duration_s: percentile(&durations, 99.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_matches_numpy_linear() {
        let xs = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&xs, 50.0), Some(2.5));
        assert!((percentile(&xs, 90.0).unwrap() - 3.7).abs() < 1e-12);
        assert_eq!(percentile(&xs, 100.0), Some(4.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 99.0), None);
        let (m, s) = mean_std(&xs).unwrap();
        assert_eq!(m, 2.5);
        assert!((s - 1.118033988749895).abs() < 1e-12);
    }

    #[test]
    fn no_successful_request_gives_null_latencies_and_zero_throughput() {
        let failed = RequestRecord {
            error: Some(super::super::event::RequestError::new(
                super::super::event::ErrorKind::Timeout,
                "late",
            )),
            e2el_ms: 5.0,
            ..RequestRecord::default()
        };
        let s = summarize(&[failed], vec![], 2.0, &[50.0, 99.0], None, 1);
        assert_eq!((s.completed, s.failed), (0, 1));
        assert_eq!(s.mean_ttft_ms, None);
        assert_eq!(s.figure("p99_e2el_ms"), None);
        assert_eq!(s.mean_interactivity_tok_s_user, None);
        // Nothing completed in two seconds: a real zero, not a missing figure.
        assert_eq!(s.request_throughput, Some(0.0));
        let json = serde_json::to_value(&s).unwrap();
        assert!(json["mean_ttft_ms"].is_null() && json["p99_ttft_ms"].is_null());
        // Without a duration there is no rate at all.
        assert_eq!(
            summarize(&[], vec![], 0.0, &[], None, 1).request_throughput,
            None
        );
    }

    #[test]
    fn figures_round_trip_by_name_and_percentiles_sort_numerically() {
        let mut s = Summary::default();
        for (name, v) in [
            ("p99_ttft_ms", 9.0),
            ("p50_ttft_ms", 5.0),
            ("p99.9_ttft_ms", 9.9),
            ("mean_ttft_ms", 4.0),
            ("completed", 7.0),
        ] {
            assert!(s.set(name, v), "{name}");
            assert_eq!(s.figure(name), Some(v), "{name}");
        }
        assert!(!s.set("no_such_figure", 1.0));
        assert_eq!(
            s.percentile_names("ttft"),
            ["p50_ttft_ms", "p99_ttft_ms", "p99.9_ttft_ms"]
        );
        // A file of the first schema: the old interactivity key is the mean one.
        let old: Summary =
            serde_json::from_str(r#"{"interactivity_tok_s_user": 50.0, "median_tpot_ms": 25.0}"#)
                .unwrap();
        assert_eq!(old.mean_interactivity_tok_s_user, Some(50.0));
        assert_eq!(old.median_interactivity(), Some(40.0));
    }
}
