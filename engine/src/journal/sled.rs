//! The local backend: one sled database per run under `<state-dir>/runs/<run-id>/journal`.
//!
//! Trees and keys (chosen so sled's byte order is the order callers want):
//! - `meta`: `run` → RunRecord JSON, `format` → journal format version.
//! - `attempts`: `step_id ++ 0x00 ++ attempt(u32 BE)` → AttemptRecord JSON (step, then attempt number).
//! - `events`: `seq(u64 BE)` → Event JSON; seq starts at 1 and continues from the last key after reopen.
//! - `resources`: `kind ++ 0x00 ++ id` → LedgerEntry JSON; the key dedupes, `order` keeps creation order.

use std::collections::HashSet;
use std::fs;
use std::io::ErrorKind;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard};

use ::sled::{Db, Tree};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::lock::RunLock;
use super::spare;
use super::views::{self, Views};
use super::{
    AttemptRecord, Event, JournalError, NewEvent, Resource, RunJournal, RunRecord, RunSnapshot, RunStatus,
    StateBackend, lock, now_ms, snapshot, valid_run_id,
};

const FORMAT_VERSION: &[u8] = b"1";
const RECENT_IDS_IN_HINT: usize = 5;

/// Local-disk state backend. Cheap to create; every method works on the directory directly.
#[derive(Debug, Clone)]
pub struct SledBackend {
    root: PathBuf,
}

impl SledBackend {
    /// Uses (and creates, if needed) `<state_dir>/runs`.
    pub fn new(state_dir: &Path) -> Result<Self, JournalError> {
        let runs = state_dir.join("runs");
        fs::create_dir_all(&runs).map_err(|source| JournalError::Io { path: runs, source })?;
        Ok(SledBackend { root: state_dir.to_path_buf() })
    }

    pub fn state_dir(&self) -> &Path {
        &self.root
    }

    /// `<state-dir>/runs/<run-id>`.
    pub fn run_dir(&self, run_id: &str) -> PathBuf {
        self.root.join("runs").join(run_id)
    }

    /// Run ids (directory names) newest first. Generated ids sort by creation time.
    fn run_ids(&self) -> Result<Vec<String>, JournalError> {
        let runs = self.root.join("runs");
        let entries = fs::read_dir(&runs).map_err(|source| JournalError::Io { path: runs.clone(), source })?;
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| JournalError::Io { path: runs.clone(), source })?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if valid_run_id(&name) && entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                ids.push(name);
            }
        }
        ids.sort_unstable_by(|a, b| b.cmp(a));
        Ok(ids)
    }

    fn not_found(&self, run_id: &str) -> JournalError {
        let mut known = self.run_ids().unwrap_or_default();
        known.truncate(RECENT_IDS_IN_HINT);
        JournalError::NotFound { run_id: run_id.to_string(), known }
    }

    fn existing_run_dir(&self, run_id: &str) -> Result<PathBuf, JournalError> {
        let dir = self.run_dir(run_id);
        if valid_run_id(run_id) && dir.is_dir() { Ok(dir) } else { Err(self.not_found(run_id)) }
    }
}

impl SledBackend {
    /// Claims the id and writes the run record; `stamp` sets `updated_at_ms` to now (a new run), without it
    /// the record is kept as given (an imported run).
    fn create(&self, mut run: RunRecord, stamp: bool) -> Result<SledJournal, JournalError> {
        let dir = self.run_dir(&run.id);
        if !valid_run_id(&run.id) {
            let msg = "run ids may contain only ASCII letters, digits, `-`, `_` and `.`, and not start with `.`";
            return Err(JournalError::Io { path: dir, source: std::io::Error::new(ErrorKind::InvalidInput, msg) });
        }
        // The atomic "claim this id" step between concurrent creators: a prepared directory
        // renamed into place (spare.rs), or else create_dir (not _all).
        let runs = self.root.join("runs");
        let taken = |run_id: String| JournalError::AlreadyExists { run_id };
        let claimed = match spare::take(&runs) {
            Some(ready) => match spare::claim(ready, &runs, &dir) {
                Ok(lock) => Some(lock),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => return Err(taken(run.id)),
                Err(_) => None,
            },
            None => None,
        };
        if claimed.is_none() {
            match fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => return Err(taken(run.id)),
                Err(source) => return Err(JournalError::Io { path: dir, source }),
            }
        }
        let result = (|| {
            let lock = match claimed {
                Some(lock) => lock,
                None => RunLock::acquire(&dir.join("lock"), &run.id)?,
            };
            let now = now_ms();
            if run.created_at_ms == 0 {
                run.created_at_ms = now;
            }
            if stamp {
                run.updated_at_ms = now;
            }
            // Not flushed here: a created run's first flush is its driver's (see
            // `StateBackend::create_run`); `import_run` flushes once everything is in.
            let journal = SledJournal::open(dir.clone(), lock, Some(run))?;
            Ok(journal)
        })();
        if result.is_err() {
            // We created the directory and it never held a usable run: do not leave a "corrupt" run behind.
            let _ = fs::remove_dir_all(&dir);
        }
        result
    }
}

impl StateBackend for SledBackend {
    fn create_run(&self, run: RunRecord) -> Result<Arc<dyn RunJournal>, JournalError> {
        Ok(Arc::new(self.create(run, true)?))
    }

    fn import_run(&self, dump: super::RunDump) -> Result<(), JournalError> {
        let dir = self.run_dir(&dump.run.id);
        let journal = self.create(dump.run, false)?;
        let result = (|| {
            let err = |e| journal.sled_err(e);
            for a in &dump.attempts {
                journal.put_attempt(a)?;
            }
            for e in &dump.events {
                journal.events.insert(e.seq.to_be_bytes(), serde_json::to_vec(e)?).map_err(err)?;
            }
            for (order, r) in dump.resources.iter().enumerate() {
                let entry = LedgerEntry { order: order as u64, resource: r.clone() };
                journal.resources.insert(resource_key(&r.kind, &r.id), serde_json::to_vec(&entry)?).map_err(err)?;
            }
            {
                let mut st = journal.state();
                st.next_seq = dump.events.last().map_or(1, |e| e.seq + 1);
                st.next_order = dump.resources.len() as u64;
                st.written += 1; // the inserts above bypass the counting writers
            }
            journal.flush()
        })();
        if result.is_err() {
            drop(journal);
            let _ = fs::remove_dir_all(&dir);
        }
        result
    }

    fn open_run(&self, run_id: &str) -> Result<Arc<dyn RunJournal>, JournalError> {
        let dir = self.existing_run_dir(run_id)?;
        // Our lock first: sled's own flock would also refuse a second opener, but without saying who holds it.
        let lock = match RunLock::acquire(&dir.join("lock"), run_id) {
            // Still being closed by this process (the run just ended here): not a rival driver.
            Err(JournalError::Locked { owner: Some(o), .. }) if o.pid == std::process::id() && wait_for_close(&dir) => {
                RunLock::acquire(&dir.join("lock"), run_id)?
            }
            other => other?,
        };
        let journal = SledJournal::open(dir, lock, None)?;
        journal.check_against_snapshot()?;
        // Refresh the view (the previous driver may have died between a write and its flush).
        journal.flush()?;
        Ok(Arc::new(journal))
    }

    fn scan_runs(&self) -> Result<(Vec<RunSnapshot>, Vec<JournalError>), JournalError> {
        let mut runs = Vec::new();
        let mut broken = Vec::new();
        for id in self.run_ids()? {
            let dir = self.run_dir(&id);
            match self.read_or_repair(&dir, &id) {
                Ok(Some(s)) => runs.push(s),
                // Being created right now by another process: not a run yet; or one whose
                // process died before anything of it was recorded: never a run.
                Ok(None) | Err(JournalError::NeverRecorded { .. }) => {}
                Err(e) => broken.push(e),
            }
        }
        runs.sort_by(|a, b| (b.run.created_at_ms, &b.run.id).cmp(&(a.run.created_at_ms, &a.run.id)));
        Ok((runs, broken))
    }

    fn read_run(&self, run_id: &str) -> Result<RunSnapshot, JournalError> {
        let dir = self.existing_run_dir(run_id)?;
        // A run another process has just started has no views until its first ones are written,
        // within views::INTERVAL of its first flush: wait for them rather than call them missing.
        let deadline = std::time::Instant::now() + 4 * views::INTERVAL;
        loop {
            if let Some(snap) = self.read_or_repair(&dir, run_id)? {
                return Ok(snap);
            }
            if std::time::Instant::now() >= deadline {
                return Err(missing_snapshot(&dir, run_id));
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    fn read_events(&self, run_id: &str, step_id: Option<&str>) -> Result<Vec<Event>, JournalError> {
        let dir = self.existing_run_dir(run_id)?;
        wait_for_close(&dir);
        if lock::probe(&dir.join("lock"))?.is_none() {
            return self.open_run(run_id)?.events(step_id, None);
        }
        // Being driven by another process: read the mirror it appends to at every flush. A line cut
        // short by a write in progress is the newest one; it shows up on the next read.
        let path = dir.join(views::EVENTS_MIRROR);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(JournalError::Io { path, source }),
        };
        let events = text.lines().filter_map(|line| serde_json::from_str::<Event>(line).ok());
        Ok(events.filter(|e| step_id.is_none_or(|s| e.step_id.as_deref() == Some(s))).collect())
    }
}

impl SledBackend {
    /// A run's snapshot. A run killed before its first views were written (views.rs) has none: if
    /// no process holds it, opening it rewrites them from the journal. `Ok(None)` while another
    /// process holds a run that has none yet (it is being created).
    fn read_or_repair(&self, dir: &Path, run_id: &str) -> Result<Option<RunSnapshot>, JournalError> {
        // A run this process just finished has its last views written as it closes.
        wait_for_close(dir);
        if let Some(snap) = snapshot::read(dir, run_id)? {
            return Ok(Some(snap));
        }
        if lock::probe(&dir.join("lock"))?.is_some() {
            return Ok(None);
        }
        // No journal: a creator between claiming the id and taking the lock, or one that died
        // there. Not ours to open (that would take the lock from the creator).
        if !dir.join("journal").is_dir() {
            return Err(missing_snapshot(dir, run_id));
        }
        match self.open_run(run_id) {
            Ok(journal) => drop(journal),
            // Taken by a process that started just now: same as above.
            Err(JournalError::Locked { .. }) => return Ok(None),
            Err(e) => return Err(e),
        }
        snapshot::read(dir, run_id)?.map(Some).ok_or_else(|| missing_snapshot(dir, run_id))
    }
}

fn missing_snapshot(dir: &Path, run_id: &str) -> JournalError {
    JournalError::Corrupt {
        path: dir.join(snapshot::FILE),
        detail: "the file is missing".into(),
        hint: format!(
            "resuming run {run_id} rewrites it from the journal; if the run cannot be opened, move {} out of the \
             runs directory (other runs are unaffected)",
            dir.display()
        ),
    }
}

/// A resource plus its creation order (the ledger is keyed by (kind, id) for dedupe).
#[derive(Serialize, Deserialize)]
struct LedgerEntry {
    order: u64,
    resource: Resource,
}

/// In-memory state guarded by one mutex: also serializes writers so read-modify-write and seq allocation
/// are atomic within the process (only this process may write: it holds the run lock).
struct State {
    run: RunRecord,
    next_seq: u64,
    next_order: u64,
    /// Events up to this seq are in the `events.jsonl` mirror (None: rewrite it whole at the next
    /// flush, as after opening a run another process may have left it behind).
    mirrored_seq: Option<u64>,
    /// Group commit: writes made so far, and how many of them the last completed flush covered (None
    /// until the first flush after opening, which always runs: it rewrites the derived files). A flush
    /// that finds `flushed == Some(written)` has nothing to do: a concurrent flusher (another step of
    /// the same run) already made our writes durable while we waited for the lock.
    written: u64,
    flushed: Option<u64>,
}

/// What one flush hands to [`Views::update`].
struct ViewsOf {
    snapshot: Vec<u8>,
    events: String,
    /// The first views since opening: `events` replaces the mirror, and they are written at once.
    fresh: bool,
    /// The last event in `events`.
    last_seq: u64,
}

impl ViewsOf {
    fn hand_to(self, views: &Arc<Views>, now: bool) -> Result<(), JournalError> {
        views.update(self.snapshot, self.events, self.fresh, now)
    }
}

/// A run opened for driving.
struct SledJournal {
    // Declaration order = drop order: sled must close its files before `lock` releases the run, or the next
    // owner could open the database while we still have it open.
    db: Db,
    meta: Tree,
    attempts: Tree,
    events: Tree,
    resources: Tree,
    state: Mutex<State>,
    /// Held for a whole flush, so flushes hand their views over in order; writers only take
    /// `state` briefly, so they go on while a flush waits for the disk.
    flushing: Mutex<()>,
    views: Arc<Views>,
    run_dir: PathBuf,
    db_path: PathBuf,
    lock: RunLock,
    /// Last: dropped once the lock is released.
    #[allow(dead_code)] // held for its Drop
    closing: CloseMark,
}

/// Runs this process is closing on another thread (`close_in_background`), by run directory.
static CLOSING: LazyLock<(Mutex<HashSet<PathBuf>>, Condvar)> = LazyLock::new(Default::default);

/// Takes the run off [`CLOSING`] when its journal has been dropped, lock included.
struct CloseMark(PathBuf);

impl Drop for CloseMark {
    fn drop(&mut self) {
        let (set, closed) = &*CLOSING;
        if set.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.0) {
            closed.notify_all();
        }
    }
}

/// Waits (up to a minute) while this process closes run `dir`; false if it was not closing it.
fn wait_for_close(dir: &Path) -> bool {
    let (set, closed) = &*CLOSING;
    let guard = set.lock().unwrap_or_else(|p| p.into_inner());
    if !guard.contains(dir) {
        return false;
    }
    let _ = closed.wait_timeout_while(guard, std::time::Duration::from_secs(60), |set| set.contains(dir));
    true
}

impl SledJournal {
    /// Opens (or with `create`, initializes) the database. Must be called with the run lock held.
    fn open(run_dir: PathBuf, lock: RunLock, create: Option<RunRecord>) -> Result<SledJournal, JournalError> {
        let db_path = run_dir.join("journal");
        let run_id = run_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if create.is_none() && !db_path.is_dir() {
            return Err(corrupt(&db_path, &run_dir, &run_id, "the journal directory is missing".into()));
        }
        // sled can panic on some on-disk corruptions instead of returning an error; a damaged run must give
        // a Corrupt error, not take the process down. The panic message still goes to stderr via the hook.
        let opened = catch_unwind(AssertUnwindSafe(|| open_db(&db_path, &run_dir, &run_id, create)));
        let (db, meta, attempts, events, resources, state) = match opened {
            Ok(r) => r?,
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                return Err(corrupt(&db_path, &run_dir, &run_id, format!("the database could not be read ({msg})")));
            }
        };
        let views = Views::new(run_dir.clone(), state.mirrored_seq.is_some());
        let closing = CloseMark(run_dir.clone());
        Ok(SledJournal {
            db,
            meta,
            attempts,
            events,
            resources,
            state: Mutex::new(state),
            flushing: Mutex::new(()),
            views,
            run_dir,
            db_path,
            lock,
            closing,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the mutex cannot leave State half-updated in a way that matters: every field
        // is replaced only after the corresponding sled write succeeded.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn run_id(&self) -> String {
        self.run_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }

    fn sled_err(&self, e: ::sled::Error) -> JournalError {
        sled_error(&self.db_path, &self.run_dir, &self.run_id(), e)
    }

    fn decode<T: DeserializeOwned>(&self, tree: &str, bytes: &[u8]) -> Result<T, JournalError> {
        decode(&self.db_path, &self.run_dir, &self.run_id(), tree, bytes)
    }

    fn scan<T: DeserializeOwned>(&self, tree: &Tree, name: &str) -> Result<Vec<T>, JournalError> {
        tree.iter().values().map(|v| self.decode(name, &v.map_err(|e| self.sled_err(e))?)).collect()
    }

    /// sled treats a damaged spot in its log like a torn write and silently drops everything after it, so a
    /// damaged journal can open "fine" minus flushed steps. snapshot.json is written only after a successful
    /// sled flush, so everything it lists must be in the journal; anything missing means the journal lost
    /// data, and resuming would redo steps (and re-create resources) it already did.
    fn check_against_snapshot(&self) -> Result<(), JournalError> {
        // An unreadable or missing snapshot is not evidence against the journal; the open rewrites it.
        let Ok(Some(snap)) = snapshot::load(&self.run_dir, &self.run_id()) else { return Ok(()) };
        let mut missing = Vec::new();
        let last_seq = self.state().next_seq - 1;
        if last_seq < snap.last_event_seq {
            missing.push(format!("events {}..={}", last_seq + 1, snap.last_event_seq));
        }
        for s in &snap.steps {
            if !self.attempts.contains_key(attempt_key(&s.step_id, s.last.attempt)).map_err(|e| self.sled_err(e))? {
                missing.push(format!("attempt {} of step {}", s.last.attempt, s.step_id));
            }
        }
        for r in &snap.resources {
            if !self.resources.contains_key(resource_key(&r.kind, &r.id)).map_err(|e| self.sled_err(e))? {
                missing.push(format!("resource {} {}", r.kind, r.id));
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let more = if missing.len() > 3 { format!(" and {} more", missing.len() - 3) } else { String::new() };
        missing.truncate(3);
        let detail = format!("it lacks flushed records that {} lists ({}{more})", snapshot::FILE, missing.join(", "));
        Err(corrupt(&self.db_path, &self.run_dir, &self.run_id(), detail))
    }

    /// The views of `st` for `views` (see views.rs): the events journaled since the last flush,
    /// for the `events.jsonl` mirror that lets `wharf logs` read a run another process is driving
    /// (the first flush after opening rewrites it whole), and the snapshot.
    fn views_of(&self, st: &State) -> Result<ViewsOf, JournalError> {
        let fresh = st.mirrored_seq.is_none();
        let mut events = String::new();
        for event in &self.events(None, st.mirrored_seq)? {
            events.push_str(&serde_json::to_string(event)?);
            events.push('\n');
        }
        let owner = Some(self.lock.owner().clone());
        let snap = snapshot::build(st.run.clone(), self.attempts()?, self.resources()?, st.next_seq - 1, owner);
        Ok(ViewsOf { snapshot: snapshot::encode(&snap)?, events, fresh, last_seq: st.next_seq - 1 })
    }
}

impl Drop for SledJournal {
    fn drop(&mut self) {
        // Before the fields drop: the lock is still held, so no other driver has written views yet.
        // A finished run whose last flush left its views to this close gets them now, built from
        // flushed state only (never ahead of the journal).
        let st = self.state();
        if st.run.status != RunStatus::Running
            && st.flushed == Some(st.written)
            && let Ok(views) = self.views_of(&st)
        {
            let _ = views.hand_to(&self.views, true);
        }
        drop(st);
        self.views.write_pending();
    }
}

type Opened = (Db, Tree, Tree, Tree, Tree, State);

fn open_db(db_path: &Path, run_dir: &Path, run_id: &str, create: Option<RunRecord>) -> Result<Opened, JournalError> {
    let err = |e| sled_error(db_path, run_dir, run_id, e);
    let is_new = create.is_some();
    // No background flusher: durability points are explicit (`flush()` at step boundaries).
    let db = ::sled::Config::new().path(db_path).flush_every_ms(None).open().map_err(err)?;
    let meta = db.open_tree("meta").map_err(err)?;
    let attempts = db.open_tree("attempts").map_err(err)?;
    let events = db.open_tree("events").map_err(err)?;
    let resources = db.open_tree("resources").map_err(err)?;
    let run = match create {
        Some(run) => {
            meta.insert("format", FORMAT_VERSION).map_err(err)?;
            meta.insert("run", serde_json::to_vec(&run)?).map_err(err)?;
            run
        }
        None => {
            match meta.get("format").map_err(err)? {
                Some(v) if v.as_ref() == FORMAT_VERSION => {}
                Some(v) => {
                    let detail = format!(
                        "unsupported journal format {:?} (this wharf reads {:?})",
                        String::from_utf8_lossy(&v),
                        "1"
                    );
                    return Err(JournalError::Corrupt {
                        path: db_path.to_path_buf(),
                        detail,
                        hint: "use the wharf version that created this run".into(),
                    });
                }
                // Nothing at all, and no views (written only after a flush): the creator died
                // before its first flush (see `create_run`), not a run that lost flushed data.
                None if meta.is_empty()
                    && events.is_empty()
                    && attempts.is_empty()
                    && resources.is_empty()
                    && !run_dir.join(snapshot::FILE).exists() =>
                {
                    return Err(JournalError::NeverRecorded {
                        run_id: run_id.to_string(),
                        path: run_dir.to_path_buf(),
                    });
                }
                None => {
                    return Err(corrupt(
                        db_path,
                        run_dir,
                        run_id,
                        "it has no format marker (data lost or truncated)".into(),
                    ));
                }
            }
            let bytes = meta.get("run").map_err(err)?;
            let bytes = bytes.ok_or_else(|| {
                corrupt(db_path, run_dir, run_id, "it has no run record (data lost or truncated)".into())
            })?;
            decode::<RunRecord>(db_path, run_dir, run_id, "meta", &bytes)?
        }
    };
    let next_seq = match events.last().map_err(err)? {
        Some((k, _)) => {
            seq_of(&k).ok_or_else(|| corrupt(db_path, run_dir, run_id, "an event key is malformed".into()))? + 1
        }
        None => 1,
    };
    let mut next_order = 0;
    for v in resources.iter().values() {
        let e: LedgerEntry = decode(db_path, run_dir, run_id, "resources", &v.map_err(err)?)?;
        next_order = next_order.max(e.order + 1);
    }
    Ok((
        db,
        meta,
        attempts,
        events,
        resources,
        // A new run has no mirror yet (the first events create it); an opened one is rewritten.
        State { run, next_seq, next_order, mirrored_seq: is_new.then_some(0), written: 0, flushed: None },
    ))
}

fn seq_of(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

fn attempt_key(step_id: &str, attempt: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(step_id.len() + 5);
    k.extend_from_slice(step_id.as_bytes());
    k.push(0);
    k.extend_from_slice(&attempt.to_be_bytes());
    k
}

fn resource_key(kind: &str, id: &str) -> Vec<u8> {
    [kind.as_bytes(), &[0], id.as_bytes()].concat()
}

fn corrupt(db_path: &Path, run_dir: &Path, run_id: &str, detail: String) -> JournalError {
    JournalError::Corrupt {
        path: db_path.to_path_buf(),
        detail,
        hint: format!(
            "move {} out of the runs directory to set run {run_id} aside (other runs are unaffected); the resources \
             it created are listed in {}",
            run_dir.display(),
            run_dir.join(snapshot::FILE).display()
        ),
    }
}

fn sled_error(db_path: &Path, run_dir: &Path, run_id: &str, e: ::sled::Error) -> JournalError {
    match e {
        // Unsupported is what sled reports for an unreadable `conf` file ("created by an old sled version").
        ::sled::Error::Corruption { .. } | ::sled::Error::ReportableBug(_) | ::sled::Error::Unsupported(_) => {
            corrupt(db_path, run_dir, run_id, e.to_string())
        }
        ::sled::Error::Io(ref io) if matches!(io.kind(), ErrorKind::UnexpectedEof | ErrorKind::InvalidData) => {
            corrupt(db_path, run_dir, run_id, e.to_string())
        }
        // Plain I/O (disk full, permissions): the OS message with the path, not sled's Debug text.
        ::sled::Error::Io(source) => JournalError::Io { path: db_path.to_path_buf(), source },
        source => JournalError::Sled { path: db_path.to_path_buf(), source },
    }
}

fn decode<T: DeserializeOwned>(
    db_path: &Path,
    run_dir: &Path,
    run_id: &str,
    tree: &str,
    bytes: &[u8],
) -> Result<T, JournalError> {
    serde_json::from_slice(bytes)
        .map_err(|e| corrupt(db_path, run_dir, run_id, format!("a record in tree `{tree}` cannot be decoded: {e}")))
}

impl RunJournal for SledJournal {
    fn run(&self) -> RunRecord {
        self.state().run.clone()
    }

    fn update_run(&self, f: &mut dyn FnMut(&mut RunRecord)) -> Result<(), JournalError> {
        let mut st = self.state();
        let mut run = st.run.clone();
        f(&mut run);
        run.id = st.run.id.clone(); // the id names the directory; it cannot change
        run.updated_at_ms = now_ms();
        self.meta.insert("run", serde_json::to_vec(&run)?).map_err(|e| self.sled_err(e))?;
        st.run = run;
        st.written += 1;
        Ok(())
    }

    fn put_attempt(&self, a: &AttemptRecord) -> Result<(), JournalError> {
        let mut st = self.state();
        self.attempts
            .insert(attempt_key(&a.step_id, a.attempt), serde_json::to_vec(a)?)
            .map_err(|e| self.sled_err(e))?;
        st.written += 1;
        Ok(())
    }

    fn attempts(&self) -> Result<Vec<AttemptRecord>, JournalError> {
        self.scan(&self.attempts, "attempts")
    }

    fn append_event(&self, e: NewEvent) -> Result<u64, JournalError> {
        let mut st = self.state();
        let seq = st.next_seq;
        let event = Event { seq, at_ms: now_ms(), step_id: e.step_id, kind: e.kind, message: e.message };
        self.events.insert(seq.to_be_bytes(), serde_json::to_vec(&event)?).map_err(|e| self.sled_err(e))?;
        st.next_seq += 1;
        st.written += 1;
        Ok(seq)
    }

    fn events(&self, step_id: Option<&str>, after_seq: Option<u64>) -> Result<Vec<Event>, JournalError> {
        let start = match after_seq {
            None => 0,
            Some(s) => match s.checked_add(1) {
                Some(s) => s,
                None => return Ok(Vec::new()),
            },
        };
        let mut out = Vec::new();
        for v in self.events.range(start.to_be_bytes()..).values() {
            let ev: Event = self.decode("events", &v.map_err(|e| self.sled_err(e))?)?;
            if step_id.is_none_or(|s| ev.step_id.as_deref() == Some(s)) {
                out.push(ev);
            }
        }
        Ok(out)
    }

    fn record_resource(&self, r: &Resource) -> Result<bool, JournalError> {
        let mut st = self.state();
        let key = resource_key(&r.kind, &r.id);
        if self.resources.contains_key(&key).map_err(|e| self.sled_err(e))? {
            return Ok(false);
        }
        let entry = LedgerEntry { order: st.next_order, resource: r.clone() };
        self.resources.insert(key, serde_json::to_vec(&entry)?).map_err(|e| self.sled_err(e))?;
        st.next_order += 1;
        st.written += 1;
        Ok(true)
    }

    fn mark_resource_deleted(&self, kind: &str, id: &str) -> Result<(), JournalError> {
        let mut st = self.state();
        let key = resource_key(kind, id);
        let Some(v) = self.resources.get(&key).map_err(|e| self.sled_err(e))? else { return Ok(()) };
        let mut entry: LedgerEntry = self.decode("resources", &v)?;
        if entry.resource.deleted_at_ms.is_none() {
            entry.resource.deleted_at_ms = Some(now_ms());
            self.resources.insert(key, serde_json::to_vec(&entry)?).map_err(|e| self.sled_err(e))?;
            st.written += 1;
        }
        Ok(())
    }

    fn resources(&self) -> Result<Vec<Resource>, JournalError> {
        let mut entries: Vec<LedgerEntry> = self.scan(&self.resources, "resources")?;
        entries.sort_by_key(|e| e.order);
        Ok(entries.into_iter().map(|e| e.resource).collect())
    }

    fn closing(&self) -> bool {
        CLOSING.0.lock().unwrap_or_else(|p| p.into_inner()).insert(self.run_dir.clone());
        true
    }

    fn flush(&self) -> Result<(), JournalError> {
        let _one_at_a_time = self.flushing.lock().unwrap_or_else(|p| p.into_inner());
        // The views and the count of writes are taken together, before the sled flush: it covers
        // at least those writes, so the views are never ahead of the journal. Writes made while
        // it waits for the disk are left to the next flush.
        let (written, views) = {
            let st = self.state();
            if st.flushed == Some(st.written) {
                return Ok(());
            }
            // A finished run's views are built and written as it closes (see Drop), off the
            // caller's path; nothing writes to it after its last flush.
            let finished = st.run.status != RunStatus::Running;
            (st.written, if finished { None } else { Some(self.views_of(&st)?) })
        };
        self.db.flush().map_err(|e| self.sled_err(e))?;
        let mirrored = match views {
            Some(views) => {
                let (last_seq, fresh) = (views.last_seq, views.fresh);
                views.hand_to(&self.views, fresh)?;
                Some(last_seq)
            }
            None => None,
        };
        let mut st = self.state();
        st.mirrored_seq = mirrored.or(st.mirrored_seq);
        st.flushed = Some(written);
        Ok(())
    }
}
