//! A run killed with SIGKILL resumes without re-running finished steps; a second process cannot
//! drive it at the same time; a changed workflow is refused unless the change is accepted.

use serde_json::Value;
use std::process::Child;
use std::time::{Duration, Instant};
use wharf_tests::{Scratch, text};

use wharf_tests::KILLABLE_WORKFLOW as WORKFLOW;

/// Polls `wharf status` until `pred` holds (bounded; the process may be slow on a loaded CI box).
fn wait_for(s: &Scratch, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = s.wharf().args(["--output", "json", "status"]).output().unwrap();
        if let Ok(v) = serde_json::from_slice::<Value>(&out.stdout) {
            if pred(&v) {
                return v;
            }
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn step<'a>(status: &'a Value, id: &str) -> Option<&'a Value> {
    status["steps"].as_array()?.iter().find(|s| s["step_id"] == id)
}

fn kill(mut child: Child) {
    // SIGKILL: no destructors, no flush, exactly like a crashed or OOM-killed process.
    child.kill().unwrap();
    child.wait().unwrap();
}

fn start_and_kill_during_slow(s: &Scratch, millis: u64) -> String {
    let wf = s.workflow("killable.toml", &WORKFLOW.replace("MILLIS", &millis.to_string()));
    let child = s.wharf().args(["run", wf.to_str().unwrap()]).spawn().unwrap();
    let status =
        wait_for(s, "the slow step to start", |v| step(v, "slow").is_some_and(|st| st["last"]["status"] == "started"));
    kill(child);
    status["run"]["id"].as_str().unwrap().to_string()
}

#[test]
fn sigkill_mid_run_then_resume_completes_without_rerunning_finished_steps() {
    let s = Scratch::new();
    let run_id = start_and_kill_during_slow(&s, 3_000);

    let status = s.json(&["status", &run_id]);
    assert_eq!(status["effective_status"], "interrupted", "a killed run is resumable: {status:#}");

    let out = s.run(&["resume", &run_id]);
    assert!(out.status.success(), "resume failed: {}{}", text(&out.stdout), text(&out.stderr));

    let status = s.json(&["status", &run_id]);
    assert_eq!(step(&status, "first").unwrap()["attempts"], 1, "finished steps are not re-run: {status:#}");
    let slow = step(&status, "slow").unwrap();
    assert_eq!(slow["attempts"], 2, "{status:#}");
    assert_eq!(slow["last"]["in_doubt"], true, "the attempt after a crash is in doubt: {status:#}");
    assert_eq!(step(&status, "last").unwrap()["last"]["outputs"]["value"], "one then 3000");
}

#[test]
fn a_run_being_driven_cannot_be_resumed_by_another_process() {
    let s = Scratch::new();
    let wf = s.workflow("killable.toml", &WORKFLOW.replace("MILLIS", "30000"));
    let child = s.wharf().args(["run", wf.to_str().unwrap()]).spawn().unwrap();
    let status = wait_for(&s, "the slow step to start", |v| step(v, "slow").is_some());
    let run_id = status["run"]["id"].as_str().unwrap().to_string();
    let out = s.run(&["resume", &run_id]);
    let stderr = text(&out.stderr);
    // Its log is readable meanwhile; an unknown step is an input error naming the real ones.
    let logs = s.run(&["logs", &run_id, "--step", "first"]);
    let unknown = s.run(&["logs", &run_id, "--step", "nosuch"]);
    kill(child);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("pid"), "the error names the process holding the run: {stderr}");
    assert!(logs.status.success(), "{}", text(&logs.stderr));
    assert!(text(&logs.stdout).contains("attempt 1 succeeded"), "{}", text(&logs.stdout));
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown.stderr).contains("its steps are: first, slow"), "{}", text(&unknown.stderr));
}

#[test]
fn resume_refuses_a_changed_workflow_unless_accepted() {
    let s = Scratch::new();
    let run_id = start_and_kill_during_slow(&s, 60_000);
    // Change the slow step so it finishes quickly.
    s.workflow("killable.toml", &WORKFLOW.replace("MILLIS", "10"));

    let out = s.run(&["resume", &run_id]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("step `slow` changed"), "{stderr}");
    assert!(stderr.contains("--accept-changes"), "{stderr}");

    let out = s.run(&["resume", &run_id, "--accept-changes"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let status = s.json(&["status", &run_id]);
    assert_eq!(step(&status, "first").unwrap()["attempts"], 1);
    assert_eq!(step(&status, "last").unwrap()["last"]["outputs"]["value"], "one then 10");
}
