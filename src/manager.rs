//! The operations on containers, as one place the CLI verbs, scripts and the REPL all go
//! through: the domain (`container`), a host driver and a builder. No Rhai here: the native
//! builder (whose option modules are Rhai) is handed in by the caller.

use std::io::IsTerminal;
use std::path::Path;
use std::process::Output;

use crate::builder::generation::{Activation, Generation, Store};
use crate::builder::switch::{self, Plan};
use crate::builder::{
    BuildRequest, Builder, BuilderKind, Built, activate, base, configuration_nix,
};
use crate::container::declared;
use crate::container::lock::ContainerLock;
use crate::container::network::NETWORK_KEY;
use crate::container::{
    Conf, ConfigSource, ContainerName, CreateOptions, Created, NixOptions, Paths, UpdateOptions,
    name, store,
};
use crate::error::{Error, Result};
use crate::files::Root;
use crate::host::switch::Entered;
use crate::host::{Driver, Status, enter, journal, pty};

/// How many lines of the journal a failed start shows.
const JOURNAL_TAIL_LINES: u64 = 10;

pub use crate::host::journal::LogQuery;

mod apply;
mod copy;
pub use apply::{Applied, ApplyOptions};

mod info;
pub mod progress;
mod run;
pub use info::{BindMount, Info};
pub use run::env_pairs;

/// Which program ncsh is pretending to be (argv[0]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Personality {
    Ncsh,
    /// Invoked as `nixos-container`: its limits and messages.
    NixosContainer,
}

/// Changing containers and entering them needs root (nixos-container relies on file modes and
/// polkit; an explicit check gives a clear message instead of a confusing one).
fn require_root() -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(Error::NotRoot)
    }
}

pub struct Manager {
    /// `exec` may enter the container in this very process (a CLI verb that ends after it).
    in_place_entry: std::cell::Cell<bool>,
    pub paths: Paths,
    pub personality: Personality,
    driver: Box<dyn Driver>,
    /// Chosen on first use: only create and update build, and finding out whether this is a
    /// Nix host costs a PATH search that every other verb can do without.
    builder: std::cell::OnceCell<Box<dyn Builder>>,
    choose_builder: std::sync::Arc<dyn Fn() -> Result<Box<dyn Builder>> + Send + Sync>,
    /// ncsh's own builder where the host's is Nix: `apply` builds a container's `config`
    /// with it (see [`Manager::with_native_builder`]).
    native: Option<(std::cell::OnceCell<Box<dyn Builder>>, BuilderChoice)>,
    /// Set while `apply` makes a container from its `config`: the builder is the native one.
    natively: std::cell::Cell<bool>,
}

/// How the manager picks its builder, when it first needs one (also in the threads of
/// [`Manager::create_all`], each of which picks one of its own).
pub type BuilderChoice = Box<dyn Fn() -> Result<Box<dyn Builder>> + Send + Sync>;

impl Manager {
    /// A manager of the containers below `paths`, run by `driver` (the front end chooses it,
    /// see [`crate::host::select`]), building with the builder `choose_builder` returns.
    pub fn new(
        paths: Paths,
        personality: Personality,
        choose_builder: BuilderChoice,
        driver: Box<dyn Driver>,
    ) -> Manager {
        Manager {
            in_place_entry: std::cell::Cell::new(false),
            paths,
            personality,
            driver,
            builder: std::cell::OnceCell::new(),
            choose_builder: std::sync::Arc::from(choose_builder),
            native: None,
            natively: std::cell::Cell::new(false),
        }
    }

    /// The same, with ncsh's own builder at hand for `apply`'s `config` containers on a host
    /// whose builder is Nix (a file may declare both kinds).
    pub fn with_native_builder(mut self, choose: BuilderChoice) -> Manager {
        self.native = Some((std::cell::OnceCell::new(), choose));
        self
    }

    /// Whether a `config` can be built here although the host's builder is Nix.
    fn has_native_builder(&self) -> bool {
        self.native.is_some()
    }

    fn builder(&self) -> Result<&dyn Builder> {
        if self.natively.get()
            && let Some((cell, choose)) = &self.native
        {
            if let Some(builder) = cell.get() {
                return Ok(builder.as_ref());
            }
            let chosen = choose()?;
            return Ok(cell.get_or_init(|| chosen).as_ref());
        }
        if let Some(builder) = self.builder.get() {
            return Ok(builder.as_ref());
        }
        let chosen = (self.choose_builder)()?;
        Ok(self.builder.get_or_init(|| chosen).as_ref())
    }

    pub fn builder_name(&self) -> Result<&'static str> {
        Ok(match self.builder()?.kind() {
            crate::builder::BuilderKind::Native => "native",
            crate::builder::BuilderKind::Nix => "nix",
        })
    }

    pub fn driver_name(&self) -> &'static str {
        self.driver.name()
    }

    pub fn list(&self) -> Result<Vec<String>> {
        store::list(&self.paths)
    }

    pub fn exists(&self, name: &ContainerName) -> bool {
        store::exists(&self.paths, name)
    }

    /// The conf of an existing container (validates the name, NotFound otherwise).
    pub fn conf(&self, name: &ContainerName) -> Result<Conf> {
        store::load(&self.paths, name)
    }

    /// The same check without reading the conf, for operations that do not need it.
    pub fn require_exists(&self, name: &ContainerName) -> Result<()> {
        store::require(&self.paths, name)
    }

    /// Refuse Nix options unless this builder is Nix's.
    fn check_nix_options(&self, nix: &NixOptions) -> Result<()> {
        match nix.first_flag() {
            Some(flag) if self.builder()?.kind() != BuilderKind::Nix => {
                Err(Error::Unsupported(format!(
                    "{flag} needs a Nix host (nix-env and <nixpkgs/nixos>); this host has no Nix"
                )))
            }
            _ => Ok(()),
        }
    }

    /// A build request for container `name` whose configuration is in `root`.
    fn request(&self, name: &str, building: &Root, source: ConfigSource) -> BuildRequest {
        let mut request = BuildRequest::new(name, self.paths.root(name), source);
        request.config = building.host_path(configuration_nix::PATH);
        request.profile = self.paths.profile(name);
        request
    }

    pub fn create(&self, name: &ContainerName, opts: &CreateOptions) -> Result<Created> {
        let opts = self.checked_create_options(opts)?;
        let source = create_source(&opts);
        let nix_built = std::cell::Cell::new(None::<String>);
        // The base system, configuration.nix and the first generation are built into the new
        // root before the conf exists.
        let _line = progress::Line;
        let realize = |building: &Root, name: &ContainerName| -> Result<()> {
            if self.builder()?.kind() == BuilderKind::Nix {
                nix_built.set(Some(name.to_string()));
            }
            self.realize_first(building, name, &source, &opts)
        };
        let created = store::create(&self.paths, name, &opts, &realize)
            .and_then(|created| self.arrange_auto_start(created, &opts));
        if let (Err(_), Some(name)) = (&created, nix_built.take()) {
            // nixos-container's clean-up: the profile and GC roots go with the root and conf.
            let _ = crate::files::remove_path(&self.paths.profile(&name));
            let _ = crate::files::remove_path(&self.paths.gcroots(&name));
        }
        created
    }

    /// Create every container of `nodes` (name, options), as [`Manager::create`] one by one
    /// would: with the native builder, their roots are built at once, each in a thread with a
    /// builder of its own and outside the create lock ([`store::prepare`]), then made containers
    /// in order ([`store::commit`]: their addresses checked under the lock). It stops at the
    /// first that fails: what was created, and that failure (its index and error); the roots
    /// built for the others are removed.
    pub fn create_all(
        &self,
        nodes: &[(ContainerName, CreateOptions)],
    ) -> (Vec<Created>, Option<(usize, Error)>) {
        let mut created = Vec::new();
        let at_once = nodes.len() > 1
            && self
                .builder()
                .is_ok_and(|b| b.kind() == BuilderKind::Native);
        if !at_once {
            for (i, (name, opts)) in nodes.iter().enumerate() {
                match self.create(name, opts) {
                    Ok(c) => created.push(c),
                    Err(e) => return (created, Some((i, e))),
                }
            }
            return (created, None);
        }
        let (paths, personality) = (&self.paths, self.personality);
        let choose = &self.choose_builder;
        let prepared = in_threads(nodes, "building a container", |(name, opts)| {
            let choose = choose.clone();
            let builder: BuilderChoice = Box::new(move || choose());
            // A build never asks the driver: any will do, and this one costs nothing.
            let driver = Box::new(crate::host::standalone::Standalone::new(paths.clone()));
            Manager::new(paths.clone(), personality, builder, driver).prepare(name, opts)
        });
        crate::host::phase("create_all: roots built");
        let mut failure = None;
        for (i, built) in prepared.into_iter().enumerate() {
            if failure.is_some() {
                if let Ok(p) = built {
                    store::discard(p);
                }
                continue;
            }
            let opts = &nodes[i].1;
            let made = built.and_then(|p| {
                let opts = self.checked_create_options(opts)?;
                store::commit(&self.paths, p, &opts).and_then(|c| self.arrange_auto_start(c, &opts))
            });
            crate::host::phase(&format!("create_all: {} committed", nodes[i].0));
            match made {
                Ok(c) => created.push(c),
                Err(e) => failure = Some((i, e)),
            }
        }
        (created, failure)
    }

    /// [`Manager::create_all`]'s build of one root (native builder), in a thread of its own.
    fn prepare(&self, name: &ContainerName, opts: &CreateOptions) -> Result<store::Prepared> {
        let opts = self.checked_create_options(opts)?;
        let source = create_source(&opts);
        let realize = |building: &Root, name: &ContainerName| -> Result<()> {
            self.realize_first(building, name, &source, &opts)
        };
        store::prepare(&self.paths, name, &opts, &realize)
    }

    /// What every create checks first, and the options as this personality creates them.
    fn checked_create_options(&self, opts: &CreateOptions) -> Result<CreateOptions> {
        require_root()?;
        self.check_nix_options(&opts.nix)?;
        if let Some(network) = &opts.network
            && crate::host::net::interface_exists(network)
            && !crate::host::net::is_ncsh_bridge(network)
        {
            return Err(Error::Usage(format!(
                "--network {network}: the host has an interface {network} that is not a network \
                 of ncsh's; use --bridge {network} to put the container on it, or choose another \
                 network name"
            )));
        }
        let mut opts = opts.clone();
        if self.personality == Personality::NixosContainer {
            opts.max_name_len = Some(name::NIXOS_CONTAINER_MAX_LEN);
        }
        Ok(opts)
    }

    /// The base system, configuration.nix and the first generation of new container `name`,
    /// built into `building` (its root, not yet in place).
    fn realize_first(
        &self,
        building: &Root,
        name: &ContainerName,
        source: &ConfigSource,
        opts: &CreateOptions,
    ) -> Result<()> {
        progress::show(&format!("{name}: building generation 1"));
        base::write_base_system(building, name)?;
        configuration_nix::write(building, name, source)?;
        let mut request = self.request(name, building, source.clone());
        request.initial = true;
        request.nix = opts.nix.clone();
        request.declared_in = opts
            .conf
            .as_ref()
            .and_then(|c| declared::declared_in(c).map(Path::to_path_buf));
        match self.builder()?.build(&request)? {
            Built::Generation(mut generation) => {
                progress::show(&format!("{name}: activating generation 1"));
                activate::apply(building, &generation, None)?;
                let store = Store::new(building);
                store.save_next(&mut generation)?;
                store.set_current(generation.number)
            }
            Built::NixSystem(_) => Ok(()),
        }
    }

    /// The end of a create: its note, if any, and started at boot (systemd driver) as `opts`
    /// asks; if that cannot be arranged, no container.
    fn arrange_auto_start(&self, created: Created, opts: &CreateOptions) -> Result<Created> {
        if let Some(note) = &created.ipv6_note {
            progress::clear();
            eprintln!("ncsh: note: {}: {note}", created.name);
        }
        match self.driver.set_auto_start(&created.name, opts.auto_start) {
            Ok(()) => Ok(created),
            Err(e) => {
                let _ = self.driver.set_auto_start(&created.name, false);
                let _ = store::remove_files(&self.paths, &created.name);
                Err(e)
            }
        }
    }

    /// Rebuild a container's system from `--config`, `--config-file` or (neither) its
    /// `configuration.nix`, make it the new generation and, when it runs, switch it live. A
    /// failure leaves the previous generation active and running, and the configuration as it was.
    pub fn update(&self, name: &ContainerName, opts: &UpdateOptions) -> Result<()> {
        self.update_changed(name, opts).map(|_| ())
    }

    /// [`Manager::update`], saying whether anything changed (false: the new system is the
    /// current one and configuration.nix and the conf stay as they were).
    fn update_changed(&self, name: &ContainerName, opts: &UpdateOptions) -> Result<bool> {
        require_root()?;
        // Checked first: a bad limit changes nothing.
        let limits = opts.limits.conf_entries()?;
        let changed = self.update_conf_and_system(name, opts)?;
        if limits.is_empty() {
            return Ok(changed);
        }
        let _lock = self.lock(name)?;
        let before = self.conf(name)?;
        store::set_conf_values(&self.paths, name, &limits)?;
        let conf = self.conf(name)?;
        self.driver
            .apply_limits(name, &crate::container::limits::Limits::from_conf(&conf)?)?;
        Ok(changed || conf != before)
    }

    /// What the running container uses (memory, CPU time, tasks); None when it is down.
    pub fn usage(&self, name: &ContainerName) -> Result<Option<crate::host::cgroup::Usage>> {
        self.require_exists(name)?;
        self.driver.usage(name)
    }

    /// The conf's limits.
    pub fn limits(&self, name: &ContainerName) -> Result<crate::container::limits::Limits> {
        crate::container::limits::Limits::from_conf(&self.conf(name)?)
    }

    /// The conf's nspawn options and the system of [`Manager::update`], under the lock.
    fn update_conf_and_system(&self, name: &ContainerName, opts: &UpdateOptions) -> Result<bool> {
        let nix = &opts.nix;
        self.check_nix_options(nix)?;
        let _lock = self.lock(name)?;
        let conf = self.conf(name)?;
        // The new conf, when the nspawn options change: checked first, written once the
        // system is built and applied.
        let new_conf = match &opts.nspawn {
            Some(nspawn) => {
                store::check_destroyable(&self.paths, name)?;
                let mut new = conf.clone();
                match store::extra_nspawn_flags(nspawn)? {
                    Some(flags) => new.set("EXTRA_NSPAWN_FLAGS", flags),
                    None => new.remove("EXTRA_NSPAWN_FLAGS"),
                }
                (new != conf).then_some(new)
            }
            None => None,
        };
        let result = self.update_system(name, opts, &conf);
        if let (Ok(_), Some(new)) = (&result, new_conf) {
            crate::files::write_durable(&self.paths.conf(name), &new.render(), 0o644)?;
            if self.driver.status(name) == Status::Up {
                eprintln!(
                    "ncsh: note: {name}'s nspawn options changed: they take effect when it is \
                     restarted (ncsh restart {name})"
                );
            }
            return Ok(true);
        }
        result
    }

    /// The system part of [`Manager::update`], under its lock.
    fn update_system(
        &self,
        name: &ContainerName,
        opts: &UpdateOptions,
        conf: &Conf,
    ) -> Result<bool> {
        let nix = &opts.nix;
        let source = opts.config.clone().unwrap_or(ConfigSource::Existing);
        let root = Root::open(&self.paths.root(name))?;
        self.recover_activation(name, &root)?;
        let old_config = root.read_string(configuration_nix::PATH)?;
        let write_config = || match &source {
            ConfigSource::Existing => Ok(()),
            source => configuration_nix::write(&root, name, source),
        };
        let restore_config = || {
            if let Some(text) = &old_config {
                let _ = root.write(configuration_nix::PATH, text.as_bytes(), 0o644);
            }
        };
        if self.builder()?.kind() == BuilderKind::Nix {
            // An applied `path` is the system (NixOS: "update has no effect" on it); building
            // configuration.nix would put another one into the profile.
            if let (Some(file), Some(_), None) = (
                declared::declared_in(conf),
                conf.non_empty("SYSTEM_PATH"),
                &nix.system_path,
            ) {
                return Err(Error::Usage(format!(
                    "container ‘{name}’ is containers.{name}.path of {}, a built system: \
                     change the path there and run `ncsh apply {}` again",
                    file.display(),
                    file.display()
                )));
            }
            // nix-env builds the configuration.nix on disk: write it first (as nixos-container),
            // and put the old one back if the build fails.
            if nix.system_path.is_none() && nix.flake.is_none() {
                write_config()?;
            }
            let mut request = self.request(name, &root, source.clone());
            request.nix = nix.clone();
            request.conf_flake = conf.non_empty("FLAKE").map(str::to_string);
            match self.builder()?.build(&request) {
                Ok(Built::NixSystem(_)) => {}
                Ok(Built::Generation(_)) => return Ok(true),
                Err(e) => {
                    restore_config();
                    return Err(e);
                }
            }
            // As nixos-container: the new system is the profile's; a running container is
            // reloaded, which runs its `switch-to-configuration test`.
            if self.driver.status(name) == Status::Up {
                progress::clear();
                eprintln!("reloading container...");
                self.reload(name, None)?;
            }
            return Ok(true);
        }
        let _line = progress::Line;
        let next = Store::new(&root).numbers()?.last().copied().unwrap_or(0) + 1;
        progress::show(&format!("{name}: building generation {next}"));
        let mut request = self.request(name, &root, source.clone());
        request.declared_in = declared::declared_in(conf).map(Path::to_path_buf);
        let config_same = match &source {
            ConfigSource::Existing => true,
            source => old_config.as_deref() == Some(&*configuration_nix::render(name, source)),
        };
        // An ephemeral container runs on a copy of its root, which the new generation does
        // not reach: it gets it at its next start.
        let ephemeral = conf
            .extra_nspawn_flags(&self.paths.conf(name))
            .is_ok_and(|flags| flags.iter().any(|f| f == "--ephemeral"));
        // A new configuration.nix makes a new generation to switch to: a running standalone
        // container is entered meanwhile, while the configuration builds (`switch::Entered`).
        let mut entered = if !config_same && !ephemeral && self.driver.name() == "standalone" {
            self.driver.leader(name).and_then(Entered::spawn)
        } else {
            None
        };
        let mut generation = match self.builder()?.build(&request)? {
            Built::Generation(generation) => generation,
            Built::NixSystem(_) => return Ok(true),
        };
        let store = Store::new(&root);
        let old = store.current()?;
        // Nothing to do when the system and configuration.nix would be what they are.
        if config_same
            && let Some(old) = &old
            && (Generation {
                number: old.number,
                ..generation.clone()
            }) == *old
        {
            return Ok(false);
        }
        // Recorded before anything changes, so that a crash from here on is undone next time.
        store.begin(&Activation {
            from: old.as_ref().map(|g| g.number),
            to: store.numbers()?.last().copied().unwrap_or(0) + 1,
            config: old_config.clone(),
            pid: std::process::id(),
        })?;
        store.save_next(&mut generation)?;
        write_config()?;
        let running = self.driver.status(name) == Status::Up && !ephemeral;
        if ephemeral && self.driver.status(name) == Status::Up {
            eprintln!(
                "ncsh: note: {name} is ephemeral: it runs on a copy of its root, and boots the \
                 new configuration when it is restarted (ncsh restart {name})"
            );
        }
        progress::show(&format!(
            "{name}: activating generation {}",
            generation.number
        ));
        let applied = activate::apply(&root, &generation, old.as_ref()).and_then(|changes| {
            if running {
                // As nixos-container says before `systemctl reload`; only now that the
                // configuration evaluated and built.
                progress::clear();
                eprintln!("reloading container...");
                self.reload_with(
                    name,
                    Some(&Plan::new(&generation, &changes)),
                    entered.take(),
                )
            } else {
                Ok(())
            }
        });
        if let Err(e) = applied {
            // Back to the previous generation: its files, and its units in the running container.
            let previous = old.clone().unwrap_or_default();
            let reverted = activate::apply(&root, &previous, Some(&generation));
            if let (Ok(changes), true) = (reverted, running) {
                let _ = self.reload(name, Some(&Plan::new(&previous, &changes)));
            }
            store.discard(generation.number);
            restore_config();
            store.finish()?;
            return Err(Error::RolledBack {
                error: Box::new(e),
                to: old.map(|g| g.number),
            });
        }
        store.set_current(generation.number)?;
        store.finish()?;
        Ok(true)
    }

    /// Undo an activation a crash cut short (see [`Activation`]): the previous generation's
    /// files back (and switched to, when the container runs), the new generation and the
    /// temporary files gone, `configuration.nix` as it was.
    fn recover_activation(&self, name: &ContainerName, root: &Root) -> Result<()> {
        let store = Store::new(root);
        let Some(activation) = store.interrupted()? else {
            return Ok(());
        };
        if store.current_number() == Some(activation.to) {
            // It had become current: only the record was left.
            return store.finish();
        }
        let interrupted = store.load(activation.to).ok();
        let previous = activation.from.map(|n| store.load(n)).transpose()?;
        let previous_or_empty = previous.clone().unwrap_or_default();
        if let Some(new) = &interrupted {
            let changes = activate::apply(root, &previous_or_empty, Some(new))?;
            if self.driver.status(name) == Status::Up {
                self.reload(name, Some(&Plan::new(&previous_or_empty, &changes)))?;
            }
        }
        let all: Vec<&Generation> = interrupted.iter().chain(previous.iter()).collect();
        activate::remove_temporaries(root, &all)?;
        store.discard(activation.to);
        if let Some(text) = &activation.config {
            root.write(configuration_nix::PATH, text.as_bytes(), 0o644)?;
        }
        store.finish()
    }

    /// Have running container `name` switch to its new system through the driver (under
    /// systemd, the reload of its unit), with `plan` pending for a native-built one. A failed
    /// reload's error carries what the switch inside said.
    fn reload(&self, name: &ContainerName, plan: Option<&Plan>) -> Result<()> {
        self.reload_with(name, plan, None)
    }

    /// [`Manager::reload`], the plan run in `entered` when it is given (standalone driver).
    fn reload_with(
        &self,
        name: &ContainerName,
        plan: Option<&Plan>,
        entered: Option<Entered>,
    ) -> Result<()> {
        let entered = std::cell::RefCell::new(entered);
        let root = Root::open(&self.paths.root(name))?;
        // An error left by an earlier reload is not this one's.
        let _ = switch::take_error(&root);
        if let Some(plan) = plan {
            plan.write(&root)?;
        }
        let reloaded = self.driver.reload(name, &|| {
            crate::host::switch::run_pending(
                &self.paths,
                name,
                self.leader(name)?,
                entered.borrow_mut().take(),
            )
        });
        Plan::discard(&root);
        match reloaded {
            Err(Error::ReloadFailed { name, detail }) => Err(Error::ReloadFailed {
                name,
                detail: match switch::take_error(&root) {
                    Some(why) => format!("{detail}\n{why}"),
                    None => detail,
                },
            }),
            other => other,
        }
    }

    /// The options of the container's active generation (defaults included).
    pub fn options(&self, name: &ContainerName) -> Result<serde_json::Value> {
        self.require_exists(name)?;
        Ok(Store::new(&Root::open(&self.paths.root(name))?)
            .current()?
            .map(|g| g.options)
            .unwrap_or_default())
    }

    /// Wait until no other ncsh starts, stops, updates or destroys container `name`; crash
    /// debris of dead processes is removed on the way.
    fn lock(&self, name: &ContainerName) -> Result<ContainerLock> {
        let lock = ContainerLock::acquire(&self.paths, name)?;
        store::remove_debris(&self.paths)?;
        Ok(lock)
    }

    /// The containers whose conf has AUTO_START=1 (`start --all-auto`), in list order.
    pub fn auto_start_names(&self) -> Result<Vec<String>> {
        Ok(store::all_confs(&self.paths)?
            .into_iter()
            .filter(|(_, conf)| conf.get("AUTO_START") == Some("1"))
            .map(|(name, _)| name)
            .collect())
    }

    pub fn start(&self, name: &ContainerName) -> Result<()> {
        require_root()?;
        crate::host::phase(&format!("start {name}"));
        let _lock = self.lock(name)?;
        self.start_locked(name)
    }

    fn start_locked(&self, name: &ContainerName) -> Result<()> {
        let conf = self.conf(name)?;
        // Checked here, before the driver starts anything (the drivers read them again).
        conf.extra_nspawn_flags(&self.paths.conf(name))?;
        // A bad limit in a conf edited by hand is refused before anything starts.
        crate::container::limits::Limits::from_conf(&conf)?;
        // A missing root is check_generation's to report.
        let root = Root::open(&self.paths.root(name)).ok();
        if let Some(root) = &root {
            self.recover_activation(name, root)?;
        }
        self.check_generation(name, &conf, root.as_ref())?;
        if let Some((bridge, gateway)) = crate::container::network::gateway(&conf) {
            crate::host::net::add_bridge(&bridge, gateway)?;
        }
        // A conf edited by hand: what the host starts at boot follows AUTO_START.
        self.driver
            .set_auto_start(name, conf.get("AUTO_START") == Some("1"))?;
        let _line = progress::Line;
        progress::show(&format!("{name}: booting"));
        let began = std::time::Instant::now();
        crate::host::phase(&format!("start {name}: checked, driver starts"));
        self.driver
            .start(name, &conf)
            .map_err(|e| self.with_journal_tail(name, e))?;
        crate::host::phase(&format!("start {name}: up"));
        progress::finish(&format!(
            "{name}: reached multi-user.target in {:.2} s",
            began.elapsed().as_secs_f64()
        ));
        Ok(())
    }

    /// A failed start's error with the last lines of the container's journal and where to
    /// read the rest (the console lines the driver gives show nspawn's side).
    fn with_journal_tail(&self, name: &ContainerName, error: Error) -> Error {
        let Error::StartFailed {
            name: failed,
            detail,
        } = error
        else {
            return error;
        };
        let query = journal::LogQuery {
            unit: None,
            lines: Some(JOURNAL_TAIL_LINES),
        };
        let tail = Root::open(&self.paths.root(name))
            .and_then(|root| journal::read(&root, &query))
            .unwrap_or_default();
        let mut detail = detail;
        if !tail.trim().is_empty() {
            detail.push_str("\nlast lines of its journal:\n");
            detail.push_str(tail.trim_end());
        }
        detail.push_str(&format!("\n(the whole journal: `ncsh logs {name}`)"));
        Error::StartFailed {
            name: failed,
            detail,
        }
    }

    /// The container's journal (also of a stopped container), as journalctl shows it.
    pub fn logs(&self, name: &ContainerName, query: &journal::LogQuery) -> Result<String> {
        self.require_exists(name)?;
        journal::read(&Root::open(&self.paths.root(name))?, query)
    }

    /// Show the journal on stdout and follow it until interrupted (journalctl inside the
    /// running container); journalctl's exit code.
    pub fn follow_logs(&self, name: &ContainerName, query: &journal::LogQuery) -> Result<i32> {
        self.require_exists(name)?;
        if self.driver.status(name) != Status::Up {
            return Err(Error::Usage(format!(
                "container ‘{name}’ is not running: -f follows a running container's journal \
                 (without -f, `ncsh logs {name}` shows a stopped one's)"
            )));
        }
        self.run_attached(name, &journal::follow_argv(query))
    }

    /// A native container boots its current generation: a root without one (a create or destroy
    /// that did not finish) would boot without its system, so it is refused.
    fn check_generation(
        &self,
        name: &ContainerName,
        conf: &Conf,
        opened: Option<&Root>,
    ) -> Result<()> {
        if crate::host::nspawn::nix_system(&self.paths, name, conf).is_some()
            || opened.is_some_and(|r| Store::new(r).current_number().is_some())
        {
            return Ok(());
        }
        let root = self.paths.root(name);
        let what = if root.is_dir() {
            format!(
                "its root {} has no current generation ({}/current is missing)",
                root.display(),
                crate::builder::generation::GENERATIONS_DIR
            )
        } else {
            format!("its root {} is missing", root.display())
        };
        Err(Error::StartFailed {
            name: name.to_string(),
            detail: format!(
                "{what}: its create or destroy did not finish; run `ncsh destroy {name}` and create it again"
            ),
        })
    }

    pub fn stop(&self, name: &ContainerName) -> Result<()> {
        crate::host::phase(&format!("stop {name}"));
        require_root()?;
        self.require_exists(name)?;
        let _lock = self.lock(name)?;
        self.require_exists(name)?;
        self.driver.stop(name)
    }

    pub fn restart(&self, name: &ContainerName) -> Result<()> {
        require_root()?;
        self.require_exists(name)?;
        let _lock = self.lock(name)?;
        self.require_exists(name)?;
        self.driver.stop(name)?;
        self.start_locked(name)
    }

    pub fn terminate(&self, name: &ContainerName) -> Result<()> {
        require_root()?;
        self.require_exists(name)?;
        let _lock = self.lock(name)?;
        self.require_exists(name)?;
        self.driver.terminate(name)
    }

    pub fn status(&self, name: &ContainerName) -> Result<Status> {
        self.require_exists(name)?;
        Ok(self.driver.status(name))
    }

    pub fn leader(&self, name: &ContainerName) -> Result<i32> {
        self.require_exists(name)?;
        self.driver
            .find_leader(name)?
            .ok_or_else(|| Error::NotRunning(name.to_string()))
    }

    /// The container's address as `show-ip` prints it ([`Conf::local_ip`]).
    pub fn ip(&self, name: &ContainerName) -> Result<String> {
        self.conf(name)?
            .local_ip()
            .ok_or_else(|| Error::NoAddress(name.to_string()))
    }

    pub fn host_ip(&self, name: &ContainerName) -> Result<Option<String>> {
        Ok(self.conf(name)?.host_ip())
    }

    /// Kill a running container, then remove everything it owns. A missing container is fine; a
    /// root left without a conf is removed too.
    pub fn destroy(&self, name: &ContainerName) -> Result<()> {
        require_root()?;
        let _lock = self.lock(name)?;
        if self.exists(name) {
            store::check_destroyable(&self.paths, name)?;
        } else if !self.paths.root(name).exists() && !self.paths.runtime(name).exists() {
            return Ok(());
        }
        crate::host::phase(&format!("destroy {name}"));
        if self.driver.status(name) == Status::Up || self.driver.leader(name).is_some() {
            self.driver.terminate(name)?;
            crate::host::phase(&format!("destroy {name}: terminated"));
        }
        let network = self
            .conf(name)
            .ok()
            .and_then(|c| c.non_empty(NETWORK_KEY).map(str::to_string));
        self.driver.remove_runtime(name)?;
        crate::host::phase(&format!("destroy {name}: runtime removed"));
        self.driver.set_auto_start(name, false)?;
        store::remove_files(&self.paths, name)?;
        crate::host::phase(&format!("destroy {name}: files removed"));
        // The network's bridge goes with its last container.
        if let Some(network) = network {
            let members = store::all_confs(&self.paths)?
                .iter()
                .any(|(_, c)| c.non_empty(NETWORK_KEY) == Some(network.as_str()));
            if !members && crate::host::net::is_ncsh_bridge(&network) {
                crate::host::net::delete_bridge(&network)?;
            }
        }
        Ok(())
    }

    /// Let [`Manager::exec`] enter containers in this process: for a CLI verb, which ends
    /// right after (never for the REPL or a script, which go on on the host).
    pub fn allow_in_place_entry(&self) {
        self.in_place_entry.set(true);
    }

    /// Run `argv` in the container with stdio passed through, as the last thing this
    /// invocation does; the command's exit code.
    pub fn exec(&self, name: &ContainerName, argv: &[String]) -> Result<i32> {
        if !self.in_place_entry.get() {
            return self.run_attached(name, argv);
        }
        require_root()?;
        enter::run_attached_in_place(self.leader(name)?, argv)
    }

    pub fn run_attached(&self, name: &ContainerName, argv: &[String]) -> Result<i32> {
        require_root()?;
        enter::run_attached(self.leader(name)?, argv)
    }

    /// A login prompt of the container relayed to the caller's terminal (or stdin and stdout):
    /// `/bin/login` on a terminal allocated inside (login's exit code), or machined's getty
    /// under the systemd driver.
    pub fn login(&self, name: &ContainerName) -> Result<i32> {
        require_root()?;
        let leader = self.leader(name)?;
        self.driver.login(name, leader)
    }

    /// A root login shell: on a terminal inside the container when stdin is a terminal, else
    /// attached to stdin and stdout (the shell reads its commands from stdin); its exit code.
    pub fn root_login(&self, name: &ContainerName) -> Result<i32> {
        require_root()?;
        let leader = self.leader(name)?;
        if std::io::stdin().is_terminal() {
            pty::root_shell(leader)
        } else {
            let argv = ["/bin/su".to_string(), "-l".into(), "root".into()];
            enter::run_attached(leader, &argv)
        }
    }

    pub fn run_captured(
        &self,
        name: &ContainerName,
        argv: &[String],
        stdin: Option<&[u8]>,
    ) -> Result<Output> {
        require_root()?;
        enter::run_captured(self.leader(name)?, argv, stdin)
    }

    /// Start every container of `names` at once, each in a thread of its own with a manager of
    /// its own (the driver is not shared between threads), and wait for all: a start is mostly
    /// waiting for a boot, so these boots overlap. The first failure is returned, after all
    /// the others finished.
    pub fn start_all(&self, names: &[ContainerName]) -> Result<()> {
        self.each_at_once(names, Manager::start)
    }

    /// Destroy every container of `names` at once, as [`Manager::start_all`] starts them.
    pub fn destroy_all(&self, names: &[ContainerName]) -> Vec<(ContainerName, Error)> {
        self.each_at_once_all(names, Manager::destroy)
    }

    fn each_at_once(
        &self,
        names: &[ContainerName],
        op: fn(&Manager, &ContainerName) -> Result<()>,
    ) -> Result<()> {
        match self.each_at_once_all(names, op).into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }

    /// `op` on each of `names` in a thread of its own, with a manager of its own; the failures.
    fn each_at_once_all(
        &self,
        names: &[ContainerName],
        op: fn(&Manager, &ContainerName) -> Result<()>,
    ) -> Vec<(ContainerName, Error)> {
        if require_root().is_err() {
            return names.iter().map(|n| (n.clone(), Error::NotRoot)).collect();
        }
        let driver = self.driver_name();
        let (paths, personality) = (&self.paths, self.personality);
        let results = in_threads(names, "of a parallel operation", |name| {
            let driver = crate::host::select(Some(driver), paths.clone())?;
            let no_builder: BuilderChoice = Box::new(|| {
                Err(Error::Unsupported(
                    "a parallel operation builds nothing".into(),
                ))
            });
            op(
                &Manager::new(paths.clone(), personality, no_builder, driver),
                name,
            )
        });
        names
            .iter()
            .zip(results)
            .filter_map(|(name, r)| r.err().map(|e| (name.clone(), e)))
            .collect()
    }

    /// The first of `candidates` that no container and nothing of the host uses.
    pub fn free_network(&self, candidates: &[ipnet::Ipv4Net]) -> Result<ipnet::Ipv4Net> {
        store::used_addresses(&self.paths)?
            .free_network(candidates)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "no free network for a test among {} candidates (all have addresses in use)",
                    candidates.len()
                ))
            })
    }

    /// Make bridge `name` with `gateway` on it (idempotent).
    pub fn add_bridge(&self, name: &str, gateway: ipnet::Ipv4Net) -> Result<()> {
        require_root()?;
        crate::host::net::add_bridge(name, gateway)
    }

    /// Set the host side of running container `name`'s link down (`up` false) or up: its
    /// bridge port (`vb-NAME`) or its veth (`ve-NAME`).
    pub fn set_link_up(&self, name: &ContainerName, up: bool) -> Result<()> {
        require_root()?;
        let conf = self.conf(name)?;
        self.leader(name)?;
        let link = if conf.non_empty("HOST_BRIDGE").is_some() {
            crate::host::net::bridge_port(name)
        } else {
            crate::host::net::host_link(name)
        };
        crate::host::net::set_link_up(&link, up)
    }

    /// The root of running container `name` as it sees it, its mounts included (`/tmp` is
    /// the container's own): `/proc/LEADER/root`, through [`Root`].
    fn live_root(&self, name: &ContainerName) -> Result<Root> {
        Root::open_process_root(self.leader(name)?)
    }

    /// Copy host file or directory `src` to `dst` inside running container `name`
    /// (directories recursively, modes kept; links below `src` are skipped).
    pub fn copy_in(&self, name: &ContainerName, src: &Path, dst: &Path) -> Result<()> {
        require_root()?;
        let root = self.live_root(name)?;
        copy_tree_in(&root, src, dst)
    }

    /// Copy file or directory `src` of running container `name` to host path `dst`; what the
    /// container has there is read through [`Root`] (its links resolve inside it).
    pub fn copy_out(&self, name: &ContainerName, src: &Path, dst: &Path) -> Result<()> {
        require_root()?;
        let root = self.live_root(name)?;
        copy_tree_out(&root, src, dst)
    }

    /// `ssh_host_ed25519_key.pub`, else the ECDSA one, of the container.
    pub fn host_key(&self, name: &ContainerName) -> Result<Option<String>> {
        self.require_exists(name)?;
        let root = Root::open(&self.paths.root(name))?;
        for key in ["ssh_host_ed25519_key.pub", "ssh_host_ecdsa_key.pub"] {
            if let Some(text) = root.read_string(Path::new("etc/ssh").join(key))? {
                // The key alone, as scripts compare or store it: no trailing newline.
                return Ok(Some(text.trim_end().to_string()));
            }
        }
        Ok(None)
    }
}

/// The configuration a create builds: the one given, else an empty one.
fn create_source(opts: &CreateOptions) -> ConfigSource {
    opts.config
        .clone()
        .unwrap_or(ConfigSource::Snippet(String::new()))
}

fn copy_tree_in(root: &Root, src: &Path, dst: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(src)
        .map_err(|e| Error::io(format!("reading {}", src.display()), e))?;
    let mode = meta.permissions().mode() & 0o7777;
    if meta.is_dir() {
        root.ensure_dir(dst, mode)?;
        let entries = std::fs::read_dir(src)
            .map_err(|e| Error::io(format!("listing {}", src.display()), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(format!("listing {}", src.display()), e))?;
            let name = entry.file_name();
            copy_tree_in(root, &src.join(&name), &dst.join(&name))?;
        }
        Ok(())
    } else if meta.is_file() {
        let contents =
            std::fs::read(src).map_err(|e| Error::io(format!("reading {}", src.display()), e))?;
        root.write(dst, &contents, mode)
    } else {
        Ok(())
    }
}

fn copy_tree_out(root: &Root, src: &Path, dst: &Path) -> Result<()> {
    match root.entry(src)? {
        Some(crate::files::Entry::Dir) => {
            crate::files::ensure_dir(dst, 0o755)?;
            for name in root.list(src)? {
                copy_tree_out(root, &src.join(&name), &dst.join(&name))?;
            }
            Ok(())
        }
        Some(entry @ (crate::files::Entry::File { .. } | crate::files::Entry::Symlink)) => {
            let mode = match entry {
                crate::files::Entry::File { mode } => mode & 0o7777,
                _ => 0o644,
            };
            let contents = root.read(src)?.unwrap_or_default();
            crate::files::write_atomic_bytes(dst, &contents, mode)
        }
        Some(_) => Ok(()),
        None => Err(Error::Usage(format!(
            "{}: no such file in the container",
            src.display()
        ))),
    }
}

/// `work` on each of `items`, each in a thread of its own, the results in the order of `items`;
/// a thread that panicked is an error naming `what` it was doing.
fn in_threads<T: Sync, R: Send>(
    items: &[T],
    what: &str,
    work: impl Fn(&T) -> Result<R> + Sync,
) -> Vec<Result<R>> {
    std::thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = items
            .iter()
            .map(|item| scope.spawn(move || work(item)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(Error::Unsupported(format!("a thread {what} panicked")))
                })
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;

    fn n(name: &str) -> ContainerName {
        ContainerName::parse(name).unwrap()
    }
    use crate::builder::generation::{ManagedFile, Unit};
    use crate::builder::native::{NativeBuilder, OptionModules};
    use crate::builder::options::Declarations;
    use crate::builder::plain::Value;
    use crate::host::fake::{FakeDriver, Log};

    /// Option modules for tests: each option `x = v` becomes a file `/etc/test/x` and a unit
    /// `x.service` holding `v`; an option `fail` fails the build.
    struct Modules;

    impl OptionModules for Modules {
        fn declarations(&self) -> Result<Declarations> {
            Ok(Declarations::accepting_anything())
        }

        fn realize(
            &self,
            _name: &str,
            config: &Value,
            _store: &crate::nixlang::Written,
        ) -> Result<Generation> {
            let mut generation = Generation::default();
            for (path, value) in config.leaves() {
                if path == "fail" {
                    return Err(Error::Build("the test configuration fails".into()));
                }
                let text = format!("{value:?}\n");
                generation.files.insert(
                    format!("/etc/test/{path}"),
                    ManagedFile::Text {
                        text: text.clone(),
                        mode: 0o644,
                    },
                );
                generation.units.insert(
                    format!("{path}.service"),
                    Unit {
                        text,
                        wanted_by: vec!["multi-user.target".into()],
                    },
                );
            }
            Ok(generation)
        }
    }

    /// A manager over a fresh state tree with the fake driver, or None when not root (the
    /// operations refuse non-root callers; CI runs the tests as root).
    fn manager() -> Option<(tempfile::TempDir, Manager, Rc<Log>)> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: the manager's operations need root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let (driver, log) = FakeDriver::new();
        let manager = Manager::new(
            Paths::under(dir.path()),
            Personality::Ncsh,
            Box::new(|| Ok(Box::new(NativeBuilder::new(Box::new(Modules))) as Box<dyn Builder>)),
            Box::new(driver),
        );
        Some((dir, manager, log))
    }

    fn snippet(text: &str) -> UpdateOptions {
        UpdateOptions {
            config: Some(ConfigSource::Snippet(text.into())),
            ..Default::default()
        }
    }

    fn current(manager: &Manager, name: &str) -> (Option<u64>, Vec<u64>) {
        let root = Root::open(&manager.paths.root(name)).unwrap();
        let store = Store::new(&root);
        (store.current_number(), store.numbers().unwrap())
    }

    #[test]
    fn start_hands_the_conf_to_the_driver() {
        let Some((_dir, m, log)) = manager() else {
            return;
        };
        m.create(&n("foo"), &CreateOptions::default()).unwrap();
        assert!(log.calls().is_empty(), "create does not touch the driver");
        m.start(&n("foo")).unwrap();
        assert_eq!(log.calls(), ["start foo 10.233.1.2"]);
        assert_eq!(m.status(&n("foo")).unwrap(), Status::Up);
        assert_eq!(m.start(&n("nope")).unwrap_err().kind(), "NotFound");
        assert_eq!(
            log.calls().len(),
            1,
            "no driver call for a missing container"
        );
    }

    #[test]
    fn create_all_builds_at_once_and_makes_the_containers_in_order() {
        let Some((dir, m, log)) = manager() else {
            return;
        };
        let opts = |local: &str| CreateOptions {
            host_address: Some("10.233.9.1".into()),
            local_address: Some(local.into()),
            ..CreateOptions::default()
        };
        let nodes = [(n("ca"), opts("10.233.9.2")), (n("cb"), opts("10.233.9.3"))];
        let (created, failure) = m.create_all(&nodes);
        assert!(failure.is_none(), "{failure:?}");
        let names: Vec<&str> = created.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["ca", "cb"]);
        assert_eq!(m.ip(&n("cb")).unwrap(), "10.233.9.3");
        assert!(m.paths.root("ca").join("etc/os-release").exists());
        assert!(log.calls().is_empty(), "create does not touch the driver");
        // The second one's address is ca's: cc is made, cd refused, ce's root removed.
        let nodes = [
            (n("cc"), opts("10.233.9.4")),
            (n("cd"), opts("10.233.9.2")),
            (n("ce"), opts("10.233.9.5")),
        ];
        let (created, failure) = m.create_all(&nodes);
        assert_eq!(created.len(), 1);
        assert_eq!(created[0].name.as_str(), "cc");
        let (index, e) = failure.unwrap();
        assert_eq!((index, e.kind()), (1, "AddressInUse"), "{e}");
        assert!(!m.exists(&n("cd")) && !m.exists(&n("ce")));
        let left: Vec<String> = std::fs::read_dir(&m.paths.state_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let mut left = left;
        left.sort();
        assert_eq!(left, ["ca", "cb", "cc"], "no other root, no debris");
        drop(dir);
    }

    #[test]
    fn update_of_a_running_container_reloads_it_and_then_makes_the_generation_current() {
        let Some((_dir, m, log)) = manager() else {
            return;
        };
        m.create(&n("foo"), &CreateOptions::default()).unwrap();
        m.update(&n("foo"), &snippet("motd = \"a\";")).unwrap();
        assert!(
            log.calls().is_empty(),
            "a stopped container is not reloaded"
        );
        m.start(&n("foo")).unwrap();
        m.update(&n("foo"), &snippet("motd = \"b\";")).unwrap();
        assert_eq!(log.calls(), ["start foo 10.233.1.2", "reload foo"]);
        assert_eq!(current(&m, "foo"), (Some(3), vec![1, 2, 3]));
        let root = Root::open(&m.paths.root("foo")).unwrap();
        assert_eq!(
            root.read_string("/etc/test/motd").unwrap().as_deref(),
            Some("String(\"b\")\n")
        );
        assert!(
            root.read("var/lib/ncsh/switch-pending.json")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_failed_reload_puts_the_previous_generation_back() {
        let Some((_dir, m, log)) = manager() else {
            return;
        };
        m.create(&n("foo"), &CreateOptions::default()).unwrap();
        m.update(&n("foo"), &snippet("motd = \"a\";")).unwrap();
        m.start(&n("foo")).unwrap();
        let root = Root::open(&m.paths.root("foo")).unwrap();
        let config = root.read_string(configuration_nix::PATH).unwrap();
        log.fail_reload.set(true);
        let err = m.update(&n("foo"), &snippet("motd = \"b\";")).unwrap_err();
        assert_eq!(err.kind(), "ReloadFailed");
        // The failed switch, then the switch back to the previous generation.
        assert_eq!(
            log.calls(),
            ["start foo 10.233.1.2", "reload foo", "reload foo"]
        );
        assert_eq!(current(&m, "foo"), (Some(2), vec![1, 2]));
        assert_eq!(
            root.read_string("/etc/test/motd").unwrap().as_deref(),
            Some("String(\"a\")\n")
        );
        assert_eq!(root.read_string(configuration_nix::PATH).unwrap(), config);
        assert!(
            root.read(crate::builder::generation::ACTIVATING)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_failed_build_changes_nothing_and_never_reaches_the_driver() {
        let Some((dir, m, log)) = manager() else {
            return;
        };
        let opts = CreateOptions {
            config: Some(ConfigSource::Snippet("fail = true;".into())),
            ..Default::default()
        };
        assert_eq!(
            m.create(&n("foo"), &opts).unwrap_err().kind(),
            "BuildFailed"
        );
        assert!(!m.exists(&n("foo")) && !m.paths.root("foo").exists());
        m.create(&n("bar"), &CreateOptions::default()).unwrap();
        let err = m.update(&n("bar"), &snippet("fail = true;")).unwrap_err();
        assert_eq!(err.kind(), "BuildFailed");
        assert_eq!(current(&m, "bar"), (Some(1), vec![1]));
        assert!(log.calls().is_empty());
        drop(dir);
    }

    #[test]
    fn destroy_terminates_a_running_container_then_removes_it() {
        let Some((_dir, m, log)) = manager() else {
            return;
        };
        m.create(&n("foo"), &CreateOptions::default()).unwrap();
        m.start(&n("foo")).unwrap();
        m.destroy(&n("foo")).unwrap();
        assert_eq!(
            log.calls(),
            [
                "start foo 10.233.1.2",
                "terminate foo",
                "remove_runtime foo"
            ]
        );
        assert!(!m.exists(&n("foo")) && !m.paths.root("foo").exists());
        m.destroy(&n("foo")).unwrap();
        assert_eq!(
            log.calls().len(),
            3,
            "destroying nothing asks the driver nothing"
        );
    }
}
