//! `ncsh apply FILE`: the containers a host module declares (`containers.<name>`) made so —
//! created, updated (switched live), restarted when an nspawn-level option changed, started
//! with `autoStart` — or, with `destroy`, removed. Everything FILE says is read and checked, and
//! every container's configuration built once in memory, before anything changes.

use std::path::{Path, PathBuf};

use super::Manager;
use super::progress;
use crate::builder::declared::declared_containers;
use crate::builder::{BuildRequest, BuilderKind, nix};
use crate::container::declared::{self, Declared, NixSource};
use crate::container::{
    ConfigSource, ContainerName, CreateOptions, NixOptions, UpdateOptions, store,
};
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

/// `path` resolved (it may be a link to one, a profile for instance) to a path of the Nix store
/// (`NIX_STORE_DIR`, else /nix/store), which is what `nix-env --set` accepts.
fn store_path(path: &str) -> std::result::Result<PathBuf, String> {
    let resolved = std::fs::canonicalize(path).map_err(|e| e.to_string())?;
    let store = std::env::var_os("NIX_STORE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/nix/store"));
    if resolved == store || !resolved.starts_with(&store) {
        return Err(format!("not in the Nix store {}", store.display()));
    }
    Ok(resolved)
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
        self.check_builders(&file, &planned)?;
        // Every configuration builds before anything changes: ncsh's in memory, a flake with
        // `nix build` into the store (a `path` is checked to exist).
        let mut systems = Vec::new();
        for p in &planned {
            systems.push(match &p.declared.nix {
                None => {
                    let mut request = BuildRequest::new(
                        &p.name,
                        self.paths.root(&p.name),
                        source(&p.name, &file),
                    );
                    request.declared_in = Some(file.clone());
                    self.natively_if(true, || self.builder()?.build(&request))?;
                    None
                }
                Some(NixSource::Path(path)) => Some(store_path(path).map_err(|why| {
                    Error::Usage(format!(
                        "{} (in {}): {path}: {why}: give a system Nix built \
                         (/nix/store/…-nixos-system-…)",
                        p.declared.option("path"),
                        file.display()
                    ))
                })?),
                Some(NixSource::Flake(flake)) => {
                    progress::show(&format!("{}: building {flake}", p.name));
                    let out_link = store::flake_out_link(&self.paths, &p.name);
                    let built = nix::build_flake_at(&out_link, flake, &NixOptions::default());
                    progress::clear();
                    Some(built?)
                }
            });
        }
        let mut out = Vec::new();
        for (p, system) in planned.into_iter().zip(systems) {
            let own = system.is_none();
            out.push(self.natively_if(own, || self.apply_one(&file, p, system, opts))?);
        }
        Ok(out)
    }

    /// Run `f` with the native builder when `own` (a container's `config`, which ncsh builds)
    /// and the host's builder is Nix; else with the host's.
    fn natively_if<T>(&self, own: bool, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let switch = own && self.has_native_builder() && self.builder()?.kind() == BuilderKind::Nix;
        let before = self.natively.replace(switch || self.natively.get());
        let result = f();
        self.natively.set(before);
        result
    }

    /// Containers with `config` are built by ncsh's native builder (the manager's own, or the
    /// one it keeps beside Nix: [`Manager::with_native_builder`]), those with `path` or `flake`
    /// by Nix: each must have its builder here (checked before anything is built).
    fn check_builders(&self, file: &Path, planned: &[Planned]) -> Result<()> {
        let kind = self.builder()?.kind();
        if let Some((p, source)) = planned
            .iter()
            .find_map(|p| p.declared.nix.as_ref().map(|s| (p, s)))
        {
            let tools: &[&str] = match source {
                NixSource::Path(_) => &["nix-env"],
                NixSource::Flake(_) => &["nix", "nix-env"],
            };
            let missing = tools.iter().find(|t| !nix::on_path(t));
            let why = if std::env::var("NCSH_BUILDER").as_deref() == Ok("native") {
                Some("NCSH_BUILDER=native builds without Nix".to_string())
            } else if let Some(tool) = missing {
                Some(format!(
                    "`{tool}` is not on PATH (Debian: apt install nix-bin)"
                ))
            } else if kind != BuilderKind::Nix {
                Some(
                    "<nixpkgs/nixos> does not resolve (NIX_PATH), so this host builds without \
                     Nix; NCSH_BUILDER=nix builds with Nix all the same"
                        .to_string(),
                )
            } else {
                None
            };
            if let Some(why) = why {
                return Err(Error::Unsupported(format!(
                    "{} (in {}): needs a Nix host, as Nix builds it: {why}; give `config` \
                     instead, which ncsh builds without Nix",
                    p.declared.option(source.option()),
                    file.display()
                )));
            }
        }
        if kind == BuilderKind::Nix
            && !self.has_native_builder()
            && let Some(p) = planned.iter().find(|p| p.declared.nix.is_none())
        {
            return Err(Error::Usage(format!(
                "containers.{} (in {}): apply builds a container's `config` natively: run it \
                 with NCSH_BUILDER=native (containers with `path` or `flake`, which Nix builds, \
                 then go in a file of their own)",
                p.name,
                file.display()
            )));
        }
        Ok(())
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

    /// Make container `p` so; `system` is the Nix system it gets (`path` or `flake`), None
    /// when ncsh builds its `config`.
    fn apply_one(
        &self,
        file: &Path,
        p: Planned,
        system: Option<PathBuf>,
        opts: &ApplyOptions,
    ) -> Result<Applied> {
        let name = &p.name;
        let wants_start = opts.start || p.declared.auto_start;
        // The system set as the container's profile, as `--system-path` sets it.
        let nix = NixOptions {
            system_path: system.as_ref().map(|s| s.display().to_string()),
            ..NixOptions::default()
        };
        let outcome = if !self.exists(name) {
            let create = CreateOptions {
                config: Some(source(name, file)),
                conf: Some(p.conf.clone()),
                nix,
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
            let update = match &system {
                None => UpdateOptions {
                    config: Some(source(name, file)),
                    ..UpdateOptions::default()
                },
                Some(_) => UpdateOptions {
                    nix,
                    ..UpdateOptions::default()
                },
            };
            // A Nix system is unchanged when the profile has it already.
            let current = std::fs::canonicalize(self.paths.profile(name).join("system")).ok();
            let same_system = system.is_some() && current == system;
            let updated = if same_system {
                Ok(false)
            } else {
                self.update_changed(name, &update)
            };
            let changed = match updated {
                Ok(changed) => changed,
                Err(e) => {
                    // The profile as it was (the Nix builder had set the new system before
                    // the switch failed), so that the next apply sees the change again.
                    let profile = self.paths.profile(name).join("system");
                    if let Some(before) = current.as_ref().filter(|_| system.is_some())
                        && std::fs::canonicalize(&profile).ok().as_ref() != Some(before)
                    {
                        let _ = nix::set_profile(&profile, before);
                    }
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
