//! Options published NixOS container configurations use (/work/pubcorpus), in a real
//! container: networking.domain (the FQDN), networking.defaultGateway (the route the unit
//! sets), systemd.tmpfiles.settings (applied at boot and on a switch), users.users.<n>.homeMode
//! security.pam.services.sudo.limits and services.openssh.listenAddresses.

use crate::common::*;

fn inside(env: &Env, name: &str, argv: &[&str]) -> (String, String) {
    let out = env.run_inside(name, argv);
    (stdout(&out), stderr(&out))
}

#[test]
fn domain_gateway_tmpfiles_settings_and_home_mode() {
    require_root();
    let env = Env::new();
    let name = unique_name("pub");
    let (host, local) = env.test_addresses();
    let host_ip = host.split('/').next().unwrap().to_string();
    let config = |extra: &str| {
        format!(
            "networking.domain = \"example.test\";\n\
             networking.defaultGateway = {{ address = \"{host_ip}\"; interface = \"eth0\"; metric = 7; }};\n\
             services.resolved.enable = false;\n\
             services.openssh = {{ enable = true; listenAddresses = [ {{ addr = \"127.0.0.1\"; port = 2222; }} ]; }};\n\
             security.pam.services.sudo.limits = [ {{ domain = \"root\"; type = \"-\"; item = \"nofile\"; value = 1234; }} ];\n\
             users.users.alice = {{ isNormalUser = true; homeMode = \"750\"; }};\n\
             services.openssh.permitRootLogin = \"no\";\n\
             users.extraUsers.carol.isNormalUser = true;\n\
             nixpkgs.config.allowUnfree = true;\n\
             hardware.bluetooth.enable = false;\n\
             assertions = [ {{ assertion = config.services.openssh.enable; message = \"needs sshd\"; }} ];\n\
             systemd.tmpfiles.settings.\"10-app\" = {{\n\
               \"/var/lib/app\".d = {{ mode = \"0710\"; user = \"alice\"; group = \"users\"; }};\n\
               {extra} }};\n"
        )
    };
    env.track(&name);
    let out = env.run(&[
        "create",
        &name,
        "--host-address",
        &host,
        "--local-address",
        &local,
        "--config",
        &config(""),
    ]);
    assert_ok(&out, "create");
    // Old names NixOS renamed are the new ones, with NixOS's warning.
    assert!(
        stderr(&out).contains(
            "warning: The option `services.openssh.permitRootLogin' has been renamed to \
             `services.openssh.settings.PermitRootLogin'."
        ),
        "{}",
        stderr(&out)
    );
    assert_ok(&env.run(&["start", &name]), "start");
    let (out, err) = inside(
        &env,
        &name,
        &[
            "sh",
            "-c",
            "sshd -T | grep -i '^permitrootlogin'; id -un carol",
        ],
    );
    assert_eq!(out, "permitrootlogin no\ncarol\n", "{err}");

    let (out, err) = inside(&env, &name, &["getent", "hosts", name.as_str()]);
    assert!(
        out.starts_with("127.0.0.2") && out.contains(&format!(" {name}.example.test {name}")),
        "{out}{err}"
    );
    let (out, err) = inside(&env, &name, &["ip", "route", "show", "default"]);
    assert!(
        out.contains(&format!("default via {host_ip} dev eth0 metric 7")),
        "{out}{err}"
    );
    let (out, err) = inside(
        &env,
        &name,
        &["stat", "-c", "%a %U %G", "/var/lib/app", "/home/alice"],
    );
    assert_eq!(out, "710 alice users\n750 alice users\n", "{err}");

    // pam_limits in sudo's stack, with the service's own limits file.
    let (out, err) = inside(&env, &name, &["sudo", "-n", "sh", "-c", "ulimit -n"]);
    assert_eq!(out, "1234\n", "{err}");

    // sshd listens where listenAddresses says, and not on ports' 22 everywhere.
    let listening = || inside(&env, &name, &["ss", "-ltnH"]).0;
    assert!(
        eventually(std::time::Duration::from_secs(10), || listening()
            .contains("127.0.0.1:2222 ")),
        "{}",
        listening()
    );
    assert!(!listening().contains(":22 "), "{}", listening());

    // A switch applies a changed setting.
    let out = env.run(&[
        "update",
        &name,
        "--config",
        &config("\"/var/lib/app/motd\".f = { argument = \"hi there\"; };"),
    ]);
    assert_ok(&out, "update");
    let (out, err) = inside(&env, &name, &["cat", "/var/lib/app/motd"]);
    assert_eq!(out, "hi there", "{err}");
    // An assertion that fails fails the update, which changes nothing.
    let out = env.run(&[
        "update",
        &name,
        "--config",
        &config("").replace("openssh = { enable = true;", "openssh = { enable = false;"),
    ]);
    assert!(
        !out.status.success() && stderr(&out).contains("Failed assertions:\n- needs sshd"),
        "{}",
        stderr(&out)
    );
    // sshd still runs.
    assert!(listening().contains("127.0.0.1:2222 "), "{}", listening());
    assert_ok(&env.run(&["destroy", &name]), "destroy");
}

#[test]
fn nginx_proxies_websocket_upgrades_with_tls_settings_on() {
    require_root();
    let env = Env::new();
    let name = unique_name("pws");
    let config = "services.nginx = { enable = true; enableReload = true; recommendedTlsSettings = true;\n\
         virtualHosts.front = { default = true;\n\
           locations.\"/ws/\" = { proxyPass = \"http://127.0.0.1:8081\"; proxyWebsockets = true; };\n\
           locations.\"/plain/\".proxyPass = \"http://127.0.0.1:8081\"; };\n\
         virtualHosts.backend = { listen = [ { addr = \"127.0.0.1\"; port = 8081; } ];\n\
           locations.\"/\".return = \"200 '$http_upgrade|$http_connection|$server_protocol'\"; }; };\n";
    env.create_booting_with(&name, &["--config", config]);
    assert_ok(&env.run(&["start", &name]), "start");
    let get = |path: &str| {
        let url = format!("http://127.0.0.1{path}");
        let out = env.run(&[
            "run",
            &name,
            "--",
            "curl",
            "-s",
            "-m",
            "5",
            "-H",
            "Upgrade: websocket",
            "-H",
            "Connection: Upgrade",
            &url,
        ]);
        stdout(&out)
    };
    assert!(
        eventually(std::time::Duration::from_secs(10), || !get("/ws/")
            .is_empty()),
        "nginx answers"
    );
    // The upgrade reaches the backend over HTTP/1.1 only where proxyWebsockets is on.
    assert_eq!(get("/ws/"), "websocket|upgrade|HTTP/1.1");
    assert_eq!(get("/plain/"), "|close|HTTP/1.0");
    assert_ok(&env.run(&["destroy", &name]), "destroy");
}
