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

/// The kernel's name of the host link `ve-NAME` (nspawn shortens long ones and keeps `ve-NAME`
/// as an altname), for the per-link files of `/proc/sys`.
pub fn link_kernel_name(name: &str) -> Result<String> {
    let link = host_link(name);
    if link.len() <= 15 && std::path::Path::new("/sys/class/net").join(&link).exists() {
        return Ok(link);
    }
    interface_name(&link)
}

/// The kernel's name of interface `dev` (a name or an altname), from `ip -j link show`.
fn interface_name(dev: &str) -> Result<String> {
    let out = Command::new(ip_binary()?)
        .args(["-j", "link", "show", "dev", dev])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io("running ip", e))?;
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    parsed[0]["ifname"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| Error::Usage(format!("the link {dev} does not exist")))
}

/// Does interface `name` exist?
pub fn interface_exists(name: &str) -> bool {
    (name.len() <= 15 && std::path::Path::new("/sys/class/net").join(name).exists())
        || interface_name(name).is_ok()
}

/// What marks a bridge as ncsh's (its `ip link` alias), so that a network's bridge is told
/// from one the host's administrator made.
pub const BRIDGE_ALIAS: &str = "ncsh network";

/// Is interface `name` a bridge ncsh made ([`add_bridge`])?
pub fn is_ncsh_bridge(name: &str) -> bool {
    std::fs::read_to_string(
        std::path::Path::new("/sys/class/net")
            .join(name)
            .join("ifalias"),
    )
    .is_ok_and(|alias| alias.trim_end() == BRIDGE_ALIAS)
}

/// Make bridge `name` with `gateway` (address and prefix) on it, up; what exists already is kept
/// (idempotent: two starts may race to make it).
pub fn add_bridge(name: &str, gateway: ipnet::Ipv4Net) -> Result<()> {
    if !interface_exists(name) {
        let made = ip(&["link", "add", "name", name, "type", "bridge"]);
        if let Err(e) = made
            && !interface_exists(name)
        {
            return Err(e);
        }
    }
    ip(&["link", "set", "dev", name, "alias", BRIDGE_ALIAS])?;
    ip(&["addr", "replace", &gateway.to_string(), "dev", name])?;
    ip(&["link", "set", "dev", name, "up"])
}

/// Remove bridge `name`; one already gone is success.
pub fn delete_bridge(name: &str) -> Result<()> {
    if !interface_exists(name) {
        return Ok(());
    }
    match ip(&["link", "del", "dev", name]) {
        Err(e) if interface_exists(name) => Err(e),
        _ => Ok(()),
    }
}
