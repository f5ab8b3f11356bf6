//! `provider: runpod` — rent a pod through RunPod's REST API v2, wait until the server's port is
//! reachable, and terminate the pod on every way out. The pod id is held by a guard from the
//! moment `POST /pods` answers; its `Drop` terminates the pod if nothing else did.

pub mod answers;
pub mod api;
pub mod cost;
pub mod logs;
pub mod types;
pub mod watchdog;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use answers::{Pod, PodStatus};
use api::{ApiError, RunPodApi};
use types::CreatePodRequest;

use super::watchdog::Watchdog;
use super::{sibling, ProviderError};
use crate::config::{Cloud, PortExposure, Resolved, Secret};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

/// Every pod this tool creates is named with this prefix (the API has no tags), so
/// `pods list` can find what a crashed run left behind.
pub const POD_PREFIX: &str = "llm-inf-bench-";

/// A pod this run owns. Dropping it terminates the pod unless `keep_pod` or it is already done.
pub struct RunPodPod {
    api: Arc<RunPodApi>,
    pub id: String,
    pub gpu_type: String,
    /// USD per hour, as the pod reports it (`cost`).
    pub cost_per_hour_usd: f64,
    pub created: Instant,
    /// Where the pod's own log is followed to.
    pub log: PathBuf,
    keep: bool,
    done: bool,
    watchdog: Option<Watchdog>,
    _logs: Option<AbortOnDropHandle<()>>,
}

/// Reads a pod's `runtime.gpus` (utilisation and memory use per GPU) with `GET /pods/{id}`.
#[derive(Clone)]
pub struct GpuProbe {
    api: Arc<RunPodApi>,
    id: String,
}

impl GpuProbe {
    /// Reads the gauges every `every` and sends them as events until `tx` closes; a failed read
    /// is skipped (the pod's own health is watched elsewhere).
    pub async fn poll(
        self,
        every: Duration,
        tx: tokio::sync::mpsc::UnboundedSender<crate::metrics::event::Event>,
    ) {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let Ok(pod) = self.api.get_pod(&self.id).await else {
                continue;
            };
            let gpus: Vec<(Option<f64>, Option<f64>)> = pod
                .runtime
                .map(|r| r.gpus.iter().map(|g| (g.util, g.memory_util)).collect())
                .unwrap_or_default();
            if gpus.is_empty() {
                continue;
            }
            let reading = crate::metrics::event::GpuReading {
                at: Instant::now(),
                gpus,
            };
            if tx.send(crate::metrics::event::Event::Gpu(reading)).is_err() {
                return;
            }
        }
    }
}

/// What a pod is created with, besides its id.
struct Ownership {
    gpu_type: String,
    cost_per_hour_usd: f64,
    keep: bool,
    log: PathBuf,
}

impl RunPodPod {
    /// Owns pod `id` from now on: whatever happens next, it is terminated (unless `keep`), by
    /// this guard or, if this process dies, by the watchdog, which is told about it at once.
    /// The pod's log is followed into `o.log` from now on.
    fn own(api: Arc<RunPodApi>, id: String, o: Ownership, mut watchdog: Option<Watchdog>) -> Self {
        if let Some(w) = &mut watchdog {
            w.watch(&id);
        }
        let logs = tokio::runtime::Handle::try_current().ok().map(|rt| {
            let follow = logs::follow(api.clone(), id.clone(), o.log.clone());
            AbortOnDropHandle::new(rt.spawn(follow))
        });
        Self {
            api,
            id,
            gpu_type: o.gpu_type,
            cost_per_hour_usd: o.cost_per_hour_usd,
            created: Instant::now(),
            log: o.log,
            keep: o.keep,
            done: false,
            watchdog,
            _logs: logs,
        }
    }

    /// USD spent so far (from creation).
    pub fn spent_usd(&self) -> f64 {
        self.cost_per_hour_usd * self.created.elapsed().as_secs_f64() / 3600.0
    }

    /// What reads this pod's GPU gauges, for a poller of its own.
    pub fn gpu_probe(&self) -> GpuProbe {
        GpuProbe {
            api: self.api.clone(),
            id: self.id.clone(),
        }
    }

    /// The first way RunPod's answers differed from its document, if they did.
    pub fn api_drift(&self) -> Option<String> {
        self.api.drift()
    }

    /// Terminates the pod now (or, with `keep_pod`, says how to).
    pub async fn release(&mut self) -> Result<(), ApiError> {
        if std::mem::replace(&mut self.done, true) {
            return Ok(());
        }
        let r = end(&self.api, &self.id, self.keep, self.cost_per_hour_usd).await;
        if r.is_ok() {
            if let Some(w) = &mut self.watchdog {
                w.released();
            }
        }
        r
    }
}

impl super::Rental for RunPodPod {
    fn id(&self) -> &str {
        &self.id
    }

    fn noun(&self) -> &'static str {
        "pod"
    }

    fn price(&self) -> Option<(String, f64)> {
        Some((self.gpu_type.clone(), self.cost_per_hour_usd))
    }

    fn spent_usd(&self) -> f64 {
        RunPodPod::spent_usd(self)
    }

    fn age(&self) -> Duration {
        self.created.elapsed()
    }

    fn log(&self) -> &std::path::Path {
        &self.log
    }

    fn drift(&self) -> Option<String> {
        self.api_drift()
    }

    /// The pod's `runtime.gpus`: utilisation and memory use per GPU.
    fn gpu_poll(
        &self,
        every: Duration,
        tx: tokio::sync::mpsc::UnboundedSender<crate::metrics::event::Event>,
    ) -> Option<futures_util::future::BoxFuture<'static, ()>> {
        Some(Box::pin(self.gpu_probe().poll(every, tx)))
    }

    fn release(&mut self) -> futures_util::future::BoxFuture<'_, ()> {
        Box::pin(async move {
            let _ = RunPodPod::release(self).await;
        })
    }
}

/// Terminates pod `id`, or with `keep` says how to; tells the user either way.
async fn end(
    api: &RunPodApi,
    id: &str,
    keep: bool,
    cost_per_hour_usd: f64,
) -> Result<(), ApiError> {
    if keep {
        crate::ui::say(format!("keep_pod: pod {id} keeps running at ${cost_per_hour_usd:.2}/hour; terminate it with `llm-inf-bench pods terminate {id}`"));
        return Ok(());
    }
    let r = api.delete_pod(id).await;
    match &r {
        Ok(()) => crate::ui::say(format!("terminated pod {id}")),
        Err(e) => crate::ui::say(format!("could not terminate pod {id}: {e}\n  terminate it with `llm-inf-bench pods terminate {id}`")),
    }
    r
}

impl Drop for RunPodPod {
    fn drop(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        // Drop may run inside the async runtime, which cannot be blocked on: a thread with its
        // own runtime sends the DELETE (with the API client's retries) and is waited for.
        let (api, id, keep, cost) = (
            self.api.clone(),
            self.id.clone(),
            self.keep,
            self.cost_per_hour_usd,
        );
        let mut watchdog = self.watchdog.take();
        let t = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                if rt.block_on(end(&api, &id, keep, cost)).is_ok() {
                    if let Some(w) = &mut watchdog {
                        w.released();
                    }
                }
            }
        });
        let _ = t.join();
    }
}

/// Pods whose name carries our prefix: what this tool started (or a crash left behind).
pub async fn our_pods(api: &RunPodApi) -> Result<Vec<Pod>, ApiError> {
    Ok(api
        .list_pods()
        .await?
        .into_iter()
        .filter(|p| p.name().starts_with(POD_PREFIX))
        .collect())
}

/// How long ago the pod was created, as `3h12m` (`?` when the answer did not say).
pub fn age(p: &Pod) -> String {
    let Some(created) = p.created_at else {
        return "?".into();
    };
    crate::provider::shared::age_text((chrono::Utc::now() - created).num_seconds())
}

/// Warns about pods of ours that are still running (left by earlier runs), with age and $/hour.
pub async fn warn_leftovers(api: &RunPodApi) {
    if let Ok(pods) = our_pods(api).await {
        let left = pods
            .iter()
            .filter(|p| p.status != PodStatus::Terminated && !super::shared::this_run(p.name()));
        for p in left {
            crate::ui::say(format!(
                "warning: pod {} ({}) from an earlier run is {}, {} old, ${:.2}/hour; `llm-inf-bench pods terminate {}` ends it",
                p.id,
                p.name(),
                p.status.as_str(),
                age(p),
                p.cost(),
                p.id
            ));
        }
    }
}

/// The API key: `$RUNPOD_API_KEY`, else the user config's `api_keys.runpod`.
pub fn api_key(r: Option<&Resolved>) -> Result<Secret, ProviderError> {
    Secret::from_env(api::ENV_API_KEY)
        .or_else(|| r.and_then(|r| r.user.api_keys.runpod.clone()))
        .ok_or(ProviderError::NoRunPodKey)
}

/// The `POST /pods` body for one GPU type.
/// `server_key` is the per-run key the server is started with (in its environment), so nobody
/// else can use a server published on a public port.
pub fn create_request(
    r: &Resolved,
    name: &str,
    gpu: &str,
    hf_token: Option<&Secret>,
    server_key: Option<&Secret>,
) -> Result<CreatePodRequest, ProviderError> {
    let e = &r.experiment;
    let site = e.infrastructure.runpod();
    let mut env: serde_json::Map<String, serde_json::Value> = e
        .framework
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into()))
        .collect();
    if let Some(t) = hf_token {
        env.insert("HF_TOKEN".into(), t.expose().into());
    }
    if let Some(k) = server_key {
        env.insert(
            crate::framework::api_key_env(e.framework.kind).into(),
            k.expose().into(),
        );
    }
    let port = match site.expose {
        PortExposure::Tcp => format!("{}/tcp", e.framework.port),
        PortExposure::Http => format!("{}/http", e.framework.port),
    };
    let body = serde_json::json!({
        "name": name,
        "image": crate::framework::image(e),
        "args": crate::framework::container_command(e, server_key.is_some()),
        "disk": site.container_disk_gb,
        "env": env,
        "ports": [port],
        "gpu": {"id": gpu, "count": e.infrastructure.gpu_count},
        "cloud": match site.cloud { Cloud::Secure => "SECURE", Cloud::Community => "COMMUNITY" },
        "dataCenterIds": site.data_centers,
    });
    serde_json::from_value(body).map_err(|e| ProviderError::RunPodRequest(e.to_string()))
}

/// Why no pod was created, by whether one may exist anyway.
enum Refused {
    /// Only definite answers (HTTP statuses), or a stop before asking: no pod exists.
    Definitely(ProviderError),
    /// The request's fate is unknown (a transport failure): a pod may exist.
    Maybe(ProviderError),
    /// A pod `id` of GPU type `gpu` was created, but its description did not decode.
    Undecodable(String, String, ProviderError),
}

/// Creates a pod of the first GPU type in `gpus` that RunPod has room for (a 400 is a broken
/// rule or no capacity: the spec says try the next); `body` is the create request of a type.
async fn create(
    api: &RunPodApi,
    gpus: &[&str],
    body: impl Fn(&str) -> Result<CreatePodRequest, ProviderError>,
    stop: &CancellationToken,
) -> Result<(Pod, String), Refused> {
    let mut refused = Vec::new();
    for &gpu in gpus {
        if stop.is_cancelled() {
            return Err(Refused::Definitely(ProviderError::Interrupted));
        }
        match api
            .create_pod(&body(gpu).map_err(Refused::Definitely)?)
            .await
        {
            Ok(p) => return Ok((p, gpu.to_string())),
            Err(err) if err.status() == Some(400) => {
                crate::ui::say(format!("RunPod refused {gpu}: {err}"));
                refused.push(format!("{gpu}: {err}"));
            }
            Err(ApiError::Undecodable {
                id: Some(id),
                method,
                path,
                message,
            }) => {
                let err = ApiError::Undecodable {
                    method,
                    path,
                    id: Some(id.clone()),
                    message,
                };
                return Err(Refused::Undecodable(
                    id,
                    gpu.to_string(),
                    ProviderError::RunPod(err),
                ));
            }
            Err(err) if err.status().is_some() => {
                return Err(Refused::Definitely(ProviderError::RunPod(err)))
            }
            Err(err) => return Err(Refused::Maybe(ProviderError::RunPod(err))),
        }
    }
    Err(Refused::Definitely(ProviderError::NoCapacity(refused)))
}

/// Creates the pod (trying each GPU type on "no capacity"), waits until its port is reachable,
/// and returns it with the server's base URL and the per-run key its server requires.
pub async fn provision(
    r: &Resolved,
    run_id: &str,
    log: &Path,
    stop: &CancellationToken,
) -> Result<(RunPodPod, String, Secret), ProviderError> {
    let e = &r.experiment;
    let site = e.infrastructure.runpod();
    let key = api_key(Some(r))?;
    let api = Arc::new(RunPodApi::new(key.clone(), None).map_err(ProviderError::RunPod)?);
    let name = format!("{POD_PREFIX}{run_id}");
    super::shared::register(&name);
    warn_leftovers(&api).await;
    let hf = Secret::from_env("HF_TOKEN").or_else(|| r.user.api_keys.huggingface.clone());
    // The server is published on a public IP:port: only this run may use it.
    let server_key = Secret::random_key();
    // Before anything is created: from here on a dead tool still ends in a terminated pod.
    let wlog = sibling(log, "watchdog.log");
    let mut watchdog = Some(
        watchdog::spawn(
            &key,
            api.base(),
            &name,
            e.infrastructure.max_lifetime.as_duration(),
            &wlog,
        )
        .map_err(|err| {
            ProviderError::PodFailed(format!(
                "could not start the pod watchdog (log {}): {err}; nothing was rented",
                wlog.display()
            ))
        })?,
    );
    let owner = |gpu_type: String, cost: f64, keep: bool| Ownership {
        gpu_type,
        cost_per_hour_usd: cost,
        keep,
        log: log.to_path_buf(),
    };
    let body = |gpu: &str| create_request(r, &name, gpu, hf.as_ref(), Some(&server_key));
    let (pod, gpu) = match create(&api, &site.gpu_types, body, stop).await {
        Ok(created) => created,
        // Every answer was a definite "no" (an HTTP status), so no pod can exist: the
        // watchdog stands down. After a transport failure it stays and sweeps by name.
        Err(Refused::Definitely(err)) => {
            if let Some(w) = watchdog.as_mut() {
                w.released();
            }
            return Err(err);
        }
        Err(Refused::Maybe(err)) => return Err(err),
        // The pod may exist although its description did not decode: terminate it.
        Err(Refused::Undecodable(id, gpu, err)) => {
            let mut orphan =
                RunPodPod::own(api.clone(), id, owner(gpu, 0.0, false), watchdog.take());
            let _ = orphan.release().await;
            return Err(err);
        }
    };
    let mut guard = RunPodPod::own(
        api.clone(),
        pod.id.clone(),
        owner(gpu, pod.cost(), site.keep_pod),
        watchdog.take(),
    );
    crate::ui::say(format!(
        "created pod {} ({}, ${:.2}/hour); waiting for it to run",
        pod.id, guard.gpu_type, guard.cost_per_hour_usd
    ));
    let url = wait_running(&api, &mut guard, r, site.expose, stop).await?;
    if site.keep_pod {
        super::keep_key(log, &server_key, &guard.id);
    }
    Ok((guard, url, server_key))
}

/// Polls the pod until it runs and its port is mapped; the base URL of the server.
async fn wait_running(
    api: &RunPodApi,
    guard: &mut RunPodPod,
    r: &Resolved,
    expose: PortExposure,
    stop: &CancellationToken,
) -> Result<String, ProviderError> {
    let e = &r.experiment;
    let timeout = e.infrastructure.health_timeout.as_duration();
    let start = Instant::now();
    let mut delay = Duration::from_millis(200);
    loop {
        if stop.is_cancelled() {
            return Err(ProviderError::Interrupted);
        }
        let pod = api
            .get_pod(&guard.id)
            .await
            .map_err(ProviderError::RunPod)?;
        if pod.cost() > 0.0 {
            guard.cost_per_hour_usd = pod.cost();
        }
        if pod.status == PodStatus::Running {
            if let Some(url) = server_url(&pod, e.framework.port, expose) {
                return Ok(url);
            }
        }
        if pod.status.is_final() {
            return Err(ProviderError::PodFailed(format!(
                "pod {} is {}",
                pod.id,
                pod.status.as_str()
            )));
        }
        if start.elapsed() >= timeout {
            return Err(ProviderError::PodFailed(format!(
                "pod {} not running with port {} mapped after {timeout:?} (status {})",
                pod.id,
                e.framework.port,
                pod.status.as_str()
            )));
        }
        // A Ctrl-C during the wait is seen at once, not after the next poll.
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.cancelled() => return Err(ProviderError::Interrupted),
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// `http://ip:public` for a TCP-exposed port, RunPod's proxy URL for an HTTP-exposed one.
fn server_url(pod: &Pod, port: u16, expose: PortExposure) -> Option<String> {
    match expose {
        PortExposure::Http => Some(format!("https://{}-{port}.proxy.runpod.net", pod.id)),
        PortExposure::Tcp => pod.runtime.as_ref()?.ports.iter().find_map(|p| {
            let tcp = p
                .kind
                .as_deref()
                .is_none_or(|t| t.eq_ignore_ascii_case("tcp"));
            (tcp && p.private == Some(port as i64))
                .then(|| Some(format!("http://{}:{}", p.ip.as_deref()?, p.public?)))?
        }),
    }
}
