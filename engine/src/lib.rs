//! wharf: runs TOML deployment workflows whose steps are sandboxed WebAssembly components.
//!
//! Layers, each with its own error type:
//! - [`workflow`]: the workflow file format: parsing, validation, templating, schema, graphs.
//! - [`grants`]: capability grants and the checks the host makes on every call.
//! - [`journal`]: durable run state (sled): runs, attempts, events and the resource ledger.

pub mod alloc;
pub mod builtin;
pub mod capabilities;
pub mod events;
pub mod grants;
pub mod host;
pub mod journal;
pub mod scheduler;
pub mod workflow;

/// Milliseconds since the Unix epoch (journal timestamps).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
pub mod cli;
