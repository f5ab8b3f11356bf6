//! Found by trying it (issue 22): a run never outlives its stop or its bounds, reads nothing
//! unbounded on someone's word, never overwrites another run's files, and says what it waits
//! for. Each test is a fault a user (or an adversary) reached, and the bound that now holds.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

fn json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn out_dir(d: &Path) -> String {
    d.join("out").display().to_string()
}

/// A server that is ready (`/health`, `/v1/models` list `m`) and then never answers a
/// generation request: it reads it, counts it in `held`, and keeps the socket open.
fn silent_server() -> (String, Arc<AtomicU64>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let held = Arc::new(AtomicU64::new(0));
    let h = held.clone();
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = vec![0u8; 65536];
            let n = s.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).into_owned();
            let body = if head.starts_with("GET /health") {
                Some(String::new())
            } else if head.starts_with("GET /v1/models") {
                Some(r#"{"object":"list","data":[{"id":"m","object":"model"}]}"#.to_string())
            } else if head.starts_with("POST") {
                h.fetch_add(1, Ordering::SeqCst);
                kept.push(s);
                continue;
            } else {
                None
            };
            let reply = match body {
                Some(b) => format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{b}",
                    b.len()
                ),
                None => "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    .to_string(),
            };
            let _ = s.write_all(reply.as_bytes());
        }
    });
    (url, held)
}

fn existing(d: &Path, url: &str, workload: &str) -> PathBuf {
    common::write(
        d,
        "e.yaml",
        &format!(
            "name: b\nmodel: {{ id: m }}\ninfrastructure: {{ provider: existing, base_url: {url}, health_timeout: 20s }}\nmetrics: {{ scrape: false }}\noutput: {{ dir: {} }}\nworkload:\n{workload}",
            out_dir(d)
        ),
    )
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "{what}: not within {secs}s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---- 12: the pre-flight request is bounded by request_timeout, and ends on a stop ----

#[test]
fn a_server_that_never_answers_the_pre_flight_fails_the_run_within_request_timeout() {
    let (url, _) = silent_server();
    let d = tempfile::tempdir().unwrap();
    let exp = existing(
        d.path(),
        &url,
        "  concurrency: 1\n  requests: 4\n  request_timeout: 2s\n  dataset: { kind: random, input_len: 8, output_len: 4 }\n",
    );
    // Before: 120 s, whatever request_timeout said.
    common::bin(30)
        .args(["run", "--no-tui", "--yes"])
        .arg(&exp)
        .assert()
        .code(1)
        .stderr(predicates::str::contains("pre-flight request failed"))
        .stderr(predicates::str::contains("no complete answer within 2s"));
}

#[test]
fn sigterm_during_the_pre_flight_exits_at_once() {
    let (url, held) = silent_server();
    let d = tempfile::tempdir().unwrap();
    let exp = existing(
        d.path(),
        &url,
        "  concurrency: 1\n  requests: 4\n  request_timeout: 10m\n  dataset: { kind: random, input_len: 8, output_len: 4 }\n",
    );
    let mut child = common::background()
        .args(["run", "--no-tui", "--yes"])
        .arg(&exp)
        .spawn()
        .unwrap();
    wait_for("the pre-flight request", 30, || {
        held.load(Ordering::SeqCst) > 0
    });
    // Before: the process waited for the pre-flight's 120 s (on a pod, billed).
    let code = common::signal_and_wait(&mut child, "TERM", 10);
    assert_eq!(code, Some(130), "exits interrupted within seconds");
    assert_eq!(common::result(d.path())["status"], "interrupted");
}

// ---- 13: after a hard stop the process exits within moments of saving ----

fn stalling_sim() -> common::Sim {
    use llm_inf_bench::config::{Personality, SimProfile};
    let mut cfg = llm_inf_bench::sim::SimConfig::new(SimProfile::Instant, Personality::Vllm, "m");
    // Every measured stream stalls for 10 minutes after its first chunk.
    cfg.faults.spare_first = 1;
    cfg.faults.stall_rate = 1.0;
    cfg.faults.stall = Duration::from_secs(600);
    cfg.faults.stall_after = 1;
    common::sim_with(cfg)
}

fn stalled_run(d: &Path, url: &str) -> std::process::Child {
    let exp = existing(
        d,
        url,
        "  concurrency: 4\n  requests: 100\n  request_timeout: 10m\n  dataset: { kind: random, input_len: 8, output_len: 16 }\n",
    );
    let mut child = common::background()
        .args(["run", "--no-tui", "--yes"])
        .arg(&exp)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The measured requests are in flight (and stalled) once the timed window has begun.
    let mut err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = err.read_to_end(&mut sink);
    });
    std::thread::sleep(Duration::from_millis(1500));
    child
}

#[test]
fn a_second_ctrl_c_with_stalled_requests_saves_and_exits_at_once() {
    let s = stalling_sim();
    let d = tempfile::tempdir().unwrap();
    let mut child = stalled_run(d.path(), &s.url);
    assert!(std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    std::thread::sleep(Duration::from_millis(300));
    // Before: saved at once, then the process waited for the stalled requests' timeout.
    let code = common::signal_and_wait(&mut child, "INT", 10);
    assert_eq!(code, Some(130));
    assert_eq!(common::result(d.path())["status"], "interrupted");
}

#[test]
fn sigterm_with_stalled_requests_saves_and_exits_after_its_grace() {
    let s = stalling_sim();
    let d = tempfile::tempdir().unwrap();
    let mut child = stalled_run(d.path(), &s.url);
    // The grace for requests in flight is 5 s; then save and go, not wait 10 minutes.
    let code = common::signal_and_wait(&mut child, "TERM", 15);
    assert_eq!(code, Some(130));
    assert_eq!(common::result(d.path())["status"], "interrupted");
}

// ---- 3: a trace never waits past its duration, or its stop ----

fn trace_run(d: &Path, url: &str, lines: &str, bounds: &str) -> PathBuf {
    let trace = d.join("t.jsonl");
    std::fs::write(&trace, lines).unwrap();
    existing(
        d,
        url,
        &format!(
            "  dataset: {{ kind: trace, format: mooncake, path: {} }}\n{bounds}",
            trace.display()
        ),
    )
}

#[test]
fn a_trace_run_stops_at_its_duration_however_far_the_next_timestamp() {
    let s = common::sim_server("instant");
    for far in ["60000", "1e18"] {
        let d = tempfile::tempdir().unwrap();
        let lines = format!(
            "{{\"timestamp\": 0, \"input_length\": 16, \"output_length\": 4, \"hash_ids\": [1]}}\n{{\"timestamp\": {far}, \"input_length\": 16, \"output_length\": 4, \"hash_ids\": [2]}}\n"
        );
        let exp = trace_run(d.path(), &s.url, &lines, "  duration: 3s\n");
        // Before: 61 s (a billed pod), or never for 1e18.
        common::bin(30)
            .args(["run", "--no-tui", "--yes"])
            .arg(&exp)
            .assert()
            .success();
        let r = common::result(d.path());
        assert_eq!(r["summary"]["completed"], 1, "{far}");
        // The window is the 3 s asked for, not the 1 ms of one request (which made 738 req/s).
        let dur = r["summary"]["duration_s"].as_f64().unwrap();
        assert!((2.9..10.0).contains(&dur), "{far}: duration_s {dur}");
    }
}

#[test]
fn ctrl_c_during_a_trace_gap_exits_at_once() {
    let s = common::sim_server("instant");
    let d = tempfile::tempdir().unwrap();
    let lines = "{\"timestamp\": 0, \"input_length\": 16, \"output_length\": 4, \"hash_ids\": [1]}\n{\"timestamp\": 600000, \"input_length\": 16, \"output_length\": 4, \"hash_ids\": [2]}\n";
    let exp = trace_run(d.path(), &s.url, lines, "");
    let mut child = common::background()
        .args(["run", "--no-tui", "--yes"])
        .arg(&exp)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    // One Ctrl-C: no new requests, none in flight: the run ends now, not in ten minutes.
    let code = common::signal_and_wait(&mut child, "INT", 10);
    assert_eq!(code, Some(130));
    assert_eq!(common::result(d.path())["summary"]["completed"], 1);
}

/// Runs a shipped example (its results in a temporary directory); its result.
fn run_example(name: &str) -> Value {
    let d = tempfile::tempdir().unwrap();
    let exp = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("experiments/examples")
        .join(name);
    common::bin(120)
        .args(["run", "--no-tui", "--yes"])
        .arg(&exp)
        .args(["--set", &format!("output.dir={}", out_dir(d.path()))])
        .assert()
        .success();
    common::result(d.path())
}

// ---- 4: a ramp is not saturation ----

#[test]
fn the_ramp_example_runs_its_whole_duration_without_a_saturation_stop() {
    let r = run_example("ramp-rate-sim.yaml");
    // Before: stopped at 12.5–29.5 s of 30 as "saturated" with TTFT flat, requests aborted.
    assert_eq!(
        r["termination_reason"], "duration",
        "{}",
        r["termination_reason"]
    );
    assert_eq!(r["summary"]["failed"], 0);
}

// ---- 5: the in-process simulator's gauges are those of its engine ----

#[test]
fn the_quickstart_sees_its_concurrency_in_the_servers_gauges() {
    let r = run_example("quickstart.yaml");
    let s = &r["server_metrics"]["summary"];
    // Before: 1 / 0.86 (scrapes phase-locked with the lock-step batches of 16).
    let (peak, mean) = (
        s["peak_running"].as_f64().unwrap(),
        s["mean_running"].as_f64().unwrap(),
    );
    // (The mean is the time average of a lock-step cycle: lower on a busy machine, where the
    // client is slow to send the next wave; 5 was seen in CI beside other tests.)
    assert!(
        peak >= 12.0 && mean >= 3.0,
        "running peak {peak}, mean {mean}"
    );
    assert_eq!(r["client"]["peak_in_flight"], 16);
}

// ---- 7: runs started together never share a name ----

#[test]
fn runs_started_in_the_same_second_keep_every_result() {
    let s = common::sim_server("instant");
    let d = tempfile::tempdir().unwrap();
    let exp = existing(
        d.path(),
        &s.url,
        "  concurrency: 1\n  requests: 20\n  dataset: { kind: random, input_len: 8, output_len: 4 }\n",
    );
    let children: Vec<std::process::Child> = (0..3)
        .map(|_| {
            common::background()
                .args(["run", "--no-tui", "--yes"])
                .arg(&exp)
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    // Before: three exits 0, one file left.
    let results = common::files(d.path(), ".json");
    assert_eq!(results.len(), 3, "{results:?}");
    let locks: Vec<_> = std::fs::read_dir(d.path().join("out"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".lock")
        })
        .collect();
    assert!(locks.is_empty(), "reservations are released: {locks:?}");
}

// ---- 8: a result names only a side file beside it; readers never follow anything else ----

fn a_result(d: &Path) -> PathBuf {
    let s = common::sim_server("instant");
    let exp = existing(
        d,
        &s.url,
        "  concurrency: 1\n  requests: 5\n  dataset: { kind: random, input_len: 8, output_len: 4 }\n",
    );
    common::bin(30)
        .args(["run", "--no-tui", "--yes"])
        .arg(&exp)
        .assert()
        .success();
    common::result_path(d)
}

#[test]
fn a_result_naming_a_device_a_fifo_or_another_directory_as_its_side_file_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let path = a_result(d.path());
    let fifo = path.with_file_name("evil.requests.jsonl");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    for (name, says) in [
        ("/dev/zero", "must be the plain name"),
        ("../../etc/passwd", "must be the plain name"),
        ("evil.requests.jsonl", "not a regular file (a FIFO)"),
    ] {
        let mut r = json(&path);
        r["requests_file"] = name.into();
        std::fs::write(&path, r.to_string()).unwrap();
        // `report` and `plot` read no records: they never open the side file at all.
        common::bin(20).arg("report").arg(&path).assert().success();
        for cmd in [vec!["results", "show"], vec!["compare"]] {
            let mut c = common::bin(20);
            c.args(&cmd).arg(&path);
            if cmd == ["compare"] {
                c.arg(&path);
            }
            // Before: grew without bound (/dev/zero) or hung (a FIFO).
            let out = c.output().unwrap();
            assert!(!out.status.success(), "{cmd:?} {name}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains(says), "{cmd:?} {name}: {err}");
        }
    }
}

#[test]
fn an_index_naming_a_device_is_refused_and_results_list_follows_no_symlink() {
    let d = tempfile::tempdir().unwrap();
    let path = a_result(d.path());
    let dir = path.parent().unwrap();
    let idx = serde_json::json!({
        "schema_version": 1, "kind": "sweep", "name": "b", "started": 0,
        "started_at": "2026-01-01T00:00:00Z", "finished_at": null, "status": "completed",
        "planned": ["c1"], "spent_usd": 0.0, "config": {},
        "points": [{"label": "c1", "concurrency": 1, "rate": null, "input_len": null,
            "output_len": null, "file": "/dev/zero", "status": "completed",
            "termination_reason": "completed"}]
    });
    let idx_path = dir.join("b-20260101-000000.sweep.json");
    std::fs::write(&idx_path, idx.to_string()).unwrap();
    common::bin(20)
        .arg("report")
        .arg(&idx_path)
        .assert()
        .failure()
        .stderr(predicates::str::contains(
            "a point's `file` must be the plain name",
        ));
    // A `*.json` symlink to a FIFO in the results directory: listed past, not opened.
    let fifo = d.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    std::os::unix::fs::symlink(&fifo, dir.join("trap.json")).unwrap();
    let out = common::bin(20)
        .args(["results", "list"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(!listed.contains("trap.json"), "{listed}");
    assert!(
        listed.contains(path.file_name().unwrap().to_str().unwrap()),
        "{listed}"
    );
}

// ---- 9: secrets stay out of `config show` and of world-readable logs ----

#[test]
fn config_show_redacts_framework_env_as_results_do() {
    let d = tempfile::tempdir().unwrap();
    let exp = common::write(
        d.path(),
        "e.yaml",
        "name: s\nmodel: { id: m }\nframework: { env: { HF_TOKEN: hf_very_secret_1 } }\ninfrastructure: { provider: simulator }\nworkload: { concurrency: 1, requests: 1 }\n",
    );
    let out = common::bin(20)
        .args(["config", "show"])
        .arg(&exp)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(!text.contains("hf_very_secret_1"), "{text}");
    assert!(text.contains("HF_TOKEN: \"<redacted>\""), "{text}");
}

#[test]
fn a_local_servers_log_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let exp = common::write(
        d.path(),
        "l.yaml",
        &format!(
            "name: l\nmodel: {{ id: m }}\ninfrastructure:\n  provider: local\n  command: [\"{}\", serve-sim, --port, \"{{port}}\", --model, m, --profile, instant, --startup-delay, 0s]\n  health_timeout: 60s\noutput: {{ dir: {} }}\nworkload: {{ concurrency: 1, requests: 3, dataset: {{ kind: random, input_len: 8, output_len: 4 }} }}\n",
            assert_cmd::cargo::cargo_bin("llm-inf-bench").display(),
            out_dir(d.path())
        ),
    );
    common::bin(60)
        .args(["run", "--no-tui", "--yes"])
        .arg(&exp)
        .assert()
        .success();
    let log = common::files(d.path(), ".server.log").remove(0);
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", log.display());
}

// ---- 10: impossible lengths are refused before anything starts ----

#[test]
fn lengths_past_the_context_are_refused_by_validate_and_run() {
    let d = tempfile::tempdir().unwrap();
    let big = common::write(
        d.path(),
        "big.yaml",
        "name: x\nmodel: { id: m }\ninfrastructure: { provider: simulator }\nworkload:\n  concurrency: 1\n  requests: 1\n  dataset: { kind: random, input_len: 1000000000, output_len: 4 }\n",
    );
    // Before: validate said ok, and run died allocating 7 GB (exit 134, no result).
    for args in [vec!["validate"], vec!["run", "--no-tui", "--yes"]] {
        common::bin(20)
            .args(&args)
            .arg(&big)
            .assert()
            .code(2)
            .stderr(predicates::str::contains("without `model.max_model_len`"));
    }
    for (line, says) in [
        (
            "{\"timestamp\": 0, \"input_length\": 4000000000, \"output_length\": 4, \"hash_ids\": [1]}",
            "more than the context",
        ),
        (
            &format!(
                "{{\"timestamp\": 0, \"input_length\": 600, \"output_length\": 4, \"hash_ids\": [{}]}}",
                (0..1_000_000).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
            ),
            "1000000 `hash_ids` for a prompt of 600 tokens",
        ),
    ] {
        let t = d.path().join("t.jsonl");
        std::fs::write(&t, format!("{line}\n")).unwrap();
        let exp = common::write(
            d.path(),
            "t.yaml",
            &format!(
                "name: x\nmodel: {{ id: m, max_model_len: 8192 }}\ninfrastructure: {{ provider: simulator }}\nworkload:\n  dataset: {{ kind: trace, format: mooncake, path: {} }}\n",
                t.display()
            ),
        );
        common::bin(20)
            .arg("validate")
            .arg(&exp)
            .assert()
            .code(2)
            .stderr(predicates::str::contains(says));
    }
}

// ---- 14: experiment and dataset files: regular files, bounded, not nested without end ----

#[test]
fn hostile_experiment_files_are_refused_quickly_and_by_name() {
    let d = tempfile::tempdir().unwrap();
    let deep = d.path().join("deep.yaml");
    std::fs::write(&deep, format!("name: x\nmodel: {}\n", "[".repeat(100_000))).unwrap();
    // Before: 20–25 s in the YAML parser (bounded here by the command's own timeout).
    common::bin(10)
        .arg("validate")
        .arg(&deep)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("nested more than 64 deep"));
    let huge = d.path().join("huge.yaml");
    std::fs::write(
        &huge,
        format!("name: x\ndescription: \"{}\"\n", "x".repeat(5 << 20)),
    )
    .unwrap();
    common::bin(10)
        .arg("validate")
        .arg(&huge)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("limit for an experiment file"));
    let fifo = d.path().join("fifo.yaml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let child = common::write(d.path(), "child.yaml", "extends: /dev/zero\nname: x\n");
    for (f, says) in [(&fifo, "a FIFO"), (&child, "a device")] {
        // Before: a FIFO blocked forever; /dev/zero read until memory ran out.
        common::bin(10)
            .arg("validate")
            .arg(f)
            .assert()
            .code(2)
            .stderr(predicates::str::contains(says));
    }
    let data = common::write(
        d.path(),
        "data.yaml",
        "name: x\nmodel: { id: m }\ninfrastructure: { provider: simulator }\nworkload:\n  concurrency: 1\n  requests: 1\n  dataset: { kind: jsonl, path: /dev/zero }\n",
    );
    common::bin(10)
        .arg("validate")
        .arg(&data)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("not a regular file (a device)"));
}

// ---- 15: more streams than open files: the limit raised, or the run refused up front ----

fn under_ulimit(limit: &str, exp: &Path) -> std::process::Output {
    let bin = assert_cmd::cargo::cargo_bin("llm-inf-bench");
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit {limit} && exec \"$0\" run --no-tui --yes \"$1\""
        ))
        .arg(bin)
        .arg(exp)
        .env("LLM_INF_BENCH_CONFIG", "/nonexistent")
        .env("LLM_INF_BENCH_STATE_DIR", common::test_state_dir())
        .output()
        .unwrap()
}

#[test]
fn more_streams_than_the_soft_open_file_limit_raise_it_or_refuse_the_run() {
    let s = common::sim_server("instant");
    let d = tempfile::tempdir().unwrap();
    let exp = existing(
        d.path(),
        &s.url,
        "  concurrency: 400\n  requests: 1200\n  dataset: { kind: random, input_len: 8, output_len: 4 }\n",
    );
    // Soft limit 256, hard limit as it is: raised, and all 400 streams are open at once.
    let out = under_ulimit("-Sn 256", &exp);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("open-file limit raised from 256"), "{err}");
    let r = common::result(d.path());
    assert_eq!(r["client"]["peak_in_flight"], 400, "{}", r["client"]);
    assert_eq!(r["summary"]["failed"], 0);
    // Hard limit 256 too: refused before anything starts, with the numbers.
    // Before: exit 0, 997 "Too many open files", and a result that said 2000.
    let out = under_ulimit("-n 256", &exp);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("400 concurrent streams need about 464 open files")
            && err.contains("at most 256"),
        "{err}"
    );
}

// ---- 16: a wrong address says what it waits for; userinfo and `/v1` are named ----

#[test]
fn waiting_for_a_wrong_address_says_what_it_waits_for() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = tempfile::tempdir().unwrap();
    let exp = existing(
        d.path(),
        &format!("http://127.0.0.1:{port}"),
        "  concurrency: 1\n  requests: 1\n  dataset: { kind: random, input_len: 8, output_len: 4 }\n",
    );
    let out = common::bin(60)
        .args([
            "run",
            "--no-tui",
            "--yes",
            "--set",
            "infrastructure.health_timeout=8s",
        ])
        .arg(&exp)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("waiting for http://127.0.0.1:{port}/health")),
        "{err}"
    );
    assert!(
        err.to_lowercase().contains("refused"),
        "the last connect error: {err}"
    );
}

#[test]
fn a_url_with_a_password_is_refused_without_echoing_it() {
    let d = tempfile::tempdir().unwrap();
    let exp = existing(
        d.path(),
        "http://admin:hunter2secret@127.0.0.1:9",
        "  concurrency: 1\n  requests: 1\n",
    );
    let out = common::bin(10).arg("validate").arg(&exp).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("user name or password"), "{err}");
    assert!(!err.contains("hunter2secret"), "{err}");
}

#[test]
fn a_base_url_ending_in_v1_is_named_at_once() {
    let s = common::sim_server("instant");
    let d = tempfile::tempdir().unwrap();
    let exp = existing(
        d.path(),
        &format!("{}/v1", s.url),
        "  concurrency: 1\n  requests: 1\n  dataset: { kind: random, input_len: 8, output_len: 4 }\n",
    );
    common::bin(15)
        .args(["run", "--no-tui", "--yes"])
        .arg(&exp)
        .assert()
        .code(1)
        .stderr(predicates::str::contains("drop the `/v1`"));
}

// ---- 19: --resume never skips a broken newer index ----

#[test]
fn resume_refuses_to_pass_a_broken_newer_index() {
    let s = common::sim_server("instant");
    let d = tempfile::tempdir().unwrap();
    let exp = existing(
        d.path(),
        &s.url,
        "  requests: 4\n  dataset: { kind: random, input_len: 8, output_len: 4 }\n  sweep: { concurrency: [1, 2] }\n",
    );
    common::bin(30)
        .args(["run", "--no-tui", "--yes"])
        .arg(&exp)
        .assert()
        .success();
    let old = common::files(d.path(), ".sweep.json").remove(0);
    let mut idx = json(&old);
    idx["status"] = "interrupted".into();
    std::fs::write(&old, idx.to_string()).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let broken = old.with_file_name("b-29990101-000000.sweep.json");
    std::fs::write(&broken, "{\"schema_version\": 1, \"kind\": \"swe").unwrap();
    // Before: the broken newest index was skipped in silence and the older sweep resumed.
    common::bin(30)
        .args(["run", "--no-tui", "--yes", "--resume"])
        .arg(&exp)
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "b-29990101-000000.sweep.json cannot be read",
        ));
}

// ---- thousands of streams from one process (issue 24) ----

#[test]
fn three_thousand_streams_at_once_from_one_process() {
    // The simulator runs in this process: room for its side of the connections too.
    llm_inf_bench::client::limits::ensure_open_files(8_000).unwrap();
    let s = common::sim_server("instant");
    let d = tempfile::tempdir().unwrap();
    let exp = existing(
        d.path(),
        &s.url,
        "  concurrency: 3000\n  requests: 9000\n  dataset: { kind: random, input_len: 8, output_len: 4 }\n  ignore_eos: true\n",
    );
    common::bin(180)
        .args(["run", "--no-tui", "--yes"])
        .arg(&exp)
        .assert()
        .success();
    let r = common::result(d.path());
    assert_eq!(r["summary"]["completed"], 9000);
    assert_eq!(r["summary"]["failed"], 0);
    // Every stream was open at once: the concurrency asked for is the concurrency reached.
    assert_eq!(r["client"]["peak_in_flight"], 3000, "{}", r["client"]);
}
