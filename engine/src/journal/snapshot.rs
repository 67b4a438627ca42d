//! `snapshot.json`: the read-only view of a run for processes that do not drive it.
//!
//! sled locks its database, so `wharf runs` / `wharf status` cannot open the journal of a run another process
//! is driving. Instead the driver rewrites this file from flushed state (at most every 50 ms while the run is
//! going, at once when it ends or is opened: `views.rs`). It is derived state: the journal is the source of
//! truth, and reopening the run regenerates the file.
//! Written atomically (tmp + rename) so readers see either the old or the new view. Not fsynced: fsyncing
//! it (and its directory) would triple the cost of a durability point for a file that can be rebuilt. After a power loss it may be older than the journal
//! (never newer: it is written only after the sled flush returned), missing or empty; `open_run` tolerates
//! all three and rewrites it, and `status`/`runs` report a missing or unreadable one (docs/state.md).

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use super::{AttemptRecord, JournalError, LockOwner, Resource, RunRecord, RunSnapshot, StepSummary, lock};

pub(crate) const FILE: &str = "snapshot.json";
pub(crate) const TMP: &str = "snapshot.json.tmp";

/// Builds the view; `attempts` must be ordered by step then attempt (as the journal returns them).
pub(crate) fn build(
    run: RunRecord,
    attempts: Vec<AttemptRecord>,
    resources: Vec<Resource>,
    last_event_seq: u64,
    held_by: Option<LockOwner>,
) -> RunSnapshot {
    let mut steps: Vec<StepSummary> = Vec::new();
    for a in attempts {
        match steps.last_mut() {
            Some(s) if s.step_id == a.step_id => {
                s.attempts += 1;
                s.last = a;
            }
            _ => steps.push(StepSummary { step_id: a.step_id.clone(), attempts: 1, last: a }),
        }
    }
    RunSnapshot { run, steps, resources, last_event_seq, held_by }
}

/// The file's content for `snap`.
pub(crate) fn encode(snap: &RunSnapshot) -> Result<Vec<u8>, JournalError> {
    Ok(serde_json::to_vec_pretty(snap)?)
}

/// Replaces the file with `json` (from [`encode`]).
pub(crate) fn write_bytes(run_dir: &Path, json: &[u8]) -> Result<(), JournalError> {
    let tmp = run_dir.join(TMP);
    let dest = run_dir.join(FILE);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| JournalError::Io { path, source }
    };
    fs::write(&tmp, json).map_err(io(&tmp))?;
    fs::rename(&tmp, &dest).map_err(io(&dest))?;
    Ok(())
}

/// Reads a run's view and probes its lock for `held_by`. `Ok(None)` if the file does not exist.
pub(crate) fn read(run_dir: &Path, run_id: &str) -> Result<Option<RunSnapshot>, JournalError> {
    let Some(mut snap) = load(run_dir, run_id)? else { return Ok(None) };
    // The stored held_by is whoever wrote it; only a live probe says whether that process is still there.
    snap.held_by = lock::probe(&run_dir.join("lock"))?;
    Ok(Some(snap))
}

/// The file as written (held_by = the writer), without probing the lock.
pub(crate) fn load(run_dir: &Path, run_id: &str) -> Result<Option<RunSnapshot>, JournalError> {
    let path = run_dir.join(FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(JournalError::Io { path, source }),
    };
    let snap = serde_json::from_slice(&bytes).map_err(|e| JournalError::Corrupt {
        path: path.clone(),
        detail: format!("cannot parse it: {e}"),
        hint: format!(
            "it is derived from runs/{run_id}/journal and is rewritten whenever the run is opened, so resuming \
             run {run_id} repairs it; if that fails too, move runs/{run_id} aside (other runs are unaffected)"
        ),
    })?;
    Ok(Some(snap))
}
