//! Running one step: render its inputs and grants, then attempts with retries until it succeeds,
//! fails for good, or runs out of attempts. Every attempt is journaled before it starts, and durable
//! before its first side effect.

use super::RunContext;
use super::backoff;
use crate::capabilities::{Capabilities, STATE_WRITE_FAILED};
use crate::grants::{Grant, GrantSet};
use crate::host::bindings::{ErrorKind, StepContext};
use crate::host::sandbox::SandboxState;
use crate::host::{AttemptError, AttemptLimits};
use crate::journal::{AttemptRecord, AttemptStatus, EventKind, StepError};
use crate::workflow::template::{
    self, Reference, TemplateContext, expand_lists, references, render_grant, render_value,
};
use crate::workflow::{PluginRef, Step, paths};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How a step ended in this drive.
pub enum StepOutcome {
    Succeeded(Value),
    Failed(StepError),
}

/// The idempotency key of a step in a run: stable across attempts and resumes, 32 hex chars so
/// it fits every AWS client token (ECS allows 36, Secrets Manager needs 32 to 64).
pub fn idempotency_key(run_id: &str, step_id: &str) -> String {
    let digest = Sha256::digest(format!("wharf/{run_id}/{step_id}").as_bytes());
    hex::encode(&digest[..16])
}

/// Where attempt numbering resumes for a step.
#[derive(Debug, Clone, Copy, Default)]
pub struct PriorAttempts {
    pub count: u32,
    /// The last attempt started but never finished: the process died during it.
    pub in_doubt: bool,
}

pub async fn run_step(
    ctx: Arc<RunContext>,
    step_id: String,
    prior: PriorAttempts,
    outputs: BTreeMap<String, Value>,
) -> StepOutcome {
    match run_step_inner(&ctx, &step_id, prior, &outputs).await {
        Ok(outcome) => outcome,
        Err(error) => {
            let _ = ctx.events.emit(Some(&step_id), EventKind::StepFailed, error.message.clone());
            StepOutcome::Failed(error)
        }
    }
}

async fn run_step_inner(
    ctx: &Arc<RunContext>,
    step_id: &str,
    prior: PriorAttempts,
    outputs: &BTreeMap<String, Value>,
) -> Result<StepOutcome, StepError> {
    let step = ctx.workflow.step(step_id).expect("scheduled steps exist");
    let plugin = ctx.plugins[step_id].clone();
    let (inputs, grants, declared) = render(ctx, step, &plugin.info.grants, outputs)?;
    plugin.check_imports(step_id, &grants, &declared).map_err(|e| StepError {
        kind: "denied".into(),
        code: "CapabilityNotGranted".into(),
        message: e.to_string(),
    })?;

    let dirs = read_only_dirs(&grants, &workflow_dir(ctx))?;
    let input_json = serde_json::to_string(&inputs).expect("JSON values serialize");
    let input_hash = hex::encode(Sha256::digest(input_json.as_bytes()));
    let limits = AttemptLimits { memory_bytes: step.memory_limit, timeout: step.timeout };
    let mut in_doubt = prior.in_doubt;

    // Attempts that failed on a transient AWS error only (see `TRANSIENT_RETRIES`).
    let mut transient_failures = 0;
    for try_no in 1.. {
        let attempt = prior.count + try_no;
        let mut record = AttemptRecord {
            step_id: step_id.to_string(),
            attempt,
            status: AttemptStatus::Started,
            started_at_ms: crate::now_ms(),
            finished_at_ms: None,
            input_hash: input_hash.clone(),
            outputs: None,
            error: None,
            in_doubt,
        };
        // Made durable before the attempt's first side effect (`Capabilities::durable_before_effects`),
        // not here: after a crash this attempt is then known to be in doubt, and a step whose
        // plugin calls nothing needs no durability point of its own (`flush_soon` still writes it
        // within 50 ms, for `wharf status`).
        ctx.journal.put_attempt(&record).map_err(state_error)?;
        ctx.flush_soon();
        let note = if in_doubt { " (in doubt: an earlier attempt was interrupted)" } else { "" };
        let _ = ctx.events.emit(
            Some(step_id),
            EventKind::StepStarted,
            format!("attempt {attempt} of {} {}{note}", plugin.info.name, plugin.info.version),
        );

        let caps = Capabilities::new(&ctx.run_id, step_id, grants.clone(), ctx.events.clone(), ctx.aws.clone())
            .with_base_dir(workflow_dir(ctx))
            .with_mode(ctx.mode)
            .with_layer_index(ctx.layers.clone());
        let context = StepContext {
            run_id: ctx.run_id.clone(),
            step_id: step_id.to_string(),
            attempt,
            idempotency_key: idempotency_key(&ctx.run_id, step_id),
            in_doubt,
            planning: ctx.mode == crate::capabilities::CallMode::Plan,
            inputs: input_json.clone(),
        };
        let sandbox = SandboxState::with_dirs(Some(caps), limits.memory_bytes, &dirs)
            .map_err(|e| invalid("DirectoryGrant", e.to_string()))?;
        let result = plugin.run_attempt(sandbox, &limits, context).await;
        record.finished_at_ms = Some(crate::now_ms());

        let (error, retryable) = match result {
            Ok(Ok(raw)) => match parse_outputs(&raw) {
                Ok(outputs) => {
                    record.status = AttemptStatus::Succeeded;
                    record.outputs = Some(outputs.clone());
                    ctx.journal.put_attempt(&record).map_err(state_error)?;
                    ctx.flush_soon();
                    let _ = ctx.events.emit(
                        Some(step_id),
                        EventKind::StepSucceeded,
                        format!("attempt {attempt} succeeded"),
                    );
                    // Durable at the next durability point, which comes before anything depends
                    // on it: a dependent step's first side effect, or the run's end.
                    return Ok(StepOutcome::Succeeded(outputs));
                }
                Err(e) => (e, false),
            },
            Ok(Err(wit)) => {
                let retryable = wit.kind == ErrorKind::Retryable;
                (StepError { kind: wit.kind.as_str().into(), code: wit.code, message: wit.message }, retryable)
            }
            Err(e) => (attempt_error(&e), false),
        };
        record.status = AttemptStatus::Failed;
        record.error = Some(error.clone());
        ctx.journal.put_attempt(&record).map_err(state_error)?;
        ctx.flush_soon();
        let _ = ctx.events.emit(
            Some(step_id),
            EventKind::StepFailed,
            format!("attempt {attempt}: {}: {}", error.code, error.message),
        );

        if error.code == STATE_WRITE_FAILED {
            // The journal cannot be made durable (disk full): no attempt may act until it can,
            // and the run's end reports why.
            return Ok(StepOutcome::Failed(error));
        }
        if retryable
            && crate::capabilities::aws::is_transient_code(&error.code)
            && transient_failures < TRANSIENT_RETRIES
        {
            transient_failures += 1;
        } else if !retryable || try_no - transient_failures >= step.retry.max_attempts {
            return Ok(StepOutcome::Failed(error));
        }
        let wait = backoff::delay(&step.retry, try_no);
        let _ = ctx.events.emit(Some(step_id), EventKind::StepRetrying, format!("retrying in {} ms", wait.as_millis()));
        tokio::time::sleep(wait).await;
        in_doubt = false;
    }
    unreachable!("the loop returns on its last attempt")
}

/// Attempts per step that may fail on a transient AWS error (5xx, throttling, timeout, dropped
/// connection) without counting against `retry.max_attempts`. Creates that cannot be resent
/// blindly are not retried by the SDK (capabilities/aws.rs `NOT_BLINDLY_REPEATABLE`): the step's
/// next attempt, which finds before it creates, is their retry, so it gets the budget the SDK's
/// own retries would have had. At a 20% fault rate (tests/e2e/faults.rs) a step with ten creates
/// otherwise ran out of its 3 attempts.
const TRANSIENT_RETRIES: u32 = 10;

/// Renders the step's inputs and grants (kept out of the async code: the template context is
/// not `Send`).
fn render(
    ctx: &RunContext,
    step: &Step,
    declared: &[String],
    outputs: &BTreeMap<String, Value>,
) -> Result<(Value, GrantSet, Vec<String>), StepError> {
    let env = |name: &str| std::env::var(name).ok();
    let templates = TemplateContext { params: &ctx.params, steps: outputs, run_id: &ctx.run_id, env: &env, with: None };
    let granted = workflow_grants(step, &templates)?;
    env_granted(step, &granted)?;
    let inputs = render_value(&step.with, &templates).map_err(|e| invalid("TemplateError", e.to_string()))?;
    let builtin = matches!(step.plugin, PluginRef::Builtin(_));
    let declared = declared_grants(declared, &templates, &inputs, builtin)?;
    let mut lines = if builtin { parse_grants(&declared)? } else { Vec::new() };
    lines.extend(granted.grants().iter().cloned());
    Ok((inputs, GrantSet::new(&step.id, lines), declared))
}

/// `${env.NAME}` in `with` hands the variable to the plugin, so it needs what the host's own read
/// of it needs (`secrets`): `env:Read NAME` among the grants the workflow writes for the step
/// (a plugin's declared grants do not count). `wharf validate` reports a missing one earlier.
fn env_granted(step: &Step, granted: &GrantSet) -> Result<(), StepError> {
    for name in template::env_names(&step.with) {
        granted.check("env:Read", &name).map_err(|denied| StepError {
            kind: "denied".into(),
            code: "GrantMissing".into(),
            message: format!("`${{env.{name}}}` in `with`: {denied}"),
        })?;
    }
    Ok(())
}

/// The plugin's declared grant lines rendered with the step's inputs (lines about optional
/// inputs the step does not use are dropped). Built-in plugins are granted these; for custom
/// plugins they are only suggestions, so a line that does not render is skipped.
fn declared_grants(
    declared: &[String],
    templates: &TemplateContext,
    inputs: &Value,
    builtin: bool,
) -> Result<Vec<String>, StepError> {
    let with_inputs = TemplateContext { with: Some(inputs), ..*templates };
    let mut lines = Vec::new();
    for declared_line in declared {
        let expanded = match expand_lists(declared_line, inputs) {
            Ok(expanded) => expanded,
            Err(e) if builtin => {
                return Err(invalid("TemplateError", format!("declared grant `{declared_line}`: {e}")));
            }
            Err(_) => continue,
        };
        for line in expanded.iter().filter(|line| uses_only_given_inputs(line, inputs)) {
            match render_grant(line, &with_inputs) {
                Ok(rendered) => lines.push(rendered),
                Err(e) if builtin => return Err(invalid("TemplateError", format!("declared grant `{line}`: {e}"))),
                Err(_) => {}
            }
        }
    }
    Ok(lines)
}

/// The grants the workflow lists for the step, rendered.
fn workflow_grants(step: &Step, templates: &TemplateContext) -> Result<GrantSet, StepError> {
    let mut lines = Vec::new();
    for line in &step.grants {
        lines
            .push(render_grant(line, templates).map_err(|e| invalid("TemplateError", format!("grant `{line}`: {e}")))?);
    }
    Ok(GrantSet::new(&step.id, parse_grants(&lines)?))
}

fn parse_grants(lines: &[String]) -> Result<Vec<Grant>, StepError> {
    lines.iter().map(|l| Grant::parse(l).map_err(|e| invalid("InvalidGrant", e.to_string()))).collect()
}

/// The workflow file's directory: relative paths in grants and inputs are relative to it.
fn workflow_dir(ctx: &RunContext) -> PathBuf {
    let dir = ctx.workflow.path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// Directories granted read-only with `fs:Read <dir>` lines: the guest sees each at the path the
/// grant names, and nothing else of the file system.
fn read_only_dirs(grants: &GrantSet, base: &Path) -> Result<Vec<(PathBuf, String)>, StepError> {
    let mut dirs = Vec::new();
    for grant in grants.grants().iter().filter(|g| g.action == "fs:Read") {
        if grant.resource.contains('*') {
            return Err(invalid(
                "DirectoryGrant",
                format!("`fs:Read {}`: name one directory, without `*`", grant.resource),
            ));
        }
        // Only what sits inside the workflow file's directory, symlinks followed (workflow/paths.rs).
        let host = paths::resolve_inside(base, &grant.resource).map_err(|e| {
            let hint = "name a directory inside the workflow file's directory, relative to it";
            invalid("DirectoryGrant", format!("`fs:Read {}`: {e}; {hint}", grant.resource))
        })?;
        if !host.is_dir() {
            return Err(invalid(
                "DirectoryGrant",
                format!("`fs:Read {}`: {} is not a directory", grant.resource, host.display()),
            ));
        }
        dirs.push((host, grant.resource.clone()));
    }
    Ok(dirs)
}

/// False when `line` refers to a `${with.NAME}` input that is absent or null.
fn uses_only_given_inputs(line: &str, inputs: &Value) -> bool {
    let Ok(refs) = references(line) else { return true };
    refs.iter().all(|r| match r {
        // List elements are named by index (`expand_lists` spells them out).
        Reference::With(path) => {
            path.iter().try_fold(inputs, |v, key| template::child(v, key)).is_some_and(|v| !v.is_null())
        }
        _ => true,
    })
}

fn parse_outputs(raw: &str) -> Result<Value, StepError> {
    match serde_json::from_str::<Value>(raw) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(permanent("InvalidOutputs", "the plugin's outputs are not a JSON object".into())),
        Err(e) => Err(permanent("InvalidOutputs", format!("the plugin's outputs are not JSON: {e}"))),
    }
}

fn attempt_error(e: &AttemptError) -> StepError {
    let (kind, code) = match e {
        AttemptError::Timeout(_) => ("timeout", "Timeout"),
        AttemptError::MemoryLimit { .. } => ("trap", "MemoryLimitExceeded"),
        AttemptError::Trap { .. } => ("trap", "PluginCrashed"),
        AttemptError::Instantiate(_) => ("trap", "InstantiationFailed"),
        AttemptError::OutputTooLarge { .. } => ("permanent", "OutputTooLarge"),
        AttemptError::TransferTooLarge => ("permanent", "TransferTooLarge"),
    };
    StepError { kind: kind.into(), code: code.into(), message: e.to_string() }
}

fn invalid(code: &str, message: String) -> StepError {
    StepError { kind: "invalid-input".into(), code: code.into(), message }
}

fn permanent(code: &str, message: String) -> StepError {
    StepError { kind: "permanent".into(), code: code.into(), message }
}

fn state_error(e: crate::journal::JournalError) -> StepError {
    StepError {
        kind: "state".into(),
        code: STATE_WRITE_FAILED.into(),
        message: format!("the run journal could not be written: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A built-in's declared lines become one grant per listed input, and none for absent ones.
    #[test]
    fn declared_grants_render_one_line_per_list_element() {
        let (params, steps) = (BTreeMap::new(), BTreeMap::new());
        let env = |_: &str| None;
        let templates = TemplateContext { params: &params, steps: &steps, run_id: "r", env: &env, with: None };
        let inputs = json!({ "role": "task", "s3_write": ["b/one", "b/*"], "containers": [{ "name": "c" }] });
        let declared = [
            "iam:PutRolePolicy ${with.role} allow=s3:PutObject@arn:aws:s3:::${with.s3_write}".to_string(),
            "secretsmanager:GetSecretValue ${with.containers.*.repository_credentials}".to_string(),
            "iam:PassRole ${with.task_role_arn}".to_string(),
        ];
        let lines = declared_grants(&declared, &templates, &inputs, true).unwrap();
        assert_eq!(
            lines,
            [
                "iam:PutRolePolicy task allow=s3:PutObject@arn:aws:s3:::b/one",
                r"iam:PutRolePolicy task allow=s3:PutObject@arn:aws:s3:::b/\*",
            ]
        );
    }
}
