//! `build-push`: builds an OCI image from a Dockerfile without a container daemon, reproducibly,
//! inside the sandbox (hashing with the host's `digest`), and pushes it through the host's `registry`
//! capability.
//!
//! ```toml
//! [[steps]]
//! id = "image"
//! plugin = "build-push"
//! with = { context = "app", registry = "127.0.0.1:5000", repository = "team/app", tag = "v1",
//!          auth = { secret_id = "${steps.registry-secret.outputs.arn}" } }
//! # register-taskdef then uses "${steps.image.outputs.image}" (pinned by digest).
//! ```
//!
//! **Dockerfile subset.** FROM (`scratch` or one base image), COPY and ADD of context files
//! (`--chmod=<octal>`, numeric `--chown=uid:gid`; ADD unpacks local tar/tar.gz archives), ENV,
//! ARG (with `build_args`), WORKDIR, ENTRYPOINT, CMD, EXPOSE, USER, LABEL, VOLUME, STOPSIGNAL.
//! RUN, HEALTHCHECK, ONBUILD, SHELL, multi-stage builds, `COPY --from`, ADD of URLs and heredocs
//! are refused with the Dockerfile line: they need an external builder.
//!
//! **Reproducible.** The same context, Dockerfile and inputs give byte-identical layers, config
//! and manifest, hence the same digest: tar entries sorted with their parents, mtime 0 (or
//! `source_date_epoch`), owner 0:0 unless `--chown`, files 0644 and directories 0755 unless
//! `--chmod`. The sandbox's file system (WASI) shows no permission bits, so **an executable needs
//! `COPY --chmod=755`**. Pushing is idempotent: blobs the registry has are not uploaded again.
//!
//! **Unchanged layers are not compressed again.** Each layer's tar is hashed first; when the host
//! pushed a gzip of that very tar to the repository before and the repository still has it
//! (`registry::find_layer`, the host's record, written only after it unpacked the layer to check),
//! the step uses that blob. Deflate is most of a build, so a redeploy of unchanged files is fast.
//!
//! **Grants.** Built-in, so its declared grants are given automatically, rendered from the inputs:
//! `fs:Read <context>` (the context is the step's only visible directory, read-only),
//! `registry:Push <registry>/<repository>`, and `secretsmanager:GetSecretValue <auth.secret_id>`
//! when `auth.secret_id` is given (the host reads the credentials; the plugin only names the secret).
//! Deliberately *not* declared, so the workflow grants them explicitly (deny by default):
//! - `registry:Pull <base registry>/<base repository>` for a FROM base image: it is named in the
//!   Dockerfile, not in the inputs, so no declared grant could be scoped to it, and a blanket
//!   `registry:Pull *` would let any Dockerfile read any repository the credentials reach.
//! - `ecr:GetAuthorizationToken *` for `auth = { ecr = true }`: a grant line cannot be made
//!   conditional on a boolean input, and ECR users should see that the step mints tokens.
//!
//! The base image is pulled with the step's `auth` when it lives in the same registry, else
//! anonymously; its layers are copied registry-side and never pass through the step.
//!
//! **Memory.** Layers are built in the step's memory (about the layer's files plus its gzip, and
//! the finished layers until they are pushed): a 40 MB incompressible binary fits the default
//! 128 MiB; give the step more `memory` for bigger contexts.

mod base;
mod context;
mod dockerfile;
mod eval;
mod image;
mod layer;
mod words;

use oci_spec::image::{Descriptor, MediaType};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use wharf_plugin_sdk::{Context, Error, Step, log, registry};

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// Build context directory, relative to the workflow file (granted read-only to the step).
    pub context: String,
    /// Dockerfile path inside the context.
    #[serde(default = "default_dockerfile")]
    pub dockerfile: String,
    /// Registry host and optional port, e.g. `127.0.0.1:5000`, `docker.io`.
    pub registry: String,
    /// Repository path, e.g. `team/app`.
    pub repository: String,
    #[serde(default = "default_tag")]
    pub tag: String,
    /// `{ secret_id = "<name or ARN>" }` (basic credentials), `{ ecr = true }`; absent: anonymous.
    #[serde(default)]
    pub auth: Option<AuthInput>,
    /// Values for the Dockerfile's ARGs.
    #[serde(default)]
    pub build_args: BTreeMap<String, String>,
    /// `os/arch[/variant]`.
    #[serde(default = "default_platform")]
    pub platform: String,
    /// Labels added to the image (over the Dockerfile's).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Unix time for file mtimes and `created` (default: 0 and no `created`).
    #[serde(default)]
    pub source_date_epoch: Option<u64>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct AuthInput {
    /// The Secrets Manager secret (name or ARN) holding `{"username": ..., "password": ...}`.
    /// Not called `secret`: wharf's workflow check reads a key named so as a literal secret value.
    pub secret_id: Option<String>,
    #[serde(default)]
    pub ecr: bool,
}

fn default_dockerfile() -> String {
    "Dockerfile".into()
}
fn default_tag() -> String {
    "latest".into()
}
fn default_platform() -> String {
    "linux/amd64".into()
}

#[derive(Serialize, Debug)]
pub struct Output {
    /// `<registry>/<repository>@sha256:...`: what register-taskdef should use.
    pub image: String,
    pub digest: String,
    pub tag: String,
    /// `<registry>/<repository>:<tag>`.
    pub reference: String,
    /// The base pinned by digest, or `scratch`.
    pub base: String,
    /// Layers uploaded or copied by this attempt (0 when the registry had them all).
    pub layers_uploaded: u32,
    /// Layers not built again: the registry has them from an earlier push of the same files.
    pub layers_reused: u32,
}

pub struct BuildPush;

impl Step for BuildPush {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "build-push";
    const DESCRIPTION: &'static str = "Builds an OCI image from a Dockerfile subset (no RUN) without a daemon, \
         reproducibly, and pushes it; outputs the image pinned by digest.";
    const GRANTS: &'static [&'static str] = &[
        "fs:Read ${with.context}",
        "registry:Push ${with.registry}/${with.repository}",
        // Rendered only when `auth.secret_id` is given (nested `${with.a.b}` renders like any input).
        "secretsmanager:GetSecretValue ${with.auth.secret_id}",
    ];

    fn run(_ctx: &Context, input: Input) -> Result<Output, Error> {
        let target = target_repository(&input)?;
        let built = build(&input, &target)?;
        push(&input, &target, built)
    }
}

fn target_repository(input: &Input) -> Result<registry::Repository, Error> {
    let host_ok = !input.registry.is_empty() && !input.registry.contains(['/', ' ']) && !input.registry.contains("://");
    if !host_ok {
        return Err(Error::invalid_input(
            "`registry` is a host[:port] such as 127.0.0.1:5000 or docker.io, without scheme or path",
        ));
    }
    if !base::valid_repository(&input.repository) {
        return Err(Error::invalid_input("`repository` is lowercase path components such as team/app"));
    }
    let tag_ok = input.tag.len() <= 128
        && input
            .tag
            .chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_alphanumeric() || c == '_' || (i > 0 && ".-".contains(c)))
        && !input.tag.is_empty();
    if !tag_ok {
        return Err(Error::invalid_input("`tag` is up to 128 of [A-Za-z0-9_.-], not starting with . or -"));
    }
    let auth = match &input.auth {
        None => registry::Auth::Anonymous,
        Some(AuthInput { secret_id: Some(s), ecr: false }) if !s.is_empty() => {
            registry::Auth::BasicFromSecret(s.clone())
        }
        Some(AuthInput { secret_id: None, ecr: true }) => registry::Auth::Ecr,
        Some(_) => return Err(Error::invalid_input("`auth` is { secret_id = \"<name or ARN>\" } or { ecr = true }")),
    };
    Ok(registry::Repository { registry: input.registry.clone(), name: input.repository.clone(), auth })
}

/// A built image, not yet pushed.
struct Built {
    base: Option<base::Base>,
    layers: Vec<layer::Layer>,
    config: Vec<u8>,
    manifest: Vec<u8>,
}

fn build(input: &Input, target: &registry::Repository) -> Result<Built, Error> {
    let file = &input.dockerfile;
    let at = |(line, message): (usize, String)| Error::invalid_input(format!("{file}:{line}: {message}"));
    let platform = image::Platform::parse(&input.platform).map_err(Error::invalid_input)?;
    let ctx = context::Context::open(&input.context).map_err(|e| {
        Error::invalid_input(format!(
            "cannot open the build context {:?}: {e}. It must be a directory relative to the workflow file \
             (the step is granted `fs:Read {}`)",
            input.context, input.context
        ))
    })?;
    let dockerfile_rel = context::clean_relative(file).map_err(Error::invalid_input)?;
    let text = ctx
        .read(&dockerfile_rel)
        .map_err(|e| Error::invalid_input(format!("cannot read {file} in the build context: {e}")))?;
    let text = String::from_utf8(text).map_err(|_| Error::invalid_input(format!("{file} is not UTF-8")))?;
    let instructions = dockerfile::parse(&text).map_err(at)?;

    let mut ev = eval::Evaluator::new(input.build_args.clone(), &platform);
    let (from, rest) = ev.read_from(&instructions).map_err(at)?;
    // A dry pass first: a RUN on line 9 fails before any registry call for the base image.
    let mut dry = ev.clone();
    rest.iter().try_for_each(|ins| dry.apply(ins).map(drop)).map_err(at)?;
    let base = if from.image == "scratch" {
        None
    } else {
        let reference = base::Reference::parse(&from.image).map_err(|e| at((from.line, e)))?;
        let same_registry = reference.registry == target.registry;
        let auth = if same_registry { target.auth.clone() } else { registry::Auth::Anonymous };
        Some(base::pull(&reference, auth, &platform)?)
    };
    if let Some(b) = &base {
        ev.set_base(image::ImageState::from_base(&b.config));
    }
    let mtime = input.source_date_epoch.unwrap_or(0);
    let mut layers = Vec::new();
    for ins in rest {
        if let Some(op) = ev.apply(ins).map_err(at)? {
            let tree = layer::tree(&ctx, &op).map_err(|e| at((op.line, e)))?;
            let built = build_layer(&tree, mtime, target).map_err(|e| match e {
                LayerError::Files(message) => at((op.line, message)),
                LayerError::Registry(e) => e,
            })?;
            let how = if built.gzip.is_some() { "built" } else { "unchanged, in the registry from an earlier build" };
            log::info(&format!(
                "{file}:{}: layer {} ({} entries, {} bytes gzip): {how}",
                op.line,
                built.digest,
                tree.0.len(),
                built.size
            ));
            layers.push(built);
        }
    }
    for warning in &ev.warnings {
        log::warn(&format!("{file}: {warning}"));
    }
    for unused in ev.unused_build_args() {
        log::warn(&format!("build_args.{unused} is not declared by any ARG in {file}"));
    }
    ev.state.labels.extend(input.labels.clone());

    let (mut diff_ids, mut base_history, mut descriptors) = (Vec::new(), Vec::new(), Vec::new());
    if let Some(b) = &base {
        diff_ids = b.config.rootfs().diff_ids().clone();
        base_history = b.config.history().clone().unwrap_or_default();
        descriptors = b.layers.clone();
    }
    diff_ids.extend(layers.iter().map(|l| l.diff_id.clone()));
    for l in &layers {
        descriptors.push(Descriptor::new(MediaType::ImageLayerGzip, l.size, digest(&l.digest)?));
    }
    let config = image::config_json(image::ConfigParts {
        platform: &platform,
        state: &ev.state,
        diff_ids,
        base_history,
        history: &ev.history,
        created: input.source_date_epoch.map(image::rfc3339),
    });
    let config_descriptor =
        Descriptor::new(MediaType::ImageConfig, config.len() as u64, digest(&image::sha256(&config))?);
    let mut annotations = BTreeMap::new();
    if let Some(b) = &base {
        // Standard OCI annotations naming the base image.
        let digest = b.pinned.rsplit_once('@').map(|(_, d)| d.to_string()).unwrap_or_default();
        annotations.insert("org.opencontainers.image.base.digest".to_string(), digest);
        annotations.insert("org.opencontainers.image.base.name".to_string(), from.image.clone());
    }
    let manifest = image::manifest_json(config_descriptor, descriptors, annotations);
    Ok(Built { base, layers, config, manifest })
}

enum LayerError {
    /// About the files (the caller names the Dockerfile line).
    Files(String),
    Registry(Error),
}

/// One COPY/ADD's layer. Its tar is hashed first; when the registry has the gzip of that tar from
/// an earlier push (the host's record, `registry::find_layer`), it is not compressed again:
/// deflate is most of a build (about 110 of 190 ms for the example's 12.9 MB binary).
fn build_layer(tree: &layer::Tree, mtime: u64, target: &registry::Repository) -> Result<layer::Layer, LayerError> {
    let tar = layer::hash(tree, mtime).map_err(LayerError::Files)?;
    if let Some(found) = registry::find_layer(target, &tar.diff_id).map_err(|e| LayerError::Registry(e.into()))? {
        return Ok(layer::Layer { gzip: None, digest: found.digest, size: found.size, diff_id: tar.diff_id });
    }
    layer::compress(tree, mtime, tar).map_err(LayerError::Files)
}

fn digest(text: &str) -> Result<oci_spec::image::Digest, Error> {
    text.parse().map_err(|e| Error::permanent("InvalidDigest", format!("{text}: {e}")))
}

fn push(input: &Input, target: &registry::Repository, built: Built) -> Result<Output, Error> {
    let mut uploaded = 0u32;
    let where_ = format!("{}/{}", target.registry, target.name);
    if let Some(b) = &built.base {
        for layer in &b.layers {
            let digest = layer.digest().to_string();
            let copied = registry::copy_blob(&b.repo, target, &digest)?;
            uploaded += u32::from(copied);
            log::info(&format!(
                "base layer {digest} ({} bytes): {}",
                layer.size(),
                if copied { "copied" } else { "already there" }
            ));
        }
    }
    let mut reused = 0u32;
    for (i, layer) in built.layers.iter().enumerate() {
        let Some(gzip) = &layer.gzip else {
            reused += 1;
            continue; // find_layer saw it in this repository.
        };
        log::progress(&format!("layer {} of {}", i + 1, built.layers.len()));
        let sent = registry::push_layer(target, &layer.digest, &layer.diff_id, gzip)?;
        uploaded += u32::from(sent);
        log::info(&format!(
            "layer {} ({} bytes): {}",
            layer.digest,
            layer.size,
            if sent { "uploaded" } else { "already there" }
        ));
    }
    let config_digest = image::sha256(&built.config);
    registry::push_blob(target, &config_digest, &built.config)?;
    let digest = image::sha256(&built.manifest);
    let manifest = registry::Manifest {
        digest: digest.clone(),
        media_type: MediaType::ImageManifest.to_string(),
        bytes: built.manifest,
    };
    let stored = registry::push_manifest(target, &input.tag, &manifest)?;
    if stored != digest {
        log::warn(&format!("the registry reports {stored} for the manifest built as {digest}"));
    }
    log::info(&format!("pushed {where_}:{} = {digest} (config {config_digest})", input.tag));
    Ok(Output {
        image: format!("{where_}@{digest}"),
        digest,
        tag: input.tag.clone(),
        reference: format!("{where_}:{}", input.tag),
        base: built.base.map_or_else(|| "scratch".to_string(), |b| b.pinned),
        layers_uploaded: uploaded,
        layers_reused: reused,
    })
}

wharf_plugin_sdk::export_step!(BuildPush);

#[cfg(test)]
mod tests;
