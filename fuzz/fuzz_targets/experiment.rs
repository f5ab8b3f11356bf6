#![no_main]
//! `cargo fuzz run experiment`: see `llm_inf_bench::fuzz::experiment` for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    llm_inf_bench::fuzz::experiment(data);
});
