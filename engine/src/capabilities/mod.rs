//! Host capabilities: what plugins may ask the host to do, one module per capability.
//!
//! Every call goes through [`Capabilities`]: the grant check (deny by default), the step's
//! transcript, the shared AWS error mapping and the resource ledger live here once.

pub mod aws;
pub mod digest;
pub mod ec2;
pub mod ecs;
#[cfg(feature = "fault-injection")]
mod faults;
pub mod iam;
pub mod ledger;
pub mod limits;
pub mod log;
pub mod logs;
pub mod registry;
pub mod s3;
pub mod secrets;

use crate::events::EventSink;
use crate::grants::{Denied, GrantSet, Need};
use crate::host::bindings::{ErrorKind, WitError};
use crate::journal::{EventKind, LogLevel, Resource};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Whether mutating calls are sent (`Apply`) or only recorded (`Plan`, for `wharf plan`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CallMode {
    #[default]
    Apply,
    Plan,
}

/// The tag naming the run that created a resource (with `wharf:step`, see [`Capabilities::tags`]).
pub const RUN_TAG: &str = "wharf:run";

/// The error code of every failure to write the run journal; a step that gets it ends at once
/// (scheduler/step.rs).
pub const STATE_WRITE_FAILED: &str = "StateWriteFailed";

/// What one step attempt may do, and where its calls are recorded.
pub struct Capabilities {
    pub run_id: String,
    pub step_id: String,
    grants: GrantSet,
    events: EventSink,
    aws: Arc<aws::Aws>,
    mode: CallMode,
    /// The workflow file's directory: relative paths the step names are resolved against it.
    base_dir: PathBuf,
    /// How fast this attempt may call capabilities, and how much it may log. Shared with the
    /// attempt's parts (`host/parts.rs`), like the two fields below: a part is the attempt.
    rate: Arc<limits::RateLimiter>,
    log_budget: Arc<limits::LogBudget>,
    /// What the attempt may still download from registries into the host.
    downloads: Arc<limits::DownloadBudget>,
    /// The attempt's start record is durable (see [`Capabilities::durable_before_effects`]).
    attempt_durable: Arc<AtomicBool>,
    /// Registry credentials read by this attempt (registry/auth.rs).
    registry_auth: Arc<registry::AuthCache>,
    /// The host's record of the layers it pushed (registry/layers.rs), shared by all steps.
    layers: Arc<registry::LayerIndex>,
}

/// Whether `action` (`service:Operation`) only reads. AWS names every operation that changes
/// nothing `Describe*`, `Get*`, `List*` or `Head*`, and none that changes something so; the
/// registry's actions follow the same rule.
pub fn is_read_only(action: &str) -> bool {
    let operation = action.rsplit(':').next().unwrap_or(action);
    ["Describe", "Get", "List", "Head"].iter().any(|prefix| operation.starts_with(prefix))
}

impl Capabilities {
    pub fn new(run_id: &str, step_id: &str, grants: GrantSet, events: EventSink, aws: Arc<aws::Aws>) -> Self {
        Capabilities {
            run_id: run_id.to_string(),
            step_id: step_id.to_string(),
            grants,
            events,
            aws,
            mode: CallMode::Apply,
            base_dir: PathBuf::new(),
            rate: Arc::new(limits::RateLimiter::from_env()),
            log_budget: Arc::default(),
            downloads: Arc::default(),
            attempt_durable: Arc::new(AtomicBool::new(false)),
            registry_auth: Arc::default(),
            layers: Arc::default(),
        }
    }

    /// The capabilities of one part of this attempt (`parallel.run-all`): the same step, grants
    /// and mode, sharing the attempt's rate limit, log budget, durability point and credentials.
    pub fn for_part(&self) -> Capabilities {
        Capabilities {
            run_id: self.run_id.clone(),
            step_id: self.step_id.clone(),
            grants: self.grants.clone(),
            events: self.events.clone(),
            aws: self.aws.clone(),
            mode: self.mode,
            base_dir: self.base_dir.clone(),
            rate: self.rate.clone(),
            log_budget: self.log_budget.clone(),
            downloads: self.downloads.clone(),
            attempt_durable: self.attempt_durable.clone(),
            registry_auth: self.registry_auth.clone(),
            layers: self.layers.clone(),
        }
    }

    /// The same capabilities resolving relative paths against `dir`.
    pub fn with_base_dir(mut self, dir: PathBuf) -> Self {
        self.base_dir = dir;
        self
    }

    pub fn base_dir(&self) -> &std::path::Path {
        &self.base_dir
    }

    /// The same capabilities recording pushed layers in `layers` (`registry.find-layer`).
    pub fn with_layer_index(mut self, layers: Arc<registry::LayerIndex>) -> Self {
        self.layers = layers;
        self
    }

    pub fn layer_index(&self) -> &registry::LayerIndex {
        &self.layers
    }

    /// The same capabilities in `mode`.
    pub fn with_mode(mut self, mode: CallMode) -> Self {
        self.mode = mode;
        self
    }

    /// For every mutating operation, after `authorize`: in plan mode, records the call it would
    /// make and returns true, and the caller returns a placeholder result instead of calling AWS.
    /// Read-only calls are always made for real. A planned call costs no AWS round trip, so a
    /// plugin could plan them by the million: they count against the attempt's log budget.
    pub fn plan(&self, action: &str, resource: &str, detail: &str) -> bool {
        if self.mode != CallMode::Plan {
            return false;
        }
        self.event_within_budget(EventKind::Call, format!("PLAN {action} {resource} {detail}"));
        true
    }

    /// Allows a call that needs one plain (action, resource) pair, or returns a `denied` error
    /// naming the grant line to add.
    pub fn authorize(&self, action: &str, resource: &str) -> Result<(), WitError> {
        self.authorize_all(&[Need::new(action, resource)])
    }

    /// Allows a call only when the step's grants cover every pair it needs, with their
    /// conditions; otherwise a `denied` error naming every missing line. Host functions list all
    /// a request implies (roles passed, secrets referenced, networks touched) before acting.
    pub fn authorize_all(&self, needs: &[Need]) -> Result<(), WitError> {
        self.authorize_explained(needs, |_| String::new())
    }

    /// [`Capabilities::authorize_all`], with `explain` adding to a denial what the caller knows
    /// of where the refused values came from.
    pub fn authorize_explained(&self, needs: &[Need], explain: impl Fn(&Denied) -> String) -> Result<(), WitError> {
        let ledger = std::cell::OnceCell::new();
        let created = |value: &str| {
            // Under `wharf plan` nothing is created: the placeholders of planned creates stand in.
            if self.mode == CallMode::Plan && value.contains("planned") {
                return true;
            }
            let ledger = ledger.get_or_init(|| self.journal().resources().unwrap_or_default());
            ledger.iter().any(|r| r.deleted_at_ms.is_none() && (r.id == value || r.name.as_deref() == Some(value)))
        };
        self.grants.check_all(needs, &created).map_err(|denied| self.denial(format!("{denied}{}", explain(&denied))))
    }

    /// Like [`Capabilities::authorize`], counting only grant lines that name `resource` exactly,
    /// without a wildcard: for what no pattern may reach (an absolute path). `why` is added to
    /// the denial.
    pub fn authorize_exact(&self, action: &str, resource: &str, why: &str) -> Result<(), WitError> {
        let exact = self.grants.grants().iter().filter(|g| g.literal_resource().is_some()).cloned().collect();
        GrantSet::new(&self.step_id, exact)
            .check(action, resource)
            .map_err(|denied| self.denial(format!("{denied} ({why})")))
    }

    /// A `denied` error, journaled as a warning.
    fn denial(&self, message: String) -> WitError {
        self.event(EventKind::Log(LogLevel::Warn), format!("denied: {message}"));
        WitError::new(ErrorKind::Denied, "GrantMissing", message)
    }

    /// Awaits an AWS call, records it in the transcript and maps its error.
    pub async fn call<T, E>(
        &self,
        action: &str,
        resource: &str,
        request: impl Future<Output = Result<T, aws::SdkError<E>>>,
    ) -> Result<T, WitError>
    where
        E: aws::ServiceErrorInfo,
    {
        // Boxed: SDK request futures are large and host calls are polled on the guest's fiber
        // stack; held by value through these wrappers they overflowed it (teardown, debug build).
        let request = Box::pin(aws::sdk_retry_scope(action, request));
        self.call_mapped(action, resource, async { request.await.map_err(|e| aws::map_sdk_error(action, e)) }).await
    }

    /// Awaits a call whose errors are already mapped (non-AWS services, e.g. OCI registries, map
    /// theirs in their own module) and records it in the transcript like [`Capabilities::call`].
    pub async fn call_mapped<T>(
        &self,
        action: &str,
        resource: &str,
        request: impl Future<Output = Result<T, WitError>>,
    ) -> Result<T, WitError> {
        if !is_read_only(action) {
            self.durable_before_effects().await?;
        }
        self.throttle().await;
        let started = Instant::now();
        #[cfg(feature = "fault-injection")]
        if let Some(error) = faults::injected(action) {
            self.event(
                EventKind::Call,
                format!("{action} {resource} -> {} {} (injected)", error.kind.as_str(), error.code),
            );
            return Err(error);
        }
        #[cfg(feature = "fault-injection")]
        let number = faults::crash_before(action);
        let result = request.await;
        #[cfg(feature = "fault-injection")]
        faults::crash_after(action, number);
        let outcome = match &result {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("{} {}", e.kind.as_str(), e.code),
        };
        self.event(EventKind::Call, format!("{action} {resource} -> {outcome} ({} ms)", started.elapsed().as_millis()));
        result
    }

    /// Whether the step holds a grant, without the denial warning [`Capabilities::authorize`]
    /// journals: for grants that switch behaviour on rather than allow a call (`registry:PlainHttp`).
    pub fn is_granted(&self, action: &str, resource: &str) -> bool {
        self.grants.check(action, resource).is_ok()
    }

    /// Writes a created resource to the run's ledger (durable before the plugin sees the result).
    pub fn record_created(
        &self,
        kind: &str,
        id: &str,
        name: Option<&str>,
        attributes: BTreeMap<String, String>,
    ) -> Result<(), WitError> {
        let resource = Resource {
            kind: kind.to_string(),
            id: id.to_string(),
            name: name.map(str::to_string),
            region: self.aws.region(),
            step_id: self.step_id.clone(),
            created_at_ms: crate::now_ms(),
            deleted_at_ms: None,
            attributes,
        };
        let journal = self.events.journal();
        journal.record_resource(&resource).and_then(|_| journal.flush()).map_err(|e| {
            WitError::new(
                ErrorKind::Retryable,
                STATE_WRITE_FAILED,
                format!("could not record {kind} {id} in the run ledger: {e}"),
            )
        })
    }

    /// Records a resource a lookup found when its tags say this run and step created it. An attempt
    /// that died between AWS creating something and the ledger write left it unrecorded; the
    /// resumed (in-doubt) attempt finds it instead of creating it, and this puts it back in the
    /// ledger so teardown still deletes it. The ledger deduplicates.
    pub fn reclaim_if_ours<'a>(
        &self,
        tags: impl IntoIterator<Item = (&'a str, &'a str)>,
        kind: &str,
        id: &str,
        name: Option<&str>,
        attributes: BTreeMap<String, String>,
    ) -> Result<(), WitError> {
        let tags: Vec<(&str, &str)> = tags.into_iter().collect();
        let ours = self.tags().iter().all(|(key, value)| tags.contains(&(*key, value.as_str())));
        if ours { self.record_created(kind, id, name, attributes) } else { Ok(()) }
    }

    /// Tags every resource the host creates carries: which run and step made it.
    pub fn tags(&self) -> [(&'static str, String); 2] {
        [(RUN_TAG, self.run_id.clone()), ("wharf:step", self.step_id.clone())]
    }

    /// Before a delete: refuses when the resource's current `wharf:run` tag (`run_tag`) is not
    /// this run's. The ledger lists what this run created, but the name may since have been freed
    /// and taken by someone else; their resource is left alone.
    pub fn check_ours(&self, what: &str, run_tag: &Option<String>) -> Result<(), WitError> {
        if run_tag.as_deref() == Some(self.run_id.as_str()) {
            return Ok(());
        }
        Err(WitError::new(
            ErrorKind::Permanent,
            "NotOurs",
            format!("{what} is no longer the one this run created (it is tagged wharf:run={run_tag:?}); left alone"),
        ))
    }

    /// The run's journal (for the ledger capability).
    pub fn journal(&self) -> &Arc<dyn crate::journal::RunJournal> {
        self.events.journal()
    }

    pub fn aws(&self) -> &aws::Aws {
        &self.aws
    }

    /// What this attempt may still download from registries (shared with its parts).
    pub fn downloads(&self) -> &limits::DownloadBudget {
        &self.downloads
    }

    pub fn registry_auth(&self) -> &registry::AuthCache {
        &self.registry_auth
    }

    /// Makes the journal durable before the attempt's first call that can change anything outside
    /// this process: its start record (so after a crash the attempt is known to be in doubt, and its
    /// plugin checks what happened before acting again) and everything journaled before it,
    /// including the outcomes of the steps it depends on. An attempt that makes no such call needs
    /// no durability point of its own: if the process dies first, nothing happened, and the step
    /// simply runs again. Every AWS and registry call that is not [`is_read_only`] passes here
    /// first, so a step's lookups do not wait for the disk.
    pub async fn durable_before_effects(&self) -> Result<(), WitError> {
        if self.attempt_durable.load(Ordering::Acquire) {
            return Ok(());
        }
        crate::journal::flush_off_worker(self.journal()).await.map_err(|e| {
            WitError::new(
                ErrorKind::Retryable,
                STATE_WRITE_FAILED,
                format!("the run journal could not be made durable before this call: {e}"),
            )
        })?;
        self.attempt_durable.store(true, Ordering::Release);
        Ok(())
    }

    /// Waits until the attempt's host-call rate allows one more call (every call that reaches
    /// AWS or a registry passes here, through [`Capabilities::call_mapped`]).
    pub async fn throttle(&self) {
        let (wait, first) = self.rate.acquire();
        if first {
            let rate = self.rate.per_second();
            let message = format!(
                "host calls throttled to {rate}/s for this attempt (set {} to change the limit)",
                limits::RATE_ENV
            );
            self.event(EventKind::Log(LogLevel::Warn), message);
        }
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Journals an event for this step; journal failures surface at the step's next flush. What
    /// the plugin writes (log lines, progress, the denials it provokes) counts against the
    /// attempt's log budget; past it, one notice is journaled and the rest is dropped.
    pub fn event(&self, kind: EventKind, message: String) {
        if matches!(kind, EventKind::Log(_) | EventKind::Progress) {
            return self.event_within_budget(kind, message);
        }
        let _ = self.events.emit(Some(&self.step_id), kind, message);
    }

    /// Journals an event the plugin decides the number of, if the log budget allows it.
    fn event_within_budget(&self, kind: EventKind, message: String) {
        match self.log_budget.admit(message.len().min(crate::events::MAX_EVENT_MESSAGE)) {
            limits::LogVerdict::Keep => {
                let _ = self.events.emit(Some(&self.step_id), kind, message);
            }
            limits::LogVerdict::Drop => {}
            limits::LogVerdict::NoticeThenDrop => {
                let notice = limits::log_budget_notice();
                let _ = self.events.emit(Some(&self.step_id), EventKind::Log(LogLevel::Warn), notice);
            }
        }
    }
}

/// AWS answered without a field it always sends: treat as transient (a retry usually succeeds).
pub(crate) fn incomplete_response(operation: &str, field: &str) -> WitError {
    WitError::new(ErrorKind::Retryable, "IncompleteResponse", format!("{operation} returned no `{field}`"))
}

#[cfg(test)]
mod authorization_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{SledBackend, StateBackend};

    #[test]
    fn reads_are_told_apart_by_the_operation_name() {
        for read in
            ["ec2:DescribeVpcs", "iam:GetRole", "iam:ListAttachedRolePolicies", "s3:HeadObject", "registry:HeadBlob"]
        {
            assert!(is_read_only(read), "{read}");
        }
        for write in
            ["ec2:CreateVpc", "ecs:UpdateService", "iam:PutRolePolicy", "registry:PushBlob", "registry:DeleteManifest"]
        {
            assert!(!is_read_only(write), "{write}");
        }
    }

    /// A step's lookups do not wait for the disk; its first change does, and only once.
    #[tokio::test]
    async fn the_attempt_is_made_durable_before_its_first_change_not_before_a_read() {
        let dir = tempfile::tempdir().unwrap();
        let record = crate::journal::tests::sample_run("r");
        let journal = SledBackend::new(dir.path()).unwrap().create_run(record).unwrap();
        let events = EventSink::new(journal, Arc::new(crate::events::Quiet));
        let aws = Arc::new(aws::Aws::new(aws::AwsSettings::default()));
        let caps = Capabilities::new("r", "s", GrantSet::new("s", vec![]), events, aws);
        let durable = || caps.attempt_durable.load(Ordering::Acquire);
        caps.call_mapped("ec2:DescribeVpcs", "*", async { Ok(()) }).await.unwrap();
        assert!(!durable(), "a read made the attempt durable");
        caps.call_mapped("ec2:CreateVpc", "v", async { Ok(()) }).await.unwrap();
        assert!(durable(), "a change went out before the attempt was durable");
    }
}
