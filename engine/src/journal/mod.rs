//! Run journal: durable state of every run, so a failed or killed deployment resumes where it stopped.
//!
//! Layout of the state directory:
//! ```text
//! <state-dir>/runs/<run-id>/lock           advisory lock (flock) + JSON owner info while held
//! <state-dir>/runs/<run-id>/journal/       that run's sled database (source of truth)
//! <state-dir>/runs/<run-id>/snapshot.json  read-only view, rewritten atomically from flushed state (views.rs)
//! ```
//! One sled database per run: sled locks its whole database, so per-run databases let different processes
//! drive different runs at once, and a corrupted run never takes the others down. Readers (`wharf runs`,
//! `wharf status`) never open sled; they read `snapshot.json`, which works while another process drives the run.
//!
//! Storage sits behind [`StateBackend`] / [`RunJournal`]; [`S3Backend`] keeps the same journal in an S3
//! bucket for teams and CI fleets (see `s3.rs` and docs/state.md).

mod lock;
mod s3;
mod s3_lock;
mod s3_store;
mod sled;
mod snapshot;
mod spare;
#[cfg(test)]
pub(crate) mod tests;
mod views;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use self::s3::S3Backend;
pub use self::s3_store::S3Location;
pub use self::sled::SledBackend;

/// Where run state lives. Implementations must let readers see runs that other processes are driving.
pub trait StateBackend: Send + Sync {
    /// Creates the run (error if the id exists) and returns it locked by this process. It may
    /// return before the run is durable, leaving its first flush to the caller: nothing before a
    /// step's first side effect (which waits for a flush) needs it, and the scheduler makes one
    /// within 50 ms anyway (`RunContext::flush_soon`), so a short run waits for the disk once, at
    /// its end. The sled backend does so; a sled run whose process died before that flush is
    /// [`JournalError::NeverRecorded`]. The S3 backend's run is durable when this returns.
    fn create_run(&self, run: RunRecord) -> Result<Arc<dyn RunJournal>, JournalError>;
    /// Opens an existing run for driving it (resume). [`JournalError::Locked`] if another process (or another
    /// handle in this process) holds it; [`JournalError::NotFound`] with recent run ids as a hint.
    fn open_run(&self, run_id: &str) -> Result<Arc<dyn RunJournal>, JournalError>;
    /// All readable runs, newest first, plus one error per run that could not be read (e.g. a corrupted
    /// snapshot), so one broken run never hides the others.
    fn scan_runs(&self) -> Result<(Vec<RunSnapshot>, Vec<JournalError>), JournalError>;
    /// All readable runs, newest first, readable while other processes drive them. Unreadable runs are
    /// skipped; use [`StateBackend::scan_runs`] to report them.
    fn list_runs(&self) -> Result<Vec<RunSnapshot>, JournalError> {
        Ok(self.scan_runs()?.0)
    }
    /// One run's snapshot, readable while locked by another process.
    fn read_run(&self, run_id: &str) -> Result<RunSnapshot, JournalError>;
    /// A run's events (optionally one step's). Backends that can should serve this while another
    /// process drives the run; the default opens (locks) the run.
    fn read_events(&self, run_id: &str, step_id: Option<&str>) -> Result<Vec<Event>, JournalError> {
        self.open_run(run_id)?.events(step_id, None)
    }
    /// Everything recorded about a run (migration). Takes the run's lock while reading, so a run being
    /// driven is refused rather than copied half-way.
    fn export_run(&self, run_id: &str) -> Result<RunDump, JournalError> {
        let j = self.open_run(run_id)?;
        Ok(RunDump { run: j.run(), attempts: j.attempts()?, events: j.events(None, None)?, resources: j.resources()? })
    }
    /// Writes a complete run exactly as given (migration): timestamps, event seqs and ledger order are
    /// kept. [`JournalError::AlreadyExists`] if the id is taken.
    fn import_run(&self, dump: RunDump) -> Result<(), JournalError>;
}

/// A whole run, as moved between backends by `wharf state migrate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunDump {
    pub run: RunRecord,
    /// Ordered by step id, then attempt.
    pub attempts: Vec<AttemptRecord>,
    /// In seq order.
    pub events: Vec<Event>,
    /// In creation order.
    pub resources: Vec<Resource>,
}

/// A run opened for driving. Holding one means holding the run's lock; dropping the last `Arc` releases it.
///
/// Writes are buffered by sled; only [`RunJournal::flush`] makes them durable (call it at step boundaries).
pub trait RunJournal: Send + Sync {
    fn run(&self) -> RunRecord;
    /// Read-modify-write of the run record; sets `updated_at_ms`.
    fn update_run(&self, f: &mut dyn FnMut(&mut RunRecord)) -> Result<(), JournalError>;
    /// Upsert keyed by (step_id, attempt).
    fn put_attempt(&self, a: &AttemptRecord) -> Result<(), JournalError>;
    /// Ordered by step id (byte order), then attempt number.
    fn attempts(&self) -> Result<Vec<AttemptRecord>, JournalError>;
    /// Returns the event's seq: monotonic per run, survives reopen.
    fn append_event(&self, e: NewEvent) -> Result<u64, JournalError>;
    /// Events in seq order, optionally only one step's, optionally only those with seq > `after_seq`.
    fn events(&self, step_id: Option<&str>, after_seq: Option<u64>) -> Result<Vec<Event>, JournalError>;
    /// Adds to the resource ledger; deduplicated by (kind, id); returns true if new.
    fn record_resource(&self, r: &Resource) -> Result<bool, JournalError>;
    /// Marks a ledger entry deleted (teardown) with a timestamp, keeps it. An unknown (kind, id) is a no-op:
    /// teardown of something never recorded must not fail the teardown. Already-deleted entries keep their
    /// first deletion time.
    fn mark_resource_deleted(&self, kind: &str, id: &str) -> Result<(), JournalError>;
    /// In creation (first `record_resource`) order.
    fn resources(&self) -> Result<Vec<Resource>, JournalError>;
    /// Called by [`close_in_background`]: true if the backend lets the last handle be dropped on
    /// another thread (opening the run again from this process then waits for that close instead of
    /// finding it locked); false to have it dropped at once.
    fn closing(&self) -> bool {
        false
    }
    /// Durable: sled flush; the views (snapshot.json, events.jsonl) follow within 50 ms (views.rs).
    fn flush(&self) -> Result<(), JournalError>;
}

/// [`RunJournal::flush`] from async code: on tokio's blocking pool, not on an async worker. A flush waits
/// for an fsync (about 1 ms on a good disk, far more on a busy one); on a worker it would stall every task
/// scheduled there, and with 2 workers at most 2 runs could flush at once. Off the workers the flushes of
/// parallel runs overlap (the file system commits them together). The caller still waits for durability.
pub async fn flush_off_worker(journal: &Arc<dyn RunJournal>) -> Result<(), JournalError> {
    let journal = journal.clone();
    match tokio::task::spawn_blocking(move || journal.flush()).await {
        Ok(result) => result,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // Only when the runtime shuts down under us.
            Err(e) => Err(JournalError::Io { path: PathBuf::new(), source: std::io::Error::other(e) }),
        },
    }
}

/// Lets go of a run whose outcome is already durable (call after the final flush) without waiting
/// for its files to close: sled syncs its whole file once more when a database closes, about half a
/// millisecond, a third of a short run. The lock is released after that close; opening the run again
/// from this process waits for it. Needs a tokio runtime, which waits for the close before it shuts
/// down.
pub fn close_in_background(journal: Arc<dyn RunJournal>) {
    if journal.closing() {
        drop(tokio::task::spawn_blocking(move || drop(journal)));
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub workflow_name: String,
    pub workflow_path: String,
    /// The workflow file as it was when the run started, so a resume runs the same definition.
    pub workflow_source: String,
    pub step_hashes: BTreeMap<String, String>,
    pub params: BTreeMap<String, serde_json::Value>,
    pub status: RunStatus,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    pub finished_at_ms: Option<u64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub step_id: String,
    pub attempt: u32,
    pub status: AttemptStatus,
    pub started_at_ms: u64,
    pub finished_at_ms: Option<u64>,
    pub input_hash: String,
    pub outputs: Option<serde_json::Value>,
    pub error: Option<StepError>,
    /// Started but the process died before recording the outcome: side effects may or may not have happened.
    pub in_doubt: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttemptStatus {
    Started,
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepError {
    /// retryable | permanent | denied | invalid-input | trap | timeout
    pub kind: String,
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    pub step_id: Option<String>,
    pub kind: EventKind,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub at_ms: u64,
    pub step_id: Option<String>,
    pub kind: EventKind,
    pub message: String,
}

/// Serialized externally tagged in snake_case: `"step_started"`, `{"log":"warn"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    RunStarted,
    RunResumed,
    RunFinished,
    StepStarted,
    StepSucceeded,
    StepFailed,
    StepRetrying,
    StepSkipped,
    Log(LogLevel),
    Progress,
    Call,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// One entry of the resource ledger: something a step created in the cloud, kept after teardown for audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// e.g. `ecs:cluster`
    pub kind: String,
    /// ARN or id
    pub id: String,
    pub name: Option<String>,
    pub region: Option<String>,
    pub step_id: String,
    pub created_at_ms: u64,
    pub deleted_at_ms: Option<u64>,
    pub attributes: BTreeMap<String, String>,
}

/// Who holds a run's lock; written into the lock file while held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockOwner {
    pub pid: u32,
    pub hostname: String,
    pub command: String,
    pub acquired_at_ms: u64,
    /// S3 backend: when the holder's lease runs out unless it renews it (a dead holder's lock is free then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_expires_at_ms: Option<u64>,
}

/// Read-only view of a run (the content of `snapshot.json`, plus a live lock probe).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSnapshot {
    pub run: RunRecord,
    /// Latest attempt per step, ordered by step id.
    pub steps: Vec<StepSummary>,
    pub resources: Vec<Resource>,
    /// Seq of the last journaled event at the snapshot (0: none). Lets readers show progress and lets a
    /// reopen detect a journal that lost flushed events.
    #[serde(default)]
    pub last_event_seq: u64,
    /// None when no process holds the lock. Probed live when read, not taken from the file.
    pub held_by: Option<LockOwner>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepSummary {
    pub step_id: String,
    pub attempts: u32,
    pub last: AttemptRecord,
}

/// Status for display: distinguishes a run being driven from one whose process died.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EffectiveStatus {
    Running,
    /// Recorded as running but no process holds its lock: the driver died; resumable.
    Interrupted,
    Succeeded,
    Failed,
}

impl fmt::Display for EffectiveStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EffectiveStatus::Running => "running",
            EffectiveStatus::Interrupted => "interrupted",
            EffectiveStatus::Succeeded => "succeeded",
            EffectiveStatus::Failed => "failed",
        })
    }
}

impl RunSnapshot {
    pub fn effective_status(&self) -> EffectiveStatus {
        match self.run.status {
            RunStatus::Running if self.held_by.is_none() => EffectiveStatus::Interrupted,
            RunStatus::Running => EffectiveStatus::Running,
            RunStatus::Succeeded => EffectiveStatus::Succeeded,
            RunStatus::Failed => EffectiveStatus::Failed,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("journal database {}: {source}", path.display())]
    Sled { path: PathBuf, source: ::sled::Error },
    #[error("{} is corrupted: {detail}; {hint}", path.display())]
    Corrupt { path: PathBuf, detail: String, hint: String },
    #[error("{}", locked_message(run_id, owner.as_ref()))]
    Locked { run_id: String, owner: Option<LockOwner> },
    #[error("{}", not_found_message(run_id, known))]
    NotFound { run_id: String, known: Vec<String> },
    #[error("run {run_id} already exists; pick another run id")]
    AlreadyExists { run_id: String },
    /// A run whose process ended before the journal's first flush: nothing of it is on disk, and no
    /// step acted (every side effect waits for a flush). Listings skip it.
    #[error(
        "run {run_id} was stopped before anything of it was recorded, so none of its steps acted; start the \
         workflow again (`wharf run`). Its empty directory {} can be removed",
        path.display()
    )]
    NeverRecorded { run_id: String, path: PathBuf },
    #[error("state in {location}: {detail}")]
    S3 { location: String, detail: String },
    /// The S3 lock was taken over or broken while this process held it: it must stop writing.
    #[error("{detail}")]
    LockLost { run_id: String, detail: String },
    #[error("could not encode journal record: {0}")]
    Encode(#[from] serde_json::Error),
}

fn locked_message(run_id: &str, owner: Option<&LockOwner>) -> String {
    match owner {
        Some(o) => {
            let lease = match o.lease_expires_at_ms {
                Some(t) => format!(
                    "; its lease expires at {} unless renewed, so if that process is dead, retry after that",
                    format_ms(t)
                ),
                None => String::new(),
            };
            format!(
                "run {run_id} is being driven by pid {} on {} (`{}` since {}); wait for it or stop that process{lease}",
                o.pid,
                o.hostname,
                o.command,
                format_ms(o.acquired_at_ms)
            )
        }
        None => format!("run {run_id} is being driven by another process; wait for it or stop that process"),
    }
}

fn not_found_message(run_id: &str, known: &[String]) -> String {
    if known.is_empty() {
        format!("run {run_id} not found: no runs are recorded in this state (check --state-dir or --state)")
    } else {
        format!("run {run_id} not found; recent runs: {} (check the id, --state-dir or --state)", known.join(", "))
    }
}

/// Milliseconds since the Unix epoch, for record timestamps.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// RFC 3339 UTC, second precision, for messages.
pub fn format_ms(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// A new run id: UTC time then 6 random hex chars, e.g. `20261126-141502-3fa9c1`. Sorts by creation time
/// (to the second); the random suffix keeps ids created in the same second apart.
pub fn new_run_id() -> String {
    let t = humantime::format_rfc3339_seconds(SystemTime::now()).to_string(); // 2026-11-26T14:15:02Z
    let digits: String = t.chars().filter(|c| c.is_ascii_digit()).collect(); // 20261126141502
    let suffix = rand::random::<u32>() & 0x00ff_ffff;
    format!("{}-{}-{suffix:06x}", &digits[..8], &digits[8..14])
}

/// Run ids become directory names: allow only characters that cannot escape `runs/` or surprise a shell.
pub(crate) fn valid_run_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}
