//! `wharf status`, `wharf runs`, `wharf logs`: reading runs, including ones another process is
//! driving right now (they are read from the run's snapshot, not its locked database).

use super::progress::kind_label;
use super::run::journal_failure;
use super::terminal::line;
use super::{Cli, ExitCode, Failure, Output, state};
use crate::journal::RunSnapshot;

pub fn status(cli: &Cli, run_id: Option<&str>) -> Result<ExitCode, Failure> {
    let (backend, spec) = state::backend(cli)?;
    let snapshot = match run_id {
        Some(id) => backend.read_run(id).map_err(journal_failure)?,
        None => backend.list_runs().map_err(journal_failure)?.into_iter().next().ok_or_else(|| {
            Failure::new(
                ExitCode::State,
                format!("no runs in {}; start one with `wharf run FILE`", state::describe(&spec)),
            )
        })?,
    };
    if cli.output == Output::Json {
        let mut json = serde_json::to_value(&snapshot).expect("snapshots serialize");
        json["effective_status"] = serde_json::to_value(snapshot.effective_status()).expect("statuses serialize");
        println!("{}", serde_json::to_string_pretty(&json).expect("JSON values serialize"));
        return Ok(ExitCode::Success);
    }
    print_status(&snapshot);
    Ok(ExitCode::Success)
}

fn print_status(s: &RunSnapshot) {
    println!("run {}  workflow {}  status {}", s.run.id, s.run.workflow_name, s.effective_status());
    if let Some(owner) = &s.held_by {
        let lease = owner.lease_expires_at_ms.map(|t| format!(", lease until {}", crate::journal::format_ms(t)));
        println!("driven by pid {} on {} ({}{})", owner.pid, owner.hostname, owner.command, lease.unwrap_or_default());
    }
    for step in &s.steps {
        let took = step
            .last
            .finished_at_ms
            .map(|f| format!("{} ms", f.saturating_sub(step.last.started_at_ms)))
            .unwrap_or_default();
        let status = format!("{:?}", step.last.status).to_lowercase();
        println!("  {:<20} {:<10} attempts {:<3} {}", step.step_id, status, step.attempts, took);
        if let Some(e) = &step.last.error {
            println!("      {} {}: {}", line(&e.kind), line(&e.code), line(&e.message));
        }
    }
    let live: Vec<_> = s.resources.iter().filter(|r| r.deleted_at_ms.is_none()).collect();
    if !live.is_empty() {
        println!("resources created by this run:");
        for r in live {
            println!("  {:<22} {}  (step {})", line(&r.kind), line(&r.id), r.step_id);
        }
    }
    let deleted = s.resources.iter().filter(|r| r.deleted_at_ms.is_some()).count();
    if deleted > 0 {
        println!("{deleted} of {} resources this run created are deleted", s.resources.len());
    }
    if let Some(error) = &s.run.error {
        println!("error: {}", line(error));
    }
}

pub fn runs(cli: &Cli) -> Result<ExitCode, Failure> {
    let (backend, spec) = state::backend(cli)?;
    let (runs, broken) = backend.scan_runs().map_err(journal_failure)?;
    // One damaged run must not hide the others, nor be hidden itself (docs/state.md: damaged state).
    for e in &broken {
        eprintln!("warning: {e}");
    }
    if cli.output == Output::Json {
        let list: Vec<_> = runs
            .iter()
            .map(|s| serde_json::json!({"id": s.run.id, "workflow": s.run.workflow_name, "status": s.effective_status(), "created_at_ms": s.run.created_at_ms}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&list).expect("JSON values serialize"));
        return Ok(ExitCode::Success);
    }
    if runs.is_empty() {
        println!("no runs in {}", state::describe(&spec));
    }
    for s in runs {
        println!("{}  {:<12} {}", s.run.id, s.effective_status(), s.run.workflow_name);
    }
    Ok(ExitCode::Success)
}

pub fn logs(cli: &Cli, run_id: &str, step: Option<&str>) -> Result<ExitCode, Failure> {
    let (backend, _) = state::backend(cli)?;
    // Readable while another process drives the run (`wharf logs` during a deployment).
    let events = backend.read_events(run_id, step).map_err(journal_failure)?;
    if let Some(step) = step
        && events.is_empty()
    {
        let known: Vec<String> =
            backend.read_run(run_id).map_err(journal_failure)?.steps.into_iter().map(|s| s.step_id).collect();
        return Err(Failure::new(
            ExitCode::InvalidInput,
            format!("run {run_id} has no events for step `{step}`; its steps are: {}", known.join(", ")),
        ));
    }
    if cli.output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&events).expect("events serialize"));
        return Ok(ExitCode::Success);
    }
    for e in events {
        let step = e.step_id.as_deref().unwrap_or("run");
        println!("{:>5} {step:<18} {:<9} {}", e.seq, kind_label(&e.kind), line(&e.message));
    }
    Ok(ExitCode::Success)
}
