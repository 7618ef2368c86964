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

fn same_namespace(leader: i32, ns: &str) -> bool {
    let ours = std::fs::metadata(format!("/proc/self/ns/{ns}"));
    let theirs = std::fs::metadata(format!("/proc/{leader}/ns/{ns}"));
    use std::os::unix::fs::MetadataExt;
    matches!((ours, theirs), (Ok(a), Ok(b)) if a.ino() == b.ino() && a.dev() == b.dev())
}

/// A `Command` that runs `argv` inside the container whose PID 1 is `leader`.
pub fn command(leader: i32, argv: &[String]) -> Result<Command> {
    let Some((program, args)) = argv.split_first() else {
        return Err(Error::Usage("no command given to run".into()));
    };
    let mut files: Vec<File> = Vec::new();
    for ns in NAMESPACES {
        if same_namespace(leader, ns) {
            continue;
        }
        let path = format!("/proc/{leader}/ns/{ns}");
        files.push(File::open(&path).context(|| format!("opening {path}"))?);
    }
    let mut cmd = Command::new(program);
    cmd.args(args).env_clear();
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
    // SAFETY: between fork and exec this only makes raw syscalls (setns, fork, waitpid, chdir,
    // prctl, _exit) and allocates nothing.
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
                    if nix::unistd::chdir(Path::new("/root")).is_err() {
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

fn spawn_error(program: &str, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::Usage(format!("{program}: command not found in the container"))
    } else {
        Error::io(format!("running {program} in the container"), e)
    }
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
