//! Compiles step-plugin crates to `wasm32-wasip2` components from a build script.
//!
//! A build script cannot ask its own cargo for artifacts of another target, so this runs a nested
//! `cargo build` into a separate target directory (sharing the outer one would deadlock on its
//! lock). wasmtime's own test-program crate does the same.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The cargo profile plugins are built with (see the workspace `Cargo.toml`).
pub const PROFILE: &str = "plugin";
/// The target every plugin is compiled for; its output is already a component.
pub const TARGET: &str = "wasm32-wasip2";

/// One built component: the package it came from and where its `.wasm` file is.
#[derive(Debug, Clone)]
pub struct Built {
    pub package: String,
    pub path: PathBuf,
}

/// Builds `packages` (cargo package names in the workspace at `workspace_root`) and returns the
/// paths of their components. Panics with a message saying what to do when the build fails, which
/// is what a build script should do.
pub fn build_components(workspace_root: &Path, packages: &[&str]) -> Vec<Built> {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("run from a build script"));
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out; keep wasm output beside the host's.
    let target_dir = out_dir.ancestors().nth(4).expect("OUT_DIR has the usual shape").join("wasm");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());

    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root)
        .args(["build", "--quiet", "--profile", PROFILE, "--target", TARGET, "--target-dir"])
        .arg(&target_dir);
    for p in packages {
        cmd.args(["-p", p]);
    }
    // The outer build's flags are for the host target; they must not leak into the wasm build.
    for var in
        ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_TARGET_DIR", "CARGO_BUILD_TARGET", "CARGO_BUILD_RUSTFLAGS"]
    {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("could not start cargo for the wasm plugins");
    if !status.success() {
        panic!(
            "building the step plugins for {TARGET} failed (see above). If the target is missing, run \
             `rustup target add {TARGET}`."
        );
    }
    packages
        .iter()
        .map(|p| Built {
            package: p.to_string(),
            path: target_dir.join(TARGET).join(PROFILE).join(format!("{}.wasm", p.replace('-', "_"))),
        })
        .collect()
}

/// Tells cargo to rerun the build script when anything under these paths changes.
pub fn rerun_if_changed(paths: &[&Path]) {
    for p in paths {
        println!("cargo:rerun-if-changed={}", p.display());
    }
}
