//! The sandbox one step attempt runs in: a fresh store, WASI that grants nothing, a memory cap,
//! and a deadline. Whatever the guest does, the worst outcome is an [`AttemptError`].

use super::bindings::{StepContext, StepPre, WitError};
use super::engine::EPOCH_TICK;
use crate::capabilities::Capabilities;
use std::path::PathBuf;
use std::time::Duration;
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// How much of a guest's stderr (panic messages) is kept for the error report.
const STDERR_CAPACITY: usize = 64 * 1024;
/// Extra wall-clock time past the deadline before a guest stuck in a host call is abandoned.
const HOST_CALL_GRACE: Duration = Duration::from_millis(500);

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
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.trim().is_empty() { String::new() } else { format!("; plugin stderr: {}", stderr.trim()) }
}

/// Per-store data: WASI state, the memory cap and the step's capabilities.
pub struct SandboxState {
    wasi: WasiCtx,
    table: ResourceTable,
    memory: MemoryCap,
    stderr: MemoryOutputPipe,
    /// `None` while describing a plugin: capability calls are refused then.
    pub(crate) caps: Option<Capabilities>,
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
        builder.stderr(stderr.clone()).stdout(stderr.clone());
        for (host, guest) in read_only_dirs {
            builder
                .preopened_dir(host, guest, FsPerms::ReadOnly)
                .map_err(|e| std::io::Error::other(format!("cannot grant directory {}: {e:#}", host.display())))?;
        }
        let wasi = builder.build();
        Ok(SandboxState {
            wasi,
            table: ResourceTable::new(),
            memory: MemoryCap { limit: memory_bytes, exceeded: None },
            stderr,
            caps,
        })
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

/// Refuses memory growth past the step's limit and remembers that it did.
struct MemoryCap {
    limit: u64,
    exceeded: Option<u64>,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        if desired as u64 > self.limit {
            self.exceeded = Some(desired as u64);
            return Err(wasmtime::format_err!("memory limit of {} bytes exceeded", self.limit));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// A store for calling `describe`: small memory, short deadline, no capabilities.
pub(crate) fn describe_store(engine: &Engine) -> Store<SandboxState> {
    let mut store = Store::new(engine, SandboxState::new(None, 64 << 20));
    store.limiter(|s| &mut s.memory);
    store.set_epoch_deadline(ticks(Duration::from_secs(5)));
    store.epoch_deadline_trap();
    store
}

fn ticks(timeout: Duration) -> u64 {
    (timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
}

/// Instantiates the plugin in a fresh store and calls its `run` export once.
pub(crate) async fn run(
    pre: &StepPre<SandboxState>,
    state: SandboxState,
    limits: &AttemptLimits,
    context: StepContext,
) -> Result<Result<String, WitError>, AttemptError> {
    let mut store = Store::new(pre.engine(), state);
    store.limiter(|s| &mut s.memory);
    // The deadline is relative to the current epoch, so it is set right before the call.
    store.set_epoch_deadline(ticks(limits.timeout));
    store.epoch_deadline_trap();

    let call = async {
        let step = pre.instantiate_async(&mut store).await.map_err(Failure::Instantiate)?;
        step.call_run(&mut store, &context).await.map_err(Failure::Trap)
    };
    // The epoch stops a spinning guest; this timeout also covers a guest blocked in a host call.
    let outcome = tokio::time::timeout(limits.timeout + HOST_CALL_GRACE, call).await;
    let state = store.data();
    match outcome {
        Err(_elapsed) => Err(AttemptError::Timeout(limits.timeout)),
        Ok(Ok(result)) => Ok(result),
        Ok(Err(Failure::Instantiate(e))) => Err(AttemptError::Instantiate(format!("{e:#}"))),
        Ok(Err(Failure::Trap(e))) => {
            if let Some(requested) = state.memory.exceeded {
                return Err(AttemptError::MemoryLimit { limit: state.memory.limit, requested });
            }
            if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
                return Err(AttemptError::Timeout(limits.timeout));
            }
            let stderr = String::from_utf8_lossy(&state.stderr.contents()).into_owned();
            Err(AttemptError::Trap { message: trap_message(&e), stderr })
        }
    }
}

enum Failure {
    Instantiate(wasmtime::Error),
    Trap(wasmtime::Error),
}

/// The trap code when there is one (`{e}` alone shows only backtrace context, per field notes).
fn trap_message(e: &wasmtime::Error) -> String {
    match e.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{e:#}"),
    }
}
