//! `wharf teardown RUN`: the `teardown` plugin run as more steps of RUN itself (one per group of
//! resources, independent groups at once), so it reads that run's ledger, is journaled with it,
//! and is resumable like any step (running it again continues where it stopped: what was deleted
//! is marked in the ledger).

use super::step::{self, StepOutcome};
use super::{RunError, RunOutcome, Scheduler, recorded_progress};
use crate::capabilities::aws::Aws;
use crate::journal::{EventKind, RunJournal, RunStatus};
use crate::workflow::{PluginRef, RetryPolicy, Step, Workflow};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// The id of the teardown's last step in a run's journal, and the prefix of the others. Workflow
/// step ids cannot start with `_`, so they never collide with one.
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

/// The teardown's steps: `(step id, group)`. The services go first; once they are gone nothing in
/// one of the other groups depends on another (the plugin keeps the order within a group, and
/// knows which kinds each group deletes), so those run at once; the last step sweeps up whatever
/// no group covers (kinds this version does not know, reported as leftovers) and is where the
/// totals are reported.
const SERVICES: (&str, &str) = ("_teardown-services", "services");
const CONCURRENT: &[(&str, &str)] = &[
    ("_teardown-ecs", "ecs"),
    ("_teardown-registry", "registry"),
    ("_teardown-logs", "logs"),
    ("_teardown-iam", "iam"),
    ("_teardown-network", "network"),
];

/// Whether a step id is one of the teardown's.
pub fn is_teardown_step(id: &str) -> bool {
    id.starts_with(TEARDOWN_STEP)
}

/// The built-in plugin every teardown step runs.
pub(super) fn plugin_ref() -> PluginRef {
    PluginRef::Builtin("teardown".into())
}

impl Scheduler {
    /// Deletes everything run `run_id` created, in reverse dependency order, independent groups of
    /// resources concurrently.
    pub async fn teardown(&self, run_id: &str, options: &TeardownOptions) -> Result<RunOutcome, RunError> {
        let journal = self.backend.open_run(run_id)?;
        self.teardown_on(journal, options, None).await
    }

    /// `teardown` of the run whose journal is open; with its AWS clients, if they exist already
    /// (they were made from the same recorded workflow and parameters).
    pub(super) async fn teardown_on(
        &self,
        journal: Arc<dyn RunJournal>,
        options: &TeardownOptions,
        aws: Option<Arc<Aws>>,
    ) -> Result<RunOutcome, RunError> {
        let run = journal.run();
        let run_id = run.id.as_str();
        let recorded =
            Workflow::parse(std::path::Path::new(&run.workflow_path), &run.workflow_source, &crate::builtin::names())?;
        let aws = match aws {
            Some(aws) => aws,
            None => self.aws(&recorded, &run.params, run_id)?,
        };
        // Deleting calls AWS: its settings load while the plugin does.
        aws.preload();
        let plugin = self.host.plugin(&plugin_ref()).await?;
        let steps: Vec<Step> = std::iter::once(SERVICES)
            .chain(CONCURRENT.iter().copied())
            .map(|(id, group)| teardown_step(id, Some(group), options))
            .chain(std::iter::once(teardown_step(TEARDOWN_STEP, None, options)))
            .collect();
        let plugins = steps.iter().map(|s| (s.id.clone(), plugin.clone())).collect::<HashMap<_, _>>();
        let workflow = Arc::new(Workflow { steps, ..recorded });

        let events = crate::events::EventSink::new(journal.clone(), self.observer.clone());
        events.emit(None, EventKind::RunResumed, format!("teardown started by pid {}", std::process::id()))?;
        let (_, prior) = recorded_progress(journal.as_ref(), &BTreeSet::new())?;
        let ctx = self.context(journal.clone(), events.clone(), workflow, run.params.clone(), plugins, aws);
        let run_one = |id: &str| {
            let prior = prior.get(id).copied().unwrap_or_default();
            tokio::spawn(step::run_step(ctx.clone(), id.to_string(), prior, BTreeMap::new()))
        };

        let mut outputs = BTreeMap::new();
        let mut failed = Vec::new();
        let mut blocked = Vec::new();
        let outcome = run_one(SERVICES.0).await.expect("step tasks do not panic");
        record(SERVICES.0, outcome, &mut outputs, &mut failed);
        if failed.is_empty() {
            let running: Vec<_> = CONCURRENT.iter().map(|(id, _)| (*id, run_one(id))).collect();
            for (id, task) in running {
                record(id, task.await.expect("step tasks do not panic"), &mut outputs, &mut failed);
            }
        } else {
            // Roles, secrets and the network of a service that is still there stay, so it keeps working.
            blocked.extend(CONCURRENT.iter().map(|(id, _)| id.to_string()));
        }
        if failed.is_empty() {
            let outcome = run_one(TEARDOWN_STEP).await.expect("step tasks do not panic");
            record(TEARDOWN_STEP, outcome, &mut outputs, &mut failed);
        } else {
            blocked.push(TEARDOWN_STEP.to_string());
        }

        let status = if failed.is_empty() { RunStatus::Succeeded } else { RunStatus::Failed };
        if status == RunStatus::Succeeded {
            let total = totals(&outputs);
            outputs.insert(TEARDOWN_STEP.to_string(), total);
        }
        for id in &blocked {
            let _ = events.emit(Some(id), EventKind::StepSkipped, "not run: a teardown step it needs failed");
        }
        let message =
            if failed.is_empty() { "teardown finished".to_string() } else { "teardown incomplete".to_string() };
        events.emit(None, EventKind::RunFinished, message)?;
        crate::journal::flush_off_worker(&journal).await?;
        Ok(RunOutcome { run_id: run_id.to_string(), status, failed, blocked, outputs })
    }
}

fn record(
    id: &str,
    outcome: StepOutcome,
    outputs: &mut BTreeMap<String, serde_json::Value>,
    failed: &mut Vec<(String, crate::journal::StepError)>,
) {
    match outcome {
        StepOutcome::Succeeded(out) => {
            outputs.insert(id.to_string(), out);
        }
        StepOutcome::Failed(e) => failed.push((id.to_string(), e)),
    }
}

/// One teardown step: the `teardown` plugin for `group` (None: every kind).
fn teardown_step(id: &str, group: Option<&str>, options: &TeardownOptions) -> Step {
    Step {
        id: id.into(),
        plugin: PluginRef::Builtin("teardown".into()),
        needs: vec![],
        with: json!({
            "secret_recovery_days": options.secret_recovery_days,
            "keep_log_groups": options.keep_log_groups,
            "delete_images": options.delete_images,
            "timeout_secs": options.timeout.as_secs(),
            "group": group,
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
    }
}

/// The teardown's outcome as one: deletions summed, kept resources listed, over every step.
fn totals(outputs: &BTreeMap<String, serde_json::Value>) -> serde_json::Value {
    let sum = |field: &str| outputs.values().filter_map(|o| o[field].as_u64()).sum::<u64>();
    let kept: Vec<serde_json::Value> =
        outputs.values().filter_map(|o| o["kept"].as_array()).flatten().cloned().collect();
    json!({ "deleted": sum("deleted"), "already_gone": sum("already_gone"), "kept": kept })
}
