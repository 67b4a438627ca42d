//! `s3`: object metadata and content digests, read-only (wharf never deletes objects it did not
//! create, and it creates none).

use crate::host::bindings::wharf::plugin::s3::{Host, ObjectInfo};
use crate::host::bindings::{ErrorKind, WitError};
use crate::host::sandbox::SandboxState;
use sha2::{Digest, Sha256};

impl Host for SandboxState {
    async fn get_object_info(&mut self, bucket: String, key: String) -> Result<Option<ObjectInfo>, WitError> {
        let caps = self.caps()?;
        let resource = format!("{bucket}/{key}");
        caps.authorize("s3:GetObject", &resource)?;
        let client = caps.aws().s3().await?;
        let head = client.head_object().bucket(&bucket).key(&key).send();
        let head = match caps.call("s3:HeadObject", &resource, head).await {
            // HEAD responses have no body, so a missing key is often just a bare 404.
            Err(e) if e.http_status == Some(404) || matches!(e.code.as_str(), "NotFound" | "NoSuchKey") => {
                return Ok(None);
            }
            other => other?,
        };
        let etag = head.e_tag().unwrap_or_default().to_string();
        // If-Match: the digest is of exactly the version whose etag and size we report.
        let get = client.get_object().bucket(&bucket).key(&key).if_match(&etag).send();
        let mut out = match caps.call("s3:GetObject", &resource, get).await {
            Err(e) if matches!(e.code.as_str(), "PreconditionFailed" | "NoSuchKey") || e.http_status == Some(412) => {
                return Err(WitError::new(
                    ErrorKind::Retryable,
                    "ObjectChanged",
                    format!("s3://{resource} changed or vanished while it was being read"),
                ));
            }
            other => other?,
        };
        let (mut hasher, mut size) = (Sha256::new(), 0u64);
        while let Some(chunk) = out.body.next().await {
            let chunk = chunk.map_err(|e| {
                WitError::new(ErrorKind::Retryable, "ReadFailed", format!("reading s3://{resource} failed: {e}"))
            })?;
            size += chunk.len() as u64;
            hasher.update(&chunk);
        }
        Ok(Some(ObjectInfo { etag, size, sha256: hex::encode(hasher.finalize()) }))
    }
}
