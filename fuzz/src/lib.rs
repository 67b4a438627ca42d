//! The engine's workflow and grant modules, compiled on their own for fuzzing.
//!
//! Why not depend on the `wharf` crate: it pulls in wasmtime and the AWS SDK, which an
//! instrumented (sanitizer + coverage) build would take the better part of an hour to compile.
//! These modules are pure (no I/O besides `Workflow::load`, which the targets do not call), and
//! including the very same source files keeps the fuzzed code identical to the shipped code.
#![allow(dead_code, unused_imports)]

#[path = "../../engine/src/grants.rs"]
pub mod grants;
#[path = "../../engine/src/workflow/mod.rs"]
pub mod workflow;
