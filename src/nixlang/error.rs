//! Errors and source positions of the native Nix evaluator.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where something was written: a file (or a pseudo file such as `<config>`), a 1-based line and
/// a 1-based column (in characters). Line and column are 0 when there is no position (for
/// example a top-level file that cannot be read).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl Location {
    pub fn new(file: impl Into<PathBuf>, line: usize, column: usize) -> Self {
        Location {
            file: file.into(),
            line,
            column,
        }
    }

    /// A location without line and column.
    pub fn file_only(file: &Path) -> Self {
        Location {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
        }
    }
}

/// An error of parsing or evaluating a NixOS configuration, with the position it is about.
/// Displays as `file:line:column: message` (`file: message` when there is no position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub kind: ErrorKind,
}

/// What raised an error: `builtins.tryEval` catches `throw` and failed assertions only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorKind {
    #[default]
    Other,
    Throw,
    Assert,
    Abort,
}

impl EvalError {
    pub fn at(loc: &Location, message: impl Into<String>) -> Self {
        EvalError {
            file: loc.file.clone(),
            line: loc.line,
            column: loc.column,
            message: message.into(),
            kind: ErrorKind::Other,
        }
    }

    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    pub fn location(&self) -> Location {
        Location {
            file: self.file.clone(),
            line: self.line,
            column: self.column,
        }
    }
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location(), self.message)
    }
}

impl std::error::Error for EvalError {}

#[allow(dead_code)]
/// The sentence appended to every refusal of a construct that needs a real evaluator.
pub(crate) const NEEDS_NIX: &str =
    "ncsh's native builder evaluates only plain data; a Nix-enabled host builds it for real";

/// Maps byte offsets of the parsed text back to lines and columns of the original text.
#[derive(Debug, Clone)]
pub struct SourceMap {
    pub file: PathBuf,
    /// The text as the user wrote it.
    pub text: String,
    /// How many bytes were put before `text` to parse it (a snippet wrapped in `{ … }`).
    pub shift: usize,
    /// The byte offset where each line starts, found when a place is first asked for (most
    /// texts, such as the 90 KB `lib`, are never asked).
    line_starts: std::cell::OnceCell<Vec<usize>>,
}

impl SourceMap {
    pub fn new(file: &Path, text: &str, shift: usize) -> Self {
        SourceMap {
            file: file.to_path_buf(),
            text: text.to_string(),
            shift,
            line_starts: std::cell::OnceCell::new(),
        }
    }

    fn line_starts(&self) -> &[usize] {
        self.line_starts.get_or_init(|| {
            let mut starts = vec![0];
            starts.extend(memchr::memchr_iter(b'\n', self.text.as_bytes()).map(|i| i + 1));
            starts
        })
    }

    pub fn loc(&self, parsed_offset: usize) -> Location {
        let mut off = parsed_offset
            .saturating_sub(self.shift)
            .min(self.text.len());
        while !self.text.is_char_boundary(off) {
            off -= 1;
        }
        let line_starts = self.line_starts();
        let line = line_starts.partition_point(|&start| start <= off).max(1);
        let start = line_starts.get(line - 1).copied().unwrap_or(0).min(off);
        let column = self
            .text
            .get(start..off)
            .map(|s| s.chars().count())
            .unwrap_or(0)
            + 1;
        Location {
            file: self.file.clone(),
            line,
            column,
        }
    }

    pub fn err(&self, parsed_offset: usize, message: impl Into<String>) -> EvalError {
        EvalError::at(&self.loc(parsed_offset), message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns() {
        let m = SourceMap::new(Path::new("f"), "ab\nçd\n\nx", 0);
        let at = |o| {
            let l = m.loc(o);
            (l.line, l.column)
        };
        assert_eq!(at(0), (1, 1));
        assert_eq!(at(2), (1, 3));
        assert_eq!(at(3), (2, 1));
        assert_eq!(at(5), (2, 2)); // after the two-byte ç
        assert_eq!(at(4), (2, 1)); // inside ç: its start
        assert_eq!(at(7), (3, 1));
        assert_eq!(at(8), (4, 1));
        assert_eq!(at(100), (4, 2));
        let shifted = SourceMap::new(Path::new("f"), "ab", 1);
        assert_eq!(shifted.loc(0).column, 1);
        assert_eq!(shifted.loc(2).column, 2);
        assert_eq!(EvalError::at(&shifted.loc(2), "m").to_string(), "f:1:2: m");
    }
}
