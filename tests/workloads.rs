//! Workloads as the field runs them, end to end through the binary against simulators on
//! 127.0.0.1: multi-turn sessions (history asserted on what the simulator received), trace
//! replay (send times and prefix-cache hits), ramps, reasoning streams, and long runs that
//! never repeat a prompt.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use llm_inf_bench::config::{Personality, SimProfile};
use llm_inf_bench::sim::SimConfig;
use serde_json::Value;

fn sim(profile: SimProfile, speed: f64, more: impl FnOnce(&mut SimConfig)) -> common::Sim {
    let mut cfg = SimConfig::new(profile, Personality::Vllm, "m");
    cfg.speed = speed;
    more(&mut cfg);
    common::sim_with(cfg)
}

fn experiment(dir: &Path, url: &str, workload: &str) -> PathBuf {
    let text = format!(
        "name: t\nseed: 11\nmodel:\n  id: m\ninfrastructure:\n  provider: existing\n  base_url: {url}\n  health_timeout: 10s\nmetrics:\n  scrape_interval: 200ms\noutput:\n  dir: {}\nworkload:\n{workload}",
        dir.join("out").display()
    );
    common::write(dir, "exp.yaml", &text)
}

fn run(exp: &Path) -> Value {
    common::run_ok(exp, 240).1
}

/// GET `path` on the simulator.
fn get(s: &common::Sim, path: &str) -> String {
    let url = format!("{}{path}", s.url);
    s._rt
        .block_on(async { reqwest::get(url).await.unwrap().text().await.unwrap() })
}

/// What the simulator received after the pre-flight request ("Say hello.").
fn measured_requests(s: &common::Sim) -> Vec<Value> {
    let all: Vec<Value> = serde_json::from_str(&get(s, "/sim/requests")).unwrap();
    assert_eq!(all[0][0]["content"], "Say hello.");
    all[1..].to_vec()
}

/// A counter's value in the simulator's `/metrics`.
fn counter(s: &common::Sim, name: &str) -> f64 {
    get(s, "/metrics")
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn a_conversation_resends_its_history_and_later_turns_hit_the_prefix_cache() {
    let s = sim(SimProfile::H100Llama8b, 4.0, |c| c.record_requests = 64);
    let d = tempfile::tempdir().unwrap();
    // One session at a time, so what the simulator received is one session's turns in order.
    let exp = experiment(
        d.path(),
        &s.url,
        "  pattern: sequential\n  sessions: 4\n  dataset:\n    kind: conversation\n    turns: 3\n    first_input_len: 3000\n    input_len: 40\n    output_len: 24\n",
    );
    let before = counter(&s, "vllm:prefix_cache_hits_total");
    let r = run(&exp);
    let sum = &r["summary"];
    assert_eq!(sum["completed"], 12, "4 sessions × 3 turns");
    let turns = sum["by_turn"].as_array().unwrap();
    assert_eq!(turns.len(), 3);
    let ttft = |t: usize| turns[t]["mean_ttft_ms"].as_f64().unwrap();
    let input = |t: usize| turns[t]["mean_input_tokens"].as_f64().unwrap();
    // Later turns carry more tokens, yet start sooner: their history is in the prefix cache.
    assert!(input(2) > input(1) && input(1) > input(0), "{turns:?}");
    assert!(
        ttft(1) < ttft(0) * 0.6 && ttft(2) < ttft(0) * 0.6,
        "{turns:?}"
    );
    assert_eq!(sum["sessions"]["count"], 4);
    assert_eq!(sum["sessions"]["all_turns_ok"], 4);
    assert!(counter(&s, "vllm:prefix_cache_hits_total") > before + 3.0 * 2000.0);
    // What the simulator received: turn k holds 2k + 1 messages, the earlier turns' messages
    // exactly, and the assistant's answers as the server streamed them.
    let received = measured_requests(&s);
    assert_eq!(received.len(), 12);
    for session in received.chunks(3) {
        for (k, msgs) in session.iter().enumerate() {
            let msgs = msgs.as_array().unwrap();
            assert_eq!(msgs.len(), 2 * k + 1, "{msgs:?}");
            if k > 0 {
                let prev = session[k - 1].as_array().unwrap();
                assert_eq!(
                    &msgs[..prev.len()],
                    &prev[..],
                    "turn {k} re-sends turn {}",
                    k - 1
                );
                let answer = &msgs[2 * k - 1];
                assert_eq!(answer["role"], "assistant");
                assert!(!answer["content"].as_str().unwrap().is_empty());
            }
        }
    }
    let recs = r["requests"].as_array().unwrap();
    assert!(recs
        .iter()
        .all(|q| q["session"].is_u64() && q["turn"].is_u64()));
}

#[test]
fn recorded_sharegpt_conversations_play_their_user_turns() {
    let s = sim(SimProfile::Instant, 1.0, |c| c.record_requests = 64);
    let d = tempfile::tempdir().unwrap();
    let conv = r#"[{"id": "a", "conversations": [{"from": "human", "value": "first question here"}, {"from": "gpt", "value": "an answer of six words here"}, {"from": "human", "value": "second question"}]}]"#;
    common::write(d.path(), "conv.json", conv);
    let exp = experiment(
        d.path(),
        &s.url,
        "  pattern: sequential\n  sessions: 2\n  dataset: { kind: conversation, path: conv.json, format: sharegpt }\n",
    );
    let r = run(&exp);
    assert_eq!(r["summary"]["completed"], 4);
    let received = measured_requests(&s);
    assert_eq!(received[0][0]["content"], "first question here");
    assert_eq!(received[1][2]["content"], "second question");
    // The recorded answer sized max_tokens (6 words ≈ 6 tokens on the simulator).
    assert!(r["requests"][0]["output_tokens"].as_u64().unwrap() <= 7);
    // `compare` and `report` know the turns.
    let path = common::result_path(d.path());
    let out = |args: &[&str]| {
        let o = common::bin(60).args(args).arg(&path).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let compared = common::bin(60)
        .arg("compare")
        .arg(&path)
        .arg(&path)
        .output()
        .unwrap();
    let compared = String::from_utf8_lossy(&compared.stdout).into_owned();
    assert!(compared.contains("turn1_p50_ttft_ms"), "{compared}");
    let report = out(&["report"]);
    assert!(report.contains("TTFT p50 ms by turn"), "{report}");
}

#[test]
fn a_trace_replays_at_its_timestamps_and_its_shared_blocks_hit_the_cache() {
    let s = sim(SimProfile::H100Llama8b, 4.0, |_| {});
    let d = tempfile::tempdir().unwrap();
    // Three conversations' turns: later rows share their first blocks with earlier ones.
    let rows = [
        (0, 1200, &[1, 2, 3][..]),
        (150, 700, &[7, 8]),
        (400, 1500, &[1, 2, 3]),
        (420, 1000, &[7, 8]),
        (800, 2000, &[1, 2, 3, 4]),
        (1000, 300, &[9]),
        (1300, 1100, &[7, 8, 10]),
    ];
    let trace: String = rows
        .iter()
        .map(|(t, n, ids)| {
            format!("{{\"timestamp\": {t}, \"input_length\": {n}, \"output_length\": 8, \"hash_ids\": {ids:?}}}\n")
        })
        .collect();
    common::write(d.path(), "trace.jsonl", &trace);
    let exp = experiment(
        d.path(),
        &s.url,
        "  max_concurrency: 32\n  dataset: { kind: trace, path: trace.jsonl, time_scale: 2.0, block_size: 512 }\n",
    );
    let before = counter(&s, "vllm:prefix_cache_hits_total");
    let r = run(&exp);
    let recs = r["requests"].as_array().unwrap();
    assert_eq!(recs.len(), rows.len(), "a trace plays once");
    let lag_p99 = r["client"]["pacer_lag_ms"]["p99"].as_f64().unwrap();
    for (q, (t, n, _)) in recs.iter().zip(rows) {
        let scheduled = q["scheduled_ms"].as_f64().unwrap();
        assert!((scheduled - 2.0 * t as f64).abs() < 1e-6, "{q}");
        let lag = q["sent_ms"].as_f64().unwrap() - scheduled;
        assert!((-0.5..=lag_p99 + 0.5).contains(&lag), "{q}");
        // The trace's length, give or take the chat template (the server's count is kept).
        let got = q["input_tokens"].as_u64().unwrap() as i64;
        assert!((got - n as i64).abs() <= 4, "{q}");
    }
    // Rows 3–7 reuse earlier blocks: at least their shared full blocks are hits.
    let hits = counter(&s, "vllm:prefix_cache_hits_total") - before;
    assert!(hits >= 3.0 * 512.0, "prefix-cache hits {hits}");
}

#[test]
fn a_rate_ramp_shows_in_the_per_second_series() {
    let s = sim(SimProfile::Instant, 1.0, |_| {});
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(
        d.path(),
        &s.url,
        "  pattern: rate\n  rate: 80\n  arrival: constant\n  duration: 4s\n  ramp: { over: 4s, strategy: linear, from: 0 }\n  dataset: { kind: random, input_len: 8, output_len: 4 }\n",
    );
    let r = run(&exp);
    let sent: Vec<u64> = r["time_series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["sent"].as_u64().unwrap())
        .collect();
    // Λ(t) = 10 t²: 10, 30, 50, 70 requests in seconds 0–3.
    assert!(sent.len() >= 4, "{sent:?}");
    for (k, want) in [10.0, 30.0, 50.0, 70.0].iter().enumerate() {
        assert!((sent[k] as f64 - want).abs() <= 2.0, "second {k}: {sent:?}");
    }
}

#[test]
fn a_reasoning_stream_reports_ttfo_after_ttft_and_counts_reasoning_tokens() {
    for personality in [Personality::Vllm, Personality::Sglang] {
        let s = sim(SimProfile::Fixed50ms10ms, 1.0, |c| {
            c.reasoning_share = 0.5;
            c.personality = personality;
        });
        let d = tempfile::tempdir().unwrap();
        let exp = experiment(
            d.path(),
            &s.url,
            "  concurrency: 4\n  requests: 8\n  ignore_eos: true\n  dataset: { kind: random, input_len: 16, output_len: 20 }\n",
        );
        let r = run(&exp);
        for q in r["requests"].as_array().unwrap() {
            let (ttft, ttfo) = (
                q["ttft_ms"].as_f64().unwrap(),
                q["ttfo_ms"].as_f64().unwrap(),
            );
            // 10 reasoning tokens 10 ms apart come before the first content token.
            assert!(ttfo > ttft + 80.0, "{personality:?}: {q}");
            assert_eq!(q["reasoning_tokens"], 10, "{personality:?}: from usage");
            assert_eq!(q["output_tokens"], 20);
        }
        let sum = &r["summary"];
        assert_eq!(sum["total_reasoning_tokens"], 80);
        assert!(sum["p99_ttfo_ms"].as_f64().unwrap() > sum["p99_ttft_ms"].as_f64().unwrap());
    }
}

#[test]
fn a_long_duration_run_never_repeats_a_random_prompt() {
    let s = sim(SimProfile::Instant, 1.0, |c| c.record_requests = 25_000);
    let d = tempfile::tempdir().unwrap();
    // Bounded by time first: the prompts are made as they are needed, none cycles.
    let exp = experiment(
        d.path(),
        &s.url,
        "  concurrency: 64\n  duration: 120s\n  requests: 20000\n  dataset: { kind: random, input_len: 16, output_len: 2 }\n",
    );
    let r = run(&exp);
    assert_eq!(r["summary"]["completed"], 20_000);
    let received: Vec<Value> = serde_json::from_str(&get(&s, "/sim/requests")).unwrap();
    let preflight_and_calibration = received.len() - 20_000;
    let distinct: HashSet<String> = received.iter().map(|m| m.to_string()).collect();
    assert_eq!(
        distinct.len(),
        received.len(),
        "{} repeats among {} prompts ({} pre-flight)",
        received.len() - distinct.len(),
        received.len(),
        preflight_and_calibration
    );
}

#[test]
fn records_past_the_inline_limit_go_to_a_side_file_that_readers_merge() {
    let s = sim(SimProfile::Instant, 1.0, |_| {});
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(
        d.path(),
        &s.url,
        "  concurrency: 64\n  requests: 100500\n  dataset: { kind: random, input_len: 4, output_len: 1 }\n",
    );
    let r = run(&exp);
    assert_eq!(r["summary"]["completed"], 100_500);
    let file = r["requests_file"].as_str().expect("a side file");
    assert_eq!(r["requests_in_file"], 100_500);
    assert!(r["requests"].as_array().unwrap().is_empty());
    let path = common::result_path(d.path());
    assert_eq!(
        path.with_extension("requests.jsonl").file_name().unwrap(),
        file
    );
    let read = llm_inf_bench::results::read(&path).unwrap();
    assert_eq!(read.requests.len(), 100_500);
    assert!(read.requests.windows(2).all(|w| w[0].id < w[1].id));
    // `compare` reads it too.
    common::succeeds(120, [Path::new("compare"), &path, &path]);
}

#[test]
fn an_open_loop_of_sessions_schedules_each_session_s_first_turn() {
    let s = sim(SimProfile::Instant, 1.0, |_| {});
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(
        d.path(),
        &s.url,
        "  pattern: rate\n  rate: 20\n  arrival: constant\n  sessions: 6\n  dataset: { kind: conversation, turns: 2, input_len: 8, output_len: 4, think_time: 100ms }\n",
    );
    let r = run(&exp);
    assert_eq!(r["summary"]["completed"], 12);
    assert_eq!(r["summary"]["sessions"]["count"], 6);
    for q in r["requests"].as_array().unwrap() {
        let first = q["turn"] == 0;
        assert_eq!(q["scheduled_ms"].is_f64(), first, "{q}");
    }
    // The second turn waits its think time after the first answer.
    let min_session = r["summary"]["sessions"]["p50_duration_s"].as_f64().unwrap();
    assert!(min_session >= 0.1, "{min_session}");
}

#[test]
fn the_responses_api_streams_measures_and_carries_a_conversation() {
    let s = sim(SimProfile::H100Llama8b, 4.0, |c| c.record_requests = 64);
    let d = tempfile::tempdir().unwrap();
    // Single requests: TTFT and ITL from the deltas, token counts from `response.completed`.
    let exp = experiment(
        d.path(),
        &s.url,
        "  api: responses\n  concurrency: 4\n  requests: 24\n  ignore_eos: true\n  dataset: { kind: random, input_len: 200, output_len: 16 }\n",
    );
    let r = run(&exp);
    let sum = &r["summary"];
    assert_eq!(sum["completed"], 24);
    assert_eq!(sum["total_output_tokens"], 24 * 16);
    assert!(sum["p50_ttft_ms"].as_f64().unwrap() > 0.0);
    assert!(sum["mean_itl_ms"].as_f64().unwrap() > 0.0);
    let recs = r["requests"].as_array().unwrap();
    assert!(recs
        .iter()
        .all(|q| q["tokens_source"] == "usage" && q["input_tokens"].as_u64() == Some(200)));
    // A conversation through Responses: the whole history goes in `input` each turn (the
    // server keeps nothing: `store: false`), the answers as streamed.
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(
        d.path(),
        &s.url,
        "  api: responses\n  pattern: sequential\n  sessions: 2\n  dataset: { kind: conversation, turns: 3, input_len: 40, output_len: 12 }\n",
    );
    let r = run(&exp);
    assert_eq!(r["summary"]["completed"], 6);
    let received: Vec<Value> = serde_json::from_str(&get(&s, "/sim/requests")).unwrap();
    let session = &received[received.len() - 3..];
    for (k, input) in session.iter().enumerate() {
        let msgs = input.as_array().unwrap();
        assert_eq!(msgs.len(), 2 * k + 1, "{msgs:?}");
        if k > 0 {
            assert_eq!(msgs[2 * k - 1]["role"], "assistant");
            assert!(!msgs[2 * k - 1]["content"].as_str().unwrap().is_empty());
        }
    }
}

/// Anthropic Messages: TTFT at the first `text_delta` (or `thinking_delta`), tokens from the
/// usage of `message_start` / `message_delta`; no `ignore_eos` (refused at `validate`), so the
/// answers end where the model stops. A conversation with a system prompt sends it in the
/// top-level `system`, and the server sees exactly the prompts chat sends.
#[test]
fn the_messages_api_streams_measures_and_carries_a_conversation() {
    let s = sim(SimProfile::H100Llama8b, 4.0, |c| {
        c.record_requests = 64;
        c.reasoning_share = 0.25;
    });
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(
        d.path(),
        &s.url,
        "  api: messages\n  concurrency: 4\n  requests: 24\n  dataset: { kind: random, input_len: 200, output_len: 64 }\n",
    );
    let r = run(&exp);
    let sum = &r["summary"];
    assert_eq!(sum["completed"], 24);
    assert!(sum["p50_ttft_ms"].as_f64().unwrap() > 0.0);
    let recs = r["requests"].as_array().unwrap();
    assert!(recs
        .iter()
        .all(|q| q["tokens_source"] == "usage" && q["input_tokens"].as_u64() == Some(200)));
    let outs: Vec<u64> = recs
        .iter()
        .map(|q| q["output_tokens"].as_u64().unwrap())
        .collect();
    assert!(outs.iter().all(|&o| (1..=64).contains(&o)), "{outs:?}");
    assert!(
        outs.iter().any(|&o| o < 64),
        "without ignore_eos some answers end early: {outs:?}"
    );
    assert_eq!(
        sum["total_output_tokens"].as_u64(),
        Some(outs.iter().sum::<u64>())
    );
    assert!(sum["total_reasoning_tokens"].as_u64().unwrap() > 0, "{sum}");
    let bad = common::write(
        d.path(),
        "eos.yaml",
        &std::fs::read_to_string(&exp)
            .unwrap()
            .replace("api: messages", "api: messages\n  ignore_eos: true"),
    );
    let out = common::bin(30).arg("validate").arg(&bad).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("workload.ignore_eos"),
        "{err}"
    );

    // The same conversations, with a system prompt, through chat and through Messages.
    let mut inputs = Vec::new();
    for api in ["chat", "messages"] {
        let d = tempfile::tempdir().unwrap();
        let exp = experiment(
            d.path(),
            &s.url,
            &format!("  api: {api}\n  pattern: sequential\n  sessions: 2\n  dataset: {{ kind: conversation, turns: 3, input_len: 40, output_len: 12, system_prompt_len: 30 }}\n"),
        );
        let r = run(&exp);
        assert_eq!(r["summary"]["completed"], 6);
        let recs = r["requests"].as_array().unwrap();
        inputs.push(
            recs.iter()
                .map(|q| q["input_tokens"].as_u64().unwrap())
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(
        inputs[0], inputs[1],
        "chat and Messages prompts count the same"
    );
    let received: Vec<Value> = serde_json::from_str(&get(&s, "/sim/requests")).unwrap();
    let session = &received[received.len() - 3..];
    for (k, msgs) in session.iter().enumerate() {
        let msgs = msgs.as_array().unwrap();
        assert_eq!(
            msgs.len(),
            2 * k + 1,
            "no system message in `messages`: {msgs:?}"
        );
        assert_eq!(msgs[0]["role"], "user");
        if k > 0 {
            assert_eq!(msgs[2 * k - 1]["role"], "assistant");
            assert!(!msgs[2 * k - 1]["content"].as_str().unwrap().is_empty());
        }
    }
}

/// Embeddings and rerank: one JSON answer per request, several texts in it; no TTFT, TPOT or
/// ITL (null, not 0), texts per second, and the server's own counters agree. The experiment
/// refuses what a pooling API cannot do.
#[test]
fn embeddings_and_rerank_batch_texts_and_have_no_first_token() {
    let s = sim(SimProfile::H100Llama8b, 4.0, |c| c.record_requests = 64);
    let mut results = Vec::new();
    for (api, texts, inputs) in [("embeddings", 4, 4), ("rerank", 4, 3)] {
        let d = tempfile::tempdir().unwrap();
        let exp = experiment(
            d.path(),
            &s.url,
            &format!("  api: {api}\n  inputs_per_request: {inputs}\n  concurrency: 4\n  requests: 16\n  dataset: {{ kind: random, input_len: 50, output_len: 8 }}\n"),
        );
        let prompt_before = counter(&s, "vllm:prompt_tokens_total");
        let (path, r) = common::run_ok(&exp, 240);
        common::assert_valid_result(&path);
        let sum = &r["summary"];
        assert_eq!(sum["completed"], 16, "{api}: {sum}");
        assert_eq!(sum["total_inputs"], 16 * inputs, "{api}");
        for k in [
            "mean_ttft_ms",
            "p99_ttft_ms",
            "mean_tpot_ms",
            "mean_itl_ms",
            "p99_itl_ms",
            "output_throughput",
            "mean_interactivity_tok_s_user",
        ] {
            assert!(sum[k].is_null(), "{api}: {k} is {}", sum[k]);
        }
        assert!(sum["p99_e2el_ms"].as_f64().unwrap() > 0.0);
        let (rps, tps) = (
            sum["request_throughput"].as_f64().unwrap(),
            sum["input_item_throughput"].as_f64().unwrap(),
        );
        assert!(
            (tps - rps * inputs as f64).abs() < 1e-6 * tps,
            "{api}: {tps} vs {rps}"
        );
        for q in r["requests"].as_array().unwrap() {
            assert!(q["ttft_ms"].is_null() && q["error"].is_null(), "{q}");
            assert_eq!(q["inputs"], inputs, "{q}");
            assert_eq!(q["output_tokens"], 0);
            // Each text is 50 tokens (rerank: the query too), as the server counted them.
            assert_eq!(q["input_tokens"], 50 * texts, "{api}: {q}");
        }
        let counted = counter(&s, "vllm:prompt_tokens_total") - prompt_before;
        let ours = sum["total_input_tokens"].as_f64().unwrap();
        // The pre-flight request ("Say hello.") is counted by the server too.
        assert!(
            counted >= ours && counted - ours < 10.0,
            "{api}: server {counted}, client {ours}"
        );
        results.push((path, d));
        let all: Vec<Value> = serde_json::from_str(&get(&s, "/sim/requests")).unwrap();
        let last = all.last().unwrap();
        match api {
            "embeddings" => assert_eq!(last.as_array().unwrap().len(), inputs as usize, "{last}"),
            _ => {
                assert!(last["query"].is_string(), "{last}");
                assert_eq!(last["documents"].as_array().unwrap().len(), inputs as usize);
            }
        }
    }
    // `compare` judges what a pooling run has: its latency and texts per second, no TTFT.
    let compare =
        std::iter::once(Path::new("compare")).chain(results.iter().map(|(p, _)| p.as_path()));
    let text = common::succeeds(60, compare);
    assert!(
        text.contains("input_item_throughput") && text.contains("p99_e2el_ms"),
        "{text}"
    );
    assert!(!text.contains("ttft"), "{text}");
    // `report` tables texts/s and E2EL; `plot` draws texts/s against E2EL (no first token).
    let text = common::succeeds(60, [Path::new("report"), &results[0].0]);
    assert!(
        text.contains("| series | point | req/s | texts/s |"),
        "{text}"
    );
    let png = results[0].1.path().join("p.png");
    let plot = [Path::new("plot"), &results[0].0, Path::new("-o"), &png];
    common::succeeds(60, plot);
    assert!(std::fs::metadata(&png).unwrap().len() > 10_000);

    // What a pooling API cannot do is refused before anything runs, with the key to blame.
    let d = tempfile::tempdir().unwrap();
    for (workload, key) in [
        (
            "  api: embeddings\n  ignore_eos: true\n",
            "workload.ignore_eos",
        ),
        (
            "  api: chat\n  inputs_per_request: 4\n",
            "workload.inputs_per_request",
        ),
        (
            "  api: embeddings\n  inputs_per_request: 0\n",
            "workload.inputs_per_request",
        ),
        (
            "  api: rerank\n  sessions: 2\n  dataset: { kind: conversation, turns: 2 }\n",
            "workload.dataset.kind",
        ),
        (
            "  api: embeddings\n  steady_state: { window: 5s }\n",
            "workload.steady_state",
        ),
        (
            format!(
                "  api: rerank\n  dataset: {{ kind: trace, path: {}/traces/mooncake-sample.jsonl }}\n",
                env!("CARGO_MANIFEST_DIR")
            )
            .as_str(),
            "workload.dataset.kind",
        ),
    ] {
        let exp = experiment(d.path(), &s.url, &format!("{workload}  requests: 4\n"));
        let out = common::bin(30).arg("validate").arg(&exp).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(key),
            "{workload}: {err}"
        );
    }
    let exp = experiment(d.path(), &s.url, "  api: embeddings\n  requests: 4\n");
    let text = std::fs::read_to_string(&exp).unwrap();
    let with_slo = text.replace("metrics:\n", "metrics:\n  slo: { ttft_ms: 100 }\n");
    let exp = common::write(d.path(), "slo.yaml", &with_slo);
    let out = common::bin(30).arg("validate").arg(&exp).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("metrics.slo"),
        "{err}"
    );
}

/// A Zipf mix of LoRA adapters: each request names its adapter as `model` (the simulator
/// serves them, and refuses a name it does not know), the counts follow the weights within
/// sampling error, a conversation keeps one adapter for all its turns, and a step holding an
/// adapter's request runs `lora_slowdown` slower.
#[test]
fn a_zipf_adapter_mix_matches_its_weights_and_a_session_keeps_its_adapter() {
    let s = sim(SimProfile::Instant, 1.0, |c| {
        c.adapters = (0..4).map(|k| format!("adapter-{k}")).collect();
    });
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(
        d.path(),
        &s.url,
        "  concurrency: 8\n  requests: 2000\n  dataset: { kind: random, input_len: 16, output_len: 4 }\n",
    );
    let text = std::fs::read_to_string(&exp).unwrap().replace(
        "  id: m\n",
        "  id: m\n  adapters: { count: 4, distribution: zipf }\n",
    );
    std::fs::write(&exp, text).unwrap();
    let (path, r) = common::run_ok(&exp, 240);
    common::assert_valid_result(&path);
    let by = r["summary"]["by_adapter"].as_array().unwrap();
    assert_eq!(by.len(), 4);
    let h: f64 = (1..=4).map(|k| 1.0 / k as f64).sum();
    let n = 2000.0;
    for (k, a) in by.iter().enumerate() {
        assert_eq!(a["adapter"], format!("adapter-{k}"));
        assert_eq!(a["failed"], 0, "{a}");
        let p = 1.0 / (k + 1) as f64 / h;
        let got = a["completed"].as_f64().unwrap();
        let sd = (n * p * (1.0 - p)).sqrt();
        assert!(
            (got - n * p).abs() < 4.0 * sd,
            "adapter-{k}: {got} vs {}",
            n * p
        );
        assert!((a["share"].as_f64().unwrap() - got / n).abs() < 1e-9);
        assert!(a["p50_ttft_ms"].as_f64().is_some());
    }
    let recs = r["requests"].as_array().unwrap();
    for (k, a) in by.iter().enumerate() {
        let of = recs.iter().filter(|q| q["adapter"] == k).count() as u64;
        assert_eq!(Some(of), a["completed"].as_u64());
    }

    // Conversations: every turn of a session goes to the session's adapter.
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(
        d.path(),
        &s.url,
        "  concurrency: 4\n  sessions: 24\n  dataset: { kind: conversation, turns: 3, input_len: 16, output_len: 4 }\n",
    );
    let text = std::fs::read_to_string(&exp)
        .unwrap()
        .replace("  id: m\n", "  id: m\n  adapters: { count: 4 }\n");
    std::fs::write(&exp, text).unwrap();
    let r = run(&exp);
    let mut of: std::collections::BTreeMap<u64, HashSet<u64>> = Default::default();
    for q in r["requests"].as_array().unwrap() {
        of.entry(q["session"].as_u64().unwrap())
            .or_default()
            .insert(q["adapter"].as_u64().unwrap());
    }
    assert_eq!(of.len(), 24);
    assert!(of.values().all(|a| a.len() == 1), "{of:?}");
    let used: HashSet<u64> = of.values().flatten().copied().collect();
    assert!(
        used.len() > 1,
        "sessions spread over the adapters: {used:?}"
    );

    // A name the server does not serve is its 404, and a step with an adapter is slower: on
    // the fixed profile (50 ms to the first token), `lora_slowdown: 1` makes it at least 100.
    let slow = sim(SimProfile::Fixed50ms10ms, 1.0, |c| {
        c.adapters = vec!["a".into()];
        c.lora_slowdown = 1.0;
    });
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(
        d.path(),
        &slow.url,
        "  concurrency: 2\n  requests: 6\n  dataset: { kind: random, input_len: 16, output_len: 3 }\n",
    );
    let base = std::fs::read_to_string(&exp).unwrap();
    std::fs::write(
        &exp,
        base.replace("  id: m\n", "  id: m\n  adapters: { names: [a] }\n"),
    )
    .unwrap();
    let r = run(&exp);
    for q in r["requests"].as_array().unwrap() {
        assert!(q["ttft_ms"].as_f64().unwrap() >= 100.0, "{q}");
    }
    std::fs::write(
        &exp,
        base.replace("  id: m\n", "  id: m\n  adapters: { names: [b] }\n"),
    )
    .unwrap();
    let out = common::bin(60)
        .args(["run", "--no-tui"])
        .arg(&exp)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("does not exist"),
        "{err}"
    );

    // A mix that cannot be sent is refused before anything runs, with the key to blame.
    for (adapters, key) in [
        ("{ names: [a, b], weights: [1] }", "model.adapters.weights"),
        ("{ names: [a, a] }", "model.adapters.names"),
        ("{ distribution: zipf }", "model.adapters"),
        ("{ names: [a], count: 2 }", "model.adapters"),
    ] {
        let text = base.replace("  id: m\n", &format!("  id: m\n  adapters: {adapters}\n"));
        std::fs::write(&exp, text).unwrap();
        let out = common::bin(30).arg("validate").arg(&exp).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(key),
            "{adapters}: {err}"
        );
    }
    let local = base
        .replace("  id: m\n", "  id: m\n  adapters: { names: [a] }\n")
        .replace("provider: existing", "provider: local");
    std::fs::write(&exp, local).unwrap();
    let out = common::bin(30).arg("validate").arg(&exp).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("model.adapters.paths"),
        "{err}"
    );
}

/// Two servers behind one run (`base_urls`): the records, `summary.by_replica` and each
/// server's own log agree on where every request went. Round-robin alternates exactly;
/// least-in-flight sends more to the faster server; session-sticky (the default for
/// conversations) keeps every turn of a conversation on one server, as each server saw it.
#[test]
fn replicas_spread_requests_by_each_routing_policy() {
    let fast = sim(SimProfile::Fixed50ms10ms, 4.0, |c| c.record_requests = 4096);
    let slow = sim(SimProfile::Fixed50ms10ms, 0.5, |c| c.record_requests = 4096);
    let with = |workload: &str| {
        let d = tempfile::tempdir().unwrap();
        let exp = experiment(d.path(), &fast.url, workload);
        let text = std::fs::read_to_string(&exp).unwrap().replace(
            &format!("  base_url: {}\n", fast.url),
            &format!("  base_urls: [{}, {}]\n", fast.url, slow.url),
        );
        std::fs::write(&exp, text).unwrap();
        let (path, r) = common::run_ok(&exp, 240);
        common::assert_valid_result(&path);
        r
    };
    let counts = |r: &Value| -> Vec<u64> {
        let by = r["summary"]["by_replica"].as_array().unwrap();
        assert_eq!(by.len(), 2, "{by:?}");
        assert_eq!(by[0]["base_url"], fast.url.as_str());
        assert_eq!(by[1]["base_url"], slow.url.as_str());
        let recs = r["requests"].as_array().unwrap();
        by.iter()
            .enumerate()
            .map(|(k, x)| {
                let n = x["completed"].as_u64().unwrap();
                let of = recs.iter().filter(|q| q["replica"] == k).count() as u64;
                assert_eq!(n, of, "replica {k}: by_replica says {n}, the records {of}");
                n
            })
            .collect()
    };
    let random = "  concurrency: 8\n  requests: 200\n  dataset: { kind: random, input_len: 16, output_len: 8 }\n  ignore_eos: true\n";

    let r = with(&format!("  routing: round_robin\n{random}"));
    assert_eq!(counts(&r), [100, 100]);
    // Each server scraped on its own, and the run's figures theirs summed.
    let sm = &r["server_metrics"];
    let each = sm["replicas"].as_array().unwrap();
    assert_eq!(each.len(), 2);
    let gen = |m: &Value| m["summary"]["generation_tokens_per_s"].as_f64().unwrap();
    assert!(each
        .iter()
        .all(|m| !m["samples"].as_array().unwrap().is_empty()));
    assert!(
        (gen(sm) - gen(&each[0]) - gen(&each[1])).abs() < 1e-6,
        "{sm}"
    );

    let r = with(&format!("  routing: least_in_flight\n{random}"));
    let n = counts(&r);
    // The fast server (8× the slow one) ends its requests sooner, so it has fewer in flight
    // whenever the router looks.
    assert!(n[0] > 2 * n[1], "least in flight: {n:?}");

    // Conversations: every turn of a session to one server (the default routing for them).
    let before: Vec<usize> = [&fast, &slow]
        .iter()
        .map(|s| {
            serde_json::from_str::<Vec<Value>>(&get(s, "/sim/requests"))
                .unwrap()
                .len()
        })
        .collect();
    let r = with("  concurrency: 6\n  sessions: 30\n  dataset: { kind: conversation, turns: 3, input_len: 16, output_len: 4 }\n");
    let mut of: std::collections::BTreeMap<u64, HashSet<u64>> = Default::default();
    for q in r["requests"].as_array().unwrap() {
        of.entry(q["session"].as_u64().unwrap())
            .or_default()
            .insert(q["replica"].as_u64().unwrap());
    }
    assert_eq!(of.len(), 30);
    assert!(of.values().all(|k| k.len() == 1), "{of:?}");
    let n = counts(&r);
    assert!(n.iter().all(|n| *n > 0), "sessions spread over both: {n:?}");
    // As the servers saw it: a conversation's first user message reached one server only.
    let firsts = |s: &common::Sim, skip: usize| -> HashSet<String> {
        let all: Vec<Value> = serde_json::from_str(&get(s, "/sim/requests")).unwrap();
        all[skip..]
            .iter()
            .filter_map(|m| {
                let first = m.as_array()?.iter().find(|x| x["role"] == "user")?;
                Some(first["content"].as_str()?.to_string())
            })
            .collect()
    };
    let (a, b) = (firsts(&fast, before[0]), firsts(&slow, before[1]));
    assert!(a.len() >= 2 && b.len() >= 2, "{} and {}", a.len(), b.len());
    let both: Vec<&String> = a.intersection(&b).collect();
    // (Each server's pre-flight request is the one prompt both saw.)
    assert_eq!(both, ["Say hello."], "conversations seen by both servers");
}

/// `infrastructure.replicas` starts that many simulators, each its own server and log; the
/// wrong ways to ask for replicas are refused with the key to blame.
#[test]
fn the_simulator_starts_replicas_and_bad_replica_settings_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let exp = common::write(
        d.path(),
        "exp.yaml",
        &format!(
            "name: t\nmodel: {{ id: m }}\ninfrastructure:\n  provider: simulator\n  replicas: 3\n  simulator: {{ profile: instant }}\nmetrics: {{ scrape_interval: 200ms }}\noutput: {{ dir: {} }}\nworkload:\n  concurrency: 6\n  requests: 90\n  dataset: {{ kind: random, input_len: 16, output_len: 4 }}\n",
            d.path().join("out").display()
        ),
    );
    let (path, r) = common::run_ok(&exp, 120);
    common::assert_valid_result(&path);
    let by = r["summary"]["by_replica"].as_array().unwrap();
    let urls: HashSet<&str> = by.iter().map(|x| x["base_url"].as_str().unwrap()).collect();
    assert_eq!(urls.len(), 3, "three servers of their own: {by:?}");
    assert!(by.iter().all(|x| x["completed"] == 30), "{by:?}");
    assert_eq!(r["server_metrics"]["replicas"].as_array().unwrap().len(), 3);
    // Three servers of one GPU: per-GPU figures are per GPU of all three.
    assert_eq!(r["environment"]["gpu_count"], 3);
    assert_eq!(r["environment"]["replicas"], 3);
    let s = &r["summary"];
    let per_gpu = s["output_throughput_per_gpu"].as_f64().unwrap();
    assert!((per_gpu * 3.0 - s["output_throughput"].as_f64().unwrap()).abs() < 1e-6);

    let base = std::fs::read_to_string(&exp).unwrap();
    for (from, to, key) in [
        ("  replicas: 3\n", "  replicas: 0\n", "infrastructure.replicas"),
        ("  replicas: 3\n", "  replicas: 65\n", "infrastructure.replicas"),
        (
            "  provider: simulator\n  replicas: 3\n",
            "  provider: existing\n  base_url: http://127.0.0.1:9\n  replicas: 2\n",
            "infrastructure.replicas",
        ),
        (
            "  provider: simulator\n  replicas: 3\n",
            "  provider: existing\n  base_url: http://127.0.0.1:9\n  base_urls: [http://127.0.0.1:8]\n",
            "infrastructure.base_urls",
        ),
        (
            "  provider: simulator\n  replicas: 3\n",
            "  provider: existing\n  base_urls: [http://127.0.0.1:9, http://127.0.0.1:9]\n",
            "infrastructure.base_urls[1]",
        ),
        (
            "  provider: simulator\n  replicas: 3\n",
            "  provider: existing\n  base_urls: [http://127.0.0.1:9, 127.0.0.1:8]\n",
            "infrastructure.base_urls[1]",
        ),
        ("  concurrency: 6\n", "  concurrency: 6\n  routing: sticky\n", "workload.routing"),
    ] {
        let bad = common::write(d.path(), "bad.yaml", &base.replace(from, to));
        let out = common::bin(30).arg("validate").arg(&bad).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(key), "{to}: {err}");
    }
}
