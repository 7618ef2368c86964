//! Where containers live on disk: nixos-container's paths, all movable.
//!
//! `NCSH_PREFIX=/some/dir` moves every path below that directory (tests use it); the individual
//! variables `NCSH_CONF_DIR`, `NCSH_STATE_DIR`, `NCSH_RUN_DIR`, `NCSH_LOCK_FILE`,
//! `NCSH_PROFILES_DIR` and `NCSH_GCROOTS_DIR` win over it.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// `NAME.conf` files (`/etc/nixos-containers`).
    pub conf_dir: PathBuf,
    /// Container roots (`/var/lib/nixos-containers`).
    pub state_dir: PathBuf,
    /// Supervisor state of running containers (`/run/ncsh`).
    pub run_dir: PathBuf,
    /// The create lock (`/run/lock/nixos-container`).
    pub lock_file: PathBuf,
    /// Per-container Nix profiles (`/nix/var/nix/profiles/per-container`).
    pub profiles_dir: PathBuf,
    /// Per-container GC roots (`/nix/var/nix/gcroots/per-container`).
    pub gcroots_dir: PathBuf,
}

impl Paths {
    /// The standard paths below `prefix` (`/` for the real ones).
    pub fn under(prefix: &Path) -> Paths {
        let p = |rel: &str| prefix.join(rel);
        Paths {
            conf_dir: p("etc/nixos-containers"),
            state_dir: p("var/lib/nixos-containers"),
            run_dir: p("run/ncsh"),
            lock_file: p("run/lock/nixos-container"),
            profiles_dir: p("nix/var/nix/profiles/per-container"),
            gcroots_dir: p("nix/var/nix/gcroots/per-container"),
        }
    }

    /// From the environment (see the module docs).
    pub fn from_env() -> Paths {
        Self::from_vars(|k| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
    }

    fn from_vars(var: impl Fn(&str) -> Option<PathBuf>) -> Paths {
        let prefix = var("NCSH_PREFIX").unwrap_or_else(|| PathBuf::from("/"));
        let mut paths = Paths::under(&prefix);
        for (key, slot) in [
            ("NCSH_CONF_DIR", &mut paths.conf_dir),
            ("NCSH_STATE_DIR", &mut paths.state_dir),
            ("NCSH_RUN_DIR", &mut paths.run_dir),
            ("NCSH_LOCK_FILE", &mut paths.lock_file),
            ("NCSH_PROFILES_DIR", &mut paths.profiles_dir),
            ("NCSH_GCROOTS_DIR", &mut paths.gcroots_dir),
        ] {
            if let Some(v) = var(key) {
                *slot = v;
            }
        }
        paths
    }

    /// The environment that reproduces these paths in a child process (the supervisor).
    pub fn to_env(&self) -> [(&'static str, &Path); 6] {
        [
            ("NCSH_CONF_DIR", &self.conf_dir),
            ("NCSH_STATE_DIR", &self.state_dir),
            ("NCSH_RUN_DIR", &self.run_dir),
            ("NCSH_LOCK_FILE", &self.lock_file),
            ("NCSH_PROFILES_DIR", &self.profiles_dir),
            ("NCSH_GCROOTS_DIR", &self.gcroots_dir),
        ]
    }

    pub fn conf(&self, name: &str) -> PathBuf {
        self.conf_dir.join(format!("{name}.conf"))
    }

    pub fn root(&self, name: &str) -> PathBuf {
        self.state_dir.join(name)
    }

    pub fn runtime(&self, name: &str) -> PathBuf {
        self.run_dir.join(name)
    }

    pub fn profile(&self, name: &str) -> PathBuf {
        self.profiles_dir.join(name)
    }

    pub fn gcroots(&self, name: &str) -> PathBuf {
        self.gcroots_dir.join(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_nixos_container_paths() {
        let p = Paths::from_vars(|_| None);
        assert_eq!(p.conf("foo"), Path::new("/etc/nixos-containers/foo.conf"));
        assert_eq!(p.root("foo"), Path::new("/var/lib/nixos-containers/foo"));
        assert_eq!(p.lock_file, Path::new("/run/lock/nixos-container"));
        assert_eq!(
            p.profile("foo"),
            Path::new("/nix/var/nix/profiles/per-container/foo")
        );
    }

    #[test]
    fn prefix_and_overrides() {
        let p = Paths::from_vars(|k| match k {
            "NCSH_PREFIX" => Some("/tmp/t".into()),
            "NCSH_CONF_DIR" => Some("/elsewhere".into()),
            _ => None,
        });
        assert_eq!(p.conf_dir, Path::new("/elsewhere"));
        assert_eq!(p.state_dir, Path::new("/tmp/t/var/lib/nixos-containers"));
        assert_eq!(p.runtime("a"), Path::new("/tmp/t/run/ncsh/a"));
    }
}
