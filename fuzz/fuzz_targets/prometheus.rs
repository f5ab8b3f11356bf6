#![no_main]
//! `cargo fuzz run prometheus`: see `llm_inf_bench::fuzz::prometheus` for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    llm_inf_bench::fuzz::prometheus(data);
});
