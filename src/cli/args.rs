//! The command line's shape: every command, argument and its help (clap derive). What the
//! commands do is in `cli` (dispatch, confirmation, exit codes) and the modules it calls.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config;

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
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout.
    #[command(
        after_help = "Examples:\n  llm-inf-bench completions bash > ~/.local/share/bash-completion/completions/llm-inf-bench\n  llm-inf-bench completions zsh > \"${fpath[1]}/_llm-inf-bench\"\n  llm-inf-bench completions fish > ~/.config/fish/completions/llm-inf-bench.fish"
    )]
    Completions { shell: clap_complete::Shell },
    /// Write the man pages (llm-inf-bench.1 and one per command) into a directory.
    #[command(
        after_help = "Example:\n  llm-inf-bench man ~/.local/share/man/man1 && man llm-inf-bench"
    )]
    Man {
        /// Where to write them (created if missing).
        dir: PathBuf,
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
        long_about = "Compare result files: every summary figure of each file against the first (the baseline), with the change in absolute and %, its direction (lower latency, higher throughput is better) and a verdict: better, worse, or within noise.\n\nNoise: a 95% bootstrap confidence interval of the difference of each statistic, from 1000 seeded resamples of the per-request values (TTFT, TPOT, E2EL per request; ITL per gap) or, for throughputs, of the per-second buckets. A figure is better or worse only when that interval excludes zero and the change reaches --threshold. Files without per-request data (vLLM files saved without --save-detailed) are judged on the threshold alone, and the verdict says so. Tasks graded in both runs (`evals`) get an `eval:TASK` row, better or worse when the 95% normal interval of the difference of their scores excludes zero, whatever the threshold: any real drop in accuracy is a regression.\n\nReads llm-inf-bench result files and `vllm bench serve --save-result` files. Warns when the runs differ in model, lengths, load or hardware.",
        after_help = "Examples:\n  llm-inf-bench compare results/base.json results/patched.json\n  llm-inf-bench compare a.json b.json c.json --format markdown >> pr-comment.md\n  llm-inf-bench compare main.json pr.json --threshold 3% --fail-on-regression   # CI gate\n\nExit codes: 0 no regression (or no --fail-on-regression), 1 a figure got worse with --fail-on-regression, 2 unreadable file or bad arguments."
    )]
    Compare(CompareArgs),
    /// Plot sweeps: throughput per GPU against interactivity and against TTFT (PNG and SVG).
    #[command(
        after_help = "Inputs are sweep index files (*.sweep.json, every point) or result files; each sweep (or experiment name) is one series, overlaid in its own colour. One row of panels per ISL/OSL; points are labelled with their concurrency; the dashed line is each series' throughput/interactivity frontier. With an SLO (flags, or the first run's metrics.slo) the best point meeting it is ringed, and the TTFT axis stops at twice the TTFT SLO: points beyond sit on its edge with their value written. One legend for the figure, under the title; labels never overlap.\n\nExamples:\n  llm-inf-bench plot results/sweep-20261125-120000.sweep.json\n  llm-inf-bench plot before.sweep.json after.sweep.json -o docs/compare.png --slo-ttft-ms 500 --slo-tpot-ms 50"
    )]
    Plot(PlotArgs),
    /// Write a markdown report of sweeps or result files (a table per ISL/OSL).
    #[command(
        after_help = "Examples:\n  llm-inf-bench report results/sweep-20261125-120000.sweep.json > report.md\n  llm-inf-bench report results/*.json --slo-ttft-ms 500 --slo-tpot-ms 50\n  llm-inf-bench report results/*.sweep.json --html -o report.html   # one file to send"
    )]
    Report(ReportArgs),
    /// Find and terminate pods this tool started.
    #[command(subcommand)]
    Pods(PodsCommand),
    /// Live view of any running server's /metrics (vLLM, SGLang, llama.cpp), no workload: its
    /// gauges now and over the last 120 scrapes.
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
    /// Internal: destroys a run's Vast.ai instances if the run dies (started by `run`).
    #[command(hide = true)]
    VastWatchdog {
        #[arg(long)]
        label: String,
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
    /// One self-contained HTML file instead of markdown: the plots inline (SVG), every table,
    /// each series' experiment and environment; no scripts, readable offline.
    #[arg(long)]
    pub html: bool,
    /// Write to this file instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
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
    /// The server's base URL (`/metrics` is appended; `/prometheus/metrics` with `--framework
    /// trtllm`) or its metrics URL.
    pub url: String,
    /// Which server to expect; `auto` reads it from the metric names.
    #[arg(long, default_value = "auto", value_parser = ["auto", "vllm", "sglang", "llamacpp", "trtllm"])]
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
    /// Print one JSON document on stdout instead of the tables (progress goes to stderr): a
    /// single run's summary; for a sweep, search or matrix `{"points": [{"point",
    /// "deployment", "status", "file", "summary"}…], "searches": [answers…], "index": path}`.
    #[arg(long)]
    pub json: bool,
    /// Resolve, validate, estimate and print the plan; spend nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// No progress on stderr (the plan, warnings, errors and `saved …` still are).
    #[arg(long, short)]
    pub quiet: bool,
    /// Without a terminal on stderr (nohup, CI, a batch job), a plain progress line this often
    /// (done / failed / in flight, req/s, p50 TTFT, elapsed and ETA), e.g. `30s`.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_dur)]
    pub progress_every: std::time::Duration,
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
    /// Which server to look like from the outside: vllm, sglang or trtllm (TensorRT-LLM's
    /// `trtllm-serve`: its metrics at `/prometheus/metrics`).
    #[arg(long, default_value = "vllm", value_parser = ["vllm", "sglang", "trtllm"])]
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
    /// Speculative decoding: K draft tokens per engine step (1–16), verified at the cost of K
    /// more sequences in the batch; `/metrics` carries vLLM's spec-decode counters.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub spec_tokens: Option<u32>,
    /// With --spec-tokens: the chance each draft token is accepted, given the ones before it
    /// were (0–1).
    #[arg(long, default_value_t = 0.7, requires = "spec_tokens")]
    pub spec_acceptance: f64,
    /// Answer a graded set from its key ("The answer is 42."): a built-in set's name
    /// (`arithmetic`) or a JSONL file of `{"prompt", "answer"}` lines. Repeatable.
    #[arg(long)]
    pub answer_key: Vec<String>,
    /// With --answer-key: the share of items answered wrongly (0–1), spread evenly through
    /// each set (exactly ⌊n·rate⌋ of any first n items).
    #[arg(long, default_value_t = 0.0, requires = "answer_key")]
    pub answer_error_rate: f64,
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
    /// A model that never emits EOS (as a random-weight one): every answer runs to its cap, as
    /// with `ignore_eos` — for APIs that cannot ask for it (`api: messages`).
    #[arg(long)]
    pub never_eos: bool,
    /// Serve these LoRA adapters beside the model (comma-separated names): a request's
    /// `model` may name one (`/v1/models` lists them).
    #[arg(long, value_delimiter = ',')]
    pub adapters: Vec<String>,
    /// An engine step holding any adapter's request takes this much longer (0.2: 20 %).
    #[arg(long, default_value_t = 0.0)]
    pub lora_slowdown: f64,
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
    /// Print a result file's summary as the end of a run prints it; of a sweep index
    /// (`*.sweep.json`), its table: a row per point (the table a sweep ends with) and each
    /// capacity search's answer.
    Show { file: PathBuf },
    /// Export results as a table (`csv` or `parquet`: one row per point, across result files
    /// and sweep indexes; with `--requests`, one row per request of one result file) or in
    /// another tool's format (`vllm`: `vllm bench serve`'s JSON, one result file).
    #[command(
        after_help = "Examples:\n  llm-inf-bench results export --format csv results/*.sweep.json > points.csv\n  llm-inf-bench results export --format parquet --requests results/run.json -o requests.parquet\n  python3 -c \"import pandas as pd; print(pd.read_csv('points.csv'))\"\n  duckdb -c \"SELECT point, p99_ttft_ms FROM 'points.csv' ORDER BY request_throughput\"\n  duckdb -c \"SELECT avg(ttft_ms) FROM 'requests.parquet' WHERE ok\""
    )]
    Export {
        /// `csv`, `parquet` (columnar, typed, Snappy-compressed) or `vllm`.
        #[arg(long, default_value = "vllm", value_parser = ["csv", "parquet", "vllm"])]
        format: String,
        /// One row per request (its side file included) instead of one per point: one result
        /// file.
        #[arg(long)]
        requests: bool,
        /// Write to this file instead of standard output (Parquet is binary: a file, or a pipe).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Result files and sweep indexes (`*.sweep.json`: every point).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PodsCommand {
    /// What this tool rented and may still be running: RunPod pods, Vast.ai instances and
    /// Slurm jobs whose name (Vast: label) starts with `llm-inf-bench-`, with age (and $/hour
    /// for pods and instances).
    #[command(
        after_help = "RunPod: uses RUNPOD_API_KEY (or api_keys.runpod in the user config); skipped without a key.\nVast.ai: uses VAST_API_KEY (or api_keys.vast); skipped without a key.\nSlurm: asks `squeue --me` here (with SLURM_CONF as your cluster needs), or on --login-host over ssh; skipped when there is no squeue."
    )]
    List {
        #[command(flatten)]
        which: Rented,
    },
    /// Terminate a pod, destroy a Vast.ai instance or cancel a Slurm job of ours, or all of them.
    #[command(
        after_help = "An id `pods list` shows is ended where it was listed; otherwise a number is a Slurm job id (a Vast.ai instance id needs --provider vast) and anything else a RunPod pod id.\nExamples:\n  llm-inf-bench pods terminate abc123xyz\n  llm-inf-bench pods terminate 12345678 --provider vast\n  llm-inf-bench pods terminate 4242 --provider slurm --login-host login1\n  llm-inf-bench pods terminate --all-ours --yes"
    )]
    Terminate {
        /// The pod or job id (`pods list` shows it).
        #[arg(required_unless_present = "all_ours", conflicts_with = "all_ours")]
        id: Option<String>,
        /// Every pod, instance and job whose name starts with `llm-inf-bench-`.
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
    /// Only this provider: `runpod`, `vast` or `slurm` (default: every one that is set up here).
    #[arg(long, value_parser = ["runpod", "vast", "slurm"])]
    pub provider: Option<String>,
    /// Slurm: run squeue/scancel on this login host over ssh.
    #[arg(long)]
    pub login_host: Option<String>,
}
