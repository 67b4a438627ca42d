//! What each Dockerfile instruction does to the image: ARG and variable scopes, ENV, WORKDIR,
//! ENTRYPOINT, CMD, ... applied to an [`ImageState`]; COPY and ADD become [`CopyOp`]s for `layer`.
//! Everything that would need to execute code inside the image is refused with its line number.

use crate::dockerfile::{Instruction, flags, json_form};
use crate::image::{HistoryLine, ImageState, Platform};
use crate::words::{expand, words};
use std::collections::{BTreeMap, BTreeSet};

/// A COPY or ADD, with variables expanded and the destination made absolute.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyOp {
    pub line: usize,
    pub add: bool,
    pub sources: Vec<String>,
    /// Absolute; a trailing `/` means "into this directory".
    pub dest: String,
    pub chmod: Option<u32>,
    pub chown: Option<(u64, u64)>,
}

/// The FROM line: `scratch` or an image reference, variables expanded.
#[derive(Debug, Clone, PartialEq)]
pub struct From {
    pub line: usize,
    pub image: String,
}

const SUPPORTED: &str = "FROM, COPY, ADD, ENV, ARG, WORKDIR, ENTRYPOINT, CMD, EXPOSE, USER, LABEL, VOLUME, STOPSIGNAL";
const EXTERNAL: &str = "Build this image with an external builder (docker build, buildah, kaniko) and pass its \
     reference to register-taskdef, or do this work before the build and COPY the result.";

#[derive(Clone)]
pub struct Evaluator {
    build_args: BTreeMap<String, String>,
    /// ARGs declared before FROM: usable in FROM, and after it once re-declared.
    global_args: BTreeMap<String, Option<String>>,
    /// ARGs declared in the stage (None: declared without a value).
    args: BTreeMap<String, Option<String>>,
    used_build_args: BTreeSet<String>,
    automatic: BTreeMap<String, String>,
    cmd_set: bool,
    pub state: ImageState,
    pub history: Vec<HistoryLine>,
    pub warnings: Vec<String>,
}

type Result<T> = std::result::Result<T, (usize, String)>;

impl Evaluator {
    pub fn new(build_args: BTreeMap<String, String>, platform: &Platform) -> Evaluator {
        // BuildKit's automatic platform ARGs (usable once declared, like any ARG).
        let automatic = BTreeMap::from([
            ("TARGETPLATFORM".to_string(), platform.to_string()),
            ("TARGETOS".into(), platform.os.clone()),
            ("TARGETARCH".into(), platform.arch.clone()),
            ("TARGETVARIANT".into(), platform.variant.clone().unwrap_or_default()),
        ]);
        Evaluator {
            build_args,
            global_args: BTreeMap::new(),
            args: BTreeMap::new(),
            used_build_args: BTreeSet::new(),
            automatic,
            cmd_set: false,
            state: ImageState::default(),
            history: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Applies the ARGs before FROM and reads FROM; returns it and the instructions after it.
    pub fn read_from<'a>(&mut self, instructions: &'a [Instruction]) -> Result<(From, &'a [Instruction])> {
        for (i, ins) in instructions.iter().enumerate() {
            match ins.keyword.as_str() {
                "ARG" => {
                    for (name, value) in self.declare(ins)? {
                        self.global_args.insert(name, value);
                    }
                }
                "FROM" => return Ok((self.from(ins)?, &instructions[i + 1..])),
                other => return Err((ins.line, format!("{other} before FROM: only ARG may come before FROM"))),
            }
        }
        Err((instructions.last().map_or(1, |i| i.line), "no FROM instruction".into()))
    }

    fn from(&self, ins: &Instruction) -> Result<From> {
        let (flags, rest) = flags(&ins.args);
        if let Some((name, _)) = flags.iter().find(|(name, _)| name != "platform") {
            return Err((ins.line, format!("FROM --{name} is not supported")));
        }
        let lookup = |n: &str| self.global_args.get(n).cloned().flatten().or_else(|| self.automatic.get(n).cloned());
        let w = words(rest, &lookup).map_err(|e| (ins.line, e))?;
        match w.as_slice() {
            [image] => Ok(From { line: ins.line, image: image.clone() }),
            [_, as_, _] if as_.eq_ignore_ascii_case("as") => Err((
                ins.line,
                "multi-stage builds (FROM ... AS) are not supported: build-push makes one stage, and the \
                 stages before it would need RUN. Build the artifacts first and COPY them."
                    .into(),
            )),
            _ => Err((ins.line, "FROM takes one image reference (or `scratch`)".into())),
        }
    }

    /// ARG declarations `NAME[=default] ...` with build_args applied.
    fn declare(&mut self, ins: &Instruction) -> Result<Vec<(String, Option<String>)>> {
        let declared = words(&ins.args, &|n| self.lookup(n)).map_err(|e| (ins.line, e))?;
        if declared.is_empty() {
            return Err((ins.line, "ARG needs a name".into()));
        }
        let mut out = Vec::new();
        for decl in declared {
            let (name, default) = match decl.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (decl.clone(), None),
            };
            valid_name(&name).map_err(|e| (ins.line, e))?;
            let value = match self.build_args.get(&name) {
                Some(v) => {
                    self.used_build_args.insert(name.clone());
                    Some(v.clone())
                }
                None => default,
            };
            out.push((name, value));
        }
        Ok(out)
    }

    /// ENV wins over ARG, as in Docker.
    fn lookup(&self, name: &str) -> Option<String> {
        self.state.env_var(name).map(str::to_string).or_else(|| self.args.get(name).cloned().flatten())
    }

    /// build_args that no ARG declared (Docker warns about them too).
    pub fn unused_build_args(&self) -> Vec<&str> {
        self.build_args.keys().filter(|k| !self.used_build_args.contains(*k)).map(String::as_str).collect()
    }

    /// Seeds the image with the base image's settings.
    pub fn set_base(&mut self, base: ImageState) {
        self.state = base;
    }

    /// Applies one instruction after FROM; COPY and ADD return what to put in a new layer.
    pub fn apply(&mut self, ins: &Instruction) -> Result<Option<CopyOp>> {
        let line = ins.line;
        let err = |e: String| (line, e);
        let vars = |n: &str| self.lookup(n);
        let expanded = || words(&ins.args, &vars).map_err(err);
        match ins.keyword.as_str() {
            "COPY" | "ADD" => {
                let op = self.copy(ins)?;
                self.history.push(HistoryLine { created_by: ins.text(), empty_layer: false });
                return Ok(Some(op));
            }
            "ARG" => {
                for (name, value) in self.declare(ins)? {
                    let value = value
                        .or_else(|| self.global_args.get(&name).cloned().flatten())
                        .or_else(|| self.automatic.get(&name).cloned());
                    self.args.insert(name, value);
                }
                return Ok(None); // ARG leaves no trace in the image.
            }
            "ENV" => {
                for (k, v) in pairs(ins, &vars)? {
                    self.state.set_env(k, v);
                }
            }
            "LABEL" => {
                let labels = pairs(ins, &vars)?;
                self.state.labels.extend(labels);
            }
            "WORKDIR" => {
                let dir = expand(&ins.args, &vars).map_err(err)?;
                if dir.is_empty() {
                    return Err(err("WORKDIR needs a path".into()));
                }
                let base = self.state.workdir.clone().unwrap_or_else(|| "/".into());
                self.state.workdir = Some(clean_absolute(&join(&base, &dir)));
            }
            "USER" => {
                let user = expanded()?;
                let [user] = user.as_slice() else { return Err(err("USER takes one `user[:group]`".into())) };
                self.state.user = Some(user.clone());
            }
            "EXPOSE" => {
                let ports = expanded()?;
                for port in ports {
                    self.state.exposed_ports.insert(exposed_port(&port).map_err(err)?);
                }
            }
            "VOLUME" => {
                let volumes = match json_form(&ins.args) {
                    Some(list) => list,
                    None => expanded()?,
                };
                self.state.volumes.extend(volumes);
            }
            "STOPSIGNAL" => self.state.stop_signal = Some(expand(&ins.args, &vars).map_err(err)?),
            "MAINTAINER" => self.state.author = Some(ins.args.clone()),
            "ENTRYPOINT" => {
                self.state.entrypoint = Some(self.command(ins));
                // Docker: an ENTRYPOINT drops the CMD inherited from the base image.
                if !self.cmd_set {
                    self.state.cmd = None;
                }
            }
            "CMD" => {
                self.state.cmd = Some(self.command(ins));
                self.cmd_set = true;
            }
            "FROM" => return Err(err("a second FROM (multi-stage build) is not supported".into())),
            "RUN" => {
                return Err(err(format!(
                    "RUN needs to execute commands inside the image, which build-push never does (daemonless, \
                     sandboxed). {EXTERNAL}"
                )));
            }
            "HEALTHCHECK" | "ONBUILD" | "SHELL" => {
                return Err(err(format!(
                    "{} is not supported: it configures commands run inside the image by a builder or \
                     container runtime build-push does not drive. {EXTERNAL}",
                    ins.keyword
                )));
            }
            other => {
                return Err(err(format!(
                    "unknown or unsupported instruction {other}; build-push supports {SUPPORTED}"
                )));
            }
        }
        self.history.push(HistoryLine { created_by: ins.text(), empty_layer: true });
        Ok(None)
    }

    /// Exec form as is; shell form wrapped in `/bin/sh -c` (the image then needs a shell).
    fn command(&mut self, ins: &Instruction) -> Vec<String> {
        if let Some(list) = json_form(&ins.args) {
            return list;
        }
        self.warnings.push(format!(
            "line {}: {} in shell form runs `/bin/sh -c`, which a scratch image does not have; \
             prefer the exec form [\"/app\", \"arg\"]",
            ins.line, ins.keyword
        ));
        vec!["/bin/sh".into(), "-c".into(), ins.args.clone()]
    }

    fn copy(&self, ins: &Instruction) -> Result<CopyOp> {
        let (line, add) = (ins.line, ins.keyword == "ADD");
        let err = |e: String| (line, e);
        let vars = |n: &str| self.lookup(n);
        let (flags, rest) = flags(&ins.args);
        let (mut chmod, mut chown) = (None, None);
        for (name, value) in flags {
            let value = expand(&value, &vars).map_err(err)?;
            match name.as_str() {
                "chmod" => chmod = Some(octal_mode(&value).map_err(err)?),
                "chown" => chown = Some(numeric_owner(&value).map_err(err)?),
                "link" => {} // Every build-push layer is independent of the ones below it anyway.
                "from" => {
                    return Err(err(format!(
                        "{} --from copies out of another stage or image, which build-push does not support. {EXTERNAL}",
                        ins.keyword
                    )));
                }
                other => return Err(err(format!("{} --{other} is not supported", ins.keyword))),
            }
        }
        let mut paths = match json_form(rest) {
            Some(list) => list.iter().map(|p| expand(p, &vars)).collect::<std::result::Result<Vec<_>, _>>(),
            None => words(rest, &vars),
        }
        .map_err(err)?;
        if paths.len() < 2 {
            return Err(err(format!("{} needs at least one source and a destination", ins.keyword)));
        }
        let dest = paths.pop().expect("two or more");
        for src in &paths {
            if src.starts_with("<<") {
                return Err(err("heredocs (<<EOF) are not supported; put the content in a file and COPY it".into()));
            }
            if add && (src.contains("://") || src.starts_with("git@")) {
                return Err(err(format!(
                    "ADD {src}: remote sources are not fetched (the sandbox has no network). Download it \
                     before the build, check its digest, and COPY the file"
                )));
            }
        }
        if paths.len() > 1 && !dest.ends_with('/') {
            return Err(err(format!(
                "with more than one source the destination must be a directory ending in `/` (got {dest:?})"
            )));
        }
        let workdir = self.state.workdir.clone().unwrap_or_else(|| "/".into());
        let mut absolute = clean_absolute(&join(&workdir, &dest));
        if (dest.ends_with('/') || dest.ends_with("/.") || dest == ".") && absolute != "/" {
            absolute.push('/');
        }
        Ok(CopyOp { line, add, sources: paths, dest: absolute, chmod, chown })
    }
}

/// `k=v k2="v 2"` pairs, or the legacy one-pair form `k the value`.
fn pairs(ins: &Instruction, vars: &dyn Fn(&str) -> Option<String>) -> Result<Vec<(String, String)>> {
    let err = |e: String| (ins.line, e);
    let w = words(&ins.args, vars).map_err(err)?;
    let Some(first) = w.first() else { return Err(err(format!("{} needs name=value", ins.keyword))) };
    if !first.contains('=') {
        // Legacy `ENV NAME value with spaces`: the value is the rest of the line.
        let (name, value) = ins.args.split_once(char::is_whitespace).unwrap_or((&ins.args, ""));
        if value.trim().is_empty() {
            return Err(err(format!("{} {name} needs a value: write {name}=value", ins.keyword)));
        }
        return Ok(vec![(name.to_string(), expand(value.trim(), vars).map_err(err)?)]);
    }
    w.into_iter()
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(err(format!("{} expects name=value pairs, got {pair:?}", ins.keyword))),
        })
        .collect()
}

fn valid_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok { Ok(()) } else { Err(format!("invalid ARG name {name:?}")) }
}

fn octal_mode(text: &str) -> std::result::Result<u32, String> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("--chmod={text}: give an octal mode such as 755 or 0644"))
}

/// `uid[:gid]`, numbers only: a daemonless build has no /etc/passwd to look names up in.
fn numeric_owner(text: &str) -> std::result::Result<(u64, u64), String> {
    let (u, g) = text.split_once(':').unwrap_or((text, text));
    match (u.parse(), g.parse()) {
        (Ok(uid), Ok(gid)) => Ok((uid, gid)),
        _ => Err(format!(
            "--chown={text}: give numeric ids (e.g. --chown=1000:1000); build-push cannot look user names up \
             in the image's /etc/passwd"
        )),
    }
}

/// `80`, `80/udp`, `8000-8010/tcp`: stored as `port/proto`.
fn exposed_port(text: &str) -> std::result::Result<String, String> {
    let (ports, proto) = text.split_once('/').unwrap_or((text, "tcp"));
    let proto = proto.to_ascii_lowercase();
    let port_ok = |p: &str| p.parse::<u16>().is_ok_and(|p| p > 0);
    let ok = match ports.split_once('-') {
        Some((a, b)) => port_ok(a) && port_ok(b),
        None => port_ok(ports),
    };
    if !ok || !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
        return Err(format!("EXPOSE {text}: expected a port like 8080 or 8080/udp"));
    }
    Ok(format!("{ports}/{proto}"))
}

fn join(base: &str, path: &str) -> String {
    if path.starts_with('/') { path.to_string() } else { format!("{base}/{path}") }
}

/// `/a/./b/../c` -> `/a/c` (no trailing slash; `..` stops at the root, as in a container).
pub fn clean_absolute(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
#[path = "eval_tests.rs"]
mod tests;
