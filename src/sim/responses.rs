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

/// One SSE event with its `event:` line (Responses and Messages streams both name theirs).
pub(super) fn event(out: &mut Vec<u8>, kind: &str, data: &str) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data.as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// `s` as a JSON string.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// The events are written as text, not built as JSON values: at a client benchmark's ceiling
/// the simulator must not be the slower side.
impl Events {
    /// The response object at `status` (`incomplete` with its reason when the answer ran to
    /// `max_output_tokens`), with its `output` and `usage` (JSON) — every key vLLM 0.32
    /// writes, in its order.
    fn response(&self, status: &str, output: &str, usage: &str) -> String {
        let incomplete = match status {
            "incomplete" => r#"{"reason":"max_output_tokens"}"#,
            _ => "null",
        };
        format!(
            concat!(
                r#"{{"id":"{}","created_at":{},"incomplete_details":{},"instructions":null,"metadata":null,"#,
                r#""model":{},"object":"response","output":{},"parallel_tool_calls":true,"temperature":1.0,"#,
                r#""tool_choice":"none","tools":[],"top_p":1.0,"background":false,"max_output_tokens":{},"#,
                r#""max_tool_calls":null,"previous_response_id":null,"prompt":null,"reasoning":null,"#,
                r#""service_tier":"auto","status":"{}","text":null,"top_logprobs":null,"truncation":"disabled","#,
                r#""usage":{},"user":null,"presence_penalty":0.0,"frequency_penalty":0.0,"#,
                r#""kv_transfer_params":null,"ec_transfer_params":null,"input_messages":null,"output_messages":null}}"#
            ),
            self.id,
            self.created,
            incomplete,
            quoted(&self.model),
            output,
            self.max_output_tokens,
            status,
            usage
        )
    }

    /// The message item; its one text part once there is `text` (JSON).
    fn message(&self, status: &str, text: Option<&str>) -> String {
        let content = match text {
            Some(t) => {
                format!(r#"[{{"annotations":[],"text":{t},"type":"output_text","logprobs":null}}]"#)
            }
            None => "[]".into(),
        };
        format!(
            r#"{{"id":"{}","content":{content},"role":"assistant","status":"{status}","type":"message","phase":null}}"#,
            self.item_id
        )
    }

    /// The usage as vLLM 0.32 writes it (its per-turn lists empty for a plain answer).
    fn usage((input, output, reasoning): (u32, u32, u32)) -> String {
        format!(
            concat!(
                r#"{{"input_tokens":{},"input_tokens_details":{{"cached_tokens":0,"cache_write_tokens":0,"input_tokens_per_turn":[],"cached_tokens_per_turn":[]}},"#,
                r#""output_tokens":{},"output_tokens_details":{{"reasoning_tokens":{},"tool_output_tokens":0,"output_tokens_per_turn":[],"tool_output_tokens_per_turn":[]}},"#,
                r#""total_tokens":{}}}"#
            ),
            input,
            output,
            reasoning,
            input + output
        )
    }

    /// `response.created`, `response.in_progress`, the message item and its text part.
    pub fn opening(&self, out: &mut Vec<u8>) {
        let r = self.response("in_progress", "[]", "null");
        for (seq, kind) in [(0, "response.created"), (1, "response.in_progress")] {
            let data = format!(r#"{{"response":{r},"sequence_number":{seq},"type":"{kind}"}}"#);
            event(out, kind, &data);
        }
        let item = self.message("in_progress", None);
        event(
            out,
            "response.output_item.added",
            &format!(
                r#"{{"item":{item},"output_index":0,"sequence_number":2,"type":"response.output_item.added"}}"#
            ),
        );
        event(
            out,
            "response.content_part.added",
            &format!(
                r#"{{"content_index":0,"item_id":"{}","output_index":0,"part":{{"annotations":[],"text":"","type":"output_text","logprobs":[]}},"sequence_number":3,"type":"response.content_part.added"}}"#,
                self.item_id
            ),
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
        let seq = OPENING + tokens;
        let (id, t) = (&self.item_id, quoted(text));
        event(
            out,
            "response.output_text.done",
            &format!(
                r#"{{"content_index":0,"item_id":"{id}","logprobs":[],"output_index":0,"sequence_number":{seq},"text":{t},"type":"response.output_text.done"}}"#
            ),
        );
        event(
            out,
            "response.content_part.done",
            &format!(
                r#"{{"content_index":0,"item_id":"{id}","output_index":0,"part":{{"annotations":[],"text":{t},"type":"output_text","logprobs":null}},"sequence_number":{},"type":"response.content_part.done"}}"#,
                seq + 1
            ),
        );
        let item = self.message("completed", Some(&t));
        event(
            out,
            "response.output_item.done",
            &format!(
                r#"{{"item":{item},"output_index":0,"sequence_number":{},"type":"response.output_item.done"}}"#,
                seq + 2
            ),
        );
        let status = if capped { "incomplete" } else { "completed" };
        let r = self.response(status, &format!("[{item}]"), &Self::usage(usage));
        event(
            out,
            "response.completed",
            &format!(
                r#"{{"response":{r},"sequence_number":{},"type":"response.completed"}}"#,
                seq + 3
            ),
        );
    }

    /// The whole answer at once (`stream: false`).
    pub fn whole(&self, text: &str, capped: bool, usage: (u32, u32, u32)) -> Value {
        let status = if capped { "incomplete" } else { "completed" };
        let item = self.message("completed", Some(&quoted(text)));
        let r = self.response(status, &format!("[{item}]"), &Self::usage(usage));
        serde_json::from_str(&r).unwrap_or(Value::Null)
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
