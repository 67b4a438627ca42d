//! `teardown`: deletes exactly what a run's ledger lists, in reverse dependency order.
//!
//! The ledger capability only deletes resources the run created, so this plugin cannot touch
//! anything else. Deletions already done (by an earlier, interrupted teardown) are skipped;
//! "already gone" counts as deleted; what cannot be deleted is reported with its reason.

mod order;

use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use wharf_plugin_sdk::ledger::{self, DeleteOptions, DeleteOutcome};
use wharf_plugin_sdk::parallel::{self, Part};
use wharf_plugin_sdk::{Context, Error, Step, log};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// Days Secrets Manager keeps deleted secrets recoverable (7-30); absent deletes at once.
    #[serde(default)]
    pub secret_recovery_days: Option<u32>,
    /// Keep CloudWatch log groups (their logs outlive the deployment).
    #[serde(default)]
    pub keep_log_groups: bool,
    /// Also delete the images the run pushed (`registry:image`, by digest: the registry drops
    /// every tag naming that manifest). Off by default: an image usually outlives a deployment.
    #[serde(default)]
    pub delete_images: bool,
    /// How long to wait for slow deletions (draining services, detaching network interfaces).
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Only the kinds of this group (`services`, `ecs`, `registry`, `logs`, `iam`, `network`;
    /// see order.rs): the host runs the groups concurrently. Absent: every kind.
    #[serde(default)]
    pub group: Option<String>,
}

fn default_timeout_secs() -> u64 {
    600
}

#[derive(Serialize, Debug, PartialEq)]
pub struct Leftover {
    pub kind: String,
    pub id: String,
    pub reason: String,
}

#[derive(Serialize, Debug)]
pub struct Output {
    pub deleted: u32,
    pub already_gone: u32,
    pub kept: Vec<String>,
}

pub struct Teardown;

impl Step for Teardown {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "teardown";
    const DESCRIPTION: &'static str = "Deletes what the run created, in reverse dependency order.";
    const GRANTS: &'static [&'static str] = &["ledger:Read *", "ledger:Delete *"];

    fn run(_ctx: &Context, input: Input) -> Result<Output, Error> {
        if let Some(days) = input.secret_recovery_days {
            if !(7..=30).contains(&days) {
                return Err(Error::invalid_input(
                    "`secret_recovery_days` must be between 7 and 30 (or absent to delete at once)",
                ));
            }
        }
        if let Some(group) = input.group.as_deref().filter(|g| !order::is_group(g)) {
            return Err(Error::invalid_input(format!(
                "`group` {group:?} is not one of services, ecs, registry, logs, iam, network (or absent for all)"
            )));
        }
        let deadline = Instant::now() + Duration::from_secs(input.timeout_secs);
        let options = DeleteOptions { secret_recovery_days: input.secret_recovery_days };
        let mut output = Output { deleted: 0, already_gone: 0, kept: vec![] };
        let mut leftovers = Vec::new();
        // Whether some leftover failed on a transient AWS error (a timeout, a 5xx).
        let mut any_transient = false;

        let group = input.group.as_deref();
        let live: Vec<_> =
            ledger::entries()?.into_iter().filter(|r| !r.deleted && order::in_group(&r.kind, group)).collect();
        let mut doomed = Vec::new();
        for resource in order::teardown_order(live) {
            let keep = match resource.kind.as_str() {
                "logs:log-group" => input.keep_log_groups,
                "registry:image" => !input.delete_images,
                _ => false,
            };
            if keep {
                output.kept.push(resource.id.clone());
            } else {
                doomed.push(resource);
            }
        }
        let grouped = group.is_some();
        let mut waves = order::waves(doomed, grouped).into_iter();
        while let Some(wave) = waves.next() {
            let failed_before = leftovers.len();
            for (resource, result) in delete_wave(&wave, &options, deadline)? {
                match result {
                    Ok(DeleteOutcome::AlreadyGone) => output.already_gone += 1,
                    Ok(_) => output.deleted += 1,
                    Err((reason, transient)) => {
                        log::warn(&format!("could not delete {} {}: {reason}", resource.kind, resource.id));
                        any_transient |= transient;
                        leftovers.push(Leftover { kind: resource.kind.clone(), id: resource.id.clone(), reason });
                    }
                }
            }
            // A group's later stages hold what its earlier ones could not delete (a VPC with its
            // gateway still attached): they would only wait for the deadline and fail. Leave them
            // to the next attempt, which starts again from what is left. (The sweep's kinds come
            // from different groups: it goes on.)
            if grouped && leftovers.len() > failed_before {
                let first = &leftovers[failed_before];
                let reason = format!("not tried: {} {} before it could not be deleted", first.kind, first.id);
                for resource in waves.by_ref().flatten() {
                    leftovers.push(Leftover { kind: resource.kind, id: resource.id, reason: reason.clone() });
                }
            }
        }
        if !leftovers.is_empty() {
            let list: Vec<String> = leftovers.iter().map(|l| format!("{} {} ({})", l.kind, l.id, l.reason)).collect();
            // Not retryable by the scheduler: pending deletions were already waited for, and what
            // is left needs a person (the reasons say what). Deletions so far are recorded.
            // Except when a cause was transient (AWS timed out or answered 5xx): the next attempt
            // will most likely finish, including what failed *because* of it (a role whose attached
            // policy could not be detached answers DeleteConflict, a permanent error); a permanent
            // cause fails the retries the same way and ends with this message (tests/e2e/faults.rs).
            let message = format!(
                "{} resource(s) could not be deleted: {}; fix the cause, then run `wharf teardown` for this run again",
                leftovers.len(),
                list.join("; ")
            );
            return Err(if any_transient {
                Error::retryable("Leftovers", message)
            } else {
                Error::permanent("Leftovers", message)
            });
        }
        log::info(&format!("deleted {}, already gone {}", output.deleted, output.already_gone));
        Ok(output)
    }

    fn run_part(_ctx: &Context, part: &str, input: &str) -> Result<String, Error> {
        if part != DELETE_PART {
            return Err(parallel::unknown(Self::NAME, part));
        }
        let i: DeleteIn = parallel::input(part, input)?;
        let deadline = Instant::now() + Duration::from_millis(i.deadline_in_ms);
        let options = DeleteOptions { secret_recovery_days: i.secret_recovery_days };
        let result = delete_until_done(&i.kind, &i.id, &options, deadline);
        parallel::encode(part, &DeleteOut::from(result))
    }
}

const DELETE_PART: &str = "delete";

/// A deletion run as a part of the step.
#[derive(Serialize, Deserialize)]
struct DeleteIn {
    kind: String,
    id: String,
    secret_recovery_days: Option<u32>,
    deadline_in_ms: u64,
}

/// [`delete_until_done`]'s result, as a part returns it.
#[derive(Serialize, Deserialize)]
enum DeleteOut {
    Deleted,
    AlreadyGone,
    Failed { reason: String, transient: bool },
}

impl From<Result<DeleteOutcome, (String, bool)>> for DeleteOut {
    fn from(result: Result<DeleteOutcome, (String, bool)>) -> Self {
        match result {
            Ok(DeleteOutcome::AlreadyGone) => DeleteOut::AlreadyGone,
            Ok(_) => DeleteOut::Deleted,
            Err((reason, transient)) => DeleteOut::Failed { reason, transient },
        }
    }
}

type Deletion<'a> = (&'a ledger::Entry, Result<DeleteOutcome, (String, bool)>);

/// Deletes one wave: a single resource here, more at once as parts (at most
/// [`parallel::MAX_PARTS`] at a time). A part the host could not run counts as a failed deletion.
fn delete_wave<'a>(
    wave: &'a [ledger::Entry],
    options: &DeleteOptions,
    deadline: Instant,
) -> Result<Vec<Deletion<'a>>, Error> {
    if let [only] = wave {
        return Ok(vec![(only, delete_until_done(&only.kind, &only.id, options, deadline))]);
    }
    let mut done = Vec::new();
    for chunk in wave.chunks(parallel::MAX_PARTS) {
        let deadline_in_ms = deadline.saturating_duration_since(Instant::now()).as_millis() as u64;
        let parts = chunk
            .iter()
            .map(|r| {
                let i = DeleteIn {
                    kind: r.kind.clone(),
                    id: r.id.clone(),
                    secret_recovery_days: options.secret_recovery_days,
                    deadline_in_ms,
                };
                Part::new(DELETE_PART, &i)
            })
            .collect::<Result<Vec<_>, Error>>()?;
        for (resource, result) in chunk.iter().zip(parallel::run_all(&parts)) {
            let deletion = match parallel::output::<DeleteOut>(result) {
                Ok(DeleteOut::Deleted) => Ok(DeleteOutcome::Deleted),
                Ok(DeleteOut::AlreadyGone) => Ok(DeleteOutcome::AlreadyGone),
                Ok(DeleteOut::Failed { reason, transient }) => Err((reason, transient)),
                Err(e) => Err((format!("{}: {}", e.code(), e.message()), e.is_retryable())),
            };
            done.push((resource, deletion));
        }
    }
    Ok(done)
}

/// Deletes one resource, calling again with backoff while the deletion is pending.
fn delete_until_done(
    kind: &str,
    id: &str,
    options: &DeleteOptions,
    deadline: Instant,
) -> Result<DeleteOutcome, (String, bool)> {
    let mut wait = Duration::from_secs(2);
    loop {
        match ledger::delete(kind, id, DeleteOptions { secret_recovery_days: options.secret_recovery_days }) {
            Ok(DeleteOutcome::Pending(why)) => {
                if Instant::now() + wait > deadline {
                    return Err((format!("still pending at the deadline: {why}"), false));
                }
                log::progress(&format!("{kind} {id}: {why}; checking again in {}s", wait.as_secs()));
                std::thread::sleep(wait);
                wait = (wait * 3 / 2).min(Duration::from_secs(15));
            }
            Ok(done) => {
                log::info(&format!("{kind} {id}: deleted"));
                return Ok(done);
            }
            Err(e) => {
                return Err((format!("{}: {}", e.code, e.message), e.kind == wharf_plugin_sdk::ErrorKind::Retryable));
            }
        }
    }
}

wharf_plugin_sdk::export_step!(Teardown);

/// The whole step against a fake ledger.
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
            step_id: "deploy".into(),
            created_at_ms: 1,
            deleted,
            attributes: vec![],
        }
    }

    /// In a group, what an earlier stage could not delete holds the later stages: they are not
    /// tried (a VPC would only wait for the deadline with its gateway attached) and the next
    /// attempt, retryable here, starts again from what is left.
    #[test]
    fn a_failed_stage_of_a_group_leaves_the_later_stages_to_the_next_attempt() {
        let host = FakeHost::new();
        host.on_entries(|| {
            Ok(vec![
                entry("ec2:vpc", "vpc-1", false),
                entry("ec2:subnet", "subnet-1", false),
                entry("ec2:internet-gateway", "igw-1", false),
                entry("ec2:security-group", "sg-1", false),
            ])
        });
        host.on_delete(|kind, _, _| match kind {
            "ec2:internet-gateway" => Err(Error::retryable("InternalError", "try again")),
            _ => Ok(DeleteOutcome::Deleted),
        });
        let err = host.run::<Teardown>(json!({ "group": "network" })).unwrap_err();
        assert!(err.is_retryable(), "{err}");
        let tried: Vec<String> = host.calls_to("ledger::delete").iter().map(|c| c.args[1].clone()).collect();
        assert_eq!(tried, ["\"sg-1\"", "\"igw-1\""], "the stage of the gateway, then nothing");
        assert!(err.message().contains("ec2:vpc vpc-1 (not tried: ec2:internet-gateway igw-1 before"), "{err}");
    }

    fn ledger_of_a_deployment(host: &FakeHost) {
        host.on_entries(|| {
            Ok(vec![
                entry("ec2:security-group", "sg-1", false),
                entry("ecs:cluster", "arn:cluster", false),
                entry("iam:role", "arn:role", true),
                entry("logs:log-group", "/ecs/web", false),
                entry("ecs:service", "arn:service", false),
            ])
        });
    }

    #[test]
    fn deletes_dependents_first_and_skips_what_is_already_deleted() {
        let host = FakeHost::new();
        ledger_of_a_deployment(&host);
        host.on_delete(|kind, _, _| {
            Ok(if kind == "logs:log-group" { DeleteOutcome::AlreadyGone } else { DeleteOutcome::Deleted })
        });
        let out = host.run::<Teardown>(json!({})).unwrap();
        assert_eq!(out, json!({ "deleted": 3, "already_gone": 1, "kept": [] }));
        let order: Vec<String> = host.calls_to("ledger::delete").iter().map(|c| c.args[1].clone()).collect();
        assert_eq!(order, ["\"arn:service\"", "\"/ecs/web\"", "\"arn:cluster\"", "\"sg-1\""]);
    }

    #[test]
    fn failed_deletions_are_reported_as_leftovers_after_trying_the_rest() {
        let host = FakeHost::new();
        ledger_of_a_deployment(&host);
        host.on_delete(|kind, _, _| match kind {
            "ecs:cluster" => Err(Error::permanent("ClusterContainsServicesException", "still has services")),
            _ => Ok(DeleteOutcome::Deleted),
        });
        let err = host.run::<Teardown>(json!({ "keep_log_groups": true })).unwrap_err();
        // Not retried by the scheduler: pending deletions were already waited for.
        assert!(!err.is_retryable());
        assert_eq!(err.code(), "Leftovers");
        assert!(err.message().contains("ecs:cluster arn:cluster (ClusterContainsServicesException"), "{err}");
        // The security group after the failed cluster was still attempted; the log group was kept.
        assert_eq!(host.calls_to("ledger::delete").len(), 3);
        assert!(host.logs().iter().any(|l| l.starts_with("warn: could not delete ecs:cluster")));
    }

    #[test]
    fn a_transient_failure_makes_the_leftovers_retryable_with_the_failures_it_caused() {
        let host = FakeHost::new();
        ledger_of_a_deployment(&host);
        host.on_delete(|kind, _, _| match kind {
            "ecs:service" => Err(Error::retryable("Throttling", "slow down")),
            "ecs:cluster" => Err(Error::permanent("ClusterContainsServicesException", "still has services")),
            _ => Ok(DeleteOutcome::Deleted),
        });
        let err = host.run::<Teardown>(json!({})).unwrap_err();
        assert!(err.is_retryable(), "{err}");
        assert_eq!(err.code(), "Leftovers");
    }

    /// A ledger with an image, the secret holding its credentials and what runs it.
    fn host_with_an_image() -> FakeHost {
        let host = FakeHost::new();
        host.on_entries(|| {
            Ok(vec![
                entry("registry:image", "127.0.0.1:5000/app@sha256:1", false),
                entry("secretsmanager:secret", "arn:secret", false),
                entry("ecs:task-definition", "arn:td", false),
                entry("ecs:service", "arn:service", false),
            ])
        });
        host.on_delete(|_, _, _| Ok(DeleteOutcome::Deleted));
        host
    }

    #[test]
    fn images_are_kept_unless_asked_and_deleted_after_the_services_using_them() {
        let host = host_with_an_image();
        let out = host.run::<Teardown>(json!({})).unwrap();
        assert_eq!(out, json!({ "deleted": 3, "already_gone": 0, "kept": ["127.0.0.1:5000/app@sha256:1"] }));

        let host = host_with_an_image();
        host.run::<Teardown>(json!({ "delete_images": true })).unwrap();
        let order: Vec<String> = host.calls_to("ledger::delete").iter().map(|c| c.args[1].clone()).collect();
        // The image goes after what runs it, and before the secret that may hold its credentials.
        assert_eq!(order, ["\"arn:service\"", "\"arn:td\"", "\"127.0.0.1:5000/app@sha256:1\"", "\"arn:secret\""]);
    }

    #[test]
    fn a_group_deletes_only_its_kinds() {
        let host = FakeHost::new();
        ledger_of_a_deployment(&host);
        host.on_delete(|_, _, _| Ok(DeleteOutcome::Deleted));
        let out = host.run::<Teardown>(json!({ "group": "ecs" })).unwrap();
        assert_eq!(out, json!({ "deleted": 1, "already_gone": 0, "kept": [] }));
        let order: Vec<String> = host.calls_to("ledger::delete").iter().map(|c| c.args[1].clone()).collect();
        assert_eq!(order, ["\"arn:cluster\""]);

        let err = FakeHost::new().run::<Teardown>(json!({ "group": "everything" })).unwrap_err();
        assert!(err.message().contains("not one of services"), "{err}");
    }

    #[test]
    fn recovery_days_outside_7_to_30_are_refused_before_reading_the_ledger() {
        let host = FakeHost::new();
        let err = host.run::<Teardown>(json!({ "secret_recovery_days": 3 })).unwrap_err();
        assert!(err.message().contains("between 7 and 30"), "{err}");
        assert!(host.calls().is_empty());
    }
}
