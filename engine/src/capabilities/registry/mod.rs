//! `registry`: OCI distribution registries (a private registry, Docker Hub, ECR), reached only
//! through the host.
//!
//! - Grants: `registry:Pull|Push <registry>/<name>` per call (copy-blob: Pull on `from`, Push on
//!   `to`), plus what the auth needs (`secretsmanager:GetSecretValue <secret>`,
//!   `ecr:GetAuthorizationToken *`). Plain HTTP for loopback registries, or with
//!   `registry:PlainHttp <registry>`; HTTPS otherwise, never a silent downgrade.
//! - Digests: everything pushed is hashed before it is sent, everything pulled before it is
//!   returned; a mismatch is `invalid-input` `DigestMismatch`.
//! - Plan mode: pushes and copies are recorded and return what they would (push-manifest: the
//!   manifest's digest) without any request, not even the credentials read.
//! - Ledger: push-manifest records `registry:image` `<registry>/<name>@<digest>` when the manifest
//!   was not in the repository before the call. It is written *before* the PUT (write-ahead): a
//!   crash between the PUT and a later ledger write would otherwise leave an image the resumed
//!   attempt finds (tag already there) and never records, so teardown would miss it. The cost: a
//!   PUT that then fails leaves an entry for a manifest that does not exist, which teardown finds
//!   already gone. A manifest that existed before (same bytes pushed under another tag, or by
//!   another run) is not recorded: deleting it by digest would take it from its other tags too.
//! - Credentials go only where the registry's token realm passes realm.rs (same host, HTTPS or
//!   the plain-HTTP rule, or `registry:SendCredentials <realm-host>`).
//! - Size: a downloaded blob may be at most 128 MiB and a manifest 4 MiB (transfer.rs); a larger
//!   one fails with `BlobTooLarge` / `ManifestTooLarge` before the host holds it whole.
//! - Layers: push-layer unpacks what it uploads and records it for find-layer (layers.rs).

mod auth;
mod client;
mod errors;
mod layers;
mod names;
mod realm;
mod transfer;

pub use auth::AuthCache;
pub use layers::LayerIndex;

use super::Capabilities;
use crate::grants::Need;
use crate::host::bindings::wharf::plugin::ledger::DeleteOutcome;
use crate::host::bindings::wharf::plugin::registry::{Auth, Host, Layer, Manifest, Repository};
use crate::host::bindings::{ErrorKind, WitError};
use crate::host::sandbox::SandboxState;
use crate::journal::Resource;
use client::{Scheme, Session};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The ledger kind of pushed images.
pub const IMAGE_KIND: &str = "registry:image";

impl Host for SandboxState {
    async fn blob_exists(&mut self, repo: Repository, digest: String) -> Result<bool, WitError> {
        let caps = self.caps()?;
        names::check_digest(&digest)?;
        authorize(caps, "registry:Pull", &repo)?;
        open(caps, &repo).await?.blob_exists(&digest).await
    }

    async fn push_blob(&mut self, repo: Repository, digest: String, data: Vec<u8>) -> Result<bool, WitError> {
        let caps = self.caps()?;
        names::check_digest(&digest)?;
        names::verify("the blob data", &digest, &data)?;
        let resource = authorize(caps, "registry:Push", &repo)?;
        if caps.plan("registry:PushBlob", &format!("{resource}@{digest}"), &format!("({} bytes)", data.len())) {
            return Ok(true);
        }
        let session = open(caps, &repo).await?;
        if session.blob_exists(&digest).await? {
            return Ok(false);
        }
        session.push_blob(&digest, data).await?;
        Ok(true)
    }

    async fn find_layer(&mut self, repo: Repository, diff_id: String) -> Result<Option<Layer>, WitError> {
        let caps = self.caps()?;
        names::check_digest(&diff_id)?;
        authorize(caps, "registry:Push", &repo)?;
        let Some(record) = caps.layer_index().find(&repo.registry, &repo.name, &diff_id) else { return Ok(None) };
        if open(caps, &repo).await?.blob_exists(&record.digest).await? {
            return Ok(Some(Layer { digest: record.digest, size: record.size }));
        }
        // Deleted or garbage-collected since: the layer has to be built and pushed again.
        caps.layer_index().forget(&repo.registry, &repo.name, &diff_id);
        Ok(None)
    }

    async fn push_layer(
        &mut self,
        repo: Repository,
        digest: String,
        diff_id: String,
        data: Vec<u8>,
    ) -> Result<bool, WitError> {
        let caps = self.caps()?;
        names::check_digest(&digest)?;
        names::check_digest(&diff_id)?;
        names::verify("the layer data", &digest, &data)?;
        let resource = authorize(caps, "registry:Push", &repo)?;
        let size = data.len() as u64;
        // Unpacked on the blocking pool while the registry is asked and sent the blob: on this
        // machine about 40 ms for the example's 12.9 MB layer, longer than a loopback upload, so a
        // first build waits for part of it (BENCHMARKS.md, fifth round).
        let data = bytes::Bytes::from(data);
        let abandoned = Arc::new(AtomicBool::new(false));
        // Dropped with this call, however it ends (a step deadline drops it mid-await too).
        let _stop_unpacking = SetOnDrop(abandoned.clone());
        let unpacking = tokio::task::spawn_blocking({
            let data = data.clone();
            move || layers::unpacked_digest(&data, &abandoned)
        });
        let planned = caps.plan("registry:PushBlob", &format!("{resource}@{digest}"), &format!("({size} bytes)"));
        let uploaded = if planned {
            true
        } else {
            let session = open(caps, &repo).await?;
            let present = session.blob_exists(&digest).await?;
            if !present {
                session.push_blob(&digest, data).await?;
            }
            !present
        };
        let unpacked = unpacking.await.map_err(|e| {
            WitError::new(ErrorKind::Retryable, "HostTaskFailed", format!("unpacking the layer failed: {e}"))
        })?;
        match unpacked {
            Ok(actual) if actual == diff_id => {}
            Ok(actual) => {
                return Err(WitError::new(
                    ErrorKind::InvalidInput,
                    "DiffIdMismatch",
                    format!(
                        "the layer {digest} unpacks to {actual}, not to the diff-id given for it, {diff_id}: \
                         its files changed while it was built? Build again"
                    ),
                ));
            }
            Err(why) => {
                return Err(WitError::new(
                    ErrorKind::InvalidInput,
                    "InvalidLayer",
                    format!("the layer {digest} cannot be unpacked: {why}"),
                ));
            }
        }
        if !planned {
            caps.layer_index().record(&layers::LayerRecord {
                registry: repo.registry.clone(),
                repository: repo.name.clone(),
                diff_id,
                digest,
                size,
            });
        }
        Ok(uploaded)
    }

    async fn copy_blob(&mut self, from: Repository, to: Repository, digest: String) -> Result<bool, WitError> {
        let caps = self.caps()?;
        names::check_digest(&digest)?;
        // Both repositories at once, so a denial names everything missing.
        let (source, mut needs) = repository_needs("registry:Pull", &from)?;
        let (target, push) = repository_needs("registry:Push", &to)?;
        needs.extend(push);
        caps.authorize_all(&needs)?;
        if caps.plan("registry:CopyBlob", &format!("{target}@{digest}"), &format!("from {source}")) {
            return Ok(true);
        }
        let to_session = open(caps, &to).await?;
        if to_session.blob_exists(&digest).await? {
            return Ok(false);
        }
        // Same registry, same credentials: the registry can link the blob without a transfer.
        if from.registry == to.registry
            && same_auth(&from.auth, &to.auth)
            && to_session.mount_blob(&from.name, &digest).await?
        {
            return Ok(true);
        }
        // Held in host memory once; the plugin never sees it.
        let data = open(caps, &from).await?.pull_blob(&digest).await?;
        to_session.push_blob(&digest, data).await?;
        Ok(true)
    }

    async fn push_manifest(&mut self, repo: Repository, tag: String, manifest: Manifest) -> Result<String, WitError> {
        let caps = self.caps()?;
        names::check_tag(&tag)?;
        names::check_digest(&manifest.digest)?;
        names::verify("the manifest bytes", &manifest.digest, &manifest.bytes)?;
        check_manifest(&manifest)?;
        let resource = authorize(caps, "registry:Push", &repo)?;
        let detail = format!("{} {}", manifest.media_type, manifest.digest);
        if caps.plan("registry:PutManifest", &format!("{resource}:{tag}"), &detail) {
            return Ok(manifest.digest);
        }
        let session = open(caps, &repo).await?;
        // Nothing to do (and nothing to record) when the tag already names this manifest: the
        // usual case when a resumed attempt repeats a push that went through.
        if session.resolve(&tag).await?.as_deref() == Some(manifest.digest.as_str()) {
            return Ok(manifest.digest);
        }
        if session.resolve(&manifest.digest).await?.is_none() {
            record_image(caps, &repo, &tag, &manifest.digest, session.scheme())?;
        }
        session.put_manifest(&tag, &manifest).await?;
        Ok(manifest.digest)
    }

    async fn resolve(&mut self, repo: Repository, reference: String) -> Result<Option<String>, WitError> {
        let caps = self.caps()?;
        names::check_reference(&reference)?;
        authorize(caps, "registry:Pull", &repo)?;
        open(caps, &repo).await?.resolve(&reference).await
    }

    async fn pull_manifest(&mut self, repo: Repository, reference: String) -> Result<Manifest, WitError> {
        let caps = self.caps()?;
        names::check_reference(&reference)?;
        authorize(caps, "registry:Pull", &repo)?;
        open(caps, &repo).await?.pull_manifest(&reference).await
    }

    async fn pull_blob(&mut self, repo: Repository, digest: String) -> Result<Vec<u8>, WitError> {
        let caps = self.caps()?;
        names::check_digest(&digest)?;
        authorize(caps, "registry:Pull", &repo)?;
        open(caps, &repo).await?.pull_blob(&digest).await
    }
}

/// Sets its flag when dropped.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Checks the repository's names, `action` on `<registry>/<name>` and the grants its auth needs;
/// returns the grant resource.
/// Allows `action` on the repository and what its auth reads; returns `registry/name`.
fn authorize(caps: &Capabilities, action: &str, repo: &Repository) -> Result<String, WitError> {
    let (resource, needs) = repository_needs(action, repo)?;
    caps.authorize_all(&needs)?;
    Ok(resource)
}

/// `registry/name` and every pair `action` on it needs: the repository, and the credentials.
fn repository_needs(action: &str, repo: &Repository) -> Result<(String, Vec<Need>), WitError> {
    names::check_registry(&repo.registry)?;
    names::check_name(&repo.name)?;
    let resource = format!("{}/{}", repo.registry, repo.name);
    let needs = std::iter::once(Need::new(action, &resource)).chain(auth::need(&repo.auth)).collect();
    Ok((resource, needs))
}

async fn open<'a>(caps: &'a Capabilities, repo: &Repository) -> Result<Session<'a>, WitError> {
    let plain = plain_http_allowed(caps, &repo.registry);
    Session::open(caps, repo, if plain { Scheme::Http } else { Scheme::Https }).await
}

/// Plain HTTP only where nothing leaves the machine, or where a grant says so (registries and
/// the token realms they name alike).
fn plain_http_allowed(caps: &Capabilities, host: &str) -> bool {
    names::is_loopback(host) || caps.is_granted("registry:PlainHttp", host)
}

fn same_auth(a: &Auth, b: &Auth) -> bool {
    match (a, b) {
        (Auth::Anonymous, Auth::Anonymous) | (Auth::Ecr, Auth::Ecr) => true,
        (Auth::BasicFromSecret(x), Auth::BasicFromSecret(y)) => x == y,
        _ => false,
    }
}

/// Registries refuse a manifest whose `mediaType` differs from its Content-Type; say so first.
fn check_manifest(manifest: &Manifest) -> Result<(), WitError> {
    names::media_type_header(&manifest.media_type)?;
    let json: serde_json::Value = serde_json::from_slice(&manifest.bytes).map_err(|e| {
        WitError::new(ErrorKind::InvalidInput, "InvalidManifest", format!("the manifest is not JSON: {e}"))
    })?;
    match json.get("mediaType").and_then(|m| m.as_str()) {
        Some(inner) if inner != manifest.media_type => Err(WitError::new(
            ErrorKind::InvalidInput,
            "InvalidManifest",
            format!("the manifest says its mediaType is `{inner}` but is pushed as `{}`", manifest.media_type),
        )),
        _ => Ok(()),
    }
}

/// Ledger entry for a pushed image, with what teardown needs to reach it again.
fn record_image(
    caps: &Capabilities,
    repo: &Repository,
    tag: &str,
    digest: &str,
    scheme: Scheme,
) -> Result<(), WitError> {
    let mut attributes = BTreeMap::from([
        ("registry".to_string(), repo.registry.clone()),
        ("repository".to_string(), repo.name.clone()),
        ("tag".to_string(), tag.to_string()),
        ("scheme".to_string(), scheme.as_str().to_string()),
    ]);
    auth::to_attributes(&repo.auth, &mut attributes);
    let id = format!("{}/{}@{digest}", repo.registry, repo.name);
    let name = format!("{}/{}:{tag}", repo.registry, repo.name);
    caps.record_created(IMAGE_KIND, &id, Some(&name), attributes)
}

/// Deletes a `registry:image` by digest (its tags go with it). Registries that do not allow
/// deletes get a permanent error saying so.
pub(crate) async fn delete(
    caps: &Capabilities,
    resource: &Resource,
    _secret_recovery_days: Option<u32>,
) -> Result<DeleteOutcome, WitError> {
    let unknown = || {
        WitError::new(
            ErrorKind::Permanent,
            "UnknownKind",
            format!("this wharf cannot delete resources of kind {} ({})", resource.kind, resource.id),
        )
    };
    if resource.kind != IMAGE_KIND {
        return Err(unknown());
    }
    // `<registry>/<name>@<digest>`: the registry has no `/`, the name no `@`.
    let (registry, rest) = resource.id.split_once('/').ok_or_else(unknown)?;
    let (name, digest) = rest.rsplit_once('@').ok_or_else(unknown)?;
    let scheme = match resource.attributes.get("scheme") {
        Some(s) => Scheme::parse(s),
        None if names::is_loopback(registry) => Scheme::Http,
        None => Scheme::Https,
    };
    let repo = Repository {
        registry: registry.to_string(),
        name: name.to_string(),
        auth: auth::from_attributes(&resource.attributes)?,
    };
    match Session::open(caps, &repo, scheme).await?.delete_manifest(digest).await {
        Ok(true) => Ok(DeleteOutcome::Deleted),
        Ok(false) => Ok(DeleteOutcome::AlreadyGone),
        Err(e) if e.code == "Unsupported" => Err(WitError {
            message: format!(
                "registry {registry} does not allow deleting images (HTTP {}); enable deletes there \
                 (docker-registry: `storage.delete.enabled: true`) or delete {} by hand",
                e.http_status.unwrap_or(405),
                resource.id
            ),
            ..e
        }),
        Err(e) => Err(e),
    }
}
