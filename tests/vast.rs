//! `provider: vast` against a stateful fake of Vast.ai's REST API on 127.0.0.1: offers (the
//! document's example offer as the template), instances that go `null → loading → running`
//! with the server's port mapped on a public address, offers taken between search and create,
//! instances that exit before they run, 429s without `Retry-After`, and an instance that is
//! not ours. Every search and create body is checked against Vast's per-endpoint document
//! (`reference/vast-ai-openapi-endpoints.yaml`) with one named deviation: `env` is an object,
//! as every official client sends it (the document types it as a Docker-flag string). An
//! instance's server is the in-process simulator, started with the key its `env` carries.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use assert_cmd::Command;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use llm_inf_bench::config::{Personality, SimProfile};
use llm_inf_bench::sim::{self, SimConfig};
use predicates::prelude::*;
use serde_json::{json, Value};

const KEY: &str = "vast_TESTKEY_must_never_be_printed_0123456789abcdef";

/// The per-endpoint documents, by path and method: their request and answer schemas.
fn endpoints() -> Vec<Value> {
    let p = format!(
        "{}/../shared/reference/vast-ai-openapi-endpoints.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(p).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .filter_map(|d| serde::Deserialize::deserialize(d).ok())
        .filter(|v: &Value| v.get("paths").is_some())
        .collect()
}

fn operation(path: &str, method: &str) -> Value {
    endpoints()
        .into_iter()
        .find_map(|d| d["paths"].get(path).map(|p| p[method].clone()))
        .unwrap_or_else(|| panic!("{method} {path} is in the document"))
}

/// The document's request schema for `method path`; for create, `env` as an object.
fn request_schema(path: &str, method: &str) -> Value {
    let mut s =
        operation(path, method)["requestBody"]["content"]["application/json"]["schema"].clone();
    if let Some(env) = s["properties"].get_mut("env") {
        // The one deviation, on purpose: see the module's header.
        *env = json!({"type": "object", "additionalProperties": {"type": "string"}});
    }
    s
}

/// The document's example offer, the template of the fake's offers.
fn example_offer() -> Value {
    operation("/api/v0/bundles/", "post")["responses"]["200"]["content"]["application/json"]
        ["example"]["offers"]
        .clone()
}

#[derive(Clone)]
struct OfferSpec {
    id: u64,
    gpu: &'static str,
    dph: f64,
    country: &'static str,
}

/// How the fake behaves.
#[derive(Default, Clone)]
struct Script {
    offers: Vec<OfferSpec>,
    /// Offers someone else rents between our search and our create (410 `no_such_ask`).
    taken: Vec<u64>,
    /// Offers whose instance exits while loading.
    exits: Vec<u64>,
    /// The first search answers 429 in plain text.
    rate_limit_first_search: bool,
    /// Instances never leave `loading`.
    never_running: bool,
    /// Answers drift from the document where the tool reads tolerantly.
    drift: bool,
    /// Every call answers 503.
    down: bool,
}

struct Inst {
    v: Value,
    shows: u32,
    offer: u64,
    port: u16,
    key: Option<String>,
    _server: Option<sim::SimHandle>,
}

#[derive(Default)]
struct Fake {
    script: Script,
    instances: BTreeMap<u64, Inst>,
    searches: Vec<Value>,
    /// Offer ids created from, in order.
    creates: Vec<u64>,
    create_bodies: Vec<Value>,
    destroyed: Vec<u64>,
    violations: Vec<String>,
    next: u64,
    search_calls: u32,
}

type Shared = Arc<Mutex<Fake>>;

fn refuse(status: StatusCode, error: &str, msg: &str) -> Response {
    (
        status,
        Json(json!({"success": false, "error": error, "msg": msg})),
    )
        .into_response()
}

/// The key check and an outage, before anything else.
fn gate(f: &Shared, h: &HeaderMap) -> Option<Response> {
    if f.lock().unwrap().script.down {
        return Some((StatusCode::SERVICE_UNAVAILABLE, "upstream unavailable").into_response());
    }
    let ok = h.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {KEY}"));
    (!ok).then(|| refuse(StatusCode::UNAUTHORIZED, "auth_error", "Invalid user key"))
}

fn check(f: &mut Fake, schema: &Value, body: &Value, what: &str) {
    let v = jsonschema::validator_for(schema).unwrap();
    for e in v.iter_errors(body) {
        f.violations
            .push(format!("{what}: {}: {e}", e.instance_path()));
    }
}

async fn search(State(f): State<Shared>, h: HeaderMap, Json(body): Json<Value>) -> Response {
    if let Some(r) = gate(&f, &h) {
        return r;
    }
    let mut f = f.lock().unwrap();
    check(
        &mut f,
        &request_schema("/api/v0/bundles/", "post"),
        &body,
        "search",
    );
    f.search_calls += 1;
    f.searches.push(body.clone());
    if f.script.rate_limit_first_search && f.search_calls == 1 {
        return (StatusCode::TOO_MANY_REQUESTS, "API requests too frequent").into_response();
    }
    let gpu = body["gpu_name"]["eq"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let n = body["num_gpus"]["eq"].as_u64().unwrap_or(1);
    let max = body["dph_total"]["lte"].as_f64().unwrap_or(f64::MAX);
    let mut offers: Vec<Value> = f
        .script
        .offers
        .iter()
        .filter(|o| o.gpu == gpu && o.dph <= max)
        .map(|o| {
            let mut v = example_offer();
            v["id"] = o.id.into();
            v["ask_contract_id"] = o.id.into();
            v["gpu_name"] = o.gpu.into();
            v["num_gpus"] = n.into();
            v["gpu_ram"] = 81_559.into();
            v["dph_total"] = o.dph.into();
            v["reliability"] = 0.995.into();
            v["reliability2"] = 0.995.into();
            v["direct_port_count"] = 20.into();
            v["cuda_max_good"] = 12.8.into();
            v["geolocation"] = format!("Somewhere, {}", o.country).into();
            if f.script.drift {
                v["dph_total"] = json!(o.dph);
                v["reliability"] = "high".into();
                v["new_field"] = json!({"x": [1]});
                v.as_object_mut().unwrap().remove("geolocation");
            }
            v
        })
        .collect();
    offers.sort_by(|a, b| {
        a["dph_total"]
            .as_f64()
            .partial_cmp(&b["dph_total"].as_f64())
            .unwrap()
    });
    Json(json!({ "offers": offers })).into_response()
}

async fn create(
    State(f): State<Shared>,
    h: HeaderMap,
    UrlPath(offer): UrlPath<u64>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = gate(&f, &h) {
        return r;
    }
    // The instance's server, as vLLM's image would start it: the key from its environment.
    let key = body["env"]["VLLM_API_KEY"].as_str().map(String::from);
    let mut cfg = SimConfig::new(SimProfile::Instant, Personality::Vllm, "m");
    cfg.startup_delay = Some(Duration::ZERO);
    cfg.api_key = key.clone().map(llm_inf_bench::config::Secret::new);
    let server = sim::start(cfg, "127.0.0.1:0").await.unwrap();
    let mut f = f.lock().unwrap();
    check(
        &mut f,
        &request_schema("/api/v0/asks/{id}/", "put"),
        &body,
        "create",
    );
    f.creates.push(offer);
    f.create_bodies.push(body.clone());
    if key.is_none() {
        f.violations
            .push("an instance's server had no API key".into());
    }
    if f.script.taken.contains(&offer) {
        return refuse(
            StatusCode::GONE,
            "no_such_ask",
            &format!("error 410/3907: no_such_ask Instance type {offer} is no longer available."),
        );
    }
    if !f.script.offers.iter().any(|o| o.id == offer) {
        return refuse(
            StatusCode::NOT_FOUND,
            "invalid_args",
            &format!("error 404/3603: no_such_ask Instance type by id {offer} is not available."),
        );
    }
    f.next += 1;
    let id = 30_000_000 + f.next;
    let dph = f
        .script
        .offers
        .iter()
        .find(|o| o.id == offer)
        .map_or(0.0, |o| o.dph);
    let v = json!({
        "id": id, "label": body["label"], "machine_id": 4242, "actual_status": null,
        "intended_status": "running", "cur_state": "running", "status_msg": null,
        "image_uuid": body["image"], "image_args": body["args"], "public_ipaddr": null,
        "ports": null, "dph_total": dph, "gpu_name": "H100 SXM", "num_gpus": 1,
        "gpu_util": null, "start_date": 1_765_000_000.0, "extra_env": []
    });
    f.instances.insert(
        id,
        Inst {
            v,
            shows: 0,
            offer,
            port: server.addr.port(),
            key,
            _server: Some(server),
        },
    );
    Json(json!({"success": true, "new_contract": id, "instance_api_key": "d15a0000"}))
        .into_response()
}

/// An instance as Vast shows it after `shows` looks: `null`, `loading`, then `running` with
/// the port mapped (or `exited`, for an offer scripted to fail).
fn advance(inst: &mut Inst, script: &Script) -> Value {
    inst.shows += 1;
    let v = &mut inst.v;
    match inst.shows {
        1 => {}
        2 => {
            v["actual_status"] = "loading".into();
            v["status_msg"] = "Pulling image vllm/vllm-openai".into();
        }
        _ if script.exits.contains(&inst.offer) => {
            v["actual_status"] = "exited".into();
            v["status_msg"] = "Error: container exited with code 1".into();
        }
        _ if script.never_running => {}
        _ => {
            v["actual_status"] = "running".into();
            v["status_msg"] = "success, running vllm/vllm-openai".into();
            v["public_ipaddr"] = "127.0.0.1\n".into();
            v["gpu_util"] = 87.5.into();
            v["ports"] = json!({
                "8000/tcp": [{"HostIp": "0.0.0.0", "HostPort": inst.port.to_string()}],
                "22/tcp": [{"HostIp": "0.0.0.0", "HostPort": "1"}]
            });
        }
    }
    let mut out = v.clone();
    if script.drift {
        // Where the tool reads tolerantly: a status in capitals, a port as a number, a price
        // as text, fields gone and new.
        let o = out.as_object_mut().unwrap();
        if let Some(s) = o["actual_status"].as_str().map(str::to_uppercase) {
            o.insert("actual_status".into(), s.into());
        }
        o.insert("dph_total".into(), "about 1.5".into());
        o.remove("status_msg");
        o.insert("gpu_util".into(), json!([1, 2]));
        o.insert("brand_new".into(), json!({"nested": true}));
        if let Some(p) = o.get_mut("ports").and_then(|p| p.get_mut("8000/tcp")) {
            p[0]["HostPort"] = json!(inst.port);
        }
    }
    out
}

async fn show(State(f): State<Shared>, h: HeaderMap, UrlPath(id): UrlPath<u64>) -> Response {
    if let Some(r) = gate(&f, &h) {
        return r;
    }
    let mut f = f.lock().unwrap();
    let script = f.script.clone();
    match f.instances.get_mut(&id) {
        Some(i) => Json(json!({ "instances": advance(i, &script) })).into_response(),
        None => Json(json!({ "instances": null })).into_response(),
    }
}

async fn list(
    State(f): State<Shared>,
    h: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if let Some(r) = gate(&f, &h) {
        return r;
    }
    let f = f.lock().unwrap();
    let limit: usize = q
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(25)
        .min(25);
    let after: u64 = q
        .get("after_token")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let page: Vec<Value> = f
        .instances
        .range(after + 1..)
        .take(limit)
        .map(|(_, i)| i.v.clone())
        .collect();
    let next = (f.instances.range(after + 1..).count() > limit)
        .then(|| page.last().map(|v| v["id"].to_string()))
        .flatten();
    Json(json!({"success": true, "instances_found": page.len(),
        "total_instances": f.instances.len(), "next_token": next, "instances": page}))
    .into_response()
}

async fn destroy(State(f): State<Shared>, h: HeaderMap, UrlPath(id): UrlPath<u64>) -> Response {
    if let Some(r) = gate(&f, &h) {
        return r;
    }
    let mut f = f.lock().unwrap();
    if f.instances.remove(&id).is_none() {
        return refuse(StatusCode::NOT_FOUND, "not_found", "Instance not found");
    }
    f.destroyed.push(id);
    Json(json!({"success": true})).into_response()
}

/// The fake API, alive for the test.
struct World {
    api: String,
    state: Shared,
    _rt: tokio::runtime::Runtime,
}

fn world(script: Script) -> World {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let state: Shared = Arc::new(Mutex::new(Fake {
        script,
        ..Fake::default()
    }));
    // Someone's own instance on the same account: never ours to touch.
    state.lock().unwrap().instances.insert(
        1,
        Inst {
            v: json!({"id": 1, "label": "my-notebook", "actual_status": "running", "dph_total": 0.3}),
            shows: 9,
            offer: 0,
            port: 1,
            key: None,
            _server: None,
        },
    );
    let app = Router::new()
        .route("/api/v0/bundles/", post(search))
        .route("/api/v0/asks/{id}/", put(create))
        .route("/api/v0/instances/{id}/", get(show).delete(destroy))
        .route("/api/v1/instances/", get(list))
        .with_state(state.clone());
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    rt.spawn(async move { axum::serve(listener, app).await });
    World {
        api,
        state,
        _rt: rt,
    }
}

fn offers() -> Vec<OfferSpec> {
    vec![
        OfferSpec {
            id: 501,
            gpu: "H100 SXM",
            dph: 2.40,
            country: "US",
        },
        OfferSpec {
            id: 502,
            gpu: "H100 SXM",
            dph: 1.50,
            country: "US",
        },
        OfferSpec {
            id: 503,
            gpu: "H100 SXM",
            dph: 1.90,
            country: "US",
        },
        OfferSpec {
            id: 504,
            gpu: "H100 SXM",
            dph: 0.90,
            country: "DE",
        },
    ]
}

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
    c.env("LLM_INF_BENCH_CONFIG", "/nonexistent")
        .env("LLM_INF_BENCH_STATE_DIR", common::test_state_dir())
        .env("VAST_URL", &w.api)
        .env("VAST_API_KEY", KEY)
        .env("LLM_INF_BENCH_VAST_PACE", "0.01")
        .env_remove("RUNPOD_API_KEY")
        .env_remove("HF_TOKEN");
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

/// Only someone else's instance is left.
fn none_of_ours_left(f: &Fake) -> bool {
    f.instances.keys().all(|id| *id == 1)
}

fn result(dir: &Path) -> (Value, String) {
    let f = common::result_path(dir);
    let text = std::fs::read_to_string(&f).unwrap();
    (serde_json::from_str(&text).unwrap(), text)
}

#[test]
fn a_full_run_rents_the_cheapest_fitting_offer_and_destroys_it_without_leaking_a_key() {
    let (w, d, exp) = rig(
        Script {
            offers: offers(),
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
            offers: offers(),
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
    let (w, _d, exp) = rig(
        Script {
            offers: offers(),
            ..Script::default()
        },
        "    max_price_per_hour_usd: 0.5\n",
    );
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
fn without_a_key_nothing_is_asked_and_the_error_says_where_a_key_goes() {
    let (w, _d, exp) = rig(
        Script {
            offers: offers(),
            ..Script::default()
        },
        "",
    );
    bin(&w)
        .env_remove("VAST_API_KEY")
        .arg("run")
        .arg(&exp)
        .arg("--yes")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("VAST_API_KEY"));
    assert!(w.state.lock().unwrap().searches.is_empty());
}

#[test]
fn sigint_while_the_instance_loads_destroys_it() {
    let (w, _d, exp) = rig(
        Script {
            offers: offers(),
            never_running: true,
            ..Script::default()
        },
        "  health_timeout: 60s\n",
    );
    let mut child = spawn_run(&w, &exp, &[]);
    wait_until(&w, 30, "an instance is rented", |f| !f.creates.is_empty());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(common::signal_and_wait(&mut child, "INT", 30), Some(130));
    let f = w.state.lock().unwrap();
    assert_eq!(f.destroyed.len(), 1);
    assert!(none_of_ours_left(&f));
}

#[test]
fn sigterm_during_the_workload_saves_and_destroys_the_instance() {
    let (w, d, exp) = rig(
        Script {
            offers: offers(),
            ..Script::default()
        },
        "",
    );
    let mut child = spawn_run(&w, &exp, &LONG);
    wait_for_the_workload(&w);
    assert!(common::signal_and_wait(&mut child, "TERM", 30).is_some());
    let f = w.state.lock().unwrap();
    assert_eq!(f.destroyed.len(), 1);
    assert!(none_of_ours_left(&f));
    drop(f);
    let (r, _) = result(d.path());
    assert!(
        r["summary"]["completed"].as_u64().unwrap() > 0,
        "what was measured is saved"
    );
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

#[test]
fn kill_9_while_loading_or_measuring_is_cleaned_up_by_the_watchdog() {
    for during_workload in [false, true] {
        let (w, d, exp) = rig(
            Script {
                offers: offers(),
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
        child.kill().unwrap(); // SIGKILL: no cleanup of the tool's own can run
        let _ = child.wait();
        wait_until(&w, 60, "the watchdog destroys the instance", |f| {
            f.destroyed.len() == 1 && none_of_ours_left(f)
        });
        let log = common::files(d.path(), ".watchdog.log");
        let log = std::fs::read_to_string(&log[0]).unwrap();
        assert!(log.contains("exited without releasing"), "{log}");
        assert!(log.contains("ended instance"), "{log}");
        assert!(!log.contains(KEY));
    }
}

#[test]
fn max_lifetime_stops_the_run_and_destroys_the_instance() {
    let (w, d, exp) = rig(
        Script {
            offers: offers(),
            ..Script::default()
        },
        "  max_lifetime: 3s\n",
    );
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
            offers: offers(),
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
    let w = world(Script {
        offers: offers(),
        ..Script::default()
    });
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
