//! `results export --format csv` read back the way a researcher reads it: with Python's `csv`
//! module (always), and with DuckDB (`scripts/analysis.sh` installs it; `scripts/test.sh` runs
//! that test): the figures in the table are the result files' own.

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;

/// A three-point sweep on the simulator; its index.
fn sweep(dir: &Path) -> PathBuf {
    let exp = common::write(
        dir,
        "sw.yaml",
        &format!(
            "name: sw\nmodel: {{ id: m }}\ninfrastructure: {{ provider: simulator, simulator: {{ profile: h100-llama8b, speed: 32.0 }} }}\noutput: {{ dir: {} }}\nmetrics: {{ scrape_interval: 200ms }}\nworkload:\n  requests: 12\n  dataset: {{ kind: random, input_len: 64, output_len: 8 }}\n  ignore_eos: true\n  sweep: {{ concurrency: [1, 2, 4] }}\n",
            dir.join("out").display()
        ),
    );
    common::succeeds(120, ["run", "--no-tui", "-q", exp.to_str().unwrap()]);
    common::files(dir, ".sweep.json").remove(0)
}

fn python(py: &str, code: &str, args: &[&Path]) -> String {
    common::stdout_of(
        std::process::Command::new(py)
            .arg("-c")
            .arg(code)
            .args(args)
            .output()
            .unwrap(),
    )
}

/// `results export --format csv ARGS` into `dir/name`, read back by Python's `csv` module: the
/// `columns` of each row, as text.
fn exported(dir: &Path, name: &str, args: &[&str], columns: &[&str]) -> Vec<Vec<String>> {
    let mut all = vec!["results", "export", "--format", "csv"];
    all.extend(args);
    let table = common::write(dir, name, &common::succeeds(30, all));
    let read = python(
        "python3",
        "import csv, json, sys\ncols = sys.argv[2].split(',')\nprint(json.dumps([[r[c] for c in cols] for r in csv.DictReader(open(sys.argv[1]))]))",
        &[&table, Path::new(&columns.join(","))],
    );
    serde_json::from_str(&read).unwrap()
}

fn point_results(index: &Path) -> Vec<Value> {
    let idx: Value = serde_json::from_str(&std::fs::read_to_string(index).unwrap()).unwrap();
    idx["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let f = index.with_file_name(p["file"].as_str().unwrap());
            serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap()
        })
        .collect()
}

#[test]
fn a_csv_export_reads_back_in_pythons_csv_module_with_the_results_own_figures() {
    let d = tempfile::tempdir().unwrap();
    let index = sweep(d.path());
    let cols = [
        "point",
        "concurrency",
        "request_throughput",
        "p99_ttft_ms",
        "median_tpot_ms",
    ];
    let rows = exported(d.path(), "points.csv", &[index.to_str().unwrap()], &cols);
    let results = point_results(&index);
    assert_eq!(rows.len(), 3);
    for ((row, r), c) in rows.iter().zip(&results).zip(["1", "2", "4"]) {
        assert_eq!(row[0], format!("c{c}"));
        assert_eq!(row[1], c);
        for (k, col) in cols.iter().enumerate().skip(2) {
            let got: f64 = row[k].parse().unwrap();
            assert_eq!(Some(got), r["summary"][col].as_f64(), "{col}");
        }
    }

    // One row per request: the records of one point, in the file's order.
    let one = index.with_file_name(
        serde_json::from_str::<Value>(&std::fs::read_to_string(&index).unwrap()).unwrap()["points"]
            [2]["file"]
            .as_str()
            .unwrap(),
    );
    let rows = exported(
        d.path(),
        "requests.csv",
        &["--requests", one.to_str().unwrap()],
        &["id", "ttft_ms", "output_tokens", "ok"],
    );
    let recs = results[2]["requests"].as_array().unwrap();
    assert_eq!(rows.len(), recs.len());
    for (row, q) in rows.iter().zip(recs) {
        assert_eq!(row[0], q["id"].to_string());
        assert_eq!(row[1].parse::<f64>().ok(), q["ttft_ms"].as_f64());
        assert_eq!(row[2], "8");
        assert_eq!(row[3], "true");
    }

    // Wrong asks are refused with what would do.
    let out = common::bin(30)
        .args(["results", "export", "--format", "vllm"])
        .arg(&index)
        .arg(&one)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("takes one result file"));
}

#[test]
#[ignore = "needs DuckDB's Python package (scripts/test.sh installs it with scripts/analysis.sh)"]
fn duckdb_queries_the_csv_export_as_a_table() {
    let py = std::env::var("LLMIB_ANALYSIS_PY").unwrap_or_else(|_| {
        panic!("LLMIB_ANALYSIS_PY is not set: `scripts/analysis.sh install && eval \"$(scripts/analysis.sh env)\"` first (scripts/test.sh does)")
    });
    let d = tempfile::tempdir().unwrap();
    let index = sweep(d.path());
    let csv = common::succeeds(
        30,
        [
            "results",
            "export",
            "--format",
            "csv",
            index.to_str().unwrap(),
        ],
    );
    let table = common::write(d.path(), "points.csv", &csv);
    // The README's recipe.
    let read = python(
        &py,
        "import duckdb, json, sys\nrows = duckdb.sql(f\"SELECT point, concurrency, request_throughput, p99_ttft_ms FROM '{sys.argv[1]}' ORDER BY concurrency\").fetchall()\nprint(json.dumps(rows))",
        &[&table],
    );
    let rows: Vec<Value> = serde_json::from_str(&read).unwrap();
    let results = point_results(&index);
    assert_eq!(rows.len(), 3, "{read}");
    for (row, r) in rows.iter().zip(&results) {
        assert_eq!(row[0], r["sweep_point"]);
        // Typed by DuckDB's sniffer: numbers, not text.
        assert!(row[1].is_number(), "{row}");
        assert_eq!(row[2].as_f64(), r["summary"]["request_throughput"].as_f64());
        assert_eq!(row[3].as_f64(), r["summary"]["p99_ttft_ms"].as_f64());
    }
}

#[test]
fn a_parquet_export_goes_to_a_file_or_a_pipe_and_is_whole() {
    let d = tempfile::tempdir().unwrap();
    let index = sweep(d.path());
    let out = d.path().join("points.parquet");
    common::bin(30)
        .args(["results", "export", "--format", "parquet", "-o"])
        .arg(&out)
        .arg(&index)
        .assert()
        .success()
        .stderr(predicates::str::contains("wrote"));
    let bytes = std::fs::read(&out).unwrap();
    assert!(
        bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"),
        "a whole Parquet file"
    );
    // Standard output is a pipe here: the same file.
    let piped = common::bin(30)
        .args(["results", "export", "--format", "parquet", "--requests"])
        .arg(point_file(&index, 0))
        .output()
        .unwrap();
    assert!(piped.status.success());
    assert!(piped.stdout.starts_with(b"PAR1") && piped.stdout.ends_with(b"PAR1"));
    // vLLM's format is no table.
    common::bin(30)
        .args(["results", "export", "--format", "vllm", "--requests"])
        .arg(point_file(&index, 0))
        .assert()
        .failure()
        .stderr(predicates::str::contains("--format parquet --requests"));
}

fn point_file(index: &Path, k: usize) -> PathBuf {
    let idx: Value = serde_json::from_str(&std::fs::read_to_string(index).unwrap()).unwrap();
    index.with_file_name(idx["points"][k]["file"].as_str().unwrap())
}

#[test]
#[ignore = "needs DuckDB's Python package (scripts/test.sh installs it with scripts/analysis.sh)"]
fn duckdb_reads_the_parquet_exports_typed_with_the_results_own_figures() {
    let py = std::env::var("LLMIB_ANALYSIS_PY").unwrap_or_else(|_| {
        panic!("LLMIB_ANALYSIS_PY is not set: `scripts/analysis.sh install && eval \"$(scripts/analysis.sh env)\"` first (scripts/test.sh does)")
    });
    let d = tempfile::tempdir().unwrap();
    let index = sweep(d.path());
    let points = d.path().join("points.parquet");
    let requests = d.path().join("requests.parquet");
    let file = point_file(&index, 2);
    for (out, what, rows) in [
        (&points, None, &index),
        (&requests, Some("--requests"), &file),
    ] {
        let mut args = vec!["results", "export", "--format", "parquet", "-o"];
        args.push(out.to_str().unwrap());
        args.extend(what);
        args.push(rows.to_str().unwrap());
        common::succeeds(30, args);
    }
    // The README's recipes: the points, and the requests typed (an integer, a boolean, a null).
    let read = python(
        &py,
        "import duckdb, json, sys\np = duckdb.sql(f\"SELECT point, concurrency, request_throughput, p99_ttft_ms FROM '{sys.argv[1]}' ORDER BY concurrency\").fetchall()\nq = duckdb.sql(f\"SELECT id, ttft_ms, output_tokens, ok, ttfo_ms, typeof(id), typeof(ok) FROM '{sys.argv[2]}' ORDER BY id\").fetchall()\nprint(json.dumps([p, q]))",
        &[&points, &requests],
    );
    let both: Vec<Vec<Value>> = serde_json::from_str(&read).unwrap();
    let results = point_results(&index);
    assert_eq!(both[0].len(), 3, "{read}");
    for (row, r) in both[0].iter().zip(&results) {
        assert_eq!(row[0], r["sweep_point"]);
        assert!(row[1].is_i64(), "{row}");
        assert_eq!(row[2].as_f64(), r["summary"]["request_throughput"].as_f64());
        assert_eq!(row[3].as_f64(), r["summary"]["p99_ttft_ms"].as_f64());
    }
    let mut records = results[2]["requests"].as_array().unwrap().clone();
    records.sort_by_key(|q| q["id"].as_u64());
    assert_eq!(both[1].len(), records.len(), "{read}");
    assert_eq!(records.len(), 12);
    for (row, q) in both[1].iter().zip(&records) {
        assert_eq!(row[0].as_u64(), q["id"].as_u64());
        assert_eq!(row[1].as_f64(), q["ttft_ms"].as_f64());
        assert_eq!(row[2].as_u64(), q["output_tokens"].as_u64());
        assert_eq!(row[3], Value::Bool(true));
        assert_eq!(row[4], Value::Null, "no reasoning: no TTFO");
        assert_eq!(
            (row[5].as_str(), row[6].as_str()),
            (Some("BIGINT"), Some("BOOLEAN"))
        );
    }
}
