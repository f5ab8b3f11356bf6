//! `provider: slurm` — the server as a batch job: `sbatch` a script that starts it (partition,
//! account, GPUs, time limit, an optional container), wait until the job is RUNNING, reach the
//! server on the job's node, and `scancel` on every way out. The job's own `--time`, set from
//! `max_lifetime`, is enforced by the cluster even if this tool dies; a watchdog
//! (`llm-inf-bench slurm-watchdog`) cancels it sooner when this tool is killed.
//!
//! The commands run here, or on `slurm.login_host` through `ssh` (the script goes over stdin,
//! so nothing has to be copied first). Slurm 22.05's outputs, as this module reads them:
//! `sbatch --parsable` → `ID[;cluster]`; `squeue -h -j ID -o %T|%N|%r` → `RUNNING|node|None`,
//! nothing once the job left the queue; `scontrol show job ID` → `JobState=… ExitCode=a:b …`.

pub mod cluster;
pub mod script;
pub mod watchdog;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use super::watchdog::Watchdog;
use super::{local, sibling, ProviderError};
use crate::config::Resolved;
use crate::ui::say;
pub use cluster::{our_jobs, state, Cluster, JobState, OurJob};
use script::{job_script, port_for};

/// Every job this tool submits is named with this prefix, so `pods list` finds ours.
pub const JOB_PREFIX: &str = "llm-inf-bench-";

/// How often the job's state is asked for while it waits, and while it serves.
const POLL: Duration = Duration::from_secs(1);

/// A job this run owns: cancelled on release, on drop, or by the watchdog if this tool dies.
pub struct SlurmJob {
    cluster: Cluster,
    pub id: String,
    pub name: String,
    /// USD per hour for the job's GPUs, when `price_per_gpu_hour_usd` is given.
    pub price_per_hour_usd: Option<f64>,
    /// `N GPU(s) on NODE`, for the live view and the result.
    pub describe: String,
    pub submitted: Instant,
    running_since: Option<Instant>,
    /// The job's output (here; over ssh, a copy of its end fetched when it is needed).
    pub log: PathBuf,
    /// Over ssh: the output file's path on the cluster.
    remote_output: Option<String>,
    done: bool,
    watchdog: Option<Watchdog>,
    /// Set by the monitor once the job is no longer running: why, with its output's end.
    gone: Arc<Mutex<Option<String>>>,
    _monitor: Option<AbortOnDropHandle<()>>,
}

impl SlurmJob {
    /// USD spent: the price per hour since the job started running (nothing while pending).
    pub fn spent_usd(&self) -> f64 {
        match (self.price_per_hour_usd, self.running_since) {
            (Some(p), Some(t)) => p * t.elapsed().as_secs_f64() / 3600.0,
            _ => 0.0,
        }
    }

    /// Why the job is no longer running, once the monitor saw it end.
    pub fn gone(&self) -> Option<String> {
        self.gone.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Cancels the job now and waits for `scancel`'s answer.
    pub async fn release(&mut self) -> Result<(), String> {
        if std::mem::replace(&mut self.done, true) {
            return Ok(());
        }
        self._monitor = None;
        let r = self.cluster.cancel(&self.id).await;
        match &r {
            Ok(()) => {
                say(format!("cancelled Slurm job {}", self.id));
                if let Some(w) = &mut self.watchdog {
                    w.released();
                }
            }
            // The watchdog stays: it cancels by name when this process exits.
            Err(e) => say(format!(
                "warning: could not cancel Slurm job {}: {e}",
                self.id
            )),
        }
        r
    }

    /// The end of the job's output (fetched over ssh into `log` first).
    pub async fn output_tail(&self, lines: usize) -> String {
        output_tail(
            &self.cluster,
            self.remote_output.as_deref(),
            &self.log,
            lines,
        )
        .await
    }
}

impl super::Rental for SlurmJob {
    fn id(&self) -> &str {
        &self.id
    }

    fn noun(&self) -> &'static str {
        "Slurm job"
    }

    fn price(&self) -> Option<(String, f64)> {
        self.price_per_hour_usd.map(|p| (self.describe.clone(), p))
    }

    fn spent_usd(&self) -> f64 {
        SlurmJob::spent_usd(self)
    }

    fn age(&self) -> Duration {
        self.submitted.elapsed()
    }

    fn log(&self) -> &Path {
        &self.log
    }

    fn gone(&mut self) -> Option<String> {
        SlurmJob::gone(self)
    }

    fn release(&mut self) -> futures_util::future::BoxFuture<'_, ()> {
        Box::pin(async move {
            let _ = SlurmJob::release(self).await;
        })
    }
}

/// The last `lines` of a job's output: `log` here, or (over ssh) `remote` fetched into `log`.
async fn output_tail(cluster: &Cluster, remote: Option<&str>, log: &Path, lines: usize) -> String {
    if let Some(remote) = remote {
        let args = ["-n".to_string(), lines.to_string(), remote.to_string()];
        if let Ok(text) = cluster.run("tail", &args, None, &[]).await {
            let _ = std::fs::write(log, text);
        }
    }
    local::tail(log, lines)
}

impl Drop for SlurmJob {
    fn drop(&mut self) {
        if !std::mem::replace(&mut self.done, true) {
            let cancelled = self
                .cluster
                .run_blocking("scancel", std::slice::from_ref(&self.id));
            if let (Ok(_), Some(w)) = (cancelled, &mut self.watchdog) {
                w.released();
            }
        }
    }
}

/// Submits `script` (kept at `kept`); returns the job's id. A refusal or an answer that is not
/// a job id fails (whatever it made is named: the watchdog cancels by name when this process
/// exits).
async fn sbatch(
    cluster: &Cluster,
    r: &Resolved,
    script: &str,
    kept: &Path,
) -> Result<String, ProviderError> {
    let fail = |m: String| ProviderError::PodFailed(m);
    // The Hugging Face token reaches a local job through sbatch's environment, never the script.
    let mut env = Vec::new();
    if std::env::var_os("HF_TOKEN").is_none() {
        if let Some(t) = &r.user.api_keys.huggingface {
            env.push(("HF_TOKEN", t.expose().to_string()));
        }
    }
    let answer = cluster
        .run("sbatch", &["--parsable".into()], Some(script), &env)
        .await
        .map_err(|m| {
            fail(format!(
                "sbatch refused the job: {m} (the script: {})",
                kept.display()
            ))
        })?;
    let id = answer.trim().split(';').next().unwrap_or_default().trim();
    if id.is_empty() || id.contains(char::is_whitespace) {
        return Err(fail(format!(
            "sbatch answered `{}`, not a job id",
            answer.trim()
        )));
    }
    Ok(id.to_string())
}

/// Submits the experiment's server as a job and waits until it runs; returns the job and the
/// server's base URL. `log` is where the job's output goes (its script is kept beside it).
/// `replica` is the job's index among the run's replicas: a `slurm.port` written in the
/// experiment moves by it, so two replicas on one node do not ask for one port (the default
/// port comes from the job's name, which differs anyway).
pub async fn provision(
    r: &Resolved,
    (run_id, replica): (&str, u16),
    log: &Path,
    stop: &CancellationToken,
) -> Result<(SlurmJob, String), ProviderError> {
    let e = &r.experiment;
    let o = &e.infrastructure.slurm;
    let cluster = Cluster::of(o);
    let name = format!("{JOB_PREFIX}{run_id}");
    let port = match o.port {
        Some(p) => p.checked_add(replica).ok_or_else(|| {
            ProviderError::PodFailed(format!(
                "slurm.port {p} + replica {replica} is past 65535: give a lower port"
            ))
        })?,
        None => port_for(&name),
    };
    let fail = |m: String| ProviderError::PodFailed(m);
    if let Some(dir) = log.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|err| fail(format!("{}: {err}", dir.display())))?;
    }
    let log = std::path::absolute(log).unwrap_or_else(|_| log.to_path_buf());
    // Made here, mode 0600, before Slurm opens it (it keeps an existing file's mode).
    if o.login_host.is_none() {
        crate::files::private_log(&log, true)
            .map_err(|err| fail(format!("{}: {err}", log.display())))?;
    }
    let remote_output = o.login_host.as_ref().map(|_| format!("{name}.out"));
    let output = remote_output
        .clone()
        .unwrap_or_else(|| log.display().to_string());
    let script = job_script(e, &name, port, &output);
    let kept = sibling(&log, "sbatch");
    std::fs::write(&kept, &script).map_err(|err| fail(format!("{}: {err}", kept.display())))?;
    let wlog = sibling(&log, "watchdog.log");
    let mut watchdog = watchdog::spawn(
        &cluster,
        &name,
        e.infrastructure.max_lifetime.as_duration(),
        &wlog,
    )
    .map_err(|err| {
        fail(format!(
            "could not start the job watchdog (log {}): {err}; nothing was submitted",
            wlog.display()
        ))
    })?;
    let id = sbatch(&cluster, r, &script, &kept).await?;
    watchdog.watch(&id);
    let gpus = e.infrastructure.gpu_count;
    let mut job = SlurmJob {
        cluster,
        id,
        name,
        price_per_hour_usd: o.price_per_gpu_hour_usd.map(|p| p * gpus as f64),
        describe: format!("{gpus} GPU(s)"),
        submitted: Instant::now(),
        running_since: None,
        log,
        remote_output,
        done: false,
        watchdog: Some(watchdog),
        gone: Arc::default(),
        _monitor: None,
    };
    say(format!(
        "submitted Slurm job {} ({}); script {}",
        job.id,
        job.name,
        kept.display()
    ));
    let node = wait_running(&mut job, e.infrastructure.max_lifetime.as_duration(), stop).await?;
    job.running_since = Some(Instant::now());
    job.describe = format!("{gpus} GPU(s) on {node}");
    say(format!("Slurm job {} runs on {node}", job.id));
    job._monitor = Some(monitor(&job));
    let host = o
        .node_address
        .as_deref()
        .unwrap_or("{node}")
        .replace("{node}", &node);
    Ok((job, format!("http://{host}:{port}")))
}

/// Waits until the job runs (its node), saying why it waits when that changes. A job that
/// ends first fails with its state and the end of its output; a stop cancels it.
async fn wait_running(
    job: &mut SlurmJob,
    limit: Duration,
    stop: &CancellationToken,
) -> Result<String, ProviderError> {
    let mut said = String::new();
    let mut failures = 0;
    let mut tick = tokio::time::interval(POLL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => {
                let _ = job.release().await;
                return Err(ProviderError::Interrupted);
            }
        }
        match state(&job.cluster, &job.id).await {
            Ok(JobState::Running { node }) => return Ok(node),
            Ok(JobState::Pending(why)) => {
                if why != said {
                    say(format!("Slurm job {} is waiting ({why})", job.id));
                    said = why;
                }
                failures = 0;
            }
            Ok(ended @ JobState::Ended { .. }) => {
                let tail = job.output_tail(20).await;
                let _ = job.release().await;
                return Err(ProviderError::PodFailed(ended_text(job, &ended, &tail)));
            }
            Err(e) => {
                failures += 1;
                if failures >= 5 {
                    let _ = job.release().await;
                    return Err(ProviderError::PodFailed(format!(
                        "cannot ask Slurm about job {}: {e}",
                        job.id
                    )));
                }
            }
        }
        if job.submitted.elapsed() > limit {
            let _ = job.release().await;
            return Err(ProviderError::PodFailed(format!(
                "Slurm job {} did not start within max_lifetime ({}s, last: {said}); cancelled",
                job.id,
                limit.as_secs()
            )));
        }
    }
}

/// "Slurm job 12 ended FAILED (exit 3:0) …, the end of its output …".
fn ended_text(job: &SlurmJob, s: &JobState, tail: &str) -> String {
    let JobState::Ended {
        state,
        exit,
        reason,
    } = s
    else {
        return String::new();
    };
    let exit = match exit.as_str() {
        "" => String::new(),
        x => format!(", exit code {x}"),
    };
    let reason = match reason.as_str() {
        "" | "None" => String::new(),
        r => format!(", reason {r}"),
    };
    format!(
        "Slurm job {} ended {state}{exit}{reason}; the end of its output ({}):\n{tail}",
        job.id,
        job.remote_output
            .as_deref()
            .map_or_else(|| job.log.display().to_string(), str::to_string)
    )
}

/// Watches the running job; once it is no longer running, says why (for `Handle::gone`).
fn monitor(job: &SlurmJob) -> AbortOnDropHandle<()> {
    let (cluster, id, gone) = (job.cluster.clone(), job.id.clone(), job.gone.clone());
    let (log, remote) = (job.log.clone(), job.remote_output.clone());
    AbortOnDropHandle::new(tokio::spawn(async move {
        let mut tick = tokio::time::interval(POLL * 2);
        loop {
            tick.tick().await;
            let Ok(s) = state(&cluster, &id).await else {
                continue;
            };
            if let JobState::Ended { .. } = &s {
                let tail = output_tail(&cluster, remote.as_deref(), &log, 20).await;
                let JobState::Ended { state, exit, .. } = s else {
                    return;
                };
                let why = format!("Slurm job {id} ended {state} (exit code {exit}); the end of its output:\n{tail}");
                *gone.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
                return;
            }
        }
    }))
}
