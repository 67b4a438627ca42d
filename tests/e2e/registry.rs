//! The host `registry` capability against the real Debian docker-registry instances started by
//! `scripts/emulators.sh` (one open, one with htpasswd; both allow deletes) and moto for the
//! credentials secret. No guest: the host functions are called on a `SandboxState` built here,
//! exactly as the scheduler builds one for a step.

use std::collections::BTreeMap;
use std::sync::Arc;
use wharf::capabilities::aws::{Aws, AwsSettings};
use wharf::capabilities::registry::LayerIndex;
use wharf::capabilities::{CallMode, Capabilities};
use wharf::events::{EventSink, Quiet};
use wharf::grants::{Grant, GrantSet};
use wharf::host::bindings::wharf::plugin::ledger::{self, DeleteOptions, DeleteOutcome};
use wharf::host::bindings::wharf::plugin::registry::{Auth, Host, Layer, Manifest, Repository};
use wharf::host::bindings::{ErrorKind, WitError};
use wharf::host::sandbox::SandboxState;
use wharf::journal::{RunJournal, RunRecord, RunStatus, SledBackend, StateBackend};
use wharf_tests::{aws_config, fake_registry, unique};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn open_registry() -> String {
    env("WHARF_TEST_REGISTRY")
}

fn auth_registry() -> String {
    env("WHARF_TEST_REGISTRY_AUTH")
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run `scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\"` first")
    })
}

/// A port nothing listens on: bound, then released.
fn dead_registry() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("127.0.0.1:{port}")
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// One step attempt's host state: its own run journal, grants and mode.
struct Step {
    _dir: tempfile::TempDir,
    journal: Arc<dyn RunJournal>,
    state: SandboxState,
}

impl Step {
    fn new(grants: &[&str]) -> Step {
        Step::with_mode(grants, CallMode::Apply)
    }

    fn with_mode(grants: &[&str], mode: CallMode) -> Step {
        Step::build(grants, mode, None)
    }

    /// A step whose host keeps its record of pushed layers in `cache_dir`.
    fn with_layer_index(grants: &[&str], cache_dir: &std::path::Path) -> Step {
        Step::build(grants, CallMode::Apply, Some(cache_dir))
    }

    fn build(grants: &[&str], mode: CallMode, cache_dir: Option<&std::path::Path>) -> Step {
        let dir = tempfile::tempdir().unwrap();
        let backend = SledBackend::new(dir.path()).unwrap();
        let run_id = wharf::journal::new_run_id();
        let journal = backend
            .create_run(RunRecord {
                id: run_id.clone(),
                workflow_name: "registry-e2e".into(),
                workflow_path: "registry.toml".into(),
                workflow_source: String::new(),
                step_hashes: BTreeMap::new(),
                params: BTreeMap::new(),
                status: RunStatus::Running,
                created_at_ms: 0,
                updated_at_ms: 0,
                finished_at_ms: None,
                error: None,
            })
            .unwrap();
        let grants = GrantSet::new("push", grants.iter().map(|g| Grant::parse(g).unwrap()).collect());
        let events = EventSink::new(journal.clone(), Arc::new(Quiet));
        let aws = Aws::new(AwsSettings { region: Some("us-east-1".into()), profile: None, max_attempts: 1 });
        let mut caps = Capabilities::new(&run_id, "push", grants, events, Arc::new(aws)).with_mode(mode);
        if let Some(cache_dir) = cache_dir {
            caps = caps.with_layer_index(Arc::new(LayerIndex::in_cache_dir(cache_dir)));
        }
        Step { _dir: dir, journal, state: SandboxState::new(Some(caps), 64 << 20) }
    }

    /// Every event message of the attempt, one per line.
    fn transcript(&self) -> String {
        let events = self.journal.events(None, None).unwrap();
        events.iter().map(|e| e.message.clone()).collect::<Vec<_>>().join("\n")
    }

    fn images(&self) -> Vec<wharf::journal::Resource> {
        self.journal.resources().unwrap().into_iter().filter(|r| r.kind == "registry:image").collect()
    }
}

fn repo(registry: &str, name: &str, auth: Auth) -> Repository {
    Repository { registry: registry.into(), name: name.into(), auth }
}

/// A tiny image: a config blob, one layer, and the OCI manifest naming both.
struct Image {
    config: Vec<u8>,
    layer: Vec<u8>,
    manifest: Manifest,
}

fn image(seed: &str) -> Image {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","config":{{"Env":["SEED={seed}"]}},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#).into_bytes();
    let layer = format!("layer bytes for {seed}").into_bytes();
    let bytes = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len() },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha256(&layer), "size": layer.len() }],
    }))
    .unwrap();
    let manifest = Manifest { digest: sha256(&bytes), media_type: OCI_MANIFEST.into(), bytes };
    Image { config, layer, manifest }
}

/// Pushes both blobs and the manifest under `tag`; returns what push-blob said for each blob.
async fn push(step: &mut Step, repo: &Repository, img: &Image, tag: &str) -> Result<(bool, bool, String), WitError> {
    let config = step.state.push_blob(repo.clone(), sha256(&img.config), img.config.clone()).await?;
    let layer = step.state.push_blob(repo.clone(), sha256(&img.layer), img.layer.clone()).await?;
    let digest = step.state.push_manifest(repo.clone(), tag.into(), img.manifest.clone()).await?;
    Ok((config, layer, digest))
}

fn grants_for(registry: &str, name: &str) -> Vec<String> {
    vec![format!("registry:Push {registry}/{name}"), format!("registry:Pull {registry}/{name}")]
}

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn push_pulls_back_with_the_same_digests_and_a_second_push_uploads_nothing() {
    let (registry, name) = (open_registry(), unique("wharf-e2e/app"));
    let repo = repo(&registry, &name, Auth::Anonymous);
    let mut step = Step::new(&as_strs(&grants_for(&registry, &name)));
    let img = image(&name);

    let (config_uploaded, layer_uploaded, digest) = push(&mut step, &repo, &img, "v1").await.unwrap();
    assert!(config_uploaded && layer_uploaded);
    assert_eq!(digest, img.manifest.digest);

    assert_eq!(step.state.resolve(repo.clone(), "v1".into()).await.unwrap(), Some(digest.clone()));
    let pulled = step.state.pull_manifest(repo.clone(), "v1".into()).await.unwrap();
    assert_eq!((pulled.digest.as_str(), pulled.media_type.as_str()), (digest.as_str(), OCI_MANIFEST));
    assert_eq!(pulled.bytes, img.manifest.bytes);
    let by_digest = step.state.pull_manifest(repo.clone(), digest.clone()).await.unwrap();
    assert_eq!(by_digest.bytes, img.manifest.bytes);
    assert_eq!(step.state.pull_blob(repo.clone(), sha256(&img.layer)).await.unwrap(), img.layer);
    assert_eq!(step.state.pull_blob(repo.clone(), sha256(&img.config)).await.unwrap(), img.config);

    // The ledger has the image, with what teardown needs to reach it.
    let images = step.images();
    assert_eq!(images.len(), 1, "{images:?}");
    assert_eq!(images[0].id, format!("{registry}/{name}@{digest}"));
    assert_eq!(images[0].attributes["tag"], "v1");
    assert_eq!(images[0].attributes["auth"], "anonymous");
    assert_eq!(images[0].attributes["repository"], name);

    // Again: no blob is uploaded, the manifest is not re-sent, nothing new is recorded.
    let (config_again, layer_again, again) = push(&mut step, &repo, &img, "v1").await.unwrap();
    assert!(!config_again && !layer_again, "a second push uploaded a blob again");
    assert_eq!(again, digest);
    let transcript = step.transcript();
    assert_eq!(transcript.matches("registry:PushBlob").count(), 2, "{transcript}");
    assert_eq!(transcript.matches("registry:PutManifest").count(), 1, "{transcript}");
    assert_eq!(step.images().len(), 1);

    // A second tag on the same manifest is not a new image (deleting it would take both tags).
    step.state.push_manifest(repo.clone(), "latest".into(), img.manifest.clone()).await.unwrap();
    assert_eq!(step.images().len(), 1);
    assert_eq!(step.state.resolve(repo.clone(), "latest".into()).await.unwrap(), Some(digest));
}

#[tokio::test(flavor = "multi_thread")]
async fn resolving_a_missing_tag_or_repository_gives_none() {
    let registry = open_registry();
    let name = unique("wharf-e2e/missing");
    let mut step = Step::new(&as_strs(&grants_for(&registry, &name)));
    let repo = repo(&registry, &name, Auth::Anonymous);
    assert_eq!(step.state.resolve(repo.clone(), "nope".into()).await.unwrap(), None);
    push(&mut step, &repo, &image(&name), "v1").await.unwrap();
    assert_eq!(step.state.resolve(repo.clone(), "v2".into()).await.unwrap(), None);
    let e = step.state.pull_manifest(repo, "v2".into()).await.unwrap_err();
    assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Permanent, "NotFound"), "{e:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn blobs_that_do_not_match_their_digest_are_refused_before_sending() {
    let (registry, name) = (dead_registry(), "wharf-e2e/mismatch".to_string());
    let mut step = Step::new(&as_strs(&grants_for(&registry, &name)));
    let e =
        step.state.push_blob(repo(&registry, &name, Auth::Anonymous), sha256(b"a"), b"b".to_vec()).await.unwrap_err();
    assert_eq!((e.kind, e.code.as_str()), (ErrorKind::InvalidInput, "DigestMismatch"), "{e:?}");
    assert!(!step.transcript().contains("registry:"), "nothing was sent: {}", step.transcript());
}

async fn create_secret(name: &str, username: &str, password: &str) {
    let client = aws_sdk_secretsmanager::Client::new(&aws_config().await);
    let value = serde_json::json!({ "username": username, "password": password }).to_string();
    client.create_secret().name(name).secret_string(value).send().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_auth_from_a_secret_works_and_a_wrong_password_gets_a_clear_error_without_it() {
    let registry = auth_registry();
    let (user, password) = (env("WHARF_TEST_REGISTRY_USER"), env("WHARF_TEST_REGISTRY_PASSWORD"));
    let good = unique("wharf-e2e/registry-good");
    let bad = unique("wharf-e2e/registry-bad");
    let wrong_password = "not-the-password-8c1f";
    create_secret(&good, &user, &password).await;
    create_secret(&bad, &user, wrong_password).await;
    let name = unique("wharf-e2e/private");
    let mut grants = grants_for(&registry, &name);
    grants.push("secretsmanager:GetSecretValue wharf-e2e/*".into());
    let mut step = Step::new(&as_strs(&grants));

    let private = repo(&registry, &name, Auth::BasicFromSecret(good.clone()));
    let img = image(&name);
    let (_, _, digest) = push(&mut step, &private, &img, "v1").await.unwrap();
    let pulled = step.state.pull_manifest(private.clone(), "v1".into()).await.unwrap();
    assert_eq!(pulled.digest, digest);
    let images = step.images();
    assert_eq!(
        (images[0].attributes["auth"].as_str(), images[0].attributes["secret"].as_str()),
        ("basic", good.as_str())
    );

    let wrong = repo(&registry, &name, Auth::BasicFromSecret(bad.clone()));
    let e = step.state.resolve(wrong.clone(), "v1".into()).await.unwrap_err();
    assert_eq!((e.kind, e.code.as_str(), e.http_status), (ErrorKind::Permanent, "RegistryAuthFailed", Some(401)));
    let expected = format!("registry {registry} rejected the credentials from secret `{bad}` (HTTP 401)");
    assert!(e.message.contains(&expected), "{}", e.message);
    assert!(e.message.contains("check the username and password stored in that secret"), "{}", e.message);
    let e = step.state.push_blob(wrong, sha256(b"x"), b"x".to_vec()).await.unwrap_err();
    assert_eq!(e.code, "RegistryAuthFailed", "{e:?}");

    let e = step.state.blob_exists(repo(&registry, &name, Auth::Anonymous), digest.clone()).await.unwrap_err();
    assert_eq!(e.code, "RegistryAuthFailed", "{e:?}");
    assert!(e.message.contains("anonymous request"), "{}", e.message);

    // Neither password reaches the transcript, the ledger or an error.
    let everything = format!("{}\n{:?}", step.transcript(), step.journal.resources().unwrap());
    assert!(!everything.contains(wrong_password) && !everything.contains(&password), "{everything}");
    assert!(step.transcript().contains(&format!("secretsmanager:GetSecretValue {bad} -> ok")));
}

#[tokio::test(flavor = "multi_thread")]
async fn reading_the_secret_needs_its_own_grant() {
    let registry = auth_registry();
    let name = unique("wharf-e2e/nosecret");
    let mut step = Step::new(&as_strs(&grants_for(&registry, &name)));
    let e = step.state.resolve(repo(&registry, &name, Auth::BasicFromSecret("team/creds".into())), "v1".into()).await;
    let e = e.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Denied);
    assert!(e.message.contains("\"secretsmanager:GetSecretValue team/creds\""), "{}", e.message);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_that_is_down_is_a_retryable_error() {
    let registry = dead_registry();
    let name = "wharf-e2e/down";
    let mut step = Step::new(&as_strs(&grants_for(&registry, name)));
    let e = step.state.blob_exists(repo(&registry, name, Auth::Anonymous), sha256(b"x")).await.unwrap_err();
    assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Retryable, "RegistryUnreachable"), "{e:?}");
    assert!(e.message.starts_with(&format!("registry {registry} unreachable")), "{}", e.message);
    let img = image("down");
    let e = push(&mut step, &repo(&registry, name, Auth::Anonymous), &img, "v1").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e:?}");
    assert!(step.transcript().contains(&format!("registry:HeadBlob {registry}/{name}@")), "{}", step.transcript());
}

#[tokio::test(flavor = "multi_thread")]
async fn pushing_without_the_push_grant_is_denied_naming_the_line() {
    let registry = open_registry();
    let name = unique("wharf-e2e/denied");
    let mut step = Step::new(&[&format!("registry:Pull {registry}/wharf-e2e/*")]);
    let img = image(&name);
    let e = step.state.push_blob(repo(&registry, &name, Auth::Anonymous), sha256(&img.layer), img.layer).await;
    let e = e.unwrap_err();
    assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Denied, "GrantMissing"));
    assert!(e.message.contains(&format!("\"registry:Push {registry}/{name}\"")), "{}", e.message);
    // The glob grant allows pulls under the prefix.
    assert_eq!(step.state.resolve(repo(&registry, &name, Auth::Anonymous), "v1".into()).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_is_for_loopback_registries_unless_granted() {
    // 0.0.0.0 reaches the local registry but is not a loopback address: HTTPS unless granted.
    let port = open_registry().rsplit(':').next().unwrap().to_string();
    let registry = format!("0.0.0.0:{port}");
    let name = unique("wharf-e2e/plain");
    let mut step = Step::new(&as_strs(&grants_for(&registry, &name)));
    let e = step.state.resolve(repo(&registry, &name, Auth::Anonymous), "v1".into()).await.unwrap_err();
    assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Permanent, "RegistryTlsFailed"), "{e:?}");
    assert!(e.message.contains(&format!("\"registry:PlainHttp {registry}\"")), "{}", e.message);

    let mut grants = grants_for(&registry, &name);
    grants.push(format!("registry:PlainHttp {registry}"));
    let mut step = Step::new(&as_strs(&grants));
    assert_eq!(step.state.resolve(repo(&registry, &name, Auth::Anonymous), "v1".into()).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_through_the_ledger_removes_the_manifest() {
    for private in [false, true] {
        let registry = if private { auth_registry() } else { open_registry() };
        let name = unique("wharf-e2e/delete");
        let mut grants = grants_for(&registry, &name);
        let auth = if private {
            let secret = unique("wharf-e2e/delete-creds");
            create_secret(&secret, &env("WHARF_TEST_REGISTRY_USER"), &env("WHARF_TEST_REGISTRY_PASSWORD")).await;
            grants.push(format!("secretsmanager:GetSecretValue {secret}"));
            Auth::BasicFromSecret(secret)
        } else {
            Auth::Anonymous
        };
        grants.push("ledger:Delete registry:image".into());
        let repo = repo(&registry, &name, auth);
        let mut step = Step::new(&as_strs(&grants));
        let (_, _, digest) = push(&mut step, &repo, &image(&name), "v1").await.unwrap();
        let id = format!("{registry}/{name}@{digest}");

        let options = || DeleteOptions { secret_recovery_days: None };
        let outcome = ledger::Host::delete(&mut step.state, "registry:image".into(), id.clone(), options()).await;
        assert!(matches!(outcome, Ok(DeleteOutcome::Deleted)), "{outcome:?}");
        assert_eq!(step.state.resolve(repo.clone(), "v1".into()).await.unwrap(), None);
        assert_eq!(step.state.resolve(repo.clone(), digest.clone()).await.unwrap(), None);
        assert!(step.journal.resources().unwrap()[0].deleted_at_ms.is_some());
        assert!(step.transcript().contains(&format!("registry:DeleteManifest {id} -> ok")), "{}", step.transcript());

        // A push of the same image records it again; deleting it twice finds it gone.
        let mut again = Step::new(&as_strs(&grants));
        push(&mut again, &repo, &image(&name), "v1").await.unwrap();
        let outcome = ledger::Host::delete(&mut again.state, "registry:image".into(), id.clone(), options()).await;
        assert!(matches!(outcome, Ok(DeleteOutcome::Deleted)), "{outcome:?}");

        // A ledger entry whose manifest the registry no longer has (404) counts as deleted.
        let mut gone = again.journal.resources().unwrap().remove(0);
        gone.id = format!("{registry}/{name}@{}", sha256(b"never pushed"));
        gone.deleted_at_ms = None;
        again.journal.record_resource(&gone).unwrap();
        let outcome = ledger::Host::delete(&mut again.state, "registry:image".into(), gone.id, options()).await;
        assert!(matches!(outcome, Ok(DeleteOutcome::AlreadyGone)), "{outcome:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_planned_push_makes_no_request() {
    // Nothing listens there: any request would fail.
    let registry = dead_registry();
    let name = "wharf-e2e/planned";
    let mut step = Step::with_mode(&as_strs(&grants_for(&registry, name)), CallMode::Plan);
    let repo = repo(&registry, name, Auth::BasicFromSecret("never-read".into()));
    let e = step.state.push_blob(repo.clone(), sha256(b"x"), b"x".to_vec()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Denied, "grants are checked in plan mode too: {e:?}");

    let mut grants = grants_for(&registry, name);
    grants.push("secretsmanager:GetSecretValue never-read".into());
    let mut step = Step::with_mode(&as_strs(&grants), CallMode::Plan);
    let img = image("planned");
    let (config, layer, digest) = push(&mut step, &repo, &img, "v1").await.unwrap();
    assert!(config && layer);
    assert_eq!(digest, img.manifest.digest, "plan mode returns the digest the push would produce");
    assert!(step.state.copy_blob(repo.clone(), repo.clone(), sha256(b"x")).await.unwrap());
    let transcript = step.transcript();
    assert!(transcript.contains(&format!("PLAN registry:PutManifest {registry}/{name}:v1")), "{transcript}");
    assert!(!transcript.contains("->"), "a planned push sent a request: {transcript}");
    assert!(step.images().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_blob_mounts_within_a_registry_and_transfers_across_registries() {
    let (open, private) = (open_registry(), auth_registry());
    let (base, app) = (unique("wharf-e2e/base"), unique("wharf-e2e/app"));
    let secret = unique("wharf-e2e/copy-creds");
    create_secret(&secret, &env("WHARF_TEST_REGISTRY_USER"), &env("WHARF_TEST_REGISTRY_PASSWORD")).await;
    let grants = [
        format!("registry:Pull {open}/wharf-e2e/*"),
        format!("registry:Push {open}/wharf-e2e/*"),
        format!("registry:Push {private}/{app}"),
        format!("registry:Pull {private}/{app}"),
        format!("secretsmanager:GetSecretValue {secret}"),
    ];
    let mut step = Step::new(&as_strs(&grants));
    let base_repo = repo(&open, &base, Auth::Anonymous);
    let img = image(&base);
    push(&mut step, &base_repo, &img, "v1").await.unwrap();
    let layer = sha256(&img.layer);

    let same_registry = repo(&open, &app, Auth::Anonymous);
    assert!(step.state.copy_blob(base_repo.clone(), same_registry.clone(), layer.clone()).await.unwrap());
    assert!(!step.state.copy_blob(base_repo.clone(), same_registry.clone(), layer.clone()).await.unwrap());
    // Mounted by the registry: nothing pulled through the host or uploaded.
    let transcript = step.transcript();
    let uploaded = format!("registry:PushBlob {open}/{app}");
    assert!(transcript.contains("registry:MountBlob"), "{transcript}");
    assert!(!transcript.contains("registry:GetBlob") && !transcript.contains(&uploaded), "{transcript}");
    assert_eq!(step.state.pull_blob(same_registry, layer.clone()).await.unwrap(), img.layer);

    let other_registry = repo(&private, &app, Auth::BasicFromSecret(secret));
    assert!(step.state.copy_blob(base_repo.clone(), other_registry.clone(), layer.clone()).await.unwrap());
    assert!(step.state.blob_exists(other_registry.clone(), layer.clone()).await.unwrap());
    assert_eq!(step.state.pull_blob(other_registry, layer).await.unwrap(), img.layer);
}

/// A blob over the host's limit (128 MiB) fails with the limit named, cut off as it arrives
/// instead of held whole first; the same blob pushed is there in the registry, whole.
#[tokio::test(flavor = "multi_thread")]
async fn a_blob_over_the_host_limit_is_refused_while_it_downloads() {
    let (registry, name) = (open_registry(), unique("wharf-e2e/big"));
    let repo = repo(&registry, &name, Auth::Anonymous);
    let mut step = Step::new(&as_strs(&grants_for(&registry, &name)));
    let big = vec![7u8; (128 << 20) + 1];
    let digest = sha256(&big);
    assert!(step.state.push_blob(repo.clone(), digest.clone(), big).await.unwrap());
    assert!(step.state.blob_exists(repo.clone(), digest.clone()).await.unwrap());
    let e = step.state.pull_blob(repo.clone(), digest.clone()).await.unwrap_err();
    assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Permanent, "BlobTooLarge"), "{}", e.message);
    assert!(e.message.contains(&format!("blob {digest} of {registry}/{name} is larger than 128 MiB")), "{}", e.message);
}

/// A manifest that never ends: the host stops reading past 4 MiB instead of holding it whole.
#[tokio::test]
async fn an_endless_manifest_is_cut_off_while_it_downloads() {
    let (registry, sent) = fake_registry::endless_manifest().await;
    let name = "wharf-e2e/endless";
    let mut step = Step::new(&as_strs(&grants_for(&registry, name)));
    let e = step.state.pull_manifest(repo(&registry, name, Auth::Anonymous), "v1".into()).await.unwrap_err();
    assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Permanent, "ManifestTooLarge"), "{}", e.message);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let sent = sent.load(std::sync::atomic::Ordering::SeqCst);
    assert!(sent < 64 << 20, "the host kept reading: {sent} bytes sent");
    println!("FIGURE endless manifest: the registry got {} KiB out before the host hung up", sent >> 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_never_reach_a_token_realm_the_grants_do_not_allow() {
    let secret = unique("wharf-e2e/realm-creds");
    create_secret(&secret, "realm-user", "realm-password-0e4d").await;
    let (realm_host, reached) = fake_registry::counting_realm().await;
    let other_host = fake_registry::challenging(format!("http://{realm_host}/token")).await;
    let not_https = fake_registry::challenging("http://token.wharf-test.invalid/token".into()).await;
    for (registry, expected) in [
        (&other_host, format!("registry:SendCredentials {realm_host}")),
        (&not_https, "registry:PlainHttp token.wharf-test.invalid".to_string()),
    ] {
        let grants = [
            format!("registry:Pull {registry}/app"),
            format!("secretsmanager:GetSecretValue {secret}"),
            "registry:SendCredentials token.wharf-test.invalid".to_string(),
        ];
        let mut step = Step::new(&as_strs(&grants));
        let repo = repo(registry, "app", Auth::BasicFromSecret(secret.clone()));
        let e = step.state.resolve(repo, "latest".into()).await.unwrap_err();
        assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Denied, "CredentialRealmRefused"), "{}", e.message);
        assert!(e.message.contains(&expected) && e.message.contains("were not sent"), "{}", e.message);
    }
    assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 0, "the realm was contacted");
}

/// A secret naming its registry is sent to that registry only.
#[tokio::test(flavor = "multi_thread")]
async fn a_secret_bound_to_one_registry_is_not_sent_to_another() {
    let (open, private) = (open_registry(), auth_registry());
    let secret = unique("wharf-e2e/bound-creds");
    let value = serde_json::json!({ "username": "u", "password": "bound-password-77aa", "registry": private });
    let client = aws_sdk_secretsmanager::Client::new(&aws_config().await);
    client.create_secret().name(&secret).secret_string(value.to_string()).send().await.unwrap();
    let grants = [format!("registry:Pull {open}/app"), format!("secretsmanager:GetSecretValue {secret}")];
    let mut step = Step::new(&as_strs(&grants));
    let e =
        step.state.resolve(repo(&open, "app", Auth::BasicFromSecret(secret.clone())), "v1".into()).await.unwrap_err();
    assert_eq!((e.kind, e.code.as_str()), (ErrorKind::Denied, "CredentialsForAnotherRegistry"), "{}", e.message);
    assert!(e.message.contains(&format!("registry {private}; they are not sent to {open}")), "{}", e.message);
    assert!(!step.transcript().contains("registry:HeadManifest"), "{}", step.transcript());
}

/// A docker-registry of this test's own, with deletes left disabled (the default); stopped on drop.
struct NoDeleteRegistry {
    child: std::process::Child,
    _dir: tempfile::TempDir,
    addr: String,
}

impl NoDeleteRegistry {
    fn start() -> NoDeleteRegistry {
        let dir = tempfile::tempdir().unwrap();
        let addr = dead_registry();
        let config = format!(
            "version: 0.1\nlog: {{level: error}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let child = std::process::Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker-registry (installed by scripts/emulators.sh install)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(std::time::Instant::now() < deadline, "docker-registry did not start on {addr}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        NoDeleteRegistry { child, _dir: dir, addr }
    }
}

impl Drop for NoDeleteRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_without_deletes_gives_a_permanent_error_saying_so() {
    let registry = NoDeleteRegistry::start();
    let name = "wharf-e2e/nodelete";
    let mut grants = grants_for(&registry.addr, name);
    grants.push("ledger:Delete registry:image".into());
    let mut step = Step::new(&as_strs(&grants));
    let repo = repo(&registry.addr, name, Auth::Anonymous);
    let (_, _, digest) = push(&mut step, &repo, &image(name), "v1").await.unwrap();
    let id = format!("{}/{name}@{digest}", registry.addr);
    let options = DeleteOptions { secret_recovery_days: None };
    let e = ledger::Host::delete(&mut step.state, "registry:image".into(), id.clone(), options).await.unwrap_err();
    assert_eq!((e.kind, e.code.as_str(), e.http_status), (ErrorKind::Permanent, "Unsupported", Some(405)), "{e:?}");
    assert!(e.message.contains("does not allow deleting images") && e.message.contains(&id), "{}", e.message);
    // Still there, still in the ledger as not deleted.
    assert_eq!(step.state.resolve(repo, "v1".into()).await.unwrap(), Some(digest));
    assert!(step.journal.resources().unwrap()[0].deleted_at_ms.is_none());
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// A found layer as (digest, size): the bindings' record has no `PartialEq`.
fn as_pair(layer: Layer) -> (String, u64) {
    (layer.digest, layer.size)
}

/// DELETE of a blob on the open registry (no auth), as its garbage collection would.
fn delete_blob(registry: &str, name: &str, digest: &str) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(registry).unwrap();
    let request = format!("DELETE /v2/{name}/blobs/{digest} HTTP/1.1\r\nHost: {registry}\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 202"), "{response}");
}

#[tokio::test(flavor = "multi_thread")]
async fn push_layer_checks_what_the_layer_unpacks_to_and_find_layer_answers_while_the_registry_has_it() {
    let registry = open_registry();
    let name = unique("wharf-e2e/layers");
    let grants = grants_for(&registry, &name);
    let cache = tempfile::tempdir().unwrap();
    let mut step = Step::with_layer_index(&as_strs(&grants), cache.path());
    let repo = repo(&registry, &name, Auth::Anonymous);
    let tar = format!("a tar of {name}").repeat(2000).into_bytes();
    let (diff_id, blob) = (sha256(&tar), gzip(&tar));
    let digest = sha256(&blob);
    assert_eq!(
        step.state.find_layer(repo.clone(), diff_id.clone()).await.unwrap().map(as_pair),
        None,
        "nothing pushed yet"
    );

    // A layer that does not unpack to the diff-id it is pushed with is refused and not recorded.
    let other = sha256(b"another tar");
    let e = step.state.push_layer(repo.clone(), digest.clone(), other.clone(), blob.clone()).await.unwrap_err();
    assert_eq!((e.kind, e.code.as_str()), (ErrorKind::InvalidInput, "DiffIdMismatch"), "{e:?}");
    assert!(e.message.contains(&diff_id) && e.message.contains(&other), "names both digests: {}", e.message);
    assert_eq!(step.state.find_layer(repo.clone(), other).await.unwrap().map(as_pair), None);
    let e = step.state.push_layer(repo.clone(), sha256(&tar), diff_id.clone(), tar.clone()).await.unwrap_err();
    assert_eq!((e.kind, e.code.as_str()), (ErrorKind::InvalidInput, "InvalidLayer"), "{e:?}");

    // (The mismatched push above uploaded the blob before the check finished: content-addressed and
    // unreferenced, it is harmless.) The right diff-id: recorded, and found by a later step too.
    step.state.push_layer(repo.clone(), digest.clone(), diff_id.clone(), blob.clone()).await.unwrap();
    let layer = (digest.clone(), blob.len() as u64);
    assert_eq!(step.state.find_layer(repo.clone(), diff_id.clone()).await.unwrap().map(as_pair), Some(layer.clone()));
    let mut later = Step::with_layer_index(&as_strs(&grants), cache.path());
    assert_eq!(later.state.find_layer(repo.clone(), diff_id.clone()).await.unwrap().map(as_pair), Some(layer));
    // Not in another repository, and not for a step without the push grant.
    let elsewhere = self::repo(&registry, &format!("{name}-other"), Auth::Anonymous);
    let mut wide = grants.clone();
    wide.push(format!("registry:Push {registry}/{name}-other"));
    let mut step2 = Step::with_layer_index(&as_strs(&wide), cache.path());
    assert_eq!(step2.state.find_layer(elsewhere, diff_id.clone()).await.unwrap().map(as_pair), None);
    let mut reader = Step::with_layer_index(&[&format!("registry:Pull {registry}/{name}")], cache.path());
    let e = reader.state.find_layer(repo.clone(), diff_id.clone()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Denied, "{e:?}");
    assert!(e.message.contains(&format!("registry:Push {registry}/{name}")), "{}", e.message);

    // The registry lost the blob: no answer, and the record is dropped.
    delete_blob(&registry, &name, &digest);
    assert_eq!(later.state.find_layer(repo.clone(), diff_id.clone()).await.unwrap().map(as_pair), None);
    assert_eq!(std::fs::read_dir(cache.path().join("registry-layers")).unwrap().count(), 0, "record dropped");
}
