//! HTTP side of the simulator: the OpenAI-compatible endpoints, SSE framing byte-for-byte as
//! vLLM writes it (`reference/chat-stream-sample.txt`), error bodies per personality, faults.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::engine::{self, AnswerChain, Emit, Profile, Submit};
use super::faults::{Hostile, RequestFaults, FAULT_HEADER};
use super::metrics::SimMetrics;
use super::stamped::{self, Arrival};
use super::tokenizer::{self, BlockChain};
use super::SimConfig;
use crate::config::Personality;

mod pooling;

struct Sim {
    cfg: SimConfig,
    profile: Profile,
    started: Instant,
    startup: Duration,
    metrics: Arc<Mutex<SimMetrics>>,
    engine: Option<mpsc::UnboundedSender<Submit>>,
    counter: AtomicU64,
    in_flight: AtomicU64,
    model_json: String,
    created: u64,
    /// What the fixed-timing profile really did, per request (the truth a client is judged by).
    truth: Mutex<Truth>,
    /// Cancelled when the server dies (`Faults::exit_after`): no more accepts, every
    /// connection dropped.
    dead: tokio_util::sync::CancellationToken,
    /// The last `record_requests` requests' `messages` (or `prompt`), oldest first.
    received: Mutex<std::collections::VecDeque<Value>>,
    /// Prefix-cache flushes asked for; the engine empties its cache when this moves.
    flushes: Arc<AtomicU64>,
}

/// Server-side TTFT and ITL of fixed-timing requests: from the kernel's receive time of the
/// request's bytes (the handler's start where the kernel gives none) to when each chunk is
/// handed to the connection. Bounded: the first `TRUTH_CAP` requests are kept.
#[derive(Default, serde::Serialize)]
struct Truth {
    ttft_ms: Vec<f64>,
    itl_ms: Vec<f64>,
    /// Per request: socket arrival → handler start (the server's own HTTP parsing and
    /// scheduling); empty without kernel stamps.
    handler_delay_ms: Vec<f64>,
}

const TRUTH_CAP: usize = 1_000_000;

#[derive(Clone, Copy, PartialEq)]
enum Api {
    Chat,
    Completions,
    Responses,
    Messages,
}

pub(super) async fn serve(
    listener: tokio::net::TcpListener,
    cfg: SimConfig,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let profile = cfg.effective_profile();
    let mut m = SimMetrics::new(cfg.personality);
    // vLLM exports its speculative-decoding counters only when it speculates.
    m.spec = profile.spec.is_some() && !profile.bypasses_engine();
    let metrics = Arc::new(Mutex::new(m));
    let flushes = Arc::new(AtomicU64::new(0));
    let engine = if profile.bypasses_engine() {
        None
    } else {
        let (tx, rx) = mpsc::unbounded_channel();
        let run = engine::run(
            profile.clone(),
            (cfg.speed, cfg.lora_slowdown),
            rx,
            metrics.clone(),
            flushes.clone(),
        );
        tokio::spawn(run);
        Some(tx)
    };
    let startup = cfg
        .startup_delay
        .unwrap_or(profile.load_time.div_f64(cfg.speed));
    let sim = Arc::new(Sim {
        model_json: serde_json::to_string(&cfg.model).unwrap_or_else(|_| "\"model\"".into()),
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        cfg,
        profile,
        started: Instant::now(),
        startup,
        metrics,
        engine,
        counter: AtomicU64::new(0),
        in_flight: AtomicU64::new(0),
        truth: Mutex::new(Truth::default()),
        dead: tokio_util::sync::CancellationToken::new(),
        received: Mutex::new(std::collections::VecDeque::new()),
        flushes,
    });
    let router = routes(&sim);
    let refuse_until = sim.started + sim.cfg.faults.refuse_for;
    let anchor = stamped::Anchor::now();
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            _ = sim.dead.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else {
            // Out of file descriptors and the like: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        if Instant::now() < refuse_until {
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        // The fixed-timing profile measures its truth from the socket (`stamped`); the others
        // take the plain path.
        let stream = match sim.profile.fixed {
            Some(_) => stamped::Stamped::new(stream, anchor),
            None => Err(stream),
        };
        match stream {
            Ok((stream, arrival)) => {
                let svc = tower::ServiceExt::map_request(
                    router.clone(),
                    move |mut req: axum::extract::Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(arrival.clone());
                        req
                    },
                );
                let svc = hyper_util::service::TowerToHyperService::new(svc);
                connection(stream, svc, sim.dead.clone());
            }
            Err(stream) => connection(
                stream,
                hyper_util::service::TowerToHyperService::new(router.clone()),
                sim.dead.clone(),
            ),
        }
    }
}

/// vLLM's `--api-key`: every `/v1` path needs `Authorization: Bearer <key>`; anything else
/// gets a 401 with vLLM's body. Other paths (health, metrics, tokenize) stay open.
async fn require_key(
    State(sim): State<Arc<Sim>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(key) = &sim.cfg.api_key {
        let given = req
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if req.uri().path().starts_with("/v1") && given != Some(key.expose()) {
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"error": "Unauthorized"})),
            )
                .into_response();
        }
    }
    next.run(req).await
}

/// Serves one connection on its own task, until it ends or the server dies.
fn connection<IO, S>(io: IO, svc: S, dead: tokio_util::sync::CancellationToken)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<hyper::Request<hyper::body::Incoming>, Response = Response>
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: std::error::Error + Send + Sync + 'static,
{
    tokio::spawn(async move {
        let conn = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(io), svc);
        tokio::select! {
            _ = conn => {}
            _ = dead.cancelled() => {}
        }
    });
}

impl Sim {
    fn loading(&self) -> bool {
        self.started.elapsed() < self.startup
    }

    /// The 503 every endpoint answers while the model "loads".
    fn loading_error(&self) -> Response {
        self.error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableError",
            "The model is still loading.",
            None,
        )
    }

    fn bad_request(&self, message: &str) -> Response {
        self.error(StatusCode::BAD_REQUEST, "BadRequestError", message, None)
    }

    /// An error body in this personality's shape (vLLM ≥ 0.10.1 nests it; SGLang is flat).
    fn error(
        &self,
        status: StatusCode,
        kind: &str,
        message: &str,
        param: Option<&str>,
    ) -> Response {
        let inner =
            json!({"message": message, "type": kind, "param": param, "code": status.as_u16()});
        let body = match self.cfg.personality {
            Personality::Vllm => json!({ "error": inner }),
            Personality::Sglang | Personality::Trtllm => {
                json!({"object": "error", "message": message, "type": kind, "param": param, "code": status.as_u16()})
            }
        };
        let mut r = (status, axum::Json(body)).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS {
            r.headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
        }
        r
    }
}

/// The request body as JSON, or the message of the 400 a server gives for one that is not.
fn json_body(body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| format!("Invalid JSON body: {e}"))
}

async fn chat(
    State(sim): State<Arc<Sim>>,
    socket: Option<axum::Extension<Arrival>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    generate(sim, socket.map(|s| s.0), headers, body, Api::Chat).await
}

async fn responses(
    State(sim): State<Arc<Sim>>,
    socket: Option<axum::Extension<Arrival>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    generate(sim, socket.map(|s| s.0), headers, body, Api::Responses).await
}

/// Anthropic's route: its errors in Anthropic's shape, as vLLM answers there.
async fn messages(
    State(sim): State<Arc<Sim>>,
    socket: Option<axum::Extension<Arrival>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let r = generate(sim, socket.map(|s| s.0), headers, body, Api::Messages).await;
    if r.status().is_client_error() || r.status().is_server_error() {
        return super::messages::anthropic_error(r).await;
    }
    r
}

async fn completions(
    State(sim): State<Arc<Sim>>,
    socket: Option<axum::Extension<Arrival>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    generate(sim, socket.map(|s| s.0), headers, body, Api::Completions).await
}

/// What a generation request asked for, after validation.
struct Job {
    prompt_tokens: u32,
    block_hashes: Vec<u64>,
    /// The prompt's block chain where its answer starts.
    chain: BlockChain,
    chat: bool,
    output_tokens: u32,
    ends_on_eos: bool,
    stream: bool,
    include_usage: bool,
    words_seed: u64,
    /// Its `model` names a served LoRA adapter.
    lora: bool,
    /// The answer key's words for this prompt (`SimConfig::answer_key`), instead of seeded ones.
    keyed: Option<Arc<[String]>>,
}

impl Job {
    /// The engine's view of this job, and the channel its tokens come back on.
    fn submit(&self) -> (Submit, mpsc::UnboundedReceiver<Emit>) {
        let (events, rx) = mpsc::unbounded_channel();
        let s = Submit {
            prompt_tokens: self.prompt_tokens,
            block_hashes: self.block_hashes.clone(),
            answer: AnswerChain {
                chain: self.chain,
                words_seed: self.words_seed,
                chat: self.chat,
            },
            output_tokens: self.output_tokens,
            ends_on_eos: self.ends_on_eos,
            lora: self.lora,
            arrived: Instant::now(),
            events,
        };
        (s, rx)
    }
}

/// A prompt's tokens, block hashes, seed, and its block chain where the answer starts (a chat
/// answer is the next turn's `assistant` message).
fn prompt_of(
    api: Api,
    req: &Value,
    block_size: usize,
) -> Result<(u32, Vec<u64>, u64, BlockChain), String> {
    let input;
    match api {
        Api::Chat | Api::Responses | Api::Messages => {
            let msgs = match api {
                Api::Responses => {
                    input = super::responses::input_messages(req)?;
                    &input
                }
                Api::Messages => {
                    input = super::messages::request_messages(req)?;
                    &input
                }
                _ => req.get("messages").and_then(Value::as_array).ok_or(
                    "`messages` is required and must be a list of {role, content} objects",
                )?,
            };
            if msgs.is_empty() {
                return Err("`messages` must not be empty".into());
            }
            let words = tokenizer::message_words(msgs);
            let seed = tokenizer::fnv1a(words.join(" ").as_bytes());
            let (hashes, chain) = tokenizer::chain_over(words.into_iter(), block_size);
            Ok((tokenizer::count_messages(msgs), hashes, seed, chain))
        }
        Api::Completions => {
            let prompt = match req.get("prompt") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => {
                    a[0].as_str().unwrap_or_default().to_string()
                }
                Some(Value::Array(_)) => {
                    return Err("only one prompt per request is supported (n=1, one string)".into())
                }
                _ => return Err("`prompt` is required and must be a string".into()),
            };
            let seed = tokenizer::fnv1a(prompt.as_bytes());
            let (hashes, chain) = tokenizer::chain_over(prompt.split_whitespace(), block_size);
            Ok((tokenizer::count(&prompt).max(1), hashes, seed, chain))
        }
    }
}

/// What a request asks for, as the engine will serve it (with the prompt's seed), or the
/// error answer vLLM gives: an unknown model, `n` > 1, a malformed prompt, a context overflow.
fn job_of(sim: &Sim, api: Api, body: &Bytes) -> Result<(Job, u64), Box<Response>> {
    let req = json_body(body).map_err(|m| Box::new(sim.bad_request(&m)))?;
    known_model(sim, &req)?;
    if req.get("n").and_then(Value::as_u64).is_some_and(|n| n != 1) {
        return Err(Box::new(sim.error(
            StatusCode::BAD_REQUEST,
            "BadRequestError",
            "The simulator supports n=1 only.",
            Some("n"),
        )));
    }
    sim.record(&req);
    let (prompt_tokens, block_hashes, prompt_seed, chain) =
        prompt_of(api, &req, sim.profile.block_size).map_err(|e| Box::new(sim.bad_request(&e)))?;
    let requested = requested_tokens(sim, api, &req, prompt_tokens)?;
    let keyed = keyed_answer(sim, api, &req);
    let (output_tokens, ends_on_eos) = match &keyed {
        // A keyed answer ends on EOS after its last word, unless the cap comes first.
        Some(words) => match u32::try_from(words.len()).unwrap_or(u32::MAX) {
            n if n <= requested => (n.max(1), true),
            _ => (requested, false),
        },
        None => output_length(sim, &req, requested, prompt_seed),
    };
    let job = Job {
        prompt_tokens,
        block_hashes,
        chain,
        chat: api != Api::Completions,
        output_tokens,
        ends_on_eos,
        stream: req.get("stream").and_then(Value::as_bool).unwrap_or(false),
        // A Responses or Messages stream always carries its usage.
        include_usage: matches!(api, Api::Responses | Api::Messages)
            || req
                .pointer("/stream_options/include_usage")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        words_seed: sim.cfg.seed ^ prompt_seed.rotate_left(17),
        lora: req
            .get("model")
            .and_then(Value::as_str)
            .is_some_and(|m| sim.cfg.adapters.iter().any(|a| a == m)),
        keyed,
    };
    Ok((job, prompt_seed))
}

/// The answer key's words for a request's prompt: a chat request's last user message, a
/// completion's prompt (the text a grader sends).
fn keyed_answer(sim: &Sim, api: Api, req: &Value) -> Option<Arc<[String]>> {
    let key = sim.cfg.answer_key.as_ref()?;
    let asked = match api {
        Api::Chat => req
            .get("messages")?
            .as_array()?
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))?
            .get("content")?
            .as_str()?,
        Api::Completions => req.get("prompt")?.as_str()?,
        Api::Responses | Api::Messages => return None,
    };
    let said = key.answer(asked)?;
    Some(said.split_whitespace().map(str::to_string).collect())
}

/// vLLM's 404 for a `model` it does not serve (the base model or a LoRA adapter).
fn known_model(sim: &Sim, req: &Value) -> Result<(), Box<Response>> {
    match req.get("model").and_then(Value::as_str) {
        Some(m) if m != sim.cfg.model && !sim.cfg.adapters.iter().any(|a| a == m) => {
            Err(Box::new(sim.error(
                StatusCode::NOT_FOUND,
                "NotFoundError",
                &format!("The model `{m}` does not exist."),
                Some("model"),
            )))
        }
        _ => Ok(()),
    }
}

/// The output cap (`max_completion_tokens`, `max_tokens`, else the rest of the context), or
/// vLLM's 400 when prompt and cap together pass `max_model_len`.
fn requested_tokens(
    sim: &Sim,
    api: Api,
    req: &Value,
    prompt_tokens: u32,
) -> Result<u32, Box<Response>> {
    let max_len = sim.profile.max_model_len;
    let max_tokens = req
        .get("max_completion_tokens")
        .and_then(Value::as_u64)
        .or_else(|| req.get("max_tokens").and_then(Value::as_u64))
        .or_else(|| req.get("max_output_tokens").and_then(Value::as_u64))
        .map(|v| v.min(u32::MAX as u64) as u32);
    let requested = max_tokens.unwrap_or(max_len.saturating_sub(prompt_tokens));
    if prompt_tokens as u64 + requested as u64 > max_len as u64 || requested == 0 {
        let what = match api {
            Api::Chat | Api::Messages => "messages",
            Api::Completions => "prompt",
            Api::Responses => "input",
        };
        return Err(Box::new(sim.bad_request(&format!(
                "This model's maximum context length is {max_len} tokens. However, you requested {} tokens ({prompt_tokens} in the {what}, {requested} in the completion). Please reduce the length of the {what} or completion.",
                prompt_tokens as u64 + requested as u64
            ))));
    }
    Ok(requested)
}

/// How many tokens the answer has and whether it ends on EOS: the cap with `ignore_eos`, else
/// a geometric length with the profile's mean (where the model would emit EOS), at least
/// `min_tokens`.
fn output_length(sim: &Sim, req: &Value, requested: u32, prompt_seed: u64) -> (u32, bool) {
    let ignore_eos = req
        .get("ignore_eos")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if ignore_eos || sim.cfg.never_eos {
        return (requested, false);
    }
    let min_tokens = req
        .get("min_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(0)
        .min(requested as u64);
    let mut rng = ChaCha8Rng::seed_from_u64(sim.cfg.seed ^ prompt_seed);
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    let eos_at = (1.0 + (-u.ln()) * sim.profile.mean_output_tokens as f64) as u64;
    let eos_at = eos_at.max(min_tokens).max(1);
    if eos_at < requested as u64 {
        (eos_at as u32, true)
    } else {
        (requested, false)
    }
}

/// Request `n`'s faults: drawn from the configured rates (seeded by `n`), then the request's
/// own fault header (a malformed one is a 400).
fn faults_of(sim: &Sim, n: u64, headers: &HeaderMap) -> Result<RequestFaults, Box<Response>> {
    let mut fault_rng =
        ChaCha8Rng::seed_from_u64(sim.cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ n);
    let mut faults = sim.cfg.faults.draw(n, &mut fault_rng);
    if let Some(h) = headers.get(FAULT_HEADER).and_then(|h| h.to_str().ok()) {
        faults
            .apply_header(h)
            .map_err(|e| Box::new(sim.bad_request(&format!("{FAULT_HEADER}: {e}"))))?;
    }
    Ok(faults)
}

/// Request `n`'s faults, its delay waited out; its error status as the answer.
async fn delayed_faults(
    sim: &Sim,
    n: u64,
    headers: &HeaderMap,
) -> Result<RequestFaults, Box<Response>> {
    let faults = faults_of(sim, n, headers)?;
    if !faults.delay.is_zero() {
        tokio::time::sleep(faults.delay).await;
    }
    match faults.error {
        Some(status) => Err(Box::new(fault_error(sim, status))),
        None => Ok(faults),
    }
}

/// A simulated error answer with `status`, in vLLM's error shape.
fn fault_error(sim: &Sim, status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (kind, msg) = match status.as_u16() {
        429 => ("RateLimitError", "Too many requests (simulated)."),
        400..=499 => ("BadRequestError", "Bad request (simulated fault)."),
        _ => (
            "InternalServerError",
            "Internal server error (simulated fault).",
        ),
    };
    sim.error(status, kind, msg, None)
}

async fn generate(
    sim: Arc<Sim>,
    socket: Option<Arrival>,
    headers: HeaderMap,
    body: Bytes,
    api: Api,
) -> Response {
    // The request's clock starts as soon as the handler has it, before parsing: the fixed
    // profile's deadlines count the server's own handling time. Its timing truth starts
    // earlier, when the request's last bytes reached the socket (the kernel's stamp).
    let arrived = tokio::time::Instant::now();
    let reached = socket
        .and_then(|s| s.latest())
        .filter(|t| *t <= arrived)
        .map(|t| (t, arrived - t));
    let n = sim.counter.fetch_add(1, Ordering::Relaxed);
    if sim.cfg.faults.exit_after.is_some_and(|k| n >= k) {
        sim.dead.cancel();
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if sim.loading() {
        return sim.loading_error();
    }
    let (job, prompt_seed) = match job_of(&sim, api, &body) {
        Ok(j) => j,
        Err(r) => return *r,
    };
    let faults = match delayed_faults(&sim, n, &headers).await {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let id = match api {
        // vLLM's Messages ids are its chat request's.
        Api::Chat | Api::Messages => format!("chatcmpl-{prompt_seed:016x}{n:016x}"),
        Api::Completions => format!("cmpl-{prompt_seed:016x}{n:016x}"),
        // vLLM's Responses ids are 16 hex digits.
        Api::Responses => format!("resp_{:016x}", prompt_seed.rotate_left(23) ^ n),
    };
    let chunker = Chunker::new(&sim, api, &id, &job);
    if !job.stream {
        return complete(sim, chunker, job, api).await;
    }
    let sse = |b: Body| {
        let mut r = Response::new(b);
        r.headers_mut().insert(
            "content-type",
            HeaderValue::from_static("text/event-stream; charset=utf-8"),
        );
        r
    };
    if let Some(h) = faults.hostile {
        return hostile(h, chunker, sse);
    }
    let faultless = faults
        == RequestFaults {
            delay: faults.delay,
            ..Default::default()
        };
    if sim.profile.is_instant() && faultless {
        // Zero-delay profile: the whole answer in one write, as fast as it can be formatted.
        let mut out = Vec::with_capacity(256 + job.output_tokens as usize * 200);
        chunker.role(&mut out);
        for i in 0..job.output_tokens {
            chunker.token(i, &mut out);
        }
        chunker.finish(&mut out);
        if job.include_usage {
            chunker.usage(job.output_tokens, &mut out);
        }
        chunker.end(&mut out);
        account(&sim, &job, 0.0, 0.0);
        return sse(Body::from(out));
    }
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let truth_from = reached.map_or(arrived, |(t, _)| t);
    let delay = reached.map(|(_, d)| d);
    tokio::spawn(produce(
        sim.clone(),
        chunker,
        job,
        faults,
        arrived,
        (truth_from, delay),
        tx,
    ));
    let mut rx = rx;
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    sse(Body::from_stream(stream))
}

/// A hostile answer (`Faults::hostile`): what the client must survive without unbounded
/// memory, and name.
fn hostile(h: Hostile, chunker: Chunker, sse: impl Fn(Body) -> Response) -> Response {
    let piece = |n: usize| Bytes::from(vec![b'x'; n]);
    match h {
        Hostile::Html => {
            let page = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1><p>The upstream server is not reachable.</p></body></html>\n";
            let mut r = Response::new(Body::from(page));
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("text/html"));
            r
        }
        Hostile::Gzip => {
            // The gzip magic, then bytes that are no stream at all.
            let mut body = vec![0x1f, 0x8b, 0x08, 0x00];
            body.extend_from_slice(&[0x55; 256]);
            let mut r = sse(Body::from(body));
            r.headers_mut()
                .insert("content-encoding", HeaderValue::from_static("gzip"));
            r
        }
        Hostile::HugeEvent(n) => {
            let head = Bytes::from_static(b"data: {\"choices\":[{\"delta\":{\"content\":\"");
            let pieces = (n / 65_536) as usize;
            let stream = futures_util::stream::iter(
                std::iter::once(head)
                    .chain(std::iter::repeat_with(move || piece(65_536)).take(pieces))
                    .map(Ok::<_, std::io::Error>),
            );
            sse(Body::from_stream(stream))
        }
        Hostile::Flood => {
            // Batches of 64 token chunks, as fast as the connection takes them, until the client
            // goes away.
            let mut i = 0u32;
            let stream = futures_util::stream::repeat_with(move || {
                let mut out = Vec::with_capacity(64 * 200);
                for _ in 0..64 {
                    chunker.token(i % 1_000_000, &mut out);
                    i = i.wrapping_add(1);
                }
                Ok::<_, std::io::Error>(Bytes::from(out))
            });
            sse(Body::from_stream(stream))
        }
    }
}

/// The time scale of a request served without the engine: a LoRA adapter's is slower by
/// `lora_slowdown`.
fn lora_speed(sim: &Sim, job: &Job) -> f64 {
    match job.lora {
        true => sim.cfg.speed / (1.0 + sim.cfg.lora_slowdown),
        false => sim.cfg.speed,
    }
}

/// Counts a request served without the engine; `ttft` and `e2e` in seconds (0 when instant).
fn account(sim: &Sim, job: &Job, ttft: f64, e2e: f64) {
    if let Ok(mut m) = sim.metrics.lock() {
        m.prompt_tokens += job.prompt_tokens as u64;
        m.generation_tokens += job.output_tokens as u64;
        m.prefix_queries += job.prompt_tokens as u64;
        m.requests_total += 1;
        if job.ends_on_eos {
            m.finished_stop += 1;
        } else {
            m.finished_length += 1;
        }
        m.ttft.observe(ttft);
        m.e2e.observe(e2e);
        m.queue.observe(0.0);
    }
}

/// Tokens made without the engine: at once (zero delay) or on the request's own clock.
struct Synthetic {
    next: u32,
    total: u32,
    /// Arrival, TTFT and ITL of the fixed-timing profile.
    clock: Option<(tokio::time::Instant, Duration, Duration)>,
}

/// Token events: from the engine, or synthesized.
async fn next_emit(
    rx: &mut Option<mpsc::UnboundedReceiver<Emit>>,
    synth: &mut Synthetic,
) -> Option<Emit> {
    if let Some(rx) = rx {
        return rx.recv().await;
    }
    if synth.next > synth.total {
        return None;
    }
    let index = synth.next;
    synth.next += 1;
    if index == synth.total {
        return Some(Emit::Done);
    }
    if let Some((start, ttft, itl)) = synth.clock {
        // Absolute deadlines: timer lateness never accumulates.
        tokio::time::sleep_until(start + ttft + itl * index).await;
    }
    Some(Emit::Token { index })
}

/// The faults due before chunk `sent`: a stall (waited out here), or a cut (sent as the
/// stream's error: returns true, the stream ends).
async fn cut_by_fault(
    faults: &RequestFaults,
    sent: u32,
    tx: &mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> bool {
    if let Some((stall, at)) = faults.stall {
        if sent == at {
            tokio::time::sleep(stall).await;
        }
    }
    if faults.cut_after.is_none_or(|c| sent < c) {
        return false;
    }
    // Let what was written reach the socket before the connection is torn down, as a real
    // crash mid-stream leaves the client holding the chunks already sent.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let _ = tx
        .send(Err(std::io::Error::other("stream cut (simulated fault)")))
        .await;
    true
}

/// Writes one streaming response, applying this request's faults.
async fn produce(
    sim: Arc<Sim>,
    chunker: Chunker,
    job: Job,
    faults: RequestFaults,
    arrived: tokio::time::Instant,
    (truth_from, handler_delay): (tokio::time::Instant, Option<Duration>),
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    sim.in_flight.fetch_add(1, Ordering::Relaxed);
    let _guard = InFlight(&sim.in_flight);
    let mut events = match &sim.engine {
        Some(engine) => {
            let (submit, erx) = job.submit();
            if engine.send(submit).is_err() {
                let _ = tx.send(Err(std::io::Error::other("engine stopped"))).await;
                return;
            }
            Some(erx)
        }
        None => {
            if sim.profile.fixed.is_none() {
                account(&sim, &job, 0.0, 0.0);
            }
            None
        }
    };
    let mut buf = Vec::with_capacity(512);
    chunker.role(&mut buf);
    if tx
        .send(Ok(Bytes::from(std::mem::take(&mut buf))))
        .await
        .is_err()
    {
        return;
    }
    // Chunks sent so far, counting the role chunk.
    let mut sent: u32 = 1;
    let speed = lora_speed(&sim, &job);
    let mut synth = Synthetic {
        next: 0,
        total: job.output_tokens,
        clock: sim
            .profile
            .fixed
            .map(|(t, i)| (arrived, t.div_f64(speed), i.div_f64(speed))),
    };
    let mut handed: Vec<tokio::time::Instant> = Vec::new();
    while let Some(emit) = next_emit(&mut events, &mut synth).await {
        if cut_by_fault(&faults, sent, &tx).await {
            return;
        }
        match emit {
            Emit::Token { index } => {
                if faults.malformed_at == Some(sent) {
                    buf.extend_from_slice(
                        b"data: {\"id\":\"broken\",\"choices\":[{\"delta\":{\"content\":\"\n\n",
                    );
                }
                chunker.token(index, &mut buf);
            }
            Emit::Done => {
                chunker.finish(&mut buf);
                if job.include_usage {
                    chunker.usage(job.output_tokens, &mut buf);
                }
                chunker.end(&mut buf);
                let _ = tx.send(Ok(Bytes::from(std::mem::take(&mut buf)))).await;
                if synth.clock.is_some() {
                    let first = handed.first().map(|t| (*t - arrived).as_secs_f64());
                    let e2e = arrived.elapsed().as_secs_f64();
                    account(&sim, &job, first.unwrap_or(0.0), e2e);
                    record_truth(&sim, truth_from, handler_delay, &handed);
                }
                return;
            }
        }
        sent += 1;
        if synth.clock.is_some() {
            handed.push(tokio::time::Instant::now());
        }
        if tx
            .send(Ok(Bytes::from(std::mem::take(&mut buf))))
            .await
            .is_err()
        {
            return;
        }
    }
}

fn record_truth(
    sim: &Sim,
    from: tokio::time::Instant,
    handler_delay: Option<Duration>,
    handed: &[tokio::time::Instant],
) {
    let Ok(mut t) = sim.truth.lock() else { return };
    let (Some(first), true) = (handed.first(), t.ttft_ms.len() < TRUTH_CAP) else {
        return;
    };
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    t.ttft_ms.push(ms(*first - from));
    if let Some(d) = handler_delay {
        t.handler_delay_ms.push(ms(d));
    }
    let gaps: Vec<f64> = handed.windows(2).map(|w| ms(w[1] - w[0])).collect();
    t.itl_ms.extend(gaps);
}

/// `GET /sim/timings`: the fixed-timing profile's own TTFT and ITL of every request so far.
/// `GET /sim/requests`: the last requests' `messages` (or `prompt`), oldest first.
/// The server's routes: the engine's API, its metrics, its own cache endpoint, the
/// simulator's introspection; behind the key check when it has a key.
fn routes(sim: &Arc<Sim>) -> Router {
    let router = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/responses", post(responses))
        .route("/v1/messages", post(messages))
        .route("/v1/embeddings", post(pooling::embeddings))
        .route("/v1/rerank", post(pooling::rerank))
        .route("/v1/models", get(models))
        .route("/health", get(health))
        .route("/health_generate", get(health))
        .route("/version", get(version))
        .route("/tokenize", post(tokenize))
        .route("/detokenize", post(detokenize))
        .route("/metrics", get(metrics_or_stats))
        .route("/prometheus/metrics", get(metrics_page))
        .route("/get_model_info", get(model_info))
        .route("/sim/timings", get(timings))
        .route("/sim/requests", get(received));
    // Each engine's own way to empty its prefix cache (vLLM's is a development endpoint).
    let router = match sim.cfg.personality {
        Personality::Vllm => router.route("/reset_prefix_cache", post(reset_prefix_cache)),
        Personality::Sglang => router.route("/flush_cache", post(flush_cache)),
        Personality::Trtllm => router,
    };
    match sim.cfg.api_key {
        Some(_) => router.layer(axum::middleware::from_fn_with_state(
            sim.clone(),
            require_key,
        )),
        None => router,
    }
    .with_state(sim.clone())
}

/// vLLM's `POST /reset_prefix_cache`: `{"success": false}` while requests hold blocks.
async fn reset_prefix_cache(State(sim): State<Arc<Sim>>) -> Response {
    axum::Json(serde_json::json!({"success": sim.flush()})).into_response()
}

/// SGLang's `POST /flush_cache`: 200 with a sentence, 400 while requests run.
async fn flush_cache(State(sim): State<Arc<Sim>>) -> Response {
    match sim.flush() {
        true => "Cache flushed.\nPlease check backend logs for more details. (When there are running or waiting requests, the operation will not be performed.)\n".into_response(),
        false => (StatusCode::BAD_REQUEST, "Cache flush failed: there are running or waiting requests.\n").into_response(),
    }
}

async fn received(State(sim): State<Arc<Sim>>) -> Response {
    match sim.received.lock() {
        Ok(r) => axum::Json(&*r).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

impl Sim {
    /// Asks the engine to empty its prefix cache; false while requests are in flight.
    fn flush(&self) -> bool {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return false;
        }
        self.flushes.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Keeps what `req` asked, when `record_requests` says to.
    fn record(&self, req: &Value) {
        let keep = self.cfg.record_requests;
        if keep == 0 {
            return;
        }
        let what = req
            .get("messages")
            .or_else(|| req.get("prompt"))
            .or_else(|| req.get("input"))
            .cloned()
            .or_else(|| {
                let (q, d) = (req.get("query")?, req.get("documents")?);
                Some(json!({"query": q, "documents": d}))
            })
            .unwrap_or_default();
        if let Ok(mut r) = self.received.lock() {
            r.push_back(what);
            while r.len() > keep {
                r.pop_front();
            }
        }
    }
}

async fn timings(State(sim): State<Arc<Sim>>) -> Response {
    match sim.truth.lock() {
        Ok(t) => axum::Json(&*t).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A non-streaming answer: wait for every token, then one JSON body.
async fn complete(sim: Arc<Sim>, chunker: Chunker, job: Job, api: Api) -> Response {
    if let Some(engine) = &sim.engine {
        let (submit, mut erx) = job.submit();
        if engine.send(submit).is_err() {
            return sim.error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "engine stopped",
                None,
            );
        }
        while let Some(e) = erx.recv().await {
            if e == Emit::Done {
                break;
            }
        }
    } else if let Some((ttft, itl)) = sim.profile.fixed {
        let speed = lora_speed(&sim, &job);
        let (ttft, itl) = (ttft.div_f64(speed), itl.div_f64(speed));
        let e2e = ttft + itl * job.output_tokens.saturating_sub(1);
        tokio::time::sleep(e2e).await;
        account(&sim, &job, ttft.as_secs_f64(), e2e.as_secs_f64());
    } else {
        account(&sim, &job, 0.0, 0.0);
    }
    let text: String = (0..job.output_tokens).map(|i| chunker.word(i)).collect();
    let finish = if job.ends_on_eos { "stop" } else { "length" };
    let usage = json!({"prompt_tokens": job.prompt_tokens, "total_tokens": job.prompt_tokens + job.output_tokens, "completion_tokens": job.output_tokens});
    let model = &sim.cfg.model;
    let body = match api {
        Api::Chat => json!({
            "id": chunker.id, "object": "chat.completion", "created": sim.created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": null, "finish_reason": finish, "stop_reason": null}],
            "usage": usage,
        }),
        Api::Completions => json!({
            "id": chunker.id, "object": "text_completion", "created": sim.created, "model": model,
            "choices": [{"index": 0, "text": text, "logprobs": null, "finish_reason": finish, "stop_reason": null}],
            "usage": usage,
        }),
        Api::Responses => chunker.responses.whole(
            &text,
            !job.ends_on_eos,
            (
                job.prompt_tokens,
                job.output_tokens,
                chunker.reasoning_tokens.min(job.output_tokens),
            ),
        ),
        Api::Messages => {
            let thinking = chunker.reasoning_tokens.min(job.output_tokens);
            let words = |r: std::ops::Range<u32>| r.map(|i| chunker.word(i)).collect::<String>();
            chunker.messages.whole(
                &words(0..thinking),
                &words(thinking..job.output_tokens),
                !job.ends_on_eos,
                (job.prompt_tokens, job.output_tokens),
            )
        }
    };
    axum::Json(body).into_response()
}

/// Formats SSE chunks in vLLM's exact shape (field order included).
struct Chunker {
    id: String,
    api: Api,
    /// `data: {"id":…,"object":…,"created":…,"model":…,"choices":[`
    head: String,
    reasoning_tokens: u32,
    reasoning_key: &'static str,
    personality: Personality,
    words_seed: u64,
    /// The answer key's words (`Job::keyed`).
    keyed: Option<Arc<[String]>>,
    prompt_tokens: u32,
    output_tokens: u32,
    finish: &'static str,
    /// The Responses API's events (`api: responses`).
    responses: super::responses::Events,
    /// The Messages API's events (`api: messages`).
    messages: super::messages::Events,
}

impl Chunker {
    fn new(sim: &Sim, api: Api, id: &str, job: &Job) -> Self {
        let object = if api == Api::Chat {
            "chat.completion.chunk"
        } else {
            "text_completion"
        };
        let reasoning_tokens = sim
            .cfg
            .reasoning_tokens
            .max((sim.cfg.reasoning_share * job.output_tokens as f64).round() as u32)
            .min(job.output_tokens);
        Self {
            id: id.to_string(),
            api,
            head: format!("data: {{\"id\":\"{id}\",\"object\":\"{object}\",\"created\":{},\"model\":{},\"choices\":[", sim.created, sim.model_json),
            reasoning_tokens,
            personality: sim.cfg.personality,
            reasoning_key: match sim.cfg.personality {
                Personality::Vllm => "reasoning",
                Personality::Sglang | Personality::Trtllm => "reasoning_content",
            },
            words_seed: job.words_seed,
            keyed: job.keyed.clone(),
            prompt_tokens: job.prompt_tokens,
            output_tokens: job.output_tokens,
            finish: if job.ends_on_eos { "stop" } else { "length" },
            responses: super::responses::Events {
                id: id.to_string(),
                item_id: format!("msg_{:016x}", job.words_seed),
                created: sim.created,
                model: sim.cfg.model.clone(),
                max_output_tokens: job.output_tokens,
            },
            messages: super::messages::Events {
                id: id.to_string(),
                model_json: sim.model_json.clone(),
                reasoning_tokens,
                signature: format!("{:032x}", u128::from(job.words_seed) * 0x9E37_79B9_7F4A_7C15),
            },
        }
    }

    /// The stream's last line: `data: [DONE]` (a Responses or Messages stream has none).
    fn end(&self, out: &mut Vec<u8>) {
        if !matches!(self.api, Api::Responses | Api::Messages) {
            out.extend_from_slice(b"data: [DONE]\n\n");
        }
    }

    /// Token `i`'s text: a seeded vocabulary word, space-separated after the first.
    fn word(&self, i: u32) -> String {
        let keyed = self.keyed.as_ref().and_then(|k| k.get(i as usize));
        let w = keyed.map_or_else(
            || tokenizer::answer_word(self.words_seed, i),
            String::as_str,
        );
        if i == 0 {
            w.to_string()
        } else {
            format!(" {w}")
        }
    }

    /// The first chat chunk: the role and an empty content (no token), as vLLM 0.32 sends it.
    fn role(&self, out: &mut Vec<u8>) {
        match self.api {
            Api::Responses => return self.responses.opening(out),
            Api::Messages => return self.messages.opening(out, self.prompt_tokens),
            Api::Chat | Api::Completions => {}
        }
        if self.api == Api::Chat {
            out.extend_from_slice(self.head.as_bytes());
            out.extend_from_slice(b"{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}],\"prompt_token_ids\":null");
            if self.personality == Personality::Vllm {
                out.extend_from_slice(b",\"prompt_text\":null");
            }
            out.extend_from_slice(b"}\n\n");
        }
    }

    /// vLLM 0.32 puts a `length` finish on the last token's chunk (captured from the real
    /// server); an answer that ends on EOS gets a last chunk of its own with the EOS token's
    /// empty text and `stop`. SGLang sends the finish apart either way.
    fn finish_on_last_token(&self, i: u32) -> bool {
        self.personality == Personality::Vllm
            && self.finish == "length"
            && i + 1 == self.output_tokens
    }

    fn token(&self, i: u32, out: &mut Vec<u8>) {
        let w = self.word(i);
        match self.api {
            Api::Responses => return self.responses.delta(out, i, &w, i < self.reasoning_tokens),
            Api::Messages => return self.messages.delta(out, i, &w),
            Api::Chat | Api::Completions => {}
        }
        out.extend_from_slice(self.head.as_bytes());
        match self.api {
            Api::Chat => {
                let key = if i < self.reasoning_tokens {
                    self.reasoning_key
                } else {
                    "content"
                };
                out.extend_from_slice(b"{\"index\":0,\"delta\":{\"");
                out.extend_from_slice(key.as_bytes());
                out.extend_from_slice(b"\":\"");
                out.extend_from_slice(w.as_bytes());
                if self.finish_on_last_token(i) {
                    out.extend_from_slice(b"\"},\"logprobs\":null,\"finish_reason\":\"");
                    out.extend_from_slice(self.finish.as_bytes());
                    out.extend_from_slice(b"\",\"stop_reason\":null,\"token_ids\":null}]}\n\n");
                } else {
                    out.extend_from_slice(
                        b"\"},\"logprobs\":null,\"finish_reason\":null,\"token_ids\":null}]}\n\n",
                    );
                }
            }
            Api::Completions => {
                out.extend_from_slice(b"{\"index\":0,\"text\":\"");
                out.extend_from_slice(w.as_bytes());
                let tail: &[u8] = match self.personality {
                    Personality::Vllm => b",\"prompt_token_ids\":null,\"token_ids\":null}]}\n\n",
                    Personality::Sglang | Personality::Trtllm => b"}]}\n\n",
                };
                if i + 1 == self.output_tokens {
                    out.extend_from_slice(b"\",\"logprobs\":null,\"finish_reason\":\"");
                    out.extend_from_slice(self.finish.as_bytes());
                    out.extend_from_slice(b"\",\"stop_reason\":null");
                } else {
                    out.extend_from_slice(
                        b"\",\"logprobs\":null,\"finish_reason\":null,\"stop_reason\":null",
                    );
                }
                out.extend_from_slice(tail);
            }
            Api::Responses | Api::Messages => {}
        }
    }

    fn finish(&self, out: &mut Vec<u8>) {
        let apart = self.personality == Personality::Sglang || self.finish != "length";
        if self.api == Api::Chat && apart {
            out.extend_from_slice(self.head.as_bytes());
            out.extend_from_slice(
                b"{\"index\":0,\"delta\":{\"content\":\"\"},\"logprobs\":null,\"finish_reason\":\"",
            );
            out.extend_from_slice(self.finish.as_bytes());
            out.extend_from_slice(b"\",\"stop_reason\":null,\"token_ids\":null}]}\n\n");
        }
    }

    fn usage(&self, completion: u32, out: &mut Vec<u8>) {
        if self.api == Api::Responses {
            let reasoning = self.reasoning_tokens.min(completion);
            let text: String = (reasoning..completion).map(|i| self.word(i)).collect();
            let usage = (self.prompt_tokens, completion, reasoning);
            let capped = self.finish == "length";
            return self
                .responses
                .closing(out, (completion, capped), &text, usage);
        }
        if self.api == Api::Messages {
            let capped = self.finish == "length";
            return self
                .messages
                .closing(out, (completion, capped), self.prompt_tokens);
        }
        out.extend_from_slice(self.head.as_bytes());
        let _ = std::io::Write::write_fmt(
            out,
            format_args!(
                "],\"usage\":{{\"prompt_tokens\":{},\"total_tokens\":{},\"completion_tokens\":{}{}}}{}}}\n\n",
                self.prompt_tokens,
                self.prompt_tokens + completion,
                completion,
                self.reasoning_usage(completion),
                match self.personality {
                    Personality::Vllm => ",\"system_fingerprint\":\"vllm-0.32.0-sim\"",
                    Personality::Sglang | Personality::Trtllm => "",
                },
            ),
        );
    }

    /// Reasoning tokens in `usage` where each server puts them. vLLM 0.32 with a reasoning
    /// parser nests `completion_tokens_details.reasoning_tokens` — and says 0 however many
    /// tokens it streamed as reasoning (seen on the real server; the client counts the stream
    /// then). SGLang puts the count at the top.
    fn reasoning_usage(&self, completion: u32) -> String {
        // Completions have no reasoning parser: no reasoning in their usage.
        let n = match self.api {
            Api::Chat | Api::Responses | Api::Messages => self.reasoning_tokens.min(completion),
            Api::Completions => 0,
        };
        match (n, self.personality) {
            (0, _) => String::new(),
            (_, Personality::Vllm) => {
                ",\"completion_tokens_details\":{\"reasoning_tokens\":0}".into()
            }
            (_, Personality::Sglang) => format!(",\"reasoning_tokens\":{n}"),
            (_, Personality::Trtllm) => String::new(),
        }
    }
}

async fn models(State(sim): State<Arc<Sim>>) -> Response {
    let owner = match sim.cfg.personality {
        Personality::Vllm => "vllm",
        Personality::Sglang => "sglang",
        Personality::Trtllm => "tensorrt_llm",
    };
    let base = json!({
        "id": sim.cfg.model, "object": "model", "created": sim.created, "owned_by": owner,
        "root": sim.cfg.model, "parent": null, "max_model_len": sim.profile.max_model_len, "permission": []
    });
    // LoRA adapters as vLLM lists them: their parent is the base model.
    let adapters = sim.cfg.adapters.iter().map(|a| {
        json!({
            "id": a, "object": "model", "created": sim.created, "owned_by": owner,
            "root": a, "parent": sim.cfg.model, "max_model_len": null, "permission": []
        })
    });
    let data: Vec<Value> = std::iter::once(base).chain(adapters).collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

async fn health(State(sim): State<Arc<Sim>>) -> Response {
    if sim.loading() {
        return sim.loading_error();
    }
    StatusCode::OK.into_response()
}

async fn version(State(sim): State<Arc<Sim>>) -> Response {
    let v = match sim.cfg.personality {
        Personality::Vllm => "0.11.0+llm-inf-bench-sim",
        Personality::Sglang => "0.5.4+llm-inf-bench-sim",
        Personality::Trtllm => "1.3.0rc5+llm-inf-bench-sim",
    };
    axum::Json(json!({ "version": v })).into_response()
}

async fn model_info(State(sim): State<Arc<Sim>>) -> Response {
    axum::Json(json!({"model_path": sim.cfg.model, "tokenizer_path": sim.cfg.model, "is_generation": true})).into_response()
}

async fn tokenize(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let req = match json_body(&body) {
        Ok(v) => v,
        Err(m) => return sim.bad_request(&m),
    };
    let tokens: Vec<u32> = if let Some(msgs) = req.get("messages").and_then(Value::as_array) {
        // Template tokens (ids ≥ 200000) around each message, as a chat template adds them.
        let mut t = Vec::new();
        for m in msgs {
            t.extend(
                [200_000, 200_001, 200_002, 200_003]
                    .iter()
                    .take(tokenizer::CHAT_TOKENS_PER_MESSAGE as usize),
            );
            if let Some(c) = m.get("content").and_then(Value::as_str) {
                t.extend(tokenizer::encode(c));
            }
        }
        t.extend(
            [200_004, 200_005]
                .iter()
                .take(tokenizer::CHAT_GENERATION_PROMPT_TOKENS as usize),
        );
        debug_assert_eq!(t.len() as u32, tokenizer::count_messages(msgs));
        t
    } else if let Some(p) = req.get("prompt").and_then(Value::as_str) {
        tokenizer::encode(p)
    } else {
        return sim.bad_request("`prompt` or `messages` is required");
    };
    axum::Json(json!({"count": tokens.len(), "max_model_len": sim.profile.max_model_len, "tokens": tokens, "token_strs": null})).into_response()
}

async fn detokenize(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(ids) = req.get("tokens").and_then(Value::as_array) else {
        return sim.bad_request("`tokens` (a list of ids) is required");
    };
    let ids: Vec<u32> = ids
        .iter()
        .filter_map(Value::as_u64)
        .map(|v| v as u32)
        .collect();
    axum::Json(json!({ "prompt": tokenizer::decode(&ids) })).into_response()
}

/// `/metrics`: the Prometheus page, except for TensorRT-LLM, whose `/metrics` is a JSON list
/// of recent iteration statistics (its Prometheus page is `/prometheus/metrics`).
async fn metrics_or_stats(State(sim): State<Arc<Sim>>) -> Response {
    if sim.cfg.personality != Personality::Trtllm {
        return metrics_page(State(sim)).await;
    }
    let (running, waiting, kv) = match sim.metrics.lock() {
        Ok(m) => (m.running, m.waiting, m.kv_used_tokens),
        Err(_) => (0, 0, 0),
    };
    let block = sim.profile.block_size as u64;
    axum::Json(json!([{
        "iter": sim.in_flight.load(Ordering::Relaxed),
        "numActiveRequests": running,
        "numQueuedRequests": waiting,
        "kvCacheStats": {"usedNumBlocks": kv.div_ceil(block.max(1)), "tokensPerBlock": block},
    }]))
    .into_response()
}

async fn metrics_page(State(sim): State<Arc<Sim>>) -> Response {
    let mut text = match sim.metrics.lock() {
        Ok(m) => {
            let mut m = m.clone();
            if sim.engine.is_none() {
                m.running = sim.in_flight.load(Ordering::Relaxed);
            }
            m.render(sim.cfg.personality, &sim.cfg.model)
        }
        Err(_) => String::new(),
    };
    // vLLM's cache configuration, as an info gauge (the block size the prefix cache hits in).
    if sim.cfg.personality == Personality::Vllm {
        text.push_str(&format!(
            "# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig\n# TYPE vllm:cache_config_info gauge\nvllm:cache_config_info{{_block_size_resolved=\"True\",block_size=\"{}\",cache_dtype=\"auto\",enable_prefix_caching=\"True\",engine=\"0\",gpu_memory_utilization=\"0.9\"}} 1.0\n",
            sim.profile.block_size
        ));
    }
    if text.is_empty() {
        text.push('\n');
    }
    let mut r = Response::new(Body::from(text));
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}
