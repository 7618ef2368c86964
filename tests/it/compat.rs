//! Options accepted for compatibility: a configuration setting all of them builds and boots,
//! says on stderr which ones mean nothing here, and services.journald.extraConfig takes effect.
//! (networking.useDHCP is set to false by configuration.nix itself, as nixos-container writes
//! it, so a configuration cannot set it to true; boot.isContainer likewise.)

use std::time::Duration;

use crate::common::*;

#[test]
fn accepted_options_build_with_notes_and_journald_config_applies() {
    require_root();
    let env = Env::new();
    let name = unique_name("cmp");
    let config = "system.stateVersion = \"24.05\";\nboot.isContainer = true;\n\
        networking.useHostResolvConf = true;\nnetworking.nameservers = [ \"127.0.0.1\" ];\n\
        networking.enableIPv6 = false;\n\
        nix.enable = false;\nnix.settings = { experimental-features = [ \"nix-command\" \"flakes\" ]; };\n\
        documentation = { enable = false; man.enable = false; doc.enable = false; info.enable = false; nixos.enable = false; };\n\
        services.journald.extraConfig = \"MaxLevelStore=warning\";\n";
    let (host, local) = env.test_addresses();
    env.track(&name);
    let out = env.run(&[
        "create",
        &name,
        "--host-address",
        &host,
        "--local-address",
        &local,
        "--config",
        config,
    ]);
    assert_ok(&out, "create");
    let err = stderr(&out);
    for note in [
        "ncsh: note: networking.useHostResolvConf:",
        "ncsh: note: networking.enableIPv6 = false:",
        "ncsh: note: nix.settings: there is no Nix in this container",
        "ncsh: note: documentation:",
    ] {
        assert_eq!(err.matches(note).count(), 1, "{note} once in\n{err}");
    }
    assert!(
        !err.contains("stateVersion") && !err.contains("isContainer"),
        "silent: {err}"
    );
    // Without those options, no note.
    let plain = env.run(&[
        "update",
        &name,
        "--config",
        "system.stateVersion = \"24.05\";",
    ]);
    assert_ok(&plain, "update");
    assert!(!stderr(&plain).contains("note"), "{}", stderr(&plain));
    assert_ok(
        &env.run(&["update", &name, "--config", config]),
        "update back",
    );

    assert_ok(&env.run(&["start", &name]), "start");
    // journald stores warnings and worse only.
    for (priority, text) in [
        ("user.info", "compat-info"),
        ("user.warning", "compat-warning"),
    ] {
        let out = env.run(&[
            "run", &name, "--", "logger", "-t", "compat", "-p", priority, text,
        ]);
        assert_ok(&out, "logger");
    }
    let journal = || {
        stdout(&env.run(&[
            "run",
            &name,
            "--",
            "journalctl",
            "-q",
            "-o",
            "cat",
            "-t",
            "compat",
        ]))
    };
    assert!(
        eventually(Duration::from_secs(5), || journal()
            .contains("compat-warning")),
        "{}",
        journal()
    );
    assert!(!journal().contains("compat-info"), "{}", journal());
}
