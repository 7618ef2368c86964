//! `ncsh logs` (issue 12, item 5): the container's journal, running or stopped, by unit, the
//! last lines, followed; read through the root without following the container's links out of
//! it; and a failed start shows the last lines of the boot and where to look.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;

fn marker_config(marker: &str) -> String {
    format!(
        "systemd.services.marker = {{ wantedBy = [ \"multi-user.target\" ];
           serviceConfig.Type = \"oneshot\";
           serviceConfig.ExecStart = \"/bin/echo {marker}\"; }};"
    )
}

#[test]
fn logs_of_a_running_and_a_stopped_container() {
    require_root();
    let env = Env::new();
    let name = unique_name("log");
    let marker = format!("marker-{name}-here");
    env.create_booting_with(&name, &["--config", &marker_config(&marker)]);
    assert_ok(&env.run(&["start", &name]), "start");

    let logs = |args: &[&str]| {
        let mut argv = vec!["logs", name.as_str()];
        argv.extend_from_slice(args);
        let out = env.run(&argv);
        assert_ok(&out, "logs");
        stdout(&out)
    };
    assert!(
        eventually(Duration::from_secs(10), || logs(&[]).contains(&marker)),
        "the marker is not in the journal"
    );
    let unit = logs(&["-u", "marker.service"]);
    assert!(unit.contains(&marker), "{unit}");
    assert!(
        unit.lines().all(|l| !l.contains("systemd-journald[")),
        "-u shows other units: {unit}"
    );
    assert_eq!(logs(&["-n", "3"]).lines().count(), 3);
    assert_eq!(logs(&["--lines", "1"]).lines().count(), 1);
    let journald = logs(&["-u", "systemd-journald.service"]);
    assert!(!journald.contains(&marker), "{journald}");

    // -f prints what comes later. It runs as a terminal's foreground job does: its own
    // process group, ^C and ^\ at their defaults even when this test was started with them
    // ignored (as `cmd &` in a script starts it), since ignored signals stay ignored.
    let mut follow = env.command(&["logs", &name, "-f", "-n", "0"]);
    follow.stdout(Stdio::piped()).process_group(0);
    // SAFETY: signal(2) is async-signal-safe.
    unsafe {
        follow.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGQUIT, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut follow = follow.spawn().unwrap();
    let later = format!("later-{name}");
    let reader = BufReader::new(follow.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    let pump = std::thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = false;
    while !seen && Instant::now() < deadline {
        assert_ok(
            &env.run_inside(&name, &["logger", "-t", "it", &later]),
            "logger",
        );
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
            if line.contains(&later) {
                seen = true;
                break;
            }
        }
    }
    // ^C, as a terminal sends it to the foreground process group, ends it.
    let group = nix::unistd::Pid::from_raw(-(follow.id() as i32));
    nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGINT).unwrap();
    let ended = eventually(Duration::from_secs(10), || {
        follow.try_wait().unwrap().is_some()
    });
    if !ended {
        // The whole group: a process of it left alive would hold the pipe the pump reads.
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
    }
    follow.wait().unwrap();
    pump.join().unwrap();
    assert!(seen, "logs -f did not print a new line");
    assert!(ended, "^C did not end logs -f");
    let inside = env.run_inside(&name, &["pgrep", "-x", "journalctl"]);
    assert_eq!(
        stdout(&inside),
        "",
        "journalctl -f is left in the container"
    );
    // -f needs it running.
    assert_ok(&env.run(&["stop", &name]), "stop");
    let out = env.run(&["logs", &name, "-f"]);
    assert!(
        !out.status.success() && stderr(&out).contains("is not running"),
        "{}",
        stderr(&out)
    );

    // Stopped: the journal is still there.
    assert!(logs(&["-u", "marker.service"]).contains(&marker));
    // The Rhai API says the same.
    let script = env.prefix().join("logs.rhai");
    std::fs::write(
        &script,
        format!(
            "let t = container(\"{name}\").logs(#{{ unit: \"marker.service\", lines: 5 }});\n\
             print(t.contains(\"{marker}\"));\n\
             try {{ container(\"{name}\").logs(#{{ lines: -1 }}) }} catch (e) {{ print(e.message) }}"
        ),
    )
    .unwrap();
    let out = env.run(&[script.to_str().unwrap()]);
    assert_ok(&out, "logs script");
    let text = stdout(&out);
    assert!(
        text.starts_with("true\n") && text.contains("must be a whole number"),
        "{text}"
    );

    // A link the container planted is resolved inside the root: a journal on the host at the
    // link's target is not shown.
    let root = env.root_path(&name);
    let journal = root.join("var/log/journal");
    let host_dir = env.prefix().join("host-journal");
    std::fs::create_dir(&host_dir).unwrap();
    for entry in std::fs::read_dir(&journal).unwrap() {
        let machine = entry.unwrap().path();
        let copy = host_dir.join(machine.file_name().unwrap());
        std::fs::create_dir(&copy).unwrap();
        for file in std::fs::read_dir(&machine).unwrap() {
            let file = file.unwrap().path();
            std::fs::copy(&file, copy.join(file.file_name().unwrap())).unwrap();
        }
        std::fs::remove_dir_all(&machine).unwrap();
        std::os::unix::fs::symlink(&copy, &machine).unwrap();
    }
    let shown = logs(&[]);
    assert!(
        !shown.contains(&marker),
        "logs followed a link out of the root: {shown}"
    );
}

#[test]
fn a_failed_start_shows_the_end_of_the_boot() {
    require_root();
    let env = Env::new();
    let name = unique_name("lgf");
    let marker = format!("stuck-{name}");
    // A unit multi-user.target waits for, which never finishes.
    let config = format!(
        "systemd.services.stuck = {{ wantedBy = [ \"multi-user.target\" ];
           before = [ \"multi-user.target\" ];
           serviceConfig.Type = \"oneshot\";
           serviceConfig.ExecStart = \"/bin/sh -c 'echo {marker}; exec sleep 600'\"; }};"
    );
    env.create_booting_with(&name, &["--config", &config]);
    let out = env
        .command(&["start", &name])
        .env("NCSH_START_TIMEOUT", "15")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!out.status.success(), "start succeeded");
    assert!(
        err.contains("last lines of its journal") && err.contains(&marker),
        "{err}"
    );
    assert!(err.contains(&format!("`ncsh logs {name}`")), "{err}");
    assert_eq!(stdout(&env.run(&["status", &name])), "down\n");
    // The boot is in the journal after the failure too.
    let out = env.run(&["logs", &name, "-u", "stuck.service"]);
    assert!(stdout(&out).contains(&marker), "{}", stdout(&out));
}
