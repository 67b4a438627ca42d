//! `wharf teardown RUN`: the `teardown` plugin run as one more step of RUN itself, so it reads
//! that run's ledger, is journaled with it, and is resumable like any step (running it again
//! continues where it stopped: what was deleted is marked in the ledger).

use super::step::{self, StepOutcome};
use super::{RunError, RunOutcome, Scheduler, recorded_progress};
use crate::journal::{EventKind, RunStatus};
use crate::workflow::{PluginRef, RetryPolicy, Step, Workflow};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// The id of the teardown step in a run's journal. Workflow step ids cannot start with `_`, so
/// it never collides with one.
pub const TEARDOWN_STEP: &str = "_teardown";

/// What to keep and how long to wait.
#[derive(Debug, Clone)]
pub struct TeardownOptions {
    /// Recovery window for deleted secrets (7-30 days); `None` deletes them at once.
    pub secret_recovery_days: Option<u32>,
    pub keep_log_groups: bool,
    /// Also delete the images the run pushed (kept by default).
    pub delete_images: bool,
    /// How long slow deletions (draining services) may take.
    pub timeout: Duration,
}

impl Default for TeardownOptions {
    fn default() -> Self {
        TeardownOptions {
            secret_recovery_days: None,
            keep_log_groups: false,
            delete_images: false,
            timeout: Duration::from_secs(600),
        }
    }
}

impl Scheduler {
    /// Deletes everything run `run_id` created, in reverse dependency order.
    pub async fn teardown(&self, run_id: &str, options: &TeardownOptions) -> Result<RunOutcome, RunError> {
        let journal = self.backend.open_run(run_id)?;
        let run = journal.run();
        let recorded =
            Workflow::parse(std::path::Path::new(&run.workflow_path), &run.workflow_source, &crate::builtin::names())?;
        let plugin = self.host.plugin(&PluginRef::Builtin("teardown".into())).await?;
        let step = Step {
            id: TEARDOWN_STEP.into(),
            plugin: PluginRef::Builtin("teardown".into()),
            needs: vec![],
            with: json!({
                "secret_recovery_days": options.secret_recovery_days,
                "keep_log_groups": options.keep_log_groups,
                "delete_images": options.delete_images,
                "timeout_secs": options.timeout.as_secs(),
            }),
            grants: vec![],
            // The plugin stops waiting at its own deadline; this is the backstop.
            timeout: options.timeout + Duration::from_secs(60),
            retry: RetryPolicy {
                max_attempts: 3,
                initial_backoff: Duration::from_secs(5),
                max_backoff: Duration::from_secs(30),
            },
            memory_limit: 64 << 20,
            definition_hash: String::new(),
        };
        let workflow = Arc::new(Workflow { steps: vec![step], ..recorded });
        let plugins = HashMap::from([(TEARDOWN_STEP.to_string(), plugin)]);

        let events = crate::events::EventSink::new(journal.clone(), self.observer.clone());
        events.emit(None, EventKind::RunResumed, format!("teardown started by pid {}", std::process::id()))?;
        let (_, prior) = recorded_progress(journal.as_ref(), &BTreeSet::new())?;
        let ctx = self.context(journal.clone(), events.clone(), workflow, run.params.clone(), plugins)?;
        let prior = prior.get(TEARDOWN_STEP).copied().unwrap_or_default();
        let outcome = step::run_step(ctx, TEARDOWN_STEP.into(), prior, BTreeMap::new()).await;

        let (status, failed, outputs) = match outcome {
            StepOutcome::Succeeded(out) => {
                (RunStatus::Succeeded, vec![], BTreeMap::from([(TEARDOWN_STEP.to_string(), out)]))
            }
            StepOutcome::Failed(e) => (RunStatus::Failed, vec![(TEARDOWN_STEP.to_string(), e)], BTreeMap::new()),
        };
        let message =
            if failed.is_empty() { "teardown finished".to_string() } else { "teardown incomplete".to_string() };
        events.emit(None, EventKind::RunFinished, message)?;
        journal.flush()?;
        Ok(RunOutcome { run_id: run_id.to_string(), status, failed, blocked: vec![], outputs })
    }
}
