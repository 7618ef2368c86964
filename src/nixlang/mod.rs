//! The Nix language, evaluated natively: a lazy evaluator on a lexer and parser of Nix's grammar.
//!
//! [`parser`] (with [`lexer`]) reads a text into a plain tree; [`compile`] turns it into an
//! expression tree with variables resolved to frame
//! slots; [`eval`] evaluates it lazily (thunks computed at most once, infinite recursion
//! detected, recursion depth bounded); [`builtins`] holds Nix's built-in functions and [`json`]
//! its JSON. The NixOS module system and `lib` sit above, in the builder. See ARCHITECTURE.md.

mod builtins;
pub(crate) mod compile;
pub(crate) mod error;
mod eval;
pub mod json;
mod lexer;
mod parser;
pub mod split;
pub(crate) mod strings;
pub mod value;

use std::path::Path;

pub use error::SourceMap;
pub use error::{ErrorKind, EvalError, Location};
pub use eval::{Evaluator, LOOKUP_ATTR, Written};
pub use value::{Attrs, Str, Thunk, Value};

/// The hash maps of the evaluator and the module system: FxHash, as their keys are short
/// (names, paths, pointers) and hashing them with SipHash was a large part of an evaluation.
/// What is hashed comes from the user's own configuration, so collisions crafted against the
/// hash are no concern here.
pub type HashMap<K, V> = rustc_hash::FxHashMap<K, V>;
pub type HashSet<K> = rustc_hash::FxHashSet<K>;

/// Evaluates `text` as a Nix expression with relative paths resolved against `base_dir`, forces
/// it deeply and converts it to JSON as `nix-instantiate --eval --strict --json` prints it.
pub fn eval_json(text: &str, base_dir: &Path) -> Result<serde_json::Value, EvalError> {
    let mut ev = Evaluator::new();
    let v = ev.eval_text(text, SourceMap::new(Path::new("<expr>"), text, 0), base_dir)?;
    ev.force_deep(&v)?;
    json::to_serde(&mut ev, &v)
}

/// Whether `a` is close enough to `b` to suggest it ("did you mean"): a small edit distance
/// relative to the length, or equal but for case.
pub fn similar(a: &str, b: &str) -> bool {
    if a.eq_ignore_ascii_case(b) {
        return true;
    }
    let limit = (a.chars().count().max(b.chars().count()) / 4).max(1);
    edit_distance(a, b) <= limit
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod differential;
