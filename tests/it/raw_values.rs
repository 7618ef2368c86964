//! Values scripts get as they can use them: `http_get` as `#{status, headers, body}`, a host
//! key without its trailing newline, and `trimmed()` next to Rhai's in-place `trim()`.

use crate::common::*;

#[test]
fn http_get_returns_status_headers_and_body() {
    let env = Env::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut conn, _) = listener.accept().unwrap();
        let mut request = [0u8; 1024];
        let n = conn.read(&mut request).unwrap();
        conn.write_all(
            b"HTTP/1.0 201 Created\r\nContent-Type: text/plain\r\nX-Seen: a\r\nx-seen: b\r\n\r\nhello\r\nworld\n",
        )
        .unwrap();
        String::from_utf8_lossy(&request[..n]).into_owned()
    });
    let path = script(
        &env,
        "get.rhai",
        &format!(
            "let r = http_get(\"127.0.0.1\", {port}, \"/x?y=1\");\n\
             print(type_of(r.status) + \" \" + r.status);\n\
             print(r.headers[\"content-type\"]);\n\
             print(r.headers[\"x-seen\"]);\n\
             print(r.body == \"hello\\r\\nworld\\n\");\n\
             print(r.keys());\n"
        ),
    );
    let out = env.command(&[&path]).output().unwrap();
    let request = server.join().unwrap();
    assert_ok(&out, "http_get");
    assert!(
        request.starts_with("GET /x?y=1 HTTP/1.0\r\n"),
        "{request:?}"
    );
    assert_eq!(
        stdout(&out),
        "i64 201\ntext/plain\na, b\ntrue\n[\"body\", \"headers\", \"status\"]\n"
    );
}

#[test]
fn http_get_of_something_else_is_an_error() {
    let env = Env::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut conn, _) = listener.accept().unwrap();
        let _ = conn.read(&mut [0u8; 1024]);
        conn.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").unwrap();
    });
    let path = script(
        &env,
        "ssh.rhai",
        &format!(
            "try {{ http_get(\"127.0.0.1\", {port}, \"/\") }} catch (e) {{ print(e.kind); print(e.message) }}\n"
        ),
    );
    let out = env.command(&[&path]).output().unwrap();
    server.join().unwrap();
    assert_ok(&out, "script");
    assert_eq!(
        stdout(&out),
        format!(
            "Usage\n127.0.0.1:{port} did not answer with HTTP (the reply starts with \"SSH-2.0-OpenSSH_9.2\\r\\n\")\n"
        )
    );
}

#[test]
fn trimmed_returns_the_trimmed_string() {
    let env = Env::new();
    let path = script(
        &env,
        "trim.rhai",
        "let s = \"  padded \\n\";\nlet t = s.trimmed();\nprint(`[${t}] [${s}]`);\nprint(type_of(s.trim()));\nprint(`[${s}]`);\n",
    );
    let out = env.command(&[&path]).output().unwrap();
    assert_ok(&out, "trim");
    assert_eq!(stdout(&out), "[padded] [  padded \n]\n()\n[padded]\n");
    // And :help says so.
    let out = output_with_stdin(env.command(&[]), b":help\n");
    assert!(
        stdout(&out).contains("trimmed(s: string) -> string"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("`s.trimmed()` for a trimmed copy"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn host_key_has_no_trailing_newline() {
    require_root();
    let env = Env::new();
    let name = unique_name("hkn");
    env.create(&name, &[]);
    // As sshd writes it on its first start.
    let ssh = env.root_path(&name).join("etc/ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyForTheTest root@hkn";
    std::fs::write(ssh.join("ssh_host_ed25519_key.pub"), format!("{key}\n")).unwrap();
    let path = script(
        &env,
        "key.rhai",
        &format!("let k = container(\"{name}\").host_key;\nprint(k == \"{key}\");\n"),
    );
    let out = env.command(&[&path]).output().unwrap();
    assert_ok(&out, "host_key");
    assert_eq!(stdout(&out), "true\n");
    // show-host-key prints it as one line, as before.
    let out = env.run(&["show-host-key", &name]);
    assert_ok(&out, "show-host-key");
    assert_eq!(stdout(&out), format!("{key}\n"));
}
