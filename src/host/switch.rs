//! Running a live switch inside a container (ARCHITECTURE.md, "Where an operation lives"): a
//! native container's pending [`Plan`] with `systemctl`, a Nix-built one's own
//! `switch-to-configuration test`.

use std::time::Duration;

use super::enter;
use super::nspawn::{self, NixSystem};
use crate::builder::switch::Plan;
use crate::container::{ContainerName, Paths, store};
use crate::error::{Error, Result};
use crate::files::Root;

/// How long units started by a switch are given to fail before their state is read: a
/// service whose program exits at once is "active" for a moment after `systemctl start`.
const SETTLE: Duration = Duration::from_millis(250);

/// Run `plan` with `systemctl` inside the container whose PID 1 is `leader`. A unit that fails
/// to start (its job fails, or it is failed or restarting soon after) is an error naming it,
/// with its last journal lines, as NixOS's switch-to-configuration reports failed units.
fn run_plan(leader: i32, plan: &Plan) -> Result<()> {
    let systemctl = |verb: &str, units: &[String]| -> Result<()> {
        if units.is_empty() && verb != "daemon-reload" {
            return Ok(());
        }
        let mut argv = vec!["systemctl".to_string(), verb.to_string()];
        if !units.is_empty() {
            argv.push("--".into());
            argv.extend(units.iter().cloned());
        }
        let out = enter::run_captured(leader, &argv, None)?;
        if out.status.success() {
            return Ok(());
        }
        let detail = format!(
            "`{}` failed: {}{}",
            argv.join(" "),
            String::from_utf8_lossy(&out.stderr).trim(),
            journals(leader, units)
        );
        Err(Error::Switch(detail))
    };
    systemctl("stop", &plan.stop)?;
    systemctl("daemon-reload", &[])?;
    systemctl("restart", &plan.restart)?;
    systemctl("try-restart", &plan.try_restart)?;
    systemctl("start", &plan.start)?;
    let started: Vec<String> = [&plan.restart, &plan.try_restart, &plan.start]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    if started.is_empty() {
        return Ok(());
    }
    std::thread::sleep(SETTLE);
    let failed = failed_units(leader, &started)?;
    if failed.is_empty() {
        return Ok(());
    }
    let (one, many) = (failed.len() == 1, failed.join(", "));
    Err(Error::Switch(format!(
        "{} {many} failed to start{}",
        if one { "unit" } else { "units" },
        journals(leader, &failed)
    )))
}

/// Which of `units` are failed, or waiting to be restarted after failing.
fn failed_units(leader: i32, units: &[String]) -> Result<Vec<String>> {
    let mut argv: Vec<String> = [
        "systemctl",
        "show",
        "--property=Id,ActiveState,SubState",
        "--",
    ]
    .map(String::from)
    .to_vec();
    argv.extend(units.iter().cloned());
    let out = enter::run_captured(leader, &argv, None)?;
    if !out.status.success() {
        return Err(Error::Switch(format!(
            "`{}` failed: {}",
            argv.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(parse_failed(&String::from_utf8_lossy(&out.stdout)))
}

/// The failed units in `systemctl show`'s output: blocks of `KEY=value` lines, one per unit,
/// separated by empty lines.
fn parse_failed(shown: &str) -> Vec<String> {
    shown
        .split("\n\n")
        .filter_map(|block| {
            let value = |key: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            };
            let failed =
                value("ActiveState") == Some("failed") || value("SubState") == Some("auto-restart");
            failed.then(|| value("Id").map(str::to_string)).flatten()
        })
        .collect()
}

/// The last journal lines of each of `units`, each under its name.
fn journals(leader: i32, units: &[String]) -> String {
    let mut text = String::new();
    for unit in units {
        let log = ["journalctl", "--no-pager", "-q", "-n", "8", "-u", unit].map(String::from);
        if let Ok(log) = enter::run_captured(leader, &log, None) {
            text.push_str(&format!(
                "\n{unit}:\n{}",
                String::from_utf8_lossy(&log.stdout).trim_end()
            ));
        }
    }
    text
}

/// `${SYSTEM_PATH:-/nix/var/nix/profiles/system}/bin/switch-to-configuration test` inside, as
/// NixOS's ExecReload; nothing when the system has none (the new system is used from the next
/// start).
fn run_nix(leader: i32, nix: &NixSystem) -> Result<()> {
    const SWITCH: &str = "bin/switch-to-configuration";
    if !nix.host_system().join(SWITCH).exists() {
        return Ok(());
    }
    let argv = [format!("{}/{SWITCH}", nix.system()), "test".to_string()];
    let out = enter::run_captured(leader, &argv, None)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Switch(format!(
            "`{}` failed: {}",
            argv.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Switch running container `name` (PID 1 `leader`) to its new system: a Nix-built one with
/// its `switch-to-configuration test`, a native one with the pending plan (which is then
/// removed); without a plan, only `systemctl daemon-reload`, so a reload by hand is harmless.
pub fn run_pending(paths: &Paths, name: &ContainerName, leader: i32) -> Result<()> {
    let conf = store::load(paths, name)?;
    let root = Root::open(&paths.root(name))?;
    if let Some(nix) = nspawn::nix_system(paths, name, &conf) {
        Plan::discard(&root);
        return run_nix(leader, &nix);
    }
    let plan = Plan::take(&root)?.unwrap_or_default();
    run_plan(leader, &plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_units_are_the_failed_and_the_restarting() {
        let shown = "Id=a.service\nActiveState=active\nSubState=running\n\n\
                     Id=b.service\nActiveState=failed\nSubState=failed\n\n\
                     Id=c.service\nActiveState=activating\nSubState=auto-restart\n\n\
                     Id=d.timer\nActiveState=active\nSubState=waiting\n";
        assert_eq!(parse_failed(shown), ["b.service", "c.service"]);
        assert!(parse_failed("").is_empty());
    }
}
