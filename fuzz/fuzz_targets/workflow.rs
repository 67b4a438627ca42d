//! Any bytes as a workflow file: parsing and validation must return a workflow or diagnostics,
//! never panic; everything done with a valid workflow (order, graphs, params, hashes) must not
//! panic either, and diagnostics must render.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use wharf_fuzz::workflow::{Workflow, graph};

const BUILTINS: &[&str] =
    &["create-cluster", "create-roles", "store-secret", "register-taskdef", "create-service", "verify-s3", "teardown"];

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else { return };
    // A directory that does not exist: path plugins are reported missing, nothing is read.
    match Workflow::parse(Path::new("/nonexistent/fuzz.toml"), source, BUILTINS) {
        Ok(wf) => {
            assert_eq!(wf.topo_order().len(), wf.steps.len());
            let _ = graph::mermaid(&wf);
            let _ = graph::dot(&wf);
            let _ = wf.resolve_params(&[]);
        }
        Err(e) => {
            let text = e.to_string();
            assert!(text.starts_with("error: "), "{text}");
        }
    }
});
