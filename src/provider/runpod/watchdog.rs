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

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::answers::PodStatus;
use super::api::{RunPodApi, ENV_API_BASE, ENV_API_KEY};
use crate::config::Secret;
use crate::provider::watchdog::Watchdog;

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

/// How often and how long the watchdog looks for the run's pods once it acts (a create whose
/// answer never arrived may still make one).
const SWEEPS: [Duration; 4] = [
    Duration::ZERO,
    Duration::from_secs(5),
    Duration::from_secs(10),
    Duration::from_secs(20),
];

/// After the sweeps, while the pods are not confirmed gone: the first wait between tries, and
/// the longest.
const RETRY_FIRST: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(300);
/// How long past `max_lifetime` it keeps trying.
const GIVE_UP_AFTER_LIFETIME: Duration = Duration::from_secs(3600);

/// Where markers of pods not confirmed gone live: `unconfirmed-pods/` in the state directory.
pub fn unconfirmed_dir() -> Option<PathBuf> {
    Some(crate::config::state_dir()?.join("unconfirmed-pods"))
}

/// A marker of pods that may still be billing: what the watchdog knew when it wrote it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Unconfirmed {
    pub pod_name: String,
    pub ids: Vec<String>,
    /// RFC 3339.
    pub since: String,
    pub last_error: String,
}

impl Unconfirmed {
    /// One loud line for the user.
    pub fn warning(&self) -> String {
        format!(
            "WARNING: pod(s) {} ({}) may still be billing: the watchdog could not confirm their termination since {} ({}). Check with `llm-inf-bench pods list` or RunPod's console, and end them with `llm-inf-bench pods terminate ID`",
            if self.ids.is_empty() { "(ids unknown)".to_string() } else { self.ids.join(", ") },
            self.pod_name,
            self.since,
            self.last_error
        )
    }
}

/// Every marker there is.
pub fn unconfirmed() -> Vec<Unconfirmed> {
    let Some(dir) = unconfirmed_dir() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .filter_map(|t| serde_json::from_str(&t).ok())
        .collect()
}

/// Removes the marker of `pod_name` (its pods are confirmed gone).
pub fn clear_unconfirmed(pod_name: &str) {
    if let Some(dir) = unconfirmed_dir() {
        let _ = std::fs::remove_file(dir.join(format!("{pod_name}.json")));
    }
}

fn mark_unconfirmed(u: &Unconfirmed) {
    let Some(dir) = unconfirmed_dir() else {
        log("no state directory for the unconfirmed-pod marker");
        return;
    };
    let path = dir.join(format!("{}.json", u.pod_name));
    let written = std::fs::create_dir_all(&dir)
        .and_then(|_| std::fs::write(&path, serde_json::to_vec_pretty(u).unwrap_or_default()));
    match written {
        Ok(()) => log(&format!("marked as possibly billing: {}", path.display())),
        Err(e) => log(&format!("could not write {}: {e}", path.display())),
    }
}

fn log(msg: &str) {
    eprintln!("{} watchdog: {msg}", chrono::Utc::now().to_rfc3339());
}

/// The watchdog process itself (`llm-inf-bench watchdog`, hidden). Returns its exit code.
pub fn serve(pod_name: &str, max_lifetime: Duration) -> i32 {
    let Some(key) = Secret::from_env(ENV_API_KEY) else {
        log("no API key in the environment; cannot guard the pod");
        return 2;
    };
    // No retries inside a call: the watchdog retries on its own, and logs each try.
    let api = match RunPodApi::new(key, None) {
        Ok(a) => a.with_retries(0),
        Err(e) => {
            log(&format!("{e}"));
            return 2;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log(&format!("no runtime: {e}"));
            return 2;
        }
    };
    log(&format!(
        "guarding pods named {pod_name} (max_lifetime {}s)",
        max_lifetime.as_secs()
    ));
    // stdin is read on a plain thread: a blocking read must not hold the timer up.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Option<String>>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            match line {
                Ok(l) => {
                    if tx.send(Some(l)).is_err() {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        let _ = tx.send(None);
    });
    let give_up = Instant::now() + max_lifetime + GIVE_UP_AFTER_LIFETIME;
    rt.block_on(async {
        let mut ids: Vec<String> = Vec::new();
        let deadline = tokio::time::sleep(max_lifetime);
        tokio::pin!(deadline);
        let why = loop {
            tokio::select! {
                m = rx.recv() => match m {
                    Some(Some(l)) => match l.strip_prefix("watch ") {
                        Some(id) => {
                            log(&format!("watching pod {id}"));
                            ids.push(id.trim().to_string());
                        }
                        None if l.trim() == "released" => {
                            log("the tool released the pod; standing down");
                            return 0;
                        }
                        None => {}
                    },
                    _ => break "the tool exited without releasing its pod",
                },
                _ = &mut deadline => break "max_lifetime reached",
            }
        };
        log(why);
        terminate(&api, pod_name, ids, give_up).await
    })
}

/// Terminates the pods we were told about and every live pod named `pod_name`, several times
/// over [`SWEEPS`]; then, while that is not confirmed, again with backoff until `give_up`.
/// Returns 0 when the pods are confirmed gone, else 1 (and the marker stays).
async fn terminate(api: &RunPodApi, pod_name: &str, ids: Vec<String>, give_up: Instant) -> i32 {
    let mut left = ids.clone();
    let mut marker = Unconfirmed {
        pod_name: pod_name.to_string(),
        ids,
        since: chrono::Utc::now().to_rfc3339(),
        last_error: String::new(),
    };
    // From the first failed look on, the marker says a pod may still be billing.
    for wait in SWEEPS {
        tokio::time::sleep(wait).await;
        match sweep(api, pod_name, &mut left).await {
            Ok(()) => {
                if !std::mem::take(&mut marker.last_error).is_empty() {
                    clear_unconfirmed(pod_name);
                }
            }
            Err(e) => {
                marker.last_error = e;
                mark_unconfirmed(&marker);
            }
        }
    }
    if marker.last_error.is_empty() {
        clear_unconfirmed(pod_name);
        log("every pod of the run is confirmed gone");
        return 0;
    }
    let mut backoff = RETRY_FIRST;
    let mut tries = 0u32;
    while Instant::now() < give_up {
        tokio::time::sleep(backoff.min(give_up.saturating_duration_since(Instant::now()))).await;
        tries += 1;
        log(&format!("try {tries} to confirm the pods are gone"));
        match sweep(api, pod_name, &mut left).await {
            Ok(()) => {
                clear_unconfirmed(pod_name);
                log("every pod of the run is confirmed gone");
                return 0;
            }
            Err(e) => {
                marker.last_error = e;
                mark_unconfirmed(&marker);
            }
        }
        backoff = (backoff * 2).min(RETRY_MAX);
    }
    log("gave up (max_lifetime + 1 h): the pods may still be billing; see the marker");
    1
}

/// One look: every live pod named `pod_name` joins `left`, each of `left` is deleted (404 is
/// gone). `Ok` when the listing worked and every delete did: nothing of ours is left.
async fn sweep(api: &RunPodApi, pod_name: &str, left: &mut Vec<String>) -> Result<(), String> {
    let mut failure = None;
    match api.list_pods().await {
        Ok(pods) => left.extend(
            pods.into_iter()
                .filter(|p| p.name() == pod_name && p.status != PodStatus::Terminated)
                .map(|p| p.id),
        ),
        Err(e) => {
            log(&format!("listing pods: {e}"));
            failure = Some(format!("listing pods: {e}"));
        }
    }
    left.sort();
    left.dedup();
    for id in std::mem::take(left) {
        match api.delete_pod(&id).await {
            Ok(()) => log(&format!("terminated pod {id}")),
            Err(e) => {
                log(&format!("could not terminate pod {id}: {e}"));
                failure = Some(format!("terminating {id}: {e}"));
                left.push(id);
            }
        }
    }
    match failure {
        None => Ok(()),
        Some(e) => Err(e),
    }
}
