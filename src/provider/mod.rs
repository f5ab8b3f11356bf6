//! Where the server runs: the built-in simulator, a process on this machine (`local`), or a
//! URL the user already runs (`existing`). Each gives back a base URL and a handle whose
//! `Drop` releases what was started.

pub mod local;
pub mod rental;
pub mod rented;
pub mod runpod;
pub mod shared;
pub mod slurm;
pub mod vast;
pub mod watchdog;

use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use rental::Rental;

use crate::config::{Experiment, Resolved, Secret, Site};
use crate::sim;

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("simulator: {0}")]
    Sim(#[from] sim::SimError),
    #[error("local server: {0}")]
    Local(String),
    #[error(transparent)]
    RunPod(#[from] runpod::api::ApiError),
    #[error("no RunPod API key: set RUNPOD_API_KEY, or `api_keys: {{runpod: ...}}` in the user config (`llm-inf-bench config show` names its path)")]
    NoRunPodKey,
    #[error("building the RunPod request: {0}")]
    RunPodRequest(String),
    #[error("RunPod has no capacity for any GPU type the experiment lists:\n  {}", .0.join("\n  "))]
    NoCapacity(Vec<String>),
    #[error(transparent)]
    Vast(#[from] vast::api::ApiError),
    #[error("no Vast.ai API key: set VAST_API_KEY, or `api_keys: {{vast: ...}}` in the user config (`llm-inf-bench config show` names its path)")]
    NoVastKey,
    #[error("Vast.ai has no offer the experiment can rent:\n  {}\n  (widen `infrastructure.vast` — max_price_per_hour_usd, countries, min_reliability — or add `fallback_gpu_types`)", .0.join("\n  "))]
    NoOffer(Vec<String>),
    #[error("{0}")]
    PodFailed(String),
    #[error("interrupted while provisioning; nothing was measured")]
    Interrupted,
}

/// What a run is expected to cost, shown before anything is rented.
#[derive(Clone, Debug)]
pub struct CostEstimate {
    /// USD per hour for the whole server (all its GPUs); `None` when free (no rented hardware).
    pub price_per_hour_usd: Option<f64>,
    /// Where the price came from.
    pub price_source: String,
    /// Provisioning + model load + warm-up + workload + margin.
    pub hours: f64,
}

impl CostEstimate {
    pub fn usd(&self) -> f64 {
        self.price_per_hour_usd.unwrap_or(0.0) * self.hours
    }
}

/// Each provider's estimate for `workload` of measured time: RunPod prices its pod (see
/// `runpod::cost`); the simulator, a local process and an existing server cost nothing here.
pub async fn estimate_cost(
    r: &Resolved,
    workload: Duration,
) -> Result<CostEstimate, ProviderError> {
    let mut one = estimate_one(r, workload).await?;
    let n = r.experiment.infrastructure.replicas;
    if n > 1 && !matches!(r.experiment.infrastructure.site(), Site::Existing(_)) {
        if let Some(p) = one.price_per_hour_usd.as_mut() {
            *p *= f64::from(n);
            one.price_source = format!("{} × {n} replicas", one.price_source);
        }
    }
    Ok(one)
}

/// One server's estimate.
async fn estimate_one(r: &Resolved, workload: Duration) -> Result<CostEstimate, ProviderError> {
    let inf = &r.experiment.infrastructure;
    match inf.site() {
        Site::RunPod(_) => runpod::cost::estimate(r, workload).await,
        Site::Vast(_) => vast::cost::estimate(r, workload).await,
        Site::Slurm(o) => {
            let price = o.price_per_gpu_hour_usd.map(|p| p * inf.gpu_count as f64);
            // The job's time limit is what the cluster may bill at most; the estimate is the
            // workload, the model load and a margin, like a pod's.
            let startup = inf
                .health_timeout
                .as_duration()
                .min(Duration::from_secs(600));
            Ok(CostEstimate {
                price_per_hour_usd: price,
                price_source: match price {
                    Some(_) => format!("slurm.price_per_gpu_hour_usd × {} GPU(s)", inf.gpu_count),
                    None => "no price per GPU-hour given".into(),
                },
                hours: (workload + startup).as_secs_f64() * 1.2 / 3600.0,
            })
        }
        Site::Simulator(_) | Site::Local { .. } | Site::Existing(_) => Ok(CostEstimate {
            price_per_hour_usd: None,
            price_source: "no rented hardware".into(),
            hours: workload.as_secs_f64() / 3600.0,
        }),
    }
}

/// What was started, kept alive for the run and released when dropped.
pub enum Handle {
    Simulator(sim::SimHandle),
    Local(local::LocalServer),
    /// A rented server: a RunPod pod, a Slurm job.
    Rented(Box<dyn Rental>),
    Existing,
    /// `infrastructure.replicas` servers, each released with the others.
    Replicas(Vec<Handle>),
}

impl Handle {
    fn rented(&self) -> Option<&dyn Rental> {
        match self {
            Self::Rented(r) => Some(r.as_ref()),
            _ => None,
        }
    }

    /// Releases what was started, now (a pod is terminated and the answer awaited); dropping
    /// the handle does the same.
    pub async fn release(self) {
        match self {
            Self::Rented(mut r) => r.release().await,
            // All at once: N pods are N terminations in flight, not N in a row.
            Self::Replicas(hs) => {
                futures_util::future::join_all(hs.into_iter().map(|h| Box::pin(h.release()))).await;
            }
            other => drop(other),
        }
    }

    /// The pod id (RunPod) or job id (Slurm): what is rented.
    pub fn pod_id(&self) -> Option<String> {
        match self {
            Self::Replicas(hs) => {
                let ids: Vec<String> = hs.iter().filter_map(Handle::pod_id).collect();
                (!ids.is_empty()).then(|| ids.join(", "))
            }
            h => h.rented().map(|r| r.id().to_string()),
        }
    }

    /// What the rented thing is called: `pod`, `Slurm job`.
    pub fn noun(&self) -> &'static str {
        match self {
            Self::Replicas(hs) => hs.first().map_or("pod", Handle::noun),
            h => h.rented().map_or("pod", |r| r.noun()),
        }
    }

    /// A task reading the server's GPU gauges, where the provider reports them (RunPod).
    pub fn gpu_poll(
        &self,
        every: Duration,
        tx: tokio::sync::mpsc::UnboundedSender<crate::metrics::event::Event>,
    ) -> Option<futures_util::future::BoxFuture<'static, ()>> {
        match self {
            // The first replica's GPUs stand for all (one poller per point).
            Self::Replicas(hs) => hs.first().and_then(|h| h.gpu_poll(every, tx)),
            h => h.rented().and_then(|r| r.gpu_poll(every, tx)),
        }
    }

    /// GPU type and USD per hour, for pod providers (and Slurm jobs with a price).
    pub fn price(&self) -> Option<(String, f64)> {
        match self {
            // Every replica's price: what the run costs per hour (the GPU type is theirs, one
            // spec; `environment.replicas` says how many).
            Self::Replicas(hs) => {
                let each: Vec<(String, f64)> = hs.iter().filter_map(Handle::price).collect();
                let (gpu, _) = each.first()?;
                Some((gpu.clone(), each.iter().map(|(_, p)| p).sum()))
            }
            h => h.rented().and_then(|r| r.price()),
        }
    }

    /// USD spent so far.
    pub fn spent_usd(&self) -> f64 {
        match self {
            Self::Replicas(hs) => hs.iter().map(Handle::spent_usd).sum(),
            h => h.rented().map_or(0.0, |r| r.spent_usd()),
        }
    }

    /// `Some(reason)` when the server is known to be gone (a local process that exited, a
    /// Slurm job that ended).
    pub fn gone(&mut self) -> Option<String> {
        match self {
            Self::Local(l) => l.exited(),
            Self::Rented(r) => r.gone(),
            Self::Replicas(hs) => hs
                .iter_mut()
                .enumerate()
                .find_map(|(k, h)| h.gone().map(|why| format!("replica {k}: {why}"))),
            _ => None,
        }
    }

    /// What to quote when the server does not become ready (the end of its log).
    pub fn diagnostics(&self) -> Option<String> {
        let log = match self {
            Self::Local(l) => &l.log,
            Self::Rented(r) => r.log(),
            Self::Replicas(hs) => {
                let each: Vec<String> = hs.iter().filter_map(Handle::diagnostics).collect();
                return (!each.is_empty()).then(|| each.join("\n"));
            }
            _ => return None,
        };
        Some(format!(
            "last lines of {}:\n{}",
            log.display(),
            local::tail(log, 20)
        ))
    }

    /// The first way the provider's API answered differently from its document, if it did.
    pub fn drift(&self) -> Option<String> {
        match self {
            Self::Replicas(hs) => hs.iter().find_map(Handle::drift),
            h => h.rented().and_then(|r| r.drift()),
        }
    }

    /// How long the pod (or job) has lived, for rented servers (the `max_lifetime` rule reads it).
    pub fn age(&self) -> Option<Duration> {
        match self {
            Self::Replicas(hs) => hs.iter().filter_map(Handle::age).max(),
            h => h.rented().map(|r| r.age()),
        }
    }
}

/// One server of a run: where it answers and the key it wants.
pub struct Server {
    pub base_url: String,
    pub api_key: Option<Secret>,
}

/// The servers to benchmark (one, or `infrastructure.replicas` / `base_urls`), and what
/// releases them.
pub struct Provisioned {
    pub servers: Vec<Server>,
    pub handle: Handle,
}

/// Starts (or finds) the experiment's servers: `infrastructure.replicas` of them, at once,
/// each with a log (`…r1.server.log`) and a name (`…-r1`) of its own; one that cannot be had
/// releases the others before the error returns. `log` is where a local server's output goes,
/// `run_id` names a pod; `stop` carries Ctrl-C into a long provisioning wait.
pub async fn provision(
    r: &Resolved,
    log: &Path,
    run_id: &str,
    stop: &CancellationToken,
) -> Result<Provisioned, ProviderError> {
    let inf = &r.experiment.infrastructure;
    if let Site::Existing(x) = inf.site() {
        let servers = x
            .base_urls
            .iter()
            .map(|u| Server {
                base_url: u.to_string(),
                api_key: api_key(r),
            })
            .collect();
        return Ok(Provisioned {
            servers,
            handle: Handle::Existing,
        });
    }
    let n = inf.replicas.max(1);
    if n == 1 {
        let (server, handle) = provision_one(r, log, (run_id, 0), stop).await?;
        return Ok(Provisioned {
            servers: vec![server],
            handle,
        });
    }
    let names: Vec<(std::path::PathBuf, String)> = (0..n)
        .map(|k| (replica_log(log, k), format!("{run_id}-r{k}")))
        .collect();
    let all = futures_util::future::join_all(
        names
            .iter()
            .zip(0u16..)
            .map(|((log, id), k)| provision_one(r, log, (id, k), stop)),
    )
    .await;
    let (mut servers, mut handles, mut failed) = (Vec::new(), Vec::new(), None);
    for (k, got) in all.into_iter().enumerate() {
        match got {
            Ok((s, h)) => {
                servers.push(s);
                handles.push(h);
            }
            Err(e) => {
                failed.get_or_insert((k, e));
            }
        }
    }
    if let Some((k, e)) = failed {
        crate::ui::say(format!(
            "replica {k} could not be had: releasing the {} that were",
            handles.len()
        ));
        Handle::Replicas(handles).release().await;
        return Err(e);
    }
    Ok(Provisioned {
        servers,
        handle: Handle::Replicas(handles),
    })
}

/// Replica `k`'s server log: `name-stamp.server.log` → `name-stamp.r{k}.server.log`.
fn replica_log(log: &Path, k: u32) -> std::path::PathBuf {
    sibling(log, &format!("r{k}.server.log"))
}

/// One server: replica `k` of the run, named `run_id`.
async fn provision_one(
    r: &Resolved,
    log: &Path,
    (run_id, k): (&str, u16),
    stop: &CancellationToken,
) -> Result<(Server, Handle), ProviderError> {
    let e: &Experiment = &r.experiment;
    let served = |base_url: String, api_key: Option<Secret>| Server { base_url, api_key };
    match e.infrastructure.site() {
        Site::Simulator(s) => {
            let mut cfg = sim::SimConfig::new(s.profile, s.personality, e.model.id.clone());
            cfg.speed = s.speed;
            cfg.reasoning_share = s.reasoning_share.clamp(0.0, 1.0);
            cfg.never_eos = s.never_eos;
            cfg.adapters = e
                .model
                .adapters
                .as_ref()
                .map(|a| a.all())
                .unwrap_or_default();
            cfg.lora_slowdown = s.lora_slowdown.max(0.0);
            cfg.seed = e.seed;
            cfg.max_model_len = e.model.max_model_len;
            cfg.kv_tokens = s.kv_tokens;
            cfg.spec_decode = s
                .spec_decode
                .map(|d| (d.num_speculative_tokens, d.token_acceptance));
            if let Some(k) = s.answer_key {
                cfg.answer_key = Some(std::sync::Arc::new(
                    crate::evals::experiment_key(r, k.error_rate).map_err(ProviderError::Local)?,
                ));
            }
            let h = sim::start(cfg, "127.0.0.1:0").await?;
            Ok((served(h.base_url(), None), Handle::Simulator(h)))
        }
        // Answered by `provision` (nothing to start).
        Site::Existing(_) => Err(ProviderError::Local(
            "an existing server is not started".into(),
        )),
        Site::Local { command } => {
            let (launch, key) = local_launch(r, command);
            let server = local::LocalServer::start(launch, log)?;
            let key = key.or_else(|| api_key(r));
            Ok((served(server.base_url(), key), Handle::Local(server)))
        }
        Site::Slurm(_) => {
            let (job, base_url) = slurm::provision(r, (run_id, k), log, stop).await?;
            Ok((served(base_url, api_key(r)), Handle::Rented(Box::new(job))))
        }
        Site::RunPod(_) => {
            let (pod, base_url, key) = runpod::provision(r, run_id, log, stop).await?;
            Ok((served(base_url, Some(key)), Handle::Rented(Box::new(pod))))
        }
        Site::Vast(_) => {
            let (instance, base_url, key) = vast::provision(r, run_id, log, stop).await?;
            Ok((
                served(base_url, Some(key)),
                Handle::Rented(Box::new(instance)),
            ))
        }
    }
}

/// What `provider: local` starts: `infrastructure.command` as written, or the framework's own
/// server (the command line a container or a Slurm job gets, on 127.0.0.1) protected by a
/// per-run key in the framework's key variable — the key the run then sends. `framework.env`
/// reaches the process either way.
fn local_launch<'a>(r: &'a Resolved, command: &'a [String]) -> (local::Launch<'a>, Option<Secret>) {
    let e = &r.experiment;
    let env: Vec<(String, String)> = e
        .framework
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !command.is_empty() {
        let mut launch = local::Launch::command(command, &e.model.id);
        launch.env = env;
        return (launch, None);
    }
    let key = Secret::random_key();
    let mut env = env;
    let var = crate::framework::api_key_env(e.framework.kind);
    env.push((var.to_string(), key.expose().to_string()));
    let argv = move |port: u16| {
        let mut on_port = e.clone();
        on_port.framework.port = port;
        let argv = crate::framework::server_command(&on_port, "127.0.0.1");
        match e.framework.kind {
            // SGLang reads its key only from `--api-key`: through a shell, from the variable,
            // so the key is not on a command line anyone can read.
            crate::config::FrameworkKind::Sglang => vec![
                "sh".into(),
                "-c".into(),
                format!(
                    "exec {} --api-key \"${var}\"",
                    crate::framework::join_args(&argv)
                ),
            ],
            _ => argv,
        }
    };
    (
        local::Launch {
            argv: Box::new(argv),
            env,
        },
        Some(key),
    )
}

/// A file beside a run's server log: `name-stamp.server.log` → `name-stamp.{ext}`.
pub fn sibling(log: &Path, ext: &str) -> std::path::PathBuf {
    let name = log
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".server.log").unwrap_or(&name);
    log.with_file_name(format!("{stem}.{ext}"))
}

/// A kept pod's (or instance's) server wants its key after the run too: it goes to `<run>.api-key` (mode 0600,
/// never printed), and the run says where.
pub(crate) fn keep_key(log: &Path, key: &Secret, id: &str) {
    let path = sibling(log, "api-key");
    let written = {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| writeln!(f, "{}", key.expose()))
    };
    match written {
        Ok(()) => crate::ui::say(format!(
            "keep_pod: {id}'s server requires the API key in {} (Authorization: Bearer $(cat {}))",
            path.display(),
            path.display()
        )),
        Err(err) => crate::ui::say(format!(
            "keep_pod: could not write the server's API key to {}: {err}; the kept server will refuse requests",
            path.display()
        )),
    }
}

/// The server's API key: the variable `infrastructure.api_key_env` names, else the user
/// config's `api_keys.openai`.
fn api_key(r: &Resolved) -> Option<Secret> {
    r.experiment
        .infrastructure
        .api_key_env()
        .and_then(Secret::from_env)
        .or_else(|| r.user.api_keys.openai.clone())
}
