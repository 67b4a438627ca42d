//! One memory budget per attempt, shared by all of its stores.
//!
//! A step's `memory` is what the attempt may hold in total: every linear memory and table of the
//! step's instance and of its parts (`parallel.run-all`, one store each) is charged to the same
//! [`MemoryBudget`]. A per-memory cap would give a component with N memories, or a step with N
//! parts, N times its limit. Each store also has a bounded number of core instances, memories
//! and tables, so a component cannot make the host reserve unbounded address space either.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime::ResourceLimiter;

/// Core instances one store may create. A Rust guest component has 3 (field notes); the room
/// above that is for other toolchains' adapters, not for a component made of many modules.
pub const MAX_CORE_INSTANCES: usize = 8;
/// Linear memories one store may create (a Rust guest has 1; other toolchains may use a few).
pub const MAX_MEMORIES: usize = 4;
/// Tables one store may create (a Rust guest has its own and, usually, the component shim's).
pub const MAX_TABLES: usize = 4;
/// What one table element is charged: a pointer, as wasmtime stores funcrefs and externrefs.
const TABLE_ELEMENT_BYTES: u64 = 8;
/// Most elements one table may have, whatever the budget says.
const MAX_TABLE_ELEMENTS: usize = 1_000_000;

/// Bytes of linear memory and tables an attempt holds across its stores, and its limit.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: u64,
    used: AtomicU64,
}

impl MemoryBudget {
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(MemoryBudget { limit, used: AtomicU64::new(0) })
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Takes `bytes` from the budget; `Err(total)` with the total it would have come to.
    fn reserve(&self, bytes: u64) -> Result<(), u64> {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let total = used.saturating_add(bytes);
            if total > self.limit {
                return Err(total);
            }
            match self.used.compare_exchange_weak(used, total, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Ok(()),
                Err(now) => used = now,
            }
        }
    }

    fn release(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// One store's limiter: charges the store's growth to the attempt's budget and gives it back
/// when the store is dropped.
#[derive(Debug)]
pub struct StoreLimiter {
    budget: Arc<MemoryBudget>,
    /// What this store holds of the budget.
    held: u64,
    /// The last growth allowed, given back if wasmtime then fails to perform it.
    pending: u64,
    /// The attempt's total a refused growth would have come to.
    pub exceeded: Option<u64>,
}

impl StoreLimiter {
    pub fn new(budget: Arc<MemoryBudget>) -> Self {
        StoreLimiter { budget, held: 0, pending: 0, exceeded: None }
    }

    pub fn budget(&self) -> &Arc<MemoryBudget> {
        &self.budget
    }

    fn grow(&mut self, bytes: u64) -> wasmtime::Result<bool> {
        if let Err(total) = self.budget.reserve(bytes) {
            self.exceeded = Some(total);
            return Err(wasmtime::format_err!("memory limit of {} bytes exceeded", self.budget.limit));
        }
        self.held += bytes;
        self.pending = bytes;
        Ok(true)
    }

    fn grow_failed(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        self.held -= pending;
        self.budget.release(pending);
    }
}

impl ResourceLimiter for StoreLimiter {
    // Also called for a memory's initial size at instantiation (current = 0).
    fn memory_growing(&mut self, current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        self.grow(desired.saturating_sub(current) as u64)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.grow_failed();
        Ok(())
    }

    fn table_growing(&mut self, current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            return Ok(false);
        }
        self.grow(desired.saturating_sub(current) as u64 * TABLE_ELEMENT_BYTES)
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.grow_failed();
        Ok(())
    }

    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }
}

impl Drop for StoreLimiter {
    fn drop(&mut self) {
        self.budget.release(self.held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_of_one_attempt_share_its_budget_and_give_it_back_when_dropped() {
        let budget = MemoryBudget::new(100 << 20);
        let mut step = StoreLimiter::new(budget.clone());
        let mut part = StoreLimiter::new(budget.clone());
        assert!(step.memory_growing(0, 60 << 20, None).unwrap());
        assert!(part.memory_growing(0, 30 << 20, None).is_ok());
        // 60 + 30 + 20 MiB is over the attempt's 100 MiB, though each store is under it.
        assert!(part.memory_growing(30 << 20, 50 << 20, None).is_err());
        assert_eq!(part.exceeded, Some(110 << 20));
        drop(step);
        let mut next = StoreLimiter::new(budget.clone());
        assert!(next.memory_growing(0, 60 << 20, None).unwrap(), "the dropped store's memory was not given back");
        // A growth wasmtime could not perform is given back too.
        assert!(next.table_growing(0, 1000, None).unwrap());
        next.table_grow_failed(wasmtime::format_err!("no")).unwrap();
        assert_eq!(budget.used.load(Ordering::Relaxed), 90 << 20);
    }
}
