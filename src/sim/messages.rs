//! The simulator's Anthropic Messages stream (`POST /v1/messages`), in vLLM 0.32's shape
//! (captured from the real server, and its converter run over a captured reasoning stream):
//! each event an `event: TYPE` line and a `data:` JSON with `type` first; `message_start`
//! (the prompt's usage), a block per kind of text — a `thinking` block (its deltas, then a
//! `signature_delta`) before the `text` block — each opened by `content_block_start` and
//! closed by `content_block_stop`; then `message_delta` (stop reason and usage) and
//! `message_stop`, the end: no `[DONE]`. vLLM merges tokens that detokenize together into one
//! delta; the simulator sends one per token. Errors on this route are Anthropic's shape.

use axum::body::Body;
use axum::http::HeaderValue;
use axum::response::Response;
use serde_json::{json, Value};

use super::responses::event;

/// One message's fixed parts.
pub struct Events {
    pub id: String,
    pub model_json: String,
    /// Tokens streamed as thinking before the text.
    pub reasoning_tokens: u32,
    /// The thinking block's signature (vLLM: a random UUID's 32 hex digits).
    pub signature: String,
}

/// Written as text, not built as JSON values: at a client benchmark's ceiling the simulator
/// must not be the slower side.
impl Events {
    /// `message_start`, with the prompt's tokens (and 0 output).
    pub fn opening(&self, out: &mut Vec<u8>, input_tokens: u32) {
        let data = format!(
            r#"{{"type":"message_start","message":{{"id":"{}","type":"message","role":"assistant","content":[],"model":{},"stop_reason":null,"stop_sequence":null,"usage":{{"input_tokens":{input_tokens},"output_tokens":0}}}}}}"#,
            self.id, self.model_json
        );
        event(out, "message_start", &data);
    }

    /// The block token `i` belongs to: 0 the thinking block (when there is one), then text.
    fn block(&self, i: u32) -> u32 {
        u32::from(self.reasoning_tokens > 0 && i >= self.reasoning_tokens)
    }

    /// Token `i` (`word`, plain vocabulary: nothing to escape), opening its block first when
    /// it is the block's first, closing the thinking block before the first text.
    pub fn delta(&self, out: &mut Vec<u8>, i: u32, word: &str) {
        let thinking = i < self.reasoning_tokens;
        let index = self.block(i);
        if i == self.reasoning_tokens && i > 0 {
            self.close_block(out, i - 1);
        }
        if i == 0 || i == self.reasoning_tokens {
            let block = match thinking {
                true => r#"{"type":"thinking","thinking":""}"#,
                false => r#"{"type":"text","text":""}"#,
            };
            event(
                out,
                "content_block_start",
                &format!(
                    r#"{{"type":"content_block_start","content_block":{block},"index":{index}}}"#
                ),
            );
        }
        let (kind, key) = match thinking {
            true => ("thinking_delta", "thinking"),
            false => ("text_delta", "text"),
        };
        let _ = std::io::Write::write_fmt(
            out,
            format_args!(
                "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"delta\":{{\"type\":\"{kind}\",\"{key}\":\"{word}\"}},\"index\":{index}}}\n\n"
            ),
        );
    }

    /// Closes the block of token `last`: a thinking block's signature first.
    fn close_block(&self, out: &mut Vec<u8>, last: u32) {
        let index = self.block(last);
        if last < self.reasoning_tokens {
            event(
                out,
                "content_block_delta",
                &format!(
                    r#"{{"type":"content_block_delta","delta":{{"type":"signature_delta","signature":"{}"}},"index":{index}}}"#,
                    self.signature
                ),
            );
        }
        event(
            out,
            "content_block_stop",
            &format!(r#"{{"type":"content_block_stop","index":{index}}}"#),
        );
    }

    /// After `tokens` deltas: the open block closed, `message_delta` with the stop reason
    /// (`max_tokens` when `capped`, else `end_turn`) and the usage, `message_stop`.
    pub fn closing(&self, out: &mut Vec<u8>, (tokens, capped): (u32, bool), input_tokens: u32) {
        if tokens > 0 {
            self.close_block(out, tokens - 1);
        }
        let reason = if capped { "max_tokens" } else { "end_turn" };
        event(
            out,
            "message_delta",
            &format!(
                r#"{{"type":"message_delta","delta":{{"stop_reason":"{reason}","stop_sequence":null}},"usage":{{"input_tokens":{input_tokens},"output_tokens":{tokens}}}}}"#
            ),
        );
        event(out, "message_stop", r#"{"type":"message_stop"}"#);
    }

    /// The whole answer at once (`stream: false`): its text and thinking blocks.
    pub fn whole(&self, thinking: &str, text: &str, capped: bool, usage: (u32, u32)) -> Value {
        let mut content = Vec::new();
        if self.reasoning_tokens > 0 {
            content.push(
                json!({"type": "thinking", "thinking": thinking, "signature": self.signature}),
            );
        }
        if !text.is_empty() {
            content.push(json!({"type": "text", "text": text}));
        }
        let model: Value = serde_json::from_str(&self.model_json).unwrap_or(Value::Null);
        json!({
            "id": self.id, "type": "message", "role": "assistant", "content": content,
            "model": model, "stop_reason": if capped { "max_tokens" } else { "end_turn" },
            "usage": {"input_tokens": usage.0, "output_tokens": usage.1},
        })
    }
}

/// The conversation of a Messages request as chat messages: the top-level `system` (a string
/// or text blocks) first, then `messages` (`content` a string or text blocks), as vLLM turns
/// them into a chat request. `max_tokens` is required, as in Anthropic's document.
pub fn request_messages(req: &Value) -> Result<Vec<Value>, String> {
    if req.get("max_tokens").and_then(Value::as_u64).is_none() {
        return Err("`max_tokens` is required: a positive integer".into());
    }
    let text = |v: &Value| -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Array(blocks) => Some(
                blocks
                    .iter()
                    .filter_map(|b| b.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            _ => None,
        }
    };
    let mut out = Vec::new();
    if let Some(s) = req.get("system").filter(|s| !s.is_null()) {
        let s = text(s).ok_or("`system` must be a string or a list of text blocks")?;
        out.push(json!({"role": "system", "content": s}));
    }
    let msgs = req
        .get("messages")
        .and_then(Value::as_array)
        .ok_or("`messages` is required: a list of {role, content} objects")?;
    for m in msgs {
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .filter(|r| ["user", "assistant", "system"].contains(r))
            .ok_or("every message needs a `role`: user, assistant or system")?;
        let content = m
            .get("content")
            .and_then(text)
            .ok_or("every message needs `content`: a string or a list of content blocks")?;
        out.push(json!({"role": role, "content": content}));
    }
    Ok(out)
}

/// An error answer of the other routes (`{"error": {"message", "type", …}}`) in Anthropic's
/// shape (`{"type": "error", "error": {"type", "message"}}`), as vLLM answers on this route;
/// the status and headers kept.
pub async fn anthropic_error(r: Response) -> Response {
    let (mut parts, body) = r.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let e = v.get("error").unwrap_or(&v);
    let message = e.get("message").and_then(Value::as_str).unwrap_or("error");
    let kind = e.get("type").and_then(Value::as_str).unwrap_or("api_error");
    let body = json!({"type": "error", "error": {"type": kind, "message": message}}).to_string();
    parts.headers.remove("content-length");
    parts
        .headers
        .insert("content-type", HeaderValue::from_static("application/json"));
    Response::from_parts(parts, Body::from(body))
}
