//! The native builder: a configuration evaluated without Nix (`nixexpr`), its options realized
//! into a [`Generation`] by option modules. The modules are Rhai scripts, so they are handed in
//! as an [`OptionModules`] by a layer above (the engine); this module knows no Rhai.

use std::path::{Path, PathBuf};

use super::configuration_nix::{self, PATH as CONFIGURATION_NIX};
use super::generation::Generation;
use super::nix::NixBuilder;
use super::nixexpr::{self, OptionTree};
use super::{BuildRequest, Builder, BuilderKind, Built};
use crate::container::ConfigSource;
use crate::error::{Error, Result};
use crate::files::Root;

/// What turns evaluated options into a system: the option modules.
pub trait OptionModules {
    /// Type-check `tree` against the declared options and realize it as container `name`'s
    /// generation.
    fn realize(&self, name: &str, tree: &OptionTree) -> Result<Generation>;
}

pub struct NativeBuilder {
    modules: Box<dyn OptionModules>,
}

impl NativeBuilder {
    pub fn new(modules: Box<dyn OptionModules>) -> NativeBuilder {
        NativeBuilder { modules }
    }

    /// Evaluate the request's configuration and realize its options into a generation.
    pub fn build_generation(&self, request: &BuildRequest) -> Result<Generation> {
        let tree = evaluate(request)?;
        self.modules.realize(&request.name, &tree)
    }
}

impl Builder for NativeBuilder {
    fn kind(&self) -> BuilderKind {
        BuilderKind::Native
    }

    fn build(&self, request: &BuildRequest) -> Result<Built> {
        self.build_generation(request).map(Built::Generation)
    }
}

/// The builder of this host: `NCSH_BUILDER=nix|native` if set, else Nix when `nix-env` and
/// `<nixpkgs/nixos>` are available, else native with the option modules `modules` gives.
pub fn select(modules: impl FnOnce() -> Box<dyn OptionModules>) -> Result<Box<dyn Builder>> {
    let wanted = std::env::var("NCSH_BUILDER").unwrap_or_default();
    match wanted.as_str() {
        "nix" => Ok(Box::new(NixBuilder)),
        "native" => Ok(Box::new(NativeBuilder::new(modules()))),
        "" if super::nix::available() => Ok(Box::new(NixBuilder)),
        "" => Ok(Box::new(NativeBuilder::new(modules()))),
        other => Err(Error::Usage(format!(
            "NCSH_BUILDER={other}: expected ‘nix’ or ‘native’"
        ))),
    }
}

/// An evaluation error as a build failure (its text has the file:line:column).
pub(crate) fn eval_error(e: nixexpr::EvalError) -> Error {
    Error::Build(e.to_string())
}

/// The option tree a request describes (see [`ConfigSource`]).
fn evaluate(request: &BuildRequest) -> Result<OptionTree> {
    let config_nix = request.root.join(CONFIGURATION_NIX);
    let base_dir = config_nix.parent().unwrap_or(Path::new("/")).to_path_buf();
    match &request.source {
        ConfigSource::Existing => {
            // The container's root controls this file: read it inside the root, never through
            // a link out of it.
            let text = Root::open(&request.root)?
                .read_string(CONFIGURATION_NIX)?
                .ok_or_else(|| Error::Build(format!("{}: no such file", config_nix.display())))?;
            nixexpr::eval_file_text(&text, &config_nix).map_err(eval_error)
        }
        ConfigSource::Snippet(text) => {
            let header = configuration_nix::render(&request.name, &ConfigSource::Existing);
            let mut tree =
                nixexpr::eval_str(&header, &config_nix, &base_dir).map_err(eval_error)?;
            let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
            let snippet =
                nixexpr::eval_snippet(text, Path::new("--config"), &cwd).map_err(eval_error)?;
            tree.merge(snippet).map_err(eval_error)?;
            Ok(tree)
        }
        ConfigSource::File(_) => {
            let text = configuration_nix::render(&request.name, &request.source);
            nixexpr::eval_str(&text, &config_nix, &base_dir).map_err(eval_error)
        }
    }
}
