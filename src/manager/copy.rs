//! `copy-to` and `copy-from`: files and directories between the host and a container, as
//! `machinectl copy-to/copy-from` copies them: modes and owners kept, a link copied as the link
//! it is. The container's side goes through [`Root`] (its links resolve inside it, and one at
//! the copied path is copied, not followed); a running container is reached through its
//! leader's root, so its own mounts are seen.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::Manager;
use crate::container::ContainerName;
use crate::error::{Context, Error, Result};
use crate::files::{Entry, Root};
use crate::host::Status;

impl Manager {
    /// The container's tree as it sees it: its leader's root when it runs, else its root
    /// directory.
    fn tree(&self, name: &ContainerName) -> Result<Root> {
        self.require_exists(name)?;
        if self.driver.status(name) == Status::Up {
            Root::open_process_root(self.leader(name)?)
        } else {
            Root::open(&self.paths.root(name))
        }
    }

    /// Copy host file, directory or link `src` to `dst` in container `name`.
    pub fn copy_to(&self, name: &ContainerName, src: &Path, dst: &Path) -> Result<()> {
        super::require_root()?;
        let root = self.tree(name)?;
        copy_in(&root, src, dst)
    }

    /// Copy file, directory or link `src` of container `name` to host path `dst`.
    pub fn copy_from(&self, name: &ContainerName, src: &Path, dst: &Path) -> Result<()> {
        super::require_root()?;
        let root = self.tree(name)?;
        if root.entry(src)?.is_none() {
            return Err(Error::Usage(format!(
                "{}: no such file in container ‘{name}’",
                src.display()
            )));
        }
        copy_out(&root, src, dst)
    }
}

fn copy_in(root: &Root, src: &Path, dst: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(src).context(|| format!("reading {}", src.display()))?;
    let (mode, owner) = (meta.permissions().mode() & 0o7777, (meta.uid(), meta.gid()));
    let kind = meta.file_type();
    if kind.is_symlink() {
        let target = std::fs::read_link(src).context(|| format!("reading {}", src.display()))?;
        root.symlink(&target, dst)?;
        root.set_owner(dst, owner)
    } else if kind.is_dir() {
        root.ensure_dir(dst, mode)?;
        root.set_owner(dst, owner)?;
        // Again after the owner, which may clear the set-ID bits.
        root.ensure_dir(dst, mode)?;
        let entries = std::fs::read_dir(src).context(|| format!("listing {}", src.display()))?;
        for entry in entries {
            let entry = entry.context(|| format!("listing {}", src.display()))?;
            copy_in(
                root,
                &src.join(entry.file_name()),
                &dst.join(entry.file_name()),
            )?;
        }
        Ok(())
    } else if kind.is_file() {
        let contents = std::fs::read(src).context(|| format!("reading {}", src.display()))?;
        root.write_owned(dst, &contents, mode, owner)
    } else {
        Err(Error::Usage(format!(
            "{} is not a file, directory or link (devices, FIFOs and sockets are not copied)",
            src.display()
        )))
    }
}

fn copy_out(root: &Root, src: &Path, dst: &Path) -> Result<()> {
    let (owner, mode) = root.owner_and_mode(src)?.unwrap_or(((0, 0), 0o644));
    let set_owner = |dst: &Path| {
        std::os::unix::fs::lchown(dst, Some(owner.0), Some(owner.1))
            .context(|| format!("chown {}", dst.display()))
    };
    let set_mode = |dst: &Path, mode: u32| {
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(mode))
            .context(|| format!("chmod {}", dst.display()))
    };
    match root.entry(src)? {
        Some(Entry::Symlink) => {
            let target = root.read_link(src)?.unwrap_or_default();
            crate::files::replace_symlink(&target, dst)?;
            set_owner(dst)
        }
        Some(Entry::Dir) => {
            crate::files::ensure_dir(dst, mode)?;
            set_owner(dst)?;
            set_mode(dst, mode)?;
            for name in root.list(src)? {
                copy_out(root, &src.join(&name), &dst.join(&name))?;
            }
            Ok(())
        }
        Some(Entry::File { .. }) => {
            let contents = root.read(src)?.unwrap_or_default();
            crate::files::write_atomic_bytes(dst, &contents, mode)?;
            set_owner(dst)?;
            set_mode(dst, mode)
        }
        Some(Entry::Other) => Err(Error::Usage(format!(
            "{} in the container is not a file, directory or link (devices, FIFOs and sockets \
             are not copied)",
            src.display()
        ))),
        None => Ok(()),
    }
}
