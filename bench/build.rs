//! Builds the no-op guest (bench/guests/noop) to a component the engine benchmark loads by path.

use std::path::Path;

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let here = Path::new(&manifest_dir);
    let root = here.parent().unwrap();
    wharf_plugin_build::rerun_if_changed(&[&here.join("guests"), &root.join("plugins/sdk"), &root.join("wit")]);
    let built = wharf_plugin_build::build_components(root, &["bench-noop"]);
    let code = format!("pub const NOOP: &str = {:?};\n", built[0].path.display().to_string());
    std::fs::write(Path::new(&std::env::var("OUT_DIR").unwrap()).join("guests.rs"), code).unwrap();
}
