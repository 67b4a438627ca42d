//! Parts of one step, run at the same time (the `parallel` WIT interface).
//!
//! A step whose calls do not all depend on each other (two roles; a cluster and its network)
//! starts them as *parts*: the host runs each in a fresh instance of the same plugin, at once,
//! with the step's grants and attempt, and this plugin's [`Step::run_part`](crate::Step::run_part)
//! does the work of one. Each AWS call is a round trip; parts overlap them.
//!
//! ```ignore
//! let results = parallel::run_all(&[Part::new("task-role", &task)?, Part::new("execution-role", &exec)?]);
//! let task: RoleOut = parallel::output(results[0].clone())?;
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
/// all have ended. A part that fails does not stop the others.
pub fn run_all(parts: &[Part]) -> Vec<Result<String, Error>> {
    #[cfg(target_arch = "wasm32")]
    {
        use crate::bindings::wharf::plugin::parallel;
        let parts: Vec<parallel::Part> =
            parts.iter().map(|p| parallel::Part { name: p.name.clone(), input: p.input.clone() }).collect();
        parallel::run_all(&parts).into_iter().map(|r| r.map_err(Error)).collect()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        crate::testing::run_parts(parts)
    }
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
