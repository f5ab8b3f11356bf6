//! The events of an Anthropic Messages stream (`POST /v1/messages`, `stream: true`), as vLLM
//! 0.32 sends them: one `event: TYPE` / `data: {"type":TYPE,…}` pair per event —
//! `message_start` (the usage so far: `input_tokens`), `content_block_start`, one
//! `content_block_delta` per piece of text (`text_delta`, reasoning as `thinking_delta`, a
//! thinking block's closing `signature_delta`), `content_block_stop`, `message_delta` (the
//! stop reason and the usage: `output_tokens`), and `message_stop`, the stream's end: there is
//! no `[DONE]`. The prompt's tokens are `input_tokens` plus the cache's read and written ones
//! where the server reports them (Anthropic's definition; vLLM 0.32 subtracts them from
//! `input_tokens` when `--enable-prompt-tokens-details` is on).
//!
//! The deltas and the quiet events are recognised without decoding them, from their bytes:
//! `type` is the object's first key (vLLM writes it first) and a delta's own `type` the first
//! key of `delta`, so a prefix names them; a delta is text when its string is not empty. On
//! every event that is JSON this reading is serde's (`crate::fuzz::sse` checks it). The usage,
//! the end, errors and anything else go to serde.

use serde::Deserialize;
use serde_json::Value;

/// What one Messages event is.
#[derive(Debug, PartialEq)]
pub enum Event {
    Text,
    Reasoning,
    Nothing,
    /// `message_start`: the prompt's usage (its `output_tokens` is 0, before any).
    Started(Usage),
    /// `message_delta`: the usage at the end.
    Usage(Usage),
    /// `message_stop`: the stream's end.
    Done,
    /// `error`: the server's message.
    Error(String),
    /// Not one JSON object.
    Malformed(String),
}

/// Token counts, as far as the event knows them.
#[derive(Debug, PartialEq, Eq, Clone, Copy, Default, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub input_tokens: Option<u32>,
    #[serde(default)]
    pub output_tokens: Option<u32>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u32>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u32>,
}

impl Usage {
    /// The prompt's tokens: input plus the cache's read and written ones.
    pub fn prompt_tokens(&self) -> Option<u32> {
        let cached = self.cache_read_input_tokens.unwrap_or(0);
        let written = self.cache_creation_input_tokens.unwrap_or(0);
        self.input_tokens
            .map(|i| i.saturating_add(cached).saturating_add(written))
    }
}

const TEXT: &[u8] = br#"{"type":"content_block_delta","delta":{"type":"text_delta","text":""#;
const THINKING: &[u8] =
    br#"{"type":"content_block_delta","delta":{"type":"thinking_delta","thinking":""#;

/// Events that carry neither text, usage nor the end, answered from their first bytes.
const QUIET: [&[u8]; 4] = [
    br#"{"type":"content_block_start","#,
    br#"{"type":"content_block_stop","#,
    br#"{"type":"content_block_delta","delta":{"type":"signature_delta","#,
    br#"{"type":"ping""#,
];

/// The event in `data` (one SSE event's data).
pub fn classify(data: &[u8]) -> Event {
    fast(data).unwrap_or_else(|| full(data))
}

/// What the bytes alone say (when they are sure) and what serde says, for the fuzzer: where
/// the first answers, they must agree.
pub fn fast_and_full(data: &[u8]) -> (Option<Event>, Event) {
    (fast(data), full(data))
}

/// A non-empty text or thinking delta, or a quiet event, recognised from its bytes alone;
/// `None` when serde decides.
fn fast(data: &[u8]) -> Option<Event> {
    let (kind, after) = if data.starts_with(TEXT) {
        (Event::Text, TEXT.len())
    } else if data.starts_with(THINKING) {
        (Event::Reasoning, THINKING.len())
    } else if QUIET.iter().any(|q| data.starts_with(q)) && data.ends_with(b"}") {
        return Some(Event::Nothing);
    } else {
        return None;
    };
    match data.get(after) {
        Some(b'"') | None => None,
        Some(_) => Some(kind),
    }
}

/// The event, decoded. Through `serde_json::Value`, so a field of an unexpected type that
/// this reading does not use cannot fail the event (what the bytes-only reading also ignores);
/// only the events that are not deltas come here.
fn full(data: &[u8]) -> Event {
    let v: Value = match serde_json::from_slice(data) {
        Ok(v) => v,
        Err(e) => return Event::Malformed(super::bad_json(&e, data)),
    };
    let usage = |u: &Value| Usage::deserialize(u).ok();
    match v["type"].as_str() {
        Some("content_block_delta") => {
            let d = &v["delta"];
            let nonempty = |k: &str| d[k].as_str().is_some_and(|s| !s.is_empty());
            match d["type"].as_str() {
                Some("text_delta") if nonempty("text") => Event::Text,
                Some("thinking_delta") if nonempty("thinking") => Event::Reasoning,
                _ => Event::Nothing,
            }
        }
        Some("message_start") => {
            usage(&v["message"]["usage"]).map_or(Event::Nothing, Event::Started)
        }
        Some("message_delta") => usage(&v["usage"]).map_or(Event::Nothing, Event::Usage),
        Some("message_stop") => Event::Done,
        Some("error") => Event::Error(super::error_message(&v)),
        _ => Event::Nothing,
    }
}

/// The text of a `text_delta` event, for a conversation's history.
pub fn text_of(data: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(data).ok()?;
    let d = &v["delta"];
    (v["type"] == "content_block_delta" && d["type"] == "text_delta")
        .then(|| d["text"].as_str().map(String::from))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_usage_and_errors_as_vllm_sends_them() {
        let text = br#"{"type":"content_block_delta","delta":{"type":"text_delta","text":" urlencoded"},"index":0}"#;
        assert_eq!(fast(text), Some(Event::Text));
        assert_eq!(full(text), Event::Text);
        assert_eq!(text_of(text).as_deref(), Some(" urlencoded"));
        let empty =
            br#"{"type":"content_block_delta","delta":{"type":"text_delta","text":""},"index":0}"#;
        assert_eq!(fast(empty), None);
        assert_eq!(classify(empty), Event::Nothing);
        let thought = br#"{"type":"content_block_delta","delta":{"type":"thinking_delta","thinking":" push"},"index":0}"#;
        assert_eq!(fast(thought), Some(Event::Reasoning));
        assert_eq!(full(thought), Event::Reasoning);
        assert_eq!(text_of(thought), None);
        let signature = br#"{"type":"content_block_delta","delta":{"type":"signature_delta","signature":"c697"},"index":0}"#;
        assert_eq!(fast(signature), Some(Event::Nothing));
        assert_eq!(full(signature), Event::Nothing);
        let start = br#"{"type":"message_start","message":{"id":"chatcmpl-1","type":"message","role":"assistant","content":[],"model":"tiny","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":14,"output_tokens":0}}}"#;
        assert_eq!(fast(start), None);
        let Event::Started(u) = classify(start) else {
            panic!("message_start carries the usage")
        };
        assert_eq!((u.prompt_tokens(), u.output_tokens), (Some(14), Some(0)));
        let delta = br#"{"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},"usage":{"input_tokens":4,"output_tokens":3,"cache_read_input_tokens":8,"cache_creation_input_tokens":2}}"#;
        let Event::Usage(u) = classify(delta) else {
            panic!("message_delta carries the usage")
        };
        assert_eq!((u.prompt_tokens(), u.output_tokens), (Some(14), Some(3)));
        assert_eq!(classify(br#"{"type":"message_stop"}"#), Event::Done);
        for quiet in [
            &br#"{"type":"content_block_start","content_block":{"type":"text","text":""},"index":0}"#[..],
            br#"{"type":"content_block_stop","index":0}"#,
            br#"{"type":"ping"}"#,
        ] {
            assert_eq!(fast(quiet), Some(Event::Nothing));
            assert_eq!(full(quiet), Event::Nothing);
        }
        let err = br#"{"type":"error","error":{"type":"internal_error","message":"engine dead"}}"#;
        assert!(matches!(classify(err), Event::Error(m) if m.contains("engine dead")));
        assert!(matches!(classify(b"{not json"), Event::Malformed(m) if m.starts_with("bad JSON")));
    }
}
