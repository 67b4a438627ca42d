//! Capability grants: what a workflow step may do, checked on every host call.
//!
//! A grant line is `service:Action resource`, IAM style: `ecs:CreateCluster my-cluster`,
//! `s3:PutObject projectjz/ecs-example/*`. `*` in the action or the resource matches any run of
//! characters; a line without a resource grants every resource. Deny by default: a call is allowed
//! only when some grant matches both its action and its resource.

use std::fmt;

/// One parsed grant line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// `service:Action`, possibly with `*` (e.g. `ecs:Describe*`).
    pub action: String,
    /// Resource pattern, `*` when the line names none.
    pub resource: String,
}

/// Why a grant line could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid grant `{line}`: {reason}")]
pub struct GrantSyntaxError {
    pub line: String,
    pub reason: String,
}

impl Grant {
    /// Parses `service:Action [resource]`.
    pub fn parse(line: &str) -> Result<Grant, GrantSyntaxError> {
        let err = |reason: &str| GrantSyntaxError { line: line.to_string(), reason: reason.to_string() };
        let mut parts = line.split_whitespace();
        let action = parts.next().ok_or_else(|| err("it is empty; write `service:Action resource`"))?;
        let resource = parts.next().unwrap_or("*");
        if parts.next().is_some() {
            return Err(err("expected `service:Action resource` with no spaces inside the resource"));
        }
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
        Ok(Grant { action: action.to_string(), resource: resource.to_string() })
    }

    /// True when this grant allows `action` on `resource`.
    pub fn allows(&self, action: &str, resource: &str) -> bool {
        glob_match(&self.action, action) && glob_match(&self.resource, resource)
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.action, self.resource)
    }
}

/// The grants of one step, as the host checks them.
#[derive(Debug, Clone, Default)]
pub struct GrantSet {
    step_id: String,
    grants: Vec<Grant>,
}

/// A call the step's grants do not allow. Its message names the exact line to add.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "step `{step_id}` is not granted `{action}` on `{resource}`; add the grant line \"{action} {resource}\" to the step's `grants` in the workflow file"
)]
pub struct Denied {
    pub step_id: String,
    pub action: String,
    pub resource: String,
}

impl GrantSet {
    pub fn new(step_id: impl Into<String>, grants: Vec<Grant>) -> Self {
        GrantSet { step_id: step_id.into(), grants }
    }

    /// Allows the call or says which grant line is missing.
    pub fn check(&self, action: &str, resource: &str) -> Result<(), Denied> {
        if self.grants.iter().any(|g| g.allows(action, resource)) {
            Ok(())
        } else {
            Err(Denied { step_id: self.step_id.clone(), action: action.to_string(), resource: resource.to_string() })
        }
    }

    /// True when any grant covers some action of `service` (used to decide whether a component may
    /// import that service's interface at all).
    pub fn covers_service(&self, service: &str) -> bool {
        self.grants.iter().any(|g| {
            let (svc, _) = g.action.split_once(':').unwrap_or((&g.action, ""));
            glob_match(svc, service)
        })
    }

    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }
}

/// `*` matches any run of characters (including none); everything else matches itself.
fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_action_and_resource() {
        let g = Grant::parse("ecs:CreateCluster my-cluster").unwrap();
        assert_eq!(g.action, "ecs:CreateCluster");
        assert_eq!(g.resource, "my-cluster");
        assert_eq!(Grant::parse("ecs:Describe*").unwrap().resource, "*");
    }

    #[test]
    fn rejects_malformed_lines_with_a_reason() {
        for bad in ["", "CreateCluster x", "ECS:CreateCluster x", "ecs: x", "ecs:Create-Cluster", "ecs:A b c"] {
            let e = Grant::parse(bad).unwrap_err();
            assert!(!e.reason.is_empty(), "{bad}");
        }
    }

    #[test]
    fn glob_matches_prefixes_and_infixes() {
        assert!(glob_match("projectjz/ecs-example/*", "projectjz/ecs-example/sample.txt"));
        assert!(!glob_match("projectjz/ecs-example/*", "projectjz/other/sample.txt"));
        assert!(glob_match("a*c*e", "abcde"));
        assert!(!glob_match("a*c*e", "abcdf"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("abc", "abcd"));
    }

    #[test]
    fn registry_resources_with_ports_and_globs() {
        let set = GrantSet::new(
            "push",
            [
                "registry:Push 127.0.0.1:5601/ecs-example",
                "registry:Pull 127.0.0.1:5601/team/*",
                "registry:PlainHttp 10.0.0.5:5000",
            ]
            .iter()
            .map(|l| Grant::parse(l).unwrap())
            .collect(),
        );
        assert!(set.check("registry:Push", "127.0.0.1:5601/ecs-example").is_ok());
        assert!(set.check("registry:Push", "127.0.0.1:5601/ecs-example-2").is_err());
        assert!(set.check("registry:Push", "127.0.0.1:5602/ecs-example").is_err());
        assert!(set.check("registry:Pull", "127.0.0.1:5601/team/app").is_ok());
        assert!(set.check("registry:Pull", "127.0.0.1:5601/team/sub/app").is_ok());
        assert!(set.check("registry:Pull", "127.0.0.1:5601/other/app").is_err());
        assert!(set.check("registry:PlainHttp", "10.0.0.5:5000").is_ok());
        let denied = set.check("registry:Push", "127.0.0.1:5601/team/app").unwrap_err();
        assert!(
            denied.to_string().contains("add the grant line \"registry:Push 127.0.0.1:5601/team/app\""),
            "{denied}"
        );
    }

    #[test]
    fn denial_names_the_line_to_add() {
        let set = GrantSet::new("cluster", vec![Grant::parse("ecs:DescribeClusters a").unwrap()]);
        assert!(set.check("ecs:DescribeClusters", "a").is_ok());
        let denied = set.check("ecs:DescribeClusters", "b").unwrap_err();
        assert!(denied.to_string().contains("\"ecs:DescribeClusters b\""), "{denied}");
        assert!(set.covers_service("ecs"));
        assert!(!set.covers_service("iam"));
    }
}
