//! `evals` on a deployment's server: which deployments are graded (InferenceMAX's rule by
//! default), each task's items asked `concurrency` at a time (the built-in grader) or handed to
//! lm-eval, the scores attached to the deployment's last result (and its index entry). Run
//! after the points on an idle server, or beside the last point (`under_load`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::client::{self, Endpoint};
use crate::config::{EvalApi, EvalDeployments, EvalTask, Evals, Experiment, Resolved};
use crate::evals::{self, grade, lm_eval, EvalKind, EvalScore, GradedAnswer, Item};
use crate::ui::say;

/// One task, read before anything starts.
pub struct Task {
    pub name: String,
    pub spec: EvalTask,
    /// The set's items (`limit` applied); `None` for an lm-eval task.
    pub items: Option<Vec<Item>>,
    /// An lm-eval task's `include_path`, resolved against the experiment file.
    pub include_path: Option<PathBuf>,
}

/// What one deployment grades.
pub struct EvalPlan {
    pub settings: Evals,
    pub tasks: Vec<Task>,
}

/// Reads every task of `resolved`'s `evals` (sets, files, include paths), so a bad file is
/// reported before any server is started.
pub fn load(resolved: &Resolved) -> Result<Option<EvalPlan>, String> {
    let Some(settings) = resolved.experiment.evals.clone() else {
        return Ok(None);
    };
    let mut tasks = Vec::new();
    for (i, spec) in settings.tasks.iter().enumerate() {
        let key = format!("evals.tasks[{i}]");
        let items = evals::task_items(spec, resolved, &key)?;
        let include_path = spec.lm_eval.as_ref().and_then(|l| {
            let p = l.include_path.as_ref()?;
            Some(resolved.resolve_path(&format!("{key}.lm_eval.include_path"), p))
        });
        if let Some(p) = include_path.as_ref().filter(|p| !p.is_dir()) {
            return Err(format!(
                "{key}.lm_eval.include_path: {} is not a directory of lm-eval task files",
                p.display()
            ));
        }
        tasks.push(Task {
            name: spec.name(),
            spec: spec.clone(),
            items,
            include_path,
        });
    }
    Ok(Some(EvalPlan { settings, tasks }))
}

/// Which of a matrix's deployments are graded: every one under `all`; under `extremes`, in
/// each group of deployments that differ only in `infrastructure.gpu_count` (tensor
/// parallelism), the lowest and the highest.
pub fn selected(exps: &[&Experiment], rule: EvalDeployments) -> Vec<bool> {
    if rule == EvalDeployments::All || exps.len() < 2 {
        return vec![true; exps.len()];
    }
    let group = |e: &Experiment| {
        let mut e = e.clone();
        e.infrastructure.gpu_count = 0;
        serde_json::to_string(&e).unwrap_or_default()
    };
    let keys: Vec<String> = exps.iter().map(|e| group(e)).collect();
    let mut chosen = vec![false; exps.len()];
    for (i, k) in keys.iter().enumerate() {
        let members: Vec<usize> = (0..exps.len()).filter(|&j| &keys[j] == k).collect();
        if members[0] != i {
            continue;
        }
        let tp = |j: &&usize| exps[**j].infrastructure.gpu_count;
        // The first of the lowest and the first of the highest, in matrix order.
        let lo = members.iter().min_by_key(tp).copied().unwrap_or(i);
        let hi = members.iter().rev().max_by_key(tp).copied().unwrap_or(i);
        chosen[lo] = true;
        chosen[hi] = true;
    }
    chosen
}

/// Where one deployment's tasks are graded.
pub struct Target<'a> {
    pub ep: &'a Endpoint,
    pub model: &'a str,
    /// The point the grading runs beside (`under_load`).
    pub beside: Option<String>,
    pub stop: &'a CancellationToken,
    /// lm-eval's output (a directory per task) and its log, beside the run's results.
    pub lm_eval_dir: PathBuf,
    pub lm_eval_log: PathBuf,
}

/// Grades every task of `plan` on `t`'s server, one task after another.
pub async fn grade_all(plan: &EvalPlan, t: &Target<'_>) -> Vec<EvalScore> {
    let mut out = Vec::new();
    for task in &plan.tasks {
        if t.stop.is_cancelled() {
            break;
        }
        let started = Instant::now();
        let mut s = match &task.items {
            Some(items) => builtin(plan, task, items, t).await,
            None => match run_lm_eval(plan, task, t).await {
                Ok(s) => s,
                Err(why) => {
                    say(format!("eval {}: {why}", task.name));
                    failed(task, why)
                }
            },
        };
        s.seconds = started.elapsed().as_secs_f64();
        s.concurrency = plan.settings.concurrency.max(1);
        s.beside = t.beside.clone();
        if s.graded() {
            say(format!(
                "eval {}: {}/{} correct ({:.1} % ± {:.1}){}",
                s.name,
                s.correct,
                s.count,
                s.score * 100.0,
                s.stderr * 100.0,
                if s.failed > 0 {
                    format!(", {} requests failed", s.failed)
                } else {
                    String::new()
                }
            ));
        }
        out.push(s);
    }
    out
}

/// A task that could not be graded at all: a score of nothing, with why.
fn failed(task: &Task, why: String) -> EvalScore {
    let mut s = EvalScore::of(task.name.clone(), EvalKind::LmEval, Vec::new());
    s.error = Some(why);
    s
}

/// The built-in grader: every item asked (`concurrency` at once, in set order), its answer
/// extracted and matched.
async fn builtin(plan: &EvalPlan, task: &Task, items: &[Item], t: &Target<'_>) -> EvalScore {
    let c = plan.settings.concurrency.max(1) as usize;
    let timeout = plan.settings.request_timeout.as_duration();
    let api = plan.settings.api;
    let asked = stream::iter(items.iter())
        .map(|it| ask(t.ep, api, t.model, &task.spec, it, timeout))
        .buffered(c)
        .take_until(t.stop.cancelled())
        .collect::<Vec<GradedAnswer>>()
        .await;
    let interrupted = asked.len() < items.len();
    let mut s = EvalScore::of(task.name.clone(), EvalKind::BuiltIn, asked);
    s.interrupted = interrupted;
    s
}

/// One item: its prompt sent greedily, its answer read, extracted and matched.
async fn ask(
    ep: &Endpoint,
    api: EvalApi,
    model: &str,
    spec: &EvalTask,
    it: &Item,
    timeout: Duration,
) -> GradedAnswer {
    let (path, body) = match api {
        EvalApi::Chat => (
            "/v1/chat/completions",
            json!({"model": model, "messages": [{"role": "user", "content": it.prompt}],
                   "max_tokens": spec.max_tokens, "temperature": 0, "stream": false}),
        ),
        EvalApi::Completions => (
            "/v1/completions",
            json!({"model": model, "prompt": it.prompt, "max_tokens": spec.max_tokens,
                   "temperature": 0, "stream": false}),
        ),
    };
    let said = match client::http_call(ep, "POST", path, Some(&body), timeout).await {
        Ok((200, bytes)) => text_of(&bytes),
        Ok((status, bytes)) => Err(format!(
            "{path} answered {status}: {}",
            serde_json::from_slice::<Value>(&bytes)
                .map(|v| client::error_message(&v))
                .unwrap_or_else(
                    |_| String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned()
                )
        )),
        Err(e) => Err(e.message),
    };
    let (text, error) = match said {
        Ok(t) => (t, None),
        Err(e) => (String::new(), Some(e)),
    };
    let extracted = grade::extract(&text, &spec.extract);
    GradedAnswer {
        id: it.id.clone(),
        expected: it.answer.clone(),
        correct: error.is_none()
            && grade::matches(extracted.as_deref(), &it.answer, spec.extract.rule),
        extracted,
        text: evals::kept(&text),
        error,
    }
}

/// The answer's text: a chat message's `content` (a reasoning model's reasoning is not the
/// answer), or a completion's `text`.
fn text_of(body: &[u8]) -> Result<String, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("the answer is not JSON: {e}"))?;
    let choice = v
        .pointer("/choices/0")
        .ok_or("the answer has no `choices[0]`")?;
    let text = choice
        .pointer("/message/content")
        .or_else(|| choice.get("text"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    Ok(text.to_string())
}

/// lm-eval on the server: its output in the task's directory under `lm_eval_dir`, its log in
/// `lm_eval_log` (private: it may quote the server's answers), ended with the run's stop.
async fn run_lm_eval(plan: &EvalPlan, task: &Task, t: &Target<'_>) -> Result<EvalScore, String> {
    let Some(spec) = &task.spec.lm_eval else {
        return Err("neither a set, a file nor lm_eval".into());
    };
    let out_dir = t.lm_eval_dir.join(&task.name);
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let log_path = &t.lm_eval_log;
    let ask = lm_eval::Ask {
        task: spec,
        base_url: &t.ep.base_url(),
        model: t.model,
        api: plan.settings.api,
        concurrency: plan.settings.concurrency,
        limit: task.spec.limit,
        max_tokens: task.spec.max_tokens,
        out_dir: &out_dir,
        include_path: task.include_path.clone(),
        timeout_s: plan.settings.request_timeout.as_duration().as_secs(),
    };
    let argv = lm_eval::argv(&ask);
    say(format!("eval {}: {}", task.name, argv.join(" ")));
    run_program(&argv, task.include_path.as_deref(), t, log_path).await?;
    lm_eval::read_output(
        &out_dir,
        &spec.task,
        spec.metric.as_deref(),
        task.name.clone(),
    )
}

/// Runs lm-eval to its end (or the stop), its output appended to `log`.
async fn run_program(
    argv: &[String],
    cwd: Option<&Path>,
    t: &Target<'_>,
    log: &Path,
) -> Result<(), String> {
    let file =
        crate::files::private_log(log, true).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .stdout(file)
        .stderr(err)
        .kill_on_drop(true);
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    if let Some(k) = &t.ep.api_key {
        cmd.env("OPENAI_API_KEY", k.expose());
    }
    let mut child = cmd.spawn().map_err(|e| {
        format!(
            "cannot start `{}`: {e} (install it with `pip install \"lm_eval[api]=={}\"`, or name the program in `lm_eval.command`)",
            argv[0],
            lm_eval::PINNED
        )
    })?;
    let status = tokio::select! {
        s = child.wait() => s.map_err(|e| e.to_string())?,
        _ = t.stop.cancelled() => {
            let _ = child.kill().await;
            return Err("stopped".into());
        }
    };
    match status.success() {
        true => Ok(()),
        false => Err(format!(
            "lm-eval exited with {status}; its output is in {}",
            log.display()
        )),
    }
}

/// How long grading may take, for the cost estimate: every item's whole answer at the
/// estimate's assumed decode speed per stream, `concurrency` streams at once; an lm-eval task
/// without a `limit` counts as 1 000 items.
pub fn expected_duration(plan: &EvalPlan) -> Duration {
    let per_stream = crate::workload::ASSUMED_TOKENS_PER_S_PER_STREAM;
    let streams = f64::from(plan.settings.concurrency.max(1));
    let secs: f64 = plan
        .tasks
        .iter()
        .map(|t| {
            let items = match &t.items {
                Some(items) => items.len() as f64,
                None => f64::from(t.spec.limit.unwrap_or(1000)),
            };
            items * f64::from(t.spec.max_tokens) / per_stream / streams
        })
        .sum();
    Duration::from_secs_f64(secs)
}

/// The share of a deployment's work its evals add, for a line of the plan.
pub fn describe(plan: &EvalPlan) -> String {
    let tasks: Vec<String> = plan
        .tasks
        .iter()
        .map(|t| match &t.items {
            Some(items) => format!("{} ({} items)", t.name, items.len()),
            None => format!("{} (lm-eval)", t.name),
        })
        .collect();
    let when = match plan.settings.under_load {
        true => "beside the last point",
        false => "after the points",
    };
    format!("{} {when}", tasks.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_and_highest_tensor_parallelism_of_each_group_are_graded() {
        let mk = |tp: u32, gpu: &str| {
            let mut e = Experiment::default();
            e.infrastructure.gpu_count = tp;
            e.infrastructure.gpu_type = Some(gpu.into());
            e
        };
        let exps = [
            mk(1, "H100"),
            mk(2, "H100"),
            mk(8, "H100"),
            mk(4, "B200"),
            mk(8, "B200"),
            mk(4, "MI300X"),
        ];
        let refs: Vec<&Experiment> = exps.iter().collect();
        assert_eq!(
            selected(&refs, EvalDeployments::Extremes),
            [true, false, true, true, true, true]
        );
        assert_eq!(selected(&refs, EvalDeployments::All), [true; 6]);
        assert_eq!(selected(&refs[..1], EvalDeployments::Extremes), [true]);
        let same = [mk(2, "H100"), mk(2, "H100"), mk(2, "H100")];
        let refs: Vec<&Experiment> = same.iter().collect();
        assert_eq!(
            selected(&refs, EvalDeployments::Extremes),
            [true, false, false]
        );
    }

    #[test]
    fn grading_time_is_in_the_estimate_at_the_assumed_decode_speed() {
        let task = |items: Option<usize>, limit: Option<u32>| Task {
            name: "t".into(),
            spec: EvalTask {
                limit,
                max_tokens: 100,
                ..EvalTask::default()
            },
            items: items.map(|n| {
                vec![
                    Item {
                        id: String::new(),
                        prompt: String::new(),
                        answer: String::new()
                    };
                    n
                ]
            }),
            include_path: None,
        };
        let plan = EvalPlan {
            settings: Evals {
                concurrency: 10,
                ..Evals::default()
            },
            // 200 items × 100 tokens / 20 tok/s / 10 streams = 100 s; an lm-eval task of
            // 50 items, 25 s; one without a limit, 1 000 items: 500 s.
            tasks: vec![
                task(Some(200), None),
                task(None, Some(50)),
                task(None, None),
            ],
        };
        assert_eq!(expected_duration(&plan), Duration::from_secs(625));
    }

    #[test]
    fn a_chat_answer_is_its_content_and_a_completion_its_text() {
        let chat =
            br#"{"choices":[{"message":{"role":"assistant","content":"42","reasoning":"hmm"}}]}"#;
        assert_eq!(text_of(chat).unwrap(), "42");
        assert_eq!(text_of(br#"{"choices":[{"text":" 7"}]}"#).unwrap(), " 7");
        assert_eq!(
            text_of(br#"{"choices":[{"message":{"content":null}}]}"#).unwrap(),
            ""
        );
        assert!(text_of(b"{}").unwrap_err().contains("choices[0]"));
    }
}
