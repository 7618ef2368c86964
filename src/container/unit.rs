//! What NixOS bakes into a declared container's `container@NAME.service` and ncsh keeps in the
//! conf, so both drivers can apply it: `allowedDevices` (`DeviceAllow=`, under NixOS's
//! `DevicePolicy=closed`) as `NCSH_ALLOWED_DEVICES`, and `timeoutStartSec` (`TimeoutStartSec=`)
//! as `NCSH_TIMEOUT_START_SEC`, in seconds.

use std::time::Duration;

use super::conf::Conf;
use crate::error::{Error, Result};

/// `NODE,MODIFIER` pairs, separated by spaces.
pub const ALLOWED_DEVICES: &str = "NCSH_ALLOWED_DEVICES";
/// The start timeout in seconds (absent: NixOS's `1min`).
pub const TIMEOUT_START_SEC: &str = "NCSH_TIMEOUT_START_SEC";

/// One `DeviceAllow=` entry: a device node (`/dev/fuse`) or a class (`char-pts`, `block-loop`,
/// a name of /proc/devices), and what it allows: `r`, `w`, `m` (mknod).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub node: String,
    pub modifier: String,
}

impl Device {
    /// Check `node` and `modifier` as systemd reads `DeviceAllow=`; the reason when wrong.
    pub fn new(node: &str, modifier: &str) -> std::result::Result<Device, String> {
        let class = node
            .strip_prefix("char-")
            .or_else(|| node.strip_prefix("block-"));
        let valid_node = match class {
            Some(name) => !name.is_empty(),
            None => node.starts_with("/dev/") && node.len() > 5,
        } && !node
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || ",\"'\\$`".contains(c));
        if !valid_node {
            return Err(format!(
                "node ‘{node}’: expected a device node below /dev/ (e.g. /dev/fuse) or a class \
                 char-NAME or block-NAME (a name of /proc/devices)"
            ));
        }
        let modifier = if modifier.is_empty() { "rwm" } else { modifier };
        if !modifier.chars().all(|c| "rwm".contains(c)) {
            return Err(format!(
                "modifier ‘{modifier}’: expected some of r (read), w (write), m (mknod)"
            ));
        }
        Ok(Device {
            node: node.to_string(),
            modifier: modifier.to_string(),
        })
    }

    /// `NODE MODIFIER`, as a `DeviceAllow=` value.
    pub fn device_allow(&self) -> String {
        format!("{} {}", self.node, self.modifier)
    }
}

/// The devices a conf allows (none when it says nothing).
pub fn allowed_devices(conf: &Conf) -> Result<Vec<Device>> {
    let Some(value) = conf.non_empty(ALLOWED_DEVICES) else {
        return Ok(Vec::new());
    };
    value
        .split_whitespace()
        .map(|entry| {
            let (node, modifier) = entry.split_once(',').unwrap_or((entry, ""));
            Device::new(node, modifier).map_err(|why| {
                Error::Usage(format!(
                    "{ALLOWED_DEVICES}=‘{value}’ in the conf: {why}; fix or remove the line"
                ))
            })
        })
        .collect()
}

/// The conf value of `devices`.
pub fn render_devices(devices: &[Device]) -> String {
    devices
        .iter()
        .map(|d| format!("{},{}", d.node, d.modifier))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The start timeout a conf sets, if it sets one (`0` or `infinity`: none, as systemd).
pub fn start_timeout(conf: &Conf) -> Result<Option<Duration>> {
    let Some(value) = conf.non_empty(TIMEOUT_START_SEC) else {
        return Ok(None);
    };
    parse_timespan(value).map(Some).map_err(|why| {
        Error::Usage(format!(
            "{TIMEOUT_START_SEC}=‘{value}’ in the conf: {why}; fix or remove the line"
        ))
    })
}

/// A systemd time span (`systemd.time(7)`): `90`, `1min`, `1min 30s`, `2.5s`, `500ms`,
/// `infinity`. A bare number is seconds.
pub fn parse_timespan(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    if text == "infinity" {
        return Ok(Duration::MAX);
    }
    let bad = || {
        format!(
            "‘{text}’ is not a time span: expected e.g. 90, 90s, 1min 30s, 500ms or infinity \
             (systemd.time(7))"
        )
    };
    if text.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        rest = rest.trim_start();
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().map_err(|_| bad())?;
        rest = rest[number_len..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let seconds = match unit {
            "" | "s" | "sec" | "second" | "seconds" => 1.0,
            "us" | "usec" | "µs" => 1e-6,
            "ms" | "msec" => 1e-3,
            "m" | "min" | "minute" | "minutes" => 60.0,
            "h" | "hr" | "hour" | "hours" => 3600.0,
            "d" | "day" | "days" => 86400.0,
            "w" | "week" | "weeks" => 604_800.0,
            _ => return Err(bad()),
        };
        total += number * seconds;
    }
    if !total.is_finite() || total > 1e12 {
        return Ok(Duration::MAX);
    }
    Ok(Duration::from_secs_f64(total))
}

/// The conf value of a start timeout (seconds, as short as exact).
pub fn render_timeout(timeout: Duration) -> String {
    if timeout == Duration::MAX || timeout.is_zero() {
        return "infinity".into();
    }
    let secs = timeout.as_secs_f64();
    if secs.fract() == 0.0 {
        format!("{}", timeout.as_secs())
    } else {
        format!("{secs}")
    }
}

/// The devices systemd's `DevicePolicy=closed` always allows (its static list), which the
/// standalone driver allows too.
pub fn closed_policy_devices() -> Vec<Device> {
    [
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
        "/dev/tty",
        "/dev/ptmx",
    ]
    .iter()
    .map(|node| Device {
        node: node.to_string(),
        modifier: "rwm".into(),
    })
    .chain(std::iter::once(Device {
        node: "char-pts".into(),
        modifier: "rw".into(),
    }))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn time_spans_as_systemd_reads_them() {
        for (text, secs) in [
            ("90", 90.0),
            ("1min", 60.0),
            ("1min 30s", 90.0),
            ("2.5s", 2.5),
            ("500ms", 0.5),
            ("1h", 3600.0),
            (" 2 s ", 2.0),
        ] {
            assert_eq!(parse_timespan(text).unwrap().as_secs_f64(), secs, "{text}");
        }
        assert_eq!(parse_timespan("infinity").unwrap(), Duration::MAX);
        for bad in ["", "soon", "1 fortnight", "-3s", "1..2s"] {
            assert!(parse_timespan(bad).is_err(), "{bad}");
        }
        assert_eq!(render_timeout(Duration::from_secs(90)), "90");
        assert_eq!(render_timeout(Duration::from_millis(2500)), "2.5");
        assert_eq!(render_timeout(Duration::MAX), "infinity");
    }

    #[test]
    fn devices_are_checked_and_read_back() {
        let tun = Device::new("/dev/net/tun", "rwm").unwrap();
        let pts = Device::new("char-pts", "").unwrap();
        assert_eq!(pts.modifier, "rwm");
        let text = render_devices(&[tun.clone(), pts.clone()]);
        assert_eq!(text, "/dev/net/tun,rwm char-pts,rwm");
        let conf = Conf::parse(
            &format!("{ALLOWED_DEVICES}=\"{text}\"\n"),
            Path::new("t.conf"),
        )
        .unwrap();
        assert_eq!(allowed_devices(&conf).unwrap(), [tun, pts]);
        for (node, modifier) in [
            ("fuse", "rw"),
            ("/dev/", "rw"),
            ("char-", "r"),
            ("/dev/a b", "r"),
            ("/dev/fuse", "rx"),
        ] {
            assert!(Device::new(node, modifier).is_err(), "{node} {modifier}");
        }
    }
}
