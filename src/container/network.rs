//! ncsh networks (`--network NAME`): a bridge `NAME` that ncsh owns, made at the first start of
//! a container on it and removed when the last one is destroyed, so that the containers on it
//! reach each other by address. Each member's conf says `NCSH_NETWORK=NAME` and
//! `HOST_BRIDGE=NAME` (nspawn's `--network-bridge`), the gateway as `HOST_ADDRESS` (the host's
//! address on the bridge, shared by all members) and its own `LOCAL_ADDRESS` with the network's
//! prefix length (so the other members are on its link). A new network takes the first free /24
//! of `NCSH_NETWORK_RANGE` (default 10.234.0.0/16).

use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;

use super::address::{UsedAddresses, parse_address};
use super::conf::Conf;
use crate::error::{Error, Result};

/// The conf key of ncsh's own that names a container's network.
pub const NETWORK_KEY: &str = "NCSH_NETWORK";

/// Where new networks' subnets come from.
pub const RANGE_ENV: &str = "NCSH_NETWORK_RANGE";
const DEFAULT_RANGE: &str = "10.234.0.0/16";

/// A network name is a bridge name: 1 to 15 letters, digits, `-` or `_`, first a letter, and
/// not nspawn's `ve-`/`vb-`/`vz-` prefixes.
pub fn check_name(name: &str) -> Result<()> {
    let bad = |why: &str| {
        Error::Usage(format!(
            "invalid value ‘{name}’ for --network: {why} (a network is a bridge of that name)"
        ))
    };
    if name.is_empty() || name.len() > 15 {
        return Err(bad("it must have 1 to 15 characters"));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphabetic())
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(bad(
            "use letters, digits, ‘-’ and ‘_’, starting with a letter",
        ));
    }
    if ["ve-", "vb-", "vz-"].iter().any(|p| name.starts_with(p)) {
        return Err(bad(
            "names starting ve-, vb- or vz- are systemd-nspawn's own links",
        ));
    }
    Ok(())
}

/// The bridge and its gateway (the host's address and the network) of a conf on a network.
pub fn gateway(conf: &Conf) -> Option<(String, Ipv4Net)> {
    let network = conf.non_empty(NETWORK_KEY)?;
    let host = conf.non_empty("HOST_ADDRESS")?.parse::<Ipv4Addr>().ok()?;
    let local = parse_address(conf.non_empty("LOCAL_ADDRESS")?).ok()?;
    let net = Ipv4Net::new(host, local.prefix_len()).ok()?;
    Some((network.to_string(), net))
}

/// The range new networks' subnets come from (`NCSH_NETWORK_RANGE`).
fn range() -> Result<Ipv4Net> {
    let value = std::env::var(RANGE_ENV).unwrap_or_default();
    let value = if value.is_empty() {
        DEFAULT_RANGE
    } else {
        value.as_str()
    };
    value
        .parse::<Ipv4Net>()
        .ok()
        .filter(|n| n.prefix_len() <= 24 && n.prefix_len() >= 8)
        .map(|n| n.trunc())
        .ok_or_else(|| {
            Error::Usage(format!(
                "{RANGE_ENV}=‘{value}’: expected an IPv4 network from /8 to /24, such as {DEFAULT_RANGE}"
            ))
        })
}

/// The gateway and a new member's local address (`A.B.C.K/LEN`) on network `name`: the
/// network the existing members (`confs`) are on, or a free /24 of the range. `used` holds every
/// address the confs and the host hold.
pub fn allocate<'a>(
    name: &str,
    confs: impl IntoIterator<Item = &'a Conf>,
    used: &UsedAddresses,
) -> Result<(String, String)> {
    let existing = confs
        .into_iter()
        .filter(|c| c.non_empty(NETWORK_KEY) == Some(name))
        .find_map(gateway);
    let net = match existing {
        Some((_, net)) => net,
        None => {
            let range = range()?;
            let subnets: Vec<Ipv4Net> = range.subnets(24).map(|s| s.collect()).unwrap_or_default();
            subnets
                .into_iter()
                .find(|s| !used.overlaps(ipnet::IpNet::V4(*s)))
                .map(|s| Ipv4Net::new(s.hosts().next().unwrap_or(s.addr()), 24))
                .and_then(|n| n.ok())
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "no free /24 network left in {range} for network ‘{name}’: \
                         set {RANGE_ENV} to a larger or other range"
                    ))
                })?
        }
    };
    let gateway = net.addr();
    let local = net
        .hosts()
        .find(|a| *a != gateway && used.owner_of(IpAddr::V4(*a)).is_none())
        .ok_or_else(|| {
            Error::Usage(format!(
                "network ‘{name}’ ({}) has no free address left",
                net.trunc()
            ))
        })?;
    Ok((gateway.to_string(), format!("{local}/{}", net.prefix_len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(text: &str) -> Conf {
        Conf::parse(text, std::path::Path::new("t")).unwrap()
    }

    #[test]
    fn members_share_the_gateway_and_get_the_next_address() {
        let a = conf(
            "NCSH_NETWORK=lan\nHOST_BRIDGE=lan\nHOST_ADDRESS=10.234.3.1\nLOCAL_ADDRESS=10.234.3.2/24\n",
        );
        let other = conf("HOST_ADDRESS=10.234.0.1\nLOCAL_ADDRESS=10.234.0.2\n");
        let used = UsedAddresses::from_confs([("a", &a), ("o", &other)]);
        assert_eq!(
            allocate("lan", [&a, &other], &used).unwrap(),
            ("10.234.3.1".to_string(), "10.234.3.3/24".to_string())
        );
        assert_eq!(
            gateway(&a),
            Some(("lan".to_string(), "10.234.3.1/24".parse().unwrap()))
        );
        // A new network skips the /24s that hold any address.
        assert_eq!(
            allocate("dmz", [&a, &other], &used).unwrap(),
            ("10.234.1.1".to_string(), "10.234.1.2/24".to_string())
        );
    }

    #[test]
    fn names_are_bridge_names() {
        assert!(check_name("lan-1_x").is_ok());
        for bad in ["", "1lan", "a/b", "ve-x", "sixteen-chars-xx", "a b"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
