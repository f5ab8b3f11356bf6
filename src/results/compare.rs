//! `compare A.json B.json [C.json …]`: every summary figure of each file against the first,
//! with the change, its direction (lower latency and higher throughput are better), and
//! whether it is more than noise.
//!
//! Noise: a 95 % bootstrap confidence interval of the difference of each statistic (B − A),
//! from 1 000 resamples (seeded, so a verdict is reproducible) of the per-request values —
//! TTFT, TPOT, E2EL per request, ITL per gap — or, for throughputs, of the per-second buckets.
//! A side with more than 20 000 values is bootstrapped from an evenly spaced subsample of
//! 20 000, which widens the interval (the verdict errs towards "within noise"). Throughputs
//! need at least five whole seconds per run (the last, partial, second is left out). A figure is
//! better or worse only when the interval excludes zero *and* the change is at least the
//! threshold; otherwise it is within noise. Without per-request data (a vLLM file saved
//! without `--save-detailed`, a summary-only file) the threshold alone decides, and the
//! verdict says so.
//!
//! Reads this tool's result files and `vllm bench serve --save-result` files (old
//! `request_goodput:` and new `request_goodput` keys; `ttfts`/`itls` in seconds).

use std::path::{Path, PathBuf};

use rand::{RngCore, SeedableRng};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{ResultsError, Summary};

/// One file, reduced to what comparing needs.
#[derive(Debug, Default)]
pub struct Loaded {
    pub path: PathBuf,
    /// `llm-inf-bench` or `vllm`.
    pub format: &'static str,
    pub summary: Summary,
    /// Per-request values (ms): ttft, tpot, e2el; itl per gap.
    pub ttft: Vec<f64>,
    pub tpot: Vec<f64>,
    pub itl: Vec<f64>,
    pub e2el: Vec<f64>,
    /// Time to first output token, where a stream reasoned (else its TTFT).
    pub ttfo: Vec<f64>,
    /// TTFT and E2EL of each turn index (conversations).
    pub by_turn: std::collections::BTreeMap<u32, (Vec<f64>, Vec<f64>)>,
    /// Per-second completed requests and output tokens.
    pub req_per_s: Vec<f64>,
    pub tok_per_s: Vec<f64>,
    /// What the run was: model, lengths, load, hardware (for the "differs" warning).
    pub facts: Vec<(&'static str, String)>,
    /// Graded tasks: (name, score, its standard error).
    pub evals: Vec<(String, f64, f64)>,
}

fn floats(v: Option<&Value>) -> Vec<f64> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

fn fact<T: ToString>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "-".into())
}

/// Which format a file is in, from its top-level keys alone.
#[derive(Deserialize)]
struct Sniff {
    summary: Option<IgnoredAny>,
    request_throughput: Option<IgnoredAny>,
}

/// Reads one result file of either format: ours through the typed reader
/// (`results::read`), vLLM's by its documented keys.
pub fn load(path: &Path) -> Result<Loaded, ResultsError> {
    let text = super::read_result_text(path)?;
    parse(path, &text)
}

/// [`load`] on text already read; `path` names it in errors.
pub fn parse(path: &Path, text: &str) -> Result<Loaded, ResultsError> {
    let parse_err = |message: String| ResultsError::Parse {
        path: path.to_path_buf(),
        message,
    };
    let sniff: Sniff = serde_json::from_str(text).map_err(|e| parse_err(e.to_string()))?;
    if sniff.summary.is_some() {
        let r: Lean = serde_json::from_str(text).map_err(|e| parse_err(e.to_string()))?;
        load_ours(path, r)
    } else if sniff.request_throughput.is_some() {
        let obj: Map<String, Value> =
            serde_json::from_str(text).map_err(|e| parse_err(e.to_string()))?;
        Ok(load_vllm(path, &obj))
    } else {
        Err(parse_err(
            "neither an llm-inf-bench result (no `summary`) nor a `vllm bench serve --save-result` file (no `request_throughput`)".into(),
        ))
    }
}

/// What `compare` reads of one of our result files: the figures, the facts, and the records'
/// columns (`results::columns`); every other key is skipped unread.
#[derive(Deserialize)]
struct Lean {
    summary: Summary,
    #[serde(default)]
    time_series: Vec<super::Bucket>,
    #[serde(default)]
    config: Value,
    environment: super::Environment,
    #[serde(default)]
    requests: Vec<super::columns::Row>,
    #[serde(default)]
    requests_file: Option<String>,
    #[serde(default)]
    evals: Vec<crate::evals::EvalScore>,
}

fn load_ours(path: &Path, r: Lean) -> Result<Loaded, ResultsError> {
    let mut cols = match &r.requests_file {
        Some(name) => super::columns::side_file(&super::side_file_path(path, name)?)?,
        None => super::columns::Columns::default(),
    };
    for row in r.requests {
        cols.add(row);
    }
    let mut l = Loaded {
        path: path.to_path_buf(),
        format: "llm-inf-bench",
        summary: r.summary,
        ttft: cols.ttft,
        tpot: cols.tpot,
        itl: cols.itl,
        e2el: cols.e2el,
        ttfo: cols.ttfo,
        by_turn: cols.by_turn,
        evals: r
            .evals
            .iter()
            .filter(|e| e.graded())
            .map(|e| (e.name.clone(), e.score, e.stderr))
            .collect(),
        ..Loaded::default()
    };
    for b in &r.time_series {
        l.req_per_s.push(b.completed as f64);
        l.tok_per_s.push(b.output_tokens as f64);
    }
    let f = super::RunFacts::deserialize(&r.config).unwrap_or_default();
    let (w, env) = (&f.workload, &r.environment);
    l.facts = vec![
        ("model", fact(f.model.id)),
        ("framework", fact(f.framework.kind)),
        ("dataset", fact(w.dataset.kind.clone())),
        ("input_len", fact(w.dataset.input_len)),
        ("output_len", fact(w.dataset.output_len)),
        ("pattern", fact(w.pattern.clone())),
        ("concurrency", fact(w.concurrency)),
        ("rate", fact(w.rate)),
        ("gpu", fact(env.gpu_type.clone())),
        ("gpu_count", fact(Some(env.gpu_count))),
        ("image", fact(env.image.clone())),
    ];
    Ok(l)
}

fn load_vllm(path: &Path, obj: &Map<String, Value>) -> Loaded {
    let mut summary = Summary::default();
    for (k, v) in obj {
        // Older vLLM wrote the goodput key with a trailing colon.
        let k = if k == "request_goodput:" {
            "request_goodput"
        } else {
            k
        };
        if let Some(x) = v.as_f64() {
            summary.set(k, x);
        }
    }
    let mut l = Loaded {
        path: path.to_path_buf(),
        format: "vllm",
        summary,
        ..Loaded::default()
    };
    let ttfts = floats(obj.get("ttfts"));
    let outs = floats(obj.get("output_lens"));
    let errors: Vec<bool> = obj
        .get("errors")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| e.as_str().is_some_and(|s| !s.is_empty()))
                .collect()
        })
        .unwrap_or_default();
    let itls: Vec<Vec<f64>> = obj
        .get("itls")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|x| floats(Some(x))).collect())
        .unwrap_or_default();
    for (i, t) in ttfts.iter().enumerate() {
        if errors.get(i).copied().unwrap_or(false) {
            continue;
        }
        l.ttft.push(t * 1e3);
        if let Some(gaps) = itls.get(i) {
            let sum: f64 = gaps.iter().sum();
            l.e2el.push((t + sum) * 1e3);
            l.itl.extend(gaps.iter().map(|g| g * 1e3));
            let n = outs.get(i).copied().unwrap_or(0.0);
            if n > 1.0 {
                l.tpot.push(sum * 1e3 / (n - 1.0));
            }
        }
    }
    let text = |k: &str| match obj.get(k) {
        None | Some(Value::Null) => "-".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(x) => x.to_string(),
    };
    l.facts = vec![
        ("model", text("model_id")),
        ("concurrency", text("max_concurrency")),
        ("rate", text("request_rate")),
        ("prompts", text("num_prompts")),
    ];
    l
}

/// Which way is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Lower,
    Higher,
    Neutral,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Better,
    Worse,
    WithinNoise,
    /// Neutral figures (counts, durations): shown, never judged.
    Info,
    /// Changed by at least the threshold, but this figure has no data to judge noise by (ITL
    /// without `output.detail: full`; a throughput over fewer than 5 whole seconds) while
    /// others do. Never counted as a regression.
    Unjudged,
}

/// One figure of one comparison.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub metric: String,
    pub a: Option<f64>,
    pub b: Option<f64>,
    pub delta: Option<f64>,
    pub delta_pct: Option<f64>,
    pub direction: Direction,
    /// 95 % bootstrap interval of B − A, when per-request data allowed one.
    pub ci: Option<(f64, f64)>,
    pub verdict: Verdict,
}

/// `B` against the baseline `A`.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub a: PathBuf,
    pub b: PathBuf,
    pub rows: Vec<Row>,
    /// Facts on which the two runs differ: (what, A's, B's).
    pub differences: Vec<(String, String, String)>,
}

impl Comparison {
    pub fn regressions(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.verdict == Verdict::Worse)
            .count()
    }
}

const RESAMPLES: usize = 1000;
/// Whole per-second buckets a throughput verdict needs on each side.
const MIN_SECONDS: usize = 5;
const MAX_VALUES: usize = 20_000;

/// What a statistic is computed from.
#[derive(Clone, Copy)]
enum Stat {
    Mean,
    Percentile(f64),
    /// 1000 / mean: tokens per second per user from TPOT in ms.
    PerSecondOfMean,
    /// 1000 / median.
    PerSecondOfMedian,
}

fn stat(xs: &mut [f64], s: Stat) -> f64 {
    match s {
        Stat::Mean => xs.iter().sum::<f64>() / xs.len().max(1) as f64,
        Stat::PerSecondOfMean => 1000.0 / stat(xs, Stat::Mean),
        Stat::PerSecondOfMedian => 1000.0 / stat(xs, Stat::Percentile(50.0)),
        Stat::Percentile(p) => {
            // numpy's linear interpolation, by selection instead of a full sort.
            let rank = (p / 100.0).clamp(0.0, 1.0) * (xs.len() - 1) as f64;
            let lo = rank.floor() as usize;
            let frac = rank - lo as f64;
            let (_, x_lo, rest) = xs.select_nth_unstable_by(lo, f64::total_cmp);
            let x_lo = *x_lo;
            if frac == 0.0 || rest.is_empty() {
                x_lo
            } else {
                let x_hi = rest.iter().copied().fold(f64::INFINITY, f64::min);
                x_lo + (x_hi - x_lo) * frac
            }
        }
    }
}

fn thin(xs: &[f64]) -> Vec<f64> {
    if xs.len() <= MAX_VALUES {
        return xs.to_vec();
    }
    let step = xs.len() as f64 / MAX_VALUES as f64;
    (0..MAX_VALUES)
        .map(|i| xs[(i as f64 * step) as usize])
        .collect()
}

/// 95 % bootstrap interval of stat(B) − stat(A).
/// A uniform index below `n` (≤ `MAX_VALUES`) from one 32-bit draw, by Lemire's multiply:
/// a bias under n / 2³² (5·10⁻⁶ here), a third of `random_range`'s cost.
fn index(rng: &mut rand_chacha::ChaCha8Rng, n: usize) -> usize {
    ((u64::from(rng.next_u32()) * n as u64) >> 32) as usize
}

fn bootstrap(a: &[f64], b: &[f64], s: Stat, seed: u64) -> Option<(f64, f64)> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let (a, b) = (thin(a), thin(b));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut ra = vec![0.0; a.len()];
    let mut rb = vec![0.0; b.len()];
    let mut diffs: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            for x in ra.iter_mut() {
                *x = a[index(&mut rng, a.len())];
            }
            for x in rb.iter_mut() {
                *x = b[index(&mut rng, b.len())];
            }
            stat(&mut rb, s) - stat(&mut ra, s)
        })
        .collect();
    diffs.sort_by(f64::total_cmp);
    let p = |q| crate::metrics::summary::percentile(&diffs, q);
    Some((p(2.5)?, p(97.5)?))
}

/// The figures compared, in order, with their direction: every figure either file has, with
/// the percentiles both report.
fn figures(a: &Loaded, b: &Loaded) -> Vec<(String, Direction)> {
    let names = a.summary.names();
    let bn = b.summary.names();
    names
        .into_iter()
        .filter(|k| !k.starts_with('p') || bn.contains(k))
        .filter(|k| a.summary.figure(k).is_some() || b.summary.figure(k).is_some())
        .map(|k| {
            let d = direction(&k);
            (k, d)
        })
        .collect()
}

/// Lower latency and fewer failures are better; more throughput is; counts are neutral.
fn direction(metric: &str) -> Direction {
    match metric {
        "completed" | "duration" | "duration_s" | "total_inputs" => Direction::Neutral,
        "mean_gpu_util_pct" | "peak_gpu_memory_pct" => Direction::Neutral,
        "failed" => Direction::Lower,
        m if m.ends_with("_ms") || m.starts_with("usd_per_") => Direction::Lower,
        _ => Direction::Higher,
    }
}

/// `p99_ttft_ms` → the per-request data and statistic that reproduce it.
fn source<'a>(l: &'a Loaded, metric: &str) -> Option<(&'a [f64], Stat)> {
    if let Some((t, figure)) = crate::metrics::summary::turn_figure(metric) {
        let (ttft, e2el) = l.by_turn.get(&t)?;
        let (stat, rest) = stat_of(figure)?;
        return match rest {
            "ttft_ms" => Some((ttft, stat)),
            "e2el_ms" => Some((e2el, stat)),
            _ => None,
        };
    }
    match metric {
        "mean_interactivity_tok_s_user" => return Some((&l.tpot, Stat::PerSecondOfMean)),
        "median_interactivity_tok_s_user" => return Some((&l.tpot, Stat::PerSecondOfMedian)),
        _ => {}
    }
    let (stat, rest) = if let Some(r) = metric.strip_prefix("mean_") {
        (Stat::Mean, r)
    } else if let Some(r) = metric.strip_prefix("median_") {
        (Stat::Percentile(50.0), r)
    } else if let Some(r) = metric.strip_prefix('p') {
        let (num, r) = r.split_once('_')?;
        let p: f64 = num.replacen('_', ".", 1).parse().ok()?;
        (Stat::Percentile(p), r)
    } else {
        // The last per-second bucket is partial by construction: it would only add noise. Fewer
        // than five whole seconds say too little about the spread to judge by.
        let whole = |v: &'a [f64]| -> Option<&'a [f64]> {
            (v.len() > MIN_SECONDS).then(|| &v[..v.len() - 1])
        };
        return match metric {
            // Texts per request are fixed: texts/s follow requests/s.
            "request_throughput" | "request_goodput" | "input_item_throughput" => {
                Some((whole(&l.req_per_s)?, Stat::Mean))
            }
            "output_throughput" | "total_token_throughput" | "output_throughput_per_gpu" => {
                Some((whole(&l.tok_per_s)?, Stat::Mean))
            }
            _ => None,
        };
    };
    let data: &[f64] = match rest {
        "ttft_ms" => &l.ttft,
        "tpot_ms" => &l.tpot,
        "itl_ms" => &l.itl,
        "e2el_ms" => &l.e2el,
        "ttfo_ms" => &l.ttfo,
        _ => return None,
    };
    Some((data, stat))
}

/// The bootstrap interval of `metric`'s change (B − A), the `i`-th figure (its seed), on the
/// summary figure's own scale; `None` without per-request (or per-second) data.
fn interval(a: &Loaded, b: &Loaded, metric: &str, i: usize) -> Option<(f64, f64)> {
    let ((da, s), (db, _)) = (source(a, metric)?, source(b, metric)?);
    // The interval is of the statistic's own scale; throughputs are judged on the per-second
    // mean and rescaled to the summary figure.
    let raw = bootstrap(da, db, s, 0x5eed + i as u64);
    match (raw, source_scale(a, metric, da, s)) {
        (Some((lo, hi)), Some(scale)) => Some((lo * scale, hi * scale)),
        (r, _) => r,
    }
}

/// `f` over every item, on up to `available_parallelism` threads; results in item order.
fn in_parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(usize, &T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut out: Vec<(usize, R)> = std::thread::scope(|sc| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                sc.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        mine.push((i, f(i, item)));
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

/// `p99_ttft_ms` → (99th percentile, `ttft_ms`); `mean_…` and `median_…` likewise.
fn stat_of(figure: &str) -> Option<(Stat, &str)> {
    if let Some(r) = figure.strip_prefix("mean_") {
        return Some((Stat::Mean, r));
    }
    if let Some(r) = figure.strip_prefix("median_") {
        return Some((Stat::Percentile(50.0), r));
    }
    let (num, r) = figure.strip_prefix('p')?.split_once('_')?;
    Some((Stat::Percentile(num.replacen('_', ".", 1).parse().ok()?), r))
}

/// Compares `b` with the baseline `a`; `threshold` is a fraction (0.05 = 5 %).
pub fn compare(a: &Loaded, b: &Loaded, threshold: f64) -> Comparison {
    let mut rows = Vec::new();
    let figs = figures(a, b);
    // The bootstraps are most of the work (a million draws each): spread over the cores.
    let cis = in_parallel(&figs, |i, (metric, _)| interval(a, b, metric, i));
    for ((metric, direction), ci) in figs.into_iter().zip(cis) {
        let va = a.summary.figure(&metric);
        let vb = b.summary.figure(&metric);
        let delta = va.zip(vb).map(|(x, y)| y - x).filter(|d| d.is_finite());
        let delta_pct = match (va, delta) {
            (Some(x), Some(d)) if x != 0.0 => Some(d / x.abs() * 100.0),
            _ => None,
        };
        // No per-request data on either side at all (summary-only files): the threshold is
        // all there is to go by, and the verdict says so.
        // (E2EL: a pooling API's requests have no TTFT.)
        let summary_only = a.e2el.is_empty() || b.e2el.is_empty();
        let verdict = match (direction, delta, delta_pct) {
            (Direction::Neutral, _, _) | (_, None, _) => Verdict::Info,
            (dir, Some(d), pct) => {
                let big = pct.map_or(d != 0.0, |p| p.abs() >= threshold * 100.0);
                let real = match ci {
                    Some((lo, hi)) => lo > 0.0 || hi < 0.0,
                    None => summary_only,
                };
                if !big || (ci.is_some() && !real) {
                    Verdict::WithinNoise
                } else if !real {
                    Verdict::Unjudged
                } else if (d < 0.0) == (dir == Direction::Lower) {
                    Verdict::Better
                } else {
                    Verdict::Worse
                }
            }
        };
        rows.push(Row {
            metric,
            a: va,
            b: vb,
            delta,
            delta_pct,
            direction,
            ci,
            verdict,
        });
    }
    rows.extend(eval_rows(a, b));
    let differences = a
        .facts
        .iter()
        .filter_map(|(k, va)| {
            let vb = b.facts.iter().find(|(kb, _)| kb == k)?.1.clone();
            (*va != vb).then(|| (k.to_string(), va.clone(), vb))
        })
        .collect();
    Comparison {
        a: a.path.clone(),
        b: b.path.clone(),
        rows,
        differences,
    }
}

/// A row per task graded in both runs (`eval:<name>`, the score as a fraction): better or worse
/// when the normal 95 % interval of the difference, from the two standard errors, excludes
/// zero — any real drop in accuracy is a regression, however small against the threshold.
fn eval_rows(a: &Loaded, b: &Loaded) -> Vec<Row> {
    a.evals
        .iter()
        .filter_map(|(name, sa, ea)| {
            let (_, sb, eb) = b.evals.iter().find(|(n, _, _)| n == name)?;
            let d = sb - sa;
            let half = 1.96 * (ea * ea + eb * eb).sqrt();
            let ci = (d - half, d + half);
            let verdict = match (ci.0 > 0.0, ci.1 < 0.0) {
                (true, _) => Verdict::Better,
                (_, true) => Verdict::Worse,
                _ => Verdict::WithinNoise,
            };
            Some(Row {
                metric: format!("eval:{name}"),
                a: Some(*sa),
                b: Some(*sb),
                delta: Some(d),
                delta_pct: (*sa != 0.0).then(|| d / sa * 100.0),
                direction: Direction::Higher,
                ci: Some(ci),
                verdict,
            })
        })
        .collect()
}

/// For throughputs judged on per-second buckets: the factor from the bucket mean to the
/// summary figure (e.g. total tokens include input tokens). `None` for per-request figures.
fn source_scale(l: &Loaded, metric: &str, data: &[f64], s: Stat) -> Option<f64> {
    if !matches!(
        metric,
        "request_throughput"
            | "request_goodput"
            | "input_item_throughput"
            | "output_throughput"
            | "total_token_throughput"
            | "output_throughput_per_gpu"
    ) {
        return None;
    }
    let mut d = data.to_vec();
    let m = stat(&mut d, s);
    let v = l.summary.figure(metric)?;
    (m > 0.0).then(|| v / m)
}

/// Which figures were judged on per-request data.
pub fn has_samples(row: &Row) -> bool {
    row.ci.is_some()
}

fn fmt_num(v: Option<f64>) -> String {
    match v {
        None => "n/a".into(),
        Some(x) if x.abs() >= 1000.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.2}"),
    }
}

/// metric, A, B, Δ, Δ% as printed.
fn cells(r: &Row) -> [String; 5] {
    [
        r.metric.clone(),
        fmt_num(r.a),
        fmt_num(r.b),
        r.delta
            .map(|d| format!("{d:+.2}"))
            .unwrap_or_else(|| "-".into()),
        r.delta_pct
            .map(|p| format!("{p:+.1}%"))
            .unwrap_or_else(|| "-".into()),
    ]
}

fn verdict_text(r: &Row) -> String {
    let base = match r.verdict {
        Verdict::Better => "better",
        Verdict::Worse => "worse",
        Verdict::WithinNoise => "within noise",
        Verdict::Info => "",
        Verdict::Unjudged => "changed (noise not judged)",
    };
    if matches!(r.verdict, Verdict::Better | Verdict::Worse) && r.ci.is_none() {
        format!("{base} (threshold only)")
    } else {
        base.into()
    }
}

/// The comparison as a terminal table (`color`: ANSI green/red for better/worse).
pub fn table(c: &Comparison, color: bool) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(o, "A: {}\nB: {}", c.a.display(), c.b.display());
    for (k, a, b) in &c.differences {
        let _ = writeln!(o, "warning: the runs differ in {k}: A {a}, B {b}");
    }
    let _ = writeln!(
        o,
        "{:<28} {:>12} {:>12} {:>12} {:>9}  verdict",
        "metric", "A", "B", "Δ", "Δ%"
    );
    for r in &c.rows {
        let v = verdict_text(r);
        let v = match (color, r.verdict) {
            (true, Verdict::Better) => format!("\x1b[32m{v}\x1b[0m"),
            (true, Verdict::Worse) => format!("\x1b[31m{v}\x1b[0m"),
            _ => v,
        };
        let [m, a, b, d, p] = cells(r);
        let _ = writeln!(o, "{m:<28} {a:>12} {b:>12} {d:>12} {p:>9}  {v}");
    }
    o
}

/// The comparison as a markdown table, for an issue or a pull request.
pub fn markdown(c: &Comparison) -> String {
    use std::fmt::Write;
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut o = String::new();
    let _ = writeln!(o, "**A** `{}` → **B** `{}`\n", name(&c.a), name(&c.b));
    for (k, a, b) in &c.differences {
        let _ = writeln!(o, "> ⚠️ the runs differ in **{k}**: A `{a}`, B `{b}`\n");
    }
    let _ = writeln!(
        o,
        "| metric | A | B | Δ | Δ% | verdict |\n|---|---:|---:|---:|---:|---|"
    );
    for r in &c.rows {
        let v = match r.verdict {
            Verdict::Better => format!("✅ {}", verdict_text(r)),
            Verdict::Worse => format!("❌ {}", verdict_text(r)),
            _ => verdict_text(r),
        };
        let [m, a, b, d, p] = cells(r);
        let _ = writeln!(o, "| {m} | {a} | {b} | {d} | {p} | {v} |");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_percentile_matches_the_sorted_one() {
        let xs: Vec<f64> = (0..101).map(|i| ((i * 37) % 101) as f64 * 0.5).collect();
        let mut sorted = xs.clone();
        sorted.sort_by(f64::total_cmp);
        for p in [0.0, 1.0, 50.0, 90.0, 99.0, 99.9, 100.0] {
            let mut v = xs.clone();
            let want = crate::metrics::summary::percentile(&sorted, p).unwrap();
            assert!(
                (stat(&mut v, Stat::Percentile(p)) - want).abs() < 1e-12,
                "p{p}"
            );
        }
    }

    #[test]
    fn metric_names_map_to_their_statistic() {
        let l = Loaded {
            ttft: vec![1.0, 2.0],
            ..Loaded::default()
        };
        assert!(matches!(source(&l, "p99_ttft_ms"), Some((_, Stat::Percentile(p))) if p == 99.0));
        assert!(matches!(source(&l, "p99.9_ttft_ms"), Some((_, Stat::Percentile(p))) if p == 99.9));
        assert!(
            matches!(source(&l, "median_ttft_ms"), Some((_, Stat::Percentile(p))) if p == 50.0)
        );
        assert!(matches!(source(&l, "mean_ttft_ms"), Some((_, Stat::Mean))));
        assert!(source(&l, "completed").is_none());
    }
}
