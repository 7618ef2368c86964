//! Shell completions and man pages: bash, zsh and fish run non-interactively against the scripts
//! `ncsh completions SHELL` prints, which call ncsh back; `man -l` renders `ncsh man VERB`.
//! Nothing here boots a container: completion reads only the conf directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// An environment with two containers' confs (completion reads only their names) and a user
/// verb `greet NAME [--bridge BRIDGE]`.
struct Fixture {
    env: Env,
    names: [String; 2],
    verbs: PathBuf,
    bin_dir: PathBuf,
}

fn fixture() -> Fixture {
    let env = Env::new();
    let names = [unique_name("cpa"), unique_name("cpb")];
    let conf_dir = env.prefix().join("etc/nixos-containers");
    std::fs::create_dir_all(&conf_dir).unwrap();
    for name in &names {
        std::fs::write(conf_dir.join(format!("{name}.conf")), "PRIVATE_NETWORK=1\n").unwrap();
    }
    let verbs = env.prefix().join("verbs");
    std::fs::create_dir_all(&verbs).unwrap();
    std::fs::write(
        verbs.join("greet.rhai"),
        "//! Greet a container.\n//!\n//! Usage: ncsh greet NAME [--bridge BRIDGE]\nprint(args);\n",
    )
    .unwrap();
    // The scripts call `ncsh` by name, as installed.
    let bin_dir = env.prefix().join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::os::unix::fs::symlink(BIN, bin_dir.join("ncsh")).unwrap();
    Fixture {
        env,
        names,
        verbs,
        bin_dir,
    }
}

impl Fixture {
    fn script(&self, shell: &str) -> PathBuf {
        let out = self.env.run(&["completions", shell]);
        assert_ok(&out, "ncsh completions");
        let path = self.env.prefix().join(format!("complete.{shell}"));
        std::fs::write(&path, &out.stdout).unwrap();
        path
    }

    /// `program ARGS` with this environment and the ncsh symlink first on PATH.
    fn shell(&self, program: &str, args: &[&str]) -> Vec<String> {
        let path = format!(
            "{}:{}",
            self.bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = self.env.command_as(program, args);
        cmd.env("PATH", path)
            .env("NCSH_VERBS_PATH", &self.verbs)
            .env("HOME", self.env.prefix())
            .env("XDG_CONFIG_HOME", self.env.prefix().join("config"))
            .env("XDG_DATA_HOME", self.env.prefix().join("data"));
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("running {program}: {e}"));
        assert_ok(&out, program);
        let mut lines: Vec<String> = stdout(&out)
            .lines()
            // fish's `value<TAB>help`, zsh's `value:help`.
            .map(|l| l.split(['\t', ':']).next().unwrap_or_default().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        lines.sort();
        lines
    }

    /// Bash's candidates for the words of `line` (the last one being completed).
    fn bash(&self, line: &str) -> Vec<String> {
        let script = self.script("bash");
        let program = format!(
            "source {script}\nCOMP_WORDS=({line})\n[[ \"{line}\" == *' ' ]] && COMP_WORDS+=('')\n\
             COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))\nCOMP_TYPE=9\n\
             _clap_complete_ncsh ncsh \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script = script.display()
        );
        self.shell("bash", &["--norc", "--noprofile", "-c", &program])
    }

    /// Zsh's: the script's function run with compsys's `_describe` and `compdef` stood in for.
    fn zsh(&self, line: &str) -> Vec<String> {
        let script = self.script("zsh");
        let program = format!(
            "compdef() {{ : }}\n_describe() {{ print -l -- \"${{(@P)3}}\" }}\nsource {script}\n\
             words=(${{=:-{line}}})\n[[ \"{line}\" == *' ' ]] && words+=('')\nCURRENT=${{#words}}\n\
             _clap_dynamic_completer_ncsh",
            script = script.display()
        );
        self.shell("zsh", &["-f", "-c", &program])
    }

    /// Fish's, with `complete -C` (what fish offers on Tab).
    fn fish(&self, line: &str) -> Vec<String> {
        let script = self.script("fish");
        let program = format!("source {}; complete -C '{line}'", script.display());
        self.shell("fish", &["--no-config", "-c", &program])
    }
}

fn has(candidates: &[String], want: &str) -> bool {
    candidates.iter().any(|c| c == want)
}

/// Each shell completes verbs (the user's too), a verb's flags, and container names.
fn check_shell(f: &Fixture, complete: impl Fn(&str) -> Vec<String>, shell: &str) {
    let verbs = complete("ncsh st");
    for verb in ["start", "status", "stop"] {
        assert!(
            has(&verbs, verb),
            "{shell}: `ncsh st` offers {verb}: {verbs:?}"
        );
    }
    assert!(!has(&verbs, "create"), "{shell}: {verbs:?}");
    let user = complete("ncsh gr");
    assert_eq!(user, ["greet"], "{shell}: the user verb");

    let names = complete("ncsh start ");
    for name in &f.names {
        assert!(has(&names, name), "{shell}: container {name}: {names:?}");
    }
    let one = complete(&format!(
        "ncsh destroy {}",
        &f.names[1][..f.names[1].len() - 1]
    ));
    assert!(has(&one, &f.names[1]), "{shell}: {one:?}");
    let greeted = complete("ncsh greet ");
    assert!(
        has(&greeted, &f.names[0]),
        "{shell}: user verb's NAME: {greeted:?}"
    );

    let flags = complete("ncsh create x --con");
    assert_eq!(
        flags,
        ["--config", "--config-file"],
        "{shell}: create's flags"
    );
    let update = complete("ncsh update x --");
    assert!(
        has(&update, "--config") && !has(&update, "--bridge"),
        "{shell}: {update:?}"
    );
    let user_flags = complete("ncsh greet x --b");
    assert_eq!(user_flags, ["--bridge"], "{shell}: the user verb's flags");
}

#[test]
fn bash_completes_verbs_flags_and_container_names() {
    let f = fixture();
    check_shell(&f, |line| f.bash(line), "bash");
}

#[test]
fn zsh_completes_verbs_flags_and_container_names() {
    let f = fixture();
    check_shell(&f, |line| f.zsh(line), "zsh");
}

#[test]
fn fish_completes_verbs_flags_and_container_names() {
    let f = fixture();
    check_shell(&f, |line| f.fish(line), "fish");
}

#[test]
fn nixos_container_completes_its_verbs_and_names_but_not_ncsh_s_own_commands() {
    let f = fixture();
    std::os::unix::fs::symlink(BIN, f.bin_dir.join("nixos-container")).unwrap();
    let out = f.env.run(&["completions", "bash", "nixos-container"]);
    assert_ok(&out, "ncsh completions bash nixos-container");
    let script = f.env.prefix().join("complete-nc.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let complete = |line: &str| {
        let program = format!(
            "source {script}\nCOMP_WORDS=({line})\n[[ \"{line}\" == *' ' ]] && COMP_WORDS+=('')\n\
             COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))\nCOMP_TYPE=9\n\
             _clap_complete_nixos_container nixos-container \"${{COMP_WORDS[COMP_CWORD]}}\"\n\
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script = script.display()
        );
        f.shell("bash", &["--norc", "--noprofile", "-c", &program])
    };
    let verbs = complete("nixos-container ");
    assert!(has(&verbs, "start") && has(&verbs, "show-ip"), "{verbs:?}");
    assert!(
        !has(&verbs, "completions") && !has(&verbs, "man"),
        "{verbs:?}"
    );
    let names = complete("nixos-container stop ");
    assert!(has(&names, &f.names[0]), "{names:?}");
}

#[test]
fn an_unknown_shell_is_refused_and_prints_nothing() {
    let env = Env::new();
    let out = env.run(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(
        stderr(&out).contains("bash, zsh or fish"),
        "{}",
        stderr(&out)
    );
}

/// `man -l` renders a page to text (no pager, fixed width).
fn render(page: &Path) -> String {
    let out = Command::new("man")
        .args(["-l", "-P", "cat"])
        .arg(page)
        .env("MANWIDTH", "100")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .expect("running man");
    assert_ok(&out, "man -l");
    stdout(&out)
}

#[test]
fn man_pages_render_with_the_verbs_text_and_flags() {
    let env = Env::new();
    let out = env.run(&["man", "create"]);
    assert_ok(&out, "ncsh man create");
    let page = env.prefix().join("ncsh-create.1");
    std::fs::write(&page, &out.stdout).unwrap();
    let text = render(&page);
    assert!(text.contains("ncsh-create"), "{text}");
    // The same text as `ncsh create --help`.
    let help = stdout(&env.run(&["create", "--help"]));
    let first = help.lines().next().unwrap();
    assert!(
        text.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .contains(first),
        "{first} in {text}"
    );
    for flag in [
        "--ensure-unique-name",
        "--auto-start",
        "--config-file",
        "--host-address",
    ] {
        assert!(text.contains(flag), "{flag} in {text}");
    }
    assert!(
        !text.contains("--json"),
        "create does not take --json: {text}"
    );

    let out = env.run(&["man"]);
    assert_ok(&out, "ncsh man");
    let page = env.prefix().join("ncsh.1");
    std::fs::write(&page, &out.stdout).unwrap();
    let text = render(&page);
    for verb in ["ncsh-create(1)", "ncsh-run(1)", "ncsh-completions(1)"] {
        assert!(text.contains(verb), "{verb} in {text}");
    }

    let out = env.run(&["man", "no-such-verb"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[test]
fn install_script_puts_completions_and_man_pages_where_the_tools_look() {
    let env = Env::new();
    let dest = env.prefix().join("dest");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install.sh");
    let out = env
        .command_as("bash", &[script, BIN])
        .env("DESTDIR", &dest)
        .env("PREFIX", "/usr/local")
        .output()
        .expect("running install.sh");
    assert_ok(&out, "install.sh");
    let share = dest.join("usr/local/share");
    for (path, needle) in [
        ("bash-completion/completions/ncsh", "NCSH_COMPLETE"),
        (
            "bash-completion/completions/nixos-container",
            "nixos-container",
        ),
        ("zsh/site-functions/_ncsh", "#compdef ncsh"),
        ("fish/vendor_completions.d/ncsh.fish", "complete"),
        ("man/man1/ncsh.1", ".TH"),
        ("man/man1/ncsh-run.1", "\\-\\-setenv"),
        ("man/man1/ncsh-show.1", "\\-\\-json"),
    ] {
        let text =
            std::fs::read_to_string(share.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(text.contains(needle), "{path} holds {needle}: {text}");
    }
    let link = std::fs::read_link(dest.join("usr/local/bin/nixos-container")).unwrap();
    assert_eq!(link, Path::new("ncsh"));
    // The user's verbs are theirs: only the built-in ones get pages.
    let pages = std::fs::read_dir(share.join("man/man1")).unwrap().count();
    let verbs = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/stdlib/verbs"))
        .unwrap()
        .count();
    assert_eq!(
        pages,
        1 + verbs + 2,
        "ncsh(1), the built-in verbs, completions and man"
    );
}
