//! `cargo bench --bench lifecycle` (as root; `scripts/bench-setup.sh` installs LXC): ncsh
//! against the tools underneath, in one run, interleaved, reported as medians and ratios
//! (absolute times drift on a shared machine; a ratio is the median of the per-round ratios).
//!
//! - start: `ncsh start` until it returns, against bare `systemd-nspawn` with ncsh's command
//!   line on the same root, and `lxc-start` of the same root, each until the container's
//!   systemd sends `READY=1` (it does once multi-user.target is reached) to a notify socket
//!   the bench listens on: nspawn's `NOTIFY_SOCKET`, and for LXC a socket bound into the
//!   container's /run (`lxc.environment = NOTIFY_SOCKET=…`), as nspawn does it;
//! - stop: `ncsh stop` against SIGTERM to bare nspawn (which powers the container off,
//!   `--kill-signal=SIGRTMIN+3`) until it exits, and `lxc-stop` (SIGRTMIN+3 to its init);
//! - run: `ncsh run NAME -- true` against `nsenter -t LEADER -a true`, and `lxc-attach -- true`
//!   into an LXC container of another root running meanwhile;
//! - read-only verbs: `show-ip`, `list`, `status` against `/bin/true`, the spawn floor;
//! - 10 `ncsh start`s at once against 10 bare nspawn boots at once (each its own root);
//! - PSS: the proportional set size (`/proc/PID/smaps_rollup`) of ncsh's supervisor and all
//!   its descendants (nspawn and the container), against bare nspawn and its descendants;
//! - update: `ncsh update` of the running container changing one unit (httpd's port), against
//!   `systemctl daemon-reload` and `systemctl restart httpd.service` inside (nsenter);
//! - create: `ncsh create --config` (sshd and a user), absolute.
//!
//! Every container, cgroup, notify socket and temporary directory it makes is removed when it
//! ends, also when a step fails (`Guard`). LXC's containers have no network (`lxc.net.0.type =
//! empty`); ncsh's and nspawn's have veths to their own addresses, which the unreachable route
//! over 10.233.0.0/16 keeps on this machine. It prints one table and writes it as JSON to
//! `target/bench/lifecycle.json`. `NCSH_BENCH_ROUNDS` (default 9) sets the rounds.
#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ncsh");

/// Where test and bench processes claim address pairs (as tests/it/common.rs does).
const CLAIMS: &str = "/run/ncsh-test-addresses";

/// Undo the trimmed boot in a native root (ARCHITECTURE.md, "The trimmed boot"): the
/// dependency masks, the sysusers stamp, the nologin and journald files. What stays: the
/// container init's journald flag, the users sysusers.d asks for (sysusers runs again).
fn untrim(root: &Path) {
    let units = root.join("etc/systemd/system");
    for dir in std::fs::read_dir(&units).unwrap().flatten() {
        if !dir.file_name().to_string_lossy().ends_with(".wants") {
            continue;
        }
        for link in std::fs::read_dir(dir.path()).unwrap().flatten() {
            let target = std::fs::read_link(link.path()).ok();
            if target.as_deref() == Some(Path::new("/dev/null")) {
                std::fs::remove_file(link.path()).unwrap();
            }
        }
    }
    for file in [
        "etc/.updated",
        "etc/tmpfiles.d/systemd-nologin.conf",
        "etc/systemd/journald.conf.d/00-container.conf",
    ] {
        let _ = std::fs::remove_file(root.join(file));
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn ncsh(prefix: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("NCSH_PREFIX", prefix)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

fn timed(mut cmd: Command) -> f64 {
    let t = Instant::now();
    let status = cmd.status().unwrap();
    assert!(status.success(), "{cmd:?} failed");
    t.elapsed().as_secs_f64()
}

fn quiet(mut cmd: Command) -> Command {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Everything the bench made, undone when it is dropped (also on a panic).
struct Guard {
    prefix: PathBuf,
    /// ncsh containers (destroyed: stopped first if running).
    containers: RefCell<Vec<String>>,
    /// LXC containers (name, lxcpath), stopped with `lxc-stop -k`.
    lxc: RefCell<Vec<(String, PathBuf)>>,
    claims: RefCell<Vec<PathBuf>>,
    /// The `lxc.pivot` cgroups LXC leaves in each hierarchy, where there was none before.
    pivots: Vec<PathBuf>,
}

/// Where LXC's monitor parks itself (`lxc.pivot`, in every cgroup hierarchy) and leaves it.
fn lxc_pivots() -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut dirs = vec![root.join("lxc.pivot")];
    if let Ok(entries) = std::fs::read_dir(root) {
        dirs.extend(entries.flatten().map(|e| e.path().join("lxc.pivot")));
    }
    dirs
}

impl Drop for Guard {
    fn drop(&mut self) {
        for (name, path) in self.lxc.borrow().iter() {
            let mut cmd = Command::new("lxc-stop");
            cmd.args(["-k", "-n", name, "-P"]).arg(path);
            let _ = quiet(cmd).status();
        }
        for name in self.containers.borrow().iter() {
            let mut cmd = ncsh(&self.prefix, &["destroy", name]);
            cmd.stderr(Stdio::null());
            let _ = cmd.status();
        }
        // Empty once LXC's monitors are gone; rmdir removes only an empty cgroup.
        for pivot in &self.pivots {
            let _ = std::fs::remove_dir(pivot);
        }
        for claim in self.claims.borrow().iter() {
            let _ = std::fs::remove_dir_all(claim);
        }
        if let Ok(mut left) = std::fs::read_dir(CLAIMS)
            && left.next().is_none()
        {
            let _ = std::fs::remove_dir(CLAIMS);
        }
    }
}

/// Is `host` an address here, or `local` a route's destination?
fn in_use(host: &str, local: &str) -> bool {
    let ip = |args: &[&str]| {
        Command::new("ip")
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let host_prefix = format!("{host}/");
    ip(&["-o", "addr", "show"])
        .split_whitespace()
        .any(|w| w.starts_with(&host_prefix))
        || ip(&["route", "show"])
            .lines()
            .any(|l| l.split_whitespace().next() == Some(local))
}

impl Guard {
    /// A free address pair in 10.233.200-254.x, claimed machine-wide as the tests claim theirs.
    fn claim(&self) -> (String, String) {
        std::fs::create_dir_all(CLAIMS).unwrap();
        let me = std::process::id();
        for third in 200..255u32 {
            let dir = Path::new(CLAIMS).join(format!("233.{third}"));
            let fresh = std::fs::create_dir(&dir).is_ok();
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
            let (host, local) = (format!("10.233.{third}.1"), format!("10.233.{third}.2"));
            if in_use(&host, &local) {
                if fresh {
                    let _ = std::fs::remove_dir(&dir);
                }
                continue;
            }
            std::fs::write(dir.join("pid"), me.to_string()).unwrap();
            self.claims.borrow_mut().push(dir);
            return (host, local);
        }
        panic!("no free address pair in 10.233.200-254 (see {CLAIMS})");
    }

    fn create(&self, name: &str) {
        let (host, local) = self.claim();
        self.containers.borrow_mut().push(name.to_string());
        let mut cmd = ncsh(
            &self.prefix,
            &[
                "create",
                name,
                "--host-address",
                &host,
                "--local-address",
                &local,
            ],
        );
        cmd.stderr(Stdio::null());
        timed(cmd);
    }
}

/// A notify socket the container's systemd reports to.
struct Notify {
    sock: UnixDatagram,
    path: PathBuf,
}

impl Notify {
    fn bind(path: PathBuf) -> Notify {
        let _ = std::fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        Notify { sock, path }
    }

    /// Wait for READY=1; panics on a timeout.
    fn ready(&self) {
        let mut buf = [0u8; 4096];
        loop {
            let n = self.sock.recv(&mut buf).expect("no READY=1 within 60 s");
            if String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == "READY=1")
            {
                return;
            }
        }
    }
}

impl Drop for Notify {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A container's root booted with bare systemd-nspawn, ncsh's arguments, in a cgroup of its own.
struct BareBoot {
    name: String,
    child: Child,
    cgroups: ncsh::host::cgroup::Cgroups,
    notify: Notify,
    stopped: bool,
}

impl Drop for BareBoot {
    fn drop(&mut self) {
        self.stop();
    }
}

impl BareBoot {
    fn spawn(prefix: &Path, name: &str) -> BareBoot {
        let conf_path = prefix.join(format!("etc/nixos-containers/{name}.conf"));
        let conf = ncsh::container::Conf::read(&conf_path).unwrap();
        let root = prefix.join("var/lib/nixos-containers").join(name);
        let args = ncsh::host::nspawn::args(
            name,
            &root,
            &conf,
            &conf_path,
            ncsh::host::nspawn::Supervision::Standalone,
            None,
        )
        .unwrap();
        let cgroups = ncsh::host::cgroup::Cgroups::for_container(&format!("{name}-bare"));
        cgroups.create().unwrap();
        let notify = Notify::bind(prefix.join(format!("{name}.bare.notify")));
        let mut cmd = Command::new("/usr/bin/systemd-nspawn");
        cmd.args(&args)
            .env("NOTIFY_SOCKET", &notify.path)
            .env("SYSTEMD_NSPAWN_UNIFIED_HIERARCHY", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let cg = cgroups.clone();
        // SAFETY: only writes our PID into cgroup.procs files before exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                cg.join(std::process::id())
                    .map_err(|e| std::io::Error::other(e.to_string()))
            });
        }
        let child = cmd.spawn().unwrap();
        BareBoot {
            name: name.to_string(),
            child,
            cgroups,
            notify,
            stopped: false,
        }
    }

    /// Power the container off (SIGTERM to nspawn: SIGRTMIN+3 to its init) and clean up.
    /// Returns the time until nspawn exited (once; dropping it stops it too).
    fn stop(&mut self) -> f64 {
        if self.stopped {
            return 0.0;
        }
        self.stopped = true;
        let t = Instant::now();
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        let stopped = t.elapsed().as_secs_f64();
        let _ = self.cgroups.kill_and_remove(None, Duration::from_secs(5));
        let _ =
            std::fs::remove_dir_all(Path::new("/run/systemd/nspawn/propagate").join(&self.name));
        stopped
    }
}

/// An LXC container of an ncsh root: a config in a temporary lxcpath, the same init and the
/// same read-only /usr, no network of its own, and READY=1 from its systemd on a socket bound
/// into its /run.
struct Lxc {
    name: String,
    lxcpath: PathBuf,
    notify: Notify,
}

impl Lxc {
    fn new(dir: &Path, root: &Path, name: &str) -> Lxc {
        let lxcpath = dir.join("lxc");
        let own = lxcpath.join(name);
        let notify_dir = own.join("notify");
        std::fs::create_dir_all(&notify_dir).unwrap();
        let notify = Notify::bind(notify_dir.join("sock"));
        let mut config = format!(
            "lxc.uts.name = {name}\n\
             lxc.rootfs.path = dir:{}\n\
             lxc.net.0.type = empty\n\
             lxc.init.cmd = /etc/ncsh/container-init\n\
             lxc.signal.halt = SIGRTMIN+3\n\
             lxc.signal.stop = SIGKILL\n\
             lxc.autodev = 1\n\
             lxc.tty.max = 0\n\
             lxc.pty.max = 16\n\
             lxc.cap.drop = sys_module sys_time mac_admin mac_override\n\
             lxc.mount.auto = proc:mixed sys:ro cgroup:rw\n\
             lxc.environment = container=lxc\n\
             lxc.environment = NOTIFY_SOCKET=/run/host-notify/sock\n\
             lxc.environment = PATH={}\n\
             lxc.mount.entry = tmpfs run tmpfs rw,nosuid,nodev,mode=755,create=dir 0 0\n\
             lxc.mount.entry = {} run/host-notify none bind,create=dir 0 0\n\
             lxc.mount.entry = /usr usr none bind,ro 0 0\n",
            root.display(),
            ncsh::host::nspawn::CONTAINER_PATH,
            notify_dir.display(),
        );
        for host_file in ["/etc/ld.so.cache", "/etc/alternatives"] {
            if Path::new(host_file).is_file() {
                config.push_str(&format!(
                    "lxc.mount.entry = {host_file} {} none bind,ro,create=file 0 0\n",
                    &host_file[1..]
                ));
            } else if Path::new(host_file).is_dir() {
                config.push_str(&format!(
                    "lxc.mount.entry = {host_file} {} none bind,ro,create=dir 0 0\n",
                    &host_file[1..]
                ));
            }
        }
        if Path::new("/sys/kernel/security/apparmor").exists() {
            config.push_str("lxc.apparmor.profile = unconfined\n");
        }
        std::fs::write(own.join("config"), config).unwrap();
        Lxc {
            name: name.to_string(),
            lxcpath,
            notify,
        }
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(["-n", &self.name, "-P"]).arg(&self.lxcpath);
        cmd
    }

    /// Start it and wait for READY=1; the time taken.
    fn start(&self) -> f64 {
        let mut cmd = self.command("lxc-start");
        cmd.args(["-d", "-o"])
            .arg(self.lxcpath.join(format!("{}.log", self.name)));
        let t = Instant::now();
        let status = quiet(cmd).status().unwrap();
        assert!(
            status.success(),
            "lxc-start failed (see the log in {})",
            self.lxcpath.display()
        );
        self.notify.ready();
        t.elapsed().as_secs_f64()
    }

    fn stop(&self) -> f64 {
        let mut cmd = self.command("lxc-stop");
        cmd.args(["-t", "30"]);
        timed(quiet(cmd))
    }
}

/// All processes' parents, from /proc/PID/stat.
fn parents() -> Vec<(i32, i32)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // After the ")" that ends the command: state, then the parent's PID.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
            out.push((pid, ppid));
        }
    }
    out
}

/// The PSS of `pid` and all its descendants, in KiB.
fn pss_tree(pid: i32) -> u64 {
    let all = parents();
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(all.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    tree.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/smaps_rollup")).ok())
        .filter_map(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .sum()
}

/// The PID of ncsh's supervisor of `name` (`ncsh __supervise NAME`).
fn supervisor(name: &str) -> i32 {
    let wanted = format!("__supervise\0{name}\0");
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline"))
            && String::from_utf8_lossy(&cmdline).contains(&wanted)
        {
            return pid;
        }
    }
    panic!("no supervisor of {name} found");
}

/// One row of the table.
struct Row {
    work: String,
    ncsh: String,
    reference: String,
    ratio: Option<f64>,
    goal: Option<f64>,
    note: String,
}

impl Row {
    fn met(&self) -> &'static str {
        match (self.ratio, self.goal) {
            (Some(r), Some(g)) if r <= g => "met",
            (Some(_), Some(_)) => "not met",
            _ => "-",
        }
    }
}

fn ms(s: f64) -> String {
    if s < 0.1 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.0} ms", s * 1e3)
    }
}

const NO_LXC: &str = "skipped: lxc-start not found (scripts/bench-setup.sh installs it)";

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("the lifecycle benchmark boots containers: run it as root");
        std::process::exit(1);
    }
    let rounds: usize = std::env::var("NCSH_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(9)
        .max(1);
    // Before any start: traffic to container addresses never leaves this machine.
    for range in ["10.233.0.0/16", "10.235.0.0/16"] {
        let shown = Command::new("ip")
            .args(["route", "show", "type", "unreachable", range])
            .output()
            .unwrap();
        if shown.stdout.is_empty() {
            let added = Command::new("ip")
                .args(["route", "add", "unreachable", range])
                .status()
                .unwrap();
            assert!(
                added.success(),
                "could not add the unreachable route {range}"
            );
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("prefix");
    std::fs::create_dir(&prefix).unwrap();
    let prefix = prefix.as_path();
    let guard = Guard {
        prefix: prefix.to_path_buf(),
        containers: Default::default(),
        lxc: Default::default(),
        claims: Default::default(),
        pivots: lxc_pivots().into_iter().filter(|p| !p.exists()).collect(),
    };
    let tag = std::process::id() % 10000;
    let name = format!("bench{tag}");
    guard.create(&name);
    let root_of = |n: &str| prefix.join("var/lib/nixos-containers").join(n);
    // The reference of the start goal: the same base system without the trimmed boot.
    let untrimmed = format!("bu{tag}");
    guard.create(&untrimmed);
    untrim(&root_of(&untrimmed));
    let parallel: Vec<String> = (0..10).map(|i| format!("bp{i}-{tag}")).collect();
    for other in &parallel {
        guard.create(other);
    }
    let has_lxc = on_path("lxc-start").is_some();
    let lxc = has_lxc.then(|| {
        let lxc = Lxc::new(dir.path(), &root_of(&name), &format!("bl{tag}"));
        guard
            .lxc
            .borrow_mut()
            .push((lxc.name.clone(), lxc.lxcpath.clone()));
        lxc
    });
    let mut rows = Vec::new();

    // start and stop, the three interleaved on the same root. One warm-up each first.
    let bare_round = || {
        let t = Instant::now();
        let mut boot = BareBoot::spawn(prefix, &name);
        boot.notify.ready();
        let ready = t.elapsed().as_secs_f64();
        (ready, boot.stop())
    };
    bare_round();
    timed(ncsh(prefix, &["start", &name]));
    timed(ncsh(prefix, &["stop", &name]));
    if let Some(lxc) = &lxc {
        lxc.start();
        lxc.stop();
    }
    let untrimmed_round = || {
        let t = Instant::now();
        let mut boot = BareBoot::spawn(prefix, &untrimmed);
        boot.notify.ready();
        let ready = t.elapsed().as_secs_f64();
        boot.stop();
        ready
    };
    untrimmed_round();
    let (mut untrimmed_start, mut r_start_untrimmed) = (Vec::new(), Vec::new());
    let (mut start, mut bare_start, mut lxc_start) = (Vec::new(), Vec::new(), Vec::new());
    let (mut stop, mut bare_stop, mut lxc_stop) = (Vec::new(), Vec::new(), Vec::new());
    let (mut r_start_bare, mut r_start_lxc, mut r_stop_bare, mut r_stop_lxc) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (b_up, b_down) = bare_round();
        let u_up = untrimmed_round();
        let up = timed(ncsh(prefix, &["start", &name]));
        untrimmed_start.push(u_up);
        r_start_untrimmed.push(up / u_up);
        let down = timed(ncsh(prefix, &["stop", &name]));
        if let Some(lxc) = &lxc {
            let (l_up, l_down) = (lxc.start(), lxc.stop());
            r_start_lxc.push(up / l_up);
            r_stop_lxc.push(down / l_down);
            lxc_start.push(l_up);
            lxc_stop.push(l_down);
        }
        r_start_bare.push(up / b_up);
        r_stop_bare.push(down / b_down);
        start.push(up);
        bare_start.push(b_up);
        stop.push(down);
        bare_stop.push(b_down);
    }
    let lxc_ref = |v: &Vec<f64>, what: &str| {
        if has_lxc {
            format!("{what}: {}", ms(median(v.clone())))
        } else {
            NO_LXC.to_string()
        }
    };
    rows.push(Row {
        work: "start to multi-user (READY=1)".into(),
        ncsh: ms(median(start.clone())),
        reference: format!(
            "bare systemd-nspawn, untrimmed root: {}",
            ms(median(untrimmed_start))
        ),
        ratio: Some(median(r_start_untrimmed)),
        goal: Some(0.75),
        note: "the same base system without the trimmed boot (ARCHITECTURE.md)".into(),
    });
    rows.push(Row {
        work: "start to multi-user (READY=1)".into(),
        ncsh: ms(median(start.clone())),
        reference: format!("bare systemd-nspawn, same root: {}", ms(median(bare_start))),
        ratio: Some(median(r_start_bare)),
        goal: None,
        note: "what ncsh adds to nspawn".into(),
    });
    rows.push(Row {
        work: "start to multi-user (READY=1)".into(),
        ncsh: ms(median(start)),
        reference: lxc_ref(&lxc_start, "lxc-start"),
        ratio: has_lxc.then(|| median(r_start_lxc)),
        goal: Some(0.8),
        note: String::new(),
    });
    rows.push(Row {
        work: "stop (clean poweroff)".into(),
        ncsh: ms(median(stop.clone())),
        reference: format!("bare nspawn poweroff: {}", ms(median(bare_stop))),
        ratio: Some(median(r_stop_bare)),
        goal: Some(1.05),
        note: String::new(),
    });
    rows.push(Row {
        work: "stop (clean poweroff)".into(),
        ncsh: ms(median(stop)),
        reference: lxc_ref(&lxc_stop, "lxc-stop"),
        ratio: has_lxc.then(|| median(r_stop_lxc)),
        goal: None,
        note: String::new(),
    });

    // run, nsenter and lxc-attach; the LXC container on another (stopped) root meanwhile.
    let leader_of = |n: &str| {
        let text = std::fs::read_to_string(prefix.join("run/ncsh").join(n).join("leader"));
        text.unwrap().trim().to_string()
    };
    timed(ncsh(prefix, &["start", &name]));
    let leader = leader_of(&name);
    let attach = has_lxc.then(|| {
        let other = Lxc::new(dir.path(), &root_of(&parallel[0]), &format!("ba{tag}"));
        guard
            .lxc
            .borrow_mut()
            .push((other.name.clone(), other.lxcpath.clone()));
        other.start();
        other
    });
    let (mut runs, mut nsenters, mut attaches, mut r_run) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds * 4 {
        let run = timed(ncsh(prefix, &["run", &name, "--", "true"]));
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &leader, "-a", "true"]);
        let ns = timed(cmd);
        if let Some(other) = &attach {
            let mut cmd = other.command("lxc-attach");
            cmd.args(["--", "true"]);
            attaches.push(timed(quiet(cmd)));
        }
        runs.push(run);
        nsenters.push(ns);
        r_run.push(run / ns);
    }
    if let Some(other) = &attach {
        other.stop();
    }
    rows.push(Row {
        work: "run NAME -- true".into(),
        ncsh: ms(median(runs)),
        reference: format!(
            "nsenter -t LEADER -a true: {}; {}",
            ms(median(nsenters)),
            lxc_ref(&attaches, "lxc-attach")
        ),
        ratio: Some(median(r_run)),
        goal: Some(1.1),
        note: String::new(),
    });

    // Read-only verbs against the spawn floor, interleaved.
    let verbs = [
        vec!["show-ip", name.as_str()],
        vec!["list"],
        vec!["status", name.as_str()],
    ];
    let mut floor = Vec::new();
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); verbs.len()];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); verbs.len()];
    for _ in 0..rounds * 4 {
        let t = timed(Command::new("/bin/true"));
        floor.push(t);
        for (i, verb) in verbs.iter().enumerate() {
            let v = timed(ncsh(prefix, verb));
            times[i].push(v);
            ratios[i].push(v / t);
        }
    }
    let floor = median(floor);
    for (i, verb) in verbs.iter().enumerate() {
        rows.push(Row {
            work: verb.join(" ").replace(&name, "NAME"),
            ncsh: ms(median(times[i].clone())),
            reference: format!("/bin/true: {}", ms(floor)),
            ratio: Some(median(ratios[i].clone())),
            goal: Some(1.3),
            note: String::new(),
        });
    }

    // PSS per running container: ncsh's (supervisor, nspawn, container) against bare nspawn's.
    let settle = Duration::from_millis(500);
    let (mut pss, mut bare_pss, mut r_pss) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds.div_ceil(3) {
        if round > 0 {
            timed(ncsh(prefix, &["start", &name]));
        }
        std::thread::sleep(settle);
        let ours = pss_tree(supervisor(&name)) as f64;
        timed(ncsh(prefix, &["stop", &name]));
        let mut boot = BareBoot::spawn(prefix, &name);
        boot.notify.ready();
        std::thread::sleep(settle);
        let theirs = pss_tree(boot.child.id() as i32) as f64;
        boot.stop();
        pss.push(ours);
        bare_pss.push(theirs);
        r_pss.push(ours / theirs);
    }
    let mib = |kib: f64| format!("{:.1} MiB", kib / 1024.0);
    rows.push(Row {
        work: "PSS per running container".into(),
        ncsh: mib(median(pss)),
        reference: format!("bare nspawn: {}", mib(median(bare_pss))),
        ratio: Some(median(r_pss)),
        goal: Some(1.0),
        note: "ncsh: supervisor + nspawn + container; bare: nspawn + container".into(),
    });

    // 10 starts at once against 10 bare boots at once, each container its own root.
    let (mut par, mut bare_par, mut r_par) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds.div_ceil(3) {
        let t = Instant::now();
        let children: Vec<Child> = parallel
            .iter()
            .map(|n| ncsh(prefix, &["start", n]).spawn().unwrap())
            .collect();
        for mut child in children {
            assert!(child.wait().unwrap().success(), "a parallel start failed");
        }
        let ours = t.elapsed().as_secs_f64();
        let stops: Vec<Child> = parallel
            .iter()
            .map(|n| ncsh(prefix, &["stop", n]).spawn().unwrap())
            .collect();
        for mut child in stops {
            assert!(child.wait().unwrap().success(), "a parallel stop failed");
        }
        let t = Instant::now();
        let mut boots: Vec<BareBoot> = parallel
            .iter()
            .map(|n| BareBoot::spawn(prefix, n))
            .collect();
        for boot in &boots {
            boot.notify.ready();
        }
        let theirs = t.elapsed().as_secs_f64();
        for boot in &mut boots {
            boot.stop();
        }
        par.push(ours);
        bare_par.push(theirs);
        r_par.push(ours / theirs);
    }
    rows.push(Row {
        work: "10 starts at once".into(),
        ncsh: ms(median(par)),
        reference: format!("10 bare nspawn boots at once: {}", ms(median(bare_par))),
        ratio: Some(median(r_par)),
        goal: Some(0.9),
        note: String::new(),
    });

    // update of the running container (httpd's port), against daemon-reload + restart inside.
    let configs = [
        "services.httpd.enable = true; networking.firewall.allowedTCPPorts = [ 80 ];",
        "services.httpd.enable = true; services.httpd.virtualHosts.a.listen = [ { port = 8080; } ]; networking.firewall.allowedTCPPorts = [ 8080 ];",
    ];
    let update = |i: usize| {
        let mut cmd = ncsh(prefix, &["update", &name, "--config", configs[i % 2]]);
        cmd.stderr(Stdio::null());
        timed(cmd)
    };
    // The first update adds httpd; those measured change its port only.
    timed(ncsh(prefix, &["start", &name]));
    update(0);
    let leader = leader_of(&name);
    let (mut updates, mut reloads, mut r_update) = (Vec::new(), Vec::new(), Vec::new());
    for i in 1..=rounds {
        let ours = update(i);
        let t = Instant::now();
        for args in [&["daemon-reload"][..], &["restart", "httpd.service"][..]] {
            let mut cmd = Command::new("nsenter");
            cmd.args(["-t", &leader, "-a", "systemctl"]).args(args);
            let status = quiet(cmd).status().unwrap();
            assert!(status.success(), "systemctl {args:?} inside failed");
        }
        let theirs = t.elapsed().as_secs_f64();
        updates.push(ours);
        reloads.push(theirs);
        r_update.push(ours / theirs);
    }
    rows.push(Row {
        work: "update, one unit changed (live)".into(),
        ncsh: ms(median(updates)),
        reference: format!(
            "systemctl daemon-reload + restart inside: {}",
            ms(median(reloads))
        ),
        ratio: Some(median(r_update)),
        goal: Some(1.0),
        note: String::new(),
    });

    // The native builder: create with a configuration (absolute).
    let ssh = "services.openssh.enable = true; users.users.alice = { isNormalUser = true; password = \"x\"; };";
    let creates: Vec<f64> = (0..rounds)
        .map(|i| {
            let other = format!("bc{i}-{tag}");
            guard.containers.borrow_mut().push(other.clone());
            let mut cmd = ncsh(prefix, &["create", &other, "--config", ssh]);
            cmd.stderr(Stdio::null());
            let t = timed(cmd);
            timed(ncsh(prefix, &["destroy", &other]));
            guard.containers.borrow_mut().retain(|n| *n != other);
            t
        })
        .collect();
    rows.push(Row {
        work: "create --config (sshd, a user)".into(),
        ncsh: ms(median(creates)),
        reference: "-".into(),
        ratio: None,
        goal: None,
        note: String::new(),
    });

    print_rows(&rows, rounds);
    write_json(&rows, rounds);
    drop(lxc);
    drop(attach);
    drop(guard);
}

fn print_rows(rows: &[Row], rounds: usize) {
    println!(
        "lifecycle ({rounds} rounds; run, verbs {} rounds; PSS, 10 at once {} rounds; interleaved medians)",
        rounds * 4,
        rounds.div_ceil(3)
    );
    println!();
    println!("| work | ncsh | reference | ratio | goal | met |");
    println!("|---|---|---|---|---|---|");
    for row in rows {
        let ratio = row.ratio.map_or("-".into(), |r| format!("{r:.2}×"));
        let goal = row.goal.map_or("-".into(), |g| format!("≤ {g}×"));
        println!(
            "| {} | {} | {} | {ratio} | {goal} | {} |",
            row.work,
            row.ncsh,
            row.reference,
            row.met()
        );
    }
    for row in rows.iter().filter(|r| !r.note.is_empty()) {
        println!("- {}: {}", row.work, row.note);
    }
}

/// `target/bench/lifecycle.json`: the bench binary is `target/PROFILE/deps/lifecycle-HASH`.
fn write_json(rows: &[Row], rounds: usize) {
    let exe = std::env::current_exe().unwrap();
    let Some(target) = exe.ancestors().nth(3) else {
        return;
    };
    let out = target.join("bench");
    std::fs::create_dir_all(&out).unwrap();
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "work": r.work,
                "ncsh": r.ncsh,
                "reference": r.reference,
                "ratio": r.ratio,
                "goal": r.goal,
                "met": r.met(),
                "note": r.note,
            })
        })
        .collect();
    let json = serde_json::json!({ "rounds": rounds, "rows": rows });
    let path = out.join("lifecycle.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    println!("(written to {})", path.display());
}
