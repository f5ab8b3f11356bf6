//! The generation APIs the client speaks, behind one trait: the endpoint's path, how a prompt
//! goes into the body, how the server counts it. Chat, completions, Responses and Messages
//! implement it (the defaults are the message-speaking APIs'); another API is one more
//! implementation and one more `Api` variant. Chat and completions events are classified by
//! one scan (`client::handle_event`); Responses and Messages have readers of their own
//! (`client::responses`, `client::messages`).

use bytes::Bytes;
use serde_json::{json, Value};

use crate::config::Api;

pub trait GenerationApi: Sync {
    /// The endpoint, after the base URL's path prefix.
    fn path(&self) -> &'static str;
    /// The body key the prompt goes under.
    fn prompt_key(&self) -> &'static str;
    /// True for the APIs that take plain text with no chat template (completions, the pooling
    /// APIs); the others speak in messages.
    fn plain(&self) -> bool {
        false
    }
    /// A plain-text prompt as this API's prompt value: the text itself, or one user message.
    fn text_prompt(&self, text: &str) -> Value {
        match self.plain() {
            true => Value::String(text.to_string()),
            false => json!([{"role": "user", "content": text}]),
        }
    }
    /// A conversation (`messages` of a JSONL line) as this API's prompt value: as given, or
    /// its turns' contents joined by blank lines (no template: the server adds none).
    fn conversation_prompt(&self, messages: &[Value]) -> Value {
        match self.plain() {
            true => Value::String(
                messages
                    .iter()
                    .filter_map(|m| m.get("content").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join("\n\n"),
            ),
            false => Value::Array(messages.to_vec()),
        }
    }
    /// True when the server wraps the prompt in a chat template (tokens the prompt's own
    /// text does not account for, measured by calibration).
    fn templated(&self) -> bool {
        !self.plain()
    }
    /// The body of a vLLM/SGLang `/tokenize` call that counts `text` as this API sends it.
    fn tokenize_body(&self, model: &str, text: &str) -> Value {
        match self.plain() {
            true => json!({"model": model, "prompt": text}),
            false => {
                json!({"model": model, "messages": self.text_prompt(text), "add_generation_prompt": true})
            }
        }
    }
    /// Request headers this API's document asks for beyond the common ones, each line ending
    /// in CRLF.
    fn headers(&self) -> &'static str {
        ""
    }

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
}

impl GenerationApi for Completions {
    fn path(&self) -> &'static str {
        "/v1/completions"
    }
    fn prompt_key(&self) -> &'static str {
        "prompt"
    }
    fn plain(&self) -> bool {
        true
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

/// `POST /v1/messages` (Anthropic): `messages` as chat's with the system prompt lifted into
/// the top-level `system`, `max_tokens`, the `anthropic-version` header; text in
/// `content_block_delta` events. The API has no `ignore_eos` or `min_tokens` (vLLM 0.32 drops
/// fields it does not know): `validate` refuses `ignore_eos` with it. The key goes as
/// `Authorization: Bearer` — vLLM 0.32 refuses Anthropic's `x-api-key` (seen: 401).
pub struct Messages;

impl GenerationApi for Messages {
    fn path(&self) -> &'static str {
        "/v1/messages"
    }
    fn prompt_key(&self) -> &'static str {
        "messages"
    }
    /// The version of Anthropic's API the requests follow.
    fn headers(&self) -> &'static str {
        "anthropic-version: 2023-06-01\r\n"
    }

    /// `stream: true` and nothing else: the usage always comes (`message_start`,
    /// `message_delta`).
    fn body(&self, model: &str, prompt_json: &str, max_tokens: u32, _ignore_eos: bool) -> Bytes {
        let model = serde_json::to_string(model).unwrap_or_else(|_| "\"\"".into());
        let (system, messages) = lift_system(prompt_json);
        let system = match system {
            Some(s) => format!(
                ",\"system\":{}",
                serde_json::to_string(&s).unwrap_or_default()
            ),
            None => String::new(),
        };
        Bytes::from(format!(
            "{{\"model\":{model}{system},\"messages\":{messages},\"max_tokens\":{max_tokens},\"stream\":true}}"
        ))
    }
}

/// A chat `messages` array (JSON) split into the system prompt (the contents of its `system`
/// messages, joined by blank lines) and the rest, as Anthropic's API wants them. Most prompts
/// have no system message: they are passed through untouched, found by a byte search.
fn lift_system(prompt_json: &str) -> (Option<String>, std::borrow::Cow<'_, str>) {
    use std::borrow::Cow;
    if memchr::memmem::find(prompt_json.as_bytes(), b"\"system\"").is_none() {
        return (None, Cow::Borrowed(prompt_json));
    }
    let Ok(Value::Array(all)) = serde_json::from_str::<Value>(prompt_json) else {
        return (None, Cow::Borrowed(prompt_json));
    };
    let (system, rest): (Vec<Value>, Vec<Value>) =
        all.into_iter().partition(|m| m["role"] == "system");
    if system.is_empty() {
        return (None, Cow::Borrowed(prompt_json));
    }
    let text = system
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect::<Vec<_>>()
        .join("\n\n");
    let rest = serde_json::to_string(&rest).unwrap_or_else(|_| "[]".into());
    (Some(text), Cow::Owned(rest))
}

/// The pooling APIs: plain texts (no chat template), one JSON answer each; nothing is
/// generated, so `max_tokens` and `ignore_eos` have no place in their bodies.
/// * `POST /v1/embeddings`: `input` is one text (a JSON string) or several (a list, from
///   [`batch`]); the answer has `data[]` and `usage`.
/// * `POST /v1/rerank` (Jina/Cohere's shape, as vLLM serves it): `query` and `documents`, from
///   a prompt value `{"query": …, "documents": […]}` ([`batch`]); one text alone (the
///   pre-flight's) is both the query and the one document. The answer has `results[]` and
///   `usage`.
pub struct Pooling {
    rerank: bool,
}

pub const EMBEDDINGS: Pooling = Pooling { rerank: false };
pub const RERANK: Pooling = Pooling { rerank: true };

impl GenerationApi for Pooling {
    fn path(&self) -> &'static str {
        match self.rerank {
            true => "/v1/rerank",
            false => "/v1/embeddings",
        }
    }
    fn prompt_key(&self) -> &'static str {
        match self.rerank {
            true => "documents",
            false => "input",
        }
    }
    fn plain(&self) -> bool {
        true
    }
    fn body(&self, model: &str, prompt_json: &str, _max_tokens: u32, _ignore_eos: bool) -> Bytes {
        let model = serde_json::to_string(model).unwrap_or_else(|_| "\"\"".into());
        Bytes::from(match (self.rerank, prompt_json.strip_prefix('{')) {
            (false, _) => format!("{{\"model\":{model},\"input\":{prompt_json}}}"),
            // `{"query":…,"documents":[…]}`: its members after the model's.
            (true, Some(members)) => format!("{{\"model\":{model},{members}"),
            (true, None) => format!(
                "{{\"model\":{model},\"query\":{prompt_json},\"documents\":[{prompt_json}]}}"
            ),
        })
    }
}

/// One request's prompt value of a pooling API from the JSON strings of its texts: for
/// `embeddings` the one text, or the list of them; for `rerank` the first text is the query
/// and the rest the documents. Spliced from the serialized strings, never re-parsed.
pub fn batch(api: Api, texts: &[std::sync::Arc<str>]) -> String {
    let list = |items: &[std::sync::Arc<str>]| {
        let mut out = String::with_capacity(items.iter().map(|t| t.len() + 1).sum::<usize>() + 2);
        out.push('[');
        for (i, t) in items.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(t);
        }
        out.push(']');
        out
    };
    match (api, texts) {
        (Api::Rerank, [query, documents @ ..]) if !documents.is_empty() => {
            format!("{{\"query\":{query},\"documents\":{}}}", list(documents))
        }
        (_, [one]) => one.to_string(),
        _ => list(texts),
    }
}

/// The implementation of an experiment's `api`.
pub fn of(api: Api) -> &'static dyn GenerationApi {
    match api {
        Api::Chat => &Chat,
        Api::Completions => &Completions,
        Api::Responses => &Responses,
        Api::Messages => &Messages,
        Api::Embeddings => &EMBEDDINGS,
        Api::Rerank => &RERANK,
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

    #[test]
    fn messages_lift_the_system_prompt_and_send_no_ignore_eos() {
        let m = of(Api::Messages);
        let prompt = serde_json::to_string(&json!([
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "system", "content": "and kind"},
            {"role": "user", "content": "again"},
        ]))
        .unwrap();
        let b: Value = serde_json::from_slice(&m.body("m", &prompt, 4, true)).unwrap();
        assert_eq!(
            b,
            json!({"model": "m", "system": "be brief\n\nand kind", "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
                {"role": "user", "content": "again"},
            ], "max_tokens": 4, "stream": true})
        );
        // No system message: the prompt goes as it is.
        let plain = r#"[{"role":"user","content":"the system is down"}]"#;
        let b = m.body("m", plain, 2, false);
        assert_eq!(
            std::str::from_utf8(&b).unwrap(),
            r#"{"model":"m","messages":[{"role":"user","content":"the system is down"}],"max_tokens":2,"stream":true}"#
        );
        assert_eq!(m.headers(), "anthropic-version: 2023-06-01\r\n");
        assert_eq!(m.path(), "/v1/messages");
    }
}
