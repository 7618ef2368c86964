//! The base system of a native container (ARCHITECTURE.md, "The native base system"): an empty
//! `usr/` that nspawn binds the host's `/usr` onto read-only, `bin sbin lib lib64` links into it,
//! and a private `/etc` written here: identity files, users, a minimal PAM setup (so `su` and
//! root-login work), the host files `/usr` programs expect, and unit masks that cut boot time.
//! Everything is written through [`Root`], inside the container's root.

use std::fs;
use std::path::Path;

use crate::error::Result;
use crate::files::Root;

/// The script nspawn runs as the container's PID 1: it configures the container side of the
/// veth from the `--setenv` variables, then becomes systemd: the host's, or the init given as
/// its first argument (a Nix-built system's `init`, as NixOS's container-init). It reads only
/// its environment and arguments.
pub const CONTAINER_INIT: &str = r#"#!/bin/bash
# ncsh container init: the container side of the veth, then the host's systemd as PID 1
# (or the init given as the first argument).
set -e
trap 'exit 0' RTMIN+3
if [ -n "$HOST_ADDRESS$HOST_ADDRESS6$LOCAL_ADDRESS$LOCAL_ADDRESS6$HOST_BRIDGE$LOCAL_MAC_ADDRESS" ]; then
  ip link set host0 name eth0
  [ -z "$LOCAL_MAC_ADDRESS" ] || ip link set dev eth0 address "$LOCAL_MAC_ADDRESS"
  ip link set dev eth0 up
  [ -z "$LOCAL_ADDRESS" ] || ip addr add "$LOCAL_ADDRESS" dev eth0
  # nodad: a veth has two ends, so no duplicate to detect, and the address is usable at once.
  [ -z "$LOCAL_ADDRESS6" ] || ip -6 addr add "$LOCAL_ADDRESS6" dev eth0 nodad
  if [ -n "$HOST_ADDRESS" ]; then
    ip route add "${HOST_ADDRESS%/*}" dev eth0
    ip route add default via "${HOST_ADDRESS%/*}"
  fi
  if [ -n "$HOST_ADDRESS6" ]; then
    ip -6 route add "${HOST_ADDRESS6%/*}" dev eth0
    ip -6 route add default via "${HOST_ADDRESS6%/*}"
  fi
fi
# The extra veths (containers.<name>.extraVeths): NAME,BRIDGE,HOST,HOST6,LOCAL,LOCAL6 each.
for veth in $NCSH_EXTRA_VETHS; do
  IFS=, read -r name bridge host host6 local local6 <<< "$veth"
  ip link set dev "$name" up
  [ -z "$local" ] || ip addr add "$local" dev "$name"
  [ -z "$local6" ] || ip -6 addr add "$local6" dev "$name" nodad
  [ -z "$host" ] || ip route add "${host%/*}" dev "$name"
  [ -z "$host6" ] || ip -6 route add "${host6%/*}" dev "$name"
done
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
    root.write("etc/passwd", PASSWD.as_bytes(), 0o644)?;
    root.write("etc/group", GROUP.as_bytes(), 0o644)?;
    root.write("etc/shadow", SHADOW.as_bytes(), 0o600)?;
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
    for unit in MASKED_UNITS {
        root.symlink_if_missing("/dev/null", format!("etc/systemd/system/{unit}"))?;
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
