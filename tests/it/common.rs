//! The test harness: a private state tree per test, the real `ncsh` binary, unique container
//! names, and a guard that destroys what a test created and checks nothing is left behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_ncsh");

/// Address ranges test containers use; traffic to them must never leave the machine.
const TEST_RANGES: [&str; 2] = ["10.233.0.0/16", "10.235.0.0/16"];

/// `cmd` with `input` on its stdin (a pipe, closed after it) and its output captured.
pub fn output_with_stdin(mut cmd: Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // A writer of its own: a command that does not read all of stdin cannot block the test.
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    let _ = writer.join();
    out
}

/// A script file `name` holding `text` in `env`'s directory; its path.
pub fn script(env: &Env, name: &str, text: &str) -> String {
    let path = env.prefix().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Add `unreachable` routes for the test ranges (ARCHITECTURE.md, "Traffic from tests"), once per test run.
pub fn ensure_unreachable_routes() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for range in TEST_RANGES {
            let shown = Command::new("ip")
                .args(["route", "show", "type", "unreachable", range])
                .output();
            let present = shown.is_ok_and(|o| !o.stdout.is_empty());
            if !present {
                let status = Command::new("ip")
                    .args(["route", "add", "unreachable", range])
                    .status();
                assert!(
                    status.is_ok_and(|s| s.success()),
                    "could not add the unreachable route {range}"
                );
            }
        }
    });
}

/// Tests that boot containers need root and systemd-nspawn; say so instead of passing vacuously.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test boots containers: run the test suite as root"
    );
    assert!(
        Path::new("/usr/bin/systemd-nspawn").exists(),
        "install systemd-container to run this test"
    );
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A short name unique to this test process (≤ 11 characters, so nixos-container accepts it).
pub fn unique_name(tag: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!(
        "{}{}{n}",
        &tag[..tag.len().min(3)],
        std::process::id() % 100_000
    )
}

/// Where test processes claim address pairs, so concurrent test runs never share one.
const CLAIMS: &str = "/run/ncsh-test-addresses";

/// Held while this process claims or releases pairs: a release removes the claims directory
/// when it is empty, which must not happen between a claimer's making it and claiming in it.
static CLAIMS_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Is `host` an address of an interface here, or `local` the destination of a route?
fn in_use_on_this_machine(host: &str, local: &str) -> bool {
    let ip = |args: &[&str]| {
        Command::new("ip")
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let host_prefix = format!("{host}/");
    let addressed = ip(&["-o", "addr", "show"])
        .split_whitespace()
        .any(|word| word.starts_with(&host_prefix));
    let routed = ip(&["route", "show"])
        .lines()
        .any(|line| line.split_whitespace().next() == Some(local));
    addressed || routed
}

/// A distinct address pair for a booting test (10.233.200+ so a real user's 10.233.1.x are
/// safe). Pairs are claimed machine-wide (a directory per pair holding the claimer's PID);
/// claims of dead processes are taken over.
fn claim_addresses(second: u8) -> (PathBuf, String, String) {
    let _guard = CLAIMS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    std::fs::create_dir_all(CLAIMS).unwrap();
    let me = std::process::id();
    for third in 200..255u32 {
        let dir = Path::new(CLAIMS).join(format!("{second}.{third}"));
        // A claim is a directory with the claimer's PID; a dead claimer's is taken over.
        let fresh = match std::fs::create_dir(&dir) {
            Ok(()) => true,
            // Another process's release removed the (then empty) claims directory.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(CLAIMS).unwrap();
                std::fs::create_dir(&dir).is_ok()
            }
            Err(_) => false,
        };
        let stale = !fresh && {
            let owner = std::fs::read_to_string(dir.join("pid"))
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok());
            owner.is_some_and(|pid| {
                pid as u32 != me
                    && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err()
            })
        };
        if !(fresh || stale) {
            continue;
        }
        let (host, local) = (
            format!("10.{second}.{third}.1"),
            format!("10.{second}.{third}.2"),
        );
        // Something outside the claims (a container made by hand) may hold the pair.
        if in_use_on_this_machine(&host, &local) {
            if fresh {
                let _ = std::fs::remove_dir(&dir);
            }
            continue;
        }
        std::fs::write(dir.join("pid"), me.to_string()).unwrap();
        return (dir, host, local);
    }
    panic!("no free test address pair in 10.{second}.200-254 (see {CLAIMS})");
}

pub struct Env {
    pub dir: tempfile::TempDir,
    created: std::cell::RefCell<Vec<String>>,
    claims: std::cell::RefCell<Vec<PathBuf>>,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
            created: Default::default(),
            claims: Default::default(),
        }
    }

    pub fn prefix(&self) -> &Path {
        self.dir.path()
    }

    pub fn conf_path(&self, name: &str) -> PathBuf {
        self.prefix()
            .join("etc/nixos-containers")
            .join(format!("{name}.conf"))
    }

    pub fn root_path(&self, name: &str) -> PathBuf {
        self.prefix().join("var/lib/nixos-containers").join(name)
    }

    /// `ncsh ARGS` in this environment.
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_as(BIN, args)
    }

    /// Run `program` (ncsh or a symlink to it) with this environment and nothing else of ours.
    pub fn command_as(&self, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_remove("NCSH_CONF_DIR")
            .env_remove("NCSH_STATE_DIR")
            .env_remove("NCSH_RUN_DIR")
            .env_remove("NCSH_LOCK_FILE")
            .env_remove("NCSH_PROFILES_DIR")
            .env_remove("NCSH_GCROOTS_DIR")
            .env_remove("NCSH_NSPAWN")
            // The native builder whatever this host has; the Nix tests choose theirs.
            .env("NCSH_BUILDER", "native")
            .env("NCSH_PREFIX", self.prefix())
            .env("NCSH_VERBS_PATH", self.prefix().join("no-user-verbs"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        cmd
    }

    /// `ncsh run NAME -- ARGV…`.
    pub fn run_inside(&self, name: &str, argv: &[&str]) -> Output {
        let mut args = vec!["run", name, "--"];
        args.extend_from_slice(argv);
        self.run(&args)
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("running ncsh")
    }

    /// Remember a container for the clean-up guard.
    pub fn track(&self, name: &str) {
        self.created.borrow_mut().push(name.to_string());
    }

    /// `ncsh create NAME ARGS…`, expecting success; tracked for clean-up.
    pub fn create(&self, name: &str, extra: &[&str]) {
        self.track(name);
        let mut args = vec!["create", name];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        assert_ok(&out, "create");
    }

    /// A host/local address pair no other test uses (released when the Env is dropped).
    pub fn test_addresses(&self) -> (String, String) {
        self.test_addresses_in(233)
    }

    /// The same in 10.SECOND.0.0/16 (233 or 235, the ranges with unreachable routes).
    pub fn test_addresses_in(&self, second: u8) -> (String, String) {
        assert!(
            matches!(second, 233 | 235),
            "10.{second}.0.0/16 has no unreachable route"
        );
        ensure_unreachable_routes();
        let (claim, host, local) = claim_addresses(second);
        self.claims.borrow_mut().push(claim);
        (host, local)
    }

    /// Create with distinct test addresses; returns (host, local).
    pub fn create_booting(&self, name: &str) -> (String, String) {
        self.create_booting_with(name, &[])
    }

    /// Create with distinct test addresses and more flags; returns (host, local).
    pub fn create_booting_with(&self, name: &str, extra: &[&str]) -> (String, String) {
        let (host, local) = self.test_addresses();
        let mut args = vec![
            "--host-address",
            host.as_str(),
            "--local-address",
            local.as_str(),
        ];
        args.extend_from_slice(extra);
        self.create(name, &args);
        (host, local)
    }

    /// Everything below the prefix, for "nothing changed" checks.
    pub fn snapshot(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![self.prefix().to_path_buf()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                let meta = std::fs::symlink_metadata(&p).expect("metadata");
                if meta.is_dir() {
                    stack.push(p.clone());
                    out.push((p, Vec::new()));
                } else {
                    out.push((p.clone(), std::fs::read(&p).unwrap_or_default()));
                }
            }
        }
        out.sort();
        out
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for name in self.created.borrow().iter() {
            let _ = self.run(&["destroy", name]);
            if !std::thread::panicking() {
                assert_no_debris(self, name);
            }
        }
        let _guard = CLAIMS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        for claim in self.claims.borrow().iter() {
            let _ = std::fs::remove_dir_all(claim);
        }
        let _ = std::fs::remove_dir(CLAIMS);
    }
}

/// No process, cgroup, link, nspawn file or state of container `name` is left.
pub fn assert_no_debris(env: &Env, name: &str) {
    let mut left = Vec::new();
    for hierarchy in [
        "/sys/fs/cgroup/systemd",
        "/sys/fs/cgroup/unified",
        "/sys/fs/cgroup",
    ] {
        let cg = Path::new(hierarchy).join(format!("ncsh-{name}"));
        if cg.exists() {
            left.push(format!("cgroup {}", cg.display()));
        }
    }
    let link = Command::new("ip")
        .args(["link", "show", "dev", &format!("ve-{name}")])
        .output();
    if link.is_ok_and(|o| o.status.success()) {
        left.push(format!("link ve-{name}"));
    }
    for path in [
        PathBuf::from("/run/systemd/nspawn/propagate").join(name),
        env.conf_path(name),
        env.root_path(name),
        env.prefix().join("run/ncsh").join(name),
        env.prefix()
            .join("var/lib/nixos-containers")
            .join(format!(".#{name}.lck")),
    ] {
        if path.exists() {
            left.push(path.display().to_string());
        }
    }
    let supervisors = Command::new("pgrep")
        .args(["-f", &format!("__supervise {name}$")])
        .output();
    if supervisors.is_ok_and(|o| !o.stdout.is_empty()) {
        left.push("a supervisor process".into());
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if mounts.contains(&env.root_path(name).display().to_string()) {
        left.push("a mount below the root".into());
    }
    assert!(left.is_empty(), "container {name} left debris: {left:?}");
}

#[track_caller]
pub fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({:?})\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Poll until `f` holds (for things that settle asynchronously).
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// The host PID of container `name`'s PID 1, as the standalone supervisor recorded it.
pub fn leader(env: &Env, name: &str) -> i32 {
    let text =
        std::fs::read_to_string(env.prefix().join("run/ncsh").join(name).join("leader")).unwrap();
    text.trim().parse().unwrap()
}

/// `GET /` over HTTP/1.0: the whole reply, headers included.
pub fn http_get(addr: &str, port: u16) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let target = format!("{addr}:{port}").parse().unwrap();
    let mut stream = std::net::TcpStream::connect_timeout(&target, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    Ok(reply)
}

/// Does this host have IPv6 as `create` asks (an address listed, not disabled)?
pub fn host_has_ipv6() -> bool {
    let listed = std::fs::read_to_string("/proc/net/if_inet6").is_ok_and(|t| !t.trim().is_empty());
    let enabled = std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/disable_ipv6")
        .is_ok_and(|t| t.trim() == "0");
    listed && enabled
}

/// The IPv6 pair `create` picks as its Nth (README, "Addresses"): `fdGG:GGGG:GGGG::N:1` and
/// `…::N:2`, GG… the first five bytes of the SHA-256 of /etc/machine-id, N's decimal digits.
pub fn auto_ipv6_pair(n: u8) -> (String, String) {
    use sha2::Digest;
    let id = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
    let h = sha2::Sha256::digest(id.trim().as_bytes());
    let group = u16::from_str_radix(&n.to_string(), 16).unwrap();
    let addr = |end: u16| {
        std::net::Ipv6Addr::new(
            u16::from_be_bytes([0xfd, h[0]]),
            u16::from_be_bytes([h[1], h[2]]),
            u16::from_be_bytes([h[3], h[4]]),
            0,
            0,
            0,
            group,
            end,
        )
        .to_string()
    };
    (addr(1), addr(2))
}

/// The conf lines of that pair after LOCAL_ADDRESS, empty on a host without IPv6.
pub fn auto_ipv6_lines(n: u8) -> String {
    if !host_has_ipv6() {
        return String::new();
    }
    let (h, l) = auto_ipv6_pair(n);
    format!("HOST_ADDRESS6={h}\nLOCAL_ADDRESS6={l}\n")
}
