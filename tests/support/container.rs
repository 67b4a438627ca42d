//! Playing the container's part from the real pushed image: moto never runs containers, so the
//! tests pull the image wharf pushed, unpack it, and run its entrypoint on this machine with what
//! ECS would give it: the image's env and working directory, and task-role credentials served by
//! an ECS-style container credentials endpoint (never AWS_ACCESS_KEY_ID).
//!
//! The pull uses `oci-client` directly, independent of wharf's own registry code: that is the check.

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciDescriptor, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The parts of an OCI image config that decide how the container starts.
#[derive(Debug, Clone, Default)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `NAME=value` pairs, in image order.
    pub env: Vec<(String, String)>,
    /// Absolute path inside the image (`/` when unset).
    pub working_dir: String,
}

/// An image pulled and unpacked into a temporary root file system (removed on drop).
pub struct PulledImage {
    pub rootfs: tempfile::TempDir,
    /// `sha256:...` of the manifest as the registry served it.
    pub digest: String,
    pub config: ImageConfig,
    /// Layer digests, in order.
    pub layers: Vec<String>,
}

/// How the tests' registries are reached: the htpasswd one (`WHARF_TEST_REGISTRY_AUTH`) with the
/// test credentials, any other anonymously.
pub fn registry_auth(registry: &str) -> RegistryAuth {
    let auth_registry = std::env::var("WHARF_TEST_REGISTRY_AUTH").unwrap_or_default();
    match (std::env::var("WHARF_TEST_REGISTRY_USER"), std::env::var("WHARF_TEST_REGISTRY_PASSWORD")) {
        (Ok(user), Ok(password)) if registry == auth_registry => RegistryAuth::Basic(user, password),
        _ => RegistryAuth::Anonymous,
    }
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Pulls `reference` (`registry/repo:tag` or `registry/repo@sha256:...`; the tests' registries
/// are on loopback, so plain HTTP), checks every digest against the bytes, and unpacks the layers
/// in order into a fresh root file system.
pub async fn pull(reference: &str, auth: &RegistryAuth) -> PulledImage {
    let image: Reference = reference.parse().unwrap_or_else(|e| panic!("bad image reference {reference}: {e}"));
    let client = Client::new(ClientConfig { protocol: ClientProtocol::Http, ..Default::default() });
    let accepted = [OCI_IMAGE_MEDIA_TYPE, oci_client::manifest::IMAGE_MANIFEST_MEDIA_TYPE];
    let (bytes, digest) = client
        .pull_manifest_raw(&image, auth, &accepted)
        .await
        .unwrap_or_else(|e| panic!("pulling the manifest of {reference}: {e}"));
    assert_eq!(sha256(&bytes), digest, "{reference}: the manifest does not hash to the digest the registry gave");
    if let Some(pinned) = image.digest() {
        assert_eq!(digest, pinned, "{reference}: the registry served another manifest");
    }
    let manifest: OciImageManifest = serde_json::from_slice(&bytes).expect("an image manifest");

    let config_bytes = blob(&client, &image, &manifest.config).await;
    let config = parse_config(&serde_json::from_slice(&config_bytes).expect("image config JSON"));
    let rootfs = tempfile::tempdir().expect("temp rootfs");
    for layer in &manifest.layers {
        let data = blob(&client, &image, layer).await;
        unpack_layer(&layer.media_type, &data, rootfs.path());
    }
    let layers = manifest.layers.iter().map(|l| l.digest.clone()).collect();
    PulledImage { rootfs, digest, config, layers }
}

/// A blob's bytes, checked against its descriptor's digest and size.
async fn blob(client: &Client, image: &Reference, descriptor: &OciDescriptor) -> Vec<u8> {
    let mut data = Vec::new();
    client
        .pull_blob(image, descriptor, &mut data)
        .await
        .unwrap_or_else(|e| panic!("pulling blob {} of {image}: {e}", descriptor.digest));
    assert_eq!(sha256(&data), descriptor.digest, "blob of {image} does not hash to its digest");
    assert_eq!(data.len() as i64, descriptor.size, "blob {} has the wrong size", descriptor.digest);
    data
}

fn parse_config(json: &serde_json::Value) -> ImageConfig {
    let c = &json["config"];
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default()
    };
    let env = strings(&c["Env"])
        .into_iter()
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (pair, String::new()),
        })
        .collect();
    let working_dir = c["WorkingDir"].as_str().filter(|w| !w.is_empty()).unwrap_or("/").to_string();
    ImageConfig { entrypoint: strings(&c["Entrypoint"]), cmd: strings(&c["Cmd"]), env, working_dir }
}

/// Applies one layer (tar, optionally gzip-compressed) to `rootfs`. Whiteouts, minimally:
/// `.wh..wh..opq` empties its directory, `.wh.NAME` removes NAME from lower layers.
fn unpack_layer(media_type: &str, data: &[u8], rootfs: &Path) {
    let reader: Box<dyn Read + '_> = if media_type.ends_with("gzip") {
        Box::new(flate2::read::GzDecoder::new(data))
    } else {
        assert!(media_type.ends_with(".tar") || media_type.ends_with("tar"), "unsupported layer type {media_type}");
        Box::new(data)
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().expect("layer tar") {
        let mut entry = entry.expect("layer tar entry");
        let path = entry.path().expect("entry path").into_owned();
        assert!(
            path.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir | Component::RootDir)),
            "layer entry escapes the rootfs: {}",
            path.display()
        );
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let parent = rootfs.join(path.parent().unwrap_or(Path::new("")));
        if name == ".wh..wh..opq" {
            for child in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
                remove(&child.path());
            }
        } else if let Some(hidden) = name.strip_prefix(".wh.") {
            remove(&parent.join(hidden));
        } else {
            // unpack_in refuses paths outside rootfs; modes (the executable bit) are kept.
            entry.unpack_in(rootfs).unwrap_or_else(|e| panic!("unpacking {}: {e}", path.display()));
        }
    }
}

fn remove(path: &Path) {
    let result = if path.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) };
    if let Err(e) = result {
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "removing {}: {e}", path.display());
    }
}

/// An ECS-style container credentials endpoint on 127.0.0.1 serving the task role's credentials
/// (from moto STS AssumeRole) to callers presenting its authorization token, as the ECS agent
/// does for `AWS_CONTAINER_CREDENTIALS_FULL_URI`. Stops on drop.
pub struct CredentialsServer {
    url: String,
    token: String,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
}

impl CredentialsServer {
    pub async fn start(config: &aws_config::SdkConfig, task_role_arn: &str) -> Self {
        let creds = aws_sdk_sts::Client::new(config)
            .assume_role()
            .role_arn(task_role_arn)
            .role_session_name("ecs-task")
            .send()
            .await
            .unwrap_or_else(|e| panic!("STS AssumeRole {task_role_arn}: {e:?}"))
            .credentials
            .expect("AssumeRole returned credentials");
        let body = serde_json::json!({
            "AccessKeyId": creds.access_key_id(),
            "SecretAccessKey": creds.secret_access_key(),
            "Token": creds.session_token(),
            "Expiration": creds.expiration().fmt(aws_sdk_sts::primitives::DateTimeFormat::DateTime).unwrap(),
            "RoleArn": task_role_arn,
        })
        .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind credentials server");
        let addr = listener.local_addr().unwrap();
        let token = crate::unique("ecs-agent-token");
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (expected, count, stopped) = (format!("authorization: {token}"), requests.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    count.fetch_add(1, Ordering::SeqCst);
                    answer(conn, &expected, &body);
                }
            }
        });
        let url = format!("http://{addr}/v2/credentials/task");
        CredentialsServer { url, token, requests, stop, addr }
    }

    /// The variables the ECS agent sets in a container with a task role.
    pub fn env(&self) -> [(&'static str, String); 2] {
        [
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", self.url.clone()),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", self.token.clone()),
        ]
    }

    /// How many requests it has answered.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for CredentialsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the accept loop
    }
}

/// One HTTP/1.1 exchange: the credentials for a GET with the right token, else 401.
fn answer(conn: TcpStream, expected_auth: &str, body: &str) {
    let mut reader = BufReader::new(&conn);
    let mut authorized = false;
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
        authorized |= line.trim_end().eq_ignore_ascii_case(expected_auth);
        line.clear();
    }
    let (status, body) = if authorized { ("200 OK", body) } else { ("401 Unauthorized", "{}") };
    let mut conn = &conn;
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Pulls `image_ref` from its registry and runs its entrypoint as ECS would with the task role
/// `task_role_arn`: cwd = rootfs + WORKDIR, env = the image's env, then `env` (e.g. the task
/// definition's environment), the emulator endpoint and region, and the credentials endpoint.
/// Nothing else is inherited. Panics unless it exits 0 and fetched the task role's credentials.
pub async fn play_container(image_ref: &str, task_role_arn: &str, env: &[(&str, &str)]) -> Output {
    let config = crate::aws_config().await;
    let registry = image_ref.split('/').next().unwrap_or_default();
    let image = pull(image_ref, &registry_auth(registry)).await;
    let server = CredentialsServer::start(&config, task_role_arn).await;
    let out = run_entrypoint(&image, env, &server).output().expect("start the entrypoint");
    let shown = format!("stdout: {}\nstderr: {}", crate::text(&out.stdout), crate::text(&out.stderr));
    assert!(out.status.success(), "the container {image_ref} failed ({}):\n{shown}", out.status);
    assert!(server.requests() > 0, "the container did not fetch the task role's credentials:\n{shown}");
    out
}

/// The command that starts `image`'s entrypoint (plus cmd) from its unpacked rootfs.
pub fn run_entrypoint(image: &PulledImage, env: &[(&str, &str)], server: &CredentialsServer) -> Command {
    let c = &image.config;
    let argv: Vec<&String> = c.entrypoint.iter().chain(&c.cmd).collect();
    let (program, args) = argv.split_first().expect("the image has no entrypoint or cmd");
    let program = inside(image.rootfs.path(), program);
    assert!(program.is_file(), "entrypoint {} is not in the image", program.display());
    let mut cmd = Command::new(&program);
    cmd.args(args).current_dir(inside(image.rootfs.path(), &c.working_dir)).env_clear();
    cmd.envs(c.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    cmd.envs(env.iter().copied());
    cmd.env("AWS_ENDPOINT_URL", crate::moto_endpoint())
        .env("AWS_REGION", std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()))
        // No instance metadata here: fail fast instead of probing 169.254.169.254.
        .env("AWS_EC2_METADATA_DISABLED", "true");
    cmd.envs(server.env());
    cmd
}

/// `path` (absolute inside the image) on the host.
fn inside(rootfs: &Path, path: &str) -> PathBuf {
    rootfs.join(path.trim_start_matches('/'))
}
