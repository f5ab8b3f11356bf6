//! Shared by the integration tests that drive the binary as a child process.

use std::process::{Command, Stdio};

/// The binary, to run in the background: no user config, output discarded (callers may
/// override stderr).
pub fn background() -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("llm-inf-bench"));
    c.env("LLM_INF_BENCH_CONFIG", "/nonexistent")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}
