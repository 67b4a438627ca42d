//! The shared backend: the run journal as objects in an S3 bucket, for teams and CI fleets.
//!
//! Objects per run, under `<prefix>/runs/<run-id>/`:
//! ```text
//! lock.json                        the lease lock (s3_lock.rs)
//! state.json                       run record, attempts, resource ledger, last event seq: the journal
//!                                  and the readers' snapshot in one, replaced with If-Match on every flush
//! events/<first>-<last>.json       the events of one flush (seqs zero-padded), created with If-None-Match
//! ```
//! Same semantics as sled: writes are buffered in memory and become durable at [`RunJournal::flush`]. A
//! flush renews the lease (proving we still hold the lock), creates the new events chunk, then replaces
//! state.json conditional on the etag we wrote last; any 412 means another process wrote, and the flush
//! fails with who took the run over. Concurrent flushes are grouped: one waits for the other and returns
//! at once if the other already made its writes durable.
//!
//! Only the lock holder writes, so while driving, reads come from memory. Other readers (`wharf runs`,
//! `wharf status`) read state.json through the local cache (`<state-dir>/s3-cache`): a conditional GET
//! with the cached etag, served locally on 304. Event chunks never change, so once cached they are
//! never fetched again.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use super::s3_lock::Lease;
use super::s3_store::{Put, S3Location, Store};
use super::{
    AttemptRecord, Event, EventKind, JournalError, LogLevel, NewEvent, Resource, RunDump, RunJournal, RunRecord,
    RunSnapshot, StateBackend, format_ms, now_ms, snapshot, valid_run_id,
};

const FORMAT: u32 = 1;
const RECENT_IDS_IN_HINT: usize = 5;
/// Events per chunk when importing a run (a normal flush writes whatever accumulated since the last one).
const IMPORT_CHUNK: usize = 1000;

/// `state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StateDoc {
    format: u32,
    /// Lock owner id of the writer and a counter: every write differs, so an etag (an MD5 of the content
    /// on S3) never matches a different write.
    writer: String,
    generation: u64,
    run: RunRecord,
    attempts: Vec<AttemptRecord>,
    resources: Vec<Resource>,
    last_event_seq: u64,
}

/// State kept in S3 (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct S3Backend {
    store: Arc<Store>,
}

impl S3Backend {
    /// `local_dir` holds the read cache (`s3-cache/`); processes may use different ones.
    pub fn new(loc: S3Location, local_dir: &Path) -> Result<Self, JournalError> {
        Ok(S3Backend { store: Arc::new(Store::new(loc, local_dir)?) })
    }

    pub fn location(&self) -> &S3Location {
        &self.store.loc
    }

    fn key(&self, run_id: &str, rel: &str) -> String {
        self.store.loc.key(&format!("runs/{run_id}/{rel}"))
    }

    /// Run ids newest first (generated ids sort by creation time).
    fn run_ids(&self) -> Result<Vec<String>, JournalError> {
        let (client, loc) = (self.store.client(), self.store.loc.clone());
        let runs = self.store.loc.key("runs/");
        let prefixes = self.store.block(async move { Store::list(&client, &loc, &runs, Some("/")).await })?;
        let mut ids: Vec<String> = prefixes
            .iter()
            .filter_map(|p| p.trim_end_matches('/').rsplit('/').next().map(str::to_string))
            .filter(|id| valid_run_id(id))
            .collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        Ok(ids)
    }

    fn not_found(&self, run_id: &str) -> JournalError {
        let mut known = self.run_ids().unwrap_or_default();
        known.truncate(RECENT_IDS_IN_HINT);
        JournalError::NotFound { run_id: run_id.to_string(), known }
    }

    /// state.json through the cache, with its etag; None if the run has none.
    fn read_state(&self, run_id: &str) -> Result<Option<(StateDoc, String)>, JournalError> {
        if !valid_run_id(run_id) {
            return Ok(None);
        }
        let key = self.key(run_id, "state.json");
        let Some((bytes, etag)) = self.store.get_cached(&key, false)? else { return Ok(None) };
        let doc: StateDoc = serde_json::from_slice(&bytes).map_err(|e| self.corrupt(&key, run_id, e))?;
        if doc.format != FORMAT {
            return Err(self.corrupt(
                &key,
                run_id,
                format!("unsupported format {} (this wharf reads {FORMAT})", doc.format),
            ));
        }
        Ok(Some((doc, etag)))
    }

    fn corrupt(&self, key: &str, run_id: &str, e: impl std::fmt::Display) -> JournalError {
        JournalError::Corrupt {
            path: format!("s3://{}/{key}", self.store.loc.bucket).into(),
            detail: format!("cannot parse it: {e}"),
            hint: format!("other runs are unaffected; move the objects under runs/{run_id}/ aside to hide this run"),
        }
    }

    fn acquire(&self, run_id: &str, create: bool) -> Result<Arc<Lease>, JournalError> {
        let (client, loc, key, id) =
            (self.store.client(), self.store.loc.clone(), self.key(run_id, "lock.json"), run_id.to_string());
        let lease = self.store.block(async move { Lease::acquire(&client, &loc, &id, key, create).await })?;
        let lease = Arc::new(lease);
        self.store.spawn(lease.clone().heartbeat(self.store.client()));
        Ok(lease)
    }

    /// Who holds a run now (None when free or the lease expired).
    fn holder(&self, run_id: &str) -> Result<Option<super::LockOwner>, JournalError> {
        let (client, loc, key) = (self.store.client(), self.store.loc.clone(), self.key(run_id, "lock.json"));
        self.store.block(async move { super::s3_lock::probe(&client, &loc, &key).await })
    }

    fn journal(&self, lease: Arc<Lease>, doc: StateDoc, etag: Option<String>, next_seq: u64) -> S3Journal {
        let attempts = doc.attempts.into_iter().map(|a| ((a.step_id.clone(), a.attempt), a)).collect();
        S3Journal {
            store: self.store.clone(),
            run_id: doc.run.id.clone(),
            mem: Mutex::new(Mem {
                run: doc.run,
                attempts,
                resources: doc.resources,
                pending: Vec::new(),
                next_seq,
                written: 1, // not durable yet: the first flush claims state.json
            }),
            durable: Mutex::new(Durable { etag, written: 0, generation: doc.generation }),
            lease,
        }
    }

    /// The highest event seq in any chunk (chunks of a flush whose state write failed count too: those
    /// events happened).
    fn last_chunk_seq(&self, run_id: &str) -> Result<u64, JournalError> {
        Ok(self.chunks(run_id)?.iter().map(|(_, _, last)| *last).max().unwrap_or(0))
    }

    /// (key, first seq, last seq) of every events chunk, in seq order.
    fn chunks(&self, run_id: &str) -> Result<Vec<(String, u64, u64)>, JournalError> {
        let (client, loc, prefix) = (self.store.client(), self.store.loc.clone(), self.key(run_id, "events/"));
        let keys = self.store.block(async move { Store::list(&client, &loc, &prefix, None).await })?;
        let mut chunks: Vec<_> = keys
            .into_iter()
            .filter_map(|k| {
                let name = k.rsplit('/').next()?.strip_suffix(".json")?;
                let (a, b) = name.split_once('-')?;
                let (first, last) = (a.parse().ok()?, b.parse().ok()?);
                Some((k, first, last))
            })
            .collect();
        chunks.sort_by_key(|c| c.1);
        Ok(chunks)
    }

    fn read_events(&self, run_id: &str, after: u64) -> Result<Vec<Event>, JournalError> {
        let mut out = Vec::new();
        for (key, _, last) in self.chunks(run_id)? {
            if last <= after {
                continue;
            }
            let Some((bytes, _)) = self.store.get_cached(&key, true)? else { continue };
            let events: Vec<Event> = serde_json::from_slice(&bytes).map_err(|e| self.corrupt(&key, run_id, e))?;
            out.extend(events.into_iter().filter(|e| e.seq > after));
        }
        Ok(out)
    }
}

fn chunk_key(store: &Store, run_id: &str, first: u64, last: u64) -> String {
    store.loc.key(&format!("runs/{run_id}/events/{first:020}-{last:020}.json"))
}

impl StateBackend for S3Backend {
    fn create_run(&self, mut run: RunRecord) -> Result<Arc<dyn RunJournal>, JournalError> {
        if !valid_run_id(&run.id) {
            return Err(JournalError::S3 {
                location: self.store.loc.to_string(),
                detail: format!("`{}` is not a valid run id (ASCII letters, digits, `-`, `_`, `.`)", run.id),
            });
        }
        // Creating lock.json with If-None-Match claims the id; a second creator gets AlreadyExists.
        let lease = self.acquire(&run.id, true)?;
        let now = now_ms();
        if run.created_at_ms == 0 {
            run.created_at_ms = now;
        }
        run.updated_at_ms = now;
        let doc = StateDoc {
            format: FORMAT,
            writer: String::new(),
            generation: 0,
            run,
            attempts: Vec::new(),
            resources: Vec::new(),
            last_event_seq: 0,
        };
        let journal = self.journal(lease, doc, None, 1);
        journal.flush()?;
        Ok(Arc::new(journal))
    }

    fn open_run(&self, run_id: &str) -> Result<Arc<dyn RunJournal>, JournalError> {
        if self.read_state(run_id)?.is_none() {
            return Err(self.not_found(run_id));
        }
        let lease = self.acquire(run_id, false)?;
        // Read again under the lock: the previous holder may have written since our first read.
        let (doc, etag) = self.read_state(run_id)?.ok_or_else(|| self.not_found(run_id))?;
        let next_seq = doc.last_event_seq.max(self.last_chunk_seq(run_id)?) + 1;
        let took_over = lease.took_over_from.clone();
        let journal = self.journal(lease, doc, Some(etag), next_seq);
        if let Some(prev) = took_over {
            // Not silent: the previous holder never released the run (it died, or was cut off long enough
            // for its lease to expire). If it is still alive, its next write fails.
            journal.append_event(NewEvent {
                step_id: None,
                kind: EventKind::Log(LogLevel::Warn),
                message: format!(
                    "took over run {run_id} from pid {} on {} (`{}`), whose lease expired at {} without a release",
                    prev.pid,
                    prev.hostname,
                    prev.command,
                    format_ms(prev.lease_expires_at_ms.unwrap_or(0))
                ),
            })?;
        }
        // Claims state.json: from here on, a write by the previous holder conflicts.
        journal.flush()?;
        Ok(Arc::new(journal))
    }

    fn scan_runs(&self) -> Result<(Vec<RunSnapshot>, Vec<JournalError>), JournalError> {
        let mut runs = Vec::new();
        let mut broken = Vec::new();
        for id in self.run_ids()? {
            match self.read_run(&id) {
                Ok(s) => runs.push(s),
                // lock.json without state.json: being created right now, or a creator that died before
                // its first write (nothing ran). Not a run.
                Err(JournalError::NotFound { .. }) => {}
                Err(e) => broken.push(e),
            }
        }
        runs.sort_by(|a, b| (b.run.created_at_ms, &b.run.id).cmp(&(a.run.created_at_ms, &a.run.id)));
        Ok((runs, broken))
    }

    fn read_run(&self, run_id: &str) -> Result<RunSnapshot, JournalError> {
        let (doc, _) = self.read_state(run_id)?.ok_or_else(|| self.not_found(run_id))?;
        let held_by = self.holder(run_id)?;
        Ok(snapshot::build(doc.run, doc.attempts, doc.resources, doc.last_event_seq, held_by))
    }

    fn import_run(&self, dump: RunDump) -> Result<(), JournalError> {
        let run_id = dump.run.id.clone();
        let lease = self.acquire(&run_id, true)?;
        let result = (|| {
            let (client, loc) = (self.store.client(), self.store.loc.clone());
            let mut bodies = Vec::new();
            for chunk in dump.events.chunks(IMPORT_CHUNK) {
                let key = chunk_key(&self.store, &run_id, chunk[0].seq, chunk[chunk.len() - 1].seq);
                bodies.push((key, serde_json::to_vec(chunk)?));
            }
            let doc = StateDoc {
                format: FORMAT,
                writer: "import".into(),
                generation: 1,
                last_event_seq: dump.events.last().map_or(0, |e| e.seq),
                run: dump.run,
                attempts: dump.attempts,
                resources: dump.resources,
            };
            bodies.push((self.key(&run_id, "state.json"), serde_json::to_vec_pretty(&doc)?));
            self.store.block(async move {
                for (key, body) in bodies {
                    if let Put::Conflict = Store::put(&client, &loc, &key, body, None).await? {
                        return Err(JournalError::AlreadyExists { run_id: doc.run.id.clone() });
                    }
                }
                Ok(())
            })
        })();
        let client = self.store.client();
        self.store.block(async move { lease.release(&client).await });
        result
    }
}

struct Mem {
    run: RunRecord,
    attempts: BTreeMap<(String, u32), AttemptRecord>,
    /// In creation order; deduplicated by (kind, id).
    resources: Vec<Resource>,
    /// Appended since the last durable flush.
    pending: Vec<Event>,
    next_seq: u64,
    /// Counts writes, so a flush knows whether there is anything new to make durable.
    written: u64,
}

/// Guarded by its own mutex, which also serializes flushes (group commit).
struct Durable {
    /// Of the state.json we wrote last (None: not created yet).
    etag: Option<String>,
    /// `Mem::written` as of the last successful flush.
    written: u64,
    generation: u64,
}

struct S3Journal {
    store: Arc<Store>,
    lease: Arc<Lease>,
    run_id: String,
    mem: Mutex<Mem>,
    durable: Mutex<Durable>,
}

impl S3Journal {
    fn mem(&self) -> MutexGuard<'_, Mem> {
        self.mem.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs a buffered write, refusing once the lock is lost (nothing of it could become durable).
    fn write<T>(&self, f: impl FnOnce(&mut Mem) -> Result<T, JournalError>) -> Result<T, JournalError> {
        self.lease.check()?;
        let mut m = self.mem();
        let out = f(&mut m)?;
        m.written += 1;
        Ok(out)
    }

    /// Why a state.json write conflicted: the lock holder changed (reported by the lease), or someone
    /// wrote the run's state without holding the lock.
    async fn conflict(lease: &Lease, client: &aws_sdk_s3::Client, run_id: &str) -> JournalError {
        match lease.renew(client).await {
            Err(e) => e,
            Ok(()) => JournalError::LockLost {
                run_id: run_id.to_string(),
                detail: format!(
                    "run {run_id}: its state.json was changed by a process that does not hold the run's lock; this \
                     process stopped driving the run: check `wharf status {run_id}` before resuming it"
                ),
            },
        }
    }
}

impl RunJournal for S3Journal {
    fn run(&self) -> RunRecord {
        self.mem().run.clone()
    }

    fn update_run(&self, f: &mut dyn FnMut(&mut RunRecord)) -> Result<(), JournalError> {
        self.write(|m| {
            let mut run = m.run.clone();
            f(&mut run);
            run.id = m.run.id.clone(); // the id names the objects; it cannot change
            run.updated_at_ms = now_ms();
            m.run = run;
            Ok(())
        })
    }

    fn put_attempt(&self, a: &AttemptRecord) -> Result<(), JournalError> {
        self.write(|m| {
            m.attempts.insert((a.step_id.clone(), a.attempt), a.clone());
            Ok(())
        })
    }

    fn attempts(&self) -> Result<Vec<AttemptRecord>, JournalError> {
        Ok(self.mem().attempts.values().cloned().collect())
    }

    fn append_event(&self, e: NewEvent) -> Result<u64, JournalError> {
        self.write(|m| {
            let seq = m.next_seq;
            m.pending.push(Event { seq, at_ms: now_ms(), step_id: e.step_id, kind: e.kind, message: e.message });
            m.next_seq += 1;
            Ok(seq)
        })
    }

    fn events(&self, step_id: Option<&str>, after_seq: Option<u64>) -> Result<Vec<Event>, JournalError> {
        let after = after_seq.unwrap_or(0);
        let pending = self.mem().pending.clone();
        let durable_after = pending.first().map_or(u64::MAX, |e| e.seq);
        let backend = S3Backend { store: self.store.clone() };
        let mut all: Vec<Event> =
            backend.read_events(&self.run_id, after)?.into_iter().filter(|e| e.seq < durable_after).collect();
        all.extend(pending.into_iter().filter(|e| e.seq > after));
        all.retain(|e| step_id.is_none_or(|s| e.step_id.as_deref() == Some(s)));
        Ok(all)
    }

    fn record_resource(&self, r: &Resource) -> Result<bool, JournalError> {
        self.write(|m| {
            if m.resources.iter().any(|x| x.kind == r.kind && x.id == r.id) {
                return Ok(false);
            }
            m.resources.push(r.clone());
            Ok(true)
        })
    }

    fn mark_resource_deleted(&self, kind: &str, id: &str) -> Result<(), JournalError> {
        self.write(|m| {
            if let Some(r) = m.resources.iter_mut().find(|x| x.kind == kind && x.id == id) {
                r.deleted_at_ms.get_or_insert_with(now_ms);
            }
            Ok(())
        })
    }

    fn resources(&self) -> Result<Vec<Resource>, JournalError> {
        Ok(self.mem().resources.clone())
    }

    fn flush(&self) -> Result<(), JournalError> {
        self.lease.check()?;
        let mut d = self.durable.lock().unwrap_or_else(|p| p.into_inner());
        let (written, doc, chunk) = {
            let m = self.mem();
            if m.written == d.written {
                return Ok(()); // a concurrent flush already made our writes durable
            }
            let doc = StateDoc {
                format: FORMAT,
                writer: self.lease_owner_id(),
                generation: d.generation + 1,
                run: m.run.clone(),
                attempts: m.attempts.values().cloned().collect(),
                resources: m.resources.clone(),
                last_event_seq: m.next_seq - 1,
            };
            (m.written, doc, m.pending.clone())
        };
        let state_key = self.store.loc.key(&format!("runs/{}/state.json", self.run_id));
        let state_body = serde_json::to_vec_pretty(&doc)?;
        let chunk_put = match (chunk.first(), chunk.last()) {
            (Some(f), Some(l)) => {
                Some((chunk_key(&self.store, &self.run_id, f.seq, l.seq), serde_json::to_vec(&chunk)?))
            }
            _ => None,
        };
        let (client, loc, lease, run_id) =
            (self.store.client(), self.store.loc.clone(), self.lease.clone(), self.run_id.clone());
        let (etag, body) = (d.etag.clone(), state_body.clone());
        let (key, cpu) = (state_key.clone(), chunk_put.clone());
        let new_etag = self.store.block(async move {
            // Renewing first proves the lock is still ours and gives the writes below a full lease.
            lease.renew(&client).await?;
            if let Some((ckey, cbody)) = cpu {
                if let Put::Conflict = Store::put(&client, &loc, &ckey, cbody.clone(), None).await? {
                    // Written by an earlier flush of ours whose state write then failed? Same bytes: fine.
                    let same = matches!(Store::get(&client, &loc, &ckey, None).await?,
                        super::s3_store::Got::Object(b, _) if b == cbody);
                    if !same {
                        return Err(Self::conflict(&lease, &client, &run_id).await);
                    }
                }
            }
            match Store::put(&client, &loc, &key, body, etag.as_deref()).await? {
                Put::Done(etag) => Ok(etag),
                Put::Conflict => Err(Self::conflict(&lease, &client, &run_id).await),
            }
        })?;
        if let Some((ckey, cbody)) = &chunk_put {
            self.store.cache_write(ckey, cbody, "");
        }
        self.store.cache_write(&state_key, &state_body, &new_etag);
        self.mem().pending.drain(..chunk.len());
        *d = Durable { etag: Some(new_etag), written, generation: doc.generation };
        Ok(())
    }
}

impl S3Journal {
    fn lease_owner_id(&self) -> String {
        format!("{}-{}", self.lease.owner.hostname, self.lease.owner.pid)
    }
}

impl Drop for S3Journal {
    fn drop(&mut self) {
        // Release so the next process need not wait for the lease to expire. Unflushed writes are dropped,
        // as with sled: only flush makes anything durable.
        let (lease, client) = (self.lease.clone(), self.store.client());
        self.store.block(async move { lease.release(&client).await });
    }
}
