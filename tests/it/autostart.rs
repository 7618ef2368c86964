//! Auto-start (issue 12, item 6): AUTO_START=1 under the systemd driver is a unit wanted by
//! machines.target (started at boot); under the standalone driver `ncsh start --all-auto`
//! starts those containers.

use crate::common::*;
use crate::testhost::TestHost;

#[test]
fn start_all_auto_starts_the_auto_start_containers() {
    require_root();
    let env = Env::new();
    let (auto, manual, broken) = (unique_name("aua"), unique_name("aum"), unique_name("aub"));
    env.create_booting_with(&auto, &["--auto-start"]);
    env.create_booting(&manual);
    env.create_booting_with(&broken, &["--auto-start"]);
    // nspawn refuses this port: the start of `broken` fails, the others still start.
    let conf = env.conf_path(&broken);
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(
        &conf,
        text.replace("HOST_PORT=\n", "HOST_PORT=not-a-port\n"),
    )
    .unwrap();

    let out = env.run(&["start", "--all-auto"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{auto} started\n"));
    assert!(
        stderr(&out).contains(&format!("ncsh: {broken}: ")),
        "{}",
        stderr(&out)
    );
    let status = |name: &str| stdout(&env.run(&["status", name]));
    assert_eq!(status(&auto), "up\n");
    assert_eq!(status(&manual), "down\n");
    assert_eq!(status(&broken), "down\n");

    std::fs::write(&conf, text).unwrap();
    let out = env.run(&["start", "--all-auto"]);
    assert_ok(&out, "start --all-auto");
    assert_eq!(status(&broken), "up\n");
    let out = env.run(&["start", "--all-auto", &manual]);
    assert!(!out.status.success() && stderr(&out).contains("takes no container name"));
    assert_eq!(status(&manual), "down\n");
}

/// Under systemd: the unit that starts it is wanted by machines.target (what a boot starts),
/// follows AUTO_START, and goes with destroy.
fn systemd_auto_start(template: bool) {
    require_root();
    let th = TestHost::boot(if template { "aut" } else { "aun" }, template);
    crate::systemd::create(&th, "auto", &["--auto-start"]);
    let wanted = if template {
        "container@auto.service"
    } else {
        "ncsh-start@auto.service"
    };
    let link = th.path(&format!(
        "/etc/systemd/system/machines.target.wants/{wanted}"
    ));
    assert!(link.symlink_metadata().is_ok(), "no {}", link.display());
    let deps = th.exec(&[
        "systemctl",
        "list-dependencies",
        "--plain",
        "--no-legend",
        "machines.target",
    ]);
    assert!(stdout(&deps).contains(wanted), "{}", stdout(&deps));
    // What the boot does: machines.target starts the container.
    assert_ok(
        &th.exec(&["systemctl", "start", "machines.target"]),
        "start machines.target",
    );
    assert_eq!(stdout(&th.ncsh(&["status", "auto"])).trim(), "up");
    assert_ok(&th.ncsh(&["stop", "auto"]), "stop");
    // AUTO_START=0 by hand: the next start takes the link away.
    let conf = th.path("/etc/nixos-containers/auto.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(&conf, text.replace("AUTO_START=1", "AUTO_START=0")).unwrap();
    assert_ok(&th.ncsh(&["start", "auto"]), "start");
    assert!(
        link.symlink_metadata().is_err(),
        "AUTO_START=0 kept the link"
    );
    std::fs::write(&conf, text).unwrap();
    assert_ok(&th.ncsh(&["restart", "auto"]), "restart");
    assert!(link.symlink_metadata().is_ok());
    assert_ok(&th.ncsh(&["destroy", "auto"]), "destroy");
    assert!(
        link.symlink_metadata().is_err(),
        "destroy left {}",
        link.display()
    );
    assert!(
        !th.path("/etc/systemd/system/ncsh-start@auto.service.d")
            .exists()
    );
}

#[test]
fn systemd_driver_auto_start_with_transient_units() {
    systemd_auto_start(false);
}

#[test]
fn systemd_driver_auto_start_with_the_template() {
    systemd_auto_start(true);
}
