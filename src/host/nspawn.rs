//! The systemd-nspawn command line, built in one place for every driver. It follows the NixOS
//! start script (reference §6.3): `--keep-unit -M NAME -D ROOT`, the network flags from the conf,
//! `--notify-ready=yes --kill-signal=SIGRTMIN+3`, the binds, `--setenv` of the address variables,
//! then the container init.

use std::ffi::OsString;
use std::path::Path;

use crate::build::base::CONTAINER_INIT_PATH;
use crate::container::Conf;

/// The variables NixOS passes into the container with `--setenv`.
const SETENV_KEYS: [&str; 8] = [
    "PRIVATE_NETWORK",
    "HOST_BRIDGE",
    "HOST_ADDRESS",
    "LOCAL_ADDRESS",
    "HOST_ADDRESS6",
    "LOCAL_ADDRESS6",
    "LOCAL_MAC_ADDRESS",
    "HOST_PORT",
];

const LD_SO_CACHE: &str = "/etc/ld.so.cache";

/// PATH inside the container.
pub const CONTAINER_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How the driver runs nspawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Supervision {
    /// ncsh supervises nspawn itself: no machined, no systemd scope.
    Standalone,
    /// nspawn runs as a systemd unit and registers with machined.
    SystemdUnit,
}

/// Does this conf give the container a veth (nixos-container's rule)?
pub fn wants_veth(conf: &Conf) -> bool {
    [
        "HOST_ADDRESS",
        "LOCAL_ADDRESS",
        "HOST_ADDRESS6",
        "LOCAL_ADDRESS6",
        "LOCAL_MAC_ADDRESS",
    ]
    .iter()
    .any(|k| conf.non_empty(k).is_some())
}

/// The arguments after `systemd-nspawn`.
pub fn args(name: &str, root: &Path, conf: &Conf, supervision: Supervision) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |s: String| args.push(s.into());
    push("--keep-unit".into());
    if supervision == Supervision::Standalone {
        push("--register=no".into());
    }
    push("-M".into());
    push(name.into());
    push("-D".into());
    args.push(root.as_os_str().to_owned());
    let mut push = |s: String| args.push(s.into());
    if conf.get("PRIVATE_NETWORK") == Some("1") {
        push("--private-network".into());
    }
    if let Some(bridge) = conf.non_empty("HOST_BRIDGE") {
        push(format!("--network-bridge={bridge}"));
    } else if wants_veth(conf) {
        push("--network-veth".into());
    }
    if let Some(ports) = conf.non_empty("HOST_PORT") {
        for port in ports.split(',').filter(|p| !p.is_empty()) {
            push(format!("--port={port}"));
        }
    }
    for (key, flag) in [
        ("INTERFACES", "--network-interface"),
        ("MACVLANS", "--network-macvlan"),
    ] {
        for item in conf.non_empty(key).unwrap_or_default().split_whitespace() {
            push(format!("{flag}={item}"));
        }
    }
    push("--notify-ready=yes".into());
    push("--kill-signal=SIGRTMIN+3".into());
    push("--bind-ro=/usr".into());
    // The host's linker cache describes the host's /usr, which the container shares; without
    // it every exec in the container searches ten library directories.
    if Path::new(LD_SO_CACHE).exists() {
        push(format!("--bind-ro={LD_SO_CACHE}"));
    }
    push("--link-journal=no".into());
    // /etc/localtime is the container's own (time.timeZone), not a copy of the host's.
    push("--timezone=off".into());
    for key in SETENV_KEYS {
        push(format!(
            "--setenv={key}={}",
            conf.get(key).unwrap_or_default()
        ));
    }
    push(format!("--setenv=PATH={CONTAINER_PATH}"));
    push(CONTAINER_INIT_PATH.into());
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(text: &str) -> Conf {
        Conf::parse(text, Path::new("t")).unwrap()
    }

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn imperative_container() {
        let c = conf(
            "PRIVATE_NETWORK=1\nHOST_ADDRESS=10.233.1.1\nLOCAL_ADDRESS=10.233.1.2\nHOST_BRIDGE=\nHOST_PORT=\nAUTO_START=0\n",
        );
        let a = strings(args(
            "foo",
            Path::new("/var/lib/nixos-containers/foo"),
            &c,
            Supervision::Standalone,
        ));
        assert_eq!(
            &a[..7],
            [
                "--keep-unit",
                "--register=no",
                "-M",
                "foo",
                "-D",
                "/var/lib/nixos-containers/foo",
                "--private-network"
            ]
        );
        assert_eq!(a[7], "--network-veth");
        assert!(a.contains(&"--notify-ready=yes".to_string()));
        assert!(a.contains(&"--kill-signal=SIGRTMIN+3".to_string()));
        assert!(a.contains(&"--bind-ro=/usr".to_string()));
        assert!(a.contains(&"--setenv=LOCAL_ADDRESS=10.233.1.2".to_string()));
        assert!(a.contains(&"--setenv=HOST_BRIDGE=".to_string()));
        assert_eq!(a.last().unwrap(), CONTAINER_INIT_PATH);
    }

    #[test]
    fn bridge_ports_and_systemd_unit() {
        let c = conf(
            "PRIVATE_NETWORK=1\nHOST_ADDRESS=10.233.1.1\nLOCAL_ADDRESS=10.233.1.2\nHOST_BRIDGE=br0\nHOST_PORT=tcp:8080:80,udp:53\n",
        );
        let a = strings(args("foo", Path::new("/r"), &c, Supervision::SystemdUnit));
        assert!(!a.contains(&"--register=no".to_string()));
        assert!(a.contains(&"--network-bridge=br0".to_string()));
        assert!(!a.contains(&"--network-veth".to_string()));
        assert!(
            a.contains(&"--port=tcp:8080:80".to_string())
                && a.contains(&"--port=udp:53".to_string())
        );
    }

    #[test]
    fn no_network_without_addresses() {
        let a = strings(args(
            "foo",
            Path::new("/r"),
            &conf("PRIVATE_NETWORK=0\n"),
            Supervision::Standalone,
        ));
        assert!(
            !a.iter()
                .any(|x| x.starts_with("--network") || x == "--private-network")
        );
    }
}
