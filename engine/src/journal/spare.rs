//! Run directories prepared ahead of time.
//!
//! Creating a run makes a directory, its lock file, the journal's directories and its database
//! file: an inode each, and on a journaling filesystem each costs 0.1-0.5 ms (ext4 with `discard`
//! on this project's machines), most of the cost of a short run. So after a run is created, the
//! backend prepares the next one's in the background, under a hidden name (`runs/.spare-...`,
//! which no listing shows) with its lock already held by this process; creating the next run
//! renames it into place in one step, which is also the atomic claim of the id.
//!
//! A process that exits leaves at most one spare behind, unlocked; the next process adopts it.

use super::lock::RunLock;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A prepared run directory, locked by this process.
pub(crate) struct Spare {
    dir: PathBuf,
    lock: RunLock,
}

#[derive(Default)]
struct Pool {
    ready: Option<Spare>,
    preparing: bool,
}

/// Per `runs/` directory.
static POOLS: Mutex<Option<HashMap<PathBuf, Pool>>> = Mutex::new(None);

const PREFIX: &str = ".spare-";

/// What a run directory holds before sled opens it (sled makes `conf` itself: its content is
/// sled's to write). `db` starts empty either way.
fn fill(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir.join("journal").join("blobs"))?;
    fs::OpenOptions::new().write(true).create(true).truncate(false).open(dir.join("journal").join("db"))?;
    Ok(())
}

/// The spare prepared for `runs`, if one is ready. Starts preparing the next one either way.
pub(crate) fn take(runs: &Path) -> Option<Spare> {
    let spare = {
        let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
        pools.get_or_insert_with(HashMap::new).get_mut(runs).and_then(|p| p.ready.take())
    };
    prepare(runs);
    spare
}

/// Claims `spare` as the run directory `dir`: a rename that fails if `dir` exists (the id is
/// taken), like `create_dir` would. On failure the spare goes back to the pool.
pub(crate) fn claim(spare: Spare, runs: &Path, dir: &Path) -> Result<RunLock, std::io::Error> {
    match rename_noreplace(&spare.dir, dir) {
        Ok(()) => {
            let mut lock = spare.lock;
            lock.restamp()?;
            Ok(lock)
        }
        Err(e) => {
            let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
            let pool = pools.get_or_insert_with(HashMap::new).entry(runs.to_path_buf()).or_default();
            if pool.ready.is_none() {
                pool.ready = Some(spare);
            }
            Err(e)
        }
    }
}

/// Prepares a spare for `runs` in the background, unless one is ready or on its way.
fn prepare(runs: &Path) {
    {
        let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
        let pool = pools.get_or_insert_with(HashMap::new).entry(runs.to_path_buf()).or_default();
        if pool.ready.is_some() || pool.preparing {
            return;
        }
        pool.preparing = true;
    }
    let dir = runs.to_path_buf();
    let spawned = std::thread::Builder::new().name("wharf-spare".into()).spawn(move || {
        let runs = dir;
        // A failure only means the next run is created the slow way.
        let spare = adopt_or_make(&runs).ok();
        let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
        let pool = pools.get_or_insert_with(HashMap::new).entry(runs).or_default();
        pool.preparing = false;
        if pool.ready.is_none() {
            pool.ready = spare;
        }
    });
    if spawned.is_err() {
        let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pool) = pools.get_or_insert_with(HashMap::new).get_mut(runs) {
            pool.preparing = false;
        }
    }
}

/// A spare an exited process left (its lock is free), or a new one.
fn adopt_or_make(runs: &Path) -> std::io::Result<Spare> {
    for entry in fs::read_dir(runs)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(PREFIX) {
            continue;
        }
        let dir = entry.path();
        // Held: another process's spare (or being made). Free: its maker is gone.
        if let Ok(lock) = RunLock::acquire(&dir.join("lock"), &name) {
            if fill(&dir).is_ok() {
                return Ok(Spare { dir, lock });
            }
        }
    }
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = runs.join(format!("{PREFIX}{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)));
    fs::create_dir(&dir)?;
    let lock = RunLock::acquire(&dir.join("lock"), PREFIX).map_err(std::io::Error::other)?;
    fill(&dir)?;
    Ok(Spare { dir, lock })
}

/// `rename(from, to)` that fails with `AlreadyExists` instead of replacing an existing `to`.
fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other);
    let (from, to) = (c(from)?, c(to)?);
    // SAFETY: two valid NUL-terminated paths; renameat2 reads them and changes nothing else.
    let rc =
        unsafe { libc::renameat2(libc::AT_FDCWD, from.as_ptr(), libc::AT_FDCWD, to.as_ptr(), libc::RENAME_NOREPLACE) };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}
