//! The walk over every host function: each resource-bearing parameter must be part of the call's
//! authorization. Every function of every capability interface in `wit/0.1` must be listed below,
//! with each leaf of its parameters (record fields, list elements, variant cases) either named
//! as a resource — its sentinel value must then appear in the denial the call gets with no grants —
//! or named as not one, with the reason. A new function or parameter fails this test until it is
//! classified, so it cannot be forgotten.

use super::*;
use crate::grants;
use crate::host::bindings::wharf::plugin::{ec2, ecs, iam, ledger, logs, registry, s3, secrets};
use crate::host::sandbox::SandboxState;
use crate::journal::{SledBackend, StateBackend};
use std::collections::BTreeSet;
use std::path::Path;

/// One host function: its resource leaves with the sentinel each is called with, and its other
/// leaves with why they are not resources.
struct Case {
    function: &'static str,
    resources: &'static [(&'static str, &'static str)],
    others: &'static [(&'static str, &'static str)],
    /// Parameters that are a registry `repository` record, classified once by [`repository_leaves`].
    repositories: &'static [&'static str],
}

const NONE: &[&str] = &[];

/// What create-service and update-service requests name: the service, what it runs and where.
const SERVICE_REQUEST: &[(&str, &str)] = &[
    ("request.cluster", "res-cluster"),
    ("request.name", "res-service"),
    ("request.task-definition", "res-taskdef"),
    ("request.network.subnets", "res-subnet"),
    ("request.network.security-groups", "res-sg"),
];

/// What a secret value's sources name (create-secret, put-secret-value).
const SECRET_VALUE: &[(&str, &str)] = &[
    ("name", "res-secret"),
    ("value.plain.env", "RES_PLAIN_ENV"),
    ("value.plain.file", "res-plain-file"),
    ("value.json-object.1.env", "RES_JSON_ENV"),
    ("value.json-object.1.file", "res-json-file"),
];

const NAME: &str = "an input that names nothing AWS authorizes";

const CASES: &[Case] = &[
    Case {
        function: "ecs.create-cluster",
        resources: &[("request.name", "res-cluster")],
        others: &[("request.container-insights", "a setting")],
        repositories: NONE,
    },
    Case { function: "ecs.describe-cluster", resources: &[("name", "res-cluster")], others: &[], repositories: NONE },
    Case {
        function: "ecs.describe-task-definition",
        resources: &[("family", "res-family")],
        others: &[],
        repositories: NONE,
    },
    Case {
        function: "ecs.register-task-definition",
        resources: &[
            ("definition.family", "res-family"),
            ("definition.task-role-arn", "arn:aws:iam::1:role/res-task-role"),
            ("definition.execution-role-arn", "arn:aws:iam::1:role/res-exec-role"),
            ("definition.containers.secrets.value-from", "arn:aws:secretsmanager:r:1:secret:res-env-secret"),
            ("definition.containers.repository-credentials", "arn:aws:secretsmanager:r:1:secret:res-registry-secret"),
        ],
        others: &[
            ("definition.cpu", "a size"),
            ("definition.memory", "a size"),
            ("definition.cpu-architecture", "a platform"),
            ("definition.operating-system-family", "a platform"),
            ("definition.containers.name", "a name inside the definition"),
            ("definition.containers.image", "pulled by ECS with the credentials authorized above"),
            ("definition.containers.essential", "a setting"),
            ("definition.containers.command", "the container's own arguments"),
            ("definition.containers.entry-point", "the container's own arguments"),
            ("definition.containers.environment.name", "the container's own environment"),
            ("definition.containers.environment.value", "the container's own environment"),
            ("definition.containers.secrets.name", "the variable the secret is put in"),
            ("definition.containers.port-mappings.container-port", "a port"),
            ("definition.containers.port-mappings.protocol", "a protocol"),
            ("definition.containers.logs.group", "written by the task's execution role, whose policy bounds it"),
            ("definition.containers.logs.region", "a region"),
            ("definition.containers.logs.stream-prefix", "a name inside the group"),
        ],
        repositories: NONE,
    },
    Case {
        function: "ecs.describe-service",
        resources: &[("cluster", "res-cluster"), ("name", "res-service")],
        others: &[],
        repositories: NONE,
    },
    Case {
        function: "ecs.create-service",
        resources: SERVICE_REQUEST,
        others: &[
            ("request.desired-count", "a count"),
            ("request.network.assign-public-ip", "a setting"),
            ("request.circuit-breaker", "a setting"),
            ("request.client-token", "an idempotency token"),
        ],
        repositories: NONE,
    },
    Case {
        function: "ecs.update-service",
        resources: SERVICE_REQUEST,
        others: &[
            ("request.desired-count", "a count"),
            ("request.network.assign-public-ip", "a setting"),
            ("request.circuit-breaker", "a setting"),
        ],
        repositories: NONE,
    },
    Case {
        function: "ecs.stopped-tasks",
        resources: &[("cluster", "res-cluster"), ("service", "res-service")],
        others: &[],
        repositories: NONE,
    },
    Case { function: "ec2.default-vpc", resources: &[], others: &[], repositories: NONE },
    Case {
        function: "ec2.find-vpc",
        resources: &[],
        others: &[("name", "a lookup under ec2:DescribeVpcs *")],
        repositories: NONE,
    },
    Case {
        function: "ec2.subnets",
        resources: &[],
        others: &[("vpc-id", "a lookup under ec2:DescribeSubnets *")],
        repositories: NONE,
    },
    Case { function: "ec2.availability-zones", resources: &[], others: &[], repositories: NONE },
    Case {
        function: "ec2.create-vpc",
        resources: &[("name", "res-vpc")],
        others: &[("cidr-block", "an address range")],
        repositories: NONE,
    },
    Case {
        function: "ec2.create-public-subnet",
        resources: &[("vpc-id", "res-vpc-id")],
        others: &[
            ("name", "the new subnet's Name tag"),
            ("cidr-block", "an address range"),
            ("availability-zone", "a zone"),
        ],
        repositories: NONE,
    },
    Case {
        function: "ec2.create-internet-route",
        // Looked up before it is authorized (route.rs); a VPC `wharf plan` made up has nothing to
        // look up, so every change is needed and named.
        resources: &[("vpc-id", "planned-res-vpc-id"), ("name", "res-gateway"), ("subnet-ids", "res-subnet-id")],
        others: &[],
        repositories: NONE,
    },
    Case {
        function: "ec2.find-security-group",
        resources: &[],
        others: &[("vpc-id", "a lookup under ec2:DescribeSecurityGroups *"), ("name", "a lookup")],
        repositories: NONE,
    },
    Case {
        function: "ec2.create-security-group",
        resources: &[("vpc-id", "res-vpc-id")],
        others: &[
            ("name", "the new group's name"),
            ("description", "text"),
            ("ingress.port", "a rule of the new group"),
            ("ingress.cidr", "a rule of the new group"),
        ],
        repositories: NONE,
    },
    Case { function: "iam.get-role", resources: &[("name", "res-role")], others: &[], repositories: NONE },
    Case {
        function: "iam.create-role",
        resources: &[("name", "res-role"), ("trust-policy", "arn:aws:iam::999:root")],
        others: &[("description", "text")],
        repositories: NONE,
    },
    Case {
        function: "iam.get-role-policy",
        resources: &[("role", "res-role")],
        others: &[("policy-name", NAME)],
        repositories: NONE,
    },
    Case {
        function: "iam.put-role-policy",
        resources: &[("role", "res-role"), ("document", "s3:DeleteBucket@arn:aws:s3:::res-bucket")],
        others: &[("policy-name", "a name inside the role, which the role grant covers")],
        repositories: NONE,
    },
    Case { function: "iam.attached-policies", resources: &[("role", "res-role")], others: &[], repositories: NONE },
    Case {
        function: "iam.attach-role-policy",
        resources: &[("role", "res-role"), ("policy-arn", "arn:aws:iam::aws:policy/ResPolicy")],
        others: &[],
        repositories: NONE,
    },
    Case {
        function: "s3.get-object-info",
        resources: &[("bucket", "res-bucket"), ("key", "res-key")],
        others: &[],
        repositories: NONE,
    },
    Case { function: "secrets.describe-secret", resources: &[("name", "res-secret")], others: &[], repositories: NONE },
    Case {
        function: "secrets.create-secret",
        resources: SECRET_VALUE,
        others: &[
            ("description", "text"),
            ("value.json-object.0", "a key inside the secret's JSON"),
            ("client-request-token", "an idempotency token"),
        ],
        repositories: NONE,
    },
    Case {
        function: "secrets.put-secret-value",
        resources: SECRET_VALUE,
        others: &[
            ("value.json-object.0", "a key inside the secret's JSON"),
            ("client-request-token", "an idempotency token"),
        ],
        repositories: NONE,
    },
    Case { function: "ledger.entries", resources: &[], others: &[], repositories: NONE },
    Case {
        function: "ledger.delete",
        resources: &[("kind", "res:kind")],
        others: &[
            ("id", "an entry of this run's ledger, which must also be visible to the step (ledger:Read of its step)"),
            ("options.secret-recovery-days", "a setting"),
        ],
        repositories: NONE,
    },
    Case {
        function: "registry.blob-exists",
        resources: &[],
        others: &[("digest", "content address")],
        repositories: &["repo"],
    },
    Case {
        function: "registry.push-blob",
        resources: &[],
        others: &[("digest", "content address"), ("data", "content")],
        repositories: &["repo"],
    },
    Case {
        function: "registry.find-layer",
        resources: &[],
        others: &[("diff-id", "content address")],
        repositories: &["repo"],
    },
    Case {
        function: "registry.push-layer",
        resources: &[],
        others: &[("digest", "content address"), ("diff-id", "content address"), ("data", "content")],
        repositories: &["repo"],
    },
    Case {
        function: "registry.copy-blob",
        resources: &[],
        others: &[("digest", "content address")],
        repositories: &["from", "to"],
    },
    Case {
        function: "registry.push-manifest",
        resources: &[],
        others: &[
            ("tag", "a name inside the repository"),
            ("manifest.digest", "content address"),
            ("manifest.media-type", "a format"),
            ("manifest.bytes", "content"),
        ],
        repositories: &["repo"],
    },
    Case {
        function: "registry.resolve",
        resources: &[],
        others: &[("reference", "a tag or digest inside the repository")],
        repositories: &["repo"],
    },
    Case {
        function: "registry.pull-manifest",
        resources: &[],
        others: &[("reference", "a tag or digest inside the repository")],
        repositories: &["repo"],
    },
    Case {
        function: "registry.pull-blob",
        resources: &[],
        others: &[("digest", "content address")],
        repositories: &["repo"],
    },
    Case {
        function: "logs.ensure-log-group",
        resources: &[("name", "res-group")],
        others: &[(
            "retention-days",
            "a setting; changing an existing group's needs logs:PutRetentionPolicy, checked when it applies",
        )],
        repositories: NONE,
    },
];

/// Calls `function` with the sentinels of [`CASES`]; every call must be denied before it acts.
async fn invoke(state: &mut SandboxState, function: &str) -> Result<(), WitError> {
    let network = || ecs::Network {
        subnets: vec!["res-subnet".into()],
        security_groups: vec!["res-sg".into()],
        assign_public_ip: false,
    };
    let role_doc =
        r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::999:root"},"Action":"sts:AssumeRole"}]}"#;
    let policy_doc =
        r#"{"Statement":[{"Effect":"Allow","Action":"s3:DeleteBucket","Resource":"arn:aws:s3:::res-bucket"}]}"#;
    use ec2::Host as _;
    use ecs::Host as _;
    use iam::Host as _;
    use logs::Host as _;
    use s3::Host as _;
    use secrets::Host as _;
    match function {
        "ecs.create-cluster" => {
            let request = ecs::CreateClusterRequest { name: "res-cluster".into(), container_insights: true };
            state.create_cluster(request).await.map(drop)
        }
        "ecs.describe-cluster" => state.describe_cluster("res-cluster".into()).await.map(drop),
        "ecs.describe-task-definition" => state.describe_task_definition("res-family".into()).await.map(drop),
        "ecs.register-task-definition" => {
            let container = ecs::ContainerDefinition {
                name: "c".into(),
                image: "image".into(),
                essential: true,
                command: vec![],
                entry_point: vec![],
                environment: vec![],
                secrets: vec![ecs::ContainerSecret {
                    name: "E".into(),
                    value_from: "arn:aws:secretsmanager:r:1:secret:res-env-secret".into(),
                }],
                port_mappings: vec![],
                repository_credentials: Some("arn:aws:secretsmanager:r:1:secret:res-registry-secret".into()),
                logs: None,
            };
            let definition = ecs::TaskDefinition {
                family: "res-family".into(),
                cpu: "256".into(),
                memory: "512".into(),
                task_role_arn: Some("arn:aws:iam::1:role/res-task-role".into()),
                execution_role_arn: Some("arn:aws:iam::1:role/res-exec-role".into()),
                cpu_architecture: "X86_64".into(),
                operating_system_family: "LINUX".into(),
                containers: vec![container],
            };
            state.register_task_definition(definition).await.map(drop)
        }
        "ecs.describe-service" => state.describe_service("res-cluster".into(), "res-service".into()).await.map(drop),
        "ecs.create-service" => {
            let request = ecs::CreateServiceRequest {
                cluster: "res-cluster".into(),
                name: "res-service".into(),
                task_definition: "res-taskdef".into(),
                desired_count: 1,
                network: network(),
                circuit_breaker: true,
                client_token: "t".into(),
            };
            state.create_service(request).await.map(drop)
        }
        "ecs.update-service" => {
            let request = ecs::UpdateServiceRequest {
                cluster: "res-cluster".into(),
                name: "res-service".into(),
                task_definition: "res-taskdef".into(),
                desired_count: 1,
                network: network(),
                circuit_breaker: true,
            };
            state.update_service(request).await.map(drop)
        }
        "ecs.stopped-tasks" => state.stopped_tasks("res-cluster".into(), "res-service".into()).await.map(drop),
        "ec2.create-vpc" => state.create_vpc("res-vpc".into(), "10.0.0.0/16".into()).await.map(drop),
        "ec2.create-public-subnet" => state
            .create_public_subnet("res-vpc-id".into(), "n".into(), "10.0.0.0/24".into(), "az".into())
            .await
            .map(drop),
        "ec2.create-internet-route" => state
            .create_internet_route("planned-res-vpc-id".into(), "res-gateway".into(), vec!["res-subnet-id".into()])
            .await
            .map(drop),
        "ec2.create-security-group" => {
            let ingress = vec![ec2::IngressRule { port: 80, cidr: "0.0.0.0/0".into() }];
            state.create_security_group("res-vpc-id".into(), "n".into(), "d".into(), ingress).await.map(drop)
        }
        "iam.get-role" => state.get_role("res-role".into()).await.map(drop),
        "iam.create-role" => state.create_role("res-role".into(), role_doc.into(), "d".into()).await.map(drop),
        "iam.get-role-policy" => state.get_role_policy("res-role".into(), "p".into()).await.map(drop),
        "iam.put-role-policy" => state.put_role_policy("res-role".into(), "p".into(), policy_doc.into()).await,
        "iam.attached-policies" => state.attached_policies("res-role".into()).await.map(drop),
        "iam.attach-role-policy" => {
            state.attach_role_policy("res-role".into(), "arn:aws:iam::aws:policy/ResPolicy".into()).await
        }
        "s3.get-object-info" => state.get_object_info("res-bucket".into(), "res-key".into()).await.map(drop),
        "secrets.describe-secret" => state.describe_secret("res-secret".into()).await.map(drop),
        "secrets.create-secret" | "secrets.put-secret-value" => {
            // Each variant of the value in one call: the denials together must name them all.
            let plain = secrets::SecretValue::Plain(secrets::ValueSource::Env("RES_PLAIN_ENV".into()));
            let file = secrets::SecretValue::Plain(secrets::ValueSource::File("res-plain-file".into()));
            let json = secrets::SecretValue::JsonObject(vec![
                ("a".into(), secrets::ValueSource::Env("RES_JSON_ENV".into())),
                ("b".into(), secrets::ValueSource::File("res-json-file".into())),
            ]);
            let mut messages = Vec::new();
            for value in [plain, file, json] {
                let result = match function {
                    "secrets.create-secret" => {
                        state.create_secret("res-secret".into(), "d".into(), value, "t".into()).await
                    }
                    _ => state.put_secret_value("res-secret".into(), value, "t".into()).await,
                };
                match result {
                    Err(e) if e.kind == ErrorKind::Denied => messages.push(e.message),
                    other => return other.map(drop),
                }
            }
            Err(WitError::new(ErrorKind::Denied, "GrantMissing", messages.join("\n")))
        }
        "ledger.delete" => {
            let options = ledger::DeleteOptions { secret_recovery_days: None };
            ledger::Host::delete(state, "res:kind".into(), "res-id".into(), options).await.map(drop)
        }
        f if f.starts_with("registry.") => invoke_registry(state, f).await,
        "logs.ensure-log-group" => state.ensure_log_group("res-group".into(), None).await.map(drop),
        other => panic!("no invocation for {other}: add one to `invoke`"),
    }
}

/// The registry functions, with repositories whose credentials come from secrets.
async fn invoke_registry(state: &mut SandboxState, function: &str) -> Result<(), WitError> {
    use registry::Host as _;
    let repo = |registry: &str, name: &str, secret: &str| registry::Repository {
        registry: registry.into(),
        name: name.into(),
        auth: registry::Auth::BasicFromSecret(secret.into()),
    };
    let from = || repo("res.registry.example", "res-repo", "res-registry-secret");
    let sha = |bytes: &[u8]| format!("sha256:{}", crate::host::cache::digest(bytes));
    let empty = sha(b"");
    let media_type = "application/vnd.oci.image.manifest.v1+json";
    let bytes = format!(r#"{{"mediaType":"{media_type}"}}"#).into_bytes();
    match function {
        "registry.blob-exists" => state.blob_exists(from(), empty).await.map(drop),
        "registry.push-blob" => state.push_blob(from(), empty, vec![]).await.map(drop),
        "registry.find-layer" => state.find_layer(from(), empty).await.map(drop),
        "registry.push-layer" => state.push_layer(from(), empty.clone(), empty, vec![]).await.map(drop),
        "registry.copy-blob" => {
            let to = repo("res-to.registry.example", "res-to-repo", "res-to-secret");
            state.copy_blob(from(), to, empty).await.map(drop)
        }
        "registry.push-manifest" => {
            let manifest = registry::Manifest { digest: sha(&bytes), media_type: media_type.into(), bytes };
            state.push_manifest(from(), "v1".into(), manifest).await.map(drop)
        }
        "registry.resolve" => state.resolve(from(), "v1".into()).await.map(drop),
        "registry.pull-manifest" => state.pull_manifest(from(), "v1".into()).await.map(drop),
        "registry.pull-blob" => state.pull_blob(from(), empty).await.map(drop),
        other => panic!("no invocation for {other}: add one to `invoke_registry`"),
    }
}

/// Interfaces whose functions touch no AWS or registry resource (and the ones checked elsewhere).
const NOT_WALKED: &[(&str, &str)] = &[
    ("log", "writes to the step's own transcript"),
    ("digest", "hashes bytes in the host, touches nothing"),
    ("parallel", "runs parts of the same step under the same grants"),
    ("parts", "exported by plugins, not a host function"),
    ("types", "types only"),
];

/// Every leaf of every parameter of every function of the capability interfaces, by WIT path.
fn wit_leaves() -> Vec<(String, Vec<String>)> {
    let mut resolve = wit_parser::Resolve::default();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit/0.1");
    resolve.push_dir(&dir).expect("wit/0.1 parses");
    let mut functions = Vec::new();
    for (_, interface) in &resolve.interfaces {
        let Some(name) = interface.name.as_deref() else { continue };
        if NOT_WALKED.iter().any(|(n, _)| *n == name) || interface.package.is_none() {
            continue;
        }
        for (fname, function) in &interface.functions {
            let mut leaves = Vec::new();
            for param in &function.params {
                collect_leaves(&resolve, &param.ty, param.name.clone(), &mut leaves);
            }
            functions.push((format!("{name}.{fname}"), leaves));
        }
    }
    functions
}

fn collect_leaves(resolve: &wit_parser::Resolve, ty: &wit_parser::Type, path: String, out: &mut Vec<String>) {
    use wit_parser::{Type, TypeDefKind};
    let Type::Id(id) = ty else {
        out.push(path);
        return;
    };
    match &resolve.types[*id].kind {
        TypeDefKind::Record(record) => {
            for field in &record.fields {
                collect_leaves(resolve, &field.ty, format!("{path}.{}", field.name), out);
            }
        }
        TypeDefKind::List(inner) | TypeDefKind::Option(inner) | TypeDefKind::Type(inner) => {
            collect_leaves(resolve, inner, path, out)
        }
        TypeDefKind::Tuple(tuple) => {
            for (i, inner) in tuple.types.iter().enumerate() {
                collect_leaves(resolve, inner, format!("{path}.{i}"), out);
            }
        }
        TypeDefKind::Variant(variant) => {
            for case in &variant.cases {
                match &case.ty {
                    Some(inner) => collect_leaves(resolve, inner, format!("{path}.{}", case.name), out),
                    None => out.push(format!("{path}.{}", case.name)),
                }
            }
        }
        _ => out.push(path),
    }
}

/// The leaves of a `repository` parameter `param`: where, which repository and which credentials
/// are resources (with the sentinels `invoke_registry` passes); the auth kinds without a value
/// are not.
fn repository_leaves(param: &str) -> (Vec<(String, String)>, Vec<String>) {
    let prefix = if param == "to" { "res-to" } else { "res" };
    let secret = if param == "to" { "res-to-secret".to_string() } else { "res-registry-secret".to_string() };
    let resources = vec![
        (format!("{param}.registry"), format!("{prefix}.registry.example")),
        (format!("{param}.name"), format!("{prefix}-repo")),
        (format!("{param}.auth.basic-from-secret"), secret),
    ];
    (resources, vec![format!("{param}.auth.anonymous"), format!("{param}.auth.ecr")])
}

/// A case's resource leaves with their sentinels, and its other leaves.
fn classified(case: &Case) -> (Vec<(String, String)>, Vec<String>) {
    let mut resources: Vec<(String, String)> =
        case.resources.iter().map(|(p, v)| (p.to_string(), v.to_string())).collect();
    let mut others: Vec<String> = case.others.iter().map(|(p, _)| p.to_string()).collect();
    for param in case.repositories {
        let (r, o) = repository_leaves(param);
        resources.extend(r);
        others.extend(o);
    }
    (resources, others)
}

#[test]
fn every_parameter_of_every_host_function_is_classified() {
    let mut unclassified = Vec::new();
    let mut seen = BTreeSet::new();
    for (function, leaves) in wit_leaves() {
        seen.insert(function.clone());
        let Some(case) = CASES.iter().find(|c| c.function == function) else {
            unclassified.push(format!("{function}: no case"));
            continue;
        };
        let (resources, others) = classified(case);
        let paths: Vec<&String> = resources.iter().map(|(p, _)| p).chain(&others).collect();
        for leaf in &leaves {
            if !paths.contains(&leaf) {
                unclassified.push(format!("{function}: parameter `{leaf}` is neither a resource nor an other"));
            }
        }
        for path in paths {
            if !leaves.contains(path) {
                unclassified.push(format!("{function}: `{path}` is not a parameter (renamed?)"));
            }
        }
    }
    for case in CASES {
        if !seen.contains(case.function) {
            unclassified.push(format!("{}: in CASES but not in the WIT", case.function));
        }
    }
    assert!(unclassified.is_empty(), "classify these in authorization_tests.rs:\n{}", unclassified.join("\n"));
}

#[tokio::test]
async fn every_resource_parameter_is_part_of_the_authorization() {
    let dir = tempfile::tempdir().unwrap();
    let journal = SledBackend::new(dir.path()).unwrap().create_run(crate::journal::tests::sample_run("r")).unwrap();
    let mut missed = Vec::new();
    for case in CASES {
        let (resources, _) = classified(case);
        if resources.is_empty() {
            continue;
        }
        let events = EventSink::new(journal.clone(), Arc::new(crate::events::Quiet));
        // No AWS behind it: every call must be denied before a request is even built.
        let aws = Arc::new(aws::Aws::new(aws::AwsSettings::default()));
        let caps = Capabilities::new("r", "s", GrantSet::new("s", vec![]), events, aws);
        let mut state = SandboxState::new(Some(caps), 1 << 20);
        let denial = match invoke(&mut state, case.function).await {
            Err(e) if e.kind == ErrorKind::Denied => e.message,
            other => {
                missed.push(format!("{}: not denied without grants: {other:?}", case.function));
                continue;
            }
        };
        for (path, sentinel) in &resources {
            if !denial.contains(sentinel.as_str()) {
                missed.push(format!("{}: `{path}` ({sentinel}) is not in the denial: {denial}", case.function));
            }
        }
    }
    assert!(missed.is_empty(), "{}", missed.join("\n"));
}

/// `grants::calls` names every host function, and docs/grants.md shows exactly that table.
#[test]
fn every_host_function_documents_what_it_needs() {
    let functions: Vec<String> = wit_leaves().into_iter().map(|(f, _)| f).collect();
    let undocumented: Vec<&String> = functions.iter().filter(|f| grants::calls::needs_of(f).is_none()).collect();
    assert!(undocumented.is_empty(), "add these to grants/calls.rs: {undocumented:?}");
    let stale: Vec<&str> =
        grants::calls::CALLS.iter().map(|(f, _)| *f).filter(|f| !functions.iter().any(|w| w == f)).collect();
    assert!(stale.is_empty(), "not in the WIT any more: {stale:?}");
    let docs = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/grants.md")).unwrap();
    let rows: Vec<String> = grants::calls::CALLS.iter().map(|(f, needs)| format!("| `{f}` | {needs} |")).collect();
    let missing: Vec<&String> = rows.iter().filter(|row| !docs.lines().any(|l| l == row.as_str())).collect();
    assert!(
        missing.is_empty(),
        "docs/grants.md's table differs from grants/calls.rs; its rows should be:\n{}",
        rows.join("\n")
    );
}
