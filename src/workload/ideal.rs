//! The ideal prefix-cache hit of a workload built from blocks (a Mooncake trace, agent traces):
//! for each request, in the order requests are sent, the prompt tokens it shares as a prefix
//! with any prompt sent before it — what an infinite cache that never evicts would serve —
//! counted in whole server blocks, as vLLM counts `prefix_cache_hits`. Beside the server's
//! measured rate it says whether a lower figure is the cache's size (or the router), not the
//! workload.
//!
//! A prompt is a list of blocks `(id, tokens)`; equal ids are equal text, and a block cut
//! short is a prefix of the whole one. Prefixes are keyed by a chain hash of their ids, so the
//! ledger holds one entry per distinct prefix: bounded by the corpus (or, with a per-session
//! ledger, by the session).

use std::collections::HashMap;
use std::sync::Mutex;

/// The prefixes sent so far and how many tokens of each one's last block were sent.
#[derive(Debug)]
pub struct IdealCache {
    /// The server's cache block, tokens.
    block: u32,
    seen: Mutex<HashMap<u64, u32>>,
}

/// A prompt of `input_len` tokens over `ids`, as `(id, tokens)` blocks of `block` tokens (the
/// last cut short), and the tokens past the ids (a prompt longer than its blocks).
pub fn cut(
    ids: impl IntoIterator<Item = u64>,
    input_len: u32,
    block: u32,
) -> (Vec<(u64, u32)>, u32) {
    let mut left = input_len;
    let mut blocks = Vec::new();
    for id in ids {
        if left == 0 {
            break;
        }
        let take = left.min(block.max(1));
        blocks.push((id, take));
        left -= take;
    }
    (blocks, left)
}

/// The chain hash of a prefix: the previous prefix's key and the next block's id.
fn chain(prev: u64, id: u64) -> u64 {
    // FNV-1a over the 16 bytes, then a finaliser: stable across runs and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in prev.to_le_bytes().into_iter().chain(id.to_le_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    h ^ (h >> 29)
}

impl IdealCache {
    pub fn new(server_block: u32) -> Self {
        Self {
            block: server_block.max(1),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Records a prompt of `blocks` (each `(id, tokens)`, the trace's block size `full` each
    /// but the last) and returns the tokens an ideal cache would have served it: the prefix
    /// shared with earlier prompts, at most all but the last token (the server computes at
    /// least one), rounded down to whole server blocks.
    pub fn admit(&self, blocks: &[(u64, u32)], full: u32) -> u32 {
        let input: u32 = blocks.iter().map(|(_, t)| *t).sum();
        let Ok(mut seen) = self.seen.lock() else {
            return 0;
        };
        let mut shared = 0u32;
        let mut open = true;
        let mut key = 0u64;
        for &(id, tokens) in blocks {
            key = chain(key, id);
            let before = seen.get(&key).copied();
            if open {
                match before {
                    Some(t) => {
                        shared += t.min(tokens);
                        open = t >= full && tokens >= full;
                    }
                    None => open = false,
                }
            }
            let e = seen.entry(key).or_insert(0);
            *e = (*e).max(tokens);
        }
        let usable = shared.min(input.saturating_sub(1));
        usable / self.block * self.block
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prompt_is_served_the_prefix_earlier_prompts_sent_in_whole_server_blocks() {
        let c = IdealCache::new(16);
        // Blocks of 64: nothing was sent before the first prompt.
        assert_eq!(c.admit(&[(1, 64), (2, 64), (3, 30)], 64), 0);
        // The same two first blocks, then another: 128 shared.
        assert_eq!(c.admit(&[(1, 64), (2, 64), (9, 64)], 64), 128);
        // Block 3 was sent with 30 tokens: 30 of its 64 are shared, 158 → 144 in blocks of 16.
        assert_eq!(c.admit(&[(1, 64), (2, 64), (3, 64)], 64), 144);
        // A prompt sent twice: all but its last token, in whole blocks.
        assert_eq!(c.admit(&[(5, 40)], 64), 0);
        assert_eq!(c.admit(&[(5, 40)], 64), 32);
        // An equal id after a different prefix is another block (ids are chained).
        assert_eq!(c.admit(&[(7, 64), (2, 64)], 64), 0);
    }
}
