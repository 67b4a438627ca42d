//! The order resources are deleted in: dependents before what they depend on.

use wharf_plugin_sdk::ledger::Entry as Resource;

/// Kinds in deletion order. A service must be gone before its cluster, task definition, image
/// and roles; an image before the secret that may hold the registry credentials teardown reads; roles lose their policies before they can be deleted; the network goes last, from
/// what sits in the VPC to the VPC itself.
const ORDER: &[&str] = &[
    "ecs:service",
    "ecs:task-definition",
    "registry:image",
    "logs:log-group",
    "ecs:cluster",
    "secretsmanager:secret",
    "iam:attached-policy",
    "iam:role-policy",
    "iam:role",
    "ec2:security-group",
    "ec2:route-table",
    "ec2:internet-gateway",
    "ec2:subnet",
    "ec2:vpc",
];

/// Sorts by kind rank, then newest first within a kind. Unknown kinds go last, so the host
/// reports them rather than this plugin guessing.
pub fn teardown_order(mut resources: Vec<Resource>) -> Vec<Resource> {
    let rank = |kind: &str| ORDER.iter().position(|k| *k == kind).unwrap_or(ORDER.len());
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
}
