//! AWS clients for the capabilities and the one mapping of SDK errors to the WIT error.
//!
//! Clients come from `aws-config` defaults, so `AWS_ENDPOINT_URL`, profiles and the whole
//! credential chain work as users expect. Retry and timeout settings are explicit here rather
//! than inherited, because a deploy that hangs for hours is one of the things wharf exists to end.

use crate::host::bindings::{ErrorKind, WitError};
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::retries::classifiers::{
    ClassifyRetry, RetryAction, RetryClassifierPriority, RetryReason,
};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::ErrorKind as SdkErrorKind;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

pub use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
/// An SDK error with the HTTP response type every AWS client uses.
pub type SdkError<E> = aws_smithy_runtime_api::client::result::SdkError<E, HttpResponse>;

/// What the error mapping needs from a service's operation error.
pub trait ServiceErrorInfo: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static {}
impl<T: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static> ServiceErrorInfo for T {}

/// Region and profile for the run's AWS clients (from the workflow's `[aws]` table).
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    pub region: Option<String>,
    pub profile: Option<String>,
    /// SDK attempts per call (the SDK's own retries, below the step's retries).
    pub max_attempts: u32,
}

/// Lazily built AWS clients shared by every step of a run.
pub struct Aws {
    settings: AwsSettings,
    config: OnceCell<SdkConfig>,
    preloading: std::sync::atomic::AtomicBool,
    ecs: OnceCell<aws_sdk_ecs::Client>,
    ec2: OnceCell<aws_sdk_ec2::Client>,
    iam: OnceCell<aws_sdk_iam::Client>,
    secrets: OnceCell<aws_sdk_secretsmanager::Client>,
    s3: OnceCell<aws_sdk_s3::Client>,
    logs: OnceCell<aws_sdk_cloudwatchlogs::Client>,
    ecr: OnceCell<aws_sdk_ecr::Client>,
}

impl Aws {
    pub fn new(settings: AwsSettings) -> Self {
        Aws {
            settings,
            config: OnceCell::new(),
            preloading: Default::default(),
            ecs: OnceCell::new(),
            ec2: OnceCell::new(),
            iam: OnceCell::new(),
            secrets: OnceCell::new(),
            s3: OnceCell::new(),
            logs: OnceCell::new(),
            ecr: OnceCell::new(),
        }
    }

    /// The region resources are created in, when known.
    pub fn region(&self) -> Option<String> {
        self.config.get().and_then(|c| c.region().map(|r| r.to_string())).or_else(|| self.settings.region.clone())
    }

    /// Starts loading the settings (environment, profile files, credential chain: a few ms) on
    /// another task, so the first call does not wait for all of it.
    pub fn preload(self: &Arc<Self>) {
        if self.config.initialized() || self.preloading.swap(true, std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let aws = self.clone();
        tokio::spawn(async move {
            let _ = aws.config().await;
        });
    }

    async fn config(&self) -> Result<&SdkConfig, WitError> {
        let config = self
            .config
            .get_or_init(|| async {
                let mut loader = aws_config::defaults(BehaviorVersion::latest())
                    .retry_config(RetryConfig::standard().with_max_attempts(self.settings.max_attempts.max(1)))
                    .timeout_config(
                        TimeoutConfig::builder()
                            .connect_timeout(Duration::from_secs(5))
                            .operation_attempt_timeout(attempt_timeout())
                            .operation_timeout(Duration::from_secs(90))
                            .build(),
                    );
                if let Some(region) = &self.settings.region {
                    loader = loader.region(Region::new(region.clone()));
                }
                if let Some(profile) = &self.settings.profile {
                    loader = loader.profile_name(profile);
                }
                loader.load().await
            })
            .await;
        if config.region().is_none() {
            return Err(WitError::new(
                ErrorKind::InvalidInput,
                "NoRegion",
                "no AWS region is configured: set `region` in the workflow's [aws] table, or AWS_REGION, or a profile region",
            ));
        }
        Ok(config)
    }

    pub async fn ecs(&self) -> Result<&aws_sdk_ecs::Client, WitError> {
        let config = self.config().await?;
        Ok(self
            .ecs
            .get_or_init(|| async {
                aws_sdk_ecs::Client::from_conf(
                    aws_sdk_ecs::config::Builder::from(config).retry_classifier(SingleShot).build(),
                )
            })
            .await)
    }

    pub async fn ec2(&self) -> Result<&aws_sdk_ec2::Client, WitError> {
        let config = self.config().await?;
        Ok(self
            .ec2
            .get_or_init(|| async {
                aws_sdk_ec2::Client::from_conf(
                    aws_sdk_ec2::config::Builder::from(config).retry_classifier(SingleShot).build(),
                )
            })
            .await)
    }

    pub async fn iam(&self) -> Result<&aws_sdk_iam::Client, WitError> {
        let config = self.config().await?;
        Ok(self
            .iam
            .get_or_init(|| async {
                aws_sdk_iam::Client::from_conf(
                    aws_sdk_iam::config::Builder::from(config).retry_classifier(SingleShot).build(),
                )
            })
            .await)
    }

    pub async fn secrets(&self) -> Result<&aws_sdk_secretsmanager::Client, WitError> {
        let config = self.config().await?;
        Ok(self
            .secrets
            .get_or_init(|| async {
                aws_sdk_secretsmanager::Client::from_conf(
                    aws_sdk_secretsmanager::config::Builder::from(config).retry_classifier(SingleShot).build(),
                )
            })
            .await)
    }

    /// S3 with path-style addressing when a custom endpoint is set (emulators and S3-compatible
    /// stores do not resolve virtual-hosted bucket names).
    pub async fn s3(&self) -> Result<&aws_sdk_s3::Client, WitError> {
        let config = self.config().await?;
        Ok(self
            .s3
            .get_or_init(|| async {
                let path_style = config.endpoint_url().is_some();
                let s3_config = aws_sdk_s3::config::Builder::from(config)
                    .force_path_style(path_style)
                    .retry_classifier(SingleShot)
                    .build();
                aws_sdk_s3::Client::from_conf(s3_config)
            })
            .await)
    }

    pub async fn logs(&self) -> Result<&aws_sdk_cloudwatchlogs::Client, WitError> {
        let config = self.config().await?;
        Ok(self
            .logs
            .get_or_init(|| async {
                aws_sdk_cloudwatchlogs::Client::from_conf(
                    aws_sdk_cloudwatchlogs::config::Builder::from(config).retry_classifier(SingleShot).build(),
                )
            })
            .await)
    }

    /// ECR, for registry tokens (`ecr:GetAuthorizationToken`).
    pub async fn ecr(&self) -> Result<&aws_sdk_ecr::Client, WitError> {
        let config = self.config().await?;
        Ok(self.ecr.get_or_init(|| async { aws_sdk_ecr::Client::new(config) }).await)
    }
}

/// The SDK attempt timeout: a hung call ends and is retried instead of blocking its step.
fn attempt_timeout() -> Duration {
    #[cfg(feature = "fault-injection")]
    if let Some(timeout) = super::faults::attempt_timeout() {
        return timeout;
    }
    Duration::from_secs(30)
}

/// Calls that create something without an idempotency token AWS honours, or whose repeat fails
/// with "already exists"/"duplicate": if the answer to one is lost (a 5xx, a reset connection,
/// a timeout), the SDK must not simply send it again, or a second VPC, gateway, route table or
/// task definition revision appears that nothing records (found by tests/e2e/faults.rs).
/// Instead the error goes back to the step, whose retry looks before it creates (find before
/// create) and adopts what the lost call made. Throttling is still retried here: a throttled
/// request was refused, not applied.
const NOT_BLINDLY_REPEATABLE: &[&str] = &[
    "ec2:Create",
    "ec2:Associate",
    "ec2:Attach",
    "ec2:AuthorizeSecurityGroupIngress",
    "iam:CreateRole",
    "secretsmanager:CreateSecret",
    "ecs:RegisterTaskDefinition",
    "ecs:CreateService",
    "logs:CreateLogGroup",
];

tokio::task_local! {
    /// Set by [`sdk_retry_scope`] for the duration of one call: may the SDK resend it?
    static SDK_MAY_RESEND: bool;
}

/// Runs one AWS call with the SDK's resend policy for `action` (see [`NOT_BLINDLY_REPEATABLE`]).
pub(crate) async fn sdk_retry_scope<T>(action: &str, call: impl Future<Output = T>) -> T {
    let may_resend = !NOT_BLINDLY_REPEATABLE.iter().any(|prefix| action.starts_with(prefix));
    SDK_MAY_RESEND.scope(may_resend, call).await
}

/// Runs after the SDK's own classifiers and forbids resending a call [`sdk_retry_scope`] marked,
/// unless it was throttled.
#[derive(Debug)]
struct SingleShot;

impl ClassifyRetry for SingleShot {
    fn classify_retry(&self, _ctx: &InterceptorContext) -> RetryAction {
        RetryAction::NoActionIndicated
    }

    fn classify_retry_v2(&self, _ctx: &InterceptorContext, previous: &RetryAction) -> RetryAction {
        let throttled = matches!(
            previous,
            RetryAction::RetryIndicated(RetryReason::RetryableError { kind: SdkErrorKind::ThrottlingError, .. })
        );
        if previous.should_retry() && !throttled && SDK_MAY_RESEND.try_with(|may| !*may).unwrap_or(false) {
            RetryAction::RetryForbidden
        } else {
            RetryAction::NoActionIndicated
        }
    }

    fn name(&self) -> &'static str {
        "wharf-single-shot"
    }

    fn priority(&self) -> RetryClassifierPriority {
        RetryClassifierPriority::run_after(RetryClassifierPriority::transient_error_classifier())
    }
}

/// Codes AWS uses for throttling across services.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
    "PriorRequestNotComplete",
    "ProvisionedThroughputExceededException",
];

/// Whether a step's error code is a transient AWS failure: throttling, a 5xx, a timeout, a
/// dropped connection or an unreadable answer (codes `map_sdk_error` and AWS use for these).
pub(crate) fn is_transient_code(code: &str) -> bool {
    const TRANSIENT: &[&str] = &[
        "Timeout",
        "DispatchFailure",
        "ResponseError",
        "InternalError",
        "InternalFailure",
        "ServiceFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "ServerException",
        "Unavailable",
    ];
    TRANSIENT.contains(&code) || THROTTLING_CODES.contains(&code)
}

/// Codes that mean "the input is wrong": retrying the same call cannot help.
const INVALID_INPUT_CODES: &[&str] = &[
    "ValidationException",
    "ValidationError",
    "InvalidParameterException",
    "InvalidParameterValue",
    "MalformedPolicyDocument",
];

/// The one mapping of AWS SDK errors to the WIT error every capability returns.
pub fn map_sdk_error<E: ServiceErrorInfo>(action: &str, err: SdkError<E>) -> WitError {
    let status = err.raw_response().map(|r| r.status().as_u16());
    match &err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let code = e.code().unwrap_or("Unknown").to_string();
            let message = e.message().unwrap_or("").to_string();
            let kind = classify(&code, &message, status);
            WitError { kind, code, message: format!("{action} failed: {message}"), http_status: status }
        }
        SdkError::TimeoutError(_) => WitError::new(ErrorKind::Retryable, "Timeout", format!("{action} timed out")),
        SdkError::DispatchFailure(f) => {
            let detail = aws_smithy_types::error::display::DisplayErrorContext(&err).to_string();
            let kind = if f.is_user() { ErrorKind::Permanent } else { ErrorKind::Retryable };
            WitError::new(kind, "DispatchFailure", format!("{action} could not be sent: {detail}"))
        }
        SdkError::ResponseError(_) => WitError {
            kind: ErrorKind::Retryable,
            code: "ResponseError".into(),
            message: format!(
                "{action} got an unreadable response: {}",
                aws_smithy_types::error::display::DisplayErrorContext(&err)
            ),
            http_status: status,
        },
        _ => WitError::new(
            ErrorKind::Permanent,
            "ConstructionFailure",
            format!("{action} could not be built: {}", aws_smithy_types::error::display::DisplayErrorContext(&err)),
        ),
    }
}

pub(crate) fn classify(code: &str, message: &str, status: Option<u16>) -> ErrorKind {
    let lower = message.to_ascii_lowercase();
    if THROTTLING_CODES.contains(&code) || status.is_some_and(|s| s >= 500 || s == 429) {
        ErrorKind::Retryable
    } else if lower.contains("unable to assume") || lower.contains("role cannot be assumed") {
        // IAM is eventually consistent: a role created seconds ago may not be assumable yet.
        ErrorKind::Retryable
    } else if INVALID_INPUT_CODES.contains(&code) {
        ErrorKind::InvalidInput
    } else {
        ErrorKind::Permanent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_transient_and_permanent_errors() {
        assert_eq!(classify("ThrottlingException", "", Some(400)), ErrorKind::Retryable);
        assert_eq!(classify("InternalFailure", "", Some(500)), ErrorKind::Retryable);
        assert_eq!(
            classify(
                "InvalidParameterException",
                "ECS was unable to assume the role 'arn:aws:iam::1:role/x'",
                Some(400)
            ),
            ErrorKind::Retryable
        );
        assert_eq!(classify("InvalidParameterException", "bad cpu", Some(400)), ErrorKind::InvalidInput);
        assert_eq!(classify("AccessDeniedException", "no", Some(403)), ErrorKind::Permanent);
    }
}
