//! The whole step against a FakeHost playing the registry.

use super::*;
use serde_json::{Value, json};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;
use wharf_plugin_sdk::testing::FakeHost;

/// Blobs and manifests the fake registry holds: `repository name -> digest -> bytes`.
type Store = Rc<RefCell<HashMap<String, HashMap<String, Vec<u8>>>>>;

fn registry(host: &FakeHost) -> Store {
    let store: Store = Rc::default();
    let s = store.clone();
    host.on_push_blob(move |repo, digest, data| {
        assert_eq!(image::sha256(data), digest);
        Ok(s.borrow_mut().entry(repo.name.clone()).or_default().insert(digest.into(), data.to_vec()).is_none())
    });
    // Like the host: push_layer records the layer by its tar's digest, find_layer answers from
    // that record while the repository has the blob.
    let layers: Rc<RefCell<HashMap<(String, String), registry::Layer>>> = Rc::default();
    let (s, l) = (store.clone(), layers.clone());
    host.on_push_layer(move |repo, digest, diff_id, data| {
        assert_eq!(image::sha256(data), digest);
        let layer = registry::Layer { digest: digest.into(), size: data.len() as u64 };
        l.borrow_mut().insert((repo.name.clone(), diff_id.into()), layer);
        Ok(s.borrow_mut().entry(repo.name.clone()).or_default().insert(digest.into(), data.to_vec()).is_none())
    });
    let s = store.clone();
    host.on_find_layer(move |repo, diff_id| {
        let found = layers.borrow().get(&(repo.name.clone(), diff_id.to_string())).cloned();
        Ok(found.filter(|l| s.borrow().get(&repo.name).is_some_and(|r| r.contains_key(&l.digest))))
    });
    let s = store.clone();
    host.on_copy_blob(move |from, to, digest| {
        let data = s.borrow()[&from.name][digest].clone();
        Ok(s.borrow_mut().entry(to.name.clone()).or_default().insert(digest.into(), data).is_none())
    });
    let s = store.clone();
    host.on_push_manifest(move |repo, tag, manifest| {
        assert_eq!(image::sha256(&manifest.bytes), manifest.digest);
        let mut s = s.borrow_mut();
        let r = s.entry(repo.name.clone()).or_default();
        r.insert(manifest.digest.clone(), manifest.bytes.clone());
        r.insert(format!("tag:{tag}"), manifest.bytes.clone());
        Ok(manifest.digest.clone())
    });
    store
}

fn app_context() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write(
        "Dockerfile",
        "FROM scratch\nCOPY --chmod=755 target/app /app\nCOPY model/ /model/\nENV BUCKET=b\nENTRYPOINT [\"/app\"]\n",
    );
    write("target/app", "\x7fELF...");
    write("model/sample.txt", "hello");
    dir
}

fn inputs(dir: &Path) -> Value {
    json!({ "context": dir.to_str().unwrap(), "registry": "127.0.0.1:5000", "repository": "team/app", "tag": "v1" })
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn a_scratch_image_is_pushed_layers_then_config_then_manifest() {
    let dir = app_context();
    let host = FakeHost::new();
    let store = registry(&host);
    let out = host.run::<BuildPush>(inputs(dir.path())).unwrap();
    let digest = out["digest"].as_str().unwrap();
    assert_eq!(out["image"], format!("127.0.0.1:5000/team/app@{digest}"));
    assert_eq!(out["reference"], "127.0.0.1:5000/team/app:v1");
    assert_eq!((out["base"].as_str(), out["layers_uploaded"].as_u64()), (Some("scratch"), Some(2)));
    let order: Vec<&str> = host.calls().iter().map(|c| c.function).collect();
    // Each layer is looked up by its tar's digest before it is compressed; then layers (checked
    // and recorded by the host), config, manifest.
    let lookups = ["registry::find_layer", "registry::find_layer"];
    let pushes = ["registry::push_layer", "registry::push_layer", "registry::push_blob", "registry::push_manifest"];
    assert_eq!(order, [&lookups[..], &pushes[..]].concat());

    let store = store.borrow();
    let repo = &store["team/app"];
    let manifest = json_of(&repo["tag:v1"]);
    assert_eq!(image::sha256(&repo["tag:v1"]), digest);
    assert_eq!(manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
    let config = json_of(&repo[manifest["config"]["digest"].as_str().unwrap()]);
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.oci.image.config.v1+json");
    assert_eq!((config["os"].as_str(), config["architecture"].as_str()), (Some("linux"), Some("amd64")));
    assert_eq!(config["config"]["Entrypoint"], json!(["/app"]));
    assert_eq!(config["config"]["Env"], json!(["BUCKET=b"]));
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
    assert!(config.get("created").is_none());
    assert_eq!(config["history"].as_array().unwrap().len(), 4);
    assert!(config["history"][0].get("created").is_none());
    // The logs name digests and sizes, and which blobs were uploaded.
    assert!(host.logs().iter().any(|l| l.contains("uploaded")), "{:?}", host.logs());
}

#[test]
fn builds_are_reproducible_and_a_second_push_uploads_nothing() {
    let dir = app_context();
    let host = FakeHost::new();
    let store = registry(&host);
    let first = host.run::<BuildPush>(inputs(dir.path())).unwrap();
    let second = host.run::<BuildPush>(inputs(dir.path())).unwrap();
    assert_eq!(first["digest"], second["digest"]);
    assert_eq!((&first["layers_uploaded"], &first["layers_reused"]), (&json!(2), &json!(0)));
    // The second build found both layers by their tars' digests and compressed neither.
    assert_eq!((&second["layers_uploaded"], &second["layers_reused"]), (&json!(0), &json!(2)));
    assert_eq!(store.borrow()["team/app"].len(), 5, "2 layers, config, manifest, tag");

    // A fresh host (fresh hash seeds), same bytes; a changed file, another digest.
    let other = FakeHost::new();
    registry(&other);
    assert_eq!(other.run::<BuildPush>(inputs(dir.path())).unwrap()["digest"], first["digest"]);
    std::fs::write(dir.path().join("model/sample.txt"), "changed").unwrap();
    assert_ne!(other.run::<BuildPush>(inputs(dir.path())).unwrap()["digest"], first["digest"]);
}

#[test]
fn inputs_shape_the_image_and_the_auth() {
    let dir = app_context();
    let host = FakeHost::new();
    let store = registry(&host);
    let mut with = inputs(dir.path());
    with["auth"] = json!({ "secret_id": "team/registry" });
    with["labels"] = json!({ "org.opencontainers.image.source": "wharf" });
    with["platform"] = "linux/arm64/v8".into();
    with["source_date_epoch"] = 1_700_000_000.into();
    host.run::<BuildPush>(with).unwrap();
    assert!(host.calls()[0].args[0].contains("BasicFromSecret(\"team/registry\")"), "{}", host.calls()[0]);
    let store = store.borrow();
    let repo = &store["team/app"];
    let manifest = json_of(&repo["tag:v1"]);
    let config = json_of(&repo[manifest["config"]["digest"].as_str().unwrap()]);
    assert_eq!((config["architecture"].as_str(), config["variant"].as_str()), (Some("arm64"), Some("v8")));
    assert_eq!(config["created"], "2023-11-14T22:13:20Z");
    assert_eq!(config["config"]["Labels"]["org.opencontainers.image.source"], "wharf");
}

#[test]
fn bad_inputs_are_refused_before_any_call() {
    let dir = app_context();
    let host = FakeHost::new();
    let bad = [
        json!({ "context": ".", "registry": "r", "repository": "a", "tags": "x" }),
        json!({ "context": ".", "registry": "https://r", "repository": "a" }),
        json!({ "context": ".", "registry": "r", "repository": "Team/App" }),
        json!({ "context": ".", "registry": "r", "repository": "a", "tag": "-x" }),
        json!({ "context": ".", "registry": "r", "repository": "a", "auth": { "secret_id": "s", "ecr": true } }),
        json!({ "context": "/no/such/dir", "registry": "r", "repository": "a" }),
    ];
    for with in bad {
        assert!(host.run::<BuildPush>(with.clone()).is_err(), "{with}");
    }
    std::fs::write(dir.path().join("Dockerfile"), "FROM alpine:3.20\nCOPY x /x\nRUN apk add curl\n").unwrap();
    let err = host.run::<BuildPush>(inputs(dir.path())).unwrap_err();
    assert!(err.message().starts_with("Dockerfile:3: RUN needs to execute commands"), "{err}");
    assert!(host.calls().is_empty(), "no base image pull for a Dockerfile that cannot build");
}

/// A multi-platform base image served by the fake: index -> linux/amd64 manifest -> config.
fn serve_base(host: &FakeHost, store: &Store) -> (String, String) {
    let layer = layer::pack(&layer::Tree::default(), 0).unwrap();
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "config": { "Env": ["PATH=/usr/bin"], "Cmd": ["/bin/sh"], "WorkingDir": "/" },
        "rootfs": { "type": "layers", "diff_ids": [layer.diff_id] },
        "history": [{ "created": "2024-01-01T00:00:00Z", "created_by": "base" }]
    });
    let config = serde_json::to_vec(&config).unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": config.len(),
            "digest": image::sha256(&config)
        },
        "layers": [{
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "size": layer.size,
            "digest": layer.digest
        }]
    }))
    .unwrap();
    let manifest_digest = image::sha256(&manifest);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "size": 1,
                "digest": format!("sha256:{}", "a".repeat(64)),
                "platform": { "os": "linux", "architecture": "arm64", "variant": "v8" }
            },
            {
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "size": manifest.len(),
                "digest": manifest_digest,
                "platform": { "os": "linux", "architecture": "amd64" }
            }
        ]
    }))
    .unwrap();
    let blobs = HashMap::from([(image::sha256(&config), config), (layer.digest.clone(), layer.gzip.clone().unwrap())]);
    store.borrow_mut().insert("library/alpine".into(), blobs.clone());
    let (m, d) = (manifest.clone(), manifest_digest.clone());
    host.on_pull_manifest(move |repo, reference| {
        assert_eq!((repo.registry.as_str(), repo.name.as_str()), ("docker.io", "library/alpine"));
        assert!(matches!(repo.auth, registry::Auth::Anonymous), "another registry: anonymous");
        Ok(match reference {
            "3.20" => registry::Manifest {
                digest: image::sha256(&index),
                media_type: "application/vnd.oci.image.index.v1+json".into(),
                bytes: index.clone(),
            },
            r if r == d => registry::Manifest {
                digest: d.clone(),
                media_type: "application/vnd.docker.distribution.manifest.v2+json".into(),
                bytes: m.clone(),
            },
            other => panic!("unexpected reference {other}"),
        })
    });
    host.on_pull_blob(move |_, digest| Ok(blobs[digest].clone()));
    (manifest_digest, layer.digest)
}

#[test]
fn a_base_image_is_picked_from_its_index_pinned_and_its_layers_copied() {
    let dir = app_context();
    std::fs::write(dir.path().join("Dockerfile"), "FROM alpine:3.20\nENV PATH=$PATH:/app\nCOPY target/app /app/\n")
        .unwrap();
    let host = FakeHost::new();
    let store = registry(&host);
    let (base_digest, base_layer) = serve_base(&host, &store);
    let out = host.run::<BuildPush>(inputs(dir.path())).unwrap();
    assert_eq!(out["base"], format!("docker.io/library/alpine@{base_digest}"));
    assert_eq!(out["layers_uploaded"], 2, "one copied base layer, one own layer");
    let copy = &host.calls_to("registry::copy_blob")[0];
    assert!(copy.args[2].contains(&base_layer), "{copy}");

    let repo = store.borrow()["team/app"].clone();
    let manifest = json_of(&repo["tag:v1"]);
    assert_eq!(manifest["layers"][0]["digest"], base_layer);
    assert_eq!(
        manifest["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip",
        "Docker type named as OCI"
    );
    assert_eq!(manifest["annotations"]["org.opencontainers.image.base.digest"], base_digest);
    let config = json_of(&repo[manifest["config"]["digest"].as_str().unwrap()]);
    assert_eq!(config["config"]["Env"], json!(["PATH=/usr/bin:/app"]), "ENV sees the base image's PATH");
    assert_eq!(config["config"]["Cmd"], json!(["/bin/sh"]));
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
    assert_eq!(config["history"][0]["created_by"], "base");

    let again = host.run::<BuildPush>(inputs(dir.path())).unwrap();
    assert_eq!((again["layers_uploaded"].as_u64(), &again["digest"]), (Some(0), &out["digest"]));
}

#[test]
fn a_base_without_the_platform_is_refused_naming_what_it_has() {
    let dir = app_context();
    std::fs::write(dir.path().join("Dockerfile"), "FROM alpine:3.20\n").unwrap();
    let host = FakeHost::new();
    let store = registry(&host);
    serve_base(&host, &store);
    let mut with = inputs(dir.path());
    with["platform"] = "linux/s390x".into();
    let err = host.run::<BuildPush>(with).unwrap_err();
    assert!(err.message().contains("no linux/s390x manifest (it has linux/arm64/v8, linux/amd64)"), "{err}");
}

#[test]
fn image_references() {
    let r = |s: &str| base::Reference::parse(s).unwrap();
    assert_eq!(r("alpine").repository, "library/alpine");
    assert_eq!(r("alpine").tag.as_deref(), Some("latest"));
    assert_eq!(r("user/app:1").registry, "docker.io");
    let local = r("localhost:5000/team/app:v2");
    assert_eq!(
        (local.registry.as_str(), local.repository.as_str(), local.tag.as_deref()),
        ("localhost:5000", "team/app", Some("v2"))
    );
    let pinned = r(&format!("ghcr.io/o/i@sha256:{}", "0".repeat(64)));
    assert_eq!((pinned.tag, pinned.digest.is_some()), (None, true));
    assert!(base::Reference::parse("Alpine").is_err());
    assert!(base::Reference::parse("alpine@sha256:12").is_err());
}

#[test]
fn declared_grants() {
    assert_eq!(BuildPush::GRANTS[0], "fs:Read ${with.context}");
    assert_eq!(BuildPush::GRANTS[1], "registry:Push ${with.registry}/${with.repository}");
    assert!(BuildPush::GRANTS.iter().all(|g| !g.starts_with("registry:Pull")), "base pulls are granted explicitly");
}
