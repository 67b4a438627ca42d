//! Hostile plugins are contained: each fails its own step with a clear error, and the host and
//! the other steps carry on.

use wharf_tests::Scratch;
use wharf_tests::hostile::error as failure;

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

/// `parallel.run-all`: each part runs in its own instance with the step's context, results come
/// back in order, a failing or crashing part fails only itself, and parts cannot start parts.
#[test]
fn a_step_runs_its_parts_and_gets_each_result_in_order() {
    let s = Scratch::new();
    let wf = s.workflow(
        "parts.toml",
        r#"
name = "parts"

[[steps]]
id = "fan-out"
plugin = "{TESTKIT}"
with = { mode = "parts", value = "v", parts = ["echo", "fail", "echo", "panic", "nested", "no-such-part"] }

[[steps]]
id = "too-many"
plugin = "{TESTKIT}"
with = { mode = "parts", parts = ["echo", "echo", "echo", "echo", "echo", "echo", "echo", "echo", "echo"] }
"#,
    );
    let result = s.json(&["run", wf.to_str().unwrap()]);
    assert_eq!(result["status"], "succeeded", "{result:#}");
    let parts = result["outputs"]["fan-out"]["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 6, "{result:#}");
    assert_eq!(parts[0]["ok"], serde_json::json!({ "index": 0, "value": "v", "attempt": 1 }));
    assert_eq!(parts[1]["error"], "PartBroken");
    assert_eq!(parts[2]["ok"]["index"], 2, "the results keep the parts' order");
    assert_eq!(parts[3]["error"], "PartFailed");
    assert!(parts[3]["message"].as_str().unwrap().contains("testkit part panics on purpose"), "{result:#}");
    assert_eq!(parts[4]["error"], "PartsRefused", "a part cannot start parts: {result:#}");
    assert_eq!(parts[5]["error"], "InvalidInput", "{result:#}");

    let refused = result["outputs"]["too-many"]["parts"].as_array().unwrap();
    assert!(refused.iter().all(|p| p["error"] == "TooManyParts"), "{result:#}");

    // What the parts log is the step's.
    let logs = s.json(&["logs", result["run_id"].as_str().unwrap(), "--step", "fan-out"]);
    let lines: Vec<&str> = logs.as_array().unwrap().iter().filter_map(|e| e["message"].as_str()).collect();
    assert!(lines.contains(&"part 0 echoing") && lines.contains(&"part 2 echoing"), "{lines:?}");
}
