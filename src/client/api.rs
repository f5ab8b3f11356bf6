//! The generation APIs the client speaks, behind one trait: the endpoint's path, how a prompt
//! goes into the body, how the server counts it. Chat and completions implement it; another
//! API (a server's native endpoint) is one more implementation and one more `Api` variant.
//! Their streamed events are classified by the same scan (`client::handle_event`): it looks
//! for every text key either API uses.

use bytes::Bytes;
use serde_json::{json, Value};

use crate::config::Api;

pub trait GenerationApi: Sync {
    /// The endpoint, after the base URL's path prefix.
    fn path(&self) -> &'static str;
    /// The body key the prompt goes under.
    fn prompt_key(&self) -> &'static str;
    /// A plain-text prompt as this API's prompt value.
    fn text_prompt(&self, text: &str) -> Value;
    /// A conversation (`messages` of a JSONL line) as this API's prompt value.
    fn conversation_prompt(&self, messages: &[Value]) -> Value;
    /// True when the server wraps the prompt in a chat template (tokens the prompt's own
    /// text does not account for, measured by calibration).
    fn templated(&self) -> bool;
    /// The body of a vLLM/SGLang `/tokenize` call that counts `text` as this API sends it.
    fn tokenize_body(&self, model: &str, text: &str) -> Value;

    /// The streaming request body. `prompt_json` is a serialized prompt value.
    fn body(&self, model: &str, prompt_json: &str, max_tokens: u32, ignore_eos: bool) -> Bytes {
        let model = serde_json::to_string(model).unwrap_or_else(|_| "\"\"".into());
        let key = self.prompt_key();
        let extra = if ignore_eos {
            format!(",\"ignore_eos\":true,\"min_tokens\":{max_tokens}")
        } else {
            String::new()
        };
        Bytes::from(format!(
            "{{\"model\":{model},\"{key}\":{prompt_json},\"max_tokens\":{max_tokens},\"stream\":true,\"stream_options\":{{\"include_usage\":true}}{extra}}}"
        ))
    }
}

/// `POST /v1/chat/completions`: `messages`, text in `delta.content` (or `delta.reasoning`).
pub struct Chat;

/// `POST /v1/completions`: `prompt`, text in `choices[].text`.
pub struct Completions;

impl GenerationApi for Chat {
    fn path(&self) -> &'static str {
        "/v1/chat/completions"
    }
    fn prompt_key(&self) -> &'static str {
        "messages"
    }
    fn text_prompt(&self, text: &str) -> Value {
        json!([{"role": "user", "content": text}])
    }
    fn conversation_prompt(&self, messages: &[Value]) -> Value {
        Value::Array(messages.to_vec())
    }
    fn templated(&self) -> bool {
        true
    }
    fn tokenize_body(&self, model: &str, text: &str) -> Value {
        json!({"model": model, "messages": self.text_prompt(text), "add_generation_prompt": true})
    }
}

impl GenerationApi for Completions {
    fn path(&self) -> &'static str {
        "/v1/completions"
    }
    fn prompt_key(&self) -> &'static str {
        "prompt"
    }
    fn text_prompt(&self, text: &str) -> Value {
        Value::String(text.to_string())
    }
    /// The turns' contents joined by blank lines (no template: the server adds none).
    fn conversation_prompt(&self, messages: &[Value]) -> Value {
        Value::String(
            messages
                .iter()
                .filter_map(|m| m.get("content").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n\n"),
        )
    }
    fn templated(&self) -> bool {
        false
    }
    fn tokenize_body(&self, model: &str, text: &str) -> Value {
        json!({"model": model, "prompt": text})
    }
}

/// `POST /v1/responses`: `input` (messages, as chat's), `max_output_tokens`, `store: false`
/// (vLLM keeps every stored response in memory); text in `response.output_text.delta`.
pub struct Responses;

impl GenerationApi for Responses {
    fn path(&self) -> &'static str {
        "/v1/responses"
    }
    fn prompt_key(&self) -> &'static str {
        "input"
    }
    fn text_prompt(&self, text: &str) -> Value {
        Chat.text_prompt(text)
    }
    fn conversation_prompt(&self, messages: &[Value]) -> Value {
        Chat.conversation_prompt(messages)
    }
    fn templated(&self) -> bool {
        true
    }
    fn tokenize_body(&self, model: &str, text: &str) -> Value {
        Chat.tokenize_body(model, text)
    }

    /// No `stream_options` (the usage always comes in `response.completed`); `ignore_eos`
    /// is vLLM's extension (no `min_tokens` here: with it the answer runs to the cap).
    fn body(&self, model: &str, prompt_json: &str, max_tokens: u32, ignore_eos: bool) -> Bytes {
        let model = serde_json::to_string(model).unwrap_or_else(|_| "\"\"".into());
        let extra = if ignore_eos {
            ",\"ignore_eos\":true"
        } else {
            ""
        };
        Bytes::from(format!(
            "{{\"model\":{model},\"input\":{prompt_json},\"max_output_tokens\":{max_tokens},\"stream\":true,\"store\":false{extra}}}"
        ))
    }
}

/// The implementation of an experiment's `api`.
pub fn of(api: Api) -> &'static dyn GenerationApi {
    match api {
        Api::Chat => &Chat,
        Api::Completions => &Completions,
        Api::Responses => &Responses,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_and_bodies_per_api() {
        let turns = [
            json!({"role": "system", "content": "be brief"}),
            json!({"role": "user", "content": "hi"}),
        ];
        assert_eq!(of(Api::Chat).conversation_prompt(&turns), json!(turns));
        assert_eq!(
            of(Api::Completions).conversation_prompt(&turns),
            json!("be brief\n\nhi")
        );
        assert_eq!(
            of(Api::Chat).text_prompt("x"),
            json!([{"role": "user", "content": "x"}])
        );
        let b: Value =
            serde_json::from_slice(&of(Api::Completions).body("m", "\"p\"", 4, false)).unwrap();
        assert_eq!(
            b,
            json!({"model": "m", "prompt": "p", "max_tokens": 4, "stream": true, "stream_options": {"include_usage": true}})
        );
        assert_eq!(
            of(Api::Chat).tokenize_body("m", "x")["add_generation_prompt"],
            true
        );
        assert!(of(Api::Chat).templated() && !of(Api::Completions).templated());
        let b: Value = serde_json::from_slice(&of(Api::Responses).body(
            "m",
            r#"[{"role":"user","content":"p"}]"#,
            4,
            true,
        ))
        .unwrap();
        assert_eq!(
            b,
            json!({"model": "m", "input": [{"role": "user", "content": "p"}], "max_output_tokens": 4, "stream": true, "store": false, "ignore_eos": true})
        );
    }
}
