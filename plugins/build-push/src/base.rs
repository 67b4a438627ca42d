//! The FROM image: its reference, its manifest for the build's platform (picked out of an index),
//! its config and layers. The layers are later copied registry-side into the target repository.

use crate::image::Platform;
use oci_spec::image::{Descriptor, ImageConfiguration, MediaType};
use serde::Deserialize;
use wharf_plugin_sdk::{Error, log, registry};

/// `registry/repository[:tag][@digest]`, Docker Hub short names expanded.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    pub fn parse(text: &str) -> Result<Reference, String> {
        let (rest, digest) = match text.split_once('@') {
            Some((r, d)) => (r, Some(d.to_string())),
            None => (text, None),
        };
        if let Some(d) = &digest
            && !(d.len() == 71 && d.starts_with("sha256:") && d[7..].chars().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(format!("image {text:?}: the digest must be sha256:<64 hex>"));
        }
        // A tag is after the last `:` that follows the last `/` (a port's `:` comes before it).
        let slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[slash..].rfind(':') {
            Some(i) => (&rest[..slash + i], Some(rest[slash + i + 1..].to_string())),
            None => (rest, None),
        };
        let (registry, repository) = match name.split_once('/') {
            // The first part is a registry when it looks like a host, as in Docker.
            Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => {
                (first.to_string(), path.to_string())
            }
            Some(_) => ("docker.io".to_string(), name.to_string()),
            None => ("docker.io".to_string(), format!("library/{name}")),
        };
        if !valid_repository(&repository) || tag.as_deref().is_some_and(str::is_empty) {
            return Err(format!("image {text:?} is not a valid reference (registry/repository[:tag][@sha256:...])"));
        }
        let tag = if tag.is_none() && digest.is_none() { Some("latest".into()) } else { tag };
        Ok(Reference { registry, repository, tag, digest })
    }
}

/// Repository paths: `/`-separated components of lowercase letters and digits, with single
/// `.`, `_` or `-` (or `__`) between them.
pub fn valid_repository(path: &str) -> bool {
    path.split('/').all(|part| {
        let edges_ok = part.starts_with(|c: char| c.is_ascii_alphanumeric())
            && part.ends_with(|c: char| c.is_ascii_alphanumeric());
        edges_ok && part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
    })
}

/// The base image as the build uses it.
pub struct Base {
    pub repo: registry::Repository,
    /// `registry/repository@sha256:...` of the platform's manifest.
    pub pinned: String,
    pub config: ImageConfiguration,
    pub layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Index {
    manifests: Vec<IndexEntry>,
}

#[derive(Deserialize)]
struct IndexEntry {
    digest: String,
    #[serde(default)]
    platform: Option<IndexPlatform>,
}

#[derive(Deserialize)]
struct IndexPlatform {
    architecture: String,
    os: String,
    #[serde(default)]
    variant: Option<String>,
}

#[derive(Deserialize)]
struct Manifest {
    config: Descriptor,
    layers: Vec<Descriptor>,
}

const INDEX_TYPES: [&str; 2] =
    ["application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"];

/// Pulls the base image's manifest (the platform's one out of an index) and config.
/// Needs the grant `registry:Pull <registry>/<repository>` on the step.
pub fn pull(reference: &Reference, auth: registry::Auth, platform: &Platform) -> Result<Base, Error> {
    let repo = registry::Repository { registry: reference.registry.clone(), name: reference.repository.clone(), auth };
    let wanted = reference.digest.clone().or(reference.tag.clone()).expect("a tag or a digest");
    let mut manifest = registry::pull_manifest(&repo, &wanted)?;
    if let Some(d) = &reference.digest
        && &manifest.digest != d
    {
        return Err(Error::permanent("DigestMismatch", format!("the registry returned {} for {d}", manifest.digest)));
    }
    if INDEX_TYPES.contains(&manifest.media_type.as_str()) {
        let digest = pick(&manifest.bytes, platform)?;
        log::info(&format!("base {}/{}: {platform} manifest {digest}", repo.registry, repo.name));
        manifest = registry::pull_manifest(&repo, &digest)?;
    }
    let parsed: Manifest = serde_json::from_slice(&manifest.bytes).map_err(|e| {
        Error::permanent("UnsupportedManifest", format!("base image manifest ({}): {e}", manifest.media_type))
    })?;
    let config_bytes = registry::pull_blob(&repo, parsed.config.digest().as_ref())?;
    let config: ImageConfiguration = serde_json::from_slice(&config_bytes)
        .map_err(|e| Error::permanent("UnsupportedConfig", format!("base image config: {e}")))?;
    if config.os().to_string() != platform.os || config.architecture().to_string() != platform.arch {
        return Err(Error::invalid_input(format!(
            "base image {}/{} is {}/{}, not {platform}",
            repo.registry,
            repo.name,
            config.os(),
            config.architecture()
        )));
    }
    let layers = parsed.layers.into_iter().map(oci_layer).collect();
    let pinned = format!("{}/{}@{}", repo.registry, repo.name, manifest.digest);
    Ok(Base { repo, pinned, config, layers })
}

/// The digest of `platform`'s manifest in an index.
pub fn pick(index: &[u8], platform: &Platform) -> Result<String, Error> {
    let index: Index = serde_json::from_slice(index)
        .map_err(|e| Error::permanent("UnsupportedManifest", format!("base image index: {e}")))?;
    let matches = |p: &IndexPlatform| {
        p.os == platform.os
            && p.architecture == platform.arch
            && (platform.variant.is_none() || p.variant == platform.variant)
    };
    index.manifests.iter().find(|m| m.platform.as_ref().is_some_and(matches)).map(|m| m.digest.clone()).ok_or_else(
        || {
            let offered: Vec<String> = index
                .manifests
                .iter()
                .filter_map(|m| m.platform.as_ref())
                .map(|p| {
                    format!(
                        "{}/{}{}",
                        p.os,
                        p.architecture,
                        p.variant.as_ref().map(|v| format!("/{v}")).unwrap_or_default()
                    )
                })
                .collect();
            Error::invalid_input(format!("the base image has no {platform} manifest (it has {})", offered.join(", ")))
        },
    )
}

/// Docker's layer media types named as their OCI equivalents (same bytes), so the manifest is
/// pure OCI.
fn oci_layer(mut layer: Descriptor) -> Descriptor {
    let oci = match layer.media_type().as_ref() {
        "application/vnd.docker.image.rootfs.diff.tar.gzip" => MediaType::ImageLayerGzip,
        "application/vnd.docker.image.rootfs.diff.tar" => MediaType::ImageLayer,
        _ => return layer,
    };
    layer.set_media_type(oci);
    layer
}
