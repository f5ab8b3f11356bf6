//! `evals`: graded tasks run against each deployment's server, so a setting that is fast and
//! wrong (a quantisation, a speculative-decoding draft, a batch-dependent kernel bug) shows as
//! a lower score beside its speed. The grading itself lives in `crate::evals`.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::HumanDuration;

/// What is graded, where and when.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Evals {
    /// Which deployments of a matrix are graded: `extremes` (the default, InferenceMAX's rule:
    /// in each group of deployments that differ only in `infrastructure.gpu_count`, the lowest
    /// and the highest tensor parallelism) or `all`. One deployment is always graded.
    pub deployments: EvalDeployments,
    /// Grade beside the deployment's last (highest-load) point, with its load running, instead
    /// of after its points on an idle server: accuracy at concurrency is what a
    /// batch-dependent bug changes. The graded requests are not in the point's figures.
    pub under_load: bool,
    /// Graded requests in flight at once.
    pub concurrency: u32,
    /// The API the built-in grader asks in: `chat` (the prompt as one user message, the
    /// model's chat template applied) or `completions` (the prompt as plain text).
    pub api: EvalApi,
    /// How long one graded request may take.
    pub request_timeout: HumanDuration,
    pub tasks: Vec<EvalTask>,
}

impl Default for Evals {
    fn default() -> Self {
        Self {
            deployments: EvalDeployments::Extremes,
            under_load: false,
            concurrency: 8,
            api: EvalApi::Chat,
            request_timeout: HumanDuration::from_secs(120),
            tasks: Vec::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EvalDeployments {
    #[default]
    Extremes,
    All,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EvalApi {
    #[default]
    Chat,
    Completions,
}

/// One graded task: a built-in set, a JSONL file of your own, or an lm-eval task.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EvalTask {
    /// Its name in the result, the index and `compare` (default: the set's, the file's stem,
    /// or the lm-eval task's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A set shipped with the tool: `arithmetic` (100 questions with a number for an answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set: Option<String>,
    /// A set of your own: JSONL, one `{"prompt": …, "answer": …}` per line (`id` optional),
    /// relative to the experiment file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// How an answer is read from the model's text before the exact match.
    pub extract: Extract,
    /// Grade only the first N items.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The answer's token cap.
    pub max_tokens: u32,
    /// Run lm-eval (`lm_eval`, pinned 0.4.13) instead of the built-in grader.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lm_eval: Option<LmEvalTask>,
}

/// How an answer is read from the model's text: optionally cut after the last `after` marker
/// (`"####"` for GSM8K-style answers), then one of the rules.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Extract {
    pub rule: ExtractRule,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ExtractRule {
    /// The last number in the text (`1,234` → `1234`); numbers compare by value.
    #[default]
    LastNumber,
    /// The first non-empty line, trimmed, without a final period; compared ignoring case.
    FirstLine,
    /// The whole text, trimmed; compared ignoring case.
    Whole,
}

/// An lm-eval task against the deployment's server (`local-chat-completions` or
/// `local-completions`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LmEvalTask {
    /// lm-eval's task name (`gsm8k`, or one defined under `include_path`).
    pub task: String,
    /// A directory of task YAML files of your own (`--include_path`), relative to the
    /// experiment file: e.g. a task over a local JSONL, which needs no dataset download.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_path: Option<PathBuf>,
    /// The program and its first arguments (default `[lm_eval]` on `PATH`; e.g. a
    /// virtualenv's `bin/lm_eval`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// The figure that is the score (default: `exact_match` under the task's first filter).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_fewshot: Option<u32>,
    /// More arguments, appended as given.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
}

impl EvalTask {
    /// The task's name: as written, else the set's, the file's stem, or the lm-eval task's.
    pub fn name(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        if let Some(s) = &self.set {
            return s.clone();
        }
        if let Some(f) = &self.file {
            return f
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "eval".into());
        }
        self.lm_eval
            .as_ref()
            .map(|l| l.task.clone())
            .unwrap_or_else(|| "eval".into())
    }
}

impl Default for EvalTask {
    fn default() -> Self {
        Self {
            name: None,
            set: None,
            file: None,
            extract: Extract::default(),
            limit: None,
            max_tokens: 256,
            lm_eval: None,
        }
    }
}

/// What `evals` must hold, checked with the rest of the experiment (paths with their line).
pub(super) fn rules(e: &super::Experiment, bad: &mut impl FnMut(&str, String)) {
    let answer_key = e.infrastructure.simulator.answer_key.is_some();
    let Some(ev) = &e.evals else {
        if answer_key {
            bad(
                "infrastructure.simulator.answer_key",
                "answers the sets of `evals.tasks`, and there is no `evals`".into(),
            );
        }
        return;
    };
    if ev.tasks.is_empty() {
        bad(
            "evals.tasks",
            "lists no task: add one, e.g. `- set: arithmetic`".into(),
        );
    }
    if ev.concurrency == 0 {
        bad("evals.concurrency", "must be at least 1".into());
    }
    let mut names: Vec<String> = Vec::new();
    for (i, t) in ev.tasks.iter().enumerate() {
        let at = |k: &str| format!("evals.tasks[{i}]{k}");
        let sources = [t.set.is_some(), t.file.is_some(), t.lm_eval.is_some()];
        if sources.iter().filter(|x| **x).count() != 1 {
            bad(
                &at(""),
                "names exactly one of `set` (a built-in set: arithmetic), `file` (JSONL of prompt and answer) or `lm_eval` (an lm-eval task)".into(),
            );
        }
        if t.limit == Some(0) {
            bad(
                &at(".limit"),
                "must be at least 1 (or left out for the whole set)".into(),
            );
        }
        if t.max_tokens == 0 {
            bad(&at(".max_tokens"), "must be at least 1".into());
        }
        if let Some(l) = &t.lm_eval {
            if l.task.trim().is_empty() {
                bad(
                    &at(".lm_eval.task"),
                    "names no lm-eval task (e.g. `gsm8k`)".into(),
                );
            }
        }
        let name = t.name();
        if names.contains(&name) {
            bad(
                &at(".name"),
                format!("`{name}` names another task too: give each a `name` of its own"),
            );
        }
        names.push(name);
    }
    if answer_key && !ev.tasks.iter().any(|t| t.set.is_some() || t.file.is_some()) {
        bad(
            "infrastructure.simulator.answer_key",
            "answers the sets of `evals.tasks` (`set` or `file`), and no task has one".into(),
        );
    }
}
