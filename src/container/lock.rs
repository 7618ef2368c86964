//! Exclusive `flock`s: the create lock on `/run/lock/nixos-container`, as nixos-container takes,
//! and one lock per container (`RUN/.NAME.lock`) that start, stop, terminate, update and destroy
//! hold, so that they run one after the other.
//!
//! A lock file is opened with `O_NOFOLLOW` and must be a regular file of ours: a link planted at
//! its path never makes ncsh create or lock its target. It is made mode 0600, so that no other
//! user can open it to hold the lock.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::paths::Paths;
use crate::error::{Error, Result};

/// Held until dropped.
pub struct CreateLock {
    _lock: Flock<File>,
}

impl CreateLock {
    /// Wait for the create lock; when another process holds it, say so once on stderr.
    pub fn acquire(path: &Path) -> Result<CreateLock> {
        let lock = lock_file(path, Some("the create lock"))?;
        Ok(CreateLock { _lock: lock })
    }
}

/// The lock of one container; its file goes when the container does (see [`Drop`]).
pub struct ContainerLock {
    path: PathBuf,
    conf: PathBuf,
    root: PathBuf,
    _lock: Flock<File>,
}

impl ContainerLock {
    /// Wait (silently, like a second `systemctl start`) until no other ncsh acts on `name`.
    pub fn acquire(paths: &Paths, name: &str) -> Result<ContainerLock> {
        let path = container_lock_path(paths, name);
        let lock = lock_file(&path, None)?;
        Ok(ContainerLock {
            path,
            conf: paths.conf(name),
            root: paths.root(name),
            _lock: lock,
        })
    }
}

impl Drop for ContainerLock {
    /// A container without conf and root (destroyed, or never made) keeps no lock file: it is
    /// unlinked while still held, and whoever waits on it locks a new one (see [`lock_file`]).
    fn drop(&mut self) {
        if !self.conf.exists() && std::fs::symlink_metadata(&self.root).is_err() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Where the lock of container `name` lives.
pub fn container_lock_path(paths: &Paths, name: &str) -> PathBuf {
    paths.run_dir.join(format!(".{name}.lock"))
}

/// Open `path` (created 0600 if missing, never through a symlink) and take an exclusive flock.
/// With `announce`, a lock held by another process is reported once on stderr before waiting.
/// A file unlinked by its holder (a destroy) is not the lock any more: then the new one is taken.
fn lock_file(path: &Path, announce: Option<&str>) -> Result<Flock<File>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    let mut announced = false;
    loop {
        let file = open_lock_file(path)?;
        let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((file, nix::errno::Errno::EWOULDBLOCK)) => {
                if let (Some(what), false) = (announce, announced) {
                    eprintln!("{}", waiting_message(what, path, &file));
                    announced = true;
                }
                Flock::lock(file, FlockArg::LockExclusive)
                    .map_err(|(_, e)| Error::sys(format!("could not lock {}", path.display()), e))?
            }
            Err((_, e)) => return Err(Error::sys(format!("could not lock {}", path.display()), e)),
        };
        let held = lock
            .metadata()
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        match std::fs::symlink_metadata(path) {
            Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => return Ok(lock),
            _ => continue,
        }
    }
}

fn open_lock_file(path: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                not_a_regular_file(path, "a symbolic link")
            } else if e.raw_os_error() == Some(libc::EISDIR) {
                not_a_regular_file(path, "not a regular file")
            } else {
                Error::io(format!("opening the lock file {}", path.display()), e)
            }
        })?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    if !meta.file_type().is_file() {
        return Err(not_a_regular_file(path, "not a regular file"));
    }
    // Another user's file they could chmod back: they could hold the lock at will.
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(not_a_regular_file(
            path,
            &format!("owned by uid {}, not by uid {me}", meta.uid()),
        ));
    }
    // Only the owner may open it, hence lock it (an old lock file may be world-readable).
    if meta.mode() & 0o077 != 0 {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(format!("chmod 0600 {}", path.display()), e))?;
    }
    Ok(file)
}

fn not_a_regular_file(path: &Path, what: &str) -> Error {
    Error::Usage(format!(
        "the lock file {} is {what}; remove it (ncsh only locks a regular file of its own)",
        path.display()
    ))
}

/// "waiting for the create lock PATH, held by PID N (COMM)", the holder from `/proc/locks`.
fn waiting_message(what: &str, path: &Path, file: &File) -> String {
    let holder = file.metadata().ok().and_then(|m| {
        let locks = std::fs::read_to_string("/proc/locks").ok()?;
        lock_holder(&locks, m.dev(), m.ino())
    });
    match holder {
        Some(pid) => {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let comm = comm.trim();
            let who = if comm.is_empty() {
                format!("PID {pid}")
            } else {
                format!("PID {pid} ({comm})")
            };
            format!("ncsh: waiting for {what} {}, held by {who}", path.display())
        }
        None => format!(
            "ncsh: waiting for {what} {}, held by another process",
            path.display()
        ),
    }
}

/// The PID holding a FLOCK on the file `dev`:`ino`, from the text of `/proc/locks`
/// (`1: FLOCK  ADVISORY  WRITE 1234 00:19:42 0 EOF`; the device is `MAJOR:MINOR` in hex).
fn lock_holder(locks: &str, dev: u64, ino: u64) -> Option<i32> {
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // Waiters are listed with "->" after the number; only holders name the file's owner.
        if fields.get(1) != Some(&"FLOCK") {
            return None;
        }
        let id = fields.get(5)?;
        let (maj, rest) = id.split_once(':')?;
        let (min, inode) = rest.split_once(':')?;
        let same = u64::from_str_radix(maj, 16).ok() == Some(nix::sys::stat::major(dev))
            && u64::from_str_radix(min, 16).ok() == Some(nix::sys::stat::minor(dev))
            && inode.parse::<u64>().ok() == Some(ino);
        same.then(|| fields.get(4)?.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_is_read_from_proc_locks() {
        let locks = "1: FLOCK  ADVISORY  WRITE 4242 00:1a:77 0 EOF\n\
                     1: -> FLOCK  ADVISORY  WRITE 99 00:1a:77 0 EOF\n\
                     2: POSIX  ADVISORY  WRITE 7 00:1a:78 0 EOF\n";
        let dev = nix::sys::stat::makedev(0, 0x1a);
        assert_eq!(lock_holder(locks, dev, 77), Some(4242));
        assert_eq!(lock_holder(locks, dev, 78), None);
    }

    #[test]
    fn a_symlink_at_the_lock_path_is_refused_and_its_target_not_made() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        let link = dir.path().join("lock");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = CreateLock::acquire(&link).err().unwrap();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(!target.exists());
        std::fs::create_dir(dir.path().join("d")).unwrap();
        let err = CreateLock::acquire(&dir.path().join("d")).err().unwrap();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }
}
