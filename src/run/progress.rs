//! What a run without the live view shows on stderr while a point runs: a bar on a terminal
//! (over the requests, or over the time of a timed run), and elsewhere — `nohup`, CI, a Slurm
//! batch job, deployments side by side — a plain line every few seconds that a log keeps.

use std::time::{Duration, Instant};

use crate::metrics::event::RequestRecord;
use crate::metrics::summary::percentile;

/// How a run shows progress without the live view (`RunOptions::progress`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum ProgressMode {
    /// Nothing (`--quiet`, or `--json` on a terminal).
    #[default]
    Off,
    /// An `indicatif` bar (stderr is a terminal).
    Bar,
    /// A plain line this often (stderr is a file or a pipe).
    Lines(Duration),
}

/// A point's progress on stderr.
pub enum Progress {
    Off,
    Bar {
        bar: indicatif::ProgressBar,
        /// A timed run without a request count: the bar runs over its seconds.
        timed: Option<Instant>,
    },
    Lines(Lines),
}

/// The plain lines' state: when the next is due, and what happened since the last.
pub struct Lines {
    every: Duration,
    who: String,
    started: Instant,
    next: Instant,
    /// TTFTs (ms) of the requests that ended since the last line.
    ttfts: Vec<f64>,
    finished_then: u64,
    then: Instant,
    requests: Option<u64>,
    duration: Option<Duration>,
}

impl Progress {
    /// `who`: the deployment, when several run side by side (each line says which).
    pub fn new(
        mode: ProgressMode,
        requests: Option<u64>,
        duration: Option<Duration>,
        who: &str,
    ) -> Self {
        let now = Instant::now();
        match mode {
            ProgressMode::Off => Self::Off,
            ProgressMode::Bar => Self::Bar {
                bar: bar(requests, duration),
                timed: duration.filter(|_| requests.is_none()).map(|_| now),
            },
            ProgressMode::Lines(every) => Self::Lines(Lines {
                every,
                who: match who {
                    "" => String::new(),
                    w => format!("{w}: "),
                },
                started: now,
                next: now + every,
                ttfts: Vec::new(),
                finished_then: 0,
                then: now,
                requests,
                duration,
            }),
        }
    }

    /// A request ended.
    pub fn record(&mut self, r: &RequestRecord) {
        if let (Self::Lines(l), Some(t)) = (self, r.ttft_ms) {
            l.ttfts.push(t);
        }
    }

    /// The counts now (after an event, and every half second).
    pub fn update(&mut self, finished: u64, failed: u64, sent: u64) {
        match self {
            Self::Off => {}
            Self::Bar { bar, timed } => {
                match timed {
                    Some(t0) => bar.set_position(t0.elapsed().as_secs()),
                    None => bar.set_position(finished),
                }
                let in_flight = sent.saturating_sub(finished);
                bar.set_message(format!(
                    "{finished} done, {failed} failed, {in_flight} in flight"
                ));
            }
            Self::Lines(l) => {
                if Instant::now() >= l.next {
                    crate::ui::say(l.line(finished, failed, sent));
                }
            }
        }
    }

    pub fn done(&mut self) {
        if let Self::Bar { bar, .. } = self {
            bar.finish_and_clear();
        }
        *self = Self::Off;
    }
}

impl Lines {
    /// `[00:30] 1234 done, 0 failed, 24 in flight · 41.1 req/s · TTFT p50 56.2 ms · ETA 00:45`
    /// (the rate and TTFT over the last interval).
    fn line(&mut self, finished: u64, failed: u64, sent: u64) -> String {
        let now = Instant::now();
        self.next = now + self.every;
        let dt = now.duration_since(self.then).as_secs_f64();
        let rate = (finished.saturating_sub(self.finished_then)) as f64 / dt.max(1e-9);
        self.ttfts.sort_by(f64::total_cmp);
        let ttft = percentile(&self.ttfts, 50.0).map_or("-".to_string(), |t| format!("{t:.1} ms"));
        self.ttfts.clear();
        (self.finished_then, self.then) = (finished, now);
        let elapsed = now.duration_since(self.started);
        // The sooner of the two bounds, at the recent rate.
        let by_count = self
            .requests
            .filter(|_| rate > 0.0)
            .map(|n| Duration::from_secs_f64(n.saturating_sub(finished) as f64 / rate));
        let by_time = self.duration.map(|d| d.saturating_sub(elapsed));
        let eta = match (by_count, by_time) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        format!(
            "{}[{}] {finished} done, {failed} failed, {} in flight · {rate:.1} req/s · TTFT p50 {ttft}{}",
            self.who,
            clock(elapsed),
            sent.saturating_sub(finished),
            eta.map(|e| format!(" · ETA {}", clock(e))).unwrap_or_default()
        )
    }
}

/// `mm:ss`, or `h:mm:ss` past an hour.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    match s / 3600 {
        0 => format!("{:02}:{:02}", s / 60, s % 60),
        h => format!("{h}:{:02}:{:02}", s % 3600 / 60, s % 60),
    }
}

/// A bar over the requests; over the seconds of a timed run without a count; else a spinner
/// with the count (never `293/293` for a run with no planned total).
fn bar(requests: Option<u64>, duration: Option<Duration>) -> indicatif::ProgressBar {
    let (b, template) = match (requests, duration) {
        (Some(n), _) => (
            indicatif::ProgressBar::new(n),
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} requests  {msg}",
        ),
        (None, Some(d)) => (
            indicatif::ProgressBar::new(d.as_secs().max(1)),
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} s  {msg}",
        ),
        (None, None) => (
            indicatif::ProgressBar::new_spinner(),
            "{spinner} [{elapsed_precise}] {msg}",
        ),
    };
    b.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    b.enable_steady_tick(Duration::from_millis(200));
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_says_counts_rate_ttft_and_eta() {
        let mut p = Progress::new(
            ProgressMode::Lines(Duration::ZERO),
            Some(1000),
            None,
            "h100",
        );
        let Progress::Lines(l) = &mut p else {
            panic!("lines")
        };
        l.ttfts = vec![30.0, 10.0, 20.0];
        l.then = Instant::now() - Duration::from_secs(10);
        let line = l.line(100, 2, 124);
        assert!(line.starts_with("h100: [00:"), "{line}");
        assert!(
            line.contains("100 done, 2 failed, 24 in flight · 10.0 req/s · TTFT p50 20.0 ms"),
            "{line}"
        );
        // 900 to go at 10 req/s.
        assert!(line.ends_with("ETA 01:30"), "{line}");
        assert_eq!(clock(Duration::from_secs(3725)), "1:02:05");
    }
}
