//! Multi-container tests in the vocabulary of NixOS's test driver (`ncsh test`): `test(#{nodes:
//! …})` makes the nodes (containers with throw-away names on a bridge of their own, each
//! resolving the others by node name), `subtest(name, || …)` groups steps, and `Container`
//! gains `succeed`, `fail`, `execute`, the `wait_*` family, `systemctl`, `get_unit_info`, the
//! copies, `shutdown`, `crash`, `block` and `unblock`.
//!
//! What a run made is recorded per thread ([`begin`], [`teardown`]): the front end removes it
//! whatever way the script ended, and reads the subtests' results ([`results`]).

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use rhai::{
    Array, CustomType, Dynamic, Engine, EvalAltResult, FnPtr, Map, NativeCallContext, Position,
    TypeBuilder,
};

use super::docs::{api_doc, function};
use super::error::{describe, to_rhai};
use super::{Container, INTERRUPTED, RhaiResult, sleep_for};
use crate::container::{ConfigSource, ContainerName, CreateOptions};
use crate::error::Error;
use crate::manager::Manager;

/// NixOS's default for every `wait_*`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(900);

/// The environment variable listing the networks tests may take (`10.235.7.0/24,…`).
pub const NETWORKS_ENV: &str = "NCSH_TEST_NETWORKS";

/// How one test script runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The script, as messages name it.
    pub file: String,
    /// Where relative module paths of node configurations are looked up (the script's directory).
    pub dir: PathBuf,
    /// The timeout of a `wait_*` that names none (`--timeout`).
    pub timeout: Duration,
    /// The networks a test may take for its bridge, the first free one is used.
    pub networks: Vec<Ipv4Net>,
    /// Printed before each line of the run's report (`-j`: the file's name), or empty.
    pub label: String,
    /// `--interactive`: only the set-up runs; subtests are skipped.
    pub skip_subtests: bool,
}

impl Settings {
    /// The settings for `file`: the networks from [`NETWORKS_ENV`], else 10.233.1-254.0/24.
    pub fn new(file: &Path, timeout: Duration) -> crate::error::Result<Settings> {
        Ok(Settings {
            file: file.display().to_string(),
            dir: file
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf(),
            timeout,
            networks: networks_from_env()?,
            label: String::new(),
            skip_subtests: false,
        })
    }
}

fn networks_from_env() -> crate::error::Result<Vec<Ipv4Net>> {
    match std::env::var(NETWORKS_ENV) {
        Ok(list) if !list.trim().is_empty() => list
            .split(',')
            .map(|item| {
                item.trim()
                    .parse::<Ipv4Net>()
                    .map(|n| n.trunc())
                    .map_err(|_| {
                        Error::Usage(format!(
                            "{NETWORKS_ENV}: ‘{}’ is not an IPv4 network such as 10.235.7.0/24",
                            item.trim()
                        ))
                    })
            })
            .collect(),
        _ => Ok((1..=254u8)
            .filter_map(|n| Ipv4Net::new(std::net::Ipv4Addr::new(10, 233, n, 0), 24).ok())
            .collect()),
    }
}

/// One subtest's outcome.
#[derive(Debug, Clone)]
pub struct SubtestResult {
    pub name: String,
    pub seconds: f64,
    /// What failed (FILE:LINE:COLUMN, the subtest, the node, the command and its output).
    pub failure: Option<String>,
}

/// The nodes and the network of one `test(…)`.
struct TestState {
    manager: Rc<Manager>,
    bridge: String,
    network: Option<Ipv4Net>,
    /// A host directory of the test's own (`t.scratch`), removed with its nodes.
    scratch: PathBuf,
    /// (node name, container name), in node-name order.
    nodes: RefCell<Vec<(String, ContainerName)>>,
}

#[derive(Default)]
struct RunState {
    settings: Option<Settings>,
    subtests: Vec<String>,
    results: Vec<SubtestResult>,
    tests: Vec<Rc<TestState>>,
}

thread_local! {
    static RUN: RefCell<RunState> = RefCell::new(RunState::default());
}

/// Start a run in this thread with `settings` (what an earlier run left must be torn down).
pub fn begin(settings: Settings) {
    RUN.with(|r| {
        *r.borrow_mut() = RunState {
            settings: Some(settings),
            ..RunState::default()
        }
    });
}

fn settings() -> Settings {
    RUN.with(|r| r.borrow().settings.clone())
        .unwrap_or_else(|| Settings {
            file: "<script>".into(),
            dir: PathBuf::from("."),
            timeout: DEFAULT_TIMEOUT,
            networks: networks_from_env().unwrap_or_default(),
            label: String::new(),
            skip_subtests: false,
        })
}

/// The subtests run so far in this thread.
pub fn results() -> Vec<SubtestResult> {
    RUN.with(|r| r.borrow().results.clone())
}

/// Did this thread's run make any nodes?
pub fn made_nodes() -> bool {
    RUN.with(|r| {
        r.borrow()
            .tests
            .iter()
            .any(|t| !t.nodes.borrow().is_empty())
    })
}

/// What a kept test left, for the message that says how to enter it.
pub struct Kept {
    pub bridge: String,
    pub scratch: PathBuf,
    /// (node name, container name).
    pub nodes: Vec<(String, String)>,
}

/// What this thread's run made so far (for a removal from another thread, see `testrun`).
pub fn inventory() -> Vec<Kept> {
    RUN.with(|r| {
        r.borrow()
            .tests
            .iter()
            .map(|test| Kept {
                bridge: test.bridge.clone(),
                scratch: test.scratch.clone(),
                nodes: test
                    .nodes
                    .borrow()
                    .iter()
                    .map(|(n, c)| (n.clone(), c.to_string()))
                    .collect(),
            })
            .collect()
    })
}

/// Remove every node and bridge this thread's run made (`keep`: leave them, and say what was
/// left). The errors of removals that failed are returned; the rest is removed anyway.
pub fn teardown(keep: bool) -> (Vec<Kept>, Vec<String>) {
    let tests = RUN.with(|r| std::mem::take(&mut r.borrow_mut().tests));
    let (mut kept, mut errors) = (Vec::new(), Vec::new());
    for test in tests {
        let made = Kept {
            bridge: test.bridge.clone(),
            scratch: test.scratch.clone(),
            nodes: test
                .nodes
                .borrow()
                .iter()
                .map(|(n, c)| (n.clone(), c.to_string()))
                .collect(),
        };
        if keep {
            kept.push(made);
        } else {
            errors.extend(remove_made(&test.manager, &made));
        }
    }
    (kept, errors)
}

/// Remove what one test made: its nodes (killed, each in a thread of its own), its bridge and
/// its scratch directory; the errors, each naming what it could not remove. The bridge and the
/// nodes' ports (`vb-NAME`, by the kernel names the bridge lists) are deleted while the nodes
/// die, all at once: the kernel takes about 45 ms to delete a bridge, and a port left to go with
/// its node's network namespace went 20-40 ms after the node.
pub fn remove_made(manager: &Manager, made: &Kept) -> Vec<String> {
    let mut errors = Vec::new();
    let mut names = Vec::new();
    for (node, name) in &made.nodes {
        match ContainerName::existing(name) {
            Ok(name) => names.push(name),
            Err(e) => errors.push(format!("removing node {node} ({name}): {e}")),
        }
    }
    crate::host::phase("test: teardown");
    let bridge = made.bridge.as_str();
    let mut links = vec![made.bridge.clone()];
    links.extend(crate::host::net::bridge_ports(bridge));
    let (failures, links_removed) = std::thread::scope(|scope| {
        let removing = scope.spawn(|| crate::host::net::delete_links_at_once(&links));
        let failures = manager.destroy_all(&names);
        let removed = removing.join().unwrap_or_else(|_| {
            Err(Error::Unsupported(
                "the thread removing the test's bridge panicked".into(),
            ))
        });
        (failures, removed)
    });
    crate::host::phase("test: nodes and bridge removed");
    for (name, e) in failures {
        let node = made
            .nodes
            .iter()
            .find(|(_, c)| *c == name.as_str())
            .map_or("?", |(n, _)| n.as_str());
        errors.push(format!("removing node {node} ({name}): {e}"));
    }
    if let Err(e) = links_removed {
        errors.push(format!("removing bridge {bridge} and its ports: {e}"));
    }
    if let Err(e) = crate::files::remove_path(&made.scratch) {
        errors.push(format!("removing {}: {e}", made.scratch.display()));
    }
    errors
}

/// The node name of container `name`, if a test of this run made it.
fn node_name(name: &str) -> String {
    RUN.with(|r| {
        r.borrow()
            .tests
            .iter()
            .find_map(|t| {
                t.nodes
                    .borrow()
                    .iter()
                    .find(|(_, c)| c.as_str() == name)
                    .map(|(n, _)| n.clone())
            })
            .unwrap_or_else(|| name.to_string())
    })
}

/// A line of the run's report (with the run's label under `-j`).
pub fn report(line: &str) {
    let label = RUN.with(|r| {
        r.borrow()
            .settings
            .as_ref()
            .map(|s| s.label.clone())
            .unwrap_or_default()
    });
    for l in line.lines() {
        println!("{label}{l}");
    }
}

/// A test: its nodes by name, and what starts them.
#[derive(Clone)]
pub struct Test {
    state: Rc<TestState>,
    nodes: Map,
}

impl Test {
    /// The nodes by name, each a `Container`.
    pub fn node_map(&self) -> Map {
        self.nodes.clone()
    }

    fn containers(&self) -> Vec<ContainerName> {
        self.state
            .nodes
            .borrow()
            .iter()
            .map(|(_, c)| c.clone())
            .collect()
    }
}

impl CustomType for Test {
    fn build(mut builder: TypeBuilder<Self>) {
        builder
            .with_name("Test")
            .with_get("nodes", |t: &mut Test| t.nodes.clone())
            .and_comments(&[api_doc!(
                "t.nodes: map",
                "The test's nodes by name, each a Container (t.nodes.server)."
            )])
            .with_get("network", |t: &mut Test| -> Dynamic {
                t.state
                    .network
                    .map_or(Dynamic::UNIT, |n| n.to_string().into())
            })
            .and_comments(&[api_doc!(
                "t.network: string",
                "The test's own network (its bridge has the first address)."
            )])
            .with_get("scratch", |t: &mut Test| {
                t.state.scratch.display().to_string()
            })
            .and_comments(&[api_doc!(
                "t.scratch: string",
                "A host directory of the test's own, for copy_to_host and copy_from_host; removed",
                "with the nodes."
            )])
            .with_get("bridge", |t: &mut Test| t.state.bridge.clone())
            .and_comments(&[api_doc!(
                "t.bridge: string",
                "The name of the test's bridge on the host."
            )])
            .with_fn("start_all", |t: &mut Test| -> RhaiResult<()> {
                crate::host::phase("test: start_all");
                let started = t.state.manager.start_all(&t.containers());
                crate::host::phase("test: start_all done");
                started.map_err(to_rhai)
            })
            .and_comments(&[api_doc!(
                "t.start_all()",
                "Boot every node at once; returns when all have booted."
            )])
            .on_print(|t| {
                let nodes: Vec<String> = t.nodes.keys().map(|k| k.to_string()).collect();
                format!("test({}) on {}", nodes.join(", "), t.state.bridge)
            });
    }
}

/// Names for one test's bridge and nodes: unique on this host while this process lives.
fn unique_tag() -> String {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:x}x{n:x}", std::process::id())
}

/// A node name: a host name label (letters, digits, `-`, starting with a letter), short
/// enough for the container name made of it.
fn check_node_name(name: &str) -> Result<(), Error> {
    let ok = name.len() <= 40
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "node name ‘{name}’: use lower-case letters, digits and ‘-’, starting with a letter (at most 40)"
        )))
    }
}

/// A Nix string literal of `text`.
fn nix_string(text: &str) -> String {
    let mut out = String::from("\"");
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '$' if chars.peek() == Some(&'{') => out.push_str("\\$"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// What a node's CONFIG is: a `--config` text, a module path, or a map as `create` takes it
/// (`config` or `config_file`), as a module expression to import.
fn user_module(node: &str, config: &Dynamic, dir: &Path) -> Result<Option<String>, Error> {
    let bad = || {
        Error::Usage(format!(
            "node {node}: a configuration is a --config text, a module path (a path string ending in .nix) or a map with config or config_file"
        ))
    };
    let path_module = |path: &str| -> Result<String, Error> {
        let path = Path::new(path);
        let full = if path.is_absolute() {
            path.to_path_buf()
        } else {
            dir.join(path)
        };
        match ConfigSource::from_flags(None, Some(&full))? {
            Some(ConfigSource::File(abs)) => {
                Ok(format!("(/. + {})", nix_string(&abs.display().to_string())))
            }
            _ => Err(bad()),
        }
    };
    let text_module = |text: &str| format!("({{ config, lib, pkgs, ... }}: {{\n{text}\n}})");
    if config.is_unit() {
        return Ok(None);
    }
    if let Ok(text) = config.clone().into_immutable_string() {
        let trimmed = text.trim();
        let looks_like_path = trimmed.ends_with(".nix")
            && !trimmed.contains(char::is_whitespace)
            && !trimmed.contains('=');
        return if looks_like_path {
            path_module(trimmed).map(Some)
        } else {
            Ok(Some(text_module(&text)))
        };
    }
    let Some(map) = config.clone().try_cast::<Map>() else {
        return Err(bad());
    };
    let mut module = None;
    for (key, value) in &map {
        let text = value.clone().into_immutable_string().map_err(|t| {
            Error::Usage(format!(
                "node {node}: option ‘{key}’ must be a string, found a {t}"
            ))
        })?;
        module = Some(match key.as_str() {
            "config" => text_module(&text),
            "config_file" => path_module(&text)?,
            other => {
                return Err(Error::Usage(format!(
                    "node {node}: unknown option ‘{other}’ (a node takes config or config_file; its addresses and bridge are the test's)"
                )));
            }
        });
    }
    if map.len() > 1 {
        return Err(Error::Usage(format!(
            "node {node}: config and config_file are mutually incompatible; give one"
        )));
    }
    Ok(module)
}

/// The configuration of node `node`: its own module imported, its host name, and every node
/// by name in `networking.hosts`.
fn node_config(node: &str, module: Option<&str>, hosts: &[(String, String)]) -> String {
    let mut text = String::new();
    if let Some(module) = module {
        text.push_str(&format!("imports = [ {module} ];\n  "));
    }
    text.push_str(&format!(
        "networking.hostName = lib.mkOverride 900 {};\n  networking.hosts = {{",
        nix_string(node)
    ));
    for (name, address) in hosts {
        text.push_str(&format!(
            " {} = [ {} ];",
            nix_string(address),
            nix_string(name)
        ));
    }
    text.push_str(" };");
    text
}

/// Serialises the choice of a network between threads of this process (`-j`); other processes
/// are kept out by the first node's create, which refuses addresses in use.
static NETWORK_CHOICE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn new_test(manager: &Rc<Manager>, spec: &Map) -> Result<Test, Error> {
    let mut configs = None;
    for (key, value) in spec {
        match key.as_str() {
            "nodes" => {
                configs = Some(value.clone().try_cast::<Map>().ok_or_else(|| {
                    Error::Usage("test: ‘nodes’ must be a map of node name to configuration".into())
                })?)
            }
            other => {
                return Err(Error::Usage(format!(
                    "test: unknown key ‘{other}’ (known: nodes)"
                )));
            }
        }
    }
    let configs = configs.ok_or_else(|| {
        Error::Usage("test: give the nodes: test(#{ nodes: #{ server: CONFIG } })".into())
    })?;
    if configs.is_empty() {
        return Err(Error::Usage("test: no nodes".into()));
    }
    // Only a run removes what a test makes: elsewhere its nodes would be left behind.
    if RUN.with(|r| r.borrow().settings.is_none()) {
        return Err(Error::Usage(
            "test(…) makes throw-away nodes that `ncsh test` removes afterwards: run this script with `ncsh test FILE`".into(),
        ));
    }
    let run = settings();
    let tag = unique_tag();
    let mut modules = Vec::new();
    for (node, config) in &configs {
        check_node_name(node)?;
        let name = ContainerName::parse(&format!("t{tag}-{node}"))?;
        modules.push((node.to_string(), name, user_module(node, config, &run.dir)?));
    }
    let _choosing = NETWORK_CHOICE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut tried: Vec<Ipv4Net> = Vec::new();
    loop {
        let candidates: Vec<Ipv4Net> = run
            .networks
            .iter()
            .copied()
            .filter(|n| !tried.contains(n))
            .collect();
        let network = manager.free_network(&candidates)?;
        tried.push(network);
        let mut hosts = network.hosts();
        let gateway = hosts
            .next()
            .ok_or_else(|| Error::Usage(format!("{network}: too small for a test network")))?;
        let mut addressed = Vec::new();
        for (node, _, _) in &modules {
            let address = hosts.next().ok_or_else(|| {
                Error::Usage(format!("{network}: too small for {} nodes", modules.len()))
            })?;
            addressed.push((node.clone(), address.to_string()));
        }
        let state = Rc::new(TestState {
            manager: manager.clone(),
            bridge: format!("nt{tag}"),
            network: Some(network),
            scratch: std::env::temp_dir().join(format!("ncsh-test-{tag}")),
            nodes: RefCell::new(Vec::new()),
        });
        RUN.with(|r| r.borrow_mut().tests.push(state.clone()));
        crate::files::ensure_dir(&state.scratch, 0o700)?;
        let gateway_net =
            Ipv4Net::new(gateway, network.prefix_len()).map_err(|e| Error::Usage(e.to_string()))?;
        let planned: Vec<(ContainerName, CreateOptions)> = modules
            .iter()
            .zip(&addressed)
            .map(|((node, name, module), (_, address))| {
                let opts = CreateOptions {
                    host_address: Some(gateway.to_string()),
                    local_address: Some(format!("{address}/{}", network.prefix_len())),
                    bridge: Some(state.bridge.clone()),
                    in_memory: true,
                    config: Some(ConfigSource::Snippet(node_config(
                        node,
                        module.as_deref(),
                        &addressed,
                    ))),
                    ..CreateOptions::default()
                };
                (name.clone(), opts)
            })
            .collect();
        // The nodes are built at once, and the bridge made meanwhile; it gets the gateway
        // once the nodes hold the network (before, the gateway would be refused to the first).
        let bridge = &state.bridge;
        crate::host::phase("test: create the nodes");
        let (created, failure, bridged) = std::thread::scope(|scope| {
            let bridging = scope.spawn(move || crate::host::net::add_bridge_link(bridge));
            let (created, failure) = manager.create_all(&planned);
            let bridged = bridging.join().unwrap_or_else(|_| {
                Err(Error::Unsupported(
                    "the thread making the test's bridge panicked".into(),
                ))
            });
            (created, failure, bridged)
        });
        crate::host::phase("test: nodes created");
        for made in &created {
            if let Some((node, _, _)) = modules.iter().find(|(_, name, _)| *name == made.name) {
                state
                    .nodes
                    .borrow_mut()
                    .push((node.clone(), made.name.clone()));
            }
        }
        let retry = match failure {
            None => false,
            // Another process took the network meanwhile: the next one.
            Some((0, Error::AddressInUse { .. } | Error::InvalidAddress { .. })) => true,
            Some((i, e)) => return Err(prefixed(&modules[i].0, e)),
        };
        if retry {
            crate::host::net::delete_bridge(&state.bridge)?;
        } else {
            bridged?;
            crate::host::net::add_bridge_address(&state.bridge, gateway_net)?;
        }
        if retry {
            RUN.with(|r| r.borrow_mut().tests.retain(|t| !Rc::ptr_eq(t, &state)));
            continue;
        }
        crate::host::phase("test: bridge up");
        let nodes = state
            .nodes
            .borrow()
            .iter()
            .map(|(node, name)| {
                (
                    node.as_str().into(),
                    Dynamic::from(Container {
                        name: name.clone(),
                        manager: manager.clone(),
                    }),
                )
            })
            .collect();
        return Ok(Test {
            state: state.clone(),
            nodes,
        });
    }
}

/// An error about node `node`, saying so.
fn prefixed(node: &str, e: Error) -> Error {
    let hint = e.hint().map(|h| format!(": {h}")).unwrap_or_default();
    Error::TestFailed(format!("node {node}: {e}{hint}"))
}

/// A command's output as a failure shows it: stdout and stderr, the last 40 lines.
fn shown_output(stdout: &str, stderr: &str) -> String {
    let all = format!("{stdout}{stderr}");
    let lines: Vec<&str> = all.trim_end().lines().collect();
    let skip = lines.len().saturating_sub(40);
    if lines.is_empty() {
        "(no output)".to_string()
    } else {
        let more = if skip > 0 {
            format!("(… {skip} lines before)\n")
        } else {
            String::new()
        };
        format!("{more}{}", lines[skip..].join("\n"))
    }
}

/// The result of a command run in a node.
struct Ran {
    status: i64,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn output(&self) -> String {
        shown_output(&self.stdout, &self.stderr)
    }
}

fn run_argv(c: &Container, argv: &[&str]) -> Result<Ran, Error> {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    let out = c.manager.run_captured(&c.name, &argv, None)?;
    Ok(Ran {
        status: crate::host::enter::exit_code(out.status) as i64,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Run the user's shell command `cmd` (NixOS's vocabulary: a `/bin/sh -c` command line).
fn shell(c: &Container, cmd: &str) -> Result<Ran, Error> {
    run_argv(c, &["/bin/sh", "-c", cmd])
}

/// What to do about one look while waiting.
enum Look {
    Done(String),
    /// Not yet: what was seen.
    Pending(String),
    /// Never will: the error.
    Failed(Error),
}

/// Look with `look` until it is done, backing off from 20 ms to 1 s between looks; a timeout
/// says what was last seen. Ctrl-C and SIGTERM end the wait.
fn wait(
    c: &Container,
    what: &str,
    timeout: Duration,
    mut look: impl FnMut() -> Result<Look, Error>,
) -> Result<String, Error> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(20);
    loop {
        let seen = match look()? {
            Look::Done(value) => return Ok(value),
            Look::Failed(e) => return Err(e),
            Look::Pending(seen) => seen,
        };
        if INTERRUPTED.load(Ordering::Relaxed) {
            return Err(Error::TestFailed(format!(
                "{}: interrupted while waiting for {what}",
                node_name(&c.name)
            )));
        }
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Err(Error::TestFailed(format!(
                "{}: timed out after {} s waiting for {what}; last seen:\n{seen}",
                node_name(&c.name),
                timeout.as_secs_f64()
            )));
        }
        sleep_for(pause.min(left));
        pause = (pause * 3 / 2).min(Duration::from_secs(1));
    }
}

/// A timeout argument: seconds as an int or a float, at least 0.
fn timeout_arg(value: &Dynamic) -> RhaiResult<Duration> {
    let secs = if let Ok(i) = value.as_int() {
        i as f64
    } else if let Ok(f) = value.as_float() {
        f
    } else {
        return Err(to_rhai(Error::Usage(format!(
            "a timeout is a number of seconds, not a {}",
            value.type_name()
        ))));
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(to_rhai(Error::Usage(format!(
            "a timeout is a number of seconds of at least 0, not {secs}"
        ))));
    }
    Ok(Duration::try_from_secs_f64(secs).unwrap_or(crate::host::MAX_TIMEOUT))
}

/// `systemctl show UNIT` as a map of its properties.
fn unit_info(c: &Container, unit: &str) -> Result<Map, Error> {
    let ran = run_argv(c, &["systemctl", "--no-pager", "show", "--", unit])?;
    if ran.status != 0 {
        return Err(Error::TestFailed(format!(
            "{}: systemctl show {unit} failed (exit status {}):\n{}",
            node_name(&c.name),
            ran.status,
            ran.output()
        )));
    }
    Ok(ran
        .stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.into(), Dynamic::from(v.to_string())))
        .collect())
}

fn prop(info: &Map, key: &str) -> String {
    info.get(key).map(|v| v.to_string()).unwrap_or_default()
}

fn wait_for_unit(c: &Container, unit: &str, timeout: Duration) -> Result<String, Error> {
    let node = node_name(&c.name);
    wait(c, &format!("unit {unit}"), timeout, || {
        let info = unit_info(c, unit)?;
        let state = prop(&info, "ActiveState");
        let seen = format!(
            "{unit}: ActiveState={state} SubState={} LoadState={}",
            prop(&info, "SubState"),
            prop(&info, "LoadState")
        );
        match state.as_str() {
            "active" => Ok(Look::Done(state)),
            "failed" => {
                let status = run_argv(c, &["systemctl", "--no-pager", "status", "--", unit])?;
                Ok(Look::Failed(Error::TestFailed(format!(
                    "{node}: unit {unit} failed ({seen}):\n{}",
                    status.output()
                ))))
            }
            "inactive" => {
                let jobs = run_argv(c, &["systemctl", "--no-pager", "list-jobs", "--full"])?;
                if jobs.stdout.contains("No jobs") {
                    let again = unit_info(c, unit)?;
                    if prop(&again, "ActiveState") == "inactive" {
                        return Ok(Look::Failed(Error::TestFailed(format!(
                            "{node}: unit {unit} is inactive and there are no pending jobs ({seen})"
                        ))));
                    }
                }
                Ok(Look::Pending(seen))
            }
            _ => Ok(Look::Pending(seen)),
        }
    })
}

/// A port probe inside the node: bash's /dev/tcp, the port passed as an argument.
fn port_open(c: &Container, port: u16) -> Result<bool, Error> {
    let port = port.to_string();
    let ran = run_argv(
        c,
        &[
            "/bin/bash",
            "-c",
            "exec 3<>\"/dev/tcp/127.0.0.1/$1\"",
            "bash",
            &port,
        ],
    )?;
    Ok(ran.status == 0)
}

fn command_failed(c: &Container, cmd: &str, ran: &Ran, expected: &str) -> Error {
    Error::TestFailed(format!(
        "{}: command `{cmd}` {expected} (exit status {}); its output:\n{}",
        node_name(&c.name),
        ran.status,
        ran.output()
    ))
}

fn ran_map(ran: Ran) -> Map {
    let mut map = Map::new();
    map.insert("status".into(), ran.status.into());
    map.insert("stdout".into(), ran.stdout.into());
    map.insert("stderr".into(), ran.stderr.into());
    map
}

type WaitFn = fn(&Container, &Dynamic, Duration) -> Result<String, Error>;

/// Register `c.NAME(arg)` and `c.NAME(arg, timeout)` with their docs.
fn register_wait(engine: &mut Engine, name: &str, docs: [&'static str; 2], f: WaitFn) {
    let [doc, timed] = docs;
    function(name, doc).register_into_engine(
        engine,
        move |c: &mut Container, arg: Dynamic| -> RhaiResult<String> {
            f(c, &arg, settings().timeout).map_err(to_rhai)
        },
    );
    function(name, timed).register_into_engine(
        engine,
        move |c: &mut Container, arg: Dynamic, timeout: Dynamic| -> RhaiResult<String> {
            f(c, &arg, timeout_arg(&timeout)?).map_err(to_rhai)
        },
    );
}

fn text_arg(value: &Dynamic, what: &str) -> Result<String, Error> {
    value
        .clone()
        .into_immutable_string()
        .map(|s| s.to_string())
        .map_err(|t| Error::Usage(format!("{what} must be a string, found a {t}")))
}

fn int_port(value: &Dynamic) -> Result<u16, Error> {
    let port = value
        .as_int()
        .map_err(|t| Error::Usage(format!("a port must be an integer, found a {t}")))?;
    u16::try_from(port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| Error::Usage(format!("{port} is not a port (1 to 65535)")))
}

/// The innermost position an error carries: inside a closure, the step that failed.
fn innermost_position(err: &EvalAltResult) -> Position {
    let mut position = err.position();
    let mut inner = err;
    while let EvalAltResult::ErrorInFunctionCall(_, _, e, _)
    | EvalAltResult::ErrorInModule(_, e, _) = inner
    {
        inner = e;
        if !inner.position().is_none() {
            position = inner.position();
        }
    }
    position
}

/// The error a failed subtest ends its script with (already reported).
pub const SUBTEST_FAILED: &str = "SubtestFailed";

fn subtest(context: NativeCallContext, name: &str, body: FnPtr) -> RhaiResult<Dynamic> {
    let run = settings();
    let full = RUN.with(|r| {
        let mut r = r.borrow_mut();
        r.subtests.push(name.to_string());
        r.subtests.join(" › ")
    });
    let pop = || {
        RUN.with(|r| {
            r.borrow_mut().subtests.pop();
        })
    };
    if run.skip_subtests {
        report(&format!("subtest {full}: skipped (--interactive)"));
        pop();
        return Ok(Dynamic::UNIT);
    }
    report(&format!("subtest {full} …"));
    let start = Instant::now();
    let outcome = body.call_within_context::<Dynamic>(&context, ());
    let seconds = start.elapsed().as_secs_f64();
    pop();
    match outcome {
        Ok(value) => {
            report(&format!("  ok {full} ({seconds:.2} s)"));
            RUN.with(|r| {
                r.borrow_mut().results.push(SubtestResult {
                    name: full,
                    seconds,
                    failure: None,
                })
            });
            Ok(value)
        }
        Err(err) => {
            let failure = describe(&err);
            if failure.exit.is_some()
                || INTERRUPTED.load(Ordering::Relaxed) && failure.message.is_empty()
            {
                return Err(err);
            }
            let nested = subtest_error_text(&err);
            let text = match nested {
                Some(text) => text,
                None => {
                    let position = innermost_position(&err);
                    let hint = failure.hint.map(|h| format!(": {h}")).unwrap_or_default();
                    format!(
                        "{}:{}:{}: subtest ‘{full}’: {}{hint}",
                        run.file,
                        position.line().unwrap_or(0),
                        position.position().unwrap_or(0),
                        failure.message
                    )
                }
            };
            report(&format!("  FAILED {full} ({seconds:.2} s)"));
            report(&indent(&text));
            RUN.with(|r| {
                r.borrow_mut().results.push(SubtestResult {
                    name: full,
                    seconds,
                    failure: Some(text.clone()),
                })
            });
            let mut map = Map::new();
            map.insert("kind".into(), SUBTEST_FAILED.into());
            map.insert("message".into(), text.into());
            map.insert("hint".into(), Dynamic::UNIT);
            Err(EvalAltResult::ErrorRuntime(map.into(), Position::NONE).into())
        }
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text of a [`SUBTEST_FAILED`] error inside `err`, if it is one (a nested subtest's, or
/// one that ended the script).
pub fn subtest_error_text(err: &EvalAltResult) -> Option<String> {
    let mut inner = err;
    while let EvalAltResult::ErrorInFunctionCall(_, _, e, _)
    | EvalAltResult::ErrorInModule(_, e, _) = inner
    {
        inner = e;
    }
    let EvalAltResult::ErrorRuntime(value, _) = inner else {
        return None;
    };
    let map = value.clone().try_cast::<Map>()?;
    (map.get("kind")?.to_string() == SUBTEST_FAILED).then(|| {
        map.get("message")
            .map(|m| m.to_string())
            .unwrap_or_default()
    })
}

pub fn register(engine: &mut Engine, manager: Rc<Manager>) {
    engine.build_type::<Test>();
    let m = manager;
    function(
        "test",
        api_doc!(
            "test(spec: map) -> Test",
            "Make a test's nodes: test(#{ nodes: #{ server: CONFIG, client: CONFIG } }), CONFIG a",
            "--config text, a module path or #{config: …} / #{config_file: …}. The nodes are",
            "containers on a bridge of their own and resolve each other by node name; `ncsh test`",
            "removes them when the script ends."
        ),
    )
    .register_into_engine(engine, move |spec: Map| -> RhaiResult<Test> {
        new_test(&m, &spec).map_err(to_rhai)
    });
    function(
        "subtest",
        api_doc!(
            "subtest(name: string, body: fn)",
            "Run the steps of `body` (a closure) as one reported subtest: its time and result are",
            "printed; a failure ends the test."
        ),
    )
    .register_into_engine(engine, subtest);

    function(
        "succeed",
        api_doc!(
            "c.succeed(cmd: string) -> string",
            "Run a shell command inside (/bin/sh -c); its stdout, or an error with its exit status",
            "and output."
        ),
    )
    .register_into_engine(
        engine,
        |c: &mut Container, cmd: &str| -> RhaiResult<String> {
            let ran = shell(c, cmd).map_err(to_rhai)?;
            if ran.status == 0 {
                Ok(ran.stdout)
            } else {
                Err(to_rhai(command_failed(c, cmd, &ran, "failed")))
            }
        },
    );
    function(
        "fail",
        api_doc!(
            "c.fail(cmd: string) -> string",
            "Run a shell command inside that must fail; its stdout, or an error if it succeeded."
        ),
    )
    .register_into_engine(
        engine,
        |c: &mut Container, cmd: &str| -> RhaiResult<String> {
            let ran = shell(c, cmd).map_err(to_rhai)?;
            if ran.status != 0 {
                Ok(ran.stdout)
            } else {
                Err(to_rhai(command_failed(
                    c,
                    cmd,
                    &ran,
                    "succeeded but was expected to fail",
                )))
            }
        },
    );
    function(
        "execute",
        api_doc!(
            "c.execute(cmd: string) -> map",
            "Run a shell command inside; #{status, stdout, stderr} whatever its status."
        ),
    )
    .register_into_engine(engine, |c: &mut Container, cmd: &str| -> RhaiResult<Map> {
        Ok(ran_map(shell(c, cmd).map_err(to_rhai)?))
    });

    register_wait(
        engine,
        "wait_for_unit",
        [
            api_doc!(
                "c.wait_for_unit(unit: string) -> string",
                "Wait until a systemd unit is active (timeout in seconds, default 900 or --timeout);",
                "an error at once if it failed, or is inactive with no job pending."
            ),
            api_doc!(
                "c.wait_for_unit(unit: string, timeout: int|float) -> string",
                "Wait until a systemd unit is active (timeout in seconds, default 900 or --timeout);",
                "an error at once if it failed, or is inactive with no job pending."
            ),
        ],
        |c, unit, timeout| wait_for_unit(c, &text_arg(unit, "a unit")?, timeout),
    );
    register_wait(
        engine,
        "wait_until_succeeds",
        [
            api_doc!(
                "c.wait_until_succeeds(cmd: string) -> string",
                "Run a shell command inside until it succeeds; its stdout."
            ),
            api_doc!(
                "c.wait_until_succeeds(cmd: string, timeout: int|float) -> string",
                "Run a shell command inside until it succeeds; its stdout."
            ),
        ],
        |c, cmd, timeout| {
            let cmd = text_arg(cmd, "a command")?;
            wait(c, &format!("`{cmd}` to succeed"), timeout, || {
                let ran = shell(c, &cmd)?;
                Ok(if ran.status == 0 {
                    Look::Done(ran.stdout)
                } else {
                    Look::Pending(format!("exit status {}:\n{}", ran.status, ran.output()))
                })
            })
        },
    );
    register_wait(
        engine,
        "wait_until_fails",
        [
            api_doc!(
                "c.wait_until_fails(cmd: string) -> string",
                "Run a shell command inside until it fails; its stdout."
            ),
            api_doc!(
                "c.wait_until_fails(cmd: string, timeout: int|float) -> string",
                "Run a shell command inside until it fails; its stdout."
            ),
        ],
        |c, cmd, timeout| {
            let cmd = text_arg(cmd, "a command")?;
            wait(c, &format!("`{cmd}` to fail"), timeout, || {
                let ran = shell(c, &cmd)?;
                Ok(if ran.status != 0 {
                    Look::Done(ran.stdout)
                } else {
                    Look::Pending(format!("exit status 0:\n{}", ran.output()))
                })
            })
        },
    );
    register_wait(
        engine,
        "wait_for_open_port",
        [
            api_doc!(
                "c.wait_for_open_port(port: int)",
                "Wait until something listens on the port (TCP, 127.0.0.1 inside)."
            ),
            api_doc!(
                "c.wait_for_open_port(port: int, timeout: int|float)",
                "Wait until something listens on the port (TCP, 127.0.0.1 inside)."
            ),
        ],
        |c, port, timeout| {
            let port = int_port(port)?;
            wait(c, &format!("port {port} to open"), timeout, || {
                Ok(if port_open(c, port)? {
                    Look::Done(String::new())
                } else {
                    Look::Pending(format!("port {port} is closed"))
                })
            })
        },
    );
    register_wait(
        engine,
        "wait_for_closed_port",
        [
            api_doc!(
                "c.wait_for_closed_port(port: int)",
                "Wait until nothing listens on the port (TCP, 127.0.0.1 inside)."
            ),
            api_doc!(
                "c.wait_for_closed_port(port: int, timeout: int|float)",
                "Wait until nothing listens on the port (TCP, 127.0.0.1 inside)."
            ),
        ],
        |c, port, timeout| {
            let port = int_port(port)?;
            wait(c, &format!("port {port} to close"), timeout, || {
                Ok(if port_open(c, port)? {
                    Look::Pending(format!("port {port} is open"))
                } else {
                    Look::Done(String::new())
                })
            })
        },
    );
    register_wait(
        engine,
        "wait_for_file",
        [
            api_doc!(
                "c.wait_for_file(path: string)",
                "Wait until a path exists inside."
            ),
            api_doc!(
                "c.wait_for_file(path: string, timeout: int|float)",
                "Wait until a path exists inside."
            ),
        ],
        |c, path, timeout| {
            let path = text_arg(path, "a path")?;
            wait(c, &format!("file {path}"), timeout, || {
                let ran = run_argv(c, &["/bin/sh", "-c", "test -e \"$1\"", "sh", &path])?;
                Ok(if ran.status == 0 {
                    Look::Done(String::new())
                } else {
                    Look::Pending(format!("{path} does not exist"))
                })
            })
        },
    );
    register_wait(
        engine,
        "wait_for_console_text",
        [
            api_doc!(
                "c.wait_for_console_text(regex: string) -> string",
                "Wait until the container's journal (this boot) has a line matching the regex; that line."
            ),
            api_doc!(
                "c.wait_for_console_text(regex: string, timeout: int|float) -> string",
                "Wait until the container's journal (this boot) has a line matching the regex; that line."
            ),
        ],
        |c, pattern, timeout| {
            let pattern = text_arg(pattern, "a regex")?;
            let regex = regex::Regex::new(&pattern)
                .map_err(|e| Error::Usage(format!("regex ‘{pattern}’: {e}")))?;
            wait(c, &format!("journal text /{pattern}/"), timeout, || {
                let ran = run_argv(c, &["journalctl", "--no-pager", "-b", "-o", "cat"])?;
                if let Some(line) = ran.stdout.lines().find(|l| regex.is_match(l)) {
                    return Ok(Look::Done(line.to_string()));
                }
                Ok(Look::Pending(shown_output(&ran.stdout, &ran.stderr)))
            })
        },
    );

    function(
        "systemctl",
        api_doc!(
            "c.systemctl(args: string|array) -> map",
            "Run systemctl inside with these arguments (a string is split at white space, no",
            "shell); #{status, stdout, stderr}."
        ),
    )
    .register_into_engine(
        engine,
        |c: &mut Container, args: Dynamic| -> RhaiResult<Map> {
            let mut argv = vec!["systemctl".to_string(), "--no-pager".to_string()];
            if let Ok(text) = args.clone().into_immutable_string() {
                argv.extend(text.split_whitespace().map(str::to_string));
            } else if let Some(array) = args.clone().try_cast::<Array>() {
                argv.extend(super::strings(&array, "systemctl arguments")?);
            } else {
                return Err(to_rhai(Error::Usage(
                    "systemctl takes its arguments as a string or an array of strings".into(),
                )));
            }
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            Ok(ran_map(run_argv(c, &argv).map_err(to_rhai)?))
        },
    );
    function(
        "get_unit_info",
        api_doc!(
            "c.get_unit_info(unit: string) -> map",
            "The unit's properties (systemctl show): ActiveState, SubState, MainPID, …"
        ),
    )
    .register_into_engine(engine, |c: &mut Container, unit: &str| -> RhaiResult<Map> {
        unit_info(c, unit).map_err(to_rhai)
    });
    function(
        "copy_from_host",
        api_doc!(
            "c.copy_from_host(src: string, dst: string)",
            "Copy a host file or directory to a path inside the running container (modes kept)."
        ),
    )
    .register_into_engine(
        engine,
        |c: &mut Container, src: &str, dst: &str| -> RhaiResult<()> {
            c.manager
                .copy_in(&c.name, Path::new(src), Path::new(dst))
                .map_err(to_rhai)
        },
    );
    function(
        "copy_to_host",
        api_doc!(
            "c.copy_to_host(src: string, dst: string)",
            "Copy a file or directory of the running container to a host path; its links",
            "resolve inside the container."
        ),
    )
    .register_into_engine(
        engine,
        |c: &mut Container, src: &str, dst: &str| -> RhaiResult<()> {
            c.manager
                .copy_out(&c.name, Path::new(src), Path::new(dst))
                .map_err(to_rhai)
        },
    );
    function(
        "shutdown",
        api_doc!("c.shutdown()", "Power it off cleanly (as stop)."),
    )
    .register_into_engine(engine, |c: &mut Container| -> RhaiResult<()> {
        c.manager.stop(&c.name).map_err(to_rhai)
    });
    function(
        "crash",
        api_doc!("c.crash()", "Kill it at once, without a clean stop."),
    )
    .register_into_engine(engine, |c: &mut Container| -> RhaiResult<()> {
        c.manager.terminate(&c.name).map_err(to_rhai)
    });
    function(
        "block",
        api_doc!(
            "c.block()",
            "Cut its network: the host side of its link goes down."
        ),
    )
    .register_into_engine(engine, |c: &mut Container| -> RhaiResult<()> {
        c.manager.set_link_up(&c.name, false).map_err(to_rhai)
    });
    function(
        "unblock",
        api_doc!("c.unblock()", "Restore its network after block()."),
    )
    .register_into_engine(engine, |c: &mut Container| -> RhaiResult<()> {
        c.manager.set_link_up(&c.name, true).map_err(to_rhai)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_is_refused_outside_a_run_whose_end_removes_its_nodes() {
        let dir = tempfile::tempdir().unwrap();
        let (driver, log) = crate::host::fake::FakeDriver::new();
        let manager = Manager::new(
            crate::container::Paths::under(dir.path()),
            crate::manager::Personality::Ncsh,
            Box::new(|| Err(Error::Unsupported("no builds here".into()))),
            Box::new(driver),
        );
        let mut engine = Engine::new();
        let manager = Rc::new(manager);
        super::super::register(&mut engine, manager.clone());
        super::super::register_tests(&mut engine, manager);
        let err = engine
            .eval::<Dynamic>(r#"test(#{ nodes: #{ a: "" } })"#)
            .unwrap_err();
        let failure = describe(&err);
        assert!(
            failure
                .message
                .contains("run this script with `ncsh test FILE`"),
            "{}",
            failure.message
        );
        assert!(log.calls().is_empty());
        assert!(!made_nodes());
    }

    #[test]
    fn nix_strings_escape_what_nix_reads_specially() {
        assert_eq!(nix_string("a\"b\\c${d}$e\n"), r#""a\"b\\c\${d}$e\n""#);
    }

    #[test]
    fn a_node_configuration_imports_its_module_and_names_every_node() {
        let hosts = [
            ("client".to_string(), "10.235.7.3".to_string()),
            ("server".to_string(), "10.235.7.2".to_string()),
        ];
        let text = node_config("server", Some("(/. + \"/x.nix\")"), &hosts);
        assert_eq!(
            text,
            "imports = [ (/. + \"/x.nix\") ];\n  networking.hostName = lib.mkOverride 900 \"server\";\n  \
             networking.hosts = { \"10.235.7.3\" = [ \"client\" ]; \"10.235.7.2\" = [ \"server\" ]; };"
        );
    }

    #[test]
    fn node_names_are_host_name_labels() {
        assert!(check_node_name("web-1").is_ok());
        for bad in ["", "Web", "1web", "a_b", "a.b", &"a".repeat(41)] {
            assert!(check_node_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn configurations_become_modules() {
        let dir = Path::new("/nonexistent");
        let text = user_module("n", &Dynamic::from("services.x.enable = true;"), dir)
            .unwrap()
            .unwrap();
        assert!(
            text.starts_with("({ config, lib, pkgs, ... }: {\nservices.x.enable"),
            "{text}"
        );
        let mut map = Map::new();
        map.insert("port".into(), Dynamic::from("80"));
        let e = user_module("n", &Dynamic::from(map), dir).unwrap_err();
        assert!(e.to_string().contains("unknown option ‘port’"), "{e}");
        let e = user_module("n", &Dynamic::from("missing.nix"), dir).unwrap_err();
        assert!(e.to_string().contains("no such file"), "{e}");
    }
}
