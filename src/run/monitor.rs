//! `monitor URL`: the live view's server panel for any running server, no workload. Scrapes
//! `/metrics` every interval until `q`, Ctrl-C or `--duration`; without a terminal (or with
//! `--no-tui`) it prints one line per scrape instead.

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::task::AbortOnDropHandle;

use crate::config::FrameworkKind;
use crate::metrics::event::{Event, ServerSample};
use crate::metrics::scrape;
use crate::ui::live::{Live, Snapshot};
use crate::ui::tui;

pub struct MonitorOptions {
    /// The server's base URL, or its `/metrics` URL.
    pub url: String,
    /// What the server is expected to be; `None` is auto-detection.
    pub framework: Option<FrameworkKind>,
    pub interval: Duration,
    /// Stop after this long (`None`: until `q` or Ctrl-C).
    pub duration: Option<Duration>,
    pub tui: bool,
}

/// `http://host:port/metrics` for a base URL (or the URL itself when it names `/metrics`);
/// TensorRT-LLM's Prometheus page is `/prometheus/metrics` (its `/metrics` is JSON).
pub fn metrics_url(url: &str, framework: Option<FrameworkKind>) -> String {
    let u = url.trim_end_matches('/');
    if u.ends_with("/metrics") {
        u.to_string()
    } else if framework == Some(FrameworkKind::Trtllm) {
        format!("{u}/prometheus/metrics")
    } else {
        format!("{u}/metrics")
    }
}

/// Which engine's metrics an experiment's server exports: the simulator's personality, else
/// `framework.kind`.
pub fn engine_of(e: &crate::config::Experiment) -> FrameworkKind {
    use crate::config::{Personality, ProviderKind};
    match (
        e.infrastructure.provider,
        e.infrastructure.simulator.personality,
    ) {
        (ProviderKind::Simulator, Personality::Vllm) => FrameworkKind::Vllm,
        (ProviderKind::Simulator, Personality::Sglang) => FrameworkKind::Sglang,
        (ProviderKind::Simulator, Personality::Trtllm) => FrameworkKind::Trtllm,
        _ => e.framework.kind,
    }
}

/// One scrape as a line of plain output.
pub fn line(t: Duration, s: &ServerSample) -> String {
    let t = format!("{:>8.1}s", t.as_secs_f64());
    if let Some(e) = &s.error {
        return format!("{t}  gap: {e}");
    }
    let n = |v: Option<f64>, d: usize| v.map(|x| format!("{x:.d$}")).unwrap_or_else(|| "-".into());
    let p = |v: Option<f64>| {
        v.map(|x| format!("{:.1}%", x * 100.0))
            .unwrap_or_else(|| "-".into())
    };
    format!(
        "{t}  running {}  waiting {}  kv {}  prefix-hit {}  gen {} tok/s  prompt {} tok/s  ttft {} ms  itl {} ms",
        n(s.running, 0),
        n(s.waiting, 0),
        p(s.kv_cache_usage),
        p(s.prefix_cache_hit_rate),
        n(s.generation_tokens_per_s, 0),
        n(s.prompt_tokens_per_s, 0),
        n(s.ttft_mean_ms, 1),
        n(s.itl_mean_ms, 2),
    )
}

/// Watches the server until stopped. Returns how many scrapes failed and how many there were.
pub async fn monitor(o: MonitorOptions) -> (u64, u64) {
    let url = metrics_url(&o.url, o.framework);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let scraper = scrape::run(url.clone(), None, o.interval, tx);
    let _scraper = AbortOnDropHandle::new(tokio::spawn(scraper));
    let mut live = Live::new(format!("monitor · {url}"), None, false);
    live.set_phase("monitoring");
    let (snap_tx, snap_rx) = watch::channel(Snapshot::default());
    let (quit_tx, mut quit_rx) = mpsc::unbounded_channel::<()>();
    let started = Instant::now();
    let _tui = if o.tui {
        tui::start_or_plain(snap_rx, started, move |_| {
            let _ = quit_tx.send(());
        })
    } else {
        None
    };
    let plain = _tui.is_none();
    let deadline = o.duration.map(|d| tokio::time::Instant::now() + d);
    let (mut scrapes, mut gaps) = (0u64, 0u64);
    let mut warned = false;
    loop {
        tokio::select! {
            ev = rx.recv() => {
                let Some(Event::Server(s)) = ev else { break };
                scrapes += 1;
                gaps += u64::from(s.sample.error.is_some());
                if let (Some(want), Some(found)) = (o.framework, s.framework) {
                    if !warned && found != want {
                        warned = true;
                        crate::ui::say(format!(
                            "warning: {url} exposes {} metrics, not {}",
                            found.as_str(),
                            want.as_str()
                        ));
                    }
                }
                if plain {
                    println!("{}", line(s.at.duration_since(started), &s.sample));
                }
                live.on_server(&url, s.framework, &s.sample);
                snap_tx.send_replace(live.snapshot(Instant::now(), 0, Vec::new()));
            }
            _ = tokio::signal::ctrl_c() => break,
            Some(()) = quit_rx.recv() => break,
            _ = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => break,
        }
    }
    (gaps, scrapes)
}
