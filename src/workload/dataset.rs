//! Prompts: JSONL chat files (checked line by line before anything is spent), random prompts of
//! controlled token length, and shared-prefix prompts.
//!
//! Random prompts are built from common English words that are single tokens in the usual BPE
//! vocabularies. Their token length is calibrated against the server's own `/tokenize` (two
//! probes give tokens per word and the chat template's overhead), so `input_len` means tokens
//! as the server counts them; without `/tokenize` one word counts as one token and the result
//! says so (`prompt_lengths`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use crate::client::{self, Endpoint};
use crate::config::Api;

/// The prompts of a workload, request by request.
pub trait Source: Send + Sync {
    /// Request `n`'s prompt (0-based over the whole point: warm-up requests first).
    fn prompt(&self, n: u64) -> Prompt;

    /// What priming the server's prefix cache sends (`workload.cache.prime`): each shared
    /// prefix once; none for a source without shared prefixes.
    fn prime(&self) -> Vec<Prompt> {
        Vec::new()
    }
}

/// The generator of request `n`: its own stream of the seeded ChaCha, so requests are
/// independent of each other and of the order they are made in.
pub fn rng_for(seed: u64, n: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(n);
    rng
}

/// The prompt text inside a prompt value (the one message of chat, the string of completions).
pub fn text_of(api: Api, json: &str) -> String {
    match api {
        Api::Completions | Api::Embeddings | Api::Rerank => {
            serde_json::from_str::<String>(json).unwrap_or_default()
        }
        Api::Chat | Api::Responses | Api::Messages => {
            serde_json::from_str::<serde_json::Value>(json)
                .ok()
                .and_then(|v| v[0]["content"].as_str().map(String::from))
                .unwrap_or_default()
        }
    }
}

/// One prompt, pre-serialized for the request body.
#[derive(Clone, Debug)]
pub struct Prompt {
    /// A JSON `messages` array (chat) or a JSON string (completions).
    pub json: Arc<str>,
    pub max_tokens: u32,
    /// Prompt tokens as calibrated, when known before sending.
    pub expected_input_tokens: Option<u32>,
    /// The prompt tokens an ideal prefix cache would serve (`workload::ideal`), for a prompt
    /// built from blocks.
    pub ideal_cached_tokens: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: crate::files::FileError,
    },
    #[error("{path}:{line}: {message}")]
    Line {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{path}: no prompts (the file is empty)")]
    Empty { path: String },
    #[error("{path}: not a tokenizer.json the `tokenizers` crate can load: {message}")]
    Tokenizer { path: String, message: String },
}

/// Reads a JSONL file: one `{"messages": [...]}` or `{"prompt": "..."}` per line; blank lines
/// are skipped. Every line is checked; the first bad one is reported with its number.
pub fn load_jsonl(path: &Path, api: Api, max_tokens: u32) -> Result<Vec<Prompt>, DatasetError> {
    let shown = path.display().to_string();
    let text = read_dataset(path)?;
    parse_jsonl(&text, &shown, api, max_tokens)
}

/// A dataset, trace or conversation file's text: a regular file of a bounded size.
pub fn read_dataset(path: &Path) -> Result<String, DatasetError> {
    let max = crate::files::MAX_DATASET_BYTES;
    crate::files::read_text(path, max, "a dataset").map_err(|source| DatasetError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// [`load_jsonl`] on text already read; `shown` names the file in errors.
pub fn parse_jsonl(
    text: &str,
    shown: &str,
    api: Api,
    max_tokens: u32,
) -> Result<Vec<Prompt>, DatasetError> {
    let shown = shown.to_string();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| DatasetError::Line {
            path: shown.clone(),
            line: i + 1,
            message,
        };
        let v: Value = serde_json::from_str(line).map_err(|e| bad(format!("not JSON: {e}")))?;
        let per_line_max = v
            .get("max_tokens")
            .and_then(Value::as_u64)
            .map(|m| m as u32)
            .unwrap_or(max_tokens);
        let json = if let Some(msgs) = v.get("messages") {
            let arr = msgs
                .as_array()
                .ok_or_else(|| bad("`messages` must be a list".into()))?;
            if arr.is_empty() {
                return Err(bad("`messages` is empty".into()));
            }
            for (j, m) in arr.iter().enumerate() {
                let role = m.get("role").and_then(Value::as_str);
                if !matches!(
                    role,
                    Some("system" | "user" | "assistant" | "tool" | "developer")
                ) {
                    return Err(bad(format!(
                        "message {j}: `role` must be system, user, assistant, tool or developer"
                    )));
                }
                if m.get("content").is_none() {
                    return Err(bad(format!("message {j}: missing `content`")));
                }
            }
            client::api::of(api).conversation_prompt(arr).to_string()
        } else if let Some(p) = v.get("prompt").and_then(Value::as_str) {
            as_prompt_json(api, p)
        } else {
            return Err(bad(
                "expected `{\"messages\": [...]}` or `{\"prompt\": \"...\"}`".into(),
            ));
        };
        out.push(Prompt {
            json: json.into(),
            max_tokens: per_line_max,
            expected_input_tokens: None,
            ideal_cached_tokens: None,
        });
    }
    if out.is_empty() {
        return Err(DatasetError::Empty { path: shown });
    }
    Ok(out)
}

/// Words that are one token each in Llama, Qwen and GPT-style vocabularies (with a leading space).
pub const WORDS: &[&str] = &[
    "time",
    "people",
    "way",
    "day",
    "man",
    "thing",
    "woman",
    "life",
    "child",
    "world",
    "school",
    "state",
    "family",
    "student",
    "group",
    "country",
    "problem",
    "hand",
    "part",
    "place",
    "case",
    "week",
    "company",
    "system",
    "program",
    "question",
    "work",
    "government",
    "number",
    "night",
    "point",
    "home",
    "water",
    "room",
    "mother",
    "area",
    "money",
    "story",
    "fact",
    "month",
    "lot",
    "right",
    "study",
    "book",
    "eye",
    "job",
    "word",
    "business",
    "issue",
    "side",
    "kind",
    "head",
    "house",
    "service",
    "friend",
    "father",
    "power",
    "hour",
    "game",
    "line",
    "end",
    "member",
    "law",
    "car",
    "city",
    "community",
    "name",
    "team",
    "minute",
    "idea",
    "kid",
    "body",
    "information",
    "back",
    "parent",
    "face",
    "others",
    "level",
    "office",
    "door",
    "health",
    "person",
    "art",
    "war",
    "history",
    "party",
    "result",
    "change",
    "morning",
    "reason",
    "research",
    "girl",
    "guy",
    "moment",
    "air",
    "teacher",
    "force",
    "education",
];

/// How prompt lengths were made: `calibrated` (server `/tokenize`) or `estimated` (1 word = 1 token).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Calibration {
    pub tokens_per_word: f64,
    /// Tokens the chat template (or BOS) adds.
    pub overhead: f64,
    pub calibrated: bool,
}

fn words(rng: &mut ChaCha8Rng, n: usize) -> String {
    let mut s = String::with_capacity(n * 7);
    for i in 0..n {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(WORDS[rng.random_range(0..WORDS.len())]);
    }
    s
}

/// The prompt value of `api` (a `messages` array for chat, a string for completions) holding
/// `text`, serialized.
pub fn as_prompt_json(api: Api, text: &str) -> String {
    client::api::of(api).text_prompt(text).to_string()
}

/// `POST /tokenize` with `body`; the answer when it is a 200 JSON document.
async fn tokenize(ep: &Endpoint, body: &Value) -> Option<Value> {
    let (status, bytes) =
        client::http_call(ep, "POST", "/tokenize", Some(body), Duration::from_secs(30))
            .await
            .ok()?;
    (status == 200)
        .then(|| serde_json::from_slice(&bytes).ok())
        .flatten()
}

async fn count_tokens(ep: &Endpoint, model: &str, api: Api, text: &str) -> Option<f64> {
    let body = client::api::of(api).tokenize_body(model, text);
    // vLLM and SGLang: `{"count": n, …}`.
    if let Some(n) = tokenize(ep, &body)
        .await
        .and_then(|v| v.get("count")?.as_f64())
    {
        return Some(n);
    }
    // llama.cpp's form: `{"content": …}` → `{"tokens": [...]}` (no chat template applied).
    let body = serde_json::json!({"content": text, "add_special": true});
    tokenize(ep, &body)
        .await?
        .get("tokens")?
        .as_array()
        .map(|t| t.len() as f64)
}

/// Measures tokens per word and the template overhead with two `/tokenize` probes.
pub async fn calibrate(ep: &Endpoint, model: &str, api: Api, seed: u64) -> Calibration {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xCA1);
    let (a, b) = (64usize, 512usize);
    let (ta, tb) = (words(&mut rng, a), words(&mut rng, b));
    match (
        count_tokens(ep, model, api, &ta).await,
        count_tokens(ep, model, api, &tb).await,
    ) {
        (Some(ca), Some(cb)) if cb > ca => {
            let per_word = (cb - ca) / (b - a) as f64;
            Calibration {
                tokens_per_word: per_word,
                overhead: ca - per_word * a as f64,
                calibrated: true,
            }
        }
        _ => Calibration::ESTIMATED,
    }
}

impl Calibration {
    /// No answer from `/tokenize`: one word, one token.
    pub const ESTIMATED: Self = Self {
        tokens_per_word: 1.0,
        overhead: 0.0,
        calibrated: false,
    };
}

/// A local `tokenizer.json` (`model.tokenizer`), for prompts of exact token length.
pub struct LocalTokenizer {
    inner: tokenizers::Tokenizer,
    path: String,
    /// What each of [`WORDS`] costs, measured once at load, when the tokenizer counts a text
    /// of space-separated words as the sum of its words (checked at load on random texts):
    /// then a prompt of exact length is picked by adding costs — no encode on the sending
    /// path. `None` for a tokenizer that merges across spaces (then: encode and correct).
    costs: Option<WordCosts>,
}

/// Tokens of each word of [`WORDS`]: first in a text, and after a space; tokens the
/// post-processor adds (BOS) to a completions prompt; and the words of each small cost, to
/// land on a length exactly.
struct WordCosts {
    first: Vec<u32>,
    inner: Vec<u32>,
    special: u32,
    /// `by_cost[k]`: words whose inner cost is `k` (k = 1, 2, 3).
    by_cost: [Vec<usize>; 4],
}

impl WordCosts {
    fn measure(tok: &tokenizers::Tokenizer) -> Option<Self> {
        let count = |t: &str, special: bool| tok.encode(t, special).ok().map(|e| e.len() as u32);
        let anchor = count("the", false)?;
        let mut first = Vec::with_capacity(WORDS.len());
        let mut inner = Vec::with_capacity(WORDS.len());
        for w in WORDS {
            first.push(count(w, false)?);
            inner.push(count(&format!("the {w}"), false)?.checked_sub(anchor)?);
        }
        let special = count("the", true)?.checked_sub(anchor)?;
        let mut by_cost: [Vec<usize>; 4] = Default::default();
        for (i, c) in inner.iter().enumerate() {
            if let Some(slot) = by_cost.get_mut(*c as usize) {
                slot.push(i);
            }
        }
        let costs = Self {
            first,
            inner,
            special,
            by_cost,
        };
        // Additive on random texts (a fixed draw): or not used at all.
        let mut rng = ChaCha8Rng::seed_from_u64(0xC057);
        for n in [1usize, 2, 7, 31, 97, 300] {
            let picks: Vec<usize> = (0..n).map(|_| rng.random_range(0..WORDS.len())).collect();
            let text: Vec<&str> = picks.iter().map(|i| WORDS[*i]).collect();
            for special in [false, true] {
                if count(&text.join(" "), special)? != costs.cost(&picks, special) {
                    return None;
                }
            }
        }
        (!costs.by_cost[1].is_empty()).then_some(costs)
    }

    fn cost(&self, picks: &[usize], special: bool) -> u32 {
        let words: u32 = picks
            .iter()
            .enumerate()
            .map(|(k, i)| {
                if k == 0 {
                    self.first[*i]
                } else {
                    self.inner[*i]
                }
            })
            .sum();
        words + if special { self.special } else { 0 }
    }

    /// Words that make exactly `target` tokens (at least one word), or `None` when the small
    /// words cannot close the gap.
    fn pick(&self, rng: &mut ChaCha8Rng, target: u32, special: bool) -> Option<String> {
        let target = target.saturating_sub(if special { self.special } else { 0 });
        let mut picks: Vec<usize> = Vec::with_capacity(target as usize + 1);
        let mut total = 0u32;
        while total < target {
            let left = target - total;
            let i = rng.random_range(0..WORDS.len());
            let c = if picks.is_empty() {
                self.first[i]
            } else {
                self.inner[i]
            };
            if c <= left && c > 0 {
                picks.push(i);
                total += c;
                continue;
            }
            // The last few tokens: a word of exactly that cost (after the first word).
            let fit = self
                .by_cost
                .get(left as usize)
                .filter(|v| !v.is_empty() && !picks.is_empty())?;
            picks.push(fit[rng.random_range(0..fit.len())]);
            total += left;
        }
        if picks.is_empty() {
            picks.push(self.by_cost[1][0]);
        }
        let mut s = String::with_capacity(picks.len() * 7);
        for (k, i) in picks.iter().enumerate() {
            if k > 0 {
                s.push(' ');
            }
            s.push_str(WORDS[*i]);
        }
        Some(s)
    }
}

impl LocalTokenizer {
    pub fn load(path: &Path) -> Result<Self, DatasetError> {
        let shown = path.display().to_string();
        let bytes =
            crate::files::read_bytes(path, crate::files::MAX_TOKENIZER_BYTES, "a tokenizer")
                .map_err(|e| DatasetError::Tokenizer {
                    path: shown.clone(),
                    message: e.to_string(),
                })?;
        let inner =
            tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| DatasetError::Tokenizer {
                path: shown.clone(),
                message: e.to_string(),
            })?;
        let costs = WordCosts::measure(&inner);
        Ok(Self {
            inner,
            path: shown,
            costs,
        })
    }

    /// Tokens of `text`; `special` adds the tokens the tokenizer's post-processor adds (BOS),
    /// as a server's completions endpoint does.
    pub fn count(&self, text: &str, special: bool) -> usize {
        self.inner
            .encode(text, special)
            .map(|e| e.len())
            .unwrap_or(0)
    }

    pub fn path(&self) -> &str {
        &self.path
    }
}

/// How prompt text is sized: a calibration against the server, and optionally the model's own
/// tokenizer, which makes every prompt's length exact.
#[derive(Clone)]
pub struct Lengths {
    pub cal: Calibration,
    pub tokenizer: Option<Arc<LocalTokenizer>>,
    pub api: Api,
}

impl Lengths {
    /// One word per token, no template overhead, no tokenizer: what a run without `/tokenize`
    /// assumes (and what tests use for countable prompts).
    pub fn words_only(api: Api) -> Self {
        Self {
            cal: Calibration {
                tokens_per_word: 1.0,
                overhead: 0.0,
                calibrated: false,
            },
            tokenizer: None,
            api,
        }
    }

    /// Text that makes a prompt of `tokens` tokens, the chat template's overhead included.
    pub fn prompt(&self, rng: &mut ChaCha8Rng, tokens: u32) -> String {
        self.text(rng, tokens, true)
    }

    /// Text of `tokens` tokens appended to another (no template overhead, no BOS).
    pub fn continuation(&self, rng: &mut ChaCha8Rng, tokens: u32) -> String {
        self.text(rng, tokens, false)
    }

    fn text(&self, rng: &mut ChaCha8Rng, tokens: u32, whole: bool) -> String {
        let overhead = if whole { self.cal.overhead } else { 0.0 };
        let estimate =
            (((tokens as f64 - overhead) / self.cal.tokens_per_word).round()).max(1.0) as usize;
        let Some(tok) = self.tokenizer.as_deref() else {
            return words(rng, estimate);
        };
        // The chat template's tokens come from the server's calibration; a completions prompt
        // is counted with the tokenizer's own special tokens, as the server counts it.
        let templated = client::api::of(self.api).templated();
        let special = whole && !templated;
        let template = if whole && templated {
            self.cal.overhead.round() as i64
        } else {
            0
        };
        let target = (tokens as i64 - template).max(1);
        // Additive counts: the words are picked to the length, nothing is encoded.
        if let Some(text) = tok
            .costs
            .as_ref()
            .and_then(|c| c.pick(rng, target as u32, special))
        {
            return text;
        }
        let pool: Vec<&str> = (0..estimate * 2 + 16)
            .map(|_| WORDS[rng.random_range(0..WORDS.len())])
            .collect();
        let mut k = estimate.min(pool.len());
        // Words are mostly one token each: a few corrections land on the exact length.
        for _ in 0..8 {
            let c = tok.count(&pool[..k].join(" "), special) as i64;
            let next = (k as i64 + target - c).clamp(1, pool.len() as i64) as usize;
            if c == target || next == k {
                break;
            }
            k = next;
        }
        pool[..k].join(" ")
    }
}

/// How random prompt lengths were made, for the result file.
pub fn describe_lengths(l: &Lengths) -> String {
    let c = &l.cal;
    let server = if c.calibrated {
        format!(
            "calibrated via /tokenize ({:.3} tokens/word, {:.1} template tokens)",
            c.tokens_per_word, c.overhead
        )
    } else {
        "estimated (no /tokenize: 1 word = 1 token)".into()
    };
    match &l.tokenizer {
        Some(t) => format!("exact with tokenizer {}; template: {server}", t.path()),
        None => server,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn jsonl_errors_name_the_line() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            f,
            "{{\"messages\": [{{\"role\": \"user\", \"content\": \"hi\"}}]}}"
        )
        .unwrap();
        writeln!(f).unwrap();
        writeln!(
            f,
            "{{\"messages\": [{{\"role\": \"robot\", \"content\": \"hi\"}}]}}"
        )
        .unwrap();
        let e = load_jsonl(f.path(), Api::Chat, 10).unwrap_err().to_string();
        assert!(
            e.ends_with(":3: message 0: `role` must be system, user, assistant, tool or developer"),
            "{e}"
        );
        let mut g = tempfile::NamedTempFile::new().unwrap();
        writeln!(g, "{{\"prompt\": \"a\"}}\n{{broken").unwrap();
        assert!(load_jsonl(g.path(), Api::Chat, 10)
            .unwrap_err()
            .to_string()
            .contains(":2: not JSON"));
    }

    #[test]
    fn shipped_prompt_files_load_for_both_apis() {
        for f in ["prompts/chat-short.jsonl", "prompts/chat-long.jsonl"] {
            let chat = load_jsonl(Path::new(f), Api::Chat, 64).unwrap();
            let comp = load_jsonl(Path::new(f), Api::Completions, 64).unwrap();
            assert_eq!(chat.len(), comp.len());
            assert!(serde_json::from_str::<Vec<Value>>(&chat[0].json).is_ok());
            assert!(serde_json::from_str::<String>(&comp[0].json).is_ok());
        }
    }
}
