//! The benchmark client: one HTTP/1.1 keep-alive connection per in-flight slot (no pool, so
//! exactly as many sockets as slots; the HTTP is `wire`'s), streaming chat/completions
//! requests, the in-place SSE splitter, and per-read timing.
//!
//! Timing: each socket read is stamped once with the time its bytes reached the socket (the
//! kernel's receive timestamp, carried to the monotonic clock; the clock at the read where the
//! kernel gives none); every SSE event in that read gets that stamp. When a read carries several
//! token events they share one time, so their ITL gaps inside the read are 0 — that is what
//! reached the client, and the count of reads per request is reported so batching shows.

pub mod api;
pub mod limits;
pub mod messages;
pub mod pooling;
pub mod responses;
pub mod scan;
pub mod sse;
pub mod wire;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Deserialize;

use wire::{Flow, ResponseHead, Sink, Wire, WireError};

use crate::config::{Api, Secret};
use crate::metrics::event::{ErrorKind, RequestError, RequestRecord, TokensSource};

/// Where requests go.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    /// Path prefix before `/v1/...` (usually empty).
    pub base_path: String,
    pub api_key: Option<Secret>,
    pub api: Api,
    /// `host:port`, the `Host` header of every request.
    authority: String,
    /// The generation path for `api`, built once instead of per request.
    request_path: String,
    /// For `https://`: the TLS settings and the name the certificate must carry.
    tls: Option<Tls>,
}

#[derive(Clone, Debug)]
struct Tls {
    config: Arc<rustls::ClientConfig>,
    name: rustls_pki_types::ServerName<'static>,
}

impl Endpoint {
    /// Parses `http[s]://host[:port][/prefix]`. `https://` certificates are checked against
    /// the system's roots.
    pub fn parse(base_url: &str, api: Api, api_key: Option<Secret>) -> Result<Self, String> {
        Self::parse_trusting(base_url, api, api_key, None)
    }

    /// [`Endpoint::parse`], with `https://` certificates checked against `ca` (from
    /// [`ca_config`]: a private CA, a self-signed server) instead of the system's roots.
    pub fn parse_trusting(
        base_url: &str,
        api: Api,
        api_key: Option<Secret>,
        ca: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Self, String> {
        let (https, rest) = match base_url.split_once("://") {
            Some(("http", rest)) => (false, rest),
            Some(("https", rest)) => (true, rest),
            _ => {
                return Err(format!(
                    "`{base_url}`: expected http://host:port or https://host[:port]"
                ))
            }
        };
        if crate::config::has_userinfo(base_url) {
            return Err("a user name or password in the URL (`user:pw@host`) is not supported: give the host alone, and a key through `infrastructure.api_key_env`".into());
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        // An IPv6 literal keeps its brackets here (`[::1]`, as in URLs and `Host`).
        let port_sep = match authority.rfind(']') {
            Some(close) => authority[close..].find(':').map(|i| close + i),
            None => authority.rfind(':'),
        };
        let (host, port) = match port_sep {
            Some(i) => {
                let p = &authority[i + 1..];
                (
                    authority[..i].to_string(),
                    p.parse::<u16>()
                        .map_err(|_| format!("`{base_url}`: bad port `{p}`"))?,
                )
            }
            None => (authority.to_string(), if https { 443 } else { 80 }),
        };
        if host.is_empty() {
            return Err(format!("`{base_url}`: no host"));
        }
        let request_path = format!("{path}{}", api::of(api).path());
        let tls = match (https, ca) {
            (false, None) => None,
            (false, Some(_)) => {
                return Err(format!(
                    "`{base_url}`: a CA file only applies to https:// servers"
                ))
            }
            (true, ca) => {
                let config = match ca {
                    Some(c) => c,
                    None => {
                        use rustls_platform_verifier::BuilderVerifierExt;
                        let config = tls_builder()
                            .and_then(|b| b.with_platform_verifier())
                            .map_err(|e| format!("`{base_url}`: TLS set-up: {e}"))?
                            .with_no_client_auth();
                        finish_tls(config)
                    }
                };
                Some(Tls {
                    config,
                    name: server_name(&host).map_err(|e| format!("`{base_url}`: {e}"))?,
                })
            }
        };
        Ok(Self {
            tls,
            // Host without the scheme's default port, as browsers and curl send it (some
            // virtual hosts and proxies match the bare name).
            authority: match (https, port) {
                (false, 80) | (true, 443) => host.clone(),
                _ => format!("{host}:{port}"),
            },
            host,
            port,
            base_path: path.to_string(),
            api_key,
            api,
            request_path,
        })
    }

    pub fn path(&self) -> &str {
        &self.request_path
    }

    pub fn is_https(&self) -> bool {
        self.tls.is_some()
    }

    /// A whole HTTP/1.1 request to `uri` with this endpoint's `Host`, content type and, when a
    /// key is set, `Authorization` headers; to the API's own path, the headers its API adds.
    fn request(&self, method: &str, uri: &str, accept: &str, body: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut out = Vec::with_capacity(256 + body.len());
        let _ = write!(
            out,
            "{method} {uri} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: {accept}\r\n",
            self.authority
        );
        if let Some(k) = &self.api_key {
            let _ = write!(out, "Authorization: Bearer {}\r\n", k.expose());
        }
        if uri == self.request_path {
            out.extend_from_slice(api::of(self.api).headers().as_bytes());
        }
        let _ = write!(out, "Content-Length: {}\r\n\r\n", body.len());
        out.extend_from_slice(body);
        out
    }

    pub fn base_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}:{}{}", self.host, self.port, self.base_path)
    }
}

/// Starts the message of a connect error that retrying cannot fix (a certificate refused).
pub const TLS_REFUSED: &str = "TLS handshake refused";

/// rustls with the aws-lc-rs provider (reqwest's too) and safe protocol versions.
fn tls_builder(
) -> Result<rustls::ConfigBuilder<rustls::ClientConfig, rustls::WantsVerifier>, rustls::Error> {
    rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
}

/// TLS settings that trust only the CA certificates in the PEM file `ca_file` (for
/// [`Endpoint::parse_trusting`]).
pub fn ca_config(ca_file: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    let shown = ca_file.display();
    let mut roots = rustls::RootCertStore::empty();
    let pem = crate::files::read_bytes(ca_file, crate::files::MAX_CA_BYTES, "a CA file")
        .map_err(|e| format!("{shown}: {e}"))?;
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("{shown}: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("{shown}: not a usable CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("{shown}: no PEM certificate in it"));
    }
    let config = tls_builder()
        .map_err(|e| format!("TLS set-up: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(finish_tls(config))
}

fn finish_tls(mut config: rustls::ClientConfig) -> Arc<rustls::ClientConfig> {
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

fn server_name(host: &str) -> Result<rustls_pki_types::ServerName<'static>, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    rustls_pki_types::ServerName::try_from(bare.to_string())
        .map_err(|e| format!("`{host}` is not a name a certificate can carry: {e}"))
}

/// One request as the client sees it while it is under way: raw instants, turned into a
/// [`RequestRecord`] (milliseconds from the benchmark's start) when the answer is complete.
#[derive(Clone, Debug)]
struct Stamps {
    /// Just before the request head was written.
    sent: Instant,
    /// Read time of the first event carrying content or reasoning text.
    first_token: Option<Instant>,
    /// Read time of the latest such event.
    last_token: Option<Instant>,
    /// Read time of the first content event (not reasoning).
    first_content: Option<Instant>,
    /// Reasoning events so far.
    reasoning_events: u32,
    /// The answer's content, when the caller keeps it (`Bounds::keep_text`).
    text: Option<String>,
    /// Gaps between consecutive content events, ms.
    gaps_ms: Vec<f64>,
    /// Content events so far.
    events: u32,
    /// Last byte (the `[DONE]` event's read, or the end of the body).
    end: Instant,
    reads: u32,
    kernel_reads: u32,
    usage_prompt_tokens: Option<u32>,
    usage_completion_tokens: Option<u32>,
    usage_reasoning_tokens: Option<u32>,
    /// The server's own prefill and decode time in ms (llama.cpp's `timings`), when sent.
    server_timings: Option<(f64, f64)>,
    /// The shape of this stream's chunks, once the scan has verified one (`scan::Template`).
    template: Option<scan::Template>,
    /// A pooling API's answer: the texts it pooled.
    inputs: Option<u32>,
}

impl Stamps {
    fn new(at: Instant) -> Self {
        Self {
            sent: at,
            first_token: None,
            last_token: None,
            first_content: None,
            reasoning_events: 0,
            text: None,
            gaps_ms: Vec::new(),
            events: 0,
            end: at,
            reads: 0,
            kernel_reads: 0,
            usage_prompt_tokens: None,
            usage_completion_tokens: None,
            usage_reasoning_tokens: None,
            server_timings: None,
            template: None,
            inputs: None,
        }
    }

    /// A content (or reasoning) event read at `at`.
    fn token(&mut self, at: Instant) {
        match self.last_token {
            None => self.first_token = Some(at),
            Some(last) => self.gaps_ms.push(ms(at - last)),
        }
        self.last_token = Some(at);
        self.events += 1;
    }

    /// A content event (`token` too): the first one is the first output token.
    fn content(&mut self, at: Instant) {
        self.token(at);
        self.first_content.get_or_insert(at);
    }

    /// A reasoning event (`token` too).
    fn reasoning(&mut self, at: Instant) {
        self.token(at);
        self.reasoning_events += 1;
    }

    /// The record, with times in ms from `t0`.
    fn into_record(self, t0: Instant, error: Option<RequestError>) -> RequestRecord {
        let (output_tokens, tokens_source) = match self.usage_completion_tokens {
            Some(n) => (n, TokensSource::Usage),
            None => (self.events, TokensSource::Chunks),
        };
        let reasoned =
            self.reasoning_events > 0 || self.usage_reasoning_tokens.is_some_and(|n| n > 0);
        RequestRecord {
            sent_ms: crate::metrics::event::signed_ms(self.sent, t0),
            ttft_ms: self.first_token.map(|t| ms(t - self.sent)),
            ttfo_ms: match reasoned {
                true => self.first_content.map(|t| ms(t - self.sent)),
                false => None,
            },
            // A server cannot have streamed more reasoning events than it made reasoning
            // tokens: a usage below the stream's count is contradicted, and the stream wins.
            reasoning_tokens: reasoned.then_some(match self.usage_reasoning_tokens {
                Some(u) if u >= self.reasoning_events => u,
                _ => self.reasoning_events,
            }),
            reasoning_usage_disagreed: self
                .usage_reasoning_tokens
                .filter(|u| *u < self.reasoning_events),
            text: self.text,
            e2el_ms: ms(self.end.saturating_duration_since(self.sent)),
            input_tokens: self.usage_prompt_tokens,
            output_tokens,
            tokens_source,
            reads: self.reads,
            kernel_reads: self.kernel_reads,
            itl_ms: Some(self.gaps_ms),
            error,
            server_prefill_ms: self.server_timings.map(|t| t.0),
            server_decode_ms: self.server_timings.map(|t| t.1),
            inputs: self.inputs,
            ..RequestRecord::default()
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A request that failed before anything was sent, at `t0`-relative now.
pub fn failed_record(error: RequestError, t0: Instant) -> RequestRecord {
    Stamps::new(Instant::now()).into_record(t0, Some(error))
}

/// A warmed connection for one slot.
pub struct Conn {
    wire: Wire,
    /// How long the TCP connect took (reported apart from TTFT).
    pub connect_time: Duration,
    /// Requests this connection has already answered (0: fresh).
    served: u32,
}

/// Opens one HTTP/1.1 connection.
pub async fn connect(ep: &Endpoint) -> Result<Conn, RequestError> {
    let t = Instant::now();
    let host = ep.host.trim_start_matches('[').trim_end_matches(']');
    let stream = tokio::net::TcpStream::connect((host, ep.port))
        .await
        .map_err(|e| {
            RequestError::new(
                ErrorKind::Connect,
                format!("connect to {}:{}: {e}", ep.host, ep.port),
            )
        })?;
    let _ = stream.set_nodelay(true);
    let wire = match &ep.tls {
        None => Wire::new(stream),
        Some(tls) => Wire::tls(stream, tls.config.clone(), tls.name.clone())
            .await
            .map_err(|e| {
                // The certificate or the protocol was refused: trying again will not help.
                let (m, refused) = match e {
                    WireError::Protocol(m) => (format!("{TLS_REFUSED}: {m}"), true),
                    WireError::Unanswered(m) | WireError::Cut(m) => (m, false),
                };
                let mut err =
                    RequestError::new(ErrorKind::Connect, format!("{}:{}: {m}", ep.host, ep.port));
                err.tls_refused = refused;
                err
            })?,
    };
    Ok(Conn {
        wire,
        connect_time: t.elapsed(),
        served: 0,
    })
}

/// The JSON body for one request. `prompt` is a serialized prompt value of `api` (a
/// `messages` array for chat, a string for completions).
pub fn request_body(
    api: Api,
    model: &str,
    prompt_json: &str,
    max_tokens: u32,
    ignore_eos: bool,
) -> Bytes {
    api::of(api).body(model, prompt_json, max_tokens, ignore_eos)
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default)]
    choices: Vec<Choice<'a>>,
    #[serde(default)]
    usage: Option<Usage>,
    /// llama.cpp's own view of the request, next to `usage`.
    #[serde(default)]
    timings: Option<Timings>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Timings {
    #[serde(default)]
    prompt_ms: Option<f64>,
    #[serde(default)]
    predicted_ms: Option<f64>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow, default)]
    delta: Option<Delta<'a>>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning_content: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<u32>,
    #[serde(default)]
    completion_tokens: Option<u32>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
    /// SGLang's place for it.
    #[serde(default)]
    reasoning_tokens: Option<u32>,
}

#[derive(Deserialize)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u32>,
}

/// What one event meant.
enum Parsed {
    Content,
    Reasoning,
    Nothing,
    Done,
    Error(RequestError),
}

/// One event of a stream of `api`.
fn event_of(data: &[u8], r: &mut Stamps, api: Api) -> Parsed {
    match api {
        Api::Responses => responses_event(data, r),
        Api::Messages => messages_event(data, r),
        // Pooling answers are not streams (`client::pooling`).
        Api::Chat | Api::Completions | Api::Embeddings | Api::Rerank => handle_event(data, r),
    }
}

/// One event of a chat or completions stream.
fn handle_event(data: &[u8], r: &mut Stamps) -> Parsed {
    if data == b"[DONE]" {
        return Parsed::Done;
    }
    if data.is_empty() {
        return Parsed::Nothing;
    }
    match scan::classify_in_stream(data, &mut r.template) {
        Some(c) => Parsed::from(c),
        None => parse_event(data, r),
    }
}

/// One event of a Responses stream (`client::responses`); its usage into `r`.
fn responses_event(data: &[u8], r: &mut Stamps) -> Parsed {
    use responses::Event;
    match responses::classify(data) {
        Event::Text => Parsed::Content,
        Event::Reasoning => Parsed::Reasoning,
        Event::Nothing => Parsed::Nothing,
        Event::Done(usage) => {
            if let Some(u) = usage.filter(|u| u.output_tokens.is_some()) {
                r.usage_completion_tokens = u.output_tokens;
                r.usage_prompt_tokens = u.input_tokens;
                r.usage_reasoning_tokens = u.reasoning_tokens;
            }
            Parsed::Done
        }
        Event::Error(m) => Parsed::Error(RequestError::new(ErrorKind::ServerError, m)),
        Event::Malformed(m) => Parsed::Error(RequestError::new(ErrorKind::Parse, m)),
    }
}

/// One event of an Anthropic Messages stream (`client::messages`); its usage into `r`.
fn messages_event(data: &[u8], r: &mut Stamps) -> Parsed {
    use messages::Event;
    match messages::classify(data) {
        Event::Text => Parsed::Content,
        Event::Reasoning => Parsed::Reasoning,
        Event::Nothing => Parsed::Nothing,
        Event::Started(u) => {
            r.usage_prompt_tokens = u.prompt_tokens().or(r.usage_prompt_tokens);
            Parsed::Nothing
        }
        Event::Usage(u) => {
            r.usage_prompt_tokens = u.prompt_tokens().or(r.usage_prompt_tokens);
            r.usage_completion_tokens = u.output_tokens.or(r.usage_completion_tokens);
            Parsed::Nothing
        }
        Event::Done => Parsed::Done,
        Event::Error(m) => Parsed::Error(RequestError::new(ErrorKind::ServerError, m)),
        Event::Malformed(m) => Parsed::Error(RequestError::new(ErrorKind::Parse, m)),
    }
}

/// How the hot-path scan (with the stream's `template` so far) and the full parser classify
/// one event's data: `None` from the scan when it leaves the event to the parser. For the
/// fuzzer (`crate::fuzz`), which checks that they agree on every event serde_json accepts.
#[doc(hidden)]
pub fn classify_both(
    data: &[u8],
    template: &mut Option<scan::Template>,
) -> (Option<&'static str>, &'static str) {
    let name = |p: &Parsed| match p {
        Parsed::Content | Parsed::Reasoning => "text",
        Parsed::Nothing => "nothing",
        Parsed::Done => "done",
        Parsed::Error(_) => "error",
    };
    let mut r = Stamps::new(Instant::now());
    let scanned = scan::classify_in_stream(data, template).map(Parsed::from);
    (scanned.as_ref().map(name), name(&parse_event(data, &mut r)))
}

impl From<scan::Class> for Parsed {
    fn from(c: scan::Class) -> Self {
        match c {
            scan::Class::Content => Parsed::Content,
            scan::Class::Reasoning => Parsed::Reasoning,
            scan::Class::Nothing => Parsed::Nothing,
        }
    }
}

/// The message of a stream event that is not JSON: serde's reason and the event's start.
fn bad_json(e: &serde_json::Error, data: &[u8]) -> String {
    let shown = String::from_utf8_lossy(&data[..data.len().min(120)]);
    format!("bad JSON in stream ({e}): {shown}")
}

/// The full parser: usage, error events, and anything the scan is unsure of.
fn parse_event(data: &[u8], r: &mut Stamps) -> Parsed {
    let chunk: Chunk = match serde_json::from_slice(data) {
        Ok(c) => c,
        Err(e) => {
            return Parsed::Error(RequestError::new(ErrorKind::Parse, bad_json(&e, data)));
        }
    };
    if let Some(err) = chunk.error {
        return Parsed::Error(RequestError::new(
            ErrorKind::ServerError,
            error_message(&serde_json::json!({ "error": err })),
        ));
    }
    if let Some(u) = chunk.usage {
        if u.completion_tokens.is_some() {
            r.usage_completion_tokens = u.completion_tokens;
            r.usage_prompt_tokens = u.prompt_tokens;
            // vLLM nests it (and only with a reasoning parser); SGLang puts it at the top.
            r.usage_reasoning_tokens = u
                .completion_tokens_details
                .and_then(|d| d.reasoning_tokens)
                .or(u.reasoning_tokens);
        }
    }
    if let Some(Timings {
        prompt_ms: Some(p),
        predicted_ms: Some(d),
    }) = chunk.timings
    {
        r.server_timings = Some((p, d));
    }
    let nonempty = |s: &Option<Cow<str>>| s.as_deref().is_some_and(|t| !t.is_empty());
    let content = chunk
        .choices
        .iter()
        .any(|c| nonempty(&c.text) || c.delta.as_ref().is_some_and(|d| nonempty(&d.content)));
    let reasoning = chunk.choices.iter().any(|c| {
        c.delta
            .as_ref()
            .is_some_and(|d| nonempty(&d.reasoning) || nonempty(&d.reasoning_content))
    });
    match (content, reasoning) {
        (true, _) => Parsed::Content,
        (false, true) => Parsed::Reasoning,
        _ => Parsed::Nothing,
    }
}

/// The message of an error body in either shape (`{"error": {...}}` or flat `{"object": "error", ...}`).
pub fn error_message(v: &serde_json::Value) -> String {
    let e = v.get("error").unwrap_or(v);
    match e {
        serde_json::Value::String(s) => s.clone(),
        _ => e
            .get("message")
            .and_then(|m| m.as_str())
            .map(String::from)
            .unwrap_or_else(|| v.to_string()),
    }
}

/// What one streaming request may take: time, tokens and bytes. A server past any of them
/// ends the request with a classified error, and the client's memory stays bounded.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// `request_timeout`: no complete answer within it is a `timeout`.
    pub timeout: Duration,
    /// The workload's deadline with `on_deadline: abort`: reaching it is `aborted`.
    pub deadline: Option<tokio::time::Instant>,
    /// The request's `max_tokens`: more content events than this (and a tolerance) is an
    /// `overrun`.
    pub max_tokens: u32,
    /// The largest single SSE event read (`workload.max_event_bytes`); a longer one is `parse`.
    pub max_event_bytes: usize,
    /// Keep the answer's content text in the record (`RequestRecord::text`), for a
    /// conversation's history. Off on the plain benchmark path: it costs a parse per event.
    pub keep_text: bool,
}

/// Appends the content of one event (`delta.content` or `text`; a Responses `delta`; a
/// Messages `text_delta`) to `text`.
fn append_content(data: &[u8], text: &mut String, api: Api) {
    match api {
        Api::Responses => return text.push_str(&responses::text_of(data).unwrap_or_default()),
        Api::Messages => return text.push_str(&messages::text_of(data).unwrap_or_default()),
        Api::Chat | Api::Completions | Api::Embeddings | Api::Rerank => {}
    }
    if let Ok(chunk) = serde_json::from_slice::<Chunk>(data) {
        for c in &chunk.choices {
            if let Some(t) = c.delta.as_ref().and_then(|d| d.content.as_deref()) {
                text.push_str(t);
            }
            if let Some(t) = c.text.as_deref() {
                text.push_str(t);
            }
        }
    }
}

/// Content events allowed past `max_tokens` before a stream is an overrun: a server may send a
/// token or two of its own (a stop string, a role chunk with text), never a flood.
pub fn overrun_limit(max_tokens: u32) -> u32 {
    max_tokens.saturating_add((max_tokens / 10).max(16))
}

/// Sends one streaming request on `conn` and reads it to the end (or until a bound ends it).
/// Times in the record are milliseconds from `t0`, the benchmark's start.
pub async fn send(
    conn: &mut Conn,
    ep: &Endpoint,
    body: Bytes,
    bounds: &Bounds,
    t0: Instant,
) -> RequestRecord {
    let mut r = Stamps::new(Instant::now());
    if bounds.keep_text {
        r.text = Some(String::new());
    }
    let limit = tokio::time::Instant::now() + bounds.timeout;
    let (until, kind) = match bounds.deadline {
        Some(d) if d < limit => (d, ErrorKind::Aborted),
        _ => (limit, ErrorKind::Timeout),
    };
    let late = Late {
        kind,
        timeout: bounds.timeout,
        at: until.into_std(),
    };
    let outcome = match ep.api.pooling() {
        false => {
            tokio::time::timeout_at(until, exchange(conn, ep, body, &mut r, bounds, late)).await
        }
        true => tokio::time::timeout_at(until, pooling::exchange(conn, ep, body, &mut r)).await,
    };
    let error = match outcome {
        // `end` is the `[DONE]` read (or the body's end), not when draining finished.
        Ok(Ok(())) => {
            if r.end <= r.sent {
                r.end = Instant::now();
            }
            None
        }
        Ok(Err(e)) => {
            r.end = Instant::now();
            Some(e)
        }
        Err(_) => {
            r.end = Instant::now();
            Some(late.error())
        }
    };
    r.into_record(t0, error)
}

/// When a request is too late, and what that is called: `timeout` at `request_timeout`, or
/// `aborted` at the workload's deadline when that comes first.
#[derive(Clone, Copy)]
struct Late {
    kind: ErrorKind,
    timeout: Duration,
    at: Instant,
}

impl Late {
    fn error(&self) -> RequestError {
        match self.kind {
            ErrorKind::Aborted => RequestError::new(self.kind, "aborted at the workload deadline"),
            _ => RequestError::new(
                self.kind,
                format!("no complete answer within {:?}", self.timeout),
            ),
        }
    }
}

/// Feeds a streamed answer into its `Stamps`; an error status's body (or the start of an
/// answer that is not an event stream) is kept for its message instead. Enforces the bounds
/// between reads: a flood cannot outlive the deadline by more than one read.
struct StreamSink<'a> {
    r: &'a mut Stamps,
    splitter: sse::SseSplitter,
    status: u16,
    error_body: Vec<u8>,
    done: bool,
    failure: Option<RequestError>,
    /// A 2xx answer that is not an event stream: what it is (its content type or encoding);
    /// its first bytes go to `error_body` for the message.
    not_sse: Option<String>,
    max_tokens: u32,
    /// Content events allowed (see [`overrun_limit`]).
    max_events: u32,
    max_event_bytes: usize,
    late: Late,
    /// How the stream's events are read.
    api: Api,
}

/// Bytes of an answer that is not an event stream quoted in its error.
const NOT_SSE_QUOTE: usize = 200;

/// Bytes of an error answer kept for its message.
const ERROR_BODY_BYTES: usize = 64 * 1024;

impl Sink for StreamSink<'_> {
    fn head(&mut self, head: &ResponseHead) {
        self.status = head.status;
        if !(200..300).contains(&head.status) {
            return;
        }
        // We ask for no encoding; a compressed stream cannot be timed per chunk (or read).
        if let Some(enc) = head
            .content_encoding
            .as_deref()
            .filter(|e| !e.eq_ignore_ascii_case("identity"))
        {
            self.not_sse = Some(format!(
                "the server compressed the answer (Content-Encoding: {enc}) though the request asked for no encoding"
            ));
        } else if let Some(ct) = head
            .content_type
            .as_deref()
            .filter(|ct| !is_event_stream(ct))
        {
            self.not_sse = Some(format!("the answer is `{ct}`, not `text/event-stream`"));
        }
    }

    fn data(&mut self, bytes: &[u8], at: Instant) -> bool {
        if !(200..300).contains(&self.status) || self.not_sse.is_some() {
            let cap = match self.not_sse {
                Some(_) => NOT_SSE_QUOTE,
                None => ERROR_BODY_BYTES,
            };
            let room = cap.saturating_sub(self.error_body.len());
            self.error_body
                .extend_from_slice(&bytes[..bytes.len().min(room)]);
            return self.error_body.len() < cap;
        }
        // The deadline between reads: a stream that never pauses still ends on time.
        if Instant::now() >= self.late.at {
            self.failure = Some(self.late.error());
            return false;
        }
        let r = &mut *self.r;
        let (max_events, max_tokens, api) = (self.max_events, self.max_tokens, self.api);
        let (done, failure) = (&mut self.done, &mut self.failure);
        self.splitter
            .feed(bytes, |event| match event_of(event, r, api) {
                Parsed::Content | Parsed::Reasoning if r.events >= max_events => {
                    *failure = Some(RequestError::new(
                        ErrorKind::Overrun,
                        format!(
                            "the server sent more than {max_events} content events for max_tokens {max_tokens} and did not stop; the stream was closed"
                        ),
                    ));
                    false
                }
                Parsed::Content => {
                    r.content(at);
                    if let Some(text) = r.text.as_mut() {
                        append_content(event, text, api);
                    }
                    true
                }
                Parsed::Reasoning => {
                    r.reasoning(at);
                    true
                }
                Parsed::Nothing => true,
                Parsed::Done => {
                    *done = true;
                    r.end = at;
                    false
                }
                Parsed::Error(e) => {
                    *failure = Some(e);
                    false
                }
            });
        if self.failure.is_none() && self.splitter.pending() > self.max_event_bytes {
            self.failure = Some(RequestError::new(
                ErrorKind::Parse,
                format!(
                    "one SSE event is longer than {} bytes (workload.max_event_bytes) and has not ended",
                    self.max_event_bytes
                ),
            ));
        }
        !(self.done || self.failure.is_some())
    }
}

/// `text/event-stream`, with or without parameters (`; charset=utf-8`), in any letter case.
fn is_event_stream(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream"))
}

/// Writes `request` on `conn` and reads the answer into `sink`. A request the server never
/// answered on a kept connection (it closed it meanwhile: its keep-alive timeout, or
/// llama.cpp closing after every streamed answer) goes out once more on a fresh connection,
/// with its clock restarted — what curl does with a stale connection. A fresh connection is
/// not retried.
async fn round_trip<S: Sink>(
    conn: &mut Conn,
    ep: &Endpoint,
    request: &[u8],
    sink: &mut S,
    restart: impl Fn(&mut S),
) -> Result<Flow, RequestError> {
    // Not reusable: the last answer was not read to its end, the server said it closes, or
    // it has closed the connection meanwhile (its keep-alive timeout).
    if !conn.wire.is_reusable() {
        *conn = connect(ep).await?;
        restart(sink);
    }
    let attempt = async |conn: &mut Conn, sink: &mut S| {
        conn.wire.send(request).await?;
        conn.wire.read(sink).await
    };
    let flow = match attempt(conn, sink).await {
        Err(WireError::Unanswered(_)) if conn.served > 0 => {
            *conn = connect(ep).await?;
            restart(sink);
            attempt(conn, sink).await
        }
        other => other,
    };
    conn.served += 1;
    flow.map_err(|e| match e {
        WireError::Unanswered(m) => RequestError::new(ErrorKind::Connect, m),
        WireError::Cut(m) => RequestError::new(ErrorKind::StreamCut, m),
        WireError::Protocol(m) => RequestError::new(ErrorKind::Parse, m),
    })
}

async fn exchange(
    conn: &mut Conn,
    ep: &Endpoint,
    body: Bytes,
    r: &mut Stamps,
    bounds: &Bounds,
    late: Late,
) -> Result<(), RequestError> {
    let request = ep.request("POST", ep.path(), "text/event-stream", &body);
    r.sent = Instant::now();
    let mut sink = StreamSink {
        r,
        splitter: sse::SseSplitter::new(),
        status: 0,
        error_body: Vec::new(),
        done: false,
        failure: None,
        not_sse: None,
        max_tokens: bounds.max_tokens,
        max_events: overrun_limit(bounds.max_tokens),
        max_event_bytes: bounds.max_event_bytes,
        late,
        api: ep.api,
    };
    let restart = |s: &mut StreamSink| s.r.sent = Instant::now();
    let flow = round_trip(conn, ep, &request, &mut sink, restart).await;
    sink.r.reads = conn.wire.reads;
    sink.r.kernel_reads = conn.wire.kernel_reads;
    let flow = flow.map_err(|mut e| {
        if e.kind == ErrorKind::StreamCut {
            e.message = format!("stream cut after {} reads: {}", conn.wire.reads, e.message);
        }
        e
    })?;
    if let Some(what) = sink.not_sse.take() {
        conn.wire.close();
        let quoted = String::from_utf8_lossy(&sink.error_body);
        let mut err = RequestError::new(
            ErrorKind::NotSse,
            format!("HTTP {}: {what}; it begins: {quoted:?}", sink.status),
        );
        err.status = Some(sink.status);
        return Err(err);
    }
    if !(200..300).contains(&sink.status) {
        if flow == Flow::Stopped {
            conn.wire.close();
        }
        return Err(status_error(sink.status, &sink.error_body));
    }
    if let Some(f) = sink.failure {
        conn.wire.close();
        return Err(f);
    }
    if !sink.done {
        let end = match ep.api {
            Api::Responses => "a response.completed event",
            Api::Messages => "a message_stop event",
            Api::Chat | Api::Completions | Api::Embeddings | Api::Rerank => "[DONE]",
        };
        return Err(RequestError::new(
            ErrorKind::StreamCut,
            format!("stream ended without {end} after {} reads", conn.wire.reads),
        ));
    }
    if flow == Flow::Stopped {
        // Read the body to its end (the last chunk may come in a later read, as llama.cpp's
        // does): the next request on this slot needs the connection. Bounded: a server that
        // never ends the body loses the connection, not the request.
        let finished = tokio::time::timeout(Duration::from_secs(2), conn.wire.finish()).await;
        if !matches!(finished, Ok(Ok(()))) {
            conn.wire.close();
        }
    }
    Ok(())
}

/// The error of an answer with an error status: its JSON error's message, or its first bytes.
fn status_error(status: u16, body: &[u8]) -> RequestError {
    let msg = serde_json::from_slice::<serde_json::Value>(body)
        .map(|v| error_message(&v))
        .unwrap_or_else(|_| String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned());
    let mut err = RequestError::new(ErrorKind::Status, format!("HTTP {status}: {msg}"));
    err.status = Some(status);
    err
}

/// Collects a whole answer (control-plane calls).
struct Collect {
    status: u16,
    body: Vec<u8>,
}

/// The largest control-plane answer read.
const CONTROL_BODY_BYTES: usize = 16 * 1024 * 1024;

impl Sink for Collect {
    fn head(&mut self, head: &ResponseHead) {
        self.status = head.status;
    }
    fn data(&mut self, bytes: &[u8], _: Instant) -> bool {
        self.body.extend_from_slice(bytes);
        self.body.len() <= CONTROL_BODY_BYTES
    }
}

/// A control-plane call (health, models, tokenize, pre-flight) on a fresh connection: returns
/// the status and the body. Not for benchmark traffic.
pub async fn http_call(
    ep: &Endpoint,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), RequestError> {
    let fut = async {
        let mut conn = connect(ep).await?;
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        let request = ep.request(
            method,
            &format!("{}{path}", ep.base_path),
            "application/json",
            bytes.as_bytes(),
        );
        let mut sink = Collect {
            status: 0,
            body: Vec::new(),
        };
        let flow = round_trip(&mut conn, ep, &request, &mut sink, |_| {})
            .await
            .map_err(|e| RequestError {
                message: format!("{path}: {}", e.message),
                ..e
            })?;
        if flow == Flow::Stopped {
            return Err(RequestError::new(
                ErrorKind::Parse,
                format!("{path}: answer larger than {CONTROL_BODY_BYTES} bytes"),
            ));
        }
        Ok((sink.status, sink.body))
    };
    tokio::time::timeout(timeout, fut)
        .await
        .unwrap_or_else(|_| {
            Err(RequestError::new(
                ErrorKind::Timeout,
                format!("{path}: no answer within {timeout:?}"),
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_agrees_with_the_full_parser() {
        let sample = |name: &str| {
            let p = format!("{}/../shared/reference/{name}", env!("CARGO_MANIFEST_DIR"));
            std::fs::read_to_string(p).unwrap()
        };
        let mut events: Vec<String> = Vec::new();
        for name in ["chat-stream-sample.txt", "completions-stream-sample.txt"] {
            for e in sample(name).split("\n\n").filter(|e| !e.is_empty()) {
                events.push(e.trim_start_matches("data: ").to_string());
            }
        }
        events.extend(
            [
                r#"{"choices":[{"delta":{"content":"say \"content\":\"x\" now"}}]}"#,
                r#"{"choices":[{"delta":{"content":"\"text\":\"\""}}]}"#,
                r#"{"choices":[{"delta":{"content":null,"reasoning":"think"}}]}"#,
                r#"{"choices":[{"delta":{"reasoning_content":""}}]}"#,
                r#"{"choices":[{"delta":{"content": "spaced"}}]}"#,
                r#"{"choices":[{"index":0,"text":"","finish_reason":"length"}]}"#,
                r#"{"choices":[{"delta":{"content":"x"}}],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#,
                r#"{"id":"broken","choices":[{"delta":{"content":""#,
                r#"{"choices":[{"delta":{}}]}"#,
            ]
            .map(String::from),
        );
        for e in &events {
            let mut a = Stamps::new(Instant::now());
            let mut b = Stamps::new(Instant::now());
            let fast = handle_event(e.as_bytes(), &mut a);
            let full = parse_event(e.as_bytes(), &mut b);
            let kind = |p: &Parsed| match p {
                Parsed::Content => "content".to_string(),
                Parsed::Reasoning => "reasoning".to_string(),
                Parsed::Nothing => "nothing".into(),
                Parsed::Done => "done".into(),
                Parsed::Error(e) => format!("error {:?}", e.kind),
            };
            if e != "[DONE]" {
                assert_eq!(kind(&fast), kind(&full), "{e}");
            }
            assert_eq!(
                (a.usage_prompt_tokens, a.usage_completion_tokens),
                (b.usage_prompt_tokens, b.usage_completion_tokens),
                "{e}"
            );
        }
    }

    #[test]
    fn endpoint_parsing() {
        let e = Endpoint::parse("http://127.0.0.1:8000", Api::Chat, None).unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.path()),
            ("127.0.0.1", 8000, "/v1/chat/completions")
        );
        let e = Endpoint::parse("http://h/prefix/", Api::Completions, None).unwrap();
        assert_eq!((e.port, e.path()), (80, "/prefix/v1/completions"));
        let e = Endpoint::parse("http://[::1]:8001/p", Api::Chat, None).unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.base_url()),
            ("[::1]", 8001, "http://[::1]:8001/p".into())
        );
        let e = Endpoint::parse("http://[::1]", Api::Chat, None).unwrap();
        assert_eq!((e.host.as_str(), e.port), ("[::1]", 80));
        assert!(Endpoint::parse("http://h:x", Api::Chat, None)
            .unwrap_err()
            .contains("bad port"));
        let e = Endpoint::parse("https://example.org/p", Api::Chat, None).unwrap();
        assert_eq!(
            (e.port, e.is_https(), e.base_url()),
            (443, true, "https://example.org:443/p".into())
        );
        let head =
            String::from_utf8(e.request("POST", e.path(), "text/event-stream", b"{}")).unwrap();
        assert!(
            head.starts_with("POST /p/v1/chat/completions HTTP/1.1\r\nHost: example.org\r\n"),
            "{head}"
        );
        assert!(head.ends_with("Content-Length: 2\r\n\r\n{}"), "{head}");
        let e = Endpoint::parse("http://h:8000", Api::Chat, Some(Secret::new("k"))).unwrap();
        let head = String::from_utf8(e.request("GET", "/x", "a/b", b"")).unwrap();
        assert!(
            head.contains("\r\nHost: h:8000\r\n")
                && head.contains("\r\nAuthorization: Bearer k\r\n"),
            "{head}"
        );
        assert!(Endpoint::parse("ftp://x", Api::Chat, None)
            .unwrap_err()
            .contains("expected http://"));
    }

    #[test]
    fn body_asks_for_usage_and_min_tokens_with_ignore_eos() {
        let b = request_body(
            Api::Chat,
            "m",
            "[{\"role\":\"user\",\"content\":\"hi\"}]",
            16,
            true,
        );
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["min_tokens"], 16);
        assert_eq!(v["max_tokens"], 16);
        assert_eq!(v["messages"][0]["content"], "hi");
    }

    /// Byte for byte what vLLM 0.32 streams with `--reasoning-parser deepseek_r1` when no
    /// `</think>` comes (a random model): an empty content first, every token as `reasoning`,
    /// and a usage that says 0 reasoning tokens.
    const VLLM_032_REASONING: [&str; 6] = [
        r#"{"id":"chatcmpl-b2c45e9c27bba558","object":"chat.completion.chunk","created":1796421210,"model":"tiny","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"prompt_token_ids":null,"prompt_text":null}"#,
        r#"{"id":"chatcmpl-b2c45e9c27bba558","object":"chat.completion.chunk","created":1796421210,"model":"tiny","choices":[{"index":0,"delta":{"reasoning":" urlencoded"},"logprobs":null,"finish_reason":null,"token_ids":null}]}"#,
        r#"{"id":"chatcmpl-b2c45e9c27bba558","object":"chat.completion.chunk","created":1796421210,"model":"tiny","choices":[{"index":0,"delta":{"reasoning":" alternate"},"logprobs":null,"finish_reason":null,"token_ids":null}]}"#,
        r#"{"id":"chatcmpl-b2c45e9c27bba558","object":"chat.completion.chunk","created":1796421210,"model":"tiny","choices":[{"index":0,"delta":{"reasoning":" beta"},"logprobs":null,"finish_reason":null,"token_ids":null}]}"#,
        r#"{"id":"chatcmpl-b2c45e9c27bba558","object":"chat.completion.chunk","created":1796421210,"model":"tiny","choices":[{"index":0,"delta":{"reasoning":" Sized"},"logprobs":null,"finish_reason":"length","stop_reason":null,"token_ids":null}]}"#,
        r#"{"id":"chatcmpl-b2c45e9c27bba558","object":"chat.completion.chunk","created":1796421210,"model":"tiny","choices":[],"usage":{"prompt_tokens":8,"total_tokens":12,"completion_tokens":4,"completion_tokens_details":{"reasoning_tokens":0}},"system_fingerprint":"vllm-0.32.0-ddb8c394"}"#,
    ];

    #[test]
    fn a_vllm_032_reasoning_stream_is_all_reasoning_and_its_usage_is_not_believed() {
        let t0 = Instant::now();
        let mut r = Stamps::new(t0);
        let classes: Vec<String> = VLLM_032_REASONING
            .iter()
            .map(|e| match handle_event(e.as_bytes(), &mut r) {
                Parsed::Content => {
                    r.content(Instant::now());
                    "content".to_string()
                }
                Parsed::Reasoning => {
                    r.reasoning(Instant::now());
                    "reasoning".to_string()
                }
                Parsed::Nothing => "nothing".to_string(),
                _ => "error or done".to_string(),
            })
            .collect();
        assert_eq!(
            classes,
            [
                "nothing",
                "reasoning",
                "reasoning",
                "reasoning",
                "reasoning",
                "nothing"
            ]
        );
        let rec = r.into_record(t0, None);
        assert!(rec.ttft_ms.is_some());
        assert_eq!(rec.ttfo_ms, None, "no content token came: no TTFO");
        // The usage says 0; the stream carried 4 reasoning tokens: the stream wins, and the
        // record keeps what the server said.
        assert_eq!(rec.reasoning_tokens, Some(4));
        assert_eq!(rec.reasoning_usage_disagreed, Some(0));
        assert_eq!(rec.output_tokens, 4);
    }

    #[test]
    fn events_classified_by_content_reasoning_usage_and_error() {
        let mut r = Stamps::new(Instant::now());
        assert!(matches!(
            handle_event(
                br#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#,
                &mut r
            ),
            Parsed::Nothing
        ));
        assert!(matches!(
            handle_event(br#"{"choices":[{"delta":{"content":"x"}}]}"#, &mut r),
            Parsed::Content
        ));
        assert!(matches!(
            handle_event(br#"{"choices":[{"delta":{"reasoning":"x"}}]}"#, &mut r),
            Parsed::Reasoning
        ));
        assert!(matches!(
            handle_event(
                br#"{"choices":[{"delta":{"reasoning_content":"x"}}]}"#,
                &mut r
            ),
            Parsed::Reasoning
        ));
        assert!(matches!(
            handle_event(
                br#"{"choices":[{"text":"x","finish_reason":null}]}"#,
                &mut r
            ),
            Parsed::Content
        ));
        assert!(matches!(handle_event(br#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}"#, &mut r), Parsed::Nothing));
        assert_eq!(
            (r.usage_prompt_tokens, r.usage_completion_tokens),
            (Some(3), Some(5))
        );
        match handle_event(
            br#"{"error":{"message":"boom","type":"x","code":500}}"#,
            &mut r,
        ) {
            Parsed::Error(e) => assert_eq!(
                (e.kind, e.message.as_str()),
                (ErrorKind::ServerError, "boom")
            ),
            _ => panic!("error event not recognised"),
        }
        match handle_event(
            br#"{"error":{"object":"error","message":"flat","code":400}}"#,
            &mut r,
        ) {
            Parsed::Error(e) => assert_eq!(
                (e.kind, e.message.as_str()),
                (ErrorKind::ServerError, "flat")
            ),
            _ => panic!("flat error event not recognised"),
        }
        assert!(matches!(
            handle_event(b"{not json", &mut r),
            Parsed::Error(RequestError {
                kind: ErrorKind::Parse,
                ..
            })
        ));
        assert!(matches!(handle_event(b"[DONE]", &mut r), Parsed::Done));
    }
}
