//! `ledger-audit`: a policy gate, typically the last step of a deployment. It reads the run's
//! resource ledger (everything a host capability created in this run) and fails the run if it
//! created kinds of resources the policy does not allow, or more resources than allowed.
//!
//! ```toml
//! [[steps]]
//! id = "audit"
//! plugin = "./ledger-audit.wasm"
//! needs = ["cluster", "service"]
//! grants = ["ledger:Read *"]
//! with = { allowed_kinds = ["ecs:*", "ec2:security-group", "logs:log-group"], max_resources = 20 }
//! ```
//!
//! Reading what other steps created needs `ledger:Read <step-id>`; `*` reads the whole run. This is the example plugin
//! of `docs/writing-plugins.md`.

use serde::{Deserialize, Serialize};
use wharf_plugin_sdk::{Context, Error, Step, info, ledger};

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// Resource kinds the run may create: exact (`ecs:cluster`) or a whole service (`ec2:*`).
    pub allowed_kinds: Vec<String>,
    /// At most this many live resources.
    #[serde(default)]
    pub max_resources: Option<u32>,
}

#[derive(Serialize, Debug)]
pub struct Output {
    /// Live (not deleted) resources this run created.
    pub total: u32,
    /// Their kinds, sorted, without duplicates.
    pub kinds: Vec<String>,
}

pub struct LedgerAudit;

impl Step for LedgerAudit {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "ledger-audit";
    const DESCRIPTION: &'static str =
        "Fails the run if it created resource kinds outside `allowed_kinds` or too many resources.";
    const GRANTS: &'static [&'static str] = &["ledger:Read *"];

    fn run(_ctx: &Context, input: Input) -> Result<Output, Error> {
        for pattern in &input.allowed_kinds {
            if !pattern.contains(':') || pattern.starts_with(':') {
                return Err(Error::invalid_input(format!(
                    "`allowed_kinds` entry `{pattern}`: write a kind like `ecs:cluster` or a service like `ec2:*`"
                )));
            }
        }
        let live: Vec<ledger::Entry> = ledger::entries()?.into_iter().filter(|e| !e.deleted).collect();
        let disallowed: Vec<String> = live
            .iter()
            .filter(|e| !input.allowed_kinds.iter().any(|p| allows(p, &e.kind)))
            .map(|e| format!("{} {} (step {})", e.kind, e.id, e.step_id))
            .collect();
        if !disallowed.is_empty() {
            // Permanent: retrying cannot un-create them. The run fails; `wharf teardown` cleans up.
            return Err(Error::permanent(
                "DisallowedResources",
                format!(
                    "this run created resources the policy does not allow: {}; add their kinds to `allowed_kinds` or change the workflow",
                    disallowed.join("; ")
                ),
            ));
        }
        let total = live.len() as u32;
        if let Some(max) = input.max_resources.filter(|max| total > *max) {
            return Err(Error::permanent(
                "TooManyResources",
                format!("this run created {total} resources, more than {max}"),
            ));
        }
        let mut kinds: Vec<String> = live.into_iter().map(|e| e.kind).collect();
        kinds.sort();
        kinds.dedup();
        info!("{total} resource(s) of allowed kinds: {}", kinds.join(", "));
        Ok(Output { total, kinds })
    }
}

/// `ecs:cluster` allows exactly that kind; `ecs:*` every kind of the service.
fn allows(pattern: &str, kind: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => kind.starts_with(prefix),
        None => pattern == kind,
    }
}

wharf_plugin_sdk::export_step!(LedgerAudit);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wharf_plugin_sdk::testing::FakeHost;

    fn entry(kind: &str, id: &str, deleted: bool) -> ledger::Entry {
        ledger::Entry {
            kind: kind.into(),
            id: id.into(),
            name: None,
            step_id: "cluster".into(),
            created_at_ms: 0,
            deleted,
            attributes: vec![],
        }
    }

    fn host_with_ledger() -> FakeHost {
        let host = FakeHost::new();
        host.on_entries(|| {
            Ok(vec![
                entry("ecs:cluster", "arn:aws:ecs:eu-west-1:1:cluster/web", false),
                entry("ec2:security-group", "sg-1", false),
                entry("iam:role", "arn:aws:iam::1:role/old", true),
            ])
        });
        host
    }

    #[test]
    fn allowed_kinds_pass_and_deleted_resources_do_not_count() {
        let host = host_with_ledger();
        let out = host.run::<LedgerAudit>(json!({ "allowed_kinds": ["ecs:*", "ec2:security-group"] })).unwrap();
        assert_eq!(out, json!({ "total": 2, "kinds": ["ec2:security-group", "ecs:cluster"] }));
        assert_eq!(host.logs(), ["info: 2 resource(s) of allowed kinds: ec2:security-group, ecs:cluster"]);
    }

    #[test]
    fn other_kinds_and_too_many_resources_fail_permanently() {
        let host = host_with_ledger();
        let err = host.run::<LedgerAudit>(json!({ "allowed_kinds": ["ecs:cluster"] })).unwrap_err();
        assert_eq!(err.code(), "DisallowedResources");
        assert!(err.message().contains("ec2:security-group sg-1 (step cluster)"), "{err}");
        assert!(!err.is_retryable());
        let err =
            host.run::<LedgerAudit>(json!({ "allowed_kinds": ["ecs:*", "ec2:*"], "max_resources": 1 })).unwrap_err();
        assert_eq!(err.code(), "TooManyResources");
    }

    #[test]
    fn bad_patterns_are_refused_before_reading_the_ledger() {
        let host = FakeHost::new(); // no `on_entries`: reading the ledger would panic
        let err = host.run::<LedgerAudit>(json!({ "allowed_kinds": ["cluster"] })).unwrap_err();
        assert!(err.message().contains("`ecs:cluster`"), "{err}");
        assert!(host.calls().is_empty());
    }

    #[test]
    fn ledger_errors_fail_the_step_as_the_host_classified_them() {
        let host = FakeHost::new();
        host.on_entries(|| Err(Error::retryable("JournalBusy", "try again")));
        assert!(host.run::<LedgerAudit>(json!({ "allowed_kinds": ["ecs:*"] })).unwrap_err().is_retryable());
    }
}
