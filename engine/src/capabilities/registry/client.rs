//! One repository of one registry for the length of one host call: a session with the attempt's
//! client for that registry and those credentials, and each distribution API request the
//! capability makes, transcribed through `Capabilities::call_mapped` and mapped by `errors::to_wit`.
//!
//! oci-client does all requests but the manifest DELETE (it has none), sent with reqwest here.
//! A client is kept per registry and credential source for the step attempt (`auth::AuthCache`),
//! not shared further: oci-client keeps the first credentials it sees per registry. Building one
//! is not free either: its TLS setup reads the system's root certificates, about 1.5 ms of CPU.

use super::errors::{self, Context, Failure};
use super::{Capabilities, auth, names, realm, transfer};
use crate::capabilities::limits;
use crate::host::bindings::WitError;
use crate::host::bindings::wharf::plugin::registry::{Manifest, Repository};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Per read, so large blobs are not cut off, while a registry that stops answering is.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Manifest types the host asks for: Docker v2 and OCI, single images and indexes.
const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

fn new_client(scheme: Scheme) -> Client {
    let protocol = match scheme {
        Scheme::Http => ClientProtocol::Http,
        Scheme::Https => ClientProtocol::Https,
    };
    let config = ClientConfig {
        protocol,
        connect_timeout: Some(CONNECT_TIMEOUT),
        read_timeout: Some(READ_TIMEOUT),
        ..Default::default()
    };
    Client::new(config)
}

/// Plain HTTP or HTTPS: see `names::is_loopback` and the `registry:PlainHttp` grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    pub fn parse(s: &str) -> Scheme {
        if s == "http" { Scheme::Http } else { Scheme::Https }
    }
}

pub(super) struct Session<'a> {
    caps: &'a Capabilities,
    pub registry: String,
    pub name: String,
    scheme: Scheme,
    client: Client,
    /// The plaintext credentials, for this call only.
    auth: RegistryAuth,
    ctx: Context,
}

impl<'a> Session<'a> {
    /// Reads the credentials (grants are the caller's business) and prepares the client.
    pub async fn open(caps: &'a Capabilities, repo: &Repository, scheme: Scheme) -> Result<Session<'a>, WitError> {
        let credentials = auth::credentials(caps, &repo.auth, &repo.registry).await?;
        let key = format!("{}://{} {}", scheme.as_str(), repo.registry, auth::source_key(&repo.auth));
        let ctx = auth::context(&repo.registry, &repo.auth);
        let existing = caps.registry_auth().clients.lock().unwrap().get(&key).cloned();
        let client = match existing {
            Some(client) => client,
            None => {
                // Before a client first holds credentials: where would the registry send them?
                if matches!(credentials, RegistryAuth::Basic(..)) {
                    realm::check(caps, &repo.registry, scheme, &ctx).await?;
                }
                caps.registry_auth().clients.lock().unwrap().entry(key).or_insert_with(|| new_client(scheme)).clone()
            }
        };
        let probe = Reference::with_tag(repo.registry.clone(), repo.name.clone(), "latest".into());
        // oci-client applies stored credentials to blob requests; store them before any request.
        client.store_auth_if_needed(probe.resolve_registry(), &credentials).await;
        Ok(Session {
            caps,
            registry: repo.registry.clone(),
            name: repo.name.clone(),
            scheme,
            client,
            auth: credentials,
            ctx,
        })
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// `reference` is a tag or a digest.
    fn reference(&self, reference: &str) -> Reference {
        let (registry, name) = (self.registry.clone(), self.name.clone());
        if names::is_digest(reference) {
            Reference::with_digest(registry, name, reference.into())
        } else {
            Reference::with_tag(registry, name, reference.into())
        }
    }

    /// Sends one request: transcript entry `<action> <registry>/<name><target>`, one error mapping.
    async fn send<T, E: Into<Failure>>(
        &self,
        action: &str,
        target: &str,
        op: &str,
        request: impl Future<Output = Result<T, E>>,
    ) -> Result<T, WitError> {
        let resource = format!("{}/{}{target}", self.registry, self.name);
        let op = format!("{op} ({resource})");
        let mapped = async { request.await.map_err(|e| errors::to_wit(&self.ctx, &op, e.into())) };
        self.caps.call_mapped(action, &resource, mapped).await
    }

    pub async fn blob_exists(&self, digest: &str) -> Result<bool, WitError> {
        let image = self.reference(digest);
        let target = format!("@{digest}");
        self.send("registry:HeadBlob", &target, "checking a blob", self.client.blob_exists(&image, digest)).await
    }

    pub async fn push_blob(&self, digest: &str, data: impl Into<bytes::Bytes>) -> Result<(), WitError> {
        let image = self.reference(digest);
        let target = format!("@{digest}");
        let request = self.client.push_blob(&image, data, digest);
        self.send("registry:PushBlob", &target, "uploading a blob", request).await.map(|_| ())
    }

    /// Cross-repository mount from `from` (same registry); false when the registry declined and
    /// the blob has to be copied.
    pub async fn mount_blob(&self, from: &str, digest: &str) -> Result<bool, WitError> {
        let image = self.reference(digest);
        let source = Reference::with_digest(self.registry.clone(), from.to_string(), digest.into());
        let request = async {
            match self.client.mount_blob(&image, &source, digest).await {
                Ok(()) => Ok(true),
                // 202 instead of 201: the registry opened an upload instead of mounting.
                Err(OciDistributionError::SpecViolationError(_)) => Ok(false),
                Err(e) => Err(e),
            }
        };
        self.send("registry:MountBlob", &format!("@{digest} from {from}"), "mounting a blob", request).await
    }

    /// The blob's bytes, checked against `digest` (oci-client checks too; this is the host's word),
    /// at most `MAX_BLOB_BYTES` of them and what is left of the attempt's download budget.
    pub async fn pull_blob(&self, digest: &str) -> Result<Vec<u8>, WitError> {
        let image = self.reference(digest);
        let budget = self.caps.downloads();
        let left = usize::try_from(budget.remaining()).unwrap_or(usize::MAX);
        let mut sink = transfer::Capped::new(transfer::MAX_BLOB_BYTES.min(left));
        let request = self.client.pull_blob(&image, digest, &mut sink);
        let pulled = self.send("registry:GetBlob", &format!("@{digest}"), "downloading a blob", request).await;
        budget.spend(sink.data.len() as u64);
        if sink.exceeded {
            let what = format!("blob {digest} of {}/{}", self.registry, self.name);
            return Err(if left < transfer::MAX_BLOB_BYTES {
                transfer::over_budget(&what, limits::MAX_DOWNLOAD_BYTES)
            } else {
                transfer::too_large("BlobTooLarge", &what, transfer::MAX_BLOB_BYTES)
            });
        }
        pulled?;
        names::verify("the blob the registry sent", digest, &sink.data)?;
        Ok(sink.data)
    }

    /// The digest `reference` resolves to; none when the repository or reference is unknown.
    pub async fn resolve(&self, reference: &str) -> Result<Option<String>, WitError> {
        let image = self.reference(reference);
        let target = if names::is_digest(reference) { format!("@{reference}") } else { format!(":{reference}") };
        let request = self.client.fetch_manifest_digest(&image, &self.auth);
        match self.send("registry:HeadManifest", &target, "resolving a manifest", request).await {
            Ok(digest) => Ok(Some(digest)),
            Err(e) if e.code == "NotFound" => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The manifest, read by the host itself so that the read stops past `MAX_MANIFEST_BYTES`:
    /// oci-client's own pull would hold whatever the registry sends. oci-client still does the
    /// auth handshake (its token, or the Basic credentials it was given).
    pub async fn pull_manifest(&self, reference: &str) -> Result<Manifest, WitError> {
        let image = self.reference(reference);
        let target = if names::is_digest(reference) { format!("@{reference}") } else { format!(":{reference}") };
        let request = async {
            let request =
                self.manifest_request(reqwest::Method::GET, &image, reference, RegistryOperation::Pull).await?;
            let mut response = request.header(reqwest::header::ACCEPT, MANIFEST_TYPES.join(", ")).send().await?;
            let status = response.status();
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                body.extend_from_slice(&chunk);
                if body.len() > transfer::MAX_MANIFEST_BYTES {
                    break;
                }
            }
            if !status.is_success() {
                return Err(Failure::from_response(status.as_u16(), &body));
            }
            Ok::<_, Failure>(body)
        };
        let bytes = self.send("registry:GetManifest", &target, "downloading a manifest", request).await?;
        self.caps.downloads().spend(bytes.len() as u64);
        if bytes.len() > transfer::MAX_MANIFEST_BYTES {
            let what = format!("manifest {reference} of {}/{}", self.registry, self.name);
            return Err(transfer::too_large("ManifestTooLarge", &what, transfer::MAX_MANIFEST_BYTES));
        }
        let digest = names::sha256(&bytes);
        if names::is_digest(reference) {
            names::verify("the manifest the registry sent", reference, &bytes)?;
        }
        Ok(Manifest { digest, media_type: media_type_of(&bytes), bytes: bytes.to_vec() })
    }

    pub async fn put_manifest(&self, tag: &str, manifest: &Manifest) -> Result<(), WitError> {
        let image = self.reference(tag);
        let content_type = names::media_type_header(&manifest.media_type)?;
        let request = self.client.push_manifest_raw(&image, manifest.bytes.clone(), content_type);
        self.send("registry:PutManifest", &format!(":{tag}"), "storing a manifest", request).await.map(|_| ())
    }

    /// A request on `/v2/<name>/manifests/<reference>` made by the host itself (oci-client has no
    /// capped read and no delete), with the auth oci-client's handshake yields: a bearer token
    /// for this repository, or the Basic credentials when the registry issues no token.
    async fn manifest_request(
        &self,
        method: reqwest::Method,
        image: &Reference,
        reference: &str,
        operation: RegistryOperation,
    ) -> Result<reqwest::RequestBuilder, Failure> {
        let http = reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT).read_timeout(READ_TIMEOUT).build()?;
        let token = self.client.auth(image, &self.auth, operation).await?;
        let url = format!(
            "{}://{}/v2/{}/manifests/{reference}",
            self.scheme.as_str(),
            image.resolve_registry(),
            image.repository()
        );
        let request = http.request(method, url);
        Ok(match (token, &self.auth) {
            (Some(token), _) => request.bearer_auth(token),
            (None, RegistryAuth::Basic(user, password)) => request.basic_auth(user, Some(password)),
            (None, _) => request,
        })
    }

    /// DELETE by digest; false when the manifest (or the repository) was already gone.
    pub async fn delete_manifest(&self, digest: &str) -> Result<bool, WitError> {
        let image = self.reference(digest);
        let request = async {
            let request =
                self.manifest_request(reqwest::Method::DELETE, &image, digest, RegistryOperation::Push).await?;
            let response = request.send().await.map_err(Failure::from)?;
            let status = response.status().as_u16();
            if response.status().is_success() {
                return Ok(true);
            }
            let body = response.bytes().await.unwrap_or_default();
            let failure = Failure::from_response(status, &body);
            if failure.is_not_found() { Ok(false) } else { Err(failure) }
        };
        self.send("registry:DeleteManifest", &format!("@{digest}"), "deleting a manifest", request).await
    }
}

/// oci-client does not return the Content-Type; the manifest's own `mediaType` says the same
/// (Docker v2 and OCI manifests written by current tools carry it). Without one, an object with
/// `manifests` is an index, anything else an image manifest.
fn media_type_of(bytes: &[u8]) -> String {
    let json: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    match json.get("mediaType").and_then(|m| m.as_str()) {
        Some(media_type) => media_type.to_string(),
        None if json.get("manifests").is_some() => "application/vnd.oci.image.index.v1+json".into(),
        None => "application/vnd.oci.image.manifest.v1+json".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_comes_from_the_manifest_or_its_shape() {
        let docker = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#;
        assert_eq!(media_type_of(docker), "application/vnd.docker.distribution.manifest.v2+json");
        assert_eq!(media_type_of(br#"{"schemaVersion":2,"manifests":[]}"#), "application/vnd.oci.image.index.v1+json");
        assert_eq!(media_type_of(br#"{"schemaVersion":2,"layers":[]}"#), "application/vnd.oci.image.manifest.v1+json");
    }
}
