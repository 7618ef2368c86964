//! `ncsh login` and `ncsh root-login` on a terminal allocated inside the container, driven from
//! a pty of the test (as a person at a terminal would) and through pipes.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::common::*;

/// How long any one step may take (a wrong password costs pam_unix's 2 s delay).
const STEP: Duration = Duration::from_secs(20);

const PASSWORD: &str = "wonderland";

/// A container with a user `alice` (password [`PASSWORD`]) from the users module, started.
fn container_with_alice(env: &Env, tag: &str) -> String {
    let name = unique_name(tag);
    let config = format!(
        "users.users.alice = {{ isNormalUser = true; description = \"Alice\"; password = \"{PASSWORD}\"; }};"
    );
    env.create_booting_with(&name, &["--config", &config]);
    let passwd = std::fs::read_to_string(env.root_path(&name).join("etc/passwd")).unwrap();
    assert!(
        passwd.contains("alice:x:1000:100:Alice:/home/alice:/bin/bash"),
        "{passwd}"
    );
    assert_ok(&env.run(&["start", &name]), "start");
    name
}

/// Something that gives ncsh's output and takes its input.
pub(crate) struct Session {
    child: Child,
    /// What we read ncsh's output from.
    output: File,
    /// What we type into; `None` once closed.
    input: Option<File>,
    seen: Vec<u8>,
    /// Where the next `expect` starts looking.
    mark: usize,
    started: Instant,
}

impl Session {
    /// `ncsh ARGS` with its stdin, stdout and stderr on a new pty of the test.
    pub(crate) fn on_pty(env: &Env, args: &[&str]) -> Session {
        Session::command_on_pty(env.command(args))
    }

    /// `cmd` with its stdin, stdout and stderr on a new pty of the test.
    pub(crate) fn command_on_pty(mut cmd: Command) -> Session {
        let size = nix::pty::Winsize {
            ws_row: 30,
            ws_col: 100,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&size), None).unwrap();
        // openpty's descriptors are inherited: no other child may hold this terminal open.
        for fd in [&pty.master, &pty.slave] {
            use nix::fcntl::{FcntlArg, FdFlag, fcntl};
            fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).unwrap();
        }
        let slave = |fd: &OwnedFd| Stdio::from(fd.try_clone().unwrap());
        let started = Instant::now();
        let child = cmd
            .env("TERM", "xterm")
            .stdin(slave(&pty.slave))
            .stdout(slave(&pty.slave))
            .stderr(slave(&pty.slave))
            .spawn()
            .unwrap();
        drop(pty.slave);
        let master = File::from(pty.master);
        Session {
            child,
            input: Some(master.try_clone().unwrap()),
            output: master,
            seen: Vec::new(),
            mark: 0,
            started,
        }
    }

    /// `ncsh ARGS` with stdin and stdout pipes (stderr goes along with stdout's checks unseen).
    pub(crate) fn on_pipes(env: &Env, args: &[&str]) -> Session {
        let mut cmd = env.command(args);
        cmd.env_remove("TERM");
        Session::command_on_pipes(cmd)
    }

    /// `cmd` with stdin and stdout pipes (stderr goes to the test's).
    pub(crate) fn command_on_pipes(mut cmd: Command) -> Session {
        let started = Instant::now();
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let input = File::from(OwnedFd::from(child.stdin.take().unwrap()));
        let output = File::from(OwnedFd::from(child.stdout.take().unwrap()));
        Session {
            child,
            input: Some(input),
            output,
            seen: Vec::new(),
            mark: 0,
            started,
        }
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen).into_owned()
    }

    /// Read once (waiting up to `deadline`); false at end of output.
    fn read_some(&mut self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut fds = [PollFd::new(self.output.as_fd(), PollFlags::POLLIN)];
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let n = poll(&mut fds, PollTimeout::from(ms)).unwrap();
        if n == 0 {
            return true;
        }
        let mut buf = [0u8; 4096];
        match self.output.read(&mut buf) {
            Ok(0) => false,
            Ok(n) => {
                self.seen.extend_from_slice(&buf[..n]);
                true
            }
            // A pty master reads EIO once the other side is closed.
            Err(e) if e.raw_os_error() == Some(libc::EIO) => false,
            Err(e) => panic!("reading ncsh's output: {e}"),
        }
    }

    /// Wait until `what` appears after the previous match; the time since ncsh started.
    #[track_caller]
    pub(crate) fn expect(&mut self, what: &str) -> Duration {
        let deadline = Instant::now() + STEP;
        loop {
            let from = self.mark.min(self.seen.len());
            if let Some(at) = find(&self.seen[from..], what.as_bytes()) {
                self.mark = from + at + what.len();
                return self.started.elapsed();
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what:?}; output so far: {:?}",
                self.text()
            );
            if !self.read_some(deadline) {
                let from = self.mark.min(self.seen.len());
                assert!(
                    find(&self.seen[from..], what.as_bytes()).is_some(),
                    "output ended before {what:?}: {:?}",
                    self.text()
                );
            }
        }
    }

    pub(crate) fn send(&mut self, text: &str) {
        let input = self.input.as_mut().expect("input still open");
        input.write_all(text.as_bytes()).unwrap();
        input.flush().unwrap();
    }

    /// Resize ncsh's terminal and tell it so, as a terminal emulator does.
    fn resize(&self, rows: u16, cols: u16) {
        use std::os::fd::AsRawFd;
        let size = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize through the pointer, which outlives the call.
        let rc = unsafe { libc::ioctl(self.output.as_raw_fd(), libc::TIOCSWINSZ, &size) };
        assert_eq!(rc, 0);
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGWINCH,
        )
        .unwrap();
    }

    /// Close our end of ncsh's input.
    pub(crate) fn close_input(&mut self) {
        self.input = None;
    }

    /// Close the pty's master, as a terminal window that is closed does.
    fn hang_up(&mut self) {
        self.input = None;
        self.output = File::open("/dev/null").unwrap();
    }

    /// ICANON and ECHO of ncsh's terminal (cooked mode, as a shell leaves it, or raw).
    fn cooked(&self) -> bool {
        use nix::sys::termios::{LocalFlags, tcgetattr};
        let mode = tcgetattr(self.output.as_fd()).unwrap();
        mode.local_flags
            .contains(LocalFlags::ICANON | LocalFlags::ECHO)
    }

    /// Read the rest of the output and ncsh's exit code; both within [`STEP`].
    #[track_caller]
    pub(crate) fn finish(&mut self) -> i32 {
        let deadline = Instant::now() + STEP;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // What it wrote before it ended, up to the end of the output.
                while Instant::now() < deadline && self.read_some(deadline) {}
                return status.code().expect("ncsh exited, not killed");
            }
            assert!(
                Instant::now() < deadline,
                "ncsh did not end; output so far: {:?}",
                self.text()
            );
            if !self.read_some(Instant::now() + Duration::from_millis(50)) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // A failed test must not leave ncsh (and the session in the container) behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Processes in the container's PID namespace whose name is one of `names`.
fn processes_in(env: &Env, name: &str, names: &[&str]) -> Vec<String> {
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let theirs = ns(&leader(env, name).to_string());
    assert!(theirs.is_some());
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || ns(&pid) != theirs {
            continue;
        }
        let comm =
            std::fs::read_to_string(Path::new("/proc").join(&pid).join("comm")).unwrap_or_default();
        if names.contains(&comm.trim()) {
            found.push(format!("{pid} {}", comm.trim()));
        }
    }
    found
}

#[track_caller]
fn assert_session_gone(env: &Env, name: &str) {
    let names = ["login", "bash", "su", "sh", "id"];
    let gone = eventually(Duration::from_secs(5), || {
        processes_in(env, name, &names).is_empty()
    });
    assert!(
        gone,
        "left running in {name}: {:?}",
        processes_in(env, name, &names)
    );
}

#[test]
fn login_with_a_password_on_a_terminal() {
    require_root();
    let env = Env::new();
    let name = container_with_alice(&env, "lgn");

    // The right password: a shell as alice on the container's own terminal.
    let mut s = Session::on_pty(&env, &["login", &name]);
    let prompt = s.expect(&format!("{name} login: "));
    eprintln!("login: prompt after {prompt:?}");
    s.send("alice\n");
    s.expect("Password: ");
    s.send(&format!("{PASSWORD}\n"));
    s.expect("$ ");
    s.send("echo \"user=$(id -un) tty=$(tty) cols=$(tput cols 2>/dev/null || stty size)\"\n");
    s.expect("user=alice tty=/dev/pts/");
    s.send("exit 3\n");
    s.expect("logout");
    // login's own status is passed on: 0 after a session that ran.
    assert_eq!(s.finish(), 0, "{}", s.text());
    assert_session_gone(&env, &name);

    // A wrong password: refused, and login asks again.
    let mut s = Session::on_pty(&env, &["login", &name]);
    s.expect("login: ");
    s.send("alice\n");
    s.expect("Password: ");
    s.send("not-the-password\n");
    s.expect("Login incorrect");
    s.expect("login: ");
    // Hanging up the caller's terminal ends the session, and nothing stays behind inside.
    s.hang_up();
    s.finish();
    assert_session_gone(&env, &name);
}

#[test]
fn login_driven_through_pipes() {
    require_root();
    let env = Env::new();
    let name = container_with_alice(&env, "lgp");

    let mut s = Session::on_pipes(&env, &["login", &name]);
    s.expect(&format!("{name} login: "));
    s.send("alice\n");
    s.expect("Password: ");
    s.send(&format!("{PASSWORD}\n"));
    s.expect("$ ");
    s.send("echo \"I am $(id -un)\"\n");
    s.expect("I am alice");
    // The end of stdin reaches the shell as the terminal's EOF: it logs out.
    s.close_input();
    s.expect("logout");
    assert_eq!(s.finish(), 0, "{}", s.text());
    assert_session_gone(&env, &name);
}

#[test]
fn root_login_on_a_terminal() {
    require_root();
    let env = Env::new();
    let name = unique_name("rlg");
    env.create_booting(&name);
    assert_ok(&env.run(&["start", &name]), "start");

    let mut s = Session::on_pty(&env, &["root-login", &name]);
    s.expect("# ");
    s.send("echo \"$(id -un) on $(tty) answers $((6*7))\"\n");
    s.expect("root on /dev/pts/");
    s.expect("answers 42");
    // The window size at the start, and after a change.
    s.send("stty size\n");
    s.expect("30 100");
    s.resize(50, 132);
    std::thread::sleep(Duration::from_millis(100));
    s.send("stty size\n");
    s.expect("50 132");
    s.send("exit 5\n");
    assert_eq!(s.finish(), 5, "{}", s.text());
    assert_session_gone(&env, &name);

    // A shell killed by a signal: 128+N.
    let mut s = Session::on_pty(&env, &["root-login", &name]);
    s.expect("# ");
    s.send("kill -TERM $$; kill -KILL $$\n");
    assert_eq!(s.finish(), 128 + libc::SIGKILL, "{}", s.text());
    assert_session_gone(&env, &name);
}

#[test]
fn login_fails_after_three_refused_tries() {
    require_root();
    let env = Env::new();
    let name = unique_name("lgf");
    env.create_booting(&name);
    assert_ok(&env.run(&["start", &name]), "start");

    let mut s = Session::on_pty(&env, &["login", &name]);
    for _ in 0..3 {
        s.expect(&format!("{name} login: "));
        s.send("nosuchuser\n");
        s.expect("Password: ");
        s.send("not-the-password\n");
    }
    s.expect("Maximum number of tries exceeded (3)");
    // login itself exits 0 here; no session ran, so that is no success.
    assert_eq!(s.finish(), 1, "{}", s.text());
    s.expect("no session was started");
    assert_session_gone(&env, &name);
}

#[test]
fn login_needs_a_running_container() {
    require_root();
    let env = Env::new();
    let name = unique_name("lgs");
    env.create(&name, &[]);
    let mut s = Session::on_pty(&env, &["login", &name]);
    assert_ne!(s.finish(), 0);
    assert!(
        s.text().contains("unable to get container's main PID"),
        "{}",
        s.text()
    );
}

#[test]
fn a_signal_to_ncsh_ends_the_session_and_restores_the_terminal() {
    require_root();
    let env = Env::new();
    let name = unique_name("rls");
    env.create_booting(&name);
    assert_ok(&env.run(&["start", &name]), "start");

    let mut s = Session::on_pty(&env, &["root-login", &name]);
    assert!(s.cooked());
    s.expect("# ");
    // ncsh put the caller's terminal in raw mode for the session.
    assert!(!s.cooked());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(s.finish(), 128 + libc::SIGTERM, "{}", s.text());
    assert!(s.cooked(), "the terminal mode was not restored");
    assert_session_gone(&env, &name);
}
