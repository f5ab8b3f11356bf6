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
use crate::config::{Api, Dataset};

/// One prompt, pre-serialized for the request body.
#[derive(Clone, Debug)]
pub struct Prompt {
    /// A JSON `messages` array (chat) or a JSON string (completions).
    pub json: Arc<str>,
    pub max_tokens: u32,
    /// Prompt tokens as calibrated, when known before sending.
    pub expected_input_tokens: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Line {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{path}: no prompts (the file is empty)")]
    Empty { path: String },
}

/// Reads a JSONL file: one `{"messages": [...]}` or `{"prompt": "..."}` per line; blank lines
/// are skipped. Every line is checked; the first bad one is reported with its number.
pub fn load_jsonl(path: &Path, api: Api, max_tokens: u32) -> Result<Vec<Prompt>, DatasetError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| DatasetError::Io {
        path: shown.clone(),
        source,
    })?;
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
            match api {
                Api::Chat => msgs.to_string(),
                Api::Completions => Value::String(flatten(arr)).to_string(),
            }
        } else if let Some(p) = v.get("prompt").and_then(Value::as_str) {
            match api {
                Api::Chat => serde_json::json!([{"role": "user", "content": p}]).to_string(),
                Api::Completions => Value::String(p.to_string()).to_string(),
            }
        } else {
            return Err(bad(
                "expected `{\"messages\": [...]}` or `{\"prompt\": \"...\"}`".into(),
            ));
        };
        out.push(Prompt {
            json: json.into(),
            max_tokens: per_line_max,
            expected_input_tokens: None,
        });
    }
    if out.is_empty() {
        return Err(DatasetError::Empty { path: shown });
    }
    Ok(out)
}

fn flatten(msgs: &[Value]) -> String {
    msgs.iter()
        .filter_map(|m| m.get("content").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Words that are one token each in Llama, Qwen and GPT-style vocabularies (with a leading space).
const WORDS: &[&str] = &[
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

fn as_prompt_json(api: Api, text: &str) -> String {
    match api {
        Api::Chat => serde_json::json!([{"role": "user", "content": text}]).to_string(),
        Api::Completions => Value::String(text.to_string()).to_string(),
    }
}

async fn count_tokens(ep: &Endpoint, model: &str, api: Api, text: &str) -> Option<f64> {
    let body = match api {
        Api::Chat => {
            serde_json::json!({"model": model, "messages": [{"role": "user", "content": text}], "add_generation_prompt": true})
        }
        Api::Completions => serde_json::json!({"model": model, "prompt": text}),
    };
    let (status, bytes) = client::http_call(
        ep,
        hyper::Method::POST,
        "/tokenize",
        Some(&body),
        Duration::from_secs(30),
    )
    .await
    .ok()?;
    if status != 200 {
        return None;
    }
    serde_json::from_slice::<Value>(&bytes)
        .ok()?
        .get("count")?
        .as_f64()
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
        _ => Calibration {
            tokens_per_word: 1.0,
            overhead: 0.0,
            calibrated: false,
        },
    }
}

fn words_for(tokens: u32, cal: &Calibration) -> usize {
    (((tokens as f64 - cal.overhead) / cal.tokens_per_word).round()).max(1.0) as usize
}

/// Builds `count` prompts for a random or shared-prefix dataset (deterministic under `seed`).
pub fn synthesize(
    dataset: &Dataset,
    api: Api,
    count: usize,
    seed: u64,
    cal: &Calibration,
) -> Vec<Prompt> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let count = count.max(1);
    match dataset {
        Dataset::Random {
            input_len,
            output_len,
            range_ratio,
        } => (0..count)
            .map(|_| {
                let draw = |rng: &mut ChaCha8Rng, len: u32| -> u32 {
                    if *range_ratio <= 0.0 {
                        return len;
                    }
                    let lo = ((len as f64) * (1.0 - range_ratio)).floor().max(1.0) as u32;
                    let hi = ((len as f64) * (1.0 + range_ratio)).ceil() as u32;
                    rng.random_range(lo..=hi.max(lo))
                };
                let inp = draw(&mut rng, *input_len);
                let out = draw(&mut rng, *output_len);
                let text = words(&mut rng, words_for(inp, cal));
                Prompt {
                    json: as_prompt_json(api, &text).into(),
                    max_tokens: out,
                    expected_input_tokens: Some(inp),
                }
            })
            .collect(),
        Dataset::SharedPrefix {
            prefix_len,
            suffix_len,
            groups,
            output_len,
        } => {
            let prefixes: Vec<String> = (0..*groups)
                .map(|_| words(&mut rng, words_for(*prefix_len, cal)))
                .collect();
            let suffix_words = ((*suffix_len as f64) / cal.tokens_per_word)
                .round()
                .max(1.0) as usize;
            (0..count)
                .map(|i| {
                    let text = format!(
                        "{} {}",
                        prefixes[i % prefixes.len()],
                        words(&mut rng, suffix_words)
                    );
                    Prompt {
                        json: as_prompt_json(api, &text).into(),
                        max_tokens: *output_len,
                        expected_input_tokens: Some(prefix_len + suffix_len),
                    }
                })
                .collect()
        }
        Dataset::Jsonl { .. } => Vec::new(),
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

    #[test]
    fn random_lengths_follow_the_range_and_seed() {
        let ds = Dataset::Random {
            input_len: 100,
            output_len: 20,
            range_ratio: 0.5,
        };
        let cal = Calibration {
            tokens_per_word: 1.0,
            overhead: 0.0,
            calibrated: true,
        };
        let a = synthesize(&ds, Api::Completions, 200, 1, &cal);
        let b = synthesize(&ds, Api::Completions, 200, 1, &cal);
        assert_eq!(
            a.iter().map(|p| p.json.clone()).collect::<Vec<_>>(),
            b.iter().map(|p| p.json.clone()).collect::<Vec<_>>()
        );
        assert!(a
            .iter()
            .all(|p| (50..=150).contains(&p.expected_input_tokens.unwrap())
                && (10..=30).contains(&p.max_tokens)));
        let exact = synthesize(
            &Dataset::Random {
                input_len: 37,
                output_len: 5,
                range_ratio: 0.0,
            },
            Api::Completions,
            3,
            1,
            &cal,
        );
        let text: String = serde_json::from_str(&exact[0].json).unwrap();
        assert_eq!(text.split_whitespace().count(), 37);
    }
}
