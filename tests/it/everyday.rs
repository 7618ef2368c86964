//! Everyday output: `list` as a table on a terminal (names only when piped or as
//! nixos-container), and the JSON of `list`, `show`, `status` and `show-ip`, which is also
//! what `c.info()` gives a script. Boots one real container.

use std::os::unix::fs::symlink;

use rexpect::session::spawn_command;
use serde_json::Value;

use crate::common::*;

fn json(out: &std::process::Output, what: &str) -> Value {
    assert_ok(out, what);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", stdout(out)))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The whole of what `show --json` promises about a running container made by the tests.
fn check_running(info: &Value, name: &str, local: &str, host: &str, port: &str) {
    assert_eq!(info["name"], name, "{info}");
    assert_eq!(info["state"], "up", "{info}");
    assert_eq!(info["ipv4"], local, "{info}");
    assert_eq!(info["host_ipv4"], host, "{info}");
    assert_eq!(info["ipv6"], Value::Null, "{info}");
    assert_eq!(info["builder"], "native", "{info}");
    assert!(
        ["standalone", "systemd"].contains(&info["driver"].as_str().unwrap()),
        "{info}"
    );
    let leader = info["leader"].as_i64().expect("a leader PID");
    assert!(
        std::path::Path::new(&format!("/proc/{leader}")).exists(),
        "{info}"
    );
    let since = info["since"].as_i64().expect("since");
    assert!(since <= now() + 1 && since > now() - 600, "{info}");
    assert!(
        info["generation"].as_i64().expect("a generation") >= 1,
        "{info}"
    );
    assert_eq!(info["auto_start"], true, "{info}");
    assert_eq!(info["bridge"], Value::Null, "{info}");
    assert_eq!(info["ports"], serde_json::json!([port]), "{info}");
    let binds = info["bind_mounts"].as_array().expect("bind_mounts");
    assert!(
        binds
            .iter()
            .any(|b| b["source"] == "/usr" && b["target"] == "/usr" && b["ro"] == true),
        "the host's /usr is bound read-only: {info}"
    );
}

#[test]
fn json_of_list_show_status_and_show_ip_and_info_agree() {
    require_root();
    let env = Env::new();
    let name = unique_name("evj");
    // A host port no other test forwards at the same time.
    let port = format!("tcp:{}:80", 41000 + std::process::id() % 1000);
    let (host, local) = env.create_booting_with(&name, &["--auto-start", "--port", &port]);

    // Down first: no leader, no since.
    let info = json(&env.run(&["show", &name, "--json"]), "show --json");
    assert_eq!(info["state"], "down", "{info}");
    assert_eq!(info["leader"], Value::Null, "{info}");
    assert_eq!(info["since"], Value::Null, "{info}");
    assert_eq!(info["memory"], Value::Null, "{info}");
    let status = json(&env.run(&["status", &name, "--json"]), "status --json");
    assert_eq!(
        (&status["name"], &status["state"]),
        (&name.clone().into(), &"down".into())
    );
    assert!(status["memory"].is_null(), "{status}");

    assert_ok(&env.run(&["start", &name]), "start");
    let info = json(&env.run(&["show", &name, "--json"]), "show --json");
    check_running(&info, &name, &local, &host, &port);

    let list = json(&env.run(&["list", "--json"]), "list --json");
    let listed = list.as_array().expect("an array");
    assert_eq!(listed.len(), 1, "{list}");
    check_running(&listed[0], &name, &local, &host, &port);

    let status = json(&env.run(&["status", &name, "--json"]), "status --json");
    assert_eq!(
        (&status["name"], &status["state"]),
        (&name.clone().into(), &"up".into())
    );
    assert!(status["memory"].is_u64(), "{status}");
    let ip = json(&env.run(&["show-ip", &name, "--json"]), "show-ip --json");
    assert_eq!(
        ip,
        serde_json::json!({"name": name, "ip": local, "ipv4": local, "ipv6": null})
    );

    // A script's c.info() is the same map.
    let script = env.prefix().join("info.rhai");
    std::fs::write(
        &script,
        format!("print(json(container(\"{name}\").info()));\n"),
    )
    .unwrap();
    let from_script = json(&env.run(&[script.to_str().unwrap()]), "a script's c.info()");
    // The memory used moves between two looks; the rest is the same.
    let without_memory = |mut v: Value| {
        assert!(v["memory"].is_u64(), "{v}");
        v["memory"] = Value::Null;
        v
    };
    assert_eq!(without_memory(from_script), without_memory(info.clone()));

    // The plain `show` says the same in words.
    let shown = stdout(&env.run(&["show", &name]));
    assert!(shown.contains(&format!("IPv4:       {local}")), "{shown}");
    assert!(shown.contains("State:      up"), "{shown}");

    // Gone: status --json says so and fails.
    let gone = env.run(&["status", "nosuchcontainer", "--json"]);
    assert_ne!(gone.status.code(), Some(0));
    let first_line = stdout(&gone).lines().collect::<Vec<_>>().join("\n");
    let value: Value = serde_json::from_str(&first_line).unwrap();
    assert_eq!(value["state"], "gone");

    // A clean stop takes its port forward out of nspawn's nft map with it.
    assert_ok(&env.run(&["stop", &name]), "stop");
    let forward = format!(
        "{} : {local} . 80",
        port.trim_start_matches("tcp:").trim_end_matches(":80")
    );
    let nft = std::process::Command::new("nft")
        .args(["list", "map", "ip", "io.systemd.nat", "map_port_ipport"])
        .output();
    if let Ok(out) = nft {
        assert!(
            !stdout(&out).contains(&forward),
            "{forward} left: {}",
            stdout(&out)
        );
    }
    assert_ok(&env.run(&["destroy", &name]), "destroy");
}

#[test]
fn list_is_a_table_on_a_terminal_and_names_when_piped_or_as_nixos_container() {
    let env = Env::new();
    // `list` reads the conf directory: confs made by hand are containers that are down.
    let conf_dir = env.prefix().join("etc/nixos-containers");
    std::fs::create_dir_all(&conf_dir).unwrap();
    let (a, b) = (unique_name("evlb"), unique_name("evla"));
    std::fs::write(
        conf_dir.join(format!("{a}.conf")),
        "PRIVATE_NETWORK=1\nHOST_ADDRESS=10.233.254.1\nLOCAL_ADDRESS=10.233.254.2\n",
    )
    .unwrap();
    std::fs::write(
        conf_dir.join(format!("{b}.conf")),
        "PRIVATE_NETWORK=1\nLOCAL_ADDRESS6=fc00::2\n",
    )
    .unwrap();
    let mut sorted = [a.clone(), b.clone()];
    sorted.sort_by_key(|n| n.to_ascii_lowercase());
    let names_only = format!("{}\n{}\n", sorted[0], sorted[1]);

    // Piped: byte for byte the names.
    let out = env.run(&["list"]);
    assert_ok(&out, "list piped");
    assert_eq!(stdout(&out), names_only);

    // On a terminal: the table.
    let mut p = spawn_command(env.command(&["list"]), Some(10_000)).expect("list on a pty");
    let screen = p.exp_eof().expect("list ends");
    let lines: Vec<&str> = screen.lines().map(str::trim_end).collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "STATE", "IPV4", "IPV6", "SINCE"],
        "{screen}"
    );
    let row_a: Vec<&str> = lines
        .iter()
        .find(|l| l.starts_with(&format!("{a} ")))
        .unwrap_or_else(|| panic!("{a} in {screen}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        row_a,
        [a.as_str(), "down", "10.233.254.2", "-", "-"],
        "{screen}"
    );
    let row_b: Vec<&str> = lines
        .iter()
        .find(|l| l.starts_with(&format!("{b} ")))
        .unwrap_or_else(|| panic!("{b} in {screen}"))
        .split_whitespace()
        .collect();
    assert_eq!(row_b, [b.as_str(), "down", "-", "fc00::2", "-"], "{screen}");
    // Columns line up: each row's STATE starts where the header's does.
    let state_at = lines[0].find("STATE").unwrap();
    for line in &lines[1..3] {
        assert_eq!(line.find("down"), Some(state_at), "{screen}");
    }
    assert!(screen.contains("2 containers listed."), "{screen}");

    // As nixos-container on a terminal: the original's names.
    let link = env.prefix().join("nixos-container");
    symlink(BIN, &link).unwrap();
    let mut p = spawn_command(env.command_as(&link, &["list"]), Some(10_000)).expect("on a pty");
    let screen = p.exp_eof().expect("list ends");
    assert_eq!(screen.replace("\r\n", "\n"), names_only);
}

#[test]
fn run_takes_user_chdir_setenv_and_pty_and_scripts_the_same() {
    require_root();
    let env = Env::new();
    let name = unique_name("evr");
    env.create_booting_with(
        &name,
        &[
            "--config",
            "users.users.alice = { isNormalUser = true; uid = 4321; extraGroups = [ \"wheel\" ]; };",
        ],
    );
    assert_ok(&env.run(&["start", &name]), "start");
    let run = |flags: &[&str], argv: &[&str]| {
        let mut args = vec!["run", name.as_str()];
        args.extend_from_slice(flags);
        args.push("--");
        args.extend_from_slice(argv);
        env.run(&args)
    };

    // As root by default, in /root.
    let out = run(&[], &["sh", "-c", "id -u; pwd; echo $HOME"]);
    assert_ok(&out, "run");
    assert_eq!(stdout(&out), "0\n/root\n/root\n");

    // --user: the user's IDs, groups, login variables and home.
    let out = run(
        &["--user", "alice"],
        &[
            "sh",
            "-c",
            "id -u; id -g; id -Gn; echo $HOME $USER $LOGNAME; pwd",
        ],
    );
    assert_ok(&out, "run --user alice");
    let lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(lines[0], "4321", "{lines:?}");
    assert!(
        lines[2].split_whitespace().any(|g| g == "wheel"),
        "{lines:?}"
    );
    assert_eq!(lines[3], "/home/alice alice alice", "{lines:?}");
    // The home when it exists, else `/` as login does.
    assert!(lines[4] == "/home/alice" || lines[4] == "/", "{lines:?}");
    let by_uid = run(&["--user", "4321"], &["id", "-un"]);
    assert_eq!(stdout(&by_uid), "alice\n");

    // --chdir and --setenv (repeated), on top of the login environment.
    let out = run(
        &[
            "--chdir",
            "/etc",
            "--setenv",
            "A=1",
            "--setenv",
            "B=two words",
            "--setenv",
            "HOME=/x",
        ],
        &["sh", "-c", "pwd; echo \"$A|$B|$HOME|$PATH\""],
    );
    assert_ok(&out, "run --chdir --setenv");
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("/etc"));
    let vars = lines.next().unwrap();
    assert!(vars.starts_with("1|two words|/x|/"), "{vars}");

    // Refused cleanly: unknown user, missing directory, a --setenv without `=`.
    let out = run(&["--user", "mallory"], &["true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no user ‘mallory’"),
        "{}",
        stderr(&out)
    );
    let out = run(&["--chdir", "/no/such/dir"], &["pwd"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    assert!(stderr(&out).contains("--chdir"), "{}", stderr(&out));
    let out = run(&["--setenv", "NOVALUE"], &["true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("NAME=VALUE"), "{}", stderr(&out));

    // --pty: a terminal inside even with stdin not one; --no-pty: the caller's stdio.
    let out = run(&["--pty"], &["tty"]);
    assert_ok(&out, "run --pty tty");
    assert!(
        stdout(&out).trim().starts_with("/dev/pts/"),
        "{}",
        stdout(&out)
    );
    let out = run(&["--pty", "--no-pty"], &["tty"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the last of --pty/--no-pty wins"
    );
    assert_eq!(stdout(&out), "not a tty\n");
    let out = run(&["--pty", "--user", "alice"], &["id", "-un"]);
    assert_ok(&out, "run --pty --user");
    assert_eq!(stdout(&out).trim(), "alice");

    // A script: c.run(argv, #{user, cwd, env, stdin}).
    let script = env.prefix().join("run.rhai");
    std::fs::write(
        &script,
        format!(
            "let r = container(\"{name}\").run([\"sh\", \"-c\", \"id -un; pwd; echo $X; cat\"], \
             #{{ user: \"alice\", cwd: \"/tmp\", env: #{{ X: \"y z\" }}, stdin: \"fed\" }});\n\
             print(r.stdout);\nprint(r.status);\n\
             let e = container(\"{name}\").run([\"true\"], #{{ bogus: 1 }});\n"
        ),
    )
    .unwrap();
    let out = env.run(&[script.to_str().unwrap()]);
    assert_eq!(stdout(&out), "alice\n/tmp\ny z\nfed\n0\n");
    assert!(
        stderr(&out).contains("no option ‘bogus’"),
        "{}",
        stderr(&out)
    );

    assert_ok(&env.run(&["destroy", &name]), "destroy");
}

/// `ncsh ARGS` on a pty: everything it wrote to the terminal, and its exit status.
fn on_pty(env: &Env, args: &[&str]) -> (String, i32) {
    let mut p = spawn_command(env.command(args), Some(60_000)).expect("on a pty");
    let screen = p.exp_eof().expect("ends");
    let status = match p.process().wait().expect("wait") {
        rexpect::process::WaitStatus::Exited(_, code) => code,
        other => panic!("{args:?}: {other:?}"),
    };
    (screen, status)
}

#[test]
fn progress_on_a_terminal_one_line_none_piped_or_quiet() {
    require_root();
    let env = Env::new();
    let name = unique_name("evp");
    let (host, local) = env.test_addresses();
    env.track(&name);
    let (screen, status) = on_pty(
        &env,
        &[
            "create",
            &name,
            "--host-address",
            &host,
            "--local-address",
            &local,
        ],
    );
    assert_eq!(status, 0, "{screen}");
    assert!(
        screen.contains(&format!("\r\x1b[K{name}: building generation 1")),
        "{screen:?}"
    );
    assert!(
        screen.contains(&format!("{name}: activating generation 1")),
        "{screen:?}"
    );
    // Cleared before the create's own message, which stays.
    assert!(screen.contains("\r\x1b[Khost IP is"), "{screen:?}");

    let (screen, status) = on_pty(&env, &["start", &name]);
    assert_eq!(status, 0, "{screen}");
    assert!(
        screen.contains(&format!("\r\x1b[K{name}: booting")),
        "{screen:?}"
    );
    let reached = format!("{name}: reached multi-user.target in ");
    let at = screen
        .find(&reached)
        .unwrap_or_else(|| panic!("{screen:?}"));
    let seconds: f64 = screen[at + reached.len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(seconds > 0.0 && seconds < 60.0, "{screen:?}");

    let (screen, status) = on_pty(
        &env,
        &["update", &name, "--config", "networking.hostName = \"p\";"],
    );
    assert_eq!(status, 0, "{screen}");
    assert!(
        screen.contains(&format!("{name}: building generation 2")),
        "{screen:?}"
    );

    // --quiet on a terminal, and piped: none of it.
    let (screen, status) = on_pty(&env, &["restart", &name, "--quiet"]);
    assert_eq!(status, 0, "{screen}");
    assert!(
        !screen.contains("booting") && !screen.contains('\x1b'),
        "{screen:?}"
    );
    assert_ok(&env.run(&["stop", &name]), "stop");
    let out = env.run(&["start", &name]);
    assert_ok(&out, "start piped");
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    let out = env.run(&["update", &name, "--config", "networking.hostName = \"q\";"]);
    assert_ok(&out, "update piped");
    assert!(!stderr(&out).contains("generation"), "{}", stderr(&out));

    assert_ok(&env.run(&["destroy", &name]), "destroy");
}
