//! One layer per COPY/ADD: the files as a sorted, normalised tar, gzip-compressed.
//!
//! Reproducible by construction: entries sorted by path with their parent directories, mtime
//! fixed (0 or `source_date_epoch`), owner 0:0 unless `--chown`, empty user/group names, modes
//! 0644 for files and 0755 for directories unless `--chmod` (WASI shows no permission bits, so
//! an executable needs `--chmod=755`), gzip with mtime 0 and a fixed level in pure Rust.
//!
//! The tree records the context's files by path and size; they are read when the layer is hashed
//! ([`hash`]). A tar of up to 32 MiB is held from there to be compressed if the registry has no
//! layer of it ([`compress`]); a bigger one is streamed through tar, gzip and the hashers again
//! ([`pack`]), so the step's memory holds its compressed layer, not the binary it packs as well.

use crate::context::{Context, Kind, clean_relative};
use crate::eval::{CopyOp, clean_absolute};
use crate::image::sha256;
use flate2::{Compression, write::GzEncoder};
use std::collections::BTreeMap;
use std::io::{BufReader, Read, Write};
use std::path::PathBuf;
use wharf_plugin_sdk::digest::Sha256;

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Dir,
    /// Bytes already in memory (unpacked from a local tar by ADD).
    File(Vec<u8>),
    /// A file of the build context, read when the layer is packed; `len` is its size when the
    /// tree was made (a file that changes size before it is packed fails the build).
    ContextFile {
        path: PathBuf,
        len: u64,
    },
    Symlink(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub node: Node,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
}

/// A layer's file tree: absolute paths without the leading `/`.
#[derive(Debug, Default)]
pub struct Tree(pub BTreeMap<String, Entry>);

impl Tree {
    /// Adds `entry` at `path`, and root-owned 0755 parent directories where none were added.
    fn add(&mut self, path: &str, entry: Entry) {
        let path = clean_absolute(path).trim_start_matches('/').to_string();
        if path.is_empty() {
            return; // The root directory itself is not an entry.
        }
        let mut parent = String::new();
        for part in path.split('/').collect::<Vec<_>>().split_last().expect("not empty").1 {
            parent = if parent.is_empty() { part.to_string() } else { format!("{parent}/{part}") };
            self.0.entry(parent.clone()).or_insert(Entry { node: Node::Dir, mode: 0o755, uid: 0, gid: 0 });
        }
        self.0.insert(path, entry);
    }
}

/// A built layer.
pub struct Layer {
    /// The compressed blob; none when the registry has it from an earlier build of the same tar
    /// (`registry::find_layer`), which then was not compressed again.
    pub gzip: Option<Vec<u8>>,
    /// sha256 of the blob, and its size.
    pub digest: String,
    pub size: u64,
    /// sha256 of the uncompressed tar (the config's `rootfs.diff_ids`).
    pub diff_id: String,
}

/// The tree of one COPY/ADD read from the context. Errors are plain messages (the caller adds
/// the Dockerfile line).
pub fn tree(ctx: &Context, op: &CopyOp) -> Result<Tree, String> {
    let mut tree = Tree::default();
    let (uid, gid) = op.chown.unwrap_or((0, 0));
    let entry = |node: Node| {
        let mode = match (&node, op.chmod) {
            (Node::Symlink(_), _) => 0o777,
            (_, Some(mode)) => mode,
            (Node::Dir, None) => 0o755,
            (Node::File(_) | Node::ContextFile { .. }, None) => 0o644,
        };
        Entry { node, mode, uid, gid }
    };
    let into_dir = op.dest.ends_with('/');
    for source in &op.sources {
        for rel in ctx.sources(source)? {
            let unreadable = |e: std::io::Error| format!("cannot read {:?} in the build context: {e}", rel);
            if ctx.ignored(&rel) && !rel.is_empty() {
                return Err(format!("{rel:?} is excluded by .dockerignore"));
            }
            match ctx.kind(&rel, true).map_err(unreadable)? {
                // A directory's contents are copied, not the directory itself.
                Kind::Dir => {
                    tree.add(&op.dest, entry(Node::Dir));
                    for (child, kind) in ctx.walk(&rel).map_err(unreadable)? {
                        let inner = child.strip_prefix(&rel).unwrap_or(&child).trim_start_matches('/');
                        let node = match kind {
                            Kind::Dir => Node::Dir,
                            Kind::File => context_file(ctx, &child).map_err(unreadable)?,
                            Kind::Symlink(target) => Node::Symlink(target),
                        };
                        tree.add(&format!("{}/{inner}", op.dest), entry(node));
                    }
                }
                _ => {
                    let name = rel.rsplit('/').next().unwrap_or(&rel);
                    let dest = if into_dir { format!("{}{name}", op.dest) } else { op.dest.clone() };
                    if op.add && is_tar_file(ctx, &rel).map_err(unreadable)? {
                        let data = ctx.read(&rel).map_err(unreadable)?;
                        extract(&mut tree, &data, &op.dest, op.chown).map_err(|e| format!("ADD {rel}: {e}"))?;
                    } else {
                        tree.add(&dest, entry(context_file(ctx, &rel).map_err(unreadable)?));
                    }
                }
            }
        }
    }
    Ok(tree)
}

/// A context file to be streamed into the layer when it is packed.
fn context_file(ctx: &Context, rel: &str) -> std::io::Result<Node> {
    let path = ctx.path(rel);
    let len = std::fs::metadata(&path)?.len();
    Ok(Node::ContextFile { path, len })
}

/// Whether an ADD source is a tar, from its first bytes (enough for a gzip header and the first
/// tar header), so that a plain file is never read whole just to find out.
fn is_tar_file(ctx: &Context, rel: &str) -> std::io::Result<bool> {
    let mut head = Vec::with_capacity(4096);
    std::fs::File::open(ctx.path(rel))?.take(4096).read_to_end(&mut head)?;
    Ok(is_tar(&head))
}

/// Plain or gzip-compressed tar (ADD unpacks those, as Docker does; anything else, including
/// other compressions and gzip files that hold no tar, is copied as is). `data` may be just the
/// file's first bytes.
fn is_tar(data: &[u8]) -> bool {
    let ustar = |head: &[u8]| head.get(257..262) == Some(b"ustar");
    if !data.starts_with(&[0x1f, 0x8b]) {
        return ustar(data);
    }
    let mut head = Vec::new();
    let _ = flate2::read::GzDecoder::new(data).take(512).read_to_end(&mut head);
    ustar(&head)
}

/// Unpacks a local tar into `dest`, keeping the archive's modes (and owners unless `--chown`).
fn extract(tree: &mut Tree, data: &[u8], dest: &str, chown: Option<(u64, u64)>) -> Result<(), String> {
    let reader: Box<dyn Read> =
        if data.starts_with(&[0x1f, 0x8b]) { Box::new(flate2::read::GzDecoder::new(data)) } else { Box::new(data) };
    let mut archive = tar::Archive::new(reader);
    for item in archive.entries().map_err(|e| e.to_string())? {
        let mut item = item.map_err(|e| e.to_string())?;
        let path = item.path().map_err(|e| e.to_string())?.to_string_lossy().into_owned();
        let rel = clean_relative(path.trim_start_matches('/'))?;
        let header = item.header();
        let (uid, gid) = chown.unwrap_or((header.uid().unwrap_or(0), header.gid().unwrap_or(0)));
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let node = match header.entry_type() {
            tar::EntryType::Directory => Node::Dir,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut bytes = Vec::new();
                item.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
                Node::File(bytes)
            }
            tar::EntryType::Symlink => {
                Node::Symlink(item.link_name().ok().flatten().unwrap_or_default().to_string_lossy().into_owned())
            }
            other => return Err(format!("{path}: tar entries of type {other:?} are not supported")),
        };
        if !rel.is_empty() {
            tree.add(&format!("{dest}/{rel}"), Entry { node, mode, uid, gid });
        }
    }
    Ok(())
}

/// A layer's tar, hashed but not compressed: enough to ask the registry for a layer built before
/// from the same files (`registry::find_layer`).
pub struct Tar {
    pub diff_id: String,
    /// The tar itself when it is at most [`HOLD_TAR_UP_TO`], so compressing it reads no file again.
    bytes: Option<Vec<u8>>,
}

/// A bigger tar is streamed again from the files when it must be compressed: the step's memory
/// would otherwise hold the tar and its gzip at once (2x a big binary, against 128 MiB by default).
const HOLD_TAR_UP_TO: u64 = 32 << 20;

/// Hashes the tree's tar (its `diff_id`).
pub fn hash(tree: &Tree, mtime: u64) -> Result<Tar, String> {
    hash_holding(tree, mtime, HOLD_TAR_UP_TO)
}

fn hash_holding(tree: &Tree, mtime: u64, hold_up_to: u64) -> Result<Tar, String> {
    let size = tar_size(tree);
    let finish = |mut h: Sha256| format!("sha256:{}", h.finish());
    if size <= hold_up_to {
        let tar = write_tar(tree, mtime, Hashing { inner: Vec::with_capacity(size as usize), hasher: Sha256::new() })?;
        return Ok(Tar { diff_id: finish(tar.hasher), bytes: Some(tar.inner) });
    }
    let tar = write_tar(tree, mtime, Hashing { inner: std::io::sink(), hasher: Sha256::new() })?;
    Ok(Tar { diff_id: finish(tar.hasher), bytes: None })
}

/// The layer of a hashed tar: compressed from the tar held by [`hash`], or packed again from the
/// files, which must give the same tar (else they changed in between, and the build fails).
pub fn compress(tree: &Tree, mtime: u64, tar: Tar) -> Result<Layer, String> {
    let Some(bytes) = tar.bytes else {
        let layer = pack(tree, mtime)?;
        if layer.diff_id != tar.diff_id {
            return Err("the files changed while the layer was built; build again".into());
        }
        return Ok(layer);
    };
    let mut gz = gzip_encoder(bytes.len() as u64);
    gz.write_all(&bytes).map_err(|e| e.to_string())?;
    drop(bytes);
    let gzip = gz.finish().map_err(|e| e.to_string())?;
    Ok(Layer { digest: sha256(&gzip), size: gzip.len() as u64, diff_id: tar.diff_id, gzip: Some(gzip) })
}

/// The tree as a deterministic tar, gzip-compressed as it is written and hashed on the way (the
/// uncompressed tar is never held in the step's memory).
pub fn pack(tree: &Tree, mtime: u64) -> Result<Layer, String> {
    let mut tar = write_tar(tree, mtime, Hashing { inner: gzip_encoder(tar_size(tree)), hasher: Sha256::new() })?;
    let diff_id = format!("sha256:{}", tar.hasher.finish());
    let gzip = tar.inner.finish().map_err(|e| e.to_string())?;
    Ok(Layer { digest: sha256(&gzip), size: gzip.len() as u64, diff_id, gzip: Some(gzip) })
}

/// At least the tree's tar size: a header, maybe a GNU long-name header, and the data in 512-byte
/// blocks per entry, and the two end blocks.
fn tar_size(tree: &Tree) -> u64 {
    tree.0.values().map(|e| 1536 + file_len(e).next_multiple_of(512)).sum::<u64>() + 1024
}

/// GzEncoder writes mtime 0 and no file name unless told otherwise. Level 1, not 6: for a 12.9 MB
/// binary it compresses about twice as fast (level 6 took ~0.5 s of the step, on the deployment's
/// critical path) for a layer ~8% larger. Fixed, so the same content always gives the same digest.
fn gzip_encoder(tar_size: u64) -> GzEncoder<Vec<u8>> {
    // Room for the whole tar even if nothing compresses, so the output never reallocates: a
    // doubling Vec would briefly hold 3x a big binary and overrun the step's memory limit.
    GzEncoder::new(Vec::with_capacity((tar_size + tar_size / 1000 + 4096) as usize), Compression::new(1))
}

/// Writes the tree to `out` as a deterministic tar (GNU headers for long names).
fn write_tar<W: Write>(tree: &Tree, mtime: u64, out: W) -> Result<W, String> {
    let mut builder = tar::Builder::new(out);
    for (path, entry) in &tree.0 {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(mtime);
        h.set_uid(entry.uid);
        h.set_gid(entry.gid);
        h.set_mode(entry.mode);
        let io = |e: std::io::Error| format!("{path}: {e}");
        match &entry.node {
            Node::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                builder.append_data(&mut h, format!("{path}/"), std::io::empty()).map_err(io)?;
            }
            Node::File(data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                builder.append_data(&mut h, path, data.as_slice()).map_err(io)?;
            }
            Node::ContextFile { path: source, len } => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(*len);
                let file = std::fs::File::open(source).map_err(io)?;
                let exact = Exact { inner: BufReader::with_capacity(256 * 1024, file), left: *len };
                builder.append_data(&mut h, path, exact).map_err(io)?;
            }
            Node::Symlink(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                builder.append_link(&mut h, path, target).map_err(io)?;
            }
        }
    }
    builder.into_inner().map_err(|e| e.to_string())
}

fn file_len(entry: &Entry) -> u64 {
    match &entry.node {
        Node::File(data) => data.len() as u64,
        Node::ContextFile { len, .. } => *len,
        _ => 0,
    }
}

/// Exactly `left` bytes of a context file: one that changed size since the tree was made fails
/// the build instead of giving a short (corrupt) tar entry or a silently cut copy.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let changed = |how: &str| {
            std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("the file {how} while the layer was built; build again"),
            )
        };
        if self.left == 0 {
            // The end: the file must end here too.
            return if self.inner.read(&mut [0u8])? == 0 { Ok(0) } else { Err(changed("grew")) };
        }
        let want = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 && want > 0 {
            return Err(changed("shrank"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Passes bytes through to `inner`, hashing them (on the host: in the sandbox, SHA-256 of the
/// example's 12.9 MB layer took about 40 ms of CPU, on the host with SHA-NI a few).
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
#[path = "layer_tests.rs"]
mod tests;
