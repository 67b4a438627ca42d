use super::*;
use crate::dockerfile::parse;

fn platform() -> Platform {
    Platform::parse("linux/amd64").unwrap()
}

/// Evaluates a whole Dockerfile: the FROM image, the COPY ops, the evaluator.
fn eval(text: &str, build_args: &[(&str, &str)]) -> Result<(From, Vec<CopyOp>, Evaluator)> {
    let args = build_args.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let mut ev = Evaluator::new(args, &platform());
    let instructions = parse(text)?;
    let (from, rest) = ev.read_from(&instructions)?;
    let mut ops = Vec::new();
    for ins in rest {
        ops.extend(ev.apply(ins)?);
    }
    Ok((from, ops, ev))
}

fn error(text: &str) -> (usize, String) {
    eval(text, &[]).err().expect("an error")
}

#[test]
fn config_instructions() {
    let (from, ops, ev) = eval(
        "FROM scratch\nENV A=1 B=\"two words\"\nENV LEGACY value with spaces\nWORKDIR /srv\nWORKDIR app\n\
         USER 1000:1000\nEXPOSE 8080 53/udp\nLABEL org.x=\"y z\" k=v\nVOLUME [\"/data\"]\nSTOPSIGNAL SIGTERM\n\
         ENTRYPOINT [\"/srv/app/bin\", \"--flag\"]\nCMD [\"serve\"]\n",
        &[],
    )
    .unwrap();
    assert_eq!(from, From { line: 1, image: "scratch".into() });
    assert!(ops.is_empty());
    let s = &ev.state;
    assert_eq!(
        s.env,
        [("A".into(), "1".into()), ("B".into(), "two words".into()), ("LEGACY".into(), "value with spaces".into())]
    );
    assert_eq!(s.workdir.as_deref(), Some("/srv/app"));
    assert_eq!(s.user.as_deref(), Some("1000:1000"));
    assert_eq!(s.exposed_ports.iter().collect::<Vec<_>>(), ["53/udp", "8080/tcp"]);
    assert_eq!(s.labels["org.x"], "y z");
    assert!(s.volumes.contains("/data"));
    assert_eq!(s.stop_signal.as_deref(), Some("SIGTERM"));
    assert_eq!(s.entrypoint.as_ref().unwrap(), &["/srv/app/bin", "--flag"]);
    assert_eq!(s.cmd.as_ref().unwrap(), &["serve"]);
    assert_eq!(ev.history.len(), 11);
    assert!(ev.history.iter().all(|h| h.empty_layer));
}

#[test]
fn args_env_and_build_args_substitute_like_docker() {
    let text = "ARG BASE=scratch\nFROM ${BASE}\nARG VERSION=0.1\nARG DIR\nARG TARGETARCH\nENV VERSION=v$VERSION\n\
                ENV P=${DIR:-/opt}/$TARGETARCH\nCOPY app-${VERSION}.bin $P/\n";
    let (from, ops, ev) = eval(text, &[("VERSION", "2.0"), ("UNUSED", "x")]).unwrap();
    assert_eq!(from.image, "scratch");
    assert_eq!(ev.state.env_var("VERSION"), Some("v2.0"));
    assert_eq!(ev.state.env_var("P"), Some("/opt/amd64"));
    // ENV wins over ARG of the same name.
    assert_eq!(ops[0].sources, ["app-v2.0.bin"]);
    assert_eq!(ops[0].dest, "/opt/amd64/");
    assert_eq!(ev.unused_build_args(), ["UNUSED"]);
}

#[test]
fn copy_forms_flags_and_destinations() {
    let text = "FROM scratch\nWORKDIR /app\nCOPY --chmod=755 --chown=10:20 bin/app .\nCOPY [\"a b.txt\", \"conf/\"]\n\
                ADD --chown=7 a b /dir/\nCOPY x /abs/file\n";
    let (_, ops, _) = eval(text, &[]).unwrap();
    assert_eq!(
        ops[0],
        CopyOp {
            line: 3,
            add: false,
            sources: vec!["bin/app".into()],
            dest: "/app/".into(),
            chmod: Some(0o755),
            chown: Some((10, 20))
        }
    );
    assert_eq!(ops[1].sources, ["a b.txt"]);
    assert_eq!(ops[1].dest, "/app/conf/");
    assert_eq!((ops[2].add, ops[2].chown, ops[2].dest.as_str()), (true, Some((7, 7)), "/dir/"));
    assert_eq!(ops[3].dest, "/abs/file");
}

#[test]
fn entrypoint_drops_an_inherited_cmd_but_not_its_own() {
    let mut ev = Evaluator::new(BTreeMap::new(), &platform());
    ev.set_base(ImageState { cmd: Some(vec!["sh".into()]), ..ImageState::default() });
    let ins = parse("ENTRYPOINT [\"/app\"]").unwrap();
    ev.apply(&ins[0]).unwrap();
    assert_eq!(ev.state.cmd, None);
    let ins = parse("CMD [\"x\"]\nENTRYPOINT /app run").unwrap();
    ev.apply(&ins[0]).unwrap();
    ev.apply(&ins[1]).unwrap();
    assert_eq!(ev.state.cmd.as_ref().unwrap(), &["x"]);
    assert_eq!(ev.state.entrypoint.as_ref().unwrap(), &["/bin/sh", "-c", "/app run"]);
    assert!(ev.warnings[0].contains("exec form"), "{:?}", ev.warnings);
}

#[test]
fn run_is_refused_with_its_line_and_the_way_out() {
    let (line, message) = error("FROM scratch\nCOPY a /a\n\nRUN make \\\n  install\n");
    assert_eq!(line, 4);
    let expected = "RUN needs to execute commands inside the image, which build-push never does (daemonless, \
                    sandboxed). Build this image with an external builder (docker build, buildah, kaniko) and pass \
                    its reference to register-taskdef, or do this work before the build and COPY the result.";
    assert_eq!(message, expected);
}

#[test]
fn unsupported_instructions_and_options_are_refused_with_line_numbers() {
    let cases = [
        ("FROM scratch\nHEALTHCHECK CMD true", 2, "HEALTHCHECK is not supported"),
        ("FROM scratch\nSHELL [\"/bin/bash\"]", 2, "SHELL is not supported"),
        ("FROM scratch\nONBUILD COPY a b", 2, "ONBUILD is not supported"),
        ("FROM golang AS build\n", 1, "multi-stage"),
        ("FROM scratch\nFROM scratch", 2, "second FROM"),
        ("FROM scratch\nCOPY --from=build /a /a", 2, "--from"),
        ("FROM scratch\nADD https://example.com/x /x", 2, "remote sources"),
        ("FROM scratch\nCOPY --chown=app:app a /a", 2, "numeric ids"),
        ("FROM scratch\nCOPY --chmod=9z a /a", 2, "octal mode"),
        ("FROM scratch\nCOPY --exclude=*.md . /a/", 2, "--exclude is not supported"),
        ("FROM scratch\nCOPY a b /dir", 2, "ending in `/`"),
        ("FROM scratch\nCOPY <<EOF /a\n", 2, "heredocs"),
        ("FROM scratch\nCOPY onlyone", 2, "at least one source"),
        ("FROM scratch\nEXPOSE http", 2, "EXPOSE http"),
        ("FROM scratch\nFOO bar", 2, "unknown or unsupported instruction FOO"),
        ("ENV A=1\nFROM scratch", 1, "before FROM"),
        ("# only a comment\n", 1, "no FROM"),
        ("FROM scratch\nENV A=\"open", 2, "unterminated double quote"),
    ];
    for (text, line, needle) in cases {
        let (got_line, message) = error(text);
        assert_eq!(got_line, line, "{text}: {message}");
        assert!(message.contains(needle), "{text}: {message}");
    }
}

#[test]
fn clean_absolute_stays_at_the_root() {
    assert_eq!(clean_absolute("/a/./b/../c/"), "/a/c");
    assert_eq!(clean_absolute("/../../x"), "/x");
}
