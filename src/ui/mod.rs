//! Rendering: the end-of-run summary table (also `results show`). Reads results, changes nothing.

use std::fmt::Write;

use serde_json::Value;

use crate::results::RunResult;

fn num(r: &RunResult, k: &str) -> Option<f64> {
    r.summary.get(k).and_then(Value::as_f64)
}

/// The summary a run prints at its end.
pub fn summary_table(r: &RunResult) -> String {
    let mut o = String::new();
    let f = |v: Option<f64>| v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "n/a".into());
    let _ = writeln!(
        o,
        "============ {} ({:?}, {}) ============",
        r.name, r.status, r.termination_reason
    );
    let _ = writeln!(
        o,
        "{:<34}{}",
        "Server:",
        r.environment.base_url.clone().unwrap_or_default()
    );
    let _ = writeln!(
        o,
        "{:<34}{}",
        "Successful requests:",
        r.summary.get("completed").cloned().unwrap_or_default()
    );
    let _ = writeln!(
        o,
        "{:<34}{}",
        "Failed requests:",
        r.summary.get("failed").cloned().unwrap_or_default()
    );
    for (k, n) in &r.errors.by_kind {
        let _ = writeln!(
            o,
            "  {:<32}{n}  e.g. {}",
            format!("{k}:"),
            r.errors.samples.get(k).cloned().unwrap_or_default()
        );
    }
    let _ = writeln!(
        o,
        "{:<34}{}",
        "Benchmark duration (s):",
        f(num(r, "duration_s"))
    );
    let _ = writeln!(
        o,
        "{:<34}{}",
        "Total input tokens:",
        r.summary
            .get("total_input_tokens")
            .cloned()
            .unwrap_or_default()
    );
    let _ = writeln!(
        o,
        "{:<34}{}",
        "Total generated tokens:",
        r.summary
            .get("total_output_tokens")
            .cloned()
            .unwrap_or_default()
    );
    let _ = writeln!(
        o,
        "{:<34}{}",
        "Request throughput (req/s):",
        f(num(r, "request_throughput"))
    );
    if let Some(g) = num(r, "request_goodput") {
        let _ = writeln!(o, "{:<34}{g:.2}", "Request goodput (req/s):");
    }
    let _ = writeln!(
        o,
        "{:<34}{}",
        "Output token throughput (tok/s):",
        f(num(r, "output_throughput"))
    );
    let _ = writeln!(
        o,
        "{:<34}{}",
        "Total token throughput (tok/s):",
        f(num(r, "total_token_throughput"))
    );
    let _ = writeln!(
        o,
        "{:<34}{}",
        "Interactivity (tok/s/user):",
        f(num(r, "interactivity_tok_s_user"))
    );
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
        let _ = writeln!(
            o,
            "{:<34}{}",
            format!("Mean {key} (ms):"),
            f(num(r, &format!("mean_{key}_ms")))
        );
        let _ = writeln!(
            o,
            "{:<34}{}",
            format!("Median {key} (ms):"),
            f(num(r, &format!("median_{key}_ms")))
        );
        for p in &pcts {
            let name = if p.fract() == 0.0 {
                format!("p{}", *p as u64)
            } else {
                format!("p{p}")
            };
            let _ = writeln!(
                o,
                "{:<34}{}",
                format!("P{} {key} (ms):", &name[1..]),
                f(num(r, &format!("{name}_{key}_ms")))
            );
        }
    }
    let _ = writeln!(o, "{:-^50}", " Client ");
    let c = &r.client;
    let _ = writeln!(
        o,
        "{:<34}{:.2} / {:.2}",
        "Connect p50 / max (ms):", c.connect_ms.p50, c.connect_ms.max
    );
    if let Some(l) = &c.pacer_lag_ms {
        let _ = writeln!(
            o,
            "{:<34}{:.3} / {:.3} / {:.3}",
            "Pacer lag p50 / p99 / max (ms):", l.p50, l.p99, l.max
        );
    }
    let _ = writeln!(o, "{:<34}{:.1}", "Reads per request:", c.reads_per_request);
    for w in &c.warnings {
        let _ = writeln!(o, "warning: {w}");
    }
    let _ = write!(o, "{}", "=".repeat(50));
    o
}
