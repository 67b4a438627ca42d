//! `--param k=v` values: type-checked against the declared params, defaults filled in.

use std::collections::BTreeMap;

use serde_json::Value;

use super::diagnostic::did_you_mean;
use super::{ParamType, Workflow, WorkflowError};

impl Workflow {
    /// Type-checks `--param k=v` values against the declared params and fills defaults. Every
    /// problem is reported at once (unknown, duplicate, wrong type, missing).
    pub fn resolve_params(&self, given: &[(String, String)]) -> Result<BTreeMap<String, Value>, WorkflowError> {
        let mut errors = Vec::new();
        let mut out = BTreeMap::new();
        // Declared params that were given (even if invalid), so they are not also reported missing.
        let mut seen = std::collections::HashSet::new();
        for (key, raw) in given {
            let Some(param) = self.params.get(key) else {
                let names: Vec<&str> = self.params.keys().map(String::as_str).collect();
                let hint = match did_you_mean(key, names.iter().copied()) {
                    Some(n) => format!("; did you mean `{n}`?"),
                    None if names.is_empty() => format!("; workflow `{}` declares no params", self.name),
                    None => format!(" (declared params: {})", names.join(", ")),
                };
                errors.push(format!("unknown param `{key}`{hint}"));
                continue;
            };
            if !seen.insert(key.as_str()) {
                errors.push(format!("param `{key}` is given more than once"));
                continue;
            }
            match parse_as(param.ty, raw) {
                Some(v) => {
                    out.insert(key.clone(), v);
                }
                None => errors.push(match param.ty {
                    ParamType::Integer => format!("param `{key}` is an integer; `{raw}` is not"),
                    ParamType::Boolean => format!("param `{key}` is a boolean (true or false); `{raw}` is not"),
                    ParamType::String => unreachable!("every string parses"),
                }),
            }
        }
        for (name, param) in &self.params {
            if seen.contains(name.as_str()) {
                continue;
            }
            match &param.default {
                Some(d) => {
                    out.insert(name.clone(), d.clone());
                }
                None => {
                    let about = param.description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default();
                    let example = match param.ty {
                        ParamType::String => "<string>",
                        ParamType::Integer => "<integer>",
                        ParamType::Boolean => "<true|false>",
                    };
                    errors.push(format!("missing required param `{name}`{about}; pass --param {name}={example}"));
                }
            }
        }
        if errors.is_empty() { Ok(out) } else { Err(WorkflowError::Params(errors)) }
    }
}

fn parse_as(ty: ParamType, raw: &str) -> Option<Value> {
    match ty {
        ParamType::String => Some(Value::String(raw.to_string())),
        ParamType::Integer => raw.trim().parse::<i64>().ok().map(Value::from),
        ParamType::Boolean => match raw.trim() {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
    }
}
