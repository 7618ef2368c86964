//! Shell completions and man pages, both from one clap `Command` that describes the verbs as
//! they are found at the time (built-in and `$NCSH_VERBS_PATH`'s): each verb's text is its doc
//! comment (what `ncsh VERB --help` prints), its flags the ones that text names, and its NAME
//! completes to the containers of the conf directory, read when the shell asks.

use std::ffi::OsString;
use std::io::Write;

use clap::{Arg, ArgAction, Command, CommandFactory};
use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};
use clap_complete::env::{EnvCompleter, Shells};

use crate::container::Paths;
use crate::engine;
use crate::flags::Flags;

/// The variable the completion scripts set when they call ncsh back.
pub const COMPLETE_VAR: &str = "NCSH_COMPLETE";

/// The front end's own commands (not Rhai verbs: they describe the verbs).
pub const OWN_COMMANDS: [(&str, &str); 2] = [
    (
        "completions",
        "Print the completion script for a shell (bash, zsh or fish).\n\nUsage: ncsh completions SHELL [PROGRAM]\n\
         PROGRAM is the command it completes (ncsh; nixos-container for the symlink). The script\n\
         calls ncsh back, so user verbs and container names are current.",
    ),
    (
        "man",
        "Print a man page (roff): ncsh(1), or ncsh-VERB(1) for one verb.\n\nUsage: ncsh man [VERB]\n\
         `ncsh man VERB | man -l -` reads it; scripts/install.sh installs them all.",
    ),
];

/// The names of the containers, for completion: the conf directory's, without the checks
/// (or the lock) a verb takes, so it stays fast.
fn container_names() -> Vec<CompletionCandidate> {
    crate::container::store::list(&Paths::from_env())
        .unwrap_or_default()
        .into_iter()
        .map(CompletionCandidate::new)
        .collect()
}

/// Does this verb take an existing container's name first? Its usage line says `VERB NAME`
/// (`create`'s NAME is a new one).
fn takes_name(verb: &str, doc: &str) -> bool {
    verb != "create"
        && doc.lines().any(|line| {
            let mut words = line.split_whitespace();
            words.next() == Some("Usage:")
                && words.nth(1) == Some(verb)
                && words.next() == Some("NAME")
        })
}

/// The flags every verb accepts (nixos-container's), as clap describes them, without the
/// positional words and `--help`/`--version` (added where they apply).
fn flag_args() -> Vec<Arg> {
    Flags::command()
        .get_arguments()
        .filter(|a| a.get_long().is_some() && !matches!(a.get_id().as_str(), "help" | "version"))
        .cloned()
        .collect()
}

/// Does `doc` name `--long` (as a whole flag: `--config` is not named by `--config-file`)?
fn names_flag(doc: &str, long: &str) -> bool {
    let flag = format!("--{long}");
    doc.match_indices(&flag).any(|(at, _)| {
        doc[at + flag.len()..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '-'))
    })
}

fn help_arg() -> Arg {
    Arg::new("help")
        .long("help")
        .action(ArgAction::SetTrue)
        .help("Describe this verb")
}

/// One verb as a subcommand: its doc comment as the text, the flags it names, its arguments.
fn verb_command(verb: &str, doc: &str) -> Command {
    let summary = doc.lines().next().unwrap_or_default().to_string();
    let mut cmd = Command::new(verb.to_string())
        .about(summary)
        .long_about(doc.to_string())
        .disable_help_flag(true)
        .arg(help_arg());
    for arg in flag_args() {
        let long = arg.get_long().unwrap_or_default();
        if long == "driver" || names_flag(doc, long) {
            cmd = cmd.arg(arg);
        }
    }
    if takes_name(verb, doc) {
        cmd = cmd.arg(
            Arg::new("NAME")
                .help("The container")
                .add(ArgValueCandidates::new(container_names)),
        );
    }
    cmd.arg(
        Arg::new("ARGS")
            .num_args(0..)
            .trailing_var_arg(true)
            .allow_hyphen_values(true)
            .help("The verb's arguments (after `--`, a command's)"),
    )
}

/// ncsh as clap sees it for completion and man pages.
pub fn command() -> Command {
    command_for(true)
}

/// The same, without the front end's own commands for the `nixos-container` name.
fn command_for(own_commands: bool) -> Command {
    let mut cmd = Command::new("ncsh")
        .about(env!("CARGO_PKG_DESCRIPTION"))
        .long_about(
            "A scriptable shell for NixOS-style imperative containers and a drop-in nixos-container:\n\
             the same verbs, flags, files and messages. `ncsh VERB --help` describes a verb;\n\
             `ncsh SCRIPT.rhai ARGS` runs a script; `ncsh` alone is the REPL.",
        )
        .version(env!("CARGO_PKG_VERSION"))
        .disable_help_flag(true)
        .disable_version_flag(true)
        .arg(help_arg().help("Describe ncsh and its verbs"))
        .arg(
            Arg::new("version")
                .long("version")
                .action(ArgAction::SetTrue)
                .help("Print the version, the driver and the builder"),
        );
    for arg in flag_args().into_iter().filter(|a| a.get_id() == "driver") {
        cmd = cmd.arg(arg.global(true));
    }
    for verb in engine::all_verbs() {
        let Some(found) = engine::find_verb(&verb) else {
            continue;
        };
        cmd = cmd.subcommand(verb_command(&verb, &engine::doc_comment(&found.source)));
    }
    for (name, doc) in OWN_COMMANDS.iter().filter(|_| own_commands) {
        cmd = cmd.subcommand(verb_command(name, doc));
    }
    cmd
}

/// Answer a completion script's call (`NCSH_COMPLETE=SHELL ncsh -- WORDS`) when that is what
/// this run is; `None` for any other run.
pub fn answer_completion(argv: &[OsString]) -> Option<i32> {
    std::env::var_os(COMPLETE_VAR).filter(|v| !v.is_empty() && v != "0")?;
    let current = std::env::current_dir().ok();
    // The script calls back the program it completes: as nixos-container, its verbs only.
    let own = !argv.first().is_some_and(|p| {
        std::path::Path::new(p)
            .file_name()
            .is_some_and(|n| n == "nixos-container")
    });
    let done = clap_complete::CompleteEnv::with_factory(move || command_for(own))
        .var(COMPLETE_VAR)
        .try_complete(argv.iter().cloned(), current.as_deref());
    Some(match done {
        Ok(_) => 0,
        Err(e) => {
            let _ = e.print();
            1
        }
    })
}

/// `ncsh completions SHELL [PROGRAM]`: the script that registers completion for PROGRAM.
pub fn completions(args: &[String]) -> Result<String, String> {
    let (shell, program) = match args {
        [shell] => (shell.as_str(), "ncsh"),
        [shell, program] => (shell.as_str(), program.as_str()),
        _ => {
            return Err(
                "usage: ncsh completions SHELL [PROGRAM] (SHELL: bash, zsh or fish)".into(),
            );
        }
    };
    let shells = Shells::builtins();
    let completer: &dyn EnvCompleter = match shells.completer(shell) {
        Some(c) if matches!(shell, "bash" | "zsh" | "fish") => c,
        _ => {
            return Err(format!(
                "no completions for the shell ‘{shell}’: bash, zsh or fish"
            ));
        }
    };
    let mut buf = Vec::new();
    completer
        .write_registration(COMPLETE_VAR, program, program, program, &mut buf)
        .map_err(|e| format!("writing the completion script: {e}"))?;
    String::from_utf8(buf).map_err(|e| format!("the completion script is not UTF-8: {e}"))
}

/// `ncsh man [VERB]`: ncsh(1), or ncsh-VERB(1).
pub fn man_page(args: &[String]) -> Result<Vec<u8>, String> {
    let root = command();
    let page = match args {
        [] => root,
        [verb] => {
            let Some(sub) = root.find_subcommand(verb).cloned() else {
                return Err(format!(
                    "no verb ‘{verb}’ for a man page (`ncsh --help` lists them)"
                ));
            };
            sub.display_name(format!("ncsh-{verb}"))
                .bin_name(format!("ncsh {verb}"))
                .version(env!("CARGO_PKG_VERSION"))
                .disable_version_flag(true)
        }
        _ => return Err("usage: ncsh man [VERB]".into()),
    };
    let mut buf = Vec::new();
    clap_mangen::Man::new(page)
        .section("1")
        .source(format!("ncsh {}", env!("CARGO_PKG_VERSION")))
        .manual("ncsh manual")
        .render(&mut buf)
        .map_err(|e| format!("writing the man page: {e}"))?;
    Ok(buf)
}

/// Print what [`completions`] or [`man_page`] made, or its error; the exit status.
pub fn print_or_fail(out: Result<Vec<u8>, String>) -> i32 {
    match out {
        Ok(bytes) => match std::io::stdout().write_all(&bytes) {
            Ok(()) => 0,
            // A reader that stopped early (`| head`) is not an error of ours.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
            Err(e) => {
                eprintln!("ncsh: writing to stdout: {e}");
                1
            }
        },
        Err(message) => {
            eprintln!("ncsh: {message}");
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_line_names_the_container() {
        assert!(takes_name("start", "Start.\n\nUsage: ncsh start NAME"));
        assert!(!takes_name("create", "Create.\n\nUsage: ncsh create NAME"));
        assert!(!takes_name("list", "List.\n\nUsage: ncsh list"));
    }

    #[test]
    fn verbs_get_the_flags_their_text_names() {
        let doc = "Make one.\n\nUsage: ncsh make NAME [--config TEXT] [--auto-start]";
        let cmd = verb_command("make", doc);
        let longs: Vec<&str> = cmd.get_arguments().filter_map(|a| a.get_long()).collect();
        assert!(longs.contains(&"config"), "{longs:?}");
        assert!(longs.contains(&"auto-start"), "{longs:?}");
        assert!(!longs.contains(&"bridge"), "{longs:?}");
        assert!(!longs.contains(&"config-file"), "{longs:?}");
        assert!(
            longs.contains(&"help") && longs.contains(&"driver"),
            "{longs:?}"
        );
    }

    #[test]
    fn unknown_shell_is_refused() {
        assert!(completions(&["tcsh".into()]).is_err());
        assert!(completions(&["bash".into()]).is_ok_and(|s| s.contains("NCSH_COMPLETE")));
    }
}
