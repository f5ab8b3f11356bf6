//! A stop's reason and its cancel race: Ctrl-C lands at every moment of a short run (before
//! the point, during its requests, during its last request, as it saves), 50 times, and each
//! time the exit code, the saved status and the saved reason agree.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use llm_inf_bench::config::Personality;
use llm_inf_bench::sim::SimConfig;

const RUNS: u32 = 50;

fn experiment(dir: &Path, url: &str) -> std::path::PathBuf {
    common::write(
        dir,
        "exp.yaml",
        &format!(
            "name: t\nseed: 5\nmodel:\n  id: m\ninfrastructure:\n  provider: existing\n  base_url: {url}\n  health_timeout: 10s\noutput:\n  dir: {}\nworkload:\n  concurrency: 1\n  requests: 2\n  ignore_eos: true\n  dataset: {{ kind: random, input_len: 16, output_len: 24 }}\n",
            dir.join("out").display()
        ),
    )
}

/// The run's result files (none when the stop came before the point began).
fn results(dir: &Path) -> Vec<serde_json::Value> {
    let Ok(entries) = std::fs::read_dir(dir.join("out")) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect()
}

/// One run stopped by SIGINT `after` its start: (exit code, its result if it saved one).
fn stopped_run(url: &str, after: Duration) -> (Option<i32>, Option<serde_json::Value>) {
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(d.path(), url);
    let mut child = common::background()
        .arg("run")
        .arg(&exp)
        .arg("--no-tui")
        .spawn()
        .unwrap();
    let start = Instant::now();
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        if start.elapsed() >= after {
            break common::signal_and_wait(&mut child, "INT", 30);
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let mut found = results(d.path());
    assert!(found.len() <= 1, "one point, one result: {found:?}");
    (code, found.pop())
}

#[test]
fn ctrl_c_at_any_moment_saves_the_status_it_means() {
    let mut cfg = SimConfig::new("h100-llama8b".parse().unwrap(), Personality::Vllm, "m");
    cfg.speed = 1.0;
    let s = common::sim_with(cfg);
    // How long the run takes unstopped, on this machine now: the stops are spread over it.
    let t = Instant::now();
    let (code, r) = stopped_run(&s.url, Duration::from_secs(60));
    let whole = t.elapsed();
    assert_eq!(code, Some(0), "the unstopped run succeeds");
    assert_eq!(r.map(|r| r["status"].clone()), Some("completed".into()));
    let (mut completed, mut interrupted, mut unsaved) = (0, 0, 0);
    for i in 0..RUNS {
        // From a third of the run to a little past its end.
        let after = whole.mul_f64(0.3 + 0.8 * f64::from(i) / f64::from(RUNS));
        let (code, r) = stopped_run(&s.url, after);
        match (code, r) {
            (Some(0), Some(r)) => {
                assert_eq!(r["status"], "completed", "exit 0 after {after:?}: {r}");
                assert_eq!(r["termination_reason"], "completed", "after {after:?}");
                completed += 1;
            }
            (Some(130), Some(r)) => {
                assert_eq!(r["status"], "interrupted", "exit 130 after {after:?}");
                assert_eq!(r["termination_reason"], "interrupted", "after {after:?}");
                interrupted += 1;
            }
            // Stopped before the point began: nothing was measured, nothing saved.
            (Some(130), None) => unsaved += 1,
            (code, r) => panic!("after {after:?}: exit {code:?}, result {r:?}"),
        }
    }
    eprintln!(
        "{completed} completed, {interrupted} interrupted, {unsaved} stopped before the point"
    );
    assert!(
        interrupted > 0 && completed > 0,
        "the stops landed on both sides of the end: {completed} completed, {interrupted} interrupted"
    );
}
