//! Runs a workload: N worker threads, each a current-thread tokio runtime with its share of the
//! connections (opened and warmed before the timed window at a bounded dial rate), all sending
//! their records on one channel. One loop serves every pattern: closed loop (sequential,
//! concurrent) or open loop (a precomputed schedule paced with `sleep_until` on an absolute
//! timeline, optionally capped in flight).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::dataset::Prompt;
use crate::client::{self, Conn, Endpoint};
use crate::config::{Api, OnDeadline};
use crate::metrics::event::{Event, RequestRecord};

/// Closed or open loop.
#[derive(Clone, Debug)]
pub enum Arrivals {
    /// `concurrency` requests in flight at all times.
    Closed { concurrency: u32 },
    /// Request *i* leaves at `t0 + offsets[i]`, at most `max_in_flight` at once.
    Open {
        offsets: Arc<Vec<Duration>>,
        max_in_flight: Option<u32>,
    },
}

/// Everything the executor needs; no config types beyond plain values.
#[derive(Clone)]
pub struct Plan {
    pub endpoint: Endpoint,
    pub model: String,
    pub api: Api,
    pub prompts: Arc<Vec<Prompt>>,
    /// Requests sent on the measured window's own connections before it starts, never
    /// recorded; they use the first prompts, measured requests the ones after.
    pub warmup: u64,
    pub ignore_eos: bool,
    pub request_timeout: Duration,
    /// The largest single SSE event read (`workload.max_event_bytes`).
    pub max_event_bytes: usize,
    pub arrivals: Arrivals,
    /// Stop after this many requests.
    pub count: Option<u64>,
    /// Stop sending after this long.
    pub duration: Option<Duration>,
    pub on_deadline: OnDeadline,
    pub workers: usize,
    /// Measured requests sent so far (in flight = sent − finished), for the live view.
    pub sent: Arc<AtomicU64>,
}

/// Runs the plan on worker threads, blocking until every worker is done.
/// `stop` (Ctrl-C, `q`, a stop rule) ends sending; requests in flight finish.
pub fn run(plan: Plan, stop: CancellationToken, tx: UnboundedSender<Event>) -> Instant {
    let workers = plan.workers.max(1);
    let next = Arc::new(AtomicU64::new(0));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<(Vec<Duration>, Vec<String>)>();
    let mut t0_senders = Vec::new();
    let mut handles = Vec::new();
    for w in 0..workers {
        let (t0_tx, t0_rx) = std::sync::mpsc::channel::<Instant>();
        t0_senders.push(t0_tx);
        let plan = plan.clone();
        let stop = stop.clone();
        let tx = tx.clone();
        let next = next.clone();
        let ready_tx = ready_tx.clone();
        handles.push(
            std::thread::Builder::new()
                .name(format!("client-{w}"))
                .spawn(move || {
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            let _ = ready_tx.send((
                                vec![],
                                vec![format!("worker {w}: cannot start a runtime: {e}")],
                            ));
                            return;
                        }
                    };
                    worker(rt, w, workers, plan, stop, tx, next, ready_tx, t0_rx);
                }),
        );
    }
    drop(ready_tx);
    let mut connect_times = Vec::new();
    let mut connect_errors = Vec::new();
    for _ in 0..workers {
        if let Ok((t, e)) = ready_rx.recv() {
            connect_times.extend(t);
            connect_errors.extend(e);
        }
    }
    let t0 = Instant::now() + Duration::from_millis(5);
    let _ = tx.send(Event::Started {
        t0,
        connect_times,
        connect_errors,
    });
    for s in t0_senders {
        let _ = s.send(t0);
    }
    for h in handles.into_iter().flatten() {
        let _ = h.join();
    }
    t0
}

/// Sends warm-up requests on `conns` until `plan.warmup` have been taken (by all workers,
/// through `next`); returns the connections still usable.
async fn warm_up(
    plan: &Plan,
    conns: Vec<Conn>,
    next: &AtomicU64,
    stop: &CancellationToken,
) -> Vec<Conn> {
    if plan.warmup == 0 {
        return conns;
    }
    let slots = conns.into_iter().map(|c| async move {
        let mut conn = Some(c);
        let t0 = Instant::now();
        while !stop.is_cancelled() {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= plan.warmup {
                break;
            }
            one(plan, &mut conn, i, i as usize, None, None, t0).await;
        }
        conn
    });
    futures_util::future::join_all(slots)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Waits until `at` to within microseconds. tokio's timer wheel has 1 ms resolution and fires
/// up to 1 ms late (measured: pacer lag p50 1.04 ms, p99 1.99 ms at 1 000 req/s), so it sleeps
/// to 1 ms before `at`, then yields to the runtime's other tasks until `at` passes.
async fn pace_until(at: tokio::time::Instant) {
    const COARSE: Duration = Duration::from_millis(1);
    if let Some(early) = at.checked_sub(COARSE) {
        if tokio::time::Instant::now() < early {
            tokio::time::sleep_until(early).await;
        }
    }
    while tokio::time::Instant::now() < at {
        tokio::task::yield_now().await;
    }
}

/// Slots (connections) this worker owns out of `total`.
fn share(total: u32, w: usize, workers: usize) -> u32 {
    let (q, r) = (total / workers as u32, total % workers as u32);
    q + u32::from((w as u32) < r)
}

#[allow(clippy::too_many_arguments)]
fn worker(
    rt: tokio::runtime::Runtime,
    w: usize,
    workers: usize,
    plan: Plan,
    stop: CancellationToken,
    tx: UnboundedSender<Event>,
    next: Arc<AtomicU64>,
    ready: std::sync::mpsc::Sender<(Vec<Duration>, Vec<String>)>,
    t0_rx: std::sync::mpsc::Receiver<Instant>,
) {
    let slots = match &plan.arrivals {
        Arrivals::Closed { concurrency } => share(*concurrency, w, workers),
        Arrivals::Open { max_in_flight, .. } => {
            share(max_in_flight.unwrap_or(32).min(256), w, workers)
        }
    };
    // Warm the connections before the window, at most 16 dials at once: a burst of dials
    // overflows the server's accept queue and costs 1 s SYN retransmits.
    let (conns, times, errors) = rt.block_on(async {
        let ep = &plan.endpoint;
        let mut conns = Vec::new();
        let mut times = Vec::new();
        let mut errors = Vec::new();
        let mut pending = futures_util::stream::FuturesUnordered::new();
        let mut started = 0;
        use futures_util::StreamExt;
        while started < slots || !pending.is_empty() {
            while started < slots && pending.len() < 16 {
                pending.push(client::connect(ep));
                started += 1;
            }
            match pending.next().await {
                Some(Ok(c)) => {
                    times.push(c.connect_time);
                    conns.push(c);
                }
                Some(Err(e)) => errors.push(e.message),
                None => break,
            }
        }
        (conns, times, errors)
    });
    // Warm-up on these very connections, so the first measured request on each is not the
    // first the server (and this client) handle on it.
    let warm_next = AtomicU64::new(0);
    let conns = rt.block_on(warm_up(&plan, conns, &warm_next, &stop));
    let _ = ready.send((times, errors));
    let Ok(t0) = t0_rx.recv() else { return };
    rt.block_on(async move {
        let t0_tokio = tokio::time::Instant::from_std(t0);
        tokio::time::sleep_until(t0_tokio).await;
        let deadline = plan.duration.map(|d| t0_tokio + d);
        let abort_at = match plan.on_deadline {
            OnDeadline::Abort => deadline,
            OnDeadline::Wait => None,
        };
        let plan = Arc::new(plan);
        match plan.arrivals.clone() {
            Arrivals::Closed { .. } => {
                let mut tasks = tokio::task::JoinSet::new();
                for conn in conns {
                    let (plan, stop, tx, next) =
                        (plan.clone(), stop.clone(), tx.clone(), next.clone());
                    tasks.spawn(async move {
                        let mut conn = Some(conn);
                        loop {
                            if stop.is_cancelled()
                                || deadline.is_some_and(|d| tokio::time::Instant::now() >= d)
                            {
                                break;
                            }
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if plan.count.is_some_and(|c| i >= c) {
                                break;
                            }
                            plan.sent.fetch_add(1, Ordering::Relaxed);
                            let rec = one(
                                &plan,
                                &mut conn,
                                i,
                                measured_prompt(&plan, i),
                                None,
                                abort_at,
                                t0,
                            )
                            .await;
                            if tx.send(Event::Request(Box::new(rec))).is_err() {
                                break;
                            }
                        }
                    });
                }
                while tasks.join_next().await.is_some() {}
            }
            Arrivals::Open {
                offsets,
                max_in_flight,
            } => {
                let pool = Arc::new(Mutex::new(conns));
                let cap = max_in_flight.map(|m| {
                    Arc::new(tokio::sync::Semaphore::new(
                        share(m, w, workers).max(1) as usize
                    ))
                });
                let mut tasks = tokio::task::JoinSet::new();
                let mut i = w as u64;
                while let Some(offset) = offsets.get(i as usize).copied() {
                    if plan.count.is_some_and(|c| i >= c) {
                        break;
                    }
                    pace_until(t0_tokio + offset).await;
                    if stop.is_cancelled()
                        || deadline.is_some_and(|d| tokio::time::Instant::now() >= d)
                    {
                        break;
                    }
                    let permit = match &cap {
                        Some(s) => s.clone().acquire_owned().await.ok(),
                        None => None,
                    };
                    plan.sent.fetch_add(1, Ordering::Relaxed);
                    let (plan, tx, pool) = (plan.clone(), tx.clone(), pool.clone());
                    tasks.spawn(async move {
                        let mut conn = pool.lock().ok().and_then(|mut p| p.pop());
                        let rec = one(
                            &plan,
                            &mut conn,
                            i,
                            measured_prompt(&plan, i),
                            Some(offset),
                            abort_at,
                            t0,
                        )
                        .await;
                        if let (Some(c), Ok(mut p)) = (conn, pool.lock()) {
                            p.push(c);
                        }
                        drop(permit);
                        let _ = tx.send(Event::Request(Box::new(rec)));
                    });
                    // Reap finished tasks so the set does not grow with the run.
                    while tasks.try_join_next().is_some() {}
                    i += workers as u64;
                }
                while tasks.join_next().await.is_some() {}
            }
        }
    });
}

/// The prompt of measured request `i`: the ones after the warm-up's.
fn measured_prompt(plan: &Plan, i: u64) -> usize {
    (plan.warmup + i) as usize
}

/// Sends request `i` on `conn`, reconnecting when it is gone; a failed request leaves `conn`
/// empty, since the connection's state is unknown after a failure.
async fn one(
    plan: &Plan,
    conn: &mut Option<Conn>,
    i: u64,
    prompt: usize,
    scheduled: Option<Duration>,
    abort_at: Option<tokio::time::Instant>,
    t0: Instant,
) -> RequestRecord {
    let idx = prompt % plan.prompts.len().max(1);
    let prompt = &plan.prompts[idx];
    // (`client::send` itself re-dials a kept connection the server closed meanwhile.)
    let connected = match conn.take() {
        Some(c) => Ok(c),
        None => client::connect(&plan.endpoint).await,
    };
    let mut rec = match connected {
        Ok(mut c) => {
            let body = client::request_body(
                plan.api,
                &plan.model,
                &prompt.json,
                prompt.max_tokens,
                plan.ignore_eos,
            );
            let bounds = client::Bounds {
                timeout: plan.request_timeout,
                deadline: abort_at,
                max_tokens: prompt.max_tokens,
                max_event_bytes: plan.max_event_bytes,
            };
            let r = client::send(&mut c, &plan.endpoint, body, &bounds, t0).await;
            if r.ok() {
                *conn = Some(c);
            }
            r
        }
        Err(e) => client::failed_record(e, t0),
    };
    rec.id = i;
    rec.scheduled_ms = scheduled.map(|s| s.as_secs_f64() * 1e3);
    rec.input_tokens = rec.input_tokens.or(prompt.expected_input_tokens);
    rec
}

#[cfg(test)]
mod tests {
    use super::share;

    #[test]
    fn shares_add_up() {
        for total in [1, 7, 64, 255] {
            for workers in [1, 2, 3, 8] {
                assert_eq!(
                    (0..workers).map(|w| share(total, w, workers)).sum::<u32>(),
                    total
                );
            }
        }
    }
}
