//! Command line: clap definitions, exit codes and wiring. Logic lives in the other modules so
//! tests reach it without a terminal.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::Parser;

mod args;
mod outcome;
mod results;
pub use args::*;

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
    // Colour codes only for a terminal: a log file or a pipe gets plain text.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "llm-inf-bench", &mut script);
            // A closed pipe (`completions bash | head`) ends the output, not in a panic.
            let _ = std::io::stdout().write_all(&script);
            Ok(exit::OK)
        }
        Command::Man { dir } => man(&dir),
        Command::Run(args) => run(args),
        Command::ServeSim(args) => serve_sim(*args),
        Command::Results(c) => results::results_cmd(c),
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
        Command::VastWatchdog {
            label,
            max_lifetime_secs,
        } => Ok(crate::provider::vast::watchdog::serve(
            &label,
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
    let md = crate::ui::report::markdown(&series, slo_ttft_ms, slo_tpot_ms);
    let text = match a.html {
        false => md,
        true => {
            let o = crate::ui::plot::PlotOptions {
                slo_ttft_ms,
                slo_tpot_ms,
                title: None,
                per_dollar: false,
            };
            // Nothing to plot is a sentence in the page, not a failed report.
            let svgs: Vec<(String, String)> = crate::ui::plot::svg(&series, &o)
                .map(|svg| vec![("Throughput per GPU against interactivity (tok/s per user), and TTFT, per ISL/OSL".to_string(), svg)])
                .unwrap_or_default();
            crate::ui::html::page(&md, &svgs, &crate::ui::html::runs_of(&series))
        }
    };
    match &a.output {
        Some(p) => {
            std::fs::write(p, text.as_bytes())
                .map_err(|e| CliError::Usage(format!("{}: {e}", p.display())))?;
            err(&format!("wrote {}", p.display()));
        }
        None => {
            let _ = std::io::stdout().write_all(text.as_bytes());
        }
    }
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
        "trtllm" => Some(Framework::Trtllm),
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
            crate::run::monitor::metrics_url(&a.url, framework)
        )));
    }
    Ok(exit::OK)
}

fn serve_sim(a: ServeSimArgs) -> Result<i32, CliError> {
    let personality = match a.personality.as_str() {
        "sglang" => config::Personality::Sglang,
        "trtllm" => config::Personality::Trtllm,
        _ => config::Personality::Vllm,
    };
    let mut cfg = crate::sim::SimConfig::new(a.profile, personality, a.model.clone());
    cfg.seed = a.seed;
    cfg.speed = a.speed;
    cfg.max_num_seqs = a.max_num_seqs;
    cfg.max_model_len = a.max_model_len;
    cfg.kv_tokens = a.kv_tokens;
    cfg.spec_decode = a
        .spec_tokens
        .map(|k| (k, a.spec_acceptance.clamp(0.0, 1.0)));
    if !a.answer_key.is_empty() {
        let key = crate::evals::AnswerKey::named(&a.answer_key, a.answer_error_rate)
            .map_err(|m| CliError::Usage(format!("--answer-key: {m}")))?;
        cfg.answer_key = Some(std::sync::Arc::new(key));
    }
    cfg.startup_delay = a.startup_delay;
    cfg.reasoning_tokens = a.reasoning_tokens;
    cfg.reasoning_share = a.reasoning_share.clamp(0.0, 1.0);
    cfg.never_eos = a.never_eos;
    cfg.adapters = a.adapters.clone();
    cfg.lora_slowdown = a.lora_slowdown.max(0.0);
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
    for u in crate::provider::watchdog::unconfirmed() {
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
        crate::run::RunError::Provider(
            crate::provider::ProviderError::NoRunPodKey | crate::provider::ProviderError::NoVastKey,
        ) => CliError::Usage(e.to_string()),
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
            crate::run::plan::resumable(m).map_err(|e| CliError::Usage(e.to_string()))?;
        }
    }
    // The plan and its cost, shown before anything is started or rented.
    let mut estimates = Vec::new();
    let mut total_usd = 0.0;
    for m in &plans {
        let plan = rt
            .block_on(crate::run::plan::Plan::of(m))
            .map_err(map_err)?;
        eprint!("{plan}");
        total_usd += plan.total_usd();
        estimates.push(plan.estimates);
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
            progress: progress_mode(&args),
            tui: !args.no_tui
                && !args.json
                && std::io::stdout().is_terminal()
                && std::io::stdin().is_terminal(),
            client_cores: args.client_cores,
            estimated_cost_usd: estimate.iter().map(|c| c.usd()).collect(),
            resume: args.resume,
        };
        let outcome = rt.block_on(crate::run::run(p, &opts)).map_err(map_err)?;
        let (c, interrupted) = outcome::report_outcome(&outcome, args.json);
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

/// Progress on stderr: nothing with `--quiet` (or `--json` on a terminal: the bar would mix with
/// the document's terminal); a bar on a terminal; plain lines elsewhere.
fn progress_mode(args: &RunArgs) -> crate::run::progress::ProgressMode {
    use crate::run::progress::ProgressMode;
    let terminal = std::io::stderr().is_terminal();
    match (args.quiet, args.json, terminal) {
        (true, _, _) | (false, true, true) => ProgressMode::Off,
        (false, false, true) => ProgressMode::Bar,
        (false, _, false) => ProgressMode::Lines(
            args.progress_every
                .max(std::time::Duration::from_millis(100)),
        ),
    }
}

/// A provider's failure as the command's: no RunPod key is a usage error.
fn provider_error(e: crate::provider::ProviderError) -> CliError {
    match e {
        crate::provider::ProviderError::NoRunPodKey | crate::provider::ProviderError::NoVastKey => {
            CliError::Usage(e.to_string())
        }
        e => CliError::RunFailed(e.to_string()),
    }
}

fn pods_cmd(c: PodsCommand) -> Result<i32, CliError> {
    use crate::provider::rented;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let which = match &c {
        PodsCommand::List { which } | PodsCommand::Terminate { which, .. } => rented::Which {
            provider: which.provider.clone(),
            login_host: which.login_host.clone(),
        },
    };
    let ours = rt.block_on(rented::list(&which)).map_err(provider_error)?;
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
                println!("(no pods, instances or jobs of ours)");
            }
            Ok(exit::OK)
        }
        PodsCommand::Terminate {
            id, all_ours, yes, ..
        } => {
            let targets = rented::targets(&which, id, all_ours, &ours);
            terminate(&rt, &which, targets, yes)
        }
    }
}

/// Ends `targets` after one confirmation.
fn terminate(
    rt: &tokio::runtime::Runtime,
    which: &crate::provider::rented::Which,
    targets: Vec<crate::provider::rented::Target>,
    yes: bool,
) -> Result<i32, CliError> {
    if targets.is_empty() {
        println!("(no pods, instances or jobs of ours to terminate)");
        return Ok(exit::OK);
    }
    let names: Vec<String> = targets.iter().map(|(p, id)| format!("{p} {id}")).collect();
    if !yes {
        confirm(
            &format!("Terminate {}: {}?", targets.len(), names.join(", ")),
            "nothing was terminated",
        )?;
    }
    let mut failed = 0;
    for t in &targets {
        match rt.block_on(crate::provider::rented::end(which, t)) {
            Ok(()) => println!("terminated {} {}", t.0, t.1),
            Err(e) => {
                failed += 1;
                eprintln!("could not terminate {} {}: {e}", t.0, t.1);
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

/// Asks `prompt` on the terminal; an error (exit 2) without one, or when not confirmed.
fn confirm(prompt: &str, otherwise: &str) -> Result<(), CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Usage(
            "no terminal to confirm on; pass --yes".into(),
        ));
    }
    let ok = dialoguer::Confirm::new()
        .with_prompt(prompt)
        .default(false)
        .interact()
        .map_err(|e| CliError::Usage(format!("no confirmation: {e}")))?;
    match ok {
        true => Ok(()),
        false => Err(CliError::Usage(format!("not confirmed; {otherwise}"))),
    }
}

/// `man DIR`: `llm-inf-bench.1` and a page per command (`llm-inf-bench-run.1`, …).
fn man(dir: &Path) -> Result<i32, CliError> {
    let failed = |e: std::io::Error| CliError::Usage(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(failed)?;
    let cmd = <Cli as clap::CommandFactory>::command().name("llm-inf-bench");
    clap_mangen::generate_to(cmd, dir).map_err(failed)?;
    err(&format!("man pages written to {}", dir.display()));
    Ok(exit::OK)
}

/// The file `init` writes.
pub const STARTER: &str = include_str!("../../experiments/examples/starter.yaml");
