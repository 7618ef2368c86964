//! What runs inside through `run` and `root-login` is confined as the container's own processes
//! are: in the container's cgroup, with the leader's capability bounding set and no capability
//! outside it.

use std::time::Duration;

use crate::common::*;
use crate::login::Session;

/// A field of a `/proc/PID/status` text, as a number (the capability sets are hex).
fn capabilities(status: &str, field: &str) -> u64 {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {status}"));
    u64::from_str_radix(hex.trim(), 16).unwrap()
}

/// `status` (of a process that entered) has the leader's bounding set, and its other sets are
/// within it.
#[track_caller]
fn assert_leaders_capabilities(status: &str, leader: i32) {
    let theirs = std::fs::read_to_string(format!("/proc/{leader}/status")).unwrap();
    let bounding = capabilities(&theirs, "CapBnd");
    let ours = std::fs::read_to_string("/proc/self/status").unwrap();
    // Else the test would show nothing: the container must have fewer than the host.
    assert_ne!(capabilities(&ours, "CapBnd"), bounding);
    assert_eq!(capabilities(status, "CapBnd"), bounding, "{status}");
    for field in ["CapEff", "CapPrm", "CapInh", "CapAmb"] {
        let set = capabilities(status, field);
        assert_eq!(
            set & !bounding,
            0,
            "{field} {set:x} beyond CapBnd {bounding:x}"
        );
    }
}

/// `self` and `one` (`/proc/self/cgroup` and `/proc/1/cgroup` read inside) are the same: the
/// process is in its leader's cgroup, which the container's cgroup namespace has as its root or
/// below it (not `/..`, a cgroup outside the container).
#[track_caller]
fn assert_leaders_cgroup(own: &str, one: &str) {
    assert!(own.contains("0::/"), "{own}");
    assert_eq!(own, one);
    assert!(!own.contains("/.."), "{own}");
}

fn started(env: &Env, tag: &str) -> String {
    let name = unique_name(tag);
    env.create_booting(&name);
    assert_ok(&env.run(&["start", &name]), "start");
    name
}

#[test]
fn run_is_in_the_containers_cgroup_with_its_capabilities() {
    require_root();
    let env = Env::new();
    let name = started(&env, "enr");
    let leader = leader(&env, &name);

    let out = env.run(&["run", &name, "--", "cat", "/proc/self/status"]);
    assert_ok(&out, "run");
    assert_leaders_capabilities(&stdout(&out), leader);

    let own = env.run(&["run", &name, "--", "cat", "/proc/self/cgroup"]);
    let one = env.run(&["run", &name, "--", "cat", "/proc/1/cgroup"]);
    assert_leaders_cgroup(&stdout(&own), &stdout(&one));

    // Seen from the host too, while it runs: the leader's own cgroups.
    let mut sleeper = env
        .command(&["run", &name, "--", "sleep", "30"])
        .spawn()
        .unwrap();
    let theirs = std::fs::read_to_string(format!("/proc/{leader}/cgroup")).unwrap();
    let in_leaders = eventually(Duration::from_secs(10), || {
        let out = std::process::Command::new("pgrep")
            .args(["-x", "sleep"])
            .output()
            .unwrap();
        stdout(&out).lines().any(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|c| c == theirs)
        })
    });
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert!(in_leaders, "no sleep in the leader's cgroups {theirs}");
}

#[test]
fn root_login_is_in_the_containers_cgroup_with_its_capabilities() {
    require_root();
    let env = Env::new();
    let name = started(&env, "enl");
    let leader = leader(&env, &name);
    let probe = "cat /proc/$$/status > /root/status; cat /proc/$$/cgroup > /root/own; \
                 cat /proc/1/cgroup > /root/one; echo probed-$((6*7))\n";
    let read = |file: &str| std::fs::read_to_string(env.root_path(&name).join("root").join(file));

    // On a terminal (su -l on a pty inside).
    let mut s = Session::on_pty(&env, &["root-login", &name]);
    s.expect("# ");
    s.send(probe);
    s.expect("probed-42");
    s.send("exit\n");
    assert_eq!(s.finish(), 0, "{}", s.text());
    assert_leaders_capabilities(&read("status").unwrap(), leader);
    assert_leaders_cgroup(&read("own").unwrap(), &read("one").unwrap());

    // Through pipes.
    for file in ["status", "own", "one"] {
        std::fs::remove_file(env.root_path(&name).join("root").join(file)).unwrap();
    }
    let out = output_with_stdin(env.command(&["root-login", &name]), probe.as_bytes());
    assert_ok(&out, "root-login");
    assert_eq!(stdout(&out), "probed-42\n");
    assert_leaders_capabilities(&read("status").unwrap(), leader);
    assert_leaders_cgroup(&read("own").unwrap(), &read("one").unwrap());
}
