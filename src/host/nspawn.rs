//! The systemd-nspawn command line, built in one place for every driver. It follows the NixOS
//! start script (ARCHITECTURE.md, "NixOS's start script and the conf"): `--keep-unit -M NAME -D ROOT`, the network flags from the conf,
//! `--notify-ready=yes --kill-signal=SIGRTMIN+3`, the binds, `--setenv` of the address variables,
//! then the container init.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::builder::base::CONTAINER_INIT_PATH;
use crate::container::{Conf, Paths};
use crate::error::Result;
use crate::files::ensure_dir;

/// The variables NixOS passes into the container with `--setenv`.
const SETENV_KEYS: [&str; 9] = [
    "PRIVATE_NETWORK",
    "PRIVATE_USERS",
    "HOST_BRIDGE",
    "HOST_ADDRESS",
    "LOCAL_ADDRESS",
    "HOST_ADDRESS6",
    "LOCAL_ADDRESS6",
    "LOCAL_MAC_ADDRESS",
    "HOST_PORT",
];

const LD_SO_CACHE: &str = "/etc/ld.so.cache";
const ALTERNATIVES: &str = "/etc/alternatives";

/// PATH inside the container.
pub const CONTAINER_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How the driver runs nspawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Supervision {
    /// ncsh supervises nspawn itself: no machined, no systemd scope.
    Standalone,
    /// nspawn runs as a systemd unit and registers with machined.
    SystemdUnit,
}

/// Does this conf give the container a veth (nixos-container's rule)?
pub fn wants_veth(conf: &Conf) -> bool {
    [
        "HOST_ADDRESS",
        "LOCAL_ADDRESS",
        "HOST_ADDRESS6",
        "LOCAL_ADDRESS6",
        "LOCAL_MAC_ADDRESS",
    ]
    .iter()
    .any(|k| conf.non_empty(k).is_some())
}

/// The NixOS start script's view of a Nix-built container: the host's Nix paths it binds and
/// the system whose `init` it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NixSystem {
    /// The per-container profile directory, `/nix/var/nix/profiles` inside.
    pub profile_dir: PathBuf,
    /// The per-container GC roots directory, `/nix/var/nix/gcroots` inside.
    pub gcroots_dir: PathBuf,
    /// Bind the nix-daemon socket directory (when the host has one).
    pub daemon_socket: bool,
    /// The conf's SYSTEM_PATH, if any.
    pub system_path: Option<String>,
}

impl NixSystem {
    /// The system as the container sees it: `${SYSTEM_PATH:-/nix/var/nix/profiles/system}`.
    pub fn system(&self) -> &str {
        self.system_path
            .as_deref()
            .unwrap_or("/nix/var/nix/profiles/system")
    }

    /// The same system seen from the host (the store is shared, the profile is bound).
    pub fn host_system(&self) -> PathBuf {
        match &self.system_path {
            Some(path) => PathBuf::from(path),
            None => self.profile_dir.join("system"),
        }
    }

    /// The container's init: `${SYSTEM_PATH:-/nix/var/nix/profiles/system}/init`.
    pub fn init(&self) -> String {
        format!("{}/init", self.system())
    }

    /// Make the profile and GC roots directories nspawn binds, 0755, as the NixOS start script.
    pub fn create_dirs(&self) -> Result<()> {
        ensure_dir(&self.profile_dir, 0o755)?;
        ensure_dir(&self.gcroots_dir, 0o755)
    }
}

/// Is container `name` Nix-built (its conf sets SYSTEM_PATH, or its profile has a system)?
pub fn nix_system(paths: &Paths, name: &str, conf: &Conf) -> Option<NixSystem> {
    let profile_dir = paths.profile(name);
    let system_path = conf.non_empty("SYSTEM_PATH").map(str::to_string);
    if system_path.is_none() && std::fs::symlink_metadata(profile_dir.join("system")).is_err() {
        return None;
    }
    Some(NixSystem {
        profile_dir,
        gcroots_dir: paths.gcroots(name),
        daemon_socket: Path::new(DAEMON_SOCKET).exists(),
        system_path,
    })
}

const DAEMON_SOCKET: &str = "/nix/var/nix/daemon-socket";

/// nspawn's files for machine `machine` run on `root`, which nothing removes without systemd:
/// the propagate directory and the image locks ([`remove_image_locks`]).
pub fn remove_machine_files(machine: &str, root: &Path) -> Result<()> {
    crate::files::remove_path(&Path::new(NSPAWN_RUN).join("propagate").join(machine))?;
    remove_image_locks(root)
}

/// nspawn's image locks of `root`: `.#NAME.lck` beside it and `locks/inode-DEV:INO` of the
/// directory.
pub fn remove_image_locks(root: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    if let (Some(parent), Some(base)) = (root.parent(), root.file_name()) {
        let mut lock = std::ffi::OsString::from(".#");
        lock.push(base);
        lock.push(".lck");
        crate::files::remove_path(&parent.join(lock))?;
    }
    if let Ok(meta) = std::fs::metadata(root) {
        crate::files::remove_path(&Path::new(NSPAWN_RUN).join("locks").join(format!(
            "inode-{}:{}",
            meta.dev(),
            meta.ino()
        )))?;
    }
    Ok(())
}

const NSPAWN_RUN: &str = "/run/systemd/nspawn";

/// The arguments after `systemd-nspawn`; `nix` for a Nix-built container. `conf_path` names
/// the conf in the error about an EXTRA_NSPAWN_FLAGS ncsh does not pass on.
pub fn args(
    name: &str,
    root: &Path,
    conf: &Conf,
    conf_path: &Path,
    supervision: Supervision,
    nix: Option<&NixSystem>,
) -> Result<Vec<OsString>> {
    // Appended last, unquoted, as the NixOS start script does.
    let extra = conf.extra_nspawn_flags(conf_path)?;
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |s: String| args.push(s.into());
    push("--keep-unit".into());
    if supervision == Supervision::Standalone {
        push("--register=no".into());
    }
    push("-M".into());
    push(name.into());
    push("-D".into());
    args.push(root.as_os_str().to_owned());
    let mut push = |s: String| args.push(s.into());
    if conf.get("PRIVATE_NETWORK") == Some("1") {
        push("--private-network".into());
    }
    // `pick` or a positive base UID would also map the /nix binds (`:idmap`), as NixOS does.
    let private_users = conf.non_empty("PRIVATE_USERS");
    if let Some(users) = private_users {
        push(format!("--private-users={users}"));
    }
    let idmap =
        if private_users.is_some_and(|u| u == "pick" || u.parse::<u64>().is_ok_and(|n| n > 0)) {
            ":idmap"
        } else {
            ""
        };
    if let Some(bridge) = conf.non_empty("HOST_BRIDGE") {
        push(format!("--network-bridge={bridge}"));
    } else if wants_veth(conf) {
        push("--network-veth".into());
    }
    if let Some(ports) = conf.non_empty("HOST_PORT") {
        for port in ports.split(',').filter(|p| !p.is_empty()) {
            push(format!("--port={port}"));
        }
    }
    if let Some(netns) = conf.non_empty("NETWORK_NAMESPACE_PATH") {
        push(format!("--network-namespace-path={netns}"));
    }
    for (key, flag) in [
        ("INTERFACES", "--network-interface"),
        ("MACVLANS", "--network-macvlan"),
    ] {
        for item in conf.non_empty(key).unwrap_or_default().split_whitespace() {
            push(format!("{flag}={item}"));
        }
    }
    push("--notify-ready=yes".into());
    push("--kill-signal=SIGRTMIN+3".into());
    if let Some(nix) = nix {
        if idmap.is_empty() {
            push("--bind-ro=/nix/store".into());
            push("--bind-ro=/nix/var/nix/db".into());
            if nix.daemon_socket {
                push(format!("--bind-ro={DAEMON_SOCKET}"));
            }
        } else {
            for dir in ["/nix/store", "/nix/var/nix/db"] {
                push(format!("--bind-ro={dir}:{dir}{idmap}"));
            }
            if nix.daemon_socket {
                push(format!("--bind-ro={DAEMON_SOCKET}:{DAEMON_SOCKET}{idmap}"));
            }
        }
        push(format!(
            "--bind={}:/nix/var/nix/profiles{idmap}",
            nix.profile_dir.display()
        ));
        push(format!(
            "--bind={}:/nix/var/nix/gcroots{idmap}",
            nix.gcroots_dir.display()
        ));
    }
    push("--bind-ro=/usr".into());
    // The host's linker cache and alternatives describe the host's /usr, which the container
    // shares: bound read-only, they stay right when the host's packages change (without the
    // cache every exec searches ten library directories; without the alternatives awk, vi,
    // which … dangle).
    for host_file in [LD_SO_CACHE, ALTERNATIVES] {
        if Path::new(host_file).exists() {
            push(format!("--bind-ro={host_file}"));
        }
    }
    push("--link-journal=no".into());
    // /etc/localtime is the container's own (time.timeZone), not a copy of the host's.
    push("--timezone=off".into());
    for key in SETENV_KEYS {
        push(format!(
            "--setenv={key}={}",
            conf.get(key).unwrap_or_default()
        ));
    }
    push(format!("--setenv=PATH={CONTAINER_PATH}"));
    // The container side of the extra veths (`extraVeths`), for the container init.
    if let Some(veths) = conf.non_empty(crate::container::declared::EXTRA_VETHS) {
        push(format!(
            "--setenv={}={veths}",
            crate::container::declared::EXTRA_VETHS
        ));
    }
    for flag in extra {
        push(flag);
    }
    push(CONTAINER_INIT_PATH.into());
    if let Some(nix) = nix {
        push(nix.init());
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(text: &str) -> Conf {
        Conf::parse(text, Path::new("t")).unwrap()
    }

    fn strings(args: Result<Vec<OsString>>) -> Vec<String> {
        args.unwrap()
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn every_conf_variable_of_the_start_script_is_read() {
        let c = conf(
            "PRIVATE_NETWORK=1\nPRIVATE_USERS=pick\nHOST_ADDRESS6=fc00::1\nLOCAL_ADDRESS6=fc00::2\n\
             NETWORK_NAMESPACE_PATH=/run/netns/x\nINTERFACES=\"eth1 eth2\"\nMACVLANS=\"eth3\"\n\
             EXTRA_NSPAWN_FLAGS=\" --bind=/srv:/data --bind-ro=/etc/ssl --ephemeral --tmpfs=/var\"\n",
        );
        let nix = NixSystem {
            profile_dir: "/p".into(),
            gcroots_dir: "/g".into(),
            daemon_socket: false,
            system_path: None,
        };
        let a = strings(args(
            "foo",
            Path::new("/r"),
            &c,
            Path::new("t"),
            Supervision::Standalone,
            Some(&nix),
        ));
        for want in [
            "--private-users=pick",
            "--network-veth",
            "--network-namespace-path=/run/netns/x",
            "--network-interface=eth1",
            "--network-interface=eth2",
            "--network-macvlan=eth3",
            "--bind-ro=/nix/store:/nix/store:idmap",
            "--bind=/p:/nix/var/nix/profiles:idmap",
            "--setenv=PRIVATE_USERS=pick",
            "--setenv=LOCAL_ADDRESS6=fc00::2",
        ] {
            assert!(a.contains(&want.to_string()), "{want} in {a:?}");
        }
        // The extra flags come last, before the init, in their order.
        let n = a.len();
        assert_eq!(
            a[n - 6..n - 2],
            [
                "--bind=/srv:/data",
                "--bind-ro=/etc/ssl",
                "--ephemeral",
                "--tmpfs=/var"
            ]
        );
        let bad = conf("EXTRA_NSPAWN_FLAGS=\"--kill-signal=SIGKILL\"\n");
        let err = args(
            "foo",
            Path::new("/r"),
            &bad,
            Path::new("/etc/nixos-containers/foo.conf"),
            Supervision::Standalone,
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("foo.conf: EXTRA_NSPAWN_FLAGS"), "{err}");
    }

    #[test]
    fn imperative_container() {
        let c = conf(
            "PRIVATE_NETWORK=1\nHOST_ADDRESS=10.233.1.1\nLOCAL_ADDRESS=10.233.1.2\nHOST_BRIDGE=\nHOST_PORT=\nAUTO_START=0\n",
        );
        let a = strings(args(
            "foo",
            Path::new("/var/lib/nixos-containers/foo"),
            &c,
            Path::new("t"),
            Supervision::Standalone,
            None,
        ));
        assert_eq!(
            &a[..7],
            [
                "--keep-unit",
                "--register=no",
                "-M",
                "foo",
                "-D",
                "/var/lib/nixos-containers/foo",
                "--private-network"
            ]
        );
        assert_eq!(a[7], "--network-veth");
        assert!(a.contains(&"--notify-ready=yes".to_string()));
        assert!(a.contains(&"--kill-signal=SIGRTMIN+3".to_string()));
        assert!(a.contains(&"--bind-ro=/usr".to_string()));
        assert!(a.contains(&"--setenv=LOCAL_ADDRESS=10.233.1.2".to_string()));
        assert!(a.contains(&"--setenv=HOST_BRIDGE=".to_string()));
        assert_eq!(a.last().unwrap(), CONTAINER_INIT_PATH);
    }

    #[test]
    fn bridge_ports_and_systemd_unit() {
        let c = conf(
            "PRIVATE_NETWORK=1\nHOST_ADDRESS=10.233.1.1\nLOCAL_ADDRESS=10.233.1.2\nHOST_BRIDGE=br0\nHOST_PORT=tcp:8080:80,udp:53\n",
        );
        let a = strings(args(
            "foo",
            Path::new("/r"),
            &c,
            Path::new("t"),
            Supervision::SystemdUnit,
            None,
        ));
        assert!(!a.contains(&"--register=no".to_string()));
        assert!(a.contains(&"--network-bridge=br0".to_string()));
        assert!(!a.contains(&"--network-veth".to_string()));
        assert!(
            a.contains(&"--port=tcp:8080:80".to_string())
                && a.contains(&"--port=udp:53".to_string())
        );
    }

    #[test]
    fn no_network_without_addresses() {
        let a = strings(args(
            "foo",
            Path::new("/r"),
            &conf("PRIVATE_NETWORK=0\n"),
            Path::new("t"),
            Supervision::Standalone,
            None,
        ));
        assert!(
            !a.iter()
                .any(|x| x.starts_with("--network") || x == "--private-network")
        );
    }

    #[test]
    fn nix_built_container() {
        let nix = NixSystem {
            profile_dir: "/nix/var/nix/profiles/per-container/foo".into(),
            gcroots_dir: "/nix/var/nix/gcroots/per-container/foo".into(),
            daemon_socket: true,
            system_path: None,
        };
        let c = conf("PRIVATE_NETWORK=1\nHOST_ADDRESS=10.233.1.1\nLOCAL_ADDRESS=10.233.1.2\n");
        let a = strings(args(
            "foo",
            Path::new("/r"),
            &c,
            Path::new("t"),
            Supervision::Standalone,
            Some(&nix),
        ));
        let kill = a
            .iter()
            .position(|x| x == "--kill-signal=SIGRTMIN+3")
            .unwrap();
        assert_eq!(
            a[kill + 1..kill + 6],
            [
                "--bind-ro=/nix/store",
                "--bind-ro=/nix/var/nix/db",
                "--bind-ro=/nix/var/nix/daemon-socket",
                "--bind=/nix/var/nix/profiles/per-container/foo:/nix/var/nix/profiles",
                "--bind=/nix/var/nix/gcroots/per-container/foo:/nix/var/nix/gcroots",
            ]
        );
        assert_eq!(
            a[a.len() - 2..],
            [CONTAINER_INIT_PATH, "/nix/var/nix/profiles/system/init"]
        );
        let nix = NixSystem {
            daemon_socket: false,
            system_path: Some("/nix/store/abc-system".into()),
            ..nix
        };
        let a = strings(args(
            "foo",
            Path::new("/r"),
            &c,
            Path::new("t"),
            Supervision::Standalone,
            Some(&nix),
        ));
        assert!(!a.iter().any(|x| x.contains("daemon-socket")));
        assert_eq!(a.last().unwrap(), "/nix/store/abc-system/init");
    }

    #[test]
    fn nix_system_is_detected_by_profile_or_system_path() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path());
        assert_eq!(
            nix_system(&paths, "foo", &conf("PRIVATE_NETWORK=1\n")),
            None
        );
        let with_path = nix_system(&paths, "foo", &conf("SYSTEM_PATH=/nix/store/x\n")).unwrap();
        assert_eq!(with_path.init(), "/nix/store/x/init");
        assert_eq!(with_path.host_system(), Path::new("/nix/store/x"));
        std::fs::create_dir_all(paths.profile("foo")).unwrap();
        std::os::unix::fs::symlink("system-1-link", paths.profile("foo").join("system")).unwrap();
        let found = nix_system(&paths, "foo", &conf("")).unwrap();
        assert_eq!(found.profile_dir, paths.profile("foo"));
        assert_eq!(found.gcroots_dir, paths.gcroots("foo"));
        assert_eq!(found.system(), "/nix/var/nix/profiles/system");
        assert_eq!(found.host_system(), paths.profile("foo").join("system"));
        std::fs::remove_dir_all(paths.profile("foo")).unwrap();
        found.create_dirs().unwrap();
        assert!(paths.profile("foo").is_dir() && paths.gcroots("foo").is_dir());
    }
}
