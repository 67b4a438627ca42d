//! Engine overhead, in-process through the wharf library: a no-op plugin run by the real
//! scheduler with the real (durable, fsyncing) sled journal on the bench's state directory.

use crate::stats::Summary;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wharf::events::Observer;
use wharf::host::Host;
use wharf::host::cache::ComponentCache;
use wharf::journal::{Event, EventKind, RunStatus, SledBackend};
use wharf::scheduler::Scheduler;
use wharf::workflow::Workflow;

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

pub struct EngineResults {
    pub per_step: Summary,
    pub three_step: Summary,
    /// The disk's own durability point, measured around the 3-step runs.
    pub disk_sync: Summary,
    pub steps_per_sec: f64,
    pub parallel_runs: usize,
    pub steps_per_run: usize,
}

/// Records when each step succeeded (the per-step overhead is the gap between consecutive steps
/// of a linear chain: schedule, render, journal + flush, instantiate, call, journal + flush).
#[derive(Default)]
struct Stamps(Mutex<Vec<Instant>>);

impl Observer for Stamps {
    fn on_event(&self, event: &Event) {
        if event.kind == EventKind::StepSucceeded {
            self.0.lock().unwrap().push(Instant::now());
        }
    }
}

/// A linear chain of `n` no-op steps (`s1 <- s2 <- ...`), like a deployment's dependent steps.
fn chain(dir: &Path, n: usize) -> Workflow {
    let mut src = format!("name = \"noop-{n}\"\n[run]\nconcurrency = 4\n");
    for i in 1..=n {
        src.push_str(&format!("[[steps]]\nid = \"s{i}\"\nplugin = {NOOP:?}\n"));
        if i > 1 {
            src.push_str(&format!("needs = [\"s{}\"]\n", i - 1));
        }
    }
    let path = dir.join(format!("noop-{n}.toml"));
    std::fs::write(&path, &src).unwrap();
    Workflow::parse(&path, &src, &wharf::builtin::names()).expect("the bench workflow is valid")
}

fn scheduler(host: &Arc<Host>, state: &Path, observer: Arc<dyn Observer>) -> Scheduler {
    let backend = Arc::new(SledBackend::new(state).expect("state dir"));
    Scheduler::new(host.clone(), backend, observer)
}

pub fn run(state_root: &Path, samples: usize, parallel_runs: usize, steps_per_run: usize) -> EngineResults {
    let dir = tempfile::tempdir_in(state_root).expect("bench state dir");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let host = Arc::new(Host::new(ComponentCache::new(dir.path().join("cache")), 64).expect("engine"));
    let params = BTreeMap::new();

    // Per-step overhead: gaps between consecutive steps of 20-step chains.
    let chain20 = chain(dir.path(), 20);
    let stamps = Arc::new(Stamps::default());
    let sched = scheduler(&host, &dir.path().join("state-chain"), stamps.clone());
    let mut gaps = Vec::new();
    runtime.block_on(async {
        sched.start(chain20.clone(), params.clone()).await.unwrap(); // warm-up: compile + cache
        for _ in 0..(samples / 19).max(2) {
            stamps.0.lock().unwrap().clear();
            let out = sched.start(chain20.clone(), params.clone()).await.unwrap();
            assert_eq!(out.status, RunStatus::Succeeded);
            let t = stamps.0.lock().unwrap();
            gaps.extend(t.windows(2).map(|w| w[1] - w[0]));
        }
    });

    // A 3-step workflow end to end: create the run's journal, three steps, finish.
    let chain3 = chain(dir.path(), 3);
    let sched = scheduler(&host, &dir.path().join("state-3"), Arc::new(wharf::events::Quiet));
    let mut three = Vec::new();
    let mut syncs = disk_syncs(dir.path(), 100);
    runtime.block_on(async {
        for i in 0..samples + 5 {
            let t0 = Instant::now();
            let out = sched.start(chain3.clone(), params.clone()).await.unwrap();
            let took = t0.elapsed();
            assert_eq!(out.status, RunStatus::Succeeded);
            if i >= 5 {
                three.push(took);
            }
        }
    });

    syncs.extend(disk_syncs(dir.path(), 100));

    // Sustained throughput: many runs at once, each a chain, for a fixed amount of work.
    let chain_n = chain(dir.path(), steps_per_run);
    let sched = Arc::new(scheduler(&host, &dir.path().join("state-par"), Arc::new(wharf::events::Quiet)));
    let rounds = 3;
    let t0 = Instant::now();
    runtime.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..parallel_runs * rounds {
            let (sched, wf, params) = (sched.clone(), chain_n.clone(), params.clone());
            set.spawn(async move { sched.start(wf, params).await.unwrap().status });
            // Keep `parallel_runs` in flight.
            if set.len() >= parallel_runs {
                assert_eq!(set.join_next().await.unwrap().unwrap(), RunStatus::Succeeded);
            }
        }
        while let Some(s) = set.join_next().await {
            assert_eq!(s.unwrap(), RunStatus::Succeeded);
        }
    });
    let elapsed = t0.elapsed();
    let total_steps = (parallel_runs * rounds * steps_per_run) as f64;
    EngineResults {
        per_step: Summary::of(gaps),
        three_step: Summary::of(three),
        disk_sync: Summary::of(syncs),
        steps_per_sec: total_steps / elapsed.as_secs_f64().max(Duration::from_micros(1).as_secs_f64()),
        parallel_runs,
        steps_per_run,
    }
}

/// What one durability point costs on this disk by itself: a 4 KiB `pwrite` to a new spot of a
/// file, then `sync_file_range` waiting for it, as sled's flush does. The 3-step run has one on
/// its path, so its time moves with this (ext4 mounted with `discard` is slow after deletions).
fn disk_syncs(dir: &Path, n: usize) -> Vec<Duration> {
    use std::os::unix::fs::FileExt;
    use std::os::unix::io::AsRawFd;
    let path = dir.join("disk-sync-probe");
    let file = std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path).unwrap();
    let block = [0x5au8; 4096];
    let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE | libc::SYNC_FILE_RANGE_WRITE | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    let samples = (0..n as u64)
        .map(|i| {
            let t0 = Instant::now();
            file.write_all_at(&block, i * 4096).unwrap();
            // SAFETY: a valid open descriptor and a range within the file.
            let rc = unsafe { libc::sync_file_range(file.as_raw_fd(), (i * 4096) as i64, 4096, flags) };
            assert_eq!(rc, 0, "sync_file_range: {}", std::io::Error::last_os_error());
            t0.elapsed()
        })
        .collect();
    drop(file);
    let _ = std::fs::remove_file(&path);
    samples
}
