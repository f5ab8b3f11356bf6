//! `provider: local`: a server process started on this machine (`vllm serve …`,
//! `python -m sglang.launch_server …`, `llama-server …`, or `llm-inf-bench serve-sim`), in its
//! own process group, its output captured to a log file, the whole group stopped on every way
//! out (the guard's `Drop`).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::ProviderError;

/// A running local server. Dropping it stops the process group (SIGTERM, then SIGKILL after
/// a grace period).
pub struct LocalServer {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

/// `{port}` and `{model}` in the command line.
pub fn substitute(command: &[String], port: u16, model: &str) -> Vec<String> {
    command
        .iter()
        .map(|a| {
            a.replace("{port}", &port.to_string())
                .replace("{model}", model)
        })
        .collect()
}

/// A port nobody listens on now (the server binds it right after).
fn free_port() -> Result<u16, ProviderError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| ProviderError::Local(format!("no free port: {e}")))?;
    Ok(l.local_addr()
        .map_err(|e| ProviderError::Local(e.to_string()))?
        .port())
}

/// What to start: the argument vector for a port, and the environment added to ours.
pub struct Launch<'a> {
    pub argv: Box<dyn FnOnce(u16) -> Vec<String> + 'a>,
    pub env: Vec<(String, String)>,
}

impl<'a> Launch<'a> {
    /// `command` with `{port}` and `{model}` substituted.
    pub fn command(command: &'a [String], model: &'a str) -> Self {
        Self {
            argv: Box::new(move |port| substitute(command, port, model)),
            env: Vec::new(),
        }
    }
}

impl LocalServer {
    /// Starts `launch` on a free port, output to `log` (mode 0600).
    pub fn start(launch: Launch<'_>, log: &Path) -> Result<Self, ProviderError> {
        let port = free_port()?;
        let argv = (launch.argv)(port);
        let Some((program, args)) = argv.split_first() else {
            return Err(ProviderError::Local(
                "`infrastructure.command` is empty".into(),
            ));
        };
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| ProviderError::Local(format!("{}: {e}", dir.display())))?;
        }
        let out = crate::files::private_log(log, false)
            .map_err(|e| ProviderError::Local(format!("{}: {e}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(|e| ProviderError::Local(e.to_string()))?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            // Its own process group, so stopping it also stops the workers it forks.
            cmd.process_group(0);
        }
        let child = cmd.spawn().map_err(|e| {
            let hint = match e.kind() {
                std::io::ErrorKind::NotFound => {
                    " (not found: name the program's path in `framework.executable` or `infrastructure.command`)"
                }
                _ => "",
            };
            ProviderError::Local(format!("cannot start `{}`: {e}{hint}", argv.join(" ")))
        })?;
        Ok(Self {
            child,
            port,
            log: log.to_path_buf(),
        })
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `Some(reason)` once the process has exited (with the end of its log).
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!(
                "the server process exited ({status}); last lines of {}:\n{}",
                self.log.display(),
                tail(&self.log, 20)
            )),
            _ => None,
        }
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }

    fn signal(&self, sig: i32) {
        #[cfg(unix)]
        // SAFETY: killpg only sends a signal; the group id is our child's own (process_group(0)).
        unsafe {
            libc::killpg(self.child.id() as libc::pid_t, sig);
        }
        #[cfg(not(unix))]
        let _ = sig;
    }

    /// Stops the process group: SIGTERM, up to `grace` to exit, then SIGKILL.
    pub fn stop(&mut self, grace: Duration) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        #[cfg(unix)]
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                #[cfg(unix)]
                self.signal(libc::SIGKILL); // stragglers in the group
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        #[cfg(unix)]
        self.signal(libc::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}

/// The last `n` lines of a file (empty when it cannot be read).
pub fn tail(path: &Path, n: usize) -> String {
    let Ok(f) = std::fs::File::open(path) else {
        return String::new();
    };
    let mut last: VecDeque<String> = VecDeque::with_capacity(n);
    for line in BufReader::new(f).lines().map_while(Result::ok) {
        if last.len() == n {
            last.pop_front();
        }
        last.push_back(line);
    }
    Vec::from(last).join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_port_and_model() {
        let c = substitute(
            &["serve".into(), "{model}".into(), "--port={port}".into()],
            8123,
            "m/x",
        );
        assert_eq!(c, ["serve", "m/x", "--port=8123"]);
    }

    #[cfg(unix)]
    #[test]
    fn stop_ends_the_whole_process_group_and_the_log_keeps_output() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("server.log");
        // A shell that forks a grandchild; both must die with the group.
        let cmd: Vec<String> = [
            "sh",
            "-c",
            "echo started on {port}; sleep 600 & echo child $!; wait",
        ]
        .map(String::from)
        .to_vec();
        let mut s = LocalServer::start(Launch::command(&cmd, "m"), &log).unwrap();
        let start = Instant::now();
        while !tail(&log, 5).contains("child") && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let text = tail(&log, 5);
        assert!(text.contains(&format!("started on {}", s.port)), "{text}");
        let grandchild: i32 = text
            .lines()
            .find_map(|l| l.strip_prefix("child "))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(s.exited().is_none());
        s.stop(Duration::from_secs(5));
        assert!(s.exited().is_some());
        // Dead, or a zombie waiting for whoever inherited it to reap it.
        let alive = |pid: i32| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| {
                    !s.rsplit(')')
                        .next()
                        .unwrap_or("")
                        .trim_start()
                        .starts_with('Z')
                })
                .unwrap_or(false)
        };
        let start = Instant::now();
        while alive(grandchild) && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            !alive(grandchild),
            "grandchild {grandchild} survived its group"
        );
    }
}
