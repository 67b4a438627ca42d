use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use super::*;

pub(crate) fn sample_run(id: &str) -> RunRecord {
    RunRecord {
        id: id.to_string(),
        workflow_name: "ecs-example".into(),
        workflow_path: "workflows/ecs.toml".into(),
        workflow_source: "name = \"ecs-example\"\n".into(),
        step_hashes: BTreeMap::from([("build".into(), "ab12".into()), ("cluster".into(), "cd34".into())]),
        params: BTreeMap::from([("region".into(), serde_json::json!("eu-west-1")), ("n".into(), serde_json::json!(3))]),
        status: RunStatus::Running,
        created_at_ms: 0,
        updated_at_ms: 0,
        finished_at_ms: None,
        error: None,
    }
}

/// The run's snapshot once `ready` holds: while a run is driven its views follow the journal
/// within `views::INTERVAL`, so a reader polls (a view never shows what was not flushed).
fn read_settled(b: &SledBackend, id: &str, ready: impl Fn(&RunSnapshot) -> bool) -> RunSnapshot {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let read = b.read_run(id);
        match read {
            Ok(snap) if ready(&snap) => return snap,
            _ if std::time::Instant::now() < deadline => std::thread::sleep(std::time::Duration::from_millis(5)),
            other => panic!("run {id}'s snapshot did not settle: {other:?}"),
        }
    }
}

fn attempt(step: &str, n: u32, status: AttemptStatus) -> AttemptRecord {
    AttemptRecord {
        step_id: step.into(),
        attempt: n,
        status,
        started_at_ms: 1000 + n as u64,
        finished_at_ms: (status != AttemptStatus::Started).then_some(2000),
        input_hash: format!("{step}-{n}"),
        outputs: (status == AttemptStatus::Succeeded).then(|| serde_json::json!({"arn": "arn:aws:ecs:x"})),
        error: (status == AttemptStatus::Failed).then(|| StepError {
            kind: "retryable".into(),
            code: "Throttling".into(),
            message: "slow down".into(),
        }),
        in_doubt: false,
    }
}

fn resource(kind: &str, id: &str) -> Resource {
    Resource {
        kind: kind.into(),
        id: id.into(),
        name: Some("my-cluster".into()),
        region: Some("eu-west-1".into()),
        step_id: "cluster".into(),
        created_at_ms: 1234,
        deleted_at_ms: None,
        attributes: BTreeMap::from([("tag".into(), "v".into())]),
    }
}

fn ev(step: Option<&str>, kind: EventKind, msg: &str) -> NewEvent {
    NewEvent { step_id: step.map(Into::into), kind, message: msg.into() }
}

fn backend() -> (tempfile::TempDir, SledBackend) {
    let dir = tempfile::tempdir().unwrap();
    let b = SledBackend::new(dir.path()).unwrap();
    (dir, b)
}

#[test]
fn round_trip_every_record_type() {
    let (_dir, b) = backend();
    let j = b.create_run(sample_run("r1")).unwrap();
    let created = j.run();
    assert!(created.created_at_ms > 0);
    j.put_attempt(&attempt("build", 1, AttemptStatus::Failed)).unwrap();
    j.put_attempt(&attempt("build", 2, AttemptStatus::Succeeded)).unwrap();
    let mut doubt = attempt("cluster", 1, AttemptStatus::Started);
    doubt.in_doubt = true;
    j.put_attempt(&doubt).unwrap();
    let kinds = [
        EventKind::RunStarted,
        EventKind::StepStarted,
        EventKind::Log(LogLevel::Warn),
        EventKind::Progress,
        EventKind::Call,
        EventKind::StepRetrying,
        EventKind::StepSucceeded,
        EventKind::StepFailed,
        EventKind::StepSkipped,
        EventKind::RunResumed,
        EventKind::RunFinished,
    ];
    for k in kinds {
        j.append_event(ev(Some("build"), k, &format!("{k:?}"))).unwrap();
    }
    assert!(j.record_resource(&resource("ecs:cluster", "arn:1")).unwrap());
    j.update_run(&mut |r| {
        r.status = RunStatus::Failed;
        r.error = Some("boom".into());
        r.finished_at_ms = Some(99);
        r.id = "renamed".into(); // ignored: the id names the directory
    })
    .unwrap();
    j.flush().unwrap();
    let (run, attempts, events, resources) =
        (j.run(), j.attempts().unwrap(), j.events(None, None).unwrap(), j.resources().unwrap());
    assert_eq!(run.id, "r1");
    assert_eq!(run.status, RunStatus::Failed);
    drop(j);

    let j = b.open_run("r1").unwrap();
    assert_eq!(j.run(), run);
    assert_eq!(j.attempts().unwrap(), attempts);
    assert_eq!(attempts.len(), 3);
    assert_eq!(attempts[2], doubt);
    assert_eq!(j.events(None, None).unwrap(), events);
    assert_eq!(events.iter().map(|e| e.kind).collect::<Vec<_>>(), kinds);
    assert_eq!(j.resources().unwrap(), resources);
    assert_eq!(resources, vec![resource("ecs:cluster", "arn:1")]);

    // Upsert: same (step, attempt) replaces.
    j.put_attempt(&attempt("cluster", 1, AttemptStatus::Succeeded)).unwrap();
    assert_eq!(j.attempts().unwrap().len(), 3);
    assert_eq!(j.attempts().unwrap()[2].status, AttemptStatus::Succeeded);
}

#[test]
fn serde_shapes() {
    assert_eq!(serde_json::to_value(EventKind::Log(LogLevel::Warn)).unwrap(), serde_json::json!({"log": "warn"}));
    assert_eq!(serde_json::to_value(EventKind::StepStarted).unwrap(), serde_json::json!("step_started"));
    assert_eq!(serde_json::to_value(RunStatus::Succeeded).unwrap(), serde_json::json!("succeeded"));
    assert_eq!(serde_json::to_value(AttemptStatus::Started).unwrap(), serde_json::json!("started"));
}

#[test]
fn event_seq_monotonic_across_reopen_and_filters() {
    let (_dir, b) = backend();
    let j = b.create_run(sample_run("r1")).unwrap();
    assert_eq!(j.append_event(ev(None, EventKind::RunStarted, "go")).unwrap(), 1);
    assert_eq!(j.append_event(ev(Some("a"), EventKind::StepStarted, "a")).unwrap(), 2);
    assert_eq!(j.append_event(ev(Some("b"), EventKind::StepStarted, "b")).unwrap(), 3);
    j.flush().unwrap();
    drop(j);
    let j = b.open_run("r1").unwrap();
    assert_eq!(j.append_event(ev(Some("a"), EventKind::StepSucceeded, "a done")).unwrap(), 4);
    let seqs = |v: Vec<Event>| v.into_iter().map(|e| e.seq).collect::<Vec<_>>();
    assert_eq!(seqs(j.events(None, None).unwrap()), [1, 2, 3, 4]);
    assert_eq!(seqs(j.events(None, Some(2)).unwrap()), [3, 4]);
    assert_eq!(seqs(j.events(Some("a"), None).unwrap()), [2, 4]);
    assert_eq!(seqs(j.events(Some("a"), Some(2)).unwrap()), [4]);
    assert!(j.events(None, Some(u64::MAX)).unwrap().is_empty());
}

#[test]
fn attempts_ordered_by_step_then_attempt() {
    let (_dir, b) = backend();
    let j = b.create_run(sample_run("r1")).unwrap();
    for (s, n) in [("b", 10), ("a-b", 1), ("b", 2), ("a", 3), ("a", 1), ("b", 1)] {
        j.put_attempt(&attempt(s, n, AttemptStatus::Failed)).unwrap();
    }
    let got: Vec<_> = j.attempts().unwrap().into_iter().map(|a| (a.step_id, a.attempt)).collect();
    let want = [("a", 1), ("a", 3), ("a-b", 1), ("b", 1), ("b", 2), ("b", 10)];
    assert_eq!(got, want.map(|(s, n)| (s.to_string(), n)));
    j.flush().unwrap();
    let snap = read_settled(&b, "r1", |s| !s.steps.is_empty());
    let steps: Vec<_> = snap.steps.iter().map(|s| (s.step_id.as_str(), s.attempts, s.last.attempt)).collect();
    assert_eq!(steps, [("a", 2, 3), ("a-b", 1, 1), ("b", 3, 10)]);
}

#[test]
fn ledger_dedupes_and_marks_deleted() {
    let (_dir, b) = backend();
    let j = b.create_run(sample_run("r1")).unwrap();
    assert!(j.record_resource(&resource("ecs:service", "z")).unwrap());
    assert!(j.record_resource(&resource("ecs:cluster", "a")).unwrap());
    assert!(!j.record_resource(&resource("ecs:service", "z")).unwrap());
    assert!(j.record_resource(&resource("ecs:cluster", "z")).unwrap()); // same id, other kind
    j.mark_resource_deleted("ecs:service", "z").unwrap();
    j.mark_resource_deleted("ecs:nothing", "q").unwrap(); // unknown: no-op
    let first = j.resources().unwrap()[0].deleted_at_ms;
    assert!(first.is_some());
    j.mark_resource_deleted("ecs:service", "z").unwrap(); // keeps first deletion time
    j.flush().unwrap();
    drop(j);
    let j = b.open_run("r1").unwrap();
    // Creation order survives reopen, and new entries go after the old ones.
    assert!(j.record_resource(&resource("iam:role", "r")).unwrap());
    let res = j.resources().unwrap();
    let ids: Vec<_> = res.iter().map(|r| (r.kind.as_str(), r.id.as_str())).collect();
    assert_eq!(ids, [("ecs:service", "z"), ("ecs:cluster", "a"), ("ecs:cluster", "z"), ("iam:role", "r")]);
    assert_eq!(res[0].deleted_at_ms, first);
    assert!(res[1].deleted_at_ms.is_none());
}

#[test]
fn second_open_is_locked_with_owner_and_released_after_drop() {
    let (_dir, b) = backend();
    let j = b.create_run(sample_run("r1")).unwrap();
    // flock belongs to the open file description: a second handle in the same process is refused too.
    let err = b.open_run("r1").err().expect("second open must fail");
    let JournalError::Locked { run_id, owner: Some(owner) } = &err else {
        panic!("expected Locked with owner, got {err:?}")
    };
    assert_eq!(run_id, "r1");
    assert_eq!(owner.pid, std::process::id());
    assert!(!owner.hostname.is_empty() && !owner.command.is_empty() && owner.acquired_at_ms > 0);
    let msg = err.to_string();
    assert!(msg.contains(&format!("pid {}", owner.pid)) && msg.contains("wait for it or stop that process"), "{msg}");

    // The run's first flush (the scheduler makes one within 50 ms). Its views follow within
    // views::INTERVAL, and read_run waits for them.
    j.flush().unwrap();
    let snap = b.read_run("r1").unwrap();
    assert_eq!(snap.held_by.as_ref().map(|o| o.pid), Some(std::process::id()));
    assert_eq!(snap.effective_status(), EffectiveStatus::Running);

    drop(j);
    let snap = b.read_run("r1").unwrap();
    assert_eq!(snap.held_by, None);
    assert_eq!(snap.effective_status(), EffectiveStatus::Interrupted);
    let j = b.open_run("r1").unwrap(); // released: sled's own lock too
    j.update_run(&mut |r| r.status = RunStatus::Succeeded).unwrap();
    j.flush().unwrap();
    drop(j);
    assert_eq!(b.read_run("r1").unwrap().effective_status(), EffectiveStatus::Succeeded);
}

#[test]
fn a_missing_snapshot_of_a_run_nobody_holds_is_rebuilt_by_readers() {
    // As after a SIGKILL in a run's first views::INTERVAL: the journal has it, the view does not.
    let (dir, b) = backend();
    let j = b.create_run(sample_run("r1")).unwrap();
    j.put_attempt(&attempt("build", 1, AttemptStatus::Succeeded)).unwrap();
    j.flush().unwrap();
    drop(j);
    fs::remove_file(dir.path().join("runs/r1/snapshot.json")).unwrap();
    let snap = b.read_run("r1").unwrap();
    assert_eq!(snap.steps.len(), 1);
    assert!(snap.held_by.is_none(), "the reader let go of the run");
    fs::remove_file(dir.path().join("runs/r1/snapshot.json")).unwrap();
    assert_eq!(b.list_runs().unwrap().len(), 1);
}

#[test]
fn snapshot_readable_while_locked_reflects_last_flush() {
    let (_dir, b) = backend();
    let j = b.create_run(sample_run("r1")).unwrap();
    j.put_attempt(&attempt("build", 1, AttemptStatus::Succeeded)).unwrap();
    j.record_resource(&resource("ecs:cluster", "arn:1")).unwrap();
    j.flush().unwrap();
    j.put_attempt(&attempt("deploy", 1, AttemptStatus::Started)).unwrap(); // not flushed yet
    let snap = read_settled(&b, "r1", |s| !s.steps.is_empty());
    assert_eq!(snap.steps.len(), 1);
    assert_eq!(snap.steps[0].last, attempt("build", 1, AttemptStatus::Succeeded));
    assert_eq!(snap.resources.len(), 1);
    assert!(snap.held_by.is_some());
    j.flush().unwrap();
    read_settled(&b, "r1", |s| s.steps.len() == 2);
    assert_eq!(b.list_runs().unwrap().len(), 1);
}

#[test]
fn create_errors_and_not_found_hint() {
    let (_dir, b) = backend();
    let j = b.create_run(sample_run("20260101-000000-aaaaaa")).unwrap();
    drop(j);
    let err = b.create_run(sample_run("20260101-000000-aaaaaa")).err().unwrap();
    assert!(matches!(err, JournalError::AlreadyExists { .. }), "{err:?}");
    assert!(b.create_run(sample_run("../escape")).is_err());
    assert!(!b.state_dir().join("escape").exists());
    for id in ["nope", "../runs", ""] {
        let err = b.open_run(id).err().unwrap();
        let JournalError::NotFound { known, .. } = &err else { panic!("{err:?}") };
        assert_eq!(known, &["20260101-000000-aaaaaa".to_string()]);
        assert!(err.to_string().contains("recent runs: 20260101-000000-aaaaaa"), "{err}");
        assert!(matches!(b.read_run(id), Err(JournalError::NotFound { .. })));
    }
}

#[test]
fn new_run_ids_are_sortable_and_distinct() {
    let a = new_run_id();
    let b = new_run_id();
    assert_ne!(a, b);
    assert_eq!(a.len(), "20261126-141502-3fa9c1".len(), "{a}");
    assert!(a.starts_with("20") && a.as_bytes()[8] == b'-' && a.as_bytes()[15] == b'-', "{a}");
    assert!(valid_run_id(&a));
    assert!(a[..15] <= b[..15]);
}

#[test]
fn list_runs_newest_first() {
    let (_dir, b) = backend();
    for (id, t) in [("x-old", 1000), ("a-new", 3000), ("m-mid", 2000)] {
        let mut r = sample_run(id);
        r.created_at_ms = t;
        b.create_run(r).unwrap();
    }
    let ids: Vec<_> = b.list_runs().unwrap().into_iter().map(|s| s.run.id).collect();
    assert_eq!(ids, ["a-new", "m-mid", "x-old"]);
}

#[test]
fn corrupt_snapshot_gives_corrupt_error_and_other_runs_still_list() {
    let (_dir, b) = backend();
    b.create_run(sample_run("good")).unwrap();
    b.create_run(sample_run("bad")).unwrap();
    fs::write(b.run_dir("bad").join("snapshot.json"), b"{\"run\": {\"id\": tru").unwrap();
    let err = b.read_run("bad").err().unwrap();
    let JournalError::Corrupt { path, .. } = &err else { panic!("{err:?}") };
    assert!(path.ends_with("runs/bad/snapshot.json"));
    assert!(err.to_string().contains("resuming run bad repairs it"), "{err}");
    let (runs, broken) = b.scan_runs().unwrap();
    assert_eq!(runs.iter().map(|r| r.run.id.as_str()).collect::<Vec<_>>(), ["good"]);
    assert_eq!(broken.len(), 1);
    // Reopening regenerates the derived snapshot from the journal.
    drop(b.open_run("bad").unwrap());
    assert_eq!(b.read_run("bad").unwrap().run.id, "bad");
}

/// Applies `damage` to the run's sled database directory; the open must fail (never panic).
fn damaged_journal(damage: fn(&Path)) -> JournalError {
    let (_dir, b) = backend();
    let j = b.create_run(sample_run("r1")).unwrap();
    j.put_attempt(&attempt("build", 1, AttemptStatus::Succeeded)).unwrap();
    j.append_event(ev(None, EventKind::RunStarted, "go")).unwrap();
    j.flush().unwrap();
    drop(j);
    damage(&b.run_dir("r1").join("journal"));
    let err = b.open_run("r1").err().expect("damaged journal must not open");
    // The lock must be released after a failed open so the run can be inspected or retried.
    assert_eq!(b.read_run("r1").unwrap().held_by, None);
    err
}

fn visit_files(dir: &Path, f: fn(&Path)) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { visit_files(&p, f) } else { f(&p) }
    }
}

fn assert_corrupt_with_hint(err: &JournalError) {
    let JournalError::Corrupt { path, hint, .. } = err else { panic!("expected Corrupt, got {err:?}") };
    assert!(path.ends_with("runs/r1/journal"), "{}", path.display());
    assert!(hint.contains("other runs are unaffected") && hint.contains("snapshot.json"), "{hint}");
}

#[test]
fn truncated_sled_files_give_corrupt() {
    assert_corrupt_with_hint(&damaged_journal(|d| visit_files(d, |p| fs::write(p, b"").unwrap())));
}

#[test]
fn garbage_sled_files_give_corrupt() {
    assert_corrupt_with_hint(&damaged_journal(|d| {
        visit_files(d, |p| {
            let len = fs::metadata(p).unwrap().len().max(64) as usize;
            fs::write(p, (0..len).map(|i| (i * 131 % 251) as u8).collect::<Vec<_>>()).unwrap()
        })
    }));
}

#[test]
fn missing_journal_dir_gives_corrupt() {
    assert_corrupt_with_hint(&damaged_journal(|d| fs::remove_dir_all(d).unwrap()));
}

const CHILD_ENV: &str = "WHARF_JOURNAL_SIGKILL_CHILD_DIR";

/// Not a real test: the body of the child process of `sigkill_keeps_everything_flushed`.
#[test]
fn sigkill_child_helper() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let b = SledBackend::new(Path::new(&dir)).unwrap();
    let j = b.create_run(sample_run("killed")).unwrap();
    j.put_attempt(&attempt("build", 1, AttemptStatus::Succeeded)).unwrap();
    j.append_event(ev(Some("build"), EventKind::StepSucceeded, "built")).unwrap();
    j.record_resource(&resource("ecs:cluster", "arn:1")).unwrap();
    j.update_run(&mut |r| r.error = Some("flushed".into())).unwrap();
    j.flush().unwrap();
    j.put_attempt(&attempt("deploy", 1, AttemptStatus::Started)).unwrap(); // may or may not survive
    println!("READY");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

/// Kills the child if an assertion fails first, so no helper process outlives the test.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sigkill_keeps_everything_flushed() {
    let (dir, b) = backend();
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["journal::tests::sigkill_child_helper", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let stdout = BufReader::new(child.0.stdout.take().unwrap());
    let ready = stdout.lines().map_while(Result::ok).any(|l| l.contains("READY"));
    assert!(ready, "child exited before flushing");

    // While the child lives: readable, held by the child, and not openable.
    let snap = read_settled(&b, "killed", |_| true);
    assert_eq!(snap.held_by.as_ref().map(|o| o.pid), Some(child.0.id()));
    match b.open_run("killed") {
        Err(JournalError::Locked { owner: Some(o), .. }) => assert_eq!(o.pid, child.0.id()),
        other => panic!("expected Locked, got {:?}", other.err()),
    }

    child.0.kill().unwrap(); // SIGKILL on Unix: no destructors, no flush
    child.0.wait().unwrap();

    assert_eq!(b.read_run("killed").unwrap().effective_status(), EffectiveStatus::Interrupted);
    let j = b.open_run("killed").unwrap();
    assert_eq!(j.run().error.as_deref(), Some("flushed"));
    assert_eq!(j.attempts().unwrap()[0], attempt("build", 1, AttemptStatus::Succeeded));
    let events = j.events(None, None).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].message, "built");
    assert_eq!(j.resources().unwrap(), vec![resource("ecs:cluster", "arn:1")]);
    assert_eq!(j.append_event(ev(None, EventKind::RunResumed, "again")).unwrap(), 2);
}

/// Damage confined to sled's data file (its `conf` intact). sled recovers the prefix before the damage (its
/// torn-write semantics), silently dropping flushed records; the snapshot cross-check must turn that into
/// Corrupt. Opening is only acceptable if nothing flushed was lost. Never a panic.
#[test]
fn damaged_db_file_variants_never_panic() {
    type Damage = Box<dyn Fn(&mut Vec<u8>)>;
    let mut variants: Vec<(String, Damage)> = Vec::new();
    for frac in [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99] {
        variants.push((
            format!("truncate at {frac}"),
            Box::new(move |b: &mut Vec<u8>| b.truncate((b.len() as f64 * frac) as usize)),
        ));
        variants.push((
            format!("garbage at {frac}"),
            Box::new(move |b: &mut Vec<u8>| {
                let at = (b.len() as f64 * frac) as usize;
                let end = (at + 512).min(b.len());
                b[at..end].iter_mut().enumerate().for_each(|(i, x)| *x = (i * 37 + 11) as u8);
            }),
        ));
    }
    for (name, damage) in variants {
        let (_dir, b) = backend();
        let j = b.create_run(sample_run("r1")).unwrap();
        for n in 1..=20 {
            j.put_attempt(&attempt("build", n, AttemptStatus::Failed)).unwrap();
            j.append_event(ev(None, EventKind::StepRetrying, &"x".repeat(200))).unwrap();
            j.flush().unwrap();
        }
        drop(j);
        let db = b.run_dir("r1").join("journal").join("db");
        let mut bytes = fs::read(&db).unwrap();
        damage(&mut bytes);
        fs::write(&db, bytes).unwrap();
        match b.open_run("r1") {
            Ok(j) => {
                assert_eq!(j.attempts().unwrap().len(), 20, "{name}: lost flushed attempts silently");
                assert_eq!(j.events(None, None).unwrap().len(), 20, "{name}");
            }
            Err(e) => assert!(matches!(e, JournalError::Corrupt { .. }), "{name}: {e:?}"),
        }
    }
}

/// Runs are created from prepared directories (spare.rs) when one is ready: the spares are never
/// listed, a taken id still fails with `AlreadyExists`, and a spare an exited process left
/// behind (unlocked) is adopted rather than piling up.
#[test]
fn prepared_run_directories_are_hidden_claimed_once_and_adopted() {
    let (dir, b) = backend();
    let runs = dir.path().join("runs");
    let spares = || {
        fs::read_dir(&runs)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with(".spare"))
            .collect::<Vec<_>>()
    };
    // An exited process's spare: a directory with a lock file nobody holds.
    fs::create_dir_all(runs.join(".spare-999999-0/journal/blobs")).unwrap();
    fs::write(runs.join(".spare-999999-0/lock"), "").unwrap();

    for i in 0..5 {
        let id = format!("r{i}");
        let journal = b.create_run(sample_run(&id)).unwrap();
        drop(journal);
        // The next spare is prepared in the background; wait for it so the next create uses it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while spares().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        assert_eq!(spares().len(), 1, "one spare at a time, the left-behind one adopted: {:?}", spares());
    }
    let (listed, broken) = b.scan_runs().unwrap();
    assert!(broken.is_empty(), "{broken:?}");
    let ids: Vec<&str> = listed.iter().map(|s| s.run.id.as_str()).collect();
    assert_eq!(ids.len(), 5, "spares are not runs: {ids:?}");
    // A taken id fails as before, and the spare stays for the next run.
    assert!(matches!(b.create_run(sample_run("r1")), Err(JournalError::AlreadyExists { .. })));
    assert_eq!(spares().len(), 1);
    let journal = b.create_run(sample_run("r5")).unwrap();
    assert_eq!(journal.run().status, RunStatus::Running);
    drop(journal);

    // The spare left for the next process has the well-known name, which a new process takes
    // without listing the directory (the e2e tests, one `wharf` process per run, go through it).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while spares().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert_eq!(spares(), [".spare"], "the first spare of a state directory has the well-known name");
}

/// Creating a run does not flush it (the scheduler makes its first flush within 50 ms), so a
/// process killed in its first moments leaves a claimed directory with nothing in its journal. No step of
/// it acted (every side effect waits for a flush): listings skip it, and opening it says so.
#[test]
fn a_run_killed_before_its_first_flush_is_skipped_and_explained() {
    let (_dir, b) = backend();
    drop(b.create_run(sample_run("good")).unwrap()); // closed: sled flushes as it closes
    let dir = b.run_dir("lost");
    fs::create_dir_all(dir.join("journal")).unwrap();
    drop(::sled::Config::new().path(dir.join("journal")).open().unwrap());

    let (runs, broken) = b.scan_runs().unwrap();
    assert_eq!(runs.iter().map(|r| r.run.id.as_str()).collect::<Vec<_>>(), ["good"]);
    assert!(broken.is_empty(), "{broken:?}");
    for err in [b.read_run("lost").err().unwrap(), b.open_run("lost").err().unwrap()] {
        let JournalError::NeverRecorded { run_id, path } = &err else { panic!("{err:?}") };
        assert_eq!((run_id.as_str(), path), ("lost", &dir));
        assert!(err.to_string().contains("none of its steps acted; start the workflow again"), "{err}");
    }
}
