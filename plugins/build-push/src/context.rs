//! The build context: a directory the step reads (in the sandbox, the read-only preopen granted by
//! `fs:Read <context>`). Sources are relative to it and may not leave it; `.dockerignore` hides
//! files from COPY and ADD. Paths here are context-relative, `/`-separated, without `.` or `..`.

use std::path::PathBuf;

pub struct Context {
    root: PathBuf,
    ignore: Vec<(bool, Vec<String>)>,
}

/// What a context path is (symlinks are not followed inside directories).
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Dir,
    File,
    Symlink(String),
}

impl Context {
    /// Opens the context and reads its `.dockerignore`, if any.
    pub fn open(root: &str) -> std::io::Result<Context> {
        let root = PathBuf::from(root);
        std::fs::read_dir(&root)?;
        let ignore = match std::fs::read_to_string(root.join(".dockerignore")) {
            Ok(text) => parse_ignore(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok(Context { root, ignore })
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        if rel.is_empty() { self.root.clone() } else { self.root.join(rel) }
    }

    pub fn read(&self, rel: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.path(rel))
    }

    /// The kind of `rel`; a top-level source that is a symlink is followed, as Docker does.
    pub fn kind(&self, rel: &str, follow: bool) -> std::io::Result<Kind> {
        let path = self.path(rel);
        let meta = if follow { std::fs::metadata(&path)? } else { std::fs::symlink_metadata(&path)? };
        Ok(if meta.is_dir() {
            Kind::Dir
        } else if meta.file_type().is_symlink() {
            Kind::Symlink(std::fs::read_link(&path)?.to_string_lossy().into_owned())
        } else {
            Kind::File
        })
    }

    /// Entries under the directory `rel` (recursive, sorted, ignored ones left out).
    pub fn walk(&self, rel: &str) -> std::io::Result<Vec<(String, Kind)>> {
        let mut out = Vec::new();
        for name in self.list(rel)? {
            let child = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            if self.ignored(&child) {
                continue;
            }
            let kind = self.kind(&child, false)?;
            let is_dir = kind == Kind::Dir;
            out.push((child.clone(), kind));
            if is_dir {
                out.extend(self.walk(&child)?);
            }
        }
        Ok(out)
    }

    fn list(&self, rel: &str) -> std::io::Result<Vec<String>> {
        let mut names = std::fs::read_dir(self.path(rel))?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<std::io::Result<Vec<_>>>()?;
        names.sort();
        Ok(names)
    }

    /// True when `.dockerignore` excludes `rel` (or a directory above it); the last matching
    /// rule wins, so `!pattern` re-includes.
    pub fn ignored(&self, rel: &str) -> bool {
        let parts: Vec<&str> = rel.split('/').collect();
        let mut ignored = false;
        for (negate, pattern) in &self.ignore {
            if (1..=parts.len()).any(|n| path_match(pattern, &parts[..n])) {
                ignored = !negate;
            }
        }
        ignored
    }

    /// A COPY source resolved to context paths: checked to stay inside, wildcards expanded.
    pub fn sources(&self, source: &str) -> Result<Vec<String>, String> {
        let rel = clean_relative(source)?;
        if !rel.contains(['*', '?', '[']) {
            return Ok(vec![rel]);
        }
        let mut found = vec![String::new()];
        for segment in rel.split('/') {
            let mut next = Vec::new();
            for dir in &found {
                let join = |name: &str| if dir.is_empty() { name.to_string() } else { format!("{dir}/{name}") };
                if !segment.contains(['*', '?', '[']) {
                    next.push(join(segment));
                    continue;
                }
                let names = if self.path(dir).is_dir() { self.list(dir).map_err(|e| e.to_string())? } else { vec![] };
                next.extend(names.iter().filter(|n| segment_match(segment, n)).map(|n| join(n)));
            }
            found = next;
        }
        found.retain(|p| self.path(p).symlink_metadata().is_ok() && !self.ignored(p));
        if found.is_empty() {
            return Err(format!("no file in the build context matches {source:?}"));
        }
        Ok(found)
    }
}

/// `./a/b` -> `a/b`, `.` -> `` (the context itself); absolute paths and `..` are refused.
pub fn clean_relative(source: &str) -> Result<String, String> {
    if source.starts_with('/') {
        return Err(format!("source {source:?} is absolute: sources are relative to the build context directory"));
    }
    let mut parts = Vec::new();
    for part in source.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(format!("source {source:?} leaves the build context (`..`); sources must stay inside it"));
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

fn parse_ignore(text: &str) -> Vec<(bool, Vec<String>)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (negate, pattern) = match l.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, l),
            };
            let pattern = clean_relative(pattern.trim_start_matches('/')).ok()?;
            (!pattern.is_empty()).then(|| (negate, pattern.split('/').map(str::to_string).collect()))
        })
        .collect()
}

/// Matches path segments against pattern segments; `**` matches any number of segments.
fn path_match(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => (0..=path.len()).any(|skip| path_match(rest, &path[skip..])),
        Some((first, rest)) => {
            path.split_first().is_some_and(|(p, path_rest)| segment_match(first, p) && path_match(rest, path_rest))
        }
    }
}

/// Go `filepath.Match` for one segment: `*`, `?`, `[abc]`/`[a-z]`/`[^a]`, and `\` escapes.
fn segment_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|k| go(&p[1..], &n[k..])),
            Some('?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some('[') => {
                let Some(end) = p.iter().position(|&c| c == ']') else {
                    return p.first() == n.first() && go(&p[1..], &n[1..]);
                };
                let Some(&c) = n.first() else { return false };
                let (negate, class) = match p[1..end].split_first() {
                    Some(('^' | '!', rest)) => (true, rest),
                    _ => (false, &p[1..end]),
                };
                let mut hit = false;
                let mut i = 0;
                while i < class.len() {
                    if i + 2 < class.len() && class[i + 1] == '-' {
                        hit |= class[i] <= c && c <= class[i + 2];
                        i += 3;
                    } else {
                        hit |= class[i] == c;
                        i += 1;
                    }
                }
                hit != negate && go(&p[end + 1..], &n[1..])
            }
            Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && go(&p[2..], &n[1..]),
            Some(c) => n.first() == Some(c) && go(&p[1..], &n[1..]),
        }
    }
    go(&pattern.chars().collect::<Vec<_>>(), &name.chars().collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_stay_inside_the_context() {
        assert_eq!(clean_relative("./a//b/.").unwrap(), "a/b");
        assert_eq!(clean_relative(".").unwrap(), "");
        assert!(clean_relative("../secret").unwrap_err().contains("leaves the build context"));
        assert!(clean_relative("a/../../b").is_err());
        assert!(clean_relative("/etc/passwd").unwrap_err().contains("absolute"));
    }

    #[test]
    fn globs() {
        assert!(segment_match("*.txt", "a.txt"));
        assert!(!segment_match("*.txt", "a.txd"));
        assert!(segment_match("fil?[0-9]", "file7"));
        assert!(!segment_match("[^a]x", "ax"));
        let p = |s: &str| s.split('/').map(str::to_string).collect::<Vec<_>>();
        assert!(path_match(&p("**/*.md"), &["docs", "x", "README.md"]));
        assert!(path_match(&p("**/*.md"), &["README.md"]));
        assert!(!path_match(&p("*.md"), &["docs", "README.md"]));
    }

    #[test]
    fn dockerignore_rules_and_exceptions() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".dockerignore"), "# comment\ntarget\n*.log\n!keep.log\n/secret/**\n").unwrap();
        let ctx = Context::open(dir.path().to_str().unwrap()).unwrap();
        assert!(ctx.ignored("target/debug/app"));
        assert!(ctx.ignored("x.log"));
        assert!(!ctx.ignored("keep.log"));
        assert!(ctx.ignored("secret/key"));
        assert!(!ctx.ignored("src/x.log"), "*.log matches at the top level only, as in Docker");
    }
}
