//! `scripts/setup-debian.sh`, run against stand-ins for dpkg-query, apt-get and ip: test-only
//! packages (nix-bin) only with `--for-tests`, which the test script (and so CI) passes, and
//! apt's and dpkg's chatter only when the installation fails.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Stand-ins in a directory put first on PATH: every package is missing, apt-get records its
/// arguments and talks as dpkg does (and fails when asked to), the routes exist.
fn stubs() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let stub = |name: &str, body: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    stub("dpkg-query", "exit 1");
    stub(
        "apt-get",
        "echo \"$*\" >> \"$STUB_LOG\"\n\
         echo 'Selecting previously unselected package nix-bin.'\n\
         echo 'Unpacking nix-bin (2.18.1+dfsg-1) ...'\n\
         echo 'Setting up nix-bin (2.18.1+dfsg-1) ...'\n\
         case \"$1\" in install) exit \"${STUB_APT_STATUS:-0}\";; esac",
    );
    stub("ip", "echo \"unreachable $5\"");
    dir
}

fn setup(stubs: &Path, args: &[&str], apt_status: i32) -> (Output, String) {
    let log = stubs.join("apt.log");
    let _ = std::fs::remove_file(&log);
    let out = Command::new("bash")
        .arg(Path::new(REPO).join("scripts/setup-debian.sh"))
        .args(args)
        .env(
            "PATH",
            format!(
                "{}:{}",
                stubs.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("STUB_LOG", &log)
        .env("STUB_APT_STATUS", apt_status.to_string())
        .env("POLICY_RC_D", stubs.join("policy-rc.d"))
        .output()
        .unwrap();
    (out, std::fs::read_to_string(&log).unwrap_or_default())
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn nix_is_installed_only_for_the_tests_and_quietly() {
    let dir = stubs();
    let policy: PathBuf = dir.path().join("policy-rc.d");

    // The main job (the demo): no nix-bin, and none of dpkg's lines.
    let (out, apt) = setup(dir.path(), &[], 0);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let install = apt.lines().find(|l| l.starts_with("install")).unwrap();
    assert!(install.contains("systemd-container"), "{install}");
    assert!(!install.contains("nix-bin"), "{install}");
    let shown = text(&out.stdout) + &text(&out.stderr);
    assert!(
        !shown.contains("Unpacking") && !shown.contains("Setting up"),
        "{shown}"
    );
    assert!(shown.contains("installing systemd"), "{shown}");
    assert!(!policy.exists(), "the policy-rc.d it added is gone");

    // For the tests: nix-bin too.
    let (out, apt) = setup(dir.path(), &["--for-tests"], 0);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let install = apt.lines().find(|l| l.starts_with("install")).unwrap();
    assert!(install.contains("nix-bin"), "{install}");

    // A failed installation shows what apt said, and fails.
    let (out, _) = setup(dir.path(), &["--for-tests"], 100);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("Unpacking nix-bin"),
        "{}",
        text(&out.stderr)
    );
    assert!(!policy.exists());

    // A wrong argument is refused before anything is installed.
    let (out, apt) = setup(dir.path(), &["--for-test"], 0);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(apt, "");
}

#[test]
fn the_test_script_and_so_ci_ask_for_the_test_packages() {
    let test = std::fs::read_to_string(Path::new(REPO).join("scripts/test.sh")).unwrap();
    assert!(
        test.lines()
            .any(|l| l.trim() == "./scripts/setup-debian.sh --for-tests"),
        "{test}"
    );
    let ci = std::fs::read_to_string(Path::new(REPO).join(".ci/run")).unwrap();
    assert!(ci.lines().any(|l| l.trim() == "./scripts/test.sh"), "{ci}");
    let demo = std::fs::read_to_string(Path::new(REPO).join("scripts/demo.sh")).unwrap();
    assert!(
        demo.lines()
            .any(|l| l.trim() == "./scripts/setup-debian.sh"),
        "{demo}"
    );
}
