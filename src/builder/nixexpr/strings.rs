//! Nix string literals without interpolation: escapes and the indentation stripping of
//! `''…''` strings, as Nix's lexer and parser do them.

/// The content between the quotes of a `"…"` string: `\n \r \t` and `\c` → `c`.
pub(crate) fn decode_double(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some(c) => out.push(c),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The content between the `''` of an indented string: `'''` → `''`, `''$` → `$`,
/// `''\n` `''\r` `''\t` and `''\c` → `c`; the first line is dropped when it holds only spaces,
/// the smallest indentation (in spaces) of the non-blank lines is removed from every line, and
/// a last line of only spaces is dropped.
pub(crate) fn decode_indented(raw: &str) -> String {
    // Nix's lexer swallows `(\ *\n)?` right after the opening `''`.
    let spaces = raw.len() - raw.trim_start_matches(' ').len();
    let raw = match raw[spaces..].strip_prefix('\n') {
        Some(rest) => rest,
        None => raw,
    };

    // Tokens as Nix's lexer makes them: literal text (subject to indentation) and escapes.
    let mut parts: Vec<(String, bool)> = Vec::new();
    let mut lit = String::new();
    let mut rest = raw;
    while let Some(c) = rest.chars().next() {
        let escape: Option<(String, usize)> = if rest.starts_with("'''") {
            Some(("''".to_string(), 3))
        } else if rest.starts_with("''$") {
            Some(("$".to_string(), 3))
        } else if let Some(after) = rest.strip_prefix("''\\") {
            match after.chars().next() {
                Some(e) => {
                    let s = match e {
                        'n' => "\n".to_string(),
                        'r' => "\r".to_string(),
                        't' => "\t".to_string(),
                        e => e.to_string(),
                    };
                    Some((s, 3 + e.len_utf8()))
                }
                None => Some((String::new(), 3)),
            }
        } else {
            None
        };
        match escape {
            Some((s, n)) => {
                if !lit.is_empty() {
                    parts.push((std::mem::take(&mut lit), true));
                }
                parts.push((s, false));
                rest = &rest[n..];
            }
            None => {
                lit.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    if !lit.is_empty() {
        parts.push((lit, true));
    }

    // Nix's stripIndentation.
    let mut min_indent = usize::MAX;
    let mut cur_indent = 0;
    let mut at_start = true;
    for (text, has_indentation) in &parts {
        if !has_indentation {
            if at_start {
                at_start = false;
                min_indent = min_indent.min(cur_indent);
            }
            continue;
        }
        for c in text.chars() {
            if at_start {
                if c == ' ' {
                    cur_indent += 1;
                } else if c == '\n' {
                    cur_indent = 0;
                } else {
                    at_start = false;
                    min_indent = min_indent.min(cur_indent);
                }
            } else if c == '\n' {
                at_start = true;
                cur_indent = 0;
            }
        }
    }

    let mut out = String::with_capacity(raw.len());
    at_start = true;
    let mut dropped = 0;
    let n = parts.len();
    for (i, (text, _)) in parts.iter().enumerate() {
        let mut s = String::with_capacity(text.len());
        for c in text.chars() {
            if at_start {
                if c == ' ' {
                    if dropped >= min_indent {
                        s.push(c);
                    }
                    dropped += 1;
                } else if c == '\n' {
                    dropped = 0;
                    s.push(c);
                } else {
                    at_start = false;
                    dropped = 0;
                    s.push(c);
                }
            } else {
                s.push(c);
                if c == '\n' {
                    at_start = true;
                }
            }
        }
        if i + 1 == n
            && let Some(p) = s.rfind('\n')
            && s[p + 1..].chars().all(|c| c == ' ')
        {
            s.truncate(p + 1);
        }
        out.push_str(&s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn double_escapes() {
        assert_eq!(decode_double(r#"a\nb\tc\"d\\e\$f\qg"#), "a\nb\tc\"d\\e$fqg");
        assert_eq!(decode_double("$${x}"), "$${x}");
    }

    #[test]
    fn indented_stripping() {
        assert_eq!(
            decode_indented("\n    foo\n      bar\n    baz\n  "),
            "foo\n  bar\nbaz\n"
        );
        assert_eq!(decode_indented("  \n  a\n\n  b\n"), "a\n\nb\n");
        assert_eq!(decode_indented("one line"), "one line");
        assert_eq!(decode_indented(" x"), "x");
        assert_eq!(decode_indented(""), "");
        // blank lines with fewer spaces do not count
        assert_eq!(decode_indented("\n    a\n  \n    b"), "a\n\nb");
        // tabs are not indentation
        assert_eq!(decode_indented("\n\ta\n  b\n"), "\ta\n  b\n");
    }

    #[test]
    fn indented_escapes() {
        assert_eq!(
            decode_indented("''$ '''x''' ''\\n''\\t''\\q"),
            "$ ''x'' \n\tq"
        );
        assert_eq!(decode_indented("\n  ''${x}\n  y\n"), "${x}\ny\n");
        // an escape at the start of a line ends its indentation
        assert_eq!(decode_indented("\n    a\n  ''$b\n"), "  a\n$b\n");
        assert_eq!(decode_indented("$${x}"), "$${x}");
    }
}
