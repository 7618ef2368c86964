//! No input may panic: every `NCSH_*` variable and every flag that takes a value, set to
//! extreme values, gives an answer or a clear error — never a panic (exit 101, "panicked").

use std::process::Output;

use crate::common::*;

/// Values that broke, or could break, number and path parsing.
fn extremes() -> Vec<String> {
    let mut v: Vec<String> = [
        "1e19",
        "-1",
        "NaN",
        "inf",
        "-inf",
        "",
        "0",
        "1",
        "2",
        "3",
        "1e-300",
        "18446744073709551616",
        "%",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("9".repeat(5000));
    v.push("x".repeat(70_000));
    v
}

/// Every variable ncsh reads (`grep -rn 'NCSH_' src`).
const VARS: &[&str] = &[
    "NCSH_START_TIMEOUT",
    "NCSH_STOP_TIMEOUT",
    "NCSH_DRIVER",
    "NCSH_BUILDER",
    "NCSH_NSPAWN",
    "NCSH_READY_FD",
    "NCSH_HISTORY",
    "NCSH_MODULES_PATH",
    "NCSH_VERBS_PATH",
    "NCSH_PREFIX",
    "NCSH_CONF_DIR",
    "NCSH_STATE_DIR",
    "NCSH_RUN_DIR",
    "NCSH_LOCK_FILE",
    "NCSH_PROFILES_DIR",
    "NCSH_GCROOTS_DIR",
    "NCSH_MAX_OPERATIONS",
    "NCSH_MAX_STRING_SIZE",
    "NCSH_MAX_ARRAY_SIZE",
    "NCSH_MAX_MAP_SIZE",
    "NCSH_MAX_CALL_LEVELS",
    "NCSH_MAX_EXPR_DEPTH",
    "NCSH_MAX_RESPONSE_SIZE",
];

fn assert_no_panic(out: &Output, what: &str) {
    let err = stderr(out);
    assert!(
        out.status.code() != Some(101) && !err.contains("panicked"),
        "{what} panicked: {:?}\n{err}",
        out.status
    );
}

#[test]
fn extreme_environment_values_never_panic() {
    require_root();
    let env = Env::new();
    let name = unique_name("ext");
    let (host, local) = env.test_addresses();
    env.create(&name, &["--host-address", &host, "--local-address", &local]);
    // A scratch directory as the working directory: relative values of path variables land here.
    let cwd = tempfile::tempdir().unwrap();
    for var in VARS {
        for value in extremes() {
            for args in [
                vec!["list"],
                vec!["status", &name],
                vec!["start", &name],
                vec!["stop", &name],
                vec!["run", &name, "--", "true"],
                vec!["eval", "let s = \"ab\"; s.len()"],
            ] {
                let mut cmd = env.command(&args);
                // nspawn exits at once, so `start` reaches its wait for readiness.
                cmd.env("NCSH_NSPAWN", "/bin/false").current_dir(cwd.path());
                cmd.env(var, &value);
                let out = cmd.output().unwrap();
                let shown: String = value.chars().take(20).collect();
                assert_no_panic(&out, &format!("{var}={shown} ncsh {args:?}"));
            }
            // The supervisor's own variables, read by `ncsh __supervise NAME` (what `start` runs);
            // its background half keeps stderr open, so a panic there shows too.
            if matches!(*var, "NCSH_READY_FD" | "NCSH_STOP_TIMEOUT") {
                let out = env
                    .command(&["__supervise", &name])
                    .env("NCSH_NSPAWN", "/bin/false")
                    .env(var, &value)
                    .output()
                    .unwrap();
                let shown: String = value.chars().take(20).collect();
                assert_no_panic(&out, &format!("{var}={shown} ncsh __supervise"));
                assert!(
                    !stderr(&out).contains("fatal runtime error"),
                    "{}",
                    stderr(&out)
                );
            }
        }
    }
}

#[test]
fn extreme_flag_values_never_panic() {
    require_root();
    let env = Env::new();
    let name = unique_name("exf");
    let (host, local) = env.test_addresses();
    env.create(&name, &["--host-address", &host, "--local-address", &local]);
    for value in extremes() {
        for flag in [
            "--port",
            "--host-address",
            "--local-address",
            "--bridge",
            "--signal",
            "--config",
            "--config-file",
            "--system-path",
            "--nixos-path",
            "--flake",
            "--driver",
            "--log-format",
        ] {
            for verb in ["create", "update", "run", "status"] {
                let new = unique_name("exn");
                let target = if verb == "create" {
                    new.as_str()
                } else {
                    &name
                };
                if verb == "create" {
                    env.track(&new);
                }
                let out = env
                    .command(&[verb, target, flag, &value])
                    .env("NCSH_NSPAWN", "/bin/false")
                    .output()
                    .unwrap();
                let shown: String = value.chars().take(20).collect();
                assert_no_panic(&out, &format!("ncsh {verb} {flag} {shown}"));
            }
        }
        let out = env
            .command(&["kill", &name, "--signal", &value])
            .output()
            .unwrap();
        assert_no_panic(&out, "kill --signal");
    }
}
