//! The host side of a container's veth, configured with iproute2 (`ip`, argv only, no shell).
//!
//! nspawn names the host link `ve-NAME`; for names longer than 12 characters it shortens the
//! name and keeps `ve-NAME` as an altname, which `ip` resolves, so `ve-NAME` always works here.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::container::Conf;
use crate::error::{Error, Result};

pub const IP: &str = "/usr/sbin/ip";
const IP_FALLBACK: &str = "/sbin/ip";

pub fn ip_binary() -> Result<&'static str> {
    [IP, IP_FALLBACK]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .ok_or(Error::MissingTool {
            tool: "ip".into(),
            package: "iproute2",
        })
}

pub fn host_link(name: &str) -> String {
    format!("ve-{name}")
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new(ip_binary()?)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io("running ip", e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Does link `ve-NAME` (by name or altname) exist?
pub fn link_exists(name: &str) -> bool {
    let link = host_link(name);
    if link.len() <= 15 && std::path::Path::new("/sys/class/net").join(&link).exists() {
        return true;
    }
    Command::new(ip_binary().unwrap_or(IP))
        .args(["link", "show", "dev", &link])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Wait for the host link to appear, then give it HOST_ADDRESS and a route to LOCAL_ADDRESS (and
/// the IPv6 pair), as NixOS's postStart does — but as soon as the link exists, not after boot.
pub fn configure_host_side(name: &str, conf: &Conf, timeout: Duration) -> Result<()> {
    if conf.non_empty("HOST_BRIDGE").is_some() || !super::nspawn::wants_veth(conf) {
        return Ok(());
    }
    let deadline = Instant::now() + timeout;
    while !link_exists(name) {
        if Instant::now() > deadline {
            return Err(Error::Usage(format!(
                "the host link {} did not appear",
                host_link(name)
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    for argv in host_side_commands(name, conf) {
        let args: Vec<&str> = argv.iter().map(String::as_str).collect();
        ip(&args)?;
    }
    Ok(())
}

/// The `ip` argument lists that configure the host side of the veth (NixOS's postStart): the
/// link up, HOST_ADDRESS(6) on it, routes to LOCAL_ADDRESS(6). Empty without a veth.
pub fn host_side_commands(name: &str, conf: &Conf) -> Vec<Vec<String>> {
    if conf.non_empty("HOST_BRIDGE").is_some() || !super::nspawn::wants_veth(conf) {
        return Vec::new();
    }
    let link = host_link(name);
    let mut commands = vec![vec![
        "link".into(),
        "set".into(),
        "dev".into(),
        link.clone(),
        "up".into(),
    ]];
    let mut add = |family: Option<&str>, what: &str, key: &str| {
        if let Some(address) = conf.non_empty(key) {
            let mut argv: Vec<String> = family.map(String::from).into_iter().collect();
            argv.extend([
                what.to_string(),
                "add".into(),
                address.to_string(),
                "dev".into(),
                link.clone(),
            ]);
            commands.push(argv);
        }
    };
    add(None, "addr", "HOST_ADDRESS");
    add(Some("-6"), "addr", "HOST_ADDRESS6");
    add(None, "route", "LOCAL_ADDRESS");
    add(Some("-6"), "route", "LOCAL_ADDRESS6");
    commands
}

/// Remove a leftover host link (after a killed nspawn); absent links are fine, also one the
/// kernel removed between the check and the delete (it goes with the container's namespace).
pub fn remove_host_link(name: &str) -> Result<()> {
    if !link_exists(name) {
        return Ok(());
    }
    match ip(&["link", "del", "dev", &host_link(name)]) {
        Err(e) if link_exists(name) => Err(e),
        _ => Ok(()),
    }
}

/// Make bridge `name` carrying `gateway` (its address and prefix) and set it up; what is already
/// there is kept (idempotent: an existing bridge gets the address if it lacks it).
pub fn add_bridge(name: &str, gateway: ipnet::Ipv4Net) -> Result<()> {
    check_link_name(name)?;
    if !link_present(name) {
        match ip(&["link", "add", "name", name, "type", "bridge"]) {
            Err(e) if !link_present(name) => return Err(e),
            _ => {}
        }
    }
    let address = gateway.to_string();
    if !has_address(name, &address) {
        match ip(&["addr", "add", &address, "dev", name]) {
            Err(e) if !has_address(name, &address) => return Err(e),
            _ => {}
        }
    }
    ip(&["link", "set", "dev", name, "up"])
}

/// Remove bridge `name`; one that is already gone is success.
pub fn delete_bridge(name: &str) -> Result<()> {
    check_link_name(name)?;
    if !link_present(name) {
        return Ok(());
    }
    match ip(&["link", "del", "dev", name]) {
        Err(e) if link_present(name) => Err(e),
        _ => Ok(()),
    }
}

/// The host side of container `name`'s link to a bridge (`--network-bridge`): nspawn names it
/// `vb-NAME`, shortened for long names with `vb-NAME` kept as an altname, which `ip` resolves.
pub fn bridge_port(name: &str) -> String {
    format!("vb-{name}")
}

/// Set a host link up or down (`ip link set dev LINK up|down`).
pub fn set_link_up(link: &str, up: bool) -> Result<()> {
    ip(&["link", "set", "dev", link, if up { "up" } else { "down" }])
}

/// An interface name the kernel takes: 1 to 15 bytes, no `/`, `:` or white space.
fn check_link_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 15
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(Error::Usage(format!(
            "‘{name}’ is not an interface name (1 to 15 characters, no ‘/’, ‘:’ or spaces)"
        )));
    }
    Ok(())
}

fn link_present(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

/// Does link `name` carry `address` (`A.B.C.D/LEN`)?
fn has_address(name: &str, address: &str) -> bool {
    Command::new(ip_binary().unwrap_or(IP))
        .args(["-o", "-4", "addr", "show", "dev", name])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|out| {
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .any(|word| word == address)
        })
}
