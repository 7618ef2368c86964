//! The script runner: args, exit codes, error positions, shebang, catchable errors, user verbs.

use std::os::unix::fs::PermissionsExt;

use crate::common::*;

#[test]
fn args_and_exit_codes() {
    let env = Env::new();
    let path = script(
        &env,
        "args.rhai",
        "print(args.len()); for a in args { print(a) }\nexit(args.len() + 2);\n",
    );
    let out = env.run(&[&path, "web", "3", "--flag"]);
    assert_eq!(stdout(&out), "3\nweb\n3\n--flag\n");
    assert_eq!(out.status.code(), Some(5));
}

#[test]
fn exit_codes_out_of_range_or_not_integers_are_not_success() {
    let env = Env::new();
    // As a shell counts: exit(-1) is 255.
    for (code, status) in [("-1", 255), ("-255", 1), ("0", 0), ("255", 255)] {
        let path = script(&env, "exit.rhai", &format!("exit({code});\n"));
        let out = env.run(&[&path]);
        assert_eq!(out.status.code(), Some(status), "exit({code})");
        assert_eq!(stderr(&out), "", "exit({code})");
    }
    for (arg, says) in [
        (
            "\"abc\"",
            "exit takes an integer exit status (0 to 255), not \"abc\"",
        ),
        ("3.5", "not 3.5"),
        ("()", "not ()"),
        ("256", "exit(256): an exit status is 0 to 255"),
        ("-256", "exit(-256): an exit status is 0 to 255"),
    ] {
        let path = script(
            &env,
            "exit.rhai",
            &format!("exit({arg});\nprint(\"after\");\n"),
        );
        let out = env.run(&[&path]);
        assert_eq!(out.status.code(), Some(1), "exit({arg})");
        assert!(stderr(&out).contains(says), "exit({arg}): {}", stderr(&out));
        assert_eq!(stdout(&out), "", "exit({arg})");
    }
}

#[test]
fn errors_report_file_line_and_column() {
    let env = Env::new();
    let path = script(&env, "bad.rhai", "let x = 1;\nlet y = x +* 2;\n");
    let out = env.run(&[&path]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with(&format!("{path}:2:")),
        "{}",
        stderr(&out)
    );

    let path = script(
        &env,
        "throw.rhai",
        "print(\"before\");\n\n   throw \"boom\";\n",
    );
    let out = env.run(&[&path]);
    assert_eq!(stdout(&out), "before\n");
    assert_eq!(stderr(&out), format!("{path}:3:4: boom\n"));

    let path = script(&env, "api.rhai", "let c = container(\"nosuch\");\n");
    let out = env.run(&[&path]);
    assert!(
        stderr(&out).starts_with(&format!("{path}:1:9: container ‘nosuch’ does not exist")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn errors_are_catchable_with_a_kind() {
    let env = Env::new();
    let path = script(
        &env,
        "catch.rhai",
        r#"
        for bad in ["nosuch", "a/b"] {
            try { container(bad); } catch (e) { print(`${e.kind}: ${e.message}`); }
        }
        try { create("x", #{ colour: "red" }); } catch (e) { print(e.kind); }
        "#,
    );
    let out = env.run(&[&path]);
    assert_ok(&out, "script");
    assert_eq!(
        stdout(&out),
        "NotFound: container ‘nosuch’ does not exist\nInvalidName: invalid container name\nUsage\n"
    );
}

#[test]
fn shebang_scripts_run_directly() {
    let env = Env::new();
    let dir = env.prefix().join("bin");
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::symlink(BIN, dir.join("ncsh")).unwrap();
    let path = script(
        &env,
        "hello",
        "#!/usr/bin/env ncsh\nprint(`hello ${args[0]}`);\nthrow \"line three\";\n",
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path_var = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = env
        .command_as(&path, &["world"])
        .env("PATH", path_var)
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "hello world\n");
    assert!(
        stderr(&out).starts_with(&format!("{path}:3:")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn scripts_create_and_list_containers() {
    let env = Env::new();
    let a = unique_name("scr");
    let b = unique_name("scr");
    env.track(&a);
    env.track(&b);
    let path = script(
        &env,
        "fleet.rhai",
        r#"
        for n in args { let c = create(n, #{}); print(`${c.name} ${c.ip} ${c.host_ip} ${c.status}`); }
        print(containers().len());
        print(container(args[0]).leader == ());
        "#,
    );
    let out = env.run(&[&path, &a, &b]);
    assert_ok(&out, "script");
    assert_eq!(
        stdout(&out),
        format!("{a} 10.233.1.2 10.233.1.1 down\n{b} 10.233.2.2 10.233.2.1 down\n2\ntrue\n")
    );
}

#[test]
fn stdin_is_a_script() {
    let env = Env::new();
    let out = output_with_stdin(env.command(&[]), b"let x = 20;\nprint(x + 1);\n");
    assert_eq!(stdout(&out), "21\n");
}

#[test]
fn user_verbs_add_and_override() {
    let env = Env::new();
    let verbs = env.prefix().join("verbs");
    std::fs::create_dir(&verbs).unwrap();
    std::fs::write(
        verbs.join("hello.rhai"),
        "//! Say hello.\nprint(`hello ${args[0]}`);\n",
    )
    .unwrap();
    std::fs::write(
        verbs.join("list.rhai"),
        "//! Overridden list.\nprint(\"mine\");\n",
    )
    .unwrap();
    std::fs::write(
        verbs.join("oops.rhai"),
        "//! Fails.\n\nlet x = undefined_thing;\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        env.command(args)
            .env("NCSH_VERBS_PATH", &verbs)
            .output()
            .unwrap()
    };
    assert_eq!(stdout(&run(&["hello", "you"])), "hello you\n");
    assert_eq!(stdout(&run(&["list"])), "mine\n");
    assert!(stdout(&run(&["--help"])).contains("hello           Say hello."));
    let out = run(&["oops"]);
    assert!(
        stderr(&out).starts_with(&format!("{}:3:9: ", verbs.join("oops.rhai").display())),
        "{}",
        stderr(&out)
    );
}

/// `wait_tcp` takes any number of seconds, however large, without panicking; it answers as
/// soon as something listens (here a listener of the test's own on loopback).
#[test]
fn wait_tcp_takes_any_timeout() {
    let env = Env::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let path = script(
        &env,
        "wait.rhai",
        &format!("print(wait_tcp(\"127.0.0.1\", {port}, 1.5e19));\n"),
    );
    let out = env.run(&[&path]);
    assert_eq!(
        (stdout(&out).as_str(), out.status.code()),
        ("true\n", Some(0)),
        "{out:?}"
    );
}

#[test]
fn a_growing_string_stops_at_the_size_limit() {
    let env = Env::new();
    let path = script(&env, "grow.rhai", "let s = \"x\";\nloop { s += s; }\n");
    let started = std::time::Instant::now();
    let out = env.run(&[&path]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("Length of string")
            && stderr(&out).contains("raise NCSH_MAX_STRING_SIZE"),
        "{}",
        stderr(&out)
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // A smaller limit stops it sooner; a bad one is refused before anything runs.
    let out = env
        .command(&[&path])
        .env("NCSH_MAX_STRING_SIZE", "1000")
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("Length of string"),
        "{}",
        stderr(&out)
    );
    let out = env
        .command(&[&path])
        .env("NCSH_MAX_STRING_SIZE", "-1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("NCSH_MAX_STRING_SIZE=‘-1’ is not a whole number"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn max_operations_stops_an_endless_loop() {
    let env = Env::new();
    let path = script(&env, "spin.rhai", "loop {}\n");
    let mut cmd = env.command(&[&path]);
    cmd.env("NCSH_MAX_OPERATIONS", "100000");
    let mut child = cmd.stderr(std::process::Stdio::piped()).spawn().unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            panic!("loop {{}} still runs with NCSH_MAX_OPERATIONS=100000");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr(&out).contains("raise NCSH_MAX_OPERATIONS"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn http_get_refuses_an_endless_response() {
    let env = Env::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut conn, _) = listener.accept().unwrap();
        let mut request = [0u8; 1024];
        let _ = conn.read(&mut request);
        let chunk = vec![b'y'; 64 * 1024];
        // Endless, until the client hangs up.
        while conn.write_all(&chunk).is_ok() {}
    });
    let path = script(
        &env,
        "get.rhai",
        &format!("let r = http_get(\"127.0.0.1\", {port}, \"/\");\nprint(r.len());\n"),
    );
    let out = env
        .command(&[&path])
        .env("NCSH_MAX_RESPONSE_SIZE", "1000000")
        .output()
        .unwrap();
    server.join().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is larger than 1000000 bytes: raise NCSH_MAX_RESPONSE_SIZE"),
        "{}",
        stderr(&out)
    );
}
