//! The server's prefix cache before a point's measured window (`workload.cache`): emptied
//! (`flush`) through the engine's own endpoint, then primed (`prime`) with each shared prefix
//! once. Neither is measured: both happen before the point's first scrape.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::RunError;
use crate::client::{self, Endpoint};
use crate::config::{Experiment, FrameworkKind};
use crate::workload::source::Feed;

/// The server's prefix-cache block in tokens: `metrics.cache_block_size` when given, else what
/// vLLM says in `/metrics` (`vllm:cache_config_info{block_size="…"}`), else the engine's
/// default (vLLM 16, SGLang 1: its radix cache matches token by token). `None` for a dataset
/// that never counts in blocks (only traces, agent traces, shared prefixes and conversations
/// do): no `/metrics` request is made for it.
pub async fn block_size(ep: &Endpoint, e: &Experiment) -> Option<u32> {
    use crate::config::Dataset;
    if !matches!(
        e.workload.dataset,
        Dataset::Trace { .. }
            | Dataset::Agentic { .. }
            | Dataset::SharedPrefix { .. }
            | Dataset::Conversation { .. }
    ) {
        return None;
    }
    if let Some(b) = e.metrics.cache_block_size {
        return Some(b.max(1));
    }
    let fallback = match e.framework.kind {
        FrameworkKind::Sglang => 1,
        _ => 16,
    };
    let said = match client::http_call(ep, "GET", "/metrics", None, Duration::from_secs(5)).await {
        Ok((200, body)) => said_block_size(&String::from_utf8_lossy(&body)),
        _ => None,
    };
    Some(said.unwrap_or(fallback))
}

/// `block_size` of vLLM's `cache_config_info` in a `/metrics` page.
fn said_block_size(page: &str) -> Option<u32> {
    let line = page
        .lines()
        .find(|l| l.starts_with("vllm:cache_config_info{"))?;
    // The label itself, not `effective_attention_block_size` or `hash_block_size`.
    let at = [",block_size=\"", "{block_size=\""]
        .iter()
        .find_map(|k| line.find(k).map(|i| i + k.len()))?;
    let rest = &line[at..];
    rest[..rest.find('"')?].parse().ok().filter(|b| *b > 0)
}

/// A reset refused because requests still hold blocks is tried again this many times.
const FLUSH_TRIES: u32 = 10;

/// Flushes, then primes, as `e.workload.cache` says; `feed` has the shared prefixes.
pub async fn prepare(
    ep: &Endpoint,
    e: &Experiment,
    feed: &Feed,
    stop: &CancellationToken,
) -> Result<(), RunError> {
    let c = e.workload.cache;
    let timeout = e.workload.request_timeout.as_duration();
    if c.flush {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return Err(RunError::Interrupted),
            r = flush(ep, e.framework.kind, timeout) => r?,
        }
    }
    if c.prime {
        let prompts = feed.prime();
        tokio::select! {
            biased;
            _ = stop.cancelled() => return Err(RunError::Interrupted),
            r = prime(ep, e, prompts, timeout) => r?,
        }
    }
    Ok(())
}

/// Empties the prefix cache: vLLM `POST /reset_prefix_cache` (`{"success": bool}`; false while
/// requests hold blocks, tried again), SGLang `POST /flush_cache` (400 while requests run).
async fn flush(ep: &Endpoint, kind: FrameworkKind, timeout: Duration) -> Result<(), RunError> {
    let path = match kind {
        FrameworkKind::Vllm => "/reset_prefix_cache",
        FrameworkKind::Sglang => "/flush_cache",
        FrameworkKind::Llamacpp | FrameworkKind::Trtllm => {
            return Err(RunError::Config(format!(
                "`workload.cache.flush`: {}'s server has no endpoint that empties its prefix cache; remove `flush`",
                kind.as_str()
            )))
        }
    };
    let mut last = String::new();
    for _ in 0..FLUSH_TRIES {
        let (status, body) = client::http_call(ep, "POST", path, None, timeout)
            .await
            .map_err(|e| RunError::Endpoint(format!("flushing the prefix cache: {}", e.message)))?;
        let text = String::from_utf8_lossy(&body).into_owned();
        let done = match (kind, status) {
            (FrameworkKind::Vllm, 200) => serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("success").and_then(serde_json::Value::as_bool))
                .unwrap_or(true),
            (FrameworkKind::Vllm, 404) => return Err(RunError::Endpoint(
                "`workload.cache.flush`: vLLM answered 404 for POST /reset_prefix_cache — a development endpoint it serves only when started with VLLM_SERVER_DEV_MODE=1 (set it in `framework.env`, or on the server you run), or remove `flush`".into(),
            )),
            (FrameworkKind::Sglang, 200) => true,
            (_, 400 | 409 | 503) => false,
            (_, s) => return Err(RunError::Endpoint(format!(
                "flushing the prefix cache: POST {path} answered {s}: {}",
                &text[..text.len().min(300)]
            ))),
        };
        if done {
            return Ok(());
        }
        last = text;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(RunError::Endpoint(format!(
        "the server would not empty its prefix cache ({FLUSH_TRIES} tries: requests still hold blocks): {}",
        last.trim()
    )))
}

/// Sends each prompt once, one after another, answers of one token, not measured.
async fn prime(
    ep: &Endpoint,
    e: &Experiment,
    prompts: Vec<crate::workload::dataset::Prompt>,
    timeout: Duration,
) -> Result<(), RunError> {
    let mut conn = client::connect(ep)
        .await
        .map_err(|err| RunError::Endpoint(format!("priming the prefix cache: {}", err.message)))?;
    for p in prompts {
        let body = client::request_body(e.workload.api, &e.model.id, &p.json, 1, false);
        let bounds = client::Bounds {
            timeout,
            deadline: None,
            max_tokens: 1,
            max_event_bytes: e.workload.max_event_bytes as usize,
            keep_text: false,
        };
        let r = client::send(&mut conn, ep, body, &bounds, Instant::now()).await;
        if let Some(err) = r.error {
            return Err(RunError::Endpoint(format!(
                "priming the prefix cache: a prefix was refused: {}",
                err.message
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::said_block_size;

    #[test]
    fn the_block_size_is_read_from_vllms_cache_config() {
        // As vLLM 0.32's CPU build says it (labels in its order; `_block_size_resolved` first).
        let page = "# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig\nvllm:cache_config_info{_block_size_resolved=\"True\",block_size=\"128\",effective_attention_block_size=\"128\",enable_prefix_caching=\"True\"} 1.0\n";
        assert_eq!(said_block_size(page), Some(128));
        let first = "vllm:cache_config_info{block_size=\"16\",hash_block_size=\"None\"} 1.0\n";
        assert_eq!(said_block_size(first), Some(16));
        let later =
            "vllm:cache_config_info{effective_attention_block_size=\"64\",block_size=\"32\"} 1.0\n";
        assert_eq!(said_block_size(later), Some(32));
        assert_eq!(said_block_size("vllm:num_requests_running 0\n"), None);
    }
}
