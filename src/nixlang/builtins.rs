//! Nix's built-in functions (`builtins.*` and the global names), as Nix 2.x defines them.

use std::collections::BTreeMap;

use super::HashMap;
use std::path::Path;
use std::rc::Rc;

use super::compile::{Param, canon_path};
use super::error::{ErrorKind, EvalError};
use super::eval::{Evaluator, err_at, read_file};
use super::json;
use super::value::{Attrs, PrimOp, PrimOpApp, Str, Thunk, Value};

fn err(msg: impl Into<String>) -> EvalError {
    err_at(None, msg)
}

fn expected(v: &Value, what: &str) -> EvalError {
    err(format!(
        "value is {} while {what} was expected",
        v.describe()
    ))
}

impl Evaluator {
    pub(crate) fn force_int(&mut self, t: &Thunk) -> Result<i64, EvalError> {
        match self.force(t)? {
            Value::Int(i) => Ok(i),
            v => Err(expected(&v, "an integer")),
        }
    }

    pub(crate) fn force_str(&mut self, t: &Thunk) -> Result<Str, EvalError> {
        match self.force(t)? {
            Value::String(s) => Ok(s),
            v => Err(expected(&v, "a string")),
        }
    }

    pub(crate) fn force_list(&mut self, t: &Thunk) -> Result<Rc<Vec<Thunk>>, EvalError> {
        match self.force(t)? {
            Value::List(l) => Ok(l),
            v => Err(expected(&v, "a list")),
        }
    }

    pub(crate) fn force_attrs(&mut self, t: &Thunk) -> Result<Rc<Attrs>, EvalError> {
        match self.force(t)? {
            Value::Attrs(a) => Ok(a),
            v => Err(expected(&v, "a set")),
        }
    }

    pub(crate) fn force_fn(&mut self, t: &Thunk) -> Result<Value, EvalError> {
        let v = self.force(t)?;
        match &v {
            Value::Lambda(_) | Value::PrimOp(_) => Ok(v),
            Value::Attrs(a) if a.contains_key("__functor") => Ok(v),
            _ => Err(expected(&v, "a function")),
        }
    }

    /// `f a b`
    pub(crate) fn call2(&mut self, f: &Value, a: Thunk, b: Thunk) -> Result<Value, EvalError> {
        let g = self.apply(f.clone(), a, None)?;
        self.apply(g, b, None)
    }

    /// A string for a built-in that takes paths or strings (`readFile`, `pathExists`).
    fn force_path(&mut self, t: &Thunk) -> Result<std::path::PathBuf, EvalError> {
        let v = self.force(t)?;
        let s = self.coerce_to_string(v, false, None)?;
        if !s.starts_with('/') {
            return Err(err(format!(
                "string '{s}' doesn't represent an absolute path"
            )));
        }
        Ok(canon_path(Path::new(&s)))
    }
}

macro_rules! primops {
    ($($name:literal $arity:literal $f:ident),* $(,)?) => {
        static PRIMOPS: &[PrimOp] = &[$(PrimOp { name: $name, arity: $arity, run: $f }),*];
    };
}

primops! {
    "abort" 1 abort,
    "add" 2 add,
    "all" 2 all,
    "any" 2 any,
    "attrNames" 1 attr_names,
    "attrValues" 1 attr_values,
    "baseNameOf" 1 base_name_of,
    "bitAnd" 2 bit_and,
    "bitOr" 2 bit_or,
    "bitXor" 2 bit_xor,
    "catAttrs" 2 cat_attrs,
    "ceil" 1 ceil,
    "compareVersions" 2 compare_versions,
    "concatLists" 1 concat_lists,
    "concatMap" 2 concat_map,
    "concatStringsSep" 2 concat_strings_sep,
    "deepSeq" 2 deep_seq,
    "derivation" 1 derivation,
    "dirOf" 1 dir_of,
    "div" 2 div,
    "elem" 2 elem,
    "elemAt" 2 elem_at,
    "fetchGit" 1 needs_nix,
    "fetchTarball" 1 needs_nix,
    "fetchurl" 1 needs_nix,
    "filter" 2 filter,
    "floor" 1 floor,
    "foldl'" 3 foldl,
    "fromJSON" 1 from_json,
    "functionArgs" 1 function_args,
    "genList" 2 gen_list,
    "genericClosure" 1 generic_closure,
    "getAttr" 2 get_attr,
    "getContext" 1 get_context,
    "getEnv" 1 get_env,
    "groupBy" 2 group_by,
    "hasAttr" 2 has_attr,
    "hasContext" 1 has_context,
    "hashString" 2 hash_string,
    "head" 1 head,
    "import" 1 import,
    "intersectAttrs" 2 intersect_attrs,
    "isAttrs" 1 is_attrs,
    "isBool" 1 is_bool,
    "isFloat" 1 is_float,
    "isFunction" 1 is_function,
    "isInt" 1 is_int,
    "isList" 1 is_list,
    "isNull" 1 is_null,
    "isPath" 1 is_path,
    "isString" 1 is_string,
    "length" 1 length,
    "lessThan" 2 less_than,
    "listToAttrs" 1 list_to_attrs,
    "map" 2 map,
    "mapAttrs" 2 map_attrs,
    "match" 2 regex_match,
    "mul" 2 mul,
    "parseDrvName" 1 parse_drv_name,
    "partition" 2 partition,
    "pathExists" 1 path_exists,
    "readDir" 1 read_dir,
    "readFile" 1 read_file_prim,
    "removeAttrs" 2 remove_attrs,
    "replaceStrings" 3 replace_strings,
    "seq" 2 seq,
    "sort" 2 sort,
    "split" 2 split,
    "splitVersion" 1 split_version,
    "stringLength" 1 string_length,
    "sub" 2 sub,
    "substring" 3 substring,
    "tail" 1 tail,
    "throw" 1 throw,
    "toFile" 2 needs_nix2,
    "toJSON" 1 to_json,
    "toPath" 1 to_path,
    "toString" 1 to_string,
    "trace" 2 trace,
    "tryEval" 1 try_eval,
    "typeOf" 1 type_of,
    "unsafeDiscardStringContext" 1 identity,
    "unsafeDiscardOutputDependency" 1 identity,
    "unsafeGetAttrPos" 2 unsafe_get_attr_pos,
    "zipAttrsWith" 2 zip_attrs_with,
}

/// Names visible without `builtins.` (as in Nix).
const GLOBAL: &[&str] = &[
    "abort",
    "baseNameOf",
    "derivation",
    "dirOf",
    "fetchGit",
    "fetchTarball",
    "import",
    "isNull",
    "map",
    "removeAttrs",
    "throw",
    "toString",
];

fn prim(op: &'static PrimOp) -> Value {
    Value::PrimOp(Rc::new(PrimOpApp {
        op,
        args: Vec::new(),
    }))
}

/// The global scope: `builtins`, the global built-ins, `true`, `false`, `null`, and every
/// built-in as `__name`.
pub(crate) fn globals() -> HashMap<Str, Value> {
    let mut builtins: Attrs = BTreeMap::new();
    let mut globals: HashMap<Str, Value> = HashMap::default();
    for op in PRIMOPS {
        let v = prim(op);
        builtins.insert(op.name.into(), v.clone().into());
        globals.insert(format!("__{}", op.name).into(), v.clone());
        if GLOBAL.contains(&op.name) {
            globals.insert(op.name.into(), v);
        }
    }
    let consts: [(&str, Value); 8] = [
        ("true", Value::Bool(true)),
        ("false", Value::Bool(false)),
        ("null", Value::Null),
        (
            "currentSystem",
            Value::string(format!("{}-linux", std::env::consts::ARCH)),
        ),
        ("nixVersion", Value::string("2.18.0")),
        ("langVersion", Value::Int(6)),
        ("storeDir", Value::string("/nix/store")),
        ("nixPath", Value::list(Vec::new())),
    ];
    for (name, v) in consts {
        builtins.insert(name.into(), v.clone().into());
        if matches!(name, "true" | "false" | "null") {
            globals.insert(name.into(), v);
        } else {
            globals.insert(format!("__{name}").into(), v);
        }
    }
    // `builtins.builtins` exists in Nix too.
    let set = Rc::new(builtins);
    let value = Value::Attrs(set.clone());
    let mut with_self = (*set).clone();
    with_self.insert("builtins".into(), value.clone().into());
    globals.insert("builtins".into(), Value::attrs(with_self));
    globals
}

type R = Result<Value, EvalError>;

fn abort(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let v = ev.force(&a[0])?;
    let msg = ev.coerce_to_string(v, true, None)?;
    Err(err(format!(
        "evaluation aborted with the following error message: '{msg}'"
    ))
    .with_kind(ErrorKind::Abort))
}

fn throw(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let v = ev.force(&a[0])?;
    let msg = ev.coerce_to_string(v, true, None)?;
    Err(err(msg).with_kind(ErrorKind::Throw))
}

fn needs_nix(_: &mut Evaluator, _: &[Thunk]) -> R {
    Err(err(
        "fetching sources needs a Nix host (ncsh's native builder has no Nix store)",
    ))
}

fn needs_nix2(_: &mut Evaluator, _: &[Thunk]) -> R {
    Err(err(
        "builtins.toFile writes to the Nix store, which a host without Nix does not have; use \
         pkgs.writeText",
    ))
}

fn derivation(_: &mut Evaluator, _: &[Thunk]) -> R {
    Err(err(
        "a derivation is built by Nix: this host has no Nix; a Nix host builds it for real \
         (--builder nix)",
    ))
}

fn numeric(ev: &mut Evaluator, a: &[Thunk], op: super::compile::BinOp) -> R {
    let x = ev.force(&a[0])?;
    let y = ev.force(&a[1])?;
    for v in [&x, &y] {
        if !matches!(v, Value::Int(_) | Value::Float(_)) {
            return Err(expected(v, "an integer or a float"));
        }
    }
    ev.binop_values(op, x, y, None)
}

fn add(ev: &mut Evaluator, a: &[Thunk]) -> R {
    numeric(ev, a, super::compile::BinOp::Add)
}
fn sub(ev: &mut Evaluator, a: &[Thunk]) -> R {
    numeric(ev, a, super::compile::BinOp::Sub)
}
fn mul(ev: &mut Evaluator, a: &[Thunk]) -> R {
    numeric(ev, a, super::compile::BinOp::Mul)
}
fn div(ev: &mut Evaluator, a: &[Thunk]) -> R {
    numeric(ev, a, super::compile::BinOp::Div)
}

fn bit_and(ev: &mut Evaluator, a: &[Thunk]) -> R {
    Ok(Value::Int(ev.force_int(&a[0])? & ev.force_int(&a[1])?))
}
fn bit_or(ev: &mut Evaluator, a: &[Thunk]) -> R {
    Ok(Value::Int(ev.force_int(&a[0])? | ev.force_int(&a[1])?))
}
fn bit_xor(ev: &mut Evaluator, a: &[Thunk]) -> R {
    Ok(Value::Int(ev.force_int(&a[0])? ^ ev.force_int(&a[1])?))
}

fn float_arg(ev: &mut Evaluator, t: &Thunk) -> Result<f64, EvalError> {
    match ev.force(t)? {
        Value::Int(i) => Ok(i as f64),
        Value::Float(f) => Ok(f),
        v => Err(expected(&v, "a float")),
    }
}
fn ceil(ev: &mut Evaluator, a: &[Thunk]) -> R {
    Ok(Value::Int(float_arg(ev, &a[0])?.ceil() as i64))
}
fn floor(ev: &mut Evaluator, a: &[Thunk]) -> R {
    Ok(Value::Int(float_arg(ev, &a[0])?.floor() as i64))
}

fn all(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let f = ev.force_fn(&a[0])?;
    for t in ev.force_list(&a[1])?.iter() {
        match ev.apply(f.clone(), t.clone(), None)? {
            Value::Bool(true) => {}
            Value::Bool(false) => return Ok(Value::Bool(false)),
            v => return Err(expected(&v, "a Boolean")),
        }
    }
    Ok(Value::Bool(true))
}

fn any(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let f = ev.force_fn(&a[0])?;
    for t in ev.force_list(&a[1])?.iter() {
        match ev.apply(f.clone(), t.clone(), None)? {
            Value::Bool(true) => return Ok(Value::Bool(true)),
            Value::Bool(false) => {}
            v => return Err(expected(&v, "a Boolean")),
        }
    }
    Ok(Value::Bool(false))
}

fn attr_names(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let set = ev.force_attrs(&a[0])?;
    Ok(Value::list(
        set.keys()
            .map(|k| Value::String(k.clone()).into())
            .collect(),
    ))
}

fn attr_values(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let set = ev.force_attrs(&a[0])?;
    Ok(Value::list(set.values().cloned().collect()))
}

fn base_name_of(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let v = ev.force(&a[0])?;
    let s = ev.coerce_to_string(v, false, None)?;
    let mut end = s.len();
    if end > 1 && s.ends_with('/') {
        end -= 1;
    }
    let start = s[..end].rfind('/').map_or(0, |p| p + 1);
    Ok(Value::string(&s[start..end]))
}

fn dir_of(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let v = ev.force(&a[0])?;
    if let Value::Path(p) = &v {
        let parent = p.parent().unwrap_or(Path::new("/"));
        return Ok(Value::Path(parent.into()));
    }
    let s = ev.coerce_to_string(v, false, None)?;
    Ok(Value::string(match s.rfind('/') {
        None => ".",
        Some(0) => "/",
        Some(p) => &s[..p],
    }))
}

fn cat_attrs(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let name = ev.force_str(&a[0])?;
    let mut out = Vec::new();
    for t in ev.force_list(&a[1])?.iter() {
        let set = ev.force_attrs(t)?;
        if let Some(v) = set.get(&*name) {
            out.push(v.clone());
        }
    }
    Ok(Value::list(out))
}

/// The next component of a version string, as Nix splits them: a run of digits or a run of
/// other characters, separated by `.` or `-`.
fn next_component(s: &str) -> (&str, &str) {
    let s = s.trim_start_matches(['.', '-']);
    let digits = s.starts_with(|c: char| c.is_ascii_digit());
    let end = s
        .find(|c: char| c == '.' || c == '-' || (c.is_ascii_digit() != digits))
        .unwrap_or(s.len());
    (&s[..end], &s[end..])
}

fn component_less(a: &str, b: &str) -> bool {
    let na = a.parse::<u64>().ok().filter(|_| !a.is_empty());
    let nb = b.parse::<u64>().ok().filter(|_| !b.is_empty());
    match (na, nb) {
        (Some(x), Some(y)) => x < y,
        _ if a.is_empty() && nb.is_some() => true,
        _ if a == "pre" && b != "pre" => true,
        _ if b == "pre" => false,
        (_, Some(_)) => true,
        (Some(_), _) => false,
        _ => a < b,
    }
}

pub(crate) fn compare_version_strings(mut a: &str, mut b: &str) -> i64 {
    while !a.is_empty() || !b.is_empty() {
        let (ca, ra) = next_component(a);
        let (cb, rb) = next_component(b);
        if component_less(ca, cb) {
            return -1;
        }
        if component_less(cb, ca) {
            return 1;
        }
        a = ra;
        b = rb;
    }
    0
}

fn compare_versions(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let x = ev.force_str(&a[0])?;
    let y = ev.force_str(&a[1])?;
    Ok(Value::Int(compare_version_strings(&x, &y)))
}

fn split_version(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let s = ev.force_str(&a[0])?;
    let mut rest: &str = &s;
    let mut out = Vec::new();
    loop {
        let (c, r) = next_component(rest);
        if c.is_empty() {
            break;
        }
        out.push(Value::string(c).into());
        rest = r;
    }
    Ok(Value::list(out))
}

fn concat_lists(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let mut out = Vec::new();
    for t in ev.force_list(&a[0])?.iter() {
        out.extend(ev.force_list(t)?.iter().cloned());
    }
    Ok(Value::list(out))
}

fn concat_map(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let f = ev.force_fn(&a[0])?;
    let mut out = Vec::new();
    for t in ev.force_list(&a[1])?.iter() {
        match ev.apply(f.clone(), t.clone(), None)? {
            Value::List(l) => out.extend(l.iter().cloned()),
            v => return Err(expected(&v, "a list")),
        }
    }
    Ok(Value::list(out))
}

fn concat_strings_sep(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let sep = ev.force_str(&a[0])?;
    let mut out = String::new();
    for (i, t) in ev.force_list(&a[1])?.iter().enumerate() {
        if i > 0 {
            out.push_str(&sep);
        }
        let v = ev.force(t)?;
        out.push_str(&ev.coerce_to_string(v, false, None)?);
    }
    Ok(Value::string(out))
}

fn seq(ev: &mut Evaluator, a: &[Thunk]) -> R {
    ev.force(&a[0])?;
    ev.force(&a[1])
}

fn deep_seq(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let v = ev.force(&a[0])?;
    ev.force_deep(&v)?;
    ev.force(&a[1])
}

fn elem(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let x = ev.force(&a[0])?;
    for t in ev.force_list(&a[1])?.iter() {
        let y = ev.force(t)?;
        if ev.equal(&x, &y)? {
            return Ok(Value::Bool(true));
        }
    }
    Ok(Value::Bool(false))
}

fn elem_at(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let list = ev.force_list(&a[0])?;
    let i = ev.force_int(&a[1])?;
    match usize::try_from(i).ok().and_then(|i| list.get(i)) {
        Some(t) => {
            let t = t.clone();
            ev.force(&t)
        }
        None => Err(err(format!(
            "list index {i} is out of bounds (the list has {} elements)",
            list.len()
        ))),
    }
}

fn filter(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let f = ev.force_fn(&a[0])?;
    let mut out = Vec::new();
    for t in ev.force_list(&a[1])?.iter() {
        match ev.apply(f.clone(), t.clone(), None)? {
            Value::Bool(true) => out.push(t.clone()),
            Value::Bool(false) => {}
            v => return Err(expected(&v, "a Boolean")),
        }
    }
    Ok(Value::list(out))
}

fn foldl(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let f = ev.force_fn(&a[0])?;
    let mut acc = a[1].clone();
    let list = ev.force_list(&a[2])?;
    for t in list.iter() {
        let v = ev.call2(&f, acc, t.clone())?;
        acc = Thunk::value(v);
    }
    ev.force(&acc)
}

fn from_json(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let s = ev.force_str(&a[0])?;
    json::from_json(&s)
}

fn to_json(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let v = ev.force(&a[0])?;
    let mut out = String::new();
    json::write_json(ev, &v, &mut out, 0)?;
    Ok(Value::string(out))
}

fn function_args(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let v = ev.force(&a[0])?;
    match v {
        Value::Lambda(c) => {
            let mut out: Attrs = BTreeMap::new();
            if let Param::Pattern { formals, .. } = &c.def.param {
                for (name, default) in formals {
                    out.insert(name.clone(), Value::Bool(default.is_some()).into());
                }
            }
            Ok(Value::attrs(out))
        }
        Value::PrimOp(_) => Ok(Value::attrs(BTreeMap::new())),
        v => Err(expected(&v, "a function")),
    }
}

fn gen_list(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let f = ev.force_fn(&a[0])?;
    let n = ev.force_int(&a[1])?;
    if n < 0 {
        return Err(err(format!("cannot create a list of size {n}")));
    }
    if n > 100_000_000 {
        return Err(err(format!("a list of {n} elements is too large")));
    }
    Ok(Value::list(
        (0..n)
            .map(|i| Thunk::apply(f.clone(), Value::Int(i).into()))
            .collect(),
    ))
}

fn generic_closure(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let args = ev.force_attrs(&a[0])?;
    let start = args
        .get("startSet")
        .cloned()
        .ok_or_else(|| err("attribute 'startSet' required"))?;
    let op = args
        .get("operator")
        .cloned()
        .ok_or_else(|| err("attribute 'operator' required"))?;
    let op = ev.force_fn(&op)?;
    let mut work: std::collections::VecDeque<Thunk> =
        ev.force_list(&start)?.iter().cloned().collect();
    let mut seen: Vec<Value> = Vec::new();
    let mut out = Vec::new();
    while let Some(t) = work.pop_front() {
        let item = ev.force_attrs(&t)?;
        let key = item
            .get("key")
            .cloned()
            .ok_or_else(|| err("attribute 'key' required"))?;
        let key = ev.force(&key)?;
        let mut known = false;
        for k in &seen {
            if ev.equal(k, &key)? {
                known = true;
                break;
            }
        }
        if known {
            continue;
        }
        seen.push(key);
        out.push(t.clone());
        let next = ev.apply(op.clone(), t, None)?;
        match next {
            Value::List(l) => work.extend(l.iter().cloned()),
            v => return Err(expected(&v, "a list")),
        }
    }
    Ok(Value::list(out))
}

fn get_attr(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let name = ev.force_str(&a[0])?;
    let set = ev.force_attrs(&a[1])?;
    match ev.attr(&set, &name)? {
        Some(t) => ev.force(&t),
        None => Err(err(format!("attribute '{name}' missing"))),
    }
}

fn has_attr(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let name = ev.force_str(&a[0])?;
    let set = ev.force_attrs(&a[1])?;
    Ok(Value::Bool(ev.attr(&set, &name)?.is_some()))
}

fn get_context(ev: &mut Evaluator, a: &[Thunk]) -> R {
    ev.force_str(&a[0])?;
    Ok(Value::attrs(BTreeMap::new()))
}

fn has_context(ev: &mut Evaluator, a: &[Thunk]) -> R {
    ev.force_str(&a[0])?;
    Ok(Value::Bool(false))
}

fn get_env(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let name = ev.force_str(&a[0])?;
    Ok(Value::string(std::env::var(&*name).unwrap_or_default()))
}

fn group_by(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let f = ev.force_fn(&a[0])?;
    let mut groups: BTreeMap<Str, Vec<Thunk>> = BTreeMap::new();
    for t in ev.force_list(&a[1])?.iter() {
        let key = match ev.apply(f.clone(), t.clone(), None)? {
            Value::String(s) => s,
            v => return Err(expected(&v, "a string")),
        };
        groups.entry(key).or_default().push(t.clone());
    }
    Ok(Value::attrs(
        groups
            .into_iter()
            .map(|(k, v)| (k, Value::list(v).into()))
            .collect(),
    ))
}

fn hash_string(ev: &mut Evaluator, a: &[Thunk]) -> R {
    use sha2::Digest;
    let kind = ev.force_str(&a[0])?;
    let s = ev.force_str(&a[1])?;
    let bytes: Vec<u8> = match &*kind {
        "md5" => md5::Md5::digest(s.as_bytes()).to_vec(),
        "sha1" => sha1::Sha1::digest(s.as_bytes()).to_vec(),
        "sha256" => sha2::Sha256::digest(s.as_bytes()).to_vec(),
        "sha512" => sha2::Sha512::digest(s.as_bytes()).to_vec(),
        other => {
            return Err(err(format!(
                "unknown hash algorithm '{other}' (md5, sha1, sha256 and sha512 are supported)"
            )));
        }
    };
    Ok(Value::string(
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>(),
    ))
}

fn head(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let list = ev.force_list(&a[0])?;
    match list.first() {
        Some(t) => {
            let t = t.clone();
            ev.force(&t)
        }
        None => Err(err("'builtins.head' called on an empty list")),
    }
}

fn tail(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let list = ev.force_list(&a[0])?;
    if list.is_empty() {
        return Err(err("'builtins.tail' called on an empty list"));
    }
    Ok(Value::list(list[1..].to_vec()))
}

fn import(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let path = ev.force_path(&a[0])?;
    ev.import(&path, None)
}

fn intersect_attrs(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let x = ev.force_attrs(&a[0])?;
    let y = ev.force_attrs(&a[1])?;
    Ok(Value::attrs(
        y.iter()
            .filter(|(k, _)| x.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    ))
}

fn is_attrs(ev: &mut Evaluator, a: &[Thunk]) -> R {
    Ok(Value::Bool(matches!(ev.force(&a[0])?, Value::Attrs(_))))
}
fn is_bool(ev: &mut Evaluator, a: &[Thunk]) -> R {
    Ok(Value::Bool(matches!(ev.force(&a[0])?, Value::Bool(_))))
}
fn is_float(ev: &mut Evaluator, a: &[Thunk]) -> R {
    Ok(Value::Bool(matches!(ev.force(&a[0])?, Value::Float(_))))
}
fn is_function(ev: &mut Evaluator, a: &[Thunk]) -> R {
    Ok(Value::Bool(ev.force(&a[0])?.is_function()))
}
fn is_int(ev: &mut Evaluator, a: &[Thunk]) -> R {
    Ok(Value::Bool(matches!(ev.force(&a[0])?, Value::Int(_))))
}
fn is_list(ev: &mut Evaluator, a: &[Thunk]) -> R {
    Ok(Value::Bool(matches!(ev.force(&a[0])?, Value::List(_))))
}
fn is_null(ev: &mut Evaluator, a: &[Thunk]) -> R {
    Ok(Value::Bool(matches!(ev.force(&a[0])?, Value::Null)))
}
fn is_path(ev: &mut Evaluator, a: &[Thunk]) -> R {
    Ok(Value::Bool(matches!(ev.force(&a[0])?, Value::Path(_))))
}
fn is_string(ev: &mut Evaluator, a: &[Thunk]) -> R {
    Ok(Value::Bool(matches!(ev.force(&a[0])?, Value::String(_))))
}

fn length(ev: &mut Evaluator, a: &[Thunk]) -> R {
    Ok(Value::Int(ev.force_list(&a[0])?.len() as i64))
}

fn less_than(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let x = ev.force(&a[0])?;
    let y = ev.force(&a[1])?;
    Ok(Value::Bool(ev.less(&x, &y, None)?))
}

fn list_to_attrs(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let mut out: Attrs = BTreeMap::new();
    for t in ev.force_list(&a[0])?.iter() {
        let item = ev.force_attrs(t)?;
        let name = item
            .get("name")
            .cloned()
            .ok_or_else(|| err("attribute 'name' missing in an element of listToAttrs"))?;
        let name = ev.force_str(&name)?;
        let value = item
            .get("value")
            .cloned()
            .ok_or_else(|| err("attribute 'value' missing in an element of listToAttrs"))?;
        out.entry(name).or_insert(value);
    }
    Ok(Value::attrs(out))
}

fn map(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let f = ev.force_fn(&a[0])?;
    let list = ev.force_list(&a[1])?;
    Ok(Value::list(
        list.iter()
            .map(|t| Thunk::apply(f.clone(), t.clone()))
            .collect(),
    ))
}

fn map_attrs(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let f = ev.force_fn(&a[0])?;
    let set = ev.force_attrs(&a[1])?;
    Ok(Value::attrs(
        set.iter()
            .map(|(k, v)| {
                let (f, name, v) = (f.clone(), Value::String(k.clone()), v.clone());
                let t = Thunk::native(Box::new(move |ev: &mut Evaluator| {
                    ev.call2(&f, name.into(), v)
                }));
                (k.clone(), t)
            })
            .collect(),
    ))
}

fn zip_attrs_with(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let f = ev.force_fn(&a[0])?;
    let mut by_name: BTreeMap<Str, Vec<Thunk>> = BTreeMap::new();
    for t in ev.force_list(&a[1])?.iter() {
        for (k, v) in ev.force_attrs(t)?.iter() {
            by_name.entry(k.clone()).or_default().push(v.clone());
        }
    }
    Ok(Value::attrs(
        by_name
            .into_iter()
            .map(|(k, vs)| {
                let (f, name) = (f.clone(), Value::String(k.clone()));
                let t = Thunk::native(Box::new(move |ev: &mut Evaluator| {
                    ev.call2(&f, name.into(), Value::list(vs).into())
                }));
                (k, t)
            })
            .collect(),
    ))
}

/// A POSIX extended regular expression as the `regex` crate reads it.
fn compile_regex(re: &str, whole: bool) -> Result<regex::Regex, EvalError> {
    let pattern = if whole {
        format!("^(?:{re})$")
    } else {
        re.to_string()
    };
    regex::RegexBuilder::new(&pattern)
        .dot_matches_new_line(true)
        .size_limit(1 << 22)
        .build()
        .map_err(|e| err(format!("invalid regular expression '{re}': {e}")))
}

fn captures(c: &regex::Captures) -> Vec<Thunk> {
    c.iter()
        .skip(1)
        .map(|m| match m {
            Some(m) => Value::string(m.as_str()).into(),
            None => Value::Null.into(),
        })
        .collect()
}

fn regex_match(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let re = ev.force_str(&a[0])?;
    let s = ev.force_str(&a[1])?;
    let re = compile_regex(&re, true)?;
    Ok(match re.captures(&s) {
        Some(c) => Value::list(captures(&c)),
        None => Value::Null,
    })
}

fn split(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let re = ev.force_str(&a[0])?;
    let s = ev.force_str(&a[1])?;
    let re = compile_regex(&re, false)?;
    let mut out: Vec<Thunk> = Vec::new();
    let mut last = 0;
    let mut at = 0;
    // As std::regex_iterator: an empty match may follow a non-empty one at the same place.
    while at <= s.len() {
        let Some(c) = re.captures_at(&s, at) else {
            break;
        };
        let Some(m) = c.get(0) else { break };
        out.push(Value::string(&s[last..m.start()]).into());
        out.push(Value::list(captures(&c)).into());
        last = m.end();
        at = if m.is_empty() {
            match s[m.end()..].chars().next() {
                Some(ch) => m.end() + ch.len_utf8(),
                None => break,
            }
        } else {
            m.end()
        };
    }
    out.push(Value::string(&s[last..]).into());
    Ok(Value::list(out))
}

fn parse_drv_name(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let s = ev.force_str(&a[0])?;
    let bytes = s.as_bytes();
    let split = (0..bytes.len())
        .find(|&i| bytes[i] == b'-' && bytes.get(i + 1).is_some_and(|c| !c.is_ascii_alphabetic()));
    let (name, version) = match split {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (&*s, ""),
    };
    let mut out: Attrs = BTreeMap::new();
    out.insert("name".into(), Value::string(name).into());
    out.insert("version".into(), Value::string(version).into());
    Ok(Value::attrs(out))
}

fn partition(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let f = ev.force_fn(&a[0])?;
    let (mut right, mut wrong) = (Vec::new(), Vec::new());
    for t in ev.force_list(&a[1])?.iter() {
        match ev.apply(f.clone(), t.clone(), None)? {
            Value::Bool(true) => right.push(t.clone()),
            Value::Bool(false) => wrong.push(t.clone()),
            v => return Err(expected(&v, "a Boolean")),
        }
    }
    let mut out: Attrs = BTreeMap::new();
    out.insert("right".into(), Value::list(right).into());
    out.insert("wrong".into(), Value::list(wrong).into());
    Ok(Value::attrs(out))
}

fn path_exists(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let p = ev.force_path(&a[0])?;
    Ok(Value::Bool(std::fs::symlink_metadata(&p).is_ok()))
}

fn read_dir(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let p = ev.force_path(&a[0])?;
    let entries = std::fs::read_dir(&p)
        .map_err(|e| err(format!("cannot read directory '{}': {e}", p.display())))?;
    let mut out: Attrs = BTreeMap::new();
    for entry in entries.flatten() {
        let kind = match entry.file_type() {
            Ok(t) if t.is_dir() => "directory",
            Ok(t) if t.is_symlink() => "symlink",
            Ok(t) if t.is_file() => "regular",
            _ => "unknown",
        };
        out.insert(
            entry.file_name().to_string_lossy().into(),
            Value::string(kind).into(),
        );
    }
    Ok(Value::attrs(out))
}

fn read_file_prim(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let p = ev.force_path(&a[0])?;
    Ok(Value::string(read_file(&p, None)?))
}

fn remove_attrs(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let set = ev.force_attrs(&a[0])?;
    let names = ev.force_list(&a[1])?;
    let mut out = (*set).clone();
    for t in names.iter() {
        let n = ev.force_str(t)?;
        out.remove(&*n);
    }
    Ok(Value::attrs(out))
}

fn replace_strings(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let from: Vec<Str> = ev
        .force_list(&a[0])?
        .iter()
        .map(|t| ev.force_str(t))
        .collect::<Result<_, _>>()?;
    let to_thunks = ev.force_list(&a[1])?;
    if from.len() != to_thunks.len() {
        return Err(err(
            "'from' and 'to' arguments passed to builtins.replaceStrings have different lengths",
        ));
    }
    let to: Vec<Str> = to_thunks
        .iter()
        .map(|t| ev.force_str(t))
        .collect::<Result<_, _>>()?;
    let s = ev.force_str(&a[2])?;
    let mut out = String::with_capacity(s.len());
    let mut p = 0;
    loop {
        let mut matched = false;
        for (f, t) in from.iter().zip(&to) {
            if s[p..].starts_with(&**f) {
                matched = true;
                out.push_str(t);
                if f.is_empty() {
                    // An empty pattern matches before every character and at the end.
                    match s[p..].chars().next() {
                        Some(c) => {
                            out.push(c);
                            p += c.len_utf8();
                        }
                        None => return Ok(Value::string(out)),
                    }
                } else {
                    p += f.len();
                }
                break;
            }
        }
        if !matched {
            match s[p..].chars().next() {
                Some(c) => {
                    out.push(c);
                    p += c.len_utf8();
                }
                None => break,
            }
        }
    }
    Ok(Value::string(out))
}

fn sort(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let f = ev.force_fn(&a[0])?;
    let list = ev.force_list(&a[1])?;
    let mut items: Vec<Thunk> = list.iter().cloned().collect();
    // A stable merge sort with a comparator that can fail.
    let mut width = 1;
    let n = items.len();
    let mut buf: Vec<Thunk> = Vec::with_capacity(n);
    while width < n {
        buf.clear();
        let mut start = 0;
        while start < n {
            let mid = (start + width).min(n);
            let end = (start + 2 * width).min(n);
            let (mut i, mut j) = (start, mid);
            while i < mid && j < end {
                // Take from the right only when it is strictly less (stability).
                let less = match ev.call2(&f, items[j].clone(), items[i].clone())? {
                    Value::Bool(b) => b,
                    v => return Err(expected(&v, "a Boolean")),
                };
                if less {
                    buf.push(items[j].clone());
                    j += 1;
                } else {
                    buf.push(items[i].clone());
                    i += 1;
                }
            }
            buf.extend(items[i..mid].iter().cloned());
            buf.extend(items[j..end].iter().cloned());
            start = end;
        }
        std::mem::swap(&mut items, &mut buf);
        width *= 2;
    }
    Ok(Value::list(items))
}

fn string_length(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let v = ev.force(&a[0])?;
    let s = ev.coerce_to_string(v, false, None)?;
    Ok(Value::Int(s.len() as i64))
}

fn substring(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let start = ev.force_int(&a[0])?;
    let len = ev.force_int(&a[1])?;
    let v = ev.force(&a[2])?;
    let s = ev.coerce_to_string(v, false, None)?;
    if start < 0 {
        return Err(err("negative start position in 'substring'"));
    }
    let bytes = s.as_bytes();
    let start = (start as usize).min(bytes.len());
    let end = if len < 0 {
        bytes.len()
    } else {
        start.saturating_add(len as usize).min(bytes.len())
    };
    Ok(Value::string(
        String::from_utf8_lossy(&bytes[start..end]).into_owned(),
    ))
}

fn to_path(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let p = ev.force_path(&a[0])?;
    Ok(Value::string(p.display().to_string()))
}

fn to_string(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let v = ev.force(&a[0])?;
    Ok(Value::string(ev.coerce_to_string(v, true, None)?))
}

fn trace(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let v = ev.force(&a[0])?;
    let shown = match &v {
        Value::String(s) => s.to_string(),
        other => json::show(ev, other).unwrap_or_else(|_| format!("{other:?}")),
    };
    eprintln!("trace: {shown}");
    ev.force(&a[1])
}

fn try_eval(ev: &mut Evaluator, a: &[Thunk]) -> R {
    let mut out: Attrs = BTreeMap::new();
    match ev.force(&a[0]) {
        Ok(v) => {
            out.insert("success".into(), Value::Bool(true).into());
            out.insert("value".into(), v.into());
        }
        Err(e) if matches!(e.kind, ErrorKind::Throw | ErrorKind::Assert) => {
            out.insert("success".into(), Value::Bool(false).into());
            out.insert("value".into(), Value::Bool(false).into());
        }
        Err(e) => return Err(e),
    }
    Ok(Value::attrs(out))
}

fn type_of(ev: &mut Evaluator, a: &[Thunk]) -> R {
    Ok(Value::string(ev.force(&a[0])?.type_of()))
}

fn identity(ev: &mut Evaluator, a: &[Thunk]) -> R {
    ev.force(&a[0])
}

fn unsafe_get_attr_pos(ev: &mut Evaluator, a: &[Thunk]) -> R {
    ev.force_str(&a[0])?;
    ev.force_attrs(&a[1])?;
    Ok(Value::Null)
}
