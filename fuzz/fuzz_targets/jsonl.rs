#![no_main]
//! `cargo fuzz run jsonl`: see `llm_inf_bench::fuzz::jsonl` for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    llm_inf_bench::fuzz::jsonl(data);
});
