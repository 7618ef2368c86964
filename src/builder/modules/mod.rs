//! The NixOS module system, natively: modules (sets, or functions of `{ config, lib, pkgs, … }`)
//! with `imports`, `options` and `config`; definitions merged by type and priority (`mkIf`,
//! `mkMerge`, `mkOverride`, `mkOrder`, as `lib` writes them); `config` the lazy fixpoint of the
//! merged definitions, so a definition may read other options. Options are those the Rhai option
//! modules declare ([`Declarations`]) and those the user's modules declare with `mkOption`.
//! Unknown options and wrong types are all reported at once, each at its definition.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;

use super::options::{Declarations, HOW_TO_FIND_OPTIONS, OptType, OptionDecl, Renamed};
use super::plain::Value as Plain;
use crate::nixlang::compile::Pos;
use crate::nixlang::{Attrs, EvalError, Evaluator, HashMap, HashSet, Location, Str, Thunk, Value};

/// The default priority of a definition (`mkOverride 100`) and of ordering (`mkOrder 1000`).
const PRIORITY_PLAIN: i64 = 100;
const ORDER_DEFAULT: i64 = 1000;
/// How deeply submodules may nest.
const MAX_SUBMODULE_DEPTH: usize = 64;

/// A configuration evaluated: the options the Rhai modules declared, as plain data.
pub struct Evaluated {
    pub config: Plain,
}

/// One definition of an option (or of a set above options).
#[derive(Clone)]
struct Def {
    value: Thunk,
    /// `mkIf` conditions met on the way down, all of which must hold (shared: a definition
    /// is copied for every attribute below it).
    conds: Rc<Vec<Thunk>>,
    priority: Option<i64>,
    order: i64,
    file: Str,
    pos: Option<Pos>,
}

impl Def {
    fn location(&self) -> String {
        match &self.pos {
            Some(p) => p.src.loc(p.offset as usize).to_string(),
            None => self.file.to_string(),
        }
    }

    fn error(&self, msg: impl Into<String>) -> EvalError {
        match &self.pos {
            Some(p) => p.err(msg),
            None => EvalError::at(&Location::new(&*self.file, 0, 0), msg),
        }
    }
}

/// How an option merges its definitions.
#[derive(Clone)]
enum Ty {
    /// All definitions must be equal (bool, int, str, enum, …); `check` is the Nix predicate
    /// of a user's type, `None` for Rhai options (checked with their [`OptType`] at the end).
    Equal {
        name: String,
        check: Option<Value>,
    },
    List(Box<Ty>),
    AttrsOf(Box<Ty>),
    /// `anything`/`attrs`: sets merge recursively, lists concatenate, the rest must be equal.
    Anything,
    NullOr(Box<Ty>),
    /// Strings joined with a separator (`lines`, `commas`, `separatedString`).
    Separated(String),
    /// The type's modules, and whether a set defined for it is its `config` whatever it
    /// holds (`shorthandOnlyDefinesConfig`, as `types.submodule` has it).
    Submodule(Vec<Thunk>, bool),
    Either(Box<Ty>, Box<Ty>, Value, Value),
    Coerced {
        from: Value,
        func: Value,
        to: Box<Ty>,
    },
    Unique(Box<Ty>),
    /// `raw`, `functionTo`, `unspecified`, `package`: one definition, or equal ones; the last
    /// one wins otherwise for functions.
    Raw(String),
}

impl Ty {
    fn from_rhai(t: &OptType) -> Ty {
        match t {
            OptType::ListOf(e) => Ty::List(Box::new(Ty::from_rhai(e))),
            OptType::AttrsOf(e) => Ty::AttrsOf(Box::new(Ty::from_rhai(e))),
            OptType::NullOr(e) => Ty::NullOr(Box::new(Ty::from_rhai(e))),
            OptType::Attrs | OptType::Any | OptType::Opaque => Ty::Anything,
            other => Ty::Equal {
                name: format!("{other:?}"),
                check: None,
            },
        }
    }
}

/// What an option is.
struct OptDecl {
    ty: LazyTy,
    /// Rhai options: the declared type, checked on the final value.
    rhai: Option<OptType>,
    /// Rhai options: the default as plain data (what an option nobody defines is).
    plain_default: Plain,
    /// A default made from an attribute name: the Nix function, and which component of the
    /// option's path is the name.
    by_name: Option<(Value, usize)>,
    default: Option<Thunk>,
    apply: Option<Value>,
    /// A user's option (not handed to the Rhai modules).
    user: bool,
}

/// An option's type: known (Rhai's), or a `lib.types` value read when the option is first
/// merged (a type may depend on other declarations, as `mkAliasOptionModule`'s does).
enum LazyTy {
    Ready(Ty),
    Nix(Thunk, std::cell::OnceCell<Ty>),
}

impl LazyTy {
    fn get(&self, ev: &mut Evaluator) -> Result<Ty, EvalError> {
        match self {
            LazyTy::Ready(t) => Ok(t.clone()),
            LazyTy::Nix(thunk, cell) => {
                if let Some(t) = cell.get() {
                    return Ok(t.clone());
                }
                let t = ty_of(ev, thunk)?;
                let _ = cell.set(t.clone());
                Ok(t)
            }
        }
    }
}

#[derive(Clone)]
enum Node {
    Set {
        children: BTreeMap<Str, Rc<Node>>,
        /// `<name>`: any attribute name (Rhai's `users.users.<name>.…`).
        any: Option<Rc<Node>>,
        /// What the options below are, found when first asked (once the tree is complete).
        below: std::cell::OnceCell<Below>,
    },
    Opt(Rc<OptDecl>),
}

/// What kinds of options a node of the declarations has at or below it.
#[derive(Clone, Copy, Default)]
struct Below {
    /// A Rhai-declared option (one handed to the option modules as plain data).
    rhai: bool,
    /// An option whose default is made from an attribute name (`default_nix`).
    name_defaults: bool,
}

impl Node {
    fn empty() -> Node {
        Node::Set {
            children: BTreeMap::new(),
            any: None,
            below: std::cell::OnceCell::new(),
        }
    }

    fn below(&self) -> Below {
        match self {
            Node::Opt(d) => Below {
                rhai: !d.user,
                name_defaults: d.by_name.is_some(),
            },
            Node::Set {
                children,
                any,
                below,
            } => *below.get_or_init(|| {
                children
                    .values()
                    .chain(any)
                    .map(|c| c.below())
                    .fold(Below::default(), |a, b| Below {
                        rhai: a.rhai || b.rhai,
                        name_defaults: a.name_defaults || b.name_defaults,
                    })
            }),
        }
    }
}

/// One module, its function applied.
struct Module {
    config: Thunk,
    file: Str,
}

/// The state of one evaluation (the top-level configuration, or one submodule value).
struct System {
    root: Rc<Node>,
    modules: Vec<Module>,
    /// The module arguments (`lib`, `pkgs`, `config`, …).
    args: Rc<Attrs>,
    /// The definitions found at each path so far (see [`defs_at`]).
    defs: std::cell::RefCell<HashMap<Vec<Str>, Rc<Vec<Def>>>>,
    /// The definitions at each path so far as sets, properties unwrapped (see [`sets_at`]).
    sets: std::cell::RefCell<HashMap<Vec<Str>, Rc<SetDefs>>>,
    /// Where this system is: a submodule's option path (`containers.web`), in messages.
    prefix: Vec<Str>,
}

impl System {
    /// Breaks the reference cycles of a system not read any more (`config` holds the
    /// system; the definitions kept hold `config`), so that it is freed.
    fn release(&self) {
        self.release_definitions();
        self.args.values().for_each(Thunk::release);
    }

    /// [`System::release`] but for the module arguments given to it, which another system may
    /// be given.
    fn release_definitions(&self) {
        if let Ok(mut defs) = self.defs.try_borrow_mut() {
            defs.clear();
        }
        if let Ok(mut sets) = self.sets.try_borrow_mut() {
            sets.clear();
        }
        for m in &self.modules {
            m.config.release();
        }
        // `config` and `options` are this system's own (they hold it).
        for own in ["config", "options"] {
            self.args.get(own).map(Thunk::release);
        }
    }

    /// Each module's `config` as a definition of the whole configuration.
    fn roots(&self) -> Vec<Def> {
        self.modules
            .iter()
            .map(|m| Def {
                value: m.config.clone(),
                conds: Rc::default(),
                priority: None,
                order: ORDER_DEFAULT,
                file: m.file.clone(),
                pos: None,
            })
            .collect()
    }
}

/// A module before collection: its value and the file it is from.
struct Pending {
    value: Thunk,
    file: Str,
}

/// Evaluates the configuration made of `modules` (values, each with the file it came from)
/// against the Rhai modules' `declarations`, with the module arguments `args` (`lib`, `pkgs`,
/// …), and returns the Rhai-declared options as plain data.
pub fn evaluate(
    ev: &mut Evaluator,
    declarations: &Declarations,
    modules: Vec<(Thunk, String)>,
    args: Attrs,
) -> Result<Evaluated, Vec<EvalError>> {
    let mut errors = Vec::new();
    let root = rhai_tree(ev, declarations)?;
    let mut system = build_modules(ev, root, modules.clone(), args.clone())?;
    let renamed = check_unknown(ev, &system, Some(declarations), &[], &mut errors);
    if errors.is_empty() && !renamed.is_empty() {
        // Old names defined: evaluated again with NixOS's modules for them (rare, so they cost
        // nothing to the configurations that use the new names).
        system.release_definitions();
        let mut modules = modules;
        modules.extend(rename_modules(ev, &args, &renamed).map_err(|e| vec![e])?);
        let root = rhai_tree(ev, declarations)?;
        system = build_modules(ev, root, modules, args)?;
        check_unknown(ev, &system, Some(declarations), &[], &mut errors);
    }
    if !errors.is_empty() {
        return Err(by_place(errors));
    }
    let config = plain_config(ev, &system, &system.root, &mut Vec::new(), &mut errors);
    // Plain data now: what made it is freed.
    system.release();
    match config {
        Ok(config) if errors.is_empty() => Ok(Evaluated { config }),
        Ok(_) => Err(by_place(errors)),
        Err(e) => {
            errors.push(e);
            Err(errors)
        }
    }
}

/// Where the configuration of `modules` defines the option at `path` (its last definition),
/// or the nearest option or set above it that it defines: for a message about the value an
/// option module found there. The evaluation keeps no places (all is well, mostly); the
/// modules are collected again for this, and only the definitions on the path looked at.
pub fn definition_place(
    ev: &mut Evaluator,
    declarations: &Declarations,
    modules: Vec<(Thunk, String)>,
    args: Attrs,
    path: &[&str],
) -> Option<Pos> {
    let root = rhai_tree(ev, declarations).ok()?;
    let system = build_modules(ev, root, modules, args).ok()?;
    let path: Vec<Str> = path.iter().map(|c| Str::from(*c)).collect();
    let place = (1..=path.len()).rev().find_map(|n| {
        let defs = defs_at(ev, &system, &path[..n]).ok()?;
        defs.iter().rev().find_map(|d| d.pos.clone())
    });
    system.release();
    place
}

/// `lib.mkRenamedOptionModule from to` of each of `renamed`, as modules of the configuration.
fn rename_modules(
    ev: &mut Evaluator,
    args: &Attrs,
    renamed: &[Renamed],
) -> Result<Vec<(Thunk, String)>, EvalError> {
    let no_lib = || EvalError::at(&Location::new("<renamed>", 0, 0), "no lib to rename with");
    let lib = ev.force(args.get("lib").ok_or_else(no_lib)?)?;
    let Value::Attrs(lib) = lib else {
        return Err(no_lib());
    };
    let rename = ev.force(lib.get("mkRenamedOptionModule").ok_or_else(no_lib)?)?;
    let path = |p: &[String]| {
        let names = p.iter().map(|c| Thunk::value(Value::string(c.as_str())));
        Thunk::value(Value::list(names.collect()))
    };
    let mut modules = Vec::new();
    for r in renamed {
        let partly = ev.apply(rename.clone(), path(&r.from), None)?;
        let module = ev.apply(partly, path(&r.to), None)?;
        let origin = format!("<{} renamed to {}>", r.from.join("."), r.to.join("."));
        modules.push((Thunk::value(module), origin));
    }
    Ok(modules)
}

/// The declarations a tree was made from, and the tree (see [`RHAI_TREE`]).
type KeptTree = (Rc<Vec<OptionDecl>>, Rc<Node>);

thread_local! {
    /// The tree of the Rhai-declared options last made in this thread, and the declarations
    /// it was made from: an evaluation of the same declarations (with the shared globals, as
    /// their `default_nix` functions are compiled with them) starts from a copy of its root,
    /// and the options of the user's modules are added to copies of the nodes on their paths.
    static RHAI_TREE: std::cell::RefCell<Option<KeptTree>> =
        const { std::cell::RefCell::new(None) };
}

/// The tree of `declarations` (see [`RHAI_TREE`]).
fn rhai_tree(ev: &mut Evaluator, declarations: &Declarations) -> Result<Node, Vec<EvalError>> {
    let shared = ev.has_shared_globals();
    let kept = RHAI_TREE.with_borrow(|kept| match kept {
        Some((made_from, root))
            if shared
                && (Rc::ptr_eq(made_from, &declarations.options)
                    || *made_from == declarations.options) =>
        {
            Some(Node::clone(root))
        }
        _ => None,
    });
    if let Some(root) = kept {
        return Ok(root);
    }
    let mut root = Node::empty();
    for decl in declarations.options.iter() {
        let default = if decl.default == Plain::Null {
            None
        } else {
            Some(Thunk::value(from_plain(&decl.default)))
        };
        let by_name = match &decl.default_by_name {
            Some(text) => {
                let at = decl
                    .path
                    .iter()
                    .rposition(|p| p == "<name>")
                    .ok_or_else(|| {
                        vec![EvalError::at(
                            &Location::new(&decl.module, 0, 0),
                            format!("{}: default_nix needs a <name> in the path", decl.dotted()),
                        )]
                    })?;
                let origin = format!("<default of {} in {}>", decl.dotted(), decl.module);
                let f = ev
                    .eval_text(
                        text,
                        crate::nixlang::SourceMap::new(origin.as_ref(), text, 0),
                        "/".as_ref(),
                    )
                    .map_err(|e| vec![e])?;
                Some((f, at))
            }
            None => None,
        };
        let d = OptDecl {
            ty: LazyTy::Ready(Ty::from_rhai(&decl.ty)),
            rhai: Some(decl.ty.clone()),
            plain_default: match decl.ty {
                OptType::Opaque => Plain::Bool(!plain_is_empty(&decl.default)),
                _ => decl.default.clone(),
            },
            by_name,
            default: default.or_else(|| Some(Thunk::value(Value::Null))),
            apply: None,
            user: false,
        };
        insert_decl(&mut root, &decl.path, Rc::new(d)).map_err(|e| vec![e])?;
    }
    if shared {
        let kept = (declarations.options.clone(), Rc::new(root.clone()));
        RHAI_TREE.with_borrow_mut(|t| *t = Some(kept));
    }
    Ok(root)
}

/// Evaluates `modules` whose options are their own (`mkOption`s only, no Rhai declarations),
/// reports unknown options as [`evaluate`] does, and returns `config` (lazy: each option is
/// merged and type-checked when it is read).
pub fn evaluate_declared(
    ev: &mut Evaluator,
    modules: Vec<(Thunk, String)>,
    args: Attrs,
) -> Result<Value, Vec<EvalError>> {
    let root = Node::empty();
    let system = build_modules(ev, root, modules, args)?;
    let mut errors = Vec::new();
    check_unknown(ev, &system, None, &[], &mut errors);
    if !errors.is_empty() {
        return Err(by_place(errors));
    }
    let root = system.root.clone();
    node_value(ev, &system, &root, &[]).map_err(|e| vec![e])
}

/// The system of `modules` against the declarations in `root`, with `_module.args` (more
/// arguments for modules) declared.
fn build_modules(
    ev: &mut Evaluator,
    mut root: Node,
    modules: Vec<(Thunk, String)>,
    args: Attrs,
) -> Result<Rc<System>, Vec<EvalError>> {
    insert_decl(
        &mut root,
        &["_module".into(), "args".into()],
        Rc::new(OptDecl {
            ty: LazyTy::Ready(Ty::AttrsOf(Box::new(Ty::Raw("raw".into())))),
            rhai: None,
            plain_default: Plain::Null,
            by_name: None,
            default: Some(Thunk::value(Value::attrs(Attrs::new()))),
            apply: None,
            user: true,
        }),
    )
    .map_err(|e| vec![e])?;
    let pending = modules
        .into_iter()
        .map(|(value, file)| Pending {
            value,
            file: file.into(),
        })
        .collect();
    build_system(ev, root, pending, args, Vec::new()).map_err(|e| vec![e])
}

/// Errors in the order of their places (file, line, column).
fn by_place(mut errors: Vec<EvalError>) -> Vec<EvalError> {
    errors.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    errors
}

fn insert_decl(node: &mut Node, path: &[String], decl: Rc<OptDecl>) -> Result<(), EvalError> {
    let Some((first, rest)) = path.split_first() else {
        return Err(EvalError::at(
            &Location::new("<options>", 0, 0),
            "an option without a name",
        ));
    };
    let Node::Set {
        children,
        any,
        below,
    } = node
    else {
        return Err(EvalError::at(
            &Location::new("<options>", 0, 0),
            format!("an option is declared below the option ‘{first}’"),
        ));
    };
    // What is below changes.
    *below = std::cell::OnceCell::new();
    let slot = if first == "<name>" {
        any.get_or_insert_with(|| Rc::new(Node::empty()))
    } else {
        children
            .entry(first.as_str().into())
            .or_insert_with(|| Rc::new(Node::empty()))
    };
    if rest.is_empty() {
        if matches!(&**slot, Node::Opt(_)) || !is_empty_set(slot) {
            return Err(EvalError::at(
                &Location::new("<options>", 0, 0),
                format!("the option ‘{}’ is declared twice", path.join(".")),
            ));
        }
        *slot = Rc::new(Node::Opt(decl));
        return Ok(());
    }
    // A node shared with the kept tree (see [`RHAI_TREE`]) is copied first.
    insert_decl(Rc::make_mut(slot), rest, decl)
}

fn is_empty_set(n: &Node) -> bool {
    matches!(n, Node::Set { children, any, .. } if children.is_empty() && any.is_none())
}

/// Collects the modules (with their imports), adds the options they declare to `root`, and
/// ties `config` to the merged result.
fn build_system(
    ev: &mut Evaluator,
    mut root: Node,
    pending: Vec<Pending>,
    args: Attrs,
    prefix: Vec<Str>,
) -> Result<Rc<System>, EvalError> {
    let depth = prefix.len();
    if depth > MAX_SUBMODULE_DEPTH {
        return Err(EvalError::at(
            &Location::new("<modules>", 0, 0),
            "submodules nested too deeply",
        ));
    }
    // `config` and `options` are this system's, made when first used (after collection).
    let cell: Rc<std::cell::OnceCell<Rc<System>>> = Rc::new(std::cell::OnceCell::new());
    let from_system = |what: &'static str, f: NodeFn| {
        let cell = cell.clone();
        Thunk::native(Box::new(move |ev: &mut Evaluator| {
            let system = cell.get().cloned().ok_or_else(|| {
                EvalError::at(
                    &Location::new("<modules>", 0, 0),
                    format!("{what} used while modules are collected (in 'imports'?)"),
                )
            })?;
            let root = system.root.clone();
            f(ev, &system, &root, &[])
        }))
    };
    let config = from_system("config", node_value);
    let options = from_system("options", options_value);
    let mut args = args;
    args.insert("config".into(), config.clone());
    args.insert("options".into(), options);
    let args = Rc::new(args);

    let mut modules = Vec::new();
    let mut seen: HashSet<PathBuf> = HashSet::default();
    let mut work: Vec<Pending> = pending;
    work.reverse();
    let mut option_sets: Vec<(Thunk, Str)> = Vec::new();
    while let Some(p) = work.pop() {
        let mut file = p.file.clone();
        let mut v = ev.force(&p.value)?;
        // A path, or an absolute path as a string (`"${modulesPath}/…"`), as NixOS takes it.
        let path = match &v {
            Value::Path(path) => Some(path.to_path_buf()),
            Value::String(s) if s.starts_with('/') => Some(PathBuf::from(&**s)),
            _ => None,
        };
        if let Some(path) = path {
            let mut target = path;
            if target.is_dir() {
                target.push("default.nix");
            }
            if !seen.insert(target.clone()) {
                continue;
            }
            file = target.display().to_string().into();
            v = ev.import(&target, None)?;
        }
        if v.is_function() {
            v = apply_module(ev, v, &args, &config, &file)?;
        }
        let Value::Attrs(m) = v else {
            return Err(EvalError::at(
                &Location::new(&*file, 0, 0),
                format!(
                    "a module is {} while a set or a function was expected",
                    v.describe()
                ),
            ));
        };
        if let Some(f) = m.get("_file")
            && let Ok(Value::String(s)) = ev.force(f)
        {
            file = s;
        }
        let structured = m.contains_key("config") || m.contains_key("options");
        let mut imports = Vec::new();
        if let Some(i) = m.get("imports") {
            for t in ev.force_list(i)?.iter() {
                imports.push(Pending {
                    value: t.clone(),
                    file: file.clone(),
                });
            }
        }
        let meta = [
            "imports",
            "_file",
            "key",
            "disabledModules",
            "meta",
            "_class",
            "freeformType",
        ];
        let config_part = if structured {
            for k in m.keys() {
                if !meta.contains(&&**k) && &**k != "config" && &**k != "options" {
                    return Err(EvalError::at(
                        &Location::new(&*file, 0, 0),
                        format!(
                            "the module has an unsupported attribute ‘{k}’ beside ‘config’ or \
                             ‘options’: move it into ‘config’"
                        ),
                    ));
                }
            }
            if let Some(o) = m.get("options") {
                option_sets.push((o.clone(), file.clone()));
            }
            m.get("config")
                .cloned()
                .unwrap_or_else(|| Thunk::value(Value::attrs(Attrs::new())))
        } else {
            let rest: Attrs = m
                .iter()
                .filter(|(k, _)| !meta.contains(&&***k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let same = rest.len() == m.len();
            Thunk::value(if same {
                Value::Attrs(m.clone())
            } else {
                Value::attrs(rest)
            })
        };
        modules.push(Module {
            config: config_part,
            file: file.clone(),
        });
        for i in imports.into_iter().rev() {
            work.push(i);
        }
    }
    for (options, file) in option_sets {
        declare_user_options(ev, &mut root, &options, &file, &mut Vec::new())?;
    }
    let system = Rc::new(System {
        root: Rc::new(root),
        modules,
        args,
        defs: Default::default(),
        sets: Default::default(),
        prefix,
    });
    let _ = cell.set(system.clone());
    Ok(system)
}

/// Calls a module function with the arguments it names: the standard ones, else
/// `config._module.args.NAME` (lazily, as NixOS does).
fn apply_module(
    ev: &mut Evaluator,
    f: Value,
    args: &Rc<Attrs>,
    config: &Thunk,
    file: &Str,
) -> Result<Value, EvalError> {
    let (wanted, ellipsis) = match &f {
        Value::Lambda(c) => match &c.def.param {
            crate::nixlang::compile::Param::Pattern {
                formals, ellipsis, ..
            } => (
                formals.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
                *ellipsis,
            ),
            crate::nixlang::compile::Param::Ident => (Vec::new(), true),
        },
        _ => (Vec::new(), true),
    };
    let mut given: Attrs = if ellipsis {
        (**args).clone()
    } else {
        Attrs::new()
    };
    for name in wanted {
        if let Some(t) = args.get(&name) {
            given.insert(name, t.clone());
            continue;
        }
        let (config, n, file) = (config.clone(), name.clone(), file.clone());
        given.insert(
            name,
            Thunk::native(Box::new(move |ev: &mut Evaluator| {
                let c = ev.force_attrs(&config)?;
                let extra = c.get("_module").cloned();
                let found = match extra {
                    Some(m) => {
                        let m = ev.force_attrs(&m)?;
                        match m.get("args") {
                            Some(a) => ev.force_attrs(a)?.get(&n).cloned(),
                            None => None,
                        }
                    }
                    None => None,
                };
                match found {
                    Some(t) => ev.force(&t),
                    None => Err(EvalError::at(
                        &Location::new(&*file, 0, 0),
                        format!(
                            "the module argument ‘{n}’ is not given (ncsh gives config, lib, \
                             pkgs, options, modulesPath; define _module.args.{n} for others)"
                        ),
                    )),
                }
            })),
        );
    }
    ev.apply(f, Thunk::value(Value::attrs(given)), None)
}

/// Adds the options a module declares (`options.a.b = mkOption { … };`) to `node`.
fn declare_user_options(
    ev: &mut Evaluator,
    node: &mut Node,
    value: &Thunk,
    file: &Str,
    path: &mut Vec<String>,
) -> Result<(), EvalError> {
    let set = ev.force_attrs(value)?;
    if is_type(ev, &set, "option")? {
        let get = |k: &str| set.get(k).cloned();
        let ty = match get("type") {
            Some(t) => LazyTy::Nix(t, std::cell::OnceCell::new()),
            None => LazyTy::Ready(Ty::Anything),
        };
        let apply = match get("apply") {
            Some(a) => Some(ev.force(&a)?),
            None => None,
        };
        let decl = OptDecl {
            ty,
            rhai: None,
            plain_default: Plain::Null,
            by_name: None,
            default: get("default"),
            apply,
            user: true,
        };
        return insert_decl(node, path, Rc::new(decl))
            .map_err(|e| EvalError::at(&Location::new(&**file, 0, 0), e.message));
    }
    for (k, v) in set.iter() {
        path.push(k.to_string());
        declare_user_options(ev, node, v, file, path)?;
        path.pop();
    }
    Ok(())
}

/// Does `set` have `_type = kind`?
fn is_type(ev: &mut Evaluator, set: &Attrs, kind: &str) -> Result<bool, EvalError> {
    match set.get("_type") {
        Some(t) => Ok(matches!(ev.force(t)?, Value::String(s) if &*s == kind)),
        None => Ok(false),
    }
}

/// A `lib.types` value as the merge it stands for.
fn ty_of(ev: &mut Evaluator, t: &Thunk) -> Result<Ty, EvalError> {
    let set = ev.force_attrs(t)?;
    let name = match set.get("name") {
        Some(n) => ev.force_str(n)?.to_string(),
        None => "unspecified".to_string(),
    };
    let field = |k: &str| set.get(k).cloned();
    let elem = |ev: &mut Evaluator| -> Result<Box<Ty>, EvalError> {
        match field("elemType") {
            Some(e) => Ok(Box::new(ty_of(ev, &e)?)),
            None => Ok(Box::new(Ty::Anything)),
        }
    };
    let check = match field("check") {
        Some(c) => Some(ev.force(&c)?),
        None => None,
    };
    Ok(match name.as_str() {
        "listOf" | "nonEmptyListOf" => Ty::List(elem(ev)?),
        "attrsOf" | "lazyAttrsOf" => Ty::AttrsOf(elem(ev)?),
        "nullOr" => Ty::NullOr(elem(ev)?),
        "lines" => Ty::Separated("\n".into()),
        "commas" => Ty::Separated(",".into()),
        "separatedString" | "envVar" => {
            let sep = match field("separator") {
                Some(s) => ev.force_str(&s)?.to_string(),
                None if name == "envVar" => ":".into(),
                None => String::new(),
            };
            Ty::Separated(sep)
        }
        "submodule" => {
            let modules = match field("modules") {
                Some(m) => ev.force_list(&m)?.iter().cloned().collect(),
                None => Vec::new(),
            };
            let shorthand = match field("shorthandOnlyDefinesConfig") {
                Some(b) => matches!(ev.force(&b)?, Value::Bool(true)),
                None => false,
            };
            Ty::Submodule(modules, shorthand)
        }
        "either" | "oneOf" => {
            let (Some(l), Some(r)) = (field("left"), field("right")) else {
                return Ok(Ty::Anything);
            };
            let (lt, rt) = (ty_of(ev, &l)?, ty_of(ev, &r)?);
            let lc = type_check(ev, &l)?;
            let rc = type_check(ev, &r)?;
            Ty::Either(Box::new(lt), Box::new(rt), lc, rc)
        }
        "coercedTo" => {
            let (Some(from), Some(func), Some(to)) = (
                field("coercedType"),
                field("coerceFunc"),
                field("finalType"),
            ) else {
                return Ok(Ty::Anything);
            };
            let from = type_check(ev, &from)?;
            let func = ev.force(&func)?;
            Ty::Coerced {
                from,
                func,
                to: Box::new(ty_of(ev, &to)?),
            }
        }
        "uniq" | "unique" => Ty::Unique(elem(ev)?),
        "attrs" | "anything" => Ty::Anything,
        "raw" | "unspecified" | "functionTo" | "package" | "deferredModule" | "pkgs" => {
            Ty::Raw(name)
        }
        _ => Ty::Equal { name, check },
    })
}

fn type_check(ev: &mut Evaluator, t: &Thunk) -> Result<Value, EvalError> {
    let set = ev.force_attrs(t)?;
    match set.get("check") {
        Some(c) => ev.force(c),
        None => Err(EvalError::at(
            &Location::new("<lib.types>", 0, 0),
            "a type without check",
        )),
    }
}

/// The definitions at `path` (below the top of `system`'s modules), mkIf conditions kept (not
/// evaluated), `mkMerge` split, `mkOverride` priorities carried down.
/// Kept per path (`System::defs`): every option below a path starts from its definitions.
fn defs_at(ev: &mut Evaluator, system: &System, path: &[Str]) -> Result<Rc<Vec<Def>>, EvalError> {
    let Some((key, parent)) = path.split_last() else {
        return Ok(Rc::new(system.roots()));
    };
    if let Some(known) = system.defs.borrow().get(path) {
        return Ok(known.clone());
    }
    let mut defs = Vec::new();
    for (d, a) in sets_at(ev, system, parent)?.iter() {
        if let Some(t) = a.get(key) {
            let pos = ev.attr_pos(a, key);
            defs.push(Def {
                value: t.clone(),
                pos: pos.or(d.pos.clone()),
                ..d.clone()
            });
        }
    }
    let defs = Rc::new(defs);
    system.defs.borrow_mut().insert(path.to_vec(), defs.clone());
    Ok(defs)
}

/// The definitions of a set, properties unwrapped, each with its set.
type SetDefs = Vec<(Def, Rc<Attrs>)>;

/// The definitions at `path` with properties unwrapped, each of which must be a set (as
/// `path` has attributes below it). Kept per path (`System::sets`), as every attribute below
/// starts from them.
fn sets_at(ev: &mut Evaluator, system: &System, path: &[Str]) -> Result<Rc<SetDefs>, EvalError> {
    if let Some(known) = system.sets.borrow().get(path) {
        return Ok(known.clone());
    }
    let mut sets = Vec::new();
    for def in defs_at(ev, system, path)?.iter() {
        let mut parts = Vec::new();
        unwrap_properties(ev, def.clone(), &mut parts)?;
        for d in parts {
            match ev.force(&d.value)? {
                Value::Attrs(a) => sets.push((d, a)),
                other => {
                    return Err(d.error(format!(
                        "a definition is {} where a set of options was expected",
                        other.describe()
                    )));
                }
            }
        }
    }
    let sets = Rc::new(sets);
    system.sets.borrow_mut().insert(path.to_vec(), sets.clone());
    Ok(sets)
}

/// Splits `mkMerge`, and moves `mkIf` conditions and `mkOverride`/`mkOrder` priorities from
/// the value into the definition, until the value is something else.
fn unwrap_properties(ev: &mut Evaluator, def: Def, out: &mut Vec<Def>) -> Result<(), EvalError> {
    let v = ev.force(&def.value)?;
    let Value::Attrs(a) = &v else {
        out.push(def);
        return Ok(());
    };
    let kind = match a.get("_type") {
        Some(t) => match ev.force(t)? {
            Value::String(s) => s,
            _ => {
                out.push(def);
                return Ok(());
            }
        },
        None => {
            out.push(def);
            return Ok(());
        }
    };
    let field = |k: &str| a.get(k).cloned();
    let content = || field("content").unwrap_or_else(|| Thunk::value(Value::Null));
    match &*kind {
        "if" => {
            let mut d = def.clone();
            Rc::make_mut(&mut d.conds)
                .push(field("condition").unwrap_or_else(|| Thunk::value(Value::Bool(false))));
            d.value = content();
            unwrap_properties(ev, d, out)
        }
        "merge" => {
            let contents = match field("contents") {
                Some(c) => ev.force_list(&c)?,
                None => Rc::new(Vec::new()),
            };
            for c in contents.iter() {
                let mut d = def.clone();
                d.value = c.clone();
                unwrap_properties(ev, d, out)?;
            }
            Ok(())
        }
        "override" => {
            let mut d = def.clone();
            if d.priority.is_none() {
                d.priority = Some(match field("priority") {
                    Some(p) => ev.force_int(&p)?,
                    None => PRIORITY_PLAIN,
                });
            }
            d.value = content();
            unwrap_properties(ev, d, out)
        }
        "order" => {
            let mut d = def.clone();
            d.order = match field("priority") {
                Some(p) => ev.force_int(&p)?,
                None => ORDER_DEFAULT,
            };
            d.value = content();
            unwrap_properties(ev, d, out)
        }
        _ => {
            out.push(def);
            Ok(())
        }
    }
}

/// `defs` with properties unwrapped, keeping those whose `mkIf` conditions all hold.
fn met_conditions(ev: &mut Evaluator, defs: &[Def]) -> Result<Vec<Def>, EvalError> {
    let mut parts = Vec::new();
    for d in defs {
        unwrap_properties(ev, d.clone(), &mut parts)?;
    }
    let mut kept = Vec::new();
    'defs: for d in parts {
        for c in d.conds.iter() {
            match ev.force(c)? {
                Value::Bool(true) => {}
                Value::Bool(false) => continue 'defs,
                other => {
                    return Err(d.error(format!(
                        "the condition of mkIf is {} while a Boolean was expected",
                        other.describe()
                    )));
                }
            }
        }
        kept.push(d);
    }
    Ok(kept)
}

/// The definitions that count at an option: [`met_conditions`], only those of the strongest
/// priority, in order.
fn discharge(ev: &mut Evaluator, defs: &[Def]) -> Result<Vec<Def>, EvalError> {
    let mut kept = met_conditions(ev, defs)?;
    let best = kept
        .iter()
        .map(|d| d.priority.unwrap_or(PRIORITY_PLAIN))
        .min();
    if let Some(best) = best {
        kept.retain(|d| d.priority.unwrap_or(PRIORITY_PLAIN) == best);
    }
    kept.sort_by_key(|d| d.order);
    Ok(kept)
}

/// The value of the configuration at `path` (a declared node).
fn node_value(
    ev: &mut Evaluator,
    system: &Rc<System>,
    node: &Rc<Node>,
    path: &[Str],
) -> Result<Value, EvalError> {
    match &**node {
        Node::Opt(decl) => option_value(ev, system, decl, path),
        Node::Set { children, any, .. } => {
            let mut names: Vec<(Str, Rc<Node>)> = children
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if let Some(any) = any {
                let defs = defs_at(ev, system, path)?;
                let defs = met_conditions(ev, &defs)?;
                let mut seen: HashSet<Str> = children.keys().cloned().collect();
                for d in defs {
                    if let Value::Attrs(a) = ev.force(&d.value)? {
                        for k in a.keys() {
                            if seen.insert(k.clone()) {
                                names.push((k.clone(), any.clone()));
                            }
                        }
                    }
                }
            }
            let mut out = Attrs::new();
            for (name, child) in names {
                let (system, mut p) = (system.clone(), path.to_vec());
                p.push(name.clone());
                out.insert(
                    name,
                    Thunk::native(Box::new(move |ev: &mut Evaluator| {
                        node_value(ev, &system, &child, &p)
                    })),
                );
            }
            Ok(Value::attrs(out))
        }
    }
}

/// What makes a value of a node of the declarations (`config`, `options`).
type NodeFn = fn(&mut Evaluator, &Rc<System>, &Rc<Node>, &[Str]) -> Result<Value, EvalError>;

/// The `options` module argument: the declared options as a tree of sets, each option a set
/// `{ _type = "option"; isDefined; value; default; type; }` (evaluated when used).
fn options_value(
    _ev: &mut Evaluator,
    system: &Rc<System>,
    node: &Rc<Node>,
    path: &[Str],
) -> Result<Value, EvalError> {
    let mut out = Attrs::new();
    match &**node {
        Node::Opt(decl) => {
            out.insert("_type".into(), Value::string("option").into());
            let (s, p) = (system.clone(), path.to_vec());
            out.insert(
                "isDefined".into(),
                Thunk::native(Box::new(move |ev: &mut Evaluator| {
                    let defs = defs_at(ev, &s, &p)?;
                    Ok(Value::Bool(!discharge(ev, &defs)?.is_empty()))
                })),
            );
            let (s, p, d) = (system.clone(), path.to_vec(), decl.clone());
            out.insert(
                "value".into(),
                Thunk::native(Box::new(move |ev: &mut Evaluator| {
                    option_value(ev, &s, &d, &p)
                })),
            );
            if let Some(default) = &decl.default {
                out.insert("default".into(), default.clone());
            }
            // The type: a user's `lib.types` value itself; a Rhai option's type by its name and
            // description.
            let ty = match (&decl.ty, &decl.rhai) {
                (LazyTy::Nix(t, _), _) => Some(t.clone()),
                (_, Some(t)) => {
                    let mut ty = Attrs::new();
                    ty.insert("_type".into(), Value::string("option-type").into());
                    ty.insert("name".into(), Value::string(t.nix_name()).into());
                    ty.insert("description".into(), Value::string(t.describe()).into());
                    Some(Value::attrs(ty).into())
                }
                _ => None,
            };
            if let Some(ty) = ty {
                out.insert("type".into(), ty);
            }
        }
        Node::Set { children, .. } => {
            for (name, child) in children {
                let (s, c, mut p) = (system.clone(), child.clone(), path.to_vec());
                p.push(name.clone());
                out.insert(
                    name.clone(),
                    Thunk::native(Box::new(move |ev: &mut Evaluator| {
                        options_value(ev, &s, &c, &p)
                    })),
                );
            }
        }
    }
    Ok(Value::attrs(out))
}

fn dotted(path: &[Str]) -> String {
    path.iter().map(|s| &**s).collect::<Vec<_>>().join(".")
}

fn option_value(
    ev: &mut Evaluator,
    system: &Rc<System>,
    decl: &OptDecl,
    path: &[Str],
) -> Result<Value, EvalError> {
    let defs = defs_at(ev, system, path)?;
    let defs = discharge(ev, &defs)?;
    // The option's whole path, for messages (and the submodules below it).
    let shown: Vec<Str> = system.prefix.iter().chain(path).cloned().collect();
    let shown = &shown[..];
    let value = if defs.is_empty()
        && let Some((f, at)) = &decl.by_name
        && let Some(name) = path.get(*at)
    {
        ev.apply(f.clone(), Thunk::value(Value::String(name.clone())), None)?
    } else if defs.is_empty() {
        match &decl.default {
            Some(d) => {
                // A default may use mkIf, mkMerge… too.
                let def = Def {
                    value: d.clone(),
                    conds: Rc::default(),
                    priority: None,
                    order: ORDER_DEFAULT,
                    file: "<default>".into(),
                    pos: None,
                };
                let defs = discharge(ev, &[def])?;
                if defs.is_empty() {
                    return Err(no_value(shown));
                }
                let ty = decl.ty.get(ev)?;
                merge(ev, &ty, defs, shown, system)?
            }
            None => return Err(no_value(shown)),
        }
    } else {
        let ty = decl.ty.get(ev)?;
        merge(ev, &ty, defs, shown, system)?
    };
    match &decl.apply {
        Some(f) => ev.apply(f.clone(), Thunk::value(value), None),
        None => Ok(value),
    }
}

fn no_value(path: &[Str]) -> EvalError {
    EvalError::at(
        &Location::new("<config>", 0, 0),
        format!(
            "the option ‘{}’ is used but not defined (and has no default)",
            dotted(path)
        ),
    )
}

fn merge(
    ev: &mut Evaluator,
    ty: &Ty,
    defs: Vec<Def>,
    path: &[Str],
    system: &Rc<System>,
) -> Result<Value, EvalError> {
    match ty {
        Ty::Equal { name, check } => {
            if let Some(check) = check {
                for d in &defs {
                    let ok = ev.apply(check.clone(), d.value.clone(), None)?;
                    if !matches!(ok, Value::Bool(true)) {
                        let v = ev.force(&d.value)?;
                        let shown = crate::nixlang::json::to_serde(ev, &v)
                            .map(|j| j.to_string())
                            .unwrap_or_else(|_| v.describe().to_string());
                        return Err(d.error(format!(
                            "the option ‘{}’ has a wrong type: expected {name}, found {shown}",
                            dotted(path)
                        )));
                    }
                }
            }
            merge_equal(ev, defs, path)
        }
        Ty::Raw(name) => {
            if name == "functionTo" {
                let last = defs.last().map(|d| d.value.clone());
                return match last {
                    Some(t) => ev.force(&t),
                    None => Err(no_value(path)),
                };
            }
            merge_equal(ev, defs, path)
        }
        Ty::Unique(inner) => {
            if defs.len() > 1 {
                return Err(defs[1].error(format!(
                    "the option ‘{}’ is defined more than once (also at {}), which its type \
                     does not allow",
                    dotted(path),
                    defs[0].location()
                )));
            }
            merge(ev, inner, defs, path, system)
        }
        Ty::List(elem) => {
            let mut out = Vec::new();
            for d in &defs {
                match ev.force(&d.value)? {
                    Value::List(items) => {
                        for (i, item) in items.iter().enumerate() {
                            if let Ty::Submodule(..) = **elem {
                                let mut p = path.to_vec();
                                p.push(format!("[{i}]").into());
                                let one = Def {
                                    value: item.clone(),
                                    ..d.clone()
                                };
                                out.push(Thunk::value(merge(ev, elem, vec![one], &p, system)?));
                            } else {
                                out.push(item.clone());
                            }
                        }
                    }
                    other => {
                        return Err(d.error(format!(
                            "the option ‘{}’ has a wrong type: expected a list, found {}",
                            dotted(path),
                            other.describe()
                        )));
                    }
                }
            }
            Ok(Value::list(out))
        }
        Ty::AttrsOf(elem) => merge_attrs(ev, defs, path, system, elem),
        Ty::Anything => {
            let mut kinds = Vec::new();
            for d in &defs {
                kinds.push(ev.force(&d.value)?);
            }
            if !kinds.is_empty() && kinds.iter().all(|v| matches!(v, Value::Attrs(_))) {
                // Sets merge attribute by attribute, properties (`mkIf`, `mkDefault`, …)
                // inside them applied, even when there is one definition (NixOS's
                // `anything` forces each attribute to see whether it is one). One set whose
                // attributes are no sets (nor properties) is itself the value, as is a
                // package (a set that is a string).
                if let [Value::Attrs(a)] = kinds.as_slice() {
                    let mut flat = true;
                    if !is_string_like(a) {
                        for t in a.values() {
                            if let Value::Attrs(inner) = ev.force(t)?
                                && !is_string_like(&inner)
                            {
                                flat = false;
                                break;
                            }
                        }
                    }
                    if flat {
                        return Ok(kinds.swap_remove(0));
                    }
                }
                return merge_attrs(ev, defs, path, system, &Ty::Anything);
            }
            if !kinds.is_empty() && kinds.iter().all(|v| matches!(v, Value::List(_))) {
                return merge(ev, &Ty::List(Box::new(Ty::Anything)), defs, path, system);
            }
            merge_equal(ev, defs, path)
        }
        Ty::NullOr(inner) => {
            let mut nulls = 0;
            for d in &defs {
                if matches!(ev.force(&d.value)?, Value::Null) {
                    nulls += 1;
                }
            }
            if nulls == defs.len() {
                Ok(Value::Null)
            } else if nulls == 0 {
                merge(ev, inner, defs, path, system)
            } else {
                merge_equal(ev, defs, path)
            }
        }
        Ty::Separated(sep) => {
            let mut parts = Vec::new();
            for d in &defs {
                match ev.force(&d.value)? {
                    Value::String(s) => parts.push(s.to_string()),
                    other => {
                        return Err(d.error(format!(
                            "the option ‘{}’ has a wrong type: expected a string, found {}",
                            dotted(path),
                            other.describe()
                        )));
                    }
                }
            }
            Ok(Value::string(parts.join(sep)))
        }
        Ty::Submodule(modules, shorthand) => {
            let mut pending: Vec<Pending> = modules
                .iter()
                .map(|m| Pending {
                    value: m.clone(),
                    file: "<submodule>".into(),
                })
                .collect();
            for d in &defs {
                let mut value = d.value.clone();
                // As NixOS's submoduleWith: a set is the submodule's `config`, even one with
                // a `config` attribute (containers.<name>.config is an option).
                if *shorthand && let Value::Attrs(_) = ev.force(&value)? {
                    let mut wrapped = Attrs::new();
                    wrapped.insert("config".into(), value);
                    value = Thunk::value(Value::attrs(wrapped));
                }
                pending.push(Pending {
                    value,
                    file: d.file.clone(),
                });
            }
            let mut args = Attrs::new();
            for k in ["lib", "pkgs", "modulesPath"] {
                if let Some(v) = system.args.get(k) {
                    args.insert(k.into(), v.clone());
                }
            }
            if let Some(last) = path.last() {
                args.insert("name".into(), Thunk::value(Value::String(last.clone())));
            }
            let sub = build_system(ev, Node::empty(), pending, args, path.to_vec())?;
            let mut errors = Vec::new();
            check_unknown(ev, &sub, None, path, &mut errors);
            if let Some(e) = errors.into_iter().next() {
                return Err(e);
            }
            let root = sub.root.clone();
            node_value(ev, &sub, &root, &[])
        }
        Ty::Either(left, right, lcheck, rcheck) => {
            let mut all_left = true;
            let mut all_right = true;
            for d in &defs {
                let l = ev.apply(lcheck.clone(), d.value.clone(), None)?;
                all_left &= matches!(l, Value::Bool(true));
                let r = ev.apply(rcheck.clone(), d.value.clone(), None)?;
                all_right &= matches!(r, Value::Bool(true));
            }
            if all_left {
                merge(ev, left, defs, path, system)
            } else if all_right {
                merge(ev, right, defs, path, system)
            } else {
                let d = &defs[0];
                Err(d.error(format!(
                    "the option ‘{}’ has a wrong type: the value is neither of the types it \
                     can be",
                    dotted(path)
                )))
            }
        }
        Ty::Coerced { from, func, to } => {
            let mut coerced = Vec::new();
            for d in defs {
                let is_from = ev.apply(from.clone(), d.value.clone(), None)?;
                if matches!(is_from, Value::Bool(true)) {
                    let v = ev.apply(func.clone(), d.value.clone(), None)?;
                    coerced.push(Def {
                        value: Thunk::value(v),
                        ..d
                    });
                } else {
                    coerced.push(d);
                }
            }
            merge(ev, to, coerced, path, system)
        }
    }
}

/// The definitions of sets, split by attribute name (properties unwrapped, positions kept),
/// and those that are not sets.
#[allow(clippy::type_complexity)]
/// The definitions below `defs` by attribute name, and those of `defs` that are not sets;
/// `sets`, if given, gets the sets themselves, properties unwrapped (what [`sets_at`] finds).
fn group_by_name(
    ev: &mut Evaluator,
    defs: &[Def],
    mut sets: Option<&mut SetDefs>,
) -> Result<(BTreeMap<Str, Vec<Def>>, Vec<(Def, Value)>), EvalError> {
    let mut by_name: BTreeMap<Str, Vec<Def>> = BTreeMap::new();
    let mut not_sets = Vec::new();
    for d in defs {
        let mut parts = Vec::new();
        unwrap_properties(ev, d.clone(), &mut parts)?;
        for d in parts {
            match ev.force(&d.value)? {
                Value::Attrs(a) => {
                    for (k, v) in a.iter() {
                        let pos = ev.attr_pos(&a, k);
                        by_name.entry(k.clone()).or_default().push(Def {
                            value: v.clone(),
                            pos: pos.or(d.pos.clone()),
                            ..d.clone()
                        });
                    }
                    if let Some(sets) = sets.as_deref_mut() {
                        sets.push((d, a));
                    }
                }
                other => not_sets.push((d, other)),
            }
        }
    }
    Ok((by_name, not_sets))
}

fn merge_attrs(
    ev: &mut Evaluator,
    defs: Vec<Def>,
    path: &[Str],
    system: &Rc<System>,
    elem: &Ty,
) -> Result<Value, EvalError> {
    let (by_key, not_sets) = group_by_name(ev, &defs, None)?;
    if let Some((d, other)) = not_sets.first() {
        return Err(d.error(format!(
            "the option ‘{}’ has a wrong type: expected a set, found {}",
            dotted(path),
            other.describe()
        )));
    }
    let mut out = Attrs::new();
    for (k, defs) in by_key {
        let defs = discharge(ev, &defs)?;
        if defs.is_empty() {
            continue;
        }
        let mut p = path.to_vec();
        p.push(k.clone());
        let (system, elem) = (system.clone(), elem.clone());
        out.insert(
            k,
            Thunk::native(Box::new(move |ev: &mut Evaluator| {
                merge(ev, &elem, defs, &p, &system)
            })),
        );
    }
    Ok(Value::attrs(out))
}

/// Whether a set is a string where one is expected (a package: `outPath`, or `__toString`).
fn is_string_like(a: &Attrs) -> bool {
    a.contains_key("outPath") || a.contains_key("__toString")
}

fn merge_equal(ev: &mut Evaluator, defs: Vec<Def>, path: &[Str]) -> Result<Value, EvalError> {
    let Some(first) = defs.first() else {
        return Err(no_value(path));
    };
    let v = ev.force(&first.value)?;
    for d in &defs[1..] {
        let w = ev.force(&d.value)?;
        ev.force_deep(&v)?;
        ev.force_deep(&w)?;
        if !ev.equal(&v, &w)? {
            let show = |ev: &mut Evaluator, x: &Value| {
                crate::nixlang::json::to_serde(ev, x)
                    .map(|j| j.to_string())
                    .unwrap_or_else(|_| x.describe().to_string())
            };
            let (a, b) = (show(ev, &v), show(ev, &w));
            return Err(d.error(format!(
                "the option ‘{}’ has conflicting definitions: {b} here and {a} at {}",
                dotted(path),
                first.location()
            )));
        }
    }
    Ok(v)
}

/// Reports every definition of something that is not a declared option.
/// `prefix`: where the system is (a submodule's option path), for the messages.
/// Reports each definition of an undeclared option to `errors`; returns the options
/// NixOS renamed (`declarations`' `renamed`) whose old names are defined.
fn check_unknown(
    ev: &mut Evaluator,
    system: &System,
    declarations: Option<&Declarations>,
    prefix: &[Str],
    errors: &mut Vec<EvalError>,
) -> Vec<Renamed> {
    let mut check = Check {
        system,
        declarations,
        prefix_len: prefix.len(),
        reported: HashSet::default(),
        errors,
        renamed: Vec::new(),
    };
    let checked = check.node(ev, &system.root, &system.roots(), &mut prefix.to_vec());
    let renamed = std::mem::take(&mut check.renamed);
    if let Err(e) = checked {
        errors.push(e);
    }
    renamed
}

/// The walk of [`check_unknown`] down the definitions and the declarations together.
struct Check<'a> {
    system: &'a System,
    declarations: Option<&'a Declarations>,
    /// The length of the system's prefix in the paths walked.
    prefix_len: usize,
    /// The sets only Nix builds that have been reported.
    reported: HashSet<String>,
    errors: &'a mut Vec<EvalError>,
    /// The renamed options whose old names are defined.
    renamed: Vec<Renamed>,
}

impl Check<'_> {
    /// Checks `defs`, the definitions at `path` (of declaration `node`). Where all are sets,
    /// what it finds there is kept as [`sets_at`] and [`defs_at`] would find it (the same
    /// definitions, in the same order), so the values are made without looking again.
    fn node(
        &mut self,
        ev: &mut Evaluator,
        node: &Node,
        defs: &[Def],
        path: &mut Vec<Str>,
    ) -> Result<(), EvalError> {
        let Node::Set { children, any, .. } = node else {
            return Ok(());
        };
        let mut sets = SetDefs::new();
        let (by_key, not_sets) = group_by_name(ev, defs, Some(&mut sets))?;
        let keep = not_sets.is_empty();
        if keep {
            let here = path[self.prefix_len..].to_vec();
            self.system.sets.borrow_mut().insert(here, Rc::new(sets));
        }
        for (d, other) in not_sets {
            let what = if path.is_empty() {
                "the configuration".to_string()
            } else {
                dotted(path)
            };
            self.errors.push(d.error(format!(
                "‘{what}’ is defined as {}, but it is a set of options",
                other.describe()
            )));
        }
        for (k, defs) in by_key {
            let defs = Rc::new(defs);
            path.push(k.clone());
            if keep {
                let here = path[self.prefix_len..].to_vec();
                self.system.defs.borrow_mut().insert(here, defs.clone());
            }
            match children.get(&k).or(any.as_ref()) {
                Some(c) => self.node(ev, c, &defs, path)?,
                None => self.unknown(ev, children, &k, &defs, path)?,
            }
            path.pop();
        }
        Ok(())
    }

    /// Reports the definitions `defs` of `path`, whose last name `k` is not declared among
    /// `children`.
    fn unknown(
        &mut self,
        ev: &mut Evaluator,
        children: &BTreeMap<Str, Rc<Node>>,
        k: &Str,
        defs: &[Def],
        path: &[Str],
    ) -> Result<(), EvalError> {
        // Name each option defined below the unknown name, as the user wrote it.
        let mut leaves = Vec::new();
        for d in defs {
            defined_leaves(ev, d.clone(), &mut path.to_vec(), &mut leaves)?;
        }
        let strings = |p: &[Str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let Some(decls) = self.declarations else {
            // "Did you mean" among the options declared beside it (mkOption's).
            let scored = children
                .keys()
                .filter_map(|c| {
                    super::options::component_distance(k, c).map(|d| (d, c.to_string()))
                })
                .collect();
            let close = super::options::closest(scored, 3);
            let hint = if close.is_empty() {
                String::new()
            } else {
                let parent = dotted(&path[..path.len() - 1]);
                let names: Vec<String> = close
                    .iter()
                    .map(|c| {
                        if parent.is_empty() {
                            c.clone()
                        } else {
                            format!("{parent}.{c}")
                        }
                    })
                    .collect();
                format!("; did you mean {}?", names.join(", "))
            };
            for (leaf, d) in leaves.into_iter().take(MAX_UNKNOWN_REPORTED) {
                self.errors.push(d.error(format!(
                    "the option ‘{}’ does not exist{hint}",
                    dotted(&leaf)
                )));
            }
            return Ok(());
        };
        let here = strings(path);
        if let Some(r) = decls.renamed.iter().find(|r| r.from == here) {
            self.renamed.push(r.clone());
            return Ok(());
        }
        if let Some(r) = decls.removed.iter().find(|r| r.path.starts_with(&here)) {
            // NixOS's words (mkRemovedOptionModule's).
            for (leaf, d) in leaves
                .iter()
                .filter(|(l, _)| strings(l).starts_with(&r.path))
            {
                self.errors.push(d.error(format!(
                    "the option definition ‘{}’ no longer has any effect (NixOS removed it); \
                     please remove it. {}",
                    dotted(leaf),
                    r.instead
                )));
            }
            if leaves.iter().all(|(l, _)| strings(l).starts_with(&r.path)) {
                return Ok(());
            }
        }
        let close = leaves
            .iter()
            .any(|(l, _)| !decls.suggest(&strings(l)).is_empty());
        // A NixOS module's set (`hardware.bluetooth`, `programs.command-not-found`) that only
        // says `enable = false` asks for nothing, as on NixOS.
        let module_set = NIXOS_MODULE_NAMESPACES.contains(&here[0].as_str());
        if module_set && !close {
            let mut all_disabled = !leaves.is_empty();
            for (leaf, d) in &leaves {
                all_disabled &= leaf.last().is_some_and(|l| &**l == "enable")
                    && matches!(ev.force(&d.value)?, Value::Bool(false));
            }
            if all_disabled {
                return Ok(());
            }
        }
        if let Some(set) = decls.nix_only_set(&here) {
            // One message for a set only Nix builds, unless all it asks is enable = false.
            let mut asked = None;
            for (leaf, d) in leaves {
                let v = ev.force(&d.value)?;
                let plain = to_plain(ev, &v, &[]).unwrap_or(Plain::Null);
                if let Some(msg) = decls.unknown_message(&strings(&leaf), &plain) {
                    asked.get_or_insert((d, msg));
                }
            }
            if let Some((d, msg)) = asked
                && self.reported.insert(set)
            {
                self.errors.push(d.error(msg));
            }
        } else if !close && !leaves.is_empty() {
            // Nothing close to any of it: one message for the unknown name, not one
            // per option below it, at the first of them.
            let d = leaves
                .iter()
                .map(|(_, d)| d)
                .min_by_key(|d| d.pos.as_ref().map_or(u32::MAX, |p| p.offset))
                .unwrap_or(&leaves[0].1);
            // The NixOS module it names: `virtualisation.docker` of `virtualisation.docker.enable`.
            let module = (module_set && here.len() <= 2)
                .then(|| leaves.iter().map(|(l, _)| l).find(|l| l.len() > 2))
                .flatten();
            let msg = if let Some(leaf) = module {
                format!(
                    "‘{}’ is not realized natively: no option module declares it (ncsh \
                     options {} lists what there is); a Nix host builds it \
                     (NCSH_BUILDER=nix)",
                    dotted(&leaf[..2]),
                    here[0]
                )
            } else if leaves.len() == 1 {
                format!(
                    "the option ‘{}’ does not exist ({HOW_TO_FIND_OPTIONS})",
                    dotted(&leaves[0].0)
                )
            } else {
                format!(
                    "the option ‘{}’ does not exist, nor the {} defined below it \
                     ({HOW_TO_FIND_OPTIONS})",
                    dotted(path),
                    leaves.len()
                )
            };
            self.errors.push(d.error(msg));
        } else {
            for (leaf, d) in leaves.into_iter().take(MAX_UNKNOWN_REPORTED) {
                let v = ev.force(&d.value)?;
                let plain = to_plain(ev, &v, &[]).unwrap_or(Plain::Null);
                if let Some(msg) = decls.unknown_message(&strings(&leaf), &plain) {
                    self.errors.push(d.error(msg));
                }
            }
        }
        Ok(())
    }
}

/// NixOS's top-level names whose sets below are modules (`services.nginx`,
/// `virtualisation.docker`): an unknown one is a module ncsh does not realize, not a typo.
const NIXOS_MODULE_NAMESPACES: [&str; 7] = [
    "services",
    "programs",
    "virtualisation",
    "hardware",
    "security",
    "fonts",
    "xdg",
];

/// How many unknown options below one unknown name are reported.
const MAX_UNKNOWN_REPORTED: usize = 20;

/// The leaves (not sets) `def` defines below `path`, with their definitions.
fn defined_leaves(
    ev: &mut Evaluator,
    def: Def,
    path: &mut Vec<Str>,
    out: &mut Vec<(Vec<Str>, Def)>,
) -> Result<(), EvalError> {
    let mut parts = Vec::new();
    unwrap_properties(ev, def, &mut parts)?;
    for d in parts {
        match ev.force(&d.value)? {
            Value::Attrs(a) if !a.is_empty() && !ev.is_derivation(&a)? => {
                for (k, v) in a.iter() {
                    if out.len() >= MAX_UNKNOWN_REPORTED {
                        return Ok(());
                    }
                    let pos = ev.attr_pos(&a, k);
                    path.push(k.clone());
                    let child = Def {
                        value: v.clone(),
                        pos: pos.or(d.pos.clone()),
                        ..d.clone()
                    };
                    defined_leaves(ev, child, path, out)?;
                    path.pop();
                }
            }
            _ => out.push((path.clone(), d)),
        }
    }
    Ok(())
}

/// The Rhai-declared options as plain data, each checked against its type.
fn plain_config(
    ev: &mut Evaluator,
    system: &Rc<System>,
    node: &Rc<Node>,
    path: &mut Vec<Str>,
    errors: &mut Vec<EvalError>,
) -> Result<Plain, EvalError> {
    match &**node {
        Node::Opt(decl) => {
            let v = option_value(ev, system, decl, path)?;
            if decl.rhai == Some(OptType::Opaque) {
                let empty = match &v {
                    Value::Null => true,
                    Value::List(l) => l.is_empty(),
                    Value::Attrs(a) => a.is_empty(),
                    _ => false,
                };
                return Ok(Plain::Bool(!empty));
            }
            let plain = match to_plain(ev, &v, path) {
                Ok(p) => p,
                // An error without a place (a package the host lacks) is at the definition.
                Err(e) if e.line == 0 => {
                    let defs = defs_at(ev, system, path)?;
                    return Err(match defs.iter().rev().find_map(|d| d.pos.clone()) {
                        Some(p) => p.err(e.message),
                        None => e,
                    });
                }
                Err(e) => return Err(e),
            };
            let plain = match &decl.rhai {
                Some(t) => coerce_to(t, plain),
                None => plain,
            };
            if let Some(t) = &decl.rhai
                && let Err(why) = t.check(&plain)
            {
                let defs = defs_at(ev, system, path)?;
                let at = defs.iter().rev().find_map(|d| d.pos.clone());
                let msg = format!("the option ‘{}’ has a wrong type: {why}", dotted(path));
                errors.push(match at {
                    Some(p) => p.err(msg),
                    None => EvalError::at(&Location::new("<config>", 0, 0), msg),
                });
            }
            Ok(plain)
        }
        Node::Set { children, any, .. } => {
            let mut out = BTreeMap::new();
            let mut names: Vec<(Str, Rc<Node>)> = children
                .iter()
                .filter(|(_, c)| c.below().rhai)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if let Some(any) = any.as_ref().filter(|a| a.below().rhai) {
                let v = node_value(ev, system, node, path)?;
                if let Value::Attrs(a) = v {
                    for k in a.keys() {
                        if !children.contains_key(k) {
                            names.push((k.clone(), any.clone()));
                        }
                    }
                }
            }
            // The definitions here, as sets: what none of them names is not defined, and every
            // option below it is its default, known as plain data (most of the declared
            // options, in most configurations), with no path looked up.
            let sets = if names.is_empty() {
                Rc::default()
            } else {
                sets_at(ev, system, path)?
            };
            for (name, child) in names {
                if !child.below().name_defaults && !sets.iter().any(|(_, a)| a.contains_key(&name))
                {
                    out.insert(String::from(&*name), plain_defaults(&child));
                    continue;
                }
                path.push(name.clone());
                let v = plain_config(ev, system, &child, path, errors)?;
                path.pop();
                out.insert(String::from(&*name), v);
            }
            Ok(Plain::Attrs(out))
        }
    }
}

/// The Rhai-declared options at and below `node` when nothing defines them.
fn plain_is_empty(v: &Plain) -> bool {
    match v {
        Plain::Null => true,
        Plain::List(l) => l.is_empty(),
        Plain::Attrs(a) => a.is_empty(),
        _ => false,
    }
}

fn plain_defaults(node: &Node) -> Plain {
    match node {
        Node::Opt(decl) => decl.plain_default.clone(),
        Node::Set { children, .. } => Plain::Attrs(
            children
                .iter()
                .filter(|(_, c)| c.below().rhai)
                .map(|(k, c)| (String::from(&**k), plain_defaults(c)))
                .collect(),
        ),
    }
}

/// A package (or anything with an `outPath`) where a string or path is declared is its path,
/// as `"${pkg}"` is in Nix (`environment.etc.x.source = pkgs.writeText …;`).
fn coerce_to(t: &OptType, v: Plain) -> Plain {
    match (t, v) {
        (OptType::Str | OptType::Path, Plain::Attrs(m)) if m.contains_key("outPath") => {
            m.get("outPath").cloned().unwrap_or(Plain::Null)
        }
        (OptType::NullOr(inner), v) => coerce_to(inner, v),
        (OptType::ListOf(inner), Plain::List(items)) => {
            Plain::List(items.into_iter().map(|i| coerce_to(inner, i)).collect())
        }
        (OptType::AttrsOf(inner), Plain::Attrs(m)) => Plain::Attrs(
            m.into_iter()
                .map(|(k, v)| (k, coerce_to(inner, v)))
                .collect(),
        ),
        (_, v) => v,
    }
}

/// A value as plain data: forced deeply; a package (a set with `type = "derivation"`) as its
/// `name`, `pname`, `version`, `outPath` and `mainProgram`, but for a package in a list
/// (`environment.systemPackages`), whose `version` is left out: only an option of one package
/// (`services.postgresql.package`) compares it with the host's, and finding the host's version
/// of each package in dpkg's status file was a tenth of an evaluation.
pub fn to_plain(ev: &mut Evaluator, v: &Value, path: &[Str]) -> Result<Plain, EvalError> {
    plain_of(ev, v, path, false)
}

fn plain_of(
    ev: &mut Evaluator,
    v: &Value,
    path: &[Str],
    in_list: bool,
) -> Result<Plain, EvalError> {
    Ok(match v {
        Value::Null => Plain::Null,
        Value::Bool(b) => Plain::Bool(*b),
        Value::Int(i) => Plain::Int(*i),
        Value::Float(f) => Plain::String(crate::nixlang::json::format_float(*f)),
        Value::String(s) => Plain::String(String::from(&**s)),
        Value::Path(p) => Plain::Path(p.to_path_buf()),
        Value::List(items) => {
            let mut out = Vec::with_capacity(items.len());
            for t in items.iter() {
                let v = ev.force(t)?;
                out.push(plain_of(ev, &v, path, true)?);
            }
            Plain::List(out)
        }
        Value::Attrs(a) => {
            if ev.is_derivation(a)? {
                let mut out = BTreeMap::new();
                out.insert("type".to_string(), Plain::String("derivation".into()));
                for k in ["name", "pname", "version", "outPath", "mainProgram"] {
                    if in_list && k == "version" {
                        continue;
                    }
                    if let Some(t) = a.get(k) {
                        let v = ev.force(t)?;
                        let s = ev.coerce_to_string(v, true, None)?;
                        out.insert(k.to_string(), Plain::String(s));
                    }
                }
                return Ok(Plain::Attrs(out));
            }
            let mut out = BTreeMap::new();
            for (k, t) in a.iter() {
                let v = ev.force(t)?;
                out.insert(String::from(&**k), plain_of(ev, &v, path, in_list)?);
            }
            Plain::Attrs(out)
        }
        Value::Lambda(_) | Value::PrimOp(_) => {
            return Err(EvalError::at(
                &Location::new("<config>", 0, 0),
                format!(
                    "the option ‘{}’ holds a function, which cannot be realized",
                    dotted(path)
                ),
            ));
        }
    })
}

/// Plain data as a Nix value.
pub fn from_plain(v: &Plain) -> Value {
    match v {
        Plain::Null => Value::Null,
        Plain::Bool(b) => Value::Bool(*b),
        Plain::Int(i) => Value::Int(*i),
        Plain::String(s) => Value::string(s.as_str()),
        Plain::Path(p) => Value::Path(p.as_path().into()),
        Plain::List(items) => Value::list(items.iter().map(|i| from_plain(i).into()).collect()),
        Plain::Attrs(m) => Value::attrs(
            m.iter()
                .map(|(k, v)| (Str::from(k.as_str()), Thunk::value(from_plain(v))))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests;
