//! `register-taskdef`: a Fargate task definition from a few TOML inputs. A new revision is
//! registered only when the family's latest ACTIVE revision differs, so re-runs stay quiet.

mod fargate;

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use wharf_plugin_sdk::ecs::{
    self, Awslogs, ContainerDefinition, ContainerSecret, KeyValue, PortMapping, TaskDefinition,
};
use wharf_plugin_sdk::{Context, Error, Step, log, logs};

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Input {
    pub family: String,
    /// CPU units (256, 512, 1024, ...); a number or a numeric string.
    pub cpu: Number,
    /// MiB; a number or a numeric string.
    pub memory: Number,
    #[serde(default)]
    pub task_role_arn: Option<String>,
    /// Role Fargate uses to pull images, read secrets and write logs.
    #[serde(default)]
    pub execution_role_arn: Option<String>,
    /// `X86_64` or `ARM64`.
    #[serde(default = "x86_64")]
    pub cpu_architecture: String,
    /// Region for the `awslogs` driver; required when a container has a `log_group`.
    #[serde(default)]
    pub region: Option<String>,
    pub containers: Vec<ContainerInput>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct ContainerInput {
    pub name: String,
    pub image: String,
    #[serde(default = "yes")]
    pub essential: bool,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub entry_point: Vec<String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// Environment variable name -> ARN of a Secrets Manager secret (or SSM parameter).
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// Container ports (TCP).
    #[serde(default)]
    pub port_mappings: Vec<u16>,
    /// ARN of a Secrets Manager secret with `username`/`password` for a private registry.
    #[serde(default)]
    pub repository_credentials: Option<String>,
    /// CloudWatch Logs group for the `awslogs` driver (stream prefix = container name).
    #[serde(default)]
    pub log_group: Option<String>,
    #[serde(default = "yes")]
    pub create_log_group: bool,
}

/// Workflow templates render parameters as strings, so numbers are accepted either way.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum Number {
    Int(u64),
    Text(String),
}

impl Number {
    fn parse(&self, field: &str) -> Result<u32, Error> {
        let n = match self {
            Number::Int(n) => u32::try_from(*n).ok(),
            Number::Text(s) => s.trim().parse().ok(),
        };
        n.ok_or_else(|| Error::invalid_input(format!("`{field}` must be a whole number, e.g. 512")))
    }
}

fn x86_64() -> String {
    "X86_64".into()
}
fn yes() -> bool {
    true
}

#[derive(Serialize, Debug)]
pub struct Output {
    pub task_definition_arn: String,
    pub family: String,
    pub revision: u32,
    /// False when the latest ACTIVE revision already matched and nothing was registered.
    pub registered: bool,
}

pub struct RegisterTaskdef;

impl Step for RegisterTaskdef {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "register-taskdef";
    const DESCRIPTION: &'static str =
        "Registers a Fargate task definition revision, unless the latest active one is identical.";
    const GRANTS: &'static [&'static str] = &[
        "ecs:DescribeTaskDefinition ${with.family}",
        "ecs:RegisterTaskDefinition ${with.family}",
        // Handing the roles to ECS, and the secrets the containers will read: exactly the inputs.
        "iam:PassRole ${with.task_role_arn}",
        "iam:PassRole ${with.execution_role_arn}",
        "secretsmanager:GetSecretValue ${with.containers.*.repository_credentials}",
        "secretsmanager:GetSecretValue ${with.containers.*.secrets.*}",
        "ssm:GetParameters ${with.containers.*.secrets.*}",
        "logs:CreateLogGroup ${with.containers.*.log_group}",
    ];

    fn run(_ctx: &Context, input: Input) -> Result<Output, Error> {
        let (desired, log_groups) = desired_definition(&input)?;
        for group in log_groups {
            if logs::ensure_log_group(&group, None)? {
                log::info(&format!("created log group {group}"));
            }
        }
        // Compare before registering: every register call makes a new revision, even if identical.
        if let Some(latest) = ecs::describe_task_definition(&desired.family)?
            && same_definition(&latest.definition, &desired)
        {
            log::info(&format!("{} is up to date; not registering a new revision", latest.arn));
            return Ok(output(latest, false));
        }
        let registered = ecs::register_task_definition(&desired)?;
        log::info(&format!("registered {}", registered.arn));
        Ok(output(registered, true))
    }
}

fn output(td: ecs::RegisteredTaskDefinition, registered: bool) -> Output {
    Output { task_definition_arn: td.arn, family: td.definition.family, revision: td.revision, registered }
}

/// Validates the inputs and builds the task definition, plus the log groups to create first.
pub fn desired_definition(input: &Input) -> Result<(TaskDefinition, Vec<String>), Error> {
    check_name("family", &input.family)?;
    let (cpu, memory) = (input.cpu.parse("cpu")?, input.memory.parse("memory")?);
    if let Some(problem) = fargate::size_problem(cpu, memory) {
        return Err(Error::invalid_input(problem));
    }
    if !["X86_64", "ARM64"].contains(&input.cpu_architecture.as_str()) {
        return Err(Error::invalid_input("`cpu_architecture` must be X86_64 or ARM64"));
    }
    if input.containers.is_empty() {
        return Err(Error::invalid_input("`containers` must list at least one container"));
    }
    if !input.containers.iter().any(|c| c.essential) {
        return Err(Error::invalid_input("at least one container must be essential"));
    }
    let execution_role = non_empty(&input.execution_role_arn);
    let mut names = BTreeSet::new();
    let mut log_groups = BTreeSet::new();
    let mut containers = Vec::new();
    for c in &input.containers {
        check_name("container name", &c.name)?;
        if !names.insert(c.name.as_str()) {
            return Err(Error::invalid_input(format!("container name `{}` is used twice", c.name)));
        }
        let needs_role = !c.secrets.is_empty() || c.repository_credentials.is_some() || c.log_group.is_some();
        if needs_role && execution_role.is_none() {
            return Err(Error::invalid_input(format!(
                "container `{}` uses secrets, repository_credentials or log_group: Fargate needs `execution_role_arn` for those",
                c.name
            )));
        }
        let container = container_definition(c, input.region.as_deref())?;
        if let Some(group) = c.log_group.as_ref().filter(|_| c.create_log_group) {
            log_groups.insert(group.clone());
        }
        containers.push(container);
    }
    let definition = TaskDefinition {
        family: input.family.clone(),
        cpu: cpu.to_string(),
        memory: memory.to_string(),
        task_role_arn: non_empty(&input.task_role_arn),
        execution_role_arn: execution_role,
        cpu_architecture: input.cpu_architecture.clone(),
        operating_system_family: "LINUX".into(),
        containers,
    };
    Ok((definition, log_groups.into_iter().collect()))
}

fn container_definition(c: &ContainerInput, region: Option<&str>) -> Result<ContainerDefinition, Error> {
    let bad = |what: &str| Error::invalid_input(format!("container `{}`: {what}", c.name));
    if c.image.trim().is_empty() {
        return Err(bad("`image` is empty"));
    }
    for name in c.environment.keys().chain(c.secrets.keys()) {
        if name.is_empty() || name.contains('=') {
            return Err(bad(&format!("`{name}` is not a valid environment variable name")));
        }
    }
    if let Some(name) = c.environment.keys().find(|k| c.secrets.contains_key(*k)) {
        return Err(bad(&format!("`{name}` is both in `environment` and in `secrets`")));
    }
    // Never echo a secret's value: if it is not an ARN it may be the secret itself.
    if let Some(name) = c.secrets.iter().find(|(_, arn)| !arn.starts_with("arn:")).map(|(k, _)| k) {
        return Err(bad(&format!("secret `{name}` must be the ARN of a Secrets Manager secret or SSM parameter")));
    }
    if c.repository_credentials
        .as_ref()
        .is_some_and(|arn| !arn.starts_with("arn:") || !arn.contains(":secretsmanager:"))
    {
        return Err(bad("`repository_credentials` must be the ARN of a Secrets Manager secret"));
    }
    if c.port_mappings.contains(&0) {
        return Err(bad("port 0 is not a valid container port"));
    }
    let logs = match &c.log_group {
        None => None,
        Some(group) => {
            let valid = |ch: char| ch.is_ascii_alphanumeric() || "._-/#".contains(ch);
            if group.is_empty() || group.len() > 512 || !group.chars().all(valid) {
                return Err(bad("`log_group` must be 1-512 characters of letters, digits and . _ - / #"));
            }
            let region = region.filter(|r| !r.is_empty()).ok_or_else(|| {
                Error::invalid_input("`region` is required when a container has a `log_group` (awslogs needs it)")
            })?;
            Some(Awslogs { group: group.clone(), region: region.into(), stream_prefix: c.name.clone() })
        }
    };
    let mut ports: Vec<u16> = c.port_mappings.clone();
    ports.dedup();
    Ok(ContainerDefinition {
        name: c.name.clone(),
        image: c.image.trim().to_string(),
        essential: c.essential,
        command: c.command.clone(),
        entry_point: c.entry_point.clone(),
        environment: c
            .environment
            .iter()
            .map(|(name, value)| KeyValue { name: name.clone(), value: value.clone() })
            .collect(),
        secrets: c
            .secrets
            .iter()
            .map(|(name, arn)| ContainerSecret { name: name.clone(), value_from: arn.clone() })
            .collect(),
        port_mappings: ports.into_iter().map(|p| PortMapping { container_port: p, protocol: "tcp".into() }).collect(),
        repository_credentials: c.repository_credentials.clone(),
        logs,
    })
}

fn check_name(what: &str, name: &str) -> Result<(), Error> {
    let valid = |ch: char| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_';
    if name.is_empty() || name.len() > 255 || !name.chars().all(valid) {
        return Err(Error::invalid_input(format!(
            "{what} `{name}` must be 1-255 letters, digits, hyphens or underscores"
        )));
    }
    Ok(())
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_ref().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// Compares what matters, ignoring what ECS may reorder (environment, secrets, ports).
pub fn same_definition(a: &TaskDefinition, b: &TaskDefinition) -> bool {
    canonical(a) == canonical(b)
}

type Pairs = Vec<(String, String)>;
type ContainerKey = (
    String,
    String,
    bool,
    Vec<String>,
    Vec<String>,
    Pairs,
    Pairs,
    Vec<(u16, String)>,
    Option<String>,
    Option<(String, String, String)>,
);

/// The fields that matter, with absent roles as "" and order-insensitive lists sorted.
fn canonical(td: &TaskDefinition) -> (Vec<String>, Vec<ContainerKey>) {
    let fields = [
        &td.family,
        &td.cpu,
        &td.memory,
        &td.cpu_architecture,
        &td.operating_system_family,
        &non_empty(&td.task_role_arn).unwrap_or_default(),
        &non_empty(&td.execution_role_arn).unwrap_or_default(),
    ];
    (fields.into_iter().cloned().collect(), td.containers.iter().map(container_key).collect())
}

fn container_key(c: &ContainerDefinition) -> ContainerKey {
    let sorted = |mut v: Pairs| {
        v.sort();
        v
    };
    let mut ports: Vec<(u16, String)> =
        c.port_mappings.iter().map(|p| (p.container_port, p.protocol.to_ascii_lowercase())).collect();
    ports.sort();
    (
        c.name.clone(),
        c.image.clone(),
        c.essential,
        c.command.clone(),
        c.entry_point.clone(),
        sorted(c.environment.iter().map(|kv| (kv.name.clone(), kv.value.clone())).collect()),
        sorted(c.secrets.iter().map(|s| (s.name.clone(), s.value_from.clone())).collect()),
        ports,
        c.repository_credentials.clone(),
        c.logs.as_ref().map(|l| (l.group.clone(), l.region.clone(), l.stream_prefix.clone())),
    )
}

wharf_plugin_sdk::export_step!(RegisterTaskdef);

#[cfg(test)]
mod tests;
