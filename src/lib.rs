//! llm-inf-bench: measure LLM inference servers. The binary (`src/main.rs`) only parses and
//! reports; everything else lives here, one module per phase of a run (see DESIGN §2).

pub mod cli;
pub mod client;
pub mod config;
pub mod evals;
pub mod files;
pub mod framework;
#[doc(hidden)]
pub mod fuzz;
pub mod metrics;
pub mod provider;
pub mod results;
pub mod run;
pub mod sim;
pub mod ui;
pub mod workload;
