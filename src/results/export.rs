//! Result files as tables for pandas, polars, DuckDB or a spreadsheet: `results export --format
//! csv | parquet` — one row per point (summaries, across many result files and sweep indexes),
//! or one row per request (`--requests`). A table is typed columns (`Column`); it is written as
//! RFC 4180 CSV here (a header row, `,` between fields, a field with a comma, quote or line
//! break quoted, quotes doubled, an empty field for a figure the point or request has none of:
//! `null` in the JSON) or as Parquet (`results/parquet.rs`, those cells null).

use std::io::Write;
use std::ops::Range;
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

/// A table's column: its name and its cells, typed; `None` where a point or a request has none.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub name: String,
    pub cells: Cells,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Cells {
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
    Text(Vec<Option<String>>),
}

impl Column {
    fn new(name: &str, cells: Cells) -> Self {
        Column {
            name: name.to_string(),
            cells,
        }
    }

    pub fn len(&self) -> usize {
        match &self.cells {
            Cells::Int(v) => v.len(),
            Cells::Float(v) => v.len(),
            Cells::Bool(v) => v.len(),
            Cells::Text(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows `r` of the column.
    fn slice(&self, r: Range<usize>) -> Column {
        let cells = match &self.cells {
            Cells::Int(v) => Cells::Int(v[r].to_vec()),
            Cells::Float(v) => Cells::Float(v[r].to_vec()),
            Cells::Bool(v) => Cells::Bool(v[r].to_vec()),
            Cells::Text(v) => Cells::Text(v[r].to_vec()),
        };
        Column::new(&self.name, cells)
    }

    /// Row `i`'s cell as a CSV field, appended to `out`.
    fn csv_cell(&self, i: usize, out: &mut String) {
        use std::fmt::Write as _;
        let _ = match &self.cells {
            Cells::Int(v) => v[i].map_or(Ok(()), |x| write!(out, "{x}")),
            Cells::Float(v) => v[i]
                .filter(|x| x.is_finite())
                .map_or(Ok(()), |x| write!(out, "{x}")),
            Cells::Bool(v) => v[i].map_or(Ok(()), |x| write!(out, "{x}")),
            Cells::Text(v) => v[i].as_deref().map_or(Ok(()), |x| out.write_str(&field(x))),
        };
    }
}

/// A table to write, made a slice of rows at a time: a million requests' records are held
/// once, never beside all their columns too.
pub struct Table {
    pub rows: usize,
    slice: Box<dyn Fn(Range<usize>) -> Vec<Column> + Send + Sync>,
}

impl Table {
    /// The columns of rows `range` (of none: the columns' names and types).
    pub fn columns(&self, range: Range<usize>) -> Vec<Column> {
        (self.slice)(range)
    }

    /// Consecutive ranges of at most `n` rows covering the table.
    pub fn chunks(&self, n: usize) -> impl Iterator<Item = Range<usize>> + '_ {
        let n = n.max(1);
        (0..self.rows)
            .step_by(n)
            .map(move |start| start..(start + n).min(self.rows))
    }

    /// A table of columns already made (a few rows: summaries).
    pub fn from_columns(columns: Vec<Column>) -> Self {
        Table {
            rows: columns.first().map_or(0, Column::len),
            slice: Box::new(move |r| columns.iter().map(|c| c.slice(r.clone())).collect()),
        }
    }
}

/// Rows made and written at once by `write_csv`.
const CSV_CHUNK: usize = 64 * 1024;

/// Writes `table` as CSV: the header row, then a line per row.
pub fn write_csv(table: &Table, w: &mut impl Write) -> Result<(), ResultsError> {
    write_csv_in(table, w, CSV_CHUNK)
}

fn write_csv_in(table: &Table, w: &mut impl Write, chunk: usize) -> Result<(), ResultsError> {
    let head: Vec<String> = table.columns(0..0).iter().map(|c| field(&c.name)).collect();
    writeln!(w, "{}", head.join(",")).map_err(io)?;
    let mut line = String::new();
    for range in table.chunks(chunk) {
        let columns = table.columns(range.clone());
        for i in 0..range.len() {
            line.clear();
            for (k, c) in columns.iter().enumerate() {
                if k > 0 {
                    line.push(',');
                }
                c.csv_cell(i, &mut line);
            }
            line.push('\n');
            w.write_all(line.as_bytes()).map_err(io)?;
        }
    }
    Ok(())
}

/// One row per point of `files` (result files and sweep indexes): which point it is, then every
/// figure any of them has (`Summary::names`, in the order tables show them; per-turn,
/// per-adapter and per-replica figures included), empty where a point has none.
pub fn summaries(files: &[PathBuf]) -> Result<Table, ResultsError> {
    let rows = heads(files)?;
    let mut figures: Vec<String> = Vec::new();
    for (_, h) in &rows {
        for n in h.summary.names() {
            if !figures.contains(&n) {
                figures.push(n);
            }
        }
    }
    let text = |f: &dyn Fn(&ResultHead) -> Option<String>| {
        Cells::Text(rows.iter().map(|(_, h)| f(h)).collect())
    };
    // The load the point ran, as its configuration says.
    let load = |h: &ResultHead, key: &str| h.config["workload"][key].clone();
    let dataset = |h: &ResultHead, key: &str| h.config["workload"]["dataset"][key].as_i64();
    let mut columns = vec![
        Column::new(
            POINT_COLUMNS[0],
            Cells::Text(
                rows.iter()
                    .map(|(p, _)| Some(p.display().to_string()))
                    .collect(),
            ),
        ),
        Column::new(POINT_COLUMNS[1], text(&|h| Some(h.name.clone()))),
        Column::new(POINT_COLUMNS[2], text(&|h| h.deployment.clone())),
        Column::new(POINT_COLUMNS[3], text(&|h| h.sweep_point.clone())),
        Column::new(
            POINT_COLUMNS[4],
            text(&|h| Some(format!("{:?}", h.status).to_lowercase())),
        ),
        Column::new(
            POINT_COLUMNS[5],
            text(&|h| Some(h.termination_reason.clone())),
        ),
        Column::new(
            POINT_COLUMNS[6],
            text(&|h| Some(h.environment.provider.clone())),
        ),
        Column::new(POINT_COLUMNS[7], text(&|h| h.environment.gpu_type.clone())),
        Column::new(
            POINT_COLUMNS[8],
            text(&|h| load(h, "api").as_str().map(String::from)),
        ),
        Column::new(
            POINT_COLUMNS[9],
            Cells::Int(
                rows.iter()
                    .map(|(_, h)| load(h, "concurrency").as_i64())
                    .collect(),
            ),
        ),
        Column::new(
            POINT_COLUMNS[10],
            Cells::Float(rows.iter().map(|(_, h)| load(h, "rate").as_f64()).collect()),
        ),
        Column::new(
            POINT_COLUMNS[11],
            Cells::Int(rows.iter().map(|(_, h)| dataset(h, "input_len")).collect()),
        ),
        Column::new(
            POINT_COLUMNS[12],
            Cells::Int(rows.iter().map(|(_, h)| dataset(h, "output_len")).collect()),
        ),
    ];
    columns.extend(figures.iter().map(|f| {
        let cells = rows.iter().map(|(_, h)| h.summary.figure(f)).collect();
        Column::new(f, Cells::Float(cells))
    }));
    Ok(Table::from_columns(columns))
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

/// One row per request of the result file `file`, its side file included.
pub fn requests(file: &Path) -> Result<Table, ResultsError> {
    let records = super::read(file)?.requests;
    Ok(Table {
        rows: records.len(),
        slice: Box::new(move |r| request_columns(&records[r])),
    })
}

/// A serde enum's written name (`snake_case`).
fn written<T: serde::Serialize>(v: T) -> Option<String> {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
}

fn request_columns(qs: &[RequestRecord]) -> Vec<Column> {
    let int = |f: &dyn Fn(&RequestRecord) -> Option<i64>| Cells::Int(qs.iter().map(f).collect());
    let float =
        |f: &dyn Fn(&RequestRecord) -> Option<f64>| Cells::Float(qs.iter().map(f).collect());
    let text =
        |f: &dyn Fn(&RequestRecord) -> Option<String>| Cells::Text(qs.iter().map(f).collect());
    let flag =
        |f: &dyn Fn(&RequestRecord) -> bool| Cells::Bool(qs.iter().map(|q| Some(f(q))).collect());
    let cells = [
        int(&|q| i64::try_from(q.id).ok()),
        int(&|q| q.session.and_then(|v| i64::try_from(v).ok())),
        int(&|q| q.turn.map(i64::from)),
        int(&|q| q.adapter.map(i64::from)),
        int(&|q| q.replica.map(i64::from)),
        float(&|q| q.scheduled_ms),
        float(&|q| Some(q.sent_ms)),
        float(&|q| q.ttft_ms),
        float(&|q| q.ttfo_ms),
        float(&|q| q.tpot_ms()),
        float(&|q| Some(q.e2el_ms)),
        int(&|q| q.input_tokens.map(i64::from)),
        int(&|q| Some(i64::from(q.output_tokens))),
        int(&|q| q.reasoning_tokens.map(i64::from)),
        int(&|q| q.inputs.map(i64::from)),
        int(&|q| q.ideal_cached_tokens.map(i64::from)),
        flag(&|q| q.context_overflow),
        text(&|q| written(q.tokens_source)),
        flag(&|q| q.ok()),
        text(&|q| q.error.as_ref().map(|e| e.kind.as_str().to_string())),
        int(&|q| q.error.as_ref().and_then(|e| e.status).map(i64::from)),
        text(&|q| q.error.as_ref().map(|e| e.message.clone())),
    ];
    REQUEST_COLUMNS
        .iter()
        .zip(cells)
        .map(|(n, c)| Column::new(n, c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_written_a_slice_at_a_time_is_the_whole_table() {
        let table = Table::from_columns(vec![
            Column::new("id", Cells::Int((0..5).map(Some).collect())),
            Column::new(
                "note",
                Cells::Text(vec![None, Some("a,b".into()), None, Some("c".into()), None]),
            ),
            Column::new(
                "x",
                Cells::Float(vec![Some(0.5), None, Some(f64::NAN), Some(2.0), None]),
            ),
        ]);
        let mut whole = Vec::new();
        write_csv_in(&table, &mut whole, 100).unwrap();
        let expected = "id,note,x\n0,,0.5\n1,\"a,b\",\n2,,\n3,c,2\n4,,\n";
        assert_eq!(String::from_utf8(whole).unwrap(), expected);
        let mut sliced = Vec::new();
        write_csv_in(&table, &mut sliced, 2).unwrap();
        assert_eq!(String::from_utf8(sliced).unwrap(), expected);
        assert_eq!(table.chunks(2).collect::<Vec<_>>(), [0..2, 2..4, 4..5]);
    }

    #[test]
    fn fields_are_quoted_as_rfc_4180_says() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
    }
}
