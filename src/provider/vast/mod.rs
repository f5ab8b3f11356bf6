//! `provider: vast` — rent an instance on Vast.ai's marketplace: search offers (`offers`), rent
//! the cheapest from its offer with the framework's image, arguments, environment and port
//! (`requests`), wait until it runs with the port mapped, and destroy it on every way out. An
//! offer taken since the search, or an instance that fails before it runs, moves on to the
//! next offer. The instance id is held by a guard from the moment Vast answers; its `Drop`
//! destroys it if nothing else did, and a detached watchdog (`watchdog`) destroys it if this
//! process dies. What is read of Vast's answers (`answers`) is read tolerantly; the client
//! (`api`) keeps Vast's per-endpoint rate limits.

pub mod answers;
pub mod api;
pub mod cost;
pub mod offers;
pub mod requests;
pub mod watchdog;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use answers::{Instance, InstanceStatus, Offer};
use api::{ApiError, VastApi};
use requests::CreateInstance;

use super::runpod::POD_PREFIX;
use super::watchdog::Watchdog;
use super::{sibling, ProviderError};
use crate::config::{Resolved, Secret};
use crate::ui::say;

/// How often a starting instance is looked at (Vast's guide: every 10 s; its show endpoint
/// allows one call per 2 s).
const POLL: Duration = Duration::from_secs(5);

/// The API key: `$VAST_API_KEY`, else the user config's `api_keys.vast`.
pub fn api_key(r: Option<&Resolved>) -> Result<Secret, ProviderError> {
    Secret::from_env(api::ENV_API_KEY)
        .or_else(|| r.and_then(|r| r.user.api_keys.vast.clone()))
        .ok_or(ProviderError::NoVastKey)
}

/// An instance this run rented. Dropping it destroys it unless `keep` or it is already done.
pub struct VastInstance {
    api: Arc<VastApi>,
    id: u64,
    id_text: String,
    gpu: String,
    /// USD per hour: the offer's `dph_total`, then the instance's own.
    dph_total: f64,
    created: Instant,
    log: PathBuf,
    keep: bool,
    done: bool,
    watchdog: Option<Watchdog>,
}

impl VastInstance {
    fn own(api: Arc<VastApi>, id: u64, offer: &Offer, log: &Path, keep: bool) -> Self {
        Self {
            api,
            id,
            id_text: id.to_string(),
            gpu: format!(
                "{}× {}",
                offer.num_gpus.unwrap_or(1),
                offer.gpu_name.as_deref().unwrap_or("?")
            ),
            dph_total: offer.dph_total.unwrap_or(0.0),
            created: Instant::now(),
            log: log.to_path_buf(),
            keep,
            done: false,
            watchdog: None,
        }
    }

    /// Destroys it now (or, with `keep`, says how to) and tells the watchdog to stand down.
    pub async fn release(&mut self) -> Result<(), ApiError> {
        if std::mem::replace(&mut self.done, true) {
            return Ok(());
        }
        let r = end(&self.api, self.id, self.keep, self.dph_total).await;
        if r.is_ok() {
            if let Some(w) = &mut self.watchdog {
                w.released();
            }
        }
        r
    }

    /// Destroys it to try another offer: the watchdog is handed back, still watching.
    async fn discard(mut self) -> Option<Watchdog> {
        self.done = true;
        let _ = end(&self.api, self.id, false, self.dph_total).await;
        self.watchdog.take()
    }

    /// One line into the run's server log (Vast has no log stream: the instance's states and
    /// messages are what the log holds).
    fn note(&self, line: &str) {
        use std::io::Write;
        if let Ok(mut f) = crate::files::private_log(&self.log, true) {
            let _ = writeln!(f, "{} vast: {line}", chrono::Utc::now().to_rfc3339());
        }
    }
}

impl super::Rental for VastInstance {
    fn id(&self) -> &str {
        &self.id_text
    }

    fn noun(&self) -> &'static str {
        "Vast.ai instance"
    }

    fn price(&self) -> Option<(String, f64)> {
        Some((self.gpu.clone(), self.dph_total))
    }

    fn spent_usd(&self) -> f64 {
        self.dph_total * self.created.elapsed().as_secs_f64() / 3600.0
    }

    fn age(&self) -> Duration {
        self.created.elapsed()
    }

    fn log(&self) -> &Path {
        &self.log
    }

    fn drift(&self) -> Option<String> {
        self.api.drift()
    }

    /// The instance's `gpu_util` (percent), where the host reports it: one gauge for the
    /// instance (Vast reports no per-GPU figures and no memory use).
    fn gpu_poll(
        &self,
        every: Duration,
        tx: tokio::sync::mpsc::UnboundedSender<crate::metrics::event::Event>,
    ) -> Option<BoxFuture<'static, ()>> {
        let (api, id) = (self.api.clone(), self.id);
        Some(Box::pin(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_secs(2)));
            loop {
                tick.tick().await;
                let Ok(Some(i)) = api.show(id).await else {
                    continue;
                };
                let Some(util) = i.gpu_util else { continue };
                let reading = crate::metrics::event::GpuReading {
                    at: Instant::now(),
                    gpus: vec![(Some(util), None)],
                };
                if tx.send(crate::metrics::event::Event::Gpu(reading)).is_err() {
                    return;
                }
            }
        }))
    }

    fn release(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let _ = VastInstance::release(self).await;
        })
    }
}

/// Destroys instance `id`, or with `keep` says how to; tells the user either way.
async fn end(api: &VastApi, id: u64, keep: bool, dph: f64) -> Result<(), ApiError> {
    if keep {
        say(format!("keep_pod: Vast.ai instance {id} keeps running at ${dph:.2}/hour; destroy it with `llm-inf-bench pods terminate {id} --provider vast`"));
        return Ok(());
    }
    let r = api.destroy(id).await;
    match &r {
        Ok(()) => say(format!("destroyed Vast.ai instance {id}")),
        Err(e) => say(format!("could not destroy Vast.ai instance {id}: {e}\n  destroy it with `llm-inf-bench pods terminate {id} --provider vast`")),
    }
    r
}

impl Drop for VastInstance {
    fn drop(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        // Drop may run inside the async runtime, which cannot be blocked on: a thread with its
        // own runtime sends the DELETE (with the client's retries) and is waited for.
        let (api, id, keep, dph) = (self.api.clone(), self.id, self.keep, self.dph_total);
        let mut watchdog = self.watchdog.take();
        let t = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                if rt.block_on(end(&api, id, keep, dph)).is_ok() {
                    if let Some(w) = &mut watchdog {
                        w.released();
                    }
                }
            }
        });
        let _ = t.join();
    }
}

/// Our instances (label `llm-inf-bench-…`) that are not destroyed.
pub async fn our_instances(api: &VastApi) -> Result<Vec<Instance>, ApiError> {
    Ok(api
        .list_labelled(POD_PREFIX)
        .await?
        .into_iter()
        .filter(|i| i.actual_status != InstanceStatus::Destroyed)
        .collect())
}

/// Warns about instances of ours left by earlier runs, with status and $/hour.
async fn warn_leftovers(api: &VastApi) {
    let Ok(all) = our_instances(api).await else {
        return;
    };
    for i in all
        .iter()
        .filter(|i| !i.label.as_deref().is_some_and(super::shared::this_run))
    {
        say(format!(
            "warning: Vast.ai instance {} ({}) from an earlier run is {}, ${:.2}/hour; `llm-inf-bench pods terminate {} --provider vast` ends it",
            i.id,
            i.label.as_deref().unwrap_or("?"),
            i.actual_status.as_str(),
            i.dph_total.unwrap_or(0.0),
            i.id
        ));
    }
}

/// The instance's body: the framework's image and arguments, its environment with the
/// server's key and the Hugging Face token, the server port mapped, the run's label.
pub fn create_request(
    r: &Resolved,
    label: &str,
    hf_token: Option<&Secret>,
    server_key: &Secret,
) -> CreateInstance {
    let e = &r.experiment;
    let mut env: Vec<(String, String)> = e
        .framework
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(t) = hf_token {
        env.push(("HF_TOKEN".into(), t.expose().to_string()));
    }
    env.push((
        crate::framework::api_key_env(e.framework.kind).into(),
        server_key.expose().to_string(),
    ));
    CreateInstance {
        image: crate::framework::image(e),
        disk_gb: e.infrastructure.container_disk_gb,
        label: label.to_string(),
        args: crate::framework::container_argv(e, true),
        env,
        port: e.framework.port,
    }
}

/// Why an instance did not come up.
enum NotUp {
    /// It failed before running (`exited`, `offline`, …, or vanished): another offer may do.
    Failed(String),
    /// A stop, a timeout, or the API: the run ends.
    Fatal(ProviderError),
}

/// Rents the cheapest fitting offer (the next on a taken offer or a failed start), waits until
/// it runs with the server's port mapped, and returns it with the server's base URL and the
/// per-run key its server requires.
pub async fn provision(
    r: &Resolved,
    run_id: &str,
    log: &Path,
    stop: &CancellationToken,
) -> Result<(VastInstance, String, Secret), ProviderError> {
    let e = &r.experiment;
    let crate::config::Site::Vast(site) = e.infrastructure.site() else {
        return Err(ProviderError::PodFailed("not a Vast.ai experiment".into()));
    };
    let key = api_key(Some(r))?;
    let api = Arc::new(VastApi::new(key.clone(), None).map_err(ProviderError::Vast)?);
    let label = format!("{POD_PREFIX}{run_id}");
    super::shared::register(&label);
    warn_leftovers(&api).await;
    let (gpu, offers) = offers::find(&api, &site, e.infrastructure.gpu_count).await?;
    let hf = Secret::from_env("HF_TOKEN").or_else(|| r.user.api_keys.huggingface.clone());
    // The server is published on a public IP and port: only this run may use it.
    let server_key = Secret::random_key();
    let body = create_request(r, &label, hf.as_ref(), &server_key);
    // Before anything is rented: from here on a dead tool still ends in a destroyed instance.
    let wlog = sibling(log, "watchdog.log");
    let mut watchdog = Some(
        watchdog::spawn(
            &key,
            api.root(),
            &label,
            e.infrastructure.max_lifetime.as_duration(),
            &wlog,
        )
        .map_err(|err| {
            ProviderError::PodFailed(format!(
                "could not start the instance watchdog (log {}): {err}; nothing was rented",
                wlog.display()
            ))
        })?,
    );
    let tries = site.offers.offers_to_try.max(1) as usize;
    let mut refused = Vec::new();
    for offer in offers.iter().take(tries) {
        if stop.is_cancelled() {
            stand_down(&mut watchdog);
            return Err(ProviderError::Interrupted);
        }
        let id = match api.create(offer.id, &body).await {
            Ok(id) => id,
            Err(err) if err.offer_gone() => {
                say(format!(
                    "Vast.ai: {} was taken since the search; trying the next",
                    offers::describe(offer)
                ));
                refused.push(format!("offer {}: {err}", offer.id));
                continue;
            }
            // A definite refusal: nothing was rented.
            Err(err) if err.status().is_some() => {
                stand_down(&mut watchdog);
                return Err(ProviderError::Vast(err));
            }
            // The request's fate is unknown: the watchdog stays and sweeps by label.
            Err(err) => return Err(ProviderError::Vast(err)),
        };
        let mut guard = VastInstance::own(api.clone(), id, offer, log, site.keep);
        if let Some(w) = watchdog.as_mut() {
            w.watch(&guard.id_text);
        }
        guard.watchdog = watchdog.take();
        say(format!(
            "rented Vast.ai instance {id} from {}; waiting for it to run",
            offers::describe(offer)
        ));
        guard.note(&format!("instance {id} from {}", offers::describe(offer)));
        match wait_running(&api, &mut guard, r, stop).await {
            Ok(url) => {
                if site.keep {
                    super::keep_key(log, &server_key, &guard.id_text);
                }
                return Ok((guard, url, server_key));
            }
            Err(NotUp::Failed(why)) => {
                say(format!("Vast.ai instance {id} failed to start ({why}); destroying it and trying the next offer"));
                guard.note(&format!("failed to start: {why}"));
                refused.push(format!("offer {} (instance {id}): {why}", offer.id));
                watchdog = guard.discard().await;
            }
            Err(NotUp::Fatal(err)) => return Err(err),
        }
    }
    stand_down(&mut watchdog);
    Err(ProviderError::NoOffer(
        std::iter::once(format!(
            "{gpu}: {} offer(s) tried, none started",
            offers.len().min(tries)
        ))
        .chain(refused)
        .collect(),
    ))
}

/// Nothing of the run can exist (every answer was a definite one): the watchdog stands down.
fn stand_down(w: &mut Option<Watchdog>) {
    if let Some(w) = w.as_mut() {
        w.released();
    }
}

/// Polls the instance until it runs with the server's port mapped: the server's base URL.
async fn wait_running(
    api: &VastApi,
    guard: &mut VastInstance,
    r: &Resolved,
    stop: &CancellationToken,
) -> Result<String, NotUp> {
    let e = &r.experiment;
    let port = e.framework.port;
    let timeout = e.infrastructure.health_timeout.as_duration();
    let start = Instant::now();
    let mut said = String::new();
    loop {
        if stop.is_cancelled() {
            return Err(NotUp::Fatal(ProviderError::Interrupted));
        }
        let shown = api
            .show(guard.id)
            .await
            .map_err(|e| NotUp::Fatal(ProviderError::Vast(e)))?;
        let Some(i) = shown else {
            return Err(NotUp::Failed("Vast.ai no longer knows it".into()));
        };
        if let Some(p) = i.dph_total.filter(|p| *p > 0.0) {
            guard.dph_total = p;
        }
        let now = format!(
            "{}{}",
            i.actual_status.as_str(),
            i.status_msg
                .as_deref()
                .map(|m| format!(": {}", m.trim()))
                .unwrap_or_default()
        );
        if now != said {
            guard.note(&now);
            said = now;
        }
        if i.actual_status == InstanceStatus::Running {
            if let Some(url) = i.url_of(port) {
                return Ok(url);
            }
        }
        if i.actual_status.is_failed() || i.start_failed() {
            return Err(NotUp::Failed(said));
        }
        if start.elapsed() >= timeout {
            return Err(NotUp::Fatal(ProviderError::PodFailed(format!(
                "Vast.ai instance {} not running with port {port} mapped after {timeout:?} ({said})",
                guard.id
            ))));
        }
        // A Ctrl-C during the wait is seen at once, not after the next poll.
        tokio::select! {
            _ = tokio::time::sleep(api.paced(POLL)) => {}
            _ = stop.cancelled() => return Err(NotUp::Fatal(ProviderError::Interrupted)),
        }
    }
}
