//! The nspawn options of a container, as NixOS's containers module writes them into the conf
//! (EXTRA_NSPAWN_FLAGS) and `create --bind …` writes them: bind mounts read-write and
//! read-only, tmpfs, capabilities, ephemeral roots, an IPv6 pair; destroy with a bind mount and
//! an immutable file inside the root. Real containers, under the standalone driver.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::*;

/// `unreachable fc00::/7`, so that traffic to a test's unique-local addresses never leaves
/// the machine (ARCHITECTURE.md, "Traffic from tests").
fn ensure_unreachable_v6() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let shown = Command::new("ip")
            .args(["-6", "route", "show", "type", "unreachable", "fc00::/7"])
            .output();
        if !shown.is_ok_and(|o| !o.stdout.is_empty()) {
            let status = Command::new("ip")
                .args(["-6", "route", "add", "unreachable", "fc00::/7"])
                .status();
            assert!(status.is_ok_and(|s| s.success()), "adding fc00::/7 failed");
        }
    });
}

/// Bit `bit` of the CapBnd line of `/proc/1/status` inside container `name`.
fn pid1_has_capability(env: &Env, name: &str, bit: u32) -> bool {
    let out = env.run_inside(name, &["cat", "/proc/1/status"]);
    assert_ok(&out, "reading /proc/1/status");
    let text = stdout(&out);
    let hex = text
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .expect("a CapBnd line")
        .trim()
        .to_string();
    let mask = u64::from_str_radix(&hex, 16).unwrap();
    mask & (1 << bit) != 0
}

/// CAP_IPC_LOCK: not among nspawn's default capabilities, in this host's bounding set.
const CAP_IPC_LOCK: u32 = 14;

#[test]
fn binds_tmpfs_capability_and_ipv6_reach_the_container() {
    require_root();
    ensure_unreachable_v6();
    let env = Env::new();
    let name = unique_name("bnd");
    let shared = env.prefix().join("shared");
    let readonly = env.prefix().join("readonly");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::create_dir_all(&readonly).unwrap();
    std::fs::write(readonly.join("motd"), "from the host\n").unwrap();
    let (h4, l4) = env.test_addresses();
    // A unique pair from this test's claimed IPv4 pair (10.233.T.x → fd42:233:T::1/::2).
    let third = h4.split('.').nth(2).unwrap().to_string();
    let (host6, local6) = (
        format!("fd42:233:{third}::1"),
        format!("fd42:233:{third}::2"),
    );
    let shared_bind = format!("{}:/srv/shared", shared.display());
    let ro_bind = format!("{}:/srv/ro", readonly.display());
    env.create(
        &name,
        &[
            "--host-address",
            &h4,
            "--local-address",
            &l4,
            "--host-address6",
            &host6,
            "--local-address6",
            &local6,
            "--bind",
            &shared_bind,
            "--bind-ro",
            &ro_bind,
            "--tmpfs",
            "/srv/scratch",
            "--capability",
            "CAP_IPC_LOCK",
        ],
    );
    // The conf as NixOS's module writes it.
    let conf = std::fs::read_to_string(env.conf_path(&name)).unwrap();
    assert!(
        conf.contains(&format!("HOST_ADDRESS6={host6}\nLOCAL_ADDRESS6={local6}\n")),
        "{conf}"
    );
    assert!(
        conf.ends_with(&format!(
            "EXTRA_NSPAWN_FLAGS=\" --bind={shared_bind} --bind-ro={ro_bind} \
             --capability=CAP_IPC_LOCK --tmpfs=/srv/scratch\"\n"
        )),
        "{conf}"
    );
    assert_ok(&env.run(&["start", &name]), "start");

    // Read-write: both sides see each other's writes.
    std::fs::write(shared.join("from-host"), "h\n").unwrap();
    let out = env.run_inside(
        &name,
        &[
            "sh",
            "-c",
            "cat /srv/shared/from-host && echo c > /srv/shared/from-container",
        ],
    );
    assert_ok(&out, "the rw bind inside");
    assert_eq!(stdout(&out), "h\n");
    assert_eq!(
        std::fs::read_to_string(shared.join("from-container")).unwrap(),
        "c\n"
    );
    // Read-only: readable, a write fails inside and leaves the host dir alone.
    let out = env.run_inside(&name, &["cat", "/srv/ro/motd"]);
    assert_eq!(stdout(&out), "from the host\n");
    let out = env.run_inside(&name, &["sh", "-c", "echo x > /srv/ro/new"]);
    assert!(!out.status.success(), "a write to the ro bind succeeded");
    assert!(
        stderr(&out).contains("Read-only file system"),
        "{}",
        stderr(&out)
    );
    assert!(!readonly.join("new").exists());

    // tmpfs: a tmpfs inside, whose files are not in the root on the host.
    let out = env.run_inside(
        &name,
        &[
            "sh",
            "-c",
            "stat -f -c %T /srv/scratch && echo t > /srv/scratch/f",
        ],
    );
    assert_ok(&out, "the tmpfs");
    assert_eq!(stdout(&out), "tmpfs\n");
    assert!(!env.root_path(&name).join("srv/scratch/f").exists());

    // The capability is in PID 1's bounding set.
    assert!(pid1_has_capability(&env, &name, CAP_IPC_LOCK));

    // IPv6: the container connects to a listener on the host side of its veth.
    let addr: std::net::SocketAddr = format!("[{host6}]:8642").parse().unwrap();
    let mut listener = None;
    assert!(
        eventually(Duration::from_secs(10), || {
            listener = std::net::TcpListener::bind(addr).ok();
            listener.is_some()
        }),
        "the host side never got {host6}"
    );
    let listener = listener.unwrap();
    // Both ends' addresses finish duplicate address detection first (a tentative address
    // drops what is sent to it); each try is bounded (an unanswered SYN is retried for 2 min).
    assert!(
        eventually(Duration::from_secs(10), || {
            let out = env.run_inside(&name, &["ip", "-6", "addr", "show", "dev", "eth0"]);
            let text = stdout(&out);
            text.contains(&local6) && !text.contains("tentative")
        }),
        "the container's {local6} stayed tentative"
    );
    let connect = format!("echo over-v6 > /dev/tcp/{host6}/8642");
    let mut connected = false;
    let mut tries = Vec::new();
    for _ in 0..20 {
        let out = env.run_inside(&name, &["timeout", "3", "bash", "-c", &connect]);
        if out.status.success() {
            connected = true;
            break;
        }
        tries.push(format!("{:?}: {}", out.status, stderr(&out)));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        connected,
        "the container could not reach {host6}: {tries:?}"
    );
    let (mut stream, peer) = listener.accept().unwrap();
    assert_eq!(peer.ip().to_string(), local6);
    let mut got = String::new();
    std::io::Read::read_to_string(&mut stream, &mut got).unwrap();
    assert_eq!(got, "over-v6\n");

    assert_ok(&env.run(&["destroy", &name]), "destroy");
    // The host directories behind the binds survive the destroy.
    assert_eq!(
        std::fs::read_to_string(shared.join("from-host")).unwrap(),
        "h\n"
    );
    assert!(readonly.join("motd").exists());
}

#[test]
fn an_ephemeral_container_forgets_its_changes() {
    require_root();
    let env = Env::new();
    let name = unique_name("eph");
    env.create_booting_with(&name, &["--ephemeral"]);
    let conf = std::fs::read_to_string(env.conf_path(&name)).unwrap();
    assert!(
        conf.ends_with("EXTRA_NSPAWN_FLAGS=\" --ephemeral\"\n"),
        "{conf}"
    );
    for round in 0..2 {
        assert_ok(&env.run(&["start", &name]), "start");
        let out = env.run_inside(
            &name,
            &[
                "sh",
                "-c",
                "test ! -e /root/marker && echo x > /root/marker",
            ],
        );
        assert_ok(
            &out,
            &format!("round {round}: the marker of the last boot is gone"),
        );
        assert!(!env.root_path(&name).join("root/marker").exists());
        // Without --capability, CAP_IPC_LOCK is not there (the other test's check can fail).
        assert!(!pid1_has_capability(&env, &name, CAP_IPC_LOCK));
        assert_ok(&env.run(&["stop", &name]), "stop");
    }
    // A live update does not reach the copy it runs on: it is booted at the next start.
    assert_ok(&env.run(&["start", &name]), "start");
    let out = env.run(&[
        "update",
        &name,
        "--config",
        "environment.etc.added.text = \"y\";",
    ]);
    assert_ok(&out, "update");
    assert!(stderr(&out).contains("is ephemeral"), "{}", stderr(&out));
    assert!(
        !env.run_inside(&name, &["test", "-e", "/etc/added"])
            .status
            .success()
    );
    assert_ok(&env.run(&["restart", &name]), "restart");
    assert_eq!(stdout(&env.run_inside(&name, &["cat", "/etc/added"])), "y");
    assert_ok(&env.run(&["stop", &name]), "stop");
    // nspawn removed its copy of the root.
    let left: Vec<String> = std::fs::read_dir(env.prefix().join("var/lib/nixos-containers"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(&name) && n != &name)
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn flags_ncsh_does_not_pass_on_are_refused_and_change_nothing() {
    require_root();
    let env = Env::new();
    let name = unique_name("bad");
    let before = env.snapshot();
    for (flags, want) in [
        (
            vec!["--extra-flags", "--machine=other"],
            "--extra-flags: ‘--machine=other’ is refused",
        ),
        (vec!["--extra-flags", "-D /"], "short option"),
        (vec!["--bind", "relative:/x"], "must be absolute"),
        (vec!["--bind", "/no/such/dir:/x"], "does not exist"),
        (vec!["--capability", "NET;ADMIN"], "invalid --capability"),
        (
            vec!["--host-address6", "fc00::1"],
            "--local-address6 is required",
        ),
    ] {
        let mut args = vec!["create", name.as_str()];
        args.extend(flags.iter());
        let out = env.run(&args);
        assert!(!out.status.success(), "{flags:?} succeeded");
        assert!(stderr(&out).contains(want), "{flags:?}: {}", stderr(&out));
    }
    assert_eq!(env.snapshot(), before, "a refused create changed something");

    // The same options from a script, as a map (a string or an array where a flag repeats).
    let scripted = unique_name("scr");
    env.track(&scripted);
    let script = env.prefix().join("create.rhai");
    std::fs::write(
        &script,
        format!(
            "create(\"{scripted}\", #{{ bind: \"/etc:/srv/etc\", bind_ro: [\"/usr\", \"/etc/ssl:/ssl\"], \
             capability: [\"CAP_NET_ADMIN\"], tmpfs: [\"/var/cache\"], ephemeral: true, \
             extra_flags: \"--private-users=no\" }});\n\
             try {{ create(\"x{scripted}\", #{{ bind: 7 }}) }} catch (e) {{ print(e.message) }}\n"
        ),
    )
    .unwrap();
    let out = env.run(&[script.to_str().unwrap()]);
    assert_ok(&out, "the script");
    assert!(
        stdout(&out).contains("option ‘bind’ must be a string or an array of strings"),
        "{}",
        stdout(&out)
    );
    let conf = std::fs::read_to_string(env.conf_path(&scripted)).unwrap();
    assert!(
        conf.ends_with(
            "EXTRA_NSPAWN_FLAGS=\" --bind=/etc:/srv/etc --bind-ro=/usr --bind-ro=/etc/ssl:/ssl \
             --ephemeral --capability=CAP_NET_ADMIN --tmpfs=/var/cache --private-users=no\"\n"
        ),
        "{conf}"
    );

    // A conf whose EXTRA_NSPAWN_FLAGS would take the container from its supervisor does not
    // start, and says where the flag is.
    env.create_booting(&name);
    let conf_path = env.conf_path(&name);
    let mut conf = std::fs::read_to_string(&conf_path).unwrap();
    conf.push_str("EXTRA_NSPAWN_FLAGS=\"--bind-ro=/etc --kill-signal=SIGKILL\"\n");
    std::fs::write(&conf_path, conf).unwrap();
    let out = env.run(&["start", &name]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{}: EXTRA_NSPAWN_FLAGS: ‘--kill-signal=SIGKILL’ is refused",
            conf_path.display()
        )),
        "{err}"
    );
    assert_eq!(stdout(&env.run(&["status", &name])), "down\n");
    // update --bind replaces them (for the next start).
    let etc = "/etc:/srv/etc";
    assert_ok(
        &env.run(&["update", &name, "--bind-ro", etc]),
        "update --bind-ro",
    );
    let conf = std::fs::read_to_string(&conf_path).unwrap();
    assert!(
        conf.ends_with("EXTRA_NSPAWN_FLAGS=\" --bind-ro=/etc:/srv/etc\"\n"),
        "{conf}"
    );
    assert_ok(&env.run(&["start", &name]), "start");
    let out = env.run_inside(&name, &["test", "-f", "/srv/etc/hostname"]);
    assert_ok(&out, "/etc bound at /srv/etc");
}

/// NixOS's containers-imperative test: a bind mount placed inside a container's root, and a
/// file made immutable (as /var/empty after NixOS's activation), do not stop a destroy or let it
/// delete through the mount.
#[test]
fn destroy_unmounts_what_is_mounted_inside_and_removes_immutable_files() {
    require_root();
    let env = Env::new();
    let name = unique_name("dmt");
    env.create(&name, &[]);
    let important = env.prefix().join("nested-bindmount");
    std::fs::create_dir_all(&important).unwrap();
    std::fs::write(important.join("dummy"), "important data").unwrap();
    let target = env.root_path(&name).join("very/important/data");
    std::fs::create_dir_all(&target).unwrap();
    let mounted = Command::new("mount")
        .args(["--bind"])
        .arg(&important)
        .arg(&target)
        .status()
        .unwrap();
    assert!(mounted.success());
    let empty = env.root_path(&name).join("var/empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("f"), "").unwrap();
    for path in [empty.join("f"), empty.clone()] {
        let status = Command::new("chattr")
            .arg("+i")
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success(), "chattr +i {}", path.display());
    }
    let out = env.run(&["destroy", &name]);
    if !out.status.success() {
        // Leave nothing behind for the next run, whatever failed.
        let _ = Command::new("umount").arg("-l").arg(&target).status();
        let _ = Command::new("chattr")
            .args(["-R", "-f", "-i"])
            .arg(env.prefix())
            .status();
    }
    assert_ok(&out, "destroy");
    assert_eq!(
        std::fs::read_to_string(important.join("dummy")).unwrap(),
        "important data"
    );
    assert!(!env.root_path(&name).exists());
    assert!(!Path::new(&target).exists());
}

/// The same options under the systemd driver (a transient `container@NAME.service` in a
/// systemd test host): the nspawn command of the unit carries them, the container has them.
#[test]
fn systemd_driver_passes_the_nspawn_options() {
    require_root();
    let th = crate::testhost::TestHost::boot("sbn", false);
    let name = "binds";
    let out = th.exec(&["mkdir", "-p", "/srv/shared"]);
    assert_ok(&out, "mkdir in the test host");
    std::fs::write(th.path("/srv/shared/f"), "from the test host\n").unwrap();
    crate::systemd::create(
        &th,
        name,
        &[
            "--bind-ro",
            "/srv/shared:/mnt/shared",
            "--tmpfs",
            "/srv/scratch",
            "--capability",
            "CAP_IPC_LOCK",
        ],
    );
    assert_ok(&th.ncsh(&["start", name]), "start");
    let inside = |argv: &[&str]| {
        let mut all = vec!["run", name, "--"];
        all.extend_from_slice(argv);
        th.ncsh(&all)
    };
    assert_eq!(
        stdout(&inside(&["cat", "/mnt/shared/f"])),
        "from the test host\n"
    );
    assert!(
        !inside(&["sh", "-c", "echo x > /mnt/shared/g"])
            .status
            .success()
    );
    assert_eq!(
        stdout(&inside(&["stat", "-f", "-c", "%T", "/srv/scratch"])),
        "tmpfs\n"
    );
    // The test host, an nspawn container itself, has only nspawn's default capabilities, so
    // the one asked for cannot reach PID 1 here: the unit's command carries it.
    let exec_start = stdout(&th.exec(&[
        "systemctl",
        "show",
        "--value",
        "-p",
        "ExecStart",
        &format!("container@{name}.service"),
    ]));
    assert!(
        exec_start.contains("--capability=CAP_IPC_LOCK --tmpfs=/srv/scratch"),
        "{exec_start}"
    );
    assert_ok(&th.ncsh(&["destroy", name]), "destroy");
    assert_eq!(
        std::fs::read_to_string(th.path("/srv/shared/f")).unwrap(),
        "from the test host\n"
    );
}

/// NixOS's containers-tmpfs test: tmpfs over /var, /var/log and a new path; what the host
/// writes below the root's /var is hidden inside, what the container writes there never
/// reaches the host, and /root is the root's own.
#[test]
fn tmpfs_over_var_as_nixos_tests_it() {
    require_root();
    let env = Env::new();
    let name = unique_name("tmp");
    env.create_booting_with(
        &name,
        &[
            "--tmpfs",
            "/var",
            "--tmpfs",
            "/var/log",
            "--tmpfs",
            "/some/random/path",
        ],
    );
    let root = env.root_path(&name);
    std::fs::write(root.join("var/from-host"), "h").unwrap();
    assert_ok(&env.run(&["start", &name]), "start");
    for path in ["/var", "/var/log", "/some/random/path"] {
        let out = env.run_inside(&name, &["mountpoint", "-q", path]);
        assert_ok(&out, &format!("{path} is a mount point"));
    }
    assert!(
        !env.run_inside(&name, &["test", "-e", "/var/from-host"])
            .status
            .success()
    );
    let out = env.run_inside(
        &name,
        &[
            "sh",
            "-c",
            "echo r > /root/kept && echo v > /var/gone && echo p > /some/random/path/gone",
        ],
    );
    assert_ok(&out, "writing inside");
    assert_eq!(
        std::fs::read_to_string(root.join("root/kept")).unwrap(),
        "r\n"
    );
    assert!(!root.join("var/gone").exists());
    assert!(!root.join("some/random/path/gone").exists());
}
