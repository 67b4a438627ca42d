use super::*;
use std::path::Path;

fn write(root: &Path, rel: &str, content: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn op(sources: &[&str], dest: &str) -> CopyOp {
    CopyOp {
        line: 1,
        add: false,
        sources: sources.iter().map(|s| s.to_string()).collect(),
        dest: dest.into(),
        chmod: None,
        chown: None,
    }
}

/// (path, type, mode, uid, gid, mtime, uname, gname) of a tar entry.
type TarEntry = (String, char, u32, u64, u64, u64, String, String);

/// Each tar entry, in archive order.
fn entries(layer: &Layer) -> Vec<TarEntry> {
    let mut gz = flate2::read::GzDecoder::new(layer.gzip.as_deref().unwrap());
    let mut tar = Vec::new();
    gz.read_to_end(&mut tar).unwrap();
    assert_eq!(sha256(&tar), layer.diff_id);
    let mut archive = tar::Archive::new(tar.as_slice());
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                e.path().unwrap().to_string_lossy().into_owned(),
                h.entry_type().as_byte() as char,
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.mtime().unwrap(),
                String::from_utf8_lossy(h.username_bytes().unwrap_or_default()).into_owned(),
                String::from_utf8_lossy(h.groupname_bytes().unwrap_or_default()).into_owned(),
            )
        })
        .collect()
}

fn context() -> (tempfile::TempDir, Context) {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "bin/app", "binary");
    write(dir.path(), "conf/z.toml", "z");
    write(dir.path(), "conf/a/b.toml", "b");
    let ctx = Context::open(dir.path().to_str().unwrap()).unwrap();
    (dir, ctx)
}

#[test]
fn entries_are_sorted_with_parents_and_normalised() {
    let (_dir, ctx) = context();
    let layer = pack(&tree(&ctx, &op(&["conf"], "/etc/app/")).unwrap(), 0).unwrap();
    let e = entries(&layer);
    let paths: Vec<&str> = e.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(paths, ["etc/", "etc/app/", "etc/app/a/", "etc/app/a/b.toml", "etc/app/z.toml"]);
    for (path, kind, mode, uid, gid, mtime, uname, gname) in &e {
        assert_eq!(*mode, if *kind == '5' { 0o755 } else { 0o644 }, "{path}");
        assert_eq!((*uid, *gid, *mtime), (0, 0, 0), "{path}");
        assert_eq!((uname.as_str(), gname.as_str()), ("", ""), "{path}");
    }
    // gzip header: no mtime (bytes 4..8), no file name flag.
    assert_eq!(&layer.gzip.as_deref().unwrap()[3..8], &[0, 0, 0, 0, 0]);
}

#[test]
fn chmod_chown_and_mtime_apply_to_copied_entries_only() {
    let (_dir, ctx) = context();
    let copy = CopyOp { chmod: Some(0o755), chown: Some((1000, 1000)), ..op(&["bin/app"], "/usr/local/bin/") };
    let e = entries(&pack(&tree(&ctx, &copy).unwrap(), 1_700_000_000).unwrap());
    let app = e.iter().find(|e| e.0 == "usr/local/bin/app").unwrap();
    assert_eq!((app.2, app.3, app.4, app.5), (0o755, 1000, 1000, 1_700_000_000));
    let parent = e.iter().find(|e| e.0 == "usr/").unwrap();
    assert_eq!((parent.2, parent.3), (0o755, 0));
}

#[test]
fn trailing_slash_and_multiple_sources() {
    let (_dir, ctx) = context();
    let file = tree(&ctx, &op(&["bin/app"], "/app")).unwrap();
    assert!(matches!(file.0["app"].node, Node::ContextFile { len: 6, .. }), "no slash: the file is named /app");
    let into = tree(&ctx, &op(&["bin/app", "conf/z.toml"], "/x/")).unwrap();
    assert_eq!(into.0.keys().collect::<Vec<_>>(), ["x", "x/app", "x/z.toml"]);
    let glob = tree(&ctx, &op(&["conf/*.toml"], "/g/")).unwrap();
    assert_eq!(glob.0.keys().collect::<Vec<_>>(), ["g", "g/z.toml"]);
    let whole = tree(&ctx, &op(&["."], "/ctx/")).unwrap();
    assert!(whole.0.contains_key("ctx/bin/app") && whole.0.contains_key("ctx/conf/a/b.toml"));
}

#[test]
fn same_files_same_digest_and_a_changed_file_changes_it() {
    let (dir, ctx) = context();
    let build = |ctx: &Context| pack(&tree(ctx, &op(&["."], "/app/")).unwrap(), 0).unwrap();
    let (a, b) = (build(&ctx), build(&ctx));
    assert_eq!((a.digest.clone(), a.diff_id.clone()), (b.digest, b.diff_id));
    write(dir.path(), "conf/z.toml", "changed");
    assert_ne!(build(&ctx).digest, a.digest);
}

/// Context files are streamed when the layer is packed: the bytes that land in the tar are the
/// file's, in 256 KiB reads, and a file that changes size in between fails the build.
#[test]
fn context_files_are_streamed_whole_and_a_changed_size_fails() {
    let (dir, ctx) = context();
    let big: String = (0..300_000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    write(dir.path(), "bin/big", &big);
    let layer = pack(&tree(&ctx, &op(&["bin/big"], "/big")).unwrap(), 0).unwrap();
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(layer.gzip.as_deref().unwrap()).read_to_end(&mut tar).unwrap();
    let mut archive = tar::Archive::new(tar.as_slice());
    let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
    let mut content = String::new();
    entry.read_to_string(&mut content).unwrap();
    assert!(content == big, "the packed file differs from the context's");

    for changed in [&big[..1000], &format!("{big}more")[..]] {
        let t = tree(&ctx, &op(&["bin/big"], "/big")).unwrap();
        write(dir.path(), "bin/big", changed);
        let err = pack(&t, 0).err().expect("a file that changed size must fail the build");
        assert!(err.contains("while the layer was built; build again"), "{err}");
        write(dir.path(), "bin/big", &big);
    }
}

#[test]
fn escapes_missing_and_ignored_sources_are_refused() {
    let (dir, _) = context();
    write(dir.path(), ".dockerignore", "conf/a\n");
    let ctx = Context::open(dir.path().to_str().unwrap()).unwrap();
    assert!(tree(&ctx, &op(&["../x"], "/x")).unwrap_err().contains("leaves the build context"));
    assert!(tree(&ctx, &op(&["/etc/passwd"], "/x")).unwrap_err().contains("absolute"));
    assert!(tree(&ctx, &op(&["nope/*.txt"], "/x/")).unwrap_err().contains("no file in the build context"));
    assert!(tree(&ctx, &op(&["missing"], "/x")).unwrap_err().contains("cannot read"));
    assert!(tree(&ctx, &op(&["conf/a"], "/x/")).unwrap_err().contains(".dockerignore"));
    let conf = tree(&ctx, &op(&["conf"], "/c/")).unwrap();
    assert_eq!(conf.0.keys().collect::<Vec<_>>(), ["c", "c/z.toml"], "ignored entries are left out of directories");
}

#[test]
fn add_unpacks_a_local_tar_gz_keeping_its_modes() {
    let (dir, ctx) = context();
    let mut inner = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o750);
    h.set_size(2);
    h.set_entry_type(tar::EntryType::Regular);
    inner.append_data(&mut h, "tool/run", b"hi".as_slice()).unwrap();
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&inner.into_inner().unwrap()).unwrap();
    std::fs::write(dir.path().join("tool.tar.gz"), gz.finish().unwrap()).unwrap();
    let add = CopyOp { add: true, ..op(&["tool.tar.gz"], "/opt/") };
    let t = tree(&ctx, &add).unwrap();
    assert_eq!(t.0["opt/tool/run"], Entry { node: Node::File(b"hi".to_vec()), mode: 0o750, uid: 0, gid: 0 });
    // A gzip file without a tar inside is copied as is.
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(b"just text").unwrap();
    std::fs::write(dir.path().join("notes.gz"), gz.finish().unwrap()).unwrap();
    let t = tree(&ctx, &CopyOp { add: true, ..op(&["notes.gz"], "/opt/") }).unwrap();
    assert!(t.0.contains_key("opt/notes.gz"));
    // COPY does not unpack.
    assert!(tree(&ctx, &op(&["tool.tar.gz"], "/opt/")).unwrap().0.contains_key("opt/tool.tar.gz"));
}

/// Hashing first, then compressing (from the held tar, or from the files again when the tar is too
/// big to hold) gives the layer `pack` gives; files that change in between fail the build.
#[test]
fn hash_then_compress_is_pack_and_files_changed_in_between_fail() {
    let (dir, ctx) = context();
    let t = tree(&ctx, &op(&["."], "/app/")).unwrap();
    let packed = pack(&t, 0).unwrap();
    for hold_up_to in [HOLD_TAR_UP_TO, 0] {
        let tar = hash_holding(&t, 0, hold_up_to).unwrap();
        assert_eq!(tar.diff_id, packed.diff_id);
        assert_eq!(tar.bytes.is_some(), hold_up_to > 0);
        let layer = compress(&t, 0, tar).unwrap();
        assert_eq!((layer.digest, layer.size, layer.gzip), (packed.digest.clone(), packed.size, packed.gzip.clone()));
    }
    let streamed = hash_holding(&t, 0, 0).unwrap();
    write(dir.path(), "conf/z.toml", "y"); // same size: only the digest tells
    let err = compress(&t, 0, streamed).err().expect("changed files must fail the build");
    assert!(err.contains("changed while the layer was built; build again"), "{err}");
}
