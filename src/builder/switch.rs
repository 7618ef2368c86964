//! The plan of a live switch: what NixOS's `switch-to-configuration test` does to a running
//! container's systemd, as data.
//!
//! For a native-built container, `update` applies the new generation's files and writes a
//! pending [`Plan`] (which units to stop, restart and start) into the container root; the
//! reload then runs it inside (`host::switch::run_pending`): at once under the standalone
//! driver, and through `container@NAME.service`'s ExecReload (`ncsh __reload NAME`) under the
//! systemd driver, as NixOS reloads a container. What the switch inside said when it failed is
//! kept in the root for the `update` that waits on the reload ([`record_error`]).

use serde::{Deserialize, Serialize};

use super::activate::UnitChanges;
use super::generation::Generation;
use crate::container::{Paths, name};
use crate::error::{Error, Result};
use crate::files::Root;

/// The pending plan, relative to the container root.
pub const PLAN_PATH: &str = "var/lib/ncsh/switch-pending.json";
/// Why the last reload's switch failed, for the `update` waiting on the unit's reload job.
pub const ERROR_PATH: &str = "var/lib/ncsh/switch-error";

/// What a switch does, in order: stop, `daemon-reload`, restart, try-restart, start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The generation switched to (0: none, the empty system).
    pub generation: u64,
    pub stop: Vec<String>,
    pub restart: Vec<String>,
    pub try_restart: Vec<String>,
    pub start: Vec<String>,
    /// Does systemd have unit files to re-read? Not when only restart triggers changed (the
    /// files the units read, not the units). A plan written before this field: yes.
    #[serde(default = "reload_by_default")]
    pub daemon_reload: bool,
    /// The services of `restart`, `try_restart` and `start` whose start job waits for them to
    /// be ready (`Type=` forking, oneshot, notify, notify-reload or dbus in the generation's
    /// unit): their job fails when they do, so their state need not be read back after it.
    /// A plan written before this field: none (every one is read back).
    #[serde(default)]
    pub ready_by_job: Vec<String>,
}

fn reload_by_default() -> bool {
    true
}

/// No plan: only `daemon-reload` (a reload by hand is harmless).
impl Default for Plan {
    fn default() -> Plan {
        Plan {
            generation: 0,
            stop: Vec::new(),
            restart: Vec::new(),
            try_restart: Vec::new(),
            start: Vec::new(),
            daemon_reload: true,
            ready_by_job: Vec::new(),
        }
    }
}

impl Plan {
    /// The switch to `generation` once its files are applied with `changes`: removed units
    /// stop; changed ones restart (when a target wants them; otherwise only if running), except
    /// those that say `X-RestartIfChanged=false` as NixOS's switch-to-configuration reads it
    /// (`systemd.services.NAME.restartIfChanged = false`); new ones that a target wants start.
    pub fn new(generation: &Generation, changes: &UnitChanges) -> Plan {
        let wanted = |u: &&String| {
            generation
                .units
                .get(*u)
                .is_some_and(|unit| !unit.wanted_by.is_empty())
        };
        let restarts = |u: &&String| {
            generation.units.get(*u).is_none_or(|unit| {
                !unit
                    .text
                    .lines()
                    .any(|l| l.trim() == "X-RestartIfChanged=false")
            })
        };
        let (restart, try_restart) = changes
            .changed
            .iter()
            .filter(restarts)
            .cloned()
            .partition(|u| wanted(&u));
        let start: Vec<String> = changes.added.iter().filter(wanted).cloned().collect();
        let ready_by_job = [&restart, &try_restart, &start]
            .into_iter()
            .flatten()
            .filter(|u| {
                generation
                    .units
                    .get(*u)
                    .is_some_and(|unit| u.ends_with(".service") && ready_by_job(&unit.text))
            })
            .cloned()
            .collect();
        Plan {
            generation: generation.number,
            stop: changes.removed.clone(),
            restart,
            try_restart,
            start,
            daemon_reload: changes.files_changed,
            ready_by_job,
        }
    }

    /// Leave the plan in `root` for the next reload.
    pub fn write(&self, root: &Root) -> Result<()> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::Switch(format!("serializing the switch plan: {e}")))?;
        root.write(PLAN_PATH, text.as_bytes(), 0o600)
    }

    /// The pending plan of `root`, removed from it; None when there is none.
    pub fn take(root: &Root) -> Result<Option<Plan>> {
        let Some(text) = root.read_string(PLAN_PATH)? else {
            return Ok(None);
        };
        root.remove(PLAN_PATH)?;
        serde_json::from_str(&text).map(Some).map_err(|e| {
            Error::Switch(format!(
                "{} is corrupt: {e}",
                root.host_path(PLAN_PATH).display()
            ))
        })
    }

    /// Drop a plan no reload ran.
    pub fn discard(root: &Root) {
        let _ = root.remove(PLAN_PATH);
    }
}

/// Does a service of this unit text tell systemd when it is ready (so its start job ends only
/// then, and fails when it does)? Its `[Service]` section's last `Type=`; without one, systemd
/// takes `simple` (or `dbus` with a `BusName=`, which this leaves to the read-back).
fn ready_by_job(text: &str) -> bool {
    let mut section = "";
    let mut kind = None;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
        } else if section == "[Service]"
            && let Some(value) = line.strip_prefix("Type=")
        {
            kind = Some(value.trim());
        }
    }
    matches!(
        kind,
        Some("forking" | "oneshot" | "notify" | "notify-reload" | "dbus")
    )
}

/// Keep the error of a switch run by the unit's reload, for the `update` that asked for it.
pub fn record_error(paths: &Paths, name: &str, error: &Error) {
    if name::validate(name).is_err() {
        return;
    }
    let text = match error.hint() {
        Some(hint) => format!("{error}: {hint}"),
        None => error.to_string(),
    };
    if let Ok(root) = Root::open(&paths.root(name)) {
        let _ = root.write(ERROR_PATH, text.as_bytes(), 0o600);
    }
}

/// The error [`record_error`] kept, removed from the container root.
pub fn take_error(root: &Root) -> Option<String> {
    let text = root.read_string(ERROR_PATH).ok().flatten();
    let _ = root.remove(ERROR_PATH);
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::generation::Unit;

    fn unit(wanted: bool) -> Unit {
        Unit {
            text: "[Service]\n".into(),
            wanted_by: if wanted {
                vec!["multi-user.target".into()]
            } else {
                Vec::new()
            },
        }
    }

    #[test]
    fn services_with_a_readiness_protocol_are_ready_by_their_job() {
        for (text, ready) in [
            ("[Service]\nType=forking\nPIDFile=/run/x.pid\n", true),
            ("[Service]\nType=oneshot\nRemainAfterExit=yes\n", true),
            ("[Service]\nType=notify\n", true),
            ("[Service]\nType=simple\n", false),
            ("[Service]\nType=exec\n", false),
            ("[Service]\nExecStart=/bin/true\n", false),
            ("[Service]\nType=notify\nType=simple\n", false),
            (
                "[Unit]\nType=forking\n[Service]\nExecStart=/bin/true\n",
                false,
            ),
        ] {
            assert_eq!(ready_by_job(text), ready, "{text}");
        }
        let mut generation = Generation::default();
        let mut forking = unit(true);
        forking.text = "[Service]\nType=forking\n".into();
        generation.units.insert("d.service".into(), forking.clone());
        generation.units.insert("d.timer".into(), forking);
        generation.units.insert("s.service".into(), unit(true));
        let changes = UnitChanges {
            added: vec!["d.timer".into()],
            changed: vec!["d.service".into(), "s.service".into()],
            ..UnitChanges::default()
        };
        let plan = Plan::new(&generation, &changes);
        assert_eq!(plan.restart, ["d.service", "s.service"]);
        assert_eq!(plan.ready_by_job, ["d.service"], "services only");
        let old: Plan = serde_json::from_str(
            r#"{"generation":1,"stop":[],"restart":["d.service"],"try_restart":[],"start":[]}"#,
        )
        .unwrap();
        assert!(old.ready_by_job.is_empty() && old.daemon_reload);
    }

    #[test]
    fn plan_from_changes_and_back_from_the_root() {
        let mut generation = Generation {
            number: 4,
            ..Generation::default()
        };
        let mut kept = unit(true);
        kept.text = "[Unit]\nX-RestartIfChanged=false\n".into();
        generation.units.insert("kept.service".into(), kept);
        for (name, wanted) in [("a.service", true), ("b.service", false)] {
            generation.units.insert(name.into(), unit(wanted));
            generation
                .units
                .insert(name.replace(".service", "2.service"), unit(wanted));
        }
        let changes = UnitChanges {
            added: vec!["a.service".into(), "b.service".into()],
            changed: vec![
                "a2.service".into(),
                "b2.service".into(),
                "kept.service".into(),
            ],
            removed: vec!["gone.service".into()],
            files_changed: true,
        };
        let plan = Plan::new(&generation, &changes);
        assert_eq!(
            plan,
            Plan {
                generation: 4,
                stop: vec!["gone.service".into()],
                restart: vec!["a2.service".into()],
                try_restart: vec!["b2.service".into()],
                start: vec!["a.service".into()],
                daemon_reload: true,
                ready_by_job: Vec::new(),
            }
        );
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path()).unwrap();
        assert_eq!(Plan::take(&root).unwrap(), None);
        plan.write(&root).unwrap();
        assert_eq!(Plan::take(&root).unwrap(), Some(plan));
        assert_eq!(Plan::take(&root).unwrap(), None, "taken once");
    }
}
