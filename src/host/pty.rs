//! Interactive sessions on a pseudo-terminal allocated inside the container
//! (ARCHITECTURE.md, "Entering a container").
//!
//! nspawn gives a container its own devpts instance (mounted with `ptmxmode=666`, `/dev/ptmx`
//! links to `pts/ptmx`). The host opens that instance's `ptmx` through
//! `/proc/LEADER/root/dev/pts/ptmx` and gets the peer with `TIOCGPTPEER`, so there is no path
//! lookup of the slave: the command sees `/dev/pts/N` of the container as its terminal. The
//! command enters the namespaces as `run` does ([`super::enter`]), in a new session with that
//! terminal as its controlling terminal, and this process relays between the caller's terminal
//! (or pipes) and the master. Closing the master hangs the session up.
//!
//! Under the systemd driver, `login` goes through machined instead ([`relay_getty`]): its
//! OpenMachineLogin opens the pty and starts a getty on it inside the container, and this
//! process only relays, with machinectl's escape and hangup rules.
//!
//! One relay runs at a time per process (the signal self-pipe is process-wide).

use std::fs::OpenOptions;
use std::io::IsTerminal;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::kill;
use nix::sys::termios::{self, SetArg, SpecialCharacterIndices, Termios};
use nix::unistd::Pid;

use super::enter::{self, As, Entry, Setup};
use crate::error::{Context, Error, Result};

/// PATH for `/bin/login` (login sets the user's own PATH itself).
const LOGIN_PATH: &str = "/usr/sbin:/usr/bin";

/// How often the EOF character is typed again after the end of stdin (not a terminal).
const EOF_REPEAT: Duration = Duration::from_millis(500);

/// How long to wait for the command to go once the master is closed, before killing it.
const HANGUP_GRACE: Duration = Duration::from_secs(5);

/// `/bin/login` on a terminal inside the container: the `NAME login:` prompt, a user name and
/// password checked by the container's PAM, then the user's login shell. The exit code is
/// login's, except that it is 1 when no session ran: shadow's login exits 0 after the last
/// refused try too. A session ran when login started a child (the user's shell), which
/// [`Session::relay`] watches for.
pub fn login(leader: i32) -> Result<i32> {
    run(
        leader,
        &["/bin/login".to_string()],
        "/",
        true,
        As::default(),
        |cmd| {
            cmd.env_clear()
                .env("TERM", terminal_type())
                .env("PATH", LOGIN_PATH);
        },
    )
}

/// A root login shell (`su -l root`: root needs no password) on a terminal inside the
/// container; the shell's exit code.
pub fn root_shell(leader: i32) -> Result<i32> {
    let argv = ["/bin/su".to_string(), "-l".into(), "root".into()];
    run(leader, &argv, "/root", false, As::default(), |cmd| {
        enter::root_environment(cmd);
        cmd.env("TERM", terminal_type());
    })
}

/// `run --pty`: `argv` on a terminal allocated inside, as `identity` (root when None), with
/// `opts`' directory and environment; its exit code.
pub fn run_command(
    leader: i32,
    argv: &[String],
    opts: &enter::RunOptions,
    identity: Option<enter::Identity>,
) -> Result<i32> {
    let (dir, required) = enter::start_dir(opts, identity.as_ref())?;
    let how = As {
        identity: identity.clone(),
        dir,
        required,
    };
    run(leader, argv, "/root", false, how, |cmd| {
        enter::login_environment(cmd, identity.as_ref(), &opts.env);
        cmd.env("TERM", terminal_type());
    })
}

/// The caller's TERM, else a safe default.
fn terminal_type() -> String {
    std::env::var("TERM")
        .ok()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| {
            if std::io::stdin().is_terminal() {
                "xterm".into()
            } else {
                "dumb".into()
            }
        })
}

/// Run `argv` in the container on a new terminal of its own and relay until it ends; its exit
/// code (128+N for a signal). `environment` sets the command's environment. With `login`, the
/// command is a login program whose 0 counts only when it started a session.
fn run(
    leader: i32,
    argv: &[String],
    dir: &'static str,
    login: bool,
    how: As,
    environment: impl FnOnce(&mut Command),
) -> Result<i32> {
    let entry = Entry::open(leader)?;
    let (master, slave) = open_in_container(leader)?;
    let interactive = std::io::stdin().is_terminal();
    let size = caller_window_size();
    set_window_size(master.as_raw_fd(), &size);

    let mut cmd = enter::command_as(
        entry,
        argv,
        Setup {
            dir,
            controlling_tty: true,
        },
        how,
    )?;
    environment(&mut cmd);
    let tty = |fd: &OwnedFd| -> Result<Stdio> {
        Ok(Stdio::from(
            fd.try_clone().context(|| "duplicating the pty".into())?,
        ))
    };
    cmd.stdin(tty(&slave)?)
        .stdout(tty(&slave)?)
        .stderr(tty(&slave)?);
    let program = argv.first().map(String::as_str).unwrap_or_default();
    let child = cmd.spawn().map_err(|e| enter::spawn_error(program, e))?;
    // Only the command keeps the terminal open now: its end is the master's EOF.
    drop(cmd);
    drop(slave);

    let session_seen = login.then_some(false);
    relay_session(
        master,
        Peer::Command {
            child,
            session_seen,
        },
        interactive,
    )
}

/// A login through machined (the systemd driver): relay `master`, a pty whose getty (from
/// OpenMachineLogin) runs inside the container, as `machinectl login` does. The session ends
/// on the escape (^] three times within a second, on a terminal), when the machine is gone
/// (`leader` exited), or, with stdin not a terminal, at the first hangup after the end of
/// stdin (the logout). Piped input waits for the getty's first output: a starting getty
/// flushes what was typed ahead. The exit code is 0, as machinectl's.
pub fn relay_getty(master: OwnedFd, machine: &str, leader: i32) -> Result<i32> {
    let interactive = std::io::stdin().is_terminal();
    set_window_size(master.as_raw_fd(), &caller_window_size());
    // Still in the terminal's own mode here: raw mode starts with the relay.
    eprintln!("Connected to machine {machine}. Press ^] three times within 1s to exit session.");
    let code = relay_session(
        master,
        Peer::Getty {
            leader: Pid::from_raw(leader),
        },
        interactive,
    );
    eprintln!("\nConnection to machine {machine} terminated.");
    code
}

/// Relay between the caller and `master` until the session ends (see [`Peer`]); the exit code.
fn relay_session(master: OwnedFd, peer: Peer, interactive: bool) -> Result<i32> {
    let stdin = std::io::stdin();
    let signals = SignalPipe::install()?;
    let raw = if interactive {
        Some(RawMode::enter(stdin.as_fd())?)
    } else {
        None
    };
    let mut session = Session {
        master,
        peer,
        interactive,
        signals,
    };
    let end = session.relay();
    drop(raw);
    let status = session.finish();
    match end {
        Err(e) => Err(e),
        Ok(End::Signal(sig)) => Ok(128 + sig),
        Ok(End::Done | End::Escaped) => status,
    }
}

/// The master of a new pty in the container's devpts instance, and its slave.
fn open_in_container(leader: i32) -> Result<(OwnedFd, OwnedFd)> {
    let path = format!("/proc/{leader}/root/dev/pts/ptmx");
    let master: OwnedFd = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Unsupported(format!(
                    "the container has no devpts instance of its own ({path} is missing)"
                ))
            } else {
                Error::io(format!("opening {path}"), e)
            }
        })?
        .into();
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int through the pointer, which outlives the call.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } < 0 {
        return Err(Error::io(
            "unlocking the container's pty",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: TIOCGPTPEER takes open flags by value and returns a new descriptor or -1.
    let fd = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(Error::io(
            "opening the container's pty slave (TIOCGPTPEER)",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: the ioctl just returned this descriptor, and nothing else owns it.
    let slave = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok((master, slave))
}

/// The size of the caller's terminal (stdin's, else stdout's), else 24×80.
fn caller_window_size() -> libc::winsize {
    window_size(std::io::stdin().as_raw_fd())
        .or_else(|| window_size(std::io::stdout().as_raw_fd()))
        .unwrap_or(libc::winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        })
}

fn window_size(fd: RawFd) -> Option<libc::winsize> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize through the pointer, which outlives the call.
    let ok = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_row > 0 && size.ws_col > 0).then_some(size)
}

fn set_window_size(fd: RawFd, size: &libc::winsize) {
    // SAFETY: TIOCSWINSZ reads one winsize through the pointer, which outlives the call.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, size) };
}

/// The caller's terminal in raw mode; the old mode comes back on drop (every exit path: errors,
/// the signals [`SignalPipe`] turns into an end of the relay, and unwinding).
struct RawMode<'a> {
    fd: BorrowedFd<'a>,
    saved: Termios,
}

impl<'a> RawMode<'a> {
    fn enter(fd: BorrowedFd<'a>) -> Result<RawMode<'a>> {
        let saved = termios::tcgetattr(fd).context(|| "reading the terminal mode".into())?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSADRAIN, &raw)
            .context(|| "setting the terminal to raw mode".into())?;
        Ok(RawMode { fd, saved })
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.fd, SetArg::TCSADRAIN, &self.saved);
    }
}

/// The write end of the self-pipe the signal handler writes signal numbers to (-1: none).
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

/// Signals the relay handles: window size changes, the child's end, and requests to stop.
const HANDLED: [libc::c_int; 6] = [
    libc::SIGWINCH,
    libc::SIGCHLD,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
];

extern "C" fn on_signal(sig: libc::c_int) {
    // SAFETY: write(2) and errno access are async-signal-safe; errno is restored for the
    // interrupted code.
    unsafe {
        let errno = *libc::__errno_location();
        let fd = WAKE_FD.load(Ordering::Relaxed);
        if fd >= 0 {
            let byte = sig as u8;
            libc::write(fd, (&byte as *const u8).cast(), 1);
        }
        *libc::__errno_location() = errno;
    }
}

/// Handlers for [`HANDLED`] that wake the poll loop through a pipe; the old handlers come back
/// on drop.
struct SignalPipe {
    read: OwnedFd,
    _write: OwnedFd,
    old: Vec<(libc::c_int, libc::sigaction)>,
}

impl SignalPipe {
    fn install() -> Result<SignalPipe> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
            .context(|| "creating a pipe".into())?;
        WAKE_FD.store(write.as_raw_fd(), Ordering::SeqCst);
        let mut pipe = SignalPipe {
            read,
            _write: write,
            old: Vec::new(),
        };
        for sig in HANDLED {
            // SAFETY: a zeroed sigaction is valid (no flags, empty mask); the handler only
            // makes async-signal-safe calls; `old` is written by the kernel.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as *const () as usize;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, &action, &mut old) < 0 {
                    return Err(Error::io(
                        "installing a signal handler",
                        std::io::Error::last_os_error(),
                    ));
                }
                pipe.old.push((sig, old));
            }
        }
        Ok(pipe)
    }

    /// The signals that arrived since the last call.
    fn take(&self) -> Vec<libc::c_int> {
        let mut buf = [0u8; 64];
        let mut out = Vec::new();
        while let Ok(n @ 1..) = nix::unistd::read(self.read.as_fd(), &mut buf) {
            out.extend(buf[..n].iter().map(|&b| libc::c_int::from(b)));
        }
        out
    }
}

impl Drop for SignalPipe {
    fn drop(&mut self) {
        for (sig, old) in self.old.drain(..) {
            // SAFETY: `old` is what sigaction returned for this signal.
            unsafe { libc::sigaction(sig, &old, std::ptr::null_mut()) };
        }
        WAKE_FD.store(-1, Ordering::SeqCst);
        // `write` closes after this, once no handler can write to it.
    }
}

enum End {
    /// The command ended (or its terminal did).
    Done,
    /// The person at the terminal typed the escape.
    Escaped,
    /// We were asked to stop by this signal.
    Signal(i32),
}

/// The escape out of a getty session: ^] typed three times within [`ESCAPE_WINDOW`].
const ESCAPE_CHAR: u8 = 0x1d;
const ESCAPE_WINDOW: Duration = Duration::from_secs(1);

/// How long to leave a hung-up getty terminal alone before looking again (it is reopened by
/// the next getty).
const HANGUP_PAUSE: Duration = Duration::from_millis(50);

/// How often a login is checked for a session, besides whenever there is output.
const SESSION_CHECK: Duration = Duration::from_millis(50);

/// How often a getty session checks that the machine is still there.
const LIVENESS_CHECK: Duration = Duration::from_millis(250);

/// Who is on the far side of the terminal: it decides when the session ends.
enum Peer {
    /// A command of ours: the session ends with it. `session_seen` is `Some` for a login
    /// program: whether it was seen with a child (a session) yet.
    Command {
        child: Child,
        session_seen: Option<bool>,
    },
    /// machined's getty, restarted after every logout (see [`relay_getty`]).
    Getty { leader: Pid },
}

struct Session {
    master: OwnedFd,
    peer: Peer,
    interactive: bool,
    signals: SignalPipe,
}

/// Counts ^] typed in a row, as machinectl does.
#[derive(Default)]
struct EscapeDetector {
    count: u8,
    first: Option<Instant>,
}

impl EscapeDetector {
    /// Whether `input` completes the escape.
    fn feed(&mut self, input: &[u8], now: Instant) -> bool {
        for &byte in input {
            if byte != ESCAPE_CHAR {
                *self = EscapeDetector::default();
                continue;
            }
            match self.first {
                Some(first) if now.duration_since(first) <= ESCAPE_WINDOW => {
                    self.count += 1;
                    if self.count >= 3 {
                        return true;
                    }
                }
                _ => {
                    self.first = Some(now);
                    self.count = 1;
                }
            }
        }
        false
    }
}

impl Session {
    /// Copy stdin to the master and the master to stdout until the session ends (see
    /// [`Peer`]), or a signal asks us to stop.
    fn relay(&mut self) -> Result<End> {
        let stdin = std::io::stdin();
        let stdout = std::io::stdout();
        let (stdin, stdout) = (stdin.as_fd(), stdout.as_fd());
        fcntl(&self.master, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
            .context(|| "setting the pty non-blocking".into())?;
        let getty = matches!(self.peer, Peer::Getty { .. });
        let mut pending: Vec<u8> = Vec::new();
        let mut stdin_open = true;
        // With stdin at its end (not a terminal): when the EOF character is next typed.
        let mut next_eof: Option<Instant> = None;
        // A getty's terminal hung up (a logout, a getty starting): when to look again.
        let mut hung_until: Option<Instant> = None;
        // Piped input for a getty waits for its first output.
        let mut peer_spoke = !getty || self.interactive;
        let mut escape = EscapeDetector::default();
        // Piped input for a login program goes a line at a time, each once it is asked for:
        // PAM's prompts flush what was typed ahead (TCSAFLUSH), as a getty's start does.
        let mut paced = (!self.interactive && self.watching_for_a_session()).then(Paced::default);
        let mut buf = vec![0u8; 16 * 1024];
        // An end before the SIGCHLD handler was there.
        if self.child_exited() {
            self.drain(stdout, &mut buf)?;
            return Ok(End::Done);
        }
        loop {
            let now = Instant::now();
            if let Some(pace) = &mut paced {
                if !self.watching_for_a_session() {
                    // A session runs: the rest of the input is its shell's, as it comes.
                    pending.append(&mut pace.queued);
                    paced = None;
                } else if pending.is_empty() && pace.prompted && self.login_is_reading() {
                    pending.extend(pace.next_line());
                }
            }
            if let Some(at) = next_eof
                && pending.is_empty()
                && paced.as_ref().is_none_or(|p| p.queued.is_empty())
                && now >= at
            {
                pending.push(self.eof_char());
                next_eof = Some(now + EOF_REPEAT);
            }
            if hung_until.is_some_and(|at| now >= at) {
                hung_until = None;
            }
            let watch_master = hung_until.is_none();
            let mut master_events = PollFlags::POLLIN;
            if !pending.is_empty() {
                master_events |= PollFlags::POLLOUT;
            }
            let mut fds = vec![PollFd::new(self.signals.read.as_fd(), PollFlags::POLLIN)];
            if watch_master {
                fds.push(PollFd::new(self.master.as_fd(), master_events));
            }
            let reading_stdin = stdin_open
                && peer_spoke
                && match &paced {
                    Some(pace) => pace.queued.len() < PACED_QUEUE,
                    None => pending.is_empty(),
                };
            if reading_stdin {
                fds.push(PollFd::new(stdin, PollFlags::POLLIN));
            }
            let mut wake: Option<Instant> = match next_eof {
                Some(at) if pending.is_empty() => Some(at),
                _ => None,
            };
            if self.watching_for_a_session() {
                let check = now + SESSION_CHECK;
                wake = Some(wake.map_or(check, |w| w.min(check)));
            }
            if getty {
                let check = now + LIVENESS_CHECK;
                let earliest = hung_until.map_or(check, |at| at.min(check));
                wake = Some(wake.map_or(earliest, |w| w.min(earliest)));
            }
            let timeout = match wake {
                Some(at) => {
                    let left = at.saturating_duration_since(now).as_millis();
                    PollTimeout::from(u16::try_from(left).unwrap_or(u16::MAX))
                }
                None => PollTimeout::NONE,
            };
            match poll(&mut fds, timeout) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("waiting for terminal input", e)),
                Ok(_) => {}
            }
            let ready = |i: usize| {
                fds.get(i)
                    .and_then(|f| f.revents())
                    .unwrap_or(PollFlags::empty())
            };
            let sig_ready = ready(0);
            let (master_ready, stdin_index) = if watch_master {
                (ready(1), 2)
            } else {
                (PollFlags::empty(), 1)
            };
            let stdin_ready = if reading_stdin {
                ready(stdin_index)
            } else {
                PollFlags::empty()
            };
            drop(fds);
            self.look_for_a_session();

            if sig_ready.contains(PollFlags::POLLIN) {
                let mut child_gone = false;
                for sig in self.signals.take() {
                    match sig {
                        libc::SIGWINCH => {
                            if let Some(size) = window_size(stdin.as_raw_fd()) {
                                set_window_size(self.master.as_raw_fd(), &size);
                            }
                        }
                        libc::SIGCHLD => child_gone |= self.child_exited(),
                        other => return Ok(End::Signal(other)),
                    }
                }
                if child_gone {
                    self.drain(stdout, &mut buf)?;
                    return Ok(End::Done);
                }
            }
            if let Peer::Getty { leader } = self.peer
                && kill(leader, None).is_err()
            {
                self.drain(stdout, &mut buf)?;
                return Ok(End::Done);
            }
            let mut hung_up = false;
            if master_ready.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
            {
                match nix::unistd::read(self.master.as_fd(), &mut buf) {
                    Ok(0) | Err(Errno::EIO) => hung_up = true,
                    Ok(n) => {
                        peer_spoke = true;
                        if let Some(pace) = &mut paced {
                            pace.prompted = buf[..n].ends_with(b": ");
                        }
                        write_all(stdout, &buf[..n])?;
                    }
                    Err(Errno::EAGAIN | Errno::EINTR) => {}
                    Err(e) => return Err(Error::sys("reading the pty", e)),
                }
            }
            if master_ready.contains(PollFlags::POLLOUT) && !pending.is_empty() {
                match nix::unistd::write(&self.master, &pending) {
                    Ok(n) => {
                        pending.drain(..n);
                    }
                    Err(Errno::EAGAIN | Errno::EINTR) => {}
                    Err(Errno::EIO) => hung_up = true,
                    Err(e) => return Err(Error::sys("writing to the pty", e)),
                }
            }
            if hung_up {
                // A command's terminal ends with it. A getty's hangs up at every logout and
                // every getty start: only the logout after piped input ended ends the session.
                if !getty || (!self.interactive && !stdin_open) {
                    return Ok(End::Done);
                }
                hung_until = Some(Instant::now() + HANGUP_PAUSE);
            }
            if !stdin_ready.is_empty() {
                match nix::unistd::read(stdin, &mut buf) {
                    Ok(0) | Err(Errno::EIO) => {
                        stdin_open = false;
                        if self.interactive {
                            // The caller's terminal went away: hang the session up.
                            return Ok(End::Done);
                        }
                        // Pass end-of-input on as the terminal's EOF character (as `script`
                        // does), then keep showing output until the command ends. Typed again
                        // while it runs: an EOF typed in canonical mode reaches a reader that
                        // switched to raw mode since (readline) as a NUL, not as an EOF.
                        next_eof = Some(Instant::now());
                    }
                    Ok(n) => {
                        if getty && self.interactive && escape.feed(&buf[..n], Instant::now()) {
                            return Ok(End::Escaped);
                        }
                        match &mut paced {
                            Some(pace) => pace.queued.extend_from_slice(&buf[..n]),
                            None => pending.extend_from_slice(&buf[..n]),
                        }
                    }
                    Err(Errno::EAGAIN | Errno::EINTR) => {}
                    Err(e) => return Err(Error::sys("reading stdin", e)),
                }
            }
        }
    }

    fn child_exited(&mut self) -> bool {
        match &mut self.peer {
            Peer::Command { child, .. } => matches!(child.try_wait(), Ok(Some(_)) | Err(_)),
            Peer::Getty { .. } => false,
        }
    }

    fn watching_for_a_session(&self) -> bool {
        matches!(
            self.peer,
            Peer::Command {
                session_seen: Some(false),
                ..
            }
        )
    }

    /// The login program's processes: the children of our child, which entered the container
    /// and waits.
    fn login_processes(&self) -> Vec<String> {
        let Peer::Command { child, .. } = &self.peer else {
            return Vec::new();
        };
        children(&child.id().to_string())
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }

    /// Is the login program blocked reading its terminal (fd 0), i.e. waiting for an answer?
    /// Its prompt is printed before the terminal is flushed, so the prompt alone is too early.
    fn login_is_reading(&self) -> bool {
        self.login_processes().iter().any(|pid| {
            let call = std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
            let mut fields = call.split_whitespace();
            fields.next() == Some(libc::SYS_read.to_string().as_str())
                && fields.next() == Some("0x0")
        })
    }

    /// Has the login program a child now (the user's shell)?
    fn look_for_a_session(&mut self) {
        if !self.watching_for_a_session() {
            return;
        }
        let Peer::Command {
            child,
            session_seen,
        } = &mut self.peer
        else {
            return;
        };
        let waiter = child.id().to_string();
        let seen = children(&waiter)
            .split_whitespace()
            .any(|login| !children(login).trim().is_empty());
        if seen {
            *session_seen = Some(true);
        }
    }

    fn eof_char(&self) -> u8 {
        termios::tcgetattr(self.master.as_fd())
            .map(|t| t.control_chars[SpecialCharacterIndices::VEOF as usize])
            .ok()
            .filter(|&c| c != 0)
            .unwrap_or(4)
    }

    /// What the command wrote before it ended.
    fn drain(&self, stdout: BorrowedFd, buf: &mut [u8]) -> Result<()> {
        loop {
            match nix::unistd::read(self.master.as_fd(), buf) {
                Ok(0) | Err(Errno::EIO | Errno::EAGAIN) => return Ok(()),
                Ok(n) => write_all(stdout, &buf[..n])?,
                Err(Errno::EINTR) => {}
                Err(e) => return Err(Error::sys("reading the pty", e)),
            }
        }
    }

    /// Hang the terminal up (close the master) and the exit code: our command's, reaped (and
    /// killed when it outlives the hangup by [`HANGUP_GRACE`]); 0 for a getty, which goes on.
    fn finish(self) -> Result<i32> {
        let Session {
            master,
            peer,
            signals,
            ..
        } = self;
        drop(master);
        let Peer::Command {
            mut child,
            session_seen,
        } = peer
        else {
            return Ok(0);
        };
        let deadline = Instant::now() + HANGUP_GRACE;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Ok(None) => {
                    let _ = child.kill();
                    break child
                        .wait()
                        .context(|| "waiting for the session to end".into())?;
                }
                Err(e) => return Err(Error::io("waiting for the session to end", e)),
            }
        };
        drop(signals);
        let code = enter::exit_code(status);
        if code == 0 && session_seen == Some(false) {
            eprintln!(
                "ncsh: login: no session was started (every try was refused, or it timed out)"
            );
            return Ok(1);
        }
        Ok(code)
    }
}

/// The children of process `pid`, as /proc lists them.
fn children(pid: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default()
}

/// How much piped input is read ahead while a login program is answered line by line.
const PACED_QUEUE: usize = 64 * 1024;

/// Piped input held back from a login program until it asks (see [`Session::relay`]).
#[derive(Default)]
struct Paced {
    /// Read from stdin, not written yet.
    queued: Vec<u8>,
    /// The last output ended in a prompt (`login: `, `Password: `) not answered yet.
    prompted: bool,
}

impl Paced {
    /// The next line to answer with (all that is left when no newline ends it).
    fn next_line(&mut self) -> Vec<u8> {
        let end = self
            .queued
            .iter()
            .position(|&b| b == b'\n')
            .map_or(self.queued.len(), |i| i + 1);
        if end > 0 {
            self.prompted = false;
        }
        self.queued.drain(..end).collect()
    }
}

fn write_all(fd: BorrowedFd, mut data: &[u8]) -> Result<()> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
                let _ = poll(&mut fds, PollTimeout::NONE);
            }
            Err(e) => return Err(Error::sys("writing the session's output", e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_is_three_carets_within_a_second() {
        let t0 = Instant::now();
        let mut e = EscapeDetector::default();
        assert!(!e.feed(b"\x1d\x1d", t0));
        assert!(e.feed(b"\x1d", t0 + Duration::from_millis(900)));

        // Split across reads, with other input between: counting starts again.
        let mut e = EscapeDetector::default();
        assert!(!e.feed(b"\x1d\x1dx\x1d", t0));
        assert!(!e.feed(b"\x1d", t0));
        assert!(e.feed(b"\x1d", t0));

        // Too slow: the second window starts at the late caret.
        let mut e = EscapeDetector::default();
        assert!(!e.feed(b"\x1d\x1d", t0));
        assert!(!e.feed(b"\x1d", t0 + Duration::from_millis(1500)));
        assert!(!e.feed(b"\x1d", t0 + Duration::from_millis(1600)));
        assert!(e.feed(b"\x1d", t0 + Duration::from_millis(1700)));
    }
}
