//! Every input in the committed fuzz corpora (`fuzz/corpus/<target>/`, the seeds and what
//! fuzzing kept), replayed through the fuzz entry points on every `cargo test`: a finding that
//! was fixed stays fixed, without nightly or a fuzzer.

use std::path::Path;

fn replay(target: &str, entry: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        entry(&std::fs::read(&p).unwrap());
        n += 1;
    }
    assert!(n > 0, "no corpus in {}", dir.display());
}

#[test]
fn the_http_response_corpus() {
    replay("http_response", llm_inf_bench::fuzz::http_response);
}

#[test]
fn the_sse_corpus() {
    replay("sse", llm_inf_bench::fuzz::sse);
}

#[test]
fn the_prometheus_corpus() {
    replay("prometheus", llm_inf_bench::fuzz::prometheus);
}

#[test]
fn the_experiment_corpus() {
    replay("experiment", llm_inf_bench::fuzz::experiment);
}

#[test]
fn the_jsonl_corpus() {
    replay("jsonl", llm_inf_bench::fuzz::jsonl);
}

#[test]
fn the_result_file_corpus() {
    replay("result_file", llm_inf_bench::fuzz::result_file);
}
