//! A small process that outlives this tool and ends what it rented when the tool cannot
//! (`llm-inf-bench watchdog` for RunPod pods, `vast-watchdog` for Vast.ai instances,
//! `slurm-watchdog` for Slurm jobs).
//! It runs in its own session (a closed terminal does not reach it) and hears the tool over its
//! stdin, one line at a time: `watch ID` (this is ours), `released` (stand down). End of file
//! without `released` means the tool died: the watchdog acts.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;

/// The tool's end of the line to its watchdog.
pub struct Watchdog {
    stdin: Option<ChildStdin>,
}

impl Watchdog {
    /// Starts `llm-inf-bench ARGS` as a watchdog, with `env` (secrets go here, never in the
    /// arguments `ps` shows) and its output appended to `log`.
    pub fn spawn(args: &[String], env: &[(&str, &str)], log: &Path) -> std::io::Result<Self> {
        let exe = std::env::current_exe()?;
        if let Some(dir) = log.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let log = crate::files::private_log(log, true)?;
        let mut cmd = Command::new(exe);
        cmd.args(args)
            .envs(env.iter().copied())
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

    /// Tells the watchdog that pod (or job) `id` is ours.
    pub fn watch(&mut self, id: &str) {
        self.send(&format!("watch {id}"));
    }

    /// The pod (or job) is gone (or kept on purpose): the watchdog stands down.
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

/// What a provider's watchdog needs of its API once it acts: the live rentals of the run's
/// name, and the end of one. RunPod's pods and Vast's instances are found by name over the
/// provider's API; the rest (when to act, how often to look, how long to keep trying, the
/// marker while nothing is confirmed) is the same for every provider and lives here.
pub trait Sweep {
    /// The provider's name as the user knows it (`RunPod`, `Vast.ai`).
    fn provider(&self) -> &'static str;

    /// What one rental is called in the log (`pod`, `instance`).
    fn noun(&self) -> &'static str;

    /// The ids of the live rentals named `name`.
    fn live<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<String>, String>>;

    /// Ends rental `id` (one the provider no longer knows is gone: `Ok`).
    fn end<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), String>>;
}

/// One look: every live rental named `name` joins `left`, each of `left` is ended. `Ok` when
/// the look worked and every end did: nothing of the run's is left.
async fn sweep(s: &dyn Sweep, name: &str, left: &mut Vec<String>) -> Result<(), String> {
    let mut failure = None;
    match s.live(name).await {
        Ok(ids) => left.extend(ids),
        Err(e) => {
            log(&format!("listing {}s: {e}", s.noun()));
            failure = Some(format!("listing {}s: {e}", s.noun()));
        }
    }
    left.sort();
    left.dedup();
    for id in std::mem::take(left) {
        match s.end(&id).await {
            Ok(()) => log(&format!("ended {} {id}", s.noun())),
            Err(e) => {
                log(&format!("could not end {} {id}: {e}", s.noun()));
                failure = Some(format!("ending {id}: {e}"));
                left.push(id);
            }
        }
    }
    failure.map_or(Ok(()), Err)
}

/// How often and how long the watchdog looks for the run's rentals once it acts (a create
/// whose answer never arrived may still make one).
const SWEEPS: [Duration; 4] = [
    Duration::ZERO,
    Duration::from_secs(5),
    Duration::from_secs(10),
    Duration::from_secs(20),
];

/// After the sweeps, while the rentals are not confirmed gone: the first wait between tries,
/// and the longest.
const RETRY_FIRST: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(300);
/// How long past `max_lifetime` it keeps trying.
const GIVE_UP_AFTER_LIFETIME: Duration = Duration::from_secs(3600);

/// Where markers of rentals not confirmed gone live: `unconfirmed-pods/` in the state
/// directory.
pub fn unconfirmed_dir() -> Option<PathBuf> {
    Some(crate::config::state_dir()?.join("unconfirmed-pods"))
}

/// The providers' names as markers and messages give them (`Sweep::provider`).
pub const RUNPOD: &str = "RunPod";
pub const VAST: &str = "Vast.ai";

fn runpod() -> String {
    RUNPOD.into()
}

/// A marker of rentals that may still be billing: what the watchdog knew when it wrote it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Unconfirmed {
    /// The provider (markers written before there were two clouds are RunPod's).
    #[serde(default = "runpod")]
    pub provider: String,
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
            "WARNING: {} rental(s) {} ({}) may still be billing: the watchdog could not confirm their end since {} ({}). Check with `llm-inf-bench pods list` or {}'s console, and end them with `llm-inf-bench pods terminate ID`",
            self.provider,
            if self.ids.is_empty() { "(ids unknown)".to_string() } else { self.ids.join(", ") },
            self.pod_name,
            self.since,
            self.last_error,
            self.provider,
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

/// Removes the marker of `pod_name` (its rentals are confirmed gone).
pub fn clear_unconfirmed(pod_name: &str) {
    if let Some(dir) = unconfirmed_dir() {
        let _ = std::fs::remove_file(dir.join(format!("{pod_name}.json")));
    }
}

/// After a listing of `provider`'s rentals worked: the markers of its runs with nothing
/// `live` any more are confirmed gone, cleared, and said so.
pub fn clear_gone(provider: &str, live: impl Fn(&str) -> bool) {
    for u in unconfirmed().iter().filter(|u| u.provider == provider) {
        if !live(&u.pod_name) {
            clear_unconfirmed(&u.pod_name);
            crate::ui::say(format!(
                "{}: no longer live at {provider}; the warning is cleared",
                u.pod_name
            ));
        }
    }
}

fn mark_unconfirmed(u: &Unconfirmed) {
    let Some(dir) = unconfirmed_dir() else {
        log("no state directory for the unconfirmed-rental marker");
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

/// One line of the watchdog's log (its stderr is the log file).
pub fn log(msg: &str) {
    eprintln!("{} watchdog: {msg}", chrono::Utc::now().to_rfc3339());
}

/// The watchdog process itself, for `sweeper`'s provider: reads the tool's lines until
/// `released` (stand down) or their end (the tool died), or until `max_lifetime`; then ends
/// every rental it was told about and every one named `name`. Returns its exit code.
pub fn serve(sweeper: &dyn Sweep, name: &str, max_lifetime: Duration) -> i32 {
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
        "guarding {} rentals named {name} (max_lifetime {}s)",
        sweeper.provider(),
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
                            log(&format!("watching {id}"));
                            ids.push(id.trim().to_string());
                        }
                        None if l.trim() == "released" => {
                            log("the tool released what it rented; standing down");
                            return 0;
                        }
                        None => {}
                    },
                    _ => break "the tool exited without releasing what it rented",
                },
                _ = &mut deadline => break "max_lifetime reached",
            }
        };
        log(why);
        end_all(sweeper, name, ids, give_up).await
    })
}

/// Ends the rentals we were told about and every live one named `name`, several times over
/// [`SWEEPS`]; then, while that is not confirmed, again with backoff until `give_up`. Returns 0
/// when they are confirmed gone, else 1 (and the marker stays).
async fn end_all(sweeper: &dyn Sweep, name: &str, ids: Vec<String>, give_up: Instant) -> i32 {
    let mut left = ids.clone();
    let mut marker = Unconfirmed {
        provider: sweeper.provider().to_string(),
        pod_name: name.to_string(),
        ids,
        since: chrono::Utc::now().to_rfc3339(),
        last_error: String::new(),
    };
    // From the first failed look on, the marker says a rental may still be billing.
    for wait in SWEEPS {
        tokio::time::sleep(wait).await;
        match sweep(sweeper, name, &mut left).await {
            Ok(()) => {
                if !std::mem::take(&mut marker.last_error).is_empty() {
                    clear_unconfirmed(name);
                }
            }
            Err(e) => {
                marker.last_error = e;
                mark_unconfirmed(&marker);
            }
        }
    }
    if marker.last_error.is_empty() {
        clear_unconfirmed(name);
        log("everything the run rented is confirmed gone");
        return 0;
    }
    let mut backoff = RETRY_FIRST;
    let mut tries = 0u32;
    while Instant::now() < give_up {
        tokio::time::sleep(backoff.min(give_up.saturating_duration_since(Instant::now()))).await;
        tries += 1;
        log(&format!("try {tries} to confirm the rentals are gone"));
        match sweep(sweeper, name, &mut left).await {
            Ok(()) => {
                clear_unconfirmed(name);
                log("everything the run rented is confirmed gone");
                return 0;
            }
            Err(e) => {
                marker.last_error = e;
                mark_unconfirmed(&marker);
            }
        }
        backoff = (backoff * 2).min(RETRY_MAX);
    }
    log("gave up (max_lifetime + 1 h): the rentals may still be billing; see the marker");
    1
}
