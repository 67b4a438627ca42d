//! The [`Step`] trait and the glue that turns it into the component's exports.

use crate::Error;
use crate::bindings::wharf::plugin::types::{PluginInfo, StepContext};
use serde::{Serialize, de::DeserializeOwned};

/// What the host told this attempt: ids, attempt number and the idempotency key.
///
/// ```
/// # use wharf_plugin_sdk::Context;
/// fn client_token(ctx: &Context) -> String {
///     // Stable across retries and resumes of this step: a second create is a no-op.
///     ctx.idempotency_key.chars().take(36).collect()
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// The run's id (`wharf status RUN`).
    pub run_id: String,
    /// The step's `id` in the workflow.
    pub step_id: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Stable per run and step; use it as the client token of create calls.
    pub idempotency_key: String,
    /// An earlier attempt may have done part of the work: look before creating.
    pub in_doubt: bool,
    /// A dry run (`wharf plan`): creates return placeholders; do not wait for their effects.
    pub planning: bool,
}

/// A step plugin: typed inputs in, typed outputs out. Export it with [`export_step!`](crate::export_step).
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use wharf_plugin_sdk::{Context, Error, Step};
///
/// #[derive(Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct Input { name: String }
/// #[derive(Serialize)]
/// struct Output { greeting: String }
///
/// struct Greet;
/// impl Step for Greet {
///     type Input = Input;
///     type Output = Output;
///     const NAME: &'static str = "greet";
///     const DESCRIPTION: &'static str = "Greets someone.";
///     const GRANTS: &'static [&'static str] = &[];
///     fn run(_ctx: &Context, input: Input) -> Result<Output, Error> {
///         if input.name.is_empty() {
///             return Err(Error::invalid_input("`name` must not be empty"));
///         }
///         Ok(Output { greeting: format!("hello {}", input.name) })
///     }
/// }
/// wharf_plugin_sdk::export_step!(Greet);
/// ```
pub trait Step {
    /// The step's `with` inputs.
    type Input: DeserializeOwned;
    /// The step's outputs, readable by later steps as `${steps.ID.outputs.NAME}`.
    type Output: Serialize;
    /// Plugin name, e.g. `create-cluster`.
    const NAME: &'static str;
    /// One line saying what the step does.
    const DESCRIPTION: &'static str;
    /// Grant lines this plugin needs; `${with.NAME}` refers to an input.
    const GRANTS: &'static [&'static str];
    /// Runs one attempt.
    fn run(ctx: &Context, input: Self::Input) -> Result<Self::Output, Error>;

    /// Runs one part of an attempt, started by [`parallel::run_all`](crate::parallel::run_all)
    /// from `run`: `input` and the result are the part's JSON ([`parallel::input`](crate::parallel::input),
    /// [`parallel::encode`](crate::parallel::encode)). Steps without parts keep this default.
    fn run_part(_ctx: &Context, part: &str, _input: &str) -> Result<String, Error> {
        Err(crate::parallel::unknown(Self::NAME, part))
    }
}

impl From<StepContext> for Context {
    fn from(ctx: StepContext) -> Context {
        Context {
            run_id: ctx.run_id,
            step_id: ctx.step_id,
            attempt: ctx.attempt,
            idempotency_key: ctx.idempotency_key,
            in_doubt: ctx.in_doubt,
            planning: ctx.planning,
        }
    }
}

#[doc(hidden)]
pub fn run_part<S: Step>(
    ctx: StepContext,
    part: String,
    input: String,
) -> Result<String, crate::bindings::wharf::plugin::types::Error> {
    S::run_part(&Context::from(ctx), &part, &input).map_err(|e| e.0)
}

#[doc(hidden)]
pub fn describe<S: Step>(version: &str) -> PluginInfo {
    PluginInfo {
        name: S::NAME.to_string(),
        version: version.to_string(),
        description: S::DESCRIPTION.to_string(),
        grants: S::GRANTS.iter().map(|g| g.to_string()).collect(),
    }
}

#[doc(hidden)]
pub fn run<S: Step>(ctx: StepContext) -> Result<String, crate::bindings::wharf::plugin::types::Error> {
    let input: S::Input = serde_json::from_str(&ctx.inputs).map_err(|e| {
        Error::invalid_input(format!("step `{}` inputs do not match what {} expects: {e}", ctx.step_id, S::NAME)).0
    })?;
    let output = S::run(&Context::from(ctx), input).map_err(|e| e.0)?;
    serde_json::to_string(&output)
        .map_err(|e| Error::permanent("OutputNotSerializable", format!("outputs could not be encoded: {e}")).0)
}

/// Exports a [`Step`] implementation as the component's `describe`, `run` and `run-part` functions (once
/// per plugin crate). The version `describe` reports is the plugin crate's own.
///
/// ```ignore
/// wharf_plugin_sdk::export_step!(MyStep);
/// ```
#[macro_export]
macro_rules! export_step {
    ($step:ty) => {
        #[doc(hidden)]
        pub struct __WharfExportedStep;
        impl $crate::bindings::exports::wharf::plugin::parts::Guest for __WharfExportedStep {
            fn run_part(
                ctx: $crate::bindings::wharf::plugin::types::StepContext,
                part: ::std::string::String,
                input: ::std::string::String,
            ) -> ::core::result::Result<::std::string::String, $crate::bindings::wharf::plugin::types::Error> {
                $crate::__private::run_part::<$step>(ctx, part, input)
            }
        }
        impl $crate::bindings::Guest for __WharfExportedStep {
            fn describe() -> $crate::bindings::wharf::plugin::types::PluginInfo {
                $crate::__private::describe::<$step>(env!("CARGO_PKG_VERSION"))
            }
            fn run(
                ctx: $crate::bindings::wharf::plugin::types::StepContext,
            ) -> ::core::result::Result<::std::string::String, $crate::bindings::wharf::plugin::types::Error> {
                $crate::__private::run::<$step>(ctx)
            }
        }
        // Only components export: a native build (a plugin's `cargo test` of its cdylib) cannot
        // carry the interface-qualified symbol names (`wharf:plugin/parts@0.1.2#run-part`).
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::export!(__WharfExportedStep);
    };
}
