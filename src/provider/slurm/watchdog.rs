//! The Slurm watchdog: a detached process (`llm-inf-bench slurm-watchdog`) that cancels the
//! run's jobs when this tool dies or `max_lifetime` passes — by id, and by the run's job name
//! (which also catches a job whose `sbatch` answer never arrived). The job's own `--time` is
//! the cluster-side switch beneath it.

use std::path::Path;
use std::time::{Duration, Instant};

use super::cluster::Cluster;
use crate::config::SlurmOptions;
use crate::provider::watchdog::Watchdog;

/// Starts the watchdog that cancels the run's jobs (by id, and by name) if this tool dies.
pub fn spawn(c: &Cluster, name: &str, lifetime: Duration, log: &Path) -> std::io::Result<Watchdog> {
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
pub fn serve(name: &str, login: Option<String>, ssh: Vec<String>, lifetime: Duration) -> i32 {
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
