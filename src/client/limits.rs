//! How many connections this process may hold: one file descriptor per open stream. Linux's
//! default soft limit (1 024) is far below what a benchmark of thousands of concurrent streams
//! needs, while the hard limit is usually much higher (1 048 576 on current distributions): the
//! soft limit is raised to what a run needs (up to the hard one) before it starts, and a run
//! that needs more than even the hard limit allows is refused up front with the numbers —
//! never "completed" with every connection past the limit failing.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Descriptors a run needs beside its streams: the runtime, the log and result files, the
/// scraper, the live view, a provider's API client.
pub const SPARE_FILES: u64 = 64;

/// What [`ensure_open_files`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Raised {
    /// The soft limit already allowed it.
    Enough { soft: u64 },
    /// The soft limit was raised from `from` to `to`.
    Raised { from: u64, to: u64 },
}

/// Makes room for `streams` open streams (plus [`SPARE_FILES`]): raises the soft limit when
/// needed and allowed; an error with the numbers when even the hard limit is too low.
pub fn ensure_open_files(streams: u64) -> Result<Raised, String> {
    let needed = streams.saturating_add(SPARE_FILES);
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)
        .map_err(|e| format!("cannot read the open-file limit: {e}"))?;
    if soft >= needed {
        return Ok(Raised::Enough { soft });
    }
    if hard < needed {
        return Err(format!(
            "{streams} concurrent streams need about {needed} open files, and this process may open at most {hard} (hard limit; soft {soft}): lower the concurrency, or raise the limit (`ulimit -Hn {needed}` as root, or `nofile` in /etc/security/limits.conf)"
        ));
    }
    // Raised to what is needed with room to spare, never past the hard limit.
    let to = needed.saturating_mul(2).min(hard);
    setrlimit(Resource::RLIMIT_NOFILE, to, hard)
        .map_err(|e| format!("cannot raise the open-file limit from {soft} to {to}: {e}"))?;
    Ok(Raised::Raised { from: soft, to })
}

/// Raises the soft open-file limit to the hard one (a server that accepts whatever comes:
/// `serve-sim`); the new soft limit. Best effort: the old one when it cannot.
pub fn raise_to_hard() -> u64 {
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(_) => soft,
        },
        Ok((soft, _)) => soft,
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_need_is_met_and_an_impossible_one_is_refused_with_the_numbers() {
        assert!(matches!(ensure_open_files(1), Ok(Raised::Enough { .. })));
        let e = ensure_open_files(u64::MAX - 10).unwrap_err();
        assert!(
            e.contains("concurrent streams need about") && e.contains("hard limit"),
            "{e}"
        );
    }
}
