//! `workload.search`: the highest load (rate or concurrency) at which every SLO holds, found by
//! probing instead of a grid. Each probe is a measured point; this module only decides where
//! the next one goes, from what the earlier ones measured — so a resumed search replays its
//! probes and goes on where it stopped.
//!
//! The method (`../shared/reference/workloads-2026.md` §5): vLLM's first `serve_sla` estimate,
//! then AIPerf's `monotonic_sla` bracket, with interpolation inside it:
//! 1. probe `start` (the SLO must hold at low load at all; it also gives the unloaded latency);
//! 2. probe `max`, far over capacity: an open loop stops there as soon as it saturates, a
//!    closed loop is bounded by its requests — either way it measures the server's capacity;
//! 3. probe the estimate: for a rate, 90 % of the capacity measured at `max` (completed req/s);
//!    for a concurrency, capacity × unloaded mean E2EL (Little's law: where queueing starts);
//! 4. then, inside [highest pass, lowest fail], interpolate the SLO margin linearly (the load at
//!    which the worst criterion would just meet its limit), kept at least a fifth of the bracket
//!    away from either end so every probe shrinks the bracket; bisect when a side has no margin
//!    (a saturated or failed probe). While the bracket spans more than a factor of two, climb
//!    from the highest pass instead (by 10 % to 2×): a margin measured far over the edge says
//!    little about where the edge is. An end kept through two probes or more has its margin
//!    halved each time (the Illinois rule), so a convex margin curve is not crept up on from
//!    one side; an open loop's unmeasured capacity line (1.05 × what `max` measured) is probed
//!    itself before anything is bisected below it;
//! 5. stop when (lowest fail − highest pass) / lowest fail ≤ `tolerance` (concurrency: when no
//!    integer lies between), or after `max_points` probes. The answer is the highest pass.

use crate::config::{Search, SearchOver, Slo};
use crate::metrics::summary::Summary;

/// What one probe measured, as the search sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    pub x: f64,
    /// Worst criterion's measured / limit − 1: ≤ 0 passes. `+∞` when the probe cannot be
    /// judged by its latencies (saturated, failed, nothing completed).
    pub margin: f64,
    /// Completed requests per second.
    pub throughput: Option<f64>,
    /// Mean end-to-end latency, ms.
    pub mean_e2el_ms: Option<f64>,
}

impl Probe {
    pub fn passed(&self) -> bool {
        self.margin <= 0.0
    }
}

/// Why the search ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The bracket is within the tolerance.
    Precision,
    /// `max_points` probes were run.
    MaxPoints,
    /// Even `start` misses the SLO.
    NoPass,
    /// Even `max` meets it.
    NoFailure,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Precision => "precision_reached",
            Self::MaxPoints => "max_points",
            Self::NoPass => "no_pass_in_range",
            Self::NoFailure => "no_failure_in_range",
        }
    }
}

/// Where the next probe goes, or the answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Next {
    Probe(f64),
    Done {
        /// The highest load that met every SLO.
        answer: Option<f64>,
        /// The lowest load that did not.
        failed_at: Option<f64>,
        reason: Reason,
    },
}

/// The margin of a measured point against `slo` at `percentile`: the worst criterion's
/// measured / limit − 1; `+∞` when a criterion has no figure.
pub fn margin(s: &Summary, slo: &Slo, percentile: f64) -> f64 {
    let p = crate::metrics::summary::pname(percentile);
    let criteria = [
        (slo.ttft_ms, format!("{p}_ttft_ms")),
        (slo.tpot_ms, format!("{p}_tpot_ms")),
        (slo.e2el_ms, format!("{p}_e2el_ms")),
    ];
    criteria
        .iter()
        .filter_map(|(limit, name)| Some((limit.filter(|l| *l > 0.0)?, name)))
        .map(|(limit, name)| s.figure(name).map_or(f64::INFINITY, |v| v / limit - 1.0))
        .fold(f64::NEG_INFINITY, f64::max)
}

/// The search's state: its settings and the probes so far.
#[derive(Clone, Debug)]
pub struct Planner {
    pub over: SearchOver,
    start: f64,
    max: f64,
    tolerance: f64,
    max_points: usize,
    pub probes: Vec<Probe>,
}

impl Planner {
    pub fn new(s: &Search) -> Self {
        Self {
            over: s.over,
            start: s.start,
            max: s.max,
            tolerance: s.tolerance.0,
            max_points: s.max_points as usize,
            probes: Vec::new(),
        }
    }

    pub fn record(&mut self, p: Probe) {
        self.probes.push(p);
    }

    /// A load as the search sends it: concurrency is a whole number ≥ 1.
    fn load(&self, x: f64) -> f64 {
        match self.over {
            SearchOver::Concurrency | SearchOver::Sessions => x.round().max(1.0),
            SearchOver::Rate => (x * 1000.0).round() / 1000.0,
        }
    }

    fn best(&self) -> (Option<&Probe>, Option<&Probe>) {
        let lo = self
            .probes
            .iter()
            .filter(|p| p.passed())
            .max_by(|a, b| a.x.total_cmp(&b.x));
        let hi = self
            .probes
            .iter()
            .filter(|p| !p.passed() && lo.is_none_or(|l| p.x > l.x))
            .min_by(|a, b| a.x.total_cmp(&b.x));
        (lo, hi)
    }

    /// Whether the bracket between the highest pass and the lowest fail is within the
    /// tolerance (a whole-number load: no whole number lies between).
    fn precise(&self, lo: Option<&Probe>, hi: Option<&Probe>) -> bool {
        let (Some(lo), Some(hi)) = (lo, hi) else {
            return false;
        };
        let width = hi.x - lo.x;
        width / hi.x <= self.tolerance || (self.over.is_closed() && width <= 1.0)
    }

    pub fn next(&self) -> Next {
        let n = self.probes.len();
        let (lo, hi) = self.best();
        let done = |reason| Next::Done {
            answer: lo.map(|p| p.x),
            failed_at: hi.map(|p| p.x),
            reason,
        };
        match n {
            0 => return Next::Probe(self.load(self.start)),
            _ if lo.is_none() => return done(Reason::NoPass),
            _ if hi.is_none() && lo.is_some_and(|l| l.x >= self.max) => {
                return done(Reason::NoFailure)
            }
            1 => return Next::Probe(self.load(self.max)),
            // The last probe allowed may also be the one that closed the bracket.
            _ if n >= self.max_points && !self.precise(lo, hi) => return done(Reason::MaxPoints),
            _ => {}
        }
        let (Some(lo), Some(hi)) = (lo, hi) else {
            // Passing everywhere probed but below `max`: climb towards it.
            let l = lo.map_or(self.start, |p| p.x);
            return Next::Probe(self.load((l * 2.0).min(self.max)));
        };
        if self.precise(Some(lo), Some(hi)) {
            return done(Reason::Precision);
        }
        // The third probe goes to the estimate from the capacity, anywhere inside the bracket.
        if let Some(est) = self.estimate().filter(|_| n == 2) {
            let x = self.load(est.clamp(lo.x, hi.x));
            if x > lo.x && x < hi.x {
                return Next::Probe(x);
            }
        }
        // An open loop cannot pass above the capacity measured at `max`: past it (and a little
        // slack) is failing ground whether probed or not.
        let cap = match self.over {
            SearchOver::Rate => self
                .probes
                .get(1)
                .and_then(|p| p.throughput)
                .map(|c| 1.05 * c),
            SearchOver::Concurrency | SearchOver::Sessions => None,
        };
        // When the SLO still holds below that line, the line itself is probed next: a failure
        // there bounds the bracket by a measured probe (precision is judged against real
        // probes only), a pass moves the line. Halving the gap below an unmeasured line
        // would creep toward it without ever reaching the tolerance.
        if let Some(c) = cap.filter(|c| *c > lo.x && *c < hi.x) {
            let x = self.load(c);
            if x > lo.x && x < hi.x {
                return Next::Probe(x);
            }
        }
        let top = hi.clone();
        let width = top.x - lo.x;
        let guess = interpolate(&self.illinois(lo), &self.illinois(&top));
        // A wide bracket is climbed — doubling while the highest pass is far inside the SLO,
        // else by a quarter: a margin measured far over the edge says little about where the
        // edge is. A narrow one is cut, at least a tenth from either end.
        let (a, b) = match top.x / lo.x > 2.0 {
            true => (lo.x * 1.1, lo.x * if lo.margin < -0.5 { 2.0 } else { 1.25 }),
            false => (lo.x + 0.1 * width, top.x - 0.1 * width),
        };
        let mut x = self.load(guess.clamp(a.min(b), a.max(b)));
        if self.over.is_closed() && (x <= lo.x || x >= hi.x) {
            x = ((lo.x + hi.x) / 2.0).round();
        }
        if x <= lo.x || x >= hi.x {
            return done(Reason::Precision);
        }
        Next::Probe(x)
    }

    /// The Illinois rule against regula falsi's stagnation: when the last `k ≥ 2` probes all
    /// landed on the other side of the edge from `end` (so `end` was kept each time), `end`'s
    /// margin counts 2^(k−1) times less. Near capacity TTFT climbs steeply, the margin curve is
    /// convex, and plain interpolation crept up from below one small step at a time (54.9 →
    /// 58.3 → 59.7 → 60.4 → 60.8 against 64.1: `max_points`, not the tolerance).
    fn illinois(&self, end: &Probe) -> Probe {
        let kept = self
            .probes
            .iter()
            .rev()
            .take_while(|p| p.passed() != end.passed() && p.x != end.x)
            .count();
        let scale = 0.5f64.powi(kept.saturating_sub(1).min(30) as i32);
        Probe {
            margin: end.margin * scale,
            ..end.clone()
        }
    }

    /// After `start` and `max`: where the SLO should give out, from the capacity measured at
    /// `max` (and, for a concurrency, the unloaded latency at `start`).
    fn estimate(&self) -> Option<f64> {
        let first = self.probes.first()?;
        let capacity = self.probes.get(1)?.throughput?;
        match self.over {
            SearchOver::Rate => Some(0.9 * capacity),
            SearchOver::Concurrency => Some(capacity * first.mean_e2el_ms? / 1e3),
            // Sessions think between turns: Little's law in requests says nothing of them.
            SearchOver::Sessions => None,
        }
    }
}

/// The load at which the margin would cross zero between `lo` (passing) and `hi`; the
/// midpoint when `hi` has no usable margin.
fn interpolate(lo: &Probe, hi: &Probe) -> f64 {
    if !hi.margin.is_finite() || hi.margin <= lo.margin {
        return (lo.x + hi.x) / 2.0;
    }
    lo.x + (hi.x - lo.x) * (-lo.margin) / (hi.margin - lo.margin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Share;

    /// An open loop: p99 TTFT 50 ms up to `knee` req/s, then climbing steeply; past 1.1 × knee
    /// (the capacity) the queue runs away (saturated). Under a 200 ms SLO the edge is where
    /// 50 + 3000·(x/knee − 1) = 200.
    fn open(x: f64, knee: f64) -> Probe {
        let ttft = 50.0 + 3000.0 * (x / knee - 1.0).max(0.0);
        let saturated = x >= 1.1 * knee;
        Probe {
            x,
            margin: if saturated {
                f64::INFINITY
            } else {
                ttft / 200.0 - 1.0
            },
            throughput: Some(x.min(1.1 * knee)),
            mean_e2el_ms: Some(400.0),
        }
    }

    /// A closed loop: capacity `cap` req/s and an unloaded E2EL of 400 ms, so queueing starts
    /// at the concurrency cap × 0.4 s (Little); past it TTFT grows 100 ms per request in flight.
    fn closed(c: f64, cap: f64) -> Probe {
        let knee = cap * 0.4;
        let ttft = 50.0 + 100.0 * (c - knee).max(0.0);
        Probe {
            x: c,
            margin: ttft / 200.0 - 1.0,
            throughput: Some((c / 0.4).min(cap)),
            mean_e2el_ms: Some(400.0 + (ttft - 50.0)),
        }
    }

    /// A planner over `start..=max` to within 5 %, in at most 8 probes.
    fn planner(over: SearchOver, start: f64, max: f64) -> Planner {
        Planner::new(&Search {
            over,
            start,
            max,
            tolerance: Share(0.05),
            max_points: 8,
            ..Search::default()
        })
    }

    fn search(over: SearchOver, start: f64, max: f64, knee: f64) -> (Next, usize) {
        let measure = |x: f64| match over {
            SearchOver::Rate => open(x, knee),
            SearchOver::Concurrency | SearchOver::Sessions => closed(x, knee),
        };
        let mut p = planner(over, start, max);
        loop {
            match p.next() {
                Next::Probe(x) => p.record(measure(x)),
                done => return (done, p.probes.len()),
            }
        }
    }

    #[test]
    fn a_last_probe_that_closes_the_bracket_is_precision_not_max_points() {
        // The probes of a CI run: the eighth (of 8) brought fail and pass within 5 %.
        let mut p = planner(SearchOver::Rate, 2.0, 1000.0);
        let at = |x: f64, pass: bool| Probe {
            x,
            margin: if pass { -0.1 } else { 0.1 },
            throughput: None,
            mean_e2el_ms: None,
        };
        for (x, pass) in [
            (2.0, true),
            (1000.0, false),
            (54.447, true),
            (63.521, false),
            (57.162, true),
            (58.463, true),
            (59.785, true),
        ] {
            p.record(at(x, pass));
        }
        assert!(matches!(p.next(), Next::Probe(_)), "7 of 8: not done yet");
        p.record(at(60.664, false));
        let Next::Done { reason, answer, .. } = p.next() else {
            panic!("8 of 8 probes");
        };
        assert_eq!((reason, answer), (Reason::Precision, Some(59.785)));
        // Without the bracket closed, the eighth probe ends it on max_points.
        p.probes.pop();
        p.record(at(63.0, false));
        let Next::Done { reason, .. } = p.next() else {
            panic!("8 of 8 probes");
        };
        assert_eq!(reason, Reason::MaxPoints);
    }

    #[test]
    fn a_rate_search_finds_the_edge_within_the_tolerance_in_few_probes() {
        // Truth: 50 + 3000 (x/40 − 1) = 200 → x = 42.
        let (done, n) = search(SearchOver::Rate, 1.0, 1000.0, 40.0);
        let Next::Done {
            answer: Some(a),
            failed_at: Some(f),
            reason,
        } = done
        else {
            panic!("{done:?}");
        };
        assert!((42.0 * 0.95..=42.0).contains(&a), "answer {a}");
        assert_eq!(reason, Reason::Precision, "{a}..{f}");
        assert!((f - a) / f <= 0.05, "{a}..{f}");
        assert!(n <= 8, "{n} probes");
    }

    #[test]
    fn a_concurrency_search_ends_on_whole_numbers() {
        // Capacity 60 req/s: the knee at 24 in flight, the 200 ms edge at 25.5.
        let (done, n) = search(SearchOver::Concurrency, 1.0, 512.0, 60.0);
        let Next::Done {
            answer: Some(a),
            failed_at: Some(f),
            ..
        } = done
        else {
            panic!("{done:?}");
        };
        assert_eq!(a.fract(), 0.0);
        assert_eq!((a, f), (25.0, 26.0));
        assert!(n <= 8, "{n} probes");
    }

    /// An open loop whose SLO holds right up to its capacity `cap` (TTFT flat, then the queue
    /// runs away), measured at `max` a little under the truth, as a saturated probe that stops
    /// early does.
    fn flat_to_capacity(x: f64, cap: f64) -> Probe {
        Probe {
            x,
            margin: if x >= cap { f64::INFINITY } else { -0.5 },
            throughput: Some(x.min(0.96 * cap)),
            mean_e2el_ms: Some(400.0),
        }
    }

    #[test]
    fn a_search_whose_slo_holds_up_to_capacity_ends_on_precision() {
        let mut p = planner(SearchOver::Rate, 1.0, 1000.0);
        let done = loop {
            match p.next() {
                Next::Probe(x) => p.record(flat_to_capacity(x, 64.0)),
                done => break done,
            }
        };
        let Next::Done {
            answer: Some(a),
            failed_at: Some(f),
            reason,
        } = done
        else {
            panic!("{done:?}");
        };
        assert_eq!(reason, Reason::Precision, "{:?}", p.probes);
        assert!((f - a) / f <= 0.05, "{a}..{f}");
        assert!(a < 64.0 && f >= 64.0 && a >= 64.0 * 0.95, "{a}..{f}");
        assert!(
            f < 1000.0,
            "the bracket ends at a measured failure near capacity"
        );
    }

    #[test]
    fn a_convex_edge_is_not_crept_up_on_from_one_side() {
        // The probes of a real search on the simulator (p99 TTFT near capacity): margins
        // convex in the load. Interpolation kept the failing end and crept up from below.
        let convex = |x: f64| Probe {
            x,
            // Fitted to that search's margins: a slow rise, then a kink at 60.6 req/s.
            margin: if x >= 1000.0 {
                58.0
            } else {
                -0.32 + 0.044 * (x - 54.9) + 0.136 * (x - 60.6).max(0.0)
            },
            throughput: Some(x.min(61.0)),
            mean_e2el_ms: Some(400.0),
        };
        let mut p = planner(SearchOver::Rate, 2.0, 1000.0);
        let done = loop {
            match p.next() {
                Next::Probe(x) => p.record(convex(x)),
                done => break done,
            }
        };
        assert!(
            matches!(
                done,
                Next::Done {
                    reason: Reason::Precision,
                    ..
                }
            ),
            "{done:?} after {:?}",
            p.probes.iter().map(|q| q.x).collect::<Vec<_>>()
        );
    }

    #[test]
    fn edges_of_the_range_are_said() {
        let (done, n) = search(SearchOver::Rate, 50.0, 100.0, 10.0);
        assert_eq!(n, 1);
        assert!(matches!(
            done,
            Next::Done {
                answer: None,
                reason: Reason::NoPass,
                ..
            }
        ));
        let (done, _) = search(SearchOver::Rate, 1.0, 20.0, 100.0);
        assert!(matches!(
            done,
            Next::Done {
                answer: Some(20.0),
                reason: Reason::NoFailure,
                ..
            }
        ));
    }
}
