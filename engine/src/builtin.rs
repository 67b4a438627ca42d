//! Built-in plugins, compiled to components by `build.rs` and embedded in the binary.

include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));

/// Names of the built-in plugins, for validation and hints.
pub fn names() -> Vec<&'static str> {
    EMBEDDED.iter().map(|(name, ..)| *name).collect()
}

/// The component bytes of a built-in plugin, and their sha256 (hex), computed at build time.
pub fn get(name: &str) -> Option<(&'static [u8], &'static str)> {
    EMBEDDED.iter().find(|(n, ..)| *n == name).map(|(_, bytes, digest)| (*bytes, *digest))
}

#[cfg(test)]
mod tests {
    #[test]
    fn build_time_digests_are_the_digests_of_the_embedded_bytes() {
        for (name, bytes, digest) in super::EMBEDDED {
            assert_eq!(crate::host::cache::digest(bytes), *digest, "{name}");
        }
    }
}
