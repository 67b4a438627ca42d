//! `iam`: roles, inline policies and managed-policy attachments for the step plugins.
//!
//! Only what a call actually creates goes into the ledger: a role from `create-role`, an inline
//! policy the first time `put-role-policy` writes it, an attachment `attach-role-policy` added.
//! Replacing an existing inline policy or re-attaching is not a creation, so teardown never
//! removes policies from roles the run merely adopted.

use super::Capabilities;
use crate::grants::{self, Denied, Need, policy};
use crate::host::bindings::wharf::plugin::iam::{Host, Role};
use crate::host::bindings::wharf::plugin::ledger::DeleteOutcome;
use crate::host::bindings::{ErrorKind, WitError};
use crate::host::sandbox::SandboxState;
use crate::journal::Resource;
use aws_sdk_iam::types::{self as iam, Tag};
use std::collections::BTreeMap;

impl Host for SandboxState {
    async fn get_role(&mut self, name: String) -> Result<Option<Role>, WitError> {
        let caps = self.caps()?;
        caps.authorize("iam:GetRole", &name)?;
        let send = caps.aws().iam().await?.get_role().role_name(&name).send();
        let Some(out) = not_found_as_none(caps.call("iam:GetRole", &name, send).await)? else {
            return Ok(None);
        };
        let role = out.role.ok_or_else(|| super::incomplete_response("GetRole", "role"))?;
        // A role this very step created in an attempt that died before the ledger write: record it
        // now (the ledger deduplicates), so teardown still knows it is ours.
        let tags = role.tags().iter().map(|t| (t.key(), t.value()));
        caps.reclaim_if_ours(tags, "iam:role", role.arn(), Some(role.role_name()), BTreeMap::new())?;
        Ok(Some(to_wit(&role)))
    }

    async fn create_role(&mut self, name: String, trust_policy: String, description: String) -> Result<Role, WitError> {
        let caps = self.caps()?;
        let principals = policy::trusted_principals(&trust_policy).map_err(invalid_document)?;
        let needs = principals
            .iter()
            .fold(Need::new("iam:CreateRole", &name), |need, (_, principal)| need.with("trust", principal.as_str()));
        caps.authorize_explained(std::slice::from_ref(&needs), |d| name_statements(d, &principals, "trusted in"))?;
        if caps.plan("iam:CreateRole", &name, &grants::detail(std::slice::from_ref(&needs))) {
            // ARN-shaped so later steps' validation of it passes in the plan too.
            return Ok(Role { arn: format!("arn:aws:iam::planned:role/{name}"), name, trust_policy });
        }
        let tags = caps.tags().into_iter().map(|(k, v)| Tag::builder().key(k).value(v).build());
        let tags = tags.collect::<Result<Vec<_>, _>>().map_err(|e| build_error("CreateRole", e))?;
        let send = caps
            .aws()
            .iam()
            .await?
            .create_role()
            .role_name(&name)
            .assume_role_policy_document(&trust_policy)
            .set_description(Some(description).filter(|d| !d.is_empty()))
            .set_tags(Some(tags))
            .send();
        let out = caps.call("iam:CreateRole", &grants::transcript(std::slice::from_ref(&needs)), send).await?;
        let role = out.role.ok_or_else(|| super::incomplete_response("CreateRole", "role"))?;
        caps.record_created("iam:role", role.arn(), Some(role.role_name()), BTreeMap::new())?;
        Ok(to_wit(&role))
    }

    async fn get_role_policy(&mut self, role: String, policy_name: String) -> Result<Option<String>, WitError> {
        let caps = self.caps()?;
        caps.authorize("iam:GetRolePolicy", &role)?;
        let document = role_policy(caps, &role, &policy_name).await?;
        // On a role this run created, an existing policy was put by an attempt that died before
        // its ledger write (inline policies carry no tags to tell otherwise).
        if document.is_some() && role_created_by_this_run(caps, &role)? {
            record_role_policy(caps, &role, &policy_name)?;
        }
        Ok(document)
    }

    async fn put_role_policy(&mut self, role: String, policy_name: String, document: String) -> Result<(), WitError> {
        let caps = self.caps()?;
        // The ceiling: every action/resource the document allows must be granted as `allow=`.
        let pairs = policy::allowed_pairs(&document).map_err(invalid_document)?;
        let need =
            pairs.iter().fold(Need::new("iam:PutRolePolicy", &role), |need, (_, p)| need.with("allow", p.as_str()));
        caps.authorize_explained(std::slice::from_ref(&need), |d| name_statements(d, &pairs, "exceeded by"))?;
        let detail = grants::detail(std::slice::from_ref(&need));
        if caps.plan("iam:PutRolePolicy", &role, &format!("inline policy {policy_name}: {detail}")) {
            return Ok(());
        }
        // Part of this call, not a separate permission: whether the put creates or replaces.
        let existed = role_policy(caps, &role, &policy_name).await?.is_some();
        let send = caps
            .aws()
            .iam()
            .await?
            .put_role_policy()
            .role_name(&role)
            .policy_name(&policy_name)
            .policy_document(&document)
            .send();
        let shown = grants::transcript(std::slice::from_ref(&need));
        caps.call("iam:PutRolePolicy", &format!("{shown} (policy {policy_name})"), send).await?;
        // A policy that "existed" on a role this run created was put by an attempt that died
        // before its ledger write: it is this run's too.
        if !existed || role_created_by_this_run(caps, &role)? {
            record_role_policy(caps, &role, &policy_name)?;
        }
        Ok(())
    }

    async fn attached_policies(&mut self, role: String) -> Result<Vec<String>, WitError> {
        let caps = self.caps()?;
        caps.authorize("iam:ListAttachedRolePolicies", &role)?;
        let arns = attached(caps, &role).await?;
        // As for inline policies: on a role this run created, attachments are this run's.
        if role_created_by_this_run(caps, &role)? {
            for arn in &arns {
                record_attachment(caps, &role, arn)?;
            }
        }
        Ok(arns)
    }

    async fn attach_role_policy(&mut self, role: String, policy_arn: String) -> Result<(), WitError> {
        let caps = self.caps()?;
        caps.authorize_all(&[Need::new("iam:AttachRolePolicy", &role).with("policy", policy_arn.as_str())])?;
        if caps.plan("iam:AttachRolePolicy", &role, &format!("policy={policy_arn}")) {
            return Ok(());
        }
        let already = attached(caps, &role).await?.contains(&policy_arn);
        if already && !role_created_by_this_run(caps, &role)? {
            return Ok(());
        }
        if !already {
            let send = caps.aws().iam().await?.attach_role_policy().role_name(&role).policy_arn(&policy_arn).send();
            caps.call("iam:AttachRolePolicy", &format!("{role} policy={policy_arn}"), send).await?;
        }
        record_attachment(caps, &role, &policy_arn)
    }
}

/// Deletes an `iam:*` ledger resource. A role still carrying policies is `Pending`: its inline
/// and attached policies are ledger entries of their own, deleted first by a teardown in reverse
/// creation order.
pub(crate) async fn delete(
    caps: &Capabilities,
    resource: &Resource,
    _secret_recovery_days: Option<u32>,
) -> Result<DeleteOutcome, WitError> {
    let client = caps.aws().iam().await?;
    let attr = |key: &str| {
        resource.attributes.get(key).cloned().ok_or_else(|| {
            WitError::new(
                ErrorKind::Permanent,
                "LedgerEntryIncomplete",
                format!("{} {} has no `{key}` attribute", resource.kind, resource.id),
            )
        })
    };
    // A role deleted and re-created by someone else since is not this run's: leave it and its
    // policies alone.
    let role = resource.attributes.get("role").cloned().or_else(|| resource.name.clone()).unwrap_or_default();
    if let Some(owner) = role_owner(caps, &role).await? {
        caps.check_ours(&format!("role {role}"), &owner)?;
    }
    let result = match resource.kind.as_str() {
        "iam:role-policy" => {
            let (role, policy) = (attr("role")?, attr("policy")?);
            let send = client.delete_role_policy().role_name(&role).policy_name(&policy).send();
            caps.call("iam:DeleteRolePolicy", &role, send).await.map(drop)
        }
        "iam:attached-policy" => {
            let (role, arn) = (attr("role")?, attr("policy_arn")?);
            let send = client.detach_role_policy().role_name(&role).policy_arn(&arn).send();
            caps.call("iam:DetachRolePolicy", &role, send).await.map(drop)
        }
        "iam:role" => {
            let name = resource.name.clone().unwrap_or_else(|| resource.id.rsplit('/').next().unwrap_or("").into());
            let send = client.delete_role().role_name(&name).send();
            match caps.call("iam:DeleteRole", &name, send).await {
                Err(e) if e.code == "DeleteConflict" => {
                    // Teardown removes this run's policies before its roles, so what is left was
                    // added by someone else: waiting will not help.
                    let mut others = attached(caps, &name).await?;
                    others.extend(inline_policies(caps, &name).await?);
                    return Err(WitError::new(
                        ErrorKind::Permanent,
                        "DeleteConflict",
                        format!(
                            "role {name} has policies this run did not add: {}; remove them, then run teardown again",
                            others.join(", ")
                        ),
                    ));
                }
                other => other.map(drop),
            }
        }
        other => {
            return Err(WitError::new(
                ErrorKind::Permanent,
                "UnknownKind",
                format!("the iam capability cannot delete {other}"),
            ));
        }
    };
    match result {
        Ok(()) => Ok(DeleteOutcome::Deleted),
        Err(e) if e.code == "NoSuchEntity" => Ok(DeleteOutcome::AlreadyGone),
        Err(e) => Err(e),
    }
}

/// The `wharf:run` tag of the role: `None` when it does not exist, `Some(None)` when it exists
/// without one.
async fn role_owner(caps: &Capabilities, role: &str) -> Result<Option<Option<String>>, WitError> {
    let send = caps.aws().iam().await?.get_role().role_name(role).send();
    let Some(out) = not_found_as_none(caps.call("iam:GetRole", role, send).await)? else { return Ok(None) };
    let tags = out.role.map(|r| r.tags.unwrap_or_default()).unwrap_or_default();
    Ok(Some(tags.into_iter().find(|t| t.key() == super::RUN_TAG).map(|t| t.value().to_string())))
}

fn record_role_policy(caps: &Capabilities, role: &str, policy: &str) -> Result<(), WitError> {
    let attributes = BTreeMap::from([("role".into(), role.to_string()), ("policy".into(), policy.to_string())]);
    caps.record_created("iam:role-policy", &format!("{role}/{policy}"), None, attributes)
}

fn record_attachment(caps: &Capabilities, role: &str, policy_arn: &str) -> Result<(), WitError> {
    let attributes = BTreeMap::from([("role".into(), role.to_string()), ("policy_arn".into(), policy_arn.to_string())]);
    caps.record_created("iam:attached-policy", &format!("{role}|{policy_arn}"), None, attributes)
}

/// Whether this run's ledger lists the role as created by it.
fn role_created_by_this_run(caps: &Capabilities, role: &str) -> Result<bool, WitError> {
    let ledger = caps.journal().resources().map_err(|e| {
        WitError::new(ErrorKind::Retryable, "StateReadFailed", format!("could not read the run ledger: {e}"))
    })?;
    Ok(ledger.iter().any(|r| r.kind == "iam:role" && r.name.as_deref() == Some(role)))
}

async fn inline_policies(caps: &Capabilities, role: &str) -> Result<Vec<String>, WitError> {
    let send = caps.aws().iam().await?.list_role_policies().role_name(role).send();
    Ok(caps.call("iam:ListRolePolicies", role, send).await?.policy_names().to_vec())
}

async fn role_policy(caps: &Capabilities, role: &str, policy_name: &str) -> Result<Option<String>, WitError> {
    let send = caps.aws().iam().await?.get_role_policy().role_name(role).policy_name(policy_name).send();
    let out = not_found_as_none(caps.call("iam:GetRolePolicy", role, send).await)?;
    Ok(out.map(|o| url_decode(o.policy_document())))
}

async fn attached(caps: &Capabilities, role: &str) -> Result<Vec<String>, WitError> {
    let client = caps.aws().iam().await?;
    let (mut arns, mut marker) = (Vec::new(), None);
    loop {
        let send = client.list_attached_role_policies().role_name(role).set_marker(marker).send();
        let out = caps.call("iam:ListAttachedRolePolicies", role, send).await?;
        arns.extend(out.attached_policies().iter().filter_map(|p| p.policy_arn().map(str::to_string)));
        marker = out.marker().filter(|_| out.is_truncated()).map(str::to_string);
        if marker.is_none() {
            return Ok(arns);
        }
    }
}

fn not_found_as_none<T>(result: Result<T, WitError>) -> Result<Option<T>, WitError> {
    match result {
        Ok(out) => Ok(Some(out)),
        Err(e) if e.code == "NoSuchEntity" => Ok(None),
        Err(e) => Err(e),
    }
}

fn to_wit(role: &iam::Role) -> Role {
    Role {
        arn: role.arn().to_string(),
        name: role.role_name().to_string(),
        trust_policy: url_decode(role.assume_role_policy_document().unwrap_or_default()),
    }
}

/// IAM returns policy documents URL-encoded (RFC 3986, so `+` is a literal plus). Malformed
/// escapes are kept as they are: a document that was not encoded comes back unchanged.
fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        // Both digits checked: `from_str_radix` alone would accept a sign ("%+1").
        let hex = bytes.get(i + 1..i + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit));
        let hex = hex.and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

/// A trust or inline policy document wharf cannot read, or one no grant could bound.
fn invalid_document(reason: String) -> WitError {
    WitError::new(ErrorKind::InvalidInput, "InvalidPolicyDocument", reason)
}

/// A denial of a policy document names the statements that exceed the grants, not just the
/// values: `statements` are (label, condition value) pairs as the document yielded them.
fn name_statements(denied: &Denied, statements: &[(String, String)], how: &str) -> String {
    let mut offending: Vec<String> = statements
        .iter()
        .filter(|(_, value)| denied.uncovered.iter().any(|(_, refused)| refused == value))
        .map(|(label, value)| format!("{label} ({value})"))
        .collect();
    offending.dedup();
    if offending.is_empty() { String::new() } else { format!("; {how} {}", offending.join(", ")) }
}

fn build_error(operation: &str, e: impl std::fmt::Display) -> WitError {
    WitError::new(ErrorKind::Permanent, "ConstructionFailure", format!("{operation} could not be built: {e}"))
}

#[cfg(test)]
mod tests {
    use super::url_decode;

    #[test]
    fn decodes_iam_policy_documents() {
        assert_eq!(url_decode("%7B%22a%22%3A%20%22b%2Bc%22%7D"), r#"{"a": "b+c"}"#);
        assert_eq!(url_decode(r#"{"a":"b"}"#), r#"{"a":"b"}"#);
        assert_eq!(url_decode("100%"), "100%");
        assert_eq!(url_decode("%+1"), "%+1");
        assert_eq!(url_decode("%zz%e2%82%ac"), "%zz€");
    }
}
