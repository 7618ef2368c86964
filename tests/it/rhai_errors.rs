//! Rhai errors that help a newcomer: the signatures of a function called with the wrong
//! arguments, the properties of a type, the place inside a function where an error happened,
//! and completion that shows signatures in Rhai's words, not Rust's.

use std::process::{Command, Stdio};

use rexpect::session::spawn_command;
use tempfile::TempDir;

/// A state tree with the conf of one (never started) container `foo`.
fn sandbox() -> TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let confs = dir.path().join("etc/nixos-containers");
    std::fs::create_dir_all(&confs).expect("conf dir");
    std::fs::write(
        confs.join("foo.conf"),
        "PRIVATE_NETWORK=1\nHOST_ADDRESS=10.233.251.1\nLOCAL_ADDRESS=10.233.251.2\n",
    )
    .expect("conf");
    dir
}

fn ncsh(dir: &TempDir) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ncsh"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("NCSH_PREFIX", dir.path())
        .env("NCSH_HISTORY", dir.path().join("history"))
        .env("NCSH_VERBS_PATH", "")
        .env("NO_COLOR", "1")
        .current_dir(dir.path());
    cmd
}

/// `ncsh ARGS` with `input` on stdin: (status, stderr).
fn run(dir: &TempDir, args: &[&str], input: &str) -> (i32, String) {
    use std::io::Write;
    let mut child = ncsh(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_string_where_argv_is_expected_shows_the_signatures() {
    let dir = sandbox();
    let (code, err) = run(
        &dir,
        &[],
        "let c = container(\"foo\");\nc.run(\"uname -a\")\n",
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.starts_with("<stdin>:2:3: Function not found: run(Container, string): "),
        "{err}"
    );
    assert!(err.contains("takes an argv array"), "{err}");
    assert!(err.contains("[\"uname\", \"-a\"]"), "{err}");
    assert!(
        err.contains(
            "it is called as c.run(argv: array) -> map or c.run(argv: array, opts: map) -> map \
             or c.run(argv: array, stdin: string) -> map\n"
        ),
        "{err}"
    );
    assert!(!err.contains("ImmutableString"), "{err}");
}

#[test]
fn an_unknown_property_lists_the_properties() {
    let dir = sandbox();
    let (code, err) = run(&dir, &[], "let c = container(\"foo\");\nc.addr\n");
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        err,
        "<stdin>:2:3: Container has no property ‘addr’: its properties: \
         name ip host_ip status usage limits leader host_key options\n"
    );
}

#[test]
fn an_error_inside_a_function_points_at_it() {
    let dir = sandbox();
    let source = "fn total(xs) {\n  let sum = 0;\n  for x in xs { sum += x * factor }\n  sum\n}\nprint(total([1, 2]));\n";
    // As a script: the line and column of the undefined variable, and the call.
    let script = dir.path().join("total.rhai");
    std::fs::write(&script, source).expect("script");
    let (code, err) = run(&dir, &[script.to_str().expect("utf-8")], "");
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        err,
        format!(
            "{}:3:28: Variable not found: factor (in fn total, called at line 6)\n",
            script.display()
        )
    );
    // Piped into the REPL: the same place, where the function was entered.
    let (code, err) = run(&dir, &[], &format!("let a = 1;\n{source}"));
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        err,
        "<stdin>:4:28: Variable not found: factor (in fn total, called at line 7)\n"
    );
}

#[test]
fn completion_shows_rhai_signatures() {
    let dir = sandbox();
    let mut cmd = ncsh(&dir);
    cmd.env("TERM", "xterm");
    let mut p = spawn_command(cmd, Some(10_000)).expect("spawn on a pty");
    p.exp_string("ncsh> ").expect("prompt");
    p.send_line("let xs = [3, 1, 2];").expect("send");
    p.exp_string("ncsh> ").expect("prompt");
    // Several methods: the list shows their signatures.
    p.send("xs.so\t\t").expect("tab");
    p.flush().expect("flush");
    let (shown, _) = p
        .exp_regex(r"ncsh> xs\.so")
        .expect("the list, then the line again");
    assert!(
        shown.contains("some(array: array, filter: Fn) -> bool"),
        "{shown:?}"
    );
    assert!(
        shown.contains("sort(array: array, comparer: Fn)\r\n"),
        "{shown:?}"
    );
    for rust in ["Result<", "EvalAltResult", "&mut", "i64"] {
        assert!(!shown.contains(rust), "{rust}: {shown:?}");
    }
}
