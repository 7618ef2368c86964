//! Address allocation and validation for the container's veth pair.
//!
//! Like nixos-container, a container gets the first free pair 10.233.N.1 (host side) and
//! 10.233.N.2 (container side), N = 1…254. Unlike it, every address a conf mentions counts as used,
//! whatever its form (quoted, indented, with a prefix length, IPv4 or IPv6), and a prefix shorter
//! than the host length reserves its whole network.
//!
//! One use is shared, as in nixos-container: several containers may have the same host address
//! (the common NixOS pattern of one `hostAddress` and a `localAddress` each), as long as no
//! container has it as its local address. Containers that share a host address share its
//! network too: their local addresses may lie in it.
//!
//! When ncsh picks the IPv4 pair and the host has IPv6 ([`host_has_ipv6`]), it picks an IPv6
//! pair too, from this host's unique-local /64 ([`Ipv6Prefix`]): `P::N:1` and `P::N:2`, N written
//! with its decimal digits, the N of the IPv4 pair when that is free (10.233.12.1 goes with
//! `P::12:1`), else the first free N. NixOS has no
//! way to turn this off (nixos-container allocates no IPv6 at all); give the addresses yourself
//! and ncsh allocates neither.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
    /// The host addresses (IPv4 and IPv6) of each container (for sharing, see the module's doc).
    host_of: Vec<(String, IpAddr)>,
    /// The addresses some container has as its local address (never shared).
    local: BTreeSet<IpAddr>,
}

impl UsedAddresses {
    /// Collect from `(container name, conf)` pairs.
    pub fn from_confs<'a>(confs: impl IntoIterator<Item = (&'a str, &'a Conf)>) -> Self {
        let mut used = UsedAddresses::default();
        for (owner, conf) in confs {
            for key in ADDRESS_KEYS {
                if let Some(value) = conf.non_empty(key) {
                    used.add(value, owner);
                    if let Ok(parsed) = parse_address(value) {
                        if key.starts_with("HOST_") {
                            used.host_of.push((owner.to_string(), parsed.addr()));
                        } else {
                            used.local.insert(parsed.addr());
                        }
                    }
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

    /// Does any address or network in use lie in `net`, or `net` in a network in use?
    pub fn overlaps(&self, net: IpNet) -> bool {
        self.exact.keys().any(|a| net.contains(a))
            || self
                .networks
                .iter()
                .any(|(n, _)| n.contains(&net.network()) || net.contains(&n.network()))
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

    /// The first of `candidates` that no used address lies in and no used network overlaps:
    /// a network of its own for a test's bridge (`ncsh test`).
    pub fn free_network(&self, candidates: &[ipnet::Ipv4Net]) -> Option<ipnet::Ipv4Net> {
        candidates.iter().copied().find(|net| {
            let wide = IpNet::V4(*net);
            !self.exact.keys().any(|a| wide.contains(a))
                && !self
                    .networks
                    .iter()
                    .any(|(n, _)| n.contains(&wide.network()) || wide.contains(&n.network()))
        })
    }

    /// The first free 10.233.N.1 / 10.233.N.2 pair.
    pub fn allocate(&self) -> Result<(Ipv4Addr, Ipv4Addr)> {
        (1..=254u8)
            .map(|n| (Ipv4Addr::new(10, 233, n, 1), Ipv4Addr::new(10, 233, n, 2)))
            .find(|(h, l)| !self.is_taken(IpAddr::V4(*h)) && !self.is_taken(IpAddr::V4(*l)))
            .ok_or(Error::OutOfAddresses)
    }

    /// The `P::N:1` / `P::N:2` pair of `prefix` with the N of the IPv4 pair `with` when it is
    /// free, else the first free one (see the module's doc).
    pub fn allocate6(&self, prefix: Ipv6Prefix, with: Ipv4Addr) -> Result<(Ipv6Addr, Ipv6Addr)> {
        std::iter::once(with.octets()[2])
            .chain(1..=254u8)
            .filter(|n| (1..=254).contains(n))
            .map(|n| (prefix.address(n, 1), prefix.address(n, 2)))
            .find(|(h, l)| !self.is_taken(IpAddr::V6(*h)) && !self.is_taken(IpAddr::V6(*l)))
            .ok_or(Error::OutOfAddresses)
    }
}

impl std::fmt::Display for Ipv6Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [a, b, c] = self.0;
        write!(f, "{a:x}:{b:x}:{c:x}::/64")
    }
}

/// The unique-local /64 (RFC 4193) automatic IPv6 pairs come from: `fd` and a 40-bit global ID,
/// the first five bytes of the SHA-256 of the host's `/etc/machine-id` (so one fixed /64 per
/// host, different on another host), subnet 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Prefix([u16; 3]);

impl Ipv6Prefix {
    /// The prefix of the host whose machine ID is `machine_id` (surrounding blanks ignored).
    pub fn from_machine_id(machine_id: &str) -> Ipv6Prefix {
        use sha2::Digest;
        let id = sha2::Sha256::digest(machine_id.trim().as_bytes());
        let word = |a: u8, b: u8| u16::from_be_bytes([a, b]);
        Ipv6Prefix([word(0xfd, id[0]), word(id[1], id[2]), word(id[3], id[4])])
    }

    /// This host's prefix.
    pub fn of_this_host() -> Ipv6Prefix {
        Ipv6Prefix::from_machine_id(&std::fs::read_to_string("/etc/machine-id").unwrap_or_default())
    }

    /// `P::N:END`, N written with its decimal digits (12 is `…::12:END`).
    fn address(self, n: u8, end: u16) -> Ipv6Addr {
        let digits = n
            .to_string()
            .chars()
            .fold(0u16, |acc, d| acc * 16 + d.to_digit(10).unwrap_or(0) as u16);
        let [a, b, c] = self.0;
        Ipv6Addr::new(a, b, c, 0, 0, 0, digits, end)
    }
}

/// Does this host have IPv6: an address in `/proc/net/if_inet6` and
/// `net.ipv6.conf.all.disable_ipv6 = 0`? Never in unit tests, whose creates must not depend on
/// the machine.
pub fn host_has_ipv6() -> bool {
    if cfg!(test) {
        return false;
    }
    let listed = std::fs::read_to_string("/proc/net/if_inet6")
        .is_ok_and(|t| t.lines().any(|l| !l.trim().is_empty()));
    let enabled = std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/disable_ipv6")
        .is_ok_and(|t| t.trim() == "0");
    listed && enabled
}

/// The host's own addresses and the networks it routes somewhere (not its default route, nor
/// `unreachable`/`prohibit` routes, which only keep traffic in), IPv4 and IPv6: addresses there
/// are in use. None in unit tests, whose creates must not depend on what runs on the machine.
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
    claims.extend(
        host_own_addresses()
            .into_iter()
            .filter(IpAddr::is_ipv6)
            .map(IpNet::from),
    );
    claims.extend(routed_networks6(
        &std::fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default(),
    ));
    claims
}

/// The routed networks of `/proc/net/ipv6_route` (destination and its length in hex, then the
/// source, next hop, metric, counters and flags), default and reject routes left out.
fn routed_networks6(table: &str) -> Vec<IpNet> {
    const RTF_REJECT: u32 = 0x0200;
    table
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let dest = u128::from_str_radix(f.first()?, 16).ok()?;
            let len = u8::from_str_radix(f.get(1)?, 16).ok()?;
            let flags = u32::from_str_radix(f.get(8)?, 16).ok()?;
            if len == 0 || flags & RTF_REJECT != 0 {
                return None;
            }
            ipnet::Ipv6Net::new(Ipv6Addr::from(dest), len)
                .ok()
                .map(IpNet::V6)
        })
        .collect()
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

/// Validate an explicit `--host-address`/`--local-address` pair against each other, `used` and
/// the addresses this host holds.
pub fn check_explicit(host: &str, local: &str, used: &UsedAddresses) -> Result<()> {
    check_explicit_with(host, local, used, &host_own_addresses())
}

/// [`check_explicit`] with the host's own addresses given.
pub fn check_explicit_with(
    host: &str,
    local: &str,
    used: &UsedAddresses,
    own: &[IpAddr],
) -> Result<()> {
    check_explicit_pair(
        ("--host-address", "--local-address"),
        host,
        local,
        used,
        own,
    )
}

/// [`check_explicit_with`] for the pair of options `flags` (host, local) names.
pub fn check_explicit_pair(
    flags: (&'static str, &'static str),
    host: &str,
    local: &str,
    used: &UsedAddresses,
    own: &[IpAddr],
) -> Result<()> {
    let parse = |flag: &'static str, value: &str| {
        parse_address(value).map_err(|reason| Error::InvalidAddress {
            flag,
            value: value.to_string(),
            reason,
        })
    };
    let h = parse(flags.0, host)?;
    let l = parse(flags.1, local)?;
    let invalid = |reason: &str| Error::InvalidAddress {
        flag: flags.1,
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
    // The containers whose host address this one shares, if it may (no one has it as local).
    let sharing: BTreeSet<&str> = if used.local.contains(&h.addr()) {
        BTreeSet::new()
    } else {
        used.host_of
            .iter()
            .filter(|(_, a)| *a == h.addr())
            .map(|(owner, _)| owner.as_str())
            .collect()
    };
    for (flag, net, raw) in [(flags.0, h, host), (flags.1, l, local)] {
        let refuse = |reason: String| Error::InvalidAddress {
            flag,
            value: raw.trim().to_string(),
            reason,
        };
        let addr = net.addr();
        if addr.is_unspecified() || addr.is_multicast() || addr.is_loopback() {
            return Err(refuse(
                "not a unicast address a container can use".to_string(),
            ));
        }
        if let Some(reason) = unusable(net) {
            return Err(refuse(reason));
        }
        let shared = flag == flags.0 && !sharing.is_empty();
        if let Some(owner) = used.owner_of(addr).filter(|_| !shared) {
            return Err(Error::AddressInUse {
                address: addr.to_string(),
                owner: owner.to_string(),
            });
        }
        if let Some((other, owner)) = used
            .networks
            .iter()
            .find(|(n, owner)| n.contains(&addr) && !sharing.contains(owner.as_str()))
        {
            return Err(refuse(format!(
                "it lies inside {other}, the network of container ‘{owner}’: \
                 choose an address outside it"
            )));
        }
        if net.prefix_len() < net.max_prefix_len() {
            let inside = used.exact.iter().find(|(a, owner)| {
                net.contains(*a)
                    && **a != h.addr()
                    && **a != l.addr()
                    && !sharing.contains(owner.as_str())
            });
            if let Some((a, owner)) = inside {
                return Err(refuse(format!(
                    "its network {} contains {a}, an address of container ‘{owner}’: \
                     use a longer prefix or another network",
                    net.trunc()
                )));
            }
        }
        // A running container's host side holds the address it shares.
        if own.contains(&addr) && !shared {
            return Err(refuse(
                "this host already holds that address: choose one no interface here has \
                 (see `ip address`)"
                    .to_string(),
            ));
        }
    }
    Ok(())
}

/// Why `net` cannot name one end of a veth pair, if it cannot: limited broadcast, a network
/// or broadcast address, or a prefix so short that it covers a large part of the address space.
fn unusable(net: IpNet) -> Option<String> {
    let addr = net.addr();
    let (min_prefix, example) = match addr {
        IpAddr::V4(_) => (8, "/24"),
        IpAddr::V6(_) => (16, "/64"),
    };
    if let IpAddr::V4(v4) = addr
        && v4.is_broadcast()
    {
        return Some(
            "the limited broadcast address reaches every host: choose a unicast address".into(),
        );
    }
    if net.prefix_len() < min_prefix {
        return Some(format!(
            "a /{} network covers too much of the address space (the container would claim it \
             all): use a prefix of at least /{min_prefix}, such as {example}",
            net.prefix_len()
        ));
    }
    let subnet = net.max_prefix_len() - net.prefix_len() >= 2;
    if subnet && addr == net.network() {
        return Some(format!(
            "{addr} is the network address of {}, not a host in it: use a host address of it",
            net.trunc()
        ));
    }
    if subnet && addr.is_ipv4() && addr == net.broadcast() {
        return Some(format!(
            "{addr} is the broadcast address of {}, not a host in it: use a host address of it",
            net.trunc()
        ));
    }
    None
}

/// The addresses of this host's interfaces (empty if they cannot be read).
pub fn host_own_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr of the family it names.
            let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
            if family == libc::AF_INET {
                // SAFETY: an AF_INET address is a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    sin.sin_addr.s_addr,
                ))));
            } else if family == libc::AF_INET6 {
                // SAFETY: an AF_INET6 address is a sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                out.push(IpAddr::V6(std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out
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

    /// The checks without this machine's own addresses.
    fn check(h: &str, l: &str, used: &UsedAddresses) -> Result<()> {
        check_explicit_with(h, l, used, &[])
    }

    /// The reason a pair is refused.
    fn reason(h: &str, l: &str, used: &UsedAddresses, own: &[IpAddr]) -> String {
        match check_explicit_with(h, l, used, own).unwrap_err() {
            Error::InvalidAddress { reason, .. } => reason,
            other => panic!("{h} {l}: {other:?}"),
        }
    }

    #[test]
    fn an_address_inside_another_containers_network_is_refused() {
        let a = conf("HOST_ADDRESS=10.235.1.1/24\nLOCAL_ADDRESS=10.235.1.2/24\n");
        let used = UsedAddresses::from_confs([("a", &a)]);
        let r = reason("10.235.1.7", "10.235.9.2", &used, &[]);
        assert!(
            r.contains("inside 10.235.1.0/24, the network of container ‘a’"),
            "{r}"
        );
        let r = reason("10.235.9.1", "10.235.1.8/24", &used, &[]);
        assert!(r.contains("the network of container ‘a’"), "{r}");
        // A new network may not swallow another container's address either.
        let b = conf("HOST_ADDRESS=10.235.3.1\nLOCAL_ADDRESS=10.235.3.2\n");
        let used = UsedAddresses::from_confs([("b", &b)]);
        let r = reason("10.235.2.1/16", "10.235.2.2/16", &used, &[]);
        assert!(
            r.contains("contains 10.235.3.1, an address of container ‘b’"),
            "{r}"
        );
        assert!(check("10.235.2.1/24", "10.235.2.2/24", &used).is_ok());
    }

    #[test]
    fn a_host_address_may_be_shared_but_not_a_local_one() {
        let a = conf("HOST_ADDRESS=10.235.30.1\nLOCAL_ADDRESS=10.235.30.2\n");
        let b = conf("HOST_ADDRESS=10.235.30.1\nLOCAL_ADDRESS=10.235.30.3\n");
        let used = UsedAddresses::from_confs([("a", &a), ("b", &b)]);
        assert!(check("10.235.30.1", "10.235.30.4", &used).is_ok());
        // While a or b runs, its host side holds the shared address.
        let own: Vec<IpAddr> = vec!["10.235.30.1".parse().unwrap()];
        assert!(check_explicit_with("10.235.30.1", "10.235.30.4", &used, &own).is_ok());
        // A local address is never shared, nor a host address someone has as local.
        for (h, l) in [
            ("10.235.30.1", "10.235.30.2"),
            ("10.235.30.1", "10.235.30.1"),
            ("10.235.30.2", "10.235.30.9"),
            ("10.235.31.1", "10.235.30.1"),
        ] {
            assert!(check(h, l, &used).is_err(), "{h} {l}");
        }
        // A shared host address with a prefix shares its network: the locals lie in it.
        let c = conf("HOST_ADDRESS=10.235.32.1/24\nLOCAL_ADDRESS=10.235.32.2/24\n");
        let used = UsedAddresses::from_confs([("c", &c)]);
        assert!(check("10.235.32.1/24", "10.235.32.3/24", &used).is_ok());
        assert!(check("10.235.32.1", "10.235.32.3", &used).is_ok());
        // Not sharing it exactly, the network is still another container's.
        let r = reason("10.235.32.5/24", "10.235.32.6/24", &used, &[]);
        assert!(r.contains("the network of container ‘c’"), "{r}");
        // A host address that some container has as its local one is not shared.
        let d = conf("HOST_ADDRESS=10.235.33.2\nLOCAL_ADDRESS=10.235.33.1\n");
        let e = conf("HOST_ADDRESS=10.235.33.1\nLOCAL_ADDRESS=10.235.33.3\n");
        let used = UsedAddresses::from_confs([("d", &d), ("e", &e)]);
        assert!(check("10.235.33.1", "10.235.33.4", &used).is_err());
    }

    #[test]
    fn very_short_prefixes_are_refused() {
        let used = UsedAddresses::default();
        for (h, l) in [
            ("10.235.9.1/0", "10.235.9.2"),
            ("10.235.9.1", "10.235.9.2/0"),
            ("10.235.9.1/7", "10.235.9.2/7"),
            ("fc00::1/0", "fc00::2"),
            ("fc00::1/15", "fc00::2/15"),
        ] {
            let r = reason(h, l, &used, &[]);
            assert!(
                r.contains("covers too much") && r.contains("at least /"),
                "{h} {l}: {r}"
            );
        }
        assert!(check("10.235.9.1/8", "10.235.9.2/8", &used).is_ok());
        assert!(check("fc00::1/64", "fc00::2/64", &used).is_ok());
    }

    #[test]
    fn network_and_broadcast_addresses_are_refused() {
        let used = UsedAddresses::default();
        let r = reason("10.235.9.0/24", "10.235.9.2/24", &used, &[]);
        assert!(
            r.contains("10.235.9.0 is the network address of 10.235.9.0/24"),
            "{r}"
        );
        let r = reason("10.235.9.1/24", "10.235.9.255/24", &used, &[]);
        assert!(
            r.contains("10.235.9.255 is the broadcast address of 10.235.9.0/24"),
            "{r}"
        );
        let r = reason("10.235.9.1", "255.255.255.255", &used, &[]);
        assert!(r.contains("limited broadcast"), "{r}");
        let r = reason("fc00::/64", "fc00::2/64", &used, &[]);
        assert!(r.contains("network address"), "{r}");
        // Without a prefix, or in a /31, there is no network or broadcast address.
        assert!(check("10.235.9.0", "10.235.9.255", &used).is_ok());
        assert!(check("10.235.9.0/31", "10.235.9.1/31", &used).is_ok());
    }

    #[test]
    fn the_hosts_own_address_is_refused() {
        let used = UsedAddresses::default();
        let own: Vec<IpAddr> = vec!["192.168.7.5".parse().unwrap()];
        let r = reason("192.168.7.5", "10.235.9.2", &used, &own);
        assert!(r.contains("this host already holds that address"), "{r}");
        let r = reason("10.235.9.1", "192.168.7.5/24", &used, &own);
        assert!(r.contains("this host already holds"), "{r}");
        assert!(check("192.168.7.6", "192.168.7.7", &used).is_ok());
        // The real list holds at least the loopback address.
        assert!(host_own_addresses().iter().any(IpAddr::is_loopback));
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
    fn a_free_network_has_no_used_address_and_overlaps_no_used_network() {
        let nets: Vec<ipnet::Ipv4Net> = ["10.233.1.0/24", "10.233.2.0/24", "10.233.3.0/24"]
            .iter()
            .map(|n| n.parse().unwrap())
            .collect();
        let used = UsedAddresses::from_confs([
            (
                "a",
                &conf("HOST_ADDRESS=10.233.1.1\nLOCAL_ADDRESS=10.233.1.2\n"),
            ),
            (
                "b",
                &conf("HOST_ADDRESS=10.233.0.1\nLOCAL_ADDRESS=10.233.2.9/24\n"),
            ),
        ]);
        assert_eq!(used.free_network(&nets), Some(nets[2]));
        assert_eq!(used.free_network(&nets[..2]), None);
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
        assert!(check("10.235.2.1", "10.235.2.2", &used).is_ok());
        assert!(check("10.235.2.1/24", "10.235.2.2/24", &used).is_ok());
        assert!(check("fc00::1", "fc00::2", &used).is_ok());
        for (h, l, kind) in [
            ("10.235.9.1", "10.235.1.2", "AddressInUse"),
            ("10.235.9.1", "10.235.1.1", "AddressInUse"),
            ("10.235.1.2", "10.235.9.2", "AddressInUse"),
            ("10.235.9.1", "nope", "InvalidAddress"),
            ("10.235.9.1", "10.235.9.1", "InvalidAddress"),
            ("10.235.9.1", "fc00::2", "InvalidAddress"),
            ("10.235.9.1/33", "10.235.9.2", "InvalidAddress"),
            ("127.0.0.1", "10.235.9.2", "InvalidAddress"),
            ("10.235.9.1;rm", "10.235.9.2", "InvalidAddress"),
        ] {
            assert_eq!(check(h, l, &used).unwrap_err().kind(), kind, "{h} {l}");
        }
    }

    #[test]
    fn ipv6_pairs_come_from_the_hosts_prefix_first_free_first() {
        let prefix = Ipv6Prefix::from_machine_id("3d1219c7c4c5404aaa1f6d2a48adfda4\n");
        assert_eq!(
            prefix,
            Ipv6Prefix::from_machine_id("3d1219c7c4c5404aaa1f6d2a48adfda4")
        );
        assert_ne!(prefix, Ipv6Prefix::from_machine_id("another"));
        let net = ipnet::Ipv6Net::new(prefix.address(1, 1), 64)
            .unwrap()
            .trunc();
        assert_eq!(net.addr().segments()[0] >> 8, 0xfd);
        let first: Ipv4Addr = "10.233.1.1".parse().unwrap();
        let (h, l) = UsedAddresses::default().allocate6(prefix, first).unwrap();
        assert_eq!((h, l), (prefix.address(1, 1), prefix.address(1, 2)));
        assert_eq!(h.segments()[6..8], [1, 1]);
        assert!(net.contains(&h) && net.contains(&l));
        // Taken in any form: a local address, a host address with a prefix, a route of the host.
        let a = conf(&format!("HOST_ADDRESS6={h}\nLOCAL_ADDRESS6={l}\n"));
        let b = conf(&format!("LOCAL_ADDRESS6={}/112\n", prefix.address(2, 9)));
        let mut used = UsedAddresses::from_confs([("a", &a), ("b", &b)]);
        used.networks.push((
            IpNet::V6(ipnet::Ipv6Net::new(prefix.address(3, 2), 128).unwrap()),
            "the host".into(),
        ));
        let (h, l) = used.allocate6(prefix, first).unwrap();
        assert_eq!((h, l), (prefix.address(4, 1), prefix.address(4, 2)));
        // The N of the IPv4 pair when it is free.
        let twelve: Ipv4Addr = "10.233.12.1".parse().unwrap();
        assert_eq!(
            used.allocate6(prefix, twelve).unwrap().0,
            prefix.address(12, 1)
        );
        let two: Ipv4Addr = "10.233.2.1".parse().unwrap();
        assert_eq!(used.allocate6(prefix, two).unwrap().0, prefix.address(4, 1));
        assert_eq!(prefix.address(12, 1).segments()[6], 0x12);
        assert_eq!(prefix.address(254, 2).segments()[6..8], [0x254, 2]);
        assert_eq!(
            format!("{prefix}").split(':').next().unwrap().len(),
            4,
            "{prefix}"
        );
    }

    #[test]
    fn ipv6_routes_are_read_without_default_and_reject_routes() {
        let table = "\
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
fc000000000000000000000000000000 07 00000000000000000000000000000000 00 00000000000000000000000000000000 00000400 00000001 00000000 00200200       lo
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000001 00000000 00000003     eth0
";
        let nets: Vec<String> = routed_networks6(table)
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(nets, ["fd00::/64"]);
    }

    #[test]
    fn bare_strips_the_prefix() {
        assert_eq!(bare("10.233.1.2/24"), Some("10.233.1.2".parse().unwrap()));
        assert_eq!(bare("fc00::2/7"), Some("fc00::2".parse().unwrap()));
        assert_eq!(bare("x"), None);
    }
}
