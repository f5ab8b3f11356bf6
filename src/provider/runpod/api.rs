//! RunPod REST API v2 client: Bearer key, problem+json errors, and the retry rules of the spec
//! (`reference/runpod-v2.md`): 429 waits `Retry-After`, 5xx and transport errors back off and
//! retry, everything else is answered at once with RunPod's own `detail`.

use std::time::Duration;

use serde::de::DeserializeOwned;

use super::answers::{GpuType, Pod, PodList};
use super::types::{self, CreatePodRequest, ErrorResponse};
use crate::config::Secret;
use crate::provider::shared::encode;
use crate::provider::shared::Drift;

/// Overrides the API base URL (tests point it at a fake on 127.0.0.1).
pub const ENV_API_BASE: &str = "RUNPOD_API_BASE";
pub const DEFAULT_API_BASE: &str = "https://api.runpod.io/v2";
/// Where the API key comes from (else the user config's `api_keys.runpod`).
pub const ENV_API_KEY: &str = "RUNPOD_API_KEY";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// An answer RunPod gave (after retries, where retrying is allowed).
    #[error("RunPod API {method} {path}: HTTP {status} {title}: {detail}")]
    Status {
        method: &'static str,
        path: String,
        status: u16,
        title: String,
        detail: String,
    },
    /// A 2xx answer we could not decode. `id` is the pod id if the answer named one: a pod
    /// may exist that must still be terminated.
    #[error("RunPod API {method} {path}: unexpected answer ({message})")]
    Undecodable {
        method: &'static str,
        path: String,
        id: Option<String>,
        message: String,
    },
    #[error("RunPod API {method} {path}: {message}")]
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
            Self::Transport { .. } | Self::Undecodable { .. } => None,
        }
    }
}

/// How many times a retryable failure is retried.
const RETRIES: u32 = 5;

pub struct RunPodApi {
    http: reqwest::Client,
    stream_http: reqwest::Client,
    base: String,
    key: Secret,
    /// The first way an answer differed from the document (reported once).
    drift: Drift,
    /// How many times a retryable failure is retried (the watchdog retries on its own).
    retries: u32,
}

impl RunPodApi {
    /// A client for `base` (or `$RUNPOD_API_BASE`, else RunPod's own URL).
    pub fn new(key: Secret, base: Option<String>) -> Result<Self, ApiError> {
        let base = base
            .or_else(|| std::env::var(ENV_API_BASE).ok().filter(|b| !b.is_empty()))
            .unwrap_or_else(|| DEFAULT_API_BASE.to_string());
        let build = |b: reqwest::ClientBuilder| {
            b.no_proxy().build().map_err(|e| ApiError::Transport {
                method: "-",
                path: base.clone(),
                message: e.to_string(),
            })
        };
        let http = build(reqwest::Client::builder().timeout(Duration::from_secs(60)))?;
        // A log stream stays open for the whole run: no overall timeout, only one on silence.
        let stream_http = build(
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(15))
                .read_timeout(Duration::from_secs(300)),
        )?;
        Ok(Self {
            http,
            stream_http,
            base: base.trim_end_matches('/').to_string(),
            key,
            drift: Drift::new(crate::provider::watchdog::RUNPOD),
            retries: RETRIES,
        })
    }

    /// The same client, retrying a failed call `n` times (0: every failure is returned at once).
    pub fn with_retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The first way an answer differed from RunPod's document, if one did.
    pub fn drift(&self) -> Option<String> {
        self.drift.first()
    }

    pub async fn create_pod(&self, req: &CreatePodRequest) -> Result<Pod, ApiError> {
        let body = serde_json::to_value(req).unwrap_or_default();
        self.json::<Pod, types::Pod>("POST", "/pods", Some(body))
            .await
    }

    pub async fn get_pod(&self, id: &str) -> Result<Pod, ApiError> {
        let path = format!("/pods/{}", encode(id));
        self.json::<Pod, types::Pod>("GET", &path, None).await
    }

    pub async fn list_pods(&self) -> Result<Vec<Pod>, ApiError> {
        let list = self
            .json::<PodList, types::ListPodsResponse>("GET", "/pods", None)
            .await?;
        Ok(list.pods)
    }

    pub async fn gpu_type(&self, id: &str) -> Result<GpuType, ApiError> {
        let path = format!("/catalog/gpus/{}", encode(id));
        self.json::<GpuType, types::GpuType>("GET", &path, None)
            .await
    }

    /// Opens the pod's log stream (`GET /pods/{id}/logs`, Server-Sent Events), resuming after
    /// `last_event_id` when given. No retries here: the follower reconnects on its own.
    pub async fn pod_logs(
        &self,
        id: &str,
        last_event_id: Option<&str>,
    ) -> Result<reqwest::Response, ApiError> {
        let path = format!("/pods/{}/logs", encode(id));
        let mut req = self
            .stream_http
            .get(format!("{}{path}", self.base))
            .bearer_auth(self.key.expose())
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(last) = last_event_id {
            req = req.header("last-event-id", last);
        }
        let resp = req.send().await.map_err(|e| ApiError::Transport {
            method: "GET",
            path: path.clone(),
            message: e.without_url().to_string(),
        })?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(ApiError::Status {
                method: "GET",
                path,
                status,
                title: String::new(),
                detail: resp.text().await.unwrap_or_default(),
            });
        }
        Ok(resp)
    }

    /// Terminates a pod. A 404 means it is already gone, which is what was wanted.
    pub async fn delete_pod(&self, id: &str) -> Result<(), ApiError> {
        match self
            .send("DELETE", &format!("/pods/{}", encode(id)), None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.status() == Some(404) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// One call whose answer is read into the tool's view `T` (tolerant: see `answers`) and
    /// checked once against the document's type `Strict`, any difference said once.
    async fn json<T: DeserializeOwned, Strict: DeserializeOwned>(
        &self,
        method: &'static str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, ApiError> {
        let bytes = self.send(method, path, body).await?;
        if let Some(msg) = self
            .drift
            .check::<Strict>(&format!("{method} {path}"), &bytes)
        {
            crate::ui::say(format!("warning: {msg}"));
        }
        serde_json::from_slice(&bytes).map_err(|e| ApiError::Undecodable {
            method,
            path: path.to_string(),
            id: serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("id")?.as_str().map(String::from)),
            message: format!(
                "{e}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            ),
        })
    }

    /// One call with the spec's retry rules; the body of a 2xx answer.
    async fn send(
        &self,
        method: &'static str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Vec<u8>, ApiError> {
        let url = format!("{}{path}", self.base);
        let mut backoff = Duration::from_millis(500);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
            let mut req = self.http.request(m, &url).bearer_auth(self.key.expose());
            if let Some(b) = &body {
                req = req.json(b);
            }
            let transport = |message: String| ApiError::Transport {
                method,
                path: path.to_string(),
                message,
            };
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) if attempt <= self.retries => {
                    tracing::warn!("RunPod API {method} {path}: {e}; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(8));
                    continue;
                }
                Err(e) => return Err(transport(e.without_url().to_string())),
            };
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| transport(e.without_url().to_string()))?
                .to_vec();
            if (200..300).contains(&status) {
                return Ok(bytes);
            }
            if attempt <= self.retries && (status == 429 || status >= 500) {
                let wait = match (status, retry_after) {
                    (429, Some(s)) => Duration::from_secs(s.min(120)),
                    _ => backoff,
                };
                tracing::warn!("RunPod API {method} {path}: HTTP {status}; retrying in {wait:?}");
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(Duration::from_secs(8));
                continue;
            }
            let problem: Option<ErrorResponse> = serde_json::from_slice(&bytes).ok();
            let (title, detail) = match problem {
                Some(p) => {
                    let mut detail = p.detail;
                    if !p.errors.is_empty() {
                        detail = format!("{detail} ({})", p.errors.join("; "));
                    }
                    (p.title, detail)
                }
                None => (
                    String::new(),
                    String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned(),
                ),
            };
            return Err(ApiError::Status {
                method,
                path: path.to_string(),
                status,
                title,
                detail,
            });
        }
    }
}
