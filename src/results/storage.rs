//! Where result files go, and what happens when that place fails. Before anything is rented the
//! output directory is checked (it exists or can be made, takes a file, has room for an
//! estimate of the results); a write that fails anyway (a full disk, an I/O error, a directory
//! that went away) leaves any earlier file intact and lands in a fallback — `$TMPDIR`, then the
//! user's state directory — so nothing measured is lost, and the caller says where it went.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::ResultsError;

/// Writes `value` as pretty JSON atomically: a temp file in the same directory, then rename.
/// A failure leaves any previous file at `path` as it was.
pub fn write_atomic(path: &Path, value: &impl Serialize) -> Result<(), ResultsError> {
    let err = |source| ResultsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = parent(path);
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    // serde_json writes token by token: unbuffered, that was one syscall per JSON token.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, tmp.as_file_mut());
    serde_json::to_writer_pretty(&mut out, value).map_err(|e| err(e.into()))?;
    out.write_all(b"\n").map_err(err)?;
    out.flush().map_err(err)?;
    drop(out);
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Where a file was saved.
#[derive(Debug)]
pub struct Saved {
    pub path: PathBuf,
    /// Why the intended path failed, when the file went to a fallback instead.
    pub fallback_because: Option<String>,
}

/// The directories a file goes to when its own cannot take it: `$TMPDIR/llm-inf-bench`, then
/// `results/` in the state directory (`config::state_dir`).
pub fn fallback_dirs() -> Vec<PathBuf> {
    let mut v = vec![std::env::temp_dir().join("llm-inf-bench")];
    v.extend(crate::config::state_dir().map(|d| d.join("results")));
    v
}

/// Saves `value` at `path`, or — when that write fails — under the same name in the first
/// fallback directory that takes it. An error only when no place took it.
pub fn save(path: &Path, value: &impl Serialize) -> Result<Saved, ResultsError> {
    let first = match write_atomic(path, value) {
        Ok(()) => {
            return Ok(Saved {
                path: path.to_path_buf(),
                fallback_because: None,
            })
        }
        Err(e) => e,
    };
    let name = path.file_name().unwrap_or_default();
    for dir in fallback_dirs() {
        let alt = dir.join(name);
        if write_atomic(&alt, value).is_ok() {
            return Ok(Saved {
                path: alt,
                fallback_because: Some(first.to_string()),
            });
        }
    }
    Err(first)
}

/// Checks, before anything is started or spent, that `dir` exists or can be made, takes a new
/// file, and has `needed_bytes` free; otherwise says what to change.
pub fn check_output_dir(dir: &Path, needed_bytes: u64) -> Result<(), String> {
    let shown = dir.display();
    std::fs::create_dir_all(dir).map_err(|e| {
        format!("output.dir `{shown}` cannot be created ({e}); name a directory this user can write, e.g. `--set output.dir=results`")
    })?;
    let probe = tempfile::NamedTempFile::new_in(dir).and_then(|mut f| {
        f.write_all(b"probe")?;
        f.as_file().sync_all()
    });
    if let Err(e) = probe {
        return Err(format!(
            "output.dir `{shown}` does not take new files ({e}); name a writable directory with `--set output.dir=…`"
        ));
    }
    if let Some(free) = free_bytes(dir) {
        if free < needed_bytes {
            return Err(format!(
                "output.dir `{shown}` has {} free and the results need about {}: free some space or name another directory with `--set output.dir=…`",
                human(free),
                human(needed_bytes)
            ));
        }
    }
    Ok(())
}

/// About how many bytes the result files of `e` take: a fixed part per point, ~300 bytes per
/// request record (measured: 60 KiB for 200), and ~28 bytes per ITL gap with
/// `output.detail: full`.
pub fn expected_bytes(e: &crate::config::Experiment) -> u64 {
    let full = e.output.detail == crate::config::Detail::Full;
    crate::workload::expected_requests(e)
        .into_iter()
        .map(|(n, out)| {
            let per_request = 300 + if full { 28 * out as u64 } else { 0 };
            (64 << 10) + n.saturating_mul(per_request)
        })
        .fold(0u64, u64::saturating_add)
}

/// Bytes available to this user on the file system holding `dir` (`None` where unknown).
pub fn free_bytes(dir: &Path) -> Option<u64> {
    let s = nix::sys::statvfs::statvfs(dir).ok()?;
    Some((s.blocks_available() as u64).saturating_mul(s.fragment_size() as u64))
}

/// `1.5 MiB`, `3.0 GiB`.
pub fn human(bytes: u64) -> String {
    let b = bytes as f64;
    match bytes {
        n if n >= 1 << 30 => format!("{:.1} GiB", b / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", b / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", b / 1024.0),
        n => format!("{n} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_keeps_the_old_file_and_falls_back() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("r.json");
        write_atomic(&p, &serde_json::json!({"v": 1})).unwrap();
        // The directory's place taken by a file: the write to `sub/r.json` cannot happen.
        let blocked = d.path().join("blocked");
        std::fs::write(&blocked, "not a directory").unwrap();
        let target = blocked.join("r.json");
        assert!(write_atomic(&target, &serde_json::json!({"v": 2})).is_err());
        // The earlier file is untouched.
        let old: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(old["v"], 1);
        // `save` lands in the first fallback that takes it, and says why.
        let saved = save(&target, &serde_json::json!({"v": 2})).unwrap();
        assert_ne!(saved.path, target);
        assert!(saved.path.ends_with("r.json"));
        assert!(saved.fallback_because.unwrap().contains("blocked"));
        let _ = std::fs::remove_file(&saved.path);
    }

    #[test]
    fn the_output_dir_check_names_what_to_change() {
        let d = tempfile::tempdir().unwrap();
        assert!(check_output_dir(&d.path().join("new/dir"), 1).is_ok());
        let file = d.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let e = check_output_dir(&file.join("sub"), 1).unwrap_err();
        assert!(
            e.contains("cannot be created") && e.contains("output.dir"),
            "{e}"
        );
        let e = check_output_dir(d.path(), u64::MAX).unwrap_err();
        assert!(e.contains("free") && e.contains("need about"), "{e}");
        assert_eq!(human(1536), "1.5 KiB");
    }
}
