//! Networking that holds (issue 12, item 4): forwarded ports go however a container ends, and
//! are reachable from the host's loopback; containers on one bridge share its gateway; an ncsh
//! network (`--network NAME`) lets containers reach each other; a missing address is named.

use std::process::Command;
use std::time::Duration;

use crate::common::*;
use crate::testhost::TestHost;

/// The elements of nspawn's port map (`nft -j`, in family `ip`) that forward to `address`, as
/// `PROTO:PORT`; `nft` runs through `exec` (here, or inside a test host).
fn forwards_to(exec: &dyn Fn(&[&str]) -> std::process::Output, address: &str) -> Vec<String> {
    let out = exec(&[
        "nft",
        "-j",
        "list",
        "map",
        "ip",
        "io.systemd.nat",
        "map_port_ipport",
    ]);
    if !out.status.success() {
        // No map at all: asserted to be the "no such table" case, not a broken nft.
        let err = stderr(&out);
        assert!(
            err.contains("No such file or directory"),
            "nft failed: {err}"
        );
        return Vec::new();
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut found = Vec::new();
    for item in json["nftables"].as_array().unwrap() {
        for elem in item["map"]["elem"].as_array().cloned().unwrap_or_default() {
            if elem[1]["concat"][0].as_str() == Some(address) {
                let key = &elem[0]["concat"];
                // A test host has no /etc/protocols: nft shows the number.
                let protocol = match (key[0].as_str(), key[0].as_u64()) {
                    (Some(name), _) => name.to_string(),
                    (None, Some(6)) => "tcp".to_string(),
                    (None, Some(17)) => "udp".to_string(),
                    _ => panic!("{json}"),
                };
                found.push(format!("{protocol}:{}", key[1]));
            }
        }
    }
    found
}

fn here(argv: &[&str]) -> std::process::Output {
    Command::new(argv[0]).args(&argv[1..]).output().unwrap()
}

/// A host port no other test process uses at the same time.
fn unique_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    20000 + (std::process::id() % 2000) as u16 * 8 + n
}

fn pgrep(pattern: &str) -> Vec<i32> {
    let out = here(&["pgrep", "-f", pattern]);
    stdout(&out)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn kill(pid: i32, signal: &str) {
    assert_ok(&here(&["kill", signal, &pid.to_string()]), "kill");
}

/// The supervisor and nspawn of a standalone container die at once (SIGKILL, nspawn stopped
/// first so it cannot clean up on the supervisor's death): nothing removes the port.
fn crash(name: &str) {
    let supervisor = pgrep(&format!("__supervise {name}$"));
    let nspawn = pgrep(&format!("systemd-nspawn .*-M {name} "));
    assert_eq!((supervisor.len(), nspawn.len()), (1, 1), "{name}");
    kill(nspawn[0], "-STOP");
    kill(supervisor[0], "-KILL");
    kill(nspawn[0], "-KILL");
    assert!(eventually(Duration::from_secs(10), || pgrep(&format!(
        "systemd-nspawn .*-M {name} "
    ))
    .is_empty()));
}

const WEB: &str = "networking.firewall.allowedTCPPorts = [ 80 ];
  systemd.services.web = { wantedBy = [ \"multi-user.target\" ];
    serviceConfig.ExecStart = \"${pkgs.python3}/bin/python3 -m http.server 80 --directory /etc\"; };";

fn loopback_table_exists(name: &str) -> bool {
    here(&["nft", "list", "table", "ip", &format!("ncsh-{name}")])
        .status
        .success()
}

#[test]
fn forwarded_ports_go_however_a_container_ends() {
    require_root();
    let env = Env::new();
    let name = unique_name("fwd");
    let port = unique_port();
    let spec = format!("tcp:{port}:80");
    let (_host, local) = env.create_booting_with(&name, &["--port", &spec, "--config", WEB]);
    let mine = || forwards_to(&here, &local);
    let expected = vec![format!("tcp:{port}")];
    let start = || assert_ok(&env.run(&["start", &name]), "start");

    start();
    assert_eq!(mine(), expected);
    // The port from the host's loopback too (nspawn's own rule leaves out 127/8).
    assert!(
        eventually(Duration::from_secs(10), || http_get("127.0.0.1", port)
            .is_ok_and(|r| r.starts_with("HTTP/1.0 200"))),
        "127.0.0.1:{port} does not reach the container"
    );
    assert!(loopback_table_exists(&name));
    // route_localnet on the link must not open the host's 127/8 to the container.
    let table = stdout(&here(&[
        "nft",
        "list",
        "table",
        "ip",
        &format!("ncsh-{name}"),
    ]));
    assert!(
        table.contains(&format!("iifname \"ve-{name}\" ip daddr 127.0.0.0/8 drop")),
        "{table}"
    );

    assert_ok(&env.run(&["terminate", &name]), "terminate");
    assert_eq!(mine(), Vec::<String>::new(), "terminate left the port");
    assert!(!loopback_table_exists(&name), "terminate left the table");

    start();
    assert_ok(&env.run(&["stop", &name]), "stop");
    assert_eq!(mine(), Vec::<String>::new(), "stop left the port");

    // The leader dies: nspawn ends, the supervisor cleans up.
    start();
    kill(leader(&env, &name), "-KILL");
    assert!(eventually(Duration::from_secs(10), || stdout(
        &env.run(&["status", &name])
    ) == "down\n"));
    assert!(eventually(Duration::from_secs(10), || mine().is_empty()));

    // A crash of the supervisor and nspawn leaves the element; the next start replaces it
    // with its own, and the next destroy removes it.
    start();
    crash(&name);
    assert_eq!(
        mine(),
        expected,
        "the crash was expected to leave the element"
    );
    start();
    assert_eq!(mine(), expected);
    assert!(loopback_table_exists(&name));
    crash(&name);
    assert_ok(&env.run(&["destroy", &name]), "destroy");
    assert_eq!(mine(), Vec::<String>::new(), "destroy left the port");
    assert!(!loopback_table_exists(&name), "destroy left the table");
}

/// Deletes a bridge when dropped, also after a failure (the product removes it on success).
struct BridgeGuard(String);

impl Drop for BridgeGuard {
    fn drop(&mut self) {
        let _ = here(&["ip", "link", "del", "dev", &self.0]);
    }
}

fn bridge_exists(name: &str) -> bool {
    here(&["ip", "link", "show", "dev", name]).status.success()
}

fn conf_value(env: &Env, name: &str, key: &str) -> String {
    let text = std::fs::read_to_string(env.conf_path(name)).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_default()
        .to_string()
}

/// Two containers on `--network NET` reach each other by address; the bridge goes with the
/// last of them.
#[test]
fn containers_on_a_network_reach_each_other() {
    require_root();
    let env = Env::new();
    // The network takes its /24 from a test claim (10.235.T.0/24), so no test shares it.
    let (host, _) = env.test_addresses_in(235);
    let third = host.split('.').nth(2).unwrap().to_string();
    let range = format!("10.235.{third}.0/24");
    let net = unique_name("net");
    let _guard = BridgeGuard(net.clone());
    let (a, b) = (unique_name("nea"), unique_name("neb"));
    let create = |name: &str, config: &str| {
        env.track(name);
        let out = env
            .command(&["create", name, "--network", &net, "--config", config])
            .env("NCSH_NETWORK_RANGE", &range)
            .output()
            .unwrap();
        assert_ok(&out, "create --network");
    };
    create(&a, "");
    create(&b, &WEB.replace("80", "8080"));
    let gateway = format!("10.235.{third}.1");
    for (name, local) in [(&a, 2), (&b, 3)] {
        assert_eq!(conf_value(&env, name, "HOST_ADDRESS"), gateway);
        assert_eq!(
            conf_value(&env, name, "LOCAL_ADDRESS"),
            format!("10.235.{third}.{local}/24")
        );
        assert_eq!(conf_value(&env, name, "HOST_BRIDGE"), net);
        assert_eq!(conf_value(&env, name, "NCSH_NETWORK"), net);
    }
    assert!(
        !bridge_exists(&net),
        "the bridge is made at the first start"
    );
    assert_ok(&env.run(&["start", &a]), "start a");
    assert_ok(&env.run(&["start", &b]), "start b");
    let addr = stdout(&here(&["ip", "-o", "-4", "addr", "show", "dev", &net]));
    assert!(addr.contains(&format!("{gateway}/24")), "{addr}");
    // a reaches b's server by b's address, over the bridge.
    let url = format!("http://10.235.{third}.3:8080/");
    let fetch =
        format!("import urllib.request; print(urllib.request.urlopen('{url}', timeout=3).status)");
    assert!(
        eventually(Duration::from_secs(10), || stdout(
            &env.run_inside(&a, &["python3", "-c", &fetch])
        ) == "200\n"),
        "{a} cannot reach {url}"
    );
    // The host reaches both on the bridge.
    assert!(
        http_get(&format!("10.235.{third}.3"), 8080).is_ok_and(|r| r.starts_with("HTTP/1.0 200"))
    );

    assert_ok(&env.run(&["destroy", &a]), "destroy a");
    assert!(bridge_exists(&net), "the bridge went while b is on it");
    assert_ok(&env.run(&["destroy", &b]), "destroy b");
    assert!(
        !bridge_exists(&net),
        "the bridge outlived its last container"
    );
}

/// Containers on one `--bridge` share the gateway; a lone local address names what is missing.
#[test]
fn a_bridge_gateway_is_shared_and_a_missing_address_named() {
    require_root();
    let env = Env::new();
    let (host, local) = env.test_addresses_in(235);
    let other = format!("{}.3", local.rsplit_once('.').unwrap().0);
    let (a, b) = (unique_name("bra"), unique_name("brb"));
    env.create(
        &a,
        &[
            "--bridge",
            "ncshbr0",
            "--host-address",
            &host,
            "--local-address",
            &local,
        ],
    );
    env.create(
        &b,
        &[
            "--bridge",
            "ncshbr0",
            "--host-address",
            &host,
            "--local-address",
            &other,
        ],
    );
    assert_eq!(conf_value(&env, &b, "HOST_ADDRESS"), host);

    let out = env.run(&["create", "x1", "--local-address", "10.235.8.2"]);
    assert!(
        !out.status.success() && stderr(&out).contains("--host-address is required"),
        "{}",
        stderr(&out)
    );
    let script = env.prefix().join("lone.rhai");
    std::fs::write(
        &script,
        "create(\"x1\", #{ bridge: \"ncshbr0\", local_address: \"10.235.8.2\" })",
    )
    .unwrap();
    let out = env.run(&[script.to_str().unwrap()]);
    assert!(
        !out.status.success() && stderr(&out).contains("--host-address is required"),
        "{}",
        stderr(&out)
    );
    assert!(!env.conf_path("x1").exists());
    let out = env.run(&["create", "x1", "--network", "eth0"]);
    assert!(
        !out.status.success() && stderr(&out).contains("not a network of ncsh's"),
        "{}",
        stderr(&out)
    );
    let out = env.run(&["create", "x1", "--network", "n1", "--bridge", "br0"]);
    assert!(
        !out.status.success() && stderr(&out).contains("--network and --bridge exclude each other"),
        "{}",
        stderr(&out)
    );
}

/// Under the systemd driver (a test host): terminate and a killed nspawn leave no port.
#[test]
fn systemd_driver_forwarded_ports_go_however_a_container_ends() {
    require_root();
    let th = TestHost::boot("fwd", false);
    crate::systemd::create(&th, "fwd", &["--port", "tcp:8080:80", "--config", WEB]);
    let exec = |argv: &[&str]| th.exec(argv);
    let mine = || forwards_to(&exec, "10.233.0.2");
    let start = || assert_ok(&th.ncsh(&["start", "fwd"]), "start");
    start();
    assert_eq!(mine(), ["tcp:8080"]);
    let curl = [
        "python3",
        "-c",
        "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8080/', timeout=3).status)",
    ];
    assert!(
        eventually(Duration::from_secs(10), || stdout(&th.exec(&curl))
            == "200\n"),
        "the loopback forward does not work under systemd"
    );
    assert_ok(&th.ncsh(&["terminate", "fwd"]), "terminate");
    assert_eq!(mine(), Vec::<String>::new(), "terminate left the port");
    start();
    // nspawn killed: the unit's ExecStopPost removes what it left.
    assert_ok(
        &th.exec(&[
            "systemctl",
            "kill",
            "--kill-who=main",
            "-s",
            "KILL",
            "container@fwd.service",
        ]),
        "systemctl kill",
    );
    assert!(
        eventually(Duration::from_secs(10), || mine().is_empty()),
        "a killed nspawn left the port: {:?}",
        mine()
    );
    assert!(
        !th.exec(&["nft", "list", "table", "ip", "ncsh-fwd"])
            .status
            .success()
    );
    assert_ok(&th.ncsh(&["destroy", "fwd"]), "destroy");
}
