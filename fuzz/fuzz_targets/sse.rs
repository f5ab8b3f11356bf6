#![no_main]
//! `cargo fuzz run sse`: see `llm_inf_bench::fuzz::sse` for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    llm_inf_bench::fuzz::sse(data);
});
