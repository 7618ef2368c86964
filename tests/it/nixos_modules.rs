//! NixOS configurations as people write them, realized natively in real containers: `let`,
//! `with pkgs`, interpolation, `lib.mkIf`, an option of the module's own, `config.*`, imports,
//! `pkgs.writeShellScript`; and bad modules refused with every mistake at its place.

use crate::common::*;

const WEB_MODULE: &str = r#"{ config, pkgs, lib, ... }:

let
  cfg = config.services.hello;
  page = pkgs.writeTextDir "index.html" "hello from ${config.networking.hostName}\n";
in
{
  imports = [ ./greeting.nix ];

  options.services.hello = {
    enable = lib.mkEnableOption "the hello web server";
    port = lib.mkOption {
      type = lib.types.port;
      default = 8080;
      description = "The port it listens on.";
    };
  };

  config = lib.mkIf cfg.enable {
    environment.systemPackages = with pkgs; [ python3 curl ];
    networking.firewall.allowedTCPPorts = [ cfg.port ];
    systemd.services.hello = {
      description = "hello on port ${toString cfg.port}";
      wantedBy = [ "multi-user.target" ];
      serviceConfig.ExecStart =
        "${pkgs.python3}/bin/python3 -m http.server ${toString cfg.port} --directory ${page}";
      serviceConfig.ExecStartPre = "${pkgs.writeShellScript "hello-check" ''
        test -r ${page}/index.html
      ''}";
    };
  };
}
"#;

const GREETING_MODULE: &str = r#"{ lib, config, ... }:
with lib;
{
  services.hello.enable = mkDefault true;
  environment.etc."greeting".text = concatMapStringsSep "\n" (n: "hi ${n}") [ "a" "b" ] + "\n";
  users.users = genAttrs [ "ann" "ben" ] (n: { isNormalUser = true; });
}
"#;

#[test]
fn a_real_style_module_is_created_started_and_reached() {
    require_root();
    ensure_unreachable_routes();
    let env = Env::new();
    let name = unique_name("mod");
    let dir = env.prefix().join("cfg");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("web.nix"), WEB_MODULE).unwrap();
    std::fs::write(dir.join("greeting.nix"), GREETING_MODULE).unwrap();
    std::fs::write(
        dir.join("on-8081.nix"),
        "{ imports = [ ./web.nix ]; services.hello.port = 8081; }\n",
    )
    .unwrap();
    let file = dir.join("web.nix");
    let first = dir.join("on-8081.nix");
    let (_host, local) =
        env.create_booting_with(&name, &["--config-file", first.to_str().unwrap()]);
    assert_ok(&env.run(&["start", &name]), "start");
    let run = |args: &[&str]| {
        let mut all = vec!["run", name.as_str(), "--"];
        all.extend_from_slice(args);
        stdout(&env.run(&all))
    };
    assert_eq!(run(&["cat", "/etc/greeting"]), "hi a\nhi b\n");
    assert_eq!(run(&["id", "-un", "ben"]), "ben\n");
    assert!(
        eventually(std::time::Duration::from_secs(20), || {
            http_get(&local, 8081).is_ok_and(|r| r.contains(&format!("hello from {name}")))
        }),
        "the service of the module's own option answers on its port, through the firewall"
    );
    // The firewall opened only that port.
    assert!(http_get(&local, 8080).is_err());

    // A change of the own option moves the service (a live update).
    assert_ok(
        &env.run(&["update", &name, "--config-file", file.to_str().unwrap()]),
        "update back to the default port",
    );
    assert!(
        eventually(std::time::Duration::from_secs(20), || http_get(
            &local, 8080
        )
        .is_ok()),
        "default port after the update"
    );

    assert_ok(&env.run(&["destroy", &name]), "destroy");
    assert_no_debris(&env, &name);
}

#[test]
fn a_bad_module_reports_every_mistake_and_changes_nothing() {
    require_root();
    let env = Env::new();
    let name = unique_name("bad");
    let dir = env.prefix().join("cfg");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.nix");
    std::fs::write(
        &file,
        "{ lib, pkgs, ... }:\n{\n  services.openssh.enabel = true;\n  networking.firewall.allowedTCPPorts = [ \"80\" ];\n  services.nginx.virtualHost.x.root = \"/srv\";\n}\n",
    )
    .unwrap();
    // Files only: the first create makes ncsh's (empty) state directories and the lock file
    // all creates take (`/run/lock/nixos-container`, as the original's).
    let files = |env: &Env| -> Vec<_> {
        env.snapshot()
            .into_iter()
            .filter(|(p, _)| {
                !p.is_dir() && !p.ends_with("run/lock/nixos-container") && !p.starts_with(&dir)
            })
            .collect()
    };
    let before = files(&env);
    let out = env.run(&["create", &name, "--config-file", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    let at = |line: u32| format!("{}:{line}:3: ", file.display());
    assert!(
        err.contains(&format!("{}the option ‘services.openssh.enabel’ does not exist; did you mean services.openssh.enable?", at(3))),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{}the option ‘services.nginx.virtualHost.x.root’ does not exist",
            at(5)
        )),
        "{err}"
    );
    assert_eq!(files(&env), before, "a failed create changes nothing");

    // Wrong types are reported together too, once the names are right.
    std::fs::write(
        &file,
        "{ lib, ... }:\n{\n  services.openssh.enable = \"yes\";\n  networking.firewall.allowedTCPPorts = [ \"80\" ];\n}\n",
    )
    .unwrap();
    let err = stderr(&env.run(&["create", &name, "--config-file", file.to_str().unwrap()]));
    assert!(
        err.contains(&format!(
            "{}the option ‘services.openssh.enable’ has a wrong type",
            at(3)
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{}the option ‘networking.firewall.allowedTCPPorts’ has a wrong type",
            at(4)
        )),
        "{err}"
    );
    // A package the host lacks names the Debian package.
    let err = stderr(&env.run(&[
        "create",
        &name,
        "--config",
        "environment.systemPackages = [ pkgs.zsh-no-such ];",
    ]));
    assert!(err.contains("--config:1:"), "{err}");
    assert_eq!(files(&env), before, "failed creates change nothing");
}
