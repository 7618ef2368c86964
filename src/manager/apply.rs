//! `ncsh apply FILE`: the containers a host module declares (`containers.<name>`) made so —
//! created, updated (switched live), restarted when an nspawn-level option changed, started
//! with `autoStart` — or, with `destroy`, removed. Everything FILE says is read and checked, and
//! every container's configuration built once in memory, before anything changes.

use std::path::{Path, PathBuf};

use super::Manager;
use crate::builder::declared::declared_containers;
use crate::builder::{BuildRequest, BuilderKind};
use crate::container::declared::{self, Declared};
use crate::container::{ConfigSource, ContainerName, CreateOptions, UpdateOptions, store};
use crate::error::{Error, Result};
use crate::host::Status;

/// What `apply` is asked for besides the file.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApplyOptions {
    /// Start every container FILE declares, not only those with `autoStart`.
    pub start: bool,
    /// Destroy the containers FILE declares instead.
    pub destroy: bool,
}

/// What `apply` did to one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub name: String,
    /// `created`, `updated`, `restarted`, `unchanged` or `destroyed` (`absent`: nothing to
    /// destroy).
    pub outcome: &'static str,
    /// Started by this apply.
    pub started: bool,
}

/// One container of FILE, checked: its name and the conf it gets.
struct Planned {
    name: ContainerName,
    declared: Declared,
    conf: crate::container::Conf,
}

/// configuration.nix of an applied container: nixos-container's, saying where its
/// configuration is (the build adds `containers.NAME.config` of FILE, see
/// `BuildRequest::declared_in`).
fn source(name: &str, file: &Path) -> ConfigSource {
    ConfigSource::Snippet(format!(
        "# The configuration of containers.{name} in {} (ncsh apply).",
        file.display()
    ))
}

impl Manager {
    /// Apply host module `file` (see the module docs); one entry per container it declares,
    /// in name order.
    pub fn apply(&self, file: &Path, opts: &ApplyOptions) -> Result<Vec<Applied>> {
        super::require_root()?;
        crate::container::config_file::check(file)
            .map_err(|e| Error::Usage(e.to_string().replace("--config-file ", "apply ")))?;
        let file: PathBuf = std::fs::canonicalize(file)
            .map_err(|e| Error::io(format!("resolving {}", file.display()), e))?;
        let planned = self.plan(&file)?;
        if opts.destroy {
            let mut out = Vec::new();
            for p in &planned {
                let outcome = if self.exists(&p.name) {
                    self.destroy(&p.name)?;
                    "destroyed"
                } else {
                    "absent"
                };
                out.push(Applied {
                    name: p.name.to_string(),
                    outcome,
                    started: false,
                });
            }
            return Ok(out);
        }
        if self.builder()?.kind() == BuilderKind::Nix {
            return Err(Error::Usage(
                "apply builds containers natively: run it with NCSH_BUILDER=native".into(),
            ));
        }
        // Every configuration builds before anything changes.
        for p in &planned {
            let mut request =
                BuildRequest::new(&p.name, self.paths.root(&p.name), source(&p.name, &file));
            request.declared_in = Some(file.clone());
            self.builder()?.build(&request)?;
        }
        let mut out = Vec::new();
        for p in planned {
            out.push(self.apply_one(&file, p, opts)?);
        }
        Ok(out)
    }

    /// FILE's containers, each with its conf, all checked (nothing changes here).
    fn plan(&self, file: &Path) -> Result<Vec<Planned>> {
        let mut planned = Vec::new();
        for d in declared_containers(file)? {
            let option = |what: &str| format!("{} (in {})", d.option(what), file.display());
            let name = ContainerName::parse(&d.name)
                .map_err(|e| Error::Usage(format!("containers.{}: {e}", d.name)))?;
            let flags = store::extra_nspawn_flags(&d.nspawn())
                .map_err(|e| Error::Usage(format!("{}: {e}", option("bindMounts/extraFlags"))))?;
            let conf = d.conf(flags)?;
            if self.exists(&name) {
                let old = self.conf(&name)?;
                match declared::declared_in(&old) {
                    Some(from) if from == file => {}
                    from => {
                        let made = match from {
                            Some(other) => format!("was applied from {}", other.display()),
                            None => "was made by create".to_string(),
                        };
                        return Err(Error::Usage(format!(
                            "containers.{name}: a container ‘{name}’ exists and {made}: \
                             destroy it first, or give this one another name"
                        )));
                    }
                }
                store::check_destroyable(&self.paths, &name)?;
            }
            planned.push(Planned {
                name,
                declared: d,
                conf,
            });
        }
        Ok(planned)
    }

    fn apply_one(&self, file: &Path, p: Planned, opts: &ApplyOptions) -> Result<Applied> {
        let name = &p.name;
        let wants_start = opts.start || p.declared.auto_start;
        let outcome = if !self.exists(name) {
            let create = CreateOptions {
                config: Some(source(name, file)),
                conf: Some(p.conf.clone()),
                ..CreateOptions::default()
            };
            self.create(name, &create)?;
            "created"
        } else {
            let old = self.conf(name)?;
            let conf_changed = old != p.conf;
            let restart_needed = declared::nspawn_level_change(&old, &p.conf);
            if conf_changed {
                crate::files::write_durable(&self.paths.conf(name), &p.conf.render(), 0o644)?;
            }
            let update = UpdateOptions {
                config: Some(source(name, file)),
                ..UpdateOptions::default()
            };
            let changed = match self.update_changed(name, &update) {
                Ok(changed) => changed,
                Err(e) => {
                    if conf_changed {
                        let _ = crate::files::write_durable(
                            &self.paths.conf(name),
                            &old.render(),
                            0o644,
                        );
                    }
                    return Err(e);
                }
            };
            let running = self.status(name)? == Status::Up;
            // An ephemeral container sees a new system only when it boots again.
            let restart_needed = restart_needed || (changed && p.declared.ephemeral);
            if running && restart_needed && p.declared.restart_if_changed {
                self.restart(name)?;
                "restarted"
            } else if changed || conf_changed {
                if running && restart_needed {
                    eprintln!(
                        "ncsh: note: {name}'s nspawn options changed and restartIfChanged is \
                         false: they take effect when it is restarted"
                    );
                }
                "updated"
            } else {
                "unchanged"
            }
        };
        let started = wants_start && self.status(name)? != Status::Up;
        if started {
            self.start(name)?;
        }
        Ok(Applied {
            name: name.to_string(),
            outcome,
            started,
        })
    }
}
