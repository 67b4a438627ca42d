//! The cache's trust checks (`cache.rs`): what is not verifiably ours is never deserialized.

use super::*;
use crate::host::plugin::WitImports;
use std::os::unix::fs::PermissionsExt;

fn engine() -> Engine {
    crate::host::WasmEngine::new(1).unwrap().engine
}

/// Two built-in plugins told apart by what they import.
fn plugin(name: &str) -> (&'static [u8], &'static str) {
    crate::builtin::get(name).unwrap()
}

fn imports(engine: &Engine, component: &Component) -> Vec<String> {
    WitImports::of(engine, component).interfaces.into_iter().map(|(i, _)| i).collect()
}

fn artifacts(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    found.sort();
    found
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_tampered_or_swapped_artifact_is_recompiled_never_loaded() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    let cache = ComponentCache::new(&dir);
    assert!(cache.warning().is_none(), "{:?}", cache.warning());
    assert_eq!(mode(&dir.join(KEY_FILE)), 0o600);
    let engine = engine();
    let (cluster, cluster_digest) = plugin("create-cluster");
    let (verify, verify_digest) = plugin("verify-s3");
    cache.load(&engine, cluster, cluster_digest).unwrap();
    let cluster_path = artifacts(&dir).pop().unwrap();
    cache.load(&engine, verify, verify_digest).unwrap();
    let verify_path = artifacts(&dir).into_iter().find(|p| *p != cluster_path).unwrap();
    assert_eq!(mode(&cluster_path), 0o600);

    // Another component's artifact, with a valid tag for its own name, put in this one's place.
    std::fs::copy(&verify_path, &cluster_path).unwrap();
    let loaded = cache.load(&engine, cluster, cluster_digest).unwrap();
    assert!(imports(&engine, &loaded).contains(&"ecs".to_string()), "the swapped artifact was loaded");

    // One byte changed: recompiled, and the entry written again verifies.
    let mut bytes = std::fs::read(&cluster_path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&cluster_path, &bytes).unwrap();
    let name = cluster_path.file_name().unwrap().to_str().unwrap();
    let key = read_key(&dir.join(KEY_FILE)).unwrap();
    assert!(read_verified(&cluster_path, &key, name).is_none(), "a changed artifact verified");
    let loaded = cache.load(&engine, cluster, cluster_digest).unwrap();
    assert!(imports(&engine, &loaded).contains(&"ecs".to_string()));
    assert!(read_verified(&cluster_path, &key, name).is_some(), "the recompiled entry was not stored");

    // An artifact of the right content that others may write is not trusted either: it is
    // replaced by a private one.
    std::fs::set_permissions(&cluster_path, std::fs::Permissions::from_mode(0o666)).unwrap();
    cache.load(&engine, cluster, cluster_digest).unwrap();
    assert_eq!(mode(&cluster_path), 0o600, "a world-writable artifact was kept");
}

#[test]
fn a_cache_directory_others_can_write_is_not_trusted() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let cache = ComponentCache::new(tmp.path());
    let warning = cache.warning().expect("a world-writable cache directory was trusted");
    assert!(warning.contains("its mode is 777, which lets other users change it"), "{warning}");
    assert!(warning.contains(&format!("chmod 700 {}", tmp.path().display())), "{warning}");
    let (bytes, digest) = plugin("verify-s3");
    cache.load(&engine(), bytes, digest).unwrap();
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0, "something was written to it");

    // A key others can read would let them forge artifacts.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(ComponentCache::new(tmp.path()).warning().is_none());
    std::fs::set_permissions(tmp.path().join(KEY_FILE), std::fs::Permissions::from_mode(0o644)).unwrap();
    let warning = ComponentCache::new(tmp.path()).warning().map(str::to_string).unwrap_or_default();
    assert!(warning.contains("its key") && warning.contains("mode is 644, which lets other users read"), "{warning}");
}
