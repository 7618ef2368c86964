//! The Nix builder with the host's real Nix (Debian's `nix-bin`, single-user as root, store in
//! `/nix`): `tests/nix/nixos` stands in for `<nixpkgs/nixos>` (found through `NIX_PATH`, so the
//! builder is chosen automatically) and builds a real derivation whose `init` execs the host's
//! systemd. Each test removes its containers, then deletes its store paths and stale GC roots.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::common::*;
use crate::testhost::{self, TestHost};

/// An [`Env`] whose `ncsh` runs choose their builder by themselves, on a Nix host.
pub(crate) struct NixEnv {
    pub(crate) env: Env,
    names: RefCell<Vec<String>>,
    pub(crate) store_paths: RefCell<Vec<PathBuf>>,
}

fn require_nix() {
    require_root();
    assert!(
        Command::new("nix-env").arg("--version").output().is_ok(),
        "install nix-bin (scripts/setup-debian.sh) to run the Nix builder tests"
    );
}

fn nixos_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nix")
}

impl NixEnv {
    pub(crate) fn new() -> NixEnv {
        require_nix();
        let env = Env::new();
        // The test's own nix.conf: no substituters (no network), builds as root, no sandbox.
        let conf_dir = env.prefix().join("nix-conf");
        std::fs::create_dir_all(&conf_dir).unwrap();
        std::fs::write(
            conf_dir.join("nix.conf"),
            "sandbox = false\nsubstituters =\nbuild-users-group =\n",
        )
        .unwrap();
        NixEnv {
            env,
            names: Default::default(),
            store_paths: Default::default(),
        }
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.env
            .command(args)
            .env_remove("NCSH_BUILDER")
            .env("NIX_PATH", format!("nixpkgs={}", nixos_dir().display()))
            .env("NIX_CONF_DIR", self.env.prefix().join("nix-conf"))
            .output()
            .unwrap()
    }

    pub(crate) fn track(&self, name: &str) {
        self.names.borrow_mut().push(name.to_string());
        self.env.track(name);
    }

    pub(crate) fn profile(&self, name: &str) -> PathBuf {
        self.env
            .prefix()
            .join("nix/var/nix/profiles/per-container")
            .join(name)
    }

    pub(crate) fn gcroots(&self, name: &str) -> PathBuf {
        self.env
            .prefix()
            .join("nix/var/nix/gcroots/per-container")
            .join(name)
    }

    /// The store path a profile link points to (remembered for deletion).
    pub(crate) fn system(&self, name: &str, link: &str) -> PathBuf {
        let path = std::fs::canonicalize(self.profile(name).join(link)).unwrap();
        assert!(path.starts_with("/nix/store/"), "{}", path.display());
        self.store_paths.borrow_mut().push(path.clone());
        path
    }

    pub(crate) fn link(&self, name: &str, link: &str) -> String {
        std::fs::read_link(self.profile(name).join(link))
            .unwrap()
            .display()
            .to_string()
    }

    /// Nothing of container `name` is left: conf, root, profile, GC roots.
    pub(crate) fn assert_gone(&self, name: &str) {
        for path in [
            self.env.conf_path(name),
            self.env.root_path(name),
            self.profile(name),
            self.gcroots(name),
        ] {
            assert!(!path.exists(), "{} is left", path.display());
        }
    }
}

impl Drop for NixEnv {
    fn drop(&mut self) {
        // Destroy first: the profiles are what keeps the store paths alive.
        for name in self.names.borrow().iter() {
            let _ = self.run(&["destroy", name]);
        }
        // GC roots nix-env registered for the profiles below our prefix, now dangling.
        if let Ok(entries) = std::fs::read_dir("/nix/var/nix/gcroots/auto") {
            for entry in entries.flatten() {
                if std::fs::read_link(entry.path())
                    .is_ok_and(|target| target.starts_with(self.env.prefix()))
                {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        for path in self.store_paths.borrow().iter() {
            let deriver = Command::new("nix-store")
                .args(["-q", "--deriver"])
                .arg(path)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default();
            let _ = Command::new("nix-store").arg("--delete").arg(path).output();
            if deriver.starts_with("/nix/store/") {
                let _ = Command::new("nix-store")
                    .args(["--delete", &deriver])
                    .output();
            }
        }
        // Derivations of builds that failed or were refused, and their output locks.
        let ours: Vec<String> = self
            .names
            .borrow()
            .iter()
            .map(|n| format!("-nixos-system-{n}-test"))
            .collect();
        if let Ok(entries) = std::fs::read_dir("/nix/store") {
            for entry in entries.flatten() {
                let file = entry.file_name().to_string_lossy().into_owned();
                if !ours.iter().any(|o| file.contains(o.as_str())) {
                    continue;
                }
                if file.ends_with(".lock") {
                    let _ = std::fs::remove_file(entry.path());
                } else {
                    let _ = Command::new("nix-store")
                        .arg("--delete")
                        .arg(entry.path())
                        .output();
                }
            }
        }
    }
}

/// A configuration line that makes every build unique (so it is really built, not reused).
pub(crate) fn greeting(text: &str) -> String {
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("environment.etc.greeting.text = \"{text}\"; environment.etc.nonce.text = \"{nonce}\";")
}

pub(crate) fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

#[test]
fn create_and_update_set_profile_generations() {
    let t = NixEnv::new();
    let name = unique_name("nxa");
    t.track(&name);
    let one = greeting("one");
    let out = t.run(&[
        "create",
        &name,
        "--config",
        &one,
        "--option",
        "max-jobs",
        "1",
        "--log-format",
        "raw",
    ]);
    assert_ok(&out, "create");
    assert_eq!(t.link(&name, "system"), "system-1-link");
    let first = t.system(&name, "system");
    assert_eq!(read(first.join("etc/greeting")), "one");
    let config = read(t.env.root_path(&name).join("etc/nixos/configuration.nix"));
    assert!(config.contains("environment.etc.greeting.text = \"one\""));
    // The configuration nix-env built is the container's configuration.nix.
    assert!(read(first.join("configuration.json")).contains(&format!("\"hostName\":\"{name}\"")));

    let two = greeting("two");
    assert_ok(&t.run(&["update", &name, "--config", &two]), "update");
    assert_eq!(t.link(&name, "system"), "system-2-link");
    assert_eq!(read(t.system(&name, "system").join("etc/greeting")), "two");
    assert_eq!(t.system(&name, "system-1-link"), first);

    // Pass-through flags reach nix-env: an invalid value and a build forbidden by an option
    // both fail, and leave the active system and configuration.nix as they were.
    let before = read(t.env.root_path(&name).join("etc/nixos/configuration.nix"));
    let out = t.run(&["update", &name, "--log-format", "bogus"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("log-format"), "{}", stderr(&out));
    let three = greeting("three");
    let out = t.run(&[
        "update", &name, "--config", &three, "--option", "max-jobs", "0",
    ]);
    assert!(!out.status.success(), "max-jobs 0 cannot build");
    let err = stderr(&out);
    assert!(
        err.contains("failed to build container configuration"),
        "{err}"
    );
    assert!(err.contains("max-jobs"), "{err}");
    assert!(
        err.contains("--option max-jobs 0"),
        "the failed command line: {err}"
    );
    assert_eq!(t.link(&name, "system"), "system-2-link");
    assert_eq!(
        read(t.env.root_path(&name).join("etc/nixos/configuration.nix")),
        before
    );

    // --system-path sets the profile to a given system.
    let path = first.display().to_string();
    assert_ok(
        &t.run(&["update", &name, "--system-path", &path]),
        "update --system-path",
    );
    assert_eq!(t.link(&name, "system"), "system-3-link");
    assert_eq!(t.system(&name, "system"), first);

    assert_ok(&t.run(&["destroy", &name]), "destroy");
    t.assert_gone(&name);
}

#[test]
fn create_with_system_path() {
    let t = NixEnv::new();
    let source = unique_name("nxs");
    t.track(&source);
    assert_ok(
        &t.run(&["create", &source, "--config", &greeting("shared")]),
        "create",
    );
    let system = t.system(&source, "system");
    let name = unique_name("nxs");
    t.track(&name);
    let path = system.display().to_string();
    assert_ok(
        &t.run(&["create", &name, "--system-path", &path]),
        "create --system-path",
    );
    assert_eq!(t.link(&name, "system"), "system-1-link");
    assert_eq!(t.system(&name, "system"), system);
}

#[test]
fn failed_builds_leave_nothing() {
    let t = NixEnv::new();
    let name = unique_name("nxf");
    t.track(&name);
    for (args, expected) in [
        (vec!["--config", "services.x = throw \"boom\";"], "boom"),
        (vec!["--log-format", "bogus"], "log-format"),
        (
            vec![
                "--system-path",
                "/nix/store/00000000000000000000000000000000-none",
            ],
            "failed to set initial container configuration",
        ),
    ] {
        let mut argv = vec!["create", name.as_str()];
        argv.extend(args);
        let out = t.run(&argv);
        assert!(!out.status.success(), "{argv:?} succeeded");
        let err = stderr(&out);
        assert!(err.contains(expected), "{argv:?}: {err}");
        assert!(
            expected.starts_with("failed")
                || err.contains("failed to build initial container configuration"),
            "{err}"
        );
        t.assert_gone(&name);
        assert!(
            !err.contains("already exists"),
            "a failed create left state behind: {err}"
        );
    }
}

#[test]
fn nix_options_need_the_nix_builder() {
    let t = NixEnv::new();
    let out = t
        .env
        .command(&["create", "nxn", "--option", "max-jobs", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("needs a Nix host"),
        "{}",
        stderr(&out)
    );
    assert!(!t.env.conf_path("nxn").exists());
}

#[test]
fn nix_built_container_boots() {
    let t = NixEnv::new();
    let name = unique_name("nxb");
    t.track(&name);
    let (host, local) = t.env.test_addresses();
    let out = t.run(&[
        "create",
        &name,
        "--host-address",
        &host,
        "--local-address",
        &local,
        "--config",
        &greeting("booted"),
    ]);
    assert_ok(&out, "create");
    t.system(&name, "system");
    assert_ok(&t.run(&["start", &name]), "start");
    assert_eq!(stdout(&t.run(&["status", &name])).trim(), "up");
    // The profile is bound at /nix/var/nix/profiles and /nix/store is there: the system's own
    // files are readable inside, and PID 1 came through the system's init.
    let out = t.run(&[
        "run",
        &name,
        "--",
        "cat",
        "/nix/var/nix/profiles/system/etc/greeting",
    ]);
    assert_ok(&out, "run cat");
    assert_eq!(stdout(&out).trim(), "booted");
    let out = t.run(&["run", &name, "--", "cat", "/run/nix-init"]);
    assert_ok(&out, "run cat /run/nix-init");
    assert_eq!(stdout(&out).trim(), "/nix/var/nix/profiles/system/init");
    let out = t.run(&["run", &name, "--", "cat", "/proc/1/cmdline"]);
    assert!(stdout(&out).contains("systemd"), "{}", stdout(&out));
    assert!(
        t.gcroots(&name).is_dir(),
        "the start creates the GC roots directory"
    );
    let out = t.run(&["run", &name, "--", "ip", "-4", "addr", "show", "eth0"]);
    assert!(stdout(&out).contains(&local), "{}", stdout(&out));
    // An update of the running container runs the new system's switch-to-configuration test.
    assert_ok(
        &t.run(&["update", &name, "--config", &greeting("switched")]),
        "update",
    );
    t.system(&name, "system");
    let out = t.run(&["run", &name, "--", "cat", "/run/switched"]);
    assert_eq!(
        stdout(&out).trim(),
        "/nix/var/nix/profiles/system/bin/switch-to-configuration test"
    );
    let out = t.run(&[
        "run",
        &name,
        "--",
        "cat",
        "/nix/var/nix/profiles/system/etc/greeting",
    ]);
    assert_eq!(stdout(&out).trim(), "switched");
    assert_ok(&t.run(&["destroy", &name]), "destroy");
    assert!(eventually(Duration::from_secs(5), || {
        !t.env.conf_path(&name).exists()
    }));
    assert_no_debris(&t.env, &name);
    t.assert_gone(&name);
}

/// A flake without inputs (no network) with two NixOS systems, `web` and `container`.
fn write_flake(dir: &Path) {
    let system = format!("{}-linux", std::env::consts::ARCH);
    let toplevel = |greeting: &str| {
        format!(
            "{{ config.system.build.toplevel = derivation {{ name = \"nixos-system-flake-{greeting}\"; \
             system = \"{system}\"; builder = \"/bin/sh\"; \
             args = [ \"-c\" \"/bin/mkdir -p $out/etc; echo {greeting} > $out/etc/greeting\" ]; }}; }}"
        )
    };
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("flake.nix"),
        format!(
            "{{ outputs = {{ self }}: {{ nixosConfigurations.web = {}; nixosConfigurations.container = {}; }}; }}\n",
            toplevel("web"),
            toplevel("container")
        ),
    )
    .unwrap();
}

#[test]
fn flakes_build_with_nix_build() {
    let t = NixEnv::new();
    let flake = t.env.prefix().join("flake");
    write_flake(&flake);
    let name = unique_name("nxk");
    t.track(&name);
    let reference = format!("{}#web", flake.display());
    assert_ok(
        &t.run(&["create", &name, "--flake", &reference]),
        "create --flake",
    );
    // As nixos-container: FLAKE= holds the reference without its attribute.
    let conf = read(t.env.conf_path(&name));
    assert!(
        conf.lines()
            .any(|l| l == format!("FLAKE={}", flake.display())),
        "{conf}"
    );
    assert_eq!(t.link(&name, "system"), "system-1-link");
    assert_eq!(read(t.system(&name, "system").join("etc/greeting")), "web");
    assert!(
        !t.profile(&name).join(".system.tmp").exists(),
        "the out-link is removed"
    );
    // A plain update rebuilds from FLAKE, and (nixos-container's quirk) the attribute is lost.
    assert_ok(&t.run(&["update", &name]), "update");
    assert_eq!(t.link(&name, "system"), "system-2-link");
    assert_eq!(
        read(t.system(&name, "system").join("etc/greeting")),
        "container"
    );
    // The flake source copied to the store goes too.
    let metadata = Command::new("nix")
        .args(["--extra-experimental-features", "nix-command flakes"])
        .args(["flake", "metadata", "--json"])
        .arg(&flake)
        .env("NIX_CONF_DIR", t.env.prefix().join("nix-conf"))
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&metadata.stdout).unwrap_or_default();
    if let Some(path) = json["path"].as_str() {
        t.store_paths.borrow_mut().push(PathBuf::from(path));
    }
    // A broken flake fails with nixos-container's message and leaves nothing.
    let broken = unique_name("nxk");
    t.track(&broken);
    let out = t.run(&[
        "create",
        &broken,
        "--flake",
        &format!("{}#nosuch", flake.display()),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("failed to build container from flake"),
        "{}",
        stderr(&out)
    );
    t.assert_gone(&broken);
}

const PER_CONTAINER: [&str; 2] = [
    "/nix/var/nix/profiles/per-container",
    "/nix/var/nix/gcroots/per-container",
];

/// Removes what a test host's Nix-built container left in this machine's `/nix` (the test host
/// binds it), also when the test failed: its profile, its GC roots, auto roots pointing there,
/// and the `per-container` directories when they did not exist before.
pub(crate) struct PerContainerNix {
    name: String,
    made: Vec<&'static str>,
}

impl PerContainerNix {
    pub(crate) fn new(name: &str) -> PerContainerNix {
        PerContainerNix {
            name: name.to_string(),
            made: PER_CONTAINER
                .into_iter()
                .filter(|d| !Path::new(d).exists())
                .collect(),
        }
    }

    pub(crate) fn profile(&self) -> PathBuf {
        Path::new(PER_CONTAINER[0]).join(&self.name)
    }

    pub(crate) fn gcroots(&self) -> PathBuf {
        Path::new(PER_CONTAINER[1]).join(&self.name)
    }
}

impl Drop for PerContainerNix {
    fn drop(&mut self) {
        let profile = self.profile();
        let _ = std::fs::remove_dir_all(&profile);
        let _ = std::fs::remove_dir_all(self.gcroots());
        for dir in &self.made {
            let _ = std::fs::remove_dir(dir);
        }
        if let Ok(entries) = std::fs::read_dir("/nix/var/nix/gcroots/auto") {
            for entry in entries.flatten() {
                if std::fs::read_link(entry.path()).is_ok_and(|t| t.starts_with(&profile)) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
}

/// The systemd driver with transient units on a Nix host: the start makes the profile and GC
/// roots directories nspawn binds (as NixOS's start script), and the container boots its
/// system's init. The system is built here, the container runs in a test host sharing `/nix`.
#[test]
fn systemd_driver_makes_the_nix_directories() {
    let t = NixEnv::new();
    let source = unique_name("nxd");
    t.track(&source);
    assert_ok(
        &t.run(&["create", &source, "--config", &greeting("under systemd")]),
        "create the system",
    );
    let system = t.system(&source, "system").display().to_string();

    let name = unique_name("nxd");
    // Declared before the test host, so dropped after it.
    let nix = PerContainerNix::new(&name);
    let th = nix_test_host("nxd");
    let ncsh = |args: &[&str]| {
        let mut argv = vec!["env", "NCSH_BUILDER=nix", testhost::NCSH];
        argv.extend_from_slice(args);
        th.exec(&argv)
    };
    assert_ok(
        &ncsh(&[
            "create",
            &name,
            "--system-path",
            &system,
            "--host-address",
            "10.233.0.1",
            "--local-address",
            "10.233.0.2",
        ]),
        "create --system-path in the test host",
    );
    let profile_link = std::fs::read_link(nix.profile().join("system")).unwrap();
    assert_eq!(profile_link, Path::new("system-1-link"));
    let cat = |path: &str| text_of(&ncsh(&["run", &name, "--", "cat", path]));

    // Without its GC roots directory, nspawn could not bind it: the start makes it.
    let _ = std::fs::remove_dir_all(nix.gcroots());
    assert_ok(&ncsh(&["start", &name]), "start");
    let unit = format!("container@{name}.service");
    assert_eq!(
        text_of(&th.exec(&["systemctl", "show", "--value", "-p", "Transient", &unit])),
        "yes"
    );
    assert_dir_0755(&nix.gcroots());
    assert_eq!(cat("/run/nix-init"), "/nix/var/nix/profiles/system/init");
    assert_eq!(
        cat("/nix/var/nix/profiles/system/etc/greeting"),
        "under systemd"
    );
    assert_eq!(cat("/proc/1/comm"), "systemd");
    // An update reloads the unit, whose ExecReload runs switch-to-configuration test inside.
    assert_ok(
        &ncsh(&["update", &name, "--system-path", &system]),
        "update",
    );
    assert_eq!(
        cat("/run/switched"),
        "/nix/var/nix/profiles/system/bin/switch-to-configuration test"
    );
    let exec_reload = text_of(&th.exec(&["systemctl", "show", "-p", "ExecReload", &unit]));
    assert!(
        exec_reload.contains("code=exited ; status=0"),
        "the unit's reload ran: {exec_reload}"
    );
    // A switch that fails inside fails the reload, and update says why.
    let fail_switch = th.path(&format!("/var/lib/nixos-containers/{name}/etc/fail-switch"));
    std::fs::write(&fail_switch, "").unwrap();
    let out = ncsh(&["update", &name, "--system-path", &system]);
    let err = stderr(&out);
    println!("the failed reload says:\n{err}");
    assert!(
        !out.status.success()
            && err.contains("failed to reload container")
            && err.contains(&format!("container@{name}.service"))
            && err.contains("switch refused: /etc/fail-switch"),
        "{out:?}"
    );
    std::fs::remove_file(&fail_switch).unwrap();
    assert_ok(&ncsh(&["stop", &name]), "stop");

    // A conf with SYSTEM_PATH needs no profile: both directories are made.
    let conf = th.path(&format!("/etc/nixos-containers/{name}.conf"));
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str(&format!("SYSTEM_PATH={system}\n"));
    std::fs::write(&conf, text).unwrap();
    std::fs::remove_dir_all(nix.profile()).unwrap();
    std::fs::remove_dir_all(nix.gcroots()).unwrap();
    assert_ok(&ncsh(&["start", &name]), "start with SYSTEM_PATH");
    assert_dir_0755(&nix.profile());
    assert_dir_0755(&nix.gcroots());
    assert_eq!(cat("/run/nix-init"), format!("{system}/init"));

    assert_ok(&ncsh(&["destroy", &name]), "destroy");
    assert!(!nix.profile().exists() && !nix.gcroots().exists());
}

pub(crate) fn text_of(out: &Output) -> String {
    stdout(out).trim().to_string()
}

#[track_caller]
fn assert_dir_0755(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(meta.is_dir(), "{} is not a directory", path.display());
    assert_eq!(
        meta.permissions().mode() & 0o7777,
        0o755,
        "{}",
        path.display()
    );
}

/// A test host sharing this machine's `/nix`, with Nix's settings for a root without build
/// users in its own /etc.
pub(crate) fn nix_test_host(tag: &str) -> TestHost {
    let th = TestHost::boot_with(tag, false, &["--bind=/nix"]);
    let nix_conf = th.path("/etc/nix/nix.conf");
    std::fs::create_dir_all(nix_conf.parent().unwrap()).unwrap();
    std::fs::write(
        &nix_conf,
        "sandbox = false\nsubstituters =\nbuild-users-group =\n",
    )
    .unwrap();
    th
}
