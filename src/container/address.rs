//! Address allocation and validation for the container's veth pair.
//!
//! Like nixos-container, a container gets the first free pair 10.233.N.1 (host side) and
//! 10.233.N.2 (container side), N = 1…254. Unlike it, every address a conf mentions counts as used,
//! whatever its form (quoted, indented, with a prefix length, IPv4 or IPv6), and a prefix shorter
//! than the host length reserves its whole network.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

use super::conf::Conf;
use crate::error::{Error, Result};

/// The conf keys that hold addresses.
pub const ADDRESS_KEYS: [&str; 4] = [
    "HOST_ADDRESS",
    "LOCAL_ADDRESS",
    "HOST_ADDRESS6",
    "LOCAL_ADDRESS6",
];

/// The addresses taken by existing containers, with the owner of each.
#[derive(Debug, Default)]
pub struct UsedAddresses {
    exact: BTreeMap<IpAddr, String>,
    networks: Vec<(IpNet, String)>,
}

impl UsedAddresses {
    /// Collect from `(container name, conf)` pairs.
    pub fn from_confs<'a>(confs: impl IntoIterator<Item = (&'a str, &'a Conf)>) -> Self {
        let mut used = UsedAddresses::default();
        for (owner, conf) in confs {
            for key in ADDRESS_KEYS {
                if let Some(value) = conf.non_empty(key) {
                    used.add(value, owner);
                }
            }
        }
        used
    }

    fn add(&mut self, value: &str, owner: &str) {
        let Ok(parsed) = parse_address(value) else {
            return;
        };
        self.exact.insert(parsed.addr(), owner.to_string());
        if parsed.prefix_len() < parsed.max_prefix_len() {
            self.networks.push((parsed.trunc(), owner.to_string()));
        }
    }

    /// Who uses `addr` exactly, if anyone.
    pub fn owner_of(&self, addr: IpAddr) -> Option<&str> {
        self.exact.get(&addr).map(String::as_str)
    }

    fn is_taken(&self, addr: IpAddr) -> bool {
        self.exact.contains_key(&addr) || self.networks.iter().any(|(net, _)| net.contains(&addr))
    }

    /// Count what the host holds or routes (see [`host_claims`]) as taken.
    pub fn add_host_claims(&mut self) {
        for net in host_claims() {
            if net.prefix_len() == net.max_prefix_len() {
                self.exact.insert(net.addr(), "the host".into());
            } else {
                self.networks.push((net, "the host".into()));
            }
        }
    }

    /// The first free 10.233.N.1 / 10.233.N.2 pair.
    pub fn allocate(&self) -> Result<(Ipv4Addr, Ipv4Addr)> {
        (1..=254u8)
            .map(|n| (Ipv4Addr::new(10, 233, n, 1), Ipv4Addr::new(10, 233, n, 2)))
            .find(|(h, l)| !self.is_taken(IpAddr::V4(*h)) && !self.is_taken(IpAddr::V4(*l)))
            .ok_or(Error::OutOfAddresses)
    }
}

/// The host's own IPv4 addresses and the networks it routes somewhere (not its default route,
/// nor `unreachable`/`prohibit` routes, which only keep traffic in): addresses there are in use.
/// None in unit tests, whose creates must not depend on what runs on the machine.
pub fn host_claims() -> Vec<IpNet> {
    if cfg!(test) {
        return Vec::new();
    }
    let mut claims: Vec<IpNet> = interface_addresses()
        .into_iter()
        .map(|ip| IpNet::from(IpAddr::V4(ip)))
        .collect();
    claims.extend(routed_networks(
        &std::fs::read_to_string("/proc/net/route").unwrap_or_default(),
    ));
    claims
}

/// The IPv4 addresses of the host's interfaces (getifaddrs).
fn interface_addresses() -> Vec<Ipv4Addr> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list`, which is walked read-only and freed once below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let entry = unsafe { &*cur };
        let addr = entry.ifa_addr;
        // SAFETY: an AF_INET ifa_addr points to a sockaddr_in.
        if !addr.is_null() && i32::from(unsafe { (*addr).sa_family }) == libc::AF_INET {
            let sin = unsafe { &*(addr as *const libc::sockaddr_in) };
            out.push(Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()));
        }
        cur = entry.ifa_next;
    }
    // SAFETY: the list from getifaddrs above, freed once.
    unsafe { libc::freeifaddrs(list) };
    out
}

/// The routed networks of `/proc/net/route` (network-order words printed as native `u32`s in
/// hex), default and reject routes left out.
fn routed_networks(table: &str) -> Vec<IpNet> {
    const RTF_REJECT: u32 = 0x0200;
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let hex = |i: usize| u32::from_str_radix(f.get(i)?, 16).ok();
            let (dest, flags, mask) = (hex(1)?, hex(3)?, hex(7)?);
            if mask == 0 || flags & RTF_REJECT != 0 {
                return None;
            }
            let dest = Ipv4Addr::from(dest.to_ne_bytes());
            let len = u32::from_be_bytes(mask.to_ne_bytes()).leading_ones() as u8;
            ipnet::Ipv4Net::new(dest, len).ok().map(IpNet::V4)
        })
        .collect()
}

/// Parse `1.2.3.4`, `1.2.3.4/24`, `fc00::2` or `fc00::2/7`; a bare address gets the host length.
pub fn parse_address(value: &str) -> std::result::Result<IpNet, String> {
    let value = value.trim();
    if let Ok(net) = value.parse::<IpNet>() {
        return Ok(net);
    }
    match value.parse::<IpAddr>() {
        Ok(addr) => Ok(IpNet::from(addr)),
        Err(_) => Err("expected an IPv4 or IPv6 address, optionally with a /prefix".to_string()),
    }
}

/// Validate an explicit `--host-address`/`--local-address` pair against each other and `used`.
pub fn check_explicit(host: &str, local: &str, used: &UsedAddresses) -> Result<()> {
    let parse = |flag: &'static str, value: &str| {
        parse_address(value).map_err(|reason| Error::InvalidAddress {
            flag,
            value: value.to_string(),
            reason,
        })
    };
    let h = parse("--host-address", host)?;
    let l = parse("--local-address", local)?;
    let invalid = |reason: &str| Error::InvalidAddress {
        flag: "--local-address",
        value: local.to_string(),
        reason: reason.to_string(),
    };
    if h.addr().is_ipv4() != l.addr().is_ipv4() {
        return Err(invalid(
            "the host and local addresses must be of the same family",
        ));
    }
    if h.addr() == l.addr() {
        return Err(invalid(
            "the local address must differ from the host address",
        ));
    }
    for net in [h, l] {
        let addr = net.addr();
        if addr.is_unspecified() || addr.is_multicast() || addr.is_loopback() {
            return Err(Error::InvalidAddress {
                flag: if net == h {
                    "--host-address"
                } else {
                    "--local-address"
                },
                value: net.to_string(),
                reason: "not a unicast address a container can use".to_string(),
            });
        }
        if let Some(owner) = used.owner_of(addr) {
            return Err(Error::AddressInUse {
                address: addr.to_string(),
                owner: owner.to_string(),
            });
        }
    }
    Ok(())
}

/// The bare address (no prefix) of a conf value, as `show-ip` prints it.
pub fn bare(value: &str) -> Option<IpAddr> {
    parse_address(value).ok().map(|n| n.addr())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn conf(text: &str) -> Conf {
        Conf::parse(text, Path::new("t")).unwrap()
    }

    #[test]
    fn routes_are_read_from_proc_net_route() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                     *\t0000E90A\t00000000\t0201\t0\t0\t0\t0000FFFF\t0\t0\t0\n\
                     ve-x\t0201E90A\t00000000\t0005\t0\t0\t0\tFFFFFFFF\t0\t0\t0\n\
                     eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let nets: Vec<String> = routed_networks(table)
            .iter()
            .map(|n| n.to_string())
            .collect();
        if cfg!(target_endian = "little") {
            assert_eq!(nets, ["10.233.1.2/32", "192.0.2.0/24"]);
        }
    }

    #[test]
    fn first_pair_when_nothing_is_used() {
        let used = UsedAddresses::default();
        assert_eq!(
            used.allocate().unwrap(),
            ("10.233.1.1".parse().unwrap(), "10.233.1.2".parse().unwrap())
        );
    }

    #[test]
    fn skips_pairs_in_any_form() {
        let a = conf("HOST_ADDRESS=10.233.1.1\nLOCAL_ADDRESS=10.233.1.2\n");
        let b = conf("  LOCAL_ADDRESS=\"10.233.2.2\"\n");
        let c = conf("HOST_ADDRESS=10.233.3.1/24\n");
        let d = conf("LOCAL_ADDRESS=10.233.4.0/23\n"); // covers 4 and 5
        let used = UsedAddresses::from_confs([("a", &a), ("b", &b), ("c", &c), ("d", &d)]);
        assert_eq!(
            used.allocate().unwrap().0,
            "10.233.6.1".parse::<Ipv4Addr>().unwrap()
        );
    }

    #[test]
    fn out_of_addresses() {
        let confs: Vec<(String, Conf)> = (1..=254)
            .map(|n| {
                (
                    format!("c{n}"),
                    conf(&format!("HOST_ADDRESS=10.233.{n}.1\n")),
                )
            })
            .collect();
        let used = UsedAddresses::from_confs(confs.iter().map(|(n, c)| (n.as_str(), c)));
        assert_eq!(used.allocate().unwrap_err().kind(), "OutOfAddresses");
    }

    #[test]
    fn explicit_addresses_are_validated() {
        let a = conf("HOST_ADDRESS=10.235.1.1\nLOCAL_ADDRESS=10.235.1.2/24\n");
        let used = UsedAddresses::from_confs([("a", &a)]);
        assert!(check_explicit("10.235.2.1", "10.235.2.2", &used).is_ok());
        assert!(check_explicit("10.235.2.1/24", "10.235.2.2/24", &used).is_ok());
        assert!(check_explicit("fc00::1", "fc00::2", &used).is_ok());
        for (h, l, kind) in [
            ("10.235.1.1", "10.235.9.2", "AddressInUse"),
            ("10.235.9.1", "10.235.1.2", "AddressInUse"),
            ("10.235.9.1", "nope", "InvalidAddress"),
            ("10.235.9.1", "10.235.9.1", "InvalidAddress"),
            ("10.235.9.1", "fc00::2", "InvalidAddress"),
            ("10.235.9.1/33", "10.235.9.2", "InvalidAddress"),
            ("127.0.0.1", "10.235.9.2", "InvalidAddress"),
            ("10.235.9.1;rm", "10.235.9.2", "InvalidAddress"),
        ] {
            assert_eq!(
                check_explicit(h, l, &used).unwrap_err().kind(),
                kind,
                "{h} {l}"
            );
        }
    }

    #[test]
    fn bare_strips_the_prefix() {
        assert_eq!(bare("10.233.1.2/24"), Some("10.233.1.2".parse().unwrap()));
        assert_eq!(bare("fc00::2/7"), Some("fc00::2".parse().unwrap()));
        assert_eq!(bare("x"), None);
    }
}
