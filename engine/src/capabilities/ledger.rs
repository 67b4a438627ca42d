//! `ledger`: the run's resource ledger as plugins see it. A plugin can delete only what the
//! ledger lists, which is how teardown never touches anything the run did not create, and reads
//! only its own step's entries unless granted `ledger:Read <step-id>`; deleting an entry needs
//! both `ledger:Delete <kind>` and that same visibility.

use super::Capabilities;
use crate::host::bindings::wharf::plugin::ledger::{DeleteOptions, DeleteOutcome, Entry, Host};
use crate::host::bindings::{ErrorKind, WitError};
use crate::host::sandbox::SandboxState;
use crate::journal::{self, EventKind, LogLevel};

impl Host for SandboxState {
    /// The step's own entries, plus those of the steps its `ledger:Read <step-id>` grants name
    /// (`ledger:Read *` for all): what other steps created is not every plugin's business.
    async fn entries(&mut self) -> Result<Vec<Entry>, WitError> {
        let caps = self.caps()?;
        caps.throttle().await;
        let (visible, hidden): (Vec<_>, Vec<_>) = ledger(caps)?.into_iter().partition(|r| visible_to(caps, r));
        if let Some(other) = hidden.first() {
            caps.event(
                EventKind::Log(LogLevel::Info),
                format!(
                    "{} ledger entries of other steps are hidden from this step; grant e.g. \"ledger:Read {}\" (or \"ledger:Read *\") to read them",
                    hidden.len(),
                    other.step_id
                ),
            );
        }
        Ok(visible.iter().map(to_wit).collect())
    }

    async fn delete(&mut self, kind: String, id: String, options: DeleteOptions) -> Result<DeleteOutcome, WitError> {
        let caps = self.caps()?;
        caps.authorize("ledger:Delete", &kind)?;
        let resource = ledger(caps)?.into_iter().find(|r| r.kind == kind && r.id == id).ok_or_else(|| {
            WitError::new(ErrorKind::InvalidInput, "NotInLedger", format!("{kind} {id} was not created by this run"))
        })?;
        // What a step may not read it may not delete either (teardown is granted `ledger:Read *`).
        if !visible_to(caps, &resource) {
            caps.authorize("ledger:Read", &resource.step_id)?;
        }
        if resource.deleted_at_ms.is_some() {
            return Ok(DeleteOutcome::AlreadyGone);
        }
        if caps.plan(&format!("delete {kind}"), &id, "") {
            return Ok(DeleteOutcome::Deleted);
        }
        let days = options.secret_recovery_days;
        let outcome = match kind.split_once(':').map(|(service, _)| service) {
            Some("ecs") => super::ecs::delete(caps, &resource, days).await?,
            Some("ec2") => super::ec2::delete(caps, &resource, days).await?,
            Some("iam") => super::iam::delete(caps, &resource, days).await?,
            Some("secretsmanager") => super::secrets::delete(caps, &resource, days).await?,
            Some("logs") => super::logs::delete(caps, &resource, days).await?,
            Some("registry") => super::registry::delete(caps, &resource, days).await?,
            _ => {
                return Err(WitError::new(
                    ErrorKind::Permanent,
                    "UnknownKind",
                    format!("this wharf cannot delete resources of kind {kind}"),
                ));
            }
        };
        if matches!(outcome, DeleteOutcome::Deleted | DeleteOutcome::AlreadyGone) {
            let journal = caps.journal();
            journal.mark_resource_deleted(&kind, &id).and_then(|_| journal.flush()).map_err(|e| {
                WitError::new(
                    ErrorKind::Retryable,
                    super::STATE_WRITE_FAILED,
                    format!("could not mark {kind} {id} deleted: {e}"),
                )
            })?;
        }
        Ok(outcome)
    }
}

/// The one rule for which entries a step sees: its own, and those of the steps its
/// `ledger:Read <step-id>` grants name.
fn visible_to(caps: &Capabilities, r: &journal::Resource) -> bool {
    r.step_id == caps.step_id || caps.is_granted("ledger:Read", &r.step_id)
}

fn ledger(caps: &Capabilities) -> Result<Vec<journal::Resource>, WitError> {
    caps.journal().resources().map_err(|e| {
        WitError::new(ErrorKind::Retryable, "StateReadFailed", format!("could not read the run ledger: {e}"))
    })
}

fn to_wit(r: &journal::Resource) -> Entry {
    Entry {
        kind: r.kind.clone(),
        id: r.id.clone(),
        name: r.name.clone(),
        step_id: r.step_id.clone(),
        created_at_ms: r.created_at_ms,
        deleted: r.deleted_at_ms.is_some(),
        attributes: r.attributes.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    }
}
