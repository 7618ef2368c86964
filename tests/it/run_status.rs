//! `ncsh run NAME -- COMMAND` ends as a shell would when COMMAND cannot be run: 127 when it
//! is not found, 126 when it is not executable, with a message naming it; and the verb
//! listings show whole sentences.

use crate::common::*;

#[test]
fn a_command_that_cannot_run_exits_127_or_126() {
    require_root();
    let env = Env::new();
    let name = unique_name("rst");
    env.create_booting(&name);
    assert_ok(&env.run(&["start", &name]), "start");

    let out = env.run(&["run", &name, "--", "nosuchcommand", "-x"]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert_eq!(stderr(&out), "ncsh: nosuchcommand: command not found\n");

    let out = env.run(&["run", &name, "--", "/etc/passwd"]);
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "ncsh: /etc/passwd: permission denied (not an executable file)\n"
    );

    // A command that runs: its own status, as before.
    let out = env.run(&["run", &name, "--", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));

    // Invoked as nixos-container: the same statuses.
    let bin = env.prefix().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_ncsh"), bin.join("nixos-container")).unwrap();
    let out = env
        .command_as(
            bin.join("nixos-container"),
            &["run", &name, "--", "nosuchcommand"],
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nosuchcommand: command not found"),
        "{}",
        stderr(&out)
    );

    // Scripts see the kind and the status, and an uncaught one ends the script so.
    let script = env.prefix().join("missing.rhai");
    std::fs::write(
        &script,
        format!(
            "let c = container(\"{name}\");\n\
             try {{ c.attach([\"nosuchcommand\"]) }} catch (e) {{ print(`${{e.kind}} ${{e.status}}`) }}\n\
             c.exec([\"/etc\"]);\n"
        ),
    )
    .unwrap();
    let out = env.run(&[script.to_str().unwrap()]);
    assert_eq!(stdout(&out), "CommandNotFound 127\n");
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    assert!(stderr(&out).contains(":3:"), "{}", stderr(&out));
}

#[test]
fn verb_listings_show_whole_sentences() {
    let env = Env::new();
    let help = stdout(&env.run(&["--help"]));
    let login = help
        .lines()
        .find(|l| l.trim_start().starts_with("login "))
        .unwrap_or_else(|| panic!("no login line in:\n{help}"));
    assert!(
        login.ends_with("Log in to a running container with a user name and password."),
        "{login:?}"
    );
    let listed: Vec<&str> = help
        .lines()
        .skip_while(|l| *l != "Verbs:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert!(listed.len() >= 10, "{help}");
    for line in listed {
        assert!(line.ends_with('.'), "cut: {line:?}");
    }
    let out = output_with_stdin(env.command(&[]), b":verbs\n");
    let verbs = stdout(&out);
    assert!(
        verbs.contains(":login") && verbs.contains("with a user name and password.\n"),
        "{verbs}"
    );
}

#[test]
fn output_to_a_closed_pipe_ends_quietly() {
    use std::io::Read;
    let env = Env::new();
    // Far more than a pipe holds.
    let script = env.prefix().join("many.rhai");
    std::fs::write(&script, "for i in 0..10000000 { print(`line ${i}`) }\n").unwrap();
    let mut child = env
        .command(&[script.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    stdout.read_exact(&mut first).unwrap();
    // As `| head -1` does: the reader goes away.
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(141), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
}
