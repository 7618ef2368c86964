//! Real containers, booted with systemd-nspawn: the whole life of one, kills included, and
//! nothing left behind.

use std::time::Duration;

use crate::common::*;

fn up(env: &Env, name: &str) -> bool {
    stdout(&env.run(&["status", name])) == "up\n"
}

fn supervisor(name: &str) -> i32 {
    let out = std::process::Command::new("pgrep")
        .args(["-f", &format!("__supervise {name}$")])
        .output()
        .unwrap();
    stdout(&out).trim().parse().expect("one supervisor")
}

fn run_with_stdin(env: &Env, args: &[&str], input: &str) -> std::process::Output {
    output_with_stdin(env.command(args), input.as_bytes())
}

#[test]
fn a_container_from_create_to_destroy() {
    require_root();
    let env = Env::new();
    let name = unique_name("lif");
    // The firewall is on by default, as on NixOS: open the port the test serves on.
    let (host, local) = env.create_booting_with(
        &name,
        &[
            "--config",
            "networking.firewall.allowedTCPPorts = [ 8080 ];",
        ],
    );

    assert_ok(&env.run(&["start", &name]), "start");
    assert!(up(&env, &name));
    // Run: output, stdin, exit status, a login environment for root.
    let out = env.run(&["run", &name, "--", "uname", "-n"]);
    assert_eq!(stdout(&out), format!("{name}\n"));
    let out = run_with_stdin(&env, &["run", &name, "--", "cat"], "hi there\n");
    assert_eq!(stdout(&out), "hi there\n");
    let out = env.run(&["run", &name, "--", "sh", "-c", "echo to-stderr >&2; exit 7"]);
    assert_eq!(
        (out.status.code(), stderr(&out).as_str()),
        (Some(7), "to-stderr\n")
    );
    let out = env.run(&[
        "run",
        &name,
        "--",
        "sh",
        "-c",
        "echo $USER $HOME $(pwd) $(cat /proc/1/comm)",
    ]);
    assert_eq!(stdout(&out), "root /root /root systemd\n");
    let out = env.run(&["run", &name, "--", "no-such-command"]);
    assert!(
        !out.status.success() && stderr(&out).contains("command not found"),
        "{}",
        stderr(&out)
    );
    // root-login reads stdin when it is not a terminal; cgroup v2 inside, like a NixOS host.
    let out = run_with_stdin(
        &env,
        &["root-login", &name],
        "stat -fc %T /sys/fs/cgroup/; id -un; exit 3\n",
    );
    assert_eq!(
        (stdout(&out).as_str(), out.status.code()),
        ("cgroup2fs\nroot\n", Some(3))
    );

    // The host reaches a TCP service in the container at show-ip (the veth is set up at boot).
    assert_eq!(stdout(&env.run(&["show-ip", &name])), format!("{local}\n"));
    let out = env.run(&[
        "run",
        &name,
        "--",
        "systemd-run",
        "--unit=web",
        "python3",
        "-m",
        "http.server",
        "8080",
        "--bind",
        &local,
        "--directory",
        "/etc",
    ]);
    assert_ok(&out, "systemd-run");
    assert!(eventually(Duration::from_secs(10), || http_get(
        &local, 8080
    )
    .is_ok_and(|r| r.starts_with("HTTP/1.0 200"))));
    // …and the container reaches the host side.
    let out = env.run(&["run", &name, "--", "ip", "route", "get", &host]);
    assert!(stdout(&out).contains("dev eth0"), "{}", stdout(&out));

    assert_ok(&env.run(&["stop", &name]), "stop");
    assert_eq!(stdout(&env.run(&["status", &name])), "down\n");
    assert!(http_get(&local, 8080).is_err());
    assert_ok(&env.run(&["stop", &name]), "stop of a stopped container");

    assert_ok(&env.run(&["start", &name]), "start again");
    assert!(up(&env, &name));
    assert_ok(&env.run(&["start", &name]), "start of a running container");
    let before = leader(&env, &name);
    assert_ok(&env.run(&["restart", &name]), "restart");
    assert!(up(&env, &name));
    assert_ne!(leader(&env, &name), before, "restart boots a new container");

    assert_ok(&env.run(&["terminate", &name]), "terminate");
    assert_eq!(stdout(&env.run(&["status", &name])), "down\n");
    let out = env.run(&["terminate", &name]);
    assert!(!out.status.success() && stderr(&out).contains("unable to get container's main PID"));

    // SIGKILL of the supervisor: status tells the truth, the next start works.
    assert_ok(&env.run(&["start", &name]), "start after terminate");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supervisor(&name)),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(eventually(Duration::from_secs(5), || !up(&env, &name)));
    assert_ok(
        &env.run(&["start", &name]),
        "start after the supervisor was killed",
    );
    assert!(up(&env, &name));

    // SIGKILL of the container's PID 1.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(leader(&env, &name)),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(eventually(Duration::from_secs(5), || !up(&env, &name)));
    assert_ok(
        &env.run(&["start", &name]),
        "start after the leader was killed",
    );
    assert!(up(&env, &name));

    // Destroy a running container: everything goes, the address is free again.
    assert_ok(&env.run(&["destroy", &name]), "destroy");
    assert_no_debris(&env, &name);
    let again = unique_name("lif");
    env.create(
        &again,
        &["--host-address", &host, "--local-address", &local],
    );
}

#[test]
fn long_names_find_their_link_by_altname() {
    require_root();
    let env = Env::new();
    let name = format!("longname-{}", unique_name("x"));
    assert!(
        name.len() > 12,
        "{name} is not long enough to be shortened by nspawn"
    );
    let (host, _) = env.create_booting(&name);
    assert_ok(&env.run(&["start", &name]), "start");
    let out = std::process::Command::new("ip")
        .args(["-o", "addr", "show", "dev", &format!("ve-{name}")])
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains(&host),
        "host side not configured: {}",
        stdout(&out)
    );
    assert_ok(&env.run(&["stop", &name]), "stop");
    assert_ok(&env.run(&["destroy", &name]), "destroy");
    assert_no_debris(&env, &name);
}

#[test]
fn the_rhai_api_drives_a_real_container() {
    require_root();
    let env = Env::new();
    let name = unique_name("api");
    env.track(&name);
    let (host, local) = env.test_addresses();
    let script = env.prefix().join("api.rhai");
    std::fs::write(
        &script,
        r#"
        let c = create(args[0], #{ host_address: args[1], local_address: args[2] });
        try { c.run(["true"]); } catch (e) { print(e.kind); }
        c.start();
        print(c.status);
        print(type_of(c.leader));
        let r = c.run(["sh", "-c", "hostname; echo oops >&2; exit 4"]);
        print(`${r.status} ${r.stdout}${r.stderr}`);
        print(c.run(["tr", "a-z", "A-Z"], "shout\n").stdout);
        print(wait_tcp(c.ip, 22, 0.1));
        c.stop();
        print(c.status);
        c.destroy();
        print(exists(args[0]));
        "#,
    )
    .unwrap();
    let out = env.run(&[script.to_str().unwrap(), &name, &host, &local]);
    assert_ok(&out, "api script");
    assert_eq!(
        stdout(&out),
        format!("NotRunning\nup\ni64\n4 {name}\noops\n\nSHOUT\n\nfalse\ndown\nfalse\n")
    );
    assert_no_debris(&env, &name);
}

#[test]
fn status_of_a_running_container_is_up_for_a_user_too() {
    require_root();
    let env = Env::new();
    // The state tree readable by others, as /etc and /run are.
    std::fs::set_permissions(
        env.prefix(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let name = unique_name("sta");
    env.create_booting(&name);
    assert_ok(&env.run(&["start", &name]), "start");
    // `nobody` may not signal root's leader: that is no sign it is gone.
    let as_nobody = || {
        let setpriv = ["--reuid=65534", "--regid=65534", "--clear-groups", BIN];
        let mut args = setpriv.to_vec();
        args.extend(["status", name.as_str()]);
        let out = env.command_as("setpriv", &args).output().unwrap();
        assert_ok(&out, "status as nobody");
        stdout(&out)
    };
    assert_eq!(as_nobody(), "up\n");
    assert_ok(&env.run(&["stop", &name]), "stop");
    assert_eq!(as_nobody(), "down\n");
}
