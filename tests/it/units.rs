//! systemd.services with path, postStart, startAt and restartIfChanged, systemd.timers and
//! systemd.tmpfiles.rules, in a real container (booted, then switched live).

use std::time::Duration;

use crate::common::*;

fn inside(env: &Env, name: &str, argv: &[&str]) -> String {
    stdout(&env.run_inside(name, argv))
}

fn config(post: &str, rules: &str) -> String {
    format!(
        "environment.etc.\"tools/bin/greet\" = {{ text = \"#!/bin/sh\\necho greet-from-tools\\n\"; mode = \"0755\"; }};\n\
         systemd.services.svc = {{ path = [ \"/etc/tools\" ]; wantedBy = [ \"multi-user.target\" ];\n\
           script = \"greet > /run/svc-out; echo $PATH > /run/svc-path; exec sleep infinity\";\n\
           postStart = \"echo {post} > /run/svc-post\"; restartIfChanged = false; }};\n\
         systemd.services.tick = {{ startAt = [ \"*-*-* 04:00:00\" \"Mon *-*-* 05:00:00\" ]; script = \"true\"; serviceConfig.Type = \"oneshot\"; }};\n\
         systemd.services.fast = {{ script = \"date +%s.%N >> /var/lib/fast/log\"; serviceConfig = {{ Type = \"oneshot\"; StateDirectory = \"fast\"; }}; }};\n\
         systemd.timers.fast = {{ description = \"Fire fast\"; wantedBy = [ \"timers.target\" ];\n\
           timerConfig = {{ OnActiveSec = \"1s\"; OnUnitActiveSec = \"1s\"; AccuracySec = \"100ms\"; }}; }};\n\
         systemd.tmpfiles.rules = [ {rules} ];\n"
    )
}

#[test]
fn units_path_timers_and_tmpfiles() {
    require_root();
    let env = Env::new();
    let name = unique_name("unt");
    let rules =
        "\"d /var/lib/made 0710 root root -\" \"f /var/lib/made/file 0640 root root - hello\"";
    env.create_booting_with(&name, &["--config", &config("one", rules)]);
    assert_ok(&env.run(&["start", &name]), "start");

    // path: the unit's PATH has /etc/tools/bin, so the script finds greet; postStart ran.
    let ok = eventually(Duration::from_secs(5), || {
        inside(&env, &name, &["cat", "/run/svc-out", "/run/svc-post"]) == "greet-from-tools\none\n"
    });
    assert!(
        ok,
        "{}",
        inside(&env, &name, &["cat", "/run/svc-out", "/run/svc-post"])
    );
    assert_eq!(
        inside(&env, &name, &["cat", "/run/svc-path"]),
        "/etc/tools/bin:/etc/tools/sbin:/usr/bin:/usr/sbin\n"
    );
    // startAt made tick.timer with both calendar events, started by timers.target.
    let timers = inside(
        &env,
        &name,
        &["systemctl", "list-timers", "--all", "--no-legend"],
    );
    assert!(
        timers.contains("tick.timer") && timers.contains("tick.service"),
        "{timers}"
    );
    let calendar = inside(
        &env,
        &name,
        &["systemctl", "show", "-p", "TimersCalendar", "tick.timer"],
    );
    assert!(
        calendar.contains("OnCalendar=*-*-* 04:00:00")
            && calendar.contains("OnCalendar=Mon *-*-* 05:00:00"),
        "{calendar}"
    );
    // systemd.timers: fast.timer fires fast.service again and again.
    let fired = eventually(Duration::from_secs(10), || {
        inside(&env, &name, &["cat", "/var/lib/fast/log"])
            .lines()
            .count()
            >= 2
    });
    assert!(fired, "fast.timer did not fire twice");
    // tmpfiles.rules were applied at boot, with their modes.
    assert_eq!(
        inside(
            &env,
            &name,
            &["stat", "-c", "%a %U", "/var/lib/made", "/var/lib/made/file"]
        ),
        "710 root\n640 root\n"
    );
    assert_eq!(inside(&env, &name, &["cat", "/var/lib/made/file"]), "hello");

    // A live switch: svc changed but says restartIfChanged = false, so it keeps running; a new
    // tmpfiles rule is applied at once.
    let pid = inside(
        &env,
        &name,
        &[
            "systemctl",
            "show",
            "-p",
            "MainPID",
            "--value",
            "svc.service",
        ],
    );
    let more = format!("{rules} \"d /var/lib/later 0700 root root -\"");
    assert_ok(
        &env.run(&["update", &name, "--config", &config("two", &more)]),
        "update",
    );
    assert_eq!(
        inside(
            &env,
            &name,
            &[
                "systemctl",
                "show",
                "-p",
                "MainPID",
                "--value",
                "svc.service"
            ]
        ),
        pid,
        "restartIfChanged = false: not restarted"
    );
    assert_eq!(inside(&env, &name, &["cat", "/run/svc-post"]), "one\n");
    assert_eq!(
        inside(&env, &name, &["stat", "-c", "%a", "/var/lib/later"]),
        "700\n"
    );
    // Its next start runs the new version.
    assert_ok(
        &env.run(&["run", &name, "--", "systemctl", "restart", "svc.service"]),
        "restart",
    );
    assert_eq!(inside(&env, &name, &["cat", "/run/svc-post"]), "two\n");
}
