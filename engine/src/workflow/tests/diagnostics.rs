//! The exact diagnostics for each class of mistake in a workflow file.

use super::*;

#[test]
fn unknown_key_renders_rustc_style_with_a_suggestion() {
    let d = one(&with_steps("\n[[steps]]\nid = \"cluster\"\nplugin = \"make-cluster\"\nneed = [\"a\"]\n"));
    assert_eq!(
        d.to_string(),
        "error: unknown key `need` in step `cluster`\n --> workflows/x.toml:6:1\n  |\n6 | need = [\"a\"]\n  | ^^^^\n  = hint: did you mean `needs`?"
    );
}

#[test]
fn unknown_keys_everywhere() {
    let src = "name = \"x\"\nversion = 2\n[params.a]\ntype = \"string\"\ndefualt = \"x\"\n[aws]\nregoin = \"us-east-1\"\n[run]\nparallelism = 2\n\
               [[steps]]\nid = \"a\"\nplugin = \"s3-upload\"\ndepends_on = [\"b\"]\nretry = { attempts = 2 }\n";
    let d = diags(src);
    let got: Vec<(String, Option<String>)> = d.iter().map(|d| (d.message.clone(), d.hint.clone())).collect();
    assert_eq!(got[0].0, "unknown key `version` at the top level");
    assert_eq!(got[1], ("unknown key `defualt` in param `a`".into(), Some("did you mean `default`?".into())));
    assert_eq!(got[2], ("unknown key `regoin` in [aws]".into(), Some("did you mean `region`?".into())));
    assert_eq!(got[3], ("unknown key `parallelism` in [run]".into(), Some("allowed keys are: concurrency".into())));
    assert_eq!(got[4], ("unknown key `depends_on` in step `a`".into(), Some("did you mean `needs`?".into())));
    assert_eq!(
        got[5],
        ("unknown key `attempts` in `retry` of step `a`".into(), Some("did you mean `max_attempts`?".into()))
    );
    assert_eq!(d.len(), 6);
}

#[test]
fn wrong_types_name_the_expected_shape() {
    let d = one(&with_steps("[[steps]]\nid = \"b\"\nplugin = \"s3-upload\"\nneeds = \"a\"\n"));
    assert_eq!(d.message, "`needs` must be a list of step ids, not a string");
    assert_eq!(d.hint.as_deref(), Some("write `needs = [\"a\"]`"));
    assert_eq!((d.line, d.col, d.width), (5, 9, 3));

    let m = messages(
        "name = 3\n[run]\nconcurrency = \"4\"\n[[steps]]\nid = \"a\"\nplugin = \"s3-upload\"\nmemory = 256\ngrants = [1]\nwith = \"x\"\n",
    );
    assert_eq!(
        m,
        vec![
            "`name` must be a string, not an integer",
            "`concurrency` must be an integer, not a string",
            "`memory` must be a string, not an integer",
            "entries of `grants` must be strings, not an integer",
            "`with` must be a table, not a string",
        ]
    );
    assert_eq!(messages(&with_steps("[steps]\nid = \"a\"\n")), vec!["`steps` must be a list of tables, not a table"]);
}

#[test]
fn missing_required_keys() {
    let d = diags("[[steps]]\nplugin = \"s3-upload\"\n[[steps]]\nid = \"b\"\n[params.p]\ndefault = 1\n");
    let m: Vec<&str> = d.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        m,
        vec![
            "missing required key `name`",
            "step #1 has no `id`",
            "step `b` has no `plugin`",
            "param `p` has no `type`"
        ]
    );
    assert_eq!((d[1].line, d[1].col, d[1].width), (1, 1, 9));
}

#[test]
fn empty_workflow_is_an_error() {
    let d = one("name = \"x\"\n");
    assert_eq!(d.message, "the workflow has no steps");
    assert_eq!(d.hint.as_deref(), Some("add a step: `[[steps]]` with `id` and `plugin`"));
    assert_eq!(one("name = \"x\"\nsteps = []\n").line, 2);
}

#[test]
fn syntax_errors_use_the_toml_span() {
    let d = diags("name = \"x\"\nname = \"y\"\n");
    assert_eq!(d[0].message, "invalid TOML: duplicate key");
    assert_eq!((d[0].line, d[0].col), (2, 1));
    assert!(diags("name = \n").iter().all(|d| d.message.starts_with("invalid TOML: ")));
}

#[test]
fn names_and_ids_are_checked() {
    let d = diags(
        "name = \"My App\"\n[params.\"a.b\"]\ntype = \"string\"\n[[steps]]\nid = \"Build\"\nplugin = \"s3-upload\"\n[[steps]]\nid = \"Build\"\nplugin = \"s3-upload\"\n",
    );
    let got: Vec<(&str, Option<&str>)> = d.iter().map(|d| (d.message.as_str(), d.hint.as_deref())).collect();
    assert_eq!(
        got[0],
        ("invalid workflow name `My App`", Some("use lowercase letters, digits and `-`, e.g. `my-app`"))
    );
    assert_eq!(got[1].0, "invalid param name `a.b`");
    assert_eq!(got[2].0, "invalid step id `Build`");
    assert_eq!(got[3].0, "invalid step id `Build`");
    assert_eq!(
        got[4],
        ("duplicate step id `Build`", Some("step `Build` is first defined on line 5; step ids must be unique"))
    );
}

#[test]
fn needs_must_name_other_known_steps() {
    let src = with_steps(
        "[[steps]]\nid = \"cluster\"\nplugin = \"s3-upload\"\nneeds = [\"cluster\"]\n[[steps]]\nid = \"svc\"\nplugin = \"s3-upload\"\nneeds = [\"clustr\", \"zzz\"]\n",
    );
    let d = diags(&src);
    assert_eq!(d[0].message, "step `cluster` needs itself");
    assert_eq!(
        d[1].to_string(),
        "error: step `svc` needs unknown step `clustr`\n --> workflows/x.toml:9:10\n  |\n9 | needs = [\"clustr\", \"zzz\"]\n  |          ^^^^^^^^\n  = hint: did you mean `cluster`?"
    );
    assert_eq!(d[2].hint.as_deref(), Some("steps in this file are: cluster, svc"));
}

#[test]
fn cycles_name_the_loop_and_point_at_the_closing_entry() {
    let src = with_steps(
        "[[steps]]\nid = \"a\"\nplugin = \"s3-upload\"\nneeds = [\"b\"]\n[[steps]]\nid = \"b\"\nplugin = \"s3-upload\"\nneeds = [\"a\"]\n",
    );
    assert_eq!(
        one(&src).to_string(),
        "error: dependency cycle: a -> b -> a\n --> workflows/x.toml:9:10\n  |\n9 | needs = [\"a\"]\n  |          ^^^\n  = hint: each arrow means \"needs\"; remove one of these dependencies"
    );
    let three = with_steps(
        "[[steps]]\nid = \"a\"\nplugin = \"s3-upload\"\nneeds = [\"c\"]\n[[steps]]\nid = \"b\"\nplugin = \"s3-upload\"\nneeds = [\"a\"]\n[[steps]]\nid = \"c\"\nplugin = \"s3-upload\"\nwith = { x = \"${steps.b.outputs.y}\" }\n",
    );
    let d = one(&three);
    assert_eq!(d.message, "dependency cycle: a -> c -> b -> a");
    assert_eq!(d.line, 9);
    // A cycle closed by a template says so.
    let implicit = with_steps(
        "[[steps]]\nid = \"a\"\nplugin = \"s3-upload\"\nwith = { x = \"${steps.b.outputs.y}\" }\n[[steps]]\nid = \"b\"\nplugin = \"s3-upload\"\nneeds = [\"a\"]\n",
    );
    let d = one(&implicit);
    assert_eq!(d.message, "dependency cycle: a -> b -> a");
    assert_eq!(d.line, 9);
}

#[test]
fn template_errors_in_workflow_files() {
    let src = "name = \"x\"\n[params.cluster]\ntype = \"string\"\n[aws]\nregion = \"${steps.a.outputs.r}\"\n\
               [[steps]]\nid = \"a\"\nplugin = \"s3-upload\"\n[steps.with]\n\
               p = \"${params.clustr}\"\ns = \"${steps.b.outputs.x}\"\nr = \"${param.cluster}\"\nm = \"${params.cluster\"\nw = \"${with.name}\"\no = \"${steps.a.outputs.x}\"\n";
    let d = diags(src);
    let got: Vec<(&str, Option<&str>)> = d.iter().map(|d| (d.message.as_str(), d.hint.as_deref())).collect();
    assert_eq!(
        got[0],
        (
            "`${steps.a.outputs.r}` cannot be used in [aws]",
            Some("[aws] is resolved before any step runs; use `${params.*}` or `${env.*}`")
        )
    );
    assert_eq!(got[1], ("unknown param `clustr` in `${params.clustr}`", Some("did you mean `cluster`?")));
    assert_eq!(got[2], ("`${steps.b.outputs.x}` refers to unknown step `b`", Some("steps in this file are: a")));
    assert_eq!(
        got[3],
        (
            "`${param.cluster}`: unknown template root `param` (valid roots: params, steps, env, run, with)",
            Some("did you mean `params`?")
        )
    );
    assert!(got[4].0.starts_with("unclosed `${` at column 1"), "{}", got[4].0);
    assert_eq!(got[5].0, "`${with.name}`: `${with.*}` is not allowed in workflow files");
    assert_eq!(got[6].0, "step `a` refers to its own outputs in `${steps.a.outputs.x}`");
    assert_eq!(d.len(), 7);
    // Carets underline just the template inside the string.
    assert_eq!((d[1].line, d[1].col, d[1].width), (10, 6, 16));
    assert_eq!((d[4].line, d[4].col, d[4].width), (13, 6, 16));
}

#[test]
fn template_error_caret_points_into_the_string() {
    let src = with_steps(
        "[params.cluster]\ntype = \"string\"\n[[steps]]\nid = \"a\"\nplugin = \"s3-upload\"\ngrants = [\"ecs:CreateCluster ${params.clustr}\"]\n",
    );
    assert_eq!(
        one(&src).to_string(),
        "error: unknown param `clustr` in `${params.clustr}`\n --> workflows/x.toml:7:30\n  |\n7 | grants = [\"ecs:CreateCluster ${params.clustr}\"]\n  |                              ^^^^^^^^^^^^^^^^\n  = hint: did you mean `cluster`?"
    );
    // With escapes in the TOML string, offsets differ: fall back to the whole string.
    let escaped = with_steps("[[steps]]\nid = \"a\"\nplugin = \"s3-upload\"\nwith = { x = \"\\t${params.nope}\" }\n");
    let d = one(&escaped);
    assert_eq!((d.col, d.width), (14, 18));
}

#[test]
fn plugins_must_exist() {
    let d = diags(&with_steps(
        "[[steps]]\nid = \"a\"\nplugin = \"make-clustr\"\n[[steps]]\nid = \"b\"\nplugin = \"terraform\"\n[[steps]]\nid = \"c\"\nplugin = \"./missing.wasm\"\n",
    ));
    let got: Vec<(&str, Option<&str>)> = d.iter().map(|d| (d.message.as_str(), d.hint.as_deref())).collect();
    assert_eq!(got[0], ("unknown builtin plugin `make-clustr`", Some("did you mean `make-cluster`?")));
    assert_eq!(
        got[1],
        (
            "unknown builtin plugin `terraform`",
            Some(
                "builtin plugins are: make-cluster, create-service, s3-upload; or give a path to a .wasm component, e.g. `./plugins/step.wasm`"
            )
        )
    );
    assert_eq!(
        got[2],
        (
            "plugin file `./missing.wasm` does not exist",
            Some("looked for `workflows/./missing.wasm`; plugin paths are relative to the workflow file's directory")
        )
    );
}

#[test]
fn durations_sizes_and_retry_are_range_checked() {
    let src = with_steps(
        "[[steps]]\nid = \"a\"\nplugin = \"s3-upload\"\ntimeout = \"5 parsecs\"\nmemory = \"256MB\"\n\
         retry = { max_attempts = 0, initial_backoff = \"1m\", max_backoff = \"10s\" }\n[run]\nconcurrency = 65\n",
    );
    let d = diags(&src);
    let got: Vec<(&str, Option<&str>)> = d.iter().map(|d| (d.message.as_str(), d.hint.as_deref())).collect();
    assert!(got[0].0.starts_with("invalid duration `5 parsecs` for `timeout`: "), "{}", got[0].0);
    assert_eq!(got[0].1, Some("use a duration like `30s`, `5m` or `1h30m`"));
    assert_eq!(got[1], ("invalid memory size `256MB`", Some("sizes use binary units; did you mean `256MiB`?")));
    assert_eq!(got[2].0, "`max_attempts` must be between 1 and 20, not 0");
    assert_eq!(got[3].0, "`initial_backoff` (1m) is longer than `max_backoff` (10s)");
    assert_eq!(got[4].0, "`concurrency` must be between 1 and 64, not 65");
    assert_eq!(
        messages(&with_steps("[[steps]]\nid = \"a\"\nplugin = \"s3-upload\"\ntimeout = \"48h\"\n")),
        vec!["`timeout` of `48h` is longer than the 24h maximum"]
    );
}

#[test]
fn grant_lines_are_parsed_with_templates_as_placeholders() {
    let d = diags(&with_steps(
        "[params.op]\ntype = \"string\"\n[[steps]]\nid = \"a\"\nplugin = \"s3-upload\"\n\
         grants = [\"ecs:CreateCluster ${params.op}\", \"iam:AttachRolePolicy r policy=${params.op}\", \"CreateCluster x\", \"ecs:${params.op} x\", \"s3:PutObject a b\"]\n",
    ));
    let m: Vec<&str> = d.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        m,
        vec![
            "invalid grant `CreateCluster x`: the action needs a service prefix, e.g. `ecs:CreateCluster`",
            "grant `ecs:${params.op} x`: templates are only allowed in the resource part",
            "invalid grant `s3:PutObject a b`: `b` after the resource is not a `key=value` condition (resources contain no spaces)",
        ]
    );
}

#[test]
fn param_defaults_must_match_their_type() {
    let d = diags(&with_steps(
        "[params.replicas]\ntype = \"integer\"\ndefault = \"3\"\n[params.public]\ntype = \"bool\"\n[params.name]\ntype = \"string\"\ndefault = 1\n[[steps]]\nid = \"a\"\nplugin = \"s3-upload\"\n",
    ));
    let got: Vec<(&str, Option<&str>)> = d.iter().map(|d| (d.message.as_str(), d.hint.as_deref())).collect();
    assert_eq!(
        got[0],
        ("default of param `replicas` must be an integer, not a string", Some("write `default = 3` (without quotes)"))
    );
    assert_eq!(
        got[1],
        ("unknown param type `bool`", Some("did you mean `boolean`? (types are string, integer and boolean)"))
    );
    assert_eq!(got[2].0, "default of param `name` must be a string, not an integer");
}

#[test]
fn many_errors_are_reported_in_one_pass() {
    let src = "name = \"Bad Name\"\n[[steps]]\nid = \"a\"\nplugin = \"nope\"\nneeds = [\"zz\"]\ntimeout = \"0s\"\nmemmory = \"1GiB\"\n";
    let e = parse(src).unwrap_err();
    let WorkflowError::Invalid(d) = &e else { panic!() };
    assert_eq!(d.0.len(), 5, "{e}");
    let text = e.to_string();
    assert!(text.ends_with("error: 5 problems in the workflow file"), "{text}");
    // Sorted by position.
    let lines: Vec<usize> = d.0.iter().map(|d| d.line).collect();
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{lines:?}");
}

#[test]
fn templates_only_where_values_exist() {
    let src = with_steps(
        "[params.p]\ntype = \"string\"\n[[steps]]\nid = \"a\"\nplugin = \"${params.p}\"\nneeds = [\"${params.p}\"]\ntimeout = \"${params.p}\"\n",
    );
    let d = diags(&src);
    assert_eq!(d.len(), 3, "{}", Diagnostics(d.clone()));
    assert_eq!(d[0].message, "templates are not allowed in `plugin`");
    assert_eq!(d[1].message, "templates are not allowed in `needs`");
    assert_eq!(d[2].message, "templates are not allowed in `timeout`");
}
