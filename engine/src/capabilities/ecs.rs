//! `ecs`: Amazon ECS operations for the step plugins.

use super::Capabilities;
use crate::grants::{self, Need};
use crate::host::bindings::wharf::plugin::ecs::{
    Awslogs, Cluster, ContainerDefinition, ContainerSecret, CreateClusterRequest, CreateServiceRequest, Deployment,
    Host, KeyValue, Network, PortMapping, RegisteredTaskDefinition, Service, ServiceEvent, StoppedTask, TaskDefinition,
    UpdateServiceRequest,
};
use crate::host::bindings::wharf::plugin::ledger::DeleteOutcome;
use crate::host::bindings::{ErrorKind, WitError};
use crate::host::sandbox::SandboxState;
use crate::journal::{EventKind, LogLevel, Resource};
use aws_sdk_ecs::types::{self as ecs, ClusterSetting, ClusterSettingName, Tag};
use std::collections::BTreeMap;

impl Host for SandboxState {
    async fn create_cluster(&mut self, request: CreateClusterRequest) -> Result<Cluster, WitError> {
        let caps = self.caps()?;
        name_only("cluster", &request.name)?;
        caps.authorize("ecs:CreateCluster", &request.name)?;
        let insights = if request.container_insights { "enabled" } else { "disabled" };
        if caps.plan("ecs:CreateCluster", &request.name, &format!("(container insights {insights})")) {
            return Ok(Cluster {
                arn: format!("planned-cluster-{}", request.name),
                name: request.name,
                status: "ACTIVE".into(),
                container_insights: request.container_insights,
                active_services: 0,
                running_tasks: 0,
            });
        }
        // CreateCluster answers with an existing ACTIVE cluster of that name as if it made it (and
        // moto resets its settings): look first, and return one that exists without recording it,
        // unless its tags say this very step made it in an attempt that died before the ledger.
        if let Some((existing, tags)) = find_active_cluster(caps, &request.name).await? {
            let found = to_wit(&existing);
            let tags = tags.iter().filter_map(|t| Some((t.key()?, t.value()?)));
            caps.reclaim_if_ours(tags, "ecs:cluster", &found.arn, Some(&found.name), BTreeMap::new())?;
            return Ok(found);
        }
        let setting = ClusterSetting::builder().name(ClusterSettingName::ContainerInsights).value(insights).build();
        let send = caps
            .aws()
            .ecs()
            .await?
            .create_cluster()
            .cluster_name(&request.name)
            .settings(setting)
            .set_tags(Some(sdk_tags(caps)))
            .send();
        let out = caps.call("ecs:CreateCluster", &request.name, send).await?;
        let cluster = out.cluster.ok_or_else(|| super::incomplete_response("CreateCluster", "cluster"))?;
        let cluster = to_wit(&cluster);
        caps.record_created("ecs:cluster", &cluster.arn, Some(&cluster.name), BTreeMap::new())?;
        Ok(cluster)
    }

    async fn describe_cluster(&mut self, name: String) -> Result<Option<Cluster>, WitError> {
        let caps = self.caps()?;
        name_only("cluster", &name)?;
        caps.authorize("ecs:DescribeClusters", &name)?;
        let Some((cluster, tags)) = find_active_cluster(caps, &name).await? else { return Ok(None) };
        let found = to_wit(&cluster);
        let tags = tags.iter().filter_map(|t| Some((t.key()?, t.value()?)));
        caps.reclaim_if_ours(tags, "ecs:cluster", &found.arn, Some(&found.name), BTreeMap::new())?;
        Ok(Some(found))
    }

    async fn describe_task_definition(&mut self, family: String) -> Result<Option<RegisteredTaskDefinition>, WitError> {
        let caps = self.caps()?;
        name_only("task definition family", &family)?;
        caps.authorize("ecs:DescribeTaskDefinition", &family)?;
        let Some((td, tags)) = find_task_definition(caps, &family)
            .await?
            // Describing by family yields the latest ACTIVE revision; moto may return an INACTIVE one.
            .filter(|(td, _)| td.status() == Some(&ecs::TaskDefinitionStatus::Active))
        else {
            return Ok(None);
        };
        let found = task_definition_to_wit(&td);
        let tags = tags.iter().filter_map(|t| Some((t.key()?, t.value()?)));
        caps.reclaim_if_ours(tags, "ecs:task-definition", &found.arn, None, BTreeMap::new())?;
        Ok(Some(found))
    }

    async fn register_task_definition(
        &mut self,
        definition: TaskDefinition,
    ) -> Result<RegisteredTaskDefinition, WitError> {
        let caps = self.caps()?;
        let family = definition.family.clone();
        name_only("task definition family", &family)?;
        let needs = task_definition_needs(&definition);
        caps.authorize_all(&needs)?;
        let detail = format!(
            "cpu {} memory {} containers {} {}",
            definition.cpu,
            definition.memory,
            definition.containers.len(),
            grants::detail(&needs)
        );
        if caps.plan("ecs:RegisterTaskDefinition", &family, &detail) {
            return Ok(RegisteredTaskDefinition {
                arn: format!("planned-task-definition-{family}"),
                revision: 0,
                definition,
            });
        }
        let containers = definition.containers.iter().map(container_to_sdk).collect::<Result<Vec<_>, _>>()?;
        let platform = ecs::RuntimePlatform::builder()
            .cpu_architecture(ecs::CpuArchitecture::from(definition.cpu_architecture.as_str()))
            .operating_system_family(ecs::OsFamily::from(definition.operating_system_family.as_str()))
            .build();
        let send = caps
            .aws()
            .ecs()
            .await?
            .register_task_definition()
            .family(&family)
            .requires_compatibilities(ecs::Compatibility::Fargate)
            .network_mode(ecs::NetworkMode::Awsvpc)
            .cpu(&definition.cpu)
            .memory(&definition.memory)
            .set_task_role_arn(definition.task_role_arn.clone())
            .set_execution_role_arn(definition.execution_role_arn.clone())
            .runtime_platform(platform)
            .set_container_definitions(Some(containers))
            .set_tags(Some(sdk_tags(caps)))
            .send();
        let out = caps.call("ecs:RegisterTaskDefinition", &grants::transcript(&needs), send).await?;
        let registered = task_definition_to_wit(
            out.task_definition()
                .ok_or_else(|| super::incomplete_response("RegisterTaskDefinition", "taskDefinition"))?,
        );
        caps.record_created("ecs:task-definition", &registered.arn, Some(&family), BTreeMap::new())?;
        Ok(registered)
    }

    async fn describe_service(&mut self, cluster: String, name: String) -> Result<Option<Service>, WitError> {
        let caps = self.caps()?;
        let resource = service_resource(&cluster, &name)?;
        caps.authorize("ecs:DescribeServices", &resource)?;
        let Some(found) = find_service(caps, &cluster, &name).await?.filter(|s| s.status() != Some("INACTIVE")) else {
            return Ok(None);
        };
        let tags = found.tags().iter().filter_map(|t| Some((t.key()?, t.value()?)));
        let attributes = BTreeMap::from([("cluster".to_string(), cluster.clone())]);
        caps.reclaim_if_ours(tags, "ecs:service", found.service_arn().unwrap_or_default(), Some(&name), attributes)?;
        Ok(Some(service_to_wit(&found)))
    }

    async fn create_service(&mut self, request: CreateServiceRequest) -> Result<Service, WitError> {
        let caps = self.caps()?;
        let resource = service_resource(&request.cluster, &request.name)?;
        let need = service_need("ecs:CreateService", &resource, &request.task_definition, &request.network);
        caps.authorize_all(std::slice::from_ref(&need))?;
        let detail = format!("x{} {}", request.desired_count, grants::detail(std::slice::from_ref(&need)));
        if caps.plan("ecs:CreateService", &resource, &detail) {
            return Ok(planned_service(&request.name, &request.task_definition, request.desired_count));
        }
        let send = caps
            .aws()
            .ecs()
            .await?
            .create_service()
            .cluster(&request.cluster)
            .service_name(&request.name)
            .task_definition(&request.task_definition)
            .desired_count(desired(request.desired_count)?)
            .launch_type(ecs::LaunchType::Fargate)
            .network_configuration(network_to_sdk(&request.network)?)
            .deployment_configuration(deployment_configuration(request.circuit_breaker))
            .client_token(&request.client_token)
            .set_tags(Some(sdk_tags(caps)))
            // Tasks carry the run/step tags too, so a stray task can be traced back to its run.
            .propagate_tags(ecs::PropagateTags::Service)
            .send();
        let out = caps.call("ecs:CreateService", &grants::transcript(std::slice::from_ref(&need)), send).await?;
        let service =
            service_to_wit(out.service().ok_or_else(|| super::incomplete_response("CreateService", "service"))?);
        let attributes = BTreeMap::from([("cluster".to_string(), request.cluster.clone())]);
        caps.record_created("ecs:service", &service.arn, Some(&service.name), attributes)?;
        Ok(service)
    }

    async fn update_service(&mut self, request: UpdateServiceRequest) -> Result<Service, WitError> {
        let caps = self.caps()?;
        let resource = service_resource(&request.cluster, &request.name)?;
        let need = service_need("ecs:UpdateService", &resource, &request.task_definition, &request.network);
        caps.authorize_all(std::slice::from_ref(&need))?;
        let detail = format!("x{} {}", request.desired_count, grants::detail(std::slice::from_ref(&need)));
        if caps.plan("ecs:UpdateService", &resource, &detail) {
            return Ok(planned_service(&request.name, &request.task_definition, request.desired_count));
        }
        let send = caps
            .aws()
            .ecs()
            .await?
            .update_service()
            .cluster(&request.cluster)
            .service(&request.name)
            .task_definition(&request.task_definition)
            .desired_count(desired(request.desired_count)?)
            .network_configuration(network_to_sdk(&request.network)?)
            .deployment_configuration(deployment_configuration(request.circuit_breaker))
            .send();
        let out = caps.call("ecs:UpdateService", &grants::transcript(std::slice::from_ref(&need)), send).await?;
        Ok(service_to_wit(out.service().ok_or_else(|| super::incomplete_response("UpdateService", "service"))?))
    }

    async fn stopped_tasks(&mut self, cluster: String, service: String) -> Result<Vec<StoppedTask>, WitError> {
        let caps = self.caps()?;
        let resource = service_resource(&cluster, &service)?;
        caps.authorize("ecs:ListTasks", &resource)?;
        let client = caps.aws().ecs().await?;
        let send = client
            .list_tasks()
            .cluster(&cluster)
            .service_name(&service)
            .desired_status(ecs::DesiredStatus::Stopped)
            .max_results(STOPPED_TASKS)
            .send();
        let arns = caps.call("ecs:ListTasks", &resource, send).await?.task_arns().to_vec();
        if arns.is_empty() {
            return Ok(Vec::new());
        }
        let send = client.describe_tasks().cluster(&cluster).set_tasks(Some(arns)).send();
        let out = caps.call("ecs:DescribeTasks", &resource, send).await?;
        let mut tasks: Vec<&ecs::Task> = out.tasks().iter().collect();
        tasks.sort_by_key(|t| std::cmp::Reverse(millis(t.stopped_at())));
        Ok(tasks.into_iter().map(stopped_task_to_wit).collect())
    }
}

/// What registering `definition` needs beyond the family: passing its roles to ECS, and reading
/// every secret its containers reference (the task will read them).
fn task_definition_needs(definition: &TaskDefinition) -> Vec<Need> {
    let mut needs = vec![Need::new("ecs:RegisterTaskDefinition", &definition.family)];
    for role in [&definition.task_role_arn, &definition.execution_role_arn].into_iter().flatten() {
        needs.push(Need::new("iam:PassRole", role));
    }
    for container in &definition.containers {
        let referenced = container.secrets.iter().map(|s| &s.value_from).chain(&container.repository_credentials);
        needs.extend(referenced.map(|reference| secret_read(reference)));
    }
    needs
}

/// Reading a secret a task definition references: Secrets Manager, or an SSM parameter.
fn secret_read(reference: &str) -> Need {
    if reference.starts_with("arn:aws:ssm:") {
        Need::new("ssm:GetParameters", reference)
    } else {
        Need::new("secretsmanager:GetSecretValue", reference)
    }
}

/// A service call on `resource`, with what its tasks run and where.
fn service_need(action: &str, resource: &str, task_definition: &str, network: &Network) -> Need {
    let need = Need::new(action, resource).with("task-definition", task_definition);
    let need = network.subnets.iter().fold(need, |need, subnet| need.with("subnet", subnet.as_str()));
    network.security_groups.iter().fold(need, |need, group| need.with("security-group", group.as_str()))
}

/// `cluster/service`, the resource of service calls, from two plain names.
fn service_resource(cluster: &str, service: &str) -> Result<String, WitError> {
    name_only("cluster", cluster)?;
    name_only("service", service)?;
    Ok(format!("{cluster}/{service}"))
}

/// ECS also accepts ARNs where names go, and an ARN names its own cluster: `ecs:UpdateService
/// staging/*` would then reach a service of another cluster. Calls take plain names only.
fn name_only(what: &str, name: &str) -> Result<(), WitError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        return Ok(());
    }
    Err(WitError::new(
        ErrorKind::InvalidInput,
        "InvalidName",
        format!(
            "{what} `{name}` is not a plain name (letters, digits, `-`, `_`, at most 255); pass the name, not an ARN"
        ),
    ))
}

/// The ACTIVE cluster of that name (or ARN) and its tags, if there is one.
async fn find_active_cluster(caps: &Capabilities, name: &str) -> Result<Option<(ecs::Cluster, Vec<Tag>)>, WitError> {
    let send = caps
        .aws()
        .ecs()
        .await?
        .describe_clusters()
        .clusters(name)
        .include(ecs::ClusterField::Settings)
        .include(ecs::ClusterField::Tags)
        .send();
    let out = caps.call("ecs:DescribeClusters", name, send).await?;
    let found = out.clusters.unwrap_or_default().into_iter().find(|c| c.status() == Some("ACTIVE"));
    Ok(found.map(|mut c| {
        let tags = c.tags.take().unwrap_or_default();
        (c, tags)
    }))
}

fn to_wit(c: &ecs::Cluster) -> Cluster {
    let insights = c
        .settings()
        .iter()
        .any(|s| s.name() == Some(&ClusterSettingName::ContainerInsights) && s.value() == Some("enabled"));
    Cluster {
        arn: c.cluster_arn().unwrap_or_default().to_string(),
        name: c.cluster_name().unwrap_or_default().to_string(),
        status: c.status().unwrap_or_default().to_string(),
        container_insights: insights,
        active_services: c.active_services_count().max(0) as u32,
        running_tasks: c.running_tasks_count().max(0) as u32,
    }
}

/// How many service events `describe-service` returns (most recent first).
const RECENT_EVENTS: usize = 10;
/// How many stopped tasks `stopped-tasks` describes.
const STOPPED_TASKS: i32 = 10;

/// A request the SDK refused to build (a required field is empty).
fn invalid(e: aws_sdk_ecs::error::BuildError) -> WitError {
    WitError::new(ErrorKind::InvalidInput, "InvalidRequest", e.to_string())
}

fn sdk_tags(caps: &Capabilities) -> Vec<Tag> {
    caps.tags().into_iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

fn count(n: i32) -> u32 {
    n.max(0) as u32
}

fn desired(n: u32) -> Result<i32, WitError> {
    i32::try_from(n).map_err(|_| WitError::new(ErrorKind::InvalidInput, "InvalidRequest", "desired count is too large"))
}

fn millis(t: Option<&aws_sdk_ecs::primitives::DateTime>) -> u64 {
    t.and_then(|t| t.to_millis().ok()).unwrap_or(0).max(0) as u64
}

/// ECS's answer for a family with no ACTIVE revision, or an unknown revision.
fn is_unknown_task_definition(e: &WitError) -> bool {
    e.code == "ClientException" && e.message.contains("Unable to describe task definition")
}

/// The task definition (a family's latest ACTIVE revision, or an ARN), or none if ECS knows none.
/// The task definition and its tags, or none when ECS does not know it.
async fn find_task_definition(
    caps: &Capabilities,
    reference: &str,
) -> Result<Option<(ecs::TaskDefinition, Vec<ecs::Tag>)>, WitError> {
    let send = caps
        .aws()
        .ecs()
        .await?
        .describe_task_definition()
        .task_definition(reference)
        .include(ecs::TaskDefinitionField::Tags)
        .send();
    match caps.call("ecs:DescribeTaskDefinition", reference, send).await {
        Ok(out) => Ok(out.task_definition.map(|td| (td, out.tags.unwrap_or_default()))),
        Err(e) if is_unknown_task_definition(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The service as ECS reports it (any status), or none when it or its cluster does not exist.
async fn find_service(caps: &Capabilities, cluster: &str, service: &str) -> Result<Option<ecs::Service>, WitError> {
    let send = caps
        .aws()
        .ecs()
        .await?
        .describe_services()
        .cluster(cluster)
        .services(service)
        .include(ecs::ServiceField::Tags)
        .send();
    // A missing service is a `failures` entry with reason MISSING, not an error.
    let name = service.rsplit('/').next().unwrap_or(service);
    match caps.call("ecs:DescribeServices", &format!("{cluster}/{name}"), send).await {
        Ok(out) => Ok(out.services.and_then(|s| s.into_iter().next())),
        Err(e) if e.code == "ClusterNotFoundException" => Ok(None),
        Err(e) => Err(e),
    }
}

fn container_to_sdk(c: &ContainerDefinition) -> Result<ecs::ContainerDefinition, WitError> {
    let environment =
        c.environment.iter().map(|kv| ecs::KeyValuePair::builder().name(&kv.name).value(&kv.value).build());
    let secrets = c.secrets.iter().map(|s| ecs::Secret::builder().name(&s.name).value_from(&s.value_from).build());
    let ports = c.port_mappings.iter().map(|p| {
        let protocol = (!p.protocol.is_empty()).then(|| ecs::TransportProtocol::from(p.protocol.as_str()));
        ecs::PortMapping::builder().container_port(p.container_port.into()).set_protocol(protocol).build()
    });
    let credentials = c
        .repository_credentials
        .as_ref()
        .map(|arn| ecs::RepositoryCredentials::builder().credentials_parameter(arn).build())
        .transpose()
        .map_err(invalid)?;
    let logs = c
        .logs
        .as_ref()
        .map(|l| {
            ecs::LogConfiguration::builder()
                .log_driver(ecs::LogDriver::Awslogs)
                .options("awslogs-group", &l.group)
                .options("awslogs-region", &l.region)
                .options("awslogs-stream-prefix", &l.stream_prefix)
                .build()
        })
        .transpose()
        .map_err(invalid)?;
    // Empty command/entry point lists are sent as absent: the image's own CMD/ENTRYPOINT apply.
    let non_empty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    Ok(ecs::ContainerDefinition::builder()
        .name(&c.name)
        .image(&c.image)
        .essential(c.essential)
        .set_command(non_empty(&c.command))
        .set_entry_point(non_empty(&c.entry_point))
        .set_environment(Some(environment.collect()))
        .set_secrets(Some(secrets.collect::<Result<_, _>>().map_err(invalid)?))
        .set_port_mappings(Some(ports.collect()))
        .set_repository_credentials(credentials)
        .set_log_configuration(logs)
        .build())
}

fn task_definition_to_wit(td: &ecs::TaskDefinition) -> RegisteredTaskDefinition {
    let platform = td.runtime_platform();
    RegisteredTaskDefinition {
        arn: td.task_definition_arn().unwrap_or_default().to_string(),
        revision: count(td.revision()),
        definition: TaskDefinition {
            family: td.family().unwrap_or_default().to_string(),
            cpu: td.cpu().unwrap_or_default().to_string(),
            memory: td.memory().unwrap_or_default().to_string(),
            task_role_arn: td.task_role_arn().map(str::to_string),
            execution_role_arn: td.execution_role_arn().map(str::to_string),
            cpu_architecture: platform.and_then(|p| p.cpu_architecture()).map(|a| a.as_str()).unwrap_or("").to_string(),
            operating_system_family: platform
                .and_then(|p| p.operating_system_family())
                .map(|o| o.as_str())
                .unwrap_or("")
                .to_string(),
            containers: td.container_definitions().iter().map(container_to_wit).collect(),
        },
    }
}

fn container_to_wit(c: &ecs::ContainerDefinition) -> ContainerDefinition {
    let logs = c.log_configuration().filter(|l| l.log_driver() == &ecs::LogDriver::Awslogs).and_then(|l| l.options());
    let option =
        |options: &std::collections::HashMap<String, String>, key: &str| options.get(key).cloned().unwrap_or_default();
    ContainerDefinition {
        name: c.name().unwrap_or_default().to_string(),
        image: c.image().unwrap_or_default().to_string(),
        // ECS treats an unspecified `essential` as true.
        essential: c.essential().unwrap_or(true),
        command: c.command().to_vec(),
        entry_point: c.entry_point().to_vec(),
        environment: c
            .environment()
            .iter()
            .map(|kv| KeyValue {
                name: kv.name().unwrap_or_default().to_string(),
                value: kv.value().unwrap_or_default().to_string(),
            })
            .collect(),
        secrets: c
            .secrets()
            .iter()
            .map(|s| ContainerSecret { name: s.name().to_string(), value_from: s.value_from().to_string() })
            .collect(),
        port_mappings: c
            .port_mappings()
            .iter()
            .filter_map(|p| {
                Some(PortMapping {
                    container_port: u16::try_from(p.container_port()?).ok()?,
                    protocol: p.protocol().map(|t| t.as_str()).unwrap_or("tcp").to_string(),
                })
            })
            .collect(),
        repository_credentials: c.repository_credentials().map(|r| r.credentials_parameter().to_string()),
        logs: logs.map(|o| Awslogs {
            group: option(o, "awslogs-group"),
            region: option(o, "awslogs-region"),
            stream_prefix: option(o, "awslogs-stream-prefix"),
        }),
    }
}

fn network_to_sdk(n: &Network) -> Result<ecs::NetworkConfiguration, WitError> {
    let ip = if n.assign_public_ip { ecs::AssignPublicIp::Enabled } else { ecs::AssignPublicIp::Disabled };
    let vpc = ecs::AwsVpcConfiguration::builder()
        .set_subnets(Some(n.subnets.clone()))
        .set_security_groups(Some(n.security_groups.clone()))
        .assign_public_ip(ip)
        .build()
        .map_err(invalid)?;
    Ok(ecs::NetworkConfiguration::builder().awsvpc_configuration(vpc).build())
}

/// Rolling deployment; with the circuit breaker a failing deployment is rolled back by ECS
/// instead of retrying tasks forever (the plugin then reports it as failed).
fn deployment_configuration(circuit_breaker: bool) -> ecs::DeploymentConfiguration {
    let breaker = ecs::DeploymentCircuitBreaker::builder().enable(circuit_breaker).rollback(circuit_breaker).build();
    ecs::DeploymentConfiguration::builder().deployment_circuit_breaker(breaker).build()
}

fn service_to_wit(s: &ecs::Service) -> Service {
    Service {
        arn: s.service_arn().unwrap_or_default().to_string(),
        name: s.service_name().unwrap_or_default().to_string(),
        status: s.status().unwrap_or_default().to_string(),
        task_definition: s.task_definition().unwrap_or_default().to_string(),
        desired_count: count(s.desired_count()),
        running_count: count(s.running_count()),
        deployments: s.deployments().iter().map(deployment_to_wit).collect(),
        events: s
            .events()
            .iter()
            .take(RECENT_EVENTS)
            .map(|e| ServiceEvent {
                id: e.id().unwrap_or_default().to_string(),
                created_at_ms: millis(e.created_at()),
                message: e.message().unwrap_or_default().to_string(),
            })
            .collect(),
    }
}

fn deployment_to_wit(d: &ecs::Deployment) -> Deployment {
    Deployment {
        id: d.id().unwrap_or_default().to_string(),
        status: d.status().unwrap_or_default().to_string(),
        rollout_state: d.rollout_state().map(|r| r.as_str()).unwrap_or("").to_string(),
        rollout_state_reason: d.rollout_state_reason().unwrap_or_default().to_string(),
        task_definition: d.task_definition().unwrap_or_default().to_string(),
        desired_count: count(d.desired_count()),
        running_count: count(d.running_count()),
        pending_count: count(d.pending_count()),
        failed_tasks: count(d.failed_tasks()),
        created_at_ms: millis(d.created_at()),
    }
}

/// What `wharf plan` shows for a service it would create or update: one finished deployment.
fn planned_service(name: &str, task_definition: &str, desired_count: u32) -> Service {
    let deployment = Deployment {
        id: "planned-deployment".into(),
        status: "PRIMARY".into(),
        rollout_state: "COMPLETED".into(),
        rollout_state_reason: String::new(),
        task_definition: task_definition.into(),
        desired_count,
        running_count: 0,
        pending_count: 0,
        failed_tasks: 0,
        created_at_ms: 0,
    };
    Service {
        arn: format!("planned-service-{name}"),
        name: name.into(),
        status: "ACTIVE".into(),
        task_definition: task_definition.into(),
        desired_count,
        running_count: 0,
        deployments: vec![deployment],
        events: Vec::new(),
    }
}

fn stopped_task_to_wit(t: &ecs::Task) -> StoppedTask {
    let container_reasons = t
        .containers()
        .iter()
        .map(|c| {
            let reason = c.reason().unwrap_or("no reason given");
            let exit = c.exit_code().map(|code| format!(" (exit code {code})")).unwrap_or_default();
            format!("{}: {reason}{exit}", c.name().unwrap_or("?"))
        })
        .collect();
    StoppedTask {
        arn: t.task_arn().unwrap_or_default().to_string(),
        task_definition: t.task_definition_arn().unwrap_or_default().to_string(),
        stopped_reason: t.stopped_reason().unwrap_or_default().to_string(),
        container_reasons,
    }
}

/// Deletes an `ecs:*` ledger resource (grants are checked by the ledger capability).
pub(crate) async fn delete(
    caps: &Capabilities,
    resource: &Resource,
    _secret_recovery_days: Option<u32>,
) -> Result<DeleteOutcome, WitError> {
    match resource.kind.as_str() {
        "ecs:service" => delete_service(caps, resource).await,
        "ecs:task-definition" => delete_task_definition(caps, &resource.id).await,
        "ecs:cluster" => delete_cluster(caps, &resource.id).await,
        kind => {
            Err(WitError::new(ErrorKind::Permanent, "UnknownKind", format!("the ecs capability cannot delete {kind}")))
        }
    }
}

/// Scales the service to zero, then deletes it; ECS drains it for a while, during which the
/// ledger caller keeps calling back (Pending) and the cluster cannot be deleted yet.
async fn delete_service(caps: &Capabilities, resource: &Resource) -> Result<DeleteOutcome, WitError> {
    let cluster = resource.attributes.get("cluster").ok_or_else(|| {
        WitError::new(ErrorKind::Permanent, "IncompleteLedger", format!("ecs:service {} has no cluster", resource.id))
    })?;
    let Some(service) = find_service(caps, cluster, &resource.id).await? else {
        return Ok(DeleteOutcome::AlreadyGone);
    };
    caps.check_ours(&format!("service {}", resource.id), &run_tag(service.tags()))?;
    let target = format!("{cluster}/{}", resource.name.as_deref().unwrap_or(&resource.id));
    match service.status() {
        // INACTIVE is what a finished deletion looks like (ours or someone's) before ECS forgets it.
        Some("INACTIVE") => return Ok(DeleteOutcome::Deleted),
        Some("DRAINING") => return Ok(draining(&service)),
        _ => {}
    }
    let client = caps.aws().ecs().await?;
    if service.desired_count() > 0 {
        let send = client.update_service().cluster(cluster).service(&resource.id).desired_count(0).send();
        caps.call("ecs:UpdateService", &target, send).await?;
    }
    let send = client.delete_service().cluster(cluster).service(&resource.id).force(true).send();
    match caps.call("ecs:DeleteService", &target, send).await {
        Ok(out) => match out.service() {
            Some(s) if s.status() != Some("INACTIVE") => Ok(draining(s)),
            _ => Ok(DeleteOutcome::Deleted),
        },
        Err(e) if e.code == "ServiceNotFoundException" || e.code == "ClusterNotFoundException" => {
            Ok(DeleteOutcome::AlreadyGone)
        }
        Err(e) => Err(e),
    }
}

/// The `wharf:run` tag among ECS tags.
fn run_tag(tags: &[Tag]) -> Option<String> {
    tags.iter().find(|t| t.key() == Some(super::RUN_TAG)).and_then(|t| t.value()).map(str::to_string)
}

fn draining(s: &ecs::Service) -> DeleteOutcome {
    DeleteOutcome::Pending(format!("draining ({} tasks still running)", s.running_count().max(0)))
}

/// Deregisters the revision (it becomes INACTIVE), then asks ECS to delete it for good where
/// supported; INACTIVE revisions cost nothing, so that second part is best effort.
async fn delete_task_definition(caps: &Capabilities, arn: &str) -> Result<DeleteOutcome, WitError> {
    let Some((td, tags)) = find_task_definition(caps, arn).await? else {
        return Ok(DeleteOutcome::AlreadyGone);
    };
    caps.check_ours(&format!("task definition {arn}"), &run_tag(&tags))?;
    let client = caps.aws().ecs().await?;
    let outcome = match td.status() {
        Some(ecs::TaskDefinitionStatus::Active) => {
            let send = client.deregister_task_definition().task_definition(arn).send();
            caps.call("ecs:DeregisterTaskDefinition", arn, send).await?;
            DeleteOutcome::Deleted
        }
        Some(ecs::TaskDefinitionStatus::DeleteInProgress) => return Ok(DeleteOutcome::AlreadyGone),
        // INACTIVE: deregistered earlier (perhaps by an interrupted teardown); still ask to delete it.
        _ => DeleteOutcome::AlreadyGone,
    };
    let send = client.delete_task_definitions().task_definitions(arn).send();
    if let Err(e) = caps.call("ecs:DeleteTaskDefinitions", arn, send).await {
        let message = format!("{arn} is deregistered but was not deleted: {} {}", e.code, e.message);
        caps.event(EventKind::Log(LogLevel::Warn), message);
    }
    Ok(outcome)
}

/// Deletes the cluster; while services drain or tasks stop, ECS refuses and we report Pending.
async fn delete_cluster(caps: &Capabilities, arn: &str) -> Result<DeleteOutcome, WitError> {
    let client = caps.aws().ecs().await?;
    let send = client.describe_clusters().clusters(arn).include(ecs::ClusterField::Tags).send();
    let out = caps.call("ecs:DescribeClusters", arn, send).await?;
    let Some(cluster) = out.clusters().iter().find(|c| c.status() != Some("INACTIVE")) else {
        return Ok(DeleteOutcome::AlreadyGone);
    };
    caps.check_ours(&format!("cluster {arn}"), &run_tag(cluster.tags()))?;
    let send = client.delete_cluster().cluster(arn).send();
    match caps.call("ecs:DeleteCluster", arn, send).await {
        Ok(_) => Ok(DeleteOutcome::Deleted),
        Err(e) if e.code == "ClusterNotFoundException" => Ok(DeleteOutcome::AlreadyGone),
        Err(e) if e.code.starts_with("ClusterContains") => {
            Ok(DeleteOutcome::Pending(format!("cluster is not empty yet ({})", e.code)))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn circuit_breaker_rolls_back_when_enabled() {
        let config = deployment_configuration(true);
        let breaker = config.deployment_circuit_breaker().unwrap();
        assert!(breaker.enable() && breaker.rollback());
        let off = deployment_configuration(false);
        assert!(!off.deployment_circuit_breaker().unwrap().enable());
    }
}
