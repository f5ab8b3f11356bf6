//! What this tool rented and may still be running, across providers (`pods list`, `pods
//! terminate`): RunPod pods and Slurm jobs whose name starts with `llm-inf-bench-`. RunPod is
//! asked when a key is set (or it is named); Slurm when `squeue` runs here, a login host is
//! given, or it is named. The command line only prints, confirms and sets the exit code.

use super::{runpod, slurm, ProviderError};
use crate::config::{self, Secret};
use crate::ui::say;

/// Which providers to look at: one of them (`runpod`, `slurm`), or every one set up here; a
/// Slurm login host to reach `squeue` / `scancel` over ssh.
#[derive(Clone, Debug, Default)]
pub struct Which {
    pub provider: Option<String>,
    pub login_host: Option<String>,
}

/// One rented thing of ours, as `pods list` shows it.
#[derive(Clone, Debug)]
pub struct RentedRow {
    pub provider: &'static str,
    pub id: String,
    pub name: String,
    pub status: String,
    pub age: String,
    /// USD per hour, or `-`.
    pub price: String,
}

/// A pod or job to end: its provider and id.
pub type Target = (&'static str, String);

/// The RunPod API client of the user's key (`RUNPOD_API_KEY`, else the user config's).
fn runpod_api() -> Result<runpod::api::RunPodApi, ProviderError> {
    let user = config::load_user_config().map_err(|e| ProviderError::PodFailed(e.to_string()))?;
    let key = Secret::from_env(runpod::api::ENV_API_KEY)
        .or(user.api_keys.runpod)
        .ok_or(ProviderError::NoRunPodKey)?;
    Ok(runpod::api::RunPodApi::new(key, None)?)
}

fn cluster(which: &Which) -> slurm::Cluster {
    slurm::Cluster::of(&config::SlurmOptions {
        login_host: which.login_host.clone(),
        ..Default::default()
    })
}

/// Whether Slurm is there to ask: named, or `squeue` runs here.
fn slurm_here(which: &Which) -> bool {
    match which.provider.as_deref() {
        Some("slurm") => true,
        Some(_) => false,
        None => {
            which.login_host.is_some()
                || std::process::Command::new("squeue")
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success())
        }
    }
}

/// Our RunPod pods (when a key is set, or RunPod is asked for) and Slurm jobs (when Slurm is
/// here, or asked for). Pods a watchdog could not confirm gone are said first.
pub async fn list(which: &Which) -> Result<Vec<RentedRow>, ProviderError> {
    let mut rows = Vec::new();
    let want_runpod = which.provider.as_deref() != Some("slurm");
    let key = Secret::from_env(runpod::api::ENV_API_KEY).is_some()
        || config::load_user_config().is_ok_and(|u| u.api_keys.runpod.is_some());
    if want_runpod && (key || which.provider.is_some()) {
        for p in our_runpod_pods().await? {
            rows.push(RentedRow {
                provider: "runpod",
                id: p.id.clone(),
                name: p.name().to_string(),
                status: p.status.as_str().to_string(),
                age: runpod::age(&p),
                price: format!("{:.2}", p.cost()),
            });
        }
    } else if want_runpod {
        say("RunPod: no API key (RUNPOD_API_KEY or api_keys.runpod); its pods are not listed");
    }
    if slurm_here(which) {
        let jobs = match slurm::our_jobs(&cluster(which)).await {
            Ok(jobs) => jobs,
            // Asked for: a failure is the command's. Found on PATH only: a warning.
            Err(e) if which.provider.is_some() || which.login_host.is_some() => {
                return Err(ProviderError::PodFailed(format!("Slurm: {e}")))
            }
            Err(e) => {
                say(format!("warning: Slurm's squeue is here but did not answer ({e}); its jobs are not listed (--provider slurm to insist)"));
                Vec::new()
            }
        };
        for j in jobs {
            rows.push(RentedRow {
                provider: "slurm",
                id: j.id,
                name: j.name,
                status: j.state,
                age: j.elapsed,
                price: "-".into(),
            });
        }
    }
    Ok(rows)
}

/// Our live RunPod pods; warnings of unconfirmed pods first, cleared for pods now gone.
async fn our_runpod_pods() -> Result<Vec<runpod::answers::Pod>, ProviderError> {
    use runpod::{answers::PodStatus, watchdog};
    let api = runpod_api()?;
    // Pods a watchdog could not confirm gone are said first, even when the API is down.
    let unconfirmed = watchdog::unconfirmed();
    for u in &unconfirmed {
        say(u.warning());
    }
    let ours = runpod::our_pods(&api).await?;
    // The listing worked: a marked pod that is no longer live is confirmed gone.
    for u in &unconfirmed {
        let live = ours
            .iter()
            .any(|p| p.name() == u.pod_name && p.status != PodStatus::Terminated);
        if !live {
            watchdog::clear_unconfirmed(&u.pod_name);
            say(format!(
                "{}: no longer live at RunPod; the warning is cleared",
                u.pod_name
            ));
        }
    }
    Ok(ours)
}

/// What `pods terminate` ends: `id` (a number is a Slurm job, anything else a RunPod pod,
/// unless the provider is named), or every row with `all_ours`.
pub fn targets(
    which: &Which,
    id: Option<String>,
    all_ours: bool,
    rows: &[RentedRow],
) -> Vec<Target> {
    match id {
        Some(id) => {
            let slurm = which.provider.as_deref() == Some("slurm")
                || (which.provider.is_none()
                    && !id.is_empty()
                    && id.chars().all(|c| c.is_ascii_digit() || c == '_'));
            vec![(if slurm { "slurm" } else { "runpod" }, id)]
        }
        None if all_ours => rows.iter().map(|r| (r.provider, r.id.clone())).collect(),
        None => Vec::new(),
    }
}

/// Ends one pod or job.
pub async fn end(which: &Which, (provider, id): &Target) -> Result<(), String> {
    match *provider {
        "slurm" => cluster(which).cancel(id).await,
        _ => runpod_api()
            .map_err(|e| e.to_string())?
            .delete_pod(id)
            .await
            .map_err(|e| e.to_string()),
    }
}
