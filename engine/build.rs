//! Builds the built-in step plugins to components and embeds them in the `wharf` binary, so one
//! installed binary runs the built-in workflows with no other files.

use sha2::{Digest, Sha256};
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
    ("build-push", "wharf-plugin-build-push"),
];

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let root = Path::new(&manifest_dir).parent().unwrap();
    wharf_plugin_build::rerun_if_changed(&[&root.join("plugins"), &root.join("wit")]);
    // The plugins' profile (`[profile.plugin]`, per-package opt-levels) and workspace dependencies live here.
    println!("cargo:rerun-if-changed={}", root.join("Cargo.toml").display());

    println!("cargo:rerun-if-env-changed=WHARF_SKIP_PLUGINS");
    // `WHARF_SKIP_PLUGINS=1 cargo check -p wharf` type-checks the host without building plugins
    // (the binary then has no built-in plugins; never ship such a build).
    let skip = std::env::var_os("WHARF_SKIP_PLUGINS").is_some();
    let packages: Vec<&str> = if skip { vec![] } else { BUILTINS.iter().map(|(_, p)| *p).collect() };
    let built = if skip { vec![] } else { wharf_plugin_build::build_components(root, &packages) };

    let mut code =
        String::from("/// Built-in plugins embedded at build time: (name, component bytes, their sha256).\n");
    code.push_str("pub static EMBEDDED: &[(&str, &[u8], &str)] = &[\n");
    for ((name, _), b) in BUILTINS.iter().zip(&built) {
        // Hashed here, not by every process that loads them (5 MB of hashing per run otherwise).
        let bytes = std::fs::read(&b.path).unwrap();
        let digest: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        code.push_str(&format!("    ({name:?}, include_bytes!({:?}), {digest:?}),\n", b.path.display().to_string()));
    }
    code.push_str("];\n");
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::write(out_dir.join("builtin_plugins.rs"), code).unwrap();
    embed_sdk(root, &out_dir);
}

/// Embeds the plugin SDK and the WIT package for `wharf plugin new`, which writes them into a new
/// plugin project (the SDK is not on crates.io). The copy is made standalone: its manifest gets
/// the workspace-inherited values spelled out and its bindings read `wit/` next to it.
fn embed_sdk(root: &Path, out_dir: &Path) {
    let sdk = root.join("plugins/sdk");
    let mut files: Vec<(String, std::path::PathBuf)> = Vec::new();
    std::fs::write(out_dir.join("sdk-Cargo.toml"), standalone_manifest(root, &sdk)).unwrap();
    files.push(("Cargo.toml".into(), out_dir.join("sdk-Cargo.toml")));
    for entry in sorted_dir(&sdk.join("src")) {
        let name = entry.file_name().unwrap().to_str().unwrap().to_string();
        if name == "lib.rs" {
            let text = std::fs::read_to_string(&entry).unwrap();
            let from = format!("path: \"../../wit/{WIT_VERSION}\"");
            assert!(text.contains(&from), "plugins/sdk/src/lib.rs must generate its bindings from {from}");
            std::fs::write(out_dir.join("sdk-lib.rs"), text.replace(&from, "path: \"wit\"")).unwrap();
            files.push(("src/lib.rs".into(), out_dir.join("sdk-lib.rs")));
        } else {
            files.push((format!("src/{name}"), entry));
        }
    }
    for entry in sorted_dir(&root.join("wit").join(WIT_VERSION)) {
        files.push((format!("wit/{}", entry.file_name().unwrap().to_str().unwrap()), entry));
    }
    let mut code =
        String::from("/// The plugin SDK as `wharf plugin new` writes it: (path in the SDK dir, contents).\n");
    code.push_str("pub static SDK_FILES: &[(&str, &str)] = &[\n");
    for (name, path) in files {
        code.push_str(&format!("    ({name:?}, include_str!({:?})),\n", path.display().to_string()));
    }
    code.push_str("];\n");
    std::fs::write(out_dir.join("sdk_files.rs"), code).unwrap();
}

/// The WIT version the SDK and host are generated from (`wit/<major.minor>/`, one folder per compatible line).
const WIT_VERSION: &str = "0.1";

fn sorted_dir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut entries: Vec<_> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    entries.sort();
    entries
}

/// The SDK's Cargo.toml with `x.workspace = true` replaced by the workspace's values.
fn standalone_manifest(root: &Path, sdk: &Path) -> String {
    let read = |p: &Path| std::fs::read_to_string(p).unwrap().parse::<toml::Table>().unwrap();
    let workspace = read(&root.join("Cargo.toml"))["workspace"].as_table().unwrap().clone();
    let mut manifest = read(&sdk.join("Cargo.toml"));
    let inherit = |section: &mut toml::Table, from: &toml::Table| {
        for (key, value) in section.iter_mut() {
            let Some(table) = value.as_table_mut() else { continue };
            if table.remove("workspace").is_none() {
                continue;
            }
            let inherited = from.get(key).unwrap_or_else(|| panic!("workspace has no `{key}`")).clone();
            match inherited {
                toml::Value::Table(mut spec) => {
                    // Keys given next to `workspace = true` (e.g. extra features) are added.
                    for (k, v) in table.iter() {
                        spec.insert(k.clone(), v.clone());
                    }
                    *value = toml::Value::Table(spec);
                }
                toml::Value::String(version) if table.is_empty() => *value = toml::Value::String(version),
                other => *value = other,
            }
        }
    };
    inherit(manifest["package"].as_table_mut().unwrap(), workspace["package"].as_table().unwrap());
    let deps = workspace["dependencies"].as_table().unwrap();
    let inherit_sections = |table: &mut toml::Table| {
        for section in ["dependencies", "dev-dependencies"] {
            if let Some(section) = table.get_mut(section).and_then(|d| d.as_table_mut()) {
                inherit(section, deps);
            }
        }
    };
    inherit_sections(&mut manifest);
    // `[target.'cfg(...)'.dependencies]` too.
    for (_, target) in manifest.get_mut("target").and_then(|t| t.as_table_mut()).into_iter().flatten() {
        if let Some(target) = target.as_table_mut() {
            inherit_sections(target);
        }
    }
    // `[package]` first, as people write it (toml tables are sorted otherwise).
    let package = manifest.remove("package").unwrap();
    let package = toml::Table::from_iter([("package".to_string(), package)]);
    format!(
        "# The wharf plugin SDK, written here by `wharf plugin new` (it is not published on crates.io).\n\
         # Replace this directory with a newer copy from a newer wharf to upgrade.\n{package}\n{manifest}"
    )
}
