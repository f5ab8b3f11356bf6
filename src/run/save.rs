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
        // Side files are named plainly and sit beside their result (readers accept nothing
        // else): when one cannot be put there, a note says where it is and where it belongs.
        if let Some(spill) = r.spill.take() {
            let target = results::requests_file_for(intended);
            self.place(&spill, &target);
            r.requests_file = target.file_name().map(|n| n.to_string_lossy().into_owned());
        }
        let saved = self.save(intended, r);
        if let (true, Some(name)) = (saved.parent() != intended.parent(), &r.requests_file) {
            let dir = intended.parent().unwrap_or(Path::new("."));
            let beside = saved.with_file_name(name);
            self.place(&dir.join(name), &beside);
        }
        saved
    }

    /// Moves `from` to `to` (a rename, else a copy across file systems); a note when neither
    /// worked.
    fn place(&mut self, from: &Path, to: &Path) {
        let moved = std::fs::rename(from, to).or_else(|_| {
            std::fs::copy(from, to)?;
            std::fs::remove_file(from)
        });
        if let Err(e) = moved {
            let note = format!(
                "the records' side file stays at {} ({e}): move it to {} for `results`, `compare` and `report` to read it",
                absolute(from),
                absolute(to)
            );
            crate::ui::say(format!("warning: {note}"));
            self.notes.push(note);
        }
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
