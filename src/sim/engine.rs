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

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::metrics::SimMetrics;
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

/// A request handed to the engine.
pub struct Submit {
    pub prompt_tokens: u32,
    pub block_hashes: Vec<u64>,
    pub output_tokens: u32,
    /// The sequence ends on EOS (finish reason `stop`) rather than its token cap (`length`).
    pub ends_on_eos: bool,
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
    block_hashes: Vec<u64>,
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

/// Prefix cache: block hashes, evicted oldest first when over capacity.
struct PrefixCache {
    order: VecDeque<u64>,
    present: HashMap<u64, ()>,
    capacity: usize,
}

impl PrefixCache {
    fn hit_blocks(&self, hashes: &[u64]) -> usize {
        hashes
            .iter()
            .take_while(|h| self.present.contains_key(h))
            .count()
    }
    fn insert(&mut self, hashes: &[u64]) {
        for h in hashes {
            if self.present.insert(*h, ()).is_none() {
                self.order.push_back(*h);
            }
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.present.remove(&old);
            }
        }
    }
}

/// Runs the step loop until every sender of `rx` is gone.
pub async fn run(
    profile: Profile,
    speed: f64,
    mut rx: mpsc::UnboundedReceiver<Submit>,
    metrics: Arc<Mutex<SimMetrics>>,
) {
    let mut waiting: VecDeque<Seq> = VecDeque::new();
    let mut running: Vec<Seq> = Vec::new();
    let mut cache = PrefixCache {
        order: VecDeque::new(),
        present: HashMap::new(),
        capacity: (profile.kv_tokens / profile.block_size as u64).min(1 << 22) as usize,
    };
    let block = profile.block_size as u64;
    loop {
        // Take new arrivals; sleep until one comes when idle.
        if running.is_empty() && waiting.is_empty() {
            match rx.recv().await {
                Some(s) => waiting.push_back(new_seq(s)),
                None => return,
            }
        }
        while let Ok(s) = rx.try_recv() {
            waiting.push_back(new_seq(s));
        }
        // Drop streams whose client went away.
        let before = running.len() + waiting.len();
        running.retain(|s| !s.tx.is_closed());
        waiting.retain(|s| !s.tx.is_closed());
        let aborted = before - running.len() - waiting.len();

        // Admit FCFS while there is a slot and KV room for the whole prompt.
        let mut kv_used: u64 = running.iter().map(Seq::kv).sum();
        let mut new_prefix_queries = 0u64;
        let mut new_prefix_hits = 0u64;
        let now = Instant::now();
        while running.len() < profile.max_num_seqs {
            let Some(front) = waiting.front() else { break };
            if kv_used + front.kv() + 1 > profile.kv_tokens && !running.is_empty() {
                break;
            }
            let Some(mut s) = waiting.pop_front() else {
                break;
            };
            if s.generated == 0 && s.admitted.is_none() {
                let hit = (cache.hit_blocks(&s.block_hashes) as u64 * block)
                    .min(s.prompt.saturating_sub(1) as u64);
                new_prefix_queries += s.prompt as u64;
                new_prefix_hits += hit;
                s.prefill_left = s.prompt as u64 - hit;
                s.admitted = Some(now);
            }
            kv_used += s.kv();
            running.push(s);
        }

        // Preempt the newest sequences while decode growth would overflow the KV budget.
        let mut preempted = 0;
        while running.len() > 1 && kv_used + running.len() as u64 > profile.kv_tokens {
            let Some(mut s) = running.pop() else { break };
            kv_used -= s.kv();
            s.prefill_left = s.kv();
            waiting.push_front(s);
            preempted += 1;
        }

        // Plan the step: decodes first, then prefill chunks within the token budget.
        let decoding: Vec<usize> = (0..running.len())
            .filter(|i| running[*i].prefill_left == 0)
            .collect();
        let mut budget = profile
            .max_batched_tokens
            .saturating_sub(decoding.len() as u64);
        let mut prefilled = 0u64;
        let mut finishing_prefill = Vec::new();
        for (i, s) in running.iter_mut().enumerate() {
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
        let ctx: u64 = decoding.iter().map(|i| running[*i].kv()).sum();
        let step = profile.decode_base
            + profile.decode_per_seq * decoding.len() as u32
            + profile.decode_per_kctx.mul_f64(ctx as f64 / 1000.0)
            + profile.prefill_per_token.mul_f64(prefilled as f64);
        let wall = step.div_f64(speed);
        if !wall.is_zero() {
            tokio::time::sleep(wall).await;
        } else {
            tokio::task::yield_now().await;
        }

        // Emit one token per decoding sequence and a first token per finished prefill.
        let t = Instant::now();
        let mut m_ttft = Vec::new();
        let mut m_itl = Vec::new();
        let mut generated = 0u64;
        let mut prompt_done = 0u64;
        for i in decoding.iter().chain(finishing_prefill.iter()) {
            let s = &mut running[*i];
            if s.generated >= s.output_tokens {
                continue;
            }
            if s.first_token.is_none() {
                m_ttft.push((t - s.arrived).as_secs_f64());
                s.first_token = Some(t);
                prompt_done += s.prompt as u64;
                cache.insert(&s.block_hashes);
            } else if let Some(last) = s.last_token {
                m_itl.push((t - last).as_secs_f64());
            }
            s.last_token = Some(t);
            let _ = s.tx.send(Emit::Token { index: s.generated });
            s.generated += 1;
            generated += 1;
        }
        let mut finished = Vec::new();
        running.retain(|s| {
            if s.generated >= s.output_tokens && s.prefill_left == 0 {
                let _ = s.tx.send(Emit::Done);
                finished.push((
                    (t - s.arrived).as_secs_f64(),
                    s.admitted
                        .map(|a| (a - s.arrived).as_secs_f64())
                        .unwrap_or(0.0),
                    s.ends_on_eos,
                ));
                false
            } else {
                true
            }
        });

        let kv_now: u64 = running.iter().map(Seq::kv).sum();
        if let Ok(mut m) = metrics.lock() {
            m.running = running.len() as u64;
            m.waiting = waiting.len() as u64;
            m.kv_used_tokens = kv_now;
            m.kv_usage = (kv_now as f64 / profile.kv_tokens as f64).min(1.0);
            m.prompt_tokens += prompt_done;
            m.generation_tokens += generated;
            m.prefix_queries += new_prefix_queries;
            m.prefix_hits += new_prefix_hits;
            m.preemptions += preempted;
            m.finished_abort += aborted as u64;
            m.requests_total += finished.len() as u64;
            for v in m_ttft {
                m.ttft.observe(v);
            }
            for v in m_itl {
                m.itl.observe(v);
            }
            for (e2e, q, eos) in finished {
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
}

fn new_seq(s: Submit) -> Seq {
    Seq {
        prompt: s.prompt_tokens,
        prefill_left: s.prompt_tokens as u64,
        generated: 0,
        output_tokens: s.output_tokens.max(1),
        ends_on_eos: s.ends_on_eos,
        block_hashes: s.block_hashes,
        arrived: s.arrived,
        admitted: None,
        first_token: None,
        last_token: None,
        tx: s.events,
    }
}
