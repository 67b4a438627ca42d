//! Host-side bindings for the `wharf:plugin` WIT package (the `step` world).

wasmtime::component::bindgen!({
    path: "../wit/0.1",
    world: "step",
    // Hashing is CPU work on the guest's thread: no await, and a full resource table traps.
    imports: { "wharf:plugin/digest": trappable, default: async },
    exports: { default: async },
    with: { "wharf:plugin/digest.sha256": crate::capabilities::digest::Sha256 },
});

pub use self::wharf::plugin::types::{Error as WitError, ErrorKind};

impl WitError {
    /// An error of `kind` with no HTTP status.
    pub fn new(kind: ErrorKind, code: &str, message: impl Into<String>) -> Self {
        WitError { kind, code: code.to_string(), message: message.into(), http_status: None }
    }
}

impl ErrorKind {
    /// The name used in the journal and in messages (`retryable`, `invalid-input`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorKind::Retryable => "retryable",
            ErrorKind::Permanent => "permanent",
            ErrorKind::Denied => "denied",
            ErrorKind::InvalidInput => "invalid-input",
        }
    }
}

/// The `step-with-parts` world: the `parallel` import (host side in `host/parts.rs`) and the
/// `parts` export a plugin runs one part through. Everything shared with `step` is the same Rust
/// types as above.
pub mod with_parts {
    wasmtime::component::bindgen!({
        path: "../wit/0.1",
        world: "step-with-parts",
        imports: { default: async },
        exports: { default: async },
        with: {
            "wharf:plugin/types": super::wharf::plugin::types,
            "wharf:plugin/log": super::wharf::plugin::log,
            "wharf:plugin/ecs": super::wharf::plugin::ecs,
            "wharf:plugin/ec2": super::wharf::plugin::ec2,
            "wharf:plugin/iam": super::wharf::plugin::iam,
            "wharf:plugin/secrets": super::wharf::plugin::secrets,
            "wharf:plugin/s3": super::wharf::plugin::s3,
            "wharf:plugin/logs": super::wharf::plugin::logs,
            "wharf:plugin/ledger": super::wharf::plugin::ledger,
            "wharf:plugin/registry": super::wharf::plugin::registry,
            "wharf:plugin/digest": super::wharf::plugin::digest,
        },
    });
}
