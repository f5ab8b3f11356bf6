//! What every deployment of a run shares: the stop (Ctrl-C, `q`, SIGTERM reach every one), the
//! budget's ledger (one `max_cost_usd` across every server), the sweep index and the writer.
//! Deployments run as futures of one task, so the index and the writer are borrowed only for
//! the moment of a write, never across an await.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::save::{self, Saver};
use super::stop::Stop;
use crate::results::index::{DeploymentStatus, SweepIndex};
use crate::results::RunResult;
use crate::workload::sweep::Point;

/// A deployment's results, in point order, with where each was saved.
pub type Saved = Vec<(RunResult, PathBuf)>;

/// USD spent by each deployment's server, against the run's one budget.
#[derive(Debug, Default)]
pub struct Ledger {
    spent: Mutex<BTreeMap<String, f64>>,
    pub max_usd: Option<f64>,
}

impl Ledger {
    pub fn new(max_usd: Option<f64>) -> Self {
        Self {
            spent: Mutex::default(),
            max_usd,
        }
    }

    /// `who` has spent `usd` so far (its server's whole cost): returns the run's total.
    pub fn report(&self, who: &str, usd: f64) -> f64 {
        let mut spent = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        let slot = spent.entry(who.to_string()).or_default();
        *slot = slot.max(usd);
        spent.values().sum()
    }

    pub fn total(&self) -> f64 {
        let spent = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        spent.values().sum()
    }

    /// The budget is spent: no new point or deployment starts.
    pub fn exhausted(&self) -> bool {
        self.max_usd.is_some_and(|m| self.total() >= m)
    }
}

/// The run's shared state.
pub struct Shared {
    /// Ctrl-C, `q` or SIGTERM, with why: ends every deployment.
    pub stop: Stop,
    pub ledger: Ledger,
    /// The sweep (or matrix) index, when the run has more than one point.
    pub index: RefCell<Option<SweepIndex>>,
    pub saver: RefCell<Saver>,
    /// `results/{name}-{stamp}.json`: every file of the run is named from it.
    pub base: PathBuf,
    /// Deployments run side by side (no live view, no progress bar: plain lines).
    pub parallel: bool,
    /// Holds `base`'s name against runs started in the same second, until this run ends.
    pub _reservation: Option<crate::results::Reservation>,
    /// Each capacity search's answer, as said (the run prints them on stdout at its end).
    pub answers: RefCell<Vec<String>>,
}

impl Shared {
    /// Whether the run writes an index (a sweep, or a matrix).
    pub fn indexed(&self) -> bool {
        self.index.borrow().is_some()
    }

    pub fn done(&self, pt: &Point) -> bool {
        self.index
            .borrow()
            .as_ref()
            .is_some_and(|x| x.done(&pt.key()))
    }

    /// A file of one deployment beside the results: `{stem}-{deployment}.{ext}`
    /// (`{stem}.{ext}` without a matrix).
    pub fn deployment_file(&self, deployment: Option<&str>, ext: &str) -> PathBuf {
        match deployment {
            None => self.base.with_extension(ext),
            Some(d) => self
                .base
                .with_file_name(format!("{}-{d}.{ext}", self.stem())),
        }
    }

    /// `name-YYYYMMDD-HHMMSS` (and `-deployment`): names a run's pod, job and logs.
    pub fn run_id(&self, deployment: Option<&str>) -> String {
        match deployment {
            None => self.stem(),
            Some(d) => format!("{}-{d}", self.stem()),
        }
    }

    fn stem(&self) -> String {
        self.base
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Writes a point's result and, with an index, the index after it: measured data before
    /// anything else can go wrong (a slow or failing terminate cannot lose it). Returns where
    /// the result is.
    pub fn save_point(&self, pt: &Point, result: &mut RunResult) -> PathBuf {
        let intended = save::point_file(&self.base, self.indexed(), &pt.file_label());
        let saved = self.saver.borrow_mut().result(&intended, result);
        if let Some(x) = self.index.borrow_mut().as_mut() {
            let dir = self.base.parent().unwrap_or(Path::new(""));
            x.record(pt, &saved, dir, result);
        }
        self.save_index();
        saved
    }

    /// Writes a saved result again, where it was (`evals` added after its point ended), and
    /// its index entry's scores.
    pub fn resave(&self, result: &mut RunResult, path: &Path) -> PathBuf {
        let saved = self.saver.borrow_mut().result(path, result);
        if let Some(x) = self.index.borrow_mut().as_mut() {
            x.set_evals(result.sweep_point.as_deref().unwrap_or(""), &result.evals);
        }
        self.save_index();
        saved
    }

    /// The saved result of a point this run (or the run it resumes) measured.
    pub fn result_of(&self, pt: &Point) -> Option<RunResult> {
        let index = self.index.borrow();
        let file = index.as_ref()?.file_of(&pt.key())?.to_string();
        let dir = self.base.parent().unwrap_or(Path::new(""));
        let at = crate::results::index::SweepIndex::path(&self.base);
        let path = crate::results::index::point_path(&at, dir, &file).ok()?;
        crate::results::read(&path).ok()
    }

    /// Whether the search of `dep` for `tier` has its answer in the index (a resumed run).
    pub fn search_completed(&self, dep: Option<&str>, tier: Option<&str>) -> bool {
        self.index
            .borrow()
            .as_ref()
            .and_then(|x| x.search_status(dep, tier).map(|s| s == "completed"))
            .unwrap_or(false)
    }

    /// Records a capacity search's state and saves the index.
    /// A capacity search's answer: said now, printed on stdout at the run's end.
    pub fn answer(&self, text: String) {
        crate::ui::say(text.clone());
        self.answers.borrow_mut().push(text);
    }

    pub fn record_search(&self, s: crate::results::index::IndexSearch) {
        if let Some(x) = self.index.borrow_mut().as_mut() {
            x.search(s);
        }
        self.save_index();
    }

    /// Records how a deployment stands and saves the index.
    pub fn deployment_status(
        &self,
        name: &str,
        status: DeploymentStatus,
        error: Option<String>,
        usd: f64,
    ) {
        if let Some(x) = self.index.borrow_mut().as_mut() {
            x.deployment(name, status, error, usd);
        }
        self.save_index();
    }

    /// Saves the index (with the run's spend so far), when there is one.
    pub fn save_index(&self) -> Option<PathBuf> {
        let mut index = self.index.borrow_mut();
        let x = index.as_mut()?;
        Some(
            self.saver
                .borrow_mut()
                .index(x, &self.base, self.ledger.total()),
        )
    }
}
