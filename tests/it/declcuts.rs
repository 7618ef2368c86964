//! Issue 12's last cuts with real containers: the IPv6 pair create picks, allowedDevices and
//! timeoutStartSec, INTERFACES and MACVLANS.

use std::net::{Ipv4Addr, TcpListener};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;

const WEB: &str = "networking.firewall.allowedTCPPorts = [ 80 ];
  systemd.services.web = { wantedBy = [ \"multi-user.target\" ];
    serviceConfig.ExecStart = \"${pkgs.python3}/bin/python3 -m http.server 80 --bind :: --directory /etc\"; };";

fn here(argv: &[&str]) -> std::process::Output {
    Command::new(argv[0]).args(&argv[1..]).output().unwrap()
}

/// The `unreachable` route over `fc00::/7`, as common.rs adds the IPv4 ones: a missing route to a
/// container's IPv6 address then drops the packet here instead of sending it out.
fn ensure_unreachable_v6() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let shown = here(&[
            "ip",
            "-6",
            "route",
            "show",
            "type",
            "unreachable",
            "fc00::/7",
        ]);
        if shown.stdout.is_empty() {
            let added = here(&["ip", "-6", "route", "add", "unreachable", "fc00::/7"]);
            assert!(
                added.status.success(),
                "could not add the route over fc00::/7"
            );
        }
    });
}

/// Confs in `env` (no containers: no roots) whose addresses cover 10.233.1.0 up to
/// 10.233.THIRD.0, so create's first free pair is THIRD, the pair this test claimed.
fn block_pairs_below(env: &Env, third: u8) {
    let dir = env.prefix().join("etc/nixos-containers");
    std::fs::create_dir_all(&dir).unwrap();
    let (mut start, end) = (u32::from(Ipv4Addr::new(10, 233, 0, 0)), {
        u32::from(Ipv4Addr::new(10, 233, third, 0))
    });
    let mut k = 0;
    while start < end {
        // The largest aligned block from start that ends before end.
        let mut len = 32 - start.trailing_zeros().min(32);
        while start + (1u32 << (32 - len)) > end {
            len += 1;
        }
        let text = format!("HOST_ADDRESS={}/{len}\n", Ipv4Addr::from(start));
        std::fs::write(dir.join(format!("block{k}.conf")), text).unwrap();
        start += 1u32 << (32 - len);
        k += 1;
    }
}

fn conf_text(env: &Env, name: &str) -> String {
    std::fs::read_to_string(env.conf_path(name)).unwrap_or_default()
}

#[test]
fn create_picks_an_ipv6_pair_that_carries_traffic_and_frees_it() {
    require_root();
    assert!(
        host_has_ipv6(),
        "this test needs a host with IPv6 (/proc/net/if_inet6, disable_ipv6 = 0)"
    );
    ensure_unreachable_v6();
    let env = Env::new();
    let (host, local) = env.test_addresses();
    let third: u8 = host.split('.').nth(2).unwrap().parse().unwrap();
    block_pairs_below(&env, third);
    let (host6, local6) = auto_ipv6_pair(third);
    let name = unique_name("six");
    env.track(&name);

    // A failed create claims nothing: the next one gets the same pairs.
    let out = env.run(&["create", &name, "--config", "this is { not nix"]);
    assert!(!out.status.success(), "a broken config was accepted");
    assert!(!env.conf_path(&name).exists());

    let out = env.run(&["create", &name, "--config", WEB]);
    assert_ok(&out, "create");
    assert_eq!(
        stderr(&out),
        format!("host IP is {host}, container IP is {local}\n")
    );
    let conf = conf_text(&env, &name);
    assert!(
        conf.contains(&format!(
            "LOCAL_ADDRESS={local}\nHOST_ADDRESS6={host6}\nLOCAL_ADDRESS6={local6}\n"
        )),
        "{conf}"
    );
    assert!(local6.starts_with("fd"), "{local6}");
    // show-ip prints the IPv4 address, as nixos-container; show --json both.
    assert_eq!(stdout(&env.run(&["show-ip", &name])), format!("{local}\n"));
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&env.run(&["show", &name, "--json"]))).unwrap();
    assert_eq!(
        (
            json["ipv4"].as_str(),
            json["ipv6"].as_str(),
            json["host_ipv4"].as_str(),
            json["host_ipv6"].as_str()
        ),
        (
            Some(local.as_str()),
            Some(local6.as_str()),
            Some(host.as_str()),
            Some(host6.as_str())
        )
    );

    assert_ok(&env.run(&["start", &name]), "start");
    // Host to container over IPv6: the web service inside answers.
    let target = format!("[{local6}]");
    assert!(
        eventually(Duration::from_secs(15), || http_get(&target, 80)
            .is_ok_and(|r| r.starts_with("HTTP/1.0 200"))),
        "{local6}:80 does not answer over the IPv6 pair"
    );
    // Container to host: a connection to the host side's address arrives here.
    let listener = TcpListener::bind((host6.parse::<std::net::Ipv6Addr>().unwrap(), 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let sent = env.run_inside(
        &name,
        &[
            "bash",
            "-c",
            &format!("echo from-inside >/dev/tcp/{host6}/{port}"),
        ],
    );
    assert_ok(&sent, "connecting to the host's IPv6 address");
    listener.set_nonblocking(false).unwrap();
    let (mut conn, peer) = listener.accept().unwrap();
    assert_eq!(peer.ip().to_string(), local6);
    let mut got = String::new();
    std::io::Read::read_to_string(&mut conn, &mut got).unwrap();
    assert_eq!(got, "from-inside\n");

    // Destroy releases both pairs: a new container gets them again.
    assert_ok(&env.run(&["destroy", &name]), "destroy");
    let routes = stdout(&here(&["ip", "-6", "route", "show", &local6]));
    assert!(routes.is_empty(), "destroy left a route: {routes}");
    let again = unique_name("six");
    env.track(&again);
    assert_ok(&env.run(&["create", &again]), "create again");
    assert!(
        conf_text(&env, &again).contains(&format!("LOCAL_ADDRESS6={local6}\n")),
        "{}",
        conf_text(&env, &again)
    );
    // Addresses given by hand: ncsh picks no IPv6 pair. (10.235: the blocks cover 10.233.)
    let (h, l) = env.test_addresses_in(235);
    let manual = unique_name("six");
    env.create(&manual, &["--host-address", &h, "--local-address", &l]);
    assert!(!conf_text(&env, &manual).contains("ADDRESS6"));
}

/// `ncsh apply` of FILE (written with `text`) in `env`.
fn apply(env: &Env, file: &str, text: &str, args: &[&str]) -> std::process::Output {
    let path = script(env, file, text);
    let mut all = vec!["apply", path.as_str()];
    all.extend_from_slice(args);
    env.run(&all)
}

/// `containers.NAME` with its own addresses and `options`.
fn declared(name: &str, (host, local): (&str, &str), options: &str) -> String {
    format!(
        "{{\n  containers.{name} = {{\n    privateNetwork = true;\n    hostAddress = \"{host}\";\n    \
         localAddress = \"{local}\";\n    {options}\n    config = {{ }};\n  }};\n}}\n"
    )
}

/// What opening `node` read-write inside says: "open" or the shell's error.
fn open_inside(env: &Env, name: &str, node: &str) -> String {
    let out = env.run_inside(
        name,
        &[
            "bash",
            "-c",
            &format!("exec 3<>{node} && echo open || true"),
        ],
    );
    format!("{}{}", stdout(&out), stderr(&out))
}

#[test]
fn allowed_devices_are_usable_inside_and_others_not() {
    require_root();
    let env = Env::new();
    let (closed, allowed, tun) = (unique_name("dvc"), unique_name("dva"), unique_name("dvt"));
    let mut text = String::from("{ imports = [\n");
    for (name, options) in [
        (&closed, ""),
        (
            &allowed,
            "allowedDevices = [ { node = \"/dev/net/tun\"; modifier = \"rw\"; } ];",
        ),
        (&tun, "enableTun = true;"),
    ] {
        env.track(name);
        let pair = env.test_addresses();
        text.push_str(&format!(
            "({})\n",
            declared(name, (&pair.0, &pair.1), options)
        ));
    }
    text.push_str("]; }\n");
    let out = apply(&env, "devices.nix", &text, &["--start"]);
    assert_ok(&out, "apply --start");
    let conf = std::fs::read_to_string(env.conf_path(&allowed)).unwrap();
    assert!(
        conf.contains("NCSH_ALLOWED_DEVICES=/dev/net/tun,rw\n"),
        "{conf}"
    );
    assert!(
        std::fs::read_to_string(env.conf_path(&tun))
            .unwrap()
            .contains("NCSH_ALLOWED_DEVICES=/dev/net/tun,rwm\n")
    );
    assert!(
        !std::fs::read_to_string(env.conf_path(&closed))
            .unwrap()
            .contains("NCSH_ALLOWED_DEVICES")
    );
    // NixOS's DevicePolicy=closed: nspawn makes /dev/net/tun, but only an allowed one opens.
    let said = open_inside(&env, &closed, "/dev/net/tun");
    assert!(said.contains("Operation not permitted"), "{said}");
    assert_eq!(open_inside(&env, &allowed, "/dev/net/tun"), "open\n");
    assert_eq!(open_inside(&env, &tun, "/dev/net/tun"), "open\n");
    // The devices of the closed policy's own list stay usable; a pty too.
    assert_eq!(open_inside(&env, &closed, "/dev/null"), "open\n");
    let pty = env.run(&["run", &closed, "--pty", "--", "tty"]);
    assert_ok(&pty, "run --pty");
    // `rw` of the allowed device: no mknod of it.
    let mknod = env.run_inside(&allowed, &["mknod", "/tmp/tun2", "c", "10", "200"]);
    assert!(!mknod.status.success(), "mknod of a device allowed rw only");
    let mknod = env.run_inside(&tun, &["mknod", "/tmp/tun2", "c", "10", "200"]);
    assert_ok(&mknod, "mknod of a device allowed rwm");

    // A bad entry is refused, naming the option, and changes nothing.
    let before = env.snapshot();
    let bad = text.replace("modifier = \"rw\"", "modifier = \"rx\"");
    let out = apply(&env, "devices.nix", &bad, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("containers.{allowed}.allowedDevices.0"))
            && stderr(&out).contains("modifier ‘rx’"),
        "{}",
        stderr(&out)
    );
    std::fs::write(env.prefix().join("devices.nix"), &text).unwrap();
    assert!(env.snapshot() == before, "a refused apply changed files");
}

#[test]
fn a_start_longer_than_timeout_start_sec_fails_and_leaves_nothing_running() {
    require_root();
    let env = Env::new();
    let name = unique_name("tmo");
    env.track(&name);
    let pair = env.test_addresses();
    // A unit multi-user.target waits for, slower than the timeout.
    let options = "timeoutStartSec = \"2s\";";
    let slow = declared(&name, (&pair.0, &pair.1), options).replace(
        "config = { };",
        "config = { systemd.services.slow = { wantedBy = [ \"multi-user.target\" ]; \
         before = [ \"multi-user.target\" ]; serviceConfig = { Type = \"oneshot\"; \
         ExecStart = \"/usr/bin/sleep 30\"; TimeoutStartSec = \"infinity\"; }; }; };",
    );
    let out = apply(&env, "slow.nix", &slow, &[]);
    assert_ok(&out, "apply");
    let conf = std::fs::read_to_string(env.conf_path(&name)).unwrap();
    assert!(conf.contains("NCSH_TIMEOUT_START_SEC=2\n"), "{conf}");
    let began = std::time::Instant::now();
    let out = env.run(&["start", &name]);
    let took = began.elapsed();
    assert!(!out.status.success(), "a start past its timeout succeeded");
    let err = stderr(&out);
    assert!(
        err.contains("failed to start container")
            && err.contains("not ready after 2s (its timeoutStartSec"),
        "{err}"
    );
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(20),
        "took {took:?}"
    );
    assert_eq!(stdout(&env.run(&["status", &name])), "down\n");
    assert_no_debris_but_files(&env, &name);

    // The default (NixOS's 1min) is not written, and the same container then starts.
    let out = apply(
        &env,
        "slow.nix",
        &slow
            .replace(options, "")
            .replace("/usr/bin/sleep 30", "/usr/bin/true"),
        &["--start"],
    );
    assert_ok(&out, "apply --start");
    assert!(
        !std::fs::read_to_string(env.conf_path(&name))
            .unwrap()
            .contains("NCSH_TIMEOUT_START_SEC")
    );
    assert_eq!(stdout(&env.run(&["status", &name])), "up\n");

    let out = apply(
        &env,
        "bad.nix",
        &declared(&name, (&pair.0, &pair.1), "timeoutStartSec = \"soon\";"),
        &[],
    );
    assert!(
        !out.status.success()
            && stderr(&out).contains(&format!("containers.{name}.timeoutStartSec"))
            && stderr(&out).contains("‘soon’ is not a time span"),
        "{}",
        stderr(&out)
    );
}

/// Nothing of a stopped container runs or is mounted: no supervisor, cgroup, link (its files
/// stay).
fn assert_no_debris_but_files(env: &Env, name: &str) {
    for hierarchy in [
        "/sys/fs/cgroup/systemd",
        "/sys/fs/cgroup/unified",
        "/sys/fs/cgroup/devices",
        "/sys/fs/cgroup",
    ] {
        let cg = std::path::Path::new(hierarchy).join(format!("ncsh-{name}"));
        assert!(!cg.exists(), "{} left", cg.display());
    }
    assert!(
        !here(&["ip", "link", "show", "dev", &format!("ve-{name}")])
            .status
            .success(),
        "ve-{name} left"
    );
    let supervisors = here(&["pgrep", "-f", &format!("__supervise {name}$")]);
    assert!(supervisors.stdout.is_empty(), "a supervisor left");
    assert!(
        !env.prefix()
            .join("run/ncsh")
            .join(name)
            .join("leader")
            .exists()
    );
}

/// A veth pair on the host with names of this test's, `NAME` and `NAME` + `p` (deleted when
/// dropped, wherever the test ended). This kernel has no `dummy` links; a veth end is a link
/// of the host as good for `interfaces` and as a macvlan's parent.
struct HostLink(String);

impl HostLink {
    fn new(tag: &str) -> HostLink {
        let name = format!("{tag}{}", unique_name("x").trim_start_matches('x'));
        assert!(name.len() <= 11, "{name}");
        let peer = format!("{name}p");
        let out = here(&[
            "ip", "link", "add", &name, "type", "veth", "peer", "name", &peer,
        ]);
        assert!(out.status.success(), "ip link add {name}: {}", stderr(&out));
        HostLink(name)
    }

    fn on_host(&self) -> bool {
        here(&["ip", "link", "show", "dev", &self.0])
            .status
            .success()
    }
}

impl Drop for HostLink {
    fn drop(&mut self) {
        let _ = here(&["ip", "link", "del", "dev", &self.0]);
    }
}

/// `ip -o link show dev LINK` inside container `name`: is it there?
fn link_inside(env: &Env, name: &str, link: &str) -> bool {
    env.run_inside(name, &["ip", "-o", "link", "show", "dev", link])
        .status
        .success()
}

#[test]
fn interfaces_move_into_the_container_and_macvlans_are_made_over_host_links() {
    require_root();
    let env = Env::new();
    let (moved, parent) = (HostLink::new("dci"), HostLink::new("dcm"));
    let (a, b) = (unique_name("ifc"), unique_name("mvl"));
    let (pa, pb) = (env.test_addresses(), env.test_addresses());
    env.track(&a);
    env.track(&b);
    let text = format!(
        "{{ imports = [ ({}) ({}) ]; }}",
        declared(
            &a,
            (&pa.0, &pa.1),
            &format!("interfaces = [ \"{}\" ];", moved.0)
        ),
        declared(
            &b,
            (&pb.0, &pb.1),
            &format!("macvlans = [ \"{}\" ];", parent.0)
        ),
    );
    let out = apply(&env, "links.nix", &text, &["--start"]);
    assert_ok(&out, "apply --start");
    let conf = std::fs::read_to_string(env.conf_path(&a)).unwrap();
    assert!(
        conf.contains(&format!("INTERFACES=\"{}\"\n", moved.0)),
        "{conf}"
    );

    // interfaces: the host's link is inside now, and no longer on the host.
    assert!(link_inside(&env, &a, &moved.0), "{} is not inside", moved.0);
    assert!(!moved.on_host(), "{} is still on the host", moved.0);
    // macvlans: mv-IF inside, a macvlan over the host's link, which stays on the host.
    let mv = format!("mv-{}", parent.0);
    let shown = env.run_inside(&b, &["ip", "-d", "-o", "link", "show", "dev", &mv]);
    assert_ok(&shown, &format!("ip link show {mv} inside"));
    assert!(stdout(&shown).contains("macvlan"), "{}", stdout(&shown));
    assert!(parent.on_host());
    assert!(!link_inside(&env, &b, &parent.0));

    // After a stop: the moved link is back on the host, the macvlan went with the container's
    // namespace and its parent stayed.
    for name in [&a, &b] {
        assert_ok(&env.run(&["stop", name]), "stop");
    }
    assert!(
        eventually(Duration::from_secs(5), || moved.on_host()),
        "{} did not come back to the host",
        moved.0
    );
    assert!(parent.on_host());
    let mv_on_host = here(&["ip", "link", "show", "dev", &mv]);
    assert!(!mv_on_host.status.success(), "{mv} on the host");
    // And the next start moves it in again.
    assert_ok(&env.run(&["start", &a]), "start again");
    assert!(link_inside(&env, &a, &moved.0));
    assert!(!moved.on_host());
    // A terminate kills nspawn, which then cannot give the link back, and the kernel would
    // delete a virtual one with the namespace: ncsh moves it back first. Destroy, which
    // terminates a running container (as nixos-container), too.
    assert_ok(&env.run(&["terminate", &a]), "terminate");
    assert!(
        eventually(Duration::from_secs(5), || moved.on_host()),
        "{} lost by terminate",
        moved.0
    );
    assert_ok(&env.run(&["start", &a]), "start after terminate");
    assert!(link_inside(&env, &a, &moved.0));
    assert_ok(&env.run(&["destroy", &a]), "destroy");
    assert!(
        eventually(Duration::from_secs(5), || moved.on_host()),
        "{} lost by destroy",
        moved.0
    );
}

/// `ncsh apply` under the systemd driver for real: inside a systemd test host (testhost.rs), a
/// declared container is created and started as `container@NAME.service` (a transient unit, or
/// the instance of a NixOS-like template), its allowedDevices and timeoutStartSec on the unit,
/// switched live, restarted for an nspawn-level change, and destroyed with nothing left.
fn apply_under_systemd(template: bool) {
    use crate::testhost::TestHost;
    require_root();
    let th = TestHost::boot(if template { "apt" } else { "apy" }, template);
    let name = "web";
    let unit = format!("container@{name}.service");
    let property = |p: &str| {
        let out = th.exec(&["systemctl", "show", "--value", "-p", p, &unit]);
        stdout(&out).trim().to_string()
    };
    let module = |extra_config: &str, extra: &str| {
        format!(
            r#"{{ lib, ... }}:
{{
  containers.{name} = {{
    privateNetwork = true;
    hostAddress = "10.233.0.1";
    localAddress = "10.233.0.2";
    autoStart = true;
    allowedDevices = [ {{ node = "/dev/net/tun"; modifier = "rw"; }} ];
    timeoutStartSec = "90s";
    {extra}
    config = {{ pkgs, ... }}: {{
      networking.firewall.allowedTCPPorts = [ 80 ];
      systemd.services.www = {{
        wantedBy = [ "multi-user.target" ];
        serviceConfig.ExecStart = "${{pkgs.python3}}/bin/python3 -m http.server 80 --directory /etc";
      }};
      {extra_config}
    }};
  }};
}}
"#
        )
    };
    let apply = |text: &str, args: &[&str]| {
        std::fs::write(th.path("/root/web.nix"), text).unwrap();
        let mut all = vec!["apply", "/root/web.nix"];
        all.extend_from_slice(args);
        th.ncsh(&all)
    };

    let out = apply(&module("", ""), &[]);
    assert_ok(&out, "apply under systemd");
    assert_eq!(stdout(&out), format!("{name}: created, started\n"));
    assert_eq!(property("ActiveState"), "active");
    assert_eq!(
        property("Transient"),
        if template { "no" } else { "yes" },
        "which unit ran it"
    );
    // NixOS's unit settings: DeviceAllow= (and the transient unit's own policy and timeout).
    assert!(
        property("DeviceAllow").contains("/dev/net/tun rw"),
        "{}",
        property("DeviceAllow")
    );
    if !template {
        assert_eq!(property("DevicePolicy"), "closed");
        assert_eq!(property("TimeoutStartUSec"), "1min 30s");
    }
    let curl = |path: &str| {
        let out = th.exec(&[
            "curl",
            "-sf",
            "--max-time",
            "2",
            &format!("http://10.233.0.2/{path}"),
        ]);
        out.status.success().then(|| stdout(&out))
    };
    assert!(
        eventually(Duration::from_secs(15), || curl("hostname").is_some()),
        "the container's web server does not answer in the test host"
    );
    let tun = th.ncsh(&[
        "run",
        name,
        "--",
        "bash",
        "-c",
        "exec 3<>/dev/net/tun && echo open",
    ]);
    assert_eq!(stdout(&tun), "open\n", "{}", stderr(&tun));
    let leader = stdout(&th.exec(&["machinectl", "show", "--value", "-p", "Leader", name]));

    // A change of its config: switched live (the same leader), seen inside.
    let changed = module("environment.etc.\"applied\".text = \"yes\\n\";", "");
    let out = apply(&changed, &[]);
    assert_ok(&out, "apply of a changed config");
    assert_eq!(stdout(&out), format!("{name}: updated\n"));
    assert_eq!(
        stdout(&th.ncsh(&["run", name, "--", "cat", "/etc/applied"])),
        "yes\n"
    );
    assert_eq!(
        stdout(&th.exec(&["machinectl", "show", "--value", "-p", "Leader", name])),
        leader,
        "a live switch restarted it"
    );
    // An nspawn-level change: restarted, with the new option.
    let out = apply(
        &module(
            "environment.etc.\"applied\".text = \"yes\\n\";",
            "tmpfs = [ \"/var/cache\" ];",
        ),
        &[],
    );
    assert_ok(&out, "apply of an nspawn-level change");
    assert_eq!(stdout(&out), format!("{name}: restarted\n"));
    assert_ne!(
        stdout(&th.exec(&["machinectl", "show", "--value", "-p", "Leader", name])),
        leader,
        "not restarted"
    );
    if !template {
        // (testhost.rs's template, unlike NixOS's, does not pass EXTRA_NSPAWN_FLAGS.)
        let mounts = th.ncsh(&[
            "run",
            name,
            "--",
            "findmnt",
            "-n",
            "-o",
            "FSTYPE",
            "/var/cache",
        ]);
        assert_eq!(stdout(&mounts).trim(), "tmpfs");
    }
    let out = apply(
        &module(
            "environment.etc.\"applied\".text = \"yes\\n\";",
            "tmpfs = [ \"/var/cache\" ];",
        ),
        &[],
    );
    assert_eq!(stdout(&out), format!("{name}: unchanged\n"));

    let out = apply(&changed, &["--destroy"]);
    assert_ok(&out, "apply --destroy");
    assert_eq!(stdout(&out), format!("{name}: destroyed\n"));
    let units = th.exec(&[
        "systemctl",
        "list-units",
        "--all",
        "--plain",
        "--no-legend",
        &unit,
    ]);
    assert_ok(&units, "systemctl list-units");
    assert_eq!(stdout(&units).trim(), "", "a unit is left");
    let machines = th.exec(&["machinectl", "list", "--no-legend"]);
    assert!(!stdout(&machines).contains(name), "{}", stdout(&machines));
    let links = stdout(&th.exec(&["ip", "-o", "link"]));
    assert!(!links.contains("ve-"), "a host link is left: {links}");
    assert!(!th.path("/etc/nixos-containers/web.conf").exists());
    assert!(!th.path("/var/lib/nixos-containers/web").exists());

    // A start slower than timeoutStartSec fails, and leaves no unit running.
    let slow = module(
        "systemd.services.slow = { wantedBy = [ \"multi-user.target\" ]; \
         before = [ \"multi-user.target\" ]; serviceConfig = { Type = \"oneshot\"; \
         ExecStart = \"/usr/bin/sleep 30\"; TimeoutStartSec = \"infinity\"; }; };",
        "",
    )
    .replace("timeoutStartSec = \"90s\";", "timeoutStartSec = \"2s\";")
    .replace("autoStart = true;", "");
    assert_ok(&apply(&slow, &[]), "apply of a slow container");
    let began = Instant::now();
    let out = th.ncsh(&["start", name]);
    let took = began.elapsed();
    assert!(!out.status.success(), "a start past its timeout succeeded");
    assert!(
        stderr(&out).contains("failed to start container"),
        "{}",
        stderr(&out)
    );
    if template {
        // The template's TimeoutStartSec=1min stays; ncsh stops the unit at the container's.
        assert!(
            stderr(&out).contains("not ready after 2s (its timeoutStartSec"),
            "{}",
            stderr(&out)
        );
    }
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(20),
        "took {took:?}"
    );
    assert_eq!(stdout(&th.ncsh(&["status", name])).trim(), "down");
    assert_ne!(property("ActiveState"), "active");
    let out = apply(&slow, &["--destroy"]);
    assert_ok(&out, "apply --destroy of the slow one");
    let links = stdout(&th.exec(&["ip", "-o", "link"]));
    assert!(!links.contains("ve-"), "a host link is left: {links}");
}

#[test]
fn apply_under_systemd_with_transient_units() {
    apply_under_systemd(false);
}

#[test]
fn apply_under_systemd_with_the_template() {
    apply_under_systemd(true);
}
