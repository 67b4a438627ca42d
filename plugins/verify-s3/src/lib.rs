//! `verify-s3`: waits until an S3 object exists and, optionally, checks its content digest —
//! the end-to-end proof that a deployed task did its job (e.g. wrote its output file).
//!
//! ```toml
//! with = { bucket = "projectjz", key = "ecs-example/sample.txt", timeout = "5m", expect_file = "model/sample.txt" }
//! grants = ["fs:Read model"]   # expect_file is read in the sandbox: its directory must be granted
//! ```
//!
//! Give the step a `timeout` longer than the wait's, or the step is stopped first.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};
use wharf_plugin_sdk::{Context, Error, Step, log, s3};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(15);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    pub bucket: String,
    pub key: String,
    /// How long to wait for the object: seconds, or a duration like "5m", "90s", "1h 30m".
    #[serde(default)]
    pub timeout: Option<Timeout>,
    /// Expected lowercase hex sha256 of the content.
    #[serde(default)]
    pub expect_sha256: Option<String>,
    /// A local file the content must equal; its directory must be granted with `fs:Read <dir>`.
    #[serde(default)]
    pub expect_file: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub enum Timeout {
    Seconds(u64),
    Text(String),
}

#[derive(Serialize, Debug)]
pub struct Output {
    pub etag: String,
    pub size: u64,
    pub sha256: String,
}

pub struct VerifyS3;

impl Step for VerifyS3 {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "verify-s3";
    const DESCRIPTION: &'static str = "Waits for an S3 object to exist and checks its sha256.";
    const GRANTS: &'static [&'static str] = &["s3:GetObject ${with.bucket}/${with.key}"];

    fn run(ctx: &Context, input: Input) -> Result<Output, Error> {
        if input.bucket.is_empty() || input.key.is_empty() || input.bucket.contains('/') {
            return Err(Error::invalid_input("`bucket` (a bucket name, no `/`) and `key` must both be set"));
        }
        let timeout = parse_timeout(input.timeout.as_ref()).map_err(Error::invalid_input)?;
        let expected = expected_digest(&input)?;
        let location = format!("s3://{}/{}", input.bucket, input.key);
        if ctx.planning {
            // Under `wharf plan` nothing was deployed, so the object cannot appear: do not wait.
            log::info(&format!("would wait up to {}s for {location}", timeout.as_secs()));
            return Ok(Output { etag: "planned".into(), size: 0, sha256: String::new() });
        }

        let info = wait_for(&input.bucket, &input.key, &location, timeout)?;
        if let Some((digest, source)) = expected
            && digest != info.sha256
        {
            return Err(Error::permanent(
                "DigestMismatch",
                format!("{location} has sha256 {}, but {source} is {digest}", info.sha256),
            ));
        }
        log::info(&format!("{location}: {} bytes, sha256 {}", info.size, info.sha256));
        Ok(Output { etag: info.etag, size: info.size, sha256: info.sha256 })
    }
}

/// Polls with backoff (1 s, ×1.5, at most 15 s) until the object exists or `timeout` passes.
fn wait_for(bucket: &str, key: &str, location: &str, timeout: Duration) -> Result<s3::ObjectInfo, Error> {
    let started = Instant::now();
    let mut delay = FIRST_DELAY;
    let mut checks = 0u32;
    loop {
        checks += 1;
        match s3::get_object_info(bucket, key) {
            Ok(Some(info)) => return Ok(info),
            Ok(None) => {}
            // Overwritten while the host read it: look again.
            Err(e) if e.code == "ObjectChanged" => log::info(&e.message),
            Err(e) => return Err(e.into()),
        }
        let elapsed = started.elapsed();
        if elapsed >= timeout {
            return Err(Error::permanent(
                "Timeout",
                format!(
                    "{location} did not appear within {} ({checks} checks); check that the bucket exists and the task writes that key",
                    humantime::format_duration(timeout)
                ),
            ));
        }
        log::progress(&format!("waiting for {location} ({}s of {}s)", elapsed.as_secs(), timeout.as_secs()));
        std::thread::sleep(delay.min(timeout - elapsed));
        delay = next_delay(delay);
    }
}

fn next_delay(delay: Duration) -> Duration {
    delay.mul_f64(1.5).min(MAX_DELAY)
}

fn parse_timeout(timeout: Option<&Timeout>) -> Result<Duration, String> {
    let duration = match timeout {
        None => return Ok(DEFAULT_TIMEOUT),
        Some(Timeout::Seconds(secs)) => Duration::from_secs(*secs),
        Some(Timeout::Text(text)) => match text.trim().parse::<u64>() {
            Ok(secs) => Duration::from_secs(secs),
            Err(_) => humantime::parse_duration(text.trim())
                .map_err(|e| format!("`timeout` = \"{text}\": {e}; write seconds or e.g. \"5m\", \"90s\""))?,
        },
    };
    if duration.is_zero() { Err("`timeout` must be more than zero".into()) } else { Ok(duration) }
}

/// The digest to compare against and where it came from, if the step asked for a check.
fn expected_digest(input: &Input) -> Result<Option<(String, String)>, Error> {
    match (&input.expect_sha256, &input.expect_file) {
        (Some(_), Some(_)) => Err(Error::invalid_input("give `expect_sha256` or `expect_file`, not both")),
        (Some(hex), None) => {
            let hex = hex.trim().to_ascii_lowercase();
            if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(Error::invalid_input("`expect_sha256` must be 64 hex characters"));
            }
            Ok(Some((hex, "expect_sha256".into())))
        }
        (None, Some(path)) => Ok(Some((file_digest(path)?, format!("expect_file {path}")))),
        (None, None) => Ok(None),
    }
}

/// Streams the file through sha256 (it may be larger than the step's memory).
fn file_digest(path: &str) -> Result<String, Error> {
    let dir = std::path::Path::new(path).parent().and_then(|d| d.to_str()).filter(|d| !d.is_empty()).unwrap_or(".");
    let unreadable = |e: std::io::Error| {
        Error::invalid_input(format!(
            "cannot read expect_file {path}: {e}. The plugin sees only directories granted with `fs:Read <dir>`: \
             add \"fs:Read {dir}\" to the step's grants, with `expect_file` relative to the workflow file"
        ))
    };
    let mut file = std::fs::File::open(path).map_err(unreadable)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(unreadable)?;
    Ok(hex::encode(hasher.finalize()))
}

wharf_plugin_sdk::export_step!(VerifyS3);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_accept_seconds_and_durations() {
        assert_eq!(parse_timeout(None).unwrap(), DEFAULT_TIMEOUT);
        assert_eq!(parse_timeout(Some(&Timeout::Seconds(30))).unwrap(), Duration::from_secs(30));
        assert_eq!(parse_timeout(Some(&Timeout::Text("45".into()))).unwrap(), Duration::from_secs(45));
        assert_eq!(parse_timeout(Some(&Timeout::Text("5m".into()))).unwrap(), Duration::from_secs(300));
        assert_eq!(parse_timeout(Some(&Timeout::Text("1h 30m".into()))).unwrap(), Duration::from_secs(5400));
        assert!(parse_timeout(Some(&Timeout::Text("soon".into()))).unwrap_err().contains("timeout"));
        assert!(parse_timeout(Some(&Timeout::Seconds(0))).is_err());
    }

    #[test]
    fn backoff_grows_by_half_and_caps_at_15s() {
        let mut delays = vec![FIRST_DELAY];
        for _ in 0..10 {
            delays.push(next_delay(*delays.last().unwrap()));
        }
        assert_eq!(delays[1], Duration::from_millis(1500));
        assert_eq!(delays[2], Duration::from_millis(2250));
        assert_eq!(*delays.last().unwrap(), MAX_DELAY);
    }

    #[test]
    fn expected_digests_are_validated() {
        let input = |sha: Option<&str>, file: Option<&str>| Input {
            bucket: "b".into(),
            key: "k".into(),
            timeout: None,
            expect_sha256: sha.map(str::to_string),
            expect_file: file.map(str::to_string),
        };
        let upper = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
        let (digest, _) = expected_digest(&input(Some(upper), None)).unwrap().unwrap();
        assert_eq!(digest, upper.to_ascii_lowercase());
        assert!(expected_digest(&input(Some("abc"), None)).is_err());
        assert!(expected_digest(&input(Some(upper), Some("f"))).is_err());
        let err = expected_digest(&input(None, Some("no-such-dir/f.txt"))).unwrap_err();
        assert!(err.message().contains("fs:Read no-such-dir"), "{}", err.message());
        assert!(expected_digest(&input(None, None)).unwrap().is_none());
    }
}

/// The whole step against a fake S3.
#[cfg(test)]
mod step_tests {
    use super::*;
    use serde_json::json;
    use wharf_plugin_sdk::testing::FakeHost;

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn object(sha256: &str) -> s3::ObjectInfo {
        s3::ObjectInfo { etag: "\"etag\"".into(), size: 0, sha256: sha256.into() }
    }

    #[test]
    fn a_digest_mismatch_fails_permanently_naming_both_digests() {
        let host = FakeHost::new();
        host.on_get_object_info(|_, _| Ok(Some(object(&"0".repeat(64)))));
        let err = host
            .run::<VerifyS3>(json!({ "bucket": "b", "key": "out.txt", "expect_sha256": EMPTY_SHA256 }))
            .unwrap_err();
        assert_eq!(err.code(), "DigestMismatch");
        assert!(!err.is_retryable());
        assert!(err.message().contains(EMPTY_SHA256), "{err}");
    }

    #[test]
    fn an_object_that_was_being_overwritten_is_read_again() {
        let host = FakeHost::new();
        let mut answers = vec![
            Ok(Some(object(EMPTY_SHA256))),
            Err(Error::permanent("ObjectChanged", "the object changed while it was read")),
        ];
        host.on_get_object_info(move |_, _| answers.pop().unwrap());
        let out =
            host.run::<VerifyS3>(json!({ "bucket": "b", "key": "out.txt", "expect_sha256": EMPTY_SHA256 })).unwrap();
        assert_eq!(out["sha256"], EMPTY_SHA256);
        assert_eq!(host.calls().len(), 2);
    }

    #[test]
    fn planning_does_not_wait_for_the_object() {
        let host = FakeHost::new();
        let ctx = Context { planning: true, ..wharf_plugin_sdk::testing::context() };
        let out = host.run_with::<VerifyS3>(&ctx, json!({ "bucket": "b", "key": "k" })).unwrap();
        assert_eq!(out["etag"], "planned");
        assert!(host.calls().is_empty());
    }
}
