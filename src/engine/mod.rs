//! The Rhai engine: registers the API, holds the stdlib verbs (compiled into the binary, and
//! overridable by verb scripts in a user or system directory), and runs verbs and scripts.

pub mod nixos;

use std::path::{Path, PathBuf};
use std::rc::Rc;

use rhai::{AST, Array, Dynamic, Engine, Map, Scope};

use crate::manager::Manager;

/// The verbs shipped in `stdlib/verbs/`, compiled in.
pub const BUILTIN_VERBS: &[(&str, &str)] = &[
    ("apply", include_str!("../../stdlib/verbs/apply.rhai")),
    ("create", include_str!("../../stdlib/verbs/create.rhai")),
    ("destroy", include_str!("../../stdlib/verbs/destroy.rhai")),
    ("list", include_str!("../../stdlib/verbs/list.rhai")),
    ("login", include_str!("../../stdlib/verbs/login.rhai")),
    (
        "copy-from",
        include_str!("../../stdlib/verbs/copy-from.rhai"),
    ),
    ("copy-to", include_str!("../../stdlib/verbs/copy-to.rhai")),
    ("logs", include_str!("../../stdlib/verbs/logs.rhai")),
    ("options", include_str!("../../stdlib/verbs/options.rhai")),
    ("restart", include_str!("../../stdlib/verbs/restart.rhai")),
    (
        "root-login",
        include_str!("../../stdlib/verbs/root-login.rhai"),
    ),
    ("run", include_str!("../../stdlib/verbs/run.rhai")),
    (
        "show-host-key",
        include_str!("../../stdlib/verbs/show-host-key.rhai"),
    ),
    ("show", include_str!("../../stdlib/verbs/show.rhai")),
    ("show-ip", include_str!("../../stdlib/verbs/show-ip.rhai")),
    ("start", include_str!("../../stdlib/verbs/start.rhai")),
    ("status", include_str!("../../stdlib/verbs/status.rhai")),
    ("stop", include_str!("../../stdlib/verbs/stop.rhai")),
    (
        "terminate",
        include_str!("../../stdlib/verbs/terminate.rhai"),
    ),
    ("test", include_str!("../../stdlib/verbs/test.rhai")),
    ("update", include_str!("../../stdlib/verbs/update.rhai")),
];

/// A verb's source and where it came from.
pub struct Verb {
    pub name: String,
    pub source: String,
    /// The file it was read from; `None` for a builtin.
    pub path: Option<PathBuf>,
}

/// Where user and system scripts of one kind (`sub`: "verbs", "nixos") are looked for: the
/// colon-separated list in `env_var`, else `$XDG_CONFIG_HOME/ncsh/SUB` (or
/// `~/.config/ncsh/SUB`) and `/etc/ncsh/SUB`.
pub fn search_dirs(env_var: &str, sub: &str) -> Vec<PathBuf> {
    if let Some(list) = std::env::var_os(env_var) {
        return std::env::split_paths(&list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".config")));
    config
        .map(|c| c.join("ncsh").join(sub))
        .into_iter()
        .chain([Path::new("/etc/ncsh").join(sub)])
        .collect()
}

/// Directories searched for verb scripts before the builtins (`NCSH_VERBS_PATH`, see
/// [`search_dirs`]).
pub fn verb_dirs() -> Vec<PathBuf> {
    search_dirs("NCSH_VERBS_PATH", "verbs")
}

/// Find a verb: user and system directories first, then the builtins.
pub fn find_verb(name: &str) -> Option<Verb> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return None;
    }
    for dir in verb_dirs() {
        let path = dir.join(format!("{name}.rhai"));
        if let Ok(source) = std::fs::read_to_string(&path) {
            return Some(Verb {
                name: name.to_string(),
                source,
                path: Some(path),
            });
        }
    }
    BUILTIN_VERBS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, s)| Verb {
            name: n.to_string(),
            source: s.to_string(),
            path: None,
        })
}

/// Every verb name, builtin or found in a verb directory, sorted.
pub fn all_verbs() -> Vec<String> {
    let mut names: Vec<String> = BUILTIN_VERBS.iter().map(|(n, _)| n.to_string()).collect();
    for dir in verb_dirs() {
        if let Ok(entries) = std::fs::read_dir(dir) {
            names.extend(entries.flatten().filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".rhai")
                    .map(str::to_string)
            }));
        }
    }
    names.sort();
    names.dedup();
    names
}

/// The first sentence of a verb's doc comment, for listings (a sentence may span lines).
pub fn verb_summary(name: &str) -> String {
    find_verb(name)
        .map(|v| first_sentence(&doc_comment(&v.source)))
        .unwrap_or_default()
}

/// The first sentence of the first paragraph of `doc`, its lines joined: up to the first
/// `.` that ends a word outside parentheses and back-ticks, else the whole paragraph.
fn first_sentence(doc: &str) -> String {
    let paragraph: Vec<&str> = doc
        .lines()
        .map(str::trim)
        .take_while(|l| !l.is_empty())
        .collect();
    let text = paragraph.join(" ");
    let (mut depth, mut code) = (0usize, false);
    for (i, c) in text.char_indices() {
        match c {
            '`' => code = !code,
            '(' if !code => depth += 1,
            ')' if !code => depth = depth.saturating_sub(1),
            '.' if !code && depth == 0 => {
                let next = text[i + 1..].chars().next();
                if next.is_none_or(char::is_whitespace) {
                    return text[..=i].to_string();
                }
            }
            _ => {}
        }
    }
    text
}

/// `print` of scripts and verbs. Output to a closed pipe (`ncsh options | head`) ends the
/// process as SIGPIPE would end a C program (status 141), instead of a panic.
fn print_line(text: &str) {
    use std::io::Write;
    if let Err(e) = writeln!(std::io::stdout().lock(), "{text}")
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(128 + libc::SIGPIPE);
    }
}

/// The `//!` doc comment at the top of a script (its --help), without the markers.
pub fn doc_comment(source: &str) -> String {
    source
        .lines()
        .skip_while(|l| l.starts_with("#!"))
        .take_while(|l| l.trim_start().starts_with("//!"))
        .map(|l| {
            let text = l.trim_start().trim_start_matches("//!");
            text.strip_prefix(' ').unwrap_or(text)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// An engine with the ncsh API registered.
pub fn new_engine(manager: Rc<Manager>) -> Engine {
    let mut engine = Engine::new();
    crate::api::limits::Limits::current().apply(&mut engine, true);
    engine.on_print(print_line);
    crate::api::register_tests(&mut engine, manager.clone());
    register_api(&mut engine, manager);
    engine
}

/// Does the builtin verb `name` run tests (and so need the test driver's API)?
pub fn verb_runs_tests(name: &str) -> bool {
    name == "test"
}

/// An engine for the builtin verbs: the language (its operators are built in) and the string,
/// array and map functions they use, without the rest of the standard library. Building the standard
/// library is most of the work of a read-only verb (memory touched, page faults); user verbs
/// and scripts get [`new_engine`]. The test driver's API only for a verb that runs tests
/// ([`verb_runs_tests`]).
pub fn new_verb_engine(manager: Rc<Manager>, tests: bool) -> Engine {
    use rhai::packages::{
        BasicArrayPackage, BasicMapPackage, BasicStringPackage, MoreStringPackage, Package,
    };
    let mut engine = Engine::new_raw();
    // A verb runs once: folding its constants costs more than it saves (the optimizer was 14 %
    // of a read verb's instructions, callgrind).
    engine.set_optimization_level(rhai::OptimizationLevel::None);
    // Sizes and depths; no operation limit, which is for the user's own scripts.
    crate::api::limits::Limits::current().apply(&mut engine, false);
    engine.on_print(print_line);
    engine.on_debug(|s, _, _| eprintln!("{s}"));
    // Lazy packages: a verb calls a handful of their functions, which are looked up in the
    // manifests when called instead of all being registered up front (half of engine creation).
    for module in [
        BasicStringPackage::new_lazy().as_shared_module(),
        MoreStringPackage::new_lazy().as_shared_module(),
        BasicArrayPackage::new_lazy().as_shared_module(),
        BasicMapPackage::new_lazy().as_shared_module(),
    ] {
        engine.register_global_module(module);
    }
    if tests {
        crate::api::register_tests(&mut engine, manager.clone());
    }
    register_api(&mut engine, manager);
    engine
}

/// The API, and `options()` over this host's option modules ([`nixos::declarations`]).
fn register_api(engine: &mut Engine, manager: Rc<Manager>) {
    crate::api::register(engine, manager);
    crate::api::options::register(engine, Rc::new(nixos::declarations));
}

/// Strip a `#!` line, keeping the line count.
pub fn strip_shebang(source: &str) -> &str {
    if source.starts_with("#!") {
        source.find('\n').map_or("", |n| &source[n..])
    } else {
        source
    }
}

/// Compile `source` and run it with `args` (and `opts`, for verbs) in scope.
pub fn run_source(
    engine: &Engine,
    source: &str,
    args: Vec<String>,
    opts: Map,
) -> Result<(), Box<rhai::EvalAltResult>> {
    let ast: AST = engine
        .compile(strip_shebang(source))
        .map_err(Box::<rhai::EvalAltResult>::from)?;
    let mut scope = Scope::new();
    let args: Array = args.into_iter().map(Dynamic::from).collect();
    scope.push("args", args);
    scope.push("opts", opts);
    engine.run_ast_with_scope(&mut scope, &ast)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_are_whole_sentences() {
        assert_eq!(
            first_sentence(
                "Log in (`/bin/login`, on a terminal\ninside it). Then more.\n\nUsage: x"
            ),
            "Log in (`/bin/login`, on a terminal inside it)."
        );
        assert_eq!(
            first_sentence("Print `a.b` here. More"),
            "Print `a.b` here."
        );
        assert_eq!(first_sentence("No stop\nat all\n\nnext"), "No stop at all");
        for (name, _) in BUILTIN_VERBS {
            let summary = verb_summary(name);
            assert!(summary.ends_with('.'), "{name}: {summary:?}");
            assert!(
                summary.len() <= 100,
                "{name}: too long for a listing: {summary:?}"
            );
        }
    }
}
