//! Synthetic sessions in tokens: the part of a turn an ideal prefix cache serves, and the
//! shared system prompt that makes a conversation's ideal hit rate a given share
//! (`dataset.target_hit_rate`). Validation asks it before a run (is the target reachable, does
//! the system prompt fit the context); the workload builds its sessions from it; the executor
//! counts each turn's ideal hit with [`whole_blocks`].

use super::{Count, Dataset};

/// `shared` prompt tokens as a prefix cache serves them: at most all but the prompt's last
/// token (the server computes at least one), in whole `block`s.
pub fn whole_blocks(shared: u32, input: u32, block: u32) -> u32 {
    let block = block.max(1);
    shared.min(input.saturating_sub(1)) / block * block
}

/// Synthetic sessions as `target_hit_rate` sizes them.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Turns per session; a range means each count equally likely.
    pub turns: Count,
    /// Tokens of each session's first user turn.
    pub first: u32,
    /// Tokens of each later user turn.
    pub input: u32,
    /// Tokens of each answer.
    pub output: u32,
}

impl Shape {
    /// The ideal prefix-cache hit rate of many sessions after a shared system prompt of
    /// `system` tokens: turn `k`'s prompt is the system prompt, the first turn and `k` later
    /// turns with their answers; a later turn is served the previous prompt and its answer
    /// (but the answer's last token), a first turn the system prompt.
    pub fn ideal_rate(&self, system: u32, block: u32) -> f64 {
        let (lo, hi) = self.turns.bounds();
        let step = u64::from(self.input) + u64::from(self.output);
        let (mut served, mut sent) = (0u64, 0u64);
        for t in lo.max(1)..=hi.max(1) {
            for k in 0..u64::from(t) {
                let prompt = u64::from(system) + u64::from(self.first) + k * step;
                let shared = match k {
                    0 => u64::from(system),
                    _ => prompt - u64::from(self.input) - 1,
                };
                let p = u32::try_from(prompt).unwrap_or(u32::MAX);
                let s = u32::try_from(shared).unwrap_or(u32::MAX);
                served += u64::from(whole_blocks(s, p, block));
                sent += prompt;
            }
        }
        served as f64 / sent.max(1) as f64
    }

    /// The system prompt (tokens) whose sessions' ideal rate is closest to `target`, counted in
    /// whole `block`s; `Err(least)` when even no system prompt gives more than `target` (each
    /// turn re-sends the history, so a conversation's rate has a floor).
    pub fn system_len_for(&self, target: f64, block: u32) -> Result<u32, f64> {
        let least = self.ideal_rate(0, block);
        if target < least {
            return Err(least);
        }
        // Token by token the rate rises with the system prompt: halve the interval, then
        // look around it for the whole-block count closest to the target.
        let (mut lo, mut hi) = (0u32, 1u32 << 26);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.ideal_rate(mid, 1) < target {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let b = block.max(1);
        let around = lo.saturating_sub(2 * b)..=lo.saturating_add(2 * b);
        Ok(around
            .min_by(|x, y| {
                let d = |s: u32| (self.ideal_rate(s, b) - target).abs();
                d(*x).total_cmp(&d(*y))
            })
            .unwrap_or(lo))
    }
}

impl Dataset {
    /// Synthetic sessions' shape, for a conversation dataset with `turns`, `input_len` and
    /// `output_len` (validation asks for all three when there is no `path`).
    pub fn session_shape(&self) -> Option<Shape> {
        let Dataset::Conversation {
            turns: Some(turns),
            input_len: Some(input),
            first_input_len,
            output_len: Some(output),
            path: None,
            ..
        } = self
        else {
            return None;
        };
        Some(Shape {
            turns: *turns,
            first: first_input_len.unwrap_or(*input),
            input: *input,
            output: *output,
        })
    }

    /// The shared system prompt of synthetic sessions, tokens: the one `target_hit_rate` asks
    /// for, counted in the server's `block`, else `system_prompt_len`.
    pub fn system_len(&self, block: u32) -> u32 {
        match (self, self.session_shape()) {
            (
                Dataset::Conversation {
                    target_hit_rate: Some(r),
                    ..
                },
                Some(shape),
            ) => shape.system_len_for(*r, block).unwrap_or(0),
            (
                Dataset::Conversation {
                    system_prompt_len, ..
                },
                _,
            ) => *system_prompt_len,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(turns: Count) -> Shape {
        Shape {
            turns,
            first: 200,
            input: 100,
            output: 50,
        }
    }

    #[test]
    fn the_rate_counts_each_turn_by_hand() {
        // Two turns, no system prompt: turn 0 sends 200 and is served 0; turn 1 sends
        // 200 + 150 = 350 and is served 200 + 50 − 1 = 249. 249 / 550.
        let s = shape(Count::Fixed(2));
        assert!((s.ideal_rate(0, 1) - 249.0 / 550.0).abs() < 1e-12);
        // In blocks of 16: 249 → 240.
        assert!((s.ideal_rate(0, 16) - 240.0 / 550.0).abs() < 1e-12);
        // A range counts each session length once: 1 turn (200, 0) and 2 turns.
        let r = shape(Count::Range([1, 2]));
        assert!((r.ideal_rate(0, 1) - 249.0 / 750.0).abs() < 1e-12);
    }

    #[test]
    fn a_target_sizes_the_system_prompt_and_a_low_one_is_refused_with_the_floor() {
        let s = shape(Count::Range([2, 4]));
        for target in [0.7, 0.8, 0.9] {
            for block in [1, 16, 128] {
                let sys = s.system_len_for(target, block).unwrap();
                let got = s.ideal_rate(sys, block);
                assert!(
                    (got - target).abs() < 0.02,
                    "{target} @ {block}: {sys} → {got}"
                );
            }
        }
        let least = s.ideal_rate(0, 1);
        assert_eq!(s.system_len_for(least / 2.0, 1), Err(least));
    }
}
