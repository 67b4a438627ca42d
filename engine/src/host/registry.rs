//! Finds, compiles and keeps the plugins a process uses: built-in ones embedded in the binary,
//! and `.wasm` components given by path.

use super::bindings::Step;
use super::cache::ComponentCache;
use super::engine::WasmEngine;
use super::plugin::{Plugin, PluginError};
use super::sandbox::SandboxState;
use crate::workflow::PluginRef;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use wasmtime::component::{HasSelf, Linker};

/// The component host of a wharf process.
pub struct Host {
    engine: WasmEngine,
    linker: Linker<SandboxState>,
    cache: ComponentCache,
    /// Loaded plugins by digest: a plugin is compiled and pre-linked once per process.
    loaded: Mutex<HashMap<String, Arc<Plugin>>>,
}

impl Host {
    pub fn new(cache: ComponentCache, max_concurrent_steps: u32) -> wasmtime::Result<Self> {
        let engine = WasmEngine::new(max_concurrent_steps)?;
        let mut linker = Linker::new(&engine.engine);
        // Rust wasip2 guests import WASI even when they use none of it; the context grants nothing.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        Step::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
        Ok(Host { engine, linker, cache, loaded: Mutex::new(HashMap::new()) })
    }

    pub fn engine(&self) -> &WasmEngine {
        &self.engine
    }

    /// Loads a plugin by workflow reference.
    pub async fn plugin(&self, plugin: &PluginRef) -> Result<Arc<Plugin>, PluginError> {
        match plugin {
            PluginRef::Builtin(name) => {
                let bytes = crate::builtin::bytes(name).ok_or_else(|| PluginError::Invalid {
                    name: name.clone(),
                    detail: "no such built-in plugin".into(),
                })?;
                self.load(name, bytes).await
            }
            PluginRef::Path(path) => {
                let name = path.display().to_string();
                let bytes = std::fs::read(path).map_err(|e| PluginError::Invalid {
                    name: name.clone(),
                    detail: format!("cannot read {name}: {e}"),
                })?;
                self.load(&name, &bytes).await
            }
        }
    }

    /// Loads a plugin from component bytes.
    pub async fn load(&self, name: &str, bytes: &[u8]) -> Result<Arc<Plugin>, PluginError> {
        let digest = super::cache::digest(bytes);
        if let Some(p) = self.loaded.lock().unwrap().get(&digest) {
            return Ok(p.clone());
        }
        let plugin = Arc::new(Plugin::load(&self.engine.engine, &self.linker, &self.cache, name, bytes).await?);
        self.loaded.lock().unwrap().insert(digest, plugin.clone());
        Ok(plugin)
    }
}
