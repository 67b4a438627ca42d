//! The scheduler: drives a run's step DAG to completion, journaling as it goes, and resumes
//! interrupted runs without redoing what already succeeded.
//!
//! Independent steps run at the same time, up to the workflow's `concurrency`. A failed step
//! blocks its dependents; independent branches still finish, so a resume has less left to do.

mod backoff;
pub mod changes;
mod step;
mod teardown;

pub use changes::StepChange;
pub use step::idempotency_key;
pub use teardown::{TEARDOWN_STEP, TeardownOptions, is_teardown_step};

use crate::capabilities::CallMode;
use crate::capabilities::aws::{Aws, AwsSettings};
use crate::capabilities::registry::LayerIndex;
use crate::events::{EventSink, Observer};
use crate::host::{Host, Plugin, PluginError};
use crate::journal::{
    AttemptStatus, EventKind, JournalError, RunJournal, RunRecord, RunStatus, StateBackend, StepError,
};
use crate::workflow::template::{TemplateContext, render_str};
use crate::workflow::{PluginRef, Workflow, WorkflowError};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use step::{PriorAttempts, StepOutcome};
use tokio::task::JoinSet;

/// Why a run could not be started, resumed or driven.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error("the workflow `{path}` changed since run {run_id} started:\n{}\nResume with --accept-changes to run the changed steps (and the steps after them) with the new definition.",
        .changes.iter().map(|c| format!("  - {c}")).collect::<Vec<_>>().join("\n"))]
    ChangedSinceStart { run_id: String, path: String, changes: Vec<StepChange> },
    #[error("run {0} already succeeded; nothing to resume")]
    AlreadySucceeded(String),
    #[error("AWS settings: {0}")]
    AwsSettings(String),
}

/// How a drive ended.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub run_id: String,
    pub status: RunStatus,
    /// Step id and error of every step that failed in this drive.
    pub failed: Vec<(String, StepError)>,
    /// Steps that did not run because something they need failed.
    pub blocked: Vec<String>,
    /// Outputs of every succeeded step (including ones from earlier drives).
    pub outputs: BTreeMap<String, Value>,
}

/// Options for resuming a run.
#[derive(Debug, Clone, Default)]
pub struct ResumeOptions {
    /// Proceed although the workflow file changed since the run started.
    pub accept_changes: bool,
}

/// Everything the steps of one drive share.
pub(crate) struct RunContext {
    run_id: String,
    workflow: Arc<Workflow>,
    params: BTreeMap<String, Value>,
    plugins: HashMap<String, Arc<Plugin>>,
    journal: Arc<dyn RunJournal>,
    events: EventSink,
    aws: Arc<Aws>,
    mode: CallMode,
    layers: Arc<LayerIndex>,
    /// A background flush is scheduled ([`RunContext::flush_soon`]).
    flush_pending: AtomicBool,
}

/// The longest a step's start or outcome stays only in memory when nothing forces a durability
/// point sooner (same as the views' lag, so `wharf status` shows it within twice this).
const FLUSH_LATENCY: Duration = Duration::from_millis(50);

impl RunContext {
    /// Makes what was just journaled durable within [`FLUSH_LATENCY`]: a step's start or outcome
    /// needs no durability point of its own (the journal is flushed before any side effect and at
    /// the run's end), but a step that computes for a while before its first call, or an outcome
    /// while other steps are busy, must still reach the disk, and `wharf status`, soon. Flushes
    /// asked for in the meantime share this one; a run that ends first makes it a no-op. Errors are
    /// left to the next flush the run waits for, which reports them.
    fn flush_soon(self: &Arc<Self>) {
        if self.flush_pending.swap(true, Ordering::AcqRel) {
            return;
        }
        let ctx = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep(FLUSH_LATENCY).await;
            let Some(ctx) = ctx.upgrade() else { return };
            ctx.flush_pending.store(false, Ordering::Release);
            let _ = crate::journal::flush_off_worker(&ctx.journal).await;
        });
    }
}

/// Starts and resumes runs.
pub struct Scheduler {
    host: Arc<Host>,
    backend: Arc<dyn StateBackend>,
    observer: Arc<dyn Observer>,
    /// SDK attempts per AWS call (below step retries).
    pub aws_max_attempts: u32,
    /// `Plan` records mutating AWS calls instead of sending them (`wharf plan`).
    pub mode: CallMode,
    /// The host's record of the registry layers it pushed (`registry.find-layer`); none by default.
    pub layers: Arc<LayerIndex>,
}

impl Scheduler {
    pub fn new(host: Arc<Host>, backend: Arc<dyn StateBackend>, observer: Arc<dyn Observer>) -> Self {
        Scheduler { host, backend, observer, aws_max_attempts: 3, mode: CallMode::Apply, layers: Arc::default() }
    }

    /// Starts a new run of `workflow` with resolved `params`.
    pub async fn start(&self, workflow: Workflow, params: BTreeMap<String, Value>) -> Result<RunOutcome, RunError> {
        let (outcome, journal, _) = self.start_open(workflow, params).await?;
        crate::journal::close_in_background(journal);
        Ok(outcome)
    }

    /// Starts a new run, then deletes what it created, whatever the run's outcome (`wharf run
    /// --teardown`). The teardown goes on with the run's journal still open and its AWS clients:
    /// closing and opening a sled database again would cost more than the teardown's first step,
    /// and loading the AWS settings again about as much. The teardown's own
    /// failure to start comes back beside the run's outcome, which is not lost with it.
    pub async fn start_then_teardown(
        &self,
        workflow: Workflow,
        params: BTreeMap<String, Value>,
        options: &TeardownOptions,
    ) -> Result<(RunOutcome, Result<RunOutcome, RunError>), RunError> {
        // Loaded while the run goes on, so it is ready when the run ends. A failure to load it
        // is reported by the teardown, which loads it again.
        let host = self.host.clone();
        let teardown_plugin = tokio::spawn(async move { host.plugin(&teardown::plugin_ref()).await });
        let (outcome, journal, aws) = self.start_open(workflow, params).await?;
        let _ = teardown_plugin.await;
        let teardown = self.teardown_on(journal, options, Some(aws)).await;
        Ok((outcome, teardown))
    }

    /// `start`, leaving the run's journal open for the caller; with the run's AWS clients.
    async fn start_open(
        &self,
        workflow: Workflow,
        params: BTreeMap<String, Value>,
    ) -> Result<(RunOutcome, Arc<dyn RunJournal>, Arc<Aws>), RunError> {
        let run_id = crate::journal::new_run_id();
        let aws = self.aws(&workflow, &params, &run_id)?;
        let plugins = self.load_plugins(&workflow, &aws).await?;
        let now = crate::now_ms();
        let record = RunRecord {
            id: run_id,
            workflow_name: workflow.name.clone(),
            workflow_path: absolute(&workflow.path),
            workflow_source: workflow.source.clone(),
            step_hashes: step_hashes(&workflow, &plugins),
            params: params.clone(),
            status: RunStatus::Running,
            created_at_ms: now,
            updated_at_ms: now,
            finished_at_ms: None,
            error: None,
        };
        let journal = self.backend.create_run(record)?;
        let events = EventSink::new(journal.clone(), self.observer.clone());
        events.emit(
            None,
            EventKind::RunStarted,
            format!("workflow {} from {}", workflow.name, workflow.path.display()),
        )?;
        // Durable at the journal's first flush (see `StateBackend::create_run`); this event goes
        // with the next durability point.
        let ctx = self.context(journal, events, Arc::new(workflow), params, plugins, aws.clone());
        let (outcome, journal) = self.drive(ctx, BTreeSet::new()).await?;
        Ok((outcome, journal, aws))
    }

    /// Resumes a run: steps that succeeded keep their outputs; the rest run again.
    pub async fn resume(&self, run_id: &str, options: &ResumeOptions) -> Result<RunOutcome, RunError> {
        let journal = self.backend.open_run(run_id)?;
        let run = journal.run();
        if run.status == RunStatus::Succeeded {
            return Err(RunError::AlreadySucceeded(run_id.to_string()));
        }
        let path = std::path::Path::new(&run.workflow_path);
        let builtins = crate::builtin::names();
        // The file as it is now; if it is gone, the text the run started with.
        let workflow = match std::fs::read_to_string(path) {
            Ok(source) => Workflow::parse(path, &source, &builtins)?,
            Err(_) => Workflow::parse(path, &run.workflow_source, &builtins)?,
        };
        let aws = self.aws(&workflow, &run.params, run_id)?;
        let plugins = self.load_plugins(&workflow, &aws).await?;
        let hashes = step_hashes(&workflow, &plugins);
        let changes = changes::diff(&run.step_hashes, &hashes);
        let mut rerun = BTreeSet::new();
        if !changes.is_empty() {
            if !options.accept_changes {
                return Err(RunError::ChangedSinceStart {
                    run_id: run_id.into(),
                    path: run.workflow_path.clone(),
                    changes,
                });
            }
            let changed: Vec<&str> = changes
                .iter()
                .filter_map(|c| if let StepChange::Changed(id) = c { Some(id.as_str()) } else { None })
                .collect();
            rerun = dependents_closure(&workflow, &changed);
        }
        let source = workflow.source.clone();
        journal.update_run(&mut |r: &mut RunRecord| {
            r.status = RunStatus::Running;
            r.workflow_source = source.clone();
            r.step_hashes = hashes.clone();
            r.finished_at_ms = None;
            r.error = None;
            r.updated_at_ms = crate::now_ms();
        })?;
        let events = EventSink::new(journal.clone(), self.observer.clone());
        let note = if changes.is_empty() {
            String::new()
        } else {
            format!(" with accepted changes: {}", changes.iter().map(|c| c.to_string()).collect::<Vec<_>>().join("; "))
        };
        events.emit(None, EventKind::RunResumed, format!("resumed by pid {}{note}", std::process::id()))?;
        crate::journal::flush_off_worker(&journal).await?;
        let ctx = self.context(journal, events, Arc::new(workflow), run.params.clone(), plugins, aws);
        let (outcome, journal) = self.drive(ctx, rerun).await?;
        crate::journal::close_in_background(journal);
        Ok(outcome)
    }

    /// The run's AWS clients, built when a step first needs them, from the workflow's `[aws]`.
    fn aws(&self, workflow: &Workflow, params: &BTreeMap<String, Value>, run_id: &str) -> Result<Arc<Aws>, RunError> {
        Ok(Arc::new(Aws::new(aws_settings(workflow, params, run_id, self.aws_max_attempts)?)))
    }

    /// What the steps of one drive share.
    fn context(
        &self,
        journal: Arc<dyn RunJournal>,
        events: EventSink,
        workflow: Arc<Workflow>,
        params: BTreeMap<String, Value>,
        plugins: HashMap<String, Arc<Plugin>>,
        aws: Arc<Aws>,
    ) -> Arc<RunContext> {
        let run_id = journal.run().id;
        Arc::new(RunContext {
            run_id,
            workflow,
            params,
            plugins,
            journal,
            events,
            aws,
            mode: self.mode,
            layers: self.layers.clone(),
            flush_pending: AtomicBool::new(false),
        })
    }

    /// Loads the steps' plugins, each distinct one on its own task (loading is CPU work:
    /// deserializing, linking, `describe`). The run's AWS settings load alongside, off the path
    /// to the first call, when the workflow has an `[aws]` region or profile, else once the
    /// plugins turn out to call AWS. The first error in step order wins.
    async fn load_plugins(
        &self,
        workflow: &Workflow,
        aws: &Arc<Aws>,
    ) -> Result<HashMap<String, Arc<Plugin>>, PluginError> {
        if workflow.aws.region.is_some() || workflow.aws.profile.is_some() {
            aws.preload();
        }
        let mut refs: Vec<&PluginRef> = Vec::new();
        for step in &workflow.steps {
            if !refs.contains(&&step.plugin) {
                refs.push(&step.plugin);
            }
        }
        // The first on this task: a workflow of one plugin (or of plugins this process loaded
        // already) needs no hand-off to another thread.
        let others: Vec<_> = refs
            .iter()
            .skip(1)
            .map(|r| {
                let (host, plugin) = (self.host.clone(), (*r).clone());
                tokio::spawn(async move { host.plugin(&plugin).await })
            })
            .collect();
        let mut loaded = Vec::new();
        if let Some(first) = refs.first() {
            loaded.push(self.host.plugin(first).await);
        }
        for task in others {
            loaded.push(task.await.expect("plugin loading does not panic"));
        }
        if loaded.iter().any(|result| result.as_ref().is_ok_and(|p| p.calls_aws())) {
            aws.preload();
        }
        // In the order of each plugin's first step: the first error is the earliest step's.
        let loaded: Vec<Arc<Plugin>> = loaded.into_iter().collect::<Result<_, _>>()?;
        let mut plugins = HashMap::new();
        for step in &workflow.steps {
            let i = refs.iter().position(|r| *r == &step.plugin).expect("loaded above");
            plugins.insert(step.id.clone(), loaded[i].clone());
        }
        Ok(plugins)
    }

    /// Runs the workflow's steps to their end; returns the outcome and the journal, flushed, for
    /// the caller to close or go on with.
    async fn drive(
        &self,
        ctx: Arc<RunContext>,
        rerun: BTreeSet<String>,
    ) -> Result<(RunOutcome, Arc<dyn RunJournal>), RunError> {
        let (journal, events, workflow) = (ctx.journal.clone(), ctx.events.clone(), ctx.workflow.clone());
        let run_id = ctx.run_id.clone();
        let (mut outputs, prior) = recorded_progress(journal.as_ref(), &rerun)?;
        // The run's first durability point (a new sled run has none yet, see
        // `StateBackend::create_run`): within FLUSH_LATENCY, unless a side effect or the run's end
        // makes one sooner. A short run then waits for the disk once, at its end.
        ctx.flush_soon();

        let mut pending: Vec<String> =
            workflow.topo_order().into_iter().filter(|id| !outputs.contains_key(*id)).map(str::to_string).collect();
        let mut failed: Vec<(String, StepError)> = Vec::new();
        let mut blocked: Vec<String> = Vec::new();
        let mut running = JoinSet::new();

        loop {
            block_dependents_of_failures(&workflow, &mut pending, &failed, &mut blocked, &events);
            let mut ready = Vec::new();
            while running.len() + ready.len() < workflow.concurrency {
                let Some(pos) = pending
                    .iter()
                    .position(|id| workflow.step(id).unwrap().needs.iter().all(|n| outputs.contains_key(n)))
                else {
                    break;
                };
                ready.push(pending.remove(pos));
            }
            let (id, outcome) = if running.is_empty() && ready.len() == 1 {
                // The only step that can run: run it on this task. Nothing else can become ready
                // before it ends, and a spawned task would cost two thread hand-offs (up to a
                // tenth of a millisecond each), most of a no-op step's time.
                let id = ready.pop().unwrap();
                let p = prior.get(&id).copied().unwrap_or_default();
                let outcome = step::run_step(ctx.clone(), id.clone(), p, outputs.clone()).await;
                (id, outcome)
            } else {
                for id in ready {
                    let p = prior.get(&id).copied().unwrap_or_default();
                    let (ctx, snapshot) = (ctx.clone(), outputs.clone());
                    running.spawn(async move {
                        let outcome = step::run_step(ctx, id.clone(), p, snapshot).await;
                        (id, outcome)
                    });
                }
                let Some(joined) = running.join_next().await else { break };
                joined.expect("step tasks do not panic: plugin failures are errors")
            };
            match outcome {
                StepOutcome::Succeeded(out) => {
                    outputs.insert(id, out);
                }
                StepOutcome::Failed(error) => failed.push((id, error)),
            }
        }

        let status = if failed.is_empty() && blocked.is_empty() && pending.is_empty() {
            RunStatus::Succeeded
        } else {
            RunStatus::Failed
        };
        let summary = summarize(&failed, &blocked);
        journal.update_run(&mut |r: &mut RunRecord| {
            r.status = status;
            r.finished_at_ms = Some(crate::now_ms());
            r.updated_at_ms = crate::now_ms();
            r.error = summary.clone();
        })?;
        events.emit(None, EventKind::RunFinished, summary.clone().unwrap_or_else(|| "all steps succeeded".into()))?;
        crate::journal::flush_off_worker(&journal).await?;
        // The other handles go first, so a close by the caller really happens off its task.
        drop((ctx, events));
        Ok((RunOutcome { run_id, status, failed, blocked, outputs }, journal))
    }
}

/// Moves pending steps that need a failed or blocked step to `blocked` (transitively).
fn block_dependents_of_failures(
    workflow: &Workflow,
    pending: &mut Vec<String>,
    failed: &[(String, StepError)],
    blocked: &mut Vec<String>,
    events: &EventSink,
) {
    loop {
        let dead: BTreeSet<&str> =
            failed.iter().map(|(id, _)| id.as_str()).chain(blocked.iter().map(String::as_str)).collect();
        let newly: Vec<String> = pending
            .extract_if(.., |id| workflow.step(id).unwrap().needs.iter().any(|n| dead.contains(n.as_str())))
            .collect();
        if newly.is_empty() {
            return;
        }
        for id in newly {
            let _ = events.emit(Some(&id), EventKind::StepSkipped, "not run: a step it needs failed".to_string());
            blocked.push(id);
        }
    }
}

/// Outputs of steps that already succeeded (except those to re-run) and where each other step's
/// attempt numbering continues. A last attempt left `Started` by a dead process is closed as
/// failed and marks the next attempt in doubt.
fn recorded_progress(
    journal: &dyn RunJournal,
    rerun: &BTreeSet<String>,
) -> Result<(BTreeMap<String, Value>, HashMap<String, PriorAttempts>), JournalError> {
    let mut outputs = BTreeMap::new();
    let mut prior: HashMap<String, PriorAttempts> = HashMap::new();
    for attempt in journal.attempts()? {
        let p = prior.entry(attempt.step_id.clone()).or_default();
        p.count = p.count.max(attempt.attempt);
        p.in_doubt = attempt.status == AttemptStatus::Started;
        match attempt.status {
            AttemptStatus::Succeeded if !rerun.contains(&attempt.step_id) => {
                outputs.insert(attempt.step_id.clone(), attempt.outputs.clone().unwrap_or(Value::Null));
            }
            AttemptStatus::Started => {
                let mut closed = attempt.clone();
                closed.status = AttemptStatus::Failed;
                closed.finished_at_ms = Some(crate::now_ms());
                closed.error = Some(StepError {
                    kind: "interrupted".into(),
                    code: "Interrupted".into(),
                    message: "the process driving this attempt stopped before it finished".into(),
                });
                journal.put_attempt(&closed)?;
            }
            _ => {}
        }
    }
    Ok((outputs, prior))
}

/// Each step's definition hash combined with its plugin's digest: a fixed plugin is a change too.
fn step_hashes(workflow: &Workflow, plugins: &HashMap<String, Arc<Plugin>>) -> BTreeMap<String, String> {
    workflow.steps.iter().map(|s| (s.id.clone(), format!("{}:{}", s.definition_hash, plugins[&s.id].digest))).collect()
}

/// `changed` plus every step that depends on them, directly or not.
fn dependents_closure(workflow: &Workflow, changed: &[&str]) -> BTreeSet<String> {
    let mut set: BTreeSet<String> = changed.iter().map(|s| s.to_string()).collect();
    for id in workflow.topo_order() {
        if workflow.step(id).unwrap().needs.iter().any(|n| set.contains(n)) {
            set.insert(id.to_string());
        }
    }
    set
}

fn aws_settings(
    workflow: &Workflow,
    params: &BTreeMap<String, Value>,
    run_id: &str,
    max_attempts: u32,
) -> Result<AwsSettings, RunError> {
    let env = |name: &str| std::env::var(name).ok();
    let steps = BTreeMap::new();
    let ctx = TemplateContext { params, steps: &steps, run_id, env: &env, with: None };
    let render = |v: &Option<String>| {
        v.as_ref().map(|s| render_str(s, &ctx)).transpose().map_err(|e| RunError::AwsSettings(e.to_string()))
    };
    Ok(AwsSettings { region: render(&workflow.aws.region)?, profile: render(&workflow.aws.profile)?, max_attempts })
}

fn summarize(failed: &[(String, StepError)], blocked: &[String]) -> Option<String> {
    if failed.is_empty() && blocked.is_empty() {
        return None;
    }
    // Details live with each step (`wharf status`); the run keeps the short version.
    let ids: Vec<&str> = failed.iter().map(|(id, _)| id.as_str()).collect();
    let mut summary = format!("failed: {}", ids.join(", "));
    if !blocked.is_empty() {
        summary.push_str(&format!("; not run: {}", blocked.join(", ")));
    }
    Some(summary)
}

fn absolute(path: &std::path::Path) -> String {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()).display().to_string()
}
