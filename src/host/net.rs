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
    let main = conf.non_empty("HOST_BRIDGE").is_none() && super::nspawn::wants_veth(conf);
    let deadline = Instant::now() + timeout;
    while main && !link_exists(name) {
        if Instant::now() > deadline {
            return Err(Error::Usage(format!(
                "the host link {} did not appear",
                host_link(name)
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    // nspawn makes the extra pairs with the main one; each is waited for all the same.
    for veth in crate::container::declared::extra_veths(conf) {
        let dev = std::path::Path::new("/sys/class/net").join(&veth.name);
        while !dev.exists() {
            if Instant::now() > deadline {
                return Err(Error::Usage(format!(
                    "the extra veth {} did not appear",
                    veth.name
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
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
        return extra_veth_commands(conf);
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
    commands.extend(extra_veth_commands(conf));
    commands
}

/// The host side of the extra veths, as NixOS's postStart: into the bridge, or up with the
/// host address and a route to the container's.
fn extra_veth_commands(conf: &Conf) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    for v in crate::container::declared::extra_veths(conf) {
        let s = |x: &str| x.to_string();
        if let Some(bridge) = &v.host_bridge {
            commands.push(vec![
                s("link"),
                s("set"),
                s("dev"),
                v.name.clone(),
                s("master"),
                bridge.clone(),
                s("up"),
            ]);
            continue;
        }
        commands.push(vec![s("link"), s("set"), s("dev"), v.name.clone(), s("up")]);
        for (family, what, value) in [
            (None, "addr", &v.host_address),
            (Some("-6"), "addr", &v.host_address6),
            (None, "route", &v.local_address),
            (Some("-6"), "route", &v.local_address6),
        ] {
            if let Some(value) = value {
                let mut argv: Vec<String> = family.map(s).into_iter().collect();
                // A route goes to the address, not to the network its prefix names.
                let value = if what == "route" {
                    value.split('/').next().unwrap_or(value)
                } else {
                    value
                };
                argv.extend([
                    s(what),
                    s("add"),
                    value.to_string(),
                    s("dev"),
                    v.name.clone(),
                ]);
                commands.push(argv);
            }
        }
    }
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
