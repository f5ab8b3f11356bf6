//! Vast.ai REST API client (`reference/vast-ai.md`): Bearer key, paths with their trailing
//! slash, and Vast's rate limits kept by the client — the limits are per endpoint and per key,
//! enforced as a minimum interval between calls, and a 429 carries no `Retry-After` — so each
//! endpoint's calls are spaced by its own interval, and a 429, a 5xx or a transport error is
//! retried after a growing wait.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use super::answers::{
    strict, Created, Instance, InstancePage, Offer, Offers, OneInstance, Refusal,
};
use super::requests::{CreateInstance, OfferQuery};
use crate::config::Secret;
use crate::provider::shared::{encode, Drift};

/// Overrides the API root (Vast's own CLI reads the same variable; tests point it at a fake).
pub const ENV_API_ROOT: &str = "VAST_URL";
pub const DEFAULT_API_ROOT: &str = "https://console.vast.ai";
/// Where the API key comes from (else the user config).
pub const ENV_API_KEY: &str = "VAST_API_KEY";
/// Scales every spacing and wait of the client (default 1: Vast's own pace). The tests run
/// their fake at 0.01; nothing else should set it.
pub const ENV_PACE: &str = "LLM_INF_BENCH_VAST_PACE";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("Vast.ai API {method} {path}: HTTP {status}: {message}")]
    Status {
        method: &'static str,
        path: String,
        status: u16,
        /// Vast's error code (`no_such_ask`, `invalid_args`, …), when it sent one.
        error: Option<String>,
        message: String,
    },
    #[error("Vast.ai API {method} {path}: unexpected answer ({message})")]
    Undecodable {
        method: &'static str,
        path: String,
        message: String,
    },
    #[error("Vast.ai API {method} {path}: {message}")]
    Transport {
        method: &'static str,
        path: String,
        message: String,
    },
}

impl ApiError {
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The offer was rented by someone else (or cannot start) since the search.
    pub fn offer_gone(&self) -> bool {
        match self {
            Self::Status {
                status,
                error,
                message,
                ..
            } => Refusal {
                error: error.clone(),
                message: message.clone(),
            }
            .offer_gone(*status),
            _ => false,
        }
    }
}

/// The endpoints the tool calls, each with the least time between two of its calls: the
/// documented `x-rate-limit` thresholds read as seconds (search: 10 a minute).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Search,
    Create,
    Show,
    List,
    Destroy,
}

impl Endpoint {
    pub fn interval(self) -> Duration {
        Duration::from_millis(match self {
            Endpoint::Search => 6_000,
            Endpoint::Create => 4_500,
            Endpoint::Show => 2_000,
            Endpoint::List => 1_000,
            Endpoint::Destroy => 3_000,
        })
    }
}

/// How many times a retryable failure is retried.
const RETRIES: u32 = 4;

pub struct VastApi {
    http: reqwest::Client,
    root: String,
    key: Secret,
    /// When each endpoint may next be called.
    next: Mutex<HashMap<Endpoint, Instant>>,
    /// Scales every interval and wait (tests run the fake at a tenth of Vast's pace).
    pace: f64,
    retries: u32,
    drift: Drift,
}

impl VastApi {
    /// A client for `root` (or `$VAST_URL`, else Vast's own).
    pub fn new(key: Secret, root: Option<String>) -> Result<Self, ApiError> {
        let root = root
            .or_else(|| std::env::var(ENV_API_ROOT).ok().filter(|b| !b.is_empty()))
            .unwrap_or_else(|| DEFAULT_API_ROOT.to_string());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .no_proxy()
            .build()
            .map_err(|e| ApiError::Transport {
                method: "-",
                path: root.clone(),
                message: e.to_string(),
            })?;
        let pace = std::env::var(ENV_PACE)
            .ok()
            .and_then(|p| p.trim().parse::<f64>().ok())
            .filter(|p| p.is_finite() && *p >= 0.0)
            .unwrap_or(1.0);
        Ok(Self {
            http,
            root: root.trim_end_matches('/').to_string(),
            key,
            next: Mutex::new(HashMap::new()),
            pace,
            retries: RETRIES,
            drift: Drift::new(crate::provider::watchdog::VAST),
        })
    }

    /// The first way Vast's answers differed from its document, if they did.
    pub fn drift(&self) -> Option<String> {
        self.drift.first()
    }

    /// The API root calls go to (the watchdog is given the same).
    pub fn root(&self) -> &str {
        &self.root
    }

    /// `d` at this client's pace (a poll interval).
    pub fn paced(&self, d: Duration) -> Duration {
        d.mul_f64(self.pace)
    }

    /// The same client without retries inside a call (the watchdog retries on its own).
    pub fn with_retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }

    /// The same client with every interval and wait scaled by `pace` (tests: 0.01).
    pub fn with_pace(mut self, pace: f64) -> Self {
        self.pace = pace.max(0.0);
        self
    }

    /// Offers matching `q`, cheapest first.
    pub async fn search(&self, q: &OfferQuery) -> Result<Vec<Offer>, ApiError> {
        let o: Offers = self
            .json::<_, strict::Offers>(Endpoint::Search, "POST", "/api/v0/bundles/", Some(q.body()))
            .await?;
        Ok(o.offers)
    }

    /// Rents offer `offer` as `c`: the new instance's id.
    pub async fn create(&self, offer: u64, c: &CreateInstance) -> Result<u64, ApiError> {
        let path = format!("/api/v0/asks/{offer}/");
        let created: Created = self
            .json::<_, strict::Created>(Endpoint::Create, "PUT", &path, Some(c.body()))
            .await?;
        match (created.success, created.new_contract) {
            (Some(false), _) | (_, None) => Err(ApiError::Undecodable {
                method: "PUT",
                path,
                message: "no `new_contract` (the new instance's id) in a successful answer".into(),
            }),
            (_, Some(id)) => Ok(id),
        }
    }

    /// Instance `id`, or `None` when Vast does not know it (destroyed).
    pub async fn show(&self, id: u64) -> Result<Option<Instance>, ApiError> {
        let path = format!("/api/v0/instances/{id}/");
        match self
            .json::<OneInstance, strict::OneInstance>(Endpoint::Show, "GET", &path, None)
            .await
        {
            Ok(one) => Ok(one.instances),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every instance of this key whose label starts with `prefix`, every page read.
    pub async fn list_labelled(&self, prefix: &str) -> Result<Vec<Instance>, ApiError> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        // A bound on pages: 25 instances each, 400 pages = 10 000 instances.
        for _ in 0..400 {
            let mut path = "/api/v1/instances/?limit=25".to_string();
            if let Some(t) = &after {
                path.push_str(&format!("&after_token={}", encode(t)));
            }
            let page: InstancePage = self
                .json::<_, strict::InstancePage>(Endpoint::List, "GET", &path, None)
                .await?;
            all.extend(
                page.instances
                    .into_iter()
                    .filter(|i| i.label.as_deref().is_some_and(|l| l.starts_with(prefix))),
            );
            match page.next_token.filter(|t| !t.is_empty()) {
                Some(t) => after = Some(t),
                None => break,
            }
        }
        Ok(all)
    }

    /// Destroys instance `id` (and stops all its billing). Unknown to Vast (404) is gone
    /// already, which is what was wanted.
    pub async fn destroy(&self, id: u64) -> Result<(), ApiError> {
        let path = format!("/api/v0/instances/{id}/");
        match self.send(Endpoint::Destroy, "DELETE", &path, None).await {
            Ok(_) => Ok(()),
            Err(e) if e.status() == Some(404) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// One call whose answer is read into the tool's view `T` (tolerantly, `answers`) and
    /// checked once against the document's type `Strict`, a difference said once.
    async fn json<T: DeserializeOwned, Strict: DeserializeOwned>(
        &self,
        ep: Endpoint,
        method: &'static str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, ApiError> {
        let bytes = self.send(ep, method, path, body).await?;
        // The path without its query (a page cursor is not worth a warning's words).
        let what = format!("{method} {}", path.split('?').next().unwrap_or(path));
        if let Some(msg) = self.drift.check::<Strict>(&what, &bytes) {
            crate::ui::say(format!("warning: {msg}"));
        }
        serde_json::from_slice(&bytes).map_err(|e| ApiError::Undecodable {
            method,
            path: path.to_string(),
            message: format!(
                "{e}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            ),
        })
    }

    /// Waits for `ep`'s next slot (and takes it).
    async fn slot(&self, ep: Endpoint) {
        let at = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let at = next.get(&ep).copied().filter(|t| *t > now).unwrap_or(now);
            next.insert(ep, at + ep.interval().mul_f64(self.pace));
            at
        };
        tokio::time::sleep_until(at.into()).await;
    }

    /// One call, spaced and retried; the body of a 2xx answer.
    async fn send(
        &self,
        ep: Endpoint,
        method: &'static str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Vec<u8>, ApiError> {
        let url = format!("{}{path}", self.root);
        let mut wait = ep
            .interval()
            .mul_f64(self.pace)
            .max(Duration::from_millis(1));
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.slot(ep).await;
            let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
            let mut req = self.http.request(m, &url).bearer_auth(self.key.expose());
            if let Some(b) = &body {
                req = req.json(b);
            }
            let retry = attempt <= self.retries;
            let outcome = match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    match resp.bytes().await {
                        Ok(b) => Ok((status, b.to_vec())),
                        Err(e) => Err(e.without_url().to_string()),
                    }
                }
                Err(e) => Err(e.without_url().to_string()),
            };
            match outcome {
                Ok((status, bytes)) if (200..300).contains(&status) => return Ok(bytes),
                Ok((status, _)) if retry && (status == 429 || status >= 500) => {
                    tracing::warn!(
                        "Vast.ai API {method} {path}: HTTP {status}; retrying in {wait:?}"
                    );
                }
                Ok((status, bytes)) => {
                    let r = Refusal::of(&String::from_utf8_lossy(&bytes));
                    return Err(ApiError::Status {
                        method,
                        path: path.to_string(),
                        status,
                        error: r.error,
                        message: r.message,
                    });
                }
                Err(e) if retry => {
                    tracing::warn!("Vast.ai API {method} {path}: {e}; retrying in {wait:?}");
                }
                Err(message) => {
                    return Err(ApiError::Transport {
                        method,
                        path: path.to_string(),
                        message,
                    })
                }
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(60).mul_f64(self.pace.max(0.001)));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::extract::{Path, Query, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::{get, post, put};
    use axum::{Json, Router};
    use serde_json::{json, Value};

    use super::*;

    /// What the little fake saw: (method path, Authorization, body).
    #[derive(Default)]
    struct Seen {
        calls: Vec<(String, String, Value)>,
        creates: u32,
    }

    type S = Arc<Mutex<Seen>>;

    fn auth(h: &HeaderMap) -> String {
        h.get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }

    async fn fake() -> (String, S) {
        let s: S = Arc::default();
        let app = Router::new()
            .route(
                "/api/v0/bundles/",
                post(|State(s): State<S>, h: HeaderMap, Json(b): Json<Value>| async move {
                    s.lock().unwrap().calls.push(("POST /api/v0/bundles/".into(), auth(&h), b));
                    Json(json!({"offers": [{"id": 11, "gpu_name": "H100 SXM", "dph_total": 1.9},
                                            {"id": 12, "gpu_name": "H100 SXM", "dph_total": 2.1}]}))
                }),
            )
            .route(
                "/api/v0/asks/{id}/",
                put(|State(s): State<S>, Path(id): Path<u64>, Json(b): Json<Value>| async move {
                    let mut g = s.lock().unwrap();
                    g.calls.push((format!("PUT /api/v0/asks/{id}/"), String::new(), b));
                    g.creates += 1;
                    match (id, g.creates) {
                        // Taken since the search.
                        (11, _) => (StatusCode::GONE, r#"{"success":false,"error":"no_such_ask","msg":"error 410/3907: no_such_ask Instance type 11 is no longer available."}"#.to_string()),
                        // Too fast, in plain text, once.
                        (12, 2) => (StatusCode::TOO_MANY_REQUESTS, "API requests too frequent".to_string()),
                        _ => (StatusCode::OK, r#"{"success":true,"new_contract":777,"instance_api_key":"x"}"#.to_string()),
                    }
                }),
            )
            .route(
                "/api/v0/instances/{id}/",
                get(|Path(id): Path<u64>| async move {
                    match id {
                        777 => Json(json!({"instances": {"id": 777, "actual_status": "loading"}})),
                        _ => Json(json!({"instances": null})),
                    }
                })
                .delete(|Path(id): Path<u64>| async move {
                    match id {
                        777 => (StatusCode::OK, r#"{"success":true}"#),
                        _ => (StatusCode::NOT_FOUND, r#"{"success":false,"error":"not_found","msg":"Instance not found"}"#),
                    }
                }),
            )
            .route(
                "/api/v1/instances/",
                get(|Query(q): Query<std::collections::HashMap<String, String>>| async move {
                    match q.get("after_token").map(String::as_str) {
                        None => Json(json!({"success": true, "instances": [
                            {"id": 1, "label": "llm-inf-bench-a"}, {"id": 2, "label": "theirs"}],
                            "next_token": "p 2"})),
                        Some("p 2") => Json(json!({"success": true, "instances": [
                            {"id": 3, "label": "llm-inf-bench-b"}, {"id": 4}], "next_token": null})),
                        Some(_) => Json(json!({"success": false})),
                    }
                }),
            )
            .with_state(s.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (url, s)
    }

    fn query() -> OfferQuery {
        OfferQuery {
            gpu_name: "H100 SXM".into(),
            num_gpus: 1,
            min_gpu_ram_mb: None,
            min_cuda: None,
            min_reliability: 0.98,
            disk_gb: 50,
            countries: Vec::new(),
            max_dph: None,
            limit: 16,
        }
    }

    #[tokio::test]
    async fn the_client_searches_rents_the_next_offer_when_one_is_taken_and_retries_a_429() {
        let (url, seen) = fake().await;
        let api = VastApi::new(Secret::new("k3y"), Some(url))
            .unwrap()
            .with_pace(0.001);
        let offers = api.search(&query()).await.unwrap();
        assert_eq!(offers.iter().map(|o| o.id).collect::<Vec<_>>(), [11, 12]);
        let c = CreateInstance {
            image: "vllm/vllm-openai:latest".into(),
            disk_gb: 50,
            label: "llm-inf-bench-t".into(),
            args: vec!["--port".into(), "8000".into()],
            env: Vec::new(),
            port: 8000,
        };
        let taken = api.create(11, &c).await.unwrap_err();
        assert!(taken.offer_gone(), "{taken}");
        assert_eq!(
            api.create(12, &c).await.unwrap(),
            777,
            "the 429 was retried"
        );
        let s = seen.lock().unwrap();
        assert_eq!(s.calls[0].1, "Bearer k3y");
        assert_eq!(s.calls[0].2, query().body(), "the search is sent as built");
        assert_eq!(s.calls[2].2, c.body());
        assert_eq!(s.creates, 3);
    }

    #[tokio::test]
    async fn an_unknown_instance_is_none_and_destroying_it_again_is_fine() {
        let (url, _) = fake().await;
        let api = VastApi::new(Secret::new("k"), Some(url))
            .unwrap()
            .with_pace(0.001);
        let i = api.show(777).await.unwrap().unwrap();
        assert_eq!(
            i.actual_status,
            super::super::answers::InstanceStatus::Loading
        );
        assert!(api.show(5).await.unwrap().is_none());
        api.destroy(777).await.unwrap();
        api.destroy(5).await.unwrap();
    }

    #[tokio::test]
    async fn ours_are_found_on_every_page_by_label() {
        let (url, _) = fake().await;
        let api = VastApi::new(Secret::new("k"), Some(url))
            .unwrap()
            .with_pace(0.001);
        let ours = api.list_labelled("llm-inf-bench-").await.unwrap();
        assert_eq!(ours.iter().map(|i| i.id).collect::<Vec<_>>(), [1, 3]);
    }
}
