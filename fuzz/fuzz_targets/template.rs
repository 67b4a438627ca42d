//! Any string as a template: finding references, rendering against a context with params, step
//! outputs (nested objects and lists), env and `with`, and the grant-line placeholder pass must
//! return a value or an error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use wharf_fuzz::grants::Grant;
use wharf_fuzz::workflow::template::{self, TemplateContext};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let _ = template::references(s);
    let _ = template::has_templates(s);
    let params: BTreeMap<String, Value> =
        [("name".to_string(), json!("web")), ("n".to_string(), json!(3)), ("on".to_string(), json!(true))].into();
    let steps: BTreeMap<String, Value> = [
        ("a".to_string(), json!({"arn": "arn:x", "list": [1, {"k": "v"}], "nested": {"deep": {"x": null}}})),
        ("b-c".to_string(), json!({"ids": ["subnet-1", "subnet-2"]})),
    ]
    .into();
    let with = json!({"name": "n", "items": ["x", "y"]});
    let env = |k: &str| (k == "HOME").then(|| "/root".to_string());
    let ctx = TemplateContext { params: &params, steps: &steps, run_id: "r1", env: &env, with: Some(&with) };
    if let Ok(v) = template::render_string_value(s, &ctx) {
        let _ = template::render_value(&json!([v, {"k": s}]), &ctx);
    }
    if let Ok(line) = template::render_str(s, &ctx) {
        let _ = Grant::parse(&line);
    }
});
