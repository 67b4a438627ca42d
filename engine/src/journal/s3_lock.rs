//! The run lock on S3: `runs/<id>/lock.json`, a lease that two machines cannot both hold.
//!
//! S3 has no flock and nobody releases a dead process's lock, so the lock is a lease: the holder writes
//! its owner id and an expiry, renews it (heartbeat) every third of the lease, and writes `released` when
//! done. Every change is a conditional write on the etag last seen, so of two processes acquiring at once
//! exactly one wins, and a holder whose lock was taken over (its lease expired: it was paused or cut off)
//! or broken (someone deleted or rewrote the object) learns it at its next heartbeat or flush, which
//! fails with [`JournalError::LockLost`] instead of writing over the new holder's progress.
//!
//! The lease only fences the journal: a process paused past its lease may still finish a cloud call it
//! had started. Steps are idempotent and the new holder marks that attempt in doubt, which covers it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::s3_store::{Got, Put, S3Location, Store};
use super::{JournalError, LockOwner, format_ms, lock, now_ms};

const DEFAULT_LEASE_SECS: u64 = 30;

/// Lease length: `WHARF_S3_LEASE_SECS` (tests use a few seconds), default 30 s.
pub(crate) fn lease_duration() -> Duration {
    let secs = std::env::var("WHARF_S3_LEASE_SECS").ok().and_then(|s| s.parse::<u64>().ok()).filter(|s| *s > 0);
    Duration::from_secs(secs.unwrap_or(DEFAULT_LEASE_SECS))
}

/// The content of `lock.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LockDoc {
    /// hostname + pid + random: unique per process even across machines with equal pids.
    pub owner_id: String,
    pub owner: LockOwner,
    pub lease_expires_at_ms: u64,
    pub released_at_ms: Option<u64>,
    /// The previous holder, when this one took the run over after that holder's lease expired.
    #[serde(default)]
    pub took_over_from: Option<LockOwner>,
}

impl LockDoc {
    /// The owner while the lease is live and not released.
    pub(crate) fn holder(&self) -> Option<LockOwner> {
        (self.released_at_ms.is_none() && self.lease_expires_at_ms > now_ms()).then(|| self.owner.clone())
    }
}

struct Held {
    doc: LockDoc,
    etag: String,
}

/// This process's hold on one run's lock.
pub(crate) struct Lease {
    run_id: String,
    key: String,
    loc: S3Location,
    duration: Duration,
    held: tokio::sync::Mutex<Held>,
    /// Why the lock was lost (set once; every later journal operation fails with it).
    lost: Mutex<Option<String>>,
    stopped: AtomicBool,
    pub(crate) owner: LockOwner,
    /// Set when acquiring took over an expired lease: who had it (reported in the run's events).
    pub(crate) took_over_from: Option<LockOwner>,
}

impl Lease {
    /// Takes the lock: `create` for a new run (the lock object claims the run id), else takes a missing,
    /// released or expired lock. [`JournalError::Locked`] (with the holder and its lease) if it is held.
    pub(crate) async fn acquire(
        client: &aws_sdk_s3::Client,
        loc: &S3Location,
        run_id: &str,
        key: String,
        create: bool,
    ) -> Result<Lease, JournalError> {
        let duration = lease_duration();
        let now = now_ms();
        let mut owner = lock::current_owner(now);
        owner.lease_expires_at_ms = Some(now + duration.as_millis() as u64);
        let mut doc = LockDoc {
            owner_id: format!("{}-{}-{:08x}", owner.hostname, owner.pid, rand::random::<u32>()),
            owner: owner.clone(),
            lease_expires_at_ms: now + duration.as_millis() as u64,
            released_at_ms: None,
            took_over_from: None,
        };
        let locked = |owner| JournalError::Locked { run_id: run_id.to_string(), owner };
        let previous = if create {
            None
        } else {
            match Store::get(client, loc, &key, None).await? {
                Got::Object(bytes, etag) => {
                    let current = parse(&bytes, loc, &key)?;
                    if let Some(holder) = current.holder() {
                        return Err(locked(Some(holder)));
                    }
                    Some((current, etag))
                }
                _ => None,
            }
        };
        // An expired (not released) lease means its holder died or was cut off: say so in the new lock.
        doc.took_over_from =
            previous.as_ref().filter(|(p, _)| p.released_at_ms.is_none()).map(|(p, _)| p.owner.clone());
        let body = serde_json::to_vec_pretty(&doc)?;
        match Store::put(client, loc, &key, body, previous.as_ref().map(|(_, e)| e.as_str())).await? {
            Put::Done(etag) => Ok(Lease {
                run_id: run_id.to_string(),
                key,
                loc: loc.clone(),
                duration,
                took_over_from: doc.took_over_from.clone(),
                owner,
                held: tokio::sync::Mutex::new(Held { doc, etag }),
                lost: Mutex::new(None),
                stopped: AtomicBool::new(false),
            }),
            Put::Conflict if create => Err(JournalError::AlreadyExists { run_id: run_id.to_string() }),
            // Someone acquired it between our read and our write: report them.
            Put::Conflict => Err(locked(probe(client, loc, &key).await?)),
        }
    }

    /// Fails with the reason if the lock was lost.
    pub(crate) fn check(&self) -> Result<(), JournalError> {
        match &*self.lost.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(detail) => Err(JournalError::LockLost { run_id: self.run_id.clone(), detail: detail.clone() }),
            None => Ok(()),
        }
    }

    /// Extends the lease; proves we still hold the lock (conditional on the etag we wrote last).
    pub(crate) async fn renew(&self, client: &aws_sdk_s3::Client) -> Result<(), JournalError> {
        let mut held = self.held.lock().await;
        self.check()?;
        let mut doc = held.doc.clone();
        doc.lease_expires_at_ms = now_ms() + self.duration.as_millis() as u64;
        doc.owner.lease_expires_at_ms = Some(doc.lease_expires_at_ms);
        let body = serde_json::to_vec_pretty(&doc)?;
        match Store::put(client, &self.loc, &self.key, body, Some(&held.etag)).await? {
            Put::Done(etag) => {
                *held = Held { doc, etag };
                Ok(())
            }
            Put::Conflict => {
                let detail = self.describe_loss(client, &held.doc).await;
                *self.lost.lock().unwrap_or_else(|p| p.into_inner()) = Some(detail);
                self.check()
            }
        }
    }

    /// Marks the lock released (if still ours) and stops the heartbeat.
    pub(crate) async fn release(&self, client: &aws_sdk_s3::Client) {
        self.stopped.store(true, Ordering::SeqCst);
        let held = self.held.lock().await;
        if self.check().is_err() {
            return; // not ours any more: leave the new holder's lock alone
        }
        let mut doc = held.doc.clone();
        doc.released_at_ms = Some(now_ms());
        if let Ok(body) = serde_json::to_vec_pretty(&doc) {
            // Best effort: if this fails, the lease simply expires.
            let _ = Store::put(client, &self.loc, &self.key, body, Some(&held.etag)).await;
        }
    }

    /// Renews every third of the lease until released or lost. A failed request (network) is retried at
    /// the next beat: only a conflict means the lock is gone.
    pub(crate) async fn heartbeat(self: std::sync::Arc<Self>, client: aws_sdk_s3::Client) {
        loop {
            tokio::time::sleep(self.duration / 3).await;
            if self.stopped.load(Ordering::SeqCst) {
                return;
            }
            if let Err(JournalError::LockLost { .. }) = self.renew(&client).await {
                return;
            }
        }
    }

    async fn describe_loss(&self, client: &aws_sdk_s3::Client, ours: &LockDoc) -> String {
        let url = format!("s3://{}/{}", self.loc.bucket, self.key);
        match Store::get(client, &self.loc, &self.key, None).await {
            Ok(Got::Missing) => format!(
                "run {}: its lock object {url} was deleted while this process held it (the lock was broken by hand); \
                 this process stopped driving the run: check `wharf status {}` before resuming it",
                self.run_id, self.run_id
            ),
            Ok(Got::Object(bytes, _)) => match serde_json::from_slice::<LockDoc>(&bytes) {
                Ok(doc) if doc.owner_id != ours.owner_id => format!(
                    "run {} was taken over by pid {} on {} (`{}`) at {}; this process no longer holds it",
                    self.run_id,
                    doc.owner.pid,
                    doc.owner.hostname,
                    doc.owner.command,
                    format_ms(doc.owner.acquired_at_ms)
                ),
                _ => format!(
                    "run {}: its lock object {url} was overwritten by someone else while this process held it (the \
                     lock was broken); this process stopped driving the run",
                    self.run_id
                ),
            },
            Ok(Got::NotModified) | Err(_) => format!(
                "run {}: its lock object {url} changed while this process held it; this process stopped driving it",
                self.run_id
            ),
        }
    }
}

/// Who holds the lock at `key` now (None: nobody, or the lease expired).
pub(crate) async fn probe(
    client: &aws_sdk_s3::Client,
    loc: &S3Location,
    key: &str,
) -> Result<Option<LockOwner>, JournalError> {
    match Store::get(client, loc, key, None).await? {
        Got::Object(bytes, _) => Ok(parse(&bytes, loc, key)?.holder()),
        _ => Ok(None),
    }
}

fn parse(bytes: &[u8], loc: &S3Location, key: &str) -> Result<LockDoc, JournalError> {
    serde_json::from_slice(bytes).map_err(|e| JournalError::Corrupt {
        path: format!("s3://{}/{key}", loc.bucket).into(),
        detail: format!("the run lock cannot be parsed ({e}); someone wrote it by hand"),
        hint: "if no process drives this run any more, delete that object and resume the run".into(),
    })
}
