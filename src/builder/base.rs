//! The base system of a native container (ARCHITECTURE.md, "The native base system", "The trimmed boot"): an empty
//! `usr/` that nspawn binds the host's `/usr` onto read-only, `bin sbin lib lib64` links into it,
//! and a private `/etc` written here: identity files, users, a minimal PAM setup (so `su` and
//! root-login work), the host files `/usr` programs expect, and unit masks that cut boot time.
//! Everything is written through [`Root`], inside the container's root.

use std::fs;
use std::path::Path;

use crate::error::Result;
use crate::files::Root;

use super::sysusers;

/// The script nspawn runs as the container's PID 1: it configures the container side of the
/// veth from the `--setenv` variables, then becomes systemd: the host's, or the init given as
/// its first argument (a Nix-built system's `init`, as NixOS's container-init). It reads only
/// its environment and arguments.
pub const CONTAINER_INIT: &str = r#"#!/bin/bash
# ncsh container init: the container side of the veth, then the host's systemd as PID 1
# (or the init given as the first argument).
set -e
trap 'exit 0' RTMIN+3
# journald writes to /var/log/journal from its start (no systemd-journal-flush in the boot):
# the flag says /var is there, as it always is in a container.
mkdir -p /run/systemd/journal && : > /run/systemd/journal/flushed
# One `ip -batch` for all of it (one process, not one per address and route; ip takes the
# family from each address).
b=""
if [ -n "$HOST_ADDRESS$HOST_ADDRESS6$LOCAL_ADDRESS$LOCAL_ADDRESS6$HOST_BRIDGE$LOCAL_MAC_ADDRESS" ]; then
  b+=$'link set host0 name eth0\n'
  [ -z "$LOCAL_MAC_ADDRESS" ] || b+="link set dev eth0 address $LOCAL_MAC_ADDRESS"$'\n'
  b+=$'link set dev eth0 up\n'
  [ -z "$LOCAL_ADDRESS" ] || b+="addr add $LOCAL_ADDRESS dev eth0"$'\n'
  # nodad: a veth has two ends, so no duplicate to detect, and the address is usable at once.
  [ -z "$LOCAL_ADDRESS6" ] || b+="addr add $LOCAL_ADDRESS6 dev eth0 nodad"$'\n'
  for host in "$HOST_ADDRESS" "$HOST_ADDRESS6"; do
    [ -z "$host" ] || b+="route add ${host%/*} dev eth0"$'\n'"route add default via ${host%/*}"$'\n'
  done
fi
# The extra veths (containers.<name>.extraVeths): NAME,BRIDGE,HOST,HOST6,LOCAL,LOCAL6 each.
for veth in $NCSH_EXTRA_VETHS; do
  IFS=, read -r name bridge host host6 local local6 <<< "$veth"
  b+="link set dev $name up"$'\n'
  [ -z "$local" ] || b+="addr add $local dev $name"$'\n'
  [ -z "$local6" ] || b+="addr add $local6 dev $name nodad"$'\n'
  for a in "$host" "$host6"; do [ -z "$a" ] || b+="route add ${a%/*} dev $name"$'\n'; done
done
[ -z "$b" ] || ip -batch - <<< "$b"
set +e
case "$1" in
  /*) init=$1; shift; exec "$init" "$@" ;;
esac
exec /usr/lib/systemd/systemd "$@"
"#;

/// Where [`CONTAINER_INIT`] lives inside the container.
pub const CONTAINER_INIT_PATH: &str = "/etc/ncsh/container-init";

const PASSWD: &str = "root:x:0:0:System administrator:/root:/bin/bash\n\
messagebus:x:100:102::/nonexistent:/usr/sbin/nologin\n\
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
const GROUP: &str = "root:x:0:\nmessagebus:x:102:\nnogroup:x:65534:\n";
/// `*`: no password works, but the account is not "locked" (sshd refuses locked accounts).
const SHADOW: &str = "root:*:19000:0:99999:7:::\n";

const PAM_LOGIN: &str = "auth     optional   pam_faildelay.so delay=1000000\n\
auth     requisite  pam_nologin.so\n\
auth     required   pam_unix.so nullok\n\
account  required   pam_unix.so\n\
password required   pam_unix.so nullok yescrypt\n\
session  required   pam_unix.so\n\
session  optional   pam_loginuid.so\n\
session  optional   pam_keyinit.so force revoke\n\
session  optional   pam_env.so conffile=/dev/null readenv=1 envfile=/etc/environment\n\
session  optional   pam_systemd.so\n";
const PAM_SU: &str = "auth     sufficient pam_rootok.so\n\
auth     required   pam_unix.so\n\
account  required   pam_unix.so\n\
password required   pam_unix.so yescrypt\n\
session  required   pam_unix.so\n\
session  optional   pam_env.so conffile=/dev/null readenv=1 envfile=/etc/environment\n";
const PAM_OTHER: &str = "auth     required pam_warn.so\nauth     required pam_deny.so\n\
account  required pam_warn.so\naccount  required pam_deny.so\n\
password required pam_warn.so\npassword required pam_deny.so\n\
session  required pam_warn.so\nsession  required pam_deny.so\n";
const PAM_SYSTEMD_USER: &str = "account  required pam_unix.so\n\
auth     required pam_deny.so\n\
session  required pam_unix.so\n\
session  optional pam_loginuid.so\n\
session  optional pam_keyinit.so force revoke\n\
session  optional pam_systemd.so\n";

const NSSWITCH: &str = "passwd: files systemd\ngroup: files systemd\nshadow: files\n\
hosts: files dns\nprotocols: files\nservices: files\n";

/// Units nothing in a container needs (the `mask-basic` set): console getty, password agents,
/// initctl, utmp, the tmpfiles timer.
const MASKED_UNITS: [&str; 7] = [
    "console-getty.service",
    "getty.target",
    "systemd-ask-password-console.path",
    "systemd-ask-password-wall.path",
    "systemd-initctl.socket",
    "systemd-tmpfiles-clean.timer",
    "systemd-update-utmp.service",
];

/// Units the vendor's targets pull into every boot that a container starts only on demand
/// (ARCHITECTURE.md, "The trimmed boot"): each `(target, unit)` becomes a `/dev/null` link in
/// `/etc/systemd/system/TARGET.wants/`, which drops that one dependency and nothing else, so the
/// unit still starts when something asks for it. dbus is socket-activated; logind is
/// D-Bus-activated by the first login (pam_systemd); without `systemd-user-sessions` nothing
/// makes `/run/nologin` (its tmpfiles line is masked too, [`MASKED_CONFIGS`]); the journal
/// needs no flush because [`CONTAINER_INIT`] tells journald that `/var` is there; the runlevel
/// record goes with the utmp record already masked; hugetlbfs is for those who mount it.
const ON_DEMAND: [(&str, &str); 6] = [
    ("multi-user.target", "dbus.service"),
    ("multi-user.target", "systemd-logind.service"),
    ("multi-user.target", "systemd-user-sessions.service"),
    ("multi-user.target", "systemd-update-utmp-runlevel.service"),
    ("sysinit.target", "systemd-journal-flush.service"),
    ("sysinit.target", "dev-hugepages.mount"),
];

/// Units that stay out of the boot when the host's `/usr` gives them nothing to do in a
/// container: the kernel settings of `/usr/lib/sysctl.d` that are not per network namespace
/// are read-only inside, and nspawn populates `/dev` itself.
fn idle_in_a_container() -> Vec<(&'static str, &'static str)> {
    let lines = |dir: &str| -> Vec<String> {
        let Ok(entries) = fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| fs::read_to_string(e.path()).ok())
            .flat_map(|text| {
                text.lines()
                    .map(str::trim)
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .filter(|l| !l.is_empty() && !l.starts_with(['#', ';']))
            .collect()
    };
    let mut idle = Vec::new();
    let per_netns = |l: &String| l.trim_start_matches('-').trim_start().starts_with("net.");
    if !lines("/usr/lib/sysctl.d").iter().any(per_netns) {
        idle.push(("sysinit.target", "systemd-sysctl.service"));
    }
    let under_dev = |l: &String| {
        l.split_whitespace()
            .nth(1)
            .is_some_and(|p| p.starts_with("/dev"))
    };
    if !lines("/usr/lib/tmpfiles.d").iter().any(under_dev) {
        idle.push(("sysinit.target", "systemd-tmpfiles-setup-dev.service"));
    }
    idle
}

/// Configuration files of `/usr` masked in `/etc`: `/run/nologin` (made at boot, removed by
/// systemd-user-sessions, which is not in the boot: [`ON_DEMAND`]).
const MASKED_CONFIGS: [&str; 1] = ["etc/tmpfiles.d/systemd-nologin.conf"];

/// journald sized for a container: the hash tables of a journal file grow with its maximum
/// size (128 MiB by default on a large disk), and journald maps them: 3.7 MiB of its 5.2 MiB
/// PSS here. `services.journald.extraConfig` (`00-nixos.conf`, read after this) overrides it.
const JOURNALD_CONF: &str = "# Written by ncsh with the base system (journald.conf(5)).\n\
[Journal]\nSystemMaxFileSize=8M\n";
const JOURNALD_CONF_PATH: &str = "etc/systemd/journald.conf.d/00-container.conf";

/// Host files copied into the private `/etc` when the host has them.
const HOST_ETC_FILES: [&str; 3] = ["protocols", "services", "mime.types"];

/// The skeleton every start needs (nixos-container's start script makes the same), plus the
/// current container init. Idempotent and cheap.
pub fn ensure_skeleton(root: &Root) -> Result<()> {
    for (dir, mode) in [
        ("", 0o755),
        ("usr", 0o755),
        ("etc", 0o755),
        ("etc/ncsh", 0o755),
        ("var", 0o755),
        ("var/lib", 0o755),
        // journald keeps the journal here (Storage=auto), where `ncsh logs` reads it, also
        // after the container stopped.
        ("var/log", 0o755),
        ("var/log/journal", 0o2755),
        ("root", 0o700),
        ("tmp", 0o1777),
    ] {
        root.ensure_dir(dir, mode)?;
    }
    for dir in ["bin", "sbin", "lib", "lib64"] {
        root.symlink_if_missing(format!("usr/{dir}"), dir)?;
    }
    for file in ["etc/os-release", "etc/machine-id"] {
        if root.entry(file)?.is_none() {
            root.write(file, b"", 0o644)?;
        }
    }
    root.write(CONTAINER_INIT_PATH, CONTAINER_INIT.as_bytes(), 0o755)
}

/// The base users and groups, with those the host's `sysusers.d` declares (what the container's
/// systemd-sysusers would add at its first boot), and the stamp that tells systemd `/etc` is up
/// to date with `/usr`, so units with `ConditionNeedsUpdate=/etc` (sysusers, ldconfig) stay out
/// of the boot until the host's `/usr` changes.
fn write_users(root: &Root) -> Result<()> {
    let mut tables = sysusers::Tables::parse(PASSWD, GROUP, SHADOW);
    let dir = Path::new("/usr/lib/sysusers.d");
    let mut configs: Vec<_> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "conf"))
                .collect()
        })
        .unwrap_or_default();
    configs.sort();
    let texts: Vec<String> = configs
        .iter()
        .filter_map(|p| fs::read_to_string(p).ok())
        .collect();
    tables.apply(texts.iter().map(String::as_str));
    let [passwd, group, shadow] = tables.render();
    root.write("etc/passwd", passwd.as_bytes(), 0o644)?;
    root.write("etc/group", group.as_bytes(), 0o644)?;
    root.write("etc/shadow", shadow.as_bytes(), 0o600)?;
    if let Ok(usr) = fs::metadata("/usr") {
        use std::os::unix::fs::MetadataExt;
        let nsec = i128::from(usr.mtime()) * 1_000_000_000 + i128::from(usr.mtime_nsec());
        let stamp = format!(
            "# Written by ncsh with the base system: /etc has what /usr's sysusers.d asks for.\n\
             TIMESTAMP_NSEC={nsec}\n"
        );
        root.write("etc/.updated", stamp.as_bytes(), 0o644)?;
    }
    Ok(())
}

/// Write the whole base system of container `name` into `root`.
pub fn write_base_system(root: &Root, name: &str) -> Result<()> {
    ensure_skeleton(root)?;
    for dir in [
        "etc/pam.d",
        "etc/systemd/system",
        "etc/systemd/system-generators",
        "etc/nixos",
        "home",
    ] {
        root.ensure_dir(dir, 0o755)?;
    }
    let os_release = fs::read_to_string("/usr/lib/os-release")
        .or_else(|_| fs::read_to_string("/etc/os-release"))
        .unwrap_or_default();
    root.write("etc/os-release", os_release.as_bytes(), 0o644)?;
    root.write("etc/hostname", format!("{name}\n").as_bytes(), 0o644)?;
    let hosts = format!("127.0.0.1 localhost\n::1 localhost\n127.0.0.2 {name}\n");
    root.write("etc/hosts", hosts.as_bytes(), 0o644)?;
    root.write("etc/nsswitch.conf", NSSWITCH.as_bytes(), 0o644)?;
    write_users(root)?;
    for (service, text) in [
        ("login", PAM_LOGIN),
        ("su", PAM_SU),
        ("su-l", PAM_SU),
        ("other", PAM_OTHER),
        ("systemd-user", PAM_SYSTEMD_USER),
    ] {
        root.write(format!("etc/pam.d/{service}"), text.as_bytes(), 0o644)?;
    }
    for file in HOST_ETC_FILES {
        if let Ok(text) = fs::read(Path::new("/etc").join(file)) {
            root.write(Path::new("etc").join(file), &text, 0o644)?;
        }
    }
    root.write(JOURNALD_CONF_PATH, JOURNALD_CONF.as_bytes(), 0o644)?;
    for unit in MASKED_UNITS {
        root.symlink_if_missing("/dev/null", format!("etc/systemd/system/{unit}"))?;
    }
    for (target, unit) in ON_DEMAND.into_iter().chain(idle_in_a_container()) {
        root.symlink_if_missing(
            "/dev/null",
            format!("etc/systemd/system/{target}.wants/{unit}"),
        )?;
    }
    for config in MASKED_CONFIGS {
        root.symlink_if_missing("/dev/null", config)?;
    }
    root.symlink_if_missing(
        "/usr/lib/systemd/system/multi-user.target",
        "etc/systemd/system/default.target",
    )?;
    // Generators have nothing to do in these containers; masking them saves ~40 ms per boot.
    if let Ok(entries) = fs::read_dir("/usr/lib/systemd/system-generators") {
        for entry in entries.flatten() {
            let masked = Path::new("etc/systemd/system-generators").join(entry.file_name());
            root.symlink_if_missing("/dev/null", masked)?;
        }
    }
    Ok(())
}
