//! `create-cluster` against moto (started by `scripts/emulators.sh`): the cluster exists with its
//! settings and wharf's tags, the ledger lists it, and a re-run adopts it instead of duplicating.

use wharf_tests::{Scratch, ecs_client, text, unique};

const CLUSTER_WORKFLOW: &str = r#"
name = "cluster-only"

[params.cluster]
type = "string"

[params.container_insights]
type = "boolean"
default = false

[aws]
region = "us-east-1"

[[steps]]
id = "cluster"
plugin = "create-cluster"
with = { name = "${params.cluster}", container_insights = "${params.container_insights}", network = "default-vpc" }
"#;

#[tokio::test(flavor = "multi_thread")]
async fn create_cluster_creates_tags_and_ledgers_the_cluster_then_rerun_adopts_it() {
    let ecs = ecs_client().await;
    let s = Scratch::new();
    let name = unique("wharf-e2e");
    let wf = s.workflow("cluster.toml", CLUSTER_WORKFLOW);
    let args =
        ["run", wf.to_str().unwrap(), "--param", &format!("cluster={name}"), "--param", "container_insights=true"];

    let result = s.json(&args);
    assert_eq!(result["status"], "succeeded", "{result:#}");
    let arn = result["outputs"]["cluster"]["cluster_arn"].as_str().unwrap().to_string();
    let run_id = result["run_id"].as_str().unwrap().to_string();

    // Check through the AWS API, not through wharf.
    let described = ecs
        .describe_clusters()
        .clusters(&name)
        .include(aws_sdk_ecs::types::ClusterField::Settings)
        .include(aws_sdk_ecs::types::ClusterField::Tags)
        .send()
        .await
        .unwrap();
    let cluster = &described.clusters()[0];
    assert_eq!(cluster.cluster_arn(), Some(arn.as_str()));
    assert_eq!(cluster.status(), Some("ACTIVE"));
    let insights = cluster.settings().iter().find(|s| s.name().map(|n| n.as_str()) == Some("containerInsights"));
    assert_eq!(insights.and_then(|s| s.value()), Some("enabled"));
    let run_tag = cluster.tags().iter().find(|t| t.key() == Some("wharf:run"));
    assert_eq!(run_tag.and_then(|t| t.value()), Some(run_id.as_str()), "{:?}", cluster.tags());

    // The run's ledger lists exactly what it created: the tasks' security group in the default
    // VPC, and the cluster.
    let status = s.json(&["status", &run_id]);
    let resources = status["resources"].as_array().unwrap();
    let kinds: Vec<&str> = resources.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["ec2:security-group", "ecs:cluster"], "{status:#}");
    assert_eq!(resources[1]["id"], arn.as_str());
    let sg = result["outputs"]["cluster"]["security_group_id"].as_str().unwrap();
    assert_eq!(resources[0]["id"], sg);

    // A second run finds the cluster and creates nothing.
    let again = s.json(&args);
    assert_eq!(again["status"], "succeeded", "{again:#}");
    assert_eq!(again["outputs"]["cluster"]["cluster_arn"], arn.as_str());
    let again_status = s.json(&["status", again["run_id"].as_str().unwrap()]);
    assert_eq!(again_status["resources"].as_array().unwrap().len(), 0, "the re-run created nothing: {again_status:#}");
    let all = ecs.list_clusters().send().await.unwrap();
    assert_eq!(all.cluster_arns().iter().filter(|a| a.ends_with(&format!("/{name}"))).count(), 1);
}

#[test]
fn a_plugin_granted_another_cluster_is_denied_and_told_which_grant_to_add() {
    let s = Scratch::new();
    let wf = s.workflow(
        "deny.toml",
        r#"
name = "deny"
[aws]
region = "us-east-1"

[[steps]]
id = "peek"
plugin = "{ECS_CALLER}"
grants = ["ecs:DescribeClusters team-a-*"]
with = { cluster = "team-b-prod" }
"#,
    );
    let out = s.run(&["run", wf.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("add the grant line \"ecs:DescribeClusters team-b-prod\""), "{stdout}");
}
