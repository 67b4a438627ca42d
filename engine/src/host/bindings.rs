//! Host-side bindings for the `wharf:plugin` WIT package (the `step` world).

wasmtime::component::bindgen!({
    path: "../wit/0.1",
    world: "step",
    imports: { default: async },
    exports: { default: async },
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
