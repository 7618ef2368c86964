//! What a create or update is asked for, as the front ends hand it to the manager: where the
//! configuration comes from (one [`ConfigSource`], made once where the flags or the script's
//! options come in), the create flags, and the Nix-only options.

use std::path::{Path, PathBuf};

pub use super::nspawn_flags::{Bind, NspawnOptions};
use crate::error::{Error, Result};

/// What `create` is asked for; the fields mirror nixos-container's flags.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub host_address: Option<String>,
    pub local_address: Option<String>,
    /// `--host-address6`/`--local-address6` (HOST_ADDRESS6, LOCAL_ADDRESS6).
    pub host_address6: Option<String>,
    pub local_address6: Option<String>,
    pub bridge: Option<String>,
    /// ncsh's `--network NAME`: a bridge of ncsh's own (see `container::network`).
    pub network: Option<String>,
    pub port: Option<String>,
    pub auto_start: bool,
    /// `--memory-max`, `--cpu-quota`, `--tasks-max`.
    pub limits: super::limits::LimitOptions,
    pub ensure_unique_name: bool,
    /// `--config` or `--config-file`; None: neither (an empty configuration).
    pub config: Option<ConfigSource>,
    /// nixos-container's 11-character limit (its personality) instead of systemd's 64.
    pub max_name_len: Option<usize>,
    /// `--system-path`, `--nixos-path`, `--flake` and the Nix pass-through flags.
    pub nix: NixOptions,
    /// `--bind`, `--bind-ro`, `--capability`, `--tmpfs`, `--ephemeral`, `--extra-flags`
    /// (EXTRA_NSPAWN_FLAGS).
    pub nspawn: NspawnOptions,
    /// The conf to write as it is (`ncsh apply`: a declared container's), instead of one made
    /// from the flags above; its addresses are checked against the other containers'.
    pub conf: Option<super::Conf>,
    /// The root on a tmpfs of its own (a test's throw-away node): made and removed at memory
    /// speed, its removal an unmount; what it holds is in memory and gone at reboot.
    pub in_memory: bool,
}

/// What `update` is asked for.
#[derive(Debug, Clone, Default)]
pub struct UpdateOptions {
    /// `--config` or `--config-file`; None: the container's configuration.nix as it is.
    pub config: Option<ConfigSource>,
    pub nix: NixOptions,
    /// The nspawn options, when any is given: they replace the conf's EXTRA_NSPAWN_FLAGS (for
    /// the next start).
    pub nspawn: Option<NspawnOptions>,
    /// New limits (written to the conf, applied to a running container).
    pub limits: super::limits::LimitOptions,
}

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

impl ConfigSource {
    /// The source `--config TEXT` or `--config-file FILE` name; None for neither. Both at once
    /// are refused; the file must exist, and is taken by its absolute path with symlinks
    /// resolved, as nixos-container imports it.
    pub fn from_flags(config: Option<&str>, config_file: Option<&Path>) -> Result<Option<Self>> {
        match (config, config_file) {
            (Some(_), Some(_)) => Err(Error::Usage(crate::error::CONFIG_AND_CONFIG_FILE.into())),
            (Some(text), None) => Ok(Some(ConfigSource::Snippet(text.to_string()))),
            (None, Some(file)) => {
                super::config_file::check(file)?;
                let abs = std::fs::canonicalize(file).map_err(|e| {
                    let why = if e.kind() == std::io::ErrorKind::NotFound {
                        "no such file".to_string()
                    } else {
                        e.to_string()
                    };
                    Error::Usage(format!("--config-file {}: {why}", file.display()))
                })?;
                Ok(Some(ConfigSource::File(abs)))
            }
            (None, None) => Ok(None),
        }
    }
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

/// The attribute of a flake's `nixosConfigurations` built when `--flake` names none.
pub const DEFAULT_FLAKE_ATTR: &str = "container";

/// `REF#attr` split as nixos-container splits it (`^(.*)#([^#"]+)$`; the attribute defaults
/// to `container`).
pub fn split_flake(flake: &str) -> (String, String) {
    if let Some((reference, attr)) = flake.rsplit_once('#')
        && !attr.is_empty()
        && !attr.contains('"')
    {
        return (reference.to_string(), attr.to_string());
    }
    (flake.to_string(), DEFAULT_FLAKE_ATTR.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_source_from_the_flags() {
        assert_eq!(ConfigSource::from_flags(None, None).unwrap(), None);
        assert_eq!(
            ConfigSource::from_flags(Some("a = 1;"), None).unwrap(),
            Some(ConfigSource::Snippet("a = 1;".into()))
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.nix");
        std::fs::write(&file, "{ }").unwrap();
        let link = dir.path().join("link.nix");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(
            ConfigSource::from_flags(None, Some(&link)).unwrap(),
            Some(ConfigSource::File(std::fs::canonicalize(&file).unwrap()))
        );
        for (config, file) in [
            (Some("a = 1;"), Some(file.as_path())),
            (None, Some(dir.path())),
            (None, Some(Path::new("/nonexistent.nix"))),
        ] {
            let err = ConfigSource::from_flags(config, file).unwrap_err();
            assert_eq!(err.kind(), "Usage", "{err}");
        }
    }
}
