//! The lazy evaluator: expressions to values, forcing thunks on demand.

use std::collections::BTreeMap;

use super::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::builtins;
use super::compile::{
    self, AttrValue, AttrsDef, BinOp, Expr, Globals, Key, LambdaDef, Param, Part, Pos, canon_path,
};
use super::error::{ErrorKind, EvalError, Location, SourceMap};
use super::split::{self, Binding, Split};
use super::value::{Attrs, Closure, Env, PrimOpApp, Str, Thunk, ThunkState, Value, frame};

/// How deeply evaluation may recurse (function calls, forcing, nested operators) before it is
/// reported as an error instead of exhausting memory. Nix's own default `max-call-depth` is
/// 10000.
const MAX_DEPTH: usize = 10_000;

/// The largest file `import` and `readFile` read.
const MAX_FILE: u64 = 64 << 20;

/// The evaluator's state: global names, imported files, recursion depth.
pub struct Evaluator {
    /// The thread's [`shared_globals`] until [`Evaluator::set_global`] changes them.
    globals: Rc<HashMap<Str, Value>>,
    imports: HashMap<PathBuf, Value>,
    /// Directories whose files `import` refuses with a message (see [`Evaluator::reserve`]).
    reserved: Vec<(PathBuf, String)>,
    depth: usize,
    /// With [`Evaluator::track_positions`]: the definitions each set literal was made from
    /// (by the address of its attributes, kept alive here), for [`Evaluator::attr_pos`].
    origins: Option<Origins>,
    /// Files the evaluated code asks for (`pkgs.writeText` and friends): path → (contents,
    /// executable). The native builder adds them to the generation.
    pub written: Written,
    /// The frames of the shipped texts evaluated (`lib`) and not kept for the thread (see
    /// `SHIPPED_VALUES`), for [`Evaluator::release`].
    shipped: Vec<Env>,
    /// The names made by sets' [`LOOKUP_ATTR`] functions so far, by the address of the
    /// function's thunk (kept alive here, so the address is not reused): each name is made
    /// once per evaluator.
    made: HashMap<usize, (Thunk, HashMap<Str, Option<Thunk>>)>,
}

/// The attribute by which a set makes the names it does not hold, when one is looked up: a
/// function of the name that gives `[ ]` (no such attribute) or `[ value ]` (the value
/// lazy). `pkgs` has one: the host's programs are too many to make a package of each in every
/// evaluation, and a configuration names a handful. What lists a set's names
/// (`attrNames`, `//`, …) sees only the names it holds.
pub const LOOKUP_ATTR: &str = "__ncshLookup";

thread_local! {
    /// The built-in globals, made once per thread: every evaluator starts from them.
    static GLOBALS: Rc<HashMap<Str, Value>> = Rc::new(builtins::globals());
    /// The bindings of shipped texts compiled so far in this thread, by [`Shipped::key`] and
    /// span; kept only for evaluators with the [`shared_globals`] (what a name is depends on
    /// the globals).
    static SHIPPED_EXPRS: std::cell::RefCell<HashMap<(u64, usize, usize), Rc<Expr>>> =
        std::cell::RefCell::new(HashMap::default());
    /// Files imported in this thread, compiled: path → (the text compiled, its expression).
    /// Used again only while the file holds the same text, and only by evaluators with the
    /// [`shared_globals`]: the REPL, `apply` and the test driver evaluate the same modules
    /// again and again, as Nix keeps a parsed file for the rest of its evaluation.
    static FILE_EXPRS: std::cell::RefCell<HashMap<PathBuf, CompiledFile>> =
        std::cell::RefCell::new(HashMap::default());
    /// The values of shipped texts (ncsh's `lib`) evaluated in this thread, by
    /// [`Shipped::key`], for evaluators with the [`shared_globals`]: a shipped text is pure
    /// (no file read, no position kept: see `AttrsDef::tracked`), so what one evaluation
    /// forced of it (`lib.mkIf`, `lib.types`, …) is there for the next; never released.
    static SHIPPED_VALUES: std::cell::RefCell<HashMap<u64, Value>> =
        std::cell::RefCell::new(HashMap::default());
}

/// A file's text and the expression compiled from it.
type CompiledFile = (Rc<str>, Rc<Expr>);

/// At most this many compiled files are kept per thread (a REPL may import many).
const MAX_KEPT_FILES: usize = 256;

/// The built-in globals (`builtins`, `map`, `toString`, …) as this thread made them once:
/// they are values without state, and making them was a thirtieth of an evaluation.
fn shared_globals() -> Rc<HashMap<Str, Value>> {
    GLOBALS.with(Rc::clone)
}

/// Set literals by the address of their attributes: the attributes (kept alive, so the address
/// is not reused) and the definitions they were made from.
type Origins = HashMap<usize, (Rc<Attrs>, Rc<AttrsDef>)>;

/// Files an evaluation asks for: container path → (contents, executable).
pub type Written = BTreeMap<String, (String, bool)>;

impl Globals for HashMap<Str, Value> {
    fn global(&self, name: &str) -> Option<Value> {
        self.get(name).cloned()
    }
}

impl Default for Evaluator {
    fn default() -> Self {
        Self::new()
    }
}

/// An error at `pos`, or without a position.
pub(crate) fn err_at(pos: Option<&Pos>, msg: impl Into<String>) -> EvalError {
    match pos {
        Some(p) => p.err(msg),
        None => EvalError::at(&Location::new("<eval>", 0, 0), msg),
    }
}

impl Evaluator {
    pub fn new() -> Self {
        Evaluator {
            globals: shared_globals(),
            imports: HashMap::default(),
            reserved: Vec::new(),
            depth: 0,
            origins: None,
            written: BTreeMap::new(),
            shipped: Vec::new(),
            made: HashMap::default(),
        }
    }

    /// The attribute `name` of `attrs`: its own, else the one its [`LOOKUP_ATTR`] makes. Every
    /// lookup of a name the program chose goes through here (`.`, `?`, `or`, `with`, `inherit
    /// (s)`, a set pattern, `getAttr`, `hasAttr`).
    pub fn attr(&mut self, attrs: &Attrs, name: &str) -> Result<Option<Thunk>, EvalError> {
        if let Some(t) = attrs.get(name) {
            return Ok(Some(t.clone()));
        }
        let Some(lookup) = attrs.get(LOOKUP_ATTR) else {
            return Ok(None);
        };
        let key = Rc::as_ptr(&lookup.0) as usize;
        if let Some(found) = self.made.get(&key).and_then(|(_, made)| made.get(name)) {
            return Ok(found.clone());
        }
        let lookup = lookup.clone();
        let f = self.force(&lookup)?;
        let made = self.apply(f, Thunk::value(Value::string(name)), None)?;
        let found = match made {
            Value::List(l) if l.len() <= 1 => l.first().cloned(),
            other => {
                return Err(err_at(
                    None,
                    format!(
                        "{LOOKUP_ATTR} gave {} for ‘{name}’ while [ ] or [ value ] was expected",
                        other.describe()
                    ),
                ));
            }
        };
        self.made
            .entry(key)
            .or_insert_with(|| (lookup, HashMap::default()))
            .1
            .insert(name.into(), found.clone());
        Ok(found)
    }

    /// Breaks the reference cycles of what this evaluator made (the frames of `lib`, whose
    /// functions hold the frame they are in; the files imported; the set literals kept for
    /// positions), so that they are freed: for an evaluation whose values are not used after
    /// it (the native builder's, which keeps plain data). Values of it used afterwards may
    /// have lost what they refer to.
    pub fn release(&mut self) {
        for env in self.shipped.drain(..) {
            let slots = std::mem::take(&mut *env.slots.borrow_mut());
            for t in &slots {
                t.release();
            }
        }
        for (_, v) in self.imports.drain() {
            if let Value::Attrs(a) = v {
                a.values().for_each(Thunk::release);
            }
        }
        if let Some(origins) = &mut self.origins {
            origins.clear();
        }
        for (_, (lookup, made)) in self.made.drain() {
            lookup.release();
            made.values().flatten().for_each(Thunk::release);
        }
    }

    /// `import` of `path` gives `value` without reading a file.
    pub fn preload(&mut self, path: &Path, value: Value) {
        self.imports.insert(canon_path(path), value);
    }

    /// `import` of a file below `dir` (not preloaded) fails: "PATH: `why`".
    pub fn reserve(&mut self, dir: &Path, why: &str) {
        self.reserved.push((canon_path(dir), why.to_string()));
    }

    /// Remember where the attributes of set literals are defined (for messages about them).
    pub fn track_positions(&mut self) {
        self.origins.get_or_insert_with(HashMap::default);
    }

    /// Where attribute `name` of `attrs` was defined, if `attrs` is a set literal (and
    /// positions are tracked).
    pub fn attr_pos(&self, attrs: &Rc<Attrs>, name: &str) -> Option<Pos> {
        let origins = self.origins.as_ref()?;
        let (_, def) = origins.get(&(Rc::as_ptr(attrs) as usize))?;
        def.positions.get(name).cloned()
    }

    fn literal(&mut self, attrs: Attrs, def: &Rc<AttrsDef>) -> Value {
        let attrs = Rc::new(attrs);
        if def.tracked
            && let Some(origins) = &mut self.origins
        {
            origins.insert(Rc::as_ptr(&attrs) as usize, (attrs.clone(), def.clone()));
        }
        Value::Attrs(attrs)
    }

    /// Whether this evaluator has the globals every evaluator of this thread starts from
    /// (no [`Evaluator::set_global`]): what it makes of shipped text may be kept for the
    /// thread's next evaluations.
    pub fn has_shared_globals(&self) -> bool {
        GLOBALS.with(|g| Rc::ptr_eq(g, &self.globals))
    }

    /// Adds (or replaces) a global name, visible to code compiled afterwards.
    pub fn set_global(&mut self, name: &str, value: Value) {
        Rc::make_mut(&mut self.globals).insert(name.into(), value);
    }

    /// Compiles `text` (named `file` in messages; `shift` bytes of it are a wrapper the user did
    /// not write) with relative paths against `base_dir`, and evaluates it to weak head normal
    /// form.
    pub fn eval_text(
        &mut self,
        text: &str,
        src: SourceMap,
        base_dir: &Path,
    ) -> Result<Value, EvalError> {
        let expr = compile::compile(text, Rc::new(src), base_dir, &*self.globals)?;
        self.eval(&expr, &frame(Vec::new(), None))
    }

    /// [`Evaluator::eval_text`] of text ncsh ships (its `lib`), without the nesting scan that
    /// protects the parser from hostile input.
    pub fn eval_shipped(
        &mut self,
        text: &str,
        src: SourceMap,
        base_dir: &Path,
    ) -> Result<Value, EvalError> {
        let expr = compile::compile_as(text, Rc::new(src), base_dir, &*self.globals, true)?;
        self.eval(&expr, &frame(Vec::new(), None))
    }

    /// [`Evaluator::eval_shipped`] of a `let … in …` text whose bindings are parsed and
    /// compiled only when first used (ncsh's `lib` is large; a configuration uses a little of
    /// it), and so are the values of the plain sets bound there (`lib.types`). Falls back to
    /// compiling it whole when the text is not of that simple form.
    pub fn eval_shipped_lazily(
        &mut self,
        text: &str,
        src: SourceMap,
        base_dir: &Path,
    ) -> Result<Value, EvalError> {
        let split = split::split_let(text);
        self.eval_shipped_split(text, split.as_ref(), src, base_dir)
    }

    /// [`Evaluator::eval_shipped_lazily`] with the text's split already made (at build time,
    /// for ncsh's `lib`: see build.rs). With the shared globals, the value is made once per
    /// thread and given again (`SHIPPED_VALUES`).
    pub fn eval_shipped_split(
        &mut self,
        text: &str,
        split: Option<&Split>,
        src: SourceMap,
        base_dir: &Path,
    ) -> Result<Value, EvalError> {
        let Some(split) = split else {
            return self.eval_shipped(text, src, base_dir);
        };
        let key = {
            use std::hash::{Hash, Hasher};
            let mut h = rustc_hash::FxHasher::default();
            (text, &src.file, src.shift, base_dir).hash(&mut h);
            h.finish()
        };
        let shared = self.has_shared_globals();
        if shared && let Some(v) = SHIPPED_VALUES.with_borrow(|m| m.get(&key).cloned()) {
            return Ok(v);
        }
        let mut names: HashMap<Str, u32> = HashMap::default();
        for b in &split.bindings {
            let new: Vec<&str> = match b {
                Binding::Value { name, .. } => vec![name],
                Binding::Inherit { names, .. } => names.iter().map(String::as_str).collect(),
            };
            for n in new {
                let slot = names.len() as u32;
                names.insert(n.into(), slot);
            }
        }
        let shipped = Rc::new(Shipped {
            key,
            text: text.into(),
            src: Rc::new(src),
            dir: base_dir.into(),
            names: Rc::new(names),
            env: frame(Vec::new(), None),
        });
        let mut slots = Vec::with_capacity(shipped.names.len());
        for b in &split.bindings {
            slots.extend(
                shipped
                    .binding(b, true, &self.globals)
                    .into_iter()
                    .map(|(_, t)| t),
            );
        }
        *shipped.env.slots.borrow_mut() = slots;
        let value = shipped
            .compiled(self, split.body)
            .and_then(|body| self.eval(&body, &shipped.env));
        match value {
            Ok(v) if shared => {
                SHIPPED_VALUES.with_borrow_mut(|m| m.insert(key, v.clone()));
                Ok(v)
            }
            other => {
                self.shipped.push(shipped.env.clone());
                other
            }
        }
    }

    /// `import path`: the file's value, evaluated once per file.
    pub fn import(&mut self, path: &Path, pos: Option<&Pos>) -> Result<Value, EvalError> {
        let mut target = canon_path(path);
        if target.is_dir() {
            target.push("default.nix");
        }
        if let Some(v) = self.imports.get(&target) {
            return Ok(v.clone());
        }
        if let Some((_, why)) = self.reserved.iter().find(|(d, _)| target.starts_with(d)) {
            return Err(err_at(pos, format!("{}: {why}", target.display())));
        }
        let text = read_file(&target, pos)?;
        let expr = self.compile_file(&target, text)?;
        let v = self.eval(&expr, &frame(Vec::new(), None))?;
        self.imports.insert(target, v.clone());
        Ok(v)
    }

    /// The value of the file at `path` (absolute) holding `text`, compiled as
    /// [`Evaluator::import`] compiles a file, but not kept as an import of this evaluator.
    pub fn eval_file(&mut self, path: &Path, text: String) -> Result<Value, EvalError> {
        let expr = self.compile_file(path, text)?;
        self.eval(&expr, &frame(Vec::new(), None))
    }

    /// The compiled expression of the file at `target` holding `text`; compiled again only
    /// when this thread has not compiled that text there (see [`FILE_EXPRS`]).
    fn compile_file(&self, target: &Path, text: String) -> Result<Rc<Expr>, EvalError> {
        let shared = self.has_shared_globals();
        if shared
            && let Some(expr) = FILE_EXPRS.with_borrow(|m| {
                m.get(target)
                    .filter(|(kept, _)| **kept == *text)
                    .map(|(_, e)| e.clone())
            })
        {
            return Ok(expr);
        }
        let dir = target.parent().unwrap_or(Path::new("/")).to_path_buf();
        let src = SourceMap::new(target, &text, 0);
        let expr = compile::compile(&text, Rc::new(src), &dir, &*self.globals)?;
        if shared {
            FILE_EXPRS.with_borrow_mut(|m| {
                if m.len() >= MAX_KEPT_FILES && !m.contains_key(target) {
                    m.clear();
                }
                m.insert(target.to_path_buf(), (Rc::from(text), expr.clone()));
            });
        }
        Ok(expr)
    }

    fn enter(&mut self, pos: Option<&Pos>) -> Result<(), EvalError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            self.depth -= 1;
            return Err(err_at(
                pos,
                format!(
                    "evaluation nested more than {MAX_DEPTH} deep (infinite recursion in a \
                     function?)"
                ),
            ));
        }
        Ok(())
    }

    /// The value of `thunk`, computed now if it was not yet.
    pub fn force(&mut self, thunk: &Thunk) -> Result<Value, EvalError> {
        let state = {
            let mut cell = thunk.0.borrow_mut();
            match &*cell {
                ThunkState::Done(v) => return Ok(v.clone()),
                ThunkState::Blackhole => {
                    return Err(err_at(None, "infinite recursion encountered"));
                }
                ThunkState::Failed(e) => return Err(e.clone()),
                _ => std::mem::replace(&mut *cell, ThunkState::Blackhole),
            }
        };
        let result = match state {
            ThunkState::Pending(expr, env) => {
                let r = self
                    .eval(&expr, &env)
                    .map_err(|e| locate_recursion(e, &expr));
                if r.is_err() {
                    // Restore, so that forcing again (after tryEval) fails the same way.
                    *thunk.0.borrow_mut() = ThunkState::Pending(expr, env);
                }
                r
            }
            ThunkState::Apply(f, arg) => {
                let r = self.apply(f.clone(), arg.clone(), None);
                if r.is_err() {
                    *thunk.0.borrow_mut() = ThunkState::Apply(f, arg);
                }
                r
            }
            ThunkState::Native(f) => {
                let r = f(self);
                if let Err(e) = &r {
                    *thunk.0.borrow_mut() = ThunkState::Failed(e.clone());
                }
                r
            }
            ThunkState::Failed(e) => {
                *thunk.0.borrow_mut() = ThunkState::Failed(e.clone());
                Err(e)
            }
            ThunkState::Done(v) => Ok(v),
            ThunkState::Blackhole => Err(err_at(None, "infinite recursion encountered")),
        };
        if let Ok(v) = &result {
            *thunk.0.borrow_mut() = ThunkState::Done(v.clone());
        }
        result
    }

    /// A thunk for `expr` in `env`; variables and constants are shared, not wrapped.
    pub(crate) fn thunk(&self, expr: &Rc<Expr>, env: &Env) -> Thunk {
        match &**expr {
            Expr::Const(v) => Thunk::value(v.clone()),
            Expr::Var(depth, index) => slot(env, *depth, *index),
            Expr::Lambda(def) => Thunk::value(Value::Lambda(Rc::new(Closure {
                def: def.clone(),
                env: env.clone(),
            }))),
            _ => Thunk::pending(expr.clone(), env.clone()),
        }
    }

    pub(crate) fn eval(&mut self, expr: &Rc<Expr>, env: &Env) -> Result<Value, EvalError> {
        self.enter(None)?;
        let r = stacker::maybe_grow(64 * 1024, 1024 * 1024, || self.eval_inner(expr, env));
        self.depth -= 1;
        r
    }

    fn eval_inner(&mut self, expr: &Rc<Expr>, env: &Env) -> Result<Value, EvalError> {
        match &**expr {
            Expr::Const(v) => Ok(v.clone()),
            Expr::Var(depth, index) => {
                let t = slot(env, *depth, *index);
                self.force(&t)
            }
            Expr::WithVar(name, withs, pos) => {
                let mut why = None;
                for depth in withs {
                    let ns = slot(env, *depth, 0);
                    let ns = self.force(&ns)?;
                    let Value::Attrs(attrs) = ns else {
                        return Err(pos.err(format!(
                            "the namespace of 'with' is {} while a set was expected",
                            ns.describe()
                        )));
                    };
                    if let Some(t) = self.attr(&attrs, name)? {
                        return self.force(&t);
                    }
                    // A namespace may say what a missing name means (`with pkgs;`).
                    if why.is_none() {
                        why = attrs.get("__ncshMissing").and_then(Thunk::get);
                    }
                }
                Err(pos.err(match why {
                    Some(Value::String(why)) => {
                        format!("undefined variable '{name}' (nor in the 'with' around it: {why})")
                    }
                    _ => format!("undefined variable '{name}'"),
                }))
            }
            Expr::Str(parts, pos) => Ok(Value::string(self.interpolate(parts, env, pos)?)),
            Expr::PathInterp(parts, pos) => {
                let out = self.interpolate(parts, env, pos)?;
                Ok(Value::Path(canon_path(Path::new(&out)).into()))
            }
            Expr::List(items) => Ok(Value::list(
                items.iter().map(|e| self.thunk(e, env)).collect(),
            )),
            Expr::Attrs(def) => {
                let attrs = self.attrs(def, env)?;
                Ok(self.literal(attrs, def))
            }
            Expr::RecAttrs(def) => {
                let inner = self.let_frame(def, env);
                let mut attrs: Attrs = BTreeMap::new();
                {
                    let slots = inner.slots.borrow();
                    for ((name, _), t) in def.statics.iter().zip(slots.iter()) {
                        attrs.insert(name.clone(), t.clone());
                    }
                }
                self.dynamic_attrs(def, &inner, &mut attrs)?;
                Ok(self.literal(attrs, def))
            }
            Expr::Let(def, body) => {
                let inner = self.let_frame(def, env);
                self.eval(body, &inner)
            }
            Expr::Lambda(def) => Ok(Value::Lambda(Rc::new(Closure {
                def: def.clone(),
                env: env.clone(),
            }))),
            Expr::Apply(f, x, pos) => {
                let f = self.eval(f, env)?;
                let x = self.thunk(x, env);
                self.apply(f, x, Some(pos))
            }
            Expr::Select(target, path, default, pos) => {
                let mut v = self.eval(target, env)?;
                for key in path {
                    let name = self.key_name(key, env)?;
                    let found = match &v {
                        Value::Attrs(a) => self.attr(a, &name).map_err(|e| locate(e, pos))?,
                        _ if default.is_some() => None,
                        other => {
                            return Err(pos.err(format!(
                                "cannot select attribute '{name}': the value is {} while a set \
                                 was expected",
                                other.describe()
                            )));
                        }
                    };
                    match found {
                        // An error without a position (from a built-in or a value made in
                        // Rust, like a package of `pkgs`) gets the selection's.
                        Some(t) => v = self.force(&t).map_err(|e| locate(e, pos))?,
                        None => {
                            return match default {
                                Some(d) => self.eval(d, env),
                                None => Err(pos.err(missing_attr(&name, &v))),
                            };
                        }
                    }
                }
                Ok(v)
            }
            Expr::HasAttr(target, path) => {
                let mut v = self.eval(target, env)?;
                for (i, key) in path.iter().enumerate() {
                    let name = self.key_name(key, env)?;
                    let found = match &v {
                        Value::Attrs(a) => self.attr(a, &name)?,
                        _ => None,
                    };
                    match found {
                        // The last attribute's value is not needed, so not forced.
                        Some(_) if i + 1 == path.len() => return Ok(Value::Bool(true)),
                        Some(t) => v = self.force(&t)?,
                        None => return Ok(Value::Bool(false)),
                    }
                }
                Ok(Value::Bool(true))
            }
            Expr::If(c, t, f, pos) => {
                let c = self.eval(c, env)?;
                match c {
                    Value::Bool(true) => self.eval(t, env),
                    Value::Bool(false) => self.eval(f, env),
                    other => Err(pos.err(format!(
                        "the condition of 'if' is {} while a Boolean was expected",
                        other.describe()
                    ))),
                }
            }
            Expr::Assert(c, body, pos) => match self.eval(c, env)? {
                Value::Bool(true) => self.eval(body, env),
                Value::Bool(false) => Err(pos.err("assertion failed").with_kind(ErrorKind::Assert)),
                other => Err(pos.err(format!(
                    "the condition of 'assert' is {} while a Boolean was expected",
                    other.describe()
                ))),
            },
            Expr::With(ns, body) => {
                let ns = self.thunk(ns, env);
                let inner = frame(vec![ns], Some(env.clone()));
                self.eval(body, &inner)
            }
            Expr::Bin(op, l, r, pos) => self.binop(*op, l, r, env, pos),
            Expr::UpdateChain(operands, positions) => self.update_chain(operands, positions, env),
            Expr::Not(x, pos) => match self.eval(x, env)? {
                Value::Bool(b) => Ok(Value::Bool(!b)),
                other => Err(pos.err(format!(
                    "the operand of '!' is {} while a Boolean was expected",
                    other.describe()
                ))),
            },
            Expr::Neg(x, pos) => match self.eval(x, env)? {
                Value::Int(i) => Ok(Value::Int(i.wrapping_neg())),
                Value::Float(f) => Ok(Value::Float(-f)),
                other => Err(pos.err(format!("cannot negate {}", other.describe()))),
            },
        }
    }

    /// The text of a string or path with interpolations.
    fn interpolate(&mut self, parts: &[Part], env: &Env, pos: &Pos) -> Result<String, EvalError> {
        let mut out = String::new();
        for part in parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Interp(e) => {
                    let v = self.eval(e, env)?;
                    out.push_str(&self.coerce_to_string(v, false, Some(pos))?);
                }
            }
        }
        Ok(out)
    }

    fn key_name(&mut self, key: &Key, env: &Env) -> Result<Str, EvalError> {
        match key {
            Key::Static(s) => Ok(s.clone()),
            Key::Dynamic(e, pos) => {
                let v = self.eval(e, env)?;
                match v {
                    Value::String(s) => Ok(s),
                    other => Err(pos.err(format!(
                        "an attribute name is {} while a string was expected",
                        other.describe()
                    ))),
                }
            }
        }
    }

    /// The frame of a `let` or `rec` set: its static names, each a thunk in the frame itself.
    fn let_frame(&mut self, def: &Rc<AttrsDef>, env: &Env) -> Env {
        let inner = frame(Vec::with_capacity(def.statics.len()), Some(env.clone()));
        let slots: Vec<Thunk> = def
            .statics
            .iter()
            .map(|(_, v)| self.attr_thunk(v, &inner))
            .collect();
        *inner.slots.borrow_mut() = slots;
        inner
    }

    /// A thunk for a definition of a frame being built (`env`'s slots are not set yet, so a
    /// variable is not resolved now but when forced).
    fn attr_thunk(&self, v: &AttrValue, env: &Env) -> Thunk {
        match v {
            AttrValue::Expr(e) if matches!(**e, Expr::Var(..)) => {
                Thunk::pending(e.clone(), env.clone())
            }
            AttrValue::Expr(e) => self.thunk(e, env),
            AttrValue::Nested(def) => {
                Thunk::pending(Rc::new(Expr::Attrs(def.clone())), env.clone())
            }
        }
    }

    /// A non-recursive set's attributes.
    fn attrs(&mut self, def: &Rc<AttrsDef>, env: &Env) -> Result<Attrs, EvalError> {
        let mut attrs: Attrs = def
            .statics
            .iter()
            .map(|(name, v)| (name.clone(), self.attr_thunk(v, env)))
            .collect();
        self.dynamic_attrs(def, env, &mut attrs)?;
        Ok(attrs)
    }

    fn dynamic_attrs(
        &mut self,
        def: &Rc<AttrsDef>,
        env: &Env,
        attrs: &mut Attrs,
    ) -> Result<(), EvalError> {
        for (name, v, pos) in &def.dynamics {
            let name = match self.eval(name, env)? {
                Value::Null => continue,
                Value::String(s) => s,
                other => {
                    return Err(pos.err(format!(
                        "a dynamic attribute name is {} while a string was expected",
                        other.describe()
                    )));
                }
            };
            if attrs.contains_key(&name) {
                return Err(pos.err(format!("dynamic attribute '{name}' already defined")));
            }
            let t = self.attr_thunk(v, env);
            attrs.insert(name, t);
        }
        Ok(())
    }

    /// Calls `f` with `arg`.
    pub fn apply(&mut self, f: Value, arg: Thunk, pos: Option<&Pos>) -> Result<Value, EvalError> {
        self.enter(pos)?;
        let r = stacker::maybe_grow(64 * 1024, 1024 * 1024, || self.apply_inner(f, arg, pos));
        self.depth -= 1;
        r
    }

    fn apply_inner(&mut self, f: Value, arg: Thunk, pos: Option<&Pos>) -> Result<Value, EvalError> {
        match f {
            Value::Lambda(c) => self.call_lambda(&c, arg, pos),
            Value::PrimOp(p) => {
                let mut args = p.args.clone();
                args.push(arg);
                if args.len() == p.op.arity {
                    (p.op.run)(self, &args).map_err(|e| {
                        if e.line == 0
                            && let Some(pos) = pos
                        {
                            let mut located = pos.err(e.message);
                            located.kind = e.kind;
                            located
                        } else {
                            e
                        }
                    })
                } else {
                    Ok(Value::PrimOp(Rc::new(PrimOpApp { op: p.op, args })))
                }
            }
            Value::Attrs(a) if a.contains_key("__functor") => {
                let functor = a
                    .get("__functor")
                    .cloned()
                    .unwrap_or_else(|| Value::Null.into());
                let functor = self.force(&functor)?;
                let with_self = self.apply(functor, Value::Attrs(a).into(), pos)?;
                self.apply(with_self, arg, pos)
            }
            other => Err(err_at(
                pos,
                format!(
                    "attempt to call something which is not a function but {}",
                    other.describe()
                ),
            )),
        }
    }

    fn call_lambda(
        &mut self,
        c: &Closure,
        arg: Thunk,
        pos: Option<&Pos>,
    ) -> Result<Value, EvalError> {
        let def: &LambdaDef = &c.def;
        let inner = match &def.param {
            Param::Ident => frame(vec![arg], Some(c.env.clone())),
            Param::Pattern {
                formals,
                ellipsis,
                at,
            } => {
                let v = self.force(&arg)?;
                let Value::Attrs(given) = v else {
                    return Err(err_at(
                        pos,
                        format!(
                            "{} called with {} while a set was expected",
                            lambda_name(def),
                            v.describe()
                        ),
                    ));
                };
                if !ellipsis {
                    for name in given.keys() {
                        if !formals.iter().any(|(f, _)| f == name) {
                            return Err(err_at(
                                pos,
                                format!(
                                    "{} called with unexpected argument '{name}'",
                                    lambda_name(def)
                                ),
                            )
                            .also_at(&def.pos));
                        }
                    }
                }
                let inner = frame(Vec::with_capacity(formals.len() + 1), Some(c.env.clone()));
                let mut slots = Vec::with_capacity(formals.len() + 1);
                for (name, default) in formals {
                    match (self.attr(&given, name)?, default) {
                        (Some(t), _) => slots.push(t),
                        (None, Some(d)) => slots.push(Thunk::pending(d.clone(), inner.clone())),
                        (None, None) => {
                            return Err(err_at(
                                pos,
                                format!(
                                    "{} called without required argument '{name}'",
                                    lambda_name(def)
                                ),
                            )
                            .also_at(&def.pos));
                        }
                    }
                }
                if *at {
                    slots.push(Thunk::value(Value::Attrs(given)));
                }
                *inner.slots.borrow_mut() = slots;
                inner
            }
        };
        self.eval(&def.body, &inner)
    }

    fn bool_operand(
        &mut self,
        e: &Rc<Expr>,
        env: &Env,
        pos: &Pos,
        op: &str,
    ) -> Result<bool, EvalError> {
        match self.eval(e, env)? {
            Value::Bool(b) => Ok(b),
            other => Err(pos.err(format!(
                "an operand of '{op}' is {} while a Boolean was expected",
                other.describe()
            ))),
        }
    }

    fn binop(
        &mut self,
        op: BinOp,
        l: &Rc<Expr>,
        r: &Rc<Expr>,
        env: &Env,
        pos: &Pos,
    ) -> Result<Value, EvalError> {
        match op {
            BinOp::And => Ok(Value::Bool(
                self.bool_operand(l, env, pos, "&&")? && self.bool_operand(r, env, pos, "&&")?,
            )),
            BinOp::Or => Ok(Value::Bool(
                self.bool_operand(l, env, pos, "||")? || self.bool_operand(r, env, pos, "||")?,
            )),
            BinOp::Implication => Ok(Value::Bool(
                !self.bool_operand(l, env, pos, "->")? || self.bool_operand(r, env, pos, "->")?,
            )),
            _ => {
                let a = self.eval(l, env)?;
                let b = self.eval(r, env)?;
                self.binop_values(op, a, b, Some(pos))
            }
        }
    }

    /// `a // b // c …`: the operands evaluated from the left, then checked from the right as
    /// nested `//`s would check them (the same errors), and merged once.
    fn update_chain(
        &mut self,
        operands: &[Rc<Expr>],
        positions: &[Pos],
        env: &Env,
    ) -> Result<Value, EvalError> {
        let values = operands
            .iter()
            .map(|e| self.eval(e, env))
            .collect::<Result<Vec<_>, _>>()?;
        let mut sets = Vec::with_capacity(values.len());
        for (i, v) in values.iter().enumerate().rev() {
            match v {
                Value::Attrs(a) => sets.push(a.clone()),
                other => {
                    // The right side of the `//` before it: the operand after it, or the
                    // set the operands after it make.
                    let (pos, left, right) = if i + 1 == values.len() {
                        (
                            &positions[i - 1],
                            values[i - 1].describe(),
                            other.describe(),
                        )
                    } else {
                        (&positions[i], other.describe(), "a set")
                    };
                    return Err(pos.err(format!(
                        "cannot update {left} with {right} using '//' (sets only)"
                    )));
                }
            }
        }
        // Right to left: the right-most set wins a name.
        let mut sets = sets.into_iter().filter(|s| !s.is_empty());
        let Some(first) = sets.next() else {
            return Ok(Value::Attrs(Rc::new(Attrs::new())));
        };
        let mut rest = sets.peekable();
        if rest.peek().is_none() {
            return Ok(Value::Attrs(first));
        }
        let mut merged: Vec<(Str, Thunk)> =
            first.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for lower in rest {
            merged = merge_sorted(&lower, merged.into_iter());
        }
        Ok(Value::attrs(merged.into_iter().collect()))
    }

    pub(crate) fn binop_values(
        &mut self,
        op: BinOp,
        a: Value,
        b: Value,
        pos: Option<&Pos>,
    ) -> Result<Value, EvalError> {
        use Value::*;
        match op {
            BinOp::Eq => Ok(Bool(self.equal(&a, &b)?)),
            BinOp::NotEq => Ok(Bool(!self.equal(&a, &b)?)),
            BinOp::Less => Ok(Bool(self.less(&a, &b, pos)?)),
            BinOp::More => Ok(Bool(self.less(&b, &a, pos)?)),
            BinOp::LessEq => Ok(Bool(!self.less(&b, &a, pos)?)),
            BinOp::MoreEq => Ok(Bool(!self.less(&a, &b, pos)?)),
            BinOp::Concat => match (a, b) {
                (List(x), List(y)) => {
                    let mut out = Vec::with_capacity(x.len() + y.len());
                    out.extend(x.iter().cloned());
                    out.extend(y.iter().cloned());
                    Ok(Value::list(out))
                }
                (x, y) => Err(err_at(
                    pos,
                    format!(
                        "cannot concatenate {} and {} with '++' (lists only)",
                        x.describe(),
                        y.describe()
                    ),
                )),
            },
            BinOp::Update => match (a, b) {
                (Attrs(x), Attrs(y)) => {
                    if y.is_empty() {
                        return Ok(Attrs(x));
                    }
                    if x.is_empty() {
                        return Ok(Attrs(y));
                    }
                    Ok(Value::attrs(update(&x, &y)))
                }
                (x, y) => Err(err_at(
                    pos,
                    format!(
                        "cannot update {} with {} using '//' (sets only)",
                        x.describe(),
                        y.describe()
                    ),
                )),
            },
            BinOp::Add => match (a, b) {
                (Int(x), Int(y)) => Ok(Int(x.wrapping_add(y))),
                (Int(x), Float(y)) => Ok(Float(x as f64 + y)),
                (Float(x), Int(y)) => Ok(Float(x + y as f64)),
                (Float(x), Float(y)) => Ok(Float(x + y)),
                (Path(p), y) => {
                    let s = self.coerce_to_string(y, false, pos)?;
                    let joined = format!("{}{s}", p.display());
                    Ok(Path(canon_path(std::path::Path::new(&joined)).into()))
                }
                (String(s), y) => {
                    let t = self.coerce_to_string(y, false, pos)?;
                    Ok(Value::string(format!("{s}{t}")))
                }
                (x @ Attrs(_), y) => {
                    let s = self.coerce_to_string(x, false, pos)?;
                    let t = self.coerce_to_string(y, false, pos)?;
                    Ok(Value::string(format!("{s}{t}")))
                }
                (x, y) => Err(err_at(
                    pos,
                    format!("cannot add {} to {}", y.describe(), x.describe()),
                )),
            },
            BinOp::Sub | BinOp::Mul | BinOp::Div => {
                let name = match op {
                    BinOp::Sub => "subtract",
                    BinOp::Mul => "multiply",
                    _ => "divide",
                };
                match (a, b) {
                    (Int(x), Int(y)) => match op {
                        BinOp::Sub => Ok(Int(x.wrapping_sub(y))),
                        BinOp::Mul => Ok(Int(x.wrapping_mul(y))),
                        _ if y == 0 => Err(err_at(pos, "division by zero")),
                        _ => Ok(Int(x.wrapping_div(y))),
                    },
                    (x, y) => {
                        let (Some(x), Some(y)) = (as_float(&x), as_float(&y)) else {
                            return Err(err_at(
                                pos,
                                format!("cannot {name} {} and {}", x.describe(), y.describe()),
                            ));
                        };
                        match op {
                            BinOp::Sub => Ok(Float(x - y)),
                            BinOp::Mul => Ok(Float(x * y)),
                            _ if y == 0.0 => Err(err_at(pos, "division by zero")),
                            _ => Ok(Float(x / y)),
                        }
                    }
                }
            }
            BinOp::And | BinOp::Or | BinOp::Implication => match (a, b) {
                (Bool(x), Bool(y)) => Ok(Bool(match op {
                    BinOp::And => x && y,
                    BinOp::Or => x || y,
                    _ => !x || y,
                })),
                _ => Err(err_at(pos, "a Boolean was expected")),
            },
        }
    }

    /// Nix's `==`: deep, numbers across int and float, derivations by their `outPath`.
    pub fn equal(&mut self, a: &Value, b: &Value) -> Result<bool, EvalError> {
        use Value::*;
        Ok(match (a, b) {
            (Null, Null) => true,
            (Bool(x), Bool(y)) => x == y,
            (Int(x), Int(y)) => x == y,
            (Int(x), Float(y)) | (Float(y), Int(x)) => (*x as f64) == *y,
            (Float(x), Float(y)) => x == y,
            (String(x), String(y)) => x == y,
            (Path(x), Path(y)) => x == y,
            (List(x), List(y)) => x.len() == y.len() && self.all_equal(x.iter().zip(y.iter()))?,
            (Attrs(x), Attrs(y)) => {
                if Rc::ptr_eq(x, y) {
                    return Ok(true);
                }
                if self.is_derivation(x)? && self.is_derivation(y)? {
                    let (p, q) = (x.get("outPath").cloned(), y.get("outPath").cloned());
                    if let (Some(p), Some(q)) = (p, q) {
                        let (p, q) = (self.force(&p)?, self.force(&q)?);
                        return self.equal(&p, &q);
                    }
                }
                x.len() == y.len()
                    && x.keys().eq(y.keys())
                    && self.all_equal(x.values().zip(y.values()))?
            }
            _ => false,
        })
    }

    /// Are the values of each pair equal? (The same thunk is equal to itself unforced, as
    /// in Nix.)
    fn all_equal<'a>(
        &mut self,
        pairs: impl Iterator<Item = (&'a Thunk, &'a Thunk)>,
    ) -> Result<bool, EvalError> {
        for (p, q) in pairs {
            if p.ptr_eq(q) {
                continue;
            }
            let (p, q) = (self.force(p)?, self.force(q)?);
            if !self.equal(&p, &q)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    pub(crate) fn is_derivation(&mut self, a: &Attrs) -> Result<bool, EvalError> {
        match a.get("type") {
            Some(t) => {
                let t = t.clone();
                Ok(matches!(self.force(&t)?, Value::String(s) if &*s == "derivation"))
            }
            None => Ok(false),
        }
    }

    /// Nix's `<`: numbers, strings, paths, lists (lexicographically).
    pub fn less(&mut self, a: &Value, b: &Value, pos: Option<&Pos>) -> Result<bool, EvalError> {
        use Value::*;
        Ok(match (a, b) {
            (Int(x), Int(y)) => x < y,
            (Int(x), Float(y)) => (*x as f64) < *y,
            (Float(x), Int(y)) => *x < (*y as f64),
            (Float(x), Float(y)) => x < y,
            (String(x), String(y)) => x.as_bytes() < y.as_bytes(),
            (Path(x), Path(y)) => x.as_os_str() < y.as_os_str(),
            (List(x), List(y)) => {
                for (p, q) in x.iter().zip(y.iter()) {
                    let (p, q) = (self.force(p)?, self.force(q)?);
                    if self.equal(&p, &q)? {
                        continue;
                    }
                    return self.less(&p, &q, pos);
                }
                x.len() < y.len()
            }
            (x, y) => {
                return Err(err_at(
                    pos,
                    format!("cannot compare {} with {}", x.describe(), y.describe()),
                ));
            }
        })
    }

    /// A value as a string: interpolation (`more` false: strings, paths and sets with
    /// `__toString` or `outPath`) or `toString` (`more` true: also numbers, Booleans, null and
    /// lists).
    pub fn coerce_to_string(
        &mut self,
        v: Value,
        more: bool,
        pos: Option<&Pos>,
    ) -> Result<String, EvalError> {
        match v {
            // Not `to_string`, which goes through `Display` for an `Rc<str>`.
            Value::String(s) => Ok(String::from(&*s)),
            Value::Path(p) => Ok(p.display().to_string()),
            Value::Attrs(a) => {
                if let Some(f) = a.get("__toString").cloned() {
                    let f = self.force(&f)?;
                    let r = self.apply(f, Value::Attrs(a).into(), pos)?;
                    return self.coerce_to_string(r, more, pos);
                }
                if let Some(p) = a.get("outPath").cloned() {
                    let p = self.force(&p)?;
                    return self.coerce_to_string(p, more, pos);
                }
                Err(err_at(pos, "cannot coerce a set to a string"))
            }
            Value::Int(i) if more => Ok(i.to_string()),
            Value::Float(f) if more => Ok(format!("{f:.6}")),
            Value::Bool(b) if more => Ok(if b { "1".into() } else { String::new() }),
            Value::Null if more => Ok(String::new()),
            Value::List(items) if more => {
                let mut out = String::new();
                for (i, t) in items.iter().enumerate() {
                    let v = self.force(t)?;
                    let is_empty_list = matches!(&v, Value::List(l) if l.is_empty());
                    let s = self.coerce_to_string(v, true, pos)?;
                    if i > 0 && !is_empty_list {
                        out.push(' ');
                    }
                    out.push_str(&s);
                }
                Ok(out)
            }
            other => Err(err_at(
                pos,
                format!("cannot coerce {} to a string", other.describe()),
            )),
        }
    }

    /// Forces `v` and everything in it (`--strict`, `deepSeq`).
    pub fn force_deep(&mut self, v: &Value) -> Result<(), EvalError> {
        self.force_deep_at(v, 0)
    }

    fn force_deep_at(&mut self, v: &Value, depth: usize) -> Result<(), EvalError> {
        if depth > MAX_DEPTH {
            return Err(err_at(
                None,
                "a value nested too deeply (or containing itself)",
            ));
        }
        let children: Vec<Thunk> = match v {
            Value::List(items) => items.iter().cloned().collect(),
            Value::Attrs(a) => a.values().cloned().collect(),
            _ => return Ok(()),
        };
        stacker::maybe_grow(64 * 1024, 1024 * 1024, || {
            for t in children {
                let v = self.force(&t)?;
                self.force_deep_at(&v, depth + 1)?;
            }
            Ok(())
        })
    }
}

/// `x // y`: a few names into a copy of `x`; two large sets (`lib`'s parts, a module's
/// defaults) merged in one pass over both, in order, and built at once.
fn update(x: &Attrs, y: &Attrs) -> Attrs {
    if y.len() * 8 < x.len() {
        let mut out = x.clone();
        for (k, v) in y.iter() {
            out.insert(k.clone(), v.clone());
        }
        return out;
    }
    merge_sorted(x, y.iter().map(|(k, v)| (k.clone(), v.clone())))
        .into_iter()
        .collect()
}

/// The names of `lower` and `higher` (both sorted) in order, `higher`'s value where both have
/// one.
fn merge_sorted(
    lower: &Attrs,
    higher: impl ExactSizeIterator<Item = (Str, Thunk)>,
) -> Vec<(Str, Thunk)> {
    let mut out = Vec::with_capacity(lower.len() + higher.len());
    let mut a = lower.iter().peekable();
    let mut b = higher.peekable();
    while let (Some((ka, _)), Some((kb, _))) = (a.peek(), b.peek()) {
        match (***ka).cmp(&**kb) {
            std::cmp::Ordering::Less => {
                if let Some((k, v)) = a.next() {
                    out.push((k.clone(), v.clone()));
                }
            }
            std::cmp::Ordering::Equal => {
                a.next();
                out.extend(b.next());
            }
            std::cmp::Ordering::Greater => out.extend(b.next()),
        }
    }
    out.extend(a.map(|(k, v)| (k.clone(), v.clone())));
    out.extend(b);
    out
}

fn as_float(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

fn slot(env: &Env, depth: u32, index: u32) -> Thunk {
    let mut e = env;
    for _ in 0..depth {
        match &e.parent {
            Some(p) => e = p,
            None => break,
        }
    }
    let slots = e.slots.borrow();
    slots
        .get(index as usize)
        .cloned()
        .unwrap_or_else(|| Thunk::value(Value::Null))
}

fn lambda_name(def: &LambdaDef) -> String {
    match &def.name {
        Some(n) => format!("function '{n}'"),
        None => "a function".to_string(),
    }
}

fn missing_attr(name: &str, v: &Value) -> String {
    match v {
        Value::Attrs(a) => {
            // A set may say what a missing attribute means (`pkgs`).
            if let Some(Value::String(why)) = a.get("__ncshMissing").and_then(Thunk::get) {
                return format!("attribute '{name}' missing: {why}");
            }
            let close: Vec<&str> = a
                .keys()
                .map(|k| &**k)
                .filter(|k| super::similar(k, name))
                .take(3)
                .collect();
            if close.is_empty() {
                format!("attribute '{name}' missing")
            } else {
                format!(
                    "attribute '{name}' missing; did you mean {}?",
                    close.join(", ")
                )
            }
        }
        _ => format!("attribute '{name}' missing"),
    }
}

/// `e` at `pos` if it has no position of its own.
fn locate(e: EvalError, pos: &Pos) -> EvalError {
    if e.line != 0 {
        return e;
    }
    let mut located = pos.err(e.message);
    located.kind = e.kind;
    located
}

/// An "infinite recursion" found while forcing a thunk gets the position of its expression.
fn locate_recursion(e: EvalError, expr: &Rc<Expr>) -> EvalError {
    if e.line != 0 || e.message != "infinite recursion encountered" {
        return e;
    }
    match expr_pos(expr) {
        Some(p) => p.err(e.message),
        None => e,
    }
}

fn expr_pos(e: &Expr) -> Option<&Pos> {
    match e {
        Expr::WithVar(_, _, p)
        | Expr::Str(_, p)
        | Expr::PathInterp(_, p)
        | Expr::Apply(_, _, p)
        | Expr::Select(_, _, _, p)
        | Expr::If(_, _, _, p)
        | Expr::Assert(_, _, p)
        | Expr::Bin(_, _, _, p)
        | Expr::Not(_, p)
        | Expr::Neg(_, p) => Some(p),
        Expr::Lambda(d) => Some(&d.pos),
        Expr::UpdateChain(_, positions) => positions.first(),
        _ => None,
    }
}

impl EvalError {
    /// Adds where the function was defined, once.
    fn also_at(mut self, def: &Pos) -> Self {
        let loc = def.src.loc(def.offset as usize);
        if loc.line != 0 {
            self.message = format!("{} (the function is defined at {loc})", self.message);
        }
        self
    }
}

/// The text of a regular file (not a device or FIFO), at most [`MAX_FILE`] bytes.
pub(crate) fn read_file(path: &Path, pos: Option<&Pos>) -> Result<String, EvalError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| err_at(pos, format!("cannot read '{}': {e}", path.display())))?;
    if !meta.is_file() {
        return Err(err_at(
            pos,
            format!("cannot read '{}': not a regular file", path.display()),
        ));
    }
    if meta.len() > MAX_FILE {
        return Err(err_at(
            pos,
            format!(
                "cannot read '{}': larger than {MAX_FILE} bytes",
                path.display()
            ),
        ));
    }
    std::fs::read_to_string(path)
        .map_err(|e| err_at(pos, format!("cannot read '{}': {e}", path.display())))
}

/// A shipped `let` being evaluated binding by binding: its text, and the frame its bindings
/// fill (in the order of `names`).
struct Shipped {
    /// What the compiled bindings depend on besides their spans: a hash of the text, its
    /// file's name and directory (see [`SHIPPED_EXPRS`]).
    key: u64,
    text: Rc<str>,
    src: Rc<SourceMap>,
    dir: Rc<Path>,
    names: Rc<HashMap<Str, u32>>,
    env: Env,
}

impl Shipped {
    /// The value at `span`, compiled in the frame and evaluated there when forced.
    fn lazy(self: &Rc<Self>, span: (usize, usize)) -> Thunk {
        let sh = self.clone();
        Thunk::native(Box::new(move |ev: &mut Evaluator| {
            let expr = sh.compiled(ev, span)?;
            ev.eval(&expr, &sh.env)
        }))
    }

    /// The expression at `span` compiled in the frame: once per thread (ncsh's `lib` is the
    /// same text every evaluation), for evaluators with the shared globals.
    fn compiled(&self, ev: &Evaluator, span: (usize, usize)) -> Result<Rc<Expr>, EvalError> {
        let shared = ev.has_shared_globals();
        let key = (self.key, span.0, span.1);
        if shared && let Some(e) = SHIPPED_EXPRS.with_borrow(|m| m.get(&key).cloned()) {
            return Ok(e);
        }
        let e = compile::compile_in_frame(
            &self.text,
            span,
            self.src.clone(),
            &self.dir,
            &*ev.globals,
            &self.names,
        )?;
        if shared {
            SHIPPED_EXPRS.with_borrow_mut(|m| m.insert(key, e.clone()));
        }
        Ok(e)
    }

    /// The names a binding defines, with their lazy values.
    /// `in_let`: a binding of the `let` itself, where `inherit x;` takes the `x` around the
    /// `let` (a global), not its own; in a set bound there, it takes the `let`'s.
    fn binding(
        self: &Rc<Self>,
        b: &Binding,
        in_let: bool,
        globals: &HashMap<Str, Value>,
    ) -> Vec<(Str, Thunk)> {
        match b {
            Binding::Value {
                name,
                span,
                set: None,
            } => vec![(name.as_str().into(), self.lazy(*span))],
            Binding::Value {
                name,
                set: Some(inner),
                ..
            } => {
                let (sh, inner) = (self.clone(), inner.clone());
                let set = Thunk::native(Box::new(move |ev: &mut Evaluator| {
                    let mut attrs = Attrs::new();
                    for b in &inner {
                        attrs.extend(sh.binding(b, false, &ev.globals));
                    }
                    Ok(Value::attrs(attrs))
                }));
                vec![(name.as_str().into(), set)]
            }
            Binding::Inherit { from, names } => {
                let from = from.map(|span| self.lazy(span));
                names
                    .iter()
                    .map(|n| {
                        let n: Str = n.as_str().into();
                        let t = match &from {
                            Some(f) => {
                                let (f, n) = (f.clone(), n.clone());
                                Thunk::native(Box::new(move |ev: &mut Evaluator| {
                                    match ev.force_attrs(&f)?.get(&n) {
                                        Some(t) => ev.force(t),
                                        None => {
                                            Err(err_at(None, format!("attribute '{n}' missing")))
                                        }
                                    }
                                }))
                            }
                            None => self.inherited(&n, in_let, globals),
                        };
                        (n, t)
                    })
                    .collect()
            }
        }
    }

    /// `inherit NAME;`: the binding of the frame (once it is filled; not in the `let` itself),
    /// else the global.
    fn inherited(self: &Rc<Self>, n: &Str, in_let: bool, globals: &HashMap<Str, Value>) -> Thunk {
        let (sh, n, global) = (self.clone(), n.clone(), globals.get(n).cloned());
        Thunk::native(Box::new(move |ev: &mut Evaluator| {
            let slot = (!in_let)
                .then(|| sh.names.get(&n))
                .flatten()
                .and_then(|i| sh.env.slots.borrow().get(*i as usize).cloned());
            match (slot, &global) {
                (Some(t), _) => ev.force(&t),
                (None, Some(v)) => Ok(v.clone()),
                (None, None) => Err(err_at(None, format!("undefined variable '{n}'"))),
            }
        }))
    }
}
