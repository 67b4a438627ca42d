//! Hostile plugins against the runtime's own limits (issue 17): memory counted per attempt, not
//! per memory or per part; `describe` and spinning guests bounded in time without holding a
//! worker thread; planned calls within the log budget; plugin text escaped on the terminal.
//! Some plugins here are written in component text (`wat`): no Rust guest has several memories
//! or a `describe` that never returns.

use serde_json::Value;
use wharf_tests::{Scratch, guests, hostile, moto_endpoint, text};

/// Every service the hostile guest imports needs a grant, or the step is refused before it runs.
const HOSTILE_GRANTS: &str = r#""ecs:DescribeClusters none", "iam:CreateRole flood-*", "s3:GetObject none/*",
    "secretsmanager:CreateSecret none", "registry:Pull 127.0.0.1:5999/none/*""#;

/// A component exporting the `step` world by hand: `describe` runs `describe_body` (it must
/// leave the address of a plugin-info record: 16), `run` returns `ok("{}")`. Its own memory has
/// `pages` 64 KiB pages; `extra` more core modules bring one memory of `extra_pages` each.
fn component(describe_body: &str, pages: u32, extra: usize, extra_pages: u32) -> String {
    let memories: String = (0..extra)
        .map(|i| format!("(core module $mem{i} (memory {extra_pages})) (core instance (instantiate $mem{i}))\n"))
        .collect();
    format!(
        r#"(component
  (core module $main
    (memory (export "memory") {pages})
    (global $bump (mut i32) (i32.const 1024))
    ;; plugin-info at 16: name "wasm" (64, 4), version "0.1.0" (68, 5), description "", grants [].
    (data (i32.const 16) "\40\00\00\00\04\00\00\00\44\00\00\00\05\00\00\00\50\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00")
    (data (i32.const 64) "wasm0.1.0")
    ;; result<string, error> at 256: ok, "{{}}" at 300.
    (data (i32.const 256) "\00\00\00\00\2c\01\00\00\02\00\00\00")
    (data (i32.const 300) "{{}}")
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (local $p i32)
      global.get $bump i32.const 7 i32.add i32.const -8 i32.and local.tee $p
      local.get 3 i32.add global.set $bump
      local.get $p)
    (func (export "describe") (result i32) {describe_body})
    (func (export "run") (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32) i32.const 256))
  (core instance $m (instantiate $main))
  {memories}
  (type $info_t (record (field "name" string) (field "version" string) (field "description" string)
    (field "grants" (list string))))
  (export $info "plugin-info" (type $info_t))
  (type $kind_t (enum "retryable" "permanent" "denied" "invalid-input"))
  (export $kind "error-kind" (type $kind_t))
  (type $error_t (record (field "kind" $kind) (field "code" string) (field "message" string)
    (field "http-status" (option u16))))
  (export $error "error" (type $error_t))
  (type $context_t (record (field "run-id" string) (field "step-id" string) (field "attempt" u32)
    (field "idempotency-key" string) (field "in-doubt" bool) (field "planning" bool) (field "inputs" string)))
  (export $context "step-context" (type $context_t))
  (func $describe (result $info)
    (canon lift (core func $m "describe") (memory (core memory $m "memory")) (realloc (core func $m "cabi_realloc"))))
  (export "describe" (func $describe))
  (func $run (param "context" $context) (result (result string (error $error)))
    (canon lift (core func $m "run") (memory (core memory $m "memory")) (realloc (core func $m "cabi_realloc"))))
  (export "run" (func $run)))"#
    )
}

fn write_component(s: &Scratch, name: &str, wat: &str) -> String {
    let path = s.path().join(name);
    std::fs::write(&path, wat::parse_str(wat).expect("valid component text")).unwrap();
    path.display().to_string()
}

/// 20 MiB + 20 MiB in two memories is over a step's 32 MiB, though each memory is under it.
#[test]
fn the_memories_of_a_component_count_together_against_the_steps_memory() {
    let s = Scratch::new();
    let two = write_component(&s, "two.wasm", &component("i32.const 16", 320, 1, 320));
    let many = write_component(&s, "many.wasm", &component("i32.const 16", 1, 4, 1));
    let wf = s.workflow(
        "memories.toml",
        &r#"
name = "memories"

[[steps]]
id = "over"
plugin = "TWO"
memory = "32MiB"

[[steps]]
id = "under"
plugin = "TWO"
memory = "48MiB"
"#
        .replace("TWO", &two),
    );
    let result = s.json(&["run", wf.to_str().unwrap()]);
    let e = hostile::error(&result, "over");
    assert_eq!(e["code"], "MemoryLimitExceeded", "{e}");
    assert!(e["message"].as_str().unwrap().contains("to 40 MiB, over its limit of 32 MiB"), "{e}");
    assert!(result["outputs"]["under"].is_object(), "the same plugin within its limit: {result:#}");

    // Five memories: more than one component may have, whatever their size.
    let out = s.run(&["plugin", "inspect", &many]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success() && stderr.contains("memor"), "{stderr}");
}

/// The step holds 40 MiB of its 64 while a part asks for 40 more: the part is refused, though
/// alone it fits (the second step).
#[test]
fn parts_share_their_steps_memory() {
    let s = Scratch::new();
    let wf = s.workflow(
        "parts-memory.toml",
        r#"
name = "parts-memory"

[[steps]]
id = "holding"
plugin = "{TESTKIT}"
memory = "64MiB"
with = { mode = "parts", hold_mib = 40, value = 40, parts = ["allocate"] }

[[steps]]
id = "alone"
plugin = "{TESTKIT}"
memory = "64MiB"
with = { mode = "parts", hold_mib = 0, value = 40, parts = ["allocate"] }
"#,
    );
    let result = s.json(&["run", wf.to_str().unwrap()]);
    assert_eq!(result["status"], "succeeded", "{result:#}");
    let held = &result["outputs"]["holding"]["parts"][0];
    assert_eq!(held["error"], "PartFailed", "{result:#}");
    assert!(held["message"].as_str().unwrap().contains("over its limit of 64 MiB"), "{result:#}");
    assert_eq!(result["outputs"]["alone"]["parts"][0]["ok"]["allocated"], 40 << 20, "{result:#}");
}

#[test]
fn a_plugin_spinning_in_describe_is_stopped_with_an_error_that_says_so() {
    let s = Scratch::new();
    let spin = write_component(&s, "spin.wasm", &component("(loop $l (br $l)) unreachable", 1, 0, 0));
    let out = s.run(&["plugin", "inspect", &spin]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("did not return from `describe` within 5s and was stopped"), "{stderr}");
}

/// A guest blocked in a host call (a WASI clock poll) in `describe` is stopped at the same
/// deadline as a spinning one.
#[test]
fn a_plugin_sleeping_in_describe_is_stopped_with_an_error_that_says_so() {
    let s = Scratch::new();
    let out = s.run(&["plugin", "inspect", guests::SLOW_DESCRIBE]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("did not return from `describe` within 5s and was stopped"), "{stderr}");
}

/// One tokio worker: a guest spinning until its deadline must yield it, or the sleeping step
/// (whose wake-up needs the worker) could only finish after the spinner was stopped.
#[test]
fn a_spinning_guest_does_not_hold_up_other_steps() {
    let s = Scratch::new();
    let wf = s.workflow(
        "fair.toml",
        r#"
name = "fair"

[run]
concurrency = 2

[[steps]]
id = "spin"
plugin = "{TESTKIT}"
timeout = "3s"
with = { mode = "infinite-loop" }

[[steps]]
id = "nap"
plugin = "{TESTKIT}"
with = { mode = "sleep", millis = 300 }
"#,
    );
    let out = s.wharf().env("TOKIO_WORKER_THREADS", "1").args(["--output", "json", "run"]).arg(&wf).output().unwrap();
    let result: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out.stderr)));
    assert_eq!(hostile::error(&result, "spin")["code"], "Timeout", "{result:#}");
    let events = s.json(&["logs", result["run_id"].as_str().unwrap()]);
    let seq = |step: &str, kind: &str| {
        let found = events.as_array().unwrap().iter().find(|e| e["step_id"] == step && e["kind"] == kind);
        found.unwrap_or_else(|| panic!("no {kind} of {step}: {events:#}"))["seq"].as_u64().unwrap()
    };
    assert!(seq("nap", "step_started") < seq("spin", "step_failed"), "{events:#}");
    assert!(seq("nap", "step_succeeded") < seq("spin", "step_failed"), "the spinner held the worker: {events:#}");
}

/// A workflow of one step, `id`, running the hostile guest with inputs `with` (inline TOML).
fn hostile_step(s: &Scratch, id: &str, with: &str) -> std::path::PathBuf {
    let plugin = guests::HOSTILE;
    let toml = format!(
        "name = \"{id}\"\n[[steps]]\nid = \"{id}\"\nplugin = \"{plugin}\"\ngrants = [{HOSTILE_GRANTS}]\nwith = {with}\n"
    );
    s.workflow(&format!("{id}.toml"), &toml)
}

/// `wharf ARGS`, failing clearly when the emulators' environment is missing.
fn wharf_with_aws(s: &Scratch, args: &[&str]) -> std::process::Output {
    s.wharf().env("AWS_ENDPOINT_URL", moto_endpoint()).args(args).output().unwrap()
}

/// 2,100 planned role creations: the plan shows the log budget's notice, not 2,100 lines.
#[test]
fn planned_calls_count_against_the_log_budget() {
    let s = Scratch::new();
    let wf = hostile_step(&s, "flood", r#"{ mode = "plan-flood", n = 2100, target = "flood" }"#);
    let out = wharf_with_aws(&s, &["--output", "json", "plan", wf.to_str().unwrap()]);
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out.stderr)));
    let step = &plan["steps"][0];
    let planned = step["would_change"].as_array().unwrap().len();
    assert!(planned > 1000 && planned < 2100, "{planned} planned calls journaled");
    let warnings = step["warnings"].as_array().unwrap();
    assert!(warnings.iter().any(|w| w.as_str().unwrap().starts_with("log limit reached")), "{warnings:?}");
}

/// ESC and CR from a plugin reach no terminal raw: not in `wharf logs`, not in the run's own
/// output, not in `wharf status`.
#[test]
fn plugin_text_is_escaped_on_the_terminal() {
    let s = Scratch::new();
    let wf = hostile_step(&s, "tricky", r#"{ mode = "terminal-escape", target = "\u001b[2K\rfake line" }"#);
    let run = wharf_with_aws(&s, &["run", wf.to_str().unwrap()]);
    let shown = format!("{}{}", text(&run.stdout), text(&run.stderr));
    assert!(!shown.contains('\x1b') && !shown.contains('\r'), "raw control characters: {shown:?}");
    assert!(shown.contains(r"\x1b[2K\rfake line"), "{shown}");
    let run_id = s.json(&["runs"])[0]["id"].as_str().unwrap().to_string();
    for args in [&["logs", &run_id][..], &["status", &run_id]] {
        let stdout = text(&s.run(args).stdout);
        assert!(!stdout.contains('\x1b') && !stdout.contains('\r'), "{args:?}: {stdout:?}");
        assert!(stdout.contains(r"\x1b[2K\rfake line"), "{args:?}: {stdout}");
    }
}
