//! What `update` of a running container says: nothing about a reload before the configuration
//! built, a unit that fails to start after the switch by name (and a non-zero exit, as NixOS's
//! switch-to-configuration), and the generation it rolled back to.

use crate::common::*;

#[test]
fn update_reports_failed_units_and_the_rollback() {
    require_root();
    let env = Env::new();
    let name = unique_name("upf");
    env.create_booting(&name);
    assert_ok(&env.run(&["start", &name]), "start");
    let root = env.root_path(&name);
    let config_path = root.join("etc/nixos/configuration.nix");
    let current = || {
        std::fs::read_to_string(root.join("var/lib/ncsh/generations/current"))
            .unwrap()
            .trim()
            .to_string()
    };
    let before = (current(), std::fs::read_to_string(&config_path).unwrap());

    // A configuration that does not evaluate: an error, and no word of a reload.
    let out = env.run(&[
        "update",
        &name,
        "--config",
        "services.nosuch.enable = true;",
    ]);
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("reloading container"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("services.nosuch"), "{}", stderr(&out));

    // A service whose program fails at once: it starts, then fails. The update fails naming
    // it, and says it rolled back, and to which generation.
    let broken = "systemd.services.upf-broken = { wantedBy = [ \"multi-user.target\" ]; \
                  serviceConfig.ExecStart = \"/bin/sh -c 'echo giving up; exit 3'\"; };";
    let out = env.run(&["update", &name, "--config", broken]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.starts_with("reloading container...\n"), "{err}");
    assert!(
        err.contains("unit upf-broken.service failed to start"),
        "{err}"
    );
    assert!(err.contains("giving up"), "its journal lines: {err}");
    assert!(
        err.contains(&format!("rolled back to generation {}", before.0)),
        "{err}"
    );
    // And so it is: the generation, configuration.nix and the running units as before.
    assert_eq!(
        (current(), std::fs::read_to_string(&config_path).unwrap()),
        before
    );
    let out = env.run_inside(&name, &["systemctl", "is-active", "upf-broken.service"]);
    assert_ne!(stdout(&out).trim(), "active", "{}", stdout(&out));
    assert_eq!(stdout(&env.run(&["status", &name])), "up\n");

    // The same service working: the update succeeds, says only that it reloads.
    let working = "systemd.services.upf-working = { wantedBy = [ \"multi-user.target\" ]; \
                   serviceConfig.ExecStart = \"/bin/sleep infinity\"; };";
    let out = env.run(&["update", &name, "--config", working]);
    assert_ok(&out, "update");
    assert_eq!(stderr(&out), "reloading container...\n");
    assert_ne!(current(), before.0);
}

/// Services whose start job waits for them to be ready (here `Type=oneshot`) are not read back
/// after the switch: one that fails fails its job, and so the update, by name, with its
/// journal; one that works is restarted when it changed, and runs the new text.
#[test]
fn update_restarts_ready_by_job_services_and_reports_their_failures() {
    require_root();
    let env = Env::new();
    let name = unique_name("upo");
    env.create_booting(&name);
    assert_ok(&env.run(&["start", &name]), "start");
    let oneshot = |script: &str| {
        format!(
            "systemd.services.upo-once = {{ wantedBy = [ \"multi-user.target\" ]; \
             serviceConfig = {{ Type = \"oneshot\"; RemainAfterExit = true; \
             ExecStart = \"/bin/sh -c '{script}'\"; }}; }};"
        )
    };
    let ran = || {
        stdout(&env.run_inside(&name, &["cat", "/run/upo-once"]))
            .trim()
            .to_string()
    };

    let out = env.run(&[
        "update",
        &name,
        "--config",
        &oneshot("echo one > /run/upo-once"),
    ]);
    assert_ok(&out, "update");
    assert_eq!(ran(), "one");
    // Changed: restarted, so it ran the new text.
    let out = env.run(&[
        "update",
        &name,
        "--config",
        &oneshot("echo two > /run/upo-once"),
    ]);
    assert_ok(&out, "update");
    assert_eq!(stderr(&out), "reloading container...\n");
    assert_eq!(ran(), "two");

    let out = env.run(&[
        "update",
        &name,
        "--config",
        &oneshot("echo not today; exit 4"),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("upo-once.service"), "{err}");
    assert!(err.contains("not today"), "its journal lines: {err}");
    assert!(err.contains("rolled back to generation"), "{err}");
    // Rolled back: the previous text runs again.
    assert_eq!(ran(), "two");
    let out = env.run_inside(&name, &["systemctl", "is-active", "upo-once.service"]);
    assert_eq!(stdout(&out).trim(), "active", "{}", stdout(&out));
}
