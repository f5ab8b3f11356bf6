//! Vast.ai's part of the watchdog (`llm-inf-bench vast-watchdog`, hidden; the rest is
//! `provider::watchdog`): the run's instances are found by their label in `GET
//! /api/v1/instances/` and destroyed. It is started before the first offer is rented, so a
//! create whose answer never arrived is still found by its label. The key reaches it through
//! its environment, never its command line.

use std::path::Path;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::answers::InstanceStatus;
use super::api::{VastApi, ENV_API_KEY, ENV_API_ROOT};
use crate::config::Secret;
use crate::provider::watchdog::{self, log, Sweep, Watchdog};

/// Starts the watchdog for the instances that will be labelled `label`.
pub fn spawn(
    key: &Secret,
    api_root: &str,
    label: &str,
    max_lifetime: Duration,
    log: &Path,
) -> std::io::Result<Watchdog> {
    let args = [
        "vast-watchdog".to_string(),
        "--label".into(),
        label.into(),
        "--max-lifetime-secs".into(),
        max_lifetime.as_secs().max(1).to_string(),
    ];
    let env = [(ENV_API_KEY, key.expose()), (ENV_API_ROOT, api_root)];
    Watchdog::spawn(&args, &env, log)
}

struct Instances(VastApi);

impl Sweep for Instances {
    fn provider(&self) -> &'static str {
        crate::provider::watchdog::VAST
    }

    fn noun(&self) -> &'static str {
        "instance"
    }

    fn live<'a>(&'a self, label: &'a str) -> BoxFuture<'a, Result<Vec<String>, String>> {
        Box::pin(async move {
            let all = self
                .0
                .list_labelled(label)
                .await
                .map_err(|e| e.to_string())?;
            Ok(all
                .into_iter()
                .filter(|i| {
                    i.label.as_deref() == Some(label)
                        && i.actual_status != InstanceStatus::Destroyed
                })
                .map(|i| i.id.to_string())
                .collect())
        })
    }

    fn end<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let n: u64 = id
                .parse()
                .map_err(|_| format!("`{id}` is not a Vast.ai instance id"))?;
            self.0.destroy(n).await.map_err(|e| e.to_string())
        })
    }
}

/// The watchdog process itself. Returns its exit code.
pub fn serve(label: &str, max_lifetime: Duration) -> i32 {
    let Some(key) = Secret::from_env(ENV_API_KEY) else {
        log("no API key in the environment; cannot guard the instance");
        return 2;
    };
    match VastApi::new(key, None) {
        Ok(a) => watchdog::serve(&Instances(a.with_retries(0)), label, max_lifetime),
        Err(e) => {
            log(&format!("{e}"));
            2
        }
    }
}
