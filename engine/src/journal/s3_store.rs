//! The S3 side of the S3 state backend: where the state lives (`s3://bucket/prefix`), a client on its
//! own thread, the three conditional object operations the journal is built on, and a local cache.
//!
//! Why a dedicated thread: the journal traits are synchronous (sled is), but callers run on the
//! scheduler's tokio runtime, where starting another runtime (or `block_on`) panics. The store owns an OS
//! thread running a current-thread runtime; callers send it futures and wait for the reply
//! ([`Store::block`]), inside `block_in_place` when on a multi-thread runtime so the scheduler's other
//! tasks keep running. Lease heartbeats run on the same thread ([`Store::spawn`]).
//!
//! Conditional writes are the whole concurrency story: `If-None-Match: *` creates an object only if it
//! does not exist, `If-Match: <etag>` replaces it only if nobody wrote it since we read it. Both answer 412
//! otherwise, which [`Put::Conflict`] reports, so two writers can never silently overwrite each other.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use aws_config::meta::region::RegionProviderChain;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_types::error::display::DisplayErrorContext;

use super::JournalError;

/// `s3://bucket/prefix[?region=R&endpoint=URL]`: where a team's runs live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// Without leading or trailing `/`; may be empty.
    pub prefix: String,
    pub region: Option<String>,
    pub endpoint: Option<String>,
}

impl S3Location {
    pub fn parse(url: &str) -> Result<S3Location, String> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| format!("`{url}` is not an s3:// URL"))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        if bucket.is_empty() || !bucket.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')) {
            return Err(format!("`{url}`: the bucket name `{bucket}` is not valid (write s3://BUCKET/PREFIX)"));
        }
        let mut loc = S3Location {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            region: None,
            endpoint: None,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("region", v)) if !v.is_empty() => loc.region = Some(v.to_string()),
                Some(("endpoint", v)) if !v.is_empty() => loc.endpoint = Some(v.to_string()),
                _ => return Err(format!("`{url}`: unknown option `{pair}` (allowed: region=..., endpoint=...)")),
            }
        }
        Ok(loc)
    }

    /// `prefix/rel` (or `rel` with no prefix).
    pub fn key(&self, rel: &str) -> String {
        if self.prefix.is_empty() { rel.to_string() } else { format!("{}/{rel}", self.prefix) }
    }
}

impl std::fmt::Display for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// Outcome of a conditional put.
#[derive(Debug)]
pub(crate) enum Put {
    /// Written; the new etag.
    Done(String),
    /// The condition failed (412, or 404 for If-Match on an object that no longer exists): someone else wrote.
    Conflict,
}

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The S3 client and its thread. Cheap to share (`Arc`); the thread ends when the last handle is dropped.
pub(crate) struct Store {
    pub(crate) loc: S3Location,
    client: aws_sdk_s3::Client,
    jobs: tokio::sync::mpsc::UnboundedSender<Job>,
    cache: PathBuf,
}

impl Store {
    /// Starts the thread and builds the client (region and endpoint from the location, else the environment).
    pub(crate) fn new(loc: S3Location, cache_root: &Path) -> Result<Store, JournalError> {
        let (jobs, mut rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let settings = loc.clone();
        std::thread::Builder::new()
            .name("wharf-s3-state".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => return drop(ready_tx.send(Err(e.to_string()))),
                };
                rt.block_on(async move {
                    let _ = ready_tx.send(Ok(client(&settings).await));
                    // Each request is its own task, so a slow call never delays a heartbeat.
                    while let Some(job) = rx.recv().await {
                        tokio::spawn(job);
                    }
                });
            })
            .map_err(|e| s3_error("start the S3 state thread", &loc, e))?;
        let client = ready_rx
            .recv()
            .map_err(|e| s3_error("start the S3 state thread", &loc, e))?
            .map_err(|e| s3_error("start the S3 state runtime", &loc, e))?;
        let cache = cache_root.join("s3-cache").join(&loc.bucket).join(loc.prefix.replace('/', "%"));
        Ok(Store { loc, client, jobs, cache })
    }

    pub(crate) fn client(&self) -> aws_sdk_s3::Client {
        self.client.clone()
    }

    /// Runs `fut` on the store's thread and waits for its result.
    pub(crate) fn block<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.spawn(async move {
            let _ = tx.send(fut.await);
        });
        let wait = move || rx.recv().expect("the S3 state thread runs every job it accepts");
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        }
    }

    /// Runs `fut` on the store's thread in the background.
    pub(crate) fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        // The receiver lives as long as any Store handle does, and we are one.
        let _ = self.jobs.send(Box::pin(fut));
    }

    /// Conditional get: None if the object does not exist.
    pub(crate) async fn get(
        client: &aws_sdk_s3::Client,
        loc: &S3Location,
        key: &str,
        if_none_match: Option<&str>,
    ) -> Result<Got, JournalError> {
        let out = client.get_object().bucket(&loc.bucket).key(key).set_if_none_match(if_none_match.map(str::to_string));
        match out.send().await {
            Ok(o) => {
                let etag = o.e_tag().unwrap_or_default().to_string();
                let body = o.body.collect().await.map_err(|e| s3_error(&format!("read {key}"), loc, e))?;
                Ok(Got::Object(body.into_bytes().to_vec(), etag))
            }
            Err(e) => match status(&e) {
                Some(304) => Ok(Got::NotModified),
                Some(404) => Ok(Got::Missing),
                _ => Err(s3_error(&format!("get {key}"), loc, DisplayErrorContext(e))),
            },
        }
    }

    /// `If-None-Match: *` (create) when `if_match` is None, else `If-Match: <etag>` (update).
    pub(crate) async fn put(
        client: &aws_sdk_s3::Client,
        loc: &S3Location,
        key: &str,
        body: Vec<u8>,
        if_match: Option<&str>,
    ) -> Result<Put, JournalError> {
        let mut req = client
            .put_object()
            .bucket(&loc.bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body));
        req = match if_match {
            Some(etag) => req.if_match(etag),
            None => req.if_none_match("*"),
        };
        match req.send().await {
            Ok(o) => Ok(Put::Done(o.e_tag().unwrap_or_default().to_string())),
            // 409: a concurrent conditional write to the same key is in progress (S3 says "retry"); the
            // other writer wins either way, so it is the same conflict.
            Err(e) if matches!(status(&e), Some(412 | 409)) => Ok(Put::Conflict),
            Err(e) if if_match.is_some() && status(&e) == Some(404) => Ok(Put::Conflict),
            Err(e) => Err(s3_error(&format!("put {key}"), loc, DisplayErrorContext(e))),
        }
    }

    /// Keys under `prefix` (with `delimiter`: the common prefixes one level down instead).
    pub(crate) async fn list(
        client: &aws_sdk_s3::Client,
        loc: &S3Location,
        prefix: &str,
        delimiter: Option<&str>,
    ) -> Result<Vec<String>, JournalError> {
        let mut out = Vec::new();
        let mut pages = client
            .list_objects_v2()
            .bucket(&loc.bucket)
            .prefix(prefix)
            .set_delimiter(delimiter.map(str::to_string))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| s3_error(&format!("list {prefix}"), loc, DisplayErrorContext(e)))?;
            if delimiter.is_some() {
                out.extend(page.common_prefixes().iter().filter_map(|p| p.prefix().map(str::to_string)));
            } else {
                out.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_string)));
            }
        }
        Ok(out)
    }

    /// Reads an object through the local cache: sends the cached etag as `If-None-Match` and serves the
    /// cached bytes on 304, so unchanged state is not downloaded again. `immutable` objects (event chunks,
    /// written once with `If-None-Match: *`) are served from the cache without asking S3 at all.
    pub(crate) fn get_cached(&self, key: &str, immutable: bool) -> Result<Option<(Vec<u8>, String)>, JournalError> {
        let cached = self.cache_read(key);
        if immutable && let Some(hit) = cached {
            return Ok(Some(hit));
        }
        let (client, loc, k) = (self.client(), self.loc.clone(), key.to_string());
        let etag = cached.as_ref().map(|(_, e)| e.clone());
        let got = self.block(async move { Store::get(&client, &loc, &k, etag.as_deref()).await })?;
        Ok(match got {
            Got::NotModified => cached,
            Got::Missing => None,
            Got::Object(bytes, etag) => {
                self.cache_write(key, &bytes, &etag);
                Some((bytes, etag))
            }
        })
    }

    /// Remembers what we wrote (or read), so our next read of it is a 304. Best effort: the cache only
    /// saves downloads, it is never the source of truth.
    pub(crate) fn cache_write(&self, key: &str, bytes: &[u8], etag: &str) {
        let path = self.cache.join(key);
        let tmp = path.with_extension("tmp");
        let _ = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(path.parent().expect("cache paths have a parent"))?;
            let mut content = format!("{etag}\n").into_bytes();
            content.extend_from_slice(bytes);
            std::fs::write(&tmp, content)?;
            std::fs::rename(&tmp, &path)
        })();
    }

    fn cache_read(&self, key: &str) -> Option<(Vec<u8>, String)> {
        let content = std::fs::read(self.cache.join(key)).ok()?;
        let nl = content.iter().position(|b| *b == b'\n')?;
        let etag = String::from_utf8(content[..nl].to_vec()).ok()?;
        Some((content[nl + 1..].to_vec(), etag))
    }
}

pub(crate) enum Got {
    Object(Vec<u8>, String),
    NotModified,
    Missing,
}

fn status<E>(
    e: &aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

pub(crate) fn s3_error(what: &str, loc: &S3Location, e: impl std::fmt::Display) -> JournalError {
    JournalError::S3 { location: loc.to_string(), detail: format!("cannot {what}: {e}") }
}

async fn client(loc: &S3Location) -> aws_sdk_s3::Client {
    let region = RegionProviderChain::first_try(loc.region.clone().map(Region::new))
        .or_default_provider()
        .or_else(Region::new("us-east-1"));
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(region).timeout_config(
        aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(Duration::from_secs(20))
            .build(),
    );
    if let Some(e) = &loc.endpoint {
        loader = loader.endpoint_url(e);
    }
    let config = loader.load().await;
    // Emulators and S3-compatible stores do not resolve virtual-hosted bucket names.
    let path_style = config.endpoint_url().is_some();
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&config).force_path_style(path_style).build())
}

#[cfg(test)]
mod tests {
    use super::S3Location;

    #[test]
    fn parses_state_urls() {
        let l = S3Location::parse("s3://team-state/wharf/prod/?region=eu-west-1&endpoint=http://x:1").unwrap();
        assert_eq!((l.bucket.as_str(), l.prefix.as_str()), ("team-state", "wharf/prod"));
        assert_eq!(l.region.as_deref(), Some("eu-west-1"));
        assert_eq!(l.endpoint.as_deref(), Some("http://x:1"));
        assert_eq!(l.key("runs/a/lock.json"), "wharf/prod/runs/a/lock.json");
        assert_eq!(S3Location::parse("s3://b").unwrap().key("runs/"), "runs/");
        assert!(S3Location::parse("s3:///x").is_err());
        assert!(S3Location::parse("s3://b/p?color=red").is_err());
        assert!(S3Location::parse("file:///x").is_err());
    }
}
