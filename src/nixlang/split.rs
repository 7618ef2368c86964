//! Finding the bindings of a top-level `let … in` (and of the plain sets bound there) with the
//! tokenizer alone, so that each binding can be parsed when it is first used.
//!
//! The build script includes this file too (`build.rs`), to split ncsh's own `lib` once at build
//! time and compile the result in as Rust ([`Split::to_rust`]): so it uses nothing
//! but `std` and [`super::lexer`] (which build.rs includes beside it).

use super::lexer::{StringEvent, Tok, Token as LexToken, scan_string, token_at};

/// A `let BINDINGS in BODY`: its bindings, and where its body is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub bindings: Vec<Binding>,
    pub body: (usize, usize),
}

/// One binding of a `let` or of a set, as byte spans of the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// `name = VALUE;`. When VALUE is a plain (not `rec`) set whose bindings are all of these
    /// simple forms, `set` holds them, so each of its values can be parsed when first used too.
    Value {
        name: String,
        span: (usize, usize),
        set: Option<Vec<Binding>>,
    },
    /// `inherit [(FROM)] names;`
    Inherit {
        from: Option<(usize, usize)>,
        names: Vec<String>,
    },
}

type Token = (Tok, usize, usize);

/// Splits `text` if it is of the form `let BINDINGS in BODY` with plain names only; `None`
/// otherwise (then it is compiled whole).
pub fn split_let(text: &str) -> Option<Split> {
    let toks = tokens(text)?;
    if toks.first()?.0 != Tok::Let {
        return None;
    }
    let (bindings, at) = bindings(text, &toks, 1)?;
    if toks.get(at)?.0 != Tok::In {
        return None;
    }
    let body = (toks.get(at + 1)?.1, text.len());
    Some(Split { bindings, body })
}

/// The tokens of `text` with each string as one `Quote` token, except for the tokens of its
/// interpolations (`${` as `DollarCurly`, closed by `}`). `None` for what the lexer does not
/// take, and for paths with interpolations (such a text is compiled whole).
fn tokens(text: &str) -> Option<Vec<Token>> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    // The strings around the current interpolation, each with the braces opened in it.
    let mut strings: Vec<(bool, usize)> = Vec::new();
    loop {
        let t: LexToken = token_at(b, i);
        i = t.end;
        match t.tok {
            Tok::Eof => return strings.is_empty().then_some(out),
            Tok::Unknown | Tok::UnterminatedComment => return None,
            Tok::Path | Tok::HomePath if b.get(i..i + 2) == Some(b"${") => return None,
            Tok::Quote | Tok::IndentOpen => {
                out.push((Tok::Quote, t.start, t.end));
                i = string_rest(b, i, t.tok == Tok::IndentOpen, &mut out, &mut strings)?;
                continue;
            }
            Tok::LBrace | Tok::DollarCurly => {
                if let Some((_, depth)) = strings.last_mut() {
                    *depth += 1;
                }
            }
            Tok::RBrace => {
                out.push((t.tok, t.start, t.end));
                if let Some(&(indented, 0)) = strings.last() {
                    // The interpolation is over: the string goes on.
                    strings.pop();
                    i = string_rest(b, i, indented, &mut out, &mut strings)?;
                } else if let Some((_, depth)) = strings.last_mut() {
                    *depth -= 1;
                }
                continue;
            }
            _ => {}
        }
        out.push((t.tok, t.start, t.end));
    }
}

/// Scans a string from `i` to its end (the offset after it) or to its next interpolation
/// (the offset after `${`, with the string pushed on `strings`).
fn string_rest(
    b: &[u8],
    i: usize,
    indented: bool,
    out: &mut Vec<Token>,
    strings: &mut Vec<(bool, usize)>,
) -> Option<usize> {
    match scan_string(b, i, indented) {
        StringEvent::Interpolation { text_end } => {
            out.push((Tok::DollarCurly, text_end, text_end + 2));
            strings.push((indented, 0));
            Some(text_end + 2)
        }
        StringEvent::End { after, .. } => Some(after),
        StringEvent::Unterminated => None,
    }
}

/// The bindings from token `i` up to the token that ends them (`in` or `}`), and its index.
/// Every name must be unique (as Nix requires): a duplicate makes it `None`.
fn bindings(text: &str, toks: &[Token], mut i: usize) -> Option<(Vec<Binding>, usize)> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    loop {
        let (k, start, end) = *toks.get(i)?;
        match k {
            Tok::In | Tok::RBrace => return Some((out, i)),
            Tok::Inherit => {
                i += 1;
                let mut from = None;
                if toks.get(i)?.0 == Tok::LParen {
                    let close = matching(toks, i)?;
                    from = Some((toks.get(i + 1)?.1, toks[close].1));
                    i = close + 1;
                }
                let mut names = Vec::new();
                while toks.get(i)?.0 == Tok::Ident {
                    let name = text[toks[i].1..toks[i].2].to_string();
                    if !seen.insert(name.clone()) {
                        return None;
                    }
                    names.push(name);
                    i += 1;
                }
                if toks.get(i)?.0 != Tok::Semicolon {
                    return None;
                }
                i += 1;
                out.push(Binding::Inherit { from, names });
            }
            Tok::Ident => {
                if toks.get(i + 1)?.0 != Tok::Assign {
                    return None;
                }
                let name = text[start..end].to_string();
                if !seen.insert(name.clone()) {
                    return None;
                }
                let first = i + 2;
                let last = value_end(toks, first)?;
                let span = (toks.get(first)?.1, toks[last].1);
                // A set literal that is the whole value: `{ … }` closing just before the `;`.
                let set = (toks[first].0 == Tok::LBrace && matching(toks, first)? + 1 == last)
                    .then(|| bindings(text, toks, first + 1))
                    .flatten()
                    .filter(|(_, close)| close + 1 == last && toks[*close].0 == Tok::RBrace)
                    .map(|(b, _)| b);
                out.push(Binding::Value { name, span, set });
                i = last + 1;
            }
            _ => return None,
        }
    }
}

/// The index of the bracket that closes the one at `open`.
fn matching(toks: &[Token], open: usize) -> Option<usize> {
    let mut stack: Vec<Tok> = Vec::new();
    for (j, (k, _, _)) in toks.iter().enumerate().skip(open) {
        match k {
            Tok::LBrace | Tok::LBrack | Tok::LParen | Tok::DollarCurly => stack.push(*k),
            Tok::RBrace | Tok::RBrack | Tok::RParen => {
                let o = stack.pop()?;
                if !pair(o, *k) {
                    return None;
                }
                if stack.is_empty() {
                    return Some(j);
                }
            }
            _ => {}
        }
    }
    None
}

fn pair(open: Tok, close: Tok) -> bool {
    matches!(
        (open, close),
        (Tok::LBrace, Tok::RBrace)
            | (Tok::LBrack, Tok::RBrack)
            | (Tok::LParen, Tok::RParen)
            | (Tok::DollarCurly, Tok::RBrace)
    )
}

/// The end of a value starting at token `j`: the `;` that closes it, skipping nested brackets,
/// interpolations, `let … in`, and the `;` of `with …;` and `assert …;`.
fn value_end(toks: &[Token], mut j: usize) -> Option<usize> {
    let mut stack: Vec<Tok> = Vec::new();
    while j < toks.len() {
        let k = toks[j].0;
        match k {
            Tok::LBrace
            | Tok::LBrack
            | Tok::LParen
            | Tok::DollarCurly
            | Tok::Let
            | Tok::With
            | Tok::Assert => stack.push(k),
            Tok::RBrace | Tok::RBrack | Tok::RParen if !pair(stack.pop()?, k) => {
                return None;
            }
            // `in` closes the innermost `let`, and nothing else.
            Tok::In => stack.pop().filter(|k| *k == Tok::Let).map(|_| ())?,
            Tok::Semicolon => match stack.last() {
                None => return Some(j),
                Some(Tok::With | Tok::Assert) => {
                    stack.pop();
                }
                Some(_) => {}
            },
            _ => {}
        }
        j += 1;
    }
    None
}

impl Split {
    /// Rust source of an expression that makes this split, naming `Split` and `Binding` as in
    /// scope: build.rs splits ncsh's `lib` once and compiles the result in, so an evaluation
    /// neither tokenizes `lib` nor decodes a description of its bindings.
    pub fn to_rust(&self) -> String {
        fn list(out: &mut String, bindings: &[Binding]) {
            out.push_str("vec![");
            for b in bindings {
                match b {
                    Binding::Value { name, span, set } => {
                        out.push_str(&format!(
                            "Binding::Value {{ name: {name:?}.into(), span: {span:?}, set: "
                        ));
                        match set {
                            None => out.push_str("None"),
                            Some(inner) => {
                                out.push_str("Some(");
                                list(out, inner);
                                out.push(')');
                            }
                        }
                        out.push_str(" },\n");
                    }
                    Binding::Inherit { from, names } => {
                        out.push_str(&format!("Binding::Inherit {{ from: {from:?}, names: vec!["));
                        for n in names {
                            out.push_str(&format!("{n:?}.into(), "));
                        }
                        out.push_str("] },\n");
                    }
                }
            }
            out.push(']');
        }
        let mut out = String::from("Split { bindings: ");
        list(&mut out, &self.bindings);
        out.push_str(&format!(", body: {:?} }}", self.body));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(name: &str, text: &str, set: Option<Vec<Binding>>, src: &str) -> Binding {
        let start = src.find(text).unwrap();
        Binding::Value {
            name: name.into(),
            span: (start, start + text.len()),
            set,
        }
    }

    #[test]
    fn a_let_is_split_into_its_bindings_and_plain_sets_into_theirs() {
        let src = "let a = x: { y = x; }; s = { inherit a; b = 1; }; inherit (s) b; in s";
        let split = split_let(src).unwrap();
        let inner = vec![
            Binding::Inherit {
                from: None,
                names: vec!["a".into()],
            },
            value("b", "1", None, src),
        ];
        assert_eq!(
            split.bindings,
            vec![
                value("a", "x: { y = x; }", None, src),
                value("s", "{ inherit a; b = 1; }", Some(inner), src),
                Binding::Inherit {
                    from: Some((src.find("s) b").unwrap(), src.find(") b").unwrap())),
                    names: vec!["b".into()],
                },
            ]
        );
        assert_eq!(&src[split.body.0..split.body.1], "s");
    }

    #[test]
    fn what_is_not_of_the_simple_form_is_not_split() {
        for src in [
            "{ a = 1; }",
            "let a.b = 1; in a",
            "let \"a\" = 1; in a",
            "let a = 1; a = 2; in a",
            "let a = 1 in a",
        ] {
            assert_eq!(split_let(src), None, "{src}");
        }
        // A set that is only the start of its value, a `rec` set, dotted or duplicate names
        // inside: the binding is kept, its set is not split.
        for value in [
            "{ a = 1; } // { }",
            "rec { a = 1; }",
            "{ a.b = 1; }",
            "{ a = 1; a = 2; }",
        ] {
            let src = format!("let v = {value}; in v");
            let split = split_let(&src).unwrap();
            assert!(
                matches!(&split.bindings[..], [Binding::Value { set: None, .. }]),
                "{value}"
            );
        }
    }
}
