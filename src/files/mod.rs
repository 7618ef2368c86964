//! File operations: the one place that writes, replaces and removes files (a leaf module: it
//! imports nothing of ncsh but the error type).
//!
//! Two kinds of paths, two doors:
//! - host paths that ncsh owns (the conf and state directories, the runtime directory, the lock):
//!   [`write_atomic`], [`write_durable`], [`ensure_dir`], [`remove_path`];
//! - paths below a container's root, which root inside the container controls: only through
//!   [`Root`], whose every lookup resolves inside the root and never follows a link out of it.
//!
//! Removal never follows a link and never crosses a mount point, on either side: removing a
//! container root cannot delete what a link or a bind mount inside it points to.

pub mod mountinfo;
mod root;

use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat, openat2, renameat};
use nix::sys::stat::{Mode, SFlag, fchmod, fstatat};
use nix::unistd::{UnlinkatFlags, unlinkat};

pub use root::{Entry, Root};

use crate::error::{Context, Error, Result};

/// Write `contents` to `path` atomically (a temporary file in the same directory, then rename):
/// readers see the old or the new file, never a part. Not synced to disk; see [`write_durable`].
pub fn write_atomic(path: &Path, contents: &str, mode: u32) -> Result<()> {
    let (dir, name) = open_host_parent(path)?;
    replace_at(&dir, name, contents.as_bytes(), mode, false, path)
}

/// [`write_atomic`] of bytes (a file copied out of a container).
pub fn write_atomic_bytes(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let (dir, name) = open_host_parent(path)?;
    replace_at(&dir, name, contents, mode, false, path)
}

/// [`write_atomic`], and on disk before it returns: for the conf, which makes a container exist.
/// (Syncing every file of a generation made `create` take 200 ms here for no gain.)
pub fn write_durable(path: &Path, contents: &str, mode: u32) -> Result<()> {
    let (dir, name) = open_host_parent(path)?;
    replace_at(&dir, name, contents.as_bytes(), mode, true, path)
}

/// Make `path` a symbolic link to `target`, replacing what is there (a temporary link in the
/// same directory, then rename): for links in host directories ncsh manages (unit wants).
pub fn replace_symlink(target: &Path, path: &Path) -> Result<()> {
    let (dir, name) = open_host_parent(path)?;
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    tmp.push(format!(".ncsh-tmp-{}", std::process::id()));
    let _ = unlinkat(&dir, tmp.as_os_str(), UnlinkatFlags::NoRemoveDir);
    nix::unistd::symlinkat(target, &dir, tmp.as_os_str())
        .context(|| format!("creating the link {}", path.display()))?;
    renameat(&dir, tmp.as_os_str(), &dir, name).map_err(|e| {
        let _ = unlinkat(&dir, tmp.as_os_str(), UnlinkatFlags::NoRemoveDir);
        Error::sys(format!("creating the link {}", path.display()), e)
    })
}

/// `mkdir -p DIR` with `mode` set on DIR (also when it existed), on the opened directory.
pub fn ensure_dir(dir: &Path, mode: u32) -> Result<()> {
    std::fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
    let fd = nix::fcntl::open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .context(|| format!("opening {}", dir.display()))?;
    fchmod(&fd, Mode::from_bits_truncate(mode)).context(|| format!("chmod {}", dir.display()))
}

/// Remove a path whatever it is, ignoring "not found"; a directory with all it holds, never
/// following a link and refusing to cross a mount point. The parent of `path` is a host path
/// ncsh owns (its links are followed); what is below `path` may be hostile.
pub fn remove_path(path: &Path) -> Result<()> {
    let (dir, name) = match open_host_parent(path) {
        Ok(parent) => parent,
        Err(Error::Sys {
            source: Errno::ENOENT,
            ..
        }) => return Ok(()),
        Err(e) => return Err(e),
    };
    remove_at(&dir, name, path)
}

/// The parent directory of a host path (opened, links followed) and the final name.
fn open_host_parent(path: &Path) -> Result<(OwnedFd, &OsStr)> {
    let name = path.file_name().ok_or_else(|| {
        Error::Usage(format!(
            "{}: not a path to a file or directory",
            path.display()
        ))
    })?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = nix::fcntl::open(
        parent,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .context(|| format!("opening {}", parent.display()))?;
    Ok((dir, name))
}

/// Replace `name` in `dir` with a new regular file holding `contents`, its mode set on the
/// descriptor: a temporary file made with `O_EXCL` (never through a link), then renamed over
/// `name` (which replaces a link itself, never its target). `shown` names it in errors.
fn replace_at(
    dir: &impl AsFd,
    name: &OsStr,
    contents: &[u8],
    mode: u32,
    durable: bool,
    shown: &Path,
) -> Result<()> {
    replace_owned_at(dir, name, contents, mode, None, durable, shown)
}

/// [`replace_at`], the new file given `owner` (before its mode: a change of owner clears the
/// set-user-ID and set-group-ID bits).
fn replace_owned_at(
    dir: &impl AsFd,
    name: &OsStr,
    contents: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
    durable: bool,
    shown: &Path,
) -> Result<()> {
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    tmp.push(format!(".ncsh-tmp-{}", std::process::id()));
    let create = || {
        openat(
            dir,
            tmp.as_os_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
    };
    // A temporary file a crash left (or anything planted under its name) is removed and the
    // file made again; only then, not before every file (a generation writes hundreds).
    let fd = match create() {
        Err(Errno::EEXIST) => {
            let _ = unlinkat(dir, tmp.as_os_str(), UnlinkatFlags::NoRemoveDir);
            create()
        }
        other => other,
    }
    .context(|| format!("creating a temporary file for {}", shown.display()))?;
    let result = (|| {
        let mut file = std::fs::File::from(fd);
        file.write_all(contents)
            .context(|| format!("writing {}", shown.display()))?;
        if let Some((uid, gid)) = owner {
            nix::unistd::fchown(
                &file,
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
            )
            .context(|| format!("chown {}", shown.display()))?;
        }
        fchmod(&file, Mode::from_bits_truncate(mode))
            .context(|| format!("chmod {}", shown.display()))?;
        if durable {
            file.sync_all()
                .context(|| format!("syncing {}", shown.display()))?;
        }
        renameat(dir, tmp.as_os_str(), dir, name).map_err(|e| match e {
            Errno::EISDIR | Errno::ENOTEMPTY | Errno::EEXIST => Error::Usage(format!(
                "{} is a directory; remove it or choose another path",
                shown.display()
            )),
            e => Error::sys(format!("replacing {}", shown.display()), e),
        })
    })();
    if result.is_err() {
        let _ = unlinkat(dir, tmp.as_os_str(), UnlinkatFlags::NoRemoveDir);
    }
    result
}

/// Remove `name` in `dir` whatever it is (see [`remove_path`]); "not found" is success.
fn remove_at(dir: &impl AsFd, name: &OsStr, shown: &Path) -> Result<()> {
    let stat = match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(stat) => stat,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(Error::sys(format!("inspecting {}", shown.display()), e)),
    };
    if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
        // The directory itself, opened without following a link or crossing into a mount.
        let how = OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
            .resolve(
                ResolveFlag::RESOLVE_BENEATH
                    | ResolveFlag::RESOLVE_NO_SYMLINKS
                    | ResolveFlag::RESOLVE_NO_XDEV,
            );
        let child = match openat2(dir, name, how) {
            Ok(child) => child,
            // Removed by someone else since we looked: what we wanted.
            Err(Errno::ENOENT) => return Ok(()),
            Err(Errno::EXDEV) => {
                return Err(Error::Usage(format!(
                    "refusing to remove {}: it is a mount point (unmount it first)",
                    shown.display()
                )));
            }
            Err(e) => return Err(Error::sys(format!("opening {}", shown.display()), e)),
        };
        // An immutable or append-only directory (NixOS's /var/empty) keeps its entries.
        clear_immutable(&child).context(|| format!("clearing the flags of {}", shown.display()))?;
        let mut listing =
            nix::dir::Dir::from_fd(child).context(|| format!("reading {}", shown.display()))?;
        let names: Vec<std::ffi::OsString> = listing
            .iter()
            .filter_map(|entry| entry.ok())
            .map(|entry| {
                use std::os::unix::ffi::OsStrExt;
                OsStr::from_bytes(entry.file_name().to_bytes()).to_os_string()
            })
            .filter(|n| n != "." && n != "..")
            .collect();
        for entry in &names {
            remove_at(&listing, entry, &shown.join(entry))?;
        }
        match unlinkat(dir, name, UnlinkatFlags::RemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(Error::sys(format!("removing {}", shown.display()), e)),
        }
    } else {
        let regular = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG;
        let mut removed = unlinkat(dir, name, UnlinkatFlags::NoRemoveDir);
        if removed == Err(Errno::EPERM) && regular {
            // An immutable or append-only file: its flags cleared through a descriptor of the
            // file itself (opened without following a link or crossing a mount), then again.
            let how = OpenHow::new()
                .flags(
                    OFlag::O_RDONLY
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_NONBLOCK
                        | OFlag::O_NOCTTY
                        | OFlag::O_CLOEXEC,
                )
                .resolve(
                    ResolveFlag::RESOLVE_BENEATH
                        | ResolveFlag::RESOLVE_NO_SYMLINKS
                        | ResolveFlag::RESOLVE_NO_XDEV,
                );
            if let Ok(file) = openat2(dir, name, how)
                && clear_immutable(&file) == Ok(true)
            {
                removed = unlinkat(dir, name, UnlinkatFlags::NoRemoveDir);
            }
        }
        match removed {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(Error::sys(format!("removing {}", shown.display()), e)),
        }
    }
}

/// `FS_IMMUTABLE_FL` and `FS_APPEND_FL` of linux/fs.h (`chattr +i`, `chattr +a`).
const UNREMOVABLE_FLAGS: libc::c_int = 0x10 | 0x20;

/// Clear the immutable and append-only flags of the open file `fd` (`chattr -i -a`), if it has
/// them; whether it had. A file system without these flags has none to clear; an error is one
/// of clearing them.
fn clear_immutable(fd: &impl AsFd) -> std::result::Result<bool, Errno> {
    use std::os::fd::AsRawFd;
    let raw = fd.as_fd().as_raw_fd();
    let mut flags: libc::c_int = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one int (the kernel's size, whatever the number says) to
    // the pointer, which points to a live int.
    if unsafe { libc::ioctl(raw, libc::FS_IOC_GETFLAGS, &mut flags) } != 0 {
        // No flags here (ENOTTY, EOPNOTSUPP, …): nothing to clear.
        return Ok(false);
    }
    if flags & UNREMOVABLE_FLAGS == 0 {
        return Ok(false);
    }
    flags &= !UNREMOVABLE_FLAGS;
    // SAFETY: FS_IOC_SETFLAGS reads one int from the pointer, which points to a live int.
    if unsafe { libc::ioctl(raw, libc::FS_IOC_SETFLAGS, &flags) } != 0 {
        return Err(Errno::last());
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn atomic_writes_replace_links_instead_of_following_them() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "secret").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        write_atomic(&link, "new", 0o755).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "secret");
        let meta = std::fs::symlink_metadata(&link).unwrap();
        assert!(meta.is_file() && meta.permissions().mode() & 0o7777 == 0o755);
        assert_eq!(
            std::fs::metadata(&victim).unwrap().permissions().mode() & 0o7777,
            0o600
        );
    }

    #[test]
    fn removal_does_not_follow_links() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), "x").unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("a/b")).unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("a/b/out")).unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("top")).unwrap();
        remove_path(&tree).unwrap();
        assert!(!tree.exists() && outside.join("keep").is_file());
        remove_path(&tree).unwrap();
        remove_path(&dir.path().join("no/such/thing")).unwrap();
    }

    #[test]
    fn removal_refuses_to_cross_a_mount_point() {
        if !nix::unistd::geteuid().is_root() {
            return; // bind mounts need root; the integration tests run as root
        }
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), "x").unwrap();
        let point = dir.path().join("tree/mnt");
        std::fs::create_dir_all(&point).unwrap();
        nix::mount::mount(
            Some(&outside),
            &point,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap();
        let result = remove_path(&dir.path().join("tree"));
        nix::mount::umount2(&point, nix::mount::MntFlags::MNT_DETACH).unwrap();
        let err = result.unwrap_err().to_string();
        assert!(err.contains("mount point"), "{err}");
        assert!(outside.join("keep").is_file());
    }
}
