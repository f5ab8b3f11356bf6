//! Cross-field rules on the merged experiment: combinations that are each well-typed but
//! impossible together. Every rule names the key it blames; the loader finds the file and line.

// `!(x > 0.0)` is deliberate throughout: it also rejects NaN.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

use super::{
    Api, Count, Dataset, ExistingSite, Infrastructure, Issue, Pace, Pattern, Points, ProviderKind,
    RampStrategy, Resolved, RunPodSite, Site, SweepValues,
};

pub(super) fn cross_field(r: &Resolved) -> Vec<Issue> {
    let mut out = Vec::new();
    let mut bad = |path: &str, msg: String| out.push(r.issue_at(path, msg));
    identity_rules(r, &mut bad);
    load_rules(r, &mut bad);
    api_rules(&r.experiment.workload, &mut bad);
    pooling_rules(&r.experiment, &mut bad);
    adapter_rules(&r.experiment, &mut bad);
    dataset_rules(r, &mut bad);
    shape_rules(r, &mut bad);
    search_rules(&r.experiment, &mut bad);
    steady_rules(&r.experiment, &mut bad);
    infrastructure_rules(r, &mut bad);
    metrics_rules(r, &mut bad);
    cache_rules(&r.experiment, &mut bad);
    super::evals::rules(&r.experiment, &mut bad);
    trtllm_rules(&r.experiment, &mut bad);
    out
}

/// What `trtllm-serve` (1.3) cannot do as the tool starts it.
fn trtllm_rules(e: &super::Experiment, bad: &mut impl FnMut(&str, String)) {
    if e.framework.kind != super::FrameworkKind::Trtllm {
        return;
    }
    let gpu = e.infrastructure.gpu_type.as_deref();
    if super::gpus::vendor(gpu) == super::gpus::Vendor::Amd {
        bad(
            "framework.kind",
            format!(
                "TensorRT-LLM runs on NVIDIA GPUs only, and `infrastructure.gpu_type` is `{}`: use vLLM or SGLang (AMD's ROCm images) there",
                gpu.unwrap_or_default()
            ),
        );
    }
    if e.model.source.is_some() {
        bad(
            "model.source",
            "trtllm-serve serves a model under the name it loads it by (it has no `--served_model_name`): put that name or path in `model.id` and remove `source`".into(),
        );
    }
}

/// What an API cannot ask of the server.
fn api_rules(w: &super::Workload, bad: &mut impl FnMut(&str, String)) {
    if w.api == Api::Messages && w.ignore_eos {
        bad(
            "workload.ignore_eos",
            "Anthropic's Messages API has no `ignore_eos` (vLLM drops the field): answers end where the model stops or at the output cap; remove `ignore_eos`, or use `api: chat` or `api: responses` to force output lengths".into(),
        );
    }
}

/// A pooling API (`embeddings`, `rerank`) generates nothing: no output to force, no first
/// token to limit, no conversation to carry; `inputs_per_request` is its own.
fn pooling_rules(e: &super::Experiment, bad: &mut impl FnMut(&str, String)) {
    let w = &e.workload;
    let name = api_name(w.api);
    if w.inputs_per_request == 0 {
        bad(
            "workload.inputs_per_request",
            "must be at least 1 (the texts each request carries)".into(),
        );
    }
    if !w.api.pooling() {
        if w.inputs_per_request > 1 {
            bad(
                "workload.inputs_per_request",
                format!("batches the texts of a pooling API; `api: {name}` sends one prompt per request: use `api: embeddings` or `api: rerank`, or remove it"),
            );
        }
        return;
    }
    if w.ignore_eos {
        bad(
            "workload.ignore_eos",
            format!("`api: {name}` generates no tokens, so there is no end of sequence to ignore; remove `ignore_eos`"),
        );
    }
    if matches!(
        w.dataset,
        Dataset::Conversation { .. } | Dataset::Agentic { .. }
    ) {
        bad(
            "workload.dataset.kind",
            format!("`api: {name}` answers single requests, and `{}` is a dialogue of turns: use `random`, `shared_prefix`, `jsonl` or `trace` prompts", w.dataset.kind()),
        );
    }
    if w.api == Api::Rerank && matches!(w.dataset, Dataset::Trace { .. }) {
        bad(
            "workload.dataset.kind",
            "a trace's requests are one prompt each, at their own times, and a rerank request is a query and documents: use `random`, `shared_prefix` or `jsonl` prompts with `api: rerank`".into(),
        );
    }
    if w.steady_state.is_some() {
        bad(
            "workload.steady_state",
            format!("is judged on windows of TTFT and TPOT, which `api: {name}` has none of; bound the point with `requests` or `duration` instead"),
        );
    }
    if w.inputs_per_request > 1 && matches!(w.dataset, Dataset::Trace { .. }) {
        bad(
            "workload.inputs_per_request",
            "a trace's requests are one prompt each, at their own times; remove `inputs_per_request` (or use `random` or `jsonl` prompts to batch)".into(),
        );
    }
    let mut slos: Vec<(String, &super::Slo)> = Vec::new();
    slos.extend(
        e.metrics
            .slo
            .as_ref()
            .map(|s| ("metrics.slo".to_string(), s)),
    );
    if let Some(s) = &w.search {
        slos.extend(
            s.slo
                .as_ref()
                .map(|s| ("workload.search.slo".to_string(), s)),
        );
    }
    for (at, slo) in slos {
        if slo.ttft_ms.is_some() || slo.tpot_ms.is_some() {
            bad(&at, format!("`api: {name}` is not streamed and generates nothing: it has no TTFT or TPOT; limit `e2el_ms` only"));
        }
    }
    if let Some(s) = &w.search {
        for (i, t) in s.tiers.iter().enumerate() {
            if t.ttft_ms.is_some() || t.tpot_ms.is_some() {
                bad(
                    "workload.search.tiers",
                    format!(
                        "tier {} (`{}`): `api: {name}` has no TTFT or TPOT; limit `e2el_ms` only",
                        i + 1,
                        t.name
                    ),
                );
            }
        }
    }
}

/// `model.adapters`: names or a count, weights that fit them, and weights a started server
/// can load.
fn adapter_rules(e: &super::Experiment, bad: &mut impl FnMut(&str, String)) {
    let Some(a) = &e.model.adapters else {
        return;
    };
    let at = "model.adapters";
    match (a.names.is_empty(), a.count) {
        (true, None) | (true, Some(0)) => bad(at, "needs `names: [a, b]` (as the server serves them) or `count: N` (`adapter-0` …, for the simulator)".into()),
        (false, Some(_)) => bad(at, "give `names` or `count`, not both".into()),
        _ => {}
    }
    let names = a.all();
    if names.len() > usize::from(u16::MAX) {
        bad(
            at,
            format!("{} adapters; at most {}", names.len(), u16::MAX),
        );
    }
    if let Some(dup) = names
        .iter()
        .enumerate()
        .find(|(i, n)| n.is_empty() || names[..*i].contains(n))
    {
        bad(
            "model.adapters.names",
            format!(
                "each adapter needs a name of its own; `{}` is empty or repeated",
                dup.1
            ),
        );
    }
    if !a.weights.is_empty()
        && (a.weights.len() != names.len()
            || a.weights.iter().any(|w| !(*w >= 0.0))
            || a.weights.iter().sum::<f64>() <= 0.0)
    {
        bad(
            "model.adapters.weights",
            format!(
                "one weight ≥ 0 per adapter ({} of them), not all 0",
                names.len()
            ),
        );
    }
    if !(a.zipf_exponent > 0.0) {
        bad(
            "model.adapters.zipf_exponent",
            format!("must be > 0, found {}", a.zipf_exponent),
        );
    }
    if !a.paths.is_empty() && a.paths.len() != names.len() {
        bad(
            "model.adapters.paths",
            format!(
                "one path per adapter, in `names` order ({} of them)",
                names.len()
            ),
        );
    }
    // A server from the framework's own command line (no command of the user's).
    let inf = &e.infrastructure;
    let starts = match inf.provider {
        ProviderKind::Runpod | ProviderKind::Vast => true,
        ProviderKind::Local => inf.command.is_empty(),
        ProviderKind::Slurm => inf.slurm.command.is_empty(),
        ProviderKind::Existing | ProviderKind::Simulator => false,
    };
    match e.framework.kind {
        super::FrameworkKind::Llamacpp => bad(at, "llama.cpp's server applies its LoRA adapters to every request (it cannot serve a mix by name); remove `adapters`, or use vLLM or SGLang".into()),
        super::FrameworkKind::Trtllm => bad(at, "the tool does not start trtllm-serve with LoRA adapters (its adapters come from an `--extra_llm_api_options` file); remove `adapters`, or use vLLM or SGLang".into()),
        _ if starts && a.paths.is_empty() => bad("model.adapters.paths", "the tool starts this server, which must load the adapters: give each one's weights (`paths`, in `names` order)".into()),
        _ => {}
    }
}

/// The API's name as the experiment spells it.
fn api_name(api: Api) -> String {
    serde_json::to_value(api)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// `workload.cache`: a prime needs shared prefixes; a flush needs an engine that has one.
fn cache_rules(e: &super::Experiment, bad: &mut impl FnMut(&str, String)) {
    let c = e.workload.cache;
    let shares = match &e.workload.dataset {
        Dataset::SharedPrefix { .. } => true,
        Dataset::Conversation {
            path: None,
            system_prompt_len,
            target_hit_rate,
            ..
        } => *system_prompt_len > 0 || target_hit_rate.is_some(),
        _ => false,
    };
    if c.prime && !shares {
        bad(
            "workload.cache.prime",
            format!(
                "sends each shared prefix once, and these `{}` prompts have none: use `dataset: {{kind: shared_prefix}}` or synthetic sessions with a system prompt (`system_prompt_len` or `target_hit_rate`), or remove `prime`",
                e.workload.dataset.kind()
            ),
        );
    }
    if c.flush
        && matches!(
            e.framework.kind,
            super::FrameworkKind::Llamacpp | super::FrameworkKind::Trtllm
        )
    {
        bad(
            "workload.cache.flush",
            format!(
                "{}'s server has no endpoint that empties its prefix cache; remove `flush`",
                e.framework.kind.as_str()
            ),
        );
    }
}

/// The experiment's name and model.
fn identity_rules(r: &Resolved, bad: &mut impl FnMut(&str, String)) {
    let e = &r.experiment;
    if e.name.is_empty() {
        bad(
            "name",
            "missing: every experiment needs a `name` (used in the result file name)".into(),
        );
    } else if !e
        .name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        bad("name", format!("`{}` has characters that cannot go in a file name; use letters, digits, `-`, `_`, `.`", e.name));
    }
    if e.model.id.trim().is_empty() {
        bad("model.id", "missing: set `model.id` to the model the server serves, e.g. `meta-llama/Llama-3.1-8B-Instruct`".into());
    }
}

/// The load: pattern, rates, bounds, timeouts.
fn load_rules(r: &Resolved, bad: &mut impl FnMut(&str, String)) {
    let e = &r.experiment;
    let w = &e.workload;
    let load = w.load();
    let trace = matches!(load.pace, Pace::Trace { .. });
    match w.pattern {
        // A trace sends at its own times; a search sets the pattern and load of each probe.
        _ if trace || matches!(load.points, Points::Search(_)) => {}
        Pattern::Concurrent => match w.concurrency {
            None if w.sweep.as_ref().and_then(|s| s.concurrency.as_ref()).is_none() => bad(
                "workload.pattern",
                "`pattern: concurrent` needs `workload.concurrency` (requests in flight), e.g. `concurrency: 16`".into(),
            ),
            Some(0) => bad("workload.concurrency", "must be at least 1".into()),
            _ => {}
        },
        Pattern::Rate => match w.rate {
            None if w.sweep.as_ref().is_none_or(|s| s.rate.is_empty()) => bad(
                "workload.pattern",
                "`pattern: rate` needs `workload.rate` (requests per second), e.g. `rate: 20`".into(),
            ),
            Some(x) if !(x > 0.0 && x.is_finite()) => bad("workload.rate", format!("must be a positive number of requests per second, found {x}")),
            _ => {}
        },
        Pattern::Sequential => {
            if w.concurrency.is_some_and(|c| c != 1) {
                bad("workload.concurrency", "has no effect with `pattern: sequential` (one request at a time); remove it or use `pattern: concurrent`".into());
            }
        }
    }
    if w.rate.is_some() && w.pattern != Pattern::Rate {
        bad(
            "workload.rate",
            format!(
                "is only used with `pattern: rate` (this experiment has `pattern: {}`)",
                pattern_name(w.pattern)
            ),
        );
    }
    if w.max_concurrency.is_some() && w.pattern != Pattern::Rate && !trace {
        bad(
            "workload.max_concurrency",
            "caps `pattern: rate`; with a closed loop use `concurrency`".into(),
        );
    }
    if w.max_concurrency == Some(0) {
        bad("workload.max_concurrency", "must be at least 1".into());
    }
    if !(w.burstiness > 0.0 && w.burstiness.is_finite()) {
        bad(
            "workload.burstiness",
            format!(
                "must be a positive number (1.0 = Poisson), found {}",
                w.burstiness
            ),
        );
    }
    if w.requests.is_none() && w.duration.is_none() && w.sessions.is_none() && !trace {
        bad(
            "workload",
            "needs a bound: `requests: N` and/or `duration: 10m` (or `sessions: N` for conversations and agent traces)".into(),
        );
    }
    if w.requests == Some(0) {
        bad("workload.requests", "must be at least 1".into());
    }
    if w.duration.is_some_and(|d| d.0.is_zero()) {
        bad("workload.duration", "must be longer than 0s".into());
    }
    if w.request_timeout.0.is_zero() {
        bad("workload.request_timeout", "must be longer than 0s".into());
    }
    if w.max_tokens == 0 {
        bad("workload.max_tokens", "must be at least 1".into());
    }
    if let Some(x) = w.max_error_rate {
        if !(0.0..=1.0).contains(&x) {
            bad(
                "workload.max_error_rate",
                format!("is a share between 0 and 1, found {x}"),
            );
        }
    }
}

/// Each dataset kind's own rules, and lengths against the context.
fn dataset_rules(r: &Resolved, bad: &mut impl FnMut(&str, String)) {
    let e = &r.experiment;
    let w = &e.workload;
    let max_len = e.model.max_model_len;
    // What every prompt + answer must fit in: the model's context, else a stated cap.
    let (limit, limit_is) = match max_len {
        Some(m) => (m, format!("`model.max_model_len` = {m}")),
        None => (
            super::MAX_CONTEXT_TOKENS,
            format!(
                "{} tokens, the most a prompt may ask without `model.max_model_len` (set it to the server's context)",
                super::MAX_CONTEXT_TOKENS
            ),
        ),
    };
    match &w.dataset {
        Dataset::Random {
            input_len,
            output_len,
            range_ratio,
        } => {
            if *input_len == 0 {
                bad("workload.dataset.input_len", "must be at least 1".into());
            }
            if *output_len == 0 {
                bad("workload.dataset.output_len", "must be at least 1".into());
            }
            if !(0.0..1.0).contains(range_ratio) {
                bad(
                    "workload.dataset.range_ratio",
                    format!("must be in [0, 1), found {range_ratio}"),
                );
            }
            let longest =
                (*input_len as f64 * (1.0 + range_ratio)).ceil() as u64 + *output_len as u64;
            if longest > limit as u64 {
                bad(
                    "workload.dataset.input_len",
                    format!("prompt + output can reach {longest} tokens, more than {limit_is}; lower input_len/output_len/range_ratio or raise max_model_len"),
                );
            }
        }
        Dataset::SharedPrefix {
            prefix_len,
            suffix_len,
            groups,
            output_len,
            target_hit_rate,
        } => {
            if target_hit_rate.is_some_and(|r| !(0.0..1.0).contains(&r)) {
                bad(
                    "workload.dataset.target_hit_rate",
                    format!(
                        "must be a share in [0, 1), found {}",
                        target_hit_rate.unwrap_or_default()
                    ),
                );
            }
            if *groups == 0 {
                bad("workload.dataset.groups", "must be at least 1".into());
            }
            if *output_len == 0 {
                bad("workload.dataset.output_len", "must be at least 1".into());
            }
            let longest = *prefix_len as u64 + *suffix_len as u64 + *output_len as u64;
            if longest > limit as u64 {
                bad(
                    "workload.dataset.prefix_len",
                    format!("prefix + suffix + output = {longest} tokens, more than {limit_is}"),
                );
            }
        }
        Dataset::Conversation { .. } => conversation_rules(w, limit, &limit_is, bad),
        Dataset::Trace { .. } => trace_rules(w, bad),
        Dataset::Agentic { .. } => agentic_rules(w, bad),
        Dataset::Jsonl { path } => {
            if path.as_os_str().is_empty() {
                bad(
                    "workload.dataset.path",
                    "missing: the JSONL file of prompts".into(),
                );
            }
            if w.max_tokens >= limit {
                bad(
                    "workload.max_tokens",
                    format!("{} does not fit in {limit_is}", w.max_tokens),
                );
            }
        }
    }
}

/// Agent traces: a file, a start range within [0, 1], an overflow share within [0, 1].
fn agentic_rules(w: &super::Workload, bad: &mut impl FnMut(&str, String)) {
    let Dataset::Agentic {
        path,
        start: [lo, hi],
        max_overflow_share,
        ..
    } = &w.dataset
    else {
        return;
    };
    if path.as_os_str().is_empty() {
        bad(
            "workload.dataset.path",
            "missing: the agent trace file or directory".into(),
        );
    }
    if !(0.0 <= *lo && lo <= hi && *hi <= 1.0) {
        bad(
            "workload.dataset.start",
            format!("must be [min, max] with 0 ≤ min ≤ max ≤ 1 (shares of each session's main-agent calls), found [{lo}, {hi}]"),
        );
    }
    if !(0.0..=1.0).contains(max_overflow_share) {
        bad(
            "workload.dataset.max_overflow_share",
            format!("must be a share in [0, 1], found {max_overflow_share}"),
        );
    }
}

/// Conversations: recorded or synthetic, chat only, and the last turn within the context.
fn conversation_rules(
    w: &super::Workload,
    limit: u32,
    limit_is: &str,
    bad: &mut impl FnMut(&str, String),
) {
    let Dataset::Conversation {
        turns,
        input_len,
        first_input_len,
        output_len,
        path,
        think_time,
        ..
    } = &w.dataset
    else {
        return;
    };
    if first_input_len == &Some(0) {
        bad(
            "workload.dataset.first_input_len",
            "must be at least 1".into(),
        );
    }
    if path.is_some() && first_input_len.is_some() {
        bad(
            "workload.dataset.first_input_len",
            "is for synthetic sessions; recorded conversations have their own first turns".into(),
        );
    }
    if w.api == Api::Completions {
        bad(
            "workload.api",
            "conversations need `api: chat`, `responses` or `messages` (the history is a list of messages)".into(),
        );
    }
    match path {
        Some(p) if p.as_os_str().is_empty() => bad(
            "workload.dataset.path",
            "is empty: name the conversations file, or remove `path` for synthetic sessions".into(),
        ),
        Some(_) => {
            if turns.is_some() || input_len.is_some() {
                bad("workload.dataset.path", "recorded conversations have their own turns: remove `turns` and `input_len`, or remove `path` for synthetic sessions".into());
            }
        }
        None => {
            if turns.is_none() || input_len.is_none() || output_len.is_none() {
                bad("workload.dataset", "synthetic sessions need `turns` (e.g. 3 or [2, 6]), `input_len` and `output_len`; or give `path` to recorded conversations".into());
            }
            if let Some(Count::Fixed(0) | Count::Range([0, _] | [_, 0])) = turns {
                bad(
                    "workload.dataset.turns",
                    "every session needs at least 1 turn".into(),
                );
            }
            if input_len == &Some(0) {
                bad("workload.dataset.input_len", "must be at least 1".into());
            }
        }
    }
    if output_len == &Some(0) {
        bad("workload.dataset.output_len", "must be at least 1".into());
    }
    target_rules(&w.dataset, bad);
    // A synthetic session's last turn re-sends the system prompt and every turn before it.
    if let (Some(t), Some(i), Some(o)) = (turns, input_len, output_len) {
        let most = match t {
            Count::Fixed(n) => u64::from(*n),
            Count::Range([a, b]) => u64::from(*a.max(b)),
        };
        let first = u64::from(first_input_len.unwrap_or(*i));
        let system = u64::from(w.dataset.system_len(1));
        let longest =
            system + first + most.saturating_sub(1) * u64::from(*i) + most * u64::from(*o);
        if longest > limit as u64 {
            let with = if system > 0 {
                format!(" (with a system prompt of {system})")
            } else {
                String::new()
            };
            bad("workload.dataset.turns", format!("a session's last turn can reach {longest} tokens of history and answer{with}, more than {limit_is}"));
        }
    }
    if think_time.is_some_and(|t| t.0 > std::time::Duration::from_secs(3600)) {
        bad(
            "workload.dataset.think_time",
            "is more than an hour; is the unit right (e.g. `2s`)?".into(),
        );
    }
}

/// A conversation's `target_hit_rate`: a share, for synthetic sessions, instead of
/// `system_prompt_len`, and above the floor the sessions' re-sent history already gives.
fn target_rules(d: &Dataset, bad: &mut impl FnMut(&str, String)) {
    let Dataset::Conversation {
        target_hit_rate: Some(target),
        system_prompt_len,
        path,
        ..
    } = d
    else {
        return;
    };
    const AT: &str = "workload.dataset.target_hit_rate";
    if !(0.0..1.0).contains(target) {
        return bad(AT, format!("must be a share in [0, 1), found {target}"));
    }
    if path.is_some() {
        return bad(AT, "is for synthetic sessions: recorded conversations reuse what they recorded; remove `target_hit_rate` or `path`".into());
    }
    if *system_prompt_len > 0 {
        return bad(AT, "sizes the shared system prompt itself: remove `system_prompt_len` (or `target_hit_rate`)".into());
    }
    if let Some(Err(least)) = d.session_shape().map(|s| s.system_len_for(*target, 1)) {
        bad(AT, format!("{target} is below what these sessions reach with no system prompt ({least:.3}: each turn re-sends the history); ask for at least that, or lengthen `input_len` or shorten `turns` to lower the floor"));
    }
}

/// A trace: its file, its time scale and blocks, and no load of its own.
fn trace_rules(w: &super::Workload, bad: &mut impl FnMut(&str, String)) {
    let Dataset::Trace {
        path,
        time_scale,
        block_size,
        ..
    } = &w.dataset
    else {
        return;
    };
    if path.as_os_str().is_empty() {
        bad("workload.dataset.path", "missing: the trace file".into());
    }
    if !(*time_scale > 0.0 && time_scale.is_finite()) {
        bad(
            "workload.dataset.time_scale",
            format!("must be a positive number (2.0 = half speed), found {time_scale}"),
        );
    }
    if *block_size == 0 {
        bad(
            "workload.dataset.block_size",
            "must be at least 1 token".into(),
        );
    }
    if w.rate.is_some() || w.concurrency.is_some() || w.pattern == Pattern::Sequential {
        bad("workload.dataset", "a trace sends at its own timestamps: remove `rate`, `concurrency` and `pattern: sequential` (`max_concurrency` caps requests in flight)".into());
    }
}

/// Ramps, sessions and sweeps.
fn shape_rules(r: &Resolved, bad: &mut impl FnMut(&str, String)) {
    let e = &r.experiment;
    let w = &e.workload;
    if let Some(r) = &w.ramp {
        if r.over.0.is_zero() {
            bad(
                "workload.ramp.over",
                "must be longer than 0s, e.g. `over: 30s`".into(),
            );
        }
        let target = match (w.load().pace, w.pattern) {
            (Pace::Trace { .. }, _) => {
                bad(
                    "workload.ramp",
                    "a trace sets its own send times; remove `ramp`".into(),
                );
                None
            }
            (_, Pattern::Rate) => w.rate,
            (_, Pattern::Concurrent) => w.concurrency.map(f64::from),
            (_, Pattern::Sequential) => {
                bad(
                    "workload.ramp",
                    "has nothing to ramp with `pattern: sequential`".into(),
                );
                None
            }
        };
        if let (Some(from), Some(to)) = (r.from, target) {
            if !(from >= 0.0 && from <= to) {
                bad(
                    "workload.ramp.from",
                    format!("must be between 0 and the target ({to}), found {from}"),
                );
            }
        }
        if r.strategy == RampStrategy::Exponential && r.from.is_some_and(|f| !(f > 0.0)) {
            bad(
                "workload.ramp.from",
                "an exponential ramp starts above 0".into(),
            );
        }
    }
    if w.sessions == Some(0) {
        bad("workload.sessions", "must be at least 1".into());
    }
    if w.sessions.is_some()
        && !matches!(
            w.dataset,
            Dataset::Conversation { .. } | Dataset::Agentic { .. }
        )
    {
        bad(
            "workload.sessions",
            "counts conversations: it needs `dataset: {kind: conversation}` (or `kind: agentic`)"
                .into(),
        );
    }
    if let Some(s) = &w.sweep {
        if let Some(SweepValues::Geometric(g)) = &s.concurrency {
            if g.start == 0 || g.end < g.start || g.factor < 2 {
                bad("workload.sweep.concurrency", format!("a range needs 1 ≤ start ≤ end and factor ≥ 2, found start {} end {} factor {}", g.start, g.end, g.factor));
            }
        }
        if let Some(SweepValues::List(l)) = &s.concurrency {
            if l.is_empty() || l.contains(&0) {
                bad(
                    "workload.sweep.concurrency",
                    "needs one or more values ≥ 1".into(),
                );
            }
        }
        for sl in &s.seq_lens {
            if parse_seq_len(sl).is_none() {
                bad(
                    "workload.sweep.seq_lens",
                    format!(
                        "`{sl}` is not an input/output pair; write e.g. `1k1k`, `1k8k`, `512-128`"
                    ),
                );
            }
        }
        if s.rate.iter().any(|r| !(*r > 0.0)) {
            bad("workload.sweep.rate", "rates must be positive".into());
        }
    }
}

/// Where the server runs: the keys every provider reads, then the provider's own section.
fn infrastructure_rules(r: &Resolved, bad: &mut impl FnMut(&str, String)) {
    let inf = &r.experiment.infrastructure;
    if inf.gpu_count == 0 {
        bad("infrastructure.gpu_count", "must be at least 1".into());
    }
    if let Some(c) = inf.max_cost_usd.filter(|c| !(*c > 0.0)) {
        bad(
            "infrastructure.max_cost_usd",
            format!("must be a positive amount of USD, found {c}"),
        );
    }
    if let Some(p) = inf.price_per_hour_usd.filter(|p| !(*p >= 0.0)) {
        bad(
            "infrastructure.price_per_hour_usd",
            format!("must be ≥ 0, found {p}"),
        );
    }
    if inf.tls_ca_file.is_some() && inf.provider != ProviderKind::Existing {
        bad(
            "infrastructure.tls_ca_file",
            "only applies to `provider: existing` with an https:// base_url".into(),
        );
    }
    replica_rules(inf, bad);
    match inf.site() {
        Site::RunPod(p) => runpod_rules(&p, inf.gpu_type.as_deref(), bad),
        Site::Vast(v) => vast_rules(&v, bad),
        Site::Existing(x) => {
            existing_rules(&x, inf.base_url.is_some() && !inf.base_urls.is_empty(), bad)
        }
        Site::Simulator(s) => {
            if !(s.speed > 0.0 && s.speed.is_finite()) {
                bad(
                    "infrastructure.simulator.speed",
                    format!("must be a positive number, found {}", s.speed),
                );
            }
            if let Some(d) = s.spec_decode {
                if !(1..=16).contains(&d.num_speculative_tokens) {
                    bad(
                        "infrastructure.simulator.spec_decode.num_speculative_tokens",
                        format!("must be 1 to 16, found {}", d.num_speculative_tokens),
                    );
                }
                if !(0.0..=1.0).contains(&d.token_acceptance) {
                    bad(
                        "infrastructure.simulator.spec_decode.token_acceptance",
                        format!("is a chance from 0 to 1, found {}", d.token_acceptance),
                    );
                }
                if matches!(
                    s.profile,
                    super::SimProfile::Instant | super::SimProfile::Fixed50ms10ms
                ) {
                    bad(
                        "infrastructure.simulator.spec_decode",
                        format!("the `{}` profile has no engine steps to speculate in: use `h100-llama8b` or `a100-llama70b`", s.profile),
                    );
                }
            }
            if let Some(k) = s.answer_key {
                if !(0.0..=1.0).contains(&k.error_rate) {
                    bad(
                        "infrastructure.simulator.answer_key.error_rate",
                        format!("is a share from 0 to 1, found {}", k.error_rate),
                    );
                }
            }
            if s.kv_tokens.is_some_and(|n| n < 16) {
                bad(
                    "infrastructure.simulator.kv_tokens",
                    "must hold at least one block (16 tokens)".into(),
                );
            }
        }
        Site::Slurm(s) => slurm_rules(s, bad),
        Site::Local { .. } => {}
    }
}

fn runpod_rules(p: &RunPodSite<'_>, gpu_type: Option<&str>, bad: &mut impl FnMut(&str, String)) {
    if p.expose == super::PortExposure::Http {
        bad(
            "infrastructure.expose",
            "`expose: http` puts RunPod's HTTPS proxy (Cloudflare, 100 s timeout) between the client and the server, and its latency into every figure; use `expose: tcp`".into(),
        );
    }
    if gpu_type.is_none_or(str::is_empty) {
        bad("infrastructure.provider", "`provider: runpod` needs `infrastructure.gpu_type`, RunPod's GPU type id, e.g. `NVIDIA H100 80GB HBM3`".into());
    }
}

fn vast_rules(v: &super::site::VastSite<'_>, bad: &mut impl FnMut(&str, String)) {
    if v.gpu_types.iter().all(|g| g.trim().is_empty()) {
        bad("infrastructure.provider", "`provider: vast` needs `infrastructure.gpu_type`: a portable name (`H100 80GB`, `RTX 4090`) or Vast's own (`H100 SXM`)".into());
    }
    if v.container_disk_gb < super::VastOptions::MIN_DISK_GB {
        bad(
            "infrastructure.container_disk_gb",
            format!(
                "Vast.ai's least disk is {} GB, found {}",
                super::VastOptions::MIN_DISK_GB,
                v.container_disk_gb
            ),
        );
    }
    let o = v.offers;
    if !(0.0..=1.0).contains(&o.min_reliability) {
        bad(
            "infrastructure.vast.min_reliability",
            format!("is a score from 0 to 1, found {}", o.min_reliability),
        );
    }
    if let Some(p) = o.max_price_per_hour_usd.filter(|p| !(*p > 0.0)) {
        bad(
            "infrastructure.vast.max_price_per_hour_usd",
            format!("must be a positive amount of USD per hour, found {p}"),
        );
    }
    for (i, c) in o.countries.iter().enumerate() {
        if c.len() != 2 || !c.chars().all(|c| c.is_ascii_alphabetic()) {
            bad(
                &format!("infrastructure.vast.countries[{i}]"),
                format!("is a two-letter country code (`US`, `DE`), found `{c}`"),
            );
        }
    }
    if o.offers_to_try == 0 {
        bad(
            "infrastructure.vast.offers_to_try",
            "must be at least 1".into(),
        );
    }
}

fn existing_rules(x: &ExistingSite<'_>, both: bool, bad: &mut impl FnMut(&str, String)) {
    if both {
        bad(
            "infrastructure.base_urls",
            "give `base_url` (one server) or `base_urls` (replicas behind one run), not both"
                .into(),
        );
        return;
    }
    if x.base_urls.is_empty() {
        bad("infrastructure.provider", "`provider: existing` needs `infrastructure.base_url`, e.g. `http://127.0.0.1:8000` (or `base_urls`, a list, for replicas)".into());
    }
    let many = x.base_urls.len() > 1;
    for (i, u) in x.base_urls.iter().copied().enumerate() {
        let at = match many {
            true => format!("infrastructure.base_urls[{i}]"),
            false => "infrastructure.base_url".to_string(),
        };
        if x.base_urls[..i].contains(&u) {
            bad(
                &at,
                format!("`{u}` is listed twice: each replica is one server"),
            );
        }
        match u {
            "" => bad(&at, "is empty: e.g. `http://127.0.0.1:8000`".into()),
            // Never echoed: the part before `@` may be a password.
            u if super::has_userinfo(u) => bad(
                &at,
                "a user name or password in the URL (`user:pw@host`) is not supported, and would end up in logs: give the host alone, and the server's key through `infrastructure.api_key_env`".into(),
            ),
            u if !(u.starts_with("http://") || u.starts_with("https://")) => {
                bad(&at, format!("`{u}` must start with http:// or https://"))
            }
            u if x.tls_ca_file.is_some() && !u.starts_with("https://") => bad(
                "infrastructure.tls_ca_file",
                format!("only applies to an https:// server, and base_url is `{u}`"),
            ),
            _ => {}
        }
    }
}

/// `infrastructure.replicas`: how many servers a provider starts.
fn replica_rules(inf: &Infrastructure, bad: &mut impl FnMut(&str, String)) {
    let n = inf.replicas;
    if n == 0 || n > MAX_REPLICAS {
        bad(
            "infrastructure.replicas",
            format!("must be 1 to {MAX_REPLICAS}, found {n}"),
        );
    } else if n > 1 && inf.provider == ProviderKind::Existing {
        bad(
            "infrastructure.replicas",
            "`provider: existing` starts nothing: list the servers already running in `infrastructure.base_urls`".into(),
        );
    }
    if inf.base_urls.len() > MAX_REPLICAS as usize {
        bad(
            "infrastructure.base_urls",
            format!(
                "at most {MAX_REPLICAS} servers, found {}",
                inf.base_urls.len()
            ),
        );
    }
}

/// The most replicas one run spreads requests over (a request record keeps its replica in a
/// byte; a run of more servers is a fleet, not a router).
pub const MAX_REPLICAS: u32 = 64;

fn slurm_rules(s: &super::SlurmOptions, bad: &mut impl FnMut(&str, String)) {
    if let Some(p) = s.price_per_gpu_hour_usd.filter(|p| !(*p >= 0.0)) {
        bad(
            "infrastructure.slurm.price_per_gpu_hour_usd",
            format!("must be ≥ 0, found {p}"),
        );
    }
    if s.login_host.as_deref().is_some_and(|h| h.trim().is_empty()) {
        bad(
            "infrastructure.slurm.login_host",
            "is empty: name the cluster's login host, or remove it to run sbatch here".into(),
        );
    }
    if s.port == Some(0) {
        bad(
            "infrastructure.slurm.port",
            "must be a port number (1–65535)".into(),
        );
    }
}

/// Percentiles, the scrape interval, the SLO.
fn metrics_rules(r: &Resolved, bad: &mut impl FnMut(&str, String)) {
    let e = &r.experiment;
    let m = &e.metrics;
    if m.percentiles.is_empty() {
        bad(
            "metrics.percentiles",
            "needs at least one percentile, e.g. [50, 90, 99]".into(),
        );
    }
    for p in &m.percentiles {
        if !(*p > 0.0 && *p <= 100.0) {
            bad(
                "metrics.percentiles",
                format!("{p} is not a percentile; each must be in (0, 100]"),
            );
        }
    }
    if m.scrape_interval.0.as_millis() < 100 {
        bad("metrics.scrape_interval", "must be at least 100ms".into());
    }
    if let Some(slo) = &m.slo {
        for (k, v) in [
            ("ttft_ms", slo.ttft_ms),
            ("tpot_ms", slo.tpot_ms),
            ("e2el_ms", slo.e2el_ms),
        ] {
            if let Some(v) = v {
                if !(v > 0.0) {
                    bad(
                        &format!("metrics.slo.{k}"),
                        format!("must be a positive number of milliseconds, found {v}"),
                    );
                }
            }
        }
    }
}

fn pattern_name(p: Pattern) -> &'static str {
    match p {
        Pattern::Sequential => "sequential",
        Pattern::Concurrent => "concurrent",
        Pattern::Rate => "rate",
    }
}

/// `1k1k` → (1024, 1024), `8k1k` → (8192, 1024), `512-128` → (512, 128).
pub fn parse_seq_len(s: &str) -> Option<(u32, u32)> {
    let one = |t: &str| -> Option<u32> {
        let t = t.trim();
        match t.strip_suffix(['k', 'K']) {
            Some(n) => n.parse::<u32>().ok()?.checked_mul(1024),
            None => t.parse().ok(),
        }
    };
    if let Some((a, b)) = s.split_once(['-', '/', 'x']) {
        return Some((one(a)?, one(b)?)).filter(|(a, b)| *a > 0 && *b > 0);
    }
    let i = s.find(['k', 'K'])?;
    let (a, b) = s.split_at(i + 1);
    Some((one(a)?, one(b)?)).filter(|(a, b)| *a > 0 && *b > 0)
}

/// `search.tiers`: instead of `slo`, each named, distinct, with a positive limit.
fn tier_rules(s: &super::Search, bad: &mut impl FnMut(&str, String)) {
    if s.tiers.is_empty() {
        return;
    }
    if s.slo.is_some() {
        bad(
            "workload.search.tiers",
            "give `slo` (one answer) or `tiers` (one answer each), not both".into(),
        );
    }
    // Blamed on the list (a list item has no line of its own in the locator), by number.
    let at = "workload.search.tiers";
    for (i, t) in s.tiers.iter().enumerate() {
        if t.name.trim().is_empty() || s.tiers[..i].iter().any(|o| o.name == t.name) {
            bad(
                at,
                format!(
                    "each tier needs a name of its own; tier {} is named `{}`",
                    i + 1,
                    t.name
                ),
            );
        }
        let limits = [t.ttft_ms, t.tpot_ms, t.e2el_ms];
        if limits.iter().all(Option::is_none) || limits.iter().flatten().any(|v| !(*v > 0.0)) {
            bad(
                at,
                format!(
                    "tier {} (`{}`) needs limits in milliseconds > 0: `ttft_ms`, `tpot_ms` and/or `e2el_ms`",
                    i + 1,
                    t.name
                ),
            );
        }
    }
}

/// `workload.search`: a load to vary, an SLO to hold, a range and a precision that make sense.
fn search_rules(e: &super::Experiment, bad: &mut impl FnMut(&str, String)) {
    let w = &e.workload;
    let Some(s) = &w.search else {
        return;
    };
    let slo = s.slo.as_ref().or(e.metrics.slo.as_ref());
    let empty = |x: &super::Slo| x.ttft_ms.is_none() && x.tpot_ms.is_none() && x.e2el_ms.is_none();
    if s.tiers.is_empty() && slo.is_none_or(empty) {
        bad("workload.search.slo", "a search needs an SLO to hold: `slo: {ttft_ms: 500, tpot_ms: 50}` here or in `metrics.slo` (or `tiers`)".into());
    }
    tier_rules(s, bad);
    let sessions = matches!(
        w.dataset,
        Dataset::Conversation { .. } | Dataset::Agentic { .. }
    );
    if s.over == super::SearchOver::Sessions && !sessions {
        bad(
            "workload.search.over",
            format!(
                "`sessions` counts conversations or agent sessions, and `{}` prompts are single requests: use `over: concurrency`, or `dataset: {{kind: conversation}}` / `{{kind: agentic}}`",
                w.dataset.kind()
            ),
        );
    }
    if w.sweep.is_some() {
        bad(
            "workload.search",
            "cannot go with `workload.sweep`: a search places its own points; remove one of them"
                .into(),
        );
    }
    if matches!(w.dataset, Dataset::Trace { .. }) {
        bad(
            "workload.search",
            "a trace sets its own times: a search varies a rate or a concurrency".into(),
        );
    }
    if !(s.percentile > 0.0 && s.percentile <= 100.0) {
        bad(
            "workload.search.percentile",
            format!("must be in (0, 100], found {}", s.percentile),
        );
    }
    if !(s.tolerance.0 > 0.0 && s.tolerance.0 < 1.0) {
        bad(
            "workload.search.tolerance",
            format!(
                "must be between 0 and 100 %, e.g. `5%`, found {}",
                s.tolerance.0
            ),
        );
    }
    if s.max_points < 3 {
        bad(
            "workload.search.max_points",
            format!(
                "must be at least 3 (the low end, the high end, one inside), found {}",
                s.max_points
            ),
        );
    }
    if !(s.start > 0.0 && s.start < s.max && s.max.is_finite()) {
        bad(
            "workload.search.start",
            format!(
                "needs 0 < start < max, found start {} and max {}",
                s.start, s.max
            ),
        );
    }
    if w.requests.is_none() && w.duration.is_none() {
        bad("workload.search", "each probe needs a bound: `workload.requests` or `workload.duration` (with `steady_state`, the cap)".into());
    }
}

/// `workload.steady_state` and `workload.saturation`: windows and shares that can be judged.
fn steady_rules(e: &super::Experiment, bad: &mut impl FnMut(&str, String)) {
    let w = &e.workload;
    if let Some(s) = &w.steady_state {
        if s.window.as_duration() < std::time::Duration::from_secs(1) {
            bad(
                "workload.steady_state.window",
                "must be at least 1s (each window needs 20 requests to compare)".into(),
            );
        }
        if !(s.threshold.0 > 0.0 && s.threshold.0 < 1.0) {
            bad(
                "workload.steady_state.threshold",
                format!(
                    "must be between 0 and 100 %, e.g. `5%`, found {}",
                    s.threshold.0
                ),
            );
        }
        if w.requests.is_none() && w.duration.is_none() {
            bad("workload.steady_state", "needs a cap: `workload.requests` or `workload.duration` (the point stops there if it never settles)".into());
        }
    }
    if w.saturation.window.as_duration() < std::time::Duration::from_secs(8) {
        bad(
            "workload.saturation.window",
            "must be at least 8s (the trend needs 8 one-second samples)".into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::parse_seq_len;

    #[test]
    fn seq_len_pairs() {
        assert_eq!(parse_seq_len("1k1k"), Some((1024, 1024)));
        assert_eq!(parse_seq_len("8k1k"), Some((8192, 1024)));
        assert_eq!(parse_seq_len("512-128"), Some((512, 128)));
        assert_eq!(parse_seq_len("big"), None);
    }
}
