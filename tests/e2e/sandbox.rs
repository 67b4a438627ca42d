//! Hostile plugins are contained: each fails its own step with a clear error, and the host and
//! the other steps carry on.

use serde_json::Value;
use wharf_tests::Scratch;

const HOSTILE: &str = r#"
name = "hostile"

[run]
concurrency = 8

[[steps]]
id = "loop"
plugin = "{TESTKIT}"
timeout = "1s"
with = { mode = "infinite-loop" }

[[steps]]
id = "alloc"
plugin = "{TESTKIT}"
memory = "64MiB"
with = { mode = "allocate-1gib" }

[[steps]]
id = "passwd"
plugin = "{TESTKIT}"
with = { mode = "read-passwd" }

[[steps]]
id = "socket"
plugin = "{TESTKIT}"
with = { mode = "open-socket" }

[[steps]]
id = "env"
plugin = "{TESTKIT}"
with = { mode = "read-env" }

[[steps]]
id = "panic"
plugin = "{TESTKIT}"
with = { mode = "panic" }

[[steps]]
id = "ungranted"
plugin = "{ECS_CALLER}"
with = { cluster = "anything" }

[[steps]]
id = "outside-grant"
plugin = "{ECS_CALLER}"
grants = ["ecs:DescribeClusters allowed-cluster"]
with = { cluster = "other-cluster" }

[[steps]]
id = "escape"
plugin = "{TESTKIT}"
grants = ["fs:Read ../.."]
with = { mode = "read-passwd" }

[[steps]]
id = "well-behaved"
plugin = "{TESTKIT}"
with = { mode = "echo", value = "still here" }
"#;

fn failure<'a>(result: &'a Value, step: &str) -> &'a Value {
    result["failed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["step"] == step)
        .map(|f| &f["error"])
        .unwrap_or_else(|| panic!("step {step} did not fail: {result:#}"))
}

#[test]
fn hostile_plugins_are_contained_with_clear_errors() {
    let s = Scratch::new();
    let wf = s.workflow("hostile.toml", HOSTILE);
    let result = s.json(&["run", wf.to_str().unwrap()]);
    assert_eq!(result["status"], "failed", "{result:#}");

    let e = failure(&result, "loop");
    assert_eq!(e["code"], "Timeout");
    assert!(e["message"].as_str().unwrap().contains("exceeded its timeout of 1s"), "{e}");

    let e = failure(&result, "alloc");
    assert_eq!(e["code"], "MemoryLimitExceeded");
    assert!(e["message"].as_str().unwrap().contains("over its limit of 64 MiB"), "{e}");

    // No preopens: the file does not exist for the guest, and nothing leaks into outputs.
    let e = failure(&result, "passwd");
    assert!(e["message"].as_str().unwrap().contains("reading /etc/passwd failed"), "{e}");

    let e = failure(&result, "socket");
    assert!(e["message"].as_str().unwrap().contains("connecting failed"), "{e}");

    let e = failure(&result, "panic");
    assert_eq!(e["code"], "PluginCrashed");
    assert!(e["message"].as_str().unwrap().contains("testkit panics on purpose"), "{e}");

    // Imports `ecs` with no `ecs:` grant at all: refused before it runs.
    let e = failure(&result, "ungranted");
    assert_eq!(e["code"], "CapabilityNotGranted");
    assert!(e["message"].as_str().unwrap().contains("no `ecs:` grant"), "{e}");

    // Has an `ecs:` grant, but not for this cluster: the call is denied with the line to add.
    let e = failure(&result, "outside-grant");
    assert_eq!(e["kind"], "denied");
    assert!(e["message"].as_str().unwrap().contains("\"ecs:DescribeClusters other-cluster\""), "{e}");

    // A directory grant cannot reach outside the workflow's directory.
    let e = failure(&result, "escape");
    assert_eq!(e["code"], "DirectoryGrant");
    assert!(e["message"].as_str().unwrap().contains("inside the workflow file's directory"), "{e}");

    // No environment leaks in, and the well-behaved step is unaffected by its neighbours.
    assert_eq!(result["outputs"]["env"]["vars"], 0, "{result:#}");
    assert_eq!(result["outputs"]["well-behaved"]["value"], "still here", "{result:#}");
}
