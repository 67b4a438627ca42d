//! Compiled components cached on disk, and why loading one is safe.
//!
//! Loading a `.cwasm` artifact runs its machine code unchecked: wasmtime cannot validate it
//! (`deserialize` is unsafe). Whoever can write an artifact the host loads can run any code as
//! the user. So an artifact is trusted only when both hold:
//!
//! 1. The cache directory is owned by the current user and not writable by group or others,
//!    and so is the artifact file: nobody else can have put it there. A directory that fails
//!    this is not used at all; plugins are compiled in memory, and [`ComponentCache::warning`]
//!    says how to fix the permissions.
//! 2. The artifact carries a valid HMAC-SHA256 over its file name and bytes, keyed by a random
//!    per-user key (`key` in the cache directory, 0600, created on first use): a file copied
//!    from elsewhere, truncated, altered or swapped for another component's artifact fails it.
//!    The check runs on the bytes in memory that are then deserialized (no window between check
//!    and use); a failing artifact is recompiled and overwritten, never deserialized.
//!
//! The file name is the component's sha256 digest, the wasmtime version and the engine's
//! compatibility hash (which covers its configuration), so an artifact is only ever loaded by
//! an engine that could have produced it. Artifacts are written by this host only, atomically.

use super::mac::{self, Key};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The key file in the cache directory.
const KEY_FILE: &str = "key";

/// Where compiled components live (`<state-dir>/cache` by default).
#[derive(Clone)]
pub struct ComponentCache {
    /// `None`: compile in memory (disabled, or the directory is not trusted).
    trusted: Option<(PathBuf, Key)>,
    warning: Option<String>,
}

/// The sha256 of a component's bytes, hex encoded.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl ComponentCache {
    /// The cache in `dir` (created, private, if missing), or, when `dir` or its key cannot be
    /// trusted, a cache that compiles in memory and says why in [`ComponentCache::warning`].
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        match open(&dir) {
            Ok(key) => ComponentCache { trusted: Some((dir, key)), warning: None },
            Err(why) => ComponentCache {
                trusted: None,
                warning: Some(format!(
                    "not using the compiled-plugin cache {}: {why}; plugins are compiled in memory instead (slower)",
                    dir.display()
                )),
            },
        }
    }

    /// A cache that always compiles (for tests and `--no-cache`).
    pub fn disabled() -> Self {
        ComponentCache { trusted: None, warning: None }
    }

    /// Why the cache directory is not used, for the CLI to show once.
    pub fn warning(&self) -> Option<&str> {
        self.warning.as_deref()
    }

    /// Loads the compiled form of `bytes`, compiling and storing it on a miss. An entry that is
    /// unreadable, not private, fails its MAC or does not deserialize is recompiled, never trusted.
    pub fn load(&self, engine: &Engine, bytes: &[u8], digest: &str) -> wasmtime::Result<Component> {
        let Some((dir, key)) = &self.trusted else {
            return Component::new(engine, bytes);
        };
        let name = format!("{}-{}.cwasm", &digest[..32], engine_key(engine));
        let path = dir.join(&name);
        if let Some(artifact) = read_verified(&path, key, &name) {
            // SAFETY: the bytes passed the MAC under this user's key over this name, so they are
            // what `store` below wrote from `Component::serialize` of an engine of this
            // configuration (the name says so), in a directory only this user can write.
            if let Ok(component) = unsafe { Component::deserialize(engine, &artifact) } {
                return Ok(component);
            }
        }
        let component = Component::new(engine, bytes)?;
        // A cache that cannot be written only costs speed.
        let _ = store(&path, key, &name, &component.serialize()?);
        Ok(component)
    }
}

/// The trusted directory's key, creating both if missing; why not, in words with the fix.
fn open(dir: &Path) -> Result<Key, String> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("it cannot be created: {e}"))?;
    let meta = std::fs::metadata(dir).map_err(|e| format!("it cannot be read: {e}"))?;
    private(&meta, 0o022).map_err(|why| {
        format!("{why} (fix: `chmod 700 {}`, or pass --cache-dir a directory of your own)", dir.display())
    })?;
    let path = dir.join(KEY_FILE);
    read_key(&path)
        .or_else(|_| create_key(dir, &path))
        .map_err(|e| format!("its key {} cannot be used: {e} (fix: delete it, wharf makes a new one)", path.display()))
}

/// Refuses files and directories another user owns or may write (`denied` mode bits).
fn private(meta: &std::fs::Metadata, denied: u32) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    if meta.uid() != uid {
        return Err(format!("it is owned by uid {}, not by the current user (uid {uid})", meta.uid()));
    }
    if meta.mode() & denied != 0 {
        let may = if denied & 0o044 != 0 { "read or change" } else { "change" };
        return Err(format!("its mode is {:o}, which lets other users {may} it", meta.mode() & 0o7777));
    }
    Ok(())
}

fn read_key(path: &Path) -> std::io::Result<Key> {
    let mut file = std::fs::File::open(path)?;
    // Readable by others, it would let them forge artifacts for a directory they could write.
    private(&file.metadata()?, 0o077).map_err(std::io::Error::other)?;
    let mut key = Key::default();
    file.read_exact(&mut key)?;
    Ok(key)
}

/// A fresh random key, published with a hard link so that two processes creating it at once
/// both end up with the one that won (a link, unlike a rename, refuses to replace).
fn create_key(dir: &Path, path: &Path) -> std::io::Result<Key> {
    let key: Key = rand::random();
    let tmp = dir.join(format!("{KEY_FILE}.tmp{}", std::process::id()));
    let written = write_private(&tmp, &[&key]).and_then(|_| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match written {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key(path),
        Err(e) => Err(e),
    }
}

/// The artifact in `path` if it is private to this user and its MAC holds.
fn read_verified(path: &Path, key: &Key, name: &str) -> Option<Vec<u8>> {
    let mut file = std::fs::File::open(path).ok()?;
    private(&file.metadata().ok()?, 0o022).ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    let tag: [u8; mac::LEN] = bytes.get(..mac::LEN)?.try_into().ok()?;
    let artifact = bytes.split_off(mac::LEN);
    mac::verify(key, &[name.as_bytes(), &artifact], &tag).then_some(artifact)
}

/// wharf version + the engine's compatibility hash (wasmtime version and configuration), hashed.
fn engine_key(engine: &Engine) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    env!("CARGO_PKG_VERSION").hash(&mut hasher);
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

/// Writes `MAC || artifact` atomically, readable by this user only.
fn store(path: &Path, key: &Key, name: &str, artifact: &[u8]) -> std::io::Result<()> {
    let tag = mac::sign(key, &[name.as_bytes(), artifact]);
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    write_private(&tmp, &[&tag, artifact])?;
    std::fs::rename(tmp, path)
}

fn write_private(path: &Path, parts: &[&[u8]]) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    for part in parts {
        file.write_all(part)?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
