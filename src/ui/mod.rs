//! Rendering: the live view (`live`, `tui`) and the end-of-run summary table (also
//! `results show`). Reads state and results, changes nothing.

pub mod charts;
pub mod html;
pub mod live;
pub mod plot;
pub mod report;
pub mod tui;

pub use tui::say;

use std::fmt::Write;

use crate::metrics::summary::{GroupFigures, LATENCIES};
use crate::results::RunResult;

/// `label` padded to the value column, then `value`.
fn row(o: &mut String, label: &str, value: impl std::fmt::Display) {
    let _ = writeln!(o, "{label:<36}{value}");
}

/// The summary a run prints at its end.
pub fn summary_table(r: &RunResult) -> String {
    let mut o = String::new();
    summary_head(&mut o, r);
    summary_latencies(&mut o, r);
    summary_turns(&mut o, r);
    summary_adapters(&mut o, r);
    summary_server(&mut o, r);
    summary_evals(&mut o, r);
    summary_client(&mut o, r);
    let _ = write!(o, "{}", "=".repeat(50));
    o
}

/// `evals`: each task's score with its standard error, and what did not go to plan.
fn summary_evals(o: &mut String, r: &RunResult) {
    if r.evals.is_empty() {
        return;
    }
    let _ = writeln!(o, "{:-^50}", " Evals ");
    for e in &r.evals {
        if let Some(why) = &e.error {
            let _ = writeln!(o, "{:<36}not graded: {why}", format!("{}:", e.name));
            continue;
        }
        let mut notes = Vec::new();
        if e.failed > 0 {
            notes.push(format!("{} failed", e.failed));
        }
        if e.interrupted {
            notes.push("cut short".to_string());
        }
        if let Some(b) = &e.beside {
            notes.push(format!("under load of {b}"));
        }
        let notes = match notes.is_empty() {
            true => String::new(),
            false => format!(" ({})", notes.join(", ")),
        };
        let name = format!("{} ({}/{}):", e.name, e.correct, e.count);
        let _ = writeln!(
            o,
            "{name:<36}{:.1}% ± {:.1}{notes}",
            e.score * 100.0,
            e.stderr * 100.0
        );
    }
}

/// `name · deployment · point: status`, and why it stopped when that is not the plan's end.
pub fn title(r: &RunResult) -> String {
    let mut t = r.name.clone();
    for part in [&r.deployment, &r.sweep_point].into_iter().flatten() {
        if !t.ends_with(part.as_str()) {
            t.push_str(&format!(" · {part}"));
        }
    }
    let status = format!("{:?}", r.status).to_lowercase();
    match r.termination_reason.as_str() {
        reason if reason == status || reason.is_empty() => format!("{t}: {status}"),
        reason => format!("{t}: {status} ({reason})"),
    }
}

/// What load ran, from the point's own configuration: `concurrency 16 · random 256→64 tokens ·
/// 600 requests`.
pub fn load_of(r: &RunResult) -> String {
    let w = &r.config["workload"];
    let num = |k: &str| w[k].as_f64().map(|x| format!("{x}"));
    let pace = match (w["pattern"].as_str(), num("concurrency"), num("rate")) {
        (Some("sequential"), _, _) => Some("sequential".to_string()),
        (Some("rate"), _, Some(rate)) => Some(format!(
            "{rate} req/s ({})",
            w["arrival"].as_str().unwrap_or("poisson")
        )),
        (_, Some(c), _) if w["sessions"].is_number() => Some(format!("{c} sessions at once")),
        (_, Some(c), _) => Some(format!("concurrency {c}")),
        _ => None,
    };
    let d = &w["dataset"];
    let data =
        d["kind"].as_str().map(
            |kind| match (d["input_len"].as_u64(), d["output_len"].as_u64()) {
                (Some(i), Some(o)) => format!("{kind} {i}→{o} tokens"),
                _ => kind.to_string(),
            },
        );
    let bound = match (
        w["requests"].as_u64(),
        w["sessions"].as_u64(),
        w["duration"].as_str(),
    ) {
        (Some(n), _, _) => Some(format!("{n} requests")),
        (None, Some(n), _) => Some(format!("{n} sessions")),
        (None, None, Some(d)) => Some(d.to_string()),
        _ => None,
    };
    let api = w["api"]
        .as_str()
        .filter(|a| *a != "chat")
        .map(|a| format!("api {a}"));
    let parts: Vec<String> = [pace, data, bound, api].into_iter().flatten().collect();
    match parts.is_empty() {
        true => "as configured".into(),
        false => parts.join(" · "),
    }
}

/// The run: status, counts, errors, duration, tokens, throughputs, cost.
fn summary_head(o: &mut String, r: &RunResult) {
    let f = |v: Option<f64>| v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "n/a".into());
    let s = &r.summary;
    let _ = writeln!(o, "============ {} ============", title(r));
    row(o, "Load:", load_of(r));
    if let Some(e) = &r.error {
        row(o, "Failed:", e);
    }
    if let Some(why) = &r.invalid {
        row(o, "INVALID:", why);
    }
    row(
        o,
        "Server:",
        r.environment.base_url.clone().unwrap_or_default(),
    );
    row(o, "Successful requests:", s.completed);
    row(o, "Failed requests:", s.failed);
    for (k, n) in &r.errors.by_kind {
        let _ = writeln!(
            o,
            "  {:<34}{n}  e.g. {}",
            format!("{k}:"),
            r.errors.samples.get(k).cloned().unwrap_or_default()
        );
    }
    row(o, "Benchmark duration (s):", f(Some(s.duration_s)));
    if let Some(st) = &s.steady_state {
        let text = match st.steady_from_s {
            Some(from) => format!(
                "from {from:.1} s ({} transient requests left out)",
                st.transient_requests
            ),
            None => "not reached before the cap".to_string(),
        };
        row(o, "Steady state:", text);
    }
    if let Some(n) = s.context_overflows {
        row(o, "Over the model's context:", format!("{n} requests"));
    }
    row(o, "Total input tokens:", s.total_input_tokens);
    row(o, "Total generated tokens:", s.total_output_tokens);
    if let Some(n) = s.total_inputs {
        row(o, "Texts pooled (embedded/scored):", n);
        row(o, "Text throughput (texts/s):", f(s.input_item_throughput));
        row(o, "Input token throughput (tok/s):", f(s.input_throughput));
    }
    row(o, "Request throughput (req/s):", f(s.request_throughput));
    if s.request_goodput.is_some() {
        row(o, "Request goodput (req/s):", f(s.request_goodput));
    }
    row(
        o,
        "Output token throughput (tok/s):",
        f(s.output_throughput),
    );
    row(
        o,
        "Total token throughput (tok/s):",
        f(s.total_token_throughput),
    );
    row(
        o,
        "Mean interactivity (tok/s/user):",
        f(s.mean_interactivity_tok_s_user),
    );
    row(
        o,
        "Median interactivity (tok/s/user):",
        f(s.median_interactivity()),
    );
    if let Some(c) = s.usd_per_million_output_tokens {
        let total = f(s.usd_per_million_total_tokens);
        row(
            o,
            "Cost ($/M output, $/M total tok):",
            format!("{c:.4} / {total}"),
        );
    }
}

/// TTFT, TPOT, ITL, E2EL (and TTFO): mean, median, percentiles; reasoning tokens.
fn summary_latencies(o: &mut String, r: &RunResult) {
    let f = |v: Option<f64>| v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "n/a".into());
    let s = &r.summary;
    let num = |k: &str| s.figure(k);
    let titles = [
        "Time to First Token",
        "Time per Output Token (excl. 1st token)",
        "Inter-token Latency (per chunk)",
        "End-to-end Latency",
    ];
    let mut sections: Vec<(&str, &str)> = titles.into_iter().zip(LATENCIES).collect();
    if s.total_inputs.is_some() {
        // A pooling API's answer is one document: only its end is a latency.
        let _ = writeln!(o, "{:-^50}", " Not streamed: no TTFT, TPOT or ITL ");
        sections.retain(|(_, key)| *key == "e2el");
    }
    if s.mean_ttfo_ms.is_some() {
        sections.push(("Time to First Output (content) Token", "ttfo"));
    }
    for (title, key) in sections {
        let _ = writeln!(o, "{:-^50}", format!(" {title} "));
        row(
            o,
            &format!("Mean {key} (ms):"),
            f(num(&format!("mean_{key}_ms"))),
        );
        row(
            o,
            &format!("Median {key} (ms):"),
            f(num(&format!("median_{key}_ms"))),
        );
        for name in s.percentile_names(key) {
            let p = name
                .split('_')
                .next()
                .unwrap_or_default()
                .trim_start_matches('p');
            row(o, &format!("P{p} {key} (ms):"), f(num(&name)));
        }
    }
    if let Some(n) = s.total_reasoning_tokens {
        row(o, "Reasoning tokens:", n.to_string());
        if let Some(k) = s.reasoning_only_requests.filter(|k| *k > 0) {
            row(o, "Only reasoning (no TTFO):", format!("{k} requests"));
        }
    }
}

/// LoRA adapters and replicas: each one's share and latencies.
fn summary_adapters(o: &mut String, r: &RunResult) {
    let s = &r.summary;
    let adapters: Vec<(String, &GroupFigures)> = s
        .by_adapter
        .iter()
        .map(|a| (a.adapter.clone(), &a.figures))
        .collect();
    summary_groups(o, "adapter", &adapters);
    let replicas: Vec<(String, &GroupFigures)> = s
        .by_replica
        .iter()
        .map(|x| (x.replica.to_string(), &x.figures))
        .collect();
    summary_groups(o, "replica", &replicas);
}

/// A group's rows (an adapter's, a replica's requests): share, TTFT p50/p99, TPOT p50.
fn summary_groups(o: &mut String, what: &str, groups: &[(String, &GroupFigures)]) {
    let f = |v: Option<f64>| v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "n/a".into());
    if groups.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "{:-^50}",
        format!(" By {what}: share, TTFT p50/p99, TPOT p50 (ms) ")
    );
    for (name, a) in groups {
        row(
            o,
            &format!("{name} ({} ok, {} failed):", a.completed, a.failed),
            format!(
                "{:.1} %, {} / {}, {}",
                a.share * 100.0,
                f(a.p50_ttft_ms),
                f(a.p99_ttft_ms),
                f(a.p50_tpot_ms)
            ),
        );
    }
}

/// Conversations: each turn, and the sessions.
fn summary_turns(o: &mut String, r: &RunResult) {
    let f = |v: Option<f64>| v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "n/a".into());
    let s = &r.summary;
    if !s.by_turn.is_empty() {
        let _ = writeln!(o, "{:-^50}", " By turn: TTFT p50 / p99 (ms), input tok ");
        for t in &s.by_turn {
            row(
                o,
                &format!("Turn {} ({} ok):", t.turn, t.completed),
                format!(
                    "{} / {}, {}{}",
                    f(t.p50_ttft_ms),
                    f(t.p99_ttft_ms),
                    t.mean_input_tokens
                        .map_or("n/a".into(), |n| format!("{n:.0}")),
                    t.ideal_prefix_cache_hit_rate
                        .map_or(String::new(), |r| format!(
                            " (ideal hit {:.0} %)",
                            r * 100.0
                        ))
                ),
            );
        }
        if let Some(x) = &s.sessions {
            row(
                o,
                "Sessions (all turns ok):",
                format!("{} ({})", x.count, x.all_turns_ok),
            );
            row(
                o,
                "Session p50 / p99 (s):",
                format!("{} / {}", f(x.p50_duration_s), f(x.p99_duration_s)),
            );
        }
    }
}

/// The server's own `/metrics` over the window.
fn summary_server(o: &mut String, r: &RunResult) {
    let f = |v: Option<f64>| v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "n/a".into());
    if let Some(m) = &r.server_metrics {
        let s = &m.summary;
        let fw = m.framework.map_or("unknown", |f| f.as_str());
        let _ = writeln!(o, "{:-^50}", format!(" server /metrics ({fw}) "));
        let f0 = |v: Option<f64>| v.map(|x| format!("{x:.0}")).unwrap_or_else(|| "n/a".into());
        let pc = |v: Option<f64>| {
            v.map(|x| format!("{:.1}%", x * 100.0))
                .unwrap_or_else(|| "n/a".into())
        };
        row(o, "Scrapes (gaps):", format!("{} ({})", s.scrapes, s.gaps));
        row(
            o,
            "Running peak / mean:",
            format!("{} / {}", f0(s.peak_running), f(s.mean_running)),
        );
        row(
            o,
            "Waiting peak / mean:",
            format!("{} / {}", f0(s.peak_waiting), f(s.mean_waiting)),
        );
        row(
            o,
            "KV cache peak / mean:",
            format!(
                "{} / {}",
                pc(s.peak_kv_cache_usage),
                pc(s.mean_kv_cache_usage)
            ),
        );
        let measured = pc(s.hit_rate());
        match r.summary.ideal_prefix_cache_hit_rate {
            Some(ideal) => row(
                o,
                "Prefix cache hit (ideal):",
                format!("{measured} ({})", pc(Some(ideal))),
            ),
            None => row(o, "Prefix cache hit rate:", measured),
        }
        row(
            o,
            "Server generation (tok/s):",
            f(s.generation_tokens_per_s),
        );
        if let Some(p) = s.preemptions {
            row(o, "Preemptions:", format!("{p:.0}"));
        }
        if s.spec_acceptance_rate.is_some() || s.spec_acceptance_length.is_some() {
            row(
                o,
                "Spec decode accepted (length):",
                format!(
                    "{} ({})",
                    pc(s.spec_acceptance_rate),
                    f(s.spec_acceptance_length)
                ),
            );
        }
        if s.tflops_per_gpu.is_some() || s.tb_per_s_per_gpu.is_some() {
            let f3 = |v: Option<f64>| v.map_or("n/a".into(), |x| format!("{x:.3}"));
            row(
                o,
                "TFLOP/s / TB/s per GPU:",
                format!("{} / {}", f3(s.tflops_per_gpu), f3(s.tb_per_s_per_gpu)),
            );
            if s.mfu.is_some() || s.mbu.is_some() {
                row(o, "MFU / MBU:", format!("{} / {}", pc(s.mfu), pc(s.mbu)));
            }
        }
    }
}

/// The client's health: connects, pacer, reads, warnings.
fn summary_client(o: &mut String, r: &RunResult) {
    let f = |v: Option<f64>| v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "n/a".into());
    let _ = writeln!(o, "{:-^50}", " Client ");
    let c = &r.client;
    row(
        o,
        "Connect p50 / max (ms):",
        format!("{} / {}", f(c.connect_ms.p50), f(c.connect_ms.max)),
    );
    if let Some(l) = &c.pacer_lag_ms {
        let f3 = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "n/a".into());
        row(
            o,
            "Pacer lag p50 / p99 / max (ms):",
            format!("{} / {} / {}", f3(l.p50), f3(l.p99), f3(l.max)),
        );
    }
    row(
        o,
        "Reads per request:",
        format!("{:.1}", c.reads_per_request),
    );
    if !c.read_stamps.is_empty() {
        row(o, "Read timestamps:", c.read_stamps.clone());
    }
    for w in &c.warnings {
        let _ = writeln!(o, "warning: {w}");
    }
}

/// `results list`: a line per file — status, counts, throughput, p99 TTFT — or why it is not
/// a result.
pub fn results_list(rows: &[(String, Option<crate::results::ResultHead>)]) -> String {
    let mut o = format!(
        "{:<48} {:<11} {:>9} {:>7} {:>10} {:>12} {:>10}\n",
        "file", "status", "completed", "failed", "req/s", "out tok/s", "p99 ttft"
    );
    for (name, head) in rows {
        let Some(r) = head else {
            o.push_str(&format!("{name:<48} (not a result file)\n"));
            continue;
        };
        let g = |k: &str| r.summary.figure(k).unwrap_or(f64::NAN);
        o.push_str(&format!(
            "{name:<48} {:<11} {:>9} {:>7} {:>10.2} {:>12.1} {:>10.1}\n",
            r.status.as_str(),
            g("completed"),
            g("failed"),
            g("request_throughput"),
            g("output_throughput"),
            g("p99_ttft_ms")
        ));
    }
    o
}

/// The table a run of several points (a sweep, a search's probes, a matrix) ends with: a row
/// per point — its load, status, throughput, TTFT/TPOT/ITL/E2EL p50 and p99, goodput, $ per
/// million output tokens, and whether it meets `judge` ([`table_slo`]).
pub fn points_table(rs: &[TableRow<'_>], judge: Option<&(crate::config::Slo, f64)>) -> String {
    let f = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |x| format!("{x:.p$}"));
    let graded = rs.iter().any(|r| !r.evals.is_empty());
    let mut heads = vec![
        "point",
        "status",
        "req/s",
        "out tok/s",
        "TTFT p50",
        "p99",
        "TPOT p50",
        "p99",
        "ITL p50",
        "p99",
        "E2EL p50",
        "p99",
        "goodput",
        "$/Mtok",
        "SLO",
    ];
    if graded {
        heads.push("evals");
    }
    let rows: Vec<Vec<String>> = rs
        .iter()
        .map(|r| {
            let s = r.summary;
            let mut row = vec![
                r.point.clone(),
                format!("{:?}", r.status).to_lowercase(),
                f(s.request_throughput, 2),
                f(s.output_throughput, 1),
            ];
            for m in ["ttft", "tpot", "itl", "e2el"] {
                row.push(f(s.figure(&format!("median_{m}_ms")), 1));
                row.push(f(s.figure(&format!("p99_{m}_ms")), 1));
            }
            row.push(f(s.request_goodput, 2));
            row.push(f(s.usd_per_million_output_tokens, 3));
            row.push(slo_verdict(r, judge).into());
            if graded {
                let evals: Vec<String> = r
                    .evals
                    .iter()
                    .map(|(n, v)| format!("{n} {:.1}%", v * 100.0))
                    .collect();
                row.push(match evals.is_empty() {
                    true => "-".into(),
                    false => evals.join(", "),
                });
            }
            row
        })
        .collect();
    let widths: Vec<usize> = (0..heads.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([heads[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = widths[i] - c.chars().count();
            match i {
                // Names and words left, figures right.
                0 | 1 | 15 => l.push_str(&format!("{c}{}  ", " ".repeat(pad))),
                _ => l.push_str(&format!("{}{c}  ", " ".repeat(pad))),
            }
        }
        l.trim_end().to_string()
    };
    let mut o = line(heads.clone());
    for r in &rows {
        o.push('\n');
        o.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    if let Some(legend) = judge.and_then(slo_legend) {
        o.push_str(&format!("\n{legend}"));
    }
    o
}

/// One point of [`points_table`], from a result (a run's end) or its head (`results show` of a
/// sweep index, which never reads the records).
pub struct TableRow<'a> {
    /// `deployment point`, else the run's name.
    pub point: String,
    pub status: crate::results::Status,
    pub summary: &'a crate::metrics::summary::Summary,
    pub termination_reason: &'a str,
    /// Graded tasks on this point's server: (task, score 0–1).
    pub evals: Vec<(String, f64)>,
}

impl<'a> TableRow<'a> {
    fn named(name: &str, deployment: &Option<String>, point: &Option<String>) -> String {
        let parts: Vec<&str> = [deployment, point]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        match parts.is_empty() {
            true => name.to_string(),
            false => parts.join(" "),
        }
    }

    pub fn of(r: &'a RunResult) -> Self {
        Self {
            point: Self::named(&r.name, &r.deployment, &r.sweep_point),
            status: r.status,
            summary: &r.summary,
            termination_reason: &r.termination_reason,
            evals: r
                .evals
                .iter()
                .filter(|e| e.graded())
                .map(|e| (e.name.clone(), e.score))
                .collect(),
        }
    }

    pub fn of_head(r: &'a crate::results::ResultHead) -> Self {
        Self {
            point: Self::named(&r.name, &r.deployment, &r.sweep_point),
            status: r.status,
            summary: &r.summary,
            termination_reason: &r.termination_reason,
            evals: r.evals.iter().map(|e| (e.name.clone(), e.score)).collect(),
        }
    }
}

/// The SLO the points of a run are judged against in its table, and at which percentile: a
/// capacity search's own (`workload.search.slo`, else `metrics.slo`, at its `percentile`),
/// else `metrics.slo` on the medians (the rule `report` uses); `None` without one, or with SLO
/// tiers (each tier's answer is printed on its own).
pub fn table_slo(e: &crate::config::Experiment) -> Option<(crate::config::Slo, f64)> {
    match &e.workload.search {
        Some(s) if !s.tiers.is_empty() => None,
        Some(s) => Some((
            s.slo.clone().or_else(|| e.metrics.slo.clone())?,
            s.percentile,
        )),
        None => Some((e.metrics.slo.clone()?, 50.0)),
    }
}

/// `met` / `missed` against [`table_slo`] (the capacity search's rule,
/// `workload::search::margin`): a point that failed, measured nothing or saturated misses.
fn slo_verdict(r: &TableRow<'_>, judge: Option<&(crate::config::Slo, f64)>) -> &'static str {
    use crate::metrics::collector::StopKind;
    let Some((slo, percentile)) = judge else {
        return "-";
    };
    let judged = r.status == crate::results::Status::Completed
        && r.summary.completed > 0
        && StopKind::of_written(r.termination_reason) != Some(StopKind::Saturated);
    match judged && crate::workload::search::margin(r.summary, slo, *percentile) <= 0.0 {
        true => "met",
        false => "missed",
    }
}

/// The line under the table that says what "SLO" meant: `SLO: p99 TTFT ≤ 300 ms, TPOT ≤ 30 ms`.
pub fn slo_legend((slo, percentile): &(crate::config::Slo, f64)) -> Option<String> {
    let p = match *percentile {
        50.0 => "median".to_string(),
        p => format!("p{p}"),
    };
    let limits: Vec<String> = [
        ("TTFT", slo.ttft_ms),
        ("TPOT", slo.tpot_ms),
        ("E2EL", slo.e2el_ms),
    ]
    .into_iter()
    .filter_map(|(n, l)| Some(format!("{n} ≤ {} ms", l?)))
    .collect();
    (!limits.is_empty()).then(|| format!("SLO: {p} {}", limits.join(", ")))
}
