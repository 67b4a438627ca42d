//! The registry password never leaks: `workflows/ecs-example.toml` is deployed against moto with
//! a password made up for this run (pushing to a basic-auth registry of the test's own when the
//! workflow builds and pushes its image), through a failing run, a resume and a teardown. Then the
//! password, its base64, the base64 of `user:password` (an Authorization header), its JSON-escaped
//! and percent-encoded forms are searched for in the state directory's raw files, the compiled
//! component cache, the stdout/stderr of every wharf command, `wharf logs` and `wharf status` in
//! both output formats. Zero occurrences.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};
use wharf_tests::{Scratch, aws_config, s3_client, text, unique};

const USER: &str = "leak-test-user";

fn workflow() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../workflows/ecs-example.toml")
}

/// A password no other run uses, with characters JSON and URLs escape.
fn unique_password() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("Lk{}x{nanos:x}\"q\\/+=&%", std::process::id())
}

/// Every form the password could take on its way out.
fn forms(password: &str) -> Vec<(&'static str, String)> {
    vec![
        ("plain", password.to_string()),
        ("json-escaped", serde_json::to_string(password).unwrap().trim_matches('"').to_string()),
        ("base64", base64(password.as_bytes())),
        ("basic-auth header", base64(format!("{USER}:{password}").as_bytes())),
        ("percent-encoded", percent_encode(password)),
    ]
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    while out.len() % 4 != 0 {
        out.push('=');
    }
    out
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A `docker-registry` with htpasswd auth for this test's user and password, stopped on drop.
struct AuthRegistry {
    child: Child,
    address: String,
}

impl AuthRegistry {
    fn start(dir: &Path, password: &str) -> AuthRegistry {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let htpasswd = dir.join("htpasswd");
        let out = Command::new("htpasswd").args(["-Bbn", USER, password]).output().expect("htpasswd (apache2-utils)");
        assert!(out.status.success(), "htpasswd: {}", text(&out.stderr));
        std::fs::write(&htpasswd, &out.stdout).unwrap();
        let config = dir.join("registry.yml");
        let data = dir.join("registry-data");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: warn}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\n\
                 http:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd: {{realm: wharf-leak-test, path: {}}}\n",
                data.display(),
                htpasswd.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry (scripts/emulators.sh install)");
        let address = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(Instant::now() < deadline, "the test registry did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        AuthRegistry { child, address }
    }
}

impl Drop for AuthRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Harness {
    scratch: Scratch,
    cache: PathBuf,
    password: String,
    /// Everything every wharf command printed.
    printed: Vec<(String, Output)>,
}

impl Harness {
    fn wharf(&mut self, args: &[&str], faults: &str) -> &Output {
        let out = self
            .scratch
            .wharf()
            .env("WHARF_CACHE_DIR", &self.cache)
            .env("REGISTRY_USERNAME", USER)
            .env("REGISTRY_PASSWORD", &self.password)
            .env("WHARF_FAULTS", faults)
            .args(args)
            .output()
            .unwrap();
        self.printed.push((args.join(" "), out));
        &self.printed.last().unwrap().1
    }
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", text(&out.stdout), text(&out.stderr)))
}

/// `(file, count)` for every file under `dir` containing `needle`.
fn files_containing(dir: &Path, needle: &[u8], found: &mut Vec<(PathBuf, usize)>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_containing(&path, needle, found);
        } else if let Ok(bytes) = std::fs::read(&path) {
            let n = bytes.windows(needle.len()).filter(|w| *w == needle).count();
            if n > 0 {
                found.push((path, n));
            }
        }
    }
}

fn file_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| if e.path().is_dir() { file_count(&e.path()) } else { 1 })
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_registry_password_appears_nowhere() {
    // The workflow uses the tutorial's fixed names (roles, secret): start from an empty moto.
    // Like tests/e2e/deploy.rs, this binary runs alone, so wiping moto is safe.
    wharf_tests::reset_moto();
    let config = aws_config().await;
    let scratch = Scratch::new();
    let password = unique_password();
    let bucket = unique("leak");
    let cluster = unique("leak-cluster");
    let s3 = s3_client(&config).await;
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    // The container's output, in place up front: verify-s3 only checks it exists with this content.
    let sample = std::fs::read(workflow().parent().unwrap().join("app/model/sample.txt")).unwrap();
    s3.put_object().bucket(&bucket).key("ecs-example/sample.txt").body(sample.into()).send().await.unwrap();

    let source = std::fs::read_to_string(workflow()).unwrap();
    let builds_image = source.contains("plugin = \"build-push\"");
    let registry_dir = scratch.path().join("registry");
    std::fs::create_dir_all(&registry_dir).unwrap();
    let registry = builds_image.then(|| AuthRegistry::start(&registry_dir, &password));
    let mut params = vec![format!("bucket={bucket}"), format!("cluster={cluster}")];
    match &registry {
        Some(r) => params.extend([format!("registry={}", r.address), "repository=leak/app".into(), "tag=v1".into()]),
        None => params.push("image=registry.example.com/ecs-example:v1".into()),
    }
    let mut run_args = vec!["--output".to_string(), "json".into(), "run".into(), workflow().display().to_string()];
    for p in &params {
        run_args.extend(["--param".to_string(), p.clone()]);
    }
    let run_args: Vec<&str> = run_args.iter().map(String::as_str).collect();

    let mut h = Harness { cache: scratch.path().join("component-cache"), scratch, password, printed: vec![] };
    // 1. A run that fails: CreateService is denied (a permanent error, with its message).
    let failed = json(h.wharf(&run_args, "ecs:CreateService=access-denied*1"));
    assert_eq!(failed["status"], "failed", "{failed:#}");
    assert_eq!(failed["failed"][0]["step"], "service", "{failed:#}");
    let run_id = failed["run_id"].as_str().unwrap().to_string();
    // 2. Resumed to the end.
    let resumed = json(h.wharf(&["--output", "json", "resume", &run_id], ""));
    assert_eq!(resumed["status"], "succeeded", "{resumed:#}");

    // The test means something: the secret holds the password, and (when the workflow pushes its
    // image) the push authenticated with it.
    let secrets = aws_sdk_secretsmanager::Client::new(&config);
    let arn = json(h.wharf(&["--output", "json", "status", &run_id], ""))["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step_id"] == "registry-secret")
        .unwrap()["last"]["outputs"]["arn"]
        .as_str()
        .unwrap()
        .to_string();
    let stored = secrets.get_secret_value().secret_id(&arn).send().await.unwrap();
    let stored: serde_json::Value = serde_json::from_str(stored.secret_string().unwrap()).unwrap();
    assert_eq!(stored["password"], h.password.as_str());
    if let Some(r) = &registry {
        assert!(file_count(&registry_dir.join("registry-data")) > 0, "nothing was pushed to {}", r.address);
    }

    // 3. Teardown, then everything a user can ask wharf about the run.
    let out = h.wharf(&["teardown", &run_id], "");
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    for args in [
        vec!["status", &run_id],
        vec!["--output", "json", "status", &run_id],
        vec!["logs", &run_id],
        vec!["--output", "json", "logs", &run_id],
        vec!["runs"],
        vec!["--output", "json", "runs"],
    ] {
        let out = h.wharf(&args, "");
        assert!(out.status.success(), "wharf {args:?}: {}", text(&out.stderr));
    }
    for step in ["registry-secret", "service", "_teardown"] {
        h.wharf(&["logs", &run_id, "--step", step], "");
    }
    if builds_image {
        h.wharf(&["--output", "json", "logs", &run_id, "--step", "image"], "");
    }

    // 4. The search.
    let state = h.scratch.state_dir();
    let (state_files, cache_files) = (file_count(&state), file_count(&h.cache));
    assert!(state_files > 0 && cache_files > 0, "nothing to search: {state_files} state, {cache_files} cache files");
    // The search itself works: it finds what is there (the run id, in the state and in the output).
    let mut control = vec![];
    files_containing(&state, run_id.as_bytes(), &mut control);
    assert!(!control.is_empty(), "the search found not even the run id in the state directory");
    assert!(h.printed.iter().any(|(_, o)| text(&o.stdout).contains(&run_id)));
    let printed: usize = h.printed.iter().map(|(_, o)| o.stdout.len() + o.stderr.len()).sum();
    let mut leaks = vec![];
    for (form, needle) in forms(&h.password) {
        for dir in [&state, &h.cache] {
            let mut found = vec![];
            files_containing(dir, needle.as_bytes(), &mut found);
            leaks.extend(found.into_iter().map(|(f, n)| format!("{form} ×{n} in {}", f.display())));
        }
        for (command, out) in &h.printed {
            for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
                if text(bytes).contains(&needle) {
                    leaks.push(format!("{form} in the {stream} of `wharf {command}`"));
                }
            }
        }
    }
    println!(
        "FIGURE secret leak: {} forms searched in {state_files} state files, {cache_files} cache files and {} KiB \
         printed by {} wharf commands (image pushed: {builds_image}): {} occurrences",
        forms(&h.password).len(),
        printed / 1024,
        h.printed.len(),
        leaks.len()
    );
    assert!(leaks.is_empty(), "the registry password leaked: {leaks:#?}");
}
