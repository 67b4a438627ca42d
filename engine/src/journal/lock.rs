//! The per-run lock file: an advisory `flock` (via fs2) that says "a process is driving this run".
//!
//! Why flock: the kernel releases it when the holder dies, even on SIGKILL, so a crashed run is never left
//! "locked" and no stale-lock cleanup is needed. flock locks belong to the open file description, so a
//! second open + lock in the same process conflicts too: one handle per run, even in-process.
//!
//! While held, the file contains JSON [`LockOwner`] info so `Locked` errors and `wharf status` can say who.
//! The content is only informative: whether the run is held is always decided by probing the lock.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::thread::sleep;
use std::time::Duration;

// UFCS below: std::fs::File now has inherent lock methods with the same names (different error types).
use fs2::FileExt;

use super::{JournalError, LockOwner, now_ms};

/// Held lock on one run; released on drop (or by the kernel if the process dies).
#[derive(Debug)]
pub(crate) struct RunLock {
    file: File,
    owner: LockOwner,
}

impl RunLock {
    /// Takes the lock without blocking: `Locked` (with the owner, when readable) if someone else holds it.
    pub(crate) fn acquire(path: &Path, run_id: &str) -> Result<RunLock, JournalError> {
        Self::acquire_with(path, run_id, 5)
    }

    /// Like [`RunLock::acquire`], but fails at once if the lock is held (for a prepared run
    /// directory that another process may be holding, `spare.rs`: nobody probes those).
    pub(crate) fn try_acquire(path: &Path) -> Result<RunLock, JournalError> {
        Self::acquire_with(path, "", 0)
    }

    fn acquire_with(path: &Path, run_id: &str, retries: u32) -> Result<RunLock, JournalError> {
        let io = |source| JournalError::Io { path: path.to_path_buf(), source };
        // No truncate: the current content is the owner info we may need to report.
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io)?;
        // A reader probing the lock holds it shared for a few microseconds; retry briefly so a probe racing
        // with us is not reported as "locked".
        let mut tries = 0;
        loop {
            match FileExt::try_lock_exclusive(&file) {
                Ok(()) => break,
                Err(e) if is_contended(&e) && tries < retries => {
                    tries += 1;
                    sleep(Duration::from_millis(20));
                }
                Err(e) if is_contended(&e) => {
                    return Err(JournalError::Locked { run_id: run_id.to_string(), owner: read_owner(&mut file) });
                }
                Err(e) => return Err(io(e)),
            }
        }
        let owner = current_owner(now_ms());
        let json = serde_json::to_vec(&owner)?;
        // Not synced to disk: the content is informational (the flock decides) and is stale after a crash
        // anyway, while an fdatasync here cost more than a whole no-op step (1-4 ms per run created).
        (|| {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            file.write_all(&json)
        })()
        .map_err(io)?;
        Ok(RunLock { file, owner })
    }

    pub(crate) fn owner(&self) -> &LockOwner {
        &self.owner
    }

    /// Rewrites the owner info as of now (a lock taken ahead of time for a prepared run
    /// directory, `spare.rs`, claimed now).
    pub(crate) fn restamp(&mut self) -> std::io::Result<()> {
        self.owner = current_owner(now_ms());
        let json = serde_json::to_vec(&self.owner).map_err(std::io::Error::other)?;
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(&json)
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Clear the owner info first so nobody reads it as current, then release. Errors are harmless:
        // closing the file releases the lock anyway.
        let _ = self.file.set_len(0);
        let _ = FileExt::unlock(&self.file);
    }
}

/// Who holds the lock at `path`, or None if nobody does (or the file does not exist).
/// Probes by taking a shared lock non-blockingly and releasing it at once.
pub(crate) fn probe(path: &Path) -> Result<Option<LockOwner>, JournalError> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(JournalError::Io { path: path.to_path_buf(), source }),
    };
    match FileExt::try_lock_shared(&file) {
        Ok(()) => {
            let _ = FileExt::unlock(&file);
            Ok(None)
        }
        Err(e) if is_contended(&e) => {
            // The holder writes its info right after locking; give it a moment before reporting "unknown".
            for _ in 0..5 {
                if let Some(owner) = read_owner(&mut file) {
                    return Ok(Some(owner));
                }
                sleep(Duration::from_millis(10));
            }
            Ok(Some(LockOwner {
                pid: 0,
                hostname: "unknown".into(),
                command: "unknown".into(),
                acquired_at_ms: 0,
                lease_expires_at_ms: None,
            }))
        }
        Err(source) => Err(JournalError::Io { path: path.to_path_buf(), source }),
    }
}

/// This process as a lock owner (also used by the S3 lease).
pub(crate) fn current_owner(acquired_at_ms: u64) -> LockOwner {
    LockOwner {
        pid: std::process::id(),
        hostname: hostname(),
        command: command_line(),
        acquired_at_ms,
        lease_expires_at_ms: None,
    }
}

fn is_contended(e: &std::io::Error) -> bool {
    e.kind() == fs2::lock_contended_error().kind()
}

fn read_owner(file: &mut File) -> Option<LockOwner> {
    let mut buf = Vec::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_end(&mut buf).ok()?;
    serde_json::from_slice(&buf).ok()
}

/// Without a libc/gethostname dependency: Linux exposes it in /proc; elsewhere fall back to $HOSTNAME.
/// Read once per process: every run's lock names it.
fn hostname() -> String {
    static HOSTNAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOSTNAME
        .get_or_init(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
                .unwrap_or_else(|| "unknown-host".to_string())
        })
        .clone()
}

/// The command line, program name shortened to its file name, capped so the lock file stays small.
fn command_line() -> String {
    let mut args = std::env::args();
    let prog = args.next().map(|p| Path::new(&p).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or(p));
    let mut cmd = prog.into_iter().chain(args).collect::<Vec<_>>().join(" ");
    if cmd.len() > 300 {
        let mut cut = 300;
        while !cmd.is_char_boundary(cut) {
            cut -= 1;
        }
        cmd.truncate(cut);
        cmd.push('…');
    }
    cmd
}
