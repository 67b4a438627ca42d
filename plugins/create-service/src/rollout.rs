//! Judging a deployment from one snapshot of its service. Pure, so every case is unit-tested.
//!
//! The service-level view ("steady state", running == desired) is exactly what reports success
//! after a circuit-breaker rollback: the service is stable again, on the OLD task definition. We
//! follow our own deployment by id instead.

use wharf_plugin_sdk::ecs::{Deployment, Service};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Still rolling out; the text is a progress line.
    Waiting(String),
    Succeeded,
    /// Will never succeed; the text says why.
    Failed(String),
}

/// The deployment a create/update just started: the PRIMARY one running our task definition.
/// Falls back to whatever is PRIMARY (returned with `false`), because some ECS implementations
/// (moto) keep the old task definition on the deployment after an update.
pub fn started_deployment<'a>(service: &'a Service, task_definition: &str) -> Option<(&'a Deployment, bool)> {
    let mut primary = service.deployments.iter().filter(|d| d.status == "PRIMARY");
    let ours = primary.clone().find(|d| d.task_definition == task_definition);
    ours.map(|d| (d, true)).or_else(|| primary.next().map(|d| (d, false)))
}

/// Where deployment `id` stands in `service`.
pub fn decide(service: &Service, id: &str) -> Decision {
    if service.status != "ACTIVE" {
        return Decision::Failed(format!("the service is {} (being deleted)", service.status));
    }
    let primary = service.deployments.iter().find(|d| d.status == "PRIMARY");
    let Some(ours) = service.deployments.iter().find(|d| d.id == id) else {
        return Decision::Failed(match primary {
            Some(p) => format!(
                "deployment {id} is gone (rolled back or replaced); ECS now runs {}",
                describe_replacement(p, None)
            ),
            None => format!("deployment {id} is gone and the service has no primary deployment"),
        });
    };
    match ours.rollout_state.as_str() {
        "FAILED" => return Decision::Failed(format!("deployment {id} failed: {}", reason(ours))),
        // Checked by id, so a rollback deployment completing never counts as ours.
        "COMPLETED" => return Decision::Succeeded,
        _ => {}
    }
    if ours.status != "PRIMARY" {
        return Decision::Failed(match primary {
            Some(p) => format!("deployment {id} was replaced; ECS now runs {}", describe_replacement(p, Some(ours))),
            None => format!("deployment {id} is {} and nothing is primary", ours.status),
        });
    }
    // Without a rollout state (older ECS behaviour) the best evidence is: ours alone, all running.
    if ours.rollout_state.is_empty() && service.deployments.len() == 1 && ours.running_count == ours.desired_count {
        return Decision::Succeeded;
    }
    Decision::Waiting(progress(ours))
}

/// `deployment ecs-svc/123: 1/2 running, 1 pending, 3 failed`.
pub fn progress(d: &Deployment) -> String {
    let mut line = format!("deployment {}: {}/{} running", d.id, d.running_count, d.desired_count);
    if d.pending_count > 0 {
        line.push_str(&format!(", {} pending", d.pending_count));
    }
    if d.failed_tasks > 0 {
        line.push_str(&format!(", {} failed", d.failed_tasks));
    }
    line
}

fn reason(d: &Deployment) -> String {
    if d.rollout_state_reason.is_empty() { "ECS gave no reason".into() } else { d.rollout_state_reason.clone() }
}

/// The deployment that took over; with ours at hand, whether it was a rollback.
fn describe_replacement(primary: &Deployment, ours: Option<&Deployment>) -> String {
    let what = match ours {
        None => "",
        Some(o) if o.task_definition != primary.task_definition => " (a rollback)",
        Some(_) => " (another deployment of the same task definition)",
    };
    format!("deployment {} of {}{what}", primary.id, primary.task_definition)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEW: &str = "arn:aws:ecs:us-east-1:1:task-definition/app:2";
    const OLD: &str = "arn:aws:ecs:us-east-1:1:task-definition/app:1";

    fn deployment(id: &str, status: &str, rollout: &str, td: &str, running: u32, desired: u32) -> Deployment {
        Deployment {
            id: id.into(),
            status: status.into(),
            rollout_state: rollout.into(),
            rollout_state_reason: String::new(),
            task_definition: td.into(),
            desired_count: desired,
            running_count: running,
            pending_count: desired.saturating_sub(running),
            failed_tasks: 0,
            created_at_ms: 0,
        }
    }

    fn service(deployments: Vec<Deployment>) -> Service {
        Service {
            arn: "arn:aws:ecs:us-east-1:1:service/c/s".into(),
            name: "s".into(),
            status: "ACTIVE".into(),
            task_definition: NEW.into(),
            desired_count: 2,
            running_count: 2,
            deployments,
            events: Vec::new(),
        }
    }

    #[test]
    fn in_progress_waits_with_a_progress_line() {
        let s = service(vec![
            deployment("ecs-svc/new", "PRIMARY", "IN_PROGRESS", NEW, 1, 2),
            deployment("ecs-svc/old", "ACTIVE", "COMPLETED", OLD, 2, 2),
        ]);
        assert_eq!(
            decide(&s, "ecs-svc/new"),
            Decision::Waiting("deployment ecs-svc/new: 1/2 running, 1 pending".into())
        );
    }

    #[test]
    fn completed_succeeds() {
        let s = service(vec![deployment("ecs-svc/new", "PRIMARY", "COMPLETED", NEW, 2, 2)]);
        assert_eq!(decide(&s, "ecs-svc/new"), Decision::Succeeded);
    }

    #[test]
    fn failed_reports_the_reason() {
        let mut ours = deployment("ecs-svc/new", "PRIMARY", "FAILED", NEW, 0, 2);
        ours.rollout_state_reason = "ECS deployment circuit breaker: tasks failed to start.".into();
        let Decision::Failed(why) = decide(&service(vec![ours]), "ecs-svc/new") else { panic!() };
        assert!(why.contains("circuit breaker: tasks failed to start"), "{why}");
    }

    /// The #1 pain point: after a rollback the SERVICE is stable (2/2 running, one COMPLETED
    /// primary deployment), but on the old task definition. That must be a failure.
    #[test]
    fn rollback_is_a_failure_even_though_the_service_is_stable() {
        // While rolling back: ours is FAILED (ACTIVE), the rollback deployment is PRIMARY.
        let mut failed = deployment("ecs-svc/new", "ACTIVE", "FAILED", NEW, 0, 2);
        failed.rollout_state_reason = "ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/rb.".into();
        let s = service(vec![deployment("ecs-svc/rb", "PRIMARY", "IN_PROGRESS", OLD, 1, 2), failed]);
        let Decision::Failed(why) = decide(&s, "ecs-svc/new") else { panic!() };
        assert!(why.contains("rolling back"), "{why}");

        // After the rollback finished: ours is gone, the service looks perfectly healthy.
        let stable = service(vec![deployment("ecs-svc/rb", "PRIMARY", "COMPLETED", OLD, 2, 2)]);
        let Decision::Failed(why) = decide(&stable, "ecs-svc/new") else { panic!("stable after rollback must fail") };
        assert!(why.contains("is gone (rolled back") && why.contains(OLD), "{why}");
    }

    #[test]
    fn replaced_while_in_progress_is_a_failure() {
        // Ours not FAILED yet, but no longer primary: the rollback took over.
        let s = service(vec![
            deployment("ecs-svc/rb", "PRIMARY", "IN_PROGRESS", OLD, 0, 2),
            deployment("ecs-svc/new", "ACTIVE", "IN_PROGRESS", NEW, 0, 2),
        ]);
        let Decision::Failed(why) = decide(&s, "ecs-svc/new") else { panic!() };
        assert!(why.contains("was replaced") && why.contains("a rollback"), "{why}");

        // Someone else redeployed the same task definition: still not ours to report.
        let s = service(vec![
            deployment("ecs-svc/other", "PRIMARY", "IN_PROGRESS", NEW, 0, 2),
            deployment("ecs-svc/new", "ACTIVE", "IN_PROGRESS", NEW, 1, 2),
        ]);
        let Decision::Failed(why) = decide(&s, "ecs-svc/new") else { panic!() };
        assert!(why.contains("another deployment of the same task definition"), "{why}");
    }

    #[test]
    fn a_completed_deployment_that_was_later_superseded_still_succeeded() {
        let s = service(vec![
            deployment("ecs-svc/later", "PRIMARY", "IN_PROGRESS", NEW, 0, 2),
            deployment("ecs-svc/new", "ACTIVE", "COMPLETED", NEW, 2, 2),
        ]);
        assert_eq!(decide(&s, "ecs-svc/new"), Decision::Succeeded);
    }

    #[test]
    fn without_rollout_state_needs_a_single_fully_running_primary() {
        let alone = service(vec![deployment("ecs-svc/new", "PRIMARY", "", NEW, 2, 2)]);
        assert_eq!(decide(&alone, "ecs-svc/new"), Decision::Succeeded);
        let partial = service(vec![deployment("ecs-svc/new", "PRIMARY", "", NEW, 1, 2)]);
        assert!(matches!(decide(&partial, "ecs-svc/new"), Decision::Waiting(_)));
        let old_still_there = service(vec![
            deployment("ecs-svc/new", "PRIMARY", "", NEW, 2, 2),
            deployment("ecs-svc/old", "ACTIVE", "", OLD, 1, 0),
        ]);
        assert!(matches!(decide(&old_still_there, "ecs-svc/new"), Decision::Waiting(_)));
    }

    #[test]
    fn a_draining_service_fails() {
        let mut s = service(vec![deployment("ecs-svc/new", "PRIMARY", "IN_PROGRESS", NEW, 0, 2)]);
        s.status = "DRAINING".into();
        assert!(matches!(decide(&s, "ecs-svc/new"), Decision::Failed(_)));
    }

    #[test]
    fn progress_mentions_failed_tasks() {
        let mut d = deployment("ecs-svc/1", "PRIMARY", "IN_PROGRESS", NEW, 0, 2);
        d.failed_tasks = 3;
        assert_eq!(progress(&d), "deployment ecs-svc/1: 0/2 running, 2 pending, 3 failed");
    }

    #[test]
    fn finds_the_started_deployment() {
        let s = service(vec![
            deployment("ecs-svc/old", "ACTIVE", "COMPLETED", OLD, 2, 2),
            deployment("ecs-svc/new", "PRIMARY", "IN_PROGRESS", NEW, 0, 2),
        ]);
        assert_eq!(started_deployment(&s, NEW).map(|(d, exact)| (d.id.as_str(), exact)), Some(("ecs-svc/new", true)));
        // moto keeps the old task definition on the primary deployment after an update.
        let moto = service(vec![deployment("ecs-svc/only", "PRIMARY", "COMPLETED", OLD, 2, 2)]);
        assert_eq!(
            started_deployment(&moto, NEW).map(|(d, exact)| (d.id.as_str(), exact)),
            Some(("ecs-svc/only", false))
        );
        assert!(started_deployment(&service(Vec::new()), NEW).is_none());
    }
}
