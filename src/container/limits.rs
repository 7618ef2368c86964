//! Resource limits of a container (`--memory-max`, `--cpu-quota`, `--tasks-max`), kept in the
//! conf under ncsh's own keys (NixOS's start script ignores them): `NCSH_MEMORY_MAX` in bytes,
//! `NCSH_CPU_QUOTA` in percent of one CPU (`150%` is one and a half), `NCSH_TASKS_MAX` a count.
//! The drivers apply them to the container's cgroup (see `host::cgroup`, `host::systemd`).

use super::conf::Conf;
use crate::error::{Error, Result};

pub const MEMORY_MAX_KEY: &str = "NCSH_MEMORY_MAX";
pub const CPU_QUOTA_KEY: &str = "NCSH_CPU_QUOTA";
pub const TASKS_MAX_KEY: &str = "NCSH_TASKS_MAX";

/// What a create or update asks for, as given (`None`: unchanged; `Some("")` is refused).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitOptions {
    pub memory_max: Option<String>,
    pub cpu_quota: Option<String>,
    pub tasks_max: Option<String>,
}

impl LimitOptions {
    pub fn is_empty(&self) -> bool {
        self.memory_max.is_none() && self.cpu_quota.is_none() && self.tasks_max.is_none()
    }

    /// The conf entries these options set, checked (a bad value is an error naming the flag).
    pub fn conf_entries(&self) -> Result<Vec<(&'static str, String)>> {
        let mut out = Vec::new();
        if let Some(v) = &self.memory_max {
            out.push((MEMORY_MAX_KEY, parse_memory("--memory-max", v)?.to_string()));
        }
        if let Some(v) = &self.cpu_quota {
            out.push((
                CPU_QUOTA_KEY,
                format!("{}%", parse_cpu_quota("--cpu-quota", v)?),
            ));
        }
        if let Some(v) = &self.tasks_max {
            out.push((TASKS_MAX_KEY, parse_tasks("--tasks-max", v)?.to_string()));
        }
        Ok(out)
    }
}

/// The limits of a conf, parsed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Bytes.
    pub memory_max: Option<u64>,
    /// Percent of one CPU.
    pub cpu_quota: Option<u64>,
    pub tasks_max: Option<u64>,
}

impl Limits {
    /// The limits in `conf`; a bad value there is an error naming the key.
    pub fn from_conf(conf: &Conf) -> Result<Limits> {
        Ok(Limits {
            memory_max: conf
                .non_empty(MEMORY_MAX_KEY)
                .map(|v| parse_memory(MEMORY_MAX_KEY, v))
                .transpose()?,
            cpu_quota: conf
                .non_empty(CPU_QUOTA_KEY)
                .map(|v| parse_cpu_quota(CPU_QUOTA_KEY, v))
                .transpose()?,
            tasks_max: conf
                .non_empty(TASKS_MAX_KEY)
                .map(|v| parse_tasks(TASKS_MAX_KEY, v))
                .transpose()?,
        })
    }

    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }
}

fn bad(what: &str, value: &str, expected: &str) -> Error {
    let shown: String = value.chars().take(40).collect();
    Error::Usage(format!("invalid value ‘{shown}’ for {what}: {expected}"))
}

/// A size: bytes, or a number with K, M, G or T (powers of 1024, as systemd reads MemoryMax).
pub fn parse_memory(what: &str, value: &str) -> Result<u64> {
    let expected = "expected a size such as 512M, 2G or 1073741824 (bytes), at least 1M";
    let v = value.trim();
    let (digits, unit) = match v.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => (&v[..at], &v[at..]),
        None => (v, ""),
    };
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(bad(what, value, expected)),
    };
    let n: u64 = digits.parse().map_err(|_| bad(what, value, expected))?;
    let bytes = n
        .checked_mul(1u64 << shift)
        .ok_or_else(|| bad(what, value, expected))?;
    // Below a megabyte not even systemd boots; the cgroup files take at most i64::MAX.
    if bytes < 1 << 20 || bytes > i64::MAX as u64 {
        return Err(bad(what, value, expected));
    }
    Ok(bytes)
}

/// A CPU quota in percent of one CPU (`50`, `50%`, `200%` for two CPUs).
pub fn parse_cpu_quota(what: &str, value: &str) -> Result<u64> {
    let expected = "expected a percentage of one CPU from 1% to 100000%, such as 50% or 200%";
    let v = value.trim();
    let n: u64 = v
        .strip_suffix('%')
        .unwrap_or(v)
        .parse()
        .map_err(|_| bad(what, value, expected))?;
    if n == 0 || n > 100_000 {
        return Err(bad(what, value, expected));
    }
    Ok(n)
}

/// A number of tasks (processes and threads), at least 10 (fewer cannot boot systemd).
pub fn parse_tasks(what: &str, value: &str) -> Result<u64> {
    let expected = "expected a number of tasks from 10 to 4194304";
    let n: u64 = value
        .trim()
        .parse()
        .map_err(|_| bad(what, value, expected))?;
    if !(10..=4_194_304).contains(&n) {
        return Err(bad(what, value, expected));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_percentages_and_counts() {
        assert_eq!(parse_memory("m", "512M").unwrap(), 512 << 20);
        assert_eq!(parse_memory("m", "2g").unwrap(), 2 << 30);
        assert_eq!(parse_memory("m", "1048576").unwrap(), 1 << 20);
        for bad in ["", "12", "1x", "-1M", "9999999999T", "1.5G", "M"] {
            let e = parse_memory("--memory-max", bad).unwrap_err().to_string();
            assert!(e.contains("for --memory-max"), "{bad}: {e}");
        }
        assert_eq!(parse_cpu_quota("c", "50%").unwrap(), 50);
        assert_eq!(parse_cpu_quota("c", "250").unwrap(), 250);
        for bad in ["0", "0%", "x", "-5%", "100001%", "%"] {
            assert!(parse_cpu_quota("c", bad).is_err(), "{bad}");
        }
        assert_eq!(parse_tasks("t", "50").unwrap(), 50);
        for bad in ["9", "x", "-1", "99999999"] {
            assert!(parse_tasks("t", bad).is_err(), "{bad}");
        }
        let opts = LimitOptions {
            memory_max: Some("64M".into()),
            cpu_quota: Some("50".into()),
            tasks_max: Some("50".into()),
        };
        assert_eq!(
            opts.conf_entries().unwrap(),
            [
                (MEMORY_MAX_KEY, (64u64 << 20).to_string()),
                (CPU_QUOTA_KEY, "50%".to_string()),
                (TASKS_MAX_KEY, "50".to_string())
            ]
        );
        let conf = Conf::parse("NCSH_TASKS_MAX=abc\n", std::path::Path::new("t")).unwrap();
        let e = Limits::from_conf(&conf).unwrap_err().to_string();
        assert!(e.contains("for NCSH_TASKS_MAX"), "{e}");
    }
}
