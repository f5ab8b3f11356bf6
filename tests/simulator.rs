//! The simulator over real HTTP, spoken to with a plain client (reqwest), never the project's
//! benchmark client, so a wire-format bug cannot hide in both.

mod common;

use std::time::{Duration, Instant};

use llm_inf_bench::config::Personality;
use llm_inf_bench::metrics::prom;
use llm_inf_bench::sim::{self, SimConfig, SimHandle};
use serde_json::{json, Value};

const MODEL: &str = "Qwen/Qwen2.5-0.5B-Instruct";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn get(base: &str, path: &str) -> reqwest::Response {
    client().get(format!("{base}{path}")).send().await.unwrap()
}

async fn post(base: &str, path: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{base}{path}"))
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn start(cfg: SimConfig) -> SimHandle {
    sim::start(cfg, "127.0.0.1:0").await.unwrap()
}

fn cfg(profile: &str, personality: Personality) -> SimConfig {
    let mut c = SimConfig::new(profile.parse().unwrap(), personality, MODEL);
    c.startup_delay = Some(Duration::ZERO);
    c
}

/// Data payloads of an SSE body, in order.
fn events(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data event: {e:?}"))
                .to_string()
        })
        .collect()
}

/// Replaces what legitimately differs between two servers' chunks (ids, timestamps, model,
/// generated text, counts) so only the shape, key order included, is compared.
fn normalize(event: &str) -> String {
    if event == "[DONE]" {
        return event.into();
    }
    fn walk(v: &mut Value, key: &str) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    walk(x, k);
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| walk(x, key)),
            Value::String(s) => match key {
                "id" | "model" | "system_fingerprint" => *s = key.to_uppercase(),
                "content" | "text" | "reasoning" if !s.is_empty() => *s = "TEXT".into(),
                _ => {}
            },
            Value::Number(_)
                if [
                    "created",
                    "prompt_tokens",
                    "total_tokens",
                    "completion_tokens",
                ]
                .contains(&key) =>
            {
                *v = json!(0)
            }
            _ => {}
        }
    }
    let mut v: Value = serde_json::from_str(event).unwrap();
    walk(&mut v, "");
    serde_json::to_string(&v).unwrap()
}

/// A stream captured from the real vLLM 0.32 (`tests/fixtures/vllm-0.32/`).
fn fixture(name: &str) -> String {
    let p = format!(
        "{}/tests/fixtures/vllm-0.32/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

async fn stream_text(base: &str, path: &str, body: Value) -> String {
    let r = post(base, path, &body).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    r.text().await.unwrap()
}

#[tokio::test]
async fn chat_and_completions_chunks_match_the_reference_samples() {
    for profile in ["instant", "h100-llama8b"] {
        let mut c = cfg(profile, Personality::Vllm);
        c.speed = 50.0;
        let s = start(c).await;
        // The reference chat sample has 7 tokens, the completions sample 5.
        let chat = stream_text(&s.base_url(), "/v1/chat/completions", json!({
            "model": MODEL, "messages": [{"role": "user", "content": "What is the capital of France?"}],
            "max_tokens": 7, "ignore_eos": true, "stream": true, "stream_options": {"include_usage": true}
        })).await;
        let ours: Vec<String> = events(&chat).iter().map(|e| normalize(e)).collect();
        // Captured from the real vLLM 0.32 (its CPU build, `ignore_eos`, 7 tokens): a
        // `length` finish rides on the last token (the assembled reference sample ends on EOS,
        // whose empty chunk carries `stop`).
        let theirs: Vec<String> = events(&fixture("chat-stream.txt"))
            .iter()
            .map(|e| normalize(e))
            .collect();
        assert_eq!(ours, theirs, "profile {profile}");

        let comp = stream_text(&s.base_url(), "/v1/completions", json!({
            "model": MODEL, "prompt": "The capital of France is", "max_tokens": 5, "ignore_eos": true,
            "stream": true, "stream_options": {"include_usage": true}
        })).await;
        let ours: Vec<String> = events(&comp).iter().map(|e| normalize(e)).collect();
        let theirs: Vec<String> = events(&fixture("completions-stream.txt"))
            .iter()
            .map(|e| normalize(e))
            .collect();
        assert_eq!(ours, theirs, "profile {profile}");
    }
}

/// vLLM 0.32 with `--reasoning-parser deepseek_r1` on a model that never closes `</think>`:
/// every token is `delta.reasoning`, and the usage says 0 reasoning tokens. The simulator's
/// reasoning mode speaks exactly that (the client counts the stream: `client::tests`).
#[tokio::test]
async fn the_reasoning_stream_is_the_real_vllms() {
    let mut c = cfg("instant", Personality::Vllm);
    c.reasoning_share = 1.0;
    let s = start(c).await;
    let chat = stream_text(&s.base_url(), "/v1/chat/completions", json!({
        "model": MODEL, "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "max_tokens": 7, "ignore_eos": true, "stream": true, "stream_options": {"include_usage": true}
    }))
    .await;
    let ours: Vec<String> = events(&chat).iter().map(|e| normalize(e)).collect();
    let theirs: Vec<String> = events(&fixture("chat-reasoning-stream.txt"))
        .iter()
        .map(|e| normalize(e))
        .collect();
    assert_eq!(ours, theirs);
}

/// The events of a Responses or Messages stream (`event: TYPE` / `data: …`), each as (type,
/// the data with what legitimately differs replaced — ids, times, text, counts, sequence
/// numbers, signatures), runs of deltas as one: vLLM merges tokens that detokenize together
/// into one delta.
fn typed_events(body: &str) -> Vec<(String, String)> {
    fn walk(v: &mut Value, key: &str) {
        match v {
            Value::Object(m) => m.iter_mut().for_each(|(k, x)| walk(x, k)),
            Value::Array(a) => a.iter_mut().for_each(|x| walk(x, key)),
            Value::String(s)
                if [
                    "id",
                    "item_id",
                    "model",
                    "text",
                    "delta",
                    "thinking",
                    "signature",
                ]
                .contains(&key) =>
            {
                *s = key.to_uppercase()
            }
            Value::Number(_) => *v = json!(0),
            _ => {}
        }
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for block in body.split("\n\n").filter(|b| !b.is_empty()) {
        let (kind, data) = block
            .strip_prefix("event: ")
            .and_then(|b| b.split_once("\ndata: "))
            .unwrap_or_else(|| panic!("not an event/data pair: {block:?}"));
        let mut v: Value = serde_json::from_str(data).unwrap();
        assert_eq!(v["type"], kind, "the data's type is the event's");
        walk(&mut v, "");
        let e = (kind.to_string(), v.to_string());
        if out.last() != Some(&e) {
            out.push(e);
        }
    }
    out
}

/// vLLM 0.32's `/v1/responses` stream (captured: 3 tokens, `ignore_eos`, `store: false`):
/// the simulator sends the same events, keys in the same order, the same `incomplete` status
/// when the answer ran to `max_output_tokens`, and no `[DONE]`.
#[tokio::test]
async fn the_responses_stream_is_the_real_vllms() {
    let s = start(cfg("instant", Personality::Vllm)).await;
    let body = stream_text(
        &s.base_url(),
        "/v1/responses",
        json!({
            "model": MODEL, "input": [{"role": "user", "content": "hello there"}],
            "max_output_tokens": 3, "stream": true, "store": false, "ignore_eos": true
        }),
    )
    .await;
    assert!(!body.contains("[DONE]"));
    assert_eq!(
        typed_events(&body),
        typed_events(&fixture("responses-stream.txt"))
    );
}

/// vLLM 0.32's `/v1/messages` stream (captured: 3 tokens, a system prompt, capped at
/// `max_tokens`), and with a reasoning parser (vLLM's own converter run over the captured
/// reasoning chat stream, `scripts/anthropic_from_chat.py`): the simulator sends the same
/// events — the thinking block with its signature before the text — keys in the same order,
/// and no `[DONE]`.
#[tokio::test]
async fn the_messages_stream_is_the_real_vllms() {
    for (share, fixture_name) in [
        (0.0, "messages-stream.txt"),
        (1.0, "messages-reasoning-stream.txt"),
    ] {
        let mut c = cfg("instant", Personality::Vllm);
        c.reasoning_share = share;
        let s = start(c).await;
        let body = stream_text(
            &s.base_url(),
            "/v1/messages",
            json!({
                "model": MODEL, "system": "be brief",
                "messages": [{"role": "user", "content": "time people class module"}],
                "max_tokens": 3, "stream": true, "ignore_eos": true
            }),
        )
        .await;
        assert!(!body.contains("[DONE]"));
        assert_eq!(
            typed_events(&body),
            typed_events(&fixture(fixture_name)),
            "{fixture_name}"
        );
    }
    // Half thinking, half text: the thinking block is signed and closed before the text's.
    let mut c = cfg("instant", Personality::Vllm);
    c.reasoning_share = 0.5;
    let s = start(c).await;
    let body = stream_text(
        &s.base_url(),
        "/v1/messages",
        json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "stream": true, "ignore_eos": true}),
    )
    .await;
    let kinds: Vec<String> = body
        .split("\n\n")
        .filter_map(|b| b.split_once("\ndata: "))
        .map(|(_, d)| {
            let v: Value = serde_json::from_str(d).unwrap();
            let k = v["type"].as_str().unwrap().to_string();
            match v["delta"]["type"]
                .as_str()
                .or(v["content_block"]["type"].as_str())
            {
                Some(t) => format!("{k}:{t}:{}", v["index"]),
                None => k,
            }
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "message_start",
            "content_block_start:thinking:0",
            "content_block_delta:thinking_delta:0",
            "content_block_delta:thinking_delta:0",
            "content_block_delta:signature_delta:0",
            "content_block_stop",
            "content_block_start:text:1",
            "content_block_delta:text_delta:1",
            "content_block_delta:text_delta:1",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
}

/// Errors on `/v1/messages` come in Anthropic's shape, as vLLM 0.32 answers there (seen: an
/// unknown model is a 404 `{"type":"error","error":{"type":"NotFoundError",…}}`).
#[tokio::test]
async fn messages_errors_are_anthropics_shape() {
    let s = start(cfg("instant", Personality::Vllm)).await;
    let r = post(
        &s.base_url(),
        "/v1/messages",
        &json!({"model": "nope", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}),
    )
    .await;
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "NotFoundError");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("`nope` does not exist"));
    let r = post(
        &s.base_url(),
        "/v1/messages",
        &json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status(), 400, "max_tokens is required");
    let whole: Value = post(
        &s.base_url(),
        "/v1/messages",
        &json!({"model": MODEL, "system": [{"type": "text", "text": "be brief"}], "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "max_tokens": 3, "ignore_eos": true}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(whole["type"], "message");
    assert_eq!(whole["stop_reason"], "max_tokens");
    assert_eq!(whole["usage"]["output_tokens"], 3);
    assert_eq!(whole["content"][0]["type"], "text");
}

/// `never_eos`: without `ignore_eos` every answer runs to its cap (the default model stops
/// early on most of these 20 prompts).
#[tokio::test]
async fn a_model_that_never_emits_eos_runs_every_answer_to_its_cap() {
    for never in [false, true] {
        let mut c = cfg("instant", Personality::Vllm);
        c.never_eos = never;
        let s = start(c).await;
        let mut capped = 0;
        for n in 0..20 {
            let v: Value = post(
                &s.base_url(),
                "/v1/messages",
                &json!({"model": MODEL, "messages": [{"role": "user", "content": format!("prompt {n}")}], "max_tokens": 400}),
            )
            .await
            .json()
            .await
            .unwrap();
            capped += usize::from(v["usage"]["output_tokens"] == 400);
        }
        match never {
            true => assert_eq!(capped, 20),
            false => assert!(capped < 10, "{capped}"),
        }
    }
}

#[tokio::test]
async fn usage_counts_equal_tokenize_counts() {
    let s = start(cfg("instant", Personality::Vllm)).await;
    let messages = json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name three   prime numbers please"}]);
    let tok: Value = post(&s.base_url(), "/tokenize", &json!({"messages": messages}))
        .await
        .json()
        .await
        .unwrap();
    let body = stream_text(&s.base_url(), "/v1/chat/completions", json!({"messages": messages, "max_tokens": 9, "ignore_eos": true, "stream": true, "stream_options": {"include_usage": true}})).await;
    let ev = events(&body);
    let usage: Value = serde_json::from_str(&ev[ev.len() - 2]).unwrap();
    assert_eq!(usage["usage"]["prompt_tokens"], tok["count"]);
    assert_eq!(
        tok["tokens"].as_array().unwrap().len() as u64,
        tok["count"].as_u64().unwrap()
    );
    assert_eq!(usage["usage"]["completion_tokens"], 9);
    let contents = ev
        .iter()
        .filter(|e| e.contains("\"content\":\"") && !e.contains("\"content\":\"\""))
        .count();
    assert_eq!(contents, 9, "one content chunk per token");

    let tok: Value = post(
        &s.base_url(),
        "/tokenize",
        &json!({"prompt": "one two three four"}),
    )
    .await
    .json()
    .await
    .unwrap();
    let body = stream_text(&s.base_url(), "/v1/completions", json!({"prompt": "one two three four", "max_tokens": 3, "ignore_eos": true, "stream": true, "stream_options": {"include_usage": true}})).await;
    let ev = events(&body);
    let usage: Value = serde_json::from_str(&ev[ev.len() - 2]).unwrap();
    assert_eq!(usage["usage"]["prompt_tokens"], tok["count"]);
    let detok: Value = post(&s.base_url(), "/detokenize", &json!({"tokens": [0, 1]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(detok["prompt"], "the model");
}

fn scrape(text: &str) -> prom::Scrape {
    prom::parse(text).unwrap()
}

fn value(s: &prom::Scrape, name: &str) -> f64 {
    prom::sum(s, name).unwrap_or_else(|| panic!("{name} missing from /metrics"))
}

#[tokio::test]
async fn metrics_parse_and_counters_agree_with_what_was_served() {
    for (personality, prefix, gen_name) in [
        (Personality::Vllm, "vllm", "vllm:generation_tokens_total"),
        (
            Personality::Sglang,
            "sglang",
            "sglang:generation_tokens_total",
        ),
    ] {
        let mut c = cfg("h100-llama8b", personality);
        c.speed = 50.0;
        let s = start(c).await;
        let (mut prompt, mut generated) = (0.0, 0.0);
        for i in 0..6 {
            let body = stream_text(&s.base_url(), "/v1/completions", json!({"prompt": format!("request number {i} of six"), "max_tokens": 4 + i, "stream": true, "stream_options": {"include_usage": true}})).await;
            let ev = events(&body);
            let u: Value = serde_json::from_str(&ev[ev.len() - 2]).unwrap();
            prompt += u["usage"]["prompt_tokens"].as_f64().unwrap();
            generated += u["usage"]["completion_tokens"].as_f64().unwrap();
        }
        let text = get(&s.base_url(), "/metrics").await.text().await.unwrap();
        let m = scrape(&text);
        assert_eq!(value(&m, gen_name), generated, "{prefix}");
        assert_eq!(
            value(&m, &format!("{prefix}:prompt_tokens_total")),
            prompt,
            "{prefix}"
        );
        match personality {
            Personality::Vllm => {
                assert_eq!(value(&m, "vllm:request_success_total"), 6.0);
                assert_eq!(value(&m, "vllm:num_requests_running"), 0.0);
                let ttft = m
                    .samples
                    .iter()
                    .find(|x| x.metric == "vllm:time_to_first_token_seconds")
                    .expect("TTFT histogram");
                match &ttft.value {
                    prometheus_parse::Value::Histogram(h) => {
                        assert_eq!(h.last().unwrap().count, 6.0)
                    }
                    other => panic!("TTFT is not a histogram: {other:?}"),
                }
            }
            Personality::Sglang => {
                assert_eq!(value(&m, "sglang:num_requests_total"), 6.0);
                assert!(text.contains("sglang:token_usage{engine_type=\"unified\""));
            }
            Personality::Trtllm => unreachable!("this loop runs vLLM and SGLang"),
        }
    }
}

#[tokio::test]
async fn same_seed_same_tokens_other_seed_other_tokens() {
    let mut texts = Vec::new();
    for seed in [7, 7, 8] {
        let mut c = cfg("instant", Personality::Vllm);
        c.seed = seed;
        let s = start(c).await;
        let r: Value = post(&s.base_url(), "/v1/chat/completions", &json!({"messages": [{"role": "user", "content": "tell me a story"}], "max_tokens": 64})).await.json().await.unwrap();
        texts.push((
            r["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .to_string(),
            r["usage"]["completion_tokens"].clone(),
        ));
    }
    assert_eq!(texts[0], texts[1]);
    assert_ne!(texts[0], texts[2]);
}

#[tokio::test]
async fn error_faults_use_each_personalitys_body_shape() {
    let s = start(cfg("instant", Personality::Vllm)).await;
    let r = client()
        .post(format!("{}/v1/chat/completions", s.base_url()))
        .header("x-sim-fault", "error=429")
        .json(&json!({"messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], 429);
    assert_eq!(body["error"]["type"], "RateLimitError");

    let s = start(cfg("instant", Personality::Sglang)).await;
    let r = post(
        &s.base_url(),
        "/v1/chat/completions",
        &json!({"model": "other", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["object"], "error", "SGLang's flat shape: {body}");
    assert_eq!(body["param"], "model");

    // Over-long prompt: vLLM's message.
    let r = post(
        &s.base_url(),
        "/v1/completions",
        &json!({"prompt": "a b c", "max_tokens": 2_000_000}),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("maximum context length"));
}

#[tokio::test]
async fn error_rate_is_deterministic_under_a_seed() {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let mut c = cfg("instant", Personality::Vllm);
        c.seed = 3;
        c.faults.error_rate = 0.3;
        c.faults.error_status = 500;
        let s = start(c).await;
        let mut statuses = Vec::new();
        for _ in 0..40 {
            let r = post(
                &s.base_url(),
                "/v1/completions",
                &json!({"prompt": "x", "max_tokens": 1}),
            )
            .await;
            statuses.push(r.status().as_u16());
        }
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1]);
    let errors = runs[0].iter().filter(|s| **s == 500).count();
    assert!(
        (4..=24).contains(&errors),
        "about 30% of 40 should fail, got {errors}"
    );
}

#[tokio::test]
async fn cut_stall_malformed_and_delay_do_what_they_say() {
    let s = start(cfg("instant", Personality::Vllm)).await;
    let body = json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 10, "ignore_eos": true, "stream": true});
    let url = format!("{}/v1/chat/completions", s.base_url());

    // Cut: the body ends with an error after 3 chunks, never reaching [DONE].
    let mut r = client()
        .post(&url)
        .header("x-sim-fault", "cut=3")
        .json(&body)
        .send()
        .await
        .unwrap();
    let mut got = String::new();
    let mut failed = false;
    loop {
        match r.chunk().await {
            Ok(Some(c)) => got.push_str(&String::from_utf8_lossy(&c)),
            Ok(None) => break,
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "a cut stream must end in a transport error");
    assert_eq!(events(&got).len(), 3);
    assert!(!got.contains("[DONE]"));

    // Stall: the gap before chunk 2 is at least the stall.
    let mut r = client()
        .post(&url)
        .header("x-sim-fault", "stall=300ms@2")
        .json(&body)
        .send()
        .await
        .unwrap();
    let mut arrivals = Vec::new();
    while let Some(c) = r.chunk().await.unwrap() {
        arrivals.push((Instant::now(), c.len()));
    }
    let gaps: Vec<Duration> = arrivals.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert!(
        gaps.iter().any(|g| *g >= Duration::from_millis(300)),
        "{gaps:?}"
    );

    // Malformed: exactly one event is not JSON; the stream still completes.
    let text = stream_text(&s.base_url(), "/v1/chat/completions", body.clone()).await;
    assert!(events(&text)
        .iter()
        .all(|e| e == "[DONE]" || serde_json::from_str::<Value>(e).is_ok()));
    let r = client()
        .post(&url)
        .header("x-sim-fault", "malformed=2")
        .json(&body)
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    let bad = events(&text)
        .iter()
        .filter(|e| *e != "[DONE]" && serde_json::from_str::<Value>(e).is_err())
        .count();
    assert_eq!(bad, 1);
    assert!(text.ends_with("data: [DONE]\n\n"));

    // Delay: headers wait.
    let t = Instant::now();
    let r = client()
        .post(&url)
        .header("x-sim-fault", "delay=200ms")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(t.elapsed() >= Duration::from_millis(200));
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn loading_answers_503_then_healthy_and_refused_connections_recover() {
    let mut c = cfg("instant", Personality::Vllm);
    c.startup_delay = Some(Duration::from_millis(300));
    let s = start(c).await;
    let r = get(&s.base_url(), "/health").await;
    assert_eq!(r.status(), 503);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(get(&s.base_url(), "/health").await.status(), 200);
    let models: Value = get(&s.base_url(), "/v1/models").await.json().await.unwrap();
    assert_eq!(models["data"][0]["id"], MODEL);

    let mut c = cfg("instant", Personality::Vllm);
    c.faults.refuse_for = Duration::from_millis(300);
    let s = start(c).await;
    assert!(
        client()
            .get(format!("{}/health", s.base_url()))
            .send()
            .await
            .is_err(),
        "refused while refusing"
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(get(&s.base_url(), "/health").await.status(), 200);
}

#[tokio::test]
async fn queueing_grows_late_ttft_and_shows_waiting_requests() {
    let mut c = cfg("h100-llama8b", Personality::Vllm);
    c.max_num_seqs = Some(8);
    c.speed = 2.0;
    let s = start(c).await;
    let base = s.base_url();
    let mut tasks = Vec::new();
    for i in 0..32 {
        let url = format!("{base}/v1/completions");
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let mut r = client().post(url).json(&json!({"prompt": format!("prompt {i}"), "max_tokens": 24, "ignore_eos": true, "stream": true})).send().await.unwrap();
            let mut ttft = None;
            while let Some(c) = r.chunk().await.unwrap() {
                if ttft.is_none() && c.windows(7).any(|w| w == b"\"text\":") {
                    ttft = Some(t.elapsed());
                }
            }
            ttft.unwrap()
        }));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // While they run, the server must report a queue.
    let mut max_waiting: f64 = 0.0;
    for _ in 0..20 {
        let text = get(&base, "/metrics").await.text().await.unwrap();
        max_waiting = max_waiting.max(value(&scrape(&text), "vllm:num_requests_waiting"));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut ttfts = Vec::new();
    for t in tasks {
        ttfts.push(t.await.unwrap());
    }
    assert!(max_waiting >= 8.0, "waiting gauge peaked at {max_waiting}");
    let first: Duration = ttfts[..8].iter().sum::<Duration>() / 8;
    let last: Duration = ttfts[24..].iter().sum::<Duration>() / 8;
    assert!(
        last > first * 3,
        "late TTFT {last:?} should exceed early TTFT {first:?} by far"
    );
}

#[tokio::test]
async fn fixed_profile_keeps_its_clock_and_reports_the_truth() {
    let mut c = cfg("fixed-50ms-10ms", Personality::Vllm);
    c.speed = 5.0; // TTFT 10 ms, ITL 2 ms
    let s = start(c).await;
    let body = stream_text(
        &s.base_url(),
        "/v1/completions",
        json!({"prompt": "a b", "max_tokens": 10, "ignore_eos": true, "stream": true, "stream_options": {"include_usage": true}}),
    )
    .await;
    assert!(body.ends_with("data: [DONE]\n\n"));
    let truth: Value = get(&s.base_url(), "/sim/timings")
        .await
        .json()
        .await
        .unwrap();
    let ttft = truth["ttft_ms"].as_array().unwrap();
    let itl = truth["itl_ms"].as_array().unwrap();
    assert_eq!(ttft.len(), 1);
    assert_eq!(itl.len(), 9, "10 tokens, 9 gaps");
    assert!(ttft[0].as_f64().unwrap() >= 10.0, "{truth}");
    // The truth starts at the socket (kernel receive time), before the handler saw the request.
    if cfg!(target_os = "linux") {
        let delay = truth["handler_delay_ms"].as_array().unwrap();
        assert_eq!(delay.len(), 1, "{truth}");
        assert!(delay[0].as_f64().unwrap() >= 0.0, "{truth}");
    }
    // Absolute deadlines: the last token is due 10 + 9·2 ms after arrival, never earlier.
    let total: f64 =
        ttft[0].as_f64().unwrap() + itl.iter().map(|g| g.as_f64().unwrap()).sum::<f64>();
    assert!(total >= 28.0, "{truth}");
    let m = scrape(&get(&s.base_url(), "/metrics").await.text().await.unwrap());
    assert_eq!(value(&m, "vllm:generation_tokens_total"), 10.0);
}

/// A JSON answer's shape: keys in order, value kinds, arrays as their first item (and whether
/// they are empty).
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Array(m.iter().map(|(k, x)| json!([k, shape(x)])).collect()),
        Value::Array(a) => json!(["array", a.first().map(shape)]),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("bool"),
        Value::Null => Value::Null,
    }
}

/// The pooling routes answer as vLLM 0.32 serving a model with `--runner pooling`: the same
/// keys in the same order (`tests/fixtures/vllm-0.32/{embeddings,rerank}.json`, captured), ids
/// with the same prefixes, results by falling relevance, and vLLM's 400 for a missing field.
#[tokio::test]
async fn embeddings_and_rerank_answer_as_the_real_vllm() {
    let s = start(cfg("instant", Personality::Vllm)).await;
    let base = s.base_url();
    for (path, body, name, prefix) in [
        (
            "/v1/embeddings",
            json!({"model": MODEL, "input": ["hello world", "the time of people"]}),
            "embeddings.json",
            "embd-",
        ),
        (
            "/v1/rerank",
            json!({"model": MODEL, "query": "hello world", "documents": ["the time of people", "a b c"]}),
            "rerank.json",
            "score-",
        ),
    ] {
        let r = post(&base, path, &body).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/json");
        let ours: Value = r.json().await.unwrap();
        let real: Value = serde_json::from_str(&fixture(name)).unwrap();
        assert_eq!(shape(&ours), shape(&real), "{path}");
        assert!(ours["id"].as_str().unwrap().starts_with(prefix), "{ours}");
        assert_eq!(
            ours.get("data")
                .or(ours.get("results"))
                .unwrap()
                .as_array()
                .unwrap()
                .len(),
            2
        );
        // The query is pooled once, then each document: 2 + 4 + 3 tokens, as vLLM counts.
        let tokens = ours["usage"]["prompt_tokens"].as_u64().unwrap();
        assert_eq!(tokens, if path == "/v1/rerank" { 9 } else { 6 }, "{path}");
    }
    let r: Value = post(&base, "/v1/rerank", &json!({"model": MODEL, "query": "hello world", "documents": ["a b c", "the time of people", "x"]}))
        .await
        .json()
        .await
        .unwrap();
    let scores: Vec<f64> = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["relevance_score"].as_f64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    let r = post(&base, "/v1/rerank", &json!({"model": MODEL, "query": "hi"})).await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("documents"),
        "{e}"
    );
    let r = post(
        &base,
        "/v1/embeddings",
        &json!({"model": "nope", "input": "hi"}),
    )
    .await;
    assert_eq!(r.status(), 404);
    // Each text is one engine request, finished `stop`; nothing generated.
    let m = client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str, label: &str| -> f64 {
        m.lines()
            .filter(|l| l.starts_with(name) && l.contains(label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let stop = "finished_reason=\"stop\"";
    assert_eq!(value("vllm:request_success_total", stop), 2.0 + 3.0 + 4.0);
    assert_eq!(value("vllm:generation_tokens_total", ""), 0.0);
    assert_eq!(
        value("vllm:prompt_tokens_total", ""),
        6.0 + 9.0 + 2.0 + 4.0 + 3.0 + 1.0
    );
}

/// The simulated engine's speculative decoding, read back the way a real server's is: from
/// vLLM's counters (the window's acceptance rate and length), from SGLang's gauges, and absent
/// when the engine does not speculate. K = 3 with each draft token accepted at 0.7: an
/// acceptance rate of (0.7 + 0.49 + 0.343) / 3 = 0.511 and 1 + 1.533 = 2.533 tokens a step
/// (a little less: a step never runs past an answer's end).
#[test]
fn speculative_decoding_is_read_back_from_the_servers_own_figures() {
    let d = tempfile::tempdir().unwrap();
    for (personality, spec) in [("vllm", true), ("sglang", true), ("vllm", false)] {
        let spec_line = match spec {
            true => "    spec_decode: { num_speculative_tokens: 3, token_acceptance: 0.7 }\n",
            false => "",
        };
        let exp = common::write(
            d.path(),
            "exp.yaml",
            &format!(
                "name: spec\nmodel: {{ id: m }}\ninfrastructure:\n  provider: simulator\n  simulator:\n    profile: h100-llama8b\n    personality: {personality}\n    speed: 5\n{spec_line}output: {{ dir: {} }}\nworkload:\n  concurrency: 8\n  requests: 64\n  ignore_eos: true\n  dataset: {{ kind: random, input_len: 64, output_len: 128 }}\nmetrics: {{ scrape_interval: 200ms }}\n",
                d.path().join("out").display()
            ),
        );
        let (path, r) = common::run_ok(&exp, 120);
        std::fs::remove_file(&path).unwrap();
        let s = &r["summary"];
        let case = format!("{personality}, speculating: {spec}");
        // Speculation changes how fast tokens come, never how many.
        assert_eq!(s["total_output_tokens"], 64 * 128, "{case}");
        if !spec {
            assert!(s.get("spec_acceptance_rate").is_none(), "{case}: {s}");
            continue;
        }
        let rate = s["spec_acceptance_rate"].as_f64().expect(&case);
        let length = s["spec_acceptance_length"].as_f64().expect(&case);
        assert!((0.47..=0.53).contains(&rate), "{case}: rate {rate}");
        assert!((2.40..=2.58).contains(&length), "{case}: length {length}");
        assert_eq!(
            r["server_metrics"]["summary"]["spec_acceptance_rate"], s["spec_acceptance_rate"],
            "{case}"
        );
    }
}

#[test]
fn a_tensorrt_llm_server_is_scraped_at_its_prometheus_page_by_its_own_names() {
    let d = tempfile::tempdir().unwrap();
    let exp = common::write(
        d.path(),
        "exp.yaml",
        &format!(
            "name: trt\nmodel: {{ id: m }}\nframework: {{ kind: trtllm }}\ninfrastructure:\n  provider: simulator\n  simulator: {{ profile: h100-llama8b, personality: trtllm, speed: 8 }}\noutput: {{ dir: {} }}\nworkload:\n  concurrency: 8\n  requests: 48\n  ignore_eos: true\n  dataset: {{ kind: shared_prefix, prefix_len: 256, suffix_len: 32, groups: 2, output_len: 32 }}\nmetrics: {{ scrape_interval: 200ms }}\n",
            d.path().join("out").display()
        ),
    );
    let (_, r) = common::run_ok(&exp, 120);
    assert_eq!(r["summary"]["completed"], 48);
    let sm = &r["server_metrics"];
    assert_eq!(sm["framework"], "trtllm", "{sm}");
    let samples = sm["samples"].as_array().unwrap();
    assert!(
        samples.iter().all(|s| s.get("error").is_none()),
        "every scrape of /prometheus/metrics read: {sm}"
    );
    // Its KV gauge, its hit-rate gauge and its TTFT histogram are read; it exports no
    // running/waiting gauges and no token counters, so those stay absent.
    let s = &sm["summary"];
    assert!(s["peak_kv_cache_usage"].as_f64().unwrap() > 0.0, "{s}");
    assert!(
        s["mean_prefix_cache_hit_rate"].as_f64().unwrap() > 0.0,
        "{s}"
    );
    assert!(
        samples
            .iter()
            .any(|x| x["ttft_mean_ms"].as_f64().is_some_and(|v| v > 0.0)),
        "{sm}"
    );
    assert!(s.get("peak_running").is_none_or(Value::is_null), "{s}");
    assert!(
        s.get("generation_tokens_per_s").is_none_or(Value::is_null),
        "{s}"
    );
}

#[tokio::test]
async fn the_tensorrt_llm_simulator_answers_in_its_shape() {
    let s = start(cfg("instant", Personality::Trtllm)).await;
    let base = s.base_url();
    let stats: Value = get(&base, "/metrics").await.json().await.unwrap();
    assert!(
        stats
            .as_array()
            .is_some_and(|a| a[0].get("numActiveRequests").is_some()),
        "{stats}"
    );
    let page = get(&base, "/prometheus/metrics")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("# TYPE trtllm_time_to_first_token_seconds histogram"),
        "{page}"
    );
    assert!(
        page.contains("trtllm_kv_cache_utilization{engine_type=\"pytorch\",model_name="),
        "{page}"
    );
    let v: Value = get(&base, "/version").await.json().await.unwrap();
    assert!(v["version"].as_str().unwrap().starts_with("1.3.0rc5"));
    let models: Value = get(&base, "/v1/models").await.json().await.unwrap();
    assert_eq!(models["data"][0]["owned_by"], "tensorrt_llm");
}
