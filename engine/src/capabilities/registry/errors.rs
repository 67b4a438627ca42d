//! The one mapping of registry failures (oci-client errors and the raw DELETE's responses) to the
//! WIT error, like `aws::map_sdk_error` for AWS: transport trouble, 5xx and 429 are retryable;
//! rejected credentials name the registry and where the credentials came from (never their
//! value); bad digests and manifests are invalid input; everything else is permanent.

use crate::host::bindings::{ErrorKind, WitError};
use oci_client::errors::{OciDistributionError, OciEnvelope, OciErrorCode};
use std::error::Error as _;

/// Longest piece of a registry's response body kept in a message (some answer with HTML pages).
const MAX_DETAIL: usize = 300;

/// What a message needs to say about the call: which registry, and which credentials it was sent.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    pub registry: String,
    /// e.g. "the credentials from secret `team/registry`", "no credentials", "an ECR token".
    pub credentials: String,
    /// What to check when the registry rejects them.
    pub hint: &'static str,
}

/// A failed registry call, reduced to what classification needs.
#[derive(Debug)]
pub(crate) struct Failure {
    pub status: Option<u16>,
    /// The OCI error code from the response body (`MANIFEST_UNKNOWN`, `UNSUPPORTED`, ...).
    pub oci_code: Option<String>,
    pub transport: Option<Transport>,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Timeout,
    /// Nothing answered: refused, reset, unreachable, name not resolved.
    Unreachable,
    /// Something answered, but not with TLS we accept.
    Tls,
    /// The response broke off or could not be read.
    Broken,
}

impl Failure {
    /// A non-success response to a request oci-client does not make (the manifest DELETE).
    pub fn from_response(status: u16, body: &[u8]) -> Failure {
        let text = String::from_utf8_lossy(body);
        let oci_code = envelope_code(&text);
        Failure { status: Some(status), oci_code, transport: None, detail: short(&text) }
    }

    pub fn is_not_found(&self) -> bool {
        self.status == Some(404)
            || self
                .oci_code
                .as_deref()
                .is_some_and(|c| matches!(c, "MANIFEST_UNKNOWN" | "BLOB_UNKNOWN" | "NAME_UNKNOWN" | "NOT_FOUND"))
    }

    pub fn is_unsupported(&self) -> bool {
        self.status == Some(405) || self.oci_code.as_deref() == Some("UNSUPPORTED")
    }
}

impl From<OciDistributionError> for Failure {
    fn from(err: OciDistributionError) -> Failure {
        let plain = |detail: String| Failure { status: None, oci_code: None, transport: None, detail: short(&detail) };
        match err {
            OciDistributionError::RequestError(e) => from_reqwest(&e),
            OciDistributionError::ServerError { code, message, .. } => Failure {
                status: Some(code),
                oci_code: envelope_code(&message),
                transport: None,
                detail: short(&message),
            },
            OciDistributionError::RegistryError { envelope, .. } => {
                let oci_code = envelope.errors.first().map(|e| code_name(&e.code));
                let status = oci_code.as_deref().and_then(status_of_code);
                Failure { status, oci_code, transport: None, detail: short(&envelope.to_string()) }
            }
            OciDistributionError::UnauthorizedError { .. } => {
                Failure { status: Some(401), oci_code: None, transport: None, detail: "unauthorized".into() }
            }
            // A token service turned the credentials down.
            OciDistributionError::AuthenticationFailure(reason) => {
                Failure { status: Some(401), oci_code: None, transport: None, detail: short(&reason) }
            }
            OciDistributionError::DigestError(e) => {
                Failure { oci_code: Some("DIGEST_INVALID".into()), ..plain(e.to_string()) }
            }
            other => plain(other.to_string()),
        }
    }
}

impl From<reqwest::Error> for Failure {
    fn from(e: reqwest::Error) -> Failure {
        from_reqwest(&e)
    }
}

/// Timeouts, refused connections and TLS failures from the HTTP client. Only the error's causes
/// are searched for TLS words: its own message holds the URL, which may well contain "tls".
pub(crate) fn from_reqwest(e: &reqwest::Error) -> Failure {
    let status = e.status().map(|s| s.as_u16());
    let causes = e.source().map(error_chain).unwrap_or_default().to_ascii_lowercase();
    let transport = if status.is_some() {
        None
    } else if e.is_timeout() || causes.contains("timed out") {
        Some(Transport::Timeout)
    } else if TLS_WORDS.iter().any(|word| causes.contains(word)) {
        Some(Transport::Tls)
    } else if e.is_connect() {
        Some(Transport::Unreachable)
    } else {
        Some(Transport::Broken)
    };
    Failure { status, oci_code: None, transport, detail: short(&error_chain(e)) }
}

/// How rustls and hyper describe a handshake that failed (e.g. HTTPS to a plain-HTTP server).
const TLS_WORDS: &[&str] = &["certificate", "tls", "handshake", "invalidcontenttype", "corrupt message", "ssl"];

/// The one classification: `op` is what was attempted, e.g. "pushing blob sha256:… to team/app".
pub(crate) fn to_wit(ctx: &Context, op: &str, f: Failure) -> WitError {
    let registry = &ctx.registry;
    let (kind, code, message) = match (f.transport, f.status, f.oci_code.as_deref()) {
        (Some(Transport::Timeout), ..) => {
            (ErrorKind::Retryable, "Timeout", format!("registry {registry} unreachable: {op} timed out ({})", f.detail))
        }
        (Some(Transport::Unreachable), ..) => (
            ErrorKind::Retryable,
            "RegistryUnreachable",
            format!("registry {registry} unreachable while {op}: {}", f.detail),
        ),
        (Some(Transport::Broken), ..) => (
            ErrorKind::Retryable,
            "RegistryConnectionBroken",
            format!("registry {registry}: the connection broke while {op}: {}", f.detail),
        ),
        (Some(Transport::Tls), ..) => (
            ErrorKind::Permanent,
            "RegistryTlsFailed",
            format!(
                "registry {registry} could not be reached over HTTPS while {op} ({}); if it serves plain HTTP only, \
                 add the grant line \"registry:PlainHttp {registry}\" to the step",
                f.detail
            ),
        ),
        (_, Some(401 | 403), _) | (_, _, Some("UNAUTHORIZED" | "DENIED")) => {
            let status = f.status.unwrap_or(401);
            (
                ErrorKind::Permanent,
                "RegistryAuthFailed",
                format!("registry {registry} rejected {} (HTTP {status}) while {op}: {}", ctx.credentials, ctx.hint),
            )
        }
        (_, Some(429), _) | (_, _, Some("TOOMANYREQUESTS")) => (
            ErrorKind::Retryable,
            "Throttled",
            format!("registry {registry} is throttling requests (HTTP 429) while {op}"),
        ),
        (_, Some(s), _) if s >= 500 => (
            ErrorKind::Retryable,
            "RegistryUnavailable",
            format!("registry {registry} answered HTTP {s} while {op}: {}", f.detail),
        ),
        _ if f.is_not_found() => {
            (ErrorKind::Permanent, "NotFound", format!("registry {registry}: not found while {op}: {}", f.detail))
        }
        _ if f.is_unsupported() => (
            ErrorKind::Permanent,
            "Unsupported",
            format!("registry {registry} does not support {op} (HTTP {}): {}", f.status.unwrap_or(405), f.detail),
        ),
        (_, _, Some("DIGEST_INVALID")) => (
            ErrorKind::InvalidInput,
            "DigestMismatch",
            format!("registry {registry}: digest mismatch while {op}: {}", f.detail),
        ),
        (_, _, Some(c)) if INVALID_INPUT_CODES.contains(&c) => (
            ErrorKind::InvalidInput,
            "RegistryRejectedInput",
            format!("registry {registry} rejected {op} ({c}): {}", f.detail),
        ),
        // Upload sessions can expire between calls: starting over helps.
        (_, _, Some("BLOB_UPLOAD_UNKNOWN")) => {
            (ErrorKind::Retryable, "UploadExpired", format!("registry {registry} forgot the upload session while {op}"))
        }
        _ => {
            let status = f.status.map(|s| format!(" (HTTP {s})")).unwrap_or_default();
            (ErrorKind::Permanent, "RegistryError", format!("registry {registry} failed {op}{status}: {}", f.detail))
        }
    };
    WitError { kind, code: code.into(), message, http_status: f.status }
}

/// OCI codes that mean "what was sent is wrong": sending it again cannot help.
const INVALID_INPUT_CODES: &[&str] = &[
    "MANIFEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "NAME_INVALID",
    "TAG_INVALID",
    "SIZE_INVALID",
    "BLOB_UPLOAD_INVALID",
];

fn status_of_code(code: &str) -> Option<u16> {
    match code {
        "UNAUTHORIZED" => Some(401),
        "DENIED" => Some(403),
        "TOOMANYREQUESTS" => Some(429),
        "MANIFEST_UNKNOWN" | "BLOB_UNKNOWN" | "NAME_UNKNOWN" | "NOT_FOUND" => Some(404),
        "UNSUPPORTED" => Some(405),
        _ => None,
    }
}

fn code_name(code: &OciErrorCode) -> String {
    match code {
        OciErrorCode::Other(other) => other.clone(),
        known => serde_json::to_value(known).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
    }
}

fn envelope_code(body: &str) -> Option<String> {
    let envelope: OciEnvelope = serde_json::from_str(body).ok()?;
    envelope.errors.first().map(|e| code_name(&e.code))
}

/// The error and its sources, `: `-joined (reqwest's own Display hides the cause).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

fn short(text: &str) -> String {
    let text = text.trim();
    if text.len() <= MAX_DETAIL {
        return text.to_string();
    }
    let mut cut = MAX_DETAIL;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            registry: "127.0.0.1:5602".into(),
            credentials: "the credentials from secret `team/registry`".into(),
            hint: "check the username and password stored in that secret",
        }
    }

    fn status(code: u16, body: &str) -> WitError {
        to_wit(&ctx(), "pushing", Failure::from_response(code, body.as_bytes()))
    }

    #[test]
    fn classifies_statuses_and_oci_codes() {
        let e = status(401, r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#);
        assert_eq!((e.kind, e.code.as_str(), e.http_status), (ErrorKind::Permanent, "RegistryAuthFailed", Some(401)));
        assert!(e.message.contains("rejected the credentials from secret `team/registry` (HTTP 401)"), "{}", e.message);
        assert_eq!(status(503, "down").kind, ErrorKind::Retryable);
        assert_eq!(status(429, "").code, "Throttled");
        assert_eq!(status(404, r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"x"}]}"#).code, "NotFound");
        assert_eq!(status(405, r#"{"errors":[{"code":"UNSUPPORTED","message":"x"}]}"#).code, "Unsupported");
        let invalid = status(400, r#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown"}]}"#);
        assert_eq!(invalid.kind, ErrorKind::InvalidInput);
    }

    #[test]
    fn registry_errors_without_status_get_one_from_their_code() {
        let envelope: OciEnvelope =
            serde_json::from_str(r#"{"errors":[{"code":"DENIED","message":"requested access is denied"}]}"#).unwrap();
        let f = Failure::from(OciDistributionError::RegistryError { envelope, url: "u".into() });
        assert_eq!(f.status, Some(403));
        assert_eq!(to_wit(&ctx(), "pulling", f).code, "RegistryAuthFailed");
    }

    #[test]
    fn long_bodies_are_cut() {
        let e = status(500, &"x".repeat(5000));
        assert!(e.message.len() < 500, "{}", e.message.len());
    }
}
