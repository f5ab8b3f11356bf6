//! What a slot of the executor sends with: the plan every slot shares, the bounds of a unit of
//! work, and one request on a slot's connection. The executor's loops (`executor.rs`) and an
//! agent session's players (`agentic_play.rs`) both send through [`one`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::dataset::{Prompt, Source};
use super::source::Feed;
use super::Schedule;
use crate::client::{self, Conn, Endpoint};
use crate::config::{Api, OnDeadline, Routing};
use crate::metrics::event::RequestRecord;

/// Closed or open loop.
#[derive(Clone, Debug)]
pub enum Arrivals {
    /// `concurrency` requests (or sessions) in flight; slot *k* opens at `starts[k]` (all at
    /// 0 without a ramp).
    Closed {
        concurrency: u32,
        starts: Arc<Vec<Duration>>,
    },
    /// Unit *i* leaves at `t0 + schedule[i]`, at most `max_in_flight` at once.
    Open {
        schedule: Schedule,
        max_in_flight: Option<u32>,
    },
}

/// Everything the executor needs; no config types beyond plain values.
#[derive(Clone)]
pub struct Plan {
    /// The servers (one, or the replicas `router` spreads requests over).
    pub endpoints: Arc<[Endpoint]>,
    pub router: Arc<Router>,
    pub model: String,
    pub api: Api,
    /// What the measured window sends.
    pub feed: Feed,
    /// Requests sent on the measured window's own connections before it starts, never
    /// recorded, with prompts from `warm` (never a measured prompt).
    pub warmup: u64,
    pub warm: Arc<dyn Source>,
    pub ignore_eos: bool,
    pub request_timeout: Duration,
    /// The largest single SSE event read (`workload.max_event_bytes`).
    pub max_event_bytes: usize,
    pub arrivals: Arrivals,
    /// Stop after this many requests.
    pub count: Option<u64>,
    /// Start no more than this many sessions (conversations).
    pub sessions: Option<u64>,
    /// Stop sending after this long.
    pub duration: Option<Duration>,
    pub on_deadline: OnDeadline,
    pub workers: usize,
    /// Measured requests sent so far (in flight = sent − finished), for the live view; with
    /// sessions, also the id of the next turn.
    pub sent: Arc<AtomicU64>,
    /// Cancelled when requests in flight are to be abandoned now (a saturated server): each
    /// ends as `aborted` and its connection is closed, which makes the server drop it.
    pub abort: CancellationToken,
    /// Measured requests in flight now, and the most there were at once.
    pub in_flight: Arc<InFlight>,
    /// `model.adapters`: each unit's LoRA adapter (its name is the request's `model`).
    pub adapters: Option<Arc<super::adapters::AdapterMix>>,
}

impl Plan {
    /// The first server (warmed connections are dialled to each).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoints[0]
    }

    /// The id of the next request of a session (a turn, an agent's call), or `None` when the
    /// workload's request count is used up.
    pub fn next_id(&self) -> Option<u64> {
        let id = self.sent.fetch_add(1, Ordering::Relaxed);
        self.count.is_none_or(|c| id < c).then_some(id)
    }

    /// Whether sessions sent the workload's request count.
    pub fn requests_used_up(&self) -> bool {
        self.count
            .is_some_and(|c| self.sent.load(Ordering::Relaxed) >= c)
    }
}

/// Where each request goes among several servers (`workload.routing`).
#[derive(Debug)]
pub struct Router {
    policy: Routing,
    /// The next replica in turn (round-robin; where least-in-flight starts looking).
    turn: AtomicU64,
    /// This run's requests in flight on each replica.
    in_flight: Box<[AtomicU64]>,
}

impl Router {
    pub fn new(policy: Routing, replicas: usize) -> Self {
        Self {
            policy,
            turn: AtomicU64::new(0),
            in_flight: (0..replicas.max(1)).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn replicas(&self) -> usize {
        self.in_flight.len()
    }

    /// The replica for a request of `unit` (a request, or its session), counted in flight
    /// there until [`Router::leave`].
    fn enter(&self, unit: u64) -> usize {
        let n = self.in_flight.len();
        if n == 1 {
            return 0;
        }
        let k = match self.policy {
            Routing::RoundRobin => (self.turn.fetch_add(1, Ordering::Relaxed) % n as u64) as usize,
            Routing::LeastInFlight => {
                let from = (self.turn.fetch_add(1, Ordering::Relaxed) % n as u64) as usize;
                (0..n)
                    .map(|i| (from + i) % n)
                    .min_by_key(|k| self.in_flight[*k].load(Ordering::Relaxed))
                    .unwrap_or(from)
            }
            Routing::SessionSticky => (splitmix(unit) % n as u64) as usize,
        };
        self.in_flight[k].fetch_add(1, Ordering::Relaxed);
        k
    }

    fn leave(&self, k: usize) {
        if self.in_flight.len() > 1 {
            self.in_flight[k].fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// A 64-bit mix (splitmix64's finaliser): a unit's replica under session-sticky routing, the
/// way a consistent-hash router spreads session ids.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A slot's kept connections: one per server (replica), each opened when first needed or
/// warmed before the window. With one server, one connection.
#[derive(Default)]
pub struct Conns(Vec<Option<Conn>>);

impl Conns {
    /// Connections already open, replica `k`'s at index `k`.
    pub fn of(conns: Vec<Option<Conn>>) -> Self {
        Self(conns)
    }

    fn take(&mut self, k: usize) -> Option<Conn> {
        self.0.get_mut(k).and_then(Option::take)
    }

    fn put(&mut self, k: usize, c: Conn) {
        if self.0.len() <= k {
            self.0.resize_with(k + 1, || None);
        }
        self.0[k] = Some(c);
    }
}

/// Requests in flight, and the peak: the concurrency a point really reached.
#[derive(Debug, Default)]
pub struct InFlight {
    now: AtomicU64,
    peak: AtomicU64,
}

impl InFlight {
    pub(super) fn enter(&self) {
        let now = self.now.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    pub(super) fn leave(&self) {
        self.now.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}

/// Where a unit of work stands against the workload's bounds (cloned into each open-loop task).
#[derive(Clone)]
pub(super) struct Bounds {
    pub(super) stop: CancellationToken,
    pub(super) deadline: Option<tokio::time::Instant>,
    pub(super) abort_at: Option<tokio::time::Instant>,
    pub(super) t0: Instant,
}

impl Bounds {
    pub(super) fn over(&self) -> bool {
        self.stop.is_cancelled()
            || self
                .deadline
                .is_some_and(|d| tokio::time::Instant::now() >= d)
    }
}

/// One request to send: its prompt; the unit of work it belongs to (a request's index, or its
/// session's: which LoRA adapter it goes to); when it was due (open loop); whether its
/// answer's text is kept (a conversation's history).
pub(super) struct Call<'a> {
    pub(super) prompt: &'a Prompt,
    pub(super) unit: u64,
    pub(super) scheduled: Option<Duration>,
    pub(super) keep_text: bool,
}

/// Sends a call's prompt to the replica the router picks, on the slot's connection to it,
/// reconnecting when it is gone; a failed request leaves no connection there, since its state
/// is unknown after a failure.
pub(super) async fn one(
    plan: &Plan,
    conns: &mut Conns,
    call: Call<'_>,
    abort_at: Option<tokio::time::Instant>,
    t0: Instant,
) -> RequestRecord {
    let Call {
        prompt,
        unit,
        scheduled,
        keep_text,
    } = call;
    let adapter = plan.adapters.as_ref().map(|m| m.pick(unit));
    let model = match (&plan.adapters, adapter) {
        (Some(m), Some(k)) => m.name(k),
        _ => &plan.model,
    };
    let replica = plan.router.enter(unit);
    let endpoint = &plan.endpoints[replica.min(plan.endpoints.len() - 1)];
    // (`client::send` itself re-dials a kept connection the server closed meanwhile.)
    let connected = match conns.take(replica) {
        Some(c) => Ok(c),
        None => client::connect(endpoint).await,
    };
    let mut rec = match connected {
        Ok(mut c) => {
            let body = client::request_body(
                plan.api,
                model,
                &prompt.json,
                prompt.max_tokens,
                plan.ignore_eos,
            );
            let bounds = client::Bounds {
                timeout: plan.request_timeout,
                deadline: abort_at,
                max_tokens: prompt.max_tokens,
                max_event_bytes: plan.max_event_bytes,
                keep_text,
            };
            let r = tokio::select! {
                biased;
                r = client::send(&mut c, endpoint, body, &bounds, t0) => r,
                _ = plan.abort.cancelled() => client::failed_record(
                    crate::metrics::event::RequestError::new(
                        crate::metrics::event::ErrorKind::Aborted,
                        "aborted in flight: the point was stopped (see its termination_reason)",
                    ),
                    t0,
                ),
            };
            if r.ok() {
                conns.put(replica, c);
            }
            r
        }
        Err(e) => client::failed_record(e, t0),
    };
    plan.router.leave(replica);
    rec.scheduled_ms = scheduled.map(|s| s.as_secs_f64() * 1e3);
    rec.expected_input_tokens = prompt
        .expected_input_tokens
        .filter(|e| rec.input_tokens.is_some_and(|n| n != *e));
    rec.input_tokens = rec.input_tokens.or(prompt.expected_input_tokens);
    rec.ideal_cached_tokens = prompt.ideal_cached_tokens;
    rec.adapter = adapter;
    rec.replica = (plan.router.replicas() > 1).then_some(replica as u16);
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_policy_spreads_as_it_says() {
        let count = |r: &Router, units: &mut dyn Iterator<Item = u64>| {
            let mut n = [0u32; 3];
            for u in units {
                n[r.enter(u)] += 1;
            }
            n
        };
        // Round-robin: each in turn, whatever the unit.
        let rr = Router::new(Routing::RoundRobin, 3);
        assert_eq!(count(&rr, &mut std::iter::repeat_n(7, 9)), [3, 3, 3]);
        // Sticky: one unit, one replica, every time; many units spread over all.
        let sticky = Router::new(Routing::SessionSticky, 3);
        let one = count(&sticky, &mut std::iter::repeat_n(7, 9));
        assert_eq!(one.iter().filter(|n| **n == 9).count(), 1, "{one:?}");
        let many = count(&sticky, &mut (0..3000));
        assert!(many.iter().all(|n| (900..1100).contains(n)), "{many:?}");
        // Least in flight: three requests held go to three replicas; when one ends, the
        // next goes where it was.
        let least = Router::new(Routing::LeastInFlight, 3);
        let (a, b) = (least.enter(0), least.enter(0));
        let c = least.enter(0);
        assert_eq!(
            [a, b, c]
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            3
        );
        least.leave(b);
        assert_eq!(least.enter(0), b);
        // One server: always 0, nothing counted.
        assert_eq!(Router::new(Routing::LeastInFlight, 1).enter(5), 0);
    }
}
