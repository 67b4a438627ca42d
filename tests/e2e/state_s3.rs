//! Shared run state on S3 (moto): separate processes with separate local directories ("machines") share
//! runs through one bucket; the lease lock lets exactly one drive a run; a killed run resumes elsewhere;
//! an expired lease is taken over and the old holder stops; a broken lock is reported; migration from
//! sled to S3 and back is lossless.

use serde_json::Value;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};
use wharf_tests::{Scratch, aws_config, s3_client, text, unique};

use wharf_tests::KILLABLE_WORKFLOW as WORKFLOW;

/// Short leases so takeovers happen within a test; heartbeats renew every third of it.
const LEASE_SECS: u64 = 3;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// A fresh bucket; returns `s3://bucket/prefix`.
fn shared_state() -> (String, String) {
    let bucket = unique("wharf-state").to_lowercase();
    runtime().block_on(async {
        let s3 = s3_client(&aws_config().await).await;
        s3.create_bucket().bucket(&bucket).send().await.expect("create bucket");
    });
    let url = format!("s3://{bucket}/{}", unique("team"));
    (bucket, url)
}

/// One "machine": its own scratch dir (local cache, workflow copy), the shared state URL.
struct Machine {
    scratch: Scratch,
    state: String,
}

impl Machine {
    fn new(state: &str) -> Machine {
        Machine { scratch: Scratch::new(), state: state.to_string() }
    }

    fn wharf(&self) -> Command {
        let mut cmd = self.scratch.wharf();
        cmd.env("WHARF_STATE", &self.state).env("WHARF_S3_LEASE_SECS", LEASE_SECS.to_string());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.wharf().args(args).output().unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.wharf().arg("--output").arg("json").args(args).output().unwrap();
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}; stdout {} stderr {}", text(&out.stdout), text(&out.stderr)))
    }

    fn start(&self, millis: u64) -> Child {
        let wf = self.scratch.workflow("shared.toml", &WORKFLOW.replace("MILLIS", &millis.to_string()));
        self.wharf().args(["run", wf.to_str().unwrap()]).spawn().unwrap()
    }

    /// Like `start_until_slow`, keeping the run's stderr for the test to read.
    fn start_captured_until_slow(&self, millis: u64) -> (Child, String) {
        let wf = self.scratch.workflow("shared.toml", &WORKFLOW.replace("MILLIS", &millis.to_string()));
        let child = self
            .wharf()
            .args(["run", wf.to_str().unwrap()])
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        (child, self.slow_step_run_id())
    }

    /// Waits until the latest run's slow step is in flight; returns the run id.
    fn slow_step_run_id(&self) -> String {
        let status = self
            .wait_for("the slow step to start", |v| step(v, "slow").is_some_and(|s| s["last"]["status"] == "started"));
        status["run"]["id"].as_str().unwrap().to_string()
    }

    /// Polls `wharf status` (latest run) until `pred` holds.
    fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let out = self.wharf().args(["--output", "json", "status"]).output().unwrap();
            if let Ok(v) = serde_json::from_slice::<Value>(&out.stdout)
                && pred(&v)
            {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts a run and returns it (and its id) once the slow step is in flight.
    fn start_until_slow(&self, millis: u64) -> (Child, String) {
        let child = self.start(millis);
        (child, self.slow_step_run_id())
    }

    /// `resume`, retried while the previous (dead) holder's lease has not expired yet.
    fn resume_when_free(&self, run_id: &str) -> Output {
        let deadline = Instant::now() + Duration::from_secs(LEASE_SECS * 10);
        loop {
            let out = self.run(&["resume", run_id]);
            if out.status.code() != Some(3) || Instant::now() > deadline {
                return out;
            }
            assert!(text(&out.stderr).contains("lease expires"), "{}", text(&out.stderr));
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

fn step<'a>(status: &'a Value, id: &str) -> Option<&'a Value> {
    status["steps"].as_array()?.iter().find(|s| s["step_id"] == id)
}

fn kill(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap().success();
    assert!(ok, "kill {sig}");
}

#[test]
fn a_run_killed_on_one_machine_finishes_on_another() {
    let (_, state) = shared_state();
    let (a, b) = (Machine::new(&state), Machine::new(&state));
    let (child, run_id) = a.start_until_slow(2_000);
    kill(child);

    // B sees the team's run (and, until the lease expires, who held it).
    let runs = b.json(&["runs"]);
    assert_eq!(runs[0]["id"], run_id.as_str(), "{runs:#}");

    let out = b.resume_when_free(&run_id);
    assert!(out.status.success(), "resume on B: {}{}", text(&out.stdout), text(&out.stderr));
    let status = a.json(&["status", &run_id]);
    assert_eq!(status["effective_status"], "succeeded", "{status:#}");
    assert_eq!(step(&status, "first").unwrap()["attempts"], 1, "finished steps are not re-run: {status:#}");
    let slow = step(&status, "slow").unwrap();
    assert_eq!(slow["attempts"], 2, "{status:#}");
    assert_eq!(slow["last"]["in_doubt"], true, "{status:#}");
    assert_eq!(step(&status, "last").unwrap()["last"]["outputs"]["value"], "one then 2000");
    let logs = text(&b.run(&["logs", &run_id]).stdout);
    assert!(logs.contains("took over run"), "the takeover of an unreleased lock is logged: {logs}");
}

#[test]
fn of_two_machines_racing_to_resume_exactly_one_proceeds() {
    let (_, state) = shared_state();
    let (a, b, c) = (Machine::new(&state), Machine::new(&state), Machine::new(&state));
    let (child, run_id) = a.start_until_slow(4_000);
    kill(child);
    std::thread::sleep(Duration::from_secs(LEASE_SECS + 1)); // A's lease runs out

    // Both start at once; the lock decides.
    let spawn = |m: &Machine| {
        m.wharf()
            .args(["resume", &run_id])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (pb, pc) = (spawn(&b), spawn(&c));
    let (ob, oc) = (pb.wait_with_output().unwrap(), pc.wait_with_output().unwrap());
    let (winner, loser) = match (ob.status.code(), oc.status.code()) {
        (Some(0), Some(3)) => (ob, oc),
        (Some(3), Some(0)) => (oc, ob),
        other => panic!(
            "exactly one resume must proceed, got {other:?}: B {}{} C {}{}",
            text(&ob.stdout),
            text(&ob.stderr),
            text(&oc.stdout),
            text(&oc.stderr)
        ),
    };
    let stderr = text(&loser.stderr);
    assert!(stderr.contains("is being driven by pid"), "the loser names the holder: {stderr}");
    assert!(text(&winner.stdout).contains("succeeded"), "{}", text(&winner.stdout));
}

#[test]
fn an_expired_lease_is_taken_over_and_the_old_holder_stops() {
    let (_, state) = shared_state();
    let (a, b) = (Machine::new(&state), Machine::new(&state));
    let (child, run_id) = a.start_until_slow(3_000);
    signal(&child, "-STOP"); // paused (a stalled VM, a network partition): heartbeats stop
    std::thread::sleep(Duration::from_secs(LEASE_SECS + 1));
    let out = b.run(&["resume", &run_id]);
    signal(&child, "-CONT");
    assert!(out.status.success(), "takeover: {}{}", text(&out.stdout), text(&out.stderr));
    let old = child.wait_with_output().unwrap();
    // The old holder learns at its next heartbeat or flush and stops instead of writing over B's progress.
    assert_eq!(old.status.code(), Some(3), "the old holder fails cleanly");
    let status = b.json(&["status", &run_id]);
    assert_eq!(status["effective_status"], "succeeded", "{status:#}");
    assert_eq!(step(&status, "last").unwrap()["last"]["outputs"]["value"], "one then 3000");
}

#[test]
fn a_taken_over_holder_reports_who_took_it() {
    let (_, state) = shared_state();
    let (a, b) = (Machine::new(&state), Machine::new(&state));
    let (child, run_id) = a.start_captured_until_slow(3000);
    signal(&child, "-STOP");
    std::thread::sleep(Duration::from_secs(LEASE_SECS + 1));
    let out = b.run(&["resume", &run_id]);
    signal(&child, "-CONT");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let old = child.wait_with_output().unwrap();
    let stderr = text(&old.stderr);
    assert!(stderr.contains("was taken over by pid"), "{stderr}");
    assert!(stderr.contains("no longer holds it"), "{stderr}");
}

#[test]
fn a_deleted_lock_is_reported_by_its_holder() {
    let (bucket, state) = shared_state();
    let a = Machine::new(&state);
    let (child, run_id) = a.start_captured_until_slow(4000);
    let prefix = state.trim_start_matches(&format!("s3://{bucket}/")).to_string();
    runtime().block_on(async {
        let s3 = s3_client(&aws_config().await).await;
        let key = format!("{prefix}/runs/{run_id}/lock.json");
        s3.delete_object().bucket(&bucket).key(key).send().await.unwrap();
    });
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("was deleted while this process held it"), "{stderr}");
}

#[test]
fn migration_from_sled_to_s3_and_back_is_lossless() {
    let (_, state) = shared_state();
    let local = Scratch::new();
    // Two sled runs: one finished, one killed mid-run.
    let quick = local.workflow("quick.toml", &WORKFLOW.replace("MILLIS", "10"));
    assert!(local.run(&["run", quick.to_str().unwrap()]).status.success());
    let slow = local.workflow("slow.toml", &WORKFLOW.replace("MILLIS", "60000"));
    let child = local.wharf().args(["run", slow.to_str().unwrap()]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !step(&local.json(&["status"]), "slow").is_some_and(|s| s["last"]["status"] == "started") {
        assert!(Instant::now() < deadline, "slow step never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    kill(child);

    let to_s3 = local.run(&["state", "migrate", "--from", "sled", "--to", &state]);
    assert!(to_s3.status.success(), "{}{}", text(&to_s3.stdout), text(&to_s3.stderr));
    assert!(text(&to_s3.stdout).contains("2 run(s) copied"), "{}", text(&to_s3.stdout));
    let again = local.run(&["state", "migrate", "--from", "sled", "--to", &state]);
    assert!(text(&again.stdout).contains("0 run(s) copied"), "re-running skips: {}", text(&again.stdout));

    let back = Scratch::new();
    let back_dir = format!("sled:{}", back.state_dir().display());
    let remote = Machine::new(&state);
    let to_sled = remote.run(&["state", "migrate", "--from", "s3", "--to", &back_dir]);
    assert!(to_sled.status.success(), "{}{}", text(&to_sled.stdout), text(&to_sled.stderr));

    let runs = local.json(&["runs"]);
    assert_eq!(remote.json(&["runs"]), runs, "S3 lists the same runs");
    assert_eq!(back.json(&["runs"]), runs, "and so does the round trip");
    for run in runs.as_array().unwrap() {
        let id = run["id"].as_str().unwrap();
        let original = local.json(&["status", id]);
        assert_eq!(remote.json(&["status", id]), original, "run {id} on S3");
        assert_eq!(back.json(&["status", id]), original, "run {id} back in sled");
        let logs = local.json(&["logs", id]);
        assert_eq!(remote.json(&["logs", id]), logs, "events of {id} on S3 (same seqs and times)");
        assert_eq!(back.json(&["logs", id]), logs, "events of {id} back in sled");
    }
    // The interrupted run resumes from S3 (made quick: an accepted change).
    let interrupted = runs.as_array().unwrap().iter().find(|r| r["status"] == "interrupted").unwrap();
    local.workflow("slow.toml", &WORKFLOW.replace("MILLIS", "10"));
    let out = remote.run(&["resume", interrupted["id"].as_str().unwrap(), "--accept-changes"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
}

#[test]
fn iam_policy_is_scoped_to_the_prefix() {
    let s = Scratch::new();
    let policy = s.json(&["state", "iam-policy", "s3://team-bucket/wharf/prod"]);
    let text = policy.to_string();
    assert!(text.contains("arn:aws:s3:::team-bucket/wharf/prod/runs/*"), "{text}");
    assert!(text.contains("\"wharf/prod/runs/*\""), "{text}");
    assert!(!text.contains("DeleteObject"), "{text}");
}
