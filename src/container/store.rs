//! Creating, listing, reading and removing containers on disk.
//!
//! `create` is atomic and serialized: under the create lock it picks the name and the addresses,
//! builds the root in a temporary directory, renames it into place and writes the conf last (the
//! conf is what makes a container exist). Any failure removes what was made, so a failed create
//! leaves no conf, no root and no address taken. `prepare` and `commit` are the same create in
//! two steps, for several containers built at once (a test's nodes): the root is built outside
//! the lock, and the checks, the rename and the conf are done under it.
//!
//! A root `in_memory` (`CreateOptions::in_memory`) is a tmpfs mounted on the temporary
//! directory; a mount point cannot be renamed, so it is put in place by a bind mount onto an
//! empty root directory and the temporary mount detached. Every removal of a root unmounts what
//! is mounted at or below it first ([`remove_root`]).

use std::fs;
use std::path::{Path, PathBuf};

use super::address::{self, UsedAddresses};
use super::conf::Conf;
use super::lock::CreateLock;
use super::name::{self, ContainerName};
use super::options::{CreateOptions, NspawnOptions};
use super::paths::Paths;
use crate::error::{Context, Error, Result};
use crate::files::{Root, ensure_dir, remove_path, write_atomic, write_durable};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub name: ContainerName,
    pub host_address: String,
    pub local_address: String,
    /// Why the container got no automatic IPv6 pair on a host that has IPv6, if it did not.
    pub ipv6_note: Option<String>,
}

/// Container names from the conf directory, in nixos-container's order: its `glob` sorts the
/// file names (`NAME.conf`) with ASCII case folded, ties by byte (so `cmpb-0` comes before
/// `cmpb`, as `-` sorts before `.`).
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
    sort_as_glob(&mut names);
    Ok(names)
}

/// Sort names as Perl's `glob "DIR/*.conf"` sorts their files (see [`list`]).
fn sort_as_glob(names: &mut [String]) {
    names.sort_by_cached_key(|n| {
        let file = format!("{n}.conf");
        (file.to_ascii_lowercase(), file)
    });
}

pub fn exists(paths: &Paths, name: &ContainerName) -> bool {
    paths.conf(name).exists()
}

/// An error unless container `name` exists (has a conf); reads nothing.
pub fn require(paths: &Paths, name: &ContainerName) -> Result<()> {
    if exists(paths, name) {
        Ok(())
    } else {
        Err(Error::NotFound(name.to_string()))
    }
}

/// The conf of an existing container.
pub fn load(paths: &Paths, name: &ContainerName) -> Result<Conf> {
    let path = paths.conf(name);
    match fs::read_to_string(&path) {
        Ok(text) => Conf::parse(&text, &path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(Error::NotFound(name.to_string()))
        }
        Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
    }
}

/// Set `entries` in container `name`'s conf: each key's lines replaced by one `KEY=value` at
/// the end, every other line as it was (a conf edited by hand keeps its quoting and comments).
pub fn set_conf_values(
    paths: &Paths,
    name: &ContainerName,
    entries: &[(&str, String)],
) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let path = paths.conf(name);
    let text = fs::read_to_string(&path).context(|| format!("reading {}", path.display()))?;
    let mut out: String = text
        .lines()
        .filter(|line| {
            let key = line
                .trim_start()
                .split('=')
                .next()
                .unwrap_or_default()
                .trim();
            !entries.iter().any(|(k, _)| *k == key)
        })
        .map(|line| format!("{line}\n"))
        .collect();
    for (key, value) in entries {
        out.push_str(&format!("{key}={value}\n"));
    }
    // What goes in must read back the same (the values are checked numbers).
    Conf::parse(&out, &path)?;
    write_durable(&path, &out, 0o644)
}

/// Every existing conf, for address accounting; unreadable confs are skipped.
pub fn all_confs(paths: &Paths) -> Result<Vec<(String, Conf)>> {
    Ok(list(paths)?
        .into_iter()
        .filter_map(|n| {
            let conf = Conf::read(&paths.conf(&n)).ok()?;
            Some((n, conf))
        })
        .collect())
}

/// The addresses existing containers and the host use (for a network of one's own).
pub fn used_addresses(paths: &Paths) -> Result<UsedAddresses> {
    let confs = all_confs(paths)?;
    let mut used = UsedAddresses::from_confs(confs.iter().map(|(n, c)| (n.as_str(), c)));
    used.add_host_claims();
    Ok(used)
}

/// The error for a local address without a host address (nixos-container's message names the
/// other one whichever is missing).
pub const LOCAL_WITHOUT_HOST: &str = "With --local-address set, --host-address is required as \
     well! (on a --bridge it is the host's address on the bridge, the containers' gateway; leave \
     both out and ncsh picks a free pair)";

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

/// The conf's EXTRA_NSPAWN_FLAGS of a create or update (checked), None when there are none.
/// A bind's host path must exist: nspawn would refuse to start otherwise.
pub fn extra_nspawn_flags(nspawn: &NspawnOptions) -> Result<Option<String>> {
    for bind in &nspawn.binds {
        let host = bind.host.as_deref().unwrap_or(&bind.container);
        if fs::symlink_metadata(host).is_err() {
            let flag = if bind.read_only {
                "--bind-ro"
            } else {
                "--bind"
            };
            return Err(Error::Usage(format!(
                "{flag}: the host path {host} does not exist: create it first"
            )));
        }
    }
    nspawn.conf_value()
}

fn check_options(opts: &CreateOptions) -> Result<()> {
    match (&opts.host_address6, &opts.local_address6) {
        (None, Some(_)) => {
            return Err(Error::Usage(
                "With --local-address6 set, --host-address6 is required as well!".into(),
            ));
        }
        (Some(_), None) => {
            return Err(Error::Usage(
                "With --host-address6 set, --local-address6 is required as well!".into(),
            ));
        }
        _ => {}
    }
    if let Some(bridge) = &opts.bridge {
        check_conf_value("--bridge", bridge)?;
        if bridge.len() > 15 || bridge.contains('/') || bridge.contains(':') {
            return Err(Error::Usage(format!(
                "invalid value ‘{bridge}’ for --bridge: not an interface name"
            )));
        }
    }
    if let Some(network) = &opts.network {
        super::network::check_name(network)?;
        if let Some(flag) = [
            ("--bridge", &opts.bridge),
            ("--host-address", &opts.host_address),
            ("--local-address", &opts.local_address),
        ]
        .iter()
        .find_map(|(flag, v)| v.is_some().then_some(flag))
        {
            return Err(Error::Usage(format!(
                "--network and {flag} exclude each other: on a network ncsh picks the bridge \
                 and the addresses"
            )));
        }
    }
    opts.limits.conf_entries()?;
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

/// Builds the system of a new container into its root (given the root being built, which is not
/// yet at its final place, and the container name): the base system, `configuration.nix` and
/// the first generation; a failure undoes the create.
pub type Realize<'a> = &'a dyn Fn(&Root, &ContainerName) -> Result<()>;

/// Create container `requested` (see the module docs); `realize` builds its system.
pub fn create(
    paths: &Paths,
    requested: &ContainerName,
    opts: &CreateOptions,
    realize: Realize<'_>,
) -> Result<Created> {
    check_options(opts)?;
    let extra_nspawn_flags = extra_nspawn_flags(&opts.nspawn)?;
    // Directories that exist keep the mode their owner gave them.
    for (dir, mode) in [(&paths.conf_dir, 0o755), (&paths.state_dir, 0o700)] {
        if !dir.is_dir() {
            ensure_dir(dir, mode)?;
        }
    }
    let _lock = CreateLock::acquire(&paths.lock_file)?;
    remove_debris(paths)?;

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
    let name = ContainerName::parse(&name)?;

    let (conf, created) = plan(paths, &name, opts, extra_nspawn_flags)?;
    let root = paths.root(&name);
    let fresh_root = !root.exists();
    build_root(paths, &name, &root, fresh_root, opts.in_memory, realize)?;
    write_conf(paths, &name, &root, fresh_root, opts.in_memory, &conf)?;
    Ok(created)
}

/// A new container's root, built (by [`prepare`]) outside the create lock, in a temporary
/// directory of this process; [`commit`] puts it in place, [`discard`] removes it.
#[derive(Debug)]
pub struct Prepared {
    name: ContainerName,
    tmp: PathBuf,
    in_memory: bool,
}

/// Build container `name`'s root without the create lock, so that the roots of several
/// containers (a test's nodes) are built at once; its addresses are chosen and checked, and the
/// root put in place, by [`commit`]. The name is used as it is (no `ensure_unique_name`) and
/// must be free: an existing conf or root is refused.
pub fn prepare(
    paths: &Paths,
    name: &ContainerName,
    opts: &CreateOptions,
    realize: Realize<'_>,
) -> Result<Prepared> {
    check_options(opts)?;
    extra_nspawn_flags(&opts.nspawn)?;
    for (dir, mode) in [(&paths.conf_dir, 0o755), (&paths.state_dir, 0o700)] {
        if !dir.is_dir() {
            ensure_dir(dir, mode)?;
        }
    }
    if name.as_str().len() > opts.max_name_len.unwrap_or(name::MAX_NAME_LEN) {
        return Err(Error::NameTooLong(name.to_string()));
    }
    if paths.conf(name).exists() || paths.root(name).exists() {
        return Err(Error::AlreadyExists(name.to_string()));
    }
    let tmp = debris_path(&paths.state_dir, name, CREATING);
    let made = (|| {
        let building = building_root(&tmp, opts.in_memory)?;
        realize(&building, name)
    })();
    match made {
        Ok(()) => Ok(Prepared {
            name: name.clone(),
            tmp,
            in_memory: opts.in_memory,
        }),
        Err(e) => {
            let _ = remove_root(&tmp);
            Err(e)
        }
    }
}

/// Make `prepared` a container, as [`create`] does after its build: under the create lock, its
/// addresses checked (or chosen), its root renamed into place and its conf written. Any
/// failure removes the prepared root.
pub fn commit(paths: &Paths, prepared: Prepared, opts: &CreateOptions) -> Result<Created> {
    let committed = (|| {
        let extra_nspawn_flags = extra_nspawn_flags(&opts.nspawn)?;
        let _lock = CreateLock::acquire(&paths.lock_file)?;
        remove_debris(paths)?;
        let name = &prepared.name;
        let root = paths.root(name);
        if paths.conf(name).exists() || root.exists() {
            return Err(Error::AlreadyExists(name.to_string()));
        }
        let (conf, created) = plan(paths, name, opts, extra_nspawn_flags)?;
        put_in_place(&prepared.tmp, &root, prepared.in_memory)?;
        write_conf(paths, name, &root, true, prepared.in_memory, &conf)?;
        Ok(created)
    })();
    if committed.is_err() {
        discard(prepared);
    }
    committed
}

/// Remove a prepared root that will not be committed.
pub fn discard(prepared: Prepared) {
    let _ = remove_root(&prepared.tmp);
}

/// The directory `tmp` a new root is built in, made (0755) and opened; `in_memory`, a tmpfs of
/// its own mounted on it.
fn building_root(tmp: &Path, in_memory: bool) -> Result<Root> {
    ensure_dir(tmp, 0o755)?;
    if in_memory {
        use nix::mount::{MsFlags, mount};
        mount(
            Some("tmpfs"),
            tmp,
            Some("tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .map_err(|e| Error::sys(format!("mounting a tmpfs on {}", tmp.display()), e))?;
        // The tmpfs's own mode (1777 by default) set to a root's, on its descriptor.
        ensure_dir(tmp, 0o755)?;
    }
    Root::open(tmp)
}

/// Put the root built in `tmp` in place at `root`: renamed, or (`in_memory`, a mount point,
/// which cannot be renamed) bound onto an empty `root` and its mount on `tmp` detached.
fn put_in_place(tmp: &Path, root: &Path, in_memory: bool) -> Result<()> {
    if !in_memory {
        return fs::rename(tmp, root)
            .context(|| format!("renaming {} to {}", tmp.display(), root.display()));
    }
    use nix::mount::{MsFlags, mount};
    fs::create_dir(root).context(|| format!("creating {}", root.display()))?;
    let bound = mount(
        Some(tmp),
        root,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| {
        Error::sys(
            format!("binding {} to {}", tmp.display(), root.display()),
            e,
        )
    });
    if let Err(e) = bound {
        let _ = fs::remove_dir(root);
        return Err(e);
    }
    // The caller removes `tmp` on failure; `root` would be left.
    remove_root(tmp).inspect_err(|_| {
        let _ = remove_root(root);
    })
}

/// Remove a root directory (or a temporary one) at `path`: what is mounted at or below it is
/// unmounted first (an in-memory root is a mount), then the tree is removed.
fn remove_root(path: &Path) -> Result<()> {
    unmount_below(path)?;
    remove_path(path)
}

/// The conf of new container `name` from `opts` (the conf given, or one made of the flags),
/// its addresses checked against every other conf and the host's, or chosen; under the
/// create lock.
fn plan(
    paths: &Paths,
    name: &ContainerName,
    opts: &CreateOptions,
    extra_nspawn_flags: Option<String>,
) -> Result<(Conf, Created)> {
    let confs = all_confs(paths)?;
    let mut used = UsedAddresses::from_confs(confs.iter().map(|(n, c)| (n.as_str(), c)));
    if let Some(given) = &opts.conf {
        for (h, l, flags) in [
            (
                "HOST_ADDRESS",
                "LOCAL_ADDRESS",
                ("hostAddress", "localAddress"),
            ),
            (
                "HOST_ADDRESS6",
                "LOCAL_ADDRESS6",
                ("hostAddress6", "localAddress6"),
            ),
        ] {
            if let (Some(h), Some(l)) = (given.non_empty(h), given.non_empty(l)) {
                address::check_explicit_pair(flags, h, l, &used, &address::host_own_addresses())?;
            }
        }
        let created = Created {
            host_address: given
                .non_empty("HOST_ADDRESS")
                .unwrap_or_default()
                .to_string(),
            local_address: given
                .non_empty("LOCAL_ADDRESS")
                .unwrap_or_default()
                .to_string(),
            name: name.clone(),
            ipv6_note: None,
        };
        return Ok((given.clone(), created));
    }
    let (mut auto_v6, mut ipv6_note) = (None, None);
    let (host_address, local_address) = match (&opts.host_address, &opts.local_address) {
        _ if opts.network.is_some() => {
            used.add_host_claims();
            let network = opts.network.as_deref().unwrap_or_default();
            super::network::allocate(network, confs.iter().map(|(_, c)| c), &used)?
        }
        (Some(h), Some(l)) => {
            address::check_explicit(h, l, &used)?;
            (h.trim().to_string(), l.trim().to_string())
        }
        (None, None) => {
            used.add_host_claims();
            let (h, l) = used.allocate()?;
            // The IPv6 pair along with the IPv4 one, when none is given (address.rs's doc).
            let wants_v6 =
                opts.host_address6.is_none() && opts.bridge.is_none() && address::host_has_ipv6();
            if wants_v6 {
                let prefix = address::Ipv6Prefix::of_this_host();
                match used.allocate6(prefix, h) {
                    Ok((h6, l6)) => auto_v6 = Some((h6.to_string(), l6.to_string())),
                    // IPv6 is an extra: without a free pair the container has IPv4 only.
                    Err(_) => {
                        ipv6_note = Some(format!(
                            "no IPv6 pair of {prefix} is free (a conf or the host uses them), \
                             so the container has IPv4 only; pass --host-address6 and \
                             --local-address6 to give it IPv6"
                        ))
                    }
                }
            }
            (h.to_string(), l.to_string())
        }
        (Some(_), None) => {
            return Err(Error::Usage(
                "With --host-address set, --local-address is required as well!".into(),
            ));
        }
        (None, Some(_)) => return Err(Error::Usage(LOCAL_WITHOUT_HOST.into())),
    };

    let v6 = match (&opts.host_address6, &opts.local_address6) {
        (Some(h), Some(l)) => {
            address::check_explicit_pair(
                ("--host-address6", "--local-address6"),
                h,
                l,
                &used,
                &address::host_own_addresses(),
            )?;
            if !address::parse_address(h).is_ok_and(|a| a.addr().is_ipv6()) {
                return Err(Error::InvalidAddress {
                    flag: "--host-address6",
                    value: h.clone(),
                    reason: "expected an IPv6 address".into(),
                });
            }
            Some((h.trim().to_string(), l.trim().to_string()))
        }
        _ => auto_v6, // check_options refused one without the other
    };

    let mut conf = Conf::new();
    conf.push("PRIVATE_NETWORK", "1");
    conf.push("HOST_ADDRESS", host_address.clone());
    conf.push("LOCAL_ADDRESS", local_address.clone());
    if let Some((h, l)) = v6 {
        conf.push("HOST_ADDRESS6", h);
        conf.push("LOCAL_ADDRESS6", l);
    }
    let bridge = opts.network.clone().or_else(|| opts.bridge.clone());
    conf.push("HOST_BRIDGE", bridge.unwrap_or_default());
    conf.push("HOST_PORT", opts.port.clone().unwrap_or_default());
    conf.push("AUTO_START", if opts.auto_start { "1" } else { "0" });
    if let Some(flags) = &extra_nspawn_flags {
        conf.push("EXTRA_NSPAWN_FLAGS", flags.clone());
    }
    // ncsh's own keys after NixOS's.
    if let Some(network) = &opts.network {
        conf.push(super::network::NETWORK_KEY, network.clone());
    }
    for (key, value) in opts.limits.conf_entries()? {
        conf.push(key, value);
    }
    if let Some(flake) = &opts.nix.flake {
        // As nixos-container: the reference without its `#attr`.
        conf.push("FLAKE", super::options::split_flake(flake).0);
    }

    Ok((
        conf,
        Created {
            name: name.clone(),
            host_address,
            local_address,
            ipv6_note,
        },
    ))
}

/// Build the root of new container `name` in a temporary directory renamed into place (or
/// fill in a root left without a conf, as nixos-container reuses it).
fn build_root(
    paths: &Paths,
    name: &ContainerName,
    root: &Path,
    fresh_root: bool,
    in_memory: bool,
    realize: Realize<'_>,
) -> Result<()> {
    if fresh_root {
        let tmp = debris_path(&paths.state_dir, name, CREATING);
        let made = (|| {
            let building = building_root(&tmp, in_memory)?;
            realize(&building, name)?;
            drop(building);
            put_in_place(&tmp, root, in_memory)
        })();
        if made.is_err() {
            let _ = remove_root(&tmp);
        }
        made
    } else {
        realize(&Root::open(root)?, name)
    }
}

/// Write the conf last (it makes the container exist); a failure removes a fresh root.
fn write_conf(
    paths: &Paths,
    name: &ContainerName,
    root: &Path,
    fresh_root: bool,
    in_memory: bool,
    conf: &Conf,
) -> Result<()> {
    // Synced, as it makes the container exist; not for a root in memory, which a crash takes
    // with it anyway (the syncs of a two-node test's confs cost about 20 ms here).
    let write = if in_memory {
        write_atomic
    } else {
        write_durable
    };
    if let Err(e) = write(&paths.conf(name), &conf.render(), 0o644) {
        if fresh_root {
            let _ = remove_root(root);
        }
        return Err(e);
    }
    Ok(())
}

/// Refuse to destroy a declarative container (its conf is not writable, e.g. in the Nix store).
pub fn check_destroyable(paths: &Paths, name: &ContainerName) -> Result<()> {
    let conf = paths.conf(name);
    if nix::unistd::access(&conf, nix::unistd::AccessFlags::W_OK).is_err() {
        return Err(Error::Declarative(name.to_string()));
    }
    Ok(())
}

/// Remove everything a stopped container owns on disk: root, profile, GC roots, runtime state and
/// the conf. Mount points below the root are unmounted first, never followed.
pub fn remove_files(paths: &Paths, name: &ContainerName) -> Result<()> {
    let root = paths.root(name);
    unmount_below(&root)?;
    // Root, then conf, renamed away before anything is deleted: an interrupted destroy leaves
    // debris (removed by the next command) and at worst a conf whose start refuses its missing
    // root, never a half-deleted root that boots.
    let (doomed_root, doomed_conf) = (
        debris_path(&paths.state_dir, name, DESTROYING),
        debris_path(&paths.conf_dir, &format!("{name}.conf"), DESTROYING),
    );
    rename_if_present(&root, &doomed_root)?;
    rename_if_present(&paths.conf(name), &doomed_conf)?;
    for path in [
        paths.profile(name),
        paths.gcroots(name),
        doomed_root,
        paths.runtime(name),
    ] {
        remove_path(&path)?;
    }
    remove_path(&doomed_conf)
}

// ---------------------------------------------------------------------------------------------
// Crash debris: what a killed create or destroy leaves, named after the dead process.

const CREATING: &str = "creating";
const DESTROYING: &str = "destroying";
/// `ncsh apply`'s out-link of a flake's build (`nix build -o`), while it is read.
const BUILDING: &str = "building";

/// Where `ncsh apply` has `nix build` put the out-link of container `name`'s flake: debris of
/// this process, removed by the next command if it is killed meanwhile.
pub fn flake_out_link(paths: &Paths, name: &ContainerName) -> PathBuf {
    debris_path(&paths.state_dir, name, BUILDING)
}

/// `DIR/.NAME.WHAT-PID` of this process.
fn debris_path(dir: &Path, name: &str, what: &str) -> PathBuf {
    dir.join(format!(".{name}.{what}-{}", std::process::id()))
}

fn rename_if_present(from: &Path, to: &Path) -> Result<()> {
    match fs::rename(from, to) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(
            format!("renaming {} to {}", from.display(), to.display()),
            e,
        )),
        _ => Ok(()),
    }
}

/// The PID of a debris name (`.NAME.creating-PID`, `.NAME.conf.destroying-PID`, or a
/// temporary file `.FILE.tmp-PID`), if it is one.
fn debris_pid(file_name: &str) -> Option<i32> {
    let rest = file_name.strip_prefix('.')?;
    // `ncsh-tmp` and `ncsh-link`: the temporaries of crate::files; `tmp`: older versions'.
    [
        CREATING,
        DESTROYING,
        BUILDING,
        "ncsh-tmp",
        "ncsh-link",
        "tmp",
    ]
    .iter()
    .find_map(|what| {
        let (_, pid) = rest.rsplit_once(&format!(".{what}-"))?;
        pid.parse().ok().filter(|p| *p > 0)
    })
}

/// Remove the debris of dead processes from the state and conf directories (a live process's
/// is its work in progress).
pub fn remove_debris(paths: &Paths) -> Result<()> {
    for dir in [&paths.state_dir, &paths.conf_dir] {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(debris_pid) else {
                continue;
            };
            let dead = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
                == Err(nix::errno::Errno::ESRCH);
            if dead {
                remove_root(&entry.path())?;
            }
        }
    }
    Ok(())
}

/// Lazily unmount every mount point at or below `dir` (deepest first).
fn unmount_below(dir: &Path) -> Result<()> {
    let mut points: Vec<PathBuf> = crate::files::mountinfo::mount_points()
        .into_iter()
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for point in points {
        // The last component is never followed: a link the container put there is not ours.
        let flags = nix::mount::MntFlags::MNT_DETACH | nix::mount::MntFlags::UMOUNT_NOFOLLOW;
        match nix::mount::umount2(&point, flags) {
            // Unmounted (or its directory removed) since the mount table was read: done.
            Ok(()) | Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(Error::sys(format!("unmounting {}", point.display()), e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(name: &str) -> ContainerName {
        ContainerName::parse(name).unwrap()
    }

    fn paths() -> (tempfile::TempDir, Paths) {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path());
        (dir, paths)
    }

    #[test]
    fn list_sorts_as_the_originals_glob() {
        let (_dir, paths) = paths();
        std::fs::create_dir_all(&paths.conf_dir).unwrap();
        for name in ["cmpb", "cmpb-0", "Cmpa", "cmpa", "B", "a"] {
            std::fs::write(paths.conf_dir.join(format!("{name}.conf")), "").unwrap();
        }
        assert_eq!(
            list(&paths).unwrap(),
            ["a", "B", "Cmpa", "cmpa", "cmpb-0", "cmpb"]
        );
    }

    #[test]
    fn create_writes_the_conf_in_nixos_container_order() {
        let (_dir, paths) = paths();
        let created = create(&paths, &n("foo"), &CreateOptions::default(), &|_, _| Ok(())).unwrap();
        assert_eq!(created.host_address, "10.233.1.1");
        let text = fs::read_to_string(paths.conf("foo")).unwrap();
        assert_eq!(
            text,
            "PRIVATE_NETWORK=1\nHOST_ADDRESS=10.233.1.1\nLOCAL_ADDRESS=10.233.1.2\nHOST_BRIDGE=\nHOST_PORT=\nAUTO_START=0\n"
        );
        assert!(paths.root("foo").is_dir());
        assert_eq!(
            create(&paths, &n("bar"), &CreateOptions::default(), &|_, _| Ok(()))
                .unwrap()
                .local_address,
            "10.233.2.2"
        );
        assert_eq!(list(&paths).unwrap(), ["bar", "foo"]);
    }

    #[test]
    fn failed_creates_change_nothing() {
        let (dir, paths) = paths();
        create(&paths, &n("foo"), &CreateOptions::default(), &|_, _| Ok(())).unwrap();
        let before = snapshot(dir.path());
        let bad = [
            ("foo", CreateOptions::default(), "AlreadyExists"),
            ("a_b", CreateOptions::default(), "InvalidName"),
            (
                "x",
                // foo's host address may be shared, but not as a local address.
                CreateOptions {
                    host_address: Some("10.233.9.1".into()),
                    local_address: Some("10.233.1.1".into()),
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
                ContainerName::parse(name)
                    .and_then(|name| create(&paths, &name, &opts, &|_, _| Ok(())))
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
        create(&paths, &n("foo"), &CreateOptions::default(), &|_, _| Ok(())).unwrap();
        let before = snapshot(dir.path());
        let fail: Realize<'_> = &|root, _| {
            root.write("etc/nixos/configuration.nix", b"{ }", 0o644)?;
            Err(Error::Build("broken.nix:1:1: no".into()))
        };
        assert_eq!(
            create(&paths, &n("bork"), &CreateOptions::default(), fail)
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
            create(&paths, &n("web"), &unique, &|_, _| Ok(()))
                .unwrap()
                .name,
            n("web")
        );
        assert_eq!(
            create(&paths, &n("web"), &unique, &|_, _| Ok(()))
                .unwrap()
                .name,
            n("web-0")
        );
        assert_eq!(
            create(&paths, &n("web"), &unique, &|_, _| Ok(()))
                .unwrap()
                .name,
            n("web-1")
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
        create(&paths, &n("foo"), &CreateOptions::default(), &|_, _| Ok(())).unwrap();
        remove_files(&paths, &n("foo")).unwrap();
        assert!(!paths.conf("foo").exists() && !paths.root("foo").exists());
        assert_eq!(
            create(&paths, &n("bar"), &CreateOptions::default(), &|_, _| Ok(()))
                .unwrap()
                .host_address,
            "10.233.1.1"
        );
    }

    /// In-memory roots (root only: they are mounts): each is a tmpfs in place, made by create
    /// and by prepare and commit; a failed build, a discarded root and a removal leave no
    /// mount and no file behind.
    #[test]
    fn in_memory_roots_are_tmpfs_mounts_and_leave_nothing() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let (dir, paths) = paths();
        // Declared after `dir`, so dropped first: whatever happens, no mount is left.
        struct Unmount<'a>(&'a Path);
        impl Drop for Unmount<'_> {
            fn drop(&mut self) {
                let _ = unmount_below(self.0);
            }
        }
        let _unmount = Unmount(dir.path());
        let in_memory = CreateOptions {
            in_memory: true,
            ..Default::default()
        };
        let mounts_below = |dir: &Path| {
            crate::files::mountinfo::mount_points()
                .into_iter()
                .filter(|p| p.starts_with(dir))
                .collect::<Vec<_>>()
        };
        let is_tmpfs = |path: &Path| {
            nix::sys::statfs::statfs(path).unwrap().filesystem_type()
                == nix::sys::statfs::TMPFS_MAGIC
        };
        let write: Realize<'_> = &|root, _| root.write("etc/hostname", b"x\n", 0o644);
        create(&paths, &n("mem"), &in_memory, write).unwrap();
        let prepared = prepare(&paths, &n("mem2"), &in_memory, write).unwrap();
        commit(&paths, prepared, &in_memory).unwrap();
        let unused = prepare(&paths, &n("mem3"), &in_memory, write).unwrap();
        discard(unused);
        let fail: Realize<'_> = &|_, _| Err(Error::Build("broken.nix:1:1: no".into()));
        assert!(prepare(&paths, &n("mem4"), &in_memory, fail).is_err());
        assert!(create(&paths, &n("mem5"), &in_memory, fail).is_err());
        for name in ["mem", "mem2"] {
            let root = paths.root(name);
            assert!(is_tmpfs(&root), "{name}");
            assert_eq!(
                fs::read_to_string(root.join("etc/hostname")).unwrap(),
                "x\n"
            );
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&root).unwrap().permissions().mode() & 0o7777,
                0o755
            );
        }
        assert_eq!(
            mounts_below(dir.path()),
            [paths.root("mem"), paths.root("mem2")]
        );
        for name in ["mem", "mem2"] {
            remove_files(&paths, &n(name)).unwrap();
        }
        assert_eq!(mounts_below(dir.path()), Vec::<PathBuf>::new());
        assert_eq!(snapshot(&paths.state_dir), Vec::<PathBuf>::new());
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
