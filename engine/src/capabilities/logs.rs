//! `logs`: CloudWatch Logs log groups (where `awslogs` task containers write), and their deletion
//! for teardown.

use super::Capabilities;
use crate::host::bindings::wharf::plugin::ledger::DeleteOutcome;
use crate::host::bindings::wharf::plugin::logs::Host;
use crate::host::bindings::{ErrorKind, WitError};
use crate::host::sandbox::SandboxState;
use crate::journal::Resource;
use aws_sdk_cloudwatchlogs::types::LogGroup;
use std::collections::{BTreeMap, HashMap};

/// The only retention periods CloudWatch Logs accepts.
const RETENTION_DAYS: &[u32] =
    &[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];

impl Host for SandboxState {
    async fn ensure_log_group(&mut self, name: String, retention_days: Option<u32>) -> Result<bool, WitError> {
        let caps: &Capabilities = self.caps()?;
        caps.authorize("logs:CreateLogGroup", &name)?;
        if let Some(days) = retention_days.filter(|d| !RETENTION_DAYS.contains(d)) {
            let message = format!("log retention of {days} days is not allowed; use one of {RETENTION_DAYS:?}");
            return Err(WitError::new(ErrorKind::InvalidInput, "InvalidRetention", message));
        }
        let existing = find(caps, &name).await?;
        if existing.is_some() {
            // Made by this step in an attempt that died before its ledger write?
            let tags = group_tags(caps, &name).await?.unwrap_or_default();
            let pairs = tags.iter().map(|(k, v)| (k.as_str(), v.as_str()));
            caps.reclaim_if_ours(pairs, "logs:log-group", &name, Some(&name), BTreeMap::new())?;
        }
        let created = existing.is_none();
        if created {
            if caps.plan("logs:CreateLogGroup", &name, "") {
                return Ok(true);
            }
            let tags: HashMap<String, String> = caps.tags().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            let send = caps.aws().logs().await?.create_log_group().log_group_name(&name).set_tags(Some(tags)).send();
            match caps.call("logs:CreateLogGroup", &name, send).await {
                // Created by someone else between the lookup and now: adopt it, do not record it.
                Err(e) if e.code == "ResourceAlreadyExistsException" => return Ok(false),
                other => other.map(drop)?,
            }
            caps.record_created("logs:log-group", &name, Some(&name), BTreeMap::new())?;
        }
        let current = existing.as_ref().and_then(|g| g.retention_in_days());
        if let Some(days) = retention_days.filter(|d| current != Some(*d as i32)) {
            // Changing a group's retention is its own grant: a group this run created is
            // `@created` (recorded above), one that existed before must be named.
            caps.authorize("logs:PutRetentionPolicy", &name)?;
            if caps.plan("logs:PutRetentionPolicy", &name, &format!("{days} days")) {
                return Ok(created);
            }
            let send =
                caps.aws().logs().await?.put_retention_policy().log_group_name(&name).retention_in_days(days as i32);
            caps.call("logs:PutRetentionPolicy", &name, send.send()).await?;
        }
        Ok(created)
    }
}

/// The log group named exactly `name`. The API only looks up by prefix, so other groups that
/// start with the name are paged past.
async fn find(caps: &Capabilities, name: &str) -> Result<Option<LogGroup>, WitError> {
    let logs = caps.aws().logs().await?;
    let mut token = None;
    loop {
        let send = logs.describe_log_groups().log_group_name_prefix(name).set_next_token(token).send();
        let out = caps.call("logs:DescribeLogGroups", name, send).await?;
        if let Some(group) = out.log_groups().iter().find(|g| g.log_group_name() == Some(name)) {
            return Ok(Some(group.clone()));
        }
        match out.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_string()),
            _ => return Ok(None),
        }
    }
}

/// The group's tags, or none when it does not exist. (ListTagsLogGroup is deprecated in favour of
/// ListTagsForResource but still served, by AWS and moto.)
#[allow(deprecated)]
async fn group_tags(caps: &Capabilities, name: &str) -> Result<Option<HashMap<String, String>>, WitError> {
    let send = caps.aws().logs().await?.list_tags_log_group().log_group_name(name).send();
    match caps.call("logs:ListTagsLogGroup", name, send).await {
        Ok(out) => Ok(Some(out.tags.unwrap_or_default())),
        Err(e) if e.code == "ResourceNotFoundException" => Ok(None),
        Err(e) => Err(e),
    }
}

/// Deletes a `logs:log-group` ledger resource (its id is the group name).
pub(crate) async fn delete(
    caps: &Capabilities,
    resource: &Resource,
    _secret_recovery_days: Option<u32>,
) -> Result<DeleteOutcome, WitError> {
    let name = resource.id.as_str();
    let Some(tags) = group_tags(caps, name).await? else { return Ok(DeleteOutcome::AlreadyGone) };
    caps.check_ours(&format!("log group {name}"), &tags.get(super::RUN_TAG).cloned())?;
    let send = caps.aws().logs().await?.delete_log_group().log_group_name(name).send();
    match caps.call("logs:DeleteLogGroup", name, send).await {
        Ok(_) => Ok(DeleteOutcome::Deleted),
        Err(e) if e.code == "ResourceNotFoundException" => Ok(DeleteOutcome::AlreadyGone),
        Err(e) => Err(e),
    }
}
