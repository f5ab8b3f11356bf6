//! A stateful fake of Vast.ai's REST API on 127.0.0.1, for `tests/vast.rs` and the
//! RunPod + Vast matrix of `tests/runpod.rs`: offers (the document's example offer as the
//! template), instances that go `null → loading → running` with the server's port mapped on a
//! public address, offers taken between search and create, instances that exit before they
//! run, 429s without `Retry-After`, and an instance that is not ours. Every search and create
//! body is checked against Vast's per-endpoint document
//! (`reference/vast-ai-openapi-endpoints.yaml`) with one named deviation: `env` is an object,
//! as every official client sends it (the document types it as a Docker-flag string). An
//! instance's server is the in-process simulator, started with the key its `env` carries.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use llm_inf_bench::config::{Personality, SimProfile};
use llm_inf_bench::sim::{self, SimConfig};
use serde_json::{json, Value};

pub const KEY: &str = "vast_TESTKEY_must_never_be_printed_0123456789abcdef";

/// The per-endpoint documents, by path and method: their request and answer schemas.
pub fn endpoints() -> Vec<Value> {
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

pub fn operation(path: &str, method: &str) -> Value {
    endpoints()
        .into_iter()
        .find_map(|d| d["paths"].get(path).map(|p| p[method].clone()))
        .unwrap_or_else(|| panic!("{method} {path} is in the document"))
}

/// One OpenAPI document of the per-endpoint documents the tool calls (their paths keep the
/// trailing slash the API wants; the combined document strips it), for Prism. Three changes,
/// each named: create's `env` is an object (see the module's header); an instance's `ports`
/// is the map of the v1 list document (`{"8000/tcp": [{"HostIp", "HostPort"}]}`, what every
/// client reads) — the v0 single-instance document still types it as a list of integers,
/// which the reference calls stale; and the security schemes are those the operations name —
/// `BearerAuth` (create names it without defining it in its own file) and destroy's
/// `ApiKeyAuth` (its `Authorization` header); create's file also defines an unused
/// `ApiKeyAuth` in the query, which would clash by name.
pub fn merged_document() -> Value {
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    for d in endpoints() {
        for (path, ops) in d["paths"].as_object().unwrap() {
            let at = paths.entry(path.clone()).or_insert_with(|| json!({}));
            for (method, op) in ops.as_object().unwrap() {
                at[method] = op.clone();
            }
        }
        if let Some(s) = d["components"]["schemas"].as_object() {
            for (k, v) in s {
                schemas.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    let mut doc = json!({
        "openapi": "3.0.0",
        "info": {"title": "Vast.ai (the per-endpoint documents the tool calls)", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "BearerAuth": {"type": "http", "scheme": "bearer"},
                "ApiKeyAuth": {"type": "apiKey", "in": "header", "name": "Authorization"}
            }
        }
    });
    let env = &mut doc["paths"]["/api/v0/asks/{id}/"]["put"]["requestBody"]["content"]
        ["application/json"]["schema"]["properties"]["env"];
    *env = json!({"type": "object", "additionalProperties": {"type": "string"}});
    let v1_ports = doc["paths"]["/api/v1/instances/"]["get"]["responses"]["200"]["content"]
        ["application/json"]["schema"]["properties"]["instances"]["items"]["properties"]["ports"]
        .clone();
    assert!(v1_ports.is_object(), "the v1 document describes `ports`");
    doc["components"]["schemas"]["Instance"]["properties"]["ports"] = v1_ports;
    doc
}

/// The document's request schema for `method path`; for create, `env` as an object.
pub fn request_schema(path: &str, method: &str) -> Value {
    let mut s =
        operation(path, method)["requestBody"]["content"]["application/json"]["schema"].clone();
    if let Some(env) = s["properties"].get_mut("env") {
        // The one deviation, on purpose: see the module's header.
        *env = json!({"type": "object", "additionalProperties": {"type": "string"}});
    }
    s
}

/// The document's example offer, the template of the fake's offers.
pub fn example_offer() -> Value {
    operation("/api/v0/bundles/", "post")["responses"]["200"]["content"]["application/json"]
        ["example"]["offers"]
        .clone()
}

#[derive(Clone)]
pub struct OfferSpec {
    pub id: u64,
    pub gpu: &'static str,
    pub dph: f64,
    pub country: &'static str,
}

/// How the fake behaves (by default: `offers()`, all well).
#[derive(Clone)]
pub struct Script {
    pub offers: Vec<OfferSpec>,
    /// Offers someone else rents between our search and our create (410 `no_such_ask`).
    pub taken: Vec<u64>,
    /// Offers whose instance exits while loading.
    pub exits: Vec<u64>,
    /// The first search answers 429 in plain text.
    pub rate_limit_first_search: bool,
    /// Instances never leave `loading`.
    pub never_running: bool,
    /// Answers drift from the document where the tool reads tolerantly.
    pub drift: bool,
    /// Every call answers 503.
    pub down: bool,
    /// A create answers 200 without the new instance's id (the instance exists anyway).
    pub garbled_create: bool,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            offers: offers(),
            taken: Vec::new(),
            exits: Vec::new(),
            rate_limit_first_search: false,
            never_running: false,
            drift: false,
            down: false,
            garbled_create: false,
        }
    }
}

pub struct Inst {
    pub v: Value,
    pub shows: u32,
    pub offer: u64,
    pub port: u16,
    pub key: Option<String>,
    pub _server: Option<sim::SimHandle>,
}

#[derive(Default)]
pub struct Fake {
    pub script: Script,
    pub instances: BTreeMap<u64, Inst>,
    pub searches: Vec<Value>,
    /// Offer ids created from, in order.
    pub creates: Vec<u64>,
    pub create_bodies: Vec<Value>,
    pub destroyed: Vec<u64>,
    pub violations: Vec<String>,
    pub next: u64,
    pub search_calls: u32,
    /// Offers rented (by anyone): a rented offer is no longer offered, and renting it again
    /// is refused as taken.
    pub rented: Vec<u64>,
}

pub type Shared = Arc<Mutex<Fake>>;

pub fn refuse(status: StatusCode, error: &str, msg: &str) -> Response {
    (
        status,
        Json(json!({"success": false, "error": error, "msg": msg})),
    )
        .into_response()
}

/// The key check and an outage, before anything else.
pub fn gate(f: &Shared, h: &HeaderMap) -> Option<Response> {
    if f.lock().unwrap().script.down {
        return Some((StatusCode::SERVICE_UNAVAILABLE, "upstream unavailable").into_response());
    }
    let ok = h.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {KEY}"));
    (!ok).then(|| refuse(StatusCode::UNAUTHORIZED, "auth_error", "Invalid user key"))
}

pub fn check(f: &mut Fake, schema: &Value, body: &Value, what: &str) {
    let v = jsonschema::validator_for(schema).unwrap();
    for e in v.iter_errors(body) {
        f.violations
            .push(format!("{what}: {}: {e}", e.instance_path()));
    }
}

pub async fn search(State(f): State<Shared>, h: HeaderMap, Json(body): Json<Value>) -> Response {
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
        .filter(|o| o.gpu == gpu && o.dph <= max && !f.rented.contains(&o.id))
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

pub async fn create(
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
    if f.script.taken.contains(&offer) || f.rented.contains(&offer) {
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
    f.rented.push(offer);
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
        "image_uuid": body["image"], "image_args": body["args"],
        "public_ipaddr": "127.0.0.1\n", "dph_total": dph, "gpu_name": "H100 SXM", "num_gpus": 1,
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
    if f.script.garbled_create {
        return Json(json!({"success": true})).into_response();
    }
    Json(json!({"success": true, "new_contract": id, "instance_api_key": "d15a0000"}))
        .into_response()
}

/// An instance as Vast shows it after `shows` looks: `null`, `loading`, then `running` with
/// the port mapped (or `exited`, for an offer scripted to fail).
pub fn advance(inst: &mut Inst, script: &Script) -> Value {
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

pub async fn show(State(f): State<Shared>, h: HeaderMap, UrlPath(id): UrlPath<u64>) -> Response {
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

pub async fn list(
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

pub async fn destroy(State(f): State<Shared>, h: HeaderMap, UrlPath(id): UrlPath<u64>) -> Response {
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
pub struct World {
    pub api: String,
    pub state: Shared,
    pub _rt: tokio::runtime::Runtime,
}

pub fn world(script: Script) -> World {
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

pub fn offers() -> Vec<OfferSpec> {
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

/// What a command needs to reach this fake: its address, the key, and a hundredth of Vast's
/// pace (the client's spacing of calls, which the fake does not need).
pub fn vast_vars(w: &World) -> [(&'static str, String); 3] {
    [
        ("VAST_URL", w.api.clone()),
        ("VAST_API_KEY", KEY.to_string()),
        ("LLM_INF_BENCH_VAST_PACE", "0.01".to_string()),
    ]
}

/// Only someone else's instance is left.
pub fn none_of_ours_left(f: &Fake) -> bool {
    f.instances.keys().all(|id| *id == 1)
}
