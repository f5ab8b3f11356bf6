//! Agent sessions replayed from recorded traces (`dataset: {kind: agentic}`), in the Weka
//! format of the KV-cache tester that AIPerf, inference-perf and SemiAnalysis' AgentX replay:
//! one JSON object per coding session, `requests` in order, each call's whole context given as
//! `hash_ids` blocks of the trace's `block_size` tokens, and sub-agents as nested request
//! lists. A call's prompt is made from its blocks (block *id*'s text from the seed and the id
//! alone, so equal ids are equal text and the server's prefix cache sees the trace's reuse);
//! the recorded answer length is its `max_tokens`.
//!
//! A session plays one trace: its main agent's calls in order, each after the gap the
//! recording shows between the end of what it waited for and its start (`think_time` when
//! recorded), cut to `max_gap`; a sub-agent starts where it was recorded, beside its parent,
//! and the parent's next call waits for it unless it was launched in the background.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use serde_json::Value;

use super::dataset::{as_prompt_json, rng_for, DatasetError, Lengths, Prompt};
use super::ideal::IdealCache;

/// One recorded session.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentTrace {
    pub id: String,
    /// Tokens per `hash_ids` block.
    pub block_size: u32,
    /// Block ids are shared by every trace of the corpus (`hash_id_scope: global`), not this
    /// trace's own.
    pub global_ids: bool,
    pub main: Chain,
}

/// One agent's steps, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Chain {
    pub steps: Vec<Step>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// A call to the model.
    Call(Call),
    /// A sub-agent starts here and runs beside this agent; with `join`, this agent's next
    /// call waits until it is done.
    Spawn { chain: Arc<Chain>, join: bool },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub input_len: u32,
    pub output_len: u32,
    pub hash_ids: Vec<u64>,
    /// The pause before it, after what it waited for ended (cut to `max_gap`).
    pub gap: Duration,
}

impl Chain {
    /// The calls of this chain (not its sub-agents').
    pub fn calls(&self) -> impl Iterator<Item = &Call> {
        self.steps.iter().filter_map(|s| match s {
            Step::Call(c) => Some(c),
            Step::Spawn { .. } => None,
        })
    }

    /// Every call, sub-agents' included.
    pub fn all_calls(&self) -> Vec<&Call> {
        let mut out = Vec::new();
        for s in &self.steps {
            match s {
                Step::Call(c) => out.push(c),
                Step::Spawn { chain, .. } => out.extend(chain.all_calls()),
            }
        }
        out
    }
}

/// Reads the traces at `path`: a `.json` file (one trace, or an array of them), a `.jsonl`
/// file (one trace a line) or a directory of `.json` files (in name order). Every trace is
/// checked before anything starts.
pub fn load(path: &Path, max_gap: Duration) -> Result<Vec<AgentTrace>, DatasetError> {
    let files: Vec<std::path::PathBuf> = if path.is_dir() {
        let mut v: Vec<_> = std::fs::read_dir(path)
            .map_err(|e| DatasetError::Line {
                path: path.display().to_string(),
                line: 0,
                message: format!("cannot list the directory: {e}"),
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        v.sort();
        v
    } else {
        vec![path.to_path_buf()]
    };
    let mut out = Vec::new();
    for f in &files {
        let shown = f.display().to_string();
        let text = super::dataset::read_dataset(f)?;
        out.extend(parse(&text, &shown, max_gap)?);
    }
    if out.is_empty() {
        return Err(DatasetError::Empty {
            path: path.display().to_string(),
        });
    }
    Ok(out)
}

/// [`load`] on one file's text: a JSON object, an array of them, or JSON Lines.
pub fn parse(text: &str, shown: &str, max_gap: Duration) -> Result<Vec<AgentTrace>, DatasetError> {
    let bad = |line: usize, message: String| DatasetError::Line {
        path: shown.to_string(),
        line,
        message,
    };
    let whole: Option<Value> = serde_json::from_str(text).ok();
    let values: Vec<(usize, Value)> = match whole {
        Some(Value::Array(a)) => a.into_iter().map(|v| (1, v)).collect(),
        Some(v) => vec![(1, v)],
        None => {
            let mut v = Vec::new();
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let t =
                    serde_json::from_str(line).map_err(|e| bad(i + 1, format!("not JSON: {e}")))?;
                v.push((i + 1, t));
            }
            v
        }
    };
    values
        .into_iter()
        .map(|(line, v)| weka_trace(&v, max_gap).map_err(|m| bad(line, m)))
        .collect()
}

/// One Weka trace object.
fn weka_trace(v: &Value, max_gap: Duration) -> Result<AgentTrace, String> {
    let id = v
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let within = |m: String| match id.is_empty() {
        true => m,
        false => format!("trace `{id}`: {m}"),
    };
    let block_size = v
        .get("block_size")
        .and_then(Value::as_u64)
        .filter(|b| (1..=1 << 20).contains(b))
        .ok_or_else(|| within("`block_size` must be a whole number of tokens ≥ 1".into()))?
        as u32;
    let global_ids = match v.get("hash_id_scope").and_then(Value::as_str) {
        None | Some("local") => false,
        Some("global") => true,
        Some(other) => {
            return Err(within(format!(
                "`hash_id_scope` is `{other}`: it must be `local` or `global`"
            )))
        }
    };
    let requests = v
        .get("requests")
        .and_then(Value::as_array)
        .ok_or_else(|| within("`requests` must be a list".into()))?;
    let main = chain(requests, block_size, None, max_gap, "requests").map_err(within)?;
    if main.all_calls().is_empty() {
        return Err(within("no calls in `requests`".into()));
    }
    Ok(AgentTrace {
        id,
        block_size,
        global_ids,
        main,
    })
}

/// One agent's request list; `start` is when it was spawned (a sub-agent), in trace seconds.
fn chain(
    requests: &[Value],
    block_size: u32,
    start: Option<f64>,
    max_gap: Duration,
    at: &str,
) -> Result<Chain, String> {
    let mut steps = Vec::with_capacity(requests.len());
    // When what the next call waits for ended, in trace seconds.
    let mut ready = start;
    for (i, r) in requests.iter().enumerate() {
        let here = format!("{at}[{i}]");
        let t = r
            .get("t")
            .and_then(Value::as_f64)
            .filter(|t| t.is_finite() && *t >= 0.0)
            .ok_or_else(|| format!("{here}: `t` must be seconds ≥ 0"))?;
        match r.get("type").and_then(Value::as_str) {
            Some("n" | "s") => {
                let call = call(r, block_size, &here)?;
                let recorded = r.get("think_time").and_then(Value::as_f64);
                let gap = recorded.unwrap_or_else(|| ready.map_or(0.0, |e| t - e));
                let gap = Duration::from_secs_f64(gap.clamp(0.0, 1e6)).min(max_gap);
                let api = r.get("api_time").and_then(Value::as_f64).unwrap_or(0.0);
                ready = Some(t + api.max(0.0));
                steps.push(Step::Call(Call { gap, ..call }));
            }
            Some("subagent") => {
                let inner = r
                    .get("requests")
                    .and_then(Value::as_array)
                    .ok_or_else(|| format!("{here}: a sub-agent's `requests` must be a list"))?;
                let sub = chain(
                    inner,
                    block_size,
                    Some(t),
                    max_gap,
                    &format!("{here}.requests"),
                )?;
                let background = r.get("status").and_then(Value::as_str) == Some("async_launched");
                let later_call = requests[i + 1..]
                    .iter()
                    .any(|n| matches!(n.get("type").and_then(Value::as_str), Some("n" | "s")));
                let join = !background && later_call;
                if join {
                    let ms = r.get("duration_ms").and_then(Value::as_f64).unwrap_or(0.0);
                    ready = Some(t + ms.max(0.0) / 1e3);
                }
                steps.push(Step::Spawn {
                    chain: Arc::new(sub),
                    join,
                });
            }
            Some(other) => {
                return Err(format!(
                    "{here}: `type` is `{other}`: it must be `n`, `s` or `subagent`"
                ))
            }
            None => {
                return Err(format!(
                    "{here}: `type` is missing (`n`, `s` or `subagent`)"
                ))
            }
        }
    }
    Ok(Chain { steps })
}

/// A call's lengths and blocks, checked: as many `hash_ids` as its prompt has blocks, at most.
fn call(r: &Value, block_size: u32, here: &str) -> Result<Call, String> {
    let count = |key: &str| -> Result<u32, String> {
        r.get(key)
            .and_then(Value::as_u64)
            .filter(|n| *n <= u64::from(crate::config::MAX_CONTEXT_TOKENS) * 64)
            .map(|n| n as u32)
            .ok_or_else(|| format!("{here}: `{key}` must be a token count ≥ 0"))
    };
    let input_len = count("in")?;
    let output_len = count("out")?.max(1);
    let hash_ids: Vec<u64> = match r.get("hash_ids") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_u64()
                    .ok_or_else(|| format!("{here}: `hash_ids` must be whole numbers ≥ 0"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(format!("{here}: `hash_ids` must be a list")),
    };
    let need = input_len.div_ceil(block_size) as usize;
    if hash_ids.len() > need {
        return Err(format!(
            "{here}: {} `hash_ids` for a prompt of {input_len} tokens: blocks of {block_size} need {need}",
            hash_ids.len()
        ));
    }
    Ok(Call {
        input_len,
        output_len,
        hash_ids,
        gap: Duration::ZERO,
    })
}

/// The seed streams of block text and of start offsets (apart from every other stream).
const AGENT_BLOCK_SEED: u64 = 0xA6E7_B10C;
const START_SEED: u64 = 0x57A2_7000;

/// The corpus, played as sessions: session `n` is trace `n mod traces`, from a start drawn
/// for `n`.
pub struct AgentSessions {
    pub traces: Arc<Vec<AgentTrace>>,
    pub seed: u64,
    pub lengths: Lengths,
    /// `[min, max]` share of the main agent's calls skipped at the start.
    pub start: [f64; 2],
    /// With `cache_bust`: a value drawn per run, so each session's blocks are its own.
    pub bust: Option<u64>,
    /// The server's cache block, for the ideal hit rate.
    pub server_block: u32,
    /// The most a call may hold (input + output), when the model's context is known.
    pub context: Option<u32>,
    /// Without `cache_bust`, one ledger for the whole run (sessions of one trace share).
    pub shared: Arc<IdealCache>,
}

/// One session ready to play: its trace's main agent from the drawn start, and how its
/// prompts are made.
pub struct AgentSession {
    pub main: Arc<Chain>,
    /// The main agent's first call played (t*).
    pub first_call: usize,
    pub prompts: Arc<Prompter>,
}

/// Makes a session's prompts and counts their ideal cache hit.
pub struct Prompter {
    namespace: u64,
    block_size: u32,
    seed: u64,
    lengths: Lengths,
    context: Option<u32>,
    ideal: Arc<IdealCache>,
}

/// A prompt and whether its call overflows the model's context.
pub struct AgentPrompt {
    pub prompt: Prompt,
    pub overflow: bool,
}

impl AgentSessions {
    pub fn session(&self, n: u64) -> AgentSession {
        let i = (n % self.traces.len().max(1) as u64) as usize;
        let Some(t) = self.traces.get(i) else {
            return AgentSession {
                main: Arc::new(Chain::default()),
                first_call: 0,
                prompts: Arc::new(self.prompter(0, Arc::clone(&self.shared))),
            };
        };
        let calls = t.main.calls().count();
        let [lo, hi] = self.start;
        let r = match hi > lo {
            true => rng_for(self.seed ^ START_SEED, n).random_range(lo..=hi),
            false => lo,
        };
        let first_call = ((r.clamp(0.0, 1.0) * calls as f64) as usize).min(calls.saturating_sub(1));
        let trace_ns = if t.global_ids { 0 } else { i as u64 + 1 };
        let (namespace, ideal) = match self.bust {
            Some(b) => (
                mix(mix(b, n), trace_ns),
                Arc::new(IdealCache::new(self.server_block)),
            ),
            None => (trace_ns, Arc::clone(&self.shared)),
        };
        let mut p = self.prompter(namespace, ideal);
        p.block_size = t.block_size;
        AgentSession {
            main: Arc::new(t.main.clone()),
            first_call,
            prompts: Arc::new(p),
        }
    }

    fn prompter(&self, namespace: u64, ideal: Arc<IdealCache>) -> Prompter {
        Prompter {
            namespace,
            block_size: 1,
            seed: self.seed,
            lengths: self.lengths.clone(),
            context: self.context,
            ideal,
        }
    }
}

/// A 64-bit mix of two values (splitmix64's finaliser over their sum).
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a.wrapping_add(b.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Prompter {
    /// The prompt of `call`; `salt` makes a call without `hash_ids` a prompt of its own.
    pub fn prompt(&self, call: &Call, salt: u64) -> AgentPrompt {
        let bs = self.block_size;
        let ids = call.hash_ids.iter().map(|id| mix(self.namespace, *id));
        let (mut blocks, left) = super::ideal::cut(ids, call.input_len.max(1), bs);
        // Tokens past the blocks (a trace without `hash_ids`): this call's own text.
        if left > 0 {
            blocks.push((mix(self.namespace ^ 0x5A17, salt), left));
        }
        let parts: Vec<String> = blocks
            .iter()
            .enumerate()
            .map(|(k, (id, tokens))| self.block(*id, k, *tokens))
            .collect();
        let cached = self.ideal.admit(&blocks, bs);
        let input: u32 = blocks.iter().map(|(_, t)| *t).sum();
        AgentPrompt {
            prompt: Prompt {
                json: as_prompt_json(self.lengths.api, &parts.join(" ")).into(),
                max_tokens: call.output_len,
                expected_input_tokens: Some(input),
                ideal_cached_tokens: Some(cached),
            },
            overflow: self
                .context
                .is_some_and(|c| u64::from(input) + u64::from(call.output_len) > u64::from(c)),
        }
    }

    /// Block `id`'s text at `position` in its prompt, cut to `tokens` (a prefix of the whole).
    fn block(&self, id: u64, position: usize, tokens: u32) -> String {
        super::trace::block_text(
            &self.lengths,
            rng_for(self.seed ^ AGENT_BLOCK_SEED, id),
            position,
            self.block_size.max(tokens),
            tokens,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Api;

    const TRACE: &str = r#"{"id": "s1", "models": ["m"], "block_size": 4, "hash_id_scope": "local",
      "requests": [
        {"t": 0, "type": "s", "model": "m", "in": 8, "out": 3, "hash_ids": [1, 2], "api_time": 1.0},
        {"t": 1.5, "type": "subagent", "agent_id": "a1", "subagent_type": "Explore", "status": "completed",
         "duration_ms": 2000, "models": ["m"],
         "requests": [{"t": 2.0, "type": "n", "model": "m", "in": 10, "out": 2, "hash_ids": [1, 2, 7]}]},
        {"t": 30, "type": "s", "model": "m", "in": 12, "out": 4, "hash_ids": [1, 2, 3], "think_time": 0.25}
      ]}"#;

    #[test]
    fn a_weka_trace_reads_into_calls_gaps_and_a_joined_sub_agent() {
        let t = &parse(TRACE, "t.json", Duration::from_secs(10)).unwrap()[0];
        assert_eq!(
            (t.id.as_str(), t.block_size, t.global_ids),
            ("s1", 4, false)
        );
        let [Step::Call(a), Step::Spawn { chain, join }, Step::Call(b)] = &t.main.steps[..] else {
            panic!("{:?}", t.main.steps)
        };
        assert_eq!((a.input_len, a.output_len, a.gap), (8, 3, Duration::ZERO));
        assert!(*join);
        // The sub-agent's first call waits from its spawn (1.5 s) to its own t (2.0 s).
        let Step::Call(c) = &chain.steps[0] else {
            panic!()
        };
        assert_eq!(
            (c.hash_ids.clone(), c.gap),
            (vec![1, 2, 7], Duration::from_millis(500))
        );
        // The recorded think time wins over t − (spawn + duration).
        assert_eq!(b.gap, Duration::from_millis(250));
        // Without it: 30 − (1.5 + 2.0) = 26.5 s, cut to max_gap.
        let no_think = TRACE.replace(", \"think_time\": 0.25", "");
        let t = &parse(&no_think, "t.json", Duration::from_secs(10)).unwrap()[0];
        let Step::Call(b) = &t.main.steps[2] else {
            panic!()
        };
        assert_eq!(b.gap, Duration::from_secs(10));
    }

    #[test]
    fn a_background_sub_agent_or_one_with_no_later_call_is_not_waited_for() {
        let background = TRACE.replace("\"completed\"", "\"async_launched\"");
        let t = &parse(&background, "t.json", Duration::from_secs(10)).unwrap()[0];
        assert!(matches!(t.main.steps[1], Step::Spawn { join: false, .. }));
        // The parent has no call after it: nothing waits, the session waits at its end.
        let last = TRACE.replace(
            ",\n        {\"t\": 30, \"type\": \"s\", \"model\": \"m\", \"in\": 12, \"out\": 4, \"hash_ids\": [1, 2, 3], \"think_time\": 0.25}",
            "",
        );
        let t = &parse(&last, "t.json", Duration::from_secs(10)).unwrap()[0];
        assert_eq!(t.main.steps.len(), 2);
        assert!(matches!(t.main.steps[1], Step::Spawn { join: false, .. }));
    }

    #[test]
    fn each_session_starts_at_a_call_drawn_for_it_within_the_range() {
        let mut long = parse(TRACE, "t.json", Duration::from_secs(10)).unwrap();
        let call = long[0].main.steps[0].clone();
        long[0].main.steps = vec![call; 20];
        let mut s = sessions(None);
        s.traces = Arc::new(long);
        s.start = [0.5, 1.0];
        let starts: Vec<usize> = (0..64).map(|n| s.session(n).first_call).collect();
        assert!(starts.iter().all(|k| (10..20).contains(k)), "{starts:?}");
        let distinct: std::collections::HashSet<_> = starts.iter().collect();
        assert!(distinct.len() > 5, "drawn per session: {starts:?}");
        // The same seed, the same starts.
        assert_eq!(
            starts,
            (0..64).map(|n| s.session(n).first_call).collect::<Vec<_>>()
        );
        s.start = [0.0, 0.0];
        assert!((0..8).all(|n| s.session(n).first_call == 0));
    }

    #[test]
    fn bad_traces_are_named_where_they_are_wrong() {
        let cases = [
            (
                TRACE.replace("\"block_size\": 4", "\"block_size\": 0"),
                "`block_size`",
            ),
            (
                TRACE.replace("\"type\": \"n\"", "\"type\": \"x\""),
                "requests[1].requests[0]: `type` is `x`",
            ),
            (
                TRACE.replace("[1, 2, 3]", "[1, 2, 3, 4]"),
                "requests[2]: 4 `hash_ids` for a prompt of 12 tokens",
            ),
            (
                TRACE.replace("\"local\"", "\"team\""),
                "`hash_id_scope` is `team`",
            ),
        ];
        for (text, says) in cases {
            let err = parse(&text, "t.json", Duration::from_secs(10))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("t.json") && err.contains("trace `s1`") && err.contains(says),
                "{err}"
            );
        }
    }

    fn sessions(bust: Option<u64>) -> AgentSessions {
        let traces = parse(TRACE, "t.json", Duration::from_secs(10)).unwrap();
        AgentSessions {
            traces: Arc::new(traces),
            seed: 7,
            lengths: Lengths::words_only(Api::Chat),
            start: [0.0, 0.0],
            bust,
            server_block: 1,
            context: Some(14),
            shared: Arc::new(IdealCache::new(1)),
        }
    }

    #[test]
    fn equal_blocks_are_equal_text_and_the_ideal_hit_counts_them() {
        let s = sessions(None);
        let one = s.session(0);
        let Step::Call(a) = &one.main.steps[0] else {
            panic!()
        };
        let Step::Call(b) = &one.main.steps[2] else {
            panic!()
        };
        let pa = one.prompts.prompt(a, 0);
        let pb = one.prompts.prompt(b, 1);
        let text = |p: &AgentPrompt| {
            serde_json::from_str::<Value>(&p.prompt.json).unwrap()[0]["content"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert!(
            text(&pb).starts_with(&text(&pa)),
            "{} / {}",
            text(&pa),
            text(&pb)
        );
        assert_eq!(pa.prompt.ideal_cached_tokens, Some(0));
        // 8 tokens of blocks 1, 2 were sent before.
        assert_eq!(pb.prompt.ideal_cached_tokens, Some(8));
        // 12 + 4 > 14: over the context.
        assert!(pb.overflow && !pa.overflow);
        // The next play of the trace shares everything (without cache_bust) …
        let again = s.session(1);
        assert_eq!(text(&again.prompts.prompt(a, 0)), text(&pa));
        // … and with it, nothing.
        let busted = sessions(Some(99));
        let (x, y) = (busted.session(0), busted.session(1));
        assert_ne!(text(&x.prompts.prompt(a, 0)), text(&y.prompts.prompt(a, 0)));
        assert_eq!(
            busted
                .session(2)
                .prompts
                .prompt(a, 0)
                .prompt
                .ideal_cached_tokens,
            Some(0)
        );
    }
}
