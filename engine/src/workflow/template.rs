//! `${...}` templates in workflow strings.
//!
//! Grammar: `${root.seg.seg}` where segments are `[A-Za-z0-9_-]+`; `$${` is a literal `${`.
//! Roots: `params.NAME`, `steps.ID.outputs.PATH`, `env.NAME`, `run.id`, and `with.PATH` (only in a
//! plugin's declared grants). A string that is exactly one expression renders to the referenced
//! JSON value, so `replicas = "${params.replicas}"` stays a number; anything else interpolates.
//!
//! `${env.NAME}` in a step's `with` passes a host variable to the plugin, so it needs the step's
//! `env:Read NAME` grant (workflow/validate.rs, scheduler/step.rs); in `[aws]` and grant lines it
//! reaches only the host and needs none. Param defaults are literal: a `${...}` there is text.
//!
//! Whitespace inside `${ }` is rejected rather than trimmed: grant lines are split on whitespace,
//! so allowing it would make `ecs:X ${ params.a }` ambiguous.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

/// What a template expression points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Param(String),
    /// `path` is non-empty: the output name followed by any nested fields / array indices.
    StepOutput {
        step: String,
        path: Vec<String>,
    },
    Env(String),
    RunId,
    With(Vec<String>),
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Param(n) => write!(f, "${{params.{n}}}"),
            Reference::StepOutput { step, path } => write!(f, "${{steps.{step}.outputs.{}}}", path.join(".")),
            Reference::Env(n) => write!(f, "${{env.{n}}}"),
            Reference::RunId => f.write_str("${run.id}"),
            Reference::With(p) => write!(f, "${{with.{}}}", p.join(".")),
        }
    }
}

/// The roots a template may start with (for hints).
pub const ROOTS: &[&str] = &["params", "steps", "env", "run", "with"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unclosed `${{` at column {column}; close it with `}}` (or write `$${{` for a literal `${{`)")]
    Unclosed { column: usize },
    #[error("`${{{expr}}}`: {reason}")]
    Malformed { expr: String, reason: String },
    #[error("`${{{expr}}}`: unknown template root `{root}` (valid roots: params, steps, env, run, with)")]
    UnknownRoot { expr: String, root: String },
    #[error("`${{{expr}}}`: no param `{name}` (known params: {})", list(known))]
    UnknownParam { expr: String, name: String, known: Vec<String> },
    #[error("`${{{expr}}}`: outputs of step `{step}` are not available; it has not completed in this run")]
    StepNotDone { expr: String, step: String },
    #[error("`${{{expr}}}`: {what} has no {kind} `{missing}` ({})", have_list(available))]
    MissingField { expr: String, what: String, kind: &'static str, missing: String, available: Option<Vec<String>> },
    #[error("environment variable `{name}` is not set; export it before running wharf")]
    EnvNotSet { name: String },
    #[error("`${{{expr}}}`: `${{with.*}}` is only available in a plugin's declared grants")]
    WithUnavailable { expr: String },
}

fn list(v: &[String]) -> String {
    if v.is_empty() { "none".into() } else { v.join(", ") }
}

fn have_list(v: &Option<Vec<String>>) -> String {
    match v {
        Some(keys) if keys.is_empty() => "it has none".into(),
        Some(keys) => format!("it has: {}", keys.join(", ")),
        None => "it is not an object or list".into(),
    }
}

/// What a template is rendered against.
pub struct TemplateContext<'a> {
    pub params: &'a BTreeMap<String, Value>,
    /// Step id -> that step's outputs object.
    pub steps: &'a BTreeMap<String, Value>,
    pub run_id: &'a str,
    /// `Sync` so a context held across an `.await` keeps the scheduler's futures `Send`.
    pub env: &'a (dyn Fn(&str) -> Option<String> + Sync),
    pub with: Option<&'a Value>,
}

enum Piece<'s> {
    Lit(&'s str),
    Expr { text: &'s str, reference: Reference },
}

fn parse(s: &str) -> Result<Vec<Piece<'_>>, TemplateError> {
    let mut pieces = Vec::new();
    let mut lit_start = 0;
    let mut i = 0;
    while let Some(off) = s[i..].find('$') {
        let at = i + off;
        let rest = &s[at..];
        if rest.starts_with("$${") {
            // Keep the first `$` as a literal boundary and drop the escape `$`.
            pieces.push(Piece::Lit(&s[lit_start..at]));
            lit_start = at + 1;
            i = at + 3;
        } else if rest.starts_with("${") {
            let Some(close) = rest.find('}') else {
                return Err(TemplateError::Unclosed { column: s[..at].chars().count() + 1 });
            };
            pieces.push(Piece::Lit(&s[lit_start..at]));
            let text = &rest[2..close];
            pieces.push(Piece::Expr { text, reference: parse_expr(text)? });
            i = at + close + 1;
            lit_start = i;
        } else {
            i = at + 1;
        }
    }
    pieces.push(Piece::Lit(&s[lit_start..]));
    pieces.retain(|p| !matches!(p, Piece::Lit("")));
    Ok(pieces)
}

fn parse_expr(expr: &str) -> Result<Reference, TemplateError> {
    let bad = |reason: &str| TemplateError::Malformed { expr: expr.to_string(), reason: reason.to_string() };
    if expr.is_empty() {
        return Err(bad("the expression is empty; write e.g. `${params.name}`"));
    }
    let segs: Vec<&str> = expr.split('.').collect();
    for seg in &segs {
        // `*` stands for every element (list) or value (table), in a plugin's declared grants.
        if *seg == "*" && segs[0] == "with" {
            continue;
        }
        if seg.is_empty() {
            return Err(bad("empty name between dots"));
        }
        if let Some(c) = seg.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-')) {
            return Err(bad(&format!("unexpected character {c:?}; names use letters, digits, `_` and `-`")));
        }
    }
    let owned = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    match segs[0] {
        "params" if segs.len() == 2 => Ok(Reference::Param(segs[1].into())),
        "params" => Err(bad("write `${params.NAME}`")),
        "steps" if segs.len() >= 4 && segs[2] == "outputs" => {
            Ok(Reference::StepOutput { step: segs[1].into(), path: owned(&segs[3..]) })
        }
        "steps" => Err(bad("write `${steps.ID.outputs.NAME}`")),
        "env" if segs.len() == 2 => Ok(Reference::Env(segs[1].into())),
        "env" => Err(bad("write `${env.NAME}`")),
        "run" if segs.len() == 2 && segs[1] == "id" => Ok(Reference::RunId),
        "run" => Err(bad("the only run value is `${run.id}`")),
        "with" if segs.len() >= 2 => Ok(Reference::With(owned(&segs[1..]))),
        "with" => Err(bad("write `${with.NAME}`")),
        root => Err(TemplateError::UnknownRoot { expr: expr.to_string(), root: root.to_string() }),
    }
}

/// Every reference in `s`, in order, without rendering (for validation).
pub fn references(s: &str) -> Result<Vec<Reference>, TemplateError> {
    Ok(parse(s)?
        .into_iter()
        .filter_map(|p| match p {
            Piece::Expr { reference, .. } => Some(reference),
            Piece::Lit(_) => None,
        })
        .collect())
}

/// The environment variables the strings inside `v` refer to with `${env.NAME}` (malformed
/// strings are validation's business and fail when rendered).
pub fn env_names(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => references(s)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| if let Reference::Env(name) = r { Some(name) } else { None })
            .collect(),
        Value::Array(items) => items.iter().flat_map(env_names).collect(),
        Value::Object(map) => map.values().flat_map(env_names).collect(),
        _ => Vec::new(),
    }
}

/// True when `s` contains at least one `${...}` expression (escapes do not count).
pub fn has_templates(s: &str) -> bool {
    references(s).map_or(true, |r| !r.is_empty())
}

/// Renders `s` with `resolve` supplying each referenced value. Whole-expression strings keep the
/// value's JSON type; everything else interpolates (strings raw, other values as compact JSON).
fn render_with(
    s: &str,
    mut resolve: impl FnMut(&str, &Reference) -> Result<Value, TemplateError>,
) -> Result<Value, TemplateError> {
    let pieces = parse(s)?;
    if let [Piece::Expr { text, reference }] = pieces.as_slice() {
        return resolve(text, reference);
    }
    let mut out = String::with_capacity(s.len());
    for p in &pieces {
        match p {
            Piece::Lit(l) => out.push_str(l),
            Piece::Expr { text, reference } => match resolve(text, reference)? {
                Value::String(v) => out.push_str(&v),
                v => out.push_str(&v.to_string()),
            },
        }
    }
    Ok(Value::String(out))
}

/// Replaces every expression with `placeholder` (used to syntax-check grant lines before the values
/// exist).
pub(crate) fn with_placeholders(s: &str, placeholder: &str) -> Result<String, TemplateError> {
    match render_with(s, |_, _| Ok(Value::String(placeholder.into())))? {
        Value::String(s) => Ok(s),
        _ => unreachable!("placeholders are strings"),
    }
}

/// Renders one string to a JSON value (see the module docs for typing rules).
pub fn render_string_value(s: &str, ctx: &TemplateContext) -> Result<Value, TemplateError> {
    render_with(s, |text, r| resolve(text, r, ctx))
}

/// Renders every string inside `v` (object keys are left alone).
pub fn render_value(v: &Value, ctx: &TemplateContext) -> Result<Value, TemplateError> {
    Ok(match v {
        Value::String(s) => render_string_value(s, ctx)?,
        Value::Array(items) => Value::Array(items.iter().map(|i| render_value(i, ctx)).collect::<Result<_, _>>()?),
        Value::Object(map) => Value::Object(
            map.iter().map(|(k, v)| Ok((k.clone(), render_value(v, ctx)?))).collect::<Result<_, TemplateError>>()?,
        ),
        other => other.clone(),
    })
}

/// Why a grant line could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantRenderError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(
        "`${{{expr}}}` {problem}; a value rendered into a grant must never change its shape (an empty resource would grant every resource)"
    )]
    BadValue { expr: String, problem: &'static str },
}

/// Renders a grant line. Every value is written literally (`*` and `\` escaped, see
/// `grants::pattern`), so a value can narrow a grant but never widen it: and a value that is
/// empty, holds whitespace (which would add or move parts of the line) or is a list is refused.
pub fn render_grant(s: &str, ctx: &TemplateContext) -> Result<String, GrantRenderError> {
    let mut bad = None;
    let rendered = render_with(s, |text, r| {
        let problem = match resolve(text, r, ctx)? {
            Value::String(v) if v.is_empty() => "is empty",
            Value::String(v) if v.chars().any(|c| c.is_whitespace() || c.is_control()) => "contains whitespace",
            Value::String(v) => return Ok(Value::String(crate::grants::pattern::escape(&v))),
            Value::Null => "is null",
            Value::Array(_) | Value::Object(_) => "is a list or table, not one value",
            v => return Ok(Value::String(v.to_string())),
        };
        bad.get_or_insert(GrantRenderError::BadValue { expr: text.to_string(), problem });
        Ok(Value::String(String::new()))
    })?;
    if let Some(e) = bad {
        return Err(e);
    }
    Ok(match rendered {
        Value::String(s) => s,
        v => v.to_string(),
    })
}

/// A declared grant line once per element of the lists it refers to: `${with.PATH.*.FIELD}`, or
/// `${with.PATH}` naming a list, becomes one line per element (indices spelled out), so
/// `s3:GetObject ${with.objects}` grants each listed object and nothing in between.
pub fn expand_lists(line: &str, with: &Value) -> Result<Vec<String>, TemplateError> {
    for reference in references(line)? {
        let Reference::With(path) = &reference else { continue };
        let mut cur = with;
        for (i, seg) in path.iter().enumerate() {
            let keys: Option<Vec<String>> = match (seg.as_str(), cur) {
                ("*", Value::Array(items)) => Some((0..items.len()).map(|n| n.to_string()).collect()),
                ("*", Value::Object(map)) => Some(map.keys().cloned().collect()),
                ("*", _) => Some(Vec::new()),
                _ => None,
            };
            let next = child(cur, seg);
            let at_end_list = i + 1 == path.len() && matches!(next, Some(Value::Array(_)));
            let (prefix, keys) = match (keys, next) {
                (Some(keys), _) => (&path[..i], keys),
                (None, Some(Value::Array(items))) if at_end_list => {
                    (&path[..=i], (0..items.len()).map(|n| n.to_string()).collect())
                }
                (None, Some(next)) => {
                    cur = next;
                    continue;
                }
                // Missing: a `*` further on has no elements to stand for; without one, the line
                // is kept (and dropped later as using an absent input).
                (None, None) if path[i..].iter().any(|s| s == "*") => return Ok(Vec::new()),
                (None, None) => break,
            };
            let rest = &path[i + 1..];
            let mut lines = Vec::new();
            for key in keys {
                let concrete: Vec<&str> = prefix
                    .iter()
                    .map(String::as_str)
                    .chain([key.as_str()])
                    .chain(rest.iter().map(String::as_str))
                    .collect();
                let replaced = line.replace(&reference.to_string(), &format!("${{with.{}}}", concrete.join(".")));
                lines.extend(expand_lists(&replaced, with)?);
            }
            return Ok(lines);
        }
    }
    Ok(vec![line.to_string()])
}

/// Renders `s` to text: non-string values become compact JSON.
pub fn render_str(s: &str, ctx: &TemplateContext) -> Result<String, TemplateError> {
    Ok(match render_string_value(s, ctx)? {
        Value::String(s) => s,
        v => v.to_string(),
    })
}

fn resolve(expr: &str, r: &Reference, ctx: &TemplateContext) -> Result<Value, TemplateError> {
    let expr = expr.to_string();
    match r {
        Reference::Param(name) => ctx.params.get(name).cloned().ok_or_else(|| TemplateError::UnknownParam {
            expr,
            name: name.clone(),
            known: ctx.params.keys().cloned().collect(),
        }),
        Reference::StepOutput { step, path } => {
            let outputs = ctx
                .steps
                .get(step)
                .ok_or_else(|| TemplateError::StepNotDone { expr: expr.clone(), step: step.clone() })?;
            walk(outputs, path, &expr, &format!("step `{step}`"), "output")
        }
        Reference::Env(name) => {
            (ctx.env)(name).map(Value::String).ok_or_else(|| TemplateError::EnvNotSet { name: name.clone() })
        }
        Reference::RunId => Ok(Value::String(ctx.run_id.to_string())),
        Reference::With(path) => {
            let with = ctx.with.ok_or_else(|| TemplateError::WithUnavailable { expr: expr.clone() })?;
            walk(with, path, &expr, "the step's `with`", "key")
        }
    }
}

/// One step of a template path into a value: a table's key, or a list's index.
pub(crate) fn child<'v>(value: &'v Value, seg: &str) -> Option<&'v Value> {
    match value {
        Value::Object(m) => m.get(seg),
        Value::Array(a) => seg.parse::<usize>().ok().and_then(|n| a.get(n)),
        _ => None,
    }
}

/// Follows `path` into `root` (object keys, or indices into arrays), naming the first missing part.
fn walk(root: &Value, path: &[String], expr: &str, owner: &str, kind: &'static str) -> Result<Value, TemplateError> {
    let mut cur = root;
    for (i, seg) in path.iter().enumerate() {
        let next = child(cur, seg);
        let Some(next) = next else {
            let available = match cur {
                Value::Object(m) => Some(m.keys().cloned().collect()),
                Value::Array(a) => Some((0..a.len()).map(|n| n.to_string()).collect()),
                _ => None,
            };
            // Top-level misses read "step `x` has no output `y`"; nested ones name the parent.
            let what = if i == 0 { owner.to_string() } else { format!("{owner} {kind} `{}`", path[..i].join(".")) };
            let kind = if i == 0 { kind } else { "field" };
            return Err(TemplateError::MissingField { expr: expr.into(), what, kind, missing: seg.clone(), available });
        };
        cur = next;
    }
    Ok(cur.clone())
}

#[cfg(test)]
#[path = "template_tests.rs"]
mod tests;
