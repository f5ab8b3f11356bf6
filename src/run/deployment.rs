//! One deployment, end to end: provision its server, wait until it is ready, run its points in
//! order (each saved as it ends), release the server on every way out.

use super::point::{self, PointContext, PointOutcome};
use super::shared::Shared;
use super::view::Screen;
use super::{client_workers, evals, ready, Prepared, RunError, RunOptions};
use crate::client::Endpoint;
use crate::provider::{self, Handle};
use crate::results::index::DeploymentStatus;
use crate::results::{self, RunResult, Status};
use crate::ui::say;
use crate::workload::sweep;

pub use super::shared::Saved;

/// Runs `p`'s points on a server of its own. An error means nothing was recorded (a stop
/// before the workload, a configuration the server refused, a server that could not be had);
/// a server that never became ready is recorded as a failed point.
pub async fn run(p: &Prepared, opts: &RunOptions, sh: &Shared) -> Result<Saved, RunError> {
    let e = &p.resolved.experiment;
    let dep = p.deployment.as_deref();
    let who = dep.unwrap_or("");
    let points = sweep::expand_on(e, dep);
    let mut screen = Screen::start(e, opts.tui, &sh.stop);
    screen.phase("provisioning");
    if let Some(d) = dep {
        say(format!("deployment {d}: provisioning"));
        sh.deployment_status(d, DeploymentStatus::Running, None, 0.0);
    }
    // Provision: the handle releases the server on every way out of this function.
    let server_log = sh.deployment_file(dep, "server.log");
    let asked = std::time::Instant::now();
    let provider::Provisioned {
        servers,
        mut handle,
    } = provider::provision(&p.resolved, &server_log, &sh.run_id(dep), sh.stop.token()).await?;
    screen.pod(&handle);
    screen.phase("waiting for the server");
    let eps = match endpoints(p, &servers) {
        Ok(eps) => eps,
        Err(err) => {
            handle.release().await;
            return Err(err);
        }
    };
    let timeout = e.infrastructure.health_timeout.as_duration();
    let server_version = match ready_all(&eps, &e.model.id, timeout, &mut handle, sh).await {
        Ok(v) => v,
        // Stopped, or refused for a reason of the configuration (a key, a certificate): nothing
        // was measured and there is nothing to record but the error.
        Err(err @ (RunError::Interrupted | RunError::ApiKey(_) | RunError::Endpoint(_))) => {
            handle.release().await;
            return Err(err);
        }
        // The server did not become ready: recorded as failed, with why.
        Err(err) => {
            let failed = record_failure(p, sh, Some(&handle), &err.to_string());
            sh.ledger.report(who, handle.spent_usd());
            handle.release().await;
            return Ok(failed);
        }
    };
    if let Some(d) = dep {
        let at: Vec<String> = eps.iter().map(Endpoint::base_url).collect();
        say(format!("deployment {d}: ready at {}", at.join(", ")));
    }
    let mut s = PointContext {
        p,
        opts,
        eps: &eps,
        stop: &sh.stop,
        screen: &mut screen,
        handle: &mut handle,
        ledger: &sh.ledger,
        who,
        workers: client_workers(p, opts),
        server_version,
        cold: Some((asked, asked.elapsed())),
    };
    let mut saved = match points.first().filter(|p| p.search().is_some()) {
        Some(slot) => super::search::run(&mut s, slot, sh).await,
        None => sweep_points(&mut s, &points, sh).await,
    };
    drop(s);
    if let Some(plan) = &p.evals {
        screen.phase("grading");
        grade_after(plan, p, &eps, sh, &mut saved).await;
    }
    screen.phase("releasing the server");
    let pod = handle.pod_id().is_some();
    let spent = sh.ledger.report(who, handle.spent_usd());
    let own = handle.spent_usd();
    handle.release().await;
    if let (false, true, Some((result, path))) = (sh.indexed(), pod, saved.last_mut()) {
        // One run: its cost includes the pod's whole life, termination included.
        result.cost.actual_usd = spent.max(result.cost.actual_usd);
        *path = sh.saver.borrow_mut().result(path, result);
    }
    if let Some(d) = dep {
        let status = match points.first().filter(|p| p.search().is_some()) {
            Some(slot) if sh.done(slot) => DeploymentStatus::Completed,
            Some(_) => DeploymentStatus::Interrupted,
            None => deployment_status(&saved, points.len(), sh),
        };
        let error = saved.iter().find_map(|(r, _)| r.error.clone());
        sh.deployment_status(d, status, error, own);
        say(format!("deployment {d}: {status}"));
    }
    Ok(saved)
}

/// Where each server (replica) answers, with its key.
fn endpoints(p: &Prepared, servers: &[provider::Server]) -> Result<Vec<Endpoint>, RunError> {
    let api = p.resolved.experiment.workload.api;
    servers
        .iter()
        .map(|s| {
            Endpoint::parse_trusting(&s.base_url, api, s.api_key.clone(), p.tls_ca.clone())
                .map_err(RunError::Endpoint)
        })
        .collect()
}

/// Waits until every replica is ready, one after another (they came up together, so the
/// later ones are ready by then); the first one's version names the server.
async fn ready_all(
    eps: &[Endpoint],
    model: &str,
    timeout: std::time::Duration,
    handle: &mut Handle,
    sh: &Shared,
) -> Result<Option<String>, RunError> {
    let mut version = None;
    for ep in eps {
        // (A server that never answers is named by its URL in the error.)
        let v = ready::wait_ready(ep, model, timeout, handle, sh.stop.token()).await?;
        version = version.or(v);
    }
    Ok(version)
}

/// A deployment's status in the index, from its points.
fn deployment_status(saved: &Saved, planned: usize, sh: &Shared) -> DeploymentStatus {
    let budget = saved.iter().any(|(r, _)| r.stopped_by_budget())
        || (sh.ledger.exhausted() && saved.len() < planned);
    if saved.iter().any(|(r, _)| r.status == Status::Failed) {
        DeploymentStatus::Failed
    } else if budget {
        DeploymentStatus::BudgetSpent
    } else if saved.len() == planned && saved.iter().all(|(r, _)| r.status == Status::Completed) {
        DeploymentStatus::Completed
    } else if sh.stop.is_stopped() || sh.ledger.exhausted() || !saved.is_empty() {
        DeploymentStatus::Interrupted
    } else {
        DeploymentStatus::Completed
    }
}

/// Runs the points in order, writing each result (and the index) as soon as it exists.
/// Rule: after an interrupted point the deployment stops; after a failed point it goes on when
/// the server still answers, and stops when the server is gone; once the run's budget is
/// spent no new point starts.
async fn sweep_points(s: &mut PointContext<'_>, points: &[sweep::Point], sh: &Shared) -> Saved {
    let mut outcomes = Vec::new();
    let mut spent_before = 0.0;
    let n = points.len();
    let estimate = s.opts.estimated_cost_usd.first().copied().unwrap_or(0.0);
    for (i, pt) in points.iter().enumerate() {
        if sh.done(pt) {
            say(format!(
                "resume: point {} already measured; skipping",
                pt.key()
            ));
            continue;
        }
        if s.stop.is_stopped() {
            break;
        }
        if sh.ledger.exhausted() {
            say(format!(
                "the budget is spent: point {} and those after it are not run",
                pt.key()
            ));
            break;
        }
        if !pt.label.is_empty() {
            say(format!("sweep point {}/{n}: {}", i + 1, pt.key()));
        }
        let beside =
            s.p.evals
                .as_ref()
                .filter(|e| e.settings.under_load && i + 1 == n);
        let PointOutcome {
            mut result,
            server_gone,
        } = match beside {
            Some(plan) => {
                let (eps, p, stop) = (s.eps, s.p, s.stop);
                let target = eval_target(p, eps, stop, sh, Some(pt.key()));
                let graded = evals::grade_all(plan, &target);
                let (mut outcome, scores) = tokio::join!(point::run_point(s, pt, n), graded);
                outcome.result.evals = scores;
                outcome
            }
            None => point::run_point(s, pt, n).await,
        };
        result.cost.estimated_usd = estimate / n as f64;
        let spent = s.handle.spent_usd();
        result.cost.actual_usd = spent - spent_before;
        spent_before = spent;
        sh.ledger.report(s.who, spent);
        let path = sh.save_point(pt, &mut result);
        let go_on = match result.status {
            Status::Completed => true,
            Status::Interrupted => false,
            Status::Failed => !server_gone,
        };
        outcomes.push((result, path));
        if !go_on {
            if server_gone && i + 1 < n {
                say("the server is gone: the remaining points are not run (`run --resume` runs them on a new server)");
            }
            break;
        }
    }
    outcomes
}

/// Where `p`'s evals are graded: its first server (replica), its model, the run's stop.
fn eval_target<'a>(
    p: &'a Prepared,
    eps: &'a [Endpoint],
    stop: &'a super::stop::Stop,
    sh: &Shared,
    beside: Option<String>,
) -> evals::Target<'a> {
    let dep = p.deployment.as_deref();
    evals::Target {
        ep: &eps[0],
        model: &p.resolved.experiment.model.id,
        beside,
        stop: stop.token(),
        lm_eval_dir: sh.deployment_file(dep, "lm-eval"),
        lm_eval_log: sh.deployment_file(dep, "lm-eval.log"),
    }
}

/// `evals` after the points, on the idle server: the scores go on the last result (saved
/// again, with its index entry) — unless they ran beside the last point already, the run was
/// stopped, the budget is spent, or the last point failed (the server may be gone).
async fn grade_after(
    plan: &evals::EvalPlan,
    p: &Prepared,
    eps: &[Endpoint],
    sh: &Shared,
    saved: &mut Saved,
) {
    let Some((result, path)) = saved.last_mut() else {
        return;
    };
    // Graded beside the last point already.
    if !result.evals.is_empty() {
        return;
    }
    let why_not = if sh.stop.is_stopped() {
        Some("the run was stopped")
    } else if sh.ledger.exhausted() {
        Some("the budget is spent")
    } else if result.status == Status::Failed {
        Some("the last point failed")
    } else {
        None
    };
    if let Some(why) = why_not {
        say(format!("evals not run: {why}"));
        return;
    }
    let target = eval_target(p, eps, &sh.stop, sh, None);
    result.evals = evals::grade_all(plan, &target).await;
    *path = sh.resave(result, path);
}

/// The deployment could not run (no server, or one that never became ready): the first point
/// still to run is recorded as failed with the reason (nothing measured), so its result and
/// the index say what happened.
pub fn record_failure(p: &Prepared, sh: &Shared, handle: Option<&Handle>, why: &str) -> Saved {
    let points = sweep::expand_on(&p.resolved.experiment, p.deployment.as_deref());
    let Some(pt) = points.iter().find(|pt| !sh.done(pt)) else {
        return Vec::new();
    };
    let e = &pt.experiment;
    let spent = handle.map_or(0.0, Handle::spent_usd);
    let env = results::Environment {
        provider: e.infrastructure.provider.as_str().into(),
        pod_id: handle.and_then(Handle::pod_id),
        gpu_type: e.infrastructure.gpu_type.clone(),
        gpu_count: e.infrastructure.gpu_count,
        price_per_hour_usd: handle
            .and_then(Handle::price)
            .map(|(_, p)| p)
            .or(e.infrastructure.price_per_hour_usd),
        image: crate::framework::container_image(e),
        ..Default::default()
    };
    let started = chrono::Utc::now();
    let mut result = RunResult::new(e, None, Status::Failed, Some(why.to_string()), env, started);
    result.sweep_point = (!pt.key().is_empty()).then(|| pt.key());
    result.deployment = pt.deployment.clone();
    result.cost.actual_usd = spent;
    let path = sh.save_point(pt, &mut result);
    if let Some(d) = &pt.deployment {
        sh.deployment_status(d, DeploymentStatus::Failed, Some(why.to_string()), spent);
    }
    vec![(result, path)]
}
