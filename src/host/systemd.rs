//! The systemd driver: on a host whose PID 1 is systemd, a container runs as the unit
//! `container@NAME.service`, driven over the system bus (systemd1 and machine1, with zbus).
//!
//! Where a `container@.service` template is installed (NixOS), `start` starts its instance as it
//! is. Elsewhere it starts a transient unit of the same name running the nspawn command the
//! standalone driver builds (`nspawn::args`, `Supervision::SystemdUnit`), with the host side of
//! the veth configured by `ExecStartPost` (`ip`, argv only), so the unit is complete on its own:
//! `systemctl status/stop/restart container@NAME` work on any systemd distribution.
//!
//! nspawn registers the container with machined (no `--register=no` under a unit): the leader
//! comes from machined, `terminate` is machined's TerminateMachine.
//!
//! `update` of a running container reloads the unit, as NixOS does; the transient unit's
//! ExecReload is `ncsh __reload NAME` ([`reload_main`]), which runs the switch inside.
//!
//! zbus is asynchronous; the driver owns a current-thread tokio runtime and every method blocks
//! on it, so callers (and Rhai) stay synchronous.

use std::cell::RefCell;
use std::ffi::OsString;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use nix::unistd::Pid;
use zbus::proxy::CacheProperties;
use zbus::{Connection, OwnedObjectPath, OwnedVariant, Variant};
use zbus_systemd::machine1;
use zbus_systemd::systemd1::{self, ManagerProxy};

use super::nspawn::{self, Supervision};
use super::timeout_from_env;
use super::{Driver, Status, net, nft, pty};
use crate::builder::base;
use crate::builder::switch as builder_switch;
use crate::container::limits::Limits;
use crate::container::{Conf, Paths, unit};
use crate::error::{Error, Result};
use crate::files::Root;

const NSPAWN: &str = "/usr/bin/systemd-nspawn";
/// How long `start` waits for the start job (NixOS: `TimeoutStartSec=1min`; `NCSH_START_TIMEOUT`).
const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `stop` waits for the stop job (systemd's own TimeoutStopSec applies first).
const STOP_TIMEOUT: Duration = Duration::from_secs(120);
/// How long `terminate` waits for the leader and the unit to go.
const TERMINATE_TIMEOUT: Duration = Duration::from_secs(20);

/// The unit of a container.
pub fn unit_name(name: &str) -> String {
    format!("container@{name}.service")
}

/// Is systemd PID 1 here (sd_booted)?
pub fn systemd_is_pid1() -> bool {
    std::path::Path::new("/run/systemd/system").is_dir()
}

fn bus_error(what: &str, e: zbus::Error) -> Error {
    Error::Bus(format!("{what}: {e}"))
}

/// The D-Bus error name of a method error reply, if it is one.
fn error_name(e: &zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, _, _) => name.as_str().to_string(),
        zbus::Error::FDO(fdo) => match fdo.as_ref() {
            zbus::fdo::Error::ServiceUnknown(_) => "org.freedesktop.DBus.Error.ServiceUnknown",
            zbus::fdo::Error::NameHasNoOwner(_) => "org.freedesktop.DBus.Error.NameHasNoOwner",
            zbus::fdo::Error::UnknownObject(_) => "org.freedesktop.DBus.Error.UnknownObject",
            _ => "",
        }
        .to_string(),
        _ => String::new(),
    }
}

fn is_no_such_unit(e: &zbus::Error) -> bool {
    matches!(
        error_name(e).as_str(),
        "org.freedesktop.systemd1.NoSuchUnit" | "org.freedesktop.DBus.Error.UnknownObject"
    )
}

fn is_service_missing(e: &zbus::Error) -> bool {
    matches!(
        error_name(e).as_str(),
        "org.freedesktop.DBus.Error.ServiceUnknown" | "org.freedesktop.DBus.Error.NameHasNoOwner"
    )
}

fn variant(value: impl Into<Variant<'static>>) -> Result<OwnedVariant> {
    OwnedVariant::try_from(value.into())
        .map_err(|e| Error::Bus(format!("encoding a unit property: {e}")))
}

fn os_strings(args: Vec<OsString>) -> Vec<String> {
    args.into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// What systemd says about a loaded unit.
struct UnitState {
    path: OwnedObjectPath,
    load_state: String,
    active_state: String,
    transient: bool,
}

pub struct Systemd {
    paths: Paths,
    runtime: tokio::runtime::Runtime,
    /// The system bus, connected on first use (`--version` needs no bus).
    bus: RefCell<Option<Connection>>,
}

impl Systemd {
    pub fn new(paths: Paths) -> Result<Systemd> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .enable_io()
            .build()
            .map_err(|e| Error::io("creating the D-Bus runtime", e))?;
        Ok(Systemd {
            paths,
            runtime,
            bus: RefCell::new(None),
        })
    }

    fn bus(&self) -> Result<Connection> {
        if let Some(conn) = self.bus.borrow().as_ref() {
            return Ok(conn.clone());
        }
        let conn = self
            .runtime
            .block_on(Connection::system())
            .map_err(|e| Error::Bus(format!("connecting to the system bus: {e}")))?;
        *self.bus.borrow_mut() = Some(conn.clone());
        Ok(conn)
    }

    fn block_on<T>(&self, f: impl AsyncFnOnce(Connection) -> Result<T>) -> Result<T> {
        let conn = self.bus()?;
        self.runtime.block_on(f(conn))
    }
}

async fn manager(conn: &Connection) -> Result<ManagerProxy<'static>> {
    ManagerProxy::builder(conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await
        .map_err(|e| bus_error("systemd1 manager", e))
}

async fn machine_manager(conn: &Connection) -> Result<machine1::ManagerProxy<'static>> {
    machine1::ManagerProxy::builder(conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await
        .map_err(|e| bus_error("machine1 manager", e))
}

async fn unit_proxy(
    conn: &Connection,
    path: &OwnedObjectPath,
) -> Result<systemd1::UnitProxy<'static>> {
    systemd1::UnitProxy::builder(conn)
        .path(path.clone())
        .cache_properties(CacheProperties::No)
        .build()
        .await
        .map_err(|e| bus_error("unit proxy", e))
}

/// The unit's state, or None when systemd has not loaded it (never started, or collected).
async fn unit_state(conn: &Connection, unit: &str, load: bool) -> Result<Option<UnitState>> {
    let m = manager(conn).await?;
    let path = if load {
        m.load_unit(unit.to_string()).await
    } else {
        m.get_unit(unit.to_string()).await
    };
    let path = match path {
        Ok(path) => path,
        Err(e) if is_no_such_unit(&e) => return Ok(None),
        Err(e) => return Err(bus_error(&format!("looking up {unit}"), e)),
    };
    let u = unit_proxy(conn, &path).await?;
    let read = |e| bus_error(&format!("reading the state of {unit}"), e);
    // Asked together: one round trip to systemd instead of three.
    let (load_state, active_state, transient) =
        futures_util::future::join3(u.load_state(), u.active_state(), u.transient()).await;
    let state = UnitState {
        load_state: load_state.map_err(read)?,
        active_state: active_state.map_err(read)?,
        transient: transient.map_err(read)?,
        path,
    };
    Ok(Some(state))
}

/// Why a unit failed: its service Result and main exit status, for error messages.
async fn failure_detail(conn: &Connection, path: &OwnedObjectPath) -> String {
    let service = systemd1::ServiceProxy::builder(conn)
        .path(path.clone())
        .cache_properties(CacheProperties::No)
        .build()
        .await;
    let Ok(service) = service else {
        return String::new();
    };
    let result = service.result().await.unwrap_or_default();
    let status = service.exec_main_status().await.unwrap_or_default();
    format!("unit result: {result}, main process exit status {status}")
}

/// Why a reload failed: the service's ReloadResult, for error messages.
async fn reload_detail(conn: &Connection, unit: &str) -> String {
    let Ok(Some(state)) = unit_state(conn, unit, false).await else {
        return String::new();
    };
    let service = systemd1::ServiceProxy::builder(conn)
        .path(state.path)
        .cache_properties(CacheProperties::No)
        .build()
        .await;
    match service {
        Ok(service) => match service.reload_result().await {
            Ok(result) => format!("; reload result: {result}"),
            Err(_) => String::new(),
        },
        Err(_) => String::new(),
    }
}

/// Run a job-creating call and wait for its JobRemoved; the job's result ("done", "failed", …).
/// The signal stream exists before the call, so a fast job cannot be missed.
async fn run_job(
    conn: &Connection,
    what: &str,
    timeout: Duration,
    call: impl AsyncFnOnce(&ManagerProxy<'static>) -> zbus::Result<OwnedObjectPath>,
) -> Result<std::result::Result<String, zbus::Error>> {
    let m = manager(conn).await?;
    let mut removed = m
        .receive_job_removed()
        .await
        .map_err(|e| bus_error("subscribing to JobRemoved", e))?;
    // systemd only emits job signals once some client subscribed.
    match m.subscribe().await {
        Ok(()) => {}
        Err(e) if error_name(&e) == "org.freedesktop.systemd1.AlreadySubscribed" => {}
        Err(e) => return Err(bus_error("subscribing to systemd", e)),
    }
    let job = match call(&m).await {
        Ok(job) => job,
        Err(e) => return Ok(Err(e)),
    };
    let wait = async {
        while let Some(signal) = removed.next().await {
            if let Ok(args) = signal.args()
                && args.job == job
            {
                return Some(args.result);
            }
        }
        None
    };
    match tokio::time::timeout(timeout, wait).await {
        Ok(Some(result)) => Ok(Ok(result)),
        Ok(None) => Err(Error::Bus(format!(
            "{what}: the bus closed before the job finished"
        ))),
        Err(_) => Err(Error::Bus(format!(
            "{what}: the job did not finish within {timeout:?}"
        ))),
    }
}

async fn reset_failed(conn: &Connection, unit: &str) {
    if let Ok(m) = manager(conn).await {
        let _ = m.reset_failed_unit(unit.to_string()).await;
    }
}

async fn stop_unit(conn: &Connection, unit: &str, timeout: Duration) -> Result<()> {
    let outcome = run_job(conn, &format!("stopping {unit}"), timeout, async |m| {
        m.stop_unit(unit.to_string(), "replace".into()).await
    })
    .await?;
    reset_failed(conn, unit).await;
    match outcome {
        Ok(result) if result == "done" => Ok(()),
        Ok(result) => Err(Error::StopFailed {
            name: unit.into(),
            detail: format!("{unit}: the stop job finished with result ‘{result}’"),
        }),
        Err(e) if is_no_such_unit(&e) => Ok(()),
        Err(e) => Err(bus_error(&format!("stopping {unit}"), e)),
    }
}

/// The properties of the transient unit: what a NixOS `container@.service` sets, with the
/// nspawn command of the standalone driver.
fn transient_properties(
    name: &str,
    paths: &Paths,
    conf: &Conf,
) -> Result<Vec<(String, OwnedVariant)>> {
    let mut argv = vec![NSPAWN.to_string()];
    let nix = nspawn::nix_system(paths, name, conf);
    argv.extend(os_strings(nspawn::args(
        name,
        &paths.root(name),
        conf,
        &paths.conf(name),
        Supervision::SystemdUnit,
        nix.as_ref(),
    )?));
    let exec_start = vec![(NSPAWN.to_string(), argv, false)];
    let ip = net::ip_binary()?;
    let exec_start_post: Vec<(String, Vec<String>, bool)> = net::host_side_commands(name, conf)
        .into_iter()
        .map(|args| {
            let mut full = vec![ip.to_string()];
            full.extend(args);
            (ip.to_string(), full, false)
        })
        .collect();
    // The reload runs this very binary, with the same paths, to switch the container.
    let exe = std::env::current_exe()
        .map_err(|e| Error::io("finding the ncsh executable for ExecReload", e))?
        .display()
        .to_string();
    let exec_reload = vec![(
        exe.clone(),
        vec![exe.clone(), "__reload".to_string(), name.to_string()],
        false,
    )];
    let mut environment = vec!["SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1".to_string()];
    environment.extend(
        paths
            .to_env()
            .iter()
            .map(|(key, value)| format!("{key}={}", value.display())),
    );
    let start_timeout = start_timeout(conf)?;
    let mut props = vec![
        (
            "Description".to_string(),
            variant(format!("Container '{name}'"))?,
        ),
        ("Type".into(), variant("notify")?),
        ("KillMode".into(), variant("mixed")?),
        ("Delegate".into(), variant(true)?),
        ("Slice".into(), variant("machine.slice")?),
        ("Environment".into(), variant(environment)?),
        (
            "TimeoutStartUSec".into(),
            variant(u64::try_from(start_timeout.as_micros()).unwrap_or(u64::MAX))?,
        ),
        ("ExecStart".into(), variant(exec_start)?),
        ("ExecReload".into(), variant(exec_reload)?),
    ];
    let mut exec_start_post = exec_start_post;
    let internal = |verb: &str, ignore_failure: bool| {
        (
            exe.clone(),
            vec![exe.clone(), verb.to_string(), name.to_string()],
            ignore_failure,
        )
    };
    if nft::wants_loopback(conf) {
        exec_start_post.push(internal("__net-up", false));
    }
    if !exec_start_post.is_empty() {
        props.push(("ExecStartPost".into(), variant(exec_start_post)?));
    }
    props.extend(limit_properties(&Limits::from_conf(conf)?)?);
    props.push(("DevicePolicy".into(), variant("closed")?));
    props.extend(device_properties(conf)?);
    if conf.non_empty("HOST_PORT").is_some() {
        // However nspawn ended, its forwarded ports go with the unit.
        props.push((
            "ExecStopPost".into(),
            variant(vec![internal("__net-down", true)])?,
        ));
    }
    Ok(props)
}

impl Systemd {
    async fn start_async(&self, conn: Connection, name: &str, conf: &Conf) -> Result<()> {
        let unit = unit_name(name);
        let timeout = start_timeout(conf)?.saturating_add(Duration::from_secs(5));
        let mut state = unit_state(&conn, &unit, true).await?;
        if let Some(s) = &state {
            if s.active_state == "active" {
                return Ok(());
            }
            if s.active_state == "failed" {
                reset_failed(&conn, &unit).await;
                state = unit_state(&conn, &unit, true).await?;
            }
        }
        // A loaded unit that is not transient has a unit file: the template (NixOS).
        let template = state
            .as_ref()
            .is_some_and(|s| s.load_state == "loaded" && !s.transient);
        // Starting or stopping: a start job joins (or follows) it, with the unit's definition.
        let running = state.as_ref().is_some_and(|s| {
            matches!(
                s.active_state.as_str(),
                "activating" | "reloading" | "deactivating"
            )
        });
        if !running {
            // What a crash of its last run left.
            self.remove_forwards(name)?;
        }
        if template && !running {
            // NixOS bakes allowedDevices into the container's own unit; on the template's
            // instance they are set at runtime, before the start (its DevicePolicy is closed).
            let props = device_properties(conf)?;
            if !props.is_empty() {
                manager(&conn)
                    .await?
                    .set_unit_properties(unit.clone(), true, props)
                    .await
                    .map_err(|e| bus_error(&format!("setting DeviceAllow= on {unit}"), e))?;
            }
        }
        let outcome = if template || running {
            let what = format!("starting {unit}");
            let job = run_job(&conn, &what, timeout, async |m| {
                m.start_unit(unit.clone(), "replace".into()).await
            });
            // The template's TimeoutStartSec= cannot be changed at runtime: a container's own
            // timeoutStartSec is kept here, by stopping what is not ready in time.
            match unit::start_timeout(conf)? {
                Some(own) if template && !running && !own.is_zero() => {
                    let own = own.min(super::MAX_TIMEOUT);
                    match tokio::time::timeout(own, job).await {
                        Ok(outcome) => outcome?,
                        Err(_) => {
                            let _ = stop_unit(&conn, &unit, Duration::from_secs(30)).await;
                            reset_failed(&conn, &unit).await;
                            return Err(Error::StartFailed {
                                name: name.into(),
                                detail: format!(
                                    "{unit}: not ready after {own:?} (its timeoutStartSec: \
                                     {} in its conf), so ncsh stopped it (see `journalctl -u \
                                     {unit}`)",
                                    unit::TIMEOUT_START_SEC
                                ),
                            });
                        }
                    }
                }
                _ => job.await?,
            }
        } else {
            // What the NixOS start script does first: the directories nspawn binds exist.
            if let Some(nix) = nspawn::nix_system(&self.paths, name, conf) {
                nix.create_dirs()?;
            }
            // A stopped transient unit is collected shortly after its stop job; until then
            // systemd refuses a new one of the same name (UnitExists): retry for a while.
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let props = transient_properties(name, &self.paths, conf)?;
                let outcome = run_job(&conn, &format!("starting {unit}"), timeout, async |m| {
                    m.start_transient_unit(unit.clone(), "fail".into(), props, Vec::new())
                        .await
                })
                .await?;
                match &outcome {
                    Err(e)
                        if error_name(e) == "org.freedesktop.systemd1.UnitExists"
                            && Instant::now() < deadline =>
                    {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    _ => break outcome,
                }
            }
        };
        match outcome {
            Ok(result) if result == "done" => Ok(()),
            Ok(result) => {
                let detail = match unit_state(&conn, &unit, false).await {
                    Ok(Some(s)) => failure_detail(&conn, &s.path).await,
                    _ => String::new(),
                };
                // Leave no half-started unit behind.
                let _ = stop_unit(&conn, &unit, Duration::from_secs(30)).await;
                reset_failed(&conn, &unit).await;
                Err(Error::StartFailed {
                    name: name.into(),
                    detail: format!(
                        "{unit}: the start job finished with result ‘{result}’; {detail} (see `journalctl -u {unit}`)"
                    ),
                })
            }
            Err(e) => {
                let _ = stop_unit(&conn, &unit, Duration::from_secs(30)).await;
                Err(Error::StartFailed {
                    name: name.into(),
                    detail: format!("{unit}: systemd refused to start it: {e}"),
                })
            }
        }
    }

    async fn machine(
        &self,
        conn: &Connection,
        name: &str,
    ) -> Result<Option<machine1::MachineProxy<'static>>> {
        let m = machine_manager(conn).await?;
        let path = match m.get_machine(name.to_string()).await {
            Ok(path) => path,
            // Not an answer of machined's own (machine1 errors): the bus could not reach it
            // (not running, masked, activation failed).
            Err(e)
                if is_service_missing(&e)
                    || !error_name(&e).starts_with("org.freedesktop.machine1.") =>
            {
                return Err(Error::Machined(e.to_string()));
            }
            Err(e) if error_name(&e) == "org.freedesktop.machine1.NoSuchMachine" => {
                return Ok(None);
            }
            Err(e) => return Err(bus_error(&format!("looking up machine {name}"), e)),
        };
        let proxy = machine1::MachineProxy::builder(conn)
            .path(path)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(|e| bus_error("machine proxy", e))?;
        Ok(Some(proxy))
    }

    /// The root directory of machine `name` when it is not ours: a container of another conf
    /// directory (another `NCSH_PREFIX`) runs under the same unit and machine name, and is never
    /// ours to stop, kill, reload or unlink. None when it is ours, not running, or machined
    /// cannot tell.
    async fn foreign_root(&self, conn: &Connection, name: &str) -> Option<String> {
        let machine = self.machine(conn, name).await.ok()??;
        let theirs = machine.root_directory().await.ok()?;
        let ours = self.paths.root(name);
        let ours = std::fs::canonicalize(&ours).unwrap_or(ours);
        (!theirs.is_empty() && std::path::Path::new(&theirs) != ours).then_some(theirs)
    }

    /// An error when `container@NAME` runs another conf directory's container (see
    /// [`Systemd::foreign_root`]).
    fn refuse_foreign(&self, name: &str) -> Result<()> {
        let foreign = self.block_on(async |conn| Ok(self.foreign_root(&conn, name).await))?;
        match foreign {
            Some(root) => Err(Error::Usage(format!(
                "{} runs another container named ‘{name}’ (root {root}, not {}): it belongs to \
                 another conf directory; act on it there, or give this container another name",
                unit_name(name),
                self.paths.root(name).display()
            ))),
            None => Ok(()),
        }
    }

    async fn leader_async(&self, conn: &Connection, name: &str) -> Result<Option<i32>> {
        let Some(machine) = self.machine(conn, name).await? else {
            return Ok(None);
        };
        if self.foreign_root(conn, name).await.is_some() {
            return Ok(None);
        }
        let leader = machine
            .leader()
            .await
            .map_err(|e| bus_error(&format!("reading the leader of {name}"), e))?;
        Ok(i32::try_from(leader)
            .ok()
            .filter(|pid| *pid > 0 && super::alive(Pid::from_raw(*pid))))
    }

    async fn terminate_async(&self, conn: Connection, name: &str) -> Result<()> {
        let unit = unit_name(name);
        let leader = self.leader_async(&conn, name).await?;
        let Some(leader) = leader else {
            return Err(Error::NotRunning(name.into()));
        };
        if let Ok(conf) = load_conf(&self.paths, name) {
            net::return_links(leader, &conf);
        }
        let m = machine_manager(&conn).await?;
        match m.terminate_machine(name.to_string()).await {
            Ok(()) => {}
            Err(e) if error_name(&e) == "org.freedesktop.machine1.NoSuchMachine" => {
                return Err(Error::NotRunning(name.into()));
            }
            Err(e) => return Err(bus_error(&format!("terminating machine {name}"), e)),
        }
        let deadline = Instant::now() + TERMINATE_TIMEOUT;
        // The leader first, then the unit (nspawn exits once its container is gone).
        loop {
            let leader_gone = !super::alive(Pid::from_raw(leader));
            let unit_gone = match unit_state(&conn, &unit, false).await? {
                None => true,
                Some(s) => !matches!(
                    s.active_state.as_str(),
                    "active" | "activating" | "deactivating" | "reloading"
                ),
            };
            if leader_gone && unit_gone {
                break;
            }
            if Instant::now() > deadline {
                return Err(Error::StopFailed {
                    name: name.into(),
                    detail: format!(
                        "{unit}: still running {TERMINATE_TIMEOUT:?} after TerminateMachine"
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        reset_failed(&conn, &unit).await;
        Ok(())
    }
}

impl Systemd {
    async fn reload_async(&self, conn: Connection, name: &str) -> Result<()> {
        let unit = unit_name(name);
        // The reload runs within the unit's start timeout (TimeoutStartSec).
        let timeout = timeout_from_env("NCSH_START_TIMEOUT", DEFAULT_START_TIMEOUT)?
            .saturating_add(Duration::from_secs(5));
        let outcome = run_job(&conn, &format!("reloading {unit}"), timeout, async |m| {
            m.reload_unit(unit.clone(), "replace".into()).await
        })
        .await?;
        match outcome {
            Ok(result) if result == "done" => Ok(()),
            Ok(result) => Err(Error::ReloadFailed {
                name: name.into(),
                detail: format!(
                    "{unit}: the reload job finished with result ‘{result}’{} (see `journalctl -u {unit}`)",
                    reload_detail(&conn, &unit).await
                ),
            }),
            Err(e) => Err(Error::ReloadFailed {
                name: name.into(),
                detail: format!("{unit}: systemd refused to reload it: {e}"),
            }),
        }
    }
}

/// `ncsh __reload NAME`, the ExecReload of `container@NAME.service`: switch the running
/// container to its new system ([`super::switch::run_pending`]). A failure is printed (to the
/// unit's journal) and kept for the `update` waiting on the reload job; the exit code fails the job.
pub fn reload_main(name: &str) -> i32 {
    let paths = Paths::from_env();
    let switched = crate::container::ContainerName::parse(name).and_then(|name| {
        let driver = Systemd::new(paths.clone())?;
        let leader = driver
            .find_leader(&name)?
            .ok_or_else(|| Error::NotRunning(name.to_string()))?;
        super::switch::run_pending(&paths, &name, leader, None)
    });
    match switched {
        Ok(()) => 0,
        Err(e) => {
            match e.hint() {
                Some(hint) => eprintln!("ncsh __reload {name}: {e}: {hint}"),
                None => eprintln!("ncsh __reload {name}: {e}"),
            }
            builder_switch::record_error(&paths, name, &e);
            1
        }
    }
}

/// The conf of container `name` below `paths` (for the internal entry points).
fn load_conf(paths: &Paths, name: &str) -> Result<Conf> {
    crate::container::store::load(paths, &crate::container::ContainerName::existing(name)?)
}

fn internal_result(verb: &str, name: &str, result: Result<()>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => {
            match e.hint() {
                Some(hint) => eprintln!("ncsh {verb} {name}: {e}: {hint}"),
                None => eprintln!("ncsh {verb} {name}: {e}"),
            }
            1
        }
    }
}

/// `ncsh __net-up NAME`, an ExecStartPost of `container@NAME.service`: the forwarded ports from
/// the host's loopback ([`nft::add_loopback_forwards`]).
pub fn net_up_main(name: &str) -> i32 {
    let paths = Paths::from_env();
    let result = load_conf(&paths, name).and_then(|conf| nft::add_loopback_forwards(name, &conf));
    internal_result("__net-up", name, result)
}

/// `ncsh __net-down NAME`, the ExecStopPost of `container@NAME.service`: what nspawn left of
/// its forwarded ports when it was killed, and ncsh's loopback table ([`nft::remove_forwards`]).
pub fn net_down_main(name: &str) -> i32 {
    let paths = Paths::from_env();
    let result = load_conf(&paths, name).and_then(|conf| nft::remove_forwards(name, &conf));
    internal_result("__net-down", name, result)
}

/// How long a start may take: the container's timeoutStartSec (`0` or `infinity`: no limit, as
/// systemd), else `NCSH_START_TIMEOUT`, else NixOS's 1min.
fn start_timeout(conf: &Conf) -> Result<Duration> {
    Ok(match unit::start_timeout(conf)? {
        Some(t) if t.is_zero() => super::MAX_TIMEOUT,
        Some(t) => t.min(super::MAX_TIMEOUT),
        None => timeout_from_env("NCSH_START_TIMEOUT", DEFAULT_START_TIMEOUT)?,
    })
}

/// `DeviceAllow=` of the devices the conf allows (NixOS's allowedDevices; the unit has
/// `DevicePolicy=closed`, as NixOS's).
fn device_properties(conf: &Conf) -> Result<Vec<(String, OwnedVariant)>> {
    let devices = unit::allowed_devices(conf)?;
    if devices.is_empty() {
        return Ok(Vec::new());
    }
    let entries: Vec<(String, String)> =
        devices.into_iter().map(|d| (d.node, d.modifier)).collect();
    Ok(vec![("DeviceAllow".to_string(), variant(entries)?)])
}

/// The unit properties of `limits` (those that are set).
fn limit_properties(limits: &Limits) -> Result<Vec<(String, OwnedVariant)>> {
    let mut props = Vec::new();
    if let Some(bytes) = limits.memory_max {
        props.push(("MemoryMax".to_string(), variant(bytes)?));
    }
    if let Some(tasks) = limits.tasks_max {
        props.push(("TasksMax".to_string(), variant(tasks)?));
    }
    if let Some(percent) = limits.cpu_quota {
        // CPUQuota=P% is P/100 s of CPU per second.
        props.push(("CPUQuotaPerSecUSec".to_string(), variant(percent * 10_000)?));
    }
    Ok(props)
}

/// Where ncsh puts the units that start containers at boot.
const UNIT_DIR: &str = "/etc/systemd/system";
/// The unit that starts a container at boot where no `container@.service` template exists (a
/// transient unit cannot be wanted by anything at boot).
const START_TEMPLATE: &str = "ncsh-start@.service";
const TEMPLATE_DIRS: [&str; 4] = [
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

/// `value` as one word of a unit file's `Environment=` (quoted; `%` and `\` escaped).
fn unit_word(value: &str) -> String {
    let escaped = value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%");
    format!("\"{escaped}\"")
}

/// The unit file of `ncsh-start@.service`: `ncsh start NAME` at boot (its paths come from the
/// instance's drop-in).
fn start_template(exe: &str) -> String {
    format!(
        "# Written by ncsh: starts container %i at boot (AUTO_START=1).\n\
         [Unit]\n\
         Description=Start ncsh container %i\n\
         After=network.target\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         RemainAfterExit=yes\n\
         Environment=NCSH_DRIVER=systemd\n\
         ExecStart={} start %i\n\
         \n\
         [Install]\n\
         WantedBy=machines.target\n",
        unit_word(exe)
    )
}

impl Systemd {
    /// Set the limits on the running unit (runtime only: the conf is what lasts).
    fn set_limits(&self, name: &str, limits: &Limits) -> Result<()> {
        let unit = unit_name(name);
        let props = limit_properties(limits)?;
        self.block_on(async |conn| {
            manager(&conn)
                .await?
                .set_unit_properties(unit.clone(), true, props)
                .await
                .map_err(|e| bus_error(&format!("setting the limits of {unit}"), e))
        })
    }

    /// The unit file of the `container@.service` template, if the host has one (NixOS).
    fn template_file() -> Option<std::path::PathBuf> {
        TEMPLATE_DIRS
            .iter()
            .map(|d| std::path::Path::new(d).join("container@.service"))
            .find(|p| p.exists())
    }

    /// Make (or remove) the link in `machines.target.wants` that starts `name` at boot.
    fn set_auto_start_units(&self, name: &str, enabled: bool) -> Result<()> {
        let dir = std::path::Path::new(UNIT_DIR);
        let wants = dir.join("machines.target.wants");
        let instance = format!("ncsh-start@{name}.service");
        let links = [
            wants.join(unit_name(name)),
            wants.join(&instance),
            dir.join(format!("{instance}.d")),
        ];
        let desired = if Self::template_file().is_some() {
            &links[0]
        } else {
            &links[1]
        };
        if enabled && std::fs::symlink_metadata(desired).is_ok() {
            return Ok(());
        }
        let mut changed = false;
        for link in &links {
            if std::fs::symlink_metadata(link).is_ok() {
                crate::files::remove_path(link)?;
                changed = true;
            }
        }
        if enabled {
            crate::files::ensure_dir(&wants, 0o755)?;
            match Self::template_file() {
                // NixOS: the template's instance, as its autoStart does.
                Some(template) => crate::files::replace_symlink(&template, &links[0])?,
                None => {
                    let exe = std::env::current_exe()
                        .map_err(|e| Error::io("finding the ncsh executable", e))?
                        .display()
                        .to_string();
                    let template = dir.join(START_TEMPLATE);
                    crate::files::write_atomic(&template, &start_template(&exe), 0o644)?;
                    let dropin = &links[2];
                    crate::files::ensure_dir(dropin, 0o755)?;
                    let env: String = self
                        .paths
                        .to_env()
                        .iter()
                        .map(|(key, value)| {
                            format!(
                                "Environment={}\n",
                                unit_word(&format!("{key}={}", value.display()))
                            )
                        })
                        .collect();
                    crate::files::write_atomic(
                        &dropin.join("paths.conf"),
                        &format!(
                            "# Written by ncsh: the paths of this container.\n[Service]\n{env}"
                        ),
                        0o644,
                    )?;
                    crate::files::replace_symlink(
                        std::path::Path::new(&format!("../{START_TEMPLATE}")),
                        &links[1],
                    )?;
                }
            }
            changed = true;
        }
        if changed {
            self.block_on(async |conn| {
                manager(&conn)
                    .await?
                    .reload()
                    .await
                    .map_err(|e| bus_error("reloading systemd's units", e))
            })?;
        }
        Ok(())
    }

    /// The forwarded ports of a container found down (a crash of the unit leaves them).
    fn remove_forwards(&self, name: &str) -> Result<()> {
        match load_conf(&self.paths, name) {
            Ok(conf) => nft::remove_forwards(name, &conf),
            Err(_) => nft::remove_loopback_forwards(name),
        }
    }
}

impl Driver for Systemd {
    fn name(&self) -> &'static str {
        "systemd"
    }

    fn start(&self, name: &str, conf: &Conf) -> Result<()> {
        self.refuse_foreign(name)?;
        base::ensure_skeleton(&Root::open(&self.paths.root(name))?)?;
        let limits = Limits::from_conf(conf)?;
        self.block_on(async |conn| self.start_async(conn, name, conf).await)?;
        // A template's unit has no limits of its own: set them on it (a transient one has them).
        if !limits.is_empty() && Self::template_file().is_some() {
            self.set_limits(name, &limits)?;
        }
        Ok(())
    }

    fn stop(&self, name: &str) -> Result<()> {
        self.refuse_foreign(name)?;
        let unit = unit_name(name);
        self.block_on(async |conn| match unit_state(&conn, &unit, false).await? {
            None => Ok(()),
            Some(s) if s.active_state == "inactive" => Ok(()),
            Some(_) => stop_unit(&conn, &unit, STOP_TIMEOUT).await,
        })?;
        self.remove_forwards(name)
    }

    fn terminate(&self, name: &str) -> Result<()> {
        self.refuse_foreign(name)?;
        self.block_on(async |conn| self.terminate_async(conn, name).await)?;
        self.remove_forwards(name)
    }

    fn status(&self, name: &str) -> Status {
        let unit = unit_name(name);
        let state = self.block_on(async |conn| {
            let active = unit_state(&conn, &unit, false)
                .await?
                .is_some_and(|s| s.active_state == "active");
            // Another conf directory's container of that name is not this one.
            Ok(active && self.foreign_root(&conn, name).await.is_none())
        });
        match state {
            Ok(true) => Status::Up,
            _ => Status::Down,
        }
    }

    fn reload(&self, name: &str, _switch: &dyn Fn() -> Result<()>) -> Result<()> {
        self.refuse_foreign(name)?;
        self.block_on(async |conn| self.reload_async(conn, name).await)
    }

    fn leader(&self, name: &str) -> Option<i32> {
        self.block_on(async |conn| self.leader_async(&conn, name).await)
            .ok()
            .flatten()
    }

    fn find_leader(&self, name: &str) -> Result<Option<i32>> {
        self.block_on(async |conn| self.leader_async(&conn, name).await)
    }

    /// machined's OpenMachineLogin (as `machinectl login`): it opens a pty in the container
    /// and starts `container-getty@N.service` on it through the container's own bus.
    fn login(&self, name: &str, leader: i32) -> Result<i32> {
        self.refuse_foreign(name)?;
        let master = self.block_on(async |conn| {
            let m = machine_manager(&conn).await?;
            match m.open_machine_login(name.to_string()).await {
                Ok((master, _pty)) => Ok(std::os::fd::OwnedFd::from(master)),
                Err(e) if is_service_missing(&e) => Err(Error::Machined(e.to_string())),
                Err(e) => Err(Error::Login {
                    name: name.into(),
                    detail: e.to_string(),
                }),
            }
        })?;
        pty::relay_getty(master, name, leader)
    }

    fn set_auto_start(&self, name: &str, enabled: bool) -> Result<()> {
        self.set_auto_start_units(name, enabled)
    }

    fn apply_limits(&self, name: &str, limits: &Limits) -> Result<()> {
        if limits.is_empty() || self.status(name) != Status::Up {
            return Ok(());
        }
        self.set_limits(name, limits)
    }

    fn usage(&self, name: &str) -> Result<Option<super::cgroup::Usage>> {
        if self.status(name) != Status::Up {
            return Ok(None);
        }
        let unit = unit_name(name);
        self.block_on(async |conn| {
            let Some(state) = unit_state(&conn, &unit, false).await? else {
                return Ok(None);
            };
            let service = systemd1::ServiceProxy::builder(&conn)
                .path(state.path.clone())
                .cache_properties(CacheProperties::No)
                .build()
                .await
                .map_err(|e| bus_error("service proxy", e))?;
            // systemd says u64::MAX for "not accounted".
            let known = |v: zbus::Result<u64>| v.ok().filter(|n| *n != u64::MAX);
            Ok(Some(super::cgroup::Usage {
                memory_bytes: known(service.memory_current().await),
                cpu_usec: known(service.cpu_usage_n_sec().await).map(|ns| ns / 1000),
                tasks: known(service.tasks_current().await),
            }))
        })
    }

    fn remove_runtime(&self, name: &str) -> Result<()> {
        let unit = unit_name(name);
        let foreign = self.block_on(async |conn| {
            let foreign = self.foreign_root(&conn, name).await;
            if foreign.is_none() {
                reset_failed(&conn, &unit).await;
            }
            Ok(foreign)
        })?;
        // The unit and the link of another conf directory's running container stay.
        match foreign {
            Some(_) => Ok(()),
            None => {
                net::remove_host_link(name)?;
                self.remove_forwards(name)
            }
        }
    }
}
