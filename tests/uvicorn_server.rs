//! The benchmark client against uvicorn, the HTTP server under vLLM and SGLang, with each of
//! its parsers (h11, httptools): `scripts/uvicorn_server.py` streams vLLM-format chunks through
//! Starlette's `StreamingResponse` (chunked transfer coding, uvicorn's own flushing) and closes
//! idle kept connections after 1 s. `scripts/real-server.sh start` runs both and `.ci/run`
//! exports `LLMIB_UVICORN_H11_URL` / `LLMIB_UVICORN_HTTPTOOLS_URL`; without them these tests
//! say so and pass.

mod common;

use std::path::Path;

use serde_json::Value;

fn servers() -> Vec<(&'static str, String)> {
    let found: Vec<(&str, String)> = [
        ("h11", "LLMIB_UVICORN_H11_URL"),
        ("httptools", "LLMIB_UVICORN_HTTPTOOLS_URL"),
    ]
    .into_iter()
    .filter_map(|(name, var)| {
        std::env::var(var)
            .ok()
            .filter(|u| !u.is_empty())
            .map(|u| (name, u))
    })
    .collect();
    assert_eq!(
        found.len(),
        2,
        "LLMIB_UVICORN_H11_URL and LLMIB_UVICORN_HTTPTOOLS_URL must both be set: run `scripts/real-server.sh start` and `eval $(scripts/real-server.sh env)` first (scripts/test.sh does this)"
    );
    found
}

fn run(dir: &Path, url: &str, api: &str, workload: &str) -> Value {
    let exp = common::write(
        dir,
        "exp.yaml",
        &format!(
            "name: uv\nmodel: {{ id: uvicorn-replay }}\ninfrastructure: {{ provider: existing, base_url: \"{url}\" }}\noutput: {{ dir: {}, detail: full }}\nmetrics: {{ scrape: false }}\nworkload:\n  api: {api}\n{workload}  dataset: {{ kind: random, input_len: 32, output_len: 24 }}\n  ignore_eos: true\n",
            dir.join("out").display()
        ),
    );
    common::bin(120)
        .args(["run", "--no-tui"])
        .arg(&exp)
        .assert()
        .success();
    common::result(dir)
}

/// Every request answered in full: exact tokens both ways, every gap recorded, no error.
fn all_exact(r: &Value, n: u64, what: &str) {
    assert_eq!(r["summary"]["completed"], n, "{what}");
    assert_eq!(r["summary"]["failed"], 0, "{what}: {}", r["errors"]);
    for q in r["requests"].as_array().unwrap() {
        assert_eq!(q["output_tokens"], 24, "{what}: {q}");
        // Calibrated through vLLM's /tokenize form (words + the chat template's tokens).
        assert_eq!(q["input_tokens"], 32, "{what}: {q}");
        assert_eq!(q["tokens_source"], "usage", "{what}");
        assert_eq!(
            q["itl_ms"].as_array().map(Vec::len),
            Some(23),
            "{what}: {q}"
        );
    }
    if cfg!(target_os = "linux") {
        assert_eq!(r["client"]["read_stamps"], "kernel", "{what}");
    }
}

#[test]
#[ignore = "needs uvicorn (scripts/test.sh starts it)"]
fn chunked_streams_from_both_parsers_at_concurrency_8() {
    for (parser, url) in servers() {
        for api in ["chat", "completions"] {
            let d = tempfile::tempdir().unwrap();
            let r = run(
                d.path(),
                &url,
                api,
                "  concurrency: 8\n  requests: 64\n  warmup_requests: 8\n",
            );
            all_exact(&r, 64, &format!("{parser} {api}"));
        }
    }
}

#[test]
#[ignore = "needs uvicorn (scripts/test.sh starts it)"]
fn requests_after_the_keep_alive_timeout_go_out_on_a_fresh_connection() {
    // One request every 1.5 s on one slot: uvicorn has closed the kept connection (after 1 s
    // idle) before each next request, which must be sent again, not failed.
    for (parser, url) in servers() {
        let d = tempfile::tempdir().unwrap();
        let r = run(
            d.path(),
            &url,
            "chat",
            "  pattern: rate\n  rate: 0.67\n  arrival: constant\n  max_concurrency: 1\n  requests: 3\n",
        );
        all_exact(&r, 3, parser);
    }
}
