//! Built-in plugins, compiled to components by `build.rs` and embedded in the binary.

include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));

/// Names of the built-in plugins, for validation and hints.
pub fn names() -> Vec<&'static str> {
    EMBEDDED.iter().map(|(name, _)| *name).collect()
}

/// The component bytes of a built-in plugin.
pub fn bytes(name: &str) -> Option<&'static [u8]> {
    EMBEDDED.iter().find(|(n, _)| *n == name).map(|(_, bytes)| *bytes)
}
