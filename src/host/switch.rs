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

/// Runs a command inside the container, its output captured.
type Run<'a> = &'a dyn Fn(&[String]) -> Result<std::process::Output>;

/// Run `plan` with `systemctl` inside the container whose PID 1 is `leader`. A unit that fails
/// to start (its job fails, or it is failed or restarting soon after) is an error naming it,
/// with its last journal lines, as NixOS's switch-to-configuration reports failed units.
///
/// Every `systemctl` of the plan runs from one process that entered the container once
/// ([`enter::in_child`]), rather than each entering on its own; when this process cannot fork
/// such a helper (other threads run), each does.
fn run_plan(leader: i32, plan: &Plan) -> Result<()> {
    let inside = enter::in_child(leader, || {
        encode(&run_steps(&enter::run_captured_here, plan))
    });
    match inside {
        Some(out) => decode(&out?),
        None => run_steps(&|argv| enter::run_captured(leader, argv, None), plan),
    }
}

/// The result of [`run_steps`] in the helper, as bytes for its parent: empty for success, else
/// a tag and the error's text.
fn encode(result: &Result<()>) -> Vec<u8> {
    let (tag, text) = match result {
        Ok(()) => return Vec::new(),
        Err(Error::Switch(detail)) => ('S', detail.clone()),
        Err(Error::CommandNotRun { program, not_found }) => {
            (if *not_found { 'N' } else { 'X' }, program.clone())
        }
        Err(other) => ('E', other.to_string()),
    };
    let mut out = vec![tag as u8];
    out.extend_from_slice(text.as_bytes());
    out
}

/// [`encode`] undone.
fn decode(out: &[u8]) -> Result<()> {
    let Some((&tag, text)) = out.split_first() else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(text).into_owned();
    Err(match tag {
        b'S' => Error::Switch(text),
        b'N' | b'X' => Error::CommandNotRun {
            program: text,
            not_found: tag == b'N',
        },
        _ => Error::io(text, std::io::Error::other("in the container")),
    })
}

/// [`run_plan`]'s steps, each command run by `run`.
fn run_steps(run: Run, plan: &Plan) -> Result<()> {
    let systemctl = |verb: &str, units: &[String]| -> Result<()> {
        if units.is_empty() && verb != "daemon-reload" {
            return Ok(());
        }
        let mut argv = vec!["systemctl".to_string(), verb.to_string()];
        if !units.is_empty() {
            argv.push("--".into());
            argv.extend(units.iter().cloned());
        }
        let out = run(&argv)?;
        if out.status.success() {
            return Ok(());
        }
        let detail = format!(
            "`{}` failed: {}{}",
            argv.join(" "),
            String::from_utf8_lossy(&out.stderr).trim(),
            journals(run, units)
        );
        Err(Error::Switch(detail))
    };
    systemctl("stop", &plan.stop)?;
    if plan.daemon_reload {
        systemctl("daemon-reload", &[])?;
    }
    systemctl("restart", &plan.restart)?;
    systemctl("try-restart", &plan.try_restart)?;
    systemctl("start", &plan.start)?;
    // A unit with a readiness protocol (notify, forking, oneshot, dbus) failed its job already
    // if it failed to start: those the plan knows to be such are not read back. One without
    // (simple, exec, idle) is given a moment to fail.
    let started: Vec<String> = [&plan.restart, &plan.try_restart, &plan.start]
        .into_iter()
        .flatten()
        .filter(|u| !plan.ready_by_job.contains(u))
        .cloned()
        .collect();
    if started.is_empty() {
        return Ok(());
    }
    let mut shown = show_units(run, &started)?;
    if shown.iter().any(|u| u.needs_settling()) {
        std::thread::sleep(SETTLE);
        shown = show_units(run, &started)?;
    }
    let failed: Vec<String> = shown
        .into_iter()
        .filter(ShownUnit::failed)
        .map(|u| u.id)
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    let (one, many) = (failed.len() == 1, failed.join(", "));
    Err(Error::Switch(format!(
        "{} {many} failed to start{}",
        if one { "unit" } else { "units" },
        journals(run, &failed)
    )))
}

/// What `systemctl show` says of a unit after a switch started it.
#[derive(Debug, Default, PartialEq, Eq)]
struct ShownUnit {
    id: String,
    kind: String,
    active: String,
    sub: String,
}

impl ShownUnit {
    /// Failed, or waiting to be restarted after failing.
    fn failed(&self) -> bool {
        self.active == "failed" || self.sub == "auto-restart"
    }

    /// Started without telling systemd it is ready (its job is done at fork or exec), and not
    /// failed yet.
    fn needs_settling(&self) -> bool {
        matches!(self.kind.as_str(), "simple" | "exec" | "idle") && !self.failed()
    }
}

fn show_units(run: Run, units: &[String]) -> Result<Vec<ShownUnit>> {
    let mut argv: Vec<String> = [
        "systemctl",
        "show",
        "--property=Id,Type,ActiveState,SubState",
        "--",
    ]
    .map(String::from)
    .to_vec();
    argv.extend(units.iter().cloned());
    let out = run(&argv)?;
    if !out.status.success() {
        return Err(Error::Switch(format!(
            "`{}` failed: {}",
            argv.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(parse_shown(&String::from_utf8_lossy(&out.stdout)))
}

/// `systemctl show`'s output: blocks of `KEY=value` lines, one per unit, separated by empty
/// lines.
fn parse_shown(shown: &str) -> Vec<ShownUnit> {
    shown
        .split("\n\n")
        .filter_map(|block| {
            let value = |key: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                    .unwrap_or_default()
                    .to_string()
            };
            let id = value("Id");
            (!id.is_empty()).then(|| ShownUnit {
                id,
                kind: value("Type"),
                active: value("ActiveState"),
                sub: value("SubState"),
            })
        })
        .collect()
}

/// The last journal lines of each of `units`, each under its name.
fn journals(run: Run, units: &[String]) -> String {
    let mut text = String::new();
    for unit in units {
        let log = ["journalctl", "--no-pager", "-q", "-n", "8", "-u", unit].map(String::from);
        if let Ok(log) = run(&log) {
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
/// The plan runs in `entered` when it is given and entered that leader.
pub fn run_pending(
    paths: &Paths,
    name: &ContainerName,
    leader: i32,
    entered: Option<Entered>,
) -> Result<()> {
    let conf = store::load(paths, name)?;
    let root = Root::open(&paths.root(name))?;
    if let Some(nix) = nspawn::nix_system(paths, name, &conf) {
        Plan::discard(&root);
        return run_nix(leader, &nix);
    }
    let plan = Plan::take(&root)?.unwrap_or_default();
    match entered {
        Some(entered) if entered.leader == leader => entered.run(&plan),
        _ => run_plan(leader, &plan),
    }
}

/// A process that enters a running container while the update that will switch it still
/// builds (`ncsh __switch LEADER`, [`switch_main`]), and then runs the plan it is given there:
/// joining the leader's cgroups, which waits for an RCU grace period (see [`enter::in_child`]),
/// is then off the update's path. Dropped without a plan (nothing to switch, or the update
/// failed before), it ends without doing anything.
pub struct Entered {
    leader: i32,
    child: Option<std::process::Child>,
}

impl Entered {
    /// Start it; None when it could not be started (the plan is then run as without it).
    pub fn spawn(leader: i32) -> Option<Entered> {
        use std::process::{Command, Stdio};
        let exe = std::env::current_exe().ok()?;
        let child = Command::new(exe)
            .arg("__switch")
            .arg(leader.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .ok()?;
        Some(Entered {
            leader,
            child: Some(child),
        })
    }

    /// Run `plan` in it: what [`run_plan`] does, and its result.
    fn run(mut self, plan: &Plan) -> Result<()> {
        use std::io::Write;
        let Some(mut child) = self.child.take() else {
            return run_plan(self.leader, plan);
        };
        let text = serde_json::to_vec(plan)
            .map_err(|e| Error::Switch(format!("serializing the switch plan: {e}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A helper that died early shows in its status below.
            let _ = stdin.write_all(&text);
        }
        let out = child
            .wait_with_output()
            .map_err(|e| Error::io("waiting for ncsh __switch", e))?;
        if !out.status.success() {
            return Err(Error::io(
                format!("ncsh __switch {} ended: {}", self.leader, out.status),
                std::io::Error::other("no result"),
            ));
        }
        decode(&out.stdout)
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Its stdin closes without a plan: it ends at once.
            drop(child.stdin.take());
            let _ = child.wait();
        }
    }
}

/// Entry point of `ncsh __switch LEADER` ([`Entered`]): enter the container of PID 1 LEADER,
/// read a [`Plan`] (JSON) from stdin until it closes, run it there (nothing when stdin closed
/// empty) and write its result ([`encode`]) to stdout.
pub fn switch_main(leader: &str) -> i32 {
    use std::io::{Read, Write};
    let entered = match leader.parse::<i32>() {
        Ok(pid) if pid > 0 => enter::enter_here(pid),
        _ => Err(Error::Usage(format!(
            "ncsh __switch: ‘{leader}’ is not a PID"
        ))),
    };
    let mut input = Vec::new();
    if std::io::stdin().read_to_end(&mut input).is_err() || input.is_empty() {
        return 0;
    }
    let result = entered.and_then(|()| {
        let plan: Plan = serde_json::from_slice(&input)
            .map_err(|e| Error::Switch(format!("reading the switch plan: {e}")))?;
        run_steps(&enter::run_captured_here, &plan)
    });
    let mut out = std::io::stdout();
    if out
        .write_all(&encode(&result))
        .and_then(|()| out.flush())
        .is_ok()
    {
        0
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_units_are_the_failed_and_the_restarting_and_simple_ones_settle() {
        let shown = "Id=a.service\nType=simple\nActiveState=active\nSubState=running\n\n\
                     Id=b.service\nType=notify\nActiveState=failed\nSubState=failed\n\n\
                     Id=c.service\nType=exec\nActiveState=activating\nSubState=auto-restart\n\n\
                     Id=d.timer\nActiveState=active\nSubState=waiting\n";
        let units = parse_shown(shown);
        let failed: Vec<&str> = units
            .iter()
            .filter(|u| u.failed())
            .map(|u| u.id.as_str())
            .collect();
        assert_eq!(failed, ["b.service", "c.service"]);
        let settling: Vec<&str> = units
            .iter()
            .filter(|u| u.needs_settling())
            .map(|u| u.id.as_str())
            .collect();
        assert_eq!(
            settling,
            ["a.service"],
            "failed ones and timers do not wait"
        );
        assert!(parse_shown("").is_empty());
    }

    #[test]
    fn the_helpers_result_comes_back_as_it_was() {
        assert!(decode(&encode(&Ok(()))).is_ok());
        let back = decode(&encode(&Err(Error::Switch("unit a.service failed".into()))));
        assert!(matches!(back, Err(Error::Switch(t)) if t == "unit a.service failed"));
        for not_found in [true, false] {
            let back = decode(&encode(&Err(Error::CommandNotRun {
                program: "systemctl".into(),
                not_found,
            })));
            assert!(matches!(
                back,
                Err(Error::CommandNotRun { program, not_found: n }) if program == "systemctl" && n == not_found
            ));
        }
        let back = decode(&encode(&Err(Error::Usage("no".into()))));
        assert!(matches!(back, Err(Error::Io { context, .. }) if context == "no"));
    }

    #[test]
    fn without_a_plan_a_reload_reloads_the_daemon() {
        assert!(Plan::default().daemon_reload);
    }
}
