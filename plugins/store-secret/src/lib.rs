//! `store-secret`: a Secrets Manager secret whose value never appears in the workflow file, the
//! plugin, the journal or the outputs. The workflow says where the host reads the value from:
//!
//! ```toml
//! with = { name = "registry-creds", from_env = "REG_TOKEN" }
//! with = { name = "db-password", from_file = "secrets/db.txt" }   # relative to the workflow file
//! with = { name = "registry-creds", json = { username = { from_env = "REG_USER" }, password = { from_file = "secrets/reg-pass" } } }
//! ```
//!
//! Reading a source needs a grant the workflow writes itself: `env:Read REG_TOKEN` or
//! `file:Read secrets/db.txt` (a missing one fails with the exact line to add), for `from_env`,
//! `from_file` and every source inside `json` alike. They are deliberately not declared here: a
//! declared grant would let whoever edits `with` read any variable or file, while a line in the
//! workflow's `grants` keeps each secret read visible where it is reviewed. Files are read
//! relative to the workflow file's directory and must stay inside it (an absolute path needs a
//! grant naming it exactly), up to 64 KiB.
//!
//! Creates the secret, or stores a new version when it exists. The client request token is the
//! step's idempotency key for both the create and the put, so a retried or resumed attempt that
//! repeats a request with the same value is a no-op in Secrets Manager (no duplicate version).
//! If the same run already stored a *different* value under that token (the source changed
//! between attempts), versions are immutable, so the put is repeated with a token unique to the
//! attempt.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use wharf_plugin_sdk::secrets::{SecretValue, ValueSource};
use wharf_plugin_sdk::{Context, Error, Step, log, secrets};

const LITERAL: &str = "literal secret values are not allowed in workflow files: use from_env or from_file";

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// Secret name.
    pub name: String,
    /// Description, used when the secret is created.
    #[serde(default)]
    pub description: Option<String>,
    /// Environment variable of the wharf process holding the value.
    #[serde(default)]
    pub from_env: Option<String>,
    /// File holding the value (one trailing newline is dropped).
    #[serde(default)]
    pub from_file: Option<String>,
    /// A JSON object secret; each field is `{ from_env = "VAR" }` or `{ from_file = "path" }`.
    #[serde(default)]
    pub json: Option<BTreeMap<String, Value>>,
    /// Never accepted: present only to explain why (see [`LITERAL`]).
    #[serde(default, alias = "secret_string", alias = "password", alias = "secret", deserialize_with = "literal")]
    #[allow(dead_code)]
    value: Option<()>,
}

fn literal<'de, D: Deserializer<'de>>(_: D) -> Result<Option<()>, D::Error> {
    Err(serde::de::Error::custom(LITERAL))
}

#[derive(Serialize, Debug)]
pub struct Output {
    pub arn: String,
    pub name: String,
}

pub struct StoreSecret;

impl Step for StoreSecret {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "store-secret";
    const DESCRIPTION: &'static str =
        "Stores a Secrets Manager secret read by the host from an env var or file (grant env:Read/file:Read).";
    const GRANTS: &'static [&'static str] = &[
        "secretsmanager:DescribeSecret ${with.name}",
        "secretsmanager:CreateSecret ${with.name}",
        "secretsmanager:PutSecretValue ${with.name}",
        // No `env:Read`/`file:Read`: the workflow grants each source itself (module docs).
    ];

    fn run(ctx: &Context, input: Input) -> Result<Output, Error> {
        validate_name(&input.name).map_err(Error::invalid_input)?;
        let value = secret_value(&input).map_err(Error::invalid_input)?;
        let name = &input.name;
        let description = input.description.as_deref().unwrap_or("");
        let secret = match secrets::describe_secret(name)? {
            Some(_) => {
                if !description.is_empty() {
                    log::info("the secret exists: its description is left as it is");
                }
                put(ctx, name, &value)?
            }
            None => match secrets::create_secret(name, description, &value, &ctx.idempotency_key) {
                Ok(created) => {
                    log::info(&format!("created secret {}", created.arn));
                    created
                }
                // Created meanwhile (or by an attempt Secrets Manager did not show us yet).
                Err(e) if e.code == "ResourceExistsException" => put(ctx, name, &value)?,
                Err(e) => return Err(e.into()),
            },
        };
        Ok(Output { arn: secret.arn, name: secret.name })
    }
}

/// A new version of an existing secret (see the module docs for the tokens).
fn put(ctx: &Context, name: &str, value: &SecretValue) -> Result<secrets::Secret, Error> {
    let secret = match secrets::put_secret_value(name, value, &ctx.idempotency_key) {
        Err(e) if e.code == "ResourceExistsException" => {
            log::warn("this run stored a different value earlier; storing it as a new version");
            secrets::put_secret_value(name, value, &attempt_token(ctx))?
        }
        other => other?,
    };
    log::info(&format!("stored a new version of secret {}", secret.arn));
    Ok(secret)
}

/// 32 hex characters unique to this attempt: the key's first 24 and the attempt number.
fn attempt_token(ctx: &Context) -> String {
    let prefix: String = ctx.idempotency_key.chars().take(24).collect();
    format!("{prefix:0<24}{:08x}", ctx.attempt)
}

/// Exactly one of `from_env`, `from_file`, `json`, as the host's value description.
fn secret_value(input: &Input) -> Result<SecretValue, String> {
    match (&input.from_env, &input.from_file, &input.json) {
        (Some(var), None, None) => Ok(SecretValue::Plain(env_source("from_env", var)?)),
        (None, Some(path), None) => Ok(SecretValue::Plain(file_source("from_file", path)?)),
        (None, None, Some(fields)) if !fields.is_empty() => Ok(SecretValue::JsonObject(
            fields
                .iter()
                .map(|(key, spec)| Ok((key.clone(), field_source(key, spec)?)))
                .collect::<Result<_, String>>()?,
        )),
        (None, None, Some(_)) => Err("`json` needs at least one field".into()),
        _ => Err("give exactly one of `from_env`, `from_file` or `json`".into()),
    }
}

/// One `json` field: `{ from_env = "VAR" }` or `{ from_file = "path" }`.
fn field_source(key: &str, spec: &Value) -> Result<ValueSource, String> {
    let Value::Object(map) = spec else { return Err(format!("`json.{key}`: {LITERAL}")) };
    let (from, value) = match map.iter().collect::<Vec<_>>()[..] {
        [(from, Value::String(value))] => (from.as_str(), value),
        _ => return Err(format!("`json.{key}` must be {{ from_env = \"VAR\" }} or {{ from_file = \"path\" }}")),
    };
    match from {
        "from_env" => env_source(&format!("json.{key}.from_env"), value),
        "from_file" => file_source(&format!("json.{key}.from_file"), value),
        _ => Err(format!("`json.{key}`: {LITERAL}")),
    }
}

fn env_source(field: &str, var: &str) -> Result<ValueSource, String> {
    let ok = !var.is_empty() && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok { Ok(ValueSource::Env(var.to_string())) } else { Err(format!("`{field}` must name an environment variable")) }
}

fn file_source(field: &str, path: &str) -> Result<ValueSource, String> {
    if path.trim().is_empty() { Err(format!("`{field}` must name a file")) } else { Ok(ValueSource::File(path.into())) }
}

/// Secrets Manager's rule: 1-512 of letters, digits and `/_+=.@-`.
fn validate_name(name: &str) -> Result<(), String> {
    let ok =
        (1..=512).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c));
    if ok { Ok(()) } else { Err(format!("`name` must be 1-512 letters, digits or /_+=.@- (got `{name}`)")) }
}

wharf_plugin_sdk::export_step!(StoreSecret);

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Input, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn literal_values_are_rejected_with_a_reason() {
        for key in ["value", "secret_string", "password", "secret"] {
            let err = parse(&format!(r#"{{"name": "n", "{key}": "hunter2"}}"#)).unwrap_err();
            assert!(err.contains(LITERAL), "{key}: {err}");
            assert!(!err.contains("hunter2"), "the error must not echo the value: {err}");
        }
        let input = parse(r#"{"name": "n", "json": {"user": "bob"}}"#).unwrap();
        assert!(secret_value(&input).unwrap_err().contains(LITERAL));
        let input = parse(r#"{"name": "n", "json": {"user": {"value": "bob"}}}"#).unwrap();
        assert!(secret_value(&input).unwrap_err().contains(LITERAL));
        assert!(parse(r#"{"name": "n", "from_envv": "X"}"#).unwrap_err().contains("unknown field"));
    }

    #[test]
    fn exactly_one_source() {
        let input = parse(r#"{"name": "n", "from_env": "A", "from_file": "f"}"#).unwrap();
        assert!(secret_value(&input).unwrap_err().contains("exactly one"));
        let input = parse(r#"{"name": "n"}"#).unwrap();
        assert!(secret_value(&input).unwrap_err().contains("exactly one"));
        let input = parse(r#"{"name": "n", "from_env": "REG_TOKEN"}"#).unwrap();
        assert!(matches!(secret_value(&input).unwrap(), SecretValue::Plain(ValueSource::Env(v)) if v == "REG_TOKEN"));
    }

    #[test]
    fn json_fields_name_their_sources() {
        let input = parse(
            r#"{"name": "n", "json": {"username": {"from_env": "REG_USER"}, "password": {"from_file": "p.txt"}}}"#,
        )
        .unwrap();
        let SecretValue::JsonObject(fields) = secret_value(&input).unwrap() else { panic!("not json") };
        assert!(matches!(&fields[0], (k, ValueSource::File(p)) if k == "password" && p == "p.txt"));
        assert!(matches!(&fields[1], (k, ValueSource::Env(v)) if k == "username" && v == "REG_USER"));
        let input = parse(r#"{"name": "n", "json": {"u": {"from_env": "A", "from_file": "f"}}}"#).unwrap();
        assert!(secret_value(&input).unwrap_err().contains("json.u"));
        let input = parse(r#"{"name": "n", "json": {"u": {"from_env": "bad var"}}}"#).unwrap();
        assert!(secret_value(&input).unwrap_err().contains("json.u.from_env"));
    }

    #[test]
    fn attempt_tokens_are_32_hex_and_differ_per_attempt() {
        let ctx = |attempt| Context {
            run_id: "r".into(),
            step_id: "s".into(),
            attempt,
            idempotency_key: "0123456789abcdef0123456789abcdef".into(),
            in_doubt: false,
            planning: false,
        };
        let (a, b) = (attempt_token(&ctx(1)), attempt_token(&ctx(2)));
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_ne!(a, ctx(1).idempotency_key);
    }

    #[test]
    fn names_follow_secrets_manager_rules() {
        assert!(validate_name("prod/registry-creds").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("a b").is_err());
    }
}
