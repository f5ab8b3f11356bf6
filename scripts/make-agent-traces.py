#!/usr/bin/env python3
"""Writes small agent traces in the Weka KV-cache-tester format (the format AIPerf,
inference-perf and SemiAnalysis' AgentX replay), one JSON object per line:

  {"id", "models", "block_size", "hash_id_scope": "global", "tool_tokens", "system_tokens",
   "requests": [{"t", "type": "s", "model", "in", "out", "hash_ids", "stop", "api_time",
                 "think_time"?},
                {"t", "type": "subagent", "agent_id", "subagent_type", "status",
                 "duration_ms", "total_tokens", "tool_use_count", "models", "requests": [...]},
                ...]}

A coding session: a system prompt and tools shared by every session (blocks 0..S-1; the ids
are one namespace across the file, `hash_id_scope: global`), then a
context that grows by the tool results and answers of each call (each call's `hash_ids`
extend the previous call's), with tool time between calls; now and then a sub-agent forks
from the parent's context (its first call starts with the parent's blocks), makes a few calls
of its own, and the parent's next call waits for it (or, `async_launched`, does not).

    python3 scripts/make-agent-traces.py [--sessions 12] [--calls 6] [--block 64] [--seed 7] \
        > traces/agentic-sample.jsonl

The real corpora (hundreds of Claude Code sessions, 100k+ token contexts) are on Hugging Face:
semianalysisai/cc-traces-weka-061326 (with sub-agents) and
semianalysisai/cc-traces-weka-no-subagents-051826; one JSON file per trace.
"""
import argparse, json, random

p = argparse.ArgumentParser()
p.add_argument("--sessions", type=int, default=12)
p.add_argument("--calls", type=int, default=6, help="main-agent calls per session (mean)")
p.add_argument("--block", type=int, default=64)
p.add_argument("--system-blocks", type=int, default=4)
p.add_argument("--seed", type=int, default=7)
a = p.parse_args()
rng = random.Random(a.seed)
B = a.block


def call(t, ids, extra_tokens, out, think=None):
    """A streaming call whose context is `ids` blocks, the last one cut to `extra_tokens`."""
    n_in = (len(ids) - 1) * B + extra_tokens
    r = {"t": round(t, 3), "type": "s", "model": "claude-opus", "in": n_in, "out": out,
         "hash_ids": ids, "stop": "tool_use", "api_time": round(0.4 + out / 80.0, 3)}
    if think is not None:
        r["think_time"] = think
    return r


def grow(ids, next_id, blocks):
    return ids + list(range(next_id, next_id + blocks)), next_id + blocks


for s in range(a.sessions):
    system = list(range(a.system_blocks))  # shared by every session of the file
    next_id = 1000 * (s + 1)
    ids, next_id = grow(system, next_id, rng.randint(1, 3))
    t = 0.0
    requests = []
    calls = max(2, int(rng.gauss(a.calls, 1.5)))
    for k in range(calls):
        out = rng.randint(16, 96)
        requests.append(call(t, list(ids), rng.randint(8, B), out))
        t += 0.4 + out / 80.0
        if k < calls - 1 and rng.random() < 0.35:
            # A sub-agent forks from the context so far.
            sub_ids, sub_next = list(ids), next_id + 500
            sub, st = [], t + 0.2
            for j in range(rng.randint(1, 3)):
                sub_ids, sub_next = grow(sub_ids, sub_next, rng.randint(1, 2))
                o = rng.randint(8, 48)
                sub.append(call(st, list(sub_ids), rng.randint(8, B), o))
                st += 0.3 + o / 80.0 + rng.uniform(0.1, 0.6)
            background = rng.random() < 0.25
            requests.append({
                "t": round(t + 0.1, 3), "type": "subagent", "agent_id": f"agent_{s:03d}_{k}",
                "subagent_type": "Explore",
                "status": "async_launched" if background else "completed",
                "duration_ms": None if background else int((st - t) * 1000),
                "total_tokens": sum(r["in"] + r["out"] for r in sub),
                "tool_use_count": len(sub), "models": ["claude-opus"], "requests": sub,
            })
            if not background:
                t = st
        # The tool runs, its result joins the context.
        t += rng.uniform(0.2, 2.5)
        ids, next_id = grow(ids, next_id, rng.randint(1, 3))
    print(json.dumps({
        "id": f"session-{s:03d}", "models": ["claude-opus"], "block_size": B,
        "hash_id_scope": "global", "tool_tokens": 0, "system_tokens": a.system_blocks * B,
        "requests": requests,
    }))
