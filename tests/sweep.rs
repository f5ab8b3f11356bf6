//! Sweeps on the simulator: every point on one server, one result per point plus an index;
//! a plot that is really an image; a report; and an interrupted sweep resumed.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

fn experiment(dir: &Path, requests: u32, sweep: &str) -> PathBuf {
    common::write(
        dir,
        "sweep.yaml",
        &format!(
            "name: sw\nmodel: {{ id: m }}\ninfrastructure:\n  provider: simulator\n  simulator: {{ profile: h100-llama8b, speed: 32.0 }}\noutput: {{ dir: {} }}\nmetrics:\n  scrape_interval: 200ms\n  slo: {{ ttft_ms: 1000, tpot_ms: 50 }}\nworkload:\n  pattern: concurrent\n  requests: {requests}\n  dataset: {{ kind: random, input_len: 128, output_len: 32 }}\n  ignore_eos: true\n  sweep:\n{sweep}",
            dir.join("out").display()
        ),
    )
}

use common::files;

fn json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn a_sweep_runs_every_point_on_one_server_and_plots_and_reports() {
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(
        d.path(),
        24,
        "    concurrency: { start: 1, end: 8, factor: 2 }\n    seq_lens: [256x32, 512x64]\n",
    );
    common::bin(240)
        .args(["run", "--no-tui"])
        .arg(&exp)
        .assert()
        .success()
        .stderr(predicates::str::contains("sweep of 8 points"));
    let index = files(d.path(), ".sweep.json");
    assert_eq!(index.len(), 1);
    let idx = json(&index[0]);
    assert_eq!(idx["status"], "completed");
    let labels: Vec<&str> = idx["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        [
            "256x32-c1",
            "256x32-c2",
            "256x32-c4",
            "256x32-c8",
            "512x64-c1",
            "512x64-c2",
            "512x64-c4",
            "512x64-c8"
        ]
    );
    // One result per point, each saying which point it is and measuring its own load.
    let results: Vec<PathBuf> = files(d.path(), ".json")
        .into_iter()
        .filter(|p| !p.to_string_lossy().ends_with(".sweep.json"))
        .collect();
    assert_eq!(results.len(), 8);
    let mut server_urls = Vec::new();
    for p in &idx["points"].as_array().unwrap()[..] {
        let r = json(&d.path().join("out").join(p["file"].as_str().unwrap()));
        assert_eq!(r["sweep_point"], p["label"]);
        assert_eq!(r["summary"]["completed"], 24);
        assert_eq!(r["config"]["workload"]["concurrency"], p["concurrency"]);
        assert_eq!(
            r["config"]["workload"]["dataset"]["input_len"],
            p["input_len"]
        );
        server_urls.push(r["environment"]["base_url"].as_str().unwrap().to_string());
    }
    server_urls.dedup();
    assert_eq!(server_urls.len(), 1, "every point on the same server");

    // The plot is a real image of the documented size with something drawn on it.
    let png = d.path().join("sweep.png");
    common::bin(240)
        .arg("plot")
        .arg(&index[0])
        .arg("-o")
        .arg(&png)
        .assert()
        .success();
    let img = image::open(&png).unwrap().to_rgb8();
    assert_eq!(
        img.dimensions(),
        (1400, 40 + 30 + 2 * 480),
        "the title, a row of legend, two shapes: two rows"
    );
    let mut colours: Vec<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    colours.sort();
    colours.dedup();
    assert!(
        colours.len() > 20,
        "{} colours: not a blank image",
        colours.len()
    );
    let non_white = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    assert!(non_white > 10_000, "{non_white} drawn pixels");
    // The default: PNG and SVG next to the index.
    common::bin(240)
        .arg("plot")
        .arg(&index[0])
        .assert()
        .success();
    let svg =
        std::fs::read_to_string(index[0].to_string_lossy().replace(".sweep.json", ".svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("c8") && svg.contains("256/32"));

    let out = common::bin(240)
        .arg("report")
        .arg(&index[0])
        .output()
        .unwrap();
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success());
    assert!(
        md.contains("## ISL/OSL 256/32") && md.contains("## ISL/OSL 512/64"),
        "{md}"
    );
    assert!(md.contains("| 256x32-c8 |"));
    // The SLO comes from the runs' own metrics.slo.
    assert!(
        md.contains("SLO: TTFT p50 ≤ 1000 ms, TPOT p50 ≤ 50 ms"),
        "{md}"
    );
    assert!(md.contains("**Best within the SLO:**"), "{md}");
}

#[test]
fn an_interrupted_sweep_keeps_its_points_and_resumes() {
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(d.path(), 60, "    concurrency: [1, 2, 4]\n");
    // Nothing to resume yet: refused before anything starts.
    common::bin(240)
        .args(["run", "--no-tui", "--resume"])
        .arg(&exp)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("no unfinished sweep of `sw`"));

    let mut child = common::background()
        .args(["run", "--no-tui"])
        .arg(&exp)
        .spawn()
        .unwrap();
    // Once the first point is saved, Ctrl-C.
    let start = std::time::Instant::now();
    while files(d.path(), "-c1.json").is_empty() {
        assert!(start.elapsed() < Duration::from_secs(60), "no first point");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let index = files(d.path(), ".sweep.json");
    let idx = json(&index[0]);
    assert_eq!(idx["status"], "interrupted");
    let done = idx["points"].as_array().unwrap().len();
    assert!((1..3).contains(&done), "{idx}");

    common::bin(240)
        .args(["run", "--no-tui", "--resume"])
        .arg(&exp)
        .assert()
        .success()
        .stderr(predicates::str::contains("already measured; skipping"));
    let after = files(d.path(), ".sweep.json");
    assert_eq!(after, index, "the same sweep, not a new one");
    let idx = json(&after[0]);
    assert_eq!(idx["status"], "completed");
    let points = idx["points"].as_array().unwrap();
    assert_eq!(points.len(), 3);
    assert!(points.iter().all(|p| p["status"] == "completed"));
    // The first point was not measured again.
    let first = std::fs::metadata(
        d.path()
            .join("out")
            .join(points[0]["file"].as_str().unwrap()),
    )
    .unwrap()
    .modified()
    .unwrap();
    let last = std::fs::metadata(
        d.path()
            .join("out")
            .join(points[2]["file"].as_str().unwrap()),
    )
    .unwrap()
    .modified()
    .unwrap();
    assert!(first < last);
}

#[test]
fn resume_needs_a_sweep() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("one.yaml");
    std::fs::write(
        &p,
        "name: one\nmodel: { id: m }\ninfrastructure: { provider: simulator }\nworkload: { concurrency: 1, requests: 2 }\n",
    )
    .unwrap();
    common::bin(240)
        .args(["run", "--no-tui", "--resume"])
        .arg(&p)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--resume continues a sweep"));
}

#[test]
fn a_sweep_whose_server_dies_keeps_the_points_before_and_records_the_failed_one() {
    use llm_inf_bench::config::{Personality, SimProfile};
    // Generation requests: point c1 is its pre-flight (0) and 20 measured (1–20); point c4 is
    // its pre-flight (21) and measured from 22 on. At request 30 the server dies.
    let mut cfg = llm_inf_bench::sim::SimConfig::new(SimProfile::Instant, Personality::Vllm, "m");
    cfg.faults.exit_after = Some(30);
    let s = common::sim_with(cfg);
    let d = tempfile::tempdir().unwrap();
    let exp = common::write(
        d.path(),
        "sweep.yaml",
        &format!(
            "name: sw\nmodel: {{ id: m }}\ninfrastructure: {{ provider: existing, base_url: \"{}\" }}\noutput: {{ dir: {} }}\nmetrics: {{ scrape: false }}\nworkload:\n  requests: 20\n  dataset: {{ kind: random, input_len: 8, output_len: 4 }}\n  ignore_eos: true\n  sweep: {{ concurrency: [1, 4, 8] }}\n",
            s.url,
            d.path().join("out").display()
        ),
    );
    let out = common::bin(240)
        .args(["run", "--no-tui"])
        .arg(&exp)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the server is gone"), "{stderr}");
    let index = files(d.path(), ".sweep.json");
    assert_eq!(index.len(), 1);
    common::assert_valid(&common::index_schema(), &json(&index[0]), &index[0]);
    let idx = json(&index[0]);
    assert_eq!(idx["status"], "failed", "{idx}");
    let points = idx["points"].as_array().unwrap();
    let got: Vec<(&str, &str)> = points
        .iter()
        .map(|p| (p["label"].as_str().unwrap(), p["status"].as_str().unwrap()))
        .collect();
    // The third point never ran: the index says so by not listing it.
    assert_eq!(got, [("c1", "completed"), ("c4", "failed")]);
    assert!(points[1]["error"]
        .as_str()
        .unwrap()
        .contains("the server stopped answering"));
    let dir = index[0].parent().unwrap();
    let p1 = json(&dir.join(points[0]["file"].as_str().unwrap()));
    assert_eq!(p1["status"], "completed");
    assert_eq!(p1["summary"]["completed"], 20);
    let file2 = dir.join(points[1]["file"].as_str().unwrap());
    common::assert_valid_result(&file2);
    let p2 = json(&file2);
    assert_eq!(p2["status"], "failed");
    assert!(p2["error"]
        .as_str()
        .unwrap()
        .contains("the server stopped answering"));
    // Partial records: the requests answered before the death, and the failures after it.
    let ok = p2["summary"]["completed"].as_u64().unwrap();
    let failed = p2["summary"]["failed"].as_u64().unwrap();
    assert!((1..20).contains(&ok), "{ok} completed");
    assert_eq!(ok + failed, 20);
    assert_eq!(p2["requests"].as_array().unwrap().len(), 20);
    assert!(p2["summary"]["mean_ttft_ms"].is_number());
}

/// What the simulator received (`--record-requests`): each request's `messages`, as JSON text,
/// but the pre-flight request's (the same "Say hello." before every point).
fn received(s: &common::Sim) -> Vec<String> {
    let url = format!("{}/sim/requests", s.url);
    let v: Value = s
        ._rt
        .block_on(async { reqwest::get(&url).await.unwrap().json().await.unwrap() });
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| m.to_string())
        .filter(|m| !m.contains("Say hello."))
        .collect()
}

fn recording_sim() -> common::Sim {
    use llm_inf_bench::config::{Personality, SimProfile};
    let mut cfg =
        llm_inf_bench::sim::SimConfig::new(SimProfile::H100Llama8b, Personality::Vllm, "m");
    cfg.speed = 64.0;
    cfg.record_requests = 10_000;
    common::sim_with(cfg)
}

/// Three points of random prompts on one prefix-caching server: each point draws its prompts
/// from its own stream, so no point is served from the cache the one before filled; and the
/// same experiment sends the same requests at a point on a re-run and on `--resume`.
#[test]
fn sweep_points_never_share_prompts_and_stay_deterministic_per_point() {
    let exp = |dir: &Path, url: &str| {
        common::write(
            dir,
            "sweep.yaml",
            &format!(
                "name: sp\nseed: 7\nmodel: {{ id: m }}\ninfrastructure: {{ provider: existing, base_url: {url} }}\noutput: {{ dir: {} }}\nmetrics: {{ scrape_interval: 100ms }}\nworkload:\n  pattern: concurrent\n  requests: 40\n  warmup_requests: 4\n  dataset: {{ kind: random, input_len: 256, output_len: 8 }}\n  ignore_eos: true\n  sweep: {{ concurrency: [2, 4, 8] }}\n",
                dir.join("out").display()
            ),
        )
    };
    let a = recording_sim();
    let d = tempfile::tempdir().unwrap();
    common::bin(240)
        .args(["run", "--no-tui"])
        .arg(exp(d.path(), &a.url))
        .assert()
        .success();
    let idx = json(&files(d.path(), ".sweep.json")[0]);
    let mut seeds = Vec::new();
    for p in idx["points"].as_array().unwrap() {
        let r = json(&d.path().join("out").join(p["file"].as_str().unwrap()));
        let hit = r["server_metrics"]["summary"]["mean_prefix_cache_hit_rate"]
            .as_f64()
            .unwrap();
        // The chat template's first block (its default system header) is all random prompts
        // share: ~8 % of a 256-token prompt. Sharing prompts across points made it 98 %.
        assert!(hit < 0.15, "{}: prefix-cache hit rate {hit}", p["label"]);
        seeds.push(r["prompt_seed"].as_u64().unwrap());
    }
    seeds.dedup();
    assert_eq!(seeds.len(), 3, "one prompt stream per point: {seeds:?}");
    let all_a = received(&a);
    let mut seen = std::collections::HashSet::new();
    let dup: Vec<&String> = all_a.iter().filter(|m| !seen.insert(*m)).collect();
    // (Each warm-up request was sent once per client worker until this test found it.)
    assert!(
        dup.is_empty(),
        "{} prompts sent twice, e.g. {:?}",
        dup.len(),
        dup.first()
    );

    // The same sweep again, stopped by hand after its second point: resumed, the third point
    // sends exactly what it sent in the first run.
    let b = recording_sim();
    let d2 = tempfile::tempdir().unwrap();
    let exp2 = exp(d2.path(), &b.url);
    common::bin(240)
        .args(["run", "--no-tui"])
        .arg(&exp2)
        .assert()
        .success();
    assert_eq!(
        sorted(received(&b)),
        sorted(all_a.clone()),
        "a re-run sends the same requests"
    );
    let index = files(d2.path(), ".sweep.json")[0].clone();
    let mut idx = json(&index);
    idx["status"] = "interrupted".into();
    idx["points"].as_array_mut().unwrap().pop();
    std::fs::write(&index, idx.to_string()).unwrap();
    let c = recording_sim();
    let exp3 = exp(d2.path(), &c.url);
    common::bin(240)
        .args(["run", "--no-tui", "--resume"])
        .arg(&exp3)
        .assert()
        .success();
    let resumed = received(&c);
    // 4 warm-ups, then the point's 40.
    assert_eq!(resumed.len(), 4 + 40, "only the third point ran");
    let in_a: std::collections::HashSet<&String> = all_a.iter().collect();
    let measured: Vec<&String> = resumed.iter().filter(|m| in_a.contains(m)).collect();
    assert!(
        measured.len() >= 44,
        "the resumed point sent other prompts than the first run's ({} of {} alike)",
        measured.len(),
        resumed.len()
    );
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// A sweep's output can be read and parsed: each point's summary says which point it is, the
/// run ends with one table (a row per point, the SLO verdict of each) on stdout, `--json` is
/// one JSON document, and `results show` of the index prints the same table.
#[test]
fn a_sweep_ends_with_one_table_and_its_json_is_one_document() {
    let d = tempfile::tempdir().unwrap();
    let exp = experiment(d.path(), 12, "    concurrency: [1, 2, 4]\n");
    let out = common::succeeds(240, ["run", "--no-tui", exp.to_str().unwrap()]);
    for c in ["c1", "c2", "c4"] {
        assert!(
            out.contains(&format!("=== sw · {c}: completed ===")),
            "{out}"
        );
    }
    let table: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("point "))
        .collect();
    assert!(
        table[0].contains("TTFT p50") && table[0].ends_with("SLO"),
        "{out}"
    );
    for (row, c) in table[1..4].iter().zip(["c1", "c2", "c4"]) {
        assert!(row.starts_with(c) && row.contains("completed"), "{row}");
        // A 1 s TTFT, 50 ms TPOT SLO on the medians: the fast simulator meets it.
        assert!(row.ends_with("met"), "{row}");
    }
    assert_eq!(table[4], "SLO: median TTFT ≤ 1000 ms, TPOT ≤ 50 ms");

    let d = tempfile::tempdir().unwrap();
    let exp = experiment(d.path(), 12, "    concurrency: [1, 2]\n");
    let out = common::succeeds(240, ["run", "--no-tui", "--json", exp.to_str().unwrap()]);
    let doc: Value = serde_json::from_str(&out).expect("one JSON document");
    let points = doc["points"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    assert_eq!(points[1]["point"], "c2");
    assert_eq!(points[1]["summary"]["completed"], 12);
    let index = doc["index"].as_str().unwrap();
    assert!(index.ends_with(".sweep.json"));

    let shown = common::succeeds(30, ["results", "show", index]);
    assert!(shown.starts_with("sw: completed (2 points)"), "{shown}");
    assert!(shown.lines().nth(2).unwrap().starts_with("c1 "), "{shown}");
    assert!(shown.contains("SLO: median TTFT ≤ 1000 ms"), "{shown}");
}

/// Two runs of one experiment in a report are two rows, each named by its file's stamp.
#[test]
fn a_report_of_two_runs_of_one_experiment_tells_them_apart() {
    let d = tempfile::tempdir().unwrap();
    let exp = common::write(
        d.path(),
        "one.yaml",
        &format!(
            "name: one\nmodel: {{ id: m }}\ninfrastructure: {{ provider: simulator, simulator: {{ profile: instant }} }}\noutput: {{ dir: {} }}\nworkload: {{ concurrency: 2, requests: 6, dataset: {{ kind: random, input_len: 16, output_len: 4 }} }}\n",
            d.path().join("out").display()
        ),
    );
    for _ in 0..2 {
        common::succeeds(60, ["run", "--no-tui", exp.to_str().unwrap()]);
        // Result files are named to the second.
        std::thread::sleep(Duration::from_millis(1100));
    }
    let runs = files(d.path(), ".json");
    assert_eq!(runs.len(), 2, "{runs:?}");
    let md = common::succeeds(
        60,
        [
            "report",
            runs[0].to_str().unwrap(),
            runs[1].to_str().unwrap(),
        ],
    );
    let stamp = |p: &PathBuf| {
        p.file_stem()
            .unwrap()
            .to_string_lossy()
            .trim_start_matches("one-")
            .to_string()
    };
    for r in &runs {
        assert!(md.contains(&format!("| one | {} |", stamp(r))), "{md}");
    }
}
