//! The Rhai API over a manager with the fake driver: what scripts see, and what reaches the
//! driver. The real drivers behind the same API are covered by the integration tests.

use std::rc::Rc;

use rhai::{Array, Dynamic};

use crate::builder::Builder;
use crate::builder::generation::Generation;
use crate::builder::native::{NativeBuilder, OptionModules};
use crate::builder::options::Declarations;
use crate::builder::plain::Value;
use crate::container::Paths;
use crate::error::Result;
use crate::host::fake::{FakeDriver, Log};
use crate::manager::{Manager, Personality};

/// Option modules that realize every configuration as the empty system.
struct NoModules;

impl OptionModules for NoModules {
    /// Any option (a top-level `<name>` of any type).
    fn declarations(&self) -> Result<Declarations> {
        Ok(Declarations::accepting_anything())
    }

    fn realize(
        &self,
        _name: &str,
        _config: &Value,
        _store: &crate::nixlang::Written,
    ) -> Result<Generation> {
        Ok(Generation::default())
    }
}

fn engine() -> Option<(tempfile::TempDir, rhai::Engine, Rc<Log>)> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: the manager's operations need root");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let (driver, log) = FakeDriver::new();
    let builder = || Ok(Box::new(NativeBuilder::new(Box::new(NoModules))) as Box<dyn Builder>);
    let manager = Manager::new(
        Paths::under(dir.path()),
        Personality::Ncsh,
        Box::new(builder),
        Box::new(driver),
    );
    let mut engine = rhai::Engine::new();
    super::register(&mut engine, Rc::new(manager));
    Some((dir, engine, log))
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

#[test]
fn create_and_update_share_one_option_parser_that_refuses_unused_keys() {
    let Some((_dir, engine, log)) = engine() else {
        return;
    };
    let error = |script: &str| -> String {
        let wrapped =
            format!("let m = \"no error\"; try {{ {script} }} catch (e) {{ m = `${{e}}`; }} m");
        engine.eval::<String>(&wrapped).unwrap()
    };
    engine.run(r#"create("web");"#).unwrap();
    let message = error(r#"container("web").update(#{ bridge: "br0" });"#);
    assert!(
        message.contains("unknown update option ‘bridge’")
            && message.contains("known: config, config_file, system_path"),
        "{message}"
    );
    let message = error(r#"create("other", #{ colour: "red" });"#);
    assert!(
        message.contains("unknown create option ‘colour’") && message.contains("host_address"),
        "{message}"
    );
    for verb in [r#"create("third", "#, r#"container("web").update("#] {
        let message = error(&format!(
            r#"{verb}#{{ config: "a = 1;", config_file: "/etc/hostname" }});"#
        ));
        assert!(message.contains("--config-file"), "{message}");
    }
    let message = error(r#"container("web").update(#{ config_file: "/nonexistent.nix" });"#);
    assert!(message.contains("no such file"), "{message}");
    assert!(
        !engine
            .eval::<bool>(r#"exists("other") || exists("third")"#)
            .unwrap()
    );
    assert!(log.calls().is_empty());
}
