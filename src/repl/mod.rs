//! `ncsh` with no arguments: a REPL over the same engine and API as scripts and verbs.
//!
//! One [`Session`] holds the engine, the scope (variables and constants) and an AST holding the
//! functions defined so far; each input is compiled, appended, run, and its statements dropped
//! (rhai-repl's pattern). On a terminal it is interactive ([`interactive`]); with stdin piped it
//! reads statements without a prompt and without echoing results ([`piped`]), so
//! `ncsh < script.rhai` runs like a script but carries on after an error (exit status 1).

mod commands;
mod helper;
mod render;

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::Ordering;

use rhai::{AST, Dynamic, Engine, EvalAltResult, Position, Scope};
use rustyline::config::{Builder, ColorMode, CompletionType};
use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::{Editor, KeyCode, KeyEvent, Modifiers};

use crate::api::INTERRUPTED;
use crate::api::error::{explain, fn_words};
use crate::engine;
use crate::manager::Manager;
use helper::{Catalog, Input, ReplHelper, Signature};
use render::Style;

const PROMPT: &str = "ncsh> ";

/// What running one input means for the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Done,
    /// An error was reported; the session goes on.
    Failed,
    /// `exit(code)`.
    Exit(i32),
    /// `:quit`: piped input then exits as at its end.
    Quit,
}

/// The state that persists from one input to the next.
pub struct Session {
    engine: Engine,
    scope: Scope<'static>,
    /// The functions defined so far; statements are cleared after each run.
    ast: AST,
    catalog: Rc<RefCell<Catalog>>,
    style: Style,
    /// Interactive: echo results, show errors with a caret. Piped: `<stdin>:LINE:COL:` errors.
    interactive: bool,
    /// Where each function defined so far came from, to point into it at an error there.
    origins: HashMap<String, Origin>,
}

/// The entry (or `:load`ed file) that defined a function.
struct Origin {
    source: String,
    /// `<stdin>` or the file's path.
    name: String,
    first_line: usize,
}

impl Session {
    pub fn new(manager: Rc<Manager>, interactive: bool, style: Style) -> Session {
        let mut engine = engine::new_engine(manager);
        engine.on_print(|text| say(text));
        engine.on_progress(|_| {
            INTERRUPTED
                .load(Ordering::Relaxed)
                .then(|| Dynamic::from("interrupted"))
        });
        Session {
            engine,
            scope: Scope::new(),
            ast: AST::empty(),
            catalog: Rc::new(RefCell::new(Catalog::default())),
            style,
            interactive,
            origins: HashMap::new(),
        }
    }

    /// Fill the completion catalog with the engine's functions (a few ms; done once). The API's
    /// own show the signatures of their docs, whose parameters have names.
    fn load_signatures(&self) {
        if !self.catalog.borrow().natives.is_empty() {
            return;
        }
        let docs = crate::api::docs::docs(&self.engine);
        // The API's functions, and the standard ones they override (same name and types).
        let api: HashMap<(String, Vec<String>), &str> = self
            .engine
            .gen_fn_signatures(false)
            .iter()
            .filter_map(|text| {
                let s = Signature::parse(text)?;
                let doc = docs.iter().find(|d| {
                    d.name == s.name
                        && d.params == s.params
                        && d.property == (s.kind == helper::Kind::Getter)
                })?;
                Some((helper::overload(text), doc.signature.as_str()))
            })
            .collect();
        self.catalog.borrow_mut().natives = self
            .engine
            .gen_fn_signatures(true)
            .iter()
            .filter_map(|text| {
                let mut s = Signature::parse(text)?;
                if let Some(doc) = api.get(&helper::overload(text)) {
                    s.display = doc.to_string();
                }
                Some(s)
            })
            .collect();
    }

    /// Run one entry: a `:command` or Rhai source. `first_line` numbers piped input's errors.
    pub fn execute(&mut self, input: &str, first_line: usize) -> Step {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Step::Done;
        }
        if let Some(command) = trimmed.strip_prefix(':') {
            return commands::run(self, command);
        }
        let source = helper::join_continuations(input);
        self.eval(&source, "<stdin>", first_line)
    }

    /// Compile `source` against the session, keep its functions, run its statements.
    fn eval(&mut self, source: &str, origin: &str, first_line: usize) -> Step {
        INTERRUPTED.store(false, Ordering::Relaxed);
        let result = self
            .engine
            .compile_with_scope(&self.scope, source)
            .map_err(Box::<EvalAltResult>::from)
            .and_then(|ast| {
                for f in ast.iter_functions() {
                    let origin = Origin {
                        source: source.to_string(),
                        name: origin.to_string(),
                        first_line,
                    };
                    self.origins.insert(f.name.to_string(), origin);
                }
                self.ast += ast;
                let result = self
                    .engine
                    .eval_ast_with_scope::<Dynamic>(&mut self.scope, &self.ast);
                self.ast.clear_statements();
                result
            });
        self.keep_imports(source);
        self.refresh_catalog();
        let step = match result {
            Ok(value) => {
                if self.interactive && !value.is_unit() {
                    say(render::value(&value, self.style));
                }
                Step::Done
            }
            Err(err) => self.report(&err, source, origin, first_line),
        };
        INTERRUPTED.store(false, Ordering::Relaxed);
        step
    }

    /// Show an error; never ends the session except for `exit(code)`.
    fn report(&self, err: &EvalAltResult, source: &str, origin: &str, first_line: usize) -> Step {
        if INTERRUPTED.load(Ordering::Relaxed) && matches!(err, EvalAltResult::ErrorTerminated(..))
        {
            eprintln!("{}", self.style.yellow("interrupted"));
            return Step::Failed;
        }
        let failure = explain(err, &self.engine);
        if let Some(code) = failure.exit {
            return Step::Exit(code);
        }
        // Inside a function of the session: point into it, in the entry that defined it.
        let mut at = (failure.position, source, origin, first_line);
        let mut message = failure.message.clone();
        if let Some((function, position)) = &failure.inside
            && let Some(defined) = self.origins.get(function)
        {
            let called = match failure.position.line() {
                Some(line) if !self.interactive => {
                    format!(", called at line {}", line + first_line - 1)
                }
                _ => String::new(),
            };
            message = format!("{message} (in {}{called})", fn_words(function));
            at = (
                *position,
                defined.source.as_str(),
                defined.name.as_str(),
                defined.first_line,
            );
        }
        let (position, source, origin, first_line) = at;
        let text = match &failure.hint {
            Some(hint) => format!("{message}: {hint}"),
            None => message,
        };
        let (line, col) = (position.line(), position.position());
        if self.interactive && origin == "<stdin>" {
            if let Some(line) = line {
                eprint!("{}", caret(source, line, col, self.style));
            }
            eprintln!("{} {text}", self.style.red("error:"));
        } else {
            match line {
                Some(line) => eprintln!(
                    "{origin}:{}:{}: {text}",
                    line + first_line - 1,
                    col.unwrap_or(0)
                ),
                None => eprintln!("{origin}: {text}"),
            }
        }
        Step::Failed
    }

    /// Imports live in per-run state and would be gone on the next line: register each module
    /// `import "path" as name` brought in as a static module, so `name::f()` keeps working.
    fn keep_imports(&mut self, source: &str) {
        for (path, alias) in imports(source) {
            let resolved =
                self.engine
                    .module_resolver()
                    .resolve(&self.engine, None, &path, Position::NONE);
            if let Ok(module) = resolved {
                let prefixed: Vec<Signature> = module
                    .gen_fn_signatures_with_mapper(Cow::Borrowed)
                    .filter_map(|s| Signature::parse(&s))
                    .map(|mut s| {
                        s.display = format!("{alias}::{}", s.display);
                        s.name = format!("{alias}::{}", s.name);
                        s
                    })
                    .collect();
                self.catalog.borrow_mut().script_fns.extend(prefixed);
                self.engine.register_static_module(alias, module);
            }
        }
    }

    /// Tell completion about the variables and functions that exist now.
    fn refresh_catalog(&self) {
        let mut catalog = self.catalog.borrow_mut();
        catalog.variables = self
            .scope
            .iter_raw()
            .map(|(name, _, value)| {
                (
                    name.to_string(),
                    self.engine.map_type_name(value.type_name()).to_string(),
                )
            })
            .collect();
        catalog.script_fns.retain(|f| f.name.contains("::"));
        let defined: Vec<Signature> = self
            .ast
            .iter_functions()
            .map(|f| Signature {
                name: f.name.to_string(),
                display: format!("{}({})", f.name, f.params.join(", ")),
                receiver: None,
                params: f.params.len(),
                kind: helper::Kind::Function,
            })
            .collect();
        catalog.script_fns.extend(defined);
    }

    /// `:load FILE`: run a file in the session; its functions and variables stay.
    fn load(&mut self, path: &Path) -> Step {
        match std::fs::read_to_string(path) {
            Ok(source) => {
                let source = engine::strip_shebang(&source).to_string();
                self.eval(&source, &path.display().to_string(), 1)
            }
            Err(e) => {
                eprintln!(
                    "{} cannot read {}: {e}",
                    self.style.red("error:"),
                    path.display()
                );
                Step::Failed
            }
        }
    }
}

/// A line to stdout; a closed pipe (`ncsh < x | head`) is not an error worth a panic.
fn say(text: impl AsRef<str>) {
    let _ = writeln!(std::io::stdout().lock(), "{}", text.as_ref());
}

/// The offending line of `source` with a caret under column `col`.
fn caret(source: &str, line: usize, col: Option<usize>, style: Style) -> String {
    let Some(text) = source.lines().nth(line.saturating_sub(1)) else {
        return String::new();
    };
    let mut out = format!("  {text}\n");
    if let Some(col) = col.filter(|c| *c > 0) {
        let pad: String = text
            .chars()
            .take(col - 1)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        out.push_str(&format!("  {pad}{}\n", style.red("^")));
    }
    out
}

/// `import "path" as alias` statements in `source` (a textual scan; good enough for a REPL).
fn imports(source: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for statement in source.split([';', '\n']) {
        let Some(rest) = statement.trim().strip_prefix("import") else {
            continue;
        };
        let rest = rest.trim_start();
        let Some(quote) = rest.chars().next().filter(|c| *c == '"' || *c == '`') else {
            continue;
        };
        let Some((path, tail)) = rest[1..].split_once(quote) else {
            continue;
        };
        if let Some(alias) = tail.trim().strip_prefix("as ") {
            let alias = alias.trim();
            if !alias.is_empty() && alias.chars().all(|c| c.is_alphanumeric() || c == '_') {
                found.push((path.to_string(), alias.to_string()));
            }
        }
    }
    found
}

/// Colour only on a terminal, and not when `NO_COLOR` is set (to anything non-empty).
fn style() -> Style {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    Style {
        colour: !no_color && std::io::stdout().is_terminal() && std::io::stderr().is_terminal(),
    }
}

/// `$NCSH_HISTORY`, else `$XDG_STATE_HOME/ncsh/history`, else `~/.local/state/ncsh/history`.
pub fn history_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("NCSH_HISTORY").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/state")))?;
    Some(state.join("ncsh/history"))
}

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// While evaluating, Ctrl-C sets [`INTERRUPTED`] instead of killing the shell: the engine's
/// progress hook ends the evaluation, and a child in our foreground process group gets the
/// SIGINT from the terminal itself. (rustyline swaps in its own handler while reading a line.)
fn catch_sigint() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(
        SigHandler::Handler(on_sigint),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    if let Err(e) = unsafe { sigaction(Signal::SIGINT, &action) } {
        eprintln!("ncsh: cannot catch Ctrl-C: {e}");
    }
}

/// The interactive REPL on a terminal. Returns the exit code.
pub fn interactive(manager: Rc<Manager>) -> i32 {
    let style = style();
    let mut session = Session::new(manager.clone(), true, style);
    catch_sigint();
    let config = Builder::new()
        .max_history_size(10_000)
        .and_then(|b| b.history_ignore_dups(true))
        .map(|b| {
            b.history_ignore_space(true)
                .auto_add_history(false)
                .completion_type(CompletionType::List)
                .bracketed_paste(true)
                .tab_stop(4)
                .color_mode(if style.colour {
                    ColorMode::Enabled
                } else {
                    ColorMode::Disabled
                })
                .build()
        });
    let editor = config.and_then(Editor::<ReplHelper, FileHistory>::with_config);
    let mut editor = match editor {
        Ok(editor) => editor,
        Err(e) => {
            eprintln!("ncsh: cannot start the line editor: {e}");
            return 1;
        }
    };
    let names = manager.clone();
    editor.set_helper(Some(
        ReplHelper::new(
            session.catalog.clone(),
            Box::new(move || names.list().unwrap_or_default()),
            Box::new(engine::all_verbs),
            style,
        )
        .with_option_paths(Box::new(|| {
            engine::nixos::declarations()
                .map(|d| d.paths())
                .unwrap_or_default()
        })),
    ));
    // Alt-Enter inserts a newline without submitting.
    editor.bind_sequence(
        KeyEvent(KeyCode::Enter, Modifiers::ALT),
        rustyline::Cmd::Newline,
    );
    let history = history_path();
    if let Some(path) = &history {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        match editor.load_history(path) {
            Ok(()) => {}
            Err(ReadlineError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => eprintln!("ncsh: history {}: {e}", path.display()),
        }
    }
    session.load_signatures();
    let parser = Engine::new_raw();
    let mut history_warned = false;
    loop {
        match editor.readline(PROMPT) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                    if let Some(path) = &history
                        && let Err(e) = editor.append_history(path)
                        && !history_warned
                    {
                        history_warned = true;
                        eprintln!("ncsh: history {}: {e}", path.display());
                    }
                }
                // A paste of several statements comes as one line holding newlines: run it as
                // the entries it would be if typed line by line (unless it is one whole entry).
                for (entry, first_line) in split_entries(&parser, &line) {
                    match session.execute(&entry, first_line) {
                        Step::Exit(code) => return code,
                        Step::Quit => return 0,
                        Step::Done | Step::Failed => {}
                    }
                }
            }
            // Ctrl-C while editing: the input is dropped; a fresh prompt.
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => return 0,
            Err(e) => {
                eprintln!("ncsh: {e}");
                return 1;
            }
        }
    }
}

/// Statements from a non-terminal stdin, no prompt: an entry ends where the parser says it is
/// complete. Errors are reported as `<stdin>:LINE:COL:` and the rest still runs; the exit
/// status is 1 if any entry failed, or the code given to `exit(code)`.
pub fn piped(manager: Rc<Manager>, input: impl BufRead) -> i32 {
    let mut session = Session::new(manager, false, Style { colour: false });
    let parser = Engine::new_raw();
    let mut failed = false;
    let mut entries = Entries::default();
    for (n, line) in input.lines().enumerate() {
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                eprintln!("ncsh: reading stdin: {e}");
                return 1;
            }
        };
        if n == 0 && line.starts_with("#!") {
            continue;
        }
        let Some((entry, first_line)) = entries.push(&parser, n + 1, &line) else {
            continue;
        };
        match session.execute(&entry, first_line) {
            Step::Exit(code) => return code,
            Step::Quit => return i32::from(failed),
            Step::Failed => failed = true,
            Step::Done => {}
        }
    }
    // Input that ended mid-entry: run it to report what is missing.
    if let Some((entry, first_line)) = entries.rest() {
        match session.execute(&entry, first_line) {
            Step::Exit(code) => return code,
            Step::Failed => failed = true,
            Step::Done | Step::Quit => {}
        }
    }
    i32::from(failed)
}

/// Lines gathered into entries: an entry ends at the first line where the parser says it is
/// complete, as the line editor decides when Enter submits.
#[derive(Default)]
struct Entries {
    entry: String,
    first_line: usize,
}

impl Entries {
    /// Add line number `n`; the entry and its first line once it is complete.
    fn push(&mut self, parser: &Engine, n: usize, line: &str) -> Option<(String, usize)> {
        if self.entry.is_empty() {
            self.first_line = n;
        } else {
            self.entry.push('\n');
        }
        self.entry.push_str(line);
        if helper::input_state(parser, &self.entry) == Input::Incomplete {
            return None;
        }
        Some((std::mem::take(&mut self.entry), self.first_line))
    }

    /// What is left when the input ends mid-entry.
    fn rest(&mut self) -> Option<(String, usize)> {
        let entry = std::mem::take(&mut self.entry);
        (!entry.trim().is_empty()).then_some((entry, self.first_line))
    }
}

/// The entries of one edited line. A line the editor accepted is usually one entry; a pasted
/// one (bracketed paste keeps its newlines) may hold several statements without `;` between
/// them, which are then the entries they would be if typed line by line. A line that compiles
/// as a whole, or a `:command`, stays one entry.
fn split_entries(parser: &Engine, text: &str) -> Vec<(String, usize)> {
    let whole = || vec![(text.to_string(), 1)];
    if !text.contains('\n') || text.trim_start().starts_with(':') {
        return whole();
    }
    if parser.compile(helper::join_continuations(text)).is_ok() {
        return whole();
    }
    let mut entries = Entries::default();
    let mut found: Vec<(String, usize)> = text
        .split('\n')
        .enumerate()
        .filter_map(|(n, line)| entries.push(parser, n + 1, line))
        .collect();
    found.extend(entries.rest());
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_imports() {
        assert_eq!(
            imports("import \"lib/net\" as net; let x = 1;\nimport `a` as b"),
            vec![
                ("lib/net".to_string(), "net".to_string()),
                ("a".into(), "b".into())
            ]
        );
        assert!(imports("let important = 1").is_empty());
    }

    #[test]
    fn pasted_statements_split_into_entries() {
        let parser = Engine::new_raw();
        let entries = |text| split_entries(&parser, text);
        assert_eq!(
            entries("let a = 1\nlet b = 2\nprint(b)"),
            vec![
                ("let a = 1".to_string(), 1),
                ("let b = 2".to_string(), 2),
                ("print(b)".to_string(), 3)
            ]
        );
        // One entry over several lines stays one; what follows it is the next.
        assert_eq!(
            entries("fn f() {\n  1\n}\nlet x = 1\nf()"),
            vec![
                ("fn f() {\n  1\n}".to_string(), 1),
                ("let x = 1".to_string(), 4),
                ("f()".to_string(), 5)
            ]
        );
        // Valid as a whole, a single line, a command: as it is.
        assert_eq!(entries("let a = 1;\nlet b = 2;").len(), 1);
        assert_eq!(entries("let a = 1"), vec![("let a = 1".to_string(), 1)]);
        assert_eq!(entries(":help\nx").len(), 1);
        // Unfinished at the end: the rest is the last entry, reported when it runs.
        assert_eq!(
            entries("let a = 1\nfn g() {"),
            vec![("let a = 1".to_string(), 1), ("fn g() {".to_string(), 2)]
        );
    }

    #[test]
    fn caret_under_column() {
        let plain = Style { colour: false };
        assert_eq!(
            caret("let x = 1;\nfoo(x)", 2, Some(1), plain),
            "  foo(x)\n  ^\n"
        );
        assert_eq!(caret("a", 5, Some(1), plain), "");
    }
}
