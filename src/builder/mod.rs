//! Builders: what runs inside a container. The native builder writes a base system (the host's
//! `/usr` read-only, a private `/etc`, the host's systemd as PID 1) and realizes NixOS options
//! into generations: `nixexpr` evaluates the configuration as plain data, `options` types it
//! against the declarations of the option modules (Rhai, in `engine::nixos`), `generation` and
//! `activate` store and apply the result, `switch` makes a running container follow it.

pub mod activate;
pub mod base;
pub mod configuration_nix;
pub mod declared;
pub mod generation;
pub mod modules;
pub mod native;
pub mod nix;
pub mod options;
pub mod pkgs;
pub mod plain;
pub mod switch;
pub mod sysusers;

use std::path::PathBuf;

use crate::container::{ConfigSource, NixOptions};
use crate::error::Result;

pub struct BuildRequest {
    pub name: String,
    /// The container root the configuration belongs to (its final place).
    pub root: PathBuf,
    pub source: ConfigSource,
    /// The `configuration.nix` to build (in the root being built, during a create).
    pub config: PathBuf,
    /// The container's profile directory (`…/profiles/per-container/NAME`).
    pub profile: PathBuf,
    /// The FLAKE of the container's conf (update without a configuration).
    pub conf_flake: Option<String>,
    /// Is this the first build (create)? Only changes the messages.
    pub initial: bool,
    pub nix: NixOptions,
    /// The host module the container was applied from (`ncsh apply`, the conf's
    /// NCSH_DECLARED_IN): its `containers.NAME.config` is one more module of the configuration.
    pub declared_in: Option<PathBuf>,
}

impl BuildRequest {
    /// A request with the configuration in `root`, no profile and no Nix options.
    pub fn new(name: &str, root: PathBuf, source: ConfigSource) -> BuildRequest {
        BuildRequest {
            name: name.to_string(),
            config: root.join(configuration_nix::PATH),
            root,
            source,
            profile: PathBuf::new(),
            conf_flake: None,
            initial: false,
            nix: NixOptions::default(),
            declared_in: None,
        }
    }
}

/// Which kind of builder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuilderKind {
    /// Options realized without Nix, into generations stored in the root.
    Native,
    /// `nix-env` into the per-container profile, as nixos-container.
    Nix,
}

/// What a build produced.
#[derive(Debug)]
pub enum Built {
    /// A native generation: the caller applies it into the root and stores it.
    Generation(generation::Generation),
    /// A Nix system, already set as the new generation of the container's profile.
    NixSystem(PathBuf),
}

/// Turns a configuration into a system.
pub trait Builder {
    fn kind(&self) -> BuilderKind;
    fn build(&self, request: &BuildRequest) -> Result<Built>;
}
