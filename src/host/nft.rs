//! Forwarded ports (`--port`, HOST_PORT) in nftables (ARCHITECTURE.md, "Forwarded ports").
//!
//! nspawn's `--port` adds an element `PROTO . HOSTPORT : ADDRESS . PORT` to the map
//! `map_port_ipport` of its table `io.systemd.nat` and removes it when it exits cleanly; a killed
//! nspawn (terminate, a crash) leaves it, and the next container with that port would forward
//! to a dead address. [`remove_port_forwards`] removes every element that forwards to a
//! container's address; the drivers call it whenever a container is found down.
//!
//! nspawn's rule leaves out 127.0.0.0/8. [`add_loopback_forwards`] makes the ports reachable
//! there too, in a table of ncsh's own per container (`ncsh-NAME`): a DNAT of 127/8 to the
//! container in the output hook, a SNAT to the host address, and `route_localnet` on the host
//! link (without it the kernel drops a packet from 127.0.0.1 that leaves through another link).
//! [`remove_loopback_forwards`] deletes the table.
//!
//! nft is run with argument lists only; what goes into them is parsed first (ports as numbers,
//! protocols from a fixed list, addresses as addresses).

use std::net::IpAddr;
use std::process::{Command, Stdio};

use crate::container::Conf;
use crate::container::address::parse_address;
use crate::container::network::NETWORK_KEY;
use crate::error::{Error, Result};

const NFT: [&str; 2] = ["/usr/sbin/nft", "/sbin/nft"];
const NSPAWN_TABLE: &str = "io.systemd.nat";
const NSPAWN_MAP: &str = "map_port_ipport";

/// The nft binary, if the host has one (without it nspawn has none of its rules either, or
/// made them with iptables, which removes nothing on its own: then there is nothing of ours).
fn nft_binary() -> Option<&'static str> {
    NFT.into_iter().find(|p| std::path::Path::new(p).exists())
}

/// Run nft with `args`: its stdout, or an error with what it said.
fn nft(args: &[&str]) -> Result<String> {
    let Some(binary) = nft_binary() else {
        return Err(Error::MissingTool {
            tool: "nft".into(),
            package: "nftables",
        });
    };
    let out = Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io("running nft", e))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Usage(format!(
            "nft {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// One forwarded port of HOST_PORT (nspawn's `[PROTO:]HOSTPORT[:CONTAINERPORT]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    pub protocol: &'static str,
    pub host_port: u16,
    pub container_port: u16,
}

/// The forwards of a HOST_PORT value (comma-separated, as NixOS writes it); items nspawn would
/// refuse are left out (nspawn's start reports them).
pub fn parse_forwards(value: &str) -> Vec<Forward> {
    value
        .split(',')
        .filter_map(|item| {
            let item = item.trim();
            let (protocol, rest) = match item.split_once(':') {
                Some(("tcp", rest)) => ("tcp", rest),
                Some(("udp", rest)) => ("udp", rest),
                _ => ("tcp", item),
            };
            let (host, container) = rest.split_once(':').unwrap_or((rest, rest));
            let port = |p: &str| p.parse::<u16>().ok().filter(|n| *n > 0);
            Some(Forward {
                protocol,
                host_port: port(host)?,
                container_port: port(container)?,
            })
        })
        .collect()
}

/// The container's IPv4 and IPv6 local addresses (without prefix lengths).
fn local_addresses(conf: &Conf) -> Vec<IpAddr> {
    ["LOCAL_ADDRESS", "LOCAL_ADDRESS6"]
        .into_iter()
        .filter_map(|key| conf.non_empty(key))
        .filter_map(|value| parse_address(value).ok())
        .map(|net| net.addr())
        .collect()
}

/// The keys (protocol, host port) of nspawn's map elements in `family` that forward to `to`.
fn nspawn_elements(family: &str, to: IpAddr) -> Result<Vec<(String, u16)>> {
    let listed = match nft(&["-j", "list", "map", family, NSPAWN_TABLE, NSPAWN_MAP]) {
        Ok(text) => text,
        // No table or map: nspawn never forwarded a port here.
        Err(_) if !map_exists(family) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(elements_to(&listed, to))
}

fn map_exists(family: &str) -> bool {
    nft(&["list", "map", family, NSPAWN_TABLE, NSPAWN_MAP]).is_ok()
}

/// The keys of the elements of an `nft -j list map` answer whose address is `to`.
fn elements_to(json: &str, to: IpAddr) -> Vec<(String, u16)> {
    let parsed: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    let mut out = Vec::new();
    let items = parsed["nftables"].as_array().cloned().unwrap_or_default();
    for item in items {
        for elem in item["map"]["elem"].as_array().cloned().unwrap_or_default() {
            let key = &elem[0]["concat"];
            let value = &elem[1]["concat"];
            let Some(port) = key[1].as_u64() else {
                continue;
            };
            // A name, or its number where the host has no /etc/protocols.
            let protocol = match (key[0].as_str(), key[0].as_u64()) {
                (Some(name @ ("tcp" | "udp" | "sctp" | "dccp")), _) => name.to_string(),
                (None, Some(number)) if number <= 255 => number.to_string(),
                _ => continue,
            };
            let address = value[0].as_str().and_then(|a| a.parse::<IpAddr>().ok());
            if address == Some(to)
                && let Ok(port) = u16::try_from(port)
            {
                out.push((protocol, port));
            }
        }
    }
    out
}

/// Remove every element of nspawn's port map that forwards to the container's addresses (what a
/// killed nspawn left; nothing when there is none). Call it only while the container is down.
pub fn remove_port_forwards(conf: &Conf) -> Result<()> {
    if nft_binary().is_none() {
        return Ok(());
    }
    for address in local_addresses(conf) {
        let family = if address.is_ipv4() { "ip" } else { "ip6" };
        for (protocol, port) in nspawn_elements(family, address)? {
            let element = format!("{{ {protocol} . {port} }}");
            let deleted = nft(&[
                "delete",
                "element",
                family,
                NSPAWN_TABLE,
                NSPAWN_MAP,
                &element,
            ]);
            // Another ncsh (or nspawn) may have removed it meanwhile: gone is what we want.
            if let Err(e) = deleted
                && nspawn_elements(family, address)?.contains(&(protocol, port))
            {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// The name of container `name`'s own nft table (host-wide, like `ve-NAME`).
pub fn loopback_table(name: &str) -> String {
    format!("ncsh-{name}")
}

/// The nft commands (argument lists) that make the forwarded ports of `conf` reachable at
/// 127.0.0.0/8, for container `name`; empty when it forwards nothing over IPv4 or has no
/// host address to come from.
pub fn loopback_commands(name: &str, conf: &Conf, link: &str) -> Vec<Vec<String>> {
    let forwards = parse_forwards(conf.non_empty("HOST_PORT").unwrap_or_default());
    let address = |key: &str| {
        conf.non_empty(key)
            .and_then(|v| parse_address(v).ok())
            .map(|n| n.addr())
            .filter(IpAddr::is_ipv4)
    };
    let (Some(local), Some(host)) = (address("LOCAL_ADDRESS"), address("HOST_ADDRESS")) else {
        return Vec::new();
    };
    if forwards.is_empty() {
        return Vec::new();
    }
    let table = loopback_table(name);
    let words = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<String>>();
    let mut commands = vec![
        words(&format!("add table ip {table}")),
        // route_localnet also lets what arrives on the link reach the host's 127/8 (a
        // container could talk to the host's localhost-only services): dropped before any NAT,
        // so only the replies of our own forwards, addressed to the host address, come in.
        words(&format!(
            "add chain ip {table} guard {{ type filter hook prerouting priority -300 ; }}"
        )),
        words(&format!(
            "add chain ip {table} output {{ type nat hook output priority -100 ; }}"
        )),
        words(&format!(
            "add chain ip {table} postrouting {{ type nat hook postrouting priority 100 ; }}"
        )),
    ];
    // The guard's two rules, inserted after its chain; the link as one word.
    for (at, end) in [(2, "daddr"), (3, "saddr")] {
        let mut rule = words(&format!("add rule ip {table} guard iifname"));
        rule.push(link.to_string());
        rule.extend(words(&format!("ip {end} 127.0.0.0/8 drop")));
        commands.insert(at, rule);
    }
    for f in forwards {
        commands.push(words(&format!(
            "add rule ip {table} output ip daddr 127.0.0.0/8 {} dport {} dnat to {local}:{}",
            f.protocol, f.host_port, f.container_port
        )));
    }
    commands.push(words(&format!(
        "add rule ip {table} postrouting ip saddr 127.0.0.0/8 ip daddr {local} snat to {host}"
    )));
    commands
}

/// Does `conf` forward ports that [`add_loopback_forwards`] makes reachable at 127.0.0.1?
pub fn wants_loopback(conf: &Conf) -> bool {
    !loopback_commands("x", conf, "x").is_empty()
}

/// Make the forwarded ports of container `name` reachable from the host's loopback (see the
/// module doc), once its host link exists.
pub fn add_loopback_forwards(name: &str, conf: &Conf) -> Result<()> {
    if !wants_loopback(conf) || nft_binary().is_none() {
        return Ok(());
    }
    // The link the packets leave by: the veth, or the bridge of an ncsh network (a bridge of
    // the administrator's is left as it is: no forwards from the loopback there).
    let link = match conf.non_empty("HOST_BRIDGE") {
        None => super::net::link_kernel_name(name)?,
        Some(bridge) if conf.non_empty(NETWORK_KEY) == Some(bridge) => bridge.to_string(),
        Some(_) => return Ok(()),
    };
    // The link name goes into an nft rule: only a kernel interface name (checked, not quoted).
    if link.is_empty()
        || link.len() > 15
        || !link
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(Error::Usage(format!(
            "the link ‘{link}’ of container {name} has a name ncsh does not put into nft rules"
        )));
    }
    let commands = loopback_commands(name, conf, &link);
    let sysctl = std::path::Path::new("/proc/sys/net/ipv4/conf")
        .join(&link)
        .join("route_localnet");
    std::fs::write(&sysctl, "1")
        .map_err(|e| Error::io(format!("writing {}", sysctl.display()), e))?;
    remove_loopback_forwards(name)?;
    for argv in commands {
        let args: Vec<&str> = argv.iter().map(String::as_str).collect();
        nft(&args)?;
    }
    Ok(())
}

/// Delete container `name`'s own table (absent is fine).
pub fn remove_loopback_forwards(name: &str) -> Result<()> {
    if nft_binary().is_none() {
        return Ok(());
    }
    let table = loopback_table(name);
    if nft(&["list", "table", "ip", &table]).is_err() {
        return Ok(());
    }
    match nft(&["delete", "table", "ip", &table]) {
        Err(e) if nft(&["list", "table", "ip", &table]).is_ok() => Err(e),
        _ => Ok(()),
    }
}

/// Everything of a stopped container in nftables: nspawn's elements and ncsh's table.
pub fn remove_forwards(name: &str, conf: &Conf) -> Result<()> {
    remove_loopback_forwards(name)?;
    remove_port_forwards(conf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_items_as_nspawn_reads_them() {
        let f = |protocol, host_port, container_port| Forward {
            protocol,
            host_port,
            container_port,
        };
        assert_eq!(
            parse_forwards("tcp:8080:80,udp:53, 9000,bad,tcp:0:1,udp:1:70000"),
            [f("tcp", 8080, 80), f("udp", 53, 53), f("tcp", 9000, 9000)]
        );
        assert_eq!(parse_forwards(""), []);
    }

    #[test]
    fn elements_are_matched_by_address() {
        let json = r#"{"nftables": [{"metainfo": {}}, {"map": {"family": "ip", "name": "map_port_ipport",
            "elem": [[{"concat": ["tcp", 18080]}, {"concat": ["10.233.199.2", 80]}],
                     [{"concat": ["udp", 53]}, {"concat": ["10.233.199.2", 53]}],
                     [{"concat": ["tcp", 8080]}, {"concat": ["10.233.1.2", 80]}],
                     [{"concat": [6, 8081]}, {"concat": ["10.233.199.2", 81]}],
                     [{"concat": [600, 8082]}, {"concat": ["10.233.199.2", 81]}],
                     [{"concat": ["tcp; flush ruleset", 1]}, {"concat": ["10.233.199.2", 80]}]]}}]}"#;
        assert_eq!(
            elements_to(json, "10.233.199.2".parse().unwrap()),
            [
                ("tcp".to_string(), 18080),
                ("udp".to_string(), 53),
                ("6".to_string(), 8081)
            ]
        );
        assert_eq!(elements_to("not json", "10.233.1.2".parse().unwrap()), []);
    }

    #[test]
    fn loopback_rules_need_a_port_and_both_addresses() {
        let conf = |text: &str| Conf::parse(text, std::path::Path::new("t")).unwrap();
        let c =
            conf("HOST_ADDRESS=10.233.5.1\nLOCAL_ADDRESS=10.233.5.2/24\nHOST_PORT=tcp:8080:80\n");
        let commands: Vec<String> = loopback_commands("web", &c, "ve-web")
            .into_iter()
            .map(|a| a.join(" "))
            .collect();
        assert!(commands.contains(
            &"add rule ip ncsh-web output ip daddr 127.0.0.0/8 tcp dport 8080 dnat to 10.233.5.2:80"
                .to_string()
        ));
        assert!(commands.contains(
            &"add rule ip ncsh-web postrouting ip saddr 127.0.0.0/8 ip daddr 10.233.5.2 snat to 10.233.5.1"
                .to_string()
        ));
        assert!(
            loopback_commands(
                "web",
                &conf("HOST_ADDRESS=10.233.5.1\nLOCAL_ADDRESS=10.233.5.2\n"),
                "ve-web"
            )
            .is_empty()
        );
        assert!(loopback_commands("web", &conf("HOST_PORT=80\n"), "ve-web").is_empty());
        assert!(commands.contains(
            &"add rule ip ncsh-web guard iifname ve-web ip daddr 127.0.0.0/8 drop".to_string()
        ));
    }
}
