//! Command line: clap definitions, exit codes and wiring. Logic lives in the other modules so
//! tests reach it without a terminal.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::config::{self, ConfigError, LoadOptions, Resolved};

/// Exit codes, documented in `--help` and the README.
pub mod exit {
    pub const OK: i32 = 0;
    /// The run started but failed (server errors past the limit, a provider failure, …).
    pub const RUN_FAILED: i32 = 1;
    /// Bad command line or configuration; nothing was spent.
    pub const USAGE: i32 = 2;
    /// `infrastructure.max_cost_usd` stopped the run: what was measured is saved (a point cut
    /// short says `max_cost_usd: …`); `run --resume` goes on with a new budget.
    pub const BUDGET_SPENT: i32 = 3;
    /// Interrupted with Ctrl-C; partial results were saved.
    pub const INTERRUPTED: i32 = 130;
}

#[derive(Debug, Parser)]
#[command(
    name = "llm-inf-bench",
    version,
    about = "Measure LLM inference servers: deploy, drive streaming load, save exact results",
    long_about = "Measure LLM inference servers. One YAML experiment file says what to deploy \
(vLLM, SGLang, llama.cpp), where (RunPod, this machine, an existing URL or the built-in \
simulator) and what load to drive; `run` shows the cost, runs it, saves a timestamped result \
JSON and always gives the pod back.",
    after_help = concat!("Examples:\n  llm-inf-bench run experiments/examples/quickstart.yaml\n  llm-inf-bench validate experiments/**/*.yaml\n  llm-inf-bench config show experiments/examples/quickstart.yaml\n  llm-inf-bench init my-experiment.yaml\n\n", "Exit codes:\n  0    success\n  1    the run failed (partial results are still saved)\n  2    usage or configuration error (nothing was started or spent)\n  3    the budget (max_cost_usd) stopped the run; what was measured is saved\n  130  interrupted (Ctrl-C, SIGTERM); partial results were saved"),
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one or more experiments: estimate cost, provision, benchmark, save, clean up.
    #[command(
        after_help = "Examples:\n  llm-inf-bench run experiments/examples/quickstart.yaml\n  llm-inf-bench run exp.yaml --set workload.concurrency=64 --set workload.requests=500\n  llm-inf-bench run exp.yaml --dry-run          # plan and cost only, spends nothing\n  llm-inf-bench run exp.yaml --yes --no-tui     # unattended (CI, nohup)\n  llm-inf-bench run exp.yaml --json > summary.json\n  llm-inf-bench run experiments/examples/deployments-sim.yaml   # a deployment matrix\n  llm-inf-bench run experiments/examples/slurm-vllm.yaml        # a Slurm batch job\n  llm-inf-bench run experiments/examples/capacity-search-sim.yaml   # the capacity under an SLO\n\nWith `deployments:` every deployment gets its own server (pod, Slurm job, local process,\nsimulator), at most `max_parallel` at once, under one confirmation and one max_cost_usd.\n\nOn a terminal a live view shows progress, latency percentiles and the server's /metrics;\nkeys: q stop sending and save (like Ctrl-C), ? help. --no-tui gives a progress bar instead."
    )]
    Run(RunArgs),
    /// Check experiment files: every key known, every type right, every combination possible.
    #[command(
        after_help = "Examples:\n  llm-inf-bench validate experiments/examples/quickstart.yaml\n  llm-inf-bench validate experiments/**/*.yaml"
    )]
    Validate {
        /// Experiment files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Inspect the resolved configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print the JSON Schema of the experiment file format (for editors), or of the files the
    /// tool writes.
    #[command(
        after_help = "Examples:\n  llm-inf-bench schema > experiment.schema.json\n  # VS Code + YAML extension: `# yaml-language-server: $schema=experiment.schema.json`\n  llm-inf-bench schema --of result        # the result file (schemas/result.schema.json)\n  llm-inf-bench schema --of sweep-index   # a sweep's index (schemas/sweep-index.schema.json)"
    )]
    Schema {
        /// Which format: `experiment` (what you write), `result` or `sweep-index` (what runs write).
        #[arg(long, default_value = "experiment", value_parser = ["experiment", "result", "sweep-index"])]
        of: String,
    },
    /// Write a commented starter experiment.
    #[command(
        after_help = "Examples:\n  llm-inf-bench init                 # writes experiment.yaml\n  llm-inf-bench init my-run.yaml --force"
    )]
    Init {
        /// Where to write it.
        #[arg(default_value = "experiment.yaml")]
        path: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Serve the built-in simulated inference server (vLLM or SGLang look-alike).
    #[command(name = "serve-sim")]
    ServeSim(Box<ServeSimArgs>),
    /// List, show and export result files.
    #[command(subcommand)]
    Results(ResultsCommand),
    /// Compare result files: what changed, and whether it is more than noise.
    #[command(
        long_about = "Compare result files: every summary figure of each file against the first (the baseline), with the change in absolute and %, its direction (lower latency, higher throughput is better) and a verdict: better, worse, or within noise.\n\nNoise: a 95% bootstrap confidence interval of the difference of each statistic, from 1000 seeded resamples of the per-request values (TTFT, TPOT, E2EL per request; ITL per gap) or, for throughputs, of the per-second buckets. A figure is better or worse only when that interval excludes zero and the change reaches --threshold. Files without per-request data (vLLM files saved without --save-detailed) are judged on the threshold alone, and the verdict says so.\n\nReads llm-inf-bench result files and `vllm bench serve --save-result` files. Warns when the runs differ in model, lengths, load or hardware.",
        after_help = "Examples:\n  llm-inf-bench compare results/base.json results/patched.json\n  llm-inf-bench compare a.json b.json c.json --format markdown >> pr-comment.md\n  llm-inf-bench compare main.json pr.json --threshold 3% --fail-on-regression   # CI gate\n\nExit codes: 0 no regression (or no --fail-on-regression), 1 a figure got worse with --fail-on-regression, 2 unreadable file or bad arguments."
    )]
    Compare(CompareArgs),
    /// Plot sweeps: throughput per GPU against interactivity and against TTFT (PNG and SVG).
    #[command(
        after_help = "Inputs are sweep index files (*.sweep.json, every point) or result files; each sweep (or experiment name) is one series, overlaid in its own colour. One row of panels per ISL/OSL; points are labelled with their concurrency; the dashed line is each series' throughput/interactivity frontier. With an SLO (flags, or the first run's metrics.slo) the best point meeting it is ringed.\n\nExamples:\n  llm-inf-bench plot results/sweep-20261125-120000.sweep.json\n  llm-inf-bench plot before.sweep.json after.sweep.json -o docs/compare.png --slo-ttft-ms 500 --slo-tpot-ms 50"
    )]
    Plot(PlotArgs),
    /// Write a markdown report of sweeps or result files (a table per ISL/OSL).
    #[command(
        after_help = "Examples:\n  llm-inf-bench report results/sweep-20261125-120000.sweep.json > report.md\n  llm-inf-bench report results/*.json --slo-ttft-ms 500 --slo-tpot-ms 50"
    )]
    Report(ReportArgs),
    /// Find and terminate pods this tool started.
    #[command(subcommand)]
    Pods(PodsCommand),
    /// Live view of any running server's /metrics (vLLM, SGLang, llama.cpp), no workload.
    #[command(
        after_help = "Keys: q quits, ? help. Without a terminal (or with --no-tui) one line per scrape.\n\nExamples:\n  llm-inf-bench monitor http://10.0.0.5:8000\n  llm-inf-bench monitor http://localhost:30000 --framework sglang --interval 500ms\n  llm-inf-bench monitor http://localhost:8000/metrics --no-tui --duration 60s > scrapes.log\n\nExit codes: 0 when at least one scrape succeeded, 1 when none did."
    )]
    Monitor(MonitorArgs),
    /// (internal) The detached pod watchdog a RunPod run starts; see the README.
    #[command(hide = true)]
    Watchdog {
        #[arg(long)]
        pod_name: String,
        #[arg(long)]
        max_lifetime_secs: u64,
    },
    /// Internal: cancels a run's Slurm jobs if the run dies (started by `run`).
    #[command(hide = true)]
    SlurmWatchdog {
        #[arg(long)]
        job_name: String,
        #[arg(long)]
        max_lifetime_secs: u64,
        #[arg(long)]
        login_host: Option<String>,
        /// The ssh command, one word per flag.
        #[arg(long, allow_hyphen_values = true)]
        ssh: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct SloArgs {
    /// SLO on median TTFT in ms (default: the first run's `metrics.slo.ttft_ms`).
    #[arg(long)]
    pub slo_ttft_ms: Option<f64>,
    /// SLO on median TPOT in ms (default: the first run's `metrics.slo.tpot_ms`).
    #[arg(long)]
    pub slo_tpot_ms: Option<f64>,
}

#[derive(Debug, Args)]
pub struct PlotArgs {
    /// Sweep index files (*.sweep.json) and/or result files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Output file; `.png` or `.svg` (default: next to the first input, both formats).
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Title above the panels.
    #[arg(long)]
    pub title: Option<String>,
    /// Output tokens per USD on the y axis (throughput ÷ the server's price per hour) instead
    /// of output tok/s per GPU; the ringed point is then the cheapest meeting the SLO.
    #[arg(long)]
    pub per_dollar: bool,
    #[command(flatten)]
    pub slo: SloArgs,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Sweep index files (*.sweep.json) and/or result files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub slo: SloArgs,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Result files; the first is the baseline.
    #[arg(required = true, num_args = 2..)]
    pub files: Vec<PathBuf>,
    /// Smallest change that counts, as `5%` or `0.05`.
    #[arg(long, default_value = "5%", value_parser = parse_share)]
    pub threshold: f64,
    /// Exit with code 1 when any figure is worse.
    #[arg(long)]
    pub fail_on_regression: bool,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = ["table", "markdown", "json"])]
    pub format: String,
}

/// `5%` → 0.05; `0.05` → 0.05.
fn parse_share(s: &str) -> Result<f64, String> {
    let v = match s.trim().strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|x| x / 100.0),
        None => s.trim().parse::<f64>(),
    }
    .map_err(|_| format!("`{s}` is not a share; write e.g. `5%` or `0.05`"))?;
    if (0.0..1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("`{s}` is outside 0%–100%"))
    }
}

#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// The server's base URL (`/metrics` is appended) or its metrics URL.
    pub url: String,
    /// Which server to expect; `auto` reads it from the metric names.
    #[arg(long, default_value = "auto", value_parser = ["auto", "vllm", "sglang", "llamacpp"])]
    pub framework: String,
    /// Time between scrapes.
    #[arg(long, value_parser = parse_dur, default_value = "1s")]
    pub interval: std::time::Duration,
    /// Stop after this long (default: until q or Ctrl-C).
    #[arg(long, value_parser = parse_dur)]
    pub duration: Option<std::time::Duration>,
    /// Print one line per scrape instead of the live view.
    #[arg(long)]
    pub no_tui: bool,
}

#[derive(Debug, Args, Default, Clone)]
pub struct Overrides {
    /// Override a key: `--set workload.concurrency=64` (repeatable; the value is read as YAML).
    #[arg(long = "set", value_name = "KEY.PATH=VALUE")]
    pub sets: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Experiment files, run one after another.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub overrides: Overrides,
    /// Do not ask before spending money.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Plain progress output instead of the live terminal view.
    #[arg(long)]
    pub no_tui: bool,
    /// Continue the newest unfinished sweep or deployment matrix of this experiment (finished
    /// points, and deployments whose points are all finished, are kept).
    #[arg(long)]
    pub resume: bool,
    /// Print the summary as JSON on stdout (progress goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Resolve, validate, estimate and print the plan; spend nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Client worker threads (one single-threaded runtime each). Default: all cores but one
    /// when the server runs on this machine, else all cores.
    #[arg(long, value_name = "N")]
    pub client_cores: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// The fully resolved experiment, each value annotated with the layer it came from.
    #[command(
        after_help = "Layers, lowest first: built-in default < user config < experiment chain (`extends`) < LLM_INF_BENCH_* environment < --set.\n\nExample:\n  LLM_INF_BENCH_WORKLOAD__CONCURRENCY=8 llm-inf-bench config show exp.yaml --set workload.requests=50"
    )]
    Show {
        file: PathBuf,
        #[command(flatten)]
        overrides: Overrides,
    },
}

#[derive(Debug, Args)]
pub struct ServeSimArgs {
    /// Which server to look like from the outside: vllm or sglang.
    #[arg(long, default_value = "vllm", value_parser = ["vllm", "sglang"])]
    pub personality: String,
    /// Engine profile (timings and capacity): h100-llama8b, a100-llama70b, instant,
    /// fixed-50ms-10ms (per-request clocks; truth at GET /sim/timings, from the socket).
    #[arg(long, default_value = "h100-llama8b", value_parser = |s: &str| s.parse::<config::SimProfile>())]
    pub profile: config::SimProfile,
    /// Model name to serve (any name; the experiment's `model.id` works).
    #[arg(long, default_value = "meta-llama/Llama-3.1-8B-Instruct")]
    pub model: String,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Seed for output lengths, token text and fault draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Time scale: 2 runs twice as fast as the profile.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Override the profile's batch limit.
    #[arg(long)]
    pub max_num_seqs: Option<usize>,
    /// Override the profile's context length.
    #[arg(long)]
    pub max_model_len: Option<u32>,
    /// Override the profile's KV-cache budget in tokens.
    #[arg(long)]
    pub kv_tokens: Option<u64>,
    /// Answer /health with 503 for this long after start (default: the profile's load time).
    #[arg(long, value_parser = parse_dur)]
    pub startup_delay: Option<std::time::Duration>,
    /// The first N output tokens of each answer are reasoning deltas.
    #[arg(long, default_value_t = 0)]
    pub reasoning_tokens: u32,
    /// This share (0–1) of each answer's tokens are reasoning deltas, sent first (as vLLM's
    /// and SGLang's reasoning parsers emit them); with --reasoning-tokens, the larger wins.
    #[arg(long, default_value_t = 0.0)]
    pub reasoning_share: f64,
    /// Keep the last N request bodies' `messages` (or `prompt`) and show them at
    /// GET /sim/requests (for tests of what a client sent; off by default).
    #[arg(long, default_value_t = 0)]
    pub record_requests: usize,
    /// Require `Authorization: Bearer KEY` on /v1/* (401 otherwise), like vLLM's --api-key.
    #[arg(long)]
    pub api_key: Option<String>,
    /// Fault: share of requests answered with --error-status.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Fault: the status for --error-rate (500, 429 with Retry-After, 400).
    #[arg(long, default_value_t = 500)]
    pub error_status: u16,
    /// Fault: share of streams cut after --cut-after chunks.
    #[arg(long, default_value_t = 0.0)]
    pub cut_rate: f64,
    #[arg(long, default_value_t = 5)]
    pub cut_after: u32,
    /// Fault: share of streams that stall for --stall before chunk --stall-after.
    #[arg(long, default_value_t = 0.0)]
    pub stall_rate: f64,
    #[arg(long, value_parser = parse_dur, default_value = "2s")]
    pub stall: std::time::Duration,
    #[arg(long, default_value_t = 3)]
    pub stall_after: u32,
    /// Fault: share of streams carrying one malformed chunk.
    #[arg(long, default_value_t = 0.0)]
    pub malformed_rate: f64,
    /// Fault: every response waits this long before its headers.
    #[arg(long, value_parser = parse_dur)]
    pub delay: Option<std::time::Duration>,
    /// Fault: close connections on accept for this long after start.
    #[arg(long, value_parser = parse_dur)]
    pub refuse_for: Option<std::time::Duration>,
    /// Fault: the first N generation requests get none of the drawn faults.
    #[arg(long, default_value_t = 0)]
    pub spare_first: u64,
    /// Fault: the server dies at generation request N (0-based): it stops listening and drops
    /// every connection, like a crashed server.
    #[arg(long)]
    pub exit_after: Option<u64>,
    /// Fault: every streaming answer is hostile: `flood` (tokens forever, max_tokens ignored),
    /// `huge-event[:BYTES]` (one SSE event of 16 MiB or BYTES), `html` (200 text/html), `gzip`
    /// (an unasked-for Content-Encoding).
    #[arg(long, value_parser = |s: &str| s.parse::<crate::sim::Hostile>())]
    pub hostile: Option<crate::sim::Hostile>,
}

fn parse_dur(s: &str) -> Result<std::time::Duration, String> {
    config::duration::parse_duration(s)
}

#[derive(Debug, Subcommand)]
pub enum ResultsCommand {
    /// Table of the runs in a results directory.
    List {
        #[arg(default_value = "results")]
        dir: PathBuf,
    },
    /// Print a result file's summary as the end of a run prints it.
    Show { file: PathBuf },
    /// Export a result file in another tool's format.
    Export {
        #[arg(long, default_value = "vllm")]
        format: String,
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum PodsCommand {
    /// What this tool rented and may still be running: RunPod pods and Slurm jobs whose name
    /// starts with `llm-inf-bench-`, with age (and $/hour for pods).
    #[command(
        after_help = "RunPod: uses RUNPOD_API_KEY (or api_keys.runpod in the user config); skipped without a key.\nSlurm: asks `squeue --me` here (with SLURM_CONF as your cluster needs), or on --login-host over ssh; skipped when there is no squeue."
    )]
    List {
        #[command(flatten)]
        which: Rented,
    },
    /// Terminate a pod or cancel a Slurm job of ours, or all of them.
    #[command(
        after_help = "A number is a Slurm job id, anything else a RunPod pod id (--provider says it outright).\nExamples:\n  llm-inf-bench pods terminate abc123xyz\n  llm-inf-bench pods terminate 4242 --provider slurm --login-host login1\n  llm-inf-bench pods terminate --all-ours --yes"
    )]
    Terminate {
        /// The pod or job id (`pods list` shows it).
        #[arg(required_unless_present = "all_ours", conflicts_with = "all_ours")]
        id: Option<String>,
        /// Every pod and job whose name starts with `llm-inf-bench-`.
        #[arg(long)]
        all_ours: bool,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
        #[command(flatten)]
        which: Rented,
    },
}

/// Which providers `pods` looks at.
#[derive(Debug, Args, Clone)]
pub struct Rented {
    /// Only this provider: `runpod` or `slurm` (default: every one that is set up here).
    #[arg(long, value_parser = ["runpod", "slurm"])]
    pub provider: Option<String>,
    /// Slurm: run squeue/scancel on this login host over ssh.
    #[arg(long)]
    pub login_host: Option<String>,
}

/// Errors that reach the binary; each knows its exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    RunFailed(String),
    #[error("{0}")]
    Interrupted(String),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Config(_) | Self::Usage(_) => exit::USAGE,
            Self::Io(_) | Self::RunFailed(_) => exit::RUN_FAILED,
            Self::Interrupted(_) => exit::INTERRUPTED,
        }
    }
}

/// Parses `std::env::args` and runs the command.
pub fn main() -> Result<i32, CliError> {
    init_tracing();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return Ok(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    run_command(cli.command)
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LLM_INF_BENCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn load_opts(o: &Overrides) -> LoadOptions {
    LoadOptions {
        sets: o.sets.clone(),
        ..LoadOptions::default()
    }
}

fn print_warnings(r: &Resolved) {
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
}

pub fn run_command(command: Command) -> Result<i32, CliError> {
    match command {
        Command::Validate { files, overrides } => validate(&files, &overrides),
        Command::Config(ConfigCommand::Show { file, overrides }) => {
            let r = config::load(&file, &load_opts(&overrides))?;
            print_warnings(&r);
            let chain: Vec<String> = r
                .files
                .iter()
                .map(|f| f.path.display().to_string())
                .collect();
            println!("# {} (chain: {})", file.display(), chain.join(" → "));
            print!("{}", r.annotated_yaml());
            Ok(exit::OK)
        }
        Command::Schema { of } => {
            let schema = match of.as_str() {
                "result" => crate::results::result_schema(),
                "sweep-index" => crate::results::index_schema(),
                _ => serde_json::to_value(schemars::schema_for!(config::Experiment))
                    .unwrap_or_default(),
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).unwrap_or_default()
            );
            Ok(exit::OK)
        }
        Command::Init { path, force } => init(&path, force),
        Command::Run(args) => run(args),
        Command::ServeSim(args) => serve_sim(*args),
        Command::Results(c) => results_cmd(c),
        Command::Compare(a) => compare(a),
        Command::Plot(a) => plot(a),
        Command::Report(a) => report(a),
        Command::Pods(c) => pods_cmd(c),
        Command::Monitor(a) => monitor(a),
        Command::Watchdog {
            pod_name,
            max_lifetime_secs,
        } => Ok(crate::provider::runpod::watchdog::serve(
            &pod_name,
            std::time::Duration::from_secs(max_lifetime_secs),
        )),
        Command::SlurmWatchdog {
            job_name,
            max_lifetime_secs,
            login_host,
            ssh,
        } => Ok(crate::provider::slurm::watchdog::serve(
            &job_name,
            login_host,
            ssh,
            std::time::Duration::from_secs(max_lifetime_secs),
        )),
    }
}

/// Series to plot or report, and the SLO (median TTFT, median TPOT in ms).
type SweepInputs = (
    Vec<crate::results::sweeps::Series>,
    Option<f64>,
    Option<f64>,
);

/// The series of `files`, and the SLO: the flags, else the first run's `metrics.slo`.
fn sweep_inputs(files: &[PathBuf], slo: &SloArgs) -> Result<SweepInputs, CliError> {
    let series = crate::results::sweeps::load(files).map_err(|e| CliError::Usage(e.to_string()))?;
    let first = series.iter().flat_map(|s| &s.points).next().map(|p| p.slo);
    let (ttft, tpot) = first.unwrap_or((None, None));
    Ok((series, slo.slo_ttft_ms.or(ttft), slo.slo_tpot_ms.or(tpot)))
}

fn plot(a: PlotArgs) -> Result<i32, CliError> {
    let (series, slo_ttft_ms, slo_tpot_ms) = sweep_inputs(&a.files, &a.slo)?;
    let o = crate::ui::plot::PlotOptions {
        slo_ttft_ms,
        slo_tpot_ms,
        title: a.title,
        per_dollar: a.per_dollar,
    };
    let outputs = match a.output {
        Some(p) => vec![p],
        None => {
            let first = &a.files[0];
            let name = first
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let stem = name
                .strip_suffix(".sweep.json")
                .or_else(|| name.strip_suffix(".json"))
                .unwrap_or(&name)
                .to_string();
            ["png", "svg"]
                .iter()
                .map(|x| first.with_file_name(format!("{stem}.{x}")))
                .collect()
        }
    };
    for out in &outputs {
        crate::ui::plot::write(&series, &o, out).map_err(|e| CliError::RunFailed(e.to_string()))?;
        println!("wrote {}", out.display());
    }
    Ok(exit::OK)
}

fn report(a: ReportArgs) -> Result<i32, CliError> {
    let (series, slo_ttft_ms, slo_tpot_ms) = sweep_inputs(&a.files, &a.slo)?;
    print!(
        "{}",
        crate::ui::report::markdown(&series, slo_ttft_ms, slo_tpot_ms)
    );
    Ok(exit::OK)
}

fn compare(a: CompareArgs) -> Result<i32, CliError> {
    use crate::results::compare;
    let loaded = a
        .files
        .iter()
        .map(|f| compare::load(f).map_err(|e| CliError::Usage(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let comparisons: Vec<_> = loaded[1..]
        .iter()
        .map(|b| compare::compare(&loaded[0], b, a.threshold))
        .collect();
    match a.format.as_str() {
        "json" => println!(
            "{}",
            serde_json::to_string_pretty(&comparisons).unwrap_or_default()
        ),
        "markdown" => {
            for c in &comparisons {
                println!("{}", compare::markdown(c));
            }
        }
        _ => {
            let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            for c in &comparisons {
                println!("{}", compare::table(c, color));
            }
        }
    }
    let worse: usize = comparisons.iter().map(|c| c.regressions()).sum();
    if a.fail_on_regression && worse > 0 {
        eprintln!("{worse} figure(s) worse than the baseline");
        return Ok(exit::RUN_FAILED);
    }
    Ok(exit::OK)
}

fn monitor(a: MonitorArgs) -> Result<i32, CliError> {
    use crate::config::FrameworkKind as Framework;
    if a.interval < std::time::Duration::from_millis(100) {
        return Err(CliError::Usage("--interval must be at least 100ms".into()));
    }
    if !a.url.starts_with("http://") && !a.url.starts_with("https://") {
        return Err(CliError::Usage(format!(
            "`{}` is not an http:// or https:// URL (e.g. http://localhost:8000)",
            a.url
        )));
    }
    let framework = match a.framework.as_str() {
        "vllm" => Some(Framework::Vllm),
        "sglang" => Some(Framework::Sglang),
        "llamacpp" => Some(Framework::Llamacpp),
        _ => None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (gaps, scrapes) = rt.block_on(crate::run::monitor::monitor(
        crate::run::monitor::MonitorOptions {
            url: a.url.clone(),
            framework,
            interval: a.interval,
            duration: a.duration,
            tui: !a.no_tui && std::io::stdout().is_terminal() && std::io::stdin().is_terminal(),
        },
    ));
    eprintln!("{scrapes} scrapes, {gaps} failed");
    if scrapes > 0 && gaps == scrapes {
        return Err(CliError::RunFailed(format!(
            "no scrape of {} succeeded",
            crate::run::monitor::metrics_url(&a.url)
        )));
    }
    Ok(exit::OK)
}

fn serve_sim(a: ServeSimArgs) -> Result<i32, CliError> {
    let personality = if a.personality == "sglang" {
        config::Personality::Sglang
    } else {
        config::Personality::Vllm
    };
    let mut cfg = crate::sim::SimConfig::new(a.profile, personality, a.model.clone());
    cfg.seed = a.seed;
    cfg.speed = a.speed;
    cfg.max_num_seqs = a.max_num_seqs;
    cfg.max_model_len = a.max_model_len;
    cfg.kv_tokens = a.kv_tokens;
    cfg.startup_delay = a.startup_delay;
    cfg.reasoning_tokens = a.reasoning_tokens;
    cfg.reasoning_share = a.reasoning_share.clamp(0.0, 1.0);
    cfg.record_requests = a.record_requests;
    cfg.api_key = a.api_key.filter(|k| !k.is_empty()).map(config::Secret::new);
    for (name, rate) in [
        ("--error-rate", a.error_rate),
        ("--cut-rate", a.cut_rate),
        ("--stall-rate", a.stall_rate),
        ("--malformed-rate", a.malformed_rate),
    ] {
        if !(0.0..=1.0).contains(&rate) {
            return Err(CliError::Usage(format!(
                "{name} is a share between 0 and 1, found {rate}"
            )));
        }
    }
    cfg.faults = crate::sim::Faults {
        error_rate: a.error_rate,
        error_status: a.error_status,
        cut_rate: a.cut_rate,
        cut_after: a.cut_after,
        stall_rate: a.stall_rate,
        stall: a.stall,
        stall_after: a.stall_after,
        malformed_rate: a.malformed_rate,
        delay: a.delay.unwrap_or_default(),
        refuse_for: a.refuse_for.unwrap_or_default(),
        spare_first: a.spare_first,
        exit_after: a.exit_after,
        hostile: a.hostile,
    };
    // One descriptor per client connection: as many as this process may have.
    crate::client::limits::raise_to_hard();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let addr = format!("{}:{}", a.host, a.port);
        let handle = crate::sim::start(cfg, &addr)
            .await
            .map_err(|e| CliError::Usage(e.to_string()))?;
        eprintln!(
            "serve-sim: {} ({} personality, profile {}, model {}) — Ctrl-C to stop",
            handle.base_url(),
            a.personality,
            a.profile,
            a.model
        );
        let _ = tokio::signal::ctrl_c().await;
        handle.stop().await;
        Ok::<_, CliError>(())
    })?;
    Ok(exit::OK)
}

fn validate(files: &[PathBuf], overrides: &Overrides) -> Result<i32, CliError> {
    let mut failed = 0;
    for f in files {
        match config::validate_file(f, &load_opts(overrides)) {
            Ok(config::Validated::Base(_)) => println!(
                "ok  {} (base file: keys and types checked; experiments complete it with `extends`)",
                f.display()
            ),
            // A dataset, trace or conversation file is read and checked line by line too:
            // what `run` would refuse, `validate` refuses.
            Ok(config::Validated::Complete(r)) => match crate::workload::source::load(&r) {
                Ok(_) => {
                    print_warnings(&r);
                    println!("ok  {}", f.display());
                }
                Err(e) => {
                    failed += 1;
                    eprintln!("error: {}: {e}", f.display());
                }
            },
            Err(e) => {
                failed += 1;
                eprintln!("error: {}: {e}", f.display());
            }
        }
    }
    if failed > 0 {
        return Err(CliError::Usage(format!(
            "{failed} of {} file(s) invalid",
            files.len()
        )));
    }
    Ok(exit::OK)
}

fn init(path: &Path, force: bool) -> Result<i32, CliError> {
    if path.exists() && !force {
        return Err(CliError::Usage(format!(
            "{} exists; pass --force to overwrite it",
            path.display()
        )));
    }
    let mut f = std::fs::File::create(path)?;
    f.write_all(STARTER.as_bytes())?;
    println!(
        "wrote {}; try `llm-inf-bench run {}`",
        path.display(),
        path.display()
    );
    Ok(exit::OK)
}

fn run(args: RunArgs) -> Result<i32, CliError> {
    // A pod an earlier run's watchdog could not confirm gone may be billing: said first, loudly.
    for u in crate::provider::runpod::watchdog::unconfirmed() {
        err(&u.warning());
    }
    let mut plans = Vec::new();
    for f in &args.files {
        let r = config::load(f, &load_opts(&args.overrides))?;
        print_warnings(&r);
        // JSONL prompts are checked now, before anything is started or spent.
        plans.push(crate::run::prepare(r).map_err(|e| CliError::Usage(e.to_string()))?);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let map_err = |e: crate::run::RunError| match e {
        crate::run::RunError::Provider(crate::provider::ProviderError::NoRunPodKey) => {
            CliError::Usage(e.to_string())
        }
        crate::run::RunError::Provider(crate::provider::ProviderError::Interrupted)
        | crate::run::RunError::Interrupted => CliError::Interrupted(e.to_string()),
        crate::run::RunError::Results(crate::results::ResultsError::Resume(_)) => {
            CliError::Usage(e.to_string())
        }
        other => CliError::RunFailed(other.to_string()),
    };
    // A resume needs an unfinished sweep of the same points: checked before anything is spent.
    if args.resume {
        for m in &plans {
            let e = &m.experiment;
            if e.workload.sweep.is_none() && e.workload.search.is_none() && !m.is_matrix() {
                return Err(CliError::Usage(format!(
                    "--resume continues a sweep, a capacity search or a deployment matrix, and `{}` has no `workload.sweep`, `workload.search` or `deployments`",
                    e.name
                )));
            }
            let planned: Vec<String> = m.points().iter().map(|p| p.key()).collect();
            crate::results::index::SweepIndex::resumable(e, &planned)
                .map_err(|e| CliError::Usage(e.to_string()))?;
        }
    }
    // The plan and its cost, shown before anything is started or rented.
    let mut estimates = Vec::new();
    let mut total_usd = 0.0;
    for m in &plans {
        let each = rt.block_on(crate::run::estimate_cost(m)).map_err(map_err)?;
        for (p, estimate) in m.deployments.iter().zip(&each) {
            let line = plan_line(&p.resolved.experiment, estimate);
            match &p.deployment {
                Some(d) => eprintln!("  deployment {d}: {line}"),
                None => eprintln!("{line}"),
            }
        }
        let usd: f64 = each.iter().map(|c| c.usd()).sum();
        if m.is_matrix() {
            eprintln!("{}", matrix_line(m, &each));
        }
        total_usd += usd;
        estimates.push(each);
    }
    if args.dry_run {
        return Ok(exit::OK);
    }
    if total_usd > 0.0 && !args.yes {
        if !std::io::stdin().is_terminal() {
            return Err(CliError::Usage(format!(
                "this run rents hardware (estimate ${total_usd:.2}) and there is no terminal to confirm on; pass --yes to spend"
            )));
        }
        let go = dialoguer::Confirm::new()
            .with_prompt(format!("Rent for an estimated ${total_usd:.2}?"))
            .default(false)
            .interact()
            .map_err(|e| CliError::Usage(format!("no confirmation: {e}")))?;
        if !go {
            return Err(CliError::Usage("not confirmed; nothing was rented".into()));
        }
    }
    let mut code = exit::OK;
    for (p, estimate) in plans.iter().zip(&estimates) {
        let opts = crate::run::RunOptions {
            progress: !args.json && std::io::stderr().is_terminal(),
            tui: !args.no_tui
                && !args.json
                && std::io::stdout().is_terminal()
                && std::io::stdin().is_terminal(),
            client_cores: args.client_cores,
            estimated_cost_usd: estimate.iter().map(|c| c.usd()).collect(),
            resume: args.resume,
        };
        let outcome = rt.block_on(crate::run::run(p, &opts)).map_err(map_err)?;
        let (c, interrupted) = report_outcome(&outcome, args.json);
        code = worse(code, c);
        if interrupted {
            return Ok(exit::INTERRUPTED);
        }
    }
    Ok(code)
}

/// The exit code that says more of two runs' codes: a failure, then a spent budget, then ok.
fn worse(a: i32, b: i32) -> i32 {
    let rank = |c: i32| match c {
        exit::OK => 0,
        exit::BUDGET_SPENT => 1,
        _ => 2,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

/// Writes to stdout, ignoring a closed one (a terminal gone after SIGHUP, a closed pipe): the
/// results are saved already, and a print must not turn that into a panic.
fn out(text: &str) {
    let _ = writeln!(std::io::stdout(), "{text}");
}

/// The same for stderr.
fn err(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// Prints each point's summary, where it was saved, and what failed; the exit code it makes
/// and whether the run was interrupted.
fn report_outcome(outcome: &crate::run::Outcome, json: bool) -> (i32, bool) {
    use crate::results::Status;
    let mut code = exit::OK;
    let mut interrupted = outcome.interrupted;
    for (result, path) in &outcome.points {
        match json {
            true => out(&serde_json::to_string_pretty(&result.summary).unwrap_or_default()),
            false => out(&crate::ui::summary_table(result)),
        }
        err(&format!("saved {}", path.display()));
        match result.status {
            Status::Interrupted => interrupted = true,
            Status::Failed => {
                let why = result.error.as_deref().unwrap_or("unknown");
                let name = result.sweep_point.as_deref().unwrap_or(&result.name);
                err(&format!("error: {name} failed: {why}"));
                code = exit::RUN_FAILED;
            }
            Status::Completed => {}
        }
    }
    for n in &outcome.notes {
        err(&format!("warning: {n}"));
        code = exit::RUN_FAILED;
    }
    // A failure says more than a spent budget; both say more than success.
    if outcome.budget_spent {
        err("the budget (infrastructure.max_cost_usd) is spent: the run stopped before its plan was done");
        if code == exit::OK {
            code = exit::BUDGET_SPENT;
        }
    }
    if let Some(index) = &outcome.index {
        err(&format!(
            "sweep index {} ({} point(s) this time); `llm-inf-bench plot {}` draws it",
            index.display(),
            outcome.points.len(),
            index.display()
        ));
        if interrupted {
            err("the sweep was interrupted; `llm-inf-bench run --resume` with the same experiment finishes it");
        }
    }
    (code, interrupted)
}

/// A matrix's plan: how many deployments, how many at once, the whole cost and the most per
/// hour at any moment, and the one budget.
fn matrix_line(m: &crate::run::Matrix, each: &[crate::provider::CostEstimate]) -> String {
    let usd: f64 = each.iter().map(|c| c.usd()).sum();
    let peak = crate::run::peak_usd_per_hour(each, m.max_parallel);
    let at_once = m.max_parallel.min(m.deployments.len());
    let budget = m
        .experiment
        .infrastructure
        .max_cost_usd
        .map(|b| format!("; one budget of ${b:.2} for all of them stops every server"))
        .unwrap_or_default();
    format!(
        "plan: {} — a matrix of {} deployments, at most {at_once} at once: about ${usd:.2} in all, at most ${peak:.2}/hour while {at_once} run{budget}",
        m.experiment.name,
        m.deployments.len()
    )
}

/// One line of plan: what runs where, how long, what it costs.
fn plan_line(e: &config::Experiment, c: &crate::provider::CostEstimate) -> String {
    let bound = match (e.workload.requests, e.workload.duration) {
        _ if matches!(e.workload.dataset, config::Dataset::Trace { .. }) => {
            match e.workload.requests {
                Some(n) => format!("the trace's first {n} requests"),
                None => "the whole trace".into(),
            }
        }
        (None, None) if e.workload.sessions.is_some() => {
            format!("{} sessions", e.workload.sessions.unwrap_or(0))
        }
        (Some(n), Some(d)) if e.workload.search.is_some() => {
            format!("{n} requests or {d} per probe, whichever first")
        }
        (Some(n), Some(d)) => format!("{n} requests or {d}, whichever first"),
        (Some(n), None) if e.workload.sweep.is_some() || e.workload.search.is_some() => {
            format!("{n} requests per point")
        }

        (Some(n), None) => format!("{n} requests"),
        (None, Some(d)) => format!("{d}"),
        (None, None) => "unbounded".into(),
    };
    let points = crate::workload::sweep::expand(e);
    let pattern = match e.workload.pattern {
        _ if e.workload.search.is_some() => {
            let s = e.workload.search.clone().unwrap_or_default();
            format!(
                "capacity search over {} from {} to {}, at most {} probes, to within {}%",
                match s.over {
                    config::SearchOver::Rate => "rate",
                    config::SearchOver::Concurrency => "concurrency",
                },
                s.start,
                s.max,
                s.max_points,
                s.tolerance.0 * 100.0
            )
        }
        _ if e.workload.sweep.is_some() => {
            let labels: Vec<&str> = points.iter().map(|p| p.label.as_str()).collect();
            format!(
                "sweep of {} points [{}] on one server",
                points.len(),
                labels.join(", ")
            )
        }
        _ if matches!(e.workload.dataset, config::Dataset::Trace { .. }) => {
            "at the trace's timestamps".to_string()
        }
        config::Pattern::Sequential => "sequential".to_string(),
        config::Pattern::Concurrent
            if matches!(e.workload.dataset, config::Dataset::Conversation { .. }) =>
        {
            format!(
                "{} concurrent sessions",
                e.workload.concurrency.unwrap_or(1)
            )
        }
        config::Pattern::Concurrent => {
            format!("concurrency {}", e.workload.concurrency.unwrap_or(1))
        }
        config::Pattern::Rate => format!(
            "{} req/s ({:?})",
            e.workload.rate.unwrap_or(0.0),
            e.workload.arrival
        )
        .to_lowercase(),
    };
    let cost = match c.price_per_hour_usd {
        None => "cost: $0.00 (no rented hardware)".to_string(),
        Some(p) => {
            let budget = e
                .infrastructure
                .max_cost_usd
                .map(|b| format!("; budget ${b:.2} stops the run"))
                .unwrap_or_default();
            format!("cost: about ${:.2} (${p:.2}/hour × {:.2} h incl. provisioning and 20% margin; {}){budget}", c.usd(), c.hours, c.price_source)
        }
    };
    format!(
        "plan: {} — {} on {} ({}), {} {}, {bound} + {} warm-up; {cost}",
        e.name,
        e.model.id,
        e.infrastructure.provider.as_str(),
        e.framework.kind.as_str(),
        e.workload.dataset.kind(),
        pattern,
        e.workload.warmup_requests
    )
}

/// The RunPod API for `pods` (key from the environment or the user config).
fn runpod_api() -> Result<crate::provider::runpod::api::RunPodApi, CliError> {
    let user = config::load_user_config().map_err(CliError::Config)?;
    let key = crate::provider::runpod::api::ENV_API_KEY;
    let key = config::Secret::from_env(key)
        .or(user.api_keys.runpod)
        .ok_or_else(|| CliError::Usage(crate::provider::ProviderError::NoRunPodKey.to_string()))?;
    crate::provider::runpod::api::RunPodApi::new(key, None)
        .map_err(|e| CliError::RunFailed(e.to_string()))
}

fn pods_cmd(c: PodsCommand) -> Result<i32, CliError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let which = match &c {
        PodsCommand::List { which } | PodsCommand::Terminate { which, .. } => which.clone(),
    };
    let ours = rt.block_on(rented(&which))?;
    match c {
        PodsCommand::List { .. } => {
            println!(
                "{:<10} {:<16} {:<48} {:<13} {:>8} {:>9}",
                "provider", "id", "name", "status", "age", "$/hour"
            );
            for r in &ours {
                println!(
                    "{:<10} {:<16} {:<48} {:<13} {:>8} {:>9}",
                    r.provider, r.id, r.name, r.status, r.age, r.price
                );
            }
            if ours.is_empty() {
                println!("(no pods or jobs of ours)");
            }
            Ok(exit::OK)
        }
        PodsCommand::Terminate {
            id, all_ours, yes, ..
        } => {
            let targets: Vec<Target> = match id {
                Some(id) => {
                    let slurm = which.provider.as_deref() == Some("slurm")
                        || (which.provider.is_none()
                            && !id.is_empty()
                            && id.chars().all(|c| c.is_ascii_digit() || c == '_'));
                    vec![(if slurm { "slurm" } else { "runpod" }, id)]
                }
                None if all_ours => ours.iter().map(|r| (r.provider, r.id.clone())).collect(),
                None => Vec::new(),
            };
            terminate(&rt, &which, targets, yes)
        }
    }
}

/// A pod or job to end: its provider and id.
type Target = (&'static str, String);

/// One rented thing of ours, as `pods list` shows it.
struct RentedRow {
    provider: &'static str,
    id: String,
    name: String,
    status: String,
    age: String,
    price: String,
}

fn slurm_cluster(which: &Rented) -> crate::provider::slurm::Cluster {
    crate::provider::slurm::Cluster::of(&config::SlurmOptions {
        login_host: which.login_host.clone(),
        ..Default::default()
    })
}

/// Whether Slurm is there to ask: named, or `squeue` runs here.
fn slurm_here(which: &Rented) -> bool {
    match which.provider.as_deref() {
        Some("slurm") => true,
        Some(_) => false,
        None => {
            which.login_host.is_some()
                || std::process::Command::new("squeue")
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success())
        }
    }
}

/// Our RunPod pods (when a key is set, or RunPod is asked for) and Slurm jobs (when Slurm is
/// here, or asked for). Pods a watchdog could not confirm gone are said first.
async fn rented(which: &Rented) -> Result<Vec<RentedRow>, CliError> {
    let mut rows = Vec::new();
    let want_runpod = which.provider.as_deref() != Some("slurm");
    let key = config::Secret::from_env(crate::provider::runpod::api::ENV_API_KEY).is_some()
        || config::load_user_config().is_ok_and(|u| u.api_keys.runpod.is_some());
    if want_runpod && (key || which.provider.is_some()) {
        for p in our_runpod_pods().await? {
            rows.push(RentedRow {
                provider: "runpod",
                id: p.id.clone(),
                name: p.name().to_string(),
                status: p.status.as_str().to_string(),
                age: crate::provider::runpod::age(&p),
                price: format!("{:.2}", p.cost()),
            });
        }
    } else if want_runpod {
        err("RunPod: no API key (RUNPOD_API_KEY or api_keys.runpod); its pods are not listed");
    }
    if slurm_here(which) {
        let jobs = match crate::provider::slurm::our_jobs(&slurm_cluster(which)).await {
            Ok(jobs) => jobs,
            // Asked for: a failure is the command's. Found on PATH only: a warning.
            Err(e) if which.provider.is_some() || which.login_host.is_some() => {
                return Err(CliError::RunFailed(format!("Slurm: {e}")))
            }
            Err(e) => {
                err(&format!("warning: Slurm's squeue is here but did not answer ({e}); its jobs are not listed (--provider slurm to insist)"));
                Vec::new()
            }
        };
        for j in jobs {
            rows.push(RentedRow {
                provider: "slurm",
                id: j.id,
                name: j.name,
                status: j.state,
                age: j.elapsed,
                price: "-".into(),
            });
        }
    }
    Ok(rows)
}

/// Our live RunPod pods; warnings of unconfirmed pods first, cleared for pods now gone.
async fn our_runpod_pods() -> Result<Vec<crate::provider::runpod::answers::Pod>, CliError> {
    use crate::provider::runpod::{answers::PodStatus, watchdog};
    let api = runpod_api()?;
    // Pods a watchdog could not confirm gone are said first, even when the API is down.
    let unconfirmed = watchdog::unconfirmed();
    for u in &unconfirmed {
        err(&u.warning());
    }
    let ours = crate::provider::runpod::our_pods(&api)
        .await
        .map_err(|e| CliError::RunFailed(e.to_string()))?;
    // The listing worked: a marked pod that is no longer live is confirmed gone.
    for u in &unconfirmed {
        let live = ours
            .iter()
            .any(|p| p.name() == u.pod_name && p.status != PodStatus::Terminated);
        if !live {
            watchdog::clear_unconfirmed(&u.pod_name);
            err(&format!(
                "{}: no longer live at RunPod; the warning is cleared",
                u.pod_name
            ));
        }
    }
    Ok(ours)
}

/// Ends `targets` after one confirmation.
fn terminate(
    rt: &tokio::runtime::Runtime,
    which: &Rented,
    targets: Vec<Target>,
    yes: bool,
) -> Result<i32, CliError> {
    if targets.is_empty() {
        println!("(no pods or jobs of ours to terminate)");
        return Ok(exit::OK);
    }
    let names: Vec<String> = targets.iter().map(|(p, id)| format!("{p} {id}")).collect();
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(CliError::Usage(
                "no terminal to confirm on; pass --yes".into(),
            ));
        }
        let ok = dialoguer::Confirm::new()
            .with_prompt(format!(
                "Terminate {}: {}?",
                targets.len(),
                names.join(", ")
            ))
            .default(false)
            .interact()
            .map_err(|e| CliError::Usage(format!("no confirmation: {e}")))?;
        if !ok {
            return Err(CliError::Usage(
                "not confirmed; nothing was terminated".into(),
            ));
        }
    }
    let mut failed = 0;
    for (provider, id) in &targets {
        let done = match *provider {
            "slurm" => rt.block_on(slurm_cluster(which).cancel(id)),
            _ => rt
                .block_on(async {
                    runpod_api()?
                        .delete_pod(id)
                        .await
                        .map_err(|e| CliError::RunFailed(e.to_string()))
                })
                .map_err(|e| e.to_string()),
        };
        match done {
            Ok(()) => println!("terminated {provider} {id}"),
            Err(e) => {
                failed += 1;
                eprintln!("could not terminate {provider} {id}: {e}");
            }
        }
    }
    match failed {
        0 => Ok(exit::OK),
        n => Err(CliError::RunFailed(format!(
            "{n} pod(s) or job(s) not terminated"
        ))),
    }
}

fn results_cmd(c: ResultsCommand) -> Result<i32, CliError> {
    let read = |p: &Path| crate::results::read(p).map_err(|e| CliError::Usage(e.to_string()));
    match c {
        ResultsCommand::Show { file } => {
            println!("{}", crate::ui::summary_table(&read(&file)?));
        }
        ResultsCommand::Export { format, file } => {
            if format != "vllm" {
                return Err(CliError::Usage(format!(
                    "unknown format `{format}`; valid formats: vllm"
                )));
            }
            let v = crate::results::export_vllm(&read(&file)?);
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        ResultsCommand::List { dir } => {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", dir.display())))?
                .filter_map(|e| e.ok())
                // Regular files only: a `*.json` symlink (or FIFO) is not followed.
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            files.sort();
            println!(
                "{:<48} {:<11} {:>9} {:>7} {:>10} {:>12} {:>10}",
                "file", "status", "completed", "failed", "req/s", "out tok/s", "p99 ttft"
            );
            for f in files {
                let name = f
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                match crate::results::read(&f) {
                    Ok(r) => {
                        let g = |k: &str| r.summary.figure(k).unwrap_or(f64::NAN);
                        println!(
                            "{name:<48} {:<11} {:>9} {:>7} {:>10.2} {:>12.1} {:>10.1}",
                            r.status.as_str(),
                            g("completed"),
                            g("failed"),
                            g("request_throughput"),
                            g("output_throughput"),
                            g("p99_ttft_ms")
                        );
                    }
                    Err(_) => println!("{name:<48} (not a result file)"),
                }
            }
        }
    }
    Ok(exit::OK)
}

/// The file `init` writes.
pub const STARTER: &str = include_str!("../experiments/examples/starter.yaml");
