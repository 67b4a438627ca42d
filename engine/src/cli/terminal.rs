//! Text that did not come from wharf, made safe for a terminal. A plugin chooses its log lines,
//! progress messages, error codes and messages and what it says in `describe`; printed raw, an
//! ESC sequence or a carriage return could erase or overwrite lines, recolour them or forge new
//! ones (`"\x1b[2K\rstep ok"`). Every printer passes such text through [`line`] or [`block`].
//! JSON output needs neither: serde escapes control characters itself.

use std::borrow::Cow;
use std::fmt::Write;

/// `text` for one line of output: every control character (C0, DEL, C1, newline included) and
/// bidirectional override is shown as an escape (`\x1b`, `\r`, `\n`, `\u{202e}`).
pub fn line(text: &str) -> Cow<'_, str> {
    escape(text, false)
}

/// `text` for a block meant to span lines (an error message with its hint): like [`line`], but
/// newlines are kept.
pub fn block(text: &str) -> Cow<'_, str> {
    escape(text, true)
}

fn escape(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    let escaped = |c: char| {
        (c.is_control() && !(keep_newlines && c == '\n'))
            // Reorder what follows them on screen (as in "Trojan Source").
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(escaped) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            c if !escaped(c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x100 => write!(out, "\\x{:02x}", c as u32).expect("writing to a String"),
            c => write!(out, "\\u{{{:x}}}", c as u32).expect("writing to a String"),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(line("\x1b[2K\rfake line"), "\\x1b[2K\\rfake line");
        assert_eq!(line("a\nb\tc\u{7f}\u{9b}31m\u{202e}"), "a\\nb\\tc\\x7f\\x9b31m\\u{202e}");
        assert_eq!(block("error: x\nfix: y\x1b[A"), "error: x\nfix: y\\x1b[A");
        assert!(matches!(line("plain ✔ text"), Cow::Borrowed(_)));
    }
}
