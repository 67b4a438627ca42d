//! Second pass: meaning. Turns the raw, spanned document into the model, reporting every semantic
//! problem (names, references, plugins, durations, grants, cycles) with its location.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use super::deps::{self, Edge};
use super::diagnostic::{Reporter, did_you_mean, suggest};
use super::inputs;
use super::raw::{RawParam, RawState, RawStep, RawWorkflow, Sp};
use super::template::{self, Reference, TemplateError};
use super::{AwsSettings, Param, PluginRef, RetryPolicy, StateSettings, Step, Workflow, values};
use crate::grants::Grant;

const DEFAULT_CONCURRENCY: usize = 4;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
const DEFAULT_MEMORY: u64 = 128 * values::MIB;

/// What a template in a given place may refer to.
struct Scope<'a> {
    params: &'a [&'a str],
    /// `None` where step outputs cannot exist yet (`[aws]` is resolved before any step runs).
    steps: Option<&'a [&'a str]>,
    current: Option<&'a str>,
}

pub(crate) fn build(rep: &mut Reporter, path: &Path, raw: RawWorkflow, builtins: &[&str]) -> Workflow {
    let name = match raw.name {
        Some(n) if !values::is_workflow_name(&n.v) => {
            let hint = format!("use lowercase letters, digits and `-`, e.g. `{}`", values::slug(&n.v));
            rep.error(n.span, format!("invalid workflow name `{}`", n.v), Some(hint));
            n.v
        }
        Some(n) => n.v,
        None => String::new(),
    };
    let params = params(rep, raw.params);
    let param_names: Vec<&str> = params.keys().map(String::as_str).collect();

    let aws_scope = Scope { params: &param_names, steps: None, current: None };
    for s in [&raw.aws_region, &raw.aws_profile].into_iter().flatten() {
        check_templates(rep, s, &aws_scope, &mut Vec::new());
    }
    let concurrency = match raw.concurrency {
        Some(c) if !(1..=64).contains(&c.v) => {
            let hint = "it is how many steps may run at once (default 4)";
            rep.error(c.span, format!("`concurrency` must be between 1 and 64, not {}", c.v), Some(hint.into()));
            DEFAULT_CONCURRENCY
        }
        Some(c) => c.v as usize,
        None => DEFAULT_CONCURRENCY,
    };

    if raw.steps.is_empty() && !raw.steps_malformed {
        let span = raw.steps_key.unwrap_or(0..0);
        rep.error(span, "the workflow has no steps", Some("add a step: `[[steps]]` with `id` and `plugin`".into()));
    }
    let ids: Vec<Option<&str>> = raw.steps.iter().map(|s| s.id.as_ref().map(|i| i.v.as_str())).collect();
    check_ids(rep, &raw.steps);
    let known: Vec<&str> = ids.iter().flatten().copied().collect();
    let dir = path.parent().unwrap_or(Path::new(""));

    let mut steps = Vec::new();
    let mut edges = Vec::new();
    for rs in &raw.steps {
        let scope = Scope { params: &param_names, steps: Some(&known), current: rs.id.as_ref().map(|i| i.v.as_str()) };
        let (step, step_edges) = step(rep, rs, &scope, dir, builtins);
        steps.push(step);
        edges.push(step_edges);
    }
    deps::check_cycles(rep, &ids, &edges);

    let aws = AwsSettings { region: raw.aws_region.map(|s| s.v), profile: raw.aws_profile.map(|s| s.v) };
    let state = raw.state.and_then(|s| state(rep, s));
    Workflow {
        name,
        description: raw.description,
        path: path.to_path_buf(),
        source: rep.source.to_string(),
        params,
        aws,
        concurrency,
        state,
        steps,
    }
}

/// `[state]`: a backend name and, for S3, a bucket. No templates: `resume` and `status` must find the run
/// through `--state` / `WHARF_STATE` alone, so the value has to be one a user can copy there.
fn state(rep: &mut Reporter, raw: RawState) -> Option<StateSettings> {
    let s3_keys = [&raw.bucket, &raw.prefix, &raw.region, &raw.endpoint];
    for v in [&raw.backend].into_iter().chain(s3_keys).flatten() {
        if v.v.contains("${") {
            let hint = "write it literally; to choose the state per environment use --state or WHARF_STATE";
            rep.error(v.span.clone(), "templates cannot be used in [state]", Some(hint.into()));
            return None;
        }
    }
    match raw.backend.as_ref().map(|b| b.v.as_str()) {
        Some("s3") => {
            let Some(bucket) = raw.bucket.filter(|b| !b.v.is_empty()) else {
                let hint = "add `bucket = \"my-team-wharf-state\"` (and usually `prefix`)";
                rep.error(raw.header, "[state] with `backend = \"s3\"` needs a `bucket`", Some(hint.into()));
                return None;
            };
            if !bucket.v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')) {
                let hint = "bucket names use lowercase letters, digits, `-` and `.`; put the path in `prefix`";
                rep.error(bucket.span, format!("`{}` is not a valid bucket name", bucket.v), Some(hint.into()));
                return None;
            }
            Some(StateSettings::S3 {
                bucket: bucket.v,
                prefix: raw.prefix.map(|p| p.v).unwrap_or_default(),
                region: raw.region.map(|r| r.v),
                endpoint: raw.endpoint.map(|e| e.v),
            })
        }
        Some("sled") => {
            if let Some(extra) = s3_keys.into_iter().flatten().next() {
                let hint = "these keys are for `backend = \"s3\"`";
                rep.error(
                    extra.span.clone(),
                    "the sled backend takes no bucket, prefix, region or endpoint",
                    Some(hint.into()),
                );
                return None;
            }
            Some(StateSettings::Sled)
        }
        Some(other) => {
            let span = raw.backend.as_ref().map(|b| b.span.clone()).unwrap_or(raw.header);
            let hint = Some("use `sled` (local, the default) or `s3` (shared)".to_string());
            rep.error(span, format!("unknown state backend `{other}`"), hint);
            None
        }
        None => {
            let hint = "add `backend = \"s3\"` (or `\"sled\"`)";
            rep.error(raw.header, "[state] needs a `backend`", Some(hint.into()));
            None
        }
    }
}

fn params(rep: &mut Reporter, raw: Vec<RawParam>) -> BTreeMap<String, Param> {
    let mut out = BTreeMap::new();
    for p in raw {
        if !values::is_param_name(&p.name.v) {
            let hint = "param names use letters, digits, `_` and `-` (so `${params.NAME}` can refer to them)";
            rep.error(p.name.span.clone(), format!("invalid param name `{}`", p.name.v), Some(hint.into()));
        }
        let ty = p.ty.and_then(|t| values::param_type(&t.v).map_err(|(m, h)| rep.error(t.span, m, h)).ok());
        if let (Some(ty), Some(d)) = (ty, &p.default)
            && !values::matches_type(ty, &d.v)
        {
            // A quoted number or boolean is the usual mistake: show it unquoted.
            let fix = d.v.as_str().filter(|s| match ty {
                super::ParamType::Integer => s.parse::<i64>().is_ok(),
                super::ParamType::Boolean => *s == "true" || *s == "false",
                super::ParamType::String => false,
            });
            let hint = fix.map(|s| format!("write `default = {s}` (without quotes)"));
            let msg = format!(
                "default of param `{}` must be {}, not {}",
                p.name.v,
                values::type_name(ty),
                values::json_kind(&d.v)
            );
            rep.error(d.span.clone(), msg, hint);
        }
        let param = Param {
            ty: ty.unwrap_or(super::ParamType::String),
            default: p.default.map(|d| d.v),
            description: p.description,
        };
        out.insert(p.name.v, param);
    }
    out
}

fn check_ids(rep: &mut Reporter, steps: &[RawStep]) {
    let mut first: HashMap<&str, usize> = HashMap::new();
    for id in steps.iter().filter_map(|s| s.id.as_ref()) {
        if !values::is_step_id(&id.v) {
            let hint = format!(
                "step ids start with a lowercase letter or digit, then use lowercase letters, digits, `-` and `_`, e.g. `{}`",
                values::slug(&id.v)
            );
            rep.error(id.span.clone(), format!("invalid step id `{}`", id.v), Some(hint));
        }
        if let Some(&at) = first.get(id.v.as_str()) {
            let line = rep.source[..at].matches('\n').count() + 1;
            let hint = format!("step `{}` is first defined on line {line}; step ids must be unique", id.v);
            rep.error(id.span.clone(), format!("duplicate step id `{}`", id.v), Some(hint));
        } else {
            first.insert(&id.v, id.span.start);
        }
    }
}

fn step(rep: &mut Reporter, rs: &RawStep, scope: &Scope, dir: &Path, builtins: &[&str]) -> (Step, Vec<Edge>) {
    let label = &rs.label;
    // These are needed before any value exists (to build the graph and load components), so a
    // template there is a mistake; say so instead of "unknown plugin `${params.p}`".
    let literal_only = rs
        .plugin
        .iter()
        .map(|p| ("plugin", p))
        .chain(rs.timeout.iter().map(|t| ("timeout", t)))
        .chain(rs.memory.iter().map(|m| ("memory", m)));
    let mut templated = Vec::new();
    for (key, v) in literal_only.chain(rs.needs.iter().map(|n| ("needs", n))) {
        if template::references(&v.v).is_ok_and(|r| !r.is_empty()) {
            let hint = "templates work in `with`, `grants` and [aws]; write this value literally";
            rep.error(v.span.clone(), format!("templates are not allowed in `{key}`"), Some(hint.into()));
            templated.push(v.span.start);
        }
    }
    let literal = |v: &&Sp<String>| !templated.contains(&v.span.start);
    let plugin = rs
        .plugin
        .as_ref()
        .filter(literal)
        .and_then(|p| plugin(rep, p, dir, builtins))
        .unwrap_or(PluginRef::Builtin(String::new()));

    let mut edges: Vec<Edge> = Vec::new();
    for n in rs.needs.iter().filter(literal) {
        if Some(n.v.as_str()) == scope.current {
            rep.error(
                n.span.clone(),
                format!("{label} needs itself"),
                Some(format!("remove `{}` from its `needs`", n.v)),
            );
        } else if !scope.steps.unwrap_or_default().contains(&n.v.as_str()) {
            let hint = suggest(&n.v, scope.steps.unwrap_or_default(), "steps in this file are");
            rep.error(n.span.clone(), format!("{label} needs unknown step `{}`", n.v), hint);
        } else {
            edges.push(Edge { to: n.v.clone(), span: n.span.clone(), via: None });
        }
    }
    for s in &rs.with_strings {
        check_templates(rep, s, scope, &mut edges);
    }
    let builtin = match &plugin {
        PluginRef::Builtin(name) if !name.is_empty() => Some(name.as_str()),
        _ => None,
    };
    inputs::check(rep, rs, builtin);
    for g in &rs.grants {
        if check_templates(rep, g, scope, &mut edges) {
            check_grant(rep, g);
        }
    }
    check_env_grants(rep, rs);
    // Explicit entries come first, so a cycle is reported on the `needs` line when there is one.
    let mut seen = std::collections::HashSet::new();
    edges.retain(|e| seen.insert(e.to.clone()));
    let mut needs: Vec<String> = edges.iter().map(|e| e.to.clone()).collect();
    needs.sort();

    let timeout = rs
        .timeout
        .as_ref()
        .filter(literal)
        .and_then(|t| report(rep, t, values::timeout(&t.v)))
        .unwrap_or(DEFAULT_TIMEOUT);
    let memory_limit =
        rs.memory.as_ref().filter(literal).and_then(|m| report(rep, m, values::memory(&m.v))).unwrap_or(DEFAULT_MEMORY);
    let retry = retry(rep, rs);
    let mut step = Step {
        id: rs.id.as_ref().map(|i| i.v.clone()).unwrap_or_default(),
        plugin,
        needs,
        with: rs.with.clone(),
        grants: rs.grants.iter().map(|g| g.v.clone()).collect(),
        timeout,
        retry,
        memory_limit,
        definition_hash: String::new(),
    };
    step.definition_hash = super::hash::definition_hash(&step);
    (step, edges)
}

/// Reports `r`'s problem at `at`'s span.
fn report<T, U>(rep: &mut Reporter, at: &Sp<U>, r: Result<T, values::Problem>) -> Option<T> {
    r.map_err(|(m, h)| rep.error(at.span.clone(), m, h)).ok()
}

fn retry(rep: &mut Reporter, rs: &RawStep) -> RetryPolicy {
    let mut policy = RetryPolicy::default();
    let Some(r) = &rs.retry else { return policy };
    if let Some(m) = &r.max_attempts {
        match u32::try_from(m.v) {
            Ok(n) if (1..=20).contains(&n) => policy.max_attempts = n,
            _ => rep.error(
                m.span.clone(),
                format!("`max_attempts` must be between 1 and 20, not {}", m.v),
                Some("1 means no retries".into()),
            ),
        }
    }
    let backoff = |rep: &mut Reporter, key: &str, v: &Option<Sp<String>>| {
        v.as_ref().and_then(|s| report(rep, s, values::duration(key, &s.v)))
    };
    if let Some(d) = backoff(rep, "initial_backoff", &r.initial_backoff) {
        policy.initial_backoff = d;
    }
    if let Some(d) = backoff(rep, "max_backoff", &r.max_backoff) {
        policy.max_backoff = d;
    }
    if policy.initial_backoff > policy.max_backoff {
        let span =
            r.initial_backoff.as_ref().or(r.max_backoff.as_ref()).map(|s| s.span.clone()).unwrap_or(rs.header.clone());
        let msg = format!(
            "`initial_backoff` ({}) is longer than `max_backoff` ({})",
            humantime::format_duration(policy.initial_backoff),
            humantime::format_duration(policy.max_backoff)
        );
        rep.error(span, msg, Some("the backoff doubles from `initial_backoff` up to `max_backoff`".into()));
    }
    policy
}

fn plugin(rep: &mut Reporter, p: &Sp<String>, dir: &Path, builtins: &[&str]) -> Option<PluginRef> {
    let name = p.v.as_str();
    if name.contains('/') || name.ends_with(".wasm") {
        let resolved = dir.join(name);
        if !resolved.is_file() {
            let mut hint = format!(
                "looked for `{}`; plugin paths are relative to the workflow file's directory",
                resolved.display()
            );
            if name.contains("wasm32-wasip2") {
                hint.push_str(
                    "; build the plugin first: `cargo build --target wasm32-wasip2 --release` (or `wharf plugin build`)",
                );
            }
            rep.error(p.span.clone(), format!("plugin file `{name}` does not exist"), Some(hint));
            return None;
        }
        return Some(PluginRef::Path(resolved));
    }
    if builtins.contains(&name) {
        return Some(PluginRef::Builtin(name.to_string()));
    }
    let hint = match did_you_mean(name, builtins.iter().copied()) {
        Some(b) => format!("did you mean `{b}`?"),
        None if builtins.is_empty() => {
            "there are no builtin plugins; give a path to a .wasm component, e.g. `./plugins/step.wasm`".into()
        }
        None => format!(
            "builtin plugins are: {}; or give a path to a .wasm component, e.g. `./plugins/step.wasm`",
            builtins.join(", ")
        ),
    };
    rep.error(p.span.clone(), format!("unknown builtin plugin `{name}`"), Some(hint));
    None
}

fn check_grant(rep: &mut Reporter, g: &Sp<String>) {
    let action = g.v.split_whitespace().next().unwrap_or("");
    if action.contains("${") {
        let hint = "write the action literally, e.g. `ecs:CreateCluster ${params.cluster}`";
        rep.error(
            g.span.clone(),
            format!("grant `{}`: templates are only allowed in the resource part", g.v),
            Some(hint.into()),
        );
        return;
    }
    let Ok(line) = template::with_placeholders(&g.v, "x") else { return };
    if let Err(e) = Grant::parse(&line) {
        let msg = format!("invalid grant `{}`: {}", g.v, e.reason);
        rep.error(
            g.span.clone(),
            msg,
            Some("grant lines look like `ecs:CreateCluster my-cluster`, `s3:GetObject bucket/*` or `iam:AttachRolePolicy role policy=ARN` (docs/grants.md)".into()),
        );
    }
}

/// `${env.NAME}` in `with` hands that variable to the plugin, so the step needs `env:Read NAME`
/// (scheduler/step.rs refuses the run too). A grant line with a template might name any
/// variable: it counts as `*` here and is checked once the run has rendered it.
fn check_env_grants(rep: &mut Reporter, rs: &RawStep) {
    let grants: Vec<Grant> = rs
        .grants
        .iter()
        .filter_map(|g| template::with_placeholders(&g.v, "*").ok().and_then(|line| Grant::parse(&line).ok()))
        .collect();
    for s in &rs.with_strings {
        for r in template::references(&s.v).unwrap_or_default() {
            let Reference::Env(name) = &r else { continue };
            if !grants.iter().any(|g| g.allows("env:Read", name)) {
                let msg =
                    format!("{} hands environment variable `{name}` to its plugin (`{r}`) without a grant", rs.label);
                let hint = format!("add the grant line \"env:Read {name}\" to the step's `grants`");
                rep.error(narrow(rep.source, s, &r.to_string()), msg, Some(hint));
            }
        }
    }
}

/// Checks the templates in `s` against `scope`, adding implied dependencies to `edges`.
/// Returns false when the string is not even a well-formed template.
fn check_templates(rep: &mut Reporter, s: &Sp<String>, scope: &Scope, edges: &mut Vec<Edge>) -> bool {
    let refs = match template::references(&s.v) {
        Ok(r) => r,
        Err(e) => {
            let hint = match &e {
                TemplateError::UnknownRoot { root, .. } => {
                    Some(match did_you_mean(root, ["params", "steps", "env", "run"]) {
                        Some(r) => format!("did you mean `{r}`?"),
                        None => "templates start with `params.`, `steps.`, `env.` or `run.`".to_string(),
                    })
                }
                TemplateError::Unclosed { .. } => Some("templates look like `${params.NAME}`".to_string()),
                _ => Some(
                    "templates are `${params.NAME}`, `${steps.ID.outputs.NAME}`, `${env.NAME}` or `${run.id}`"
                        .to_string(),
                ),
            };
            let needle = match &e {
                TemplateError::Unclosed { column } => {
                    s.v.char_indices().nth(column - 1).map_or("", |(i, _)| &s.v[i..]).to_string()
                }
                TemplateError::Malformed { expr, .. } | TemplateError::UnknownRoot { expr, .. } => {
                    format!("${{{expr}}}")
                }
                _ => String::new(),
            };
            rep.error(narrow(rep.source, s, &needle), e.to_string(), hint);
            return false;
        }
    };
    for r in refs {
        let span = narrow(rep.source, s, &r.to_string());
        match &r {
            Reference::Param(n) if !scope.params.contains(&n.as_str()) => {
                let hint = suggest(n, scope.params, "declared params are")
                    .or_else(|| Some(format!("declare it as [params.{n}] with a `type`")));
                rep.error(span.clone(), format!("unknown param `{n}` in `{r}`"), hint);
            }
            Reference::StepOutput { step, .. } => match scope.steps {
                None => {
                    let hint = "[aws] is resolved before any step runs; use `${params.*}` or `${env.*}`";
                    rep.error(span.clone(), format!("`{r}` cannot be used in [aws]"), Some(hint.into()));
                }
                Some(_) if Some(step.as_str()) == scope.current => {
                    let hint = "a step can only use the outputs of steps that run before it";
                    rep.error(
                        span.clone(),
                        format!("step `{step}` refers to its own outputs in `{r}`"),
                        Some(hint.into()),
                    );
                }
                Some(ids) if !ids.contains(&step.as_str()) => {
                    rep.error(
                        span.clone(),
                        format!("`{r}` refers to unknown step `{step}`"),
                        suggest(step, ids, "steps in this file are"),
                    );
                }
                Some(_) => edges.push(Edge { to: step.clone(), span: span.clone(), via: Some(r.to_string()) }),
            },
            Reference::With(_) => {
                let hint = "`${with.NAME}` only works in the grants a plugin declares; refer to the value itself, e.g. `${params.NAME}`";
                rep.error(
                    span.clone(),
                    format!("`{r}`: `${{with.*}}` is not allowed in workflow files"),
                    Some(hint.into()),
                );
            }
            _ => {}
        }
    }
    true
}

/// The part of `s`'s span that holds `needle`, when the TOML string is written without escapes
/// (so value offsets equal source offsets); otherwise the whole string.
fn narrow(source: &str, s: &Sp<String>, needle: &str) -> std::ops::Range<usize> {
    let raw = source.get(s.span.clone()).unwrap_or("");
    let plain = raw.len() == s.v.len() + 2 && raw.get(1..raw.len() - 1) == Some(s.v.as_str());
    match s.v.find(needle) {
        Some(pos) if plain && !needle.is_empty() => {
            let start = s.span.start + 1 + pos;
            start..start + needle.len()
        }
        _ => s.span.clone(),
    }
}
