//! Runtime values of the evaluator: weak-head-normal values, thunks and environments.
//!
//! Values are cheap to clone (reference-counted). A [`Thunk`] is a value not computed yet; it is
//! computed at most once ("blackholed" meanwhile, so a value that needs itself is reported as
//! infinite recursion instead of looping). Closures and the environments they capture can form
//! reference cycles (a `rec` set refers to its own frame); an evaluation is short-lived, so such
//! cycles are left to be freed with the process.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::rc::Rc;

use super::compile::{Expr, LambdaDef};
use super::error::EvalError;

/// An immutable, shared string.
pub type Str = Rc<str>;

/// An attribute set: names in Nix's order (byte-wise) → lazy values.
pub type Attrs = BTreeMap<Str, Thunk>;

/// A value in weak head normal form: its outermost constructor is known, what it contains may
/// still be thunks.
#[derive(Clone)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(Str),
    /// Absolute and normalized.
    Path(Rc<Path>),
    List(Rc<Vec<Thunk>>),
    Attrs(Rc<Attrs>),
    Lambda(Rc<Closure>),
    PrimOp(Rc<PrimOpApp>),
}

impl Value {
    pub fn string(s: impl Into<Str>) -> Value {
        Value::String(s.into())
    }

    pub fn attrs(map: Attrs) -> Value {
        Value::Attrs(Rc::new(map))
    }

    pub fn list(items: Vec<Thunk>) -> Value {
        Value::List(Rc::new(items))
    }

    /// The name `builtins.typeOf` gives.
    pub fn type_of(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::String(_) => "string",
            Value::Path(_) => "path",
            Value::List(_) => "list",
            Value::Attrs(_) => "set",
            Value::Lambda(_) | Value::PrimOp(_) => "lambda",
        }
    }

    /// The type with an article, as Nix's messages say it ("a string", "an integer").
    pub fn describe(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a Boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::String(_) => "a string",
            Value::Path(_) => "a path",
            Value::List(_) => "a list",
            Value::Attrs(_) => "a set",
            Value::Lambda(_) => "a function",
            Value::PrimOp(_) => "a built-in function",
        }
    }

    pub fn is_function(&self) -> bool {
        matches!(self, Value::Lambda(_) | Value::PrimOp(_))
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => write!(f, "null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::String(s) => write!(f, "{s:?}"),
            Value::Path(p) => write!(f, "{}", p.display()),
            Value::List(l) => write!(f, "[ {} items ]", l.len()),
            Value::Attrs(a) => {
                let names: Vec<&str> = a.keys().map(|k| &**k).collect();
                write!(f, "{{ {} }}", names.join(" "))
            }
            Value::Lambda(_) => write!(f, "<lambda>"),
            Value::PrimOp(p) => write!(f, "<primop {}>", p.op.name),
        }
    }
}

/// A function value: its definition and the environment it was defined in.
pub struct Closure {
    pub def: Rc<LambdaDef>,
    pub env: Env,
}

/// A built-in function and the arguments it has been given so far.
pub struct PrimOpApp {
    pub op: &'static PrimOp,
    pub args: Vec<Thunk>,
}

/// What a built-in does with its arguments (exactly `arity` of them).
pub type PrimFn = fn(&mut super::eval::Evaluator, &[Thunk]) -> Result<Value, EvalError>;

pub struct PrimOp {
    pub name: &'static str,
    pub arity: usize,
    pub run: PrimFn,
}

/// A computation that produces a value on demand (for values made by Rust code).
pub type Native = Box<dyn FnOnce(&mut super::eval::Evaluator) -> Result<Value, EvalError>>;

pub(crate) enum ThunkState {
    Done(Value),
    /// An expression in an environment.
    Pending(Rc<Expr>, Env),
    /// `f x`, applied when forced (lazy results of `map` and friends).
    Apply(Value, Thunk),
    Native(Native),
    /// A native computation that failed: forcing again fails the same way.
    Failed(EvalError),
    /// Being computed: forcing it again is infinite recursion.
    Blackhole,
}

/// A lazily computed value, shared by everything that refers to it.
#[derive(Clone)]
pub struct Thunk(pub(crate) Rc<RefCell<ThunkState>>);

impl Thunk {
    pub fn value(v: Value) -> Thunk {
        Thunk(Rc::new(RefCell::new(ThunkState::Done(v))))
    }

    pub(crate) fn pending(expr: Rc<Expr>, env: Env) -> Thunk {
        Thunk(Rc::new(RefCell::new(ThunkState::Pending(expr, env))))
    }

    pub fn apply(f: Value, arg: Thunk) -> Thunk {
        Thunk(Rc::new(RefCell::new(ThunkState::Apply(f, arg))))
    }

    pub fn native(f: Native) -> Thunk {
        Thunk(Rc::new(RefCell::new(ThunkState::Native(f))))
    }

    /// The value, if already computed.
    pub fn get(&self) -> Option<Value> {
        match &*self.0.borrow() {
            ThunkState::Done(v) => Some(v.clone()),
            _ => None,
        }
    }

    /// Forgets the value or the computation (it becomes `null`), dropping what it holds: for
    /// breaking the reference cycles of an evaluation whose values are not used any more (a
    /// function's value holds its frame, which holds the function). Nothing when it is being
    /// computed.
    pub fn release(&self) {
        if let Ok(mut state) = self.0.try_borrow_mut() {
            *state = ThunkState::Done(Value::Null);
        }
    }

    pub fn ptr_eq(&self, other: &Thunk) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

impl From<Value> for Thunk {
    fn from(v: Value) -> Thunk {
        Thunk::value(v)
    }
}

/// One frame of variables (a `let`, a `rec` set, a function's arguments, or the namespace of a
/// `with`), and the frame around it. Variables are resolved to (depth, index) when compiled.
pub struct Frame {
    pub slots: RefCell<Vec<Thunk>>,
    pub parent: Option<Env>,
}

pub type Env = Rc<Frame>;

pub fn frame(slots: Vec<Thunk>, parent: Option<Env>) -> Env {
    Rc::new(Frame {
        slots: RefCell::new(slots),
        parent,
    })
}
