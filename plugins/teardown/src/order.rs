//! The order resources are deleted in: dependents before what they depend on.

use wharf_plugin_sdk::ledger::Entry as Resource;

/// Kinds in deletion order, each with the group that deletes it. A service must be gone before
/// its cluster, task definition, image and roles; an image before the secret that may hold the
/// registry credentials teardown reads; roles lose their policies before they can be deleted; the
/// network goes from what sits in the VPC to the VPC itself.
///
/// The host runs one teardown per group (`group` input): `services` first, then the others at
/// once (nothing in one depends on another once the services are gone), then one without a group
/// that sweeps up what none of them covers.
///
/// Within a group, the third number is the kind's stage: stages go in order, and what is in one
/// stage is deleted at once (nothing in it depends on anything else in it). A role loses its
/// attached and inline policies together, then goes; the security group, route table and
/// gateway leave the VPC together, then its subnets, then the VPC. The sweep goes kind by kind.
const ORDER: &[(&str, &str, u8)] = &[
    ("ecs:service", "services", 0),
    ("ecs:task-definition", "ecs", 0),
    ("registry:image", "registry", 0),
    ("logs:log-group", "logs", 0),
    ("ecs:cluster", "ecs", 1),
    ("secretsmanager:secret", "registry", 1),
    ("iam:attached-policy", "iam", 0),
    ("iam:role-policy", "iam", 0),
    ("iam:role", "iam", 1),
    ("ec2:security-group", "network", 0),
    ("ec2:route-table", "network", 0),
    ("ec2:internet-gateway", "network", 0),
    ("ec2:subnet", "network", 1),
    ("ec2:vpc", "network", 2),
];

/// The groups a teardown can be split into.
pub fn is_group(name: &str) -> bool {
    ORDER.iter().any(|(_, g, _)| *g == name)
}

/// Whether `kind` is deleted by `group` (`None`: every kind).
pub fn in_group(kind: &str, group: Option<&str>) -> bool {
    group.is_none_or(|g| ORDER.iter().any(|(k, kg, _)| *k == kind && *kg == g))
}

/// Sorts by kind rank, then newest first within a kind. Unknown kinds go last, so the host
/// reports them rather than this plugin guessing.
pub fn teardown_order(mut resources: Vec<Resource>) -> Vec<Resource> {
    resources.sort_by(|a, b| rank(&a.kind).cmp(&rank(&b.kind)).then(b.created_at_ms.cmp(&a.created_at_ms)));
    resources
}

fn rank(kind: &str) -> usize {
    ORDER.iter().position(|(k, _, _)| *k == kind).unwrap_or(ORDER.len())
}

/// Resources in [`teardown_order`] cut into waves deleted one after the other, each wave's at
/// once: a group's stages, or kind by kind in the sweep (`grouped` false).
pub fn waves(ordered: Vec<Resource>, grouped: bool) -> Vec<Vec<Resource>> {
    let key = |kind: &str| {
        let stage = ORDER.iter().find(|(k, _, _)| *k == kind).map(|(_, _, stage)| usize::from(*stage));
        if grouped { stage.unwrap_or(usize::MAX) } else { rank(kind) }
    };
    let mut waves: Vec<Vec<Resource>> = Vec::new();
    for resource in ordered {
        match waves.last_mut() {
            Some(wave) if key(&wave[0].kind) == key(&resource.kind) => wave.push(resource),
            _ => waves.push(vec![resource]),
        }
    }
    waves
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

    #[test]
    fn a_group_goes_stage_by_stage_and_the_sweep_kind_by_kind() {
        let network = teardown_order(vec![
            r("ec2:vpc", 1),
            r("ec2:subnet", 2),
            r("ec2:subnet", 3),
            r("ec2:internet-gateway", 4),
            r("ec2:route-table", 5),
            r("ec2:security-group", 6),
        ]);
        let ids = |waves: Vec<Vec<Resource>>| -> Vec<Vec<String>> {
            waves.into_iter().map(|w| w.into_iter().map(|r| r.id).collect()).collect()
        };
        assert_eq!(
            ids(waves(network.clone(), true)),
            [
                vec!["ec2:security-group-6", "ec2:route-table-5", "ec2:internet-gateway-4"],
                vec!["ec2:subnet-3", "ec2:subnet-2"],
                vec!["ec2:vpc-1"],
            ]
        );
        assert_eq!(waves(network, false).len(), 5, "the sweep: one kind at a time");
    }
}
