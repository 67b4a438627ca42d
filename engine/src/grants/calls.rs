//! What each host function needs, in grant lines: shown by `wharf plugin inspect` for every
//! capability a plugin imports, and copied into docs/grants.md (a test keeps the two equal). The
//! authorization walk (`capabilities/authorization_tests.rs`) checks that every WIT function is
//! here and that each resource parameter is really checked.

/// `(interface.function, the grant lines it needs)`; `<x>` is the value of parameter `x`.
pub const CALLS: &[(&str, &str)] = &[
    ("ecs.create-cluster", "ecs:CreateCluster <name>"),
    ("ecs.describe-cluster", "ecs:DescribeClusters <name>"),
    ("ecs.describe-task-definition", "ecs:DescribeTaskDefinition <family>"),
    (
        "ecs.register-task-definition",
        "ecs:RegisterTaskDefinition <family>; iam:PassRole <task-role-arn>; iam:PassRole <execution-role-arn>; \
         secretsmanager:GetSecretValue <each secrets value-from and repository-credentials> \
         (ssm:GetParameters for an SSM parameter ARN)",
    ),
    ("ecs.describe-service", "ecs:DescribeServices <cluster>/<name>"),
    (
        "ecs.create-service",
        "ecs:CreateService <cluster>/<name> task-definition=<task-definition> subnet=<each subnet> \
         security-group=<each security group> (conditions default to @created)",
    ),
    (
        "ecs.update-service",
        "ecs:UpdateService <cluster>/<name> task-definition=<task-definition> subnet=<each subnet> \
         security-group=<each security group> (conditions default to @created)",
    ),
    ("ecs.stopped-tasks", "ecs:ListTasks <cluster>/<service>"),
    ("ec2.default-vpc", "ec2:DescribeVpcs *"),
    ("ec2.find-vpc", "ec2:DescribeVpcs *"),
    ("ec2.subnets", "ec2:DescribeSubnets *"),
    ("ec2.availability-zones", "ec2:DescribeAvailabilityZones *"),
    ("ec2.create-vpc", "ec2:CreateVpc <name>"),
    ("ec2.create-public-subnet", "ec2:CreateSubnet <vpc-id>"),
    (
        "ec2.create-internet-route",
        "ec2:CreateInternetGateway <name>; ec2:AttachInternetGateway <vpc-id>; ec2:CreateRouteTable <vpc-id>; \
         ec2:AssociateRouteTable <each subnet id> (only the changes still to make: a route in place needs none)",
    ),
    ("ec2.find-security-group", "ec2:DescribeSecurityGroups *"),
    ("ec2.create-security-group", "ec2:CreateSecurityGroup <vpc-id>"),
    ("iam.get-role", "iam:GetRole <name>"),
    (
        "iam.create-role",
        "iam:CreateRole <name> trust=<each principal of the trust policy> (default trust=ecs-tasks.amazonaws.com)",
    ),
    ("iam.get-role-policy", "iam:GetRolePolicy <role>"),
    ("iam.put-role-policy", "iam:PutRolePolicy <role> allow=<each ACTION@RESOURCE the document allows>"),
    ("iam.attached-policies", "iam:ListAttachedRolePolicies <role>"),
    ("iam.attach-role-policy", "iam:AttachRolePolicy <role> policy=<policy-arn>"),
    ("s3.get-object-info", "s3:GetObject <bucket>/<key>"),
    (
        "logs.ensure-log-group",
        "logs:CreateLogGroup <name>; logs:PutRetentionPolicy <name> when an existing group's retention changes",
    ),
    ("secrets.describe-secret", "secretsmanager:DescribeSecret <name>"),
    (
        "secrets.create-secret",
        "secretsmanager:CreateSecret <name>; env:Read <each env source>; file:Read <each file source>",
    ),
    (
        "secrets.put-secret-value",
        "secretsmanager:PutSecretValue <name>; env:Read <each env source>; file:Read <each file source>",
    ),
    ("ledger.entries", "none for the step's own entries; ledger:Read <step> for another step's"),
    ("ledger.delete", "ledger:Delete <kind>, on an entry the step may read (ledger:Read <step> if not its own)"),
    (
        "registry.blob-exists",
        "registry:Pull <registry>/<name>, and the auth's: secretsmanager:GetSecretValue <secret> or \
         ecr:GetAuthorizationToken *",
    ),
    ("registry.push-blob", "registry:Push <registry>/<name>, and the auth's"),
    ("registry.find-layer", "registry:Push <registry>/<name>, and the auth's"),
    ("registry.push-layer", "registry:Push <registry>/<name>, and the auth's"),
    ("registry.copy-blob", "registry:Pull <from>; registry:Push <to>, and both auths'"),
    ("registry.push-manifest", "registry:Push <registry>/<name>, and the auth's"),
    ("registry.resolve", "registry:Pull <registry>/<name>, and the auth's"),
    ("registry.pull-manifest", "registry:Pull <registry>/<name>, and the auth's"),
    ("registry.pull-blob", "registry:Pull <registry>/<name>, and the auth's"),
];

/// The grant lines `function` needs, if it is a host function.
pub fn needs_of(function: &str) -> Option<&'static str> {
    CALLS.iter().find(|(f, _)| *f == function).map(|(_, needs)| *needs)
}
