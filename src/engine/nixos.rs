//! The native builder's Rhai half: option modules (`stdlib/nixos/*.rhai`, compiled in, plus the
//! user's own) declare options and turn the typed configuration into a [`Generation`].
//!
//! A module defines `fn options()` (an array of `#{path, type, default, description}`),
//! `fn build(config, gen)` and optionally `fn finalize(config, gen)`, which runs after every
//! module's `build` (the firewall uses it to collect the ports other modules opened). An entry
//! of `options()` with `nix_only: true` names an option set only a Nix host builds; one with
//! `renamed: NEW` an option NixOS renamed, one with `removed: WHAT_INSTEAD` one it removed.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rhai::{AST, Array, Dynamic, Engine, EvalAltResult, Map, Scope};

use crate::api::error::{describe, to_rhai};
use crate::api::options::{from_dynamic, to_dynamic, to_json};
use crate::api::strings;
use crate::builder::Builder;
use crate::builder::generation::{
    Generation, Group, ManagedFile, Unit, User, check_container_path,
};
use crate::builder::native::{self, OptionModules};
use crate::builder::options::{Declarations, NixOnly, OptType, OptionDecl, Removed, Renamed};
use crate::builder::pkgs::DpkgStatus;
use crate::builder::plain::Value;
use crate::error::{Error, Result};
use crate::nixlang::Written;

/// The option modules shipped in `stdlib/nixos/`, in the order they run.
pub const BUILTIN_MODULES: &[(&str, &str)] = &[
    // First: NixOS checks assertions before it builds anything.
    (
        "assertions",
        include_str!("../../stdlib/nixos/assertions.rhai"),
    ),
    ("base", include_str!("../../stdlib/nixos/base.rhai")),
    ("users", include_str!("../../stdlib/nixos/users.rhai")),
    ("sudo", include_str!("../../stdlib/nixos/sudo.rhai")),
    ("pam", include_str!("../../stdlib/nixos/pam.rhai")),
    ("systemd", include_str!("../../stdlib/nixos/systemd.rhai")),
    ("shell", include_str!("../../stdlib/nixos/shell.rhai")),
    ("openssh", include_str!("../../stdlib/nixos/openssh.rhai")),
    ("httpd", include_str!("../../stdlib/nixos/httpd.rhai")),
    ("nginx", include_str!("../../stdlib/nixos/nginx.rhai")),
    ("redis", include_str!("../../stdlib/nixos/redis.rhai")),
    ("compat", include_str!("../../stdlib/nixos/compat.rhai")),
    (
        "postgresql",
        include_str!("../../stdlib/nixos/postgresql.rhai"),
    ),
    ("mysql", include_str!("../../stdlib/nixos/mysql.rhai")),
    (
        "mosquitto",
        include_str!("../../stdlib/nixos/mosquitto.rhai"),
    ),
    ("dnsmasq", include_str!("../../stdlib/nixos/dnsmasq.rhai")),
    ("caddy", include_str!("../../stdlib/nixos/caddy.rhai")),
    ("nix-only", include_str!("../../stdlib/nixos/nix-only.rhai")),
    ("renamed", include_str!("../../stdlib/nixos/renamed.rhai")),
    ("firewall", include_str!("../../stdlib/nixos/firewall.rhai")),
];

/// Directories of the user's own modules: `NCSH_MODULES_PATH` (colon-separated), else
/// `$XDG_CONFIG_HOME/ncsh/nixos` (or `~/.config/ncsh/nixos`) and `/etc/ncsh/nixos`.
pub fn module_dirs() -> Vec<PathBuf> {
    super::search_dirs("NCSH_MODULES_PATH", "nixos")
}

struct Module {
    name: String,
    ast: AST,
}

/// The state a build accumulates; `gen` in a module is a handle on it.
#[derive(Default)]
struct GenState {
    name: String,
    generation: Generation,
    tcp: BTreeSet<i64>,
    udp: BTreeSet<i64>,
    /// What `gen.note` said: options accepted but meaningless here, in order, once each.
    notes: Vec<String>,
}

#[derive(Clone)]
pub struct Gen(Rc<RefCell<GenState>>);

type RhaiResult<T> = std::result::Result<T, Box<EvalAltResult>>;

fn usage(message: String) -> Box<EvalAltResult> {
    to_rhai(Error::Usage(message))
}

fn string_field(map: &Map, key: &str, default: &str) -> RhaiResult<String> {
    match map.get(key) {
        None => Ok(default.to_string()),
        Some(v) if v.is_unit() => Ok(default.to_string()),
        Some(v) => v
            .clone()
            .into_immutable_string()
            .map(|s| s.to_string())
            .map_err(|t| usage(format!("‘{key}’ must be a string, found {t}"))),
    }
}

fn opt_string(map: &Map, key: &str) -> RhaiResult<Option<String>> {
    let s = string_field(map, key, "")?;
    Ok(if map.get(key).is_none_or(Dynamic::is_unit) {
        None
    } else {
        Some(s)
    })
}

fn bool_field(map: &Map, key: &str) -> RhaiResult<bool> {
    map.get(key).map_or(Ok(false), |v| {
        v.as_bool()
            .map_err(|t| usage(format!("‘{key}’ must be a boolean, found {t}")))
    })
}

fn id_field(map: &Map, key: &str) -> RhaiResult<Option<u32>> {
    match map.get(key) {
        None => Ok(None),
        Some(v) if v.is_unit() => Ok(None),
        Some(v) => v
            .as_int()
            .ok()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| usage(format!("‘{key}’ must be a non-negative integer"))),
    }
}

fn port(n: i64) -> RhaiResult<i64> {
    if (1..=65535).contains(&n) {
        Ok(n)
    } else {
        Err(usage(format!("{n} is not a port")))
    }
}

/// SHA-512 crypt of `password` with a random salt, as `mkpasswd -m sha-512` makes.
pub fn hash_password(password: &str) -> Result<String> {
    use sha_crypt::PasswordHasher;
    let mut salt = [0u8; 12];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut salt))
        .map_err(|e| Error::io("reading /dev/urandom", e))?;
    let hash = sha_crypt::ShaCrypt::SHA512
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(|e| Error::Usage(format!("hashing a password: {e}")))?;
    Ok(hash.to_string())
}

/// Does the host (whose /usr the container shares) have the locale `name`, as `locale -a`
/// lists it? The codeset compares as glibc normalizes it: `en_US.UTF-8` is `en_US.utf8`.
fn host_has_locale(name: &str) -> bool {
    let normal = |n: &str| match n.split_once('.') {
        Some((lang, codeset)) => format!(
            "{lang}.{}",
            codeset
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .collect::<String>()
                .to_ascii_lowercase()
        ),
        None => n.to_string(),
    };
    let wanted = normal(name);
    HOST_LOCALES.with(|listed| {
        listed
            .borrow_mut()
            .get_or_insert_with(|| {
                std::process::Command::new("locale")
                    .arg("-a")
                    .output()
                    .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
                    .unwrap_or_default()
            })
            .lines()
            .any(|l| normal(l.trim()) == wanted)
    })
}

thread_local! {
    /// What `locale -a` listed, once per build ([`RhaiModules::realize`] forgets it): two
    /// option modules ask, and running it was most of the time each question took.
    static HOST_LOCALES: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// A short stable digest (FNV-1a), for restart triggers in unit files.
fn digest(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn register_gen(engine: &mut Engine) {
    engine
        .register_type_with_name::<Gen>("Generation")
        .register_get("name", |g: &mut Gen| g.0.borrow().name.clone())
        .register_fn("file", |g: &mut Gen, path: &str, text: &str| {
            g.file(path, text, 0o644)
        })
        .register_fn("file", |g: &mut Gen, path: &str, text: &str, mode: i64| {
            g.file(path, text, mode)
        })
        .register_fn(
            "symlink",
            |g: &mut Gen, path: &str, target: &str| -> RhaiResult<()> {
                check_container_path(path).map_err(to_rhai)?;
                g.0.borrow_mut().generation.files.insert(
                    path.into(),
                    ManagedFile::Symlink {
                        target: target.into(),
                    },
                );
                Ok(())
            },
        )
        // A file of the generation (what `pkgs.writeText` … made), else of the host.
        .register_fn("read", |g: &mut Gen, path: &str| -> RhaiResult<String> {
            if let Some(ManagedFile::Text { text, .. }) = g.0.borrow().generation.files.get(path) {
                return Ok(text.clone());
            }
            std::fs::read_to_string(path)
                .map_err(|e| to_rhai(Error::io(format!("reading {path}"), e)))
        })
        .register_fn("unit", |g: &mut Gen, name: &str, text: &str| {
            g.unit(name, text, Array::new())
        })
        .register_fn(
            "unit",
            |g: &mut Gen, name: &str, text: &str, wanted_by: Array| g.unit(name, text, wanted_by),
        )
        .register_fn("user", |g: &mut Gen, name: &str, spec: Map| {
            g.user(name, &spec)
        })
        .register_fn(
            "group",
            |g: &mut Gen, name: &str, spec: Map| -> RhaiResult<()> {
                let members = match spec.get("members") {
                    Some(v) => strings(
                        &v.clone().try_cast::<Array>().unwrap_or_default(),
                        "members",
                    )?,
                    None => Vec::new(),
                };
                let group = Group {
                    gid: id_field(&spec, "gid")?,
                    system: bool_field(&spec, "system")?,
                    members,
                };
                g.0.borrow_mut()
                    .generation
                    .groups
                    .insert(name.into(), group);
                Ok(())
            },
        )
        .register_fn("allow_tcp", |g: &mut Gen, p: i64| -> RhaiResult<()> {
            g.0.borrow_mut().tcp.insert(port(p)?);
            Ok(())
        })
        .register_fn("allow_udp", |g: &mut Gen, p: i64| -> RhaiResult<()> {
            g.0.borrow_mut().udp.insert(port(p)?);
            Ok(())
        })
        // An option accepted but meaningless in such a container: said once on stderr.
        .register_fn("note", |g: &mut Gen, text: &str| {
            let mut state = g.0.borrow_mut();
            if !state.notes.iter().any(|n| n == text) {
                state.notes.push(text.to_string());
            }
        })
        .register_fn("allowed_tcp", |g: &mut Gen| {
            g.0.borrow()
                .tcp
                .iter()
                .map(|p| Dynamic::from(*p))
                .collect::<Array>()
        })
        .register_fn("allowed_udp", |g: &mut Gen| {
            g.0.borrow()
                .udp
                .iter()
                .map(|p| Dynamic::from(*p))
                .collect::<Array>()
        });
    engine.register_fn("hash_password", |p: &str| hash_password(p).map_err(to_rhai));
    engine.register_fn("digest", |t: &str| digest(t));
    engine.register_fn("host_has", |path: &str| Path::new(path).exists());
    engine.register_fn("host_has_locale", |name: &str| host_has_locale(name));
    // Fail the build with a clear message when a host program is missing.
    engine.register_fn(
        "require_host",
        |path: &str, package: &str, why: &str| -> RhaiResult<()> {
            if Path::new(path).exists() {
                return Ok(());
            }
            Err(to_rhai(Error::Build(format!(
                "{why} needs {path}: install the Debian package ‘{package}’ on the host"
            ))))
        },
    );
    engine.register_fn("host_package_version", |package: &str| {
        host_package_version(Path::new(DpkgStatus::PATH), package)
            .map_or(Dynamic::UNIT, Dynamic::from)
    });
    engine.register_fn("read_host_file", |path: &str| -> RhaiResult<String> {
        std::fs::read_to_string(path).map_err(|e| to_rhai(Error::io(format!("reading {path}"), e)))
    });
}

/// The upstream version of a Debian package installed on the host (dpkg's status file).
fn host_package_version(status: &Path, package: &str) -> Option<String> {
    DpkgStatus::read(status).version(package)
}

impl Gen {
    fn file(&mut self, path: &str, text: &str, mode: i64) -> RhaiResult<()> {
        check_container_path(path).map_err(to_rhai)?;
        let mode = u32::try_from(mode)
            .ok()
            .filter(|m| *m <= 0o7777)
            .ok_or_else(|| usage(format!("{mode} is not a file mode")))?;
        self.0.borrow_mut().generation.files.insert(
            path.into(),
            ManagedFile::Text {
                text: text.into(),
                mode,
            },
        );
        Ok(())
    }

    fn unit(&mut self, name: &str, text: &str, wanted_by: Array) -> RhaiResult<()> {
        let valid = |n: &str| {
            !n.is_empty()
                && n.contains('.')
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "@._-:\\".contains(c))
        };
        if !valid(name) {
            return Err(usage(format!("‘{name}’ is not a unit name")));
        }
        let wanted_by = strings(&wanted_by, "wanted_by targets")?;
        if let Some(bad) = wanted_by.iter().find(|t| !valid(t)) {
            return Err(usage(format!("‘{bad}’ is not a unit name")));
        }
        self.0.borrow_mut().generation.units.insert(
            name.into(),
            Unit {
                text: text.into(),
                wanted_by,
            },
        );
        Ok(())
    }

    fn user(&mut self, name: &str, spec: &Map) -> RhaiResult<()> {
        let system = bool_field(spec, "system")?;
        let user = User {
            uid: id_field(spec, "uid")?,
            group: string_field(spec, "group", "nogroup")?,
            extra_groups: match spec.get("extra_groups") {
                Some(v) => strings(
                    &v.clone().try_cast::<Array>().unwrap_or_default(),
                    "extra_groups",
                )?,
                None => Vec::new(),
            },
            description: string_field(spec, "description", "")?,
            home: string_field(spec, "home", "/var/empty")?,
            create_home: bool_field(spec, "create_home")?,
            home_mode: match spec.get("home_mode") {
                None => 0o700,
                Some(v) => v
                    .as_int()
                    .ok()
                    .and_then(|m| u32::try_from(m).ok())
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| usage(format!("user {name}: home_mode is not a file mode")))?,
            },
            shell: string_field(spec, "shell", "/usr/sbin/nologin")?,
            hashed_password: opt_string(spec, "hashed_password")?,
            initial_hashed_password: opt_string(spec, "initial_hashed_password")?,
            system,
        };
        self.0
            .borrow_mut()
            .generation
            .users
            .insert(name.into(), user);
        Ok(())
    }
}

/// The option modules (`stdlib/nixos/*.rhai` and the user's), loaded on first use, that the
/// native builder realizes options with.
#[derive(Default)]
pub struct RhaiModules {
    loaded: RefCell<Option<Rc<Loaded>>>,
    /// Where the user's modules are; `None`: [`module_dirs`].
    dirs: Option<Vec<PathBuf>>,
}

struct Loaded {
    engine: Engine,
    modules: Vec<Module>,
    declarations: Declarations,
}

/// NixOS's `assertions` and `warnings` (declared by assertions.rhai): an error with the
/// message of every assertion that does not hold, as NixOS's "Failed assertions", else the
/// warnings.
fn check_assertions(config: &Value) -> Result<Vec<String>> {
    let list = |name: &str| match config {
        Value::Attrs(top) => match top.get(name) {
            Some(Value::List(items)) => items.as_slice(),
            _ => &[],
        },
        _ => &[],
    };
    let failed: Vec<String> = list("assertions")
        .iter()
        .filter_map(|a| {
            let Value::Attrs(a) = a else {
                return Some("an assertion that is not { assertion; message; }".to_string());
            };
            match (a.get("assertion"), a.get("message")) {
                (Some(Value::Bool(true)), _) => None,
                (Some(Value::Bool(false)), Some(Value::String(m))) => Some(m.clone()),
                (Some(Value::Bool(false)), _) => Some("(an assertion without a message)".into()),
                _ => Some("an assertion whose `assertion` is not a Boolean".to_string()),
            }
        })
        .collect();
    if !failed.is_empty() {
        let lines: Vec<String> = failed.iter().map(|m| format!("- {m}")).collect();
        return Err(Error::Build(format!(
            "Failed assertions:\n{}",
            lines.join("\n")
        )));
    }
    Ok(list("warnings")
        .iter()
        .filter_map(|w| match w {
            Value::String(w) => Some(w.clone()),
            _ => None,
        })
        .collect())
}

fn module_error(module: &str, err: &EvalAltResult) -> Error {
    let f = describe(err);
    let at = match (f.position.line(), f.position.position()) {
        (Some(l), Some(c)) => format!(" (line {l}, column {c})"),
        _ => String::new(),
    };
    Error::OptionModule {
        module: module.to_string(),
        at,
        message: f.message,
    }
}

impl RhaiModules {
    fn loaded(&self) -> Result<Rc<Loaded>> {
        if let Some(l) = self.loaded.borrow().as_ref() {
            return Ok(l.clone());
        }
        let dirs = self.dirs.clone().unwrap_or_else(module_dirs);
        let loaded = Rc::new(Self::load(&dirs)?);
        *self.loaded.borrow_mut() = Some(loaded.clone());
        Ok(loaded)
    }

    /// The built-in modules and the user's from `dirs` only.
    pub fn with_module_dirs(dirs: Vec<PathBuf>) -> RhaiModules {
        RhaiModules {
            loaded: RefCell::new(None),
            dirs: Some(dirs),
        }
    }

    fn load(dirs: &[PathBuf]) -> Result<Loaded> {
        let mut engine = Engine::new();
        engine.set_max_expr_depths(256, 256);
        // Parsing the option modules (130 KB of Rhai) is most of what a build costs before
        // evaluating. Rhai interns at most 256 identifiers and, past that, scans its whole
        // table on every new one (15% of the load); the optimizer's pass was another 16%, for
        // scripts whose functions run once per build.
        engine.set_max_strings_interned(1 << 14);
        engine.set_optimization_level(rhai::OptimizationLevel::None);
        register_gen(&mut engine);
        let mut sources: Vec<(String, String)> = BUILTIN_MODULES
            .iter()
            .map(|(n, s)| (n.to_string(), s.to_string()))
            .collect();
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut files: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "rhai"))
                .collect();
            files.sort();
            for file in files {
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| Error::io(format!("reading {}", file.display()), e))?;
                sources.push((file.display().to_string(), text));
            }
        }
        let mut modules = Vec::new();
        let mut declarations = Declarations::default();
        for (name, source) in sources {
            let ast = engine
                .compile(&source)
                .map_err(|e| module_error(&name, &EvalAltResult::from(e)))?;
            let decls: Array = engine
                .call_fn(&mut Scope::new(), &ast, "options", ())
                .map_err(|e| module_error(&name, &e))?;
            for decl in decls {
                let map = decl.try_cast::<Map>().ok_or_else(|| {
                    Error::Build(format!(
                        "option module ‘{name}’: options() must return maps"
                    ))
                })?;
                let field = |k: &str| {
                    map.get(k)
                        .and_then(|v| v.clone().into_immutable_string().ok())
                        .map(|s| s.to_string())
                };
                let bad = |why: String| Error::Build(format!("option module ‘{name}’: {why}"));
                let path = field("path").ok_or_else(|| bad("an option without a path".into()))?;
                // `#{ path: "services.nextcloud", nix_only: true, description: WHY }`: an option
                // set only a Nix host builds.
                if map.get("nix_only").is_some_and(|v| v.as_bool() == Ok(true)) {
                    declarations.nix_only.push(NixOnly {
                        path: path.split('.').map(String::from).collect(),
                        why: field("description").unwrap_or_default(),
                        module: name.clone(),
                    });
                    continue;
                }
                let dotted = |p: &str| p.split('.').map(String::from).collect::<Vec<_>>();
                // `#{ path: OLD, renamed: NEW }`, `#{ path: OLD, removed: WHAT_INSTEAD }`.
                if let Some(to) = field("renamed") {
                    declarations.renamed.push(Renamed {
                        from: dotted(&path),
                        to: dotted(&to),
                    });
                    continue;
                }
                if let Some(instead) = field("removed") {
                    declarations.removed.push(Removed {
                        path: dotted(&path),
                        instead,
                    });
                    continue;
                }
                let ty = OptType::parse(&field("type").unwrap_or_default())
                    .map_err(|e| bad(format!("{path}: {e}")))?;
                let default = map
                    .get("default")
                    .map(from_dynamic)
                    .transpose()
                    .map_err(|e| bad(format!("{path}: {e}")))?
                    .unwrap_or(Value::Null);
                // A null default means "unset"; any other default must have the option's type.
                if default != Value::Null && ty.check(&default).is_err() {
                    return Err(bad(format!("{path}: the default does not have the type")));
                }
                declarations
                    .add(OptionDecl {
                        path: path.split('.').map(String::from).collect(),
                        ty,
                        default,
                        description: field("description").unwrap_or_default(),
                        module: name.clone(),
                        default_by_name: field("default_nix"),
                    })
                    .map_err(Error::Build)?;
            }
            modules.push(Module { name, ast });
        }
        Ok(Loaded {
            engine,
            modules,
            declarations,
        })
    }
}

/// The declared options of the built-in modules and the user's ([`module_dirs`]), loaded
/// afresh: what `ncsh options`, the API's `options()` and the REPL's completion list.
pub fn declarations() -> Result<Declarations> {
    Ok(RhaiModules::default().loaded()?.declarations.clone())
}

/// The builder of this host with these option modules (see [`native::select`]).
pub fn select_builder() -> Result<Box<dyn Builder>> {
    native::select(|| Box::<RhaiModules>::default())
}

/// ncsh's own builder with these option modules, whatever the host's is.
pub fn native_builder() -> Result<Box<dyn Builder>> {
    Ok(Box::new(native::NativeBuilder::new(
        Box::<RhaiModules>::default(),
    )))
}

impl OptionModules for RhaiModules {
    fn declarations(&self) -> Result<Declarations> {
        Ok(self.loaded()?.declarations.clone())
    }

    fn realize(&self, name: &str, config: &Value, store: &Written) -> Result<Generation> {
        HOST_LOCALES.with(|listed| listed.borrow_mut().take());
        let loaded = self.loaded()?;
        let mut generation = Generation::default();
        generation.files.extend(native::store_files(store));
        let state = Gen(Rc::new(RefCell::new(GenState {
            name: name.to_string(),
            generation,
            ..Default::default()
        })));
        for warning in check_assertions(config)? {
            state
                .0
                .borrow_mut()
                .notes
                .push(format!("warning: {warning}"));
        }
        let config_dyn = to_dynamic(config);
        for phase in ["build", "finalize"] {
            for module in &loaded.modules {
                if !module
                    .ast
                    .iter_functions()
                    .any(|f| f.name == phase && f.params.len() == 2)
                {
                    continue;
                }
                let _: Dynamic = loaded
                    .engine
                    .call_fn::<Dynamic>(
                        &mut Scope::new(),
                        &module.ast,
                        phase,
                        (config_dyn.clone(), state.clone()),
                    )
                    .map_err(|e| module_error(&module.name, &e))?;
            }
        }
        let mut generation = std::mem::take(&mut state.0.borrow_mut().generation);
        generation.options = to_json(config);
        for note in &state.0.borrow().notes {
            crate::manager::progress::clear();
            eprintln!("ncsh: note: {note}");
        }
        Ok(generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::BuildRequest;
    use crate::builder::native::NativeBuilder;
    use crate::container::ConfigSource;

    fn build(snippet: &str) -> Result<Generation> {
        build_with(&native_builder(Vec::new()), snippet)
    }

    fn native_builder(dirs: Vec<PathBuf>) -> NativeBuilder {
        NativeBuilder::new(Box::new(RhaiModules::with_module_dirs(dirs)))
    }

    fn build_with(builder: &NativeBuilder, snippet: &str) -> Result<Generation> {
        let request = BuildRequest::new(
            "box",
            PathBuf::from("/nonexistent/box"),
            ConfigSource::Snippet(snippet.into()),
        );
        builder.build_generation(&request)
    }

    fn text<'a>(g: &'a Generation, path: &str) -> &'a str {
        match g.files.get(path) {
            Some(ManagedFile::Text { text, .. }) => text,
            other => panic!("{path}: {other:?}"),
        }
    }

    fn error(snippet: &str) -> String {
        build(snippet).unwrap_err().to_string()
    }

    #[test]
    fn a_snippet_that_stops_short_ends_where_the_user_stopped() {
        // The wrapper's closing `}` is not what the user wrote: the error is the text's end.
        assert_eq!(
            error("services.openssh.enable = true  "),
            "--config:1:31: syntax error: unexpected end of the text, expected ';' after the value"
        );
        assert!(error("x = [ 80 -1 ];").ends_with("(a negative number in a list is written (-1))"));
    }

    #[test]
    fn an_empty_configuration_is_a_named_host_behind_a_firewall() {
        let g = build("").unwrap();
        assert_eq!(text(&g, "/etc/hostname"), "box\n");
        assert!(text(&g, "/etc/hosts").contains("127.0.0.2 box\n"));
        let rules = text(&g, "/etc/nftables.nft");
        assert!(
            rules.contains("policy drop;") && !rules.contains("dport"),
            "{rules}"
        );
        assert_eq!(g.units["nftables.service"].wanted_by, ["sysinit.target"]);
        assert!(g.users.is_empty());
        assert_eq!(g.options["networking"]["firewall"]["enable"], true);
        let g = build("networking.firewall.enable = false;").unwrap();
        assert!(
            !g.units.contains_key("nftables.service") && !g.files.contains_key("/etc/nftables.nft")
        );
    }

    #[test]
    fn openssh() {
        let g = build("services.openssh.enable = true; users.users.root.openssh.authorizedKeys.keys = [ \"ssh-ed25519 AAAA k\" ];").unwrap();
        let conf = text(&g, "/etc/ssh/sshd_config");
        assert!(
            conf.contains("Port 22\n") && conf.contains("PermitRootLogin prohibit-password\n"),
            "{conf}"
        );
        assert!(conf.contains(
            "AuthorizedKeysFile %h/.ssh/authorized_keys /etc/ssh/authorized_keys.d/%u\n"
        ));
        assert_eq!(
            text(&g, "/etc/ssh/authorized_keys.d/root"),
            "ssh-ed25519 AAAA k\n"
        );
        assert_eq!(g.units["sshd.service"].wanted_by, ["multi-user.target"]);
        assert!(
            g.units["sshd.service"]
                .text
                .contains("ssh-keygen -q -t ed25519")
        );
        assert!(g.users.contains_key("sshd") && g.users["sshd"].system);
        assert!(text(&g, "/etc/nftables.nft").contains("tcp dport { 22 } accept"));
        let g = build("services.openssh = { enable = true; ports = [ 2222 ]; openFirewall = false; settings.PermitRootLogin = \"no\"; };").unwrap();
        assert!(text(&g, "/etc/ssh/sshd_config").contains("Port 2222\nAddressFamily any"));
        assert!(text(&g, "/etc/ssh/sshd_config").contains("PermitRootLogin no\n"));
        assert!(!text(&g, "/etc/nftables.nft").contains("dport"));
        let g = build("services.openssh = { enable = true; listenAddresses = [ { addr = \"127.0.0.1\"; port = 2200; } { addr = \"[::1]\"; } ]; };").unwrap();
        assert!(text(&g, "/etc/ssh/sshd_config").contains(
            "Port 22\nListenAddress 127.0.0.1:2200\nListenAddress [::1]\nAddressFamily any\n"
        ));
        assert!(
            error("services.openssh = { enable = true; listenAddresses = [ { port = 22; } ]; };")
                .contains("each item needs addr")
        );
        // A changed sshd_config changes the unit, so a switch restarts sshd.
        let other = build("services.openssh = { enable = true; ports = [ 2223 ]; };").unwrap();
        assert_ne!(
            g.units["sshd.service"].text,
            other.units["sshd.service"].text
        );
    }

    #[test]
    fn httpd() {
        let g = build("services.httpd.enable = true; services.httpd.adminAddr = \"foo@example.org\"; networking.firewall.allowedTCPPorts = [ 80 ];").unwrap();
        let conf = text(&g, "/etc/httpd/httpd.conf");
        assert!(
            conf.contains("Listen 80\n") && conf.contains("ServerAdmin foo@example.org\n"),
            "{conf}"
        );
        assert!(conf.contains("DocumentRoot /var/www/localhost\n"));
        assert!(text(&g, "/var/www/localhost/index.html").contains("It works"));
        assert!(text(&g, "/etc/nftables.nft").contains("tcp dport { 80 } accept"));
        assert!(g.users.contains_key("wwwrun") && g.groups.contains_key("wwwrun"));
        let g = build(
            "services.httpd = { enable = true; virtualHosts.\"example.org\" = { documentRoot = \"/srv/www\"; \
             listen = [ { port = 8080; } { ip = \"10.0.0.1\"; port = 8443; } ]; serverAliases = [ \"www.example.org\" ]; }; };",
        )
        .unwrap();
        let conf = text(&g, "/etc/httpd/httpd.conf");
        assert!(
            conf.contains("Listen 8080\nListen 10.0.0.1:8443\n"),
            "{conf}"
        );
        assert!(conf.contains("<VirtualHost *:8080>\n  ServerName example.org\n  ServerAlias www.example.org\n  DocumentRoot /srv/www\n"));
        assert!(!g.files.keys().any(|p| p.starts_with("/var/www")));
        let g = build(
            "services.httpd = { enable = true; virtualHosts.a.extraConfig = \"Header set X-A 1\"; };",
        )
        .unwrap();
        assert!(
            text(&g, "/etc/httpd/httpd.conf")
                .contains("  </Directory>\nHeader set X-A 1\n</VirtualHost>\n")
        );
        let php = build("services.httpd = { enable = true; enablePHP = true; };");
        if host_package_version(Path::new(DpkgStatus::PATH), "libapache2-mod-php").is_none() {
            let e = php.unwrap_err().to_string();
            assert!(
                e.contains("install the Debian package ‘libapache2-mod-php’"),
                "{e}"
            );
        } else {
            let conf = text(php.as_ref().unwrap(), "/etc/httpd/httpd.conf").to_string();
            assert!(
                conf.contains("\nLoadModule php_module /usr/lib/apache2/modules/libphp"),
                "{conf}"
            );
            assert!(conf.contains("SetHandler application/x-httpd-php\n"));
        }

        assert!(error("services.httpd = { enable = true; virtualHosts.a.listen = [ { port = 99999; } ]; };").contains("99999 is not a port"));
    }

    #[test]
    fn nginx() {
        let g = build(
            "services.nginx = { enable = true; recommendedGzipSettings = true; recommendedProxySettings = true; \
             appendHttpConfig = \"# appended\"; commonHttpConfig = \"# common\"; \
             virtualHosts.main = { default = true; root = \"/srv/main\"; \
               locations.\"/\".return = \"200 'hi'\"; locations.\"/api/\".proxyPass = \"http://127.0.0.1:8081/\"; }; \
             virtualHosts.other = { serverName = \"other.example\"; serverAliases = [ \"www.other.example\" ]; \
               listen = [ { addr = \"127.0.0.1\"; port = 8081; } ]; locations.\"/x\" = { alias = \"/srv/x\"; index = \"a.html\"; }; }; };",
        )
        .unwrap();
        let conf = text(&g, "/etc/nginx/nginx.conf");
        assert!(conf.contains("user nginx nginx;\n"), "{conf}");
        assert!(
            conf.contains("    listen 0.0.0.0:80 default_server;\n"),
            "{conf}"
        );
        assert!(conf.contains("    server_name main;\n    root /srv/main;\n"));
        assert!(conf.contains("      return 200 'hi';\n"));
        assert!(conf.contains(
            "      proxy_pass http://127.0.0.1:8081/;\n      include /etc/nginx/recommended-proxy-headers.conf;\n"
        ));
        assert!(conf.contains(
            "    listen 127.0.0.1:8081;\n    server_name other.example www.other.example;\n"
        ));
        assert!(conf.contains("      alias /srv/x;\n      index a.html;\n"));
        assert!(conf.contains("  gzip on;\n") && conf.contains("  proxy_http_version 1.1;\n"));
        assert!(
            conf.find("# common") < conf.find("gzip on")
                && conf.find("# appended") > conf.find("server_name")
        );
        assert!(
            !text(&g, "/etc/nftables.nft").contains("dport"),
            "nginx opens no port"
        );
        assert!(g.users.contains_key("nginx") && g.groups.contains_key("nginx"));
        assert_eq!(g.units["nginx.service"].wanted_by, ["multi-user.target"]);
        assert!(
            error(
                "services.nginx = { enable = true; virtualHosts.a.listen = [ { port = 80; } ]; };"
            )
            .contains("each item needs addr")
        );
        let plain =
            build("services.nginx.enable = true; services.nginx.virtualHosts.a = { };").unwrap();
        let conf = text(&plain, "/etc/nginx/nginx.conf");
        assert!(
            !conf.contains("gzip on")
                && !conf.contains("default_server")
                && conf.contains("listen 0.0.0.0:80;\n"),
            "{conf}"
        );
    }

    #[test]
    fn nginx_tls_settings_and_websockets() {
        let g = build(
            "services.nginx = { enable = true; enableReload = true; recommendedTlsSettings = true; \
             virtualHosts.ws.locations.\"/socket\" = { proxyPass = \"http://127.0.0.1:9000\"; proxyWebsockets = true; }; \
             virtualHosts.ws.locations.\"/plain\".proxyPass = \"http://127.0.0.1:9001\"; };",
        )
        .unwrap();
        let conf = text(&g, "/etc/nginx/nginx.conf");
        assert!(
            conf.contains("  map $http_upgrade $connection_upgrade {\n    default upgrade;\n    '' close;\n  }\n"),
            "{conf}"
        );
        assert!(conf.contains("  ssl_session_cache shared:SSL:10m;\n  ssl_session_tickets off;\n"));
        assert!(conf.contains("  ssl_stapling on;\n"));
        assert!(conf.contains(
            "proxy_pass http://127.0.0.1:9000;\n      proxy_http_version 1.1;\n      \
             proxy_set_header Upgrade $http_upgrade;\n      proxy_set_header Connection $connection_upgrade;\n"
        ));
        assert!(
            conf.contains("proxy_pass http://127.0.0.1:9001;\n    }\n"),
            "{conf}"
        );
        let plain = build("services.nginx.enable = true;").unwrap();
        assert!(!text(&plain, "/etc/nginx/nginx.conf").contains("ssl_"));
    }

    #[test]
    fn redis() {
        let g = build(
            "services.redis = { enable = true; bind = null; }; \
             services.redis.servers.cache = { enable = true; port = 6380; requirePass = \"pw\"; openFirewall = true; \
               settings = { maxmemory = \"10mb\"; save = [ \"900 1\" \"300 10\" ]; lazyfree-lazy-eviction = true; }; }; \
             services.redis.servers.sock.enable = true;",
        )
        .unwrap();
        let main = text(&g, "/etc/redis/redis.conf");
        assert!(
            main.contains("port 6379\n") && !main.contains("bind"),
            "{main}"
        );
        assert!(main.contains("unixsocket /run/redis/redis.sock\n"));
        let cache = text(&g, "/etc/redis/redis-cache.conf");
        assert!(cache.contains("port 6380\n"), "{cache}");
        assert!(cache.contains("bind 127.0.0.1\n") && cache.contains("requirepass pw\n"));
        assert!(
            cache.contains("save 900 1\nsave 300 10\n")
                && cache.contains("lazyfree-lazy-eviction yes\n")
        );
        assert!(matches!(
            g.files["/etc/redis/redis-cache.conf"],
            ManagedFile::Text { mode: 0o600, .. }
        ));
        assert!(
            text(&g, "/etc/redis/redis-sock.conf").contains("port 0\n"),
            "no TCP unless given a port"
        );
        assert!(
            g.units["redis-cache.service"]
                .text
                .contains("User=redis-cache\n")
        );
        assert!(g.units.contains_key("redis.service") && g.users.contains_key("redis"));
        assert!(text(&g, "/etc/nftables.nft").contains("tcp dport { 6380 } accept"));
        let g = build("services.redis.servers.\"\".enable = true;").unwrap();
        let main = text(&g, "/etc/redis/redis.conf");
        assert!(
            main.contains("port 6379\n") && main.contains("bind 127.0.0.1\n"),
            "{main}"
        );
        assert!(
            error("services.redis.port = 1; services.redis.servers.\"\".port = 2;")
                .contains("differ")
        );
        assert!(
            !build("services.redis.servers.x.port = 6390;")
                .unwrap()
                .units
                .keys()
                .any(|u| u.starts_with("redis"))
        );
    }

    #[test]
    fn units_timers_and_tmpfiles() {
        let snippet = |post: &str| {
            format!(
                "systemd.services.s = {{ startAt = \"daily\"; postStart = \"{post}\"; restartIfChanged = false; \
                 path = [ \"/opt/x\" {{ type = \"derivation\"; outPath = \"/usr\"; name = \"p\"; }} ]; }}; \
                 systemd.timers.t = {{ wantedBy = [ \"timers.target\" ]; timerConfig.OnBootSec = \"5min\"; }}; \
                 systemd.tmpfiles.rules = [ \"d /var/lib/x 0700 root root -\" ];"
            )
        };
        let g = build(&snippet("a")).unwrap();
        let unit = &g.units["s.service"].text;
        assert!(unit.contains("X-RestartIfChanged=false\n"), "{unit}");
        assert!(
            unit.contains("Environment=\"PATH=/opt/x/bin:/opt/x/sbin:/usr/bin:/usr/sbin\"\n"),
            "{unit}"
        );
        assert!(unit.contains("ExecStartPost=/etc/ncsh/units/s-post-start\n"));
        assert_ne!(unit, &build(&snippet("b")).unwrap().units["s.service"].text);
        assert!(g.units["s.timer"].text.contains("OnCalendar=daily\n"));
        assert_eq!(g.units["s.timer"].wanted_by, ["timers.target"]);
        assert!(
            g.units["t.timer"]
                .text
                .contains("[Timer]\nOnBootSec=5min\n")
        );
        assert_eq!(
            text(&g, "/etc/tmpfiles.d/00-nixos.conf").lines().nth(1),
            Some("d /var/lib/x 0700 root root -")
        );
        assert!(error("systemd.services.s.startAt = 3;").contains("expected a calendar event"));
        assert!(
            error("systemd.services.s.path = [ \"rel\" ];")
                .contains("neither a package nor an absolute path")
        );
    }

    #[test]
    fn tmpfiles_settings() {
        let g = build(
            "systemd.tmpfiles.settings.\"10-app\" = { \
               \"/var/lib/app\".d = { mode = \"0750\"; user = \"app\"; group = \"app\"; }; \
               \"/etc/motd\".f = { argument = \"hello world\\\\n\"; }; \
               \"/tmp/x\".\"L+\" = { type = \"L+\"; argument = \"/etc/hosts\"; age = \"1d\"; }; };",
        )
        .unwrap();
        assert_eq!(
            text(&g, "/etc/tmpfiles.d/10-app.conf"),
            "'f' '/etc/motd' '-' '-' '-' '-' hello\\x20world\\x5cn\n\
             'L+' '/tmp/x' '-' '-' '-' '1d' /etc/hosts\n\
             'd' '/var/lib/app' '0750' 'app' 'app' '-' \n"
        );
        let unit = &g.units["ncsh-tmpfiles.service"].text;
        assert!(
            unit.contains("ExecStart=/usr/bin/systemd-tmpfiles --create --remove /etc/tmpfiles.d/10-app.conf\n"),
            "{unit}"
        );
        assert!(
            error("systemd.tmpfiles.settings.\"a/b\".\"/x\".d = { };")
                .contains("cannot be a file name")
        );
    }

    #[test]
    fn sudo_hosts_and_resolver() {
        let g = build(
            "security.sudo = { wheelNeedsPassword = false; extraConfig = \"Defaults lecture=never\"; \
               extraRules = [ { users = [ \"carol\" 1001 ]; groups = [ \"ops\" ]; runAs = \"root\"; \
                 commands = [ \"/usr/bin/id\" { command = \"/usr/bin/true\"; options = [ \"NOPASSWD\" \"SETENV\" ]; } ]; } ]; }; \
             networking.hosts.\"10.0.0.5\" = [ \"db\" ]; networking.extraHosts = \"10.0.0.6 x\"; \
             networking.nameservers = [ \"10.0.0.53\" ]; networking.search = [ \"lan\" ];",
        )
        .unwrap();
        let sudoers = text(&g, "/etc/sudoers");
        assert!(
            sudoers.contains("%wheel ALL=(ALL:ALL) NOPASSWD:SETENV: ALL\n"),
            "{sudoers}"
        );
        assert!(sudoers.contains(
            "carol ALL=(root) /usr/bin/id, NOPASSWD:SETENV: /usr/bin/true\n#1001 ALL=(root) /usr/bin/id"
        ));
        assert!(
            sudoers.contains("%ops ALL=(root) ") && sudoers.ends_with("Defaults lecture=never\n")
        );
        assert!(matches!(
            g.files["/etc/sudoers"],
            ManagedFile::Text { mode: 0o440, .. }
        ));
        assert!(text(&g, "/etc/hosts").ends_with(" box\n10.0.0.5 db\n10.0.0.6 x\n"));
        assert!(text(&g, "/etc/resolv.conf").ends_with("nameserver 10.0.0.53\nsearch lan\n"));
        assert!(
            !build("security.sudo.enable = false;")
                .unwrap()
                .files
                .contains_key("/etc/sudoers")
        );
        assert!(
            error("security.sudo.extraRules = [ { users = [ \"a\" ]; commands = [ ]; } ];")
                .contains("commands is empty")
        );
    }

    #[test]
    fn domain_gateway_and_resolved() {
        let g = build(
            "networking.domain = \"example.org\"; networking.nameservers = [ \"10.0.0.53\" ]; \
             networking.search = [ \"lan\" ]; services.resolved.enable = false; \
             networking.defaultGateway = { address = \"10.233.1.1\"; interface = \"eth0\"; };",
        )
        .unwrap();
        assert!(text(&g, "/etc/hosts").contains("127.0.0.2 box.example.org box\n"));
        assert!(
            text(&g, "/etc/resolv.conf")
                .ends_with("domain example.org\nnameserver 10.0.0.53\nsearch lan\n")
        );
        let unit = &g.units["ncsh-default-gateway.service"];
        assert!(
            unit.text
                .contains("ExecStart=/usr/bin/ip route replace default via 10.233.1.1 dev eth0\n"),
            "{}",
            unit.text
        );
        assert_eq!(unit.wanted_by, ["sysinit.target"]);
        let g = build("networking.defaultGateway = \"10.0.0.1\"; services.resolved.enable = true;")
            .unwrap();
        assert!(
            g.units["ncsh-default-gateway.service"]
                .text
                .contains("via 10.0.0.1\n")
        );
        assert!(
            !build("")
                .unwrap()
                .units
                .contains_key("ncsh-default-gateway.service")
        );
        assert!(
            error("networking.defaultGateway = { address = \"a b\"; };").contains("is not valid")
        );
        assert!(error("networking.domain = \"a b\";").contains("is not a domain name"));
    }

    #[test]
    fn postgresql_settings_port() {
        let conf = |snippet: &str| {
            let g = build(&format!("services.postgresql.enable = true; {snippet}")).unwrap();
            (
                text(&g, "/etc/postgresql/postgresql.conf").to_string(),
                g.options["services"]["postgresql"]["settings"]["port"].clone(),
            )
        };
        let (c, p) = conf("");
        assert!(c.contains("port = 5432\n") && p == 5432, "{c}");
        let (c, p) = conf("services.postgresql.settings.port = 5433;");
        assert!(c.contains("port = 5433\n") && p == 5433, "{c}");
        let (c, _) = conf("services.postgresql.port = 5434;");
        assert!(
            c.contains("port = 5434\n") && !c.contains("port = 5432"),
            "{c}"
        );
        assert!(
            error("services.postgresql = { enable = true; port = 5434; settings.port = 5435; };")
                .contains("set one of them")
        );
    }

    #[test]
    fn postgresql() {
        let g = build(
            "services.postgresql = { enable = true; enableTCPIP = true; ensureDatabases = [ \"shop\" \"it's\" ]; \
             ensureUsers = [ { name = \"shop\"; ensureDBOwnership = true; ensureClauses = { login = true; createdb = false; superuser = null; }; } ]; \
             authentication = \"host all all 10.0.0.1/32 trust\"; settings = { max_connections = 20; fsync = false; work_mem = \"4MB\"; }; \
             initdbArgs = [ \"--data-checksums\" ]; initialScript = \"CREATE TABLE t (x int);\"; };",
        )
        .unwrap();
        let conf = text(&g, "/etc/postgresql/postgresql.conf");
        for line in [
            "listen_addresses = '*'\n",
            "port = 5432\n",
            "max_connections = 20\n",
            "fsync = no\n",
            "work_mem = '4MB'\n",
        ] {
            assert!(conf.contains(line), "{line} in {conf}");
        }
        let hba = text(&g, "/etc/postgresql/pg_hba.conf");
        let mine = hba.find("host all all 10.0.0.1/32 trust").unwrap();
        assert!(mine < hba.find("local all all peer").unwrap(), "{hba}");
        let sql = text(&g, "/etc/postgresql/ensure.sql");
        assert!(sql.contains("SELECT 'CREATE DATABASE \"it''s\"' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'it''s')\\gexec\n"), "{sql}");
        assert!(sql.contains("ALTER DATABASE \"shop\" OWNER TO \"shop\";\n"));
        assert!(
            sql.contains(
                "ALTER ROLE \"shop\" CREATEDB_OFF"
                    .replace("CREATEDB_OFF", "NOCREATEDB LOGIN;\n")
                    .as_str()
            ),
            "{sql}"
        );
        assert!(
            text(&g, "/etc/ncsh/postgresql/initdb")
                .contains("initdb -U postgres '--data-checksums' -D '/var/lib/postgresql/15'")
        );
        assert_eq!(
            text(&g, "/etc/postgresql/initial-script.sql"),
            "CREATE TABLE t (x int);"
        );
        let unit = &g.units["postgresql.service"].text;
        assert!(
            unit.contains("Type=notify\n") && unit.contains("User=postgres\n"),
            "{unit}"
        );
        assert_eq!(g.users["postgres"].uid, Some(71));
        assert_eq!(g.users["postgres"].home, "/var/lib/postgresql/15");
        let local =
            build("services.postgresql = { enable = true; port = 5433; dataDir = \"/srv/pg\"; };")
                .unwrap();
        assert!(
            text(&local, "/etc/postgresql/postgresql.conf")
                .contains("listen_addresses = 'localhost'\nlog_destination")
        );
        assert!(text(&local, "/etc/postgresql/postgresql.conf").contains("port = 5433\n"));
        assert!(
            local.units["postgresql.service"]
                .text
                .contains("-D /srv/pg ")
        );
        let e = error(
            "services.postgresql = { enable = true; package = { type = \"derivation\"; name = \"postgresql-16.4\"; version = \"16.4\"; }; };",
        );
        assert!(
            e.contains("postgresql-16.4 (PostgreSQL 16.4), but this host has PostgreSQL 15"),
            "{e}"
        );
        build("services.postgresql = { enable = true; package = { type = \"derivation\"; name = \"postgresql-15.10\"; version = \"15.10\"; }; };").unwrap();
        let e = error("services.postgresql = { enable = true; package = \"postgresql\"; };");
        assert!(e.contains("expected a package, found the string"), "{e}");
        let e = error(
            "services.postgresql = { enable = true; ensureUsers = [ { name = \"a\"; ensureDBOwnership = true; } ]; };",
        );
        assert!(
            e.contains("ensureDBOwnership needs a database named ‘a’"),
            "{e}"
        );
        let e = error(
            "services.postgresql = { enable = true; ensureUsers = [ { name = \"a\"; ensureClauses.root = true; } ]; };",
        );
        assert!(e.contains("unknown clause ‘root’"), "{e}");
    }

    #[test]
    fn host_package_versions_come_from_dpkg() {
        let dir = tempfile::tempdir().unwrap();
        let status = dir.path().join("status");
        std::fs::write(
            &status,
            "Package: mariadb-server\nStatus: install ok installed\nVersion: 1:10.11.19-0+deb12u1\n\n\
             Package: caddy\nStatus: deinstall ok config-files\nVersion: 2.6.2-5\n\n\
             Package: dnsmasq-base\nStatus: install ok installed\nVersion: 2.90\n",
        )
        .unwrap();
        let v = |p: &str| host_package_version(&status, p);
        assert_eq!(v("mariadb-server").as_deref(), Some("10.11.19"));
        assert_eq!(v("dnsmasq-base").as_deref(), Some("2.90"));
        assert_eq!(v("caddy"), None, "removed, only its configuration is left");
        assert_eq!(v("mariadb"), None);
    }

    #[test]
    fn mysql() {
        let g = build(
            "services.mysql = { enable = true; ensureDatabases = [ \"shop\" ]; \
             ensureUsers = [ { name = \"alice\"; ensurePermissions = { \"shop.*\" = \"ALL PRIVILEGES\"; }; } ]; \
             settings = { mysqld = { bind-address = \"127.0.0.1\"; skip-name-resolve = true; plugin-load-add = [ \"a.so\" \"b.so\" ]; }; client.default-character-set = \"utf8mb4\"; }; };",
        )
        .unwrap();
        assert_eq!(
            text(&g, "/etc/my.cnf"),
            "# Generated by ncsh from services.mysql.\n[client]\ndefault-character-set=utf8mb4\n\n\
             [mysqld]\nbind-address=127.0.0.1\ndatadir=/var/lib/mysql\nplugin-load-add=a.so\nplugin-load-add=b.so\n\
             port=3306\nskip-name-resolve=true\n\n"
        );
        let sql = text(&g, "/etc/ncsh/mysql/ensure.sql");
        assert_eq!(
            sql,
            "CREATE DATABASE IF NOT EXISTS `shop`;\n\
             CREATE USER IF NOT EXISTS 'alice'@'localhost' IDENTIFIED WITH unix_socket;\n\
             GRANT ALL PRIVILEGES ON shop.* TO 'alice'@'localhost';\n"
        );
        assert!(g.units["mysql.service"].text.contains("Type=notify\n"));
        assert!(g.users.contains_key("mysql") && g.groups.contains_key("mysql"));
        let e =
            error("services.mysql = { enable = true; ensureUsers = [ { name = \"a'b\"; } ]; };");
        assert!(e.contains("must not contain quotes"), "{e}");
        let e = error(
            "services.mysql = { enable = true; package = { type = \"derivation\"; pname = \"mysql\"; version = \"8.0.36\"; }; };",
        );
        assert!(e.contains("this host runs MariaDB only"), "{e}");
        let e = error(
            "services.mysql = { enable = true; package = { type = \"derivation\"; pname = \"mariadb-server\"; version = \"11.4.2\"; }; };",
        );
        assert!(
            e.contains("MariaDB 11.4.2, but this host has MariaDB 10.11"),
            "{e}"
        );
        build("services.mysql = { enable = true; package = { type = \"derivation\"; pname = \"mariadb-server\"; version = \"10.11.6\"; }; };").unwrap();
    }

    #[test]
    fn mosquitto() {
        let g = build(
            "services.mosquitto = { enable = true; listeners = [ \
             { users.alice = { password = \"it's\"; acl = [ \"readwrite test/#\" ]; }; users.bob.hashedPassword = \"$7$x\"; acl = [ \"pattern read %u/#\" ]; } \
             { port = 1884; address = \"127.0.0.1\"; omitPasswordAuth = true; settings.allow_anonymous = true; } ]; };",
        )
        .unwrap();
        let conf = text(&g, "/etc/mosquitto/mosquitto.conf");
        assert!(conf.starts_with("# Generated by ncsh from services.mosquitto.\nper_listener_settings true\npersistence true\n"), "{conf}");
        assert!(conf.contains("\nlistener 1883\nacl_file /etc/mosquitto/acl-0.conf\npassword_file /run/mosquitto/passwd-0\n"), "{conf}");
        assert!(conf.ends_with("\nlistener 1884 127.0.0.1\nacl_file /etc/mosquitto/acl-1.conf\nallow_anonymous true\n"), "{conf}");
        assert_eq!(
            text(&g, "/etc/mosquitto/acl-0.conf"),
            "pattern read %u/#\nuser alice\ntopic readwrite test/#\nuser bob\n"
        );
        let pw = text(&g, "/etc/ncsh/mosquitto/passwords");
        assert!(
            pw.contains("mosquitto_passwd -b /run/mosquitto/passwd-0 'alice' 'it'\\''s'\n"),
            "{pw}"
        );
        assert!(
            pw.contains("printf '%s:%s\\n' 'bob' '$7$x' >> /run/mosquitto/passwd-0\n"),
            "{pw}"
        );
        assert!(matches!(
            g.files["/etc/ncsh/mosquitto/passwords"],
            ManagedFile::Text { mode: 0o700, .. }
        ));
        assert!(g.units["mosquitto.service"].text.contains("Type=notify\n"));
        let e = error(
            "services.mosquitto = { enable = true; listeners = [ { users.\"a:b\".password = \"x\"; } ]; };",
        );
        assert!(e.contains("must not be empty or contain ‘:’"), "{e}");
        let e = error(
            "services.mosquitto = { enable = true; listeners = [ { users.a = { password = \"x\"; hashedPassword = \"y\"; }; } ]; };",
        );
        assert!(e.contains("set only one of password"), "{e}");
        let e = error("services.mosquitto = { enable = true; listeners = [ { prot = 1; } ]; };");
        assert!(e.contains("unknown attribute ‘prot’"), "{e}");
    }

    #[test]
    fn dnsmasq() {
        let g = build(
            "services.dnsmasq = { enable = true; settings = { server = [ \"10.0.0.1\" \"10.0.0.2\" ]; no-resolv = true; strict-order = false; cache-size = 0; }; };",
        )
        .unwrap();
        assert_eq!(
            text(&g, "/etc/dnsmasq.conf"),
            "# Generated by ncsh from services.dnsmasq.\ncache-size=0\nconf-file=/etc/dnsmasq-conf.conf\n\
             dhcp-leasefile=/var/lib/dnsmasq/dnsmasq.leases\nno-resolv\nresolv-file=/etc/dnsmasq-resolv.conf\n\
             server=10.0.0.1\nserver=10.0.0.2\n# setting strict-order explicitly set to false\n"
        );
        assert_eq!(
            text(&g, "/etc/resolv.conf"),
            "# Generated by ncsh: services.dnsmasq.resolveLocalQueries\nnameserver 127.0.0.1\n"
        );
        assert!(
            g.units["dnsmasq.service"]
                .text
                .contains("Type=dbus\nBusName=uk.org.thekelleys.dnsmasq\n")
        );
        let g =
            build("services.dnsmasq = { enable = true; resolveLocalQueries = false; };").unwrap();
        assert!(!g.files.contains_key("/etc/resolv.conf"));
        assert!(!text(&g, "/etc/dnsmasq.conf").contains("resolv-file"));
        let e = error("services.dnsmasq = { enable = true; settings.address = [ { a = 1; } ]; };");
        assert!(
            e.contains("services.dnsmasq.settings.address: expected a string"),
            "{e}"
        );
    }

    #[test]
    fn accepted_reload_options() {
        assert!(build("services.caddy = { enable = true; enableReload = false; };").is_ok());
        assert!(build("services.nginx = { enable = true; enableReload = true; };").is_ok());
    }

    #[test]
    fn caddy() {
        let g = build(
            "services.caddy = { enable = true; email = \"a@example.test\"; globalConfig = \"admin off\"; extraConfig = \"(common) {\\n}\"; \
             virtualHosts.\"http://a.test:8080\" = { serverAliases = [ \"http://b.test:8080\" ]; listenAddresses = [ \"10.0.0.1\" \"::1\" ]; extraConfig = \"respond hi\"; }; };",
        )
        .unwrap();
        assert_eq!(
            text(&g, "/etc/caddy/Caddyfile"),
            "# Generated by ncsh from services.caddy.\n{\n\temail a@example.test\n\tlog {\n\t\tlevel ERROR\n\t}\n\tadmin off\n}\n\n\
             (common) {\n}\n\n\
             http://a.test:8080 http://b.test:8080 {\n\tbind 10.0.0.1 ::1\n\tlog {\n\t\toutput file /var/log/caddy/access-a.test_8080.log\n\t}\n\trespond hi\n}\n"
        );
        let unit = &g.units["caddy.service"].text;
        assert!(
            unit.contains("Type=notify\nUser=caddy\n")
                && unit.contains("AmbientCapabilities=CAP_NET_BIND_SERVICE\n"),
            "{unit}"
        );
        assert_eq!(g.users["caddy"].home, "/var/lib/caddy");
        let e =
            error("services.caddy = { enable = true; virtualHosts.\"a b\".extraConfig = \"\"; };");
        assert!(e.contains("‘a b’ is not a site address"), "{e}");
    }

    #[test]
    fn nix_only_option_sets_say_a_nix_host_builds_them() {
        let e = error("services.nextcloud = { enable = true; hostName = \"cloud\"; };");
        assert!(
            e.contains("‘services.nextcloud.enable’ is built only by a Nix host"),
            "{e}"
        );
        assert!(
            !e.contains("does not exist") && !e.contains("did you mean"),
            "{e}"
        );
        let e = error("services.gitlab.host = \"git\";");
        assert!(
            e.contains("‘services.gitlab.host’ is built only by a Nix host"),
            "{e}"
        );
        // Disabled, it asks for nothing.
        build("services.nextcloud.enable = false;").unwrap();
        // A module that realizes one takes precedence.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("cloud.rhai"),
            "fn options() { [ #{ path: \"services.nextcloud.enable\", type: \"bool\", \"default\": false } ] }\n",
        )
        .unwrap();
        build_with(
            &native_builder(vec![dir.path().to_path_buf()]),
            "services.nextcloud.enable = true;",
        )
        .unwrap();
    }

    #[test]
    fn renamed_options_are_their_new_names_and_removed_ones_say_what_instead() {
        let g = build(
            "services.openssh.enable = true;\nservices.openssh.passwordAuthentication = false;\n\
             users.extraUsers.op = { isNormalUser = true; };\nnix.trustedUsers = [ \"root\" ];",
        )
        .unwrap();
        assert!(
            text(&g, "/etc/ssh/sshd_config").contains("PasswordAuthentication no"),
            "{}",
            text(&g, "/etc/ssh/sshd_config")
        );
        assert!(g.users.contains_key("op"));
        assert_eq!(
            g.options["nix"]["settings"]["trusted-users"],
            serde_json::json!(["root"])
        );
        // Read through config, the new name has the value given to the old.
        let g = build(
            "services.openssh.permitRootLogin = \"no\"; \
             networking.hostName = config.services.openssh.settings.PermitRootLogin;",
        )
        .unwrap();
        assert_eq!(g.options["networking"]["hostName"], "no");
        let e = error("services.mysql.enable = true;\nservices.mysql.bind = \"127.0.0.1\";");
        assert!(
            e.starts_with(
                "--config:2:1: the option definition ‘services.mysql.bind’ no longer has any effect"
            ) && e.contains("Use services.mysql.settings.mysqld.bind-address instead."),
            "{e}"
        );
    }

    #[test]
    fn every_renamed_option_is_renamed_to_a_declared_one() {
        let d = RhaiModules::default()
            .loaded()
            .unwrap()
            .declarations
            .clone();
        assert!(d.renamed.len() >= 10 && !d.removed.is_empty());
        let declared = |path: &[String]| {
            d.options.iter().any(|o| {
                o.path.as_slice() == path
                    || o.path.starts_with(path)
                    || (o.ty.takes_names_below() && path.starts_with(&o.path))
            })
        };
        for r in &d.renamed {
            assert!(
                declared(&r.to),
                "{} → {}: not declared",
                r.from.join("."),
                r.to.join(".")
            );
            assert!(
                !declared(&r.from),
                "{}: declared and renamed",
                r.from.join(".")
            );
        }
        for r in &d.removed {
            assert!(
                !declared(&r.path),
                "{}: declared and removed",
                r.path.join(".")
            );
        }
    }

    #[test]
    fn nixpkgs_resolvconf_and_networkmanager_settings_are_accepted() {
        let g = build(
            "nixpkgs.config.allowUnfree = true; nixpkgs.overlays = [ (final: prev: { }) ];\n\
             nixpkgs.hostPlatform = \"x86_64-linux\"; networking.resolvconf.enable = false;\n\
             networking.networkmanager = { enable = true; dns = \"dnsmasq\"; };\n\
             networking.hostName = \"o${toString (builtins.length config.nixpkgs.overlays)}\";",
        )
        .unwrap();
        assert_eq!(g.options["networking"]["hostName"], "o1");
        // The option modules see only whether overlays are given.
        assert_eq!(g.options["nixpkgs"]["overlays"], true);
        assert_eq!(build("").unwrap().options["nixpkgs"]["overlays"], false);
    }

    #[test]
    fn modules_ncsh_lacks_are_refused_by_name_unless_only_disabled() {
        build(
            "hardware.bluetooth.enable = false; programs.command-not-found.enable = false;\n\
             xdg.mime.enable = false; boot.loader.grub.enable = false;",
        )
        .unwrap();
        for (text, module) in [
            (
                "virtualisation.docker.enable = true;",
                "virtualisation.docker",
            ),
            (
                "security.acme = { acceptTerms = true; defaults.email = \"a@b.c\"; };",
                "security.acme",
            ),
            (
                "hardware.bluetooth = { enable = false; powerOnBoot = true; };",
                "hardware.bluetooth",
            ),
        ] {
            let e = error(text);
            assert!(
                e.starts_with("--config:1:")
                    && e.contains(&format!(": ‘{module}’ is not realized natively"))
                    && e.contains("a Nix host builds it"),
                "{text}: {e}"
            );
        }
        // A typo is still one.
        let e = error("services.openssh.enabel = true;");
        assert!(e.contains("did you mean services.openssh.enable?"), "{e}");
        let g = build("boot.cleanTmpDir = true; boot.loader.systemd-boot.enable = true;").unwrap();
        assert_eq!(
            text(&g, "/etc/tmpfiles.d/tmp.conf"),
            "# Generated by ncsh from boot.tmp.cleanOnBoot.\nD! /tmp 1777 root root\n"
        );
        assert!(
            !build("")
                .unwrap()
                .files
                .contains_key("/etc/tmpfiles.d/tmp.conf")
        );
    }

    #[test]
    fn an_option_modules_error_about_a_value_is_where_the_value_was_defined() {
        let e = error(
            "networking.hostName = \"h\";\nsystemd.services.s = { script = \"true\";\n  \
             serviceConfig.ExecStartPre = \"a\\nb\"; };",
        );
        assert_eq!(
            e,
            "--config:3:3: systemd.services.s.serviceConfig.ExecStartPre: a value spans lines \
             (option module ‘systemd’)"
        );
    }

    #[test]
    fn failed_assertions_fail_the_build_and_warnings_are_notes() {
        let e = error(
            "assertions = [ { assertion = false; message = \"no good\"; } \
             { assertion = 1 == 1; message = \"fine\"; } { assertion = false; message = \"nor this\"; } ];",
        );
        assert_eq!(e, "Failed assertions:\n- no good\n- nor this");
        // A module of the user's own asserts on the configuration, as on NixOS.
        let e = error(
            "imports = [ ({ config, ... }: { assertions = [ { \
               assertion = config.services.openssh.enable; message = \"this needs sshd\"; } ]; }) ];",
        );
        assert_eq!(e, "Failed assertions:\n- this needs sshd");
        build(
            "warnings = [ \"careful\" ]; assertions = [ { assertion = true; message = \"x\"; } ];",
        )
        .unwrap();
    }

    #[test]
    fn quoted_names_keep_their_quotes_and_dots() {
        let etc = build("environment.etc.\"a\\\"b.c\".text = \"x\";").unwrap();
        assert_eq!(text(&etc, "/etc/a\"b.c"), "x");
    }

    #[test]
    fn home_mode() {
        let g = build(
            "users.users.alice = { isNormalUser = true; homeMode = \"750\"; }; users.users.bob.isNormalUser = true;",
        )
        .unwrap();
        assert_eq!(g.users["alice"].home_mode, 0o750);
        assert_eq!(g.users["bob"].home_mode, 0o700);
        assert!(
            error("users.users.a = { isNormalUser = true; homeMode = \"u+rwx\"; };")
                .contains("is not an octal mode")
        );
    }

    #[test]
    fn bash_completion() {
        let line = "if shopt -q progcomp &>/dev/null && [ -r /usr/share/bash-completion/bash_completion ]; then\n  \
                    . /usr/share/bash-completion/bash_completion\nfi\n";
        let rc = |snippet: &str| text(&build(snippet).unwrap(), "/etc/bash.bashrc").to_string();
        let on = rc("");
        let interactive = on.find("case $- in *i*)").unwrap();
        assert!(on.find(line).is_some_and(|at| at > interactive), "{on}");
        assert!(!rc("programs.bash.completion.enable = false;").contains("bash-completion"));
    }

    #[test]
    fn pam_limits() {
        let g = build(
            "services.openssh.enable = true; security.pam.services.sshd.limits = [ \
               { domain = \"*\"; item = \"nofile\"; type = \"-\"; value = \"4096\"; } \
               { domain = \"@wheel\"; item = \"nproc\"; type = \"soft\"; value = 512; } ]; \
             security.pam.services.login.limits = [ { domain = \"*\"; item = \"core\"; type = \"hard\"; value = 0; } ];",
        )
        .unwrap();
        assert_eq!(
            text(&g, "/etc/security/limits-sshd.conf"),
            "* - nofile 4096\n@wheel soft nproc 512\n"
        );
        assert!(
            text(&g, "/etc/pam.d/sshd")
                .ends_with("session  required pam_limits.so conf=/etc/security/limits-sshd.conf\n")
        );
        assert!(!g.files.contains_key("/etc/security/limits-login.conf"));
        let plain = build("services.openssh.enable = true;").unwrap();
        assert!(!text(&plain, "/etc/pam.d/sshd").contains("pam_limits"));
        assert!(
            error("security.pam.services.sshd.limits = [ { domain = \"*\"; item = \"files\"; type = \"-\"; value = 1; } ];")
                .contains("is not a pam_limits item")
        );
    }

    #[test]
    fn users_and_groups() {
        let g = build(
            "users.users.alice = { isNormalUser = true; password = \"wonderland\"; extraGroups = [ \"wheel\" ]; }; \
             users.users.svc = { isSystemUser = true; group = \"svc\"; }; users.groups.svc.gid = 500; \
             users.users.carol = { isNormalUser = true; hashedPassword = \"$6$s$h\"; initialPassword = \"x\"; uid = 1234; };",
        )
        .unwrap();
        let alice = &g.users["alice"];
        assert_eq!(
            (
                alice.group.as_str(),
                alice.home.as_str(),
                alice.shell.as_str()
            ),
            ("users", "/home/alice", "/bin/bash")
        );
        assert!(
            alice.create_home
                && alice
                    .hashed_password
                    .as_deref()
                    .is_some_and(|h| h.starts_with("$6$"))
        );
        assert_eq!(alice.extra_groups, ["wheel"]);
        assert_eq!(
            (g.users["svc"].system, g.users["svc"].shell.as_str()),
            (true, "/usr/sbin/nologin")
        );
        assert_eq!(g.groups["svc"].gid, Some(500));
        assert_eq!(g.groups["users"].gid, Some(100), "NixOS's users group");
        // A declared `users` group keeps its gid, normal users or not.
        let own =
            build("users.groups.users.gid = 500; users.users.dave.isNormalUser = true;").unwrap();
        assert_eq!(own.groups["users"].gid, Some(500));
        assert_eq!(g.users["carol"].hashed_password.as_deref(), Some("$6$s$h"));
        assert_eq!(g.users["carol"].uid, Some(1234));
        assert!(g.users["carol"].initial_hashed_password.is_some());
        assert!(
            error("users.users.x = { isNormalUser = true; isSystemUser = true; };")
                .contains("cannot both be true")
        );
        assert!(
            error("users.users.x.description = \"nobody\";")
                .contains("set isNormalUser, isSystemUser or uid")
        );
    }

    #[test]
    fn own_services_and_etc_files() {
        let g = build(
            "systemd.services.hello = { description = \"Say 100% hello\"; script = ''\n  echo hello\n''; \
             wantedBy = [ \"multi-user.target\" ]; after = [ \"network.target\" \"x.service\" ]; \
             environment = { GREETING = \"say \\\"hi\\\"\"; }; serviceConfig = { Type = \"oneshot\"; RemainAfterExit = true; ExecStartPost = [ \"/bin/true\" \"/bin/true -x\" ]; }; }; \
             environment.etc.\"motd\".text = \"hi\\n\"; environment.etc.\"secret\" = { text = \"s\"; mode = \"0600\"; }; \
             time.timeZone = \"Europe/Amsterdam\";",
        )
        .unwrap();
        let unit = &g.units["hello.service"].text;
        assert!(unit.contains("Description=Say 100%% hello\n"), "{unit}");
        assert!(unit.contains("After=network.target x.service\n"));
        assert!(
            unit.contains("Environment=\"GREETING=say \\\"hi\\\"\"\n"),
            "{unit}"
        );
        assert!(unit.contains("ExecStart=/etc/ncsh/units/hello-start\n"));
        assert!(
            unit.contains("RemainAfterExit=yes\n")
                && unit.contains("ExecStartPost=/bin/true\nExecStartPost=/bin/true -x\n")
        );
        assert_eq!(
            text(&g, "/etc/ncsh/units/hello-start"),
            "#!/bin/bash\nset -e\necho hello\n\n"
        );
        assert_eq!(text(&g, "/etc/motd"), "hi\n");
        assert!(matches!(
            g.files["/etc/secret"],
            ManagedFile::Text { mode: 0o600, .. }
        ));
        assert_eq!(
            g.files["/etc/localtime"],
            ManagedFile::Symlink {
                target: "/usr/share/zoneinfo/Europe/Amsterdam".into()
            }
        );
        assert!(error("time.timeZone = \"../../etc/passwd\";").contains("unknown time zone"));
        assert!(error("environment.etc.\"../x\".text = \"x\";").contains("not a usable path"));
        assert!(
            error("systemd.services.\"bad name\".script = \"true\";")
                .contains("is not a unit name")
        );
    }

    #[test]
    fn firewall_ports_and_ranges() {
        let g = build(
            "networking.firewall = { allowedTCPPorts = [ 80 443 80 ]; allowedUDPPorts = [ 53 ]; \
             allowedTCPPortRanges = [ { from = 8000; to = 8010; } ]; };",
        )
        .unwrap();
        let rules = text(&g, "/etc/nftables.nft");
        assert!(
            rules.contains("tcp dport { 80, 443, 8000-8010 } accept\n"),
            "{rules}"
        );
        assert!(rules.contains("udp dport { 53 } accept\n"));
        assert!(
            error("networking.firewall.allowedTCPPortRanges = [ { from = 10; to = 5; } ];")
                .contains("is empty")
        );
    }

    /// Malformed configurations: one clear error each, with where it is.
    #[test]
    fn malformed_corpus() {
        for (snippet, expected) in [
            (
                "services.openssh.enable = \"yes\";",
                "--config:1:1: the option ‘services.openssh.enable’ has a wrong type: expected a boolean",
            ),
            (
                "services.openssh.ports = [ \"22\" ];",
                "element 1: expected a port",
            ),
            (
                "networking.firewall.allowedTCPPorts = [ 0 ];",
                "expected a port",
            ),
            (
                "networking.firewall.allowedTCPPortRanges = [ { from = 10; } ];",
                "expected { from = PORT; to = PORT; }",
            ),
            (
                "users.users.alice.uid = \"x\";",
                "expected an integer, found the string \"x\"",
            ),
            (
                "services.openssh.settings.PermitRootLogin = \"maybe\";",
                "one of \"yes\"",
            ),
            (
                "services.opensh.enable = true;",
                "did you mean services.openssh.enable",
            ),
            (
                "networking.firewall.allowedTCPPort = [ 80 ];",
                "did you mean networking.firewall.allowedTCPPorts",
            ),
            (
                "services.nginx.enabel = true;",
                "‘services.nginx.enabel’ does not exist; did you mean services.nginx.enable",
            ),
            (
                "services.nextcloud.enable = true;",
                "--config:1:1: the option ‘services.nextcloud.enable’ is built only by a Nix host: \
                 the native builder does not realize services.nextcloud (Debian has no Nextcloud \
                 package to run it from); build this container on a host with Nix (NCSH_BUILDER=nix, \
                 with nix-env and <nixpkgs/nixos>)",
            ),
            ("environment.etc.x = { };", "set text or source"),
            (
                "services.httpd.enable = true; services.httpd.enable = false;",
                "already defined",
            ),
            ("let a = 1; in { }", "--config:1:1"),
            (
                "services.openssh.enable = (pkgs.runCommand \"x\" { } \"\").outPath == \"\";",
                "a Nix host builds it",
            ),
            ("services.openssh.enable = true", "--config:1:"),
            ("imports = [ ./no-such-file.nix ];", "no-such-file.nix"),
        ] {
            let message = error(snippet);
            assert!(
                message.contains(expected),
                "{snippet}\n  expected: {expected}\n  got: {message}"
            );
            assert!(
                !message.contains('\n') || expected.contains('\n'),
                "one line: {message}"
            );
        }
    }

    #[test]
    fn user_modules_add_options() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("hello.rhai"),
            "fn options() { [ #{ path: \"services.hello.greeting\", type: \"str\", \"default\": \"hi\", description: \"\" } ] }\n\
             fn build(config, gen) { gen.file(\"/etc/hello\", config.services.hello.greeting); }\n",
        )
        .unwrap();
        let builder = native_builder(vec![dir.path().to_path_buf()]);
        let g = build_with(&builder, "services.hello.greeting = \"moin\";").unwrap();
        assert_eq!(text(&g, "/etc/hello"), "moin");
        std::fs::write(
            dir.path().join("clash.rhai"),
            "fn options() { [ #{ path: \"services.openssh.enable\", type: \"bool\" } ] }\n",
        )
        .unwrap();
        let clash = native_builder(vec![dir.path().to_path_buf()]);
        assert!(
            build_with(&clash, "")
                .unwrap_err()
                .to_string()
                .contains("declared twice")
        );
        std::fs::write(
            dir.path().join("clash.rhai"),
            "fn options() { [ #{ path: \"x.y\", type: \"float\" } ] }\n",
        )
        .unwrap();
        let bad = native_builder(vec![dir.path().to_path_buf()]);
        assert!(
            build_with(&bad, "")
                .unwrap_err()
                .to_string()
                .contains("unknown option type ‘float’")
        );
    }

    #[test]
    fn passwords_hash_as_crypt_sha512() {
        let hash = hash_password("wonderland").unwrap();
        assert!(hash.starts_with("$6$") && hash.len() > 50, "{hash}");
        assert_ne!(hash, hash_password("wonderland").unwrap(), "salted");
    }

    #[test]
    fn an_invalid_host_name_is_refused_with_the_option_path() {
        for bad in ["a\\nb", "a b", "-a", "a.b", "a/b", "x_"] {
            let e = error(&format!("networking.hostName = \"{bad}\";"));
            assert!(
                e.contains(
                    "the option ‘networking.hostName’ has a wrong type: expected a host name"
                ),
                "{bad}: {e}"
            );
        }
        let e = error(&format!("networking.hostName = \"{}\";", "a".repeat(64)));
        assert!(e.contains("expected a host name"), "{e}");
        let g = build("networking.hostName = \"web_1-x\";").unwrap();
        assert_eq!(text(&g, "/etc/hostname"), "web_1-x\n");
        assert!(text(&g, "/etc/hosts").contains(" web_1-x\n"));
    }
}
