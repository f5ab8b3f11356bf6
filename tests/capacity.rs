//! Answers, not grids, on the simulator: a capacity search finds the edge of `h100-llama8b`
//! under an SLO within its tolerance in at most `max_points` probes (and resumes); a steady
//! point stops before its cap on a stable server and not on a ramping one; an over-capacity
//! open loop stops as `saturated` long before its duration.

mod common;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

fn experiment(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    with_profile(dir, name, "h100-llama8b", body)
}

fn with_profile(dir: &Path, name: &str, profile: &str, body: &str) -> std::path::PathBuf {
    common::write(
        dir,
        &format!("{name}.yaml"),
        &format!(
            "name: {name}\nmodel: {{ id: m }}\noutput: {{ dir: {} }}\ninfrastructure:\n  provider: simulator\n  price_per_hour_usd: 2.69\n  simulator: {{ profile: {profile}, speed: 4.0 }}\nmetrics: {{ scrape_interval: 500ms }}\n{body}",
            dir.join("out").display()
        ),
    )
}

fn json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

const SEARCH: &str = "workload:\n  duration: 12s\n  requests: 1200\n  dataset: { kind: random, input_len: 1024, output_len: 128 }\n  ignore_eos: true\n  search: { over: rate, slo: { ttft_ms: 300, tpot_ms: 30 }, percentile: 99, tolerance: 5%, max_points: 8, start: 2, max: 1000 }\n";

#[test]
fn a_rate_search_finds_the_capacity_under_the_slo_within_the_tolerance() {
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(d.path(), "cap", SEARCH);
    let out = common::bin(600)
        .arg("run")
        .arg(&exp)
        .args(["--yes", "--no-tui"])
        .assert()
        .success()
        .stderr(predicates::str::contains("capacity: "));
    // The answer is the run's last line on stdout, under the probes' table.
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let last = stdout.trim_end().lines().last().unwrap_or_default();
    assert!(last.starts_with("capacity: "), "{stdout}");
    assert!(
        stdout.lines().any(|l| l.starts_with("SLO: p99 TTFT")),
        "{stdout}"
    );
    let idx_path = common::files(d.path(), ".sweep.json").remove(0);
    let idx = json(&idx_path);
    common::assert_valid(&common::index_schema(), &idx, &idx_path);
    assert_eq!(idx["status"], "completed", "{idx}");
    let s = &idx["searches"][0];
    let probes = s["probes"].as_array().unwrap();
    assert!(probes.len() <= 8, "{} probes", probes.len());
    let answer = s["answer"].as_f64().expect("an answer");
    let failed = s["failed_at"].as_f64().expect("a failing load above it");
    assert_eq!(s["reason"], "precision_reached", "{s}");
    assert!((failed - answer) / failed <= 0.05, "{answer}..{failed}");
    // Every probe is a measured point with its own result; the verdicts agree with the files.
    for p in probes {
        let point = idx["points"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["label"] == p["label"])
            .unwrap();
        let r = json(&d.path().join("out").join(point["file"].as_str().unwrap()));
        let ttft = r["summary"]["p99_ttft_ms"]
            .as_f64()
            .unwrap_or(f64::INFINITY);
        let tpot = r["summary"]["p99_tpot_ms"]
            .as_f64()
            .unwrap_or(f64::INFINITY);
        let saturated = r["termination_reason"]
            .as_str()
            .unwrap()
            .starts_with("saturated");
        let meets = ttft <= 300.0 && tpot <= 30.0 && !saturated;
        assert_eq!(
            p["passed"].as_bool().unwrap(),
            meets,
            "{p} vs {}",
            r["summary"]
        );
    }
    // The answer is below what the server can do at all (the probe at `max`), and not far.
    let top = idx["points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["label"] == "r1000")
        .unwrap();
    let capacity = json(&d.path().join("out").join(top["file"].as_str().unwrap()))["summary"]
        ["request_throughput"]
        .as_f64()
        .unwrap();
    assert!(
        answer < capacity * 1.05 && answer > capacity * 0.5,
        "{answer} vs capacity {capacity}"
    );
    assert!(s["goodput_req_s"].as_f64().unwrap() > 0.0);
    assert!(s["usd_per_million_output_tokens"].as_f64().unwrap() > 0.0);
    // This SLO holds almost up to capacity (the search used to creep toward the measured
    // capacity, halving the gap until `max_points`). A fresh grid agrees with the answer:
    // 10 % under it meets the SLO, 10 % over it does not.
    let (under, over) = (
        (answer * 0.9 * 1000.0).round() / 1000.0,
        (answer * 1.1 * 1000.0).round() / 1000.0,
    );
    let grid = experiment(
        d.path(),
        "grid",
        &SEARCH.replace(
            "  search: { over: rate, slo: { ttft_ms: 300, tpot_ms: 30 }, percentile: 99, tolerance: 5%, max_points: 8, start: 2, max: 1000 }\n",
            &format!("  pattern: rate\n  sweep: {{ rate: [{under}, {over}] }}\n"),
        ),
    );
    common::bin(300)
        .arg("run")
        .arg(&grid)
        .args(["--yes", "--no-tui"])
        .assert()
        .success();
    for (label, should_pass) in [(format!("r{under}"), true), (format!("r{over}"), false)] {
        let f = common::files(d.path(), &format!("-{label}.json"))
            .into_iter()
            .find(|f| f.to_string_lossy().contains("/grid-"))
            .unwrap_or_else(|| panic!("no grid point {label}"));
        let r = json(&f);
        let p99 = |k: &str| r["summary"][k].as_f64().unwrap_or(f64::INFINITY);
        let saturated = r["termination_reason"]
            .as_str()
            .unwrap()
            .starts_with("saturated");
        let meets = p99("p99_ttft_ms") <= 300.0 && p99("p99_tpot_ms") <= 30.0 && !saturated;
        assert_eq!(meets, should_pass, "grid point {label}: {}", r["summary"]);
    }
    // And the report and plot show it.
    let out = common::bin(60)
        .arg("report")
        .arg(&idx_path)
        .output()
        .unwrap();
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(md.contains("## Capacity search"), "{md}");
    assert!(md.contains(&format!("**{answer} req/s**")), "{md}");
    let png = d.path().join("search.png");
    common::bin(60)
        .arg("plot")
        .arg(&idx_path)
        .arg("-o")
        .arg(&png)
        .assert()
        .success();
    assert!(std::fs::metadata(&png).unwrap().len() > 1000);
}

#[test]
fn an_interrupted_search_resumes_from_its_probes() {
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(d.path(), "resume", SEARCH);
    let mut child = common::background()
        .args(["run", "--yes", "--no-tui"])
        .arg(&exp)
        .spawn()
        .unwrap();
    // Two probes measured, then Ctrl-C.
    let start = std::time::Instant::now();
    while common::files(d.path(), ".json")
        .iter()
        .filter(|p| p.to_string_lossy().contains("-r"))
        .count()
        < 2
    {
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("two probes never finished");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(common::signal_and_wait(&mut child, "INT", 60), Some(130));
    let idx = json(&common::files(d.path(), ".sweep.json")[0]);
    assert_ne!(idx["status"], "completed");
    common::bin(600)
        .arg("run")
        .arg(&exp)
        .args(["--yes", "--no-tui", "--resume"])
        .assert()
        .success()
        .stderr(predicates::str::contains(
            "probe r2 already measured (a resumed run",
        ))
        .stderr(predicates::str::contains("capacity: "));
    let after = common::files(d.path(), ".sweep.json");
    assert_eq!(after.len(), 1, "the same index, not a new one");
    let idx = json(&after[0]);
    assert_eq!(idx["status"], "completed", "{idx}");
    assert!(idx["searches"][0]["answer"].as_f64().is_some());
}

#[test]
fn one_search_per_deployment_of_a_matrix() {
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(
        d.path(),
        "mxs",
        "deployments:\n  max_parallel: 2\n  matrix:\n    gpu:\n      h100: {}\n      a100: { infrastructure: { simulator: { profile: a100-llama70b } } }\nworkload:\n  requests: 160\n  dataset: { kind: random, input_len: 512, output_len: 64 }\n  ignore_eos: true\n  search: { over: concurrency, slo: { ttft_ms: 400 }, tolerance: 10%, max_points: 7, start: 1, max: 256 }\n",
    );
    common::bin(600)
        .arg("run")
        .arg(&exp)
        .args(["--yes", "--no-tui"])
        .assert()
        .success();
    let idx = json(&common::files(d.path(), ".sweep.json")[0]);
    assert_eq!(idx["status"], "completed", "{idx}");
    let searches = idx["searches"].as_array().unwrap();
    assert_eq!(searches.len(), 2);
    let answer = |dep: &str| {
        let s = searches.iter().find(|s| s["deployment"] == dep).unwrap();
        assert!(s["probes"].as_array().unwrap().len() <= 7);
        s["answer"].as_f64().unwrap_or(0.0)
    };
    let (h, a) = (answer("h100"), answer("a100"));
    assert!(
        h > a,
        "the faster profile holds more in flight under the same SLO: {h} vs {a}"
    );
    assert!(a.fract() == 0.0 && h.fract() == 0.0);
}

/// Conversations of three turns (an agent's big first turn, short ones after): the load of a
/// sessions search and of the grid that checks it.
const SESSIONS: &str = "  duration: 4s\n  ignore_eos: true\n  dataset: { kind: conversation, turns: 3, first_input_len: 1024, input_len: 128, output_len: 64 }\n";

#[test]
fn a_sessions_search_answers_each_slo_tier_and_a_grid_agrees() {
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(
        d.path(),
        "users",
        &format!("workload:\n{SESSIONS}  search:\n    over: sessions\n    tiers:\n      - {{ name: interactive, ttft_ms: 400 }}\n      - {{ name: batch, ttft_ms: 3000 }}\n    tolerance: 25%\n    max_points: 7\n    start: 2\n    max: 256\n"),
    );
    common::bin(900)
        .arg("run")
        .arg(&exp)
        .args(["--yes", "--no-tui"])
        .assert()
        .success()
        .stderr(predicates::str::contains("capacity for tier interactive: "))
        .stderr(predicates::str::contains("capacity for tier batch: "));
    let idx_path = common::files(d.path(), ".sweep.json").remove(0);
    let idx = json(&idx_path);
    common::assert_valid(&common::index_schema(), &idx, &idx_path);
    assert_eq!(idx["status"], "completed", "{idx}");
    let searches = idx["searches"].as_array().unwrap();
    assert_eq!(searches.len(), 2, "one search per tier");
    let tier = |name: &str| searches.iter().find(|s| s["tier"] == name).unwrap();
    let (fast, slow) = (tier("interactive"), tier("batch"));
    for s in [fast, slow] {
        assert_eq!(s["over"], "sessions");
        assert_eq!(s["status"], "completed", "{s}");
    }
    let answer = |s: &Value| s["answer"].as_f64().expect("an answer");
    let failed = |s: &Value| s["failed_at"].as_f64().unwrap_or(f64::INFINITY);
    assert!(
        answer(slow) > answer(fast),
        "a looser tier serves more sessions: {slow} vs {fast}"
    );
    // A load both tiers probed was measured once: the points are fewer than the probes.
    let probes = |s: &Value| s["probes"].as_array().unwrap().len();
    let points = idx["points"].as_array().unwrap();
    assert!(
        points.len() < probes(fast) + probes(slow),
        "{} points",
        points.len()
    );
    assert!(points
        .iter()
        .all(|p| p["label"].as_str().unwrap().starts_with('s')));
    // The grid agrees: half the answer meets the tier, twice where it failed does not.
    let grid: Vec<u32> = [fast, slow]
        .iter()
        .flat_map(|s| [(answer(s) / 2.0).max(1.0), (failed(s) * 2.0).min(512.0)])
        .map(|x| x.round() as u32)
        .collect();
    let g = tempfile::tempdir().unwrap();
    let sweep = experiment(
        g.path(),
        "grid",
        &format!("workload:\n{SESSIONS}  sweep: {{ concurrency: {grid:?} }}\n"),
    );
    common::bin(600)
        .arg("run")
        .arg(&sweep)
        .args(["--yes", "--no-tui"])
        .assert()
        .success();
    let gidx = json(&common::files(g.path(), ".sweep.json")[0]);
    let p99 = |c: u32| {
        let p = gidx["points"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["label"] == format!("c{c}"))
            .unwrap();
        let r = json(&g.path().join("out").join(p["file"].as_str().unwrap()));
        r["summary"]["p99_ttft_ms"]
            .as_f64()
            .unwrap_or(f64::INFINITY)
    };
    for (i, limit) in [(0, 400.0), (2, 3000.0)] {
        assert!(
            p99(grid[i]) <= limit,
            "{} sessions should meet {limit} ms: {}",
            grid[i],
            p99(grid[i])
        );
        if failed([fast, slow][i / 2]).is_finite() {
            assert!(
                p99(grid[i + 1]) > limit,
                "{} sessions should miss {limit} ms",
                grid[i + 1]
            );
        }
    }
}

#[test]
fn a_steady_point_stops_before_its_cap_and_a_ramping_one_does_not() {
    let d = tempfile::tempdir().unwrap();
    // A server whose every request takes the same time (TTFT 50 ms, ITL 10 ms, scaled by the
    // speed): stable from the start, whatever else this machine runs meanwhile.
    let steady = with_profile(
        d.path(),
        "steady",
        "fixed-50ms-10ms",
        "workload:\n  concurrency: 32\n  duration: 60s\n  steady_state: { window: 2s, threshold: 15% }\n  dataset: { kind: random, input_len: 256, output_len: 64 }\n  ignore_eos: true\n",
    );
    let (_, r) = common::run_ok(&steady, 120);
    let reason = r["termination_reason"].as_str().unwrap();
    assert!(reason.starts_with("steady_state"), "{reason}");
    let st = &r["summary"]["steady_state"];
    assert_eq!(st["reached"], true);
    let from = st["steady_from_s"].as_f64().unwrap();
    assert!(
        from >= 0.0 && r["summary"]["duration_s"].as_f64().unwrap() < 30.0,
        "{st}"
    );
    // The figures cover the steady part; the transient before it is counted, and the records
    // keep every request.
    let transient = st["transient_requests"].as_u64().unwrap();
    let records = r["requests"].as_array().unwrap();
    let steady_part =
        r["summary"]["completed"].as_u64().unwrap() + r["summary"]["failed"].as_u64().unwrap();
    assert_eq!(records.len() as u64, steady_part + transient, "{st}");
    let ended_before = records
        .iter()
        .filter(|q| q["sent_ms"].as_f64().unwrap() + q["e2el_ms"].as_f64().unwrap() < from * 1e3)
        .count() as u64;
    assert_eq!(ended_before, transient, "{st}");

    let d2 = tempfile::tempdir().unwrap();
    let ramping = experiment(
        d2.path(),
        "ramping",
        // A ramp steep enough (in flight +15 % a window) that no three windows agree within
        // 5 %: the slower ramp of before (30 s, 10 %) settled "from 10 s" on a busy machine.
        "workload:\n  concurrency: 96\n  duration: 16s\n  ramp: { over: 20s, strategy: linear, from: 1 }\n  steady_state: { window: 2s, threshold: 5% }\n  dataset: { kind: random, input_len: 1024, output_len: 128 }\n  ignore_eos: true\n",
    );
    let (_, r) = common::run_ok(&ramping, 120);
    assert_eq!(r["termination_reason"], "duration", "runs to its cap");
    assert_eq!(r["summary"]["steady_state"]["reached"], false);
}

#[test]
fn an_over_capacity_open_loop_stops_as_saturated_long_before_its_duration() {
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(
        d.path(),
        "over",
        "workload:\n  pattern: rate\n  rate: 400\n  duration: 90s\n  dataset: { kind: random, input_len: 1024, output_len: 128 }\n  ignore_eos: true\n",
    );
    let (_, r) = common::run_ok(&exp, 120);
    let reason = r["termination_reason"].as_str().unwrap();
    assert!(reason.starts_with("saturated"), "{reason}");
    let took = r["summary"]["duration_s"].as_f64().unwrap();
    assert!(took < 45.0, "stopped at {took}s of 90");
    // Requests in flight were abandoned, not waited for.
    assert!(
        r["errors"]["by_kind"]["aborted"].as_u64().unwrap_or(0) > 0,
        "{}",
        r["errors"]
    );
}
