//! A hostile container: root inside plants links out of its root at every path ncsh writes or
//! reads from the host (the skeleton, `/etc/ncsh`, `/etc/systemd/system`, `/root`, `/tmp`,
//! `/home`, `/etc/ssh`, `/etc/passwd`, the generations, `configuration.nix`), absolute and
//! relative ones. A canary directory on the host must keep every file's content and mode through
//! update, stop, start, show-host-key and destroy, under both drivers.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::{Env, assert_ok, require_root, stdout, unique_name};
use crate::testhost::TestHost;

/// What the canary holds: (path relative to it, mode, contents or None for a directory).
fn snapshot(dir: &Path) -> Vec<(PathBuf, u32, Option<String>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let meta = std::fs::symlink_metadata(&d).unwrap();
        let rel = d.strip_prefix(dir).unwrap().to_path_buf();
        let mode = meta.permissions().mode() & 0o7777;
        if meta.is_dir() {
            out.push((rel, mode, None));
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                stack.push(e.path());
            }
        } else {
            let text = std::fs::read(&d).unwrap_or_default();
            out.push((rel, mode, Some(String::from_utf8_lossy(&text).into_owned())));
        }
    }
    out.sort();
    out
}

/// The canary at `dir` (a path on this machine): a secret file, directories, a host key and a
/// configuration that would leak into the container if ncsh evaluated it.
fn make_canary(dir: &Path) {
    let file = |rel: &str, text: &str, mode: u32| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    std::fs::create_dir_all(dir).unwrap();
    file("secret", "host secret\n", 0o600);
    file("passwd", "canary:x:0:0::/:/bin/sh\n", 0o644);
    file("dir/keep", "keep\n", 0o644);
    file(
        "ssh/ssh_host_ed25519_key.pub",
        "ssh-ed25519 CANARYHOSTKEY host\n",
        0o644,
    );
    file(
        "config.nix",
        "{ ... }: { environment.etc.leaked.text = \"CANARY\"; }\n",
        0o644,
    );
    for (sub, mode) in [
        ("", 0o755),
        ("dir", 0o755),
        ("units", 0o755),
        ("ssh", 0o700),
    ] {
        let p = dir.join(sub);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

/// A relative link from `/etc/X` inside the root that climbs to the host's `/` when followed
/// on the host (deeper than any root here).
fn climbing(target: &str) -> String {
    format!("{}{}", "../".repeat(24), target.trim_start_matches('/'))
}

/// Run `script` (with the canary path as $1) inside the container as root.
fn inside(ncsh: &dyn Fn(&[&str]) -> Output, name: &str, script: &str, canary: &str) {
    let out = ncsh(&["run", name, "--", "sh", "-ec", script, "sh", canary]);
    assert_ok(&out, "planting links inside the container");
}

fn not_a_panic(out: &Output, what: &str) {
    assert_ne!(out.status.code(), Some(101), "{what} panicked: {out:?}");
}

/// Phase 1, while running: links at the files activation replaces, then an update that writes
/// units, users and keys. Phase 2: links at directories activation writes into. Phase 3,
/// stopped: links at the skeleton and the files a start or a read uses; then start, update
/// without a configuration (reads configuration.nix), show-host-key, destroy.
fn attack(ncsh: &dyn Fn(&[&str]) -> Output, name: &str, canary: &str, canary_here: &Path) {
    let before = snapshot(canary_here);
    assert_ok(&ncsh(&["start", name]), "start");

    inside(
        ncsh,
        name,
        "ln -sf $1/secret /etc/systemd/system/x.service
         ln -sf $1/secret /etc/shadow
         ln -sf $1/passwd /etc/passwd
         ln -sf $1/secret /etc/motd",
        canary,
    );
    let config = "systemd.services.x = { wantedBy = [ \"multi-user.target\" ]; script = \"sleep 1000\"; };
        environment.etc.motd.text = \"hello\";
        users.users.alice = { isNormalUser = true; openssh.authorizedKeys.keys = [ \"ssh-ed25519 AAAAC3Nza alice\" ]; };";
    let updated = ncsh(&["update", name, "--config", config]);
    assert_ok(&updated, "update replacing planted links");
    assert_eq!(snapshot(canary_here), before, "update wrote through a link");
    let motd = ncsh(&["run", name, "--", "cat", "/etc/motd"]);
    assert_eq!(stdout(&motd), "hello", "the link was replaced inside");

    let climb_ssh = climbing(&format!("{canary}/ssh"));
    inside(
        ncsh,
        name,
        &format!(
            "rm -rf /etc/systemd/system/multi-user.target.wants && ln -s $1/units /etc/systemd/system/multi-user.target.wants
             rm -rf /home && ln -s $1/dir /home
             rm -rf /etc/ssh && ln -s {climb_ssh} /etc/ssh
             mv /var/lib/ncsh/generations /var/lib/ncsh/generations.orig && ln -s $1/dir /var/lib/ncsh/generations"
        ),
        canary,
    );
    let config2 = format!(
        "{config} systemd.services.y = {{ wantedBy = [ \"multi-user.target\" ]; script = \"sleep 1000\"; }}; users.users.bob.isNormalUser = true;"
    );
    not_a_panic(&ncsh(&["update", name, "--config", &config2]), "update");
    assert_eq!(
        snapshot(canary_here),
        before,
        "update wrote through a directory link"
    );
    inside(
        ncsh,
        name,
        "rm /var/lib/ncsh/generations && mv /var/lib/ncsh/generations.orig /var/lib/ncsh/generations
         rm -f /etc/ncsh/container-init && ln -s $1/secret /etc/ncsh/container-init
         rm -f /etc/machine-id && ln -s $1/secret /etc/machine-id
         mv /root /root.orig && ln -s $1/dir /root
         umount -l /tmp 2>/dev/null || true; rm -rf /tmp && ln -s $1/dir /tmp
         rm -f /etc/nixos/configuration.nix && ln -s $1/config.nix /etc/nixos/configuration.nix",
        canary,
    );
    assert_ok(&ncsh(&["stop", name]), "stop");
    for args in [
        vec!["start", name],
        vec!["stop", name],
        vec!["update", name],
        vec!["show-host-key", name],
    ] {
        let out = ncsh(&args);
        not_a_panic(&out, args[0]);
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("CANARY"),
            "{} read the host's file: {out:?}",
            args[0]
        );
        assert_eq!(
            snapshot(canary_here),
            before,
            "{} wrote through a link",
            args[0]
        );
    }
    assert_ok(&ncsh(&["destroy", name]), "destroy");
    assert_eq!(
        snapshot(canary_here),
        before,
        "destroy removed through a link"
    );
}

#[test]
fn a_hostile_container_cannot_make_the_host_write_standalone() {
    require_root();
    let env = Env::new();
    let canary = tempfile::tempdir().unwrap();
    let canary_path = canary.path().join("canary");
    make_canary(&canary_path);
    let name = unique_name("hos");
    env.create_booting(&name);
    let ncsh = |args: &[&str]| env.run(args);
    attack(&ncsh, &name, canary_path.to_str().unwrap(), &canary_path);
}

#[test]
fn a_hostile_container_cannot_make_the_host_write_systemd() {
    require_root();
    let th = TestHost::boot("hos", false);
    let canary = "/srv/canary";
    make_canary(&th.path(canary));
    let name = "hostile";
    crate::systemd::create(&th, name, &[]);
    let ncsh = |args: &[&str]| th.ncsh(args);
    attack(&ncsh, name, canary, &th.path(canary));
}
