//! Nix's tokens, as Nix's own lexer (`lexer.l`) makes them outside strings: the longest match
//! wins, and of two equally long the keyword or operator. Strings and the rest of a path
//! after its first token are scanned by the parser, which knows where an interpolation ends
//! (ARCHITECTURE.md, "The Nix language").

/// What a token is. Its text is the source between [`Token::start`] and [`Token::end`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tok {
    Ident,
    Int,
    Float,
    Uri,
    /// The first token of a path (`./a/b`, `a/b`, `/a`, or `./` when `${` follows).
    Path,
    /// The first token of a path below the home directory (`~/a`, or `~/` when `${` follows).
    HomePath,
    /// `<nixpkgs>`.
    SearchPath,
    If,
    Then,
    Else,
    Assert,
    With,
    Let,
    In,
    Rec,
    Inherit,
    Or,
    CurPos,
    Ellipsis,
    Eq,
    NotEq,
    LessEq,
    MoreEq,
    And,
    OrOr,
    Implication,
    Update,
    Concat,
    PipeRight,
    PipeLeft,
    DollarCurly,
    LBrace,
    RBrace,
    LBrack,
    RBrack,
    LParen,
    RParen,
    Semicolon,
    Colon,
    Comma,
    Dot,
    At,
    Question,
    Assign,
    Plus,
    Minus,
    Star,
    Slash,
    Bang,
    Less,
    More,
    /// `"`: a string starts.
    Quote,
    /// `''`: an indented string starts.
    IndentOpen,
    Eof,
    /// A character no token starts with.
    Unknown,
    /// `/*` without its `*/`.
    UnterminatedComment,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub tok: Tok,
    pub start: usize,
    pub end: usize,
}

pub fn is_path_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+')
}

fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'\'' | b'-')
}

fn is_uri_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'%' | b'/'
                | b'?'
                | b':'
                | b'@'
                | b'&'
                | b'='
                | b'+'
                | b'$'
                | b','
                | b'-'
                | b'_'
                | b'.'
                | b'!'
                | b'~'
                | b'*'
                | b'\''
        )
}

fn keyword(text: &[u8]) -> Option<Tok> {
    Some(match text {
        b"if" => Tok::If,
        b"then" => Tok::Then,
        b"else" => Tok::Else,
        b"assert" => Tok::Assert,
        b"with" => Tok::With,
        b"let" => Tok::Let,
        b"in" => Tok::In,
        b"rec" => Tok::Rec,
        b"inherit" => Tok::Inherit,
        b"or" => Tok::Or,
        b"__curPos" => Tok::CurPos,
        _ => return None,
    })
}

/// The offset after whitespace and comments from `i`, or the start of an unterminated `/*`
/// as `Err`.
pub fn skip_trivia(b: &[u8], mut i: usize) -> Result<usize, usize> {
    loop {
        match b.get(i) {
            Some(b' ' | b'\t' | b'\r' | b'\n') => i += 1,
            Some(b'#') => {
                while i < b.len() && b[i] != b'\n' && b[i] != b'\r' {
                    i += 1;
                }
            }
            Some(b'/') if b.get(i + 1) == Some(&b'*') => {
                let start = i;
                i += 2;
                loop {
                    match b.get(i) {
                        None => return Err(start),
                        Some(b'*') if b.get(i + 1) == Some(&b'/') => {
                            i += 2;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
            }
            _ => return Ok(i),
        }
    }
}

/// The token at `i` or after the trivia there.
pub fn token_at(b: &[u8], i: usize) -> Token {
    let start = match skip_trivia(b, i) {
        Ok(s) => s,
        Err(s) => {
            return Token {
                tok: Tok::UnterminatedComment,
                start: s,
                end: b.len(),
            };
        }
    };
    let Some(&c) = b.get(start) else {
        return Token {
            tok: Tok::Eof,
            start,
            end: start,
        };
    };
    let at = |j: usize| b.get(j).copied();
    let token = |tok, len| Token {
        tok,
        start,
        end: start + len,
    };

    // The candidates that can be long: the longest wins; of equal ones the first here (the
    // order of Nix's rules). `cut` is what the token leaves to the parser: the `${` after a
    // path's first part.
    let mut best: Option<(Tok, usize, usize)> = None;
    let mut consider = |tok: Tok, len: usize, cut: usize| {
        if len > 0 && best.is_none_or(|(_, l, _)| len > l) {
            best = Some((tok, len, cut));
        }
    };
    if c.is_ascii_alphabetic() || c == b'_' {
        let mut j = start + 1;
        while at(j).is_some_and(is_ident_char) {
            j += 1;
        }
        let tok = keyword(&b[start..j]).unwrap_or(Tok::Ident);
        // Only a path or URI can be longer, and only through one of these.
        if !matches!(at(j), Some(b'.' | b'+' | b'/' | b':')) {
            return token(tok, j - start);
        }
        consider(tok, j - start, 0);
    }
    if c.is_ascii_digit() {
        let mut j = start;
        while at(j).is_some_and(|d| d.is_ascii_digit()) {
            j += 1;
        }
        if !at(j).is_some_and(|d| is_path_char(d) || d == b'/') {
            return token(Tok::Int, j - start);
        }
        consider(Tok::Int, j - start, 0);
    }
    // Only a path character, `/`, `~` or `<` starts a float, path or search path (and a URI
    // starts with a letter): most punctuation goes straight to the operators.
    if !(is_path_char(c) || matches!(c, b'/' | b'~' | b'<'))
        && let Some((tok, len)) = operator(b, start)
    {
        return token(tok, len);
    }
    consider(Tok::Float, float_len(b, start), 0);
    let (path, interp_start) = path_len(b, start);
    if let Some(len) = interp_start {
        // `./${…}`: the token is `./`, the parser goes on with the interpolation.
        consider(Tok::Path, len + 2, 2);
    }
    consider(Tok::Path, path, 0);
    if c == b'~' && at(start + 1) == Some(b'/') {
        let (len, interp) = path_len(b, start + 1);
        if len > 0 {
            consider(Tok::HomePath, 1 + len, 0);
        }
        if let Some(len) = interp {
            consider(Tok::HomePath, 1 + len + 2, 2);
        }
    }
    if c == b'<' {
        consider(Tok::SearchPath, search_path_len(b, start), 0);
    }
    if c.is_ascii_alphabetic() {
        consider(Tok::Uri, uri_len(b, start), 0);
    }
    let op = operator(b, start);
    if let Some((tok, len, cut)) = best
        && len > op.map_or(0, |(_, l)| l)
    {
        return token(tok, len - cut);
    }
    match op {
        Some((tok, len)) => token(tok, len),
        None => {
            let len = std::str::from_utf8(&b[start..])
                .ok()
                .and_then(|s| s.chars().next())
                .map_or(1, char::len_utf8);
            token(Tok::Unknown, len)
        }
    }
}

fn operator(b: &[u8], i: usize) -> Option<(Tok, usize)> {
    let two = b.get(i..i + 2);
    if b.get(i..i + 3) == Some(b"...") {
        return Some((Tok::Ellipsis, 3));
    }
    let t = match two {
        Some(b"==") => Some(Tok::Eq),
        Some(b"!=") => Some(Tok::NotEq),
        Some(b"<=") => Some(Tok::LessEq),
        Some(b">=") => Some(Tok::MoreEq),
        Some(b"&&") => Some(Tok::And),
        Some(b"||") => Some(Tok::OrOr),
        Some(b"->") => Some(Tok::Implication),
        Some(b"//") => Some(Tok::Update),
        Some(b"++") => Some(Tok::Concat),
        Some(b"|>") => Some(Tok::PipeRight),
        Some(b"<|") => Some(Tok::PipeLeft),
        Some(b"${") => Some(Tok::DollarCurly),
        Some(b"''") => Some(Tok::IndentOpen),
        _ => None,
    };
    if let Some(t) = t {
        return Some((t, 2));
    }
    let t = match b.get(i)? {
        b'{' => Tok::LBrace,
        b'}' => Tok::RBrace,
        b'[' => Tok::LBrack,
        b']' => Tok::RBrack,
        b'(' => Tok::LParen,
        b')' => Tok::RParen,
        b';' => Tok::Semicolon,
        b':' => Tok::Colon,
        b',' => Tok::Comma,
        b'.' => Tok::Dot,
        b'@' => Tok::At,
        b'?' => Tok::Question,
        b'=' => Tok::Assign,
        b'+' => Tok::Plus,
        b'-' => Tok::Minus,
        b'*' => Tok::Star,
        b'/' => Tok::Slash,
        b'!' => Tok::Bang,
        b'<' => Tok::Less,
        b'>' => Tok::More,
        b'"' => Tok::Quote,
        _ => return None,
    };
    Some((t, 1))
}

/// `(([1-9][0-9]*\.[0-9]*)|(0?\.[0-9]+))([Ee][+-]?[0-9]+)?`, or 0.
fn float_len(b: &[u8], i: usize) -> usize {
    let digit = |j: usize| b.get(j).is_some_and(|d| d.is_ascii_digit());
    let digits_from = |mut j: usize| {
        while digit(j) {
            j += 1;
        }
        j
    };
    let mut j = match b.get(i) {
        Some(b'1'..=b'9') => {
            let j = digits_from(i + 1);
            if b.get(j) != Some(&b'.') {
                return 0;
            }
            digits_from(j + 1)
        }
        Some(b'0') if b.get(i + 1) == Some(&b'.') && digit(i + 2) => digits_from(i + 2),
        Some(b'.') if digit(i + 1) => digits_from(i + 1),
        _ => return 0,
    };
    if matches!(b.get(j), Some(b'e' | b'E')) {
        let k = j + 1 + usize::from(matches!(b.get(j + 1), Some(b'+' | b'-')));
        if digit(k) {
            j = digits_from(k);
        }
    }
    j - i
}

/// The length of `{PATH_CHAR}*(\/{PATH_CHAR}+)+\/?` at `i` (0 if none), and that of
/// `{PATH_CHAR}*\/` when `${` follows it.
fn path_len(b: &[u8], i: usize) -> (usize, Option<usize>) {
    let mut j = i;
    while b.get(j).copied().is_some_and(is_path_char) {
        j += 1;
    }
    let interp =
        (b.get(j) == Some(&b'/') && b.get(j + 1..j + 3) == Some(b"${")).then_some(j + 1 - i);
    let mut segments = 0;
    while b.get(j) == Some(&b'/') && b.get(j + 1).copied().is_some_and(is_path_char) {
        j += 1;
        while b.get(j).copied().is_some_and(is_path_char) {
            j += 1;
        }
        segments += 1;
    }
    if segments == 0 {
        return (0, interp);
    }
    if b.get(j) == Some(&b'/') {
        j += 1;
    }
    (j - i, interp)
}

/// `\<{PATH_CHAR}+(\/{PATH_CHAR}+)*\>`
fn search_path_len(b: &[u8], i: usize) -> usize {
    let mut j = i + 1;
    loop {
        let seg = j;
        while b.get(j).copied().is_some_and(is_path_char) {
            j += 1;
        }
        if j == seg {
            return 0;
        }
        match b.get(j) {
            Some(b'/') => j += 1,
            Some(b'>') => return j + 1 - i,
            _ => return 0,
        }
    }
}

/// `[a-zA-Z][a-zA-Z0-9\+\-\.]*\:[URI chars]+`
fn uri_len(b: &[u8], i: usize) -> usize {
    let mut j = i + 1;
    while b
        .get(j)
        .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
    {
        j += 1;
    }
    if b.get(j) != Some(&b':') {
        return 0;
    }
    let rest = j + 1;
    let mut k = rest;
    while b.get(k).copied().is_some_and(is_uri_char) {
        k += 1;
    }
    if k == rest { 0 } else { k - i }
}

/// What follows in a string from an offset: an interpolation (`${` at `text_end`), its end
/// (the closing quote at `text_end`, the offset after it), or the end of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringEvent {
    Interpolation { text_end: usize },
    End { text_end: usize, after: usize },
    Unterminated,
}

/// Scans a `"…"` (or, `indented`, a `''…''`) string's text from `i` as Nix's lexer does:
/// escapes (`\x`; `'''`, `''$`, `''\x`) and `$$` neither start an interpolation nor end it.
pub fn scan_string(b: &[u8], mut i: usize, indented: bool) -> StringEvent {
    loop {
        let Some(&c) = b.get(i) else {
            return StringEvent::Unterminated;
        };
        match c {
            b'\\' if !indented => {
                let Some(&next) = b.get(i + 1) else {
                    return StringEvent::Unterminated;
                };
                i += 1 + utf8_len(next);
            }
            b'"' if !indented => {
                return StringEvent::End {
                    text_end: i,
                    after: i + 1,
                };
            }
            b'\'' if indented && b.get(i + 1) == Some(&b'\'') => match b.get(i + 2) {
                Some(b'\'' | b'$') => i += 3,
                Some(b'\\') => {
                    let Some(&next) = b.get(i + 3) else {
                        return StringEvent::Unterminated;
                    };
                    i += 3 + utf8_len(next);
                }
                _ => {
                    return StringEvent::End {
                        text_end: i,
                        after: i + 2,
                    };
                }
            },
            b'$' => match b.get(i + 1) {
                Some(b'{') => return StringEvent::Interpolation { text_end: i },
                Some(b'$') => i += 2,
                _ => i += 1,
            },
            _ => i += 1,
        }
    }
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0.. => 4,
        0xE0.. => 3,
        0xC0.. => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<(Tok, &str)> {
        let b = text.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        loop {
            let t = token_at(b, i);
            if t.tok == Tok::Eof {
                return out;
            }
            out.push((t.tok, &text[t.start..t.end]));
            i = t.end;
        }
    }

    #[test]
    fn longest_match_as_nix_lexes() {
        use Tok::*;
        assert_eq!(toks("a/b"), [(Path, "a/b")]);
        assert_eq!(toks("a / b"), [(Ident, "a"), (Slash, "/"), (Ident, "b")]);
        assert_eq!(toks("x:x"), [(Uri, "x:x")]);
        assert_eq!(toks("x: x"), [(Ident, "x"), (Colon, ":"), (Ident, "x")]);
        assert_eq!(toks("a->b"), [(Ident, "a-"), (More, ">"), (Ident, "b")]);
        assert_eq!(toks("a//b"), [(Ident, "a"), (Update, "//"), (Ident, "b")]);
        assert_eq!(
            toks("1.5 .5 1. 0.5 01"),
            [
                (Float, "1.5"),
                (Float, ".5"),
                (Float, "1."),
                (Float, "0.5"),
                (Int, "01")
            ]
        );
        assert_eq!(toks("1e5"), [(Int, "1"), (Ident, "e5")]);
        assert_eq!(toks("1.5e-3"), [(Float, "1.5e-3")]);
        assert_eq!(
            toks("./${x}"),
            [
                (Path, "./"),
                (DollarCurly, "${"),
                (Ident, "x"),
                (RBrace, "}")
            ]
        );
        assert_eq!(
            toks("./a/b${x}"),
            [
                (Path, "./a/b"),
                (DollarCurly, "${"),
                (Ident, "x"),
                (RBrace, "}")
            ]
        );
        assert_eq!(
            toks("~/a ~/${x}"),
            [
                (HomePath, "~/a"),
                (HomePath, "~/"),
                (DollarCurly, "${"),
                (Ident, "x"),
                (RBrace, "}")
            ]
        );
        assert_eq!(
            toks("<nixpkgs/lib> a<b"),
            [
                (SearchPath, "<nixpkgs/lib>"),
                (Ident, "a"),
                (Less, "<"),
                (Ident, "b")
            ]
        );
        assert_eq!(
            toks("orx or __curPos"),
            [(Ident, "orx"), (Or, "or"), (CurPos, "__curPos")]
        );
        assert_eq!(
            toks("... a.b"),
            [(Ellipsis, "..."), (Ident, "a"), (Dot, "."), (Ident, "b")]
        );
        assert_eq!(toks("# c\n/* d */ ''"), [(IndentOpen, "''")]);
        assert_eq!(toks("/* open"), [(UnterminatedComment, "/* open")]);
        assert_eq!(toks("é"), [(Unknown, "é")]);
        assert_eq!(
            toks("https://nixos.org/x?y=1"),
            [(Uri, "https://nixos.org/x?y=1")]
        );
    }
}
