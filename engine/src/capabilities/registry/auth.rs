//! Registry credentials, read by the host so the plugin never sees them: basic auth from a
//! Secrets Manager secret (`{"username", "password"}`, the format ECS `repositoryCredentials`
//! uses) or an ECR token. The plaintext lives in `Zeroizing` buffers kept for the step attempt
//! ([`AuthCache`]: a build's several registry calls read the secret once, as a script would) and in
//! the attempt's oci-client clients; it never reaches the plugin, and messages name the secret only.
//!
//! A basic secret may name the registry it is for (`"registry": "host[:port]"`); then it is sent
//! to that registry only, whatever registry a step's plugin names with it. Without the field it
//! goes to the registries the step is granted (`registry:Pull|Push`), as before.

use super::Capabilities;
use super::errors::Context;
use crate::grants::Need;
use crate::host::bindings::wharf::plugin::registry::Auth;
use crate::host::bindings::{ErrorKind, WitError};
use base64::Engine as _;
use oci_client::secrets::RegistryAuth;
use std::collections::{BTreeMap, HashMap};
use zeroize::Zeroizing;

/// What the credentials need: `secretsmanager:GetSecretValue <secret>` or
/// `ecr:GetAuthorizationToken *`. (Teardown's deletes skip this: `ledger:Delete` covers them.)
pub(super) fn need(auth: &Auth) -> Option<Need> {
    match auth {
        Auth::Anonymous => None,
        Auth::BasicFromSecret(secret) => Some(Need::new("secretsmanager:GetSecretValue", secret)),
        Auth::Ecr => Some(Need::new("ecr:GetAuthorizationToken", "*")),
    }
}

/// Credentials read during one step attempt, by where they came from, and the registry clients
/// that hold them (client.rs). Dropped (and zeroized) with the attempt's capabilities, so a
/// rotated secret is read again by the next attempt.
#[derive(Default)]
pub struct AuthCache {
    credentials: tokio::sync::Mutex<HashMap<String, Basic>>,
    pub(super) clients: std::sync::Mutex<HashMap<String, oci_client::Client>>,
}

/// A user name and password, and the registry the secret binds them to, if it does.
struct Basic {
    username: Zeroizing<String>,
    password: Zeroizing<String>,
    registry: Option<String>,
}

/// Names the binding only: the user name and password are never printed.
impl std::fmt::Debug for Basic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Basic").field("registry", &self.registry).finish_non_exhaustive()
    }
}

/// Where credentials come from, as a cache key (never the credentials themselves).
pub(super) fn source_key(auth: &Auth) -> String {
    match auth {
        Auth::Anonymous => "anonymous".to_string(),
        Auth::BasicFromSecret(secret) => format!("secret:{secret}"),
        Auth::Ecr => "ecr".to_string(),
    }
}

/// The credentials to send, read once per attempt. (An ECR token is good for every registry the
/// AWS identity may use.)
pub(super) async fn credentials(caps: &Capabilities, auth: &Auth, registry: &str) -> Result<RegistryAuth, WitError> {
    if matches!(auth, Auth::Anonymous) {
        return Ok(RegistryAuth::Anonymous);
    }
    let key = source_key(auth);
    // Held across the read: concurrent calls of one attempt wait for it instead of repeating it.
    let mut cache = caps.registry_auth().credentials.lock().await;
    let basic = match cache.entry(key) {
        std::collections::hash_map::Entry::Occupied(cached) => cached.into_mut(),
        std::collections::hash_map::Entry::Vacant(slot) => slot.insert(read_credentials(caps, auth).await?),
    };
    if let (Some(bound), Auth::BasicFromSecret(secret)) = (&basic.registry, auth)
        && bound != registry
    {
        return Err(WitError::new(
            ErrorKind::Denied,
            "CredentialsForAnotherRegistry",
            format!("secret `{secret}` holds the credentials of registry {bound}; they are not sent to {registry}"),
        ));
    }
    Ok(RegistryAuth::Basic(basic.username.to_string(), basic.password.to_string()))
}

async fn read_credentials(caps: &Capabilities, auth: &Auth) -> Result<Basic, WitError> {
    match auth {
        Auth::Anonymous => unreachable!("anonymous auth reads no credentials"),
        Auth::BasicFromSecret(secret) => {
            let send = caps.aws().secrets().await?.get_secret_value().secret_id(secret).send();
            let out = match caps.call("secretsmanager:GetSecretValue", secret, send).await {
                Err(e) if e.code == "ResourceNotFoundException" => {
                    return Err(WitError {
                        message: format!("the registry credentials secret `{secret}` does not exist"),
                        ..e
                    });
                }
                other => other?,
            };
            let value = Zeroizing::new(out.secret_string.unwrap_or_default());
            parse_basic_secret(secret, &value)
        }
        Auth::Ecr => {
            let send = caps.aws().ecr().await?.get_authorization_token().send();
            let out = caps.call("ecr:GetAuthorizationToken", "*", send).await?;
            let token = out
                .authorization_data()
                .first()
                .and_then(|d| d.authorization_token())
                .ok_or_else(|| super::super::incomplete_response("GetAuthorizationToken", "authorizationToken"))?;
            let (username, password) = decode_ecr_token(token)?;
            Ok(Basic { username: Zeroizing::new(username), password, registry: None })
        }
    }
}

/// What error messages say about the credentials, and what to check when they are rejected.
pub(super) fn context(registry: &str, auth: &Auth) -> Context {
    let (credentials, hint) = match auth {
        Auth::Anonymous => (
            "an anonymous request".to_string(),
            "the repository needs credentials: set the step's registry auth to a basic-from-secret secret or ecr",
        ),
        Auth::BasicFromSecret(secret) => (
            format!("the credentials from secret `{secret}`"),
            "check the username and password stored in that secret, and that this user may access the repository",
        ),
        Auth::Ecr => (
            "the ECR token of the host's AWS identity".to_string(),
            "check that the registry is in the identity's account and region and that it may pull/push there",
        ),
    };
    Context { registry: registry.to_string(), credentials, hint }
}

/// Ledger attributes that let teardown authenticate the same way: `auth` and, for basic, `secret`.
pub(super) fn to_attributes(auth: &Auth, attributes: &mut BTreeMap<String, String>) {
    let kind = match auth {
        Auth::Anonymous => "anonymous",
        Auth::BasicFromSecret(secret) => {
            attributes.insert("secret".into(), secret.clone());
            "basic"
        }
        Auth::Ecr => "ecr",
    };
    attributes.insert("auth".into(), kind.into());
}

pub(super) fn from_attributes(attributes: &BTreeMap<String, String>) -> Result<Auth, WitError> {
    match (attributes.get("auth").map(String::as_str), attributes.get("secret")) {
        (None | Some("anonymous"), _) => Ok(Auth::Anonymous),
        (Some("basic"), Some(secret)) => Ok(Auth::BasicFromSecret(secret.clone())),
        (Some("ecr"), _) => Ok(Auth::Ecr),
        (Some(other), _) => Err(WitError::new(
            ErrorKind::Permanent,
            "UnknownAuth",
            format!("the ledger entry names registry auth `{other}`, which this wharf does not know"),
        )),
    }
}

/// `{"username": ..., "password": ...}` and optionally `"registry"`; errors name the secret and
/// the field, never the value.
fn parse_basic_secret(secret: &str, value: &str) -> Result<Basic, WitError> {
    let malformed = |what: &str| {
        WitError::new(
            ErrorKind::InvalidInput,
            "MalformedRegistrySecret",
            format!(
                "secret `{secret}` {what}: registry credentials must be the JSON object \
                 {{\"username\": \"...\", \"password\": \"...\"}}"
            ),
        )
    };
    // serde_json's errors give a position, not content; still, the message says nothing of it.
    let json: serde_json::Value = serde_json::from_str(value).map_err(|_| malformed("is not a JSON object"))?;
    let field = |name: &str| match json.get(name) {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(_) => Err(malformed(&format!("has a `{name}` that is not a non-empty string"))),
        None => Err(malformed(&format!("has no `{name}` field"))),
    };
    let username = Zeroizing::new(field("username")?);
    let password = Zeroizing::new(field("password")?);
    let registry = json.get("registry").map(|_| field("registry")).transpose()?;
    Ok(Basic { username, password, registry })
}

/// ECR tokens are base64 of `AWS:<password>`.
fn decode_ecr_token(token: &str) -> Result<(String, Zeroizing<String>), WitError> {
    let bad = || {
        WitError::new(
            ErrorKind::Retryable,
            "MalformedEcrToken",
            "ecr:GetAuthorizationToken returned a token that is not base64 of `user:password`",
        )
    };
    let decoded = Zeroizing::new(base64::engine::general_purpose::STANDARD.decode(token.trim()).map_err(|_| bad())?);
    let text = std::str::from_utf8(&decoded).map_err(|_| bad())?;
    let (user, password) = text.split_once(':').ok_or_else(bad)?;
    Ok((user.to_string(), Zeroizing::new(password.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_secret_needs_both_fields_and_errors_never_echo_the_value() {
        let basic = parse_basic_secret("s", r#"{"username":"u","password":"p4ss"}"#).unwrap();
        assert_eq!((basic.username.as_str(), basic.password.as_str(), basic.registry), ("u", "p4ss", None));
        let bound = parse_basic_secret("s", r#"{"username":"u","password":"p","registry":"r.example:5000"}"#);
        assert_eq!(bound.unwrap().registry.as_deref(), Some("r.example:5000"));
        let e = parse_basic_secret("team/registry", r#"{"username":"u","pasword":"hunter2"}"#).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidInput);
        assert!(e.message.contains("secret `team/registry` has no `password` field"), "{}", e.message);
        assert!(!e.message.contains("hunter2"));
        let e = parse_basic_secret("s", "hunter2 not json").unwrap_err();
        assert!(e.message.contains("is not a JSON object") && !e.message.contains("hunter2"), "{}", e.message);
    }

    /// moto's ECR hands out a token for an endpoint nobody listens on, so only decoding is tested.
    #[test]
    fn ecr_token_is_base64_of_user_and_password() {
        let token = base64::engine::general_purpose::STANDARD.encode("AWS:eyJwYXlsb2FkIjoi:x");
        let (user, password) = decode_ecr_token(&token).unwrap();
        assert_eq!((user.as_str(), password.as_str()), ("AWS", "eyJwYXlsb2FkIjoi:x"));
        assert_eq!(decode_ecr_token("%%%").unwrap_err().code, "MalformedEcrToken");
        assert_eq!(
            decode_ecr_token(&base64::engine::general_purpose::STANDARD.encode("nocolon")).unwrap_err().code,
            "MalformedEcrToken"
        );
    }

    #[test]
    fn auth_round_trips_through_ledger_attributes() {
        for auth in [Auth::Anonymous, Auth::BasicFromSecret("team/reg".into()), Auth::Ecr] {
            let mut attributes = BTreeMap::new();
            to_attributes(&auth, &mut attributes);
            assert_eq!(format!("{:?}", from_attributes(&attributes).unwrap()), format!("{auth:?}"));
        }
    }
}
