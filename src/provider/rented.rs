//! What this tool rented and may still be running, across providers (`pods list`, `pods
//! terminate`): RunPod pods, Vast.ai instances and Slurm jobs whose name (Vast: label) starts
//! with `llm-inf-bench-`. RunPod and Vast are asked when their key is set (or they are named);
//! Slurm when `squeue` runs here, a login host is given, or it is named. The command line only
//! prints, confirms and sets the exit code.

use super::{runpod, slurm, vast, watchdog, ProviderError};
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

/// The Vast.ai API client of the user's key (`VAST_API_KEY`, else the user config's).
fn vast_api() -> Result<vast::api::VastApi, ProviderError> {
    let user = config::load_user_config().map_err(|e| ProviderError::PodFailed(e.to_string()))?;
    let key = Secret::from_env(vast::api::ENV_API_KEY)
        .or(user.api_keys.vast)
        .ok_or(ProviderError::NoVastKey)?;
    Ok(vast::api::VastApi::new(key, None)?)
}

/// Whether `provider` is to be asked: named, or (nothing named) its key is set.
fn wanted(which: &Which, provider: &str, key_set: bool) -> bool {
    match which.provider.as_deref() {
        Some(p) => p == provider,
        None => key_set,
    }
}

/// Our Vast.ai instances, as rows.
async fn vast_rows() -> Result<Vec<RentedRow>, ProviderError> {
    let api = vast_api()?;
    let ours = vast::our_instances(&api).await?;
    // The listing worked: a marked run with no live instance left is confirmed gone.
    watchdog::clear_gone(watchdog::VAST, |name| {
        ours.iter().any(|i| i.label.as_deref() == Some(name))
    });
    let now = chrono::Utc::now().timestamp() as f64;
    Ok(ours
        .into_iter()
        .map(|i| RentedRow {
            provider: "vast",
            id: i.id.to_string(),
            name: i.label.clone().unwrap_or_default(),
            status: i.actual_status.as_str().to_string(),
            age: i
                .start_date
                .map(|t| super::shared::age_text((now - t).max(0.0) as i64))
                .unwrap_or_else(|| "?".into()),
            price: i
                .dph_total
                .map(|p| format!("{p:.2}"))
                .unwrap_or_else(|| "-".into()),
        })
        .collect())
}

/// Our RunPod pods and Vast.ai instances (when a key is set, or the provider is asked for)
/// and Slurm jobs (when Slurm is here, or asked for). Rentals a watchdog could not confirm
/// gone are said first.
pub async fn list(which: &Which) -> Result<Vec<RentedRow>, ProviderError> {
    let mut rows = Vec::new();
    // Rentals a watchdog could not confirm gone are said first, even when an API is down.
    for u in watchdog::unconfirmed() {
        say(u.warning());
    }
    let user = config::load_user_config().ok();
    let vast_key = Secret::from_env(vast::api::ENV_API_KEY).is_some()
        || user.as_ref().is_some_and(|u| u.api_keys.vast.is_some());
    if wanted(which, "vast", vast_key) {
        rows.extend(vast_rows().await?);
    } else if which.provider.is_none() {
        say("Vast.ai: no API key (VAST_API_KEY or api_keys.vast); its instances are not listed");
    }
    let want_runpod = matches!(which.provider.as_deref(), None | Some("runpod"));
    let key = Secret::from_env(runpod::api::ENV_API_KEY).is_some()
        || user.as_ref().is_some_and(|u| u.api_keys.runpod.is_some());
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
    use runpod::answers::PodStatus;
    let api = runpod_api()?;
    // Pods a watchdog could not confirm gone were said first (`list`), even when the API is
    // down; RunPod's are cleared here once they are gone.
    let ours = runpod::our_pods(&api).await?;
    // The listing worked: a marked pod that is no longer live is confirmed gone.
    watchdog::clear_gone(watchdog::RUNPOD, |name| {
        ours.iter()
            .any(|p| p.name() == name && p.status != PodStatus::Terminated)
    });
    Ok(ours)
}

/// What `pods terminate` ends: `id` where `pods list` found it, else by the provider named,
/// else by its form (a number is a Slurm job, anything else a RunPod pod); or every row with
/// `all_ours`.
pub fn targets(
    which: &Which,
    id: Option<String>,
    all_ours: bool,
    rows: &[RentedRow],
) -> Vec<Target> {
    match id {
        Some(id) if which.provider.as_deref() == Some("vast") => vec![("vast", id)],
        Some(id) if which.provider.is_none() && rows.iter().any(|r| r.id == id) => rows
            .iter()
            .filter(|r| r.id == id)
            .map(|r| (r.provider, id.clone()))
            .collect(),
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
        "vast" => {
            let n: u64 = id
                .parse()
                .map_err(|_| format!("`{id}` is not a Vast.ai instance id (a number)"))?;
            vast_api()
                .map_err(|e| e.to_string())?
                .destroy(n)
                .await
                .map_err(|e| e.to_string())
        }
        _ => runpod_api()
            .map_err(|e| e.to_string())?
            .delete_pod(id)
            .await
            .map_err(|e| e.to_string()),
    }
}
