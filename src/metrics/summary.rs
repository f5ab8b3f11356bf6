//! The run summary (DESIGN §3) from per-request records, with vLLM-compatible names
//! (`mean_ttft_ms`, `p99_itl_ms`, `request_throughput`, …) so existing plot scripts read it.
//! Percentiles interpolate linearly between order statistics (numpy's default, as
//! `vllm bench serve` uses); std is the population std; latencies cover successful requests
//! only, ITL all gaps of all successful requests.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::Slo;

/// One request, as stored in the result file (warm-up excluded).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    pub id: u64,
    /// Intended send time, ms after the benchmark start (open loop only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scheduled_ms: Option<f64>,
    /// Actual send time, ms after the benchmark start.
    pub sent_ms: f64,
    /// Send → first chunk with content or reasoning text.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ttft_ms: Option<f64>,
    /// Send → last byte.
    pub e2el_ms: f64,
    pub input_tokens: Option<u32>,
    pub output_tokens: u32,
    /// `usage` (server-reported), `tokenizer` (calibrated), or `chunks` (content events counted).
    pub tokens_source: String,
    /// Body reads that carried data.
    pub reads: u32,
    /// Every gap between content events (only with `output.detail: full`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub itl_ms: Option<Vec<f64>>,
    pub error: Option<crate::client::RequestError>,
    /// The server's own prefill and decode time in ms (llama.cpp's `timings`), when it sent them.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub server_prefill_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub server_decode_ms: Option<f64>,
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
}

/// Percentile with linear interpolation (numpy `method="linear"`). `sorted` must be ascending.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0).clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

/// Mean and population std.
pub fn mean_std(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (0.0, 0.0);
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// `50` → `p50`, `99.9` → `p99.9` (vLLM's key style).
pub fn pname(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("p{}", p as u64)
    } else {
        format!("p{p}")
    }
}

fn put_stats(out: &mut Map<String, Value>, metric: &str, mut xs: Vec<f64>, percentiles: &[f64]) {
    xs.sort_by(f64::total_cmp);
    let (mean, std) = mean_std(&xs);
    out.insert(format!("mean_{metric}_ms"), mean.into());
    out.insert(format!("median_{metric}_ms"), percentile(&xs, 50.0).into());
    out.insert(format!("std_{metric}_ms"), std.into());
    for p in percentiles {
        out.insert(
            format!("{}_{metric}_ms", pname(*p)),
            percentile(&xs, *p).into(),
        );
    }
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
) -> Map<String, Value> {
    let ok: Vec<&RequestRecord> = records.iter().filter(|r| r.ok()).collect();
    let completed = ok.len();
    let failed = records.len() - completed;
    let input: u64 = ok.iter().map(|r| r.input_tokens.unwrap_or(0) as u64).sum();
    let output: u64 = ok.iter().map(|r| r.output_tokens as u64).sum();
    let d = if duration_s > 0.0 {
        duration_s
    } else {
        f64::NAN
    };
    let goodput = slo.map(|s| {
        let good = ok
            .iter()
            .filter(|r| {
                s.ttft_ms.is_none_or(|l| r.ttft_ms.is_some_and(|t| t <= l))
                    && s.tpot_ms.is_none_or(|l| r.tpot_ms().is_none_or(|t| t <= l))
                    && s.e2el_ms.is_none_or(|l| r.e2el_ms <= l)
            })
            .count();
        good as f64 / d
    });
    let mut m = Map::new();
    m.insert("duration_s".into(), duration_s.into());
    m.insert("duration".into(), duration_s.into());
    m.insert("completed".into(), completed.into());
    m.insert("failed".into(), failed.into());
    m.insert("total_input_tokens".into(), input.into());
    m.insert("total_output_tokens".into(), output.into());
    m.insert("request_throughput".into(), (completed as f64 / d).into());
    m.insert(
        "request_goodput".into(),
        goodput.map(Value::from).unwrap_or(Value::Null),
    );
    m.insert("input_throughput".into(), (input as f64 / d).into());
    m.insert("output_throughput".into(), (output as f64 / d).into());
    m.insert(
        "total_token_throughput".into(),
        ((input + output) as f64 / d).into(),
    );
    let gpus = gpu_count.max(1) as f64;
    m.insert(
        "output_throughput_per_gpu".into(),
        (output as f64 / d / gpus).into(),
    );
    m.insert(
        "total_token_throughput_per_gpu".into(),
        ((input + output) as f64 / d / gpus).into(),
    );
    put_stats(
        &mut m,
        "ttft",
        ok.iter().filter_map(|r| r.ttft_ms).collect(),
        percentiles,
    );
    let tpots: Vec<f64> = ok.iter().filter_map(|r| r.tpot_ms()).collect();
    put_stats(&mut m, "tpot", tpots, percentiles);
    put_stats(&mut m, "itl", itl_gaps_ms, percentiles);
    put_stats(
        &mut m,
        "e2el",
        ok.iter().map(|r| r.e2el_ms).collect(),
        percentiles,
    );
    let mean_tpot = m.get("mean_tpot_ms").and_then(Value::as_f64).unwrap_or(0.0);
    m.insert(
        "interactivity_tok_s_user".into(),
        if mean_tpot > 0.0 {
            (1000.0 / mean_tpot).into()
        } else {
            Value::Null
        },
    );
    m.insert("percentiles".into(), percentiles.to_vec().into());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_matches_numpy_linear() {
        let xs = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&xs, 50.0), 2.5);
        assert!((percentile(&xs, 90.0) - 3.7).abs() < 1e-12);
        assert_eq!(percentile(&xs, 100.0), 4.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        let (m, s) = mean_std(&xs);
        assert_eq!(m, 2.5);
        assert!((s - 1.118033988749895).abs() < 1e-12);
    }
}
