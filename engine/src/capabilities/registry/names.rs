//! What the plugin names, checked before anything is sent: registry hosts, repository names, tags
//! and digests (OCI distribution spec grammar), and which registries may be reached over plain HTTP.

use crate::host::bindings::{ErrorKind, WitError};
use sha2::{Digest, Sha256};
use std::net::IpAddr;

fn invalid(code: &str, message: String) -> WitError {
    WitError::new(ErrorKind::InvalidInput, code, message)
}

/// `sha256:<hex>` of `bytes`.
pub(super) fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

pub(super) fn is_digest(reference: &str) -> bool {
    reference
        .strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

pub(super) fn check_digest(digest: &str) -> Result<(), WitError> {
    if is_digest(digest) {
        Ok(())
    } else {
        Err(invalid(
            "InvalidDigest",
            format!("`{digest}` is not a digest: expected `sha256:` and 64 lowercase hex digits"),
        ))
    }
}

/// Refuses `data` that does not hash to `digest`: the host never stores or hands out mislabeled bytes.
pub(super) fn verify(what: &str, digest: &str, data: &[u8]) -> Result<(), WitError> {
    let actual = sha256(data);
    if actual == digest {
        Ok(())
    } else {
        Err(invalid("DigestMismatch", format!("{what} hashes to {actual}, not to the digest given for it, {digest}")))
    }
}

pub(super) fn check_tag(tag: &str) -> Result<(), WitError> {
    let mut bytes = tag.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if first_ok && rest_ok && tag.len() <= 128 {
        Ok(())
    } else {
        Err(invalid(
            "InvalidTag",
            format!(
                "`{tag}` is not a valid tag: up to 128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`"
            ),
        ))
    }
}

/// A tag or a digest.
pub(super) fn check_reference(reference: &str) -> Result<(), WitError> {
    if reference.starts_with("sha256:") { check_digest(reference) } else { check_tag(reference) }
}

/// Lowercase path components of `[a-z0-9]` separated by `.`, `_`, `__` or `-` runs, joined by `/`.
pub(super) fn check_name(name: &str) -> Result<(), WitError> {
    let component_ok = |c: &str| {
        let b = c.as_bytes();
        !b.is_empty()
            && b.first().is_some_and(|x| x.is_ascii_lowercase() || x.is_ascii_digit())
            && b.last().is_some_and(|x| x.is_ascii_lowercase() || x.is_ascii_digit())
            && b.iter().all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || matches!(x, b'.' | b'_' | b'-'))
    };
    if name.len() <= 255 && name.split('/').all(component_ok) {
        Ok(())
    } else {
        Err(invalid(
            "InvalidRepositoryName",
            format!(
                "`{name}` is not a valid repository name: lowercase letters, digits and `._-` in `/`-separated parts"
            ),
        ))
    }
}

/// A manifest's media type as the Content-Type header it is sent with.
pub(super) fn media_type_header(media_type: &str) -> Result<reqwest::header::HeaderValue, WitError> {
    let ok = media_type.contains('/') && !media_type.contains(char::is_whitespace);
    reqwest::header::HeaderValue::from_str(media_type).ok().filter(|_| ok).ok_or_else(|| {
        invalid(
            "InvalidMediaType",
            format!("`{media_type}` is not a media type, e.g. `application/vnd.oci.image.manifest.v1+json`"),
        )
    })
}

/// `host[:port]`, no scheme or path.
pub(super) fn check_registry(registry: &str) -> Result<(), WitError> {
    if registry.contains("://") {
        return Err(invalid(
            "InvalidRegistry",
            format!("registry `{registry}` must be a host and optional port, without a scheme"),
        ));
    }
    let ok = !registry.is_empty()
        && registry.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if ok { Ok(()) } else { Err(invalid("InvalidRegistry", format!("registry `{registry}` is not `host[:port]`"))) }
}

/// 127.0.0.0/8, ::1 and localhost: reached over plain HTTP without a grant, since nothing leaves
/// the machine.
pub(super) fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None if registry.matches(':').count() > 1 => registry,
        None => registry.split(':').next().unwrap_or(registry),
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_only() {
        for yes in ["127.0.0.1:5000", "127.8.9.1", "localhost:5000", "LOCALHOST", "[::1]:5000", "::1"] {
            assert!(is_loopback(yes), "{yes}");
        }
        for no in ["0.0.0.0:5000", "192.0.2.2:5000", "docker.io", "localhost.example.com", "[::2]:5000"] {
            assert!(!is_loopback(no), "{no}");
        }
    }

    #[test]
    fn names_tags_and_digests_follow_the_spec() {
        assert!(check_name("team/app").is_ok() && check_name("a.b_c-d/e__f").is_ok());
        for bad in ["Team/app", "team//app", "/app", "app/", "-app", ""] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_tag("v1.2_3-x").is_ok() && check_tag("_x").is_ok());
        assert!(check_tag(".x").is_err() && check_tag("a:b").is_err() && check_tag(&"a".repeat(129)).is_err());
        let d = sha256(b"x");
        assert!(check_digest(&d).is_ok() && check_reference(&d).is_ok() && check_reference("latest").is_ok());
        assert!(check_digest("sha256:ABC").is_err() && check_reference("sha256:00").is_err());
        assert!(check_registry("127.0.0.1:5000").is_ok() && check_registry("[::1]:5000").is_ok());
        assert!(check_registry("http://127.0.0.1:5000").unwrap_err().message.contains("without a scheme"));
        assert!(check_registry("a/b").is_err());
    }

    #[test]
    fn verify_names_both_digests() {
        let e = verify("blob", &sha256(b"a"), b"b").unwrap_err();
        assert_eq!((e.kind, e.code.as_str()), (ErrorKind::InvalidInput, "DigestMismatch"));
        assert!(e.message.contains(&sha256(b"b")) && e.message.contains(&sha256(b"a")), "{}", e.message);
        assert!(verify("blob", &sha256(b"a"), b"a").is_ok());
    }
}
