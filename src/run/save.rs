//! Writing a run's files as soon as they exist, without ever losing one: a write that fails
//! goes to a fallback directory (`results::save`), and what happened is kept as a note for the
//! end of the run — the summary is printed either way.

use std::path::{Path, PathBuf};

use crate::results::index::SweepIndex;
use crate::results::{self, RunResult};

fn absolute(p: &Path) -> String {
    std::path::absolute(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}

/// The run's writer and what it had to say.
#[derive(Default)]
pub struct Saver {
    /// Files that went to a fallback, or nowhere: one line each, for the end of the run.
    pub notes: Vec<String>,
}

impl Saver {
    /// Saves one result; returns where it is (the intended path when nothing took it). A
    /// side file of records is renamed next to it first (`x.json` → `x.requests.jsonl`).
    pub fn result(&mut self, intended: &Path, r: &mut RunResult) -> PathBuf {
        if let Some(spill) = r.spill.take() {
            let target = results::requests_file_for(intended);
            r.requests_file = Some(match std::fs::rename(&spill, &target) {
                Ok(()) => target.file_name().map_or_else(
                    || target.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                ),
                Err(e) => {
                    let note = format!(
                        "could not rename {} to {}: {e}; the result names it where it is",
                        spill.display(),
                        target.display()
                    );
                    crate::ui::say(format!("warning: {note}"));
                    self.notes.push(note);
                    absolute(&spill)
                }
            });
        }
        let saved = self.save(intended, r);
        // A result that went to a fallback names its side file by its whole path.
        let moved = saved.parent() != intended.parent();
        if let (true, Some(name)) = (moved, r.requests_file.clone()) {
            if Path::new(&name).is_relative() {
                let dir = intended.parent().unwrap_or(Path::new("."));
                r.requests_file = Some(absolute(&dir.join(name)));
                return self.save(&saved, r);
            }
        }
        saved
    }

    /// Records `pt`'s result (saved at `file`) in the index and saves the index.
    pub fn index(&mut self, x: &mut SweepIndex, base: &Path, spent_usd: f64) -> PathBuf {
        x.prepare_write(spent_usd);
        self.save(&SweepIndex::path(base), x)
    }

    fn save(&mut self, intended: &Path, value: &impl serde::Serialize) -> PathBuf {
        match results::save(intended, value) {
            Ok(saved) => {
                if let Some(why) = saved.fallback_because {
                    let note = format!(
                        "{why}; saved to {} instead (nothing measured is lost)",
                        saved.path.display()
                    );
                    crate::ui::say(format!("warning: {note}"));
                    self.notes.push(note);
                }
                saved.path
            }
            Err(e) => {
                let tried: Vec<String> = results::storage::fallback_dirs()
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect();
                let note = format!(
                    "{e}, nor in {}: the result is only in this output",
                    tried.join(" or ")
                );
                crate::ui::say(format!("warning: {note}"));
                self.notes.push(note);
                intended.to_path_buf()
            }
        }
    }
}

/// A point's result file: the run's path, or `dir/name-stamp-LABEL.json` in a sweep.
pub fn point_file(path: &Path, sweep: bool, label: &str) -> PathBuf {
    if !sweep {
        return path.to_path_buf();
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!("{stem}-{label}.json"))
}
