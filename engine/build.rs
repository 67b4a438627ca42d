//! Builds the built-in step plugins to components and embeds them in the `wharf` binary, so one
//! installed binary runs the built-in workflows with no other files.

use std::path::Path;

/// Built-in plugins: (plugin name used in workflows, cargo package).
const BUILTINS: &[(&str, &str)] = &[
    ("create-cluster", "create-cluster"),
    ("create-roles", "create-roles"),
    ("store-secret", "store-secret"),
    ("register-taskdef", "register-taskdef"),
    ("create-service", "create-service"),
    ("verify-s3", "verify-s3"),
    ("teardown", "teardown"),
];

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let root = Path::new(&manifest_dir).parent().unwrap();
    wharf_plugin_build::rerun_if_changed(&[&root.join("plugins"), &root.join("wit")]);

    println!("cargo:rerun-if-env-changed=WHARF_SKIP_PLUGINS");
    // `WHARF_SKIP_PLUGINS=1 cargo check -p wharf` type-checks the host without building plugins
    // (the binary then has no built-in plugins; never ship such a build).
    let skip = std::env::var_os("WHARF_SKIP_PLUGINS").is_some();
    let packages: Vec<&str> = if skip { vec![] } else { BUILTINS.iter().map(|(_, p)| *p).collect() };
    let built = if skip { vec![] } else { wharf_plugin_build::build_components(root, &packages) };

    let mut code = String::from("/// Built-in plugins embedded at build time: (name, component bytes).\n");
    code.push_str("pub static EMBEDDED: &[(&str, &[u8])] = &[\n");
    for ((name, _), b) in BUILTINS.iter().zip(&built) {
        code.push_str(&format!("    ({name:?}, include_bytes!({:?})),\n", b.path.display().to_string()));
    }
    code.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("builtin_plugins.rs");
    std::fs::write(out, code).unwrap();
}
