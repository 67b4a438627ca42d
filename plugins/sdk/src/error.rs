//! The error a step returns, and helpers that say whether retrying can help.

use crate::bindings::wharf::plugin::types::{Error as WitError, ErrorKind};

/// A step failure. Build it with the constructor that says whether a retry makes sense.
#[derive(Debug, Clone)]
pub struct Error(pub(crate) WitError);

impl Error {
    fn new(kind: ErrorKind, code: &str, message: impl Into<String>) -> Self {
        Error(WitError { kind, code: code.to_string(), message: message.into(), http_status: None })
    }
    /// A transient failure: the scheduler retries the step with backoff.
    pub fn retryable(code: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Retryable, code, message)
    }
    /// A failure that retrying cannot fix.
    pub fn permanent(code: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Permanent, code, message)
    }
    /// The step's inputs are wrong; the message should say what to fix.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, "InvalidInput", message)
    }
    /// True when the scheduler would retry this error.
    pub fn is_retryable(&self) -> bool {
        matches!(self.0.kind, ErrorKind::Retryable)
    }
    /// The machine-readable code, e.g. `ClusterNotFoundException`.
    pub fn code(&self) -> &str {
        &self.0.code
    }
    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.0.message
    }
    /// The error kind as the host sees it.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }
}

impl From<WitError> for Error {
    fn from(e: WitError) -> Self {
        Error(e)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.0.code, self.0.message)
    }
}

impl std::error::Error for Error {}
