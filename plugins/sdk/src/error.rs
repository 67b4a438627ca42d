//! The error a step returns, and helpers that say whether retrying can help.

use crate::bindings::wharf::plugin::types::{Error as WitError, ErrorKind};

/// A step failure. Build it with the constructor that says whether a retry makes sense; errors
/// returned by capability functions convert with `?` and keep the host's classification.
///
/// ```
/// use wharf_plugin_sdk::Error;
/// let e = Error::retryable("NotReady", "the service is still draining");
/// assert!(e.is_retryable());
/// assert_eq!(e.to_string(), "NotReady: the service is still draining");
/// ```
#[derive(Debug, Clone)]
pub struct Error(pub(crate) WitError);

impl Error {
    pub(crate) fn new(kind: ErrorKind, code: &str, message: impl Into<String>) -> Self {
        Error(WitError { kind, code: code.to_string(), message: message.into(), http_status: None })
    }
    /// A transient failure: the scheduler retries the step with backoff.
    ///
    /// ```
    /// # use wharf_plugin_sdk::Error;
    /// let e = Error::retryable("HealthCheckFailed", "GET /health answered 503");
    /// assert!(e.is_retryable());
    /// ```
    pub fn retryable(code: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Retryable, code, message)
    }
    /// A failure that retrying cannot fix.
    ///
    /// ```
    /// # use wharf_plugin_sdk::Error;
    /// let e = Error::permanent("DigestMismatch", "the uploaded file differs from model/sample.txt");
    /// assert!(!e.is_retryable());
    /// ```
    pub fn permanent(code: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Permanent, code, message)
    }
    /// The step's inputs are wrong; the message should say what to fix.
    ///
    /// ```
    /// # use wharf_plugin_sdk::{Error, ErrorKind};
    /// let e = Error::invalid_input("`port` must be between 1 and 65535");
    /// assert_eq!(e.kind(), ErrorKind::InvalidInput);
    /// ```
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, "InvalidInput", message)
    }
    /// True when the scheduler would retry this error: `Error::retryable("A", "b").is_retryable()`.
    pub fn is_retryable(&self) -> bool {
        matches!(self.0.kind, ErrorKind::Retryable)
    }
    /// The machine-readable code, e.g. `ClusterNotFoundException`:
    /// `assert_eq!(Error::permanent("Gone", "..").code(), "Gone")`.
    pub fn code(&self) -> &str {
        &self.0.code
    }
    /// The human-readable message: `Error::invalid_input("set `name`").message()`.
    pub fn message(&self) -> &str {
        &self.0.message
    }
    /// The error kind as the host sees it (`ErrorKind::Retryable`, `Permanent`, `Denied`,
    /// `InvalidInput`): `Error::permanent("A", "b").kind() == ErrorKind::Permanent`.
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
