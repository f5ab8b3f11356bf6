//! `report --html`: one self-contained file to send — the plots inline as SVG, every table of
//! the markdown report (one source of truth: `report::markdown`, turned into HTML here), each
//! series' experiment and environment. No script, no external resource: it reads offline.

use std::fmt::Write;

use crate::results::sweeps::Series;

/// Escapes text for HTML.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `**bold**` and `` `code` `` of one escaped line, as the markdown report writes them; the
/// verdicts' emoji as marks every font has.
fn inline(s: &str) -> String {
    let mut out = String::new();
    let s = escape(s)
        .replace('✅', "<span class=\"met\">✓</span>")
        .replace('❌', "<span class=\"missed\">✗</span>");
    for (i, part) in s.split("**").enumerate() {
        let part = code(part);
        match i % 2 {
            1 => write!(out, "<strong>{part}</strong>"),
            _ => write!(out, "{part}"),
        }
        .ok();
    }
    out
}

fn code(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in s.split('`').enumerate() {
        match i % 2 {
            1 => write!(out, "<code>{part}</code>"),
            _ => write!(out, "{part}"),
        }
        .ok();
    }
    out
}

fn cells(line: &str) -> Vec<&str> {
    let t = line.trim().trim_start_matches('|').trim_end_matches('|');
    t.split('|').map(str::trim).collect()
}

/// The markdown `report::markdown` writes (headings, bullets, pipe tables, paragraphs, bold
/// and code), as HTML. Each `##` heading opens a `<section>` whose id is made from its text.
pub fn from_markdown(md: &str) -> String {
    let mut o = String::new();
    let lines: Vec<&str> = md.lines().collect();
    let mut i = 0;
    let mut open_section = false;
    while i < lines.len() {
        let l = lines[i];
        if let Some(h) = l.strip_prefix("### ") {
            let _ = writeln!(o, "<h3>{}</h3>", inline(h));
        } else if let Some(h) = l.strip_prefix("## ") {
            if open_section {
                o.push_str("</section>\n");
            }
            let _ = writeln!(o, "<section id=\"{}\">\n<h2>{}</h2>", slug(h), inline(h));
            open_section = true;
        } else if let Some(h) = l.strip_prefix("# ") {
            let _ = writeln!(o, "<h1>{}</h1>", inline(h));
        } else if l.starts_with('|') {
            let start = i;
            while i < lines.len() && lines[i].starts_with('|') {
                i += 1;
            }
            o.push_str(&table(&lines[start..i]));
            continue;
        } else if l.starts_with("* ") || l.starts_with("- ") {
            o.push_str("<ul>\n");
            while i < lines.len() && (lines[i].starts_with("* ") || lines[i].starts_with("- ")) {
                let _ = writeln!(o, "<li>{}</li>", inline(&lines[i][2..]));
                i += 1;
            }
            o.push_str("</ul>\n");
            continue;
        } else if !l.trim().is_empty() {
            let _ = writeln!(o, "<p>{}</p>", inline(l));
        }
        i += 1;
    }
    if open_section {
        o.push_str("</section>\n");
    }
    o
}

/// A pipe table: its header, its alignment row (`---:` right-aligns a column), its rows.
fn table(rows: &[&str]) -> String {
    let mut o = String::from("<div class=\"scroll\"><table>\n");
    let head = cells(rows[0]);
    let right: Vec<bool> = rows
        .get(1)
        .map(|r| cells(r).iter().map(|c| c.ends_with(':')).collect())
        .unwrap_or_default();
    let align = |k: usize| match right.get(k) {
        Some(true) => " class=\"num\"",
        _ => "",
    };
    o.push_str("<thead><tr>");
    for (k, c) in head.iter().enumerate() {
        let _ = write!(o, "<th{}>{}</th>", align(k), inline(c));
    }
    o.push_str("</tr></thead>\n<tbody>\n");
    for r in rows.iter().skip(2) {
        o.push_str("<tr>");
        for (k, c) in cells(r).iter().enumerate() {
            let _ = write!(o, "<td{}>{}</td>", align(k), inline(c));
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</tbody></table></div>\n");
    o
}

/// `ISL/OSL 1k/128` → `isl-osl-1k-128`.
fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c.is_ascii_alphanumeric() {
            true => out.push(c.to_ascii_lowercase()),
            false if !out.ends_with('-') => out.push('-'),
            false => {}
        }
    }
    out.trim_matches('-').to_string()
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1500px;padding:0 1rem;color:#1b1b1b;line-height:1.45}
h1{font-size:1.6rem}h2{font-size:1.25rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;font-size:.85rem;margin:.6rem 0}th,td{border:1px solid #d5d5d5;padding:.25rem .5rem;white-space:nowrap}
th{background:#f3f3f3;text-align:left}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tbody tr:nth-child(even){background:#fafafa}.scroll{overflow-x:auto}code{background:#f3f3f3;padding:0 .2rem;border-radius:3px}
pre{background:#f7f7f7;padding:.8rem;overflow-x:auto;font-size:.8rem}figure{margin:1rem 0}figure svg{max-width:100%;height:auto}
footer{margin-top:3rem;color:#666;font-size:.8rem}.met{color:#1a7f37;font-weight:bold}.missed{color:#cf222e;font-weight:bold}";

/// The whole page: `markdown` (the report's tables) around the plots (`svgs`: a caption and an
/// SVG each) and each series' experiment and environment (`runs`: a title and a JSON each).
pub fn page(
    markdown: &str,
    svgs: &[(String, String)],
    runs: &[(String, serde_json::Value)],
) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>llm-inf-bench report</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n"
    );
    let body = from_markdown(markdown);
    // The title and the series list first, then the plots, then the tables.
    let (top, rest) = match body.find("<section") {
        Some(at) => body.split_at(at),
        None => (body.as_str(), ""),
    };
    o.push_str(top);
    o.push_str("<section id=\"plots\">\n<h2>Plots</h2>\n");
    for (caption, svg) in svgs {
        let _ = writeln!(
            o,
            "<figure>\n{}\n<figcaption>{}</figcaption>\n</figure>",
            strip_xml_declaration(svg),
            escape(caption)
        );
    }
    if svgs.is_empty() {
        o.push_str("<p>Nothing to plot: no point has a throughput and a TPOT.</p>\n");
    }
    o.push_str("</section>\n");
    o.push_str(rest);
    o.push_str("<section id=\"experiments\">\n<h2>Experiments and environments</h2>\n");
    for (title, run) in runs {
        let _ = writeln!(o, "<h3>{}</h3>", escape(title));
        let env = serde_json::to_string_pretty(&run["environment"]).unwrap_or_default();
        let cfg = serde_json::to_string_pretty(&run["config"]).unwrap_or_default();
        let _ = writeln!(
            o,
            "<details open><summary>Environment</summary><pre>{}</pre></details>\n<details><summary>Experiment (as resolved; secrets redacted)</summary><pre>{}</pre></details>",
            escape(&env),
            escape(&cfg)
        );
    }
    o.push_str("</section>\n");
    let _ = write!(
        o,
        "</main>\n<footer>Written by llm-inf-bench {} — one file, no scripts, readable offline.</footer>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION")
    );
    o
}

fn strip_xml_declaration(svg: &str) -> &str {
    match svg.strip_prefix("<?xml") {
        Some(rest) => rest
            .find("?>")
            .map_or(svg, |at| rest[at + 2..].trim_start()),
        None => svg,
    }
}

/// The runs behind `series`, one per series (its first point's file): what the experiments
/// and environments section shows.
pub fn runs_of(series: &[Series]) -> Vec<(String, serde_json::Value)> {
    series
        .iter()
        .filter_map(|s| {
            // The head only (records skipped unread), through the capped reader.
            let h = crate::results::read_head(&s.points.first()?.file).ok()?;
            let keep = serde_json::json!({"config": h.config, "environment": h.environment});
            Some((s.name.clone(), keep))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reports_markdown_becomes_html_sections_and_tables() {
        let md = "# Benchmark report\n\n* **a <b>**: 2 point(s)\n\n## ISL/OSL 1k/128\n\n| series | req/s |\n|---|---:|\n| a | 1.5 |\n\n### Accuracy (evals)\n\n**Best:** `c4` — fast\n";
        let h = from_markdown(md);
        assert!(h.contains("<h1>Benchmark report</h1>"), "{h}");
        assert!(
            h.contains("<li><strong>a &lt;b&gt;</strong>: 2 point(s)</li>"),
            "{h}"
        );
        assert!(h.contains("<section id=\"isl-osl-1k-128\">"), "{h}");
        assert!(h.contains("<th class=\"num\">req/s</th>"), "{h}");
        assert!(h.contains("<td>a</td><td class=\"num\">1.5</td>"), "{h}");
        assert!(h.contains("<h3>Accuracy (evals)</h3>"), "{h}");
        assert!(
            h.contains("<p><strong>Best:</strong> <code>c4</code> — fast</p>"),
            "{h}"
        );
        assert!(h.trim_end().ends_with("</section>"));
    }
}
