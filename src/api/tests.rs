//! The Rhai API over a manager with the fake driver: what scripts see, and what reaches the
//! driver. The real drivers behind the same API are covered by the integration tests.

use std::rc::Rc;

use rhai::{Array, Dynamic};

use crate::builder::Builder;
use crate::builder::native::NativeBuilder;
use crate::container::Paths;
use crate::engine::nixos::RhaiModules;
use crate::host::fake::{FakeDriver, Log};
use crate::manager::{Manager, Personality};

fn engine() -> Option<(tempfile::TempDir, rhai::Engine, Rc<Log>)> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: the manager's operations need root");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let (driver, log) = FakeDriver::new();
    let builder = || {
        let modules = RhaiModules::with_module_dirs(Vec::new());
        Ok(Box::new(NativeBuilder::new(Box::new(modules))) as Box<dyn Builder>)
    };
    let manager = Manager::new(
        Paths::under(dir.path()),
        Personality::Ncsh,
        Box::new(builder),
        Box::new(driver),
    );
    Some((dir, crate::engine::new_engine(Rc::new(manager)), log))
}

#[test]
fn a_script_creates_starts_and_stops_through_the_driver() {
    let Some((_dir, engine, log)) = engine() else {
        return;
    };
    let out: Array = engine
        .eval(
            r#"
            let c = create("web", #{ config: "services.httpd.enable = true;" });
            c.start();
            let up = c.status;
            c.stop();
            [c.name, c.ip, up, c.status, exists("web"), exists("nope"), containers().len()]
            "#,
        )
        .unwrap();
    let out: Vec<String> = out.iter().map(Dynamic::to_string).collect();
    assert_eq!(
        out,
        ["web", "10.233.1.2", "up", "down", "true", "false", "1"]
    );
    assert_eq!(log.calls(), ["start web 10.233.1.2", "stop web"]);
}

#[test]
fn errors_reach_scripts_as_catchable_messages_and_change_nothing() {
    let Some((_dir, engine, log)) = engine() else {
        return;
    };
    let message: String = engine
        .eval(
            r#"
            let m = "no error";
            try { container("nope").start(); } catch (e) { m = `${e}`; }
            m
            "#,
        )
        .unwrap();
    assert!(message.contains("nope"), "{message}");
    let message: String = engine
        .eval(r#"let m = "no error"; try { create("bad_name"); } catch (e) { m = `${e}`; } m"#)
        .unwrap();
    assert!(message.contains("bad_name"), "{message}");
    assert!(log.calls().is_empty());
}
