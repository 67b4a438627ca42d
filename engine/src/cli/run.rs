//! `wharf run` and `wharf resume`.

use super::progress::Progress;
use super::terminal::line;
use super::{Cli, ExitCode, Failure, Output, state};
use crate::capabilities::CallMode;
use crate::capabilities::registry::LayerIndex;
use crate::host::Host;
use crate::journal::{JournalError, RunStatus, StateBackend};
use crate::scheduler::{
    ResumeOptions, RunError, RunOutcome, Scheduler, TEARDOWN_STEP, TeardownOptions, is_teardown_step,
};
use crate::workflow::{Workflow, WorkflowError};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Steps a teardown runs at once (its groups, see `scheduler::teardown`).
const TEARDOWN_CONCURRENCY: u32 = 4;

/// `wharf run`; with `then_teardown`, `wharf run --teardown`: the run, then its teardown in the
/// same process (one engine, one compiled-plugin load), whatever the run's outcome.
pub fn run(
    cli: &Cli,
    file: &Path,
    params: &[String],
    then_teardown: Option<TeardownOptions>,
) -> Result<ExitCode, Failure> {
    let (workflow, params) = load_with_params(file, params)?;
    let concurrency = workflow.concurrency as u32;
    let spec = state::spec_for(cli, &workflow)?;
    let backend = state::open(cli, &spec)?;
    let Some(options) = then_teardown else {
        return drive(cli, backend, CallMode::Apply, concurrency, |scheduler| async move {
            scheduler.start(workflow, params).await
        })
        .map(|outcome| report(cli, &outcome, &spec));
    };
    let concurrency = concurrency.max(TEARDOWN_CONCURRENCY);
    let (outcome, teardown) = drive(cli, backend, CallMode::Apply, concurrency, |scheduler| async move {
        scheduler.start_then_teardown(workflow, params, &options).await
    })?;
    match teardown {
        Ok(teardown) => {
            if cli.output == Output::Json {
                let mut json = outcome_json(&outcome);
                json["teardown"] = outcome_json(&teardown);
                println!("{}", serde_json::to_string_pretty(&json).expect("JSON values serialize"));
            } else {
                // No "resume" hint for a failed run: what it created is being deleted.
                print_text(&outcome, false, "");
                print_text(&teardown, true, &state_flag(cli, &spec));
            }
            let both = outcome.status == RunStatus::Succeeded && teardown.status == RunStatus::Succeeded;
            Ok(if both { ExitCode::Success } else { ExitCode::RunFailed })
        }
        Err(e) => {
            print_outcome(cli, &outcome, &spec);
            let mut failure = run_failure(e);
            failure.message = format!(
                "the teardown of run {id} could not run: {}\nfix the cause, then: wharf {}teardown {id}",
                failure.message,
                state_flag(cli, &spec),
                id = outcome.run_id
            );
            Err(failure)
        }
    }
}

/// Loads a workflow and type-checks `NAME=VALUE` parameters against it.
pub(super) fn load_with_params(file: &Path, params: &[String]) -> Result<(Workflow, BTreeMap<String, Value>), Failure> {
    // Absolute, so plugin paths resolve the same way now and when the run is resumed elsewhere.
    let file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let workflow = Workflow::load(&file, &crate::builtin::names()).map_err(workflow_failure)?;
    let given = params
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| Failure::new(ExitCode::InvalidInput, format!("--param `{p}` must be NAME=VALUE")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let params = workflow.resolve_params(&given).map_err(workflow_failure)?;
    Ok((workflow, params))
}

pub fn teardown(cli: &Cli, run_id: &str, options: TeardownOptions) -> Result<ExitCode, Failure> {
    let (backend, spec) = state::backend(cli)?;
    drive(cli, backend, CallMode::Apply, TEARDOWN_CONCURRENCY, |scheduler| async move {
        scheduler.teardown(run_id, &options).await
    })
    .map(|outcome| report(cli, &outcome, &spec))
}

pub fn resume(cli: &Cli, run_id: &str, accept_changes: bool) -> Result<ExitCode, Failure> {
    let options = ResumeOptions { accept_changes };
    let (backend, spec) = state::backend(cli)?;
    drive(cli, backend, CallMode::Apply, 16, |scheduler| async move { scheduler.resume(run_id, &options).await })
        .map(|outcome| report(cli, &outcome, &spec))
}

/// Sets up the runtime, host, state and progress view, then runs `f`.
pub(super) fn drive<F, Fut, T>(
    cli: &Cli,
    backend: Arc<dyn StateBackend>,
    mode: CallMode,
    concurrency: u32,
    f: F,
) -> Result<T, Failure>
where
    F: FnOnce(Scheduler) -> Fut,
    Fut: Future<Output = Result<T, RunError>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(ExitCode::State, format!("cannot start the async runtime: {e}")))?;
    let host = Host::new(cli.component_cache(), concurrency)
        .map_err(|e| Failure::new(ExitCode::Plugin, format!("cannot start the WebAssembly engine: {e:#}")))?;
    let progress = Arc::new(Progress::new(cli.output == Output::Json));
    let mut scheduler = Scheduler::new(Arc::new(host), backend, progress.clone());
    scheduler.mode = mode;
    scheduler.layers = Arc::new(LayerIndex::in_cache_dir(&cli.cache_dir()));
    let result = runtime.block_on(f(scheduler));
    progress.finish();
    result.map_err(run_failure)
}

/// Prints a drive's outcome and returns the exit code it means.
fn report(cli: &Cli, outcome: &RunOutcome, spec: &state::Spec) -> ExitCode {
    print_outcome(cli, outcome, spec);
    if outcome.status == RunStatus::Succeeded { ExitCode::Success } else { ExitCode::RunFailed }
}

fn print_outcome(cli: &Cli, outcome: &RunOutcome, spec: &state::Spec) {
    if cli.output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&outcome_json(outcome)).expect("JSON values serialize"));
        return;
    }
    print_text(outcome, true, &state_flag(cli, spec));
}

fn outcome_json(outcome: &RunOutcome) -> Value {
    serde_json::json!({
        "run_id": outcome.run_id,
        "status": outcome.status,
        "failed": outcome.failed.iter().map(|(id, e)| serde_json::json!({"step": id, "error": e})).collect::<Vec<_>>(),
        "blocked": outcome.blocked,
        "outputs": outcome.outputs,
    })
}

/// The outcome for a person; on failure, with `hint`, the command that continues it.
fn print_text(outcome: &RunOutcome, hint: bool, state_flag: &str) {
    let teardown =
        outcome.outputs.contains_key(TEARDOWN_STEP) || outcome.failed.iter().any(|(id, _)| is_teardown_step(id));
    let what = if teardown { "teardown of run" } else { "run" };
    match outcome.status {
        RunStatus::Succeeded => println!("{what} {} succeeded", outcome.run_id),
        _ => {
            println!("{what} {} failed", outcome.run_id);
            for (id, e) in &outcome.failed {
                println!("  step `{id}` failed ({} {}): {}", line(&e.kind), line(&e.code), line(&e.message));
            }
            if !outcome.blocked.is_empty() {
                println!("  not run: {}", outcome.blocked.join(", "));
            }
            if hint {
                let again = if teardown { "teardown" } else { "resume" };
                println!("fix the cause, then: wharf {state_flag}{again} {}", outcome.run_id);
            }
        }
    }
}

/// `--state LOC ` when the run's state came from the workflow's `[state]`: such a run is only
/// found again with it.
fn state_flag(cli: &Cli, spec: &state::Spec) -> String {
    match spec {
        state::Spec::S3(loc) if cli.state.is_none() => format!("--state {loc} "),
        _ => String::new(),
    }
}

pub(super) fn workflow_failure(e: WorkflowError) -> Failure {
    match e {
        WorkflowError::Io { .. } => Failure::new(ExitCode::InvalidInput, e),
        other => Failure::new(ExitCode::InvalidInput, other),
    }
}

pub(super) fn journal_failure(e: JournalError) -> Failure {
    Failure::new(ExitCode::State, e)
}

fn run_failure(e: RunError) -> Failure {
    match e {
        RunError::Journal(j) => journal_failure(j),
        RunError::Workflow(w) => workflow_failure(w),
        RunError::Plugin(p) => Failure::new(ExitCode::Plugin, p),
        e @ RunError::ChangedSinceStart { .. } => Failure::new(ExitCode::WorkflowChanged, e),
        e @ (RunError::AlreadySucceeded(_) | RunError::AwsSettings(_)) => Failure::new(ExitCode::InvalidInput, e),
    }
}
