//! What to send and when: arrival schedules, datasets, and the executor that runs them.

pub mod dataset;
pub mod executor;
pub mod sweep;

use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, Gamma};

use crate::config::{ArrivalKind, Dataset, Experiment, Pattern};

/// Assumed decode speed per stream when nothing better is known (conservative).
const ASSUMED_TOKENS_PER_S_PER_STREAM: f64 = 20.0;

/// Expected wall time of the workload — of every point, for a sweep — from its bounds (a
/// deliberately pessimistic guess when only a request count is given). The cost estimate
/// prices this.
pub fn expected_duration(e: &Experiment) -> Duration {
    sweep::expand(e)
        .iter()
        .map(|p| point_duration(&p.experiment))
        .sum()
}

/// How many requests each point is expected to measure, in sweep order, from its bounds (the
/// request count, else the duration at the rate or at the assumed decode speed).
pub fn expected_requests(e: &Experiment) -> Vec<(u64, u32)> {
    sweep::expand(e)
        .iter()
        .map(|p| {
            let w = &p.experiment.workload;
            let out = output_len(&p.experiment);
            let n = w.requests.unwrap_or_else(|| {
                let secs = w.duration.map_or(0.0, |d| d.as_duration().as_secs_f64());
                let per_s = match w.pattern {
                    Pattern::Rate => w.rate.unwrap_or(1.0),
                    Pattern::Sequential => ASSUMED_TOKENS_PER_S_PER_STREAM / out.max(1) as f64,
                    Pattern::Concurrent => {
                        w.concurrency.unwrap_or(1) as f64 * ASSUMED_TOKENS_PER_S_PER_STREAM
                            / out.max(1) as f64
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
        Dataset::Jsonl { .. } => e.workload.max_tokens,
    }
}

fn point_duration(e: &Experiment) -> Duration {
    let w = &e.workload;
    if let Some(d) = w.duration {
        return d.as_duration();
    }
    let n = (w.requests.unwrap_or(0) + w.warmup_requests as u64) as f64;
    let out = output_len(e) as f64;
    let per_stream = out / ASSUMED_TOKENS_PER_S_PER_STREAM;
    let secs = match w.pattern {
        Pattern::Rate => n / w.rate.unwrap_or(1.0).max(1e-3) + per_stream,
        Pattern::Sequential => n * per_stream,
        Pattern::Concurrent => n * per_stream / w.concurrency.unwrap_or(1).max(1) as f64,
    };
    Duration::from_secs_f64(secs.min(1e7))
}

/// Send offsets from the benchmark start for an open-loop (`rate`) workload, computed up front
/// from the seed so the schedule is the same on every run. Request *i* leaves at `t0 + offsets[i]`.
///
/// Gaps: constant `1/rate`; Poisson: exponential with mean `1/rate`; gamma: shape `burstiness`,
/// scale `1/(rate·burstiness)` (mean `1/rate`; burstiness 1 is Poisson, as in vLLM's benchmark).
pub fn arrival_offsets(
    kind: ArrivalKind,
    rate: f64,
    burstiness: f64,
    count: Option<u64>,
    duration: Option<Duration>,
    seed: u64,
) -> Vec<Duration> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xA11_1BA1);
    let cap = count.unwrap_or(u64::MAX).min(50_000_000);
    let horizon = duration.map(|d| d.as_secs_f64()).unwrap_or(f64::INFINITY);
    let exp = Exp::new(rate).ok();
    let gamma = Gamma::new(burstiness, 1.0 / (rate * burstiness)).ok();
    let mut out = Vec::with_capacity(cap.min(1 << 20) as usize);
    let mut t = 0.0f64;
    for i in 0..cap {
        if i > 0 {
            let gap = match kind {
                ArrivalKind::Constant => 1.0 / rate,
                ArrivalKind::Poisson => exp.map(|e| e.sample(&mut rng)).unwrap_or(1.0 / rate),
                ArrivalKind::Gamma => gamma.map(|g| g.sample(&mut rng)).unwrap_or(1.0 / rate),
            };
            t += gap;
        }
        if t >= horizon {
            break;
        }
        out.push(Duration::from_secs_f64(t));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
