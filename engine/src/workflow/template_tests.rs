use super::*;
use serde_json::json;

struct Fixture {
    params: BTreeMap<String, Value>,
    steps: BTreeMap<String, Value>,
}

fn fixture() -> Fixture {
    let params = BTreeMap::from([
        ("cluster".to_string(), json!("prod")),
        ("replicas".to_string(), json!(3)),
        ("public".to_string(), json!(true)),
    ]);
    let steps = BTreeMap::from([(
        "cluster".to_string(),
        json!({"cluster_arn": "arn:aws:ecs:1", "cluster_name": "prod", "meta": {"tags": ["a", "b"], "n": 2}}),
    )]);
    Fixture { params, steps }
}

fn env(name: &str) -> Option<String> {
    (name == "HOME_REGION").then(|| "eu-west-1".to_string())
}

fn with_ctx<R>(f: &Fixture, with: Option<&Value>, body: impl FnOnce(&TemplateContext) -> R) -> R {
    let ctx = TemplateContext { params: &f.params, steps: &f.steps, run_id: "run-42", env: &env, with };
    body(&ctx)
}

fn render(s: &str) -> Result<Value, TemplateError> {
    with_ctx(&fixture(), None, |ctx| render_value(&json!(s), ctx))
}

#[test]
fn whole_expression_keeps_the_json_type() {
    assert_eq!(render("${params.replicas}").unwrap(), json!(3));
    assert_eq!(render("${params.public}").unwrap(), json!(true));
    assert_eq!(render("${steps.cluster.outputs.meta.tags}").unwrap(), json!(["a", "b"]));
    assert_eq!(render("${steps.cluster.outputs.meta}").unwrap(), json!({"tags": ["a", "b"], "n": 2}));
}

#[test]
fn interpolation_is_raw_for_strings_and_compact_json_otherwise() {
    assert_eq!(render("svc-${params.cluster}-${params.replicas}").unwrap(), json!("svc-prod-3"));
    assert_eq!(render("tags=${steps.cluster.outputs.meta.tags}").unwrap(), json!(r#"tags=["a","b"]"#));
    assert_eq!(render("${run.id}/${env.HOME_REGION}").unwrap(), json!("run-42/eu-west-1"));
    assert_eq!(render("no templates $ here $x {y}").unwrap(), json!("no templates $ here $x {y}"));
}

#[test]
fn nested_output_paths_and_array_indices() {
    assert_eq!(render("${steps.cluster.outputs.meta.n}").unwrap(), json!(2));
    assert_eq!(render("${steps.cluster.outputs.meta.tags.1}").unwrap(), json!("b"));
}

#[test]
fn double_dollar_escapes() {
    assert_eq!(render("$${params.cluster}").unwrap(), json!("${params.cluster}"));
    assert_eq!(render("a$${b} ${params.cluster}").unwrap(), json!("a${b} prod"));
    assert_eq!(references("$${params.x}").unwrap(), vec![]);
}

#[test]
fn render_walks_objects_and_arrays() {
    let v = json!({"a": ["${params.replicas}", {"b": "x-${params.cluster}"}], "c": 1});
    let out = with_ctx(&fixture(), None, |ctx| render_value(&v, ctx)).unwrap();
    assert_eq!(out, json!({"a": [3, {"b": "x-prod"}], "c": 1}));
    let s = with_ctx(&fixture(), None, |ctx| render_str("${params.replicas}", ctx)).unwrap();
    assert_eq!(s, "3");
}

#[test]
fn missing_env_says_which_variable() {
    assert_eq!(
        render("${env.FOO}").unwrap_err().to_string(),
        "environment variable `FOO` is not set; export it before running wharf"
    );
}

#[test]
fn missing_output_lists_what_the_step_has() {
    assert_eq!(
        render("${steps.cluster.outputs.arn}").unwrap_err().to_string(),
        "`${steps.cluster.outputs.arn}`: step `cluster` has no output `arn` (it has: cluster_arn, cluster_name, meta)"
    );
    assert_eq!(
        render("${steps.cluster.outputs.meta.tag}").unwrap_err().to_string(),
        "`${steps.cluster.outputs.meta.tag}`: step `cluster` output `meta` has no field `tag` (it has: n, tags)"
    );
    assert_eq!(
        render("${steps.vpc.outputs.id}").unwrap_err().to_string(),
        "`${steps.vpc.outputs.id}`: outputs of step `vpc` are not available; it has not completed in this run"
    );
    assert!(render("${params.nope}").unwrap_err().to_string().contains("known params: cluster, public, replicas"));
}

#[test]
fn with_is_only_available_when_given() {
    assert!(matches!(render("${with.name}"), Err(TemplateError::WithUnavailable { .. })));
    let with = json!({"name": "web"});
    let f = fixture();
    let out = with_ctx(&f, Some(&with), |ctx| render_str("ecs:CreateService ${with.name}", ctx)).unwrap();
    assert_eq!(out, "ecs:CreateService web");
    let err = with_ctx(&f, Some(&with), |ctx| render_str("${with.nam}", ctx)).unwrap_err();
    assert_eq!(err.to_string(), "`${with.nam}`: the step's `with` has no key `nam` (it has: name)");
}

#[test]
fn syntax_errors_say_what_to_fix() {
    assert_eq!(
        references("abc ${params.x").unwrap_err().to_string(),
        "unclosed `${` at column 5; close it with `}` (or write `$${` for a literal `${`)"
    );
    assert!(matches!(references("${}"), Err(TemplateError::Malformed { .. })));
    assert!(matches!(references("${params.a b}"), Err(TemplateError::Malformed { .. })));
    assert!(matches!(references("${params.a..b}"), Err(TemplateError::Malformed { .. })));
    assert!(matches!(references("${steps.a.output.b}"), Err(TemplateError::Malformed { .. })));
    assert!(matches!(references("${run.name}"), Err(TemplateError::Malformed { .. })));
    assert_eq!(
        references("${param.x}").unwrap_err().to_string(),
        "`${param.x}`: unknown template root `param` (valid roots: params, steps, env, run, with)"
    );
}

#[test]
fn references_lists_every_expression() {
    let refs = references("${params.a}-${steps.s.outputs.x.y}-${env.E}-${run.id}-${with.n}").unwrap();
    assert_eq!(
        refs,
        vec![
            Reference::Param("a".into()),
            Reference::StepOutput { step: "s".into(), path: vec!["x".into(), "y".into()] },
            Reference::Env("E".into()),
            Reference::RunId,
            Reference::With(vec!["n".into()]),
        ]
    );
    assert_eq!(refs[1].to_string(), "${steps.s.outputs.x.y}");
    assert_eq!(with_placeholders("ecs:X ${params.a}/${env.B}", "x").unwrap(), "ecs:X x/x");
}

/// A value rendered into a grant is literal and never changes the line's shape.
#[test]
fn grant_values_are_escaped_and_must_be_one_plain_value() {
    let mut f = fixture();
    f.params.insert("star".into(), json!("a*b\\c"));
    f.params.insert("empty".into(), json!(""));
    f.params.insert("spaced".into(), json!("x policy=*"));
    let grant = |line: &str| with_ctx(&f, None, |ctx| render_grant(line, ctx));
    assert_eq!(grant("s3:GetObject b/${params.star}/*").unwrap(), "s3:GetObject b/a\\*b\\\\c/*");
    assert_eq!(grant("ecs:CreateService c/s x=${params.replicas}").unwrap(), "ecs:CreateService c/s x=3");
    for (line, problem) in [
        ("s3:GetObject ${params.empty}", "is empty"),
        ("iam:AttachRolePolicy r${params.spaced}", "contains whitespace"),
        ("s3:GetObject ${steps.cluster.outputs.meta.tags}", "is a list"),
    ] {
        let e = grant(line).unwrap_err().to_string();
        assert!(e.contains(problem), "{line}: {e}");
    }
}

#[test]
fn declared_grants_expand_over_lists() {
    let with = json!({
        "objects": ["b/one", "b/two"],
        "containers": [{"secret": "s1", "env": {"A": "x", "B": "y"}}, {"env": {}}, {"secret": "s2"}],
        "none": [],
    });
    let expand = |line: &str| expand_lists(line, &with).unwrap();
    assert_eq!(
        expand("s3:GetObject ${with.objects}"),
        ["s3:GetObject ${with.objects.0}", "s3:GetObject ${with.objects.1}"]
    );
    assert_eq!(
        expand("sm:Get ${with.containers.*.secret}"),
        [
            "sm:Get ${with.containers.0.secret}",
            "sm:Get ${with.containers.1.secret}",
            "sm:Get ${with.containers.2.secret}"
        ]
    );
    assert_eq!(
        expand("sm:Get ${with.containers.*.env.*}"),
        ["sm:Get ${with.containers.0.env.A}", "sm:Get ${with.containers.0.env.B}"]
    );
    assert!(expand("s3:GetObject ${with.none}").is_empty());
    assert_eq!(expand("ecs:X ${with.missing}"), ["ecs:X ${with.missing}"]);
    assert!(parse_expr("params.*").is_err(), "`*` only in `with` paths");
}
