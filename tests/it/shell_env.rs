//! The shell environment in a real container: environment.variables and sessionVariables in
//! login shells and (sessionVariables) through PAM, aliases and init snippets in interactive
//! bash, and the NixOS-style prompt.

use crate::common::*;

fn inside(env: &Env, name: &str, argv: &[&str]) -> (String, String) {
    let out = env.run_inside(name, argv);
    (stdout(&out), stderr(&out))
}

#[test]
fn login_shells_see_variables_aliases_and_prompt() {
    require_root();
    let env = Env::new();
    let name = unique_name("shl");
    let config = "environment.variables = { FOO = \"foo value\"; SEARCH = [ \"/a\" \"/b\" ]; };\n\
        environment.sessionVariables = { SESS = \"session-value\"; };\n\
        environment.shellAliases = { hi = \"echo hello 'there'\"; ll = null; };\n\
        environment.systemPackages = [ { type = \"derivation\"; name = \"hello-2.12\"; outPath = \"/usr\"; } ];\n\
        programs.bash = { shellAliases.bye = \"echo bye\"; interactiveShellInit = \"export INTERACTIVE=yes\";\n\
          loginShellInit = \"export LOGIN=yes\"; };\n";
    env.create_booting_with(&name, &["--config", config]);
    assert_ok(&env.run(&["start", &name]), "start");

    let (out, err) = inside(
        &env,
        &name,
        &[
            "bash",
            "-lc",
            "echo \"$FOO|$SEARCH|$SESS|$LOGIN|${INTERACTIVE-none}\"; alias",
        ],
    );
    assert_eq!(out, "foo value|/a:/b|session-value|yes|none\n", "{err}");
    // Interactive bash: the aliases (ll removed, the others and the defaults kept), its init.
    let (out, err) = inside(
        &env,
        &name,
        &["bash", "-lic", "alias; echo \"$INTERACTIVE\""],
    );
    for alias in [
        "alias bye='echo bye'",
        "alias hi='echo hello '\\''there'\\'''",
        "alias l='ls -alh'",
        "alias ls='ls --color=tty'",
    ] {
        assert!(
            out.lines().any(|l| l == alias),
            "{alias} missing in\n{out}\n{err}"
        );
    }
    assert!(!out.contains("alias ll="), "{out}");
    assert!(out.ends_with("yes\n"), "{out}");
    let (out, _) = inside(
        &env,
        &name,
        &[
            "env",
            "TERM=dumb",
            "bash",
            "-lic",
            "cd /tmp && echo \"${PS1@P}\"",
        ],
    );
    assert_eq!(out, format!("[root@{name}:/tmp]# \n"));
    // PAM gives sessionVariables to a session without any shell profile (pam_env).
    let (out, err) = inside(
        &env,
        &name,
        &[
            "env",
            "-i",
            "/usr/bin/su",
            "root",
            "-s",
            "/bin/sh",
            "-c",
            "echo \"${SESS-unset}|${FOO-unset}\"",
        ],
    );
    assert_eq!(out, "session-value|unset\n", "{err}");
}
