//! The rustyline helper: completion (functions, methods, variables, container names, option
//! paths in strings, verbs, `:commands`, paths), a validator that decides multi-line input by parsing it, history hints
//! and bracket matching.

use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;

use rhai::{Engine, LexError, ParseErrorType};
use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::highlight::{CmdKind, Highlighter, MatchingBracketHighlighter};
use rustyline::hint::{Hinter, HistoryHinter};
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Helper};

use super::commands;
use super::render::Style;

/// What a function is, for completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Function,
    /// A property read as `value.name`.
    Getter,
}

/// A callable, from the engine's metadata or the session's own `fn` definitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub name: String,
    /// What the user reads, e.g. `start(c: Container)`.
    pub display: String,
    /// Type of the first parameter (`Container`, `array`, ...), if any: methods complete on it.
    pub receiver: Option<String>,
    /// Number of parameters, the receiver included.
    pub params: usize,
    pub kind: Kind,
}

impl Signature {
    /// Parse a signature as `Engine::gen_fn_signatures` writes it; `None` for operators,
    /// setters and indexers, which are not completed.
    pub fn parse(text: &str) -> Option<Signature> {
        let open = text.find('(')?;
        let raw_name = &text[..open];
        let mut depth = 0usize;
        let close = text[open..].char_indices().find_map(|(i, c)| {
            match c {
                '(' | '<' => depth += 1,
                ')' | '>' if depth > 0 => depth -= 1,
                _ => {}
            }
            (c == ')' && depth == 0).then_some(open + i)
        })?;
        let params: Vec<&str> = text
            .get(open + 1..close)?
            .split(", ")
            .filter(|p| !p.is_empty())
            .collect();
        let returns = text[close + 1..].trim().strip_prefix("->").map(str::trim);
        let (name, kind) = match raw_name.strip_prefix("get$") {
            Some(n) => (n, Kind::Getter),
            None => (raw_name, Kind::Function),
        };
        let identifier = |s: &str| {
            s.chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
                && s.chars().all(|c| c.is_alphanumeric() || c == '_')
        };
        if !identifier(name) {
            return None;
        }
        let param_type = |p: &str| {
            let ty = p.split_once(':').map_or("?", |(_, t)| t.trim());
            ty.trim_start_matches("&mut ")
                .trim_start_matches('&')
                .to_string()
        };
        let receiver = params.first().map(|p| param_type(p));
        let shown: Vec<String> = params
            .iter()
            .map(|p| match p.split_once(':') {
                Some((n, t)) => format!("{}: {}", n.trim(), tidy_type(t.trim())),
                None => p.to_string(),
            })
            .collect();
        let returns = returns.map(tidy_type).filter(|r| r != "()");
        let display = match kind {
            Kind::Getter => format!(
                "{}.{name}{}",
                receiver.as_deref().map_or("?".into(), tidy_type),
                returns.map(|r| format!(": {r}")).unwrap_or_default()
            ),
            Kind::Function => format!(
                "{name}({}){}",
                shown.join(", "),
                returns.map(|r| format!(" -> {r}")).unwrap_or_default()
            ),
        };
        Some(Signature {
            name: name.to_string(),
            display,
            receiver,
            params: params.len(),
            kind,
        })
    }
}

/// What tells overloads apart in a native signature: its name and its parameters' types (the
/// names of the parameters differ between the API's functions and the standard ones they
/// override).
pub fn overload(text: &str) -> (String, Vec<String>) {
    let (name, rest) = text.split_once('(').unwrap_or((text, ""));
    let mut depth = 0usize;
    let close = rest.char_indices().find_map(|(i, c)| {
        match c {
            '(' | '<' => depth += 1,
            ')' | '>' if depth > 0 => depth -= 1,
            _ => {}
        }
        (c == ')' && depth == 0).then_some(i)
    });
    let types = rest[..close.unwrap_or(rest.len())]
        .split(", ")
        .filter(|p| !p.is_empty())
        .map(|p| tidy_type(p.split_once(':').map_or(p, |(_, t)| t)))
        .collect();
    (name.to_string(), types)
}

/// Rust type paths in native signatures, as script writers know them: what a fallible
/// function returns when it does not fail, `int` and `float`, `string`, `array`, `map`.
fn tidy_type(t: &str) -> String {
    let t = t.trim().trim_start_matches("&mut ").trim_start_matches('&');
    let t = ["core::result::Result<", "Result<"]
        .iter()
        .find_map(|prefix| {
            let inner = t.strip_prefix(prefix)?;
            let (ok, _) = inner
                .rsplit_once(",alloc::boxed::Box<")
                .or_else(|| inner.rsplit_once(", Box<"))?;
            Some(ok.trim())
        })
        .unwrap_or(t);
    let last = |t: &str| t.rsplit("::").next().unwrap_or(t).to_string();
    match t {
        "alloc::string::String" | "String" | "str" | "ImmutableString" | "string" => {
            "string".into()
        }
        "i64" | "INT" => "int".into(),
        "f64" | "FLOAT" => "float".into(),
        "rhai::types::dynamic::Dynamic" | "types::dynamic::Dynamic" | "Dynamic" => "any".into(),
        "alloc::vec::Vec<rhai::types::dynamic::Dynamic>" | "Array" => "array".into(),
        "Map" => "map".into(),
        "Blob" => "blob".into(),
        "Instant" => "timestamp".into(),
        "FnPtr" => "Fn".into(),
        t if t.starts_with("alloc::collections::btree::map::BTreeMap<") => "map".into(),
        t if t.starts_with("StepRange<") || t == "BitRange" || t.starts_with("CharsStream") => {
            "iterator".into()
        }
        t if t.starts_with("std::ops::Range")
            || t.starts_with("core::ops::Range")
            || t.starts_with("Range<")
            || t.starts_with("RangeInclusive<") =>
        {
            "range".into()
        }
        t => last(t),
    }
}

/// What completion draws from; the session refreshes it after every input.
#[derive(Default)]
pub struct Catalog {
    /// Every function the engine knows (native and standard library), computed once.
    pub natives: Vec<Signature>,
    /// Functions defined in the session (`fn` lines, `:load`), and imported modules' functions.
    pub script_fns: Vec<Signature>,
    /// Variables in scope with their type names.
    pub variables: Vec<(String, String)>,
}

impl Catalog {
    fn functions(&self) -> impl Iterator<Item = &Signature> {
        self.script_fns.iter().chain(&self.natives)
    }
}

/// Container names, read when completing (a directory listing; no status is read).
pub type NameSource = Box<dyn Fn() -> Vec<String>>;

/// The declared option paths (`users.users.<name>.uid`), read on the first completion of one.
pub type OptionPaths = Box<dyn Fn() -> Vec<String>>;

/// Functions whose string argument is an existing container's name.
const NAME_FUNCTIONS: &[&str] = &["container", "exists"];

pub struct ReplHelper {
    pub catalog: Rc<RefCell<Catalog>>,
    containers: NameSource,
    verbs: Box<dyn Fn() -> Vec<String>>,
    option_source: Option<OptionPaths>,
    /// The option paths, once read.
    option_paths: RefCell<Option<Rc<Vec<String>>>>,
    /// Parses input for the validator (no API needed to parse).
    parser: Engine,
    files: FilenameCompleter,
    hinter: HistoryHinter,
    brackets: MatchingBracketHighlighter,
    style: Style,
}

impl ReplHelper {
    pub fn new(
        catalog: Rc<RefCell<Catalog>>,
        containers: NameSource,
        verbs: Box<dyn Fn() -> Vec<String>>,
        style: Style,
    ) -> ReplHelper {
        let mut parser = Engine::new_raw();
        parser.set_optimization_level(rhai::OptimizationLevel::None);
        parser.set_max_expr_depths(256, 256);
        ReplHelper {
            catalog,
            containers,
            verbs,
            option_source: None,
            option_paths: RefCell::new(None),
            parser,
            files: FilenameCompleter::new(),
            hinter: HistoryHinter::new(),
            brackets: MatchingBracketHighlighter::new(),
            style,
        }
    }

    /// Complete option paths inside strings from `source` (read once, on first use).
    pub fn with_option_paths(mut self, source: OptionPaths) -> ReplHelper {
        self.option_source = Some(source);
        self
    }

    fn option_paths(&self) -> Rc<Vec<String>> {
        if let Some(paths) = self.option_paths.borrow().as_ref() {
            return paths.clone();
        }
        let paths = Rc::new(self.option_source.as_ref().map_or_else(Vec::new, |f| f()));
        *self.option_paths.borrow_mut() = Some(paths.clone());
        paths
    }

    /// The option paths that complete the dotted word ending `text` (in a string), as (its
    /// start, candidates); `None` when that word is no dotted path or nothing completes it.
    fn option_candidates(&self, text: &str) -> Option<(usize, Vec<Pair>)> {
        let start = text
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '<' | '>'))
            .last()
            .map(|(i, _)| i)?;
        let word = &text[start..];
        if !word.contains('.') || !word.starts_with(|c: char| c.is_alphabetic()) {
            return None;
        }
        let paths = self.option_paths();
        let pairs: Vec<Pair> = crate::builder::options::listing::complete(&paths, word)
            .into_iter()
            .map(|p| pair(p.clone(), p))
            .collect();
        (!pairs.is_empty()).then_some((start, pairs))
    }

    /// Completion, as (start of the replaced text, candidates).
    pub fn candidates(&self, line: &str, pos: usize) -> (usize, Vec<Pair>) {
        let Some(before) = line.get(..pos) else {
            return (pos, Vec::new());
        };
        if before.trim_start().starts_with(':') {
            return self.command_candidates(line, before);
        }
        if let Some(quote) = open_string(before) {
            let callee = callee_of(&before[..quote]);
            if callee.is_some_and(|c| NAME_FUNCTIONS.contains(&c)) {
                let prefix = &before[quote + 1..];
                let close = &before[quote..quote + 1];
                let pairs = sorted(
                    (self.containers)()
                        .into_iter()
                        .filter(|n| n.starts_with(prefix))
                        .map(|n| pair(n.clone(), format!("{n}{close}")))
                        .collect(),
                );
                return (quote + 1, pairs);
            }
            if let Some((start, pairs)) = self.option_candidates(&before[quote + 1..]) {
                return (quote + 1 + start, pairs);
            }
            return self
                .files
                .complete_path(line, pos)
                .unwrap_or((pos, Vec::new()));
        }
        let start = word_start(before);
        let word = &before[start..];
        if word.starts_with(|c: char| c.is_ascii_digit()) {
            return (pos, Vec::new());
        }
        let head = &before[..start];
        if let Some(receiver) = head.strip_suffix('.') {
            return (start, self.method_candidates(receiver, word));
        }
        if word.is_empty() {
            return (pos, Vec::new());
        }
        let catalog = self.catalog.borrow();
        let mut pairs: Vec<Pair> = catalog
            .variables
            .iter()
            .filter(|(n, _)| n.starts_with(word))
            .map(|(n, t)| pair(format!("{n}: {t}"), n.clone()))
            .collect();
        pairs.extend(function_pairs(
            catalog
                .functions()
                .filter(|f| f.kind == Kind::Function && f.name.starts_with(word)),
            false,
        ));
        (start, sorted(pairs))
    }

    fn method_candidates(&self, receiver: &str, word: &str) -> Vec<Pair> {
        let catalog = self.catalog.borrow();
        let ty = receiver_type(receiver, &catalog.variables);
        let fits = |f: &&Signature| {
            f.params >= 1
                && f.name.starts_with(word)
                && match (&ty, &f.receiver) {
                    (Some(t), Some(r)) => t == r,
                    (None, Some(_)) => true,
                    _ => false,
                }
        };
        let functions: Vec<&Signature> = catalog.functions().filter(fits).collect();
        let mut pairs: Vec<Pair> = functions
            .iter()
            .filter(|f| f.kind == Kind::Getter)
            .map(|f| pair(f.display.clone(), f.name.clone()))
            .collect();
        pairs.extend(function_pairs(
            functions.into_iter().filter(|f| f.kind == Kind::Function),
            true,
        ));
        sorted(pairs)
    }

    fn command_candidates(&self, line: &str, before: &str) -> (usize, Vec<Pair>) {
        let trimmed = before.trim_start();
        let offset = before.len() - trimmed.len();
        match trimmed.split_once(char::is_whitespace) {
            None => {
                let mut names: Vec<String> = commands::COMMANDS
                    .iter()
                    .map(|c| format!(":{}", c.0))
                    .collect();
                names.extend((self.verbs)().into_iter().map(|v| format!(":{v}")));
                let pairs = names
                    .into_iter()
                    .filter(|n| n.starts_with(trimmed))
                    .map(|n| pair(n.clone(), n))
                    .collect();
                (offset, sorted(pairs))
            }
            Some((command, _)) => {
                let start = word_start_ws(before);
                let word = &before[start..];
                let pairs: Vec<Pair> = match command {
                    ":load" => {
                        return self
                            .files
                            .complete_path(line, before.len())
                            .unwrap_or((before.len(), Vec::new()));
                    }
                    ":help" => {
                        let catalog = self.catalog.borrow();
                        let mut names: Vec<String> =
                            catalog.functions().map(|f| f.name.clone()).collect();
                        names.extend(commands::COMMANDS.iter().map(|c| format!(":{}", c.0)));
                        names.extend((self.verbs)());
                        names.sort();
                        names.dedup();
                        names
                            .into_iter()
                            .filter(|n| n.starts_with(word))
                            .map(|n| pair(n.clone(), n))
                            .collect()
                    }
                    ":scope" | ":verbs" | ":quit" => Vec::new(),
                    ":options" => {
                        crate::builder::options::listing::complete(&self.option_paths(), word)
                            .into_iter()
                            .map(|p| pair(p.clone(), p))
                            .collect()
                    }
                    // A verb: its first argument is a container name.
                    _ if before[..start].split_whitespace().count() == 1
                        && !word.starts_with('-') =>
                    {
                        (self.containers)()
                            .into_iter()
                            .filter(|n| n.starts_with(word))
                            .map(|n| pair(n.clone(), n))
                            .collect()
                    }
                    _ => Vec::new(),
                };
                (start, sorted(pairs))
            }
        }
    }
}

fn pair(display: String, replacement: String) -> Pair {
    Pair {
        display,
        replacement,
    }
}

fn sorted(mut pairs: Vec<Pair>) -> Vec<Pair> {
    pairs.sort_by(|a, b| {
        a.replacement
            .cmp(&b.replacement)
            .then(a.display.cmp(&b.display))
    });
    pairs.dedup_by(|a, b| a.display == b.display && a.replacement == b.replacement);
    pairs
}

/// One candidate per signature (so overloads all show), replacing with `name(` or `name()`.
fn function_pairs<'a>(fns: impl Iterator<Item = &'a Signature>, method: bool) -> Vec<Pair> {
    let fns: Vec<&Signature> = fns.collect();
    let takes_args = |name: &str| {
        fns.iter()
            .any(|f| f.name == name && f.params > usize::from(method))
    };
    fns.iter()
        .map(|f| {
            let replacement = if takes_args(&f.name) {
                format!("{}(", f.name)
            } else {
                format!("{}()", f.name)
            };
            pair(f.display.clone(), replacement)
        })
        .collect()
}

/// The type of the value before a `.`: a variable's, or `Container` for `container(...)`.
fn receiver_type(receiver: &str, variables: &[(String, String)]) -> Option<String> {
    let receiver = receiver.trim_end();
    let start = word_start(receiver);
    let word = &receiver[start..];
    if !word.is_empty() && !receiver[..start].ends_with('.') {
        return variables
            .iter()
            .rev()
            .find(|(n, _)| n == word)
            .map(|(_, t)| t.clone());
    }
    if receiver.ends_with(')')
        && let Some(open) = matching_open(receiver)
        && matches!(callee_of(&receiver[..=open]), Some("container" | "create"))
    {
        return Some("Container".into());
    }
    None
}

/// The index of the `(` matching the `)` that ends `text`.
fn matching_open(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in text.char_indices().rev() {
        match c {
            ')' => depth += 1,
            '(' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// The function name before an opening `(` that ends `text` (spaces allowed).
fn callee_of(text: &str) -> Option<&str> {
    let text = text.trim_end().strip_suffix('(')?.trim_end();
    let word = &text[word_start(text)..];
    (!word.is_empty()).then_some(word)
}

/// Start of the identifier that ends `text`.
fn word_start(text: &str) -> usize {
    text.char_indices()
        .rev()
        .take_while(|(_, c)| c.is_alphanumeric() || *c == '_')
        .last()
        .map_or(text.len(), |(i, _)| i)
}

/// Start of the whitespace-separated word that ends `text`.
fn word_start_ws(text: &str) -> usize {
    text.rfind(char::is_whitespace).map_or(0, |i| i + 1)
}

/// If `text` ends inside a `"` or backtick string, the index of its opening quote.
fn open_string(text: &str) -> Option<usize> {
    let mut chars = text.char_indices().peekable();
    let mut open: Option<(usize, char)> = None;
    while let Some((i, c)) = chars.next() {
        match open {
            Some((_, q)) => {
                if c == '\\' && q == '"' {
                    chars.next();
                } else if c == q {
                    open = None;
                }
            }
            None => match c {
                '"' | '`' => open = Some((i, c)),
                '\'' => {
                    // A character literal: skip it.
                    if chars.next().is_some_and(|(_, c)| c == '\\') {
                        chars.next();
                    }
                    chars.next();
                }
                '/' if chars.peek().is_some_and(|(_, c)| *c == '/') => {
                    for (_, c) in chars.by_ref() {
                        if c == '\n' {
                            break;
                        }
                    }
                }
                _ => {}
            },
        }
    }
    open.map(|(i, _)| i)
}

/// Whether the input typed so far is a whole entry or continues on the next line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Complete,
    Incomplete,
}

/// Lines ending in `\` are joined to the next (the explicit continuation).
pub fn join_continuations(input: &str) -> String {
    input.replace("\\\n", "\n")
}

/// Decide by parsing: running out of input (unexpected end, an unterminated string, a closing
/// token missing at the very end) means more is coming; anything else, valid or not, is complete
/// and goes to evaluation, which reports the error.
pub fn input_state(parser: &Engine, input: &str) -> Input {
    let trimmed = input.trim();
    if trimmed.is_empty() || trimmed.starts_with(':') {
        return Input::Complete;
    }
    if input.ends_with('\\') {
        return Input::Incomplete;
    }
    let source = join_continuations(input);
    let Err(err) = parser.compile(&source) else {
        return Input::Complete;
    };
    match err.err_type() {
        ParseErrorType::UnexpectedEOF | ParseErrorType::BadInput(LexError::UnterminatedString) => {
            Input::Incomplete
        }
        ParseErrorType::MissingToken(..) | ParseErrorType::MissingSymbol(..) => {
            let pos = err.position();
            match (pos.line(), pos.position()) {
                (Some(line), col) if (line, col.unwrap_or(0)) <= last_token(&source) => {
                    Input::Complete
                }
                _ => Input::Incomplete,
            }
        }
        _ => Input::Complete,
    }
}

/// (line, column) of the last non-blank character, 1-based.
fn last_token(source: &str) -> (usize, usize) {
    let mut last = (0, 0);
    for (l, text) in source.lines().enumerate() {
        if let Some((c, _)) = text
            .chars()
            .enumerate()
            .filter(|(_, c)| !c.is_whitespace())
            .last()
        {
            last = (l + 1, c + 1);
        }
    }
    last
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        Ok(self.candidates(line, pos))
    }
}

impl Hinter for ReplHelper {
    type Hint = String;

    fn hint(&self, line: &str, pos: usize, ctx: &Context<'_>) -> Option<String> {
        if line.contains('\n') {
            return None;
        }
        self.hinter.hint(line, pos, ctx)
    }
}

impl Highlighter for ReplHelper {
    fn highlight<'l>(&self, line: &'l str, pos: usize) -> Cow<'l, str> {
        if self.style.colour {
            self.brackets.highlight(line, pos)
        } else {
            Cow::Borrowed(line)
        }
    }

    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        default: bool,
    ) -> Cow<'b, str> {
        if self.style.colour && default {
            Cow::Owned(format!("\x1b[1;36m{prompt}\x1b[0m"))
        } else {
            Cow::Borrowed(prompt)
        }
    }

    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        if self.style.colour {
            Cow::Owned(self.style.dim(hint))
        } else {
            Cow::Borrowed(hint)
        }
    }

    fn highlight_char(&self, line: &str, pos: usize, kind: CmdKind) -> bool {
        self.style.colour && self.brackets.highlight_char(line, pos, kind)
    }
}

impl Validator for ReplHelper {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        Ok(match input_state(&self.parser, ctx.input()) {
            Input::Complete => ValidationResult::Valid(None),
            Input::Incomplete => ValidationResult::Incomplete,
        })
    }
}

impl Helper for ReplHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser() -> Engine {
        Engine::new_raw()
    }

    #[test]
    fn signatures_are_shown_in_rhai_words() {
        let engine = Engine::new();
        let shown: Vec<String> = engine
            .gen_fn_signatures(true)
            .iter()
            .filter_map(|t| Signature::parse(t))
            .map(|s| s.display)
            .collect();
        assert!(shown.len() > 100, "{shown:?}");
        for rust in [
            "Result<",
            "Box<",
            "EvalAltResult",
            "::",
            "&mut",
            "i64",
            "f64",
            "Immutable",
        ] {
            let found: Vec<&String> = shown.iter().filter(|d| d.contains(rust)).collect();
            assert!(found.is_empty(), "{rust}: {found:?}");
        }
        let shown = |text: &str| Signature::parse(text).map(|s| s.display);
        assert_eq!(
            shown("some(array: &mut array, filter: Fn) -> Result<bool, Box<EvalAltResult>>"),
            Some("some(array: array, filter: Fn) -> bool".to_string())
        );
        assert_eq!(
            shown(
                "wait_tcp(_: string, _: i64, _: f64) -> core::result::Result<bool,alloc::boxed::Box<rhai::types::error::EvalAltResult>>"
            ),
            Some("wait_tcp(_: string, _: int, _: float) -> bool".to_string())
        );
    }

    #[test]
    fn validator_decisions() {
        let p = parser();
        for complete in [
            "",
            "let x = 1",
            "let x = 1;",
            "}",
            "foo(1 2)",
            "let x = ;",
            ":help",
            "fn f() { 1 }",
            "let s = \"abc\";",
            "1 +* 2",
            "let x = [1, 2]",
        ] {
            assert_eq!(input_state(&p, complete), Input::Complete, "{complete:?}");
        }
        for incomplete in [
            "fn f() {",
            "let x = (1 +",
            "foo(1,",
            "let a = [1,\n2,",
            "let s = `abc",
            "let s = \"abc",
            "if x {\n  1",
            "let x = 1 + \\",
            "#{a: 1,",
        ] {
            assert_eq!(
                input_state(&p, incomplete),
                Input::Incomplete,
                "{incomplete:?}"
            );
        }
    }

    fn helper(names: &[&str]) -> ReplHelper {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let catalog = Catalog {
            natives: [
                "create(_: string) -> core::result::Result<ncsh::api::Container,alloc::boxed::Box<rhai::types::error::EvalAltResult>>",
                "create(_: string, _: map) -> Container",
                "container(_: string) -> Container",
                "containers() -> array",
                "exists(_: string) -> bool",
                "start(_: &mut Container) -> ()",
                "stop(_: &mut Container)",
                "run(_: &mut Container, _: array) -> map",
                "get$status(_: &mut Container) -> string",
                "get$name(_: &mut Container) -> string",
                "len(array: &mut array) -> i64",
                "+(a: i64, b: i64) -> i64",
                "set$x(_: &mut Container, _: i64)",
            ]
            .iter()
            .filter_map(|s| Signature::parse(s))
            .collect(),
            script_fns: vec![],
            variables: vec![
                ("c".into(), "Container".into()),
                ("count".into(), "i64".into()),
                ("xs".into(), "array".into()),
            ],
        };
        ReplHelper::new(
            Rc::new(RefCell::new(catalog)),
            Box::new(move || names.clone()),
            Box::new(|| vec!["start".into(), "status".into(), "show-ip".into()]),
            Style { colour: false },
        )
    }

    fn replacements(h: &ReplHelper, line: &str) -> (usize, Vec<String>) {
        let (start, pairs) = h.candidates(line, line.len());
        (start, pairs.into_iter().map(|p| p.replacement).collect())
    }

    #[test]
    fn signature_parsing() {
        let s = Signature::parse("create(_: string) -> core::result::Result<ncsh::api::Container,alloc::boxed::Box<rhai::types::error::EvalAltResult>>").expect("parses");
        assert_eq!(s.display, "create(_: string) -> Container");
        let g = Signature::parse("get$ip(_: &mut Container) -> core::result::Result<alloc::string::String,alloc::boxed::Box<rhai::types::error::EvalAltResult>>").expect("parses");
        assert_eq!(
            (g.kind, g.display.as_str()),
            (Kind::Getter, "Container.ip: string")
        );
        assert_eq!(g.receiver.as_deref(), Some("Container"));
        assert!(Signature::parse("+(a: i64, b: i64) -> i64").is_none());
        assert!(Signature::parse("set$x(_: &mut Container, _: i64)").is_none());
    }

    #[test]
    fn overloads_compare_by_types() {
        assert_eq!(
            overload("sleep(seconds: i64)"),
            overload(
                "sleep(_: i64) -> core::result::Result<(),alloc::boxed::Box<rhai::types::error::EvalAltResult>>"
            )
        );
        assert_eq!(
            overload("exit(value: Dynamic) -> Result<Dynamic, Box<EvalAltResult>>"),
            ("exit".to_string(), vec!["any".to_string()])
        );
        assert_ne!(
            overload("get$start(range: &mut range) -> i64"),
            overload("get$start(_: &mut Container)")
        );
    }

    #[test]
    fn completes_functions_and_variables() {
        let h = helper(&[]);
        assert_eq!(
            replacements(&h, "let x = cont"),
            (8, vec!["container(".into(), "containers()".into()])
        );
        assert_eq!(replacements(&h, "cou"), (0, vec!["count".into()]));
        assert_eq!(replacements(&h, "ex"), (0, vec!["exists(".into()]));
        // Overloads show every signature, with one replacement.
        let (_, pairs) = h.candidates("crea", 4);
        assert_eq!(pairs.len(), 2);
        assert!(pairs.iter().all(|p| p.replacement == "create("));
        assert_eq!(replacements(&h, "").1, Vec::<String>::new());
        assert_eq!(replacements(&h, "12").1, Vec::<String>::new());
    }

    #[test]
    fn completes_methods_by_receiver_type() {
        let h = helper(&[]);
        assert_eq!(
            replacements(&h, "c.st"),
            (2, vec!["start()".into(), "status".into(), "stop()".into()])
        );
        assert_eq!(replacements(&h, "c.r"), (2, vec!["run(".into()]));
        assert_eq!(replacements(&h, "xs.l"), (3, vec!["len()".into()]));
        assert_eq!(replacements(&h, "xs.st").1, Vec::<String>::new());
        assert_eq!(
            replacements(&h, "container(\"web\").na"),
            (17, vec!["name".into()])
        );
    }

    #[test]
    fn completes_container_names_in_strings() {
        let h = helper(&["web", "web2", "db"]);
        assert_eq!(
            replacements(&h, "let c = container(\"w"),
            (19, vec!["web\"".into(), "web2\"".into()])
        );
        assert_eq!(replacements(&h, "exists(`d"), (8, vec!["db`".into()]));
        // Not a name argument: file paths instead, never names.
        let (_, pairs) = replacements(&h, "print(\"w");
        assert!(!pairs.contains(&"web\"".to_string()));
    }

    #[test]
    fn completes_commands_and_verbs() {
        let h = helper(&["web"]);
        assert_eq!(
            replacements(&h, ":st"),
            (0, vec![":start".into(), ":status".into()])
        );
        assert_eq!(replacements(&h, ":sc"), (0, vec![":scope".into()]));
        assert_eq!(replacements(&h, ":start w"), (7, vec!["web".into()]));
        assert_eq!(
            replacements(&h, ":help cont").1,
            vec!["container", "containers"]
        );
    }

    #[test]
    fn completes_option_paths_in_strings() {
        let h = helper(&["web"]).with_option_paths(Box::new(|| {
            [
                "services.openssh.enable",
                "services.openssh.ports",
                "users.users.<name>.isNormalUser",
            ]
            .map(String::from)
            .to_vec()
        }));
        assert_eq!(
            replacements(&h, "create(\"web\", #{ config: \"services.open"),
            (
                26,
                vec![
                    "services.openssh.enable".into(),
                    "services.openssh.ports".into()
                ]
            )
        );
        assert_eq!(
            replacements(&h, "let c = \"x = 1; users.users.alice.isN"),
            (16, vec!["users.users.alice.isNormalUser".into()])
        );
        // Not a dotted path, or nothing declared: file paths as before, never options.
        let (_, pairs) = replacements(&h, "print(\"services");
        assert!(!pairs.iter().any(|p| p.starts_with("services.")));
        let (_, pairs) = replacements(&h, "print(\"nope.x");
        assert!(!pairs.iter().any(|p| p.contains("openssh")));
        assert_eq!(
            replacements(&h, ":options services.openssh.p"),
            (9, vec!["services.openssh.ports".into()])
        );
        // Outside a string: no option paths.
        assert!(replacements(&h, "services.open").1.is_empty());
    }

    #[test]
    fn open_string_detection() {
        assert_eq!(open_string("foo(\"ab"), Some(4));
        assert_eq!(open_string("foo(\"ab\")"), None);
        assert_eq!(open_string("\"a\\\"b"), Some(0));
        assert_eq!(open_string("'\"' + \"x"), Some(6));
        assert_eq!(open_string("// \"x\nlet"), None);
    }
}
