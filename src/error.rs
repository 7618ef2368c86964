//! The one error type of the domain and the drivers.
//!
//! Every variant renders the message `nixos-container` prints for the same situation (reference
//! §3), so the CLI can stay byte-compatible; `hint` adds what ncsh says on top of that (what to do).
//! `kind` is the stable name scripts see in `catch (e) { e.kind }`.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no container name specified")]
    NoName,
    #[error("invalid container name")]
    InvalidName { name: String, reason: String },
    #[error("container name ‘{0}’ is too long")]
    NameTooLong(String),
    #[error("container ‘{0}’ already exists")]
    AlreadyExists(String),
    #[error("container ‘{0}’ does not exist")]
    NotFound(String),
    #[error("unable to get container's main PID")]
    NotRunning(String),
    #[error("out of IP addresses")]
    OutOfAddresses,
    #[error("invalid address ‘{value}’ for {flag}: {reason}")]
    InvalidAddress {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error("address {address} is already used by container ‘{owner}’")]
    AddressInUse { address: String, owner: String },
    #[error("{0}")]
    Usage(String),
    #[error("unknown action ‘{0}’")]
    UnknownAction(String),
    /// No declared option is named so or starts so (`ncsh options PREFIX`).
    #[error("there is no option ‘{prefix}’ nor any below it")]
    UnknownOption {
        prefix: String,
        suggestions: Vec<String>,
    },
    #[error("cannot destroy declarative container (remove it from your configuration.nix instead)")]
    Declarative(String),
    #[error("cannot get IP address")]
    NoAddress(String),
    #[error("{tool} not found: install the Debian package ‘{package}’")]
    MissingTool { tool: String, package: &'static str },
    #[error("this operation needs root (run it with sudo)")]
    NotRoot,
    #[error("{0}")]
    Unsupported(String),
    #[error("failed to start container")]
    StartFailed { name: String, detail: String },
    #[error("failed to stop container")]
    StopFailed { name: String, detail: String },
    /// The unit's reload (and so the switch inside) failed (systemd driver).
    #[error("failed to reload container")]
    ReloadFailed { name: String, detail: String },
    #[error("malformed {path}:{line}: {reason}")]
    MalformedConf {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// A configuration that cannot be built (with its file:line:column when it has one).
    #[error("{0}")]
    Build(String),
    /// An option module's error in its `build` (`at`: " (line L, column C)" in the module, or
    /// empty); its message starts with the option's path when it is about a value.
    #[error("option module ‘{module}’{at}: {message}")]
    OptionModule {
        module: String,
        at: String,
        message: String,
    },
    /// A failed Nix build: nixos-container's message, and the command with its last log lines.
    #[error("{message}")]
    NixBuild { message: String, log: String },
    #[error("failed to switch the running container: {0}")]
    Switch(String),
    /// An update that failed after it had changed the container, which was then put back to
    /// generation `to` (None: to no generation, the container had none before).
    /// The note goes after the hint when the error has one, else after the message.
    #[error("{}", rolled_back_message(error, *to))]
    RolledBack { error: Box<Error>, to: Option<u64> },
    /// The system bus or systemd could not be reached, or refused a call (systemd driver).
    #[error("cannot talk to systemd over D-Bus: {0}")]
    Bus(String),
    /// systemd-machined is not running (and not activatable) on a systemd host.
    #[error("systemd-machined is not available: {0}")]
    Machined(String),
    /// machined could not open a login (it starts a getty through the container's own bus).
    #[error("machined could not open a login on ‘{name}’: {detail}")]
    Login { name: String, detail: String },
    /// A command given to run in a container that could not be started: not found (exit
    /// status 127, as a shell), or found but not executable (126).
    #[error("{program}: {}", if *not_found { "command not found" } else { "permission denied (not an executable file)" })]
    CommandNotRun { program: String, not_found: bool },
    /// A test driver step failed (`succeed`, a `wait_*` that timed out): what ran, on which
    /// node, and what it printed.
    #[error("{0}")]
    TestFailed(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Sys { context: String, source: nix::Error },
}

/// What an update that was undone says after its error.
fn rolled_back(to: Option<u64>) -> String {
    match to {
        Some(n) => format!("rolled back to generation {n}, which is active again"),
        None => "rolled back to the system before the update".to_string(),
    }
}

fn rolled_back_message(error: &Error, to: Option<u64>) -> String {
    match error.hint() {
        Some(_) => error.to_string(),
        None => format!("{error}\n{}", rolled_back(to)),
    }
}

/// nixos-container's words when both `--config` and `--config-file` are given.
pub const CONFIG_AND_CONFIG_FILE: &str = "--config and --config-file are mutually incompatible. Please define one or the other, but not both";

impl Error {
    /// The stable name of this error for scripts.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NoName | Error::Usage(_) | Error::UnknownAction(_) => "Usage",
            Error::InvalidName { .. } | Error::NameTooLong(_) => "InvalidName",
            Error::AlreadyExists(_) => "AlreadyExists",
            Error::UnknownOption { .. } => "UnknownOption",
            Error::NotFound(_) => "NotFound",
            Error::NotRunning(_) => "NotRunning",
            Error::OutOfAddresses => "OutOfAddresses",
            Error::InvalidAddress { .. } => "InvalidAddress",
            Error::AddressInUse { .. } => "AddressInUse",
            Error::Declarative(_) => "Declarative",
            Error::NoAddress(_) => "NoAddress",
            Error::MissingTool { .. } => "MissingTool",
            Error::NotRoot => "NotRoot",
            Error::Unsupported(_) => "Unsupported",
            Error::StartFailed { .. } => "StartFailed",
            Error::StopFailed { .. } => "StopFailed",
            Error::ReloadFailed { .. } => "ReloadFailed",
            Error::MalformedConf { .. } => "MalformedConf",
            Error::Build(_) | Error::OptionModule { .. } | Error::NixBuild { .. } => "BuildFailed",
            Error::Switch(_) => "SwitchFailed",
            Error::RolledBack { error, .. } => error.kind(),
            Error::Bus(_) => "Bus",
            Error::Machined(_) => "Machined",
            Error::Login { .. } => "LoginFailed",
            Error::CommandNotRun {
                not_found: true, ..
            } => "CommandNotFound",
            Error::CommandNotRun { .. } => "CommandNotExecutable",
            Error::TestFailed(_) => "TestFailed",
            Error::Io { .. } | Error::Sys { .. } => "System",
        }
    }

    /// What ncsh adds after the nixos-container message: the why and what to do.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::InvalidName { name, reason } => Some(format!("‘{name}’: {reason}")),
            Error::NotFound(_) => Some("see `ncsh list` for the containers that exist".into()),
            Error::UnknownOption { suggestions, .. } if !suggestions.is_empty() => {
                Some(format!("did you mean {}?", suggestions.join(", ")))
            }
            Error::UnknownOption { .. } => Some("`ncsh options` lists every option".into()),
            Error::NotRunning(name) => Some(format!("container ‘{name}’ is not running; start it with `ncsh start {name}`")),
            Error::Login { name, .. } => Some(format!("machined starts the getty through the container's own D-Bus, which must be running in it: see `ncsh run {name} -- systemctl status dbus.socket`")),
            Error::NameTooLong(_) => Some("nixos-container allows at most 11 characters (the host link is ve-NAME); ncsh itself allows up to 64".into()),
            Error::OutOfAddresses => Some("every 10.233.N.1/10.233.N.2 pair (or, on a host with IPv6, every pair of its fd…/64) is taken; pass --host-address and --local-address".into()),
            Error::StartFailed { detail, .. }
            | Error::StopFailed { detail, .. }
            | Error::ReloadFailed { detail, .. } => Some(detail.clone()),
            Error::NixBuild { log, .. } => Some(log.clone()),
            Error::RolledBack { error, to } => error
                .hint()
                .map(|hint| format!("{hint}\n{}", rolled_back(*to))),
            _ => None,
        }
    }

    /// The exit status this error ends a command line with, when it is not 1: a command that
    /// could not be run exits as a shell would.
    pub fn exit_status(&self) -> Option<i32> {
        match self {
            Error::RolledBack { error, .. } => error.exit_status(),
            Error::CommandNotRun { not_found, .. } => Some(if *not_found { 127 } else { 126 }),
            _ => None,
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub fn sys(context: impl Into<String>, source: nix::Error) -> Self {
        Error::Sys {
            context: context.into(),
            source,
        }
    }
}

/// Attach a context line to I/O and syscall results.
pub trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(what(), e))
    }
}

impl<T> Context<T> for nix::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::sys(what(), e))
    }
}
