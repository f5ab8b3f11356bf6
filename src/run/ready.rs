//! Is the server ready, and still there? `/health` then `/v1/models` until the model is listed
//! (with the server's version), one pre-flight request through the benchmark client, and the
//! answers that waiting will not change (401/403, a refused certificate) reported at once with
//! what to do.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::RunError;
use crate::client::{self, Endpoint};
use crate::provider::Handle;

/// Why a `GET` was not a 200.
enum NotOk {
    /// 401 or 403: waiting will not change it.
    Refused(String),
    /// A TLS handshake refused: waiting will not change it either.
    Tls(String),
    Other(String),
}

/// The body of a 200 answer to `GET path`, or what the server said instead.
async fn get_ok(ep: &Endpoint, path: &str, timeout: Duration) -> Result<Vec<u8>, NotOk> {
    match client::http_call(ep, "GET", path, None, timeout).await {
        Ok((200, body)) => Ok(body),
        Ok((s, body)) => {
            let said = format!(
                "{path} answered {s}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            );
            Err(match s {
                401 | 403 => NotOk::Refused(said),
                _ => NotOk::Other(said),
            })
        }
        Err(e) if e.tls_refused => Err(NotOk::Tls(e.message)),
        Err(e) => Err(NotOk::Other(e.message)),
    }
}

/// A refused TLS handshake, with what to do about a refused certificate.
fn tls_refused(said: String) -> RunError {
    if !said.contains("certificate") {
        return RunError::Endpoint(said);
    }
    RunError::Endpoint(format!(
        "{said} — if the server's certificate comes from a private CA (or is self-signed), \
         name that CA's PEM file in `infrastructure.tls_ca_file`; otherwise use the host name \
         the certificate was issued for"
    ))
}

/// A 401/403, with what to do about it.
fn refused(ep: &Endpoint, said: String) -> RunError {
    let hint = match ep.api_key {
        Some(_) => "the server refused the API key that was sent (from `infrastructure.api_key_env`, else `api_keys.openai` in the user config)",
        None => "the server wants an API key: name the variable that holds it in `infrastructure.api_key_env` (or set `api_keys.openai` in the user config)",
    };
    RunError::ApiKey(format!("{said} — {hint}"))
}

/// What one look at the server found.
enum Look {
    /// The model is served; the server's version, if it says.
    Ready(Option<String>),
    /// Not (yet): what it last answered.
    NotYet(String),
}

/// One look: `/health`, then `/v1/models` must list `model`.
async fn look(ep: &Endpoint, model: &str) -> Result<Look, RunError> {
    let models = async {
        get_ok(ep, "/health", Duration::from_secs(10)).await?;
        get_ok(ep, "/v1/models", Duration::from_secs(10)).await
    };
    let body = match models.await {
        Ok(body) => body,
        Err(NotOk::Refused(said)) => return Err(refused(ep, said)),
        Err(NotOk::Tls(said)) => return Err(tls_refused(said)),
        Err(NotOk::Other(said)) => return Ok(Look::NotYet(said)),
    };
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m["id"].as_str()).collect())
        .unwrap_or_default();
    if !ids.contains(&model) {
        return Err(RunError::Preflight(format!(
            "the server does not serve `{model}`; it serves: {}",
            ids.join(", ")
        )));
    }
    let version = get_ok(ep, "/version", Duration::from_secs(5))
        .await
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["version"].as_str().map(String::from));
    Ok(Look::Ready(version))
}

/// A wait for the server says what it is waiting for and what it last heard after this long,
/// then twice as long each time, up to [`SAY_MOST`] (a pod loading a model for minutes).
const SAY_FIRST: Duration = Duration::from_secs(5);
const SAY_MOST: Duration = Duration::from_secs(60);

/// `/health` answers 200 and `/v1/models` lists the model; returns the server's version.
pub async fn wait_ready(
    ep: &Endpoint,
    model: &str,
    timeout: Duration,
    handle: &mut Handle,
    stop: &CancellationToken,
) -> Result<Option<String>, RunError> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(50);
    let (mut said, mut every) = (Instant::now(), SAY_FIRST);
    loop {
        let last = match look(ep, model).await? {
            Look::Ready(version) => return Ok(version),
            Look::NotYet(last) => last,
        };
        // `/v1/health` does not exist: a base_url ending in /v1 will never be ready.
        if last.starts_with("/health answered 404") && ep.base_url().ends_with("/v1") {
            return Err(RunError::Endpoint(format!(
                "{last} — base_url ends in `/v1`, and the tool adds `/v1/…` itself: drop the `/v1` (e.g. `{}`)",
                ep.base_url().trim_end_matches("/v1")
            )));
        }
        // A wrong address is not waited on in silence (an existing server's wait is 15 min).
        if said.elapsed() >= every {
            (said, every) = (Instant::now(), (every * 2).min(SAY_MOST));
            crate::ui::say(format!(
                "waiting for {}/health to answer and /v1/models to list `{model}` ({:.0}s of {:.0}s): {last}",
                ep.base_url(),
                start.elapsed().as_secs_f64(),
                timeout.as_secs_f64()
            ));
        }
        if let Some(reason) = handle.gone() {
            return Err(RunError::ServerGone(reason));
        }
        if stop.is_cancelled() {
            return Err(RunError::Interrupted);
        }
        if start.elapsed() >= timeout {
            let last = match handle.diagnostics() {
                Some(d) => format!("{last}\n{d}"),
                None => last,
            };
            return Err(RunError::Health {
                url: ep.base_url(),
                timeout,
                last,
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.cancelled() => return Err(RunError::Interrupted),
        }
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// After a failed point: does the server still answer? `None` when it does, else what it (or
/// the provider) said. A few tries over about ten seconds, so a server that is only busy
/// draining its queue is not declared dead.
pub async fn still_there(ep: &Endpoint, model: &str, handle: &mut Handle) -> Option<String> {
    let mut last = String::new();
    for attempt in 0..4 {
        if let Some(reason) = handle.gone() {
            return Some(reason);
        }
        match look(ep, model).await {
            Ok(Look::Ready(_)) => return None,
            Ok(Look::NotYet(said)) => last = said,
            Err(e) => last = e.to_string(),
        }
        if attempt < 3 {
            tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
        }
    }
    Some(last)
}

/// One small streaming request through the benchmark client; quotes the server's error.
/// Bounded by the workload's `request_timeout`, and ended at once by a stop (Ctrl-C, SIGTERM):
/// a server that accepts and never answers cannot hold the run (or a rented pod) for longer.
/// Returns when its first token came.
pub async fn preflight(
    ep: &Endpoint,
    model: &str,
    api: crate::config::Api,
    timeout: Duration,
    stop: &CancellationToken,
) -> Result<Instant, RunError> {
    let ask = async {
        let mut conn = client::connect(ep)
            .await
            .map_err(|e| RunError::Preflight(e.message))?;
        let prompt = client::api::of(api).text_prompt("Say hello.").to_string();
        let body = client::request_body(api, model, &prompt, 2, false);
        let bounds = client::Bounds {
            timeout,
            deadline: None,
            max_tokens: 2,
            max_event_bytes: 1 << 20,
            keep_text: false,
        };
        let t0 = Instant::now();
        let r = client::send(&mut conn, ep, body, &bounds, t0).await;
        match r.error {
            // When its first token came (the end, for an answer of no text).
            None => Ok(t0
                + Duration::from_secs_f64(
                    (r.sent_ms + r.ttft_ms.unwrap_or(r.e2el_ms)).max(0.0) / 1e3,
                )),
            Some(e) => Err(RunError::Preflight(e.message)),
        }
    };
    tokio::select! {
        biased;
        _ = stop.cancelled() => Err(RunError::Interrupted),
        r = ask => r,
    }
}
