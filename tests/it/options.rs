//! `ncsh options`: finding the NixOS options the native builder knows, built-in and the user's.
//! Nothing here boots a container.

use std::process::Output;

use crate::common::*;

/// `ncsh options ARGS` with the user's option modules in `modules` (none: an empty directory).
fn options(env: &Env, modules: Option<&std::path::Path>, args: &[&str]) -> Output {
    let empty = env.prefix().join("no-user-modules");
    let mut all = vec!["options"];
    all.extend_from_slice(args);
    env.command(&all)
        .env("NCSH_MODULES_PATH", modules.unwrap_or(&empty))
        .output()
        .expect("running ncsh options")
}

/// The option names of a listing: its unindented lines.
fn names(listing: &str) -> Vec<&str> {
    listing
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with(' '))
        .collect()
}

#[test]
fn a_prefix_lists_the_options_below_it_sorted_with_type_default_and_module() {
    let env = Env::new();
    let out = options(&env, None, &["services.openssh"]);
    assert_ok(&out, "options services.openssh");
    let text = stdout(&out);
    assert!(
        text.contains(
            "services.openssh.ports\n    Type: list of port    Default: [ 22 ]\n    \
             The ports sshd listens on.\n    Declared in: openssh\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("services.openssh.enable\n    Type: boolean    Default: false\n"),
        "{text}"
    );
    assert!(
        text.contains("    Type: one of \"yes\", \"without-password\", \"prohibit-password\""),
        "{text}"
    );
    let listed = names(&text);
    assert!(listed.len() >= 5, "{text}");
    assert!(
        listed.iter().all(|n| n.starts_with("services.openssh.")),
        "{listed:?}"
    );
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted);
    assert_eq!(stderr(&out), "");
    // The start of the last component is a prefix too; a component boundary elsewhere.
    assert_eq!(stdout(&options(&env, None, &["services.open"])), text);
    let out = options(&env, None, &["users.users.alice.isN"]);
    assert_eq!(names(&stdout(&out)), ["users.users.<name>.isNormalUser"]);
    // Everything, without a prefix.
    let all = stdout(&options(&env, None, &[]));
    for name in [
        "networking.firewall.allowedTCPPorts",
        "services.openssh.ports",
        "users.users.<name>.uid",
    ] {
        assert!(names(&all).contains(&name), "{name} missing:\n{all}");
    }
}

#[test]
fn json_is_an_array_of_options() {
    let env = Env::new();
    let out = options(&env, None, &["services.openssh", "--json"]);
    assert_ok(&out, "options --json");
    let parsed: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let list = parsed.as_array().expect("an array");
    let ports = list
        .iter()
        .find(|o| o["name"] == "services.openssh.ports")
        .expect("services.openssh.ports listed");
    assert_eq!(
        ports,
        &serde_json::json!({
            "name": "services.openssh.ports",
            "type": "list of port",
            "default": [22],
            "description": "The ports sshd listens on.",
            "declaredIn": "openssh",
        })
    );
    assert!(
        list.iter()
            .all(|o| o["name"].as_str().unwrap().starts_with("services.openssh."))
    );
    // A default made from the attribute's name is shown as the function that makes it.
    let user = stdout(&options(
        &env,
        None,
        &["services.redis.servers.x.user", "--json"],
    ));
    let user: serde_json::Value = serde_json::from_str(&user).expect("JSON");
    assert_eq!(
        user[0]["defaultText"],
        "name: if name == \"\" then \"redis\" else \"redis-${name}\""
    );
    let text = stdout(&options(&env, None, &["services.redis.servers.x.user"]));
    assert!(
        text.contains("Default: (from the name) name: if name == \"\" then"),
        "{text}"
    );
    let uid = stdout(&options(&env, None, &["users.users.x.uid", "--json"]));
    let uid: serde_json::Value = serde_json::from_str(&uid).expect("JSON");
    assert_eq!(uid[0]["default"], serde_json::Value::Null);
    assert_eq!(uid[0]["type"], "null or signed integer");
}

#[test]
fn an_unknown_prefix_fails_and_suggests_close_names() {
    let env = Env::new();
    let out = options(&env, None, &["servics.opensh"]);
    assert!(!out.status.success());
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out),
        "ncsh: there is no option ‘servics.opensh’ nor any below it: did you mean services.openssh?\n"
    );
    let out = options(&env, None, &["nix.settings.experimental-features"]);
    assert!(!out.status.success());
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).ends_with(": `ncsh options` lists every option\n"),
        "{}",
        stderr(&out)
    );
    let out = options(&env, None, &["a", "b"]);
    assert!(!out.status.success() && stderr(&out).contains("one PREFIX"));
}

#[test]
fn the_users_own_modules_are_listed() {
    let env = Env::new();
    let modules = env.prefix().join("modules");
    std::fs::create_dir_all(&modules).unwrap();
    let module = modules.join("hello.rhai");
    std::fs::write(
        &module,
        "fn options() { [\n\
         #{ path: \"services.hello.greeting\", type: \"str\", \"default\": \"hi\", description: \"What to say.\\nOn two lines.\" },\n\
         #{ path: \"services.hello.users\", type: \"attrsOf listOf str\", \"default\": #{ root: [\"a\"] }, description: \"\" },\n\
         ] }\nfn build(config, gen) { }\n",
    )
    .unwrap();
    let out = options(&env, Some(&modules), &["services.hello"]);
    assert_ok(&out, "options services.hello");
    assert_eq!(
        stdout(&out),
        format!(
            "services.hello.greeting\n    Type: string    Default: \"hi\"\n    What to say.\n    \
             On two lines.\n    Declared in: {m}\n\n\
             services.hello.users\n    Type: attribute set of list of string    \
             Default: {{ root = [ \"a\" ]; }}\n    Declared in: {m}\n",
            m = module.display()
        )
    );
    // The built-in ones are still there.
    let out = options(&env, Some(&modules), &["services.openssh.enable"]);
    assert_ok(&out, "options services.openssh.enable");
    // A broken module is an error that names it.
    std::fs::write(
        &module,
        "fn options() { [ #{ path: \"x\", type: \"float\" } ] }\n",
    )
    .unwrap();
    let out = options(&env, Some(&modules), &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("hello.rhai") && stderr(&out).contains("float"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "");
}

#[test]
fn help_describes_the_verb() {
    let env = Env::new();
    let out = options(&env, None, &["--help"]);
    assert_ok(&out, "options --help");
    assert!(
        stdout(&out).contains("Usage: ncsh options [PREFIX] [--json]"),
        "{}",
        stdout(&out)
    );
    let out = env.run(&["--help"]);
    assert!(stdout(&out).contains("  options "), "{}", stdout(&out));
}

/// An unknown option in a configuration says how to find options, and suggests only close names.
#[test]
fn an_unknown_option_in_a_configuration_points_to_ncsh_options() {
    require_root();
    let env = Env::new();
    let name = unique_name("opt");
    env.track(&name);
    let out = env.run(&["create", &name, "--config", "frobnicate.wibble.level = 3;"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("the option ‘frobnicate.wibble.level’ does not exist (ncsh options PREFIX lists the options there are)"),
        "{err}"
    );
    assert!(!err.contains("did you mean"), "{err}");
    let out = env.run(&[
        "create",
        &name,
        "--config",
        "services.opensh.enable = true;",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("did you mean services.openssh.enable?"),
        "{}",
        stderr(&out)
    );
    assert!(!env.conf_path(&name).exists());
}
