//! What changed in a workflow since a run started (checked before resuming it).

use std::collections::BTreeMap;

/// One step whose definition differs from the one the run started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepChange {
    Added(String),
    Removed(String),
    Changed(String),
}

impl std::fmt::Display for StepChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepChange::Added(id) => write!(f, "step `{id}` was added"),
            StepChange::Removed(id) => write!(f, "step `{id}` was removed"),
            StepChange::Changed(id) => write!(f, "step `{id}` changed (definition or plugin)"),
        }
    }
}

/// Compares step hashes recorded at run start with the current ones.
pub fn diff(recorded: &BTreeMap<String, String>, current: &BTreeMap<String, String>) -> Vec<StepChange> {
    let mut changes = Vec::new();
    for (id, hash) in current {
        match recorded.get(id) {
            None => changes.push(StepChange::Added(id.clone())),
            Some(old) if old != hash => changes.push(StepChange::Changed(id.clone())),
            Some(_) => {}
        }
    }
    for id in recorded.keys().filter(|id| !current.contains_key(*id)) {
        changes.push(StepChange::Removed(id.clone()));
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_added_removed_and_changed() {
        let rec: BTreeMap<_, _> =
            [("a", "1"), ("b", "2"), ("c", "3")].map(|(k, v)| (k.to_string(), v.to_string())).into();
        let cur: BTreeMap<_, _> =
            [("a", "1"), ("b", "9"), ("d", "4")].map(|(k, v)| (k.to_string(), v.to_string())).into();
        let d = diff(&rec, &cur);
        assert_eq!(
            d,
            vec![StepChange::Changed("b".into()), StepChange::Added("d".into()), StepChange::Removed("c".into())]
        );
    }
}
