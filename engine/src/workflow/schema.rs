//! JSON Schema of the workflow file format, for editor completion (taplo / Even Better TOML:
//! `#:schema ./wharf.schema.json` at the top of a workflow).
//!
//! Hand-built rather than derived: the parser walks spanned TOML by hand (see `raw.rs`), so there
//! are no serde structs to derive from, and writing it out keeps every description next to the
//! constraint it explains. Draft-07 because that is what TOML editor tooling understands.

use serde_json::{Value, json};

const TEMPLATES: &str =
    "May contain templates: ${params.NAME}, ${steps.ID.outputs.NAME}, ${env.NAME}, ${run.id}; $${ is a literal ${.";

fn duration(description: &str) -> Value {
    json!({
        "type": "string",
        "description": format!("{description} A humantime duration such as \"30s\", \"5m\" or \"1h30m\"."),
        "examples": ["30s", "5m", "1h"],
    })
}

pub fn json_schema() -> Value {
    let param = json!({
        "type": "object",
        "description": "A workflow parameter, set with `--param NAME=VALUE` and used as ${params.NAME}. Without a default it is required.",
        "additionalProperties": false,
        "required": ["type"],
        "properties": {
            "type": {"type": "string", "enum": ["string", "integer", "boolean"], "description": "The parameter's type; `--param` values are checked against it."},
            "default": {"type": ["string", "integer", "boolean"], "description": "Value used when the parameter is not given; must match `type`."},
            "description": {"type": "string", "description": "Shown in `wharf` help and error messages."},
        },
    });
    let retry = json!({
        "type": "object",
        "description": "Retry policy for failed attempts: exponential backoff from `initial_backoff`, capped at `max_backoff`.",
        "additionalProperties": false,
        "properties": {
            "max_attempts": {"type": "integer", "minimum": 1, "maximum": 20, "default": 3, "description": "Total attempts including the first (1 = no retries)."},
            "initial_backoff": duration("Wait before the first retry (default 1s)."),
            "max_backoff": duration("Longest wait between retries (default 30s)."),
        },
    });
    let step = json!({
        "type": "object",
        "description": "One step: a sandboxed WebAssembly component run with inputs and capability grants.",
        "additionalProperties": false,
        "required": ["id", "plugin"],
        "properties": {
            "id": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$", "description": "Unique step id, used in `needs` and ${steps.ID.outputs.NAME}."},
            "plugin": {"type": "string", "description": "A builtin plugin name, or a path to a .wasm component (contains `/` or ends in .wasm) relative to the workflow file's directory."},
            "needs": {"type": "array", "items": {"type": "string"}, "uniqueItems": true, "description": "Steps that must succeed before this one. Steps referenced by ${steps.ID...} templates are added automatically."},
            "timeout": duration("Time limit for one attempt; default 10m, at most 24h."),
            "memory": {"type": "string", "pattern": "^[0-9]+(KiB|MiB|GiB)$", "default": "128MiB", "description": "Memory limit of the component, with a KiB/MiB/GiB suffix; between 1MiB and 4GiB."},
            "retry": retry,
            "grants": {"type": "array", "items": {"type": "string"}, "description": format!("Capability grants, one `service:Action [resource]` line each (e.g. \"ecs:CreateCluster my-cluster\"); `*` is a wildcard. Everything else is denied. Templates are allowed in the resource. {TEMPLATES}")},
            "with": {"type": "object", "description": format!("Inputs passed to the plugin; any TOML values. {TEMPLATES} A string that is exactly one template keeps the value's type. ${{env.NAME}} hands a host variable to the plugin: the step needs the grant `env:Read NAME` (a pattern like `env:Read APP_*` covers it).")},
        },
    });
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://wharf.invalid/workflow.schema.json",
        "title": "wharf workflow",
        "description": "A wharf deployment workflow: parameters, AWS settings and a DAG of sandboxed WebAssembly steps.",
        "type": "object",
        "additionalProperties": false,
        "required": ["name", "steps"],
        "properties": {
            "name": {"type": "string", "pattern": "^[a-z0-9-]+$", "description": "Workflow name: lowercase letters, digits and `-`."},
            "description": {"type": "string", "description": "What the workflow deploys."},
            "params": {
                "type": "object",
                "description": "Parameters, one [params.NAME] table each.",
                "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_-]*$"},
                "additionalProperties": param,
            },
            "aws": {
                "type": "object",
                "description": "AWS settings used for every step's AWS calls.",
                "additionalProperties": false,
                "properties": {
                    "region": {"type": "string", "description": format!("AWS region, e.g. \"us-east-1\". Defaults to the SDK's usual resolution. May use ${{params.*}}, ${{env.*}} and ${{run.id}}.")},
                    "profile": {"type": "string", "description": "Named AWS profile from ~/.aws/config. May use ${params.*}, ${env.*} and ${run.id}."},
                },
            },
            "run": {
                "type": "object",
                "description": "How the run is scheduled.",
                "additionalProperties": false,
                "properties": {
                    "concurrency": {"type": "integer", "minimum": 1, "maximum": 64, "default": 4, "description": "Maximum number of steps running at once."},
                },
            },
            "state": {
                "type": "object",
                "description": "Where `wharf run` journals the run. --state / WHARF_STATE take precedence; other commands (resume, status, runs) find runs through those only. See docs/state.md.",
                "additionalProperties": false,
                "required": ["backend"],
                "properties": {
                    "backend": {"type": "string", "enum": ["sled", "s3"], "default": "sled", "description": "`sled`: one database per run in the local state dir (one person, one machine). `s3`: shared state in a bucket with a lease lock (teams, CI fleets)."},
                    "bucket": {"type": "string", "description": "S3 bucket holding the state (backend = \"s3\"; required)."},
                    "prefix": {"type": "string", "description": "Key prefix inside the bucket, e.g. \"wharf/prod\"; runs live under PREFIX/runs/."},
                    "region": {"type": "string", "description": "Region of the bucket. Defaults to the SDK's usual resolution (AWS_REGION, profile)."},
                    "endpoint": {"type": "string", "description": "Custom S3 endpoint (S3-compatible stores, emulators); path-style addressing is used then."},
                },
            },
            "steps": {"type": "array", "minItems": 1, "description": "The steps, one [[steps]] table each; they run as a DAG ordered by `needs`.", "items": step},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every object property in the schema carries a description (that is what editors show).
    fn assert_described(v: &Value, at: &str) {
        if let Some(props) = v.get("properties").and_then(Value::as_object) {
            for (k, p) in props {
                assert!(
                    p.get("description").and_then(Value::as_str).is_some_and(|d| !d.is_empty()),
                    "{at}.{k} has no description"
                );
                assert_described(p, &format!("{at}.{k}"));
            }
        }
        for key in ["items", "additionalProperties"] {
            if let Some(inner) = v.get(key).filter(|i| i.is_object()) {
                assert_described(inner, &format!("{at}[{key}]"));
            }
        }
    }

    #[test]
    fn schema_describes_every_key() {
        let s = json_schema();
        assert_described(&s, "$");
        let step = &s["properties"]["steps"]["items"]["properties"];
        for key in ["id", "plugin", "needs", "timeout", "memory", "retry", "grants", "with"] {
            assert!(step.get(key).is_some(), "step key {key}");
        }
        assert_eq!(s["properties"]["run"]["properties"]["concurrency"]["maximum"], 64);
        assert!(s["properties"]["params"]["additionalProperties"]["properties"]["type"]["enum"].is_array());
    }
}
