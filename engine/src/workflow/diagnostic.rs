//! Diagnostics: rustc-style errors that point at a line and column of the workflow file.
//!
//! Validation collects every problem it can find into a [`Reporter`] rather than stopping at the
//! first, so a user fixes a file in one round trip instead of one error per run.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A byte range in the workflow source.
pub type Span = Range<usize>;

/// One problem in a workflow file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// How many characters the caret run under the snippet covers (at least 1).
    pub width: usize,
    pub message: String,
    pub hint: Option<String>,
    /// The full source line the error points into (without its newline).
    pub snippet: String,
}

impl Diagnostic {
    /// Builds a diagnostic for `span` of `source`, clamping the caret run to the first line of
    /// the span (multi-line values such as arrays would otherwise underline nothing sensible).
    pub fn at(path: &Path, source: &str, span: Span, message: impl Into<String>, hint: Option<String>) -> Diagnostic {
        let start = floor_char_boundary(source, span.start.min(source.len()));
        let end = floor_char_boundary(source, span.end.clamp(start, source.len()));
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[start..].find('\n').map_or(source.len(), |i| start + i);
        let snippet = source[line_start..line_end].trim_end_matches('\r').to_string();
        let line = source[..start].matches('\n').count() + 1;
        let col = source[line_start..start].chars().count() + 1;
        let width = source[start..end.min(line_end)].trim_end_matches('\r').chars().count().max(1);
        Diagnostic { path: path.to_path_buf(), line, col, width, message: message.into(), hint, snippet }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let gutter = self.line.to_string().len();
        let pad = " ".repeat(gutter);
        writeln!(f, "error: {}", self.message)?;
        writeln!(f, "{pad}--> {}:{}:{}", self.path.display(), self.line, self.col)?;
        writeln!(f, "{pad} |")?;
        writeln!(f, "{} | {}", self.line, self.snippet)?;
        // Copy tabs from the snippet so the carets line up in a terminal.
        let lead: String =
            self.snippet.chars().take(self.col - 1).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
        write!(f, "{pad} | {lead}{}", "^".repeat(self.width))?;
        if let Some(hint) = &self.hint {
            write!(f, "\n{pad} = hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every diagnostic of one load, in source order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n\n")?;
            }
            write!(f, "{d}")?;
        }
        if self.0.len() > 1 {
            write!(f, "\n\nerror: {} problems in the workflow file", self.0.len())?;
        }
        Ok(())
    }
}

/// Collects diagnostics for one source file.
pub(crate) struct Reporter<'s> {
    pub path: &'s Path,
    pub source: &'s str,
    diags: Vec<(usize, Diagnostic)>,
}

impl<'s> Reporter<'s> {
    pub fn new(path: &'s Path, source: &'s str) -> Self {
        Reporter { path, source, diags: Vec::new() }
    }

    pub fn error(&mut self, span: Span, message: impl Into<String>, hint: Option<String>) {
        let start = span.start;
        self.diags.push((start, Diagnostic::at(self.path, self.source, span, message, hint)));
    }

    pub fn has_errors(&self) -> bool {
        !self.diags.is_empty()
    }

    /// The diagnostics sorted by position (stable, so errors at one spot keep their order).
    pub fn finish(mut self) -> Diagnostics {
        self.diags.sort_by_key(|(start, _)| *start);
        self.diags.dedup_by(|a, b| a.1 == b.1);
        Diagnostics(self.diags.into_iter().map(|(_, d)| d).collect())
    }
}

/// The candidate closest to `word`, if any is close enough to be a plausible typo.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(word, c);
        // A single edit also counts (`reigon` vs `region`), except between very short words where
        // one edit changes everything (`b` is not a typo of `a`).
        let one_edit = word.len().min(c.len()) >= 3 && strsim::damerau_levenshtein(word, c) <= 1;
        let close = score >= 0.8 || one_edit;
        if close && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c)
}

/// `did you mean `x`?`, or a list of what is allowed when nothing is close.
pub fn suggest(word: &str, candidates: &[&str], what: &str) -> Option<String> {
    if let Some(c) = did_you_mean(word, candidates.iter().copied()) {
        Some(format!("did you mean `{c}`?"))
    } else if candidates.is_empty() {
        None
    } else {
        Some(format!("{what}: {}", candidates.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rustc_style_with_caret_under_the_token() {
        let src = "name = \"x\"\n\n[[steps]]\nneed = [\"a\"]\n";
        let start = src.find("need").unwrap();
        let d = Diagnostic::at(
            Path::new("w.toml"),
            src,
            start..start + 4,
            "unknown key `need`",
            Some("did you mean `needs`?".into()),
        );
        assert_eq!((d.line, d.col, d.width), (4, 1, 4));
        assert_eq!(
            d.to_string(),
            "error: unknown key `need`\n --> w.toml:4:1\n  |\n4 | need = [\"a\"]\n  | ^^^^\n  = hint: did you mean `needs`?"
        );
    }

    #[test]
    fn gutter_widens_with_the_line_number_and_multiline_spans_clamp() {
        let src = format!("{}x = [1,\n 2]\n", "\n".repeat(11));
        let start = src.find('[').unwrap();
        let d = Diagnostic::at(Path::new("w.toml"), &src, start..src.len() - 1, "bad", None);
        assert_eq!(d.to_string(), "error: bad\n  --> w.toml:12:5\n   |\n12 | x = [1,\n   |     ^^^");
    }

    #[test]
    fn empty_span_at_end_of_file_still_points_somewhere() {
        let d = Diagnostic::at(Path::new("w.toml"), "a = ", 4..4, "expected a value", None);
        assert_eq!((d.line, d.col, d.width), (1, 5, 1));
    }

    #[test]
    fn suggestions() {
        assert_eq!(did_you_mean("need", ["needs", "id", "plugin"]), Some("needs"));
        assert_eq!(did_you_mean("zzz", ["needs", "id"]), None);
        assert_eq!(suggest("qq", &["a-b", "c-d"], "builtins are").unwrap(), "builtins are: a-b, c-d");
    }
}
