#!/usr/bin/env python3
"""Writes a small Mooncake-format trace (traces/mooncake-sample.jsonl), like the FAST'25
release: `timestamp` in ms, `input_length`, `output_length`, `hash_ids` of 512-token blocks.
Conversations re-send their growing history, so their later requests share the earlier
requests' blocks (chained ids: equal id at position k means the first k+1 blocks are equal);
a few system prompts are shared by many conversations; arrivals are Poisson.

    python3 scripts/make-trace.py [--requests 240] [--rate 4] [--seed 7] > traces/mooncake-sample.jsonl
"""
import argparse, json, random

p = argparse.ArgumentParser()
p.add_argument("--requests", type=int, default=240)
p.add_argument("--rate", type=float, default=4.0, help="new requests per second")
p.add_argument("--seed", type=int, default=7)
a = p.parse_args()
rng = random.Random(a.seed)
BLOCK = 512
next_id = 0


def new_id():
    global next_id
    next_id += 1
    return next_id - 1


systems = [[new_id() for _ in range(rng.randint(1, 3))] for _ in range(4)]
open_convs = []  # each: [hash_ids so far, tokens so far]
t = 0.0
rows = []
for _ in range(a.requests):
    t += rng.expovariate(a.rate) * 1000
    if open_convs and rng.random() < 0.6:
        conv = rng.choice(open_convs)
    else:
        sys_ids = rng.choice(systems)
        conv = [list(sys_ids), len(sys_ids) * BLOCK]
        open_convs.append(conv)
    ids, tokens = conv
    tokens += rng.randint(100, 1500)  # the new turn
    # Blocks the history already fills stay; new ones get new ids (the last may be partial).
    while len(ids) * BLOCK < tokens:
        ids.append(new_id())
    conv[1] = tokens
    out = rng.randint(20, 400)
    rows.append({"timestamp": int(t), "input_length": tokens, "output_length": out, "hash_ids": list(ids)})
    conv[1] += out  # the answer joins the history
    if len(open_convs) > 12:
        open_convs.pop(0)
for r in rows:
    print(json.dumps(r))
