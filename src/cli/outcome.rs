//! What a run prints when it ends, and `results show` of a sweep index: each point's summary,
//! the table of several points, a search's answers, the `--json` document — stdout for what
//! a script reads, stderr for where files went and what failed.

use std::path::Path;

use super::{err, exit, out, CliError};

/// Prints each point's summary, where it was saved, and what failed; the exit code it makes
/// and whether the run was interrupted.
pub(super) fn report_outcome(outcome: &crate::run::Outcome, json: bool) -> (i32, bool) {
    use crate::results::Status;
    let mut code = exit::OK;
    let mut interrupted = outcome.interrupted;
    // Several points (a sweep, a search, a matrix): one JSON document for all of them.
    let many = outcome.index.is_some();
    if json {
        out(&outcome_json(outcome));
    }
    for (result, path) in &outcome.points {
        if !json {
            out(&crate::ui::summary_table(result));
        }
        err(&format!("saved {}", path.display()));
        match result.status {
            Status::Interrupted => interrupted = true,
            Status::Failed => {
                let why = result.error.as_deref().unwrap_or("unknown");
                let name = result.sweep_point.as_deref().unwrap_or(&result.name);
                err(&format!("error: {name} failed: {why}"));
                code = exit::RUN_FAILED;
            }
            Status::Completed => {}
        }
    }
    if many && !json && !outcome.points.is_empty() {
        let rs: Vec<crate::ui::TableRow> = outcome
            .points
            .iter()
            .map(|(r, _)| crate::ui::TableRow::of(r))
            .collect();
        out(&format!(
            "\n{}",
            crate::ui::points_table(&rs, outcome.slo.as_ref())
        ));
    }
    if !json {
        for a in &outcome.answers {
            out(a);
        }
    }
    for n in &outcome.notes {
        err(&format!("warning: {n}"));
        code = exit::RUN_FAILED;
    }
    // A failure says more than a spent budget; both say more than success.
    if outcome.budget_spent {
        err("the budget (infrastructure.max_cost_usd) is spent: the run stopped before its plan was done");
        if code == exit::OK {
            code = exit::BUDGET_SPENT;
        }
    }
    if let Some(index) = &outcome.index {
        err(&format!(
            "sweep index {} ({} point(s) this time); `llm-inf-bench plot {}` draws it",
            index.display(),
            outcome.points.len(),
            index.display()
        ));
        if interrupted {
            err("the sweep was interrupted; `llm-inf-bench run --resume` with the same experiment finishes it");
        }
    }
    (code, interrupted)
}

/// `run --json`: one document. A single run's summary; a run of several points `{"points":
/// [{"point", "deployment", "status", "file", "summary"}…], "searches": [answers…], "index"}`.
fn outcome_json(outcome: &crate::run::Outcome) -> String {
    let doc = match (&outcome.index, outcome.points.as_slice()) {
        (None, [(r, _)]) => serde_json::to_value(&r.summary).unwrap_or_default(),
        (index, points) => serde_json::json!({
            "points": points.iter().map(|(r, path)| serde_json::json!({
                "point": r.sweep_point,
                "deployment": r.deployment,
                "status": r.status,
                "file": path,
                "summary": r.summary,
            })).collect::<Vec<_>>(),
            "searches": outcome.answers,
            "index": index,
        }),
    };
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// `results show X.sweep.json`: the sweep's table (a row per point, from each point's result
/// file, records unread) and its searches' answers.
pub(super) fn show_index(file: &Path) -> Result<String, CliError> {
    let bad = |e: crate::results::ResultsError| CliError::Usage(e.to_string());
    let (idx, heads) = crate::results::index::read_with_points(file).map_err(bad)?;
    let judge = serde_json::from_value::<crate::config::Experiment>(idx.config.clone())
        .ok()
        .and_then(|e| crate::ui::table_slo(&e));
    let rows: Vec<crate::ui::TableRow> = heads.iter().map(crate::ui::TableRow::of_head).collect();
    let mut o = format!(
        "{}: {} ({} points)\n{}",
        idx.name,
        idx.status,
        idx.points.len(),
        crate::ui::points_table(&rows, judge.as_ref())
    );
    for s in &idx.searches {
        let who = [&s.deployment, &s.tier]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ");
        let unit = s.unit();
        let answer = match s.answer {
            Some(a) => format!("{a} {unit}"),
            None => "no load in range meets the SLO".into(),
        };
        let of = match who.is_empty() {
            true => String::new(),
            false => format!(" of {who}"),
        };
        let slo = crate::ui::slo_legend(&(s.slo.clone(), s.percentile)).unwrap_or_default();
        o.push_str(&format!("\ncapacity{of}: {answer} ({slo})"));
    }
    Ok(o)
}
