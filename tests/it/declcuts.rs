//! Issue 12's last cuts with real containers: the IPv6 pair create picks, allowedDevices and
//! timeoutStartSec, INTERFACES and MACVLANS.

use std::net::{Ipv4Addr, TcpListener};
use std::process::Command;
use std::time::Duration;

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
    // Addresses given by hand: ncsh picks no IPv6 pair.
    let (h, l) = env.test_addresses();
    let manual = unique_name("six");
    env.create(&manual, &["--host-address", &h, "--local-address", &l]);
    assert!(!conf_text(&env, &manual).contains("ADDRESS6"));
}
