//! Docker's word lexer: quotes, backslash escapes and variable substitution (`$VAR`, `${VAR}`,
//! `${VAR:-default}`, `${VAR:+alt}`, `${VAR:?message}` and their colon-less forms), as applied to
//! the arguments of ADD, COPY, ENV, EXPOSE, FROM, LABEL, STOPSIGNAL, USER, VOLUME and WORKDIR.
//! Single quotes suppress substitution; an unset variable expands to nothing.

/// Looks a variable up (ENV first, then ARG, as Docker does).
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Splits `input` into words on unquoted whitespace, removing quotes and expanding variables.
pub fn words(input: &str, vars: Lookup) -> Result<Vec<String>, String> {
    lex(input, vars, true)
}

/// Expands variables and removes quotes in `input` as one word, keeping its whitespace.
pub fn expand(input: &str, vars: Lookup) -> Result<String, String> {
    Ok(lex(input, vars, false)?.pop().unwrap_or_default())
}

fn lex(input: &str, vars: Lookup, split: bool) -> Result<Vec<String>, String> {
    let chars: Vec<char> = input.chars().collect();
    let (mut out, mut cur, mut in_word, mut i) = (Vec::new(), String::new(), false, 0);
    while i < chars.len() {
        let c = chars[i];
        if split && c.is_whitespace() {
            if in_word {
                out.push(std::mem::take(&mut cur));
                in_word = false;
            }
            i += 1;
            continue;
        }
        in_word = true;
        match c {
            '\'' => {
                let end = chars[i + 1..].iter().position(|&c| c == '\'').ok_or("unterminated single quote")?;
                cur.extend(&chars[i + 1..i + 1 + end]);
                i += end + 2;
            }
            '"' => {
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated double quote".into()),
                        Some('"') => break,
                        Some('\\') if matches!(chars.get(i + 1), Some('"' | '\\' | '$')) => {
                            cur.push(chars[i + 1]);
                            i += 2;
                        }
                        Some('$') => i = variable(&chars, i, vars, &mut cur)?,
                        Some(&ch) => {
                            cur.push(ch);
                            i += 1;
                        }
                    }
                }
                i += 1;
            }
            '\\' => {
                cur.push(*chars.get(i + 1).unwrap_or(&'\\'));
                i += 2;
            }
            '$' => i = variable(&chars, i, vars, &mut cur)?,
            ch => {
                cur.push(ch);
                i += 1;
            }
        }
    }
    if in_word || !split {
        out.push(cur);
    }
    Ok(out)
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Expands the variable at `chars[i] == '$'` into `out`; returns the index after it.
fn variable(chars: &[char], i: usize, vars: Lookup, out: &mut String) -> Result<usize, String> {
    let name_len = |from: usize| chars[from..].iter().take_while(|&&c| is_name_char(c)).count();
    match chars.get(i + 1) {
        Some('{') => {
            let start = i + 2;
            let n = name_len(start);
            let name: String = chars[start..start + n].iter().collect();
            if name.is_empty() {
                return Err("`${}` needs a variable name".into());
            }
            // The modifier's word runs to the matching `}` (words may hold nested `${...}`).
            let (mut j, mut depth) = (start + n, 1);
            let word_start = j;
            while depth > 0 {
                match chars.get(j) {
                    None => return Err(format!("missing `}}` after `${{{name}`")),
                    Some('{') => depth += 1,
                    Some('}') => depth -= 1,
                    _ => {}
                }
                j += 1;
            }
            let modifier: String = chars[word_start..j - 1].iter().collect();
            out.push_str(&modify(&name, vars(&name), &modifier, vars)?);
            Ok(j)
        }
        Some(&c) if c.is_ascii_alphabetic() || c == '_' => {
            let n = name_len(i + 1);
            let name: String = chars[i + 1..i + 1 + n].iter().collect();
            out.push_str(&vars(&name).unwrap_or_default());
            Ok(i + 1 + n)
        }
        _ => {
            out.push('$');
            Ok(i + 1)
        }
    }
}

/// Applies `:-`, `-`, `:+`, `+`, `:?`, `?` (the colon forms also treat empty as unset).
fn modify(name: &str, value: Option<String>, modifier: &str, vars: Lookup) -> Result<String, String> {
    if modifier.is_empty() {
        return Ok(value.unwrap_or_default());
    }
    let (colon, rest) = match modifier.strip_prefix(':') {
        Some(rest) => (true, rest),
        None => (false, modifier),
    };
    let set = value.as_deref().is_some_and(|v| !(colon && v.is_empty()));
    let mut it = rest.chars();
    let op = it.next();
    let word = || expand(it.as_str(), vars);
    match op {
        Some('-') => {
            if set {
                Ok(value.unwrap_or_default())
            } else {
                word()
            }
        }
        Some('+') => {
            if set {
                word()
            } else {
                Ok(String::new())
            }
        }
        Some('?') if set => Ok(value.unwrap_or_default()),
        Some('?') => Err(format!("{name}: {}", word().ok().filter(|m| !m.is_empty()).unwrap_or("is not set".into()))),
        _ => Err(format!(
            "unsupported substitution `${{{name}{modifier}}}`; use ${{{name}:-default}} or ${{{name}:+alt}}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "A" => Some("one".into()),
            "SPACED" => Some("x y".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn w(s: &str) -> Vec<String> {
        words(s, &vars).unwrap()
    }

    #[test]
    fn quotes_escapes_and_splitting() {
        assert_eq!(w(r#"a "b c" 'd e' f\ g "" "#), ["a", "b c", "d e", "f g", ""]);
        assert_eq!(w(r#""say \"hi\" \$A""#), [r#"say "hi" $A"#]);
        assert!(words("'open", &vars).is_err());
        assert!(words("\"open", &vars).is_err());
    }

    #[test]
    fn substitution_forms() {
        assert_eq!(w("$A ${A} pre${A}post $MISSING. $1 $"), ["one", "one", "preonepost", ".", "$1", "$"]);
        assert_eq!(
            w("${MISSING:-def} ${EMPTY:-def} ${EMPTY-def} ${A:+alt} ${MISSING:+alt}x"),
            ["def", "def", "", "alt", "x"]
        );
        assert_eq!(w("${MISSING:-${A}/bin}"), ["one/bin"]);
        assert_eq!(w("'$A' \"$A\""), ["$A", "one"]);
        assert!(words("${MISSING:?must be set}", &vars).unwrap_err().contains("must be set"));
        assert!(words("${A", &vars).is_err());
        assert!(words("${A/x/y}", &vars).unwrap_err().contains("unsupported substitution"));
    }

    #[test]
    fn expand_keeps_whitespace() {
        assert_eq!(expand("  $SPACED  z", &vars).unwrap(), "  x y  z");
    }
}
