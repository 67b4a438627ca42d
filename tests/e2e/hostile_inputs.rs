//! Hostile inputs (issue 17, "grants that mean what they say"): a plugin, or a workflow edit, that
//! tries to make a grant reach further than it reads. Secret files outside the workflow's
//! directory or that never end, and host environment variables smuggled in through `with`
//! (deleting another step's ledger entry without seeing it is in `hostile.rs`'s ledger test).
//! Each runs through `wharf run` and checks the step's error and, where it matters, AWS itself.

use serde_json::Value;
use wharf_tests::hostile::{assert_denied, error, message, workflow};
use wharf_tests::{Scratch, aws_config, text, unique};

fn block_on<T>(f: impl Future<Output = T>) -> T {
    tokio::runtime::Runtime::new().unwrap().block_on(f)
}

async fn secret_value(name: &str) -> String {
    let secrets = aws_sdk_secretsmanager::Client::new(&aws_config().await);
    let out = secrets.get_secret_value().secret_id(name).send().await.unwrap();
    out.secret_string().unwrap().to_string()
}

/// One hostile step reading the secret file `path` into a new secret `name`, with extra grants.
fn file_step(id: &str, name: &str, path: &str, grants: &str) -> String {
    format!(
        "\n[[steps]]\nid = \"{id}\"\nplugin = \"{{HOSTILE}}\"\ngrants = [{{BASE}}, \"secretsmanager:CreateSecret {name}\", {grants}]\n\
         with = {{ mode = \"secret-from-file\", target = \"{name}\", other = \"{path}\" }}\n"
    )
}

#[test]
fn secret_files_stay_inside_the_workflow_directory_are_regular_and_small() {
    let s = Scratch::new();
    let outside = tempfile::tempdir().unwrap();
    let far = outside.path().join("credentials");
    std::fs::write(&far, "far-away-secret-1f3a\n").unwrap();
    let secrets = s.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    std::fs::write(secrets.join("db.txt"), "inside-secret-77b2\n").unwrap();
    std::os::unix::fs::symlink(&far, secrets.join("link")).unwrap();
    let fifo = std::process::Command::new("mkfifo").arg(secrets.join("fifo")).status().unwrap();
    assert!(fifo.success());
    std::fs::write(s.path().join("big.txt"), "x".repeat(64 * 1024 + 1)).unwrap();

    let (inside, literal) = (unique("hostile-inside"), unique("hostile-literal"));
    let far = far.display().to_string();
    let steps = [
        file_step("abs-wildcard", "hostile-secret", "/proc/self/environ", r#""file:Read *""#),
        file_step("symlink-out", "hostile-secret", "secrets/link", r#""file:Read secrets/*""#),
        file_step("dev-zero", "hostile-secret", "/dev/zero", r#""file:Read /dev/zero""#),
        file_step("fifo", "hostile-secret", "secrets/fifo", r#""file:Read secrets/*""#),
        file_step("too-large", "hostile-secret", "big.txt", r#""file:Read big.txt""#),
        file_step("inside", &inside, "secrets/db.txt", r#""file:Read secrets/*""#),
        file_step("literal-abs", &literal, &far, &format!("\"file:Read {far}\"")),
    ];
    let wf = workflow(&s, "files.toml", &format!("name = \"secret-files\"\n{}", steps.concat()));
    let result = s.json(&["run", wf.to_str().unwrap()]);

    // A pattern does not reach outside the workflow's directory; the denial names the exact line.
    assert_denied(&result, "abs-wildcard", "file:Read /proc/self/environ");
    let e = error(&result, "symlink-out");
    assert_eq!(e["code"], "InvalidPath", "{e}");
    assert!(message(&result, "symlink-out").contains("outside the workflow file's directory"), "{e}");
    // Devices and FIFOs are refused even when granted by name, without waiting for a writer.
    assert_eq!(error(&result, "dev-zero")["code"], "NotARegularFile", "{result:#}");
    assert_eq!(error(&result, "fifo")["code"], "NotARegularFile", "{result:#}");
    let e = error(&result, "too-large");
    assert_eq!(e["code"], "FileTooLarge", "{e}");
    assert!(message(&result, "too-large").contains("limit of 64 KiB"), "{e}");
    assert_eq!(result["failed"].as_array().unwrap().len(), 5, "{result:#}");

    // What the grants do allow still works, and AWS holds exactly the file's content.
    assert!(result["outputs"]["inside"]["arn"].is_string(), "{result:#}");
    assert_eq!(block_on(secret_value(&inside)), "inside-secret-77b2");
    assert_eq!(block_on(secret_value(&literal)), "far-away-secret-1f3a");
    assert!(!result.to_string().contains("far-away-secret"), "the value leaked into the result");
}

const ENV_VAR: &str = "WHARF_HOSTILE_INPUT_SECRET";
const ENV_VALUE: &str = "env-through-with-5d0c";

#[test]
fn env_in_with_needs_the_steps_env_read_grant() {
    let s = Scratch::new();
    // Validation names the missing line; a wildcard grant covers the variable.
    let ungranted = s.workflow(
        "ungranted.toml",
        &format!(
            "name = \"env-with\"\n[[steps]]\nid = \"leak\"\nplugin = \"{{TESTKIT}}\"\n\
             with = {{ mode = \"echo\", value = \"${{env.{ENV_VAR}}}\" }}\n"
        ),
    );
    let out = s.wharf().env(ENV_VAR, ENV_VALUE).args(["validate", ungranted.to_str().unwrap()]).output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("add the grant line \"env:Read {ENV_VAR}\"")), "{stderr}");
    let out = s.wharf().env(ENV_VAR, ENV_VALUE).args(["run", ungranted.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success() && !text(&out.stdout).contains(ENV_VALUE), "{}", text(&out.stdout));

    // A templated grant passes validation; the run checks what it renders to, before the plugin runs.
    let source = format!(
        r#"name = "env-with"
[params.var]
type = "string"
default = "SOME_OTHER_VAR"

[[steps]]
id = "leak"
plugin = "{{TESTKIT}}"
grants = ["env:Read ${{params.var}}"]
with = {{ mode = "echo", value = "${{env.{ENV_VAR}}}" }}

[[steps]]
id = "granted"
plugin = "{{TESTKIT}}"
grants = ["env:Read WHARF_HOSTILE_INPUT_*"]
with = {{ mode = "echo", value = "${{env.{ENV_VAR}}}" }}
"#
    );
    let wf = s.workflow("templated.toml", &source);
    let out =
        s.wharf().env(ENV_VAR, ENV_VALUE).args(["--output", "json", "run", wf.to_str().unwrap()]).output().unwrap();
    let result: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stderr)));
    assert_denied(&result, "leak", &format!("env:Read {ENV_VAR}"));
    assert_eq!(result["outputs"]["granted"]["value"], ENV_VALUE, "{result:#}");
    let run_id = result["run_id"].as_str().unwrap();
    let logs = text(&s.run(&["logs", run_id, "--step", "leak"]).stdout);
    assert!(logs.lines().all(|l| !l.contains("step_started") && !l.contains("attempt 1 of")), "{logs}");
}
