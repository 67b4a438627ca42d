//! Malformed workflow files are rejected by `wharf validate` and `wharf run` with file:line:col,
//! a hint, and exit code 2, before anything runs.

use wharf_tests::{Scratch, text};

fn validate(s: &Scratch, body: &str) -> (Option<i32>, String) {
    let wf = s.workflow("bad.toml", body);
    let out = s.run(&["validate", wf.to_str().unwrap()]);
    (out.status.code(), text(&out.stderr))
}

#[test]
fn unknown_key_points_at_it_and_suggests_the_right_one() {
    let s = Scratch::new();
    let (code, err) = validate(&s, "name = \"x\"\n\n[[steps]]\nid = \"a\"\nplugin = \"{TESTKIT}\"\nneed = [\"b\"]\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("bad.toml:6:1"), "{err}");
    assert!(err.contains("`needs`"), "{err}");
}

#[test]
fn cycles_are_named() {
    let s = Scratch::new();
    let body = "name = \"x\"\n[[steps]]\nid = \"a\"\nplugin = \"{TESTKIT}\"\nneeds = [\"b\"]\n[[steps]]\nid = \"b\"\nplugin = \"{TESTKIT}\"\nneeds = [\"a\"]\n";
    let (code, err) = validate(&s, body);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("a -> b -> a") || err.contains("b -> a -> b"), "{err}");
}

#[test]
fn syntax_errors_and_unknown_plugins_and_dangling_references() {
    let s = Scratch::new();
    let (code, err) = validate(&s, "name = \"x\"\n[[steps]\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("bad.toml:2:"), "{err}");

    let (code, err) = validate(&s, "name = \"x\"\n[[steps]]\nid = \"a\"\nplugin = \"create-clustr\"\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("bad.toml:4:") && err.contains("create-cluster"), "{err}");

    let (code, err) = validate(
        &s,
        "name = \"x\"\n[[steps]]\nid = \"a\"\nplugin = \"{TESTKIT}\"\nwith = { v = \"${steps.nope.outputs.x}\" }\n",
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("bad.toml:5:") && err.contains("nope"), "{err}");
}

#[test]
fn missing_and_mistyped_params_are_rejected_before_anything_runs() {
    let s = Scratch::new();
    let wf = s.workflow(
        "p.toml",
        "name = \"x\"\n[params.n]\ntype = \"integer\"\n[[steps]]\nid = \"a\"\nplugin = \"{TESTKIT}\"\nwith = { mode = \"echo\" }\n",
    );
    let out = s.run(&["run", wf.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("`n`"), "{}", text(&out.stderr));
    let out = s.run(&["run", wf.to_str().unwrap(), "--param", "n=abc"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("abc"), "{}", text(&out.stderr));
    assert!(
        !s.state_dir().join("runs").exists() || std::fs::read_dir(s.state_dir().join("runs")).unwrap().next().is_none()
    );
}

/// `run --teardown` without AWS: the teardown runs after a failed run too, in the same process,
/// and the exit code is the run's. Teardown options without `--teardown` are refused.
#[test]
fn run_with_teardown_reports_both_outcomes_and_teardown_options_need_the_flag() {
    let s = Scratch::new();
    let wf = s.workflow(
        "t.toml",
        "name = \"t\"\n[[steps]]\nid = \"ok\"\nplugin = \"{TESTKIT}\"\nwith = { mode = \"echo\" }\n\
         [[steps]]\nid = \"broken\"\nplugin = \"{TESTKIT}\"\nwith = { mode = \"fail-permanent\" }\nneeds = [\"ok\"]\n",
    );
    let out = s.run(&["run", "--keep-log-groups", wf.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--keep-log-groups applies to the teardown: add --teardown"),
        "{}",
        text(&out.stderr)
    );
    assert!(!s.state_dir().join("runs").exists(), "nothing ran");

    let out = s.run(&["--output", "json", "run", "--teardown", "--keep-log-groups", wf.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}{}", text(&out.stdout), text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["status"], "failed", "{json:#}");
    assert_eq!(json["failed"][0]["step"], "broken", "{json:#}");
    assert_eq!(json["teardown"]["status"], "succeeded", "{json:#}");
    assert_eq!(json["teardown"]["outputs"]["_teardown"]["deleted"], 0, "{json:#}");
    let run_id = json["run_id"].as_str().unwrap();
    let logs = text(&s.run(&["logs", run_id]).stdout);
    assert!(logs.contains("teardown started"), "{logs}");

    // In text: both outcomes, and no advice to resume a run whose resources are being deleted.
    let out = s.run(&["run", "--teardown", wf.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("failed") && stdout.contains("teardown of run"), "{stdout}");
    assert!(!stdout.contains("wharf resume"), "{stdout}");
}
