//! Everything known about one container at once (`ncsh show`, `c.info()`, the `--json` of
//! `list`, `status`, `show-ip`): read from its conf, its root's generations, the driver and
//! /proc, without taking its lock (a snapshot, as `status` is).

use serde::Serialize;

use super::Manager;
use crate::builder::generation::Store;
use crate::container::ContainerName;
use crate::container::address::bare;
use crate::error::Result;
use crate::files::Root;
use crate::host::Status;
use crate::host::nspawn::{self, Supervision};

/// One container, as the README's "Machine-readable output" documents it. Field names are
/// the JSON schema: add fields, never rename or remove one.
#[derive(Debug, Serialize)]
pub struct Info {
    pub name: String,
    /// "up" or "down".
    pub state: &'static str,
    /// LOCAL_ADDRESS / LOCAL_ADDRESS6 without prefix length, null when unset.
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
    /// HOST_ADDRESS / HOST_ADDRESS6, the host end of its link.
    pub host_ipv4: Option<String>,
    pub host_ipv6: Option<String>,
    /// Its init's PID on the host, when up.
    pub leader: Option<i64>,
    /// When its init started, in seconds since the Unix epoch, when up.
    pub since: Option<i64>,
    /// The host driver ("standalone" or "systemd").
    pub driver: &'static str,
    /// "native" (a generation ncsh built) or "nix" (a Nix profile or SYSTEM_PATH).
    pub builder: &'static str,
    /// The current generation's number (native), null when it has none.
    pub generation: Option<i64>,
    pub auto_start: bool,
    /// HOST_BRIDGE, null when it has its own link.
    pub bridge: Option<String>,
    /// HOST_PORT's forwards, as written (`[tcp|udp:]HOST[:CONTAINER]`).
    pub ports: Vec<String>,
    /// What is bound into it, as nspawn's `--bind`/`--bind-ro` values (`HOST[:CONTAINER]`),
    /// with `ro: true` for the read-only ones.
    pub bind_mounts: Vec<BindMount>,
    /// The memory it uses (its cgroup's), in bytes, when up and the host accounts it.
    pub memory: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct BindMount {
    pub source: String,
    pub target: String,
    pub ro: bool,
}

impl Manager {
    /// A snapshot of container `name` (NotFound when it does not exist).
    pub fn info(&self, name: &ContainerName) -> Result<Info> {
        let conf = self.conf(name)?;
        let address = |key: &str| conf.non_empty(key).and_then(bare).map(|a| a.to_string());
        let state = self.driver.status(name);
        let leader = match state {
            Status::Up => self.driver.find_leader(name)?,
            Status::Down => None,
        };
        let nix = nspawn::nix_system(&self.paths, name, &conf);
        let generation = match &nix {
            Some(_) => None,
            None => Root::open(&self.paths.root(name))
                .ok()
                .and_then(|root| Store::new(&root).current_number())
                .and_then(|n| i64::try_from(n).ok()),
        };
        let root = self.paths.root(name);
        // What nspawn is given (EXTRA_NSPAWN_FLAGS' binds included); none for a conf whose
        // EXTRA_NSPAWN_FLAGS start would refuse.
        let argv = nspawn::args(
            name,
            &root,
            &conf,
            &self.paths.conf(name),
            Supervision::Standalone,
            nix.as_ref(),
        )
        .unwrap_or_default();
        let bind_mounts = argv
            .iter()
            .filter_map(|arg| {
                let arg = arg.to_str()?;
                let (value, ro) = match arg.strip_prefix("--bind-ro=") {
                    Some(value) => (value, true),
                    None => (arg.strip_prefix("--bind=")?, false),
                };
                let (source, target) = value.split_once(':').unwrap_or((value, value));
                Some(BindMount {
                    source: source.to_string(),
                    target: target.to_string(),
                    ro,
                })
            })
            .collect();
        Ok(Info {
            name: name.to_string(),
            state: state.as_str(),
            ipv4: address("LOCAL_ADDRESS"),
            ipv6: address("LOCAL_ADDRESS6"),
            host_ipv4: address("HOST_ADDRESS"),
            host_ipv6: address("HOST_ADDRESS6"),
            leader: leader.map(i64::from),
            since: leader.and_then(process_start),
            driver: self.driver.name(),
            builder: if nix.is_some() { "nix" } else { "native" },
            generation,
            auto_start: conf.get("AUTO_START") == Some("1"),
            bridge: conf.non_empty("HOST_BRIDGE").map(str::to_string),
            ports: conf
                .non_empty("HOST_PORT")
                .map(|p| {
                    p.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            bind_mounts,
            memory: match state {
                Status::Up => self
                    .driver
                    .usage(name)
                    .ok()
                    .flatten()
                    .and_then(|u| u.memory_bytes),
                Status::Down => None,
            },
        })
    }
}

/// When process `pid` started, in seconds since the epoch: its start time in clock ticks
/// since boot (/proc/PID/stat, field 22) plus the boot time (/proc/stat's `btime`).
fn process_start(pid: i32) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields count from after its last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    let ticks: i64 = after.split_whitespace().nth(19)?.parse().ok()?;
    let btime: i64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|hz| *hz > 0)?;
    Some(btime + ticks / hz)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_started_since_boot_and_not_in_the_future() {
        let start = process_start(std::process::id() as i32).expect("our own start time");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs() as i64;
        assert!(
            start <= now + 1 && start > now - 24 * 3600,
            "{start} vs {now}"
        );
    }
}
