//! services.redis in a real container: the server "" through the older spelling
//! (services.redis.{enable, bind}) on 6379, a named server on its own port with a password and
//! settings, both reached from the host with redis-cli.

use std::process::Command;

use crate::common::*;

fn redis_cli(ip: &str, port: &str, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", ip, "-p", port])
        .args(args)
        .env_remove("REDISCLI_AUTH")
        .output()
        .expect("running redis-cli (install the Debian package redis-tools)");
    format!("{}{}", stdout(&out), stderr(&out))
        .trim()
        .to_string()
}

#[test]
fn redis_two_servers_from_the_host() {
    require_root();
    let env = Env::new();
    let name = unique_name("rds");
    // Without a password Redis accepts only loopback clients (protected mode), on NixOS too.
    let config = "services.redis = { enable = true; bind = \"0.0.0.0\"; };\n\
        services.redis.servers.\"\".settings.protected-mode = false;\n\
        services.redis.servers.cache = { enable = true; port = 6380; bind = null; requirePass = \"s3cret\";\n\
          openFirewall = true; settings = { maxmemory = \"10mb\"; maxmemory-policy = \"allkeys-lru\"; }; };\n\
        networking.firewall.allowedTCPPorts = [ 6379 ];\n";
    let (_, ip) = env.create_booting_with(&name, &["--config", config]);
    assert_ok(&env.run(&["start", &name]), "start");
    // Type=notify: both are ready when the start returns.
    assert_eq!(redis_cli(&ip, "6379", &["PING"]), "PONG");
    assert_eq!(redis_cli(&ip, "6379", &["SET", "greeting", "moin"]), "OK");
    assert_eq!(redis_cli(&ip, "6379", &["GET", "greeting"]), "moin");
    // The second server is another process with its own data and a password.
    let refused = redis_cli(&ip, "6380", &["GET", "greeting"]);
    assert!(refused.contains("NOAUTH"), "{refused}");
    let auth = ["--no-auth-warning", "-a", "s3cret"];
    let with = |args: &[&str]| redis_cli(&ip, "6380", &[&auth[..], args].concat());
    assert_eq!(with(&["GET", "greeting"]), "", "a separate data set");
    assert_eq!(with(&["SET", "greeting", "hej"]), "OK");
    assert_eq!(with(&["CONFIG", "GET", "maxmemory"]), "maxmemory\n10485760");
    assert_eq!(
        with(&["CONFIG", "GET", "maxmemory-policy"]),
        "maxmemory-policy\nallkeys-lru"
    );
    assert_eq!(redis_cli(&ip, "6379", &["GET", "greeting"]), "moin");
    // Each runs as its own user, as on NixOS.
    let out = env.run(&[
        "run",
        &name,
        "--",
        "ps",
        "-o",
        "user=",
        "-C",
        "redis-server",
    ]);
    let mut users: Vec<String> = stdout(&out).lines().map(|l| l.trim().to_string()).collect();
    users.sort();
    assert_eq!(users, ["redis", "redis-cache"]);
    // The password is in no file other users can read.
    let out = env.run(&[
        "run",
        &name,
        "--",
        "stat",
        "-c",
        "%a %U",
        "/etc/redis/redis-cache.conf",
        "/var/lib/redis-cache/redis.conf",
    ]);
    assert_eq!(stdout(&out), "600 root\n600 redis-cache\n");
}
