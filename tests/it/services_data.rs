//! Data and network services realized by the native builder from the host's Debian packages:
//! PostgreSQL, MariaDB, Mosquitto, dnsmasq, Caddy, each booted in a real container and reached
//! with its own client (Caddy's container also has sshd, for a user whose name is not its
//! attribute's and whose key comes from a key file).

use std::process::{Command, Output};
use std::time::Duration;

use crate::common::*;

const PSQL: &str = "/usr/lib/postgresql/15/bin/psql";

/// `ncsh run NAME -- ARGS…`.
fn inside(env: &Env, name: &str, args: &[&str]) -> Output {
    env.run_inside(name, args)
}

/// psql inside the container as the postgres user (peer authentication over the socket).
fn psql_inside(env: &Env, name: &str, sql: &str) -> String {
    let out = inside(
        env,
        name,
        &[
            "setpriv",
            "--reuid=postgres",
            "--regid=postgres",
            "--clear-groups",
            PSQL,
            "-X",
            "-tA",
            "-d",
            "postgres",
            "-c",
            sql,
        ],
    );
    assert_ok(&out, sql);
    stdout(&out)
}

#[test]
fn postgresql_ensures_databases_and_users_and_keeps_data() {
    require_root();
    let env = Env::new();
    let name = unique_name("pg");
    let (host, ip) = env.test_addresses();
    let config = format!(
        "services.postgresql = {{ enable = true; enableTCPIP = true; \
         authentication = \"host all all {host}/32 trust\"; \
         ensureDatabases = [ \"shop\" ]; \
         ensureUsers = [ {{ name = \"shop\"; ensureDBOwnership = true; ensureClauses.createdb = true; }} ]; \
         initialScript = \"CREATE TABLE first (x int); INSERT INTO first VALUES (1);\"; \
         settings.max_connections = 23; }};\n\
         networking.firewall.allowedTCPPorts = [ 5432 ];"
    );
    env.create(
        &name,
        &[
            "--host-address",
            &host,
            "--local-address",
            &ip,
            "--config",
            &config,
        ],
    );
    assert_ok(&env.run(&["start", &name]), "start");
    // Type=notify and the setup in ExecStartPost: once booted, the database is ready and ensured.
    assert_eq!(
        psql_inside(
            &env,
            &name,
            "SELECT datname, pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'shop'"
        ),
        "shop|shop\n"
    );
    assert_eq!(
        psql_inside(
            &env,
            &name,
            "SELECT rolcanlogin, rolcreatedb, rolsuper FROM pg_roles WHERE rolname = 'shop'"
        ),
        "t|t|f\n"
    );
    assert_eq!(psql_inside(&env, &name, "SHOW max_connections"), "23\n");
    assert_eq!(psql_inside(&env, &name, "SELECT x FROM first"), "1\n");
    // root has no role: peer authentication, as on NixOS.
    let out = inside(&env, &name, &[PSQL, "-X", "-d", "postgres", "-c", ""]);
    assert!(
        stderr(&out).contains("role \"root\" does not exist"),
        "{}",
        stderr(&out)
    );

    // From the host over TCP, with the trust line for the host's address.
    let tcp = |sql: &str| {
        Command::new(PSQL)
            .args([
                "-X",
                "-tA",
                &format!("host={ip} port=5432 user=shop dbname=shop connect_timeout=5"),
                "-c",
                sql,
            ])
            .output()
            .unwrap()
    };
    let out = tcp("SELECT current_user, current_database()");
    assert_ok(&out, "psql over TCP");
    assert_eq!(stdout(&out), "shop|shop\n");
    assert_ok(
        &tcp("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here');"),
        "create a table as shop",
    );

    // A restart keeps the data; the ensured steps are idempotent and the initial script does
    // not run again (it would fail: the table exists).
    assert_ok(&env.run(&["stop", &name]), "stop");
    assert_ok(&env.run(&["start", &name]), "start again");
    assert_eq!(
        stdout(&inside(
            &env,
            &name,
            &["systemctl", "is-active", "postgresql.service"]
        )),
        "active\n"
    );
    assert_eq!(
        stdout(&tcp("SELECT v FROM kept")),
        "still here\n",
        "data survives a restart"
    );
    assert_eq!(
        psql_inside(&env, &name, "SELECT count(*) FROM first"),
        "1\n"
    );

    // A live update that ensures one more database restarts the server, which ensures it; the
    // data stays.
    let more = config.replace("[ \"shop\" ]", "[ \"shop\" \"extra\" ]");
    assert_ne!(more, config);
    assert_ok(&env.run(&["update", &name, "--config", &more]), "update");
    assert_eq!(
        psql_inside(
            &env,
            &name,
            "SELECT datname FROM pg_database WHERE datname IN ('shop', 'extra') ORDER BY 1"
        ),
        "extra\nshop\n"
    );
    assert_eq!(stdout(&tcp("SELECT v FROM kept")), "still here\n");

    // A package of another major version is refused, naming both.
    let out = env.run(&[
        "update",
        &name,
        "--config",
        "services.postgresql = { enable = true; package = { type = \"derivation\"; name = \"postgresql-16.4\"; version = \"16.4\"; }; };",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("postgresql-16.4 (PostgreSQL 16.4), but this host has PostgreSQL 15"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn mysql_as_mariadb_ensures_databases_users_and_grants() {
    require_root();
    let env = Env::new();
    let name = unique_name("my");
    let schema = env.prefix().join("inventory.sql");
    std::fs::write(
        &schema,
        "CREATE TABLE items (id int); INSERT INTO items VALUES (7);\n",
    )
    .unwrap();
    // The initial script runs once, after the initial databases (it counts their rows), as the
    // database's superuser.
    let script = env.prefix().join("initial.sql");
    std::fs::write(
        &script,
        "CREATE TABLE inventory.seen (n int);\n\
         INSERT INTO inventory.seen SELECT count(*) FROM inventory.items;\n\
         CREATE USER 'bob'@'localhost' IDENTIFIED BY 'secret';\n",
    )
    .unwrap();
    let config = format!(
        "services.mysql = {{ enable = true; ensureDatabases = [ \"shop\" ]; \
         ensureUsers = [ {{ name = \"alice\"; ensurePermissions = {{ \"shop.*\" = \"ALL PRIVILEGES\"; }}; }} ]; \
         initialDatabases = [ {{ name = \"inventory\"; schema = {}; }} ]; \
         initialScript = {}; \
         settings.mysqld = {{ bind-address = \"127.0.0.1\"; max_connections = 17; }}; }};",
        schema.display(),
        script.display()
    );
    env.create_booting_with(&name, &["--config", &config]);
    assert_ok(&env.run(&["start", &name]), "start");
    let query = |sql: &str| {
        let out = inside(&env, &name, &["mariadb", "-N", "-B", "-e", sql]);
        assert_ok(&out, sql);
        stdout(&out)
    };
    // Type=notify and the setup in ExecStartPost: once booted, the server is ready and ensured.
    assert_eq!(query("SHOW DATABASES LIKE 'shop'"), "shop\n");
    assert_eq!(
        query("SHOW GRANTS FOR 'alice'@'localhost'"),
        "GRANT USAGE ON *.* TO `alice`@`localhost` IDENTIFIED VIA unix_socket\n\
         GRANT ALL PRIVILEGES ON `shop`.* TO `alice`@`localhost`\n"
    );
    assert_eq!(query("SELECT id FROM inventory.items"), "7\n");
    assert_eq!(query("SELECT n FROM inventory.seen"), "1\n");
    assert_eq!(
        query("SELECT user FROM mysql.user WHERE user = 'bob'"),
        "bob\n"
    );
    // It may hold passwords: only root reads the copy in the container.
    let mode = inside(
        &env,
        &name,
        &["stat", "-c", "%a %U", "/etc/ncsh/mysql/initial-script.sql"],
    );
    assert_eq!(stdout(&mode), "600 root\n");
    assert_eq!(
        query("SELECT @@max_connections, @@bind_address, @@port"),
        "17\t127.0.0.1\t3306\n"
    );
    query("INSERT INTO inventory.items VALUES (8)");

    // A restart keeps the data, and the initial database is not made again.
    assert_ok(&env.run(&["stop", &name]), "stop");
    assert_ok(&env.run(&["start", &name]), "start again");
    assert_eq!(
        query("SELECT id FROM inventory.items ORDER BY id"),
        "7\n8\n"
    );
    assert_eq!(query("SHOW DATABASES LIKE 'shop'"), "shop\n");
    // Nor is the initial script run again (its CREATE TABLE would fail the start).
    assert_eq!(query("SELECT count(*) FROM inventory.seen"), "1\n");
}

#[test]
fn mosquitto_listener_with_users_passwords_and_acls() {
    require_root();
    let env = Env::new();
    let name = unique_name("mq");
    // bob's hash is made on the host, as a user of hashedPassword would.
    let file = env.prefix().join("passwd");
    let made = Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&file)
        .args(["bob", "builder"])
        .status()
        .unwrap();
    assert!(made.success());
    let hash = std::fs::read_to_string(&file).unwrap();
    let hash = hash.trim().strip_prefix("bob:").unwrap().to_string();
    // A second listener authenticates with an auth plugin: Mosquitto's dynamic security
    // plugin, its configuration (an admin client) made on the host with mosquitto_ctrl. The
    // plugin is named as a NixOS configuration names it, in pkgs.mosquitto's lib.
    let dynsec = env.prefix().join("dynsec.json");
    let made = Command::new("mosquitto_ctrl")
        .args(["dynsec", "init"])
        .arg(&dynsec)
        .args(["admin", "adm pass"])
        .output()
        .unwrap();
    assert_ok(&made, "mosquitto_ctrl dynsec init");
    let config = format!(
        "services.mosquitto = {{ enable = true; listeners = [ {{ users = {{ \
         alice = {{ password = \"wonder land\"; acl = [ \"readwrite test/#\" ]; }}; \
         bob = {{ hashedPassword = \"{hash}\"; acl = [ \"read test/#\" ]; }}; }}; }} \
         {{ port = 1884; address = \"127.0.0.1\"; omitPasswordAuth = true; authPlugins = [ {{ \
           plugin = \"${{pkgs.mosquitto}}/lib/mosquitto_dynamic_security.so\"; \
           options.config_file = \"/etc/mosquitto/dynsec.json\"; }} ]; }} ]; }};\n\
         environment.etc.\"mosquitto/dynsec.json\".source = {};\n\
         networking.firewall.allowedTCPPorts = [ 1883 ];",
        dynsec.display()
    );
    let (_, ip) = env.create_booting_with(&name, &["--config", &config]);
    assert_ok(&env.run(&["start", &name]), "start");
    let mqtt = |program: &str, user: Option<(&str, &str)>, args: &[&str]| {
        let mut cmd = Command::new(program);
        cmd.args(["-h", &ip, "-p", "1883"]);
        if let Some((u, p)) = user {
            cmd.args(["-u", u, "-P", p]);
        }
        cmd.args(args).output().unwrap()
    };
    let read = |user| {
        mqtt(
            "mosquitto_sub",
            user,
            &["-t", "test/#", "-C", "1", "-W", "5"],
        )
    };
    // Type=notify: the broker is listening once the container has booted.
    let out = mqtt(
        "mosquitto_pub",
        Some(("alice", "wonder land")),
        &["-t", "test/a", "-m", "hello", "-r", "-q", "1"],
    );
    assert_ok(&out, "alice publishes");
    let out = read(Some(("alice", "wonder land")));
    assert_ok(&out, "alice reads");
    assert_eq!(stdout(&out), "hello\n");
    // bob reads with his hashed password; his publication is outside his ACL and dropped.
    let out = read(Some(("bob", "builder")));
    assert_ok(&out, "bob reads");
    assert_eq!(stdout(&out), "hello\n");
    let out = mqtt(
        "mosquitto_pub",
        Some(("bob", "builder")),
        &["-t", "test/a", "-m", "bob was here", "-r", "-q", "1"],
    );
    assert_ok(&out, "bob's publish is accepted by the protocol");
    assert_eq!(stdout(&read(Some(("alice", "wonder land")))), "hello\n");
    // A wrong password and an anonymous client are refused.
    for user in [Some(("alice", "wrong")), None] {
        let out = read(user);
        assert!(!out.status.success(), "{user:?}");
        assert!(
            stderr(&out).contains("not authorised"),
            "{user:?}: {}",
            stderr(&out)
        );
    }

    // authPlugins: the lines NixOS writes, with the plugin where Debian has it…
    let plugin = std::fs::read_dir("/usr/lib")
        .unwrap()
        .map(|e| e.unwrap().path().join("mosquitto_dynamic_security.so"))
        .find(|p| p.exists())
        .expect("mosquitto's dynamic security plugin in /usr/lib/TRIPLET");
    let conf =
        std::fs::read_to_string(env.root_path(&name).join("etc/mosquitto/mosquitto.conf")).unwrap();
    assert!(
        conf.contains(&format!(
            "listener 1884 127.0.0.1\nacl_file /etc/mosquitto/acl-1.conf\n\
             auth_plugin {}\nauth_plugin_deny_special_chars true\n\
             auth_opt_config_file /etc/mosquitto/dynsec.json\n",
            plugin.display()
        )),
        "{conf}"
    );
    // …which the broker loaded: its admin client asks it for the clients it knows, inside.
    let ctrl = |password: &str| {
        inside(
            &env,
            &name,
            &[
                "mosquitto_ctrl",
                "-h",
                "127.0.0.1",
                "-p",
                "1884",
                "-u",
                "admin",
                "-P",
                password,
                "dynsec",
                "listClients",
            ],
        )
    };
    let out = ctrl("adm pass");
    assert_ok(&out, "mosquitto_ctrl as the plugin's admin");
    assert_eq!(stdout(&out), "admin\n", "{}", stderr(&out));
    let out = ctrl("wrong");
    assert!(
        stdout(&out).is_empty() && stderr(&out).contains("Not authorized"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

/// A DNS query for NAME's A record to 127.0.0.1:53, sent by python3 inside the container:
/// prints the addresses of the answer, or `rcode N` when there is none.
const DNS_QUERY: &str = r#"
import socket, struct, sys
name = sys.argv[1]
q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
q += struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(q, ("127.0.0.1", 53))
r = s.recv(512)
ident, flags, qd, an = struct.unpack(">HHHH", r[:8])
assert ident == 0x1234
if an == 0:
    print("rcode", flags & 15)
i = len(q)
for _ in range(an):
    if r[i] & 0xC0 == 0xC0:
        i += 2
    else:
        while r[i]: i += r[i] + 1
        i += 1
    rtype, _, _, length = struct.unpack(">HHIH", r[i:i + 10])
    i += 10
    if rtype == 1:
        print(".".join(str(b) for b in r[i:i + length]))
    i += length
"#;

#[test]
fn dnsmasq_answers_its_addresses_inside_the_container() {
    require_root();
    let env = Env::new();
    let name = unique_name("dns");
    let config = "services.dnsmasq = { enable = true; settings = { \
                  address = [ \"/example.test/10.1.2.3\" \"/other.test/10.4.5.6\" ]; \
                  no-hosts = true; domain-needed = true; bogus-priv = false; }; };";
    env.create_booting_with(&name, &["--config", config]);
    assert_ok(&env.run(&["start", &name]), "start");
    let query = |host: &str| {
        let out = inside(&env, &name, &["python3", "-c", DNS_QUERY, host]);
        assert_ok(&out, host);
        stdout(&out)
    };
    // Type=dbus: dnsmasq is up once the container has booted.
    assert_eq!(query("example.test"), "10.1.2.3\n");
    assert_eq!(query("www.example.test"), "10.1.2.3\n");
    assert_eq!(query("other.test"), "10.4.5.6\n");
    // No upstream server: anything else is not answered (and nothing leaves the container).
    assert_ne!(query("unknown.test"), "10.1.2.3\n");
    assert!(query("unknown.test").starts_with("rcode "));
    // resolveLocalQueries: the container's own lookups go through dnsmasq.
    let out = inside(&env, &name, &["getent", "hosts", "a.other.test"]);
    assert_ok(&out, "getent hosts");
    assert_eq!(
        stdout(&out).split_whitespace().collect::<Vec<_>>(),
        ["10.4.5.6", "a.other.test"]
    );
    // The rendering: lists repeat their key, true is the bare key, false is left out.
    let conf = std::fs::read_to_string(env.root_path(&name).join("etc/dnsmasq.conf")).unwrap();
    assert!(
        conf.contains("address=/example.test/10.1.2.3\naddress=/other.test/10.4.5.6\n")
            && conf.contains("\ndomain-needed\n")
            && !conf.contains("\nbogus-priv"),
        "{conf}"
    );
}

/// A key in users.users.<n>.openssh.authorizedKeys.keys (no one holds its private half).
const INLINE_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ4Yb0kwmKpSSRSkZGbDVS8wq3Ytn6V8rF2gKmjQ9Gse inline";

#[test]
fn caddy_serves_a_plain_http_virtual_host_and_its_alias() {
    require_root();
    let env = Env::new();
    let name = unique_name("cad");
    // A user whose account name differs from its attribute's, with a key from a key file.
    let key = env.prefix().join("id_ed25519");
    let keygen = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "from-a-key-file",
            "-f",
        ])
        .arg(&key)
        .status()
        .unwrap();
    assert!(keygen.success());
    let config = format!(
        "services.caddy = {{ enable = true; adapter = \"caddyfile\"; email = \"admin@example.test\"; \
         virtualHosts.\"http://site.test\" = {{ serverAliases = [ \"http://alias.test\" ]; \
         extraConfig = \"respond \\\"hello from caddy\\\"\"; }}; }};\n\
         networking.firewall.allowedTCPPorts = [ 80 ];\n\
         services.openssh.enable = true;\n\
         users.users.web = {{ name = \"webmaster\"; isNormalUser = true; \
         openssh.authorizedKeys.keys = [ \"{INLINE_KEY}\" ]; \
         openssh.authorizedKeys.keyFiles = [ {} ]; }};",
        key.with_extension("pub").display()
    );
    let (_, ip) = env.create_booting_with(&name, &["--config", &config]);
    assert_ok(&env.run(&["start", &name]), "start");
    let get = |host: &str| {
        let out = Command::new("curl")
            .args(["-s", "-m", "5", "-w", "\n%{http_code}", "-H"])
            .arg(format!("Host: {host}"))
            .arg(format!("http://{ip}/"))
            .output()
            .unwrap();
        stdout(&out)
    };
    // Type=notify: Caddy listens once the container has booted.
    assert_eq!(get("site.test"), "hello from caddy\n200");
    assert_eq!(get("alias.test"), "hello from caddy\n200");
    assert!(!get("other.test").contains("hello"));
    // Each site has its access log in logDir, as NixOS's default logFormat writes it.
    let logged = || {
        let log = inside(&env, &name, &["cat", "/var/log/caddy/access-site.test.log"]);
        stdout(&log).contains("\"host\":\"alias.test\"")
    };
    assert!(eventually(Duration::from_secs(5), logged), "the access log");
    let unit = std::fs::read_to_string(
        env.root_path(&name)
            .join("etc/systemd/system/caddy.service"),
    )
    .unwrap();
    assert!(
        unit.contains(
            "ExecStart=/usr/bin/caddy run --config /etc/caddy/Caddyfile --adapter caddyfile\n"
        ),
        "{unit}"
    );

    // users.users.web.name: the account is webmaster (home included), and there is no web.
    let out = inside(&env, &name, &["getent", "passwd", "webmaster"]);
    assert_ok(&out, "getent passwd webmaster");
    assert!(
        stdout(&out).contains(":/home/webmaster:/bin/bash"),
        "{}",
        stdout(&out)
    );
    assert!(
        !inside(&env, &name, &["getent", "passwd", "web"])
            .status
            .success()
    );
    // keyFiles: the file's key after the keys, under the account's name.
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let keys = inside(
        &env,
        &name,
        &["cat", "/etc/ssh/authorized_keys.d/webmaster"],
    );
    assert_eq!(stdout(&keys), format!("{INLINE_KEY}\n{public}"));
    // …and sshd lets its holder in as webmaster (with a strict host key check).
    let known_hosts = env.prefix().join("known_hosts");
    let host_key = stdout(&env.run(&["show-host-key", &name]));
    std::fs::write(&known_hosts, format!("{ip} {host_key}")).unwrap();
    let out = Command::new("ssh")
        .arg("-i")
        .arg(&key)
        .args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
        .args(["-o", "ConnectTimeout=5", "-o"])
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .arg(format!("webmaster@{ip}"))
        .arg("id -un; pwd")
        .env("HOME", env.prefix())
        .output()
        .unwrap();
    assert_ok(&out, "ssh as webmaster with the key of the key file");
    assert_eq!(stdout(&out), "webmaster\n/home/webmaster\n");
}

#[test]
fn wrong_listener_attributes_and_adapters_say_what_is_valid() {
    let env = Env::new();
    let name = unique_name("bad");
    env.track(&name);
    let refused = |config: &str| {
        let out = env.run(&["create", &name, "--config", config]);
        assert!(!out.status.success(), "{config}");
        assert!(!env.conf_path(&name).exists() && !env.root_path(&name).exists());
        stderr(&out)
    };
    // The old NixOS option allowAnonymous in a listener: the listener's attributes are named,
    // and where mosquitto.conf's own settings go.
    let err = refused(
        "services.mosquitto = { enable = true; listeners = [ { port = 1883; } { allowAnonymous = true; } ]; };",
    );
    assert!(
        err.contains(
            "services.mosquitto.listeners element 2: unknown attribute ‘allowAnonymous’ of a \
             listener; a listener has only port, address, users, acl, omitPasswordAuth, settings, \
             authPlugins (mosquitto.conf's per-listener settings go in settings, e.g. \
             settings.allow_anonymous)"
        ),
        "{err}"
    );
    let err = refused(
        "services.mosquitto = { enable = true; listeners = [ { authPlugins = [ { plugin = \"/x.so\"; denySpecialChar = false; } ]; } ]; };",
    );
    assert!(
        err.contains(
            "services.mosquitto.listeners element 1.authPlugins element 1: unknown attribute \
             ‘denySpecialChar’ of an auth plugin; an auth plugin has only plugin, options, \
             denySpecialChars; did you mean denySpecialChars?"
        ),
        "{err}"
    );
    // As NixOS asserts: the generated Caddyfile takes the caddyfile adapter.
    let err = refused("services.caddy = { enable = true; adapter = \"json\"; };");
    assert!(
        err.contains(
            "services.caddy.adapter is ‘json’: to specify an adapter other than 'caddyfile'"
        ),
        "{err}"
    );
}

#[test]
fn an_option_only_a_nix_host_builds_is_one_clear_error() {
    let env = Env::new();
    let name = unique_name("nxc");
    env.track(&name);
    let out = env.run(&[
        "create",
        &name,
        "--config",
        "services.nextcloud.enable = true;",
    ]);
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out),
        "ncsh: --config:1:1: the option ‘services.nextcloud.enable’ is built only by a Nix host: \
         the native builder does not realize services.nextcloud (Debian has no Nextcloud package \
         to run it from); build this container on a host with Nix (NCSH_BUILDER=nix, with \
         nix-env and <nixpkgs/nixos>)\n"
    );
    assert!(!env.conf_path(&name).exists() && !env.root_path(&name).exists());
}
