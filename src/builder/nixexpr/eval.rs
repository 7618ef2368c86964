//! The evaluator of plain data: walks rnix's syntax tree of a NixOS module and builds an
//! [`OptionTree`], refusing every construct that needs a real Nix evaluator.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use rnix::ast::{self, AstToken, HasEntry};
use rnix::{NodeOrToken, SyntaxKind, SyntaxNode};
use rowan::ast::AstNode;

use super::error::{EvalError, Location, NEEDS_NIX, SourceMap};
use super::strings::{decode_double, decode_indented};
use super::tree::{
    Mode, OptionTree, PRIORITY_DEFAULT, PRIORITY_FORCE, PRIORITY_OPTION_DEFAULT, PRIORITY_PLAIN,
};
use super::value::{Value, show_path};
use crate::nixlang::compile::{parse_error, too_deep};

/// How deeply expressions may nest (rnix's parser stops at 512; this keeps the stack small).
const MAX_DEPTH: usize = 200;
/// How deeply imports may nest.
const MAX_IMPORT_DEPTH: usize = 100;

/// What an expression evaluated to: a set (with per-node positions and priorities) or a leaf.
enum Evaluated {
    Tree(OptionTree),
    Leaf(Value, i64),
}

impl Evaluated {
    fn into_value(self) -> Value {
        match self {
            Evaluated::Tree(t) => t.root,
            Evaluated::Leaf(v, _) => v,
        }
    }
}

/// The state of one evaluation across imports.
#[derive(Default)]
pub(crate) struct Loader {
    /// The files being evaluated, outermost first (canonical paths).
    stack: Vec<PathBuf>,
    /// Files already evaluated; NixOS includes a module once however often it is imported.
    done: HashSet<PathBuf>,
}

/// How the text of a module is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// A Nix expression: a set or a `{ config, lib, ... }:` function returning one.
    Expr,
    /// Bindings as a `--config` snippet holds them (`a.b = 1; c = [ ];`), read as the body of
    /// `{ config, lib, pkgs, ... }: { … }` the way nixos-container inserts them.
    Bindings,
}

/// Whether `text` looks like bindings (`name = …;`, `name.x = …;`, `"name" = …;`,
/// `inherit …;`, or nothing at all) rather than an expression.
pub(crate) fn looks_like_bindings(text: &str) -> bool {
    let mut toks = rnix::tokenize(text).filter(|(k, _)| !k.is_trivia());
    match toks.next() {
        None => true,
        Some((SyntaxKind::TOKEN_INHERIT, _)) => true,
        Some((SyntaxKind::TOKEN_IDENT, _)) => {
            matches!(
                toks.next(),
                Some((SyntaxKind::TOKEN_DOT | SyntaxKind::TOKEN_ASSIGN, _))
            )
        }
        Some((SyntaxKind::TOKEN_STRING_START, "\"")) => {
            for (k, _) in toks.by_ref() {
                if k == SyntaxKind::TOKEN_STRING_END {
                    break;
                }
            }
            matches!(
                toks.next(),
                Some((SyntaxKind::TOKEN_DOT | SyntaxKind::TOKEN_ASSIGN, _))
            )
        }
        _ => false,
    }
}

impl Loader {
    /// Evaluates the module in `text` (from `file`, imports relative to `dir`) with its imports.
    pub(crate) fn module(
        &mut self,
        file: &Path,
        text: &str,
        dir: &Path,
        shape: Shape,
    ) -> Result<OptionTree, EvalError> {
        let (parsed, shift) = match shape {
            Shape::Expr => (text.to_string(), 0),
            Shape::Bindings => (format!("{{{text}\n}}"), 1),
        };
        let map = SourceMap::new(file, text, shift);
        if let Some(offset) = too_deep(&parsed) {
            return Err(map.err(offset, "syntax error: expression nested too deeply"));
        }
        let parse = rnix::Root::parse(&parsed);
        if let Some(e) = parse.errors().first() {
            return Err(parse_error(&map, e, parsed.len()));
        }
        let root = parse.tree();
        let mut ev = Module {
            map: &map,
            dir: dir.to_path_buf(),
            bound: HashSet::new(),
        };
        let Some(expr) = root.expr() else {
            return Err(map.err(0, "expected a NixOS module, found an empty file"));
        };
        let set = match shape {
            Shape::Bindings => {
                for name in ["config", "lib", "pkgs", "options", "modulesPath"] {
                    ev.bound.insert(name.to_string());
                }
                match expr {
                    ast::Expr::AttrSet(s) => s,
                    other => return Err(ev.refuse(other.syntax(), "this expression")),
                }
            }
            Shape::Expr => ev.module_body(expr)?,
        };
        let (mut tree, imports) = ev.module_set(&set)?;

        for (path, loc) in imports {
            let sub = self.import(&path, &loc)?;
            tree.merge(sub)?;
        }
        Ok(tree)
    }

    /// Evaluates the file `path` as a module (once), checking for cycles.
    pub(crate) fn file(
        &mut self,
        path: &Path,
        from: Option<&Location>,
    ) -> Result<OptionTree, EvalError> {
        let err_at = |msg: String| match from {
            Some(loc) => EvalError::at(loc, msg),
            None => EvalError::at(&Location::file_only(path), msg),
        };
        let mut target = path.to_path_buf();
        if target.is_dir() {
            target.push("default.nix");
        }
        let canonical = std::fs::canonicalize(&target)
            .map_err(|e| err_at(format!("cannot import '{}': {e}", target.display())))?;
        if let Some(i) = self.stack.iter().position(|p| *p == canonical) {
            let mut cycle: Vec<String> = self.stack[i..]
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            cycle.push(canonical.display().to_string());
            return Err(err_at(format!("import cycle: {}", cycle.join(" -> "))));
        }
        if self.done.contains(&canonical) {
            return Ok(OptionTree::new());
        }
        if self.stack.len() >= MAX_IMPORT_DEPTH {
            return Err(err_at(format!(
                "imports nested more than {MAX_IMPORT_DEPTH} deep"
            )));
        }
        // A device or FIFO would be read forever (`/dev/zero`) or block (a FIFO nobody writes).
        if !std::fs::metadata(&canonical).is_ok_and(|m| m.is_file()) {
            return Err(err_at(format!(
                "cannot import '{}': not a regular file (import a .nix file or a directory \
                 with default.nix)",
                target.display()
            )));
        }
        let text = std::fs::read_to_string(&canonical)
            .map_err(|e| err_at(format!("cannot read '{}': {e}", target.display())))?;
        let dir = canonical
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        self.stack.push(canonical.clone());
        let result = self.module(&target, &text, &dir, Shape::Expr);
        self.stack.pop();
        self.done.insert(canonical);
        result
    }

    fn import(&mut self, path: &Path, loc: &Location) -> Result<OptionTree, EvalError> {
        self.file(path, Some(loc))
    }
}

/// One module's text being evaluated.
struct Module<'a> {
    map: &'a SourceMap,
    /// The directory relative paths are resolved against.
    dir: PathBuf,
    /// The names the module function binds (`config`, `lib`, …).
    bound: HashSet<String>,
}

fn start(node: &SyntaxNode) -> usize {
    usize::from(node.text_range().start())
}

/// The operator token of a binary or unary operation.
fn operator_text(node: &SyntaxNode) -> String {
    node.children_with_tokens()
        .filter_map(NodeOrToken::into_token)
        .find(|t| !t.kind().is_trivia())
        .map(|t| t.text().to_string())
        .unwrap_or_else(|| "?".to_string())
}

/// A short rendering of source text for messages.
fn snippet(node: &SyntaxNode) -> String {
    let text: String = node
        .text()
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if text.chars().count() > 40 {
        let cut: String = text.chars().take(37).collect();
        format!("{cut}...")
    } else {
        text
    }
}

fn unparen(mut e: ast::Expr) -> ast::Expr {
    while let ast::Expr::Paren(p) = &e {
        match p.expr() {
            Some(inner) => e = inner,
            None => break,
        }
    }
    e
}

/// Removes `.` and `..` components without touching the file system, as Nix does for paths.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if out.parent().is_some() {
                    out.pop();
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

impl Module<'_> {
    fn loc(&self, node: &SyntaxNode) -> Location {
        self.map.loc(start(node))
    }

    fn err(&self, node: &SyntaxNode, msg: impl Into<String>) -> EvalError {
        self.map.err(start(node), msg)
    }

    /// `<construct> is not supported: …; a Nix-enabled host builds it for real`.
    fn refuse(&self, node: &SyntaxNode, construct: &str) -> EvalError {
        self.err(node, format!("{construct} is not supported: {NEEDS_NIX}"))
    }

    /// The set a module evaluates to: the file's set, or the body of its function.
    fn module_body(&mut self, expr: ast::Expr) -> Result<ast::AttrSet, EvalError> {
        match unparen(expr) {
            ast::Expr::AttrSet(s) => Ok(s),
            ast::Expr::Lambda(l) => {
                match l.param() {
                    Some(ast::Param::Pattern(p)) => {
                        if p.ellipsis_token().is_none() {
                            return Err(self.err(
                                p.syntax(),
                                "the module function's arguments must end with '...' \
                                 ({ config, lib, pkgs, ... }:), as NixOS passes more arguments",
                            ));
                        }
                        for entry in p.pat_entries() {
                            if let Some(id) = entry.ident() {
                                let name = id.syntax().text().to_string();
                                if !self.bound.insert(name.clone()) {
                                    return Err(self.err(
                                        id.syntax(),
                                        format!(
                                            "syntax error: duplicate formal function argument '{name}'"
                                        ),
                                    ));
                                }
                            }
                        }
                        if let Some(id) = p.pat_bind().and_then(|b| b.ident()) {
                            self.bound.insert(id.syntax().text().to_string());
                        }
                    }
                    Some(ast::Param::IdentParam(p)) => {
                        return Err(self.refuse(
                            p.syntax(),
                            "a module function taking a single argument (use { config, lib, ... }:)",
                        ));
                    }
                    None => return Err(self.err(l.syntax(), "syntax error: missing function argument")),
                }
                match l.body().map(unparen) {
                    Some(ast::Expr::AttrSet(s)) => Ok(s),
                    Some(other) => Err(self.refuse(
                        other.syntax(),
                        &format!("a module body that is not an attribute set ({})", describe(&other)),
                    )),
                    None => Err(self.err(l.syntax(), "syntax error: missing function body")),
                }
            }
            other => Err(self.refuse(
                other.syntax(),
                &format!(
                    "a module that is not an attribute set or a {{ config, lib, ... }}: function ({})",
                    describe(&other)
                ),
            )),
        }
    }

    /// The module's own definitions, and its imports (absolute paths with where they are
    /// written).
    /// `rec { … }` needs a real evaluator.
    fn refuse_rec(&self, set: &ast::AttrSet) -> Result<(), EvalError> {
        match set.rec_token() {
            Some(rec) => Err(self.map.err(
                usize::from(rec.text_range().start()),
                format!("a recursive attribute set (rec {{ … }}) is not supported: {NEEDS_NIX}"),
            )),
            None => Ok(()),
        }
    }

    fn module_set(
        &mut self,
        set: &ast::AttrSet,
    ) -> Result<(OptionTree, Vec<(PathBuf, Location)>), EvalError> {
        self.refuse_rec(set)?;
        let mut imports = Vec::new();
        let mut imports_at: Option<Location> = None;
        let mut tree = OptionTree::new();
        for entry in set.entries() {
            if let ast::Entry::AttrpathValue(av) = &entry {
                let names = match av.attrpath() {
                    Some(p) => self.attrpath(&p)?,
                    None => {
                        return Err(self.err(av.syntax(), "syntax error: missing attribute name"));
                    }
                };
                if names.first().map(String::as_str) == Some("imports") {
                    let loc = self.loc(av.syntax());
                    if names.len() > 1 {
                        return Err(EvalError::at(&loc, "'imports' must be a list of paths"));
                    }
                    if let Some(prev) = &imports_at {
                        return Err(EvalError::at(
                            &loc,
                            format!("attribute 'imports' already defined at {prev}"),
                        ));
                    }
                    imports_at = Some(loc);
                    match av.value() {
                        Some(v) => imports = self.imports(v)?,
                        None => return Err(self.err(av.syntax(), "syntax error: missing value")),
                    }
                    continue;
                }
            }
            self.entry(&mut tree, &entry, 0)?;
        }

        for name in ["_file", "key", "_class"] {
            tree.take(name);
        }
        for name in ["options", "disabledModules", "freeformType", "require"] {
            if tree.get_path(&[name]).is_some() {
                let loc = tree.first_location(&[name.to_string()]);
                return Err(EvalError::at(
                    &loc,
                    format!("the module attribute '{name}' is not supported: {NEEDS_NIX}"),
                ));
            }
        }
        if tree.get_path(&["config"]).is_some() {
            let config_loc = tree.first_location(&["config".to_string()]);
            let config = tree.take("config").unwrap_or_default();
            tree.take("meta");
            if let Some(other) = tree.top_names().first() {
                let loc = tree.first_location(std::slice::from_ref(other));
                return Err(EvalError::at(
                    &loc,
                    format!(
                        "the module has both 'config' (at {config_loc}) and the top-level \
                         definition '{}'; move it into 'config'",
                        show_path(std::slice::from_ref(other))
                    ),
                ));
            }
            if !matches!(config.root, Value::Attrs(_)) {
                return Err(EvalError::at(
                    &config_loc,
                    "'config' must be an attribute set",
                ));
            }
            tree = config;
        }
        Ok((tree, imports))
    }

    fn imports(&self, value: ast::Expr) -> Result<Vec<(PathBuf, Location)>, EvalError> {
        let list = match unparen(value) {
            ast::Expr::List(l) => l,
            other => {
                return Err(self.refuse(
                    other.syntax(),
                    &format!(
                        "'imports' given as {} (only a list of paths)",
                        describe(&other)
                    ),
                ));
            }
        };
        let mut out = Vec::new();
        for item in list.items() {
            let item = unparen(item);
            let loc = self.loc(item.syntax());
            let path = match &item {
                ast::Expr::PathAbs(_) | ast::Expr::PathRel(_) | ast::Expr::PathHome(_) => {
                    match self.eval(&item, 0, true)?.into_value() {
                        Value::Path(p) => p,
                        _ => return Err(EvalError::at(&loc, "expected a path in 'imports'")),
                    }
                }
                ast::Expr::Str(_) => match self.eval(&item, 0, true)?.into_value() {
                    Value::String(s) if s.starts_with('/') => PathBuf::from(s),
                    _ => {
                        return Err(EvalError::at(
                            &loc,
                            "a string in 'imports' must be an absolute path",
                        ));
                    }
                },
                other => {
                    return Err(self.refuse(
                        other.syntax(),
                        &format!("importing {} (only paths)", describe(other)),
                    ));
                }
            };
            out.push((path, loc));
        }
        Ok(out)
    }

    /// The attribute names of `a.b."c"`.
    fn attrpath(&self, path: &ast::Attrpath) -> Result<Vec<String>, EvalError> {
        let mut names = Vec::new();
        for attr in path.attrs() {
            match attr {
                ast::Attr::Ident(id) => names.push(id.syntax().text().to_string()),
                ast::Attr::Str(s) => names.push(self.string(&s)?),
                ast::Attr::Dynamic(d) => {
                    return Err(self.refuse(d.syntax(), "a dynamic attribute name (${…})"));
                }
            }
        }
        if names.is_empty() {
            return Err(self.err(path.syntax(), "syntax error: missing attribute name"));
        }
        Ok(names)
    }

    /// Adds one binding of a set to `tree`.
    fn entry(
        &self,
        tree: &mut OptionTree,
        entry: &ast::Entry,
        depth: usize,
    ) -> Result<(), EvalError> {
        let av = match entry {
            ast::Entry::Inherit(i) => return Err(self.refuse(i.syntax(), "'inherit'")),
            ast::Entry::AttrpathValue(av) => av,
        };
        let (Some(path), Some(value)) = (av.attrpath(), av.value()) else {
            return Err(self.err(av.syntax(), "syntax error: incomplete binding"));
        };
        let names = self.attrpath(&path)?;
        let loc = self.loc(path.syntax());
        // Every name nests the value one level deeper: count them against the same limit.
        let depth = depth + names.len();
        if depth > MAX_DEPTH {
            return Err(EvalError::at(&loc, "attribute set nested too deeply"));
        }
        let sub = match self.eval(&value, depth + 1, false)? {
            Evaluated::Tree(t) => t.nest(&names, &loc),
            Evaluated::Leaf(v, prio) => OptionTree::leaf(&names, v, prio, &loc),
        };
        tree.merge_mode(sub, Mode::Strict)
    }

    fn string(&self, s: &ast::Str) -> Result<String, EvalError> {
        let mut indented = false;
        let mut raw = String::new();
        for child in s.syntax().children_with_tokens() {
            match child {
                NodeOrToken::Node(n) => {
                    return Err(self.refuse(&n, "string interpolation (${…})"));
                }
                NodeOrToken::Token(t) => match t.kind() {
                    SyntaxKind::TOKEN_STRING_START => indented = t.text() == "''",
                    SyntaxKind::TOKEN_STRING_CONTENT => raw.push_str(t.text()),
                    _ => {}
                },
            }
        }
        Ok(if indented {
            decode_indented(&raw)
        } else {
            decode_double(&raw)
        })
    }

    fn path(&self, node: &SyntaxNode, home: bool) -> Result<Value, EvalError> {
        let mut text = String::new();
        for child in node.children_with_tokens() {
            match child {
                NodeOrToken::Node(n) => return Err(self.refuse(&n, "path interpolation (${…})")),
                NodeOrToken::Token(t) => text.push_str(t.text()),
            }
        }
        let full = if home {
            let Some(home_dir) = std::env::var_os("HOME") else {
                return Err(self.err(node, format!("cannot resolve '{text}': HOME is not set")));
            };
            PathBuf::from(home_dir).join(text.trim_start_matches('~').trim_start_matches('/'))
        } else if text.starts_with('/') {
            PathBuf::from(&text)
        } else {
            self.dir.join(&text)
        };
        Ok(Value::Path(normalize(&full)))
    }

    fn integer(&self, lit: &ast::Literal, negate: bool) -> Result<Option<i64>, EvalError> {
        let Some(tok) = lit
            .syntax()
            .children_with_tokens()
            .filter_map(NodeOrToken::into_token)
            .find(|t| ast::Integer::can_cast(t.kind()))
        else {
            return Ok(None);
        };
        let text = tok.text();
        let parsed = text
            .parse::<i128>()
            .ok()
            .map(|n| if negate { -n } else { n })
            .and_then(|n| i64::try_from(n).ok());
        match parsed {
            Some(n) => Ok(Some(n)),
            None => Err(self.err(
                lit.syntax(),
                format!("invalid integer '{}{text}'", if negate { "-" } else { "" }),
            )),
        }
    }

    fn eval(&self, expr: &ast::Expr, depth: usize, in_list: bool) -> Result<Evaluated, EvalError> {
        if depth > MAX_DEPTH {
            return Err(self.err(expr.syntax(), "expression nested too deeply"));
        }
        let leaf = |v: Value| Ok(Evaluated::Leaf(v, PRIORITY_PLAIN));
        match expr {
            ast::Expr::Paren(p) => match p.expr() {
                Some(inner) => self.eval(&inner, depth + 1, in_list),
                None => Err(self.err(p.syntax(), "syntax error: empty parentheses")),
            },
            ast::Expr::AttrSet(set) => {
                self.refuse_rec(set)?;
                let mut tree = OptionTree::new();
                for entry in set.entries() {
                    self.entry(&mut tree, &entry, depth + 1)?;
                }
                Ok(Evaluated::Tree(tree))
            }
            ast::Expr::List(list) => {
                let mut items = Vec::new();
                for item in list.items() {
                    items.push(self.eval(&item, depth + 1, true)?.into_value());
                }
                leaf(Value::List(items))
            }
            ast::Expr::Str(s) => leaf(Value::String(self.string(s)?)),
            ast::Expr::Literal(lit) => {
                if let Some(n) = self.integer(lit, false)? {
                    return leaf(Value::Int(n));
                }
                let tok = lit
                    .syntax()
                    .children_with_tokens()
                    .filter_map(NodeOrToken::into_token)
                    .next();
                match tok {
                    Some(t) if t.kind() == SyntaxKind::TOKEN_URI => {
                        leaf(Value::String(t.text().to_string()))
                    }
                    Some(t) if t.kind() == SyntaxKind::TOKEN_FLOAT => Err(self.refuse(
                        lit.syntax(),
                        &format!("the floating-point number {}", t.text()),
                    )),
                    _ => Err(self.refuse(lit.syntax(), "this literal")),
                }
            }
            ast::Expr::PathAbs(p) => leaf(self.path(p.syntax(), false)?),
            ast::Expr::PathRel(p) => leaf(self.path(p.syntax(), false)?),
            ast::Expr::PathHome(p) => leaf(self.path(p.syntax(), true)?),
            ast::Expr::PathSearch(p) => Err(self.refuse(
                p.syntax(),
                &format!("the search path {}", snippet(p.syntax())),
            )),
            ast::Expr::Ident(id) => {
                let name = id.syntax().text().to_string();
                match name.as_str() {
                    "true" => leaf(Value::Bool(true)),
                    "false" => leaf(Value::Bool(false)),
                    "null" => leaf(Value::Null),
                    _ => Err(self.variable(id.syntax(), &name, None)),
                }
            }
            ast::Expr::UnaryOp(u) => {
                if u.operator() == Some(ast::UnaryOpKind::Negate)
                    && let Some(ast::Expr::Literal(lit)) = u.expr().map(unparen)
                    && let Some(n) = self.integer(&lit, true)?
                {
                    return leaf(Value::Int(n));
                }
                Err(self.refuse(
                    u.syntax(),
                    &format!("the operator '{}'", operator_text(u.syntax())),
                ))
            }
            ast::Expr::Apply(a) => self.apply(a, depth, in_list),
            ast::Expr::Select(s) => Err(self.select(s)),
            other => Err(self.refuse(other.syntax(), &describe(other))),
        }
    }

    /// The error for a variable that is unbound or bound to something only Nix can evaluate.
    fn variable(&self, node: &SyntaxNode, name: &str, attr: Option<&str>) -> EvalError {
        let full = match attr {
            Some(a) => format!("{name}.{a}"),
            None => name.to_string(),
        };
        if self.bound.contains(name) {
            return self.refuse(node, &format!("a reference to '{full}'"));
        }
        match name {
            "builtins" => self.refuse(node, &format!("'{full}'")),
            "import" => self.refuse(node, "'import' of an expression"),
            "mkDefault" | "mkForce" | "mkOverride" | "mkOptionDefault" => self.err(
                node,
                format!(
                    "undefined variable '{name}' (write lib.{name}; 'with lib;' is not supported)"
                ),
            ),
            _ => self.err(
                node,
                format!("undefined variable '{name}' (a Nix-enabled host would reject it too)"),
            ),
        }
    }

    fn select(&self, s: &ast::Select) -> EvalError {
        if let Some(or) = s.or_token() {
            return self.map.err(
                usize::from(or.text_range().start()),
                format!("an attribute selection default ('or') is not supported: {NEEDS_NIX}"),
            );
        }
        let attr = s.attrpath().map(|p| snippet(p.syntax()));
        match s.expr().map(unparen) {
            Some(ast::Expr::Ident(id)) => {
                let name = id.syntax().text().to_string();
                self.variable(s.syntax(), &name, attr.as_deref())
            }
            _ => self.refuse(
                s.syntax(),
                &format!("the attribute selection '{}'", snippet(s.syntax())),
            ),
        }
    }

    /// `lib.mkDefault x`, `lib.mkForce x`, `lib.mkOverride N x`; any other application is
    /// refused.
    fn apply(&self, a: &ast::Apply, depth: usize, in_list: bool) -> Result<Evaluated, EvalError> {
        let mut args = Vec::new();
        let mut head = ast::Expr::Apply(a.clone());
        while let ast::Expr::Apply(app) = &head {
            let (Some(f), Some(arg)) = (app.lambda(), app.argument()) else {
                return Err(self.err(
                    app.syntax(),
                    "syntax error: incomplete function application",
                ));
            };
            args.push(arg);
            head = unparen(f);
        }
        args.reverse();

        let helper = match &head {
            ast::Expr::Select(s) if s.or_token().is_none() => {
                match (
                    s.expr().map(unparen),
                    s.attrpath().map(|p| p.attrs().collect::<Vec<_>>()),
                ) {
                    (Some(ast::Expr::Ident(id)), Some(attrs)) if id.syntax().text() == "lib" => {
                        match attrs.as_slice() {
                            [ast::Attr::Ident(f)] => Some(f.syntax().text().to_string()),
                            _ => None,
                        }
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        let helper = helper.filter(|h| {
            matches!(
                h.as_str(),
                "mkDefault" | "mkForce" | "mkOverride" | "mkOptionDefault"
            )
        });
        let Some(helper) = helper else {
            return Err(match &head {
                ast::Expr::Ident(id) => {
                    let name = id.syntax().text().to_string();
                    if self.bound.contains(&name) || name == "import" || name == "builtins" {
                        self.refuse(
                            a.syntax(),
                            &format!("the function application '{}'", snippet(a.syntax())),
                        )
                    } else {
                        self.variable(head.syntax(), &name, None)
                    }
                }
                ast::Expr::Select(s) => match s.expr().map(unparen) {
                    Some(ast::Expr::Ident(id))
                        if !self.bound.contains(&id.syntax().text().to_string())
                            && id.syntax().text() != "builtins" =>
                    {
                        self.variable(id.syntax(), &id.syntax().text().to_string(), None)
                    }
                    _ => self.refuse(
                        a.syntax(),
                        &format!("the function application '{}'", snippet(a.syntax())),
                    ),
                },
                _ => self.refuse(
                    a.syntax(),
                    &format!("the function application '{}'", snippet(a.syntax())),
                ),
            });
        };
        if !self.bound.contains("lib") {
            return Err(self.err(
                head.syntax(),
                "undefined variable 'lib' (the module must be a function { lib, ... }: { … })",
            ));
        }
        if in_list {
            return Err(self.err(
                a.syntax(),
                format!("lib.{helper} inside a list is not supported"),
            ));
        }
        let wanted = if helper == "mkOverride" { 2 } else { 1 };
        if args.len() != wanted {
            return Err(self.err(
                a.syntax(),
                format!(
                    "lib.{helper} takes {wanted} argument(s), given {}",
                    args.len()
                ),
            ));
        }
        let (priority, value) = if helper == "mkOverride" {
            let prio = match self.eval(&args[0], depth + 1, false)? {
                Evaluated::Leaf(Value::Int(n), _) => n,
                _ => {
                    return Err(self.err(
                        args[0].syntax(),
                        "the priority of lib.mkOverride must be an integer",
                    ));
                }
            };
            (prio, &args[1])
        } else {
            let prio = match helper.as_str() {
                "mkDefault" => PRIORITY_DEFAULT,
                "mkForce" => PRIORITY_FORCE,
                _ => PRIORITY_OPTION_DEFAULT,
            };
            (prio, &args[0])
        };
        Ok(match self.eval(value, depth + 1, false)? {
            Evaluated::Leaf(v, _) => Evaluated::Leaf(v, priority),
            Evaluated::Tree(mut t) => {
                t.set_priority(priority);
                Evaluated::Tree(t)
            }
        })
    }
}

/// Names the construct of an expression for messages.
fn describe(e: &ast::Expr) -> String {
    match e {
        ast::Expr::Apply(a) => format!("the function application '{}'", snippet(a.syntax())),
        ast::Expr::Assert(_) => "'assert'".to_string(),
        ast::Expr::Error(_) => "a syntax error".to_string(),
        ast::Expr::IfElse(_) => "'if … then … else'".to_string(),
        ast::Expr::Select(s) => format!("the attribute selection '{}'", snippet(s.syntax())),
        ast::Expr::Str(_) => "a string".to_string(),
        ast::Expr::PathAbs(_) | ast::Expr::PathRel(_) | ast::Expr::PathHome(_) => {
            "a path".to_string()
        }
        ast::Expr::PathSearch(_) => "a search path (<…>)".to_string(),
        ast::Expr::Literal(_) => "a number".to_string(),
        ast::Expr::Lambda(_) => "a function (lambda)".to_string(),
        ast::Expr::LegacyLet(_) => "'let { … }'".to_string(),
        ast::Expr::LetIn(_) => "'let … in'".to_string(),
        ast::Expr::List(_) => "a list".to_string(),
        ast::Expr::BinOp(b) => format!("the operator '{}'", operator_text(b.syntax())),
        ast::Expr::Paren(_) => "a parenthesized expression".to_string(),
        ast::Expr::Root(_) => "a file".to_string(),
        ast::Expr::AttrSet(_) => "an attribute set".to_string(),
        ast::Expr::UnaryOp(u) => format!("the operator '{}'", operator_text(u.syntax())),
        ast::Expr::Ident(id) => format!("the variable '{}'", id.syntax().text()),
        ast::Expr::With(_) => "'with'".to_string(),
        ast::Expr::HasAttr(_) => "the operator '?'".to_string(),
        ast::Expr::CurPos(_) => "'__curPos'".to_string(),
    }
}
