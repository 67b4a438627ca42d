//! The example app's image, built and pushed by `build-push` against the local docker-registry
//! instances (`scripts/emulators.sh`): reproducible digests; the pushed image pulled back with
//! oci-client, unpacked, and its entrypoint run with task-role credentials writes the object to
//! the emulated S3; RUN is refused; grants, registry credentials and a registry outage.
//!
//! The app binary comes from `scripts/build-app.sh` (`scripts/test.sh` runs it first).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;
use wharf_tests::container::{play_container, pull, registry_auth};
use wharf_tests::{Scratch, aws_config, guests, s3_client, text, unique};

fn app_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../workflows/app")
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with `scripts/test.sh`, or start the emulators and eval `scripts/emulators.sh env`")
    })
}

/// Copies the example's build context (Dockerfile, model/, dist/) into `dir/app`: a workflow's
/// `fs:Read` grants stay inside the workflow's directory, and the test's workflows live in scratch.
fn copy_app(dir: &Path) {
    let binary = app_dir().join("dist/ecs-example-app");
    assert!(
        binary.is_file(),
        "{} is missing: build the example app with `scripts/build-app.sh` (`scripts/test.sh` does)",
        binary.display()
    );
    for file in ["Dockerfile", "model/sample.txt", "dist/ecs-example-app"] {
        let to = dir.join("app").join(file);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(app_dir().join(file), &to).unwrap();
    }
}

/// A workflow whose step `image` builds `app/` and pushes it to `registry`/${params.repository}:
/// `extra` is appended to its inputs (e.g. `auth`), `lines` to the step (e.g. `grants`), and
/// `before` goes before it (e.g. a secret step).
fn build_workflow(s: &Scratch, plugin: &str, registry: &str, extra: &str, lines: &str, before: &str) -> PathBuf {
    s.workflow(
        "build.toml",
        &format!(
            r#"
name = "build-example"

[params.repository]
type = "string"

[params.secret]
type = "string"
default = "unused"
{before}
[[steps]]
id = "image"
plugin = "{plugin}"
timeout = "5m"
retry = {{ max_attempts = 2, initial_backoff = "100ms", max_backoff = "200ms" }}
with = {{ context = "app", registry = "{registry}", repository = "${{params.repository}}", tag = "v1"{extra} }}
{lines}
"#
        ),
    )
}

fn run(s: &Scratch, workflow: &Path, params: &[String], envs: &[(&str, &str)]) -> Output {
    let mut cmd = s.wharf();
    cmd.arg("run").arg(workflow);
    for p in params {
        cmd.args(["--param", p]);
    }
    cmd.envs(envs.iter().copied()).output().expect("run wharf")
}

fn both(out: &Output) -> String {
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

fn image_step(s: &Scratch) -> Value {
    let status = s.json(&["status"]);
    status["steps"]
        .as_array()
        .and_then(|l| l.iter().find(|st| st["step_id"] == "image"))
        .cloned()
        .unwrap_or_else(|| panic!("no image step: {status:#}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_example_builds_reproducibly_and_its_image_writes_the_object_with_task_role_credentials() {
    let s = Scratch::new();
    copy_app(s.path());
    let registry = env("WHARF_TEST_REGISTRY");
    let workflow = build_workflow(&s, "build-push", &registry, "", "", "");

    // Two builds into two repositories: nothing is shared but the sources.
    let repositories = [unique("wharf-test/ecs-example"), unique("wharf-test/ecs-example")];
    let mut outputs = vec![];
    for repository in &repositories {
        let out = run(&s, &workflow, &[format!("repository={repository}")], &[]);
        assert!(out.status.success(), "build-push failed: {}", both(&out));
        outputs.push(image_step(&s)["last"]["outputs"].clone());
    }
    let digest = outputs[0]["digest"].as_str().unwrap().to_string();
    assert!(digest.starts_with("sha256:"), "{outputs:#?}");
    assert_eq!(outputs[1]["digest"], digest.as_str(), "two builds of the same context differ");
    let layers = outputs[0]["layers_uploaded"].as_u64().unwrap();
    assert!(layers >= 1 && outputs.iter().all(|o| o["layers_reused"] == 0), "{outputs:#?}");

    // Again into the first repository: the host's record of what it pushed there finds every layer
    // by its tar's digest, so none is compressed or uploaded again, and the image is the same.
    let out = run(&s, &workflow, &[format!("repository={}", repositories[0])], &[]);
    assert!(out.status.success(), "build-push failed: {}", both(&out));
    let again = image_step(&s)["last"]["outputs"].clone();
    assert_eq!(again["digest"], digest.as_str());
    assert_eq!((again["layers_reused"].as_u64(), again["layers_uploaded"].as_u64()), (Some(layers), Some(0)));
    let image = outputs[0]["image"].as_str().unwrap().to_string();
    assert!(image.starts_with(&format!("{registry}/")) && image.ends_with(&format!("@{digest}")), "{image}");

    // The pushed image, pulled back independently of wharf, is what the Dockerfile says.
    let pulled = pull(&image, &registry_auth(&registry)).await;
    assert_eq!(pulled.digest, digest);
    let config = &pulled.config;
    assert_eq!(config.entrypoint, ["/ecs-example/ecs-example-app"]);
    assert_eq!(config.working_dir, "/ecs-example");
    for var in [("BUCKET", "projectjz"), ("KEY", "ecs-example/sample.txt")] {
        assert!(config.env.contains(&(var.0.into(), var.1.into())), "{:?}", config.env);
    }
    let sample = std::fs::read(app_dir().join("model/sample.txt")).unwrap();
    assert_eq!(std::fs::read(pulled.rootfs.path().join("ecs-example/model/sample.txt")).unwrap(), sample);

    // Run as ECS would with a task role: the object appears in S3 with the file's content.
    let aws = aws_config().await;
    let bucket = unique("projectjz");
    let s3 = s3_client(&aws).await;
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let role = aws_sdk_iam::Client::new(&aws)
        .create_role()
        .role_name(unique("ecs-example-task-role"))
        .assume_role_policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        )
        .send()
        .await
        .unwrap();
    let role_arn = role.role.unwrap().arn;
    let out = play_container(&image, &role_arn, &[("BUCKET", &bucket)]).await;
    assert!(text(&out.stdout).contains(&format!("s3://{bucket}/ecs-example/sample.txt")), "{}", both(&out));
    let object = s3.get_object().bucket(&bucket).key("ecs-example/sample.txt").send().await.unwrap();
    assert_eq!(object.body.collect().await.unwrap().into_bytes().as_ref(), sample.as_slice());
}

#[test]
fn a_dockerfile_with_run_gets_a_clear_error() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.path().join("app")).unwrap();
    std::fs::write(s.path().join("app/Dockerfile"), "FROM scratch\nRUN echo building\n").unwrap();
    let workflow = build_workflow(&s, "build-push", &env("WHARF_TEST_REGISTRY"), "", "", "");
    let out = run(&s, &workflow, &[format!("repository={}", unique("wharf-test/run"))], &[]);
    assert!(!out.status.success(), "a RUN instruction was accepted: {}", both(&out));
    let shown = both(&out);
    assert!(shown.contains("RUN") && shown.contains("external builder"), "unclear error: {shown}");
    assert_eq!(image_step(&s)["attempts"], 1, "a refused Dockerfile is not retried");
}

#[test]
fn a_step_without_a_grant_for_the_registry_repository_is_denied() {
    // Loaded by path, the plugin is a custom plugin: it gets only the grants the step lists, here
    // its context and another repository of the same registry.
    let s = Scratch::new();
    copy_app(s.path());
    let registry = env("WHARF_TEST_REGISTRY");
    let grants = format!(r#"grants = ["fs:Read app", "registry:Push {registry}/someone-else/*"]"#);
    let workflow = build_workflow(&s, guests::BUILD_PUSH, &registry, "", &grants, "");
    let repository = unique("wharf-test/denied");
    let out = run(&s, &workflow, &[format!("repository={repository}")], &[]);
    assert!(!out.status.success(), "pushed without a grant: {}", both(&out));
    let shown = both(&out);
    assert!(shown.contains(&format!("registry:Push {registry}/{repository}")), "the denial names the grant: {shown}");
}

/// A store-secret step holding REGISTRY_USERNAME/REGISTRY_PASSWORD, as in ecs-example.toml.
const SECRET_STEP: &str = r#"
[[steps]]
id = "registry-secret"
plugin = "store-secret"
grants = ["env:Read REGISTRY_USERNAME", "env:Read REGISTRY_PASSWORD"]
with = { name = "${params.secret}", json = { username = { from_env = "REGISTRY_USERNAME" }, password = { from_env = "REGISTRY_PASSWORD" } } }
"#;

#[test]
fn push_to_the_htpasswd_registry_uses_the_secret_and_a_wrong_password_is_named_clearly() {
    let s = Scratch::new();
    copy_app(s.path());
    let registry = env("WHARF_TEST_REGISTRY_AUTH");
    let user = env("WHARF_TEST_REGISTRY_USER");
    let auth = r#", auth = { secret_id = "${steps.registry-secret.outputs.arn}" }"#;
    let workflow = build_workflow(&s, "build-push", &registry, auth, "", SECRET_STEP);

    let params = |secret: &str| vec![format!("repository={}", unique("wharf-test/auth")), format!("secret={secret}")];
    let good = env("WHARF_TEST_REGISTRY_PASSWORD");
    let out =
        run(&s, &workflow, &params(&unique("good")), &[("REGISTRY_USERNAME", &user), ("REGISTRY_PASSWORD", &good)]);
    assert!(out.status.success(), "push with the right credentials failed: {}", both(&out));
    let image = image_step(&s)["last"]["outputs"]["image"].as_str().unwrap().to_string();
    assert!(image.starts_with(&format!("{registry}/")), "{image}");
    // The build's registry calls (base, blobs, manifest) read the secret once per attempt.
    let run_id = s.json(&["status"])["run"]["id"].as_str().unwrap().to_string();
    let logs = s.json(&["logs", &run_id, "--step", "image"]);
    let reads = logs
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "call" && e["message"].as_str().unwrap().starts_with("secretsmanager:GetSecretValue"))
        .count();
    assert_eq!(reads, 1, "one secret read per attempt: {logs:#}");

    let wrong = "not-the-password-4b1d";
    let out =
        run(&s, &workflow, &params(&unique("wrong")), &[("REGISTRY_USERNAME", &user), ("REGISTRY_PASSWORD", wrong)]);
    assert!(!out.status.success(), "pushed with a wrong password: {}", both(&out));
    let shown = both(&out);
    assert!(shown.contains(&format!("registry {registry} rejected")) && shown.contains("401"), "unclear: {shown}");
    assert!(!shown.contains(wrong), "the password leaked into the output: {shown}");
    assert_eq!(image_step(&s)["attempts"], 1, "rejected credentials are not retried");
}

/// A docker-registry of this test's own on `port` (killed on drop), for the outage test: the
/// shared instances must stay up for the other tests.
struct OwnRegistry {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl OwnRegistry {
    fn start(port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yml");
        let data = dir.path().join("data");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nstorage:\n  filesystem: {{rootdirectory: {}}}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                data.display()
            ),
        )
        .unwrap();
        let child = std::process::Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start /usr/bin/docker-registry (scripts/emulators.sh install installs it)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "docker-registry did not start on port {port}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        OwnRegistry { child, _dir: dir }
    }
}

impl Drop for OwnRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn registry_down_is_retryable_and_the_run_resumes_once_it_is_back() {
    let s = Scratch::new();
    copy_app(s.path());
    // A port nothing listens on (yet).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let registry = format!("127.0.0.1:{port}");
    let workflow = build_workflow(&s, "build-push", &registry, "", "", "");
    let out = run(&s, &workflow, &[format!("repository={}", unique("wharf-test/outage"))], &[]);
    assert!(!out.status.success(), "pushed to a registry that is down: {}", both(&out));
    let step = image_step(&s);
    assert_eq!(step["attempts"], 2, "a registry outage is retried: {step:#}");
    assert_eq!(step["last"]["error"]["kind"], "retryable", "{step:#}");
    assert!(both(&out).contains(&format!("registry {registry} unreachable")), "{}", both(&out));

    let _registry = OwnRegistry::start(port);
    let run_id = s.json(&["status"])["run"]["id"].as_str().unwrap().to_string();
    let out = s.run(&["resume", &run_id]);
    assert!(out.status.success(), "resume after the registry came back failed: {}", both(&out));
    let image = image_step(&s)["last"]["outputs"]["image"].as_str().unwrap().to_string();
    assert!(image.starts_with(&format!("{registry}/")), "{image}");
}
