//! The simulated inference server (`llm-inf-bench serve-sim`, `provider: simulator`): a real
//! HTTP server that looks like vLLM or SGLang from the outside (endpoints, SSE chunks, usage,
//! error bodies, `/metrics` names) and runs a small documented engine model inside
//! ([`engine`]). It injects faults on demand and is deterministic under a seed.
//!
//! It shares no code with the benchmark client: a wire-format bug cannot hide in both.

pub mod engine;
pub mod faults;
mod messages;
pub mod metrics;
mod responses;
mod server;
mod stamped;
pub mod tokenizer;

use std::net::SocketAddr;
use std::time::Duration;

pub use engine::{profile, Profile};
pub use faults::{Faults, Hostile};

use crate::config::{Personality, SimProfile};

/// Everything that shapes a simulator instance.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub personality: Personality,
    pub profile: Profile,
    /// The served model name (any name; requests naming another model get a 404).
    pub model: String,
    /// Time scale: 2.0 runs twice as fast as the profile.
    pub speed: f64,
    pub seed: u64,
    /// Overrides the profile's batch limit.
    pub max_num_seqs: Option<usize>,
    /// Overrides the profile's context length.
    pub max_model_len: Option<u32>,
    /// Overrides the profile's KV-cache budget (tokens).
    pub kv_tokens: Option<u64>,
    /// Override for time-to-healthy (the profile's load time by default).
    pub startup_delay: Option<Duration>,
    /// The first N output tokens of each answer are reasoning (`delta.reasoning` for vLLM,
    /// `delta.reasoning_content` for SGLang).
    pub reasoning_tokens: u32,
    /// This share of each answer's tokens are reasoning (the larger of the two counts wins).
    pub reasoning_share: f64,
    /// A model that never emits EOS (as a random-weight one): every answer runs to its cap,
    /// as with `ignore_eos` — for APIs that cannot ask for it (Anthropic Messages).
    pub never_eos: bool,
    /// LoRA adapters served beside the base model (a request's `model` may name one).
    pub adapters: Vec<String>,
    /// An engine step holding any adapter's request takes this much longer (0.2: 20 %).
    pub lora_slowdown: f64,
    /// Keep the last N requests' `messages` / `prompt` for `GET /sim/requests` (0: none).
    pub record_requests: usize,
    pub faults: Faults,
    /// When set, `/v1/*` answers 401 without `Authorization: Bearer <key>` (vLLM's `--api-key`).
    pub api_key: Option<crate::config::Secret>,
    /// Speculative decoding: K draft tokens a step, each accepted with this chance (the
    /// engine profiles only; `engine::SpecDecode`, seeded from `seed`).
    pub spec_decode: Option<(u32, f64)>,
    /// Graded sets answered from their key (`crate::evals::AnswerKey`): a prompt the key holds
    /// gets its answer ("The answer is 42.") and EOS, any other prompt the usual words.
    pub answer_key: Option<std::sync::Arc<crate::evals::AnswerKey>>,
}

impl SimConfig {
    /// A simulator with `which` engine profile.
    pub fn new(which: SimProfile, personality: Personality, model: impl Into<String>) -> Self {
        Self {
            personality,
            profile: profile(which),
            model: model.into(),
            speed: 1.0,
            seed: 0,
            max_num_seqs: None,
            max_model_len: None,
            kv_tokens: None,
            startup_delay: None,
            reasoning_tokens: 0,
            reasoning_share: 0.0,
            never_eos: false,
            adapters: Vec::new(),
            lora_slowdown: 0.0,
            record_requests: 0,
            faults: Faults::default(),
            api_key: None,
            spec_decode: None,
            answer_key: None,
        }
    }

    fn effective_profile(&self) -> Profile {
        let mut p = self.profile.clone();
        if let Some(n) = self.max_num_seqs {
            p.max_num_seqs = n.max(1);
        }
        if let Some(n) = self.max_model_len {
            p.max_model_len = n;
        }
        if let Some(n) = self.kv_tokens {
            p.kv_tokens = n.max(1);
        }
        p.spec = self
            .spec_decode
            .map(|(k, token_acceptance)| engine::SpecDecode {
                k,
                token_acceptance: token_acceptance.clamp(0.0, 1.0),
                seed: self.seed,
            });
        p
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("speed must be a positive number, found {0}")]
    BadSpeed(f64),
}

/// A running simulator. Dropping it stops the server.
pub struct SimHandle {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting and waits for the accept loop to end.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Starts a simulator on `addr` (use `127.0.0.1:0` for an ephemeral port) in the current
/// tokio runtime.
pub async fn start(cfg: SimConfig, addr: &str) -> Result<SimHandle, SimError> {
    if !(cfg.speed > 0.0 && cfg.speed.is_finite()) {
        return Err(SimError::BadSpeed(cfg.speed));
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| SimError::Bind {
            addr: addr.to_string(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| SimError::Bind {
        addr: addr.to_string(),
        source,
    })?;
    // The fixed-timing profile's truth starts at the socket: stamping is on before the first
    // request can arrive.
    if cfg.profile.fixed.is_some() {
        stamped::enable_on_listener(&listener).await;
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(server::serve(listener, cfg, rx));
    Ok(SimHandle {
        addr: local,
        shutdown: Some(tx),
        task: Some(task),
    })
}
