//! A small process that outlives this tool and ends what it rented when the tool cannot
//! (`llm-inf-bench watchdog` for RunPod pods, `llm-inf-bench slurm-watchdog` for Slurm jobs).
//! It runs in its own session (a closed terminal does not reach it) and hears the tool over its
//! stdin, one line at a time: `watch ID` (this is ours), `released` (stand down). End of file
//! without `released` means the tool died: the watchdog acts.

use std::io::Write;
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};

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
