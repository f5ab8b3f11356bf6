//! `provider: slurm` against a real one-node Slurm cluster on 127.0.0.1 (`scripts/slurm.sh`,
//! which `scripts/test.sh` starts; `../shared/reference/slurm.md`). Each job runs
//! `llm-inf-bench serve-sim` as its server. A full run; a job whose command fails; Ctrl-C while
//! the job is PENDING and while it RUNs; kill -9 of the tool; a two-deployment matrix on two
//! jobs at once. The tests take one lock: the node has two CPUs, and the matrix needs both.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{files, served};
use serde_json::Value;

static CLUSTER: Mutex<()> = Mutex::new(());

/// The cluster, or a loud failure saying how to get one (never a silent pass).
fn cluster() -> std::sync::MutexGuard<'static, ()> {
    let conf = std::env::var("SLURM_CONF").unwrap_or_default();
    assert!(
        !conf.is_empty() && Path::new(&conf).exists(),
        "SLURM_CONF is not set to a cluster's slurm.conf: `scripts/slurm.sh start && eval $(scripts/slurm.sh env)` first (scripts/test.sh does this)"
    );
    CLUSTER.lock().unwrap_or_else(|p| p.into_inner())
}

/// A port `p` with `p` and `p + 1` both free (a deployment's second replica serves on `p + 1`),
/// different on every call. Taken from 10000–19999: below Linux's ephemeral range (32768–60999),
/// where any outgoing connection may hold a port between this check and the job's bind, and
/// below the 20000–32767 the tool derives from a job's name.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static CURSOR: AtomicU16 = AtomicU16::new(0);
    let start = 10_000 + (std::process::id() % 2_000) as u16 * 4;
    for _ in 0..2_500 {
        let step = CURSOR.fetch_add(4, Ordering::Relaxed);
        let p = 10_000 + (start - 10_000 + step) % 10_000;
        let free = |q: u16| std::net::TcpListener::bind(("127.0.0.1", q)).is_ok();
        if free(p) && free(p + 1) {
            return p;
        }
    }
    panic!("no two adjacent free ports in 10000-19999");
}

/// An experiment whose job serves the simulator on `port`; `extra` goes under `slurm:`, `tail`
/// at the end of the file.
fn experiment(dir: &Path, port: u16, command: &str, extra: &str, tail: &str) -> PathBuf {
    let bin = assert_cmd::cargo::cargo_bin("llm-inf-bench");
    let command = match command {
        "" => format!(
            "[{}, serve-sim, --port, \"{{port}}\", --model, \"{{model}}\", --profile, instant, --startup-delay, 0s]",
            bin.display()
        ),
        c => c.to_string(),
    };
    common::write(
        dir,
        "exp.yaml",
        &format!(
            "name: sl\nmodel: {{ id: m }}\noutput: {{ dir: {} }}\ninfrastructure:\n  provider: slurm\n  max_lifetime: 10m\n  health_timeout: 60s\n  slurm:\n    gpu_flag: none\n    node_address: 127.0.0.1\n    port: {port}\n    price_per_gpu_hour_usd: 2.0\n    command: {command}\n{extra}workload:\n  concurrency: 2\n  requests: 40\n  dataset: {{ kind: random, input_len: 16, output_len: 8 }}\n{tail}",
            dir.join("out").display()
        ),
    )
}

/// The job id from the run's kept script's name (`x.sbatch`) and Slurm's own record of it.
fn job_state(id: &str) -> String {
    let out = Command::new("scontrol")
        .args(["show", "job", id])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("JobState="))
        .unwrap_or("GONE")
        .to_string()
}

/// Our jobs named `name*` still in the queue (not completing), as `id|state`.
fn queued(prefix: &str) -> Vec<String> {
    let out = Command::new("squeue")
        .args(["-h", "-o", "%i|%T|%j"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(prefix) && !l.contains("COMPLETING"))
        .map(str::to_string)
        .collect()
}

/// Waits (at most `secs`) until `cond`.
fn wait_until(secs: u64, what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The job id the run submitted (its watchdog log names it).
fn job_id(dir: &Path) -> String {
    let log = files(dir, ".watchdog.log");
    let text = std::fs::read_to_string(log.first().expect("a watchdog log")).unwrap();
    text.lines()
        .find_map(|l| l.split("watching job ").nth(1))
        .expect("the watchdog was told the job id")
        .trim()
        .to_string()
}

/// `run EXP --yes --no-tui EXTRA` from `cwd`: its exit code and stderr.
fn run_in(exp: &Path, cwd: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let out = common::bin(240)
        .current_dir(cwd)
        .arg("run")
        .arg(exp)
        .args(["--yes", "--no-tui"])
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The run must fail with exit code 1; its stderr.
fn run_fails(exp: &Path, cwd: &Path) -> String {
    let (code, err) = run_in(exp, cwd, &[]);
    assert_eq!(code, Some(1), "{err}");
    err
}

fn spawn(exp: &Path, extra: &[&str]) -> std::process::Child {
    common::background()
        .args(["run", "--yes", "--no-tui"])
        .arg(exp)
        .args(extra)
        .spawn()
        .unwrap()
}

/// Starts a long run and returns once its job runs and its server has answered requests.
fn start_a_long_run(exp: &Path, port: u16) -> std::process::Child {
    let mut child = spawn(
        exp,
        &[
            "--set",
            "workload.duration=60s",
            "--set",
            "workload.requests=1000000",
        ],
    );
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(90) {
        if served(port) > 5.0 {
            return child;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the job's server never answered requests");
}

#[test]
#[ignore = "needs a Slurm cluster (scripts/test.sh starts one with scripts/slurm.sh)"]
fn a_full_run_submits_benchmarks_and_cancels_the_job() {
    let _c = cluster();
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(d.path(), free_port(), "", "", "");
    let (path, r) = common::run_ok(&exp, 180);
    assert_eq!(r["status"], "completed");
    assert_eq!(r["summary"]["completed"], 40);
    assert_eq!(r["environment"]["provider"], "slurm");
    assert_eq!(r["environment"]["price_per_hour_usd"], 2.0);
    assert!(
        r["summary"]["usd_per_million_output_tokens"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let id = r["environment"]["pod_id"].as_str().unwrap().to_string();
    assert_eq!(id, job_id(d.path()));
    // Cancelled at the end: nothing of ours left in the queue.
    wait_until(30, "the job leaves the queue", || {
        queued("llm-inf-bench-sl-").is_empty()
    });
    wait_until(30, "the job is cancelled", || job_state(&id) == "CANCELLED");
    // The script is kept beside the result; its time limit is max_lifetime.
    let script = std::fs::read_to_string(path.with_extension("sbatch")).unwrap();
    assert!(script.contains("#SBATCH --time=0-00:10:00"), "{script}");
    assert!(
        script.contains("#SBATCH --job-name=llm-inf-bench-sl-"),
        "{script}"
    );
    let log = std::fs::read_to_string(path.with_extension("server.log")).unwrap();
    assert!(
        log.contains(&format!("llm-inf-bench: job {id} on")),
        "{log}"
    );
}

#[test]
#[ignore = "needs a Slurm cluster (scripts/test.sh starts one with scripts/slurm.sh)"]
fn a_job_whose_server_fails_is_reported_with_its_own_output() {
    let _c = cluster();
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(
        d.path(),
        free_port(),
        "[sh, -c, \"echo 'RuntimeError: CUDA driver not found' >&2; exit 3\"]",
        "",
        "",
    );
    let err = run_fails(&exp, d.path());
    assert!(
        err.contains("RuntimeError: CUDA driver not found"),
        "the job's output is quoted: {err}"
    );
    assert!(err.contains("FAILED") || err.contains("exit code"), "{err}");
    wait_until(30, "no job left", || queued("llm-inf-bench-sl-").is_empty());
}

#[test]
#[ignore = "needs a Slurm cluster (scripts/test.sh starts one with scripts/slurm.sh)"]
fn ctrl_c_while_the_job_is_pending_cancels_it() {
    let _c = cluster();
    let d = tempfile::tempdir().unwrap();
    // Not before an hour from now: the job stays PENDING (BeginTime).
    let exp = experiment(
        d.path(),
        free_port(),
        "",
        "    sbatch: [\"--begin=now+3600\"]\n",
        "",
    );
    let mut child = spawn(&exp, &[]);
    wait_until(30, "the job is pending", || {
        queued("llm-inf-bench-sl-")
            .iter()
            .any(|l| l.contains("PENDING"))
    });
    let id = job_id(d.path());
    assert_eq!(common::signal_and_wait(&mut child, "INT", 60), Some(130));
    wait_until(30, "the job is cancelled", || job_state(&id) == "CANCELLED");
    assert!(queued("llm-inf-bench-sl-").is_empty());
}

#[test]
#[ignore = "needs a Slurm cluster (scripts/test.sh starts one with scripts/slurm.sh)"]
fn ctrl_c_while_the_job_runs_saves_and_cancels_it() {
    let _c = cluster();
    let d = tempfile::tempdir().unwrap();
    let port = free_port();
    let exp = experiment(d.path(), port, "", "", "");
    let mut child = start_a_long_run(&exp, port);
    let id = job_id(d.path());
    assert_eq!(job_state(&id), "RUNNING");
    assert_eq!(common::signal_and_wait(&mut child, "INT", 60), Some(130));
    wait_until(30, "the job is cancelled", || job_state(&id) == "CANCELLED");
    let r = common::result(d.path());
    assert_eq!(r["status"], "interrupted");
    assert!(
        r["summary"]["completed"].as_u64().unwrap() > 0,
        "what was measured is kept"
    );
}

#[test]
#[ignore = "needs a Slurm cluster (scripts/test.sh starts one with scripts/slurm.sh)"]
fn kill_9_of_the_tool_leaves_the_job_to_its_watchdog() {
    let _c = cluster();
    let d = tempfile::tempdir().unwrap();
    let port = free_port();
    let exp = experiment(d.path(), port, "", "", "");
    let mut child = start_a_long_run(&exp, port);
    let id = job_id(d.path());
    child.kill().unwrap(); // SIGKILL: no cleanup by the tool
    let _ = child.wait();
    wait_until(60, "the watchdog cancels the job", || {
        job_state(&id) == "CANCELLED"
    });
    let log = std::fs::read_to_string(&files(d.path(), ".watchdog.log")[0]).unwrap();
    assert!(log.contains("exited without cancelling"), "{log}");
}

#[test]
#[ignore = "needs a Slurm cluster (scripts/test.sh starts one with scripts/slurm.sh)"]
fn a_two_deployment_matrix_runs_on_two_jobs_at_once() {
    let _c = cluster();
    let d = tempfile::tempdir().unwrap();
    let (pa, pb) = (free_port(), free_port());
    let matrix = format!(
        "deployments:\n  max_parallel: 2\n  matrix:\n    seqs:\n      a: {{ infrastructure: {{ slurm: {{ port: {pa} }} }} }}\n      b: {{ infrastructure: {{ slurm: {{ port: {pb} }} }}, framework: {{ args: [--max-num-seqs, \"8\"] }} }}\n"
    );
    let exp = experiment(d.path(), free_port(), "", "", &matrix);
    // Long enough that both jobs are seen running together.
    let (code, err) = run_in(&exp, d.path(), &["--set", "workload.requests=3000"]);
    assert_eq!(code, Some(0), "{err}");
    let idx: Value =
        serde_json::from_str(&std::fs::read_to_string(&files(d.path(), ".sweep.json")[0]).unwrap())
            .unwrap();
    assert_eq!(idx["status"], "completed", "{idx}");
    let mut spans = Vec::new();
    let mut jobs = Vec::new();
    for p in idx["points"].as_array().unwrap() {
        let r: Value = serde_json::from_str(
            &std::fs::read_to_string(d.path().join("out").join(p["file"].as_str().unwrap()))
                .unwrap(),
        )
        .unwrap();
        let t = |k: &str| chrono::DateTime::parse_from_rfc3339(r[k].as_str().unwrap()).unwrap();
        spans.push((t("started_at"), t("finished_at")));
        jobs.push(r["environment"]["pod_id"].as_str().unwrap().to_string());
    }
    assert_eq!(spans.len(), 2);
    assert_ne!(jobs[0], jobs[1], "one job per deployment");
    let ((a0, a1), (b0, b1)) = (spans[0], spans[1]);
    assert!(
        a0 < b1 && b0 < a1,
        "the two jobs served at once: {a0}..{a1} and {b0}..{b1}"
    );
    for id in &jobs {
        wait_until(30, "both jobs cancelled", || job_state(id) == "CANCELLED");
    }
    // Each deployment's script has its own port.
    let scripts = files(d.path(), ".sbatch");
    assert_eq!(scripts.len(), 2, "{scripts:?}");
}

#[test]
#[ignore = "needs a Slurm cluster (scripts/test.sh starts one with scripts/slurm.sh)"]
fn pods_lists_and_cancels_our_jobs_and_leaves_others_alone() {
    let _c = cluster();
    let submit = |name: &str| {
        let out = Command::new("sbatch")
            .args([
                "--parsable",
                &format!("--job-name={name}"),
                "--begin=now+3600",
                "--wrap",
                "sleep 60",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let ours = submit("llm-inf-bench-leftover-20261202-000000");
    let theirs = submit("someone-elses-training");
    let out = common::bin(60)
        .args(["pods", "list", "--provider", "slurm"])
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        list.contains(&ours) && list.contains("llm-inf-bench-leftover"),
        "{list}"
    );
    assert!(!list.contains("someone-elses-training"), "{list}");
    common::bin(60)
        .args([
            "pods",
            "terminate",
            "--all-ours",
            "--yes",
            "--provider",
            "slurm",
        ])
        .assert()
        .success()
        .stdout(predicates::str::contains(format!(
            "terminated slurm {ours}"
        )));
    wait_until(30, "ours is cancelled", || job_state(&ours) == "CANCELLED");
    assert_eq!(
        job_state(&theirs),
        "PENDING",
        "never touch jobs that are not ours"
    );
    let _ = Command::new("scancel").arg(&theirs).status();
}

/// A stand-in for `ssh HOST COMMAND`: runs COMMAND with this machine's shell (a login host
/// that is this machine), so the over-ssh path runs for real: one quoted line, the script on
/// stdin, the output read back with `tail`.
fn fake_ssh(dir: &Path) -> PathBuf {
    let p = dir.join("fake-ssh");
    std::fs::write(&p, "#!/bin/sh\n# fake-ssh HOST COMMAND-LINE\necho \"$1\" >> \"$(dirname \"$0\")/ssh-hosts\"\nshift\nexec sh -c \"$*\"\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
#[ignore = "needs a Slurm cluster (scripts/test.sh starts one with scripts/slurm.sh)"]
fn over_ssh_a_job_runs_and_a_failing_one_is_quoted_from_the_login_host() {
    let _c = cluster();
    let d = tempfile::tempdir().unwrap();
    let ssh = fake_ssh(d.path());
    let extra = format!("    login_host: login1\n    ssh: [{}]\n", ssh.display());
    let exp = experiment(d.path(), free_port(), "", &extra, "");
    let (code, err) = run_in(&exp, d.path(), &[]);
    assert_eq!(code, Some(0), "{err}");
    let hosts = std::fs::read_to_string(d.path().join("ssh-hosts")).unwrap();
    assert!(
        hosts.lines().all(|h| h == "login1") && hosts.lines().count() >= 3,
        "{hosts}"
    );
    // The job's output went where the login host put it (its working directory).
    let remote: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("llm-inf-bench-sl-") && n.ends_with(".out"))
        .collect();
    assert_eq!(remote.len(), 1, "{remote:?}");

    let failing = experiment(
        d.path(),
        free_port(),
        "[sh, -c, \"echo 'ImportError: no module named vllm' >&2; exit 1\"]",
        &extra,
        "",
    );
    let err = run_fails(&failing, d.path());
    assert!(
        err.contains("ImportError: no module named vllm"),
        "fetched over ssh: {err}"
    );
}

#[test]
#[ignore = "needs a Slurm cluster (scripts/test.sh starts one with scripts/slurm.sh)"]
fn replicas_run_as_jobs_of_their_own_and_are_all_cancelled() {
    let _c = cluster();
    let d = tempfile::tempdir().unwrap();
    let port = free_port();
    let exp = experiment(d.path(), port, "", "  replicas: 2\n", "");
    let (code, err) = run_in(&exp, d.path(), &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("2 replicas, round-robin routing"), "{err}");
    let r = common::result(d.path());
    // Two jobs, each its own server: the written port, and the next one for the second.
    let by = r["summary"]["by_replica"].as_array().unwrap();
    let urls: Vec<&str> = by.iter().map(|x| x["base_url"].as_str().unwrap()).collect();
    assert_eq!(
        urls,
        [
            format!("http://127.0.0.1:{port}"),
            format!("http://127.0.0.1:{}", port + 1)
        ]
    );
    assert!(by.iter().all(|x| x["completed"] == 20), "{by:?}");
    // Priced as two jobs.
    assert_eq!(r["environment"]["price_per_hour_usd"], 4.0);
    let jobs: Vec<String> = r["environment"]["pod_id"]
        .as_str()
        .unwrap()
        .split(", ")
        .map(str::to_string)
        .collect();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    for id in &jobs {
        wait_until(30, "every replica's job cancelled", || {
            job_state(id) == "CANCELLED"
        });
    }
    assert_eq!(files(d.path(), ".sbatch").len(), 2);
    assert_eq!(files(d.path(), ".server.log").len(), 2);
}
