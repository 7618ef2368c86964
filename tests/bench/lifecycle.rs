//! `cargo bench --bench lifecycle` (as root): ncsh against the tools underneath, in the same run,
//! interleaved, reported as medians and ratios (absolute times drift on shared machines).
//!
//! - start: `ncsh start` until it returns, against bare `systemd-nspawn` with the same command
//!   line on the same root until its `READY=1`;
//! - run: `ncsh run NAME -- true` against `nsenter -t LEADER -a true`;
//! - read-only verbs: `show-ip`, `list`, `status` (absolute; `/bin/true` as the spawn floor).
#![allow(clippy::unwrap_used)]

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ncsh");

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

/// Boot the container's root with bare systemd-nspawn (same arguments, own cgroup) until READY=1;
/// then stop it cleanly. Returns the time to READY.
fn bare_boot(prefix: &Path, name: &str) -> f64 {
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
    let sock_path = prefix.join("bare.notify");
    let _ = std::fs::remove_file(&sock_path);
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let t = Instant::now();
    let mut cmd = Command::new("/usr/bin/systemd-nspawn");
    cmd.args(&args)
        .env("NOTIFY_SOCKET", &sock_path)
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
    let mut child = cmd.spawn().unwrap();
    let mut buf = [0u8; 4096];
    let ready = loop {
        let n = sock.recv(&mut buf).unwrap();
        if String::from_utf8_lossy(&buf[..n])
            .lines()
            .any(|l| l == "READY=1")
        {
            break t.elapsed().as_secs_f64();
        }
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    child.wait().unwrap();
    cgroups
        .kill_and_remove(None, Duration::from_secs(5))
        .unwrap();
    let _ = std::fs::remove_dir_all(Path::new("/run/systemd/nspawn/propagate").join(name));
    ready
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("the lifecycle benchmark boots containers: run it as root");
        std::process::exit(1);
    }
    let rounds: usize = std::env::var("NCSH_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(9);
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path();
    let name = format!("bench{}", std::process::id() % 10000);
    let range = "10.233.0.0/16";
    let shown = Command::new("ip")
        .args(["route", "show", "type", "unreachable", range])
        .output()
        .unwrap();
    if shown.stdout.is_empty() {
        Command::new("ip")
            .args(["route", "add", "unreachable", range])
            .status()
            .unwrap();
    }
    let created = ncsh(
        prefix,
        &[
            "create",
            &name,
            "--host-address",
            "10.233.254.1",
            "--local-address",
            "10.233.254.2",
        ],
    )
    .stderr(Stdio::null())
    .status()
    .unwrap();
    assert!(created.success());
    // One warm-up of each, so page caches are equal.
    bare_boot(prefix, &name);
    timed(ncsh(prefix, &["start", &name]));
    timed(ncsh(prefix, &["stop", &name]));

    let (mut starts, mut bares, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let bare = bare_boot(prefix, &name);
        let start = timed(ncsh(prefix, &["start", &name]));
        timed(ncsh(prefix, &["stop", &name]));
        bares.push(bare);
        starts.push(start);
        ratios.push(start / bare);
    }
    println!("start ({rounds} rounds, interleaved)");
    println!(
        "  bare systemd-nspawn to READY=1   median {:7.1} ms",
        median(bares) * 1e3
    );
    println!(
        "  ncsh start                       median {:7.1} ms",
        median(starts) * 1e3
    );
    println!(
        "  ratio ncsh/bare                  median {:7.3}",
        median(ratios)
    );

    timed(ncsh(prefix, &["start", &name]));
    let leader =
        std::fs::read_to_string(prefix.join("run/ncsh").join(&name).join("leader")).unwrap();
    let leader = leader.trim().to_string();
    let (mut runs, mut nsenters, mut run_ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds * 4 {
        let run = timed(ncsh(prefix, &["run", &name, "--", "true"]));
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &leader, "-a", "true"]);
        let ns = timed(cmd);
        runs.push(run);
        nsenters.push(ns);
        run_ratios.push(run / ns);
    }
    println!("run ({} rounds, interleaved)", rounds * 4);
    println!(
        "  nsenter -t LEADER -a true        median {:7.2} ms",
        median(nsenters) * 1e3
    );
    println!(
        "  ncsh run NAME -- true            median {:7.2} ms",
        median(runs) * 1e3
    );
    println!(
        "  ratio ncsh/nsenter               median {:7.3}",
        median(run_ratios)
    );

    println!("read-only verbs (container up, {} runs each)", rounds * 4);
    let floor = median(
        (0..rounds * 4)
            .map(|_| timed(Command::new("/bin/true")))
            .collect(),
    );
    println!(
        "  /bin/true (process spawn floor)  median {:7.2} ms",
        floor * 1e3
    );
    for verb in [
        vec!["show-ip", name.as_str()],
        vec!["list"],
        vec!["status", name.as_str()],
    ] {
        let t = median(
            (0..rounds * 4)
                .map(|_| timed(ncsh(prefix, &verb)))
                .collect(),
        );
        println!("  ncsh {:<28}median {:7.2} ms", verb.join(" "), t * 1e3);
    }

    // The native builder: create with a configuration, and update of the running container.
    let ssh = "services.openssh.enable = true; users.users.alice = { isNormalUser = true; password = \"x\"; };";
    let creates: Vec<f64> = (0..rounds * 2)
        .map(|i| {
            let other = format!("bc{i}-{}", std::process::id() % 1000);
            let mut cmd = ncsh(prefix, &["create", &other, "--config", ssh]);
            cmd.stderr(Stdio::null());
            let t = timed(cmd);
            timed(ncsh(prefix, &["destroy", &other]));
            t
        })
        .collect();
    println!("native builder");
    println!(
        "  ncsh create --config (sshd, a user) median {:7.1} ms",
        median(creates) * 1e3
    );
    let configs = [
        "services.httpd.enable = true; networking.firewall.allowedTCPPorts = [ 80 ];",
        "services.httpd.enable = true; services.httpd.virtualHosts.a.listen = [ { port = 8080; } ]; networking.firewall.allowedTCPPorts = [ 8080 ];",
    ];
    let (mut updates, mut reloads) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        let mut cmd = ncsh(prefix, &["update", &name, "--config", configs[i % 2]]);
        cmd.stderr(Stdio::null());
        updates.push(timed(cmd));
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &leader, "-a", "systemctl", "daemon-reload"]);
        reloads.push(timed(cmd));
    }
    println!(
        "  ncsh update (httpd port change, live) median {:7.1} ms",
        median(updates) * 1e3
    );
    println!(
        "  systemctl daemon-reload inside       median {:7.1} ms",
        median(reloads) * 1e3
    );
    timed(ncsh(prefix, &["destroy", &name]));
}
