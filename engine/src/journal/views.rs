//! When a run's derived views (`snapshot.json`, `events.jsonl`) reach the disk.
//!
//! The views are for other processes (`wharf status`, `runs`, `logs`); the journal is the source of
//! truth. Rewriting them at every durability point made them the most expensive part of a step (a
//! new inode and a rename per flush, and ext4 writes back a file renamed over another), so the
//! driver writes them at most once per [`INTERVAL`]: each flush hands the views of the state it
//! just made durable to [`Views::update`], which writes them at once if the last write is older
//! than that, and otherwise leaves them to this process's view-writer thread, which writes the
//! newest ones when the interval is up (a new run's first views too). A finished run's last views
//! are written when its journal closes, right after its last flush but off the caller's path
//! (`close_in_background`); this process's own readers wait for that close.
//! Views are built only from flushed state, so they are never ahead of the journal.
//!
//! So a reader sees a running run at most [`INTERVAL`] late, and after a crash the views may miss
//! the last [`INTERVAL`] of progress (or, for a run killed in its first [`INTERVAL`], be missing);
//! `open_run` rewrites them from the journal, and readers that find none on a run no process
//! holds do that themselves (`SledBackend::read_run`).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use super::{JournalError, snapshot};

/// The most the views of a running run lag its journal.
pub(crate) const INTERVAL: Duration = Duration::from_millis(50);

/// The events mirror in a run's directory.
pub(crate) const EVENTS_MIRROR: &str = "events.jsonl";

/// A run's views not yet on disk.
pub(crate) struct Views {
    run_dir: PathBuf,
    pending: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    /// The newest snapshot.json content.
    snapshot: Option<Vec<u8>>,
    /// Event lines to append to the mirror, or (with `rewrite_events`) its whole content.
    events: String,
    rewrite_events: bool,
    written_at: Option<Instant>,
    /// The view-writer thread will look at this run.
    queued: bool,
}

impl Views {
    /// With `new_run`, the first views wait like later ones (a run that ends within [`INTERVAL`]
    /// writes them once, at its end); an opened run's are written at its first flush.
    pub(crate) fn new(run_dir: PathBuf, new_run: bool) -> Arc<Views> {
        let pending = Pending { written_at: new_run.then(Instant::now), ..Pending::default() };
        Arc::new(Views { run_dir, pending: Mutex::new(pending) })
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the views of a state just made durable: `snapshot` replaces the pending one, `events`
    /// (JSON lines) is appended to the mirror or, with `rewrite_events`, replaces it. Written now
    /// when `now` is set or the last write is [`INTERVAL`] old; otherwise queued.
    pub(crate) fn update(
        self: &Arc<Self>,
        snapshot: Vec<u8>,
        events: String,
        rewrite_events: bool,
        now: bool,
    ) -> Result<(), JournalError> {
        let mut p = self.pending();
        p.snapshot = Some(snapshot);
        if rewrite_events {
            p.events = events;
            p.rewrite_events = true;
        } else {
            p.events.push_str(&events);
        }
        if now || p.written_at.is_none_or(|t| t.elapsed() >= INTERVAL) {
            return self.write(&mut p);
        }
        if !p.queued {
            p.queued = true;
            defer(self.clone());
        }
        Ok(())
    }

    /// Writes whatever is pending (the run is being closed). Errors are left for `open_run`, which
    /// rewrites the views from the journal.
    pub(crate) fn write_pending(&self) {
        let mut p = self.pending();
        let _ = self.write(&mut p);
    }

    /// Pending content is cleared only once it is on disk, so a failed write is retried, and
    /// reported, by the next one.
    fn write(&self, p: &mut Pending) -> Result<(), JournalError> {
        if p.rewrite_events || !p.events.is_empty() {
            write_events(&self.run_dir, &p.events, p.rewrite_events)?;
            p.events.clear();
            p.rewrite_events = false;
        }
        if let Some(bytes) = &p.snapshot {
            snapshot::write_bytes(&self.run_dir, bytes)?;
            p.snapshot = None;
        }
        p.written_at = Some(Instant::now());
        Ok(())
    }
}

fn write_events(run_dir: &Path, text: &str, rewrite: bool) -> Result<(), JournalError> {
    let path = run_dir.join(EVENTS_MIRROR);
    let io = |source| JournalError::Io { path: path.clone(), source };
    if rewrite {
        let tmp = path.with_extension("jsonl.tmp");
        fs::write(&tmp, text).map_err(io)?;
        fs::rename(&tmp, &path).map_err(io)?;
    } else {
        let mut file = OpenOptions::new().append(true).create(true).open(&path).map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
    }
    Ok(())
}

/// Hands `views` to the view-writer thread, which writes them [`INTERVAL`] from now.
fn defer(views: Arc<Views>) {
    static QUEUE: OnceLock<Mutex<Sender<(Instant, Arc<Views>)>>> = OnceLock::new();
    let queue = QUEUE.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<(Instant, Arc<Views>)>();
        std::thread::Builder::new()
            .name("wharf-views".into())
            .spawn(move || {
                // Every entry waits the same INTERVAL, so the queue is in due order.
                for (due, views) in rx {
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let mut p = views.pending();
                    p.queued = false;
                    // A failure stays pending: the run's next flush retries it and reports it.
                    let _ = views.write(&mut p);
                }
            })
            .expect("spawn the view-writer thread");
        Mutex::new(tx)
    });
    let _ = queue.lock().unwrap_or_else(|p| p.into_inner()).send((Instant::now() + INTERVAL, views));
}
