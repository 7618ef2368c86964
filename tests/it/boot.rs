//! The trimmed boot (issue 17, item 1; ARCHITECTURE.md "The trimmed boot"): a native container
//! boots only what multi-user needs, and what was left out still starts when asked for: dbus on
//! its socket, logind at the first login, the journal persistent without a flush, the users of
//! the host's sysusers.d there without systemd-sysusers running.

use std::time::Duration;

use crate::common::*;

fn inside(env: &Env, name: &str, argv: &[&str]) -> String {
    let out = env.run_inside(name, argv);
    assert_ok(&out, &argv.join(" "));
    stdout(&out)
}

fn active_state(env: &Env, name: &str, unit: &str) -> String {
    inside(env, name, &["systemctl", "show", "-P", "ActiveState", unit])
        .trim()
        .to_string()
}

#[test]
fn the_boot_holds_only_what_multi_user_needs_and_the_rest_starts_on_demand() {
    require_root();
    let env = Env::new();
    let name = unique_name("boot");
    env.create_booting_with(
        &name,
        &[
            "--config",
            "users.users.alice = { isNormalUser = true; password = \"pw\"; };",
        ],
    );
    assert_ok(&env.run(&["start", &name]), "start");

    let running = inside(&env, &name, &["systemctl", "is-system-running"]);
    assert_eq!(running.trim(), "running", "failed units after the boot");
    // The services the boot ran: journald, tmpfiles and the firewall; nothing more.
    let services = inside(
        &env,
        &name,
        &[
            "systemctl",
            "list-units",
            "--type=service",
            "--state=active",
            "--no-legend",
            "--plain",
        ],
    );
    let started: Vec<&str> = services
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for left_out in [
        "dbus.service",
        "systemd-logind.service",
        "systemd-user-sessions.service",
        "systemd-journal-flush.service",
        "systemd-sysusers.service",
        "systemd-update-utmp-runlevel.service",
    ] {
        assert!(
            !started.contains(&left_out),
            "{left_out} is in the boot: {started:?}"
        );
    }
    assert!(started.contains(&"systemd-journald.service"), "{started:?}");
    let chain = inside(&env, &name, &["systemd-analyze", "critical-chain"]);
    assert!(
        chain.contains("systemd-tmpfiles-setup.service")
            && !chain.contains("systemd-journal-flush")
            && !chain.contains("systemd-sysusers"),
        "{chain}"
    );

    // sysusers skipped by its condition, and what it would have added is there.
    let sysusers = inside(
        &env,
        &name,
        &[
            "systemctl",
            "show",
            "-P",
            "ConditionResult",
            "systemd-sysusers.service",
        ],
    );
    assert_eq!(sysusers.trim(), "no", "systemd-sysusers ran at boot");
    for user in ["www-data", "systemd-network", "messagebus", "alice"] {
        let out = env.run_inside(&name, &["getent", "passwd", user]);
        assert_ok(&out, &format!("getent passwd {user}"));
    }
    let out = env.run_inside(&name, &["getent", "group", "tty"]);
    assert_eq!(stdout(&out).split(':').nth(2), Some("5"), "group tty");

    // The journal went to /var from the start: persistent, in the root.
    let journal = env.root_path(&name).join("var/log/journal");
    let files = walk_files(&journal);
    assert!(
        files.iter().any(|f| f.ends_with("system.journal")),
        "no persistent journal: {files:?}"
    );
    let volatile = env.run_inside(&name, &["find", "/run/log", "-name", "*.journal"]);
    assert!(
        stdout(&volatile).trim().is_empty(),
        "a journal in /run: {}",
        stdout(&volatile)
    );

    // No /run/nologin to keep a normal user out.
    let out = env.run_inside(&name, &["test", "-e", "/run/nologin"]);
    assert!(!out.status.success(), "/run/nologin exists");

    // On demand: a bus client starts dbus; a session request starts logind.
    assert_eq!(active_state(&env, &name, "dbus.service"), "inactive");
    assert_eq!(
        active_state(&env, &name, "systemd-logind.service"),
        "inactive"
    );
    let sessions = env.run_inside(&name, &["loginctl", "list-sessions", "--no-legend"]);
    assert_ok(&sessions, "loginctl");
    assert!(
        eventually(Duration::from_secs(10), || {
            active_state(&env, &name, "systemd-logind.service") == "active"
        }),
        "logind did not start on demand"
    );
    assert_eq!(active_state(&env, &name, "dbus.service"), "active");
    // A normal user's session through PAM (pam_systemd registers it with logind).
    let id = inside(&env, &name, &["su", "-", "alice", "-c", "id -un"]);
    assert_eq!(id.trim(), "alice");

    assert_ok(&env.run(&["destroy", &name]), "destroy");
    assert_no_debris(&env, &name);
}

fn walk_files(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(walk_files(&path));
        } else {
            out.push(path.display().to_string());
        }
    }
    out
}
