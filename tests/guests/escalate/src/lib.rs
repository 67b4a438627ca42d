//! A custom plugin as a user would write it (the SDK's `Step`, no declared grants), whose author
//! tries to get more than the workflow grants: each `mode` is one escalation of issue 17's review
//! (tests/e2e/escalation.rs runs them through `wharf run`). It does what it says and reports what
//! it got; the host must refuse before any request leaves it.

use serde::Deserialize;
use serde_json::{Value, json};
use wharf_plugin_sdk::{Context, Error, Step, ec2, ecs, iam, registry, s3};

#[derive(Deserialize)]
struct Input {
    mode: String,
    /// The role, cluster, bucket, VPC... the mode works on.
    #[serde(default)]
    target: String,
    /// A second name (a role to pass, a secret, a subnet, a key), per mode.
    #[serde(default)]
    other: String,
}

/// A trust policy naming `principal` (an outside account, or ECS tasks).
fn trust(principal: Value) -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [{ "Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole" }]
    })
    .to_string()
}

const ADMIN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";
const OUTSIDER: &str = "arn:aws:iam::999999999999:root";

fn task_definition(family: &str, task_role: Option<String>, secret: Option<String>) -> ecs::TaskDefinition {
    ecs::TaskDefinition {
        family: family.into(),
        cpu: "256".into(),
        memory: "512".into(),
        task_role_arn: task_role,
        execution_role_arn: None,
        cpu_architecture: "X86_64".into(),
        operating_system_family: "LINUX".into(),
        containers: vec![ecs::ContainerDefinition {
            name: "app".into(),
            image: "127.0.0.1:5000/app@sha256:0000000000000000000000000000000000000000000000000000000000000000".into(),
            essential: true,
            command: vec![],
            entry_point: vec![],
            environment: vec![],
            secrets: vec![],
            port_mappings: vec![],
            repository_credentials: secret,
            logs: None,
        }],
    }
}

struct Escalate;

impl Step for Escalate {
    type Input = Input;
    type Output = Value;
    const NAME: &'static str = "escalate";
    const DESCRIPTION: &'static str = "Tries to do more than its grants allow.";
    const GRANTS: &'static [&'static str] = &[];

    fn run(_ctx: &Context, input: Input) -> Result<Value, Error> {
        let (target, other) = (input.target.as_str(), input.other.as_str());
        match input.mode.as_str() {
            // The review's finding: a role an outsider may assume, with administrator rights.
            "admin-role" => {
                iam::create_role(target, &trust(json!({ "AWS": OUTSIDER })), "looks harmless")?;
                iam::attach_role_policy(target, ADMIN)?;
            }
            // The same with an honest trust policy: the managed policy alone must be refused.
            "admin-attach" => {
                iam::create_role(target, &trust(json!({ "Service": "ecs-tasks.amazonaws.com" })), "")?;
                iam::attach_role_policy(target, ADMIN)?;
            }
            // An inline policy far past the workflow's ceiling.
            "wide-inline" => {
                let document = json!({ "Version": "2012-10-17", "Statement": [
                    { "Sid": "Fine", "Effect": "Allow", "Action": "s3:PutObject", "Resource": format!("arn:aws:s3:::{other}") },
                    { "Sid": "Everything", "Effect": "Allow", "Action": "*", "Resource": "*" }
                ]});
                iam::put_role_policy(target, "wharf-escalate", &document.to_string())?;
            }
            // PassRole bypass: a task definition running as a role the step was not granted.
            "pass-role" => {
                ecs::register_task_definition(&task_definition(target, Some(other.into()), None))?;
            }
            // A task definition reading a secret the step may not read.
            "foreign-secret" => {
                ecs::register_task_definition(&task_definition(target, None, Some(other.into())))?;
            }
            // A route to the internet for a VPC this run did not make (`target`: its id).
            "foreign-route" => {
                let subnets = ec2::subnets(target)?.into_iter().map(|s| s.id).collect::<Vec<_>>();
                ec2::create_internet_route(target, "escalate-public", &subnets)?;
            }
            // An ARN where a service name goes, to reach another cluster's service.
            "service-arn" => {
                let request = ecs::UpdateServiceRequest {
                    cluster: target.into(),
                    name: other.into(),
                    task_definition: "x".into(),
                    desired_count: 0,
                    network: ecs::Network { subnets: vec![], security_groups: vec![], assign_public_ip: false },
                    circuit_breaker: true,
                };
                ecs::update_service(&request)?;
            }
            // A service in subnets this run does not own (`other`: a subnet id).
            "foreign-network" => {
                let request = ecs::CreateServiceRequest {
                    cluster: target.into(),
                    name: "escalate".into(),
                    task_definition: "escalate:1".into(),
                    desired_count: 1,
                    network: ecs::Network {
                        subnets: vec![other.into()],
                        security_groups: vec![],
                        assign_public_ip: false,
                    },
                    circuit_breaker: true,
                    client_token: "escalate".into(),
                };
                ecs::create_service(&request)?;
            }
            // Creating a cluster that already exists: AWS returns it as if it were made now.
            "existing-cluster" => {
                let cluster =
                    ecs::create_cluster(&ecs::CreateClusterRequest { name: target.into(), container_insights: false })?;
                return Ok(json!({ "arn": cluster.arn }));
            }
            // Reading an object: the grant's shape is the workflow's, whatever the values are.
            "read-object" => {
                let found = s3::get_object_info(target, other)?;
                return Ok(json!({ "found": found.is_some() }));
            }
            // A manifest from a registry that never stops sending it (`target`: the registry).
            "pull-manifest" => {
                let repo = registry::Repository {
                    registry: target.into(),
                    name: "app".into(),
                    auth: registry::Auth::Anonymous,
                };
                registry::pull_manifest(&repo, "v1")?;
            }
            // Credentials from secret `other` for a registry that names a token realm elsewhere.
            "registry-credentials" => {
                let auth = registry::Auth::BasicFromSecret(other.into());
                let repo = registry::Repository { registry: target.into(), name: "app".into(), auth };
                registry::resolve(&repo, "v1")?;
            }
            other => return Err(Error::invalid_input(format!("unknown mode {other}"))),
        }
        Ok(json!({ "escalated": true }))
    }
}

wharf_plugin_sdk::export_step!(Escalate);
