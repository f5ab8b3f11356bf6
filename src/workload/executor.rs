//! Runs a workload: N worker threads, each a current-thread tokio runtime with its share of the
//! connections (opened and warmed before the timed window at a bounded dial rate), all sending
//! their records on one channel. One loop serves every pattern: closed loop (sequential,
//! concurrent) or open loop (a seeded schedule, generated as it is consumed, paced on an
//! absolute timeline, optionally capped in flight). A unit of work is one request, or — for
//! conversations — one session: its turns one after another on the same slot, each re-sending
//! the history with the server's own answers; for agent traces, one agent session
//! (`agentic_play.rs`). What a slot sends with is in `slot.rs`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::dataset::Prompt;
use super::session::{Conversation, TurnIdeal};
use super::slot::{one, Bounds, Call, Conns};
pub use super::slot::{Arrivals, InFlight, Plan, Router};
use super::source::Feed;
use super::Schedule;
use crate::client;
use crate::config::OnDeadline;
use crate::metrics::event::Event;

/// Runs the plan on worker threads, blocking until every worker is done.
/// `stop` (Ctrl-C, `q`, a stop rule) ends sending; requests in flight finish.
pub fn run(plan: Plan, stop: CancellationToken, tx: UnboundedSender<Event>) -> Instant {
    let workers = plan.workers.max(1);
    let next = Arc::new(AtomicU64::new(0));
    // Warm-up requests are numbered across every worker: each is sent once, whoever sends it.
    let warm_next = Arc::new(AtomicU64::new(0));
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
        let warm_next = warm_next.clone();
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
                    let counters = (next, warm_next);
                    worker(rt, w, workers, plan, stop, tx, counters, ready_tx, t0_rx);
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
    conns: Vec<Conns>,
    next: &AtomicU64,
    stop: &CancellationToken,
) -> Vec<Conns> {
    if plan.warmup == 0 {
        return conns;
    }
    let slots = conns.into_iter().map(|mut conn| async move {
        let t0 = Instant::now();
        while !stop.is_cancelled() {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= plan.warmup {
                break;
            }
            let prompt = plan.warm.prompt(i);
            let call = Call {
                prompt: &prompt,
                unit: i,
                scheduled: None,
                keep_text: false,
            };
            one(plan, &mut conn, call, None, t0).await;
        }
        conn
    });
    futures_util::future::join_all(slots).await
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

/// Opens `slots` connections to each server, at most 16 dials at once; a slot is kept when any
/// of its dials succeeded (one that failed is dialled again when it is first needed). With
/// one server, the slots are the connections that opened.
async fn dial(plan: &Plan, slots: u32) -> (Vec<Conns>, Vec<Duration>, Vec<String>) {
    use futures_util::StreamExt;
    let n = plan.endpoints.len();
    let mut by_replica: Vec<Vec<client::Conn>> = (0..n).map(|_| Vec::new()).collect();
    let (mut times, mut errors) = (Vec::new(), Vec::new());
    let mut pending = futures_util::stream::FuturesUnordered::new();
    let dials = (0..slots as usize * n).map(|i| i % n);
    let mut dials = dials.peekable();
    while dials.peek().is_some() || !pending.is_empty() {
        while pending.len() < 16 {
            let Some(k) = dials.next() else { break };
            let ep = &plan.endpoints[k];
            pending.push(async move { (k, client::connect(ep).await) });
        }
        match pending.next().await {
            Some((k, Ok(c))) => {
                times.push(c.connect_time);
                by_replica[k].push(c);
            }
            Some((_, Err(e))) => errors.push(e.message),
            None => break,
        }
    }
    let kept = by_replica.iter().map(Vec::len).max().unwrap_or(0);
    let mut iters: Vec<_> = by_replica.into_iter().map(Vec::into_iter).collect();
    let conns = (0..kept)
        .map(|_| Conns::of(iters.iter_mut().map(Iterator::next).collect()))
        .collect();
    (conns, times, errors)
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
    (next, warm_next): (Arc<AtomicU64>, Arc<AtomicU64>),
    ready: std::sync::mpsc::Sender<(Vec<Duration>, Vec<String>)>,
    t0_rx: std::sync::mpsc::Receiver<Instant>,
) {
    let slots = match &plan.arrivals {
        Arrivals::Closed { concurrency, .. } => share(*concurrency, w, workers),
        Arrivals::Open { max_in_flight, .. } => {
            share(max_in_flight.unwrap_or(32).min(256), w, workers)
        }
    };
    // Warm the connections before the window, at most 16 dials at once: a burst of dials
    // overflows the server's accept queue and costs 1 s SYN retransmits.
    let (conns, times, errors) = rt.block_on(dial(&plan, slots));
    // Warm-up on these very connections, so the first measured request on each is not the
    // first the server (and this client) handle on it.
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
        let bounds = Bounds {
            stop: stop.clone(),
            deadline,
            abort_at,
            t0,
        };
        match plan.arrivals.clone() {
            Arrivals::Closed { starts, .. } => {
                let slots = conns.into_iter().enumerate().map(|(j, conn)| {
                    // This worker's slot j is the run's slot j·workers + w (see `share`).
                    let start = starts.get(j * workers + w).copied().unwrap_or_default();
                    closed_slot(&plan, conn, t0_tokio + start, &next, &bounds, &tx)
                });
                futures_util::future::join_all(slots).await;
            }
            Arrivals::Open {
                schedule,
                max_in_flight,
            } => {
                open_loop(
                    &plan,
                    conns,
                    &schedule,
                    max_in_flight,
                    (w, workers),
                    &bounds,
                    &tx,
                )
                .await
            }
        }
    });
}

/// One closed-loop slot: from `start`, unit after unit until a bound is reached.
async fn closed_slot(
    plan: &Plan,
    mut conn: Conns,
    start: tokio::time::Instant,
    next: &AtomicU64,
    b: &Bounds,
    tx: &UnboundedSender<Event>,
) {
    if start > tokio::time::Instant::now() {
        tokio::select! {
            _ = tokio::time::sleep_until(start) => {}
            _ = b.stop.cancelled() => return,
        }
    }
    while !b.over() {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if !unit(plan, &mut conn, i, None, b, tx).await {
            break;
        }
    }
}

/// The open loop on one worker: every `workers`-th unit of the schedule, from unit `w`.
async fn open_loop(
    plan: &Arc<Plan>,
    conns: Vec<Conns>,
    schedule: &Schedule,
    max_in_flight: Option<u32>,
    (w, workers): (usize, usize),
    b: &Bounds,
    tx: &UnboundedSender<Event>,
) {
    let t0_tokio = tokio::time::Instant::from_std(b.t0);
    let pool = Arc::new(Mutex::new(conns));
    let cap = max_in_flight.map(|m| {
        Arc::new(tokio::sync::Semaphore::new(
            share(m, w, workers).max(1) as usize
        ))
    });
    let mut tasks = tokio::task::JoinSet::new();
    let offsets = schedule.offsets().enumerate().skip(w).step_by(workers);
    for (i, offset) in offsets {
        let i = i as u64;
        if exhausted(plan, i) {
            break;
        }
        // A unit due after the deadline (a trace's next timestamp an hour on) is never
        // waited for, and a stop ends the wait at once.
        // Due past the deadline: the window still lasts to the deadline (its throughput
        // divides by the time asked for), then ends.
        let due = t0_tokio
            .checked_add(offset)
            .filter(|at| b.deadline.is_none_or(|d| *at < d));
        let Some(at) = due else {
            if let Some(d) = b.deadline {
                tokio::select! {
                    _ = b.stop.cancelled() => {}
                    _ = tokio::time::sleep_until(d) => {}
                }
            }
            break;
        };
        tokio::select! {
            biased;
            _ = b.stop.cancelled() => break,
            _ = pace_until(at) => {}
        }
        if b.over() {
            break;
        }
        let permit = match &cap {
            Some(s) => s.clone().acquire_owned().await.ok(),
            None => None,
        };
        let (plan, tx, pool) = (plan.clone(), tx.clone(), pool.clone());
        let bounds = b.clone();
        tasks.spawn(async move {
            let mut conn = pool
                .lock()
                .ok()
                .and_then(|mut p| p.pop())
                .unwrap_or_default();
            unit(&plan, &mut conn, i, Some(offset), &bounds, &tx).await;
            if let Ok(mut p) = pool.lock() {
                p.push(conn);
            }
            drop(permit);
        });
        // Reap finished tasks so the set does not grow with the run.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// Whether unit `i` is past the workload's request or session count.
fn exhausted(plan: &Plan, i: u64) -> bool {
    match plan.feed {
        Feed::Requests(_) => plan.count.is_some_and(|c| i >= c),
        Feed::Sessions(_) | Feed::Agents(_) => {
            plan.sessions.is_some_and(|c| i >= c) || plan.requests_used_up()
        }
    }
}

/// Runs unit `i` (a request, or a whole session) and sends its records; false when the
/// workload's counts are used up (or the collector is gone).
async fn unit(
    plan: &Plan,
    conn: &mut Conns,
    i: u64,
    scheduled: Option<Duration>,
    b: &Bounds,
    tx: &UnboundedSender<Event>,
) -> bool {
    if exhausted(plan, i) {
        return false;
    }
    match &plan.feed {
        Feed::Requests(source) => {
            plan.sent.fetch_add(1, Ordering::Relaxed);
            let prompt = source.prompt(i);
            plan.in_flight.enter();
            let call = Call {
                prompt: &prompt,
                unit: i,
                scheduled,
                keep_text: false,
            };
            let mut rec = one(plan, conn, call, b.abort_at, b.t0).await;
            plan.in_flight.leave();
            rec.id = i;
            tx.send(Event::Request(Box::new(rec))).is_ok()
        }
        Feed::Sessions(sessions) => {
            let conversation = sessions.session(i);
            let ideal = sessions.ideal();
            session(plan, conn, (i, conversation, ideal), scheduled, b, tx).await
        }
        Feed::Agents(agents) => {
            let s = agents.session(i);
            super::agentic_play::play(plan, conn, i, s, scheduled, b, tx).await
        }
    }
}

/// Plays session `n`: each turn re-sends the history so far, with the server's own answers;
/// think time before every turn after the first. A failed turn ends the session (its history
/// is broken); a bound reached ends it between turns. Each turn's ideal prefix-cache hit is
/// counted from the server's token counts once it is answered.
async fn session(
    plan: &Plan,
    conn: &mut Conns,
    (n, c, ideal): (u64, Conversation, &TurnIdeal),
    scheduled: Option<Duration>,
    b: &Bounds,
    tx: &UnboundedSender<Event>,
) -> bool {
    let mut history: Vec<serde_json::Value> = Vec::new();
    // The previous turn's (prompt, answer) tokens, as the server counted them.
    let mut before: Option<(u32, u32)> = None;
    if let Some(system) = c.system {
        history.push(serde_json::json!({"role": "system", "content": system}));
    }
    for (k, turn) in c.turns.into_iter().enumerate() {
        if !turn.think.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(turn.think) => {}
                _ = b.stop.cancelled() => return true,
            }
        }
        if b.over() {
            return true;
        }
        let Some(id) = plan.next_id() else {
            return false;
        };
        history.push(serde_json::json!({"role": "user", "content": turn.user}));
        let prompt = Prompt {
            json: serde_json::to_string(&history).unwrap_or_default().into(),
            max_tokens: turn.max_tokens,
            expected_input_tokens: None,
            ideal_cached_tokens: None,
        };
        let first = (k == 0).then_some(scheduled).flatten();
        plan.in_flight.enter();
        // Every turn of a session goes to its adapter.
        let call = Call {
            prompt: &prompt,
            unit: n,
            scheduled: first,
            keep_text: true,
        };
        let mut rec = one(plan, conn, call, b.abort_at, b.t0).await;
        plan.in_flight.leave();
        (rec.id, rec.session, rec.turn) = (id, Some(n), Some(k as u32));
        rec.ideal_cached_tokens = rec.input_tokens.map(|input| match (k, before) {
            (0, _) => ideal.first(input, c.repeat),
            (_, Some((p, o))) => ideal.later(p, o, input),
            (_, None) => 0,
        });
        before = rec.input_tokens.map(|p| (p, rec.output_tokens));
        let answer = rec.text.take().unwrap_or_default();
        let ok = rec.ok();
        if tx.send(Event::Request(Box::new(rec))).is_err() {
            return false;
        }
        if !ok {
            return true;
        }
        history.push(serde_json::json!({"role": "assistant", "content": answer}));
    }
    true
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
