//! Host drivers: who supervises the container process. The standalone driver (ncsh supervises
//! systemd-nspawn itself) and the systemd driver (`container@NAME.service` units over D-Bus);
//! [`select`] picks one.

pub mod cgroup;
pub mod devices;
pub mod enter;
#[cfg(test)]
pub mod fake;
pub mod journal;

pub mod net;
pub mod nft;
pub mod nspawn;
pub mod pty;
pub mod seccomp;
pub mod standalone;
pub mod switch;
pub mod systemd;

use crate::container::{Conf, Paths};
use crate::error::{Error, Result};

/// With `NCSH_PHASES=FILE`, one line appended to FILE per phase of an operation: the
/// wall-clock time (seconds since the epoch, so the lines of the supervisors and of `ncsh test`
/// compare), the process, and what just happened. For measuring where a start, a stop or a
/// test run spends its time (`tests/bench/testdriver.rs`); off (nothing read or written)
/// without it.
pub fn phase(what: &str) {
    use std::io::Write;
    static FILE: std::sync::OnceLock<Option<std::fs::File>> = std::sync::OnceLock::new();
    let file = FILE.get_or_init(|| {
        let path = std::env::var_os("NCSH_PHASES")?;
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .ok()
    });
    let Some(mut file) = file.as_ref() else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    // One write per line: O_APPEND keeps the lines of concurrent processes whole.
    let line = format!("{:.4} [{}] {what}\n", now.as_secs_f64(), std::process::id());
    let _ = file.write_all(line.as_bytes());
}

/// What `status` reports, in nixos-container's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Up,
    Down,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Up => "up",
            Status::Down => "down",
        }
    }
}

pub trait Driver {
    fn name(&self) -> &'static str;
    /// Start and return once the container reached multi-user.target (a no-op when it is up).
    fn start(&self, name: &str, conf: &Conf) -> Result<()>;
    /// A clean poweroff, then a kill after the timeout; a no-op when it is down.
    fn stop(&self, name: &str) -> Result<()>;
    /// Kill at once; an error when it is not running.
    fn terminate(&self, name: &str) -> Result<()>;
    fn status(&self, name: &str) -> Status;
    /// Make a running container follow its new system (`update`): `switch` does it in place;
    /// the systemd driver reloads `container@NAME.service` instead, whose ExecReload switches.
    fn reload(&self, _name: &str, switch: &dyn Fn() -> Result<()>) -> Result<()> {
        switch()
    }
    /// The PID (in our namespace) of the container's PID 1, when running.
    fn leader(&self, name: &str) -> Option<i32>;
    /// The same, with the reason when the driver could not find out (e.g. machined is down).
    fn find_leader(&self, name: &str) -> Result<Option<i32>> {
        Ok(self.leader(name))
    }
    /// Remove the runtime state of a stopped container (destroy).
    fn remove_runtime(&self, name: &str) -> Result<()>;
    /// Make the host start container `name` at boot when `enabled` (AUTO_START=1), or no
    /// longer. Only the systemd driver can (the unit wanted by machines.target); the standalone
    /// one has `ncsh start --all-auto` for the host's boot scripts.
    fn set_auto_start(&self, _name: &str, _enabled: bool) -> Result<()> {
        Ok(())
    }
    /// Apply changed limits to a running container (a no-op when it is down: the next start
    /// applies the conf's).
    fn apply_limits(&self, _name: &str, _limits: &crate::container::limits::Limits) -> Result<()> {
        Ok(())
    }
    /// What the running container uses (None when it is down).
    fn usage(&self, _name: &str) -> Result<Option<cgroup::Usage>> {
        Ok(None)
    }
    /// A login prompt of the running container on the caller's terminal: by default
    /// `/bin/login` on a pty inside the leader; the exit code.
    fn login(&self, _name: &str, leader: i32) -> Result<i32> {
        pty::login(leader)
    }
}

/// Does process `pid` exist? `kill(pid, 0)` fails with EPERM for another user's live process,
/// so only ESRCH means it is gone (non-root `status` must see root's containers up).
pub(crate) fn alive(pid: nix::unistd::Pid) -> bool {
    !matches!(
        nix::sys::signal::kill(pid, None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// The environment variable that chooses the driver when no `--driver` flag does.
pub const DRIVER_ENV: &str = "NCSH_DRIVER";

/// The driver to use: `requested` (the `--driver` flag), else `NCSH_DRIVER`, else systemd when
/// systemd is PID 1 (`/run/systemd/system` exists) and standalone otherwise.
pub fn select(requested: Option<&str>, paths: Paths) -> Result<Box<dyn Driver>> {
    let from_env = std::env::var(DRIVER_ENV).ok().filter(|v| !v.is_empty());
    let choice = requested.map(str::to_string).or(from_env);
    let systemd = match choice.as_deref() {
        Some("systemd") => true,
        Some("standalone") => false,
        Some(other) => {
            return Err(Error::Usage(format!(
                "unknown driver ‘{other}’ (known: systemd, standalone)"
            )));
        }
        None => systemd::systemd_is_pid1(),
    };
    if systemd {
        Ok(Box::new(systemd::Systemd::new(paths)?))
    } else {
        Ok(Box::new(standalone::Standalone::new(paths)))
    }
}

/// The longest timeout ncsh waits for (about 100 years): larger values mean "forever".
pub(crate) const MAX_TIMEOUT: std::time::Duration =
    std::time::Duration::from_secs(100 * 365 * 86400);

/// A duration in seconds from the environment (`NCSH_START_TIMEOUT`, `NCSH_STOP_TIMEOUT`);
/// `default` when unset or empty, capped at [`MAX_TIMEOUT`]. Not a number, negative, NaN or
/// infinite is an error naming the variable.
pub(crate) fn timeout_from_env(
    var: &str,
    default: std::time::Duration,
) -> Result<std::time::Duration> {
    match std::env::var_os(var) {
        None => Ok(default),
        Some(v) if v.is_empty() => Ok(default),
        Some(v) => parse_timeout(var, &v.to_string_lossy()),
    }
}

/// `value` (seconds, e.g. `90` or `2.5`) as a duration, capped at [`MAX_TIMEOUT`].
fn parse_timeout(var: &str, value: &str) -> Result<std::time::Duration> {
    let bad = |why: &str| {
        let shown: String = value.chars().take(40).collect();
        let more = if value.chars().count() > 40 {
            "…"
        } else {
            ""
        };
        Error::Usage(format!(
            "{var}=‘{shown}{more}’: {why}; set it to a number of seconds such as 90, or unset it"
        ))
    };
    let secs: f64 = value.trim().parse().map_err(|_| bad("not a number"))?;
    if secs.is_nan() {
        return Err(bad("not a number"));
    }
    if secs < 0.0 {
        return Err(bad("negative"));
    }
    if secs.is_infinite() {
        return Err(bad("infinite"));
    }
    Ok(std::time::Duration::try_from_secs_f64(secs)
        .unwrap_or(MAX_TIMEOUT)
        .min(MAX_TIMEOUT))
}

/// The instant `timeout` from now, or `None` when that is too far to represent (never).
pub(crate) fn deadline_after(timeout: std::time::Duration) -> Option<std::time::Instant> {
    std::time::Instant::now().checked_add(timeout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timeouts_are_capped_and_bad_ones_named() {
        assert_eq!(
            parse_timeout("V", "2.5").unwrap(),
            Duration::from_millis(2500)
        );
        assert_eq!(parse_timeout("V", "1e19").unwrap(), MAX_TIMEOUT);
        assert_eq!(parse_timeout("V", "1e300").unwrap(), MAX_TIMEOUT);
        assert!(deadline_after(MAX_TIMEOUT.saturating_add(Duration::from_secs(10))).is_some());
        for (value, why) in [
            ("NaN", "not a number"),
            ("-1", "negative"),
            ("inf", "infinite"),
        ] {
            let e = parse_timeout("NCSH_STOP_TIMEOUT", value)
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(&format!("NCSH_STOP_TIMEOUT=‘{value}’: {why}")),
                "{e}"
            );
        }
        let e = parse_timeout("V", &"x".repeat(1000))
            .unwrap_err()
            .to_string();
        assert!(e.len() < 200, "{e}");
    }
}
