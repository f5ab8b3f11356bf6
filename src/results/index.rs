//! A sweep's index file, `results/{name}-{stamp}.sweep.json`: which points ran, where their
//! result files are, how the sweep ended. Written after every point, so an interrupted sweep
//! keeps what it finished and `run --resume` can skip it.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ResultsError, RunResult, Status};
use crate::config::Experiment;
use crate::workload::sweep::Point;

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct IndexPoint {
    /// The point's key: `c16`, or `vllm-h100/c16` in a deployment matrix.
    pub label: String,
    /// The deployment it ran on, in a matrix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    pub concurrency: Option<u32>,
    pub rate: Option<f64>,
    pub input_len: Option<u32>,
    pub output_len: Option<u32>,
    /// The point's result file, relative to the index.
    pub file: String,
    /// `completed`, `interrupted` or `failed`.
    pub status: String,
    pub termination_reason: String,
    /// Why a failed point failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The deployment's graded tasks, on the point whose result holds them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evals: Vec<IndexEval>,
}

/// One graded task's score, as the index shows it (the answers are in the result).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct IndexEval {
    pub name: String,
    pub score: f64,
    pub stderr: f64,
    pub count: u32,
}

impl IndexEval {
    /// A result file's `evals` as heads read them: the graded tasks' scores only (one that
    /// could not be graded carries an `error`, and its answers are never read).
    pub fn graded_in<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Self>, D::Error> {
        #[derive(Deserialize)]
        struct Written {
            #[serde(flatten)]
            score: IndexEval,
            #[serde(default)]
            error: Option<serde::de::IgnoredAny>,
        }
        Ok(Vec::<Written>::deserialize(d)?
            .into_iter()
            .filter(|w| w.error.is_none())
            .map(|w| w.score)
            .collect())
    }

    /// The tasks that were graded (one that could not be is in the result, with why).
    pub fn of(scores: &[crate::evals::EvalScore]) -> Vec<Self> {
        scores
            .iter()
            .filter(|s| s.graded())
            .map(|s| Self {
                name: s.name.clone(),
                score: s.score,
                stderr: s.stderr,
                count: s.count,
            })
            .collect()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct SweepIndex {
    pub schema_version: u32,
    pub kind: String,
    pub name: String,
    #[serde(with = "chrono::serde::ts_milliseconds")]
    #[schemars(with = "i64")]
    pub started: chrono::DateTime<chrono::Utc>,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// `running` (or killed while running), `interrupted` (stopped by the user), `failed`
    /// (a point failed: see its `error`), `budget_spent` (`max_cost_usd` stopped it: the
    /// points it cut short say so in `termination_reason`; `run --resume` goes on),
    /// `completed` (every planned point completed within its own bounds).
    pub status: String,
    /// Every point's label, in order.
    pub planned: Vec<String>,
    pub points: Vec<IndexPoint>,
    /// A deployment matrix: how each deployment went (its points are in `points`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deployments: Vec<IndexDeployment>,
    /// Capacity searches (`workload.search`), one per deployment: their probes (each also in
    /// `points`) and the answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub searches: Vec<IndexSearch>,
    pub spent_usd: f64,
    pub config: Value,
}

/// A capacity search, as the index records it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct IndexSearch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// The SLO tier this search answers (`search.tiers`), when there are tiers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// `rate`, `concurrency` or `sessions`.
    pub over: String,
    pub percentile: f64,
    pub slo: crate::config::Slo,
    pub tolerance: f64,
    /// In the order they ran.
    pub probes: Vec<IndexProbe>,
    /// `running`, `completed` (an answer, or none in range), `interrupted`.
    pub status: String,
    /// The highest load that met every SLO.
    pub answer: Option<f64>,
    /// The lowest load that did not.
    pub failed_at: Option<f64>,
    /// `precision_reached`, `max_points`, `no_pass_in_range`, `no_failure_in_range`.
    pub reason: Option<String>,
    /// At the answer: requests per second meeting every SLO.
    pub goodput_req_s: Option<f64>,
    /// At the answer, where a price is known.
    pub usd_per_million_output_tokens: Option<f64>,
    /// At the answer: its point's label.
    pub answer_label: Option<String>,
}

impl IndexSearch {
    /// What its loads count: `req/s`, `sessions`, or requests `in flight`.
    pub fn unit(&self) -> &'static str {
        match self.over.as_str() {
            "rate" => "req/s",
            "sessions" => "sessions",
            _ => "in flight",
        }
    }
}

/// One probe of a search.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct IndexProbe {
    pub label: String,
    pub value: f64,
    pub passed: bool,
    /// Worst criterion's measured / limit − 1 (≤ 0 passes); absent when the probe could not be
    /// judged by its latencies (saturated, failed).
    pub margin: Option<f64>,
    pub termination_reason: String,
}

/// The index's (and a deployment's) status when the run's budget stopped it.
pub const BUDGET_SPENT: &str = "budget_spent";

/// How a deployment of a matrix stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentStatus {
    /// Not started.
    Pending,
    Running,
    Completed,
    Interrupted,
    /// The run's budget stopped it.
    BudgetSpent,
    /// It could not be deployed or lost its server (see `error`); the others went on.
    Failed,
}

impl std::fmt::Display for DeploymentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Interrupted => "interrupted",
            Self::BudgetSpent => BUDGET_SPENT,
            Self::Failed => "failed",
        };
        f.write_str(s)
    }
}

/// One deployment of a matrix, as the index records it.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct IndexDeployment {
    pub name: String,
    pub status: DeploymentStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What its server cost, where it was rented.
    pub spent_usd: f64,
}

impl SweepIndex {
    /// A new index for `e`'s points (`planned`: every point's key, in order) and, in a
    /// matrix, its deployments.
    pub fn new(
        e: &Experiment,
        planned: Vec<String>,
        deployments: &[String],
        started: chrono::DateTime<chrono::Utc>,
    ) -> Self {
        Self {
            schema_version: 1,
            kind: "sweep".into(),
            name: e.name.clone(),
            started,
            started_at: started.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            finished_at: None,
            status: "running".into(),
            planned,
            points: Vec::new(),
            deployments: deployments
                .iter()
                .map(|name| IndexDeployment {
                    name: name.clone(),
                    status: DeploymentStatus::Pending,
                    error: None,
                    spent_usd: 0.0,
                })
                .collect(),
            searches: Vec::new(),
            spent_usd: 0.0,
            config: super::redacted_config(e),
        }
    }

    /// The newest unfinished sweep of this experiment in its output directory, and where its
    /// index is. An index of this experiment that cannot be read and is newer than the one
    /// found (or when none is found) is an error naming it: resuming an older sweep past a
    /// broken newer one would silently redo or mix up measured points.
    pub fn resumable(e: &Experiment, planned: &[String]) -> Result<(Self, PathBuf), ResultsError> {
        let dir = &e.output.dir;
        let prefix = format!("{}-", e.name);
        let entries = match std::fs::read_dir(dir) {
            Ok(r) => r.collect::<Vec<_>>(),
            // No output directory yet: nothing was ever started there.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(err) => {
                return Err(ResultsError::Resume(format!(
                    "cannot read {}: {err}",
                    dir.display()
                )))
            }
        };
        let mut found: Vec<(Self, PathBuf)> = Vec::new();
        let mut broken: Vec<(PathBuf, String, std::time::SystemTime)> = Vec::new();
        let paths = entries
            .into_iter()
            .filter_map(|d| d.ok().map(|d| d.path()))
            .filter(|p| {
                p.file_name().is_some_and(|n| {
                    let n = n.to_string_lossy();
                    n.strip_prefix(&prefix)
                        .and_then(|rest| rest.strip_suffix(".sweep.json"))
                        .is_some_and(is_stamp)
                })
            });
        for p in paths {
            let modified = std::fs::metadata(&p)
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            let read = crate::files::read_text(&p, crate::files::MAX_RESULT_BYTES, "a sweep index")
                .map_err(|e| e.to_string());
            match read.and_then(|t| serde_json::from_str::<Self>(&t).map_err(|e| e.to_string())) {
                Ok(i) if i.name != e.name => {}
                Ok(i) => found.push((i, p)),
                Err(why) => broken.push((p, why, modified)),
            }
        }
        found.retain(|(i, _)| i.status != "completed");
        found.sort_by_key(|(i, _)| i.started);
        let newest = found.last().map(|(i, p)| {
            let modified = std::fs::metadata(p)
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (i.started, modified)
        });
        if let Some((p, why, _)) = broken
            .iter()
            .find(|(_, _, m)| newest.is_none_or(|(_, n)| *m >= n))
        {
            return Err(ResultsError::Resume(format!(
                "the sweep index {} cannot be read ({why}); it is newer than any readable one of `{}`. Move it away (or mend it) to resume an older sweep, or run without --resume",
                p.display(),
                e.name
            )));
        }
        let Some((mut idx, path)) = found.pop() else {
            return Err(ResultsError::Resume(format!(
                "no unfinished sweep of `{}` in {}; run without --resume to start one",
                e.name,
                dir.display()
            )));
        };
        if planned != idx.planned {
            return Err(ResultsError::Resume(format!(
                "the sweep of `{}` started at {} had the points [{}]; this experiment has [{}]. Resume with the same sweep, or run without --resume",
                e.name,
                idx.started_at,
                idx.planned.join(", "),
                planned.join(", ")
            )));
        }
        // Points that did not complete are run again.
        idx.points.retain(|p| p.status == "completed");
        for s in &mut idx.searches {
            if s.status != "completed" {
                s.status = "running".into();
            }
        }
        for d in &mut idx.deployments {
            if d.status != DeploymentStatus::Completed {
                d.status = DeploymentStatus::Pending;
                d.error = None;
            }
        }
        idx.status = "running".into();
        idx.finished_at = None;
        Ok((idx, path))
    }

    /// The first result path of the sweep whose index is at `index` (`x.sweep.json` → `x.json`):
    /// every file of a resumed sweep is named from it.
    pub fn base_of(index: &Path) -> PathBuf {
        let name = index
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stem = name.strip_suffix(".sweep.json").unwrap_or(&name);
        index.with_file_name(format!("{stem}.json"))
    }

    pub fn done(&self, key: &str) -> bool {
        self.points.iter().any(|p| p.label == key) || self.search_done(key)
    }

    /// Whether the search slot `key` (`search`, `vllm-h100/search`) has its answer.
    fn search_done(&self, key: &str) -> bool {
        let Some(dep) = key.strip_suffix(crate::workload::sweep::SEARCH) else {
            return false;
        };
        let dep = dep.strip_suffix('/');
        // Every SLO tier of the slot answered (each is recorded, as `running`, when it starts).
        let mut of = self
            .searches
            .iter()
            .filter(|s| s.deployment.as_deref() == dep)
            .peekable();
        of.peek().is_some() && of.all(|s| s.status == "completed")
    }

    /// How the search of deployment `dep` for SLO tier `tier` stands, if it was recorded.
    pub fn search_status(&self, dep: Option<&str>, tier: Option<&str>) -> Option<&str> {
        self.searches
            .iter()
            .find(|s| s.deployment.as_deref() == dep && s.tier.as_deref() == tier)
            .map(|s| s.status.as_str())
    }

    /// Records (or updates) a search's state.
    pub fn search(&mut self, s: IndexSearch) {
        self.searches
            .retain(|x| x.deployment != s.deployment || x.tier != s.tier);
        self.searches.push(s);
    }

    /// The result file of the point `key`, relative to the index (resuming a search replays it).
    pub fn file_of(&self, key: &str) -> Option<&str> {
        self.points
            .iter()
            .find(|p| p.label == key && p.status == "completed")
            .map(|p| p.file.as_str())
    }

    /// Records how a deployment of the matrix stands.
    pub fn deployment(
        &mut self,
        name: &str,
        status: DeploymentStatus,
        error: Option<String>,
        spent_usd: f64,
    ) {
        if let Some(d) = self.deployments.iter_mut().find(|d| d.name == name) {
            d.status = status;
            d.error = error;
            d.spent_usd = spent_usd;
        }
    }

    /// The scores of the point labelled `label` (its result was saved again with them).
    pub fn set_evals(&mut self, label: &str, scores: &[crate::evals::EvalScore]) {
        if let Some(p) = self.points.iter_mut().find(|p| p.label == label) {
            p.evals = IndexEval::of(scores);
        }
    }

    /// Records `pt`'s result, saved at `file`, for an index in `index_dir`.
    pub fn record(&mut self, pt: &Point, file: &Path, index_dir: &Path, r: &RunResult) {
        let key = pt.key();
        self.points.retain(|p| p.label != key);
        self.points.push(IndexPoint {
            label: key,
            deployment: pt.deployment.clone(),
            concurrency: pt.concurrency,
            rate: pt.rate,
            input_len: pt.seq.map(|s| s.0),
            output_len: pt.seq.map(|s| s.1),
            file: relative_to(file, index_dir),
            status: r.status.as_str().into(),
            termination_reason: r.termination_reason.clone(),
            error: r.error.clone(),
            evals: IndexEval::of(&r.evals),
        });
        match r.status {
            Status::Completed => {}
            Status::Interrupted => self.status = "interrupted".into(),
            Status::Failed => self.status = "failed".into(),
        }
    }

    /// The sweep is over (every planned point measured, or stopped; `budget_spent` when the
    /// run's `max_cost_usd` stopped it).
    pub fn finish(&mut self, planned: usize, budget_spent: bool) {
        let completed = |k: &String| {
            self.search_done(k)
                || self
                    .points
                    .iter()
                    .any(|p| &p.label == k && p.status == "completed")
        };
        let complete = self.planned.iter().filter(|k| completed(k)).count();
        let failed = self.points.iter().any(|p| p.status == "failed");
        self.status = match (complete == planned && !budget_spent, failed) {
            (true, _) => "completed".into(),
            (false, true) => "failed".into(),
            (false, false) if budget_spent => BUDGET_SPENT.into(),
            (false, false) => "interrupted".into(),
        };
        self.finished_at =
            Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    }

    /// The index of the sweep whose first result path is `base`.
    pub fn path(base: &Path) -> PathBuf {
        base.with_extension("sweep.json")
    }

    /// Updates the spend and puts the points in sweep order, before the index is saved.
    pub fn prepare_write(&mut self, spent_usd: f64) {
        self.spent_usd = spent_usd;
        // Points in sweep order, whatever order a resumed sweep measured them in.
        let order = |l: &str| {
            self.planned
                .iter()
                .position(|p| p == l)
                .unwrap_or(usize::MAX)
        };
        let mut points = std::mem::take(&mut self.points);
        points.sort_by_key(|p| order(&p.label));
        self.points = points;
    }
}

/// Where the point file `file` of the index at `index` (in `dir`) is: a plain `*.json` name
/// beside the index, or — for a point whose write fell back elsewhere — a whole path inside one
/// of the fallback directories. An index is data a reader may have been sent; it must not name
/// `/dev/zero` or a file anywhere on the reader's machine.
/// A sweep index and the heads of its points' result files (their records unread), in the
/// index's order.
pub fn read_with_points(path: &Path) -> Result<(SweepIndex, Vec<super::ResultHead>), ResultsError> {
    let text = super::read_result_text(path)?;
    let idx: SweepIndex = serde_json::from_str(&text).map_err(|e| ResultsError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let heads = idx
        .points
        .iter()
        .map(|p| super::read_head(&point_path(path, dir, &p.file)?))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((idx, heads))
}

pub fn point_path(index: &Path, dir: &Path, file: &str) -> Result<PathBuf, ResultsError> {
    let p = Path::new(file);
    let plain = p
        .file_name()
        .is_some_and(|n| n == std::ffi::OsStr::new(file));
    let json = file.ends_with(".json") && !file.starts_with('.');
    let fallback = p.is_absolute()
        && !file.contains("/../")
        && super::storage::fallback_dirs()
            .iter()
            .any(|d| p.parent() == Some(d.as_path()));
    match (plain || fallback) && json {
        true => Ok(if plain { dir.join(file) } else { p.to_path_buf() }),
        false => Err(ResultsError::Parse {
            path: index.to_path_buf(),
            message: format!(
                "a point's `file` must be the plain name of a `*.json` result beside the index (or one in the fallback directories), found `{file}`"
            ),
        }),
    }
}

/// `YYYYMMDD-HHMMSS`, or with a `-N` suffix: what follows `{name}-` in a run's file names (so
/// `sw-2-…` is not taken for a run of `sw`).
fn is_stamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 15
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'-'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && (b.len() == 15 || (b[15] == b'-' && b[16..].iter().all(u8::is_ascii_digit)))
}

/// `file` as the index names it: its name when it sits beside the index, else its whole path
/// (a point that went to a fallback directory).
fn relative_to(file: &Path, index_dir: &Path) -> String {
    let beside = file.parent().is_some_and(|p| p == index_dir);
    match (beside, file.file_name()) {
        (true, Some(n)) => n.to_string_lossy().into_owned(),
        _ => file.display().to_string(),
    }
}
