//! Rendering: the live view (`live`, `tui`) and the end-of-run summary table (also
//! `results show`). Reads state and results, changes nothing.

pub mod live;
pub mod plot;
pub mod report;
pub mod tui;

pub use tui::say;

use std::fmt::Write;

use serde_json::Value;

use crate::metrics::summary::pname;
use crate::results::RunResult;

fn num(r: &RunResult, k: &str) -> Option<f64> {
    r.summary.get(k).and_then(Value::as_f64)
}

/// `label` padded to the value column, then `value`.
fn row(o: &mut String, label: &str, value: impl std::fmt::Display) {
    let _ = writeln!(o, "{label:<34}{value}");
}

/// The summary a run prints at its end.
pub fn summary_table(r: &RunResult) -> String {
    let mut o = String::new();
    let f = |v: Option<f64>| v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "n/a".into());
    let raw = |k: &str| r.summary.get(k).cloned().unwrap_or_default();
    let _ = writeln!(
        o,
        "============ {} ({:?}, {}) ============",
        r.name, r.status, r.termination_reason
    );
    row(
        &mut o,
        "Server:",
        r.environment.base_url.clone().unwrap_or_default(),
    );
    row(&mut o, "Successful requests:", raw("completed"));
    row(&mut o, "Failed requests:", raw("failed"));
    for (k, n) in &r.errors.by_kind {
        let _ = writeln!(
            o,
            "  {:<32}{n}  e.g. {}",
            format!("{k}:"),
            r.errors.samples.get(k).cloned().unwrap_or_default()
        );
    }
    row(&mut o, "Benchmark duration (s):", f(num(r, "duration_s")));
    row(&mut o, "Total input tokens:", raw("total_input_tokens"));
    row(
        &mut o,
        "Total generated tokens:",
        raw("total_output_tokens"),
    );
    row(
        &mut o,
        "Request throughput (req/s):",
        f(num(r, "request_throughput")),
    );
    if let Some(g) = num(r, "request_goodput") {
        row(&mut o, "Request goodput (req/s):", format!("{g:.2}"));
    }
    for (label, key) in [
        ("Output token throughput (tok/s):", "output_throughput"),
        ("Total token throughput (tok/s):", "total_token_throughput"),
        ("Interactivity (tok/s/user):", "interactivity_tok_s_user"),
    ] {
        row(&mut o, label, f(num(r, key)));
    }
    let pcts: Vec<f64> = r
        .summary
        .get("percentiles")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    for (title, key) in [
        ("Time to First Token", "ttft"),
        ("Time per Output Token (excl. 1st token)", "tpot"),
        ("Inter-token Latency (per chunk)", "itl"),
        ("End-to-end Latency", "e2el"),
    ] {
        let _ = writeln!(o, "{:-^50}", format!(" {title} "));
        row(
            &mut o,
            &format!("Mean {key} (ms):"),
            f(num(r, &format!("mean_{key}_ms"))),
        );
        row(
            &mut o,
            &format!("Median {key} (ms):"),
            f(num(r, &format!("median_{key}_ms"))),
        );
        for p in &pcts {
            let name = pname(*p);
            row(
                &mut o,
                &format!("P{} {key} (ms):", &name[1..]),
                f(num(r, &format!("{name}_{key}_ms"))),
            );
        }
    }
    if let Some(m) = &r.server_metrics {
        let s = &m.summary;
        let _ = writeln!(o, "{:-^50}", format!(" server /metrics ({}) ", m.framework));
        let f0 = |v: Option<f64>| v.map(|x| format!("{x:.0}")).unwrap_or_else(|| "n/a".into());
        let pc = |v: Option<f64>| {
            v.map(|x| format!("{:.1}%", x * 100.0))
                .unwrap_or_else(|| "n/a".into())
        };
        row(
            &mut o,
            "Scrapes (gaps):",
            format!("{} ({})", s.scrapes, s.gaps),
        );
        row(
            &mut o,
            "Running peak / mean:",
            format!("{} / {}", f0(s.peak_running), f(s.mean_running)),
        );
        row(
            &mut o,
            "Waiting peak / mean:",
            format!("{} / {}", f0(s.peak_waiting), f(s.mean_waiting)),
        );
        row(
            &mut o,
            "KV cache peak / mean:",
            format!(
                "{} / {}",
                pc(s.peak_kv_cache_usage),
                pc(s.mean_kv_cache_usage)
            ),
        );
        row(
            &mut o,
            "Prefix cache hit rate:",
            pc(s.mean_prefix_cache_hit_rate),
        );
        row(
            &mut o,
            "Server generation (tok/s):",
            f(s.generation_tokens_per_s),
        );
        if let Some(p) = s.preemptions {
            row(&mut o, "Preemptions:", format!("{p:.0}"));
        }
    }
    let _ = writeln!(o, "{:-^50}", " Client ");
    let c = &r.client;
    row(
        &mut o,
        "Connect p50 / max (ms):",
        format!("{:.2} / {:.2}", c.connect_ms.p50, c.connect_ms.max),
    );
    if let Some(l) = &c.pacer_lag_ms {
        row(
            &mut o,
            "Pacer lag p50 / p99 / max (ms):",
            format!("{:.3} / {:.3} / {:.3}", l.p50, l.p99, l.max),
        );
    }
    row(
        &mut o,
        "Reads per request:",
        format!("{:.1}", c.reads_per_request),
    );
    if !c.read_stamps.is_empty() {
        row(&mut o, "Read timestamps:", c.read_stamps.clone());
    }
    for w in &c.warnings {
        let _ = writeln!(o, "warning: {w}");
    }
    let _ = write!(o, "{}", "=".repeat(50));
    o
}
