//! The pooling routes, as vLLM 0.32 serves them for a model run with `--runner pooling`:
//! `POST /v1/embeddings` and `POST /v1/rerank`. Each text is one engine request (vLLM splits a
//! batch the same way): its prompt is prefilled, nothing is generated, and it finishes `stop`.
//! The answer is one JSON document when every text is done.

use super::*;

/// One text to pool: its tokens and block hashes.
struct Text {
    tokens: u32,
    hashes: Vec<u64>,
    chain: BlockChain,
    seed: u64,
}

impl Text {
    fn of(s: &str, block_size: usize) -> Self {
        let (hashes, chain) = tokenizer::chain_over(s.split_whitespace(), block_size);
        Self {
            tokens: tokenizer::count(s).max(1),
            hashes,
            chain,
            seed: tokenizer::fnv1a(s.as_bytes()),
        }
    }

    fn submit(&self, sim: &Sim) -> (Submit, mpsc::UnboundedReceiver<Emit>) {
        let (events, rx) = mpsc::unbounded_channel();
        let s = Submit {
            prompt_tokens: self.tokens,
            block_hashes: self.hashes.clone(),
            answer: AnswerChain {
                chain: self.chain,
                words_seed: sim.cfg.seed ^ self.seed,
                chat: false,
            },
            output_tokens: 0,
            ends_on_eos: true,
            lora: false,
            arrived: Instant::now(),
            events,
        };
        (s, rx)
    }
}

/// `input` of an embeddings request: one string or a list of them.
fn embedding_inputs(req: &Value) -> Result<Vec<&str>, String> {
    let bad = || "`input` must be a string or a list of strings".to_string();
    match req.get("input") {
        Some(Value::String(s)) => Ok(vec![s]),
        Some(Value::Array(a)) if !a.is_empty() => {
            a.iter().map(|v| v.as_str().ok_or_else(bad)).collect()
        }
        _ => Err(bad()),
    }
}

/// `query` and `documents` of a rerank request.
fn rerank_inputs(req: &Value) -> Result<(&str, Vec<&str>), String> {
    let query = req
        .get("query")
        .and_then(Value::as_str)
        .ok_or("`query` is required and must be a string")?;
    let docs = req
        .get("documents")
        .and_then(Value::as_array)
        .filter(|d| !d.is_empty())
        .ok_or("`documents` is required and must be a non-empty list of strings")?;
    let docs = docs
        .iter()
        .map(|d| d.as_str().ok_or("each document must be a string"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((query, docs))
}

pub(super) async fn embeddings(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    pool(sim, headers, body, Pooling::Embed).await
}

pub(super) async fn rerank(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    pool(sim, headers, body, Pooling::Rerank).await
}

#[derive(Clone, Copy, PartialEq)]
enum Pooling {
    Embed,
    Rerank,
}

async fn pool(sim: Arc<Sim>, headers: HeaderMap, body: Bytes, kind: Pooling) -> Response {
    let n = sim.counter.fetch_add(1, Ordering::Relaxed);
    if sim.loading() {
        return sim.loading_error();
    }
    let req = match json_body(&body) {
        Ok(r) => r,
        Err(m) => return sim.bad_request(&m),
    };
    if let Err(r) = known_model(&sim, &req) {
        return *r;
    }
    sim.record(&req);
    let block = sim.profile.block_size;
    let (texts, query) = match kind {
        Pooling::Embed => match embedding_inputs(&req) {
            Ok(t) => (t, None),
            Err(m) => return sim.bad_request(&m),
        },
        Pooling::Rerank => match rerank_inputs(&req) {
            Ok((q, d)) => (d, Some(q)),
            Err(m) => return sim.bad_request(&m),
        },
    };
    // An embedding model scores a pair by the cosine of two embeddings: the query is pooled
    // once, then each document.
    let pooled: Vec<Text> = query
        .into_iter()
        .chain(texts.iter().copied())
        .map(|t| Text::of(t, block))
        .collect();
    let max_len = sim.profile.max_model_len;
    if let Some(t) = pooled.iter().find(|t| t.tokens > max_len) {
        return sim.bad_request(&format!(
            "This model's maximum context length is {max_len} tokens. However, you requested {} tokens in the input for embedding generation. Please reduce the length of the input.",
            t.tokens
        ));
    }
    if let Err(r) = delayed_faults(&sim, n, &headers).await {
        return *r;
    }
    if let Err(r) = run(&sim, &pooled).await {
        return r;
    }
    let prompt_tokens: u32 = pooled.iter().map(|t| t.tokens).sum();
    let body = match kind {
        Pooling::Embed => embeddings_answer(&sim, n, &pooled, prompt_tokens),
        Pooling::Rerank => rerank_answer(&sim, n, &texts, &pooled, prompt_tokens),
    };
    let mut r = Response::new(Body::from(body.to_string()));
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

/// Puts every text through the engine (or the fixed profile's clock) and counts it.
async fn run(sim: &Sim, pooled: &[Text]) -> Result<(), Response> {
    if let Some(engine) = &sim.engine {
        let mut waiting = Vec::with_capacity(pooled.len());
        for t in pooled {
            let (submit, rx) = t.submit(sim);
            if engine.send(submit).is_err() {
                return Err(sim.error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerError",
                    "engine stopped",
                    None,
                ));
            }
            waiting.push(rx);
        }
        for mut rx in waiting {
            while let Some(e) = rx.recv().await {
                if e == Emit::Done {
                    break;
                }
            }
        }
        return Ok(());
    }
    let took = match sim.profile.fixed {
        Some((ttft, _)) => {
            let ttft = ttft.div_f64(sim.cfg.speed);
            tokio::time::sleep(ttft).await;
            ttft.as_secs_f64()
        }
        None => 0.0,
    };
    if let Ok(mut m) = sim.metrics.lock() {
        for t in pooled {
            m.prompt_tokens += u64::from(t.tokens);
            m.prefix_queries += u64::from(t.tokens);
            m.requests_total += 1;
            m.finished_stop += 1;
            m.e2e.observe(took);
            m.queue.observe(0.0);
        }
    }
    Ok(())
}

/// Embedding `dims` of a text: a seeded unit vector.
fn embedding(seed: u64, dims: usize) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let v: Vec<f64> = (0..dims).map(|_| rng.random_range(-1.0..1.0)).collect();
    let norm = v
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
        .max(f64::EPSILON);
    v.into_iter().map(|x| x / norm).collect()
}

/// The embedding size the simulated model answers with (the tiny real model's).
const DIMS: usize = 256;

fn embeddings_answer(sim: &Sim, n: u64, pooled: &[Text], prompt_tokens: u32) -> Value {
    let data: Vec<Value> = pooled
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"index": i, "object": "embedding", "embedding": embedding(sim.cfg.seed ^ t.seed, DIMS)}))
        .collect();
    json!({
        "id": format!("embd-{:016x}", n ^ sim.cfg.seed.rotate_left(29)), "object": "list",
        "created": sim.created, "model": sim.cfg.model, "data": data,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens, "completion_tokens": 0, "prompt_tokens_details": null, "completion_tokens_details": null},
    })
}

/// Documents by falling relevance (the cosine of their embedding and the query's).
fn rerank_answer(sim: &Sim, n: u64, docs: &[&str], pooled: &[Text], prompt_tokens: u32) -> Value {
    let q = embedding(sim.cfg.seed ^ pooled[0].seed, DIMS);
    let mut results: Vec<(usize, f64)> = pooled[1..]
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let d = embedding(sim.cfg.seed ^ t.seed, DIMS);
            (i, q.iter().zip(&d).map(|(a, b)| a * b).sum())
        })
        .collect();
    results.sort_by(|a, b| b.1.total_cmp(&a.1));
    let results: Vec<Value> = results
        .into_iter()
        .map(|(i, score)| json!({"index": i, "document": {"text": docs[i], "multi_modal": null}, "relevance_score": score}))
        .collect();
    json!({
        // vLLM's rerank ids are its score route's.
        "id": format!("score-{:016x}", n ^ sim.cfg.seed.rotate_left(29)), "model": sim.cfg.model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}, "results": results,
    })
}
