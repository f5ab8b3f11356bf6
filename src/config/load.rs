//! The load an experiment puts on the server, decided once from `workload`'s flat keys: which
//! points the run has (one, a sweep's grid, a capacity search's probes) and how each point sends
//! (a trace's timestamps, a closed loop, an open loop). Every precedence rule between those keys
//! lives in `Workload::load`; everything downstream matches on its answer.
//!
//! The YAML stays flat (`pattern`, `concurrency`, `rate`, `sweep`, `search`, …): every published
//! experiment file keeps working, and `--set workload.rate=…` keeps one key per knob.

use super::{Dataset, Pattern, Search, SearchOver, Sweep, Workload};

/// An experiment's load (see the module's header).
#[derive(Clone, Debug, PartialEq)]
pub struct Load<'a> {
    pub points: Points<'a>,
    /// How the point sends (a search's: its first probe's).
    pub pace: Pace,
}

/// Which points the run measures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Points<'a> {
    /// The experiment itself.
    One,
    /// `workload.sweep`: one point per combination of its axes, each with a pace of its own.
    Sweep(&'a Sweep),
    /// `workload.search`: probes placed as the search goes, each a point of its own.
    Search(&'a Search),
}

/// How one point sends its requests.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// At a trace's own timestamps, at most `max_in_flight` at once.
    Trace { max_in_flight: Option<u32> },
    /// A closed loop: `concurrency` requests (or conversations) in flight; `sequential` is 1.
    Closed { concurrency: u32 },
    /// An open loop: `rate` arrivals per second (`workload.arrival`, `burstiness`), at most
    /// `max_in_flight` at once.
    Open {
        rate: f64,
        max_in_flight: Option<u32>,
    },
}

impl Pace {
    /// Whether requests arrive on their own schedule (a rate, a trace) rather than as others
    /// finish: only then can the server fall behind (the saturation rule).
    pub fn is_open(self) -> bool {
        !matches!(self, Pace::Closed { .. })
    }
}

impl Workload {
    /// The load, with every precedence rule in one place: a search places its own points (over
    /// a sweep, which validation rejects beside it), a sweep's points come next, else the
    /// experiment is one point; a point replays a trace at the trace's timestamps whatever its
    /// `pattern`, else its `pattern` decides. Values validation requires and finds missing read
    /// as the defaults the run would use (concurrency 1, rate 1/s).
    pub fn load(&self) -> Load<'_> {
        let points = match (&self.search, &self.sweep) {
            (Some(s), _) => Points::Search(s),
            (None, Some(s)) => Points::Sweep(s),
            (None, None) => Points::One,
        };
        let pace = match (&self.dataset, &self.search) {
            (Dataset::Trace { .. }, _) => Pace::Trace {
                max_in_flight: self.max_concurrency,
            },
            (_, Some(s)) => match s.over {
                SearchOver::Rate => Pace::Open {
                    rate: s.start,
                    max_in_flight: self.max_concurrency,
                },
                SearchOver::Concurrency | SearchOver::Sessions => Pace::Closed {
                    concurrency: s.start.round().max(1.0) as u32,
                },
            },
            _ => match self.pattern {
                Pattern::Sequential => Pace::Closed { concurrency: 1 },
                Pattern::Concurrent => Pace::Closed {
                    concurrency: self.concurrency.unwrap_or(1),
                },
                Pattern::Rate => Pace::Open {
                    rate: self.rate.unwrap_or(1.0),
                    max_in_flight: self.max_concurrency,
                },
            },
        };
        Load { points, pace }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Experiment;

    fn workload(yaml: &str) -> Workload {
        let e: Experiment = serde_yaml::from_str(&format!(
            "name: t\nmodel: {{ id: m }}\ninfrastructure: {{ provider: simulator }}\nworkload:\n{yaml}"
        ))
        .unwrap();
        e.workload
    }

    #[test]
    fn the_pattern_decides_a_plain_point() {
        let w = workload("  pattern: concurrent\n  concurrency: 8\n  requests: 1\n");
        assert_eq!(w.load().points, Points::One);
        assert_eq!(w.load().pace, Pace::Closed { concurrency: 8 });
        let w = workload("  pattern: sequential\n  requests: 1\n");
        assert_eq!(w.load().pace, Pace::Closed { concurrency: 1 });
        let w = workload("  pattern: rate\n  rate: 2.5\n  max_concurrency: 4\n  requests: 1\n");
        let open = Pace::Open {
            rate: 2.5,
            max_in_flight: Some(4),
        };
        assert_eq!(w.load().pace, open);
        assert!(open.is_open());
    }

    #[test]
    fn a_trace_sends_at_its_timestamps_whatever_the_pattern() {
        let w = workload(
            "  pattern: concurrent\n  max_concurrency: 3\n  dataset: { kind: trace, path: t.jsonl }\n",
        );
        assert_eq!(
            w.load().pace,
            Pace::Trace {
                max_in_flight: Some(3)
            }
        );
        assert!(w.load().pace.is_open());
    }

    #[test]
    fn a_search_places_its_points_over_a_sweep() {
        let w = workload(
            "  pattern: concurrent\n  concurrency: 8\n  requests: 1\n  sweep: { concurrency: [1, 2] }\n  search: { over: concurrency, start: 2, max: 64 }\n",
        );
        assert!(matches!(w.load().points, Points::Search(_)));
        assert_eq!(w.load().pace, Pace::Closed { concurrency: 2 });
        let w = workload(
            "  pattern: concurrent\n  concurrency: 8\n  requests: 1\n  sweep: { concurrency: [1, 2] }\n",
        );
        assert!(matches!(w.load().points, Points::Sweep(_)));
        assert_eq!(w.load().pace, Pace::Closed { concurrency: 8 });
    }
}
