//! Running a live switch inside a container (ARCHITECTURE.md, "Where an operation lives"): a
//! native container's pending [`Plan`] with `systemctl`, a Nix-built one's own
//! `switch-to-configuration test`.

use super::enter;
use super::nspawn::{self, NixSystem};
use crate::builder::switch::Plan;
use crate::container::{ContainerName, Paths, store};
use crate::error::{Error, Result};
use crate::files::Root;

/// Run `plan` with `systemctl` inside the container whose PID 1 is `leader`. A failing unit's
/// last journal lines go into the error.
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
        let mut detail = format!(
            "`{}` failed: {}",
            argv.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        for unit in units {
            let log = ["journalctl", "--no-pager", "-q", "-n", "8", "-u", unit].map(String::from);
            if let Ok(log) = enter::run_captured(leader, &log, None) {
                detail.push_str(&format!(
                    "\n{unit}:\n{}",
                    String::from_utf8_lossy(&log.stdout).trim_end()
                ));
            }
        }
        Err(Error::Switch(detail))
    };
    systemctl("stop", &plan.stop)?;
    systemctl("daemon-reload", &[])?;
    systemctl("restart", &plan.restart)?;
    systemctl("try-restart", &plan.try_restart)?;
    systemctl("start", &plan.start)
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
