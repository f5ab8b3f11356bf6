//! `compare` on hand-made result files: directions, the noise verdict on identical and on
//! clearly shifted distributions, the exit code of the CI gate, vLLM's file format, and the
//! warning about runs that differ in what they measured.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::{json, Value};

/// An llm-inf-bench result file: `n` requests whose TTFT spreads over 100–149 ms (shuffled by
/// `seed`) times `scale`, 20 s of per-second buckets at `rps` requests/s.
fn ours(dir: &Path, name: &str, scale: f64, seed: u64, rps: f64, concurrency: u32) -> PathBuf {
    let n = 400u64;
    let requests: Vec<Value> = (0..n)
        .map(|i| {
            let ttft = (100.0 + ((i * (seed * 2 + 37)) % 50) as f64) * scale;
            let e2el = ttft + 640.0 * scale;
            json!({"id": i, "sent_ms": i as f64 * 10.0, "ttft_ms": ttft, "e2el_ms": e2el,
                   "input_tokens": 512, "output_tokens": 65, "tokens_source": "usage", "reads": 65,
                   "error": null})
        })
        .collect();
    let mut ttfts: Vec<f64> = requests
        .iter()
        .map(|r| r["ttft_ms"].as_f64().unwrap())
        .collect();
    ttfts.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        let r = p / 100.0 * (ttfts.len() - 1) as f64;
        let (lo, hi) = (r.floor() as usize, r.ceil() as usize);
        ttfts[lo] + (ttfts[hi] - ttfts[lo]) * (r - lo as f64)
    };
    let mean = ttfts.iter().sum::<f64>() / ttfts.len() as f64;
    let tpot = 10.0 * scale;
    let series: Vec<Value> = (0..21)
        .map(|s| {
            // A little jitter per second, and a partial last second.
            let c = if s == 20 {
                rps / 4.0
            } else {
                rps + [-1.0, 0.0, 1.0][s % 3]
            };
            json!({"second": s, "completed": c, "failed": 0, "output_tokens": c * 65.0})
        })
        .collect();
    let v = json!({
        "schema_version": 1, "name": name, "status": "completed",
        "config": {"model": {"id": "m"}, "workload": {"concurrency": concurrency, "dataset": {"kind": "random", "input_len": 512, "output_len": 64}}},
        "environment": {"gpu_type": "NVIDIA H100 80GB HBM3", "gpu_count": 1},
        "summary": {
            "completed": n, "failed": 0, "duration": 20.0,
            "request_throughput": rps, "output_throughput": rps * 65.0,
            "mean_ttft_ms": mean, "median_ttft_ms": pct(50.0), "p99_ttft_ms": pct(99.0),
            "mean_tpot_ms": tpot, "median_tpot_ms": tpot, "p99_tpot_ms": tpot,
            "interactivity_tok_s_user": 1000.0 / tpot
        },
        "time_series": series,
        "requests": requests
    });
    let p = dir.join(format!("{name}.json"));
    std::fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
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
    assert_eq!(verdict(slower, "interactivity_tok_s_user"), "worse");
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
