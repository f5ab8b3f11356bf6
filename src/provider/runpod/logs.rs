//! Follows a pod's log stream (`GET /pods/{id}/logs`, Server-Sent Events) into the run's server
//! log file from the moment the pod exists, so a failed health check can quote the server's
//! last words and the user keeps the whole log with the result.
//!
//! The stream is low-rate, so eventsource-stream parses it (it is the wrong tool only for the
//! benchmark's token streams). When the stream ends or fails — the pod is still starting, the
//! proxy closed an idle stream — the follower reconnects with `Last-Event-ID` (the last event's
//! timestamp), backing off up to 10 s.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use eventsource_stream::Eventsource;
use futures_util::StreamExt;

use super::api::RunPodApi;

/// One log event's payload, as documented: `{"ts": "...", "source": "container", "line": "..."}`.
#[derive(serde::Deserialize)]
struct LogLine {
    #[serde(default)]
    ts: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    line: String,
}

/// Follows pod `id`'s logs into `file` (appending) until the task is aborted.
pub async fn follow(api: Arc<RunPodApi>, id: String, file: PathBuf) {
    let mut out = match crate::files::private_log(&file, true) {
        Ok(f) => std::io::BufWriter::new(f),
        Err(e) => {
            tracing::warn!("pod log file {}: {e}", file.display());
            return;
        }
    };
    let mut last_id: Option<String> = None;
    let mut backoff = Duration::from_millis(500);
    loop {
        match api.pod_logs(&id, last_id.as_deref()).await {
            Ok(resp) => {
                let mut events = resp.bytes_stream().eventsource();
                while let Some(ev) = events.next().await {
                    let Ok(ev) = ev else { break };
                    // Event ids are `<ts>/<seq>`, but the document types `Last-Event-ID` as
                    // an RFC 3339 date-time (Prism refuses the whole id): resume from the
                    // timestamp, which may repeat a line of that same instant.
                    if let Some(ts) = ev.id.split('/').next().filter(|t| !t.is_empty()) {
                        last_id = Some(ts.to_string());
                    }
                    let text = match serde_json::from_str::<LogLine>(&ev.data) {
                        Ok(l) => format!("{} [{}] {}", l.ts, l.source, l.line),
                        Err(_) => ev.data,
                    };
                    if writeln!(out, "{text}").and_then(|_| out.flush()).is_err() {
                        return;
                    }
                    backoff = Duration::from_millis(500);
                }
            }
            Err(e) => tracing::debug!("pod {id} logs: {e}"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}
