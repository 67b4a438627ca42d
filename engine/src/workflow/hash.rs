//! `Step::definition_hash`: a fingerprint of everything that defines what a step does, so the
//! journal can tell whether a step from an earlier run is still the same step.
//!
//! The input is a canonical JSON (sorted keys, compact, durations in nanoseconds) of the parsed
//! model, not the source text: comments, whitespace, key order and equivalent spellings (`"5m"` vs
//! `"300s"`) do not change the hash, while any semantic change does. A path plugin is hashed by its
//! path only; the runner hashes the component bytes separately.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{PluginRef, Step};

pub(crate) fn definition_hash(step: &Step) -> String {
    let plugin = match &step.plugin {
        PluginRef::Builtin(name) => json!({ "builtin": name }),
        PluginRef::Path(p) => json!({ "path": p.to_string_lossy() }),
    };
    let doc = json!({
        "plugin": plugin,
        "needs": step.needs,
        "with": step.with,
        "grants": step.grants,
        "timeout_ns": step.timeout.as_nanos() as u64,
        "retry": {
            "max_attempts": step.retry.max_attempts,
            "initial_backoff_ns": step.retry.initial_backoff.as_nanos() as u64,
            "max_backoff_ns": step.retry.max_backoff.as_nanos() as u64,
        },
        "memory_limit": step.memory_limit,
    });
    let mut text = String::new();
    canonical(&doc, &mut text);
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Compact JSON with object keys sorted, independent of serde_json's `preserve_order` feature
/// (which another crate in the build could switch on).
pub(crate) fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}
