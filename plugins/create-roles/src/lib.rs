//! `create-roles`: the two IAM roles an ECS service needs, least privilege.
//!
//! - task role (what the containers' code may do): trusts `ecs-tasks.amazonaws.com`, inline policy
//!   `wharf-s3` with `s3:PutObject` / `s3:GetObject` on exactly the listed `bucket/key-pattern`s;
//! - execution role (what the ECS agent may do): trusts `ecs-tasks.amazonaws.com`, has the managed
//!   `AmazonECSTaskExecutionRolePolicy`, and with `registry_secret_arn` an inline policy
//!   `wharf-registry-secret` allowing `secretsmanager:GetSecretValue` on that one secret.
//!
//! Existing roles are adopted only when their trust policy means the same as ours; inline policies
//! are rewritten when their meaning differs. Re-running is a no-op. The two roles are made at
//! the same time, as two parts of the step.

mod policy;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use wharf_plugin_sdk::parallel::{self, Part};
use wharf_plugin_sdk::{Context, Error, Step, iam, log};

/// Name of the task role's inline S3 policy.
const S3_POLICY: &str = "wharf-s3";
/// Name of the execution role's inline policy for the registry credentials.
const REGISTRY_POLICY: &str = "wharf-registry-secret";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// Name of the role the containers run as.
    pub task_role: String,
    /// Name of the role the ECS agent uses to pull images and write logs.
    pub execution_role: String,
    /// `bucket/key-pattern`s the task may write (`s3:PutObject`).
    #[serde(default)]
    pub s3_write: Vec<String>,
    /// `bucket/key-pattern`s the task may read (`s3:GetObject`).
    #[serde(default)]
    pub s3_read: Vec<String>,
    /// ARN of the private registry credentials secret the execution role may read.
    #[serde(default)]
    pub registry_secret_arn: Option<String>,
}

#[derive(Serialize, Debug)]
pub struct Output {
    pub task_role_arn: String,
    pub task_role_name: String,
    pub execution_role_arn: String,
    pub execution_role_name: String,
}

pub struct CreateRoles;

impl Step for CreateRoles {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "create-roles";
    const DESCRIPTION: &'static str =
        "Creates (or adopts) the ECS task and execution roles with least-privilege S3 and secret access.";
    const GRANTS: &'static [&'static str] = &[
        "iam:GetRole ${with.task_role}",
        "iam:CreateRole ${with.task_role}",
        "iam:GetRolePolicy ${with.task_role}",
        // The ceiling of the inline policies: exactly the objects and the secret of the inputs.
        "iam:PutRolePolicy ${with.task_role} allow=s3:PutObject@arn:aws:s3:::${with.s3_write}",
        "iam:PutRolePolicy ${with.task_role} allow=s3:GetObject@arn:aws:s3:::${with.s3_read}",
        "iam:GetRole ${with.execution_role}",
        "iam:CreateRole ${with.execution_role}",
        "iam:GetRolePolicy ${with.execution_role}",
        "iam:PutRolePolicy ${with.execution_role} allow=secretsmanager:GetSecretValue@${with.registry_secret_arn}",
        "iam:ListAttachedRolePolicies ${with.execution_role}",
        "iam:AttachRolePolicy ${with.execution_role} policy=arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy",
    ];

    fn run(_ctx: &Context, input: Input) -> Result<Output, Error> {
        for (field, name) in [("task_role", &input.task_role), ("execution_role", &input.execution_role)] {
            validate_role_name(field, name).map_err(Error::invalid_input)?;
        }
        // Build every document before touching IAM, so bad input changes nothing.
        let s3 = policy::s3_policy(&input.s3_write, &input.s3_read).map_err(Error::invalid_input)?;
        let registry = input.registry_secret_arn.as_deref().map(policy::registry_secret_policy).transpose();
        let registry = registry.map_err(Error::invalid_input)?;

        // The two roles do not depend on each other: both at once, as parts of this step.
        let [task, execution] = parallel::run_each([
            Part::new(TASK_ROLE_PART, &RoleIn { name: input.task_role.clone(), policy: s3 })?,
            Part::new(EXECUTION_ROLE_PART, &RoleIn { name: input.execution_role.clone(), policy: registry })?,
        ]);
        let (task, execution): (RoleOut, RoleOut) = (parallel::output(task)?, parallel::output(execution)?);

        Ok(Output {
            task_role_arn: task.arn,
            task_role_name: task.name,
            execution_role_arn: execution.arn,
            execution_role_name: execution.name,
        })
    }

    fn run_part(_ctx: &Context, part: &str, input: &str) -> Result<String, Error> {
        let role = parallel::input(part, input)?;
        let out = match part {
            TASK_ROLE_PART => task_role(role)?,
            EXECUTION_ROLE_PART => execution_role(role)?,
            other => return Err(parallel::unknown(Self::NAME, other)),
        };
        parallel::encode(part, &out)
    }
}

/// The role and whether it was created now; an existing role is adopted only if it trusts
/// exactly ECS tasks.
/// The input of a role part: the role and the inline policy it gets (`None`: none).
#[derive(Serialize, Deserialize)]
struct RoleIn {
    name: String,
    policy: Option<Value>,
}

#[derive(Serialize, Deserialize)]
struct RoleOut {
    arn: String,
    name: String,
}

const TASK_ROLE_PART: &str = "task-role";
const EXECUTION_ROLE_PART: &str = "execution-role";

/// The task role: what the containers may do (S3 here).
fn task_role(input: RoleIn) -> Result<RoleOut, Error> {
    // A role created just now has no policies: no need to look (and in `wharf plan` it does
    // not exist to be looked at).
    let (task, is_new) = ensure_role(&input.name, "ECS task role (created by wharf)")?;
    match &input.policy {
        Some(doc) => ensure_inline_policy(&task.name, S3_POLICY, doc, is_new)?,
        None => log::info(&format!("{}: no s3_write/s3_read, so no S3 access", task.name)),
    }
    Ok(RoleOut { arn: task.arn, name: task.name })
}

/// The task execution role: what ECS may do for the task (pull the image, write logs, read the
/// registry secret).
fn execution_role(input: RoleIn) -> Result<RoleOut, Error> {
    let (execution, is_new) = ensure_role(&input.name, "ECS task execution role (created by wharf)")?;
    let attached = if is_new { Vec::new() } else { iam::attached_policies(&execution.name)? };
    if attached.iter().any(|arn| arn == policy::EXECUTION_MANAGED_POLICY) {
        log::info(&format!("{}: AmazonECSTaskExecutionRolePolicy already attached", execution.name));
    } else {
        iam::attach_role_policy(&execution.name, policy::EXECUTION_MANAGED_POLICY)?;
        log::info(&format!("{}: attached AmazonECSTaskExecutionRolePolicy", execution.name));
    }
    if let Some(doc) = &input.policy {
        ensure_inline_policy(&execution.name, REGISTRY_POLICY, doc, is_new)?;
    }
    Ok(RoleOut { arn: execution.arn, name: execution.name })
}

fn ensure_role(name: &str, description: &str) -> Result<(iam::Role, bool), Error> {
    let trust = policy::trust_policy();
    if let Some(existing) = iam::get_role(name)? {
        return Ok((adopt(existing, &trust)?, false));
    }
    match iam::create_role(name, &trust.to_string(), description) {
        Ok(role) => {
            log::info(&format!("created role {}", role.arn));
            Ok((role, true))
        }
        // Created concurrently, or by an earlier attempt IAM did not show us yet.
        Err(e) if e.code == "EntityAlreadyExists" => match iam::get_role(name)? {
            Some(existing) => Ok((adopt(existing, &trust)?, false)),
            None => Err(Error::retryable("EntityAlreadyExists", format!("role {name} exists but cannot be read yet"))),
        },
        Err(e) => Err(e.into()),
    }
}

fn adopt(existing: iam::Role, trust: &Value) -> Result<iam::Role, Error> {
    let actual: Value = serde_json::from_str(&existing.trust_policy).unwrap_or(Value::Null);
    if !policy::same_meaning(&actual, trust) {
        return Err(Error::permanent(
            "TrustPolicyMismatch",
            format!(
                "role {} already exists with trust policy {}, but wharf needs one that trusts only {}: {}. \
                 Choose another role name, or change the role's trust policy in IAM",
                existing.name,
                existing.trust_policy,
                policy::ECS_TASKS,
                trust
            ),
        ));
    }
    log::info(&format!("role {} already exists with the right trust policy; adopting it", existing.arn));
    Ok(existing)
}

/// Writes the inline policy unless the role already has one of that name meaning the same.
fn ensure_inline_policy(role: &str, name: &str, document: &Value, role_is_new: bool) -> Result<(), Error> {
    let current = if role_is_new { None } else { iam::get_role_policy(role, name)? };
    let current = current.as_deref().map(|doc| serde_json::from_str::<Value>(doc).unwrap_or(Value::Null));
    match current {
        Some(current) if policy::same_meaning(&current, document) => {
            log::info(&format!("{role}: inline policy {name} is up to date"));
        }
        Some(_) => {
            iam::put_role_policy(role, name, &document.to_string())?;
            log::info(&format!("{role}: inline policy {name} differed; replaced it"));
        }
        None => {
            iam::put_role_policy(role, name, &document.to_string())?;
            log::info(&format!("{role}: added inline policy {name}"));
        }
    }
    Ok(())
}

/// IAM's rule for role names: 1-64 of letters, digits and `+=,.@_-`.
fn validate_role_name(field: &str, name: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
    if ok { Ok(()) } else { Err(format!("`{field}` must be 1-64 letters, digits or +=,.@_- (got `{name}`)")) }
}

wharf_plugin_sdk::export_step!(CreateRoles);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_follow_iam_rules() {
        assert!(validate_role_name("task_role", "ecs-example-task-role").is_ok());
        assert!(validate_role_name("task_role", "").is_err());
        assert!(validate_role_name("task_role", "has space").is_err());
        assert!(validate_role_name("task_role", &"x".repeat(65)).unwrap_err().contains("task_role"));
    }

    #[test]
    fn grants_are_scoped_to_the_role_inputs() {
        for grant in CreateRoles::GRANTS {
            assert!(grant.contains("${with.task_role}") || grant.contains("${with.execution_role}"), "{grant}");
        }
    }
}
