//! [`Root`]: a container's root directory, opened once, and every file operation below it.
//!
//! Root inside a running container controls every path in its tree and may replace any of them
//! with a link, e.g. `/etc/systemd/system -> /host/etc`. Each path is therefore resolved by the
//! kernel with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` relative to the root's
//! descriptor: links are followed as the container sees them, and `..` or an absolute link never
//! leaves the root. The last component is then acted on through its parent's descriptor
//! (`*at` calls, `O_NOFOLLOW`, `O_EXCL`, rename over it), and modes and owners are set on open
//! descriptors, never by path.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat2, readlinkat, renameat};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, fstatat, mkdirat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, symlinkat, unlinkat};

use super::{remove_at, replace_at, replace_owned_at};
use crate::error::{Context, Error, Result};

/// The largest file read from a container root (a generation, a key, `/etc/passwd`).
const MAX_READ: u64 = 64 << 20;

/// What is at a path below a root (its last component not followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    File { mode: u32 },
    Dir,
    Symlink,
    Other,
}

/// An open container root; see the module docs.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

fn resolve_flags() -> ResolveFlag {
    ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS
}

/// A container path (`/etc/x` or `etc/x`) as a path relative to the root; `..` is refused.
fn relative(path: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(part) => out.push(part),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(Error::Usage(format!(
                    "‘{}’ is not a usable path in a container (absolute, no ‘..’)",
                    path.display()
                )));
            }
        }
    }
    Ok(out)
}

fn kind_of(stat: &FileStat) -> Entry {
    let kind = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
    if kind == SFlag::S_IFREG {
        Entry::File {
            mode: stat.st_mode & 0o7777,
        }
    } else if kind == SFlag::S_IFDIR {
        Entry::Dir
    } else if kind == SFlag::S_IFLNK {
        Entry::Symlink
    } else {
        Entry::Other
    }
}

impl Root {
    /// Open the root directory at `path` (a host path ncsh owns; it must not be a link).
    pub fn open(path: &Path) -> Result<Root> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .context(|| format!("opening the container root {}", path.display()))?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The root directory of process `pid` as that process sees it (`/proc/PID/root`): a
    /// running container's root with the container's own mounts (its `/tmp`), resolved from
    /// there like any root.
    pub fn open_process_root(pid: i32) -> Result<Root> {
        // The trailing `.` follows the magic link to the directory it names.
        Root::open(Path::new(&format!("/proc/{pid}/root/.")))
    }

    /// Make the root directory (`mkdir -p`, `mode` on it) and open it.
    pub fn create(path: &Path, mode: u32) -> Result<Root> {
        super::ensure_dir(path, mode)?;
        Root::open(path)
    }

    /// The root's host path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The host path of a container path, for messages.
    pub fn host_path(&self, path: impl AsRef<Path>) -> PathBuf {
        self.path
            .join(path.as_ref().strip_prefix("/").unwrap_or(path.as_ref()))
    }

    fn open_at(&self, rel: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
        let target: &Path = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .resolve(resolve_flags());
        openat2(&self.fd, target, how)
    }

    /// The parent directory of `path` (opened, inside the root) and the last component.
    fn parent(&self, path: &Path) -> Result<Option<(OwnedFd, OsString)>> {
        let rel = relative(path)?;
        let Some(name) = rel.file_name().map(OsStr::to_os_string) else {
            return Err(Error::Usage(format!(
                "‘{}’ names the container root itself, not a file in it",
                path.display()
            )));
        };
        let parent = rel.parent().unwrap_or(Path::new(""));
        match self.open_at(parent, OFlag::O_PATH | OFlag::O_DIRECTORY) {
            Ok(fd) => Ok(Some((fd, name))),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(Error::sys(
                format!("opening {}", self.host_path(parent).display()),
                e,
            )),
        }
    }

    /// `mkdir -p`: the directory at `rel` (opened for reading), made with missing parents.
    /// Directories it makes get mode 0755, the last one `mode`; existing ones are left as they
    /// are. Returns whether the last one was made.
    fn make_dirs(&self, rel: &Path, mode: u32) -> Result<(OwnedFd, bool)> {
        let open = |rel: &Path| self.open_at(rel, OFlag::O_RDONLY | OFlag::O_DIRECTORY);
        let shown = |rel: &Path| self.host_path(rel).display().to_string();
        match open(rel) {
            Ok(fd) => return Ok((fd, false)),
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(Error::sys(format!("opening {}", shown(rel)), e)),
        }
        let mut dir = open(Path::new("")).context(|| format!("opening {}", shown(rel)))?;
        let mut prefix = PathBuf::new();
        let mut made = false;
        let last = rel.components().count();
        for (i, part) in rel.components().enumerate() {
            prefix.push(part);
            made = false;
            dir = match open(&prefix) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => {
                    let mode = if i + 1 == last { mode } else { 0o755 };
                    match mkdirat(&dir, part.as_os_str(), Mode::from_bits_truncate(0o700)) {
                        Ok(()) => made = true,
                        Err(Errno::EEXIST) => {}
                        Err(e) => {
                            return Err(Error::sys(format!("creating {}", shown(&prefix)), e));
                        }
                    }
                    let fd = open(&prefix).map_err(|e| match e {
                        // mkdir found something that does not resolve inside the root.
                        Errno::ENOENT => Error::Usage(format!(
                            "{} is a link to a path that does not exist in the container; \
                             remove the link (inside the container) and try again",
                            shown(&prefix)
                        )),
                        e => Error::sys(format!("opening {}", shown(&prefix)), e),
                    })?;
                    if made {
                        fchmod(&fd, Mode::from_bits_truncate(mode))
                            .context(|| format!("chmod {}", shown(&prefix)))?;
                    }
                    fd
                }
                Err(e) => return Err(Error::sys(format!("opening {}", shown(&prefix)), e)),
            };
        }
        Ok((dir, made))
    }

    /// `mkdir -p DIR` with `mode` set on DIR (also when it existed).
    pub fn ensure_dir(&self, path: impl AsRef<Path>, mode: u32) -> Result<()> {
        let rel = relative(path.as_ref())?;
        let (dir, _) = self.make_dirs(&rel, mode)?;
        fchmod(&dir, Mode::from_bits_truncate(mode))
            .context(|| format!("chmod {}", self.host_path(&rel).display()))
    }

    /// `mkdir -p DIR`; a directory made gets `mode` and `owner`; an existing one is left alone.
    pub fn create_dir_owned(
        &self,
        path: impl AsRef<Path>,
        mode: u32,
        owner: (u32, u32),
    ) -> Result<()> {
        let rel = relative(path.as_ref())?;
        let (dir, made) = self.make_dirs(&rel, mode)?;
        if made {
            fchown(
                &dir,
                Some(Uid::from_raw(owner.0)),
                Some(Gid::from_raw(owner.1)),
            )
            .context(|| format!("chown {}", self.host_path(&rel).display()))?;
        }
        Ok(())
    }

    /// Write a regular file atomically (see [`super::write_atomic`]), making missing parents.
    pub fn write(&self, path: impl AsRef<Path>, contents: &[u8], mode: u32) -> Result<()> {
        let rel = relative(path.as_ref())?;
        let name = rel.file_name().ok_or_else(|| {
            Error::Usage(format!("‘{}’ is not a file path", path.as_ref().display()))
        })?;
        let (dir, _) = self.make_dirs(rel.parent().unwrap_or(Path::new("")), 0o755)?;
        replace_at(&dir, name, contents, mode, false, &self.host_path(&rel))
    }

    /// [`Root::write`] of a file owned by `owner` (uid, gid).
    pub fn write_owned(
        &self,
        path: impl AsRef<Path>,
        contents: &[u8],
        mode: u32,
        owner: (u32, u32),
    ) -> Result<()> {
        let rel = relative(path.as_ref())?;
        let name = rel.file_name().ok_or_else(|| {
            Error::Usage(format!("‘{}’ is not a file path", path.as_ref().display()))
        })?;
        let (dir, _) = self.make_dirs(rel.parent().unwrap_or(Path::new("")), 0o755)?;
        let shown = self.host_path(&rel);
        replace_owned_at(&dir, name, contents, mode, Some(owner), false, &shown)
    }

    /// The owner (uid, gid) and mode (permission bits) of what is at `path`, its last
    /// component not followed (a link's own); None when nothing is.
    pub fn owner_and_mode(&self, path: impl AsRef<Path>) -> Result<Option<((u32, u32), u32)>> {
        let Some((dir, name)) = self.parent(path.as_ref())? else {
            return Ok(None);
        };
        match fstatat(&dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(((stat.st_uid, stat.st_gid), stat.st_mode & 0o7777))),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(Error::sys(
                format!("inspecting {}", self.host_path(path).display()),
                e,
            )),
        }
    }

    /// Give what is at `path` the owner (uid, gid): a link itself, never what it points to.
    pub fn set_owner(&self, path: impl AsRef<Path>, owner: (u32, u32)) -> Result<()> {
        let shown = || self.host_path(path.as_ref()).display().to_string();
        let (dir, name) = self
            .parent(path.as_ref())?
            .ok_or_else(|| Error::Usage(format!("{}: no such file", shown())))?;
        nix::unistd::fchownat(
            &dir,
            name.as_os_str(),
            Some(Uid::from_raw(owner.0)),
            Some(Gid::from_raw(owner.1)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .context(|| format!("chown {}", shown()))
    }

    /// What is at `path`, its last component not followed; None when nothing is.
    pub fn entry(&self, path: impl AsRef<Path>) -> Result<Option<Entry>> {
        let Some((dir, name)) = self.parent(path.as_ref())? else {
            return Ok(None);
        };
        match fstatat(&dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(kind_of(&stat))),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(Error::sys(
                format!("inspecting {}", self.host_path(path).display()),
                e,
            )),
        }
    }

    /// The contents of the regular file at `path` (links followed inside the root); None when
    /// there is none. A FIFO, device or directory there is an error, not a read.
    pub fn read(&self, path: impl AsRef<Path>) -> Result<Option<Vec<u8>>> {
        let rel = relative(path.as_ref())?;
        let shown = || self.host_path(&rel).display().to_string();
        let Some(file) = self.open_file(&rel)? else {
            return Ok(None);
        };
        let mut contents = Vec::new();
        file.take(MAX_READ + 1)
            .read_to_end(&mut contents)
            .context(|| format!("reading {}", shown()))?;
        if contents.len() as u64 > MAX_READ {
            return Err(Error::Usage(format!(
                "{} is larger than {} MiB",
                shown(),
                MAX_READ >> 20
            )));
        }
        Ok(Some(contents))
    }

    /// The regular file at `path` opened for reading (links followed inside the root, as
    /// [`Root::read`]); None when there is none. A FIFO, device or directory is an error.
    pub fn open_file(&self, path: impl AsRef<Path>) -> Result<Option<std::fs::File>> {
        let rel = relative(path.as_ref())?;
        let shown = || self.host_path(&rel).display().to_string();
        let handle = match self.open_at(&rel, OFlag::O_PATH) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(Error::sys(format!("opening {}", shown()), e)),
        };
        let stat = fstat(&handle).context(|| format!("inspecting {}", shown()))?;
        if !matches!(kind_of(&stat), Entry::File { .. }) {
            return Err(Error::Usage(format!(
                "{} is not a regular file; remove it from the container",
                shown()
            )));
        }
        // Reopen the very file the handle names for reading (no second lookup by path).
        let reopened = format!("/proc/self/fd/{}", handle.as_raw_fd());
        std::fs::File::open(&reopened)
            .map(Some)
            .context(|| format!("opening {}", shown()))
    }

    /// [`Root::read`] as UTF-8 text.
    pub fn read_string(&self, path: impl AsRef<Path>) -> Result<Option<String>> {
        let Some(bytes) = self.read(path.as_ref())? else {
            return Ok(None);
        };
        String::from_utf8(bytes).map(Some).map_err(|_| {
            Error::Usage(format!(
                "{} is not UTF-8 text",
                self.host_path(path).display()
            ))
        })
    }

    /// The target of the link at `path`; None when it is not a link.
    pub fn read_link(&self, path: impl AsRef<Path>) -> Result<Option<PathBuf>> {
        let Some((dir, name)) = self.parent(path.as_ref())? else {
            return Ok(None);
        };
        match readlinkat(&dir, name.as_os_str()) {
            Ok(target) => Ok(Some(PathBuf::from(target))),
            Err(Errno::ENOENT | Errno::EINVAL) => Ok(None),
            Err(e) => Err(Error::sys(
                format!("reading the link {}", self.host_path(path).display()),
                e,
            )),
        }
    }

    /// Make `path` a link to `target`, replacing whatever is there (a directory with all it
    /// holds); nothing is done when it already is that link.
    pub fn symlink(&self, target: impl AsRef<Path>, path: impl AsRef<Path>) -> Result<()> {
        let (target, path) = (target.as_ref(), path.as_ref());
        if self.read_link(path)?.as_deref() == Some(target) {
            return Ok(());
        }
        let rel = relative(path)?;
        let shown = self.host_path(&rel);
        let name = rel
            .file_name()
            .ok_or_else(|| Error::Usage(format!("‘{}’ is not a file path", path.display())))?;
        let (dir, _) = self.make_dirs(rel.parent().unwrap_or(Path::new("")), 0o755)?;
        let mut tmp = OsString::from(".");
        tmp.push(name);
        tmp.push(format!(".ncsh-link-{}", std::process::id()));
        // A temporary link a crash left goes only when it is in the way (see `replace_at`).
        match symlinkat(target, &dir, tmp.as_os_str()) {
            Err(Errno::EEXIST) => {
                let _ = unlinkat(&dir, tmp.as_os_str(), UnlinkatFlags::NoRemoveDir);
                symlinkat(target, &dir, tmp.as_os_str())
            }
            other => other,
        }
        .context(|| format!("creating the link {}", shown.display()))?;
        let renamed = match renameat(&dir, tmp.as_os_str(), &dir, name) {
            Err(Errno::EISDIR | Errno::ENOTEMPTY | Errno::EEXIST) => remove_at(&dir, name, &shown)
                .and_then(|()| {
                    renameat(&dir, tmp.as_os_str(), &dir, name)
                        .context(|| format!("creating the link {}", shown.display()))
                }),
            other => other.context(|| format!("creating the link {}", shown.display())),
        };
        if renamed.is_err() {
            let _ = unlinkat(&dir, tmp.as_os_str(), UnlinkatFlags::NoRemoveDir);
        }
        renamed
    }

    /// Make `path` a link to `target` unless something is there already.
    pub fn symlink_if_missing(
        &self,
        target: impl AsRef<Path>,
        path: impl AsRef<Path>,
    ) -> Result<()> {
        if self.entry(path.as_ref())?.is_some() {
            return Ok(());
        }
        self.symlink(target, path)
    }

    /// Remove `path` whatever it is (see [`super::remove_path`]); "not found" is success.
    pub fn remove(&self, path: impl AsRef<Path>) -> Result<()> {
        match self.parent(path.as_ref())? {
            Some((dir, name)) => remove_at(&dir, &name, &self.host_path(path)),
            None => Ok(()),
        }
    }

    /// Remove the temporary files a crash may have left beside `path` (while it was replaced).
    pub fn remove_temporaries(&self, path: impl AsRef<Path>) -> Result<()> {
        let Some((dir, name)) = self.parent(path.as_ref())? else {
            return Ok(());
        };
        let parent = relative(path.as_ref())?
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut prefix = OsString::from(".");
        prefix.push(&name);
        prefix.push(".ncsh-");
        for entry in self.list(&parent)? {
            if entry.as_bytes().starts_with(prefix.as_bytes()) {
                remove_at(&dir, &entry, &self.host_path(parent.join(&entry)))?;
            }
        }
        Ok(())
    }

    /// The names in the directory at `path` (links followed inside the root); empty when there
    /// is no such directory.
    pub fn list(&self, path: impl AsRef<Path>) -> Result<Vec<OsString>> {
        let rel = relative(path.as_ref())?;
        let fd = match self.open_at(&rel, OFlag::O_RDONLY | OFlag::O_DIRECTORY) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(Vec::new()),
            Err(e) => {
                return Err(Error::sys(
                    format!("opening {}", self.host_path(&rel).display()),
                    e,
                ));
            }
        };
        let mut dir = nix::dir::Dir::from_fd(fd)
            .context(|| format!("reading {}", self.host_path(&rel).display()))?;
        Ok(dir
            .iter()
            .filter_map(|e| e.ok())
            .map(|e| OsStr::from_bytes(e.file_name().to_bytes()).to_os_string())
            .filter(|n| n != "." && n != "..")
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{PermissionsExt, symlink};

    /// A root whose `etc`, `tmp` and `root` are links out of it, as a hostile container makes
    /// them, beside a host directory holding a canary.
    fn hostile() -> (tempfile::TempDir, Root, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("host");
        fs::create_dir(&host).unwrap();
        fs::write(host.join("secret"), "host secret").unwrap();
        fs::set_permissions(host.join("secret"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(&host, fs::Permissions::from_mode(0o755)).unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        symlink(&host, root.join("etc")).unwrap();
        symlink("../../../../host", root.join("tmp")).unwrap();
        symlink(host.join("secret"), root.join("init")).unwrap();
        let handle = Root::open(&root).unwrap();
        (dir, handle, host)
    }

    fn host_unchanged(host: &Path) {
        assert_eq!(
            fs::read_to_string(host.join("secret")).unwrap(),
            "host secret"
        );
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&host.join("secret")), 0o600);
        assert_eq!(mode(host), 0o755);
        let names: Vec<_> = fs::read_dir(host).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn links_out_of_the_root_resolve_inside_it() {
        let (_dir, root, host) = hostile();
        // Absolute and relative links both land inside the root: writes create the missing
        // targets there, or fail, but never touch the host directory.
        let _ = root.write("/etc/passwd", b"x", 0o644);
        let _ = root.ensure_dir("/tmp", 0o1777);
        let _ = root.ensure_dir("/etc/ssh", 0o700);
        root.write("init", b"#!/bin/sh\n", 0o755).unwrap();
        let _ = root.symlink("/dev/null", "/etc/systemd/system/x.service");
        let _ = root.create_dir_owned("/tmp/home", 0o700, (1000, 1000));
        assert_eq!(
            root.read_string("/etc/../../host/secret").ok().flatten(),
            None
        );
        host_unchanged(&host);
        // The link itself was replaced, not written through.
        assert_eq!(
            root.entry("init").unwrap(),
            Some(Entry::File { mode: 0o755 })
        );
    }

    #[test]
    fn reads_stay_inside_and_refuse_special_files() {
        let (dir, root, _host) = hostile();
        assert_eq!(root.read("etc/secret").unwrap(), None);
        nix::unistd::mkfifo(
            &dir.path().join("root/fifo"),
            Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        let err = root.read("/fifo").unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
        fs::create_dir_all(dir.path().join("root/var/lib")).unwrap();
        fs::write(dir.path().join("root/var/lib/x"), "in").unwrap();
        symlink("/var/lib/x", dir.path().join("root/abs")).unwrap();
        assert_eq!(root.read_string("abs").unwrap().as_deref(), Some("in"));
        assert!(root.read("../x").is_err());
    }

    #[test]
    fn dirs_links_and_removal() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::create(&dir.path().join("r"), 0o755).unwrap();
        root.ensure_dir("a/b/c", 0o700).unwrap();
        let mode = |p: &str| {
            fs::metadata(dir.path().join("r").join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        assert_eq!((mode("a"), mode("a/b/c")), (0o755, 0o700));
        root.symlink("/usr/bin", "bin").unwrap();
        root.symlink("/usr/bin", "bin").unwrap();
        assert_eq!(
            root.read_link("bin").unwrap(),
            Some(PathBuf::from("/usr/bin"))
        );
        root.symlink("/dev/null", "a").unwrap();
        assert_eq!(root.entry("a").unwrap(), Some(Entry::Symlink));
        root.write("x/y", b"1", 0o640).unwrap();
        assert_eq!(
            root.entry("x/y").unwrap(),
            Some(Entry::File { mode: 0o640 })
        );
        assert_eq!(root.list("x").unwrap(), vec![OsString::from("y")]);
        root.remove("x").unwrap();
        assert_eq!(root.entry("x/y").unwrap(), None);
        assert!(root.list("x").unwrap().is_empty());
    }
}
