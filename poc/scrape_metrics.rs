//! Fetches a server's Prometheus `/metrics` page once and pretty-prints the samples.
//!
//!     cargo run --example scrape_metrics -- http://127.0.0.1:8000 [FILTER]

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let base = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8000".into());
    let filter = args.next().unwrap_or_default();
    let client = reqwest::Client::builder().no_proxy().build()?;
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines)?;
    let mut rows: Vec<(String, String, String)> = scrape
        .samples
        .iter()
        .filter(|s| s.metric.contains(&filter))
        .map(|s| {
            let value = match &s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => format!("{v}"),
                prometheus_parse::Value::Histogram(h) => format!("histogram ({} buckets)", h.len()),
                prometheus_parse::Value::Summary(s) => format!("summary ({} quantiles)", s.len()),
            };
            (s.metric.clone(), s.labels.to_string(), value)
        })
        .collect();
    rows.sort();
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    for (metric, labels, value) in rows {
        println!("{metric:width$}  {value:>16}  {labels}");
    }
    Ok(())
}
