//! The run's deployments, at most `max_parallel` at once: one stop for all, one budget across
//! every server, one index. A deployment that cannot be deployed is recorded as failed and the
//! others go on; after a stop or a spent budget no new deployment starts.

use std::cell::RefCell;

use futures_util::stream::{FuturesUnordered, StreamExt};

use super::progress::ProgressMode;
use super::shared::{Ledger, Shared};
use super::stop::Stop;
use super::{deployment, view, Matrix, Outcome, Prepared, RunError, RunOptions};
use crate::client;
use crate::results::index::{DeploymentStatus, SweepIndex};
use crate::results::{self};
use crate::ui::say;
use crate::workload::sweep;

pub async fn run(m: &Matrix, opts: &RunOptions) -> Result<Outcome, RunError> {
    let started_at = chrono::Utc::now();
    // Kernel receive stamps on before the first connection, so no read of the run falls back
    // to the clock while the kernel switches them on (the result says how reads were stamped).
    let _ = tokio::task::spawn_blocking(client::wire::prime_kernel_stamps).await;
    let sh = shared(m, opts, started_at)?;
    // Signals from before anything is started: before the workload they end the run,
    // releasing what was started; during it, see `point`.
    let _signals = view::listen_for_signals(&sh.stop);
    let n = m.deployments.len();
    let mut saved: Vec<deployment::Saved> = vec![Vec::new(); n];
    let mut running = FuturesUnordered::new();
    let mut next = 0;
    loop {
        while running.len() < m.max_parallel && next < n {
            if sh.stop.is_stopped() || sh.ledger.exhausted() {
                break;
            }
            let i = next;
            next += 1;
            let p = &m.deployments[i];
            if all_done(p, &sh) {
                say(format!(
                    "resume: deployment {} already measured; skipping",
                    name(p)
                ));
                continue;
            }
            let o = deployment_options(opts, i, sh.parallel);
            let sh = &sh;
            running.push(async move { (i, deployment::run(p, &o, sh).await) });
        }
        let Some((i, result)) = running.next().await else {
            break;
        };
        saved[i] = match result {
            Ok(s) => s,
            // One run: its error is the run's.
            Err(err) if !m.is_matrix() => return Err(err),
            Err(RunError::Interrupted) => {
                sh.deployment_status(
                    name(&m.deployments[i]),
                    DeploymentStatus::Interrupted,
                    None,
                    0.0,
                );
                Vec::new()
            }
            // A deployment that could not be had: recorded as failed, the others go on.
            Err(err) => {
                say(format!(
                    "deployment {} failed: {err}",
                    name(&m.deployments[i])
                ));
                deployment::record_failure(&m.deployments[i], &sh, None, &err.to_string())
            }
        };
    }
    drop(running);
    if next < n && sh.ledger.exhausted() {
        say("the budget is spent: the deployments not started are not run (`run --resume` runs them)");
    }
    let points: deployment::Saved = saved.into_iter().flatten().collect();
    // Stopped after the server was ready but before any point started: nothing was measured.
    if points.is_empty() && sh.stop.is_stopped() {
        return Err(RunError::Interrupted);
    }
    let all = m.points();
    let planned = all.len();
    // A stop or a spent budget that came after the last point was measured (as it saved, as
    // the pods were released) cut nothing short.
    let finished = match sh.indexed() {
        true => all.iter().all(|pt| sh.done(pt)),
        false => points.len() == planned,
    };
    let budget_spent =
        points.iter().any(|(r, _)| r.stopped_by_budget()) || (sh.ledger.exhausted() && !finished);
    if let (Some(max), false) = (sh.ledger.max_usd, budget_spent) {
        let spent = sh.ledger.total();
        if spent > max {
            say(format!(
                "every point was measured; releasing the servers took the spend to ${spent:.2}, past the budget of ${max:.2}"
            ));
        }
    }
    if let Some(x) = sh.index.borrow_mut().as_mut() {
        x.finish(planned, budget_spent);
    }
    let index = sh.save_index();
    Ok(Outcome {
        points,
        index,
        notes: sh.saver.take().notes,
        answers: sh.answers.take(),
        slo: crate::ui::table_slo(&m.experiment),
        interrupted: sh.stop.is_stopped() && !finished,
        budget_spent,
    })
}

/// The run's shared state: its index (new, or the sweep being resumed) and where files go.
fn shared(
    m: &Matrix,
    opts: &RunOptions,
    started_at: chrono::DateTime<chrono::Utc>,
) -> Result<Shared, RunError> {
    let e = &m.experiment;
    let planned: Vec<String> = m.points().iter().map(sweep::Point::key).collect();
    let names: Vec<String> = m
        .deployments
        .iter()
        .filter_map(|p| p.deployment.clone())
        .collect();
    let indexed = m.is_matrix() || e.workload.load().points != crate::config::Points::One;
    // A resumed sweep goes on under its own index's name; a new run reserves a name of its own.
    let (index, base, reservation) = match (indexed, opts.resume) {
        (true, true) => {
            let (index, at) = SweepIndex::resumable(e, &planned)?;
            (Some(index), SweepIndex::base_of(&at), None)
        }
        (indexed, _) => {
            let index = indexed.then(|| SweepIndex::new(e, planned, &names, started_at));
            let (base, r) = results::reserve_result_path(&e.output.dir, &e.name, started_at);
            (index, base, r)
        }
    };
    Ok(Shared {
        stop: Stop::new(),
        ledger: Ledger::new(e.infrastructure.max_cost_usd),
        index: RefCell::new(index),
        saver: RefCell::default(),
        base,
        _reservation: reservation,
        parallel: m.max_parallel > 1 && m.deployments.len() > 1,
        answers: RefCell::default(),
    })
}

/// Deployment `i`'s options: its own estimate; side by side, plain lines instead of a live
/// view or progress bars that would draw over each other.
fn deployment_options(opts: &RunOptions, i: usize, parallel: bool) -> RunOptions {
    RunOptions {
        // Bars of deployments side by side would draw over each other: lines instead.
        progress: match (opts.progress, parallel) {
            (ProgressMode::Bar, true) => ProgressMode::Lines(std::time::Duration::from_secs(10)),
            (mode, _) => mode,
        },
        tui: opts.tui && !parallel,
        estimated_cost_usd: opts
            .estimated_cost_usd
            .get(i)
            .copied()
            .into_iter()
            .collect(),
        ..opts.clone()
    }
}

fn name(p: &Prepared) -> &str {
    p.deployment.as_deref().unwrap_or("")
}

/// A resumed matrix: every point of this deployment is measured already.
fn all_done(p: &Prepared, sh: &Shared) -> bool {
    p.deployment.is_some()
        && sweep::expand_on(&p.resolved.experiment, p.deployment.as_deref())
            .iter()
            .all(|pt| sh.done(pt))
}
