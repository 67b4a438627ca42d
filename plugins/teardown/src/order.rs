//! The order resources are deleted in: dependents before what they depend on.

use wharf_plugin_sdk::ledger::Entry as Resource;

/// Kinds in deletion order, each with the group that deletes it. A service must be gone before
/// its cluster, task definition, image and roles; an image before the secret that may hold the
/// registry credentials teardown reads; roles lose their policies before they can be deleted; the
/// network goes from what sits in the VPC to the VPC itself.
///
/// The host runs one teardown per group (`group` input): `services` first, then the others at
/// once (nothing in one depends on another once the services are gone), then one without a group
/// that sweeps up what none of them covers. Kinds in one group keep this order.
const ORDER: &[(&str, &str)] = &[
    ("ecs:service", "services"),
    ("ecs:task-definition", "ecs"),
    ("registry:image", "registry"),
    ("logs:log-group", "logs"),
    ("ecs:cluster", "ecs"),
    ("secretsmanager:secret", "registry"),
    ("iam:attached-policy", "iam"),
    ("iam:role-policy", "iam"),
    ("iam:role", "iam"),
    ("ec2:security-group", "network"),
    ("ec2:route-table", "network"),
    ("ec2:internet-gateway", "network"),
    ("ec2:subnet", "network"),
    ("ec2:vpc", "network"),
];

/// The groups a teardown can be split into.
pub fn is_group(name: &str) -> bool {
    ORDER.iter().any(|(_, g)| *g == name)
}

/// Whether `kind` is deleted by `group` (`None`: every kind).
pub fn in_group(kind: &str, group: Option<&str>) -> bool {
    group.is_none_or(|g| ORDER.iter().any(|(k, kg)| *k == kind && *kg == g))
}

/// Sorts by kind rank, then newest first within a kind. Unknown kinds go last, so the host
/// reports them rather than this plugin guessing.
pub fn teardown_order(mut resources: Vec<Resource>) -> Vec<Resource> {
    let rank = |kind: &str| ORDER.iter().position(|(k, _)| *k == kind).unwrap_or(ORDER.len());
    resources.sort_by(|a, b| rank(&a.kind).cmp(&rank(&b.kind)).then(b.created_at_ms.cmp(&a.created_at_ms)));
    resources
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(kind: &str, at: u64) -> Resource {
        Resource {
            kind: kind.into(),
            id: format!("{kind}-{at}"),
            name: None,
            step_id: "s".into(),
            created_at_ms: at,
            deleted: false,
            attributes: vec![],
        }
    }

    #[test]
    fn dependents_go_first_and_newest_first_within_a_kind() {
        let sorted = teardown_order(vec![
            r("ec2:vpc", 1),
            r("iam:role", 2),
            r("ecs:cluster", 3),
            r("ec2:subnet", 4),
            r("ec2:subnet", 5),
            r("iam:role-policy", 6),
            r("ecs:service", 7),
            r("mystery:thing", 0),
        ]);
        let ids: Vec<&str> = sorted.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "ecs:service-7",
                "ecs:cluster-3",
                "iam:role-policy-6",
                "iam:role-2",
                "ec2:subnet-5",
                "ec2:subnet-4",
                "ec2:vpc-1",
                "mystery:thing-0"
            ]
        );
    }

    #[test]
    fn every_known_kind_has_one_group_and_unknown_kinds_only_the_sweep() {
        assert!(in_group("ec2:vpc", Some("network")));
        assert!(!in_group("ec2:vpc", Some("services")));
        assert!(in_group("mystery:thing", None));
        assert!(
            !["services", "ecs", "registry", "logs", "iam", "network"]
                .iter()
                .any(|g| in_group("mystery:thing", Some(g)))
        );
        assert!(is_group("iam") && !is_group("everything"));
    }
}
