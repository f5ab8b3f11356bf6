//! `run` end to end through the real binary, against simulators started on 127.0.0.1 by the
//! test (faults on demand), plus a golden test of the summary arithmetic.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;
use llm_inf_bench::config::{Personality, SimProfile};
use llm_inf_bench::sim::{Faults, SimConfig};
use predicates::prelude::*;
use serde_json::Value;

fn server(profile: &str, faults: Faults, speed: f64) -> common::Sim {
    let mut cfg = SimConfig::new(profile.parse().unwrap(), Personality::Vllm, "m");
    cfg.faults = faults;
    cfg.speed = speed;
    common::sim_with(cfg)
}

fn experiment(dir: &Path, url: &str, workload: &str) -> PathBuf {
    let p = dir.join("exp.yaml");
    let text = format!(
        "name: t\nseed: 5\nmodel:\n  id: m\ninfrastructure:\n  provider: existing\n  base_url: {url}\n  health_timeout: 10s\noutput:\n  dir: {}\nworkload:\n{workload}",
        dir.join("out").display()
    );
    std::fs::write(&p, text).unwrap();
    p
}

/// The one result file in `dir/out` (a local server's log beside it is not a result).
/// `run --no-tui` on `exp` succeeds; its result file in `dir`.
fn run_ok(exp: &Path, dir: &Path) -> Value {
    run_ok_with(exp, dir, |_| {}).1
}

/// `run --no-tui` on `exp`, set up further by `more`, succeeds; its output and result file.
fn run_ok_with(
    exp: &Path,
    dir: &Path,
    more: impl FnOnce(&mut Command),
) -> (std::process::Output, Value) {
    let mut c = common::bin(120);
    c.arg("run").arg(exp).arg("--no-tui");
    more(&mut c);
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out, only_result(dir))
}

fn only_result(dir: &Path) -> Value {
    common::assert_valid_result(&common::result_path(dir));
    let files: Vec<PathBuf> = std::fs::read_dir(dir.join("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.to_string_lossy().ends_with(".server.log"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().to_string();
    assert!(
        name.starts_with("t-")
            && name.ends_with(".json")
            && name.len() == "t-20261125-101010.json".len(),
        "{name}"
    );
    serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap()
}

#[test]
fn every_pattern_honours_counts_and_excludes_warmup() {
    let s = server("instant", Faults::default(), 1.0);
    for (workload, expect) in [
        ("  pattern: sequential\n  requests: 7\n  warmup_requests: 3\n", 7),
        ("  pattern: concurrent\n  concurrency: 4\n  requests: 25\n  warmup_requests: 5\n", 25),
        ("  pattern: rate\n  rate: 200\n  arrival: poisson\n  requests: 30\n", 30),
        ("  pattern: rate\n  rate: 100\n  arrival: gamma\n  burstiness: 0.5\n  max_concurrency: 2\n  requests: 20\n", 20),
        ("  pattern: rate\n  rate: 100\n  arrival: constant\n  duration: 300ms\n", 30),
    ] {
        let d = tempfile::tempdir().unwrap();
        let exp = experiment(d.path(), &s.url, &format!("{workload}  dataset: {{ kind: random, input_len: 12, output_len: 6 }}\n  ignore_eos: true\n"));
        common::bin(120).arg("run").arg(&exp).arg("--no-tui").assert().success();
        let r = only_result(d.path());
        let reqs = r["requests"].as_array().unwrap();
        assert_eq!(reqs.len(), expect, "{workload}");
        assert_eq!(r["summary"]["completed"], expect, "{workload}");
        // Warm-up excluded: measured ids run 0..n.
        let mut ids: Vec<u64> = reqs.iter().map(|x| x["id"].as_u64().unwrap()).collect();
        ids.sort();
        assert_eq!(ids, (0..expect as u64).collect::<Vec<_>>());
        for x in reqs {
            assert_eq!(x["output_tokens"], 6, "{workload}");
            assert_eq!(x["input_tokens"], 12, "calibrated prompt length: {workload}");
            assert_eq!(x["tokens_source"], "usage");
        }
        if workload.contains("rate") {
            assert!(reqs.iter().all(|x| x["scheduled_ms"].is_number()));
            assert!(r["client"]["pacer_lag_ms"]["count"].as_u64().unwrap() > 0);
        }
        assert_eq!(r["status"], "completed");
        // Every read carried the kernel's receive time (Linux gives it on loopback).
        if cfg!(target_os = "linux") {
            assert_eq!(r["client"]["read_stamps"], "kernel", "{workload}");
        }
    }
}

#[test]
fn faults_are_counted_by_kind_and_the_run_finishes() {
    let faults = Faults {
        error_rate: 0.2,
        error_status: 500,
        cut_rate: 0.1,
        cut_after: 3,
        malformed_rate: 0.1,
        ..Faults::default()
    };
    let s = server("instant", faults, 1.0);
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(d.path(), &s.url, "  concurrency: 4\n  requests: 200\n  dataset: { kind: random, input_len: 8, output_len: 10 }\n  ignore_eos: true\n");
    // The fault draws are seeded: the pre-flight (request 0) is clean with seed 0.
    let r = run_ok(&exp, d.path());
    let kinds = r["errors"]["by_kind"].as_object().unwrap();
    assert!(kinds["status"].as_u64().unwrap() > 10, "{kinds:?}");
    assert!(kinds["stream_cut"].as_u64().unwrap() > 3, "{kinds:?}");
    assert!(kinds["parse"].as_u64().unwrap() > 3, "{kinds:?}");
    let failed: u64 = kinds.values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(r["summary"]["failed"], failed);
    assert_eq!(r["summary"]["completed"].as_u64().unwrap() + failed, 200);
    assert!(r["errors"]["samples"]["status"]
        .as_str()
        .unwrap()
        .contains("HTTP 500"));
    // Failed requests are kept as data, excluded from latency figures.
    let reqs = r["requests"].as_array().unwrap();
    assert_eq!(
        reqs.iter().filter(|x| !x["error"].is_null()).count() as u64,
        failed
    );
}

#[test]
fn max_error_rate_stops_early_and_says_why() {
    // The pre-flight request is spared; 90 % of the measured ones get a 503.
    let s = server(
        "instant",
        Faults {
            error_rate: 0.9,
            error_status: 503,
            spare_first: 1,
            ..Faults::default()
        },
        1.0,
    );
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(d.path(), &s.url, "  concurrency: 2\n  requests: 5000\n  max_error_rate: 0.5\n  dataset: { kind: random, input_len: 8, output_len: 4 }\n");
    let out = common::bin(120)
        .arg("run")
        .arg(&exp)
        .arg("--no-tui")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let r = only_result(d.path());
    assert_eq!(r["status"], "failed", "{stderr}");
    let why = r["termination_reason"].as_str().unwrap();
    assert!(why.starts_with("max_error_rate: "), "{why}");
    assert_eq!(r["error"].as_str(), Some(why));
    // Stopped at the first request past 50 % once 20 had finished, not at the end: the few
    // still in flight (concurrency 2) finish after it.
    let n = r["requests"].as_array().unwrap().len();
    assert!((20..30).contains(&n), "{n} requests");
    assert!(stderr.contains("max_error_rate"), "{stderr}");
}

#[test]
fn sigint_leaves_an_interrupted_file_with_completed_requests() {
    let s = server("h100-llama8b", Faults::default(), 1.0);
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(d.path(), &s.url, "  concurrency: 4\n  requests: 100000\n  dataset: { kind: random, input_len: 16, output_len: 64 }\n  ignore_eos: true\n");
    let mut child = common::background()
        .arg("run")
        .arg(&exp)
        .arg("--no-tui")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    unsafe_sigint(child.id());
    let status = wait_bounded(&mut child, Duration::from_secs(30));
    assert_eq!(status, Some(130));
    let r = only_result(d.path());
    assert_eq!(r["status"], "interrupted");
    assert_eq!(r["termination_reason"], "interrupted");
    let done = r["summary"]["completed"].as_u64().unwrap();
    assert!(done > 0 && done < 100000, "{done}");
}

fn unsafe_sigint(pid: u32) {
    let ok = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

fn wait_bounded(child: &mut std::process::Child, limit: Duration) -> Option<i32> {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    None
}

#[test]
fn jsonl_error_is_reported_with_its_line_before_anything_starts() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("p.jsonl"),
        "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n{\"messages\": \"oops\"}\n",
    )
    .unwrap();
    let exp = experiment(
        d.path(),
        "http://127.0.0.1:9",
        "  concurrency: 1\n  requests: 3\n  dataset: { kind: jsonl, path: p.jsonl }\n",
    );
    common::bin(120)
        .arg("run")
        .arg(&exp)
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "p.jsonl:2: `messages` must be a list",
        ));
}

#[test]
fn the_api_key_is_sent_from_its_variable_and_written_nowhere() {
    const KEY: &str = "sk-sim-7f3a9c2e51";
    let mut cfg = SimConfig::new(SimProfile::Instant, Personality::Vllm, "m");
    cfg.api_key = Some(llm_inf_bench::config::Secret::new(KEY));
    let s = common::sim_with(cfg);
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(
        d.path(),
        &s.url,
        "  concurrency: 2\n  requests: 6\n  dataset: { kind: random, input_len: 8, output_len: 4 }\n",
    );
    let key_env = ["--set", "infrastructure.api_key_env=LLMIB_TEST_SERVER_KEY"];
    // A named variable that is not set is a usage error before anything starts.
    common::bin(120)
        .arg("run")
        .arg(&exp)
        .args(key_env)
        .arg("--no-tui")
        .env_remove("LLMIB_TEST_SERVER_KEY")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "api_key_env names `LLMIB_TEST_SERVER_KEY`, which is not set",
        ));
    // A wrong key: the server's 401 is quoted at once (not after the health timeout).
    common::bin(120)
        .arg("run")
        .arg(&exp)
        .args(key_env)
        .arg("--no-tui")
        .env("LLMIB_TEST_SERVER_KEY", "sk-wrong")
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("/v1/models answered 401")
                .and(predicate::str::contains("refused the API key"))
                .and(predicate::str::contains("sk-wrong").not()),
        );
    // No key at all: the same 401, with where a key would come from.
    let other = tempfile::tempdir().unwrap();
    let no_key = experiment(other.path(), &s.url, "  concurrency: 1\n  requests: 1\n");
    common::bin(120)
        .arg("run")
        .arg(&no_key)
        .arg("--no-tui")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("wants an API key"));
    let (out, r) = run_ok_with(&exp, d.path(), |c| {
        c.args(key_env).env("LLMIB_TEST_SERVER_KEY", KEY);
    });
    assert_eq!(r["summary"]["completed"], 6);
    assert_eq!(r["summary"]["failed"], 0);
    for text in [
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        r.to_string(),
    ] {
        assert!(!text.contains(KEY), "the key leaked: {text}");
    }
}

#[test]
fn https_servers_are_measured_through_tls_with_a_private_ca() {
    let s = server("instant", Faults::default(), 1.0);
    let addr: std::net::SocketAddr = s.url.trim_start_matches("http://").parse().unwrap();
    let url = s._rt.block_on(common::tls_proxy(addr));
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(
        d.path(),
        &url,
        "  concurrency: 4\n  requests: 40\n  warmup_requests: 4\n  dataset: { kind: random, input_len: 12, output_len: 16 }\n  ignore_eos: true\n",
    );
    // The system's roots do not know the test CA: refused, saying why, before any request.
    common::bin(120)
        .arg("run")
        .arg(&exp)
        .arg("--no-tui")
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("invalid peer certificate")
                .and(predicate::str::contains("tls_ca_file")),
        );
    let ca = format!("infrastructure.tls_ca_file={}", common::test_ca().display());
    let (_, r) = run_ok_with(&exp, d.path(), |c| {
        c.args(["--set", &ca]);
    });
    assert_eq!(r["summary"]["completed"], 40);
    assert_eq!(r["summary"]["failed"], 0, "{}", r["errors"]);
    for q in r["requests"].as_array().unwrap() {
        assert_eq!(q["output_tokens"], 16);
        assert_eq!(q["input_tokens"], 12, "calibrated over TLS too");
    }
    if cfg!(target_os = "linux") {
        assert_eq!(r["client"]["read_stamps"], "kernel");
    }
    // A CA file that is not one is found before anything starts.
    let not_pem = common::write(d.path(), "not.pem", "hello");
    common::bin(120)
        .arg("run")
        .arg(&exp)
        .args([
            "--set",
            &format!("infrastructure.tls_ca_file={}", not_pem.display()),
        ])
        .arg("--no-tui")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("tls_ca_file").and(predicate::str::contains("not.pem")));
}

#[test]
fn wrong_model_is_quoted_from_the_server() {
    let s = server("instant", Faults::default(), 1.0);
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(d.path(), &s.url, "  concurrency: 1\n  requests: 3\n");
    common::bin(120)
        .arg("run")
        .arg(&exp)
        .args(["--set", "model.id=not-served"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains(
            "does not serve `not-served`; it serves: m",
        ));
}

#[test]
fn jsonl_prompts_cycle_and_results_show_reads_the_file() {
    let s = server("instant", Faults::default(), 1.0);
    let d = tempfile::tempdir().unwrap();
    let prompts = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts/chat-short.jsonl");
    let exp = experiment(d.path(), &s.url, &format!("  concurrency: 3\n  requests: 45\n  max_tokens: 5\n  ignore_eos: true\n  dataset: {{ kind: jsonl, path: {} }}\n", prompts.display()));
    common::bin(120)
        .arg("run")
        .arg(&exp)
        .arg("--json")
        .assert()
        .success()
        .stdout(predicates::str::contains("\"completed\": 45"));
    let file = std::fs::read_dir(d.path().join("out"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    common::bin(120)
        .args(["results", "show"])
        .arg(&file)
        .assert()
        .success()
        .stdout(predicates::str::contains(
            "Successful requests:                45",
        ));
    common::bin(120)
        .args(["results", "list"])
        .arg(d.path().join("out"))
        .assert()
        .success()
        .stdout(predicates::str::contains("completed"));
    let v: Value = serde_json::from_slice(
        &common::bin(120)
            .args(["results", "export", "--format", "vllm"])
            .arg(&file)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(v["completed"], 45);
    assert_eq!(v["output_lens"].as_array().unwrap().len(), 45);
}

#[test]
fn quickstart_dry_run_spends_nothing() {
    common::bin(120)
        .args(["run", "experiments/examples/quickstart.yaml", "--dry-run"])
        .assert()
        .success()
        .stderr(predicates::str::contains("plan: quickstart"));
}

#[test]
fn model_tokenizer_is_loaded_before_anything_starts_and_recorded() {
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(
        d.path(),
        "http://127.0.0.1:9",
        "  concurrency: 1\n  requests: 3\n",
    );
    common::bin(120)
        .arg("run")
        .arg(&exp)
        .args(["--set", "model.tokenizer=missing/tokenizer.json"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("missing/tokenizer.json"));

    // A word-level tokenizer: every word one token, as the simulator counts them.
    let tok = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": {"[UNK]": 0}, "unk_token": "[UNK]"}
    });
    std::fs::write(d.path().join("tokenizer.json"), tok.to_string()).unwrap();
    let s = server("instant", Faults::default(), 1.0);
    let exp = experiment(d.path(), &s.url, "  api: completions\n  concurrency: 2\n  requests: 10\n  dataset: { kind: random, input_len: 33, output_len: 4, range_ratio: 0.5 }\n");
    let text = std::fs::read_to_string(&exp).unwrap().replace(
        "model:\n  id: m\n",
        "model:\n  id: m\n  tokenizer: tokenizer.json\n",
    );
    std::fs::write(&exp, text).unwrap();
    common::bin(120)
        .arg("run")
        .arg(&exp)
        .arg("--no-tui")
        .assert()
        .success();
    let r = only_result(d.path());
    assert!(
        r["environment"]["prompt_lengths"]
            .as_str()
            .unwrap()
            .starts_with("exact with tokenizer"),
        "{}",
        r["environment"]
    );
    for x in r["requests"].as_array().unwrap() {
        assert!(
            (17..=50).contains(&x["input_tokens"].as_u64().unwrap()),
            "{x}"
        );
    }
}

#[test]
fn stalls_become_timeouts_and_429s_are_status_errors() {
    let faults = Faults {
        stall_rate: 0.3,
        stall: Duration::from_secs(3),
        stall_after: 2,
        error_rate: 0.2,
        error_status: 429,
        ..Faults::default()
    };
    let s = server("instant", faults, 1.0);
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(d.path(), &s.url, "  concurrency: 8\n  requests: 60\n  request_timeout: 300ms\n  dataset: { kind: random, input_len: 8, output_len: 6 }\n  ignore_eos: true\n");
    let r = run_ok(&exp, d.path());
    let kinds = r["errors"]["by_kind"].as_object().unwrap();
    assert!(kinds["timeout"].as_u64().unwrap() > 5, "{kinds:?}");
    assert!(kinds["status"].as_u64().unwrap() > 3, "{kinds:?}");
    assert!(r["errors"]["samples"]["status"]
        .as_str()
        .unwrap()
        .contains("HTTP 429"));
    for x in r["requests"].as_array().unwrap() {
        if x["error"]["kind"] == "timeout" {
            // Timed-out requests are data, with their time, never in the latency figures. The
            // timeout runs from the start of the exchange, a little before the send (the
            // connection's ready check, or a re-dial of a connection the server had closed).
            assert!(x["e2el_ms"].as_f64().unwrap() >= 295.0, "{x}");
        }
    }
}

#[test]
fn on_deadline_abort_cancels_requests_in_flight() {
    let s = server("fixed-50ms-10ms", Faults::default(), 1.0);
    let d = tempfile::tempdir().unwrap();
    // Each answer takes 50 + 199·10 ms ≈ 2 s; the window is 500 ms.
    let exp = experiment(d.path(), &s.url, "  concurrency: 4\n  duration: 500ms\n  on_deadline: abort\n  dataset: { kind: random, input_len: 8, output_len: 200 }\n  ignore_eos: true\n");
    // Nothing completed, so nothing was measured: the run says so and fails.
    common::bin(120)
        .arg("run")
        .arg(&exp)
        .arg("--no-tui")
        .assert()
        .code(1);
    let r = only_result(d.path());
    assert_eq!(r["termination_reason"], "duration");
    assert_eq!(r["status"], "failed");
    assert_eq!(r["errors"]["by_kind"]["aborted"], 4, "{}", r["errors"]);
    assert_eq!(r["summary"]["completed"], 0);
    assert!(r["summary"]["mean_e2el_ms"].is_null());
}

/// An experiment with `provider: local` running `command` (YAML flow list).
fn local_experiment(dir: &Path, command: &str, workload: &str) -> PathBuf {
    let p = dir.join("exp.yaml");
    let text = format!(
        "name: t\nmodel:\n  id: m\ninfrastructure:\n  provider: local\n  command: {command}\n  health_timeout: 60s\noutput:\n  dir: {}\nworkload:\n{workload}",
        dir.join("out").display()
    );
    std::fs::write(&p, text).unwrap();
    p
}

fn server_log(dir: &Path) -> String {
    server_log_now(dir).expect("a server log")
}

/// The local server's log, once there is one (the output directory exists before it: the
/// run checks it first).
fn server_log_now(dir: &Path) -> Option<String> {
    let log = std::fs::read_dir(dir.join("out"))
        .ok()?
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".server.log"))?;
    std::fs::read_to_string(log).ok()
}

/// Alive and not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

#[test]
fn local_provider_starts_the_server_benchmarks_it_and_stops_it() {
    // One server, then two replicas (each its own process, port and log).
    for replicas in [1usize, 2] {
        let d = tempfile::tempdir().unwrap();
        let me = assert_cmd::cargo::cargo_bin("llm-inf-bench");
        let command = format!("[\"{}\", serve-sim, --port, \"{{port}}\", --model, \"{{model}}\", --profile, instant, --startup-delay, 300ms]", me.display());
        let exp = local_experiment(d.path(), &command, "  concurrency: 2\n  requests: 20\n  dataset: { kind: random, input_len: 8, output_len: 4 }\n");
        let text = std::fs::read_to_string(&exp).unwrap().replace(
            "  provider: local\n",
            &format!("  provider: local\n  replicas: {replicas}\n"),
        );
        std::fs::write(&exp, text).unwrap();
        common::bin(120)
            .arg("run")
            .arg(&exp)
            .arg("--no-tui")
            .assert()
            .success();
        let r = only_result(d.path());
        assert_eq!(r["summary"]["completed"], 20);
        assert_eq!(r["environment"]["provider"], "local");
        let by = r["summary"]["by_replica"].as_array().map_or(0, Vec::len);
        assert_eq!(by, if replicas == 1 { 0 } else { replicas });
        // Each server said where it listened; after the run nothing listens there.
        let logs = common::files(d.path(), ".server.log");
        assert_eq!(logs.len(), replicas, "{logs:?}");
        for log in logs {
            let log = std::fs::read_to_string(log).unwrap();
            let url = log
                .lines()
                .find_map(|l| l.strip_prefix("serve-sim: "))
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .to_string();
            let addr = url.trim_start_matches("http://");
            assert!(
                std::net::TcpStream::connect(addr).is_err(),
                "the local server still listens on {addr}"
            );
        }
    }
}

#[test]
fn a_local_server_that_dies_is_reported_with_its_log() {
    let d = tempfile::tempdir().unwrap();
    let exp = local_experiment(
        d.path(),
        "[sh, -c, \"echo loading weights; echo CUDA out of memory >&2; exit 3\"]",
        "  concurrency: 1\n  requests: 2\n",
    );
    common::bin(120)
        .arg("run")
        .arg(&exp)
        .assert()
        .code(1)
        .stderr(
            predicates::str::contains("stopped before it was ready")
                .and(predicates::str::contains("CUDA out of memory")),
        );
}

#[test]
fn sigint_while_a_local_server_loads_stops_it() {
    let d = tempfile::tempdir().unwrap();
    let exp = local_experiment(
        d.path(),
        "[sh, -c, \"echo pid $$; exec sleep 600\"]",
        "  concurrency: 1\n  requests: 2\n",
    );
    let mut child = common::background().arg("run").arg(&exp).spawn().unwrap();
    let start = std::time::Instant::now();
    let pid = loop {
        if let Some(pid) = server_log_now(d.path()).and_then(|l| {
            l.lines().find_map(|l| {
                l.strip_prefix("pid ")
                    .map(|p| p.trim().parse::<u32>().unwrap())
            })
        }) {
            break pid;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the local server never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(alive(pid));
    unsafe_sigint(child.id());
    assert_eq!(wait_bounded(&mut child, Duration::from_secs(30)), Some(130));
    let start = std::time::Instant::now();
    while alive(pid) && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !alive(pid),
        "the loading server {pid} outlived the interrupted run"
    );
}

#[test]
fn a_run_with_no_successful_request_writes_null_figures_and_fails() {
    // The pre-flight request is spared; every measured one gets a 500.
    let s = server(
        "instant",
        Faults {
            error_rate: 1.0,
            error_status: 500,
            spare_first: 1,
            ..Faults::default()
        },
        1.0,
    );
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(d.path(), &s.url, "  concurrency: 2\n  requests: 30\n  dataset: { kind: random, input_len: 8, output_len: 4 }\n");
    let out = common::bin(120)
        .arg("run")
        .arg(&exp)
        .arg("--no-tui")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("every request failed"), "{stderr}");
    let r = only_result(d.path());
    assert_eq!(r["status"], "failed");
    assert!(r["error"]
        .as_str()
        .unwrap()
        .starts_with("every request failed (30 requests"));
    let m = &r["summary"];
    assert_eq!(
        (m["completed"].as_u64(), m["failed"].as_u64()),
        (Some(0), Some(30))
    );
    for k in [
        "mean_ttft_ms",
        "median_tpot_ms",
        "p99_e2el_ms",
        "std_itl_ms",
        "mean_interactivity_tok_s_user",
    ] {
        assert!(m[k].is_null(), "{k}: {}", m[k]);
    }
    assert_eq!(
        m["request_throughput"], 0.0,
        "no success in a real duration is a real zero"
    );
    assert!(
        stdout.contains("Mean ttft (ms):                     n/a"),
        "{stdout}"
    );
    // vLLM's own format has no null: it writes 0 there, and so does the export.
    let file = common::result_path(d.path());
    let out = common::bin(120)
        .args(["results", "export", "--format", "vllm"])
        .arg(&file)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["mean_ttft_ms"], 0);
    assert_eq!(v["completed"], 0);
}

/// `kill -SIG pid`.
fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn sigterm_and_sighup_save_what_was_measured_and_stop_the_local_server() {
    let me = assert_cmd::cargo::cargo_bin("llm-inf-bench");
    for sig in ["TERM", "HUP"] {
        let d = tempfile::tempdir().unwrap();
        // A local simulator whose answers take ~0.65 s: the run is mid-workload when signalled.
        let command = format!("[\"{}\", serve-sim, --port, \"{{port}}\", --model, \"{{model}}\", --profile, fixed-50ms-10ms, --startup-delay, 0s]", me.display());
        let exp = local_experiment(d.path(), &command, "  concurrency: 4\n  requests: 100000\n  dataset: { kind: random, input_len: 8, output_len: 60 }\n  ignore_eos: true\n");
        let mut child = common::background()
            .args(["run", "--no-tui"])
            .arg(&exp)
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(3000));
        signal(child.id(), sig);
        // Requests in flight get the grace period (5 s) at most, then the run saves.
        assert_eq!(
            wait_bounded(&mut child, Duration::from_secs(20)),
            Some(130),
            "SIG{sig}"
        );
        let r = only_result(d.path());
        assert_eq!(r["status"], "interrupted", "SIG{sig}");
        let done = r["summary"]["completed"].as_u64().unwrap();
        assert!(done > 0, "SIG{sig}: {done} completed");
        // The local server is gone with the run.
        let log = server_log(d.path());
        let url = log
            .lines()
            .find_map(|l| l.strip_prefix("serve-sim: "))
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        let addr = url.trim_start_matches("http://").to_string();
        let start = std::time::Instant::now();
        while std::net::TcpStream::connect(&addr).is_ok()
            && start.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            std::net::TcpStream::connect(&addr).is_err(),
            "SIG{sig}: the local server still listens on {addr}"
        );
    }
}

#[test]
fn an_output_dir_that_cannot_take_files_is_refused_before_anything_starts() {
    let s = server("instant", Faults::default(), 1.0);
    let d = tempfile::tempdir().unwrap();
    // `out` is a file: no directory can be made there.
    std::fs::write(d.path().join("out"), "a file").unwrap();
    let exp = experiment(d.path(), &s.url, "  concurrency: 1\n  requests: 3\n");
    common::bin(120)
        .args(["run", "--no-tui"])
        .arg(&exp)
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("output.dir")
                .and(predicate::str::contains("cannot be created"))
                .and(predicate::str::contains("--set output.dir=")),
        );
}

#[test]
fn a_write_that_fails_at_the_end_lands_in_the_fallback_and_the_summary_is_printed() {
    // Answers of ~2 s: the run is still measuring when its output directory goes away.
    let s = server("fixed-50ms-10ms", Faults::default(), 1.0);
    let d = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let exp = experiment(d.path(), &s.url, "  concurrency: 2\n  requests: 2\n  dataset: { kind: random, input_len: 8, output_len: 200 }\n  ignore_eos: true\n");
    let child = common::background()
        .args(["run", "--no-tui"])
        .arg(&exp)
        .env("TMPDIR", tmp.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // After the pre-start check made `out`, its place is taken by a file.
    let out_dir = d.path().join("out");
    let start = std::time::Instant::now();
    while !out_dir.is_dir() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the run never made out/"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    std::fs::remove_dir_all(&out_dir).unwrap();
    std::fs::write(&out_dir, "no longer a directory").unwrap();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stdout.contains("Successful requests:                2"),
        "{stdout}"
    );
    let fallback = tmp.path().join("llm-inf-bench");
    let files: Vec<_> = std::fs::read_dir(&fallback).unwrap().collect();
    assert_eq!(files.len(), 1, "{stderr}");
    let saved = files[0].as_ref().unwrap().path();
    assert!(
        stderr.contains(&format!("saved to {} instead", saved.display())),
        "{stderr}"
    );
    common::assert_valid_result(&saved);
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    assert_eq!(r["summary"]["completed"], 2);
}

/// A tmpfs of `size` mounted at `dir` for the life of the value (root only).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(
            ok.success(),
            "mounting a tmpfs needs root (scripts/test.sh runs as root in CI)"
        );
        Self(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
#[ignore = "needs root to mount a tmpfs (scripts/test.sh runs it)"]
fn a_full_disk_is_refused_up_front_and_a_disk_that_fills_loses_nothing() {
    let s = server("fixed-50ms-10ms", Faults::default(), 1.0);
    let d = tempfile::tempdir().unwrap();
    let _fs = Tmpfs::mount(&d.path().join("out"), "256k");
    // Too small for what 100 000 requests write: refused before anything starts.
    let big = experiment(d.path(), &s.url, "  concurrency: 1\n  requests: 100000\n");
    common::bin(120)
        .args(["run", "--no-tui"])
        .arg(&big)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("free").and(predicate::str::contains("need about")));
    // Room at the start; the disk fills while the run measures (every ITL gap kept).
    let tmp = tempfile::tempdir().unwrap();
    let exp = experiment(d.path(), &s.url, "  concurrency: 4\n  requests: 8\n  dataset: { kind: random, input_len: 8, output_len: 200 }\n  ignore_eos: true\n");
    let mut text = std::fs::read_to_string(&exp).unwrap();
    text = text.replace("output:\n", "output:\n  detail: full\n");
    std::fs::write(&exp, text).unwrap();
    let child = common::background()
        .args(["run", "--no-tui"])
        .arg(&exp)
        .env("TMPDIR", tmp.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let free = llm_inf_bench::results::storage::free_bytes(&d.path().join("out")).unwrap();
    std::fs::write(
        d.path().join("out/filler"),
        vec![0u8; (free - 4096) as usize],
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(
        stdout.contains("Successful requests:                8"),
        "{stdout}"
    );
    let saved: Vec<_> = std::fs::read_dir(tmp.path().join("llm-inf-bench"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(saved.len(), 1, "{stderr}");
    common::assert_valid_result(&saved[0]);
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&saved[0]).unwrap()).unwrap();
    assert_eq!(r["summary"]["completed"], 8);
    // Nothing half-written was left on the full disk.
    let left: Vec<_> = std::fs::read_dir(d.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "filler" && !n.ends_with(".server.log"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Without a terminal on stderr (a pipe here, as under nohup or CI) a run prints a plain
/// progress line every `--progress-every`, with counts, rate, TTFT and ETA; `--quiet` none.
#[test]
fn without_a_terminal_progress_is_a_plain_line_and_quiet_silences_it() {
    let s = server("fixed-50ms-10ms", Faults::default(), 1.0);
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(
        d.path(),
        &s.url,
        "  concurrency: 4\n  duration: 2s\n  dataset: { kind: random, input_len: 8, output_len: 10 }\n  ignore_eos: true\n",
    );
    let run = |extra: &[&str]| {
        let out = common::bin(60)
            .args(["run", "--no-tui"])
            .arg(&exp)
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(&["--progress-every", "300ms"]);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with('[')).collect();
    assert!(lines.len() >= 3, "{err}");
    let last = lines[lines.len() - 1];
    assert!(
        last.contains(" done, 0 failed, ")
            && last.contains(" req/s · TTFT p50 ")
            && last.contains(" ms"),
        "{last}"
    );
    assert!(lines[0].contains("ETA 00:0"), "{}", lines[0]);
    // No bar and no escape codes in a log.
    assert!(!err.contains('\u{1b}'), "{err:?}");
    let quiet = run(&["--quiet"]);
    assert!(!quiet.lines().any(|l| l.starts_with('[')), "{quiet}");
    assert!(quiet.contains("saved "), "{quiet}");
}
