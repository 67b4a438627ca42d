//! Paths a workflow names (`fs:Read <dir>`, `file:Read <file>`): relative to the workflow file's
//! directory and confined to it. A grant's `*` matches `/`, so confinement cannot come from the
//! grant pattern; it comes from here: no absolute path, no `..`, and the real path, after
//! following symlinks, still inside the directory (a symlink `secrets/x -> ~/.aws/credentials`
//! is refused like `../../.aws/credentials`).

use std::path::{Component, Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("`{path}` must be relative to the workflow file's directory, without `..`")]
    NotRelative { path: String },
    #[error("`{path}` ({}) cannot be resolved: {kind}", shown.display())]
    Unresolvable { path: String, shown: PathBuf, kind: std::io::ErrorKind },
    #[error("`{path}` resolves to {}, outside the workflow file's directory {}", real.display(), base.display())]
    Outside { path: String, real: PathBuf, base: PathBuf },
}

/// True when `path` is relative and never climbs with `..`.
pub fn is_plain_relative(path: &str) -> bool {
    let p = Path::new(path);
    !p.is_absolute() && !p.components().any(|c| matches!(c, Component::ParentDir | Component::Prefix(_)))
}

/// The real path of `relative` under `base`, refused unless it stays inside `base`.
pub fn resolve_inside(base: &Path, relative: &str) -> Result<PathBuf, PathError> {
    if !is_plain_relative(relative) {
        return Err(PathError::NotRelative { path: relative.to_string() });
    }
    let joined = base.join(relative);
    let unresolvable = |shown: &Path, e: std::io::Error| PathError::Unresolvable {
        path: relative.into(),
        shown: shown.into(),
        kind: e.kind(),
    };
    let real_base = base.canonicalize().map_err(|e| unresolvable(base, e))?;
    let real = joined.canonicalize().map_err(|e| unresolvable(&joined, e))?;
    if !real.starts_with(&real_base) {
        return Err(PathError::Outside { path: relative.to_string(), real, base: real_base });
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_that_stay_inside_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("wf");
        std::fs::create_dir_all(base.join("secrets")).unwrap();
        std::fs::write(base.join("secrets/db.txt"), "x").unwrap();
        std::fs::write(dir.path().join("outside.txt"), "x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside.txt"), base.join("secrets/link")).unwrap();
        std::os::unix::fs::symlink(base.join("secrets/db.txt"), base.join("inner-link")).unwrap();

        assert!(resolve_inside(&base, "secrets/db.txt").unwrap().ends_with("wf/secrets/db.txt"));
        assert!(resolve_inside(&base, "inner-link").unwrap().ends_with("wf/secrets/db.txt"));
        for bad in ["/etc/passwd", "../outside.txt", "secrets/../../outside.txt"] {
            assert_eq!(resolve_inside(&base, bad), Err(PathError::NotRelative { path: bad.into() }), "{bad}");
        }
        assert!(matches!(resolve_inside(&base, "secrets/link"), Err(PathError::Outside { .. })));
        assert!(matches!(resolve_inside(&base, "missing"), Err(PathError::Unresolvable { .. })));
    }
}
