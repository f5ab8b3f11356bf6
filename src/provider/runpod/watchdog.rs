//! A small process that outlives this tool and terminates the pod when the tool cannot.
//!
//! RunPod's v2 API has no pod time-to-live and no way to wrap the image's entrypoint, so the
//! safety net cannot live on the pod. Instead every RunPod run starts `llm-inf-bench watchdog`
//! in its own session (no controlling terminal: a closed terminal does not reach it), before
//! the pod is created. The tool talks to it over the watchdog's stdin, one line at a time:
//!
//! * `watch ID` — this pod is ours to watch;
//! * `released` — the pod is terminated (or kept on purpose): stand down.
//!
//! When stdin reaches end-of-file without `released` (the tool exited, was killed with
//! `kill -9`, or crashed), or when `max_lifetime` has passed, the watchdog terminates every pod
//! it was told about and every pod carrying the run's name (which also catches a pod whose
//! `POST /pods` answer never reached the tool), checking again for a short while in case a
//! create was still in flight. It writes what it does to `<result stem>.watchdog.log`.
//!
//! When the API cannot be reached (or refuses), it keeps trying with backoff — each try
//! logged — until the pods are confirmed gone or `max_lifetime` + 1 h has passed. Until they
//! are confirmed gone, a marker in the state directory (`unconfirmed-pods/`) makes `pods list`
//! and every new `run` say loudly that a pod may still be billing.
//!
//! The API key reaches it through its environment, never its command line (which `ps` shows).

use std::path::Path;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::answers::PodStatus;
use super::api::{RunPodApi, ENV_API_BASE, ENV_API_KEY};
use crate::config::Secret;
use crate::provider::watchdog::{self, log, Sweep, Watchdog};

/// Starts the watchdog for the pod that will be named `pod_name`.
pub fn spawn(
    key: &Secret,
    api_base: &str,
    pod_name: &str,
    max_lifetime: Duration,
    log: &Path,
) -> std::io::Result<Watchdog> {
    let args = [
        "watchdog".to_string(),
        "--pod-name".into(),
        pod_name.into(),
        "--max-lifetime-secs".into(),
        max_lifetime.as_secs().max(1).to_string(),
    ];
    let env = [(ENV_API_KEY, key.expose()), (ENV_API_BASE, api_base)];
    Watchdog::spawn(&args, &env, log)
}

/// RunPod's part of the watchdog: pods are found by name in `GET /pods` and deleted.
struct Pods(RunPodApi);

impl Sweep for Pods {
    fn provider(&self) -> &'static str {
        crate::provider::watchdog::RUNPOD
    }

    fn noun(&self) -> &'static str {
        "pod"
    }

    fn live<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<String>, String>> {
        Box::pin(async move {
            let pods = self.0.list_pods().await.map_err(|e| e.to_string())?;
            Ok(pods
                .into_iter()
                .filter(|p| p.name() == name && p.status != PodStatus::Terminated)
                .map(|p| p.id)
                .collect())
        })
    }

    fn end<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move { self.0.delete_pod(id).await.map_err(|e| e.to_string()) })
    }
}

/// The watchdog process itself (`llm-inf-bench watchdog`, hidden). Returns its exit code.
pub fn serve(pod_name: &str, max_lifetime: Duration) -> i32 {
    let Some(key) = Secret::from_env(ENV_API_KEY) else {
        log("no API key in the environment; cannot guard the pod");
        return 2;
    };
    // No retries inside a call: the watchdog retries on its own, and logs each try.
    match RunPodApi::new(key, None) {
        Ok(a) => watchdog::serve(&Pods(a.with_retries(0)), pod_name, max_lifetime),
        Err(e) => {
            log(&format!("{e}"));
            2
        }
    }
}
