//! What the summary needs of each request, kept small: a run of a million requests holds a
//! [`Brief`] per request (64 bytes) and its ITL gaps ([`Gaps`]: exact up to
//! [`EXACT_GAPS`], then a histogram), while the full records go to the result's side file.

use hdrhistogram::Histogram;

use super::event::RequestRecord;

/// One request, as the summary sees it. `NaN` stands for a figure the request has none of
/// (the record's `None`); 64 bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Brief {
    pub ttft_ms: f64,
    /// Time to first output (content) token: the record's `ttfo_ms` when it reasoned (none when
    /// no content came), else its TTFT (its first token was content).
    pub ttfo_ms: f64,
    pub tpot_ms: f64,
    pub e2el_ms: f64,
    pub end_ms: f64,
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub reasoning_tokens: u32,
    /// Prompt tokens an ideal prefix cache would have served (`u32::MAX`: not known).
    pub ideal_cached: u32,
    /// Turn index in its session, `u16::MAX` for a single request (later turns count as the
    /// last one before it).
    pub turn: u16,
    /// A pooling API's texts in the request (0: generation; at most `u16::MAX - 1` counted).
    pub inputs: u16,
    /// The LoRA adapter's index (`u16::MAX`: the base model).
    pub adapter: u16,
    /// The server (replica) it went to (`u8::MAX`: the only one; at most 64 replicas).
    pub replica: u8,
    /// [`OK`], [`REASONED`] and [`OVERFLOW`].
    pub flags: u8,
}

/// The request succeeded.
pub const OK: u8 = 4;
/// The stream carried reasoning.
pub const REASONED: u8 = 1;
/// Prompt and answer exceed the model's context.
pub const OVERFLOW: u8 = 2;

fn nan(x: Option<f64>) -> f64 {
    x.unwrap_or(f64::NAN)
}

impl Brief {
    pub fn of(r: &RequestRecord) -> Self {
        Self {
            ttft_ms: nan(r.ttft_ms),
            ttfo_ms: match r.reasoning_tokens {
                Some(_) => nan(r.ttfo_ms),
                None => nan(r.ttft_ms),
            },
            tpot_ms: nan(r.tpot_ms()),
            e2el_ms: r.e2el_ms,
            end_ms: r.end_ms(),
            input_tokens: r.input_tokens.unwrap_or(0),
            output_tokens: r.output_tokens,
            reasoning_tokens: r.reasoning_tokens.unwrap_or(0),
            ideal_cached: r.ideal_cached_tokens.unwrap_or(u32::MAX),
            turn: r
                .turn
                .map_or(u16::MAX, |t| t.min(u32::from(u16::MAX - 1)) as u16),
            inputs: r
                .inputs
                .map_or(0, |n| n.min(u32::from(u16::MAX - 1)) as u16),
            adapter: r.adapter.unwrap_or(u16::MAX),
            replica: r
                .replica
                .map_or(u8::MAX, |k| k.min(u16::from(u8::MAX - 1)) as u8),
            flags: u8::from(r.ok()) * OK
                + u8::from(r.reasoning_tokens.is_some()) * REASONED
                + u8::from(r.context_overflow) * OVERFLOW,
        }
    }

    /// The request succeeded.
    pub fn ok(&self) -> bool {
        self.flags & OK != 0
    }

    /// The stream carried reasoning.
    pub fn reasoned(&self) -> bool {
        self.flags & REASONED != 0
    }

    /// Prompt and answer exceed the model's context.
    pub fn overflow(&self) -> bool {
        self.flags & OVERFLOW != 0
    }

    pub fn ttft(&self) -> Option<f64> {
        some(self.ttft_ms)
    }

    pub fn tpot(&self) -> Option<f64> {
        some(self.tpot_ms)
    }

    pub fn turn(&self) -> Option<u32> {
        (self.turn != u16::MAX).then_some(u32::from(self.turn))
    }
}

fn some(x: f64) -> Option<f64> {
    (!x.is_nan()).then_some(x)
}

/// Gaps kept exactly up to this many (32 MiB), then folded into a histogram.
pub const EXACT_GAPS: usize = 4 << 20;

/// A run's ITL gaps: every gap while they fit in [`EXACT_GAPS`], then an HDR histogram of
/// microseconds at 3 significant digits (percentiles within 0.1 %; mean and std stay exact,
/// from running sums).
#[derive(Debug)]
pub struct Gaps {
    exact: Vec<f64>,
    hist: Option<Histogram<u64>>,
    count: u64,
    sum: f64,
    sum_sq: f64,
    limit: usize,
}

impl Default for Gaps {
    fn default() -> Self {
        Self::with_limit(EXACT_GAPS)
    }
}

impl Gaps {
    pub fn with_limit(limit: usize) -> Self {
        Self {
            exact: Vec::new(),
            hist: None,
            count: 0,
            sum: 0.0,
            sum_sq: 0.0,
            limit,
        }
    }

    pub fn from_vec(v: Vec<f64>) -> Self {
        let mut g = Self::with_limit(usize::MAX);
        g.extend(&v);
        g
    }

    pub fn extend(&mut self, gaps: &[f64]) {
        for g in gaps {
            self.count += 1;
            self.sum += g;
            self.sum_sq += g * g;
        }
        match &mut self.hist {
            Some(h) => gaps.iter().for_each(|g| record(h, *g)),
            None => {
                self.exact.extend_from_slice(gaps);
                if self.exact.len() > self.limit {
                    self.fold();
                }
            }
        }
    }

    fn fold(&mut self) {
        let Ok(mut h) = Histogram::<u64>::new(3) else {
            return;
        };
        for g in std::mem::take(&mut self.exact) {
            record(&mut h, g);
        }
        self.hist = Some(h);
    }

    pub fn is_exact(&self) -> bool {
        self.hist.is_none()
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Mean and population std, exact either way.
    pub fn mean_std(&self) -> Option<(f64, f64)> {
        if self.count == 0 {
            return None;
        }
        let n = self.count as f64;
        let mean = self.sum / n;
        Some((mean, (self.sum_sq / n - mean * mean).max(0.0).sqrt()))
    }

    /// Sorted exact gaps (when still exact): the caller computes percentiles on them.
    pub fn sorted(&mut self) -> Option<&[f64]> {
        if self.hist.is_some() {
            return None;
        }
        self.exact.sort_by(f64::total_cmp);
        Some(&self.exact)
    }

    /// The percentile from the histogram, in ms.
    pub fn hist_percentile(&self, p: f64) -> Option<f64> {
        let h = self.hist.as_ref().filter(|h| !h.is_empty())?;
        Some(h.value_at_quantile(p / 100.0) as f64 / 1e3)
    }
}

fn record(h: &mut Histogram<u64>, ms: f64) {
    let us = (ms.max(0.0) * 1e3).round() as u64;
    let _ = h.record(us.max(1));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_brief_stays_64_bytes_with_its_flags_and_narrow_counts() {
        // What a million-request run holds per request (README, BENCHMARKS).
        assert_eq!(std::mem::size_of::<Brief>(), 64);
        let r = RequestRecord {
            reasoning_tokens: Some(3),
            context_overflow: true,
            turn: Some(70_000),
            inputs: Some(8),
            adapter: Some(2),
            ..RequestRecord::default()
        };
        let b = Brief::of(&r);
        assert!(b.reasoned() && b.overflow());
        assert_eq!((b.turn(), b.inputs, b.adapter), (Some(65_534), 8, 2));
        let plain = Brief::of(&RequestRecord::default());
        assert!(!plain.reasoned() && !plain.overflow() && plain.turn().is_none());
    }

    #[test]
    fn gaps_fold_into_a_histogram_past_the_limit_and_keep_exact_moments() {
        let xs: Vec<f64> = (1..=10_000).map(|i| i as f64 / 100.0).collect();
        let mut exact = Gaps::from_vec(xs.clone());
        let mut folded = Gaps::with_limit(1000);
        for c in xs.chunks(700) {
            folded.extend(c);
        }
        assert!(exact.is_exact() && !folded.is_exact());
        let (m1, s1) = exact.mean_std().unwrap();
        let (m2, s2) = folded.mean_std().unwrap();
        assert!((m1 - m2).abs() < 1e-9 && (s1 - s2).abs() < 1e-6);
        let sorted = exact.sorted().unwrap();
        let p99_exact = sorted[(0.99 * (sorted.len() - 1) as f64).round() as usize];
        let p99_hist = folded.hist_percentile(99.0).unwrap();
        assert!(
            (p99_exact - p99_hist).abs() / p99_exact < 2e-3,
            "{p99_exact} vs {p99_hist}"
        );
        assert_eq!(folded.count(), 10_000);
    }
}
