//! The summary arithmetic against figures worked out by hand (numpy's linear percentiles,
//! population std), to 1e-9. `tests/golden/summary.py` recomputes them with plain Python.

use llm_inf_bench::config::Slo;
use llm_inf_bench::metrics::event::{ErrorKind, RequestError, RequestRecord, TokensSource};
use llm_inf_bench::metrics::summary::summarize;

fn rec(
    id: u64,
    ttft: f64,
    e2el: f64,
    out: u32,
    input: u32,
    itl: &[f64],
    ok: bool,
) -> RequestRecord {
    RequestRecord {
        id,
        scheduled_ms: None,
        sent_ms: id as f64 * 10.0,
        ttft_ms: Some(ttft),
        e2el_ms: e2el,
        input_tokens: Some(input),
        output_tokens: out,
        tokens_source: TokensSource::Usage,
        reads: 1,
        kernel_reads: 1,
        itl_ms: Some(itl.to_vec()),
        error: if ok {
            None
        } else {
            Some(RequestError {
                status: Some(500),
                ..RequestError::new(ErrorKind::Status, "HTTP 500")
            })
        },
        server_prefill_ms: None,
        server_decode_ms: None,
        ..RequestRecord::default()
    }
}

#[test]
fn summary_matches_hand_computed_figures() {
    let records = vec![
        rec(0, 100.0, 1000.0, 10, 50, &[100.0, 100.0], true),
        rec(1, 200.0, 2000.0, 19, 60, &[50.0, 150.0, 100.0], true),
        rec(2, 300.0, 1500.0, 5, 70, &[300.0], true),
        rec(3, 400.0, 4000.0, 31, 80, &[], true),
        rec(4, 9999.0, 9999.0, 99, 99, &[1.0], false),
    ];
    let itl: Vec<f64> = records
        .iter()
        .filter(|r| r.ok())
        .flat_map(|r| r.itl_ms.clone().unwrap())
        .collect();
    let slo = Slo {
        ttft_ms: Some(250.0),
        tpot_ms: Some(150.0),
        e2el_ms: None,
    };
    let s = summarize(&records, itl, 8.0, &[50.0, 90.0, 99.0], Some(&slo), 2);
    let g = |k: &str| s.figure(k).unwrap_or_else(|| panic!("{k}"));
    let close = |k: &str, want: f64| assert!((g(k) - want).abs() < 1e-9, "{k}: {} != {want}", g(k));

    close("completed", 4.0);
    close("failed", 1.0);
    close("total_input_tokens", 260.0);
    close("total_output_tokens", 65.0);
    close("request_throughput", 0.5);
    close("output_throughput", 8.125);
    close("total_token_throughput", 40.625);
    close("output_throughput_per_gpu", 4.0625);
    // TTFT 100 200 300 400: mean 250, std sqrt(12500), p90 = 300 + 0.7·100.
    close("mean_ttft_ms", 250.0);
    close("median_ttft_ms", 250.0);
    close("std_ttft_ms", 12500f64.sqrt());
    close("p90_ttft_ms", 370.0);
    close("p99_ttft_ms", 397.0);
    // TPOT: 900/9 = 100, 1800/18 = 100, 1200/4 = 300, 3600/30 = 120.
    close("mean_tpot_ms", 155.0);
    close("median_tpot_ms", 110.0);
    close("p90_tpot_ms", 246.0);
    // ITL over all gaps of successful requests: 50 100 100 100 150 300.
    close("mean_itl_ms", 800.0 / 6.0);
    close("median_itl_ms", 100.0);
    close("p90_itl_ms", 225.0);
    close("p99_itl_ms", 292.5);
    // E2EL 1000 1500 2000 4000.
    close("mean_e2el_ms", 2125.0);
    close("median_e2el_ms", 1750.0);
    close("p99_e2el_ms", 3940.0);
    // Goodput: ttft ≤ 250 and tpot ≤ 150 → requests 0 and 1 → 2 / 8 s.
    close("request_goodput", 0.25);
    // Interactivity, both ways: 1000 / mean TPOT and 1000 / median TPOT.
    close("mean_interactivity_tok_s_user", 1000.0 / 155.0);
    close("median_interactivity_tok_s_user", 1000.0 / 110.0);
}
