//! Writing a custom plugin as a new user does (docs/writing-plugins.md): scaffold it outside the
//! repository, unit-test it natively, build the component, run it in a workflow against moto and
//! inspect it; plus the guide's example plugin, and a plugin for a WIT major wharf does not support.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use wharf_tests::{Scratch, guests, moto_endpoint, text, unique};

/// The shared cargo target dir (`<target>/debug/deps/<this test>` is where we run from), so the
/// scaffolded project's build is reused between runs.
fn shared_target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().join("plugin-authoring")
}

/// `cargo ARGS` in `dir`, as a user's shell would run it (none of the outer build's settings).
fn cargo(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(dir).args(args).env("CARGO_TARGET_DIR", shared_target_dir());
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_TARGET", "CARGO_BUILD_RUSTFLAGS"] {
        cmd.env_remove(var);
    }
    // Offline: everything the project needs is already in the local registry cache (the
    // workspace uses the same crates), and tests must not depend on the network.
    cmd.env("CARGO_NET_OFFLINE", "true");
    let out = cmd.output().expect("run cargo");
    assert!(out.status.success(), "cargo {args:?} failed:\n{}\n{}", text(&out.stdout), text(&out.stderr));
    out
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "wharf failed: {}\n{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn a_scaffolded_plugin_tests_builds_runs_and_inspects_from_a_fresh_directory() {
    moto_endpoint();
    let s = Scratch::new();
    // Outside any cargo workspace: the scaffold must be standalone.
    let project = s.path().join("health-check");
    ok(&s.run(&["plugin", "new", "health-check", "--path", project.to_str().unwrap()]));
    for file in
        ["Cargo.toml", "src/lib.rs", "workflow.toml", "README.md", "wharf-sdk/Cargo.toml", "wharf-sdk/wit/world.wit"]
    {
        assert!(project.join(file).is_file(), "{file} missing");
    }

    let tests = cargo(&project, &["test"]);
    assert!(text(&tests.stdout).contains("test result: ok. 3 passed"), "{}", text(&tests.stdout));

    // `wharf plugin build` = cargo build --release --target wasm32-wasip2, copied to where
    // workflow.toml looks even though CARGO_TARGET_DIR points elsewhere.
    let mut build = s.wharf();
    build.args(["plugin", "build", "--path", project.to_str().unwrap()]);
    build.env("CARGO_TARGET_DIR", shared_target_dir()).env("CARGO_NET_OFFLINE", "true");
    let built = ok(&build.output().unwrap());
    let wasm = project.join("target/wasm32-wasip2/release/health_check.wasm");
    assert!(wasm.is_file(), "{built}");
    assert!(built.contains("ecs:DescribeClusters ${with.cluster}"), "{built}");

    let cluster = unique("scaffolded");
    let mut run = s.wharf();
    run.args(["--output", "json", "run", project.join("workflow.toml").to_str().unwrap(), "-p"]);
    run.arg(format!("cluster={cluster}"));
    let result: Value = serde_json::from_str(&ok(&run.output().unwrap())).unwrap();
    assert_eq!(result["status"], "succeeded", "{result:#}");
    assert_eq!(result["outputs"]["check"]["exists"], false, "{result:#}");

    let info = s.json(&["plugin", "inspect", wasm.to_str().unwrap()]);
    assert_eq!(info["plugin"]["name"], "health-check");
    assert_eq!(info["wit"]["versions"], serde_json::json!(["0.1.4"]));
    assert_eq!(info["plugin"]["grants"], serde_json::json!(["ecs:DescribeClusters ${with.cluster}"]));
    let interfaces: Vec<&str> =
        info["imports"]["capabilities"].as_array().unwrap().iter().map(|i| i["interface"].as_str().unwrap()).collect();
    assert!(interfaces.contains(&"ecs") && interfaces.contains(&"log"), "{info:#}");
    assert_eq!(info["size"], std::fs::metadata(&wasm).unwrap().len());
    assert_eq!(info["sha256"].as_str().unwrap().len(), 64);

    // Scaffolding never overwrites.
    let again = s.run(&["plugin", "new", "health-check", "--path", project.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again.stderr));
}

#[test]
fn a_plugin_for_another_wit_major_is_refused_naming_the_supported_versions() {
    let s = Scratch::new();
    let out = s.run(&["plugin", "inspect", guests::WRONG_VERSION]);
    assert_eq!(out.status.code(), Some(5));
    assert!(text(&out.stdout).contains("targets       wharf:plugin@1.0.0"), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("built against wharf:plugin@1.0.0, but this wharf supports wharf:plugin@0.1.x only"),
        "{stderr}"
    );

    let wf = s.workflow(
        "wrong.toml",
        &format!("name = \"wrong\"\n[[steps]]\nid = \"old\"\nplugin = \"{}\"\n", guests::WRONG_VERSION),
    );
    let out = s.run(&["run", wf.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(5), "{}\n{}", text(&out.stdout), text(&out.stderr));
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(all.contains("this wharf supports wharf:plugin@0.1.x only"), "{all}");
}

#[test]
fn the_guides_ledger_audit_example_gates_a_deployment() {
    moto_endpoint();
    let s = Scratch::new();
    let cluster = unique("audited");
    let wf = s.workflow(
        "audit.toml",
        &format!(
            r#"
name = "audited"

[[steps]]
id = "cluster"
plugin = "create-cluster"
with = {{ name = "{cluster}" }}

[[steps]]
id = "audit"
plugin = "{audit}"
needs = ["cluster"]
grants = ["ledger:Read *"]
with = {{ allowed_kinds = ["ecs:*", "ec2:security-group"], max_resources = 5 }}

[[steps]]
id = "strict-audit"
plugin = "{audit}"
needs = ["cluster"]
grants = ["ledger:Read cluster"]
with = {{ allowed_kinds = ["ecs:cluster"] }}
"#,
            audit = guests::LEDGER_AUDIT
        ),
    );
    let result = s.json(&["run", wf.to_str().unwrap()]);
    assert_eq!(result["status"], "failed", "{result:#}");
    let audit = &result["outputs"]["audit"];
    assert_eq!(audit["kinds"], serde_json::json!(["ec2:security-group", "ecs:cluster"]), "{result:#}");
    let failed = &result["failed"][0];
    assert_eq!(failed["step"], "strict-audit", "{result:#}");
    assert_eq!(failed["error"]["code"], "DisallowedResources", "{result:#}");
    let run_id = result["run_id"].as_str().unwrap();
    ok(&s.run(&["teardown", run_id]));
}
