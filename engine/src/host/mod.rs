//! The component host: one wasmtime engine, compiled-component cache, and per-attempt sandboxes.
//!
//! - [`engine`]: engine configuration (pooling allocator, epoch interruption) and the epoch ticker.
//! - [`cache`]: compiled components on disk, keyed by digest + wasmtime version + engine config,
//!   loaded only from a private directory and under a valid MAC (its trust model).
//! - [`plugin`]: a loaded plugin: `InstancePre`, what it imports, what it says about itself.
//! - [`sandbox`]: the per-attempt store: WASI that grants nothing, memory cap, deadline.
//! - [`limiter`]: one memory budget per attempt, shared by its stores (its parts' too).
//! - [`bindings`]: host bindings generated from `wit/`.

pub mod bindings;
pub mod cache;
pub mod engine;
pub mod limiter;
mod mac;
pub mod parts;
pub mod plugin;
pub mod registry;
pub mod sandbox;

pub use engine::{AllocatorKind, WasmEngine};
pub use plugin::{Plugin, PluginError};
pub use registry::Host;
pub use sandbox::{AttemptError, AttemptLimits};
