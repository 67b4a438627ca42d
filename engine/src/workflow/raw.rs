//! First pass: the TOML document's shape.
//!
//! We walk `toml::de::DeTable` (which keeps a span on every key and value) by hand instead of
//! deriving `Deserialize` on raw structs, because serde stops at the first error, and a user fixing
//! a workflow wants every unknown key and wrong type reported in one go. Values come out with their
//! spans so the semantic pass (`validate.rs`) can point at them too.

use serde_json::Value;
use serde_spanned::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use super::diagnostic::{Reporter, Span, suggest};

/// A value and where it came from.
#[derive(Debug, Clone)]
pub(crate) struct Sp<T> {
    pub v: T,
    pub span: Span,
}

pub(crate) struct RawWorkflow {
    pub name: Option<Sp<String>>,
    pub description: Option<String>,
    pub params: Vec<RawParam>,
    pub aws_region: Option<Sp<String>>,
    pub aws_profile: Option<Sp<String>>,
    pub concurrency: Option<Sp<i64>>,
    pub state: Option<RawState>,
    /// Span of the `steps` key, when present (for "no steps" errors).
    pub steps_key: Option<Span>,
    /// `steps` was present but not a list (already reported; suppresses "no steps").
    pub steps_malformed: bool,
    pub steps: Vec<RawStep>,
}

pub(crate) struct RawParam {
    pub name: Sp<String>,
    pub ty: Option<Sp<String>>,
    pub default: Option<Sp<Value>>,
    pub description: Option<String>,
}

pub(crate) struct RawStep {
    /// The `[[steps]]` header (or inline table), for errors about the step as a whole.
    pub header: Span,
    /// `step `x`` or `step #2` when the id is missing, for messages.
    pub label: String,
    pub id: Option<Sp<String>>,
    pub plugin: Option<Sp<String>>,
    pub needs: Vec<Sp<String>>,
    pub timeout: Option<Sp<String>>,
    pub memory: Option<Sp<String>>,
    pub retry: Option<RawRetry>,
    pub grants: Vec<Sp<String>>,
    pub with: Value,
    /// Every string inside `with`, with its span, for template checks.
    pub with_strings: Vec<Sp<String>>,
    /// The `with` key, when present (for "missing input" errors).
    pub with_span: Option<Span>,
    /// Every key inside `with` (any depth), for input checks.
    pub with_keys: Vec<WithKey>,
}

/// A key inside a step's `with`: its path from `with` (list items as their index) and where the
/// key and its value are written.
pub(crate) struct WithKey {
    pub path: Vec<String>,
    pub key: Span,
    pub value: Span,
}

/// `[state]`: where `wharf run` journals the run.
pub(crate) struct RawState {
    /// The `state` key, for errors about the table as a whole.
    pub header: Span,
    pub backend: Option<Sp<String>>,
    pub bucket: Option<Sp<String>>,
    pub prefix: Option<Sp<String>>,
    pub region: Option<Sp<String>>,
    pub endpoint: Option<Sp<String>>,
}

pub(crate) struct RawRetry {
    pub max_attempts: Option<Sp<i64>>,
    pub initial_backoff: Option<Sp<String>>,
    pub max_backoff: Option<Sp<String>>,
}

const TOP_KEYS: &[&str] = &["name", "description", "params", "aws", "run", "state", "steps"];
const STATE_KEYS: &[&str] = &["backend", "bucket", "prefix", "region", "endpoint"];
const PARAM_KEYS: &[&str] = &["type", "default", "description"];
const STEP_KEYS: &[&str] = &["id", "plugin", "needs", "timeout", "memory", "retry", "grants", "with"];
const RETRY_KEYS: &[&str] = &["max_attempts", "initial_backoff", "max_backoff"];
/// Names other tools use for our step keys: typo distance would not catch these.
const STEP_ALIASES: &[(&str, &str)] = &[
    ("depends_on", "needs"),
    ("depends", "needs"),
    ("after", "needs"),
    ("uses", "plugin"),
    ("inputs", "with"),
    ("args", "with"),
    ("permissions", "grants"),
    ("memory_limit", "memory"),
];

type Entry<'a, 'i> = (&'a Spanned<DeString<'i>>, &'a Spanned<DeValue<'i>>);

fn entry<'a, 'i>(t: &'a DeTable<'i>, key: &str) -> Option<Entry<'a, 'i>> {
    t.iter().find(|(k, _)| k.get_ref().as_ref() == key)
}

/// "a string", "a list", ... for "found X" messages.
fn describe(v: &DeValue) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "a list",
        DeValue::Table(_) => "a table",
    }
}

pub(crate) fn read(rep: &mut Reporter, doc: &DeTable) -> RawWorkflow {
    check_keys(rep, doc, TOP_KEYS, "at the top level", &[]);
    let name = string(rep, doc, "name", None);
    if name.is_none() && entry(doc, "name").is_none() {
        rep.error(
            0..0,
            "missing required key `name`",
            Some("add `name = \"my-workflow\"` before the first [table]".into()),
        );
    }
    let description = string(rep, doc, "description", None).map(|s| s.v);
    let params = table(rep, doc, "params", "declare each param as [params.NAME]")
        .map(|t| t.iter().filter_map(|(k, v)| read_param(rep, k, v)).collect())
        .unwrap_or_default();

    let (mut aws_region, mut aws_profile) = (None, None);
    if let Some(aws) = table(rep, doc, "aws", "write [aws] with `region` and/or `profile`") {
        check_keys(rep, aws, &["region", "profile"], "in [aws]", &[]);
        aws_region = string(rep, aws, "region", None);
        aws_profile = string(rep, aws, "profile", None);
    }
    let mut concurrency = None;
    if let Some(run) = table(rep, doc, "run", "write [run] with `concurrency = 4`") {
        check_keys(rep, run, &["concurrency"], "in [run]", &[]);
        concurrency = typed(rep, run, "concurrency", "an integer", None, |v| v.as_integer().and_then(int));
    }
    let state = table(rep, doc, "state", "write [state] with `backend = \"s3\"`, `bucket` and `prefix`").map(|t| {
        check_keys(rep, t, STATE_KEYS, "in [state]", &[]);
        RawState {
            header: entry(doc, "state").map(|(k, _)| k.span()).unwrap_or(0..0),
            backend: string(rep, t, "backend", None),
            bucket: string(rep, t, "bucket", None),
            prefix: string(rep, t, "prefix", None),
            region: string(rep, t, "region", None),
            endpoint: string(rep, t, "endpoint", None),
        }
    });

    let mut steps = Vec::new();
    let steps_entry = entry(doc, "steps");
    let mut steps_malformed = false;
    if let Some((_, v)) = steps_entry {
        match v.get_ref() {
            DeValue::Array(items) => {
                for (n, item) in items.iter().enumerate() {
                    match item.get_ref() {
                        DeValue::Table(t) => steps.push(read_step(rep, n + 1, item.span(), t)),
                        other => rep.error(
                            item.span(),
                            format!("each step must be a table, not {}", describe(other)),
                            Some("write each step as its own `[[steps]]` table with `id` and `plugin`".into()),
                        ),
                    }
                }
            }
            other => {
                steps_malformed = true;
                rep.error(
                    v.span(),
                    format!("`steps` must be a list of tables, not {}", describe(other)),
                    Some("write each step as its own `[[steps]]` table (double brackets)".into()),
                )
            }
        }
    }
    RawWorkflow {
        name,
        description,
        params,
        aws_region,
        aws_profile,
        concurrency,
        state,
        steps_key: steps_entry.map(|(k, _)| k.span()),
        steps_malformed,
        steps,
    }
}

fn read_param(rep: &mut Reporter, key: &Spanned<DeString>, v: &Spanned<DeValue>) -> Option<RawParam> {
    let name = Sp { v: key.get_ref().to_string(), span: key.span() };
    let DeValue::Table(t) = v.get_ref() else {
        rep.error(
            v.span(),
            format!("param `{}` must be a table, not {}", name.v, describe(v.get_ref())),
            Some(format!("write [params.{}] with `type = \"string\"` (and optionally `default`)", name.v)),
        );
        return None;
    };
    check_keys(rep, t, PARAM_KEYS, &format!("in param `{}`", name.v), &[("kind", "type")]);
    let ty = string(rep, t, "type", None);
    if entry(t, "type").is_none() {
        rep.error(
            key.span(),
            format!("param `{}` has no `type`", name.v),
            Some("add `type = \"string\"` (or \"integer\" or \"boolean\")".into()),
        );
    }
    let default = entry(t, "default").map(|(_, d)| Sp { v: to_json(rep, d, &mut Vec::new(), None), span: d.span() });
    let description = string(rep, t, "description", None).map(|s| s.v);
    Some(RawParam { name, ty, default, description })
}

fn read_step(rep: &mut Reporter, n: usize, header: Span, t: &DeTable) -> RawStep {
    let id = string(rep, t, "id", None);
    let label = match &id {
        Some(id) => format!("step `{}`", id.v),
        None => format!("step #{n}"),
    };
    if entry(t, "id").is_none() {
        rep.error(header.clone(), format!("{label} has no `id`"), Some("add `id = \"my-step\"` to the step".into()));
    }
    check_keys(rep, t, STEP_KEYS, &format!("in {label}"), STEP_ALIASES);
    let plugin = string(rep, t, "plugin", None);
    if entry(t, "plugin").is_none() {
        rep.error(
            header.clone(),
            format!("{label} has no `plugin`"),
            Some("set `plugin` to a builtin plugin name or a path to a .wasm component".into()),
        );
    }
    let needs = string_list(rep, t, "needs", "a list of step ids");
    let timeout = string(rep, t, "timeout", Some("write a duration string such as `timeout = \"5m\"`"));
    let memory = string(rep, t, "memory", Some("write a size string such as `memory = \"256MiB\"`"));
    let retry =
        table(rep, t, "retry", "write `retry = { max_attempts = 3, initial_backoff = \"1s\", max_backoff = \"30s\" }`")
            .map(|r| {
                check_keys(rep, r, RETRY_KEYS, &format!("in `retry` of {label}"), &[("attempts", "max_attempts")]);
                RawRetry {
                    max_attempts: typed(rep, r, "max_attempts", "an integer", None, |v| v.as_integer().and_then(int)),
                    initial_backoff: string(
                        rep,
                        r,
                        "initial_backoff",
                        Some("write a duration string such as `\"1s\"`"),
                    ),
                    max_backoff: string(rep, r, "max_backoff", Some("write a duration string such as `\"30s\"`")),
                }
            });
    let grants = string_list(rep, t, "grants", "a list of grant lines");
    let mut with_strings = Vec::new();
    let mut with_keys = Vec::new();
    let with = match table(
        rep,
        t,
        "with",
        "write the inputs as a [steps.with] table below the step, or `with = { key = \"value\" }`",
    ) {
        Some(_) => {
            let mut keys = Keys { path: Vec::new(), out: &mut with_keys };
            to_json(rep, entry(t, "with").expect("just read").1, &mut with_strings, Some(&mut keys))
        }
        None => Value::Object(Default::default()),
    };
    let with_span = entry(t, "with").map(|(k, _)| k.span());
    RawStep {
        header,
        label,
        id,
        plugin,
        needs,
        timeout,
        memory,
        retry,
        grants,
        with,
        with_strings,
        with_span,
        with_keys,
    }
}

fn check_keys(rep: &mut Reporter, t: &DeTable, allowed: &[&str], place: &str, aliases: &[(&str, &str)]) {
    for (k, _) in t.iter() {
        let key = k.get_ref().as_ref();
        if allowed.contains(&key) {
            continue;
        }
        let hint = match aliases.iter().find(|(a, _)| *a == key) {
            Some((_, real)) => Some(format!("did you mean `{real}`?")),
            None => suggest(key, allowed, "allowed keys are"),
        };
        rep.error(k.span(), format!("unknown key `{key}` {place}"), hint);
    }
}

/// `t[key]` converted by `get`, reporting "`key` must be WANT, not X" when it has the wrong type.
fn typed<T>(
    rep: &mut Reporter,
    t: &DeTable,
    key: &str,
    want: &str,
    hint: Option<&str>,
    get: impl Fn(&DeValue) -> Option<T>,
) -> Option<Sp<T>> {
    let (_, v) = entry(t, key)?;
    match get(v.get_ref()) {
        Some(x) => Some(Sp { v: x, span: v.span() }),
        None => {
            let found = describe(v.get_ref());
            let message = if v.get_ref().is_integer() && want == "an integer" {
                format!("`{key}` is out of range")
            } else {
                format!("`{key}` must be {want}, not {found}")
            };
            // Without a specific hint, show the key with a value of the right type.
            let example = match want {
                "a string" => format!("`{key} = \"...\"`"),
                "an integer" => format!("`{key} = 4`"),
                "a table" => format!("`[{key}]` or `{key} = {{ ... }}`"),
                _ => want.to_string(),
            };
            let hint = hint.map_or_else(|| format!("write {example}"), str::to_string);
            rep.error(v.span(), message, Some(hint));
            None
        }
    }
}

fn string(rep: &mut Reporter, t: &DeTable, key: &str, hint: Option<&str>) -> Option<Sp<String>> {
    typed(rep, t, key, "a string", hint, |v| v.as_str().map(str::to_string))
}

fn table<'a, 'i>(rep: &mut Reporter, t: &'a DeTable<'i>, key: &str, hint: &str) -> Option<&'a DeTable<'i>> {
    typed(rep, t, key, "a table", Some(hint), |v| v.as_table().map(|_| ()))?;
    entry(t, key).and_then(|(_, v)| v.get_ref().as_table())
}

fn string_list(rep: &mut Reporter, t: &DeTable, key: &str, want: &str) -> Vec<Sp<String>> {
    let Some((_, v)) = entry(t, key) else { return Vec::new() };
    match v.get_ref() {
        DeValue::Array(items) => items
            .iter()
            .filter_map(|item| match item.get_ref().as_str() {
                Some(s) => Some(Sp { v: s.to_string(), span: item.span() }),
                None => {
                    rep.error(
                        item.span(),
                        format!("entries of `{key}` must be strings, not {}", describe(item.get_ref())),
                        Some("quote each entry".into()),
                    );
                    None
                }
            })
            .collect(),
        other => {
            // The common slip is a bare string: show the fixed line.
            let hint = other.as_str().map(|s| format!("write `{key} = [{s:?}]`"));
            rep.error(v.span(), format!("`{key}` must be {want}, not {}", describe(other)), hint);
            Vec::new()
        }
    }
}

fn int(i: &toml::de::DeInteger) -> Option<i64> {
    i64::from_str_radix(i.as_str(), i.radix()).ok()
}

/// Where [`to_json`] is inside `with`, and the keys it has seen.
struct Keys<'a> {
    path: Vec<String>,
    out: &'a mut Vec<WithKey>,
}

impl Keys<'_> {
    /// Converts `v`, found under path segment `seg`.
    fn under(&mut self, rep: &mut Reporter, seg: String, v: &Spanned<DeValue>, strings: &mut Vec<Sp<String>>) -> Value {
        self.path.push(seg);
        let json = to_json(rep, v, strings, Some(self));
        self.path.pop();
        json
    }
}

/// TOML to JSON for step inputs and defaults. Datetimes become their TOML text; strings are also
/// collected with their spans so templates inside them can be checked, and with `keys`, every
/// table key with its path.
fn to_json(rep: &mut Reporter, v: &Spanned<DeValue>, strings: &mut Vec<Sp<String>>, keys: Option<&mut Keys>) -> Value {
    match v.get_ref() {
        DeValue::String(s) => {
            strings.push(Sp { v: s.to_string(), span: v.span() });
            Value::String(s.to_string())
        }
        DeValue::Integer(i) => match int(i) {
            Some(n) => Value::from(n),
            None => match u64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Value::from(n),
                Err(_) => {
                    rep.error(v.span(), "integer is out of range", Some("use a string for very large numbers".into()));
                    Value::Null
                }
            },
        },
        DeValue::Float(f) => match f.as_str().parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
            Some(n) => Value::Number(n),
            None => {
                rep.error(
                    v.span(),
                    format!("`{}` cannot be passed to a step", f.as_str()),
                    Some("JSON has no inf or nan; use a string".into()),
                );
                Value::Null
            }
        },
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Datetime(d) => Value::String(d.to_string()),
        DeValue::Array(items) => Value::Array(match keys {
            Some(keys) => items.iter().enumerate().map(|(n, i)| keys.under(rep, n.to_string(), i, strings)).collect(),
            None => items.iter().map(|i| to_json(rep, i, strings, None)).collect(),
        }),
        DeValue::Table(t) => Value::Object(match keys {
            Some(keys) => t
                .iter()
                .map(|(k, v)| {
                    let name = k.get_ref().to_string();
                    let mut path = keys.path.clone();
                    path.push(name.clone());
                    keys.out.push(WithKey { path, key: k.span(), value: v.span() });
                    (name.clone(), keys.under(rep, name, v, strings))
                })
                .collect(),
            None => t.iter().map(|(k, v)| (k.get_ref().to_string(), to_json(rep, v, strings, None))).collect(),
        }),
    }
}
