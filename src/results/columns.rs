//! The per-request columns `compare` needs of a result file, read at disk speed: only the
//! fields a figure is made of are decoded (TTFT, E2EL, output tokens, TTFO, turn, ITL gaps,
//! whether it failed), every other key is skipped unread, and a side file of records is read in
//! parallel byte ranges, line by line, never whole — two results of 1 000 000 requests each are
//! compared in about a second, in tens of MB.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::ResultsError;

/// One request, as far as the figures go.
#[derive(Deserialize)]
pub struct Row {
    #[serde(default)]
    ttft_ms: Option<f64>,
    #[serde(default)]
    e2el_ms: f64,
    #[serde(default)]
    output_tokens: u32,
    #[serde(default)]
    itl_ms: Option<Vec<f64>>,
    #[serde(default)]
    ttfo_ms: Option<f64>,
    #[serde(default)]
    reasoning_tokens: Option<u32>,
    #[serde(default)]
    turn: Option<u32>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

/// The successful requests' values (ms).
#[derive(Debug, Default)]
pub struct Columns {
    pub ttft: Vec<f64>,
    pub tpot: Vec<f64>,
    pub itl: Vec<f64>,
    pub e2el: Vec<f64>,
    /// A stream that reasoned: its TTFO (none without content); else its TTFT.
    pub ttfo: Vec<f64>,
    /// TTFT and E2EL of each turn index (conversations).
    pub by_turn: std::collections::BTreeMap<u32, (Vec<f64>, Vec<f64>)>,
}

impl Columns {
    /// Adds `r` when it succeeded.
    pub fn add(&mut self, r: Row) {
        if r.error.is_some() {
            return;
        }
        self.ttft.extend(r.ttft_ms);
        self.e2el.push(r.e2el_ms);
        // As `RequestRecord::tpot_ms`: the decode time over the tokens after the first.
        if let (Some(t), n) = (r.ttft_ms, r.output_tokens) {
            if n > 1 {
                self.tpot.push((r.e2el_ms - t) / (n - 1) as f64);
            }
        }
        self.itl.extend(r.itl_ms.into_iter().flatten());
        self.ttfo.extend(match r.reasoning_tokens {
            Some(_) => r.ttfo_ms,
            None => r.ttft_ms,
        });
        if let Some(t) = r.turn {
            let (ttft, e2el) = self.by_turn.entry(t).or_default();
            ttft.extend(r.ttft_ms);
            e2el.push(r.e2el_ms);
        }
    }

    fn append(&mut self, mut o: Columns) {
        self.ttft.append(&mut o.ttft);
        self.tpot.append(&mut o.tpot);
        self.itl.append(&mut o.itl);
        self.e2el.append(&mut o.e2el);
        self.ttfo.append(&mut o.ttfo);
        for (t, (mut a, mut b)) in o.by_turn {
            let (x, y) = self.by_turn.entry(t).or_default();
            x.append(&mut a);
            y.append(&mut b);
        }
    }
}

/// A side file smaller than this is read by one thread.
const PARALLEL_FROM: u64 = 8 << 20;

/// The columns of the side file at `path` (JSON Lines of records), read by up to
/// `available_parallelism` threads, each over its own byte range of whole lines.
pub fn side_file(path: &Path) -> Result<Columns, ResultsError> {
    let size = crate::files::check(path, crate::files::MAX_SIDE_FILE_BYTES, "a side file")
        .map_err(|source| ResultsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    let threads = match size < PARALLEL_FROM {
        true => 1,
        false => std::thread::available_parallelism().map_or(1, |n| n.get().min(8)),
    } as u64;
    let parts: Vec<Result<Columns, ResultsError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                let (from, to) = (size * k / threads, size * (k + 1) / threads);
                s.spawn(move || range(path, from, to))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(ResultsError::Parse {
                        path: path.to_path_buf(),
                        message: "a reader thread panicked".into(),
                    })
                })
            })
            .collect()
    });
    let mut all = Columns::default();
    for p in parts {
        all.append(p?);
    }
    Ok(all)
}

/// The records of the lines that start in `[from, to)`.
fn range(path: &Path, from: u64, to: u64) -> Result<Columns, ResultsError> {
    let io = |e: std::io::Error| ResultsError::Read {
        path: path.to_path_buf(),
        source: e.into(),
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut pos = from;
    let mut line = Vec::with_capacity(1024);
    // A range after the first starts after the end of the line that crosses into it.
    if from > 0 {
        f.seek(SeekFrom::Start(from - 1)).map_err(io)?;
    }
    let mut r = BufReader::with_capacity(1 << 16, f);
    if from > 0 {
        pos = from - 1 + r.read_until(b'\n', &mut line).map_err(io)? as u64;
        line.clear();
    }
    let mut out = Columns::default();
    while pos < to {
        let n = r.read_until(b'\n', &mut line).map_err(io)?;
        if n == 0 {
            break;
        }
        let text = line.trim_ascii();
        if !text.is_empty() {
            let row: Row = serde_json::from_slice(text).map_err(|e| ResultsError::Parse {
                path: path.to_path_buf(),
                message: format!("the record at byte {pos}: {e}"),
            })?;
            out.add(row);
        }
        pos += n as u64;
        line.clear();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn ranges_of_a_side_file_read_every_line_once_whatever_the_split() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.requests.jsonl");
        let mut f = std::fs::File::create(&p).unwrap();
        for i in 0..1000 {
            let err = if i % 10 == 0 {
                r#","error":{"kind":"timeout","message":"m"}"#
            } else {
                ""
            };
            writeln!(
                f,
                r#"{{"id":{i},"ttft_ms":{i}.5,"e2el_ms":2000.0,"output_tokens":11,"sent_ms":1.0,"tokens_source":"usage"{err}}}"#
            )
            .unwrap();
        }
        drop(f);
        let size = std::fs::metadata(&p).unwrap().len();
        for parts in [1u64, 2, 3, 7, 64] {
            let mut all = Columns::default();
            for k in 0..parts {
                all.append(range(&p, size * k / parts, size * (k + 1) / parts).unwrap());
            }
            assert_eq!(all.e2el.len(), 900, "{parts} parts");
            let mut ttft = all.ttft.clone();
            ttft.sort_by(f64::total_cmp);
            ttft.dedup();
            assert_eq!(ttft.len(), 900, "each line once ({parts} parts)");
            assert!(all.tpot.iter().all(|t| *t > 0.0));
        }
        assert_eq!(side_file(&p).unwrap().ttft.len(), 900);
    }
}
