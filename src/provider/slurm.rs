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

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use super::watchdog::Watchdog;
use super::{local, sibling, ProviderError};
use crate::config::{ContainerRuntime, Experiment, GpuFlag, Resolved, SlurmOptions};
use crate::framework;
use crate::ui::say;

/// Every job this tool submits is named with this prefix, so `pods list` finds ours.
pub const JOB_PREFIX: &str = "llm-inf-bench-";

/// How often the job's state is asked for while it waits, and while it serves.
const POLL: Duration = Duration::from_secs(1);

/// How long one Slurm command may take before it counts as failed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Where Slurm's commands run: here, or on a login host over ssh.
#[derive(Clone, Debug)]
pub struct Cluster {
    login: Option<String>,
    ssh: Vec<String>,
}

impl Cluster {
    pub fn of(o: &SlurmOptions) -> Self {
        let ssh = match o.ssh.is_empty() {
            true => vec!["ssh".into(), "-o".into(), "BatchMode=yes".into()],
            false => o.ssh.clone(),
        };
        Self {
            login: o.login_host.clone(),
            ssh,
        }
    }

    /// Over ssh, the remote shell gets one quoted command line.
    fn argv(&self, program: &str, args: &[String]) -> Vec<String> {
        let mut line = vec![program.to_string()];
        line.extend(args.iter().cloned());
        match &self.login {
            None => line,
            Some(host) => {
                let mut v = self.ssh.clone();
                v.push(host.clone());
                v.push(framework::join_args(&line));
                v
            }
        }
    }

    /// Runs `program args` (with `stdin`), returning its stdout; the error quotes its stderr.
    pub async fn run(
        &self,
        program: &str,
        args: &[String],
        stdin: Option<&str>,
        env: &[(&str, String)],
    ) -> Result<String, String> {
        use tokio::io::AsyncWriteExt;
        let argv = self.argv(program, args);
        let mut cmd = tokio::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(match stdin {
                Some(_) => std::process::Stdio::piped(),
                None => std::process::Stdio::null(),
            })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let shown = framework::join_args(&argv);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run `{shown}`: {e}"))?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes())
                .await
                .map_err(|e| format!("`{shown}`: writing its input: {e}"))?;
        }
        let out = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| format!("`{shown}` took more than {}s", COMMAND_TIMEOUT.as_secs()))?
            .map_err(|e| format!("`{shown}`: {e}"))?;
        match out.status.success() {
            true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
            false => Err(format!(
                "`{shown}` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        }
    }

    /// The same, blocking (for `Drop`), bounded by [`COMMAND_TIMEOUT`].
    pub fn run_blocking(&self, program: &str, args: &[String]) -> Result<String, String> {
        let argv = self.argv(program, args);
        let shown = framework::join_args(&argv);
        let mut child = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run `{shown}`: {e}"))?;
        let start = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(s)) if s.success() => {
                    let mut out = String::new();
                    if let Some(mut o) = child.stdout.take() {
                        let _ = std::io::Read::read_to_string(&mut o, &mut out);
                    }
                    return Ok(out);
                }
                Ok(Some(s)) => return Err(format!("`{shown}` failed ({s})")),
                Ok(None) if start.elapsed() > COMMAND_TIMEOUT => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("`{shown}` took too long"));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => return Err(format!("`{shown}`: {e}")),
            }
        }
    }

    /// Cancels job `id` (a job already gone is not an error to Slurm).
    pub async fn cancel(&self, id: &str) -> Result<(), String> {
        self.run("scancel", &[id.to_string()], None, &[])
            .await
            .map(drop)
    }
}

/// Where a job stands.
#[derive(Clone, Debug, PartialEq)]
pub enum JobState {
    /// Waiting for resources (Slurm's reason), or being set up.
    Pending(String),
    Running {
        node: String,
    },
    /// Left the queue: `COMPLETED`, `FAILED`, `CANCELLED`, `TIMEOUT`, …, with its exit code.
    Ended {
        state: String,
        exit: String,
        reason: String,
    },
}

/// One `squeue -h -o %T|%N|%r` line; `None` for an empty answer (the job left the queue).
pub fn parse_squeue(line: &str) -> Option<JobState> {
    let line = line.lines().find(|l| !l.trim().is_empty())?.trim();
    let mut f = line.split('|');
    let state = f.next().unwrap_or_default().trim().to_string();
    let node = f.next().unwrap_or_default().trim().to_string();
    let reason = f.next().unwrap_or_default().trim().to_string();
    Some(match state.as_str() {
        "RUNNING" if !node.is_empty() => JobState::Running {
            // A multi-node list (`gpu[01-02]`) is not ours to expand: the server runs on one.
            node: node.split(',').next().unwrap_or(&node).to_string(),
        },
        "PENDING" | "CONFIGURING" | "RUNNING" | "REQUEUED" | "RESIZING" | "SUSPENDED" => {
            JobState::Pending(if reason.is_empty() || reason == "None" {
                state
            } else {
                format!("{state}: {reason}")
            })
        }
        _ => JobState::Ended {
            state,
            exit: String::new(),
            reason,
        },
    })
}

/// `scontrol show job ID`'s `JobState`, `ExitCode` and `Reason`.
pub fn parse_scontrol(text: &str) -> JobState {
    let field = |k: &str| {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .unwrap_or_default()
            .to_string()
    };
    JobState::Ended {
        state: match field("JobState=") {
            s if s.is_empty() => "UNKNOWN".into(),
            s => s,
        },
        exit: field("ExitCode="),
        reason: field("Reason="),
    }
}

/// Where job `id` stands now.
pub async fn state(c: &Cluster, id: &str) -> Result<JobState, String> {
    let args: Vec<String> = ["-h", "-j", id, "-o", "%T|%N|%r"].map(String::from).into();
    // squeue errors for a job it no longer knows on some versions: that is "left the queue".
    let queued = c.run("squeue", &args, None, &[]).await;
    if let Some(s) = queued.as_deref().ok().and_then(parse_squeue) {
        return Ok(s);
    }
    match c
        .run(
            "scontrol",
            &["show".into(), "job".into(), id.into()],
            None,
            &[],
        )
        .await
    {
        Ok(text) => Ok(parse_scontrol(&text)),
        Err(e) => match queued {
            // Neither knows it: gone long enough to be forgotten.
            Ok(_) => Ok(JobState::Ended {
                state: "UNKNOWN".into(),
                exit: String::new(),
                reason: e,
            }),
            Err(q) => Err(q),
        },
    }
}

/// A job of ours in the queue, as `pods list` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct OurJob {
    pub id: String,
    pub name: String,
    pub state: String,
    pub node: String,
    /// Slurm's elapsed time (`1:02:03`).
    pub elapsed: String,
}

/// This user's jobs whose name starts with [`JOB_PREFIX`].
pub async fn our_jobs(c: &Cluster) -> Result<Vec<OurJob>, String> {
    let args: Vec<String> = ["--me", "-h", "-o", "%i|%j|%T|%N|%M"]
        .map(String::from)
        .into();
    let out = c.run("squeue", &args, None, &[]).await?;
    Ok(parse_our_jobs(&out))
}

fn parse_our_jobs(out: &str) -> Vec<OurJob> {
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().split('|').collect();
            let [id, name, state, node, elapsed] = f[..] else {
                return None;
            };
            name.starts_with(JOB_PREFIX).then(|| OurJob {
                id: id.into(),
                name: name.into(),
                state: state.into(),
                node: node.into(),
                elapsed: elapsed.into(),
            })
        })
        .collect()
}

/// `--time` from `max_lifetime`: `D-HH:MM:SS`, at least a minute (Slurm counts minutes).
pub fn time_limit(d: Duration) -> String {
    let s = d.as_secs().max(60);
    format!(
        "{}-{:02}:{:02}:{:02}",
        s / 86_400,
        s % 86_400 / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// The server's port from the job's name: stable for a run, different between deployments.
pub fn port_for(name: &str) -> u16 {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    20_000 + (h % 20_000) as u16
}

/// The batch script: `#SBATCH` lines, a first line of output that says where the server
/// listens, the setup lines, then the server. No secret is written here: the job inherits
/// the submitting environment (`sbatch`'s default `--export=ALL`).
pub fn job_script(e: &Experiment, name: &str, port: u16, output: &str) -> String {
    let o = &e.infrastructure.slurm;
    let mut s = String::from("#!/bin/bash\n");
    let mut sb = |line: String| s.push_str(&format!("#SBATCH {line}\n"));
    sb(format!("--job-name={name}"));
    sb(format!("--output={output}"));
    sb(format!(
        "--time={}",
        time_limit(e.infrastructure.max_lifetime.as_duration())
    ));
    sb("--nodes=1".into());
    if let Some(p) = &o.partition {
        sb(format!("--partition={p}"));
    }
    if let Some(a) = &o.account {
        sb(format!("--account={a}"));
    }
    let n = e.infrastructure.gpu_count;
    match o.gpu_flag {
        GpuFlag::Gres => sb(format!("--gres=gpu:{n}")),
        GpuFlag::Gpus => sb(format!("--gpus={n}")),
        GpuFlag::None => {}
    }
    if o.container == ContainerRuntime::Pyxis {
        sb(format!("--container-image={}", framework::image(e)));
    }
    for line in &o.sbatch {
        sb(line.trim().to_string());
    }
    s.push_str("set -e\n");
    s.push_str(&format!(
        "echo \"llm-inf-bench: job $SLURM_JOB_ID on $(hostname) serves on port {port}\"\n"
    ));
    for (k, v) in &e.framework.env {
        s.push_str(&format!(
            "export {k}={}\n",
            framework::join_args(std::slice::from_ref(v))
        ));
    }
    for line in &o.setup {
        s.push_str(line);
        s.push('\n');
    }
    let command = server_command(e, port);
    let run = match o.container {
        ContainerRuntime::Apptainer => {
            let mut a = vec!["apptainer".into(), "exec".into(), "--nv".into()];
            a.push(format!("docker://{}", framework::image(e)));
            a.extend(command);
            a
        }
        _ => command,
    };
    s.push_str(&format!("exec {}\n", framework::join_args(&run)));
    s
}

/// `slurm.command` with `{port}` and `{model}`, else the framework's server on `port`.
fn server_command(e: &Experiment, port: u16) -> Vec<String> {
    let o = &e.infrastructure.slurm;
    if !o.command.is_empty() {
        return local::substitute(&o.command, port, &e.model.id);
    }
    let mut on_port = e.clone();
    on_port.framework.port = port;
    framework::server_command(&on_port)
}

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
        if let Some(remote) = &self.remote_output {
            let args = ["-n".to_string(), lines.to_string(), remote.clone()];
            if let Ok(text) = self.cluster.run("tail", &args, None, &[]).await {
                let _ = std::fs::write(&self.log, text);
            }
        }
        local::tail(&self.log, lines)
    }
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

/// Submits the experiment's server as a job and waits until it runs; returns the job and the
/// server's base URL. `log` is where the job's output goes (its script is kept beside it).
pub async fn provision(
    r: &Resolved,
    run_id: &str,
    log: &Path,
    stop: &CancellationToken,
) -> Result<(SlurmJob, String), ProviderError> {
    let e = &r.experiment;
    let o = &e.infrastructure.slurm;
    let cluster = Cluster::of(o);
    let name = format!("{JOB_PREFIX}{run_id}");
    let port = o.port.unwrap_or_else(|| port_for(&name));
    let fail = |m: String| ProviderError::PodFailed(m);
    if let Some(dir) = log.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|err| fail(format!("{}: {err}", dir.display())))?;
    }
    let log = std::path::absolute(log).unwrap_or_else(|_| log.to_path_buf());
    let remote_output = o.login_host.as_ref().map(|_| format!("{name}.out"));
    let output = remote_output
        .clone()
        .unwrap_or_else(|| log.display().to_string());
    let script = job_script(e, &name, port, &output);
    let kept = sibling(&log, "sbatch");
    std::fs::write(&kept, &script).map_err(|err| fail(format!("{}: {err}", kept.display())))?;
    let wlog = sibling(&log, "watchdog.log");
    let mut watchdog = spawn_watchdog(
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
    // The Hugging Face token reaches a local job through sbatch's environment, never the script.
    let mut env = Vec::new();
    if std::env::var_os("HF_TOKEN").is_none() {
        if let Some(t) = &r.user.api_keys.huggingface {
            env.push(("HF_TOKEN", t.expose().to_string()));
        }
    }
    let answer = cluster
        .run("sbatch", &["--parsable".into()], Some(&script), &env)
        .await
        .map_err(|m| {
            fail(format!(
                "sbatch refused the job: {m} (the script: {})",
                kept.display()
            ))
        })?;
    let id = answer
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    if id.is_empty() || id.contains(char::is_whitespace) {
        // Whatever it made is named: the watchdog cancels by name when this process exits.
        return Err(fail(format!(
            "sbatch answered `{}`, not a job id",
            answer.trim()
        )));
    }
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
                if let Some(remote) = &remote {
                    let args = ["-n".to_string(), "20".into(), remote.clone()];
                    if let Ok(text) = cluster.run("tail", &args, None, &[]).await {
                        let _ = std::fs::write(&log, text);
                    }
                }
                let tail = local::tail(&log, 20);
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

/// Starts the watchdog that cancels the run's jobs (by id, and by name) if this tool dies.
fn spawn_watchdog(
    c: &Cluster,
    name: &str,
    lifetime: Duration,
    log: &Path,
) -> std::io::Result<Watchdog> {
    let mut args = vec![
        "slurm-watchdog".to_string(),
        "--job-name".into(),
        name.into(),
        "--max-lifetime-secs".into(),
        lifetime.as_secs().max(1).to_string(),
    ];
    if let Some(h) = &c.login {
        args.extend(["--login-host".into(), h.clone()]);
        for a in &c.ssh {
            args.extend(["--ssh".into(), a.clone()]);
        }
    }
    Watchdog::spawn(&args, &[], log)
}

/// The watchdog process (`llm-inf-bench slurm-watchdog`, hidden): when its stdin ends without
/// `released`, or `max_lifetime` passes, it cancels every job it was told about and every job
/// of ours with the run's name. Returns its exit code.
pub fn serve_watchdog(
    name: &str,
    login: Option<String>,
    ssh: Vec<String>,
    lifetime: Duration,
) -> i32 {
    use std::io::BufRead;
    let log = |m: &str| eprintln!("{} slurm-watchdog: {m}", chrono::Utc::now().to_rfc3339());
    let cluster = Cluster::of(&SlurmOptions {
        login_host: login,
        ssh,
        ..Default::default()
    });
    log(&format!(
        "guarding jobs named {name} (max_lifetime {}s)",
        lifetime.as_secs()
    ));
    let (tx, rx) = std::sync::mpsc::channel::<Option<String>>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(l) = line else { break };
            if tx.send(Some(l)).is_err() {
                return;
            }
        }
        let _ = tx.send(None);
    });
    let deadline = Instant::now() + lifetime;
    let mut ids: Vec<String> = Vec::new();
    let why = loop {
        let wait = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(Some(l)) if l.trim() == "released" => {
                log("the tool released its job; standing down");
                return 0;
            }
            Ok(Some(l)) => {
                if let Some(id) = l.strip_prefix("watch ") {
                    log(&format!("watching job {id}"));
                    ids.push(id.trim().to_string());
                }
            }
            Ok(None) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                break "the tool exited without cancelling its job"
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => break "max_lifetime reached",
        }
    };
    log(why);
    // By id, and by name (a job whose sbatch answer never arrived); a few times, in case.
    let args: Vec<String> = vec![format!("--name={name}")];
    let mut ok = false;
    for wait in [0, 2, 5, 10] {
        std::thread::sleep(Duration::from_secs(wait));
        let by_id = ids.iter().all(|id| {
            cluster
                .run_blocking("scancel", std::slice::from_ref(id))
                .is_ok()
        });
        let by_name = cluster.run_blocking("scancel", &args).is_ok();
        if by_id && by_name {
            ok = true;
            log("cancelled every job of the run");
            break;
        }
        log("scancel failed; trying again");
    }
    match ok {
        true => 0,
        false => {
            log("could not cancel the run's jobs: the cluster ends them at their time limit");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_and_scontrol_answers_read_as_states() {
        assert_eq!(
            parse_squeue("PENDING||None\n"),
            Some(JobState::Pending("PENDING".into()))
        );
        assert_eq!(
            parse_squeue("PENDING||Resources"),
            Some(JobState::Pending("PENDING: Resources".into()))
        );
        assert_eq!(
            parse_squeue("RUNNING|vm|None"),
            Some(JobState::Running { node: "vm".into() })
        );
        assert_eq!(parse_squeue(""), None);
        let text = "JobId=1 JobName=x\n   JobState=FAILED Reason=NonZeroExitCode Dependency=(null)\n   Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=3:0\n";
        assert_eq!(
            parse_scontrol(text),
            JobState::Ended {
                state: "FAILED".into(),
                exit: "3:0".into(),
                reason: "NonZeroExitCode".into()
            }
        );
    }

    #[test]
    fn the_script_asks_for_what_the_experiment_says_and_holds_no_secret() {
        let mut e = Experiment::default();
        e.model.id = "org/m".into();
        e.infrastructure.gpu_count = 2;
        e.infrastructure.max_lifetime = crate::config::HumanDuration::from_secs(90 * 60 + 5);
        e.infrastructure.slurm.partition = Some("gpu".into());
        e.infrastructure.slurm.account = Some("lab".into());
        e.infrastructure.slurm.container = ContainerRuntime::Pyxis;
        e.infrastructure.slurm.sbatch = vec!["--mem=64G".into()];
        e.framework
            .env
            .insert("VLLM_LOGGING_LEVEL".into(), "DEBUG".into());
        let s = job_script(&e, "llm-inf-bench-x", 23456, "/r/x.server.log");
        for line in [
            "#SBATCH --job-name=llm-inf-bench-x",
            "#SBATCH --output=/r/x.server.log",
            "#SBATCH --time=0-01:30:05",
            "#SBATCH --partition=gpu",
            "#SBATCH --account=lab",
            "#SBATCH --gres=gpu:2",
            "#SBATCH --container-image=vllm/vllm-openai:v0.11.0",
            "#SBATCH --mem=64G",
            "export VLLM_LOGGING_LEVEL=DEBUG",
            "exec python3 -m vllm.entrypoints.openai.api_server --model org/m --host 0.0.0.0 --port 23456 --tensor-parallel-size 2",
        ] {
            assert!(s.contains(line), "{line}\n{s}");
        }
        assert!(!s.to_lowercase().contains("hf_token"));
        e.infrastructure.slurm.gpu_flag = GpuFlag::Gpus;
        e.infrastructure.slurm.container = ContainerRuntime::Apptainer;
        e.infrastructure.slurm.command =
            vec!["serve".into(), "--port={port}".into(), "{model}".into()];
        let s = job_script(&e, "n", 1, "o");
        assert!(s.contains("#SBATCH --gpus=2"), "{s}");
        assert!(
            s.contains(
                "exec apptainer exec --nv docker://vllm/vllm-openai:v0.11.0 serve --port=1 org/m"
            ),
            "{s}"
        );
    }

    #[test]
    fn only_our_jobs_are_listed() {
        let out = "7|llm-inf-bench-x-20261202-010203|RUNNING|vm|0:05\n8|train-llama|RUNNING|vm|3:00\nbad line\n";
        let jobs = parse_our_jobs(out);
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].id, "7");
        assert_eq!(jobs[0].state, "RUNNING");
    }

    #[test]
    fn over_ssh_the_command_is_one_quoted_line_for_the_login_host() {
        let c = Cluster::of(&SlurmOptions {
            login_host: Some("login1".into()),
            ..Default::default()
        });
        let v = c.argv("scancel", &["--name=a b".into()]);
        assert_eq!(
            v,
            [
                "ssh",
                "-o",
                "BatchMode=yes",
                "login1",
                "scancel '--name=a b'"
            ]
        );
        assert!((20_000..40_000).contains(&port_for("llm-inf-bench-x")));
        assert_ne!(port_for("llm-inf-bench-a"), port_for("llm-inf-bench-b"));
    }
}
