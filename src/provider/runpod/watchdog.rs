//! A small process that outlives this tool and terminates the pod when the tool cannot.
//!
//! RunPod's v2 API has no pod time-to-live and no way to wrap the image's entrypoint, so the
//! safety net cannot live on the pod. Instead every RunPod run starts `llm-inf-bench watchdog`
//! in its own session (no controlling terminal: a closed terminal does not reach it), before
//! the pod is created. The tool talks to it over the watchdog's stdin, one line at a time:
//!
//! * `pod ID` — this pod is ours to watch;
//! * `released` — the pod is terminated (or kept on purpose): stand down.
//!
//! When stdin reaches end-of-file without `released` (the tool exited, was killed with
//! `kill -9`, or crashed), or when `max_lifetime` has passed, the watchdog terminates every pod
//! it was told about and every pod carrying the run's name (which also catches a pod whose
//! `POST /pods` answer never reached the tool), checking again for a short while in case a
//! create was still in flight. It writes what it does to `<result stem>.watchdog.log`.
//!
//! The API key reaches it through its environment, never its command line (which `ps` shows).

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::time::Duration;

use super::answers::PodStatus;
use super::api::{RunPodApi, ENV_API_BASE, ENV_API_KEY};
use crate::config::Secret;

/// The tool's end of the line to its watchdog.
pub struct Watchdog {
    stdin: Option<ChildStdin>,
}

impl Watchdog {
    /// Starts the watchdog for the pod that will be named `pod_name`.
    pub fn spawn(
        key: &Secret,
        api_base: &str,
        pod_name: &str,
        max_lifetime: Duration,
        log: &Path,
    ) -> std::io::Result<Self> {
        let exe = std::env::current_exe()?;
        if let Some(dir) = log.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let mut cmd = Command::new(exe);
        cmd.arg("watchdog")
            .arg("--pod-name")
            .arg(pod_name)
            .arg("--max-lifetime-secs")
            .arg(max_lifetime.as_secs().max(1).to_string())
            .env(ENV_API_KEY, key.expose())
            .env(ENV_API_BASE, api_base)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: setsid is async-signal-safe and only detaches the child from our session
            // (and our terminal) between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    libc::setsid();
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn()?;
        let stdin = child.stdin.take();
        // Reap it when it exits, so it does not linger as a zombie while we run.
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        Ok(Self { stdin })
    }

    /// Tells the watchdog that pod `id` is ours.
    pub fn watch(&mut self, id: &str) {
        self.send(&format!("pod {id}"));
    }

    /// The pod is terminated (or kept on purpose): the watchdog stands down.
    pub fn released(&mut self) {
        self.send("released");
        self.stdin = None;
    }

    fn send(&mut self, line: &str) {
        if let Some(s) = &mut self.stdin {
            if writeln!(s, "{line}").and_then(|_| s.flush()).is_err() {
                // The watchdog is gone; nothing more to tell it.
                self.stdin = None;
            }
        }
    }
}

/// How often and how long the watchdog looks for the run's pods once it acts.
const SWEEPS: [Duration; 4] = [
    Duration::ZERO,
    Duration::from_secs(5),
    Duration::from_secs(10),
    Duration::from_secs(20),
];

fn log(msg: &str) {
    eprintln!("{} watchdog: {msg}", chrono::Utc::now().to_rfc3339());
}

/// The watchdog process itself (`llm-inf-bench watchdog`, hidden). Returns its exit code.
pub fn serve(pod_name: &str, max_lifetime: Duration) -> i32 {
    let Some(key) = Secret::from_env(ENV_API_KEY) else {
        log("no API key in the environment; cannot guard the pod");
        return 2;
    };
    let api = match RunPodApi::new(key, None) {
        Ok(a) => a,
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
    rt.block_on(async {
        let mut ids: Vec<String> = Vec::new();
        let deadline = tokio::time::sleep(max_lifetime);
        tokio::pin!(deadline);
        let why = loop {
            tokio::select! {
                m = rx.recv() => match m {
                    Some(Some(l)) => match l.strip_prefix("pod ") {
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
        terminate(&api, pod_name, ids).await
    })
}

/// Terminates the pods we were told about and every live pod named `pod_name`, several times
/// over [`SWEEPS`]. Returns 0 when the last sweep found nothing left, else 1.
async fn terminate(api: &RunPodApi, pod_name: &str, mut ids: Vec<String>) -> i32 {
    let mut failed = false;
    for wait in SWEEPS {
        tokio::time::sleep(wait).await;
        failed = false;
        match api.list_pods().await {
            Ok(pods) => ids.extend(
                pods.into_iter()
                    .filter(|p| p.name() == pod_name && p.status != PodStatus::Terminated)
                    .map(|p| p.id),
            ),
            Err(e) => {
                log(&format!("listing pods: {e}"));
                failed = true;
            }
        }
        ids.sort();
        ids.dedup();
        for id in std::mem::take(&mut ids) {
            match api.delete_pod(&id).await {
                Ok(()) => log(&format!("terminated pod {id}")),
                Err(e) => {
                    log(&format!("could not terminate pod {id}: {e}"));
                    failed = true;
                    ids.push(id);
                }
            }
        }
    }
    i32::from(failed)
}
