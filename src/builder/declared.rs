//! `ncsh apply FILE`: FILE is a NixOS host module setting `containers.<name>`. It is evaluated
//! with ncsh's module system against `stdlib/nix/containers.nix` (NixOS's names, types and
//! defaults). The host side reads every option but `config` as plain data
//! ([`declared_containers`]); a container's build reads its `config` from the same file again
//! ([`container_module`]), in the evaluation of its own configuration, so a function-valued
//! `config` needs no serializing.

use std::path::Path;

use super::modules::{evaluate_declared, to_plain};
use super::native::{eval_error, eval_errors, module_args};
use super::plain::Value as Plain;
use crate::container::declared::{Declared, ExtraVeth, ForwardPort, NixSource};
use crate::container::options::Bind;
use crate::container::unit::{Device, parse_timespan};
use crate::error::{Error, Result};
use crate::nixlang::{Attrs, EvalError, Evaluator, Location, SourceMap, Thunk, Value};

const DECLS: &str = include_str!("../../stdlib/nix/containers.nix");
const DECLS_NAME: &str = "<ncsh>/stdlib/nix/containers.nix";

/// FILE's `containers` (lazy), with the module arguments `args`.
fn containers_value(ev: &mut Evaluator, args: &Attrs, file: &Path) -> Result<Value> {
    let decls = ev
        .eval_text(
            DECLS,
            SourceMap::new(Path::new(DECLS_NAME), DECLS, 0),
            Path::new("/"),
        )
        .map_err(eval_error)?;
    let modules = vec![
        (Thunk::value(decls), DECLS_NAME.to_string()),
        (
            Thunk::value(Value::Path(file.into())),
            file.display().to_string(),
        ),
    ];
    let config = evaluate_declared(ev, modules, args.clone()).map_err(eval_errors)?;
    let Value::Attrs(config) = config else {
        return Err(Error::Build(format!(
            "{}: the configuration is not a set",
            file.display()
        )));
    };
    match config.get("containers") {
        Some(t) => ev.force(t).map_err(eval_error),
        None => Ok(Value::attrs(Attrs::new())),
    }
}

/// The containers FILE declares, every option but `config` read (and type-checked) as plain
/// data. Errors of all containers are reported together.
pub fn declared_containers(file: &Path) -> Result<Vec<Declared>> {
    let mut ev = Evaluator::new();
    ev.track_positions();
    let args = module_args(&mut ev).map_err(eval_error)?;
    let Value::Attrs(containers) = containers_value(&mut ev, &args, file)? else {
        return Err(Error::Build(format!(
            "{}: containers is not a set",
            file.display()
        )));
    };
    let mut out = Vec::new();
    let mut errors: Vec<EvalError> = Vec::new();
    for (name, thunk) in containers.iter() {
        match plain_container(&mut ev, name, thunk) {
            Ok((plain, has_config)) => match from_plain(name, file, &plain, has_config) {
                Ok(d) => out.push(d),
                Err(e) => errors.push(EvalError::at(&Location::new(file, 0, 0), e.to_string())),
            },
            Err(mut e) => errors.append(&mut e),
        }
    }
    if !errors.is_empty() {
        return Err(eval_errors(errors));
    }
    Ok(out)
}

/// Container `name`'s options but `config`, as plain data, and whether `config` is defined.
fn plain_container(
    ev: &mut Evaluator,
    name: &str,
    thunk: &Thunk,
) -> std::result::Result<(Plain, bool), Vec<EvalError>> {
    let Value::Attrs(options) = ev.force(thunk).map_err(|e| vec![e])? else {
        return Err(vec![EvalError::at(
            &Location::new("<containers>", 0, 0),
            format!("containers.{name} is not a set"),
        )]);
    };
    let mut out = std::collections::BTreeMap::new();
    let mut errors = Vec::new();
    let mut has_config = false;
    for (key, t) in options.iter() {
        if &**key == "config" {
            // Null (containers.nix's default) when not defined.
            match ev.force(t) {
                Ok(v) => has_config = !matches!(v, Value::Null),
                Err(e) => errors.push(e),
            }
            continue;
        }
        if &**key == "specialArgs" {
            continue;
        }
        let path = ["containers".into(), name.into(), key.clone()];
        match ev.force(t).and_then(|v| to_plain(ev, &v, &path)) {
            Ok(v) => {
                out.insert(key.to_string(), v);
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok((Plain::Attrs(out), has_config))
    } else {
        Err(errors)
    }
}

fn from_plain(name: &str, file: &Path, plain: &Plain, has_config: bool) -> Result<Declared> {
    let empty = std::collections::BTreeMap::new();
    let get = |key: &str| plain.as_attrs().unwrap_or(&empty).get(key);
    let refuse = |key: &str, why: &str| {
        Error::Usage(format!(
            "containers.{name}.{key} (in {}): {why}",
            file.display()
        ))
    };
    let text = |key: &str| -> Option<String> {
        match get(key) {
            Some(Plain::String(s)) => Some(s.clone()),
            Some(Plain::Path(p)) => Some(p.display().to_string()),
            _ => None,
        }
    };
    // As NixOS: `path` is the system, which `config` or `flake` make; one of the three.
    let nix = match (text("path"), text("flake")) {
        (Some(_), Some(_)) => {
            return Err(Error::Usage(format!(
                "containers.{name}.path and containers.{name}.flake (in {}) cannot both be \
                 set: path is a built system, flake builds one; set one of them",
                file.display()
            )));
        }
        (Some(path), None) => Some(NixSource::Path(path)),
        (None, Some(flake)) => Some(NixSource::Flake(flake)),
        (None, None) => None,
    };
    if let Some(source) = &nix
        && has_config
    {
        let option = source.option();
        let why = match source {
            NixSource::Path(_) => "path is the system built from config",
            NixSource::Flake(_) => "the flake holds the configuration",
        };
        return Err(Error::Usage(format!(
            "containers.{name}.config and containers.{name}.{option} (in {}) cannot both be \
             set: {why}; set one of them",
            file.display()
        )));
    }
    let flag = |key: &str| get(key).and_then(Plain::as_bool).unwrap_or(false);
    let texts = |key: &str| -> Vec<String> {
        match get(key) {
            Some(Plain::List(items)) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    };
    let mut forward_ports = Vec::new();
    if let Some(Plain::List(items)) = get("forwardPorts") {
        for item in items {
            let field = |k: &str| item.as_attrs().and_then(|m| m.get(k));
            let port = |k: &str| {
                field(k)
                    .and_then(Plain::as_int)
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|p| *p > 0)
            };
            forward_ports.push(ForwardPort {
                protocol: field("protocol")
                    .and_then(Plain::as_str)
                    .unwrap_or("tcp")
                    .to_string(),
                host_port: port("hostPort")
                    .ok_or_else(|| refuse("forwardPorts", "hostPort must be a port (1-65535)"))?,
                container_port: port("containerPort"),
            });
        }
    }
    let mut binds = Vec::new();
    if let Some(Plain::Attrs(mounts)) = get("bindMounts") {
        for (attr, mount) in mounts {
            let field = |k: &str| mount.as_attrs().and_then(|m| m.get(k));
            let mount_point = field("mountPoint")
                .and_then(Plain::as_str)
                .unwrap_or(attr)
                .to_string();
            let read_only = field("isReadOnly").and_then(Plain::as_bool).unwrap_or(true);
            let value = match field("hostPath").and_then(Plain::as_str) {
                Some(host) => format!("{host}:{mount_point}"),
                None => mount_point,
            };
            let option = format!("containers.{name}.bindMounts.\"{attr}\"");
            binds.push(Bind::parse(&option, &value, read_only)?);
        }
    }
    let mut allowed_devices = Vec::new();
    if let Some(Plain::List(items)) = get("allowedDevices") {
        for (i, item) in items.iter().enumerate() {
            let field = |k: &str| {
                item.as_attrs()
                    .and_then(|m| m.get(k))
                    .and_then(Plain::as_str)
                    .unwrap_or_default()
            };
            let device = Device::new(field("node"), field("modifier"))
                .map_err(|why| refuse(&format!("allowedDevices.{i}"), &why))?;
            allowed_devices.push(device);
        }
    }
    let timeout_start = match text("timeoutStartSec") {
        Some(t) => Some(parse_timespan(&t).map_err(|why| refuse("timeoutStartSec", &why))?),
        None => None,
    };
    let mut extra_veths = Vec::new();
    if let Some(Plain::Attrs(veths)) = get("extraVeths") {
        for (veth, v) in veths {
            let field = |k: &str| {
                v.as_attrs()
                    .and_then(|m| m.get(k))
                    .and_then(Plain::as_str)
                    .map(str::to_string)
            };
            let forwards = v
                .as_attrs()
                .and_then(|m| m.get("forwardPorts"))
                .is_some_and(|p| !matches!(p, Plain::List(l) if l.is_empty()));
            if forwards {
                return Err(refuse(
                    &format!("extraVeths.{veth}.forwardPorts"),
                    "ports are forwarded to the main veth only (nspawn's --port)",
                ));
            }
            extra_veths.push(ExtraVeth {
                name: veth.clone(),
                host_bridge: field("hostBridge"),
                host_address: field("hostAddress"),
                host_address6: field("hostAddress6"),
                local_address: field("localAddress"),
                local_address6: field("localAddress6"),
            });
        }
    }
    let private_users = match get("privateUsers") {
        Some(Plain::Int(n)) => n.to_string(),
        Some(Plain::String(s)) => s.clone(),
        _ => "no".to_string(),
    };
    Ok(Declared {
        name: name.to_string(),
        file: file.to_path_buf(),
        nix,
        auto_start: flag("autoStart"),
        private_network: flag("privateNetwork"),
        host_bridge: text("hostBridge"),
        host_address: text("hostAddress"),
        host_address6: text("hostAddress6"),
        local_address: text("localAddress"),
        local_address6: text("localAddress6"),
        local_mac_address: text("localMacAddress"),
        network_namespace: text("networkNamespace"),
        forward_ports,
        binds,
        ephemeral: flag("ephemeral"),
        enable_tun: flag("enableTun"),
        copy_resolv_conf: get("copyResolvConf")
            .and_then(Plain::as_bool)
            .unwrap_or(true),
        private_users,
        interfaces: texts("interfaces"),
        macvlans: texts("macvlans"),
        tmpfs: texts("tmpfs"),
        additional_capabilities: texts("additionalCapabilities"),
        extra_flags: texts("extraFlags"),
        restart_if_changed: get("restartIfChanged")
            .and_then(Plain::as_bool)
            .unwrap_or(true),
        extra_veths,
        allowed_devices,
        timeout_start,
    })
}

/// Container `name`'s `config` in FILE, as a module of the configuration being evaluated in
/// `ev` (with its module arguments `args`); None when FILE no longer declares it.
pub(crate) fn container_module(
    ev: &mut Evaluator,
    args: &Attrs,
    file: &Path,
    name: &str,
) -> Result<Option<Thunk>> {
    let Value::Attrs(containers) = containers_value(ev, args, file)? else {
        return Ok(None);
    };
    let Some(container) = containers.get(name) else {
        return Ok(None);
    };
    let Value::Attrs(options) = ev.force(container).map_err(eval_error)? else {
        return Ok(None);
    };
    let Some(config) = options.get("config") else {
        return Ok(None);
    };
    // Not defined (null): an empty module.
    if matches!(ev.force(config).map_err(eval_error)?, Value::Null) {
        return Ok(Some(Thunk::value(Value::attrs(Attrs::new()))));
    }
    Ok(Some(config.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared(text: &str) -> Result<Vec<Declared>> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("host.nix");
        std::fs::write(&file, text).unwrap();
        declared_containers(&file)
    }

    #[test]
    fn nixos_names_types_and_defaults() {
        let got = declared(
            r#"{ lib, ... }: {
              containers.web = {
                privateNetwork = true;
                hostAddress = "10.235.9.1";
                localAddress = "10.235.9.2";
                forwardPorts = [ { hostPort = 8080; containerPort = 80; } { hostPort = 53; protocol = "udp"; } ];
                bindMounts."/var/www" = { hostPath = "/srv/www"; };
                bindMounts."/data".isReadOnly = false;
                autoStart = true;
                config = { pkgs, ... }: { services.nginx.enable = true; };
              };
              containers.db = { };
            }"#,
        )
        .unwrap();
        let names: Vec<&str> = got.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["db", "web"]);
        let (db, web) = (&got[0], &got[1]);
        assert!(!db.private_network && !db.auto_start && db.restart_if_changed);
        assert_eq!(db.private_users, "no");
        assert!(web.private_network && web.auto_start);
        assert_eq!(
            web.forward_ports,
            [
                ForwardPort {
                    protocol: "tcp".into(),
                    host_port: 8080,
                    container_port: Some(80)
                },
                ForwardPort {
                    protocol: "udp".into(),
                    host_port: 53,
                    container_port: None
                },
            ]
        );
        assert_eq!(
            web.nspawn().conf_value().unwrap().unwrap(),
            " --bind=/data --bind-ro=/srv/www:/var/www"
        );
    }

    #[test]
    fn bad_values_and_unknown_options_are_reported_at_their_definition() {
        let err = declared("{ containers.web.autoStrat = true; }")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("autoStrat") && err.contains("autoStart"),
            "{err}"
        );
        let err = declared("{\n  containers.web.privateNetwork = \"yes\";\n}")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("privateNetwork") && err.contains("host.nix:2"),
            "{err}"
        );
        let err = declared("{ containers.web.forwardPorts = [ { hostPort = 70000; } ]; }")
            .unwrap_err()
            .to_string();
        assert!(err.contains("hostPort"), "{err}");
        for (text, both) in [
            (
                "{ containers.web.path = /nix/store/x; containers.web.config = { }; }",
                ["containers.web.config", "containers.web.path"],
            ),
            (
                "{ containers.web.flake = \"/src#web\"; containers.web.config = { pkgs, ... }: { }; }",
                ["containers.web.config", "containers.web.flake"],
            ),
            (
                "{ containers.web.path = \"/nix/store/x\"; containers.web.flake = \"/src\"; }",
                ["containers.web.path", "containers.web.flake"],
            ),
        ] {
            let err = declared(text).unwrap_err().to_string();
            assert!(
                both.iter().all(|o| err.contains(o)) && err.contains("host.nix"),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn path_and_flake_are_the_system_nix_builds() {
        let got = declared(
            r#"{
              containers.a.path = /nix/store/abc-nixos-system-a;
              containers.b = { flake = "/src#web"; autoStart = true; };
              containers.c.config = { };
            }"#,
        )
        .unwrap();
        assert_eq!(
            got[0].nix,
            Some(NixSource::Path("/nix/store/abc-nixos-system-a".into()))
        );
        assert_eq!(got[1].nix, Some(NixSource::Flake("/src#web".into())));
        assert_eq!(got[2].nix, None);
        // As NixOS's module writes them: first in the conf.
        let conf = got[0].conf(None).unwrap().render();
        assert!(
            conf.starts_with("SYSTEM_PATH=/nix/store/abc-nixos-system-a\nCOPY_RESOLV_CONF=1\n"),
            "{conf}"
        );
        let conf = got[1].conf(None).unwrap().render();
        assert!(
            conf.starts_with("FLAKE=/src#web\nCOPY_RESOLV_CONF=1\n"),
            "{conf}"
        );
        assert!(!conf.contains("SYSTEM_PATH"), "{conf}");
        let err = declared(r#"{ containers.a.path = "nixos-system"; }"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("containers.a.path"), "{err}");
        let spaced = declared(r#"{ containers.a.path = "/nix/store/a b"; }"#).unwrap();
        let err = spaced[0].conf(None).unwrap_err().to_string();
        assert!(err.contains("containers.a.path"), "{err}");
    }
}
