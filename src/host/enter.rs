//! Running a command inside a running container without nsenter: `setns` into each namespace of
//! the container's leader, fork once more so the command is inside the PID namespace too, and
//! exec it with a clean root login environment. No shell is involved: argv goes to execvp as is.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
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

/// The namespace files of a container's leader, opened before the fork that enters them (the
/// ones we already share are left out, so entering works without a user namespace too).
pub struct Namespaces(Vec<File>);

impl Namespaces {
    pub fn open(leader: i32) -> Result<Namespaces> {
        let mut files: Vec<File> = Vec::new();
        for ns in NAMESPACES {
            let path = format!("/proc/{leader}/ns/{ns}");
            let file = File::open(&path).context(|| format!("opening {path}"))?;
            if !is_ours(&file, ns) {
                files.push(file);
            }
        }
        Ok(Namespaces(files))
    }
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
    let mut cmd = command_with(Namespaces::open(leader)?, argv, ROOT_COMMAND)?;
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

/// A `Command` that enters `namespaces` and runs `argv` there, set up as `setup` says; its
/// environment is the caller's until the caller sets one. stdio is whatever the caller gives
/// the `Command` (std sets it up before the pre-exec hook runs).
pub fn command_with(namespaces: Namespaces, argv: &[String], setup: Setup) -> Result<Command> {
    let Some((program, args)) = argv.split_first() else {
        return Err(Error::Usage("no command given to run".into()));
    };
    let files = namespaces.0;
    let mut cmd = Command::new(program);
    cmd.args(args);
    // SAFETY: between fork and exec this only makes raw syscalls (setns, fork, waitpid, chdir,
    // prctl, setsid, ioctl, _exit) and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            for file in &files {
                setns(file.as_fd(), CloneFlags::empty())?;
            }
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
                    if nix::unistd::chdir(Path::new(setup.dir)).is_err() {
                        let _ = nix::unistd::chdir(Path::new("/"));
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

pub(super) fn spawn_error(program: &str, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::Usage(format!("{program}: command not found in the container"))
    } else {
        Error::io(format!("running {program} in the container"), e)
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
    let namespaces = Namespaces::open(leader)?;
    for file in &namespaces.0 {
        setns(file.as_fd(), CloneFlags::empty())
            .context(|| "entering the container's namespaces".into())?;
    }
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

/// Run with stdin, stdout and stderr passed through; the command's exit code.
pub fn run_attached(leader: i32, argv: &[String]) -> Result<i32> {
    let mut cmd = command(leader, argv)?;
    let status = cmd.status().map_err(|e| spawn_error(&argv[0], e))?;
    Ok(exit_code(status))
}

/// Run with stdin closed and the output captured.
pub fn run_captured(leader: i32, argv: &[String], stdin: Option<&[u8]>) -> Result<Output> {
    let mut cmd = command(leader, argv)?;
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
