//! A native reader of NixOS configurations as plain data.
//!
//! Parses with `rnix` and evaluates what is plain data — attribute sets (nested, dotted and
//! quoted names, merged across bindings), lists, strings (`"…"` and `''…''` with their escapes
//! and indentation stripping), integers, Booleans, `null`, paths, `lib.mkDefault`,
//! `lib.mkForce`, `lib.mkOverride N`, the module header `{ config, lib, pkgs, ... }:` and
//! `imports = [ ./x.nix /abs/y.nix ];` — into an [`OptionTree`]. Everything that needs a real
//! evaluator (`let`, `with`, `rec`, functions, `if`, operators, `${…}`, references to
//! `config`/`pkgs`, …) is refused with its position; a Nix-enabled host builds it for real.
//!
//! Definitions merge as the NixOS module system merges them: within one set a leaf defined
//! twice is an error (as in Nix); across modules the lowest priority number wins (plain
//! definition 100, `mkDefault` 1000, `mkForce` 50, `mkOverride N` N), lists of equal priority
//! concatenate and different values of equal priority conflict.

use crate::nixlang::{error, strings};
mod eval;
mod tree;
mod value;

use std::path::{Path, PathBuf};

pub use error::{EvalError, Location};
pub use tree::{
    OptionTree, PRIORITY_DEFAULT, PRIORITY_FORCE, PRIORITY_OPTION_DEFAULT, PRIORITY_PLAIN,
};
pub use value::Value;
pub(crate) use value::parse_path;

use eval::{Loader, Shape, looks_like_bindings};

/// A configuration text and where it comes from. `path` names it in messages and, for a real
/// file, gives the directory relative imports and paths resolve against; for a `--config`
/// snippet use a pseudo path such as `<config>` (imports then resolve against the current
/// directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

/// Evaluates a module file and everything it imports.
pub fn eval_file(path: &Path) -> Result<OptionTree, EvalError> {
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        let cwd = std::env::current_dir().map_err(|e| {
            EvalError::at(&Location::file_only(path), format!("cannot resolve: {e}"))
        })?;
        cwd.join(path)
    };
    Loader::default().file(&path, None)
}

/// Evaluates `text`, the contents of the file at absolute `path` that the caller read (through
/// the root-relative file layer, for a file in a container), as [`eval_file`] evaluates a file.
pub fn eval_file_text(text: &str, path: &Path) -> Result<OptionTree, EvalError> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    Loader::default().module(path, text, dir, Shape::Expr)
}

/// Evaluates `text`, named `origin` in messages, with relative paths and imports resolved
/// against `base_dir`. The text is either a module (`{ … }` or `{ config, lib, ... }: { … }`)
/// or bindings as a `--config` snippet holds them (`services.openssh.enable = true; …`), which
/// are read as the body of `{ config, lib, pkgs, ... }: { … }`, the way nixos-container
/// inserts them.
pub fn eval_str(text: &str, origin: &Path, base_dir: &Path) -> Result<OptionTree, EvalError> {
    let base_dir = absolute(base_dir, origin)?;
    let base_dir = base_dir.as_path();
    let shape = if looks_like_bindings(text) {
        Shape::Bindings
    } else {
        Shape::Expr
    };
    Loader::default().module(origin, text, base_dir, shape)
}

/// Like [`eval_str`], always reading `text` as bindings (a `--config` snippet).
pub fn eval_snippet(text: &str, origin: &Path, base_dir: &Path) -> Result<OptionTree, EvalError> {
    let base_dir = absolute(base_dir, origin)?;
    let base_dir = base_dir.as_path();
    Loader::default().module(origin, text, base_dir, Shape::Bindings)
}

/// `dir` made absolute against the current directory.
fn absolute(dir: &Path, origin: &Path) -> Result<PathBuf, EvalError> {
    if dir.is_absolute() {
        return Ok(dir.to_path_buf());
    }
    let cwd = std::env::current_dir()
        .map_err(|e| EvalError::at(&Location::file_only(origin), format!("cannot resolve: {e}")))?;
    Ok(cwd.join(dir))
}

/// Evaluates a [`Source`]: relative to its file's directory, or to the current directory for
/// a pseudo path without one (`<config>`).
pub fn eval_source(source: &Source) -> Result<OptionTree, EvalError> {
    let dir = match source.path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::env::current_dir().map_err(|e| {
            EvalError::at(
                &Location::file_only(&source.path),
                format!("cannot resolve: {e}"),
            )
        })?,
    };
    eval_str(&source.text, &source.path, &dir)
}

#[cfg(test)]
mod tests;
