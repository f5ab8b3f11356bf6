//! Graded tasks (`evals` in an experiment): a set of prompts with expected answers, each
//! model answer reduced by an extractor (`grade`) and matched exactly; the score, its standard
//! error and every graded answer go into the result. Sets are built in (`arithmetic`, shipped
//! in the binary) or JSONL of the user's; lm-eval runs as a program of its own (`lm_eval`).
//! The simulator answers a set from its `AnswerKey` (right, or wrong at a set rate), so the
//! grading is tested exactly. Sending the requests is `run::evals`'s.

pub mod grade;
pub mod lm_eval;

use std::collections::HashMap;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::{EvalTask, Resolved};

/// The sets shipped with the tool: (name, JSONL).
pub const BUILT_IN: &[(&str, &str)] =
    &[("arithmetic", include_str!("../../evals/arithmetic.jsonl"))];

/// One graded question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub id: String,
    pub prompt: String,
    pub answer: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    #[serde(default)]
    id: Option<serde_json::Value>,
    prompt: String,
    answer: serde_json::Value,
}

/// A JSONL set: one `{"prompt", "answer"}` (and an optional `id`) per line; blank lines are
/// skipped. An error names the line and what it should hold.
pub fn parse_set(text: &str, what: &str) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let l: Line = serde_json::from_str(line).map_err(|e| {
            format!("{what}:{}: {e}; each line is {{\"prompt\": \"…\", \"answer\": \"…\"}} (an `id` optional)", i + 1)
        })?;
        let answer = match l.answer {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            other => {
                return Err(format!(
                    "{what}:{}: `answer` must be a string or a number, found {other}",
                    i + 1
                ))
            }
        };
        let id = match l.id {
            Some(serde_json::Value::String(s)) => s,
            Some(v) => v.to_string(),
            None => format!("{}", items.len() + 1),
        };
        items.push(Item {
            id,
            prompt: l.prompt,
            answer,
        });
    }
    if items.is_empty() {
        return Err(format!("{what}: no items (one JSON object per line)"));
    }
    Ok(items)
}

/// A built-in set by name.
pub fn built_in(name: &str) -> Result<Vec<Item>, String> {
    let (_, text) = BUILT_IN.iter().find(|(n, _)| *n == name).ok_or_else(|| {
        let names: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
        format!(
            "unknown built-in set `{name}`; the sets are {}",
            names.join(", ")
        )
    })?;
    parse_set(text, name)
}

/// A task's items (its `limit` applied): the built-in set or the file (relative to the
/// experiment file that names it, `key` being where). `None` for an lm-eval task.
pub fn task_items(
    task: &EvalTask,
    resolved: &Resolved,
    key: &str,
) -> Result<Option<Vec<Item>>, String> {
    let mut items = match (&task.set, &task.file) {
        (Some(s), _) => built_in(s).map_err(|m| format!("{key}.set: {m}"))?,
        (None, Some(f)) => {
            let path = resolved.resolve_path(&format!("{key}.file"), f);
            read_set(&path).map_err(|m| format!("{key}.file: {m}"))?
        }
        (None, None) => return Ok(None),
    };
    if let Some(n) = task.limit {
        items.truncate(n as usize);
    }
    Ok(Some(items))
}

/// A set file, read as every file a user names is (`crate::files`).
pub fn read_set(path: &Path) -> Result<Vec<Item>, String> {
    let text = crate::files::read_text(path, 64 << 20, "an eval set").map_err(|e| e.to_string())?;
    parse_set(&text, &path.display().to_string())
}

/// The answer key of every set the experiment grades (`evals.tasks` with a `set` or a
/// `file`, each whole), for the simulator.
pub fn experiment_key(resolved: &Resolved, error_rate: f64) -> Result<AnswerKey, String> {
    let mut items = Vec::new();
    let tasks = resolved
        .experiment
        .evals
        .iter()
        .flat_map(|e| e.tasks.iter());
    for (i, t) in tasks.enumerate() {
        let whole = EvalTask {
            limit: None,
            ..t.clone()
        };
        let key = format!("evals.tasks[{i}]");
        items.push(task_items(&whole, resolved, &key)?.unwrap_or_default());
    }
    Ok(AnswerKey::of_sets(&items, error_rate))
}

/// The simulator's answer key: a prompt's answer, said as a model would ("The answer is 42."),
/// right or — for the items an error rate picks — wrong.
#[derive(Debug, Default)]
pub struct AnswerKey {
    answers: HashMap<String, String>,
}

impl AnswerKey {
    /// The key of `items`; with `error_rate` r, item i (in set order) is answered wrongly when
    /// ⌊(i+1)·r⌋ > ⌊i·r⌋: exactly ⌊n·r⌋ of any first n items, spread evenly.
    pub fn new(items: &[Item], error_rate: f64) -> Self {
        let r = error_rate.clamp(0.0, 1.0);
        let mut answers = HashMap::new();
        for (i, it) in items.iter().enumerate() {
            let wrong = ((i + 1) as f64 * r).floor() > (i as f64 * r).floor();
            let said = match wrong {
                false => it.answer.clone(),
                true => grade::wrong_answer(&it.answer),
            };
            answers
                .entry(it.prompt.trim().to_string())
                .or_insert(format!("The answer is {said}."));
        }
        Self { answers }
    }

    /// The key of several sets, each one's errors spread through it as [`AnswerKey::new`]
    /// says (a prompt in two sets keeps its first set's answer).
    pub fn of_sets(sets: &[Vec<Item>], error_rate: f64) -> Self {
        let mut all = Self::default();
        for set in sets {
            for (k, v) in Self::new(set, error_rate).answers {
                all.answers.entry(k).or_insert(v);
            }
        }
        all
    }

    /// The key of sets named as `serve-sim --answer-key` takes them: a built-in set's name,
    /// else a JSONL file's path.
    pub fn named(names: &[String], error_rate: f64) -> Result<Self, String> {
        if !(0.0..=1.0).contains(&error_rate) {
            return Err(format!(
                "the error rate is a share from 0 to 1, found {error_rate}"
            ));
        }
        let sets = names
            .iter()
            .map(|k| match BUILT_IN.iter().any(|(n, _)| n == k) {
                true => built_in(k),
                false => read_set(Path::new(k)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::of_sets(&sets, error_rate))
    }

    /// What the model says to `prompt` (trimmed), when the key holds it.
    pub fn answer(&self, prompt: &str) -> Option<&str> {
        self.answers.get(prompt.trim()).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.answers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }
}

/// Which grader made a score.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EvalKind {
    BuiltIn,
    LmEval,
}

/// One task graded on one server, as the result file keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EvalScore {
    pub name: String,
    pub kind: EvalKind,
    /// The point it ran beside (`evals.under_load`); absent when it ran after the points on an
    /// idle server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beside: Option<String>,
    /// Graded requests in flight at once.
    pub concurrency: u32,
    /// Items asked (a failed request counts, as wrong).
    pub count: u32,
    pub correct: u32,
    /// correct / count.
    pub score: f64,
    /// The score's standard error: √(p(1−p)/(n−1)), as lm-eval gives it.
    pub stderr: f64,
    /// Requests that got no answer (an error status, a timeout).
    pub failed: u32,
    pub seconds: f64,
    /// Cut short (a stop, the server gone): the score is of the items graded so far.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
    /// Why the task could not be graded at all (lm-eval missing or failing): nothing counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The grader's program and version, when it is one of its own (`lm_eval 0.4.13`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    /// lm-eval's other figures for the task (`metric,filter` → value).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub figures: std::collections::BTreeMap<String, f64>,
    /// Every graded answer, in set order.
    pub answers: Vec<GradedAnswer>,
}

/// One graded answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GradedAnswer {
    pub id: String,
    pub expected: String,
    /// What the extractor read from the text (none: nothing matched its rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extracted: Option<String>,
    pub correct: bool,
    /// The model's text, cut at 500 characters.
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The longest model text kept per graded answer.
pub const TEXT_KEPT: usize = 500;

impl EvalScore {
    /// Whether the task was graded (else its `error` says why and nothing is counted): only
    /// graded tasks are scored in tables, the index, `compare` and `report`.
    pub fn graded(&self) -> bool {
        self.error.is_none()
    }

    /// The score of graded `answers`.
    pub fn of(name: String, kind: EvalKind, answers: Vec<GradedAnswer>) -> Self {
        let count = answers.len() as u32;
        let correct = answers.iter().filter(|a| a.correct).count() as u32;
        let failed = answers.iter().filter(|a| a.error.is_some()).count() as u32;
        let score = match count {
            0 => 0.0,
            n => f64::from(correct) / f64::from(n),
        };
        Self {
            name,
            kind,
            beside: None,
            concurrency: 0,
            count,
            correct,
            score,
            stderr: stderr(score, count),
            failed,
            seconds: 0.0,
            interrupted: false,
            error: None,
            program: None,
            figures: Default::default(),
            answers,
        }
    }
}

/// The standard error of a proportion `p` over `n` items (lm-eval's sample form).
pub fn stderr(p: f64, n: u32) -> f64 {
    match n {
        0 | 1 => 0.0,
        n => (p * (1.0 - p) / f64::from(n - 1)).sqrt(),
    }
}

/// A model's text cut to what a result keeps.
pub fn kept(text: &str) -> String {
    match text.char_indices().nth(TEXT_KEPT) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_set_parses_and_bad_lines_are_named() {
        let items = built_in("arithmetic").unwrap();
        assert_eq!(items.len(), 100);
        assert_eq!(items[0].id, "arithmetic-001");
        let e = parse_set(
            "{\"prompt\":\"a\",\"answer\":\"1\"}\n{\"prompt\":\"b\"}\n",
            "x.jsonl",
        )
        .unwrap_err();
        assert!(e.starts_with("x.jsonl:2: missing field `answer`"), "{e}");
        let e = parse_set("{\"prompt\":\"a\",\"answer\":[1]}\n", "y").unwrap_err();
        assert!(
            e.contains("y:1: `answer` must be a string or a number"),
            "{e}"
        );
        assert!(built_in("gsm9k")
            .unwrap_err()
            .contains("the sets are arithmetic"));
        let n = parse_set("{\"prompt\":\"a\",\"answer\":7,\"id\":3}", "z").unwrap();
        assert_eq!((n[0].id.as_str(), n[0].answer.as_str()), ("3", "7"));
    }

    #[test]
    fn the_answer_key_is_wrong_on_exactly_the_share_it_is_asked_to_be() {
        let items = built_in("arithmetic").unwrap();
        for (rate, first, wrong) in [(0.0, 100, 0), (0.2, 100, 20), (0.2, 40, 8), (0.25, 30, 7)] {
            let key = AnswerKey::new(&items, rate);
            let bad = items[..first]
                .iter()
                .filter(|it| {
                    let said = key.answer(&it.prompt).unwrap();
                    !grade::matches(
                        grade::extract(said, &Default::default()).as_deref(),
                        &it.answer,
                        crate::config::ExtractRule::LastNumber,
                    )
                })
                .count();
            assert_eq!(bad, wrong, "rate {rate} over the first {first}");
        }
        assert_eq!(stderr(0.8, 101), (0.8f64 * 0.2 / 100.0).sqrt());
        assert_eq!(kept(&"é".repeat(600)).chars().count(), TEXT_KEPT + 1);
    }
}
