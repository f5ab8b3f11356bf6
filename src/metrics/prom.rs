//! Prometheus text parsing. prometheus-parse 0.2.5 matches metric names with `\w+`, which
//! rejects the `:` that vLLM (`vllm:…`), SGLang (`sglang:…`) and llama.cpp (`llamacpp:…`)
//! put in every name (legal in Prometheus), silently dropping those lines. So names are
//! escaped before parsing and restored after.

pub use prometheus_parse::{Sample, Scrape, Value};

const COLON: &str = "__colon__";

fn escape_line(line: &str) -> String {
    let t = line.trim_start();
    if let Some(rest) = t.strip_prefix('#') {
        // `# HELP name …` / `# TYPE name …`: escape the third token.
        let mut parts = rest.trim_start().splitn(2, char::is_whitespace);
        let (Some(kind), Some(tail)) = (parts.next(), parts.next()) else {
            return line.to_string();
        };
        if kind != "HELP" && kind != "TYPE" {
            return line.to_string();
        }
        let tail = tail.trim_start();
        let end = tail.find(char::is_whitespace).unwrap_or(tail.len());
        return format!(
            "# {kind} {}{}",
            tail[..end].replace(':', COLON),
            &tail[end..]
        );
    }
    let end = t.find(['{', ' ', '\t']).unwrap_or(t.len());
    format!("{}{}", t[..end].replace(':', COLON), &t[end..])
}

/// Parses exposition text, keeping names with `:` intact.
pub fn parse(text: &str) -> std::io::Result<Scrape> {
    let lines = text.lines().map(|l| Ok(escape_line(l)));
    let mut scrape = Scrape::parse(lines)?;
    for s in &mut scrape.samples {
        if s.metric.contains(COLON) {
            s.metric = s.metric.replace(COLON, ":");
        }
    }
    scrape.docs = scrape
        .docs
        .into_iter()
        .map(|(k, v)| (k.replace(COLON, ":"), v))
        .collect();
    Ok(scrape)
}

/// Sum of a counter or gauge over all its label sets (`None` when absent).
pub fn sum(scrape: &Scrape, name: &str) -> Option<f64> {
    let mut found = false;
    let mut total = 0.0;
    for s in scrape.samples.iter().filter(|s| s.metric == name) {
        if let Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) = s.value {
            found = true;
            total += v;
        }
    }
    found.then_some(total)
}

/// Mean of a gauge over its label sets (several engines or ranks report a ratio each).
pub fn mean(scrape: &Scrape, name: &str) -> Option<f64> {
    let v: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter_map(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
            _ => None,
        })
        .collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_colons_survive_both_reference_samples() {
        for (file, name) in [
            ("vllm-metrics-sample.txt", "vllm:num_requests_running"),
            ("sglang-metrics-sample.txt", "sglang:num_running_reqs"),
        ] {
            let p = format!("{}/../shared/reference/{file}", env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read_to_string(&p).unwrap();
            let s = parse(&text).unwrap();
            assert!(sum(&s, name).is_some(), "{file}: {name} missing");
            assert!(s.samples.iter().all(|x| !x.metric.contains(COLON)));
        }
        let raw = Scrape::parse("vllm:x 1.0".lines().map(|l| Ok(l.to_string()))).unwrap();
        assert!(
            raw.samples.is_empty(),
            "if prometheus-parse learns colons, drop this shim"
        );
    }
}
