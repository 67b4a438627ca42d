//! Test-only fault injection (cargo feature `fault-injection`, off in release builds): makes the
//! first N calls of an action fail as AWS would, so tests can prove how errors are handled.
//!
//! `WHARF_FAULTS="ecs:CreateService=unable-to-assume-role*2,iam:CreateRole=throttling*1"`
//!
//! `WHARF_CRASH_AT="after:ecs:CreateService"` (or `before:`) kills the process with SIGKILL
//! right before or after that AWS call: the moments a crash is hardest to recover from.
//! `WHARF_CRASH_AT="before:#12"` / `"after:#12"` does it at the 12th AWS call this process
//! makes (any action), so a harness can hit every call of a run in turn (tests/e2e/torture.rs).
//!
//! `WHARF_AWS_ATTEMPT_TIMEOUT_MS` shortens the SDK's per-attempt timeout, so tests whose fault
//! proxy never answers a request do not wait 30 s per hung call (tests/e2e/faults.rs).

use super::aws::classify;
use crate::host::bindings::WitError;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Remaining injections per action.
fn plan() -> &'static Mutex<HashMap<String, (String, u32)>> {
    static PLAN: OnceLock<Mutex<HashMap<String, (String, u32)>>> = OnceLock::new();
    PLAN.get_or_init(|| {
        let spec = std::env::var("WHARF_FAULTS").unwrap_or_default();
        let entries = spec.split(',').filter_map(|entry| {
            let (action, rest) = entry.trim().split_once('=')?;
            let (fault, count) = rest.split_once('*').unwrap_or((rest, "1"));
            Some((action.to_string(), (fault.to_string(), count.parse().unwrap_or(1))))
        });
        Mutex::new(entries.collect())
    })
}

/// The error to return instead of calling AWS, if one is planned for `action`.
pub fn injected(action: &str) -> Option<WitError> {
    let mut plan = plan().lock().unwrap();
    let (fault, remaining) = plan.get_mut(action)?;
    if *remaining == 0 {
        return None;
    }
    *remaining -= 1;
    // The same classification real responses get.
    let (code, message, status) = match fault.as_str() {
        "unable-to-assume-role" => (
            "InvalidParameterException",
            "ECS was unable to assume the role 'arn:aws:iam::123456789012:role/x' that was provided for this task.",
            400,
        ),
        "throttling" => ("ThrottlingException", "Rate exceeded", 400),
        "access-denied" => ("AccessDeniedException", "User is not authorized to perform this operation", 403),
        _ => ("InternalFailure", "injected server error", 500),
    };
    Some(WitError {
        kind: classify(code, message, Some(status)),
        code: code.into(),
        message: format!("{action} failed: {message} (injected)"),
        http_status: Some(status),
    })
}

/// AWS calls this process has started (numbers the `#N` crash points).
static CALLS: AtomicU32 = AtomicU32::new(0);

/// Dies if `WHARF_CRASH_AT` names this call (by action or by number) before it is sent; returns
/// the call's number for [`crash_after`]. Numbered here, at the start of the call, because steps
/// run concurrently: "after #N" must mean after the N-th call that started, not the N-th to end.
pub fn crash_before(action: &str) -> u32 {
    let number = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    crash_if("before", action, number);
    number
}

/// Dies if `WHARF_CRASH_AT` names this call after its response arrived (before wharf records it).
pub fn crash_after(action: &str, number: u32) {
    crash_if("after", action, number);
}

fn crash_if(moment: &str, action: &str, number: u32) {
    let Ok(at) = std::env::var("WHARF_CRASH_AT") else { return };
    if at == format!("{moment}:{action}") || at == format!("{moment}:#{number}") {
        eprintln!("wharf: crashing {moment} AWS call #{number} {action} (WHARF_CRASH_AT)");
        // SIGKILL itself, not `abort`: no handler, no destructor, no flush, as when the OOM
        // killer or a lost machine stops wharf.
        // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        std::process::abort();
    }
}

/// The SDK attempt timeout override from `WHARF_AWS_ATTEMPT_TIMEOUT_MS`, if set.
pub fn attempt_timeout() -> Option<Duration> {
    std::env::var("WHARF_AWS_ATTEMPT_TIMEOUT_MS").ok()?.parse().ok().map(Duration::from_millis)
}
