//! The cost of work: $ per million tokens from the server's price per hour and the measured
//! throughput, in the summary, `compare`, `report` and `plot --per-dollar`.

mod common;

use std::path::Path;

use serde_json::Value;

fn run(dir: &Path, url: &str, price: Option<f64>) -> (std::path::PathBuf, Value) {
    let price = price.map_or(String::new(), |p| format!("  price_per_hour_usd: {p}\n"));
    let text = format!(
        "name: cost\nmodel:\n  id: m\ninfrastructure:\n  provider: existing\n  base_url: {url}\n{price}output:\n  dir: {}\nworkload:\n  concurrency: 4\n  requests: 40\n  ignore_eos: true\n  dataset: {{ kind: random, input_len: 16, output_len: 16 }}\n",
        dir.join("out").display()
    );
    let exp = common::write(dir, "exp.yaml", &text);
    common::run_ok(&exp, 120)
}

#[test]
fn a_price_gives_dollars_per_million_tokens_everywhere() {
    let s = common::sim_server("fixed-50ms-10ms");
    let d = tempfile::tempdir().unwrap();
    let (path, r) = run(d.path(), &s.url, Some(3.6));
    let sum = &r["summary"];
    let out = sum["output_throughput"].as_f64().unwrap();
    let total = sum["total_token_throughput"].as_f64().unwrap();
    // $3.60 an hour is $0.001 a second: $/Mtok = 0.001 / (tok/s) × 10⁶ = 1000 / tok/s.
    let per_out = sum["usd_per_million_output_tokens"].as_f64().unwrap();
    assert!((per_out - 1000.0 / out).abs() < 1e-9, "{per_out} vs {out}");
    let per_total = sum["usd_per_million_total_tokens"].as_f64().unwrap();
    assert!((per_total - 1000.0 / total).abs() < 1e-9);
    assert_eq!(r["environment"]["price_per_hour_usd"], 3.6);

    let report = common::bin(60).arg("report").arg(&path).output().unwrap();
    let report = String::from_utf8_lossy(&report.stdout).into_owned();
    assert!(
        report.contains("$/M out") && report.contains("Cheapest per token"),
        "{report}"
    );
    let compared = common::bin(60)
        .arg("compare")
        .arg(&path)
        .arg(&path)
        .output()
        .unwrap();
    let compared = String::from_utf8_lossy(&compared.stdout).into_owned();
    assert!(
        compared.contains("usd_per_million_output_tokens"),
        "{compared}"
    );

    let png = d.path().join("per-dollar.png");
    let plotted = common::bin(60)
        .arg("plot")
        .arg(&path)
        .arg("--per-dollar")
        .arg("-o")
        .arg(&png)
        .output()
        .unwrap();
    assert!(
        plotted.status.success(),
        "{}",
        String::from_utf8_lossy(&plotted.stderr)
    );
    assert!(std::fs::metadata(&png).unwrap().len() > 1000);
}

#[test]
fn without_a_price_there_is_no_cost_figure_and_no_per_dollar_plot() {
    let s = common::sim_server("fixed-50ms-10ms");
    let d = tempfile::tempdir().unwrap();
    let (path, r) = run(d.path(), &s.url, None);
    assert!(r["summary"].get("usd_per_million_output_tokens").is_none());
    let plotted = common::bin(60)
        .arg("plot")
        .arg(&path)
        .arg("--per-dollar")
        .arg("-o")
        .arg(d.path().join("x.png"))
        .output()
        .unwrap();
    assert!(!plotted.status.success());
    let err = String::from_utf8_lossy(&plotted.stderr).into_owned();
    assert!(err.contains("no point has a price"), "{err}");
}
