//! The standalone driver (ARCHITECTURE.md, "nspawn without systemd as PID 1"): ncsh supervises
//! `systemd-nspawn --register=no --keep-unit` itself, from a small detached supervisor process
//! (this binary, `ncsh __supervise NAME`).
//!
//! Runtime state lives in `RUN/NAME/`:
//! - `supervisor.lock`: a POSIX write lock the supervisor holds for its whole life. `F_GETLK`
//!   tells whether it is alive and its PID, without taking the lock; a killed supervisor releases
//!   it, so state never lies after a SIGKILL.
//! - `leader`: the container's PID 1 (from nspawn's `X_NSPAWN_LEADER_PID`).
//! - `ready`: present once nspawn reported `READY=1` (the container reached multi-user.target).
//! - `notify`: the NOTIFY_SOCKET nspawn reports to; `console.log`: nspawn's output.
//!
//! `start` spawns the supervisor and waits on a pipe for its report: `R` when ready, `E<text>`
//! when the container could not start. `stop` sends the supervisor SIGTERM (it forwards a clean
//! poweroff to nspawn, then kills after a timeout); `terminate` kills the leader at once. Whoever
//! finds a dead supervisor's leftovers (cgroups, host link, nspawn's propagate directory) removes
//! them before going on.
//!
//! The cgroup `ncsh-NAME`, the link `ve-NAME` and nspawn's `propagate/NAME` are host-wide, shared
//! by every `NCSH_PREFIX`: a supervisor records in `/run/ncsh-owners/NAME` which conf it runs
//! (see [`Owner`]), and no other conf's ncsh kills, deletes or reuses them while it lives.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal, kill};
use nix::unistd::Pid;

use super::cgroup::Cgroups;
use super::nspawn::{self, Supervision};
use super::{Driver, Status, alive};
use super::{deadline_after, timeout_from_env};
use super::{net, nft, seccomp};
use crate::builder::base;
use crate::container::limits::Limits;
use crate::container::{Conf, Paths, store, unit};
use crate::error::{Context, Error, Result};
use crate::files::Root;

/// The nspawn binary; `NCSH_NSPAWN` overrides it (tests use it to simulate a missing one).
fn nspawn_binary() -> PathBuf {
    std::env::var_os("NCSH_NSPAWN")
        .map_or_else(|| PathBuf::from("/usr/bin/systemd-nspawn"), PathBuf::from)
}
const READY_FD_VAR: &str = "NCSH_READY_FD";
/// How long a clean poweroff may take before the container is killed (`NCSH_STOP_TIMEOUT`).
const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `start` waits for READY (NixOS: `TimeoutStartSec=1min`; `NCSH_START_TIMEOUT`).
const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(60);

/// Files of one container's runtime directory.
struct Runtime {
    dir: PathBuf,
}

impl Runtime {
    fn new(paths: &Paths, name: &str) -> Runtime {
        Runtime {
            dir: paths.runtime(name),
        }
    }
    fn lock(&self) -> PathBuf {
        self.dir.join("supervisor.lock")
    }
    fn leader(&self) -> PathBuf {
        self.dir.join("leader")
    }
    fn ready(&self) -> PathBuf {
        self.dir.join("ready")
    }
    fn notify(&self) -> PathBuf {
        self.dir.join("notify")
    }
    fn console(&self) -> PathBuf {
        self.dir.join("console.log")
    }
    /// Present while nspawn may have put forwarded ports into nftables (it ran with `--port`):
    /// only then does a clean-up ask nft, so a container without ports costs no nft process.
    fn forwards(&self) -> PathBuf {
        self.dir.join("forwards")
    }

    /// The PID of the live supervisor, if any (F_GETLK: no lock is taken).
    fn supervisor(&self) -> Option<Pid> {
        let file = File::open(self.lock()).ok()?;
        let mut probe = whole_file_write_lock();
        // SAFETY: F_GETLK only writes into `probe`, a valid flock struct.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut probe) };
        (rc == 0 && probe.l_type != libc::F_UNLCK as libc::c_short)
            .then(|| Pid::from_raw(probe.l_pid))
    }

    fn read_leader(&self) -> Option<Pid> {
        fs::read_to_string(self.leader())
            .ok()?
            .trim()
            .parse()
            .ok()
            .map(Pid::from_raw)
    }

    /// Remove the per-run files (not the lock file, which a new supervisor reuses).
    fn clear(&self) {
        for path in [self.leader(), self.ready(), self.notify(), self.forwards()] {
            let _ = fs::remove_file(path);
        }
    }

    fn console_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(self.console()).unwrap_or_default();
        let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// A POSIX write lock over the whole file (for F_GETLK and F_SETLK).
fn whole_file_write_lock() -> libc::flock {
    libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    }
}

/// Wait until process `pid`, the supervisor holding `runtime`'s lock, has exited or `deadline`
/// passed, woken by the kernel at its exit (a pidfd): no polling interval on the path of a
/// `stop`. Returns at once where pidfds are missing (Linux < 5.3) or the lock changed hands; the
/// caller checks the lock itself either way.
fn wait_for_process_exit(pid: Pid, runtime: &Runtime, deadline: Option<Instant>) {
    // SAFETY: pidfd_open takes a PID and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    let Ok(fd) = i32::try_from(fd) else { return };
    if fd < 0 {
        return;
    }
    // SAFETY: a descriptor just returned to us and owned by nothing else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd) };
    // The PID could have been reused between the lock's probe and pidfd_open: it is the
    // supervisor's only while that process still holds the lock.
    if runtime.supervisor() != Some(pid) {
        return;
    }
    let _ = wait_readable(pidfd.as_raw_fd(), deadline);
}

/// Wait until `fd` is readable (true) or `deadline` passed (false; None waits without end),
/// through interruptions by signals.
fn wait_readable(fd: std::os::fd::RawFd, deadline: Option<Instant>) -> std::io::Result<bool> {
    loop {
        let ms = deadline.map_or(-1, |d| {
            let left = d.saturating_duration_since(Instant::now()).as_millis();
            i32::try_from(left).unwrap_or(i32::MAX)
        });
        let mut pfd = [libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: one valid pollfd for the duration of the call.
        match unsafe { libc::poll(pfd.as_mut_ptr(), 1, ms) } {
            0 => return Ok(false),
            n if n > 0 => return Ok(true),
            _ => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

/// Wait until `done` holds or the timeout passes; true if it held.
fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = deadline_after(timeout);
    loop {
        if done() {
            return true;
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Remove what a dead supervisor left: processes and cgroups, the host link, nspawn's
/// propagate directory, runtime files.
fn remove_leftovers(paths: &Paths, name: &str) -> Result<()> {
    let runtime = Runtime::new(paths, name);
    if Owner::elsewhere(paths, name).is_some() {
        // Those host-wide names are another conf's running container: only our files go.
        runtime.clear();
        return remove_image_locks(paths, name);
    }
    if let Some(leader) = runtime.read_leader() {
        // Only trust the recorded leader if it is still in our cgroup.
        if Cgroups::for_container(name)
            .processes()
            .contains(&leader.as_raw())
        {
            let _ = kill(leader, Signal::SIGKILL);
        }
    }
    let cgroups = Cgroups::for_container(name);
    if cgroups.exists() {
        cgroups.kill_and_remove(None, Duration::from_secs(5))?;
    }
    net::remove_host_link(name)?;
    remove_forwards(paths, name)?;
    remove_nspawn_files(paths, name)?;
    Owner::release(paths, name);
    runtime.clear();
    Ok(())
}

/// The forwarded ports of a container that is down: what a killed nspawn left in nspawn's map,
/// and ncsh's loopback table (see [`super::nft`]). Without a conf there is no address to look for.
fn remove_forwards(paths: &Paths, name: &str) -> Result<()> {
    let conf = crate::container::ContainerName::existing(name)
        .and_then(|n| store::load(paths, &n))
        .unwrap_or_default();
    remove_forwards_of(&Runtime::new(paths, name), name, &conf)
}

/// [`nft::remove_forwards`] when the last run forwarded ports or the conf forwards some now.
fn remove_forwards_of(runtime: &Runtime, name: &str, conf: &Conf) -> Result<()> {
    if conf.non_empty("HOST_PORT").is_none() && !runtime.forwards().exists() {
        return Ok(());
    }
    nft::remove_forwards(name, conf)?;
    let _ = fs::remove_file(runtime.forwards());
    Ok(())
}

/// Who uses the host-wide names of container `name`: a record `PID CONF` written by the
/// supervisor that runs it.
struct Owner;

const OWNERS_DIR: &str = "/run/ncsh-owners";

impl Owner {
    fn file(name: &str) -> PathBuf {
        Path::new(OWNERS_DIR).join(name)
    }

    fn read(name: &str) -> Option<(Pid, String)> {
        let text = fs::read_to_string(Self::file(name)).ok()?;
        let (pid, conf) = text.trim_end_matches('\n').split_once(' ')?;
        Some((Pid::from_raw(pid.parse().ok()?), conf.to_string()))
    }

    /// "the container of CONF (supervisor PID N)" when a live supervisor of another conf than
    /// ours holds the names.
    fn elsewhere(paths: &Paths, name: &str) -> Option<String> {
        let (pid, conf) = Self::read(name)?;
        let ours = paths.conf(name).display().to_string();
        let supervising = fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
            let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
            args.windows(2)
                .any(|w| w[0] == b"__supervise" && w[1] == name.as_bytes())
        });
        (conf != ours && supervising)
            .then(|| format!("the container of {conf} (supervisor PID {pid})"))
    }

    /// Record that this supervisor runs `name` from our conf; refused while another lives.
    fn claim(paths: &Paths, name: &str) -> Result<()> {
        if let Some(other) = Self::elsewhere(paths, name) {
            return Err(in_use_elsewhere(name, &other));
        }
        crate::files::ensure_dir(Path::new(OWNERS_DIR), 0o755)?;
        let record = format!("{} {}\n", std::process::id(), paths.conf(name).display());
        crate::files::write_atomic(&Self::file(name), &record, 0o644)
    }

    /// Drop the record if it is ours or its supervisor is gone.
    fn release(paths: &Paths, name: &str) {
        if Self::elsewhere(paths, name).is_none() {
            let _ = fs::remove_file(Self::file(name));
        }
    }
}

fn in_use_elsewhere(name: &str, other: &str) -> Error {
    Error::StartFailed {
        name: name.into(),
        detail: format!(
            "the host-wide cgroup ncsh-{name} and link ve-{name} belong to {other}: stop that one \
             or give this container another name"
        ),
    }
}

/// nspawn's own files for a container: on a systemd host they live on a tmpfs `/run`; here
/// nothing would ever remove them (see [`nspawn::remove_machine_files`]).
fn remove_nspawn_files(paths: &Paths, name: &str) -> Result<()> {
    nspawn::remove_machine_files(name, &paths.root(name))
}

/// nspawn's image locks of our root (its own, whatever else uses the name).
fn remove_image_locks(paths: &Paths, name: &str) -> Result<()> {
    nspawn::remove_image_locks(&paths.root(name))
}

pub struct Standalone {
    paths: Paths,
}

impl Standalone {
    pub fn new(paths: Paths) -> Standalone {
        Standalone { paths }
    }

    fn preflight() -> Result<()> {
        if !nspawn_binary().exists() {
            return Err(Error::MissingTool {
                tool: "systemd-nspawn".into(),
                package: "systemd-container",
            });
        }
        net::ip_binary()?;
        Ok(())
    }

    /// After a failed start: once the supervisor is gone, nothing of the run stays (its console
    /// lines are in the error).
    fn clean_failed_start(&self, name: &str, runtime: &Runtime) {
        if self
            .wait_for_exit(name, runtime, Duration::from_secs(10))
            .is_ok()
        {
            let _ = crate::files::remove_path(&runtime.dir);
        }
    }

    fn wait_for_exit(&self, name: &str, runtime: &Runtime, timeout: Duration) -> Result<()> {
        let deadline = deadline_after(timeout);
        if let Some(supervisor) = runtime.supervisor() {
            wait_for_process_exit(supervisor, runtime, deadline);
        }
        let left = deadline.map_or(Duration::MAX, |d| {
            d.saturating_duration_since(Instant::now())
        });
        if wait_until(left, || runtime.supervisor().is_none()) {
            super::phase(&format!("{name}: supervisor gone"));
            return remove_leftovers(&self.paths, name);
        }
        Err(Error::StopFailed {
            name: name.into(),
            detail: format!("the supervisor did not exit within {timeout:?}"),
        })
    }
}

impl Driver for Standalone {
    fn name(&self) -> &'static str {
        "standalone"
    }

    fn status(&self, name: &str) -> Status {
        let runtime = Runtime::new(&self.paths, name);
        match (runtime.supervisor(), runtime.read_leader()) {
            (Some(_), Some(leader)) if runtime.ready().exists() && alive(leader) => Status::Up,
            _ => Status::Down,
        }
    }

    fn leader(&self, name: &str) -> Option<i32> {
        let runtime = Runtime::new(&self.paths, name);
        runtime.supervisor()?;
        runtime.read_leader().filter(|p| alive(*p)).map(Pid::as_raw)
    }

    fn start(&self, name: &str, conf: &Conf) -> Result<()> {
        // The supervisor reads the conf itself, so what it runs is what is on disk.
        Self::preflight()?;
        let runtime = Runtime::new(&self.paths, name);
        // The container's timeoutStartSec, else NCSH_START_TIMEOUT, else NixOS's 1min.
        let own_timeout = unit::start_timeout(conf)?;
        let timeout = match own_timeout {
            Some(t) if t.is_zero() => super::MAX_TIMEOUT,
            Some(t) => t.min(super::MAX_TIMEOUT),
            None => timeout_from_env("NCSH_START_TIMEOUT", DEFAULT_START_TIMEOUT)?,
        };
        let whose = if own_timeout.is_some() {
            format!(
                " (its timeoutStartSec: {} in its conf)",
                unit::TIMEOUT_START_SEC
            )
        } else {
            String::new()
        };
        // The supervisor reads this one; refuse a bad value now, while someone sees the error.
        timeout_from_env("NCSH_STOP_TIMEOUT", DEFAULT_STOP_TIMEOUT)?;
        if runtime.supervisor().is_some() {
            // Already running, starting or stopping: like `systemctl start`, wait for it to be
            // up, or for it to go away and then start afresh.
            wait_until(timeout, || {
                self.status(name) == Status::Up || runtime.supervisor().is_none()
            });
            if self.status(name) == Status::Up {
                return Ok(());
            }
            if runtime.supervisor().is_some() {
                return Err(Error::StartFailed {
                    name: name.into(),
                    detail: format!(
                        "another start or stop of it did not finish within {timeout:?}"
                    ),
                });
            }
        }
        if let Some(other) = Owner::elsewhere(&self.paths, name) {
            return Err(in_use_elsewhere(name, &other));
        }
        remove_leftovers(&self.paths, name)?;
        super::phase(&format!("standalone start {name}: leftovers removed"));
        base::ensure_skeleton(&Root::open(&self.paths.root(name))?)?;
        fs::create_dir_all(&runtime.dir)
            .context(|| format!("creating {}", runtime.dir.display()))?;

        // Both ends close-on-exec, so that no other child of this process (another thread's
        // start: `Manager::start_all`) inherits them; only the supervisor gets the write end,
        // made inheritable between its fork and exec.
        let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .context(|| "creating a pipe".into())?;
        let inherited = write_end.as_raw_fd();
        let exe = std::env::current_exe().context(|| "finding the ncsh binary".into())?;
        let mut cmd = Command::new(exe);
        cmd.arg("__supervise")
            .arg(name)
            .env(READY_FD_VAR, write_end.as_raw_fd().to_string());
        if let Some(nspawn) = std::env::var_os("NCSH_NSPAWN") {
            cmd.env("NCSH_NSPAWN", nspawn);
        }
        for (key, value) in self.paths.to_env() {
            cmd.env(key, value);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: setsid and fcntl are async-signal-safe; setsid detaches the supervisor from
        // our terminal, and the report pipe's write end is kept open across its exec.
        unsafe {
            cmd.pre_exec(move || {
                nix::unistd::setsid()?;
                if libc::fcntl(inherited, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut first = cmd.spawn().context(|| "starting the supervisor".into())?;
        drop(write_end);
        // The first process forks the real supervisor and exits at once.
        let _ = first.wait();
        super::phase(&format!("standalone start {name}: supervisor spawned"));

        let report = read_report(read_end, timeout);
        super::phase(&format!("standalone start {name}: report read"));
        match report {
            Report::Ready => Ok(()),
            Report::Failed(detail) => {
                self.clean_failed_start(name, &runtime);
                Err(Error::StartFailed {
                    name: name.into(),
                    detail,
                })
            }
            Report::TimedOut => {
                if let Some(pid) = runtime.supervisor() {
                    let _ = kill(pid, Signal::SIGUSR1);
                }
                let tail = runtime.console_tail(10);
                self.clean_failed_start(name, &runtime);
                Err(Error::StartFailed {
                    name: name.into(),
                    detail: format!(
                        "not ready after {timeout:?}{whose}; last console lines:\n{tail}"
                    ),
                })
            }
        }
    }

    fn stop(&self, name: &str) -> Result<()> {
        let runtime = Runtime::new(&self.paths, name);
        let Some(supervisor) = runtime.supervisor() else {
            return remove_leftovers(&self.paths, name);
        };
        let _ = kill(supervisor, Signal::SIGTERM);
        let timeout = timeout_from_env("NCSH_STOP_TIMEOUT", DEFAULT_STOP_TIMEOUT)?
            .saturating_add(Duration::from_secs(10));
        self.wait_for_exit(name, &runtime, timeout)
    }

    fn terminate(&self, name: &str) -> Result<()> {
        let runtime = Runtime::new(&self.paths, name);
        let Some(supervisor) = runtime.supervisor() else {
            return Err(Error::NotRunning(name.into()));
        };
        if let Some(leader) = runtime.read_leader() {
            if let Ok(conf) = store::load(
                &self.paths,
                &crate::container::ContainerName::existing(name)?,
            ) {
                super::net::return_links(leader.as_raw(), &conf);
            }
            let _ = kill(leader, Signal::SIGKILL);
        }
        let _ = kill(supervisor, Signal::SIGUSR1);
        super::phase(&format!("terminate {name}: killed"));
        self.wait_for_exit(name, &runtime, Duration::from_secs(20))
    }

    fn remove_runtime(&self, name: &str) -> Result<()> {
        remove_leftovers(&self.paths, name)
    }

    fn apply_limits(&self, name: &str, limits: &Limits) -> Result<()> {
        if self.status(name) != Status::Up || Owner::elsewhere(&self.paths, name).is_some() {
            return Ok(());
        }
        Cgroups::for_container(name).apply(limits)
    }

    fn usage(&self, name: &str) -> Result<Option<super::cgroup::Usage>> {
        if self.status(name) != Status::Up || Owner::elsewhere(&self.paths, name).is_some() {
            return Ok(None);
        }
        Ok(Some(Cgroups::for_container(name).usage()))
    }
}

enum Report {
    Ready,
    Failed(String),
    TimedOut,
}

fn read_report(read_end: OwnedFd, timeout: Duration) -> Report {
    let deadline = deadline_after(timeout);
    let file = File::from(read_end);
    let mut reader = BufReader::new(file);
    loop {
        match wait_readable(reader.get_ref().as_raw_fd(), deadline) {
            Ok(true) => {}
            Ok(false) => return Report::TimedOut,
            Err(_) => return Report::Failed("waiting for the supervisor failed".into()),
        }
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => {
                return Report::Failed("the supervisor exited without a report".into());
            }
            Ok(_) => {}
        }
        match line.chars().next() {
            Some('R') => return Report::Ready,
            Some('E') => {
                let mut rest = line[1..].to_string();
                let _ = reader.read_to_string(&mut rest);
                return Report::Failed(rest.trim_end().to_string());
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The supervisor process.

static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);
static KILL_REQUESTED: AtomicBool = AtomicBool::new(false);

/// Give back the pages of ncsh's binary that the supervisor's start touched (its text and
/// read-only data: about 2.5 MiB, counted in the container's memory for as long as it runs):
/// from READY on it only waits for signals and the notify socket. Only mappings of the binary
/// that are read-only and hold no page of their own (`Anonymous: 0`: nothing relocated or
/// written into them) are dropped, so MADV_DONTNEED changes no contents: what runs later is
/// read in again from the file.
fn release_startup_pages() {
    let Ok(exe) = fs::read_link("/proc/self/exe") else {
        return;
    };
    let Ok(smaps) = fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    let mut mapping: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields[..] {
            [range, perms, _, _, _, path] if range.contains('-') => {
                let ours = Path::new(path) == exe && !perms.contains('w');
                mapping = range.split_once('-').and_then(|(a, b)| {
                    let a = usize::from_str_radix(a, 16).ok()?;
                    let b = usize::from_str_radix(b, 16).ok()?;
                    ours.then_some((a, b))
                });
            }
            ["Anonymous:", "0", "kB"] => {
                if let Some((start, end)) = mapping.take() {
                    // SAFETY: a whole read-only mapping of our executable with no page of its
                    // own: dropping its clean file-backed pages changes no contents.
                    unsafe {
                        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
                    }
                }
            }
            _ => {}
        }
    }
}

extern "C" fn on_signal(sig: libc::c_int) {
    if sig == libc::SIGUSR1 {
        KILL_REQUESTED.store(true, Ordering::SeqCst);
    } else if sig != libc::SIGCHLD {
        STOP_REQUESTED.store(true, Ordering::SeqCst);
    }
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; errno is put back for the code interrupted.
        unsafe {
            let errno = *libc::__errno_location();
            libc::write(fd, [1u8].as_ptr().cast(), 1);
            *libc::__errno_location() = errno;
        }
    }
}

/// The write end of the supervisor's [`Wake`] pipe, for [`on_signal`]; -1 before it exists.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

/// What woke the supervisor's loop.
enum Woken {
    Datagram,
    Signal,
    Quiet,
}

/// A self-pipe: the signal handler writes a byte, so a signal that lands between the loop's
/// checks of its flags and its wait still ends the wait (without it, a stop or nspawn's exit
/// could wait out the whole quiet interval).
struct Wake {
    read: OwnedFd,
}

impl Wake {
    fn new() -> Result<Wake> {
        use nix::fcntl::OFlag;
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
            .context(|| "making the supervisor's wake-up pipe".into())?;
        // The write end lives as long as the process: a handler may run at any time.
        WAKE_FD.store(std::os::fd::IntoRawFd::into_raw_fd(write), Ordering::SeqCst);
        Ok(Wake { read })
    }

    /// Wait for a datagram on `socket` or a signal, at most `quiet`.
    fn wait(&self, socket: &UnixDatagram, quiet: Duration) -> Woken {
        let mut fds = [
            libc::pollfd {
                fd: socket.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.read.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ms = i32::try_from(quiet.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: two valid pollfds for the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
        if n == 0 {
            return Woken::Quiet;
        }
        if n < 0 || fds[1].revents != 0 {
            let mut drain = [0u8; 64];
            // SAFETY: reads into a local buffer from our own non-blocking pipe.
            while unsafe { libc::read(self.read.as_raw_fd(), drain.as_mut_ptr().cast(), 64) } > 0 {}
            return Woken::Signal;
        }
        Woken::Datagram
    }
}

/// Report to the `start` caller through the inherited pipe.
struct Reporter(Option<File>);

impl Reporter {
    fn send(&mut self, msg: &str) {
        if let Some(f) = self.0.as_mut() {
            let _ = f.write_all(msg.as_bytes());
        }
    }
    fn ready(&mut self) {
        self.send("R\n");
        self.0 = None;
    }
    fn failed(&mut self, why: &str) {
        self.send(&format!("E{why}\n"));
        self.0 = None;
    }
}

/// Is `fd` an open pipe other than stdin, stdout and stderr (what `start` passes)? Anything
/// else in `NCSH_READY_FD` is ignored rather than taken over.
fn is_open_pipe(fd: i32) -> bool {
    if fd <= 2 {
        return false;
    }
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat only writes `st`; a closed or bad fd makes it fail with EBADF.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: fstat succeeded, so it filled `st`.
    let st = unsafe { st.assume_init() };
    st.st_mode & libc::S_IFMT == libc::S_IFIFO
}

/// Entry point of `ncsh __supervise NAME`: fork into the background, then supervise.
pub fn supervise_main(name: &str) -> i32 {
    let reporter = std::env::var(READY_FD_VAR)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
        .filter(|fd| is_open_pipe(*fd))
        // SAFETY: the fd was created for us by `start` and is owned by no one else here.
        .map(|fd| unsafe { File::from_raw_fd(fd) });
    // SAFETY: single-threaded at this point; the parent only exits.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { .. }) => return 0,
        Ok(nix::unistd::ForkResult::Child) => {}
        Err(_) => return 1,
    }
    let mut reporter = Reporter(reporter);
    let paths = Paths::from_env();
    match Supervisor::new(paths, name).and_then(|s| s.run(&mut reporter)) {
        Ok(()) => 0,
        Err(e) => {
            reporter.failed(&e.to_string());
            1
        }
    }
}

struct Supervisor {
    name: String,
    paths: Paths,
    runtime: Runtime,
    conf: Conf,
    cgroups: Cgroups,
    _lock: File,
}

impl Supervisor {
    fn new(paths: Paths, name: &str) -> Result<Supervisor> {
        let conf = store::load(&paths, &crate::container::ContainerName::parse(name)?)?;
        let runtime = Runtime::new(&paths, name);
        fs::create_dir_all(&runtime.dir)
            .context(|| format!("creating {}", runtime.dir.display()))?;
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(runtime.lock())
            .context(|| format!("opening {}", runtime.lock().display()))?;
        let mut hold = whole_file_write_lock();
        // SAFETY: F_SETLK reads a valid flock struct.
        if unsafe { libc::fcntl(lock.as_raw_fd(), libc::F_SETLK, &mut hold) } != 0 {
            return Err(Error::Usage(format!(
                "container ‘{name}’ is already being supervised"
            )));
        }
        runtime.clear();
        Owner::claim(&paths, name)?;
        let cgroups = Cgroups::for_container(name);
        Ok(Supervisor {
            name: name.to_string(),
            paths,
            runtime,
            conf,
            cgroups,
            _lock: lock,
        })
    }

    fn install_signal_handlers() -> Result<()> {
        // No SA_RESTART: a signal interrupts the blocking receive below.
        let action = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::empty(),
            SigSet::empty(),
        );
        for sig in [
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGHUP,
            Signal::SIGUSR1,
            Signal::SIGCHLD,
        ] {
            // SAFETY: the handler only stores to atomics.
            unsafe { signal::sigaction(sig, &action) }
                .context(|| format!("installing a {sig} handler"))?;
        }
        Ok(())
    }

    fn run(self, reporter: &mut Reporter) -> Result<()> {
        let wake = Wake::new()?;
        Self::install_signal_handlers()?;
        self.cgroups.create()?;
        // The limits before anything joins: nspawn and the container start inside them.
        self.cgroups.apply(&Limits::from_conf(&self.conf)?)?;
        // NixOS's DevicePolicy=closed and the container's DeviceAllow= (container/unit.rs).
        self.cgroups
            .apply_devices(&unit::allowed_devices(&self.conf)?)?;
        // nspawn joins them between fork and exec; the supervisor stays out, so nothing has
        // to move it back (a migration in the v1 name=systemd hierarchy costs ~12 ms) before
        // the cgroups can go when the container is down.
        let procs = self.cgroups.procs_files();
        let socket = UnixDatagram::bind(self.runtime.notify())
            .context(|| "binding the notify socket".into())?;
        socket
            .set_nonblocking(true)
            .context(|| "notify socket".into())?;
        // Only root reads the console (it may show secrets): made 0600, never chmod'ed later.
        let _ = fs::remove_file(self.runtime.console());
        let console = {
            use std::os::unix::fs::OpenOptionsExt;
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(self.runtime.console())
                .context(|| "creating console.log".into())?
        };
        let console_err = console.try_clone().context(|| "console.log".into())?;

        let nix = nspawn::nix_system(&self.paths, &self.name, &self.conf);
        if let Some(nix) = &nix {
            nix.create_dirs()?;
        }
        if self.conf.non_empty("HOST_PORT").is_some() {
            fs::write(self.runtime.forwards(), "")
                .context(|| format!("writing {}", self.runtime.forwards().display()))?;
        }
        let nspawn = nspawn_binary();
        let args = nspawn::args(
            &self.name,
            &self.paths.root(&self.name),
            &self.conf,
            &self.paths.conf(&self.name),
            Supervision::Standalone,
            nix.as_ref(),
        )?;
        // nspawn's filter, when a probe has made it for these options (host/seccomp.rs).
        let seccomp_dir = seccomp::cache_dir();
        let seccomp_plan = seccomp_dir
            .as_ref()
            .and_then(|_| seccomp::plan(&nspawn, &args));
        let filters = seccomp_plan
            .as_ref()
            .zip(seccomp_dir.as_ref())
            .and_then(|(plan, dir)| plan.cached(dir));
        // Whether the probe ran (once, after READY, when no filter was cached).
        let mut probed: Option<bool> = filters.as_ref().map(|_| true);
        let mut cmd = Command::new(&nspawn);
        if filters.is_some() {
            cmd.env("SYSTEMD_SECCOMP", "0");
        }
        cmd.args(args)
            .env("NOTIFY_SOCKET", self.runtime.notify())
            .env("SYSTEMD_NSPAWN_UNIFIED_HIERARCHY", "1")
            .stdin(Stdio::null())
            .stdout(console)
            .stderr(console_err);
        let hide_udev = moves_host_links(&self.conf) && !udev_running();
        // SAFETY: prctl, unshare, mount and seccomp are async-signal-safe system calls on static
        // strings or memory the closure owns; join_self and install allocate nothing.
        // If the supervisor dies, nspawn gets SIGTERM and powers the container off cleanly
        // instead of running unsupervised.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                super::cgroup::join_self(&procs)?;
                if hide_udev {
                    sys_read_only()?;
                }
                // Last: from here on only what the container may do is allowed.
                if let Some(filters) = &filters {
                    filters.install()?;
                }
                Ok(())
            });
        }
        super::phase(&format!(
            "supervisor {}: cgroups made, nspawn starts",
            self.name
        ));
        let mut child = cmd
            .spawn()
            .context(|| format!("running {}", nspawn.display()))?;
        let nspawn_pid = Pid::from_raw(child.id() as i32);

        // `start` refused a bad value before spawning this supervisor.
        let stop_timeout = timeout_from_env("NCSH_STOP_TIMEOUT", DEFAULT_STOP_TIMEOUT)
            .unwrap_or(DEFAULT_STOP_TIMEOUT);
        let mut leader: Option<Pid> = None;
        // Some once the poweroff is sent; inside, None when the deadline is too far to represent.
        let mut stop_deadline: Option<Option<Instant>> = None;
        let mut killed = false;
        let mut release_pending = false;
        let mut buf = [0u8; 4096];
        let status = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break status;
            }
            let kill_now = KILL_REQUESTED.load(Ordering::SeqCst)
                || stop_deadline.flatten().is_some_and(|d| Instant::now() > d);
            if kill_now && !killed {
                // SIGKILL to the leader takes its whole PID namespace with it (caveat C6).
                if let Some(l) = leader {
                    let _ = kill(l, Signal::SIGKILL);
                }
                let _ = kill(nspawn_pid, Signal::SIGKILL);
                killed = true;
            } else if STOP_REQUESTED.load(Ordering::SeqCst) && stop_deadline.is_none() {
                // nspawn turns SIGTERM into --kill-signal (SIGRTMIN+3): a clean poweroff.
                let _ = kill(nspawn_pid, Signal::SIGTERM);
                super::phase(&format!("supervisor {}: poweroff sent", self.name));
                stop_deadline = Some(deadline_after(stop_timeout));
            }
            let n = match wake.wait(&socket, Duration::from_millis(100)) {
                Woken::Datagram => match socket.recv(&mut buf) {
                    Ok(n) => n,
                    Err(_) => continue,
                },
                Woken::Signal => continue,
                Woken::Quiet => {
                    // Once more when the first quiet moment after READY shows what the loop
                    // itself touches.
                    if std::mem::take(&mut release_pending) {
                        release_startup_pages();
                    }
                    continue;
                }
            };
            for field in String::from_utf8_lossy(&buf[..n]).lines() {
                if let Some(pid) = field.strip_prefix("X_NSPAWN_LEADER_PID=") {
                    let pid: i32 = pid.trim().parse().unwrap_or(0);
                    if pid > 0 {
                        super::phase(&format!("supervisor {}: leader", self.name));
                        leader = Some(Pid::from_raw(pid));
                        let _ = fs::write(self.runtime.leader(), pid.to_string());
                        let configured = net::configure_host_side(
                            &self.name,
                            &self.conf,
                            Duration::from_secs(5),
                        )
                        .and_then(|()| nft::add_loopback_forwards(&self.name, &self.conf));
                        super::phase(&format!("supervisor {}: host side done", self.name));
                        if let Err(e) = configured {
                            reporter.failed(&format!("configuring the host side of the veth: {e}"));
                            STOP_REQUESTED.store(true, Ordering::SeqCst);
                            KILL_REQUESTED.store(true, Ordering::SeqCst);
                        }
                    }
                } else if field == "READY=1" && !STOP_REQUESTED.load(Ordering::SeqCst) {
                    let _ = fs::write(self.runtime.ready(), "");
                    super::phase(&format!("supervisor {}: READY", self.name));
                    reporter.ready();
                    if let (Some(plan), Some(dir), None) = (&seccomp_plan, &seccomp_dir, &probed) {
                        let result = plan.probe_and_keep(&nspawn, dir);
                        super::phase(&format!(
                            "supervisor {}: seccomp probe {result:?}",
                            self.name
                        ));
                        probed = Some(result.is_ok());
                    }
                    release_startup_pages();
                    release_pending = true;
                }
            }
        };
        super::phase(&format!("supervisor {}: nspawn exited", self.name));
        let _ = fs::remove_file(self.runtime.ready());
        if let Some(l) = leader.filter(|l| alive(*l)) {
            let _ = kill(l, Signal::SIGKILL);
        }
        let detail = format!(
            "systemd-nspawn exited ({status}); last console lines:\n{}",
            self.runtime.console_tail(15)
        );
        // Only sent if READY never came: then this is why the start failed.
        reporter.failed(&detail);
        self.leave_cgroups();
        super::phase(&format!("supervisor {}: cgroups removed", self.name));
        let _ = net::remove_host_link(&self.name);
        super::phase(&format!("supervisor {}: host link removed", self.name));
        let _ = remove_forwards_of(&self.runtime, &self.name, &self.conf);
        let _ = remove_nspawn_files(&self.paths, &self.name);
        Owner::release(&self.paths, &self.name);
        self.runtime.clear();
        super::phase(&format!("supervisor {}: cleaned up", self.name));
        Ok(())
    }

    /// Remove the container's cgroups (the supervisor was never in them).
    fn leave_cgroups(&self) {
        let _ = self.cgroups.kill_and_remove(None, Duration::from_secs(5));
    }
}

/// Does the conf move host links into the container or make links over them (INTERFACES,
/// MACVLANS)?
fn moves_host_links(conf: &Conf) -> bool {
    ["INTERFACES", "MACVLANS"]
        .iter()
        .any(|k| conf.non_empty(k).is_some())
}

/// Is udev running on this host (its control socket exists)?
fn udev_running() -> bool {
    Path::new("/run/udev/control").exists()
}

/// nspawn refuses a host link udev has not initialized ("Network interface … is not
/// initialized yet") whenever `/sys` is writable, taking that for "udev runs" (udev_available()
/// in systemd's udev-util.c). Without udev nothing initializes a link, so nspawn runs in a mount
/// namespace of its own (slave: the host's later mounts still reach it) where `/sys` itself is
/// read-only; the cgroup mounts below it keep their flags (the remount is not recursive).
/// ARCHITECTURE.md, "nspawn without systemd as PID 1".
fn sys_read_only() -> std::io::Result<()> {
    let check = |rc: libc::c_int| {
        if rc != 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    // SAFETY: plain system calls with NUL-terminated static strings or null pointers.
    unsafe {
        check(libc::unshare(libc::CLONE_NEWNS))?;
        check(libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_SLAVE,
            std::ptr::null(),
        ))?;
        check(libc::mount(
            std::ptr::null(),
            c"/sys".as_ptr(),
            std::ptr::null(),
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
            std::ptr::null(),
        ))
    }
}
