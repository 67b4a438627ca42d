//! A loaded plugin: compiled once, pre-linked once (`InstancePre`), instantiated per attempt.

use super::bindings::{PluginInfo, StepPre};
use super::cache::{ComponentCache, digest};
use super::sandbox::{self, AttemptLimits, SandboxState};
use crate::grants::GrantSet;
use wasmtime::Engine;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker};

/// The WIT package every plugin imports its capabilities from.
pub const WIT_PACKAGE: &str = "wharf:plugin";

/// Why a plugin cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin `{name}` is not a valid WebAssembly component: {detail}")]
    Invalid { name: String, detail: String },
    #[error("plugin `{name}` cannot be linked: {detail}")]
    Link { name: String, detail: String },
    #[error("plugin `{name}` failed to describe itself: {detail}")]
    Describe { name: String, detail: String },
    #[error(
        "step `{step_id}` uses plugin `{plugin}`, which imports the `{interface}` capability, but the step has no `{service}:` grant. \
         Add the grants it needs to the step, e.g. grants = [{suggestion}]"
    )]
    CapabilityNotGranted { step_id: String, plugin: String, interface: String, service: String, suggestion: String },
}

/// A compiled, pre-linked plugin.
pub struct Plugin {
    /// Name the workflow uses (`create-cluster`) or the file path.
    pub name: String,
    /// sha256 of the component bytes.
    pub digest: String,
    pub size: usize,
    /// What the plugin says about itself.
    pub info: PluginInfo,
    /// `wharf:plugin` interfaces it imports (e.g. `ecs`, `log`), without package and version.
    pub capability_imports: Vec<String>,
    pre: StepPre<SandboxState>,
}

impl Plugin {
    /// Compiles (or loads from cache), links and describes a component.
    pub async fn load(
        engine: &Engine,
        linker: &Linker<SandboxState>,
        cache: &ComponentCache,
        name: &str,
        bytes: &[u8],
    ) -> Result<Plugin, PluginError> {
        let digest = digest(bytes);
        let component = cache
            .load(engine, bytes, &digest)
            .map_err(|e| PluginError::Invalid { name: name.to_string(), detail: format!("{e:#}") })?;
        let capability_imports = capability_imports(engine, &component);
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(|e| PluginError::Link { name: name.to_string(), detail: format!("{e:#}") })?;
        let pre = StepPre::new(instance_pre)
            .map_err(|e| PluginError::Link { name: name.to_string(), detail: format!("{e:#}") })?;
        let mut plugin = Plugin {
            name: name.to_string(),
            digest,
            size: bytes.len(),
            info: PluginInfo {
                name: String::new(),
                version: String::new(),
                description: String::new(),
                grants: vec![],
            },
            capability_imports,
            pre,
        };
        plugin.info = plugin.describe().await?;
        Ok(plugin)
    }

    async fn describe(&self) -> Result<PluginInfo, PluginError> {
        let err = |e: wasmtime::Error| PluginError::Describe { name: self.name.clone(), detail: format!("{e:#}") };
        let mut store = sandbox::describe_store(self.pre.engine());
        let step = self.pre.instantiate_async(&mut store).await.map_err(err)?;
        step.call_describe(&mut store).await.map_err(err)
    }

    /// Refuses to run a plugin that imports a capability the step has no grant for at all.
    pub fn check_imports(&self, step_id: &str, grants: &GrantSet) -> Result<(), PluginError> {
        for interface in &self.capability_imports {
            let Some(service) = service_of(interface) else { continue };
            if grants.covers_service(service) {
                continue;
            }
            let declared: Vec<String> = self
                .info
                .grants
                .iter()
                .filter(|g| g.starts_with(&format!("{service}:")))
                .map(|g| format!("\"{g}\""))
                .collect();
            let suggestion =
                if declared.is_empty() { format!("\"{service}:<Operation> <resource>\"") } else { declared.join(", ") };
            return Err(PluginError::CapabilityNotGranted {
                step_id: step_id.to_string(),
                plugin: self.name.clone(),
                interface: interface.clone(),
                service: service.to_string(),
                suggestion,
            });
        }
        Ok(())
    }

    /// Runs one attempt in a fresh sandbox.
    pub async fn run_attempt(
        &self,
        state: SandboxState,
        limits: &AttemptLimits,
        context: super::bindings::StepContext,
    ) -> Result<Result<String, super::bindings::WitError>, super::AttemptError> {
        sandbox::run(&self.pre, state, limits, context).await
    }
}

/// The grant service prefix that governs a `wharf:plugin` interface; `None` for interfaces that
/// need no grant (`log`, `types`).
pub fn service_of(interface: &str) -> Option<&'static str> {
    match interface {
        "ecs" => Some("ecs"),
        "iam" => Some("iam"),
        "secrets" => Some("secretsmanager"),
        "s3" => Some("s3"),
        "ec2" => Some("ec2"),
        "logs" => Some("logs"),
        "sts" => Some("sts"),
        "registry" => Some("registry"),
        _ => None,
    }
}

/// Names of the `wharf:plugin/<name>@<version>` interfaces a component imports.
fn capability_imports(engine: &Engine, component: &Component) -> Vec<String> {
    let prefix = format!("{WIT_PACKAGE}/");
    let mut names: Vec<String> = component
        .component_type()
        .imports(engine)
        .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentInstance(_)))
        .filter_map(|(name, _)| {
            name.strip_prefix(&prefix).map(|rest| rest.split('@').next().unwrap_or(rest).to_string())
        })
        .collect();
    names.sort();
    names
}
