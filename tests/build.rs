//! Builds the test guest plugins (tests/guests/*) to components for the tests to load by path.

use std::path::Path;

const GUESTS: &[(&str, &str)] = &[
    ("TESTKIT", "guest-testkit"),
    ("ECS_CALLER", "guest-ecs-caller"),
    ("HOSTILE", "guest-hostile"),
    ("ESCALATE", "guest-escalate"),
    ("SLOW_DESCRIBE", "guest-slow-describe"),
    ("WRONG_VERSION", "guest-wrong-version"),
    // A built-in plugin loaded by path, as a custom plugin: it then gets only the step's grants.
    ("BUILD_PUSH", "wharf-plugin-build-push"),
    // The example plugin of docs/writing-plugins.md.
    ("LEDGER_AUDIT", "ledger-audit"),
];

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let here = Path::new(&manifest_dir);
    let root = here.parent().unwrap();
    wharf_plugin_build::rerun_if_changed(&[
        &here.join("guests"),
        &root.join("plugins/sdk"),
        &root.join("wit"),
        &root.join("examples/plugins"),
        &root.join("plugins/build-push"),
    ]);
    let packages: Vec<&str> = GUESTS.iter().map(|(_, p)| *p).collect();
    let built = wharf_plugin_build::build_components(root, &packages);
    let mut code = String::new();
    for ((konst, _), b) in GUESTS.iter().zip(&built) {
        code.push_str(&format!("pub const {konst}: &str = {:?};\n", b.path.display().to_string()));
    }
    std::fs::write(Path::new(&std::env::var("OUT_DIR").unwrap()).join("guests.rs"), code).unwrap();
}
