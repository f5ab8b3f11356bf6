//! Where requests come from: request *n*'s prompt is made when it is needed, from the seed and
//! *n* alone — the same experiment and seed give the same requests in whatever order they
//! complete, a run holds only the prompts in flight (memory grows with concurrency, not with
//! the run's length), and random prompts never repeat: each request draws its words from its
//! own stream of the seeded generator (`ChaCha8Rng::set_stream(n)`). JSONL prompts cycle
//! through the file, as documented; shared prefixes repeat by design.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::dataset::{as_prompt_json, DatasetError, Lengths, Prompt};
pub use super::dataset::{rng_for, text_of, Source};
use crate::config::{Api, Dataset, Experiment};

/// Random prompts of controlled token length (`dataset: {kind: random}`).
pub struct RandomSource {
    pub input_len: u32,
    pub output_len: u32,
    pub range_ratio: f64,
    pub seed: u64,
    pub lengths: Lengths,
}

/// A length drawn uniformly from `[len·(1−r), len·(1+r)]` (exactly `len` when r = 0).
fn draw(rng: &mut ChaCha8Rng, len: u32, range_ratio: f64) -> u32 {
    if range_ratio <= 0.0 {
        return len;
    }
    let lo = ((len as f64) * (1.0 - range_ratio)).ceil().max(1.0) as u32;
    let hi = ((len as f64) * (1.0 + range_ratio)).floor() as u32;
    rng.random_range(lo..=hi.max(lo))
}

impl Source for RandomSource {
    fn prompt(&self, n: u64) -> Prompt {
        let mut rng = rng_for(self.seed, n);
        let inp = draw(&mut rng, self.input_len, self.range_ratio);
        let out = draw(&mut rng, self.output_len, self.range_ratio);
        let text = self.lengths.prompt(&mut rng, inp);
        Prompt {
            json: as_prompt_json(self.lengths.api, &text).into(),
            max_tokens: out,
            expected_input_tokens: Some(inp),
            ideal_cached_tokens: None,
        }
    }
}

/// `groups` shared prefixes, each request a fresh suffix after one of them, round robin.
pub struct SharedPrefixSource {
    prefixes: Arc<Vec<String>>,
    suffix_len: u32,
    prefix_len: u32,
    output_len: u32,
    seed: u64,
    lengths: Lengths,
    /// The server's cache block, for the ideal hit.
    block: u32,
    /// Whether each group's prefix was sent (by a request, the warm-up or the prime).
    sent: Arc<Vec<AtomicBool>>,
}

impl SharedPrefixSource {
    pub fn new(
        (prefix_len, suffix_len): (u32, u32),
        groups: u32,
        output_len: u32,
        seed: u64,
        lengths: Lengths,
        block: u32,
    ) -> Self {
        // The prefixes come from a stream no request uses (requests use 0, 1, 2, …).
        let mut rng = rng_for(seed, u64::MAX);
        let prefixes: Vec<String> = (0..groups.max(1))
            .map(|_| lengths.prompt(&mut rng, prefix_len))
            .collect();
        let sent = Arc::new(prefixes.iter().map(|_| AtomicBool::new(false)).collect());
        Self {
            prefixes: Arc::new(prefixes),
            suffix_len,
            prefix_len,
            output_len,
            seed,
            lengths,
            block: block.max(1),
            sent,
        }
    }

    /// The warm-up's prompts: the same prefixes, suffixes from a stream no measured request
    /// uses (else measured request *n* would repeat warm-up request *n* whole).
    pub fn warm(&self) -> Self {
        Self {
            prefixes: Arc::clone(&self.prefixes),
            seed: self.seed ^ WARMUP_SEED,
            lengths: self.lengths.clone(),
            sent: Arc::clone(&self.sent),
            ..*self
        }
    }

    /// The tokens an ideal cache serves a request of a group whose prefix was sent: the
    /// prefix, at most all but the last token, in whole blocks.
    fn ideal_hit(&self) -> u32 {
        let most = (self.prefix_len + self.suffix_len).saturating_sub(1);
        self.prefix_len.min(most) / self.block * self.block
    }
}

/// `shared_prefix` with `target_hit_rate`: the prompt's tokens split so the prefix is that share
/// of them in whole cache blocks (at most all but the last token); else as written.
pub fn prefix_split(
    prefix_len: u32,
    suffix_len: u32,
    target: Option<f64>,
    block: u32,
) -> (u32, u32) {
    let Some(r) = target else {
        return (prefix_len, suffix_len);
    };
    let total = prefix_len + suffix_len;
    let block = block.max(1);
    let blocks = (r.clamp(0.0, 1.0) * f64::from(total) / f64::from(block)).round() as u32;
    let prefix = (blocks * block).min(total.saturating_sub(1) / block * block);
    (prefix, total - prefix)
}

impl Source for SharedPrefixSource {
    fn prompt(&self, n: u64) -> Prompt {
        let mut rng = rng_for(self.seed, n);
        let g = (n % self.prefixes.len() as u64) as usize;
        let text = format!(
            "{} {}",
            self.prefixes[g],
            self.lengths.continuation(&mut rng, self.suffix_len)
        );
        let seen = self.sent[g].swap(true, Ordering::Relaxed);
        Prompt {
            json: as_prompt_json(self.lengths.api, &text).into(),
            max_tokens: self.output_len,
            expected_input_tokens: Some(self.prefix_len + self.suffix_len),
            ideal_cached_tokens: Some(if seen { self.ideal_hit() } else { 0 }),
        }
    }

    fn prime(&self) -> Vec<Prompt> {
        self.sent
            .iter()
            .for_each(|s| s.store(true, Ordering::Relaxed));
        self.prefixes
            .iter()
            .map(|p| Prompt {
                json: as_prompt_json(self.lengths.api, p).into(),
                max_tokens: 1,
                expected_input_tokens: Some(self.prefix_len),
                ideal_cached_tokens: None,
            })
            .collect()
    }
}

/// A JSONL file's prompts, read and checked before the run; request `n` is line
/// `(skip + n) mod lines` — the measured window goes on where the warm-up stopped.
pub struct JsonlSource {
    pub lines: Arc<Vec<Prompt>>,
    pub skip: u64,
}

impl Source for JsonlSource {
    fn prompt(&self, n: u64) -> Prompt {
        let len = self.lines.len().max(1) as u64;
        self.lines[((self.skip + n) % len) as usize].clone()
    }
}

/// The seed of warm-up prompts: a generator no measured request uses, so warm-up never primes
/// the prefix cache with a measured prompt.
const WARMUP_SEED: u64 = 0x5741_524D_5550;

/// The measured source and the warm-up source of a point. `jsonl` holds the JSONL prompts,
/// `trace` the trace's requests, `sessions` the recorded conversations, when the dataset has
/// them; `warmup` is the number of warm-up requests.
/// `cache_block` is the server's prefix-cache block (the ideal hit rate counts in it).
pub fn sources(
    e: &Experiment,
    loaded: &Loaded,
    (seed, warmup): (u64, u64),
    lengths: Lengths,
    cache_block: u32,
) -> (Feed, Arc<dyn Source>) {
    let (feed, warm) = single_sources(e, loaded, (seed, warmup), lengths, cache_block);
    let api = e.workload.api;
    match feed {
        Feed::Requests(src) if api.pooling() => {
            // Rerank's query is one text more than its documents.
            let texts = e.workload.inputs_per_request.max(1) + u32::from(api == Api::Rerank);
            let batched = |inner| -> Arc<dyn Source> { Arc::new(Batched { inner, texts, api }) };
            (Feed::Requests(batched(src)), batched(warm))
        }
        other => (other, warm),
    }
}

/// A pooling API's requests: `texts` consecutive prompts of `inner` in one request
/// ([`crate::client::api::batch`]); request `n` holds prompts `n·texts …`.
pub struct Batched {
    inner: Arc<dyn Source>,
    texts: u32,
    api: Api,
}

impl Source for Batched {
    fn prompt(&self, n: u64) -> Prompt {
        let k = u64::from(self.texts);
        let prompts: Vec<Prompt> = (0..k).map(|i| self.inner.prompt(n * k + i)).collect();
        let jsons: Vec<Arc<str>> = prompts.iter().map(|p| p.json.clone()).collect();
        Prompt {
            json: crate::client::api::batch(self.api, &jsons).into(),
            max_tokens: prompts.first().map_or(0, |p| p.max_tokens),
            expected_input_tokens: prompts.iter().map(|p| p.expected_input_tokens).sum(),
            ideal_cached_tokens: None,
        }
    }

    fn prime(&self) -> Vec<Prompt> {
        self.inner.prime()
    }
}

/// The sources of one prompt per request (before a pooling API batches them).
fn single_sources(
    e: &Experiment,
    loaded: &Loaded,
    (seed, warmup): (u64, u64),
    lengths: Lengths,
    cache_block: u32,
) -> (Feed, Arc<dyn Source>) {
    let dataset = &e.workload.dataset;
    let random =
        |input_len: u32, output_len: u32, range_ratio: f64, seed: u64| -> Arc<dyn Source> {
            Arc::new(RandomSource {
                input_len,
                output_len,
                range_ratio,
                seed,
                lengths: lengths.clone(),
            })
        };
    match dataset {
        Dataset::Random {
            input_len,
            output_len,
            range_ratio,
        } => {
            let of = |seed| random(*input_len, *output_len, *range_ratio, seed);
            (Feed::Requests(of(seed)), of(seed ^ WARMUP_SEED))
        }
        Dataset::SharedPrefix {
            prefix_len,
            suffix_len,
            groups,
            output_len,
            target_hit_rate,
        } => {
            let s = Arc::new(SharedPrefixSource::new(
                prefix_split(*prefix_len, *suffix_len, *target_hit_rate, cache_block),
                *groups,
                *output_len,
                seed,
                lengths.clone(),
                cache_block,
            ));
            // Warm-up on the same prefixes (what a server serving them would have cached).
            let warm = Arc::new(s.warm());
            (Feed::Requests(s), warm)
        }
        Dataset::Jsonl { .. } => jsonl_feed(loaded, warmup),
        Dataset::Trace { block_size, .. } => {
            let trace = loaded.trace.clone().unwrap_or_default();
            // Warm-up prompts as long as the trace's first.
            let typical = trace
                .requests
                .first()
                .map_or(256, |r| r.input_len.clamp(1, 4096));
            let src = super::trace::TraceSource::new(
                trace,
                (*block_size, cache_block),
                seed,
                lengths.clone(),
            );
            let warm = random(typical, 16, 0.0, seed ^ WARMUP_SEED);
            (Feed::Requests(Arc::new(src)), warm)
        }
        Dataset::Conversation { input_len, .. } => {
            let warm = random(input_len.unwrap_or(256), 16, 0.0, seed ^ WARMUP_SEED);
            (
                Feed::Sessions(conversations(dataset, loaded, seed, &lengths, cache_block)),
                warm,
            )
        }
        Dataset::Agentic { .. } => {
            let warm = random(256, 16, 0.0, seed ^ WARMUP_SEED);
            (
                Feed::Agents(Arc::new(agents(e, loaded, seed, lengths, cache_block))),
                warm,
            )
        }
    }
}

/// A conversation dataset's sessions: recorded ones when a file was read, else synthetic;
/// `cache_block` is the server's prefix-cache block (the ideal hit counts in it).
fn conversations(
    dataset: &Dataset,
    loaded: &Loaded,
    seed: u64,
    lengths: &Lengths,
    cache_block: u32,
) -> Arc<dyn super::session::Sessions> {
    let (think_time, think_distribution, output_len) = match dataset {
        Dataset::Conversation {
            think_time,
            think_distribution,
            output_len,
            ..
        } => (*think_time, *think_distribution, *output_len),
        _ => (None, Default::default(), None),
    };
    let think = super::session::Think {
        mean: think_time.map(|t| t.as_duration()).unwrap_or_default(),
        distribution: think_distribution,
    };
    if let Some(recorded) = &loaded.conversations {
        return Arc::new(super::session::Recorded {
            conversations: recorded.clone(),
            output_len,
            think,
            seed,
            lengths: lengths.clone(),
            ideal: super::session::TurnIdeal::new(cache_block, 0),
        });
    }
    let shape = dataset
        .session_shape()
        .unwrap_or(crate::config::sessions::Shape {
            turns: crate::config::Count::Fixed(1),
            first: 256,
            input: 256,
            output: 128,
        });
    Arc::new(super::session::Synthetic::new(
        shape.turns,
        (shape.first, shape.input),
        shape.output,
        dataset.system_len(cache_block),
        think,
        seed,
        lengths.clone(),
        cache_block,
    ))
}

/// An agent-trace dataset's sessions over the traces read before the run.
fn agents(
    e: &Experiment,
    loaded: &Loaded,
    seed: u64,
    lengths: Lengths,
    cache_block: u32,
) -> super::agentic::AgentSessions {
    let (start, bust) = match &e.workload.dataset {
        Dataset::Agentic {
            start, cache_bust, ..
        } => (*start, *cache_bust),
        _ => ([0.0, 0.0], false),
    };
    super::agentic::AgentSessions {
        traces: loaded.agents.clone().unwrap_or_default(),
        seed,
        lengths,
        start,
        // Drawn per run, never from the seed: two runs of one file share no prefix.
        bust: bust.then(rand::random::<u64>),
        server_block: cache_block,
        context: e.model.max_model_len,
        shared: Arc::new(super::ideal::IdealCache::new(cache_block)),
    }
}

/// A JSONL file's prompts: the warm-up takes the first lines, the measured requests the lines
/// after them.
fn jsonl_feed(loaded: &Loaded, warmup: u64) -> (Feed, Arc<dyn Source>) {
    let lines = loaded.jsonl.clone().unwrap_or_default();
    let warm = Arc::new(JsonlSource {
        lines: lines.clone(),
        skip: 0,
    });
    let measured = Arc::new(JsonlSource {
        lines,
        skip: warmup,
    });
    (Feed::Requests(measured), warm)
}

/// What a point's workload hands the executor: one prompt per request, or sessions of turns.
#[derive(Clone)]
pub enum Feed {
    Requests(Arc<dyn Source>),
    Sessions(Arc<dyn super::session::Sessions>),
    /// Agent sessions (`dataset: {kind: agentic}`), each a tree of calls.
    Agents(Arc<super::agentic::AgentSessions>),
}

impl Feed {
    /// What priming the server's prefix cache sends (`workload.cache.prime`): each shared
    /// prefix (a group's, or the sessions' system prompt) once.
    pub fn prime(&self) -> Vec<Prompt> {
        match self {
            Feed::Requests(src) => src.prime(),
            Feed::Sessions(sessions) => sessions.prime(),
            Feed::Agents(_) => Vec::new(),
        }
    }
}

/// Reads the dataset's files (JSONL prompts, a trace, recorded conversations), every line
/// checked, before anything is started.
pub fn load(resolved: &crate::config::Resolved) -> Result<Loaded, DatasetError> {
    let w = &resolved.experiment.workload;
    let path = |p| resolved.resolve_path("workload.dataset.path", p);
    let mut loaded = Loaded::default();
    match &w.dataset {
        Dataset::Jsonl { path: p } => {
            let prompts = super::dataset::load_jsonl(&path(p), w.api, w.max_tokens)?;
            loaded.jsonl = Some(Arc::new(prompts));
        }
        Dataset::Trace {
            path: p,
            format,
            time_scale,
            block_size,
        } => {
            let e = &resolved.experiment;
            let fit = super::trace::Fit {
                max_tokens: w.max_tokens,
                context: e
                    .model
                    .max_model_len
                    .unwrap_or(crate::config::MAX_CONTEXT_TOKENS),
                block_size: *block_size,
            };
            let t = super::trace::load(&path(p), *format, *time_scale, w.api, fit)?;
            loaded.trace = Some(Arc::new(t));
        }
        Dataset::Conversation {
            path: Some(p),
            format,
            ..
        } => {
            loaded.conversations = Some(Arc::new(super::session::load(&path(p), *format)?));
        }
        Dataset::Agentic {
            path: p, max_gap, ..
        } => {
            let traces = super::agentic::load(&path(p), max_gap.as_duration())?;
            loaded.agents = Some(Arc::new(traces));
        }
        _ => {}
    }
    Ok(loaded)
}

/// Datasets read from disk before the run (checked line by line).
#[derive(Clone, Default)]
pub struct Loaded {
    pub jsonl: Option<Arc<Vec<Prompt>>>,
    pub trace: Option<Arc<super::trace::Trace>>,
    pub conversations: Option<Arc<Vec<super::session::RecordedConversation>>>,
    pub agents: Option<Arc<Vec<super::agentic::AgentTrace>>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Api;
    use crate::workload::dataset::{Calibration, LocalTokenizer};
    use std::collections::HashSet;
    use std::path::{Path, PathBuf};

    fn words_only(api: Api) -> Lengths {
        Lengths::words_only(api)
    }

    fn random(range_ratio: f64, input_len: u32) -> RandomSource {
        RandomSource {
            input_len,
            output_len: 20,
            range_ratio,
            seed: 1,
            lengths: words_only(Api::Completions),
        }
    }

    #[test]
    fn request_n_is_the_same_whatever_order_requests_are_made_in() {
        let s = random(0.5, 100);
        let forward: Vec<Arc<str>> = (0..200).map(|n| s.prompt(n).json).collect();
        let backward: Vec<Arc<str>> = (0..200).rev().map(|n| s.prompt(n).json).collect();
        assert!(forward.iter().eq(backward.iter().rev()));
        assert!((0..200).all(|n| {
            let p = s.prompt(n);
            (50..=150).contains(&p.expected_input_tokens.unwrap())
                && (10..=30).contains(&p.max_tokens)
        }));
        // Another seed, other prompts.
        let other = RandomSource {
            seed: 2,
            ..random(0.5, 100)
        };
        assert_ne!(other.prompt(0).json, s.prompt(0).json);
        let exact = random(0.0, 37).prompt(3);
        assert_eq!(
            text_of(Api::Completions, &exact.json)
                .split_whitespace()
                .count(),
            37
        );
    }

    #[test]
    fn random_prompts_never_repeat_and_not_even_their_first_block() {
        let s = random(0.0, 64);
        let mut whole = HashSet::new();
        let mut first16 = HashSet::new();
        for n in 0..20_000 {
            let text = text_of(Api::Completions, &s.prompt(n).json);
            let head: Vec<&str> = text.split_whitespace().take(16).collect();
            assert!(whole.insert(text.clone()), "request {n} repeats a prompt");
            // A prefix cache works in blocks of 16 tokens: not even one is shared by accident.
            assert!(
                first16.insert(head.join(" ")),
                "request {n} repeats a first block"
            );
        }
    }

    #[test]
    fn shared_prefixes_repeat_by_design_and_suffixes_do_not() {
        let s = SharedPrefixSource::new((32, 8), 4, 16, 7, words_only(Api::Completions), 16);
        let warm = s.warm();
        let warmed = text_of(Api::Completions, &warm.prompt(0).json);
        let texts: Vec<String> = (0..8)
            .map(|n| text_of(Api::Completions, &s.prompt(n).json))
            .collect();
        let prefix = |t: &str| t.split_whitespace().take(32).collect::<Vec<_>>().join(" ");
        assert_eq!(prefix(&texts[0]), prefix(&texts[4]));
        assert_ne!(prefix(&texts[0]), prefix(&texts[1]));
        assert_ne!(texts[0], texts[4]);
        assert_eq!(s.prompt(3).expected_input_tokens, Some(40));
        // The warm-up shares the prefixes, never a whole measured prompt.
        assert_eq!(prefix(&warmed), prefix(&texts[0]));
        assert_ne!(warmed, texts[0]);
        // Group 0 was sent by the warm-up, groups 1–3 first by requests 1–3: then every
        // request is served its 32-token prefix (in blocks of 16).
        let s = SharedPrefixSource::new((32, 8), 4, 16, 7, words_only(Api::Completions), 16);
        let _ = s.warm().prompt(0);
        let ideal: Vec<_> = (0..6).map(|n| s.prompt(n).ideal_cached_tokens).collect();
        assert_eq!(ideal, [32, 0, 0, 0, 32, 32].map(Some));
    }

    #[test]
    fn a_target_hit_rate_splits_the_prompt_in_whole_blocks() {
        assert_eq!(prefix_split(300, 212, Some(0.5), 16), (256, 256));
        assert_eq!(prefix_split(300, 212, None, 16), (300, 212));
        // Never the whole prompt: the server computes at least its last token.
        assert_eq!(prefix_split(32, 0, Some(1.0), 16), (16, 16));
        assert_eq!(prefix_split(100, 0, Some(0.0), 16), (0, 100));
    }

    /// A word-level tokenizer.json over a few of the prompt words, where every other word is
    /// unknown and splits into characters: lengths are only exact if the tokenizer is used.
    fn tiny_tokenizer(dir: &Path) -> PathBuf {
        let mut vocab = serde_json::Map::new();
        vocab.insert("[UNK]".into(), 0.into());
        vocab.insert("<s>".into(), 1.into());
        for (i, w) in crate::workload::dataset::WORDS
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
        {
            vocab.insert((*w).into(), (i + 2).into());
        }
        let t = serde_json::json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
            "normalizer": null,
            "pre_tokenizer": {"type": "Whitespace"},
            "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"Sequence": {"id": "A", "type_id": 0}}], "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
            "decoder": null,
            "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
        });
        let p = dir.join("tokenizer.json");
        std::fs::write(&p, t.to_string()).unwrap();
        p
    }

    #[test]
    fn a_local_tokenizer_makes_lengths_exact() {
        let d = tempfile::tempdir().unwrap();
        let tok = Arc::new(LocalTokenizer::load(&tiny_tokenizer(d.path())).unwrap());
        assert_eq!(tok.count("time people", false), 2);
        assert_eq!(
            tok.count("time people", true),
            3,
            "BOS from the post-processor"
        );
        for (api, overhead) in [
            (Api::Completions, 0.0),
            (Api::Chat, 9.0),
            (Api::Responses, 9.0),
            (Api::Messages, 9.0),
            (Api::Embeddings, 0.0),
        ] {
            let s = RandomSource {
                input_len: 200,
                output_len: 5,
                range_ratio: 0.3,
                seed: 3,
                lengths: Lengths {
                    // A deliberately poor estimate: the tokenizer must correct it.
                    cal: Calibration {
                        tokens_per_word: 1.7,
                        overhead,
                        calibrated: true,
                    },
                    tokenizer: Some(tok.clone()),
                    api,
                },
            };
            for n in 0..40 {
                let p = s.prompt(n);
                let text = text_of(api, &p.json);
                let counted = match api {
                    Api::Completions | Api::Embeddings | Api::Rerank => tok.count(&text, true),
                    Api::Chat | Api::Responses | Api::Messages => {
                        tok.count(&text, false) + overhead as usize
                    }
                };
                assert_eq!(counted as u32, p.expected_input_tokens.unwrap(), "{api:?}");
            }
        }
        match LocalTokenizer::load(d.path()) {
            Err(e) => assert!(e.to_string().contains("not a tokenizer.json"), "{e}"),
            Ok(_) => panic!("a directory loaded as a tokenizer"),
        }
    }
}
