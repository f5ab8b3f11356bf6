//! A capacity search on one deployment: ask the planner (`workload::search`) where to probe,
//! run each probe as a point (its own result file, in the index), feed back what it measured,
//! and record the answer. A resumed search replays the probes it already measured (their
//! result files) and goes on from there.

use super::point::{self, PointContext, PointOutcome};
use super::shared::{Saved, Shared};
use crate::config::{Search, Slo};
use crate::metrics::collector::StopKind;
use crate::results::index::{IndexProbe, IndexSearch};
use crate::results::{RunResult, Status};
use crate::ui::say;
use crate::workload::search::{margin, Next, Planner, Probe};
use crate::workload::sweep::{self, Point};

/// What the planner learns from one probe's result.
fn probe_of(x: f64, r: &RunResult, slo: &Slo, percentile: f64) -> Probe {
    let s = &r.summary;
    let judged = r.status == Status::Completed
        && s.completed > 0
        && r.stopped_by() != Some(StopKind::Saturated);
    Probe {
        x,
        margin: match judged {
            true => margin(s, slo, percentile),
            false => f64::INFINITY,
        },
        throughput: s.request_throughput,
        mean_e2el_ms: s.mean_e2el_ms,
    }
}

/// The index's record of the search (of one SLO tier) so far.
fn record(
    slot: &Point,
    cfg: &Search,
    (tier, slo): (&Option<String>, &Slo),
    probes: &[(String, Probe, String)],
) -> IndexSearch {
    IndexSearch {
        deployment: slot.deployment.clone(),
        tier: tier.clone(),
        over: cfg.over.as_str().into(),
        percentile: cfg.percentile,
        slo: slo.clone(),
        tolerance: cfg.tolerance.0,
        probes: probes
            .iter()
            .map(|(label, p, why)| IndexProbe {
                label: label.clone(),
                value: p.x,
                passed: p.passed(),
                margin: p.margin.is_finite().then_some(p.margin),
                termination_reason: why.clone(),
            })
            .collect(),
        status: "running".into(),
        ..IndexSearch::default()
    }
}

/// Runs the search in `slot` (its experiment has `workload.search`): once, or once per SLO
/// tier — a probe an earlier tier measured is read back, not measured again.
pub async fn run(s: &mut PointContext<'_>, slot: &Point, sh: &Shared) -> Saved {
    let cfg = slot.search().cloned().unwrap_or_default();
    let mut saved = Vec::new();
    let all = tiers(&cfg, slot);
    let dep = slot.deployment.as_deref();
    // Every tier is in the index from the start: the slot is done when all are answered.
    for (tier, slo) in &all {
        if !sh.search_completed(dep, tier.as_deref()) {
            save_search(sh, record(slot, &cfg, (tier, slo), &[]), "running");
        }
    }
    for tier in all {
        if sh.search_completed(dep, tier.0.as_deref()) {
            continue;
        }
        let (mut more, stopped) = search_tier(s, slot, sh, &cfg, tier).await;
        saved.append(&mut more);
        if stopped {
            break;
        }
    }
    saved
}

/// The SLOs to answer: each of `tiers` by name, else the one `slo` (or `metrics.slo`).
fn tiers(cfg: &Search, slot: &Point) -> Vec<(Option<String>, Slo)> {
    match cfg.tiers.is_empty() {
        true => vec![(
            None,
            cfg.slo
                .clone()
                .or_else(|| slot.experiment.metrics.slo.clone())
                .unwrap_or_default(),
        )],
        false => cfg
            .tiers
            .iter()
            .map(|t| (Some(t.name.clone()), t.slo()))
            .collect(),
    }
}

/// One search under one SLO; true when the run was stopped (interrupted, budget, server gone).
async fn search_tier(
    s: &mut PointContext<'_>,
    slot: &Point,
    sh: &Shared,
    cfg: &Search,
    (tier, slo): (Option<String>, Slo),
) -> (Saved, bool) {
    let cfg = cfg.clone();
    let at = (&tier, &slo);
    let mut planner = Planner::new(&cfg);
    let mut probes: Vec<(String, Probe, String)> = Vec::new();
    let mut saved: Saved = Vec::new();
    let mut results: Vec<RunResult> = Vec::new();
    let n = cfg.max_points as usize;
    let (answer, failed_at, reason) = loop {
        let x = match planner.next() {
            Next::Probe(x) => x,
            Next::Done {
                answer,
                failed_at,
                reason,
            } => break (answer, failed_at, reason),
        };
        let pt = sweep::probe(slot, x);
        // Resumed: what this probe measured before.
        if let Some(r) = sh.done(&pt).then(|| sh.result_of(&pt)).flatten() {
            say(format!(
                "probe {} already measured (a resumed run, or an earlier SLO tier): its result is read back",
                pt.key()
            ));
            let p = probe_of(x, &r, &slo, cfg.percentile);
            planner.record(p.clone());
            probes.push((pt.label.clone(), p, r.termination_reason.clone()));
            results.push(r);
            continue;
        }
        if s.stop.is_stopped() || sh.ledger.exhausted() {
            save_search(sh, record(slot, &cfg, at, &probes), "interrupted");
            return (saved, true);
        }
        say(format!(
            "search probe {}/{n}: {}",
            planner.probes.len() + 1,
            pt.key()
        ));
        let PointOutcome {
            mut result,
            server_gone,
        } = point::run_point(s, &pt, n).await;
        let path = sh.save_point(&pt, &mut result);
        let p = probe_of(x, &result, &slo, cfg.percentile);
        say(format!(
            "probe {}: {}",
            pt.label,
            if p.passed() {
                "meets the SLO"
            } else {
                "misses the SLO"
            }
        ));
        planner.record(p.clone());
        probes.push((pt.label.clone(), p, result.termination_reason.clone()));
        let stop = result.status == Status::Interrupted || server_gone;
        results.push(result.clone());
        saved.push((result, path));
        save_search(sh, record(slot, &cfg, at, &probes), "running");
        if stop {
            save_search(sh, record(slot, &cfg, at, &probes), "interrupted");
            return (saved, true);
        }
    };
    let mut done = record(slot, &cfg, at, &probes);
    done.answer = answer;
    done.failed_at = failed_at;
    done.reason = Some(reason.as_str().into());
    if let Some(i) = answer.and_then(|a| probes.iter().position(|(_, p, _)| p.x == a)) {
        let r = &results[i].summary;
        done.goodput_req_s = r.request_goodput.or(r.request_throughput);
        done.usd_per_million_output_tokens = r.usd_per_million_output_tokens;
        done.answer_label = Some(probes[i].0.clone());
    }
    sh.answer(answer_text(&done, slot));
    save_search(sh, done, "completed");
    (saved, false)
}

fn save_search(sh: &Shared, mut s: IndexSearch, status: &str) {
    s.status = status.into();
    sh.record_search(s);
}

/// "capacity of h100 under p99 TTFT ≤ 500 ms: 12.5 req/s (fails at 13.1) …".
fn answer_text(s: &IndexSearch, slot: &Point) -> String {
    let who = slot
        .deployment
        .as_deref()
        .map(|d| format!(" of {d}"))
        .unwrap_or_default();
    let who = match &s.tier {
        Some(t) => format!("{who} for tier {t}"),
        None => who,
    };
    let unit = format!(" {}", s.unit());
    match (s.answer, s.failed_at) {
        (Some(a), f) => format!(
            "capacity{who}: {a}{unit} meets every SLO at p{} ({}{}); goodput {} req/s{}",
            s.percentile,
            f.map(|f| format!("{f}{unit} does not; "))
                .unwrap_or_default(),
            s.reason.as_deref().unwrap_or(""),
            s.goodput_req_s.map_or("-".into(), |g| format!("{g:.2}")),
            s.usd_per_million_output_tokens
                .map(|c| format!(", ${c:.3} per million output tokens"))
                .unwrap_or_default()
        ),
        (None, _) => format!(
            "capacity{who}: no load in range meets the SLO ({})",
            s.reason.as_deref().unwrap_or("")
        ),
    }
}
