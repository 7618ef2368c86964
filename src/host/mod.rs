//! Host drivers: who supervises the container process. Today the standalone driver (ncsh
//! supervises systemd-nspawn itself); a systemd driver (units over D-Bus) is the other seam.

pub mod cgroup;
pub mod enter;
pub mod net;
pub mod nspawn;
pub mod pty;
pub mod standalone;

use crate::container::Conf;
use crate::error::Result;

/// What `status` reports, in nixos-container's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Up,
    Down,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Up => "up",
            Status::Down => "down",
        }
    }
}

pub trait Driver {
    fn name(&self) -> &'static str;
    /// Start and return once the container reached multi-user.target (a no-op when it is up).
    fn start(&self, name: &str, conf: &Conf) -> Result<()>;
    /// A clean poweroff, then a kill after the timeout; a no-op when it is down.
    fn stop(&self, name: &str) -> Result<()>;
    /// Kill at once; an error when it is not running.
    fn terminate(&self, name: &str) -> Result<()>;
    fn status(&self, name: &str) -> Status;
    /// The PID (in our namespace) of the container's PID 1, when running.
    fn leader(&self, name: &str) -> Option<i32>;
    /// Remove the runtime state of a stopped container (destroy).
    fn remove_runtime(&self, name: &str) -> Result<()>;
}
