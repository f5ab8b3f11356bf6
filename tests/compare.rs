//! `compare` on result files the tool itself writes — records run through its collector and
//! written by its writer, checked against the result schema — and on a real run's file:
//! directions, the noise verdict on identical and on clearly shifted distributions, the exit
//! code of the CI gate, vLLM's file format, and the warning about runs that differ in what
//! they measured.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use llm_inf_bench::config::Experiment;
use llm_inf_bench::metrics::collector::{Collector, Settings};
use llm_inf_bench::metrics::event::{Event, RequestRecord, TokensSource};
use llm_inf_bench::results::{self, Environment, RunResult, Status};
use serde_json::{json, Value};

/// A result file of `n` = 400 requests, 20 per second for 20 s (`rps` per second), whose TTFT
/// spreads over 100–149 ms (shuffled by `seed`) and TPOT is 10 ms, all times `scale`; through
/// the collector and the result writer, exactly as a run makes it.
fn ours(dir: &Path, name: &str, scale: f64, seed: u64, rps: f64, concurrency: u32) -> PathBuf {
    let mut e = Experiment {
        name: name.into(),
        ..Experiment::default()
    };
    e.model.id = "m".into();
    e.workload.concurrency = Some(concurrency);
    let mut col = Collector::new(Settings::of(&e));
    col.on(Event::Started {
        t0: Instant::now(),
        connect_times: vec![Duration::from_millis(1)],
        connect_errors: vec![],
    });
    let n = (rps * 20.0) as u64;
    for i in 0..n {
        let ttft = (100.0 + ((i * (seed * 2 + 37)) % 50) as f64) * scale;
        col.on(Event::Request(Box::new(RequestRecord {
            id: i,
            sent_ms: i as f64 * 1000.0 / rps,
            ttft_ms: Some(ttft),
            e2el_ms: ttft + 640.0 * scale,
            input_tokens: Some(256),
            output_tokens: 65,
            tokens_source: TokensSource::Usage,
            reads: 65,
            itl_ms: Some(vec![10.0 * scale; 64]),
            ..RequestRecord::default()
        })));
    }
    let env = Environment {
        provider: "simulator".into(),
        gpu_type: Some("NVIDIA H100 80GB HBM3".into()),
        gpu_count: 1,
        ..Environment::default()
    };
    let measured = col.finish(Instant::now());
    let r = RunResult::new(
        &e,
        Some(measured),
        Status::Completed,
        None,
        env,
        chrono::Utc::now(),
    );
    let p = dir.join(format!("{name}.json"));
    results::write_atomic(&p, &r).unwrap();
    common::assert_valid_result(&p);
    p
}

fn compare(files: &[&Path], extra: &[&str]) -> (i32, String) {
    let out = Command::cargo_bin("llm-inf-bench")
        .unwrap()
        .env("LLM_INF_BENCH_CONFIG", "/nonexistent")
        .arg("compare")
        .args(files)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// The JSON comparisons of `files` (with `extra` arguments).
fn verdicts_with(files: &[&Path], extra: &[&str]) -> Value {
    let mut args = vec!["--format", "json"];
    args.extend_from_slice(extra);
    let (code, out) = compare(files, &args);
    assert_eq!(code, 0, "{out}");
    serde_json::from_str(&out[..out.rfind(']').unwrap() + 1]).unwrap()
}

fn verdicts(files: &[&Path]) -> Value {
    verdicts_with(files, &[])
}

/// The row of `metric` in one comparison of the JSON report.
fn row<'a>(c: &'a Value, metric: &str) -> &'a Value {
    c["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["metric"] == metric)
        .unwrap_or_else(|| panic!("no {metric} in {c}"))
}

fn verdict(c: &Value, metric: &str) -> String {
    row(c, metric)["verdict"].as_str().unwrap().to_string()
}

#[test]
fn identical_distributions_are_within_noise_and_shifted_ones_are_judged_by_direction() {
    let d = tempfile::tempdir().unwrap();
    let a = ours(d.path(), "a", 1.0, 0, 20.0, 16);
    // The same values in another order, and throughput within its per-second jitter.
    let same = ours(d.path(), "same", 1.0, 3, 20.0, 16);
    // 30 % slower per request, 30 % more requests per second.
    let slower = ours(d.path(), "slower", 1.3, 0, 26.0, 16);
    let v = verdicts(&[&a, &same, &slower]);
    let (same, slower) = (&v[0], &v[1]);
    for m in [
        "mean_ttft_ms",
        "median_ttft_ms",
        "p99_ttft_ms",
        "request_throughput",
    ] {
        assert_eq!(verdict(same, m), "within_noise", "{m}");
    }
    for m in [
        "mean_ttft_ms",
        "median_ttft_ms",
        "p99_ttft_ms",
        "mean_tpot_ms",
    ] {
        assert_eq!(verdict(slower, m), "worse", "lower latency is better: {m}");
    }
    assert_eq!(verdict(slower, "mean_interactivity_tok_s_user"), "worse");
    assert_eq!(verdict(slower, "median_interactivity_tok_s_user"), "worse");
    for m in ["request_throughput", "output_throughput"] {
        assert_eq!(
            verdict(slower, m),
            "better",
            "higher throughput is better: {m}"
        );
    }
    assert_eq!(verdict(slower, "completed"), "info");
    // The interval is there and excludes zero on the right side.
    let row = row(slower, "median_ttft_ms");
    assert!(row["ci"][0].as_f64().unwrap() > 0.0, "{row}");
    assert!((row["delta_pct"].as_f64().unwrap() - 30.0).abs() < 1.0);
}

#[test]
fn a_small_change_is_within_noise_below_the_threshold() {
    let d = tempfile::tempdir().unwrap();
    let a = ours(d.path(), "a", 1.0, 0, 20.0, 16);
    let b = ours(d.path(), "b", 1.03, 0, 20.0, 16);
    let v = verdicts(&[&a, &b]);
    assert_eq!(verdict(&v[0], "median_ttft_ms"), "within_noise");
    let v = verdicts_with(&[&a, &b], &["--threshold", "2%"]);
    assert_eq!(verdict(&v[0], "median_ttft_ms"), "worse");
}

#[test]
fn fail_on_regression_gates_ci() {
    let d = tempfile::tempdir().unwrap();
    let a = ours(d.path(), "a", 1.0, 0, 20.0, 16);
    let same = ours(d.path(), "same", 1.0, 3, 20.0, 16);
    let slower = ours(d.path(), "slower", 1.3, 0, 20.0, 16);
    assert_eq!(compare(&[&a, &same], &["--fail-on-regression"]).0, 0);
    let (code, out) = compare(&[&a, &slower], &["--fail-on-regression"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("worse than the baseline"));
    // Without the flag a regression is reported, not failed on.
    assert_eq!(compare(&[&a, &slower], &[]).0, 0);
    let (code, out) = compare(&[&a, &slower], &["--format", "markdown"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("| p99_ttft_ms |") && out.contains("❌ worse"),
        "{out}"
    );
}

#[test]
fn the_runs_differences_are_warned_about() {
    let d = tempfile::tempdir().unwrap();
    let a = ours(d.path(), "a", 1.0, 0, 20.0, 16);
    let b = ours(d.path(), "b", 1.0, 0, 20.0, 64);
    let (code, out) = compare(&[&a, &b], &[]);
    assert_eq!(code, 0);
    assert!(
        out.contains("warning: the runs differ in concurrency: A 16, B 64"),
        "{out}"
    );
}

#[test]
fn vllm_files_old_and_new_are_read() {
    let d = tempfile::tempdir().unwrap();
    // `vllm bench serve --save-result --save-detailed`: seconds, old goodput key.
    let vllm = |name: &str, key: &str, ttft_s: f64| {
        let n = 200;
        let v = json!({
            "date": "20250101-000000", "backend": "vllm", "model_id": "m", "num_prompts": n,
            "request_rate": "inf", "max_concurrency": 16, "duration": 10.0, "completed": n,
            "request_throughput": 20.0, key: 19.0, "output_throughput": 1280.0,
            "mean_ttft_ms": ttft_s * 1e3, "median_ttft_ms": ttft_s * 1e3, "p99_ttft_ms": ttft_s * 1e3 + 9.9,
            "ttfts": (0..n).map(|i| ttft_s + (i % 10) as f64 * 0.001).collect::<Vec<_>>(),
            "itls": (0..n).map(|_| vec![0.01; 63]).collect::<Vec<_>>(),
            "output_lens": vec![64; n],
            "input_lens": vec![512; n],
            "errors": vec![""; n],
        });
        let p = d.path().join(name);
        std::fs::write(&p, v.to_string()).unwrap();
        p
    };
    let old = vllm("old.json", "request_goodput:", 0.100);
    let new = vllm("new.json", "request_goodput", 0.150);
    let v = verdicts(&[&old, &new]);
    let c = &v[0];
    let row = |m: &str| row(c, m);
    // The old colon key is read as request_goodput.
    assert_eq!(row("request_goodput")["a"], 19.0);
    assert_eq!(verdict(c, "median_ttft_ms"), "worse");
    assert!(
        row("median_ttft_ms")["ci"].is_array(),
        "judged on the per-request ttfts"
    );
    // ITL gaps in seconds became milliseconds.
    assert_eq!(row("median_ttft_ms")["a"], 100.0);
    // Ours against vLLM's own file.
    let ours_file = ours(d.path(), "ours", 1.0, 0, 20.0, 16);
    let v = verdicts(&[&ours_file, &new]);
    assert!(v[0]["rows"].as_array().unwrap().len() > 5);
}

#[test]
fn figures_without_data_are_null_in_the_file_and_n_a_in_compare() {
    let d = tempfile::tempdir().unwrap();
    let a = ours(d.path(), "a", 1.0, 0, 20.0, 16);
    // A run in which nothing succeeded, as the tool writes it.
    let e = Experiment {
        name: "none".into(),
        ..Experiment::default()
    };
    let r = RunResult::new(
        &e,
        None,
        Status::Failed,
        Some("every request failed".into()),
        Environment::default(),
        chrono::Utc::now(),
    );
    let none = d.path().join("none.json");
    results::write_atomic(&none, &r).unwrap();
    common::assert_valid_result(&none);
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&none).unwrap()).unwrap();
    assert!(v["summary"]["mean_ttft_ms"].is_null(), "{}", v["summary"]);
    assert!(v["summary"]["p99_ttft_ms"].is_null());
    let c = verdicts(&[&a, &none]);
    let row = row(&c[0], "mean_ttft_ms");
    assert!(row["b"].is_null() && row["delta"].is_null(), "{row}");
    assert_eq!(row["verdict"], "info");
    let (_, table) = compare(&[&a, &none], &[]);
    let line = table
        .lines()
        .find(|l| l.starts_with("mean_ttft_ms"))
        .unwrap();
    assert!(line.contains("n/a"), "{line}");
}

#[test]
fn a_real_runs_file_compares_with_itself_as_within_noise() {
    let s = common::sim_server("fixed-50ms-10ms");
    let d = tempfile::tempdir().unwrap();
    let exp = common::write(
        d.path(),
        "exp.yaml",
        &format!(
            "name: t\nmodel: {{ id: m }}\ninfrastructure: {{ provider: existing, base_url: \"{}\" }}\nworkload:\n  concurrency: 8\n  requests: 64\n  dataset: {{ kind: random, input_len: 8, output_len: 8 }}\n  ignore_eos: true\noutput: {{ dir: out }}\n",
            s.url
        ),
    );
    common::bin(120)
        .current_dir(d.path())
        .args(["run", "--no-tui"])
        .arg(&exp)
        .assert()
        .success();
    let file = common::result_path(d.path());
    common::assert_valid_result(&file);
    let v = verdicts(&[&file, &file]);
    assert_eq!(verdict(&v[0], "median_ttft_ms"), "within_noise");
    assert_eq!(row(&v[0], "completed")["a"], 64.0);
}

#[test]
fn a_file_that_is_not_a_result_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let a = ours(d.path(), "a", 1.0, 0, 20.0, 16);
    let junk = d.path().join("junk.json");
    std::fs::write(&junk, "{\"hello\": 1}").unwrap();
    let (code, out) = compare(&[&a, &junk], &[]);
    assert_eq!(code, 2);
    assert!(out.contains("junk.json") && out.contains("not"), "{out}");
    let (code, out) = compare(&[&a, &a], &["--threshold", "150%"]);
    assert_eq!(code, 2, "{out}");
}
