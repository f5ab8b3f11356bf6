//! `results list | show | export`: reading result files back — a listing, a summary or a sweep's
//! table, and tables (CSV, Parquet) or vLLM's JSON for other tools.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::args::ResultsCommand;
use super::{exit, out, outcome, CliError};

pub(super) fn results_cmd(c: ResultsCommand) -> Result<i32, CliError> {
    let read = |p: &Path| crate::results::read(p).map_err(|e| CliError::Usage(e.to_string()));
    match c {
        ResultsCommand::Show { file } if file.to_string_lossy().ends_with(".sweep.json") => {
            out(&outcome::show_index(&file)?);
        }
        ResultsCommand::Show { file } => {
            out(&crate::ui::summary_table(&read(&file)?));
        }
        ResultsCommand::Export {
            format,
            requests,
            output,
            files,
        } => export(&format, requests, output.as_deref(), &files)?,
        ResultsCommand::List { dir } => {
            let rows = crate::results::list(&dir).map_err(|e| CliError::Usage(e.to_string()))?;
            // A closed pipe (`results list | head`) ends the listing, not in a panic.
            out(crate::ui::results_list(&rows).trim_end());
        }
    }
    Ok(exit::OK)
}

/// `results export`: a table on stdout (a closed pipe ends it quietly) or in `output`, or
/// vLLM's JSON.
fn export(
    format: &str,
    requests: bool,
    output: Option<&Path>,
    files: &[PathBuf],
) -> Result<(), CliError> {
    use crate::results::{export, ResultsError};
    let usage = |e: ResultsError| CliError::Usage(e.to_string());
    let one = || match files {
        [f] => Ok(f),
        _ => Err(CliError::Usage(format!(
            "`--format {format}{}` takes one result file, got {}",
            if requests { " --requests" } else { "" },
            files.len()
        ))),
    };
    let read_at = std::time::Instant::now();
    let table = match (format, requests) {
        ("vllm", true) => {
            return Err(CliError::Usage(
                "`--requests` is a table: use `--format csv --requests` or `--format parquet --requests`".into(),
            ))
        }
        ("vllm", false) => None,
        (_, false) => Some(export::summaries(files).map_err(usage)?),
        (_, true) => Some(export::requests(one()?).map_err(usage)?),
    };
    if format == "parquet"
        && output.is_none()
        && std::io::IsTerminal::is_terminal(&std::io::stdout())
    {
        return Err(CliError::Usage(
            "Parquet is binary: give `-o FILE.parquet` (or redirect standard output)".into(),
        ));
    }
    let (sink, name): (Box<dyn std::io::Write + Send>, String) = match output {
        Some(p) => (
            Box::new(
                std::fs::File::create(p)
                    .map_err(|e| CliError::Usage(format!("{}: {e}", p.display())))?,
            ),
            p.display().to_string(),
        ),
        None => (Box::new(std::io::stdout()), "standard output".into()),
    };
    let mut sink = std::io::BufWriter::new(sink);
    let write_at = std::time::Instant::now();
    let written = match (format, table) {
        ("parquet", Some(t)) => crate::results::parquet::write(&t, &mut sink)
            .map_err(|e| ResultsError::Parquet(e.to_string())),
        (_, Some(t)) => export::write_csv(&t, &mut sink),
        (_, None) => {
            let r = crate::results::read(one()?).map_err(usage)?;
            let v = crate::results::export_vllm(&r);
            let text = serde_json::to_string_pretty(&v).unwrap_or_default() + "\n";
            sink.write_all(text.as_bytes())
                .map_err(|source| ResultsError::Write {
                    path: name.clone().into(),
                    source,
                })
        }
    };
    let written = written.and_then(|()| {
        std::io::Write::flush(&mut sink).map_err(|source| ResultsError::Write {
            path: name.into(),
            source,
        })
    });
    // `LLM_INF_BENCH_LOG=debug`: where the time went (scripts/bench.sh tables).
    tracing::debug!(
        read_s = (write_at - read_at).as_secs_f64(),
        write_s = write_at.elapsed().as_secs_f64(),
        format,
        "exported"
    );
    match written {
        Err(ResultsError::Write { source, .. })
            if source.kind() == std::io::ErrorKind::BrokenPipe =>
        {
            Ok(())
        }
        Ok(()) => {
            if let Some(p) = output {
                super::err(&format!("wrote {}", p.display()));
            }
            Ok(())
        }
        Err(e) => Err(usage(e)),
    }
}
