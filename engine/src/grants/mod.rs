//! Capability grants: what a workflow step may do, checked on every host call.
//!
//! A grant line is `service:Action resource [key=pattern ...]`, IAM style:
//! `ecs:CreateCluster my-cluster`, `s3:PutObject projectjz/ecs-example/*`,
//! `iam:AttachRolePolicy app-role policy=arn:aws:iam::aws:policy/ReadOnlyAccess`. `*` in the
//! action, the resource or a condition matches any run of characters and `\` makes the next
//! character literal; a line without a resource grants every resource. `@created` as a resource or
//! condition pattern matches what this run created (its ledger).
//!
//! Deny by default. A host call states every (action, resource) pair its request implies, with
//! the conditions of each ([`Need`]); it is allowed only when the grants cover all of them, and a
//! denial names every missing line ([`Denied`]).

pub mod calls;
pub mod conditions;
pub mod pattern;
pub mod policy;

use pattern::Pattern;
use std::fmt;

/// One parsed grant line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// `service:Action`, possibly with `*` (e.g. `ecs:Describe*`).
    pub action: String,
    /// Resource pattern as written (escapes kept), `*` when the line names none.
    pub resource: String,
    action_pattern: Pattern,
    resource_pattern: Pattern,
    /// `key=pattern` conditions, in the order written.
    conditions: Vec<(String, Pattern)>,
}

/// Why a grant line could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid grant `{line}`: {reason}")]
pub struct GrantSyntaxError {
    pub line: String,
    pub reason: String,
}

impl Grant {
    /// Parses `service:Action [resource [key=pattern ...]]`.
    pub fn parse(line: &str) -> Result<Grant, GrantSyntaxError> {
        let err = |reason: &str| GrantSyntaxError { line: line.to_string(), reason: reason.to_string() };
        let mut parts = line.split_whitespace();
        let action = parts.next().ok_or_else(|| err("it is empty; write `service:Action resource`"))?;
        let resource = parts.next().unwrap_or("*");
        let Some((service, op)) = action.split_once(':') else {
            return Err(err("the action needs a service prefix, e.g. `ecs:CreateCluster`"));
        };
        let service_ok =
            !service.is_empty() && service.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !service_ok {
            return Err(err("the service must be lowercase, e.g. `ecs`, `iam`, `s3`"));
        }
        if op.is_empty() || !op.chars().all(|c| c.is_ascii_alphanumeric() || c == '*') {
            return Err(err(
                "the operation must be an AWS operation name like `CreateCluster` or a pattern like `Describe*`",
            ));
        }
        if resource.contains('=') && !resource.starts_with("arn:") && resource.split_once('=').is_some_and(is_key) {
            return Err(err("name the resource before any `key=value` condition (`*` for every resource)"));
        }
        let action_pattern = Pattern::parse(action).map_err(err)?;
        let resource_pattern = Pattern::parse(resource).map_err(err)?;
        let known = conditions::keys_for(&action_pattern);
        let mut conditions = Vec::new();
        for part in parts {
            let Some((key, value)) = part.split_once('=').filter(|(k, _)| !k.is_empty()) else {
                return Err(err(&format!(
                    "`{part}` after the resource is not a `key=value` condition (resources contain no spaces)"
                )));
            };
            if !known.iter().any(|k| k.key == key) {
                let valid: Vec<String> = known.iter().map(|k| format!("`{}` ({})", k.key, k.about)).collect();
                let valid = if valid.is_empty() { "none".to_string() } else { valid.join(", ") };
                return Err(err(&format!("`{action}` has no condition `{key}`; its conditions: {valid}")));
            }
            conditions.push((key.to_string(), Pattern::parse(value).map_err(err)?));
        }
        Ok(Grant {
            action: action.to_string(),
            resource: resource.to_string(),
            action_pattern,
            resource_pattern,
            conditions,
        })
    }

    /// True when this grant allows `action` on `resource`, whatever the conditions say.
    pub fn allows(&self, action: &str, resource: &str) -> bool {
        self.action_pattern.matches(action) && self.resource_pattern.matches(resource)
    }

    /// The resource when the line names exactly one (no wildcard), escapes removed.
    pub fn literal_resource(&self) -> Option<String> {
        self.resource_pattern.as_literal()
    }

    fn matches_need(&self, need: &Need, created: &dyn Fn(&str) -> bool) -> bool {
        self.action_pattern.matches(&need.action) && matches_value(&self.resource_pattern, &need.resource, created)
    }

    /// Whether this grant admits `value` for condition `key` of `action`: by its own `key=`
    /// patterns, or by the key's default when it names none.
    fn admits(&self, action: &str, key: &str, value: &str, created: &dyn Fn(&str) -> bool) -> bool {
        let mut named = self.conditions.iter().filter(|(k, _)| k == key).peekable();
        if named.peek().is_some() {
            return named.any(|(_, p)| matches_value(p, value, created));
        }
        let defaults = conditions::lookup(action, key).map_or(&[][..], |k| k.default);
        defaults.iter().any(|d| Pattern::parse(d).is_ok_and(|p| matches_value(&p, value, created)))
    }
}

/// A `key=` looks like a condition key: lowercase letters and `-`.
fn is_key((key, _): (&str, &str)) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '-')
}

fn matches_value(pattern: &Pattern, value: &str, created: &dyn Fn(&str) -> bool) -> bool {
    if pattern.source() == conditions::CREATED { created(value) } else { pattern.matches(value) }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.action, self.resource)?;
        for (key, value) in &self.conditions {
            write!(f, " {key}={value}")?;
        }
        Ok(())
    }
}

/// One (action, resource) pair a call needs, with the condition values it implies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub action: String,
    pub resource: String,
    pub conditions: Vec<(&'static str, String)>,
}

impl Need {
    pub fn new(action: &str, resource: &str) -> Need {
        Need { action: action.to_string(), resource: resource.to_string(), conditions: Vec::new() }
    }

    /// The same need, also requiring condition `key` to admit `value`.
    pub fn with(mut self, key: &'static str, value: impl Into<String>) -> Need {
        debug_assert!(conditions::lookup(&self.action, key).is_some(), "{} has no condition {key}", self.action);
        self.conditions.push((key, value.into()));
        self
    }

    /// The grant line that would allow this need (values escaped, so adding it widens nothing).
    fn line(&self, conditions: &[&(&'static str, String)]) -> String {
        let mut line = format!("{} {}", self.action, pattern::escape(&self.resource));
        for (key, value) in conditions {
            line.push_str(&format!(" {key}={}", pattern::escape(value)));
        }
        line
    }
}

/// Every pair of a call, for `wharf plan`: `a r, b r2 key=v`.
pub fn describe(needs: &[Need]) -> String {
    needs.iter().map(Need::to_string).collect::<Vec<_>>().join(", ")
}

/// The resource part of a call's transcript line (which starts with the first need's action):
/// its resource, then [`detail`], so a reader of `wharf logs` sees the roles passed, the secrets
/// referenced, the policy attached.
pub fn transcript(needs: &[Need]) -> String {
    let Some(first) = needs.first() else { return String::new() };
    let detail = detail(needs);
    if detail.is_empty() {
        pattern::escape(&first.resource)
    } else {
        format!("{} {detail}", pattern::escape(&first.resource))
    }
}

/// What a call needs beyond its first pair's action and resource: that pair's conditions, then
/// every other pair (for `wharf plan`'s lines, which name the action and resource already).
pub fn detail(needs: &[Need]) -> String {
    let Some((first, rest)) = needs.split_first() else { return String::new() };
    let mut parts: Vec<String> = first.conditions.iter().map(|(k, v)| format!("{k}={}", pattern::escape(v))).collect();
    if !rest.is_empty() {
        parts.push(format!("(+ {})", describe(rest)));
    }
    parts.join(" ")
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line(&self.conditions.iter().collect::<Vec<_>>()))
    }
}

/// The grants of one step, as the host checks them.
#[derive(Debug, Clone, Default)]
pub struct GrantSet {
    step_id: String,
    grants: Vec<Grant>,
}

/// A call the step's grants do not allow. Its message names every line to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub step_id: String,
    /// The grant lines that are missing, one per uncovered need or condition value.
    pub missing: Vec<String>,
    /// The condition values (key, value) no grant admits, for callers that name where a value
    /// came from (a policy document's statements).
    pub uncovered: Vec<(&'static str, String)>,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quoted: Vec<String> = self.missing.iter().map(|l| format!("\"{l}\"")).collect();
        match quoted.as_slice() {
            [one] => write!(
                f,
                "step `{}` is not granted `{}`; add the grant line {one} to the step's `grants` in the workflow file",
                self.step_id, self.missing[0]
            ),
            many => write!(
                f,
                "step `{}` is not granted all this call needs; add the grant lines {} to the step's `grants` in the workflow file",
                self.step_id,
                many.join(", ")
            ),
        }
    }
}

impl std::error::Error for Denied {}

impl GrantSet {
    pub fn new(step_id: impl Into<String>, grants: Vec<Grant>) -> Self {
        GrantSet { step_id: step_id.into(), grants }
    }

    /// Allows one plain (action, resource) pair or says which grant line is missing.
    pub fn check(&self, action: &str, resource: &str) -> Result<(), Denied> {
        self.check_all(&[Need::new(action, resource)], &|_| false)
    }

    /// Allows a call only when every need and each of its condition values is covered; `created`
    /// answers `@created` (whether this run's ledger lists an id or name).
    pub fn check_all(&self, needs: &[Need], created: &dyn Fn(&str) -> bool) -> Result<(), Denied> {
        let (mut missing, mut values) = (Vec::new(), Vec::new());
        for need in needs {
            let matching: Vec<&Grant> = self.grants.iter().filter(|g| g.matches_need(need, created)).collect();
            let uncovered: Vec<&(&'static str, String)> = need
                .conditions
                .iter()
                .filter(|(key, value)| !matching.iter().any(|g| g.admits(&need.action, key, value, created)))
                .collect();
            if matching.is_empty() {
                // The whole line is missing; conditions a bare line would admit need not be named.
                let bare = Grant::parse(&need.line(&[])).ok();
                let named: Vec<_> = need
                    .conditions
                    .iter()
                    .filter(|(k, v)| !bare.as_ref().is_some_and(|g| g.admits(&need.action, k, v, created)))
                    .collect();
                missing.push(need.line(&named));
                values.extend(named.into_iter().cloned());
            } else {
                missing.extend(uncovered.iter().map(|c| need.line(&[c])));
                values.extend(uncovered.into_iter().cloned());
            }
        }
        missing.dedup();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Denied { step_id: self.step_id.clone(), missing, uncovered: values })
        }
    }

    /// True when any grant covers some action of `service` (used to decide whether a component may
    /// import that service's interface at all).
    pub fn covers_service(&self, service: &str) -> bool {
        self.grants.iter().any(|g| {
            let (svc, _) = g.action.split_once(':').unwrap_or((&g.action, ""));
            Pattern::parse(svc).is_ok_and(|p| p.matches(service))
        })
    }

    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }
}

#[cfg(test)]
mod tests;
