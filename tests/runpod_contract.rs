//! The RunPod client's real code against Stoplight Prism serving RunPod's own OpenAPI document
//! (`scripts/prism.sh start`; `.ci/run` does that and sets `LLMIB_PRISM_URL` and
//! `LLMIB_PRISM_DYNAMIC_URL`). They are `#[ignore]`d, so a plain `cargo test` lists them as
//! ignored; `scripts/test.sh` runs them with `--include-ignored`, and there a missing Prism fails
//! them.
//!
//! Prism checks every request against the document (a violation is a 422 with an
//! `sl-violations` header) and answers with its examples; `Prefer: code=N` picks a documented
//! error, which a test-only proxy here adds; `-d` answers random schema-valid data. Prism keeps
//! no state, so lifecycles are tested against the stateful fake in `tests/runpod.rs`, which
//! checks request bodies against the same document with `unevaluatedProperties` (which Prism
//! does not enforce).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use llm_inf_bench::config::{self, LoadOptions, Secret, UserConfigSource};
use llm_inf_bench::provider::runpod::api::{ApiError, RunPodApi};
use llm_inf_bench::provider::runpod::{self, answers::PodStatus};

/// Prism's URL from the environment; a test that needs it and does not find it fails.
fn prism(var: &str) -> String {
    match std::env::var(var) {
        Ok(u) if !u.is_empty() => u,
        _ => panic!("{var} is not set: run `scripts/prism.sh start` and `eval $(scripts/prism.sh env)` first (scripts/test.sh does this)"),
    }
}

fn api(base: &str) -> RunPodApi {
    RunPodApi::new(Secret::new("rpa_contract_test"), Some(base.to_string())).unwrap()
}

/// The create body our code sends for a typical experiment (vLLM, two GPU types, env, HF token).
fn create_body() -> runpod::types::CreatePodRequest {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("exp.yaml");
    std::fs::write(
        &p,
        "name: contract\nmodel: { id: Qwen/Qwen2.5-0.5B-Instruct, max_model_len: 4096 }\nframework: { kind: vllm, env: { VLLM_LOGGING_LEVEL: INFO } }\ninfrastructure:\n  provider: runpod\n  gpu_type: NVIDIA GeForce RTX 4090\n  fallback_gpu_types: [NVIDIA RTX A6000]\n  data_centers: [US-KS-2]\nworkload: { concurrency: 4, requests: 10 }\n",
    )
    .unwrap();
    let r = config::load(
        &p,
        &LoadOptions {
            user_config: UserConfigSource::None,
            env: Some(Vec::new()),
            ..LoadOptions::default()
        },
    )
    .unwrap();
    runpod::create_request(
        &r,
        "llm-inf-bench-contract-20261125-000000",
        "NVIDIA GeForce RTX 4090",
        Some(&Secret::new("hf_contract")),
        Some(&Secret::random_key()),
    )
    .unwrap()
}

#[tokio::test]
#[ignore = "needs Prism (scripts/test.sh starts it)"]
async fn every_request_we_send_is_one_runpod_documents() {
    let base = prism("LLMIB_PRISM_URL");
    let api = api(&base);
    // A violation would be a 422 from Prism, which our client turns into an error.
    let pod = api.create_pod(&create_body()).await.expect("create");
    assert!(!pod.id.is_empty());
    let got = api.get_pod(&pod.id).await.expect("get");
    assert!(matches!(got.status, PodStatus::Running));
    api.list_pods().await.expect("list");
    let gpu = api
        .gpu_type("NVIDIA GeForce RTX 4090")
        .await
        .expect("catalog");
    assert!(gpu.price.secure.is_some_and(|p| p > 0.0));
    api.delete_pod(&pod.id).await.expect("terminate");
    let logs = api.pod_logs(&pod.id, None).await.expect("logs");
    let text = logs.text().await.unwrap();
    assert!(text.contains("data:"), "{text}");
}

/// A proxy in front of Prism that asks for documented status `code` on the first `times`
/// requests (`Prefer: code=N`), rewriting `Retry-After` to 0 so retries are quick.
async fn proxy(target: String, code: u16, times: u32) -> (String, Arc<AtomicU32>) {
    let seen = Arc::new(AtomicU32::new(0));
    let s = seen.clone();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let (http, target, s) = (http.clone(), target.clone(), s.clone());
        async move {
            let n = s.fetch_add(1, Ordering::SeqCst);
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20)
                .await
                .unwrap_or_default();
            let url = format!(
                "{target}{}",
                parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/")
            );
            let mut fwd = http.request(parts.method.clone(), url).body(body);
            for (k, v) in &parts.headers {
                if k != "host" && k != "content-length" {
                    fwd = fwd.header(k, v);
                }
            }
            if n < times {
                fwd = fwd.header("prefer", format!("code={code}"));
            }
            let resp = fwd.send().await.unwrap();
            let mut out = axum::http::Response::builder().status(resp.status().as_u16());
            for (k, v) in resp.headers() {
                if k == "retry-after" {
                    out = out.header(k, "0");
                } else if k != "content-length" && k != "transfer-encoding" {
                    out = out.header(k, v);
                }
            }
            out.body(axum::body::Body::from(
                resp.bytes().await.unwrap_or_default(),
            ))
            .unwrap()
        }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    (url, seen)
}

/// Prism's origin (`http://host:port`) and the document's base path (`/v2`).
fn split(base: &str) -> (String, String) {
    let i = base.find("/v2").unwrap_or(base.len());
    (base[..i].to_string(), base[i..].to_string())
}

#[tokio::test]
#[ignore = "needs Prism (scripts/test.sh starts it)"]
async fn documented_errors_are_handled_as_designed() {
    let base = prism("LLMIB_PRISM_URL");
    let (origin, path) = split(&base);
    // 401, 403, 404: no retry, RunPod's own words in the error.
    for code in [401u16, 403, 404] {
        let (url, seen) = proxy(origin.clone(), code, u32::MAX).await;
        let err = api(&format!("{url}{path}"))
            .get_pod("abc")
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(code), "{err}");
        assert_eq!(seen.load(Ordering::SeqCst), 1, "{code} is not retried");
        assert!(!err.to_string().is_empty());
    }
    // A 404 on terminate means the pod is already gone: success.
    let (url, _) = proxy(origin.clone(), 404, u32::MAX).await;
    api(&format!("{url}{path}"))
        .delete_pod("abc")
        .await
        .expect("404 on delete is fine");
    // 400 on create (no capacity / broken rule): returned for the caller's GPU fallback.
    let (url, seen) = proxy(origin.clone(), 400, u32::MAX).await;
    let err = api(&format!("{url}{path}"))
        .create_pod(&create_body())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    // 429 and 500, once each: retried, then the answer comes through.
    for code in [429u16, 500] {
        let (url, seen) = proxy(origin.clone(), code, 1).await;
        let pods = api(&format!("{url}{path}")).list_pods().await;
        assert!(pods.is_ok(), "{code} then 200: {pods:?}", pods = pods.err());
        assert_eq!(seen.load(Ordering::SeqCst), 2, "{code} retried once");
    }
    // 429 for ever: retried a bounded number of times, then RunPod's answer.
    let (url, seen) = proxy(origin.clone(), 429, u32::MAX).await;
    let err = api(&format!("{url}{path}")).list_pods().await.unwrap_err();
    assert_eq!(err.status(), Some(429));
    assert_eq!(seen.load(Ordering::SeqCst), 6, "five retries");
}

#[tokio::test]
#[ignore = "needs Prism (scripts/test.sh starts it)"]
async fn random_schema_valid_answers_never_break_the_decoder() {
    let base = prism("LLMIB_PRISM_DYNAMIC_URL");
    let api = api(&base);
    let mut undecodable = Vec::new();
    for _ in 0..25 {
        for r in [
            api.get_pod("abc").await.map(|_| ()),
            api.list_pods().await.map(|_| ()),
            api.gpu_type("NVIDIA GeForce RTX 4090").await.map(|_| ()),
            api.create_pod(&create_body()).await.map(|_| ()),
        ] {
            match r {
                Ok(()) => {}
                Err(e @ ApiError::Undecodable { .. }) => undecodable.push(e.to_string()),
                Err(e) => panic!("unexpected: {e}"),
            }
        }
    }
    // Types generated from the same document read whatever the document allows.
    assert!(undecodable.is_empty(), "{undecodable:#?}");
}
