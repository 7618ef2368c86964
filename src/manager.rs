//! The operations on containers, as one place the CLI verbs, scripts and the REPL all go
//! through: the domain (`container`), a host driver and a builder. No Rhai here: the native
//! builder (whose option modules are Rhai) is handed in by the caller.

use std::io::IsTerminal;
use std::path::Path;
use std::process::Output;

use crate::build::generation::Store;
use crate::build::switch::{self, Plan};
use crate::build::{BuildRequest, Builder, BuilderKind, Built, ConfigSource, NixOptions, activate};
use crate::container::{Conf, CreateOptions, Created, Paths, name, store};
use crate::error::{Context, Error, Result};
use crate::host::{Driver, Status, enter, pty};

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
    choose_builder: BuilderChoice,
}

/// How the manager picks its builder, when it first needs one.
pub type BuilderChoice = Box<dyn Fn() -> Result<Box<dyn Builder>>>;

/// Print `warning` on stderr, the first time this process has one for container `name`.
fn warn_once(name: &str, warning: Option<String>) {
    static WARNED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let Some(warning) = warning else { return };
    let mut warned = WARNED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !warned.iter().any(|n| n == name) {
        warned.push(name.to_string());
        eprintln!("{warning}");
    }
}

/// What a create or update builds from: the `--config`/`--config-file` options.
fn config_source(config: Option<&str>, config_file: Option<&Path>) -> Result<Option<ConfigSource>> {
    match (config, config_file) {
        (Some(_), Some(_)) => Err(Error::Usage(crate::error::CONFIG_AND_CONFIG_FILE.into())),
        (Some(text), None) => Ok(Some(ConfigSource::Snippet(text.to_string()))),
        (None, Some(file)) => {
            crate::container::config_file::check(file)?;
            // nixos-container imports the file by its absolute path, symlinks resolved.
            let abs = std::fs::canonicalize(file).map_err(|e| {
                let why = if e.kind() == std::io::ErrorKind::NotFound {
                    "no such file".to_string()
                } else {
                    e.to_string()
                };
                Error::Usage(format!("--config-file {}: {why}", file.display()))
            })?;
            Ok(Some(ConfigSource::File(abs)))
        }
        (None, None) => Ok(None),
    }
}

impl Manager {
    /// `driver` is the `--driver` flag, if given (see [`crate::host::select`]).
    pub fn new(
        paths: Paths,
        personality: Personality,
        choose_builder: BuilderChoice,
        driver: Option<&str>,
    ) -> Result<Manager> {
        let driver = crate::host::select(driver, paths.clone())?;
        Ok(Manager {
            in_place_entry: std::cell::Cell::new(false),
            paths,
            personality,
            driver,
            builder: std::cell::OnceCell::new(),
            choose_builder,
        })
    }

    fn builder(&self) -> Result<&dyn Builder> {
        if let Some(builder) = self.builder.get() {
            return Ok(builder.as_ref());
        }
        let chosen = (self.choose_builder)()?;
        Ok(self.builder.get_or_init(|| chosen).as_ref())
    }

    pub fn builder_name(&self) -> Result<&'static str> {
        Ok(match self.builder()?.kind() {
            crate::build::BuilderKind::Native => "native",
            crate::build::BuilderKind::Nix => "nix",
        })
    }

    pub fn driver_name(&self) -> &'static str {
        self.driver.name()
    }

    pub fn list(&self) -> Result<Vec<String>> {
        store::list(&self.paths)
    }

    pub fn exists(&self, name: &str) -> bool {
        store::exists(&self.paths, name)
    }

    /// The conf of an existing container (validates the name, NotFound otherwise).
    pub fn conf(&self, name: &str) -> Result<Conf> {
        store::load(&self.paths, name)
    }

    /// The same check without reading the conf, for operations that do not need it.
    pub fn require_exists(&self, name: &str) -> Result<()> {
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
    fn request(&self, name: &str, building: &Path, source: ConfigSource) -> BuildRequest {
        let mut request = BuildRequest::new(name, self.paths.root(name), source);
        request.config = building.join("etc/nixos/configuration.nix");
        request.profile = self.paths.profile(name);
        request
    }

    pub fn create(&self, name: &str, opts: &CreateOptions) -> Result<Created> {
        require_root()?;
        self.check_nix_options(&opts.nix)?;
        let mut opts = opts.clone();
        if self.personality == Personality::NixosContainer {
            opts.max_name_len = Some(name::NIXOS_CONTAINER_MAX_LEN);
        }
        let source = config_source(opts.config.as_deref(), opts.config_file.as_deref())?
            .unwrap_or(ConfigSource::Snippet(String::new()));
        if let ConfigSource::File(abs) = &source {
            opts.config_file = Some(abs.clone());
        }
        let nix_built = std::cell::Cell::new(None::<String>);
        // The first generation is built and applied into the new root before the conf exists.
        let realize = |building: &Path, name: &str| -> Result<()> {
            let mut request = self.request(name, building, source.clone());
            request.initial = true;
            request.nix = opts.nix.clone();
            if self.builder()?.kind() == BuilderKind::Nix {
                nix_built.set(Some(name.to_string()));
            }
            match self.builder()?.build(&request)? {
                Built::Generation(mut generation) => {
                    activate::apply(building, &generation, None)?;
                    let store = Store::new(building);
                    store.save_next(&mut generation)?;
                    store.set_current(generation.number)
                }
                Built::NixSystem(_) => Ok(()),
            }
        };
        let created = store::create(&self.paths, name, &opts, &realize);
        if let (Err(_), Some(name)) = (&created, nix_built.take()) {
            // nixos-container's clean-up: the profile and GC roots go with the root and conf.
            let _ = store::remove_path(&self.paths.profile(&name));
            let _ = store::remove_path(&self.paths.gcroots(&name));
        }
        created
    }

    /// Rebuild a container's system from `--config`, `--config-file` or (neither) its
    /// `configuration.nix`, make it the new generation and, when it runs, switch it live. A
    /// failure leaves the previous generation active and running, and the configuration as it was.
    pub fn update(
        &self,
        name: &str,
        config: Option<&str>,
        config_file: Option<&Path>,
        nix: &NixOptions,
    ) -> Result<()> {
        require_root()?;
        self.check_nix_options(nix)?;
        let conf = self.conf(name)?;
        let source = config_source(config, config_file)?.unwrap_or(ConfigSource::Existing);
        let root = self.paths.root(name);
        let config_path = root.join("etc/nixos/configuration.nix");
        let old_config = std::fs::read_to_string(&config_path).ok();
        let write_config = || match &source {
            ConfigSource::Snippet(text) => store::write_configuration(
                &root,
                name,
                crate::build::configuration_nix::Extra::Snippet(text),
            ),
            ConfigSource::File(file) => store::write_configuration(
                &root,
                name,
                crate::build::configuration_nix::Extra::Import(file),
            ),
            ConfigSource::Existing => Ok(()),
        };
        let restore_config = || {
            if let Some(text) = &old_config {
                let _ = store::write_atomic(&config_path, text, 0o644);
            }
        };
        if self.builder()?.kind() == BuilderKind::Nix {
            // nix-env builds the configuration.nix on disk: write it first (as nixos-container),
            // and put the old one back if the build fails.
            if nix.system_path.is_none() && nix.flake.is_none() {
                std::fs::create_dir_all(root.join("etc/nixos"))
                    .context(|| format!("creating {}/etc/nixos", root.display()))?;
                write_config()?;
            }
            let mut request = self.request(name, &root, source.clone());
            request.nix = nix.clone();
            request.conf_flake = conf.non_empty("FLAKE").map(str::to_string);
            match self.builder()?.build(&request) {
                Ok(Built::NixSystem(_)) => {}
                Ok(Built::Generation(_)) => return Ok(()),
                Err(e) => {
                    restore_config();
                    return Err(e);
                }
            }
            // As nixos-container: the new system is the profile's; a running container is
            // reloaded, which runs its `switch-to-configuration test`.
            if self.driver.status(name) == Status::Up {
                return self.reload(name, None);
            }
            return Ok(());
        }
        let request = self.request(name, &root, source.clone());
        let mut generation = match self.builder()?.build(&request)? {
            Built::Generation(generation) => generation,
            Built::NixSystem(_) => return Ok(()),
        };
        let store = Store::new(&root);
        let old = store.current()?;
        write_config()?;
        store.save_next(&mut generation)?;
        let running = self.driver.status(name) == Status::Up;
        let applied = activate::apply(&root, &generation, old.as_ref()).and_then(|changes| {
            if running {
                self.reload(name, Some(&Plan::new(&generation, &changes)))
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
            return Err(e);
        }
        store.set_current(generation.number)
    }

    /// Have running container `name` switch to its new system through the driver (under
    /// systemd, the reload of its unit), with `plan` pending for a native-built one. A failed
    /// reload's error carries what the switch inside said.
    fn reload(&self, name: &str, plan: Option<&Plan>) -> Result<()> {
        let root = self.paths.root(name);
        // An error left by an earlier reload is not this one's.
        let _ = switch::take_error(&root);
        if let Some(plan) = plan {
            plan.write(&root)?;
        }
        let reloaded = self.driver.reload(name, &|| {
            switch::run_pending(&self.paths, name, self.leader(name)?)
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
    pub fn options(&self, name: &str) -> Result<serde_json::Value> {
        self.require_exists(name)?;
        Ok(Store::new(&self.paths.root(name))
            .current()?
            .map(|g| g.options)
            .unwrap_or_default())
    }

    pub fn start(&self, name: &str) -> Result<()> {
        require_root()?;
        let conf = self.conf(name)?;
        warn_once(name, conf.unsupported_warning(&self.paths.conf(name)));
        self.driver.start(name, &conf)
    }

    pub fn stop(&self, name: &str) -> Result<()> {
        require_root()?;
        self.require_exists(name)?;
        self.driver.stop(name)
    }

    pub fn restart(&self, name: &str) -> Result<()> {
        self.stop(name)?;
        self.start(name)
    }

    pub fn terminate(&self, name: &str) -> Result<()> {
        require_root()?;
        self.require_exists(name)?;
        self.driver.terminate(name)
    }

    pub fn status(&self, name: &str) -> Result<Status> {
        self.require_exists(name)?;
        Ok(self.driver.status(name))
    }

    pub fn leader(&self, name: &str) -> Result<i32> {
        self.require_exists(name)?;
        self.driver
            .find_leader(name)?
            .ok_or_else(|| Error::NotRunning(name.to_string()))
    }

    /// The container's address as `show-ip` prints it ([`Conf::local_ip`]).
    pub fn ip(&self, name: &str) -> Result<String> {
        self.conf(name)?
            .local_ip()
            .ok_or_else(|| Error::NoAddress(name.to_string()))
    }

    pub fn host_ip(&self, name: &str) -> Result<Option<String>> {
        Ok(self.conf(name)?.host_ip())
    }

    /// Kill a running container, then remove everything it owns. A missing container is fine.
    pub fn destroy(&self, name: &str) -> Result<()> {
        name::validate(name)?;
        require_root()?;
        if !self.exists(name) {
            return Ok(());
        }
        store::check_destroyable(&self.paths, name)?;
        if self.driver.status(name) == Status::Up || self.driver.leader(name).is_some() {
            self.driver.terminate(name)?;
        }
        self.driver.remove_runtime(name)?;
        store::remove_files(&self.paths, name)
    }

    /// Let [`Manager::exec`] enter containers in this process: for a CLI verb, which ends
    /// right after (never for the REPL or a script, which go on on the host).
    pub fn allow_in_place_entry(&self) {
        self.in_place_entry.set(true);
    }

    /// Run `argv` in the container with stdio passed through, as the last thing this
    /// invocation does; the command's exit code.
    pub fn exec(&self, name: &str, argv: &[String]) -> Result<i32> {
        if !self.in_place_entry.get() {
            return self.run_attached(name, argv);
        }
        require_root()?;
        enter::run_attached_in_place(self.leader(name)?, argv)
    }

    pub fn run_attached(&self, name: &str, argv: &[String]) -> Result<i32> {
        require_root()?;
        enter::run_attached(self.leader(name)?, argv)
    }

    /// A login prompt of the container relayed to the caller's terminal (or stdin and stdout):
    /// `/bin/login` on a terminal allocated inside (login's exit code), or machined's getty
    /// under the systemd driver.
    pub fn login(&self, name: &str) -> Result<i32> {
        require_root()?;
        let leader = self.leader(name)?;
        self.driver.login(name, leader)
    }

    /// A root login shell: on a terminal inside the container when stdin is a terminal, else
    /// attached to stdin and stdout (the shell reads its commands from stdin); its exit code.
    pub fn root_login(&self, name: &str) -> Result<i32> {
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
        name: &str,
        argv: &[String],
        stdin: Option<&[u8]>,
    ) -> Result<Output> {
        require_root()?;
        enter::run_captured(self.leader(name)?, argv, stdin)
    }

    /// `ssh_host_ed25519_key.pub`, else the ECDSA one, of the container.
    pub fn host_key(&self, name: &str) -> Result<Option<String>> {
        self.require_exists(name)?;
        let ssh = self.paths.root(name).join("etc/ssh");
        Ok(["ssh_host_ed25519_key.pub", "ssh_host_ecdsa_key.pub"]
            .iter()
            .map(|f| ssh.join(f))
            .find(|p| p.is_file())
            .and_then(|p| std::fs::read_to_string(p).ok()))
    }
}
