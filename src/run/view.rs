//! What a run shows while it runs, wired: the live view's state (drawn by `ui::tui` from the
//! snapshots published here) or, without a terminal, a progress bar. Keys and signals reach
//! the run as presses of its one stop; nothing here changes what is measured.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::stop::Stop;

use crate::config::Experiment;
use crate::metrics::collector::StopReason;
use crate::metrics::event::Event;
use crate::provider::Handle;
use crate::ui::live::{Live, Snapshot};
use crate::ui::tui;

/// The run's screen: the live view's state and the thread drawing it (when there is one).
pub struct Screen {
    pub live: Live,
    snap_tx: watch::Sender<Snapshot>,
    /// Whether the live view is up (else records are not fed to it).
    pub tui: bool,
    _tui: Option<tui::Tui>,
}

impl Screen {
    /// Starts the live view when `tui`; its keys stop the run like Ctrl-C does.
    pub fn start(e: &Experiment, tui: bool, stop: &Stop) -> Self {
        let title = format!(
            "{} · {} on {}",
            e.name,
            e.model.id,
            e.infrastructure.provider.as_str()
        );
        let mut live = Live::new(title, e.workload.requests, true);
        live.set_gpu(e.infrastructure.gpu_type.as_deref());
        let (snap_tx, snap_rx) = watch::channel(Snapshot::default());
        let view = if tui {
            let stop = stop.clone();
            let keys = move |k: tui::Request| {
                stop.press(match k {
                    tui::Request::Quit => StopReason::Quit,
                    tui::Request::Interrupt => StopReason::Interrupted,
                });
            };
            tui::start_or_plain(snap_rx, Instant::now(), keys)
        } else {
            None
        };
        Self {
            live,
            snap_tx,
            tui: view.is_some(),
            _tui: view,
        }
    }

    pub fn phase(&mut self, phase: &str) {
        self.live.set_phase(phase);
        self.publish(0);
    }

    /// The pod line: id, GPU and price, and what it has cost, for pod providers.
    pub fn pod(&mut self, h: &Handle) {
        let noun = h.noun();
        if let Some((gpu, _)) = h.price() {
            self.live.set_gpu(Some(&gpu));
        }
        let line = h.pod_id().map(|id| match h.price() {
            Some((gpu, p)) => format!("{noun} {id} · {gpu} · ${p:.2}/hour"),
            None => format!("{noun} {id}"),
        });
        self.live.set_pod(line, h.pod_id().map(|_| h.spent_usd()));
    }

    pub fn publish(&mut self, in_flight: u64) {
        self.snap_tx
            .send_replace(self.live.snapshot(Instant::now(), in_flight, Vec::new()));
    }
}

/// How long requests in flight may finish after SIGTERM or SIGHUP before the run saves at once
/// (a cluster's job kill, `timeout`, a closed terminal: the sender will not wait for long).
pub const TERM_GRACE: Duration = Duration::from_secs(5);

/// Listens for Ctrl-C, SIGTERM and SIGHUP while the run lasts (the handle aborts it on every
/// way out). Ctrl-C: the first stops sending, the second saves at once. SIGTERM / SIGHUP: stop
/// sending, and save at once after [`TERM_GRACE`]. Each is a press of `stop`. Once installed,
/// these signals no longer kill the process.
pub fn listen_for_signals(stop: &Stop) -> tokio_util::task::AbortOnDropHandle<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let stop = stop.clone();
    tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
        let mut term = signal(SignalKind::terminate()).ok();
        let mut hup = signal(SignalKind::hangup()).ok();
        let mut interrupts = 0;
        loop {
            let polite = tokio::select! {
                r = tokio::signal::ctrl_c() => match r {
                    Ok(()) => true,
                    Err(_) => return,
                },
                Some(()) = next(&mut term) => false,
                Some(()) = next(&mut hup) => false,
            };
            stop.press(StopReason::Interrupted);
            interrupts += 1;
            if !polite {
                crate::ui::say(format!(
                    "terminating: no new requests; saving within {}s",
                    TERM_GRACE.as_secs()
                ));
                tokio::time::sleep(TERM_GRACE).await;
                stop.press(StopReason::Interrupted);
                return;
            }
            if interrupts >= 2 {
                return;
            }
        }
    }))
}

/// The next delivery of a signal that could be installed (never, if it could not).
async fn next(s: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match s {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// Where one point's events are shown: the live view, or progress on stderr (a bar, plain
/// lines), or neither.
pub struct Watchers<'a> {
    pub screen: &'a mut Screen,
    pub progress: super::progress::Progress,
    pub metrics_url: String,
    pub sent: Arc<AtomicU64>,
    /// With several replicas: each one's latest good scrape; the panel shows their sum.
    pub fleet: Vec<Option<crate::metrics::event::ServerSample>>,
}

/// The replicas' latest scrapes as one: requests running and waiting and token rates summed,
/// cache use the mean; a replica not scraped yet counts for nothing.
fn fleet(
    latest: &[Option<crate::metrics::event::ServerSample>],
) -> crate::metrics::event::ServerSample {
    let got: Vec<&crate::metrics::event::ServerSample> = latest.iter().flatten().collect();
    let sum = |f: fn(&crate::metrics::event::ServerSample) -> Option<f64>| {
        got.iter().filter_map(|s| f(s)).reduce(|a, b| a + b)
    };
    let kv: Vec<f64> = got.iter().filter_map(|s| s.kv_cache_usage).collect();
    crate::metrics::event::ServerSample {
        running: sum(|s| s.running),
        waiting: sum(|s| s.waiting),
        kv_cache_usage: (!kv.is_empty()).then(|| kv.iter().sum::<f64>() / kv.len() as f64),
        prompt_tokens_per_s: sum(|s| s.prompt_tokens_per_s),
        generation_tokens_per_s: sum(|s| s.generation_tokens_per_s),
        ..Default::default()
    }
}

impl Watchers<'_> {
    /// Shows `ev` (before the collector takes it: a record still carries its gaps).
    pub fn show(&mut self, ev: &Event) {
        if let Event::Request(r) = ev {
            self.progress.record(r);
        }
        if !self.screen.tui {
            return;
        }
        let live = &mut self.screen.live;
        match ev {
            Event::Started { .. } => live.set_phase("running"),
            Event::Request(r) => live.on_record(r, Instant::now()),
            Event::Server(s) if self.fleet.len() > 1 => {
                let url = format!("{} replicas, from {}", self.fleet.len(), self.metrics_url);
                let k = usize::from(s.replica);
                if s.sample.error.is_some() {
                    live.on_server(&url, s.framework, &s.sample);
                } else if let Some(slot) = self.fleet.get_mut(k) {
                    *slot = Some(s.sample.clone());
                    live.on_server(&url, s.framework, &fleet(&self.fleet));
                }
            }
            Event::Server(s) => live.on_server(&self.metrics_url, s.framework, &s.sample),
            Event::Gpu(g) => live.on_gpu(&g.gpus),
            Event::Tick { .. } => {}
        }
    }

    /// The counts after an event: the bar's position, or a line when one is due.
    pub fn progress(&mut self, finished: u64, failed: u64) {
        let sent = self.sent.load(Ordering::Relaxed);
        self.progress.update(finished, failed, sent);
    }

    /// One frame of the live view: the pod line and requests in flight.
    pub fn frame(&mut self, handle: &Handle, finished: u64) {
        if self.screen.tui {
            self.screen.pod(handle);
            let sent = self.sent.load(Ordering::Relaxed);
            self.screen.publish(sent.saturating_sub(finished));
        }
    }

    pub fn done(&mut self) {
        self.progress.done();
    }
}
