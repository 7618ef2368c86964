//! The `:` commands, and every verb as `:VERB ARGS` (the same script `ncsh VERB ARGS` runs).

use std::path::Path;

use super::{Session, Step};
use crate::api::error::describe;
use crate::engine;

/// (name, arguments, what it does).
pub const COMMANDS: &[(&str, &str, &str)] = &[
    (
        "help",
        "[NAME]",
        "this text, or the documentation of a function, verb or command",
    ),
    (
        "verbs",
        "",
        "the verbs; run one as :VERB ARGS, e.g. :start web, :run web -- ls /",
    ),
    (
        "load",
        "FILE",
        "run a Rhai file in this session; its functions and variables stay",
    ),
    ("scope", "", "the variables and constants defined so far"),
    ("quit", "", "leave the REPL (also Ctrl-D, or exit(code))"),
];

/// The ncsh API as users read it (signature, description); the engine only knows types.
pub const API_DOCS: &[(&str, &str, &str)] = &[
    (
        "create",
        "create(name: string) -> Container",
        "Create a container (needs root). It is not started.",
    ),
    (
        "create",
        "create(name: string, opts: map) -> Container",
        "Create with options: host_address, local_address, bridge, port, auto_start, \
         ensure_unique_name, config, config_file; on a Nix host also system_path, nixos_path, \
         flake, nix_flags, refresh.",
    ),
    (
        "container",
        "container(name: string) -> Container",
        "An existing container; an error if there is none by that name.",
    ),
    (
        "containers",
        "containers() -> array",
        "Every container (shown as a table).",
    ),
    (
        "exists",
        "exists(name: string) -> bool",
        "Whether a container by that name exists.",
    ),
    ("driver", "driver() -> string", "The host driver in use."),
    (
        "sleep",
        "sleep(seconds: int|float)",
        "Wait; Ctrl-C interrupts it.",
    ),
    (
        "exit",
        "exit(code: int)",
        "End the script, or the REPL, with that exit status (exit() is 0).",
    ),
    ("eprint", "eprint(text: string)", "Print to stderr."),
    (
        "name_arg",
        "name_arg(args: array) -> string",
        "A verb's container-name argument, checked as nixos-container checks it.",
    ),
    (
        "wait_tcp",
        "wait_tcp(host: string, port: int, seconds: float) -> bool",
        "Whether something listens at host:port within that time.",
    ),
    (
        "tcp_request",
        "tcp_request(host: string, port: int, request: string) -> string",
        "Send a request, return everything the peer sends until it closes.",
    ),
    (
        "http_get",
        "http_get(host: string, port: int, path: string) -> string",
        "A minimal HTTP/1.0 GET: the whole response, headers included.",
    ),
    ("name", "c.name: string", "The container's name."),
    (
        "ip",
        "c.ip: string",
        "Its address (LOCAL_ADDRESS without prefix); an error if it has none.",
    ),
    (
        "host_ip",
        "c.host_ip: string or ()",
        "The host side's address, if any.",
    ),
    (
        "status",
        "c.status: string",
        "\"up\" or \"down\", read fresh each time.",
    ),
    (
        "leader",
        "c.leader: int or ()",
        "The PID of its init process, when running.",
    ),
    (
        "host_key",
        "c.host_key: string or ()",
        "Its SSH host public key, if generated.",
    ),
    (
        "start",
        "c.start()",
        "Start it; returns once it has booted. Ctrl-C interrupts the wait.",
    ),
    ("stop", "c.stop()", "Stop it cleanly."),
    ("restart", "c.restart()", "Stop, then start."),
    ("terminate", "c.terminate()", "Kill it at once."),
    (
        "destroy",
        "c.destroy()",
        "Kill it if running and remove everything it owns.",
    ),
    (
        "run",
        "c.run(argv: array) -> map",
        "Run a command inside; returns #{status, stdout, stderr}.",
    ),
    (
        "run",
        "c.run(argv: array, stdin: string) -> map",
        "The same, feeding `stdin` to the command.",
    ),
    (
        "attach",
        "c.attach(argv: array) -> int",
        "Run a command inside on this terminal; returns its exit status.",
    ),
    (
        "exec",
        "c.exec(argv: array)",
        "Run a command inside with this terminal, then end the script with its exit status.",
    ),
    (
        "root_login",
        "c.root_login() -> int",
        "A root shell inside (su -l root).",
    ),
    (
        "login",
        "c.login() -> int",
        "A login prompt inside (user name and password), on this terminal.",
    ),
    (
        "update",
        "c.update()",
        "Rebuild from its configuration.nix; a running container switches live.",
    ),
    (
        "update",
        "c.update(opts: map)",
        "The same from config or config_file (and, on a Nix host, system_path, nixos_path, \
         flake, nix_flags, refresh).",
    ),
    (
        "options",
        "c.options: map",
        "The NixOS options of its active generation, defaults included.",
    ),
];

/// The documented signature of an ncsh API function (its parameters have names there).
pub fn doc_signature(sig: &super::helper::Signature) -> Option<&'static str> {
    API_DOCS.iter().map(|d| d.1).find(|doc| {
        let (receiver, rest) = match doc.strip_prefix("c.") {
            Some(rest) => (1, rest),
            None => (0, *doc),
        };
        let name_end = rest.find(['(', ':']).unwrap_or(rest.len());
        let params = match (rest.find('('), rest.find(')')) {
            (Some(open), Some(close)) if close > open + 1 => {
                rest[open + 1..close].split(',').count()
            }
            _ => 0,
        };
        rest[..name_end] == sig.name && receiver + params == sig.params
    })
}

pub fn run(session: &mut Session, command: &str) -> Step {
    let (name, rest) = command
        .trim()
        .split_once(char::is_whitespace)
        .map_or((command.trim(), ""), |(n, r)| (n, r.trim()));
    match name {
        "help" | "h" | "?" => {
            if rest.is_empty() {
                super::say(general_help(session));
                Step::Done
            } else {
                help_for(session, rest)
            }
        }
        "verbs" => {
            super::say(verbs_text());
            Step::Done
        }
        "load" if rest.is_empty() => usage(session, "usage: :load FILE"),
        "load" => {
            let path = words(rest).map_or_else(|_| rest.to_string(), |w| w.join(" "));
            session.load(Path::new(&path))
        }
        "scope" => {
            super::say(scope_text(session));
            Step::Done
        }
        "quit" | "q" | "exit" => Step::Quit,
        "" => usage(session, "a command name follows `:` (see :help)"),
        verb => match engine::find_verb(verb) {
            Some(v) => run_verb(session, &v, rest),
            None => usage(
                session,
                &format!("unknown command :{verb} (see :help and :verbs)"),
            ),
        },
    }
}

fn usage(session: &Session, message: &str) -> Step {
    eprintln!("{} {message}", session.style.red("error:"));
    Step::Failed
}

fn general_help(session: &Session) -> String {
    let s = session.style;
    let mut out = format!(
        "{}\n\
         Type Rhai statements; each runs when complete, and an unclosed block, bracket or string\n\
         continues on the next line (Alt-Enter or a trailing \\ forces a new line). Variables,\n\
         constants and functions persist. Tab completes functions, methods after `.`, variables,\n\
         container names inside container(\"…\"), :commands, verbs and file paths.\n\
         Ctrl-C clears the input or interrupts what is running; Ctrl-D leaves.\n\n{}\n",
        s.bold("ncsh REPL: the same engine and API as scripts and verbs."),
        s.bold("Commands:")
    );
    for (name, args, what) in COMMANDS {
        let left = format!(":{name} {args}");
        out.push_str(&format!("  {left:<14} {what}\n"));
    }
    out.push_str(&format!(
        "  {:<14} run a verb, as `ncsh VERB ARGS` would (see :verbs)\n",
        ":VERB ARGS"
    ));
    out.push_str(&format!("\n{}\n", s.bold("Functions:")));
    for (_, signature, what) in API_DOCS.iter().filter(|d| !d.1.starts_with("c.")) {
        out.push_str(&format!("  {signature:<45} {what}\n"));
    }
    out.push_str(&format!(
        "\n{}\n",
        s.bold("A Container (c = container(\"NAME\")):")
    ));
    for (_, signature, what) in API_DOCS.iter().filter(|d| d.1.starts_with("c.")) {
        out.push_str(&format!("  {signature:<45} {what}\n"));
    }
    out.push_str(
        "\nRhai's standard functions are all there too; :help NAME shows a function's signatures.",
    );
    out
}

fn help_for(session: &Session, topic: &str) -> Step {
    let topic = topic.trim();
    let mut out = Vec::new();
    if let Some(name) = topic.strip_prefix(':')
        && let Some((n, args, what)) = COMMANDS.iter().find(|c| c.0 == name)
    {
        out.push(format!(":{n} {args}\n  {what}"));
    }
    for (_, signature, what) in API_DOCS.iter().filter(|d| d.0 == topic) {
        out.push(format!("{signature}\n  {what}"));
    }
    for f in session.ast.iter_functions().filter(|f| f.name == topic) {
        let mut text = format!("fn {}({})", f.name, f.params.join(", "));
        for line in &f.comments {
            let line = line.trim_start_matches("///").trim_start_matches("/**");
            text.push_str(&format!("\n  {}", line.trim().trim_end_matches("*/")));
        }
        out.push(text);
    }
    if out.is_empty() {
        session.load_signatures();
        let catalog = session.catalog.borrow();
        let mut signatures: Vec<&str> = catalog
            .natives
            .iter()
            .chain(&catalog.script_fns)
            .filter(|f| f.name == topic)
            .map(|f| f.display.as_str())
            .collect();
        signatures.sort();
        signatures.dedup();
        out.extend(signatures.into_iter().map(String::from));
    }
    if let Some(verb) = engine::find_verb(topic) {
        out.push(format!(
            "verb :{topic}\n{}",
            engine::doc_comment(&verb.source)
        ));
    }
    if out.is_empty() {
        return usage(session, &format!("no help for ‘{topic}’"));
    }
    super::say(out.join("\n"));
    Step::Done
}

fn verbs_text() -> String {
    let mut out = String::from("Verbs (run as :VERB ARGS; `:help VERB` for details):\n");
    for name in engine::all_verbs() {
        let summary = engine::verb_summary(&name);
        out.push_str(&format!("  :{name:<15} {summary}\n"));
    }
    out.trim_end().to_string()
}

fn scope_text(session: &Session) -> String {
    let lines: Vec<String> = session
        .scope
        .iter_raw()
        .map(|(name, constant, value)| {
            let ty = session.engine.map_type_name(value.type_name());
            let shown = super::render::value(value, super::render::Style { colour: false });
            let shown = match shown.lines().next() {
                Some(first) if shown.contains('\n') => format!("{first} …"),
                _ => shown,
            };
            let keyword = if constant { "const" } else { "let" };
            format!("{keyword} {name}: {ty} = {shown}")
        })
        .collect();
    if lines.is_empty() {
        "(no variables)".into()
    } else {
        lines.join("\n")
    }
}

/// Shell-like words: whitespace separates, '…' and "…" quote, \ escapes outside single quotes.
pub fn words(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unterminated '".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => word.extend(chars.next()),
                        Some(c) => word.push(c),
                        None => return Err("unterminated \"".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.extend(chars.next());
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        out.push(word);
    }
    Ok(out)
}

fn run_verb(session: &mut Session, verb: &engine::Verb, rest: &str) -> Step {
    let parsed = words(rest).and_then(crate::flags::verb_args);
    let (args, opts) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => return usage(session, &e),
    };
    if opts.contains_key("help") {
        super::say(engine::doc_comment(&verb.source));
        return Step::Done;
    }
    crate::api::INTERRUPTED.store(false, std::sync::atomic::Ordering::Relaxed);
    let result = engine::run_source(&session.engine, &verb.source, args, opts);
    let step = match result {
        Ok(()) => Step::Done,
        Err(err) => {
            if crate::api::INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed) {
                eprintln!("{}", session.style.yellow("interrupted"));
                Step::Failed
            } else {
                let failure = describe(&err);
                match failure.exit {
                    Some(0) => Step::Done,
                    Some(code) => {
                        eprintln!("{}", session.style.dim(&format!("(exit status {code})")));
                        Step::Failed
                    }
                    None => {
                        let text = match &failure.hint {
                            Some(hint) => format!("{}: {hint}", failure.message),
                            None => failure.message.clone(),
                        };
                        let name = &verb.name;
                        eprintln!("{} :{name}: {text}", session.style.red("error:"));
                        Step::Failed
                    }
                }
            }
        }
    };
    crate::api::INTERRUPTED.store(false, std::sync::atomic::Ordering::Relaxed);
    step
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_words() {
        assert_eq!(
            words(r#"web -- sh -c 'echo "hi there"' a\ b "x\"y""#).expect("words"),
            vec!["web", "--", "sh", "-c", "echo \"hi there\"", "a b", "x\"y"]
        );
        assert!(words("'open").is_err());
        assert_eq!(words("  ").expect("words"), Vec::<String>::new());
    }

    #[test]
    fn verb_flags_become_opts() {
        let w = |s: &str| words(s).expect("words");
        let verb_args = crate::flags::verb_args;
        let (args, opts) = verb_args(w(
            "web --auto-start --host-address 10.0.0.1 --local-address=10.0.0.2",
        ))
        .expect("parses");
        assert_eq!(args, vec!["web"]);
        assert_eq!(opts.len(), 3);
        assert_eq!(
            opts.get("local_address").map(|v| v.to_string()),
            Some("10.0.0.2".into())
        );
        let verb_args = crate::flags::verb_args;
        let (args, opts) = verb_args(w("web -- ls --all")).expect("parses");
        assert_eq!(
            (args, opts.len()),
            (vec!["web".into(), "ls".into(), "--all".into()], 0)
        );
        assert!(verb_args(w("web --bogus")).is_err());
        assert!(verb_args(w("web --port")).is_err());
        // The same flags as the command line, Nix's pass-through ones included.
        let (_, opts) = verb_args(w("web --impure --help")).expect("parses");
        assert!(opts.contains_key("nix_flags") && opts.contains_key("help"));
    }
}

#[cfg(test)]
mod api_doc_tests {
    use std::rc::Rc;

    use super::API_DOCS;
    use crate::container::Paths;
    use crate::manager::{Manager, Personality};

    /// `:help` documents every function and property the API registers.
    #[test]
    fn every_api_function_is_documented() {
        let dir = tempfile::tempdir().unwrap();
        let manager = Manager::new(
            Paths::under(dir.path()),
            Personality::Ncsh,
            Box::new(crate::engine::nixos::select_builder),
            Some("standalone"),
        )
        .unwrap();
        let engine = crate::engine::new_engine(Rc::new(manager));
        let mut missing: Vec<String> = engine
            .gen_fn_signatures(false)
            .iter()
            .filter_map(|sig| sig.split('(').next())
            .map(|name| name.trim_start_matches("get$").to_string())
            .filter(|name| !["to_string", "to_debug"].contains(&name.as_str()))
            .filter(|name| !API_DOCS.iter().any(|d| d.0 == name))
            .collect();
        missing.sort();
        missing.dedup();
        assert!(missing.is_empty(), "undocumented in API_DOCS: {missing:?}");
    }
}
