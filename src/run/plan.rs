//! The plan of a run, shown before anything is started or rented: what runs where, how long,
//! what it costs (a line per deployment, the matrix's total and peak $/hour) — and whether a
//! `--resume` has a sweep to go on with.

use super::{Matrix, RunError};
use crate::config::{Dataset, Experiment, Pace, Pattern, Points};
use crate::provider::CostEstimate;

/// A matrix's plan: each deployment's estimate, in order.
pub struct Plan<'a> {
    matrix: &'a Matrix,
    pub estimates: Vec<CostEstimate>,
}

impl<'a> Plan<'a> {
    /// Prices every deployment of `m` (RunPod asks its catalog).
    pub async fn of(m: &'a Matrix) -> Result<Plan<'a>, RunError> {
        Ok(Self {
            matrix: m,
            estimates: super::estimate_cost(m).await?,
        })
    }

    /// What the whole run is expected to cost.
    pub fn total_usd(&self) -> f64 {
        self.estimates.iter().map(|c| c.usd()).sum()
    }
}

impl std::fmt::Display for Plan<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.matrix;
        for (p, estimate) in m.deployments.iter().zip(&self.estimates) {
            let line = plan_line(&p.resolved.experiment, estimate);
            match &p.deployment {
                Some(d) => writeln!(f, "  deployment {d}: {line}")?,
                None => writeln!(f, "{line}")?,
            }
            let indent = if p.deployment.is_some() { "    " } else { "  " };
            match (&p.evals, &m.experiment.evals) {
                (Some(plan), _) => writeln!(f, "{indent}graded: {}", super::evals::describe(plan))?,
                (None, Some(_)) => writeln!(
                    f,
                    "{indent}not graded (evals.deployments: extremes grades the lowest and highest gpu_count of each group)"
                )?,
                (None, None) => {}
            }
        }
        if m.is_matrix() {
            writeln!(f, "{}", matrix_line(m, &self.estimates))?;
        }
        Ok(())
    }
}

/// `--resume` needs a sweep, a search or a matrix, and an unfinished one of the same points.
pub fn resumable(m: &Matrix) -> Result<(), RunError> {
    let e = &m.experiment;
    if e.workload.load().points == Points::One && !m.is_matrix() {
        return Err(RunError::Config(format!(
            "--resume continues a sweep, a capacity search or a deployment matrix, and `{}` has no `workload.sweep`, `workload.search` or `deployments`",
            e.name
        )));
    }
    let planned: Vec<String> = m.points().iter().map(|p| p.key()).collect();
    crate::results::index::SweepIndex::resumable(e, &planned)?;
    Ok(())
}

/// A matrix's plan: how many deployments, how many at once, the whole cost and the most per
/// hour at any moment, and the one budget.
fn matrix_line(m: &Matrix, each: &[CostEstimate]) -> String {
    let usd: f64 = each.iter().map(|c| c.usd()).sum();
    let peak = super::peak_usd_per_hour(each, m.max_parallel);
    let at_once = m.max_parallel.min(m.deployments.len());
    let budget = m
        .experiment
        .infrastructure
        .max_cost_usd
        .map(|b| format!("; one budget of ${b:.2} for all of them stops every server"))
        .unwrap_or_default();
    format!(
        "plan: {} — a matrix of {} deployments, at most {at_once} at once: about ${usd:.2} in all, at most ${peak:.2}/hour while {at_once} run{budget}",
        m.experiment.name,
        m.deployments.len()
    )
}

/// How requests are spread over replicas: as written, else sessions sticky and requests in
/// turn (the executor's rule, `run::point::plan`).
pub fn routing(e: &Experiment) -> crate::config::Routing {
    use crate::config::Routing;
    e.workload.routing.unwrap_or(match e.workload.dataset {
        Dataset::Conversation { .. } | Dataset::Agentic { .. } => Routing::SessionSticky,
        _ => Routing::RoundRobin,
    })
}

/// One line of plan: what runs where, how long, what it costs.
fn plan_line(e: &Experiment, c: &CostEstimate) -> String {
    let w = &e.workload;
    let load = w.load();
    let per = match load.points {
        Points::One => "",
        Points::Sweep(_) => " per point",
        Points::Search(_) => " per probe",
    };
    let bound = match (w.requests, w.duration) {
        _ if matches!(load.pace, Pace::Trace { .. }) => match w.requests {
            Some(n) => format!("the trace's first {n} requests"),
            None => "the whole trace".into(),
        },
        (None, None) if w.sessions.is_some() => format!("{} sessions", w.sessions.unwrap_or(0)),
        (Some(n), Some(d)) => format!("{n} requests or {d}{per}, whichever first"),
        (Some(n), None) => format!("{n} requests{per}"),
        (None, Some(d)) => format!("{d}"),
        (None, None) => "unbounded".into(),
    };
    let pattern = match (load.points, load.pace) {
        (Points::Search(s), _) => format!(
            "capacity search over {} from {} to {}, at most {} probes, to within {}%{}",
            s.over.as_str(),
            s.start,
            s.max,
            s.max_points,
            s.tolerance.0 * 100.0,
            match s.tiers.len() {
                0 => String::new(),
                n => format!(", for each of {n} SLO tiers"),
            }
        ),
        (Points::Sweep(_), _) => {
            let points = crate::workload::sweep::expand(e);
            let labels: Vec<&str> = points.iter().map(|p| p.label.as_str()).collect();
            format!(
                "sweep of {} points [{}] on one server",
                points.len(),
                labels.join(", ")
            )
        }
        (Points::One, Pace::Trace { .. }) => "at the trace's timestamps".to_string(),
        (Points::One, Pace::Closed { .. }) if w.pattern == Pattern::Sequential => {
            "sequential".to_string()
        }
        (Points::One, Pace::Closed { concurrency })
            if matches!(
                w.dataset,
                Dataset::Conversation { .. } | Dataset::Agentic { .. }
            ) =>
        {
            format!("{concurrency} concurrent sessions")
        }
        (Points::One, Pace::Closed { concurrency }) => format!("concurrency {concurrency}"),
        (Points::One, Pace::Open { rate, .. }) => {
            format!("{rate} req/s ({:?})", w.arrival).to_lowercase()
        }
    };
    let cost = match c.price_per_hour_usd {
        None => "cost: $0.00 (no rented hardware)".to_string(),
        Some(p) => {
            let budget = e
                .infrastructure
                .max_cost_usd
                .map(|b| format!("; budget ${b:.2} stops the run"))
                .unwrap_or_default();
            format!("cost: about ${:.2} (${p:.2}/hour × {:.2} h incl. provisioning and 20% margin; {}){budget}", c.usd(), c.hours, c.price_source)
        }
    };
    let inf = &e.infrastructure;
    let servers = match (inf.replicas, inf.base_urls.len()) {
        (_, n @ 2..) => format!("{n} servers, {} routing, ", routing(e).describe()),
        (n @ 2.., _) => format!("{n} replicas, {} routing, ", routing(e).describe()),
        _ => String::new(),
    };
    // A rented container: its image, which the GPU's vendor chose (CUDA or ROCm).
    let image = match e.infrastructure.provider {
        crate::config::ProviderKind::Runpod | crate::config::ProviderKind::Vast => {
            format!(", image {}", crate::framework::image(e))
        }
        _ => String::new(),
    };
    // Every other server the tool rents is started with a key of the run's own.
    let open = match (e.framework.kind, image.is_empty()) {
        (crate::config::FrameworkKind::Trtllm, false) => "; note: trtllm-serve takes no API key, so its public port answers anyone while the pod lives",
        _ => "",
    };
    format!(
        "plan: {} — {} on {}{} ({}{image}), {} {}, {bound} + {} warm-up; {cost}{open}",
        e.name,
        e.model.id,
        servers,
        e.infrastructure.provider.as_str(),
        e.framework.kind.as_str(),
        e.workload.dataset.kind(),
        pattern,
        e.workload.warmup_requests
    )
}
