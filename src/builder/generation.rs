//! A generation: everything the native builder decided a container's system is — files under
//! `/etc` (and elsewhere), systemd units and what wants them, users and groups. Each build is
//! saved as a new numbered generation beside the previous ones in the container root
//! (`/var/lib/ncsh/generations/N.json`), and `current` names the active one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::files::Root;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ManagedFile {
    Text { text: String, mode: u32 },
    Symlink { target: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    pub text: String,
    /// Targets whose `.wants/` directory links this unit (its `[Install] WantedBy`).
    pub wanted_by: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub uid: Option<u32>,
    pub group: String,
    pub extra_groups: Vec<String>,
    pub description: String,
    pub home: String,
    pub create_home: bool,
    /// The mode of the home directory when it is created (`users.users.NAME.homeMode`).
    #[serde(default = "default_home_mode")]
    pub home_mode: u32,
    pub shell: String,
    /// Set on every activation.
    pub hashed_password: Option<String>,
    /// Set only when the user is first created.
    pub initial_hashed_password: Option<String>,
    pub system: bool,
}

fn default_home_mode() -> u32 {
    0o700
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub gid: Option<u32>,
    pub system: bool,
    /// Users added to the group (`users.groups.NAME.members`), besides those whose
    /// `extra_groups` name it.
    #[serde(default)]
    pub members: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generation {
    pub number: u64,
    /// Container path (absolute) → contents.
    pub files: BTreeMap<String, ManagedFile>,
    pub units: BTreeMap<String, Unit>,
    pub users: BTreeMap<String, User>,
    pub groups: BTreeMap<String, Group>,
    /// The evaluated options, for scripts that ask what a container is configured with.
    pub options: serde_json::Value,
}

/// A container path must be absolute, normalized, and stay inside the container.
pub fn check_container_path(path: &str) -> Result<()> {
    let p = Path::new(path);
    let ok = p.is_absolute()
        && p.components().all(|c| {
            matches!(
                c,
                std::path::Component::RootDir | std::path::Component::Normal(_)
            )
        })
        && p.components().count() > 1;
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "‘{path}’ is not a usable path in a container (absolute, no ‘..’)"
        )))
    }
}

/// Where a container's generations live, relative to its root.
pub const GENERATIONS_DIR: &str = "var/lib/ncsh/generations";

/// Where an activation in progress is recorded, relative to the root (see [`Activation`]).
pub const ACTIVATING: &str = "var/lib/ncsh/activating.json";

/// An activation in progress: written before the first file of generation `to` is applied and
/// removed once `to` is current (or rolled back), so an activation a crash cut short is undone
/// by the next `update` or `start` instead of leaving a half-applied system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activation {
    /// The generation that was current (None: the empty system).
    pub from: Option<u64>,
    /// The generation being applied.
    pub to: u64,
    /// `configuration.nix` as it was before the update, to put back.
    pub config: Option<String>,
    /// The process applying it: while it lives, the activation is not interrupted but running.
    pub pid: u32,
}

/// The generations of one container, read and written through its [`Root`].
pub struct Store<'r> {
    root: &'r Root,
}

impl<'r> Store<'r> {
    pub fn new(root: &'r Root) -> Store<'r> {
        Store { root }
    }

    fn file(name: &str) -> PathBuf {
        Path::new(GENERATIONS_DIR).join(name)
    }

    pub fn current_number(&self) -> Option<u64> {
        self.root
            .read_string(Self::file("current"))
            .ok()??
            .trim()
            .parse()
            .ok()
    }

    pub fn load(&self, number: u64) -> Result<Generation> {
        let path = Self::file(&format!("{number}.json"));
        let shown = || self.root.host_path(&path).display().to_string();
        let text = self
            .root
            .read_string(&path)?
            .ok_or_else(|| Error::Usage(format!("{} is missing", shown())))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Usage(format!("{} is corrupt: {e}", shown())))
    }

    pub fn current(&self) -> Result<Option<Generation>> {
        self.current_number().map(|n| self.load(n)).transpose()
    }

    /// Save `generation` under the next number (set in it) without making it current.
    pub fn save_next(&self, generation: &mut Generation) -> Result<()> {
        self.root.ensure_dir(GENERATIONS_DIR, 0o755)?;
        generation.number = self.numbers()?.last().copied().unwrap_or(0) + 1;
        let text = serde_json::to_string_pretty(generation)
            .map_err(|e| Error::Usage(format!("serializing: {e}")))?;
        self.root.write(
            Self::file(&format!("{}.json", generation.number)),
            text.as_bytes(),
            0o600,
        )
    }

    pub fn set_current(&self, number: u64) -> Result<()> {
        self.root.write(
            Self::file("current"),
            format!("{number}\n").as_bytes(),
            0o644,
        )
    }

    /// Forget a generation that never became current (a failed activation).
    pub fn discard(&self, number: u64) {
        let _ = self.root.remove(Self::file(&format!("{number}.json")));
    }

    /// Record that `activation` starts (see [`Activation`]).
    pub fn begin(&self, activation: &Activation) -> Result<()> {
        let text = serde_json::to_string(activation)
            .map_err(|e| Error::Usage(format!("serializing: {e}")))?;
        self.root.write(ACTIVATING, text.as_bytes(), 0o600)
    }

    /// The activation a crash cut short, if any; one whose process still runs is an error.
    pub fn interrupted(&self) -> Result<Option<Activation>> {
        let Some(text) = self.root.read_string(ACTIVATING)? else {
            return Ok(None);
        };
        let activation: Activation = serde_json::from_str(&text).map_err(|e| {
            Error::Usage(format!(
                "{} is corrupt: {e}; remove it to go on",
                self.root.host_path(ACTIVATING).display()
            ))
        })?;
        let pid = nix::unistd::Pid::from_raw(activation.pid as i32);
        let alive = activation.pid != std::process::id()
            && !matches!(
                nix::sys::signal::kill(pid, None),
                Err(nix::errno::Errno::ESRCH)
            );
        if alive {
            return Err(Error::Usage(format!(
                "generation {} is being activated by process {}; wait for it to finish",
                activation.to, activation.pid
            )));
        }
        Ok(Some(activation))
    }

    /// The activation is over (done or rolled back).
    pub fn finish(&self) -> Result<()> {
        self.root.remove(ACTIVATING)
    }

    pub fn numbers(&self) -> Result<Vec<u64>> {
        let mut out: Vec<u64> = self
            .root
            .list(GENERATIONS_DIR)?
            .iter()
            .filter_map(|n| n.to_str()?.strip_suffix(".json")?.parse().ok())
            .collect();
        out.sort_unstable();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_grow_and_current_is_explicit() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path()).unwrap();
        let store = Store::new(&root);
        assert_eq!(store.current().unwrap(), None);
        let mut g = Generation::default();
        g.files.insert(
            "/etc/x".into(),
            ManagedFile::Text {
                text: "x".into(),
                mode: 0o644,
            },
        );
        store.save_next(&mut g).unwrap();
        assert_eq!(g.number, 1);
        assert_eq!(store.current_number(), None);
        store.set_current(1).unwrap();
        assert_eq!(store.current().unwrap(), Some(g.clone()));
        store.save_next(&mut g).unwrap();
        assert_eq!((g.number, store.numbers().unwrap()), (2, vec![1, 2]));
        store.discard(2);
        assert_eq!(store.numbers().unwrap(), vec![1]);
    }

    #[test]
    fn container_paths_stay_inside() {
        assert!(check_container_path("/etc/ssh/sshd_config").is_ok());
        for bad in ["etc/x", "/", "/etc/../../x", ""] {
            assert!(check_container_path(bad).is_err(), "{bad}");
        }
    }
}
