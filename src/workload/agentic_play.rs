//! Plays one agent session (`workload::agentic`) on a closed-loop slot: the main agent's calls
//! one after another on the slot's connection, each sub-agent on a task and a connection of
//! its own beside it. A call after a joined sub-agent waits for it; the session holds its slot
//! until every agent in it is done, so `concurrency` counts sessions. A failed call ends its
//! agent (what came after it would have waited on its answer); a bound reached ends every agent
//! between calls.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use super::agentic::{AgentSession, Chain, Prompter, Step};
use super::slot::{one, Bounds, Call, Conns, Plan};
use crate::metrics::event::Event;

/// Plays session `n`; false when the workload's request count is used up (or the collector
/// is gone).
pub(super) async fn play(
    plan: &Plan,
    conn: &mut Conns,
    n: u64,
    s: AgentSession,
    scheduled: Option<std::time::Duration>,
    b: &Bounds,
    tx: &UnboundedSender<Event>,
) -> bool {
    let agent = Agent {
        n,
        main: true,
        skip: s.first_call,
        scheduled,
    };
    let more = run_chain(plan, conn, &s.main, &s.prompts, agent, b, tx).await;
    more && !plan.requests_used_up()
}

/// Which agent of session `n` a chain is.
#[derive(Clone, Copy)]
struct Agent {
    n: u64,
    /// The session's main agent (its calls are the session's turns).
    main: bool,
    /// Main-agent calls to leave out at the start (the session's drawn start, t*).
    skip: usize,
    /// The slot's scheduled time, for the first call (open loops).
    scheduled: Option<std::time::Duration>,
}

/// Runs one agent's steps; its sub-agents run on tasks, joined where the trace says and all
/// awaited before it returns. False when the request count is used up or the collector is gone.
async fn run_chain(
    plan: &Plan,
    conn: &mut Conns,
    chain: &Chain,
    prompts: &Arc<Prompter>,
    agent: Agent,
    b: &Bounds,
    tx: &UnboundedSender<Event>,
) -> bool {
    let mut joined: Vec<JoinHandle<bool>> = Vec::new();
    let mut beside: Vec<JoinHandle<bool>> = Vec::new();
    let mut skip = agent.skip;
    let mut sent_any = false;
    let mut turn = 0u32;
    let mut more = true;
    for step in &chain.steps {
        let call = match step {
            Step::Spawn { chain, join } => {
                if skip == 0 && !b.over() {
                    let h = tokio::spawn(sub_agent(
                        plan.clone(),
                        Arc::clone(chain),
                        Arc::clone(prompts),
                        agent.n,
                        b.clone(),
                        tx.clone(),
                    ));
                    match join {
                        true => joined.push(h),
                        false => beside.push(h),
                    }
                }
                continue;
            }
            Step::Call(c) if skip > 0 => {
                skip -= 1;
                let _ = c;
                continue;
            }
            Step::Call(c) => c,
        };
        for h in joined.drain(..) {
            more &= h.await.unwrap_or(true);
        }
        // The main agent's first call is the session's start: no pause before it.
        if (sent_any || !agent.main) && !call.gap.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(call.gap) => {}
                _ = b.stop.cancelled() => break,
            }
        }
        if !more || b.over() {
            break;
        }
        let Some(id) = plan.next_id() else {
            more = false;
            break;
        };
        let p = prompts.prompt(call, id);
        let first = (agent.main && !sent_any)
            .then_some(agent.scheduled)
            .flatten();
        plan.in_flight.enter();
        // Every call of an agent session goes to its adapter.
        let call = Call {
            prompt: &p.prompt,
            unit: agent.n,
            scheduled: first,
            keep_text: false,
        };
        let mut rec = one(plan, conn, call, b.abort_at, b.t0).await;
        plan.in_flight.leave();
        rec.id = id;
        rec.session = Some(agent.n);
        rec.turn = agent.main.then_some(turn);
        rec.context_overflow = p.overflow;
        sent_any = true;
        turn += 1;
        let ok = rec.ok();
        if tx.send(Event::Request(Box::new(rec))).is_err() {
            more = false;
            break;
        }
        if !ok {
            break;
        }
    }
    for h in joined.into_iter().chain(beside) {
        more &= h.await.unwrap_or(true);
    }
    more
}

/// A sub-agent of session `n` on a task and a connection of its own (boxed: agents nest).
fn sub_agent(
    plan: Plan,
    chain: Arc<Chain>,
    prompts: Arc<Prompter>,
    n: u64,
    b: Bounds,
    tx: UnboundedSender<Event>,
) -> Pin<Box<dyn Future<Output = bool> + Send>> {
    Box::pin(async move {
        let agent = Agent {
            n,
            main: false,
            skip: 0,
            scheduled: None,
        };
        let mut conn = Conns::default();
        run_chain(&plan, &mut conn, &chain, &prompts, agent, &b, &tx).await
    })
}
