//! Loading and validation tests: the model a valid file produces, and the exact diagnostics for
//! each class of mistake.

use super::*;
use serde_json::json;

mod diagnostics;

// Mostly fictional builtins: the input checks of the real ones (inputs.rs) are tested on their own.
const BUILTINS: &[&str] = &["make-cluster", "create-service", "s3-upload"];

fn parse(src: &str) -> Result<Workflow, WorkflowError> {
    Workflow::parse(Path::new("workflows/x.toml"), src, BUILTINS)
}

fn ok(src: &str) -> Workflow {
    parse(src).unwrap_or_else(|e| panic!("expected a valid workflow, got:\n{e}"))
}

fn diags(src: &str) -> Vec<Diagnostic> {
    match parse(src) {
        Err(WorkflowError::Invalid(d)) => d.0,
        other => panic!("expected diagnostics, got {other:?}"),
    }
}

/// The single diagnostic `src` produces.
fn one(src: &str) -> Diagnostic {
    let d = diags(src);
    assert_eq!(d.len(), 1, "expected one diagnostic, got:\n{}", Diagnostics(d.clone()));
    d.into_iter().next().unwrap()
}

fn messages(src: &str) -> Vec<String> {
    diags(src).into_iter().map(|d| d.message).collect()
}

const HEAD: &str = "name = \"x\"\n";

fn with_steps(steps: &str) -> String {
    format!("{HEAD}{steps}")
}

#[test]
fn valid_file_round_trips_to_the_model() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("plugins")).unwrap();
    std::fs::write(dir.path().join("plugins/svc.wasm"), b"\0asm").unwrap();
    let src = r#"
name = "ecs-example"
description = "Deploys a cluster and a service"

[params.cluster]
type = "string"
default = "ecs-example-cluster"
description = "Cluster name"

[params.replicas]
type = "integer"

[aws]
region = "${env.AWS_REGION}"
profile = "dev"

[run]
concurrency = 2

[[steps]]
id = "cluster"
plugin = "make-cluster"
timeout = "5m"
memory = "256MiB"
retry = { max_attempts = 5, initial_backoff = "2s", max_backoff = "1m" }
grants = ["ecs:CreateCluster ${params.cluster}", "ecs:Describe*"]
[steps.with]
name = "${params.cluster}"
tags = { team = "infra" }

[[steps]]
id = "service"
plugin = "plugins/svc.wasm"
needs = ["cluster"]
with = { cluster = "${steps.cluster.outputs.cluster_arn}", count = "${params.replicas}", when = 1979-05-27 }
"#;
    let path = dir.path().join("deploy.toml");
    std::fs::write(&path, src).unwrap();
    let wf = Workflow::load(&path, BUILTINS).unwrap();
    assert_eq!(wf.name, "ecs-example");
    assert_eq!(wf.description.as_deref(), Some("Deploys a cluster and a service"));
    assert_eq!(wf.path, path);
    assert_eq!(wf.source, src);
    assert_eq!(
        wf.params["cluster"],
        Param {
            ty: ParamType::String,
            default: Some(json!("ecs-example-cluster")),
            description: Some("Cluster name".into())
        }
    );
    assert_eq!(wf.params["replicas"], Param { ty: ParamType::Integer, default: None, description: None });
    assert_eq!(wf.aws, AwsSettings { region: Some("${env.AWS_REGION}".into()), profile: Some("dev".into()) });
    assert_eq!(wf.concurrency, 2);

    let c = wf.step("cluster").unwrap();
    assert_eq!(c.plugin, PluginRef::Builtin("make-cluster".into()));
    assert!(c.needs.is_empty());
    assert_eq!(c.timeout, Duration::from_secs(300));
    assert_eq!(c.memory_limit, 256 * 1024 * 1024);
    assert_eq!(
        c.retry,
        RetryPolicy { max_attempts: 5, initial_backoff: Duration::from_secs(2), max_backoff: Duration::from_secs(60) }
    );
    assert_eq!(c.grants, vec!["ecs:CreateCluster ${params.cluster}", "ecs:Describe*"]);
    assert_eq!(c.with, json!({"name": "${params.cluster}", "tags": {"team": "infra"}}));
    assert_eq!(c.definition_hash.len(), 64);

    let s = wf.step("service").unwrap();
    assert_eq!(s.plugin, PluginRef::Path(dir.path().join("plugins/svc.wasm")));
    assert_eq!(s.needs, vec!["cluster"]);
    assert_eq!(s.with["when"], json!("1979-05-27"));
    // Defaults.
    assert_eq!(s.timeout, Duration::from_secs(600));
    assert_eq!(s.memory_limit, 128 * 1024 * 1024);
    assert_eq!(s.retry, RetryPolicy::default());
    assert_eq!(wf.topo_order(), vec!["cluster", "service"]);
}

#[test]
fn defaults_for_a_minimal_file() {
    let wf = ok(&with_steps("[[steps]]\nid = \"a\"\nplugin = \"s3-upload\"\n"));
    assert_eq!(wf.concurrency, 4);
    assert_eq!(wf.aws, AwsSettings::default());
    assert_eq!(wf.steps[0].with, json!({}));
}

#[test]
fn template_references_add_implicit_needs() {
    let wf = ok(&with_steps(
        "[[steps]]\nid = \"vpc\"\nplugin = \"s3-upload\"\n[[steps]]\nid = \"cluster\"\nplugin = \"s3-upload\"\n\
         [[steps]]\nid = \"svc\"\nplugin = \"s3-upload\"\nneeds = [\"vpc\"]\ngrants = [\"ecs:CreateService ${steps.cluster.outputs.arn}\"]\n\
         with = { a = [\"${steps.vpc.outputs.id}\", \"${steps.cluster.outputs.x.y}\"] }\n",
    ));
    assert_eq!(wf.step("svc").unwrap().needs, vec!["cluster", "vpc"]);
    assert_eq!(wf.topo_order(), vec!["vpc", "cluster", "svc"]);
}

#[test]
fn definition_hash_tracks_semantics_not_formatting() {
    let base =
        with_steps("[[steps]]\nid = \"a\"\nplugin = \"s3-upload\"\ntimeout = \"5m\"\nwith = { x = 1, y = \"z\" }\n");
    let h = |src: &str| ok(src).steps[0].definition_hash.clone();
    let original = h(&base);
    let reformatted = "# deploys things\nname   =   \"x\"\n\n[[steps]]\n  plugin = \"s3-upload\"   # the uploader\n  id = \"a\"\n  timeout = \"300s\"\n  [steps.with]\n  y = \"z\"\n  x = 1\n";
    assert_eq!(h(reformatted), original);
    assert_ne!(h(&base.replace("x = 1", "x = 2")), original);
    assert_ne!(h(&base.replace("5m", "6m")), original);
    assert_ne!(h(&base.replace("s3-upload", "make-cluster")), original);
    assert_ne!(h(&base.replace("timeout", "grants = [\"s3:GetObject b\"]\ntimeout")), original);
    assert_ne!(h(&base.replace("timeout", "memory = \"64MiB\"\ntimeout")), original);
    assert_ne!(h(&base.replace("timeout", "retry = { max_attempts = 1 }\ntimeout")), original);
    // The id is not part of the definition.
    assert_eq!(h(&base.replace("id = \"a\"", "id = \"b\"")), original);
}

#[test]
fn resolve_params_types_and_defaults() {
    let wf = ok(&with_steps(
        "[params.cluster]\ntype = \"string\"\ndefault = \"c\"\n[params.replicas]\ntype = \"integer\"\ndescription = \"How many tasks\"\n\
         [params.public]\ntype = \"boolean\"\ndefault = false\n[[steps]]\nid = \"a\"\nplugin = \"s3-upload\"\n",
    ));
    let given = |kv: &[(&str, &str)]| kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
    let p = wf.resolve_params(&given(&[("replicas", "3"), ("public", "true")])).unwrap();
    assert_eq!(
        p,
        BTreeMap::from([("cluster".into(), json!("c")), ("replicas".into(), json!(3)), ("public".into(), json!(true))])
    );

    let WorkflowError::Params(errs) =
        wf.resolve_params(&given(&[("replicas", "abc"), ("publik", "x"), ("public", "yes")])).unwrap_err()
    else {
        panic!()
    };
    assert_eq!(
        errs,
        vec![
            "param `replicas` is an integer; `abc` is not",
            "unknown param `publik`; did you mean `public`?",
            "param `public` is a boolean (true or false); `yes` is not",
        ]
    );
    let e = wf.resolve_params(&[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "error: missing required param `replicas` (How many tasks); pass --param replicas=<integer>"
    );
    assert!(wf.resolve_params(&given(&[("replicas", "1"), ("replicas", "2")])).is_err());
}

#[test]
fn graphs_contain_nodes_and_edges() {
    let wf = ok(&with_steps(
        "[[steps]]\nid = \"vpc\"\nplugin = \"s3-upload\"\n[[steps]]\nid = \"my-cluster\"\nplugin = \"make-cluster\"\nneeds = [\"vpc\"]\n",
    ));
    let m = graph::mermaid(&wf);
    assert!(m.starts_with("flowchart TD\n"), "{m}");
    assert!(m.contains("s0[\"vpc (s3-upload)\"]") && m.contains("s1[\"my-cluster (make-cluster)\"]"), "{m}");
    assert!(m.contains("s0 --> s1"), "{m}");
    let d = graph::dot(&wf);
    assert!(d.contains("\"my-cluster\" [label=\"my-cluster (make-cluster)\"];"), "{d}");
    assert!(d.contains("\"vpc\" -> \"my-cluster\";"), "{d}");
}

#[test]
fn load_reports_io_errors_with_the_path() {
    let e = Workflow::load(Path::new("/nonexistent/wf.toml"), BUILTINS).unwrap_err();
    assert!(matches!(e, WorkflowError::Io { .. }));
    assert!(e.to_string().starts_with("cannot read workflow file `/nonexistent/wf.toml`"), "{e}");
}

#[test]
fn state_section_selects_the_backend() {
    let step = "[[steps]]\nid = \"a\"\nplugin = \"make-cluster\"\n";
    let w = ok(&format!(
        "{HEAD}[state]\nbackend = \"s3\"\nbucket = \"team\"\nprefix = \"prod\"\nregion = \"eu-west-1\"\n{step}"
    ));
    let want = StateSettings::S3 {
        bucket: "team".into(),
        prefix: "prod".into(),
        region: Some("eu-west-1".into()),
        endpoint: None,
    };
    assert_eq!(w.state, Some(want));
    assert_eq!(ok(&format!("{HEAD}[state]\nbackend = \"sled\"\n{step}")).state, Some(StateSettings::Sled));
    assert_eq!(ok(&format!("{HEAD}{step}")).state, None);

    let d = one(&format!("{HEAD}[state]\nbackend = \"s3\"\n{step}"));
    assert!(d.message.contains("needs a `bucket`"), "{}", d.message);
    let d = one(&format!("{HEAD}[state]\nbackend = \"dynamo\"\n{step}"));
    assert!(d.message.contains("unknown state backend `dynamo`"), "{}", d.message);
    let d = one(&format!("{HEAD}[state]\nbackend = \"s3\"\nbuckett = \"x\"\nbucket = \"b\"\n{step}"));
    assert!(d.message.contains("unknown key `buckett` in [state]"), "{}", d.message);
    let d = one(&format!("{HEAD}[state]\nbackend = \"sled\"\nbucket = \"b\"\n{step}"));
    assert!(d.message.contains("takes no bucket"), "{}", d.message);
    let d = one(&format!("{HEAD}[state]\nbackend = \"s3\"\nbucket = \"${{env.B}}\"\n{step}"));
    assert!(d.message.contains("templates cannot be used in [state]"), "{}", d.message);
}
