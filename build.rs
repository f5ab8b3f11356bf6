//! Records the git commit in the binary (`tool.git_sha` in result files), when built from git.
fn main() {
    let sha = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!("cargo:rustc-env=LLMIB_BUILD_GIT_SHA={sha}");
    println!("cargo:rerun-if-changed=.git/HEAD");
}
