//! Compiled components cached on disk.
//!
//! The key is the component's sha256 digest, the wasmtime version and the engine's
//! compatibility hash (which covers its configuration), so a cached artifact is only ever loaded
//! by an engine that could have produced it. Artifacts are written by this host only, atomically.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where compiled components live (`<state-dir>/cache` by default).
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: Option<PathBuf>,
}

/// The sha256 of a component's bytes, hex encoded.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl ComponentCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ComponentCache { dir: Some(dir.into()) }
    }

    /// A cache that always compiles (for tests and `--no-cache`).
    pub fn disabled() -> Self {
        ComponentCache { dir: None }
    }

    /// Loads the compiled form of `bytes`, compiling and storing it on a miss. A corrupt or
    /// unreadable cache entry is recompiled, never trusted.
    pub fn load(&self, engine: &Engine, bytes: &[u8], digest: &str) -> wasmtime::Result<Component> {
        let Some(dir) = &self.dir else {
            return Component::new(engine, bytes);
        };
        let path = dir.join(format!("{}-{}.cwasm", &digest[..32], engine_key(engine)));
        if path.exists() {
            // SAFETY: the file is named by this engine's key and was written by `store` below from
            // `Component::serialize` of the same engine configuration; it is never user-supplied.
            if let Ok(component) = unsafe { Component::deserialize_file(engine, &path) } {
                return Ok(component);
            }
        }
        let component = Component::new(engine, bytes)?;
        // A cache that cannot be written only costs speed.
        let _ = store(dir, &path, &component.serialize()?);
        Ok(component)
    }
}

/// wharf version + the engine's compatibility hash (wasmtime version and configuration), hashed.
fn engine_key(engine: &Engine) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    env!("CARGO_PKG_VERSION").hash(&mut hasher);
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

fn store(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}
