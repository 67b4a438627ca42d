//! Dockerfile syntax: parser directives, comments, line continuations, instructions with their
//! line numbers, `--flag=value` options and JSON (exec) versus shell form. What the instructions
//! mean is in `eval`.

/// One instruction as written (continuations joined), numbered by its first line.
#[derive(Debug, Clone, PartialEq)]
pub struct Instruction {
    pub line: usize,
    /// Upper-cased, e.g. `COPY`.
    pub keyword: String,
    /// Everything after the keyword, trimmed.
    pub args: String,
}

impl Instruction {
    /// `KEYWORD args`, as recorded in the image history.
    pub fn text(&self) -> String {
        format!("{} {}", self.keyword, self.args).trim_end().to_string()
    }
}

/// Parses a Dockerfile. Errors are `(line, message)`.
pub fn parse(text: &str) -> Result<Vec<Instruction>, (usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut directives = true;
    let mut n = 0;
    while n < lines.len() {
        let line = lines[n].trim();
        n += 1;
        if directives {
            match directive(line) {
                Some(("escape", value)) if value != "\\" => {
                    return Err((n, format!("`# escape={value}` is not supported; build-push uses `\\`")));
                }
                Some(_) => continue, // `syntax` names a frontend: build-push is its own; `check` is lint config.
                None => directives = false,
            }
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let first = n;
        let mut joined = String::new();
        let mut current = line;
        loop {
            match current.strip_suffix('\\') {
                Some(head) => {
                    joined.push_str(head);
                    // Comment and blank lines inside a continuation are skipped, as Docker does.
                    let next =
                        lines[n..].iter().position(|l| !(l.trim().is_empty() || l.trim_start().starts_with('#')));
                    let Some(skip) = next else { break };
                    n += skip;
                    current = lines[n].trim();
                    n += 1;
                }
                None => {
                    joined.push_str(current);
                    break;
                }
            }
        }
        let joined = joined.trim();
        let (keyword, args) = joined.split_once(char::is_whitespace).unwrap_or((joined, ""));
        out.push(Instruction { line: first, keyword: keyword.to_ascii_uppercase(), args: args.trim().to_string() });
    }
    Ok(out)
}

/// `# name=value` at the top of the file.
fn directive(line: &str) -> Option<(&str, &str)> {
    let body = line.strip_prefix('#')?;
    let (name, value) = body.split_once('=')?;
    let name = name.trim();
    let known = ["syntax", "escape", "check"];
    known.iter().find(|k| k.eq_ignore_ascii_case(name)).map(|k| (*k, value.trim()))
}

/// Splits leading `--name=value` (or bare `--name`) options off the arguments.
pub fn flags(args: &str) -> (Vec<(String, String)>, &str) {
    let mut flags = Vec::new();
    let mut rest = args.trim_start();
    while let Some(after) = rest.strip_prefix("--") {
        let end = after.find(char::is_whitespace).unwrap_or(after.len());
        let (name, value) = after[..end].split_once('=').unwrap_or((&after[..end], ""));
        flags.push((name.to_string(), value.to_string()));
        rest = after[end..].trim_start();
    }
    (flags, rest)
}

/// The exec form `["a", "b"]`, or `None` for the shell form (Docker falls back to it too).
pub fn json_form(args: &str) -> Option<Vec<String>> {
    if !args.trim_start().starts_with('[') {
        return None;
    }
    serde_json::from_str(args.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuations_comments_and_line_numbers() {
        let text =
            "# syntax=docker/dockerfile:1\n\nFROM scratch\n# a comment\ncopy a \\\n  # inside\n\n  b /x/\nENV A=1\\\n";
        let got = parse(text).unwrap();
        assert_eq!(got[0], Instruction { line: 3, keyword: "FROM".into(), args: "scratch".into() });
        assert_eq!(got[1], Instruction { line: 5, keyword: "COPY".into(), args: "a b /x/".into() });
        assert_eq!(got[2], Instruction { line: 9, keyword: "ENV".into(), args: "A=1".into() });
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn a_backtick_escape_is_refused_and_late_directives_are_comments() {
        assert_eq!(parse("# escape=`\nFROM scratch").unwrap_err().0, 1);
        assert_eq!(parse("FROM scratch\n# escape=`\n").unwrap().len(), 1);
    }

    #[test]
    fn flags_and_forms() {
        let (f, rest) = flags("--chmod=755 --link  a b");
        assert_eq!(f, [("chmod".to_string(), "755".to_string()), ("link".to_string(), String::new())]);
        assert_eq!(rest, "a b");
        assert_eq!(json_form(r#"["/app", "-v"]"#), Some(vec!["/app".to_string(), "-v".to_string()]));
        assert_eq!(json_form("[not json"), None);
        assert_eq!(json_form("/app -v"), None);
    }
}
