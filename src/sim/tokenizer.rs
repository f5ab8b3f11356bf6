//! The simulator's tiny word-level tokenizer: one token per whitespace-separated word. It is
//! shared by `/tokenize`, usage accounting and text generation, so every count agrees.

use serde_json::Value;

/// Words the simulator generates (deterministic text, seeded).
pub const VOCAB: &[&str] = &[
    "the",
    "model",
    "server",
    "token",
    "cache",
    "batch",
    "latency",
    "request",
    "stream",
    "prompt",
    "answer",
    "quickly",
    "and",
    "of",
    "to",
    "a",
    "in",
    "is",
    "that",
    "it",
    "for",
    "on",
    "with",
    "as",
    "this",
    "by",
    "from",
    "at",
    "which",
    "be",
    "are",
    "or",
    "an",
    "was",
    "but",
    "not",
    "data",
    "time",
    "first",
    "each",
    "more",
    "when",
    "then",
    "than",
    "GPU",
    "memory",
    "decode",
    "prefill",
    "queue",
    "throughput",
    "kernel",
    "layer",
    "attention",
    "weights",
    "block",
    "page",
    "scheduler",
    "engine",
    "output",
    "input",
    "length",
    "step",
    "rate",
    "load",
];

/// Extra tokens a chat template adds per message (role header and separators).
pub const CHAT_TOKENS_PER_MESSAGE: u32 = 4;
/// Tokens of the generation prompt (`<|assistant|>` and friends).
pub const CHAT_GENERATION_PROMPT_TOKENS: u32 = 2;

pub fn count(text: &str) -> u32 {
    text.split_whitespace().count() as u32
}

/// Token ids of `text`: vocabulary words map to their index, others to a stable hash ≥ 1000.
pub fn encode(text: &str) -> Vec<u32> {
    text.split_whitespace().map(word_id).collect()
}

fn word_id(w: &str) -> u32 {
    match VOCAB.iter().position(|v| *v == w) {
        Some(i) => i as u32,
        None => 1000 + (fnv1a(w.as_bytes()) % 100_000) as u32,
    }
}

/// Text of token ids (ids outside the vocabulary come back as `<id>`).
pub fn decode(ids: &[u32]) -> String {
    let words: Vec<String> = ids
        .iter()
        .map(|&i| match VOCAB.get(i as usize) {
            Some(w) => (*w).to_string(),
            None => format!("<{i}>"),
        })
        .collect();
    words.join(" ")
}

/// Prompt tokens of a chat request: every message's words plus the template's overhead.
pub fn count_messages(messages: &[Value]) -> u32 {
    let mut n = CHAT_GENERATION_PROMPT_TOKENS;
    for m in messages {
        n += CHAT_TOKENS_PER_MESSAGE;
        match m.get("content") {
            Some(Value::String(s)) => n += count(s),
            Some(Value::Array(parts)) => {
                for p in parts {
                    if let Some(t) = p.get("text").and_then(Value::as_str) {
                        n += count(t);
                    }
                }
            }
            _ => {}
        }
    }
    n
}

/// The words of a chat prompt in order (for prefix-cache block hashes).
pub fn message_words(messages: &[Value]) -> Vec<&str> {
    let mut out = Vec::new();
    for m in messages {
        out.push(m.get("role").and_then(Value::as_str).unwrap_or("user"));
        if let Some(Value::String(s)) = m.get("content") {
            out.extend(s.split_whitespace());
        }
    }
    out
}

pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Hashes of each full `block_size` block of the prompt, chained so a block's hash depends on
/// everything before it (as vLLM's prefix cache keys blocks).
pub fn block_hashes<'a>(words: impl Iterator<Item = &'a str>, block_size: usize) -> Vec<u64> {
    chain_over(words, block_size).0
}

/// [`block_hashes`], and the chain where the words end: what follows them (the answer) goes on
/// hashing from there.
pub fn chain_over<'a>(
    words: impl Iterator<Item = &'a str>,
    block_size: usize,
) -> (Vec<u64>, BlockChain) {
    let mut chain = BlockChain::new(block_size);
    let hashes = words.filter_map(|w| chain.push(w)).collect();
    (hashes, chain)
}

/// The chained block hash as words are added, one hash each time a block fills.
#[derive(Clone, Copy, Debug)]
pub struct BlockChain {
    h: u64,
    n: usize,
    block: usize,
}

impl BlockChain {
    pub fn new(block: usize) -> Self {
        Self {
            h: 0xcbf2_9ce4_8422_2325,
            n: 0,
            block: block.max(1),
        }
    }

    /// Adds a word; the hash of the block it completes, if it does.
    pub fn push(&mut self, w: &str) -> Option<u64> {
        for b in w.as_bytes().iter().chain(b" ") {
            self.h ^= *b as u64;
            self.h = self.h.wrapping_mul(0x0100_0000_01b3);
        }
        self.n += 1;
        self.n.is_multiple_of(self.block).then_some(self.h)
    }
}

/// Answer token `i`'s word for a request whose answers are seeded by `seed`.
pub fn answer_word(seed: u64, i: u32) -> &'static str {
    let mut x = seed.wrapping_add((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    VOCAB[(x % VOCAB.len() as u64) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_agree_with_encoding() {
        let t = "the quick  brown\nfox";
        assert_eq!(count(t), 4);
        assert_eq!(encode(t).len(), 4);
        assert_eq!(decode(&encode("the model")), "the model");
    }

    #[test]
    fn block_hashes_share_prefixes() {
        let a = block_hashes("a b c d e f".split(' '), 2);
        let b = block_hashes("a b c d x y".split(' '), 2);
        assert_eq!(a.len(), 3);
        assert_eq!(a[..2], b[..2]);
        assert_ne!(a[2], b[2]);
    }
}
