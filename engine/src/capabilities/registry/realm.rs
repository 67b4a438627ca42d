//! Where a registry may have the host send credentials. A registry answering `/v2/` with
//! `WWW-Authenticate: Bearer realm="..."` gets them sent to that realm by oci-client, whatever it
//! names; so before a client with credentials is first used (once per attempt, registry and
//! source), the host asks `/v2/` itself and refuses a realm
//! - on plain HTTP to a host the plain-HTTP rule refuses (not loopback, no `registry:PlainHttp`),
//! - or on another host than the registry, unless granted `registry:SendCredentials <host>`
//!   (Docker Hub's `auth.docker.io` for `docker.io` needs none).
//!
//! A registry could still answer oci-client's own later probe differently. That takes a
//! registry acting against its own users on purpose, which the credentials are already given
//! to (a secret is bound to its registry, auth.rs): the check is against what goes wrong by
//! configuration, a realm on plain HTTP or on a host nobody meant to trust, which answers the
//! same to both probes.

use super::client::Scheme;
use super::errors::{self, Context, Failure};
use super::{Capabilities, plain_http_allowed};
use crate::host::bindings::WitError;
use std::time::Duration;

/// Registries whose token service lives on a host of its own, by the registry as users write it.
const KNOWN_REALMS: &[(&str, &str)] = &[("docker.io", "auth.docker.io"), ("registry-1.docker.io", "auth.docker.io")];

pub(super) async fn check(caps: &Capabilities, registry: &str, scheme: Scheme, ctx: &Context) -> Result<(), WitError> {
    let probe = async {
        let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build().map_err(Failure::from)?;
        let response = http.get(format!("{}://{registry}/v2/", scheme.as_str())).send().await.map_err(Failure::from)?;
        let header = response.headers().get(reqwest::header::WWW_AUTHENTICATE);
        Ok::<_, Failure>(header.and_then(|h| h.to_str().ok()).and_then(bearer_realm))
    };
    let op = format!("asking {registry} where it takes credentials");
    let Some(realm) = probe.await.map_err(|e| errors::to_wit(ctx, &op, e))? else { return Ok(()) };
    let refuse = |why: String| {
        WitError::new(
            crate::host::bindings::ErrorKind::Denied,
            "CredentialRealmRefused",
            format!("registry {registry} asks for its credentials to be sent to {realm}, {why}; they were not sent"),
        )
    };
    let url = reqwest::Url::parse(&realm).map_err(|_| refuse("which is not a URL".into()))?;
    let host = url.host_str().unwrap_or_default();
    let authority = url.port().map_or_else(|| host.to_string(), |port| format!("{host}:{port}"));
    let known = KNOWN_REALMS.contains(&(registry, authority.as_str()));
    if authority != registry && !known {
        caps.authorize("registry:SendCredentials", &authority).map_err(|denied| refuse(denied.message))?;
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if plain_http_allowed(caps, &authority) => Ok(()),
        _ => Err(refuse(format!(
            "which is not HTTPS; plain HTTP is only for loopback hosts or with the grant line \"registry:PlainHttp {authority}\""
        ))),
    }
}

/// The `realm` of a `Bearer` challenge.
fn bearer_realm(header: &str) -> Option<String> {
    let (scheme, params) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    params.split(',').find_map(|p| {
        let (key, value) = p.trim().split_once('=')?;
        key.eq_ignore_ascii_case("realm").then(|| value.trim_matches('"').to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_realm_is_read_from_a_bearer_challenge_only() {
        let header = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io""#;
        assert_eq!(bearer_realm(header).as_deref(), Some("https://auth.docker.io/token"));
        assert_eq!(bearer_realm(r#"Basic realm="registry""#), None);
    }
}
