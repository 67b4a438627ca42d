//! A loaded plugin: compiled once, pre-linked once (`InstancePre`), instantiated per attempt.

use super::bindings::with_parts::exports::wharf::plugin::parts::GuestIndices as PartsIndices;
use super::bindings::{PluginInfo, StepPre};
use super::cache::ComponentCache;
use super::parts::PartRunner;
use super::sandbox::{self, AttemptError, AttemptLimits, Entry, SandboxState};
use crate::grants::GrantSet;
use std::sync::Arc;
use wasmtime::Engine;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker};

/// The WIT package every plugin imports its capabilities from.
pub const WIT_PACKAGE: &str = "wharf:plugin";
/// The version of [`WIT_PACKAGE`] this host is generated from (`wit/<version>/`).
pub const WIT_VERSION: &str = "0.1.4";

/// The versions of [`WIT_PACKAGE`] this host links, as users read them: `wharf:plugin@0.1.x`.
/// Semver, the 0.x way: 0.1.x plugins are compatible with each other, 0.2 or 1.0 are not.
/// wasmtime's linker resolves an import of any compatible version (say `@0.1.5`) to our `@0.1.4`
/// definitions; what a newer patch added and this host lacks fails linking with a hint.
pub fn supported_wit_versions() -> String {
    let (major, minor, _) = parse_version(WIT_VERSION).expect("WIT_VERSION is a version");
    if major == 0 { format!("{WIT_PACKAGE}@0.{minor}.x") } else { format!("{WIT_PACKAGE}@{major}.x") }
}

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
    #[error(
        "plugin `{name}` was built against {WIT_PACKAGE}@{found}, but this wharf supports {supported} only. \
         Rebuild it with the wharf-plugin-sdk that `wharf plugin new` writes (it targets {WIT_PACKAGE}@{WIT_VERSION}), \
         or run it with a wharf that supports {WIT_PACKAGE}@{found}"
    )]
    UnsupportedWitVersion { name: String, found: String, supported: String },
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
    /// Where the `parts` export is, if the plugin has one (`step-with-parts` world).
    parts: Option<PartsIndices>,
}

impl Plugin {
    /// Compiles (or loads from cache), links and describes a component.
    pub async fn load(
        engine: &Engine,
        linker: &Linker<SandboxState>,
        cache: &ComponentCache,
        name: &str,
        bytes: &[u8],
        digest: String,
    ) -> Result<Plugin, PluginError> {
        let component = cache
            .load(engine, bytes, &digest)
            .map_err(|e| PluginError::Invalid { name: name.to_string(), detail: format!("{e:#}") })?;
        let imports = WitImports::of(engine, &component);
        imports.check_version(name)?;
        let capability_imports = imports.interfaces.iter().map(|(i, _)| i.clone()).collect();
        let instance_pre = linker.instantiate_pre(&component).map_err(|e| PluginError::Link {
            name: name.to_string(),
            detail: format!("{e:#}{}", imports.newer_hint()),
        })?;
        // Plugins of the plain `step` world have no `parts` export; they just cannot start parts.
        let parts = PartsIndices::new(&instance_pre).ok();
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
            parts,
        };
        plugin.info = plugin.describe().await?;
        Ok(plugin)
    }

    async fn describe(&self) -> Result<PluginInfo, PluginError> {
        sandbox::describe(&self.pre).await.map_err(|e| PluginError::Describe {
            name: self.name.clone(),
            detail: match e {
                AttemptError::Timeout(timeout) => format!(
                    "it did not return from `describe` within {} and was stopped; `describe` must return \
                     the plugin's name, version and grants at once (is it stuck in a loop or a sleep?)",
                    humantime::format_duration(timeout)
                ),
                other => other.to_string(),
            },
        })
    }

    /// Whether the plugin imports a capability that calls AWS (the registry capability too: it
    /// reads credentials from Secrets Manager or ECR).
    pub fn calls_aws(&self) -> bool {
        self.capability_imports.iter().any(|i| service_of(i).is_some())
    }

    /// Refuses to run a plugin that imports a capability the step has no grant for at all.
    /// `declared` are the plugin's declared grant lines rendered with the step's inputs: the
    /// error suggests them, ready to paste into the workflow.
    pub fn check_imports(&self, step_id: &str, grants: &GrantSet, declared: &[String]) -> Result<(), PluginError> {
        for interface in &self.capability_imports {
            let Some(service) = service_of(interface) else { continue };
            if grants.covers_service(service) {
                continue;
            }
            let declared: Vec<String> =
                declared.iter().filter(|g| g.starts_with(&format!("{service}:"))).map(|g| format!("\"{g}\"")).collect();
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

    /// Runs one attempt in a fresh sandbox; its parts (if it starts any) in sandboxes of their own.
    pub async fn run_attempt(
        self: &Arc<Self>,
        mut state: SandboxState,
        limits: &AttemptLimits,
        context: super::bindings::StepContext,
    ) -> Result<Result<String, super::bindings::WitError>, AttemptError> {
        state.parts = Some(PartRunner {
            plugin: self.clone(),
            budget: state.memory_budget(),
            limits: *limits,
            context: context.clone(),
            deadline: std::time::Instant::now() + limits.timeout,
        });
        sandbox::run(Entry::Run(&self.pre, context), state, limits).await
    }

    pub(crate) fn pre(&self) -> &StepPre<SandboxState> {
        &self.pre
    }

    pub(crate) fn parts_indices(&self) -> Option<&PartsIndices> {
        self.parts.as_ref()
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

/// What a component imports: `wharf:plugin` interfaces with their versions, and everything else
/// (WASI). Read from the component's type, before linking.
#[derive(Debug, Clone, Default)]
pub struct WitImports {
    /// `(interface, version)` of each `wharf:plugin/<interface>@<version>` import, sorted.
    pub interfaces: Vec<(String, String)>,
    /// Other imported instances, e.g. `wasi:io/streams@0.2.6`.
    pub other: Vec<String>,
}

impl WitImports {
    pub fn of(engine: &Engine, component: &Component) -> Self {
        let prefix = format!("{WIT_PACKAGE}/");
        let mut imports = WitImports::default();
        for (name, item) in component.component_type().imports(engine) {
            if !matches!(item.ty, ComponentItem::ComponentInstance(_)) {
                continue;
            }
            match name.strip_prefix(&prefix) {
                Some(rest) => {
                    let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
                    imports.interfaces.push((interface.to_string(), version.to_string()));
                }
                None => imports.other.push(name.to_string()),
            }
        }
        imports.interfaces.sort();
        imports.other.sort();
        imports
    }

    /// The `wharf:plugin` versions imported (usually one), e.g. `["0.1.0"]`.
    pub fn versions(&self) -> Vec<&str> {
        let mut versions: Vec<&str> = self.interfaces.iter().map(|(_, v)| v.as_str()).collect();
        versions.sort();
        versions.dedup();
        versions
    }

    /// Refuses imports of a `wharf:plugin` version this host does not link (checked before
    /// linking, so the user reads a version message instead of a missing-import error).
    pub fn check_version(&self, name: &str) -> Result<(), PluginError> {
        let host = parse_version(WIT_VERSION).expect("WIT_VERSION is a version");
        for found in self.versions() {
            let compatible = match parse_version(found) {
                Some((0, minor, _)) => host.0 == 0 && minor == host.1,
                Some((major, _, _)) => major == host.0,
                None => false,
            };
            if !compatible {
                let found = if found.is_empty() { "(no version)" } else { found };
                return Err(PluginError::UnsupportedWitVersion {
                    name: name.to_string(),
                    found: found.to_string(),
                    supported: supported_wit_versions(),
                });
            }
        }
        Ok(())
    }

    /// A hint for link errors of plugins built against a newer compatible version than ours.
    fn newer_hint(&self) -> String {
        let host = parse_version(WIT_VERSION);
        match self.versions().into_iter().find(|v| parse_version(v) > host) {
            Some(v) => format!(
                " (the plugin targets {WIT_PACKAGE}@{v}, newer than this wharf's {WIT_VERSION}: it may use \
                 capabilities added since; upgrade wharf)"
            ),
            None => String::new(),
        }
    }
}

/// `major.minor.patch`, ignoring pre-release and build suffixes.
fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let core = v.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    let version = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imports(versions: &[&str]) -> WitImports {
        WitImports { interfaces: versions.iter().map(|v| ("log".to_string(), v.to_string())).collect(), other: vec![] }
    }

    #[test]
    fn same_minor_of_0x_is_supported_and_other_versions_are_refused() {
        assert!(imports(&["0.1.0"]).check_version("p").is_ok());
        assert!(imports(&["0.1.7"]).check_version("p").is_ok());
        assert!(imports(&[]).check_version("p").is_ok());
        for bad in ["0.2.0", "1.0.0", "0.0.9", "", "one"] {
            let err = imports(&[bad]).check_version("p").unwrap_err().to_string();
            assert!(err.contains("this wharf supports wharf:plugin@0.1.x only"), "{bad}: {err}");
        }
        assert_eq!(parse_version("1.2.3-rc.1"), Some((1, 2, 3)));
        assert!(imports(&["0.1.9"]).newer_hint().contains("upgrade wharf"));
        assert!(imports(&["0.1.0"]).newer_hint().is_empty());
    }
}
