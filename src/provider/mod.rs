//! Where the server runs: the built-in simulator, a process on this machine (`local`), or a
//! URL the user already runs (`existing`). Each gives back a base URL and a handle whose
//! `Drop` releases what was started.

pub mod local;
pub mod runpod;

use std::path::Path;

use crate::config::{Experiment, ProviderKind, Resolved, Secret};
use crate::sim;

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("`provider: {0}` is not yet available in this version; use `simulator`, `local` or `existing`")]
    NotYet(&'static str),
    #[error("simulator: {0}")]
    Sim(#[from] sim::SimError),
    #[error("local server: {0}")]
    Local(String),
}

/// What was started, kept alive for the run and released when dropped.
pub enum Handle {
    Simulator(sim::SimHandle),
    Local(local::LocalServer),
    Existing,
}

impl Handle {
    /// `Some(reason)` when the server is known to be gone (a local process that exited).
    pub fn gone(&mut self) -> Option<String> {
        match self {
            Self::Local(l) => l.exited(),
            _ => None,
        }
    }

    /// What to quote when the server does not become ready (the end of its log).
    pub fn diagnostics(&self) -> Option<String> {
        match self {
            Self::Local(l) => Some(format!(
                "last lines of {}:\n{}",
                l.log.display(),
                l.log_tail(20)
            )),
            _ => None,
        }
    }
}

/// A server to benchmark.
pub struct Provisioned {
    pub base_url: String,
    pub api_key: Option<Secret>,
    pub handle: Handle,
}

/// Starts (or finds) the experiment's server. `log` is where a local server's output goes.
pub async fn provision(r: &Resolved, log: &Path) -> Result<Provisioned, ProviderError> {
    let e: &Experiment = &r.experiment;
    match e.infrastructure.provider {
        ProviderKind::Simulator => {
            let s = &e.infrastructure.simulator;
            let mut cfg = sim::SimConfig::new(&s.profile, s.personality, e.model.id.clone())?;
            cfg.speed = s.speed;
            cfg.seed = e.seed;
            cfg.max_model_len = e.model.max_model_len;
            let h = sim::start(cfg, "127.0.0.1:0").await?;
            Ok(Provisioned {
                base_url: h.base_url(),
                api_key: None,
                handle: Handle::Simulator(h),
            })
        }
        ProviderKind::Existing => Ok(Provisioned {
            base_url: e.infrastructure.base_url.clone().unwrap_or_default(),
            api_key: api_key(r),
            handle: Handle::Existing,
        }),
        ProviderKind::Local => {
            let server = local::LocalServer::start(&e.infrastructure.command, &e.model.id, log)?;
            Ok(Provisioned {
                base_url: server.base_url(),
                api_key: api_key(r),
                handle: Handle::Local(server),
            })
        }
        ProviderKind::Runpod => Err(ProviderError::NotYet("runpod")),
    }
}

/// The server's API key: the variable `infrastructure.api_key_env` names, else the user
/// config's `api_keys.openai`.
fn api_key(r: &Resolved) -> Option<Secret> {
    r.experiment
        .infrastructure
        .api_key_env
        .as_deref()
        .and_then(Secret::from_env)
        .or_else(|| r.user.api_keys.openai.clone())
}
