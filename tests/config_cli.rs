//! The foundation through the real binary: `validate`, `config show`, `schema`, `init`,
//! `extends` chains, layering and the error messages users see.

mod common;

use std::path::{Path, PathBuf};

use predicates::prelude::*;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, text).unwrap();
    p
}

const COMPLETE: &str = "name: t\nmodel:\n  id: m\nworkload:\n  concurrency: 2\n  requests: 10\n";

fn shipped_experiments() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in ["experiments/base", "experiments/examples"] {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "yaml") {
                out.push(p);
            }
        }
    }
    out.sort();
    assert!(
        out.len() >= 6,
        "expected the shipped experiments, found {out:?}"
    );
    out
}

#[test]
fn every_shipped_experiment_validates() {
    common::bin(120)
        .arg("validate")
        .args(shipped_experiments())
        .assert()
        .success()
        .stderr(predicate::str::contains("warning:").not());
}

#[test]
fn three_level_extends_merges_maps_and_replaces_lists() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "base/root.yaml", "model:\n  id: root-model\n  max_model_len: 4096\nframework:\n  args: [a, b]\nworkload:\n  concurrency: 1\n  requests: 5\n");
    write(
        d.path(),
        "mid/mid.yaml",
        "extends: ../base/root.yaml\nframework:\n  args: [c]\nworkload:\n  concurrency: 4\n",
    );
    let leaf = write(
        d.path(),
        "leaf/exp.yaml",
        "extends: ../mid/mid.yaml\nname: leaf\nworkload:\n  requests: 7\n",
    );
    let out = common::bin(120)
        .args(["config", "show"])
        .arg(&leaf)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    let line = |k: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(&format!("{k}:")))
            .unwrap_or_else(|| panic!("{k} missing in\n{out}"))
            .to_string()
    };
    assert!(
        line("id").contains("root-model") && line("id").contains("root.yaml:2"),
        "{out}"
    );
    assert!(
        line("args").contains("[\"c\"]") && line("args").contains("mid.yaml"),
        "lists replace: {out}"
    );
    assert!(
        line("concurrency").contains("4") && line("concurrency").contains("mid.yaml"),
        "{out}"
    );
    assert!(
        line("requests").contains("7") && line("requests").contains("exp.yaml"),
        "{out}"
    );
    assert!(line("max_model_len").contains("4096"), "maps merge: {out}");
    assert!(
        line("scrape_interval").contains("built-in default"),
        "{out}"
    );
}

#[test]
fn extends_cycle_is_an_error_naming_the_chain() {
    let d = tempfile::tempdir().unwrap();
    let a = write(d.path(), "a.yaml", "extends: b.yaml\nname: a\n");
    write(d.path(), "b.yaml", "extends: a.yaml\n");
    common::bin(120)
        .arg("validate")
        .arg(&a)
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("`extends` cycle").and(predicate::str::contains("a.yaml → ")),
        );
}

#[test]
fn missing_parent_names_child_line_and_parent() {
    let d = tempfile::tempdir().unwrap();
    let a = write(d.path(), "a.yaml", "name: a\nextends: gone/parent.yaml\n");
    common::bin(120)
        .arg("validate")
        .arg(&a)
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("a.yaml:2:1")
                .and(predicate::str::contains("gone/parent.yaml"))
                .and(predicate::str::contains("does not exist")),
        );
}

#[test]
fn unknown_keys_all_reported_with_suggestion_and_position() {
    let d = tempfile::tempdir().unwrap();
    let a = write(d.path(), "a.yaml", "name: a\nmodel:\n  id: m\n  max_modle_len: 10\nworkload:\n  concurrency: 2\n  requets: 10\n");
    let assert = common::bin(120).arg("validate").arg(&a).assert().code(2);
    let err = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    assert!(err.contains("a.yaml:4:3: `model.max_modle_len`: unknown key `max_modle_len`; did you mean `max_model_len`?"), "{err}");
    assert!(
        err.contains(
            "a.yaml:7:3: `workload.requets`: unknown key `requets`; did you mean `requests`?"
        ),
        "{err}"
    );
}

#[test]
fn type_error_says_what_would_be_valid() {
    let d = tempfile::tempdir().unwrap();
    let a = write(
        d.path(),
        "a.yaml",
        &format!("{COMPLETE}  api: grpc\nmetrics:\n  percentiles: fifty\n"),
    );
    let assert = common::bin(120).arg("validate").arg(&a).assert().code(2);
    let err = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    assert!(
        err.contains(
            "a.yaml:7:3: `workload.api`: unknown value `grpc`; valid values are chat, completions"
        ),
        "{err}"
    );
    assert!(
        err.contains("a.yaml:9:3: `metrics.percentiles`: expected a list, found `fifty`"),
        "{err}"
    );
}

#[test]
fn cross_field_errors_name_the_file_that_set_the_value() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "base.yaml",
        "model:\n  id: m\n  max_model_len: 600\n",
    );
    let a = write(d.path(), "a.yaml", "extends: base.yaml\nname: a\ninfrastructure:\n  provider: runpod\nworkload:\n  pattern: rate\n  requests: 5\n  dataset: { kind: random, input_len: 512, output_len: 128 }\n");
    let assert = common::bin(120).arg("validate").arg(&a).assert().code(2);
    let err = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    assert!(err.contains("a.yaml:4:3: `infrastructure.provider`: `provider: runpod` needs `infrastructure.gpu_type`"), "{err}");
    assert!(
        err.contains("a.yaml:6:3: `workload.pattern`: `pattern: rate` needs `workload.rate`"),
        "{err}"
    );
    assert!(err.contains("a.yaml:8:28: `workload.dataset.input_len`: prompt + output can reach 640 tokens, more than `model.max_model_len` = 600"), "{err}");
    assert!(err.contains("3 problems"), "all at once: {err}");
}

#[test]
fn environment_and_set_override_in_order() {
    let d = tempfile::tempdir().unwrap();
    let a = write(d.path(), "a.yaml", COMPLETE);
    let out = common::bin(120)
        .args(["config", "show"])
        .arg(&a)
        .env("LLM_INF_BENCH_WORKLOAD__CONCURRENCY", "8")
        .env("LLM_INF_BENCH_WORKLOAD__REQUESTS", "99")
        .args([
            "--set",
            "workload.requests=50",
            "--set",
            "metrics.scrape_interval=2s",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("concurrency: 8  # environment variable LLM_INF_BENCH_WORKLOAD__CONCURRENCY"),
        "{out}"
    );
    assert!(
        out.contains("requests: 50  # --set workload.requests"),
        "--set beats env: {out}"
    );
    assert!(
        out.contains("scrape_interval: \"2s\"  # --set metrics.scrape_interval"),
        "{out}"
    );
}

#[test]
fn bad_override_values_are_reported_with_their_source() {
    let d = tempfile::tempdir().unwrap();
    let a = write(d.path(), "a.yaml", COMPLETE);
    common::bin(120)
        .arg("validate")
        .arg(&a)
        .args(["--set", "workload.concurrency=many"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("--set workload.concurrency=many")
                .and(predicate::str::contains("whole number")),
        );
    common::bin(120)
        .arg("validate")
        .arg(&a)
        .env("LLM_INF_BENCH_WORKLAOD__CONCURRENCY", "3")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "unknown key `worklaod`; did you mean `workload`?",
        ));
    common::bin(120)
        .arg("validate")
        .arg(&a)
        .args(["--set", "nonsense"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("expected `key.path=value`"));
    // An enum whose variants are documented apart (`slurm`) still lists every value.
    common::bin(120)
        .arg("validate")
        .arg(&a)
        .args(["--set", "infrastructure.provider=simulatr"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "unknown value `simulatr`; valid values are runpod, local, existing, simulator, slurm, vast (did you mean `simulator`?)",
        ));
}

#[test]
fn user_config_layers_below_the_experiment_and_warns_when_readable() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write(d.path(), "user.yaml", "api_keys:\n  runpod: rk-supersecret\ndefaults:\n  output:\n    dir: /tmp/from-user\n  workload:\n    requests: 3\n");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let a = write(d.path(), "a.yaml", COMPLETE);
    let assert = common::bin(120)
        .args(["config", "show"])
        .arg(&a)
        .env("LLM_INF_BENCH_CONFIG", &cfg)
        .assert()
        .success();
    let out = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    let err = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    assert!(
        out.contains("dir: \"/tmp/from-user\"  # user config"),
        "{out}"
    );
    assert!(
        out.contains("requests: 10"),
        "experiment beats user config: {out}"
    );
    assert!(
        !out.contains("supersecret") && !err.contains("supersecret"),
        "secret leaked"
    );
    #[cfg(unix)]
    assert!(err.contains("readable by group or others"), "{err}");
}

#[test]
fn schema_validates_every_shipped_example_and_rejects_a_bad_one() {
    let out = common::bin(120)
        .arg("schema")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let schema: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for p in shipped_experiments() {
        let v: serde_json::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", p.display());
    }
    let bad = serde_json::json!({"workload": {"concurency": 3}});
    assert!(
        !validator.is_valid(&bad),
        "the schema must reject unknown keys"
    );
}

#[test]
fn init_writes_a_valid_starter_and_refuses_to_overwrite() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("exp.yaml");
    common::bin(120).arg("init").arg(&p).assert().success();
    common::bin(120).arg("validate").arg(&p).assert().success();
    common::bin(120)
        .arg("init")
        .arg(&p)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--force"));
    common::bin(120)
        .arg("init")
        .arg(&p)
        .arg("--force")
        .assert()
        .success();
}

#[test]
fn help_documents_exit_codes_and_examples() {
    common::bin(120)
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Exit codes").and(predicate::str::contains("130")));
    common::bin(120)
        .args(["run", "--help"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("--dry-run")
                .and(predicate::str::contains("--set"))
                .and(predicate::str::contains("Examples")),
        );
    common::bin(120).arg("frobnicate").assert().code(2);
}

/// Every combination rule of the load (`config/load.rs` decides the shape; `validate.rs` blames
/// the key): each bad combination is located at the line and key that set it, and the valid
/// combinations a rule must not catch pass.
#[test]
fn each_load_combination_error_is_located_at_its_key() {
    // (the workload's lines from line 5, the line and key blamed, what the message starts with)
    let bad: &[(&str, usize, &str, &str)] = &[
        ("  pattern: concurrent\n  requests: 5\n", 5, "workload.pattern", "`pattern: concurrent` needs `workload.concurrency`"),
        ("  concurrency: 0\n  requests: 5\n", 5, "workload.concurrency", "must be at least 1"),
        ("  pattern: rate\n  requests: 5\n", 5, "workload.pattern", "`pattern: rate` needs `workload.rate`"),
        ("  pattern: rate\n  rate: -2\n  requests: 5\n", 6, "workload.rate", "must be a positive number of requests per second"),
        ("  pattern: sequential\n  concurrency: 4\n  requests: 5\n", 6, "workload.concurrency", "has no effect with `pattern: sequential`"),
        ("  concurrency: 2\n  rate: 3\n  requests: 5\n", 6, "workload.rate", "is only used with `pattern: rate`"),
        ("  concurrency: 2\n  max_concurrency: 3\n  requests: 5\n", 6, "workload.max_concurrency", "caps `pattern: rate`"),
        ("  concurrency: 2\n  dataset: { kind: trace, path: t.jsonl }\n", 6, "workload.dataset", "a trace sends at its own timestamps"),
        ("  ramp: { over: 10s }\n  dataset: { kind: trace, path: t.jsonl }\n", 5, "workload.ramp", "a trace sets its own send times"),
        ("  pattern: sequential\n  ramp: { over: 10s }\n  requests: 5\n", 6, "workload.ramp", "has nothing to ramp"),
        ("  concurrency: 2\n  requests: 5\n  sweep: { concurrency: [1, 2] }\n  search: { over: concurrency, slo: { ttft_ms: 100 } }\n", 8, "workload.search", "cannot go with `workload.sweep`"),
        ("  search: { over: rate, slo: { ttft_ms: 100 } }\n  dataset: { kind: trace, path: t.jsonl }\n", 5, "workload.search", "a trace sets its own times"),
        ("  concurrency: 2\n  sessions: 3\n", 6, "workload.sessions", "counts conversations"),
        ("  concurrency: 2\n", 4, "workload", "needs a bound"),
        ("  concurrency: 2\n  requests: 5\n  sweep: { concurrency: [0] }\n", 7, "workload.sweep.concurrency", "needs one or more values ≥ 1"),
    ];
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("t.jsonl"),
        "{\"timestamp\": 0, \"input_length\": 8, \"output_length\": 4, \"hash_ids\": [1]}\n",
    )
    .unwrap();
    assert_located(d.path(), bad);
    // What a rule must not catch: a sweep or a search supplies the load, a trace needs no bound.
    let good = [
        "  pattern: concurrent\n  requests: 5\n  sweep: { concurrency: [1, 2] }\n",
        "  pattern: rate\n  requests: 5\n  sweep: { rate: [1, 2] }\n",
        "  pattern: concurrent\n  requests: 5\n  search: { over: concurrency, slo: { ttft_ms: 100 } }\n",
        "  max_concurrency: 4\n  dataset: { kind: trace, path: t.jsonl }\n",
        "  pattern: rate\n  rate: 2\n  max_concurrency: 4\n  ramp: { over: 10s }\n  duration: 1m\n",
    ];
    assert_valid(d.path(), &good);
}

#[test]
fn a_key_the_provider_never_reads_is_a_located_warning() {
    let d = tempfile::tempdir().unwrap();
    let head = "name: t\nmodel: { id: m }\nworkload: { concurrency: 1, requests: 1 }\n";
    // The simulator places no pod: RunPod's keys change nothing, and the line says which.
    let exp = write(
        d.path(),
        "exp.yaml",
        &format!("{head}infrastructure:\n  provider: simulator\n  gpu_count: 2\n  data_centers: [EU-RO-1]\n  keep_pod: true\n"),
    );
    let out = common::bin(120).arg("validate").arg(&exp).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "a stray is a warning, not an error\n{err}"
    );
    let warned: Vec<&str> = err.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(warned.len(), 2, "{err}");
    assert!(warned[0].contains("exp.yaml:7:") && warned[0].contains("`infrastructure.data_centers`: only `provider: runpod` reads it, and this experiment runs on `simulator`"), "{err}");
    assert!(
        warned[1].contains("exp.yaml:8:") && warned[1].contains("`infrastructure.keep_pod`"),
        "{err}"
    );
    // A matrix with a RunPod deployment reads them: no warning.
    let matrix = write(
        d.path(),
        "matrix.yaml",
        &format!("{head}infrastructure:\n  provider: simulator\n  data_centers: [EU-RO-1]\ndeployments:\n  matrix:\n    where:\n      sim: {{}}\n      pod: {{ infrastructure: {{ provider: runpod, gpu_type: H100 }} }}\n"),
    );
    let out = common::bin(120)
        .arg("validate")
        .arg(&matrix)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("warning:"), "{err}");
}

#[test]
fn vast_settings_are_checked_where_they_are_written() {
    let d = tempfile::tempdir().unwrap();
    let head = "name: t\nmodel: { id: m }\nworkload: { concurrency: 1, requests: 1 }\ninfrastructure:\n  provider: vast\n";
    // (the lines after `provider: vast`, from line 6; the key blamed; what it says)
    let bad: &[(&str, &str, &str)] = &[
        (
            "  gpu_count: 1\n",
            "infrastructure.provider",
            "needs `infrastructure.gpu_type`",
        ),
        (
            "  gpu_type: H100 80GB\n  container_disk_gb: 4\n",
            "infrastructure.container_disk_gb",
            "least disk is 8 GB",
        ),
        (
            "  gpu_type: H100 80GB\n  vast: { min_reliability: 1.5 }\n",
            "infrastructure.vast.min_reliability",
            "from 0 to 1",
        ),
        (
            "  gpu_type: H100 80GB\n  vast: { max_price_per_hour_usd: 0 }\n",
            "infrastructure.vast.max_price_per_hour_usd",
            "positive amount",
        ),
        (
            "  gpu_type: H100 80GB\n  vast: { countries: [USA] }\n",
            "infrastructure.vast.countries[0]",
            "two-letter country code",
        ),
        (
            "  gpu_type: H100 80GB\n  vast: { offers_to_try: 0 }\n",
            "infrastructure.vast.offers_to_try",
            "at least 1",
        ),
    ];
    for (rest, key, says) in bad {
        let exp = write(d.path(), "exp.yaml", &format!("{head}{rest}"));
        let out = common::bin(120).arg("validate").arg(&exp).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{rest}\n{err}");
        assert!(
            err.lines()
                .any(|l| l.contains(&format!("`{key}`")) && l.contains(says)),
            "no `{key}` … {says} in\n{err}"
        );
    }
    // RunPod's placement keys are strays on Vast; the disk and keep_pod are read by both.
    let exp = write(
        d.path(),
        "exp.yaml",
        &format!("{head}  gpu_type: H100 80GB\n  cloud: community\n  container_disk_gb: 80\n  keep_pod: true\n  vast: {{ countries: [US, CA], max_price_per_hour_usd: 3 }}\n"),
    );
    let out = common::bin(120).arg("validate").arg(&exp).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let warned: Vec<&str> = err.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(warned.len(), 1, "{err}");
    assert!(
        warned[0].contains("`infrastructure.cloud`: only `provider: runpod` reads it"),
        "{err}"
    );
}

#[test]
fn agent_trace_and_prefix_cache_errors_are_located_at_their_keys() {
    // (the workload's lines from line 5, the line and key blamed, what the message says)
    let bad: &[(&str, usize, &str, &str)] = &[
        ("  sessions: 2\n  dataset: { kind: agentic, path: t.jsonl, start: [0.8, 0.2] }\n", 6, "workload.dataset.start", "0 ≤ min ≤ max ≤ 1"),
        ("  sessions: 2\n  dataset: { kind: agentic, path: t.jsonl, max_overflow_share: 2 }\n", 6, "workload.dataset.max_overflow_share", "must be a share in [0, 1]"),
        ("  requests: 4\n  dataset: { kind: shared_prefix, prefix_len: 8, suffix_len: 8, output_len: 4, target_hit_rate: 1.5 }\n", 6, "workload.dataset.target_hit_rate", "must be a share in [0, 1)"),
        ("  requests: 4\n  cache: { prime: true }\n", 6, "workload.cache.prime", "`random` prompts have none"),
        ("  requests: 4\n  dataset: { kind: random, input_len: 8, output_len: 4 }\n  sessions: 3\n", 7, "workload.sessions", "(or `kind: agentic`)"),
        ("  duration: 5s\n  search:\n    over: sessions\n    slo: { ttft_ms: 100 }\n", 7, "workload.search.over", "`random` prompts are single requests"),
        ("  duration: 5s\n  sessions: 2\n  dataset: { kind: agentic, path: t.jsonl }\n  search:\n    over: sessions\n    slo: { ttft_ms: 100 }\n    tiers: [{ name: a, ttft_ms: 100 }]\n", 11, "workload.search.tiers", "not both"),
        ("  duration: 5s\n  sessions: 2\n  dataset: { kind: agentic, path: t.jsonl }\n  search:\n    over: sessions\n    tiers:\n      - { name: a, ttft_ms: 100 }\n      - { name: a }\n", 10, "workload.search.tiers", "tier 2 is named `a`"),
        ("  api: chat\n  sessions: 2\n  concurrency: 2\n  dataset: { kind: conversation, turns: 3, input_len: 100, output_len: 10, system_prompt_len: 50, target_hit_rate: 0.9 }\n", 8, "workload.dataset.target_hit_rate", "remove `system_prompt_len`"),
        ("  api: chat\n  sessions: 2\n  concurrency: 2\n  dataset: { kind: conversation, path: t.jsonl, target_hit_rate: 0.9 }\n", 8, "workload.dataset.target_hit_rate", "is for synthetic sessions"),
        ("  api: chat\n  sessions: 2\n  concurrency: 2\n  dataset: { kind: conversation, turns: 3, input_len: 100, output_len: 10, target_hit_rate: 1 }\n", 8, "workload.dataset.target_hit_rate", "must be a share in [0, 1)"),
        ("  api: chat\n  sessions: 2\n  concurrency: 2\n  dataset: { kind: conversation, turns: 2, input_len: 100, output_len: 10, system_prompt_len: 20000000 }\n", 8, "workload.dataset.turns", "(with a system prompt of 20000000)"),
        ("  api: chat\n  sessions: 2\n  concurrency: 2\n  cache: { prime: true }\n  dataset: { kind: conversation, turns: 2, input_len: 100, output_len: 10 }\n", 8, "workload.cache.prime", "synthetic sessions with a system prompt"),
    ];
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "t.jsonl",
        "{\"id\": \"s\", \"block_size\": 64, \"requests\": [{\"t\": 0, \"type\": \"s\", \"in\": 100, \"out\": 8, \"hash_ids\": [1, 2]}]}\n",
    );
    assert_located(d.path(), bad);
    // And what is valid: an agent replay with a drawn start, a primed target.
    let good = [
        "  sessions: 2\n  concurrency: 2\n  dataset: { kind: agentic, path: t.jsonl, start: [0, 1], cache_bust: true, max_overflow_share: 0.1 }\n",
        "  requests: 4\n  concurrency: 2\n  cache: { flush: true, prime: true }\n  dataset: { kind: shared_prefix, prefix_len: 8, suffix_len: 8, output_len: 4, target_hit_rate: 0.5 }\n",
        "  duration: 5s\n  sessions: 2\n  dataset: { kind: agentic, path: t.jsonl }\n  search: { over: sessions, tiers: [{ name: fast, ttft_ms: 200, tpot_ms: 20 }, { name: slow, e2el_ms: 60000 }] }\n",
        "  api: chat\n  sessions: 2\n  concurrency: 2\n  cache: { flush: true, prime: true }\n  dataset: { kind: conversation, turns: 3, input_len: 100, output_len: 10, target_hit_rate: 0.9 }\n",
    ];
    assert_valid(d.path(), &good);
}

/// The head of the load-rule experiments: the workload's lines follow from line 5.
const LOAD_HEAD: &str =
    "name: t\nmodel: { id: m }\ninfrastructure: { provider: simulator }\nworkload:\n";

/// Each `(workload, line, key, says)` fails `validate` with `says` at `exp.yaml:line` and `key`.
fn assert_located(dir: &Path, bad: &[(&str, usize, &str, &str)]) {
    for (workload, line, key, says) in bad {
        let exp = write(dir, "exp.yaml", &format!("{LOAD_HEAD}{workload}"));
        let out = common::bin(120).arg("validate").arg(&exp).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{workload}\n{err}");
        let found = err
            .lines()
            .find(|l| l.contains(&format!("`{key}`")) && l.contains(says))
            .unwrap_or_else(|| panic!("no `{key}` … {says}\nin\n{err}\nfor\n{workload}"));
        assert!(
            found.contains(&format!("exp.yaml:{line}:")),
            "{found} is not at line {line}\nfor\n{workload}"
        );
    }
}

/// Each workload validates: no rule may catch it.
fn assert_valid(dir: &Path, good: &[&str]) {
    for workload in good {
        let exp = write(dir, "exp.yaml", &format!("{LOAD_HEAD}{workload}"));
        let out = common::bin(120).arg("validate").arg(&exp).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{workload}\n{err}");
    }
}

/// Shell completions that the shell accepts, and man pages for every command.
#[test]
fn completions_load_in_bash_and_man_pages_are_written() {
    let bash = common::succeeds(30, ["completions", "bash"]);
    assert!(bash.contains("compare") && bash.contains("--progress-every"));
    let d = tempfile::tempdir().unwrap();
    let script = write(d.path(), "c.bash", &bash);
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && complete -p llm-inf-bench",
            script.display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("llm-inf-bench"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for shell in ["zsh", "fish"] {
        let s = common::succeeds(30, ["completions", shell]);
        assert!(s.contains("results") && s.contains("schema"), "{shell}");
    }
    let man = d.path().join("man");
    common::succeeds(30, ["man", man.to_str().unwrap()]);
    for page in [
        "llm-inf-bench.1",
        "llm-inf-bench-run.1",
        "llm-inf-bench-results-show.1",
    ] {
        let text = std::fs::read_to_string(man.join(page)).unwrap();
        assert!(text.contains(".TH"), "{page}");
    }
    let run = std::fs::read_to_string(man.join("llm-inf-bench-run.1")).unwrap();
    assert!(run.contains("quiet"), "{run}");
}
