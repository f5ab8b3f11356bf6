//! Has a point settled, or is it running away? Two detectors the collector asks on its clock:
//!
//! * **Steady state** (`workload.steady_state`): the p50 and p99 of TTFT and TPOT and the output
//!   throughput of three consecutive windows (requests by the time they ended) differ by less
//!   than the threshold, each window holding at least [`MIN_PER_WINDOW`] successful requests.
//!   The steady part starts where the first of the three does (`steady_from_s`).
//! * **Saturation** (`workload.saturation`, open loop): requests in flight and the TTFT of the
//!   requests completing both grow linearly with time — least-squares slopes over the recent
//!   window, each more than [`T_MIN`] standard errors above zero — and the queue has at least
//!   grown by half over that window (as guidellm's over-saturation detector, with its t-test).

use super::columns::Brief;
use super::summary::percentile;

/// A window's percentiles need this many successful requests to be compared at all.
pub const MIN_PER_WINDOW: usize = 20;

/// How many standard errors above zero a slope must be to count as growth.
pub const T_MIN: f64 = 4.0;

/// Saturation needs TTFT to have grown by at least this much (ms) over the window, and by half.
pub const TTFT_RISE_MS: f64 = 10.0;

/// The steady-state rule, in ms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SteadyRule {
    pub window_ms: f64,
    pub threshold: f64,
}

/// The figures of one window.
#[derive(Clone, Copy, Debug)]
struct Window {
    ttft: (f64, f64),
    tpot: (f64, f64),
    output_tokens: f64,
}

fn window(briefs: &[&Brief]) -> Option<Window> {
    let mut ttft: Vec<f64> = briefs
        .iter()
        .filter(|b| b.ok())
        .filter_map(|b| b.ttft())
        .collect();
    let mut tpot: Vec<f64> = briefs
        .iter()
        .filter(|b| b.ok())
        .filter_map(|b| b.tpot())
        .collect();
    if ttft.len() < MIN_PER_WINDOW {
        return None;
    }
    let pair = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        Some((percentile(v, 50.0)?, percentile(v, 99.0)?))
    };
    Some(Window {
        ttft: pair(&mut ttft)?,
        // Single-token answers have no TPOT: the pair is then (0, 0) in every window.
        tpot: pair(&mut tpot).unwrap_or((0.0, 0.0)),
        output_tokens: briefs
            .iter()
            .filter(|b| b.ok())
            .map(|b| b.output_tokens as f64)
            .sum(),
    })
}

fn close(a: f64, b: f64, threshold: f64) -> bool {
    (a - b).abs() <= threshold * a.abs().max(b.abs()) || (a - b).abs() < 1e-9
}

fn alike(a: &Window, b: &Window, t: f64) -> bool {
    close(a.ttft.0, b.ttft.0, t)
        && close(a.ttft.1, b.ttft.1, t)
        && close(a.tpot.0, b.tpot.0, t)
        && close(a.tpot.1, b.tpot.1, t)
        && close(a.output_tokens, b.output_tokens, t)
}

/// Where the steady part starts (ms from the window's start), if the last three windows before
/// `now_ms` are alike. `briefs` are in the order requests ended.
pub fn steady_from(briefs: &[Brief], now_ms: f64, rule: SteadyRule) -> Option<f64> {
    let w = rule.window_ms;
    let from = now_ms - 3.0 * w;
    if from < 0.0 {
        return None;
    }
    let mut wins: [Vec<&Brief>; 3] = Default::default();
    for b in briefs.iter().rev() {
        if b.end_ms < from {
            break;
        }
        if b.end_ms >= now_ms {
            continue;
        }
        let i = ((b.end_ms - from) / w) as usize;
        wins[i.min(2)].push(b);
    }
    let [a, b, c] = [window(&wins[0])?, window(&wins[1])?, window(&wins[2])?];
    (alike(&a, &b, rule.threshold) && alike(&b, &c, rule.threshold)).then_some(from)
}

/// Least-squares slope of `y` on `x`, its standard error, and the intercept.
fn slope(points: &[(f64, f64)]) -> Option<(f64, f64, f64)> {
    let n = points.len() as f64;
    if n < 3.0 {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let b = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>() / sxx;
    let a = my - b * mx;
    let sse: f64 = points.iter().map(|p| (p.1 - a - b * p.0).powi(2)).sum();
    let se = (sse / (n - 2.0) / sxx).sqrt();
    Some((b, se, a))
}

/// The saturation rule, in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SaturationRule {
    pub after_s: f64,
    pub window_s: f64,
}

/// What the saturation detector found.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Runaway {
    /// Requests in flight gained per second.
    pub in_flight_per_s: f64,
    /// TTFT gained per second (ms/s).
    pub ttft_ms_per_s: f64,
    pub in_flight: f64,
    pub over_s: f64,
}

/// One sample per second: requests in flight at its end, and the mean TTFT of the requests
/// that completed in it (if any did).
#[derive(Debug, Default)]
pub struct Trend {
    samples: Vec<(f64, f64, Option<f64>)>,
}

impl Trend {
    pub fn push(&mut self, t_s: f64, in_flight: f64, ttft_mean: Option<f64>) {
        self.samples.push((t_s, in_flight, ttft_mean));
    }

    /// Whether the queue is growing without bound, by `rule`.
    pub fn runaway(&self, rule: SaturationRule) -> Option<Runaway> {
        let (now, ..) = *self.samples.last()?;
        if now < rule.after_s {
            return None;
        }
        let recent: Vec<&(f64, f64, Option<f64>)> = self
            .samples
            .iter()
            .filter(|s| s.0 > now - rule.window_s && s.0 >= rule.after_s / 2.0)
            .collect();
        let q: Vec<(f64, f64)> = recent.iter().map(|s| (s.0, s.1)).collect();
        let t: Vec<(f64, f64)> = recent.iter().filter_map(|s| Some((s.0, s.2?))).collect();
        if q.len() < 8 || t.len() < 6 {
            return None;
        }
        let (qs, qse, _) = slope(&q)?;
        let (ts, tse, ta) = slope(&t)?;
        let grows = |s: f64, se: f64| s > 0.0 && (se == 0.0 || s / se > T_MIN);
        let first = q.first()?.1;
        let last = q.last()?.1;
        let queue_grew = last >= 8.0 && last >= 1.5 * first.max(1.0);
        // A queue that runs away makes TTFT grow without bound; a ramp (more in flight because
        // more is sent, Little's law) leaves it flat. A significant but tiny slope is not
        // growth: TTFT must have risen by half (and by TTFT_RISE_MS) over the window.
        let (t_first, t_last) = (t.first()?.0, t.last()?.0);
        let from = (ta + ts * t_first).max(0.0);
        let rise = ts * (t_last - t_first);
        let ttft_grew = rise >= TTFT_RISE_MS && rise >= 0.5 * from;
        (grows(qs, qse) && grows(ts, tse) && ttft_grew && queue_grew).then_some(Runaway {
            in_flight_per_s: qs,
            ttft_ms_per_s: ts,
            in_flight: last,
            over_s: q.last()?.0 - q.first()?.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brief(end_ms: f64, ttft: f64, tpot: f64) -> Brief {
        Brief {
            ttft_ms: ttft,
            ttfo_ms: ttft,
            tpot_ms: tpot,
            e2el_ms: ttft + 10.0 * tpot,
            end_ms,
            input_tokens: 10,
            output_tokens: 10,
            reasoning_tokens: 0,
            ideal_cached: u32::MAX,
            turn: u16::MAX,
            inputs: 0,
            adapter: u16::MAX,
            replica: u8::MAX,
            flags: crate::metrics::columns::OK,
        }
    }

    #[test]
    fn a_flat_run_is_steady_from_three_windows_back_and_a_climbing_one_is_not() {
        let rule = SteadyRule {
            window_ms: 1000.0,
            threshold: 0.05,
        };
        // 100 requests a second, alternating two TTFTs: the same percentiles every window.
        let flat: Vec<Brief> = (0..1000)
            .map(|i| brief(i as f64 * 10.0, 50.0 + (i % 2) as f64, 8.0))
            .collect();
        assert_eq!(steady_from(&flat, 5000.0, rule), Some(2000.0));
        assert_eq!(
            steady_from(&flat, 2500.0, rule),
            None,
            "not three windows yet"
        );
        // TTFT climbing 20 % a second.
        let climbing: Vec<Brief> = (0..1000)
            .map(|i| brief(i as f64 * 10.0, 50.0 * 1.2f64.powf(i as f64 / 100.0), 8.0))
            .collect();
        assert_eq!(steady_from(&climbing, 5000.0, rule), None);
        // Too few requests per window to judge.
        let sparse: Vec<Brief> = (0..50)
            .map(|i| brief(i as f64 * 100.0, 50.0, 8.0))
            .collect();
        assert_eq!(steady_from(&sparse, 5000.0, rule), None);
    }

    #[test]
    fn a_growing_queue_is_runaway_and_a_noisy_flat_one_is_not() {
        let rule = SaturationRule {
            after_s: 10.0,
            window_s: 30.0,
        };
        let mut over = Trend::default();
        let mut fine = Trend::default();
        for s in 1..=20 {
            let t = s as f64;
            over.push(
                t,
                5.0 + 4.0 * t + (s % 3) as f64,
                Some(100.0 + 50.0 * t + (s % 2) as f64 * 20.0),
            );
            fine.push(
                t,
                30.0 + (s % 5) as f64 * 3.0,
                Some(80.0 + (s % 4) as f64 * 10.0),
            );
            if s < 10 {
                assert!(over.runaway(rule).is_none(), "not before `after`");
            }
        }
        let r = over.runaway(rule).expect("runaway");
        assert!(r.in_flight_per_s > 3.0 && r.ttft_ms_per_s > 40.0, "{r:?}");
        assert!(fine.runaway(rule).is_none());
    }

    #[test]
    fn a_ramp_with_flat_ttft_is_not_saturation() {
        let rule = SaturationRule {
            after_s: 10.0,
            window_s: 30.0,
        };
        // A rate climbing 2 → 40 req/s at a steady 400 ms E2EL: in flight grows with the rate
        // (Little's law) while TTFT creeps up a hair (a bigger batch), with little noise —
        // a significant slope, but no queue running away.
        let mut ramp = Trend::default();
        for s in 1..=30 {
            let t = s as f64;
            let rate = 2.0 + 38.0 * (t / 20.0).min(1.0);
            ramp.push(t, rate * 0.4, Some(44.0 + 0.05 * t + (s % 2) as f64 * 0.01));
            assert!(ramp.runaway(rule).is_none(), "flagged at {s} s");
        }
    }
}
