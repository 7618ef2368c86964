//! nspawn's seccomp filter, compiled once per host instead of at every start (ARCHITECTURE.md,
//! "nspawn's seccomp filter, compiled once").
//!
//! systemd-nspawn builds its system call filter with libseccomp for three ABIs at every start:
//! about 50 ms of CPU, a third of a container's boot here. The filter depends only on nspawn
//! itself and on the few options that change the capabilities and calls it allows. So the
//! standalone supervisor runs a *probe* once per such set: nspawn with those options and the
//! host's `sleep` as the payload in an empty root, reads the filters the kernel holds for that
//! process (`PTRACE_SECCOMP_GET_FILTER`) and keeps them in [`cache_dir`]. A later start with the
//! same set tells nspawn not to build its own (`SYSTEMD_SECCOMP=0`) and installs the cached
//! programs, the same instructions in the same order, between fork and exec of nspawn.
//!
//! The filters are never read from a container's own processes: their PID 1 is the
//! container's code, which could stack filters of its own onto itself.

use std::ffi::OsString;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use super::cgroup::Cgroups;
use crate::error::{Context, Error, Result};

/// Where the programs are kept (`NCSH_SECCOMP_DIR` overrides it): host-wide, as they describe
/// the host's nspawn, and on `/run`, so a reboot (a new kernel, a new nspawn) starts afresh.
/// An empty `NCSH_SECCOMP_DIR` turns the cache off: nspawn builds its filter at every start.
pub fn cache_dir() -> Option<PathBuf> {
    match std::env::var_os("NCSH_SECCOMP_DIR") {
        None => Some(PathBuf::from("/run/ncsh-seccomp")),
        Some(dir) if dir.is_empty() => None,
        Some(dir) => Some(PathBuf::from(dir)),
    }
}

const MAGIC: &str = "ncsh-seccomp 2";
/// The kernel's limit on one program's length (BPF_MAXINSNS).
const MAX_INSNS: usize = 4096;
/// More filters than nspawn installs (5 with systemd 252) means something is wrong.
const MAX_FILTERS: usize = 16;
const PTRACE_SECCOMP_GET_FILTER: libc::c_uint = 0x420c;

/// The options of one start that shape nspawn's filter, and the key they are cached under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Options for the probe: `--private-network` when the container has its own network, and
    /// the capability and system call options as given.
    pub probe_args: Vec<String>,
    /// nspawn's identity (device, inode, size, modification time) and `probe_args`.
    pub key: String,
}

/// Options that take a value and do not change the filter.
const NEUTRAL_WITH_VALUE: [&str; 14] = [
    "-M",
    "--machine",
    "-D",
    "--directory",
    "--bind",
    "--bind-ro",
    "--tmpfs",
    "--setenv",
    "-E",
    "--port",
    "-p",
    "--kill-signal",
    "--link-journal",
    "--timezone",
];
/// Options without a value that do not change the filter.
const NEUTRAL: [&str; 6] = [
    "--keep-unit",
    "--ephemeral",
    "-x",
    "-q",
    "--quiet",
    "--private-network",
];
/// Options that give the container a network of its own (nspawn then grants CAP_NET_ADMIN).
const OWN_NETWORK: [&str; 6] = [
    "--network-veth",
    "--network-bridge",
    "--network-interface",
    "--network-macvlan",
    "--network-ipvlan",
    "--network-zone",
];
/// Options the filter is made from, passed to the probe as they are.
const SHAPING: [&str; 3] = ["--capability", "--drop-capability", "--system-call-filter"];

/// The plan for nspawn `argv` (options, then the payload), or None when an option could change
/// the filter in a way the probe does not reproduce (user namespaces, a personality, a network
/// namespace of the host's, an option ncsh does not know): then nspawn builds its own, as ever.
pub fn plan(nspawn: &Path, argv: &[OsString]) -> Option<Plan> {
    identity(nspawn)?;
    let mut own_network = false;
    let mut shaping: Vec<String> = Vec::new();
    let mut args = argv.iter();
    while let Some(arg) = args.next() {
        let arg = arg.to_str()?;
        if !arg.starts_with('-') {
            break; // the payload
        }
        let (option, value) = match arg.split_once('=') {
            Some((o, v)) => (o, Some(v.to_string())),
            None => (arg, None),
        };
        let takes_value = NEUTRAL_WITH_VALUE.contains(&option)
            || SHAPING.contains(&option)
            || (OWN_NETWORK.contains(&option) && option != "--network-veth");
        let value = match value {
            None if takes_value => Some(args.next()?.to_str()?.to_string()),
            v => v,
        };
        if option == "--register" || option == "--notify-ready" {
            continue;
        }
        if option == "--private-network" || OWN_NETWORK.contains(&option) {
            own_network = true;
        } else if SHAPING.contains(&option) {
            shaping.push(format!("{option}={}", value.unwrap_or_default()));
        } else if !(NEUTRAL.contains(&option) || NEUTRAL_WITH_VALUE.contains(&option)) {
            return None;
        }
    }
    let mut probe_args = Vec::new();
    if own_network {
        probe_args.push("--private-network".to_string());
    }
    probe_args.extend(shaping);
    let key = format!(
        "{} {} {} {}",
        nspawn.display(),
        identity(nspawn)?,
        kernel(),
        probe_args.join(" ")
    );
    Some(Plan { probe_args, key })
}

/// A file as it is now (device, inode, size, modification time), links followed.
fn identity(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    Some(format!(
        "{}:{}:{}:{}.{}",
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec()
    ))
}

/// The running kernel (its release and build), whose seccomp support the filter was built for.
fn kernel() -> String {
    let read = |f: &str| {
        std::fs::read_to_string(Path::new("/proc/sys/kernel").join(f))
            .unwrap_or_default()
            .trim()
            .replace(' ', "_")
    };
    format!("{}/{}", read("osrelease"), read("version"))
}

impl Plan {
    fn file(&self, dir: &Path) -> PathBuf {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.key.hash(&mut h);
        dir.join(format!("{:016x}", h.finish()))
    }

    /// The cached filters, when a probe with this plan has run (the key is checked in full).
    pub fn cached(&self, dir: &Path) -> Option<Filters> {
        let text = std::fs::read_to_string(self.file(dir)).ok()?;
        Filters::parse(&text, &self.key)
    }

    /// Run the probe and keep what it finds. One probe at a time per plan (a lock file); when
    /// another runs, this returns at once.
    pub fn probe_and_keep(&self, nspawn: &Path, dir: &Path) -> Result<()> {
        crate::files::ensure_dir(dir, 0o700)?;
        let file = self.file(dir);
        let lock_path = file.with_extension("lock");
        use std::os::unix::fs::OpenOptionsExt;
        let lock = std::fs::OpenOptions::new()
            .mode(0o600)
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .context(|| format!("opening {}", lock_path.display()))?;
        // SAFETY: flock on a descriptor we own; released when `lock` is closed.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Ok(());
        }
        if self.cached(dir).is_some() {
            return Ok(());
        }
        let filters = probe(nspawn, &self.probe_args, dir)?;
        crate::files::write_atomic(&file, &filters.render(&self.key), 0o600)?;
        prune(dir);
        Ok(())
    }
}

/// Remove the programs of an nspawn that is no longer there as it was (upgraded, or a test's
/// wrapper gone), with their lock files.
fn prune(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some() {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let key = text.lines().nth(1).unwrap_or_default();
        let current = key
            .split(' ')
            .next()
            .and_then(|nspawn| plan(Path::new(nspawn), &[]))
            .is_some_and(|p| key.starts_with(p.key.trim_end()));
        if !current {
            let _ = std::fs::remove_file(&path);
            let _ = std::fs::remove_file(path.with_extension("lock"));
        }
    }
}

/// Classic BPF programs, in the order they were installed (the oldest first), and the
/// libraries nspawn built them with (libseccomp, systemd's own), as they were then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filters {
    programs: Vec<Vec<libc::sock_filter>>,
    libraries: Vec<(String, String)>,
}

impl Filters {
    pub fn len(&self) -> usize {
        self.programs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.programs.is_empty()
    }

    fn render(&self, key: &str) -> String {
        let mut out = format!("{MAGIC}\n{key}\n");
        for (path, id) in &self.libraries {
            out.push_str(&format!("lib {id} {path}\n"));
        }
        for program in &self.programs {
            out.push_str(&format!("filter {}\n", program.len()));
            for i in program {
                out.push_str(&format!("{} {} {} {}\n", i.code, i.jt, i.jf, i.k));
            }
        }
        out
    }

    fn parse(text: &str, key: &str) -> Option<Filters> {
        let mut lines = text.lines();
        if lines.next()? != MAGIC || lines.next()? != key {
            return None;
        }
        let mut programs = Vec::new();
        let mut libraries = Vec::new();
        while let Some(header) = lines.next() {
            // A library that changed since (an upgrade) makes the programs stale.
            if let Some(lib) = header.strip_prefix("lib ") {
                let (id, path) = lib.split_once(' ')?;
                if !programs.is_empty() || identity(Path::new(path))?.as_str() != id {
                    return None;
                }
                libraries.push((path.to_string(), id.to_string()));
                continue;
            }
            let n: usize = header.strip_prefix("filter ")?.parse().ok()?;
            if n == 0 || n > MAX_INSNS {
                return None;
            }
            let mut program = Vec::with_capacity(n);
            for _ in 0..n {
                let mut f = lines.next()?.split(' ');
                program.push(libc::sock_filter {
                    code: f.next()?.parse().ok()?,
                    jt: f.next()?.parse().ok()?,
                    jf: f.next()?.parse().ok()?,
                    k: f.next()?.parse().ok()?,
                });
                if f.next().is_some() {
                    return None;
                }
            }
            programs.push(program);
        }
        (!programs.is_empty() && programs.len() <= MAX_FILTERS).then_some(Filters {
            programs,
            libraries,
        })
    }

    /// Install the programs on the calling thread, oldest first. Only system calls and no
    /// allocation: for a `pre_exec` hook. As root the caller needs no `no_new_privs` (it would
    /// break setuid programs inside).
    pub fn install(&self) -> std::io::Result<()> {
        for program in &self.programs {
            let prog = libc::sock_fprog {
                len: program.len() as libc::c_ushort,
                filter: program.as_ptr().cast_mut(),
            };
            // SAFETY: `prog` points into `program`, alive for the call; the kernel copies it.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    0,
                    &prog as *const libc::sock_fprog,
                )
            };
            if r != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// The filters of process `pid` (which must be ours to trace): attached, stopped for the
/// reading, detached.
pub fn read_filters(pid: Pid) -> Result<Filters> {
    use nix::sys::wait::{WaitPidFlag, waitpid};
    let context = || format!("reading the seccomp filters of process {pid}");
    let ptrace = |request: libc::c_uint, addr: usize, data: *mut libc::sock_filter| {
        // SAFETY: the requests used here read into `data` at most the length the kernel
        // reported for it, or take no buffer at all.
        unsafe { libc::ptrace(request, pid.as_raw(), addr, data) }
    };
    let none = std::ptr::null_mut::<libc::sock_filter>();
    if ptrace(libc::PTRACE_SEIZE, 0, none) != 0 {
        return Err(Error::sys(context(), nix::Error::last()));
    }
    let read = (|| {
        if ptrace(libc::PTRACE_INTERRUPT, 0, none) != 0 {
            return Err(Error::sys(context(), nix::Error::last()));
        }
        waitpid(pid, Some(WaitPidFlag::__WALL)).context(context)?;
        let mut programs = Vec::new();
        for index in 0..=MAX_FILTERS {
            // A null buffer asks for the length only.
            let n = ptrace(PTRACE_SECCOMP_GET_FILTER, index, none);
            if n < 0 {
                let err = nix::Error::last();
                if err == nix::Error::ENOENT {
                    break;
                }
                return Err(Error::sys(context(), err));
            }
            let n = n as usize;
            if n == 0 || n > MAX_INSNS || index == MAX_FILTERS {
                return Err(Error::io(
                    format!("{}: unexpected programs", context()),
                    std::io::ErrorKind::InvalidData.into(),
                ));
            }
            let empty = libc::sock_filter {
                code: 0,
                jt: 0,
                jf: 0,
                k: 0,
            };
            let mut program = vec![empty; n];
            if ptrace(PTRACE_SECCOMP_GET_FILTER, index, program.as_mut_ptr()) as usize != n {
                return Err(Error::sys(context(), nix::Error::last()));
            }
            programs.push(program);
        }
        // Index 0 is the oldest (the kernel counts back from the newest by the total).
        Ok(Filters {
            programs,
            libraries: Vec::new(),
        })
    })();
    ptrace(libc::PTRACE_DETACH, 0, none);
    let filters = read?;
    if filters.is_empty() {
        return Err(Error::io(
            format!("{}: it has none", context()),
            std::io::ErrorKind::NotFound.into(),
        ));
    }
    Ok(filters)
}

/// A probe run: nspawn with `options` in an empty root of its own below `dir`, its payload the
/// host's `sleep`; its filters read once the payload runs. Everything it made is removed.
fn probe(nspawn: &Path, options: &[String], dir: &Path) -> Result<Filters> {
    remove_dead_probes(dir);
    let name = format!("ncsh-seccomp-{}", std::process::id());
    let work = dir.join(&name);
    crate::files::remove_path(&work)?;
    crate::files::ensure_dir(&work, 0o700)?;
    let result = (|| {
        let root = work.join("root");
        crate::files::ensure_dir(&root.join("usr"), 0o755)?;
        for link in ["bin", "lib", "lib64", "sbin"] {
            std::os::unix::fs::symlink(format!("usr/{link}"), root.join(link))
                .context(|| format!("making the probe's {link}"))?;
        }
        let notify = work.join("notify");
        let socket = UnixDatagram::bind(&notify).context(|| "binding the probe's socket".into())?;
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .context(|| "probe socket".into())?;
        let mut cmd = Command::new(nspawn);
        cmd.args(["-q", "--register=no", "--keep-unit", "-M", &name, "-D"])
            .arg(&root)
            .args(["--bind-ro=/usr", "--timezone=off", "--resolv-conf=off"])
            .args(["--link-journal=no", "--kill-signal=SIGKILL"])
            .args(options)
            .args(["/usr/bin/sleep", "60"])
            .env("NOTIFY_SOCKET", &notify)
            .env_remove("SYSTEMD_SECCOMP")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // A cgroup of its own, as a container's: nspawn splits the one it starts in into
        // `payload` and `supervisor`, which must not be the supervisor's own.
        let cgroups = Cgroups::for_container(&probe_cgroup_name(std::process::id()));
        cgroups.create()?;
        let procs = cgroups.procs_files();
        // SAFETY: prctl is async-signal-safe, join_self allocates nothing. Should the
        // supervisor die, so does the probe.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                super::cgroup::join_self(&procs)
            });
        }
        let spawned = cmd
            .spawn()
            .context(|| format!("running {} for the seccomp probe", nspawn.display()));
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let _ = cgroups.kill_and_remove(None, Duration::from_secs(5));
                return Err(e);
            }
        };
        let mut leader = None;
        let read = read_probe(&mut child, &socket, &mut leader).map(|mut filters| {
            filters.libraries = libraries_of(child.id());
            filters
        });
        // The payload's death ends its PID namespace, and nspawn with it.
        match leader {
            Some(pid) => {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
            None => {
                let _ = child.kill();
            }
        }
        let mut err = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            let _ = stderr.read_to_string(&mut err);
        }
        let _ = child.wait();
        let _ = cgroups.kill_and_remove(None, Duration::from_secs(5));
        read.map_err(|e| match err.trim() {
            "" => e,
            err => Error::io(
                format!("{e}; nspawn said: {err}"),
                std::io::ErrorKind::Other.into(),
            ),
        })
    })();
    let _ = super::nspawn::remove_machine_files(&name, &work.join("root"));
    let _ = crate::files::remove_path(&work);
    result
}

/// The probe's cgroup is `ncsh-` this and its supervisor's PID: a dot no container name has.
const PROBE_CGROUP: &str = ".seccomp-probe-";

fn probe_cgroup_name(pid: u32) -> String {
    format!("{PROBE_CGROUP}{pid}")
}

/// What the probe of a supervisor that died meanwhile left: its root and its cgroup.
fn remove_dead_probes(dir: &Path) {
    let dead = |pid: &str| {
        pid.parse::<i32>()
            .is_ok_and(|p| !super::alive(Pid::from_raw(p)))
    };
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.strip_prefix("ncsh-seccomp-").is_some_and(dead) {
            let _ = crate::files::remove_path(&entry.path());
        }
    }
    for leaf in super::cgroup::leaves() {
        if leaf.strip_prefix(PROBE_CGROUP).is_some_and(&dead) {
            let _ = Cgroups::for_container(&leaf).kill_and_remove(None, Duration::from_secs(1));
        }
    }
}

/// The shared libraries process `pid` has mapped, with their identities.
fn libraries_of(pid: u32) -> Vec<(String, String)> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    let mut out: Vec<(String, String)> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.starts_with('/') && p.contains(".so"))
        .filter_map(|p| Some((p.to_string(), identity(Path::new(p))?)))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The payload's filters, once nspawn has named its PID and the payload is `sleep`.
fn read_probe(
    child: &mut Child,
    socket: &UnixDatagram,
    leader: &mut Option<Pid>,
) -> Result<Filters> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::io(
                format!("the seccomp probe's nspawn exited ({status})"),
                std::io::ErrorKind::Other.into(),
            ));
        }
        match *leader {
            None => {
                if let Ok(n) = socket.recv(&mut buf) {
                    *leader = String::from_utf8_lossy(&buf[..n])
                        .lines()
                        .find_map(|l| l.strip_prefix("X_NSPAWN_LEADER_PID="))
                        .and_then(|p| p.trim().parse().ok())
                        .filter(|p: &i32| *p > 0)
                        .map(Pid::from_raw);
                }
            }
            Some(pid) => {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                if comm.trim() == "sleep" {
                    return read_filters(pid);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
    Err(Error::io(
        "the seccomp probe's payload did not start within 5 s",
        std::io::ErrorKind::TimedOut.into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn nspawn() -> &'static Path {
        // Any file will do for the identity.
        Path::new("/proc/self/exe")
    }

    #[test]
    fn the_plan_keeps_what_shapes_the_filter() {
        let p = plan(
            nspawn(),
            &args(&[
                "--keep-unit",
                "--register=no",
                "-M",
                "web",
                "-D",
                "/var/lib/nixos-containers/web",
                "--network-veth",
                "--port=tcp:80:80",
                "--bind-ro=/usr",
                "--setenv=A=b",
                "--capability",
                "CAP_SYS_TIME",
                "--system-call-filter=@swap",
                "/init",
                "--capability=ignored-after-the-payload",
            ]),
        )
        .unwrap();
        assert_eq!(
            p.probe_args,
            [
                "--private-network",
                "--capability=CAP_SYS_TIME",
                "--system-call-filter=@swap"
            ]
        );
        // Names, roots and binds do not change the key; the network and capabilities do.
        let other = plan(
            nspawn(),
            &args(&[
                "-M",
                "db",
                "--private-network",
                "--capability=CAP_SYS_TIME",
                "--system-call-filter=@swap",
                "/init",
            ]),
        )
        .unwrap();
        assert_eq!(p.key, other.key);
        let fewer = plan(nspawn(), &args(&["-M", "db", "--private-network", "/init"])).unwrap();
        assert_ne!(p.key, fewer.key);
        let host_net = plan(nspawn(), &args(&["-M", "db", "/init"])).unwrap();
        assert_ne!(host_net.key, fewer.key);
    }

    #[test]
    fn options_the_probe_cannot_reproduce_mean_no_plan() {
        for risky in [
            "--private-users=pick",
            "-U",
            "--personality=x86",
            "--network-namespace-path=/run/netns/x",
            "--no-new-privileges=yes",
            "--something-new",
        ] {
            assert_eq!(
                plan(nspawn(), &args(&["-M", "a", risky, "/init"])),
                None,
                "{risky}"
            );
        }
        assert_eq!(
            plan(Path::new("/nonexistent/nspawn"), &args(&["/init"])),
            None
        );
    }

    #[test]
    fn programs_of_a_changed_nspawn_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let f = Filters {
            programs: vec![vec![libc::sock_filter {
                code: 6,
                jt: 0,
                jf: 0,
                k: 0x7fff0000,
            }]],
            libraries: Vec::new(),
        };
        let live = plan(nspawn(), &args(&["--private-network", "/init"])).unwrap();
        let gone = plan(nspawn(), &[]).map(|p| Plan {
            key: p.key.replace("/proc/self/exe", "/nonexistent/nspawn"),
            ..p
        });
        let gone = gone.unwrap();
        for p in [&live, &gone] {
            std::fs::write(p.file(dir.path()), f.render(&p.key)).unwrap();
            std::fs::write(p.file(dir.path()).with_extension("lock"), "").unwrap();
        }
        prune(dir.path());
        assert_eq!(live.cached(dir.path()), Some(f));
        assert!(!gone.file(dir.path()).exists());
        assert!(!gone.file(dir.path()).with_extension("lock").exists());
    }

    #[test]
    fn cached_programs_round_trip_and_bad_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("libseccomp.so.2");
        std::fs::write(&lib, "v1").unwrap();
        let f = Filters {
            programs: vec![
                vec![libc::sock_filter {
                    code: 0x20,
                    jt: 0,
                    jf: 0,
                    k: 4,
                }],
                vec![
                    libc::sock_filter {
                        code: 0x15,
                        jt: 1,
                        jf: 0,
                        k: 0xc000003e,
                    },
                    libc::sock_filter {
                        code: 0x06,
                        jt: 0,
                        jf: 0,
                        k: 0x7fff0000,
                    },
                ],
            ],
            libraries: vec![(lib.display().to_string(), identity(&lib).unwrap())],
        };
        let text = f.render("KEY");
        assert_eq!(Filters::parse(&text, "KEY"), Some(f.clone()));
        assert_eq!(Filters::parse(&text, "OTHER"), None);
        assert_eq!(
            Filters::parse(&text.replace("filter 2", "filter 3"), "KEY"),
            None
        );
        assert_eq!(Filters::parse(&format!("{MAGIC}\nKEY\n"), "KEY"), None);
        assert_eq!(Filters::parse(&text.replace("0 4", "0 x"), "KEY"), None);
        // The library changed (an upgrade): the programs are stale.
        std::fs::write(&lib, "v2, longer").unwrap();
        assert_eq!(Filters::parse(&text, "KEY"), None);
    }
}
