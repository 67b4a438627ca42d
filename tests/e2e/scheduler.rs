//! The scheduler: retries of retryable errors only, outputs flowing between steps, failures
//! blocking dependents, independent steps running at the same time.

use serde_json::Value;
use wharf_tests::Scratch;

#[test]
fn retryable_errors_are_retried_and_outputs_flow_to_dependents() {
    let s = Scratch::new();
    let wf = s.workflow(
        "retry.toml",
        r#"
name = "retry"

[params.greeting]
type = "string"
default = "hello"

[[steps]]
id = "flaky"
plugin = "{TESTKIT}"
retry = { max_attempts = 4, initial_backoff = "10ms", max_backoff = "50ms" }
with = { mode = "fail-then-succeed", failures = 2 }

[[steps]]
id = "echo"
plugin = "{TESTKIT}"
with = { mode = "echo", value = "${params.greeting} after attempt ${steps.flaky.outputs.attempt}" }
"#,
    );
    let result = s.json(&["run", wf.to_str().unwrap(), "--param", "greeting=hi"]);
    assert_eq!(result["status"], "succeeded", "{result:#}");
    assert_eq!(result["outputs"]["flaky"]["attempt"], 3);
    assert_eq!(result["outputs"]["echo"]["value"], "hi after attempt 3");
    // The idempotency key is stable and 32 hex characters.
    let key = result["outputs"]["echo"]["key"].as_str().unwrap();
    assert_eq!(key.len(), 32);
}

#[test]
fn permanent_errors_are_not_retried_and_block_dependents_only() {
    let s = Scratch::new();
    let wf = s.workflow(
        "fail.toml",
        r#"
name = "fail"

[[steps]]
id = "broken"
plugin = "{TESTKIT}"
retry = { max_attempts = 5, initial_backoff = "10ms" }
with = { mode = "fail-permanent" }

[[steps]]
id = "after-broken"
plugin = "{TESTKIT}"
needs = ["broken"]
with = { mode = "echo" }

[[steps]]
id = "independent"
plugin = "{TESTKIT}"
with = { mode = "echo", value = 1 }
"#,
    );
    let out = s.run(&["run", wf.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "exit code 1 means the run failed");
    let status = s.json(&["status"]);
    let steps = status["steps"].as_array().unwrap();
    let broken = steps.iter().find(|st| st["step_id"] == "broken").unwrap();
    assert_eq!(broken["attempts"], 1, "a permanent error is not retried: {status:#}");
    let independent = steps.iter().find(|st| st["step_id"] == "independent").unwrap();
    assert_eq!(independent["last"]["status"], "succeeded");
    assert!(steps.iter().all(|st| st["step_id"] != "after-broken"), "a blocked step never starts");
    let stdout = wharf_tests::text(&out.stdout);
    assert!(stdout.contains("not run: after-broken"), "{stdout}");
}

#[test]
fn independent_steps_run_at_the_same_time() {
    let s = Scratch::new();
    let wf = s.workflow(
        "parallel.toml",
        r#"
name = "parallel"

[[steps]]
id = "a"
plugin = "{TESTKIT}"
with = { mode = "sleep", millis = 400 }

[[steps]]
id = "b"
plugin = "{TESTKIT}"
with = { mode = "sleep", millis = 400 }
"#,
    );
    let result = s.json(&["run", wf.to_str().unwrap()]);
    assert_eq!(result["status"], "succeeded", "{result:#}");
    let run_id = result["run_id"].as_str().unwrap();
    // Order of events, not wall-clock time: both started before either finished.
    let events: Vec<Value> = serde_json::from_value(s.json(&["logs", run_id])).unwrap();
    let pos = |step: &str, kind: &str| events.iter().position(|e| e["step_id"] == step && e["kind"] == kind).unwrap();
    let first_finish = pos("a", "step_succeeded").min(pos("b", "step_succeeded"));
    assert!(pos("a", "step_started") < first_finish && pos("b", "step_started") < first_finish, "{events:#?}");
}
