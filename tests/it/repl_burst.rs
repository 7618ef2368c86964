//! The interactive REPL fed faster than it reads: several lines written to its pty at once (a
//! paste without bracketed paste, `tmux send-keys`, expect) all run, in order, and a bracketed
//! paste of several statements without `;` runs as several entries.

use std::process::Command;

use rexpect::session::{PtySession, spawn_command};
use tempfile::TempDir;

/// The REPL on a pty in a fresh state tree, at its first prompt; plain output.
fn repl(dir: &TempDir) -> PtySession {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ncsh"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("NCSH_PREFIX", dir.path())
        .env("NCSH_HISTORY", dir.path().join("history"))
        .env("NCSH_VERBS_PATH", "")
        .env("TERM", "xterm")
        .env("NO_COLOR", "1")
        .current_dir(dir.path());
    let mut p = spawn_command(cmd, Some(10_000)).expect("spawn on a pty");
    p.exp_string("ncsh> ").expect("first prompt");
    p
}

/// Write `text` in one write, as a terminal delivers a paste.
fn burst(p: &mut PtySession, text: &str) {
    p.send(text).expect("send");
    p.flush().expect("flush");
}

/// Everything up to `needle` (which must come within the timeout).
fn until(p: &mut PtySession, needle: &str) -> String {
    p.exp_string(needle)
        .unwrap_or_else(|e| panic!("waiting for {needle:?}: {e}"))
}

#[test]
fn lines_written_at_once_all_run_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = repl(&dir);
    // Each line is complete on its own, so each Enter submits; the next lines are already
    // buffered when the first one runs.
    burst(
        &mut p,
        "let a = 1\rlet b = 2\rprint(`first ${a}`)\rprint(`second ${a + b}`)\rprint(\"third\")\r",
    );
    let out = until(&mut p, "third\r\n");
    let first = out
        .find("first 1\r\n")
        .unwrap_or_else(|| panic!("first line ran: {out:?}"));
    let second = out
        .find("second 3\r\n")
        .unwrap_or_else(|| panic!("second line ran: {out:?}"));
    assert!(first < second, "in order: {out:?}");
    // The session is still usable afterwards and knows both variables.
    burst(&mut p, "print(a * 10 + b)\r");
    until(&mut p, "12\r\n");
    p.send_control('d').expect("ctrl-d");
    p.exp_eof().expect("exit");
}

#[test]
fn a_burst_while_a_line_runs_is_not_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = repl(&dir);
    // The first entry takes a while; what arrives meanwhile waits in the terminal and runs next.
    burst(
        &mut p,
        "sleep(0.3); print(\"slept\")\rprint(\"after\")\rprint(\"last\")\r",
    );
    let out = until(&mut p, "last\r\n");
    let slept = out
        .find("slept\r\n")
        .unwrap_or_else(|| panic!("slept: {out:?}"));
    let after = out
        .find("after\r\n")
        .unwrap_or_else(|| panic!("after: {out:?}"));
    assert!(slept < after, "in order: {out:?}");
}

#[test]
fn a_bracketed_paste_of_statements_without_semicolons_runs_each() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = repl(&dir);
    // The pasted newlines stay in the line (bracketed paste); Enter submits it all.
    burst(
        &mut p,
        "\x1b[200~let a = 1\nlet b = 2\nprint(`sum ${a + b}`)\nprint(\"pasted\")\x1b[201~\r",
    );
    let out = until(&mut p, "pasted\r\n");
    assert!(out.contains("sum 3\r\n"), "{out:?}");
    assert!(!out.contains("error"), "{out:?}");
    // A pasted entry spanning lines (a function) stays one entry, and the paste's statements
    // after it run after it.
    burst(
        &mut p,
        "\x1b[200~fn f(x) {\n  x + 40\n}\nprint(`f ${f(a + 1)}`)\x1b[201~\r",
    );
    let out = until(&mut p, "f 42\r\n");
    assert!(!out.contains("error"), "{out:?}");
    // An error in the middle of a paste is reported, and the statements after it still run.
    burst(
        &mut p,
        "\x1b[200~print(\"before\")\nnosuch_fn()\nprint(\"after\")\x1b[201~\r",
    );
    let out = until(&mut p, "after\r\n");
    assert!(out.contains("before\r\n"), "{out:?}");
    assert!(
        out.contains("error: Function not found: nosuch_fn"),
        "the error is reported: {out:?}"
    );
}
