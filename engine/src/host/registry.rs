//! Finds, compiles and keeps the plugins a process uses: built-in ones embedded in the binary,
//! and `.wasm` components given by path.

use super::bindings::Step;
use super::cache::ComponentCache;
use super::engine::WasmEngine;
use super::plugin::{Plugin, PluginError};
use super::sandbox::SandboxState;
use crate::workflow::PluginRef;
use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use wasmtime::component::{HasSelf, Linker};

/// The component host of a wharf process.
pub struct Host {
    engine: WasmEngine,
    linker: Linker<SandboxState>,
    cache: ComponentCache,
    /// Loaded plugins by digest: a plugin is compiled and pre-linked once per process.
    loaded: Mutex<HashMap<String, Arc<Plugin>>>,
    /// Plugins already loaded from a file, by path, with the file's identity when it was read:
    /// a run of a loaded plugin need not read and hash the file again (a tenth of a short run).
    by_path: Mutex<HashMap<PathBuf, (FileIdentity, Arc<Plugin>)>>,
    builtins: Mutex<HashMap<String, Arc<Plugin>>>,
}

/// What changes when a file is rewritten (as `make` and cargo judge it): size, mtime (ns), inode.
#[derive(PartialEq, Eq, Clone, Copy)]
struct FileIdentity {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl FileIdentity {
    fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        FileIdentity { len: meta.len(), modified: meta.modified().ok(), inode: meta.ino() }
    }
}

impl Host {
    pub fn new(cache: ComponentCache, max_concurrent_steps: u32) -> wasmtime::Result<Self> {
        let engine = WasmEngine::new(max_concurrent_steps)?;
        let mut linker = Linker::new(&engine.engine);
        // Rust wasip2 guests import WASI even when they use none of it; the context grants nothing.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        Step::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
        super::bindings::with_parts::wharf::plugin::parallel::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| {
            state
        })?;
        Ok(Host {
            engine,
            linker,
            cache,
            loaded: Mutex::new(HashMap::new()),
            by_path: Mutex::new(HashMap::new()),
            builtins: Mutex::new(HashMap::new()),
        })
    }

    pub fn engine(&self) -> &WasmEngine {
        &self.engine
    }

    /// Loads a plugin by workflow reference.
    pub async fn plugin(&self, plugin: &PluginRef) -> Result<Arc<Plugin>, PluginError> {
        match plugin {
            PluginRef::Builtin(name) => {
                // Embedded in the binary, so they never change: no need to hash them again.
                if let Some(plugin) = self.builtins.lock().unwrap().get(name) {
                    return Ok(plugin.clone());
                }
                let (bytes, digest) = crate::builtin::get(name).ok_or_else(|| PluginError::Invalid {
                    name: name.clone(),
                    detail: "no such built-in plugin".into(),
                })?;
                let plugin = self.load_digested(name, bytes, digest.to_string()).await?;
                self.builtins.lock().unwrap().insert(name.clone(), plugin.clone());
                Ok(plugin)
            }
            PluginRef::Path(path) => {
                let name = path.display().to_string();
                let unreadable = |e: std::io::Error| PluginError::Invalid {
                    name: name.clone(),
                    detail: format!("cannot read {name}: {e}"),
                };
                let identity = FileIdentity::of(&std::fs::metadata(path).map_err(unreadable)?);
                if let Some((seen, plugin)) = self.by_path.lock().unwrap().get(path) {
                    if *seen == identity {
                        return Ok(plugin.clone());
                    }
                }
                let file = std::fs::File::open(path).map_err(unreadable)?;
                // The identity of what is read, not of what was stat'ed a moment ago.
                let identity = FileIdentity::of(&file.metadata().map_err(unreadable)?);
                let mut bytes = Vec::new();
                (&file).read_to_end(&mut bytes).map_err(unreadable)?;
                let plugin = self.load(&name, &bytes).await?;
                self.by_path.lock().unwrap().insert(path.clone(), (identity, plugin.clone()));
                Ok(plugin)
            }
        }
    }

    /// Loads a plugin from component bytes.
    pub async fn load(&self, name: &str, bytes: &[u8]) -> Result<Arc<Plugin>, PluginError> {
        self.load_digested(name, bytes, super::cache::digest(bytes)).await
    }

    /// `load` of bytes whose sha256 (hex) is known.
    async fn load_digested(&self, name: &str, bytes: &[u8], digest: String) -> Result<Arc<Plugin>, PluginError> {
        if let Some(p) = self.loaded.lock().unwrap().get(&digest) {
            return Ok(p.clone());
        }
        let plugin =
            Arc::new(Plugin::load(&self.engine.engine, &self.linker, &self.cache, name, bytes, digest.clone()).await?);
        self.loaded.lock().unwrap().insert(digest, plugin.clone());
        Ok(plugin)
    }
}
