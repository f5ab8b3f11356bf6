//! `evals`: graded tasks against the simulator's answer key (right, or wrong on exactly
//! ⌊n·rate⌋ of any first n items), so every score is known to the item: the built-in grader,
//! the matrix's selection rule (lowest and highest TP of each group) under load, `compare`
//! judging an accuracy drop against its noise, the report's table, and lm-eval itself (pinned,
//! `scripts/lm-eval.sh`) over the same set.

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;

fn json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// A simulator experiment (answer key at `error_rate`) with `evals`, then `extra` keys: a
/// `sweep:` line goes under `workload`, the rest at the top.
fn experiment(dir: &Path, name: &str, error_rate: f64, evals: &str, extra: &str) -> PathBuf {
    let (sweep, tail) = match extra.strip_prefix("  sweep:") {
        Some(rest) => {
            let (line, tail) = rest.split_once('\n').unwrap_or((rest, ""));
            (format!("  sweep:{line}\n"), tail.to_string())
        }
        None => (String::new(), extra.to_string()),
    };
    common::write(
        dir,
        &format!("{name}.yaml"),
        &format!(
            "name: {name}\nmodel: {{ id: m }}\ninfrastructure:\n  provider: simulator\n  simulator: {{ profile: instant, answer_key: {{ error_rate: {error_rate} }} }}\noutput: {{ dir: {} }}\nworkload:\n  concurrency: 4\n  requests: 40\n  dataset: {{ kind: random, input_len: 16, output_len: 8 }}\n{sweep}evals:\n{evals}{tail}",
            dir.join("out").display()
        ),
    )
}

/// `run EXP --no-tui --yes`, lm-eval kept off the network (its task reads a local file).
fn run(exp: &Path, secs: u64) -> std::process::Output {
    common::bin(secs)
        .env("HF_DATASETS_OFFLINE", "1")
        .env("HF_HUB_OFFLINE", "1")
        .arg("run")
        .arg(exp)
        .args(["--no-tui", "--yes"])
        .output()
        .unwrap()
}

/// Item i (0-based, in set order) is one the key answers wrongly at `rate`.
fn keyed_wrong(i: usize, rate: f64) -> bool {
    ((i + 1) as f64 * rate).floor() > (i as f64 * rate).floor()
}

fn eval<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["evals"]
        .as_array()
        .unwrap_or_else(|| panic!("no evals in {r}"))
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no eval {name} in {}", r["evals"]))
}

#[test]
fn the_built_in_grader_scores_the_answer_key_to_the_item() {
    let d = tempfile::tempdir().unwrap();
    // A set of the user's own with words for answers, read after its marker.
    std::fs::write(
        d.path().join("capitals.jsonl"),
        "{\"id\": \"fr\", \"prompt\": \"Capital of France?\", \"answer\": \"Paris\"}\n\n{\"prompt\": \"Capital of Peru?\", \"answer\": \"Lima\"}\n{\"prompt\": \"Capital of Chad?\", \"answer\": \"N'Djamena\"}\n{\"prompt\": \"Capital of Fiji?\", \"answer\": \"Suva\"}\n",
    )
    .unwrap();
    let exp = experiment(
        d.path(),
        "graded",
        0.2,
        "  concurrency: 8\n  tasks:\n    - { set: arithmetic, limit: 50, max_tokens: 16 }\n    - { file: capitals.jsonl, extract: { rule: first_line, after: \"answer is\" } }\n",
        "",
    );
    let out = run(&exp, 120);
    let stdout = common::stdout_of(out.clone());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("graded: arithmetic (50 items), capitals (4 items) after the points"),
        "{stderr}"
    );
    let path = common::result_path(d.path());
    common::assert_valid_result(&path);
    let r = json(&path);
    let a = eval(&r, "arithmetic");
    // ⌊50 · 0.2⌋ = 10 wrong, at items 5, 10, 15, … (1-based).
    assert_eq!(
        (a["count"].as_u64(), a["correct"].as_u64()),
        (Some(50), Some(40)),
        "{a}"
    );
    assert_eq!(a["score"], 0.8);
    assert_eq!(a["failed"], 0);
    assert_eq!(a["kind"], "built_in");
    assert!((a["stderr"].as_f64().unwrap() - (0.8f64 * 0.2 / 49.0).sqrt()).abs() < 1e-12);
    assert!(a.get("beside").is_none(), "graded after the points: {a}");
    let answers = a["answers"].as_array().unwrap();
    for (i, ans) in answers.iter().enumerate() {
        assert_eq!(ans["id"], format!("arithmetic-{:03}", i + 1), "set order");
        assert_eq!(ans["correct"], !keyed_wrong(i, 0.2), "item {i}: {ans}");
        let said = ans["text"].as_str().unwrap();
        assert!(said.starts_with("The answer is "), "{said}");
        assert_eq!(
            ans["extracted"].as_str(),
            said.strip_prefix("The answer is ")
                .and_then(|s| s.strip_suffix('.'))
        );
    }
    // 4 items at 0.2: ⌊4 · 0.2⌋ = 0 wrong; the JSONL's missing id is its position.
    let c = eval(&r, "capitals");
    assert_eq!(
        (c["count"].as_u64(), c["correct"].as_u64()),
        (Some(4), Some(4)),
        "{c}"
    );
    let ids: Vec<&str> = c["answers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["fr", "2", "3", "4"]);
    assert_eq!(c["answers"][2]["extracted"], "N'Djamena");
    // The run's table says it too.
    assert!(stdout.contains("arithmetic (40/50):"), "{stdout}");
    assert!(stdout.contains("80.0% ± 5.7"), "{stdout}");
}

#[test]
fn a_matrix_grades_the_lowest_and_highest_tensor_parallelism_of_each_group_under_load() {
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(
        d.path(),
        "mx",
        0.1,
        "  under_load: true\n  api: completions\n  concurrency: 4\n  tasks:\n    - { set: arithmetic, limit: 20 }\n",
        "  sweep: { concurrency: [2, 4] }\ndeployments:\n  max_parallel: 2\n  matrix:\n    engine:\n      vllm: { infrastructure: { simulator: { personality: vllm } } }\n      sglang: { infrastructure: { simulator: { personality: sglang } } }\n    tp:\n      tp1: { infrastructure: { gpu_count: 1 } }\n      tp2: { infrastructure: { gpu_count: 2 } }\n      tp4: { infrastructure: { gpu_count: 4 } }\n",
    );
    let out = run(&exp, 300);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    // The sweep's table has a column of scores: the graded points' and `-` for the rest.
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let row = |p: &str| {
        stdout
            .lines()
            .find(|l| l.contains(&format!(" {p} ")))
            .unwrap_or_else(|| panic!("{p}: {stdout}"))
            .to_string()
    };
    assert!(
        row("vllm-tp1/c4").trim_end().ends_with("arithmetic 90.0%"),
        "{stdout}"
    );
    assert!(row("vllm-tp2/c4").trim_end().ends_with(" -"), "{stdout}");
    assert_eq!(
        stderr
            .matches("graded: arithmetic (20 items) beside the last point")
            .count(),
        4,
        "{stderr}"
    );
    assert_eq!(
        stderr
            .matches("not graded (evals.deployments: extremes")
            .count(),
        2,
        "{stderr}"
    );
    let index_path = common::files(d.path(), ".sweep.json").pop().unwrap();
    let index = json(&index_path);
    common::assert_valid(&common::index_schema(), &index, &index_path);
    let mut graded = Vec::new();
    for p in index["points"].as_array().unwrap() {
        let label = p["label"].as_str().unwrap();
        let file = index_path
            .parent()
            .unwrap()
            .join(p["file"].as_str().unwrap());
        let r = json(&file);
        match p.get("evals") {
            None => assert!(r.get("evals").is_none(), "{label}"),
            Some(e) => {
                graded.push(label.to_string());
                // ⌊20 · 0.1⌋ = 2 wrong.
                assert_eq!(e[0]["score"], 0.9, "{label}: {e}");
                assert_eq!(e[0]["count"], 20, "{label}");
                let full = eval(&r, "arithmetic");
                assert_eq!(full["correct"], 18, "{label}");
                assert_eq!(full["beside"], label, "graded beside its own point");
                assert_eq!(full["concurrency"], 4);
            }
        }
    }
    graded.sort();
    assert_eq!(
        graded,
        [
            "sglang-tp1/c4",
            "sglang-tp4/c4",
            "vllm-tp1/c4",
            "vllm-tp4/c4"
        ],
        "the lowest and highest TP of each engine, at its highest concurrency"
    );
}

#[test]
fn compare_calls_a_drop_in_accuracy_beyond_its_noise_a_regression_and_the_report_shows_it() {
    let d = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, rate) in [("base", 0.0), ("slip", 0.02), ("worse", 0.3)] {
        let sub = d.path().join(name);
        std::fs::create_dir(&sub).unwrap();
        let exp = experiment(
            &sub,
            name,
            rate,
            "  tasks:\n    - { set: arithmetic }\n",
            "",
        );
        let (path, r) = common::run_ok(&exp, 120);
        assert_eq!(eval(&r, "arithmetic")["count"], 100);
        files.push(path);
    }
    let compare = |b: &Path| {
        common::bin(60)
            .arg("compare")
            .arg(&files[0])
            .arg(b)
            // An eval row is judged on its noise alone, whatever the threshold.
            .args(["--threshold", "99%"])
            .arg("--fail-on-regression")
            .output()
            .unwrap()
    };
    // 100 % → 98 %: two items of a hundred are within the noise of a hundred.
    let out = compare(&files[1]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let row = text
        .lines()
        .find(|l| l.starts_with("eval:arithmetic"))
        .expect(&text);
    assert!(
        row.contains("1.00") && row.contains("0.98") && row.ends_with("within noise"),
        "{row}"
    );
    // 100 % → 70 %: a regression, and `--fail-on-regression` says so by its exit code.
    let out = compare(&files[2]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let row = text
        .lines()
        .find(|l| l.starts_with("eval:arithmetic"))
        .expect(&text);
    assert!(row.contains("0.70") && row.ends_with("worse"), "{row}");
    assert!(
        !out.status.success(),
        "a drop in accuracy fails the comparison: {text}"
    );
    // The report puts the score beside the speed.
    let report = common::succeeds(60, ["report".as_ref(), files[2].as_os_str()]);
    assert!(report.contains("### Accuracy (evals)"), "{report}");
    assert!(
        report.contains("| arithmetic | 70.0 % | 4.6 | 100 |"),
        "{report}"
    );
}

#[test]
fn bad_evals_are_refused_where_they_are_written() {
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(
        d.path(),
        "bad",
        0.0,
        "  concurrency: 0\n  tasks:\n    - { set: arithmetic, file: x.jsonl }\n    - { set: arithmetic, limit: 0 }\n",
        "",
    );
    let out = run(&exp, 30);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    for want in [
        "bad.yaml:12:3: `evals.concurrency`: must be at least 1",
        "bad.yaml:13:3: `evals.tasks[0]`: names exactly one of `set`",
        "bad.yaml:13:3: `evals.tasks[1].limit`: must be at least 1",
        "bad.yaml:13:3: `evals.tasks[1].name`: `arithmetic` names another task too",
    ] {
        assert!(err.contains(want), "{want}: {err}");
    }
    // A set file that does not parse is named with its line before anything starts.
    std::fs::write(d.path().join("mine.jsonl"), "{\"prompt\": \"q\"}\n").unwrap();
    let exp = experiment(
        d.path(),
        "badfile",
        0.0,
        "  tasks:\n    - { file: mine.jsonl }\n",
        "",
    );
    let out = run(&exp, 30);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    assert!(
        err.contains("evals.tasks[0].file: ")
            && err.contains("mine.jsonl:1: missing field `answer`"),
        "{err}"
    );
    assert!(!d.path().join("out").exists() || common::files(d.path(), ".json").is_empty());
}

/// lm-eval's program (`scripts/lm-eval.sh`), or a loud failure saying how to get it.
fn lm_eval() -> String {
    std::env::var("LLMIB_LM_EVAL").unwrap_or_else(|_| {
        panic!("LLMIB_LM_EVAL is not set: `scripts/lm-eval.sh install && eval $(scripts/lm-eval.sh env)` first (scripts/test.sh does this)")
    })
}

#[test]
#[ignore = "needs lm-eval (scripts/lm-eval.sh; scripts/test.sh installs it)"]
fn lm_eval_grades_the_answer_key_exactly_and_its_samples_are_kept() {
    let d = tempfile::tempdir().unwrap();
    let tasks = Path::new(env!("CARGO_MANIFEST_DIR")).join("evals/lm-eval");
    let exp = experiment(
        d.path(),
        "lm",
        0.2,
        &format!(
            "  concurrency: 4\n  tasks:\n    - {{ name: lm-arith, limit: 40, max_tokens: 16, lm_eval: {{ task: llmib_arithmetic, include_path: {}, command: [{}] }} }}\n    - {{ set: arithmetic, limit: 40 }}\n",
            tasks.display(),
            lm_eval()
        ),
        "",
    );
    let out = run(&exp, 600);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    let r = json(&common::result_path(d.path()));
    let lm = eval(&r, "lm-arith");
    let ours = eval(&r, "arithmetic");
    // ⌊40 · 0.2⌋ = 8 wrong, by lm-eval's grading and by ours alike.
    assert_eq!(lm["kind"], "lm_eval");
    assert_eq!(
        (lm["count"].as_u64(), lm["correct"].as_u64()),
        (Some(40), Some(32)),
        "{lm}"
    );
    assert_eq!(lm["score"], 0.8);
    assert_eq!(lm["program"], "lm_eval 0.4.13");
    assert!(
        lm["figures"]["exact_match,last-number"].as_f64() == Some(0.8),
        "{lm}"
    );
    assert_eq!(ours["correct"], 32);
    let answers = lm["answers"].as_array().unwrap();
    assert_eq!(answers.len(), 40);
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(a["correct"], !keyed_wrong(i, 0.2), "{a}");
        assert_eq!(a["id"], format!("arithmetic-{:03}", i + 1));
    }
    // Its output and log sit beside the result, the log private.
    let log = common::files(d.path(), ".lm-eval.log")
        .pop()
        .expect("lm-eval's log");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&log).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
#[ignore = "needs lm-eval (scripts/lm-eval.sh; scripts/test.sh installs it)"]
fn an_lm_eval_that_fails_is_recorded_and_the_run_keeps_its_measurements() {
    let d = tempfile::tempdir().unwrap();
    let _ = lm_eval();
    let exp = experiment(
        d.path(),
        "lmbad",
        0.0,
        &format!(
            "  tasks:\n    - {{ lm_eval: {{ task: no_such_task_anywhere, command: [{}] }} }}\n    - {{ set: arithmetic, limit: 10 }}\n",
            lm_eval()
        ),
        "",
    );
    let out = run(&exp, 300);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "a failed grader fails no measurement: {err}"
    );
    let path = common::result_path(d.path());
    let r = json(&path);
    assert_eq!(r["summary"]["completed"], 40);
    let report = common::succeeds(60, ["report".as_ref(), path.as_os_str()]);
    assert!(report.contains("| arithmetic | 100.0 % |"), "{report}");
    assert!(
        !report.contains("no_such_task_anywhere"),
        "an ungraded task is no row: {report}"
    );
    let bad = eval(&r, "no_such_task_anywhere");
    assert_eq!(bad["count"], 0);
    assert_eq!(bad["answers"], serde_json::json!([]));
    let why = bad["error"].as_str().unwrap();
    assert!(why.contains("lm-eval exited with"), "{why}");
    assert_eq!(eval(&r, "arithmetic")["correct"], 10);
    // The run's table says why; compare and the index leave the ungraded task out.
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.contains("no_such_task_anywhere:")
            && stdout.contains("not graded: lm-eval exited with"),
        "{stdout}"
    );
}
