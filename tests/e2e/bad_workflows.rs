//! Snapshot tests of `wharf validate` on malformed workflow files: every file in
//! `tests/fixtures/bad-workflows/*.toml` must be rejected with exit code 2 and exactly the text in
//! the `.expected` file next to it (stderr, with file:line:col and a hint for every error).
//!
//! A fixture whose first line is `# wharf: ARGS` is run as `wharf ARGS FILE` instead (for the
//! problems only `run` can see, such as a missing `--param`).
//!
//! After an intended change of wording: `WHARF_BLESS=1 cargo test -p wharf-tests --test bad_workflows`
//! rewrites the `.expected` files; review them with `git diff`.

use std::path::{Path, PathBuf};
use wharf_tests::{Scratch, text};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/bad-workflows")
}

/// A line diff good enough to spot a changed message: `-` expected, `+` actual.
fn diff(expected: &str, actual: &str) -> String {
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let mut out = String::new();
    for i in 0..e.len().max(a.len()) {
        match (e.get(i), a.get(i)) {
            (Some(x), Some(y)) if x == y => out.push_str(&format!("  {x}\n")),
            (x, y) => {
                if let Some(x) = x {
                    out.push_str(&format!("- {x}\n"));
                }
                if let Some(y) = y {
                    out.push_str(&format!("+ {y}\n"));
                }
            }
        }
    }
    out
}

/// Runs one fixture; returns a problem description, or None when it matches its snapshot.
fn check(s: &Scratch, toml: &Path, bless: bool) -> Option<String> {
    let name = toml.file_name().unwrap().to_str().unwrap();
    let source = std::fs::read_to_string(toml).unwrap();
    let args: Vec<&str> = match source.lines().next().and_then(|l| l.strip_prefix("# wharf: ")) {
        Some(args) => args.split_whitespace().collect(),
        None => vec!["validate"],
    };
    // Relative path and the fixture dir as cwd, so snapshots do not depend on the checkout location.
    let out = s.wharf().args(&args).arg(name).current_dir(fixtures()).output().unwrap();
    let stderr = text(&out.stderr);
    if out.status.code() != Some(2) {
        return Some(format!("{name}: exit code {:?}, expected 2\n{stderr}", out.status.code()));
    }
    if stderr.contains("panicked") {
        return Some(format!("{name}: panicked\n{stderr}"));
    }
    // Every diagnostic must say where and how to fix it (the trailing "N problems" line is a count).
    let blocks = stderr.split("\n\n").filter(|b| b.starts_with("error: ") && !b.contains(" problems in the workflow"));
    for block in blocks.filter(|b| b.contains("-->")) {
        if !block.contains("= hint: ") {
            return Some(format!("{name}: a diagnostic has no hint:\n{block}"));
        }
    }
    let expected_path = toml.with_extension("expected");
    if bless {
        std::fs::write(&expected_path, &stderr).unwrap();
        return None;
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
    (expected != stderr).then(|| format!("{name}: stderr differs from {name}.expected\n{}", diff(&expected, &stderr)))
}

#[test]
fn every_bad_workflow_fails_with_its_snapshot() {
    let bless = std::env::var_os("WHARF_BLESS").is_some();
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 30, "issue 5 asks for at least 30 malformed workflows, found {}", files.len());
    let s = Scratch::new();
    let failures: Vec<String> = files.iter().filter_map(|f| check(&s, f, bless)).collect();
    // `run` fixtures must be refused before a run is recorded.
    let runs = s.state_dir().join("runs");
    assert!(!runs.exists() || std::fs::read_dir(&runs).unwrap().next().is_none(), "a bad workflow created a run");
    println!("{} bad workflows checked", files.len());
    assert!(failures.is_empty(), "{} of {} fixtures failed:\n\n{}", failures.len(), files.len(), failures.join("\n"));
}
