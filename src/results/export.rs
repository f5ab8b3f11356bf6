//! Result files as tables for pandas, polars, DuckDB or a spreadsheet: `results export --format
//! csv` — one row per point (summaries, across many result files and sweep indexes), or one row
//! per request (`--requests`). RFC 4180 CSV: a header row, `,` between fields, a field with a
//! comma, quote or line break quoted (quotes doubled), an empty field for a figure the point or
//! request has none of (`null` in the JSON).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{ResultHead, ResultsError};
use crate::metrics::event::RequestRecord;

/// The columns that say which point a summary row is, before its figures.
const POINT_COLUMNS: [&str; 13] = [
    "file",
    "name",
    "deployment",
    "point",
    "status",
    "termination_reason",
    "provider",
    "gpu_type",
    "api",
    "concurrency",
    "rate",
    "input_len",
    "output_len",
];

/// One CSV field.
pub fn field(s: &str) -> String {
    match s.contains([',', '"', '\n', '\r']) {
        true => format!("\"{}\"", s.replace('"', "\"\"")),
        false => s.to_string(),
    }
}

/// A write to the table's destination failed (a closed pipe: `| head`).
fn io(source: std::io::Error) -> ResultsError {
    ResultsError::Write {
        path: PathBuf::from("the table's output"),
        source,
    }
}

fn number(v: Option<f64>) -> String {
    v.filter(|x| x.is_finite())
        .map(|x| x.to_string())
        .unwrap_or_default()
}

/// The result files `files` name: each result file itself, each sweep index's points.
fn heads(files: &[PathBuf]) -> Result<Vec<(PathBuf, ResultHead)>, ResultsError> {
    let mut out = Vec::new();
    for f in files {
        if f.to_string_lossy().ends_with(".sweep.json") {
            let (idx, heads) = super::index::read_with_points(f)?;
            let dir = f.parent().unwrap_or(Path::new("."));
            for (p, h) in idx.points.iter().zip(heads) {
                out.push((super::index::point_path(f, dir, &p.file)?, h));
            }
        } else {
            out.push((f.clone(), super::read_head(f)?));
        }
    }
    Ok(out)
}

/// One row per point of `files` (result files and sweep indexes), written to `w`: which point
/// it is, then every figure any of them has (`Summary::names`, in the order tables show them;
/// per-turn, per-adapter and per-replica figures included), empty where a point has none.
pub fn summaries_csv(files: &[PathBuf], w: &mut impl Write) -> Result<(), ResultsError> {
    let rows = heads(files)?;
    let mut figures: Vec<String> = Vec::new();
    for (_, h) in &rows {
        for n in h.summary.names() {
            if !figures.contains(&n) {
                figures.push(n);
            }
        }
    }
    let head: Vec<String> = POINT_COLUMNS
        .iter()
        .map(|c| c.to_string())
        .chain(figures.iter().cloned())
        .collect();
    writeln!(
        w,
        "{}",
        head.iter().map(|h| field(h)).collect::<Vec<_>>().join(",")
    )
    .map_err(io)?;
    for (path, h) in &rows {
        let mut cells = vec![
            path.display().to_string(),
            h.name.clone(),
            h.deployment.clone().unwrap_or_default(),
            h.sweep_point.clone().unwrap_or_default(),
            format!("{:?}", h.status).to_lowercase(),
            h.termination_reason.clone(),
            h.environment.provider.clone(),
            h.environment.gpu_type.clone().unwrap_or_default(),
        ];
        // The load the point ran, as its configuration says.
        let load = &h.config["workload"];
        let plain = |v: &serde_json::Value| match v {
            serde_json::Value::Null => String::new(),
            serde_json::Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        cells.extend([
            plain(&load["api"]),
            plain(&load["concurrency"]),
            plain(&load["rate"]),
            plain(&load["dataset"]["input_len"]),
            plain(&load["dataset"]["output_len"]),
        ]);
        cells.extend(figures.iter().map(|f| number(h.summary.figure(f))));
        let line: Vec<String> = cells.iter().map(|c| field(c)).collect();
        writeln!(w, "{}", line.join(",")).map_err(io)?;
    }
    Ok(())
}

/// The per-request columns, in order.
pub const REQUEST_COLUMNS: [&str; 22] = [
    "id",
    "session",
    "turn",
    "adapter",
    "replica",
    "scheduled_ms",
    "sent_ms",
    "ttft_ms",
    "ttfo_ms",
    "tpot_ms",
    "e2el_ms",
    "input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "inputs",
    "ideal_cached_tokens",
    "context_overflow",
    "tokens_source",
    "ok",
    "error_kind",
    "status",
    "error",
];

/// One row per request of the result file `file` (its side file included), written to `w`.
pub fn requests_csv(file: &Path, w: &mut impl Write) -> Result<(), ResultsError> {
    let r = super::read(file)?;
    writeln!(w, "{}", REQUEST_COLUMNS.join(",")).map_err(io)?;
    for q in &r.requests {
        writeln!(w, "{}", request_row(q)).map_err(io)?;
    }
    Ok(())
}

fn request_row(q: &RequestRecord) -> String {
    let int = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_default();
    let kind = q.error.as_ref().map(|e| {
        serde_json::to_value(e.kind)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default()
    });
    let cells = [
        q.id.to_string(),
        int(q.session),
        int(q.turn.map(u64::from)),
        int(q.adapter.map(u64::from)),
        int(q.replica.map(u64::from)),
        number(q.scheduled_ms),
        number(Some(q.sent_ms)),
        number(q.ttft_ms),
        number(q.ttfo_ms),
        number(q.tpot_ms()),
        number(Some(q.e2el_ms)),
        int(q.input_tokens.map(u64::from)),
        q.output_tokens.to_string(),
        int(q.reasoning_tokens.map(u64::from)),
        int(q.inputs.map(u64::from)),
        int(q.ideal_cached_tokens.map(u64::from)),
        q.context_overflow.to_string(),
        serde_json::to_value(q.tokens_source)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        q.ok().to_string(),
        kind.unwrap_or_default(),
        int(q.error.as_ref().and_then(|e| e.status).map(u64::from)),
        q.error
            .as_ref()
            .map(|e| e.message.clone())
            .unwrap_or_default(),
    ];
    cells.iter().map(|c| field(c)).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn fields_are_quoted_as_rfc_4180_says() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
    }
}
