//! `pkgs` on a host without Nix: the host's own programs as packages (a container sees the
//! host's `/usr`), `pkgs.writeText` and friends as files of the generation, and a clear error
//! for what only Nix builds. See ARCHITECTURE.md, "The Nix language".

use std::path::Path;
use std::rc::Rc;

use crate::nixlang::compile::Pos;
use crate::nixlang::value::{PrimOp, PrimOpApp};
use crate::nixlang::{Attrs, EvalError, Evaluator, LOOKUP_ATTR, Location, SourceMap, Thunk, Value};

/// What `modulesPath` is: NixOS's own modules are not on a host without nixpkgs.
pub const NO_NIXPKGS: &str = "/nix/var/ncsh/no-nixpkgs/nixos/modules";

/// nixpkgs attribute → (its main program, the Debian package that provides it), sorted by
/// attribute (bytewise) for a binary search. A "program" with a `/` is a file below `/usr`
/// that shows the package installed (a library's), and the package has no main program.
pub(crate) const KNOWN: &[(&str, &str, &str)] = &[
    ("apacheHttpd", "apache2", "apache2"),
    ("bash", "bash", "bash"),
    ("bashInteractive", "bash", "bash"),
    ("bat", "batcat", "bat"),
    ("bind", "named", "bind9"),
    ("borgbackup", "borg", "borgbackup"),
    ("busybox", "busybox", "busybox"),
    ("caddy", "caddy", "caddy"),
    ("cmake", "cmake", "cmake"),
    ("coreutils", "ls", "coreutils"),
    ("curl", "curl", "curl"),
    ("diffutils", "diff", "diffutils"),
    ("dig", "dig", "bind9-dnsutils"),
    ("dnsmasq", "dnsmasq", "dnsmasq-base"),
    ("dnsutils", "dig", "bind9-dnsutils"),
    ("e2fsprogs", "mke2fs", "e2fsprogs"),
    ("emacs", "emacs", "emacs"),
    ("fd", "fdfind", "fd-find"),
    ("file", "file", "file"),
    ("findutils", "find", "findutils"),
    ("fish", "fish", "fish"),
    ("gawk", "gawk", "gawk"),
    ("gcc", "gcc", "gcc"),
    ("git", "git", "git"),
    ("gnugrep", "grep", "grep"),
    ("gnumake", "make", "make"),
    ("gnupg", "gpg", "gnupg"),
    ("gnused", "sed", "sed"),
    ("gnutar", "tar", "tar"),
    ("go", "go", "golang-go"),
    ("gzip", "gzip", "gzip"),
    ("haproxy", "haproxy", "haproxy"),
    ("hostname", "hostname", "hostname"),
    ("htop", "htop", "htop"),
    ("iproute2", "ip", "iproute2"),
    ("iptables", "iptables", "iptables"),
    ("iputils", "ping", "iputils-ping"),
    ("jq", "jq", "jq"),
    ("kmod", "modprobe", "kmod"),
    ("less", "less", "less"),
    ("lsof", "lsof", "lsof"),
    ("mariadb", "mariadb", "mariadb-server"),
    ("mariadb-galera", "lib/libgalera_smm.so", "galera-4"),
    ("memcached", "memcached", "memcached"),
    ("mosquitto", "mosquitto", "mosquitto"),
    ("mtr", "mtr", "mtr-tiny"),
    ("nano", "nano", "nano"),
    ("ncdu", "ncdu", "ncdu"),
    ("neovim", "nvim", "neovim"),
    ("netcat", "nc", "netcat-openbsd"),
    ("nftables", "nft", "nftables"),
    ("nginx", "nginx", "nginx"),
    ("nodejs", "node", "nodejs"),
    ("openssh", "ssh", "openssh-client"),
    ("openssl", "openssl", "openssl"),
    ("perl", "perl", "perl"),
    ("php", "php", "php-cli"),
    ("postgresql", "psql", "postgresql"),
    ("procps", "ps", "procps"),
    ("python3", "python3", "python3"),
    ("redis", "redis-server", "redis-server"),
    ("restic", "restic", "restic"),
    ("ripgrep", "rg", "ripgrep"),
    ("rsync", "rsync", "rsync"),
    ("ruby", "ruby", "ruby"),
    ("screen", "screen", "screen"),
    ("shadow", "passwd", "passwd"),
    ("socat", "socat", "socat"),
    ("sqlite", "sqlite3", "sqlite3"),
    ("strace", "strace", "strace"),
    ("sudo", "sudo", "sudo"),
    ("systemd", "systemctl", "systemd"),
    ("tcpdump", "tcpdump", "tcpdump"),
    ("tmux", "tmux", "tmux"),
    ("tree", "tree", "tree"),
    ("unzip", "unzip", "unzip"),
    ("util-linux", "mount", "util-linux"),
    ("vim", "vim", "vim"),
    ("wget", "wget", "wget"),
    ("which", "which", "debianutils"),
    ("wireguard-tools", "wg", "wireguard-tools"),
    ("xz", "xz", "xz-utils"),
    ("zip", "zip", "zip"),
    ("zsh", "zsh", "zsh"),
    ("zstd", "zstd", "zstd"),
];

/// Builders that need Nix itself.
const NEEDS_NIX: &[&str] = &[
    "buildEnv",
    "callPackage",
    "fetchFromGitHub",
    "fetchgit",
    "fetchurl",
    "mkDerivation",
    "runCommand",
    "runCommandLocal",
    "stdenvNoCC",
    "symlinkJoin",
];

/// The `pkgs.write*` functions, on top of [`WRITE_FILE`].
const WRITERS: &str = r##"{ writeFile, lib }: rec {
  writeTextFile = { name, text, executable ? false, destination ? "", ... }:
    writeFile { inherit name text executable destination; };
  writeText = name: text: writeTextFile { inherit name text; };
  writeTextDir = path: text:
    writeTextFile { name = baseNameOf path; inherit text; destination = "/${path}"; };
  writeScript = name: text: writeTextFile { inherit name text; executable = true; };
  writeScriptBin = name: text:
    writeTextFile { inherit name text; executable = true; destination = "/bin/${name}"; };
  writeShellScript = name: text: writeScript name "#!/bin/bash\n${text}";
  writeShellScriptBin = name: text: writeScriptBin name "#!/bin/bash\n${text}";
  writeShellApplication = { name, text, runtimeInputs ? [ ], ... }:
    writeScriptBin name ("#!/bin/bash\nset -o errexit -o nounset -o pipefail\n"
      + lib.optionalString (runtimeInputs != [ ])
          "export PATH=\"${lib.makeBinPath runtimeInputs}:$PATH\"\n"
      + text);
}"##;

static WRITE_FILE: PrimOp = PrimOp {
    name: "writeFile",
    arity: 1,
    run: write_file,
};

fn err(msg: impl Into<String>) -> EvalError {
    EvalError::at(&Location::new("<pkgs>", 0, 0), msg)
}

/// `writeFile { name; text; executable; destination; }`: a file of the generation under
/// `/nix/store/HASH-NAME`, as Nix would place it.
fn write_file(ev: &mut Evaluator, a: &[Thunk]) -> Result<Value, EvalError> {
    use sha2::Digest;
    let args = ev.force_attrs(&a[0])?;
    let field = |k: &str| {
        args.get(k)
            .cloned()
            .ok_or_else(|| err(format!("writeTextFile: attribute '{k}' missing")))
    };
    let name = ev.force_str(&field("name")?)?;
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Err(err(format!(
            "the name ‘{name}’ cannot be a file name in the store (no '/', not starting with '.')"
        )));
    }
    let text_value = ev.force(&field("text")?)?;
    let text = ev.coerce_to_string(text_value, false, None)?;
    let executable = matches!(ev.force(&field("executable")?)?, Value::Bool(true));
    let destination = ev.force_str(&field("destination")?)?;
    if destination.split('/').any(|c| c == "..") {
        return Err(err(format!(
            "writeTextFile: destination ‘{destination}’ leaves its directory"
        )));
    }
    let mut hasher = sha2::Sha256::new();
    for part in [
        name.as_bytes(),
        destination.as_bytes(),
        text.as_bytes(),
        &[u8::from(executable)],
    ] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    let hash: String = hasher.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let out = format!("/nix/store/{hash}-{name}");
    let file = format!("{out}{destination}");
    ev.written.insert(file, (text, executable));
    let mut drv = Attrs::new();
    drv.insert("type".into(), Value::string("derivation").into());
    drv.insert("name".into(), Value::String(name.clone()).into());
    drv.insert("outPath".into(), Value::string(out).into());
    let mut meta = Attrs::new();
    meta.insert("mainProgram".into(), Value::String(name).into());
    drv.insert("meta".into(), Value::attrs(meta).into());
    Ok(Value::attrs(drv))
}

/// The version of Debian package `name` as installed on the host, from dpkg's status file
/// (`text`), if it is installed.
/// dpkg's record of the host's packages (`/var/lib/dpkg/status`, about 700 KB on a Debian
/// host), mapped once and searched for one package at a time.
pub struct DpkgStatus(Bytes);

enum Bytes {
    Mapped(memmap2::Mmap),
    #[cfg(test)]
    Owned(Vec<u8>),
    Empty,
}

impl DpkgStatus {
    pub const PATH: &str = "/var/lib/dpkg/status";

    /// The status file at `path`; empty (no package installed) when it cannot be read.
    pub fn read(path: &Path) -> DpkgStatus {
        let map = std::fs::File::open(path).ok().and_then(|file| {
            // SAFETY: dpkg replaces its status file by renaming a new one over it, never
            // truncating it in place, so the mapped file does not shrink under the mapping.
            unsafe { memmap2::Mmap::map(&file) }.ok()
        });
        DpkgStatus(map.map_or(Bytes::Empty, Bytes::Mapped))
    }

    fn bytes(&self) -> &[u8] {
        match &self.0 {
            Bytes::Mapped(m) => m,
            #[cfg(test)]
            Bytes::Owned(v) => v,
            Bytes::Empty => &[],
        }
    }

    /// The upstream version (no epoch, no Debian revision) of `package` when it is installed:
    /// "10.11.19" for mariadb-server 1:10.11.19-0+deb12u1.
    pub fn version(&self, package: &str) -> Option<String> {
        let text = self.bytes();
        let needle = format!("Package: {package}\n");
        let finder = memchr::memmem::Finder::new(needle.as_bytes());
        let mut from = 0;
        while let Some(at) = finder.find(&text[from..]) {
            let start = from + at;
            from = start + needle.len();
            if start != 0 && text[start - 1] != b'\n' {
                continue;
            }
            let para = &text[start..];
            let para = &para[..memchr::memmem::find(para, b"\n\n").unwrap_or(para.len())];
            let para = String::from_utf8_lossy(para);
            let field = |k: &str| para.lines().find_map(|l| l.strip_prefix(k)).map(str::trim);
            if field("Status: ").is_some_and(|s| s.ends_with(" installed")) {
                return field("Version: ").map(upstream_version);
            }
        }
        None
    }
}

/// A Debian version as upstream writes it: no epoch, no Debian revision (`1:7.88.1-10` →
/// `7.88.1`).
fn upstream_version(v: &str) -> String {
    let v = v.split_once(':').map_or(v, |(_, rest)| rest);
    let v = v.rsplit_once('-').map_or(v, |(up, _)| up);
    v.split(['+', '~']).next().unwrap_or(v).to_string()
}

/// dpkg's status file as mapped, and the versions looked up in it so far.
struct VersionTable {
    stamp: FileStamp,
    status: DpkgStatus,
    found: crate::nixlang::HashMap<String, Option<String>>,
}

/// What says a file is unchanged: its modification time, size, device and inode (dpkg
/// renames a new status file over the old one).
type FileStamp = Option<(std::time::SystemTime, u64, u64, u64)>;

fn file_stamp(path: &str) -> FileStamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.dev(), m.ino()))
}

impl VersionTable {
    fn version(&mut self, package: &str) -> Option<String> {
        if let Some(v) = self.found.get(package) {
            return v.clone();
        }
        let v = self.status.version(package);
        self.found.insert(package.to_string(), v.clone());
        v
    }
}

thread_local! {
    /// The last status file read in this thread, kept while it is unchanged.
    static DPKG: std::cell::RefCell<Option<VersionTable>> =
        const { std::cell::RefCell::new(None) };
}

/// The upstream version of Debian package `debian` as installed on the host (see
/// [`DpkgStatus::version`]), from the thread's table while dpkg's status file is unchanged
/// (searching the 700 KB file for each package a configuration names, and mapping it, was a
/// fiftieth of an evaluation), else from a new one.
fn host_version(debian: &str) -> Option<String> {
    let stamp = file_stamp(DpkgStatus::PATH);
    DPKG.with_borrow_mut(|kept| {
        let table = match kept {
            Some(t) if stamp.is_some() && t.stamp == stamp => t,
            _ => kept.insert(VersionTable {
                stamp,
                status: DpkgStatus::read(Path::new(DpkgStatus::PATH)),
                found: Default::default(),
            }),
        };
        table.version(debian)
    })
}

/// One package: `prefix` is its out path, `program` its main program below `prefix/bin` (or
/// `sbin`), `debian` the Debian package that provides it.
fn package(attr: &str, prefix: &str, program: &str, debian: &str) -> Value {
    let library = program.contains('/');
    let installed = if library {
        Path::new(prefix).join(program).exists()
    } else {
        ["bin", "sbin"]
            .iter()
            .any(|d| Path::new(prefix).join(d).join(program).exists())
    };
    let version = {
        let debian = debian.to_string();
        Thunk::native(Box::new(move |_| {
            Ok(Value::string(host_version(&debian).unwrap_or_default()))
        }))
    };
    let out_path = if installed {
        Thunk::value(Value::string(prefix))
    } else {
        let what = if library { "file" } else { "program" };
        let msg = format!(
            "pkgs.{attr} is not installed on this host: its {what} {program} comes from the \
             Debian package ‘{debian}’ (apt-get install {debian})"
        );
        Thunk::native(Box::new(move |_| Err(err(msg))))
    };
    let mut drv = Attrs::new();
    drv.insert("type".into(), Value::string("derivation").into());
    drv.insert("pname".into(), Value::string(attr).into());
    drv.insert("name".into(), Value::string(attr).into());
    drv.insert("version".into(), version);
    drv.insert("outPath".into(), out_path);
    let mut meta = Attrs::new();
    if !library {
        drv.insert("mainProgram".into(), Value::string(program).into());
        meta.insert("mainProgram".into(), Value::string(program).into());
    }
    meta.insert(
        "description".into(),
        Value::string(format!("{debian} from the host (Debian)")).into(),
    );
    drv.insert("meta".into(), Value::attrs(meta).into());
    drv.insert(
        "outputs".into(),
        Value::list(vec![Value::string("out").into()]).into(),
    );
    let drv = Rc::new(drv);
    // `pkg.out`, `pkg.bin`…: the package itself.
    let mut with_outputs = (*drv).clone();
    for o in ["out", "bin", "lib", "dev", "man"] {
        with_outputs.insert(o.into(), Value::Attrs(drv.clone()).into());
    }
    Value::attrs(with_outputs)
}

/// The directories whose programs are packages, the first winning.
const PROGRAM_DIRS: [&str; 2] = ["/usr/sbin", "/usr/bin"];

/// Where the host's PostgreSQL servers are, one directory per major version.
const POSTGRESQL_DIR: &str = "/usr/lib/postgresql";

/// Whether `name` is a program of the host's [`PROGRAM_DIRS`] (anything of that name there, as
/// a listing of them would have it).
fn is_host_program(name: &str) -> bool {
    let plain = !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0']);
    plain
        && PROGRAM_DIRS
            .iter()
            .any(|d| std::fs::symlink_metadata(Path::new(d).join(name)).is_ok())
}

/// The host's PostgreSQL major versions ("15", or "9.6" before 10), ascending.
fn host_postgresql_majors() -> Vec<String> {
    let mut majors: Vec<(Vec<u32>, String)> = std::fs::read_dir(POSTGRESQL_DIR)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let key = name
                .split('.')
                .map(|c| c.parse().ok())
                .collect::<Option<_>>()?;
            Some((key, name))
        })
        .collect();
    majors.sort_unstable();
    majors.into_iter().map(|(_, name)| name).collect()
}

/// `pkgs.postgresql_N`: the host's PostgreSQL N (`major`: "15", "9.6"), or an error that names
/// the versions the host has.
fn postgresql(attr: &str, major: &str) -> Thunk {
    let prefix = format!("{POSTGRESQL_DIR}/{major}");
    if Path::new(&prefix).is_dir() {
        let (attr, debian) = (attr.to_string(), format!("postgresql-{major}"));
        return Thunk::native(Box::new(move |_| {
            Ok(package(&attr, &prefix, "postgres", &debian))
        }));
    }
    let has: Vec<String> = host_postgresql_majors()
        .iter()
        .map(|m| format!("PostgreSQL {m} (pkgs.postgresql_{})", m.replace('.', "_")))
        .collect();
    let msg = if has.is_empty() {
        format!(
            "pkgs.{attr}: this host has no PostgreSQL server (apt-get install postgresql); a Nix \
             host builds PostgreSQL {major} for real (NCSH_BUILDER=nix)"
        )
    } else {
        format!(
            "pkgs.{attr}: this host has {} only; a Nix host builds PostgreSQL {major} for real \
             (NCSH_BUILDER=nix)",
            has.join(" and ")
        )
    };
    Thunk::native(Box::new(move |_| Err(err(msg))))
}

/// `pkgs.mariadb_XY`: the host's MariaDB when it is version `version` (major.minor), or an
/// error that names the version the host has.
fn mariadb(attr: &str, version: &str) -> Thunk {
    let (attr, version) = (attr.to_string(), version.to_string());
    Thunk::native(Box::new(move |_| {
        let host = host_version("mariadb-server");
        let host_minor = host.as_deref().map(|v| {
            let mut parts = v.split('.');
            format!(
                "{}.{}",
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default()
            )
        });
        match host_minor {
            Some(h) if h == version => Ok(package(&attr, "/usr", "mariadb", "mariadb-server")),
            Some(h) => Err(err(format!(
                "pkgs.{attr}: this host has MariaDB {h} only (pkgs.mariadb_{}); a Nix host \
                 builds MariaDB {version} for real (NCSH_BUILDER=nix)",
                h.replace('.', "")
            ))),
            None => Err(err(format!(
                "pkgs.{attr}: this host has no MariaDB server (apt-get install mariadb-server); \
                 a Nix host builds MariaDB {version} for real (NCSH_BUILDER=nix)"
            ))),
        }
    }))
}

/// What `pkgs.NAME` is for a name the set does not hold: a package nixpkgs calls so
/// ([`KNOWN`]), a builder that needs Nix ([`NEEDS_NIX`]), the host's PostgreSQL or MariaDB of
/// a version, or a program of the host's. `None` when there is none of these.
fn made_on_lookup(name: &str) -> Option<Thunk> {
    if let Ok(i) = KNOWN.binary_search_by(|(attr, _, _)| (*attr).cmp(name)) {
        let (attr, program, debian) = KNOWN[i];
        return Some(Thunk::native(Box::new(move |_| {
            Ok(package(attr, "/usr", program, debian))
        })));
    }
    if NEEDS_NIX.contains(&name) {
        let msg = format!(
            "pkgs.{name} builds with Nix, which this host does not have; a Nix host builds it \
             for real (NCSH_BUILDER=nix)"
        );
        return Some(Thunk::native(Box::new(move |_| Err(err(msg)))));
    }
    if let Some(major) = name.strip_prefix("postgresql_")
        && major.starts_with(|c: char| c.is_ascii_digit())
        && major.bytes().all(|b| b.is_ascii_digit() || b == b'_')
    {
        // `postgresql_9_6` is PostgreSQL 9.6.
        return Some(postgresql(name, &major.replace('_', ".")));
    }
    if let Some(digits) = name.strip_prefix("mariadb_")
        && digits.len() >= 3
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        // `mariadb_1011` is MariaDB 10.11, `mariadb_114` 11.4.
        let (major, minor) = digits.split_at(2);
        return Some(mariadb(name, &format!("{major}.{minor}")));
    }
    is_host_program(name).then(|| {
        let name = name.to_string();
        Thunk::native(Box::new(move |_| Ok(package(&name, "/usr", &name, &name))))
    })
}

static MADE_ON_LOOKUP: PrimOp = PrimOp {
    name: "hostPackage",
    arity: 1,
    run: |ev, a| {
        let name = ev.force_str(&a[0])?;
        Ok(Value::list(made_on_lookup(&name).into_iter().collect()))
    },
};
/// The names of the set [`WRITERS`] gives (a test checks them).
const WRITER_NAMES: [&str; 8] = [
    "writeTextFile",
    "writeText",
    "writeTextDir",
    "writeScript",
    "writeScriptBin",
    "writeShellScript",
    "writeShellScriptBin",
    "writeShellApplication",
];

/// The set [`WRITERS`] gives for `lib`.
fn writers(ev: &mut Evaluator, lib: Value) -> Result<Value, EvalError> {
    let writer = Value::PrimOp(Rc::new(PrimOpApp {
        op: &WRITE_FILE,
        args: Vec::new(),
    }));
    let writers = ev.eval_shipped(
        WRITERS,
        SourceMap::new(Path::new("<ncsh>/pkgs"), WRITERS, 0),
        Path::new("/"),
    )?;
    let mut args = Attrs::new();
    args.insert("writeFile".into(), writer.into());
    args.insert("lib".into(), lib.into());
    ev.apply(writers, Value::attrs(args).into(), None::<&Pos>)
}

/// `pkgs`: the `write*` builders, `lib`, `system`, `stdenv`; and, made when first looked up
/// (see [`LOOKUP_ATTR`]), every known nixpkgs name, every program of the host's `/usr/bin` and
/// `/usr/sbin`, and `postgresql_N` for the host's PostgreSQL versions.
pub fn host_packages(lib: Value) -> Result<Value, EvalError> {
    let mut pkgs = Attrs::new();
    // The writers are compiled when one is first used (few configurations use them).
    let all = {
        let lib = lib.clone();
        Thunk::native(Box::new(move |ev: &mut Evaluator| writers(ev, lib)))
    };
    for name in WRITER_NAMES {
        let all = all.clone();
        pkgs.insert(
            name.into(),
            Thunk::native(Box::new(move |ev: &mut Evaluator| {
                let set = ev.force_attrs(&all)?;
                match set.get(name) {
                    Some(w) => ev.force(w),
                    None => Err(err(format!("pkgs.{name}: not among ncsh's writers"))),
                }
            })),
        );
    }
    let system = format!("{}-linux", std::env::consts::ARCH);
    let mut platform = Attrs::new();
    platform.insert("system".into(), Value::string(system.as_str()).into());
    platform.insert("isLinux".into(), Value::Bool(true).into());
    let platform = Value::attrs(platform);
    let mut stdenv = Attrs::new();
    stdenv.insert("isLinux".into(), Value::Bool(true).into());
    stdenv.insert("hostPlatform".into(), platform.clone().into());
    stdenv.insert("buildPlatform".into(), platform.into());
    pkgs.insert("stdenv".into(), Value::attrs(stdenv).into());
    pkgs.insert("system".into(), Value::string(system).into());
    pkgs.insert("lib".into(), lib.into());
    pkgs.insert(
        "__ncshMissing".into(),
        Value::string(
            "no such program on this host (not in /usr/bin or /usr/sbin) and no package ncsh \
             knows by that name; a Nix host builds it for real (NCSH_BUILDER=nix)",
        )
        .into(),
    );
    let lookup = Value::PrimOp(Rc::new(PrimOpApp {
        op: &MADE_ON_LOOKUP,
        args: Vec::new(),
    }));
    pkgs.insert(LOOKUP_ATTR.into(), lookup.into());
    Ok(Value::attrs(pkgs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_packages_are_sorted_for_their_binary_search() {
        assert!(KNOWN.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn writer_names_are_the_writers() {
        let mut ev = Evaluator::new();
        let w = writers(&mut ev, Value::attrs(Attrs::new())).unwrap();
        let Value::Attrs(w) = w else {
            panic!("the writers are not a set")
        };
        let mut names: Vec<&str> = w.keys().map(|k| &**k).collect();
        let mut expected = WRITER_NAMES.to_vec();
        names.sort_unstable();
        expected.sort_unstable();
        assert_eq!(names, expected);
    }

    #[test]
    fn versions_from_dpkg_status() {
        let status = DpkgStatus(Bytes::Owned(
            b"Package: xa\nStatus: install ok installed\nVersion: 9\n\n\
              Package: a\nStatus: install ok installed\nVersion: 1:2.3-4\n\n\
              Package: b\nStatus: deinstall ok config-files\nVersion: 1\n\n\
              Package: ab\nStatus: install ok installed\nVersion: 5\n"
                .to_vec(),
        ));
        let v = |p: &str| status.version(p);
        assert_eq!(v("a").as_deref(), Some("2.3"));
        assert_eq!(v("b"), None, "not installed");
        assert_eq!(v("ab").as_deref(), Some("5"));
        assert_eq!(v("c"), None);
        assert_eq!(
            DpkgStatus::read(Path::new("/nonexistent")).version("a"),
            None
        );
        assert_eq!(upstream_version("1:2.3-4"), "2.3");
        assert_eq!(upstream_version("15.10-0+deb12u1"), "15.10");
    }
}
