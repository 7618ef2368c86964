//! The module system against the NixOS manual's rules, with the real `lib` and `pkgs`.

use std::path::Path;

use super::*;
use crate::builder::native::{module_args, snippet_module};
use crate::builder::options::{OptType, OptionDecl};

fn decls() -> Declarations {
    let mut d = Declarations::default();
    for (path, ty, default) in [
        ("services.openssh.enable", "bool", Plain::Bool(false)),
        (
            "services.openssh.ports",
            "listOf port",
            Plain::List(vec![Plain::Int(22)]),
        ),
        (
            "networking.firewall.allowedTCPPorts",
            "listOf port",
            Plain::List(vec![]),
        ),
        ("networking.hostName", "str", Plain::String(String::new())),
        ("users.users.<name>.uid", "nullOr int", Plain::Null),
        (
            "users.users.<name>.isNormalUser",
            "bool",
            Plain::Bool(false),
        ),
        (
            "environment.systemPackages",
            "listOf package",
            Plain::List(vec![]),
        ),
        ("environment.etc.<name>.text", "nullOr str", Plain::Null),
        ("environment.etc.<name>.source", "nullOr path", Plain::Null),
        (
            "systemd.services.<name>.serviceConfig",
            "attrs",
            Plain::Attrs(Default::default()),
        ),
    ] {
        d.add(OptionDecl {
            path: path.split('.').map(String::from).collect(),
            ty: OptType::parse(ty).unwrap(),
            default,
            description: String::new(),
            module: "test".into(),
            default_by_name: None,
        })
        .unwrap();
    }
    d
}

/// Evaluates modules given as (text, is a `--config` snippet) and returns the config or every
/// error as text.
fn eval_all(modules: &[(&str, bool)], dir: &Path) -> Result<(Plain, Evaluator), Vec<String>> {
    let mut ev = Evaluator::new();
    ev.track_positions();
    let args = module_args(&mut ev).map_err(|e| vec![e.to_string()])?;
    let mut ms = Vec::new();
    for (i, (text, snippet)) in modules.iter().enumerate() {
        let name = format!("m{i}.nix");
        let file = dir.join(&name);
        let m = if *snippet {
            snippet_module(&mut ev, text, Path::new(&name), dir)
        } else {
            let src = crate::nixlang::SourceMap::new(&file, text, 0);
            ev.eval_text(text, src, dir).map(Thunk::value)
        }
        .map_err(|e| vec![e.to_string()])?;
        ms.push((m, file.display().to_string()));
    }
    match evaluate(&mut ev, &decls(), ms, args) {
        Ok(e) => Ok((e.config, ev)),
        Err(errors) => Err(errors.iter().map(|e| e.to_string()).collect()),
    }
}

fn config(modules: &[(&str, bool)]) -> Plain {
    match eval_all(modules, Path::new("/nonexistent")) {
        Ok((c, _)) => c,
        Err(e) => panic!("{}", e.join("\n")),
    }
}

fn errors(modules: &[(&str, bool)]) -> Vec<String> {
    match eval_all(modules, Path::new("/nonexistent")) {
        Ok((c, _)) => panic!("evaluated: {c}"),
        Err(e) => e,
    }
}

fn get<'a>(v: &'a Plain, path: &str) -> &'a Plain {
    path.split('.').fold(v, |v, k| match v {
        Plain::Attrs(m) => m.get(k).unwrap_or_else(|| panic!("no {k} in {path}: {v}")),
        _ => panic!("{path}: {v}"),
    })
}

fn ints(v: &Plain) -> Vec<i64> {
    match v {
        Plain::List(items) => items.iter().map(|i| i.as_int().unwrap()).collect(),
        other => panic!("{other}"),
    }
}

#[test]
fn a_module_as_people_write_it() {
    let c = config(&[
        (
            r#"{ config, pkgs, lib, ... }:
        let
          port = 8080;
          cfg = config.my.app;
        in {
          options.my.app = {
            enable = lib.mkEnableOption "my app";
            port = lib.mkOption { type = lib.types.port; default = port; };
            name = lib.mkOption { type = lib.types.str; default = "app"; apply = lib.toUpper; };
          };
          config = lib.mkIf cfg.enable {
            services.openssh.enable = true;
            services.openssh.ports = [ cfg.port ];
            networking.firewall.allowedTCPPorts = config.services.openssh.ports ++ [ 9 ];
            networking.hostName = "${cfg.name}-${toString cfg.port}";
            environment.systemPackages = with pkgs; [ bash ];
          };
        }"#,
            false,
        ),
        ("my.app.enable = true;", true),
    ]);
    assert_eq!(get(&c, "services.openssh.enable"), &Plain::Bool(true));
    // A list option's definitions concatenate with the default dropped (priority).
    assert_eq!(ints(get(&c, "services.openssh.ports")), [8080]);
    assert_eq!(
        ints(get(&c, "networking.firewall.allowedTCPPorts")),
        [8080, 9]
    );
    assert_eq!(
        get(&c, "networking.hostName"),
        &Plain::String("APP-8080".into())
    );
    let Plain::List(pkgs) = get(&c, "environment.systemPackages") else {
        panic!()
    };
    assert_eq!(get(&pkgs[0], "outPath"), &Plain::String("/usr".into()));
}

#[test]
fn mk_if_false_removes_and_the_condition_may_read_config() {
    let c = config(&[(
        "{ config, lib, ... }: { config = lib.mkIf config.services.openssh.enable { \
           networking.firewall.allowedTCPPorts = [ 1 ]; }; }",
        false,
    )]);
    assert_eq!(
        ints(get(&c, "networking.firewall.allowedTCPPorts")),
        Vec::<i64>::new()
    );
    let c = config(&[
        (
            "{ config, lib, ... }: { config = lib.mkIf config.services.openssh.enable { \
               networking.firewall.allowedTCPPorts = [ 1 ]; }; }",
            false,
        ),
        ("services.openssh.enable = true;", true),
    ]);
    assert_eq!(ints(get(&c, "networking.firewall.allowedTCPPorts")), [1]);
}

#[test]
fn priorities_and_order() {
    let c = config(&[
        ("networking.hostName = mkDefault \"weak\";", true),
        ("networking.hostName = \"plain\";", true),
        (
            "services.openssh.ports = mkForce [ 2 ]; services.openssh.enable = mkOverride 10 true;",
            true,
        ),
        (
            "services.openssh.ports = [ 3 ]; services.openssh.enable = mkForce false;",
            true,
        ),
        (
            "networking.firewall.allowedTCPPorts = mkAfter [ 30 ];",
            true,
        ),
        ("networking.firewall.allowedTCPPorts = [ 20 ];", true),
        (
            "networking.firewall.allowedTCPPorts = mkBefore [ 10 ];",
            true,
        ),
        (
            "networking.firewall.allowedTCPPorts = mkMerge [ [ 21 ] (mkIf false [ 99 ]) ];",
            true,
        ),
    ]);
    assert_eq!(
        get(&c, "networking.hostName"),
        &Plain::String("plain".into())
    );
    assert_eq!(ints(get(&c, "services.openssh.ports")), [2]);
    assert_eq!(get(&c, "services.openssh.enable"), &Plain::Bool(true));
    assert_eq!(
        ints(get(&c, "networking.firewall.allowedTCPPorts")),
        [10, 20, 21, 30]
    );
}

#[test]
fn conflicting_definitions_name_both_places() {
    let e = errors(&[
        ("networking.hostName = \"a\";", true),
        ("\n  networking.hostName = \"b\";", true),
    ]);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("m1.nix:2:3: the option ‘networking.hostName’ has conflicting definitions: \"b\" here and \"a\" at m0.nix:1:1"),
        "{e:?}"
    );
}

#[test]
fn every_mistake_is_reported_at_once_with_its_position() {
    let e = errors(&[(
        "services.openssh.enabel = true;\nservices.openssh.ports = [ \"x\" ];\n  users.users.bob.isNormaluser = true;\nnetworking.hostName = 5;",
        true,
    )]);
    let text = e.join("\n");
    assert!(text.contains("m0.nix:1:1: the option ‘services.openssh.enabel’ does not exist; did you mean services.openssh.enable?"), "{text}");
    assert!(text.contains("m0.nix:3:3: the option ‘users.users.bob.isNormaluser’ does not exist; did you mean users.users.<name>.isNormalUser?"), "{text}");
    assert_eq!(e.len(), 2, "unknown options first, all of them: {text}");
    let e = errors(&[(
        "services.openssh.ports = [ \"x\" ];\nnetworking.hostName = 5;",
        true,
    )]);
    let text = e.join("\n");
    assert!(text.contains("m0.nix:1:1: the option ‘services.openssh.ports’ has a wrong type: element 1: expected a port"), "{text}");
    assert!(
        text.contains("m0.nix:2:1: the option ‘networking.hostName’ has a wrong type"),
        "{text}"
    );
}

#[test]
fn user_options_are_typed() {
    let e = errors(&[
        (
            "{ lib, ... }: { options.my.n = lib.mkOption { type = lib.types.int; }; \
           config.my.n = \"three\"; config.networking.hostName = toString 1; }",
            false,
        ),
        (
            "networking.hostName = mkForce (toString config.my.n);",
            true,
        ),
    ]);
    assert!(
        e[0].contains("the option ‘my.n’ has a wrong type: expected int"),
        "{e:?}"
    );
    let e = errors(&[(
        "{ lib, config, ... }: { options.my.n = lib.mkOption { type = lib.types.int; }; \
           config.networking.hostName = toString config.my.n; }",
        false,
    )]);
    assert!(e[0].contains("‘my.n’ is used but not defined"), "{e:?}");
}

#[test]
fn submodules_and_attribute_sets_of_them() {
    let c = config(&[(
        r#"{ lib, config, ... }: with lib; {
          options.people = mkOption {
            type = types.attrsOf (types.submodule ({ name, ... }: {
              options.uid = mkOption { type = types.int; default = 1000; };
              options.login = mkOption { type = types.str; default = name; };
            }));
            default = { };
          };
          config.people.bob = { };
          config.people.eve.uid = 1001;
          config.users.users = mapAttrs (n: p: { uid = p.uid; isNormalUser = p.login == n; }) config.people;
        }"#,
        false,
    )]);
    assert_eq!(get(&c, "users.users.bob.uid"), &Plain::Int(1000));
    assert_eq!(get(&c, "users.users.eve.uid"), &Plain::Int(1001));
    assert_eq!(get(&c, "users.users.eve.isNormalUser"), &Plain::Bool(true));
}

#[test]
fn imports_and_laziness() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(
        dir.path().join("sub/ssh.nix"),
        "{ lib, ... }: { services.openssh.enable = lib.mkDefault true; imports = [ ../ports.nix ]; }",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("ports.nix"),
        "{ services.openssh.ports = [ 2222 ]; }",
    )
    .unwrap();
    let (c, _) = eval_all(
        &[(
            "imports = [ ./sub/ssh.nix ./sub/ssh.nix ]; \
             systemd.services.x.serviceConfig = let unused = throw \"never\"; in { A = 1; };",
            true,
        )],
        dir.path(),
    )
    .unwrap();
    assert_eq!(get(&c, "services.openssh.enable"), &Plain::Bool(true));
    assert_eq!(
        ints(get(&c, "services.openssh.ports")),
        [2222],
        "imported once"
    );
    assert_eq!(
        get(&c, "systemd.services.x.serviceConfig.A"),
        &Plain::Int(1)
    );
}

#[test]
fn pkgs_from_the_host() {
    let (c, ev) = eval_all(
        &[(
            "environment.etc.a.text = \"${pkgs.bash}/bin/bash ${lib.getExe pkgs.bash}\"; \
             environment.etc.b.text = \"${pkgs.writeShellScript \"hello\" \"echo hi\"}\";",
            true,
        )],
        Path::new("/"),
    )
    .unwrap();
    assert_eq!(
        get(&c, "environment.etc.a.text"),
        &Plain::String("/usr/bin/bash /usr/bin/bash".into())
    );
    let Plain::String(script) = get(&c, "environment.etc.b.text") else {
        panic!()
    };
    assert!(
        script.starts_with("/nix/store/") && script.ends_with("-hello"),
        "{script}"
    );
    assert_eq!(
        ev.written[script.as_str()],
        ("#!/bin/bash\necho hi".to_string(), true)
    );
    let e = errors(&[(
        "environment.systemPackages = with pkgs; [ bash nosuchprogramhere ];",
        true,
    )]);
    assert!(
        e[0].contains(
            "undefined variable 'nosuchprogramhere' (nor in the 'with' around it: no such \
             program on this host"
        ),
        "{e:?}"
    );
    let e = errors(&[(
        "environment.systemPackages = [ pkgs.no-such-program-here ];",
        true,
    )]);
    assert!(
        e[0].contains("attribute 'no-such-program-here' missing: no such program on this host"),
        "{e:?}"
    );
    let e = errors(&[(
        "environment.systemPackages = [ (pkgs.runCommand \"x\" { } \"\") ];",
        true,
    )]);
    assert!(e[0].contains("pkgs.runCommand builds with Nix"), "{e:?}");
    // Names are made when looked up, and only then: `?`, `or` and `with` see them.
    let c = config(&[(
        "networking.hostName = builtins.concatStringsSep \"-\" (map builtins.toJSON [ \
           (pkgs ? bash) (pkgs ? nosuchprogramhere) (pkgs.nosuchprogramhere or 1) \
           (builtins.elem \"bash\" (builtins.attrNames pkgs)) (with pkgs; lib.getName bash) ]);",
        true,
    )]);
    assert_eq!(
        get(&c, "networking.hostName"),
        &Plain::String("true-false-1-false-\"bash\"".into())
    );
    // A PostgreSQL of a version the host lacks names the one it has.
    let majors: Vec<String> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let e = errors(&[("services.postgresql.package = pkgs.postgresql_9_6;", true)]);
    assert!(
        e[0].contains("pkgs.postgresql_9_6: this host has ")
            && e[0].contains("a Nix host builds PostgreSQL 9.6 for real"),
        "{e:?}"
    );
    let e = errors(&[("services.postgresql.package = pkgs.postgresql_9;", true)]);
    assert!(e[0].contains("pkgs.postgresql_9: this host has "), "{e:?}");
    for m in &majors {
        assert!(
            e[0].contains(&format!("PostgreSQL {m} (pkgs.postgresql_{m})")),
            "{e:?}"
        );
        let text = format!("environment.etc.pg.text = \"${{pkgs.postgresql_{m}}}\";");
        let c = config(&[(text.as_str(), true)]);
        let want = format!("/usr/lib/postgresql/{m}");
        assert_eq!(get(&c, "environment.etc.pg.text"), &Plain::String(want));
    }
}

#[test]
fn versioned_mariadb_and_library_packages() {
    let Some(host) =
        crate::builder::pkgs::DpkgStatus::read(Path::new(crate::builder::pkgs::DpkgStatus::PATH))
            .version("mariadb-server")
    else {
        panic!("the tests need mariadb-server (scripts/setup-debian.sh --for-tests)");
    };
    let mut parts = host.split('.');
    let (major, minor) = (parts.next().unwrap(), parts.next().unwrap());
    let text = format!("environment.etc.m.text = \"${{pkgs.mariadb_{major}{minor}}}\";");
    let c = config(&[(text.as_str(), true)]);
    assert_eq!(
        get(&c, "environment.etc.m.text"),
        &Plain::String("/usr".into())
    );
    let e = errors(&[("environment.etc.m.text = \"${pkgs.mariadb_999}\";", true)]);
    assert!(
        e[0].contains(&format!(
            "pkgs.mariadb_999: this host has MariaDB {major}.{minor} only (pkgs.mariadb_{major}{minor})"
        )) && e[0].contains("a Nix host builds MariaDB 99.9"),
        "{e:?}"
    );
    // A library's package: its files, no main program.
    let c = config(&[(
        "environment.etc.g.text = \"${pkgs.mariadb-galera}/lib/galera/libgalera_smm.so \
           ${toString (pkgs.mariadb-galera ? mainProgram)}\";",
        true,
    )]);
    assert_eq!(
        get(&c, "environment.etc.g.text"),
        &Plain::String("/usr/lib/galera/libgalera_smm.so ".into())
    );
}

#[test]
fn the_options_argument_and_renamed_options() {
    let c = config(&[
        (
            "{ options, lib, ... }: { networking.hostName = \
               if options.services.openssh.enable.isDefined then \"defined\" else \"not\"; }",
            false,
        ),
        ("services.openssh.enable = true;", true),
    ]);
    assert_eq!(
        get(&c, "networking.hostName"),
        &Plain::String("defined".into())
    );
    // An option's default and type, of a Rhai option and of the user's own.
    let c = config(&[(
        "{ options, lib, ... }: { options.mine = lib.mkOption { type = lib.types.listOf lib.types.int; \
           default = [ 1 ]; }; config.networking.firewall.allowedTCPPorts = \
           options.services.openssh.ports.default ++ options.mine.default; \
           config.networking.hostName = options.services.openssh.ports.type.name + \"-\" + \
           options.mine.type.name + \"-\" + options.services.openssh.enable.type.description; }",
        false,
    )]);
    assert_eq!(
        get(&c, "networking.firewall.allowedTCPPorts"),
        &Plain::List(vec![Plain::Int(22), Plain::Int(1)])
    );
    assert_eq!(
        get(&c, "networking.hostName"),
        &Plain::String("listOf-listOf-boolean".into())
    );
    let c = config(&[(
        "{ lib, ... }: { imports = [ (lib.mkRenamedOptionModule [ \"services\" \"ssh\" \"enable\" ] \
           [ \"services\" \"openssh\" \"enable\" ]) ]; services.ssh.enable = true; }",
        false,
    )]);
    assert_eq!(get(&c, "services.openssh.enable"), &Plain::Bool(true));
}

#[test]
fn a_package_where_a_path_is_declared_is_its_path() {
    let (c, ev) = eval_all(
        &[(
            "environment.etc.a.source = pkgs.writeText \"a\" \"x\";",
            true,
        )],
        Path::new("/"),
    )
    .unwrap();
    let Plain::String(p) = get(&c, "environment.etc.a.source") else {
        panic!()
    };
    assert!(p.starts_with("/nix/store/") && p.ends_with("-a"), "{p}");
    assert_eq!(ev.written[p.as_str()].0, "x");
}

#[test]
fn messages_for_what_ncsh_does_not_have() {
    // A service no module declares: one message for it, not one per option.
    let e = errors(&[(
        "services.gitea.enable = true;\nservices.gitea.appName = \"x\";\nservices.gitea.settings.a = 1;",
        true,
    )]);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("m0.nix:1:1: ‘services.gitea’ is not realized natively")
            && e[0].contains("a Nix host builds it"),
        "{e:?}"
    );
    // Several mistakes come in the order of their lines.
    let e = errors(&[(
        "users.users.a.uid = \"x\";\nservices.openssh.enable = 1;\nnetworking.hostName = 2;",
        true,
    )]);
    let lines: Vec<&str> = e.iter().map(|m| &m[..8]).collect();
    assert_eq!(lines, ["m0.nix:1", "m0.nix:2", "m0.nix:3"], "{e:?}");
    // A known package the host does not have says which Debian package to install, at the
    // line that asks for it.
    let missing = crate::builder::pkgs::KNOWN.iter().find(|(_, program, _)| {
        !program.contains('/')
            && !Path::new("/usr/bin").join(program).exists()
            && !Path::new("/usr/sbin").join(program).exists()
    });
    // Of some 90 known programs, a host never has all (this one lacks htop, fish, emacs, …).
    let (attr, _, debian) = missing.expect("a known package this host does not have");
    let text = format!("\nenvironment.systemPackages = [ pkgs.{attr} ];");
    let e = errors(&[(text.as_str(), true)]);
    assert!(
        e[0].starts_with("m0.nix:2:1: ") && e[0].contains(&format!("apt-get install {debian}")),
        "{e:?}"
    );
}

#[test]
fn a_default_may_depend_on_the_name() {
    let mut d = decls();
    d.add(OptionDecl {
        path: "services.redis.servers.<name>.user"
            .split('.')
            .map(String::from)
            .collect(),
        ty: OptType::parse("nullOr str").unwrap(),
        default: Plain::Null,
        description: String::new(),
        module: "test".into(),
        default_by_name: Some("name: if name == \"\" then \"redis\" else \"redis-${name}\"".into()),
    })
    .unwrap();
    let mut ev = Evaluator::new();
    ev.track_positions();
    let args = module_args(&mut ev).unwrap();
    let text = "services.redis.servers = { \"\" = { }; cache = { }; own.user = \"me\"; }; \
                users.users.x.isNormalUser = config.services.redis.servers.cache.user == \"redis-cache\";";
    let m = snippet_module(&mut ev, text, Path::new("m.nix"), Path::new("/")).unwrap();
    let c = evaluate(&mut ev, &d, vec![(m, "m.nix".into())], args)
        .map_err(|e| e[0].to_string())
        .unwrap()
        .config;
    let user = |n: &str| get(&c, &format!("services.redis.servers.{n}.user")).clone();
    assert_eq!(user("cache"), Plain::String("redis-cache".into()));
    assert_eq!(user("own"), Plain::String("me".into()));
    let Plain::Attrs(servers) = get(&c, "services.redis.servers") else {
        panic!()
    };
    assert_eq!(
        servers[""],
        Plain::Attrs([("user".to_string(), Plain::String("redis".into()))].into())
    );
    assert_eq!(
        get(&c, "users.users.x.isNormalUser"),
        &Plain::Bool(true),
        "config reads it"
    );
}

#[test]
fn nixpkgs_modules_that_change_nothing_here_are_accepted_the_others_refused() {
    let c = config(&[(
        "{ modulesPath, ... }: { imports = [ (modulesPath + \"/profiles/minimal.nix\") \
           \"${modulesPath}/virtualisation/container-config.nix\" ]; networking.hostName = \"m\"; }",
        false,
    )]);
    assert_eq!(get(&c, "networking.hostName"), &Plain::String("m".into()));
    let e = errors(&[(
        "{ modulesPath, ... }: { imports = [ \"${modulesPath}/profiles/qemu-guest.nix\" ]; }",
        false,
    )]);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains(
            "profiles/qemu-guest.nix: a module of nixpkgs, which this host does not have"
        ),
        "{e:?}"
    );
    assert!(e[0].contains("NCSH_BUILDER=nix"), "{e:?}");
}

/// The tree of the Rhai-declared options is kept for the thread's next evaluations of the same
/// declarations; an option a user's module declares below one of its sets belongs to that
/// evaluation only.
#[test]
fn a_users_option_beside_rhai_ones_is_the_evaluations_own() {
    let own = "{ lib, config, ... }: { \
               options.services.openssh.banner = lib.mkOption { type = lib.types.str; default = \"hi\"; }; \
               config.networking.hostName = config.services.openssh.banner; }";
    let c = config(&[(own, false)]);
    assert_eq!(get(&c, "networking.hostName"), &Plain::String("hi".into()));
    // The kept tree is the Rhai modules' alone: the option is unknown to the next evaluation.
    let e = errors(&[("services.openssh.banner = \"x\";", true)]);
    assert!(
        e.iter()
            .any(|e| e.contains("the option ‘services.openssh.banner’ does not exist")),
        "{e:?}"
    );
    // And the Rhai option beside it is as declared.
    let c = config(&[("services.openssh.ports = [ 2222 ];", true)]);
    assert_eq!(ints(get(&c, "services.openssh.ports")), vec![2222]);
    assert_eq!(get(&c, "services.openssh.enable"), &Plain::Bool(false));
}

/// Definitions wrapped by `lib` (mkIf, mkMerge, optionalAttrs, mkDefault) are reported where
/// the user wrote them: `lib`'s own sets keep no positions, and none is needed.
#[test]
fn mistakes_inside_lib_wrappers_are_at_the_users_lines() {
    let e = errors(&[(
        "{ lib, ... }: {\n  config = lib.mkMerge [\n    (lib.mkIf true {\n      services.openssh.enabel = true;\n    })\n    (lib.optionalAttrs true {\n      networking.hostNam = lib.mkDefault \"x\";\n    })\n  ];\n}",
        false,
    )]);
    let text = e.join("\n");
    assert!(
        text.contains("m0.nix:4:7: the option ‘services.openssh.enabel’ does not exist"),
        "{text}"
    );
    assert!(
        text.contains("m0.nix:7:7: the option ‘networking.hostNam’ does not exist"),
        "{text}"
    );
    assert!(!text.contains("lib.nix"), "{text}");
}

#[test]
fn a_set_of_an_attrs_option_has_its_properties_applied_with_one_definition_as_with_more() {
    // NixOS's `anything` (and the freeform settings Rhai's "attrs" stands for) merges sets
    // attribute by attribute, mkIf and mkDefault inside them included.
    let c = config(&[(
        "systemd.services.x.serviceConfig = { A = lib.mkIf false 1; B = lib.mkDefault 2; \
           C.D = lib.mkIf true 3; E = pkgs.bash; };",
        true,
    )]);
    let sc = get(&c, "systemd.services.x.serviceConfig");
    let Plain::Attrs(m) = sc else { panic!("{sc}") };
    assert_eq!(m.keys().collect::<Vec<_>>(), ["B", "C", "E"], "{sc}");
    assert_eq!(
        get(&c, "systemd.services.x.serviceConfig.B"),
        &Plain::Int(2)
    );
    assert_eq!(
        get(&c, "systemd.services.x.serviceConfig.C.D"),
        &Plain::Int(3)
    );
    // A package stays one value.
    assert_eq!(
        get(&c, "systemd.services.x.serviceConfig.E.outPath"),
        &Plain::String("/usr".into())
    );
}
