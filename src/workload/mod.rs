//! What to send and when: arrival schedules, datasets, and the executor that runs them.

pub mod adapters;
pub mod agentic;
mod agentic_play;
pub mod dataset;
pub mod executor;
pub mod ideal;
pub mod search;
pub mod session;
mod slot;
pub mod source;
pub mod sweep;
pub mod trace;

use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, Gamma};

use crate::config::{ArrivalKind, Dataset, Experiment, Pace, Points, RampStrategy};

/// Assumed decode speed per stream when nothing better is known (conservative).
pub const ASSUMED_TOKENS_PER_S_PER_STREAM: f64 = 20.0;

/// Expected wall time of the workload — of every point, for a sweep — from its bounds (a
/// deliberately pessimistic guess when only a request count is given). The cost estimate
/// prices this.
pub fn expected_duration(e: &Experiment) -> Duration {
    points(e)
        .iter()
        .map(|p| point_duration(&p.experiment))
        .sum()
}

/// The points whose cost is estimated: a sweep's, or `max_points` probes of a capacity search
/// (each as long as the longer of its lowest and highest load).
fn points(e: &Experiment) -> Vec<sweep::Point> {
    let points = sweep::expand(e);
    let (Points::Search(s), Some(slot)) = (e.workload.load().points, points.first()) else {
        return points;
    };
    let low = sweep::probe(slot, s.start);
    let high = sweep::probe(slot, s.max);
    let longer = match point_duration(&low.experiment) >= point_duration(&high.experiment) {
        true => low,
        false => high,
    };
    vec![longer; s.max_points as usize]
}

/// How many requests each point is expected to measure, in sweep order, from its bounds (the
/// request count, else the duration at the rate or at the assumed decode speed).
pub fn expected_requests(e: &Experiment) -> Vec<(u64, u32)> {
    points(e)
        .iter()
        .map(|p| {
            let w = &p.experiment.workload;
            let out = output_len(&p.experiment);
            let n = w.requests.unwrap_or_else(|| {
                let secs = w.duration.map_or(0.0, |d| d.as_duration().as_secs_f64());
                let streams = |n: u32| f64::from(n) * ASSUMED_TOKENS_PER_S_PER_STREAM;
                let per_s = match w.load().pace {
                    Pace::Open { rate, .. } => rate,
                    Pace::Closed { concurrency } => streams(concurrency) / out.max(1) as f64,
                    // A trace's pace is its own: the in-flight cap bounds it.
                    Pace::Trace { max_in_flight } => {
                        streams(max_in_flight.unwrap_or(1)) / out.max(1) as f64
                    }
                };
                (secs * per_s).min(1e9) as u64
            });
            (n, out)
        })
        .collect()
}

/// Output tokens per request the dataset asks for.
fn output_len(e: &Experiment) -> u32 {
    match &e.workload.dataset {
        Dataset::Random { output_len, .. } | Dataset::SharedPrefix { output_len, .. } => {
            *output_len
        }
        Dataset::Conversation { output_len, .. } => output_len.unwrap_or(e.workload.max_tokens),
        Dataset::Jsonl { .. } | Dataset::Trace { .. } | Dataset::Agentic { .. } => {
            e.workload.max_tokens
        }
    }
}

fn point_duration(e: &Experiment) -> Duration {
    let w = &e.workload;
    if let Some(d) = w.duration {
        return d.as_duration();
    }
    let out = output_len(e) as f64;
    let per_stream = out / ASSUMED_TOKENS_PER_S_PER_STREAM;
    // Conversations bounded by `sessions`: every turn is a request, with think time between.
    let (turns, think) = match &w.dataset {
        Dataset::Conversation {
            turns, think_time, ..
        } => {
            let (lo, hi) = turns.map_or((1, 1), |t| t.bounds());
            let think = think_time.map_or(0.0, |t| t.as_duration().as_secs_f64());
            ((lo + hi) as f64 / 2.0, think)
        }
        _ => (1.0, 0.0),
    };
    let measured = match (w.requests, w.sessions) {
        (Some(n), _) => n as f64,
        (None, Some(s)) => s as f64 * turns,
        (None, None) => 0.0,
    };
    let n = measured + w.warmup_requests as f64;
    // Each turn after the first waits its think time on its slot.
    let per_stream = per_stream + think * (turns - 1.0) / turns;
    let secs = match w.load().pace {
        Pace::Open { rate, .. } => n / rate.max(1e-3) + per_stream,
        Pace::Closed { concurrency } => n * per_stream / concurrency.max(1) as f64,
        Pace::Trace { max_in_flight } => n * per_stream / max_in_flight.unwrap_or(1).max(1) as f64,
    };
    Duration::from_secs_f64(secs.min(1e7))
}

/// The rate of an open loop over time: constant, or a ramp from `from` to `to` over `over_s`
/// seconds (then `to`). Send times come from its integral Λ(t) = ∫₀ᵗ r: a unit-rate arrival
/// process (gaps of mean 1) mapped through Λ⁻¹ — so Poisson stays Poisson and gamma keeps its
/// burstiness while the rate changes with time, not with the request index.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateCurve {
    pub to: f64,
    pub ramp: Option<(f64, f64, RampStrategy)>,
}

impl RateCurve {
    pub fn constant(rate: f64) -> Self {
        Self {
            to: rate,
            ramp: None,
        }
    }

    /// The rate (or level) at `t` seconds.
    pub fn at(&self, t: f64) -> f64 {
        match self.ramp {
            Some((from, over, strategy)) if t < over => match strategy {
                RampStrategy::Linear => from + (self.to - from) * t / over,
                RampStrategy::Exponential => from * (self.to / from).powf(t / over),
            },
            _ => self.to,
        }
    }

    /// Λ⁻¹(s): when the integral of the rate reaches `s`.
    pub fn inverse(&self, s: f64) -> f64 {
        let r = self.to;
        let Some((a, d, strategy)) = self.ramp.filter(|(_, d, _)| *d > 0.0) else {
            return s / r;
        };
        let (ramp_area, t) = match strategy {
            RampStrategy::Linear => {
                let b = (r - a) / d;
                let area = (a + r) * d / 2.0;
                let t = if b.abs() < 1e-12 {
                    s / a
                } else {
                    (-a + (a * a + 2.0 * b * s).max(0.0).sqrt()) / b
                };
                (area, t)
            }
            RampStrategy::Exponential => {
                let lk = (r / a).ln();
                if lk.abs() < 1e-12 {
                    (a * d, s / a)
                } else {
                    let area = a * d * (r / a - 1.0) / lk;
                    (area, d * (1.0 + s * lk / (a * d)).max(1e-300).ln() / lk)
                }
            }
        };
        if s <= ramp_area {
            t
        } else {
            d + (s - ramp_area) / r
        }
    }
}

/// When the open loop's requests leave, from the seed alone: the same schedule on every run,
/// generated as it is consumed (no schedule in memory, so `duration` runs need no cap).
///
/// Gaps of the unit-rate process: constant 1; Poisson: exponential of mean 1; gamma: shape
/// `burstiness`, scale 1/`burstiness` (mean 1; burstiness 1 is Poisson, as in vLLM's
/// benchmark). At a constant rate r request *i* leaves at (gap₁ + … + gapᵢ)/r, the first at 0.
#[derive(Clone, Debug)]
pub enum Schedule {
    Process {
        kind: ArrivalKind,
        curve: RateCurve,
        burstiness: f64,
        seed: u64,
    },
    /// Fixed times (a trace), in order.
    Fixed(std::sync::Arc<Vec<Duration>>),
}

impl Schedule {
    /// Every send offset from the benchmark's start, in order (endless for a process).
    pub fn offsets(&self) -> Box<dyn Iterator<Item = Duration> + Send + '_> {
        match self {
            Self::Fixed(times) => Box::new(times.iter().copied()),
            Self::Process {
                kind,
                curve,
                burstiness,
                seed,
            } => {
                let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xA11_1BA1);
                let exp = Exp::new(1.0).ok();
                let gamma = Gamma::new(*burstiness, 1.0 / burstiness).ok();
                let (kind, curve) = (*kind, *curve);
                let mut s = 0.0f64;
                let mut first = true;
                Box::new(std::iter::from_fn(move || {
                    if !first {
                        s += match kind {
                            ArrivalKind::Constant => 1.0,
                            ArrivalKind::Poisson => exp.map_or(1.0, |e| e.sample(&mut rng)),
                            ArrivalKind::Gamma => gamma.map_or(1.0, |g| g.sample(&mut rng)),
                        };
                    }
                    first = false;
                    let t = curve.inverse(s);
                    t.is_finite()
                        .then(|| Duration::from_secs_f64(t.clamp(0.0, 1e9)))
                }))
            }
        }
    }
}

/// When each of `total` closed-loop slots opens: all at once, or along the ramp (slot *k*
/// opens when the ramp's level reaches k + 1).
pub fn slot_starts(total: u32, ramp: Option<&crate::config::Ramp>) -> Vec<Duration> {
    let Some(r) = ramp else {
        return vec![Duration::ZERO; total as usize];
    };
    let over = r.over.as_duration().as_secs_f64();
    let from = r.from.unwrap_or(1.0).max(1.0).min(total as f64);
    let to = total as f64;
    (0..total)
        .map(|k| {
            let level = k as f64 + 1.0;
            let t = if level <= from || to <= from {
                0.0
            } else {
                match r.strategy {
                    RampStrategy::Linear => over * (level - from) / (to - from),
                    RampStrategy::Exponential => over * (level / from).ln() / (to / from).ln(),
                }
            };
            Duration::from_secs_f64(t.clamp(0.0, 1e9))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first `count` offsets of a schedule that end before `horizon` .
    fn arrival_offsets(
        kind: ArrivalKind,
        rate: f64,
        burstiness: f64,
        count: Option<u64>,
        horizon: Option<Duration>,
        seed: u64,
    ) -> Vec<Duration> {
        let s = Schedule::Process {
            kind,
            curve: RateCurve::constant(rate),
            burstiness,
            seed,
        };
        let cap = count.unwrap_or(u64::MAX) as usize;
        let end = horizon.unwrap_or(Duration::MAX);
        s.offsets().take(cap).take_while(|t| *t < end).collect()
    }

    #[test]
    fn schedules_are_seeded_and_have_the_right_mean_rate() {
        for kind in [
            ArrivalKind::Constant,
            ArrivalKind::Poisson,
            ArrivalKind::Gamma,
        ] {
            let a = arrival_offsets(kind, 50.0, 0.5, Some(5000), None, 1);
            assert_eq!(a, arrival_offsets(kind, 50.0, 0.5, Some(5000), None, 1));
            assert_eq!(a.len(), 5000);
            let rate = 4999.0 / a[4999].as_secs_f64();
            assert!((rate - 50.0).abs() < 3.0, "{kind:?}: {rate}");
            assert!(a.windows(2).all(|w| w[0] <= w[1]));
        }
        assert_ne!(
            arrival_offsets(ArrivalKind::Poisson, 5.0, 1.0, Some(10), None, 1),
            arrival_offsets(ArrivalKind::Poisson, 5.0, 1.0, Some(10), None, 2)
        );
    }

    #[test]
    fn duration_bounds_the_schedule() {
        let a = arrival_offsets(
            ArrivalKind::Constant,
            10.0,
            1.0,
            None,
            Some(Duration::from_secs(2)),
            0,
        );
        assert_eq!(a.len(), 20);
        assert!(a.last().unwrap() < &Duration::from_secs(2));
    }

    #[test]
    fn burstiness_below_one_is_burstier() {
        let cv = |b: f64| {
            let a = arrival_offsets(ArrivalKind::Gamma, 100.0, b, Some(20_000), None, 3);
            let gaps: Vec<f64> = a.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
            let m = gaps.iter().sum::<f64>() / gaps.len() as f64;
            (gaps.iter().map(|g| (g - m).powi(2)).sum::<f64>() / gaps.len() as f64).sqrt() / m
        };
        assert!(cv(0.25) > 1.5 && cv(1.0) > 0.9 && cv(4.0) < 0.6);
    }

    #[test]
    fn ramps_follow_their_rate_curve_in_time() {
        // Linear 0 → 100 req/s over 10 s: Λ(10) = 500 requests in the ramp, then 100/s.
        let curve = RateCurve {
            to: 100.0,
            ramp: Some((0.0, 10.0, RampStrategy::Linear)),
        };
        assert!((curve.inverse(500.0) - 10.0).abs() < 1e-9);
        assert!((curve.inverse(600.0) - 11.0).abs() < 1e-9);
        // Half the ramp's requests by t = √(2·250·10/100) ≈ 7.07 s.
        assert!((curve.inverse(250.0) - 50f64.sqrt()).abs() < 1e-9);
        let exp = RateCurve {
            to: 64.0,
            ramp: Some((1.0, 6.0, RampStrategy::Exponential)),
        };
        assert!((exp.at(3.0) - 8.0).abs() < 1e-9);
        for s in [0.5, 10.0, 80.0, 500.0] {
            // Λ(Λ⁻¹(s)) = s: integrate the rate numerically up to the inverse.
            let t = exp.inverse(s);
            let n = 200_000;
            let area: f64 = (0..n)
                .map(|i| exp.at((i as f64 + 0.5) * t / n as f64) * t / n as f64)
                .sum();
            assert!((area - s).abs() / s < 1e-4, "{s}: {area}");
        }
        // A Poisson schedule on the linear ramp: few requests in the first second, many later.
        let sched = Schedule::Process {
            kind: ArrivalKind::Poisson,
            curve,
            burstiness: 1.0,
            seed: 4,
        };
        let first: Vec<Duration> = sched.offsets().take_while(|t| t.as_secs() < 12).collect();
        let in_second = |k: u64| first.iter().filter(|t| t.as_secs() == k).count();
        assert!(
            in_second(0) < 15 && in_second(9) > 70 && in_second(11) > 80,
            "{} {} {}",
            in_second(0),
            in_second(9),
            in_second(11)
        );
    }

    #[test]
    fn concurrency_ramps_open_slots_along_the_curve() {
        let ramp = |strategy, from| crate::config::Ramp {
            over: crate::config::HumanDuration::from_secs(8),
            strategy,
            from,
        };
        let lin = slot_starts(5, Some(&ramp(RampStrategy::Linear, None)));
        let secs: Vec<f64> = lin.iter().map(Duration::as_secs_f64).collect();
        assert_eq!(secs, [0.0, 2.0, 4.0, 6.0, 8.0]);
        let exp = slot_starts(8, Some(&ramp(RampStrategy::Exponential, Some(2.0))));
        let secs: Vec<f64> = exp
            .iter()
            .map(|d| (d.as_secs_f64() * 1e6).round() / 1e6)
            .collect();
        assert_eq!(secs[..2], [0.0, 0.0]);
        assert_eq!((secs[3], secs[7]), (4.0, 8.0));
        assert!(slot_starts(3, None).iter().all(Duration::is_zero));
    }
}
