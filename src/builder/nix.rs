//! The Nix builder: builds a container's system exactly as nixos-container's `create` and
//! `update` do, with `nix-env` (or `nix build` for flakes) into the per-container profile
//! `…/profiles/per-container/NAME/system`. Commands run from argv, never through a shell.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{BuildRequest, Builder, BuilderKind, Built, ConfigSource, NixOptions};
use crate::container::options::split_flake;
use crate::error::{Context, Error, Result};
use crate::files::ensure_dir;

/// How many lines of a failed build's log the error carries.
const LOG_TAIL: usize = 20;

/// Builds with Nix (see the module docs).
#[derive(Debug, Default, Clone, Copy)]
pub struct NixBuilder;

/// Is `program` an executable file in one of the `PATH` directories?
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// The entries of a `NIX_PATH` (`:`-separated; URLs keep their `://`).
fn nix_path_entries(value: &str) -> Vec<String> {
    let mut entries: Vec<String> = Vec::new();
    for piece in value.split(':') {
        match entries.last_mut() {
            Some(last) if piece.starts_with("//") => {
                last.push(':');
                last.push_str(piece);
            }
            _ => entries.push(piece.to_string()),
        }
    }
    entries.retain(|e| !e.is_empty());
    entries
}

/// Does `<nixpkgs/nixos>` resolve through this search path (as `nix-instantiate --find-file`)?
fn resolves_nixos(entries: &[String]) -> bool {
    entries.iter().any(|entry| match entry.split_once('=') {
        Some((prefix, target)) => {
            let url = target.contains("://");
            match prefix {
                "nixpkgs" => url || Path::new(target).join("nixos").exists(),
                "nixpkgs/nixos" => url || Path::new(target).exists(),
                _ => false,
            }
        }
        None => Path::new(entry).join("nixpkgs/nixos").exists(),
    })
}

/// Nix's default search path when `NIX_PATH` is unset (Nix 2.8).
fn default_nix_path() -> Vec<String> {
    let mut entries = Vec::new();
    if let Some(home) = std::env::var_os("HOME") {
        entries.push(format!(
            "{}/.nix-defexpr/channels",
            Path::new(&home).display()
        ));
    }
    entries.push("nixpkgs=/nix/var/nix/profiles/per-user/root/channels/nixpkgs".into());
    entries.push("/nix/var/nix/profiles/per-user/root/channels".into());
    entries
}

/// Is this a Nix host: `nix-env` on `PATH` and `<nixpkgs/nixos>` resolvable?
pub fn available() -> bool {
    if !on_path("nix-env") {
        return false;
    }
    let entries = match std::env::var("NIX_PATH") {
        Ok(value) if !value.is_empty() => nix_path_entries(&value),
        _ => default_nix_path(),
    };
    resolves_nixos(&entries)
}

fn os(items: &[&dyn AsRef<OsStr>]) -> Vec<OsString> {
    items.iter().map(|s| s.as_ref().to_owned()).collect()
}

/// `nix-env -p PROFILE -I nixos-config=CONFIG -f NIXOS --set -A system FLAGS…`.
pub fn env_build_argv(
    profile: &Path,
    config: &Path,
    nixos_path: Option<&str>,
    flags: &[String],
) -> Vec<OsString> {
    let mut include = OsString::from("nixos-config=");
    include.push(config);
    let mut argv = os(&[
        &"-p",
        &profile,
        &"-I",
        &include,
        &"-f",
        &nixos_path.unwrap_or("<nixpkgs/nixos>"),
        &"--set",
        &"-A",
        &"system",
    ]);
    argv.extend(flags.iter().map(OsString::from));
    argv
}

/// `nix-env -p PROFILE --set SYSTEM`.
pub fn set_argv(profile: &Path, system: &Path) -> Vec<OsString> {
    os(&[&"-p", &profile, &"--set", &system])
}

/// `nix build -o OUT FLAGS… -- 'REF#nixosConfigurations."ATTR".config.system.build.toplevel'`.
pub fn flake_argv(out_link: &Path, flake: &str, flags: &[String], refresh: bool) -> Vec<OsString> {
    let (reference, attr) = split_flake(flake);
    // Debian's Nix 2.8 ships with these off; on NixOS hosts with them on this changes nothing.
    let mut argv = os(&[
        &"build",
        &"--extra-experimental-features",
        &"nix-command flakes",
        &"-o",
        &out_link,
    ]);
    argv.extend(flags.iter().map(OsString::from));
    if refresh {
        argv.push("--refresh".into());
    }
    argv.push("--".into());
    argv.push(
        format!("{reference}#nixosConfigurations.\"{attr}\".config.system.build.toplevel").into(),
    );
    argv
}

/// Run a Nix command; its output goes to our stderr as it comes, and a failure carries the last
/// lines of it.
fn run(program: &str, argv: &[OsString], message: &str) -> Result<()> {
    let mut child = Command::new(program)
        .args(argv)
        // As nixos-container: a host NIXOS_CONFIG must not leak into container builds.
        .env("NIXOS_CONFIG", "")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::MissingTool {
                    tool: program.to_string(),
                    package: "nix-bin",
                }
            } else {
                Error::io(format!("running {program}"), e)
            }
        })?;
    let stdout = child.stdout.take();
    let relay_stdout = std::thread::spawn(move || {
        if let Some(out) = stdout {
            for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
                eprintln!("{line}");
            }
        }
    });
    let mut tail: VecDeque<String> = VecDeque::new();
    if let Some(err) = child.stderr.take() {
        let mut stderr = std::io::stderr();
        for line in BufReader::new(err).lines().map_while(|l| l.ok()) {
            let _ = writeln!(stderr, "{line}");
            if tail.len() == LOG_TAIL {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    }
    let _ = relay_stdout.join();
    let status = child.wait().context(|| format!("waiting for {program}"))?;
    if status.success() {
        return Ok(());
    }
    let shown: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut log = format!("`{program} {}` failed ({status})", shown.join(" "));
    for line in tail {
        log.push('\n');
        log.push_str(&line);
    }
    Err(Error::NixBuild {
        message: message.to_string(),
        log,
    })
}

/// Set profile `profile` (`…/per-container/NAME/system`) to `system`, as a new generation.
pub fn set_profile(profile: &Path, system: &Path) -> Result<()> {
    run(
        "nix-env",
        &set_argv(profile, system),
        "failed to set container configuration",
    )
}

/// Build `flake` into a temporary out-link and return the system it points to.
fn build_flake(request: &BuildRequest, flake: &str) -> Result<PathBuf> {
    build_flake_at(&request.profile.join(".system.tmp"), flake, &request.nix)
}

/// Build `flake` (`REF[#ATTR]`) with `nix build -o OUT_LINK` and the flags of `nix`, and
/// return the system it built; the out-link is removed again (as nixos-container does, right
/// after reading it).
pub fn build_flake_at(out_link: &Path, flake: &str, nix: &NixOptions) -> Result<PathBuf> {
    let argv = flake_argv(out_link, flake, &nix.flags, nix.refresh);
    let built = run(
        "nix",
        &argv,
        &format!("failed to build container from flake '{flake}'"),
    );
    let target = std::fs::read_link(out_link);
    let _ = crate::files::remove_path(out_link);
    built?;
    target.context(|| format!("reading {}", out_link.display()))
}

impl Builder for NixBuilder {
    fn kind(&self) -> BuilderKind {
        BuilderKind::Nix
    }

    fn build(&self, request: &BuildRequest) -> Result<Built> {
        let NixOptions {
            system_path,
            nixos_path,
            flake,
            flags,
            ..
        } = &request.nix;
        if let Some(parent) = request.profile.parent() {
            ensure_dir(parent, 0o700)?;
        }
        ensure_dir(&request.profile, 0o755)?;
        let profile = request.profile.join("system");
        // A flake given now, or the container's own when update is given no configuration
        // (nor a system).
        let flake = flake.clone().or_else(|| {
            (request.source == ConfigSource::Existing && system_path.is_none())
                .then(|| request.conf_flake.clone())
                .flatten()
        });
        let system = match (&flake, system_path) {
            (Some(flake), _) => Some(build_flake(request, flake)?),
            (None, Some(path)) => Some(PathBuf::from(path)),
            (None, None) => None,
        };
        let initial = if request.initial { "initial " } else { "" };
        match system {
            Some(system) => run(
                "nix-env",
                &set_argv(&profile, &system),
                &format!("failed to set {initial}container configuration"),
            )?,
            None => run(
                "nix-env",
                &env_build_argv(&profile, &request.config, nixos_path.as_deref(), flags),
                &format!("failed to build {initial}container configuration"),
            )?,
        }
        let system = std::fs::canonicalize(&profile)
            .context(|| format!("reading the profile {}", profile.display()))?;
        Ok(Built::NixSystem(system))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(argv: Vec<OsString>) -> Vec<String> {
        argv.into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn nix_env_argv_is_nixos_containers() {
        let argv = env_build_argv(
            Path::new("/p/foo/system"),
            Path::new("/r/foo/etc/nixos/configuration.nix"),
            None,
            &[
                "--option".into(),
                "max-jobs".into(),
                "1".into(),
                "--impure".into(),
            ],
        );
        assert_eq!(
            strings(argv),
            [
                "-p",
                "/p/foo/system",
                "-I",
                "nixos-config=/r/foo/etc/nixos/configuration.nix",
                "-f",
                "<nixpkgs/nixos>",
                "--set",
                "-A",
                "system",
                "--option",
                "max-jobs",
                "1",
                "--impure"
            ]
        );
        let argv = env_build_argv(Path::new("/p"), Path::new("/c"), Some("/n/nixos"), &[]);
        assert_eq!(strings(argv)[5], "/n/nixos");
        assert_eq!(
            strings(set_argv(Path::new("/p/system"), Path::new("/nix/store/x"))),
            ["-p", "/p/system", "--set", "/nix/store/x"]
        );
    }

    #[test]
    fn flakes() {
        assert_eq!(
            split_flake("github:a/b#web"),
            ("github:a/b".into(), "web".into())
        );
        assert_eq!(split_flake("/src"), ("/src".into(), "container".into()));
        assert_eq!(split_flake("/src#"), ("/src#".into(), "container".into()));
        let argv = strings(flake_argv(
            Path::new("/p/.system.tmp"),
            "/src#web",
            &["--override-input".into(), "a".into(), "b".into()],
            true,
        ));
        assert_eq!(argv[0], "build");
        assert_eq!(&argv[3..5], ["-o", "/p/.system.tmp"]);
        assert_eq!(&argv[5..9], ["--override-input", "a", "b", "--refresh"]);
        assert_eq!(
            argv[9..],
            [
                "--",
                "/src#nixosConfigurations.\"web\".config.system.build.toplevel"
            ]
        );
    }

    #[test]
    fn nix_path_resolution() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("pkgs/nixos")).unwrap();
        std::fs::create_dir_all(dir.path().join("chan/nixpkgs/nixos")).unwrap();
        let d = dir.path().display();
        assert!(resolves_nixos(&nix_path_entries(&format!(
            "foo=/x:nixpkgs={d}/pkgs"
        ))));
        assert!(resolves_nixos(&nix_path_entries(&format!("{d}/chan"))));
        assert!(!resolves_nixos(&nix_path_entries(&format!(
            "nixpkgs={d}/chan:/nonexistent"
        ))));
        assert_eq!(
            nix_path_entries("nixpkgs=https://x.org/a.tar.gz:/b"),
            ["nixpkgs=https://x.org/a.tar.gz", "/b"]
        );
        assert!(resolves_nixos(&nix_path_entries(
            "nixpkgs=https://x.org/a.tar.gz"
        )));
    }
}
