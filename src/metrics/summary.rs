//! The run summary (DESIGN §3) from per-request records, with vLLM-compatible names
//! (`mean_ttft_ms`, `p99_itl_ms`, `request_throughput`, …) so existing plot scripts read it.
//! Percentiles interpolate linearly between order statistics (numpy's default, as
//! `vllm bench serve` uses); std is the population std; latencies cover successful requests
//! only, ITL all gaps of all successful requests. A figure without data is `None` (`null` in
//! the file, "n/a" in tables), never 0.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
    /// The configured percentiles of every latency: `p99_ttft_ms`, `p50_itl_ms`, …
    #[serde(flatten)]
    pub percentiles_ms: BTreeMap<String, Option<f64>>,
    /// Which percentiles were computed (`metrics.percentiles`).
    pub percentiles: Vec<f64>,
}

/// The latencies every summary reports, in the order tables show them.
pub const LATENCIES: [&str; 4] = ["ttft", "tpot", "itl", "e2el"];

/// The summary's figures other than latencies and counts, by name, in table order.
const RATES: [&str; 9] = [
    "request_throughput",
    "request_goodput",
    "input_throughput",
    "output_throughput",
    "total_token_throughput",
    "output_throughput_per_gpu",
    "total_token_throughput_per_gpu",
    "mean_interactivity_tok_s_user",
    "median_interactivity_tok_s_user",
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
            _ => match self.named(name) {
                Some(v) => v,
                None => self.percentiles_ms.get(name).copied().flatten(),
            },
        }
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

    /// The median interactivity, also for files written before it was stored (from their
    /// median TPOT, by the same definition).
    pub fn median_interactivity(&self) -> Option<f64> {
        self.median_interactivity_tok_s_user
            .or_else(|| interactivity(self.median_tpot_ms))
    }
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
    let ms = mean_std(&xs);
    let median = percentile(&xs, 50.0);
    let [mean, med, std] = s.moments_mut(metric);
    *mean = ms.map(|m| m.0);
    *med = median;
    *std = ms.map(|m| m.1);
    for p in percentiles {
        s.percentiles_ms
            .insert(format!("{}_{metric}_ms", pname(*p)), percentile(&xs, *p));
    }
}

/// Per-second rate of `n` over `duration_s`; `None` without a duration.
fn per_s(n: f64, duration_s: f64) -> Option<f64> {
    (duration_s > 0.0).then(|| n / duration_s)
}

/// Every figure of DESIGN §3 over `records`, with `duration_s` the benchmark's wall time.
/// `itl_gaps_ms` are all ITL gaps of successful requests (kept apart so records stay small;
/// taken by value because they are sorted in place and may be most of a run's memory).
pub fn summarize(
    records: &[RequestRecord],
    itl_gaps_ms: Vec<f64>,
    duration_s: f64,
    percentiles: &[f64],
    slo: Option<&Slo>,
    gpu_count: u32,
) -> Summary {
    let ok: Vec<&RequestRecord> = records.iter().filter(|r| r.ok()).collect();
    let input: u64 = ok.iter().map(|r| r.input_tokens.unwrap_or(0) as u64).sum();
    let output: u64 = ok.iter().map(|r| r.output_tokens as u64).sum();
    let good = slo.map(|s| {
        ok.iter()
            .filter(|r| {
                s.ttft_ms.is_none_or(|l| r.ttft_ms.is_some_and(|t| t <= l))
                    && s.tpot_ms.is_none_or(|l| r.tpot_ms().is_none_or(|t| t <= l))
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
        failed: (records.len() - ok.len()) as u64,
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
    let ttfts = ok.iter().filter_map(|r| r.ttft_ms).collect();
    put_stats(&mut s, "ttft", ttfts, percentiles);
    let tpots = ok.iter().filter_map(|r| r.tpot_ms()).collect();
    put_stats(&mut s, "tpot", tpots, percentiles);
    put_stats(&mut s, "itl", itl_gaps_ms, percentiles);
    let e2els = ok.iter().map(|r| r.e2el_ms).collect();
    put_stats(&mut s, "e2el", e2els, percentiles);
    s.mean_interactivity_tok_s_user = interactivity(s.mean_tpot_ms);
    s.median_interactivity_tok_s_user = interactivity(s.median_tpot_ms);
    s
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
