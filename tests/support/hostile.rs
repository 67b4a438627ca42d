//! Helpers of the hostile-plugin suites (`hostile.rs`, `hostile_inputs.rs`): workflows using the
//! hostile guest, and what `wharf run --output json` says about the steps that failed.

use crate::{Scratch, guests};
use serde_json::Value;

/// Grants every step using the hostile guest needs: it imports ecs, iam, s3, secrets and registry,
/// and the host refuses a component importing an interface its step has no grant for at all.
pub const BASE_GRANTS: &str = r#""ecs:DescribeClusters allowed-cluster", "iam:GetRole allowed-role",
    "s3:GetObject allowed-bucket/allowed/*", "secretsmanager:CreateSecret hostile-secret",
    "registry:Pull 127.0.0.1:5999/allowed/*""#;

/// Writes a workflow with `{BASE}` (the grants above), `{HOSTILE}` and `{STATE}` replaced.
pub fn workflow(s: &Scratch, name: &str, source: &str) -> std::path::PathBuf {
    let source = source
        .replace("{BASE}", BASE_GRANTS)
        .replace("{HOSTILE}", guests::HOSTILE)
        .replace("{STATE}", &s.state_dir().display().to_string());
    s.workflow(name, &source)
}

pub fn error<'a>(result: &'a Value, step: &str) -> &'a Value {
    result["failed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["step"] == step)
        .map(|f| &f["error"])
        .unwrap_or_else(|| panic!("step {step} did not fail: {result:#}"))
}

pub fn message<'a>(result: &'a Value, step: &str) -> &'a str {
    error(result, step)["message"].as_str().unwrap()
}

pub fn assert_denied(result: &Value, step: &str, line: &str) {
    let e = error(result, step);
    assert_eq!(e["kind"], "denied", "{step}: {e}");
    assert!(e["message"].as_str().unwrap().contains(&format!("add the grant line \"{line}\"")), "{step}: {e}");
}

/// Events of one step, from `wharf logs RUN --step STEP --output json`.
pub fn events(s: &Scratch, run_id: &str, step: &str) -> Vec<Value> {
    match s.json(&["logs", run_id, "--step", step]) {
        Value::Array(events) => events,
        other => panic!("logs of {step}: {other:#}"),
    }
}
