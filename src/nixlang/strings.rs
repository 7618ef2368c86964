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

/// A piece of a string literal: text as written (escapes not yet decoded) or an interpolation.
pub(crate) enum Piece<T> {
    Text(String),
    Interp(T),
}

/// The content between the `''` of an indented string without interpolations (see
/// [`strip_indentation`]).
pub(crate) fn decode_indented(raw: &str) -> String {
    let pieces: Vec<Piece<()>> = strip_indentation(vec![Piece::Text(raw.to_string())]);
    pieces
        .into_iter()
        .map(|p| match p {
            Piece::Text(t) => t,
            Piece::Interp(()) => String::new(),
        })
        .collect()
}

/// Decodes an indented string (`''…''`) as Nix's lexer and parser do: `'''` → `''`, `''$` →
/// `$`, `''\n` `''\r` `''\t` and `''\c` → `c`; the first line is dropped when it holds only
/// spaces, the smallest indentation (in spaces) of the lines is removed from every line (escapes
/// and interpolations end a line's indentation), and a last line of only spaces is dropped.
pub(crate) fn strip_indentation<T>(raw: Vec<Piece<T>>) -> Vec<Piece<T>> {
    // Tokens as Nix's lexer makes them: literal text (subject to indentation), escapes (not
    // subject to it) and interpolations.
    enum Tok<T> {
        Lit(String),
        Escape(String),
        Interp(T),
    }
    let mut toks: Vec<Tok<T>> = Vec::new();
    for (i, piece) in raw.into_iter().enumerate() {
        let text = match piece {
            Piece::Interp(e) => {
                toks.push(Tok::Interp(e));
                continue;
            }
            Piece::Text(t) => t,
        };
        let mut rest: &str = &text;
        if i == 0 {
            // Nix's lexer swallows `(\ *\n)?` right after the opening `''`.
            let spaces = rest.len() - rest.trim_start_matches(' ').len();
            if let Some(after) = rest[spaces..].strip_prefix('\n') {
                rest = after;
            }
        }
        let mut lit = String::new();
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
                        toks.push(Tok::Lit(std::mem::take(&mut lit)));
                    }
                    toks.push(Tok::Escape(s));
                    rest = &rest[n..];
                }
                None => {
                    lit.push(c);
                    rest = &rest[c.len_utf8()..];
                }
            }
        }
        if !lit.is_empty() {
            toks.push(Tok::Lit(lit));
        }
    }

    // Nix's stripIndentation.
    let mut min_indent = usize::MAX;
    let mut cur_indent = 0;
    let mut at_start = true;
    for tok in &toks {
        let Tok::Lit(text) = tok else {
            if at_start {
                at_start = false;
                min_indent = min_indent.min(cur_indent);
            }
            continue;
        };
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

    let mut out: Vec<Piece<T>> = Vec::new();
    let push_text = |out: &mut Vec<Piece<T>>, s: String| match out.last_mut() {
        Some(Piece::Text(t)) => t.push_str(&s),
        _ => out.push(Piece::Text(s)),
    };
    at_start = true;
    let mut dropped = 0;
    let n = toks.len();
    for (i, tok) in toks.into_iter().enumerate() {
        let text = match tok {
            Tok::Interp(e) => {
                at_start = false;
                dropped = 0;
                out.push(Piece::Interp(e));
                continue;
            }
            Tok::Escape(s) => {
                at_start = false;
                dropped = 0;
                s
            }
            Tok::Lit(text) => {
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
                s
            }
        };
        let mut s = text;
        if i + 1 == n
            && let Some(p) = s.rfind('\n')
            && s[p + 1..].chars().all(|c| c == ' ')
        {
            s.truncate(p + 1);
        }
        push_text(&mut out, s);
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
