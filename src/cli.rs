//! The command line: nixos-container's grammar (options anywhere, `--` ends them, the same flags
//! for every action), verbs dispatched to their Rhai scripts, `ncsh FILE.rhai ARGS` for scripts.
//! Invoked as `nixos-container`, messages and exit codes are the original's.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::Path;
use std::rc::Rc;

use rhai::{Dynamic, Map};

mod docs;

use crate::api::error::explain;
use crate::container::Paths;
use crate::engine;
use crate::error::Error;
use crate::flags::{Flags, FlagsError, clap_message, getopt_argv};
use crate::manager::{Manager, Personality};

/// How one invocation talks to the user.
struct Ui {
    program: String,
    personality: Personality,
}

impl Ui {
    fn error(&self, e: &Error) -> i32 {
        self.message(&e.to_string(), e.hint().as_deref());
        1
    }

    fn message(&self, message: &str, hint: Option<&str>) {
        match (self.personality, hint) {
            (Personality::Ncsh, Some(hint)) => eprintln!("{}: {message}: {hint}", self.program),
            _ => eprintln!("{}: {message}", self.program),
        }
    }
}

fn usage(program: &str) -> String {
    let mut text = format!(
        "Usage: {program} VERB [NAME] [OPTIONS] [-- ARGS...]\n       {program} SCRIPT.rhai [ARGS...]\n\nVerbs:\n"
    );
    for verb in engine::all_verbs() {
        let summary = engine::verb_summary(&verb);
        text.push_str(&format!("  {verb:<15} {summary}\n"));
    }
    for (name, doc) in docs::OWN_COMMANDS {
        let summary = doc.lines().next().unwrap_or_default();
        text.push_str(&format!("  {name:<15} {summary}\n"));
    }
    text.push_str(
        "\nOptions (nixos-container's, for every verb):\n  --ensure-unique-name  --auto-start  --bridge BRIDGE  --port SPEC\n  \
         --host-address ADDR  --local-address ADDR  --config TEXT  --config-file FILE\n  --help  --version\n\n\
         ncsh's own: --json (list, show, status, show-ip, options), --quiet (no progress line),\n  \
         --driver NAME; for run: --user USER  --chdir DIR  --setenv NAME=VALUE  --pty  --no-pty\n\n\
         `ncsh VERB --help` describes a verb.\n",
    );
    text
}

/// Is the first argument a script to run rather than a verb?
fn is_script(arg: &str) -> bool {
    arg.ends_with(".rhai") || (arg.contains('/') && Path::new(arg).is_file())
}

/// `--driver NAME` (in any form [`getopt_argv`] reads) before `--`, found before the manager
/// exists (scripts' own arguments are not ncsh's flags). The last one wins.
fn driver_flag(argv: &[String]) -> Option<String> {
    if argv.get(1).is_some_and(|a| is_script(a)) {
        return None;
    }
    // In the canonical form an option's value is in its own word (`--config=--driver=x`).
    let canonical = getopt_argv(argv.get(1..).unwrap_or_default()).ok()?;
    canonical
        .iter()
        .take_while(|arg| *arg != "--")
        .filter_map(|arg| arg.strip_prefix("--driver="))
        .last()
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

pub fn run(argv: Vec<OsString>) -> i32 {
    // A completion script calling back (`NCSH_COMPLETE=SHELL ncsh -- WORDS`).
    if let Some(code) = docs::answer_completion(&argv) {
        return code;
    }
    let argv: Vec<String> = argv
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let invoked = argv.first().cloned().unwrap_or_else(|| "ncsh".into());
    let personality = if Path::new(&invoked)
        .file_name()
        .is_some_and(|n| n == "nixos-container")
    {
        Personality::NixosContainer
    } else {
        Personality::Ncsh
    };
    let program = match personality {
        Personality::NixosContainer => invoked.clone(),
        Personality::Ncsh => "ncsh".to_string(),
    };
    let ui = Ui {
        program,
        personality,
    };

    // Internal entry points, run by ncsh itself: the standalone driver's supervisor, the
    // ExecReload of `container@NAME.service` (systemd driver), which switches the container,
    // and the process an update of a running standalone container switches it from.
    let internal: Option<fn(&str) -> i32> = match argv.get(1).map(String::as_str) {
        Some("__supervise") => Some(crate::host::standalone::supervise_main),
        Some("__reload") => Some(crate::host::systemd::reload_main),
        Some("__net-up") => Some(crate::host::systemd::net_up_main),
        Some("__net-down") => Some(crate::host::systemd::net_down_main),
        Some("__switch") => Some(crate::host::switch::switch_main),
        _ => None,
    };
    if let Some(entry) = internal {
        return match argv.get(2) {
            Some(name) => entry(name),
            None => {
                ui.message(
                    &format!("{} NAME: internal, run by ncsh itself", argv[1]),
                    None,
                );
                2
            }
        };
    }
    // The front end's own commands, which describe the verbs (ncsh's only).
    if personality == Personality::Ncsh {
        let own = docs::OWN_COMMANDS
            .iter()
            .find(|(name, _)| argv.get(1).is_some_and(|a| a == name));
        if let Some((_, doc)) = own.filter(|_| argv[2..].iter().any(|a| a == "--help")) {
            return docs::print_or_fail(Ok(format!("{doc}\n").into_bytes()));
        }
        match argv.get(1).map(String::as_str) {
            Some("completions") => {
                return docs::print_or_fail(docs::completions(&argv[2..]).map(String::into_bytes));
            }
            Some("man") => return docs::print_or_fail(docs::man_page(&argv[2..])),
            _ => {}
        }
    }
    if let Err(e) = crate::api::limits::Limits::from_env() {
        ui.message(&e.to_string(), e.hint().as_deref());
        return 1;
    }
    let paths = Paths::from_env();
    let driver = match crate::host::select(driver_flag(&argv).as_deref(), paths.clone()) {
        Ok(driver) => driver,
        Err(e) => {
            ui.message(&e.to_string(), e.hint().as_deref());
            return 1;
        }
    };
    let choose_builder = Box::new(crate::engine::nixos::select_builder);
    let manager = Rc::new(
        Manager::new(paths, personality, choose_builder, driver)
            .with_native_builder(Box::new(crate::engine::nixos::native_builder)),
    );

    if personality == Personality::Ncsh {
        match argv.get(1) {
            Some(first) if is_script(first) => {
                return run_script(&ui, manager, Path::new(first), &argv[2..]);
            }
            None if std::io::stdin().is_terminal() => return crate::repl::interactive(manager),
            None => return crate::repl::piped(manager, std::io::stdin().lock()),
            _ => {}
        }
    }

    let flags = match Flags::from_words(&argv[1..]) {
        Ok(flags) => flags,
        Err(FlagsError::Clap(e)) => return clap_error(&ui, &e),
        Err(FlagsError::Getopt(message)) => {
            // One line per error, as Getopt::Long warns.
            for line in message.lines() {
                match ui.personality {
                    Personality::NixosContainer => eprintln!("{line}"),
                    Personality::Ncsh => ui.message(line, Some("see `ncsh --help`")),
                }
            }
            return 1;
        }
    };
    if flags.version {
        let builder = match manager.builder_name() {
            Ok(builder) => builder,
            Err(e) => return ui.error(&e),
        };
        println!(
            "ncsh {} (driver: {}, builder: {builder})",
            env!("CARGO_PKG_VERSION"),
            manager.driver_name(),
        );
        return 0;
    }
    let verb_name = flags.words.first().cloned();
    if flags.help {
        match verb_name.as_deref().and_then(engine::find_verb) {
            Some(verb) => println!("{}", engine::doc_comment(&verb.source)),
            None => print!("{}", usage(&ui.program)),
        }
        return 0;
    }
    // nixos-container's checks, in its order.
    if flags.host_address.is_some() != flags.local_address.is_some() {
        // The original says this whichever of the two is missing; ncsh names the missing one.
        if flags.host_address.is_none() && personality == Personality::Ncsh {
            eprintln!("{}", crate::container::store::LOCAL_WITHOUT_HOST);
        } else {
            eprintln!("With --host-address set, --local-address is required as well!");
        }
        return 1;
    }
    let Some(verb_name) = verb_name else {
        if personality == Personality::Ncsh {
            eprint!("{}", usage(&ui.program));
        } else {
            ui.message("no action specified", None);
        }
        return 1;
    };
    if flags.config.is_some() && flags.config_file.is_some() {
        eprintln!("{}", crate::error::CONFIG_AND_CONFIG_FILE);
        return 1;
    }
    let args: Vec<String> = flags.words[1..].to_vec();
    let Some(verb) = engine::find_verb(&verb_name) else {
        return unknown_verb(&ui, &manager, &verb_name, &args);
    };
    // What create, start and update are doing, on one line of a terminal's stderr.
    crate::manager::progress::enable(
        personality == Personality::Ncsh && !flags.quiet && std::io::stderr().is_terminal(),
    );
    // A verb is the last thing this process does: `run` may enter the container in place.
    manager.allow_in_place_entry();
    let tests = verb.path.is_some() || engine::verb_runs_tests(&verb.name);
    let mut engine = match verb.path {
        None => engine::new_verb_engine(manager.clone(), tests),
        Some(_) => engine::new_engine(manager.clone()),
    };
    if tests {
        crate::testrun::register(&mut engine, manager);
    }
    match engine::run_source(&engine, &verb.source, args, flags.to_map()) {
        Ok(()) => 0,
        Err(err) => {
            let failure = explain(&err, &engine);
            if let Some(code) = failure.exit {
                return code;
            }
            match (&verb.path, failure.from_ncsh) {
                // A user verb's own error: show where.
                (Some(path), false) => {
                    let (at, message) = failure.located();
                    let (line, col) = (at.line().unwrap_or(0), at.position().unwrap_or(0));
                    match &failure.hint {
                        Some(hint) => {
                            eprintln!("{}:{line}:{col}: {message}: {hint}", path.display())
                        }
                        None => eprintln!("{}:{line}:{col}: {message}", path.display()),
                    }
                }
                _ => ui.message(&failure.message, failure.hint.as_deref()),
            }
            failure.status
        }
    }
}

/// An unknown action: nixos-container first checks the name and that the container exists.
fn unknown_verb(ui: &Ui, manager: &Manager, verb: &str, args: &[String]) -> i32 {
    let result = match args.first().filter(|n| !n.is_empty() && n.as_str() != "0") {
        None => Err(Error::NoName),
        Some(name) => crate::container::ContainerName::existing(name)
            .and_then(|name| manager.conf(&name))
            .and(Err(Error::UnknownAction(verb.to_string()))),
    };
    match result {
        Err(e) => ui.error(&e),
        Ok(()) => 0,
    }
}

fn clap_error(ui: &Ui, e: &clap::Error) -> i32 {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => {
            s.split_whitespace().next().unwrap_or_default().to_string()
        }
        _ => String::new(),
    };
    match (ui.personality, e.kind()) {
        (Personality::NixosContainer, ErrorKind::UnknownArgument) => {
            eprintln!("Unknown option: {}", arg.trim_start_matches('-'));
        }
        (Personality::NixosContainer, ErrorKind::InvalidValue | ErrorKind::WrongNumberOfValues) => {
            eprintln!(
                "Option {} requires an argument",
                arg.trim_start_matches('-')
            );
        }
        _ => ui.message(&clap_message(e), Some("see `ncsh --help`")),
    }
    1
}

fn report_script_error(path: &str, err: &rhai::EvalAltResult, engine: &rhai::Engine) -> i32 {
    let failure = explain(err, engine);
    if let Some(code) = failure.exit {
        return code;
    }
    let (at, message) = failure.located();
    let (line, col) = (at.line().unwrap_or(0), at.position().unwrap_or(0));
    match failure.hint {
        Some(hint) => eprintln!("{path}:{line}:{col}: {message}: {hint}"),
        None => eprintln!("{path}:{line}:{col}: {message}"),
    }
    failure.status
}

fn run_script(ui: &Ui, manager: Rc<Manager>, path: &Path, args: &[String]) -> i32 {
    let source = match std::fs::read_to_string(path) {
        Ok(source) => source,
        Err(e) => return ui.error(&Error::io(format!("reading {}", path.display()), e)),
    };
    let engine = engine::new_engine(manager);
    let mut opts = Map::new();
    opts.insert("script".into(), Dynamic::from(path.display().to_string()));
    match engine::run_source(&engine, &source, args.to_vec(), opts) {
        Ok(()) => 0,
        Err(err) => report_script_error(&path.display().to_string(), &err, &engine),
    }
}
