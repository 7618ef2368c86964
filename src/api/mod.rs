//! The Rhai surface (ARCHITECTURE.md, "Layers"), a thin skin over [`Manager`]: the `Container`
//! type with its properties and methods, the functions `create`, `container`, `containers`, `exists`, and a few
//! helpers for scripts and verbs. Each is registered with its doc ([`docs`]); every error goes
//! through [`error::to_rhai`].

pub mod docs;
pub mod error;
pub mod limits;
mod net;
pub mod options;
pub mod testdriver;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rhai::{Array, CustomType, Dynamic, Engine, EvalAltResult, ImmutableString, Map, TypeBuilder};

use crate::container::options::Bind;
use crate::container::{ConfigSource, ContainerName, CreateOptions, NixOptions, UpdateOptions};
use crate::error::Error;
use crate::host::enter::RunOptions;
use crate::manager::{ApplyOptions, LogQuery, Manager};
use docs::{api_doc, function};
use error::{exit_request, to_rhai};

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// Set by the REPL's SIGINT handler: long waits in the API (`sleep`) give up early, and the
/// REPL's `on_progress` hook ends the evaluation.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Sleep, waking early when [`INTERRUPTED`] is set.
fn sleep_for(duration: Duration) {
    let end = Instant::now().checked_add(duration);
    while !INTERRUPTED.load(Ordering::Relaxed) {
        let left = end.map_or(Duration::MAX, |end| {
            end.saturating_duration_since(Instant::now())
        });
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(Duration::from_millis(20)));
    }
}

/// A container as scripts see it: a name and the manager; every property reads fresh state.
#[derive(Clone)]
pub struct Container {
    name: ContainerName,
    manager: Rc<Manager>,
}

/// A name from a script, checked once here (the operations take a [`ContainerName`]): any an
/// existing container may have ([`ContainerName::existing`]).
fn container_name(name: &str) -> RhaiResult<ContainerName> {
    ContainerName::existing(name).map_err(to_rhai)
}

/// The name of a container to create, checked as create checks it ([`ContainerName::parse`]).
fn new_name(name: &str) -> RhaiResult<ContainerName> {
    ContainerName::parse(name).map_err(to_rhai)
}

/// What the REPL shows for a container (one status read per call).
pub struct Summary {
    pub name: String,
    pub status: String,
    pub ip: Option<String>,
    pub host_ip: Option<String>,
}

impl Container {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn summary(&self) -> Summary {
        let conf = self.manager.conf(&self.name).ok();
        Summary {
            name: self.name.to_string(),
            status: self
                .manager
                .status(&self.name)
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|_| "gone".into()),
            ip: conf.as_ref().and_then(|c| c.local_ip()),
            host_ip: conf.as_ref().and_then(|c| c.host_ip()),
        }
    }

    fn describe(&self) -> String {
        let status = self
            .manager
            .status(&self.name)
            .map(|s| s.as_str())
            .unwrap_or("gone");
        let ip = self.manager.ip(&self.name).unwrap_or_default();
        format!("{} ({status}, {ip})", self.name)
    }
}

/// An array of strings from a script (argv, lists of names).
pub(crate) fn strings(array: &Array, what: &str) -> RhaiResult<Vec<String>> {
    array
        .iter()
        .map(|v| {
            v.clone()
                .into_immutable_string()
                .map(|s| s.to_string())
                .map_err(|t| to_rhai(Error::Usage(format!("{what} must be strings, found a {t}"))))
        })
        .collect()
}

/// The string value of option `key` of a script's option map.
fn option_text(key: &str, value: &Dynamic) -> RhaiResult<String> {
    value
        .clone()
        .into_immutable_string()
        .map(|s| s.to_string())
        .map_err(|t| {
            to_rhai(Error::Usage(format!(
                "option ‘{key}’ must be a string, found a {t}"
            )))
        })
}

/// A limit given as a string (`"512M"`, `"50%"`) or a whole number.
fn text_or_int(key: &str, value: &Dynamic) -> RhaiResult<String> {
    match value.as_int() {
        Ok(n) => Ok(n.to_string()),
        Err(_) => option_text(key, value),
    }
}

/// The keys of an option map that `update` uses; `create` takes these and [`CREATE_ONLY_KEYS`].
const UPDATE_KEYS: [&str; 10] = [
    "config",
    "config_file",
    "system_path",
    "nixos_path",
    "flake",
    "nix_flags",
    "refresh",
    "memory_max",
    "cpu_quota",
    "tasks_max",
];

/// The keys of the nspawn options, which create and update take (EXTRA_NSPAWN_FLAGS).
const NSPAWN_KEYS: [&str; 6] = [
    "bind",
    "bind_ro",
    "capability",
    "tmpfs",
    "extra_flags",
    "ephemeral",
];

/// The keys only `create` uses: what goes into the conf.
const CREATE_ONLY_KEYS: [&str; 9] = [
    "host_address",
    "local_address",
    "host_address6",
    "local_address6",
    "bridge",
    "network",
    "port",
    "auto_start",
    "ensure_unique_name",
];

/// Keys the command line puts in every verb's option map that create and update never use:
/// `signal` (nixos-container accepts it for every action), `json` (for `ncsh options`), those of
/// `ncsh test`, those of `ncsh apply` and `run`'s `user`, `chdir`, `setenv` and `pty`.
const IGNORED_KEYS: [&str; 13] = [
    "signal",
    "json",
    "junit",
    "keep",
    "interactive",
    "jobs",
    "timeout",
    "start",
    "destroy",
    "user",
    "chdir",
    "setenv",
    "pty",
];

/// A script's option map for `verb`, which takes the keys `keys` (and [`IGNORED_KEYS`]): the one parser of create and
/// update options. A key the verb does not use is an error that lists the ones it does.
fn parse_options(opts: &Map, verb: &str, keys: &[&str]) -> RhaiResult<CreateOptions> {
    let mut out = CreateOptions::default();
    // A string or an array of strings.
    let texts = |key: &str, value: &Dynamic| -> RhaiResult<Vec<String>> {
        if value.is_string() {
            return Ok(vec![option_text(key, value)?]);
        }
        let array = value.clone().into_array().map_err(|t| {
            to_rhai(Error::Usage(format!(
                "option ‘{key}’ must be a string or an array of strings, found a {t}"
            )))
        })?;
        strings(&array, &format!("the values of option ‘{key}’"))
    };
    let (mut config, mut config_file) = (None, None);
    for (key, value) in opts {
        if !IGNORED_KEYS.contains(&key.as_str()) && !keys.contains(&key.as_str()) {
            return Err(to_rhai(Error::Usage(format!(
                "unknown {verb} option ‘{key}’ (known: {})",
                keys.join(", ")
            ))));
        }
        let text = || option_text(key, value);
        let flag = || -> RhaiResult<bool> {
            value.as_bool().map_err(|t| {
                to_rhai(Error::Usage(format!(
                    "option ‘{key}’ must be true or false, found a {t}"
                )))
            })
        };
        match key.as_str() {
            "host_address" => out.host_address = Some(text()?),
            "local_address" => out.local_address = Some(text()?),
            "host_address6" => out.host_address6 = Some(text()?),
            "local_address6" => out.local_address6 = Some(text()?),
            "bind" | "bind_ro" => {
                let read_only = key == "bind_ro";
                let flag = if read_only { "--bind-ro" } else { "--bind" };
                for value in texts(key, value)? {
                    let bind = Bind::parse(flag, &value, read_only).map_err(to_rhai)?;
                    out.nspawn.binds.push(bind);
                }
            }
            "capability" => out.nspawn.capabilities = texts(key, value)?,
            "tmpfs" => out.nspawn.tmpfs = texts(key, value)?,
            "extra_flags" => out.nspawn.extra_flags = Some(text()?),
            "ephemeral" => out.nspawn.ephemeral = flag()?,
            "bridge" => out.bridge = Some(text()?),
            "network" => out.network = Some(text()?),
            "memory_max" => out.limits.memory_max = Some(text_or_int(key, value)?),
            "cpu_quota" => out.limits.cpu_quota = Some(text_or_int(key, value)?),
            "tasks_max" => out.limits.tasks_max = Some(text_or_int(key, value)?),
            "port" => out.port = Some(text()?),
            "config" => config = Some(text()?),
            "config_file" => config_file = Some(PathBuf::from(text()?)),
            "auto_start" => out.auto_start = flag()?,
            "ensure_unique_name" => out.ensure_unique_name = flag()?,
            "system_path" | "nixos_path" | "flake" | "nix_flags" | "refresh" => {
                nix_option(&mut out.nix, key, value)?
            }
            _ => {} // IGNORED_KEYS
        }
    }
    out.config =
        ConfigSource::from_flags(config.as_deref(), config_file.as_deref()).map_err(to_rhai)?;
    Ok(out)
}

/// The options of `c.logs(opts)`: `unit` (a string) and `lines` (a whole number, or its digits
/// as the command line gives them).
fn log_query(opts: &Map) -> RhaiResult<LogQuery> {
    let mut query = LogQuery::default();
    for (key, value) in opts {
        match key.as_str() {
            "unit" => query.unit = Some(option_text(key, value)?),
            "lines" => {
                let n = match value.as_int() {
                    Ok(n) => u64::try_from(n).ok(),
                    Err(_) => value
                        .clone()
                        .into_string()
                        .ok()
                        .and_then(|t| t.trim().parse::<u64>().ok()),
                };
                query.lines = Some(n.ok_or_else(|| {
                    to_rhai(Error::Usage(format!(
                        "option ‘lines’ must be a whole number of lines, 0 or more, found {value}"
                    )))
                })?);
            }
            _ => {
                return Err(to_rhai(Error::Usage(format!(
                    "unknown logs option ‘{key}’ (known: unit, lines)"
                ))));
            }
        }
    }
    Ok(query)
}

fn create_options(opts: &Map) -> RhaiResult<CreateOptions> {
    let keys: Vec<&str> = CREATE_ONLY_KEYS
        .iter()
        .chain(&UPDATE_KEYS)
        .chain(&NSPAWN_KEYS)
        .copied()
        .collect();
    parse_options(opts, "create", &keys)
}

fn update_options(opts: &Map) -> RhaiResult<UpdateOptions> {
    let keys: Vec<&str> = UPDATE_KEYS.iter().chain(&NSPAWN_KEYS).copied().collect();
    let parsed = parse_options(opts, "update", &keys)?;
    let given = NSPAWN_KEYS.iter().any(|k| opts.contains_key(*k));
    Ok(UpdateOptions {
        config: parsed.config,
        nix: parsed.nix,
        nspawn: given.then_some(parsed.nspawn),
        limits: parsed.limits,
    })
}

/// One of the Nix options of a create or update map (`nix_flags` is an array of strings).
fn nix_option(nix: &mut NixOptions, key: &str, value: &Dynamic) -> RhaiResult<()> {
    let text = || option_text(key, value);
    match key {
        "system_path" => nix.system_path = Some(text()?),
        "nixos_path" => nix.nixos_path = Some(text()?),
        "flake" => nix.flake = Some(text()?),
        "refresh" => {
            nix.refresh = value.as_bool().map_err(|t| {
                to_rhai(Error::Usage(format!(
                    "option ‘refresh’ must be true or false, found a {t}"
                )))
            })?
        }
        _ => {
            let array = value.clone().into_array().map_err(|t| {
                to_rhai(Error::Usage(format!(
                    "option ‘nix_flags’ must be an array of strings, found a {t}"
                )))
            })?;
            nix.flags = strings(&array, "nix_flags")?;
        }
    }
    Ok(())
}

/// A script's `run` options: #{user, cwd, env, stdin} (and `pty` where the command is
/// attached: `allow_pty`). `env` is a map of strings, or an array of "NAME=VALUE".
fn run_options(opts: &Map, allow_pty: bool) -> RhaiResult<(RunOptions, Option<String>)> {
    let mut out = RunOptions::default();
    let mut stdin = None;
    let text = |key: &str, v: &Dynamic| -> RhaiResult<String> {
        v.clone().into_string().map_err(|t| {
            to_rhai(Error::Usage(format!(
                "run: {key} must be a string, not {t}"
            )))
        })
    };
    for (key, value) in opts {
        match key.as_str() {
            "user" => out.user = Some(text("user", value)?),
            "cwd" => out.cwd = Some(text("cwd", value)?),
            "stdin" if !allow_pty => stdin = Some(text("stdin", value)?),
            "pty" if allow_pty => {
                out.pty = value.as_bool().map_err(|t| {
                    to_rhai(Error::Usage(format!("run: pty must be a bool, not {t}")))
                })?
            }
            "env" => {
                let words: Vec<String> = if let Some(map) = value.read_lock::<Map>() {
                    map.iter()
                        .map(|(k, v)| Ok(format!("{k}={}", text("an env value", v)?)))
                        .collect::<RhaiResult<_>>()?
                } else if let Some(array) = value.read_lock::<Array>() {
                    strings(&array, "env entries")?
                } else {
                    return Err(to_rhai(Error::Usage(format!(
                        "run: env must be a map or an array of \"NAME=VALUE\", not {}",
                        value.type_name()
                    ))));
                };
                out.env = crate::manager::env_pairs(&words).map_err(to_rhai)?;
            }
            other => {
                let keys = if allow_pty {
                    "user, cwd, env, pty"
                } else {
                    "user, cwd, env, stdin"
                };
                return Err(to_rhai(Error::Usage(format!(
                    "run: no option ‘{other}’ (it takes {keys})"
                ))));
            }
        }
    }
    Ok((out, stdin))
}

fn output_map(out: std::process::Output) -> Map {
    let mut map = Map::new();
    map.insert(
        "status".into(),
        (crate::host::enter::exit_code(out.status) as i64).into(),
    );
    map.insert(
        "stdout".into(),
        String::from_utf8_lossy(&out.stdout).into_owned().into(),
    );
    map.insert(
        "stderr".into(),
        String::from_utf8_lossy(&out.stderr).into_owned().into(),
    );
    map
}

/// A `Container` for each of `names`; a conf whose file name is not a container name is listed
/// by `list`, but has no Container.
fn containers_named(manager: &Rc<Manager>, names: Vec<String>) -> Array {
    names
        .iter()
        .filter_map(|name| ContainerName::existing(name).ok())
        .map(|name| {
            Dynamic::from(Container {
                name,
                manager: manager.clone(),
            })
        })
        .collect()
}

/// The test driver's vocabulary (`test(…)`, the `Test` type: `testdriver`), which scripts,
/// the REPL and the `test` verb get; the other builtin verbs do without (registering it was a
/// twelfth of a read-only verb's instructions).
pub fn register_tests(engine: &mut Engine, manager: Rc<Manager>) {
    testdriver::register(engine, manager);
}

pub fn register(engine: &mut Engine, manager: Rc<Manager>) {
    engine.build_type::<Container>();
    net::register(engine);

    let m = manager.clone();
    function(
        "create",
        api_doc!(
            "create(name: string) -> Container",
            "Create a container (needs root). It is not started."
        ),
    )
    .register_into_engine(engine, move |name: &str| -> RhaiResult<Container> {
        let created = m
            .create(&new_name(name)?, &CreateOptions::default())
            .map_err(to_rhai)?;
        Ok(Container {
            name: created.name,
            manager: m.clone(),
        })
    });
    let m = manager.clone();
    function(
        "create",
        api_doc!(
            "create(name: string, opts: map) -> Container",
            "Create with options: host_address, local_address, host_address6, local_address6,",
            "bridge, network, port, auto_start, memory_max, cpu_quota, tasks_max,",
            "ensure_unique_name, config, config_file, bind and bind_ro",
            "(\"HOST[:CONTAINER]\" or an array of them), capability, tmpfs (arrays), extra_flags",
            "(nspawn options), ephemeral; on a Nix host also system_path, nixos_path, flake,",
            "nix_flags, refresh."
        ),
    )
    .register_into_engine(
        engine,
        move |name: &str, opts: Map| -> RhaiResult<Container> {
            let opts = create_options(&opts)?;
            let created = m.create(&new_name(name)?, &opts).map_err(to_rhai)?;
            Ok(Container {
                name: created.name,
                manager: m.clone(),
            })
        },
    );
    let m = manager.clone();
    function(
        "container",
        api_doc!(
            "container(name: string) -> Container",
            "An existing container; an error if there is none by that name."
        ),
    )
    .register_into_engine(engine, move |name: &str| -> RhaiResult<Container> {
        let name = container_name(name)?;
        m.require_exists(&name).map_err(to_rhai)?;
        Ok(Container {
            name,
            manager: m.clone(),
        })
    });
    let m = manager.clone();
    function(
        "containers",
        api_doc!(
            "containers() -> array",
            "Every container (shown as a table)."
        ),
    )
    .register_into_engine(engine, move || -> RhaiResult<Array> {
        Ok(containers_named(&m, m.list().map_err(to_rhai)?))
    });
    let m = manager.clone();
    function(
        "auto_start_containers",
        api_doc!(
            "auto_start_containers() -> array",
            "The containers whose conf has AUTO_START=1 (what `start --all-auto` starts)."
        ),
    )
    .register_into_engine(engine, move || -> RhaiResult<Array> {
        Ok(containers_named(&m, m.auto_start_names().map_err(to_rhai)?))
    });
    let m = manager.clone();
    function(
        "exists",
        api_doc!(
            "exists(name: string) -> bool",
            "Whether a container by that name exists."
        ),
    )
    .register_into_engine(engine, move |name: &str| {
        ContainerName::existing(name).is_ok_and(|name| m.exists(&name))
    });
    // Also for what is left of a container without its conf (a root, runtime state).
    let m = manager.clone();
    function(
        "destroy",
        api_doc!(
            "destroy(name: string)",
            "Destroy a stopped or running container: its conf, root and runtime state; also what a create or destroy that did not finish left."
        ),
    )
    .register_into_engine(engine, move |name: &str| {
        m.destroy(&container_name(name)?).map_err(to_rhai)
    });
    for with_opts in [false, true] {
        let m = manager.clone();
        let apply = move |path: &str, opts: Map| -> RhaiResult<Array> {
            let mut options = ApplyOptions::default();
            for (key, value) in &opts {
                let on = value.as_bool().map_err(|t| {
                    to_rhai(Error::Usage(format!(
                        "option ‘{key}’ must be true or false, found a {t}"
                    )))
                })?;
                match key.as_str() {
                    "start" => options.start = on,
                    "destroy" => options.destroy = on,
                    _ => {
                        return Err(to_rhai(Error::Usage(format!(
                            "unknown apply option ‘{key}’ (known: start, destroy)"
                        ))));
                    }
                }
            }
            let applied = m
                .apply(std::path::Path::new(path), &options)
                .map_err(to_rhai)?;
            Ok(applied
                .into_iter()
                .map(|a| {
                    let mut map = Map::new();
                    map.insert("name".into(), a.name.into());
                    map.insert("outcome".into(), a.outcome.into());
                    map.insert("started".into(), a.started.into());
                    Dynamic::from_map(map)
                })
                .collect())
        };
        if with_opts {
            function(
                "apply",
                api_doc!(
                    "apply(path: string, opts: map) -> array",
                    "The same with opts: start (start every container, not only autoStart ones),",
                    "destroy (destroy the containers the file declares)."
                ),
            )
            .register_into_engine(engine, apply);
        } else {
            function(
                "apply",
                api_doc!(
                    "apply(path: string) -> array",
                    "Make the containers a NixOS host module declares (containers.<name>) so:",
                    "create, update, restart, start those with autoStart. One #{name, outcome,",
                    "started} per container; outcome is created, updated, restarted or unchanged."
                ),
            )
            .register_into_engine(engine, move |path: &str| apply(path, Map::new()));
        }
    }
    let m = manager.clone();
    function(
        "driver",
        api_doc!("driver() -> string", "The host driver in use."),
    )
    .register_into_engine(engine, move || m.driver_name());

    function(
        "name_arg",
        api_doc!(
            "name_arg(args: array) -> string",
            "A verb's container-name argument, checked as nixos-container checks it."
        ),
    )
    .register_into_engine(engine, |args: Array| -> RhaiResult<String> {
        let name = args
            .first()
            .and_then(|v| v.clone().into_immutable_string().ok());
        match name {
            Some(n) if !n.is_empty() && n.as_str() != "0" => {
                // Any name an existing conf may have; create checks its own further.
                ContainerName::existing(&n).map_err(to_rhai)?;
                Ok(n.to_string())
            }
            _ => Err(to_rhai(Error::NoName)),
        }
    });
    let m = manager;
    function(
        "terminal_output",
        api_doc!(
            "terminal_output() -> bool",
            "Is stdout a terminal a person reads, for output that differs from the piped one",
            "(a table)? Invoked as nixos-container, never: output stays the original's."
        ),
    )
    .register_into_engine(engine, move || {
        m.personality == crate::manager::Personality::Ncsh
            && std::io::IsTerminal::is_terminal(&std::io::stdout())
    });
    function(
        "unix_time",
        api_doc!(
            "unix_time() -> int",
            "Now, in seconds since the Unix epoch (as c.info().since)."
        ),
    )
    .register_into_engine(engine, || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    });
    function(
        "eprint",
        api_doc!("eprint(text: string)", "Print to stderr."),
    )
    .register_into_engine(engine, |s: &str| eprintln!("{s}"));
    // Rhai's s.trim() trims s in place and returns (): `let t = s.trim();` is ().
    function(
        "trimmed",
        api_doc!(
            "trimmed(s: string) -> string",
            "s.trimmed(): a copy of s without leading and trailing whitespace (s.trim() trims s itself and returns ())."
        ),
    )
    .register_into_engine(engine, |s: &str| s.trim().to_string());
    const EXIT: &str = api_doc!(
        "exit(code: int)",
        "End the script, or the REPL, with that exit status (exit() is 0)."
    );
    function("exit", EXIT).register_into_engine(engine, |code: i64| -> RhaiResult<()> {
        Err(exit_request(exit_status(code).map_err(to_rhai)?))
    });
    // Rhai's own exit(value) would end the script with status 0 whatever the value.
    function("exit", EXIT).register_into_engine(engine, |value: Dynamic| -> RhaiResult<()> {
        Err(to_rhai(Error::Usage(format!(
            "exit takes an integer exit status (0 to 255), not {value:?}"
        ))))
    });
    // The same description as exit(code), so that listings show them as one.
    function(
        "exit",
        api_doc!(
            "exit()",
            "End the script, or the REPL, with that exit status (exit() is 0)."
        ),
    )
    .register_into_engine(engine, || -> RhaiResult<()> { Err(exit_request(0)) });
    const SLEEP: &str = api_doc!("sleep(seconds: int|float)", "Wait; Ctrl-C interrupts it.");
    function("sleep", SLEEP).register_into_engine(engine, |seconds: f64| {
        sleep_for(Duration::try_from_secs_f64(seconds.max(0.0)).unwrap_or(Duration::MAX));
    });
    function("sleep", SLEEP).register_into_engine(engine, |seconds: i64| {
        sleep_for(Duration::from_secs(seconds.max(0) as u64));
    });
}

/// The process exit status for `exit(code)`: 0 to 255 as they are, -1 to -255 counted back from
/// 256 as a shell does (`exit(-1)` is 255); anything else is refused rather than wrapped, so that
/// no failure code can turn into success.
fn exit_status(code: i64) -> Result<i64, Error> {
    match code {
        0..=255 => Ok(code),
        -255..=-1 => Ok(256 + code),
        _ => Err(Error::Usage(format!(
            "exit({code}): an exit status is 0 to 255 (or -1 to -255, counted back from 256)"
        ))),
    }
}

impl CustomType for Container {
    fn build(mut builder: TypeBuilder<Self>) {
        builder
            .with_name("Container")
            .with_comments(&[api_doc!(
                "c = container(\"NAME\")",
                "A container: its name and the manager; every property reads fresh state."
            )])
            .with_get("name", |c: &mut Container| c.name.to_string())
            .and_comments(&[api_doc!("c.name: string", "The container's name.")])
            .with_get("ip", |c: &mut Container| -> RhaiResult<String> {
                c.manager.ip(&c.name).map_err(to_rhai)
            })
            .and_comments(&[api_doc!(
                "c.ip: string",
                "Its address (LOCAL_ADDRESS without prefix); an error if it has none."
            )])
            .with_get("host_ip", |c: &mut Container| -> RhaiResult<Dynamic> {
                Ok(c.manager
                    .host_ip(&c.name)
                    .map_err(to_rhai)?
                    .map_or(Dynamic::UNIT, Dynamic::from))
            })
            .and_comments(&[api_doc!(
                "c.host_ip: string or ()",
                "The host side's address, if any."
            )])
            .with_get("status", |c: &mut Container| -> RhaiResult<String> {
                Ok(c.manager
                    .status(&c.name)
                    .map_err(to_rhai)?
                    .as_str()
                    .to_string())
            })
            .and_comments(&[api_doc!(
                "c.status: string",
                "\"up\" or \"down\", read fresh each time."
            )])
            // () when the container is not running; other failures (a bus error) are errors.
            .with_get("leader", |c: &mut Container| -> RhaiResult<Dynamic> {
                match c.manager.leader(&c.name) {
                    Ok(pid) => Ok(Dynamic::from(i64::from(pid))),
                    Err(Error::NotRunning(_)) => Ok(Dynamic::UNIT),
                    Err(e) => Err(to_rhai(e)),
                }
            })
            .and_comments(&[api_doc!(
                "c.leader: int or ()",
                "The PID of its init process, when running."
            )])
            .with_get("usage", |c: &mut Container| -> RhaiResult<Dynamic> {
                let Some(usage) = c.manager.usage(&c.name).map_err(to_rhai)? else {
                    return Ok(Dynamic::UNIT);
                };
                let number = |v: Option<u64>| {
                    v.and_then(|n| i64::try_from(n).ok())
                        .map_or(Dynamic::UNIT, Dynamic::from)
                };
                let mut map = Map::new();
                map.insert("memory".into(), number(usage.memory_bytes));
                map.insert("cpu_usec".into(), number(usage.cpu_usec));
                map.insert("tasks".into(), number(usage.tasks));
                Ok(map.into())
            })
            .and_comments(&[api_doc!(
                "c.usage: map or ()",
                "What it uses while running: #{memory (bytes), cpu_usec (CPU time), tasks}."
            )])
            .with_get("limits", |c: &mut Container| -> RhaiResult<Map> {
                let limits = c.manager.limits(&c.name).map_err(to_rhai)?;
                let number = |v: Option<u64>| {
                    v.and_then(|n| i64::try_from(n).ok())
                        .map_or(Dynamic::UNIT, Dynamic::from)
                };
                let mut map = Map::new();
                map.insert("memory_max".into(), number(limits.memory_max));
                map.insert("cpu_quota".into(), number(limits.cpu_quota));
                map.insert("tasks_max".into(), number(limits.tasks_max));
                Ok(map)
            })
            .and_comments(&[api_doc!(
                "c.limits: map",
                "Its limits: #{memory_max (bytes), cpu_quota (percent of one CPU), tasks_max}, () if unset."
            )])
            .with_get("host_key", |c: &mut Container| -> RhaiResult<Dynamic> {
                Ok(c.manager
                    .host_key(&c.name)
                    .map_err(to_rhai)?
                    .map_or(Dynamic::UNIT, Dynamic::from))
            })
            .and_comments(&[api_doc!(
                "c.host_key: string or ()",
                "Its SSH host public key, if generated."
            )])
            .with_fn("info", |c: &mut Container| -> RhaiResult<Dynamic> {
                rhai::serde::to_dynamic(c.manager.info(&c.name).map_err(to_rhai)?)
            })
            .and_comments(&[api_doc!(
                "c.info() -> map",
                "Everything known about it at once: #{name, state, ipv4, ipv6, host_ipv4, host_ipv6,",
                "leader, since, driver, builder, generation, auto_start, bridge, ports, bind_mounts}",
                "(the README's schema; () where unknown)."
            )])
            .with_fn("update", |c: &mut Container| {
                c.manager
                    .update(&c.name, &UpdateOptions::default())
                    .map_err(to_rhai)
            })
            .and_comments(&[api_doc!(
                "c.update()",
                "Rebuild from its configuration.nix; a running container switches live."
            )])
            .with_fn("update", |c: &mut Container, opts: Map| -> RhaiResult<()> {
                let opts = update_options(&opts)?;
                c.manager.update(&c.name, &opts).map_err(to_rhai)
            })
            .and_comments(&[api_doc!(
                "c.update(opts: map)",
                "The same from config or config_file (and, on a Nix host, system_path, nixos_path,",
                "flake, nix_flags, refresh); bind, bind_ro, capability, tmpfs, extra_flags and",
                "ephemeral replace its nspawn options (EXTRA_NSPAWN_FLAGS) for its next start."
            )])
            .with_get("options", |c: &mut Container| -> RhaiResult<Dynamic> {
                let options = c.manager.options(&c.name).map_err(to_rhai)?;
                rhai::serde::to_dynamic(options)
            })
            .and_comments(&[api_doc!(
                "c.options: map",
                "The NixOS options of its active generation, defaults included."
            )])
            .with_fn("start", |c: &mut Container| {
                c.manager.start(&c.name).map_err(to_rhai)
            })
            .and_comments(&[api_doc!(
                "c.start()",
                "Start it; returns once it has booted. Ctrl-C interrupts the wait."
            )])
            .with_fn("stop", |c: &mut Container| {
                c.manager.stop(&c.name).map_err(to_rhai)
            })
            .and_comments(&[api_doc!("c.stop()", "Stop it cleanly.")])
            .with_fn("restart", |c: &mut Container| {
                c.manager.restart(&c.name).map_err(to_rhai)
            })
            .and_comments(&[api_doc!("c.restart()", "Stop, then start.")])
            .with_fn("terminate", |c: &mut Container| {
                c.manager.terminate(&c.name).map_err(to_rhai)
            })
            .and_comments(&[api_doc!("c.terminate()", "Kill it at once.")])
            .with_fn("destroy", |c: &mut Container| {
                c.manager.destroy(&c.name).map_err(to_rhai)
            })
            .and_comments(&[api_doc!(
                "c.destroy()",
                "Kill it if running and remove everything it owns."
            )])
            .with_fn(
                "copy_to",
                |c: &mut Container, host: &str, inside: &str| -> RhaiResult<()> {
                    c.manager
                        .copy_to(&c.name, Path::new(host), Path::new(inside))
                        .map_err(to_rhai)
                },
            )
            .and_comments(&[api_doc!(
                "c.copy_to(host_path: string, container_path: string)",
                "Copy a host file, directory or link into it (running or not): modes and owners",
                "kept, a link copied as a link."
            )])
            .with_fn(
                "copy_from",
                |c: &mut Container, inside: &str, host: &str| -> RhaiResult<()> {
                    c.manager
                        .copy_from(&c.name, Path::new(inside), Path::new(host))
                        .map_err(to_rhai)
                },
            )
            .and_comments(&[api_doc!(
                "c.copy_from(container_path: string, host_path: string)",
                "Copy a file, directory or link of it to the host: modes and owners kept, a link",
                "copied as the link it is (never followed out of its root)."
            )])
            .with_fn("run", |c: &mut Container, argv: Array| -> RhaiResult<Map> {
                let argv = strings(&argv, "command arguments")?;
                Ok(output_map(
                    c.manager
                        .run_captured(&c.name, &argv, None)
                        .map_err(to_rhai)?,
                ))
            })
            .and_comments(&[api_doc!(
                "c.run(argv: array) -> map",
                "Run a command inside; returns #{status, stdout, stderr}."
            )])
            .with_fn(
                "run",
                |c: &mut Container, argv: Array, stdin: ImmutableString| -> RhaiResult<Map> {
                    let argv = strings(&argv, "command arguments")?;
                    Ok(output_map(
                        c.manager
                            .run_captured(&c.name, &argv, Some(stdin.as_bytes()))
                            .map_err(to_rhai)?,
                    ))
                },
            )
            .and_comments(&[api_doc!(
                "c.run(argv: array, stdin: string) -> map",
                "The same, feeding `stdin` to the command."
            )])
            .with_fn(
                "run",
                |c: &mut Container, argv: Array, opts: Map| -> RhaiResult<Map> {
                    let argv = strings(&argv, "command arguments")?;
                    let (run, stdin) = run_options(&opts, false)?;
                    Ok(output_map(
                        c.manager
                            .run_captured_with(
                                &c.name,
                                &argv,
                                stdin.as_deref().map(str::as_bytes),
                                &run,
                            )
                            .map_err(to_rhai)?,
                    ))
                },
            )
            .and_comments(&[api_doc!(
                "c.run(argv: array, opts: map) -> map",
                "The same with #{user, cwd, env, stdin}: user a name or UID of its /etc/passwd,",
                "cwd the directory (else the user's home), env a map (or \"NAME=VALUE\" strings)."
            )])
            .with_fn(
                "exec",
                |c: &mut Container, argv: Array, opts: Map| -> RhaiResult<()> {
                    let argv = strings(&argv, "command arguments")?;
                    let (run, _) = run_options(&opts, true)?;
                    let code = c.manager.run_with(&c.name, &argv, &run).map_err(to_rhai)?;
                    Err(exit_request(i64::from(code)))
                },
            )
            .and_comments(&[api_doc!(
                "c.exec(argv: array, opts: map)",
                "c.exec with #{user, cwd, env, pty}: pty true runs it on a terminal allocated inside."
            )])
            .with_fn("exec", |c: &mut Container, argv: Array| -> RhaiResult<()> {
                // Like a shell's exec: the command's status ends the script.
                let argv = strings(&argv, "command arguments")?;
                let code = c.manager.exec(&c.name, &argv).map_err(to_rhai)?;
                Err(exit_request(i64::from(code)))
            })
            .and_comments(&[api_doc!(
                "c.exec(argv: array)",
                "Run a command inside with this terminal, then end the script with its exit status."
            )])
            .with_fn(
                "attach",
                |c: &mut Container, argv: Array| -> RhaiResult<i64> {
                    let argv = strings(&argv, "command arguments")?;
                    Ok(c.manager.run_attached(&c.name, &argv).map_err(to_rhai)? as i64)
                },
            )
            .and_comments(&[api_doc!(
                "c.attach(argv: array) -> int",
                "Run a command inside on this terminal; returns its exit status."
            )])
            .with_fn("logs", |c: &mut Container| -> RhaiResult<String> {
                c.manager
                    .logs(&c.name, &LogQuery::default())
                    .map_err(to_rhai)
            })
            .and_comments(&[api_doc!(
                "c.logs() -> string",
                "Its journal (running or stopped), as journalctl prints it."
            )])
            .with_fn(
                "logs",
                |c: &mut Container, opts: Map| -> RhaiResult<String> {
                    let query = log_query(&opts)?;
                    c.manager.logs(&c.name, &query).map_err(to_rhai)
                },
            )
            .and_comments(&[api_doc!(
                "c.logs(opts: map) -> string",
                "The same with #{unit: \"sshd.service\", lines: 20}: one unit's, the last lines."
            )])
            .with_fn(
                "follow_logs",
                |c: &mut Container, opts: Map| -> RhaiResult<i64> {
                    let query = log_query(&opts)?;
                    Ok(i64::from(
                        c.manager.follow_logs(&c.name, &query).map_err(to_rhai)?,
                    ))
                },
            )
            .and_comments(&[api_doc!(
                "c.follow_logs(opts: map) -> int",
                "Print its journal and follow it (journalctl -f) until interrupted; opts as logs."
            )])
            .with_fn("root_login", |c: &mut Container| -> RhaiResult<i64> {
                Ok(c.manager.root_login(&c.name).map_err(to_rhai)? as i64)
            })
            .and_comments(&[api_doc!(
                "c.root_login() -> int",
                "A root shell inside (su -l root)."
            )])
            .with_fn("login", |c: &mut Container| -> RhaiResult<i64> {
                Ok(c.manager.login(&c.name).map_err(to_rhai)? as i64)
            })
            .and_comments(&[api_doc!(
                "c.login() -> int",
                "A login prompt inside (user name and password), on this terminal."
            )])
            .on_print(|c| c.describe())
            .on_debug(|c| format!("Container({})", c.describe()));
    }
}
