//! `ncsh apply` of containers whose system Nix builds (`containers.<name>.path`, `.flake`),
//! with the host's real Nix as in `tests/it/nix.rs` (whose `NixEnv` chooses the Nix builder and
//! removes the store paths a test made): the conf NixOS's module writes, the system set as the
//! container's profile, switched live on a change, "unchanged" when the profile has it already,
//! failures that change nothing, and the refusal on a host without Nix.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;
use crate::nix::{NixEnv, PerContainerNix, greeting, nix_test_host, read, text_of};
use crate::testhost;

/// A Nix-built system with `greeting`, made by creating container `name` from it (tracked:
/// destroyed at the end, the profile keeping it alive until then).
fn built_system(t: &NixEnv, name: &str, text: &str) -> PathBuf {
    t.track(name);
    assert_ok(
        &t.run(&["create", name, "--config", &greeting(text)]),
        "create a system",
    );
    t.system(name, "system")
}

fn write(file: &Path, text: &str) {
    std::fs::write(file, text).unwrap();
}

fn apply(t: &NixEnv, file: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["apply", file.to_str().unwrap()];
    all.extend_from_slice(args);
    t.run(&all)
}

/// A flake without inputs whose `nixosConfigurations.web` writes `text` to etc/greeting.
fn write_flake(dir: &Path, text: &str) {
    let system = format!("{}-linux", std::env::consts::ARCH);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("flake.nix"),
        format!(
            "{{ outputs = {{ self }}: {{ nixosConfigurations.web = {{ config.system.build.toplevel = \
             derivation {{ name = \"nixos-system-nixdecl-flake\"; system = \"{system}\"; \
             builder = \"/bin/sh\"; \
             args = [ \"-c\" \"/bin/mkdir -p $out/etc; echo {text} > $out/etc/greeting\" ]; }}; }}; }}; }}\n"
        ),
    )
    .unwrap();
}

/// The flake's source, copied to the store by `nix build`, is deleted at the end too.
fn forget_flake_source(t: &NixEnv, flake: &Path) {
    let metadata = std::process::Command::new("nix")
        .args(["--extra-experimental-features", "nix-command flakes"])
        .args(["flake", "metadata", "--json"])
        .arg(flake)
        .env("NIX_CONF_DIR", t.env.prefix().join("nix-conf"))
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&metadata.stdout).unwrap_or_default();
    if let Some(path) = json["path"].as_str() {
        t.store_paths.borrow_mut().push(PathBuf::from(path));
    }
}

/// No out-link of a flake build is left in the state directory.
fn assert_no_out_link(t: &NixEnv, name: &str) {
    let state = t.env.root_path(name).parent().unwrap().to_path_buf();
    let left: Vec<String> = std::fs::read_dir(&state)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|f| f.starts_with(&format!(".{name}.")))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "left in {}: {left:?}", state.display());
}

#[test]
fn apply_path_boots_switches_live_and_destroys() {
    let t = NixEnv::new();
    let one = built_system(&t, &unique_name("ndo"), "one");
    let two = built_system(&t, &unique_name("ndt"), "two");
    let name = unique_name("ndp");
    t.track(&name);
    let (host, local) = t.env.test_addresses();
    let file = t.env.prefix().join("host.nix");
    let module = |system: &Path| {
        format!(
            "{{ containers.{name} = {{ privateNetwork = true; hostAddress = \"{host}\"; \
             localAddress = \"{local}\"; autoStart = true; path = {}; }}; }}\n",
            system.display()
        )
    };
    write(&file, &module(&one));
    let out = apply(&t, &file, &[]);
    assert_ok(&out, "apply");
    assert_eq!(stdout(&out), format!("{name}: created, started\n"));
    // The conf NixOS's module writes for `path`, first of all.
    let conf = read(t.env.conf_path(&name));
    assert!(
        conf.starts_with(&format!(
            "SYSTEM_PATH={}\nCOPY_RESOLV_CONF=1\n",
            one.display()
        )),
        "{conf}"
    );
    assert!(!conf.contains("FLAKE="), "{conf}");
    // The system is the container's profile, as `create --system-path` sets it.
    assert_eq!(t.link(&name, "system"), "system-1-link");
    assert_eq!(t.system(&name, "system"), one);
    let cat = |path: &str| text_of(&t.run(&["run", &name, "--", "cat", path]));
    // PID 1 came through the system's init: SYSTEM_PATH's, as NixOS's start script runs it.
    assert_eq!(cat("/run/nix-init"), format!("{}/init", one.display()));
    assert_eq!(cat("/proc/1/comm"), "systemd");
    assert_eq!(cat("/nix/var/nix/profiles/system/etc/greeting"), "one");
    let ip = t.run(&["run", &name, "--", "ip", "-4", "addr", "show", "eth0"]);
    assert!(stdout(&ip).contains(&local), "{}", stdout(&ip));

    // The same path again: nothing to do, the profile as it was.
    let out = apply(&t, &file, &[]);
    assert_ok(&out, "apply again");
    assert_eq!(stdout(&out), format!("{name}: unchanged\n"));
    assert_eq!(t.link(&name, "system"), "system-1-link");

    // A plain update has nothing to build: the path is the system (the file says which).
    let out = t.run(&["update", &name]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        stderr(&out).contains(&format!("containers.{name}.path of {}", file.display())),
        "{}",
        stderr(&out)
    );
    assert_eq!(t.link(&name, "system"), "system-1-link");

    // A new path: the profile gets it, and the running container switches to it live (its
    // /run, which a restart would empty, keeps the mark made before).
    assert_ok(
        &t.run(&["run", &name, "--", "touch", "/run/before-apply"]),
        "mark /run",
    );
    write(&file, &module(&two));
    let out = apply(&t, &file, &[]);
    assert_ok(&out, "apply a new path");
    assert_eq!(stdout(&out), format!("{name}: updated\n"));
    assert_eq!(t.link(&name, "system"), "system-2-link");
    assert_eq!(t.system(&name, "system"), two);
    assert!(
        read(t.env.conf_path(&name)).starts_with(&format!("SYSTEM_PATH={}\n", two.display())),
        "the conf has the new path"
    );
    assert_eq!(
        cat("/run/switched"),
        format!("{}/bin/switch-to-configuration test", two.display())
    );
    assert_eq!(cat("/nix/var/nix/profiles/system/etc/greeting"), "two");
    assert_ok(
        &t.run(&["run", &name, "--", "test", "-e", "/run/before-apply"]),
        "switched live, not restarted",
    );

    // A switch that fails inside fails the apply and changes nothing: the conf and the
    // profile keep the running system, so the next apply tries again.
    let fail_switch = t.env.root_path(&name).join("etc/fail-switch");
    std::fs::write(&fail_switch, "").unwrap();
    write(&file, &module(&one));
    let out = apply(&t, &file, &[]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        stderr(&out).contains("switch refused: /etc/fail-switch"),
        "{}",
        stderr(&out)
    );
    assert!(
        read(t.env.conf_path(&name)).starts_with(&format!("SYSTEM_PATH={}\n", two.display())),
        "the conf is as it was"
    );
    assert_eq!(t.system(&name, "system"), two);
    std::fs::remove_file(&fail_switch).unwrap();
    let out = apply(&t, &file, &[]);
    assert_ok(&out, "apply after the failed switch");
    assert_eq!(stdout(&out), format!("{name}: updated\n"));
    assert_eq!(t.system(&name, "system"), one);
    assert_eq!(
        cat("/run/switched"),
        format!("{}/bin/switch-to-configuration test", one.display())
    );

    // --destroy removes the container with its profile and GC roots.
    let out = apply(&t, &file, &["--destroy"]);
    assert_ok(&out, "apply --destroy");
    assert_eq!(stdout(&out), format!("{name}: destroyed\n"));
    assert!(eventually(Duration::from_secs(5), || {
        !t.env.conf_path(&name).exists()
    }));
    assert_no_debris(&t.env, &name);
    t.assert_gone(&name);
}

#[test]
fn one_file_declares_containers_ncsh_builds_and_containers_nix_builds() {
    let t = NixEnv::new();
    let system = built_system(&t, &unique_name("ndm"), "nix-built");
    let native = unique_name("ndn");
    let nixed = unique_name("ndx");
    t.track(&native);
    t.track(&nixed);
    let file = t.env.prefix().join("host.nix");
    write(
        &file,
        &format!(
            "{{ containers.{native}.config = {{ environment.etc.\"mixed\".text = \"native\"; }};\n  \
             containers.{nixed}.path = {}; }}\n",
            system.display()
        ),
    );
    // On this Nix host the `config` one is built by ncsh, the `path` one is Nix's system.
    let out = apply(&t, &file, &[]);
    assert_ok(&out, "apply of both kinds");
    for name in [&native, &nixed] {
        assert!(
            stdout(&out).contains(&format!("{name}: created")),
            "{}",
            stdout(&out)
        );
    }
    assert_eq!(read(t.env.root_path(&native).join("etc/mixed")), "native");
    assert!(!read(t.env.conf_path(&native)).contains("SYSTEM_PATH="));
    assert!(
        !t.profile(&native).join("system").exists(),
        "a Nix profile for the natively built one"
    );
    assert_eq!(t.system(&nixed, "system"), system);
    let out = apply(&t, &file, &[]);
    assert_ok(&out, "apply again");
    assert_eq!(
        stdout(&out)
            .lines()
            .filter(|l| l.ends_with(": unchanged"))
            .count(),
        2,
        "{}",
        stdout(&out)
    );
    let out = apply(&t, &file, &["--destroy"]);
    assert_ok(&out, "apply --destroy");
    for name in [&native, &nixed] {
        assert_no_debris(&t.env, name);
    }
}

#[test]
fn apply_flake_builds_rebuilds_and_fails_without_a_trace() {
    let t = NixEnv::new();
    let flake = t.env.prefix().join("flake");
    write_flake(&flake, "first");
    let name = unique_name("ndk");
    t.track(&name);
    let file = t.env.prefix().join("host.nix");
    let reference = format!("{}#web", flake.display());
    write(
        &file,
        &format!("{{ containers.{name}.flake = \"{reference}\"; }}\n"),
    );
    let out = apply(&t, &file, &[]);
    assert_ok(&out, "apply a flake");
    forget_flake_source(&t, &flake);
    assert_eq!(stdout(&out), format!("{name}: created\n"));
    // FLAKE= as NixOS's module writes it (the reference as given, no SYSTEM_PATH).
    let conf = read(t.env.conf_path(&name));
    assert!(
        conf.starts_with(&format!("FLAKE={reference}\nCOPY_RESOLV_CONF=1\n")),
        "{conf}"
    );
    assert!(!conf.contains("SYSTEM_PATH"), "{conf}");
    assert_eq!(t.link(&name, "system"), "system-1-link");
    let first = t.system(&name, "system");
    assert_eq!(read(first.join("etc/greeting")), "first");
    assert_no_out_link(&t, &name);

    // Applied again, the flake is built again: the same system, so unchanged.
    let out = apply(&t, &file, &[]);
    assert_ok(&out, "apply the same flake");
    assert_eq!(stdout(&out), format!("{name}: unchanged\n"));
    assert_eq!(t.link(&name, "system"), "system-1-link");

    // The flake changed: a new system, updated.
    write_flake(&flake, "second");
    let out = apply(&t, &file, &[]);
    assert_ok(&out, "apply the changed flake");
    forget_flake_source(&t, &flake);
    assert_eq!(stdout(&out), format!("{name}: updated\n"));
    assert_eq!(t.link(&name, "system"), "system-2-link");
    assert_eq!(
        read(t.system(&name, "system").join("etc/greeting")),
        "second"
    );
    assert_no_out_link(&t, &name);

    // A flake that does not build fails with nixos-container's message, and nothing changes:
    // neither the container it declares nor the other one of the same file is made.
    let broken = unique_name("ndk");
    let other = unique_name("ndk");
    t.track(&broken);
    t.track(&other);
    let (host, local) = t.env.test_addresses();
    let bad = t.env.prefix().join("bad.nix");
    write(
        &bad,
        &format!(
            "{{ containers.{other} = {{ privateNetwork = true; hostAddress = \"{host}\"; \
             localAddress = \"{local}\"; path = {first}; }};\n  \
             containers.{broken}.flake = \"{}#nosuch\"; }}\n",
            flake.display(),
            first = first.display()
        ),
    );
    let out = apply(&t, &bad, &[]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        stderr(&out).contains(&format!(
            "failed to build container from flake '{}#nosuch'",
            flake.display()
        )),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    for n in [&broken, &other] {
        t.assert_gone(n);
        assert_no_out_link(&t, n);
    }

    let out = apply(&t, &file, &["--destroy"]);
    assert_ok(&out, "apply --destroy");
    assert_eq!(stdout(&out), format!("{name}: destroyed\n"));
    t.assert_gone(&name);
}

#[test]
fn path_and_flake_need_a_nix_host_and_change_nothing() {
    let t = NixEnv::new();
    let name = unique_name("ndn");
    let file = t.env.prefix().join("host.nix");
    let cases = [
        (
            format!(
                "{{ containers.{name}.path = /nix/store/00000000000000000000000000000000-x; }}"
            ),
            "path",
        ),
        (
            format!("{{ containers.{name}.flake = \"/nonexistent#web\"; }}"),
            "flake",
        ),
    ];
    for (text, option) in &cases {
        write(&file, text);
        // NCSH_BUILDER=native (the harness's), and a PATH without Nix's programs.
        let native = t
            .env
            .command(&["apply", file.to_str().unwrap()])
            .output()
            .unwrap();
        let no_nix = t
            .env
            .command(&["apply", file.to_str().unwrap()])
            .env_remove("NCSH_BUILDER")
            .env("PATH", "/usr/sbin:/sbin")
            .output()
            .unwrap();
        let no_nixos = t
            .env
            .command(&["apply", file.to_str().unwrap()])
            .env_remove("NCSH_BUILDER")
            .env("NIX_PATH", "nixpkgs=/nonexistent")
            .output()
            .unwrap();
        for (out, why) in [
            (&native, "NCSH_BUILDER=native"),
            (&no_nix, "is not on PATH"),
            (&no_nixos, "<nixpkgs/nixos> does not resolve"),
        ] {
            let err = stderr(out);
            assert!(!out.status.success(), "{option}: {out:?}");
            assert!(
                err.contains(&format!("containers.{name}.{option}"))
                    && err.contains("needs a Nix host")
                    && err.contains(why),
                "{option}: {err}"
            );
            assert!(!t.env.conf_path(&name).exists());
            assert!(!t.profile(&name).exists());
        }
    }
    // On a Nix host, a path that is not there is refused before anything is made.
    write(&file, &cases[0].0);
    let out = t.run(&["apply", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!("containers.{name}.path")) && err.contains("No such file"),
        "{err}"
    );
    t.assert_gone(&name);
    // Nor is one outside the Nix store, which nix-env could not set as the profile.
    let outside = t.env.prefix().join("not-a-system");
    std::fs::create_dir_all(&outside).unwrap();
    write(
        &file,
        &format!("{{ containers.{name}.path = {}; }}", outside.display()),
    );
    let out = t.run(&["apply", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!("containers.{name}.path")) && err.contains("not in the Nix store"),
        "{err}"
    );
    t.assert_gone(&name);
}

/// Under the systemd driver (transient units, in a test host sharing this machine's `/nix`):
/// the applied path boots, and a new one is switched to by the unit's reload, which reads the
/// new SYSTEM_PATH.
#[test]
fn apply_path_under_systemd() {
    let t = NixEnv::new();
    let one = built_system(&t, &unique_name("ndo"), "one");
    let two = built_system(&t, &unique_name("ndt"), "two");
    let name = unique_name("ndy");
    // Declared before the test host, so dropped after it.
    let nix = PerContainerNix::new(&name);
    let th = nix_test_host("ndy");
    let ncsh = |args: &[&str]| {
        let mut argv = vec!["env", "NCSH_BUILDER=nix", testhost::NCSH];
        argv.extend_from_slice(args);
        th.exec(&argv)
    };
    let module = |system: &Path| {
        format!(
            "{{ containers.{name} = {{ privateNetwork = true; hostAddress = \"10.233.0.1\"; \
             localAddress = \"10.233.0.2\"; autoStart = true; path = {}; }}; }}\n",
            system.display()
        )
    };
    write(&th.path("/etc/host.nix"), &module(&one));
    let out = ncsh(&["apply", "/etc/host.nix"]);
    assert_ok(&out, "apply in the test host");
    assert_eq!(stdout(&out), format!("{name}: created, started\n"));
    let unit = format!("container@{name}.service");
    assert_eq!(
        text_of(&th.exec(&["systemctl", "is-active", &unit])),
        "active"
    );
    let cat = |path: &str| text_of(&ncsh(&["run", &name, "--", "cat", path]));
    assert_eq!(cat("/run/nix-init"), format!("{}/init", one.display()));
    assert_eq!(cat("/proc/1/comm"), "systemd");
    assert_eq!(
        std::fs::canonicalize(nix.profile().join("system")).unwrap(),
        one
    );

    write(&th.path("/etc/host.nix"), &module(&two));
    let out = ncsh(&["apply", "/etc/host.nix"]);
    assert_ok(&out, "apply a new path in the test host");
    assert_eq!(stdout(&out), format!("{name}: updated\n"));
    assert_eq!(
        cat("/run/switched"),
        format!("{}/bin/switch-to-configuration test", two.display())
    );
    assert_eq!(
        std::fs::canonicalize(nix.profile().join("system")).unwrap(),
        two
    );

    let out = ncsh(&["apply", "--destroy", "/etc/host.nix"]);
    assert_ok(&out, "apply --destroy in the test host");
    assert_eq!(stdout(&out), format!("{name}: destroyed\n"));
    assert!(!nix.profile().exists() && !nix.gcroots().exists());
}
