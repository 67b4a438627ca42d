//! `wharf plan FILE`: a dry run. Steps run for real in their sandboxes, read-only AWS calls are
//! made, and every mutating call is recorded instead of sent (with placeholder results). The run
//! is journaled in a throwaway state directory, then its calls are printed step by step with the
//! grant each one used.

use super::run::{drive, journal_failure, load_with_params};
use super::terminal::line;
use super::{Cli, ExitCode, Failure, Output};
use crate::capabilities::CallMode;
use crate::journal::{EventKind, LogLevel, SledBackend, StateBackend};
use std::collections::BTreeMap;
use std::path::Path;

pub fn plan(cli: &Cli, file: &Path, params: &[String]) -> Result<ExitCode, Failure> {
    let (workflow, params) = load_with_params(file, params)?;
    let order: Vec<String> = workflow.topo_order().into_iter().map(str::to_string).collect();
    let scratch =
        tempfile::tempdir().map_err(|e| Failure::new(ExitCode::State, format!("cannot create a temp dir: {e}")))?;
    let concurrency = workflow.concurrency as u32;
    // Plans always journal into a throwaway local dir, whatever --state says: nothing is shared.
    let backend = std::sync::Arc::new(SledBackend::new(scratch.path()).map_err(journal_failure)?);
    let outcome = drive(cli, backend, CallMode::Plan, concurrency, |scheduler| async move {
        scheduler.start(workflow, params).await
    })?;

    // Read the calls back from the plan run's journal, grouped by step.
    let backend = SledBackend::new(scratch.path()).map_err(journal_failure)?;
    let journal = backend.open_run(&outcome.run_id).map_err(journal_failure)?;
    let mut calls: BTreeMap<String, Vec<(bool, String)>> = BTreeMap::new();
    // Denials and the log budget's notice (past it, planned calls are not recorded either).
    let mut warnings: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for event in journal.events(None, None).map_err(journal_failure)? {
        let step = event.step_id.unwrap_or_default();
        if event.kind == EventKind::Log(LogLevel::Warn) {
            warnings.entry(step).or_default().push(event.message);
            continue;
        }
        if event.kind != EventKind::Call {
            continue;
        }
        match event.message.strip_prefix("PLAN ") {
            Some(planned) => calls.entry(step).or_default().push((true, planned.trim().to_string())),
            None => calls.entry(step).or_default().push((false, event.message)),
        }
    }

    if cli.output == Output::Json {
        let steps: Vec<_> = order
            .iter()
            .map(|id| {
                let list = calls.get(id).cloned().unwrap_or_default();
                serde_json::json!({
                    "step": id,
                    "would_change": list.iter().filter(|(m, _)| *m).map(|(_, c)| c).collect::<Vec<_>>(),
                    "reads": list.iter().filter(|(m, _)| !*m).map(|(_, c)| c).collect::<Vec<_>>(),
                    "warnings": warnings.get(id).cloned().unwrap_or_default(),
                })
            })
            .collect();
        let failed: Vec<_> = outcome.failed.iter().map(|(id, e)| serde_json::json!({"step": id, "error": e})).collect();
        println!("{}", serde_json::json!({"steps": steps, "failed": failed}));
    } else {
        for id in &order {
            println!("step {id}:");
            let list = calls.get(id).cloned().unwrap_or_default();
            if list.is_empty() {
                println!("  (no AWS calls)");
            }
            for (mutating, call) in list {
                println!("  {} {}", if mutating { "would" } else { "reads" }, line(&call));
            }
            for warning in warnings.get(id).into_iter().flatten() {
                println!("  warning {}", line(warning));
            }
        }
        for (id, e) in &outcome.failed {
            println!("step {id} could not be planned: {} {}", line(&e.code), line(&e.message));
        }
    }
    Ok(if outcome.failed.is_empty() { ExitCode::Success } else { ExitCode::RunFailed })
}
