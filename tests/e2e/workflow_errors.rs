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
