//! The hostile plugin suite (beyond `sandbox.rs`): floods, huge outputs, runaway guests, calls
//! outside the grants, secrets it was not granted, other steps' ledger entries, components it may
//! not import or cannot load. Each case fails its own step with a clear error while a
//! well-behaved step of the same run succeeds. Figures (stop latency, journal size) are printed
//! for RELIABILITY.md: run with `--nocapture` to see them.

use serde_json::Value;
use std::time::Instant;
use wharf_tests::hostile::{assert_denied, error, events, message, workflow};
use wharf_tests::{Scratch, ecs_client, guests, moto_endpoint, text, unique};

/// What a hostile step may read: the value of this variable must never show up anywhere.
const SECRET_VAR: &str = "WHARF_HOSTILE_TEST_SECRET";
const SECRET_VALUE: &str = "hostile-suite-secret-value-9c1e";

const SANDBOXED: &str = r#"
name = "hostile-suite"

[run]
concurrency = 8

[[steps]]
id = "spin"
plugin = "{TESTKIT}"
timeout = "1s"
with = { mode = "infinite-loop" }

[[steps]]
id = "sleeper"
plugin = "{HOSTILE}"
timeout = "1s"
grants = [{BASE}]
with = { mode = "sleep-forever" }

[[steps]]
id = "grow"
plugin = "{HOSTILE}"
memory = "64MiB"
grants = [{BASE}]
with = { mode = "grow-memory" }

[[steps]]
id = "recurse"
plugin = "{HOSTILE}"
grants = [{BASE}]
with = { mode = "recurse" }

[[steps]]
id = "huge-output"
plugin = "{HOSTILE}"
memory = "2GiB"
grants = [{BASE}]
with = { mode = "huge-output", n = 1073741824 }

[[steps]]
id = "big-output"
plugin = "{HOSTILE}"
grants = [{BASE}]
with = { mode = "huge-output", n = 16777216 }

[[steps]]
id = "huge-error"
plugin = "{HOSTILE}"
memory = "256MiB"
grants = [{BASE}]
with = { mode = "huge-error", n = 67108864 }

[[steps]]
id = "log-flood"
plugin = "{HOSTILE}"
grants = [{BASE}]
with = { mode = "log-flood", n = 100000 }

[[steps]]
id = "denied-flood"
plugin = "{HOSTILE}"
grants = [{BASE}]
with = { mode = "denied-flood", n = 100000 }

[[steps]]
id = "stdout-flood"
plugin = "{HOSTILE}"
grants = [{BASE}]
with = { mode = "stdout-flood", n = 1000 }

[[steps]]
id = "call-flood"
plugin = "{HOSTILE}"
grants = [{BASE}]
with = { mode = "call-flood", n = 110 }

[[steps]]
id = "exit"
plugin = "{HOSTILE}"
grants = [{BASE}]
with = { mode = "exit" }

[[steps]]
id = "dns"
plugin = "{HOSTILE}"
grants = [{BASE}]
with = { mode = "dns" }

[[steps]]
id = "read-state"
plugin = "{HOSTILE}"
grants = [{BASE}]
with = { mode = "read-path", target = "{STATE}" }

[[steps]]
id = "secret-env"
plugin = "{HOSTILE}"
grants = [{BASE}]
with = { mode = "secret-from-env", target = "hostile-secret", other = "WHARF_HOSTILE_TEST_SECRET" }

[[steps]]
id = "secret-file"
plugin = "{HOSTILE}"
grants = [{BASE}]
with = { mode = "secret-from-file", target = "hostile-secret", other = "secret.txt" }

[[steps]]
id = "secret-file-escape"
plugin = "{HOSTILE}"
grants = [{BASE}, "file:Read *"]
with = { mode = "secret-from-file", target = "hostile-secret", other = "../secret.txt" }

[[steps]]
id = "registry-secret"
plugin = "{HOSTILE}"
grants = [{BASE}]
with = { mode = "registry-secret", target = "127.0.0.1:5999/allowed/app", other = "someone-elses-secret" }

[[steps]]
id = "other-bucket"
plugin = "{HOSTILE}"
grants = [{BASE}]
with = { mode = "object", target = "other-bucket/allowed/model.bin" }

[[steps]]
id = "other-prefix"
plugin = "{HOSTILE}"
grants = [{BASE}]
with = { mode = "object", target = "allowed-bucket/private/model.bin" }

[[steps]]
id = "other-role"
plugin = "{HOSTILE}"
grants = [{BASE}]
with = { mode = "role", target = "admin-role" }

[[steps]]
id = "other-cluster"
plugin = "{HOSTILE}"
grants = [{BASE}]
with = { mode = "cluster", target = "production" }

[[steps]]
id = "ungranted-imports"
plugin = "{HOSTILE}"
with = { mode = "ledger" }

[[steps]]
id = "well-behaved"
plugin = "{TESTKIT}"
with = { mode = "echo", value = "still here" }

[[steps]]
id = "after-the-storm"
plugin = "{TESTKIT}"
needs = ["well-behaved"]
with = { mode = "echo", value = "${steps.well-behaved.outputs.value}, later" }
"#;

/// Milliseconds between a step's deadline and the end of its last attempt, as journaled (the
/// attempt's start is journaled before the sandbox is built, so this is an upper bound).
fn late_ms(status: &Value, step: &str, timeout_ms: u64) -> i64 {
    let s = status["steps"].as_array().unwrap().iter().find(|s| s["step_id"] == step).unwrap();
    let started = s["last"]["started_at_ms"].as_u64().unwrap();
    let finished = s["last"]["finished_at_ms"].as_u64().unwrap();
    finished as i64 - started as i64 - timeout_ms as i64
}

fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| if e.path().is_dir() { dir_size(&e.path()) } else { e.metadata().map(|m| m.len()).unwrap_or(0) })
        .sum()
}

#[test]
fn hostile_plugins_are_contained_and_their_neighbours_succeed() {
    let s = Scratch::new();
    std::fs::write(s.path().join("secret.txt"), SECRET_VALUE).unwrap();
    let wf = workflow(&s, "hostile.toml", SANDBOXED);
    let started = Instant::now();
    let out = s
        .wharf()
        .env(SECRET_VAR, SECRET_VALUE)
        .args(["--output", "json", "run", wf.to_str().unwrap()])
        .output()
        .unwrap();
    let wall = started.elapsed();
    let stdout = text(&out.stdout);
    let result: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout} {}", text(&out.stderr)));
    assert_eq!(result["status"], "failed", "{result:#}");
    let run_id = result["run_id"].as_str().unwrap().to_string();

    // Runaway guests: stopped at their deadline.
    assert_eq!(error(&result, "spin")["code"], "Timeout");
    assert_eq!(error(&result, "sleeper")["code"], "Timeout");
    assert!(message(&result, "sleeper").contains("exceeded its timeout of 1s"));
    // Memory: a gradual bomb hits the step's cap; unbounded recursion hits the stack guard.
    assert_eq!(error(&result, "grow")["code"], "MemoryLimitExceeded");
    assert!(message(&result, "grow").contains("over its limit of 64 MiB"), "{result:#}");
    // (Rust's shadow stack lives in linear memory: it overflows into an out-of-bounds access.)
    assert_eq!(error(&result, "recurse")["code"], "PluginCrashed");

    // 1 GiB of outputs: over what one call may move to the host, refused before any copy.
    let e = error(&result, "huge-output");
    assert_eq!(e["code"], "TransferTooLarge", "{e}");
    assert!(e["message"].as_str().unwrap().contains("more than 128 MiB to the host in one call"), "{e}");
    // 16 MiB: copied out (under the transfer limit), then refused: nothing is journaled.
    let e = error(&result, "big-output");
    assert_eq!(e["code"], "OutputTooLarge", "{e}");
    assert!(e["message"].as_str().unwrap().contains("16 MiB of outputs, over the limit of 1 MiB"), "{e}");
    // A 64 MiB error message is cut to a readable length.
    let m = message(&result, "huge-error");
    assert!(m.len() < 16 * 1024 && m.contains("bytes cut]"), "{} bytes", m.len());

    // Log flood: the budget keeps 1 MiB of it and says so once.
    let logged = events(&s, &run_id, "log-flood");
    let notices = logged.iter().filter(|e| e["message"].as_str().unwrap().starts_with("log limit reached")).count();
    assert_eq!(notices, 1, "one notice");
    assert!(logged.len() < 1200, "{} events journaled for 100000 log lines", logged.len());
    assert_eq!(result["outputs"]["log-flood"]["logged"], 100000, "the plugin itself carried on");
    // Denials are journaled as warnings, under the same budget.
    let denied = events(&s, &run_id, "denied-flood");
    assert!(denied.len() < 2100, "{} events journaled for 100000 denied calls", denied.len());
    assert_eq!(result["outputs"]["denied-flood"]["denied"], 100000);
    // stdout is discarded (logs go through the log capability): a flood costs nothing.
    assert_eq!(result["outputs"]["stdout-flood"]["printed"], 1000, "{result:#}");

    // Host-call flood: 110 calls, the first 50 at once, then 20/s: at least 3 s.
    let flood = &result["outputs"]["call-flood"];
    assert_eq!(flood["calls"], 110, "{result:#}");
    assert!(flood["elapsed_ms"].as_u64().unwrap() >= 2900, "calls were not throttled: {flood}");
    let throttled = events(&s, &run_id, "call-flood");
    assert!(throttled.iter().any(|e| e["message"].as_str().unwrap().contains("host calls throttled to 20/s")));

    // No ambient authority: exit is a crash of its own step, no names resolve, no state is readable.
    assert_eq!(error(&result, "exit")["code"], "PluginCrashed");
    assert!(message(&result, "exit").contains("called exit("), "{result:#}");
    assert!(message(&result, "dns").contains("name lookup failed"), "{result:#}");
    assert!(message(&result, "read-state").contains("failed"), "{result:#}");

    // Secrets it was not granted: the grant line to add, never the value.
    assert_denied(&result, "secret-env", &format!("env:Read {SECRET_VAR}"));
    assert_denied(&result, "secret-file", "file:Read secret.txt");
    let e = error(&result, "secret-file-escape");
    assert_eq!(e["code"], "InvalidPath", "{e}");
    assert_denied(&result, "registry-secret", "secretsmanager:GetSecretValue someone-elses-secret");
    // Resources outside the grant patterns.
    assert_denied(&result, "other-bucket", "s3:GetObject other-bucket/allowed/model.bin");
    assert_denied(&result, "other-prefix", "s3:GetObject allowed-bucket/private/model.bin");
    assert_denied(&result, "other-role", "iam:GetRole admin-role");
    assert_denied(&result, "other-cluster", "ecs:DescribeClusters production");

    // Imports of interfaces it has no grant for: refused before it runs (no attempt started).
    assert_eq!(error(&result, "ungranted-imports")["code"], "CapabilityNotGranted");
    let refused = events(&s, &run_id, "ungranted-imports");
    assert!(refused.iter().all(|e| e["kind"] != "step_started"), "{refused:#?}");

    // The neighbours, and a step after them.
    assert_eq!(result["outputs"]["well-behaved"]["value"], "still here");
    assert_eq!(result["outputs"]["after-the-storm"]["value"], "still here, later");
    let failed = result["failed"].as_array().unwrap().len();
    assert_eq!(failed, 19, "every hostile step failed, nothing else: {result:#}");

    // The secret value appears nowhere.
    let status = s.json(&["status", &run_id]);
    let logs = text(&s.run(&["logs", &run_id]).stdout);
    for (what, haystack) in [("stdout", &stdout), ("stderr", &text(&out.stderr)), ("logs", &logs)] {
        assert!(!haystack.contains(SECRET_VALUE), "the secret leaked into {what}");
    }
    assert!(!status.to_string().contains(SECRET_VALUE), "the secret leaked into status");

    // Figures for RELIABILITY.md.
    let size = dir_size(&s.state_dir());
    println!("FIGURE hostile-suite: {} steps, {failed} contained, wall {:.1} s", 25, wall.as_secs_f64());
    println!(
        "FIGURE stop latency past a 1 s deadline: spinning {} ms, sleeping {} ms",
        late_ms(&status, "spin", 1000),
        late_ms(&status, "sleeper", 1000)
    );
    println!(
        "FIGURE journal: log-flood {} events, denied-flood {} events, state dir {} KiB",
        logged.len(),
        denied.len(),
        size / 1024
    );
    println!("FIGURE call-flood: 110 calls in {} ms", flood["elapsed_ms"]);
    assert!(size < 64 << 20, "state dir grew to {size} bytes");
}

#[test]
fn hostile_plugin_sees_only_its_own_ledger_entries_and_deletes_nothing() {
    moto_endpoint();
    let s = Scratch::new();
    let cluster = unique("hostile-neighbour");
    let source = r#"
name = "ledger-snoop"

[[steps]]
id = "cluster"
plugin = "create-cluster"
with = { name = "CLUSTER", network = "default-vpc" }

[[steps]]
id = "snoop"
plugin = "{HOSTILE}"
needs = ["cluster"]
grants = [{BASE}]
with = { mode = "ledger" }

[[steps]]
id = "granted-reader"
plugin = "{HOSTILE}"
needs = ["cluster"]
grants = [{BASE}, "ledger:Read cluster"]
with = { mode = "ledger" }

[[steps]]
id = "vandal"
plugin = "{HOSTILE}"
needs = ["cluster"]
grants = [{BASE}]
with = { mode = "ledger-delete", target = "ecs:cluster", other = "${steps.cluster.outputs.cluster_arn}" }

# Allowed to delete clusters, but not to see the one another step made: it may not delete it.
[[steps]]
id = "unseeing-vandal"
plugin = "{HOSTILE}"
needs = ["cluster"]
grants = [{BASE}, "ledger:Delete ecs:cluster"]
with = { mode = "ledger-delete", target = "ecs:cluster", other = "${steps.cluster.outputs.cluster_arn}" }
"#;
    let wf = workflow(&s, "snoop.toml", &source.replace("CLUSTER", &cluster));
    let result = s.json(&["run", wf.to_str().unwrap()]);
    let run_id = result["run_id"].as_str().unwrap().to_string();
    assert_eq!(result["outputs"]["snoop"]["entries"], 0, "{result:#}");
    let granted = &result["outputs"]["granted-reader"];
    assert!(granted["entries"].as_u64().unwrap() >= 1, "{result:#}");
    assert_eq!(granted["steps"], serde_json::json!(["cluster"]));
    let hidden = events(&s, &run_id, "snoop");
    assert!(hidden.iter().any(|e| e["message"].as_str().unwrap().contains("\"ledger:Read cluster\"")), "{hidden:#?}");
    assert_denied(&result, "vandal", "ledger:Delete ecs:cluster");
    assert_denied(&result, "unseeing-vandal", "ledger:Read cluster");
    assert_eq!(result["failed"].as_array().unwrap().len(), 2, "{result:#}");

    // The cluster the vandals tried to delete is still there, and teardown still owns it.
    let status = |name: String| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let out = ecs_client().await.describe_clusters().clusters(name).send().await.unwrap();
            out.clusters().first().and_then(|c| c.status()).unwrap_or("MISSING").to_string()
        })
    };
    assert_eq!(status(cluster.clone()), "ACTIVE");
    let out = s.run(&["teardown", &run_id]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert_ne!(status(cluster), "ACTIVE");
}

#[test]
fn malformed_component_files_are_refused_with_a_clear_error() {
    let s = Scratch::new();
    let testkit = std::fs::read(guests::TESTKIT).unwrap();
    let cases: [(&str, Vec<u8>); 4] = [
        ("garbage.wasm", b"#!/bin/sh\nrm -rf /\n".to_vec()),
        ("empty.wasm", vec![]),
        // A core module (not a component): `wharf` plugins are components.
        ("core.wasm", b"\0asm\x01\0\0\0".to_vec()),
        ("truncated.wasm", testkit[..testkit.len() / 2].to_vec()),
    ];
    for (file, bytes) in cases {
        std::fs::write(s.path().join(file), bytes).unwrap();
        let wf = s.workflow(
            "bad.toml",
            &format!(
                "name = \"bad\"\n[[steps]]\nid = \"fine\"\nplugin = \"{{TESTKIT}}\"\nwith = {{ mode = \"echo\" }}\n\
                 [[steps]]\nid = \"bad\"\nplugin = \"./{file}\"\n"
            ),
        );
        let out = s.run(&["run", wf.to_str().unwrap()]);
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(!out.status.success(), "{file}: {all}");
        assert!(all.contains("is not a valid WebAssembly component"), "{file}: {all}");
        assert!(all.contains(file), "{file}: the message names the file: {all}");
        assert!(!all.contains("panicked"), "{file}: {all}");
        println!("FIGURE malformed {file}: {}", all.trim());
    }
    // The host is fine: the next run in the same state directory works.
    let wf = s.workflow(
        "ok.toml",
        "name = \"ok\"\n[[steps]]\nid = \"fine\"\nplugin = \"{TESTKIT}\"\nwith = { mode = \"echo\" }\n",
    );
    let out = s.run(&["run", wf.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
}
