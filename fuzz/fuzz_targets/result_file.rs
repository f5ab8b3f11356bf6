#![no_main]
//! `cargo fuzz run result_file`: see `llm_inf_bench::fuzz::result_file` for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    llm_inf_bench::fuzz::result_file(data);
});
