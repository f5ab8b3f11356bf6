//! lm-eval (EleutherAI's harness, PyPI `lm_eval[api]`, pinned to [`PINNED`]) against a
//! deployment's server: its `local-chat-completions` (with `--apply_chat_template`) or
//! `local-completions` model pointed at the server's URL, its results and samples read back
//! into an [`EvalScore`]. The server's key goes in the child's environment
//! (`OPENAI_API_KEY`, which lm-eval's OpenAI-compatible models read), never on its command line.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{kept, EvalKind, EvalScore, GradedAnswer};
use crate::config::{EvalApi, LmEvalTask};

/// The lm-eval release the command line and the output reader were written against.
pub const PINNED: &str = "0.4.13";

/// What one lm-eval run is given.
pub struct Ask<'a> {
    pub task: &'a LmEvalTask,
    /// The server's base URL (`http://host:port`, no `/v1`).
    pub base_url: &'a str,
    pub model: &'a str,
    pub api: EvalApi,
    pub concurrency: u32,
    pub limit: Option<u32>,
    pub max_tokens: u32,
    /// Where lm-eval writes its results and samples.
    pub out_dir: &'a Path,
    /// `include_path`, resolved against the experiment file.
    pub include_path: Option<PathBuf>,
    pub timeout_s: u64,
}

/// The command line: the program (`command`, default `lm_eval`), `run`, the model and its
/// arguments, the task, and the user's `args` last.
pub fn argv(a: &Ask) -> Vec<String> {
    let mut v = match a.task.command.is_empty() {
        true => vec!["lm_eval".to_string()],
        false => a.task.command.clone(),
    };
    let (model, path) = match a.api {
        EvalApi::Chat => ("local-chat-completions", "/v1/chat/completions"),
        EvalApi::Completions => ("local-completions", "/v1/completions"),
    };
    let mut model_args = format!(
        "model={},base_url={}{path},num_concurrent={},max_retries=1,timeout={},tokenized_requests=False",
        a.model,
        a.base_url.trim_end_matches('/'),
        a.concurrency.max(1),
        a.timeout_s.max(1),
    );
    if a.api == EvalApi::Completions {
        // No tokenizer download: the server counts its own tokens.
        model_args.push_str(",tokenizer_backend=None");
    }
    v.extend(
        ["run", "--model", model, "--model_args", &model_args]
            .iter()
            .map(|s| s.to_string()),
    );
    if a.api == EvalApi::Chat {
        v.push("--apply_chat_template".into());
    }
    v.extend(["--tasks".into(), a.task.task.clone()]);
    if let Some(p) = &a.include_path {
        v.extend(["--include_path".into(), p.display().to_string()]);
    }
    if let Some(n) = a.limit {
        v.extend(["--limit".into(), n.to_string()]);
    }
    if let Some(n) = a.task.num_fewshot {
        v.extend(["--num_fewshot".into(), n.to_string()]);
    }
    v.extend([
        "--gen_kwargs".into(),
        format!("max_gen_toks={},temperature=0", a.max_tokens),
        "--output_path".into(),
        a.out_dir.display().to_string(),
        "--log_samples".into(),
    ]);
    v.extend(a.task.args.iter().cloned());
    v
}

/// The newest file under `dir` (any depth) whose name starts with `prefix` and ends `.json`
/// or `.jsonl`.
fn newest(dir: &Path, prefix: &str) -> Option<PathBuf> {
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).ok()?.flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with(prefix) || !(name.ends_with(".json") || name.ends_with(".jsonl")) {
                continue;
            }
            let t = entry.metadata().and_then(|m| m.modified()).ok()?;
            if best.as_ref().is_none_or(|(bt, _)| t > *bt) {
                best = Some((t, p));
            }
        }
    }
    best.map(|(_, p)| p)
}

/// The score `name` gets from lm-eval's output in `dir`: the task's `metric` (default
/// `exact_match`, under the first filter that reports it), its stderr, every other figure,
/// and the graded samples.
pub fn read_output(
    dir: &Path,
    task: &str,
    metric: Option<&str>,
    name: String,
) -> Result<EvalScore, String> {
    let results = newest(dir, "results_")
        .ok_or_else(|| format!("lm-eval wrote no results_*.json under {}", dir.display()))?;
    let text = crate::files::read_text(&results, 256 << 20, "lm-eval's results")
        .map_err(|e| format!("{}: {e}", results.display()))?;
    let doc: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", results.display()))?;
    let figures: std::collections::BTreeMap<String, f64> = doc
        .pointer(&format!("/results/{task}"))
        .and_then(Value::as_object)
        .ok_or_else(|| format!("{}: no results for task `{task}`", results.display()))?
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
        .collect();
    let want = metric.unwrap_or("exact_match");
    let key = figures
        .keys()
        .find(|k| *k == want || k.split_once(',').is_some_and(|(m, _)| m == want))
        .cloned()
        .ok_or_else(|| {
            let have: Vec<&str> = figures
                .keys()
                .map(String::as_str)
                .filter(|k| !k.contains("_stderr"))
                .collect();
            format!(
                "lm-eval's results for `{task}` have no `{want}`; they have {}",
                have.join(", ")
            )
        })?;
    let (metric_name, filter) = key.split_once(',').unwrap_or((key.as_str(), ""));
    let stderr_key = match filter {
        "" => format!("{metric_name}_stderr"),
        f => format!("{metric_name}_stderr,{f}"),
    };
    let answers = match newest(dir, &format!("samples_{task}_")) {
        Some(p) => samples(&p, metric_name)?,
        None => Vec::new(),
    };
    let mut s = EvalScore::of(name, EvalKind::LmEval, answers);
    let effective = doc
        .pointer(&format!("/n-samples/{task}/effective"))
        .and_then(Value::as_u64);
    if let Some(n) = effective {
        s.count = n as u32;
    }
    s.score = figures[&key];
    s.stderr = figures.get(&stderr_key).copied().unwrap_or(s.stderr);
    s.correct = (s.score * f64::from(s.count)).round() as u32;
    s.program = doc
        .get("lm_eval_version")
        .and_then(Value::as_str)
        .map(|v| format!("lm_eval {v}"));
    s.figures = figures;
    Ok(s)
}

/// lm-eval's per-sample lines as graded answers.
fn samples(path: &Path, metric: &str) -> Result<Vec<GradedAnswer>, String> {
    let text = crate::files::read_text(path, 1 << 30, "lm-eval's samples")
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: Value =
            serde_json::from_str(line).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?;
        let s = |p: &str| {
            v.pointer(p).map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| x.to_string())
            })
        };
        out.push(GradedAnswer {
            id: s("/doc/id").or_else(|| s("/doc_id")).unwrap_or_default(),
            expected: s("/target").unwrap_or_default(),
            extracted: s("/filtered_resps/0").filter(|x| x != "[invalid]"),
            correct: v.get(metric).and_then(Value::as_f64) == Some(1.0),
            text: kept(&s("/resps/0/0").unwrap_or_default()),
            error: None,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_points_lm_eval_at_the_server() {
        let task = LmEvalTask {
            task: "gsm8k".into(),
            num_fewshot: Some(5),
            args: vec!["--seed".into(), "1".into()],
            ..Default::default()
        };
        let out = Path::new("/r/evals");
        let mut ask = Ask {
            task: &task,
            base_url: "http://10.0.0.2:8000/",
            model: "meta-llama/Llama-3.1-8B-Instruct",
            api: EvalApi::Chat,
            concurrency: 16,
            limit: Some(100),
            max_tokens: 256,
            out_dir: out,
            include_path: None,
            timeout_s: 120,
        };
        assert_eq!(
            argv(&ask).join(" "),
            "lm_eval run --model local-chat-completions --model_args model=meta-llama/Llama-3.1-8B-Instruct,base_url=http://10.0.0.2:8000/v1/chat/completions,num_concurrent=16,max_retries=1,timeout=120,tokenized_requests=False --apply_chat_template --tasks gsm8k --limit 100 --num_fewshot 5 --gen_kwargs max_gen_toks=256,temperature=0 --output_path /r/evals --log_samples --seed 1"
        );
        ask.api = EvalApi::Completions;
        ask.include_path = Some("/x/tasks".into());
        let v = argv(&ask).join(" ");
        assert!(v.contains("--model local-completions --model_args model=meta-llama/Llama-3.1-8B-Instruct,base_url=http://10.0.0.2:8000/v1/completions,"), "{v}");
        assert!(
            v.contains(",tokenizer_backend=None --tasks gsm8k --include_path /x/tasks"),
            "{v}"
        );
        assert!(!v.contains("--apply_chat_template"));
    }

    #[test]
    fn results_and_samples_are_read_back() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("m");
        std::fs::create_dir(&m).unwrap();
        std::fs::write(
            m.join("results_2026-12-06T10-00-00.json"),
            r#"{"results":{"t":{"alias":"t","exact_match,flexible":0.5,"exact_match_stderr,flexible":0.35}},"n-samples":{"t":{"original":9,"effective":2}},"lm_eval_version":"0.4.13"}"#,
        )
        .unwrap();
        std::fs::write(
            m.join("samples_t_2026-12-06T10-00-00.jsonl"),
            "{\"doc_id\":0,\"doc\":{\"id\":\"a\"},\"target\":\"4\",\"resps\":[[\"it is 4\"]],\"filtered_resps\":[\"4\"],\"exact_match\":1.0}\n{\"doc_id\":1,\"doc\":{},\"target\":\"5\",\"resps\":[[\"no\"]],\"filtered_resps\":[\"[invalid]\"],\"exact_match\":0.0}\n",
        )
        .unwrap();
        let s = read_output(d.path(), "t", None, "t".into()).unwrap();
        assert_eq!((s.count, s.correct, s.score, s.stderr), (2, 1, 0.5, 0.35));
        assert_eq!(s.answers[0].id, "a");
        assert_eq!(s.answers[1].id, "1");
        assert_eq!(s.answers[1].extracted, None);
        assert!(s.answers[0].correct && !s.answers[1].correct);
        assert_eq!(s.program.as_deref(), Some("lm_eval 0.4.13"));
        let e = read_output(d.path(), "t", Some("acc"), "t".into()).unwrap_err();
        assert!(
            e.contains("have no `acc`; they have exact_match,flexible"),
            "{e}"
        );
        let e = read_output(d.path(), "u", None, "u".into()).unwrap_err();
        assert!(e.contains("no results for task `u`"), "{e}");
    }
}
