//! The create lock: an exclusive `flock` on `/run/lock/nixos-container`, as nixos-container takes.

use std::fs::{File, OpenOptions};
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, Result};

/// Held until dropped.
pub struct CreateLock {
    _lock: Flock<File>,
}

impl CreateLock {
    pub fn acquire(path: &Path) -> Result<CreateLock> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        }
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| Error::sys(format!("could not lock {}", path.display()), e))?;
        Ok(CreateLock { _lock: lock })
    }
}
