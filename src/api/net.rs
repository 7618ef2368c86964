//! Host-side network helpers for scripts: reach a TCP service in a container.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use rhai::{Dynamic, Engine, EvalAltResult, Map};

use super::docs::{api_doc, function};
use super::error::to_rhai;
use crate::error::Error;

fn socket_addr(host: &str, port: i64) -> Result<SocketAddr, Box<EvalAltResult>> {
    let ip: IpAddr = host
        .parse()
        .map_err(|_| to_rhai(Error::Usage(format!("‘{host}’ is not an IP address"))))?;
    let port = u16::try_from(port)
        .map_err(|_| to_rhai(Error::Usage(format!("{port} is not a TCP port"))))?;
    Ok(SocketAddr::new(ip, port))
}

/// Send `request` to host:port and return everything the peer sends back until it closes.
fn tcp_exchange(
    host: &str,
    port: i64,
    request: &str,
    timeout: Duration,
) -> Result<String, Box<EvalAltResult>> {
    let addr = socket_addr(host, port)?;
    let io = |e: std::io::Error| to_rhai(Error::io(format!("talking to {addr}"), e));
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.write_all(request.as_bytes()).map_err(io)?;
    let cap = crate::api::limits::Limits::current().response_size;
    let mut reply = Vec::new();
    let wanted = if cap == 0 { u64::MAX } else { cap as u64 + 1 };
    (&mut stream)
        .take(wanted)
        .read_to_end(&mut reply)
        .map_err(io)?;
    if cap != 0 && reply.len() > cap {
        return Err(to_rhai(Error::Usage(format!(
            "the response from {addr} is larger than {cap} bytes: \
             raise NCSH_MAX_RESPONSE_SIZE (0 for no limit) to accept it"
        ))));
    }
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

pub(super) fn register(engine: &mut Engine) {
    // Is something listening at host:port? Retries until `seconds` pass (false), or until
    // Ctrl-C in the REPL.
    function(
        "wait_tcp",
        api_doc!(
            "wait_tcp(host: string, port: int, seconds: float) -> bool",
            "Whether something listens at host:port within that time."
        ),
    )
    .register_into_engine(
        engine,
        |host: &str, port: i64, seconds: f64| -> Result<bool, Box<EvalAltResult>> {
            let addr = socket_addr(host, port)?;
            let wait = Duration::try_from_secs_f64(seconds.max(0.0)).unwrap_or(Duration::MAX);
            // None: so far away that it never comes.
            let deadline = Instant::now().checked_add(wait);
            loop {
                if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
                    return Ok(true);
                }
                if deadline.is_some_and(|d| Instant::now() > d)
                    || super::INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed)
                {
                    return Ok(false);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        },
    );
    function(
        "tcp_request",
        api_doc!(
            "tcp_request(host: string, port: int, request: string) -> string",
            "Send a request, return everything the peer sends until it closes."
        ),
    )
    .register_into_engine(engine, |host: &str, port: i64, request: &str| {
        tcp_exchange(host, port, request, Duration::from_secs(5))
    });
    function(
        "http_get",
        api_doc!(
            "http_get(host: string, port: int, path: string) -> map",
            "A minimal HTTP/1.0 GET: #{status: int, headers: map (names in lower case), body: string}."
        ),
    )
    .register_into_engine(
        engine,
        |host: &str, port: i64, path: &str| -> Result<Map, Box<EvalAltResult>> {
            let reply = tcp_exchange(
                host,
                port,
                &format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n"),
                Duration::from_secs(5),
            )?;
            let response = parse_response(&reply).ok_or_else(|| {
                to_rhai(Error::Usage(format!(
                    "{host}:{port} did not answer with HTTP (the reply starts with {:?})",
                    reply.chars().take(40).collect::<String>()
                )))
            })?;
            let mut headers = Map::new();
            for (name, value) in response.headers {
                match headers.get_mut(name.as_str()) {
                    // A repeated header: its values joined, as HTTP allows.
                    Some(seen) => *seen = format!("{seen}, {value}").into(),
                    None => {
                        headers.insert(name.into(), value.into());
                    }
                }
            }
            let mut map = Map::new();
            map.insert("status".into(), Dynamic::from(response.status));
            map.insert("headers".into(), headers.into());
            map.insert("body".into(), response.body.into());
            Ok(map)
        },
    );
}

/// An HTTP response taken apart.
#[derive(Debug, PartialEq, Eq)]
struct Response {
    status: i64,
    /// In order, names in lower case.
    headers: Vec<(String, String)>,
    body: String,
}

/// `HTTP/1.x CODE REASON`, header lines, an empty line, the body; None when the reply is not
/// that. Lines may end in CRLF or LF.
fn parse_response(reply: &str) -> Option<Response> {
    let (head, body) = match (reply.find("\r\n\r\n"), reply.find("\n\n")) {
        (Some(crlf), Some(lf)) if lf < crlf => (&reply[..lf], &reply[lf + 2..]),
        (Some(crlf), _) => (&reply[..crlf], &reply[crlf + 4..]),
        (None, Some(lf)) => (&reply[..lf], &reply[lf + 2..]),
        (None, None) => (reply, ""),
    };
    let mut lines = head.lines();
    let mut status_line = lines.next()?.split_whitespace();
    if !status_line.next()?.starts_with("HTTP/") {
        return None;
    }
    let status = status_line.next()?.parse().ok()?;
    let headers = lines
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_ascii_lowercase(), value.trim().to_string()))
        })
        .collect();
    Some(Response {
        status,
        headers,
        body: body.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_come_apart() {
        let r = parse_response(
            "HTTP/1.0 404 Not Found\r\nContent-Type: text/html\r\nX-Y:z\r\n\r\n<p>no</p>\r\n",
        )
        .expect("a response");
        assert_eq!(r.status, 404);
        assert_eq!(
            r.headers,
            [
                ("content-type".to_string(), "text/html".to_string()),
                ("x-y".into(), "z".into())
            ]
        );
        assert_eq!(r.body, "<p>no</p>\r\n");
        let bare = parse_response("HTTP/1.1 204 No Content\n\n").expect("LF only");
        assert_eq!((bare.status, bare.body.as_str()), (204, ""));
        let headless = parse_response("HTTP/1.1 200 OK").expect("no headers");
        assert!(headless.headers.is_empty());
        assert!(parse_response("SSH-2.0-OpenSSH\r\n").is_none());
        assert!(parse_response("").is_none());
        assert!(parse_response("HTTP/1.0 abc\r\n\r\n").is_none());
    }
}
