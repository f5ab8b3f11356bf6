//! `provider: vast` against the stateful fake of Vast.ai's API in `fakes/vast.rs`.

mod common;
#[path = "fakes/vast.rs"]
mod fake;

use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;
use fake::*;
use predicates::prelude::*;
use serde_json::{json, Value};

fn experiment(dir: &Path, extra: &str) -> PathBuf {
    let p = dir.join("exp.yaml");
    std::fs::write(
        &p,
        format!(
            "name: va\nmodel:\n  id: m\ninfrastructure:\n  provider: vast\n  gpu_type: \"H100 80GB\"\n  health_timeout: 5s\n  vast:\n    countries: [US]\n{extra}output:\n  dir: {}\nworkload:\n  concurrency: 2\n  requests: 20\n  dataset: {{ kind: random, input_len: 8, output_len: 4 }}\n",
            dir.join("out").display()
        ),
    )
    .unwrap();
    p
}

fn rig(script: Script, extra: &str) -> (World, tempfile::TempDir, PathBuf) {
    let w = world(script);
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(d.path(), extra);
    (w, d, exp)
}

fn env(c: &mut std::process::Command, w: &World) {
    c.envs(vast_vars(w));
    c.env("LLM_INF_BENCH_CONFIG", "/nonexistent")
        .env("LLM_INF_BENCH_STATE_DIR", common::test_state_dir())
        .env_remove("RUNPOD_API_KEY")
        .env_remove("HF_TOKEN");
}

/// `run --yes` on `exp` (plus `args`) exits with `code` and says `says`.
fn run_fails(w: &World, exp: &Path, args: &[&str], code: i32, says: &str) {
    bin(w)
        .arg("run")
        .arg(exp)
        .arg("--yes")
        .args(args)
        .assert()
        .code(code)
        .stderr(predicate::str::contains(says));
}

fn bin(w: &World) -> Command {
    let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("llm-inf-bench"));
    env(&mut c, w);
    let mut c = Command::from_std(c);
    c.timeout(Duration::from_secs(120));
    c
}

fn spawn_run(w: &World, exp: &Path, extra: &[&str]) -> std::process::Child {
    let mut c = common::background();
    env(&mut c, w);
    c.args(["run", "--yes"])
        .arg(exp)
        .args(extra)
        .spawn()
        .unwrap()
}

/// A workload far longer than any test (a stop ends it).
const LONG: [&str; 4] = [
    "--set",
    "workload.duration=60s",
    "--set",
    "workload.requests=1000000",
];

fn wait_until(w: &World, secs: u64, what: &str, cond: impl Fn(&Fake) -> bool) {
    let start = std::time::Instant::now();
    while !cond(&w.state.lock().unwrap()) {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn result(dir: &Path) -> (Value, String) {
    let f = common::result_path(dir);
    let text = std::fs::read_to_string(&f).unwrap();
    (serde_json::from_str(&text).unwrap(), text)
}

#[test]
fn a_full_run_rents_the_cheapest_fitting_offer_and_destroys_it_without_leaking_a_key() {
    let (w, d, exp) = rig(Script::default(), "");
    let out = bin(&w).arg("run").arg(&exp).arg("--yes").output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    // The plan priced the cheapest offer in the US (the German one is filtered out).
    assert!(stderr.contains("cost: about $"), "{stderr}");
    assert!(stderr.contains("offer 502"), "{stderr}");
    assert!(stderr.contains("$1.500/hour"), "{stderr}");
    let (r, text) = result(d.path());
    assert_eq!(r["summary"]["completed"], 20);
    assert_eq!(r["environment"]["provider"], "vast");
    assert_eq!(r["environment"]["price_per_hour_usd"], 1.5);
    assert_eq!(r["environment"]["gpu_type"], "1× H100 SXM");
    // The instance's gpu_util, one gauge for the instance.
    assert_eq!(
        r["gpu_telemetry"]["samples"][0]["util_pct"],
        json!([87.5]),
        "{}",
        r["gpu_telemetry"]
    );
    let f = w.state.lock().unwrap();
    assert!(f.violations.is_empty(), "{:?}", f.violations);
    assert_eq!(f.creates, [502]);
    let id: u64 = r["environment"]["pod_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(f.destroyed, [id], "the instance is destroyed");
    assert!(
        none_of_ours_left(&f),
        "someone else's instance is untouched"
    );
    // The search asked for what the experiment says, in Vast's words.
    let s = &f.searches[0];
    assert_eq!(s["gpu_name"], json!({"eq": "H100 SXM"}));
    assert_eq!(s["direct_port_count"], json!({"gte": 1}));
    assert_eq!(s["geolocation"], json!({"in": ["US"]}));
    let b = &f.create_bodies[0];
    assert!(b["label"]
        .as_str()
        .unwrap()
        .starts_with("llm-inf-bench-va-"));
    assert_eq!(b["runtype"], "args");
    assert_eq!(b["env"]["-p 8000:8000"], "1");
    let server_key = b["env"]["VLLM_API_KEY"].as_str().unwrap().to_string();
    assert!(server_key.starts_with("llmib-"));
    assert!(
        !b["args"].to_string().contains(&server_key),
        "the key is not on the instance's command line"
    );
    let mut files = String::new();
    for e in std::fs::read_dir(d.path().join("out")).unwrap() {
        files.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap());
    }
    // The instance's states went to the run's server log.
    assert!(files.contains("vast: loading: Pulling image"), "{files}");
    for (what, s) in [
        ("stdout", stdout.as_ref()),
        ("stderr", stderr.as_ref()),
        ("result", text.as_str()),
        ("files", files.as_str()),
    ] {
        assert!(!s.contains(KEY), "the API key leaked into {what}");
        assert!(
            !s.contains(&server_key),
            "the server's key leaked into {what}"
        );
    }
}

#[test]
fn a_taken_offer_and_an_instance_that_exits_move_on_to_the_next_and_429_is_retried() {
    let (w, _d, exp) = rig(
        Script {
            taken: vec![502],
            exits: vec![503],
            rate_limit_first_search: true,
            ..Script::default()
        },
        "",
    );
    let out = bin(&w).arg("run").arg(&exp).arg("--yes").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("was taken since the search"), "{stderr}");
    assert!(stderr.contains("failed to start (exited"), "{stderr}");
    let f = w.state.lock().unwrap();
    assert!(f.violations.is_empty(), "{:?}", f.violations);
    assert_eq!(
        f.creates,
        [502, 503, 501],
        "cheapest first, the next on each failure"
    );
    assert_eq!(
        f.destroyed.len(),
        2,
        "the exited instance and the one that ran"
    );
    assert!(none_of_ours_left(&f));
}

#[test]
fn no_offer_within_the_filters_rents_nothing_and_says_what_to_widen() {
    let (w, _d, exp) = rig(Script::default(), "    max_price_per_hour_usd: 0.5\n");
    bin(&w)
        .arg("run")
        .arg(&exp)
        .arg("--yes")
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("Vast.ai has no offer")
                .and(predicate::str::contains("max_price_per_hour_usd")),
        );
    assert!(w.state.lock().unwrap().creates.is_empty());
}

#[test]
fn without_a_key_or_with_a_bad_one_nothing_is_rented_and_the_error_says_why() {
    let (w, _d, exp) = rig(Script::default(), "");
    // No key: exit 2 naming where a key goes, and Vast is not even asked.
    // A bad key: exit 1 with Vast's own words.
    for (key, code, says) in [
        (None, 2, "VAST_API_KEY"),
        (Some("not-the-key"), 1, "HTTP 401: Invalid user key"),
    ] {
        let mut c = bin(&w);
        match key {
            Some(k) => c.env("VAST_API_KEY", k),
            None => c.env_remove("VAST_API_KEY"),
        };
        c.arg("run")
            .arg(&exp)
            .arg("--yes")
            .assert()
            .code(code)
            .stderr(predicate::str::contains(says));
        let f = w.state.lock().unwrap();
        // (The fake records only what a good key asked.)
        assert!(f.searches.is_empty() && f.creates.is_empty());
    }
}

/// Waits (at most 60 s) until an instance's server has answered a few requests.
fn wait_for_the_workload(w: &World) {
    let start = std::time::Instant::now();
    loop {
        let ports: Vec<u16> = w
            .state
            .lock()
            .unwrap()
            .instances
            .values()
            .filter(|i| i.key.is_some())
            .map(|i| i.port)
            .collect();
        if ports.into_iter().any(|p| common::served(p) > 5.0) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for the workload"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Ctrl-C, SIGTERM and kill -9, each while the instance loads and while the workload runs:
/// no instance of ours is left — destroyed by the tool (what was measured saved), or after
/// kill -9 by the watchdog.
#[test]
fn every_stop_in_every_phase_leaves_no_instance() {
    for signal in ["INT", "TERM", "KILL"] {
        for during_workload in [false, true] {
            let (w, d, exp) = rig(
                Script {
                    never_running: !during_workload,
                    ..Script::default()
                },
                "  health_timeout: 60s\n",
            );
            let mut child = spawn_run(&w, &exp, &LONG);
            match during_workload {
                true => wait_for_the_workload(&w),
                false => {
                    wait_until(&w, 30, "an instance is rented", |f| !f.creates.is_empty());
                    std::thread::sleep(Duration::from_millis(300));
                }
            }
            let case = format!("SIG{signal} during the workload: {during_workload}");
            if signal == "KILL" {
                child.kill().unwrap(); // no cleanup of the tool's own can run
                let _ = child.wait();
                wait_until(&w, 60, "the watchdog destroys the instance", |f| {
                    f.destroyed.len() == 1 && none_of_ours_left(f)
                });
                let log = common::files(d.path(), ".watchdog.log");
                let log = std::fs::read_to_string(&log[0]).unwrap();
                assert!(log.contains("exited without releasing"), "{case}: {log}");
                assert!(log.contains("ended instance"), "{case}: {log}");
                assert!(!log.contains(KEY));
                continue;
            }
            let code = common::signal_and_wait(&mut child, signal, 30);
            assert_eq!(code, Some(130), "{case}");
            let f = w.state.lock().unwrap();
            assert_eq!(f.destroyed.len(), 1, "{case}");
            assert!(none_of_ours_left(&f), "{case}");
            drop(f);
            if during_workload {
                let (r, _) = result(d.path());
                assert_eq!(r["status"], "interrupted", "{case}");
                assert!(r["summary"]["completed"].as_u64().unwrap() > 0, "{case}");
            }
        }
    }
}

#[test]
fn max_lifetime_stops_the_run_and_destroys_the_instance() {
    let (w, d, exp) = rig(Script::default(), "  max_lifetime: 3s\n");
    bin(&w)
        .arg("run")
        .arg(&exp)
        .arg("--yes")
        .args(LONG)
        .assert()
        .success();
    let (r, _) = result(d.path());
    assert!(r["termination_reason"]
        .as_str()
        .unwrap()
        .starts_with("max_lifetime"));
    let f = w.state.lock().unwrap();
    assert_eq!(f.destroyed.len(), 1);
    assert!(none_of_ours_left(&f));
}

#[test]
fn a_drifted_api_costs_no_run_and_is_named_once() {
    let (w, d, exp) = rig(
        Script {
            drift: true,
            ..Script::default()
        },
        "",
    );
    let out = bin(&w).arg("run").arg(&exp).arg("--yes").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stderr.matches("warning: Vast.ai's answer").count(),
        1,
        "{stderr}"
    );
    let (r, _) = result(d.path());
    assert_eq!(r["summary"]["completed"], 20);
    assert!(
        r["environment"]["provider_drift"]
            .as_str()
            .unwrap()
            .contains("Vast.ai's answer"),
        "{}",
        r["environment"]
    );
    let f = w.state.lock().unwrap();
    assert_eq!(f.destroyed.len(), 1);
    assert!(none_of_ours_left(&f));
}

#[test]
fn leftovers_are_warned_about_listed_and_destroyed_but_never_anyone_elses() {
    let w = world(Script::default());
    {
        // What a kill -9 with a dead watchdog would leave.
        let mut f = w.state.lock().unwrap();
        f.instances.insert(
            7,
            Inst {
                v: json!({"id": 7, "label": "llm-inf-bench-old-20260101-000000",
                    "actual_status": "running", "dph_total": 1.25, "start_date": 1_700_000_000.0}),
                shows: 9,
                offer: 0,
                port: 1,
                key: None,
                _server: None,
            },
        );
    }
    bin(&w)
        .args(["pods", "list", "--provider", "vast"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("vast")
                .and(predicate::str::contains("llm-inf-bench-old"))
                .and(predicate::str::contains("1.25"))
                .and(predicate::str::contains("my-notebook").not()),
        );
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(d.path(), "");
    bin(&w)
        .arg("run")
        .arg(&exp)
        .arg("--yes")
        .assert()
        .success()
        .stderr(predicate::str::contains("warning: Vast.ai instance 7"));
    // A listed id is ended where it was listed, with no --provider.
    bin(&w)
        .args(["pods", "terminate", "7", "--yes"])
        .assert()
        .success()
        .stdout(predicate::str::contains("terminated vast 7"));
    let f = w.state.lock().unwrap();
    assert!(f.destroyed.contains(&7));
    assert!(
        f.instances.contains_key(&1),
        "never touch an instance that is not ours"
    );
}

#[test]
fn a_create_answer_without_the_instance_id_still_ends_in_a_destroyed_instance() {
    let (w, _d, exp) = rig(
        Script {
            garbled_create: true,
            ..Script::default()
        },
        "",
    );
    run_fails(&w, &exp, &[], 1, "no `new_contract`");
    // The tool cannot know the instance; the watchdog finds it by its label.
    wait_until(&w, 60, "the watchdog destroys the instance", |f| {
        f.destroyed.len() == 1 && none_of_ours_left(f)
    });
}

#[test]
fn the_budget_stops_the_run_and_destroys_the_instance() {
    // $36 000/hour: a cent every millisecond.
    let (w, d, exp) = rig(
        Script {
            offers: vec![OfferSpec {
                id: 900,
                gpu: "H100 SXM",
                dph: 36_000.0,
                country: "US",
            }],
            ..Script::default()
        },
        "  max_cost_usd: 30\n",
    );
    bin(&w)
        .arg("run")
        .arg(&exp)
        .arg("--yes")
        .args(LONG)
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "the budget (infrastructure.max_cost_usd) is spent",
        ));
    let (r, _) = result(d.path());
    assert!(r["termination_reason"]
        .as_str()
        .unwrap()
        .starts_with("max_cost_usd"));
    assert!(r["cost"]["actual_usd"].as_f64().unwrap() >= 30.0);
    let f = w.state.lock().unwrap();
    assert_eq!(f.destroyed.len(), 1);
    assert!(none_of_ours_left(&f));
}

#[test]
fn a_failure_after_the_instance_runs_still_destroys_it_and_replicas_each_rent_one() {
    // One instance, then two replicas (two offers: one offer is one instance): every
    // instance rented is destroyed when pre-flight fails.
    for (extra, n) in [("", 1), ("  replicas: 2\n", 2)] {
        let (w, _d, exp) = rig(Script::default(), extra);
        run_fails(
            &w,
            &exp,
            &["--set", "model.id=other"],
            1,
            "does not serve `other`",
        );
        let f = w.state.lock().unwrap();
        assert_eq!(
            f.instances.len() + f.destroyed.len(),
            n + 1,
            "{:?}",
            f.creates
        );
        assert_eq!(f.destroyed.len(), n);
        assert!(none_of_ours_left(&f));
    }
    // Two replicas measure: each its own instance, both destroyed.
    let (w, d, exp) = rig(Script::default(), "  replicas: 2\n");
    bin(&w).arg("run").arg(&exp).arg("--yes").assert().success();
    let (r, _) = result(d.path());
    assert_eq!(r["environment"]["replicas"], 2);
    // The run's price is both instances': the two cheapest US offers.
    assert_eq!(r["environment"]["price_per_hour_usd"], 1.5 + 1.9);
    let f = w.state.lock().unwrap();
    assert_eq!(f.destroyed.len(), 2);
    assert!(none_of_ours_left(&f));
}

#[test]
fn an_api_that_is_down_keeps_the_watchdog_trying_and_pods_list_warns_until_the_instance_is_gone() {
    let (w, _d, exp) = rig(Script::default(), "");
    let state = tempfile::tempdir().unwrap();
    let mut c = common::background();
    env(&mut c, &w);
    let mut child = c
        .env("LLM_INF_BENCH_STATE_DIR", state.path())
        .args(["run", "--yes"])
        .arg(&exp)
        .args(LONG)
        .spawn()
        .unwrap();
    wait_for_the_workload(&w);
    // Vast goes down, then the tool dies: only the watchdog is left, and it cannot reach Vast.
    w.state.lock().unwrap().script.down = true;
    child.kill().unwrap();
    let _ = child.wait();
    let markers = state.path().join("unconfirmed-pods");
    let start = std::time::Instant::now();
    while std::fs::read_dir(&markers).map_or(true, |mut d| d.next().is_none()) {
        assert!(start.elapsed() < Duration::from_secs(20), "no marker");
        std::thread::sleep(Duration::from_millis(100));
    }
    let list = |w: &World| {
        let out = bin(w)
            .env("LLM_INF_BENCH_STATE_DIR", state.path())
            .args(["pods", "list", "--provider", "vast"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let warned = list(&w);
    assert!(
        warned.contains("Vast.ai rental(s)") && warned.contains("may still be billing"),
        "{warned}"
    );
    assert!(w.state.lock().unwrap().destroyed.is_empty());
    // Vast is back: the watchdog, still trying, destroys the instance and clears the marker.
    w.state.lock().unwrap().script.down = false;
    wait_until(&w, 60, "the watchdog destroys the instance", |f| {
        f.destroyed.len() == 1 && none_of_ours_left(f)
    });
    let start = std::time::Instant::now();
    while std::fs::read_dir(&markers).is_ok_and(|mut d| d.next().is_some()) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the marker stays"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!list(&w).contains("may still be billing"));
}

/// The same lifecycle through Stoplight Prism in proxy mode (`--errors`) in front of the fake:
/// every request the tool sends and every answer the fake gives is checked against Vast's
/// per-endpoint documents (`fakes/vast.rs::merged_document`), with none of our code in the
/// checking path.
#[test]
#[ignore = "needs Prism (scripts/test.sh installs it)"]
fn the_fake_behind_prism_proxy_keeps_to_vasts_document() {
    let (w, d, exp) = rig(Script::default(), "");
    let spec = d.path().join("vast-openapi.json");
    std::fs::write(
        &spec,
        serde_json::to_vec_pretty(&merged_document()).unwrap(),
    )
    .unwrap();
    let log = d.path().join("prism.log");
    let (mut proxy, port) = common::prism_proxy(&spec, &w.api, &log);
    let out = bin(&w)
        .env("VAST_URL", format!("http://127.0.0.1:{port}"))
        .arg("run")
        .arg(&exp)
        .arg("--yes")
        .output()
        .unwrap();
    // `pods list` pages through the list endpoint too.
    let list = bin(&w)
        .env("VAST_URL", format!("http://127.0.0.1:{port}"))
        .args(["pods", "list", "--provider", "vast"])
        .output()
        .unwrap();
    let _ = proxy.kill();
    let _ = proxy.wait();
    let prism_log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        out.status.success() && list.status.success(),
        "{}{}\nprism:\n{prism_log}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&list.stderr)
    );
    let errors = common::prism_violations(&log);
    assert!(
        errors.is_empty(),
        "prism found the fake or the client off the document:\n{}",
        errors.join("\n")
    );
    let f = w.state.lock().unwrap();
    assert_eq!(f.creates.len(), 1);
    assert_eq!(f.destroyed.len(), 1);
}
