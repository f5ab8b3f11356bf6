//! `llm-inf-bench`: parses the command line, calls the library, reports errors.

fn main() {
    let code = match llm_inf_bench::cli::main() {
        Ok(code) => code,
        Err(e) => {
            let code = e.exit_code();
            eprintln!("Error: {:#}", anyhow::Error::new(e));
            code
        }
    };
    std::process::exit(code);
}
