//! `ncsh test`: the example tests of scripts/tests pass (in parallel, with a JUnit report); a
//! failing step says where, on which node, what ran and what it printed; `--keep` leaves the
//! nodes and says how to enter them; an uncaught error, SIGTERM and Ctrl-C (SIGINT) still
//! remove every node, bridge and scratch directory.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::common::*;

/// `n` test networks of this test's own (10.235.N.0/24 of claimed pairs), as NCSH_TEST_NETWORKS.
fn networks(env: &Env, n: usize) -> String {
    (0..n)
        .map(|_| {
            let (host, _) = env.test_addresses_in(235);
            let net = host.trim_end_matches(".1");
            format!("{net}.0/24")
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn ncsh_test(env: &Env, nets: &str, args: &[&str]) -> Command {
    let mut cmd = env.command(&[&["test"], args].concat());
    cmd.env("NCSH_TEST_NETWORKS", nets)
        .env("TMPDIR", env.prefix())
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

/// What an `ncsh test` run of process `pid` left: confs, roots, runtime state, scratch
/// directories, mounts (a node's root is a tmpfs), bridges, links, cgroups, supervisors.
fn leftovers(env: &Env, pid: u32) -> Vec<String> {
    let tag = format!("{pid:x}x");
    let mut left = Vec::new();
    for dir in [
        "etc/nixos-containers",
        "var/lib/nixos-containers",
        "run/ncsh",
    ] {
        if let Ok(entries) = std::fs::read_dir(env.prefix().join(dir)) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.contains(&tag) {
                    left.push(e.path().display().to_string());
                }
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(env.prefix()) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with("ncsh-test-") {
                left.push(e.path().display().to_string());
            }
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for line in mounts.lines() {
        if line.contains(&format!("t{tag}")) {
            left.push(format!("mount {line}"));
        }
    }
    let links = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    for line in stdout(&links).lines() {
        if line.contains(&format!("nt{tag}")) || line.contains(&format!("vb-t{tag}")) {
            left.push(format!("link {line}"));
        }
    }
    if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
        for e in entries.flatten() {
            if e.file_name()
                .to_string_lossy()
                .starts_with(&format!("ncsh-t{tag}"))
            {
                left.push(format!("cgroup {}", e.path().display()));
            }
        }
    }
    let supervisors = Command::new("pgrep")
        .args(["-f", &format!("__supervise t{tag}")])
        .output()
        .unwrap();
    if !supervisors.stdout.is_empty() {
        left.push("a supervisor process".into());
    }
    left
}

/// Run `cmd` to its end (five minutes at most: a hang is a failure, not a stuck test run).
fn run_to_end(mut cmd: Command) -> (Output, u32) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let ended = eventually(Duration::from_secs(300), || {
        child.try_wait().is_ok_and(|s| s.is_some())
    });
    if !ended {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!("ncsh test hung:\n{}", stdout(&out));
    }
    (child.wait_with_output().unwrap(), pid)
}

#[test]
fn the_example_tests_pass_in_parallel_and_leave_nothing() {
    require_root();
    let env = Env::new();
    let nets = networks(&env, 3);
    let junit = env.prefix().join("report.xml");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/tests");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| format!("scripts/tests/{}", e.file_name().to_string_lossy()))
        .filter(|f| f.ends_with(".rhai"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    let subtests: usize = files
        .iter()
        .map(|f| {
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(f))
                .unwrap()
                .matches("\nsubtest(")
                .count()
        })
        .sum();
    let mut args: Vec<&str> = vec!["-j", "3", "--junit", junit.to_str().unwrap()];
    args.extend(files.iter().map(String::as_str));
    let (out, pid) = run_to_end(ncsh_test(&env, &nets, &args));
    assert_ok(&out, "ncsh test scripts/tests/*.rhai");
    let text = stdout(&out);
    let summary = text.lines().last().unwrap_or_default();
    assert!(
        summary.starts_with(&format!("{subtests} passed, 0 failed (")),
        "{text}"
    );
    for f in &files {
        assert!(text.contains(&format!("[{f}] test {f}")), "{text}");
    }
    assert!(
        text.contains("[scripts/tests/web.rhai]   ok the client reaches the server by name ("),
        "{text}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(xml.matches("<testcase ").count(), subtests, "{xml}");
    assert!(
        xml.contains(&format!("tests=\"{subtests}\" failures=\"0\"")),
        "{xml}"
    );
    assert_eq!(leftovers(&env, pid), Vec::<String>::new());
}

const FAILING: &str = r#"let t = test(#{ nodes: #{ one: "", two: "" } });
t.start_all();
subtest("the nodes see each other", || {
    t.nodes.one.succeed("getent hosts two");
    t.nodes.one.succeed("echo to stdout; echo to stderr >&2; exit 4");
});
subtest("never runs", || {});
"#;

#[test]
fn a_failing_step_says_where_what_and_leaves_nothing() {
    require_root();
    let env = Env::new();
    let nets = networks(&env, 1);
    let script = env.prefix().join("failing.rhai");
    std::fs::write(&script, FAILING).unwrap();
    let junit = env.prefix().join("report.xml");
    let (out, pid) = run_to_end(ncsh_test(
        &env,
        &nets,
        &[script.to_str().unwrap(), "--junit", junit.to_str().unwrap()],
    ));
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    let expected = format!(
        "    {}:5:17: subtest ‘the nodes see each other’: one: command `echo to stdout; echo to stderr >&2; exit 4` failed (exit status 4); its output:\n    to stdout\n    to stderr\n",
        script.display()
    );
    assert!(text.contains(&expected), "{text}");
    assert!(
        text.contains("  FAILED the nodes see each other ("),
        "{text}"
    );
    assert!(!text.contains("never runs"), "{text}");
    assert!(
        text.ends_with("0 passed, 1 failed") || text.contains("\n0 passed, 1 failed ("),
        "{text}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<failure message=\""), "{xml}");
    assert_eq!(leftovers(&env, pid), Vec::<String>::new());

    // An uncaught error outside any subtest: FILE:LINE:COLUMN, and nothing left either.
    std::fs::write(
        &script,
        "let t = test(#{ nodes: #{ one: \"\" } });\nt.start_all();\nt.nodes.one.succeed(\"exit 2\");\n",
    )
    .unwrap();
    let (out, pid) = run_to_end(ncsh_test(&env, &nets, &[script.to_str().unwrap()]));
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "FAILED {}:3:13: one: command `exit 2` failed (exit status 2)",
            script.display()
        )),
        "{text}"
    );
    assert!(text.contains("\n0 passed, 1 failed ("), "{text}");
    assert_eq!(leftovers(&env, pid), Vec::<String>::new());
}

#[test]
fn keep_leaves_a_failed_tests_nodes_and_says_how_to_enter_them() {
    require_root();
    let env = Env::new();
    let nets = networks(&env, 1);
    let script = env.prefix().join("failing.rhai");
    std::fs::write(&script, FAILING).unwrap();
    let (out, pid) = run_to_end(ncsh_test(
        &env,
        &nets,
        &["--keep", script.to_str().unwrap()],
    ));
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let tag = format!("t{pid:x}x0");
    for node in ["one", "two"] {
        env.track(&format!("{tag}-{node}"));
    }
    let bridge = format!("n{tag}");
    let scratch = env.prefix().join(format!("ncsh-test-{pid:x}x0"));
    let cleanup = scopeguard(|| {
        let _ = Command::new("ip").args(["link", "del", &bridge]).status();
        let _ = std::fs::remove_dir_all(&scratch);
    });
    assert!(
        text.contains(&format!(
            "  one: container {tag}-one: enter it with `ncsh root-login {tag}-one`"
        )),
        "{text}"
    );
    assert!(text.contains(&format!("ip link del {bridge}")), "{text}");
    assert!(
        leftovers(&env, pid).len() >= 4,
        "the kept nodes are what the leftovers check finds: {:?}",
        leftovers(&env, pid)
    );
    let status = env.run(&["status", &format!("{tag}-two")]);
    assert_eq!(stdout(&status).trim(), "up");
    let inside = env.run_inside(&format!("{tag}-one"), &["getent", "hosts", "two"]);
    assert_ok(&inside, "getent hosts two in a kept node");
    drop(cleanup);
}

/// Run `f` when dropped (also when the test fails).
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}

fn wait_for_output(child: &mut Child, path: &Path, text: &str) {
    let seen = eventually(Duration::from_secs(60), || {
        std::fs::read_to_string(path).is_ok_and(|t| t.contains(text))
    });
    if !seen {
        let _ = child.kill();
        panic!(
            "no ‘{text}’ in the output: {}",
            std::fs::read_to_string(path).unwrap_or_default()
        );
    }
}

#[test]
fn sigterm_and_ctrl_c_still_remove_the_nodes() {
    require_root();
    let env = Env::new();
    let nets = networks(&env, 1);
    let script = env.prefix().join("hang.rhai");
    std::fs::write(
        &script,
        "let t = test(#{ nodes: #{ one: \"\" } });\nt.start_all();\nprint(\"booted\");\n\
         subtest(\"waits\", || { t.nodes.one.wait_until_succeeds(\"false\"); });\n",
    )
    .unwrap();
    for (signal, code, said) in [
        (nix::sys::signal::Signal::SIGTERM, 143, "SIGTERM"),
        (nix::sys::signal::Signal::SIGINT, 130, "Ctrl-C"),
    ] {
        let log = env.prefix().join("out.txt");
        let mut child = ncsh_test(&env, &nets, &[script.to_str().unwrap()])
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        wait_for_output(&mut child, &log, "subtest waits …");
        let pid = child.id();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal).unwrap();
        let status = child.wait().unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(status.code(), Some(code), "{signal}: {text}");
        assert!(
            text.contains(&format!("interrupted by {said}"))
                || text.contains("interrupted while waiting"),
            "{text}"
        );
        assert!(text.contains("\n0 passed, 1 failed ("), "{text}");
        assert_eq!(leftovers(&env, pid), Vec::<String>::new(), "{signal}");
    }
}

#[test]
fn interactive_sets_up_then_the_repl_has_the_nodes_and_sigterm_there_removes_them() {
    require_root();
    let env = Env::new();
    let nets = networks(&env, 1);
    let script = env.prefix().join("setup.rhai");
    std::fs::write(
        &script,
        "let t = test(#{ nodes: #{ alpha: \"\", beta: \"\" } });\nt.start_all();\n\
         subtest(\"not in --interactive\", || { throw \"ran\"; });\n",
    )
    .unwrap();
    for end in ["exit", "SIGTERM"] {
        // Not `env.command`: that gives stdin /dev/null, and the REPL must see a terminal.
        let mut cmd = Command::new(BIN);
        cmd.args(["test", "--interactive", script.to_str().unwrap()])
            .env("NCSH_PREFIX", env.prefix())
            .env("NCSH_BUILDER", "native")
            .env("NCSH_VERBS_PATH", "")
            .env("NCSH_TEST_NETWORKS", &nets)
            .env("TMPDIR", env.prefix())
            .env("NO_COLOR", "1")
            .env("TERM", "xterm")
            .env("NCSH_HISTORY", env.prefix().join("history"));
        let mut p = rexpect::session::spawn_command(cmd, Some(60_000)).expect("spawn on a pty");
        p.exp_string("subtest not in --interactive: skipped (--interactive)")
            .expect("the subtest skipped");
        p.exp_string("bound: t, alpha, beta").expect("the bindings");
        p.exp_string("ncsh> ").expect("a prompt");
        p.send_line("print(`bridge=${t.bridge}=`)").expect("send");
        let (_, bridge) = p.exp_regex(r"bridge=nt[0-9a-f]+x0=").expect("the bridge");
        let hex = bridge
            .trim_start_matches("bridge=nt")
            .trim_end_matches("x0=");
        let pid = u32::from_str_radix(hex, 16).unwrap();
        p.exp_string("ncsh> ").expect("a prompt");
        p.send_line(
            "print(alpha.succeed(\"getent hosts beta\") + t.nodes.beta.succeed(\"hostname\"))",
        )
        .expect("send");
        p.exp_regex(r"10\.235\.\d+\.3 +beta\r?\n(\x1b\[[0-9;?]*[a-zA-Z])*beta")
            .expect("alpha resolves beta, and beta is beta");
        p.exp_string("ncsh> ").expect("a prompt");
        if end == "exit" {
            p.send_line("exit(0)").expect("send");
            p.exp_string("1 passed, 0 failed").expect("the summary");
            p.exp_eof().expect("the end");
        } else {
            p.process_mut()
                .signal(rexpect::process::Signal::SIGTERM)
                .unwrap();
            p.exp_string("ended by signal 15")
                .expect("the signal reported");
            match p.process_mut().wait().unwrap() {
                rexpect::process::WaitStatus::Exited(_, code) => assert_eq!(code, 143),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(leftovers(&env, pid), Vec::<String>::new(), "{end}");
    }
}

/// The rest of the vocabulary, in one script: execute, the port, file and failure waits (a
/// timeout says what it last saw), systemctl, get_unit_info, copies both ways (a link the
/// container planted resolves inside it, and is replaced rather than written through), crash,
/// start and shutdown.
#[test]
fn the_vocabulary_does_what_it_says() {
    require_root();
    let env = Env::new();
    let nets = networks(&env, 1);
    let src = env.prefix().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("sub/f"), "hello\n").unwrap();
    let canary = env.prefix().join("host-canary");
    let out_file = env.prefix().join("passwd-copy");
    let script = env.prefix().join("vocabulary.rhai");
    std::fs::write(
        &script,
        format!(
            r#"let t = test(#{{ nodes: #{{ m: `systemd.services.srv = {{
    wantedBy = [ "multi-user.target" ];
    serviceConfig.ExecStart = "/usr/bin/python3 -m http.server 8000"; }};` }} }});
t.start_all();
let m = t.nodes.m;
subtest("execute", || {{
    let r = m.execute("echo out; echo err >&2; exit 3");
    if r.status != 3 || r.stdout != "out\n" || r.stderr != "err\n" {{ throw `execute: ${{r}}`; }}
}});
subtest("ports, units and systemctl", || {{
    m.wait_for_unit("srv.service", 30);
    m.wait_for_open_port(8000, 30);
    let r = m.systemctl("stop srv.service");
    if r.status != 0 {{ throw `systemctl: ${{r}}`; }}
    m.wait_for_closed_port(8000, 30);
    let info = m.get_unit_info("srv.service");
    if info.ActiveState != "inactive" {{ throw `after stop: ${{info.ActiveState}}`; }}
    if m.systemctl(["is-active", "srv.service"]).status == 0 {{ throw "still active"; }}
}});
subtest("files and failures", || {{
    m.succeed("(sleep 0.5; touch /tmp/later) >/dev/null 2>&1 &");
    m.wait_for_file("/tmp/later", 30);
    m.succeed("(sleep 0.5; rm /tmp/later) >/dev/null 2>&1 &");
    m.wait_until_fails("test -e /tmp/later", 30);
    let e = ();
    try {{ m.wait_until_succeeds("echo still-no; false", 1); }} catch (x) {{ e = x; }}
    if e == () || !e.message.contains("timed out after 1 s") || !e.message.contains("still-no") {{
        throw `the timeout: ${{e}}`;
    }}
    let f = m.fail("echo failed-as-expected; false");
    if f != "failed-as-expected\n" {{ throw `fail: ${{f}}`; }}
    m.succeed("test \"$(stat -f -c %T /)\" = tmpfs");
}});
subtest("copies", || {{
    m.copy_from_host("{src}", "/tmp/copied");
    m.succeed("test \"$(cat /tmp/copied/sub/f)\" = hello");
    m.succeed("ln -s /../../../../../../../../etc/passwd /root/evil");
    m.copy_to_host("/root/evil", "{out_file}");
    m.succeed("ln -s /../../../../../../../..{canary} /root/evil2");
    m.copy_from_host("{src}/sub/f", "/root/evil2");
    m.succeed("test -f /root/evil2 && ! test -L /root/evil2 && grep -q hello /root/evil2");
}});
subtest("crash, start, shutdown", || {{
    m.crash();
    if m.status != "down" {{ throw `after crash: ${{m.status}}`; }}
    m.start();
    m.succeed("true");
    m.shutdown();
    if m.status != "down" {{ throw `after shutdown: ${{m.status}}`; }}
}});
"#,
            src = src.display(),
            out_file = out_file.display(),
            canary = canary.display(),
        ),
    )
    .unwrap();
    let (out, pid) = run_to_end(ncsh_test(&env, &nets, &[script.to_str().unwrap()]));
    assert_ok(&out, "ncsh test vocabulary.rhai");
    assert!(
        stdout(&out).contains("\n5 passed, 0 failed ("),
        "{}",
        stdout(&out)
    );
    let copied = std::fs::read_to_string(&out_file).unwrap();
    let host = std::fs::read_to_string("/etc/passwd").unwrap();
    assert!(
        copied.starts_with("root:x:0:0:System administrator:") && copied != host,
        "copy_to_host read the host's file through the container's link: {copied}"
    );
    assert!(
        !canary.exists(),
        "copy_from_host wrote through the container's link"
    );
    assert_eq!(leftovers(&env, pid), Vec::<String>::new());
}

/// A node that cannot boot fails start_all at once (not after the start timeout: no other
/// node's supervisor holds its report pipe open), and the others are removed with it.
#[test]
fn a_node_that_cannot_boot_fails_start_all_at_once() {
    require_root();
    let env = Env::new();
    let nets = networks(&env, 1);
    let wrapper = env.prefix().join("nspawn");
    std::fs::write(
        &wrapper,
        "#!/bin/sh\ncase \"$*\" in *-bad*) echo no boot for you >&2; exit 1;; esac\nexec /usr/bin/systemd-nspawn \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let script = env.prefix().join("bad.rhai");
    std::fs::write(
        &script,
        "let t = test(#{ nodes: #{ bad: \"\", good1: \"\", good2: \"\", good3: \"\", good4: \"\" } });\n\
         let s = timestamp();\n\
         try { t.start_all(); } catch (e) { print(`failed after ${s.elapsed} s: ${e.message}`); }\n\
         if t.nodes.good1.status != \"up\" { throw \"good1 did not boot\"; }\n",
    )
    .unwrap();
    let mut cmd = ncsh_test(&env, &nets, &[script.to_str().unwrap()]);
    // The wrapper's filter is nothing to keep (host/seccomp.rs).
    cmd.env("NCSH_NSPAWN", &wrapper)
        .env("NCSH_SECCOMP_DIR", "")
        .env("NCSH_START_TIMEOUT", "40");
    let (out, pid) = run_to_end(cmd);
    assert_ok(&out, "ncsh test bad.rhai");
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.starts_with("failed after "))
        .unwrap_or_else(|| panic!("start_all did not fail: {text}"));
    let secs: f64 = line["failed after ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(secs < 20.0, "{line}");
    assert!(line.contains("failed to start container"), "{line}");
    assert_eq!(leftovers(&env, pid), Vec::<String>::new());
}
