//! `secrets`: AWS Secrets Manager, with values the host reads itself.
//!
//! A plugin names where a value comes from (an env var or a file, each needing its own grant,
//! sources.rs); the host reads it, sends it to AWS and drops it when the call returns. The plaintext never
//! reaches the plugin, the transcript (`Capabilities::call` logs action, resource and outcome
//! only), errors (they name the variable or file, never the content) or the ledger.

use super::Capabilities;
use crate::grants::Need;
use crate::host::bindings::wharf::plugin::ledger::DeleteOutcome;
use crate::host::bindings::wharf::plugin::secrets::{Host, Secret, SecretValue, ValueSource};
use crate::host::bindings::{ErrorKind, WitError};
use crate::host::sandbox::SandboxState;
use crate::journal::Resource;
use aws_sdk_secretsmanager::types::Tag;
use sources::read_source;
use std::collections::BTreeMap;

mod sources;

impl Host for SandboxState {
    async fn describe_secret(&mut self, name: String) -> Result<Option<Secret>, WitError> {
        let caps = self.caps()?;
        caps.authorize("secretsmanager:DescribeSecret", &name)?;
        let send = caps.aws().secrets().await?.describe_secret().secret_id(&name).send();
        let out = match caps.call("secretsmanager:DescribeSecret", &name, send).await {
            Err(e) if e.code == "ResourceNotFoundException" => return Ok(None),
            other => other?,
        };
        if out.deleted_date().is_some() {
            return Ok(None);
        }
        let secret = to_wit(out.arn(), out.name())?;
        // Created by this step in an attempt that died before the ledger write: record it now.
        let tags = out.tags().iter().filter_map(|t| Some((t.key()?, t.value()?)));
        caps.reclaim_if_ours(tags, "secretsmanager:secret", &secret.arn, Some(&secret.name), BTreeMap::new())?;
        Ok(Some(secret))
    }

    async fn create_secret(
        &mut self,
        name: String,
        description: String,
        value: SecretValue,
        client_request_token: String,
    ) -> Result<Secret, WitError> {
        let caps = self.caps()?;
        caps.authorize_all(&value_needs(Need::new("secretsmanager:CreateSecret", &name), &value))?;
        // Read before planning so `wharf plan` reports a missing variable or file too.
        let plaintext = resolve(caps, &value).await?;
        if caps.plan("secretsmanager:CreateSecret", &name, "value read from its sources") {
            return Ok(planned(caps, name));
        }
        let tags = caps.tags().into_iter().map(|(k, v)| Tag::builder().key(k).value(v).build());
        let send = caps
            .aws()
            .secrets()
            .await?
            .create_secret()
            .name(&name)
            .set_description(Some(description).filter(|d| !d.is_empty()))
            .secret_string(plaintext)
            .client_request_token(&client_request_token)
            .set_tags(Some(tags.collect()))
            .send();
        let out = match caps.call("secretsmanager:CreateSecret", &name, send).await {
            Err(e) if e.code == "ResourceExistsException" => {
                return Err(WitError {
                    message: format!(
                        "secret {name} already exists and was not created by this call; adopt it by storing a new version with put-secret-value"
                    ),
                    ..e
                });
            }
            other => other?,
        };
        let secret = to_wit(out.arn(), out.name())?;
        caps.record_created("secretsmanager:secret", &secret.arn, Some(&secret.name), BTreeMap::new())?;
        Ok(secret)
    }

    async fn put_secret_value(
        &mut self,
        name: String,
        value: SecretValue,
        client_request_token: String,
    ) -> Result<Secret, WitError> {
        let caps = self.caps()?;
        caps.authorize_all(&value_needs(Need::new("secretsmanager:PutSecretValue", &name), &value))?;
        let plaintext = resolve(caps, &value).await?;
        if caps.plan("secretsmanager:PutSecretValue", &name, "new version read from its sources") {
            return Ok(planned(caps, name));
        }
        let send = caps
            .aws()
            .secrets()
            .await?
            .put_secret_value()
            .secret_id(&name)
            .secret_string(plaintext)
            .client_request_token(&client_request_token)
            .send();
        let out = caps.call("secretsmanager:PutSecretValue", &name, send).await?;
        to_wit(out.arn(), out.name())
    }
}

/// Deletes a `secretsmanager:secret`: recoverable for `recovery_days` when given, else at once.
pub(crate) async fn delete(
    caps: &Capabilities,
    resource: &Resource,
    recovery_days: Option<u32>,
) -> Result<DeleteOutcome, WitError> {
    let request = caps.aws().secrets().await?.delete_secret().secret_id(&resource.id);
    let send = match recovery_days {
        Some(days) => request.recovery_window_in_days(i64::from(days)).send(),
        None => request.force_delete_without_recovery(true).send(),
    };
    match caps.call("secretsmanager:DeleteSecret", &resource.id, send).await {
        Ok(_) => Ok(DeleteOutcome::Deleted),
        Err(e) if e.code == "ResourceNotFoundException" => Ok(DeleteOutcome::AlreadyGone),
        // Already scheduled for deletion by an earlier teardown: as good as gone.
        Err(e) if e.code == "InvalidRequestException" && e.message.contains("marked for deletion") => {
            Ok(DeleteOutcome::AlreadyGone)
        }
        Err(e) => Err(e),
    }
}

/// A call storing `value`: `call` itself, and reading each of the value's sources.
fn value_needs(call: Need, value: &SecretValue) -> Vec<Need> {
    let sources: Vec<&ValueSource> = match value {
        SecretValue::Plain(source) => vec![source],
        SecretValue::JsonObject(fields) => fields.iter().map(|(_, source)| source).collect(),
    };
    let reads = sources.into_iter().map(|source| match source {
        ValueSource::Env(var) => Need::new("env:Read", var),
        ValueSource::File(path) => Need::new("file:Read", path),
    });
    std::iter::once(call).chain(reads).collect()
}

/// The secret string `value` describes, read from its sources (each checked against the grants).
async fn resolve(caps: &Capabilities, value: &SecretValue) -> Result<String, WitError> {
    match value {
        SecretValue::Plain(source) => read_source(caps, source).await,
        SecretValue::JsonObject(fields) => {
            let mut object = serde_json::Map::new();
            for (key, source) in fields {
                let field = read_source(caps, source).await?;
                if object.insert(key.clone(), serde_json::Value::String(field)).is_some() {
                    return Err(invalid("DuplicateKey", format!("the secret's JSON object names `{key}` twice")));
                }
            }
            Ok(serde_json::Value::Object(object).to_string())
        }
    }
}

/// The plan's stand-in: ARN-shaped so later steps' validation of it passes in the plan too.
fn planned(caps: &Capabilities, name: String) -> Secret {
    let region = caps.aws().region().unwrap_or_else(|| "planned".into());
    Secret { arn: format!("arn:aws:secretsmanager:{region}:planned:secret:{name}"), name }
}

fn to_wit(arn: Option<&str>, name: Option<&str>) -> Result<Secret, WitError> {
    let field = |v: Option<&str>, f| {
        v.map(str::to_string).ok_or_else(|| {
            WitError::new(ErrorKind::Retryable, "IncompleteResponse", format!("Secrets Manager returned no `{f}`"))
        })
    };
    Ok(Secret { arn: field(arn, "ARN")?, name: field(name, "Name")? })
}

fn invalid(code: &str, message: String) -> WitError {
    WitError::new(ErrorKind::InvalidInput, code, message)
}
