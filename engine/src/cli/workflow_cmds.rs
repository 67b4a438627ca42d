//! `wharf validate`, `wharf graph`, `wharf schema`: commands about workflow files.

use super::run::workflow_failure;
use super::{Cli, ExitCode, Failure, GraphFormat, Output};
use crate::workflow::{Workflow, graph};
use std::path::Path;

pub fn validate(cli: &Cli, file: &Path) -> Result<ExitCode, Failure> {
    let workflow = Workflow::load(file, &crate::builtin::names()).map_err(workflow_failure)?;
    if cli.output == Output::Json {
        let steps: Vec<_> = workflow.steps.iter().map(|s| serde_json::json!({"id": s.id, "needs": s.needs})).collect();
        println!("{}", serde_json::json!({"valid": true, "name": workflow.name, "steps": steps}));
    } else {
        println!("{}: valid workflow `{}` with {} steps", file.display(), workflow.name, workflow.steps.len());
    }
    Ok(ExitCode::Success)
}

pub fn graph(file: &Path, format: GraphFormat) -> Result<ExitCode, Failure> {
    let workflow = Workflow::load(file, &crate::builtin::names()).map_err(workflow_failure)?;
    let text = match format {
        GraphFormat::Mermaid => graph::mermaid(&workflow),
        GraphFormat::Dot => graph::dot(&workflow),
    };
    print!("{text}");
    Ok(ExitCode::Success)
}

pub fn schema() -> Result<ExitCode, Failure> {
    println!("{}", serde_json::to_string_pretty(&crate::workflow::json_schema()).expect("JSON values serialize"));
    Ok(ExitCode::Success)
}
