//! Builders: what runs inside a container. The native builder writes a base system (the host's
//! `/usr` read-only, a private `/etc`, the host's systemd as PID 1) and realizes NixOS options
//! into generations: `nixexpr` evaluates the configuration as plain data, `options` types it
//! against the declarations of the option modules (Rhai, in `engine::nixos`), `generation` and
//! `activate` store and apply the result.

pub mod activate;
pub mod base;
pub mod configuration_nix;
pub mod generation;
pub mod nixexpr;
pub mod options;

use std::path::PathBuf;

use crate::error::Result;

/// Where the configuration of a build comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// The container's `etc/nixos/configuration.nix` as it is (`update` without flags).
    Existing,
    /// A `--config` snippet (bindings inserted in the generated configuration.nix).
    Snippet(String),
    /// A `--config-file`, imported by the generated configuration.nix (absolute path).
    File(PathBuf),
}

pub struct BuildRequest {
    pub name: String,
    /// The container root the configuration belongs to (its final place).
    pub root: PathBuf,
    pub source: ConfigSource,
}

/// Turns a configuration into a generation.
pub trait Builder {
    fn build(&self, request: &BuildRequest) -> Result<generation::Generation>;
}
