//! The private cgroup of a standalone container (ARCHITECTURE.md, "nspawn without systemd as
//! PID 1"): nspawn with `--keep-unit` splits the cgroup it starts in into `payload/` and `supervisor/`, so every
//! container needs its own, `ncsh-NAME`, in each hierarchy the machine has (v1 `name=systemd`
//! and the unified one on hybrid machines, the single one on pure cgroup v2).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::error::{Context, Result};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

#[derive(Debug, Clone)]
pub struct Cgroups {
    dirs: Vec<PathBuf>,
}

impl Cgroups {
    pub fn for_container(name: &str) -> Cgroups {
        let root = Path::new(CGROUP_ROOT);
        let leaf = format!("ncsh-{name}");
        let hierarchies: Vec<PathBuf> = if root.join("cgroup.controllers").exists() {
            vec![root.to_path_buf()]
        } else {
            ["systemd", "unified"]
                .iter()
                .map(|h| root.join(h))
                .filter(|p| p.join("cgroup.procs").exists())
                .collect()
        };
        Cgroups {
            dirs: hierarchies.into_iter().map(|h| h.join(&leaf)).collect(),
        }
    }

    pub fn create(&self) -> Result<()> {
        for dir in &self.dirs {
            fs::create_dir_all(dir).context(|| format!("creating cgroup {}", dir.display()))?;
        }
        Ok(())
    }

    /// Move process `pid` into the container's cgroups.
    pub fn join(&self, pid: u32) -> Result<()> {
        for dir in &self.dirs {
            let procs = dir.join("cgroup.procs");
            fs::write(&procs, pid.to_string())
                .context(|| format!("writing {}", procs.display()))?;
        }
        Ok(())
    }

    pub fn exists(&self) -> bool {
        self.dirs.iter().any(|d| d.exists())
    }

    /// Every process in the container's cgroups, nested ones included.
    pub fn processes(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        for dir in &self.dirs {
            for sub in subtree(dir) {
                if let Ok(text) = fs::read_to_string(sub.join("cgroup.procs")) {
                    pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
                }
            }
        }
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Kill whatever is left in the cgroups (except `spare`), wait for them to go, and remove the
    /// cgroup directories deepest first.
    pub fn kill_and_remove(&self, spare: Option<u32>, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let left: Vec<i32> = self
                .processes()
                .into_iter()
                .filter(|p| Some(*p as u32) != spare)
                .collect();
            if left.is_empty() {
                break;
            }
            for pid in left {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            if Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        for dir in &self.dirs {
            // A cgroup whose last processes are still exiting is busy for a moment: try again
            // until the deadline. One that is gone already (another cleaner was faster) is
            // what we want.
            loop {
                let mut subs = subtree(dir);
                subs.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
                let mut busy = None;
                for sub in subs {
                    match fs::remove_dir(&sub) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => busy = Some(e),
                    }
                }
                match busy {
                    None => break,
                    Some(e) if Instant::now() > deadline => {
                        return Err(crate::error::Error::io(
                            format!("removing cgroup {}", dir.display()),
                            e,
                        ));
                    }
                    Some(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }
        Ok(())
    }
}

/// `dir` and every cgroup below it.
fn subtree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        out.push(d);
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    out
}
