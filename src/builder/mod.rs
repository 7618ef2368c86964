//! Builders: what runs inside a container. The native builder writes a base system (the host's
//! `/usr` read-only, a private `/etc`, the host's systemd as PID 1) and realizes NixOS options
//! into generations: `nixexpr` evaluates the configuration as plain data, `options` types it
//! against the declarations of the option modules (Rhai, in `engine::nixos`), `generation` and
//! `activate` store and apply the result, `switch` makes a running container follow it.

pub mod activate;
pub mod base;
pub mod configuration_nix;
pub mod generation;
pub mod native;
pub mod nix;
pub mod nixexpr;
pub mod options;
pub mod switch;

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

/// The Nix-only options of a create or update (nixos-container's `--system-path`,
/// `--nixos-path`, `--flake` and pass-through flags). Only the Nix builder accepts them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NixOptions {
    pub system_path: Option<String>,
    pub nixos_path: Option<String>,
    /// `REF` or `REF#attr`.
    pub flake: Option<String>,
    /// Pass-through flags for `nix-env`/`nix build`, two-argument flags kept as pairs.
    pub flags: Vec<String>,
    /// `--refresh`: passed to `nix build` only.
    pub refresh: bool,
}

impl NixOptions {
    pub fn is_empty(&self) -> bool {
        *self == NixOptions::default()
    }

    /// The first option given, as its flag (for "needs a Nix host").
    pub fn first_flag(&self) -> Option<String> {
        if self.system_path.is_some() {
            Some("--system-path".into())
        } else if self.nixos_path.is_some() {
            Some("--nixos-path".into())
        } else if self.flake.is_some() {
            Some("--flake".into())
        } else if self.refresh {
            Some("--refresh".into())
        } else {
            self.flags.first().cloned()
        }
    }
}

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
}

impl BuildRequest {
    /// A request with the configuration in `root`, no profile and no Nix options.
    pub fn new(name: &str, root: PathBuf, source: ConfigSource) -> BuildRequest {
        BuildRequest {
            name: name.to_string(),
            config: root.join("etc/nixos/configuration.nix"),
            root,
            source,
            profile: PathBuf::new(),
            conf_flake: None,
            initial: false,
            nix: NixOptions::default(),
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
