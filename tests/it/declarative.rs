//! `ncsh apply FILE`: containers declared as a NixOS host declares them (`containers.<name>`),
//! created, updated live, restarted for an nspawn-level change, left alone when unchanged and
//! destroyed; bad values refused with nothing changed. Real containers (standalone driver).

use std::time::Duration;

use crate::common::*;

/// A host module declaring container `name` with a read-only bind of `www`, a forwarded port
/// and a web server on 8080 serving the bind; `extra_config` and `extra` go into its
/// `config` and its container options.
fn host_module(
    name: &str,
    (host, local): (&str, &str),
    www: &std::path::Path,
    port: u16,
    extra_config: &str,
    extra: &str,
) -> String {
    format!(
        r#"{{ lib, ... }}:
{{
  containers.{name} = {{
    privateNetwork = true;
    hostAddress = "{host}";
    localAddress = "{local}";
    autoStart = true;
    bindMounts."/srv/www" = {{ hostPath = "{www}"; }};
    forwardPorts = [ {{ hostPort = {port}; containerPort = 8080; }} ];
    {extra}
    config = {{ pkgs, ... }}: {{
      networking.firewall.allowedTCPPorts = [ 8080 ];
      systemd.services.www = {{
        wantedBy = [ "multi-user.target" ];
        serviceConfig.ExecStart = "${{pkgs.python3}}/bin/python3 -m http.server 8080 --directory /srv/www";
      }};
      {extra_config}
    }};
  }};
}}
"#,
        www = www.display()
    )
}

#[test]
fn apply_creates_updates_restarts_and_destroys() {
    require_root();
    let env = Env::new();
    let name = unique_name("dcl");
    let (host, local) = env.test_addresses();
    let www = env.prefix().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello from the host\n").unwrap();
    let port = 20000 + (std::process::id() % 20000) as u16;
    let file = env.prefix().join("host.nix");
    let write = |extra_config: &str, extra: &str| {
        let text = host_module(&name, (&host, &local), &www, port, extra_config, extra);
        std::fs::write(&file, text).unwrap();
    };
    let apply = |args: &[&str]| {
        let mut all = vec!["apply", file.to_str().unwrap()];
        all.extend_from_slice(args);
        env.run(&all)
    };
    write("", "");
    env.track(&name);
    let out = apply(&[]);
    assert_ok(&out, "apply");
    assert_eq!(stdout(&out), format!("{name}: created, started\n"));

    // The conf NixOS's module writes, and where it came from.
    let conf = std::fs::read_to_string(env.conf_path(&name)).unwrap();
    assert_eq!(
        conf,
        format!(
            "COPY_RESOLV_CONF=1\nPRIVATE_NETWORK=1\nHOST_PORT=tcp:{port}:8080\nHOST_ADDRESS={host}\n\
             LOCAL_ADDRESS={local}\nPRIVATE_USERS=no\nINTERFACES=\"\"\nMACVLANS=\"\"\nAUTO_START=1\n\
             EXTRA_NSPAWN_FLAGS=\" --bind-ro={}:/srv/www\"\nNCSH_DECLARED_IN={}\n",
            www.display(),
            file.display()
        )
    );
    let config_nix =
        std::fs::read_to_string(env.root_path(&name).join("etc/nixos/configuration.nix")).unwrap();
    assert!(
        config_nix.contains(&format!(
            "# The configuration of containers.{name} in {}",
            file.display()
        )),
        "{config_nix}"
    );

    // The bind is served by the container, on its address and through the forwarded port of
    // the host side of its veth.
    let served = |addr: &str, port: u16| {
        eventually(Duration::from_secs(20), || {
            http_get(addr, port).is_ok_and(|r| r.contains("hello from the host"))
        })
    };
    assert!(served(&local, 8080), "the container serves the bind");
    assert!(served(&host, port), "the forwarded port {port} reaches it");
    let out = env.run_inside(&name, &["sh", "-c", "echo x > /srv/www/new"]);
    assert!(
        !out.status.success(),
        "the bind is read-only (isReadOnly's default)"
    );

    // Nothing changed: nothing done.
    let out = apply(&[]);
    assert_ok(&out, "apply again");
    assert_eq!(stdout(&out), format!("{name}: unchanged\n"));

    // A changed config: switched live.
    let leader_before = leader(&env, &name);
    write("environment.etc.greeting.text = \"hi\";", "");
    let out = apply(&[]);
    assert_ok(&out, "apply a changed config");
    assert_eq!(stdout(&out), format!("{name}: updated\n"));
    assert_eq!(
        leader(&env, &name),
        leader_before,
        "switched live, not restarted"
    );
    assert_eq!(
        stdout(&env.run_inside(&name, &["cat", "/etc/greeting"])),
        "hi"
    );
    // `update` without a configuration builds it from FILE again.
    assert_ok(&env.run(&["update", &name]), "update");
    assert_eq!(
        stdout(&env.run_inside(&name, &["cat", "/etc/greeting"])),
        "hi"
    );

    // An nspawn-level change: restarted (restartIfChanged defaults to true).
    write(
        "environment.etc.greeting.text = \"hi\";",
        "tmpfs = [ \"/srv/scratch\" ];",
    );
    let out = apply(&[]);
    assert_ok(&out, "apply a tmpfs");
    assert_eq!(stdout(&out), format!("{name}: restarted\n"));
    assert_ne!(leader(&env, &name), leader_before);
    let out = env.run_inside(&name, &["stat", "-f", "-c", "%T", "/srv/scratch"]);
    assert_eq!(stdout(&out), "tmpfs\n");
    assert!(served(&host, port), "the forwarded port after the restart");

    let out = apply(&["--destroy"]);
    assert_ok(&out, "apply --destroy");
    assert_eq!(stdout(&out), format!("{name}: destroyed\n"));
    assert!(!env.conf_path(&name).exists() && !env.root_path(&name).exists());
    assert_eq!(
        std::fs::read_to_string(www.join("index.html")).unwrap(),
        "hello from the host\n"
    );
}

#[test]
fn bad_declarations_are_refused_and_change_nothing() {
    require_root();
    let env = Env::new();
    let name = unique_name("dbd");
    let file = env.prefix().join("host.nix");
    let other = unique_name("dot");
    env.create(&other, &[]);
    std::fs::write(&file, "{ }").unwrap();
    let snapshot = || -> Vec<_> {
        env.snapshot()
            .into_iter()
            .filter(|(p, _)| *p != file)
            .collect()
    };
    let before = snapshot();
    for (text, want) in [
        (
            format!("{{ containers.{name}.autoStrat = true; }}"),
            format!(
                "the option ‘containers.{name}.autoStrat’ does not exist; did you mean containers.{name}.autoStart?"
            ),
        ),
        (
            format!("{{\n  containers.{name}.privateNetwork = \"yes\";\n}}"),
            format!("{}:2:", file.display()),
        ),
        (
            format!("{{ containers.{name}.hostAddress = \"10.235.1.1\"; }}"),
            format!(
                "containers.{name}.hostAddress (in {}): needs privateNetwork = true",
                file.display()
            ),
        ),
        (
            format!("{{ containers.{name}.bindMounts.\"/data\".hostPath = \"/no/such/dir\"; }}"),
            "the host path /no/such/dir does not exist".to_string(),
        ),
        (
            format!("{{ containers.{name}.extraFlags = [ \"--machine=x\" ]; }}"),
            "‘--machine=x’ is refused".to_string(),
        ),
        (
            format!("{{ containers.{name}.config.services.nosuch.enable = true; }}"),
            "services.nosuch".to_string(),
        ),
        (
            format!("{{ containers.{other}.autoStart = false; }}"),
            format!("a container ‘{other}’ exists and was made by create"),
        ),
    ] {
        std::fs::write(&file, &text).unwrap();
        let out = env.run(&["apply", file.to_str().unwrap()]);
        assert!(!out.status.success(), "{text} was applied");
        assert!(stderr(&out).contains(&want), "{text}:\n{}", stderr(&out));
        assert!(snapshot() == before, "{text} changed something");
    }
    assert!(!env.conf_path(&name).exists());
}

/// The Rhai API: `apply(path)` and `apply(path, #{destroy: true})`, without booting.
#[test]
fn apply_from_a_script() {
    require_root();
    let env = Env::new();
    let (a, b) = (unique_name("dsa"), unique_name("dsb"));
    env.track(&a);
    env.track(&b);
    let file = env.prefix().join("host.nix");
    std::fs::write(
        &file,
        format!(
            "{{ config, lib, pkgs, ... }}: {{\n  containers.{a}.config.environment.etc.which.text = \"a\";\n  \
             containers.{b} = {{ config = ./b.nix; ephemeral = true; }};\n}}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        env.prefix().join("b.nix"),
        "{ lib, ... }: { environment.etc.which.text = lib.mkDefault \"b\"; }\n",
    )
    .unwrap();
    let script = env.prefix().join("apply.rhai");
    std::fs::write(
        &script,
        format!(
            "for r in apply(\"{f}\") {{ print(`${{r.name}} ${{r.outcome}} ${{r.started}}`); }}\n\
             for r in apply(\"{f}\", #{{destroy: true}}) {{ print(`${{r.name}} ${{r.outcome}}`); }}\n\
             try {{ apply(\"{f}\", #{{bogus: true}}); }} catch (e) {{ print(e); }}\n",
            f = file.display()
        ),
    )
    .unwrap();
    let out = env.run(&[script.to_str().unwrap()]);
    assert_ok(&out, "the script");
    let text = stdout(&out);
    let mut lines = text.lines();
    let mut sorted = [a.clone(), b.clone()];
    sorted.sort();
    for n in &sorted {
        assert_eq!(
            lines.next(),
            Some(format!("{n} created false").as_str()),
            "{text}"
        );
    }
    for n in &sorted {
        assert_eq!(
            lines.next(),
            Some(format!("{n} destroyed").as_str()),
            "{text}"
        );
    }
    assert!(
        lines
            .next()
            .is_some_and(|l| l.contains("unknown apply option ‘bogus’")),
        "{text}"
    );
    assert!(!env.conf_path(&a).exists() && !env.conf_path(&b).exists());
}

/// A container's `config` given as a path or a plain set builds, and the ephemeral option
/// reaches its conf.
#[test]
fn config_as_a_path_or_a_set() {
    require_root();
    let env = Env::new();
    let (a, b) = (unique_name("dpa"), unique_name("dpb"));
    env.track(&a);
    env.track(&b);
    let file = env.prefix().join("host.nix");
    std::fs::write(
        &file,
        format!(
            "{{ containers.{a}.config.environment.etc.which.text = \"a\";\n  \
             containers.{b} = {{ config = ./b.nix; ephemeral = true; }}; }}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        env.prefix().join("b.nix"),
        "{ lib, ... }: { environment.etc.which.text = lib.mkDefault \"b\"; }\n",
    )
    .unwrap();
    assert_ok(&env.run(&["apply", file.to_str().unwrap()]), "apply");
    for (n, want) in [(&a, "a"), (&b, "b")] {
        assert_eq!(
            std::fs::read_to_string(env.root_path(n).join("etc/which")).unwrap(),
            want
        );
    }
    let conf = std::fs::read_to_string(env.conf_path(&b)).unwrap();
    assert!(
        conf.contains("EXTRA_NSPAWN_FLAGS=\" --ephemeral\"\n"),
        "{conf}"
    );
}

/// NixOS's containers-extra_veth test: a second veth pair, addressed on both sides, up inside
/// and on the host, reachable over its own addresses; gone with the container.
#[test]
fn extra_veths_are_addressed_on_both_sides() {
    require_root();
    let env = Env::new();
    let name = unique_name("dxv");
    let (host, local) = env.test_addresses();
    let (host2, local2) = env.test_addresses_in(235);
    let veth = format!("vx{}", std::process::id() % 100_000);
    let file = env.prefix().join("host.nix");
    std::fs::write(
        &file,
        format!(
            "{{ containers.{name} = {{\n  privateNetwork = true; hostAddress = \"{host}\"; localAddress = \"{local}\";\n  \
             autoStart = true;\n  extraVeths.{veth} = {{ hostAddress = \"{host2}\"; localAddress = \"{local2}\"; }};\n}}; }}\n"
        ),
    )
    .unwrap();
    env.track(&name);
    let out = env.run(&["apply", file.to_str().unwrap()]);
    assert_ok(&out, "apply");
    assert_eq!(stdout(&out), format!("{name}: created, started\n"));
    let on_host = std::process::Command::new("ip")
        .args(["-o", "addr", "show", "dev", &veth])
        .output()
        .unwrap();
    assert!(
        stdout(&on_host).contains(&format!("inet {host2}/")),
        "{}",
        stdout(&on_host)
    );
    let inside = env.run_inside(&name, &["ip", "-o", "addr", "show", "dev", &veth]);
    assert!(
        stdout(&inside).contains(&format!("inet {local2}/")),
        "{}",
        stdout(&inside)
    );
    let up = |out: std::process::Output| stdout(&out).contains(",UP");
    assert!(up(
        env.run_inside(&name, &["ip", "-o", "link", "show", "dev", &veth])
    ));
    assert!(up(std::process::Command::new("ip")
        .args(["-o", "link", "show", "dev", &veth])
        .output()
        .unwrap()));
    // The container reaches the host over the extra pair.
    let listener = std::net::TcpListener::bind(format!("{host2}:8643")).unwrap();
    let connect = format!("echo over-extra > /dev/tcp/{host2}/8643");
    let out = env.run_inside(&name, &["timeout", "5", "bash", "-c", &connect]);
    assert_ok(&out, "connecting over the extra veth");
    let (mut stream, peer) = listener.accept().unwrap();
    assert_eq!(peer.ip().to_string(), local2);
    let mut got = String::new();
    std::io::Read::read_to_string(&mut stream, &mut got).unwrap();
    assert_eq!(got, "over-extra\n");
    assert_ok(
        &env.run(&["apply", "--destroy", file.to_str().unwrap()]),
        "destroy",
    );
    assert!(!std::path::Path::new("/sys/class/net").join(&veth).exists());
}
