//! The `:` commands, and every verb as `:VERB ARGS` (the same script `ncsh VERB ARGS` runs).

use std::path::Path;

use super::{Session, Step};
use crate::api::{self, error::explain};
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
    (
        "options",
        "[PREFIX]",
        "the NixOS options there are (under PREFIX, e.g. services.openssh); --json",
    ),
    ("scope", "", "the variables and constants defined so far"),
    ("quit", "", "leave the REPL (also Ctrl-D, or exit(code))"),
];

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
         container names inside container(\"…\"), option paths inside strings (services.open),\n\
         :commands, verbs and file paths.\n\
         Ctrl-C clears the input or interrupts what is running; Ctrl-D leaves.\n\n{}\n",
        s.bold("ncsh REPL: the same engine and API as scripts and verbs."),
        s.bold("Commands:")
    );
    for (name, args, what) in COMMANDS {
        let left = format!(":{name} {args}");
        out.push_str(&format!("  {left:<17} {what}\n"));
    }
    out.push_str(&format!(
        "  {:<17} run a verb, as `ncsh VERB ARGS` would (see :verbs)\n",
        ":VERB ARGS"
    ));
    let docs = api::docs::listing(&session.engine);
    out.push_str(&format!("\n{}\n", s.bold("Functions:")));
    for doc in docs.iter().filter(|d| !d.is_member()) {
        out.push_str(&format!("  {:<45} {}\n", doc.signature, doc.text));
    }
    out.push_str(&format!(
        "\n{}\n",
        s.bold("A Container (c = container(\"NAME\")):")
    ));
    for doc in docs.iter().filter(|d| d.is_member()) {
        out.push_str(&format!("  {:<45} {}\n", doc.signature, doc.text));
    }
    out.push_str(
        "\nRhai's standard functions are all there too; :help NAME shows a function's signatures.\n\
         Rhai's string methods trim, replace, pad, truncate and crop change the string itself and\n\
         return (): `let t = s.trim();` makes t (); use `s.trimmed()` for a trimmed copy.",
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
    for doc in api::docs::listing(&session.engine)
        .into_iter()
        .filter(|d| d.name == topic)
    {
        out.push(format!("{}\n  {}", doc.signature, doc.text));
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
                let failure = explain(&err, &session.engine);
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
