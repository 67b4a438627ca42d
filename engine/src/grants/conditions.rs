//! Condition keys: what a grant line may say about a call beyond its resource, like the condition
//! keys of AWS's own policies (`iam:PolicyARN`). Written after the resource as `key=pattern`;
//! several lines with the same action and resource add up. A grant that does not name a key gets
//! the key's default, which is as narrow as the call allows.

/// `@created` in a resource or condition pattern: any resource this run created (its ledger).
pub const CREATED: &str = "@created";

/// One condition key of one action.
pub struct ConditionKey {
    pub action: &'static str,
    pub key: &'static str,
    /// What the key constrains, for error messages and `wharf plugin inspect`.
    pub about: &'static str,
    /// Patterns that apply when a matching grant does not name the key (empty: nothing).
    pub default: &'static [&'static str],
}

/// Every condition key wharf checks. A new resource-bearing parameter of a host function that is
/// not the call's resource becomes a key here (the walk test in `capabilities/authorization_tests.rs`
/// fails until it is).
pub const KEYS: &[ConditionKey] = &[
    ConditionKey {
        action: "iam:CreateRole",
        key: "trust",
        about: "a principal the role's trust policy lets assume it",
        default: &["ecs-tasks.amazonaws.com"],
    },
    ConditionKey {
        action: "iam:AttachRolePolicy",
        key: "policy",
        about: "the ARN of the managed policy attached",
        default: &[],
    },
    ConditionKey {
        action: "iam:PutRolePolicy",
        key: "allow",
        about: "an `ACTION@RESOURCE` the inline policy allows (its ceiling)",
        default: &[],
    },
    ConditionKey {
        action: "ecs:CreateService",
        key: "task-definition",
        about: "the task definition the service runs",
        default: &[CREATED],
    },
    ConditionKey { action: "ecs:CreateService", key: "subnet", about: "a subnet of its tasks", default: &[CREATED] },
    ConditionKey {
        action: "ecs:CreateService",
        key: "security-group",
        about: "a security group of its tasks",
        default: &[CREATED],
    },
    ConditionKey {
        action: "ecs:UpdateService",
        key: "task-definition",
        about: "the task definition the service runs",
        default: &[CREATED],
    },
    ConditionKey { action: "ecs:UpdateService", key: "subnet", about: "a subnet of its tasks", default: &[CREATED] },
    ConditionKey {
        action: "ecs:UpdateService",
        key: "security-group",
        about: "a security group of its tasks",
        default: &[CREATED],
    },
];

/// The key `key` of `action`, if wharf knows it.
pub fn lookup(action: &str, key: &str) -> Option<&'static ConditionKey> {
    KEYS.iter().find(|k| k.action == action && k.key == key)
}

/// The keys of actions matching `action_pattern` (for the syntax check of a grant line).
pub fn keys_for(action_pattern: &super::pattern::Pattern) -> Vec<&'static ConditionKey> {
    KEYS.iter().filter(|k| action_pattern.matches(k.action)).collect()
}
