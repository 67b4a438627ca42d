//! Glob patterns of grant lines: `*` matches any run of characters, `\` makes the next character
//! literal. Values rendered into a grant from templates are escaped ([`escape`]), so a `*` that
//! came from a parameter or a step output matches only a `*`, never everything.

use std::fmt;

/// One parsed pattern: literal characters and wildcards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// The text as written (escapes kept), for display and for lines suggested in denials.
    source: String,
    /// `None` is a wildcard; `Some(c)` a character that must match itself.
    atoms: Vec<Option<char>>,
}

impl Pattern {
    /// Parses `source`; a trailing lone `\` is refused.
    pub fn parse(source: &str) -> Result<Pattern, &'static str> {
        let mut atoms = Vec::with_capacity(source.len());
        let mut chars = source.chars();
        while let Some(c) = chars.next() {
            match c {
                '*' => atoms.push(None),
                '\\' => atoms.push(Some(chars.next().ok_or("it ends in a lone `\\`; write `\\\\` for a backslash")?)),
                c => atoms.push(Some(c)),
            }
        }
        Ok(Pattern { source: source.to_string(), atoms })
    }

    /// A pattern matching exactly `text`.
    pub fn literal(text: &str) -> Pattern {
        Pattern { source: escape(text), atoms: text.chars().map(Some).collect() }
    }

    pub fn is_wildcard_free(&self) -> bool {
        self.atoms.iter().all(Option::is_some)
    }

    /// The text this pattern matches when it has no wildcard (escapes removed).
    pub fn as_literal(&self) -> Option<String> {
        self.atoms.iter().copied().collect()
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether `text` matches. A `*` in `text` is an ordinary character here, matched by a
    /// wildcard or an escaped `\*`: so a pattern that matches a policy document's own pattern
    /// literally also covers everything that pattern matches (wharf's grants are `*`-only globs).
    pub fn matches(&self, text: &str) -> bool {
        let (p, t): (&[Option<char>], Vec<char>) = (&self.atoms, text.chars().collect());
        let (mut pi, mut ti) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while ti < t.len() {
            match p.get(pi) {
                Some(None) => {
                    star = Some((pi, ti));
                    pi += 1;
                }
                Some(Some(c)) if *c == t[ti] => {
                    pi += 1;
                    ti += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        pi = sp + 1;
                        ti = st + 1;
                        star = Some((sp, st + 1));
                    }
                    None => return false,
                },
            }
        }
        p[pi..].iter().all(Option::is_none)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// `text` written so that a pattern parsed from it matches exactly `text`.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        Pattern::parse(pattern).unwrap().matches(text)
    }

    #[test]
    fn stars_match_runs_and_everything_else_itself() {
        assert!(m("projectjz/ecs-example/*", "projectjz/ecs-example/sample.txt"));
        assert!(!m("projectjz/ecs-example/*", "projectjz/other/sample.txt"));
        assert!(m("a*c*e", "abcde"));
        assert!(!m("a*c*e", "abcdf"));
        assert!(m("*", ""));
        assert!(!m("abc", "abcd"));
    }

    #[test]
    fn escaped_stars_are_literal() {
        assert!(m(r"bucket/\*", "bucket/*"));
        assert!(!m(r"bucket/\*", "bucket/anything"));
        assert!(m(r"a\\b", r"a\b"));
        assert!(Pattern::parse("a\\").is_err());
        let literal = Pattern::literal("x*y");
        assert_eq!(literal.source(), r"x\*y");
        assert!(literal.matches("x*y") && !literal.matches("xzy"));
        assert_eq!(literal.as_literal().as_deref(), Some("x*y"));
        assert_eq!(Pattern::parse("x*").unwrap().as_literal(), None);
    }

    /// A pattern that matches another pattern's text covers all that pattern matches.
    #[test]
    fn matching_a_pattern_literally_means_covering_it() {
        assert!(m("s3:*", "s3:Put*"));
        assert!(m("s3:Put*", "s3:Put*"));
        assert!(!m("s3:PutObject", "s3:Put*"));
        assert!(!m("arn:aws:s3:::b/k/*", "arn:aws:s3:::b/*"));
        assert!(m("arn:aws:s3:::b/*", "arn:aws:s3:::b/k/*"));
    }
}
