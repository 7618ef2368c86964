//! services.nginx in a real container: virtual hosts chosen by default_server and by the Host
//! header, a `return`, a proxyPass to a second server inside, gzip, the status page
//! (statusPage, for localhost only), and the firewall left closed unless the configuration
//! opens the port.

use std::process::Command;
use std::time::Duration;

use crate::common::*;

/// `curl -s` against the container, with extra arguments; (status line code, headers, body).
fn curl(ip: &str, path: &str, extra: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-s", "-m", "5", "-D", "-"])
        .args(extra)
        .arg(format!("http://{ip}{path}"))
        .output()
        .expect("running curl (install the Debian package curl)");
    let text = stdout(&out);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_string(), body.to_string())
}

#[test]
fn nginx_virtual_hosts_return_proxy_and_gzip() {
    require_root();
    let env = Env::new();
    let name = unique_name("ngx");
    let page = format!("<html><body>{}</body></html>\n", "other page ".repeat(60));
    let config = format!(
        "services.nginx = {{ enable = true; recommendedGzipSettings = true; recommendedOptimisation = true;\n\
         recommendedProxySettings = true; statusPage = true;\n\
         virtualHosts.site = {{ default = true;\n\
           locations.\"/\".return = \"200 'main says hi'\";\n\
           locations.\"/backend/\".proxyPass = \"http://127.0.0.1:8081/\"; }};\n\
         virtualHosts.blog = {{ serverName = \"other.example\"; serverAliases = [ \"www.other.example\" ]; root = \"/etc/www-other\"; }};\n\
         virtualHosts.backend = {{ listen = [ {{ addr = \"127.0.0.1\"; port = 8081; }} ];\n\
           locations.\"/\".return = \"200 'backend got $request_uri for $host via $http_x_forwarded_host'\"; }}; }};\n\
         environment.etc.\"www-other/index.html\".text = \"{page}\";\n"
    );
    let opened = format!("{config}networking.firewall.allowedTCPPorts = [ 80 ];\n");
    env.create_booting_with(&name, &["--config", &config]);
    assert_ok(&env.run(&["start", &name]), "start");
    let ip = stdout(&env.run(&["show-ip", &name])).trim().to_string();
    let active = env.run(&[
        "run",
        &name,
        "--",
        "systemctl",
        "is-active",
        "nginx.service",
    ]);
    assert_eq!(stdout(&active), "active\n", "nginx runs");
    // As on NixOS, enabling nginx opens nothing: port 80 is dropped until the firewall allows it.
    assert!(
        http_get(&ip, 80).is_err(),
        "port 80 must be closed by the firewall"
    );
    let inside = env.run(&["run", &name, "--", "curl", "-s", "http://127.0.0.1/"]);
    assert_eq!(stdout(&inside), "main says hi", "nginx answers inside");
    // statusPage: NixOS's server named localhost, whose /nginx_status answers the loopback.
    let status = env.run(&[
        "run",
        &name,
        "--",
        "curl",
        "-s",
        "http://localhost/nginx_status",
    ]);
    assert!(
        stdout(&status).starts_with("Active connections: "),
        "{}{}",
        stdout(&status),
        stderr(&status)
    );

    assert_ok(
        &env.run(&["update", &name, "--config", &opened]),
        "update opening port 80",
    );
    assert!(eventually(Duration::from_secs(10), || http_get(&ip, 80).is_ok()));
    // The default server (default = true; not the first in the file, which is blog) answers an
    // unknown host; the other one answers by its name or alias.
    let (head, body) = curl(&ip, "/", &["-H", "Host: nosuch.example"]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "main says hi");
    for host in ["other.example", "www.other.example"] {
        let (head, body) = curl(&ip, "/", &["-H", &format!("Host: {host}")]);
        assert!(head.starts_with("HTTP/1.1 200"), "{host}: {head}");
        assert_eq!(body, page, "{host}");
        assert!(head.contains("Content-Type: text/html"), "{head}");
    }
    // recommendedGzipSettings: the page is compressed for a client that asks.
    let (head, _) = curl(
        &ip,
        "/",
        &["-H", "Host: other.example", "-H", "Accept-Encoding: gzip"],
    );
    assert!(head.contains("Content-Encoding: gzip"), "{head}");
    // proxyPass to the second server, which only listens on 127.0.0.1:8081 inside; the
    // recommended proxy settings forward the Host.
    let (head, body) = curl(&ip, "/backend/x?y=1", &[]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, format!("backend got /x?y=1 for {ip} via {ip}"));
    assert!(
        http_get(&ip, 8081).is_err(),
        "the backend is not reachable from outside"
    );
    // The status page is denied to anyone but the loopback addresses.
    let (head, body) = curl(&ip, "/nginx_status", &["-H", "Host: localhost"]);
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    assert!(!body.contains("Active connections"), "{body}");
}
