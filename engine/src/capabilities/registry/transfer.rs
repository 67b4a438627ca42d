//! How much one registry download may bring into the host. Blobs are written into a [`Capped`]
//! buffer as they arrive, so an endless or oversized blob is cut off at the limit instead of
//! being held whole (a registry's Content-Length is not trusted); manifests have the 4 MiB limit
//! registries themselves apply to manifest uploads.

use crate::host::bindings::{ErrorKind, WitError};
use crate::host::sandbox::MAX_HOST_TRANSFER;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The largest blob the host downloads: what one call may move between host and guest anyway.
pub const MAX_BLOB_BYTES: usize = MAX_HOST_TRANSFER;
/// The largest manifest the host accepts (distribution's own limit on manifest uploads).
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// An in-memory sink that refuses to grow past `limit` (and remembers that it did).
pub(super) struct Capped {
    pub data: Vec<u8>,
    limit: usize,
    pub exceeded: bool,
}

impl Capped {
    pub fn new(limit: usize) -> Self {
        Capped { data: Vec::new(), limit, exceeded: false }
    }
}

impl tokio::io::AsyncWrite for Capped {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.data.len() + buf.len() > this.limit {
            this.exceeded = true;
            return Poll::Ready(Err(io::Error::other("over the host's transfer limit")));
        }
        this.data.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// `what` (e.g. "blob sha256:… of r/n") is larger than `limit` bytes.
pub(super) fn too_large(code: &str, what: &str, limit: usize) -> WitError {
    WitError::new(
        ErrorKind::Permanent,
        code,
        format!("the {what} is larger than {} MiB, the most the host takes from a registry in one call", limit >> 20),
    )
}

/// The attempt has downloaded all its budget allows (`limits::MAX_DOWNLOAD_BYTES`), parts included.
pub(super) fn over_budget(what: &str, budget: u64) -> WitError {
    WitError::new(
        ErrorKind::Permanent,
        "DownloadBudgetExceeded",
        format!(
            "the {what} does not fit in what is left of this attempt's {} MiB registry download budget",
            budget >> 20
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn the_sink_stops_at_its_limit() {
        let mut sink = Capped::new(4);
        sink.write_all(b"abcd").await.unwrap();
        assert!(sink.write_all(b"e").await.is_err());
        assert!(sink.exceeded);
        assert_eq!(sink.data, b"abcd");
    }
}
