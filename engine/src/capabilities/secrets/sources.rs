//! Where a secret's value comes from: an environment variable of the wharf process or a file,
//! each read by the host only as the step's grants allow (`env:Read VAR`, `file:Read PATH`).
//!
//! A file is confined like `fs:Read` (workflow/paths.rs): relative to the workflow file's
//! directory and, symlinks followed, inside it; `file:Read *` therefore cannot reach
//! `/proc/self/environ` or `~/.aws/credentials`. An absolute path is read only when a grant names
//! exactly that path, without `*`. Only regular files are read, and at most [`MAX_FILE_BYTES`]:
//! `/dev/zero` or a FIFO cannot stall or fill the host.

use super::invalid;
use crate::capabilities::Capabilities;
use crate::host::bindings::WitError;
use crate::host::bindings::wharf::plugin::secrets::ValueSource;
use crate::workflow::paths;
use std::path::{Path, PathBuf};
use tokio::io::AsyncReadExt;

/// The most a secret file may hold: what Secrets Manager accepts as one secret value (64 KiB).
pub const MAX_FILE_BYTES: u64 = 64 * 1024;

pub(super) async fn read_source(caps: &Capabilities, source: &ValueSource) -> Result<String, WitError> {
    match source {
        ValueSource::Env(var) => {
            caps.authorize("env:Read", var)?;
            let value = std::env::var(var).map_err(|e| match e {
                std::env::VarError::NotPresent => {
                    invalid("EnvNotSet", format!("environment variable {var} is not set in the wharf process"))
                }
                std::env::VarError::NotUnicode(_) => {
                    invalid("EnvNotUnicode", format!("environment variable {var} is not valid UTF-8"))
                }
            })?;
            non_empty(value, &format!("environment variable {var}"))
        }
        ValueSource::File(path) => {
            let full = granted_file(caps, path)?;
            let bytes = read_capped(&full, path).await?;
            let text = String::from_utf8(bytes)
                .map_err(|_| invalid("FileNotUtf8", format!("secret file {path} is not UTF-8 text")))?;
            // Files written with `echo` end in a newline that is not part of the secret.
            let text = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
            non_empty(text.to_string(), &format!("secret file {path}"))
        }
    }
}

/// The real path of the secret file `path`, if the step may read it.
fn granted_file(caps: &Capabilities, path: &str) -> Result<PathBuf, WitError> {
    if Path::new(path).is_absolute() {
        // Outside the workflow's directory a pattern is no grant: only a line naming this file.
        let why = "an absolute path is granted only by a line naming it, without `*`";
        return caps.authorize_exact("file:Read", path, why).map(|_| PathBuf::from(path));
    }
    // Checked before the grant: `..` would let `file:Read secrets/*` reach outside `secrets/`.
    if !paths::is_plain_relative(path) {
        return Err(invalid("InvalidPath", format!("secret file path {path} must not contain `..`")));
    }
    caps.authorize("file:Read", path)?;
    paths::resolve_inside(caps.base_dir(), path).map_err(|e| invalid("InvalidPath", format!("secret file {e}")))
}

/// At most [`MAX_FILE_BYTES`] of the regular file at `full`; errors name `shown`, never content.
async fn read_capped(full: &Path, shown: &str) -> Result<Vec<u8>, WitError> {
    let unreadable = |e: std::io::Error| {
        invalid("FileUnreadable", format!("secret file {shown} ({}) cannot be read: {}", full.display(), e.kind()))
    };
    // Non-blocking open: opening a FIFO would otherwise wait for a writer. The type is checked
    // on the opened file, so a swap after a check cannot slip a device in.
    let file = tokio::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(full)
        .await
        .map_err(unreadable)?;
    if !file.metadata().await.map_err(unreadable)?.is_file() {
        return Err(invalid(
            "NotARegularFile",
            format!("secret file {shown} ({}) is not a regular file", full.display()),
        ));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).await.map_err(unreadable)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        let limit = MAX_FILE_BYTES / 1024;
        return Err(invalid("FileTooLarge", format!("secret file {shown} is larger than the limit of {limit} KiB")));
    }
    Ok(bytes)
}

fn non_empty(value: String, what: &str) -> Result<String, WitError> {
    if value.is_empty() { Err(invalid("EmptySecretValue", format!("{what} is empty"))) } else { Ok(value) }
}
