//! Exports the image wharf's build-push step pushed (manifest + blobs) from the local registry,
//! so the peer scripts push exactly the same bytes (they cannot build it: no container daemon).

use base64::Engine;
use std::io::{Read, Write};
use std::path::Path;

/// Plain HTTP/1.0 GET with basic auth (the test registry is loopback, plain HTTP).
fn get(registry: &str, path: &str, user: &str, password: &str, accept: &str) -> Vec<u8> {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut s = std::net::TcpStream::connect(registry).expect("connect to the registry");
    write!(s, "GET {path} HTTP/1.0\r\nHost: {registry}\r\nAuthorization: Basic {auth}\r\nAccept: {accept}\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP response");
    assert!(
        raw.starts_with(b"HTTP/1.1 200") || raw.starts_with(b"HTTP/1.0 200"),
        "GET {path}: {}",
        String::from_utf8_lossy(&raw[..split])
    );
    raw[split + 4..].to_vec()
}

/// Writes `dir/manifest.json` and `dir/blobs/sha256-<hex>` for `image` (`registry/repo@sha256:...`).
pub fn export(image: &str, user: &str, password: &str, dir: &Path) {
    let (name, digest) = image.split_once('@').expect("an image pinned by digest");
    let (registry, repo) = name.split_once('/').expect("registry/repository");
    let accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
    let manifest = get(registry, &format!("/v2/{repo}/manifests/{digest}"), user, password, accept);
    std::fs::create_dir_all(dir.join("blobs")).unwrap();
    std::fs::write(dir.join("manifest.json"), &manifest).unwrap();
    let m: serde_json::Value = serde_json::from_slice(&manifest).expect("manifest JSON");
    let blobs = m["layers"].as_array().cloned().unwrap_or_default().into_iter().chain([m["config"].clone()]);
    for blob in blobs {
        let d = blob["digest"].as_str().expect("blob digest");
        let bytes = get(registry, &format!("/v2/{repo}/blobs/{d}"), user, password, "*/*");
        std::fs::write(dir.join("blobs").join(d.replace(':', "-")), bytes).unwrap();
    }
}
