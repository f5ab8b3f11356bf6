//! Agent sessions replayed from Weka-format traces, end to end through the binary against the
//! simulator on 127.0.0.1: the ideal prefix-cache hit rate against a count made another way
//! from the trace file, the server's measured rate beside it (a large cache, a small one),
//! sub-agents forking from their parent's context (on what the simulator received), the
//! cache-bust marker, and the context-overflow rule.

mod common;

use std::path::{Path, PathBuf};

use llm_inf_bench::config::{Personality, SimProfile};
use llm_inf_bench::sim::SimConfig;
use serde_json::{json, Value};

const BLOCK: u64 = 64;

/// A call whose context is `ids`, its last block cut to `last` tokens.
fn call(t: f64, ids: &[u64], last: u64, out: u64) -> Value {
    let input = (ids.len() as u64 - 1) * BLOCK + last;
    json!({"t": t, "type": "s", "model": "m", "in": input, "out": out, "hash_ids": ids, "api_time": 0.05})
}

/// Trace `k`: a system prompt every trace shares (blocks 0–3), then `calls` calls whose
/// context grows by 4 blocks each (the last one partial), and after the second call a
/// sub-agent that forks from the context so far and makes two calls; the parent waits for it.
fn trace(k: u64, calls: usize) -> Value {
    let mut ids: Vec<u64> = (0..4).collect();
    let mut next = 1000 * (k + 1);
    let mut requests = Vec::new();
    let mut t = 0.0;
    for c in 0..calls {
        ids.extend(next..next + 4);
        next += 4;
        requests.push(call(t, &ids, 20 + 7 * c as u64, 6));
        t += 0.1;
        if c == 1 {
            let mut sub = ids.clone();
            let mut inner = Vec::new();
            for j in 0..2u64 {
                sub.extend([next + 500 + j]);
                inner.push(call(t + 0.05 * j as f64, &sub, 40, 4));
            }
            requests.push(
                json!({"t": t, "type": "subagent", "agent_id": format!("a{k}"),
                "subagent_type": "Explore", "status": "completed", "duration_ms": 100,
                "models": ["m"], "requests": inner}),
            );
            t += 0.1;
        }
    }
    json!({"id": format!("t{k}"), "models": ["m"], "block_size": BLOCK, "hash_id_scope": "global", "requests": requests})
}

fn write_traces(dir: &Path, traces: &[Value]) -> PathBuf {
    let text: Vec<String> = traces.iter().map(Value::to_string).collect();
    common::write(dir, "traces.jsonl", &(text.join("\n") + "\n"))
}

/// The experiment `dir/name/exp.yaml` (the traces beside `name/`), its results in
/// `dir/name/out`.
fn experiment(dir: &Path, name: &str, url: &str, model: &str, dataset: &str) -> PathBuf {
    let text = format!(
        "name: agents\nseed: 3\nmodel:\n  id: m\n{model}infrastructure:\n  provider: existing\n  base_url: {url}\n  health_timeout: 10s\nmetrics:\n  scrape_interval: 100ms\noutput:\n  dir: {}\nworkload:\n  api: completions\n  pattern: sequential\n  warmup_requests: 0\n  sessions: 4\n  dataset:\n    kind: agentic\n    path: ../traces.jsonl\n    max_gap: 50ms\n{dataset}",
        dir.join(name).join("out").display()
    );
    std::fs::create_dir_all(dir.join(name)).unwrap();
    common::write(&dir.join(name), "exp.yaml", &text)
}

/// An H100 profile (it has a prefix cache; the instant one has none), 20× as fast.
fn sim(more: impl FnOnce(&mut SimConfig)) -> common::Sim {
    let mut cfg = SimConfig::new(SimProfile::H100Llama8b, Personality::Vllm, "m");
    cfg.speed = 20.0;
    more(&mut cfg);
    common::sim_with(cfg)
}

/// The calls of a trace in the order a sequential replay sends them: the parent's calls, a
/// joined sub-agent's calls before the parent's next call.
fn in_order(trace: &Value) -> Vec<(Vec<u64>, u64)> {
    fn walk(reqs: &Value, out: &mut Vec<(Vec<u64>, u64)>) {
        for r in reqs.as_array().unwrap() {
            match r["type"].as_str().unwrap() {
                "subagent" => walk(&r["requests"], out),
                _ => out.push((
                    r["hash_ids"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_u64().unwrap())
                        .collect(),
                    r["in"].as_u64().unwrap(),
                )),
            }
        }
    }
    let mut out = Vec::new();
    walk(&trace["requests"], &mut out);
    out
}

/// Tokens two prompts share as a prefix, block by block (equal ids are equal text; a cut
/// block is a prefix of the whole).
fn common_prefix(a: &(Vec<u64>, u64), b: &(Vec<u64>, u64)) -> u64 {
    let tokens = |p: &(Vec<u64>, u64), k: usize| (p.1 - k as u64 * BLOCK).min(BLOCK);
    let mut n = 0;
    for k in 0..a.0.len().min(b.0.len()) {
        if a.0[k] != b.0[k] {
            break;
        }
        let (ta, tb) = (tokens(a, k), tokens(b, k));
        n += ta.min(tb);
        if ta < BLOCK || tb < BLOCK {
            break;
        }
    }
    n
}

#[test]
fn the_ideal_hit_rate_is_the_trace_s_own_reuse_and_a_large_cache_reaches_it() {
    let traces = [trace(0, 5), trace(1, 4)];
    let s = sim(|_| {});
    let d = tempfile::tempdir().unwrap();
    write_traces(d.path(), &traces);
    let exp = experiment(d.path(), "a", &s.url, "", "");
    let r = common::run_ok(&exp, 120).1;
    let sum = &r["summary"];
    // Sessions 0–3 play traces 0, 1, 0, 1: the second plays share everything before.
    let sent: Vec<(Vec<u64>, u64)> = (0..4).flat_map(|n| in_order(&traces[n % 2])).collect();
    assert_eq!(sum["completed"], sent.len(), "{sum}");
    let input: u64 = sent.iter().map(|p| p.1).sum();
    assert_eq!(
        sum["total_input_tokens"], input,
        "prompts are the trace's lengths"
    );
    // Independently: each prompt against every prompt sent before it, all but its last token,
    // in whole blocks of 16.
    let cached: u64 = (0..sent.len())
        .map(|i| {
            let shared = (0..i)
                .map(|j| common_prefix(&sent[i], &sent[j]))
                .max()
                .unwrap_or(0);
            shared.min(sent[i].1 - 1) / 16 * 16
        })
        .sum();
    let ideal = sum["ideal_prefix_cache_hit_rate"].as_f64().unwrap();
    assert!(
        (ideal - cached as f64 / input as f64).abs() < 1e-9,
        "{ideal} vs {cached}/{input}"
    );
    // The simulator's cache holds all of it: its measured rate is the ideal one.
    let measured = r["server_metrics"]["summary"]["prefix_cache_hit_rate"]
        .as_f64()
        .unwrap();
    assert!(
        (measured - ideal).abs() < 0.02,
        "measured {measured}, ideal {ideal}"
    );
    assert!(
        r["client"]["warnings"].as_array().unwrap().is_empty(),
        "{}",
        r["client"]
    );
    // Sessions are the turns' owners; the sub-agent's calls are no turn of the main agent.
    let recs = r["requests"].as_array().unwrap();
    assert!(recs.iter().all(|q| q["session"].is_u64()));
    assert_eq!(
        recs.iter().filter(|q| q["turn"].is_null()).count(),
        8,
        "2 sub-agent calls × 4 sessions"
    );
}

#[test]
fn a_small_cache_falls_short_of_the_ideal_and_the_result_says_so() {
    let traces = [trace(0, 5), trace(1, 5)];
    // 1 024 tokens of KV: less than one session's context, so the other trace's blocks are
    // evicted before its second play.
    let s = sim(|c| c.kv_tokens = Some(1024));
    let d = tempfile::tempdir().unwrap();
    write_traces(d.path(), &traces);
    let r = common::run_ok(&experiment(d.path(), "a", &s.url, "", ""), 120).1;
    let (ideal, measured) = common::hit_rates(&r);
    assert!(
        measured > 0.2 && measured < ideal - 0.1,
        "measured {measured}, ideal {ideal}"
    );
    let warnings = r["client"]["warnings"].to_string();
    assert!(
        warnings.contains("too small for the working set"),
        "{warnings}"
    );
    // The report puts them side by side, with their ratio.
    let out = common::bin(60)
        .arg("report")
        .arg(common::result_path(&d.path().join("a")))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    let row = report
        .lines()
        .skip_while(|l| !l.starts_with("### Prefix cache"))
        .find(|l| l.starts_with("| agents |"))
        .unwrap_or_else(|| panic!("{report}"));
    let ratio: f64 = row
        .trim_end_matches(" |")
        .rsplit("| ")
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((ratio - measured / ideal).abs() < 0.01, "{row}");
}

#[test]
fn a_sub_agent_starts_from_its_parent_s_context_and_cache_bust_shares_nothing_across_runs() {
    let traces = [trace(0, 3)];
    let s = sim(|c| c.record_requests = 256);
    let d = tempfile::tempdir().unwrap();
    write_traces(d.path(), &traces);
    let exp = experiment(d.path(), "a", &s.url, "", "    cache_bust: true\n");
    let words = |v: &Value| v.as_str().unwrap().split_whitespace().count() as u64;
    let prompts = |s: &common::Sim| -> Vec<String> {
        let url = format!("{}/sim/requests", s.url);
        let all: Vec<Value> = s
            ._rt
            .block_on(async { reqwest::get(url).await.unwrap().json().await.unwrap() });
        all.iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect()
    };
    common::run_ok(&exp, 120);
    let first = prompts(&s);
    // Session 0: calls 0 and 1 of the parent, then the sub-agent's two calls.
    let order = in_order(&traces[0]);
    let of_len = |n: u64| {
        first
            .iter()
            .find(|p| words(&json!(p)) == n)
            .cloned()
            .unwrap()
    };
    let parent = of_len(order[1].1);
    let sub = of_len(order[2].1);
    assert!(
        sub.starts_with(&parent),
        "the sub-agent's first prompt carries its parent's context:\n{parent}\n{sub}"
    );
    // A second run of the same file: no session's first prompt shares even a block with the
    // first run's (nor with another session's).
    common::run_ok(
        &experiment(d.path(), "b", &s.url, "", "    cache_bust: true\n"),
        120,
    );
    let both = prompts(&s);
    let starts: Vec<String> = both
        .iter()
        .filter(|p| words(&json!(p)) == order[0].1)
        .map(|p| p.split_whitespace().take(16).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(starts.len(), 8, "4 sessions × 2 runs");
    let distinct: std::collections::HashSet<&String> = starts.iter().collect();
    assert_eq!(distinct.len(), 8, "{starts:#?}");
}

#[test]
fn a_run_whose_calls_overflow_the_context_is_marked_invalid() {
    let traces = [trace(0, 6)];
    let s = sim(|_| {});
    let d = tempfile::tempdir().unwrap();
    write_traces(d.path(), &traces);
    // Contexts grow to 1 600 tokens: 1 024 leaves the last calls over.
    let exp = experiment(
        d.path(),
        "a",
        &s.url,
        "  max_model_len: 1024\n",
        "    max_overflow_share: 0.05\n",
    );
    let (path, r) = common::run_ok(&exp, 120);
    let over = in_order(&traces[0])
        .iter()
        .filter(|(_, n)| n + 6 > 1024)
        .count() as u64
        * 4;
    assert!(over > 0);
    assert_eq!(r["summary"]["context_overflows"], over);
    let why = r["invalid"].as_str().unwrap();
    assert!(
        why.contains("`model.max_model_len` = 1024") && why.contains("max_overflow_share"),
        "{why}"
    );
    common::assert_valid_result(&path);
    // Allowed a larger share, the same run is valid.
    let lax = experiment(
        d.path(),
        "b",
        &s.url,
        "  max_model_len: 1024\n",
        "    max_overflow_share: 0.9\n",
    );
    let (_, r) = common::run_ok(&lax, 120);
    assert!(r.get("invalid").is_none());
}

/// A shared-prefix point on `url` with `target_hit_rate: 0.5`, flushed and primed.
fn targeted(dir: &Path, name: &str, url: &str, kind: &str, cache: &str) -> PathBuf {
    let text = format!(
        "name: target\nmodel: {{ id: m }}\nframework: {{ kind: {kind} }}\ninfrastructure: {{ provider: existing, base_url: {url}, health_timeout: 10s }}\nmetrics: {{ scrape_interval: 100ms }}\noutput: {{ dir: {} }}\nworkload:\n  api: completions\n  concurrency: 4\n  requests: 48\n  warmup_requests: 0\n  cache: {cache}\n  dataset: {{ kind: shared_prefix, prefix_len: 300, suffix_len: 212, groups: 4, output_len: 4, target_hit_rate: 0.5 }}\n",
        dir.join(name).join("out").display()
    );
    std::fs::create_dir_all(dir.join(name)).unwrap();
    common::write(&dir.join(name), "exp.yaml", &text)
}

#[test]
fn a_target_hit_rate_after_flush_and_prime_is_what_the_server_measures() {
    let s = sim(|_| {});
    let d = tempfile::tempdir().unwrap();
    let rate = |r: &Value| {
        r["server_metrics"]["summary"]["prefix_cache_hit_rate"]
            .as_f64()
            .unwrap()
    };
    // A first run fills the cache; the second flushes it, primes the four prefixes and
    // measures: half of every 512-token prompt is its group's cached prefix.
    common::run_ok(&targeted(d.path(), "fill", &s.url, "vllm", "{}"), 120);
    let (_, r) = common::run_ok(
        &targeted(
            d.path(),
            "a",
            &s.url,
            "vllm",
            "{ flush: true, prime: true }",
        ),
        120,
    );
    let measured = rate(&r);
    assert!((measured - 0.5).abs() <= 0.05, "measured {measured}");
    assert_eq!(
        r["summary"]["ideal_prefix_cache_hit_rate"]
            .as_f64()
            .unwrap(),
        0.5
    );
    assert!(
        r["client"]["warnings"].as_array().unwrap().is_empty(),
        "{}",
        r["client"]
    );
    // Without the prime each group's first request misses, and with the fill above not
    // flushed away it would hit: the flush is what makes the figure the workload's.
    let (_, r) = common::run_ok(
        &targeted(d.path(), "b", &s.url, "vllm", "{ flush: true }"),
        120,
    );
    let ideal = r["summary"]["ideal_prefix_cache_hit_rate"]
        .as_f64()
        .unwrap();
    assert!((ideal - 0.5 * 44.0 / 48.0).abs() < 1e-9, "{ideal}");
    assert!((rate(&r) - ideal).abs() <= 0.05, "{} vs {ideal}", rate(&r));
}

#[test]
fn flush_uses_each_engine_s_endpoint_and_says_when_vllm_has_none() {
    let mut cfg = SimConfig::new(
        SimProfile::H100Llama8b,
        llm_inf_bench::config::Personality::Sglang,
        "m",
    );
    cfg.speed = 20.0;
    let s = common::sim_with(cfg);
    let d = tempfile::tempdir().unwrap();
    let (_, r) = common::run_ok(
        &targeted(
            d.path(),
            "a",
            &s.url,
            "sglang",
            "{ flush: true, prime: true }",
        ),
        120,
    );
    let server = &r["server_metrics"]["summary"];
    // SGLang has a gauge of the hit rate, averaged over the scrapes.
    let measured = server["mean_prefix_cache_hit_rate"]
        .as_f64()
        .unwrap_or_else(|| panic!("{server}"));
    assert!((measured - 0.5).abs() <= 0.05, "SGLang's gauge: {measured}");
    // Told it is vLLM, the tool asks /reset_prefix_cache: the 404 says what vLLM needs.
    let exp = targeted(d.path(), "b", &s.url, "vllm", "{ flush: true }");
    let out = common::bin(120)
        .arg("run")
        .arg(&exp)
        .args(["--no-tui", "--yes"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("VLLM_SERVER_DEV_MODE=1"), "{err}");
}

#[test]
fn a_conversation_target_hit_rate_sizes_the_system_prompt_and_the_server_measures_it() {
    let s = sim(|_| {});
    let d = tempfile::tempdir().unwrap();
    let text = format!(
        "name: turns\nmodel: {{ id: m }}\ninfrastructure: {{ provider: existing, base_url: {}, health_timeout: 10s }}\nmetrics: {{ scrape_interval: 100ms }}\noutput: {{ dir: {} }}\nworkload:\n  api: chat\n  concurrency: 4\n  sessions: 24\n  warmup_requests: 0\n  ignore_eos: true\n  cache: {{ flush: true, prime: true }}\n  dataset: {{ kind: conversation, turns: [2, 4], input_len: 120, output_len: 24, target_hit_rate: 0.8 }}\n",
        s.url,
        d.path().join("out").display()
    );
    let exp = common::write(d.path(), "exp.yaml", &text);
    let (_, r) = common::run_ok(&exp, 120);
    let (ideal, measured) = common::hit_rates(&r);
    // The ideal counts each turn from the server's own token counts: the template's tokens
    // the target's sizing does not know move it a little.
    assert!((ideal - 0.8).abs() <= 0.03, "ideal {ideal}");
    assert!((measured - 0.8).abs() <= 0.05, "measured {measured}");
    // The simulator caches the blocks an answer fills, as vLLM does: a next turn re-sending
    // prompt and answer is served both, as the ideal counts it.
    assert!(
        (measured - ideal).abs() <= 0.01,
        "measured {measured}, ideal {ideal}"
    );
    assert!(
        r["client"]["warnings"].as_array().unwrap().is_empty(),
        "{}",
        r["client"]
    );
    // Each turn's own ideal rate, the later ones higher (more history re-sent).
    let turns = r["summary"]["by_turn"].as_array().unwrap();
    let per_turn: Vec<f64> = turns
        .iter()
        .map(|t| t["ideal_prefix_cache_hit_rate"].as_f64().unwrap())
        .collect();
    assert!(per_turn.windows(2).all(|w| w[0] < w[1]), "{per_turn:?}");
    // Below the floor the re-sent history already gives: refused before the run, with it.
    let low = common::write(
        d.path(),
        "low.yaml",
        &text.replace("target_hit_rate: 0.8", "target_hit_rate: 0.3"),
    );
    let out = common::bin(30)
        .args(["validate"])
        .arg(&low)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("1 problem in"), "{err}");
    assert!(
        err.contains("13:81: `workload.dataset.target_hit_rate`: 0.3 is below what these sessions reach with no system prompt (0.569: each turn re-sends the history)"),
        "{err}"
    );
}
