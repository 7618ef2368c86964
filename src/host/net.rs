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

/// How `ip` ended: Ok, or its stderr.
fn ip_run(args: &[&str]) -> Result<std::result::Result<(), String>> {
    let out = Command::new(ip_binary()?)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io("running ip", e))?;
    Ok(if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    })
}

fn ip(args: &[&str]) -> Result<()> {
    ip_run(args)?.map_err(|why| ip_error(args, &why))
}

fn ip_error(args: &[&str], why: &str) -> Error {
    Error::Usage(format!("ip {} failed: {why}", args.join(" ")))
}

/// `ip`'s words for a device that is not there (ENODEV), by name or by index.
fn no_such_device(stderr: &str) -> bool {
    stderr.contains("Cannot find device") || stderr.contains("No such device")
}

/// How long a link the kernel is taking down with a dead network namespace may stay visible.
const LINK_GONE_TIMEOUT: Duration = Duration::from_secs(5);

/// Does link `ve-NAME` (by name or altname) exist?
pub fn link_exists(name: &str) -> bool {
    let link = host_link(name);
    if link.len() <= 15 {
        // A name that fits is the kernel's name (nspawn only shortens longer ones).
        return std::path::Path::new("/sys/class/net").join(&link).exists();
    }
    // nspawn's shortened names keep the `ve-` prefix: with no such link at all (a host whose
    // containers are all on bridges, as a test's nodes), there is no altname to ask `ip` about.
    let any_host_link = std::fs::read_dir("/sys/class/net").map_or(true, |entries| {
        entries
            .flatten()
            .any(|e| e.file_name().as_encoded_bytes().starts_with(b"ve-"))
    });
    if !any_host_link {
        return false;
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
    ip_batch(&host_side_commands(name, conf))
}

/// Run `commands` with one `ip -batch -` (one process for all). A word with whitespace in it
/// would split into two in batch mode: refused.
fn ip_batch(commands: &[Vec<String>]) -> Result<()> {
    use std::io::Write;
    if commands.is_empty() {
        return Ok(());
    }
    let mut script = String::new();
    for argv in commands {
        if let Some(word) = argv
            .iter()
            .find(|w| w.is_empty() || w.contains(char::is_whitespace))
        {
            return Err(ip_error(
                &argv.iter().map(String::as_str).collect::<Vec<_>>(),
                &format!("the word ‘{word}’ is not one word"),
            ));
        }
        // A batch line takes no options: ip reads the family from the address ("-6" dropped).
        let words = match argv.first().map(String::as_str) {
            Some("-6" | "-4") => &argv[1..],
            _ => &argv[..],
        };
        script.push_str(&words.join(" "));
        script.push('\n');
    }
    let mut child = Command::new(ip_binary()?)
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("running ip", e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| Error::io("writing to ip -batch", e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::io("running ip", e))?;
    if out.status.success() {
        return Ok(());
    }
    let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
    Err(Error::Usage(format!(
        "ip -batch failed: {why} (commands: {})",
        script.trim_end().replace('\n', "; ")
    )))
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
            if family.is_some() && what == "addr" {
                // No duplicate address detection on a veth: usable as soon as the start returns.
                argv.push("nodad".into());
            }
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
                if family.is_some() && what == "addr" {
                    argv.push(s("nodad"));
                }
                commands.push(argv);
            }
        }
    }
    commands
}

/// Remove a leftover host link (after a killed nspawn), and return once its name is free for
/// the next nspawn. One that is already gone is success. The kernel takes a veth down with
/// its peer's dead network namespace, asynchronously: such a link may still be listed while
/// deleting it says "Cannot find device", which is success too; then we wait for it to go.
pub fn remove_host_link(name: &str) -> Result<()> {
    let link = host_link(name);
    remove_link(
        &link,
        || link_exists(name),
        || ip_run(&["link", "del", "dev", &link]),
        LINK_GONE_TIMEOUT,
    )
}

/// [`remove_host_link`] over its two operations (`delete` gives `ip`'s stderr on failure).
fn remove_link(
    link: &str,
    exists: impl Fn() -> bool,
    delete: impl Fn() -> Result<std::result::Result<(), String>>,
    timeout: Duration,
) -> Result<()> {
    if !exists() {
        return Ok(());
    }
    match delete()? {
        Ok(()) => {}
        Err(why) if no_such_device(&why) => {}
        Err(why) => return Err(ip_error(&["link", "del", "dev", link], &why)),
    }
    let deadline = Instant::now() + timeout;
    while exists() {
        if Instant::now() > deadline {
            return Err(Error::Usage(format!(
                "the host link {link} is still there {} s after it was deleted",
                timeout.as_secs_f64()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
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
    add_bridge_link(name)?;
    ip(&["addr", "replace", &gateway.to_string(), "dev", name])
}

/// Make bridge `name` as [`add_bridge`] does, up but without an address yet (idempotent).
pub fn add_bridge_link(name: &str) -> Result<()> {
    check_link_name(name)?;
    if !interface_exists(name) {
        let made = ip(&["link", "add", "name", name, "type", "bridge"]);
        if let Err(e) = made
            && !interface_exists(name)
        {
            return Err(e);
        }
    }
    ip(&["link", "set", "dev", name, "alias", BRIDGE_ALIAS])?;
    ip(&["link", "set", "dev", name, "up"])
}

/// Give bridge `name` (made by [`add_bridge_link`]) the address `gateway`.
pub fn add_bridge_address(name: &str, gateway: ipnet::Ipv4Net) -> Result<()> {
    check_link_name(name)?;
    ip(&["addr", "replace", &gateway.to_string(), "dev", name])
}

/// Remove bridge `name`; one already gone is success.
pub fn delete_bridge(name: &str) -> Result<()> {
    check_link_name(name)?;
    if !interface_exists(name) {
        return Ok(());
    }
    match ip(&["link", "del", "dev", name]) {
        Err(e) if interface_exists(name) => Err(e),
        _ => Ok(()),
    }
}

/// The kernel names of the ports of bridge `name` (`/sys/class/net/NAME/brif`).
pub fn bridge_ports(name: &str) -> Vec<String> {
    std::fs::read_dir(
        std::path::Path::new("/sys/class/net")
            .join(name)
            .join("brif"),
    )
    .map(|entries| {
        entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect()
    })
    .unwrap_or_default()
}

/// Delete `links` (kernel names) at once, each by an `ip` of its own in a thread of its own,
/// and return once none exists; one already gone is success. A deletion is mostly the kernel
/// waiting for its grace periods (a bridge about 45 ms, whatever it holds), which overlap so.
/// The first failure is returned.
pub fn delete_links_at_once(links: &[String]) -> Result<()> {
    let exists = |link: &str| std::path::Path::new("/sys/class/net").join(link).exists();
    std::thread::scope(|scope| {
        let deleting: Vec<_> = links
            .iter()
            .map(|link| {
                scope.spawn(move || {
                    remove_link(
                        link,
                        || exists(link),
                        || ip_run(&["link", "del", "dev", link]),
                        LINK_GONE_TIMEOUT,
                    )
                })
            })
            .collect();
        deleting
            .into_iter()
            .map(|thread| {
                thread.join().unwrap_or_else(|_| {
                    Err(Error::Unsupported(
                        "a thread deleting a link panicked".into(),
                    ))
                })
            })
            .collect::<Result<Vec<()>>>()
            .map(|_| ())
    })
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

/// Before a container is killed (terminate, destroy): move the host links INTERFACES moved in
/// back to the host, as nspawn does when it exits cleanly. Killed, nspawn cannot, and the
/// kernel would delete a virtual link (a veth, a dummy) with the namespace. `ip link set dev IF
/// netns PID` runs in the leader's network namespace, PID being this process (in the host's).
/// Best effort: a link the container renamed or removed stays as it is.
pub fn return_links(leader: i32, conf: &Conf) {
    let Some(interfaces) = conf.non_empty("INTERFACES") else {
        return;
    };
    let Ok(ip) = ip_binary() else {
        return;
    };
    let Ok(netns) = std::fs::File::open(format!("/proc/{leader}/ns/net")) else {
        return;
    };
    let host = std::process::id().to_string();
    for link in interfaces.split_whitespace() {
        let mut cmd = std::process::Command::new(ip);
        cmd.args(["link", "set", "dev", link, "netns", &host])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let fd = std::os::fd::AsRawFd::as_raw_fd(&netns);
        // SAFETY: setns is an async-signal-safe system call on a descriptor open in the parent.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let _ = cmd.status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_device_is_recognised() {
        assert!(no_such_device("Cannot find device \"ve-lif160430\""));
        assert!(no_such_device("RTNETLINK answers: No such device"));
        assert!(!no_such_device(
            "RTNETLINK answers: Operation not permitted"
        ));
    }

    /// The kernel's view while it takes a link down: listed for a while after a delete that
    /// says there is no such device.
    #[test]
    fn a_link_listed_while_the_kernel_removes_it_is_waited_for() {
        use std::cell::Cell;
        let listed = Cell::new(4);
        let exists = || {
            listed.set(listed.get() - 1);
            listed.get() >= 0
        };
        let gone = || Ok(Err("Cannot find device \"ve-x\"".to_string()));
        assert!(remove_link("ve-x", exists, gone, Duration::from_secs(5)).is_ok());
        assert!(
            listed.get() < 0,
            "it waited until the link was no longer listed"
        );
        // Another failure is one; a link that never goes is one after the timeout.
        let refused = || Ok(Err("RTNETLINK answers: Operation not permitted".to_string()));
        let err = remove_link("ve-x", || true, refused, Duration::from_secs(5));
        assert!(
            format!("{err:?}").contains("Operation not permitted"),
            "{err:?}"
        );
        let err = remove_link("ve-x", || true, || Ok(Ok(())), Duration::from_millis(20));
        assert!(format!("{err:?}").contains("still there"), "{err:?}");
    }

    /// The race after a crash: the peer's namespace is gone, and the kernel is taking the host
    /// link down while we remove it. Every removal succeeds and leaves the name free.
    #[test]
    fn removing_a_link_that_its_dead_namespace_takes_down_is_success() {
        if !nix::unistd::geteuid().is_root() || ip_binary().is_err() {
            return;
        }
        let run = |args: &[&str]| {
            let ok = Command::new(ip_binary().unwrap_or(IP))
                .args(args)
                .stdin(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "ip {}", args.join(" "));
        };
        for i in 0..30 {
            let name = format!("nr{}x{i}", std::process::id() % 100_000);
            let ns = format!("ncsh-test-{name}");
            run(&["netns", "add", &ns]);
            let link = host_link(&name);
            run(&[
                "link", "add", &link, "type", "veth", "peer", "name", "host0", "netns", &ns,
            ]);
            run(&["netns", "del", &ns]);
            let removed = remove_host_link(&name);
            let left = link_exists(&name);
            if left {
                let _ = ip(&["link", "del", "dev", &link]);
            }
            assert!(removed.is_ok(), "try {i}: {removed:?}");
            assert!(!left, "try {i}: {link} is still there");
        }
    }

    #[test]
    fn removing_a_link_that_is_not_there_is_success() {
        if !nix::unistd::geteuid().is_root() || ip_binary().is_err() {
            return;
        }
        assert!(remove_host_link("ncsh-no-such-link-here").is_ok());
    }
}
