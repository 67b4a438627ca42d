//! The wharf plugin SDK: what a step plugin is written against.
//!
//! A plugin is a type implementing [`Step`], exported with [`export_step!`]. Inputs arrive as the
//! plugin's own `Deserialize` struct, outputs leave as its own `Serialize` struct, and host
//! capabilities are plain functions in the capability modules ([`ecs`], [`log`]).
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

mod error;
mod step;

pub use error::Error;
pub use step::{Context, Step};

#[doc(hidden)]
pub mod __private {
    pub use crate::step::{describe, run};
}

/// Raw bindings generated from the WIT package. Prefer the typed wrappers of this crate.
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/0.1.0",
        world: "step",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "wharf_plugin_sdk::bindings",
    });
}

/// Step logging (needs no grant).
pub mod log {
    use crate::bindings::wharf::plugin::log as wit;

    /// Writes an info line to the step's log.
    pub fn info(message: &str) {
        wit::write(wit::Level::Info, message);
    }
    /// Writes a warning line to the step's log.
    pub fn warn(message: &str) {
        wit::write(wit::Level::Warn, message);
    }
    /// Writes a debug line to the step's log.
    pub fn debug(message: &str) {
        wit::write(wit::Level::Debug, message);
    }
    /// Reports progress for the live view.
    pub fn progress(message: &str) {
        wit::progress(message);
    }
}

/// Amazon ECS: clusters, task definitions, services.
pub mod ecs {
    pub use crate::bindings::wharf::plugin::ecs::*;
}

/// Amazon EC2 networking: VPCs, subnets, internet routes, security groups.
pub mod ec2 {
    pub use crate::bindings::wharf::plugin::ec2::*;
}

/// AWS IAM roles and policies.
pub mod iam {
    pub use crate::bindings::wharf::plugin::iam::*;
}

/// AWS Secrets Manager (values are read by the host, never by the plugin).
pub mod secrets {
    pub use crate::bindings::wharf::plugin::secrets::*;
}

/// Amazon S3 objects.
pub mod s3 {
    pub use crate::bindings::wharf::plugin::s3::*;
}

/// Amazon CloudWatch Logs log groups.
pub mod logs {
    pub use crate::bindings::wharf::plugin::logs::*;
}

/// The run's resource ledger (what teardown deletes).
pub mod ledger {
    pub use crate::bindings::wharf::plugin::ledger::*;
}
