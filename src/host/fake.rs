//! A driver for unit tests of the layers above the host: it records every call and keeps a
//! container's state in memory. The real drivers are covered by the integration tests.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::rc::Rc;

use super::{Driver, Status};
use crate::container::Conf;
use crate::error::{Error, Result};

/// What the fake driver was asked to do, in order, and what it holds.
#[derive(Default)]
pub struct Log {
    pub calls: RefCell<Vec<String>>,
    running: RefCell<BTreeSet<String>>,
    /// Make every reload fail (a switch that failed inside).
    pub fail_reload: Cell<bool>,
}

impl Log {
    pub fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }

    fn record(&self, call: String) {
        self.calls.borrow_mut().push(call);
    }
}

pub struct FakeDriver(Rc<Log>);

impl FakeDriver {
    /// A driver and the log it writes to.
    pub fn new() -> (FakeDriver, Rc<Log>) {
        let log = Rc::new(Log::default());
        (FakeDriver(log.clone()), log)
    }
}

impl Driver for FakeDriver {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn start(&self, name: &str, conf: &Conf) -> Result<()> {
        let address = conf.non_empty("LOCAL_ADDRESS").unwrap_or_default();
        self.0.record(format!("start {name} {address}"));
        self.0.running.borrow_mut().insert(name.to_string());
        Ok(())
    }

    fn stop(&self, name: &str) -> Result<()> {
        self.0.record(format!("stop {name}"));
        self.0.running.borrow_mut().remove(name);
        Ok(())
    }

    fn terminate(&self, name: &str) -> Result<()> {
        self.0.record(format!("terminate {name}"));
        if self.0.running.borrow_mut().remove(name) {
            Ok(())
        } else {
            Err(Error::NotRunning(name.to_string()))
        }
    }

    fn status(&self, name: &str) -> Status {
        if self.0.running.borrow().contains(name) {
            Status::Up
        } else {
            Status::Down
        }
    }

    fn reload(&self, name: &str, _switch: &dyn Fn() -> Result<()>) -> Result<()> {
        self.0.record(format!("reload {name}"));
        if self.0.fail_reload.get() {
            return Err(Error::ReloadFailed {
                name: name.to_string(),
                detail: "the fake switch failed".into(),
            });
        }
        Ok(())
    }

    fn leader(&self, name: &str) -> Option<i32> {
        self.0.running.borrow().contains(name).then_some(1)
    }

    fn remove_runtime(&self, name: &str) -> Result<()> {
        self.0.record(format!("remove_runtime {name}"));
        Ok(())
    }
}
