//! What the torture and fault tests need to know about `workflows/ecs-example.toml`, in one
//! place: its parameters and environment, the world it expects (a bucket holding the container's
//! output), and what a correct deployment consists of, counted through the AWS API (against moto
//! directly, never through wharf's ledger or a fault proxy).

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

pub const BUCKET: &str = "projectjz";
pub const KEY: &str = "ecs-example/sample.txt";
const TASK_ROLE: &str = "ECSs3AccessTaskRole";
const EXECUTION_ROLE: &str = "ecsTaskExecutionRole";

pub fn workflow() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../workflows/ecs-example.toml")
}

/// `wharf run` arguments. The workflow builds and pushes its image (the `image` step) to the
/// htpasswd registry scripts/emulators.sh starts; an older version took a ready `image` param.
pub fn run_args() -> Vec<String> {
    let path = workflow();
    let mut args = vec!["run".to_string(), path.display().to_string()];
    let source = std::fs::read_to_string(&path).unwrap();
    let params = if source.contains("[params.repository]") {
        let registry =
            std::env::var("WHARF_TEST_REGISTRY_AUTH").expect("WHARF_TEST_REGISTRY_AUTH: run scripts/test.sh");
        vec![format!("registry={registry}"), "repository=wharf-torture/ecs-example".into(), "tag=v1".into()]
    } else {
        vec!["image=registry.example.com/ecs-example:v1".to_string()]
    };
    for param in params {
        args.extend(["--param".to_string(), param]);
    }
    args
}

/// The registry credentials the workflow stores in its secret (and pushes with).
pub fn registry_credentials() -> (String, String) {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run scripts/test.sh"));
    (var("WHARF_TEST_REGISTRY_USER"), var("WHARF_TEST_REGISTRY_PASSWORD"))
}

/// Environment every wharf process of the deployment needs.
pub fn env() -> Vec<(&'static str, String)> {
    let (user, password) = registry_credentials();
    vec![("REGISTRY_USERNAME", user), ("REGISTRY_PASSWORD", password)]
}

/// Sets up what the workflow expects to exist, then plays the container's part in advance: its
/// output object is already in the bucket, so the verify step finds it at once.
pub async fn prepare(config: &aws_config::SdkConfig) {
    let s3 = crate::s3_client(config).await;
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let body =
        std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../workflows/app/model/sample.txt")).unwrap();
    s3.put_object().bucket(BUCKET).key(KEY).body(body.into()).send().await.unwrap();
}

/// How many of each kind a correct deployment adds to a fresh account.
pub fn expected() -> BTreeMap<&'static str, usize> {
    BTreeMap::from([
        ("ecs cluster", 1),
        ("ecs service", 1),
        ("ecs task definition", 1),
        ("iam role", 2),
        ("iam inline policy", 2),
        ("iam attached policy", 1),
        ("secret", 1),
        ("vpc", 1),
        ("subnet", 2),
        // The tasks' group plus the default group every new VPC gets.
        ("security group", 2),
        ("internet gateway", 1),
        // Ours plus the new VPC's main table.
        ("route table", 2),
        ("log group", 1),
    ])
}

/// Every live resource of the kinds the deployment creates, by kind, as listed by AWS.
#[derive(Debug, Clone, Default)]
pub struct Inventory(pub BTreeMap<&'static str, BTreeSet<String>>);

impl Inventory {
    pub async fn take(config: &aws_config::SdkConfig) -> Inventory {
        let mut inv: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
        let ecs = aws_sdk_ecs::Client::new(config);
        let clusters = ecs.list_clusters().send().await.unwrap().cluster_arns().to_vec();
        if !clusters.is_empty() {
            let described = ecs.describe_clusters().set_clusters(Some(clusters)).send().await.unwrap();
            for c in described.clusters().iter().filter(|c| c.status() == Some("ACTIVE")) {
                let arn = c.cluster_arn().unwrap().to_string();
                inv.entry("ecs cluster").or_default().insert(arn.clone());
                let services = ecs.list_services().cluster(&arn).send().await.unwrap().service_arns().to_vec();
                if services.is_empty() {
                    continue;
                }
                let described =
                    ecs.describe_services().cluster(&arn).set_services(Some(services)).send().await.unwrap();
                for s in described.services().iter().filter(|s| s.status() != Some("INACTIVE")) {
                    inv.entry("ecs service").or_default().insert(s.service_arn().unwrap().to_string());
                }
            }
        }
        let active = aws_sdk_ecs::types::TaskDefinitionStatus::Active;
        for td in ecs.list_task_definitions().status(active).send().await.unwrap().task_definition_arns() {
            inv.entry("ecs task definition").or_default().insert(td.clone());
        }
        let iam = aws_sdk_iam::Client::new(config);
        for role in iam.list_roles().send().await.unwrap().roles() {
            let name = role.role_name();
            inv.entry("iam role").or_default().insert(name.to_string());
            for policy in iam.list_role_policies().role_name(name).send().await.unwrap().policy_names() {
                inv.entry("iam inline policy").or_default().insert(format!("{name}/{policy}"));
            }
            let attached = iam.list_attached_role_policies().role_name(name).send().await.unwrap();
            for policy in attached.attached_policies() {
                inv.entry("iam attached policy")
                    .or_default()
                    .insert(format!("{name}|{}", policy.policy_arn().unwrap()));
            }
        }
        let secrets = aws_sdk_secretsmanager::Client::new(config);
        for secret in secrets.list_secrets().send().await.unwrap().secret_list() {
            if secret.deleted_date().is_none() {
                inv.entry("secret").or_default().insert(secret.arn().unwrap().to_string());
            }
        }
        let ec2 = aws_sdk_ec2::Client::new(config);
        for vpc in ec2.describe_vpcs().send().await.unwrap().vpcs() {
            inv.entry("vpc").or_default().insert(vpc.vpc_id().unwrap().to_string());
        }
        for subnet in ec2.describe_subnets().send().await.unwrap().subnets() {
            inv.entry("subnet").or_default().insert(subnet.subnet_id().unwrap().to_string());
        }
        for sg in ec2.describe_security_groups().send().await.unwrap().security_groups() {
            inv.entry("security group").or_default().insert(sg.group_id().unwrap().to_string());
        }
        for igw in ec2.describe_internet_gateways().send().await.unwrap().internet_gateways() {
            inv.entry("internet gateway").or_default().insert(igw.internet_gateway_id().unwrap().to_string());
        }
        for rtb in ec2.describe_route_tables().send().await.unwrap().route_tables() {
            inv.entry("route table").or_default().insert(rtb.route_table_id().unwrap().to_string());
        }
        let logs = aws_sdk_cloudwatchlogs::Client::new(config);
        for group in logs.describe_log_groups().send().await.unwrap().log_groups() {
            inv.entry("log group").or_default().insert(group.log_group_name().unwrap().to_string());
        }
        Inventory(inv)
    }

    /// What exists now and did not in `baseline`, by kind.
    pub fn added_since(&self, baseline: &Inventory) -> BTreeMap<&'static str, Vec<String>> {
        let mut added = BTreeMap::new();
        for (kind, ids) in &self.0 {
            let before = baseline.0.get(kind);
            let new: Vec<String> = ids.iter().filter(|id| before.is_none_or(|b| !b.contains(*id))).cloned().collect();
            if !new.is_empty() {
                added.insert(*kind, new);
            }
        }
        added
    }
}

/// Differences between what a deployment added and [`expected`]: duplicates (more than
/// expected), missing (fewer). Empty when every resource exists exactly once.
pub fn count_mismatches(added: &BTreeMap<&'static str, Vec<String>>) -> Vec<String> {
    let expected = expected();
    let kinds: BTreeSet<&str> = expected.keys().chain(added.keys()).copied().collect();
    kinds
        .into_iter()
        .filter_map(|kind| {
            let want = expected.get(kind).copied().unwrap_or(0);
            let got = added.get(kind).map_or(&[][..], Vec::as_slice);
            (got.len() != want).then(|| format!("{kind}: expected {want}, found {}: {got:?}", got.len()))
        })
        .collect()
}

/// Checks, through the AWS API, that the deployment is the one the workflow describes: the
/// service ACTIVE with the task definition the run registered, both roles with their policies,
/// the secret holding the credentials. `status` is `wharf --output json status RUN`.
pub async fn check_deployment(config: &aws_config::SdkConfig, status: &Value) -> Result<(), String> {
    let outputs = |step: &str| -> Value {
        status["steps"]
            .as_array()
            .and_then(|steps| steps.iter().find(|s| s["step_id"] == step))
            .map(|s| s["last"]["outputs"].clone())
            .unwrap_or(Value::Null)
    };
    let td_arn = outputs("taskdef")["task_definition_arn"].as_str().unwrap_or_default().to_string();
    let cluster = outputs("cluster")["cluster_name"].as_str().unwrap_or_default().to_string();
    let secret_arn = outputs("registry-secret")["arn"].as_str().unwrap_or_default().to_string();
    let ecs = aws_sdk_ecs::Client::new(config);
    let services = ecs
        .describe_services()
        .cluster(&cluster)
        .services("ecs-example-service")
        .send()
        .await
        .map_err(|e| format!("DescribeServices: {e:?}"))?;
    let service = services.services().first().ok_or("no service ecs-example-service")?;
    if service.status() != Some("ACTIVE") || service.task_definition() != Some(td_arn.as_str()) {
        return Err(format!(
            "service is {:?} with {:?}, expected ACTIVE with {td_arn}",
            service.status(),
            service.task_definition()
        ));
    }
    let iam = aws_sdk_iam::Client::new(config);
    let policies = |role: &'static str| {
        let iam = iam.clone();
        async move {
            let inline = iam.list_role_policies().role_name(role).send().await.map_err(|e| format!("{role}: {e:?}"))?;
            let attached =
                iam.list_attached_role_policies().role_name(role).send().await.map_err(|e| format!("{e:?}"))?;
            let mut documents = vec![];
            for name in inline.policy_names() {
                let doc = iam
                    .get_role_policy()
                    .role_name(role)
                    .policy_name(name)
                    .send()
                    .await
                    .map_err(|e| format!("{e:?}"))?;
                documents.push(doc.policy_document().to_string());
            }
            let arns: Vec<String> =
                attached.attached_policies().iter().filter_map(|p| p.policy_arn().map(str::to_string)).collect();
            Ok::<_, String>((documents.join(" "), arns))
        }
    };
    let (task_docs, task_attached) = policies(TASK_ROLE).await?;
    if !task_docs.contains("s3%3APutObject") && !task_docs.contains("s3:PutObject") || !task_attached.is_empty() {
        return Err(format!("task role policies wrong: {task_docs} attached {task_attached:?}"));
    }
    let (exec_docs, exec_attached) = policies(EXECUTION_ROLE).await?;
    let secret_in_policy = exec_docs.contains(&secret_arn) || exec_docs.contains(&secret_arn.replace(':', "%3A"));
    if !secret_in_policy || exec_attached.len() != 1 {
        return Err(format!("execution role policies wrong: {exec_docs} attached {exec_attached:?}"));
    }
    let secrets = aws_sdk_secretsmanager::Client::new(config);
    let value = secrets.get_secret_value().secret_id(&secret_arn).send().await.map_err(|e| format!("{e:?}"))?;
    let value: Value = serde_json::from_str(value.secret_string().unwrap_or_default()).map_err(|e| e.to_string())?;
    let (user, password) = registry_credentials();
    if value != serde_json::json!({"username": user, "password": password}) {
        return Err("the secret does not hold the registry credentials".into());
    }
    Ok(())
}
