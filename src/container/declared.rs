//! A container as a host module declares it (`containers.<name>`, `ncsh apply FILE`), and the
//! conf it gets: the keys NixOS's containers module writes, in its order, so that NixOS's own
//! `container@.service` would start it the same. What NixOS bakes into the unit instead (the
//! ephemeral root, capabilities, tmpfs) goes into EXTRA_NSPAWN_FLAGS, where ncsh's drivers and
//! NixOS's start script both read it.

use std::path::{Path, PathBuf};

use super::address::parse_address;
use super::conf::Conf;
use super::nspawn_flags::{Bind, NspawnOptions};
use super::unit::{self, Device};
use crate::error::{Error, Result};

/// The conf key recording the file a container was applied from (NixOS ignores it: to
/// `container@.service` it is one more environment variable).
pub const DECLARED_IN: &str = "NCSH_DECLARED_IN";

/// The conf key holding the addresses of the extra veth pairs (`extraVeths`): NixOS bakes them
/// into its unit, ncsh's drivers read them here. Entries are separated by spaces, each
/// `NAME,HOSTBRIDGE,HOSTADDRESS,HOSTADDRESS6,LOCALADDRESS,LOCALADDRESS6` (empty when unset).
pub const EXTRA_VETHS: &str = "NCSH_EXTRA_VETHS";

/// One `extraVeths.<name>`: a second veth pair, `NAME` on both sides, with its own addresses
/// (or its host side in a bridge).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtraVeth {
    pub name: String,
    pub host_bridge: Option<String>,
    pub host_address: Option<String>,
    pub host_address6: Option<String>,
    pub local_address: Option<String>,
    pub local_address6: Option<String>,
}

impl ExtraVeth {
    fn fields(&self) -> [&Option<String>; 5] {
        [
            &self.host_bridge,
            &self.host_address,
            &self.host_address6,
            &self.local_address,
            &self.local_address6,
        ]
    }
}

/// The extra veths of a conf (malformed entries are skipped: the conf's writer checked them).
pub fn extra_veths(conf: &Conf) -> Vec<ExtraVeth> {
    conf.non_empty(EXTRA_VETHS)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|entry| {
            let f: Vec<&str> = entry.split(',').collect();
            let opt = |i: usize| f.get(i).filter(|v| !v.is_empty()).map(|v| v.to_string());
            (f.len() == 6 && !f[0].is_empty()).then(|| ExtraVeth {
                name: f[0].to_string(),
                host_bridge: opt(1),
                host_address: opt(2),
                host_address6: opt(3),
                local_address: opt(4),
                local_address6: opt(5),
            })
        })
        .collect()
}

/// One `forwardPorts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardPort {
    pub protocol: String,
    pub host_port: u16,
    pub container_port: Option<u16>,
}

/// Where a declared container's system comes from when Nix builds it instead of ncsh
/// building its `config` (a Nix host only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NixSource {
    /// `path`: a system already built (`/nix/store/…-nixos-system-…`), the conf's SYSTEM_PATH.
    Path(String),
    /// `flake`: `REF[#ATTR]`, built with `nix build`, the conf's FLAKE.
    Flake(String),
}

impl NixSource {
    /// The option that gives it.
    pub fn option(&self) -> &'static str {
        match self {
            NixSource::Path(_) => "path",
            NixSource::Flake(_) => "flake",
        }
    }
}

/// The options of `containers.<name>` that make its conf (not `config`, which is built).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Declared {
    pub name: String,
    /// The file that declares it (absolute).
    pub file: PathBuf,
    /// `path` or `flake`; None: ncsh builds `config`.
    pub nix: Option<NixSource>,
    pub auto_start: bool,
    pub private_network: bool,
    pub host_bridge: Option<String>,
    pub host_address: Option<String>,
    pub host_address6: Option<String>,
    pub local_address: Option<String>,
    pub local_address6: Option<String>,
    pub local_mac_address: Option<String>,
    pub network_namespace: Option<String>,
    pub forward_ports: Vec<ForwardPort>,
    /// `bindMounts`, in the order of their names (NixOS's `attrValues`).
    pub binds: Vec<Bind>,
    pub ephemeral: bool,
    pub enable_tun: bool,
    pub copy_resolv_conf: bool,
    /// `privateUsers`: `no`, `identity`, `pick` or a base UID.
    pub private_users: String,
    pub interfaces: Vec<String>,
    pub macvlans: Vec<String>,
    pub tmpfs: Vec<String>,
    pub additional_capabilities: Vec<String>,
    pub extra_flags: Vec<String>,
    pub restart_if_changed: bool,
    pub extra_veths: Vec<ExtraVeth>,
    /// `allowedDevices` (`enableTun` adds `/dev/net/tun rwm`, as NixOS).
    pub allowed_devices: Vec<Device>,
    /// `timeoutStartSec`, parsed (None when not given).
    pub timeout_start: Option<std::time::Duration>,
}

impl Declared {
    /// `containers.NAME.OPTION`, for messages.
    pub fn option(&self, option: &str) -> String {
        format!("containers.{}.{option}", self.name)
    }

    fn refuse(&self, option: &str, why: impl std::fmt::Display) -> Error {
        Error::Usage(format!(
            "{} (in {}): {why}",
            self.option(option),
            self.file.display()
        ))
    }

    /// The nspawn options NixOS passes for it (bind mounts, the ephemeral root, capabilities
    /// with CAP_NET_ADMIN for `enableTun`, tmpfs, `extraFlags`).
    pub fn nspawn(&self) -> NspawnOptions {
        let mut capabilities = self.additional_capabilities.clone();
        if self.enable_tun && !capabilities.iter().any(|c| c == "CAP_NET_ADMIN") {
            capabilities.push("CAP_NET_ADMIN".into());
        }
        NspawnOptions {
            binds: self.binds.clone(),
            capabilities,
            tmpfs: self.tmpfs.clone(),
            ephemeral: self.ephemeral,
            extra_flags: {
                // `--network-veth-extra=NAME` as NixOS's start script passes it.
                let mut flags: Vec<String> = self
                    .extra_veths
                    .iter()
                    .map(|v| format!("--network-veth-extra={}", v.name))
                    .collect();
                flags.extend(self.extra_flags.iter().cloned());
                (!flags.is_empty()).then(|| flags.join(" "))
            },
        }
    }

    /// The conf, as NixOS's module writes it (SYSTEM_PATH for `path`, FLAKE for `flake`,
    /// neither when ncsh builds `config`), with `extra_nspawn_flags` (see
    /// [`Declared::nspawn`], checked by the caller) and the file it was applied from. Values
    /// that cannot be written are refused naming the option.
    pub fn conf(&self, extra_nspawn_flags: Option<String>) -> Result<Conf> {
        let mut conf = Conf::new();
        match &self.nix {
            Some(NixSource::Path(path)) => {
                if !path.starts_with('/') || !conf_word(path) {
                    return Err(self.refuse(
                        "path",
                        format!(
                            "‘{path}’ must be an absolute path (a built system, \
                             /nix/store/…-nixos-system-…), without spaces or quotes"
                        ),
                    ));
                }
                conf.push("SYSTEM_PATH", path.clone());
            }
            Some(NixSource::Flake(flake)) => {
                if !conf_word(flake) {
                    return Err(self.refuse(
                        "flake",
                        format!("‘{flake}’ must be a flake reference, without spaces or quotes"),
                    ));
                }
                conf.push("FLAKE", flake.clone());
            }
            None => {}
        }
        conf.push(
            "COPY_RESOLV_CONF",
            if self.copy_resolv_conf { "1" } else { "0" },
        );
        let plain = |option: &str, value: &str| -> Result<()> {
            if !conf_word(value) {
                return Err(self.refuse(
                    option,
                    format!("‘{value}’ must be non-empty, without spaces or quotes"),
                ));
            }
            Ok(())
        };
        if self.private_network {
            conf.push("PRIVATE_NETWORK", "1");
            if let Some(bridge) = &self.host_bridge {
                plain("hostBridge", bridge)?;
                conf.push("HOST_BRIDGE", bridge.clone());
            }
            if !self.forward_ports.is_empty() {
                let ports: Vec<String> = self
                    .forward_ports
                    .iter()
                    .map(|p| {
                        format!(
                            "{}:{}:{}",
                            p.protocol,
                            p.host_port,
                            p.container_port.unwrap_or(p.host_port)
                        )
                    })
                    .collect();
                for p in &self.forward_ports {
                    if !matches!(p.protocol.as_str(), "tcp" | "udp") {
                        return Err(self.refuse(
                            "forwardPorts",
                            format!("protocol ‘{}’: nspawn forwards tcp or udp", p.protocol),
                        ));
                    }
                }
                conf.push("HOST_PORT", ports.join(","));
            }
            for (option, key, value, v6) in [
                ("hostAddress", "HOST_ADDRESS", &self.host_address, false),
                ("hostAddress6", "HOST_ADDRESS6", &self.host_address6, true),
                ("localAddress", "LOCAL_ADDRESS", &self.local_address, false),
                (
                    "localAddress6",
                    "LOCAL_ADDRESS6",
                    &self.local_address6,
                    true,
                ),
            ] {
                if let Some(value) = value {
                    let parsed = parse_address(value).map_err(|why| self.refuse(option, why))?;
                    // As NixOS, the IPv4-named options may hold IPv6 addresses (ip detects
                    // the family); the IPv6 ones must.
                    if v6 && !parsed.addr().is_ipv6() {
                        return Err(
                            self.refuse(option, format!("‘{value}’ is not an IPv6 address"))
                        );
                    }
                    conf.push(key, value.trim().to_string());
                }
            }
            if let Some(mac) = &self.local_mac_address {
                conf.push("LOCAL_MAC_ADDRESS", mac.clone());
            }
        } else {
            for (option, given) in [
                ("hostAddress", self.host_address.is_some()),
                ("localAddress", self.local_address.is_some()),
                ("hostAddress6", self.host_address6.is_some()),
                ("localAddress6", self.local_address6.is_some()),
                ("hostBridge", self.host_bridge.is_some()),
                ("forwardPorts", !self.forward_ports.is_empty()),
            ] {
                if given {
                    return Err(self.refuse(
                        option,
                        "needs privateNetwork = true (without it the container shares the \
                         host's network)",
                    ));
                }
            }
        }
        if let Some(netns) = &self.network_namespace {
            if self.private_network || !self.interfaces.is_empty() {
                return Err(self.refuse(
                    "networkNamespace",
                    "is mutually exclusive to privateNetwork and interfaces",
                ));
            }
            plain("networkNamespace", netns)?;
            conf.push("NETWORK_NAMESPACE_PATH", netns.clone());
        }
        conf.push("PRIVATE_USERS", self.private_users.clone());
        for (option, key, names) in [
            ("interfaces", "INTERFACES", &self.interfaces),
            ("macvlans", "MACVLANS", &self.macvlans),
        ] {
            for n in names {
                plain(option, n)?;
            }
            conf.push(key, names.join(" "));
        }
        if self.auto_start {
            conf.push("AUTO_START", "1");
        }
        conf.push("EXTRA_NSPAWN_FLAGS", extra_nspawn_flags.unwrap_or_default());
        // What NixOS bakes into the unit, as ncsh's keys (container/unit.rs).
        let mut devices = self.allowed_devices.clone();
        let tun = Device {
            node: "/dev/net/tun".into(),
            modifier: "rwm".into(),
        };
        if self.enable_tun && !devices.contains(&tun) {
            devices.push(tun);
        }
        if !devices.is_empty() {
            conf.push(unit::ALLOWED_DEVICES, unit::render_devices(&devices));
        }
        if let Some(timeout) = self.timeout_start
            && timeout != std::time::Duration::from_secs(60)
        {
            conf.push(unit::TIMEOUT_START_SEC, unit::render_timeout(timeout));
        }
        if !self.extra_veths.is_empty() {
            let mut entries = Vec::new();
            for v in &self.extra_veths {
                let option = format!("extraVeths.{}", v.name);
                if v.name.is_empty()
                    || v.name.len() > 15
                    || !v
                        .name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
                {
                    return Err(self.refuse(
                        &option,
                        "the name must be an interface name (letters, digits, - and _, at most 15)",
                    ));
                }
                for (what, value) in [
                    ("hostBridge", &v.host_bridge),
                    ("hostAddress", &v.host_address),
                    ("hostAddress6", &v.host_address6),
                    ("localAddress", &v.local_address),
                    ("localAddress6", &v.local_address6),
                ] {
                    if let Some(value) = value {
                        plain(&format!("{option}.{what}"), value)?;
                        if value.contains(',') {
                            return Err(self.refuse(&format!("{option}.{what}"), "holds a ‘,’"));
                        }
                        if what != "hostBridge" {
                            parse_address(value)
                                .map_err(|why| self.refuse(&format!("{option}.{what}"), why))?;
                        }
                    }
                }
                let fields: Vec<&str> = v
                    .fields()
                    .iter()
                    .map(|f| f.as_deref().unwrap_or_default())
                    .collect();
                entries.push(format!("{},{}", v.name, fields.join(",")));
            }
            conf.push(EXTRA_VETHS, entries.join(" "));
        }
        conf.push(DECLARED_IN, self.file.display().to_string());
        Ok(conf)
    }
}

/// Can `value` be a conf value as it is (non-empty, no spaces, quotes or shell characters)?
fn conf_word(value: &str) -> bool {
    !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "\"'\\$`".contains(c))
}

/// Does changing `old` to `new` change how nspawn is started (anything but AUTO_START, and
/// the system: a new SYSTEM_PATH or FLAKE is switched to live, as `update` does)?
pub fn nspawn_level_change(old: &Conf, new: &Conf) -> bool {
    let strip = |c: &Conf| {
        let mut c = c.clone();
        for key in ["AUTO_START", "SYSTEM_PATH", "FLAKE"] {
            c.remove(key);
        }
        c
    };
    strip(old) != strip(new)
}

/// The file a container was applied from, if it was.
pub fn declared_in(conf: &Conf) -> Option<&Path> {
    conf.non_empty(DECLARED_IN).map(Path::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web() -> Declared {
        Declared {
            name: "web".into(),
            file: "/etc/ncsh/web.nix".into(),
            private_network: true,
            host_address: Some("10.235.1.1".into()),
            local_address: Some("10.235.1.2".into()),
            forward_ports: vec![ForwardPort {
                protocol: "tcp".into(),
                host_port: 8080,
                container_port: Some(80),
            }],
            binds: vec![Bind::parse("--bind", "/srv/www:/var/www", true).unwrap()],
            auto_start: true,
            copy_resolv_conf: true,
            private_users: "no".into(),
            restart_if_changed: true,
            ..Default::default()
        }
    }

    #[test]
    fn the_conf_is_nixos_modules_with_the_file_it_came_from() {
        let d = web();
        let flags = d.nspawn().conf_value().unwrap();
        assert_eq!(
            d.conf(flags).unwrap().render(),
            "COPY_RESOLV_CONF=1\nPRIVATE_NETWORK=1\nHOST_PORT=tcp:8080:80\nHOST_ADDRESS=10.235.1.1\n\
             LOCAL_ADDRESS=10.235.1.2\nPRIVATE_USERS=no\nINTERFACES=\"\"\nMACVLANS=\"\"\n\
             AUTO_START=1\nEXTRA_NSPAWN_FLAGS=\" --bind-ro=/srv/www:/var/www\"\n\
             NCSH_DECLARED_IN=/etc/ncsh/web.nix\n"
        );
        let tun = Declared {
            enable_tun: true,
            extra_flags: vec!["--private-users-ownership=auto".into()],
            ..web()
        };
        assert_eq!(
            tun.nspawn().conf_value().unwrap().unwrap(),
            " --bind-ro=/srv/www:/var/www --capability=CAP_NET_ADMIN \
             --private-users-ownership=auto"
        );
    }

    #[test]
    fn bad_values_name_the_option() {
        for (d, want) in [
            (
                Declared {
                    private_network: false,
                    ..web()
                },
                "containers.web.hostAddress (in /etc/ncsh/web.nix): needs privateNetwork",
            ),
            (
                Declared {
                    host_address: Some("10.1.1.300".into()),
                    ..web()
                },
                "containers.web.hostAddress (in /etc/ncsh/web.nix): expected an IPv4",
            ),
            (
                Declared {
                    host_address6: Some("10.1.1.3".into()),
                    local_address6: Some("fc00::2".into()),
                    ..web()
                },
                "containers.web.hostAddress6",
            ),
            (
                Declared {
                    host_bridge: Some("br 0".into()),
                    ..web()
                },
                "containers.web.hostBridge",
            ),
        ] {
            let err = d.conf(None).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn only_auto_start_is_not_an_nspawn_level_change() {
        let d = web();
        let a = d.conf(None).unwrap();
        let b = Declared {
            auto_start: false,
            ..web()
        }
        .conf(None)
        .unwrap();
        assert!(!nspawn_level_change(&a, &b));
        let c = Declared {
            ephemeral: true,
            ..web()
        };
        let c = c.conf(c.nspawn().conf_value().unwrap()).unwrap();
        assert!(nspawn_level_change(&a, &c));
        assert_eq!(declared_in(&a), Some(Path::new("/etc/ncsh/web.nix")));
        // A new system is switched to live, as `update` does.
        let system = |nix: NixSource| Declared {
            nix: Some(nix),
            ..web()
        };
        let one = system(NixSource::Path("/nix/store/a-nixos-system".into()));
        let two = system(NixSource::Path("/nix/store/b-nixos-system".into()));
        let flake = system(NixSource::Flake("/src#web".into()));
        let (one, two, flake) = (
            one.conf(None).unwrap(),
            two.conf(None).unwrap(),
            flake.conf(None).unwrap(),
        );
        assert!(one != two && !nspawn_level_change(&one, &two));
        assert!(!nspawn_level_change(&one, &flake));
        assert_eq!(one.get("SYSTEM_PATH"), Some("/nix/store/a-nixos-system"));
        assert_eq!(flake.get("FLAKE"), Some("/src#web"));
    }

    #[test]
    fn extra_veths_go_into_the_flags_and_their_own_key() {
        let d = Declared {
            extra_veths: vec![
                ExtraVeth {
                    name: "veth1".into(),
                    host_bridge: Some("br1".into()),
                    ..Default::default()
                },
                ExtraVeth {
                    name: "veth2".into(),
                    host_address: Some("10.235.3.1".into()),
                    local_address: Some("10.235.3.2/24".into()),
                    ..Default::default()
                },
            ],
            ..web()
        };
        let flags = d.nspawn().conf_value().unwrap();
        assert!(
            flags
                .as_deref()
                .unwrap()
                .ends_with(" --network-veth-extra=veth1 --network-veth-extra=veth2"),
            "{flags:?}"
        );
        let conf = d.conf(flags).unwrap();
        assert_eq!(
            conf.get(EXTRA_VETHS),
            Some("veth1,br1,,,, veth2,,10.235.3.1,,10.235.3.2/24,")
        );
        assert_eq!(extra_veths(&conf), d.extra_veths);
        let bad = Declared {
            extra_veths: vec![ExtraVeth {
                name: "a-very-long-veth-name".into(),
                ..Default::default()
            }],
            ..web()
        };
        assert!(
            bad.conf(None)
                .unwrap_err()
                .to_string()
                .contains("extraVeths.a-very-long")
        );
    }
}
