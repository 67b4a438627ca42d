//! The tutorial deployment, `workflows/ecs-example.toml`, end to end against moto and the
//! htpasswd docker-registry: build and push the example app's image, deploy, verify (the test
//! plays the container's part by running the pushed image's entrypoint), inspect every resource through the AWS API,
//! re-run (nothing changes), tear down (nothing remains). Plus: killed during `create-service`
//! and resumed, the service exists exactly once.
//!
//! The workflow uses fixed names (the tutorial's), so these tests take turns.

use serde_json::Value;
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use wharf_tests::{Scratch, aws_config, s3_client, text, unique};

static ONE_DEPLOYMENT_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The htpasswd registry's credentials (scripts/emulators.sh): the workflow stores them in its
/// secret, pushes with them, and names the secret in the task definition.
fn registry_credentials() -> (String, String) {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run scripts/test.sh"));
    (var("WHARF_TEST_REGISTRY_USER"), var("WHARF_TEST_REGISTRY_PASSWORD"))
}
const TASK_ROLE: &str = "ECSs3AccessTaskRole";
const EXECUTION_ROLE: &str = "ecsTaskExecutionRole";

fn workflow() -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../workflows/ecs-example.toml").display().to_string()
}

struct Deployment {
    scratch: Scratch,
    bucket: String,
    cluster: String,
}

impl Deployment {
    async fn new() -> Self {
        // The tutorial's fixed names (roles, secret, family) must not exist from an earlier,
        // failed run: such leftovers would be adopted, not created. Deployment tests take turns
        // and other test binaries run before or after this one, so wiping moto is safe here.
        wharf_tests::reset_moto();
        let app = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../workflows/app/dist/ecs-example-app");
        assert!(app.is_file(), "{} is missing: run scripts/build-app.sh (scripts/test.sh does)", app.display());
        let config = aws_config().await;
        let bucket = unique("projectjz");
        s3_client(&config).await.create_bucket().bucket(&bucket).send().await.unwrap();
        Deployment { scratch: Scratch::new(), bucket, cluster: unique("ecs-example-cluster") }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.scratch.wharf();
        let (user, password) = registry_credentials();
        cmd.args(args).env("REGISTRY_USERNAME", user).env("REGISTRY_PASSWORD", password);
        cmd
    }

    fn run_args(&self) -> Vec<String> {
        [
            "run",
            &workflow(),
            "--param",
            &format!("registry={}", std::env::var("WHARF_TEST_REGISTRY_AUTH").expect("run scripts/test.sh")),
            "--param",
            "repository=wharf-test/ecs-example",
            "--param",
            &format!("bucket={}", self.bucket),
            "--param",
            &format!("cluster={}", self.cluster),
        ]
        .map(String::from)
        .to_vec()
    }

    fn spawn_run(&self, faults: &str) -> Child {
        let args: Vec<String> = self.run_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.command(&args).env("WHARF_FAULTS", faults).spawn().unwrap()
    }

    fn status(&self, run_id: Option<&str>) -> Value {
        let mut args = vec!["--output", "json", "status"];
        args.extend(run_id);
        let out = self.command(&args).output().unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// Waits (bounded) until the latest run's status satisfies `pred`.
    fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let status = self.status(None);
            if pred(&status) {
                return status;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}: {status:#}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Does what ECS would: runs the task definition's container (its image pulled back from the
    /// registry, its environment, its task role's credentials) once.
    async fn play_container(&self, task_definition_arn: &str) {
        let ecs = aws_sdk_ecs::Client::new(&aws_config().await);
        let td = ecs.describe_task_definition().task_definition(task_definition_arn).send().await.unwrap();
        let td = td.task_definition.unwrap();
        let container = &td.container_definitions()[0];
        let env: Vec<(&str, &str)> =
            container.environment().iter().map(|kv| (kv.name().unwrap(), kv.value().unwrap())).collect();
        wharf_tests::container::play_container(container.image().unwrap(), td.task_role_arn().unwrap(), &env).await;
    }

    /// Runs the deployment to the end, playing the container once the service is up.
    async fn deploy(&self, child: Child) -> Value {
        let status = self.wait_for("the verify step to start", |s| step(s, "verify").is_some());
        let task_definition = outputs(&status, "taskdef")["task_definition_arn"].as_str().unwrap().to_string();
        self.play_container(&task_definition).await;
        let out = child.wait_with_output().unwrap();
        let run_id = status["run"]["id"].as_str().unwrap().to_string();
        let status = self.status(Some(&run_id));
        assert!(out.status.success(), "deployment failed: {status:#}");
        status
    }

    fn teardown(&self, run_id: &str) {
        let out = self.command(&["teardown", run_id]).output().unwrap();
        assert!(out.status.success(), "teardown failed: {}{}", text(&out.stdout), text(&out.stderr));
    }
}

fn step<'a>(status: &'a Value, id: &str) -> Option<&'a Value> {
    status["steps"].as_array()?.iter().find(|s| s["step_id"] == id)
}

fn outputs<'a>(status: &'a Value, id: &str) -> &'a Value {
    &step(status, id).unwrap_or_else(|| panic!("no step {id}: {status:#}"))["last"]["outputs"]
}

fn policy_statements(document: &str) -> Vec<Value> {
    let decoded = urlencoding_decode(document);
    let policy: Value = serde_json::from_str(&decoded).unwrap();
    match &policy["Statement"] {
        Value::Array(list) => list.clone(),
        single => vec![single.clone()],
    }
}

/// IAM returns policy documents URL-encoded.
fn urlencoding_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn as_list(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items.iter().map(|i| i.as_str().unwrap().to_string()).collect(),
        Value::String(s) => vec![s.clone()],
        _ => vec![],
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ecs_example_deploys_verifies_reruns_idempotently_and_tears_down() {
    let _turn = ONE_DEPLOYMENT_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let d = Deployment::new().await;
    let config = aws_config().await;
    // IAM is eventually consistent: the first two CreateService calls fail as real AWS does
    // right after a role is created, and must be retried.
    let status = d.deploy(d.spawn_run("ecs:CreateService=unable-to-assume-role*2")).await;
    let run_id = status["run"]["id"].as_str().unwrap().to_string();
    assert_eq!(step(&status, "service").unwrap()["attempts"], 3, "retried past the IAM propagation errors");

    let secret_arn = outputs(&status, "registry-secret")["arn"].as_str().unwrap().to_string();
    let iam = aws_sdk_iam::Client::new(&config);

    // Task role: trusts ECS tasks, may put exactly the one object, nothing attached.
    let task_role = iam.get_role().role_name(TASK_ROLE).send().await.unwrap().role.unwrap();
    assert!(urlencoding_decode(task_role.assume_role_policy_document().unwrap()).contains("ecs-tasks.amazonaws.com"));
    let inline = iam.list_role_policies().role_name(TASK_ROLE).send().await.unwrap();
    let mut task_actions = vec![];
    for name in inline.policy_names() {
        let doc = iam.get_role_policy().role_name(TASK_ROLE).policy_name(name).send().await.unwrap();
        for st in policy_statements(doc.policy_document()) {
            task_actions.extend(as_list(&st["Action"]));
            assert_eq!(as_list(&st["Resource"]), vec![format!("arn:aws:s3:::{}/ecs-example/sample.txt", d.bucket)]);
        }
    }
    assert_eq!(task_actions, vec!["s3:PutObject"], "least privilege, not AmazonS3FullAccess");
    let attached = iam.list_attached_role_policies().role_name(TASK_ROLE).send().await.unwrap();
    assert!(attached.attached_policies().is_empty(), "{attached:?}");

    // Execution role: the managed execution policy plus reading exactly the registry secret.
    let attached = iam.list_attached_role_policies().role_name(EXECUTION_ROLE).send().await.unwrap();
    let arns: Vec<_> = attached.attached_policies().iter().filter_map(|p| p.policy_arn()).collect();
    assert_eq!(arns, vec!["arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"]);
    let inline = iam.list_role_policies().role_name(EXECUTION_ROLE).send().await.unwrap();
    let mut secret_grants = vec![];
    for name in inline.policy_names() {
        let doc = iam.get_role_policy().role_name(EXECUTION_ROLE).policy_name(name).send().await.unwrap();
        for st in policy_statements(doc.policy_document()) {
            assert_eq!(as_list(&st["Action"]), vec!["secretsmanager:GetSecretValue"]);
            secret_grants.extend(as_list(&st["Resource"]));
        }
    }
    assert_eq!(secret_grants, vec![secret_arn.clone()]);

    // The secret holds the credentials from the environment.
    let secrets = aws_sdk_secretsmanager::Client::new(&config);
    let value = secrets.get_secret_value().secret_id(&secret_arn).send().await.unwrap();
    let value: Value = serde_json::from_str(value.secret_string().unwrap()).unwrap();
    let (user, password) = registry_credentials();
    assert_eq!(value, serde_json::json!({"username": user, "password": password}));

    // Task definition: Fargate, minimum size, both roles, registry credentials, logs.
    let ecs = aws_sdk_ecs::Client::new(&config);
    let td_arn = outputs(&status, "taskdef")["task_definition_arn"].as_str().unwrap().to_string();
    let td = ecs.describe_task_definition().task_definition(&td_arn).send().await.unwrap().task_definition.unwrap();
    assert_eq!(td.cpu(), Some("256"));
    assert_eq!(td.memory(), Some("512"));
    assert_eq!(td.network_mode().map(|m| m.as_str()), Some("awsvpc"));
    assert!(td.requires_compatibilities().iter().any(|c| c.as_str() == "FARGATE"));
    assert_eq!(td.task_role_arn(), Some(task_role.arn()));
    let container = &td.container_definitions()[0];
    // The image this run built and pushed, pinned by digest.
    let image = outputs(&status, "image")["image"].as_str().unwrap();
    assert!(image.contains("/wharf-test/ecs-example@sha256:"), "{image}");
    assert_eq!(container.image(), Some(image));
    assert_eq!(container.repository_credentials().map(|r| r.credentials_parameter()), Some(secret_arn.as_str()));
    let log = container.log_configuration().unwrap();
    assert_eq!(log.log_driver().as_str(), "awslogs");
    assert_eq!(log.options().unwrap().get("awslogs-group").map(String::as_str), Some("/ecs/ecs-example"));

    // Service: Fargate in the cluster's subnets and security group, circuit breaker with rollback.
    let cluster_out = outputs(&status, "cluster");
    let services = ecs.describe_services().cluster(&d.cluster).services("ecs-example-service").send().await.unwrap();
    let service = &services.services()[0];
    assert_eq!(service.status(), Some("ACTIVE"));
    assert_eq!(service.launch_type().map(|l| l.as_str()), Some("FARGATE"));
    let vpc = service.network_configuration().unwrap().awsvpc_configuration().unwrap();
    let mut subnets: Vec<String> = vpc.subnets().to_vec();
    subnets.sort();
    let mut expected: Vec<String> = as_list(&cluster_out["subnet_ids"]);
    expected.sort();
    assert_eq!(subnets, expected);
    assert_eq!(vpc.security_groups(), [cluster_out["security_group_id"].as_str().unwrap().to_string()]);
    assert_eq!(vpc.assign_public_ip().map(|a| a.as_str()), Some("ENABLED"));
    // moto 5.2.5 does not store deploymentConfiguration (DescribeServices omits it), so the
    // circuit breaker can only be checked here when the emulator returns it; the request wharf
    // builds is unit-tested in engine/src/capabilities/ecs.rs.
    if let Some(breaker) = service.deployment_configuration().and_then(|c| c.deployment_circuit_breaker()) {
        assert!(breaker.enable() && breaker.rollback());
    }

    // The verify step saw the container's object with the expected content.
    assert_eq!(outputs(&status, "verify")["size"], 54);

    // No secret value anywhere in wharf's state.
    assert_eq!(occurrences(&d.scratch.state_dir(), password.as_bytes()), 0, "the registry password leaked into state");

    // Re-running the finished deployment creates nothing and changes nothing.
    let args = d.run_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let again = d.command(&args).output().unwrap();
    assert!(again.status.success(), "{}{}", text(&again.stdout), text(&again.stderr));
    let again_status = d.status(None);
    assert_ne!(again_status["run"]["id"], run_id.as_str());
    assert_eq!(again_status["resources"].as_array().unwrap().len(), 0, "a re-run creates nothing: {again_status:#}");
    assert_eq!(outputs(&again_status, "taskdef")["task_definition_arn"], td_arn.as_str(), "no new revision");
    let listed = ecs.list_services().cluster(&d.cluster).send().await.unwrap();
    assert_eq!(listed.service_arns().len(), 1);

    // Teardown deletes exactly what the first run created.
    d.teardown(&run_id);
    let after = d.status(Some(&run_id));
    // Images outlive a deployment unless `teardown --delete-images`: a pushed one stays listed.
    // (Whether this run pushed one depends on whether the registry already had the digest.)
    let live: Vec<_> = after["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["deleted_at_ms"].is_null() && r["kind"] != "registry:image")
        .collect();
    assert!(live.is_empty(), "ledger entries left: {live:#?}");
    assert!(iam.get_role().role_name(TASK_ROLE).send().await.is_err(), "task role remains");
    assert!(iam.get_role().role_name(EXECUTION_ROLE).send().await.is_err(), "execution role remains");
    let secret = secrets.describe_secret().secret_id(&secret_arn).send().await;
    assert!(secret.is_err() || secret.unwrap().deleted_date().is_some(), "secret remains");
    let clusters = ecs.describe_clusters().clusters(&d.cluster).send().await.unwrap();
    assert!(clusters.clusters().iter().all(|c| c.status() != Some("ACTIVE")), "cluster remains");
    let td = ecs.describe_task_definition().task_definition(&td_arn).send().await;
    assert!(td.is_err() || td.unwrap().task_definition.unwrap().status().map(|s| s.as_str()) == Some("INACTIVE"));
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let vpcs = ec2
        .describe_vpcs()
        .filters(aws_sdk_ec2::types::Filter::builder().name("tag:wharf:run").values(&run_id).build())
        .send()
        .await
        .unwrap();
    assert!(vpcs.vpcs().is_empty(), "the run's VPC remains");
    let left = leftovers().await;
    assert!(left.is_empty(), "teardown left {left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_during_create_service_then_resumed_ends_with_exactly_one_service() {
    let _turn = ONE_DEPLOYMENT_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let d = Deployment::new().await;
    let mut child = d.spawn_run("");
    let status = d.wait_for("create-service to start", |s| step(s, "service").is_some());
    child.kill().unwrap();
    child.wait().unwrap();
    let run_id = status["run"]["id"].as_str().unwrap().to_string();

    let resume = d.command(&["resume", &run_id]).spawn().unwrap();
    let status = d.deploy(resume).await;
    assert_eq!(status["effective_status"], "succeeded", "{status:#}");
    let ecs = aws_sdk_ecs::Client::new(&aws_config().await);
    let listed = ecs.list_services().cluster(&d.cluster).send().await.unwrap();
    assert_eq!(listed.service_arns().len(), 1, "exactly one service after kill + resume");
    d.teardown(&run_id);
}

/// `wharf run --teardown`: deploy, verify and delete everything in one process, the way a CI smoke
/// test would use it. Then the same with a run that fails: what it created is deleted all the same,
/// and the exit code says the run failed.
#[tokio::test(flavor = "multi_thread")]
async fn run_with_teardown_deletes_what_it_created_in_the_same_process_even_when_the_run_fails() {
    let _turn = ONE_DEPLOYMENT_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let d = Deployment::new().await;
    let mut args = vec!["--output".to_string(), "json".into()];
    args.extend(d.run_args());
    args.insert(3, "--teardown".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let child = d.command(&args).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let status = d.wait_for("the verify step to start", |s| step(s, "verify").is_some());
    let task_definition = outputs(&status, "taskdef")["task_definition_arn"].as_str().unwrap().to_string();
    d.play_container(&task_definition).await;
    let out = child.wait_with_output().unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out.stdout)));
    assert!(out.status.success(), "{json:#}");
    assert_eq!(json["status"], "succeeded", "{json:#}");
    assert_eq!(json["outputs"]["verify"]["size"], 54, "{json:#}");
    assert_eq!(json["teardown"]["status"], "succeeded", "{json:#}");
    assert_eq!(json["teardown"]["run_id"], json["run_id"]);
    let totals = &json["teardown"]["outputs"]["_teardown"];
    assert!(totals["deleted"].as_u64().unwrap() >= 12, "{totals:#}");
    let left = leftovers().await;
    assert!(left.is_empty(), "run --teardown left {left:?}");
    // One run in the state: the teardown went on with the run's journal.
    let run_id = json["run_id"].as_str().unwrap();
    assert_eq!(d.status(Some(run_id))["effective_status"], "succeeded");

    // The service cannot be created: the run fails, verify never runs, the rest is deleted.
    let d = Deployment::new().await;
    let mut args = vec!["--output".to_string(), "json".into()];
    args.extend(d.run_args());
    args.insert(3, "--teardown".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = d.command(&args).env("WHARF_FAULTS", "ecs:CreateService=access-denied*9").output().unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out.stdout)));
    assert_eq!(out.status.code(), Some(1), "a failed run exits 1 although its teardown succeeded: {json:#}");
    assert_eq!(json["status"], "failed", "{json:#}");
    assert_eq!(json["failed"][0]["step"], "service", "{json:#}");
    assert_eq!(json["blocked"], serde_json::json!(["verify"]), "{json:#}");
    assert_eq!(json["teardown"]["status"], "succeeded", "{json:#}");
    let left = leftovers().await;
    assert!(left.is_empty(), "run --teardown of a failed run left {left:?}");
}

/// Counts, through the AWS API, everything a deployment could have left behind. moto was reset
/// before the deployment, so anything found is a leak.
async fn leftovers() -> Vec<String> {
    let config = aws_config().await;
    let mut left = vec![];
    let wharf_tagged = aws_sdk_ec2::types::Filter::builder().name("tag-key").values("wharf:run").build();
    let ec2 = aws_sdk_ec2::Client::new(&config);
    for vpc in ec2.describe_vpcs().filters(wharf_tagged.clone()).send().await.unwrap().vpcs() {
        left.push(format!("vpc {}", vpc.vpc_id().unwrap()));
    }
    for subnet in ec2.describe_subnets().filters(wharf_tagged.clone()).send().await.unwrap().subnets() {
        left.push(format!("subnet {}", subnet.subnet_id().unwrap()));
    }
    for sg in ec2.describe_security_groups().filters(wharf_tagged.clone()).send().await.unwrap().security_groups() {
        left.push(format!("security group {}", sg.group_id().unwrap()));
    }
    for igw in ec2.describe_internet_gateways().filters(wharf_tagged.clone()).send().await.unwrap().internet_gateways()
    {
        left.push(format!("internet gateway {}", igw.internet_gateway_id().unwrap()));
    }
    for rtb in ec2.describe_route_tables().filters(wharf_tagged).send().await.unwrap().route_tables() {
        left.push(format!("route table {}", rtb.route_table_id().unwrap()));
    }
    let iam = aws_sdk_iam::Client::new(&config);
    for role in iam.list_roles().send().await.unwrap().roles() {
        if [TASK_ROLE, EXECUTION_ROLE].contains(&role.role_name()) {
            left.push(format!("role {}", role.role_name()));
        }
    }
    let ecs = aws_sdk_ecs::Client::new(&config);
    let clusters = ecs.list_clusters().send().await.unwrap();
    if !clusters.cluster_arns().is_empty() {
        for c in ecs
            .describe_clusters()
            .set_clusters(Some(clusters.cluster_arns().to_vec()))
            .send()
            .await
            .unwrap()
            .clusters()
        {
            if c.status() == Some("ACTIVE") {
                left.push(format!("cluster {}", c.cluster_name().unwrap()));
            }
        }
    }
    let active = aws_sdk_ecs::types::TaskDefinitionStatus::Active;
    for td in ecs.list_task_definitions().status(active).send().await.unwrap().task_definition_arns() {
        left.push(format!("task definition {td}"));
    }
    let secrets = aws_sdk_secretsmanager::Client::new(&config);
    for secret in secrets.list_secrets().send().await.unwrap().secret_list() {
        if secret.deleted_date().is_none() {
            left.push(format!("secret {}", secret.name().unwrap()));
        }
    }
    let logs = aws_sdk_cloudwatchlogs::Client::new(&config);
    for group in logs.describe_log_groups().send().await.unwrap().log_groups() {
        left.push(format!("log group {}", group.log_group_name().unwrap()));
    }
    left
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_right_after_each_create_then_resume_and_teardown_leaves_nothing() {
    let _turn = ONE_DEPLOYMENT_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // The worst moments: AWS has created the resource, wharf has not written it to the ledger.
    for action in [
        "ec2:CreateVpc",
        "ec2:CreateSecurityGroup",
        "secretsmanager:CreateSecret",
        "iam:CreateRole",
        "iam:PutRolePolicy",
        "ecs:CreateCluster",
        "logs:CreateLogGroup",
        "ecs:RegisterTaskDefinition",
        "ecs:CreateService",
    ] {
        let d = Deployment::new().await;
        let args = d.run_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let crashed = d.command(&args).env("WHARF_CRASH_AT", format!("after:{action}")).output().unwrap();
        assert!(!crashed.status.success(), "the run did not crash after {action}: {}", text(&crashed.stderr));
        let run_id = d.status(None)["run"]["id"].as_str().unwrap().to_string();

        let status = d.deploy(d.command(&["resume", &run_id]).spawn().unwrap()).await;
        assert_eq!(status["effective_status"], "succeeded", "after a crash after {action}: {status:#}");
        let ecs = aws_sdk_ecs::Client::new(&aws_config().await);
        let services = ecs.list_services().cluster(&d.cluster).send().await.unwrap();
        assert_eq!(services.service_arns().len(), 1, "crash after {action}: one service");

        d.teardown(&run_id);
        let left = leftovers().await;
        assert!(left.is_empty(), "crash after {action}: teardown left {left:?}");
    }
}

/// How often `needle` occurs in any file under `dir`.
fn occurrences(dir: &std::path::Path, needle: &[u8]) -> usize {
    let mut count = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            count += occurrences(&path, needle);
        } else if let Ok(bytes) = std::fs::read(&path) {
            count += bytes.windows(needle.len()).filter(|w| *w == needle).count();
        }
    }
    count
}
