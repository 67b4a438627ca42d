//! Test-only fault injection (cargo feature `fault-injection`, off in release builds): makes the
//! first N calls of an action fail as AWS would, so tests can prove how errors are handled.
//!
//! `WHARF_FAULTS="ecs:CreateService=unable-to-assume-role*2,iam:CreateRole=throttling*1"`
//!
//! `WHARF_CRASH_AT="after:ecs:CreateService"` (or `before:`) kills the process with SIGKILL
//! semantics (`abort`, no destructors, no flush) right before or after that AWS call: the
//! moments a crash is hardest to recover from.

use super::aws::classify;
use crate::host::bindings::WitError;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

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

/// Aborts the process if `WHARF_CRASH_AT` names this moment (`before:ACTION` / `after:ACTION`).
pub fn crash_point(moment: &str, action: &str) {
    if std::env::var("WHARF_CRASH_AT").is_ok_and(|at| at == format!("{moment}:{action}")) {
        eprintln!("wharf: crashing {moment} {action} (WHARF_CRASH_AT)");
        std::process::abort();
    }
}
