//! Grants that mean what they say (issue 17): a custom plugin written like a user's, given only
//! the grants each case names, tries to make itself more powerful. Every attempt is refused
//! before its request leaves the host, with the missing grant line named; afterwards the run's
//! ledger, its transcript and the AWS state (read through the AWS API) show that nothing happened.

use serde_json::Value;
use wharf_tests::hostile::error;
use wharf_tests::{Scratch, aws_config, fake_registry, guests, text, unique};

const OUTSIDER: &str = "arn:aws:iam::999999999999:root";
/// The plugin imports ecs, ec2, iam, s3 and registry, and the host refuses a component importing an
/// interface its step has no grant for at all: these grant lookups of nothing any case touches.
const BASE: &str = r#""ecs:DescribeClusters escalate-none", "ec2:DescribeVpcs escalate-none", "iam:GetRole escalate-none", "s3:GetObject escalate-none/none", "registry:Pull 127.0.0.1:1/escalate-none""#;
const ADMIN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";

/// The step was denied, and the denial names `line` as a line to add.
fn assert_denied(result: &Value, step: &str, line: &str) -> String {
    let e = error(result, step);
    assert_eq!(e["kind"], "denied", "{step}: {e}");
    let message = e["message"].as_str().unwrap().to_string();
    assert!(message.contains(&format!("\"{line}\"")), "{step}: the denial names `{line}`: {message}");
    message
}

/// The transcript's calls of one step (`wharf logs`): what actually left the host.
fn calls(s: &Scratch, run_id: &str, step: &str) -> Vec<String> {
    let Value::Array(events) = s.json(&["logs", run_id, "--step", step]) else { panic!("logs of {step}") };
    events.iter().filter(|e| e["kind"] == "call").map(|e| e["message"].as_str().unwrap().to_string()).collect()
}

fn assert_not_sent(s: &Scratch, run_id: &str, step: &str, actions: &[&str]) {
    let sent = calls(s, run_id, step);
    for action in actions {
        assert!(!sent.iter().any(|c| c.starts_with(action)), "{step}: {action} left the host: {sent:#?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_custom_plugin_cannot_make_itself_more_powerful_than_its_grants() {
    let config = aws_config().await;
    let iam = aws_sdk_iam::Client::new(&config);
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let ecs = aws_sdk_ecs::Client::new(&config);

    // Someone else's cluster, and the default VPC: things this run must not own or change.
    let foreign_cluster = unique("foreign-cluster");
    ecs.create_cluster().cluster_name(&foreign_cluster).send().await.unwrap();
    let vpcs = ec2.describe_vpcs().send().await.unwrap();
    let default_vpc = vpcs.vpcs().iter().find(|v| v.is_default() == Some(true)).unwrap().vpc_id().unwrap().to_string();

    let [r1, r2, r3] = [unique("esc-admin"), unique("esc-attach"), unique("esc-inline")];
    let [f4, f5] = [unique("esc-pass"), unique("esc-secret")];
    let gateway = unique("esc-public");
    let s = Scratch::new();
    let workflow = format!(
        r#"
name = "escalation"

[params.key]
type = "string"
default = "*"

[params.nothing]
type = "string"
default = ""

[run]
concurrency = 8

# The review's finding: exactly these two grants made an admin role an outsider could assume.
[[steps]]
id = "admin-role"
plugin = "{plugin}"
grants = [{base}, "iam:CreateRole {r1}", "iam:AttachRolePolicy {r1}"]
with = {{ mode = "admin-role", target = "{r1}" }}

[[steps]]
id = "admin-attach"
plugin = "{plugin}"
grants = [{base}, "iam:CreateRole {r2}", "iam:AttachRolePolicy {r2}"]
with = {{ mode = "admin-attach", target = "{r2}" }}

[[steps]]
id = "wide-inline"
plugin = "{plugin}"
grants = [{base}, "iam:PutRolePolicy {r3} allow=s3:PutObject@arn:aws:s3:::esc-bucket/k"]
with = {{ mode = "wide-inline", target = "{r3}", other = "esc-bucket/k" }}

[[steps]]
id = "pass-role"
plugin = "{plugin}"
grants = [{base}, "ecs:RegisterTaskDefinition {f4}"]
with = {{ mode = "pass-role", target = "{f4}", other = "arn:aws:iam::123456789012:role/admin" }}

[[steps]]
id = "foreign-secret"
plugin = "{plugin}"
grants = [{base}, "ecs:RegisterTaskDefinition {f5}"]
with = {{ mode = "foreign-secret", target = "{f5}", other = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod-db" }}

[[steps]]
id = "foreign-route"
plugin = "{plugin}"
grants = [{base}, "ec2:DescribeSubnets *", "ec2:CreateInternetGateway {gateway}", "ec2:AttachInternetGateway @created", "ec2:CreateRouteTable @created", "ec2:AssociateRouteTable @created"]
with = {{ mode = "foreign-route", target = "{default_vpc}" }}

[[steps]]
id = "service-arn"
plugin = "{plugin}"
grants = [{base}, "ecs:UpdateService staging/*"]
with = {{ mode = "service-arn", target = "staging", other = "arn:aws:ecs:us-east-1:123456789012:service/prod/web" }}

[[steps]]
id = "foreign-network"
plugin = "{plugin}"
grants = [{base}, "ecs:CreateService {foreign_cluster}/escalate task-definition=escalate:1"]
with = {{ mode = "foreign-network", target = "{foreign_cluster}", other = "subnet-0foreign" }}

[[steps]]
id = "existing-cluster"
plugin = "{plugin}"
grants = [{base}, "ecs:CreateCluster {foreign_cluster}"]
with = {{ mode = "existing-cluster", target = "{foreign_cluster}" }}

# Template values cannot widen a grant: a `*` from a value is literal, an empty one is refused.
[[steps]]
id = "star-value"
plugin = "{plugin}"
grants = [{base}, "s3:GetObject esc-bucket/${{params.key}}"]
with = {{ mode = "read-object", target = "esc-bucket", other = "private/secret" }}

[[steps]]
id = "empty-value"
plugin = "{plugin}"
grants = [{base}, "s3:GetObject ${{params.nothing}}"]
with = {{ mode = "read-object", target = "esc-bucket", other = "private/secret" }}
"#,
        plugin = guests::ESCALATE,
        base = BASE,
    );
    let path = s.path().join("escalation.toml");
    std::fs::write(&path, workflow).unwrap();
    let out = s.wharf().args(["--output", "json", "run", path.to_str().unwrap()]).output().unwrap();
    let result: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", text(&out.stdout), text(&out.stderr)));
    let run_id = result["run_id"].as_str().unwrap().to_string();

    // 1. The admin role: its trust policy names an outsider, so it is never created.
    assert_denied(&result, "admin-role", &format!("iam:CreateRole {r1} trust={OUTSIDER}"));
    assert_not_sent(&s, &run_id, "admin-role", &["iam:CreateRole", "iam:AttachRolePolicy"]);
    assert!(iam.get_role().role_name(&r1).send().await.is_err(), "{r1} exists");

    // 2. An honest role may be made, but AdministratorAccess is not a policy it was granted.
    assert_denied(&result, "admin-attach", &format!("iam:AttachRolePolicy {r2} policy={ADMIN}"));
    assert_not_sent(&s, &run_id, "admin-attach", &["iam:AttachRolePolicy"]);
    let attached = iam.list_attached_role_policies().role_name(&r2).send().await.unwrap();
    assert!(attached.attached_policies().is_empty(), "{attached:?}");

    // 3. An inline policy past its ceiling: refused with the statement that exceeds it.
    let message = assert_denied(&result, "wide-inline", &format!("iam:PutRolePolicy {r3} allow=\\*@\\*"));
    assert!(message.contains("statement 2 (Sid `Everything`)"), "{message}");
    assert!(!message.contains("statement 1"), "the granted statement is not blamed: {message}");
    assert_not_sent(&s, &run_id, "wide-inline", &["iam:PutRolePolicy"]);

    // 4-5. Task definitions that pass an ungranted role or read an ungranted secret.
    assert_denied(&result, "pass-role", "iam:PassRole arn:aws:iam::123456789012:role/admin");
    assert_denied(
        &result,
        "foreign-secret",
        "secretsmanager:GetSecretValue arn:aws:secretsmanager:us-east-1:123456789012:secret:prod-db",
    );
    for (step, family) in [("pass-role", &f4), ("foreign-secret", &f5)] {
        assert_not_sent(&s, &run_id, step, &["ecs:RegisterTaskDefinition"]);
        assert!(ecs.describe_task_definition().task_definition(family).send().await.is_err(), "{family} exists");
    }

    // 6. A route to the internet for a VPC this run does not own: nothing is made or attached.
    let message = assert_denied(&result, "foreign-route", &format!("ec2:AttachInternetGateway {default_vpc}"));
    assert!(message.contains(&format!("\"ec2:CreateRouteTable {default_vpc}\"")), "{message}");
    assert!(message.contains("\"ec2:AssociateRouteTable subnet-"), "every subnet is named: {message}");
    // Only lookups left the host: what exists was read, then every change was refused at once.
    let changes =
        ["ec2:CreateInternetGateway", "ec2:AttachInternetGateway", "ec2:CreateRouteTable", "ec2:AssociateRouteTable"];
    assert_not_sent(&s, &run_id, "foreign-route", &changes);
    let filter = aws_sdk_ec2::types::Filter::builder().name("tag:Name").values(&gateway).build();
    let gateways = ec2.describe_internet_gateways().filters(filter).send().await.unwrap();
    assert!(gateways.internet_gateways().is_empty(), "{gateways:?}");

    // 7. An ARN where a service name goes (it would name another cluster): refused as input.
    let e = error(&result, "service-arn");
    assert_eq!(e["code"], "InvalidName", "{e}");
    assert!(e["message"].as_str().unwrap().contains("pass the name, not an ARN"), "{e}");
    assert_not_sent(&s, &run_id, "service-arn", &["ecs:UpdateService"]);

    // 8. A service in subnets this run does not own.
    assert_denied(
        &result,
        "foreign-network",
        &format!("ecs:CreateService {foreign_cluster}/escalate subnet=subnet-0foreign"),
    );
    assert_not_sent(&s, &run_id, "foreign-network", &["ecs:CreateService"]);

    // 9. Creating a cluster that exists returns it, but the run does not claim it.
    assert!(result["outputs"]["existing-cluster"]["arn"].as_str().unwrap().contains(&foreign_cluster), "{result:#}");
    assert_not_sent(&s, &run_id, "existing-cluster", &["ecs:CreateCluster"]);

    // 10. Template values: `*` is literal, an empty resource is refused.
    assert_denied(&result, "star-value", "s3:GetObject esc-bucket/private/secret");
    let e = error(&result, "empty-value");
    assert_eq!(e["code"], "TemplateError", "{e}");
    assert!(e["message"].as_str().unwrap().contains("`${params.nothing}` is empty"), "{e}");

    // The ledger lists only what the run made: the honest role, nothing of anyone else's.
    let status = s.json(&["status", &run_id]);
    let ledger: Vec<(String, String)> = status["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["kind"].as_str().unwrap().into(), r["name"].as_str().unwrap_or("").into()))
        .collect();
    assert_eq!(ledger, [("iam:role".to_string(), r2.clone())], "{status:#}");
    let failed = result["failed"].as_array().unwrap().len();
    assert_eq!(failed, 10, "every case failed but existing-cluster: {result:#}");

    // Teardown deletes the role the run made and leaves the foreign cluster alone.
    let out = s.run(&["teardown", &run_id]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(iam.get_role().role_name(&r2).send().await.is_err(), "{r2} was not torn down");
    let clusters = ecs.describe_clusters().clusters(&foreign_cluster).send().await.unwrap();
    assert_eq!(clusters.clusters()[0].status(), Some("ACTIVE"), "the foreign cluster was deleted");
    ecs.delete_cluster().cluster(&foreign_cluster).send().await.unwrap();
}

/// Registries that misbehave: a manifest that never ends, a token realm on another host. The host
/// stops reading at its limit, and the credentials never leave for the realm.
#[tokio::test(flavor = "multi_thread")]
async fn a_custom_plugin_cannot_use_a_registry_to_exhaust_the_host_or_leak_credentials() {
    let config = aws_config().await;
    let (endless, sent) = fake_registry::endless_manifest().await;
    let (realm, reached) = fake_registry::counting_realm().await;
    let evil = fake_registry::challenging(format!("http://{realm}/token")).await;
    let secret = unique("esc-registry-creds");
    let secrets = aws_sdk_secretsmanager::Client::new(&config);
    let value = r#"{"username":"escalate","password":"escalate-password-51c2"}"#;
    secrets.create_secret().name(&secret).secret_string(value).send().await.unwrap();

    let s = Scratch::new();
    let workflow = format!(
        r#"
name = "escalation-registry"

[[steps]]
id = "endless"
plugin = "{plugin}"
grants = [{base}, "registry:Pull {endless}/app"]
with = {{ mode = "pull-manifest", target = "{endless}" }}

[[steps]]
id = "realm"
plugin = "{plugin}"
grants = [{base}, "registry:Pull {evil}/app", "secretsmanager:GetSecretValue {secret}"]
with = {{ mode = "registry-credentials", target = "{evil}", other = "{secret}" }}
"#,
        plugin = guests::ESCALATE,
        base = BASE,
    );
    let path = s.path().join("registry.toml");
    std::fs::write(&path, workflow).unwrap();
    let out = s.wharf().args(["--output", "json", "run", path.to_str().unwrap()]).output().unwrap();
    let result: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", text(&out.stdout), text(&out.stderr)));

    let e = error(&result, "endless");
    assert_eq!(e["code"], "ManifestTooLarge", "{e}");
    let sent = sent.load(std::sync::atomic::Ordering::SeqCst);
    assert!(sent < 64 << 20, "the host kept reading the manifest: {sent} bytes");

    let e = error(&result, "realm");
    assert_eq!(e["code"], "CredentialRealmRefused", "{e}");
    assert!(e["message"].as_str().unwrap().contains(&format!("registry:SendCredentials {realm}")), "{e}");
    assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 0, "the realm was contacted");
    assert!(!out.stdout.windows(22).any(|w| w == b"escalate-password-51c2"), "the password was printed");
    secrets.delete_secret().secret_id(&secret).force_delete_without_recovery(true).send().await.unwrap();
}
