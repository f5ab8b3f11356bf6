//! The server's view and the live view: the `/metrics` scraper against the simulator (both
//! personalities) and against a server that fails and stalls; the run's saved server metrics;
//! `monitor`; the TUI's rendering (insta snapshots of ratatui's TestBackend) and its terminal
//! restore after a panic (under a real pseudo-terminal, via `script`).

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use llm_inf_bench::config::FrameworkKind as Framework;
use llm_inf_bench::config::{Personality, SimProfile};
use llm_inf_bench::metrics::event::{Event, RequestRecord, Scraped, ServerSample};
use llm_inf_bench::metrics::scrape;
use llm_inf_bench::sim::{self, SimConfig};
use llm_inf_bench::ui::live::{Live, Snapshot};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use serde_json::{json, Value};

fn cfg(personality: Personality) -> SimConfig {
    let mut c = SimConfig::new(SimProfile::Instant, personality, "m");
    c.startup_delay = Some(Duration::ZERO);
    c
}

/// Scrapes `url` every `interval` for `for_`, returning the samples.
async fn scrape_for(url: String, interval: Duration, for_: Duration) -> Vec<Scraped> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(scrape::run(url, None, interval, tx));
    tokio::time::sleep(for_).await;
    task.abort();
    let mut out = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        if let Event::Server(s) = ev {
            out.push(*s);
        }
    }
    out
}

#[tokio::test]
async fn the_simulator_in_both_personalities_maps_onto_the_same_concepts() {
    for (p, fw) in [
        (Personality::Vllm, Framework::Vllm),
        (Personality::Sglang, Framework::Sglang),
    ] {
        // The engine profile (the instant one has no KV cache or prefix cache to report).
        let mut c = SimConfig::new(SimProfile::H100Llama8b, p, "m");
        c.startup_delay = Some(Duration::ZERO);
        c.speed = 8.0;
        let s = sim::start(c, "127.0.0.1:0").await.unwrap();
        let base = s.base_url();
        // Traffic while the scraper watches: 40 answers of 16 tokens.
        let load = tokio::spawn({
            let base = base.clone();
            async move {
                let c = reqwest::Client::builder().no_proxy().build().unwrap();
                for _ in 0..40 {
                    let _ = c
                        .post(format!("{base}/v1/completions"))
                        .json(&json!({"model": "m", "prompt": "hi", "max_tokens": 16, "ignore_eos": true}))
                        .send()
                        .await
                        .unwrap()
                        .text()
                        .await;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        });
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let scraper = tokio::spawn(scrape::run(
            format!("{base}/metrics"),
            None,
            Duration::from_millis(100),
            tx,
        ));
        tokio::time::timeout(Duration::from_secs(60), load)
            .await
            .expect("the load finishes")
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1000)).await;
        scraper.abort();
        let mut samples = Vec::new();
        while let Ok(Event::Server(s)) = rx.try_recv() {
            samples.push(*s);
        }
        assert!(samples.len() >= 8, "{p:?}: {} scrapes", samples.len());
        assert!(samples.iter().all(|s| s.sample.error.is_none()));
        let last = samples.last().unwrap();
        assert_eq!(last.framework, Some(fw));
        let x = &last.sample;
        assert!(x.running.is_some() && x.waiting.is_some() && x.kv_cache_usage.is_some());
        assert!(
            samples
                .iter()
                .any(|s| s.sample.prefix_cache_hit_rate.is_some()),
            "{p:?}: prefix-cache hit rate"
        );
        // Every generated token shows up in the server's counter.
        assert!(
            x.generation_tokens_total.unwrap() >= 40.0 * 16.0,
            "{p:?}: {x:?}"
        );
        let rates: f64 = samples
            .iter()
            .filter_map(|s| s.sample.generation_tokens_per_s)
            .sum();
        assert!(rates > 0.0, "{p:?}: counters became rates");
    }
}

/// A `/metrics` that answers, then fails, then stalls for longer than the interval, then answers.
async fn flaky_metrics() -> String {
    let calls = Arc::new(AtomicU32::new(0));
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let calls = calls.clone();
            async move {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                let body = format!(
                    "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running 3\n# TYPE vllm:generation_tokens_total counter\nvllm:generation_tokens_total {}\n",
                    n * 100
                );
                match n {
                    2 | 3 => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, String::new()),
                    4 => {
                        tokio::time::sleep(Duration::from_secs(3)).await;
                        (axum::http::StatusCode::OK, body)
                    }
                    _ => (axum::http::StatusCode::OK, body),
                }
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/metrics", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    url
}

#[tokio::test]
async fn failed_and_stalled_scrapes_are_recorded_gaps_and_never_stop_the_scraper() {
    let url = flaky_metrics().await;
    let interval = Duration::from_millis(200);
    let samples = scrape_for(url, interval, Duration::from_millis(2100)).await;
    let errors: Vec<&str> = samples
        .iter()
        .filter_map(|s| s.sample.error.as_deref())
        .collect();
    assert_eq!(errors.iter().filter(|e| **e == "HTTP 500").count(), 2);
    assert!(
        errors.iter().any(|e| e.contains("no answer within")),
        "{errors:?}"
    );
    // The 3 s stall cost one interval, not three seconds of scrapes.
    assert!(samples.len() >= 8, "{} scrapes", samples.len());
    assert!(samples.last().unwrap().sample.error.is_none());
}

fn sim_experiment(dir: &std::path::Path, personality: &str) -> std::path::PathBuf {
    common::write(
        dir,
        "exp.yaml",
        &format!(
            "name: live\nmodel: {{ id: m }}\ninfrastructure:\n  provider: simulator\n  simulator: {{ profile: h100-llama8b, personality: {personality}, speed: 8.0 }}\nmetrics: {{ scrape_interval: 200ms }}\noutput: {{ dir: {} }}\nworkload:\n  concurrency: 8\n  requests: 160\n  dataset: {{ kind: random, input_len: 64, output_len: 64 }}\n  ignore_eos: true\n",
            dir.join("out").display()
        ),
    )
}

fn result(dir: &std::path::Path) -> Value {
    common::result(dir)
}

#[test]
fn a_run_saves_the_servers_view_and_it_agrees_with_the_client() {
    let d = tempfile::tempdir().unwrap();
    let exp = sim_experiment(d.path(), "sglang");
    common::bin(120)
        .args(["run", "--no-tui"])
        .arg(&exp)
        .assert()
        .success()
        .stdout(predicates::str::contains("server /metrics (sglang)"));
    let r = result(d.path());
    let m = &r["server_metrics"];
    assert_eq!(m["framework"], "sglang");
    assert_eq!(m["interval_ms"], 200.0);
    let s = &m["summary"];
    assert!(s["scrapes"].as_u64().unwrap() >= 3, "{s}");
    assert_eq!(s["gaps"], 0);
    assert!(s["peak_running"].as_f64().unwrap() >= 1.0);
    let server = s["generation_tokens_per_s"].as_f64().unwrap();
    let client = r["summary"]["output_throughput"].as_f64().unwrap();
    assert!(
        (server / client - 1.0).abs() < 0.35,
        "server {server:.0} tok/s vs client {client:.0} tok/s"
    );
    // Samples are stamped against the timed window: some before it, most in it.
    let ts: Vec<f64> = m["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["t_ms"].as_f64().unwrap())
        .collect();
    assert!(ts.windows(2).all(|w| w[0] < w[1]));
    assert!(ts.iter().any(|t| *t > 0.0));
}

#[test]
fn scraping_can_be_turned_off() {
    let d = tempfile::tempdir().unwrap();
    let exp = sim_experiment(d.path(), "vllm");
    common::bin(120)
        .args(["run", "--no-tui", "--set", "metrics.scrape=false"])
        .arg(&exp)
        .assert()
        .success();
    assert!(result(d.path())["server_metrics"].is_null());
}

#[test]
fn monitor_prints_a_line_per_scrape_and_fails_when_nothing_answers() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt
        .block_on(sim::start(cfg(Personality::Vllm), "127.0.0.1:0"))
        .unwrap();
    let out = common::bin(120)
        .args([
            "monitor",
            "--no-tui",
            "--interval",
            "200ms",
            "--duration",
            "1s",
        ])
        .arg(s.base_url())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!((4..=7).contains(&lines.len()), "{text}");
    assert!(lines.iter().all(|l| l.contains("running 0")), "{text}");
    drop(s);
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    common::bin(120)
        .args([
            "monitor",
            "--no-tui",
            "--duration",
            "500ms",
            "--interval",
            "200ms",
        ])
        .arg(&url)
        .assert()
        .code(1)
        .stdout(predicates::str::contains("gap:"))
        .stderr(predicates::str::contains("no scrape of"));
    common::bin(120)
        .args(["monitor", "localhost:8000"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("not an http:// or https:// URL"));
}

// ---- the view itself ----

fn record(id: u64, sent_ms: f64, ttft: f64, e2el: f64, error: Option<&str>) -> RequestRecord {
    serde_json::from_value(json!({
        "id": id, "sent_ms": sent_ms, "ttft_ms": ttft, "e2el_ms": e2el,
        "input_tokens": 64, "output_tokens": 64, "tokens_source": "usage", "reads": 64,
        "error": error.map(|m| json!({"kind": "status", "message": m, "status": 503})),
    }))
    .unwrap()
}

fn draw(s: &Snapshot) -> String {
    draw_at(s, 100, 30)
}

fn draw_at(s: &Snapshot, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| f.render_widget(s, f.area())).unwrap();
    t.backend().to_string()
}

/// Asserts that `view` shows each of `pieces`.
fn shows(view: &str, pieces: &[&str]) {
    for p in pieces {
        assert!(view.contains(p), "{p:?} missing:\n{view}");
    }
}

/// Rows of the view with nothing between its borders.
fn empty_rows(view: &str) -> usize {
    view.lines()
        .filter(|l| {
            let inside = l.trim_matches('"').trim_matches(|c| c == '│' || c == '"');
            inside.trim().is_empty()
        })
        .count()
}

/// A run 12 s in: 6 s of 10 req/s, two failures, one scrape.
fn running_view(now: Instant) -> Live {
    let mut live = Live::new("demo · m on simulator", Some(200), true);
    live.set_phase("running");
    live.set_pod(
        Some("pod abc123 · NVIDIA H100 80GB HBM3 · $2.99/hour".into()),
        Some(0.0125),
    );
    let gaps = [10.0, 12.0, 11.0, 30.0];
    for i in 0..60u64 {
        let ttft = 40.0 + (i % 10) as f64;
        let mut r = record(i, i as f64 * 100.0, ttft, 500.0, None);
        r.itl_ms = Some(gaps.to_vec());
        live.on_record(&r, now);
    }
    live.on_record(
        &record(60, 6000.0, 0.0, 3.0, Some("HTTP 503: overloaded")),
        now,
    );
    live.on_record(
        &record(61, 6100.0, 0.0, 3.0, Some("HTTP 503: overloaded")),
        now,
    );
    live.on_server(
        "http://127.0.0.1:8000/metrics",
        Some(Framework::Vllm),
        &ServerSample {
            running: Some(8.0),
            waiting: Some(2.0),
            kv_cache_usage: Some(0.42),
            prefix_cache_hit_rate: Some(0.25),
            generation_tokens_per_s: Some(640.0),
            prompt_tokens_per_s: Some(2000.0),
            preemptions_total: Some(0.0),
            ttft_mean_ms: Some(41.5),
            itl_mean_ms: Some(15.75),
            ..ServerSample::default()
        },
    );
    live
}

#[test]
fn the_view_while_starting() {
    let mut live = Live::new("demo · m on runpod", Some(200), true);
    live.set_phase("waiting for the server");
    let mut s = live.snapshot(
        Instant::now(),
        0,
        vec![
            "created pod abc123 (NVIDIA H100 80GB HBM3, $2.99/hour); waiting for it to run".into(),
        ],
    );
    s.elapsed = Duration::from_secs(95);
    insta::assert_snapshot!("starting", draw(&s));
}

#[test]
fn the_view_while_running_with_errors() {
    let now = Instant::now();
    let mut s = running_view(now).snapshot(now, 16, Vec::new());
    s.elapsed = Duration::from_secs(12);
    assert_eq!((s.done, s.failed, s.in_flight), (60, 2, 16));
    // Overall percentiles come from the histogram (0.1 % precision), recent ones exactly.
    let ttft = s.latency[0].1;
    assert!((ttft[0].unwrap() - 44.5).abs() < 1e-9);
    assert!((ttft[2].unwrap() - 44.0).abs() < 0.05);
    insta::assert_snapshot!("running_with_errors", draw(&s));
}

fn a_scrape_gap(live: &mut Live) {
    live.on_server(
        "http://127.0.0.1:8000/metrics",
        Some(Framework::Vllm),
        &ServerSample {
            error: Some("HTTP 500".into()),
            ..ServerSample::default()
        },
    );
}

#[test]
fn the_view_when_finished_with_help_open_and_a_scrape_gap() {
    let now = Instant::now();
    let mut live = running_view(now);
    a_scrape_gap(&mut live);
    live.set_phase("saving");
    // Eleven seconds later the recent window is empty; the overall figures stay.
    let later = now + Duration::from_secs(11);
    let mut s = live.snapshot(later, 0, vec!["terminated pod abc123".into()]);
    assert_eq!(s.latency[0].1[0], None);
    assert!(s.latency[0].1[2].is_some());
    s.elapsed = Duration::from_secs(23);
    insta::assert_snapshot!("finished", draw(&s));
    s.help = true;
    insta::assert_snapshot!("help", draw(&s));
}

#[test]
fn at_80_by_24_the_view_keeps_its_charts_its_column_heads_and_its_newest_notice() {
    let now = Instant::now();
    let mut live = running_view(now);
    a_scrape_gap(&mut live);
    let mut s = live.snapshot(now, 16, vec!["created pod abc123".into()]);
    s.elapsed = Duration::from_secs(12);
    let view = draw_at(&s, 80, 24);
    shows(
        &view,
        &[
            "TTFT ms",
            "ITL ms",
            "p50 10s",
            "p99 10s",
            "p50 all",
            "p99 all",
            "done 60",
            "failed 2",
            "in flight 16",
            "KV cache 42.0%",
            "last scrape failed: HTTP 500",
            "created pod abc123",
        ],
    );
    insta::assert_snapshot!("running_80x24", view);
}

#[test]
fn monitor_charts_the_servers_gauges_over_time() {
    let mut live = Live::new("monitor · http://127.0.0.1:8000", None, false);
    live.set_phase("monitoring");
    for k in 0..40u32 {
        let k = f64::from(k);
        live.on_server(
            "http://127.0.0.1:8000/metrics",
            Some(Framework::Vllm),
            &ServerSample {
                running: Some(k.min(16.0)),
                waiting: Some((k - 16.0).max(0.0)),
                kv_cache_usage: Some((k / 40.0).min(1.0)),
                prefix_cache_hit_rate: Some(0.5),
                generation_tokens_per_s: Some(100.0 * k),
                prompt_tokens_per_s: Some(400.0 * k),
                preemptions_total: Some(0.0),
                ttft_mean_ms: Some(40.0),
                itl_mean_ms: Some(12.0),
                ..ServerSample::default()
            },
        );
    }
    let mut s = live.snapshot(Instant::now(), 0, Vec::new());
    s.elapsed = Duration::from_secs(40);
    let history = &s.server.as_ref().unwrap().history;
    assert_eq!(history.running.len(), 40);
    assert_eq!(history.generation_tok_s.last(), Some(&3900));
    assert_eq!(history.kv_pct.last(), Some(&98));
    let view = draw_at(&s, 100, 30);
    shows(
        &view,
        &[
            "generation tok/s 3900",
            "prompt tok/s 15600",
            "running requests 16",
            "waiting requests 23",
            "KV cache % 98",
        ],
    );
    assert!(empty_rows(&view) <= 2, "mostly empty rows:\n{view}");
    insta::assert_snapshot!("monitor", view);
    // At 80×24 too.
    let small = draw_at(&s, 80, 24);
    assert!(small.contains("KV cache % 98"), "{small}");
}

/// Runs `cmd` under a pseudo-terminal (util-linux `script`), returning everything it wrote.
fn under_pty(cmd: &str, env: &[(&str, &str)]) -> Option<(bool, Vec<u8>)> {
    let mut c = std::process::Command::new("script");
    c.args(["-q", "-e", "-c", cmd, "/dev/null"])
        .env("LLM_INF_BENCH_CONFIG", "/nonexistent")
        .env("TERM", "xterm")
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().ok()?;
    Some((out.status.success(), out.stdout))
}

/// `run` of a 40-request simulator experiment under a pseudo-terminal 100×30 with `env`; the
/// scratch directory, whether it succeeded, and everything it wrote.
fn run_under_pty(env: &[(&str, &str)]) -> (tempfile::TempDir, bool, String) {
    let d = tempfile::tempdir().unwrap();
    let exp = sim_experiment(d.path(), "vllm");
    let bin = assert_cmd::cargo::cargo_bin("llm-inf-bench");
    let cmd = format!(
        "stty cols 100 rows 30; {} run {} --set workload.requests=40",
        bin.display(),
        exp.display()
    );
    // util-linux's `script` is part of every Debian (bsdutils): missing, the test fails.
    let (ok, out) = under_pty(&cmd, env).expect("util-linux `script` is needed for the pty tests");
    (d, ok, String::from_utf8_lossy(&out).into_owned())
}

#[test]
fn a_panic_inside_the_draw_loop_restores_the_terminal_and_the_run_still_saves() {
    let (d, ok, text) = run_under_pty(&[("LLMIB_TUI_TEST_PANIC", "1")]);
    let enter = text
        .find("\x1b[?1049h")
        .expect("the view took the terminal");
    let panic = text
        .find("test panic inside the draw loop")
        .expect("the panic");
    // The hook leaves the alternate screen and raw mode before the message is printed, so
    // the message is readable; the summary follows on the normal screen.
    assert!(
        text[enter..panic].contains("\x1b[?1049l"),
        "restored before the panic message: {text:?}"
    );
    assert!(panic < text.rfind("Successful requests").unwrap());
    assert!(text.contains("\x1b[?25h"), "cursor shown again");
    // The run itself went on without its view, finished and saved.
    assert!(ok, "{text}");
    assert_eq!(result(d.path())["summary"]["completed"], 40);
}

#[test]
fn the_view_runs_under_a_real_terminal_and_q_is_not_needed_to_finish() {
    let (_d, ok, text) = run_under_pty(&[]);
    assert!(ok, "{text}");
    assert!(text.contains("llm-inf-bench"), "the view was drawn");
    // ratatui moves the cursor over blanks, so words arrive one by one.
    for w in ["throughput", "latency", "TTFT", "server"] {
        assert!(text.contains(w), "{w} drawn");
    }
    let leave = text
        .rfind("\x1b[?1049l")
        .expect("left the alternate screen");
    assert!(leave < text.rfind("Successful requests").unwrap());
}
