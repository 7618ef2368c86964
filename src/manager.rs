//! The operations on containers, as one place the CLI verbs, scripts and the REPL all go
//! through: the domain (`container`) plus a host driver. No Rhai here.

use std::io::IsTerminal;
use std::process::Output;

use crate::container::{Conf, CreateOptions, Created, Paths, address, name, store};
use crate::error::{Error, Result};
use crate::host::standalone::Standalone;
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
    pub paths: Paths,
    pub personality: Personality,
    driver: Box<dyn Driver>,
}

impl Manager {
    pub fn new(paths: Paths, personality: Personality) -> Manager {
        let driver = Box::new(Standalone::new(paths.clone()));
        Manager {
            paths,
            personality,
            driver,
        }
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

    pub fn create(&self, name: &str, opts: &CreateOptions) -> Result<Created> {
        require_root()?;
        let mut opts = opts.clone();
        if self.personality == Personality::NixosContainer {
            opts.max_name_len = Some(name::NIXOS_CONTAINER_MAX_LEN);
        }
        store::create(&self.paths, name, &opts)
    }

    pub fn start(&self, name: &str) -> Result<()> {
        require_root()?;
        let conf = self.conf(name)?;
        self.driver.start(name, &conf)
    }

    pub fn stop(&self, name: &str) -> Result<()> {
        require_root()?;
        self.conf(name)?;
        self.driver.stop(name)
    }

    pub fn restart(&self, name: &str) -> Result<()> {
        self.stop(name)?;
        self.start(name)
    }

    pub fn terminate(&self, name: &str) -> Result<()> {
        require_root()?;
        self.conf(name)?;
        self.driver.terminate(name)
    }

    pub fn status(&self, name: &str) -> Result<Status> {
        self.conf(name)?;
        Ok(self.driver.status(name))
    }

    pub fn leader(&self, name: &str) -> Result<i32> {
        self.conf(name)?;
        self.driver
            .leader(name)
            .ok_or_else(|| Error::NotRunning(name.to_string()))
    }

    /// The container's address as `show-ip` prints it: LOCAL_ADDRESS without its prefix, else
    /// LOCAL_ADDRESS6.
    pub fn ip(&self, name: &str) -> Result<String> {
        let conf = self.conf(name)?;
        ["LOCAL_ADDRESS", "LOCAL_ADDRESS6"]
            .iter()
            .find_map(|k| conf.non_empty(k).and_then(address::bare))
            .map(|a| a.to_string())
            .ok_or_else(|| Error::NoAddress(name.to_string()))
    }

    pub fn host_ip(&self, name: &str) -> Result<Option<String>> {
        let conf = self.conf(name)?;
        Ok(["HOST_ADDRESS", "HOST_ADDRESS6"]
            .iter()
            .find_map(|k| conf.non_empty(k).and_then(address::bare))
            .map(|a| a.to_string()))
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

    pub fn run_attached(&self, name: &str, argv: &[String]) -> Result<i32> {
        require_root()?;
        enter::run_attached(self.leader(name)?, argv)
    }

    /// `/bin/login` on a terminal allocated inside the container, relayed to the caller's
    /// terminal (or stdin and stdout); login's exit code.
    pub fn login(&self, name: &str) -> Result<i32> {
        require_root()?;
        pty::login(self.leader(name)?)
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
        self.conf(name)?;
        let ssh = self.paths.root(name).join("etc/ssh");
        Ok(["ssh_host_ed25519_key.pub", "ssh_host_ecdsa_key.pub"]
            .iter()
            .map(|f| ssh.join(f))
            .find(|p| p.is_file())
            .and_then(|p| std::fs::read_to_string(p).ok()))
    }
}
