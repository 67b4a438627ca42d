//! Run directories prepared ahead of time.
//!
//! Creating a run makes a directory, its lock file, the journal's directories and its database
//! file: an inode each, and on a journaling filesystem each costs 0.1-0.5 ms (ext4 with `discard`
//! on this project's machines), most of the cost of a short run. So after a run is created, the
//! backend prepares the next one's in the background, under a hidden name (`runs/.spare-...`,
//! which no listing shows) with its lock already held by this process; creating the next run
//! renames it into place in one step, which is also the atomic claim of the id.
//!
//! The first spare of a state directory is `runs/.spare`: a new process (one `wharf run`) takes
//! it without listing the directory, so it too creates its run in one rename. A process that
//! exits leaves at most one spare behind, unlocked; the next process adopts it.

use super::lock::RunLock;
use super::{snapshot, views};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

/// A prepared run directory, locked by this process.
pub(crate) struct Spare {
    dir: PathBuf,
    lock: RunLock,
}

#[derive(Default)]
struct Pool {
    ready: Option<Spare>,
    preparing: bool,
    /// Spares left by exited processes were looked for (once per process: the scan reads the
    /// whole `runs/` directory). Until then, `take` tries the well-known one.
    scanned: bool,
}

/// Per `runs/` directory.
static POOLS: LazyLock<Mutex<HashMap<PathBuf, Pool>>> = LazyLock::new(Mutex::default);

/// `f` on the pool of `runs`.
fn with_pool<T>(runs: &Path, f: impl FnOnce(&mut Pool) -> T) -> T {
    let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    f(pools.entry(runs.to_path_buf()).or_default())
}

/// The first spare's name (see the module's docs); others get `-<pid>-<n>` after it.
const WELL_KNOWN: &str = ".spare";

/// What a run directory holds before sled opens it: every file a new run writes, empty. Each is
/// one that is written in place when it exists (sled's `db`; its `conf`, which sled fills when
/// empty; the event mirror, appended to) or, for the snapshot, the temporary file renamed over
/// `snapshot.json`. So creating the run makes no inode at all.
fn fill(dir: &Path) -> std::io::Result<()> {
    let journal = dir.join("journal");
    fs::create_dir_all(journal.join("blobs"))?;
    for file in [journal.join("db"), journal.join("conf"), dir.join(views::EVENTS_MIRROR), dir.join(snapshot::TMP)] {
        fs::OpenOptions::new().write(true).create(true).truncate(false).open(file)?;
    }
    Ok(())
}

/// The spare prepared for `runs`, if one is ready (in a new process: the well-known one, if
/// nobody holds it). Starts preparing the next one either way.
pub(crate) fn take(runs: &Path) -> Option<Spare> {
    // Before this process's first look at `runs`, nothing was scanned (see `prepare`).
    let (spare, first) = with_pool(runs, |pool| (pool.ready.take(), !pool.scanned));
    let spare = spare.or_else(|| if first { adopt_well_known(runs) } else { None });
    prepare(runs);
    spare
}

/// `runs/.spare`, if it exists and nobody holds it.
fn adopt_well_known(runs: &Path) -> Option<Spare> {
    let dir = runs.join(WELL_KNOWN);
    if !dir.join("journal").is_dir() {
        return None;
    }
    let lock = RunLock::try_acquire(&dir.join("lock")).ok()?;
    fill(&dir).ok()?;
    Some(Spare { dir, lock })
}

/// Claims `spare` as the run directory `dir`: a rename that fails if `dir` exists (the id is
/// taken), like `create_dir` would. On failure the spare goes back to the pool.
pub(crate) fn claim(spare: Spare, runs: &Path, dir: &Path) -> Result<RunLock, std::io::Error> {
    match rename_noreplace(&spare.dir, dir) {
        Ok(()) => {
            let mut lock = spare.lock;
            // The owner info is informational (the flock decides, lock.rs): the claim stands.
            let _ = lock.restamp();
            Ok(lock)
        }
        Err(e) => {
            with_pool(runs, |pool| {
                pool.ready.get_or_insert(spare);
            });
            Err(e)
        }
    }
}

/// Prepares a spare for `runs` in the background, unless one is ready or on its way.
fn prepare(runs: &Path) {
    let scanned = with_pool(runs, |pool| {
        if pool.ready.is_some() || pool.preparing {
            return None;
        }
        pool.preparing = true;
        Some(std::mem::replace(&mut pool.scanned, true))
    });
    let Some(scanned) = scanned else { return };
    let preparing = Preparing(runs.to_path_buf());
    let work = move || {
        let dir = &preparing.0;
        // A failure only means the next run is created the slow way.
        let spare = if scanned { make(dir).ok() } else { adopt(dir).or_else(|| make(dir).ok()) };
        with_pool(dir, |pool| {
            if pool.ready.is_none() {
                pool.ready = spare;
            }
        });
    };
    // tokio's blocking pool keeps its threads for a while: no thread is started per run.
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        drop(runtime.spawn_blocking(work));
    } else {
        let _ = std::thread::Builder::new().name("wharf-spare".into()).spawn(work);
    }
}

/// Ends a preparation of the pool of `runs/` when dropped: when it is done, or when it never ran
/// (the thread could not start, or the runtime shut down first).
struct Preparing(PathBuf);

impl Drop for Preparing {
    fn drop(&mut self) {
        with_pool(&self.0, |pool| pool.preparing = false);
    }
}

/// A spare an exited process left (its lock is free).
fn adopt(runs: &Path) -> Option<Spare> {
    for entry in fs::read_dir(runs).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(WELL_KNOWN) {
            continue;
        }
        let dir = entry.path();
        // Held: another process's spare (or being made). Free: its maker is gone.
        if let Ok(lock) = RunLock::try_acquire(&dir.join("lock")) {
            if fill(&dir).is_ok() {
                return Some(Spare { dir, lock });
            }
        }
    }
    None
}

fn make(runs: &Path) -> std::io::Result<Spare> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut dir = runs.join(WELL_KNOWN);
    if fs::create_dir(&dir).is_err() {
        dir = runs.join(format!("{WELL_KNOWN}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)));
        fs::create_dir(&dir)?;
    }
    let lock = RunLock::try_acquire(&dir.join("lock")).map_err(std::io::Error::other)?;
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
