//! `create-service`: a Fargate service, created or updated, then followed until ITS deployment
//! finishes. Success means our deployment completed, not that the service is stable: after a
//! circuit-breaker rollback the service is stable on the old task definition, and that is a failure.

pub mod rollout;

use rollout::Decision;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use wharf_plugin_sdk::ecs::{self, Network, Service};
use wharf_plugin_sdk::{Context, Error, Step, log};

/// Polling backoff: first wait, growth factor, ceiling.
const FIRST_POLL: Duration = Duration::from_secs(2);
const POLL_GROWTH: f64 = 1.5;
const MAX_POLL: Duration = Duration::from_secs(15);
/// Service events and stopped tasks quoted in a failure.
const EVENTS_IN_ERRORS: usize = 5;
const TASKS_IN_ERRORS: usize = 3;

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Input {
    pub cluster: String,
    pub name: String,
    /// Task definition ARN (e.g. the `task_definition_arn` output of `register-taskdef`).
    pub task_definition: String,
    #[serde(default = "one")]
    pub desired_count: u32,
    pub subnets: Vec<String>,
    #[serde(default)]
    pub security_groups: Vec<String>,
    #[serde(default = "yes")]
    pub assign_public_ip: bool,
    /// Deployment circuit breaker with rollback.
    #[serde(default = "yes")]
    pub circuit_breaker: bool,
    /// How long to wait for the deployment, e.g. "10m". Keep it below the step's `timeout`.
    #[serde(default = "ten_minutes")]
    pub timeout: String,
    /// Wait for the deployment to finish.
    #[serde(default = "yes")]
    pub wait: bool,
}

fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}
fn ten_minutes() -> String {
    "10m".into()
}

#[derive(Serialize, Debug)]
pub struct Output {
    pub service_arn: String,
    pub service_name: String,
    pub deployment_id: String,
    /// `COMPLETED` after a wait; the rollout state ECS reported when `wait = false`.
    pub status: String,
}

pub struct CreateService;

impl Step for CreateService {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "create-service";
    const DESCRIPTION: &'static str =
        "Creates or updates a Fargate ECS service and waits until its own deployment completes (a rollback fails it).";
    const GRANTS: &'static [&'static str] = &[
        "ecs:DescribeServices ${with.cluster}/${with.name}",
        // What the service runs and where: exactly the inputs (each list element its own line).
        "ecs:CreateService ${with.cluster}/${with.name} task-definition=${with.task_definition}",
        "ecs:CreateService ${with.cluster}/${with.name} subnet=${with.subnets}",
        "ecs:CreateService ${with.cluster}/${with.name} security-group=${with.security_groups}",
        "ecs:UpdateService ${with.cluster}/${with.name} task-definition=${with.task_definition}",
        "ecs:UpdateService ${with.cluster}/${with.name} subnet=${with.subnets}",
        "ecs:UpdateService ${with.cluster}/${with.name} security-group=${with.security_groups}",
        "ecs:ListTasks ${with.cluster}/${with.name}",
    ];

    fn run(ctx: &Context, input: Input) -> Result<Output, Error> {
        let timeout = validate(&input)?;
        let network = Network {
            subnets: input.subnets.clone(),
            security_groups: input.security_groups.clone(),
            assign_public_ip: input.assign_public_ip,
        };
        // Find before create. An attempt in doubt that already created or updated the service
        // finds it matching, and only waits for the deployment it started.
        let service = match ecs::describe_service(&input.cluster, &input.name)? {
            None => {
                let service = ecs::create_service(&ecs::CreateServiceRequest {
                    cluster: input.cluster.clone(),
                    name: input.name.clone(),
                    task_definition: input.task_definition.clone(),
                    desired_count: input.desired_count,
                    network,
                    circuit_breaker: input.circuit_breaker,
                    client_token: ctx.idempotency_key.chars().take(36).collect(),
                })?;
                log::info(&format!("created service {}", service.arn));
                service
            }
            Some(existing)
                if existing.task_definition != input.task_definition
                    || existing.desired_count != input.desired_count =>
            {
                let service = ecs::update_service(&ecs::UpdateServiceRequest {
                    cluster: input.cluster.clone(),
                    name: input.name.clone(),
                    task_definition: input.task_definition.clone(),
                    desired_count: input.desired_count,
                    network,
                    circuit_breaker: input.circuit_breaker,
                })?;
                log::info(&format!(
                    "updated service {} from {} x{} to {} x{}",
                    service.arn,
                    existing.task_definition,
                    existing.desired_count,
                    input.task_definition,
                    input.desired_count
                ));
                service
            }
            Some(existing) => {
                log::info(&format!(
                    "service {} already runs {} x{}",
                    existing.arn, input.task_definition, input.desired_count
                ));
                existing
            }
        };
        let (deployment, exact) = rollout::started_deployment(&service, &input.task_definition).ok_or_else(|| {
            Error::permanent("NoDeployment", format!("ECS reported no primary deployment for {}", service.arn))
        })?;
        if !exact {
            log::warn(&format!(
                "the primary deployment {} reports task definition {}, not ours; following it anyway",
                deployment.id, deployment.task_definition
            ));
        }
        let mut output = Output {
            service_arn: service.arn.clone(),
            service_name: service.name.clone(),
            deployment_id: deployment.id.clone(),
            status: deployment.rollout_state.clone(),
        };
        // `wharf plan` returns a placeholder service that does not exist: nothing to wait for.
        if !input.wait || output.deployment_id.starts_with("planned-") {
            return Ok(output);
        }
        wait_for(&input, &output.deployment_id, timeout)?;
        output.status = "COMPLETED".into();
        Ok(output)
    }
}

fn validate(input: &Input) -> Result<Duration, Error> {
    for (what, name) in [("cluster", &input.cluster), ("name", &input.name)] {
        let valid = |ch: char| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_';
        if name.is_empty() || name.len() > 255 || !name.chars().all(valid) {
            return Err(Error::invalid_input(format!(
                "`{what}` must be 1-255 letters, digits, hyphens or underscores"
            )));
        }
    }
    let td = &input.task_definition;
    // `wharf plan` hands over the placeholder of a registration it did not make.
    let planned = td.starts_with("planned-");
    if !planned && (!td.starts_with("arn:") || !td.contains(":task-definition/")) {
        return Err(Error::invalid_input(
            "`task_definition` must be a task definition ARN, e.g. ${steps.taskdef.outputs.task_definition_arn}",
        ));
    }
    // Placeholders (`planned-...`) stand in for ids `wharf plan` did not create.
    let id_like = |id: &str, prefix: &str| id.starts_with(prefix) || id.starts_with("planned-");
    if input.subnets.is_empty() || input.subnets.iter().any(|s| !id_like(s, "subnet-")) {
        return Err(Error::invalid_input("`subnets` must list at least one subnet id (subnet-...)"));
    }
    if input.security_groups.iter().any(|s| !id_like(s, "sg-")) {
        return Err(Error::invalid_input("`security_groups` must be security group ids (sg-...)"));
    }
    match humantime::parse_duration(&input.timeout) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(Error::invalid_input(format!(
            "`timeout` `{}` is not a duration like \"10m\" or \"90s\"",
            input.timeout
        ))),
    }
}

/// Polls with backoff until the deployment succeeds, fails, or `timeout` passes.
fn wait_for(input: &Input, deployment_id: &str, timeout: Duration) -> Result<(), Error> {
    let started = Instant::now();
    let mut delay = FIRST_POLL;
    let mut last: Option<Service> = None;
    let mut last_progress = String::new();
    loop {
        match ecs::describe_service(&input.cluster, &input.name).map_err(Error::from) {
            Ok(Some(service)) => {
                match rollout::decide(&service, deployment_id) {
                    Decision::Succeeded => {
                        log::info(&format!("deployment {deployment_id} completed"));
                        return Ok(());
                    }
                    Decision::Failed(reason) => return Err(failed(input, &reason, Some(&service))),
                    Decision::Waiting(progress) if progress != last_progress => {
                        log::progress(&progress);
                        last_progress = progress;
                    }
                    Decision::Waiting(_) => {}
                }
                last = Some(service);
            }
            Ok(None) => return Err(failed(input, "the service disappeared while deploying", None)),
            // A throttled or flaky poll is no verdict on the deployment: keep polling.
            Err(e) if e.is_retryable() => log::warn(&format!("polling the service failed, will retry: {e}")),
            Err(e) => return Err(e),
        }
        let elapsed = started.elapsed();
        if elapsed >= timeout {
            let state = if last_progress.is_empty() { String::new() } else { format!(" ({last_progress})") };
            let message = format!(
                "deployment {deployment_id} did not finish within {}{state}{}",
                humantime::format_duration(timeout),
                recent_events(last.as_ref())
            );
            return Err(Error::permanent("Timeout", message));
        }
        std::thread::sleep(delay.min(timeout - elapsed));
        delay = delay.mul_f64(POLL_GROWTH).min(MAX_POLL);
    }
}

/// A permanent failure saying why: the deployment's reason, why tasks stopped, recent events.
fn failed(input: &Input, reason: &str, service: Option<&Service>) -> Error {
    let mut message = reason.to_string();
    match ecs::stopped_tasks(&input.cluster, &input.name) {
        Ok(tasks) => {
            for task in tasks.iter().take(TASKS_IN_ERRORS) {
                message.push_str(&format!("; task {} stopped: {}", short(&task.arn), task.stopped_reason));
                if !task.container_reasons.is_empty() {
                    message.push_str(&format!(" [{}]", task.container_reasons.join(", ")));
                }
            }
        }
        Err(e) => log::warn(&format!("could not list stopped tasks: {}", Error::from(e))),
    }
    message.push_str(&recent_events(service));
    Error::permanent("DeploymentFailed", message)
}

fn recent_events(service: Option<&Service>) -> String {
    let events: Vec<&str> = service
        .map(|s| s.events.iter().take(EVENTS_IN_ERRORS).map(|e| e.message.as_str()).collect())
        .unwrap_or_default();
    if events.is_empty() { String::new() } else { format!("; recent service events: {}", events.join(" | ")) }
}

/// The task id from its ARN.
fn short(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

wharf_plugin_sdk::export_step!(CreateService);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(edit: impl FnOnce(&mut serde_json::Value)) -> Result<Input, serde_json::Error> {
        let mut v = json!({
            "cluster": "ecs-example-cluster",
            "name": "ecs-example",
            "task_definition": "arn:aws:ecs:us-east-1:123456789012:task-definition/ecs-example:1",
            "subnets": ["subnet-1", "subnet-2"],
        });
        edit(&mut v);
        serde_json::from_value(v)
    }

    #[test]
    fn defaults() {
        let i = input(|_| {}).unwrap();
        assert_eq!(i.desired_count, 1);
        assert!(i.assign_public_ip && i.circuit_breaker && i.wait);
        assert_eq!(validate(&i).unwrap(), Duration::from_secs(600));
    }

    #[test]
    fn validation_says_what_to_fix() {
        let bad = |edit: fn(&mut serde_json::Value)| validate(&input(edit).unwrap()).unwrap_err().message().to_string();
        assert!(bad(|v| v["task_definition"] = json!("ecs-example:1")).contains("task definition ARN"));
        assert!(bad(|v| v["subnets"] = json!([])).contains("subnet"));
        assert!(bad(|v| v["security_groups"] = json!(["default"])).contains("sg-"));
        assert!(bad(|v| v["timeout"] = json!("soon")).contains("duration"));
        assert!(bad(|v| v["timeout"] = json!("0s")).contains("duration"));
        assert!(bad(|v| v["name"] = json!("my service")).contains("`name`"));
        assert!(input(|v| v["subnet"] = json!("x")).is_err(), "unknown fields are refused");
    }

    #[test]
    fn backoff_grows_to_the_cap() {
        let mut delay = FIRST_POLL;
        let mut seen = vec![];
        for _ in 0..8 {
            seen.push(delay.as_millis());
            delay = delay.mul_f64(POLL_GROWTH).min(MAX_POLL);
        }
        assert_eq!(seen, vec![2000, 3000, 4500, 6750, 10125, 15000, 15000, 15000]);
    }
}
