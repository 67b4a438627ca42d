//! The wharf plugin SDK: what a step plugin is written against.
//!
//! A plugin is a type implementing [`Step`], exported with [`export_step!`]. Inputs arrive as the
//! plugin's own `Deserialize` struct, outputs leave as its own `Serialize` struct, and host
//! capabilities are plain functions in the capability modules ([`ecs`], [`ec2`], [`iam`],
//! [`secrets`], [`s3`], [`logs`], [`ledger`], [`registry`], [`log`]) that return the host's
//! error, which `?` turns into this crate's [`Error`]. Independent work can run as [`parallel`]
//! parts of the step.
//!
//! Plugins are unit-tested on the host with plain `cargo test`: there the capability functions
//! are answered by a [`testing::FakeHost`] the test configures. The guide is
//! `docs/writing-plugins.md` in the wharf repository.
//!
//! The WIT package this SDK targets is [`WIT_PACKAGE`]`@`[`WIT_VERSION`]; a wharf accepts plugins
//! built against the same minor version (0.x) or major version (1.x and later).
//!
//! ```ignore
//! use wharf_plugin_sdk::{Context, Error, Step, ecs};
//!
//! #[derive(serde::Deserialize)]
//! struct Input { name: String }
//! #[derive(serde::Serialize)]
//! struct Output { arn: String }
//!
//! struct MyStep;
//! impl Step for MyStep {
//!     type Input = Input;
//!     type Output = Output;
//!     const NAME: &'static str = "my-step";
//!     const DESCRIPTION: &'static str = "Creates a cluster";
//!     const GRANTS: &'static [&'static str] = &["ecs:CreateCluster ${with.name}"];
//!     fn run(ctx: &Context, input: Input) -> Result<Output, Error> {
//!         let cluster = ecs::create_cluster(&ecs::CreateClusterRequest {
//!             name: input.name, container_insights: false })?;
//!         Ok(Output { arn: cluster.arn })
//!     }
//! }
//! wharf_plugin_sdk::export_step!(MyStep);
//! ```

// Textually first: `host_functions!` is used by the capability modules in `caps`.
#[macro_use]
mod host_fn;
mod caps;
mod error;
mod macros;
pub mod parallel;
mod step;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use bindings::wharf::plugin::types::ErrorKind;
pub use caps::{digest, ec2, ecs, iam, ledger, log, logs, registry, s3, secrets};
pub use error::Error;
pub use step::{Context, Step};

/// The WIT package plugins built with this SDK import: `wharf:plugin`.
pub const WIT_PACKAGE: &str = "wharf:plugin";
/// The version of [`WIT_PACKAGE`] this SDK was generated from (see `wharf plugin inspect`).
pub const WIT_VERSION: &str = "0.1.4";

#[doc(hidden)]
pub mod __private {
    pub use crate::step::{describe, run, run_part};
}

/// Raw bindings generated from the WIT package. Prefer the typed wrappers of this crate: only
/// they can be answered by [`testing::FakeHost`] in unit tests.
// The registry's two-record functions flatten to more than 7 core parameters in the generated glue.
#[allow(clippy::too_many_arguments)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/0.1",
        world: "step-with-parts",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "wharf_plugin_sdk::bindings",
    });
}
