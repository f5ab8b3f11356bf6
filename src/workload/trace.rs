//! Trace replay: requests leave at the trace's timestamps (× `time_scale`), with the trace's
//! lengths. In a Mooncake trace equal `hash_ids` are equal blocks of `block_size` tokens, so
//! block *id*'s text is made from (seed, id) alone: every request that names the block sends
//! the same words, and the server's prefix cache sees the trace's reuse. A request's last block
//! is cut to the tokens left (`input_length − (blocks − 1) · block_size`), a prefix of the
//! block's full text.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::dataset::{as_prompt_json, rng_for, DatasetError, Lengths, Prompt, Source};
use crate::client;
use crate::config::{Api, TraceFormat};

/// What a trace request sends.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    /// Mooncake: prompt blocks by id.
    Blocks(Vec<u64>),
    /// The request's own prompt value (JSONL `messages` or `prompt`), serialized.
    Prompt(Arc<str>),
    /// Only a length (JSONL `input_len`): random words.
    Random,
}

/// One request of a trace.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceRequest {
    /// Send offset from the first request, already scaled.
    pub at: Duration,
    pub input_len: u32,
    pub output_len: u32,
    pub body: Body,
}

/// A whole trace, in send order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trace {
    pub requests: Vec<TraceRequest>,
}

impl Trace {
    /// The send offsets, for the executor's schedule.
    pub fn times(&self) -> Vec<Duration> {
        self.requests.iter().map(|r| r.at).collect()
    }
}

/// The seed stream of blocks (apart from every request's and session's).
const BLOCK_SEED: u64 = 0x0B10_C4ED;

/// Reads a trace, checking every line; requests are put in timestamp order (stable).
pub fn load(
    path: &Path,
    format: TraceFormat,
    time_scale: f64,
    api: Api,
    fit: Fit,
) -> Result<Trace, DatasetError> {
    let shown = path.display().to_string();
    let text = super::dataset::read_dataset(path)?;
    parse(&text, &shown, format, time_scale, api, fit)
}

/// What every line must fit in: answers without a length get `max_tokens`; prompt + answer at
/// most `context` tokens (the model's context, or the stated cap); at most as many `hash_ids`
/// as `block_size` blocks of the prompt need. A line past them is refused when the trace is
/// read, before anything starts — never a prompt of gigabytes made mid-run.
#[derive(Clone, Copy, Debug)]
pub struct Fit {
    pub max_tokens: u32,
    pub context: u32,
    pub block_size: u32,
}

impl Fit {
    fn check(&self, r: &TraceRequest) -> Result<(), String> {
        let total = u64::from(r.input_len) + u64::from(r.output_len);
        if total > u64::from(self.context) {
            return Err(format!(
                "prompt + answer = {total} tokens, more than the context of {} tokens (`model.max_model_len`, or the cap without it)",
                self.context
            ));
        }
        if let Body::Blocks(ids) = &r.body {
            let need = r.input_len.div_ceil(self.block_size.max(1)) as usize;
            if ids.len() > need {
                return Err(format!(
                    "{} `hash_ids` for a prompt of {} tokens: blocks of {} tokens need {need}",
                    ids.len(),
                    r.input_len,
                    self.block_size
                ));
            }
        }
        Ok(())
    }
}

/// [`load`] on text already read.
pub fn parse(
    text: &str,
    shown: &str,
    format: TraceFormat,
    time_scale: f64,
    api: Api,
    fit: Fit,
) -> Result<Trace, DatasetError> {
    let mut rows: Vec<(f64, TraceRequest)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| DatasetError::Line {
            path: shown.to_string(),
            line: i + 1,
            message,
        };
        let v: Value = serde_json::from_str(line).map_err(|e| bad(format!("not JSON: {e}")))?;
        let row = match format {
            TraceFormat::Mooncake => mooncake_row(&v),
            TraceFormat::Jsonl => jsonl_row(&v, api, fit.max_tokens),
        }
        .map_err(&bad)?;
        fit.check(&row.1).map_err(bad)?;
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(DatasetError::Empty {
            path: shown.to_string(),
        });
    }
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    let first = rows[0].0;
    let requests = rows
        .into_iter()
        .map(|(ms, mut r)| {
            r.at = Duration::from_secs_f64(((ms - first) * time_scale / 1e3).clamp(0.0, 1e9));
            r
        })
        .collect();
    Ok(Trace { requests })
}

fn number(v: &Value, key: &str) -> Result<f64, String> {
    v.get(key)
        .and_then(Value::as_f64)
        .filter(|x| x.is_finite() && *x >= 0.0)
        .ok_or_else(|| format!("`{key}` must be a number ≥ 0"))
}

fn count(v: &Value, key: &str) -> Result<u32, String> {
    let n = number(v, key)?;
    if n < 1.0 || n > u32::MAX as f64 {
        return Err(format!("`{key}` must be at least 1, found {n}"));
    }
    Ok(n as u32)
}

fn mooncake_row(v: &Value) -> Result<(f64, TraceRequest), String> {
    let ts = number(v, "timestamp")?;
    let ids = v
        .get("hash_ids")
        .and_then(Value::as_array)
        .ok_or("`hash_ids` must be a list of block ids")?
        .iter()
        .map(|x| x.as_u64().ok_or("`hash_ids` must hold integers ≥ 0"))
        .collect::<Result<Vec<u64>, _>>()?;
    Ok((
        ts,
        TraceRequest {
            at: Duration::ZERO,
            input_len: count(v, "input_length")?,
            output_len: count(v, "output_length")?,
            body: Body::Blocks(ids),
        },
    ))
}

fn jsonl_row(v: &Value, api: Api, max_tokens: u32) -> Result<(f64, TraceRequest), String> {
    let ts = number(v, "timestamp_ms")?;
    let output_len = match v.get("output_len") {
        Some(_) => count(v, "output_len")?,
        None => max_tokens,
    };
    let (body, input_len) = if let Some(m) = v.get("messages") {
        let arr = m
            .as_array()
            .filter(|a| !a.is_empty())
            .ok_or("`messages` must be a non-empty list")?;
        let json = client::api::of(api).conversation_prompt(arr).to_string();
        (Body::Prompt(json.into()), 0)
    } else if let Some(p) = v.get("prompt").and_then(Value::as_str) {
        (Body::Prompt(as_prompt_json(api, p).into()), 0)
    } else if v.get("input_len").is_some() {
        (Body::Random, count(v, "input_len")?)
    } else {
        return Err("expected `messages`, `prompt` or `input_len` next to `timestamp_ms`".into());
    };
    Ok((
        ts,
        TraceRequest {
            at: Duration::ZERO,
            input_len,
            output_len,
            body,
        },
    ))
}

/// A trace's prompts: request `n` is the trace's line `n` (a trace plays once).
pub struct TraceSource {
    trace: Arc<Trace>,
    block_size: u32,
    seed: u64,
    lengths: Lengths,
    /// The prefixes sent so far, for each request's ideal cache hit.
    ideal: super::ideal::IdealCache,
}

impl TraceSource {
    /// `server_block` is the server's cache block (`metrics.cache_block_size`).
    pub fn new(
        trace: Arc<Trace>,
        (block_size, server_block): (u32, u32),
        seed: u64,
        lengths: Lengths,
    ) -> Self {
        Self {
            trace,
            block_size: block_size.max(1),
            seed,
            lengths,
            ideal: super::ideal::IdealCache::new(server_block),
        }
    }

    /// The text of block `id` at `position` in its prompt, cut to `tokens`.
    fn block(&self, id: u64, position: usize, tokens: u32) -> String {
        let rng = rng_for(self.seed ^ BLOCK_SEED, id);
        block_text(&self.lengths, rng, position, self.block_size, tokens)
    }
}

/// A block's text from its own random stream: the whole block of `block_size` tokens is drawn,
/// then cut to `tokens`, so a partial block is a prefix of the full one.
pub(super) fn block_text(
    lengths: &Lengths,
    mut rng: rand_chacha::ChaCha8Rng,
    position: usize,
    block_size: u32,
    tokens: u32,
) -> String {
    let full = match position {
        0 => lengths.prompt(&mut rng, block_size),
        _ => lengths.continuation(&mut rng, block_size),
    };
    if tokens >= block_size {
        return full;
    }
    let words = full.split_whitespace().count();
    let keep = ((words as f64 * tokens as f64 / block_size as f64).round() as usize).max(1);
    full.split_whitespace()
        .take(keep)
        .collect::<Vec<_>>()
        .join(" ")
}

impl Source for TraceSource {
    fn prompt(&self, n: u64) -> Prompt {
        let Some(r) = self.trace.requests.get(n as usize) else {
            return self.trace_end();
        };
        let api = self.lengths.api;
        let mut ideal = None;
        let json: Arc<str> = match &r.body {
            Body::Prompt(p) => p.clone(),
            Body::Random => {
                let text = self.lengths.prompt(&mut rng_for(self.seed, n), r.input_len);
                as_prompt_json(api, &text).into()
            }
            Body::Blocks(ids) => {
                let bs = self.block_size;
                let (blocks, _) = super::ideal::cut(ids.iter().copied(), r.input_len, bs);
                let parts: Vec<String> = blocks
                    .iter()
                    .enumerate()
                    .map(|(k, (id, take))| self.block(*id, k, *take))
                    .collect();
                ideal = Some(self.ideal.admit(&blocks, bs));
                as_prompt_json(api, &parts.join(" ")).into()
            }
        };
        Prompt {
            json,
            max_tokens: r.output_len,
            expected_input_tokens: (r.input_len > 0).then_some(r.input_len),
            ideal_cached_tokens: ideal,
        }
    }
}

impl TraceSource {
    /// Past the trace's end (the executor never asks): a one-token prompt.
    fn trace_end(&self) -> Prompt {
        Prompt {
            json: as_prompt_json(self.lengths.api, "end").into(),
            max_tokens: 1,
            expected_input_tokens: None,
            ideal_cached_tokens: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::dataset::text_of;

    fn lengths() -> Lengths {
        Lengths::words_only(Api::Completions)
    }

    fn fit(max_tokens: u32) -> Fit {
        Fit {
            max_tokens,
            context: 4096,
            block_size: 8,
        }
    }

    #[test]
    fn lines_past_the_context_or_with_too_many_blocks_are_refused_when_read() {
        let huge = "{\"timestamp\": 0, \"input_length\": 4000000000, \"output_length\": 2, \"hash_ids\": [1]}\n";
        let e = parse(
            huge,
            "t.jsonl",
            TraceFormat::Mooncake,
            1.0,
            Api::Chat,
            fit(9),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("t.jsonl:1: prompt + answer = 4000000002 tokens"),
            "{e}"
        );
        let ids: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
        let many = format!(
            "{{\"timestamp\": 0, \"input_length\": 16, \"output_length\": 2, \"hash_ids\": [{}]}}\n",
            ids.join(",")
        );
        let e = parse(
            &many,
            "t.jsonl",
            TraceFormat::Mooncake,
            1.0,
            Api::Chat,
            fit(9),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("1000 `hash_ids` for a prompt of 16 tokens"),
            "{e}"
        );
    }

    const MOONCAKE: &str = r#"{"timestamp": 1500, "input_length": 20, "output_length": 4, "hash_ids": [0, 7, 8]}
{"timestamp": 0, "input_length": 16, "output_length": 3, "hash_ids": [0, 7]}
{"timestamp": 3000, "input_length": 10, "output_length": 5, "hash_ids": [0, 9]}
"#;

    #[test]
    fn equal_hash_ids_are_equal_blocks_and_times_are_scaled() {
        let t = Arc::new(
            parse(
                MOONCAKE,
                "t.jsonl",
                TraceFormat::Mooncake,
                2.0,
                Api::Completions,
                fit(9),
            )
            .unwrap(),
        );
        let times: Vec<f64> = t.times().iter().map(Duration::as_secs_f64).collect();
        assert_eq!(
            times,
            [0.0, 3.0, 6.0],
            "sorted, from the first, × time_scale"
        );
        let s = TraceSource::new(t, (8, 16), 5, lengths());
        let words = |n| {
            text_of(Api::Completions, &s.prompt(n).json)
                .split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>()
        };
        let (a, b, c) = (words(0), words(1), words(2));
        assert_eq!((a.len(), b.len(), c.len()), (16, 20, 10));
        assert_eq!(a[..16], b[..16], "blocks 0 and 7 are shared");
        assert_eq!(a[..8], c[..8], "block 0 is shared");
        assert_ne!(a[8..10], c[8..10], "block 9 is not block 7");
        assert_eq!(s.prompt(1).max_tokens, 4);
        assert_eq!(s.prompt(2).expected_input_tokens, Some(10));
    }

    #[test]
    fn bad_trace_lines_are_named() {
        let e = parse(
            "{\"timestamp\": 1, \"input_length\": 5, \"output_length\": 2}\n",
            "t.jsonl",
            TraceFormat::Mooncake,
            1.0,
            Api::Chat,
            fit(9),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(e, "t.jsonl:1: `hash_ids` must be a list of block ids");
        let plain = "{\"timestamp_ms\": 10, \"input_len\": 5, \"output_len\": 2}\n{\"timestamp_ms\": 20, \"prompt\": \"hi\"}\n";
        let t = parse(plain, "p.jsonl", TraceFormat::Jsonl, 1.0, Api::Chat, fit(9)).unwrap();
        assert_eq!(
            t.requests[1].output_len, 9,
            "max_tokens when the line has no output_len"
        );
        let e = parse(
            "{\"timestamp_ms\": 1}\n",
            "p.jsonl",
            TraceFormat::Jsonl,
            1.0,
            Api::Chat,
            fit(9),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("p.jsonl:1: expected `messages`, `prompt` or `input_len`"),
            "{e}"
        );
    }
}
