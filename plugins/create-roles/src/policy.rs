//! The policy documents the roles get, and comparing documents by meaning rather than by text
//! (IAM reformats what it stores, and `"a"` means the same as `["a"]`).

use serde_json::{Map, Value, json};

/// The service principal ECS tasks assume roles as.
pub const ECS_TASKS: &str = "ecs-tasks.amazonaws.com";
/// The AWS managed policy that lets the ECS agent pull images and write logs.
pub const EXECUTION_MANAGED_POLICY: &str = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy";

/// Both roles trust ECS tasks, and only them.
pub fn trust_policy() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": ECS_TASKS },
            "Action": "sts:AssumeRole",
        }],
    })
}

/// The task role's S3 access: `s3:PutObject` on each `s3_write` pattern and `s3:GetObject` on
/// each `s3_read` pattern, nothing else (never bucket-wide or `s3:*`). None when both are empty.
pub fn s3_policy(write: &[String], read: &[String]) -> Result<Option<Value>, String> {
    let mut statements = Vec::new();
    for (sid, action, field, patterns) in
        [("WharfS3Write", "s3:PutObject", "s3_write", write), ("WharfS3Read", "s3:GetObject", "s3_read", read)]
    {
        if patterns.is_empty() {
            continue;
        }
        let arns = patterns.iter().map(|p| object_arn(field, p)).collect::<Result<Vec<_>, _>>()?;
        statements.push(json!({ "Sid": sid, "Effect": "Allow", "Action": action, "Resource": arns }));
    }
    Ok((!statements.is_empty()).then(|| json!({ "Version": "2012-10-17", "Statement": statements })))
}

/// The execution role's right to read exactly the registry credentials secret.
pub fn registry_secret_policy(arn: &str) -> Result<Value, String> {
    let parts: Vec<&str> = arn.split(':').collect();
    if parts.len() < 7 || parts[0] != "arn" || parts[2] != "secretsmanager" || parts[5] != "secret" {
        return Err(format!(
            "`registry_secret_arn` must be a Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME), got `{arn}`"
        ));
    }
    if arn.contains('*') {
        return Err("`registry_secret_arn` must name one secret, without `*`".into());
    }
    Ok(json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "WharfRegistryCredentials",
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": arn,
        }],
    }))
}

/// `bucket/key-pattern` as an object ARN, with the bucket name checked.
fn object_arn(field: &str, pattern: &str) -> Result<String, String> {
    let hint = format!("each `{field}` entry is `bucket/key-pattern`, e.g. \"my-bucket/app/*\"");
    if pattern.starts_with("arn:") || pattern.starts_with("s3://") {
        return Err(format!("`{field}` entry `{pattern}`: write it without the prefix; {hint}"));
    }
    let Some((bucket, key)) = pattern.split_once('/') else {
        return Err(format!("`{field}` entry `{pattern}` names no key; {hint}"));
    };
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if !bucket_ok {
        return Err(format!("`{field}` entry `{pattern}`: `{bucket}` is not a valid bucket name; {hint}"));
    }
    if key.is_empty() || key.chars().any(char::is_whitespace) {
        return Err(format!("`{field}` entry `{pattern}` has an empty or blank key pattern; {hint}"));
    }
    Ok(format!("arn:aws:s3:::{bucket}/{key}"))
}

/// True when two policy documents mean the same.
pub fn same_meaning(a: &Value, b: &Value) -> bool {
    normalize(a) == normalize(b)
}

/// Fields where IAM accepts one value or a list of them; order inside them does not matter.
const LIST_FIELDS: &[&str] =
    &["Statement", "Action", "NotAction", "Resource", "NotResource", "Service", "AWS", "Federated", "CanonicalUser"];

/// A canonical form: `Sid`s dropped (labels), one-or-many fields as sorted lists, condition
/// values as sorted lists.
fn normalize(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| k.as_str() != "Sid")
                .map(|(k, v)| {
                    let v = match k.as_str() {
                        k if LIST_FIELDS.contains(&k) => sorted_list(v),
                        "Condition" => normalize_condition(v),
                        _ => normalize(v),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(normalize).collect()),
        other => other.clone(),
    }
}

fn sorted_list(v: &Value) -> Value {
    let items = match v {
        Value::Array(items) => items.iter().map(normalize).collect(),
        single => vec![normalize(single)],
    };
    let mut items: Vec<(String, Value)> = items.into_iter().map(|i| (i.to_string(), i)).collect();
    items.sort_by(|a, b| a.0.cmp(&b.0));
    items.dedup_by(|a, b| a.0 == b.0);
    Value::Array(items.into_iter().map(|(_, i)| i).collect())
}

/// `{"StringEquals": {"k": "v"}}` means the same as `{"StringEquals": {"k": ["v"]}}`.
fn normalize_condition(v: &Value) -> Value {
    let Value::Object(operators) = v else { return normalize(v) };
    let map: Map<String, Value> = operators
        .iter()
        .map(|(op, keys)| {
            let keys = match keys {
                Value::Object(keys) => Value::Object(keys.iter().map(|(k, v)| (k.clone(), sorted_list(v))).collect()),
                other => normalize(other),
            };
            (op.clone(), keys)
        })
        .collect();
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn s3_policy_grants_only_the_listed_objects() {
        let policy = s3_policy(&strings(&["projectjz/ecs-example/*"]), &strings(&["cfg-bucket/app.json"])).unwrap();
        let policy = policy.unwrap();
        let statements = policy["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 2);
        assert_eq!(statements[0]["Action"], "s3:PutObject");
        assert_eq!(statements[0]["Resource"], json!(["arn:aws:s3:::projectjz/ecs-example/*"]));
        assert_eq!(statements[1]["Action"], "s3:GetObject");
        assert_eq!(statements[1]["Resource"], json!(["arn:aws:s3:::cfg-bucket/app.json"]));
        assert!(!policy.to_string().contains("s3:*"));
        assert_eq!(s3_policy(&[], &[]).unwrap(), None);
    }

    #[test]
    fn s3_patterns_are_validated() {
        for bad in ["projectjz", "arn:aws:s3:::b/k", "s3://bucket/k", "Bad_Bucket/k", "bucket/", "ab/k"] {
            let err = s3_policy(&strings(&[bad]), &[]).unwrap_err();
            assert!(err.contains("s3_write") && err.contains("bucket/key-pattern"), "{bad}: {err}");
        }
    }

    #[test]
    fn registry_policy_names_exactly_one_secret() {
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:reg-AbCdEf";
        let policy = registry_secret_policy(arn).unwrap();
        assert_eq!(policy["Statement"][0]["Resource"], arn);
        assert_eq!(policy["Statement"][0]["Action"], "secretsmanager:GetSecretValue");
        assert!(registry_secret_policy("my-secret").is_err());
        assert!(registry_secret_policy("arn:aws:secretsmanager:eu-west-1:1:secret:*").is_err());
        assert!(registry_secret_policy("arn:aws:s3:::bucket/key").is_err());
    }

    #[test]
    fn trust_policies_compare_by_meaning() {
        let ours = trust_policy();
        // What the console creates: a Sid, the service as a list, and IAM's own key order.
        let console: Value = serde_json::from_str(
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"","Effect":"Allow",
                "Principal":{"Service":["ecs-tasks.amazonaws.com"]},"Action":["sts:AssumeRole"]}]}"#,
        )
        .unwrap();
        assert!(same_meaning(&ours, &console));
        let ec2: Value = serde_json::from_str(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
                "Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        )
        .unwrap();
        assert!(!same_meaning(&ours, &ec2));
        let wider: Value = serde_json::from_str(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
                "Principal":{"Service":["ecs-tasks.amazonaws.com","ec2.amazonaws.com"]},"Action":"sts:AssumeRole"}]}"#,
        )
        .unwrap();
        assert!(!same_meaning(&ours, &wider));
    }

    #[test]
    fn list_order_and_condition_shape_do_not_matter() {
        let a = json!({"Statement": [{"Action": ["b", "a"], "Condition": {"StringEquals": {"k": "v"}}}]});
        let b = json!({"Statement": {"Action": ["a", "b"], "Condition": {"StringEquals": {"k": ["v"]}}}});
        assert!(same_meaning(&a, &b));
        let c = json!({"Statement": {"Action": ["a", "b"], "Condition": {"StringEquals": {"k": ["w"]}}}});
        assert!(!same_meaning(&a, &c));
    }
}
