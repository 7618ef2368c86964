//! From the parser's tree ([`super::parser`]) to the evaluator's expression tree: variables resolved to frame
//! slots, nested attribute definitions (`a.b = 1; a.c = 2;`) merged, strings decoded, paths made
//! absolute. Errors Nix reports before evaluating (an undefined variable, an attribute defined
//! twice, a duplicate function argument) are reported here, with their position.

use std::collections::BTreeMap;

use super::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::error::{EvalError, SourceMap};
use super::parser::{self, Attr, AttrPath, Entry, Kind, Node};
use super::strings::{Piece, decode_double, strip_indentation};
use super::value::{Str, Value};

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
    /// `a // b // c …` (three or more operands): one merge instead of one copy per `//`
    /// (`lib`'s top level is eleven). The positions are those the nested `//`s would have (where
    /// each one's left operand starts), in order.
    UpdateChain(Vec<Rc<Expr>>, Vec<Pos>),
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
    compile_as(text, src, base_dir, globals, false)
}

/// [`compile`]; `shipped` for text ncsh ships (its `lib`), whose sets keep no positions.
pub fn compile_as(
    text: &str,
    src: Rc<SourceMap>,
    base_dir: &Path,
    globals: &dyn Globals,
    shipped: bool,
) -> Result<Rc<Expr>, EvalError> {
    let tree = parser::parse(text).map_err(|e| syntax_error(&src, 0, e))?;
    let mut c = Compiler {
        src,
        base_dir: base_dir.to_path_buf(),
        globals,
        scopes: Vec::new(),
        base: 0,
        shipped,
    };
    c.expr(&tree)
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
    let tree = parser::parse(&text[start..end]).map_err(|e| syntax_error(&src, start, e))?;
    let mut c = Compiler {
        src,
        base_dir: base_dir.to_path_buf(),
        globals,
        scopes: vec![Scope::Frame(names.clone())],
        base: start as u32,
        shipped: true,
    };
    c.expr(&tree)
}

fn syntax_error(src: &SourceMap, base: usize, e: parser::SyntaxError) -> EvalError {
    // A token past the user's text is the wrapper's (a `--config` text is parsed inside
    // `{ … }`): to the user, their text ended there.
    let end = src.shift + src.text.len();
    if base + e.offset > end
        && let Some(wanted) = e.wanted
    {
        let at = src.text.trim_end().len() + src.shift;
        return src.err(
            at,
            format!("syntax error: unexpected end of the text, expected {wanted}"),
        );
    }
    src.err(base + e.offset, format!("syntax error: {}", e.message))
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

    fn pos(&self, at: u32) -> Pos {
        Pos {
            src: self.src.clone(),
            offset: self.base + at,
        }
    }

    fn err(&self, at: u32, msg: impl Into<String>) -> EvalError {
        self.pos(at).err(msg)
    }

    fn lookup(&self, name: &str, at: u32) -> Result<Expr, EvalError> {
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
            return Err(self.err(at, format!("undefined variable '{name}'")));
        }
        Ok(Expr::WithVar(name.into(), withs, self.pos(at)))
    }

    pub fn expr(&mut self, e: &Node) -> Result<Rc<Expr>, EvalError> {
        stacker::maybe_grow(64 * 1024, 1024 * 1024, || self.expr_inner(e))
    }

    fn expr_inner(&mut self, e: &Node) -> Result<Rc<Expr>, EvalError> {
        let at = e.at;
        Ok(match &e.kind {
            Kind::Paren(inner) => self.expr(inner)?,
            Kind::Int(text) => match text.parse::<i64>() {
                Ok(i) => rc(Expr::Const(Value::Int(i))),
                Err(_) => return Err(self.err(at, format!("invalid integer '{text}'"))),
            },
            Kind::Float(text) => match float(text) {
                Some(f) => rc(Expr::Const(Value::Float(f))),
                None => return Err(self.err(at, format!("invalid float '{text}'"))),
            },
            Kind::Uri(text) => rc(Expr::Const(Value::string(*text))),
            Kind::Ident(name) => rc(self.lookup(name, at)?),
            Kind::Str { indented, parts } => self.string(*indented, parts, at)?,
            Kind::Path(parts) => self.path(parts, at)?,
            Kind::SearchPath(text) => {
                return Err(self.err(
                    at,
                    format!(
                        "{text}: search paths (<…>) need NIX_PATH and a Nix host; import a file \
                         by its path instead"
                    ),
                ));
            }
            Kind::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(self.expr(item)?);
                }
                rc(Expr::List(out))
            }
            Kind::Attrs { rec: true, entries } => {
                let def = self.frame_bindings(entries, false)?;
                self.scopes.pop();
                rc(Expr::RecAttrs(def))
            }
            Kind::Attrs {
                rec: false,
                entries,
            } => {
                let mut def = self.attrs_def();
                self.bindings(entries, &mut def, false)?;
                rc(Expr::Attrs(Rc::new(def)))
            }
            Kind::Let(entries, body) => {
                let def = self.frame_bindings(entries, true)?;
                let body = self.expr(body);
                self.scopes.pop();
                rc(Expr::Let(def, body?))
            }
            Kind::LegacyLet(entries) => {
                // `let { a = 1; body = a; }` is `(rec { a = 1; body = a; }).body`.
                let def = self.frame_bindings(entries, false)?;
                self.scopes.pop();
                rc(Expr::Select(
                    rc(Expr::RecAttrs(def)),
                    vec![Key::Static("body".into())],
                    None,
                    self.pos(at),
                ))
            }
            Kind::Lambda(l) => rc(Expr::Lambda(self.lambda(l, None)?)),
            Kind::Apply(f, x) | Kind::Pipe(f, x) => {
                let f = self.expr(f)?;
                let x = self.expr(x)?;
                rc(Expr::Apply(f, x, self.pos(at)))
            }
            Kind::Select(target, path, default) => {
                let target = self.expr(target)?;
                let keys = self.attrpath(path)?;
                let default = match default {
                    Some(d) => Some(self.expr(d)?),
                    None => None,
                };
                rc(Expr::Select(target, keys, default, self.pos(path.at)))
            }
            Kind::HasAttr(target, path) => {
                let target = self.expr(target)?;
                let keys = self.attrpath(path)?;
                rc(Expr::HasAttr(target, keys))
            }
            Kind::If(c, t, f) => {
                let c = self.expr(c)?;
                let t = self.expr(t)?;
                let f = self.expr(f)?;
                rc(Expr::If(c, t, f, self.pos(at)))
            }
            Kind::Assert(c, b) => {
                let c = self.expr(c)?;
                let b = self.expr(b)?;
                rc(Expr::Assert(c, b, self.pos(at)))
            }
            Kind::With(ns, body) => {
                let ns = self.expr(ns)?;
                self.scopes.push(Scope::With);
                let body = self.expr(body);
                self.scopes.pop();
                rc(Expr::With(ns, body?))
            }
            Kind::Bin(op, l, r) => {
                let l = self.expr(l)?;
                let r = self.expr(r)?;
                let pos = self.pos(at);
                if *op != BinOp::Update {
                    return Ok(rc(Expr::Bin(*op, l, r, pos)));
                }
                // `//` groups to the right: `a // (b // c)` becomes one chain [a, b, c].
                match Rc::try_unwrap(r) {
                    Ok(Expr::Bin(BinOp::Update, b, c, inner)) => {
                        rc(Expr::UpdateChain(vec![l, b, c], vec![pos, inner]))
                    }
                    Ok(Expr::UpdateChain(mut operands, mut positions)) => {
                        operands.insert(0, l);
                        positions.insert(0, pos);
                        rc(Expr::UpdateChain(operands, positions))
                    }
                    Ok(r) => rc(Expr::Bin(BinOp::Update, l, rc(r), pos)),
                    Err(r) => rc(Expr::Bin(BinOp::Update, l, r, pos)),
                }
            }
            Kind::Not(x) => {
                let x = self.expr(x)?;
                rc(Expr::Not(x, self.pos(at)))
            }
            Kind::Neg(x) => {
                let x = self.expr(x)?;
                rc(Expr::Neg(x, self.pos(at)))
            }
            Kind::CurPos => {
                let loc = self.src.loc((self.base + at) as usize);
                let mut m = BTreeMap::new();
                m.insert(
                    Str::from("file"),
                    Value::string(loc.file.display().to_string()).into(),
                );
                m.insert(Str::from("line"), Value::Int(loc.line as i64).into());
                m.insert(Str::from("column"), Value::Int(loc.column as i64).into());
                rc(Expr::Const(Value::attrs(m)))
            }
        })
    }

    fn string(
        &mut self,
        indented: bool,
        parts: &[parser::Part],
        at: u32,
    ) -> Result<Rc<Expr>, EvalError> {
        let mut raw: Vec<Piece<Rc<Expr>>> = Vec::with_capacity(parts.len());
        for part in parts {
            match part {
                parser::Part::Text(t) => raw.push(Piece::Text(t.to_string())),
                parser::Part::Interp(e) => raw.push(Piece::Interp(self.expr(e)?)),
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
        Ok(rc(Expr::Str(out, self.pos(at))))
    }

    fn path(&mut self, parts: &[parser::Part], at: u32) -> Result<Rc<Expr>, EvalError> {
        let mut out: Vec<Part> = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            match part {
                parser::Part::Text(text) => {
                    let text = if i == 0 {
                        self.absolute(text, at)?
                    } else {
                        text.to_string()
                    };
                    out.push(Part::Lit(text.into()));
                }
                parser::Part::Interp(e) => out.push(Part::Interp(self.expr(e)?)),
            }
        }
        if let [Part::Lit(s)] = out.as_slice() {
            let p = canon_path(Path::new(&**s));
            return Ok(rc(Expr::Const(Value::Path(p.into()))));
        }
        Ok(rc(Expr::PathInterp(out, self.pos(at))))
    }

    /// The literal start of a path made absolute (`./x`, `~/x`, `/x`), keeping a trailing
    /// slash that an interpolation follows.
    fn absolute(&self, text: &str, at: u32) -> Result<String, EvalError> {
        if let Some(rest) = text.strip_prefix("~/") {
            let home = std::env::var("HOME")
                .map_err(|_| self.err(at, "a path starts with ~ but HOME is not set"))?;
            return Ok(format!("{home}/{rest}"));
        }
        if text.starts_with('/') {
            return Ok(text.to_string());
        }
        Ok(format!("{}/{text}", self.base_dir.display()))
    }

    fn attr_key(&mut self, attr: &Attr) -> Result<Key, EvalError> {
        match attr {
            Attr::Name(name, _) => Ok(Key::Static((*name).into())),
            Attr::Str(node) => {
                let e = self.expr(node)?;
                match &*e {
                    Expr::Const(Value::String(s)) => Ok(Key::Static(s.clone())),
                    _ => Ok(Key::Dynamic(e, self.pos(node.at))),
                }
            }
            Attr::Dynamic(e, at) => {
                let e = self.expr(e)?;
                Ok(Key::Dynamic(e, self.pos(*at)))
            }
        }
    }

    fn attrpath(&mut self, path: &AttrPath) -> Result<Vec<Key>, EvalError> {
        let mut keys = Vec::with_capacity(path.attrs.len());
        for a in &path.attrs {
            keys.push(self.attr_key(a)?);
        }
        Ok(keys)
    }

    fn lambda(
        &mut self,
        l: &parser::Lambda,
        name: Option<Str>,
    ) -> Result<Rc<LambdaDef>, EvalError> {
        let mut names: HashMap<Str, u32> = HashMap::default();
        let mut pattern = None;
        match &l.param {
            parser::Param::Ident(n) => {
                names.insert((*n).into(), 0);
            }
            parser::Param::Pattern {
                formals,
                ellipsis,
                bind,
            } => {
                for (i, (n, at, _)) in formals.iter().enumerate() {
                    if names.insert((*n).into(), i as u32).is_some() {
                        return Err(
                            self.err(*at, format!("duplicate formal function argument '{n}'"))
                        );
                    }
                }
                if let Some((n, at)) = bind
                    && names.insert((*n).into(), formals.len() as u32).is_some()
                {
                    return Err(self.err(*at, format!("duplicate formal function argument '{n}'")));
                }
                pattern = Some((formals, *ellipsis, bind.is_some()));
            }
        }
        self.scopes.push(Scope::Frame(Rc::new(names)));
        let result = (|| {
            let param = match pattern {
                None => Param::Ident,
                Some((formals, ellipsis, at)) => {
                    let mut out = Vec::with_capacity(formals.len());
                    for (n, _, d) in formals {
                        let d = match d {
                            Some(d) => Some(self.expr(d)?),
                            None => None,
                        };
                        out.push(((*n).into(), d));
                    }
                    Param::Pattern {
                        formals: out,
                        ellipsis,
                        at,
                    }
                }
            };
            let body = self.expr(&l.body)?;
            Ok(Rc::new(LambdaDef {
                param,
                body,
                pos: self.pos(l.at),
                name,
            }))
        })();
        self.scopes.pop();
        result
    }

    /// The static names an entry list defines at its top level (for a frame), in order of
    /// first appearance; `inherit`ed names included.
    fn top_names(&self, entries: &[Entry]) -> Vec<Str> {
        let mut out: Vec<Str> = Vec::new();
        let mut seen: super::HashSet<Str> = super::HashSet::default();
        let mut add = |a: &Attr| {
            if let Some(n) = static_name(a)
                && seen.insert(n.clone())
            {
                out.push(n);
            }
        };
        for entry in entries {
            match entry {
                Entry::Value { path, .. } => {
                    if let Some(first) = path.attrs.first() {
                        add(first);
                    }
                }
                Entry::Inherit { attrs, .. } => attrs.iter().for_each(&mut add),
            }
        }
        out
    }

    /// Compiles a `let` (or `rec` set when `is_let` is false): pushes the frame of its names
    /// (the caller pops it after compiling what else is in scope).
    fn frame_bindings(
        &mut self,
        entries: &[Entry],
        is_let: bool,
    ) -> Result<Rc<AttrsDef>, EvalError> {
        let names = self.top_names(entries);
        let frame: HashMap<Str, u32> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as u32))
            .collect();
        self.scopes.push(Scope::Frame(Rc::new(frame)));
        let mut def = self.attrs_def();
        let r = self.entries(entries, &mut def, true);
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
        let mut statics = Vec::with_capacity(names.len());
        for n in &names {
            if let Some(v) = by_name.remove(n) {
                statics.push((n.clone(), v));
            }
        }
        def.statics = statics;
        Ok(Rc::new(def))
    }

    fn bindings(
        &mut self,
        entries: &[Entry],
        def: &mut AttrsDef,
        in_frame: bool,
    ) -> Result<(), EvalError> {
        self.entries(entries, def, in_frame)?;
        def.statics.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(())
    }

    /// Adds `entries` to `def`. `in_frame`: the entries' own names are the innermost frame
    /// (`let`, `rec`), so `inherit x;` must look past it.
    fn entries(
        &mut self,
        entries: &[Entry],
        def: &mut AttrsDef,
        in_frame: bool,
    ) -> Result<(), EvalError> {
        for entry in entries {
            match entry {
                Entry::Inherit { from, attrs } => {
                    let from = match from {
                        Some(f) => Some(self.expr(f)?),
                        None => None,
                    };
                    for a in attrs {
                        let Some(name) = static_name(a) else {
                            return Err(
                                self.err(a.at(), "dynamic attributes are not allowed in inherit")
                            );
                        };
                        let value = match &from {
                            Some(f) => rc(Expr::Select(
                                f.clone(),
                                vec![Key::Static(name.clone())],
                                None,
                                self.pos(a.at()),
                            )),
                            None => {
                                // `inherit x;` in a `let` or `rec` means the x around it;
                                // the expression still runs in the frame: one level deeper.
                                let saved = if in_frame { self.scopes.pop() } else { None };
                                let r = self.lookup(&name, a.at());
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
                        self.define(def, &[Key::Static(name)], AttrValue::Expr(value), a.at())?;
                    }
                }
                Entry::Value { path, value } => {
                    let keys = self.attrpath(path)?;
                    // `a = { … }; a.b = …;` merge: a set literal is kept as definitions.
                    let v = match &value.kind {
                        Kind::Attrs {
                            rec: false,
                            entries,
                        } => {
                            let mut nested = self.attrs_def();
                            self.bindings(entries, &mut nested, false)?;
                            AttrValue::Nested(Rc::new(nested))
                        }
                        Kind::Lambda(l) if keys.len() == 1 => {
                            let name = match &keys[0] {
                                Key::Static(n) => Some(n.clone()),
                                Key::Dynamic(..) => None,
                            };
                            AttrValue::Expr(rc(Expr::Lambda(self.lambda(l, name)?)))
                        }
                        _ => AttrValue::Expr(self.expr(value)?),
                    };
                    self.define(def, &keys, v, path.at)?;
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
        at: u32,
    ) -> Result<(), EvalError> {
        let Some((first, rest)) = path.split_first() else {
            return Err(self.err(at, "syntax error: an attribute name is missing"));
        };
        let value = if rest.is_empty() {
            value
        } else {
            let mut nested = self.attrs_def();
            self.define(&mut nested, rest, value, at)?;
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
                    def.positions.insert(name.clone(), self.pos(at));
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
                                self.err(at, format!("attribute '{name}' already defined"))
                            })?;
                            let b = Rc::try_unwrap(b).map_err(|_| {
                                self.err(at, format!("attribute '{name}' already defined"))
                            })?;
                            for (n, v) in b.statics {
                                self.define(merged, &[Key::Static(n)], v, at)?;
                            }
                            merged.dynamics.extend(b.dynamics);
                            for (n, p) in b.positions {
                                merged.positions.entry(n).or_insert(p);
                            }
                            merged.statics.sort_by(|a, b| a.0.cmp(&b.0));
                            Ok(())
                        }
                        _ => Err(self.err(at, format!("attribute '{name}' already defined"))),
                    },
                }
            }
        }
    }
}

/// A float literal as Nix reads it (`1.`, `.5`, `1.5e3`).
fn float(text: &str) -> Option<f64> {
    let mut t = String::with_capacity(text.len() + 2);
    if text.starts_with('.') {
        t.push('0');
    }
    for (i, c) in text.char_indices() {
        t.push(c);
        // `1.` and `1.e3`: a digit after the point for Rust's parser.
        if c == '.' && !text[i + 1..].starts_with(|d: char| d.is_ascii_digit()) {
            t.push('0');
        }
    }
    t.parse::<f64>().ok()
}

/// The name of an attribute written statically (`a`, `"a"`), if it is.
fn static_name(a: &Attr) -> Option<Str> {
    match a {
        Attr::Name(n, _) => Some((*n).into()),
        Attr::Str(node) => {
            let Kind::Str { parts, .. } = &node.kind else {
                return None;
            };
            let mut text = String::new();
            for p in parts {
                match p {
                    parser::Part::Text(t) => text.push_str(t),
                    parser::Part::Interp(_) => return None,
                }
            }
            Some(decode_double(&text).into())
        }
        Attr::Dynamic(..) => None,
    }
}
