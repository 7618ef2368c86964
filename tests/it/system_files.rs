//! System files in a real container: /etc/hosts from networking.hosts and extraHosts,
//! /etc/resolv.conf from networking.nameservers, group members, sudo with wheel and extra
//! rules, the locale, the time zone, and owners of environment.etc files.

use crate::common::*;

fn inside(env: &Env, name: &str, argv: &[&str]) -> (String, String, bool) {
    let out = env.run_inside(name, argv);
    (stdout(&out), stderr(&out), out.status.success())
}

#[test]
fn hosts_resolver_groups_sudo_locale_and_zone() {
    require_root();
    let env = Env::new();
    let name = unique_name("sys");
    let config = "networking.hosts = { \"10.1.2.3\" = [ \"db\" \"db.internal\" ]; };\n\
        networking.extraHosts = \"10.1.2.4 cache\";\n\
        networking.nameservers = [ \"127.0.0.1\" \"::1\" ];  # refused at once: lookups stay fast\n\
        users.users.bob = { isNormalUser = true; };\n\
        users.users.carol = { isNormalUser = true; };\n\
        users.groups.wheel.members = [ \"bob\" ];\n\
        users.groups.ops = { };\n\
        security.sudo = { wheelNeedsPassword = false;\n\
          extraRules = [ { users = [ \"carol\" ]; commands = [ { command = \"/usr/bin/id\"; options = [ \"NOPASSWD\" ]; } ]; } ]; };\n\
        i18n.defaultLocale = \"C.UTF-8\";\n\
        time.timeZone = \"Asia/Tokyo\";\n\
        environment.etc.\"app/secret\" = { text = \"s3cret\"; mode = \"0640\"; user = \"carol\"; group = \"ops\"; };\n";
    env.create_booting_with(&name, &["--config", config]);
    assert_ok(&env.run(&["start", &name]), "start");

    let (out, err, _) = inside(&env, &name, &["getent", "hosts", "db.internal", "cache"]);
    assert_eq!(
        out, "10.1.2.3        db db.internal\n10.1.2.4        cache\n",
        "{err}"
    );
    let (out, _, _) = inside(&env, &name, &["getent", "hosts", name.as_str()]);
    assert!(out.starts_with("127.0.0.2 "), "the host name stays: {out}");
    let (out, _, _) = inside(&env, &name, &["cat", "/etc/resolv.conf"]);
    assert!(
        out.contains("nameserver 127.0.0.1\nnameserver ::1\n"),
        "{out}"
    );

    // bob is in wheel by users.groups.wheel.members: sudo without a password.
    let (out, _, _) = inside(&env, &name, &["id", "-nG", "bob"]);
    assert_eq!(out, "users wheel\n");
    let (out, err, ok) = inside(
        &env,
        &name,
        &["su", "bob", "-s", "/bin/sh", "-c", "sudo -n id -u"],
    );
    assert!(ok, "{err}");
    assert_eq!(out, "0\n");
    // carol may run /usr/bin/id only.
    let (out, err, ok) = inside(
        &env,
        &name,
        &[
            "su",
            "carol",
            "-s",
            "/bin/sh",
            "-c",
            "sudo -n /usr/bin/id -un",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(out, "root\n");
    let (_, err, ok) = inside(
        &env,
        &name,
        &[
            "su",
            "carol",
            "-s",
            "/bin/sh",
            "-c",
            "sudo -n /usr/bin/true",
        ],
    );
    assert!(!ok, "carol may not run true as root");
    assert!(
        err.contains("password is required") || err.contains("not allowed"),
        "{err}"
    );

    // The locale and the time zone.
    let (out, _, _) = inside(&env, &name, &["cat", "/etc/locale.conf"]);
    assert_eq!(out, "LANG=C.UTF-8\n");
    let (out, _, _) = inside(&env, &name, &["bash", "-lc", "echo $LANG; date +%Z"]);
    assert_eq!(out, "C.UTF-8\nJST\n");
    let (out, _, _) = inside(&env, &name, &["readlink", "/etc/localtime"]);
    assert_eq!(out, "/usr/share/zoneinfo/Asia/Tokyo\n");

    // environment.etc with user and group: owned as asked, readable by carol only.
    let (out, _, _) = inside(&env, &name, &["stat", "-c", "%a %U %G", "/etc/app/secret"]);
    assert_eq!(out, "640 carol ops\n");
    let (out, _, _) = inside(
        &env,
        &name,
        &["su", "carol", "-s", "/bin/sh", "-c", "cat /etc/app/secret"],
    );
    assert_eq!(out, "s3cret");
    let (_, _, ok) = inside(
        &env,
        &name,
        &["su", "bob", "-s", "/bin/sh", "-c", "cat /etc/app/secret"],
    );
    assert!(!ok, "bob may not read it");
}
