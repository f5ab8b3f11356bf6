//! `workload.sweep`: the points of a sweep, each the experiment with one combination of the
//! axes applied. Order: sequence lengths outermost, then concurrency or rate, ascending — so a
//! sweep climbs the load on one shape before it changes shape.

use crate::config::parse_seq_len;
use crate::config::{Dataset, Experiment, Pattern, Points, SweepValues};

/// The label of a capacity search's slot among the points.
pub const SEARCH: &str = "search";

/// One probe of a capacity search at load `x` (`r12.5`, `c24`): the slot's experiment with
/// that rate or concurrency, and the search's percentile and SLO among its figures.
pub fn probe(slot: &Point, x: f64) -> Point {
    let mut e = slot.experiment.clone();
    let search = e.workload.search.take().unwrap_or_default();
    let (label, concurrency, rate) = match search.over {
        crate::config::SearchOver::Rate => {
            e.workload.pattern = Pattern::Rate;
            e.workload.rate = Some(x);
            (format!("r{x}"), None, Some(x))
        }
        crate::config::SearchOver::Concurrency => {
            let c = x.round().max(1.0) as u32;
            e.workload.pattern = Pattern::Concurrent;
            e.workload.concurrency = Some(c);
            (format!("c{c}"), Some(c), None)
        }
        // Sessions at once: the closed loop of a conversation or agent workload.
        crate::config::SearchOver::Sessions => {
            let c = x.round().max(1.0) as u32;
            e.workload.pattern = Pattern::Concurrent;
            e.workload.concurrency = Some(c);
            (format!("s{c}"), Some(c), None)
        }
    };
    if !e.metrics.percentiles.contains(&search.percentile) {
        e.metrics.percentiles.push(search.percentile);
        e.metrics.percentiles.sort_by(f64::total_cmp);
    }
    if e.metrics.slo.is_none() {
        e.metrics.slo = search.slo.clone();
    }
    Point {
        label,
        concurrency,
        rate,
        seq: None,
        deployment: slot.deployment.clone(),
        experiment: e,
    }
}

/// One point of a sweep.
#[derive(Clone, Debug)]
pub struct Point {
    /// Names the point in file names and tables: `c16`, `r2.5`, `1k1k-c16`; empty for a run
    /// without a sweep.
    pub label: String,
    pub concurrency: Option<u32>,
    pub rate: Option<f64>,
    pub seq: Option<(u32, u32)>,
    /// The deployment of a matrix this point runs on (`deployments`), by name.
    pub deployment: Option<String>,
    /// The experiment with this point's values, and no sweep.
    pub experiment: Experiment,
}

impl Point {
    /// A capacity search's slot: not measured itself, its probes are placed as the search goes
    /// (each a point of its own, without the search).
    pub fn search(&self) -> Option<&crate::config::Search> {
        match self.experiment.workload.load().points {
            Points::Search(s) => Some(s),
            _ => None,
        }
    }

    /// The point's name in the index and `sweep_point`: `vllm-h100/c16` in a matrix (the
    /// deployment alone when it has no sweep), else the label.
    pub fn key(&self) -> String {
        match (&self.deployment, self.label.is_empty()) {
            (Some(d), true) => d.clone(),
            (Some(d), false) => format!("{d}/{}", self.label),
            (None, _) => self.label.clone(),
        }
    }

    /// The key as it goes in a file name (`vllm-h100-c16`).
    pub fn file_label(&self) -> String {
        self.key().replace('/', "-")
    }

    /// The seed this point's prompts are drawn from: the experiment's `seed` for a run of one
    /// point, else the seed mixed with the point's label. Points on one server never share a
    /// prompt (a prefix-caching server would serve the second point's repeats from its cache:
    /// speed no user sees), and the same experiment makes the same requests at each point on
    /// every run and on `--resume`. The deployment is left out on purpose: deployments of a
    /// matrix have their own servers and get the same prompts, for a fair comparison.
    pub fn prompt_seed(&self) -> u64 {
        let seed = self.experiment.seed;
        if self.label.is_empty() {
            return seed;
        }
        seed ^ splitmix(fnv1a(self.label.as_bytes()))
    }
}

/// FNV-1a, 64 bit: a hash that stays the same across Rust versions (std's does not promise to).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// SplitMix64's finaliser: spreads a hash over all 64 bits.
fn splitmix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The points of one deployment of a matrix (`name`), or of the experiment without one.
pub fn expand_on(e: &Experiment, deployment: Option<&str>) -> Vec<Point> {
    let mut points = expand(e);
    for p in &mut points {
        p.deployment = deployment.map(str::to_string);
    }
    points
}

/// The concurrency values of a list or a geometric range.
pub fn concurrency_values(v: &SweepValues) -> Vec<u32> {
    match v {
        SweepValues::List(l) => l.clone(),
        SweepValues::Geometric(g) => {
            let mut out = Vec::new();
            let mut c = g.start.max(1);
            while c <= g.end {
                out.push(c);
                match c.checked_mul(g.factor.max(2)) {
                    Some(n) => c = n,
                    None => break,
                }
            }
            out
        }
    }
}

/// `1024` → `1k`, `1536` → `1536`.
fn short(n: u32) -> String {
    if n.is_multiple_of(1024) {
        format!("{}k", n / 1024)
    } else {
        n.to_string()
    }
}

/// The points to run: one (the experiment itself, unlabelled) without a sweep.
pub fn expand(e: &Experiment) -> Vec<Point> {
    let one = |label: &str| {
        vec![Point {
            label: label.into(),
            concurrency: None,
            rate: None,
            seq: None,
            deployment: None,
            experiment: e.clone(),
        }]
    };
    let s = match e.workload.load().points {
        // A capacity search is one slot: its probes are placed as it goes (`run::search`).
        Points::Search(_) => return one(SEARCH),
        Points::One => return one(""),
        Points::Sweep(s) => s.clone(),
    };
    let seqs: Vec<Option<(u32, u32)>> = if s.seq_lens.is_empty() {
        vec![None]
    } else {
        s.seq_lens
            .iter()
            .filter_map(|x| parse_seq_len(x))
            .map(Some)
            .collect()
    };
    let mut loads: Vec<(Option<u32>, Option<f64>)> = Vec::new();
    if let Some(c) = &s.concurrency {
        loads.extend(concurrency_values(c).into_iter().map(|c| (Some(c), None)));
    }
    loads.extend(s.rate.iter().map(|r| (None, Some(*r))));
    if loads.is_empty() {
        loads.push((None, None));
    }
    let mut out = Vec::new();
    for seq in &seqs {
        for (c, r) in &loads {
            let mut x = e.clone();
            x.workload.sweep = None;
            let mut label = Vec::new();
            if let Some((i, o)) = seq {
                if let Dataset::Random {
                    input_len,
                    output_len,
                    ..
                } = &mut x.workload.dataset
                {
                    *input_len = *i;
                    *output_len = *o;
                }
                label.push(if i.is_multiple_of(1024) && o.is_multiple_of(1024) {
                    format!("{}{}", short(*i), short(*o))
                } else {
                    format!("{}x{}", short(*i), short(*o))
                });
            }
            if let Some(c) = c {
                if x.workload.pattern == Pattern::Rate {
                    x.workload.max_concurrency = Some(*c);
                } else {
                    x.workload.pattern = Pattern::Concurrent;
                    x.workload.concurrency = Some(*c);
                }
                label.push(format!("c{c}"));
            }
            if let Some(r) = r {
                x.workload.pattern = Pattern::Rate;
                x.workload.rate = Some(*r);
                label.push(format!("r{r}"));
            }
            out.push(Point {
                label: label.join("-"),
                concurrency: *c,
                rate: *r,
                seq: *seq,
                deployment: None,
                experiment: x,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{GeometricRange, Sweep};

    #[test]
    fn a_geometric_range_and_length_pairs_expand_in_order() {
        let mut e = Experiment::default();
        e.workload.sweep = Some(Sweep {
            concurrency: Some(SweepValues::Geometric(GeometricRange {
                start: 1,
                end: 256,
                factor: 4,
            })),
            rate: Vec::new(),
            seq_lens: vec!["1k1k".into(), "8k1k".into()],
        });
        let p = expand(&e);
        let labels: Vec<&str> = p.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "1k1k-c1",
                "1k1k-c4",
                "1k1k-c16",
                "1k1k-c64",
                "1k1k-c256",
                "8k1k-c1",
                "8k1k-c4",
                "8k1k-c16",
                "8k1k-c64",
                "8k1k-c256"
            ]
        );
        let last = &p[9].experiment.workload;
        assert_eq!(last.concurrency, Some(256));
        assert_eq!(last.pattern, Pattern::Concurrent);
        assert!(last.sweep.is_none());
        assert!(matches!(
            last.dataset,
            Dataset::Random {
                input_len: 8192,
                output_len: 1024,
                ..
            }
        ));
    }

    #[test]
    fn no_sweep_is_one_unlabelled_point_and_rates_set_the_pattern() {
        let e = Experiment::default();
        let p = expand(&e);
        assert_eq!((p.len(), p[0].label.as_str()), (1, ""));
        let mut e = Experiment::default();
        e.workload.sweep = Some(Sweep {
            rate: vec![0.5, 2.0],
            ..Sweep::default()
        });
        let p = expand(&e);
        assert_eq!(p[1].label, "r2");
        assert_eq!(p[1].experiment.workload.pattern, Pattern::Rate);
        assert_eq!(p[1].experiment.workload.rate, Some(2.0));
    }
}
