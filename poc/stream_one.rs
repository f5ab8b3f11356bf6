//! Streams one chat completion and prints when each chunk arrived.
//!
//!     cargo run --example stream_one -- http://127.0.0.1:8000 MODEL "Why is the sky blue?"
//!
//! Start a server first, e.g. `llm-inf-bench serve-sim --port 8000`.

use std::time::Instant;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let base = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8000".into());
    let model = args
        .next()
        .unwrap_or_else(|| "meta-llama/Llama-3.1-8B-Instruct".into());
    let prompt = args.next().unwrap_or_else(|| "Why is the sky blue?".into());
    let body = serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 32,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let client = reqwest::Client::builder().no_proxy().build()?;
    let sent = Instant::now();
    let mut resp = client
        .post(format!("{base}/v1/chat/completions"))
        .json(&body)
        .send()
        .await?;
    println!(
        "status {} after {:.2} ms",
        resp.status(),
        sent.elapsed().as_secs_f64() * 1e3
    );
    let mut pending = String::new();
    let mut last = sent;
    while let Some(chunk) = resp.chunk().await? {
        let now = Instant::now();
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = pending.find("\n\n") {
            let event: String = pending.drain(..end + 2).collect();
            let data = event.trim().trim_start_matches("data:").trim();
            let text = serde_json::from_str::<serde_json::Value>(data)
                .ok()
                .and_then(|v| {
                    let d = v.pointer("/choices/0/delta/content").cloned();
                    d.or_else(|| v.get("usage").cloned())
                })
                .map(|v| v.to_string())
                .unwrap_or_else(|| data.to_string());
            println!(
                "+{:8.3} ms  (gap {:7.3} ms)  {}",
                (now - sent).as_secs_f64() * 1e3,
                (now - last).as_secs_f64() * 1e3,
                text
            );
        }
        last = now;
    }
    Ok(())
}
