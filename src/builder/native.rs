//! The native builder: a configuration evaluated without Nix (`nixlang`, `modules`), its options realized
//! into a [`Generation`] by option modules. The modules are Rhai scripts, so they are handed in
//! as an [`OptionModules`] by a layer above (the engine); this module knows no Rhai.

use std::path::{Path, PathBuf};

use super::configuration_nix::{self, PATH as CONFIGURATION_NIX};
use super::generation::{Generation, ManagedFile};
use super::nix::NixBuilder;
use super::options::Declarations;
use super::plain::Value as Plain;
use super::{BuildRequest, Builder, BuilderKind, Built};
use crate::container::ConfigSource;
use crate::error::{Error, Result};
use crate::files::Root;
use crate::nixlang::{self, Attrs, Evaluator, SourceMap, Thunk, Value, Written};

/// What turns evaluated options into a system: the option modules.
pub trait OptionModules {
    /// The options the modules declare.
    fn declarations(&self) -> Result<Declarations>;
    /// Realize `config` (every declared option, typed) as container `name`'s generation, which
    /// holds the files the configuration wrote (`store`: `pkgs.writeText` …) to begin with.
    fn realize(&self, name: &str, config: &Plain, store: &Written) -> Result<Generation>;
}

pub struct NativeBuilder {
    modules: Box<dyn OptionModules>,
}

impl NativeBuilder {
    pub fn new(modules: Box<dyn OptionModules>) -> NativeBuilder {
        NativeBuilder { modules }
    }

    /// Evaluate the request's configuration and realize its options into a generation.
    pub fn build_generation(&self, request: &BuildRequest) -> Result<Generation> {
        let declarations = self.modules.declarations()?;
        let e = evaluate(request, &declarations)?;
        self.modules
            .realize(&request.name, &e.config, &e.written)
            .map_err(|err| {
                locate_module_error(err, |path, message| {
                    definition_place(request, &declarations, path, message)
                })
            })
    }
}

impl Builder for NativeBuilder {
    fn kind(&self) -> BuilderKind {
        BuilderKind::Native
    }

    fn build(&self, request: &BuildRequest) -> Result<Built> {
        self.build_generation(request).map(Built::Generation)
    }
}

/// The files of `store` as files of a generation (read-only; executable where asked).
pub fn store_files(store: &Written) -> impl Iterator<Item = (String, ManagedFile)> + '_ {
    store.iter().map(|(path, (text, executable))| {
        let mode = if *executable { 0o555 } else { 0o444 };
        (
            path.clone(),
            ManagedFile::Text {
                text: text.clone(),
                mode,
            },
        )
    })
}

/// The builder of this host: `NCSH_BUILDER=nix|native` if set, else Nix when `nix-env` and
/// `<nixpkgs/nixos>` are available, else native with the option modules `modules` gives.
pub fn select(modules: impl FnOnce() -> Box<dyn OptionModules>) -> Result<Box<dyn Builder>> {
    let wanted = std::env::var("NCSH_BUILDER").unwrap_or_default();
    match wanted.as_str() {
        "nix" => Ok(Box::new(NixBuilder)),
        "native" => Ok(Box::new(NativeBuilder::new(modules()))),
        "" if super::nix::available() => Ok(Box::new(NixBuilder)),
        "" => Ok(Box::new(NativeBuilder::new(modules()))),
        other => Err(Error::Usage(format!(
            "NCSH_BUILDER={other}: expected ‘nix’ or ‘native’"
        ))),
    }
}

/// An evaluation error as a build failure (its text has the file:line:column).
pub(crate) fn eval_error(e: nixlang::EvalError) -> Error {
    Error::Build(e.to_string())
}

/// `lib`, in Nix (ARCHITECTURE.md, "The Nix language").
const LIB: &str = include_str!("../../stdlib/nix/lib.nix");
const LIB_NAME: &str = "<ncsh>/stdlib/nix/lib.nix";

/// [`LIB`] split into its bindings by build.rs ([`nixlang::split::Split::to_rust`]).
fn lib_split() -> Option<nixlang::split::Split> {
    use nixlang::split::{Binding, Split};
    include!(concat!(env!("OUT_DIR"), "/lib-split.rs"))
}

thread_local! {
    /// [`lib_split`], made once per thread.
    static LIB_SPLIT: Option<std::rc::Rc<nixlang::split::Split>> =
        lib_split().map(std::rc::Rc::new);
}

/// Errors of one evaluation, one per line.
pub(crate) fn eval_errors(errors: Vec<nixlang::EvalError>) -> Error {
    Error::Build(
        errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// Modules of nixpkgs (below `modulesPath`) that configurations of containers import and that
/// change nothing in a native container: they are empty modules here.
const NIXPKGS_MODULES_ACCEPTED: [&str; 3] = [
    // What boot.isContainer sets; a native container is one.
    "virtualisation/container-config.nix",
    // Leaves out documentation and X libraries, which a native container does not have.
    "profiles/minimal.nix",
    // No sound, no console getty: a native container has neither.
    "profiles/headless.nix",
];

/// Why an import of another nixpkgs module fails.
fn nixpkgs_module_refused() -> String {
    format!(
        "a module of nixpkgs, which this host does not have: a Nix host evaluates it \
         (NCSH_BUILDER=nix). Of modulesPath, ncsh accepts {}, which change nothing in a native \
         container",
        NIXPKGS_MODULES_ACCEPTED.join(", ")
    )
}

/// The module arguments every module gets: `lib`, `pkgs`, `modulesPath`.
pub(crate) fn module_args(ev: &mut Evaluator) -> std::result::Result<Attrs, nixlang::EvalError> {
    let split = LIB_SPLIT.with(Clone::clone);
    let lib = ev.eval_shipped_split(
        LIB,
        split.as_deref(),
        SourceMap::new(Path::new(LIB_NAME), LIB, 0),
        Path::new("/"),
    )?;
    let mut args = Attrs::new();
    let pkgs = super::pkgs::host_packages(lib.clone())?;
    args.insert("lib".into(), Thunk::value(lib));
    args.insert("pkgs".into(), Thunk::value(pkgs));
    let modules_path = Path::new(super::pkgs::NO_NIXPKGS);
    for module in NIXPKGS_MODULES_ACCEPTED {
        ev.preload(&modules_path.join(module), Value::attrs(Attrs::new()));
    }
    ev.reserve(modules_path, &nixpkgs_module_refused());
    args.insert(
        "modulesPath".into(),
        Thunk::value(Value::Path(modules_path.into())),
    );
    Ok(args)
}

/// A `--config` snippet as a module: the body of `{ config, lib, pkgs, ... }: with lib; { … }`,
/// as nixos-container inserts it.
pub(crate) fn snippet_module(
    ev: &mut Evaluator,
    text: &str,
    origin: &Path,
    base_dir: &Path,
) -> std::result::Result<Thunk, nixlang::EvalError> {
    const HEAD: &str = "{ config, lib, pkgs, ... }: with lib; {";
    let wrapped = format!("{HEAD}{text}\n}}");
    let v = ev.eval_text(&wrapped, SourceMap::new(origin, text, HEAD.len()), base_dir)?;
    Ok(Thunk::value(v))
}

fn file_module(
    ev: &mut Evaluator,
    text: &str,
    path: &Path,
) -> std::result::Result<Thunk, nixlang::EvalError> {
    Ok(Thunk::value(ev.eval_file(path, text.to_string())?))
}

/// A configuration evaluated (see [`evaluate`]).
pub struct Evaluation {
    /// Every declared option, typed.
    pub config: Plain,
    /// The files the configuration asked for (`pkgs.writeText` …).
    pub written: Written,
}

/// An option module's error about an option's value (its message starts with the option's
/// path: "systemd.services.x.serviceConfig.ExecStart: …") at the place the user defined the
/// option (`place`: the message at the place of the path, if the configuration defines it or
/// a path above it); other errors as they are.
pub fn locate_module_error(
    err: Error,
    place: impl FnOnce(&[&str], String) -> Option<String>,
) -> Error {
    let Error::OptionModule {
        module, message, ..
    } = &err
    else {
        return err;
    };
    let path = message
        .split([':', ' '])
        .next()
        .unwrap_or_default()
        .trim_end_matches('.');
    if !path.contains('.') {
        return err;
    }
    let components: Vec<&str> = path.split('.').collect();
    match place(&components, format!("{message} (option module ‘{module}’)")) {
        Some(located) => Error::Build(located),
        None => err,
    }
}

/// The message `message` at the place where `request`'s configuration defines the option at
/// `path` (see [`super::modules::definition_place`]).
fn definition_place(
    request: &BuildRequest,
    declarations: &Declarations,
    path: &[&str],
    message: String,
) -> Option<String> {
    let mut ev = Evaluator::new();
    let place = configuration_modules(&mut ev, request)
        .ok()
        .and_then(|(modules, args)| {
            super::modules::definition_place(&mut ev, declarations, modules, args, path)
        });
    ev.release();
    place.map(|at| at.err(message).to_string())
}

/// The configuration a request describes (see [`ConfigSource`]), evaluated against the option
/// modules' declarations.
pub fn evaluate(request: &BuildRequest, declarations: &Declarations) -> Result<Evaluation> {
    let mut ev = Evaluator::new();
    let evaluated = evaluate_in(&mut ev, request, declarations);
    // Only plain data leaves: the evaluator's values are freed (they hold cycles).
    ev.release();
    evaluated
}

fn evaluate_in(
    ev: &mut Evaluator,
    request: &BuildRequest,
    declarations: &Declarations,
) -> Result<Evaluation> {
    let (modules, args) = configuration_modules(ev, request)?;
    let evaluated =
        super::modules::evaluate(ev, declarations, modules, args).map_err(eval_errors)?;
    Ok(Evaluation {
        config: evaluated.config,
        written: std::mem::take(&mut ev.written),
    })
}

/// The modules of `request`'s configuration (`configuration.nix`, the `--config` snippet, the
/// host module it was declared in) and the module arguments (`lib`, `pkgs`, …).
fn configuration_modules(
    ev: &mut Evaluator,
    request: &BuildRequest,
) -> Result<(Vec<(Thunk, String)>, Attrs)> {
    let config_nix = request.root.join(CONFIGURATION_NIX);
    ev.track_positions();
    let args = module_args(ev).map_err(eval_error)?;
    let origin = config_nix.display().to_string();
    let modules = match &request.source {
        ConfigSource::Existing => {
            // The container's root controls this file: read it inside the root, never through
            // a link out of it.
            let text = Root::open(&request.root)?
                .read_string(CONFIGURATION_NIX)?
                .ok_or_else(|| Error::Build(format!("{}: no such file", config_nix.display())))?;
            vec![(
                file_module(ev, &text, &config_nix).map_err(eval_error)?,
                origin,
            )]
        }
        ConfigSource::Snippet(text) => {
            let header = configuration_nix::render(&request.name, &ConfigSource::Existing);
            let head = file_module(ev, &header, &config_nix).map_err(eval_error)?;
            let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
            let snippet =
                snippet_module(ev, text, Path::new("--config"), &cwd).map_err(eval_error)?;
            vec![(head, origin), (snippet, "--config".to_string())]
        }
        ConfigSource::File(_) => {
            let text = configuration_nix::render(&request.name, &request.source);
            vec![(
                file_module(ev, &text, &config_nix).map_err(eval_error)?,
                origin,
            )]
        }
    };
    let mut modules = modules;
    if let Some(file) = &request.declared_in {
        match super::declared::container_module(ev, &args, file, &request.name)? {
            Some(config) => modules.push((config, file.display().to_string())),
            None => {
                return Err(Error::Build(format!(
                    "{}: containers.{} is not declared there any more (it was applied from it): \
                     declare it again, or destroy it",
                    file.display(),
                    request.name
                )));
            }
        }
    }
    Ok((modules, args))
}

/// `snippets` (text, origin) as the `--config` modules of one configuration, against
/// `declarations`, relative paths against `base_dir`: for tests of the layers that use it.
#[cfg(test)]
pub(crate) fn evaluate_snippets(
    declarations: &Declarations,
    snippets: &[(&str, &str)],
    base_dir: &Path,
) -> std::result::Result<Plain, Vec<nixlang::EvalError>> {
    let mut ev = Evaluator::new();
    ev.track_positions();
    let args = module_args(&mut ev).map_err(|e| vec![e])?;
    let mut modules = Vec::new();
    for (text, origin) in snippets {
        let m = snippet_module(&mut ev, text, Path::new(origin), base_dir).map_err(|e| vec![e])?;
        modules.push((m, origin.to_string()));
    }
    super::modules::evaluate(&mut ev, declarations, modules, args).map(|e| e.config)
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;

    /// `lib` is made once per thread and given to every evaluation there (with the shared
    /// globals), and outlives each: an evaluation that failed in it, and the freeing of the
    /// evaluations before, change nothing of what the next one gets.
    #[test]
    fn lib_outlives_the_evaluations_of_a_thread() {
        use crate::builder::options::{OptType, OptionDecl};
        let mut declarations = Declarations::default();
        // Those of the configuration.nix made for a container, and one of this test.
        for (path, ty, default) in [
            ("boot.isContainer", OptType::Bool, Plain::Bool(false)),
            (
                "networking.hostName",
                OptType::Str,
                Plain::String(String::new()),
            ),
            ("networking.useDHCP", OptType::Bool, Plain::Bool(true)),
            (
                "services.demo.ports",
                OptType::ListOf(Box::new(OptType::Port)),
                Plain::List(vec![]),
            ),
        ] {
            std::rc::Rc::make_mut(&mut declarations.options).push(OptionDecl {
                path: path.split('.').map(String::from).collect(),
                ty,
                default,
                description: String::new(),
                module: "test".into(),
                default_by_name: None,
            });
        }
        let text = "services.demo.ports = mkIf (versionAtLeast \"2.1\" \"2\") \
                    (map (x: x * 2) (range 1 3) ++ optional true 8);";
        let request = |config: &str| {
            BuildRequest::new(
                "demo",
                PathBuf::from("/nonexistent/demo"),
                ConfigSource::Snippet(config.to_string()),
            )
        };
        let lib_of = |ev: &mut Evaluator| match module_args(ev).unwrap().get("lib") {
            Some(t) => ev.force_attrs(t).unwrap(),
            None => panic!("no lib among the module arguments"),
        };
        let (a, b) = (lib_of(&mut Evaluator::new()), lib_of(&mut Evaluator::new()));
        assert!(Rc::ptr_eq(&a, &b), "one lib per thread");
        let mut own = Evaluator::new();
        own.set_global("extra", Value::Null);
        assert!(
            !Rc::ptr_eq(&a, &lib_of(&mut own)),
            "other globals, another lib"
        );

        let first = evaluate(&request(text), &declarations).unwrap().config;
        let failed = evaluate(
            &request("services.demo.ports = mkIf 3 [ 1 ];"),
            &declarations,
        );
        assert!(failed.is_err());
        let again = evaluate(&request(text), &declarations).unwrap().config;
        assert_eq!(first, again);
        let shown = again.to_string();
        assert!(shown.contains("ports = [ 2 4 6 8 ]"), "{shown}");
    }

    /// The lib parsed binding by binding is the lib parsed whole: the same names, each of the
    /// same type, and the same answers.
    #[test]
    fn the_lazily_parsed_lib_is_the_lib() {
        let mut ev = Evaluator::new();
        let src = || SourceMap::new(Path::new(LIB_NAME), LIB, 0);
        let lazy = ev.eval_shipped_lazily(LIB, src(), Path::new("/")).unwrap();
        let whole = ev.eval_shipped(LIB, src(), Path::new("/")).unwrap();
        let (Value::Attrs(lazy), Value::Attrs(whole)) = (lazy, whole) else {
            panic!("lib is a set");
        };
        assert!(lazy.len() > 300, "{}", lazy.len());
        // build.rs split the same text, and split its sets too.
        let split = lib_split();
        assert!(split.is_some());
        assert_eq!(split, nixlang::split::split_let(LIB));
        assert_eq!(
            lazy.keys().collect::<Vec<_>>(),
            whole.keys().collect::<Vec<_>>()
        );
        for (name, t) in lazy.iter() {
            let a = ev.force(t);
            let b = ev.force(&whole[name]);
            let type_of = |v: &Result<Value, _>| v.as_ref().ok().map(|v| v.type_of());
            assert_eq!(type_of(&a), type_of(&b), "{name}");
            // A set's names, and the types of its values, too (`lib.types`).
            if let (Ok(Value::Attrs(a)), Ok(Value::Attrs(b))) = (a, b) {
                assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
                for (inner, t) in a.iter() {
                    let x = ev.force(t).map(|v| v.type_of()).ok();
                    let y = ev.force(&b[inner]).map(|v| v.type_of()).ok();
                    assert_eq!(x, y, "{name}.{inner}");
                }
            }
        }
        let with_lib = |lib: &Attrs| {
            let mut e = Evaluator::new();
            e.set_global("lib", Value::Attrs(Rc::new(lib.clone())));
            let text = "lib.concatMapStringsSep \",\" lib.toUpper (lib.splitString \".\" \"a.b\") \
                        + (lib.types.listOf (lib.types.nullOr lib.types.port)).description";
            let v = e
                .eval_text(
                    text,
                    SourceMap::new(Path::new("t"), text, 0),
                    Path::new("/"),
                )
                .unwrap();
            nixlang::json::to_serde(&mut e, &v).unwrap()
        };
        assert_eq!(with_lib(&lazy), with_lib(&whole));
        assert_eq!(
            with_lib(&lazy),
            "A,Blist of (null or 16 bit unsigned integer; between 0 and 65535 (both inclusive))"
        );
    }
}
