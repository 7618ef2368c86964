//! Creating, listing, reading and removing containers on disk.
//!
//! `create` is atomic and serialized: under the create lock it picks the name and the addresses,
//! builds the root in a temporary directory, renames it into place and writes the conf last (the
//! conf is what makes a container exist). Any failure removes what was made, so a failed create
//! leaves no conf, no root and no address taken.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::address::{self, UsedAddresses};
use super::conf::Conf;
use super::lock::CreateLock;
use super::name;
use super::paths::Paths;
use crate::build::{NixOptions, base, configuration_nix};
use crate::error::{Context, Error, Result};

/// What `create` is asked for; the fields mirror nixos-container's flags.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub host_address: Option<String>,
    pub local_address: Option<String>,
    pub bridge: Option<String>,
    pub port: Option<String>,
    pub auto_start: bool,
    pub ensure_unique_name: bool,
    pub config: Option<String>,
    pub config_file: Option<PathBuf>,
    /// nixos-container's 11-character limit (its personality) instead of systemd's 64.
    pub max_name_len: Option<usize>,
    /// `--system-path`, `--nixos-path`, `--flake` and the Nix pass-through flags.
    pub nix: NixOptions,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub name: String,
    pub host_address: String,
    pub local_address: String,
}

/// Container names, sorted, from the conf directory.
pub fn list(paths: &Paths) -> Result<Vec<String>> {
    let entries = match fs::read_dir(&paths.conf_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::io(
                format!("reading {}", paths.conf_dir.display()),
                e,
            ));
        }
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".conf")
                .map(str::to_string)
        })
        // podman's files in the legacy /etc/containers are not containers.
        .filter(|n| {
            !matches!(n.as_str(), "libpod" | "containers" | "registries") && !n.starts_with('.')
        })
        .collect();
    names.sort();
    Ok(names)
}

pub fn exists(paths: &Paths, name: &str) -> bool {
    paths.conf(name).exists()
}

/// An error unless container `name` exists (a valid name with a conf); reads nothing.
pub fn require(paths: &Paths, name: &str) -> Result<()> {
    name::validate(name)?;
    if exists(paths, name) {
        Ok(())
    } else {
        Err(Error::NotFound(name.to_string()))
    }
}

/// The conf of an existing container.
pub fn load(paths: &Paths, name: &str) -> Result<Conf> {
    name::validate(name)?;
    let path = paths.conf(name);
    match fs::read_to_string(&path) {
        Ok(text) => Conf::parse(&text, &path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(Error::NotFound(name.to_string()))
        }
        Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
    }
}

/// Every existing conf, for address accounting; unreadable confs are skipped.
fn all_confs(paths: &Paths) -> Result<Vec<(String, Conf)>> {
    Ok(list(paths)?
        .into_iter()
        .filter_map(|n| {
            let conf = Conf::read(&paths.conf(&n)).ok()?;
            Some((n, conf))
        })
        .collect())
}

/// A value written verbatim into the conf must not break its line format.
fn check_conf_value(flag: &'static str, value: &str) -> Result<()> {
    if value.is_empty()
        || value
            .chars()
            .any(|c| c.is_whitespace() || "\"'\\#;$`".contains(c))
    {
        return Err(Error::Usage(format!(
            "invalid value ‘{value}’ for {flag}: it must be non-empty, without spaces, quotes or shell characters"
        )));
    }
    Ok(())
}

fn check_options(opts: &CreateOptions) -> Result<()> {
    if opts.config.is_some() && opts.config_file.is_some() {
        return Err(Error::Usage(crate::error::CONFIG_AND_CONFIG_FILE.into()));
    }
    if let Some(file) = &opts.config_file {
        super::config_file::check(file)?;
    }
    if let Some(bridge) = &opts.bridge {
        check_conf_value("--bridge", bridge)?;
        if bridge.len() > 15 || bridge.contains('/') || bridge.contains(':') {
            return Err(Error::Usage(format!(
                "invalid value ‘{bridge}’ for --bridge: not an interface name"
            )));
        }
    }
    if let Some(port) = &opts.port {
        check_conf_value("--port", port)?;
        for item in port.split(',') {
            check_port(item)?;
        }
    }
    Ok(())
}

/// nspawn's `--port` syntax: `[tcp|udp:]HOST[:CONTAINER]`.
fn check_port(item: &str) -> Result<()> {
    let bad = || {
        Error::Usage(format!(
            "invalid --port item ‘{item}’: expected [tcp|udp:]HOSTPORT[:CONTAINERPORT]"
        ))
    };
    let rest = item
        .strip_prefix("tcp:")
        .or_else(|| item.strip_prefix("udp:"))
        .unwrap_or(item);
    let mut parts = rest.split(':');
    let ports: Vec<&str> = parts.by_ref().take(2).collect();
    if parts.next().is_some()
        || ports.is_empty()
        || ports
            .iter()
            .any(|p| p.parse::<u16>().map_or(true, |n| n == 0))
    {
        return Err(bad());
    }
    Ok(())
}

/// Remove a path whatever it is, ignoring "not found".
pub(crate) fn remove_path(path: &Path) -> Result<()> {
    let result = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    result.context(|| format!("removing {}", path.display()))
}

/// Write `contents` to `path` atomically (a temporary file in the same directory, then rename):
/// readers see the old or the new file, never a part. Not synced to disk; see [`write_durable`].
pub(crate) fn write_atomic(path: &Path, contents: &str, mode: u32) -> Result<()> {
    write_replacing(path, contents, mode, false)
}

/// [`write_atomic`], and on disk before it returns: for the conf, which makes a container exist.
/// (Syncing every file of a generation made `create` take 200 ms here for no gain.)
pub(crate) fn write_durable(path: &Path, contents: &str, mode: u32) -> Result<()> {
    write_replacing(path, contents, mode, true)
}

fn write_replacing(path: &Path, contents: &str, mode: u32, durable: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut file = fs::File::create(&tmp).context(|| format!("creating {}", tmp.display()))?;
        file.write_all(contents.as_bytes())
            .context(|| format!("writing {}", tmp.display()))?;
        file.set_permissions(fs::Permissions::from_mode(mode))
            .context(|| format!("chmod {}", tmp.display()))?;
        if durable {
            file.sync_all()
                .context(|| format!("syncing {}", tmp.display()))?;
        }
        fs::rename(&tmp, path)
            .context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// `mkdir -p DIR` with `mode` set on DIR (also when it existed).
pub fn ensure_dir(dir: &Path, mode: u32) -> Result<()> {
    fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
        .context(|| format!("chmod {}", dir.display()))
}

/// Builds the system of a new container into its root (given the root being built, which is not
/// yet at its final place, and the container name); a failure undoes the create.
pub type Realize<'a> = &'a dyn Fn(&Path, &str) -> Result<()>;

/// The extra line of `configuration.nix` for these options, as nixos-container writes it.
pub fn config_extra(opts: &CreateOptions) -> configuration_nix::Extra<'_> {
    match (&opts.config, &opts.config_file) {
        (Some(text), _) => configuration_nix::Extra::Snippet(text),
        (None, Some(file)) => configuration_nix::Extra::Import(file),
        (None, None) => configuration_nix::Extra::None,
    }
}

/// Create container `requested` (see the module docs); `realize` builds its system.
pub fn create(
    paths: &Paths,
    requested: &str,
    opts: &CreateOptions,
    realize: Realize<'_>,
) -> Result<Created> {
    name::validate(requested)?;
    check_options(opts)?;
    // Directories that exist keep the mode their owner gave them.
    for (dir, mode) in [(&paths.conf_dir, 0o755), (&paths.state_dir, 0o700)] {
        if !dir.is_dir() {
            ensure_dir(dir, mode)?;
        }
    }
    let _lock = CreateLock::acquire(&paths.lock_file)?;

    let mut name = requested.to_string();
    if opts.ensure_unique_name {
        let mut n = 0;
        while paths.conf(&name).exists() || paths.root(&name).exists() {
            name = format!("{requested}-{n}");
            n += 1;
        }
    }
    if paths.conf(&name).exists() {
        return Err(Error::AlreadyExists(name));
    }
    if name.len() > opts.max_name_len.unwrap_or(name::MAX_NAME_LEN) {
        return Err(Error::NameTooLong(name));
    }
    name::validate(&name)?;

    let confs = all_confs(paths)?;
    let used = UsedAddresses::from_confs(confs.iter().map(|(n, c)| (n.as_str(), c)));
    let (host_address, local_address) = match (&opts.host_address, &opts.local_address) {
        (Some(h), Some(l)) => {
            address::check_explicit(h, l, &used)?;
            (h.trim().to_string(), l.trim().to_string())
        }
        (None, None) => {
            let (h, l) = used.allocate()?;
            (h.to_string(), l.to_string())
        }
        _ => {
            return Err(Error::Usage(
                "With --host-address set, --local-address is required as well!".into(),
            ));
        }
    };

    let mut conf = Conf::new();
    conf.push("PRIVATE_NETWORK", "1");
    conf.push("HOST_ADDRESS", host_address.clone());
    conf.push("LOCAL_ADDRESS", local_address.clone());
    conf.push("HOST_BRIDGE", opts.bridge.clone().unwrap_or_default());
    conf.push("HOST_PORT", opts.port.clone().unwrap_or_default());
    conf.push("AUTO_START", if opts.auto_start { "1" } else { "0" });
    if let Some(flake) = &opts.nix.flake {
        // As nixos-container: the reference without its `#attr`.
        conf.push("FLAKE", crate::build::nix::split_flake(flake).0);
    }

    let root = paths.root(&name);
    let fresh_root = !root.exists();
    let build = || -> Result<()> {
        if fresh_root {
            let tmp = paths
                .state_dir
                .join(format!(".{name}.creating-{}", std::process::id()));
            let made = (|| {
                base::write_base_system(&tmp, &name)?;
                write_configuration(&tmp, &name, config_extra(opts))?;
                realize(&tmp, &name)?;
                fs::rename(&tmp, &root)
                    .context(|| format!("renaming {} to {}", tmp.display(), root.display()))
            })();
            if made.is_err() {
                let _ = remove_path(&tmp);
            }
            made
        } else {
            // nixos-container reuses a root left without a conf; so do we, filling in the base.
            base::write_base_system(&root, &name)?;
            write_configuration(&root, &name, config_extra(opts))?;
            realize(&root, &name)
        }
    };
    build()?;
    if let Err(e) = write_durable(&paths.conf(&name), &conf.render(), 0o644) {
        if fresh_root {
            let _ = remove_path(&root);
        }
        return Err(e);
    }
    Ok(Created {
        name,
        host_address,
        local_address,
    })
}

/// Write `etc/nixos/configuration.nix` of a container root.
pub fn write_configuration(
    root: &Path,
    name: &str,
    extra: configuration_nix::Extra<'_>,
) -> Result<()> {
    let path = root.join("etc/nixos/configuration.nix");
    write_atomic(&path, &configuration_nix::render(name, extra), 0o644)
}

/// Refuse to destroy a declarative container (its conf is not writable, e.g. in the Nix store).
pub fn check_destroyable(paths: &Paths, name: &str) -> Result<()> {
    let conf = paths.conf(name);
    if nix::unistd::access(&conf, nix::unistd::AccessFlags::W_OK).is_err() {
        return Err(Error::Declarative(name.to_string()));
    }
    Ok(())
}

/// Remove everything a stopped container owns on disk: root, profile, GC roots, runtime state and
/// finally the conf. Mount points below the root are unmounted first, never followed.
pub fn remove_files(paths: &Paths, name: &str) -> Result<()> {
    let root = paths.root(name);
    unmount_below(&root)?;
    for path in [
        paths.profile(name),
        paths.gcroots(name),
        root,
        paths.runtime(name),
    ] {
        remove_path(&path)?;
    }
    remove_path(&paths.conf(name))
}

/// Lazily unmount every mount point at or below `dir` (deepest first).
fn unmount_below(dir: &Path) -> Result<()> {
    let mut points: Vec<PathBuf> = crate::host::mountinfo::mount_points()
        .into_iter()
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for point in points {
        nix::mount::umount2(&point, nix::mount::MntFlags::MNT_DETACH)
            .context(|| format!("unmounting {}", point.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths() -> (tempfile::TempDir, Paths) {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path());
        (dir, paths)
    }

    #[test]
    fn create_writes_the_conf_in_nixos_container_order() {
        let (_dir, paths) = paths();
        let created = create(&paths, "foo", &CreateOptions::default(), &|_, _| Ok(())).unwrap();
        assert_eq!(created.host_address, "10.233.1.1");
        let text = fs::read_to_string(paths.conf("foo")).unwrap();
        assert_eq!(
            text,
            "PRIVATE_NETWORK=1\nHOST_ADDRESS=10.233.1.1\nLOCAL_ADDRESS=10.233.1.2\nHOST_BRIDGE=\nHOST_PORT=\nAUTO_START=0\n"
        );
        assert!(
            paths
                .root("foo")
                .join("etc/nixos/configuration.nix")
                .is_file()
        );
        assert_eq!(
            create(&paths, "bar", &CreateOptions::default(), &|_, _| Ok(()))
                .unwrap()
                .local_address,
            "10.233.2.2"
        );
        assert_eq!(list(&paths).unwrap(), ["bar", "foo"]);
    }

    #[test]
    fn failed_creates_change_nothing() {
        let (dir, paths) = paths();
        create(&paths, "foo", &CreateOptions::default(), &|_, _| Ok(())).unwrap();
        let before = snapshot(dir.path());
        let bad = [
            ("foo", CreateOptions::default(), "AlreadyExists"),
            ("a_b", CreateOptions::default(), "InvalidName"),
            (
                "x",
                CreateOptions {
                    config: Some("a = 1;".into()),
                    config_file: Some("/etc/hostname".into()),
                    ..Default::default()
                },
                "Usage",
            ),
            (
                "x",
                CreateOptions {
                    host_address: Some("10.233.1.1".into()),
                    local_address: Some("10.233.9.2".into()),
                    ..Default::default()
                },
                "AddressInUse",
            ),
            (
                "x",
                CreateOptions {
                    host_address: Some("10.0.0.1".into()),
                    ..Default::default()
                },
                "Usage",
            ),
            (
                "x",
                CreateOptions {
                    port: Some("80;rm".into()),
                    ..Default::default()
                },
                "Usage",
            ),
            (
                "x",
                CreateOptions {
                    port: Some("tcp:99999".into()),
                    ..Default::default()
                },
                "Usage",
            ),
            (
                "abcdefghijkl",
                CreateOptions {
                    max_name_len: Some(11),
                    ..Default::default()
                },
                "InvalidName",
            ),
        ];
        for (name, opts, kind) in bad {
            assert_eq!(
                create(&paths, name, &opts, &|_, _| Ok(()))
                    .unwrap_err()
                    .kind(),
                kind,
                "{name}"
            );
        }
        assert_eq!(snapshot(dir.path()), before);
    }

    #[test]
    fn a_failing_build_undoes_the_create() {
        let (dir, paths) = paths();
        create(&paths, "foo", &CreateOptions::default(), &|_, _| Ok(())).unwrap();
        let before = snapshot(dir.path());
        let fail: Realize<'_> = &|root, _| {
            assert!(root.join("etc/nixos/configuration.nix").is_file());
            Err(Error::Build("broken.nix:1:1: no".into()))
        };
        assert_eq!(
            create(&paths, "bork", &CreateOptions::default(), fail)
                .unwrap_err()
                .kind(),
            "BuildFailed"
        );
        assert_eq!(snapshot(dir.path()), before);
    }

    #[test]
    fn ensure_unique_name_counts_from_zero() {
        let (_dir, paths) = paths();
        let unique = CreateOptions {
            ensure_unique_name: true,
            ..Default::default()
        };
        assert_eq!(
            create(&paths, "web", &unique, &|_, _| Ok(())).unwrap().name,
            "web"
        );
        assert_eq!(
            create(&paths, "web", &unique, &|_, _| Ok(())).unwrap().name,
            "web-0"
        );
        assert_eq!(
            create(&paths, "web", &unique, &|_, _| Ok(())).unwrap().name,
            "web-1"
        );
    }

    #[test]
    fn ports_follow_nspawn_syntax() {
        for ok in ["80", "8080:80", "tcp:8080:80", "udp:53", "80,tcp:443:8443"] {
            assert!(
                check_options(&CreateOptions {
                    port: Some(ok.into()),
                    ..Default::default()
                })
                .is_ok(),
                "{ok}"
            );
        }
    }

    #[test]
    fn remove_files_leaves_nothing() {
        let (_dir, paths) = paths();
        create(&paths, "foo", &CreateOptions::default(), &|_, _| Ok(())).unwrap();
        remove_files(&paths, "foo").unwrap();
        assert!(!paths.conf("foo").exists() && !paths.root("foo").exists());
        assert_eq!(
            create(&paths, "bar", &CreateOptions::default(), &|_, _| Ok(()))
                .unwrap()
                .host_address,
            "10.233.1.1"
        );
    }

    fn snapshot(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if e.file_type().unwrap().is_dir() {
                    stack.push(p.clone());
                }
                out.push(p);
            }
        }
        out.sort();
        out
    }
}
