//! Concurrency and crashes: parallel verbs on one container wait for each other, prefixes do not
//! touch each other's containers, and what a killed or interrupted command leaves is removed by
//! the next one.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::*;

fn up(env: &Env, name: &str) -> bool {
    stdout(&env.run(&["status", name])) == "up\n"
}

fn spawn(env: &Env, args: &[&str]) -> Child {
    env.command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A PID no process has (a child that already exited and was reaped).
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn state_dir(env: &Env) -> PathBuf {
    env.prefix().join("var/lib/nixos-containers")
}

fn conf_dir(env: &Env) -> PathBuf {
    env.prefix().join("etc/nixos-containers")
}

/// Names in `dir` that start with a dot (debris, temporary files).
fn hidden(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn parallel_starts_of_one_container_all_succeed() {
    require_root();
    let env = Env::new();
    let name = unique_name("pst");
    env.create_booting(&name);
    let starts: Vec<Child> = (0..10).map(|_| spawn(&env, &["start", &name])).collect();
    for child in starts {
        assert_ok(&child.wait_with_output().unwrap(), "a parallel start");
    }
    assert!(up(&env, &name));
    // Stop and start racing: whatever the order, both succeed and the last one wins.
    let stop = spawn(&env, &["stop", &name]);
    let start = spawn(&env, &["start", &name]);
    assert_ok(&stop.wait_with_output().unwrap(), "stop");
    assert_ok(&start.wait_with_output().unwrap(), "start");
    let out = env.run(&["run", &name, "--", "true"]);
    assert_eq!(
        out.status.success(),
        up(&env, &name),
        "status tells the truth"
    );
}

/// Start, update and destroy at once: each waits for the other, none fails but for the
/// container being gone, and nothing is left.
#[test]
fn destroy_racing_start_ends_consistent() {
    require_root();
    let env = Env::new();
    for round in 0..3 {
        let name = unique_name("rac");
        env.create_booting(&name);
        let start = spawn(&env, &["start", &name]);
        let update = spawn(
            &env,
            &[
                "update",
                &name,
                "--config",
                "environment.etc.x.text = \"y\";",
            ],
        );
        if round > 0 {
            std::thread::sleep(Duration::from_millis(150 * round));
        }
        let destroy = spawn(&env, &["destroy", &name]);
        let destroyed = destroy.wait_with_output().unwrap();
        assert_ok(&destroyed, "destroy");
        let started = start.wait_with_output().unwrap();
        assert!(
            started.status.success() || stderr(&started).contains("does not exist"),
            "start: {}",
            stderr(&started)
        );
        assert!(!stderr(&started).contains("Cannot find device"));
        let updated = update.wait_with_output().unwrap();
        assert!(
            updated.status.success() || stderr(&updated).contains("does not exist"),
            "update: {}",
            stderr(&updated)
        );
        assert!(!env.conf_path(&name).exists());
        assert_no_debris(&env, &name);
        assert!(!env.prefix().join(format!("run/ncsh/.{name}.lock")).exists());
    }
}

#[test]
fn a_prefix_never_touches_another_prefixs_container() {
    require_root();
    let (a, b) = (Env::new(), Env::new());
    let name = unique_name("pfx");
    a.create_booting(&name);
    b.create_booting(&name);
    assert_ok(&b.run(&["start", &name]), "start in b");
    let leader_b = leader(&b, &name);

    // A start of the same name elsewhere is refused: the cgroup and the link are b's.
    let out = a.run(&["start", &name]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!(
            "belong to the container of {}",
            b.conf_path(&name).display()
        )),
        "{}",
        stderr(&out)
    );
    // Destroying the stopped one in a kills nothing of b's.
    assert_ok(&a.run(&["destroy", &name]), "destroy in a");
    assert!(!a.conf_path(&name).exists() && !a.root_path(&name).exists());
    assert!(up(&b, &name), "b's container went down");
    assert_eq!(leader(&b, &name), leader_b);
    assert_ok(&b.run(&["run", &name, "--", "true"]), "run in b");
    assert_ok(&b.run(&["stop", &name]), "stop in b");
}

#[test]
fn auto_allocation_skips_addresses_the_host_holds() {
    require_root();
    let (a, b) = (Env::new(), Env::new());
    let name = unique_name("own");
    let (host, local) = a.create_booting(&name);
    assert_ok(&a.run(&["start", &name]), "start");
    // b's confs use every pair below the running one, which b's confs do not know about.
    let third: u8 = host.split('.').nth(2).unwrap().parse().unwrap();
    std::fs::create_dir_all(conf_dir(&b)).unwrap();
    for n in 1..third {
        std::fs::write(
            conf_dir(&b).join(format!("fill{n}.conf")),
            format!("HOST_ADDRESS=10.233.{n}.1\nLOCAL_ADDRESS=10.233.{n}.2\n"),
        )
        .unwrap();
    }
    let other = unique_name("new");
    b.create(&other, &[]);
    let conf = std::fs::read_to_string(b.conf_path(&other)).unwrap();
    assert!(
        !conf.contains(&format!("HOST_ADDRESS={host}\n"))
            && !conf.contains(&format!("LOCAL_ADDRESS={local}\n")),
        "allocated the running container's pair: {conf}"
    );
    for n in 1..third {
        std::fs::remove_file(conf_dir(&b).join(format!("fill{n}.conf"))).unwrap();
    }
    assert_ok(&a.run(&["stop", &name]), "stop");
}

#[test]
fn a_root_without_its_generation_does_not_start() {
    require_root();
    let env = Env::new();
    let name = unique_name("gut");
    env.create_booting(&name);
    // What an interrupted delete of the root leaves: a root without its system.
    std::fs::remove_dir_all(env.root_path(&name).join("var/lib/ncsh")).unwrap();
    let out = env.run(&["start", &name]);
    assert!(!out.status.success());
    assert!(
        stderr(&out)
            .contains("has no current generation (var/lib/ncsh/generations/current is missing)")
            && stderr(&out).contains(&format!("ncsh destroy {name}")),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&env.run(&["status", &name])), "down\n");
    assert!(!env.prefix().join("run/ncsh").join(&name).exists());
    // What a destroy killed between its two renames leaves: a conf without a root.
    std::fs::remove_dir_all(env.root_path(&name)).unwrap();
    let out = env.run(&["start", &name]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!(
            "its root {} is missing",
            env.root_path(&name).display()
        )),
        "{}",
        stderr(&out)
    );
    assert!(!env.root_path(&name).exists(), "start made a root");
}

#[test]
fn an_interrupted_destroy_leaves_no_container_that_boots() {
    require_root();
    let env = Env::new();
    let name = unique_name("int");
    env.create_booting(&name);
    // A file that cannot be deleted stops the destroy half-way (as a kill would): immutable,
    // and a destroy without CAP_LINUX_IMMUTABLE, which would clear the flag.
    let stuck = env.root_path(&name).join("etc/stuck");
    std::fs::write(&stuck, "").unwrap();
    assert!(
        Command::new("chattr")
            .arg("+i")
            .arg(&stuck)
            .status()
            .unwrap()
            .success()
    );
    let out = env
        .command_as(
            "setpriv",
            &["--bounding-set=-linux_immutable", BIN, "destroy", &name],
        )
        .output()
        .unwrap();
    let debris = hidden(&state_dir(&env));
    let _ = Command::new("chattr")
        .arg("-i")
        .args(
            debris
                .iter()
                .map(|d| state_dir(&env).join(d).join("etc/stuck")),
        )
        .status();
    let _ = Command::new("chattr").arg("-i").arg(&stuck).status();
    assert!(!out.status.success(), "the destroy was not interrupted");
    // Nothing is left that looks like a container: no conf, no root, only named debris.
    assert!(!env.conf_path(&name).exists() && !env.root_path(&name).exists());
    assert_eq!(stdout(&env.run(&["list"])), "");
    assert!(
        debris
            .iter()
            .all(|d| d.starts_with(&format!(".{name}.destroying-")))
            && debris.len() == 1,
        "{debris:?}"
    );
    // The next command removes it (its destroy is dead).
    assert_ok(&env.run(&["destroy", &name]), "destroy again");
    assert_eq!(hidden(&state_dir(&env)), Vec::<String>::new());
    assert_eq!(hidden(&conf_dir(&env)), Vec::<String>::new());
}

#[test]
fn crash_debris_is_removed_by_the_next_command() {
    require_root();
    let env = Env::new();
    let name = unique_name("crs");
    env.create_booting(&name);

    // A create killed while it builds leaves its `.NAME.creating-PID`.
    let killed = unique_name("kil");
    let mut create = spawn(&env, &["create", &killed]);
    let creating = format!(".{killed}.creating-{}", create.id());
    assert!(
        eventually(Duration::from_secs(20), || hidden(&state_dir(&env))
            .contains(&creating)),
        "the create never started building"
    );
    create.kill().unwrap();
    create.wait().unwrap();
    assert!(hidden(&state_dir(&env)).contains(&creating));
    // What else a crash leaves: a destroy's renamed root and conf, a temporary conf.
    let dead = dead_pid();
    std::fs::create_dir_all(state_dir(&env).join(format!(".old.destroying-{dead}/etc"))).unwrap();
    std::fs::write(
        conf_dir(&env).join(format!(".old.conf.destroying-{dead}")),
        "",
    )
    .unwrap();
    // The temporary crate::files writes a conf through before renaming it into place.
    std::fs::write(conf_dir(&env).join(format!(".x.conf.ncsh-tmp-{dead}")), "").unwrap();
    // A live process's work in progress stays.
    let live = format!(".busy.creating-{}", std::process::id());
    std::fs::create_dir(state_dir(&env).join(&live)).unwrap();

    // A failed start keeps nothing of its run (console.log, the supervisor lock).
    let out = env
        .command(&["start", &name])
        .env("NCSH_NSPAWN", "/bin/false")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!env.prefix().join("run/ncsh").join(&name).exists());
    assert_eq!(hidden(&state_dir(&env)), vec![live.clone()]);
    assert_eq!(hidden(&conf_dir(&env)), Vec::<String>::new());
    std::fs::remove_dir(state_dir(&env).join(&live)).unwrap();

    // A root without a conf is removed by destroy, not left for the next create to reuse.
    std::fs::remove_file(env.conf_path(&name)).unwrap();
    assert_ok(&env.run(&["destroy", &name]), "destroy without a conf");
    assert!(!env.root_path(&name).exists());
}

/// Run `ncsh create` and return it with a reader of its stderr lines.
fn create_reading_stderr(env: &Env, name: &str) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut child = spawn(env, &["create", name]);
    let err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

#[test]
fn a_held_create_lock_is_reported_with_its_holder() {
    require_root();
    let env = Env::new();
    let lock = env.prefix().join("run/lock/nixos-container");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::fs::write(&lock, "").unwrap();
    std::fs::set_permissions(&lock, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    // An unprivileged user may open a world-readable lock file and flock it.
    let mut holder = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "flock",
            "-o",
            "-x",
        ])
        .arg(&lock)
        .args(["sleep", "60"])
        .spawn()
        .unwrap();
    assert!(eventually(Duration::from_secs(10), || {
        std::fs::read_to_string("/proc/locks")
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("FLOCK"))
            && Command::new("flock")
                .args(["-n", "-x"])
                .arg(&lock)
                .arg("true")
                .status()
                .is_ok_and(|s| !s.success())
    }));
    let name = unique_name("wai");
    env.track(&name);
    let (create, lines) = create_reading_stderr(&env, &name);
    let line = lines.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(
        line.starts_with(&format!(
            "ncsh: waiting for the create lock {}, held by PID ",
            lock.display()
        )) && line.ends_with("(flock)"),
        "{line}"
    );
    // It keeps waiting, then goes on once the holder is gone.
    std::thread::sleep(Duration::from_millis(300));
    assert!(!env.conf_path(&name).exists());
    holder.kill().unwrap();
    holder.wait().unwrap();
    let out = create.wait_with_output().unwrap();
    assert_ok(&out, "create after the wait");
    // Now only its owner can open it.
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&lock).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let more: Vec<String> = lines.try_iter().collect();
    assert!(
        !more.iter().any(|l| l.contains("waiting")),
        "the wait is reported once: {more:?}"
    );
}

#[test]
fn a_symlink_at_the_create_lock_is_refused() {
    require_root();
    let env = Env::new();
    let lock = env.prefix().join("run/lock/nixos-container");
    let target = env.prefix().join("victim");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&target, &lock).unwrap();
    let name = unique_name("sym");
    let out = env.run(&["create", &name]);
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out),
        format!(
            "ncsh: the lock file {} is a symbolic link; remove it (ncsh only locks a regular file of its own)\n",
            lock.display()
        )
    );
    assert!(!target.exists() && !env.conf_path(&name).exists());
    // Nor does ncsh lock another user's file there (they could hold it whenever they like).
    std::fs::remove_file(&lock).unwrap();
    std::fs::write(&lock, "").unwrap();
    std::os::unix::fs::chown(&lock, Some(65534), Some(65534)).unwrap();
    let out = env.run(&["create", &name]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is owned by uid 65534, not by uid 0; remove it"),
        "{}",
        stderr(&out)
    );
    assert!(!env.conf_path(&name).exists());
}
