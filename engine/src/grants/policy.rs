//! What an IAM policy document a plugin sends would allow, as condition values to authorize:
//! the principals a trust policy names (`trust=`) and the action/resource pairs an inline policy
//! allows (`allow=`). Read before the document is sent, so one that exceeds the grants is refused
//! with the offending statement named. `Deny` statements only take away, so they pass.

use serde_json::Value;

/// One statement's label for messages: its `Sid`, else its position.
fn label(index: usize, statement: &Value) -> String {
    match statement.get("Sid").and_then(Value::as_str) {
        Some(sid) => format!("statement {} (Sid `{sid}`)", index + 1),
        None => format!("statement {}", index + 1),
    }
}

/// The statements of `document` that allow something, with their labels.
fn allow_statements(document: &str, what: &str) -> Result<Vec<(String, Value)>, String> {
    let doc: Value = serde_json::from_str(document).map_err(|e| format!("the {what} is not JSON: {e}"))?;
    let statements = match doc.get("Statement") {
        Some(Value::Array(list)) => list.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => return Err(format!("the {what} has no `Statement`")),
    };
    let mut allows = Vec::new();
    for (i, statement) in statements.iter().enumerate() {
        let label = label(i, statement);
        match statement.get("Effect").and_then(Value::as_str) {
            Some("Allow") => allows.push((label, statement.clone())),
            Some("Deny") => {}
            _ => return Err(format!("{label} of the {what} needs `Effect` `Allow` or `Deny`")),
        }
    }
    Ok(allows)
}

/// A string or a list of strings (IAM accepts both).
fn strings(value: &Value, field: &str, label: &str) -> Result<Vec<String>, String> {
    let list = match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| format!("{label}: `{field}` must be a string or a list of strings"))?,
        _ => return Err(format!("{label}: `{field}` must be a string or a list of strings")),
    };
    if list.iter().any(|s| s.chars().any(char::is_whitespace)) {
        return Err(format!("{label}: `{field}` values contain no spaces"));
    }
    Ok(list)
}

/// Every principal the trust policy's `Allow` statements name: service principals, account and
/// role ARNs, federated providers, or `*` for anyone.
pub fn trusted_principals(document: &str) -> Result<Vec<(String, String)>, String> {
    let mut principals = Vec::new();
    for (label, statement) in allow_statements(document, "trust policy")? {
        if statement.get("NotPrincipal").is_some() {
            return Err(format!("{label} uses `NotPrincipal`, which trusts almost everyone; name the principals"));
        }
        match statement.get("Principal") {
            Some(Value::String(s)) => principals.push((label.clone(), s.clone())),
            Some(Value::Object(kinds)) => {
                for (kind, value) in kinds {
                    for p in strings(value, &format!("Principal.{kind}"), &label)? {
                        principals.push((label.clone(), p));
                    }
                }
            }
            _ => return Err(format!("{label} of the trust policy names no `Principal`")),
        }
    }
    Ok(principals)
}

/// Every `ACTION@RESOURCE` the inline policy's `Allow` statements grant (a missing `Resource` is
/// `*`), with the statement that grants it.
pub fn allowed_pairs(document: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    for (label, statement) in allow_statements(document, "policy document")? {
        for not in ["NotAction", "NotResource"] {
            if statement.get(not).is_some() {
                return Err(format!("{label} uses `{not}`, which no ceiling can bound; list what it allows instead"));
            }
        }
        let actions = strings(statement.get("Action").unwrap_or(&Value::Null), "Action", &label)?;
        let resources = match statement.get("Resource") {
            Some(r) => strings(r, "Resource", &label)?,
            None => vec!["*".to_string()],
        };
        for action in &actions {
            // `@` separates the two halves of an `allow=` value; an action never contains it.
            if action.contains('@') || !(action == "*" || action.contains(':')) {
                return Err(format!("{label}: `{action}` is not an IAM action like `s3:PutObject`"));
            }
            for resource in &resources {
                pairs.push((label.clone(), format!("{action}@{resource}")));
            }
        }
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_policies_name_their_principals() {
        let ecs = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        assert_eq!(trusted_principals(ecs).unwrap(), [("statement 1".into(), "ecs-tasks.amazonaws.com".into())]);
        let outsider = r#"{"Statement":{"Sid":"x","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::999999999999:root"],"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}}"#;
        let names: Vec<String> = trusted_principals(outsider).unwrap().into_iter().map(|(_, p)| p).collect();
        assert_eq!(names, ["arn:aws:iam::999999999999:root", "ecs-tasks.amazonaws.com"]);
        let anyone = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"sts:AssumeRole"}]}"#;
        assert_eq!(trusted_principals(anyone).unwrap()[0].1, "*");
        let deny_only = r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"sts:AssumeRole"}]}"#;
        assert!(trusted_principals(deny_only).unwrap().is_empty());
        for bad in [
            "not json",
            r#"{"Statement":[{"Effect":"Allow","NotPrincipal":{"AWS":"x"}}]}"#,
            r#"{"Statement":[{"Effect":"Maybe"}]}"#,
        ] {
            assert!(trusted_principals(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn inline_policies_allow_action_resource_pairs() {
        let doc = r#"{"Statement":[
            {"Effect":"Allow","Action":["s3:PutObject","s3:GetObject"],"Resource":"arn:aws:s3:::b/k"},
            {"Sid":"All","Effect":"Allow","Action":"*"},
            {"Effect":"Deny","Action":"*","Resource":"*"}]}"#;
        let pairs: Vec<String> = allowed_pairs(doc).unwrap().into_iter().map(|(_, p)| p).collect();
        assert_eq!(pairs, ["s3:PutObject@arn:aws:s3:::b/k", "s3:GetObject@arn:aws:s3:::b/k", "*@*"]);
        assert_eq!(allowed_pairs(doc).unwrap()[2].0, "statement 2 (Sid `All`)");
        for bad in [
            r#"{"Statement":[{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:Get@x","Resource":"*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":["a b"]}]}"#,
        ] {
            assert!(allowed_pairs(bad).is_err(), "{bad}");
        }
    }
}
