//! The client-ceiling load of `scripts/bench.sh ceiling` as a bare loop, through reqwest (HTTP/1
//! only, no proxy, one pooled connection per stream) or through this project's hot path
//! (`client::connect` + `client::send`: its own HTTP/1.1 (`client::wire`), kernel-stamped
//! reads, token classification), with no executor, aggregation or result file — to see what the HTTP layer
//! costs. Same request body, same SSE splitter; the reqwest side only counts events (it skips
//! the classification), which flatters it.
//!
//!     taskset -c 0 llm-inf-bench serve-sim --profile instant --port 18556 --model m --startup-delay 0s &
//!     taskset -c 1 cargo run --release --example reqwest_ceiling -- http://127.0.0.1:18556 256 20000 reqwest
//!     taskset -c 1 cargo run --release --example reqwest_ceiling -- http://127.0.0.1:18556 256 20000 client

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use llm_inf_bench::client::{self, request_body, sse::SseSplitter, Endpoint};
use llm_inf_bench::config::Api;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let base = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:18556".into());
    let concurrency: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(256);
    let requests: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(20_000);
    // `hyper` was this mode's name while the hot path sat on hyper's client.
    if matches!(args.next().as_deref(), Some("client" | "hyper")) {
        return ours(&base, concurrency, requests).await;
    }
    let client = reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let url = format!("{base}/v1/chat/completions");
    let body = body();
    // Warm one connection per stream first, as the real client does.
    let warm: Vec<_> = (0..concurrency)
        .map(|_| client.post(&url).body(body.clone()).send())
        .collect();
    for r in futures_util::future::join_all(warm).await {
        r?.bytes().await?;
    }
    let next = Arc::new(AtomicU64::new(0));
    let events = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, body, next, events) = (
                client.clone(),
                url.clone(),
                body.clone(),
                next.clone(),
                events.clone(),
            );
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < requests {
                    let Ok(resp) = client.post(&url).body(body.clone()).send().await else {
                        continue;
                    };
                    let mut stream = resp.bytes_stream();
                    let mut splitter = SseSplitter::new();
                    let mut n = 0u64;
                    while let Some(Ok(chunk)) = stream.next().await {
                        let mut done = false;
                        splitter.feed(&chunk, |ev| {
                            n += 1;
                            done = ev == b"[DONE]";
                            !done
                        });
                        if done {
                            break;
                        }
                    }
                    events.fetch_add(n, Ordering::Relaxed);
                }
            })
        })
        .collect();
    report("reqwest", tasks, t0, concurrency, requests, &events).await
}

/// The ceiling's request: 128 tokens, exactly.
fn body() -> bytes::Bytes {
    request_body(
        Api::Chat,
        "m",
        r#"[{"role":"user","content":"hello there"}]"#,
        128,
        true,
    )
}

/// Waits for the streams and prints the rates.
async fn report(
    what: &str,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    t0: Instant,
    concurrency: usize,
    requests: u64,
    events: &AtomicU64,
) -> Result<(), Box<dyn std::error::Error>> {
    for t in tasks {
        t.await?;
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "{what}: concurrency {concurrency}, {requests} requests in {secs:.2} s: {:.0} req/s, {:.0} events/s",
        requests as f64 / secs,
        events.load(Ordering::Relaxed) as f64 / secs
    );
    Ok(())
}

/// The same loop on this project's hot path.
async fn ours(
    base: &str,
    concurrency: usize,
    requests: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let ep = Arc::new(Endpoint::parse(base, Api::Chat, None)?);
    let body = body();
    let bounds = client::Bounds {
        timeout: std::time::Duration::from_secs(60),
        deadline: None,
        max_tokens: 128,
        max_event_bytes: 1 << 20,
        keep_text: false,
    };
    let mut conns = Vec::new();
    for _ in 0..concurrency {
        let mut c = client::connect(&ep).await.map_err(|e| e.message)?;
        client::send(&mut c, &ep, body.clone(), &bounds, Instant::now()).await;
        conns.push(c);
    }
    let next = Arc::new(AtomicU64::new(0));
    let events = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut c| {
            let (ep, body, next, events) = (ep.clone(), body.clone(), next.clone(), events.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < requests {
                    let r = client::send(&mut c, &ep, body.clone(), &bounds, t0).await;
                    events.fetch_add(r.output_tokens as u64, Ordering::Relaxed);
                    if r.error.is_some() {
                        match client::connect(&ep).await {
                            Ok(n) => c = n,
                            Err(_) => return,
                        }
                    }
                }
            })
        })
        .collect();
    report(
        "client::send (own HTTP/1.1)",
        tasks,
        t0,
        concurrency,
        requests,
        &events,
    )
    .await
}
