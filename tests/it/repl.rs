//! The REPL (`ncsh` with no arguments): semantics through piped stdin, keys through a pty.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rexpect::session::{PtySession, spawn_command};
use tempfile::TempDir;

/// A fresh state tree and history file for one test.
struct Sandbox {
    dir: TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn history(&self) -> PathBuf {
        self.dir.path().join("history")
    }

    /// `ncsh` with a clean environment pointing into the sandbox.
    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ncsh"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("NCSH_PREFIX", self.dir.path())
            .env("NCSH_HISTORY", self.history())
            .env("NCSH_VERBS_PATH", "")
            .env("TERM", "xterm")
            .current_dir(self.dir.path());
        cmd
    }

    /// A container's conf, as `create` writes it (no root filesystem needed).
    fn conf(&self, name: &str, n: u32) {
        let dir = self.dir.path().join("etc/nixos-containers");
        std::fs::create_dir_all(&dir).expect("conf dir");
        std::fs::write(
            dir.join(format!("{name}.conf")),
            format!("PRIVATE_NETWORK=1\nHOST_ADDRESS=10.233.{n}.1\nLOCAL_ADDRESS=10.233.{n}.2\n"),
        )
        .expect("write conf");
    }

    /// Run with `input` on stdin (not a terminal): (status, stdout, stderr), within 20 s.
    fn pipe(&self, input: &str) -> (i32, String, String) {
        let mut child = self
            .command()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ncsh");
        let mut stdin = child.stdin.take().expect("stdin");
        let input = input.to_string();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("ncsh did not finish within 20 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let _ = writer.join();
        let mut out = String::new();
        let mut err = String::new();
        child
            .stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut out)
            .expect("read stdout");
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut err)
            .expect("read stderr");
        (status.code().unwrap_or(-1), out, err)
    }

    /// The interactive REPL on a pty, at its first prompt; plain output (NO_COLOR).
    fn pty(&self) -> PtySession {
        let mut cmd = self.command();
        cmd.env("NO_COLOR", "1");
        let mut p = spawn_command(cmd, Some(10_000)).expect("spawn on a pty");
        p.exp_string("ncsh> ").expect("first prompt");
        p
    }
}

/// Wait until the REPL reads input again: rustyline turns bracketed paste on (`ESC[?2004h`)
/// as it enters raw mode, then draws the prompt. (`ncsh> ` alone also shows up on redraws.)
fn ready(p: &mut PtySession) {
    p.exp_string("\x1b[?2004h").expect("reading again");
    p.exp_string("ncsh> ").expect("prompt");
}

/// Type `text` (no Enter) and make sure it reached the pty.
fn keys(p: &mut PtySession, text: &str) {
    p.send(text).expect("send");
    p.flush().expect("flush");
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn piped_state_persists_across_lines() {
    let sb = Sandbox::new();
    let (code, out, err) = sb.pipe(
        "let x = 40;\nfn add(a, b) { a + b }\nconst K = 2;\nprint(add(x, K));\nx += 1;\nprint(x);\n",
    );
    assert_eq!((code, out.as_str(), err.as_str()), (0, "42\n41\n", ""));
}

#[test]
fn piped_multi_line_entries() {
    let sb = Sandbox::new();
    let (code, out, err) = sb.pipe(
        "fn greet(name) {\n    let s = `hello\n${name}`;\n    s\n}\nlet xs = [\n  1,\n  2,\n];\nprint(greet(\"web\"));\nprint(xs.len() + (1 +\n 2));\n",
    );
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(out, "hello\nweb\n5\n");
}

#[test]
fn piped_errors_do_not_end_the_session() {
    let sb = Sandbox::new();
    let (code, out, err) =
        sb.pipe("let a = 1;\nnope(a);\nprint(\"after\");\n}\nprint(a + 1);\nlet s = \"x\" * [];\n");
    assert_eq!(out, "after\n2\n");
    assert_eq!(code, 1, "any failed entry makes the exit status 1");
    assert!(
        err.contains("<stdin>:2:1: Function not found: nope"),
        "{err}"
    );
    assert!(err.contains("<stdin>:4:1:"), "{err}");
    assert!(err.contains("<stdin>:6:"), "{err}");
}

#[test]
fn piped_domain_error_and_exit_code() {
    let sb = Sandbox::new();
    let (code, out, err) =
        sb.pipe("print(exists(\"web\"));\ncontainer(\"web\");\nexit(7);\nprint(\"never\");\n");
    assert_eq!((code, out.as_str()), (7, "false\n"));
    assert!(err.starts_with("<stdin>:2:1: "), "{err}");
    let (code, _, _) = sb.pipe("print(1);\nexit();\n");
    assert_eq!(code, 0);
}

#[test]
fn piped_script_like_stdin() {
    let sb = Sandbox::new();
    let (code, out, _) = sb.pipe("#!/usr/bin/env ncsh\nprint(\"hi\")\n");
    assert_eq!((code, out.as_str()), (0, "hi\n"));
    // Unfinished input at the end is reported, not silently dropped.
    let (code, _, err) = sb.pipe("print(1);\nfn f() {\n");
    assert_eq!(code, 1);
    assert!(err.contains("<stdin>:2:"), "{err}");
}

#[test]
fn piped_commands() {
    let sb = Sandbox::new();
    sb.conf("web", 9);
    let lib = sb.dir.path().join("lib.rhai");
    std::fs::write(
        &lib,
        "/// Doubles.\nfn twice(x) { x * 2 }\nlet loaded = true;\n",
    )
    .expect("lib");
    let input = format!(
        ":help\n:help container\n:help :load\n:verbs\n:load {}\nprint(twice(21));\n:help twice\n:scope\n:list\n:status web\n:show-ip web\n:bogus\n:quit\nprint(\"not reached\");\n",
        path_str(&lib)
    );
    let (code, out, err) = sb.pipe(&input);
    assert_eq!(code, 1, "the unknown command failed: {err}");
    assert!(out.contains(":load FILE"), "{out}");
    assert!(
        out.contains("container(name: string) -> Container"),
        "{out}"
    );
    assert!(out.contains(":start"), "{out}");
    assert!(out.contains("42\n"), "{out}");
    assert!(out.contains("fn twice(x)\n  Doubles."), "{out}");
    assert!(out.contains("let loaded: bool = true"), "{out}");
    assert!(out.contains("web\ndown\n10.233.9.2\n"), "{out}");
    assert!(err.contains("unknown command :bogus"), "{err}");
    assert!(!out.contains("not reached"), "{out}");
}

#[test]
fn pty_completes_a_function() {
    let sb = Sandbox::new();
    let mut p = sb.pty();
    keys(&mut p, "exis\t");
    p.exp_string("exists(").expect("completed");
    p.send_line("\"nope\")").expect("send");
    p.exp_string("false").expect("result");
    ready(&mut p);
    p.send_control('d').expect("ctrl-d");
    p.exp_eof().expect("exits");
}

#[test]
fn pty_completes_a_method_after_dot() {
    let sb = Sandbox::new();
    sb.conf("web", 9);
    let mut p = sb.pty();
    p.send_line("let c = container(\"web\");").expect("send");
    ready(&mut p);
    keys(&mut p, "c.host_i\t");
    p.exp_string("host_ip").expect("completed");
    p.send_line("").expect("send");
    p.exp_string("\"10.233.9.1\"").expect("value");
    p.send_line("c").expect("send");
    p.exp_string("web  down  ip 10.233.9.2  host 10.233.9.1")
        .expect("container rendered");
    p.send_line(":quit").expect("send");
    p.exp_eof().expect("exits");
}

#[test]
fn pty_completes_a_container_name() {
    let sb = Sandbox::new();
    sb.conf("frontend", 9);
    sb.conf("database", 10);
    let mut p = sb.pty();
    keys(&mut p, "container(\"fr\t");
    p.exp_string("frontend\"").expect("completed");
    p.send_line(").name").expect("send");
    p.exp_string("\"frontend\"").expect("value");
    p.send_line("containers()").expect("send");
    p.exp_regex(r"NAME +STATUS +IP +HOST IP\r?\ndatabase +down +10\.233\.10\.2 +10\.233\.10\.1\r?\nfrontend +down")
        .expect("table");
    ready(&mut p);
    p.send_control('d').expect("ctrl-d");
    p.exp_eof().expect("exits");
}

#[test]
fn pty_history_is_shared_between_sessions() {
    let sb = Sandbox::new();
    let mut p = sb.pty();
    p.send_line("fn two() {\n  2\n}").expect("send multi-line");
    ready(&mut p);
    p.send_line("let remembered = 6 * 7").expect("send");
    ready(&mut p);
    p.send_control('d').expect("ctrl-d");
    p.exp_eof().expect("exits");

    let history = std::fs::read_to_string(sb.history()).expect("history file");
    assert!(history.contains("let remembered = 6 * 7"), "{history}");

    let mut p = sb.pty();
    // Up twice: past the last entry to the multi-line one, recalled whole.
    keys(&mut p, "\x1b[A");
    p.exp_string("let remembered = 6 * 7").expect("recalled");
    keys(&mut p, "\x1b[A");
    p.exp_regex(r"fn two\(\) \{\r?\n  2\r?\n\}")
        .expect("multi-line entry");
    p.send_line("").expect("enter");
    ready(&mut p);
    // Reverse search finds the other one.
    keys(&mut p, "\x12remem");
    p.exp_string("let remembered").expect("found");
    p.send_line("").expect("enter");
    ready(&mut p);
    p.send_line("remembered / two()").expect("send");
    p.exp_string("\r\n21\r\n").expect("both recalled and run");
    ready(&mut p);
    p.send_control('d').expect("ctrl-d");
    p.exp_eof().expect("exits");
}

#[test]
fn pty_errors_show_a_caret_and_the_session_goes_on() {
    let sb = Sandbox::new();
    let mut p = sb.pty();
    p.send_line("let x = 1 + nope(2);").expect("send");
    p.exp_string("let x = 1 + nope(2);").expect("echo");
    p.exp_regex(r"\r\n +\^\r\nerror: Function not found: nope")
        .expect("caret and message");
    p.send_line("1 + 1").expect("send");
    p.exp_string("\r\n2\r\n").expect("still alive");
    ready(&mut p);
    p.send_control('d').expect("ctrl-d");
    p.exp_eof().expect("exits");
}

#[test]
fn pty_ctrl_c_clears_input_and_interrupts() {
    let sb = Sandbox::new();
    let mut p = sb.pty();
    // While editing: the line is dropped.
    keys(&mut p, "let junk = ");
    p.send_control('c').expect("ctrl-c");
    ready(&mut p);
    // While running: sleep(100) and a busy loop both end, the prompt returns.
    p.send_line("print(\"sleep\" + \"ing\"); sleep(100); print(\"slept\")")
        .expect("send");
    p.exp_string("sleeping\r\n").expect("running");
    let started = Instant::now();
    p.send_control('c').expect("ctrl-c");
    p.exp_string("interrupted").expect("interrupted");
    ready(&mut p);
    assert!(started.elapsed() < Duration::from_secs(5));
    // "looping" once the loop has run (an interrupt may land before its first round).
    p.send_line("let n = 0; loop { n += 1; if n == 1 { print(\"loop\" + \"ing\") } }")
        .expect("send");
    p.exp_string("looping\r\n").expect("running");
    p.send_control('c').expect("ctrl-c");
    p.exp_string("interrupted").expect("interrupted");
    ready(&mut p);
    p.send_line("print(\"alive \" + (n > 0))").expect("send");
    p.exp_string("alive true").expect("state kept");
    ready(&mut p);
    p.send_control('d').expect("ctrl-d");
    p.exp_eof().expect("exits");
}

#[test]
fn pty_ctrl_d_exits_cleanly() {
    let sb = Sandbox::new();
    let mut p = sb.pty();
    p.send_control('d').expect("ctrl-d");
    p.exp_eof().expect("exits");
    match p.process_mut().wait().expect("status") {
        rexpect::process::WaitStatus::Exited(_, code) => assert_eq!(code, 0),
        other => panic!("unexpected {other:?}"),
    }
}

/// A raw pty for timing (rexpect's reader polls every 100 ms, too coarse to time with).
struct RawPty {
    master: std::fs::File,
    child: std::process::Child,
}

impl RawPty {
    fn spawn(mut cmd: Command) -> RawPty {
        use std::os::unix::process::CommandExt;
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let slave = std::fs::File::from(pty.slave);
        cmd.stdin(slave.try_clone().expect("dup"))
            .stdout(slave.try_clone().expect("dup"))
            .stderr(slave);
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn on a pty");
        RawPty {
            master: std::fs::File::from(pty.master),
            child,
        }
    }

    /// Read until `needle` shows up (5 s at most).
    fn wait_for(&mut self, needle: &str) {
        use std::os::fd::AsFd;
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seen = Vec::new();
        let mut buf = [0u8; 65536];
        while !String::from_utf8_lossy(&seen).contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timeout waiting for {needle:?}");
            let mut fds = [nix::poll::PollFd::new(
                self.master.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            if nix::poll::poll(&mut fds, ms).expect("poll") > 0 {
                let n = self.master.read(&mut buf).expect("read pty");
                seen.extend_from_slice(&buf[..n]);
            }
        }
    }

    fn write(&mut self, text: &str) {
        self.master.write_all(text.as_bytes()).expect("write pty");
    }
}

/// The two speed figures, on a pty with 200 containers defined. Timing depends on the build and
/// the machine, so it is not run by default:
/// `cargo test --release --test integration repl_speed -- --ignored --nocapture`.
#[test]
#[ignore]
fn repl_speed() {
    let sb = Sandbox::new();
    for i in 0..200 {
        sb.conf(&format!("ct{i:03}"), i);
    }
    let mut starts = Vec::new();
    let mut tabs = Vec::new();
    for _ in 0..10 {
        let mut cmd = sb.command();
        cmd.env("NO_COLOR", "1");
        let t0 = Instant::now();
        let mut p = RawPty::spawn(cmd);
        p.wait_for("ncsh> ");
        starts.push(t0.elapsed());
        p.write("container(\"ct19");
        p.wait_for("ct19");
        let t1 = Instant::now();
        p.write("9\t");
        p.wait_for("ct199\"");
        tabs.push(t1.elapsed());
        p.write("\x03");
        p.wait_for("\x1b[?2004h");
        p.write("\x04");
        let status = p.child.wait().expect("wait");
        assert!(status.success());
    }
    starts.sort();
    tabs.sort();
    println!(
        "prompt appears: median {:?}, max {:?}; Tab on a container name (200 confs): median {:?}, max {:?}",
        starts[5], starts[9], tabs[5], tabs[9]
    );
}

#[test]
fn piped_imports_outlive_their_line() {
    let sb = Sandbox::new();
    std::fs::write(sb.dir.path().join("mymod.rhai"), "fn five() { 5 }\n").expect("module");
    let (code, out, err) = sb.pipe("import \"mymod\" as m;\nprint(m::five());\n");
    assert_eq!((code, out.as_str(), err.as_str()), (0, "5\n", ""));
}

#[test]
fn pty_ctrl_c_interrupts_a_run_in_a_real_container() {
    use crate::common::{Env, assert_ok, require_root, unique_name};
    require_root();
    let env = Env::new();
    let name = unique_name("rpl");
    env.create_booting(&name);
    assert_ok(&env.run(&["start", &name]), "start");
    // Not `env.command`: that gives stdin /dev/null, and the REPL must see a terminal.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ncsh"));
    cmd.env("NCSH_PREFIX", env.prefix())
        .env("NCSH_VERBS_PATH", "")
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .env("NCSH_HISTORY", env.prefix().join("history"));
    let mut p = spawn_command(cmd, Some(20_000)).expect("spawn on a pty");
    p.exp_string("ncsh> ").expect("first prompt");
    p.send_line(&format!(
        "let c = container(\"{name}\"); print(\"run\" + \"ning\"); c.run([\"sleep\", \"100\"]); print(\"not \" + \"reached\")"
    ))
    .expect("send");
    p.exp_string("running\r\n").expect("running");
    // Let `sleep` start inside before interrupting it.
    let inside = || {
        let out = env.run(&["run", &name, "--", "pgrep", "-x", "sleep"]);
        out.status.success()
    };
    assert!(crate::common::eventually(Duration::from_secs(10), inside));
    let started = Instant::now();
    p.send_control('c').expect("ctrl-c");
    ready(&mut p);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "Ctrl-C took {:?}",
        started.elapsed()
    );
    assert!(
        crate::common::eventually(Duration::from_secs(5), || !inside()),
        "sleep is still running in the container"
    );
    p.send_line("print(c.status)").expect("send");
    p.exp_string("up")
        .expect("the session and the container go on");
    ready(&mut p);
    p.send_control('d').expect("ctrl-d");
    p.exp_eof().expect("exits");
}

#[test]
fn piped_options_command_lists_options() {
    let sb = Sandbox::new();
    let (code, out, err) = sb.pipe(":help\n:options services.openssh.ports\n:options servics\n");
    assert_eq!(code, 1, "the unknown prefix failed: {err}");
    assert!(out.contains(":options [PREFIX]"), "{out}");
    assert!(out.contains("option paths inside strings"), "{out}");
    assert!(
        out.contains(
            "services.openssh.ports\n    Type: list of port    Default: [ 22 ]\n    \
             The ports sshd listens on.\n    Declared in: openssh\n"
        ),
        "{out}"
    );
    assert!(
        err.contains(
            ":options: there is no option ‘servics’ nor any below it: did you mean services?"
        ),
        "{err}"
    );
}

#[test]
fn pty_completes_option_paths_in_strings() {
    let sb = Sandbox::new();
    let mut p = sb.pty();
    // The common start of every services.openssh option, then one of them.
    keys(&mut p, "let s = \"services.open\t");
    p.exp_string("services.openssh.")
        .expect("completed to the common start");
    keys(&mut p, "po\t");
    p.exp_string("ports").expect("completed");
    p.send_line("\";").expect("send");
    ready(&mut p);
    p.send_line("s").expect("send");
    p.exp_string("\"services.openssh.ports\"").expect("value");
    ready(&mut p);
    // A <name> segment stands for the name typed.
    keys(&mut p, "let u = \"users.users.alice.isN\t");
    p.exp_string("NormalUser").expect("completed");
    p.send_line("\";").expect("send");
    ready(&mut p);
    p.send_line("u").expect("send");
    p.exp_string("\"users.users.alice.isNormalUser\"")
        .expect("value");
    ready(&mut p);
    p.send_control('d').expect("ctrl-d");
    p.exp_eof().expect("exits");
}
