//! The host's record of gzip layers it pushed: `(registry, repository, diff_id) -> (digest, size)`,
//! so a build of unchanged files finds its layer (`find-layer`) instead of compressing it again.
//! Docker keeps the same record for the same reason (its "v2 metadata" of pushed layers).
//!
//! - Written only by `push-layer`, after the host unpacked the layer itself and found the tar
//!   hashes to `diff_id` ([`unpacked_digest`]): a plugin cannot make it name a blob with other
//!   content, so the image configs built from it stay true.
//! - One small JSON file per layer under `<cache dir>/registry-layers/`, written to a temporary
//!   file and renamed: concurrent runs never read half an entry. A file that cannot be read or
//!   parsed is no entry (the layer is compressed again); nothing here is precious.
//! - Plain data: digests and sizes, never credentials.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    pub registry: String,
    pub repository: String,
    pub diff_id: String,
    /// The compressed blob's digest and size.
    pub digest: String,
    pub size: u64,
}

/// Where the records live; `None` keeps none (a host without a cache directory, some tests).
#[derive(Debug, Default)]
pub struct LayerIndex {
    dir: Option<PathBuf>,
}

impl LayerIndex {
    /// Records under `<cache_dir>/registry-layers/` (created on first write).
    pub fn in_cache_dir(cache_dir: &Path) -> Self {
        LayerIndex { dir: Some(cache_dir.join("registry-layers")) }
    }

    /// The record for this layer in this repository, if any.
    pub fn find(&self, registry: &str, repository: &str, diff_id: &str) -> Option<LayerRecord> {
        let path = self.path(registry, repository, diff_id)?;
        let record: LayerRecord = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
        // The file name is a hash of these three; a mismatch is a damaged file.
        let ours = record.registry == registry && record.repository == repository && record.diff_id == diff_id;
        ours.then_some(record)
    }

    /// Best effort: a record that cannot be written only costs a later build its shortcut.
    pub fn record(&self, record: &LayerRecord) {
        let Some(path) = self.path(&record.registry, &record.repository, &record.diff_id) else { return };
        let Some(dir) = path.parent() else { return };
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(dir)?;
            let mut file = tempfile::NamedTempFile::new_in(dir)?;
            std::io::Write::write_all(&mut file, &serde_json::to_vec(record).expect("a record serializes"))?;
            file.persist(&path).map_err(|e| e.error)?;
            Ok(())
        };
        let _ = write();
    }

    /// Drops the record of a layer the repository no longer has.
    pub fn forget(&self, registry: &str, repository: &str, diff_id: &str) {
        if let Some(path) = self.path(registry, repository, diff_id) {
            let _ = std::fs::remove_file(path);
        }
    }

    fn path(&self, registry: &str, repository: &str, diff_id: &str) -> Option<PathBuf> {
        let key = Sha256::digest(format!("{registry}\n{repository}\n{diff_id}"));
        Some(self.dir.as_ref()?.join(format!("{}.json", hex::encode(key))))
    }
}

/// `sha256:...` of what the gzip `data` unpacks to, or why it does not unpack. Stops early once
/// `abandoned` is set: a gzip bomb (128 MiB can unpack to ~130 GB) must not keep a host thread
/// busy after the call that asked for it has gone (its step timed out or was cancelled).
pub fn unpacked_digest(data: &[u8], abandoned: &AtomicBool) -> Result<String, String> {
    let mut gz = flate2::read::MultiGzDecoder::new(data);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        if abandoned.load(Ordering::Relaxed) {
            return Err("the call was abandoned before the layer was unpacked".into());
        }
        match gz.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) => return Err(format!("it is not gzip data: {e}")),
        }
    }
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(data).unwrap();
        gz.finish().unwrap()
    }

    fn record(diff_id: &str) -> LayerRecord {
        LayerRecord {
            registry: "127.0.0.1:5000".into(),
            repository: "team/app".into(),
            diff_id: diff_id.into(),
            digest: "sha256:aa".into(),
            size: 42,
        }
    }

    #[test]
    fn a_recorded_layer_is_found_in_its_repository_only_until_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let index = LayerIndex::in_cache_dir(dir.path());
        let r = record("sha256:01");
        assert_eq!(index.find(&r.registry, &r.repository, &r.diff_id), None);
        index.record(&r);
        assert_eq!(index.find(&r.registry, &r.repository, &r.diff_id), Some(r.clone()));
        // Another repository, registry or tar: no record.
        assert_eq!(index.find(&r.registry, "team/other", &r.diff_id), None);
        assert_eq!(index.find("127.0.0.1:5001", &r.repository, &r.diff_id), None);
        assert_eq!(index.find(&r.registry, &r.repository, "sha256:02"), None);
        // A second index on the same directory (another process) reads it too.
        assert_eq!(LayerIndex::in_cache_dir(dir.path()).find(&r.registry, &r.repository, &r.diff_id), Some(r.clone()));
        index.forget(&r.registry, &r.repository, &r.diff_id);
        assert_eq!(index.find(&r.registry, &r.repository, &r.diff_id), None);
    }

    #[test]
    fn a_damaged_record_is_no_record_and_no_directory_keeps_none() {
        let dir = tempfile::tempdir().unwrap();
        let index = LayerIndex::in_cache_dir(dir.path());
        let r = record("sha256:01");
        index.record(&r);
        let file = std::fs::read_dir(dir.path().join("registry-layers")).unwrap().next().unwrap().unwrap().path();
        std::fs::write(&file, b"{\"regis").unwrap();
        assert_eq!(index.find(&r.registry, &r.repository, &r.diff_id), None);
        // Valid JSON for another layer under this layer's name.
        std::fs::write(&file, serde_json::to_vec(&record("sha256:99")).unwrap()).unwrap();
        assert_eq!(index.find(&r.registry, &r.repository, &r.diff_id), None);

        let none = LayerIndex::default();
        none.record(&r);
        assert_eq!(none.find(&r.registry, &r.repository, &r.diff_id), None);
    }

    #[test]
    fn the_unpacked_digest_is_the_tars_and_non_gzip_is_refused() {
        let tar = b"not really a tar, but bytes all the same".repeat(1000);
        let expected = format!("sha256:{}", hex::encode(Sha256::digest(&tar)));
        let running = AtomicBool::new(false);
        assert_eq!(unpacked_digest(&gzip(&tar), &running), Ok(expected));
        assert!(unpacked_digest(&tar, &running).unwrap_err().contains("not gzip"));
        // An abandoned call stops at the next chunk instead of unpacking all of it.
        let bomb = gzip(&vec![0u8; 64 << 20]);
        assert!(unpacked_digest(&bomb, &AtomicBool::new(true)).unwrap_err().contains("abandoned"));
    }
}
