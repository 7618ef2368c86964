//! From rnix's syntax tree to the evaluator's expression tree: variables resolved to frame
//! slots, nested attribute definitions (`a.b = 1; a.c = 2;`) merged, strings decoded, paths made
//! absolute. Errors Nix reports before evaluating (an undefined variable, an attribute defined
//! twice, a duplicate function argument) are reported here, with their position.

use std::collections::BTreeMap;

use super::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rnix::ast::{self, AstToken, HasEntry, InterpolPart};
use rnix::{SyntaxKind, SyntaxNode};
use rowan::ast::AstNode;

use super::error::{EvalError, SourceMap};
use super::strings::{Piece, decode_double, strip_indentation};
use super::value::{Str, Value};

/// How deeply brackets, strings and interpolations may nest in the source: rnix's parser
/// recurses without a limit for some of them (lists), which overflows the stack.
const MAX_PARSE_DEPTH: usize = 500;

/// A position in a source text, for messages.
#[derive(Clone)]
pub struct Pos {
    pub src: Rc<SourceMap>,
    pub offset: u32,
}

impl Pos {
    pub fn err(&self, message: impl Into<String>) -> EvalError {
        self.src.err(self.offset as usize, message)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Concat,
    Update,
    Add,
    Sub,
    Mul,
    Div,
    And,
    Or,
    Implication,
    Eq,
    NotEq,
    Less,
    LessEq,
    More,
    MoreEq,
}

pub enum Part {
    Lit(Str),
    Interp(Rc<Expr>),
}

pub enum Key {
    Static(Str),
    Dynamic(Rc<Expr>, Pos),
}

/// The definitions of one attribute set (or `let`): static names (sorted) and dynamic ones.
#[derive(Default)]
pub struct AttrsDef {
    pub statics: Vec<(Str, AttrValue)>,
    pub dynamics: Vec<(Rc<Expr>, AttrValue, Pos)>,
    /// Where each static name was (first) defined.
    pub positions: HashMap<Str, Pos>,
    /// Whether the sets made from it remember where their attributes were defined (with
    /// `Evaluator::track_positions`): those of the user's files, not those of ncsh's `lib`,
    /// whose sets (`mkIf`'s, `mkOption`'s, …) no message points into.
    pub tracked: bool,
}

pub enum AttrValue {
    Expr(Rc<Expr>),
    /// `a.b = …; a.c = …;`: a set built from several definitions, in the same scope.
    Nested(Rc<AttrsDef>),
}

pub enum Param {
    Ident,
    Pattern {
        /// Formal names (slot = index) and defaults.
        formals: Vec<(Str, Option<Rc<Expr>>)>,
        ellipsis: bool,
        /// `args@{ … }`: the slot after the formals.
        at: bool,
    },
}

pub struct LambdaDef {
    pub param: Param,
    pub body: Rc<Expr>,
    pub pos: Pos,
    /// The name it is bound to, if any, for messages.
    pub name: Option<Str>,
}

pub enum Expr {
    Const(Value),
    /// A variable of an enclosing frame.
    Var(u32, u32),
    /// A variable no lexical scope binds: looked up in the namespaces of the enclosing `with`s
    /// (their depths, innermost first).
    WithVar(Str, Vec<u32>, Pos),
    Str(Vec<Part>, Pos),
    /// A path with interpolation; the first part is the literal start (absolute).
    PathInterp(Vec<Part>, Pos),
    List(Vec<Rc<Expr>>),
    Attrs(Rc<AttrsDef>),
    /// A `rec` set: its static names are a frame its values see.
    RecAttrs(Rc<AttrsDef>),
    Let(Rc<AttrsDef>, Rc<Expr>),
    Lambda(Rc<LambdaDef>),
    Apply(Rc<Expr>, Rc<Expr>, Pos),
    Select(Rc<Expr>, Vec<Key>, Option<Rc<Expr>>, Pos),
    HasAttr(Rc<Expr>, Vec<Key>),
    If(Rc<Expr>, Rc<Expr>, Rc<Expr>, Pos),
    Assert(Rc<Expr>, Rc<Expr>, Pos),
    /// The namespace, then the body (compiled with one more frame: the namespace).
    With(Rc<Expr>, Rc<Expr>),
    Bin(BinOp, Rc<Expr>, Rc<Expr>, Pos),
    Not(Rc<Expr>, Pos),
    Neg(Rc<Expr>, Pos),
}

enum Scope {
    Frame(Rc<HashMap<Str, u32>>),
    With,
}

/// What the compiler needs from the evaluator: the global names and values.
pub trait Globals {
    fn global(&self, name: &str) -> Option<Value>;
}

pub struct Compiler<'g> {
    src: Rc<SourceMap>,
    base_dir: PathBuf,
    globals: &'g dyn Globals,
    scopes: Vec<Scope>,
    /// Where the compiled text starts in `src` (a slice of it: see [`compile_in_frame`]).
    base: u32,
    /// Text ncsh ships (its `lib`), not the user's.
    shipped: bool,
}

/// Parses and compiles `text` (the contents of `src`, which may be wrapped: `src.shift`).
pub fn compile(
    text: &str,
    src: Rc<SourceMap>,
    base_dir: &Path,
    globals: &dyn Globals,
) -> Result<Rc<Expr>, EvalError> {
    compile_checked(text, src, base_dir, globals, true)
}

/// [`compile`]; `check_depth` false skips the nesting scan, for text ncsh ships (its `lib`).
pub fn compile_checked(
    text: &str,
    src: Rc<SourceMap>,
    base_dir: &Path,
    globals: &dyn Globals,
    check_depth: bool,
) -> Result<Rc<Expr>, EvalError> {
    if check_depth && let Some(offset) = too_deep(text) {
        return Err(src.err(offset, "syntax error: expression nested too deeply"));
    }
    let parse = rnix::Root::parse(text);
    if let Some(e) = parse.errors().first() {
        return Err(parse_error(&src, e, text.len()));
    }
    let Some(expr) = parse.tree().expr() else {
        return Err(src.err(0, "syntax error: the file holds no expression"));
    };
    let mut c = Compiler {
        src,
        base_dir: base_dir.to_path_buf(),
        globals,
        scopes: Vec::new(),
        base: 0,
        shipped: !check_depth,
    };
    c.expr(&expr)
}

/// Compiles the slice `text[start..end]` of `src`'s text as an expression in the scope of one
/// frame of `names` (a `let` whose bindings are compiled one by one: see [`super::split`]).
pub fn compile_in_frame(
    text: &str,
    (start, end): (usize, usize),
    src: Rc<SourceMap>,
    base_dir: &Path,
    globals: &dyn Globals,
    names: &Rc<HashMap<Str, u32>>,
) -> Result<Rc<Expr>, EvalError> {
    let slice = &text[start..end];
    let parse = rnix::Root::parse(slice);
    if let Some(e) = parse.errors().first() {
        let mut err = parse_error(&src, e, slice.len());
        err.message = format!("{} (in a binding at byte {start})", err.message);
        return Err(err);
    }
    let Some(expr) = parse.tree().expr() else {
        return Err(src.err(start, "syntax error: a binding without a value"));
    };
    let mut c = Compiler {
        src,
        base_dir: base_dir.to_path_buf(),
        globals,
        scopes: vec![Scope::Frame(names.clone())],
        base: start as u32,
        shipped: true,
    };
    c.expr(&expr)
}

/// The byte offset where `text` nests deeper than [`MAX_PARSE_DEPTH`], if it does: a lenient
/// scan of brackets, strings, interpolations and comments (the parser reports real errors).
pub(crate) fn too_deep(text: &str) -> Option<usize> {
    #[derive(PartialEq)]
    enum Ctx {
        Open,
        Interp,
        Str,
        Ind,
    }
    let b = text.as_bytes();
    let mut stack: Vec<Ctx> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let at = |j: usize| b.get(j).copied();
        match stack.last() {
            Some(Ctx::Str) => match b[i] {
                b'\\' => i += 1,
                b'"' => {
                    stack.pop();
                }
                b'$' if at(i + 1) == Some(b'{') => {
                    stack.push(Ctx::Interp);
                    i += 1;
                }
                _ => {}
            },
            Some(Ctx::Ind) => match b[i] {
                b'\'' if at(i + 1) == Some(b'\'') => {
                    if matches!(at(i + 2), Some(b'$' | b'\'')) {
                        i += 2;
                    } else if at(i + 2) == Some(b'\\') {
                        i += 3;
                    } else {
                        stack.pop();
                        i += 1;
                    }
                }
                b'$' if at(i + 1) == Some(b'{') => {
                    stack.push(Ctx::Interp);
                    i += 1;
                }
                _ => {}
            },
            _ => match b[i] {
                b'#' => {
                    while i < b.len() && b[i] != b'\n' {
                        i += 1;
                    }
                }
                b'/' if at(i + 1) == Some(b'*') => {
                    i += 2;
                    while i < b.len() && !(b[i] == b'*' && at(i + 1) == Some(b'/')) {
                        i += 1;
                    }
                    i += 1;
                }
                b'"' => stack.push(Ctx::Str),
                b'\'' if at(i + 1) == Some(b'\'') => {
                    stack.push(Ctx::Ind);
                    i += 1;
                }
                b'$' if at(i + 1) == Some(b'{') => {
                    stack.push(Ctx::Interp);
                    i += 1;
                }
                b'[' | b'(' | b'{' => stack.push(Ctx::Open),
                b']' | b')' | b'}' => {
                    stack.pop();
                }
                _ => {}
            },
        }
        if stack.len() > MAX_PARSE_DEPTH {
            return Some(i);
        }
        i += 1;
    }
    None
}

pub(crate) fn parse_error(map: &SourceMap, e: &rnix::ParseError, len: usize) -> EvalError {
    use rnix::ParseError as P;
    let kinds = |k: &[SyntaxKind]| {
        k.iter()
            .map(|k| describe_kind(*k))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (offset, what) = match e {
        P::Unexpected(r) => (usize::from(r.start()), "unexpected input".to_string()),
        P::UnexpectedExtra(r) => (
            usize::from(r.start()),
            "unexpected input after the expression".to_string(),
        ),
        P::UnexpectedWanted(SyntaxKind::TOKEN_ERROR, r, wanted)
            if wanted.contains(&SyntaxKind::TOKEN_STRING_END) =>
        {
            (usize::from(r.start()), "unterminated string".to_string())
        }
        P::UnexpectedWanted(got, r, wanted) => (
            usize::from(r.start()),
            format!("found {}, expected {}", describe_kind(*got), kinds(wanted)),
        ),
        P::UnexpectedDoubleBind(r) => (usize::from(r.start()), "double '@' binding".to_string()),
        P::UnexpectedEOF => (len, "unexpected end of file".to_string()),
        P::UnexpectedEOFWanted(wanted) => (
            len,
            format!("unexpected end of file, expected {}", kinds(wanted)),
        ),
        P::DuplicatedArgs(r, name) => (
            usize::from(r.start()),
            format!("duplicate formal function argument '{name}'"),
        ),
        P::RecursionLimitExceeded => (0, "expression nested too deeply".to_string()),
        _ => (0, e.to_string()),
    };
    map.err(offset, format!("syntax error: {what}"))
}

fn describe_kind(k: SyntaxKind) -> String {
    use SyntaxKind::*;
    let s = match k {
        TOKEN_ASSIGN => "'='",
        TOKEN_SEMICOLON => "';'",
        TOKEN_COLON => "':'",
        TOKEN_COMMA => "','",
        TOKEN_DOT => "'.'",
        TOKEN_L_BRACE => "'{'",
        TOKEN_R_BRACE => "'}'",
        TOKEN_L_BRACK => "'['",
        TOKEN_R_BRACK => "']'",
        TOKEN_L_PAREN => "'('",
        TOKEN_R_PAREN => "')'",
        TOKEN_IDENT => "an identifier",
        TOKEN_STRING_START => "a string",
        TOKEN_STRING_END => "the end of a string",
        TOKEN_INTERPOL_START => "'${'",
        TOKEN_INTERPOL_END => "'}'",
        TOKEN_ERROR => "an invalid token",
        TOKEN_IN => "'in'",
        TOKEN_THEN => "'then'",
        TOKEN_ELSE => "'else'",
        NODE_ATTRPATH => "an attribute path",
        NODE_IDENT => "an identifier",
        NODE_STRING => "a string",
        NODE_DYNAMIC => "'${…}'",
        other => {
            return format!("{other:?}")
                .to_lowercase()
                .replace("token_", "")
                .replace("node_", "")
                .replace('_', " ");
        }
    };
    s.to_string()
}

/// Normalizes an absolute path as Nix does: no `.`, no `..`, no doubled or trailing slash.
pub fn canon_path(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

fn rc(e: Expr) -> Rc<Expr> {
    Rc::new(e)
}

impl Compiler<'_> {
    fn attrs_def(&self) -> AttrsDef {
        AttrsDef {
            tracked: !self.shipped,
            ..AttrsDef::default()
        }
    }

    fn pos(&self, node: &SyntaxNode) -> Pos {
        Pos {
            src: self.src.clone(),
            offset: self.base + u32::from(node.text_range().start()),
        }
    }

    fn err(&self, node: &SyntaxNode, msg: impl Into<String>) -> EvalError {
        self.pos(node).err(msg)
    }

    fn lookup(&self, name: &str, node: &SyntaxNode) -> Result<Expr, EvalError> {
        let mut withs = Vec::new();
        for (depth, scope) in self.scopes.iter().rev().enumerate() {
            match scope {
                Scope::Frame(names) => {
                    if let Some(&i) = names.get(name) {
                        return Ok(Expr::Var(depth as u32, i));
                    }
                }
                Scope::With => withs.push(depth as u32),
            }
        }
        // Built-in globals are lexical: they win over `with`.
        if let Some(v) = self.globals.global(name) {
            return Ok(Expr::Const(v));
        }
        if withs.is_empty() {
            return Err(self.err(node, format!("undefined variable '{name}'")));
        }
        Ok(Expr::WithVar(name.into(), withs, self.pos(node)))
    }

    pub fn expr(&mut self, e: &ast::Expr) -> Result<Rc<Expr>, EvalError> {
        stacker::maybe_grow(64 * 1024, 1024 * 1024, || self.expr_inner(e))
    }

    fn expr_inner(&mut self, e: &ast::Expr) -> Result<Rc<Expr>, EvalError> {
        use ast::Expr as E;
        let node = e.syntax();
        Ok(match e {
            E::Paren(p) => self.child(p.expr(), node)?,
            E::Root(r) => self.child(r.expr(), node)?,
            E::Literal(l) => rc(Expr::Const(self.literal(l)?)),
            E::Ident(i) => {
                let name = ident_text(i);
                rc(self.lookup(&name, node)?)
            }
            E::Str(s) => self.string(s)?,
            E::PathAbs(_) | E::PathRel(_) | E::PathHome(_) => self.path(e)?,
            E::PathSearch(_) => {
                return Err(self.err(
                    node,
                    format!(
                        "{}: search paths (<…>) need NIX_PATH and a Nix host; import a file by \
                         its path instead",
                        node.text()
                    ),
                ));
            }
            E::List(l) => {
                let mut items = Vec::new();
                for item in l.items() {
                    items.push(self.expr(&item)?);
                }
                rc(Expr::List(items))
            }
            E::AttrSet(s) => {
                if s.rec_token().is_some() {
                    let def = self.rec_bindings(s)?;
                    rc(Expr::RecAttrs(def))
                } else {
                    let mut def = self.attrs_def();
                    self.bindings(s, &mut def, false)?;
                    rc(Expr::Attrs(Rc::new(def)))
                }
            }
            E::LetIn(l) => {
                let def = self.frame_bindings(l, true)?;
                let body = self.child(l.body(), node)?;
                self.scopes.pop();
                rc(Expr::Let(def, body))
            }
            E::LegacyLet(l) => {
                // `let { a = 1; body = a; }` is `(rec { a = 1; body = a; }).body`.
                let def = self.frame_bindings(l, false)?;
                self.scopes.pop();
                rc(Expr::Select(
                    rc(Expr::RecAttrs(def)),
                    vec![Key::Static("body".into())],
                    None,
                    self.pos(node),
                ))
            }
            E::Lambda(l) => rc(Expr::Lambda(self.lambda(l, None)?)),
            E::Apply(a) => {
                let f = self.child(a.lambda(), node)?;
                let x = self.child(a.argument(), node)?;
                rc(Expr::Apply(f, x, self.pos(node)))
            }
            E::Select(s) => {
                let target = self.child(s.expr(), node)?;
                let path = self.attrpath(s.attrpath(), node)?;
                let default = match s.default_expr() {
                    Some(d) => Some(self.expr(&d)?),
                    None => None,
                };
                let at = s
                    .attrpath()
                    .map(|p| self.pos(p.syntax()))
                    .unwrap_or_else(|| self.pos(node));
                rc(Expr::Select(target, path, default, at))
            }
            E::HasAttr(h) => {
                let target = self.child(h.expr(), node)?;
                let path = self.attrpath(h.attrpath(), node)?;
                rc(Expr::HasAttr(target, path))
            }
            E::IfElse(i) => {
                let c = self.child(i.condition(), node)?;
                let t = self.child(i.body(), node)?;
                let f = self.child(i.else_body(), node)?;
                let at = i
                    .condition()
                    .map(|c| self.pos(c.syntax()))
                    .unwrap_or_else(|| self.pos(node));
                rc(Expr::If(c, t, f, at))
            }
            E::Assert(a) => {
                let c = self.child(a.condition(), node)?;
                let b = self.child(a.body(), node)?;
                rc(Expr::Assert(c, b, self.pos(node)))
            }
            E::With(w) => {
                let ns = self.child(w.namespace(), node)?;
                self.scopes.push(Scope::With);
                let body = self.child(w.body(), node);
                self.scopes.pop();
                rc(Expr::With(ns, body?))
            }
            E::BinOp(b) => {
                use ast::BinOpKind as K;
                let l = self.child(b.lhs(), node)?;
                let r = self.child(b.rhs(), node)?;
                let pos = self.pos(node);
                let op = match b.operator() {
                    Some(K::Concat) => BinOp::Concat,
                    Some(K::Update) => BinOp::Update,
                    Some(K::Add) => BinOp::Add,
                    Some(K::Sub) => BinOp::Sub,
                    Some(K::Mul) => BinOp::Mul,
                    Some(K::Div) => BinOp::Div,
                    Some(K::And) => BinOp::And,
                    Some(K::Or) => BinOp::Or,
                    Some(K::Implication) => BinOp::Implication,
                    Some(K::Equal) => BinOp::Eq,
                    Some(K::NotEqual) => BinOp::NotEq,
                    Some(K::Less) => BinOp::Less,
                    Some(K::LessOrEq) => BinOp::LessEq,
                    Some(K::More) => BinOp::More,
                    Some(K::MoreOrEq) => BinOp::MoreEq,
                    Some(K::PipeRight) => return Ok(rc(Expr::Apply(r, l, pos))),
                    Some(K::PipeLeft) => return Ok(rc(Expr::Apply(l, r, pos))),
                    None => return Err(self.err(node, "syntax error: unknown operator")),
                };
                rc(Expr::Bin(op, l, r, pos))
            }
            E::UnaryOp(u) => {
                let x = self.child(u.expr(), node)?;
                match u.operator() {
                    Some(ast::UnaryOpKind::Invert) => rc(Expr::Not(x, self.pos(node))),
                    Some(ast::UnaryOpKind::Negate) => rc(Expr::Neg(x, self.pos(node))),
                    None => return Err(self.err(node, "syntax error: unknown operator")),
                }
            }
            E::CurPos(_) => {
                let loc = self.src.loc(usize::from(node.text_range().start()));
                let mut m = BTreeMap::new();
                m.insert(
                    Str::from("file"),
                    Value::string(loc.file.display().to_string()).into(),
                );
                m.insert(Str::from("line"), Value::Int(loc.line as i64).into());
                m.insert(Str::from("column"), Value::Int(loc.column as i64).into());
                rc(Expr::Const(Value::attrs(m)))
            }
            E::Error(_) => return Err(self.err(node, "syntax error")),
        })
    }

    fn child(&mut self, e: Option<ast::Expr>, parent: &SyntaxNode) -> Result<Rc<Expr>, EvalError> {
        match e {
            Some(e) => self.expr(&e),
            None => Err(self.err(parent, "syntax error: an expression is missing")),
        }
    }

    fn literal(&self, l: &ast::Literal) -> Result<Value, EvalError> {
        let node = l.syntax();
        match l.kind() {
            ast::LiteralKind::Integer(i) => {
                let text = i.syntax().text();
                text.parse::<i64>()
                    .map(Value::Int)
                    .map_err(|_| self.err(node, format!("invalid integer '{text}'")))
            }
            ast::LiteralKind::Float(f) => {
                let text = f.syntax().text();
                text.parse::<f64>()
                    .map(Value::Float)
                    .map_err(|_| self.err(node, format!("invalid float '{text}'")))
            }
            ast::LiteralKind::Uri(u) => Ok(Value::string(u.syntax().text())),
        }
    }

    fn string(&mut self, s: &ast::Str) -> Result<Rc<Expr>, EvalError> {
        let node = s.syntax();
        let indented = node
            .first_token()
            .is_some_and(|t| t.kind() == SyntaxKind::TOKEN_STRING_START && t.text() == "''");
        let mut raw: Vec<Piece<Rc<Expr>>> = Vec::new();
        for part in s.parts() {
            match part {
                InterpolPart::Literal(lit) => {
                    raw.push(Piece::Text(lit.syntax().text().to_string()))
                }
                InterpolPart::Interpolation(i) => {
                    let e = self.child(i.expr(), i.syntax())?;
                    raw.push(Piece::Interp(e));
                }
            }
        }
        let parts: Vec<Piece<Rc<Expr>>> = if indented {
            strip_indentation(raw)
        } else {
            raw.into_iter()
                .map(|p| match p {
                    Piece::Text(t) => Piece::Text(decode_double(&t)),
                    other => other,
                })
                .collect()
        };
        let mut out = Vec::new();
        for p in parts {
            match p {
                Piece::Text(t) if t.is_empty() => {}
                Piece::Text(t) => out.push(Part::Lit(t.into())),
                Piece::Interp(e) => out.push(Part::Interp(e)),
            }
        }
        if out.is_empty() {
            return Ok(rc(Expr::Const(Value::string(""))));
        }
        if let [Part::Lit(s)] = out.as_slice() {
            return Ok(rc(Expr::Const(Value::String(s.clone()))));
        }
        Ok(rc(Expr::Str(out, self.pos(node))))
    }

    fn path(&mut self, e: &ast::Expr) -> Result<Rc<Expr>, EvalError> {
        let node = e.syntax();
        let parts = match e {
            ast::Expr::PathAbs(p) => p.parts(),
            ast::Expr::PathRel(p) => p.parts(),
            ast::Expr::PathHome(p) => p.parts(),
            _ => Vec::new(),
        };
        let mut out: Vec<Part> = Vec::new();
        for (i, part) in parts.into_iter().enumerate() {
            match part {
                InterpolPart::Literal(lit) => {
                    let text = lit.syntax().text().to_string();
                    let text = if i == 0 {
                        self.absolute(&text, node)?
                    } else {
                        text
                    };
                    out.push(Part::Lit(text.into()));
                }
                InterpolPart::Interpolation(it) => {
                    let e = self.child(it.expr(), it.syntax())?;
                    out.push(Part::Interp(e));
                }
            }
        }
        if let [Part::Lit(s)] = out.as_slice() {
            let p = canon_path(Path::new(&**s));
            return Ok(rc(Expr::Const(Value::Path(p.into()))));
        }
        Ok(rc(Expr::PathInterp(out, self.pos(node))))
    }

    /// The literal start of a path made absolute (`./x`, `~/x`, `/x`), keeping a trailing
    /// slash that an interpolation follows.
    fn absolute(&self, text: &str, node: &SyntaxNode) -> Result<String, EvalError> {
        if let Some(rest) = text.strip_prefix("~/") {
            let home = std::env::var("HOME")
                .map_err(|_| self.err(node, "a path starts with ~ but HOME is not set"))?;
            return Ok(format!("{home}/{rest}"));
        }
        if text.starts_with('/') {
            return Ok(text.to_string());
        }
        Ok(format!("{}/{text}", self.base_dir.display()))
    }

    fn attr_key(&mut self, attr: &ast::Attr) -> Result<Key, EvalError> {
        match attr {
            ast::Attr::Ident(i) => Ok(Key::Static(ident_text(i).into())),
            ast::Attr::Str(s) => {
                let e = self.string(s)?;
                match &*e {
                    Expr::Const(Value::String(s)) => Ok(Key::Static(s.clone())),
                    _ => Ok(Key::Dynamic(e, self.pos(attr.syntax()))),
                }
            }
            ast::Attr::Dynamic(d) => {
                let e = self.child(d.expr(), d.syntax())?;
                Ok(Key::Dynamic(e, self.pos(attr.syntax())))
            }
        }
    }

    fn attrpath(
        &mut self,
        path: Option<ast::Attrpath>,
        parent: &SyntaxNode,
    ) -> Result<Vec<Key>, EvalError> {
        let Some(path) = path else {
            return Err(self.err(parent, "syntax error: an attribute name is missing"));
        };
        let mut keys = Vec::new();
        for a in path.attrs() {
            keys.push(self.attr_key(&a)?);
        }
        Ok(keys)
    }

    fn lambda(&mut self, l: &ast::Lambda, name: Option<Str>) -> Result<Rc<LambdaDef>, EvalError> {
        let node = l.syntax();
        let Some(param) = l.param() else {
            return Err(self.err(node, "syntax error: a function without an argument"));
        };
        let mut names: HashMap<Str, u32> = HashMap::default();
        let mut default_nodes = Vec::new();
        let param_def = match param {
            ast::Param::IdentParam(i) => {
                let n = i.ident().map(|i| ident_text(&i)).unwrap_or_default();
                names.insert(n.into(), 0);
                None
            }
            ast::Param::Pattern(p) => {
                let mut formals_names = Vec::new();
                for entry in p.pat_entries() {
                    let n: Str = entry
                        .ident()
                        .map(|i| ident_text(&i))
                        .unwrap_or_default()
                        .into();
                    if names.contains_key(&n) {
                        return Err(self.err(
                            entry.syntax(),
                            format!("duplicate formal function argument '{n}'"),
                        ));
                    }
                    names.insert(n.clone(), formals_names.len() as u32);
                    formals_names.push(n);
                    default_nodes.push(entry.default());
                }
                let at = match p.pat_bind().and_then(|b| b.ident()) {
                    Some(i) => {
                        let n: Str = ident_text(&i).into();
                        if names.contains_key(&n) {
                            return Err(self.err(
                                i.syntax(),
                                format!("duplicate formal function argument '{n}'"),
                            ));
                        }
                        names.insert(n, formals_names.len() as u32);
                        true
                    }
                    None => false,
                };
                Some((formals_names, p.ellipsis_token().is_some(), at))
            }
        };
        self.scopes.push(Scope::Frame(Rc::new(names)));
        let result = (|| {
            let param = match param_def {
                None => Param::Ident,
                Some((formals_names, ellipsis, at)) => {
                    let mut formals = Vec::new();
                    for (n, d) in formals_names.into_iter().zip(default_nodes) {
                        let d = match d {
                            Some(d) => Some(self.expr(&d)?),
                            None => None,
                        };
                        formals.push((n, d));
                    }
                    Param::Pattern {
                        formals,
                        ellipsis,
                        at,
                    }
                }
            };
            let body = self.child(l.body(), node)?;
            Ok(Rc::new(LambdaDef {
                param,
                body,
                pos: self.pos(node),
                name,
            }))
        })();
        self.scopes.pop();
        result
    }

    /// The static names an entry list defines at its top level (for a frame), in order of
    /// first appearance; `inherit`ed names included.
    fn top_names(&self, entries: &[ast::Entry]) -> Vec<(Str, SyntaxNode)> {
        let mut out: Vec<(Str, SyntaxNode)> = Vec::new();
        let mut seen: super::HashSet<Str> = super::HashSet::default();
        for entry in entries {
            match entry {
                ast::Entry::AttrpathValue(av) => {
                    if let Some(first) = av.attrpath().and_then(|p| p.attrs().next())
                        && let Some(n) = static_name(&first)
                        && seen.insert(n.clone())
                    {
                        out.push((n, av.syntax().clone()));
                    }
                }
                ast::Entry::Inherit(i) => {
                    for a in i.attrs() {
                        if let Some(n) = static_name(&a)
                            && seen.insert(n.clone())
                        {
                            out.push((n, a.syntax().clone()));
                        }
                    }
                }
            }
        }
        out
    }

    /// Compiles a `let` (or `rec` set when `is_let` is false): pushes the frame of its names
    /// (the caller pops it after compiling what else is in scope).
    fn frame_bindings(
        &mut self,
        node_entries: &impl HasEntry,
        is_let: bool,
    ) -> Result<Rc<AttrsDef>, EvalError> {
        let entries: Vec<ast::Entry> = node_entries.entries().collect();
        let names: Vec<Str> = self
            .top_names(&entries)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        let frame: HashMap<Str, u32> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as u32))
            .collect();
        self.scopes.push(Scope::Frame(Rc::new(frame)));
        let mut def = self.attrs_def();
        let r = self.entries(&entries, &mut def, true);
        if let Err(e) = r {
            self.scopes.pop();
            return Err(e);
        }
        if is_let && let Some((_, _, pos)) = def.dynamics.first() {
            let e = pos.err("dynamic attributes are not allowed in 'let'");
            self.scopes.pop();
            return Err(e);
        }
        // The frame's slots follow `names`; `statics` is sorted by name: reorder to match.
        let mut by_name: HashMap<Str, AttrValue> = def.statics.drain(..).collect();
        let mut statics = Vec::new();
        for n in &names {
            if let Some(v) = by_name.remove(n) {
                statics.push((n.clone(), v));
            }
        }
        def.statics = statics;
        Ok(Rc::new(def))
    }

    fn rec_bindings(&mut self, s: &ast::AttrSet) -> Result<Rc<AttrsDef>, EvalError> {
        let def = self.frame_bindings(s, false)?;
        self.scopes.pop();
        Ok(def)
    }

    fn bindings(
        &mut self,
        s: &impl HasEntry,
        def: &mut AttrsDef,
        in_frame: bool,
    ) -> Result<(), EvalError> {
        let entries: Vec<ast::Entry> = s.entries().collect();
        self.entries(&entries, def, in_frame)?;
        def.statics.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(())
    }

    /// Adds `entries` to `def`. `in_frame`: the entries' own names are the innermost frame
    /// (`let`, `rec`), so `inherit x;` must look past it.
    fn entries(
        &mut self,
        entries: &[ast::Entry],
        def: &mut AttrsDef,
        in_frame: bool,
    ) -> Result<(), EvalError> {
        for entry in entries {
            match entry {
                ast::Entry::Inherit(i) => {
                    let from = match i.from() {
                        Some(f) => Some(self.child(f.expr(), f.syntax())?),
                        None => None,
                    };
                    for a in i.attrs() {
                        let Some(name) = static_name(&a) else {
                            return Err(self
                                .err(a.syntax(), "dynamic attributes are not allowed in inherit"));
                        };
                        let value = match &from {
                            Some(f) => rc(Expr::Select(
                                f.clone(),
                                vec![Key::Static(name.clone())],
                                None,
                                self.pos(a.syntax()),
                            )),
                            None => {
                                // `inherit x;` in a `let` or `rec` means the x around it;
                                // the expression still runs in the frame: one level deeper.
                                let saved = if in_frame { self.scopes.pop() } else { None };
                                let r = self.lookup(&name, a.syntax());
                                if let Some(s) = saved {
                                    self.scopes.push(s);
                                }
                                let shift = u32::from(in_frame);
                                rc(match r? {
                                    Expr::Var(d, i) => Expr::Var(d + shift, i),
                                    Expr::WithVar(n, depths, pos) => Expr::WithVar(
                                        n,
                                        depths.into_iter().map(|d| d + shift).collect(),
                                        pos,
                                    ),
                                    other => other,
                                })
                            }
                        };
                        self.define(
                            def,
                            &[Key::Static(name)],
                            AttrValue::Expr(value),
                            a.syntax(),
                        )?;
                    }
                }
                ast::Entry::AttrpathValue(av) => {
                    let node = av.syntax();
                    let path = self.attrpath(av.attrpath(), node)?;
                    let Some(value) = av.value() else {
                        return Err(self.err(node, "syntax error: a value is missing"));
                    };
                    // `a = { … }; a.b = …;` merge: a set literal is kept as definitions.
                    let v = match &value {
                        ast::Expr::AttrSet(s) if s.rec_token().is_none() => {
                            let mut nested = self.attrs_def();
                            self.bindings(s, &mut nested, false)?;
                            AttrValue::Nested(Rc::new(nested))
                        }
                        ast::Expr::Lambda(l) if path.len() == 1 => {
                            let name = match &path[0] {
                                Key::Static(n) => Some(n.clone()),
                                Key::Dynamic(..) => None,
                            };
                            AttrValue::Expr(rc(Expr::Lambda(self.lambda(l, name)?)))
                        }
                        _ => AttrValue::Expr(self.expr(&value)?),
                    };
                    self.define(def, &path, v, node)?;
                }
            }
        }
        Ok(())
    }

    fn define(
        &mut self,
        def: &mut AttrsDef,
        path: &[Key],
        value: AttrValue,
        node: &SyntaxNode,
    ) -> Result<(), EvalError> {
        let Some((first, rest)) = path.split_first() else {
            return Err(self.err(node, "syntax error: an attribute name is missing"));
        };
        let value = if rest.is_empty() {
            value
        } else {
            let mut nested = self.attrs_def();
            self.define(&mut nested, rest, value, node)?;
            AttrValue::Nested(Rc::new(nested))
        };
        match first {
            Key::Dynamic(e, pos) => {
                def.dynamics.push((e.clone(), value, pos.clone()));
                Ok(())
            }
            Key::Static(name) => {
                // `positions` has every static name: a new one needs no search.
                if !def.positions.contains_key(name) {
                    def.positions.insert(name.clone(), self.pos(node));
                    def.statics.push((name.clone(), value));
                    return Ok(());
                }
                let existing = def.statics.iter_mut().find(|(n, _)| n == name);
                match existing {
                    None => {
                        def.statics.push((name.clone(), value));
                        Ok(())
                    }
                    Some((_, old)) => match (old, value) {
                        (AttrValue::Nested(a), AttrValue::Nested(b)) => {
                            let merged = Rc::get_mut(a).ok_or_else(|| {
                                self.err(node, format!("attribute '{name}' already defined"))
                            })?;
                            let b = Rc::try_unwrap(b).map_err(|_| {
                                self.err(node, format!("attribute '{name}' already defined"))
                            })?;
                            for (n, v) in b.statics {
                                self.define(merged, &[Key::Static(n)], v, node)?;
                            }
                            merged.dynamics.extend(b.dynamics);
                            for (n, p) in b.positions {
                                merged.positions.entry(n).or_insert(p);
                            }
                            merged.statics.sort_by(|a, b| a.0.cmp(&b.0));
                            Ok(())
                        }
                        _ => Err(self.err(node, format!("attribute '{name}' already defined"))),
                    },
                }
            }
        }
    }
}

fn ident_text(i: &ast::Ident) -> String {
    i.ident_token()
        .map(|t| t.text().to_string())
        .unwrap_or_else(|| i.syntax().text().to_string())
}

/// The name of an attribute written statically (`a`, `"a"`), if it is.
fn static_name(a: &ast::Attr) -> Option<Str> {
    match a {
        ast::Attr::Ident(i) => Some(ident_text(i).into()),
        ast::Attr::Str(s) => {
            let mut text = String::new();
            for p in s.parts() {
                match p {
                    InterpolPart::Literal(l) => text.push_str(l.syntax().text()),
                    InterpolPart::Interpolation(_) => return None,
                }
            }
            Some(decode_double(&text).into())
        }
        ast::Attr::Dynamic(_) => None,
    }
}
