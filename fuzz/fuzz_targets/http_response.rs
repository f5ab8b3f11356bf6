#![no_main]
//! `cargo fuzz run http_response`: see `llm_inf_bench::fuzz::http_response` for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    llm_inf_bench::fuzz::http_response(data);
});
