//! Servers that do not behave, and a client that stays bounded and says what happened: a
//! stream past `max_tokens` at full speed, one SSE event of 16 MiB, a `200 text/html` page, an
//! unasked-for `Content-Encoding`, and a flood that must still end at `request_timeout`. Each
//! is the simulator's `Faults::hostile` on every measured request (the pre-flight is spared).

mod common;

use std::path::Path;

use llm_inf_bench::config::{Personality, SimProfile};
use llm_inf_bench::sim::{Hostile, SimConfig};
use serde_json::Value;

fn hostile_server(h: Hostile) -> common::Sim {
    let mut cfg = SimConfig::new(SimProfile::Instant, Personality::Vllm, "m");
    cfg.faults.hostile = Some(h);
    cfg.faults.spare_first = 1;
    cfg.max_model_len = Some(u32::MAX);
    common::sim_with(cfg)
}

/// Runs `workload` against `url`; the run must fail (nothing succeeds) and its file says why.
fn run_failing(dir: &Path, url: &str, workload: &str) -> Value {
    let exp = common::write(
        dir,
        "exp.yaml",
        &format!(
            "name: t\nmodel: {{ id: m }}\ninfrastructure: {{ provider: existing, base_url: \"{url}\", health_timeout: 10s }}\nmetrics: {{ scrape: false }}\noutput: {{ dir: {} }}\nworkload:\n{workload}",
            dir.join("out").display()
        ),
    );
    let out = common::bin(120)
        .args(["run", "--no-tui"])
        .arg(&exp)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let file = common::result_path(dir);
    common::assert_valid_result(&file);
    serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
}

/// The one error kind of every request, and its sample message.
fn only_error(r: &Value) -> (String, String) {
    let by_kind = r["errors"]["by_kind"].as_object().unwrap();
    assert_eq!(by_kind.len(), 1, "{}", r["errors"]);
    let (kind, n) = by_kind.iter().next().unwrap();
    assert_eq!(n.as_u64(), r["summary"]["failed"].as_u64());
    let msg = r["errors"]["samples"][kind].as_str().unwrap().to_string();
    (kind.clone(), msg)
}

#[test]
fn a_stream_past_max_tokens_is_an_overrun_and_is_closed() {
    let s = hostile_server(Hostile::Flood);
    let d = tempfile::tempdir().unwrap();
    let r = run_failing(
        d.path(),
        &s.url,
        "  concurrency: 2\n  requests: 6\n  dataset: { kind: random, input_len: 8, output_len: 64 }\n",
    );
    let (kind, msg) = only_error(&r);
    assert_eq!(kind, "overrun");
    assert!(msg.contains("max_tokens 64"), "{msg}");
    for q in r["requests"].as_array().unwrap() {
        // Closed at the limit (64 + 16 events), not after the flood.
        assert!(q["output_tokens"].as_u64().unwrap() <= 80, "{q}");
    }
}

#[test]
fn request_timeout_holds_while_a_stream_floods() {
    let s = hostile_server(Hostile::Flood);
    let d = tempfile::tempdir().unwrap();
    // An output cap the flood cannot reach in the time: the timeout must end each request.
    let r = run_failing(
        d.path(),
        &s.url,
        "  concurrency: 1\n  requests: 2\n  request_timeout: 500ms\n  dataset: { kind: random, input_len: 8, output_len: 9000000 }\n",
    );
    let (kind, msg) = only_error(&r);
    assert_eq!(kind, "timeout", "{msg}");
    for q in r["requests"].as_array().unwrap() {
        let e2el = q["e2el_ms"].as_f64().unwrap();
        assert!(
            (480.0..600.0).contains(&e2el),
            "ended at {e2el} ms, timeout 500 ms"
        );
    }
}

#[test]
fn an_event_over_the_cap_is_a_parse_error() {
    let s = hostile_server(Hostile::HugeEvent(16 << 20));
    let d = tempfile::tempdir().unwrap();
    let r = run_failing(
        d.path(),
        &s.url,
        "  concurrency: 2\n  requests: 4\n  dataset: { kind: random, input_len: 8, output_len: 16 }\n",
    );
    let (kind, msg) = only_error(&r);
    assert_eq!(kind, "parse");
    assert!(msg.contains("longer than 1048576 bytes"), "{msg}");
    // The cap is the experiment's to set (a fresh server: its pre-flight is the spared one).
    let s = hostile_server(Hostile::HugeEvent(16 << 20));
    let d = tempfile::tempdir().unwrap();
    let r = run_failing(
        d.path(),
        &s.url,
        "  concurrency: 1\n  requests: 2\n  max_event_bytes: 65536\n  dataset: { kind: random, input_len: 8, output_len: 16 }\n",
    );
    assert!(only_error(&r).1.contains("longer than 65536 bytes"));
}

#[test]
fn an_html_page_is_named_with_its_content_type_and_first_bytes() {
    let s = hostile_server(Hostile::Html);
    let d = tempfile::tempdir().unwrap();
    let r = run_failing(
        d.path(),
        &s.url,
        "  concurrency: 2\n  requests: 4\n  dataset: { kind: random, input_len: 8, output_len: 16 }\n",
    );
    let (kind, msg) = only_error(&r);
    assert_eq!(kind, "not_sse");
    assert!(
        msg.contains("`text/html`") && msg.contains("502 Bad Gateway"),
        "{msg}"
    );
    assert!(msg.len() < 400, "the quote is bounded: {msg}");
}

#[test]
fn an_unasked_for_content_encoding_is_named() {
    let s = hostile_server(Hostile::Gzip);
    let d = tempfile::tempdir().unwrap();
    let r = run_failing(
        d.path(),
        &s.url,
        "  concurrency: 2\n  requests: 4\n  dataset: { kind: random, input_len: 8, output_len: 16 }\n",
    );
    let (kind, msg) = only_error(&r);
    assert_eq!(kind, "not_sse");
    assert!(msg.contains("Content-Encoding: gzip"), "{msg}");
}
