//! `NAME.conf`: the per-container KEY=VALUE file shared with nixos-container and systemd.
//!
//! Reading follows systemd's `EnvironmentFile=` rules, because that is how NixOS itself consumes
//! these files: leading whitespace is skipped, lines starting with `#` or `;` are comments, values
//! may be double-quoted (backslash escapes), single-quoted (literal) or bare (backslash escapes
//! the next character, a trailing backslash continues the line, trailing whitespace is dropped).
//! Nothing is ever executed. Writing produces exactly the lines `nixos-container create` writes.

use std::path::Path;

use crate::error::{Error, Result};

/// The keys NixOS's module writes in double quotes.
const QUOTED_KEYS: [&str; 3] = ["EXTRA_NSPAWN_FLAGS", "INTERFACES", "MACVLANS"];

/// An ordered list of KEY=VALUE assignments; a later assignment of a key wins, as in systemd.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conf {
    entries: Vec<(String, String)>,
}

impl Conf {
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of the last assignment of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key`, treating an empty value as unset (as the NixOS scripts do).
    pub fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    /// The container's address as `show-ip` prints it: LOCAL_ADDRESS without its prefix, else
    /// LOCAL_ADDRESS6.
    pub fn local_ip(&self) -> Option<String> {
        self.first_address(["LOCAL_ADDRESS", "LOCAL_ADDRESS6"])
    }

    /// The host side's address: HOST_ADDRESS without its prefix, else HOST_ADDRESS6.
    pub fn host_ip(&self) -> Option<String> {
        self.first_address(["HOST_ADDRESS", "HOST_ADDRESS6"])
    }

    fn first_address(&self, keys: [&str; 2]) -> Option<String> {
        keys.iter()
            .find_map(|k| self.non_empty(k).and_then(super::address::bare))
            .map(|a| a.to_string())
    }

    /// The words of `EXTRA_NSPAWN_FLAGS`, split and checked as the NixOS start script would
    /// pass them (`path` names the conf in errors).
    pub fn extra_nspawn_flags(&self, path: &Path) -> Result<Vec<String>> {
        super::nspawn_flags::split(
            self.get("EXTRA_NSPAWN_FLAGS").unwrap_or_default(),
            &format!("{}: EXTRA_NSPAWN_FLAGS", path.display()),
        )
    }

    /// Append an assignment.
    pub fn push(&mut self, key: &str, value: impl Into<String>) {
        self.entries.push((key.to_string(), value.into()));
    }

    /// Set `key` to `value`: its first assignment takes the value, later ones go (appended when
    /// there is none).
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        let value = value.into();
        match self.entries.iter().position(|(k, _)| k == key) {
            Some(at) => {
                self.entries[at].1 = value;
                let mut seen = 0;
                self.entries.retain(|(k, _)| {
                    seen += usize::from(k == key);
                    k != key || seen == 1
                });
            }
            None => self.push(key, value),
        }
    }

    /// Remove every assignment of `key`.
    pub fn remove(&mut self, key: &str) {
        self.entries.retain(|(k, _)| k != key);
    }

    /// Render as nixos-container writes it: `KEY=VALUE\n` per entry, values verbatim; the keys
    /// NixOS's module writes in double quotes (EXTRA_NSPAWN_FLAGS, INTERFACES, MACVLANS), and
    /// any value with a space, a quote or a backslash, are double-quoted, escaped as systemd reads them.
    pub fn render(&self) -> String {
        self.entries
            .iter()
            .map(|(k, v)| {
                if QUOTED_KEYS.contains(&k.as_str())
                    || v.chars().any(|c| c.is_whitespace() || "\"'\\".contains(c))
                {
                    let mut quoted = String::with_capacity(v.len() + 2);
                    for c in v.chars() {
                        if matches!(c, '"' | '\\' | '`' | '$') {
                            quoted.push('\\');
                        }
                        quoted.push(c);
                    }
                    format!("{k}=\"{quoted}\"\n")
                } else {
                    format!("{k}={v}\n")
                }
            })
            .collect()
    }

    /// Parse with systemd's EnvironmentFile rules; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Conf> {
        // A NUL cannot reach nspawn or systemd (their arguments and environment are C strings).
        if let Some(at) = text.find('\0') {
            return Err(Error::MalformedConf {
                path: path.to_path_buf(),
                line: text[..at].matches('\n').count() + 1,
                reason: "a NUL byte, which no value may hold: remove it".to_string(),
            });
        }
        Parser {
            chars: text.chars().peekable(),
            line: 1,
            path,
        }
        .run()
    }

    pub fn read(path: &Path) -> Result<Conf> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        Conf::parse(&text, path)
    }
}

struct Parser<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
    path: &'a Path,
}

impl Parser<'_> {
    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next();
        if c == Some('\n') {
            self.line += 1;
        }
        c
    }

    fn error(&self, reason: &str) -> Error {
        Error::MalformedConf {
            path: self.path.to_path_buf(),
            line: self.line,
            reason: reason.to_string(),
        }
    }

    fn skip_line(&mut self) {
        while let Some(c) = self.bump() {
            if c == '\n' {
                break;
            }
        }
    }

    fn run(mut self) -> Result<Conf> {
        let mut conf = Conf::new();
        loop {
            // Before a key: whitespace and blank lines.
            while matches!(self.chars.peek(), Some(c) if c.is_whitespace()) {
                self.bump();
            }
            match self.chars.peek() {
                None => return Ok(conf),
                Some('#' | ';') => {
                    self.skip_line();
                    continue;
                }
                _ => {}
            }
            let key_line = self.line;
            let mut key = String::new();
            loop {
                match self.chars.peek() {
                    Some('=') => {
                        self.bump();
                        break;
                    }
                    Some('\n') | None => {
                        // systemd ignores a line without '=' (with a warning); so do we.
                        key.clear();
                        break;
                    }
                    Some(_) => key.extend(self.bump()),
                }
            }
            let key = key.trim_end().to_string();
            if key.is_empty() {
                self.skip_line();
                continue;
            }
            if !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                || key.starts_with(|c: char| c.is_ascii_digit())
            {
                self.line = key_line;
                return Err(self.error(&format!("‘{key}’ is not a valid variable name")));
            }
            let value = self.value()?;
            conf.push(&key, value);
        }
    }

    /// A value up to the end of its (possibly continued) line.
    fn value(&mut self) -> Result<String> {
        while matches!(self.chars.peek(), Some(' ' | '\t')) {
            self.bump();
        }
        let mut value = String::new();
        // Length of `value` that must survive trailing-whitespace trimming (quoted parts).
        let mut protected = 0;
        while let Some(c) = self.bump() {
            match c {
                '\n' => break,
                '\'' => {
                    loop {
                        match self.bump() {
                            Some('\'') => break,
                            Some(c) => value.push(c),
                            None => return Err(self.error("unterminated single quote")),
                        }
                    }
                    protected = value.len();
                }
                '"' => {
                    loop {
                        match self.bump() {
                            Some('"') => break,
                            Some('\\') => match self.bump() {
                                Some('\n') => {}
                                Some(c @ ('"' | '\\' | '`' | '$')) => value.push(c),
                                Some(c) => {
                                    value.push('\\');
                                    value.push(c);
                                }
                                None => return Err(self.error("unterminated double quote")),
                            },
                            Some(c) => value.push(c),
                            None => return Err(self.error("unterminated double quote")),
                        }
                    }
                    protected = value.len();
                }
                '\\' => match self.bump() {
                    Some('\n') | None => {}
                    Some(c) => {
                        value.push(c);
                        protected = value.len();
                    }
                },
                c => value.push(c),
            }
        }
        let keep = value.trim_end().len().max(protected);
        value.truncate(keep);
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Conf {
        Conf::parse(text, Path::new("t.conf")).unwrap()
    }

    #[test]
    fn imperative_conf_round_trips() {
        let text = "PRIVATE_NETWORK=1\nHOST_ADDRESS=10.233.1.1\nLOCAL_ADDRESS=10.233.1.2\n\
                    HOST_BRIDGE=\nHOST_PORT=\nAUTO_START=0\n";
        let conf = parse(text);
        assert_eq!(conf.get("HOST_ADDRESS"), Some("10.233.1.1"));
        assert_eq!(conf.get("HOST_BRIDGE"), Some(""));
        assert_eq!(conf.non_empty("HOST_BRIDGE"), None);
        assert_eq!(conf.render(), text);
    }

    #[test]
    fn declarative_style_indentation_quotes_and_comments() {
        let conf = parse(
            "\n  # generated\n  ; also a comment\n  SYSTEM_PATH=/nix/store/abc-system\n\
             \tINTERFACES=\"eth1 eth2\"\n  LOCAL_ADDRESS='10.233.5.2/24'\n  HOST_ADDRESS = 10.233.5.1  \n\
             EXTRA_NSPAWN_FLAGS=\" --bind-ro=/a:/b\"\n",
        );
        assert_eq!(conf.get("SYSTEM_PATH"), Some("/nix/store/abc-system"));
        assert_eq!(conf.get("INTERFACES"), Some("eth1 eth2"));
        assert_eq!(conf.get("LOCAL_ADDRESS"), Some("10.233.5.2/24"));
        assert_eq!(conf.get("HOST_ADDRESS"), Some("10.233.5.1"));
        assert_eq!(conf.get("EXTRA_NSPAWN_FLAGS"), Some(" --bind-ro=/a:/b"));
    }

    #[test]
    fn escapes_continuations_and_last_assignment_wins() {
        let conf = parse("A=one\\\n two\nB=\"q\\\"uote\\\\\"\nC='lit\\eral'\nA=again\nD=x\\ \n");
        assert_eq!(conf.get("A"), Some("again"));
        assert_eq!(conf.get("B"), Some("q\"uote\\"));
        assert_eq!(conf.get("C"), Some("lit\\eral"));
        assert_eq!(conf.get("D"), Some("x "));
    }

    #[test]
    fn hash_inside_a_value_is_not_a_comment() {
        assert_eq!(
            parse("FLAKE=/src#container\n").get("FLAKE"),
            Some("/src#container")
        );
    }

    #[test]
    fn lines_without_equals_are_ignored() {
        let conf = parse("garbage line\nA=1\n");
        assert_eq!(conf.get("A"), Some("1"));
    }

    #[test]
    fn malformed_input_is_an_error_with_a_line() {
        let err = Conf::parse("A=1\nB=\"open\n", Path::new("x.conf")).unwrap_err();
        assert!(err.to_string().contains("unterminated"), "{err}");
        let err = Conf::parse("A=1\n9BAD=2\n", Path::new("x.conf")).unwrap_err();
        assert!(err.to_string().contains("x.conf:2"), "{err}");
    }

    #[test]
    fn a_nul_byte_is_refused_naming_file_and_line() {
        for text in ["A=1\nB=x\0y\n", "A=1\nB\0=1\n", "A=1\n\0\n"] {
            let err = Conf::parse(text, Path::new("/etc/x.conf")).unwrap_err();
            assert_eq!(
                err.to_string(),
                "malformed /etc/x.conf:2: a NUL byte, which no value may hold: remove it",
                "{text:?}"
            );
        }
    }

    #[test]
    fn extra_nspawn_flags_are_read_and_written_as_nixos_does() {
        let p = Path::new("/etc/x.conf");
        let conf = Conf::parse("EXTRA_NSPAWN_FLAGS=\" --bind=/a --tmpfs=/b\"\n", p).unwrap();
        assert_eq!(
            conf.extra_nspawn_flags(p).unwrap(),
            ["--bind=/a", "--tmpfs=/b"]
        );
        assert_eq!(
            conf.render(),
            "EXTRA_NSPAWN_FLAGS=\" --bind=/a --tmpfs=/b\"\n"
        );
        let bad = Conf::parse("EXTRA_NSPAWN_FLAGS=\"-M other\"\n", p).unwrap();
        let err = bad.extra_nspawn_flags(p).unwrap_err().to_string();
        assert!(
            err.contains("/etc/x.conf: EXTRA_NSPAWN_FLAGS: ‘-M’"),
            "{err}"
        );
        for quiet in ["", "EXTRA_NSPAWN_FLAGS=\n", "EXTRA_NSPAWN_FLAGS=\"  \"\n"] {
            assert!(
                Conf::parse(quiet, p)
                    .unwrap()
                    .extra_nspawn_flags(p)
                    .unwrap()
                    .is_empty()
            );
        }
    }

    #[test]
    fn set_replaces_and_quoted_values_round_trip() {
        let mut conf = parse("A=1\nB=2\nA=3\n");
        conf.set("A", "x y");
        conf.set("C", "z");
        assert_eq!(conf.render(), "A=\"x y\"\nB=2\nC=z\n");
        conf.set("D", "a\"b$c");
        conf.remove("B");
        let again = parse(&conf.render());
        assert_eq!(again, conf);
    }
}
