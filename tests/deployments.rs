//! Deployment matrices on this machine: simulators and local processes as deployments, side by
//! side; a deployment that cannot start is recorded as failed while the others go on, and
//! `--resume` runs only what is missing. (RunPod pods: `tests/runpod.rs`; Slurm jobs:
//! `tests/slurm.rs`.)

mod common;

use std::path::Path;

use serde_json::Value;

fn experiment(dir: &Path, matrix: &str) -> std::path::PathBuf {
    common::write(
        dir,
        "mx.yaml",
        &format!(
            "name: mx\nmodel: {{ id: m }}\ninfrastructure:\n  provider: simulator\n  health_timeout: 20s\n  simulator: {{ profile: h100-llama8b, speed: 32.0 }}\noutput: {{ dir: {} }}\nmetrics:\n  scrape_interval: 200ms\n  slo: {{ ttft_ms: 1000, tpot_ms: 50 }}\nworkload:\n  requests: 24\n  dataset: {{ kind: random, input_len: 64, output_len: 16 }}\n  ignore_eos: true\n  sweep: {{ concurrency: [1, 4] }}\ndeployments:\n  max_parallel: 2\n  matrix:\n{matrix}",
            dir.join("out").display()
        ),
    )
}

fn index(dir: &Path) -> Value {
    let mut found: Vec<_> = std::fs::read_dir(dir.join("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".sweep.json"))
        .collect();
    assert_eq!(found.len(), 1, "one index for the whole matrix: {found:?}");
    let f = found.pop().unwrap();
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
    common::assert_valid(&common::index_schema(), &v, &f);
    v
}

fn deployment<'a>(idx: &'a Value, name: &str) -> &'a Value {
    idx["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no deployment {name} in {idx}"))
}

const BROKEN: &str = "      broken: { infrastructure: { provider: local, command: [sh, -c, \"echo no GPU on this node >&2; exit 3\"] } }\n";

#[test]
fn a_failed_deployment_is_recorded_while_the_others_go_on_and_resume_runs_only_it() {
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(
        d.path(),
        &format!("    server:\n      h100: {{}}\n{BROKEN}      a100: {{ infrastructure: {{ simulator: {{ profile: a100-llama70b }} }} }}\n"),
    );
    let out = common::bin(300)
        .arg("run")
        .arg(&exp)
        .args(["--no-tui", "--yes"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed deployment fails the run: {err}"
    );
    let idx = index(d.path());
    assert_eq!(deployment(&idx, "h100")["status"], "completed", "{idx}");
    assert_eq!(deployment(&idx, "a100")["status"], "completed", "{idx}");
    let broken = deployment(&idx, "broken");
    assert_eq!(broken["status"], "failed");
    let why = broken["error"].as_str().unwrap();
    assert!(
        why.contains("no GPU on this node"),
        "the error quotes the server: {why}"
    );
    let points = idx["points"].as_array().unwrap();
    let labels: Vec<&str> = points
        .iter()
        .map(|p| p["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        ["h100/c1", "h100/c4", "broken/c1", "a100/c1", "a100/c4"]
    );
    for p in points {
        let file = d.path().join("out").join(p["file"].as_str().unwrap());
        common::assert_valid_result(&file);
        let r: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(r["deployment"], p["deployment"]);
        assert_eq!(r["sweep_point"], p["label"]);
    }
    // The broken deployment mended on the command line: --resume runs only it.
    let out = common::bin(300)
        .arg("run")
        .arg(&exp)
        .args([
            "--no-tui",
            "--yes",
            "--resume",
            "--set",
            "deployments.matrix.server.broken.infrastructure.provider=simulator",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("resume: deployment h100 already measured"),
        "{err}"
    );
    assert!(
        err.contains("resume: deployment a100 already measured"),
        "{err}"
    );
    let idx = index(d.path());
    assert_eq!(idx["status"], "completed", "{idx}");
    assert_eq!(deployment(&idx, "broken")["status"], "completed");
    assert_eq!(idx["points"].as_array().unwrap().len(), 6);
}

#[test]
fn report_names_the_best_and_the_cheapest_deployment() {
    let d = tempfile::tempdir().unwrap();
    // The A100 profile is slower, but priced so low it is the cheaper per token.
    let exp = experiment(
        d.path(),
        "    gpu:\n      h100: { infrastructure: { price_per_hour_usd: 4.0 } }\n      a100: { infrastructure: { price_per_hour_usd: 0.2, simulator: { profile: a100-llama70b } } }\n",
    );
    common::bin(300)
        .arg("run")
        .arg(&exp)
        .args(["--no-tui", "--yes"])
        .assert()
        .success();
    // Two at once: the first points of both deployments overlap in time.
    let idx = index(d.path());
    let span = |label: &str| {
        let p = idx["points"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["label"] == label)
            .unwrap();
        let file = d.path().join("out").join(p["file"].as_str().unwrap());
        let r: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let t = |k: &str| chrono::DateTime::parse_from_rfc3339(r[k].as_str().unwrap()).unwrap();
        (t("started_at"), t("finished_at"))
    };
    let ((h0, h1), (a0, a1)) = (span("h100/c1"), span("a100/c1"));
    assert!(
        h0 < a1 && a0 < h1,
        "side by side: h100 {h0}..{h1}, a100 {a0}..{a1}"
    );
    let f: Vec<_> = std::fs::read_dir(d.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".sweep.json"))
        .collect();
    let out = common::bin(60).arg("report").arg(&f[0]).output().unwrap();
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(md.contains("| deployment | point |"), "{md}");
    assert!(
        md.contains("**Best deployment within the SLO:** `h100` at"),
        "{md}"
    );
    assert!(
        md.contains("**Cheapest deployment per token within the SLO:** `a100` at"),
        "{md}"
    );
}

#[test]
fn a_matrix_value_that_changes_the_load_is_refused_before_anything_starts() {
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(
        d.path(),
        "    load:\n      more: { workload: { concurrency: 8 } }\n",
    );
    common::bin(60)
        .arg("run")
        .arg(&exp)
        .args(["--no-tui", "--yes"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "`workload` cannot vary by deployment",
        ))
        .stderr(predicates::str::contains("mx.yaml:"));
    assert!(!d.path().join("out").exists());
}
