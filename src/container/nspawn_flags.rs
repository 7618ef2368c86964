//! `EXTRA_NSPAWN_FLAGS`: the systemd-nspawn options a conf adds to the start, as NixOS writes
//! them and as its start script reads them (ARCHITECTURE.md, "NixOS's start script and the
//! conf").
//!
//! NixOS's start script appends `${EXTRA_NSPAWN_FLAGS-}` unquoted, so bash splits it at spaces,
//! tabs and newlines and does no quote removal (quotes are literal characters), but would
//! expand a glob. ncsh splits the same way and refuses what would differ between the two
//! readings (quotes, backslashes, glob characters), so that a conf means one thing to both.
//! Only nspawn options are passed on, and none that would take the container away from its
//! supervisor (`-D`, `-M`, `--register`, `--keep-unit`, `--notify-ready`, `--kill-signal`, …).

use crate::error::{Error, Result};

/// Characters a flag may not hold: bash would glob-expand `*?[`, and quotes or backslashes are
/// literal to bash but quoting to a reader of shell words; `$` and `` ` `` cannot be written
/// into a conf value unescaped.
const REFUSED_CHARS: &str = "\"'\\*?[]$`;&|<>(){}";

/// Options taking a value, passed on as `--NAME=VALUE`.
const VALUE_OPTIONS: [&str; 36] = [
    "bind",
    "bind-ro",
    "bind-user",
    "tmpfs",
    "overlay",
    "overlay-ro",
    "inaccessible",
    "capability",
    "drop-capability",
    "ambient-capability",
    "no-new-privileges",
    "property",
    "private-users",
    "private-users-ownership",
    "setenv",
    "system-call-filter",
    "rlimit",
    "oom-score-adjust",
    "cpu-affinity",
    "personality",
    "hostname",
    "resolv-conf",
    "timezone",
    "link-journal",
    "network-veth-extra",
    "network-interface",
    "network-macvlan",
    "network-ipvlan",
    "network-bridge",
    "network-zone",
    "network-namespace-path",
    "port",
    "volatile",
    "load-credential",
    "set-credential",
    "suppress-sync",
];

/// Options without a value (`--private-users` may have one or not).
const SWITCH_OPTIONS: [&str; 6] = [
    "ephemeral",
    "read-only",
    "private-network",
    "network-veth",
    "private-users",
    "quiet",
];

/// Options ncsh sets itself and a conf may not change, with why.
const REFUSED_OPTIONS: [(&str, &str); 14] = [
    ("directory", "ncsh runs the container's own root"),
    ("image", "ncsh runs the container's own root"),
    ("template", "ncsh runs the container's own root"),
    ("machine", "the machine name is the container's name"),
    ("register", "ncsh's driver decides the registration"),
    ("keep-unit", "ncsh's driver decides the unit"),
    ("notify-ready", "ncsh waits for the container's readiness"),
    ("kill-signal", "ncsh stops the container with SIGRTMIN+3"),
    ("boot", "ncsh runs the container's init itself"),
    ("as-pid2", "ncsh runs the container's init itself"),
    ("user", "the container's init must run as root"),
    ("console", "ncsh's driver owns the console"),
    ("pipe", "ncsh's driver owns the console"),
    (
        "settings",
        "a .nspawn file could change the options ncsh sets",
    ),
];

/// A bind mount as NixOS's `bindMounts.<name>` gives it: `--bind=HOST:CONTAINER`, or
/// `--bind=PATH` when the host path is the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub host: Option<String>,
    pub container: String,
    pub read_only: bool,
}

impl Bind {
    /// `HOST[:CONTAINER]` as `--bind`/`--bind-ro` take it (`flag` names it in errors).
    pub fn parse(flag: &str, value: &str, read_only: bool) -> Result<Bind> {
        let (host, container) = match value.split_once(':') {
            Some((host, container)) => (host, container),
            None => (value, value),
        };
        for (what, path) in [("host", host), ("container", container)] {
            check_path(flag, what, path)?;
        }
        Ok(Bind {
            host: (host != container).then(|| host.to_string()),
            container: container.to_string(),
            read_only,
        })
    }

    /// The flag as NixOS's `mkBindFlag` writes it, with its leading space.
    pub fn flag(&self) -> String {
        let prefix = if self.read_only {
            " --bind-ro="
        } else {
            " --bind="
        };
        match &self.host {
            Some(host) => format!("{prefix}{host}:{}", self.container),
            None => format!("{prefix}{}", self.container),
        }
    }
}

fn check_path(flag: &str, what: &str, path: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::Usage(format!(
            "invalid {flag} value: the {what} path ‘{path}’ {why}"
        )))
    };
    if !path.starts_with('/') {
        return bad("must be absolute");
    }
    if path.contains(':') {
        return bad("may not hold a ‘:’ (it separates the host and container paths)");
    }
    if let Some(c) = refused_char(path) {
        return bad(&format!(
            "holds ‘{c}’: EXTRA_NSPAWN_FLAGS, where it is written, is split at spaces by the \
             NixOS start script, which would also expand globs; choose a path without it"
        ));
    }
    Ok(())
}

fn refused_char(word: &str) -> Option<char> {
    word.chars()
        .find(|c| c.is_whitespace() || c.is_control() || REFUSED_CHARS.contains(*c))
}

/// The words of an `EXTRA_NSPAWN_FLAGS` value (or an `--extra-flags` value, `source` naming
/// which in errors), split as NixOS's start script splits it, each checked to be an nspawn
/// option ncsh passes on.
pub fn split(value: &str, source: &str) -> Result<Vec<String>> {
    let words: Vec<String> = value
        .split([' ', '\t', '\n'])
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    for word in &words {
        check_word(word, source)?;
    }
    Ok(words)
}

fn check_word(word: &str, source: &str) -> Result<()> {
    let refuse = |why: String| Err(Error::Usage(format!("{source}: ‘{word}’ {why}")));
    if let Some(c) = refused_char(word) {
        return refuse(format!(
            "holds ‘{c}’, which NixOS's start script would take literally or expand (it \
             splits the flags at spaces, nothing more): write each flag as --NAME=VALUE \
             without quotes, spaces or globs"
        ));
    }
    let Some(body) = word.strip_prefix("--") else {
        if word.starts_with('-') {
            return refuse(
                "is a short option: write its long form (--NAME or --NAME=VALUE), which ncsh \
                 can check"
                    .into(),
            );
        }
        return refuse(
            "is not an option: the flags hold systemd-nspawn options only, each --NAME or \
             --NAME=VALUE"
                .into(),
        );
    };
    let (name, value) = match body.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (body, None),
    };
    if let Some((_, why)) = REFUSED_OPTIONS.iter().find(|(n, _)| *n == name) {
        return refuse(format!("is refused: {why}"));
    }
    let takes_value = VALUE_OPTIONS.contains(&name);
    let switch = SWITCH_OPTIONS.contains(&name);
    match value {
        Some(v) if takes_value && !v.is_empty() => Ok(()),
        None if switch => Ok(()),
        None if takes_value => refuse(format!(
            "needs its value in the same word (--{name}=VALUE): the next word would be read \
             as its value"
        )),
        Some(_) if switch => refuse(format!("takes no value (write --{name})")),
        Some(_) if takes_value => refuse("has an empty value".into()),
        _ => {
            let mut known: Vec<&str> = VALUE_OPTIONS
                .iter()
                .chain(&SWITCH_OPTIONS)
                .copied()
                .collect();
            known.sort();
            known.dedup();
            refuse(format!(
                "is not a systemd-nspawn option ncsh passes on (it passes --{})",
                known.join(", --")
            ))
        }
    }
}

/// The nspawn options of a create or update, as `--bind`, `--bind-ro`, `--capability`,
/// `--tmpfs`, `--ephemeral` and `--extra-flags` give them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NspawnOptions {
    pub binds: Vec<Bind>,
    pub capabilities: Vec<String>,
    pub tmpfs: Vec<String>,
    pub ephemeral: bool,
    /// `--extra-flags`, as given (split and checked by [`NspawnOptions::conf_value`]).
    pub extra_flags: Option<String>,
}

impl NspawnOptions {
    pub fn is_empty(&self) -> bool {
        *self == NspawnOptions::default()
    }

    /// The `EXTRA_NSPAWN_FLAGS` value, as NixOS's module writes it: the bind flags (each with
    /// its leading space), then a space and the other flags joined by spaces (`--ephemeral`,
    /// `--capability=A,B`, `--tmpfs=P` each, then `--extra-flags`). None when there are none.
    pub fn conf_value(&self) -> Result<Option<String>> {
        let mut extra: Vec<String> = Vec::new();
        if self.ephemeral {
            extra.push("--ephemeral".into());
        }
        for cap in &self.capabilities {
            let plain = cap
                .strip_prefix("CAP_")
                .or_else(|| cap.strip_prefix("cap_"));
            let ok = cap.eq_ignore_ascii_case("all")
                || plain.is_some_and(|p| {
                    !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                });
            if !ok {
                return Err(Error::Usage(format!(
                    "invalid --capability value ‘{cap}’: expected a capability name such as \
                     CAP_NET_ADMIN (see capabilities(7)), or all"
                )));
            }
        }
        if !self.capabilities.is_empty() {
            extra.push(format!("--capability={}", self.capabilities.join(",")));
        }
        for path in &self.tmpfs {
            let (dir, _options) = path.split_once(':').unwrap_or((path, ""));
            check_path("--tmpfs", "container", dir)?;
            if let Some(c) = refused_char(path) {
                return Err(Error::Usage(format!(
                    "invalid --tmpfs value ‘{path}’: it holds ‘{c}’"
                )));
            }
            extra.push(format!("--tmpfs={path}"));
        }
        if let Some(flags) = &self.extra_flags {
            extra.extend(split(flags, "--extra-flags")?);
        }
        let mut value: String = self.binds.iter().map(Bind::flag).collect();
        if !extra.is_empty() {
            value.push(' ');
            value.push_str(&extra.join(" "));
        }
        Ok((!value.is_empty()).then_some(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_are_written_as_nixos_writes_them() {
        let rw = Bind::parse("--bind", "/srv/data:/data", false).unwrap();
        let ro = Bind::parse("--bind-ro", "/etc/ssl", true).unwrap();
        assert_eq!(rw.flag(), " --bind=/srv/data:/data");
        assert_eq!(ro.flag(), " --bind-ro=/etc/ssl");
        let opts = NspawnOptions {
            binds: vec![rw, ro],
            capabilities: vec!["CAP_NET_ADMIN".into(), "CAP_MKNOD".into()],
            tmpfs: vec!["/var".into(), "/tmp/x:mode=0700".into()],
            ephemeral: true,
            extra_flags: Some(" --private-users=pick  --drop-capability=CAP_SYS_CHROOT".into()),
        };
        assert_eq!(
            opts.conf_value().unwrap().unwrap(),
            " --bind=/srv/data:/data --bind-ro=/etc/ssl --ephemeral \
             --capability=CAP_NET_ADMIN,CAP_MKNOD --tmpfs=/var --tmpfs=/tmp/x:mode=0700 \
             --private-users=pick --drop-capability=CAP_SYS_CHROOT"
        );
        assert_eq!(NspawnOptions::default().conf_value().unwrap(), None);
        // Only extra flags: NixOS's " " + joined.
        let only = NspawnOptions {
            extra_flags: Some("--read-only".into()),
            ..Default::default()
        };
        assert_eq!(only.conf_value().unwrap().unwrap(), " --read-only");
    }

    #[test]
    fn bad_binds_are_refused_naming_the_flag() {
        for (value, want) in [
            ("relative", "must be absolute"),
            ("/a:b", "must be absolute"),
            ("/a b", "holds ‘ ’"),
            ("/a*", "holds ‘*’"),
            ("/a:/b:/c", "‘:’"),
        ] {
            let err = Bind::parse("--bind", value, false).unwrap_err().to_string();
            assert!(
                err.contains("--bind") && err.contains(want),
                "{value}: {err}"
            );
        }
    }

    #[test]
    fn flags_split_as_the_start_script_splits_them() {
        assert_eq!(
            split(" --bind-ro=/a:/b\t--bind=/c\n--ephemeral ", "X").unwrap(),
            ["--bind-ro=/a:/b", "--bind=/c", "--ephemeral"]
        );
        assert!(split("", "X").unwrap().is_empty());
        assert_eq!(
            split("--private-users --private-users=pick", "X")
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn flags_that_are_not_passed_on_are_refused_with_why() {
        for (flags, want) in [
            ("-D /x", "short option"),
            ("--directory=/x", "own root"),
            ("--machine=x", "machine name"),
            ("--register=yes", "registration"),
            ("--keep-unit", "unit"),
            ("--notify-ready=no", "readiness"),
            ("--kill-signal=SIGTERM", "SIGRTMIN+3"),
            ("--boot", "init itself"),
            ("--bind /x", "same word"),
            ("--ephemeral=yes", "takes no value"),
            ("--bind=", "empty value"),
            ("--frobnicate", "not a systemd-nspawn option"),
            ("plain", "not an option"),
            ("--bind='/a b'", "holds ‘'’"),
            ("--tmpfs=/x*", "holds ‘*’"),
        ] {
            let err = split(flags, "EXTRA_NSPAWN_FLAGS").unwrap_err().to_string();
            assert!(
                err.contains("EXTRA_NSPAWN_FLAGS") && err.contains(want),
                "{flags}: {err}"
            );
        }
    }

    #[test]
    fn capabilities_and_tmpfs_are_checked() {
        for opts in [
            NspawnOptions {
                capabilities: vec!["NET_ADMIN; rm".into()],
                ..Default::default()
            },
            NspawnOptions {
                tmpfs: vec!["var".into()],
                ..Default::default()
            },
        ] {
            assert_eq!(opts.conf_value().unwrap_err().kind(), "Usage");
        }
    }
}
