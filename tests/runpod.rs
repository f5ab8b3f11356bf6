//! `provider: runpod` against a stateful fake of RunPod's REST API v2 on 127.0.0.1, built from
//! the documented shapes (the spec's own example pod as the template) and checking every
//! create body against RunPod's OpenAPI document. The "pod" serves the in-process simulator.

mod common;
#[path = "fakes/vast.rs"]
mod vast_fake;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use assert_cmd::Command;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use llm_inf_bench::config::{Personality, SimProfile};
use llm_inf_bench::sim::{self, SimConfig};
use predicates::prelude::*;
use serde_json::{json, Value};

const KEY: &str = "rpa_TESTKEY_must_never_be_printed_0123456789";

fn spec() -> Value {
    let p = format!(
        "{}/../shared/reference/runpod-v2-openapi.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// How the fake behaves.
#[derive(Default, Clone)]
struct Script {
    /// GPU types that answer 400 "no capacity".
    no_capacity: Vec<String>,
    /// The first create answers 429 with Retry-After: 1.
    rate_limit_first_create: bool,
    /// Pods never leave PROVISIONING.
    never_running: bool,
    /// USD per hour of a pod.
    cost: f64,
    /// Create answers 201 with a pod description the tool cannot use (`status: null`).
    garbled_create: bool,
    /// Every answer drifts from the document where the tool does not look: letter case of
    /// the status, `null` for promised objects, display fields missing, new keys.
    drift: bool,
    /// A running pod maps its port to a port nothing listens on (the server never comes up).
    dead_server: bool,
}

/// What the fake pod's log stream says (RunPod's documented event shape).
const POD_LOG: [&str; 3] = [
    "INFO Starting vLLM API server",
    "INFO Loading weights took 41.2 seconds",
    "ERROR torch.OutOfMemoryError: CUDA out of memory",
];

#[derive(Default)]
struct Fake {
    script: Script,
    /// The server a running pod maps its port to.
    server_port: u16,
    pods: HashMap<String, (Value, u32)>,
    creates: Vec<Value>,
    deleted: Vec<String>,
    /// The `Last-Event-ID` of every log stream request.
    log_requests: Vec<Option<String>>,
    violations: Vec<String>,
    /// Each pod's server: started at create, with the API key the pod's environment carries
    /// (`VLLM_API_KEY`), as vLLM would be.
    pod_servers: HashMap<String, (u16, Option<String>, sim::SimHandle)>,
    /// The API is down: every call answers 503.
    down: bool,
    create_calls: u32,
    next: u32,
    /// The most pods alive at once.
    peak_live: usize,
}

type Shared = Arc<Mutex<Fake>>;

fn problem(status: StatusCode, detail: &str) -> Response {
    let mut r = (status, Json(json!({"title": status.canonical_reason().unwrap_or(""), "status": status.as_u16(), "detail": detail}))).into_response();
    r.headers_mut()
        .insert("content-type", "application/problem+json".parse().unwrap());
    r
}

fn authorized(h: &HeaderMap) -> bool {
    h.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {KEY}"))
}

/// The fake's answer when it is down (an outage, not a refusal).
fn down(f: &Shared) -> Option<Response> {
    f.lock()
        .unwrap()
        .down
        .then(|| problem(StatusCode::SERVICE_UNAVAILABLE, "upstream unavailable"))
}

async fn create(State(f): State<Shared>, h: HeaderMap, Json(body): Json<Value>) -> Response {
    if let Some(r) = down(&f) {
        return r;
    }
    if !authorized(&h) {
        return problem(StatusCode::UNAUTHORIZED, "invalid or missing API key");
    }
    // The pod's server, as the image would start it: vLLM with the key from its environment,
    // or trtllm-serve, which takes none.
    let trtllm = body["args"]
        .as_str()
        .is_some_and(|a| a.starts_with("trtllm-serve "));
    let key = body["env"]["VLLM_API_KEY"].as_str().map(String::from);
    let personality = match trtllm {
        true => Personality::Trtllm,
        false => Personality::Vllm,
    };
    let mut cfg = SimConfig::new(SimProfile::Instant, personality, "m");
    cfg.startup_delay = Some(Duration::ZERO);
    cfg.api_key = key
        .clone()
        .filter(|_| !trtllm)
        .map(llm_inf_bench::config::Secret::new);
    let server = sim::start(cfg, "127.0.0.1:0").await.unwrap();
    let mut f = f.lock().unwrap();
    if key.is_none() && !trtllm {
        f.violations
            .push("a pod's server was started without an API key".into());
    }
    f.create_calls += 1;
    // RunPod's own document decides whether the body is acceptable (unevaluatedProperties too).
    let doc = spec();
    let schema = json!({"$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": "#/components/schemas/CreatePodRequest", "components": doc["components"]});
    let v = jsonschema::validator_for(&schema).unwrap();
    let errs: Vec<String> = v
        .iter_errors(&body)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    if !errs.is_empty() {
        f.violations.extend(errs.clone());
        return problem(StatusCode::UNPROCESSABLE_ENTITY, &errs.join("; "));
    }
    f.creates.push(body.clone());
    if f.script.rate_limit_first_create && f.create_calls == 1 {
        let mut r = problem(
            StatusCode::TOO_MANY_REQUESTS,
            "rate limit exceeded for the minute window",
        );
        r.headers_mut().insert("retry-after", "1".parse().unwrap());
        return r;
    }
    let gpu = body["gpu"]["id"].as_str().unwrap_or_default().to_string();
    if f.script.no_capacity.contains(&gpu) {
        return problem(
            StatusCode::BAD_REQUEST,
            &format!("There are no instances currently available for {gpu}"),
        );
    }
    f.next += 1;
    let id = format!("fakepod{:03}", f.next);
    f.pod_servers
        .insert(id.clone(), (server.addr.port(), key, server));
    let mut pod = doc["paths"]["/v2/pods/{id}"]["get"]["responses"]["200"]["content"]
        ["application/json"]["examples"]["pod"]["value"]
        .clone();
    pod["id"] = id.clone().into();
    pod["name"] = body["name"].clone();
    pod["image"] = body["image"].clone();
    pod["args"] = body["args"].clone();
    pod["env"] = body.get("env").cloned().unwrap_or(json!({}));
    pod["ports"] = body["ports"].clone();
    pod["gpu"] = body["gpu"].clone();
    pod["status"] = "PROVISIONING".into();
    pod["runtime"] = Value::Null;
    pod["cost"] = f.script.cost.into();
    f.pods.insert(id, (pod.clone(), 0));
    f.peak_live = f.peak_live.max(f.pods.len());
    if f.script.garbled_create {
        pod["env"] = Value::Null;
        pod["status"] = Value::Null;
    }
    if f.script.drift {
        pod = drifted(pod);
    }
    (StatusCode::CREATED, Json(pod)).into_response()
}

async fn get_pod(State(f): State<Shared>, h: HeaderMap, UrlPath(id): UrlPath<String>) -> Response {
    if let Some(r) = down(&f) {
        return r;
    }
    if !authorized(&h) {
        return problem(StatusCode::UNAUTHORIZED, "invalid or missing API key");
    }
    let mut f = f.lock().unwrap();
    let never = f.script.never_running;
    let port = match (f.script.dead_server, f.pod_servers.get(&id)) {
        (true, _) => closed_port(),
        (false, Some((port, _, _))) => *port,
        (false, None) => f.server_port,
    };
    let Some((pod, gets)) = f.pods.get_mut(&id) else {
        return problem(StatusCode::NOT_FOUND, "pod not found");
    };
    *gets += 1;
    // PROVISIONING, STARTING, then RUNNING with the port mapped, as the docs describe.
    if !never && *gets >= 3 {
        pod["status"] = "RUNNING".into();
        // Gauges as RunPod reports them (integers, percent), one per GPU.
        let gpus: Vec<Value> = (0..pod["gpu"]["count"].as_u64().unwrap_or(1))
            .map(|i| json!({"util": 90 + i, "memoryUtil": 70 + i}))
            .collect();
        pod["runtime"] = json!({"uptime": 1, "gpus": gpus, "ports": [{"private": 8000, "public": port, "type": "tcp", "ip": "127.0.0.1"}]});
    } else if !never && *gets == 2 {
        pod["status"] = "STARTING".into();
    }
    let pod = pod.clone();
    match f.script.drift {
        true => Json(drifted(pod)).into_response(),
        false => Json(pod).into_response(),
    }
}

/// A pod answer as a live API might drift from its document, only where the tool does not
/// look (or looks tolerantly).
fn drifted(mut pod: Value) -> Value {
    let o = pod.as_object_mut().unwrap();
    let status = o["status"].as_str().unwrap_or_default().to_lowercase();
    o.insert("status".into(), status.into());
    o.insert("ssh".into(), Value::Null);
    o.remove("template");
    o.remove("actions");
    o.remove("image");
    o.insert("createdAt".into(), "a while ago".into());
    o.insert("newField".into(), json!({"nested": [1, 2, 3]}));
    if let Some(rt) = o.get_mut("runtime").and_then(Value::as_object_mut) {
        rt.insert("gpus".into(), Value::Null);
        rt.insert("cpu".into(), "busy".into());
    }
    pod
}

async fn list(State(f): State<Shared>, h: HeaderMap) -> Response {
    if let Some(r) = down(&f) {
        return r;
    }
    if !authorized(&h) {
        return problem(StatusCode::UNAUTHORIZED, "invalid or missing API key");
    }
    let f = f.lock().unwrap();
    let mut pods: Vec<Value> = f
        .pods
        .values()
        .map(|(p, _)| match f.script.drift {
            true => drifted(p.clone()),
            false => p.clone(),
        })
        .collect();
    pods.sort_by_key(|p| p["id"].as_str().unwrap_or_default().to_string());
    Json(json!({ "pods": pods })).into_response()
}

async fn delete_pod(
    State(f): State<Shared>,
    h: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    if let Some(r) = down(&f) {
        return r;
    }
    if !authorized(&h) {
        return problem(StatusCode::UNAUTHORIZED, "invalid or missing API key");
    }
    let mut f = f.lock().unwrap();
    if f.pods.remove(&id).is_none() {
        return problem(StatusCode::NOT_FOUND, "pod not found");
    }
    f.deleted.push(id);
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /pods/{id}/logs`: the documented SSE stream (`id:` + JSON `data:`), then the end.
async fn pod_logs(State(f): State<Shared>, h: HeaderMap, UrlPath(id): UrlPath<String>) -> Response {
    if !authorized(&h) {
        return problem(StatusCode::UNAUTHORIZED, "invalid or missing API key");
    }
    let mut f = f.lock().unwrap();
    f.log_requests.push(
        h.get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .map(String::from),
    );
    if !f.pods.contains_key(&id) {
        return problem(StatusCode::NOT_FOUND, "pod not found");
    }
    // A resumed stream has nothing new to say.
    if h.contains_key("last-event-id") {
        return ([("content-type", "text/event-stream")], String::new()).into_response();
    }
    let body: String = POD_LOG
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let ts = format!("2026-06-01T12:02:0{i}Z");
            format!(
                "id: {ts}/{i:012}\ndata: {}\n\n",
                json!({"ts": ts, "source": "container", "line": l})
            )
        })
        .collect();
    ([("content-type", "text/event-stream")], body).into_response()
}

/// The status a chat request without an API key gets from the server on `port`.
use common::served;

fn unauthenticated_status(port: u16) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":2}"#;
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// A loopback port nobody listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

async fn gpu(State(f): State<Shared>, h: HeaderMap, UrlPath(id): UrlPath<String>) -> Response {
    if let Some(r) = down(&f) {
        return r;
    }
    if !authorized(&h) {
        return problem(StatusCode::UNAUTHORIZED, "invalid or missing API key");
    }
    let mut t = spec()["paths"]["/v2/catalog/gpus"]["get"]["responses"]["200"]["content"]
        ["application/json"]["examples"]
        .as_object()
        .and_then(|m| m.values().next().cloned())
        .map(|e| e["value"]["gpus"][0].clone())
        .unwrap();
    t["id"] = id.into();
    t["price"] = json!({"secure": 2.0, "community": 1.0});
    if f.lock().unwrap().script.drift {
        let o = t.as_object_mut().unwrap();
        o.remove("maxCount");
        o.insert("manufacturer".into(), Value::Null);
        o.insert("newPricing".into(), json!({"spot": 0.5}));
    }
    Json(t).into_response()
}

/// The fake API and a simulator for its pods, alive for the test.
struct World {
    api: String,
    state: Shared,
    _rt: tokio::runtime::Runtime,
    _sim: sim::SimHandle,
}

fn world(script: Script) -> World {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut cfg = SimConfig::new(SimProfile::Instant, Personality::Vllm, "m");
    cfg.startup_delay = Some(Duration::ZERO);
    let s = rt.block_on(sim::start(cfg, "127.0.0.1:0")).unwrap();
    let state: Shared = Arc::new(Mutex::new(Fake {
        script,
        server_port: s.addr.port(),
        ..Fake::default()
    }));
    let app = Router::new()
        .route("/v2/pods", post(create).get(list))
        .route("/v2/pods/{id}", get(get_pod).delete(delete_pod))
        .route("/v2/pods/{id}/logs", get(pod_logs))
        .route("/v2/catalog/gpus/{id}", get(gpu))
        .with_state(state.clone());
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let api = format!("http://{}/v2", listener.local_addr().unwrap());
    rt.spawn(async move { axum::serve(listener, app).await });
    World {
        api,
        state,
        _rt: rt,
        _sim: s,
    }
}

fn experiment(dir: &Path, extra: &str) -> PathBuf {
    let p = dir.join("exp.yaml");
    std::fs::write(
        &p,
        format!(
            "name: rp\nmodel:\n  id: m\ninfrastructure:\n  provider: runpod\n  gpu_type: \"NVIDIA H100 80GB HBM3\"\n  health_timeout: 3s\n{extra}output:\n  dir: {}\nworkload:\n  concurrency: 2\n  requests: 20\n  dataset: {{ kind: random, input_len: 8, output_len: 4 }}\n",
            dir.join("out").display()
        ),
    )
    .unwrap();
    p
}

/// The fake API behaving as `script`, a scratch directory, and an experiment in it.
fn rig(script: Script, extra: &str) -> (World, tempfile::TempDir, PathBuf) {
    let w = world(script);
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(d.path(), extra);
    (w, d, exp)
}

/// `run --yes` on `exp` (plus `args`) fails with exit code 1 and says `says`.
fn run_fails(w: &World, exp: &Path, args: &[&str], says: &str) {
    bin(w)
        .arg("run")
        .arg(exp)
        .arg("--yes")
        .args(args)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(says));
}

fn bin(w: &World) -> Command {
    let mut c = Command::cargo_bin("llm-inf-bench").unwrap();
    // Watchdog markers of these tests never reach the user's own state directory.
    let state =
        std::env::temp_dir().join(format!("llm-inf-bench-test-state-{}", std::process::id()));
    c.env("LLM_INF_BENCH_CONFIG", "/nonexistent")
        .env("LLM_INF_BENCH_STATE_DIR", state)
        .env("RUNPOD_API_BASE", &w.api)
        .env("RUNPOD_API_KEY", KEY)
        .env_remove("HF_TOKEN")
        .timeout(Duration::from_secs(120));
    c
}

/// The result file of a run that a stop rule ended, checked for the rule's name.
fn stopped_by(dir: &Path, rule: &str) -> Value {
    let (r, _) = result(dir);
    let reason = r["termination_reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with(rule), "stopped by {rule}? {reason}");
    r
}

fn result(dir: &Path) -> (Value, String) {
    let f = std::fs::read_dir(dir.join("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .unwrap();
    let text = std::fs::read_to_string(&f).unwrap();
    (serde_json::from_str(&text).unwrap(), text)
}

#[test]
fn a_full_run_rents_benchmarks_and_terminates_without_leaking_the_key() {
    let (w, d, exp) = rig(
        Script {
            cost: 2.99,
            ..Script::default()
        },
        "",
    );
    let out = bin(&w).arg("run").arg(&exp).arg("--yes").output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("cost: about $"),
        "the estimate is shown: {stderr}"
    );
    let (r, text) = result(d.path());
    assert_eq!(r["summary"]["completed"], 20);
    // The pod's GPU gauges (read at the start of the timed window, then every 5 s) and the
    // cost of the work at the pod's price.
    let gpu = &r["gpu_telemetry"];
    assert_eq!(gpu["samples"][0]["util_pct"], json!([90.0]), "{gpu}");
    assert_eq!(gpu["peak_memory_pct"], 70.0);
    assert_eq!(r["summary"]["mean_gpu_util_pct"], 90.0);
    assert!(
        r["summary"]["usd_per_million_output_tokens"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let f = w.state.lock().unwrap();
    assert!(f.violations.is_empty(), "{:?}", f.violations);
    assert_eq!(f.creates.len(), 1);
    let pod_id = r["environment"]["pod_id"].as_str().unwrap();
    // The pod's public server took requests only with the run's own key; without it, nobody.
    let (port, server_key, _) = &f.pod_servers[pod_id];
    let server_key = server_key.clone().expect("the pod's server had a key");
    assert!(server_key.starts_with("llmib-") && server_key.len() > 40);
    assert_eq!(unauthenticated_status(*port), 401);
    assert!(
        !f.creates[0]["args"].as_str().unwrap().contains(&server_key),
        "the key is not on the pod's visible command line"
    );
    assert_eq!(
        f.deleted,
        vec![pod_id.to_string()],
        "every created pod terminated"
    );
    assert!(f.creates[0]["name"]
        .as_str()
        .unwrap()
        .starts_with("llm-inf-bench-rp-"));
    assert_eq!(f.creates[0]["ports"], json!(["8000/tcp"]));
    assert_eq!(
        r["environment"]["price_per_hour_usd"].as_f64().unwrap(),
        2.99
    );
    assert!(r["cost"]["estimated_usd"].as_f64().unwrap() > 0.0);
    for (what, s) in [
        ("stdout", stdout.as_ref()),
        ("stderr", stderr.as_ref()),
        ("result", text.as_str()),
    ] {
        assert!(!s.contains(KEY), "the API key leaked into {what}");
        assert!(
            !s.contains(&server_key),
            "the server's key leaked into {what}"
        );
    }
    // Every file the run left (result, pod log, watchdog log) is free of both keys too.
    let mut logs = String::new();
    for e in std::fs::read_dir(d.path().join("out")).unwrap() {
        let p = e.unwrap().path();
        let t = std::fs::read_to_string(&p).unwrap();
        assert!(!t.contains(KEY), "the API key leaked into {}", p.display());
        assert!(
            !t.contains(&server_key),
            "the server key leaked into {}",
            p.display()
        );
        logs.push_str(&t);
    }
    // The pod's own log was followed into the run's server log.
    assert!(logs.contains("Loading weights took 41.2 seconds"), "{logs}");
}

#[test]
fn an_api_that_drifts_from_its_document_where_we_do_not_look_costs_no_run() {
    let (w, d, exp) = rig(
        Script {
            cost: 2.0,
            drift: true,
            ..Script::default()
        },
        "",
    );
    let out = bin(&w).arg("run").arg(&exp).arg("--yes").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let (r, _) = result(d.path());
    assert_eq!(r["status"], "completed");
    assert_eq!(r["summary"]["completed"], 20);
    // The drift is said once per run, naming where the answer differs, not once per poll.
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("differs from its document"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("at `"), "{}", warnings[0]);
    // And what the run's own client saw is kept with the result.
    assert!(r["environment"]["provider_drift"]
        .as_str()
        .unwrap()
        .contains("differs from its document"));
    let f = w.state.lock().unwrap();
    assert_eq!(f.deleted.len(), 1, "the pod was terminated");
    assert!(f.pods.is_empty());
}

#[test]
fn no_capacity_tries_the_next_gpu_type_and_429_is_retried() {
    let w = world(Script {
        no_capacity: vec!["NVIDIA H100 80GB HBM3".into()],
        rate_limit_first_create: true,
        cost: 1.0,
        ..Script::default()
    });
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(d.path(), "  fallback_gpu_types: [\"NVIDIA H200\"]\n");
    bin(&w).arg("run").arg(&exp).arg("--yes").assert().success();
    let f = w.state.lock().unwrap();
    let gpus: Vec<&str> = f
        .creates
        .iter()
        .map(|c| c["gpu"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        gpus,
        [
            "NVIDIA H100 80GB HBM3",
            "NVIDIA H100 80GB HBM3",
            "NVIDIA H200"
        ],
        "429 retried, then the fallback"
    );
    assert_eq!(f.deleted.len(), 1);
    let (r, _) = result(d.path());
    assert_eq!(r["environment"]["gpu_type"], "NVIDIA H200");
}

#[test]
fn a_bad_key_stops_at_once_with_runpods_own_words() {
    let w = world(Script::default());
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(d.path(), "");
    bin(&w)
        .env("RUNPOD_API_KEY", "wrong")
        .arg("run")
        .arg(&exp)
        .arg("--yes")
        .assert()
        .failure()
        .stderr(predicate::str::contains("invalid or missing API key"));
    assert_eq!(w.state.lock().unwrap().create_calls, 0);
}

#[test]
fn without_a_terminal_or_yes_nothing_is_rented() {
    let (w, _d, exp) = rig(
        Script {
            cost: 1.0,
            ..Script::default()
        },
        "",
    );
    bin(&w)
        .arg("run")
        .arg(&exp)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("pass --yes"));
    assert_eq!(w.state.lock().unwrap().create_calls, 0);
    bin(&w)
        .arg("run")
        .arg(&exp)
        .arg("--dry-run")
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "$2.00/hour per NVIDIA H100 80GB HBM3",
        ));
    assert_eq!(w.state.lock().unwrap().create_calls, 0);
}

#[test]
fn sigint_while_the_pod_provisions_terminates_it() {
    let (w, _d, exp) = rig(
        Script {
            never_running: true,
            cost: 1.0,
            ..Script::default()
        },
        "",
    );
    let mut child = spawn_run(&w, &exp, &[]);
    wait_until(&w, 30, "a pod is created", |f| !f.pods.is_empty());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(common::signal_and_wait(&mut child, "INT", 30), Some(130));
    let f = w.state.lock().unwrap();
    assert_eq!(f.deleted.len(), 1, "the provisioning pod was terminated");
    assert!(f.pods.is_empty());
}

#[test]
fn a_failure_after_the_pod_runs_still_terminates_it() {
    // One pod, then two replicas: every pod created is terminated.
    for (extra, pods) in [("", 1), ("  replicas: 2\n", 2)] {
        let (w, _d, exp) = rig(
            Script {
                cost: 1.0,
                ..Script::default()
            },
            extra,
        );
        // The pod's server does not serve this model: pre-flight fails.
        run_fails(
            &w,
            &exp,
            &["--set", "model.id=other"],
            "does not serve `other`",
        );
        let f = w.state.lock().unwrap();
        assert_eq!(f.creates.len(), pods);
        assert_eq!(f.deleted.len(), pods);
    }
}

#[test]
fn the_budget_stops_the_run_and_the_pod() {
    // $36 000/hour: a cent every millisecond.
    let w = world(Script {
        cost: 36_000.0,
        ..Script::default()
    });
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("exp.yaml");
    std::fs::write(
        &p,
        format!(
            "name: rp\nmodel:\n  id: m\ninfrastructure:\n  provider: runpod\n  gpu_type: \"NVIDIA H100 80GB HBM3\"\n  max_cost_usd: 30\noutput:\n  dir: {}\nworkload:\n  concurrency: 1\n  duration: 60s\n  dataset: {{ kind: random, input_len: 8, output_len: 4 }}\n",
            d.path().join("out").display()
        ),
    )
    .unwrap();
    // A budget stop is not a success: exit 3, the result saved, the pod gone.
    bin(&w)
        .arg("run")
        .arg(&p)
        .arg("--yes")
        .assert()
        .code(3)
        .stderr(predicates::str::contains(
            "the budget (infrastructure.max_cost_usd) is spent",
        ));
    let r = stopped_by(d.path(), "max_cost_usd");
    assert!(r["cost"]["actual_usd"].as_f64().unwrap() >= 30.0);
    assert_eq!(w.state.lock().unwrap().deleted.len(), 1);
}

#[test]
fn a_created_pod_whose_answer_does_not_decode_is_still_terminated() {
    let (w, _d, exp) = rig(
        Script {
            garbled_create: true,
            cost: 1.0,
            ..Script::default()
        },
        "",
    );
    run_fails(&w, &exp, &[], "unexpected answer");
    let f = w.state.lock().unwrap();
    assert_eq!(f.creates.len(), 1);
    assert_eq!(f.deleted, vec!["fakepod001".to_string()], "no orphan");
}

#[test]
fn leftovers_are_warned_about_listed_and_terminated() {
    let w = world(Script {
        never_running: true,
        cost: 1.5,
        ..Script::default()
    });
    let d = tempfile::tempdir().unwrap();
    // kill -9 leaves a pod behind (no cleanup can run): simulate with a pod the fake holds.
    {
        let mut f = w.state.lock().unwrap();
        let mut pod = spec()["paths"]["/v2/pods/{id}"]["get"]["responses"]["200"]["content"]
            ["application/json"]["examples"]["pod"]["value"]
            .clone();
        pod["id"] = "leftover1".into();
        pod["name"] = "llm-inf-bench-old-20260101-000000".into();
        pod["cost"] = 1.5.into();
        f.pods.insert("leftover1".into(), (pod.clone(), 0));
        pod["id"] = "notours".into();
        pod["name"] = "someone-elses".into();
        f.pods.insert("notours".into(), (pod, 0));
    }
    bin(&w).args(["pods", "list"]).assert().success().stdout(
        predicate::str::contains("leftover1").and(predicate::str::contains("notours").not()),
    );
    // A new run warns before renting; its own pod never runs, so it fails after
    // `health_timeout` (and that pod is terminated too).
    let exp = experiment(d.path(), "");
    bin(&w)
        .arg("run")
        .arg(&exp)
        .arg("--yes")
        .assert()
        .failure()
        .stderr(predicate::str::contains("warning: pod leftover1"));
    bin(&w)
        .args(["pods", "terminate", "--all-ours"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--yes"));
    bin(&w)
        .args(["pods", "terminate", "--all-ours", "--yes"])
        .assert()
        .success();
    let f = w.state.lock().unwrap();
    assert!(f.deleted.contains(&"leftover1".to_string()));
    assert!(
        !f.deleted.contains(&"notours".to_string()),
        "never touch pods that are not ours"
    );
}

/// Starts `run --yes` on `exp` in the background, its output discarded.
fn spawn_run(w: &World, exp: &Path, extra: &[&str]) -> std::process::Child {
    common::background()
        .args(["run", "--yes"])
        .arg(exp)
        .args(extra)
        .env("RUNPOD_API_BASE", &w.api)
        .env("RUNPOD_API_KEY", KEY)
        .spawn()
        .unwrap()
}

/// Starts a run of `exp` with a workload far longer than any test, and returns once its pod
/// is RUNNING (the third GET) and measured requests flow.
fn start_a_long_workload(w: &World, exp: &Path) -> std::process::Child {
    let child = spawn_run(
        w,
        exp,
        &[
            "--set",
            "workload.duration=60s",
            "--set",
            "workload.requests=1000000",
        ],
    );
    wait_until(w, 30, "the pod runs", |f| {
        f.pods.values().any(|(p, _)| p["status"] == "RUNNING")
    });
    wait_for_the_workload(w);
    child
}

/// Waits (at most 60 s) until some pod's server has answered more than a few requests: the
/// measured workload is under way, however slow this machine is.
fn wait_for_the_workload(w: &World) {
    let start = std::time::Instant::now();
    loop {
        // The ports first, then the requests to them with the lock released.
        let ports: Vec<u16> = w
            .state
            .lock()
            .unwrap()
            .pod_servers
            .values()
            .map(|v| v.0)
            .collect();
        if ports.into_iter().any(|p| served(p) > 5.0) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for the workload"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (at most `secs`) until `cond` holds on the fake's state.
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

/// `kill -9` leaves no cleanup to the tool: the watchdog must terminate the pod.
fn kill_9_then_watchdog_terminates(w: &World, mut child: std::process::Child) {
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    wait_until(w, 60, "the watchdog terminates the pod", |f| {
        f.deleted.len() == 1 && f.pods.is_empty()
    });
}

#[test]
fn kill_9_while_the_pod_provisions_is_cleaned_up_by_the_watchdog() {
    let (w, d, exp) = rig(
        Script {
            never_running: true,
            cost: 1.0,
            ..Script::default()
        },
        "  health_timeout: 60s\n",
    );
    let child = spawn_run(&w, &exp, &[]);
    wait_until(&w, 30, "a pod is created", |f| !f.pods.is_empty());
    std::thread::sleep(Duration::from_millis(300));
    kill_9_then_watchdog_terminates(&w, child);
    let log = std::fs::read_dir(d.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".watchdog.log"))
        .expect("a watchdog log");
    let log = std::fs::read_to_string(log).unwrap();
    assert!(
        log.contains("exited without releasing"),
        "the watchdog says why it acted: {log}"
    );
    assert!(!log.contains(KEY));
}

#[test]
fn kill_9_during_the_workload_is_cleaned_up_by_the_watchdog() {
    let (w, _d, exp) = rig(
        Script {
            cost: 1.0,
            ..Script::default()
        },
        "",
    );
    let child = start_a_long_workload(&w, &exp);
    kill_9_then_watchdog_terminates(&w, child);
}

#[test]
fn max_lifetime_stops_the_run_and_terminates_the_pod() {
    let (w, d, exp) = rig(
        Script {
            cost: 1.0,
            ..Script::default()
        },
        "  max_lifetime: 3s\n",
    );
    bin(&w)
        .arg("run")
        .arg(&exp)
        .arg("--yes")
        .args(["--set", "workload.duration=60s"])
        .args(["--set", "workload.requests=1000000"])
        .assert()
        .success();
    let r = stopped_by(d.path(), "max_lifetime");
    assert!(r["summary"]["completed"].as_u64().unwrap() > 0);
    let f = w.state.lock().unwrap();
    assert_eq!(f.deleted.len(), 1);
    assert!(f.pods.is_empty());
}

#[test]
fn a_server_that_never_comes_up_is_reported_with_the_pods_own_log() {
    let (w, _d, exp) = rig(
        Script {
            dead_server: true,
            cost: 1.0,
            ..Script::default()
        },
        "",
    );
    run_fails(&w, &exp, &[], "CUDA out of memory");
    let f = w.state.lock().unwrap();
    assert_eq!(f.deleted.len(), 1);
    assert_eq!(f.log_requests.first(), Some(&None), "first: from the start");
}

/// The fake itself checked against RunPod's document: Stoplight Prism in proxy mode
/// (`prism proxy --errors`, from `scripts/prism.sh`; `LLMIB_PRISM_BIN`) forwards a whole run's
/// API traffic to the fake and turns any request or response that breaks the document into an
/// error, with none of our code in the checking path.
#[test]
#[ignore = "needs Prism (scripts/test.sh installs it)"]
fn the_fake_behind_prism_proxy_keeps_to_runpods_document() {
    let (w, d, exp) = rig(
        Script {
            cost: 1.0,
            ..Script::default()
        },
        "",
    );
    let origin = w.api.trim_end_matches("/v2").to_string();
    let spec = PathBuf::from(format!(
        "{}/../shared/reference/runpod-v2-openapi.json",
        env!("CARGO_MANIFEST_DIR")
    ));
    let log = d.path().join("prism.log");
    let (mut proxy, port) = common::prism_proxy(&spec, &origin, &log);
    let out = bin(&w)
        .env("RUNPOD_API_BASE", format!("http://127.0.0.1:{port}/v2"))
        .arg("run")
        .arg(&exp)
        .arg("--yes")
        .output()
        .unwrap();
    let _ = proxy.kill();
    let _ = proxy.wait();
    let prism_log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        out.status.success(),
        "{}\nprism:\n{prism_log}",
        String::from_utf8_lossy(&out.stderr)
    );
    let errors = common::prism_violations(&log);
    assert!(
        errors.is_empty(),
        "prism found the fake or the client off the document:\n{}",
        errors.join("\n")
    );
    let f = w.state.lock().unwrap();
    assert_eq!(f.creates.len(), 1);
    assert_eq!(f.deleted.len(), 1);
}

#[test]
fn keep_pod_leaves_the_pod_and_its_server_key_in_a_private_file() {
    use std::os::unix::fs::PermissionsExt;
    let (w, d, exp) = rig(
        Script {
            cost: 1.0,
            ..Script::default()
        },
        "  keep_pod: true\n",
    );
    let out = bin(&w).arg("run").arg(&exp).arg("--yes").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let f = w.state.lock().unwrap();
    assert!(f.deleted.is_empty(), "a kept pod is not terminated");
    let (_, key, _) = f.pod_servers.values().next().unwrap();
    let key = key.clone().unwrap();
    let file = std::fs::read_dir(d.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".api-key"))
        .expect("the key file");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), key);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "only the user reads the key");
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
    assert!(!stderr.contains(&key), "the key itself is never printed");
}

#[test]
fn an_api_that_is_down_keeps_the_watchdog_trying_and_every_command_warns_until_the_pod_is_gone() {
    let (w, _d, exp) = rig(
        Script {
            cost: 1.0,
            ..Script::default()
        },
        "",
    );
    let state = tempfile::tempdir().unwrap();
    let mut child = common::background()
        .args(["run", "--yes"])
        .arg(&exp)
        .args([
            "--set",
            "workload.duration=60s",
            "--set",
            "workload.requests=1000000",
        ])
        .env("RUNPOD_API_BASE", &w.api)
        .env("RUNPOD_API_KEY", KEY)
        .env("LLM_INF_BENCH_STATE_DIR", state.path())
        .spawn()
        .unwrap();
    wait_until(&w, 30, "the pod runs", |f| {
        f.pods.values().any(|(p, _)| p["status"] == "RUNNING")
    });
    std::thread::sleep(Duration::from_millis(1000));
    // RunPod goes down, then the tool dies: only the watchdog is left, and it cannot reach it.
    w.state.lock().unwrap().down = true;
    child.kill().unwrap();
    let _ = child.wait();
    let markers = state.path().join("unconfirmed-pods");
    let start = std::time::Instant::now();
    while std::fs::read_dir(&markers).map_or(true, |mut d| d.next().is_none()) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no unconfirmed-pod marker"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Every command says so, loudly, while the API is down.
    let with_state = |c: &mut Command| {
        c.env("LLM_INF_BENCH_STATE_DIR", state.path());
    };
    let mut list = bin(&w);
    with_state(&mut list);
    let out = list.args(["pods", "list"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("may still be billing"), "{stderr}");
    assert!(stderr.contains("fakepod001"), "{stderr}");
    let mut again = bin(&w);
    with_state(&mut again);
    let out = again.args(["run", "--dry-run"]).arg(&exp).output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("may still be billing"),
        "the next run warns"
    );
    assert!(w.state.lock().unwrap().deleted.is_empty());
    // RunPod is back: the watchdog, still trying, terminates the pod and clears the marker.
    w.state.lock().unwrap().down = false;
    wait_until(&w, 60, "the watchdog terminates the pod", |f| {
        f.deleted == ["fakepod001"] && f.pods.is_empty()
    });
    let start = std::time::Instant::now();
    while std::fs::read_dir(&markers).is_ok_and(|mut d| d.next().is_some()) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the marker stays"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut list = bin(&w);
    with_state(&mut list);
    let out = list.args(["pods", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("may still be billing"));
}

#[test]
fn sigterm_during_the_workload_saves_and_terminates_the_pod() {
    let (w, d, exp) = rig(
        Script {
            cost: 1.0,
            ..Script::default()
        },
        "",
    );
    let mut child = start_a_long_workload(&w, &exp);
    let code = common::signal_and_wait(&mut child, "TERM", 30);
    assert_eq!(code, Some(130));
    // The tool itself terminated the pod (not its watchdog: it said `released`).
    let f = w.state.lock().unwrap();
    assert_eq!(f.deleted.len(), 1);
    assert!(f.pods.is_empty());
    drop(f);
    let (r, _) = result(d.path());
    assert_eq!(r["status"], "interrupted");
    assert!(r["summary"]["completed"].as_u64().unwrap() > 0);
}

/// A 2 × 2 matrix (GPU type × server arguments) of pods, two at a time.
const MATRIX: &str = "deployments:\n  max_parallel: 2\n  matrix:\n    gpu:\n      h100: { infrastructure: { gpu_type: NVIDIA H100 80GB HBM3 } }\n      h200: { infrastructure: { gpu_type: NVIDIA H200 } }\n    args:\n      default: {}\n      seqs64: { framework: { args: [--max-num-seqs, \"64\"] } }\n";

/// The matrix run's sweep index.
fn matrix_index(dir: &Path) -> Value {
    let f = std::fs::read_dir(dir.join("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".sweep.json"))
        .expect("a matrix index");
    serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap()
}

#[test]
fn a_matrix_runs_two_pods_at_once_under_one_confirmation() {
    let (w, d, exp) = rig(
        Script {
            cost: 1.0,
            ..Script::default()
        },
        MATRIX,
    );
    // One confirmation for the whole matrix: the plan names every deployment, then one total.
    let out = bin(&w).arg("run").arg(&exp).assert().code(2);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert_eq!(err.matches("pass --yes").count(), 1, "{err}");
    for name in ["h100-default", "h100-seqs64", "h200-default", "h200-seqs64"] {
        assert!(err.contains(&format!("deployment {name}:")), "{err}");
    }
    assert!(
        err.contains("a matrix of 4 deployments, at most 2 at once"),
        "{err}"
    );
    assert_eq!(w.state.lock().unwrap().create_calls, 0);

    let out = bin(&w).arg("run").arg(&exp).arg("--yes").assert().success();
    // The sibling deployment's fresh pod is this run's, not a leftover of an earlier one.
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(!err.contains("from an earlier run"), "{err}");
    let f = w.state.lock().unwrap();
    assert_eq!(f.creates.len(), 4, "one pod per deployment");
    assert_eq!(f.peak_live, 2, "two pods at once, never more");
    assert_eq!(f.deleted.len(), 4);
    assert!(f.pods.is_empty());
    let gpus: Vec<&str> = f
        .creates
        .iter()
        .filter_map(|c| c["gpu"]["id"].as_str())
        .collect();
    assert_eq!(
        gpus.iter().filter(|g| **g == "NVIDIA H200").count(),
        2,
        "{gpus:?}"
    );
    let seqs = f
        .creates
        .iter()
        .filter(|c| c["args"].to_string().contains("max-num-seqs"))
        .count();
    assert_eq!(seqs, 2, "the args axis reaches the pods");
    drop(f);
    let idx = matrix_index(d.path());
    assert_eq!(idx["status"], "completed");
    let deps = idx["deployments"].as_array().unwrap();
    assert_eq!(deps.len(), 4);
    assert!(deps
        .iter()
        .all(|x| x["status"] == "completed" && x["spent_usd"].as_f64().unwrap() > 0.0));
    for p in idx["points"].as_array().unwrap() {
        let dep = p["deployment"].as_str().unwrap();
        assert_eq!(p["label"], dep);
        let file = p["file"].as_str().unwrap();
        assert!(file.ends_with(&format!("-{dep}.json")), "{file}");
        let r: Value = serde_json::from_str(
            &std::fs::read_to_string(d.path().join("out").join(file)).unwrap(),
        )
        .unwrap();
        assert_eq!(r["deployment"], dep);
        assert_eq!(r["sweep_point"], dep);
        assert_eq!(r["status"], "completed");
    }
}

#[test]
fn one_budget_stops_every_pod_of_a_matrix() {
    // $36 000/hour a pod: two pods spend the $30 in about a second and a half together.
    let (w, d, exp) = rig(
        Script {
            cost: 36_000.0,
            ..Script::default()
        },
        &format!("  max_cost_usd: 30\n{MATRIX}"),
    );
    bin(&w)
        .arg("run")
        .arg(&exp)
        .args([
            "--yes",
            "--set",
            "workload.duration=60s",
            "--set",
            "workload.requests=1000000",
        ])
        .assert()
        .code(3);
    let f = w.state.lock().unwrap();
    assert_eq!(
        f.create_calls, 2,
        "no deployment starts once the budget is spent"
    );
    assert_eq!(f.deleted.len(), 2);
    assert!(f.pods.is_empty());
    drop(f);
    let idx = matrix_index(d.path());
    let stopped: Vec<&Value> = idx["points"].as_array().unwrap().iter().collect();
    assert_eq!(stopped.len(), 2, "{idx}");
    for p in &stopped {
        let reason = p["termination_reason"].as_str().unwrap();
        assert!(
            reason.starts_with("max_cost_usd"),
            "both stopped by the one budget: {reason}"
        );
    }
    assert!(idx["spent_usd"].as_f64().unwrap() >= 30.0);
    // The index and the deployments the budget cut short say so (not `completed`).
    assert_eq!(idx["status"], "budget_spent", "{idx}");
    let cut = idx["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["status"] == "budget_spent")
        .count();
    assert_eq!(cut, 2, "{idx}");
    let pending = idx["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["status"] == "pending")
        .count();
    assert_eq!(pending, 2, "{idx}");
}

/// Starts the matrix with long workloads; returns once both of the first two pods serve (the
/// run is killed before the test fails otherwise).
fn start_a_long_matrix(w: &World, exp: &Path) -> std::process::Child {
    let mut child = spawn_run(
        w,
        exp,
        &[
            "--set",
            "workload.duration=60s",
            "--set",
            "workload.requests=1000000",
        ],
    );
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(90) {
        // The ports of running pods first, then the requests to them with the lock released.
        let ports: Vec<u16> = {
            let f = w.state.lock().unwrap();
            f.pod_servers
                .iter()
                .filter(|(id, _)| {
                    f.pods
                        .get(*id)
                        .is_some_and(|(p, _)| p["status"] == "RUNNING")
                })
                .map(|(_, v)| v.0)
                .collect()
        };
        if ports.len() == 2 && ports.iter().all(|p| served(*p) > 5.0) {
            return child;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("timed out waiting for two pods to run and serve");
}

#[test]
fn ctrl_c_during_a_matrix_terminates_every_pod_and_keeps_what_was_measured() {
    let (w, d, exp) = rig(
        Script {
            cost: 1.0,
            ..Script::default()
        },
        MATRIX,
    );
    let mut child = start_a_long_matrix(&w, &exp);
    assert_eq!(common::signal_and_wait(&mut child, "INT", 60), Some(130));
    let f = w.state.lock().unwrap();
    assert_eq!(f.create_calls, 2, "no deployment starts after the stop");
    assert_eq!(f.deleted.len(), 2);
    assert!(f.pods.is_empty(), "0 pods left");
    drop(f);
    let idx = matrix_index(d.path());
    let points = idx["points"].as_array().unwrap();
    assert_eq!(points.len(), 2, "{idx}");
    assert!(points.iter().all(|p| p["status"] == "interrupted"));
}

#[test]
fn kill_9_during_a_matrix_leaves_every_pod_to_its_watchdog() {
    let (w, _d, exp) = rig(
        Script {
            cost: 1.0,
            ..Script::default()
        },
        MATRIX,
    );
    let mut child = start_a_long_matrix(&w, &exp);
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    wait_until(&w, 60, "the watchdogs terminate both pods", |f| {
        f.deleted.len() == 2 && f.pods.is_empty()
    });
}

/// A budget stop and a point's end race: the one budget runs out at 50 moments spread from the
/// first pods' provisioning to past the matrix's end, and each time the exit code, the index's
/// status, every point's saved status and reason, and the deployments' statuses agree, and no
/// pod is left.
#[test]
fn a_budget_stop_racing_a_matrix_saves_what_happened_every_time() {
    const RUNS: u32 = 50;
    // What the whole matrix spends unstopped: the budgets are spread over it.
    let (w, d, exp) = rig(
        Script {
            cost: 3_600.0,
            ..Script::default()
        },
        &format!("  max_cost_usd: 100000\n{MATRIX}"),
    );
    bin(&w).arg("run").arg(&exp).arg("--yes").assert().code(0);
    let whole = matrix_index(d.path())["spent_usd"].as_f64().unwrap();
    assert!(whole > 0.0, "the unstopped matrix spends");
    // Four runs at a time (each mostly waits on its fake API): a minute, not three.
    let outcomes: Vec<bool> = std::thread::scope(|scope| {
        let lanes: Vec<_> = (0..4)
            .map(|lane| {
                scope.spawn(move || {
                    (lane..RUNS)
                        .step_by(4)
                        .map(|i| budget_race(whole * (0.1 + 1.1 * f64::from(i) / f64::from(RUNS))))
                        .collect::<Vec<bool>>()
                })
            })
            .collect();
        lanes.into_iter().flat_map(|l| l.join().unwrap()).collect()
    });
    let cut = outcomes.iter().filter(|c| **c).count();
    let untouched = outcomes.len() - cut;
    eprintln!("{cut} cut by the budget, {untouched} ran whole");
    assert!(cut > 0 && untouched > 0, "{cut} cut, {untouched} whole");
}

/// One matrix run under `budget` USD: whether the budget cut it, after checking that what it
/// saved and its exit code agree.
fn budget_race(budget: f64) -> bool {
    let (w, d, exp) = rig(
        Script {
            cost: 3_600.0,
            ..Script::default()
        },
        &format!("  max_cost_usd: {budget:.4}\n{MATRIX}"),
    );
    let out = bin(&w).arg("run").arg(&exp).arg("--yes").output().unwrap();
    let code = out.status.code();
    let f = w.state.lock().unwrap();
    assert!(f.pods.is_empty(), "budget ${budget:.4}: a pod is left");
    drop(f);
    let idx = matrix_index(d.path());
    let ctx = format!("budget ${budget:.4}: exit {code:?}, {idx}");
    let points = idx["points"].as_array().unwrap();
    for p in points {
        assert_eq!(p["status"], "completed", "{ctx}");
        let reason = p["termination_reason"].as_str().unwrap();
        let file = d.path().join("out").join(p["file"].as_str().unwrap());
        let r: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        assert_eq!(r["termination_reason"], reason, "{ctx}");
        let done = r["summary"]["completed"].as_u64().unwrap();
        match reason {
            "completed" => assert_eq!(done, 20, "a completed point ran all: {ctx}"),
            _ => assert!(reason.starts_with("max_cost_usd"), "{ctx}"),
        }
    }
    let all_ran = points.len() == 4
        && points
            .iter()
            .all(|p| p["termination_reason"] == "completed");
    let cut = match code {
        Some(0) => {
            assert!(all_ran, "exit 0 means every point ran: {ctx}");
            assert_eq!(idx["status"], "completed", "{ctx}");
            false
        }
        Some(3) => {
            assert!(!all_ran, "exit 3 means the budget cut something: {ctx}");
            assert_eq!(idx["status"], "budget_spent", "{ctx}");
            true
        }
        _ => panic!("{ctx}\n{}", String::from_utf8_lossy(&out.stderr)),
    };
    for dep in idx["deployments"].as_array().unwrap() {
        let name = dep["name"].as_str().unwrap();
        let mine: Vec<&Value> = points.iter().filter(|p| p["deployment"] == name).collect();
        if dep["status"] == "completed" {
            assert!(
                !mine.is_empty() && mine.iter().all(|p| p["termination_reason"] == "completed"),
                "deployment {name} completed with its point cut: {ctx}"
            );
        }
    }
    cut
}

/// `replicas: 2` rents two pods (each its own server, key, name and log), spreads the load
/// over both, prices the run at both, and terminates both — after a run, and after a failure.
#[test]
fn replicas_rent_a_pod_each_and_terminate_every_one() {
    let (w, d, exp) = rig(
        Script {
            cost: 1.5,
            ..Script::default()
        },
        "  replicas: 2\n",
    );
    let out = bin(&w).arg("run").arg(&exp).arg("--yes").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("2 replicas, round-robin routing"),
        "{stderr}"
    );
    let (r, _) = result(d.path());
    let by = r["summary"]["by_replica"].as_array().unwrap();
    assert_eq!(by.len(), 2, "{by:?}");
    assert!(by.iter().all(|x| x["completed"] == 10), "{by:?}");
    assert_ne!(by[0]["base_url"], by[1]["base_url"]);
    assert_eq!(r["environment"]["price_per_hour_usd"].as_f64(), Some(3.0));
    // Two pods of one GPU each: per-GPU figures are per GPU of both.
    assert_eq!(r["environment"]["replicas"], 2);
    assert_eq!(r["environment"]["gpu_count"], 2);
    assert_eq!(r["environment"]["gpu_type"], "NVIDIA H100 80GB HBM3");
    let s = &r["summary"];
    let per_gpu = s["output_throughput_per_gpu"].as_f64().unwrap();
    assert!((per_gpu * 2.0 - s["output_throughput"].as_f64().unwrap()).abs() < 1e-6);
    {
        let f = w.state.lock().unwrap();
        assert!(f.violations.is_empty(), "{:?}", f.violations);
        assert_eq!(f.creates.len(), 2);
        let names: Vec<&str> = f
            .creates
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert!(names[0] != names[1], "{names:?}");
        assert!(
            names.iter().all(|n| n.starts_with("llm-inf-bench-rp-")),
            "{names:?}"
        );
        let mut deleted = f.deleted.clone();
        deleted.sort();
        let mut ids: Vec<String> = f.pod_servers.keys().cloned().collect();
        ids.sort();
        assert_eq!(deleted, ids, "every pod terminated");
        // Two keys, one per pod's server.
        let keys: HashSet<_> = f.pod_servers.values().map(|(_, k, _)| k.clone()).collect();
        assert_eq!(keys.len(), 2);
    }
    let logs = std::fs::read_dir(d.path().join("out"))
        .unwrap()
        .filter(|e| {
            let n = e.as_ref().unwrap().file_name();
            n.to_string_lossy().ends_with(".server.log")
        })
        .count();
    assert_eq!(logs, 2, "a server log per replica");
    // (A failure after both run terminates both: `a_failure_after_the_pod_runs_still_terminates_it`.)
}

/// One experiment on two clouds: the same GPU by its portable name, RunPod's pod and Vast's
/// instance side by side.
const CLOUDS: &str = "  gpu_type: H100 80GB\ndeployments:\n  max_parallel: 2\n  matrix:\n    cloud:\n      runpod: {}\n      vast: { infrastructure: { provider: vast } }\n";

/// `bin` that reaches the Vast fake too.
fn both(w: &World, v: &vast_fake::World) -> Command {
    let mut c = bin(w);
    c.envs(vast_fake::vast_vars(v));
    c
}

/// A result's `[started_at, finished_at]`, as RFC 3339 text (which sorts as time).
fn span(r: &Value) -> (String, String) {
    let t = |k: &str| r[k].as_str().unwrap().to_string();
    (t("started_at"), t("finished_at"))
}

#[test]
fn a_matrix_over_clouds_runs_runpod_and_vast_at_once_under_one_confirmation() {
    let (w, d, exp) = rig(
        Script {
            cost: 2.0,
            ..Script::default()
        },
        CLOUDS,
    );
    // The experiment names no GPU of its own: the matrix's `gpu_type` above is the only one.
    let text = std::fs::read_to_string(&exp)
        .unwrap()
        .replace("  gpu_type: \"NVIDIA H100 80GB HBM3\"\n", "");
    std::fs::write(&exp, text).unwrap();
    let v = vast_fake::world(vast_fake::Script::default());
    // One plan, both clouds priced, one confirmation; nothing rented without it.
    let out = both(&w, &v).arg("run").arg(&exp).assert().code(2);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert_eq!(err.matches("pass --yes").count(), 1, "{err}");
    assert!(
        err.contains("deployment runpod:") && err.contains("deployment vast:"),
        "{err}"
    );
    assert!(
        err.contains("per NVIDIA H100 80GB HBM3"),
        "RunPod's name: {err}"
    );
    assert!(err.contains("H100 SXM"), "Vast's name: {err}");
    assert_eq!(w.state.lock().unwrap().create_calls, 0);
    assert!(v.state.lock().unwrap().creates.is_empty());

    let out = both(&w, &v)
        .arg("run")
        .arg(&exp)
        .arg("--yes")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    {
        let f = w.state.lock().unwrap();
        assert_eq!(f.creates.len(), 1);
        assert_eq!(f.creates[0]["gpu"]["id"], "NVIDIA H100 80GB HBM3");
        assert!(f.pods.is_empty(), "the pod is terminated");
        let g = v.state.lock().unwrap();
        assert!(g.violations.is_empty(), "{:?}", g.violations);
        assert_eq!(
            g.searches.last().unwrap()["gpu_name"],
            json!({"eq": "H100 SXM"})
        );
        assert_eq!(g.creates.len(), 1);
        assert!(
            vast_fake::none_of_ours_left(&g),
            "the instance is destroyed"
        );
    }
    let idx = matrix_index(d.path());
    assert_eq!(idx["status"], "completed", "{idx}");
    let mut spans = Vec::new();
    for p in idx["points"].as_array().unwrap() {
        let r: Value = serde_json::from_str(
            &std::fs::read_to_string(d.path().join("out").join(p["file"].as_str().unwrap()))
                .unwrap(),
        )
        .unwrap();
        let provider = r["environment"]["provider"].as_str().unwrap().to_string();
        assert_eq!(r["deployment"], provider.as_str());
        assert!(
            r["summary"]["usd_per_million_output_tokens"]
                .as_f64()
                .unwrap()
                > 0.0
        );
        spans.push(span(&r));
    }
    assert_eq!(spans.len(), 2);
    // Side by side: each deployment's measured window began before the other's ended.
    assert!(
        spans[0].0 < spans[1].1 && spans[1].0 < spans[0].1,
        "{spans:?}"
    );
    // The report compares the clouds per dollar.
    let report = bin(&w)
        .arg("report")
        .arg(common::files(d.path(), ".sweep.json")[0].as_path())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&report.stdout);
    assert!(report.contains("Cheapest deployment per token"), "{report}");
}

#[test]
fn one_budget_covers_both_clouds_of_a_matrix() {
    // $36 000/hour on each cloud: together they spend the $30 in about a second and a half.
    let (w, d, exp) = rig(
        Script {
            cost: 36_000.0,
            ..Script::default()
        },
        &format!("  max_cost_usd: 30\n{CLOUDS}"),
    );
    let v = vast_fake::world(vast_fake::Script {
        offers: vec![vast_fake::OfferSpec {
            id: 900,
            gpu: "H100 SXM",
            dph: 36_000.0,
            country: "US",
        }],
        ..vast_fake::Script::default()
    });
    both(&w, &v)
        .arg("run")
        .arg(&exp)
        .args([
            "--yes",
            "--set",
            "workload.duration=60s",
            "--set",
            "workload.requests=1000000",
        ])
        .assert()
        .code(3);
    assert!(w.state.lock().unwrap().pods.is_empty());
    assert!(vast_fake::none_of_ours_left(&v.state.lock().unwrap()));
    let idx = matrix_index(d.path());
    assert_eq!(idx["status"], "budget_spent", "{idx}");
    assert!(idx["spent_usd"].as_f64().unwrap() >= 30.0);
    for p in idx["points"].as_array().unwrap() {
        let reason = p["termination_reason"].as_str().unwrap();
        assert!(reason.starts_with("max_cost_usd"), "{reason}");
    }
}

/// `run --dry-run` on `exp`: whether it succeeded, and what it said (the plan, or why not).
fn dry_run(w: &World, exp: &Path) -> (bool, String) {
    let out = bin(w).args(["run", "--dry-run"]).arg(exp).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `run --yes` on `exp`, which must succeed; the fake's record of the one pod it created.
fn rented(w: &World, exp: &Path) -> Value {
    let out = bin(w).arg("run").arg(exp).arg("--yes").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let f = w.state.lock().unwrap();
    assert!(f.violations.is_empty(), "{:?}", f.violations);
    assert!(f.pods.is_empty(), "the pod is terminated");
    f.creates.last().cloned().unwrap()
}

#[test]
fn an_amd_gpu_is_rented_with_amds_rocm_image_and_the_plan_says_so() {
    let (w, d, exp) = rig(
        Script {
            cost: 1.0,
            ..Script::default()
        },
        "",
    );
    let text = std::fs::read_to_string(&exp).unwrap();
    std::fs::write(
        &exp,
        text.replace("NVIDIA H100 80GB HBM3", "AMD Instinct MI300X OAM"),
    )
    .unwrap();
    let rocm = "rocm/vllm:rocm7.14.0_cdna_ubuntu24.04_py3.14_pytorch_2.11.0_vllm_0.23.0";
    let (ok, plan) = dry_run(&w, &exp);
    assert!(ok, "{plan}");
    assert!(plan.contains(&format!("(vllm, image {rocm})")), "{plan}");
    assert!(plan.contains("per AMD Instinct MI300X OAM"), "{plan}");
    let pod = rented(&w, &exp);
    assert_eq!(result(d.path()).0["environment"]["image"], rocm);
    assert_eq!(pod["gpu"]["id"], "AMD Instinct MI300X OAM");
    assert_eq!(pod["image"], rocm);
    // AMD's image starts a shell: the pod's command names `vllm serve` itself.
    let args = pod["args"].as_str().unwrap();
    assert!(args.starts_with("vllm serve m --host 0.0.0.0"), "{args}");
}

#[test]
fn tensorrt_llm_is_rented_as_trtllm_serve_in_nvidias_image_and_refused_where_it_cannot_run() {
    let (w, d, exp) = rig(
        Script {
            cost: 1.0,
            ..Script::default()
        },
        "",
    );
    let text = std::fs::read_to_string(&exp).unwrap();
    std::fs::write(&exp, format!("{text}framework: {{ kind: trtllm }}\n")).unwrap();
    let image = "nvcr.io/nvidia/tensorrt-llm/release:1.3.0rc5";
    let (ok, plan) = dry_run(&w, &exp);
    assert!(ok, "{plan}");
    assert!(plan.contains(&format!("(trtllm, image {image})")), "{plan}");
    assert!(plan.contains("trtllm-serve takes no API key"), "{plan}");
    let pod = rented(&w, &exp);
    assert_eq!(pod["image"], image);
    assert_eq!(
        pod["args"],
        "trtllm-serve m --host 0.0.0.0 --port 8000 --backend pytorch --tp_size 1"
    );
    let r = result(d.path()).0;
    assert_eq!(r["environment"]["image"], image);
    // Its metrics read at its own page, by its own names.
    assert_eq!(
        r["server_metrics"]["framework"], "trtllm",
        "{}",
        r["server_metrics"]
    );
    // On an AMD GPU, or with a served name it cannot give: refused before anything is rented.
    let amd = text.replace("NVIDIA H100 80GB HBM3", "MI300X");
    std::fs::write(&exp, format!("{amd}framework: {{ kind: trtllm }}\n")).unwrap();
    let (ok, err) = dry_run(&w, &exp);
    assert!(!ok);
    assert!(
        err.contains("`framework.kind`: TensorRT-LLM runs on NVIDIA GPUs only"),
        "{err}"
    );
    let sourced = text.replace("  id: m\n", "  id: m\n  source: /models/m\n");
    std::fs::write(&exp, format!("{sourced}framework: {{ kind: trtllm }}\n")).unwrap();
    let (ok, err) = dry_run(&w, &exp);
    assert!(!ok);
    assert!(
        err.contains("`model.source`: trtllm-serve serves a model under the name"),
        "{err}"
    );
    assert_eq!(w.state.lock().unwrap().create_calls, 1);
}
