//! The simulated engine: a step loop with continuous batching, a KV-cache budget with a waiting
//! queue and preemption, a prefix cache and chunked prefill.
//!
//! Each step (one forward pass) takes
//!
//! ```text
//! step = decode_base + decode_per_seq · B + decode_per_ctx_token · C + prefill_per_token · P
//! ```
//!
//! where B is the number of sequences decoding this step, C the sum of their context lengths and
//! P the prompt tokens prefilled this step (at most `max_batched_tokens − B`: chunked prefill).
//! Only prompt tokens not found in the prefix cache are prefilled. At the end of a step every
//! decoding sequence emits one token; a sequence whose prefill finished emits its first token.
//! Admission (FCFS) needs `running < max_num_seqs` and KV room for the whole prompt; when decode
//! growth would overflow the KV budget, the most recently admitted sequence is preempted (its KV
//! freed, requeued at the front, recomputed later). Wall time = simulated time / `speed`.
//!
//! Speculative decoding (`Profile::spec`): each decode step a sequence proposes K draft tokens
//! (free to make, as n-gram drafting is), the target verifies them at the cost of K more
//! sequences in the batch (`decode_per_seq` each), and accepts each in turn with probability
//! α until the first rejection; the sequence emits the accepted ones and one token of its own.
//! The counters of drafts, draft tokens and accepted tokens go to `/metrics` as vLLM's do.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::metrics::SimMetrics;
use super::tokenizer::BlockChain;
use crate::config::SimProfile;

/// Timing and capacity of a simulated GPU + model.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    pub name: &'static str,
    pub max_num_seqs: usize,
    /// KV-cache capacity in tokens.
    pub kv_tokens: u64,
    pub block_size: usize,
    /// Token budget per step (prefill chunks + decodes).
    pub max_batched_tokens: u64,
    pub max_model_len: u32,
    pub decode_base: Duration,
    pub decode_per_seq: Duration,
    /// Per 1 000 context tokens of the decoding batch.
    pub decode_per_kctx: Duration,
    /// Per prompt token prefilled.
    pub prefill_per_token: Duration,
    /// Time from start to healthy (model load).
    pub load_time: Duration,
    /// Mean output length when EOS is not ignored (geometric draw).
    pub mean_output_tokens: u32,
    /// Every request on its own clock, whatever the load: first token after `.0`, then one
    /// token every `.1` (for measuring a client's timing error; no batching model).
    pub fixed: Option<(Duration, Duration)>,
    /// Speculative decoding, when on.
    pub spec: Option<SpecDecode>,
}

/// Speculative decoding in the simulated engine (see the module's header).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpecDecode {
    /// Draft tokens proposed per step (vLLM's `num_speculative_tokens`).
    pub k: u32,
    /// The chance each draft token is accepted, given the ones before it were.
    pub token_acceptance: f64,
    /// Seeds the draws of acceptance.
    pub seed: u64,
}

impl Profile {
    /// True for the zero-delay profile, served without the step loop.
    pub fn is_instant(&self) -> bool {
        self.fixed.is_none()
            && self.decode_base.is_zero()
            && self.decode_per_seq.is_zero()
            && self.prefill_per_token.is_zero()
    }

    /// True when requests are served without the step loop (instant or fixed timing).
    pub fn bypasses_engine(&self) -> bool {
        self.fixed.is_some() || self.is_instant()
    }
}

/// Looks a profile up by name.
pub fn profile(which: SimProfile) -> Profile {
    match which {
        // Llama-3.1-8B bf16 on one H100 SXM: ~20k tok/s prefill, ~7 ms decode steps at low batch.
        SimProfile::H100Llama8b => Profile {
            name: "h100-llama8b",
            max_num_seqs: 256,
            kv_tokens: 450_000,
            block_size: 16,
            max_batched_tokens: 8192,
            max_model_len: 131_072,
            decode_base: Duration::from_micros(6_500),
            decode_per_seq: Duration::from_micros(45),
            decode_per_kctx: Duration::from_micros(12),
            prefill_per_token: Duration::from_nanos(50_000),
            load_time: Duration::from_secs(2),
            mean_output_tokens: 200,
            fixed: None,
            spec: None,
        },
        // Llama-3.1-70B fp8 on A100s (TP): slower steps, smaller KV budget.
        SimProfile::A100Llama70b => Profile {
            name: "a100-llama70b",
            max_num_seqs: 128,
            kv_tokens: 120_000,
            block_size: 16,
            max_batched_tokens: 4096,
            max_model_len: 32_768,
            decode_base: Duration::from_micros(28_000),
            decode_per_seq: Duration::from_micros(160),
            decode_per_kctx: Duration::from_micros(60),
            prefill_per_token: Duration::from_nanos(330_000),
            load_time: Duration::from_secs(3),
            mean_output_tokens: 200,
            fixed: None,
            spec: None,
        },
        // No delays: answers are written as fast as the server can format them.
        SimProfile::Instant => Profile {
            name: "instant",
            max_num_seqs: usize::MAX,
            kv_tokens: u64::MAX / 4,
            block_size: 16,
            max_batched_tokens: u64::MAX / 4,
            max_model_len: 1_048_576,
            decode_base: Duration::ZERO,
            decode_per_seq: Duration::ZERO,
            decode_per_kctx: Duration::ZERO,
            prefill_per_token: Duration::ZERO,
            load_time: Duration::ZERO,
            mean_output_tokens: 128,
            fixed: None,
            spec: None,
        },
        // TTFT 50 ms and ITL 10 ms for every request (divided by `--speed`), on per-request
        // timers: the ground truth for a client's timing error.
        SimProfile::Fixed50ms10ms => Profile {
            fixed: Some((Duration::from_millis(50), Duration::from_millis(10))),
            name: "fixed-50ms-10ms",
            ..profile(SimProfile::Instant)
        },
    }
}

/// Where a sequence's answer goes on in its prompt's block chain: vLLM caches the blocks its
/// answer fills too, so a next turn that re-sends prompt and answer hits them.
#[derive(Clone, Copy, Debug)]
pub struct AnswerChain {
    pub chain: BlockChain,
    pub words_seed: u64,
    /// A chat answer: the next turn re-sends it as an `assistant` message (its role word
    /// first, as `message_words` reads a history).
    pub chat: bool,
}

impl AnswerChain {
    /// The hashes of the blocks the first `tokens` answer tokens fill.
    fn hashes(mut self, tokens: u32) -> Vec<u64> {
        let role = self.chat.then_some("assistant");
        let words = (0..tokens).map(|i| super::tokenizer::answer_word(self.words_seed, i));
        role.into_iter()
            .chain(words)
            .filter_map(|w| self.chain.push(w))
            .collect()
    }
}

/// A request handed to the engine.
pub struct Submit {
    pub prompt_tokens: u32,
    pub block_hashes: Vec<u64>,
    pub answer: AnswerChain,
    /// Tokens to generate; 0 for a pooling request (embeddings, rerank): its prefill is all,
    /// and it finishes (`stop`) when the prefill ends.
    pub output_tokens: u32,
    /// The sequence ends on EOS (finish reason `stop`) rather than its token cap (`length`).
    pub ends_on_eos: bool,
    /// Its `model` is a LoRA adapter.
    pub lora: bool,
    pub arrived: Instant,
    pub events: mpsc::UnboundedSender<Emit>,
}

/// What the engine tells a request's stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Emit {
    /// Token number `index` (0-based) was generated.
    Token { index: u32 },
    /// The sequence finished; `length` when it hit its output cap.
    Done,
}

struct Seq {
    prompt: u32,
    /// Prompt tokens still to prefill (prompt + already generated after a preemption).
    prefill_left: u64,
    generated: u32,
    output_tokens: u32,
    ends_on_eos: bool,
    lora: bool,
    block_hashes: Vec<u64>,
    answer: AnswerChain,
    arrived: Instant,
    admitted: Option<Instant>,
    first_token: Option<Instant>,
    last_token: Option<Instant>,
    tx: mpsc::UnboundedSender<Emit>,
}

impl Seq {
    fn kv(&self) -> u64 {
        self.prompt as u64 + self.generated as u64
    }
}

/// Prefix cache: block hashes, the least recently used evicted first when over capacity (a
/// hit or an insert makes a block the most recent). `order` holds (hash, stamp) in use order;
/// an entry whose stamp is no longer the block's is stale and skipped.
struct PrefixCache {
    order: VecDeque<(u64, u64)>,
    present: HashMap<u64, u64>,
    capacity: usize,
    clock: u64,
}

impl PrefixCache {
    fn new(capacity: usize) -> Self {
        Self {
            order: VecDeque::new(),
            present: HashMap::new(),
            capacity,
            clock: 0,
        }
    }

    /// The prompt's leading blocks in the cache; they become the most recently used.
    fn hit_blocks(&mut self, hashes: &[u64]) -> usize {
        let n = hashes
            .iter()
            .take_while(|h| self.present.contains_key(h))
            .count();
        self.touch(&hashes[..n]);
        n
    }

    fn insert(&mut self, hashes: &[u64]) {
        self.touch(hashes);
        while self.present.len() > self.capacity {
            let Some((old, stamp)) = self.order.pop_front() else {
                break;
            };
            if self.present.get(&old) == Some(&stamp) {
                self.present.remove(&old);
            }
        }
        // Stale entries are dropped once they outnumber the live ones.
        if self.order.len() > 2 * self.present.len() + 1024 {
            let present = &self.present;
            self.order.retain(|(h, st)| present.get(h) == Some(st));
        }
    }

    fn touch(&mut self, hashes: &[u64]) {
        for h in hashes {
            self.clock += 1;
            self.present.insert(*h, self.clock);
            self.order.push_back((*h, self.clock));
        }
    }
}

/// What one engine step did, for `/metrics`.
#[derive(Default)]
struct Step {
    aborted: u64,
    prefix_queries: u64,
    prefix_hits: u64,
    preempted: u64,
    prompt_done: u64,
    generated: u64,
    /// Speculative decoding this step: draft steps, draft tokens, accepted tokens.
    drafts: u64,
    draft_tokens: u64,
    accepted: u64,
    ttft: Vec<f64>,
    itl: Vec<f64>,
    /// (end-to-end s, queue s, ended on EOS) of each sequence that finished.
    finished: Vec<(f64, f64, bool)>,
}

/// The scheduler's state between steps.
struct Engine {
    profile: Profile,
    waiting: VecDeque<Seq>,
    running: Vec<Seq>,
    cache: PrefixCache,
    /// Draws whether draft tokens are accepted (speculative decoding).
    rng: rand_chacha::ChaCha8Rng,
}

/// Runs the step loop until every sender of `rx` is gone.
/// `flushes` moves when the server is asked to empty the prefix cache (it is emptied before
/// the next step).
pub async fn run(
    profile: Profile,
    (speed, lora_slowdown): (f64, f64),
    mut rx: mpsc::UnboundedReceiver<Submit>,
    metrics: Arc<Mutex<SimMetrics>>,
    flushes: Arc<std::sync::atomic::AtomicU64>,
) {
    let mut flushed = 0;
    let mut e = Engine {
        waiting: VecDeque::new(),
        running: Vec::new(),
        cache: PrefixCache::new(
            (profile.kv_tokens / profile.block_size as u64).min(1 << 22) as usize
        ),
        rng: rand::SeedableRng::seed_from_u64(profile.spec.map_or(0, |s| s.seed)),
        profile,
    };
    loop {
        // Take new arrivals; sleep until one comes when idle.
        if e.running.is_empty() && e.waiting.is_empty() {
            match rx.recv().await {
                Some(s) => e.waiting.push_back(new_seq(s)),
                None => return,
            }
        }
        while let Ok(s) = rx.try_recv() {
            e.waiting.push_back(new_seq(s));
        }
        let asked = flushes.load(std::sync::atomic::Ordering::Relaxed);
        if asked != flushed {
            flushed = asked;
            e.cache = PrefixCache::new(e.cache.capacity);
        }
        let mut step = Step {
            aborted: e.drop_gone(),
            ..Step::default()
        };
        let mut kv_used = e.admit(&mut step);
        e.preempt(&mut kv_used, &mut step);
        // A step holding any LoRA adapter's sequence runs its adapter kernels too.
        let lora = e.running.iter().any(|s| s.lora);
        let step_speed = match lora {
            true => speed / (1.0 + lora_slowdown),
            false => speed,
        };
        let (decoding, finishing_prefill, wall) = e.plan(step_speed);
        if !wall.is_zero() {
            tokio::time::sleep(wall).await;
        } else {
            tokio::task::yield_now().await;
        }
        e.emit(&decoding, &finishing_prefill, &mut step);
        e.publish(&metrics, step);
    }
}

impl Engine {
    /// Drops the streams whose client went away; returns how many.
    fn drop_gone(&mut self) -> u64 {
        let before = self.running.len() + self.waiting.len();
        self.running.retain(|s| !s.tx.is_closed());
        self.waiting.retain(|s| !s.tx.is_closed());
        (before - self.running.len() - self.waiting.len()) as u64
    }

    /// Admits FCFS while there is a slot and KV room for the whole prompt (a new sequence's
    /// cached prefix is not prefilled again); returns the KV tokens in use.
    fn admit(&mut self, step: &mut Step) -> u64 {
        let block = self.profile.block_size as u64;
        let mut kv_used: u64 = self.running.iter().map(Seq::kv).sum();
        let now = Instant::now();
        while self.running.len() < self.profile.max_num_seqs {
            let Some(front) = self.waiting.front() else {
                break;
            };
            if kv_used + front.kv() + 1 > self.profile.kv_tokens && !self.running.is_empty() {
                break;
            }
            let Some(mut s) = self.waiting.pop_front() else {
                break;
            };
            if s.generated == 0 && s.admitted.is_none() {
                // As vLLM: at least the last token is computed, and hits are whole blocks.
                let most = s.prompt.saturating_sub(1) as u64 / block;
                let hit = (self.cache.hit_blocks(&s.block_hashes) as u64).min(most) * block;
                step.prefix_queries += s.prompt as u64;
                step.prefix_hits += hit;
                s.prefill_left = s.prompt as u64 - hit;
                s.admitted = Some(now);
            }
            kv_used += s.kv();
            self.running.push(s);
        }
        kv_used
    }

    /// Preempts the newest sequences while decode growth would overflow the KV budget (they
    /// wait at the front, to prefill again).
    fn preempt(&mut self, kv_used: &mut u64, step: &mut Step) {
        while self.running.len() > 1
            && *kv_used + self.running.len() as u64 > self.profile.kv_tokens
        {
            let Some(mut s) = self.running.pop() else {
                break;
            };
            *kv_used -= s.kv();
            s.prefill_left = s.kv();
            self.waiting.push_front(s);
            step.preempted += 1;
        }
    }

    /// Plans the step: decodes first, then prefill chunks within the token budget. Returns
    /// the decoding sequences, those whose prefill ends in this step, and the step's wall time.
    fn plan(&mut self, speed: f64) -> (Vec<usize>, Vec<usize>, Duration) {
        let p = &self.profile;
        let decoding: Vec<usize> = (0..self.running.len())
            .filter(|i| self.running[*i].prefill_left == 0)
            .collect();
        let mut budget = p.max_batched_tokens.saturating_sub(decoding.len() as u64);
        let mut prefilled = 0u64;
        let mut finishing_prefill = Vec::new();
        for (i, s) in self.running.iter_mut().enumerate() {
            if s.prefill_left == 0 || budget == 0 {
                continue;
            }
            let chunk = s.prefill_left.min(budget);
            s.prefill_left -= chunk;
            budget -= chunk;
            prefilled += chunk;
            if s.prefill_left == 0 {
                finishing_prefill.push(i);
            }
        }
        let ctx: u64 = decoding.iter().map(|i| self.running[*i].kv()).sum();
        // Verifying K drafts costs as much as K more sequences in the batch.
        let verified = 1 + p.spec.map_or(0, |s| s.k);
        let step = p.decode_base
            + p.decode_per_seq * (decoding.len() as u32 * verified)
            + p.decode_per_kctx.mul_f64(ctx as f64 / 1000.0)
            + p.prefill_per_token.mul_f64(prefilled as f64);
        (decoding, finishing_prefill, step.div_f64(speed))
    }

    /// Emits one token per decoding sequence and a first token per finished prefill, then
    /// ends the sequences that have their whole answer.
    fn emit(&mut self, decoding: &[usize], finishing_prefill: &[usize], step: &mut Step) {
        let t = Instant::now();
        for i in decoding.iter().chain(finishing_prefill.iter()) {
            let s = &mut self.running[*i];
            if s.output_tokens == 0 && s.first_token.is_none() {
                // A pooling request: its prompt went through the model; nothing is generated.
                s.first_token = Some(t);
                step.prompt_done += s.prompt as u64;
                self.cache.insert(&s.block_hashes);
                continue;
            }
            if s.generated >= s.output_tokens {
                continue;
            }
            // A decoding sequence's step yields its accepted drafts and one token of its own.
            let mut tokens = 1;
            if s.first_token.is_none() {
                step.ttft.push((t - s.arrived).as_secs_f64());
                s.first_token = Some(t);
                step.prompt_done += s.prompt as u64;
                self.cache.insert(&s.block_hashes);
            } else {
                if let Some(last) = s.last_token {
                    step.itl.push((t - last).as_secs_f64());
                }
                if let Some(spec) = self.profile.spec {
                    let room = s.output_tokens - s.generated - 1;
                    let accepted = draw_accepted(&mut self.rng, spec).min(room);
                    step.drafts += 1;
                    step.draft_tokens += u64::from(spec.k);
                    step.accepted += u64::from(accepted);
                    tokens += accepted;
                }
            }
            s.last_token = Some(t);
            for _ in 0..tokens {
                let _ = s.tx.send(Emit::Token { index: s.generated });
                s.generated += 1;
            }
            step.generated += u64::from(tokens);
        }
        let mut answered = Vec::new();
        self.running.retain(|s| {
            if s.generated >= s.output_tokens && s.prefill_left == 0 {
                let _ = s.tx.send(Emit::Done);
                // All but the last token went through the model: their full blocks are cached.
                answered.push((s.answer, s.generated.saturating_sub(1)));
                let queued = s.admitted.map(|a| (a - s.arrived).as_secs_f64());
                step.finished.push((
                    (t - s.arrived).as_secs_f64(),
                    queued.unwrap_or(0.0),
                    s.ends_on_eos,
                ));
                false
            } else {
                true
            }
        });
        for (answer, tokens) in answered {
            self.cache.insert(&answer.hashes(tokens));
        }
    }

    /// Adds the step to the server's `/metrics`.
    fn publish(&self, metrics: &Mutex<SimMetrics>, step: Step) {
        let kv_now: u64 = self.running.iter().map(Seq::kv).sum();
        let Ok(mut m) = metrics.lock() else {
            return;
        };
        m.running = self.running.len() as u64;
        m.waiting = self.waiting.len() as u64;
        m.kv_used_tokens = kv_now;
        m.kv_usage = (kv_now as f64 / self.profile.kv_tokens as f64).min(1.0);
        m.prompt_tokens += step.prompt_done;
        m.generation_tokens += step.generated;
        m.prefix_queries += step.prefix_queries;
        m.prefix_hits += step.prefix_hits;
        m.preemptions += step.preempted;
        m.spec_drafts += step.drafts;
        m.spec_draft_tokens += step.draft_tokens;
        m.spec_accepted += step.accepted;
        m.finished_abort += step.aborted;
        m.requests_total += step.finished.len() as u64;
        for v in step.ttft {
            m.ttft.observe(v);
        }
        for v in step.itl {
            m.itl.observe(v);
        }
        for (e2e, q, eos) in step.finished {
            if eos {
                m.finished_stop += 1;
            } else {
                m.finished_length += 1;
            }
            m.e2e.observe(e2e);
            m.queue.observe(q);
        }
    }
}

/// How many of K draft tokens the target accepts: each in turn with probability α, up to the
/// first rejection.
fn draw_accepted(rng: &mut impl rand::Rng, spec: SpecDecode) -> u32 {
    (0..spec.k)
        .take_while(|_| rng.random::<f64>() < spec.token_acceptance)
        .count() as u32
}

fn new_seq(s: Submit) -> Seq {
    Seq {
        prompt: s.prompt_tokens,
        prefill_left: s.prompt_tokens as u64,
        generated: 0,
        output_tokens: s.output_tokens,
        ends_on_eos: s.ends_on_eos,
        lora: s.lora,
        block_hashes: s.block_hashes,
        answer: s.answer,
        arrived: s.arrived,
        admitted: None,
        first_token: None,
        last_token: None,
        tx: s.events,
    }
}
