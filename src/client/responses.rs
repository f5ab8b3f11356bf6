//! The events of an OpenAI Responses stream (`POST /v1/responses`, `stream: true`), as vLLM
//! 0.32 sends them: one `event: TYPE` / `data: {…, "type": TYPE}` pair per event, text in
//! `response.output_text.delta` (`delta`), reasoning in `response.reasoning_text.delta`, the
//! usage in the `response` of `response.completed` (`input_tokens`, `output_tokens`,
//! `output_tokens_details.reasoning_tokens`) — the stream's last event: there is no `[DONE]`.
//!
//! Most events are recognised without decoding them, from their bytes: the `type` is the
//! object's last key (vLLM writes it last); a delta is text when `"delta":"` comes before any
//! nested object or array and its first byte is not the closing quote (a non-empty string);
//! the opening and closing events of the response and its item are nothing to count. On every
//! event that is JSON this reading is serde's (`crate::fuzz::sse` checks it); an event broken
//! inside, whose last bytes still name its type, is taken by its type rather than failing the
//! request. The end (`response.completed`), errors and anything else go to serde.

use std::borrow::Cow;

use serde::Deserialize;

/// What one Responses event is.
#[derive(Debug, PartialEq)]
pub enum Event {
    Text,
    Reasoning,
    Nothing,
    /// `response.completed` (or `response.incomplete`): the stream's end, with the usage.
    Done(Option<Usage>),
    /// `error` or `response.failed`: the server's message.
    Error(String),
    /// Not one JSON object.
    Malformed(String),
}

/// Token counts from the final response.
#[derive(Debug, PartialEq, Eq, Clone, Copy, Deserialize)]
pub struct Usage {
    pub input_tokens: Option<u32>,
    pub output_tokens: Option<u32>,
    #[serde(default, deserialize_with = "reasoning_of")]
    #[serde(rename = "output_tokens_details")]
    pub reasoning_tokens: Option<u32>,
}

fn reasoning_of<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    struct Details {
        #[serde(default)]
        reasoning_tokens: Option<u32>,
    }
    Ok(Option::<Details>::deserialize(d)?.and_then(|x| x.reasoning_tokens))
}

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    delta: Option<Cow<'a, str>>,
    /// As a `Value`: a field this reading does not use, of an unexpected type, cannot fail the
    /// event (the bytes-only reading ignores it too).
    #[serde(default)]
    response: Option<serde_json::Value>,
    /// An `error` event's message (OpenAI puts it at the top).
    #[serde(default)]
    message: Option<serde_json::Value>,
}

/// Events that carry neither text nor the end (the response's and its item's opening and
/// closing): answered from their `type` alone.
const QUIET: [&[u8]; 7] = [
    b",\"type\":\"response.created\"}",
    b",\"type\":\"response.in_progress\"}",
    b",\"type\":\"response.output_item.added\"}",
    b",\"type\":\"response.content_part.added\"}",
    b",\"type\":\"response.output_text.done\"}",
    b",\"type\":\"response.content_part.done\"}",
    b",\"type\":\"response.output_item.done\"}",
];

const TEXT: &[u8] = b",\"type\":\"response.output_text.delta\"}";
const REASONING: &[u8] = b",\"type\":\"response.reasoning_text.delta\"}";
const DELTA: &[u8] = b"\"delta\":\"";

/// The event in `data` (one SSE event's data).
pub fn classify(data: &[u8]) -> Event {
    fast(data).unwrap_or_else(|| full(data))
}

/// What the bytes alone say (when they are sure) and what serde says, for the fuzzer: where
/// the first answers, they must agree.
pub fn fast_and_full(data: &[u8]) -> (Option<Event>, Event) {
    (fast(data), full(data))
}

/// The event, decoded.
fn full(data: &[u8]) -> Event {
    let w: Wire = match serde_json::from_slice(data) {
        Ok(w) => w,
        Err(e) => return Event::Malformed(super::bad_json(&e, data)),
    };
    let nonempty = w.delta.as_deref().is_some_and(|d| !d.is_empty());
    match w.kind.as_ref() {
        "response.output_text.delta" if nonempty => Event::Text,
        "response.reasoning_text.delta" | "response.reasoning_summary_text.delta" if nonempty => {
            Event::Reasoning
        }
        "response.completed" | "response.incomplete" => Event::Done(
            w.response
                .and_then(|r| Usage::deserialize(&r["usage"]).ok()),
        ),
        "response.failed" => Event::Error(
            w.response
                .map(|r| r["error"].clone())
                .filter(|e| !e.is_null())
                .map(|e| super::error_message(&serde_json::json!({ "error": e })))
                .unwrap_or_else(|| "the response failed".into()),
        ),
        "error" => Event::Error(match w.message.as_ref().and_then(|m| m.as_str()) {
            Some(m) => m.to_string(),
            None => String::from_utf8_lossy(&data[..data.len().min(300)]).into_owned(),
        }),
        _ => Event::Nothing,
    }
}

/// A non-empty delta, or an event that is neither text nor the end, recognised from its bytes
/// alone; `None` when serde decides.
fn fast(data: &[u8]) -> Option<Event> {
    if data.first() == Some(&b'{') && QUIET.iter().any(|q| data.ends_with(q)) {
        return Some(Event::Nothing);
    }
    let kind = if data.ends_with(TEXT) {
        Event::Text
    } else if data.ends_with(REASONING) {
        Event::Reasoning
    } else {
        return None;
    };
    let at = memchr::memmem::find(data, DELTA)?;
    // Top level: nothing nested opens between the object's `{` and the key.
    if data.first() != Some(&b'{') || memchr::memchr2(b'{', b'[', &data[1..at]).is_some() {
        return None;
    }
    match data.get(at + DELTA.len()) {
        Some(b'"') | None => None,
        Some(_) => Some(kind),
    }
}

/// The text of a `response.output_text.delta` event, for a conversation's history.
pub fn text_of(data: &[u8]) -> Option<String> {
    let w: Wire = serde_json::from_slice(data).ok()?;
    (w.kind == "response.output_text.delta")
        .then(|| w.delta.map(Cow::into_owned))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_usage_and_errors_as_vllm_sends_them() {
        let text = br#"{"content_index":0,"delta":" hello","item_id":"msg_1","logprobs":[],"output_index":0,"sequence_number":5,"type":"response.output_text.delta"}"#;
        assert_eq!(fast(text), Some(Event::Text));
        assert_eq!(classify(text), Event::Text);
        assert_eq!(text_of(text).as_deref(), Some(" hello"));
        let empty = br#"{"content_index":0,"delta":"","item_id":"msg_1","logprobs":[],"output_index":0,"sequence_number":5,"type":"response.output_text.delta"}"#;
        assert_eq!(fast(empty), None);
        assert_eq!(classify(empty), Event::Nothing);
        let thought = br#"{"content_index":0,"delta":"hm","item_id":"rs_1","output_index":0,"sequence_number":3,"type":"response.reasoning_text.delta"}"#;
        assert_eq!(classify(thought), Event::Reasoning);
        // A delta key inside something nested first is not taken from the bytes.
        let nested =
            br#"{"logprobs":[{"delta":"x"}],"delta":"","type":"response.output_text.delta"}"#;
        assert_eq!(fast(nested), None);
        assert_eq!(classify(nested), Event::Nothing);
        let done = br#"{"response":{"id":"resp_1","status":"incomplete","usage":{"input_tokens":12,"input_tokens_details":{"cached_tokens":0},"output_tokens":8,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":20}},"sequence_number":9,"type":"response.completed"}"#;
        assert_eq!(
            classify(done),
            Event::Done(Some(Usage {
                input_tokens: Some(12),
                output_tokens: Some(8),
                reasoning_tokens: Some(0)
            }))
        );
        let other = br#"{"item":{"id":"msg_1"},"output_index":0,"sequence_number":1,"type":"response.output_item.added"}"#;
        assert_eq!(fast(other), Some(Event::Nothing));
        assert_eq!(full(other), Event::Nothing);
        let err = br#"{"type":"error","code":"x","message":"engine dead","param":null,"sequence_number":4}"#;
        assert_eq!(classify(err), Event::Error("engine dead".into()));
        assert!(matches!(classify(b"{not json"), Event::Malformed(m) if m.starts_with("bad JSON")));
    }
}
