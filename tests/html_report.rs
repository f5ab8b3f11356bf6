//! `report --html` in a real browser: Debian's Chromium, headless (`scripts/chromium.sh`,
//! which `scripts/test.sh` runs), loads the file offline, and its DOM has every section — the
//! plots (inline SVG), each ISL/OSL table, the capacity search, the experiments — with no
//! console error; a screenshot is an image with something drawn on it.

mod common;

use std::path::Path;
use std::process::Command;

fn chromium() -> String {
    std::env::var("LLMIB_CHROMIUM").unwrap_or_else(|_| {
        panic!("LLMIB_CHROMIUM is not set: `scripts/chromium.sh install && eval \"$(scripts/chromium.sh env)\"` first (scripts/test.sh does)")
    })
}

/// Headless Chromium on `page` with `args` (no network, a profile of its own); stdout and stderr.
fn browse(profile: &Path, page: &Path, args: &[&str]) -> (String, String) {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    (common::stdout_of(out), log)
}

#[test]
#[ignore = "needs Chromium (scripts/test.sh installs it with scripts/chromium.sh)"]
fn the_html_report_renders_every_section_in_headless_chromium() {
    let browser = chromium();
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    // A sweep and a capacity search on the simulator.
    let sweep = common::write(
        d.path(),
        "sw.yaml",
        &format!(
            "name: sw\nmodel: {{ id: m }}\ninfrastructure: {{ provider: simulator, simulator: {{ profile: h100-llama8b, speed: 32.0 }} }}\noutput: {{ dir: {} }}\nmetrics: {{ scrape_interval: 200ms, slo: {{ ttft_ms: 1000, tpot_ms: 50 }} }}\nworkload:\n  requests: 16\n  dataset: {{ kind: random, input_len: 128, output_len: 16 }}\n  ignore_eos: true\n  sweep: {{ concurrency: [1, 4, 16] }}\n",
            out.display()
        ),
    );
    common::succeeds(120, ["run", "--no-tui", "-q", sweep.to_str().unwrap()]);
    let search = common::write(
        d.path(),
        "cs.yaml",
        &format!(
            "name: cs\nmodel: {{ id: m }}\ninfrastructure: {{ provider: simulator, simulator: {{ profile: h100-llama8b, speed: 32.0 }} }}\noutput: {{ dir: {} }}\nmetrics: {{ scrape_interval: 200ms }}\nworkload:\n  duration: 2s\n  requests: 200\n  dataset: {{ kind: random, input_len: 128, output_len: 16 }}\n  ignore_eos: true\n  search: {{ over: concurrency, slo: {{ ttft_ms: 200 }}, start: 1, max: 64, max_points: 4 }}\n",
            out.display()
        ),
    );
    common::succeeds(240, ["run", "--no-tui", "-q", search.to_str().unwrap()]);
    let indexes = common::files(d.path(), ".sweep.json");
    assert_eq!(indexes.len(), 2);
    let page = d.path().join("report.html");
    let mut args = vec!["report".to_string(), "--html".into(), "-o".into()];
    args.push(page.display().to_string());
    args.extend(indexes.iter().map(|p| p.display().to_string()));
    common::succeeds(60, &args);
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: nothing fetched, nothing run.
    assert!(
        !html.contains("<script") && !html.contains("src=\"http") && !html.contains("href=\"http")
    );

    let profile = d.path().join("profile");
    let (dom, log) = browse(&profile, &page, &["--dump-dom"]);
    for id in ["plots", "capacity-search", "isl-osl-128-16", "experiments"] {
        assert!(
            dom.contains(&format!("<section id=\"{id}\">")),
            "section {id}:\n{dom}"
        );
    }
    assert!(dom.contains("<svg"), "the plots are inline SVG");
    assert!(
        dom.matches("<tr>").count() >= 3 + 4,
        "a row per point and probe"
    );
    // Each series' experiment, under its name alone (one sweep of it, so no stamp).
    assert!(dom.contains("<h3>sw</h3>"), "each series' experiment");
    assert!(
        !log.contains("CONSOLE") && !log.contains("Uncaught"),
        "{log}"
    );

    let png = d.path().join("report.png");
    browse(
        &profile,
        &page,
        &[
            "--window-size=1400,2000",
            &format!("--screenshot={}", png.display()),
        ],
    );
    let img = image::open(&png).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (1400, 2000));
    let drawn = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    assert!(drawn > 50_000, "{drawn} drawn pixels ({browser})");
}
