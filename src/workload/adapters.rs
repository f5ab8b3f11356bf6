//! A LoRA adapter mix (`model.adapters`): which adapter each unit of work goes to. A unit is a
//! request, or a whole conversation or agent session (one user talks to one fine-tune). The
//! choice is drawn from the unit's own stream of the seeded generator, so the same experiment
//! and seed send the same units to the same adapters in whatever order they run.

use rand::Rng;

use crate::config::Adapters;

/// Mixed into the seed: the adapter stream is not any prompt's stream.
const ADAPTER_SEED: u64 = 0x004C_6F52_414D_6978;

#[derive(Debug)]
pub struct AdapterMix {
    names: Vec<String>,
    /// The shares, accumulated (the last is 1).
    cumulative: Vec<f64>,
    seed: u64,
}

impl AdapterMix {
    pub fn new(a: &Adapters, seed: u64) -> Self {
        let mut total = 0.0;
        let cumulative = a
            .shares()
            .into_iter()
            .map(|s| {
                total += s;
                total
            })
            .collect();
        Self {
            names: a.all(),
            cumulative,
            seed: seed ^ ADAPTER_SEED,
        }
    }

    /// The adapter of unit `key`.
    pub fn pick(&self, key: u64) -> u16 {
        let u: f64 = super::dataset::rng_for(self.seed, key).random();
        let k = self.cumulative.partition_point(|c| *c <= u);
        k.min(self.names.len().saturating_sub(1)) as u16
    }

    /// Adapter `k`'s name (the request's `model`).
    pub fn name(&self, k: u16) -> &str {
        self.names.get(usize::from(k)).map_or("", String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AdapterDistribution;

    #[test]
    fn a_zipf_mix_sends_each_adapter_its_share_and_the_same_units_the_same_way() {
        let a = Adapters {
            count: Some(4),
            distribution: AdapterDistribution::Zipf,
            ..Adapters::default()
        };
        let m = AdapterMix::new(&a, 7);
        let n = 40_000;
        let mut counts = [0u32; 4];
        for key in 0..n {
            counts[usize::from(m.pick(key))] += 1;
        }
        let h: f64 = (1..=4).map(|k| 1.0 / k as f64).sum();
        for (k, c) in counts.iter().enumerate() {
            let p = 1.0 / (k + 1) as f64 / h;
            let sd = (n as f64 * p * (1.0 - p)).sqrt();
            assert!(
                (f64::from(*c) - n as f64 * p).abs() < 4.0 * sd,
                "{k}: {counts:?}"
            );
        }
        assert_eq!(m.name(3), "adapter-3");
        assert_eq!(
            (0..100).map(|k| m.pick(k)).collect::<Vec<_>>(),
            (0..100)
                .map(|k| AdapterMix::new(&a, 7).pick(k))
                .collect::<Vec<_>>()
        );
        let w = Adapters {
            names: vec!["a".into(), "b".into()],
            weights: vec![0.0, 1.0],
            ..Adapters::default()
        };
        let m = AdapterMix::new(&w, 1);
        assert!(
            (0..1000).all(|k| m.pick(k) == 1),
            "a weight of 0 is never drawn"
        );
    }
}
