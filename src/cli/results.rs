//! `results list | show | export`: reading result files back — a listing, a summary or a sweep's
//! table, and tables (CSV) or vLLM's JSON for other tools.

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
            files,
        } => export(&format, requests, &files)?,
        ResultsCommand::List { dir } => {
            let rows = crate::results::list(&dir).map_err(|e| CliError::Usage(e.to_string()))?;
            // A closed pipe (`results list | head`) ends the listing, not in a panic.
            out(crate::ui::results_list(&rows).trim_end());
        }
    }
    Ok(exit::OK)
}

/// `results export`: a table on stdout (a closed pipe ends it quietly), or vLLM's JSON.
fn export(format: &str, requests: bool, files: &[PathBuf]) -> Result<(), CliError> {
    use crate::results::{export, ResultsError};
    let one = || match files {
        [f] => Ok(f),
        _ => Err(CliError::Usage(format!(
            "`--format {format}{}` takes one result file, got {}",
            if requests { " --requests" } else { "" },
            files.len()
        ))),
    };
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let written = match (format, requests) {
        ("vllm", false) => {
            let r = crate::results::read(one()?).map_err(|e| CliError::Usage(e.to_string()))?;
            let v = crate::results::export_vllm(&r);
            out(&serde_json::to_string_pretty(&v).unwrap_or_default());
            Ok(())
        }
        ("vllm", true) => {
            return Err(CliError::Usage(
                "`--requests` is a table: use `--format csv --requests`".into(),
            ))
        }
        (_, false) => export::summaries_csv(files, &mut stdout),
        (_, true) => export::requests_csv(one()?, &mut stdout),
    };
    let written = written.and_then(|()| {
        std::io::Write::flush(&mut stdout).map_err(|source| ResultsError::Write {
            path: "standard output".into(),
            source,
        })
    });
    match written {
        Err(ResultsError::Write { source, .. })
            if source.kind() == std::io::ErrorKind::BrokenPipe =>
        {
            Ok(())
        }
        other => other.map_err(|e| CliError::Usage(e.to_string())),
    }
}
