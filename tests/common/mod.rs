//! Shared by the integration tests that drive the binary as a child process.

use std::process::{Command, Stdio};

#[allow(dead_code)]
/// The binary, to run in the background: no user config, output discarded (callers may
/// override stderr).
pub fn background() -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("llm-inf-bench"));
    c.env("LLM_INF_BENCH_CONFIG", "/nonexistent")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// The binary for one command, no user config, bounded in time.
#[allow(dead_code)]
pub fn bin(timeout_s: u64) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("llm-inf-bench").unwrap();
    c.env("LLM_INF_BENCH_CONFIG", "/nonexistent")
        .timeout(std::time::Duration::from_secs(timeout_s));
    c
}

/// Writes `yaml` as `dir/NAME` and returns its path.
#[allow(dead_code)]
pub fn write(dir: &std::path::Path, name: &str, yaml: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, yaml).unwrap();
    p
}

/// The one result file a run left in `dir/out`.
#[allow(dead_code)]
pub fn result(dir: &std::path::Path) -> serde_json::Value {
    let f = std::fs::read_dir(dir.join("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.extension().is_some_and(|x| x == "json")
                && !p.to_string_lossy().ends_with(".sweep.json")
        })
        .unwrap();
    serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap()
}
