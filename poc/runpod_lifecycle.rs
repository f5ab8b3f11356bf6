//! The RunPod pod lifecycle by hand: create → wait until RUNNING with the port mapped → print
//! the server URL → terminate. Against RunPod itself this rents a GPU (it costs money); point
//! `RUNPOD_API_BASE` at a fake to try it for free.
//!
//!     RUNPOD_API_KEY=... cargo run --example runpod_lifecycle -- "NVIDIA GeForce RTX 4090"
//!     RUNPOD_API_BASE=http://127.0.0.1:9000/v2 RUNPOD_API_KEY=x cargo run --example runpod_lifecycle
//!
//! The pod is terminated on every way out of `main` once it exists, including Ctrl-C while it
//! provisions. (The `run` command adds the detached watchdog for `kill -9`.)

use std::time::{Duration, Instant};

use llm_inf_bench::config::Secret;
use llm_inf_bench::provider::runpod::answers::PodStatus;
use llm_inf_bench::provider::runpod::api::RunPodApi;
use llm_inf_bench::provider::runpod::types::CreatePodRequest;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let gpu = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "NVIDIA GeForce RTX 4090".into());
    let key = Secret::from_env("RUNPOD_API_KEY").ok_or("set RUNPOD_API_KEY")?;
    let api = RunPodApi::new(key, None)?;
    println!("API: {}", api.base());
    let body: CreatePodRequest = serde_json::from_value(serde_json::json!({
        "name": "llm-inf-bench-poc-lifecycle",
        "image": "vllm/vllm-openai:v0.32.0",
        "args": "--model Qwen/Qwen2.5-0.5B-Instruct --port 8000",
        "ports": ["8000/tcp"],
        "gpu": {"id": gpu, "count": 1},
        "cloud": "SECURE",
    }))?;
    let pod = api.create_pod(&body).await?;
    println!("created {} (${:.2}/hour)", pod.id, pod.cost());
    let start = Instant::now();
    let waited = tokio::select! {
        r = wait(&api, &pod.id) => r,
        _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
    };
    match &waited {
        Ok(url) => println!("running after {:.1?}: {url}", start.elapsed()),
        Err(e) => eprintln!("not running: {e}"),
    }
    api.delete_pod(&pod.id).await?;
    println!("terminated {}", pod.id);
    waited.map(|_| ())
}

/// Polls with backoff until RUNNING with port 8000 mapped; the server's URL.
async fn wait(api: &RunPodApi, id: &str) -> Result<String, Box<dyn std::error::Error>> {
    let mut delay = Duration::from_millis(500);
    for _ in 0..200 {
        let p = api.get_pod(id).await?;
        println!("  status {:?}", p.status);
        match p.status {
            PodStatus::Running => {
                if let Some(url) = p.runtime.as_ref().and_then(|rt| {
                    rt.ports.iter().find_map(|m| {
                        (m.private == Some(8000))
                            .then(|| Some(format!("http://{}:{}", m.ip.as_deref()?, m.public?)))?
                    })
                }) {
                    return Ok(url);
                }
            }
            ref s if s.is_final() => return Err(format!("pod is {}", s.as_str()).into()),
            _ => {}
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
    Err("gave up waiting".into())
}
