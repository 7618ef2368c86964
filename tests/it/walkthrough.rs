//! The seed walkthrough (imperative-containers.txt) end to end, with NixOS options realized by the
//! native builder: sshd with a key and a strict host key check, a configuration file with
//! imports and explicit addresses, password logins, a live update to Apache, the firewall,
//! stop/start, failed updates that change nothing, destroy.

use std::process::Command;
use std::time::Duration;

use crate::common::*;
use crate::login::Session;

fn ssh(
    env: &Env,
    key: &std::path::Path,
    known_hosts: &std::path::Path,
    ip: &str,
    command: &str,
) -> std::process::Output {
    Command::new("ssh")
        .args([
            "-i",
            key.to_str().unwrap(),
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
        ])
        .args([
            "-o",
            "ConnectTimeout=5",
            "-o",
            &format!("UserKnownHostsFile={}", known_hosts.display()),
        ])
        .arg(format!("root@{ip}"))
        .arg(command)
        .env("HOME", env.prefix())
        .output()
        .unwrap()
}

#[test]
fn ssh_update_to_apache_firewall_and_stop_start() {
    require_root();
    let env = Env::new();
    let name = unique_name("wlk");
    let key = env.prefix().join("id_ed25519");
    let keygen = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(keygen.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let config = format!(
        "services.openssh.enable = true;\nusers.users.root.openssh.authorizedKeys.keys = [ \"{}\" ];",
        public.trim()
    );
    env.create_booting_with(&name, &["--config", &config]);
    let written =
        std::fs::read_to_string(env.root_path(&name).join("etc/nixos/configuration.nix")).unwrap();
    assert!(
        written.contains(&config),
        "configuration.nix holds the snippet as nixos-container writes it"
    );
    assert_eq!(stdout(&env.run(&["status", &name])), "down\n");
    assert!(
        !env.run(&["show-host-key", &name]).status.success(),
        "no host key before the first boot"
    );

    assert_ok(&env.run(&["start", &name]), "start");
    let ip = stdout(&env.run(&["show-ip", &name])).trim().to_string();
    // The host key was generated in the container on its first boot; ssh checks it strictly.
    let host_key = stdout(&env.run(&["show-host-key", &name]));
    assert!(host_key.starts_with("ssh-ed25519 "), "{host_key}");
    let known_hosts = env.prefix().join("known_hosts");
    std::fs::write(&known_hosts, format!("{ip} {host_key}")).unwrap();
    let out = ssh(&env, &key, &known_hosts, &ip, "uname -n");
    assert_ok(&out, "ssh with the key and a strict host key check");
    assert_eq!(stdout(&out), format!("{name}\n"));
    // A wrong host key is refused.
    let other = env.prefix().join("other");
    Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    std::fs::write(
        &known_hosts,
        format!(
            "{ip} {}",
            std::fs::read_to_string(other.with_extension("pub")).unwrap()
        ),
    )
    .unwrap();
    assert!(!ssh(&env, &key, &known_hosts, &ip, "true").status.success());
    std::fs::write(&known_hosts, format!("{ip} {host_key}")).unwrap();

    // The firewall is on: a listener on a port nobody opened is unreachable from the host but
    // answers inside.
    let out = env.run(&[
        "run",
        &name,
        "--",
        "systemd-run",
        "--unit=probe",
        "python3",
        "-m",
        "http.server",
        "8081",
        "--directory",
        "/etc",
    ]);
    assert_ok(&out, "systemd-run");
    let inside = || {
        let out = env.run(&[
            "run",
            &name,
            "--",
            "python3",
            "-c",
            "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8081/').status)",
        ]);
        stdout(&out) == "200\n"
    };
    assert!(
        eventually(Duration::from_secs(10), inside),
        "the probe answers inside"
    );
    assert!(
        http_get(&ip, 8081).is_err(),
        "port 8081 is not allowed and must be unreachable from the host"
    );

    // Live update to Apache: configuration.nix overwritten, units switched, no reboot.
    let before = leader(&env, &name);
    let update = "services.httpd.enable = true; services.httpd.adminAddr = \"foo@example.org\"; networking.firewall.allowedTCPPorts = [ 80 ];";
    let out = env.run(&["update", &name, "--config", update]);
    assert_ok(&out, "update");
    assert_eq!(stderr(&out), "reloading container...\n");
    assert_eq!(
        leader(&env, &name),
        before,
        "update switches live, it does not reboot"
    );
    let written =
        std::fs::read_to_string(env.root_path(&name).join("etc/nixos/configuration.nix")).unwrap();
    assert!(
        written.contains(update) && !written.contains("openssh"),
        "{written}"
    );
    // httpd is a simple service: it is started, and listens a moment later.
    assert!(eventually(Duration::from_secs(10), || http_get(&ip, 80).is_ok()));
    let page = http_get(&ip, 80).unwrap();
    assert!(
        page.starts_with("HTTP/1.1 200 OK") && page.contains("It works"),
        "{page}"
    );
    // sshd is gone with its option, and so is its open port.
    let out = env.run(&["run", &name, "--", "systemctl", "is-active", "sshd.service"]);
    assert_eq!(stdout(&out), "inactive\n");
    assert!(http_get(&ip, 8081).is_err());

    // A configuration that does not build changes nothing.
    let out = env.run(&[
        "update",
        &name,
        "--config",
        "services.httpd.enable = \"yes\";",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--config:1:1: the option ‘services.httpd.enable’ has a wrong type"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(env.root_path(&name).join("etc/nixos/configuration.nix")).unwrap(),
        written
    );
    // One that builds but whose service fails to start is rolled back: Apache keeps serving.
    let failing = format!(
        "{update} systemd.services.broken = {{ script = \"exit 3\"; wantedBy = [ \"multi-user.target\" ]; serviceConfig.Type = \"oneshot\"; }};"
    );
    let out = env.run(&["update", &name, "--config", &failing]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("broken.service"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(env.root_path(&name).join("etc/nixos/configuration.nix")).unwrap(),
        written
    );
    assert!(
        !env.root_path(&name)
            .join("etc/systemd/system/broken.service")
            .exists()
    );
    assert!(http_get(&ip, 80).unwrap().contains("It works"));

    // Stop and start keep the configuration.
    assert_ok(&env.run(&["stop", &name]), "stop");
    assert!(http_get(&ip, 80).is_err());
    assert_ok(&env.run(&["start", &name]), "start");
    assert!(eventually(Duration::from_secs(10), || http_get(&ip, 80)
        .is_ok_and(|p| p.contains("It works"))));

    assert_ok(&env.run(&["destroy", &name]), "destroy");
    assert_no_debris(&env, &name);
}

#[test]
fn config_file_with_imports_and_explicit_addresses() {
    require_root();
    let env = Env::new();
    let name = unique_name("tst");
    let dir = env.prefix().join("cfg");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("test-container.nix"),
        "{ config, lib, pkgs, ... }:\n{\n  imports = [ ./users.nix ];\n  time.timeZone = \"Europe/Amsterdam\";\n  \
         environment.etc.\"motd\".text = ''\n    welcome to the test container\n  '';\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("users.nix"),
        "{\n  users.users.alice = { isNormalUser = true; initialPassword = \"wonderland\"; extraGroups = [ \"wheel\" ]; };\n}\n",
    )
    .unwrap();
    let (host, local) = env.test_addresses_in(235);
    let file = dir.join("test-container.nix");
    env.create(
        &name,
        &[
            "--config-file",
            file.to_str().unwrap(),
            "--local-address",
            &local,
            "--host-address",
            &host,
        ],
    );
    let written =
        std::fs::read_to_string(env.root_path(&name).join("etc/nixos/configuration.nix")).unwrap();
    assert!(
        written.contains(&format!("imports = [ {} ];", file.display())),
        "{written}"
    );

    assert_ok(&env.run(&["start", &name]), "start");
    assert_eq!(stdout(&env.run(&["show-ip", &name])), format!("{local}\n"));
    let run = |args: &[&str]| {
        let mut all = vec!["run", name.as_str(), "--"];
        all.extend_from_slice(args);
        stdout(&env.run(&all))
    };
    assert_eq!(
        run(&["cat", "/etc/motd"]),
        "welcome to the test container\n"
    );
    let zone = run(&["date", "+%Z"]);
    assert!(
        zone == "CET\n" || zone == "CEST\n",
        "Europe/Amsterdam is CET or CEST: {zone}"
    );
    assert_eq!(run(&["id", "-nG", "alice"]), "users wheel\n");
    assert_eq!(
        run(&["ip", "-4", "-o", "addr", "show", "dev", "eth0"])
            .split_whitespace()
            .nth(3),
        Some(format!("{local}/32").as_str())
    );

    // Password login through /bin/login and PAM in a pty inside; a wrong password is refused.
    let mut s = Session::on_pipes(&env, &["login", &name]);
    s.expect(&format!("{name} login: "));
    s.send("alice\n");
    s.expect("Password: ");
    s.send("not-the-password\n");
    s.expect("Login incorrect");
    s.expect("login: ");
    s.send("alice\n");
    s.expect("Password: ");
    s.send("wonderland\n");
    s.expect("$ ");
    s.send("echo \"I am $(id -un)\"\n");
    s.expect("I am alice");
    s.close_input();
    s.expect("logout");
    s.finish();

    // Editing configuration.nix and `update` without flags rebuilds from it.
    let config_nix = env.root_path(&name).join("etc/nixos/configuration.nix");
    let edited = written.replace(
        "networking.useDHCP = false;",
        "networking.useDHCP = false;\n  users.users.bob.isNormalUser = true;",
    );
    std::fs::write(&config_nix, &edited).unwrap();
    assert_ok(
        &env.run(&["update", &name]),
        "update from the edited configuration.nix",
    );
    assert_eq!(run(&["id", "-un", "bob"]), "bob\n");
    // An error in an imported file points at it.
    std::fs::write(
        dir.join("users.nix"),
        "{\n  users.users.alice.isNormalUser = \"yes\";\n}\n",
    )
    .unwrap();
    let out = env.run(&["update", &name]);
    assert!(
        stderr(&out).contains(&format!("{}:2:3:", dir.join("users.nix").display())),
        "{}",
        stderr(&out)
    );

    assert_ok(&env.run(&["destroy", &name]), "destroy");
    assert_no_debris(&env, &name);
}

#[test]
fn failed_create_leaves_nothing() {
    // nixos-container's own test: `create b0rk --config-file broken.nix` fails and leaves no state.
    let env = Env::new();
    let broken = env.prefix().join("broken.nix");
    std::fs::write(
        &broken,
        "{ config, pkgs, ... }: { services.openssh.enable = pkgs.runCommand \"x\" { } \"\"; }",
    )
    .unwrap();
    let before = env.snapshot();
    let out = env.run(&["create", "b0rk", "--config-file", broken.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("broken.nix:1:"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Nix"),
        "says a Nix host builds it: {}",
        stderr(&out)
    );
    assert!(!env.root_path("b0rk").exists() && !env.conf_path("b0rk").exists());
    let after = env.snapshot();
    let created: Vec<_> = after
        .iter()
        .filter(|e| !before.contains(e))
        .map(|e| e.0.clone())
        .collect();
    // Only the directories every invocation may make (the conf and state dirs) can be new.
    assert!(
        created
            .iter()
            .all(|p| !p.starts_with(env.prefix().join("var/lib/nixos-containers/b0rk"))),
        "{created:?}"
    );
    assert!(!env.prefix().join("etc/nixos-containers/b0rk.conf").exists());
}
