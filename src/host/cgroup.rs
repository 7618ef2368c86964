//! The private cgroup of a standalone container (ARCHITECTURE.md, "nspawn without systemd as
//! PID 1"): nspawn with `--keep-unit` splits the cgroup it starts in into `payload/` and `supervisor/`, so every
//! container needs its own, `ncsh-NAME`, in each hierarchy the machine has (v1 `name=systemd`
//! and the unified one on hybrid machines, the single one on pure cgroup v2).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::container::limits::Limits;
use crate::container::unit::Device;

use super::devices;
use crate::error::{Context, Result};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

#[derive(Debug, Clone)]
pub struct Cgroups {
    dirs: Vec<PathBuf>,
    /// Where the limits and the usage are: the one cgroup (v2), or per v1 controller.
    unified: Option<PathBuf>,
    memory: Option<PathBuf>,
    pids: Option<PathBuf>,
    cpu: Option<PathBuf>,
    cpuacct: Option<PathBuf>,
    /// The v1 `devices` controller's cgroup (legacy hosts, without cgroup2).
    devices: Option<PathBuf>,
    /// The cgroup2 cgroup (pure v2, or the unified hierarchy of a hybrid host).
    cgroup2: Option<PathBuf>,
}

/// What a container uses, from its cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub memory_bytes: Option<u64>,
    pub cpu_usec: Option<u64>,
    pub tasks: Option<u64>,
}

/// The period of CPU quotas (cgroup v2's and systemd's default), in microseconds.
const CPU_PERIOD_USEC: u64 = 100_000;

/// The names of the cgroups ncsh made, `ncsh-` taken off (what [`Cgroups::for_container`]
/// takes), from the first hierarchy it uses.
pub fn leaves() -> Vec<String> {
    let any = Cgroups::for_container("");
    let Some(parent) = any.dirs.first().and_then(|d| d.parent()) else {
        return Vec::new();
    };
    fs::read_dir(parent)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("ncsh-"))
                .map(str::to_string)
        })
        .collect()
}

impl Cgroups {
    pub fn for_container(name: &str) -> Cgroups {
        let root = Path::new(CGROUP_ROOT);
        let leaf = format!("ncsh-{name}");
        let has = |h: &str| {
            let dir = root.join(h);
            dir.join("cgroup.procs").exists().then(|| dir.join(&leaf))
        };
        if root.join("cgroup.controllers").exists() {
            let dir = root.join(&leaf);
            return Cgroups {
                dirs: vec![dir.clone()],
                cgroup2: Some(dir.clone()),
                unified: Some(dir),
                memory: None,
                pids: None,
                cpu: None,
                cpuacct: None,
                devices: None,
            };
        }
        // Hybrid or legacy: nspawn's (name=systemd, unified), and the controllers that hold
        // limits and usage, each its own hierarchy (cpu and cpuacct are often one, linked).
        let mut dirs: Vec<PathBuf> = ["systemd", "unified"]
            .iter()
            .filter_map(|h| has(h))
            .collect();
        let memory = has("memory");
        let pids = has("pids");
        let cpu = has("cpu");
        let cpuacct = has("cpuacct");
        // The v1 devices controller only where no cgroup2 takes a BPF device program.
        let cgroup2 = has("unified");
        let devices = if cgroup2.is_some() {
            None
        } else {
            has("devices")
        };
        let mut seen: Vec<PathBuf> = Vec::new();
        for dir in [&memory, &pids, &cpu, &cpuacct, &devices]
            .into_iter()
            .flatten()
        {
            let hierarchy = dir
                .parent()
                .and_then(|p| fs::canonicalize(p).ok())
                .unwrap_or_default();
            if !seen.contains(&hierarchy) {
                seen.push(hierarchy);
                dirs.push(dir.clone());
            }
        }
        Cgroups {
            dirs,
            unified: None,
            memory,
            pids,
            cpu,
            cpuacct,
            devices,
            cgroup2,
        }
    }

    /// NixOS's `DevicePolicy=closed` with `allowed` as its `DeviceAllow=` (`host::devices`):
    /// a BPF device program on the cgroup2 cgroup (pure v2, or the unified one of a hybrid
    /// host), else the v1 `devices` controller; false when the host has neither.
    pub fn apply_devices(&self, allowed: &[Device]) -> Result<bool> {
        let proc_devices = fs::read_to_string("/proc/devices").unwrap_or_default();
        let rules = devices::rules(allowed, &proc_devices);
        if let Some(dir) = &self.cgroup2 {
            devices::apply_bpf(dir, &rules)?;
            return Ok(true);
        }
        if let Some(dir) = &self.devices {
            devices::apply_v1(dir, &rules)?;
            return Ok(true);
        }
        Ok(false)
    }

    pub fn create(&self) -> Result<()> {
        if let Some(dir) = &self.unified {
            // The controllers the limits need, delegated from the root (each alone: one the
            // kernel lacks must not keep the others off). Missing ones are reported by `apply`.
            if let Some(root) = dir.parent() {
                for controller in ["+memory", "+pids", "+cpu"] {
                    let _ = fs::write(root.join("cgroup.subtree_control"), controller);
                }
            }
        }
        for dir in &self.dirs {
            fs::create_dir_all(dir).context(|| format!("creating cgroup {}", dir.display()))?;
        }
        Ok(())
    }

    /// Write the limits that are set into the cgroup files (v2 or v1 names).
    pub fn apply(&self, limits: &Limits) -> Result<()> {
        let write = |dir: &Option<PathBuf>, file: &str, value: String, what: &str| -> Result<()> {
            let Some(dir) = dir else {
                return Err(missing_controller(what));
            };
            let path = dir.join(file);
            if !path.exists() {
                return Err(missing_controller(what));
            }
            fs::write(&path, &value).context(|| format!("writing {value} to {}", path.display()))
        };
        let v2 = self.unified.is_some();
        if let Some(bytes) = limits.memory_max {
            let (dir, file) = if v2 {
                (&self.unified, "memory.max")
            } else {
                (&self.memory, "memory.limit_in_bytes")
            };
            write(dir, file, bytes.to_string(), "memory")?;
        }
        if let Some(tasks) = limits.tasks_max {
            let dir = if v2 { &self.unified } else { &self.pids };
            write(dir, "pids.max", tasks.to_string(), "pids")?;
        }
        if let Some(percent) = limits.cpu_quota {
            let quota = percent * CPU_PERIOD_USEC / 100;
            if v2 {
                write(
                    &self.unified,
                    "cpu.max",
                    format!("{quota} {CPU_PERIOD_USEC}"),
                    "cpu",
                )?;
            } else {
                write(
                    &self.cpu,
                    "cpu.cfs_period_us",
                    CPU_PERIOD_USEC.to_string(),
                    "cpu",
                )?;
                write(&self.cpu, "cpu.cfs_quota_us", quota.to_string(), "cpu")?;
            }
        }
        Ok(())
    }

    /// Memory, CPU time and tasks used, as far as the host's controllers tell.
    pub fn usage(&self) -> Usage {
        let read = |dir: &Option<PathBuf>, file: &str| -> Option<String> {
            fs::read_to_string(dir.as_ref()?.join(file)).ok()
        };
        let number = |text: Option<String>| text?.trim().parse::<u64>().ok();
        if self.unified.is_some() {
            let cpu = read(&self.unified, "cpu.stat").and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("usage_usec "))
                    .and_then(|v| v.trim().parse().ok())
            });
            return Usage {
                memory_bytes: number(read(&self.unified, "memory.current")),
                cpu_usec: cpu,
                tasks: number(read(&self.unified, "pids.current")),
            };
        }
        Usage {
            memory_bytes: number(read(&self.memory, "memory.usage_in_bytes")),
            cpu_usec: number(read(&self.cpuacct, "cpuacct.usage")).map(|ns| ns / 1000),
            tasks: number(read(&self.pids, "pids.current")),
        }
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

    /// The `cgroup.procs` files [`Cgroups::join`] writes, for a child to join them itself
    /// between fork and exec ([`join_self`]).
    pub fn procs_files(&self) -> Vec<std::ffi::CString> {
        use std::os::unix::ffi::OsStrExt;
        self.dirs
            .iter()
            .filter_map(|d| {
                std::ffi::CString::new(d.join("cgroup.procs").as_os_str().as_bytes()).ok()
            })
            .collect()
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

fn missing_controller(what: &str) -> crate::error::Error {
    crate::error::Error::Unsupported(format!(
        "this host's cgroups have no {what} controller for ncsh's containers (see \
         /sys/fs/cgroup): the {what} limit cannot be applied; remove it from the conf or enable \
         the controller"
    ))
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

/// Write the calling process's PID into each of `procs` (from [`Cgroups::procs_files`]): only
/// async-signal-safe calls and no allocation, for a `pre_exec` hook.
pub fn join_self(procs: &[std::ffi::CString]) -> std::io::Result<()> {
    // SAFETY: getpid, open, write and close on valid C strings and a stack buffer.
    unsafe {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut pid = libc::getpid() as u32;
        loop {
            at -= 1;
            digits[at] = b'0' + (pid % 10) as u8;
            pid /= 10;
            if pid == 0 {
                break;
            }
        }
        for file in procs {
            let fd = libc::open(file.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let len = digits.len() - at;
            let written = libc::write(fd, digits[at..].as_ptr().cast(), len);
            let error = std::io::Error::last_os_error();
            libc::close(fd);
            if written != len as isize {
                return Err(error);
            }
        }
    }
    Ok(())
}
