use super::*;

fn set(lines: &[&str]) -> GrantSet {
    GrantSet::new("s", lines.iter().map(|l| Grant::parse(l).unwrap()).collect())
}

fn nothing_created(_: &str) -> bool {
    false
}

#[test]
fn parses_action_resource_and_conditions() {
    let g = Grant::parse("ecs:CreateCluster my-cluster").unwrap();
    assert_eq!(g.action, "ecs:CreateCluster");
    assert_eq!(g.resource, "my-cluster");
    assert_eq!(Grant::parse("ecs:Describe*").unwrap().resource, "*");
    let g = Grant::parse("iam:AttachRolePolicy r policy=arn:aws:iam::aws:policy/A policy=arn:x").unwrap();
    assert_eq!(g.to_string(), "iam:AttachRolePolicy r policy=arn:aws:iam::aws:policy/A policy=arn:x");
}

#[test]
fn rejects_malformed_lines_with_a_reason() {
    for bad in [
        "",
        "CreateCluster x",
        "ECS:CreateCluster x",
        "ecs: x",
        "ecs:Create-Cluster",
        "ecs:A b c",
        "ecs:CreateCluster x nokey",
        "ecs:CreateCluster x policy=y",
        "iam:AttachRolePolicy policy=arn:aws:iam::aws:policy/A",
        "s3:GetObject a\\",
    ] {
        let e = Grant::parse(bad).unwrap_err();
        assert!(!e.reason.is_empty(), "{bad}");
    }
    let e = Grant::parse("iam:CreateRole r policy=x").unwrap_err();
    assert!(e.reason.contains("`trust`"), "{e}");
}

#[test]
fn registry_resources_with_ports_and_globs() {
    let set = set(&[
        "registry:Push 127.0.0.1:5601/ecs-example",
        "registry:Pull 127.0.0.1:5601/team/*",
        "registry:PlainHttp 10.0.0.5:5000",
    ]);
    assert!(set.check("registry:Push", "127.0.0.1:5601/ecs-example").is_ok());
    assert!(set.check("registry:Push", "127.0.0.1:5601/ecs-example-2").is_err());
    assert!(set.check("registry:Push", "127.0.0.1:5602/ecs-example").is_err());
    assert!(set.check("registry:Pull", "127.0.0.1:5601/team/app").is_ok());
    assert!(set.check("registry:Pull", "127.0.0.1:5601/team/sub/app").is_ok());
    assert!(set.check("registry:Pull", "127.0.0.1:5601/other/app").is_err());
    assert!(set.check("registry:PlainHttp", "10.0.0.5:5000").is_ok());
    let denied = set.check("registry:Push", "127.0.0.1:5601/team/app").unwrap_err();
    assert!(denied.to_string().contains("add the grant line \"registry:Push 127.0.0.1:5601/team/app\""), "{denied}");
}

#[test]
fn denial_names_the_line_to_add() {
    let set = set(&["ecs:DescribeClusters a"]);
    assert!(set.check("ecs:DescribeClusters", "a").is_ok());
    let denied = set.check("ecs:DescribeClusters", "b").unwrap_err();
    assert!(denied.to_string().contains("\"ecs:DescribeClusters b\""), "{denied}");
    assert!(set.covers_service("ecs"));
    assert!(!set.covers_service("iam"));
}

/// A call needing several pairs is denied with every missing line, and only those.
#[test]
fn every_missing_pair_is_named() {
    let set = set(&["ecs:RegisterTaskDefinition app", "iam:PassRole arn:aws:iam::1:role/task"]);
    let needs = [
        Need::new("ecs:RegisterTaskDefinition", "app"),
        Need::new("iam:PassRole", "arn:aws:iam::1:role/task"),
        Need::new("iam:PassRole", "arn:aws:iam::1:role/exec"),
        Need::new("secretsmanager:GetSecretValue", "arn:s"),
    ];
    let denied = set.check_all(&needs, &nothing_created).unwrap_err();
    assert_eq!(denied.missing, ["iam:PassRole arn:aws:iam::1:role/exec", "secretsmanager:GetSecretValue arn:s"]);
    assert!(denied.to_string().contains("add the grant lines \"iam:PassRole arn:aws:iam::1:role/exec\", \""));
}

/// A missing resource containing `*` is suggested escaped: adding the line widens nothing.
#[test]
fn suggested_lines_are_escaped() {
    let denied = set(&[]).check("s3:GetObject", "b/*").unwrap_err();
    assert_eq!(denied.missing, [r"s3:GetObject b/\*"]);
    assert!(set(&[r"s3:GetObject b/\*"]).check("s3:GetObject", "b/*").is_ok());
    assert!(set(&[r"s3:GetObject b/\*"]).check("s3:GetObject", "b/x").is_err());
}

#[test]
fn conditions_default_narrow_and_add_up_across_lines() {
    let attach = |arn: &str| [Need::new("iam:AttachRolePolicy", "r").with("policy", arn)];
    let admin = "arn:aws:iam::aws:policy/AdministratorAccess";
    let exec = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy";
    // No `policy=`: no managed policy at all.
    let bare = set(&["iam:AttachRolePolicy r"]);
    let denied = bare.check_all(&attach(admin), &nothing_created).unwrap_err();
    assert_eq!(denied.missing, [format!("iam:AttachRolePolicy r policy={admin}")]);
    let scoped = set(&["iam:AttachRolePolicy r", &format!("iam:AttachRolePolicy * policy={exec}")]);
    assert!(scoped.check_all(&attach(exec), &nothing_created).is_ok());
    assert!(scoped.check_all(&attach(admin), &nothing_created).is_err());
    // Trust: ECS tasks by default, anything else named.
    let create = |principal: &str| [Need::new("iam:CreateRole", "r").with("trust", principal)];
    let roles = set(&["iam:CreateRole r"]);
    assert!(roles.check_all(&create("ecs-tasks.amazonaws.com"), &nothing_created).is_ok());
    let denied = roles.check_all(&create("arn:aws:iam::999999999999:root"), &nothing_created).unwrap_err();
    assert_eq!(denied.missing, ["iam:CreateRole r trust=arn:aws:iam::999999999999:root"]);
    assert_eq!(denied.uncovered, [("trust", "arn:aws:iam::999999999999:root".to_string())]);
    // With no grant at all, the default-admitted condition is not named.
    let denied = set(&[]).check_all(&create("ecs-tasks.amazonaws.com"), &nothing_created).unwrap_err();
    assert_eq!(denied.missing, ["iam:CreateRole r"]);
}

#[test]
fn created_matches_what_the_run_created() {
    let created = |id: &str| id == "vpc-ours" || id == "subnet-ours";
    let set = set(&["ec2:AttachInternetGateway @created", "ecs:CreateService c/s"]);
    assert!(set.check_all(&[Need::new("ec2:AttachInternetGateway", "vpc-ours")], &created).is_ok());
    let denied = set.check_all(&[Need::new("ec2:AttachInternetGateway", "vpc-theirs")], &created).unwrap_err();
    assert_eq!(denied.missing, ["ec2:AttachInternetGateway vpc-theirs"]);
    let service = |subnet: &str| [Need::new("ecs:CreateService", "c/s").with("subnet", subnet)];
    assert!(set.check_all(&service("subnet-ours"), &created).is_ok());
    let denied = set.check_all(&service("subnet-theirs"), &created).unwrap_err();
    assert_eq!(denied.missing, ["ecs:CreateService c/s subnet=subnet-theirs"]);
}

#[test]
fn transcripts_name_every_pair_of_a_call() {
    let needs = [
        Need::new("ecs:CreateService", "c/s").with("subnet", "subnet-1"),
        Need::new("iam:PassRole", "arn:aws:iam::1:role/r"),
    ];
    assert_eq!(transcript(&needs), "c/s subnet=subnet-1 (+ iam:PassRole arn:aws:iam::1:role/r)");
    assert_eq!(detail(&needs[..1]), "subnet=subnet-1");
    assert_eq!(transcript(&[Need::new("s3:GetObject", "b/*")]), r"b/\*");
}
