//! Host-side network helpers for scripts: reach a TCP service in a container.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use rhai::{Engine, EvalAltResult};

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
            "http_get(host: string, port: int, path: string) -> string",
            "A minimal HTTP/1.0 GET: the whole response, headers included."
        ),
    )
    .register_into_engine(engine, |host: &str, port: i64, path: &str| {
        tcp_exchange(
            host,
            port,
            &format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n"),
            Duration::from_secs(5),
        )
    });
}
