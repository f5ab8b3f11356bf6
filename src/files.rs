//! Reading a file the user or a result names, bounded: a regular file only (never a device
//! such as `/dev/zero`, a FIFO that blocks until someone writes, or a directory), no larger than
//! a stated cap — checked before a byte is read, and again while reading, for a file that grows.
//! Every path the tool reads on someone's word goes through here: experiment files and their
//! `extends`, datasets, traces, tokenizers, CA files, result files and their side files.

use std::io::Read;
use std::path::Path;

/// An experiment file (and each parent it extends): real ones are a few KB.
pub const MAX_EXPERIMENT_BYTES: u64 = 4 << 20;
/// A dataset, a trace or a recorded conversation file (ShareGPT's is ~0.7 GB).
pub const MAX_DATASET_BYTES: u64 = 4 << 30;
/// A `tokenizer.json` (a 256k-token vocabulary is ~35 MB).
pub const MAX_TOKENIZER_BYTES: u64 = 512 << 20;
/// A PEM file of CA certificates.
pub const MAX_CA_BYTES: u64 = 16 << 20;
/// A result file (100 000 records inline are ~40 MB).
pub const MAX_RESULT_BYTES: u64 = 2 << 30;
/// A result's side file of records (1 000 000 records are ~0.3 GB).
pub const MAX_SIDE_FILE_BYTES: u64 = 16 << 30;

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a regular file (a {0}): name a file")]
    NotRegular(&'static str),
    #[error("{size} bytes, over the {cap}-byte limit for {what}")]
    TooBig { size: u64, cap: u64, what: String },
    #[error("not UTF-8 text")]
    NotText,
}

/// What kind of thing `m` is, in words.
fn kind(m: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "device"
    } else if t.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

/// `path` is a regular file (after symlinks) of at most `cap` bytes; its size.
pub fn check(path: &Path, cap: u64, what: &str) -> Result<u64, FileError> {
    let m = std::fs::metadata(path)?;
    if !m.is_file() {
        return Err(FileError::NotRegular(kind(&m)));
    }
    if m.len() > cap {
        return Err(FileError::TooBig {
            size: m.len(),
            cap,
            what: what.to_string(),
        });
    }
    Ok(m.len())
}

/// The bytes of `path`, a regular file of at most `cap` bytes (`what` names the kind of file in
/// the error).
pub fn read_bytes(path: &Path, cap: u64, what: &str) -> Result<Vec<u8>, FileError> {
    let size = check(path, cap, what)?;
    let f = std::fs::File::open(path)?;
    let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(1 << 26));
    // One byte past the cap tells a file that grew since it was measured.
    f.take(cap + 1).read_to_end(&mut out)?;
    if out.len() as u64 > cap {
        return Err(FileError::TooBig {
            size: out.len() as u64,
            cap,
            what: what.to_string(),
        });
    }
    Ok(out)
}

/// The text of `path`, as [`read_bytes`].
pub fn read_text(path: &Path, cap: u64, what: &str) -> Result<String, FileError> {
    String::from_utf8(read_bytes(path, cap, what)?).map_err(|_| FileError::NotText)
}

/// Opens (creating it) a log file only this user can read (mode 0600): a server's log can hold
/// its key (SGLang logs its `ServerArgs`, `api_key` included) or the user's tokens.
pub fn private_log(path: &Path, append: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .mode(0o600)
        .open(path)?;
    // A file that existed keeps its mode through `open`: set it.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_fifos_directories_and_big_files_are_refused_before_reading() {
        let d = tempfile::tempdir().unwrap();
        let e = read_text(Path::new("/dev/zero"), 10, "a test").unwrap_err();
        assert!(e.to_string().contains("a device"), "{e}");
        let e = read_text(d.path(), 10, "a test").unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
        let fifo = d.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        // Opening a FIFO would block until a writer comes: refused from its metadata.
        let e = read_text(&fifo, 10, "a test").unwrap_err();
        assert!(e.to_string().contains("a FIFO"), "{e}");
        let big = d.path().join("big");
        std::fs::write(&big, "x".repeat(11)).unwrap();
        let e = read_text(&big, 10, "a test").unwrap_err();
        assert!(
            e.to_string().contains("over the 10-byte limit for a test"),
            "{e}"
        );
        std::fs::write(&big, "x".repeat(10)).unwrap();
        assert_eq!(read_text(&big, 10, "a test").unwrap().len(), 10);
        // A symlink to a regular file is that file.
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&big, &link).unwrap();
        assert!(read_text(&link, 10, "a test").is_ok());
    }

    #[test]
    fn logs_are_readable_by_their_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.server.log");
        std::fs::write(&p, "old").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        for append in [true, false] {
            drop(private_log(&p, append).unwrap());
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }
}
