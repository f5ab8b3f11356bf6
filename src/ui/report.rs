//! `report`: a markdown summary of sweeps or result files — one table per ISL/OSL shape, every
//! point of every series, and the best throughput per GPU meeting the SLO — ready to paste
//! into an issue or a pull request.

use std::fmt::Write;

use crate::metrics::summary::GroupFigures;
use crate::results::sweeps::{self, PointData, Series};

fn ms(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into())
}

fn slo_text(ttft: Option<f64>, tpot: Option<f64>) -> String {
    let mut parts = Vec::new();
    if let Some(t) = ttft {
        parts.push(format!("TTFT p50 ≤ {t} ms"));
    }
    if let Some(t) = tpot {
        parts.push(format!("TPOT p50 ≤ {t} ms"));
    }
    parts.join(", ")
}

/// Conversations: TTFT p50 (and mean input tokens) by turn index, per point; reasoning: TTFO.
/// The engine's own estimate of the work done per GPU (vLLM `--enable-mfu-metrics`), against
/// the GPU's peaks where it is known.
fn hardware_table(o: &mut String, pts: &[(&str, &PointData)]) {
    let rows: Vec<_> = pts
        .iter()
        .filter_map(|(s, p)| Some((s, p, p.hardware?)))
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(o, "\n### Hardware utilisation (the engine's estimate)\n");
    let _ = writeln!(o, "| series | point | TFLOP/s/GPU | MFU | TB/s/GPU | MBU |");
    let _ = writeln!(o, "|---|---|---:|---:|---:|---:|");
    let f = |v: Option<f64>| v.map_or("-".into(), |x| format!("{x:.3}"));
    let pc = |v: Option<f64>| v.map_or("-".into(), |x| format!("{:.1} %", x * 100.0));
    for (s, p, h) in rows {
        let _ = writeln!(
            o,
            "| {s} | {} | {} | {} | {} | {} |",
            p.label,
            f(h.tflops),
            pc(h.mfu),
            f(h.tb_per_s),
            pc(h.mbu)
        );
    }
}

/// Speculative decoding as the server reported it: how many draft tokens it accepted, and how
/// many tokens one target step yielded.
fn spec_decode_table(o: &mut String, pts: &[(&str, &PointData)]) {
    let rows: Vec<_> = pts
        .iter()
        .filter_map(|(s, p)| Some((s, p, p.spec_decode?)))
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(o, "\n### Speculative decoding (the server's counters)\n");
    let _ = writeln!(
        o,
        "| series | point | draft tokens accepted | tokens per step | output tok/s |"
    );
    let _ = writeln!(o, "|---|---|---:|---:|---:|");
    for (s, p, (rate, length)) in rows {
        let _ = writeln!(
            o,
            "| {s} | {} | {:.1} % | {} | {:.0} |",
            p.label,
            rate * 100.0,
            length.map_or("-".into(), |l| format!("{l:.2}")),
            p.output_throughput
        );
    }
}

/// Graded tasks beside the speed of the point they ran after (or beside).
fn evals_table(o: &mut String, pts: &[(&str, &PointData)]) {
    let rows: Vec<_> = pts
        .iter()
        .flat_map(|(s, p)| p.evals.iter().map(move |e| (s, p, e)))
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(o, "\n### Accuracy (evals)\n");
    let _ = writeln!(
        o,
        "| graded on | task | score | ± stderr | items | output tok/s |"
    );
    let _ = writeln!(o, "|---|---|---:|---:|---:|---:|");
    for (s, p, e) in rows {
        let _ = writeln!(
            o,
            "| {} | {} | {:.1} % | {:.1} | {} | {:.0} |",
            who(s, p),
            e.name,
            e.score * 100.0,
            e.stderr * 100.0,
            e.count,
            p.output_throughput
        );
    }
}

/// The server's prefix-cache hit rate beside the ideal one the workload allows.
fn prefix_cache_table(o: &mut String, pts: &[(&str, &PointData)]) {
    let rows: Vec<_> = pts
        .iter()
        .filter_map(|(s, p)| Some((s, p, p.prefix_cache?)))
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "\n### Prefix cache: measured against the workload's ideal\n"
    );
    let _ = writeln!(
        o,
        "| series | point | measured | ideal | measured / ideal |"
    );
    let _ = writeln!(o, "|---|---|---:|---:|---:|");
    let pc = |v: f64| format!("{:.1} %", v * 100.0);
    for (s, p, (ideal, measured)) in rows {
        let _ = writeln!(
            o,
            "| {s} | {} | {} | {} | {} |",
            p.label,
            measured.map_or("-".into(), pc),
            pc(ideal),
            match measured.filter(|_| ideal > 0.0) {
                Some(m) => format!("{:.2}", m / ideal),
                None => "-".into(),
            }
        );
    }
    let _ = writeln!(
        o,
        "\nWell under 1: the cache is too small for the working set (evictions), or a router sends one session's requests to different replicas."
    );
}

fn turns_table(o: &mut String, pts: &[(&str, &PointData)]) {
    let turns = pts.iter().map(|(_, p)| p.by_turn.len()).max().unwrap_or(0);
    if turns > 0 {
        let head: String = (0..turns).map(|t| format!(" turn {t} |")).collect();
        let _ = writeln!(
            o,
            "\nTTFT p50 ms by turn (mean input tokens), conversations:\n"
        );
        let _ = writeln!(o, "| series | point |{head}");
        let _ = writeln!(o, "|---|---|{}", "---:|".repeat(turns));
        for (name, p) in pts.iter().filter(|(_, p)| !p.by_turn.is_empty()) {
            let cells: String = (0..turns)
                .map(|t| match p.by_turn.iter().find(|x| x.turn as usize == t) {
                    Some(x) => format!(
                        " {} ({}) |",
                        ms(x.p50_ttft_ms),
                        x.mean_input_tokens
                            .map_or("-".into(), |n| format!("{n:.0}"))
                    ),
                    None => " - |".into(),
                })
                .collect();
            let _ = writeln!(o, "| {name} | {} |{cells}", p.label);
        }
    }
    for (name, p) in pts.iter().filter(|(_, p)| p.ttfo_p50.is_some()) {
        let _ = writeln!(
            o,
            "\nReasoning: {name} `{}` — first content token (TTFO) p50 {} ms after a first token (TTFT) p50 {} ms.",
            p.label,
            ms(p.ttfo_p50),
            ms(p.ttft_p50)
        );
    }
}

/// LoRA adapter mixes and replicas: each adapter's (each server's) share and figures, per
/// point.
fn adapters_table(o: &mut String, pts: &[(&str, &PointData)]) {
    groups_table(o, pts, ("By LoRA adapter", "adapter"), |p| {
        p.by_adapter
            .iter()
            .map(|a| (a.adapter.clone(), &a.figures))
            .collect()
    });
    groups_table(o, pts, ("By replica", "replica"), |p| {
        p.by_replica
            .iter()
            .map(|r| (format!("{} `{}`", r.replica, r.base_url), &r.figures))
            .collect()
    });
}

/// A group's name and figures (an adapter's, a replica's requests).
type Group<'a> = (String, &'a GroupFigures);

/// One row per group of each point's requests.
fn groups_table<'a>(
    o: &mut String,
    pts: &[(&str, &'a PointData)],
    (title, column): (&str, &str),
    groups: impl Fn(&'a PointData) -> Vec<Group<'a>>,
) {
    let with: Vec<(&str, &PointData, Vec<Group<'_>>)> = pts
        .iter()
        .map(|(name, p)| (*name, *p, groups(p)))
        .filter(|(_, _, g)| !g.is_empty())
        .collect();
    if with.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "\n{title}:\n\n| series | point | {column} | share | req/s | output tok/s | TTFT p50 | TTFT p99 | TPOT p50 | E2EL p50 | failed |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (name, p, rows) in with {
        for (group, a) in rows {
            let _ = writeln!(
                o,
                "| {name} | {} | {group} | {:.1} % | {} | {} | {} | {} | {} | {} | {} |",
                p.label,
                a.share * 100.0,
                a.request_throughput
                    .map_or("-".into(), |x| format!("{x:.2}")),
                a.output_throughput
                    .map_or("-".into(), |x| format!("{x:.0}")),
                ms(a.p50_ttft_ms),
                ms(a.p99_ttft_ms),
                ms(a.p50_tpot_ms),
                ms(a.p50_e2el_ms),
                a.failed
            );
        }
    }
}

/// A point as the report names it: `` `h100-vllm` at `c16` `` in a matrix, else
/// `` series `c16` ``.
fn who(series: &str, p: &PointData) -> String {
    match &p.deployment {
        Some(d) => format!("`{d}` at `{}`", p.label),
        None => format!("{series} `{}`", p.label),
    }
}

/// A deployment matrix: each deployment's best point within the SLO (most output tok/s per
/// GPU) with its cost per token, best first — the answer to "which deployment".
fn deployments_table(
    o: &mut String,
    pts: &[(&str, &PointData)],
    ttft: Option<f64>,
    tpot: Option<f64>,
) {
    let mut names: Vec<&str> = Vec::new();
    for (_, p) in pts {
        if let Some(d) = p.deployment.as_deref().filter(|d| !names.contains(d)) {
            names.push(d);
        }
    }
    if names.len() < 2 {
        return;
    }
    let mut rows: Vec<(&str, Option<&PointData>)> = names
        .iter()
        .map(|d| {
            let own: Vec<&PointData> = pts
                .iter()
                .map(|(_, p)| *p)
                .filter(|p| p.deployment.as_deref() == Some(*d))
                .collect();
            (*d, sweeps::best_within(&own, ttft, tpot))
        })
        .collect();
    rows.sort_by(|a, b| {
        let t = |r: &(&str, Option<&PointData>)| r.1.map_or(-1.0, |p| p.output_throughput_per_gpu);
        t(b).total_cmp(&t(a))
    });
    let _ = writeln!(
        o,
        "\nDeployments, each at its best point within the SLO (most tok/s per GPU):\n"
    );
    let _ = writeln!(
        o,
        "| deployment | point | tok/s/GPU | tok/s/user | TTFT p50 | TPOT p50 | $/M out |"
    );
    let _ = writeln!(o, "|---|---|---:|---:|---:|---:|---:|");
    for (d, best) in rows {
        match best {
            Some(p) => {
                let _ = writeln!(
                    o,
                    "| {d} | {} | {:.0} | {} | {} | {} | {} |",
                    p.label,
                    p.output_throughput_per_gpu,
                    p.interactivity.map_or("-".into(), |x| format!("{x:.1}")),
                    ms(p.ttft_p50),
                    ms(p.tpot_p50),
                    p.usd_per_mtok_output
                        .map_or("-".into(), |c| format!("{c:.3}")),
                );
            }
            None => {
                let _ = writeln!(o, "| {d} | no point meets the SLO | - | - | - | - | - |");
            }
        }
    }
}

/// `workload.search`: each search's answer, then its probes in the order they ran.
fn searches(o: &mut String, series: &[Series]) {
    let found: Vec<(String, &crate::results::index::IndexSearch)> =
        series.iter().flat_map(|s| s.named_searches()).collect();
    if found.is_empty() {
        return;
    }
    let _ = writeln!(o, "\n## Capacity search\n");
    for (name, s) in found {
        let unit = match s.over.as_str() {
            "rate" => "req/s",
            "sessions" => "sessions",
            _ => "in flight",
        };
        let mut limits = Vec::new();
        for (what, v) in [
            ("TTFT", s.slo.ttft_ms),
            ("TPOT", s.slo.tpot_ms),
            ("E2EL", s.slo.e2el_ms),
        ] {
            if let Some(v) = v {
                limits.push(format!("p{} {what} ≤ {v} ms", s.percentile));
            }
        }
        let answer = match s.answer {
            Some(a) => format!("**{a} {unit}**"),
            None => "no load in range".into(),
        };
        let _ = writeln!(
            o,
            "**{name}**: {answer} meets {} ({}; {} probes{}{}{}).\n",
            limits.join(", "),
            s.reason.as_deref().unwrap_or(&s.status),
            s.probes.len(),
            s.failed_at
                .map(|f| format!(", fails at {f} {unit}"))
                .unwrap_or_default(),
            s.goodput_req_s
                .map(|g| format!(", goodput {g:.2} req/s"))
                .unwrap_or_default(),
            s.usd_per_million_output_tokens
                .map(|c| format!(", ${c:.3} per million output tokens"))
                .unwrap_or_default(),
        );
        let _ = writeln!(
            o,
            "| probe | load | worst measured / limit | verdict | ended |"
        );
        let _ = writeln!(o, "|---:|---:|---:|---|---|");
        for (i, p) in s.probes.iter().enumerate() {
            let mark = match (p.passed, Some(p.value) == s.answer) {
                (true, true) => "✅ answer",
                (true, false) => "✅",
                (false, _) => "❌",
            };
            let _ = writeln!(
                o,
                "| {} | {} {unit} | {} | {mark} | {} |",
                i + 1,
                p.value,
                p.margin.map_or("-".into(), |m| format!("{:.2}", m + 1.0)),
                p.termination_reason
            );
        }
        let _ = writeln!(o);
    }
}

/// The shape's verdicts: the best point within the SLO, and the cheapest per token.
fn best_and_cheapest(
    o: &mut String,
    shape: &str,
    pts: &[(&str, &PointData)],
    slo_ttft_ms: Option<f64>,
    slo_tpot_ms: Option<f64>,
) {
    let has_slo = slo_ttft_ms.is_some() || slo_tpot_ms.is_some();
    if has_slo {
        let refs: Vec<&PointData> = pts.iter().map(|(_, p)| *p).collect();
        match sweeps::best_within(&refs, slo_ttft_ms, slo_tpot_ms) {
            Some(b) => {
                let name = pts
                    .iter()
                    .find(|(_, p)| std::ptr::eq(*p, b))
                    .map(|(n, _)| *n)
                    .unwrap_or_default();
                let _ = writeln!(
                        o,
                        "\n**Best {}within the SLO:** {} — {:.0} output tok/s per GPU at {} tok/s per user, TTFT p50 {} ms.",
                        if b.deployment.is_some() { "deployment " } else { "" },
                        who(name, b),
                        b.output_throughput_per_gpu,
                        b.interactivity.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into()),
                        ms(b.ttft_p50)
                    );
            }
            None => {
                let _ = writeln!(o, "\n**No point meets the SLO** for {shape}.");
            }
        }
    }
    let refs: Vec<&PointData> = pts.iter().map(|(_, p)| *p).collect();
    if let Some(b) = sweeps::cheapest_within(&refs, slo_ttft_ms, slo_tpot_ms) {
        let name = pts
            .iter()
            .find(|(_, p)| std::ptr::eq(*p, b))
            .map(|(n, _)| *n)
            .unwrap_or_default();
        let within = if has_slo { " within the SLO" } else { "" };
        let _ = writeln!(
                o,
                "\n**Cheapest {}per token{within}:** {} — ${:.3} per million output tokens at {:.0} output tok/s, {} tok/s per user.",
                if b.deployment.is_some() { "deployment " } else { "" },
                who(name, b),
                b.usd_per_mtok_output.unwrap_or_default(),
                b.output_throughput,
                b.interactivity.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into()),
            );
    }
}

/// The report for `series`, judged against the SLO (median TTFT / TPOT in ms), if any.
/// The points of a pooling API (`embeddings`, `rerank`): not streamed, nothing generated —
/// texts and input tokens per second, and the answer's latency.
fn pooling_table(o: &mut String, pts: &[(&str, &PointData)]) {
    let _ = writeln!(
        o,
        "Pooling API (not streamed): no TTFT, TPOT or output tokens.\n\n| series | point | req/s | texts/s | input tok/s | E2EL p50 | E2EL p99 | failed |\n|---|---|---:|---:|---:|---:|---:|---:|"
    );
    for (series, p) in pts {
        let _ = writeln!(
            o,
            "| {series} | {} | {:.2} | {} | {} | {} | {} | {} |",
            p.label,
            p.request_throughput,
            p.texts_per_s.map_or("-".into(), |x| format!("{x:.1}")),
            p.input_throughput.map_or("-".into(), |x| format!("{x:.0}")),
            ms(p.e2el_p50),
            ms(p.e2el_p99),
            p.failed
        );
    }
}

pub fn markdown(series: &[Series], slo_ttft_ms: Option<f64>, slo_tpot_ms: Option<f64>) -> String {
    let mut o = String::new();
    let has_slo = slo_ttft_ms.is_some() || slo_tpot_ms.is_some();
    let _ = writeln!(o, "# Benchmark report\n");
    for s in series {
        let _ = writeln!(o, "* **{}**: {} point(s)", s.name, s.points.len());
    }
    if has_slo {
        let _ = writeln!(o, "\nSLO: {}.", slo_text(slo_ttft_ms, slo_tpot_ms));
    }
    searches(&mut o, series);
    for shape in sweeps::shapes(series) {
        let _ = writeln!(o, "\n## ISL/OSL {shape}\n");
        let of_shape = || {
            series
                .iter()
                .flat_map(|s| s.points.iter().map(move |p| (s.name.as_str(), p)))
                .filter(|(_, p)| p.shape() == shape)
        };
        if of_shape().all(|(_, p)| p.texts_per_s.is_some()) {
            pooling_table(&mut o, &of_shape().collect::<Vec<_>>());
            continue;
        }
        let _ = writeln!(
            o,
            "| series | point | req/s | output tok/s | tok/s/GPU | tok/s/user | TTFT p50 | TTFT p99 | TPOT p50 | TPOT p99 | E2EL p50 | $/M out | failed |{}",
            if has_slo { " SLO |" } else { "" }
        );
        let _ = writeln!(
            o,
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|{}",
            if has_slo { "---|" } else { "" }
        );
        let mut pts: Vec<(&str, &PointData)> = Vec::new();
        for s in series {
            for p in s.points.iter().filter(|p| p.shape() == shape) {
                pts.push((&s.name, p));
                let _ = writeln!(
                    o,
                    "| {} | {} | {:.2} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} |{}",
                    s.name,
                    p.label,
                    p.request_throughput,
                    p.output_throughput,
                    p.output_throughput_per_gpu,
                    p.interactivity
                        .map(|x| format!("{x:.1}"))
                        .unwrap_or_else(|| "-".into()),
                    ms(p.ttft_p50),
                    ms(p.ttft_p99),
                    ms(p.tpot_p50),
                    ms(p.tpot_p99),
                    ms(p.e2el_p50),
                    p.usd_per_mtok_output
                        .map_or("-".into(), |c| format!("{c:.3}")),
                    p.failed,
                    match (has_slo, p.meets(slo_ttft_ms, slo_tpot_ms)) {
                        (false, _) => String::new(),
                        (true, true) => " ✅ |".into(),
                        (true, false) => " ❌ |".into(),
                    }
                );
            }
        }
        turns_table(&mut o, &pts);
        adapters_table(&mut o, &pts);
        hardware_table(&mut o, &pts);
        prefix_cache_table(&mut o, &pts);
        spec_decode_table(&mut o, &pts);
        evals_table(&mut o, &pts);
        deployments_table(&mut o, &pts, slo_ttft_ms, slo_tpot_ms);
        best_and_cheapest(&mut o, &shape, &pts, slo_ttft_ms, slo_tpot_ms);
    }
    o
}
