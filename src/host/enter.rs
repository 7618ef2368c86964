//! Running a command inside a running container without nsenter: join the cgroup of the
//! container's leader, `setns` into each of its namespaces, drop to its capability bounding set,
//! fork once more so the command is inside the PID namespace too, and exec it with a clean root
//! login environment. No shell is involved: argv goes to execvp as is.
//!
//! What is and is not confined, compared with the leader (the container's PID 1):
//! - cgroup: the command joins the leader's own cgroup in every hierarchy the host mounts
//!   (nspawn's `payload` or the container's `init.scope`), so it is counted, limited and killed
//!   with the container. A hierarchy the host does not mount (a v1 `name=systemd` one left over
//!   in a nested host) cannot be joined and stays as it is.
//! - capabilities: the bounding set is the leader's, and the effective, permitted and inheritable
//!   sets are cut down to it (the ambient set follows: the kernel keeps it within permitted and
//!   inheritable), so neither the command nor what it execs has capabilities the container lacks.
//! - no_new_privs is not set: `root-login` runs `su -l`, and sessions inside must keep setuid
//!   programs (`su`, `passwd`, `sudo`) working, as on the container's own terminals.
//! - seccomp: not applied. nspawn installs its filters on PID 1 only, and a filter cannot be
//!   copied from another process; the command runs without the leader's system call filter.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use nix::sched::{CloneFlags, setns};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, fork};

use super::nspawn::CONTAINER_PATH;
use crate::error::{Context, Error, Result};

/// Namespaces entered, user namespace first (as nsenter does), mount namespace last.
const NAMESPACES: [&str; 7] = ["user", "cgroup", "ipc", "uts", "net", "pid", "mnt"];

/// Is `theirs` (an open namespace file) the namespace `ns` of this process?
fn is_ours(theirs: &File, ns: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let ours = std::fs::metadata(format!("/proc/self/ns/{ns}"));
    matches!((ours, theirs.metadata()), (Ok(a), Ok(b)) if a.ino() == b.ino() && a.dev() == b.dev())
}

/// Everything entering a container's leader takes, gathered before the fork that enters it (so
/// the child only makes system calls): its namespace files (the ones we already share left out,
/// so entering works without a user namespace too), the `cgroup.procs` of its cgroups, opened
/// for writing, and its capability bounding set.
pub struct Entry {
    namespaces: Vec<File>,
    cgroups: Vec<File>,
    bounding: u64,
    last_cap: u32,
}

impl Entry {
    pub fn open(leader: i32) -> Result<Entry> {
        let mut namespaces: Vec<File> = Vec::new();
        for ns in NAMESPACES {
            let path = format!("/proc/{leader}/ns/{ns}");
            let file = File::open(&path).context(|| format!("opening {path}"))?;
            if !is_ours(&file, ns) {
                namespaces.push(file);
            }
        }
        let mut cgroups = Vec::new();
        for dir in leader_cgroups(leader)? {
            let procs = dir.join("cgroup.procs");
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&procs)
                .context(|| {
                    format!("opening {} to join the container's cgroup", procs.display())
                })?;
            cgroups.push(file);
        }
        let status_path = format!("/proc/{leader}/status");
        let status =
            std::fs::read_to_string(&status_path).context(|| format!("reading {status_path}"))?;
        let bounding = cap_bounding(&status).ok_or_else(|| {
            Error::io(
                format!("reading CapBnd in {status_path}"),
                std::io::Error::from(std::io::ErrorKind::InvalidData),
            )
        })?;
        Ok(Entry {
            namespaces,
            cgroups,
            bounding,
            last_cap: last_cap()?,
        })
    }

    /// Join the leader's cgroups, enter its namespaces, and drop to its capabilities. Only
    /// system calls, no allocation: for a child between fork and exec, or for a single-threaded
    /// process that stays inside.
    fn enter(&self) -> std::io::Result<()> {
        // Before the cgroup and user namespaces are entered: the move is checked against this
        // process's view and host credentials.
        for file in &self.cgroups {
            // SAFETY: write(2) of one byte from a static buffer; "0" means the writer.
            if unsafe { libc::write(file.as_raw_fd(), b"0".as_ptr().cast(), 1) } != 1 {
                return Err(std::io::Error::last_os_error());
            }
        }
        for file in &self.namespaces {
            setns(file.as_fd(), CloneFlags::empty())?;
        }
        // After the user namespace: entering one gives a full bounding set.
        drop_capabilities(self.bounding, self.last_cap)
    }
}

/// The capability bounding set in the text of `/proc/PID/status`.
fn cap_bounding(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
}

/// The highest capability number this kernel knows.
fn last_cap() -> Result<u32> {
    const PATH: &str = "/proc/sys/kernel/cap_last_cap";
    let text = std::fs::read_to_string(PATH).context(|| format!("reading {PATH}"))?;
    text.trim().parse().map_err(|_| {
        Error::io(
            format!("reading {PATH}"),
            std::io::Error::from(std::io::ErrorKind::InvalidData),
        )
    })
}

/// Drop every capability not in `bounding` from the bounding set, and cut the effective,
/// permitted and inheritable sets down to it. Only system calls.
fn drop_capabilities(bounding: u64, last_cap: u32) -> std::io::Result<()> {
    for cap in 0..=last_cap.min(63) {
        if bounding & (1 << cap) == 0 {
            // SAFETY: prctl with integer arguments only.
            if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capget(2) with a v3 header writes two data structs, which `data` holds.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    for (i, d) in data.iter_mut().enumerate() {
        let mask = (bounding >> (32 * i)) as u32;
        d.effective &= mask;
        d.permitted &= mask;
        d.inheritable &= mask;
    }
    // SAFETY: capset(2) reads the header and two data structs.
    if unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The host directories of the leader's own cgroups, one per hierarchy mounted here in which it
/// is not in our cgroup (under nspawn that is its `payload` cgroup, or the container's
/// `init.scope` once its systemd moved itself there).
fn leader_cgroups(leader: i32) -> Result<Vec<PathBuf>> {
    let read = |path: &str| std::fs::read_to_string(path).context(|| format!("reading {path}"));
    let theirs = read(&format!("/proc/{leader}/cgroup"))?;
    let ours = read("/proc/self/cgroup")?;
    let mounts = cgroup_mounts(&read("/proc/self/mountinfo")?);
    let mut dirs = Vec::new();
    for line in theirs.lines() {
        let Some((hierarchy, path)) = hierarchy_and_path(line) else {
            continue;
        };
        let same = ours
            .lines()
            .filter_map(hierarchy_and_path)
            .any(|(h, p)| h == hierarchy && p == path);
        if same {
            continue;
        }
        let found = mounts.iter().find_map(|m| {
            let within = path.strip_prefix(m.root.trim_end_matches('/'))?;
            (m.serves(hierarchy) && (within.is_empty() || within.starts_with('/')))
                .then(|| m.point.join(within.trim_start_matches('/')))
        });
        if let Some(dir) = found {
            dirs.push(dir);
        }
    }
    Ok(dirs)
}

/// `(controllers, path)` of a `/proc/PID/cgroup` line `ID:CONTROLLERS:PATH` (empty controllers
/// for the unified hierarchy).
fn hierarchy_and_path(line: &str) -> Option<(&str, &str)> {
    let (_, rest) = line.split_once(':')?;
    rest.split_once(':')
}

/// A cgroup file system mounted here: the unified one (no controllers) or a v1 one.
#[derive(Debug, PartialEq)]
struct CgroupMount {
    point: PathBuf,
    /// The cgroup the mount shows at its mount point.
    root: String,
    /// `None` for cgroup2; a v1 hierarchy's controllers and `name=` option.
    options: Option<Vec<String>>,
}

impl CgroupMount {
    /// Does this mount show `hierarchy` (the controllers field of a `/proc/PID/cgroup` line)?
    fn serves(&self, hierarchy: &str) -> bool {
        match &self.options {
            None => hierarchy.is_empty(),
            Some(options) => {
                !hierarchy.is_empty()
                    && hierarchy.split(',').all(|c| options.iter().any(|o| o == c))
            }
        }
    }
}

/// The cgroup mounts in the text of `/proc/self/mountinfo`.
fn cgroup_mounts(mountinfo: &str) -> Vec<CgroupMount> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = left.split(' ').collect();
        let mut right = right.split(' ');
        let (Some(fstype), Some(_source), Some(super_options)) =
            (right.next(), right.next(), right.next())
        else {
            continue;
        };
        let (Some(root), Some(point)) = (fields.get(3), fields.get(4)) else {
            continue;
        };
        let options = match fstype {
            "cgroup2" => None,
            "cgroup" => Some(super_options.split(',').map(str::to_string).collect()),
            _ => continue,
        };
        out.push(CgroupMount {
            point: PathBuf::from(unescape(point)),
            root: unescape(root),
            options,
        });
    }
    out
}

/// A mountinfo field with its octal escapes (`\040` for a space) undone.
fn unescape(field: &str) -> String {
    String::from_utf8_lossy(&crate::files::mountinfo::unescape(field.as_bytes())).into_owned()
}

/// How the process that runs inside is set up after it entered the namespaces.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// The working directory (`/` when it does not exist).
    pub dir: &'static str,
    /// Start a new session with stdin (a terminal) as its controlling terminal, as getty does
    /// for login: the command is then the session leader and gets the terminal's hangup.
    pub controlling_tty: bool,
}

/// What `run` uses: root's home, the caller's session.
pub const ROOT_COMMAND: Setup = Setup {
    dir: "/root",
    controlling_tty: false,
};

/// A `Command` that runs `argv` inside the container whose PID 1 is `leader`, with a clean
/// root login environment.
pub fn command(leader: i32, argv: &[String]) -> Result<Command> {
    let mut cmd = command_with(Entry::open(leader)?, argv, ROOT_COMMAND)?;
    root_environment(&mut cmd);
    Ok(cmd)
}

/// Clear the environment and set root's login variables (plus the caller's terminal ones).
pub fn root_environment(cmd: &mut Command) {
    cmd.env_clear();
    for (key, value) in [
        ("HOME", "/root"),
        ("USER", "root"),
        ("LOGNAME", "root"),
        ("SHELL", "/bin/bash"),
        ("PATH", CONTAINER_PATH),
    ] {
        cmd.env(key, value);
    }
    for key in ["TERM", "LANG", "COLORTERM"] {
        if let Some(value) = std::env::var_os(key) {
            cmd.env(key, value);
        }
    }
}

/// Who a command runs as inside: numeric IDs resolved from the container's own files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (the container's /etc/group lists it in).
    pub groups: Vec<u32>,
    pub home: String,
    pub shell: String,
}

/// How `run` runs a command beyond its argv (`--user`, `--chdir`, `--setenv`, `--pty`).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// A user name or UID of the container's /etc/passwd; root when None.
    pub user: Option<String>,
    /// The working directory inside; the user's home (else `/`) when None.
    pub cwd: Option<String>,
    /// Set after the login environment, in order.
    pub env: Vec<(String, String)>,
    /// On a terminal allocated inside the container rather than the caller's stdio.
    pub pty: bool,
}

impl RunOptions {
    pub fn is_default(&self) -> bool {
        self.user.is_none() && self.cwd.is_none() && self.env.is_empty() && !self.pty
    }
}

/// What the entered child does besides [`Setup`]: become `identity`, enter `dir` (failing
/// with a message when it cannot), both prepared before the fork.
#[derive(Debug, Default)]
pub struct As {
    pub identity: Option<Identity>,
    pub dir: Option<std::ffi::CString>,
    /// A `dir` that cannot be entered fails the command (else `/` is taken).
    pub required: bool,
}

/// The login environment of `identity` (root's when None): HOME, USER, LOGNAME, SHELL, PATH,
/// the caller's TERM, LANG and COLORTERM, then `env`.
pub fn login_environment(cmd: &mut Command, identity: Option<&Identity>, env: &[(String, String)]) {
    root_environment(cmd);
    if let Some(id) = identity {
        cmd.env("HOME", &id.home)
            .env("USER", &id.name)
            .env("LOGNAME", &id.name)
            .env("SHELL", &id.shell);
    }
    for (key, value) in env {
        cmd.env(key, value);
    }
}

/// A `Command` that enters the container (see [`Entry`]) and runs `argv` there, set up as `setup` says; its
/// environment is the caller's until the caller sets one. stdio is whatever the caller gives
/// the `Command` (std sets it up before the pre-exec hook runs).
pub fn command_with(entry: Entry, argv: &[String], setup: Setup) -> Result<Command> {
    command_as(entry, argv, setup, As::default())
}

/// [`command_with`], run as `how` says.
pub fn command_as(entry: Entry, argv: &[String], setup: Setup, how: As) -> Result<Command> {
    let Some((program, args)) = argv.split_first() else {
        return Err(Error::Usage("no command given to run".into()));
    };
    let mut cmd = Command::new(program);
    cmd.args(args);
    // SAFETY: between fork and exec this only makes raw syscalls (write, setns, capget, capset,
    // fork, waitpid, chdir, prctl, setsid, ioctl, _exit) and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            entry.enter()?;
            // setns(pid) applies to children only: fork so the command is inside the container's
            // PID namespace. This process stays outside, waits, and passes the status on.
            match fork()? {
                ForkResult::Child => {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    if setup.controlling_tty {
                        nix::unistd::setsid()?;
                        if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    if let Some(id) = &how.identity {
                        // Groups first: after setuid there is no privilege left to change them.
                        if libc::setgroups(id.groups.len(), id.groups.as_ptr()) < 0
                            || libc::setgid(id.gid) < 0
                            || libc::setuid(id.uid) < 0
                        {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    match &how.dir {
                        Some(dir) => {
                            if libc::chdir(dir.as_ptr()) < 0
                                && (how.required || libc::chdir(c"/".as_ptr()) < 0)
                            {
                                const MESSAGE: &[u8] =
                                    b"ncsh: --chdir: cannot enter that directory in the container\n";
                                libc::write(2, MESSAGE.as_ptr().cast(), MESSAGE.len());
                                libc::_exit(1);
                            }
                        }
                        None => {
                            if nix::unistd::chdir(Path::new(setup.dir)).is_err() {
                                let _ = nix::unistd::chdir(Path::new("/"));
                            }
                        }
                    }
                    Ok(())
                }
                ForkResult::Parent { child } => {
                    // Drop every inherited descriptor above stdio, above all std's exec-status
                    // pipe: while this process holds it, the caller's spawn() would not return
                    // until the command ended (and a command reading a pipe would never end).
                    libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
                    // Like a shell waiting for a foreground job: ^C is for the command.
                    libc::signal(libc::SIGINT, libc::SIG_IGN);
                    libc::signal(libc::SIGQUIT, libc::SIG_IGN);
                    loop {
                        match waitpid(child, None) {
                            Ok(WaitStatus::Exited(_, code)) => libc::_exit(code),
                            Ok(WaitStatus::Signaled(_, sig, _)) => libc::_exit(128 + sig as i32),
                            Err(nix::errno::Errno::EINTR) | Ok(_) => continue,
                            Err(_) => libc::_exit(255),
                        }
                    }
                }
            }
        });
    }
    Ok(cmd)
}

/// The exit code of a finished command (128+N for a signal, as shells report it).
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(255)
}

pub fn spawn_error(program: &str, e: std::io::Error) -> Error {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::NotFound => Error::CommandNotRun {
            program: program.to_string(),
            not_found: true,
        },
        // EACCES: not executable, a directory, or on a noexec mount; ENOEXEC: no format.
        ErrorKind::PermissionDenied => Error::CommandNotRun {
            program: program.to_string(),
            not_found: false,
        },
        _ if e.raw_os_error() == Some(libc::ENOEXEC) => Error::CommandNotRun {
            program: program.to_string(),
            not_found: false,
        },
        _ => Error::io(format!("running {program} in the container"), e),
    }
}

/// Is this process single-threaded (so it may `setns` into a mount namespace itself)?
fn single_threaded() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:").map(|n| n.trim() == "1"))
        })
        .unwrap_or(false)
}

/// `program` as execvp would find it in `path` (an executable regular file); `program`
/// itself when it has a slash or is not found (the spawn then reports it).
fn find_program(program: &str, path: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    if !program.contains('/') && !program.is_empty() {
        for dir in path.split(':').filter(|d| !d.is_empty()) {
            let candidate = Path::new(dir).join(program);
            if std::fs::metadata(&candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            {
                return candidate;
            }
        }
    }
    std::path::PathBuf::from(program)
}

/// Like [`run_attached`], but this process enters the namespaces itself and then starts the
/// command with one plain spawn: one fork less, which is most of the cost of a short `run`
/// (nsenter works the same way). Afterwards this process lives in the container's namespaces,
/// so it is only for a caller that exits right after (the `run` verb): when the command ran,
/// this process exits with its code. Falls back to [`run_attached`] when other threads exist.
pub fn run_attached_in_place(leader: i32, argv: &[String]) -> Result<i32> {
    let Some((program, args)) = argv.split_first() else {
        return Err(Error::Usage("no command given to run".into()));
    };
    if !single_threaded() {
        return run_attached(leader, argv);
    }
    Entry::open(leader)?
        .enter()
        .map_err(|e| Error::io("entering the container", e))?;
    // Looked up here: with a PATH of its own in the environment, std would fork and search
    // in the child; with a path it spawns with vfork (posix_spawn), which does not copy this
    // big process's page tables.
    let mut cmd = Command::new(find_program(program, CONTAINER_PATH));
    cmd.args(args);
    root_environment(&mut cmd);
    cmd.current_dir(if Path::new("/root").is_dir() {
        "/root"
    } else {
        "/"
    });
    let status = cmd.status().map_err(|e| spawn_error(program, e))?;
    // Nothing is left to do in the container's namespaces: exit with the command's code at
    // once, without tearing down the engine and the rest (a tenth of a short `run`).
    use std::io::Write;
    let _ = std::io::stdout().flush();
    std::process::exit(exit_code(status))
}

/// Run `work` in a child process that entered the container whose PID 1 is `leader` once (see
/// [`Entry`]) and whose working directory is root's home (`/` when it is missing), as
/// [`run_captured`]'s commands start; the commands `work` starts with [`run_captured_here`]
/// are inside the container's PID namespace too. What `work` returns comes back as bytes.
///
/// One entry for many commands: joining the leader's cgroups takes the kernel's cgroup
/// rwsem for writing, which waits for an RCU grace period, 8–16 ms here, once per entry.
/// None when this process has other threads: a forked copy of it could then not run Rust code
/// safely (an allocator lock held by another thread would stay held in the child).
pub fn in_child(leader: i32, work: impl FnOnce() -> Vec<u8>) -> Option<Result<Vec<u8>>> {
    if !single_threaded() {
        return None;
    }
    Some(in_child_single_threaded(leader, work))
}

fn in_child_single_threaded(leader: i32, work: impl FnOnce() -> Vec<u8>) -> Result<Vec<u8>> {
    use std::io::{Read, Write};
    let entry = Entry::open(leader)?;
    let (mut reader, writer) = std::io::pipe().map_err(|e| Error::io("making a pipe", e))?;
    // SAFETY: this process is single-threaded, so the child is a whole copy of it and may run
    // any code; it leaves with _exit, running no destructor and flushing no buffer of ours.
    match unsafe { fork() }.map_err(|e| Error::sys("forking to enter the container", e))? {
        ForkResult::Child => {
            drop(reader);
            let mut writer = writer;
            let code = match entry.enter() {
                Ok(()) => {
                    if std::env::set_current_dir(ROOT_COMMAND.dir).is_err() {
                        let _ = std::env::set_current_dir("/");
                    }
                    let out = work();
                    if writer.write_all(&out).is_ok() { 0 } else { 1 }
                }
                Err(e) => {
                    let _ = write!(writer, "entering the container: {e}");
                    2
                }
            };
            // SAFETY: _exit(2) ends the child without running the parent's clean-ups.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(writer);
            let mut out = Vec::new();
            let read = reader.read_to_end(&mut out);
            let status = loop {
                match waitpid(child, None) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    other => break other,
                }
            };
            read.map_err(|e| Error::io("reading from the process in the container", e))?;
            match status {
                Ok(WaitStatus::Exited(_, 0)) => Ok(out),
                Ok(WaitStatus::Exited(_, 2)) => Err(Error::io(
                    String::from_utf8_lossy(&out).into_owned(),
                    std::io::Error::other("the process in the container could not enter it"),
                )),
                other => Err(Error::io(
                    format!("the process in the container ended: {other:?}"),
                    std::io::Error::other("no result"),
                )),
            }
        }
    }
}

/// Enter the container whose PID 1 is `leader` with this process itself (see [`Entry`]), in
/// root's home (`/` when it is missing): for a single-threaded process that only runs commands
/// inside from then on ([`run_captured_here`]), such as `ncsh __switch`.
pub fn enter_here(leader: i32) -> Result<()> {
    if !single_threaded() {
        return Err(Error::io(
            "entering the container",
            std::io::Error::other("other threads run in this process"),
        ));
    }
    Entry::open(leader)?
        .enter()
        .map_err(|e| Error::io("entering the container", e))?;
    if std::env::set_current_dir(ROOT_COMMAND.dir).is_err() {
        let _ = std::env::set_current_dir("/");
    }
    Ok(())
}

/// In a process that entered the container ([`in_child`]): run `argv` there with stdin closed,
/// the output captured and root's login environment, as [`run_captured`] does from outside.
pub fn run_captured_here(argv: &[String]) -> Result<Output> {
    let Some((program, args)) = argv.split_first() else {
        return Err(Error::Usage("no command given to run".into()));
    };
    // With a path, std spawns with vfork (posix_spawn) rather than copying this process.
    let mut cmd = Command::new(find_program(program, CONTAINER_PATH));
    cmd.arg0(program).args(args);
    root_environment(&mut cmd);
    capture(&mut cmd, argv, None)
}

/// Run with stdin, stdout and stderr passed through; the command's exit code.
pub fn run_attached(leader: i32, argv: &[String]) -> Result<i32> {
    let mut cmd = command(leader, argv)?;
    let status = cmd.status().map_err(|e| spawn_error(&argv[0], e))?;
    Ok(exit_code(status))
}

/// A `Command` for `run` with `opts` (the identity already resolved from the container): in
/// `--chdir`'s directory (an error when it cannot be entered), else the user's home (`/` when
/// it is missing, as login does), else root's.
/// Where a command starts: `--chdir` (required to exist), else the user's home (`/` when it
/// is missing); and whether it must exist.
pub fn start_dir(
    opts: &RunOptions,
    identity: Option<&Identity>,
) -> Result<(Option<std::ffi::CString>, bool)> {
    let (dir, required) = match (&opts.cwd, identity) {
        (Some(cwd), _) => (Some(cwd.clone()), true),
        (None, Some(id)) => (Some(id.home.clone()), false),
        (None, None) => (None, false),
    };
    let dir = dir
        .map(|d| {
            std::ffi::CString::new(d.clone())
                .map_err(|_| Error::Usage(format!("--chdir ‘{d}’ holds a NUL byte")))
        })
        .transpose()?;
    Ok((dir, required))
}

pub fn command_for(
    leader: i32,
    argv: &[String],
    opts: &RunOptions,
    identity: Option<Identity>,
    setup: Setup,
) -> Result<Command> {
    let (dir, required) = start_dir(opts, identity.as_ref())?;
    let mut cmd = command_as(
        Entry::open(leader)?,
        argv,
        setup,
        As {
            identity: identity.clone(),
            dir,
            required,
        },
    )?;
    login_environment(&mut cmd, identity.as_ref(), &opts.env);
    Ok(cmd)
}

/// Run with stdin closed and the output captured.
pub fn run_captured(leader: i32, argv: &[String], stdin: Option<&[u8]>) -> Result<Output> {
    let mut cmd = command(leader, argv)?;
    capture(&mut cmd, argv, stdin)
}

/// Run `cmd` (for `argv`) with the output captured and `stdin` fed to it (closed when None).
pub fn capture(cmd: &mut Command, argv: &[String], stdin: Option<&[u8]>) -> Result<Output> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().map_err(|e| spawn_error(&argv[0], e))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let input = input.to_vec();
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = pipe.write_all(&input);
        });
    }
    child
        .wait_with_output()
        .map_err(|e| spawn_error(&argv[0], e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
25 30 0:22 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw,mode=755
26 25 0:23 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
27 25 0:24 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
28 25 0:25 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
29 30 0:26 /sub /mnt/my\\040cg rw - cgroup2 cgroup2 rw
";

    #[test]
    fn cgroup_mounts_are_found_and_matched_to_hierarchies() {
        let mounts = cgroup_mounts(MOUNTINFO);
        let points: Vec<_> = mounts
            .iter()
            .map(|m| m.point.display().to_string())
            .collect();
        assert_eq!(
            points,
            [
                "/sys/fs/cgroup/cpu,cpuacct",
                "/sys/fs/cgroup/systemd",
                "/sys/fs/cgroup/unified",
                "/mnt/my cg"
            ]
        );
        assert_eq!(mounts[3].root, "/sub");
        assert!(mounts[0].serves("cpu,cpuacct") && mounts[0].serves("cpu"));
        assert!(!mounts[0].serves("memory") && !mounts[0].serves(""));
        assert!(mounts[1].serves("name=systemd") && !mounts[1].serves("cpu"));
        assert!(mounts[2].serves("") && !mounts[2].serves("name=systemd"));
    }

    #[test]
    fn cgroup_lines_and_the_bounding_set_parse() {
        assert_eq!(
            hierarchy_and_path("0::/ncsh-c/payload/init.scope"),
            Some(("", "/ncsh-c/payload/init.scope"))
        );
        assert_eq!(
            hierarchy_and_path("9:name=systemd:/a:b"),
            Some(("name=systemd", "/a:b"))
        );
        assert_eq!(hierarchy_and_path("garbage"), None);
        let status = "Name:\tsystemd\nCapEff:\t0000000000000000\nCapBnd:\t00000000fdecafff\n";
        assert_eq!(cap_bounding(status), Some(0xfdec_afff));
        assert_eq!(cap_bounding("CapBnd:\tzz\n"), None);
        assert_eq!(cap_bounding(""), None);
    }
}
