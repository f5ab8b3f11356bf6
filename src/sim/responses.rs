//! The simulator's OpenAI Responses stream (`POST /v1/responses`), in vLLM 0.32's shape: each
//! event an `event: TYPE` line and a `data:` JSON whose keys come in the order vLLM's pydantic
//! models write them (captured from the real server), `sequence_number` counting every event;
//! no `[DONE]` — the stream ends after `response.completed`, which carries the usage (and
//! says `incomplete` when the answer ran to `max_output_tokens`). vLLM merges tokens that
//! detokenize together into one delta; the simulator sends one per token.

use serde_json::{json, Value};

/// One response's fixed parts.
pub struct Events {
    pub id: String,
    pub item_id: String,
    pub created: u64,
    pub model: String,
    pub max_output_tokens: u32,
}

/// Events before the first delta (`response.created` … `response.content_part.added`).
pub const OPENING: u32 = 4;

fn event(out: &mut Vec<u8>, kind: &str, data: &Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}

impl Events {
    /// The response object at `status` (`incomplete` with its reason when the answer ran to
    /// `max_output_tokens`), with its `output` and `usage` when known — every key vLLM 0.32
    /// writes, in its order.
    fn response(&self, status: &str, output: Value, usage: Value) -> Value {
        let incomplete = match status {
            "incomplete" => json!({"reason": "max_output_tokens"}),
            _ => Value::Null,
        };
        json!({
            "id": self.id, "created_at": self.created, "incomplete_details": incomplete,
            "instructions": null, "metadata": null, "model": self.model, "object": "response",
            "output": output, "parallel_tool_calls": true, "temperature": 1.0,
            "tool_choice": "none", "tools": [], "top_p": 1.0, "background": false,
            "max_output_tokens": self.max_output_tokens, "max_tool_calls": null,
            "previous_response_id": null, "prompt": null, "reasoning": null,
            "service_tier": "auto", "status": status, "text": null, "top_logprobs": null,
            "truncation": "disabled", "usage": usage, "user": null, "presence_penalty": 0.0,
            "frequency_penalty": 0.0, "kv_transfer_params": null, "ec_transfer_params": null,
            "input_messages": null, "output_messages": null,
        })
    }

    fn message(&self, status: &str, text: Option<&str>) -> Value {
        let content = match text {
            Some(t) => {
                json!([{"annotations": [], "text": t, "type": "output_text", "logprobs": null}])
            }
            None => json!([]),
        };
        json!({"id": self.item_id, "content": content, "role": "assistant", "status": status, "type": "message", "phase": null})
    }

    /// The usage as vLLM 0.32 writes it (its per-turn lists empty for a plain answer).
    fn usage((input, output, reasoning): (u32, u32, u32)) -> Value {
        json!({
            "input_tokens": input,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0, "input_tokens_per_turn": [], "cached_tokens_per_turn": []},
            "output_tokens": output,
            "output_tokens_details": {"reasoning_tokens": reasoning, "tool_output_tokens": 0, "output_tokens_per_turn": [], "tool_output_tokens_per_turn": []},
            "total_tokens": input + output,
        })
    }

    /// `response.created`, `response.in_progress`, the message item and its text part.
    pub fn opening(&self, out: &mut Vec<u8>) {
        let r = self.response("in_progress", json!([]), Value::Null);
        event(
            out,
            "response.created",
            &json!({"response": r, "sequence_number": 0, "type": "response.created"}),
        );
        event(
            out,
            "response.in_progress",
            &json!({"response": r, "sequence_number": 1, "type": "response.in_progress"}),
        );
        event(
            out,
            "response.output_item.added",
            &json!({"item": self.message("in_progress", None), "output_index": 0, "sequence_number": 2, "type": "response.output_item.added"}),
        );
        event(
            out,
            "response.content_part.added",
            &json!({"content_index": 0, "item_id": self.item_id, "output_index": 0, "part": {"annotations": [], "text": "", "type": "output_text", "logprobs": []}, "sequence_number": 3, "type": "response.content_part.added"}),
        );
    }

    /// Delta `i` (of the answer's tokens): text, or reasoning before the text. Written as
    /// bytes (the words are plain vocabulary, nothing to escape): the simulator must not be
    /// the slower side of a client benchmark.
    pub fn delta(&self, out: &mut Vec<u8>, i: u32, word: &str, reasoning: bool) {
        let kind = match reasoning {
            true => "response.reasoning_text.delta",
            false => "response.output_text.delta",
        };
        let _ = std::io::Write::write_fmt(
            out,
            format_args!(
                "event: {kind}\ndata: {{\"content_index\":0,\"delta\":\"{word}\",\"item_id\":\"{}\",\"logprobs\":[],\"output_index\":0,\"sequence_number\":{},\"type\":\"{kind}\"}}\n\n",
                self.item_id,
                OPENING + i
            ),
        );
    }

    /// The closing events after `tokens` deltas of `text`, and `response.completed` with the
    /// usage; `capped` when the answer ran to `max_output_tokens` (status `incomplete`).
    pub fn closing(
        &self,
        out: &mut Vec<u8>,
        (tokens, capped): (u32, bool),
        text: &str,
        usage: (u32, u32, u32),
    ) {
        let mut seq = OPENING + tokens;
        let mut next = || {
            seq += 1;
            seq - 1
        };
        event(
            out,
            "response.output_text.done",
            &json!({"content_index": 0, "item_id": self.item_id, "logprobs": [], "output_index": 0, "sequence_number": next(), "text": text, "type": "response.output_text.done"}),
        );
        event(
            out,
            "response.content_part.done",
            &json!({"content_index": 0, "item_id": self.item_id, "output_index": 0, "part": {"annotations": [], "text": text, "type": "output_text", "logprobs": null}, "sequence_number": next(), "type": "response.content_part.done"}),
        );
        let item = self.message("completed", Some(text));
        event(
            out,
            "response.output_item.done",
            &json!({"item": item, "output_index": 0, "sequence_number": next(), "type": "response.output_item.done"}),
        );
        let status = if capped { "incomplete" } else { "completed" };
        let r = self.response(status, json!([item]), Self::usage(usage));
        event(
            out,
            "response.completed",
            &json!({"response": r, "sequence_number": next(), "type": "response.completed"}),
        );
    }

    /// The whole answer at once (`stream: false`).
    pub fn whole(&self, text: &str, capped: bool, usage: (u32, u32, u32)) -> Value {
        let status = if capped { "incomplete" } else { "completed" };
        self.response(
            status,
            json!([self.message("completed", Some(text))]),
            Self::usage(usage),
        )
    }
}

/// The messages of a Responses `input`: a string is one user message; a list holds messages
/// (`role`, `content` a string or `input_text` / `output_text` parts), as `{role, content}`.
pub fn input_messages(req: &Value) -> Result<Vec<Value>, String> {
    match req.get("input") {
        Some(Value::String(s)) => Ok(vec![json!({"role": "user", "content": s})]),
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|m| {
                let role = m.get("role").and_then(Value::as_str).ok_or(
                    "every `input` item needs a `role` (only messages are supported by the simulator)",
                )?;
                let content = match m.get("content") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(parts)) => parts
                        .iter()
                        .filter_map(|p| p.get("text").and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join(" "),
                    _ => return Err("an `input` message needs `content`".to_string()),
                };
                Ok(json!({"role": role, "content": content}))
            })
            .collect(),
        _ => Err("`input` is required: a string or a non-empty list of messages".into()),
    }
}
