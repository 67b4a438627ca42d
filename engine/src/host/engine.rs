//! The one wasmtime [`Engine`] of a wharf process and the thread that advances its epoch.

use super::limiter;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, UpdateDeadline};

/// How often the epoch advances. A guest running wasm code is checked against its deadline, and
/// yields to the executor, once per tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Largest memory one step may ask for (`memory = ...` in a workflow is capped here).
pub const MAX_STEP_MEMORY: u64 = 4 << 30;

/// Which instance allocator the engine ended up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocatorKind {
    Pooling,
    /// The OS refused the pooling allocator's address-space reservation (e.g. `ulimit -v`).
    OnDemand,
}

/// The engine plus its epoch ticker. Cheap to clone; the ticker stops when the last clone drops.
#[derive(Clone)]
pub struct WasmEngine {
    pub engine: Engine,
    pub allocator: AllocatorKind,
    _ticker: Arc<Ticker>,
}

impl WasmEngine {
    /// Builds the engine, preferring the pooling allocator sized for `max_concurrent_steps`.
    pub fn new(max_concurrent_steps: u32) -> wasmtime::Result<Self> {
        let (engine, allocator) = match Engine::new(&config(Some(max_concurrent_steps))) {
            Ok(engine) => (engine, AllocatorKind::Pooling),
            Err(_) => (Engine::new(&config(None))?, AllocatorKind::OnDemand),
        };
        let ticker = Ticker::start(engine.clone());
        Ok(WasmEngine { engine, allocator, _ticker: Arc::new(ticker) })
    }
}

/// Bytes of a freed linear memory reset in place rather than returned to the OS: a Rust guest's
/// stack and data are about 1.1 MiB, of which a short step touches a small part.
const KEEP_RESIDENT: usize = 1 << 20;

/// Stops `store`'s guest with `Trap::Interrupt` once `deadline` has passed, and until then makes
/// it yield to the tokio executor at every epoch tick: a spinning guest holds a worker thread
/// for one tick at a time, not until its deadline, so other steps on that worker go on. (A guest
/// blocked in a host call is not in wasm code; the caller's timeout stops it, `sandbox.rs`.)
pub(crate) fn stop_at<T: Send>(store: &mut Store<T>, deadline: Instant) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= deadline {
            return Ok(UpdateDeadline::Interrupt);
        }
        Ok(UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now())))
    });
}

fn config(pooling_slots: Option<u32>) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // Deadlines: guests are interrupted when the epoch passes their deadline.
    config.epoch_interruption(true);
    if let Some(slots) = pooling_slots {
        // Headroom for `describe` calls alongside running steps, and the steps' parts.
        let slots = slots.max(1) * 2 + super::parts::MAX_PART_INSTANCES;
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(slots)
            // A Rust guest component has 3 core instances and 1 memory (field notes).
            .total_core_instances(slots * 4)
            .total_memories(slots * 2)
            .total_tables(slots * 4)
            .total_stacks(slots)
            // What one store may create at all (host/limiter.rs); a component asking for more is
            // refused before it takes slots other steps need.
            .max_core_instances_per_component(limiter::MAX_CORE_INSTANCES as u32)
            .max_memories_per_component(limiter::MAX_MEMORIES as u32)
            .max_tables_per_component(limiter::MAX_TABLES as u32)
            .max_memory_size(MAX_STEP_MEMORY as usize)
            // Reset a freed slot by zeroing the pages the guest touched (found with the PAGEMAP_SCAN
            // ioctl where the kernel has it) instead of madvise: every madvise flushes the TLB of
            // every core, which was a tenth of the cost of a short step. Guests that used more keep
            // the madvise for the rest; either way the next guest sees zeroed memory.
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(64 << 10)
            .pagemap_scan(Enabled::Auto);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// A dedicated OS thread that increments the epoch. It must not share a current-thread tokio
/// runtime with a spinning guest, which would starve it (field notes).
struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Ticker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("wharf-epoch".into())
            .spawn(move || {
                // The epoch follows the wall clock, not the number of sleeps: on a loaded machine a
                // sleep overshoots, and counting sleeps would stop guests late.
                let start = std::time::Instant::now();
                let mut ticks: u128 = 0;
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    let due = start.elapsed().as_millis() / EPOCH_TICK.as_millis();
                    while ticks < due {
                        engine.increment_epoch();
                        ticks += 1;
                    }
                }
            })
            .expect("spawning the epoch thread");
        Ticker { stop }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
