//! Parts of a step run at the same time (`wharf:plugin/parallel`, host side).
//!
//! A plugin's `run` may hand independent work to `parallel.run-all`: each part runs in a fresh
//! instance of the same plugin (its `parts.run-part` export), at once, with the attempt's
//! capabilities (same grants and mode, one rate limit, log budget and durability point), its
//! directories, its memory budget (the step's `memory` is for the attempt and its parts
//! together, `limiter.rs`) and what is left of its deadline. Calls and created resources
//! are the step's, in its journal and ledger, as if `run` had made them.
//!
//! Parts are tokio tasks (they overlap their AWS round trips and may use both cores); they are
//! aborted if the attempt is (timeout, crash). A part cannot start parts of its own, so at most
//! [`MAX_PART_INSTANCES`] instances wait on each other, never in a cycle.

use super::bindings::StepContext;
use super::bindings::with_parts::wharf::plugin::parallel::{Host, Part};
use super::bindings::{ErrorKind, WitError};
use super::limiter::MemoryBudget;
use super::plugin::Plugin;
use super::sandbox::{self, AttemptLimits, Entry, SandboxState};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use tokio::sync::Semaphore;

/// The most parts one `run-all` may start.
pub const MAX_PARTS: usize = 8;
/// Part instances alive at once in this process, across all steps; the pooling allocator keeps
/// this many slots for them besides the steps' own (`host/engine.rs`). More parts wait.
pub const MAX_PART_INSTANCES: u32 = 16;

/// What a running attempt needs to start its parts.
#[derive(Clone)]
pub struct PartRunner {
    pub plugin: Arc<Plugin>,
    pub limits: AttemptLimits,
    /// The attempt's memory budget: each part's memory is charged to it.
    pub budget: Arc<MemoryBudget>,
    pub context: StepContext,
    /// When the attempt's timeout ends: parts get what is left of it.
    pub deadline: Instant,
}

fn instance_permits() -> Arc<Semaphore> {
    static PERMITS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    PERMITS.get_or_init(|| Arc::new(Semaphore::new(MAX_PART_INSTANCES as usize))).clone()
}

fn refused(code: &str, message: String) -> WitError {
    WitError::new(ErrorKind::Permanent, code, message)
}

impl Host for SandboxState {
    async fn run_all(&mut self, parts: Vec<Part>) -> Vec<Result<String, WitError>> {
        let refuse_all = |e: WitError| parts.iter().map(|_| Err(e.clone())).collect::<Vec<_>>();
        if parts.len() > MAX_PARTS {
            return refuse_all(refused(
                "TooManyParts",
                format!("at most {MAX_PARTS} parts at once, not {}", parts.len()),
            ));
        }
        let Some(runner) = self.parts.clone() else {
            return refuse_all(refused("PartsRefused", "a part cannot start parts of its own".into()));
        };
        let dirs = self.read_only_dirs.clone();
        let caps = match self.caps() {
            Ok(caps) => caps,
            Err(e) => return refuse_all(e),
        };
        let mut tasks = tokio::task::JoinSet::new();
        for (index, part) in parts.into_iter().enumerate() {
            let (runner, caps, dirs) = (runner.clone(), caps.for_part(), dirs.clone());
            tasks.spawn(async move { (index, run_part(runner, caps, dirs, part).await) });
        }
        let mut results: Vec<Option<Result<String, WitError>>> = vec![None; tasks.len()];
        while let Some(joined) = tasks.join_next().await {
            // A panic in the host's own code for a part leaves its slot empty: it reads as failed
            // below, and the attempt goes on.
            if let Ok((index, result)) = joined {
                results[index] = Some(result);
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(refused("PartFailed", "the part's host task failed".into()))))
            .collect()
    }
}

/// One part in its own sandbox; its failures (crash, timeout, memory) become its error.
async fn run_part(
    runner: PartRunner,
    caps: crate::capabilities::Capabilities,
    dirs: Vec<(std::path::PathBuf, String)>,
    part: Part,
) -> Result<String, WitError> {
    let Some(indices) = runner.plugin.parts_indices() else {
        return Err(refused(
            "PartsUnsupported",
            format!(
                "plugin {} starts parts but does not export `parts` (build it with a newer SDK)",
                runner.plugin.name
            ),
        ));
    };
    let _permit = instance_permits().acquire_owned().await.expect("the semaphore is never closed");
    let failed = |message: String| refused("PartFailed", format!("part {}: {message}", part.name));
    let state = SandboxState::with_dirs(Some(caps), runner.limits.memory_bytes, &dirs)
        .map_err(|e| failed(e.to_string()))?
        .sharing_budget(runner.budget.clone());
    let limits = AttemptLimits { timeout: runner.deadline.saturating_duration_since(Instant::now()), ..runner.limits };
    let entry = Entry::Part {
        pre: runner.plugin.pre(),
        indices,
        context: runner.context.clone(),
        part: part.name.clone(),
        input: part.input,
    };
    match sandbox::run(entry, state, &limits).await {
        Ok(result) => result,
        Err(e) => Err(failed(e.to_string())),
    }
}
