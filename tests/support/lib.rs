//! Shared support for wharf's end-to-end tests: the test guest components, a scratch state dir,
//! the `wharf` CLI as a real process, and the emulators started by `scripts/emulators.sh`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod container;
pub mod ecs_example;
pub mod fake_registry;
pub mod fault_proxy;
pub mod hostile;

/// Paths of the test guest components built by `build.rs`.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

/// Three testkit steps, the middle one sleeping `MILLIS` ms (replace it): a run to kill mid-way.
pub const KILLABLE_WORKFLOW: &str = r#"
name = "killable"

[[steps]]
id = "first"
plugin = "{TESTKIT}"
with = { mode = "echo", value = "one" }

[[steps]]
id = "slow"
plugin = "{TESTKIT}"
needs = ["first"]
timeout = "2m"
with = { mode = "sleep", millis = MILLIS }

[[steps]]
id = "last"
plugin = "{TESTKIT}"
with = { mode = "echo", value = "${steps.first.outputs.value} then ${steps.slow.outputs.slept_ms}" }
"#;

/// A scratch directory holding workflow files and a state dir, removed on drop.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        Scratch { dir: tempfile::tempdir().expect("temp dir") }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Writes a workflow file; `{TESTKIT}` and `{ECS_CALLER}` are replaced with guest paths.
    pub fn workflow(&self, name: &str, text: &str) -> PathBuf {
        let text = text.replace("{TESTKIT}", guests::TESTKIT).replace("{ECS_CALLER}", guests::ECS_CALLER);
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write workflow");
        path
    }

    /// A `wharf` command using this scratch state dir.
    pub fn wharf(&self) -> Command {
        let mut cmd = Command::new(wharf_bin());
        cmd.arg("--state-dir").arg(self.state_dir()).current_dir(self.path());
        // One compiled-plugin cache for all tests: each plugin is compiled once per build.
        cmd.env("WHARF_CACHE_DIR", target_dir().join("wharf-test-cache"));
        cmd
    }

    /// Runs `wharf ARGS` and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.wharf().args(args).output().expect("run wharf")
    }

    /// `wharf --output json ARGS`, parsed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.wharf().arg("--output").arg("json").args(args).output().expect("run wharf");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "wharf {args:?} did not print JSON ({e}); stdout: {}; stderr: {}",
                text(&out.stdout),
                text(&out.stderr)
            )
        })
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

/// The wharf CLI binary built for the tests.
pub fn wharf_bin() -> PathBuf {
    target_dir().join("wharf-test-cli")
}

/// `target/<profile>`: integration tests run from its `deps` folder.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent().and_then(Path::parent).expect("target dir").to_path_buf()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The moto endpoint the project's scripts started, or a panic that says how to start it.
pub fn moto_endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
        panic!(
            "AWS_ENDPOINT_URL is not set, so there is no moto server to test against. Run the tests with \
             `scripts/test.sh`, or `scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\"` first."
        )
    })
}

/// Wipes all of moto's state (`POST /moto-api/reset`).
pub fn reset_moto() {
    use std::io::{Read, Write};
    let endpoint = moto_endpoint();
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut conn = std::net::TcpStream::connect(host).expect("connect to moto");
    write!(conn, "POST /moto-api/reset HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "moto reset failed: {response}");
}

/// SDK configuration for moto (the endpoint and test credentials come from the environment).
pub async fn aws_config() -> aws_config::SdkConfig {
    moto_endpoint();
    aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await
}

/// An ECS client talking to moto, configured like wharf's own clients.
pub async fn ecs_client() -> aws_sdk_ecs::Client {
    aws_sdk_ecs::Client::new(&aws_config().await)
}

/// An S3 client for moto (path-style addressing, as moto needs).
pub async fn s3_client(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(config).force_path_style(true).build())
}

/// A name unique to this test process and call, so tests sharing one moto never collide.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Polls `wharf --output json status` until `pred` holds (bounded: a loaded CI box may be slow).
pub fn wait_for_status(s: &Scratch, what: &str, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let out = s.wharf().args(["--output", "json", "status"]).output().expect("run wharf");
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout)
            && pred(&v)
        {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The latest attempt summary of step `id` in a `wharf --output json status` document.
pub fn step_status<'a>(status: &'a serde_json::Value, id: &str) -> Option<&'a serde_json::Value> {
    status["steps"].as_array()?.iter().find(|s| s["step_id"] == id)
}
