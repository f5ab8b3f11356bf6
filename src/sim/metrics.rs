//! The simulator's own Prometheus `/metrics`, with vLLM (V1 engine, current names) or SGLang
//! names and buckets (see `reference/server-metrics.md`). It reports the engine's true state.

use std::fmt::Write;

use crate::config::Personality;

/// Cumulative histogram with fixed upper bounds.
#[derive(Clone, Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }
    pub fn observe(&mut self, v: f64) {
        self.sum += v;
        self.count += 1;
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.counts[i] += 1;
        }
    }
    pub fn count(&self) -> u64 {
        self.count
    }
    pub fn sum(&self) -> f64 {
        self.sum
    }
}

const VLLM_TTFT: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
const VLLM_ITL: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];
const VLLM_LATENCY: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];
const SGL_TTFT: &[f64] = &[
    0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 20.0, 40.0, 60.0, 80.0, 100.0, 200.0,
    400.0,
];
const SGL_ITL: &[f64] = &[
    0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04, 0.06, 0.08, 0.1, 0.2,
    0.4, 0.6, 0.8, 1.0, 2.0, 4.0, 6.0, 8.0,
];
const SGL_E2E: &[f64] = &[
    0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 20.0, 40.0, 60.0, 80.0, 100.0, 200.0,
    400.0, 800.0, 1200.0, 1800.0, 2400.0,
];

/// Everything `/metrics` reports.
#[derive(Clone, Debug)]
pub struct SimMetrics {
    pub running: u64,
    pub waiting: u64,
    /// KV-cache tokens in use / capacity (0–1).
    pub kv_usage: f64,
    pub kv_used_tokens: u64,
    pub prompt_tokens: u64,
    pub generation_tokens: u64,
    pub prefix_queries: u64,
    pub prefix_hits: u64,
    pub preemptions: u64,
    /// Speculative decoding (when on): draft steps, draft tokens, accepted tokens.
    pub spec: bool,
    pub spec_drafts: u64,
    pub spec_draft_tokens: u64,
    pub spec_accepted: u64,
    pub finished_stop: u64,
    pub finished_length: u64,
    pub finished_abort: u64,
    pub requests_total: u64,
    pub ttft: Histogram,
    pub itl: Histogram,
    pub e2e: Histogram,
    pub queue: Histogram,
}

impl SimMetrics {
    pub fn new(personality: Personality) -> Self {
        let (ttft, itl, e2e) = match personality {
            // TensorRT-LLM's collector took vLLM's buckets ("Adapted from vLLM").
            Personality::Vllm | Personality::Trtllm => (VLLM_TTFT, VLLM_ITL, VLLM_LATENCY),
            Personality::Sglang => (SGL_TTFT, SGL_ITL, SGL_E2E),
        };
        Self {
            running: 0,
            waiting: 0,
            kv_usage: 0.0,
            kv_used_tokens: 0,
            prompt_tokens: 0,
            generation_tokens: 0,
            prefix_queries: 0,
            prefix_hits: 0,
            preemptions: 0,
            spec: false,
            spec_drafts: 0,
            spec_draft_tokens: 0,
            spec_accepted: 0,
            finished_stop: 0,
            finished_length: 0,
            finished_abort: 0,
            requests_total: 0,
            ttft: Histogram::new(ttft),
            itl: Histogram::new(itl),
            e2e: Histogram::new(e2e),
            queue: Histogram::new(e2e),
        }
    }

    pub fn render(&self, personality: Personality, model: &str) -> String {
        match personality {
            Personality::Vllm => self.render_vllm(model),
            Personality::Sglang => self.render_sglang(model),
            Personality::Trtllm => self.render_trtllm(model, 16),
        }
    }

    /// TensorRT-LLM's `/prometheus/metrics` (`tensorrt_llm/metrics/collector.py`, 1.3): the
    /// request counter by finish reason, four histograms (TTFT, time per output token, e2e,
    /// queue), and its KV-cache gauges and block counters. No running/waiting gauges and no
    /// token counters: those figures stay absent.
    fn render_trtllm(&self, model: &str, block: u64) -> String {
        let labels = format!("engine_type=\"pytorch\",model_name=\"{}\"", escape(model));
        let mut o = String::with_capacity(8 * 1024);
        let _ = writeln!(o, "# HELP trtllm_request_success_total Count of successfully processed requests.\n# TYPE trtllm_request_success_total counter");
        for (reason, v) in [
            ("stop", self.finished_stop),
            ("length", self.finished_length),
        ] {
            let _ = writeln!(
                o,
                "trtllm_request_success_total{{{labels},finished_reason=\"{reason}\"}} {}",
                fmt_f(v as f64)
            );
        }
        for (name, help, h) in [
            (
                "trtllm_e2e_request_latency_seconds",
                "Histogram of end to end request latency in seconds.",
                &self.e2e,
            ),
            (
                "trtllm_time_to_first_token_seconds",
                "Histogram of time to first token in seconds.",
                &self.ttft,
            ),
            (
                "trtllm_time_per_output_token_seconds",
                "Histogram of time per output token in seconds.",
                &self.itl,
            ),
            (
                "trtllm_request_queue_time_seconds",
                "Histogram of time spent in WAITING phase for request.",
                &self.queue,
            ),
        ] {
            hist(&mut o, name, help, h, &labels);
        }
        let hit = match self.prefix_queries {
            0 => 0.0,
            q => self.prefix_hits as f64 / q as f64,
        };
        let blocks = |tokens: u64| (tokens / block.max(1)) as f64;
        for (name, help, kind, v) in [
            (
                "trtllm_kv_cache_hit_rate",
                "KV cache hit rate.",
                "gauge",
                hit,
            ),
            (
                "trtllm_kv_cache_utilization",
                "KV cache utilization.",
                "gauge",
                self.kv_usage,
            ),
            (
                "trtllm_kv_cache_reused_blocks_total",
                "KV cache reused blocks.",
                "counter",
                blocks(self.prefix_hits),
            ),
            (
                "trtllm_kv_cache_missed_blocks_total",
                "KV cache missed blocks.",
                "counter",
                blocks(self.prefix_queries - self.prefix_hits.min(self.prefix_queries)),
            ),
        ] {
            single(&mut o, name, help, kind, &labels, v);
        }
        o
    }

    /// vLLM's single-sample gauges and counters: name, help, type, value.
    fn vllm_plain(&self) -> Vec<(&'static str, &'static str, &'static str, f64)> {
        let (gauge, counter) = ("gauge", "counter");
        let mut plain = vec![
            (
                "vllm:num_requests_running",
                "Number of requests in model execution batches.",
                gauge,
                self.running as f64,
            ),
            (
                "vllm:num_requests_waiting",
                "Number of requests waiting to be processed.",
                gauge,
                self.waiting as f64,
            ),
            (
                "vllm:kv_cache_usage_perc",
                "KV-cache usage. 1 means 100 percent usage.",
                gauge,
                self.kv_usage,
            ),
            (
                "vllm:prefix_cache_queries_total",
                "Prefix cache queries, in terms of number of queried tokens.",
                counter,
                self.prefix_queries as f64,
            ),
            (
                "vllm:prefix_cache_hits_total",
                "Prefix cache hits, in terms of number of cached tokens.",
                counter,
                self.prefix_hits as f64,
            ),
            (
                "vllm:num_preemptions_total",
                "Cumulative number of preemption from the engine.",
                counter,
                self.preemptions as f64,
            ),
            (
                "vllm:prompt_tokens_total",
                "Number of prefill tokens processed.",
                counter,
                self.prompt_tokens as f64,
            ),
            (
                "vllm:generation_tokens_total",
                "Number of generation tokens processed.",
                counter,
                self.generation_tokens as f64,
            ),
        ];
        // vLLM exports its speculative-decoding counters only when it speculates.
        if self.spec {
            plain.extend([
                (
                    "vllm:spec_decode_num_drafts_total",
                    "Number of spec decoding drafts.",
                    counter,
                    self.spec_drafts as f64,
                ),
                (
                    "vllm:spec_decode_num_draft_tokens_total",
                    "Number of draft tokens.",
                    counter,
                    self.spec_draft_tokens as f64,
                ),
                (
                    "vllm:spec_decode_num_accepted_tokens_total",
                    "Number of accepted tokens.",
                    counter,
                    self.spec_accepted as f64,
                ),
            ]);
        }
        plain
    }

    fn render_vllm(&self, model: &str) -> String {
        let labels = format!("engine=\"0\",model_name=\"{}\"", escape(model));
        let mut o = String::with_capacity(16 * 1024);
        let plain = self.vllm_plain();
        for (name, help, kind, v) in plain {
            single(&mut o, name, help, kind, &labels, v);
        }
        let _ = writeln!(o, "# HELP vllm:request_success_total Count of successfully processed requests.\n# TYPE vllm:request_success_total counter");
        for (reason, v) in [
            ("stop", self.finished_stop),
            ("length", self.finished_length),
            ("abort", self.finished_abort),
        ] {
            let _ = writeln!(o, "vllm:request_success_total{{engine=\"0\",finished_reason=\"{reason}\",model_name=\"{}\"}} {}", escape(model), fmt_f(v as f64));
        }
        hist(
            &mut o,
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            &self.ttft,
            &labels,
        );
        hist(
            &mut o,
            "vllm:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            &self.itl,
            &labels,
        );
        hist(
            &mut o,
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            &self.e2e,
            &labels,
        );
        hist(
            &mut o,
            "vllm:request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            &self.queue,
            &labels,
        );
        o
    }

    /// SGLang's names: the scheduler's gauges (labelled by engine, TP and PP rank), then the
    /// tokenizer manager's counters and histograms (labelled by model).
    fn render_sglang(&self, model: &str) -> String {
        let sched = format!(
            "engine_type=\"unified\",model_name=\"{}\",pp_rank=\"0\",tp_rank=\"0\"",
            escape(model)
        );
        let tok = format!("model_name=\"{}\"", escape(model));
        let mut o = String::with_capacity(16 * 1024);
        self.sglang_gauges(&mut o, &sched);
        let counters = [
            (
                "prompt_tokens_total",
                "Number of prefill tokens processed.",
                self.prompt_tokens,
            ),
            (
                "generation_tokens_total",
                "Number of generation tokens processed.",
                self.generation_tokens,
            ),
            (
                "cached_tokens_total",
                "Number of cached prompt tokens.",
                self.prefix_hits,
            ),
            (
                "num_requests_total",
                "Number of requests processed.",
                self.requests_total,
            ),
            (
                "num_aborted_requests_total",
                "Number of requests aborted.",
                self.finished_abort,
            ),
        ];
        for (name, help, v) in counters {
            single(
                &mut o,
                &format!("sglang:{name}"),
                help,
                "counter",
                &tok,
                v as f64,
            );
        }
        let histograms = [
            (
                "time_to_first_token_seconds",
                "Histogram of time to first token in seconds.",
                &self.ttft,
            ),
            (
                "inter_token_latency_seconds",
                "Histogram of inter-token latency in seconds.",
                &self.itl,
            ),
            (
                "e2e_request_latency_seconds",
                "Histogram of End-to-end request latency in seconds",
                &self.e2e,
            ),
            (
                "queue_time_seconds",
                "Histogram of queueing time in seconds.",
                &self.queue,
            ),
        ];
        for (name, help, h) in histograms {
            hist(&mut o, &format!("sglang:{name}"), help, h, &tok);
        }
        o
    }

    /// SGLang's scheduler gauges, with the scheduler's `labels`.
    fn sglang_gauges(&self, o: &mut String, labels: &str) {
        let hit_rate = if self.prefix_queries > 0 {
            self.prefix_hits as f64 / self.prefix_queries as f64
        } else {
            0.0
        };
        let gauges = [
            (
                "num_running_reqs",
                "The number of running requests.",
                self.running as f64,
            ),
            (
                "num_queue_reqs",
                "The number of requests in the waiting queue.",
                self.waiting as f64,
            ),
            (
                "num_used_tokens",
                "The number of used tokens.",
                self.kv_used_tokens as f64,
            ),
            ("token_usage", "The token usage.", self.kv_usage),
            ("cache_hit_rate", "The prefix cache hit rate.", hit_rate),
            (
                "num_retracted_reqs",
                "The number of retracted requests.",
                self.preemptions as f64,
            ),
        ];
        for (name, help, v) in gauges {
            single(o, &format!("sglang:{name}"), help, "gauge", labels, v);
        }
        // SGLang reports speculative decoding as gauges (here: since the start).
        if self.spec && self.spec_draft_tokens > 0 {
            let rate = self.spec_accepted as f64 / self.spec_draft_tokens as f64;
            let length = 1.0 + self.spec_accepted as f64 / self.spec_drafts.max(1) as f64;
            single(
                o,
                "sglang:spec_accept_rate",
                "The average acceptance rate of speculative decoding.",
                "gauge",
                labels,
                rate,
            );
            single(
                o,
                "sglang:spec_accept_length",
                "The average acceptance length of speculative decoding.",
                "gauge",
                labels,
                length,
            );
        }
    }
}

/// One metric with a single sample: HELP, TYPE and the value.
fn single(o: &mut String, name: &str, help: &str, kind: &str, labels: &str, v: f64) {
    let _ = writeln!(
        o,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{{labels}}} {}",
        fmt_f(v)
    );
}

fn hist(o: &mut String, name: &str, help: &str, h: &Histogram, labels: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} histogram");
    let _ = writeln!(o, "{name}_sum{{{labels}}} {}", fmt_f(h.sum));
    let mut cum = 0;
    for (b, c) in h.bounds.iter().zip(&h.counts) {
        cum += c;
        let _ = writeln!(
            o,
            "{name}_bucket{{{},le=\"{}\"}} {}",
            labels,
            fmt_f(*b),
            fmt_f(cum as f64)
        );
    }
    let _ = writeln!(
        o,
        "{name}_bucket{{{labels},le=\"+Inf\"}} {}",
        fmt_f(h.count as f64)
    );
    let _ = writeln!(o, "{name}_count{{{labels}}} {}", fmt_f(h.count as f64));
}

/// Python's float repr style (`3.0`, `0.4173`), as prometheus_client writes values.
fn fmt_f(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
