//! Parts of one step, run at the same time (the `parallel` WIT interface).
//!
//! A step whose calls do not all depend on each other (two roles; a cluster and its network)
//! starts them as *parts*: the host runs each in a fresh instance of the same plugin, at once,
//! with the step's grants and attempt, and this plugin's [`Step::run_part`](crate::Step::run_part)
//! does the work of one. Each AWS call is a round trip; parts overlap them.
//!
//! ```ignore
//! let [task, exec] = parallel::run_each([Part::new("task-role", &task)?, Part::new("execution-role", &exec)?]);
//! let task: RoleOut = parallel::output(task)?;
//! ```
//!
//! Under `cargo test` the [`FakeHost`](crate::testing::FakeHost) runs the parts one after the
//! other, in order, through the same `run_part`.

use crate::Error;
use serde::{Serialize, de::DeserializeOwned};

/// The most parts one [`run_all`] may start (the host refuses more).
pub const MAX_PARTS: usize = 8;

/// One part: the name [`Step::run_part`](crate::Step::run_part) dispatches on, and its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    /// The part's input, JSON.
    pub input: String,
}

impl Part {
    /// A part named `name` whose input is `input` encoded as JSON.
    pub fn new(name: &str, input: &impl Serialize) -> Result<Part, Error> {
        let input = serde_json::to_string(input)
            .map_err(|e| Error::permanent("PartInputNotSerializable", format!("part {name}: {e}")))?;
        Ok(Part { name: name.to_string(), input })
    }
}

/// Runs `parts` at the same time and returns each one's output (JSON), in the same order, once
/// all have ended: always one result per part. A part that fails does not stop the others.
pub fn run_all(parts: &[Part]) -> Vec<Result<String, Error>> {
    #[cfg(target_arch = "wasm32")]
    let mut results: Vec<Result<String, Error>> = {
        use crate::bindings::wharf::plugin::parallel;
        let parts: Vec<parallel::Part> =
            parts.iter().map(|p| parallel::Part { name: p.name.clone(), input: p.input.clone() }).collect();
        parallel::run_all(&parts).into_iter().map(|r| r.map_err(Error)).collect()
    };
    #[cfg(not(target_arch = "wasm32"))]
    let mut results = crate::testing::run_parts(parts);
    // The host answers one result per part; should one ever be missing, it reads as a failure.
    results.resize_with(parts.len(), || {
        Err(Error::permanent("PartMissing", "the host returned fewer results than parts started"))
    });
    results
}

/// [`run_all`] for a fixed number of parts, destructured by the caller:
/// `let [a, b] = parallel::run_each([part_a, part_b]);`
pub fn run_each<const N: usize>(parts: [Part; N]) -> [Result<String, Error>; N] {
    match run_all(&parts).try_into() {
        Ok(results) => results,
        Err(_) => unreachable!("run_all returns one result per part"),
    }
}

/// The error of a part name `run_part` does not know.
pub fn unknown(plugin: &str, part: &str) -> Error {
    Error::permanent("UnknownPart", format!("plugin {plugin} has no part named {part:?}"))
}

/// Decodes a part's output, or passes its error on.
pub fn output<T: DeserializeOwned>(result: Result<String, Error>) -> Result<T, Error> {
    let json = result?;
    serde_json::from_str(&json)
        .map_err(|e| Error::permanent("PartOutputInvalid", format!("a part returned output that does not decode: {e}")))
}

/// Decodes a part's input inside [`Step::run_part`](crate::Step::run_part).
pub fn input<T: DeserializeOwned>(part: &str, input: &str) -> Result<T, Error> {
    serde_json::from_str(input).map_err(|e| Error::invalid_input(format!("part {part}: input does not decode: {e}")))
}

/// Encodes a part's output inside [`Step::run_part`](crate::Step::run_part).
pub fn encode(part: &str, output: &impl Serialize) -> Result<String, Error> {
    serde_json::to_string(output).map_err(|e| {
        Error::permanent("OutputNotSerializable", format!("part {part}: outputs could not be encoded: {e}"))
    })
}
