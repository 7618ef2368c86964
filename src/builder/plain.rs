//! Plain Nix data: what option modules get (evaluated, deeply forced, no functions).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// A plain Nix value. Paths are absolute (resolved against the file that wrote them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    String(String),
    Path(PathBuf),
    List(Vec<Value>),
    Attrs(BTreeMap<String, Value>),
}

impl Value {
    /// Every leaf (not a non-empty set) with its dotted path, in order.
    pub fn leaves(&self) -> Vec<(String, &Value)> {
        fn walk<'a>(v: &'a Value, path: &mut Vec<String>, out: &mut Vec<(String, &'a Value)>) {
            match v {
                Value::Attrs(m) if !m.is_empty() => {
                    for (k, child) in m {
                        path.push(k.clone());
                        walk(child, path, out);
                        path.pop();
                    }
                }
                leaf => out.push((show_path(path), leaf)),
            }
        }
        let mut out = Vec::new();
        walk(self, &mut Vec::new(), &mut out);
        out
    }

    /// The Nix name of the value's type, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a Boolean",
            Value::Int(_) => "an integer",
            Value::String(_) => "a string",
            Value::Path(_) => "a path",
            Value::List(_) => "a list",
            Value::Attrs(_) => "a set",
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_attrs(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Value::Attrs(a) => Some(a),
            _ => None,
        }
    }
}

/// Whether `name` can be written without quotes as a Nix attribute name.
pub(crate) fn is_plain_ident(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '\'' || c == '-')
}

/// Writes a string as a double-quoted Nix string literal.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' if chars.peek() == Some(&'{') => out.push_str("\\$"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An attribute name as written in a dotted path: plain, or quoted when needed.
pub(crate) fn show_name(name: &str) -> String {
    if is_plain_ident(name) {
        name.to_string()
    } else {
        quote(name)
    }
}

/// `a.b."c.d"`
pub(crate) fn show_path<S: AsRef<str>>(path: &[S]) -> String {
    path.iter()
        .map(|s| show_name(s.as_ref()))
        .collect::<Vec<_>>()
        .join(".")
}

/// Splits a dotted path (`users.users."foo.bar".isNormalUser`) into attribute names. Quoted
/// segments may contain dots and the escapes `\"` and `\\`. `None` when malformed.
pub(crate) fn parse_path(path: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    if path.is_empty() {
        return Some(out);
    }
    let mut chars = path.chars().peekable();
    loop {
        let mut seg = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => seg.push(chars.next()?),
                    c => seg.push(c),
                }
            }
            match chars.next() {
                None => {
                    out.push(seg);
                    return Some(out);
                }
                Some('.') => out.push(seg),
                Some(_) => return None,
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        if seg.is_empty() {
                            return None;
                        }
                        out.push(seg);
                        return Some(out);
                    }
                    Some('.') => {
                        if seg.is_empty() {
                            return None;
                        }
                        out.push(seg);
                        break;
                    }
                    Some(c) => seg.push(c),
                }
            }
        }
    }
}

impl fmt::Display for Value {
    /// Nix syntax.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => write!(f, "null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::String(s) => write!(f, "{}", quote(s)),
            Value::Path(p) => write!(f, "{}", p.display()),
            Value::List(items) => {
                write!(f, "[")?;
                for item in items {
                    write!(f, " {item}")?;
                }
                write!(f, " ]")
            }
            Value::Attrs(attrs) => {
                write!(f, "{{")?;
                for (k, v) in attrs {
                    write!(f, " {} = {v};", show_name(k))?;
                }
                write!(f, " }}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip() {
        assert_eq!(
            parse_path("a.b.c"),
            Some(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(
            parse_path("users.users.\"foo.bar\".x"),
            Some(vec![
                "users".into(),
                "users".into(),
                "foo.bar".into(),
                "x".into()
            ])
        );
        assert_eq!(parse_path("\"a\\\"b\""), Some(vec!["a\"b".into()]));
        assert_eq!(parse_path("a..b"), None);
        assert_eq!(parse_path("a."), None);
        assert_eq!(parse_path("\"a"), None);
        assert_eq!(parse_path("\"a\"b"), None);
        assert_eq!(parse_path(""), Some(vec![]));
        let p = vec![
            "environment".to_string(),
            "etc".into(),
            "foo/bar.conf".into(),
        ];
        assert_eq!(show_path(&p), "environment.etc.\"foo/bar.conf\"");
        assert_eq!(parse_path(&show_path(&p)), Some(p));
    }

    #[test]
    fn display_is_nix() {
        let mut m = BTreeMap::new();
        m.insert(
            "a b".to_string(),
            Value::List(vec![Value::Int(-1), Value::Null]),
        );
        m.insert("c".to_string(), Value::String("x\"${y}\n".into()));
        assert_eq!(
            Value::Attrs(m).to_string(),
            "{ \"a b\" = [ -1 null ]; c = \"x\\\"\\${y}\\n\"; }"
        );
    }
}
