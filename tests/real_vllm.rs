//! The real engine is the referee: every vLLM-facing feature, proven on a real vLLM 0.32 (its
//! CPU build serving a tiny random-weight Llama, `scripts/real-vllm.sh`). The tests that use
//! the shared server (`LLMIB_VLLM_URL`, started once by `scripts/test.sh`) take turns
//! (`SHARED`), so each one's counters are its own; the tests that need their own flags let the
//! tool deploy a fresh vLLM (`provider: local`, or a Slurm job) and check that nothing of it is
//! left. All are `#[ignore]`d in a plain `cargo test` and run by `scripts/test.sh`.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

const NEEDS: &str = "needs a real vLLM (scripts/test.sh starts it with scripts/real-vllm.sh)";

/// Tests on the shared server take turns: a run's server counters must be its own.
static SHARED: Mutex<()> = Mutex::new(());

fn shared() -> std::sync::MutexGuard<'static, ()> {
    SHARED.lock().unwrap_or_else(|p| p.into_inner())
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: {NEEDS}"))
}

/// The shared server's URL and key.
fn server() -> (String, String) {
    (var("LLMIB_VLLM_URL"), var("LLMIB_VLLM_API_KEY"))
}

/// The tiny model's directory (its tokenizer.json inside).
fn model_dir() -> PathBuf {
    Path::new(&var("LLMIB_VLLM_MODEL")).join("chat")
}

fn json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// An experiment against the shared server (`provider: existing`, the key from `VLLM_KEY`).
fn existing(d: &Path, name: &str, body: &str) -> PathBuf {
    let (url, _) = server();
    common::write(
        d,
        &format!("{name}.yaml"),
        &format!(
            "name: {name}\nmodel: {{ id: tiny, max_model_len: 2048 }}\ninfrastructure: {{ provider: existing, base_url: {url}, api_key_env: VLLM_KEY }}\noutput: {{ dir: {} }}\nmetrics: {{ scrape_interval: 250ms }}\n{body}",
            d.join("out").display()
        ),
    )
}

/// The same without `api_key_env`: no key sent.
fn without_key(exp: &Path) -> PathBuf {
    let text = std::fs::read_to_string(exp).unwrap();
    let p = exp.with_file_name("nokey.yaml");
    std::fs::write(&p, text.replace(", api_key_env: VLLM_KEY", "")).unwrap();
    p
}

/// `run EXP --yes --no-tui` with the shared server's key in `VLLM_KEY`; the output.
fn run(exp: &Path, secs: u64, with_key: bool) -> std::process::Output {
    let (_, key) = server();
    let mut c = common::bin(secs);
    if with_key {
        c.env("VLLM_KEY", key);
    }
    c.arg("run")
        .arg(exp)
        .args(["--yes", "--no-tui"])
        .output()
        .unwrap()
}

fn ok_run(exp: &Path, secs: u64) -> (PathBuf, Value, String) {
    let out = run(exp, secs, true);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    let dir = exp.parent().unwrap();
    let path = common::result_path(dir);
    common::assert_valid_result(&path);
    let r = json(&path);
    (path, r, err)
}

/// The shared server's own counter `name` (summed over its labels, or one label set).
fn counter(name: &str, label: Option<&str>) -> f64 {
    counter_at(&server().0, name, label)
}

/// The counter `name` of the vLLM at `url` (`/metrics` needs no key).
fn counter_at(url: &str, name: &str, label: Option<&str>) -> f64 {
    let text = std::process::Command::new("curl")
        .args(["-fs", "--max-time", "10", &format!("{url}/metrics")])
        .output()
        .unwrap()
        .stdout;
    String::from_utf8_lossy(&text)
        .lines()
        .filter(|l| l.starts_with(name) && label.is_none_or(|x| l.contains(x)))
        .filter(|l| l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

// ---- the key, /metrics, lengths, the prefix cache, search and saturation: the shared server ----

#[test]
#[ignore = "needs a real vLLM (scripts/test.sh starts it with scripts/real-vllm.sh)"]
fn the_servers_key_is_sent_from_its_variable_refused_without_and_written_nowhere() {
    let _g = shared();
    let (_, key) = server();
    let d = tempfile::tempdir().unwrap();
    let exp = existing(
        d.path(),
        "key",
        "workload: { concurrency: 2, requests: 8, dataset: { kind: random, input_len: 16, output_len: 4 } }\n",
    );
    // Without a key: vLLM's 401, and what to do about it, before anything is measured.
    let out = run(&without_key(&exp), 120, false);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("401") && err.contains("api_key_env"), "{err}");
    let (path, r, err) = ok_run(&exp, 120);
    assert_eq!(r["summary"]["completed"], 8);
    for text in [std::fs::read_to_string(&path).unwrap(), err, r.to_string()] {
        assert!(!text.contains(&key), "the key leaked");
    }
}

#[test]
#[ignore = "needs a real vLLM (scripts/test.sh starts it with scripts/real-vllm.sh)"]
fn every_figure_vllm_exports_is_mapped_and_its_rates_agree_with_the_client() {
    let _g = shared();
    let d = tempfile::tempdir().unwrap();
    let exp = existing(
        d.path(),
        "metrics",
        "workload:\n  api: completions\n  concurrency: 8\n  duration: 8s\n  dataset: { kind: random, input_len: 64, output_len: 32 }\n  ignore_eos: true\n",
    );
    let (_, r, err) = ok_run(&exp, 180);
    let sm = &r["server_metrics"];
    assert_eq!(sm["framework"], "vllm");
    let s = &sm["summary"];
    for k in [
        "peak_running",
        "mean_running",
        "peak_waiting",
        "mean_waiting",
        "peak_kv_cache_usage",
        "mean_kv_cache_usage",
        "mean_prefix_cache_hit_rate",
        "prefix_cache_hit_rate",
        "generation_tokens_per_s",
        "prompt_tokens_per_s",
        "preemptions",
        "tflops_per_gpu",
        "tb_per_s_per_gpu",
    ] {
        assert!(!s[k].is_null(), "`{k}` is null: {s}");
    }
    // The engine's own estimate of its work, per second (no peak for a CPU: no MFU).
    assert!(s["tflops_per_gpu"].as_f64().unwrap() > 0.0, "{s}");
    assert!(s["tb_per_s_per_gpu"].as_f64().unwrap() > 0.0, "{s}");
    assert!(s["mfu"].is_null());
    assert_eq!(s["peak_running"], 8.0, "{s}");
    // The server counted the tokens the client received, within 5 % over the same window.
    let server = s["generation_tokens_per_s"].as_f64().unwrap();
    let client = r["summary"]["output_throughput"].as_f64().unwrap();
    assert!(
        (server - client).abs() / client < 0.05,
        "server {server} tok/s, client {client} tok/s"
    );
    // Every metric family 0.32 exports is one the tool knows: none is listed as unknown.
    assert!(sm.get("unknown_names").is_none(), "{}", sm["unknown_names"]);
    assert!(!err.contains("does not know"), "{err}");
}

#[test]
#[ignore = "needs a real vLLM (scripts/test.sh starts it with scripts/real-vllm.sh)"]
fn prompt_lengths_are_exact_with_the_models_tokenizer_and_close_by_tokenize() {
    let _g = shared();
    let tok = model_dir().join("tokenizer.json");
    let body = |api: &str, tokenizer: bool| {
        format!(
            "workload:\n  api: {api}\n  concurrency: 4\n  requests: 24\n  dataset: {{ kind: random, input_len: 100, output_len: 4, range_ratio: 0.5 }}\n  ignore_eos: true\n{}",
            if tokenizer { format!("model: {{ id: tiny, max_model_len: 2048, tokenizer: {} }}\n", tok.display()) } else { String::new() }
        )
    };
    for (api, tokenizer) in [
        ("completions", true),
        ("chat", true),
        ("completions", false),
    ] {
        let d = tempfile::tempdir().unwrap();
        let exp = existing(d.path(), "len", &body(api, tokenizer));
        let (_, r, _) = ok_run(&exp, 120);
        let recs = r["requests"].as_array().unwrap();
        assert_eq!(recs.len(), 24);
        // What was asked: the prompt's token count made by the tool; what the server counted:
        // `usage.prompt_tokens` (the records' `input_tokens`, `tokens_source: usage`).
        let mut overheads = std::collections::BTreeSet::new();
        for q in recs {
            assert_eq!(q["tokens_source"], "usage");
            let counted = q["input_tokens"].as_u64().unwrap();
            // Kept only when the server counted another length than the tool made.
            let asked = q["expected_input_tokens"].as_u64().unwrap_or(counted);
            overheads.insert(counted as i64 - asked as i64);
        }
        match (api, tokenizer) {
            // Exactly what was asked (the tokenizer has no BOS post-processor).
            ("completions", true) => assert_eq!(overheads, [0].into(), "{api}"),
            // The chat template's fixed tokens on top, the same for every prompt.
            ("chat", true) => assert_eq!(overheads.len(), 1, "{api}: {overheads:?}"),
            // Calibrated by /tokenize: within a few tokens.
            _ => assert!(
                overheads.iter().all(|o| o.abs() <= 3),
                "{api} by /tokenize: {overheads:?}"
            ),
        }
        let how = r["environment"]["prompt_lengths"].as_str().unwrap();
        assert!(
            how.contains(if tokenizer { "tokenizer" } else { "calibrated" }),
            "{how}"
        );
    }
}

#[test]
#[ignore = "needs a real vLLM (scripts/test.sh starts it with scripts/real-vllm.sh)"]
fn the_prefix_cache_sees_conversations_and_trace_reuse_and_not_random_prompts() {
    let _g = shared();
    let rate = |body: &str| {
        let d = tempfile::tempdir().unwrap();
        let exp = existing(d.path(), "cache", body);
        let (_, r, _) = ok_run(&exp, 180);
        r["server_metrics"]["summary"]["prefix_cache_hit_rate"]
            .as_f64()
            .unwrap()
    };
    let random = rate(
        "workload:\n  concurrency: 4\n  requests: 40\n  dataset: { kind: random, input_len: 256, output_len: 8 }\n  ignore_eos: true\n",
    );
    assert!(random < 0.05, "random prompts: {random}");
    let sessions = rate(
        "workload:\n  concurrency: 4\n  sessions: 8\n  dataset: { kind: conversation, turns: 3, input_len: 200, output_len: 16 }\n  ignore_eos: true\n",
    );
    assert!(sessions > 0.3, "conversations: {sessions}");
    // A trace whose requests share their first blocks.
    let d = tempfile::tempdir().unwrap();
    let trace = d.path().join("t.jsonl");
    let lines: Vec<String> = (0..16)
        .map(|i| {
            format!(
                "{{\"timestamp\": {}, \"input_length\": 256, \"output_length\": 4, \"hash_ids\": [1, 2, 3, {}]}}",
                i * 100,
                100 + i
            )
        })
        .collect();
    std::fs::write(&trace, lines.join("\n")).unwrap();
    let traced = rate(&format!(
        "workload:\n  dataset: {{ kind: trace, format: mooncake, path: {}, block_size: 64 }}\n  ignore_eos: true\n",
        trace.display()
    ));
    assert!(traced > 0.4, "trace: {traced}");
}

#[test]
#[ignore = "needs a real vLLM (scripts/test.sh starts it with scripts/real-vllm.sh)"]
fn flush_prime_a_target_hit_rate_and_an_agent_replay_meet_vllms_own_counters() {
    let _g = shared();
    let tok = model_dir().join("tokenizer.json");
    let model = format!(
        "model: {{ id: tiny, max_model_len: 2048, tokenizer: {} }}\n",
        tok.display()
    );
    let with_model = |exp: &Path| {
        let text = std::fs::read_to_string(exp).unwrap();
        std::fs::write(
            exp,
            text.replacen("model: { id: tiny, max_model_len: 2048 }\n", &model, 1),
        )
        .unwrap();
    };
    // Half of every prompt is its group's prefix: after the shared server's cache is emptied
    // (`/reset_prefix_cache`, served with VLLM_SERVER_DEV_MODE=1) and the four prefixes sent
    // once, vLLM's own hits / queries say 0.5.
    let d = tempfile::tempdir().unwrap();
    let exp = existing(
        d.path(),
        "target",
        "workload:\n  api: completions\n  concurrency: 4\n  requests: 32\n  warmup_requests: 0\n  cache: { flush: true, prime: true }\n  dataset: { kind: shared_prefix, prefix_len: 256, suffix_len: 256, groups: 4, output_len: 4, target_hit_rate: 0.5 }\n  ignore_eos: true\n",
    );
    with_model(&exp);
    let hits = counter("vllm:prefix_cache_hits_total", None);
    let (_, r, _) = ok_run(&exp, 300);
    let measured = r["server_metrics"]["summary"]["prefix_cache_hit_rate"]
        .as_f64()
        .unwrap();
    assert!(
        (measured - 0.5).abs() <= 0.05,
        "vLLM measured {measured} for a target of 0.5"
    );
    assert!(counter("vllm:prefix_cache_hits_total", None) > hits);
    assert!(
        r["client"]["warnings"].as_array().unwrap().is_empty(),
        "{}",
        r["client"]
    );
    // The shipped agent traces, replayed two sessions at a time from an emptied cache: the
    // ideal rate the workload allows and vLLM's counters agree within 5 points.
    let d = tempfile::tempdir().unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("traces/agentic-sample.jsonl");
    let exp = existing(
        d.path(),
        "agents",
        &format!(
            "workload:\n  api: completions\n  concurrency: 2\n  sessions: 12\n  warmup_requests: 0\n  cache: {{ flush: true }}\n  dataset: {{ kind: agentic, path: {}, max_gap: 100ms }}\n  ignore_eos: true\n",
            sample.display()
        ),
    );
    with_model(&exp);
    let (_, r, _) = ok_run(&exp, 600);
    // The block vLLM's CPU build hits in (its `cache_config_info`), read from the server.
    assert_eq!(r["environment"]["cache_block_size"], 128);
    let (ideal, measured) = common::hit_rates(&r);
    assert!(
        ideal > 0.5,
        "the sample reuses most of its context: {ideal}"
    );
    assert!(
        (measured - ideal).abs() <= 0.05,
        "vLLM measured {measured}, the workload's ideal is {ideal}"
    );
    assert_eq!(r["summary"]["failed"], 0);
}

/// 16 random 128-in / 32-out requests through `api` (`extra`: more workload lines): each one
/// completed with TTFT, ITL and token counts from the server's usage, and those counts are
/// what vLLM itself counted — beside the 16 only the pre-flight went out ("Say hello.", at
/// most 2 tokens back). The result's JSON.
fn usage_agrees_with_vllms_counters(api: &str, extra: &str) -> Value {
    let d = tempfile::tempdir().unwrap();
    let exp = existing(
        d.path(),
        api,
        &format!("workload:\n  api: {api}\n  concurrency: 4\n  requests: 16\n  warmup_requests: 0\n{extra}  dataset: {{ kind: random, input_len: 128, output_len: 32 }}\n"),
    );
    let (prompt, generated) = (
        counter("vllm:prompt_tokens_total", None),
        counter("vllm:generation_tokens_total", None),
    );
    let (_, r, _) = ok_run(&exp, 300);
    let s = &r["summary"];
    assert_eq!(s["completed"], 16, "{s}");
    assert!(s["p50_ttft_ms"].as_f64().unwrap() > 0.0);
    assert!(s["mean_itl_ms"].as_f64().unwrap() > 0.0);
    let recs = r["requests"].as_array().unwrap();
    assert!(
        recs.iter()
            .all(|q| q["tokens_source"] == "usage" && q["input_tokens"].as_u64() == Some(128)),
        "the usage's input tokens are the calibrated prompt's: {recs:?}"
    );
    let sum = |k: &str| recs.iter().map(|q| q[k].as_u64().unwrap()).sum::<u64>();
    let extra_prompt =
        counter("vllm:prompt_tokens_total", None) - prompt - sum("input_tokens") as f64;
    assert!((1.0..=32.0).contains(&extra_prompt), "{extra_prompt}");
    let extra_out =
        counter("vllm:generation_tokens_total", None) - generated - sum("output_tokens") as f64;
    assert!((1.0..=2.0).contains(&extra_out), "{extra_out}");
    assert_eq!(
        s["total_output_tokens"].as_u64(),
        Some(sum("output_tokens"))
    );
    r
}

#[test]
#[ignore = "needs a real vLLM (scripts/test.sh starts it with scripts/real-vllm.sh)"]
fn the_responses_api_streams_with_ttft_itl_and_vllms_own_token_counts() {
    let _g = shared();
    let r = usage_agrees_with_vllms_counters("responses", "  ignore_eos: true\n");
    assert_eq!(
        r["summary"]["total_output_tokens"],
        16 * 32,
        "ignore_eos runs each answer to the cap"
    );
}

#[test]
#[ignore = "needs a real vLLM (scripts/test.sh starts it with scripts/real-vllm.sh)"]
fn the_messages_api_streams_with_ttft_itl_and_vllms_own_token_counts() {
    let _g = shared();
    // No `ignore_eos` (the API has none): the answers end where the model stops or at 32.
    usage_agrees_with_vllms_counters("messages", "");

    // Conversations with a system prompt: Messages sends it in the top-level `system`, and
    // vLLM's template makes of it the prompt chat's `system` message makes (first turns count
    // the same; later turns carry different sampled answers).
    let mut first_turns = Vec::new();
    for api in ["chat", "messages"] {
        let d = tempfile::tempdir().unwrap();
        let exp = existing(
            d.path(),
            api,
            &format!("seed: 5\nworkload:\n  api: {api}\n  concurrency: 2\n  sessions: 3\n  warmup_requests: 0\n  dataset: {{ kind: conversation, turns: 2, input_len: 60, output_len: 8, system_prompt_len: 40 }}\n"),
        );
        let (_, r, _) = ok_run(&exp, 300);
        assert_eq!(r["summary"]["completed"], 6, "{api}");
        let mut firsts: Vec<u64> = r["requests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|q| q["turn"] == 0)
            .map(|q| q["input_tokens"].as_u64().unwrap())
            .collect();
        firsts.sort();
        assert_eq!(firsts.len(), 3, "{api}");
        first_turns.push(firsts);
    }
    assert_eq!(first_turns[0], first_turns[1]);
}

#[test]
#[ignore = "needs a real vLLM (scripts/test.sh starts it with scripts/real-vllm.sh)"]
fn a_conversations_ideal_hit_rate_and_its_target_meet_vllms_own_counters() {
    let _g = shared();
    // Three-turn sessions whose shared system prompt `target_hit_rate` sizes, counted in the
    // 128-token blocks vLLM's CPU build caches in: the cache emptied, the system prompt sent
    // once, each turn's ideal counted from vLLM's own token counts.
    let d = tempfile::tempdir().unwrap();
    let exp = existing(
        d.path(),
        "turns",
        "workload:\n  api: chat\n  concurrency: 2\n  sessions: 8\n  warmup_requests: 0\n  ignore_eos: true\n  cache: { flush: true, prime: true }\n  dataset: { kind: conversation, turns: 3, input_len: 200, output_len: 32, target_hit_rate: 0.7 }\n",
    );
    let (_, r, _) = ok_run(&exp, 300);
    assert_eq!(r["environment"]["cache_block_size"], 128);
    assert_eq!(r["summary"]["failed"], 0);
    let (ideal, measured) = common::hit_rates(&r);
    assert!(
        (ideal - 0.7).abs() <= 0.05,
        "the ideal of sessions sized for 0.7: {ideal}"
    );
    assert!(
        (measured - ideal).abs() <= 0.05,
        "vLLM measured {measured}, the workload's ideal is {ideal}"
    );
}

#[test]
#[ignore = "needs a real vLLM (scripts/test.sh starts it with scripts/real-vllm.sh)"]
fn a_capacity_search_and_a_saturation_stop_on_the_real_server() {
    let _g = shared();
    let d = tempfile::tempdir().unwrap();
    // vLLM 0.32 counts no client disconnect in `request_success_total{finished_reason="abort"}`
    // (seen: 0 after requests it dropped mid-answer); an aborted request shows as one that got
    // its first token and never finished.
    let unfinished = || {
        counter("vllm:time_to_first_token_seconds_count", None)
            - counter("vllm:request_success_total", None)
    };
    let aborted_before = unfinished();
    let exp = existing(
        d.path(),
        "search",
        "workload:\n  api: completions\n  duration: 12s\n  dataset: { kind: random, input_len: 64, output_len: 32 }\n  ignore_eos: true\n  saturation: { after: 2s, window: 8s }\n  search: { over: rate, slo: { ttft_ms: 500 }, percentile: 90, tolerance: 25%, max_points: 5, start: 1, max: 200 }\n",
    );
    let out = run(&exp, 300, true);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let idx = json(&common::files(d.path(), ".sweep.json")[0]);
    let s = &idx["searches"][0];
    assert!(s["answer"].as_f64().is_some(), "{s}");
    // The probe at `max` saturated the real server and was stopped, its requests aborted —
    // and vLLM's own counter saw them aborted.
    let max = s["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["value"] == 200.0)
        .unwrap();
    assert!(
        max["termination_reason"]
            .as_str()
            .unwrap()
            .starts_with("saturated"),
        "{max}"
    );
    let aborted = unfinished();
    assert!(aborted > aborted_before, "{aborted_before} → {aborted}");
    let recorded = json(
        &d.path().join("out").join(
            idx["points"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["rate"] == 200.0)
                .unwrap()["file"]
                .as_str()
                .unwrap(),
        ),
    );
    assert!(
        recorded["errors"]["by_kind"]["aborted"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{}",
        recorded["errors"]
    );
}

// ---- the tool deploys vLLM itself ----

/// A local vLLM the tool starts from `framework` (no `infrastructure.command`), tagged with
/// `marker` in its environment so the test can find any process of it left behind.
fn local_vllm(d: &Path, marker: &str, args: &str, workload: &str) -> PathBuf {
    let m = model_dir();
    common::write(
        d,
        "local.yaml",
        &format!(
            "name: local\nmodel: {{ id: tiny, source: {}, max_model_len: 2048, tokenizer: {} }}\nframework:\n  kind: vllm\n  executable: {}\n  args: [--dtype, bfloat16, --enable-mfu-metrics{args}]\n  env: {{ VLLM_TARGET_DEVICE: cpu, VLLM_CPU_KVCACHE_SPACE: \"1\", LLMIB_TEST_MARKER: {marker} }}\ninfrastructure: {{ provider: local, health_timeout: 15m }}\noutput: {{ dir: {} }}\nmetrics: {{ scrape_interval: 250ms }}\n{workload}",
            m.display(),
            m.join("tokenizer.json").display(),
            var("LLMIB_VLLM_BIN"),
            d.join("out").display()
        ),
    )
}

/// Processes whose environment carries `marker`: what is left of a server the tool started.
fn left_behind(marker: &str) -> Vec<String> {
    let needle = format!("LLMIB_TEST_MARKER={marker}");
    let mut left = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if !pid.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
        let zombie = std::fs::read_to_string(e.path().join("stat"))
            .unwrap_or_default()
            .contains(") Z ");
        if !zombie
            && String::from_utf8_lossy(&env)
                .split('\0')
                .any(|v| v == needle)
        {
            left.push(pid);
        }
    }
    left
}

/// A deployed run that succeeded and left nothing behind: its result (checked against the
/// schema).
fn deployed_ok(exp: &Path, mark: &str) -> Value {
    let out = run_deployed(exp);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    assert_gone(mark);
    let path = common::result_path(exp.parent().unwrap());
    common::assert_valid_result(&path);
    json(&path)
}

/// `run EXP --yes --no-tui` of a run that deploys its own server (minutes on 2 cores).
fn run_deployed(exp: &Path) -> std::process::Output {
    common::bin(900)
        .arg("run")
        .arg(exp)
        .args(["--yes", "--no-tui"])
        .output()
        .unwrap()
}

fn marker() -> String {
    format!(
        "t{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

fn assert_gone(marker: &str) {
    // The group was stopped (SIGTERM, then SIGKILL after 10 s) before the tool exited.
    let left = left_behind(marker);
    assert!(left.is_empty(), "processes left: {left:?}");
}

#[test]
#[ignore = "needs a real vLLM (scripts/test.sh starts it with scripts/real-vllm.sh)"]
fn the_tool_deploys_vllm_with_a_reasoning_parser_measures_it_and_leaves_nothing() {
    let d = tempfile::tempdir().unwrap();
    let mark = marker();
    let exp = local_vllm(
        d.path(),
        &mark,
        ", --reasoning-parser, deepseek_r1",
        "workload:\n  concurrency: 4\n  requests: 24\n  dataset: { kind: random, input_len: 32, output_len: 12 }\n  ignore_eos: true\n",
    );
    let r = deployed_ok(&exp, &mark);
    let s = &r["summary"];
    assert_eq!(s["completed"], 24);
    // A random model never closes `</think>`: every token streamed as `delta.reasoning`, and
    // vLLM's usage said 0 reasoning tokens. The stream wins, and the result says why.
    // (A `<think>` the model happens to draw is eaten by the parser: a token with no event.
    // How many it draws is the sampler's — usually a handful of 288, once 20 in CI — so the
    // bounds say "nearly all", not an exact count: ≥ 75 % in all, ≥ half of every answer.)
    let reasoning = s["total_reasoning_tokens"].as_u64().unwrap();
    assert!((24 * 9..=24 * 12).contains(&reasoning), "{s}");
    assert_eq!(s["reasoning_only_requests"], 24, "{s}");
    assert!(
        s["mean_ttfo_ms"].is_null(),
        "no content token: no TTFO ({s})"
    );
    for q in r["requests"].as_array().unwrap() {
        assert!(
            q["ttfo_ms"].is_null() && q["ttft_ms"].as_f64().unwrap() > 0.0,
            "{q}"
        );
        assert_eq!(q["reasoning_usage_disagreed"], 0, "{q}");
        assert!(q["reasoning_tokens"].as_u64().unwrap() >= 6, "{q}");
    }
    let warnings = r["client"]["warnings"].to_string();
    assert!(
        warnings.contains("the stream's count is used"),
        "{warnings}"
    );
    // The cold start: to /health with the model, then to the first token.
    let st = &r["environment"]["startup"];
    let (ready, first) = (
        st["ready_s"].as_f64().unwrap(),
        st["first_token_s"].as_f64().unwrap(),
    );
    assert!(ready > 1.0 && first >= ready, "{st}");
    // The per-run key protected it and is nowhere.
    let log = common::files(d.path(), ".server.log").remove(0);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("'reasoning_parser': 'deepseek_r1'"),
        "the flags reached vLLM"
    );
    // Its key went through its environment (VLLM_API_KEY), not its command line.
    assert!(
        !text.contains("'api_key'"),
        "the key is not among vLLM's arguments"
    );
}

#[test]
#[ignore = "needs a real vLLM (scripts/test.sh starts it with scripts/real-vllm.sh)"]
fn sigterm_during_a_deployed_vllms_workload_saves_and_leaves_nothing() {
    let d = tempfile::tempdir().unwrap();
    let mark = marker();
    let exp = local_vllm(
        d.path(),
        &mark,
        "",
        "workload:\n  concurrency: 2\n  duration: 10m\n  dataset: { kind: random, input_len: 32, output_len: 64 }\n  ignore_eos: true\n",
    );
    let mut child = common::background()
        .args(["run", "--yes", "--no-tui"])
        .arg(&exp)
        .spawn()
        .unwrap();
    // Measuring once the pre-flight request has gone through the server it deployed.
    let log = || common::files(d.path(), ".server.log");
    let start = std::time::Instant::now();
    let served = || {
        log()
            .first()
            .and_then(|l| std::fs::read_to_string(l).ok())
            .is_some_and(|t| t.matches("POST /v1/chat/completions").count() > 4)
    };
    while !served() {
        if start.elapsed() > Duration::from_secs(600) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the deployed vLLM never served");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let code = common::signal_and_wait(&mut child, "TERM", 30);
    assert_eq!(code, Some(130));
    assert_gone(&mark);
    let r = common::result(d.path());
    assert_eq!(r["status"], "interrupted");
    assert!(r["summary"]["completed"].as_u64().unwrap() > 0);
}

#[test]
#[ignore = "needs a real vLLM (scripts/test.sh starts it with scripts/real-vllm.sh)"]
fn a_vllm_that_refuses_its_flags_or_is_stopped_while_loading_leaves_nothing() {
    // A flag vLLM does not know: its own words, quoted from its log; nothing left.
    let d = tempfile::tempdir().unwrap();
    let mark = marker();
    let exp = local_vllm(
        d.path(),
        &mark,
        ", --no-such-flag",
        "workload: { concurrency: 1, requests: 1 }\n",
    );
    let out = run_deployed(&exp);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unrecognized arguments: --no-such-flag"),
        "{err}"
    );
    assert_gone(&mark);
    // Ctrl-C while it loads: stopped, exit 130, nothing left.
    let d = tempfile::tempdir().unwrap();
    let mark = marker();
    let exp = local_vllm(
        d.path(),
        &mark,
        "",
        "workload: { concurrency: 1, requests: 1 }\n",
    );
    let mut child = common::background()
        .args(["run", "--yes", "--no-tui"])
        .arg(&exp)
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while left_behind(&mark).is_empty() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(3));
    let code = common::signal_and_wait(&mut child, "INT", 30);
    assert_eq!(code, Some(130));
    assert_gone(&mark);
}

// ---- the command lines the tool builds, through the real parsers ----

/// `vllm serve`'s own parser on each argument vector (one Python process for them all: its
/// import takes seconds): what it understood, or that it refused.
fn vllm_parses(argvs: &[Vec<String>]) -> Vec<Result<Value, String>> {
    use std::io::Write;
    let py = Path::new(&var("LLMIB_VLLM_BIN")).with_file_name("python");
    let mut child = std::process::Command::new(py)
        .arg(var("LLMIB_VLLM_CHECK_ARGS"))
        .arg("--many")
        .env("VLLM_TARGET_DEVICE", "cpu")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let input = serde_json::to_vec(argvs).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the parser script failed: {err}");
    let answers: Vec<Result<Value, String>> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| match v.get("ok") {
            Some(ok) => Ok(ok.clone()),
            None => Err(format!("{}: {err}", v["error"])),
        })
        .collect();
    assert_eq!(answers.len(), argvs.len(), "{err}");
    answers
}

fn load(path: &Path) -> llm_inf_bench::config::Experiment {
    let opts = llm_inf_bench::config::LoadOptions {
        user_config: llm_inf_bench::config::UserConfigSource::None,
        ..llm_inf_bench::config::LoadOptions::default()
    };
    match llm_inf_bench::config::validate_file(path, &opts).unwrap() {
        llm_inf_bench::config::Validated::Complete(r) => r.experiment,
        llm_inf_bench::config::Validated::Base(_) => panic!("{}: a base file", path.display()),
    }
}

#[test]
#[ignore = "needs a real vLLM (scripts/test.sh starts it with scripts/real-vllm.sh)"]
fn every_vllm_command_line_the_tool_builds_is_accepted_by_vllms_own_parser() {
    use llm_inf_bench::config::FrameworkKind;
    use llm_inf_bench::framework::{container_args, server_command};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/examples");
    let mut cases = Vec::new();
    for f in std::fs::read_dir(&root).unwrap().flatten() {
        let path = f.path();
        let e = load(&path);
        if e.framework.kind != FrameworkKind::Vllm || !e.infrastructure.command.is_empty() {
            continue;
        }
        // A RunPod container's arguments (the image's entrypoint is `vllm serve`; AMD's ROCm
        // image spells the program out, its words dropped here too), and the command line of a
        // local process or a Slurm job without the program words.
        let local = server_command(&e, "127.0.0.1")[2..].to_vec();
        let container = container_args(&e);
        let container = match container.first().map(String::as_str) {
            Some("vllm") => container[2..].to_vec(),
            _ => container,
        };
        cases.push((path.clone(), e.clone(), container));
        cases.push((path, e, local));
    }
    assert!(cases.len() >= 4, "{} command lines", cases.len());
    // And a refusal is a refusal: the parser is the real one.
    let mut argvs: Vec<Vec<String>> = cases.iter().map(|c| c.2.clone()).collect();
    argvs.push(vec!["m".into(), "--no-such-flag".into()]);
    let answers = vllm_parses(&argvs);
    assert!(answers[cases.len()].is_err(), "an unknown flag is refused");
    for ((path, e, args), answer) in cases.iter().zip(&answers) {
        let parsed = answer
            .as_ref()
            .unwrap_or_else(|why| panic!("{}: vLLM refuses {args:?}: {why}", path.display()));
        assert_eq!(
            parsed["model"],
            e.model.source.clone().unwrap_or(e.model.id.clone())
        );
        assert_eq!(parsed["port"], e.framework.port);
        assert_eq!(parsed["tensor_parallel_size"], e.infrastructure.gpu_count);
        if let Some(n) = e.model.max_model_len {
            assert_eq!(parsed["max_model_len"], n);
        }
    }
}

#[test]
#[ignore = "needs a real vLLM (scripts/test.sh starts it with scripts/real-vllm.sh)"]
fn every_sglang_flag_the_tool_gives_launch_server_is_one_its_wheel_defines() {
    use llm_inf_bench::config::FrameworkKind;
    let wheel = var("LLMIB_SGLANG_WHEEL");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/examples");
    let mut checked = 0;
    for f in std::fs::read_dir(&root).unwrap().flatten() {
        let mut e = load(&f.path());
        if e.framework.kind != FrameworkKind::Sglang {
            continue;
        }
        e.model.source = Some("/models/x".into());
        let args = llm_inf_bench::framework::server_command(&e, "0.0.0.0");
        let out = std::process::Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/sglang_check_args.py"))
            .arg(&wheel)
            .args(&args)
            .args(["--api-key", "k"])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}: {said}", f.path().display());
        checked += 1;
    }
    assert!(checked >= 1);
}

// ---- a Slurm job running the real vLLM ----

#[test]
#[ignore = "needs a real vLLM and a Slurm cluster (scripts/test.sh starts both)"]
fn a_slurm_job_without_a_container_runs_the_real_vllm_and_is_cancelled_at_the_end() {
    let conf = std::env::var("SLURM_CONF").unwrap_or_default();
    assert!(
        !conf.is_empty() && Path::new(&conf).exists(),
        "SLURM_CONF is not set: scripts/test.sh starts a one-node cluster (scripts/slurm.sh)"
    );
    let d = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let m = model_dir();
    let exp = common::write(
        d.path(),
        "slurm.yaml",
        &format!(
            "name: slurm-vllm\nmodel: {{ id: tiny, source: {}, max_model_len: 2048 }}\nframework:\n  kind: vllm\n  executable: {}\n  args: [--dtype, bfloat16]\n  env: {{ VLLM_TARGET_DEVICE: cpu, VLLM_CPU_KVCACHE_SPACE: \"1\" }}\ninfrastructure:\n  provider: slurm\n  max_lifetime: 20m\n  health_timeout: 15m\n  slurm: {{ gpu_flag: none, container: none, node_address: 127.0.0.1, port: {port} }}\noutput: {{ dir: {} }}\nworkload: {{ concurrency: 2, requests: 16, dataset: {{ kind: random, input_len: 32, output_len: 8 }}, ignore_eos: true }}\n",
            m.display(),
            var("LLMIB_VLLM_BIN"),
            d.path().join("out").display()
        ),
    );
    let out = run_deployed(&exp);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let r = common::result(d.path());
    assert_eq!(r["summary"]["completed"], 16);
    assert_eq!(r["server_metrics"]["framework"], "vllm");
    // The job's script ran `vllm serve` from the experiment, and the job is gone.
    let script = std::fs::read_to_string(&common::files(d.path(), ".sbatch")[0]).unwrap();
    assert!(
        script.contains(&format!("{} serve {}", var("LLMIB_VLLM_BIN"), m.display())),
        "{script}"
    );
    let queue = std::process::Command::new("squeue")
        .args(["-h", "-o", "%j|%T"])
        .output()
        .unwrap();
    let queue = String::from_utf8_lossy(&queue.stdout);
    assert!(
        !queue
            .lines()
            .any(|l| l.contains("slurm-vllm") && !l.contains("COMPLETING")),
        "{queue}"
    );
}

// ---- servers of their own: an embedding model, a second chat replica ----

/// A vLLM serving the tiny model with the test's own flags (an embedding model: `--runner
/// pooling --convert embed`; a second chat replica), started by the test on a free port, its
/// process group stopped when dropped.
struct OwnServer {
    child: std::process::Child,
    url: String,
    marker: String,
    log: PathBuf,
}

impl OwnServer {
    /// The tiny model as an embedding model, served as `tiny-embed`.
    fn pooling(dir: &Path) -> Self {
        Self::start(
            dir,
            "pooling-vllm.log",
            &[
                "--served-model-name",
                "tiny-embed",
                "--runner",
                "pooling",
                "--convert",
                "embed",
            ],
            &[],
        )
    }

    /// The tiny chat model as the shared server serves it (`tiny`, its key): a replica.
    fn chat_replica(dir: &Path) -> Self {
        let (_, key) = server();
        Self::start(
            dir,
            "replica-vllm.log",
            &["--served-model-name", "tiny"],
            &[("VLLM_API_KEY", key.as_str())],
        )
    }

    fn start(dir: &Path, log: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        use std::os::unix::process::CommandExt;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let marker = marker();
        let log = dir.join(log);
        let out = std::fs::File::create(&log).unwrap();
        let child = std::process::Command::new(var("LLMIB_VLLM_BIN"))
            .arg("serve")
            .arg(model_dir())
            .args(args)
            .args(["--host", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .args(["--max-model-len", "2048", "--dtype", "bfloat16"])
            .env("VLLM_TARGET_DEVICE", "cpu")
            .env("VLLM_CPU_KVCACHE_SPACE", "1")
            .env("LLMIB_TEST_MARKER", &marker)
            .envs(env.iter().copied())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .unwrap();
        let s = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            marker,
            log,
        };
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_secs(900) {
            let up = std::process::Command::new("curl")
                .args(["-fs", &format!("{}/health", s.url)])
                .output()
                .is_ok_and(|o| o.status.success());
            if up {
                return s;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!(
            "the test's own vLLM never became healthy:\n{}",
            std::fs::read_to_string(&s.log).unwrap_or_default()
        );
    }

    fn counter(&self, name: &str) -> f64 {
        counter_at(&self.url, name, None)
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        // `--`: procps-ng 4.0.2 misreads a negative pid after a signal (seen: `-4697`
        // sent as `kill(-4, …)`).
        let _ = std::process::Command::new("kill")
            .args(["-TERM", "--", &group])
            .status();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &group])
            .status();
        let _ = self.child.wait();
        let left = left_behind(&self.marker);
        if !std::thread::panicking() {
            assert!(
                left.is_empty(),
                "the test's own vLLM left processes: {left:?}"
            );
        }
    }
}

#[test]
#[ignore = "needs a real vLLM (scripts/test.sh starts it with scripts/real-vllm.sh)"]
fn embeddings_and_rerank_on_a_real_pooling_vllm_count_what_vllm_counted() {
    let d = tempfile::tempdir().unwrap();
    let server = OwnServer::pooling(d.path());
    for (api, inputs, texts) in [("embeddings", 4u64, 4u64), ("rerank", 3, 4)] {
        let dir = d.path().join(api);
        std::fs::create_dir_all(&dir).unwrap();
        let exp = common::write(
            &dir,
            "pool.yaml",
            &format!(
                "name: {api}\nmodel: {{ id: tiny-embed, max_model_len: 2048, tokenizer: {} }}\ninfrastructure: {{ provider: existing, base_url: {} }}\noutput: {{ dir: {} }}\nmetrics: {{ scrape_interval: 250ms }}\nworkload:\n  api: {api}\n  inputs_per_request: {inputs}\n  concurrency: 2\n  requests: 12\n  warmup_requests: 0\n  dataset: {{ kind: random, input_len: 64, output_len: 1 }}\n",
                model_dir().join("tokenizer.json").display(),
                server.url,
                dir.join("out").display()
            ),
        );
        let (prompt, done) = (
            server.counter("vllm:prompt_tokens_total"),
            server.counter("vllm:request_success_total"),
        );
        let out = common::bin(600)
            .args(["run", "--yes", "--no-tui"])
            .arg(&exp)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{api}: {err}");
        let path = common::result_path(&dir);
        common::assert_valid_result(&path);
        let r = json(&path);
        let s = &r["summary"];
        assert_eq!(s["completed"], 12, "{api}: {s}");
        assert_eq!(s["total_inputs"], 12 * inputs, "{api}: {s}");
        for k in [
            "mean_ttft_ms",
            "p99_itl_ms",
            "mean_tpot_ms",
            "output_throughput",
        ] {
            assert!(s[k].is_null(), "{api}: {k} = {}", s[k]);
        }
        assert!(s["p50_e2el_ms"].as_f64().unwrap() > 0.0);
        let recs = r["requests"].as_array().unwrap();
        for q in recs {
            assert_eq!(q["inputs"], inputs, "{api}: {q}");
            assert_eq!(q["tokens_source"], "usage", "{api}: {q}");
            // Prompt lengths are exact with the model's tokenizer: each text 64 tokens, as
            // vLLM's own usage counts them.
            assert_eq!(q["input_tokens"], 64 * texts, "{api}: {q}");
        }
        // vLLM's counters: one finished request per pooled text, every prompt token counted
        // (beside the pre-flight's "Say hello.").
        let sum_in: u64 = recs
            .iter()
            .map(|q| q["input_tokens"].as_u64().unwrap())
            .sum();
        let extra = server.counter("vllm:prompt_tokens_total") - prompt - sum_in as f64;
        assert!((1.0..=16.0).contains(&extra), "{api}: {extra}");
        let finished = server.counter("vllm:request_success_total") - done;
        let preflight_texts = if api == "rerank" { 2.0 } else { 1.0 };
        assert_eq!(finished, (12 * texts) as f64 + preflight_texts, "{api}");
        // The scrapes (the first before the first request, the last after the last answer)
        // saw exactly the window's prompt tokens, and nothing generated.
        let seen: Vec<f64> = r["server_metrics"]["samples"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|x| x["prompt_tokens_total"].as_f64())
            .collect();
        assert_eq!(
            seen.last().unwrap() - seen[0],
            sum_in as f64,
            "{api}: {seen:?}"
        );
        let sm = &r["server_metrics"]["summary"];
        assert_eq!(sm["generation_tokens_per_s"], 0.0, "{api}: {sm}");
    }
}

// ---- LoRA: a mix of two random adapters on a vLLM the tool starts ----

#[test]
#[ignore = "needs a real vLLM (scripts/test.sh starts it with scripts/real-vllm.sh)"]
fn a_lora_mix_goes_to_the_adapters_the_tool_deployed() {
    let d = tempfile::tempdir().unwrap();
    let mark = marker();
    let adapters = PathBuf::from(var("LLMIB_VLLM_ADAPTERS"));
    let exp = local_vllm(
        d.path(),
        &mark,
        "",
        "workload:\n  concurrency: 4\n  requests: 24\n  dataset: { kind: random, input_len: 32, output_len: 8 }\n  ignore_eos: true\n",
    );
    let text = std::fs::read_to_string(&exp).unwrap();
    let tok = format!(
        "tokenizer: {} }}",
        model_dir().join("tokenizer.json").display()
    );
    let mix = format!(
        "tokenizer: {}, adapters: {{ names: [a1, a2], paths: [{}, {}], distribution: zipf }} }}",
        model_dir().join("tokenizer.json").display(),
        adapters.join("a1").display(),
        adapters.join("a2").display()
    );
    assert!(text.contains(&tok));
    std::fs::write(&exp, text.replace(&tok, &mix)).unwrap();
    let r = deployed_ok(&exp, &mark);
    let s = &r["summary"];
    // Every request named an adapter as its `model`, and vLLM (which answers 404 to a name it
    // does not serve) answered each: both adapters were loaded and served.
    assert_eq!(s["completed"], 24, "{s}");
    let by = s["by_adapter"].as_array().unwrap();
    assert_eq!(by.len(), 2, "{s}");
    let (a1, a2) = (
        by[0]["completed"].as_u64().unwrap(),
        by[1]["completed"].as_u64().unwrap(),
    );
    assert_eq!(
        (by[0]["adapter"].as_str(), by[1]["adapter"].as_str()),
        (Some("a1"), Some("a2"))
    );
    // (That the counts follow the weights is shown on the simulator, over 2 000 requests.)
    assert!(a1 + a2 == 24 && a1 > 0 && a2 > 0, "{a1} / {a2}");
    for a in by {
        assert!(a["p50_ttft_ms"].as_f64().unwrap() > 0.0, "{a}");
        assert!(a["p50_tpot_ms"].as_f64().unwrap() > 0.0, "{a}");
    }
    // The flags reached vLLM, and it loaded both.
    let log = common::files(d.path(), ".server.log").remove(0);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("'enable_lora': True"),
        "--enable-lora reached vLLM"
    );
    for a in ["a1", "a2"] {
        assert!(
            text.contains(&format!("name='{a}'")) || text.contains(&format!("'{a}'")),
            "{a} in vLLM's arguments"
        );
    }
}

// ---- replicas: the shared server and a second one, behind one run ----

/// Two real vLLM servers behind one run (`base_urls`), session-sticky (the default for
/// conversations): every turn of a conversation reached one server, and each server's own
/// `vllm:request_success_total` counted exactly the requests the records say went there (and
/// the pre-flight request each replica gets).
#[test]
#[ignore = "needs a real vLLM (scripts/test.sh starts it with scripts/real-vllm.sh)"]
fn two_real_vllm_replicas_keep_each_conversation_on_one() {
    let d = tempfile::tempdir().unwrap();
    let second = OwnServer::chat_replica(d.path());
    let _turn = shared();
    let (url, _) = server();
    let exp = existing(
        d.path(),
        "replicas",
        "workload:\n  concurrency: 4\n  sessions: 12\n  warmup_requests: 0\n  ignore_eos: true\n  dataset: { kind: conversation, turns: 3, input_len: 32, output_len: 8 }\n",
    );
    let text = std::fs::read_to_string(&exp).unwrap().replace(
        &format!("base_url: {url}"),
        &format!("base_urls: [{url}, {}]", second.url),
    );
    std::fs::write(&exp, text).unwrap();
    let done = "vllm:request_success_total";
    let before = [counter(done, None), second.counter(done)];
    let out = run(&exp, 600, true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = [counter(done, None), second.counter(done)];
    let path = common::result_path(d.path());
    common::assert_valid_result(&path);
    let r = json(&path);
    let recs = r["requests"].as_array().unwrap();
    assert_eq!(recs.len(), 36, "12 conversations of 3 turns");
    let mut of: std::collections::BTreeMap<u64, std::collections::BTreeSet<u64>> =
        Default::default();
    for q in recs {
        assert!(q["error"].is_null(), "{q}");
        of.entry(q["session"].as_u64().unwrap())
            .or_default()
            .insert(q["replica"].as_u64().unwrap());
    }
    assert!(
        of.values().all(|k| k.len() == 1),
        "a session on two servers: {of:?}"
    );
    let by = r["summary"]["by_replica"].as_array().unwrap();
    for k in 0..2 {
        let sent = recs.iter().filter(|q| q["replica"] == k).count() as f64;
        assert!(sent > 0.0, "both servers had conversations: {of:?}");
        assert_eq!(by[k]["completed"].as_f64(), Some(sent));
        // Each server counted its conversations' turns and its own pre-flight request.
        assert_eq!(
            after[k] - before[k],
            sent + 1.0,
            "replica {k}: the server counted {}, the records say {sent} (+1 pre-flight)",
            after[k] - before[k]
        );
    }
    // Each server scraped on its own; the run's generation rate is theirs summed.
    let sm = &r["server_metrics"];
    assert_eq!(sm["replicas"].as_array().unwrap().len(), 2, "{sm}");
}

/// vLLM 0.32's CPU build speculates with n-gram drafts; the tool deploys it so, and reads the
/// acceptance back from vLLM's own counters. A random model's drafts are rarely accepted, so
/// the figures are checked by their arithmetic: every draft step proposes K = 3 tokens, so the
/// window's draft tokens are a multiple of 3 and the acceptance length is 1 + 3 × the rate.
#[test]
#[ignore = "needs a real vLLM (scripts/test.sh starts it with scripts/real-vllm.sh)"]
fn a_deployed_vllm_that_speculates_reports_its_acceptance_from_its_own_counters() {
    let d = tempfile::tempdir().unwrap();
    let mark = marker();
    let exp = local_vllm(
        d.path(),
        &mark,
        ", --speculative-config, '{\"method\": \"ngram\", \"num_speculative_tokens\": 3, \"prompt_lookup_max\": 3, \"prompt_lookup_min\": 1}'",
        "workload:\n  concurrency: 4\n  requests: 16\n  dataset: { kind: random, input_len: 64, output_len: 48 }\n  ignore_eos: true\n",
    );
    let r = deployed_ok(&exp, &mark);
    let s = &r["summary"];
    assert_eq!(s["completed"], 16);
    let rate = s["spec_acceptance_rate"]
        .as_f64()
        .expect("an acceptance rate");
    let length = s["spec_acceptance_length"]
        .as_f64()
        .expect("an acceptance length");
    assert!((0.0..=1.0).contains(&rate), "{s}");
    assert!((length - (1.0 + 3.0 * rate)).abs() < 1e-9, "{s}");
    let drafts = r["server_metrics"]["summary"]["spec_draft_tokens"]
        .as_f64()
        .unwrap();
    assert!(drafts > 0.0 && drafts % 3.0 == 0.0, "{drafts}");
    // The counters are known names: none is listed as unknown.
    let unknown = r["server_metrics"]["unknown_names"].to_string();
    assert!(!unknown.contains("spec_decode"), "{unknown}");
}

#[test]
#[ignore = "needs a real vLLM (scripts/test.sh starts it with scripts/real-vllm.sh) and lm-eval (scripts/lm-eval.sh)"]
fn evals_on_the_real_vllm_complete_and_a_random_model_scores_near_zero() {
    let _turn = shared();
    let lm_eval = var("LLMIB_LM_EVAL");
    let d = tempfile::tempdir().unwrap();
    let tasks = Path::new(env!("CARGO_MANIFEST_DIR")).join("evals/lm-eval");
    // The built-in grader and lm-eval on the key-protected server: lm-eval gets the key from
    // its environment (OPENAI_API_KEY), never its command line.
    let exp = existing(
        d.path(),
        "evals",
        &format!(
            "workload:\n  api: chat\n  concurrency: 2\n  requests: 8\n  dataset: {{ kind: random, input_len: 32, output_len: 8 }}\nevals:\n  concurrency: 4\n  tasks:\n    - {{ set: arithmetic, limit: 12, max_tokens: 12 }}\n    - {{ name: lm-arith, limit: 6, max_tokens: 12, lm_eval: {{ task: llmib_arithmetic, include_path: {}, command: [{lm_eval}] }} }}\n",
            tasks.display()
        ),
    );
    let (_, key) = server();
    let out = common::bin(600)
        .env("VLLM_KEY", &key)
        .env("HF_DATASETS_OFFLINE", "1")
        .env("HF_HUB_OFFLINE", "1")
        .arg("run")
        .arg(&exp)
        .args(["--yes", "--no-tui"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    assert!(!err.contains(&key), "the key is in the tool's output");
    let path = common::result_path(d.path());
    common::assert_valid_result(&path);
    let r = json(&path);
    let evals = r["evals"].as_array().expect("evals in the result");
    let ours = evals.iter().find(|e| e["name"] == "arithmetic").unwrap();
    assert_eq!(ours["count"], 12);
    assert_eq!(ours["failed"], 0, "every graded request answered: {ours}");
    assert!(
        ours["score"].as_f64().unwrap() <= 0.25,
        "a random model: {ours}"
    );
    let answered = ours["answers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| !a["text"].as_str().unwrap().is_empty())
        .count();
    assert!(answered >= 10, "the model's own text is kept: {ours}");
    let lm = evals.iter().find(|e| e["name"] == "lm-arith").unwrap();
    assert_eq!(lm["kind"], "lm_eval");
    assert_eq!(lm["count"], 6, "{lm}");
    assert!(lm["score"].as_f64().unwrap() <= 0.5, "{lm}");
    assert_eq!(lm["answers"].as_array().unwrap().len(), 6);
    // Neither the log nor the result holds the key.
    let log = common::files(d.path(), ".lm-eval.log")
        .pop()
        .expect("lm-eval's log");
    assert!(!std::fs::read_to_string(&log).unwrap().contains(&key));
    assert!(!std::fs::read_to_string(&path).unwrap().contains(&key));
}
