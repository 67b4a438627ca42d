//! Scalar value checks shared by validation: names, durations, memory sizes, param types.
//! Each returns a message and an optional hint so the caller can attach a span.

use std::time::Duration;

use serde_json::Value;

use super::ParamType;

pub(crate) type Problem = (String, Option<String>);

pub(crate) const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);
pub(crate) const MIB: u64 = 1024 * 1024;
pub(crate) const MIN_MEMORY: u64 = MIB;
pub(crate) const MAX_MEMORY: u64 = 4 * 1024 * MIB;

/// `[a-z0-9-]+`
pub(crate) fn is_workflow_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `[a-z0-9][a-z0-9-_]*`
pub(crate) fn is_step_id(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
}

/// Param names must be usable as a template segment (`${params.NAME}`).
pub(crate) fn is_param_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

/// A close-enough valid spelling of a bad name, for hints: `My App` -> `my-app`.
pub(crate) fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

pub(crate) fn param_type(s: &str) -> Result<ParamType, Problem> {
    match s {
        "string" => Ok(ParamType::String),
        "integer" => Ok(ParamType::Integer),
        "boolean" => Ok(ParamType::Boolean),
        other => {
            // Common spellings from other languages map to ours; otherwise fall back to typo distance.
            let guess = match other.to_ascii_lowercase().as_str() {
                "str" | "text" => Some("string"),
                "int" | "i64" | "number" | "integer" => Some("integer"),
                "bool" | "boolean" => Some("boolean"),
                _ => super::diagnostic::did_you_mean(other, ["string", "integer", "boolean"]),
            };
            let hint = match guess {
                Some(g) => format!("did you mean `{g}`? (types are string, integer and boolean)"),
                None => "types are string, integer and boolean".to_string(),
            };
            Err((format!("unknown param type `{other}`"), Some(hint)))
        }
    }
}

pub(crate) fn type_name(ty: ParamType) -> &'static str {
    match ty {
        ParamType::String => "a string",
        ParamType::Integer => "an integer",
        ParamType::Boolean => "a boolean",
    }
}

pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a float",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

pub(crate) fn matches_type(ty: ParamType, v: &Value) -> bool {
    match ty {
        ParamType::String => v.is_string(),
        ParamType::Integer => v.is_i64() || v.is_u64(),
        ParamType::Boolean => v.is_boolean(),
    }
}

/// Parses `"5m"`-style durations; `what` names the key for messages.
pub(crate) fn duration(what: &str, s: &str) -> Result<Duration, Problem> {
    humantime::parse_duration(s).map_err(|e| {
        (format!("invalid duration `{s}` for `{what}`: {e}"), Some("use a duration like `30s`, `5m` or `1h30m`".into()))
    })
}

pub(crate) fn timeout(s: &str) -> Result<Duration, Problem> {
    let d = duration("timeout", s)?;
    if d.is_zero() {
        return Err(("`timeout` must be greater than zero".into(), Some("use a duration like `30s` or `5m`".into())));
    }
    if d > MAX_TIMEOUT {
        return Err((
            format!("`timeout` of `{s}` is longer than the 24h maximum"),
            Some("split long work into several steps".into()),
        ));
    }
    Ok(d)
}

/// `"256MiB"` -> bytes. Only binary suffixes: `MB` would be ambiguous (10^6 or 2^20?).
pub(crate) fn memory(s: &str) -> Result<u64, Problem> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = (&t[..digits], t[digits..].trim());
    let example = format!("`{}MiB`", if num.is_empty() { "256" } else { num });
    let bad = |hint: String| Err((format!("invalid memory size `{s}`"), Some(hint)));
    let Ok(n) = num.parse::<u64>() else {
        return bad("write a whole number with a unit, e.g. `256MiB` or `1GiB`".into());
    };
    let mult = match unit {
        "KiB" => 1024,
        "MiB" => MIB,
        "GiB" => 1024 * MIB,
        "" => return bad(format!("add a unit (KiB, MiB or GiB), e.g. {example}")),
        u if matches!(u.to_ascii_lowercase().as_str(), "m" | "mb" | "mib") => {
            return bad(format!("sizes use binary units; did you mean {example}?"));
        }
        u if matches!(u.to_ascii_lowercase().as_str(), "g" | "gb" | "gib") => {
            return bad(format!("sizes use binary units; did you mean `{n}GiB`?"));
        }
        u if matches!(u.to_ascii_lowercase().as_str(), "k" | "kb" | "kib") => {
            return bad(format!("sizes use binary units; did you mean `{n}KiB`?"));
        }
        _ => return bad("units are KiB, MiB and GiB, e.g. `256MiB`".into()),
    };
    let bytes = n.saturating_mul(mult);
    if !(MIN_MEMORY..=MAX_MEMORY).contains(&bytes) {
        return Err((
            format!("memory limit `{s}` is out of range"),
            Some("choose a size between 1MiB and 4GiB".into()),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        assert_eq!(memory("256MiB").unwrap(), 256 * MIB);
        assert_eq!(memory("1GiB").unwrap(), 1024 * MIB);
        assert_eq!(memory("4096KiB").unwrap(), 4 * MIB);
        assert_eq!(memory("4GiB").unwrap(), MAX_MEMORY);
        assert!(memory("5GiB").unwrap_err().0.contains("out of range"));
        assert!(memory("512KiB").is_err());
        assert_eq!(memory("256MB").unwrap_err().1.unwrap(), "sizes use binary units; did you mean `256MiB`?");
        assert_eq!(memory("256").unwrap_err().1.unwrap(), "add a unit (KiB, MiB or GiB), e.g. `256MiB`");
        assert!(memory("lots").is_err());
    }

    #[test]
    fn timeouts() {
        assert_eq!(timeout("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(timeout("24h").unwrap(), MAX_TIMEOUT);
        assert!(timeout("25h").is_err());
        assert!(timeout("0s").is_err());
        assert!(timeout("five minutes").unwrap_err().0.starts_with("invalid duration `five minutes` for `timeout`"));
    }

    #[test]
    fn names() {
        assert!(is_workflow_name("ecs-example-2"));
        assert!(!is_workflow_name("Ecs") && !is_workflow_name("") && !is_workflow_name("a_b"));
        assert!(is_step_id("a") && is_step_id("0-x_y") && !is_step_id("-a") && !is_step_id("_a") && !is_step_id("A"));
        assert!(is_param_name("cluster_name") && !is_param_name("a.b") && !is_param_name("1a"));
        assert_eq!(slug("My App!"), "my-app");
    }

    #[test]
    fn param_type_hints() {
        assert_eq!(
            param_type("int").unwrap_err().1.unwrap(),
            "did you mean `integer`? (types are string, integer and boolean)"
        );
        assert!(param_type("list").unwrap_err().1.unwrap().starts_with("types are"));
    }
}
