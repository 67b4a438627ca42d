//! Checks of a step's `with` that need no plugin instance and no AWS: literal secrets (any step),
//! and for built-in plugins their input keys, value kinds and Fargate sizes.
//!
//! Built-in plugins check their inputs again when they run (with templates resolved); this pass
//! exists so `wharf validate` reports, with file:line:col, what is already wrong in the file.
//! The key tables mirror the plugins' `#[serde(deny_unknown_fields)]` input structs: change both
//! together. (A test linking the plugin crates into the engine to compare them is not possible:
//! every plugin exports the same component ABI symbols, so two of them cannot be linked at once.)

use std::collections::HashSet;

use serde_json::Value;

use super::diagnostic::{Reporter, suggest};
use super::raw::{RawStep, WithKey};
use super::template;

// The plugin's own table of Fargate sizes, compiled into the engine too (one source of truth).
#[path = "../../../plugins/register-taskdef/src/fargate.rs"]
mod fargate;

/// What a value must look like. A string holding a template passes every kind: its value is
/// only known when the step runs (where the plugin checks it again).
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    Str,
    Bool,
    Int,
    /// A whole number or a numeric string (`cpu = 256` or `cpu = "256"`).
    Number,
    List,
    Table,
    Any,
}

/// One input of a built-in plugin: name, kind, required.
pub(crate) type Field = (&'static str, Kind, bool);

/// The inputs of one built-in plugin; `items` are the fields of the tables in a list input.
pub(crate) struct Spec {
    pub plugin: &'static str,
    pub fields: &'static [Field],
    pub items: Option<(&'static str, &'static [Field])>,
}

use Kind::*;

pub(crate) const SPECS: &[Spec] = &[
    Spec {
        plugin: "create-cluster",
        fields: &[
            ("name", Str, true),
            ("container_insights", Bool, false),
            ("network", Str, false),
            ("vpc_cidr", Str, false),
            ("vpc_id", Str, false),
            ("subnets", List, false),
            ("security_groups", List, false),
            ("ingress_ports", List, false),
            ("security_group_name", Str, false),
        ],
        items: None,
    },
    Spec {
        plugin: "create-roles",
        fields: &[
            ("task_role", Str, true),
            ("execution_role", Str, true),
            ("s3_write", List, false),
            ("s3_read", List, false),
            ("registry_secret_arn", Str, false),
        ],
        items: None,
    },
    Spec {
        plugin: "store-secret",
        fields: &[
            ("name", Str, true),
            ("description", Str, false),
            ("from_env", Str, false),
            ("from_file", Str, false),
            ("json", Table, false),
            // Accepted by the plugin only to refuse them with a reason (see `literal_secrets`).
            ("value", Any, false),
            ("secret_string", Any, false),
            ("password", Any, false),
            ("secret", Any, false),
        ],
        items: None,
    },
    Spec {
        plugin: "register-taskdef",
        fields: &[
            ("family", Str, true),
            ("cpu", Number, true),
            ("memory", Number, true),
            ("task_role_arn", Str, false),
            ("execution_role_arn", Str, false),
            ("cpu_architecture", Str, false),
            ("region", Str, false),
            ("containers", List, true),
        ],
        items: Some((
            "containers",
            &[
                ("name", Str, true),
                ("image", Str, true),
                ("essential", Bool, false),
                ("command", List, false),
                ("entry_point", List, false),
                ("environment", Table, false),
                ("secrets", Table, false),
                ("port_mappings", List, false),
                ("repository_credentials", Str, false),
                ("log_group", Str, false),
                ("create_log_group", Bool, false),
            ],
        )),
    },
    Spec {
        plugin: "create-service",
        fields: &[
            ("cluster", Str, true),
            ("name", Str, true),
            ("task_definition", Str, true),
            ("desired_count", Int, false),
            ("subnets", List, true),
            ("security_groups", List, false),
            ("assign_public_ip", Bool, false),
            ("circuit_breaker", Bool, false),
            ("timeout", Str, false),
            ("wait", Bool, false),
        ],
        items: None,
    },
    Spec {
        plugin: "verify-s3",
        fields: &[
            ("bucket", Str, true),
            ("key", Str, true),
            ("timeout", Any, false),
            ("expect_sha256", Str, false),
            ("expect_file", Str, false),
        ],
        items: None,
    },
    Spec {
        plugin: "build-push",
        fields: &[
            ("context", Str, true),
            ("dockerfile", Str, false),
            ("registry", Str, true),
            ("repository", Str, true),
            ("tag", Str, false),
            ("auth", Table, false),
            ("build_args", Table, false),
            ("platform", Str, false),
            ("labels", Table, false),
            ("source_date_epoch", Int, false),
        ],
        items: None,
    },
    Spec {
        plugin: "teardown",
        fields: &[
            ("secret_recovery_days", Int, false),
            ("keep_log_groups", Bool, false),
            ("delete_images", Bool, false),
            ("timeout_secs", Int, false),
            ("group", Str, false),
        ],
        items: None,
    },
];

/// Runs every check on one step; `builtin` is its built-in plugin's name, if it uses one.
pub(crate) fn check(rep: &mut Reporter, rs: &RawStep, builtin: Option<&str>) {
    literal_secrets(rep, rs, builtin);
    let Some(spec) = builtin.and_then(|b| SPECS.iter().find(|s| s.plugin == b)) else { return };
    let mut unknown = HashSet::new();
    check_fields(rep, rs, &rs.with, &[], spec.fields, spec.plugin, &mut unknown);
    if let Some((list, fields)) = spec.items
        && let Some(Value::Array(items)) = rs.with.get(list)
    {
        for (n, item) in items.iter().enumerate() {
            check_fields(rep, rs, item, &[list.to_string(), n.to_string()], fields, spec.plugin, &mut unknown);
        }
    }
    if spec.plugin == "register-taskdef" {
        fargate_size(rep, rs);
    }
}

fn key_at<'a>(rs: &'a RawStep, path: &[String]) -> Option<&'a WithKey> {
    rs.with_keys.iter().find(|k| k.path == path)
}

/// Unknown keys, missing required keys and wrong kinds of the table `value` at `path` in `with`.
fn check_fields(
    rep: &mut Reporter,
    rs: &RawStep,
    value: &Value,
    path: &[String],
    fields: &[Field],
    plugin: &str,
    reported: &mut HashSet<Vec<String>>,
) {
    let Value::Object(map) = value else { return };
    let place = if path.is_empty() { "`with`".to_string() } else { format!("`with.{}`", path.join(".")) };
    let names: Vec<&str> = fields.iter().map(|f| f.0).collect();
    for (key, v) in map {
        let mut at: Vec<String> = path.to_vec();
        at.push(key.clone());
        let Some(k) = key_at(rs, &at) else { continue };
        match fields.iter().find(|f| f.0 == key) {
            None if reported.insert(at.clone()) => {
                let hint = suggest(key, &names, &format!("`{plugin}` takes"));
                rep.error(k.key.clone(), format!("`{plugin}` has no input `{key}` (in {place} of {})", rs.label), hint);
            }
            None => {}
            Some(&(_, kind, _)) if !kind_ok(kind, v) => {
                let hint = match (kind, v.as_str()) {
                    (Bool, Some(s @ ("true" | "false"))) => format!("write `{key} = {s}` (without quotes)"),
                    (List, Some(s)) => format!("write `{key} = [{s:?}]`"),
                    _ => format!("write {}", example(kind, key)),
                };
                let msg = format!("input `{key}` of `{plugin}` must be {}, not {}", kind_name(kind), found(v));
                rep.error(k.value.clone(), msg, Some(hint));
            }
            Some(_) => {}
        }
    }
    for (name, _, _) in fields.iter().filter(|f| f.2 && !map.contains_key(f.0)) {
        let span = match path {
            [] => rs.with_span.clone().unwrap_or(rs.header.clone()),
            _ => key_at(rs, path).map_or(rs.header.clone(), |k| k.value.clone()),
        };
        let hint = format!("add `{name} = ...` to {place}; `{plugin}` requires it");
        rep.error(span, format!("{} is missing input `{name}` of `{plugin}`", rs.label), Some(hint));
    }
}

fn is_template(v: &Value) -> bool {
    v.as_str().is_some_and(template::has_templates)
}

fn kind_ok(kind: Kind, v: &Value) -> bool {
    is_template(v)
        || match kind {
            Str => v.is_string(),
            Bool => v.is_boolean(),
            Int => v.is_u64(),
            Number => v.is_u64() || v.as_str().is_some_and(|s| s.trim().parse::<u32>().is_ok()),
            List => v.is_array(),
            Table => v.is_object(),
            Any => true,
        }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Str => "a string",
        Bool => "true or false",
        Int => "a whole number",
        Number => "a whole number (or a string holding one)",
        List => "a list",
        Table => "a table",
        Any => "anything",
    }
}

fn example(kind: Kind, key: &str) -> String {
    match kind {
        Str => format!("`{key} = \"...\"`"),
        Bool => format!("`{key} = true`"),
        Int | Number => format!("`{key} = 1`"),
        List => format!("`{key} = [...]`"),
        Table => format!("`{key} = {{ ... }}`"),
        Any => format!("`{key}`"),
    }
}

fn found(v: &Value) -> &'static str {
    super::values::json_kind(v)
}

/// A Fargate size given literally that Fargate does not offer.
fn fargate_size(rep: &mut Reporter, rs: &RawStep) {
    let literal = |key: &str| -> Option<u32> {
        match rs.with.get(key)? {
            Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
            Value::String(s) if !template::has_templates(s) => s.trim().parse().ok(),
            _ => None,
        }
    };
    let (Some(cpu), Some(memory)) = (literal("cpu"), literal("memory")) else { return };
    let Some(problem) = fargate::size_problem(cpu, memory) else { return };
    let key = if problem.starts_with("cpu") { "cpu" } else { "memory" };
    let Some(k) = key_at(rs, &[key.to_string()]) else { return };
    let hint = "Fargate sizes: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html#fargate-tasks-size";
    rep.error(k.value.clone(), format!("{}: {problem}", rs.label), Some(hint.into()));
}

/// Secret values written into `with`: they would be committed with the workflow file and kept in
/// the run's journal. Found by key name (`password`, `*_secret`, `api_key`, ...; ARNs and
/// templates are fine) and by the shape of AWS access keys. Messages never repeat the value.
fn literal_secrets(rep: &mut Reporter, rs: &RawStep, builtin: Option<&str>) {
    let store_secret = builtin == Some("store-secret");
    for k in &rs.with_keys {
        let Some(Value::String(s)) = value_at(&rs.with, &k.path) else { continue };
        let name = k.path.last().map(String::as_str).unwrap_or("");
        let inside_json = store_secret && k.path.len() == 2 && k.path[0] == "json";
        let by_name = secret_name(name)
            || (store_secret && k.path.len() == 1 && ["value", "secret_string"].contains(&name))
            || inside_json;
        let aws_key = looks_like_aws_key(s);
        if s.trim().is_empty() || s.starts_with("arn:") || template::has_templates(s) || !(by_name || aws_key) {
            continue;
        }
        let what = format!("`with.{}` of {}", k.path.join("."), rs.label);
        let (msg, hint) = if aws_key {
            (
                format!("{what} holds what looks like an AWS credential"),
                "remove it (and rotate the key): wharf takes AWS credentials from the standard chain (AWS_PROFILE, SSO, env, instance roles)".to_string(),
            )
        } else if store_secret {
            let field =
                if inside_json { format!("{} = {{ from_env = \"VAR\" }}", name) } else { "from_env = \"VAR\"".into() };
            (
                format!("{what} is a literal secret value"),
                format!("let the host read it: `{field}` (or `from_file`) and grant the step `env:Read VAR`"),
            )
        } else {
            (
                format!("{what} is a literal secret value"),
                "secrets must not be written in workflow files: store it with a `store-secret` step (`from_env`/`from_file`) and pass its ARN, e.g. a container's `secrets = { NAME = \"${steps.ID.outputs.arn}\" }`".to_string(),
            )
        };
        rep.error(k.value.clone(), msg, Some(hint));
    }
}

fn value_at<'a>(root: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(root, |v, seg| match v {
        Value::Object(m) => m.get(seg),
        Value::Array(a) => seg.parse::<usize>().ok().and_then(|n| a.get(n)),
        _ => None,
    })
}

/// `password`, `DB_PASSWORD`, `client_secret`, `api-key`, `auth_token`...; not `registry_secret_arn`
/// or `secret_name` (a reference to a secret, not its value).
fn secret_name(key: &str) -> bool {
    let words: Vec<String> =
        key.split(|c: char| c == '_' || c == '-' || c == '.').map(|w| w.to_ascii_lowercase()).collect();
    let last = words.last().map(String::as_str).unwrap_or("");
    let last_two = words.len().checked_sub(2).map(|i| (words[i].as_str(), last));
    matches!(last, "password" | "passwd" | "pwd" | "secret" | "token" | "apikey" | "passphrase")
        || matches!(last_two, Some(("api" | "private" | "secret" | "access" | "signing", "key")))
}

/// An AWS access key id (`AKIA...`/`ASIA...`, 20 chars) or a secret access key (40 chars of
/// base64 with mixed case and a digit or `/`/`+`, which hex digests and words are not).
fn looks_like_aws_key(s: &str) -> bool {
    let id = s.len() == 20
        && (s.starts_with("AKIA") || s.starts_with("ASIA"))
        && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    let secret = s.len() == 40
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'/' || b == b'+')
        && s.bytes().any(|b| b.is_ascii_uppercase())
        && s.bytes().any(|b| b.is_ascii_lowercase())
        && s.bytes().any(|b| b.is_ascii_digit() || b == b'/' || b == b'+');
    id || secret
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        for k in ["password", "DB_PASSWORD", "client_secret", "api-key", "auth_token", "aws_secret_access_key"] {
            assert!(secret_name(k), "{k}");
        }
        for k in ["registry_secret_arn", "secret_name", "secrets", "secret_recovery_days", "name", "tokens_url"] {
            assert!(!secret_name(k), "{k}");
        }
    }

    #[test]
    fn templates_arns_and_references_are_not_flagged() {
        let src = r#"name = "x"
[params.cpu]
type = "integer"
[[steps]]
id = "s"
plugin = "store-secret"
with = { name = "n", json = { password = { from_env = "PW" } } }
[[steps]]
id = "td"
plugin = "register-taskdef"
grants = ["env:Read TOKEN"]
with = { family = "f", cpu = "${params.cpu}", memory = "512", containers = [{ name = "a", image = "i", secrets = { DB_PASSWORD = "${steps.s.outputs.arn}", API_KEY = "arn:aws:secretsmanager:us-east-1:1:secret:k" }, environment = { AUTH_TOKEN = "${env.TOKEN}" } }] }
"#;
        let builtins: Vec<&str> = SPECS.iter().map(|s| s.plugin).collect();
        if let Err(e) = super::super::Workflow::parse(std::path::Path::new("w.toml"), src, &builtins) {
            panic!("{e}");
        }
    }

    #[test]
    fn aws_key_shapes() {
        assert!(looks_like_aws_key("AKIAIOSFODNN7EXAMPLE"));
        assert!(looks_like_aws_key("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"));
        assert!(!looks_like_aws_key("da39a3ee5e6b4b0d3255bfef95601890afd80709"), "a sha1 is not a key");
        assert!(!looks_like_aws_key("ecs-example-cluster"));
    }
}
