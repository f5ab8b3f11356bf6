//! Slurm's commands and what they answer (22.05): here, or on a login host over ssh (one
//! quoted command line for the remote shell). `sbatch --parsable` → `ID[;cluster]`;
//! `squeue -h -j ID -o %T|%N|%r` → `RUNNING|node|None`, nothing once the job left the queue;
//! `scontrol show job ID` → `JobState=… ExitCode=a:b …`.

use std::time::{Duration, Instant};

use super::JOB_PREFIX;
use crate::config::SlurmOptions;
use crate::framework;

/// How long one Slurm command may take before it counts as failed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Where Slurm's commands run: here, or on a login host over ssh.
#[derive(Clone, Debug)]
pub struct Cluster {
    pub login: Option<String>,
    pub ssh: Vec<String>,
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
    }
}
