//! Workflow files: a TOML document of params, AWS settings and steps, each step a sandboxed
//! WebAssembly component (builtin or a path to a `.wasm` file).
//!
//! Loading runs in two passes so that one run reports every problem in the file:
//! - `raw`: the TOML shape (unknown keys, wrong types, missing keys), keeping spans;
//! - `validate`: meaning (names, references, plugins, durations, grants, cycles).
//!
//! Problems come back as [`Diagnostics`] that print rustc-style with file:line:col and a hint.

mod deps;
mod diagnostic;
pub mod graph;
mod hash;
mod inputs;
mod params;
pub mod paths;
mod raw;
mod schema;
pub mod template;
mod validate;
mod values;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

pub use diagnostic::{Diagnostic, Diagnostics, Span};
pub use schema::json_schema;

/// A loaded, validated workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct Workflow {
    pub name: String,
    pub description: Option<String>,
    /// As given to [`Workflow::load`].
    pub path: PathBuf,
    /// The exact file text (the journal keeps it with each run).
    pub source: String,
    pub params: BTreeMap<String, Param>,
    pub aws: AwsSettings,
    /// Maximum steps running at once.
    pub concurrency: usize,
    /// `[state]`: where `wharf run` journals the run (`--state` / `WHARF_STATE` win over it).
    pub state: Option<StateSettings>,
    /// In file order.
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub ty: ParamType,
    pub default: Option<Value>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamType {
    String,
    Integer,
    Boolean,
}

/// `[aws]`; values are raw and may hold `${params.*}` / `${env.*}` / `${run.id}` templates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsSettings {
    pub region: Option<String>,
    pub profile: Option<String>,
}

/// `[state]`, literal values only (the run must be findable before anything is resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateSettings {
    /// `backend = "sled"`: the local state dir (the default).
    Sled,
    /// `backend = "s3"`: shared state in a bucket (docs/state.md).
    S3 { bucket: String, prefix: String, region: Option<String>, endpoint: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PluginRef {
    Builtin(String),
    /// Resolved against the workflow file's directory (relative if the workflow path was).
    Path(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RetryPolicy {
    /// Total attempts including the first (1 = no retries).
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_attempts: 3, initial_backoff: Duration::from_secs(1), max_backoff: Duration::from_secs(30) }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub id: String,
    pub plugin: PluginRef,
    /// Explicit `needs` plus steps referenced by `${steps.ID...}` templates; deduped, sorted.
    pub needs: Vec<String>,
    /// Always an object; unrendered (templates still in strings).
    pub with: Value,
    /// Raw grant lines, unrendered.
    pub grants: Vec<String>,
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// Bytes.
    pub memory_limit: u64,
    /// Hex sha256 over a canonical JSON of every field above except `id`.
    pub definition_hash: String,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error("cannot read workflow file `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Diagnostics),
    /// `--param` problems, one message per entry.
    #[error("{}", .0.iter().map(|e| format!("error: {e}")).collect::<Vec<_>>().join("\n"))]
    Params(Vec<String>),
}

/// What usually fixes a TOML syntax error (the parser's message says what it expected).
fn syntax_hint(message: &str) -> &'static str {
    if message.contains("duplicate key") {
        "a key may appear once per table: remove or rename one of them"
    } else if message.contains("must be quoted") {
        "give the key a value; strings are quoted: `key = \"value\"`"
    } else if message.contains("array table") {
        "a step starts with `[[steps]]` (two brackets on each side)"
    } else if message.contains("string") {
        "close the string on the same line (use `\"\"\"` for text spanning lines)"
    } else {
        "workflow files are TOML (https://toml.io): check the brackets, quotes and `=` on this line"
    }
}

impl Workflow {
    /// Reads and validates a workflow file. `builtins` are the builtin plugin names (also used for
    /// "did you mean" hints).
    pub fn load(path: &Path, builtins: &[&str]) -> Result<Workflow, WorkflowError> {
        let source =
            std::fs::read_to_string(path).map_err(|source| WorkflowError::Io { path: path.to_path_buf(), source })?;
        Workflow::parse(path, &source, builtins)
    }

    /// Validates `source` as if read from `path` (plugin paths resolve against its directory).
    pub fn parse(path: &Path, source: &str, builtins: &[&str]) -> Result<Workflow, WorkflowError> {
        let mut rep = diagnostic::Reporter::new(path, source);
        let (doc, syntax_errors) = toml::de::DeTable::parse_recoverable(source);
        if !syntax_errors.is_empty() {
            // Semantic checks on a partly parsed document would mostly report noise.
            for e in syntax_errors {
                let span = e.span().unwrap_or(0..0);
                rep.error(span, format!("invalid TOML: {}", e.message()), Some(syntax_hint(e.message()).into()));
            }
            return Err(WorkflowError::Invalid(rep.finish()));
        }
        let raw = raw::read(&mut rep, doc.get_ref());
        let workflow = validate::build(&mut rep, path, raw, builtins);
        if rep.has_errors() { Err(WorkflowError::Invalid(rep.finish())) } else { Ok(workflow) }
    }

    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// Step ids in a dependency-respecting order (ties broken by file order).
    pub fn topo_order(&self) -> Vec<&str> {
        deps::topo_order(&self.steps)
    }
}
