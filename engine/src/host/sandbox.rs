//! The sandbox one step attempt runs in: a fresh store, WASI that grants nothing, a memory cap
//! (the attempt's, shared with its parts: `limiter.rs`), and a deadline that stops the guest
//! wherever it is (`engine::stop_at`). Whatever the guest does, the worst outcome is an
//! [`AttemptError`]. `describe` runs the same way, with a short deadline and no capabilities.

use super::bindings::with_parts::exports::wharf::plugin::parts::GuestIndices as PartsIndices;
use super::bindings::{PluginInfo, StepContext, StepPre, WitError};
use super::limiter::{MemoryBudget, StoreLimiter};
use super::parts::PartRunner;
use crate::capabilities::Capabilities;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// How much of a guest's stderr (panic messages) is kept; its last [`STDERR_REPORTED`] bytes go
/// into the error report. stdout is discarded: step logs go through the `log` capability.
const STDERR_CAPACITY: usize = 64 * 1024;
const STDERR_REPORTED: usize = 4 * 1024;
/// Most bytes one call may move from the guest to the host (a call's arguments, `run`'s result):
/// wasmtime's hostcall fuel, refusing larger transfers before the host allocates for them.
pub const MAX_HOST_TRANSFER: usize = 128 << 20;
/// How long a plugin may take to describe itself, and the memory it may use for it.
pub const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(5);
const DESCRIBE_MEMORY: u64 = 64 << 20;
const YEAR: Duration = Duration::from_secs(365 * 86_400);
/// Largest outputs JSON a step may return. Outputs are journaled and rendered into later steps'
/// inputs: ids and ARNs, not payloads.
pub const MAX_OUTPUT_BYTES: usize = 1 << 20;
/// Longest error code and message kept from a failing guest (longer ones are cut).
const MAX_ERROR_CODE: usize = 128;
const MAX_ERROR_MESSAGE: usize = 8 * 1024;

/// Limits of one attempt.
#[derive(Debug, Clone, Copy)]
pub struct AttemptLimits {
    pub memory_bytes: u64,
    pub timeout: Duration,
}

/// How an attempt ended when the guest did not return normally.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    #[error("step exceeded its timeout of {} and was stopped; raise `timeout` on the step if it needs longer", humantime::format_duration(*.0))]
    Timeout(Duration),
    #[error(
        "step tried to grow its memory to {} MiB, over its limit of {} MiB; raise `memory` on the step if it needs more",
        .requested / (1 << 20), .limit / (1 << 20)
    )]
    MemoryLimit { limit: u64, requested: u64 },
    #[error("plugin crashed: {message}{}", stderr_suffix(.stderr))]
    Trap { message: String, stderr: String },
    #[error("plugin could not be instantiated: {0}")]
    Instantiate(String),
    #[error(
        "step returned {} MiB of outputs, over the limit of {} MiB; outputs are for ids and ARNs, not data",
        .bytes / (1 << 20), MAX_OUTPUT_BYTES / (1 << 20)
    )]
    OutputTooLarge { bytes: usize },
    #[error(
        "plugin tried to pass more than {} MiB to the host in one call (outputs, a log line, a blob) and was stopped",
        MAX_HOST_TRANSFER >> 20
    )]
    TransferTooLarge,
}

fn stderr_suffix(stderr: &str) -> String {
    let stderr = stderr.trim();
    if stderr.is_empty() {
        return String::new();
    }
    // The end of stderr holds the panic message.
    let mut start = stderr.len().saturating_sub(STDERR_REPORTED);
    while !stderr.is_char_boundary(start) {
        start += 1;
    }
    let cut = if start > 0 { "…" } else { "" };
    format!("; plugin stderr: {cut}{}", &stderr[start..])
}

/// Resources a plugin may hold at once (open files, streams, hashers): far more than a step
/// needs, few enough that a plugin cannot make the host hold unbounded state.
pub(crate) const MAX_RESOURCES: usize = 4096;

/// Per-store data: WASI state, the memory cap and the step's capabilities.
pub struct SandboxState {
    wasi: WasiCtx,
    /// WASI's resources and the plugin's `digest` hashers: at most `MAX_RESOURCES` at once.
    pub(crate) table: ResourceTable,
    memory: StoreLimiter,
    stderr: MemoryOutputPipe,
    /// `None` while describing a plugin: capability calls are refused then.
    pub(crate) caps: Option<Capabilities>,
    /// The directories granted to the step, for its parts' sandboxes.
    pub(crate) read_only_dirs: Vec<(PathBuf, String)>,
    /// How this attempt starts parts (`parallel.run-all`); `None` in a part and in `describe`.
    pub(crate) parts: Option<PartRunner>,
}

impl SandboxState {
    /// A sandbox with no ambient authority: no env, args, preopens, sockets or name lookups.
    pub fn new(caps: Option<Capabilities>, memory_bytes: u64) -> Self {
        Self::with_dirs(caps, memory_bytes, &[]).expect("no directories to open")
    }

    /// Like [`SandboxState::new`], plus read-only directories granted by `fs:Read` lines:
    /// `(host path, path the guest sees)`.
    pub fn with_dirs(
        caps: Option<Capabilities>,
        memory_bytes: u64,
        read_only_dirs: &[(PathBuf, String)],
    ) -> std::io::Result<Self> {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let mut builder = WasiCtxBuilder::new();
        builder.stderr(stderr.clone()).stdout(wasmtime_wasi::p2::pipe::SinkOutputStream);
        // Granted directories are read on the guest's own thread. By default wasmtime-wasi moves
        // every read (64 KiB at most) to tokio's blocking pool and back: for build-push packing a
        // 12.9 MB binary that was 200 round trips, 30-46 ms of the deployment's critical path.
        // A read of a local build context is short; the guest's thread is already busy with it.
        // Must precede `preopened_dir`, which captures the setting.
        builder.allow_blocking_current_thread(true);
        for (host, guest) in read_only_dirs {
            builder
                .preopened_dir(host, guest, FsPerms::ReadOnly)
                .map_err(|e| std::io::Error::other(format!("cannot grant directory {}: {e:#}", host.display())))?;
        }
        let wasi = builder.build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        Ok(SandboxState {
            wasi,
            table,
            memory: StoreLimiter::new(MemoryBudget::new(memory_bytes)),
            stderr,
            caps,
            read_only_dirs: read_only_dirs.to_vec(),
            parts: None,
        })
    }

    /// The same sandbox charging its memory to `budget` instead of one of its own: a part's
    /// memory is its attempt's.
    pub(crate) fn sharing_budget(mut self, budget: Arc<MemoryBudget>) -> Self {
        self.memory = StoreLimiter::new(budget);
        self
    }

    /// The budget this sandbox's memory is charged to.
    pub(crate) fn memory_budget(&self) -> Arc<MemoryBudget> {
        self.memory.budget().clone()
    }

    /// The step's capabilities, or a `denied` error outside a step run.
    pub(crate) fn caps(&mut self) -> Result<&mut Capabilities, WitError> {
        self.caps.as_mut().ok_or_else(|| {
            WitError::new(
                super::bindings::ErrorKind::Denied,
                "NoCapabilities",
                "capabilities cannot be used while a plugin describes itself",
            )
        })
    }
}

impl WasiView for SandboxState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// What a sandbox runs: an attempt (`run`), or one part of one (`parts.run-part`).
pub(crate) enum Entry<'a> {
    Run(&'a StepPre<SandboxState>, StepContext),
    Part {
        pre: &'a StepPre<SandboxState>,
        indices: &'a PartsIndices,
        context: StepContext,
        part: String,
        input: String,
    },
}

/// Instantiates the plugin in a fresh store and calls `entry`'s export once.
pub(crate) async fn run(
    entry: Entry<'_>,
    state: SandboxState,
    limits: &AttemptLimits,
) -> Result<Result<String, WitError>, AttemptError> {
    let engine = match &entry {
        Entry::Run(pre, _) | Entry::Part { pre, .. } => pre.engine().clone(),
    };
    // The copy out of guest memory is bounded by the hostcall fuel. (Lifting lazily with
    // `WasmStr` cannot work: wasmtime runs the guest's post-return, freeing the strings, before
    // `call_async` returns.)
    guarded(&engine, state, limits.timeout, async move |store| {
        let result = match entry {
            Entry::Run(pre, context) => {
                let step = pre.instantiate_async(&mut *store).await.map_err(Failure::Instantiate)?;
                step.call_run(&mut *store, &context).await.map_err(Failure::Trap)?
            }
            Entry::Part { pre, indices, context, part, input } => {
                let instance = pre.instance_pre().instantiate_async(&mut *store).await.map_err(Failure::Instantiate)?;
                let parts = indices.load(&mut *store, &instance).map_err(Failure::Instantiate)?;
                parts.call_run_part(&mut *store, &context, &part, &input).await.map_err(Failure::Trap)?
            }
        };
        bounded(result)
    })
    .await
}

/// Calls the plugin's `describe` in a small store with no capabilities, stopped after
/// [`DESCRIBE_TIMEOUT`] like a step at its deadline.
pub(crate) async fn describe(pre: &StepPre<SandboxState>) -> Result<PluginInfo, AttemptError> {
    let state = SandboxState::new(None, DESCRIBE_MEMORY);
    guarded(pre.engine(), state, DESCRIBE_TIMEOUT, async |store| {
        let step = pre.instantiate_async(&mut *store).await.map_err(Failure::Instantiate)?;
        step.call_describe(&mut *store).await.map_err(Failure::Trap)
    })
    .await
}

/// Runs `call` in a fresh store of `state` until `timeout`: the epoch stops a guest in wasm code
/// (and makes it yield to the executor meanwhile), the timeout below one blocked in a host call
/// (a WASI clock poll, an AWS call) by dropping the call. Every guest call goes through here.
async fn guarded<T>(
    engine: &Engine,
    state: SandboxState,
    timeout: Duration,
    call: impl AsyncFnOnce(&mut Store<SandboxState>) -> Result<T, Failure>,
) -> Result<T, AttemptError> {
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.memory);
    store.set_hostcall_fuel(MAX_HOST_TRANSFER);
    // A timeout too far ahead to add is as good as none.
    let deadline = Instant::now().checked_add(timeout).unwrap_or_else(|| Instant::now() + YEAR);
    super::engine::stop_at(&mut store, deadline);
    let outcome = tokio::time::timeout_at(deadline.into(), call(&mut store)).await;
    let state = store.data();
    match outcome {
        Err(_elapsed) => Err(AttemptError::Timeout(timeout)),
        Ok(Ok(value)) => Ok(value),
        Ok(Err(failure)) => Err(classify(failure, state, timeout)),
    }
}

/// What a failed guest call means. Memory first: instantiating a component whose memories
/// exceed the budget fails before the guest runs, and growing past it traps.
fn classify(failure: Failure, state: &SandboxState, timeout: Duration) -> AttemptError {
    if let Some(requested) = state.memory.exceeded {
        return AttemptError::MemoryLimit { limit: state.memory.budget().limit(), requested };
    }
    match failure {
        Failure::Instantiate(e) => AttemptError::Instantiate(format!("{e:#}")),
        Failure::TooLarge(bytes) => AttemptError::OutputTooLarge { bytes },
        Failure::Trap(e) if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) => AttemptError::Timeout(timeout),
        // wasmtime's message for exhausted hostcall fuel (no typed error to match).
        Failure::Trap(e) if format!("{e:#}").contains("fuel allocated for hostcalls has been exhausted") => {
            AttemptError::TransferTooLarge
        }
        Failure::Trap(e) => {
            let stderr = String::from_utf8_lossy(&state.stderr.contents()).into_owned();
            AttemptError::Trap { message: trap_message(&e), stderr }
        }
    }
}

enum Failure {
    Instantiate(wasmtime::Error),
    Trap(wasmtime::Error),
    TooLarge(usize),
}

/// The guest's result within limits: outputs up to [`MAX_OUTPUT_BYTES`] (they are journaled and
/// rendered into later steps), error codes and messages cut to a readable length.
fn bounded(result: Result<String, WitError>) -> Result<Result<String, WitError>, Failure> {
    match result {
        Ok(outputs) if outputs.len() > MAX_OUTPUT_BYTES => Err(Failure::TooLarge(outputs.len())),
        Ok(outputs) => Ok(Ok(outputs)),
        Err(e) => Ok(Err(WitError {
            code: truncate(&e.code, MAX_ERROR_CODE),
            message: truncate(&e.message, MAX_ERROR_MESSAGE),
            ..e
        })),
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} …[{} bytes cut]", &text[..end], text.len() - end)
}

/// The trap code when there is one (`{e}` alone shows only backtrace context, per field notes).
fn trap_message(e: &wasmtime::Error) -> String {
    match e.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => match e.downcast_ref::<wasmtime_wasi::I32Exit>() {
            Some(exit) => format!("it called exit({}) instead of returning", exit.0),
            None => format!("{e:#}"),
        },
    }
}
