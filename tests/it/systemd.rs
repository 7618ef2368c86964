//! The systemd driver for real: inside a systemd test host (see `testhost`), ncsh runs
//! containers as `container@NAME.service`, with a NixOS-like template installed and without one
//! (transient units), and leaves no unit, machine or link behind.

use std::process::Output;
use std::time::{Duration, Instant};

use crate::common::{
    Env, assert_ok, eventually, output_with_stdin, require_root, stderr, stdout, unique_name,
};
use crate::login::Session;
use crate::testhost::{self, TestHost};

fn text(out: &Output) -> String {
    stdout(out).trim().to_string()
}

fn status(th: &TestHost, name: &str) -> String {
    text(&th.ncsh(&["status", name]))
}

fn unit_property(th: &TestHost, name: &str, property: &str) -> String {
    let unit = format!("container@{name}.service");
    text(&th.exec(&["systemctl", "show", "--value", "-p", property, &unit]))
}

fn machine_leader(th: &TestHost, name: &str) -> String {
    text(&th.exec(&["machinectl", "show", "--value", "-p", "Leader", name]))
}

/// `ncsh create NAME --host-address 10.233.0.1 --local-address 10.233.0.2 EXTRA…` in the test
/// host (its network is its own: the same pair in every test host).
pub(crate) fn create(th: &TestHost, name: &str, extra: &[&str]) {
    let mut args = vec![
        "create",
        name,
        "--host-address",
        "10.233.0.1",
        "--local-address",
        "10.233.0.2",
    ];
    args.extend_from_slice(extra);
    assert_ok(&th.ncsh(&args), "create");
}

/// Neither a unit, nor a machine, nor a host link of `name` in the test host.
fn assert_nothing_left(th: &TestHost, name: &str) {
    // Each query must succeed: an empty answer of a failed command would prove nothing.
    let answer = |argv: &[&str]| {
        let out = th.exec(argv);
        assert_ok(&out, &argv.join(" "));
        text(&out)
    };
    let units = answer(&[
        "systemctl",
        "list-units",
        "--all",
        "--plain",
        "--no-legend",
        &format!("container@{name}.service"),
    ]);
    assert_eq!(units, "", "a unit is left");
    let machines = answer(&["machinectl", "list", "--no-legend"]);
    assert!(!machines.contains(name), "a machine is left: {machines}");
    let links = answer(&["ip", "-o", "link"]);
    assert!(!links.contains("ve-"), "a host link is left: {links}");
}

/// The whole life of a container through the systemd driver.
fn lifecycle(template: bool) {
    require_root();
    let th = TestHost::boot(if template { "tpl" } else { "trn" }, template);
    let host_name = th.name.clone();
    let name = "foo";

    assert_eq!(
        text(&th.ncsh(&["--version"])),
        "ncsh 0.1.0 (driver: systemd, builder: native)"
    );
    create(&th, name, &[]);
    assert_eq!(status(&th, name), "down");
    assert_ok(&th.ncsh(&["start", name]), "start");
    assert_eq!(status(&th, name), "up");
    assert_eq!(unit_property(&th, name, "ActiveState"), "active");
    if template {
        assert_eq!(
            unit_property(&th, name, "FragmentPath"),
            "/etc/systemd/system/container@.service"
        );
    } else {
        assert_eq!(unit_property(&th, name, "Transient"), "yes");
        assert_eq!(unit_property(&th, name, "Type"), "notify");
        assert_eq!(unit_property(&th, name, "KillMode"), "mixed");
        assert_eq!(unit_property(&th, name, "Delegate"), "yes");
        assert_eq!(unit_property(&th, name, "Slice"), "machine.slice");
        assert!(
            unit_property(&th, name, "Environment").contains("SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1")
        );
    }
    // run enters the leader machined reports: the container's own hostname and PID 1.
    let out = th.ncsh(&[
        "run",
        name,
        "--",
        "sh",
        "-c",
        "uname -n; cat /proc/1/comm; exit 5",
    ]);
    assert_eq!(
        (stdout(&out).as_str(), out.status.code()),
        ("foo\nsystemd\n", Some(5))
    );
    // Confined as the container's own processes: in its leader's cgroup (as seen inside, and
    // not above the container's cgroup namespace), with the leader's bounding set. The unified
    // hierarchy only: the test host does not mount this machine's v1 name=systemd one.
    let unified = |path: &str| {
        let out = th.ncsh(&["run", name, "--", "cat", path]);
        stdout(&out)
            .lines()
            .find(|l| l.starts_with("0::"))
            .map(str::to_string)
    };
    let own = unified("/proc/self/cgroup");
    assert_eq!(own, unified("/proc/1/cgroup"));
    assert!(own.as_ref().is_some_and(|c| !c.contains("/..")), "{own:?}");
    let bounding = |out: Output| {
        stdout(&out)
            .lines()
            .find(|l| l.starts_with("CapBnd:"))
            .map(str::to_string)
    };
    let leader_status = format!("/proc/{}/status", machine_leader(&th, name));
    assert_eq!(
        bounding(th.ncsh(&["run", name, "--", "cat", "/proc/self/status"])),
        bounding(th.exec(&["cat", &leader_status]))
    );
    let machines = text(&th.exec(&["machinectl", "list", "--no-legend"]));
    assert!(machines.contains(name), "machinectl list: {machines}");
    assert_eq!(
        text(&th.exec(&["machinectl", "show", "--value", "-p", "Unit", name])),
        format!("container@{name}.service")
    );
    // The host side of the veth is configured (ExecStartPost), the container answers on it.
    let addr = text(&th.exec(&["ip", "-o", "addr", "show", "dev", "ve-foo"]));
    assert!(addr.contains("10.233.0.1"), "ve-foo: {addr}");
    let route = text(&th.ncsh(&["run", name, "--", "ip", "route", "get", "10.233.0.1"]));
    assert!(route.contains("dev eth0"), "{route}");
    // The test host answers (refuses) on its side of the veth: the route and link work.
    let out = th.ncsh(&[
        "run",
        name,
        "--",
        "bash",
        "-c",
        "exec 3<>/dev/tcp/10.233.0.1/9",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Connection refused"),
        "{out:?}"
    );

    // root-login reads stdin when it is not a terminal.
    let out = output_with_stdin(
        th.command(&[testhost::NCSH, "root-login", name]),
        b"id -un; hostname; exit 3\n",
    );
    assert_eq!(
        (stdout(&out).as_str(), out.status.code()),
        ("root\nfoo\n", Some(3))
    );

    assert_ok(&th.ncsh(&["stop", name]), "stop");
    assert_eq!(status(&th, name), "down");
    assert_ok(&th.ncsh(&["stop", name]), "stop of a stopped container");
    assert_ok(&th.ncsh(&["start", name]), "start again");
    assert_eq!(status(&th, name), "up");
    assert_ok(&th.ncsh(&["start", name]), "start of a running container");
    let before = machine_leader(&th, name);
    assert_ok(&th.ncsh(&["restart", name]), "restart");
    assert_eq!(status(&th, name), "up");
    assert_ne!(
        machine_leader(&th, name),
        before,
        "restart boots a new container"
    );

    assert_ok(&th.ncsh(&["terminate", name]), "terminate");
    assert_eq!(status(&th, name), "down");
    let out = th.ncsh(&["terminate", name]);
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("unable to get container's main PID"),
        "{out:?}"
    );
    assert_nothing_left(&th, name);

    // SIGKILL of the container's PID 1: status sees it, the next start works.
    assert_ok(&th.ncsh(&["start", name]), "start after terminate");
    let leader = machine_leader(&th, name);
    assert_ok(&th.exec(&["kill", "-KILL", &leader]), "kill of the leader");
    assert!(eventually(Duration::from_secs(10), || status(&th, name) == "down"));
    assert_ok(
        &th.ncsh(&["start", name]),
        "start after the leader was killed",
    );
    assert_eq!(status(&th, name), "up");

    assert_ok(&th.ncsh(&["destroy", name]), "destroy");
    assert_nothing_left(&th, name);
    assert!(!th.path("/var/lib/nixos-containers/foo").exists());
    drop(th);
    testhost::assert_gone(&host_name);
}

#[test]
fn systemd_driver_with_a_container_template() {
    lifecycle(true);
}

#[test]
fn systemd_driver_with_transient_units() {
    lifecycle(false);
}

/// A container that cannot start: the error names the unit and the job result, and no unit is
/// left behind.
#[test]
fn systemd_driver_reports_a_failed_start() {
    require_root();
    let th = TestHost::boot("bad", false);
    create(&th, "bad", &[]);
    // nspawn refuses the port specification, so the unit's main process fails.
    let conf = th.path("/etc/nixos-containers/bad.conf");
    let text_conf = std::fs::read_to_string(&conf).unwrap();
    let broken: String = text_conf
        .lines()
        .map(|l| {
            if l.starts_with("HOST_PORT=") {
                "HOST_PORT=not-a-port".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&conf, broken + "\n").unwrap();
    let out = th.ncsh(&["start", "bad"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "start succeeded");
    println!("the failed start says:\n{err}");
    assert!(
        err.contains("failed to start container")
            && err.contains("container@bad.service")
            && err.contains("result ‘failed’"),
        "{err}"
    );
    assert_eq!(status(&th, "bad"), "down");
    assert_nothing_left(&th, "bad");
    assert_ok(&th.ncsh(&["destroy", "bad"]), "destroy");
}

/// Speed of `ncsh start` against `systemctl start` of the same template unit in the same test
/// host (printed; run with `--ignored --nocapture`).
#[test]
#[ignore = "a measurement, not a check"]
fn systemd_driver_start_speed() {
    require_root();
    let th = TestHost::boot("spd", true);
    create(&th, "foo", &[]);
    let time = |argv: &[&str]| {
        let t = Instant::now();
        assert_ok(&th.exec(argv), "start");
        let d = t.elapsed();
        assert_ok(
            &th.exec(&["systemctl", "stop", "container@foo.service"]),
            "stop",
        );
        d
    };
    // A warm-up of each, then alternate.
    time(&[testhost::NCSH, "start", "foo"]);
    time(&["systemctl", "start", "container@foo.service"]);
    let (mut ncsh, mut systemctl) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        ncsh.push(time(&[testhost::NCSH, "start", "foo"]).as_secs_f64());
        systemctl.push(time(&["systemctl", "start", "container@foo.service"]).as_secs_f64());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    let (n, s) = (median(&mut ncsh), median(&mut systemctl));
    println!(
        "start medians over 10: ncsh {:.1} ms, systemctl {:.1} ms, ratio {:.3}\nncsh: {ncsh:.3?}\nsystemctl: {systemctl:.3?}",
        n * 1e3,
        s * 1e3,
        n / s
    );

    // Read-only verbs on a running container against the tools underneath, alternated.
    assert_ok(&th.ncsh(&["start", "foo"]), "start");
    let leader = machine_leader(&th, "foo");
    let pairs: [(&str, Vec<&str>, Vec<&str>); 2] = [
        (
            "status",
            vec![testhost::NCSH, "status", "foo"],
            vec!["systemctl", "is-active", "container@foo.service"],
        ),
        (
            "run -- true",
            vec![testhost::NCSH, "run", "foo", "--", "true"],
            vec!["nsenter", "-t", &leader, "-a", "true"],
        ),
    ];
    for (what, ours, theirs) in pairs {
        let once = |argv: &[&str]| {
            let t = Instant::now();
            assert_ok(&th.exec(argv), what);
            t.elapsed().as_secs_f64()
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..20 {
            a.push(once(&ours));
            b.push(once(&theirs));
        }
        let (a, b) = (median(&mut a), median(&mut b));
        println!(
            "{what} medians over 20 (nsenter into the test host included): ncsh {:.2} ms, {} {:.2} ms, ratio {:.3}",
            a * 1e3,
            theirs[0],
            b * 1e3,
            a / b
        );
    }
    assert_ok(&th.ncsh(&["destroy", "foo"]), "destroy");
}

/// Where there is no system bus (this machine), the systemd driver says so; `--driver` and
/// `NCSH_DRIVER` choose the driver, the flag first.
#[test]
fn systemd_driver_without_a_bus_and_driver_selection() {
    require_root();
    let env = Env::new();
    let version = |args: &[&str], var: Option<&str>| {
        let mut cmd = env.command(args);
        cmd.env_remove("NCSH_DRIVER");
        if let Some(v) = var {
            cmd.env("NCSH_DRIVER", v);
        }
        let out = cmd.output().unwrap();
        (stdout(&out).trim().to_string(), stderr(&out))
    };
    // This machine's PID 1 is not systemd: standalone unless asked.
    assert_eq!(
        version(&["--version"], None).0,
        "ncsh 0.1.0 (driver: standalone, builder: native)"
    );
    assert_eq!(
        version(&["--version"], Some("systemd")).0,
        "ncsh 0.1.0 (driver: systemd, builder: native)"
    );
    assert_eq!(
        version(&["--driver", "systemd", "--version"], Some("standalone")).0,
        "ncsh 0.1.0 (driver: systemd, builder: native)"
    );
    assert_eq!(
        version(&["--driver=standalone", "--version"], Some("systemd")).0,
        "ncsh 0.1.0 (driver: standalone, builder: native)"
    );
    let (_, err) = version(&["--driver", "bogus", "--version"], None);
    assert!(err.contains("unknown driver ‘bogus’"), "{err}");

    let name = unique_name("nob");
    env.create(&name, &[]);
    let out = env
        .command(&["--driver", "systemd", "start", &name])
        .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot talk to systemd over D-Bus: connecting to the system bus"),
        "{}",
        stderr(&out)
    );
}

/// With machined stopped, entering a running container fails with a message that says so.
#[test]
fn systemd_driver_without_machined() {
    require_root();
    let th = TestHost::boot("nom", false);
    assert_ok(&th.ncsh(&["create", "foo"]), "create");
    assert_ok(&th.ncsh(&["start", "foo"]), "start");
    assert_ok(
        &th.exec(&["systemctl", "mask", "--runtime", "systemd-machined.service"]),
        "mask",
    );
    assert_ok(
        &th.exec(&["systemctl", "stop", "systemd-machined.service"]),
        "stop machined",
    );
    let out = th.ncsh(&["run", "foo", "--", "true"]);
    assert!(
        !out.status.success() && stderr(&out).contains("systemd-machined is not available"),
        "{out:?}"
    );
    // Scripts see the failure too, not a container that merely is not running.
    std::fs::write(
        th.path("/root/leader.rhai"),
        "print(container(\"foo\").leader);\n",
    )
    .unwrap();
    let out = th.ncsh(&["/root/leader.rhai"]);
    assert!(
        !out.status.success() && stderr(&out).contains("systemd-machined is not available"),
        "{out:?}"
    );
    assert_ok(
        &th.exec(&[
            "systemctl",
            "unmask",
            "--runtime",
            "systemd-machined.service",
        ]),
        "unmask",
    );
    assert_ok(
        &th.ncsh(&["run", "foo", "--", "true"]),
        "run with machined back",
    );
    assert_ok(&th.ncsh(&["destroy", "foo"]), "destroy");
    assert_nothing_left(&th, "foo");
}

/// `login` goes through machined's OpenMachineLogin, as `machinectl login`: a getty of the
/// container (`container-getty@N.service`, started by machined through the container's bus)
/// on a terminal, which comes back after a logout; ^] three times ends the session, and so
/// does the machine's end. Through pipes, the session ends with the logout.
#[test]
fn systemd_driver_login_through_machined() {
    require_root();
    let th = TestHost::boot("lgn", false);
    let host_name = th.name.clone();
    let password = "wonderland";
    let config =
        format!("users.users.alice = {{ isNormalUser = true; password = \"{password}\"; }};");
    create(&th, "foo", &["--config", &config]);
    assert_ok(&th.ncsh(&["start", "foo"]), "start");
    let getty_units = || {
        text(&th.ncsh(&[
            "run",
            "foo",
            "--",
            "systemctl",
            "list-units",
            "--state=active",
            "--plain",
            "--no-legend",
            "container-getty@*",
        ]))
    };
    assert_eq!(getty_units(), "", "no getty before a login");

    // On a terminal: the getty's prompt, a session as alice on /dev/pts/N.
    let mut s = Session::command_on_pty(th.command(&[testhost::NCSH, "login", "foo"]));
    s.expect("Connected to machine foo. Press ^] three times within 1s to exit session.");
    s.expect("foo login: ");
    s.send("alice\n");
    s.expect("Password: ");
    s.send(&format!("{password}\n"));
    s.expect("$ ");
    s.send("echo \"user=$(id -un) tty=$(tty)\"\n");
    s.expect("user=alice tty=/dev/pts/");
    assert!(
        getty_units().starts_with("container-getty@"),
        "machined's getty runs the session: {:?}",
        getty_units()
    );
    // A logout brings the getty back (machinectl's session goes on) ...
    s.send("exit\n");
    s.expect("foo login: ");
    // ... until the escape.
    s.send("\x1d\x1d\x1d");
    assert_eq!(s.finish(), 0, "{}", s.text());
    assert!(s.text().contains("Connection to machine foo terminated."));

    // Through pipes: input typed ahead waits for the getty's prompt (a starting getty
    // flushes its terminal), and the logout after the end of input ends the session.
    let mut s = Session::command_on_pipes(th.command(&[testhost::NCSH, "login", "foo"]));
    s.send("alice\n");
    s.expect("Password: ");
    // PAM flushes typeahead as it turns echo off, so the password follows its prompt.
    s.send(&format!("{password}\n"));
    s.expect("$ ");
    s.send("echo \"piped-$((6 * 7))\"\n");
    s.expect("piped-42");
    s.close_input();
    s.expect("logout");
    assert_eq!(s.finish(), 0, "{}", s.text());

    // machined's other way in works too: `machinectl shell`.
    let out = th.exec(&[
        "machinectl",
        "shell",
        "foo",
        "/bin/sh",
        "-c",
        "echo shell-$((6 * 7)) on $(hostname)",
    ]);
    assert!(stdout(&out).contains("shell-42 on foo"), "{out:?}");

    // machined starts the getty through the container's own bus: without one, a clear error.
    let dbus = ["dbus.socket", "dbus.service"];
    let mut argv = vec![
        "run",
        "foo",
        "--",
        "systemctl",
        "mask",
        "--runtime",
        "--now",
    ];
    argv.extend(dbus);
    assert_ok(&th.ncsh(&argv), "stop the container's bus");
    let out = th.ncsh(&["login", "foo"]);
    assert!(
        !out.status.success()
            && stderr(&out).contains("machined could not open a login on ‘foo’")
            && stderr(&out).contains("systemctl status dbus.socket"),
        "{out:?}"
    );
    let mut argv = vec!["run", "foo", "--", "systemctl", "unmask", "--runtime"];
    argv.extend(dbus);
    assert_ok(&th.ncsh(&argv), "unmask the container's bus");
    assert_ok(
        &th.ncsh(&["run", "foo", "--", "systemctl", "start", "dbus.socket"]),
        "start the container's bus",
    );

    // The machine going away ends a session too.
    let mut s = Session::command_on_pty(th.command(&[testhost::NCSH, "login", "foo"]));
    s.expect("foo login: ");
    assert_ok(&th.ncsh(&["stop", "foo"]), "stop");
    assert_eq!(s.finish(), 0, "{}", s.text());
    assert!(s.text().contains("Connection to machine foo terminated."));

    // Without a running container: a clear error.
    let out = th.ncsh(&["login", "foo"]);
    assert!(
        !out.status.success()
            && stderr(&out).contains("unable to get container's main PID")
            && stderr(&out).contains("container ‘foo’ is not running"),
        "{out:?}"
    );

    assert_ok(&th.ncsh(&["destroy", "foo"]), "destroy");
    assert_nothing_left(&th, "foo");
    drop(th);
    testhost::assert_gone(&host_name);
}

/// `update` of a running container reloads its unit, as NixOS does: the unit's ExecReload
/// (`ncsh __reload NAME`) switches the container in place. A switch that fails is reported
/// through the reload and rolled back: the previous generation keeps serving.
fn live_update(template: bool) {
    require_root();
    let th = TestHost::boot(if template { "upt" } else { "upn" }, template);
    let name = "foo";
    create(&th, name, &[]);
    assert_ok(&th.ncsh(&["start", name]), "start");
    let exec_reload = unit_property(&th, name, "ExecReload");
    assert!(
        exec_reload.contains("argv[]=/opt/ncsh/ncsh __reload foo ;")
            && exec_reload.contains("start_time=[n/a]"),
        "the unit's reload, not run yet: {exec_reload}"
    );
    let leader = machine_leader(&th, name);
    let root = th.path("/var/lib/nixos-containers/foo");
    let generation = || std::fs::read_to_string(root.join("var/lib/ncsh/generations/current"));
    let is_active =
        |unit: &str| text(&th.ncsh(&["run", name, "--", "systemctl", "is-active", unit]));

    let hello = "systemd.services.hello = { script = \"exec sleep infinity\"; wantedBy = [ \"multi-user.target\" ]; };";
    let out = th.ncsh(&["update", name, "--config", hello]);
    assert_ok(&out, "update");
    assert_eq!(stderr(&out), "reloading container...\n");
    assert_eq!(is_active("hello.service"), "active");
    assert_eq!(
        machine_leader(&th, name),
        leader,
        "update switches live, it does not reboot"
    );
    // The switch ran as the unit's reload: its ExecReload ran and succeeded, systemd logged it.
    let exec_reload = unit_property(&th, name, "ExecReload");
    assert!(
        !exec_reload.contains("start_time=[n/a]") && exec_reload.contains("code=exited ; status=0"),
        "ExecReload did not run: {exec_reload}"
    );
    let journal = text(&th.exec(&[
        "journalctl",
        "--no-pager",
        "-o",
        "cat",
        "-u",
        "container@foo.service",
    ]));
    assert!(
        journal.contains("Reloading") && journal.contains("Reloaded"),
        "{journal}"
    );
    assert!(!root.join("var/lib/ncsh/switch-pending.json").exists());
    let serving = generation().unwrap();

    // A reload by hand, without a pending switch, changes nothing.
    assert_ok(
        &th.exec(&["systemctl", "reload", "container@foo.service"]),
        "systemctl reload",
    );
    assert_eq!(is_active("hello.service"), "active");

    // A unit that fails to start fails the reload: update says so and rolls back.
    let config = root.join("etc/nixos/configuration.nix");
    let written = std::fs::read_to_string(&config).unwrap();
    let failing = format!(
        "{hello} systemd.services.broken = {{ script = \"exit 3\"; wantedBy = [ \"multi-user.target\" ]; serviceConfig.Type = \"oneshot\"; }};"
    );
    let out = th.ncsh(&["update", name, "--config", &failing]);
    let err = stderr(&out);
    println!("the failed update says:\n{err}");
    assert!(!out.status.success(), "the failing update succeeded");
    assert!(
        err.contains("failed to reload container")
            && err.contains("container@foo.service: the reload job finished with result ‘failed’")
            && err.contains("broken.service"),
        "{err}"
    );
    assert_eq!(generation().unwrap(), serving, "the generation is kept");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), written);
    assert!(!root.join("etc/systemd/system/broken.service").exists());
    assert!(!root.join("var/lib/ncsh/switch-pending.json").exists());
    assert!(!root.join("var/lib/ncsh/switch-error").exists());
    assert_eq!(is_active("hello.service"), "active");
    assert_eq!(status(&th, name), "up");
    assert_eq!(machine_leader(&th, name), leader);

    assert_ok(&th.ncsh(&["destroy", name]), "destroy");
    assert_nothing_left(&th, name);
}

#[test]
fn systemd_driver_updates_through_the_template_reload() {
    live_update(true);
}

#[test]
fn systemd_driver_updates_through_the_transient_reload() {
    live_update(false);
}

/// The README's walkthrough script (`scripts/demo.rhai`: create, start, run, serve a page and
/// fetch it at `show-ip`, stop, destroy) works unchanged on the systemd driver, with transient
/// units and with the template.
fn walkthrough_script(template: bool) {
    require_root();
    let th = TestHost::boot("demo", template);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo.rhai");
    std::fs::copy(&script, th.path("/root/demo.rhai")).unwrap();
    let out = th.ncsh(&["/root/demo.rhai", "web"]);
    assert_ok(&out, "demo.rhai");
    let printed = stdout(&out);
    for expected in [
        "created web: host 10.233.1.1, container 10.233.1.2",
        "uname -a: Linux web ",
        "GET http://10.233.1.2/ -> 200: hello from web",
        "stopped: down",
        "destroyed: exists = false",
    ] {
        assert!(
            printed.contains(expected),
            "{expected:?} not in:\n{printed}"
        );
    }
    // It ran as the unit, started and stopped by systemd.
    let journal = text(&th.exec(&[
        "journalctl",
        "-q",
        "--no-pager",
        "-u",
        "container@web.service",
    ]));
    assert!(
        journal.contains("Started container@web.service")
            && journal.contains("Stopped container@web.service"),
        "{journal}"
    );
    assert_nothing_left(&th, "web");
}

#[test]
fn systemd_driver_runs_the_walkthrough_script() {
    walkthrough_script(false);
}

#[test]
fn systemd_driver_runs_the_walkthrough_script_with_the_template() {
    walkthrough_script(true);
}

/// Under the systemd driver, `container@NAME` and `ve-NAME` are host-wide: a second conf
/// directory (another `NCSH_PREFIX`) with a container of the same name sees the running one as
/// not its own, refuses to start, stop or kill it, and its destroy leaves it running.
#[test]
fn systemd_driver_a_prefix_never_touches_another_prefixs_container() {
    require_root();
    let th = TestHost::boot("pfx", false);
    let ncsh_in = |prefix: &str, args: &[&str]| {
        let env = format!("NCSH_PREFIX={prefix}");
        let mut argv = vec!["env", env.as_str(), testhost::NCSH];
        argv.extend_from_slice(args);
        th.exec(&argv)
    };
    let (a, b) = ("/srv/a", "/srv/b");
    for (prefix, host, local) in [
        (a, "10.233.0.1", "10.233.0.2"),
        (b, "10.233.0.5", "10.233.0.6"),
    ] {
        let out = ncsh_in(
            prefix,
            &[
                "create",
                "x",
                "--host-address",
                host,
                "--local-address",
                local,
            ],
        );
        assert_ok(&out, "create");
    }
    assert_ok(&ncsh_in(a, &["start", "x"]), "start in a");
    let leader = text(&ncsh_in(a, &["run", "x", "--", "cat", "/proc/1/stat"]));
    assert_eq!(text(&ncsh_in(b, &["status", "x"])), "down");
    for verb in ["start", "stop", "terminate"] {
        let out = ncsh_in(b, &[verb, "x"]);
        assert!(!out.status.success(), "{verb} in b succeeded");
        assert!(
            stderr(&out).contains("another conf directory"),
            "{verb}: {}",
            stderr(&out)
        );
    }
    assert_ok(&ncsh_in(b, &["destroy", "x"]), "destroy in b");
    assert_eq!(text(&ncsh_in(a, &["status", "x"])), "up");
    assert_eq!(
        text(&ncsh_in(a, &["run", "x", "--", "cat", "/proc/1/stat"])),
        leader,
        "a's container was restarted"
    );
    assert_ok(
        &th.exec(&["ip", "link", "show", "ve-x"]),
        "a's link is gone",
    );
    assert_ok(&ncsh_in(a, &["destroy", "x"]), "destroy in a");
    assert_nothing_left(&th, "x");
}
