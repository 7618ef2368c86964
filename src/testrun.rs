//! `ncsh test FILE…`: runs test scripts written in the test driver's vocabulary
//! (`api::testdriver`), each in an engine of its own, reports each subtest as it runs and a
//! summary, writes a JUnit report, and always removes what a script made: also after an
//! uncaught error, Ctrl-C or SIGTERM (which end the script at its next step or wait).

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use rhai::{Array, Dynamic, Engine, Map, Scope};

use crate::api::INTERRUPTED;
use crate::api::docs::{api_doc, function};
use crate::api::error::describe;
use crate::api::testdriver::{self, Kept, Settings, SubtestResult};
use crate::error::Error;
use crate::manager::Manager;

/// How a run goes (the verb's flags).
#[derive(Debug, Clone)]
pub struct Options {
    pub files: Vec<PathBuf>,
    pub junit: Option<PathBuf>,
    pub keep: bool,
    pub interactive: bool,
    pub jobs: usize,
    pub timeout: Duration,
}

impl Options {
    /// From the verb's arguments and `opts` (`junit`, `keep`, `interactive`, `jobs`, `timeout`).
    pub fn new(args: &[String], opts: &Map) -> Result<Options, Error> {
        let text = |key: &str| opts.get(key).map(|v| v.to_string());
        let flag = |key: &str| opts.get(key).is_some_and(|v| v.as_bool().unwrap_or(false));
        let jobs = match text("jobs") {
            None => 1,
            Some(j) => j
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=64).contains(n))
                .ok_or_else(|| {
                    Error::Usage(format!("-j {j}: give a number of jobs from 1 to 64"))
                })?,
        };
        let timeout = match text("timeout") {
            None => testdriver::DEFAULT_TIMEOUT,
            Some(t) => t
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "--timeout {t}: give a number of seconds such as 60"
                    ))
                })?,
        };
        let options = Options {
            files: args.iter().map(PathBuf::from).collect(),
            junit: text("junit").map(PathBuf::from),
            keep: flag("keep"),
            interactive: flag("interactive"),
            jobs,
            timeout,
        };
        if options.files.is_empty() {
            return Err(Error::Usage(
                "no test file given: ncsh test FILE.rhai [FILE…]".into(),
            ));
        }
        if options.interactive && options.files.len() > 1 {
            return Err(Error::Usage("--interactive takes one test file".into()));
        }
        Ok(options)
    }
}

/// The signal that ended the run (SIGINT or SIGTERM), 0 for none.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    SIGNAL.store(signal, Ordering::Relaxed);
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Ctrl-C, SIGTERM and SIGHUP end the scripts at their next step instead of killing ncsh, so that
/// their nodes are removed.
fn catch_signals() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    // SIGTERM and SIGHUP (the terminal went away) interrupt blocking reads (no SA_RESTART):
    // the REPL of --interactive ends too.
    for (signal, flags) in [
        (Signal::SIGINT, SaFlags::SA_RESTART),
        (Signal::SIGTERM, SaFlags::empty()),
        (Signal::SIGHUP, SaFlags::empty()),
    ] {
        let action = SigAction::new(SigHandler::Handler(on_signal), flags, SigSet::empty());
        // SAFETY: the handler only stores to atomics, which is async-signal-safe.
        if let Err(e) = unsafe { sigaction(signal, &action) } {
            eprintln!("ncsh: cannot catch {signal}: {e}");
        }
    }
}

/// What one file's run came to.
struct FileReport {
    file: String,
    cases: Vec<SubtestResult>,
}

impl FileReport {
    fn failed(&self) -> usize {
        self.cases.iter().filter(|c| c.failure.is_some()).count()
    }
}

/// Register `run_tests(args, opts) -> int` for the `test` verb.
pub fn register(engine: &mut Engine, manager: Rc<Manager>) {
    function(
        "run_tests",
        api_doc!(
            "run_tests(files: array, opts: map) -> int",
            "Run test scripts as `ncsh test` does; the exit status."
        ),
    )
    .register_into_engine(engine, move |files: Array, opts: Map| -> i64 {
        let args: Vec<String> = files.iter().map(|f| f.to_string()).collect();
        match Options::new(&args, &opts) {
            Ok(options) => i64::from(run(manager.clone(), &options)),
            Err(e) => {
                let hint = e.hint().map(|h| format!(": {h}")).unwrap_or_default();
                eprintln!("ncsh: {e}{hint}");
                1
            }
        }
    });
}

/// Run every file; the exit status: 0 when all passed, 1 when any failed, 128+signal when a
/// signal ended the run.
pub fn run(manager: Rc<Manager>, options: &Options) -> i32 {
    catch_signals();
    let start = Instant::now();
    let reports = if options.jobs > 1 && options.files.len() > 1 {
        run_parallel(&manager, options)
    } else {
        options
            .files
            .iter()
            .map(|file| run_file(manager.clone(), file, options, String::new()))
            .collect()
    };
    let failed: usize = reports.iter().map(FileReport::failed).sum();
    let passed: usize = reports.iter().map(|r| r.cases.len()).sum::<usize>() - failed;
    println!(
        "{passed} passed, {failed} failed ({:.2} s)",
        start.elapsed().as_secs_f64()
    );
    crate::host::phase("test: summary printed");
    let mut status = i32::from(failed > 0);
    if let Some(path) = &options.junit
        && let Err(e) = crate::files::write_atomic(path, &junit(&reports), 0o644)
    {
        eprintln!("ncsh: writing the JUnit report: {e}");
        status = 1;
    }
    match SIGNAL.load(Ordering::Relaxed) {
        0 => status,
        signal => 128 + signal,
    }
}

/// `-j N`: N threads take the files in turn, each with a manager and engines of its own.
fn run_parallel(manager: &Manager, options: &Options) -> Vec<FileReport> {
    let queue = std::sync::Mutex::new(options.files.iter().enumerate().collect::<Vec<_>>());
    let done = std::sync::Mutex::new(Vec::new());
    let (paths, personality, driver) = (
        manager.paths.clone(),
        manager.personality,
        manager.driver_name(),
    );
    std::thread::scope(|scope| {
        for _ in 0..options.jobs.min(options.files.len()) {
            scope.spawn(|| {
                loop {
                    let next = queue
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .pop();
                    let Some((index, file)) = next else { break };
                    let label = format!("[{}] ", file.display());
                    let report = match crate::host::select(Some(driver), paths.clone()) {
                        Ok(d) => {
                            let manager = Rc::new(Manager::new(
                                paths.clone(),
                                personality,
                                Box::new(crate::engine::nixos::select_builder),
                                d,
                            ));
                            run_file(manager, file, options, label)
                        }
                        Err(e) => failed_file(file, &e.to_string()),
                    };
                    done.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push((index, report));
                }
            });
        }
    });
    let mut done = done
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

fn failed_file(file: &Path, why: &str) -> FileReport {
    let text = format!("{}: {why}", file.display());
    println!("FAILED {text}");
    FileReport {
        file: file.display().to_string(),
        cases: vec![SubtestResult {
            name: file.display().to_string(),
            seconds: 0.0,
            failure: Some(text),
        }],
    }
}

/// Run one script; whatever happens, remove what it made (unless `--keep` and it failed).
fn run_file(manager: Rc<Manager>, file: &Path, options: &Options, label: String) -> FileReport {
    let shown = file.display().to_string();
    let mut settings = match Settings::new(file, options.timeout) {
        Ok(settings) => settings,
        Err(e) => return failed_file(file, &e.to_string()),
    };
    settings.label = label;
    settings.skip_subtests = options.interactive;
    testdriver::begin(settings);
    testdriver::report(&format!("test {shown}"));
    let start = Instant::now();
    let source = match std::fs::read_to_string(file) {
        Ok(source) => source,
        Err(e) => return failed_file(file, &format!("cannot read it: {e}")),
    };
    let mut engine = crate::engine::new_engine(manager.clone());
    engine.on_progress(|_| {
        INTERRUPTED
            .load(Ordering::Relaxed)
            .then(|| Dynamic::from("interrupted"))
    });
    let mut scope = Scope::new();
    scope.push("args", Array::new());
    let mut opts = Map::new();
    opts.insert("script".into(), Dynamic::from(shown.clone()));
    scope.push("opts", opts);
    let outcome = engine
        .compile(crate::engine::strip_shebang(&source))
        .map_err(Box::<rhai::EvalAltResult>::from)
        .and_then(|ast| engine.run_ast_with_scope(&mut scope, &ast));
    let mut cases = testdriver::results();
    // An error outside any subtest (or a signal) fails the file as a case of its own.
    let script_failure = match &outcome {
        Ok(()) => None,
        Err(_) if INTERRUPTED.load(Ordering::Relaxed) => Some(format!(
            "{shown}: interrupted by {}",
            match SIGNAL.load(Ordering::Relaxed) {
                libc::SIGTERM => "SIGTERM",
                libc::SIGHUP => "SIGHUP",
                _ => "Ctrl-C",
            }
        )),
        Err(err) if testdriver::subtest_error_text(err).is_some() => None,
        Err(err) => {
            let failure = describe(err);
            match failure.exit {
                Some(0) => None,
                Some(code) => Some(format!("{shown}: exit({code})")),
                None => {
                    let hint = failure.hint.map(|h| format!(": {h}")).unwrap_or_default();
                    Some(format!(
                        "{shown}:{}:{}: {}{hint}",
                        failure.position.line().unwrap_or(0),
                        failure.position.position().unwrap_or(0),
                        failure.message
                    ))
                }
            }
        }
    };
    if let Some(text) = &script_failure {
        testdriver::report(&format!("FAILED {text}"));
    }
    let subtest_failed = cases.iter().any(|c| c.failure.is_some());
    // A signal that ended a subtest is that subtest's failure, not one more.
    if (script_failure.is_some() && !subtest_failed) || cases.is_empty() {
        cases.push(SubtestResult {
            name: shown.clone(),
            seconds: start.elapsed().as_secs_f64(),
            failure: script_failure.clone(),
        });
    }
    let failed = subtest_failed || script_failure.is_some();
    if options.interactive && !INTERRUPTED.load(Ordering::Relaxed) {
        let bindings = bindings(&scope);
        let names: Vec<&str> = bindings.iter().map(|(n, _)| n.as_str()).collect();
        println!("the nodes are up; bound: {}", names.join(", "));
        let watcher = SignalWatcher::start(&manager, options.keep && failed);
        crate::repl::interactive_with(manager.clone(), bindings);
        watcher.stop();
        INTERRUPTED.store(false, Ordering::Relaxed);
    }
    let (kept, errors) = testdriver::teardown(options.keep && failed);
    for error in errors {
        testdriver::report(&format!("ncsh: {error}"));
    }
    for test in kept {
        report_kept(&test);
    }
    FileReport { file: shown, cases }
}

/// While the REPL of `--interactive` reads a line (a read SIGTERM does not end), a thread
/// that waits for SIGTERM or SIGHUP, then removes the run's nodes itself and exits.
struct SignalWatcher {
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SignalWatcher {
    fn start(manager: &Manager, keep: bool) -> SignalWatcher {
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let made = testdriver::inventory();
        let (paths, personality, driver) = (
            manager.paths.clone(),
            manager.personality,
            manager.driver_name(),
        );
        let stop = done.clone();
        let thread = std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let signal = SIGNAL.load(Ordering::Relaxed);
                if matches!(signal, libc::SIGTERM | libc::SIGHUP) {
                    if !keep {
                        remove_from_thread(paths, personality, driver, &made);
                    }
                    eprintln!("ncsh: ended by signal {signal}");
                    std::process::exit(128 + signal);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        SignalWatcher {
            done,
            thread: Some(thread),
        }
    }

    fn stop(mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Remove what `made` lists with a manager of this thread's own.
fn remove_from_thread(
    paths: crate::container::Paths,
    personality: crate::manager::Personality,
    driver: &'static str,
    made: &[Kept],
) {
    let driver = match crate::host::select(Some(driver), paths.clone()) {
        Ok(driver) => driver,
        Err(e) => return eprintln!("ncsh: cannot remove the test's nodes: {e}"),
    };
    let no_builder: crate::manager::BuilderChoice =
        Box::new(|| Err(Error::Unsupported("removing nodes builds nothing".into())));
    let manager = Manager::new(paths, personality, no_builder, driver);
    for test in made {
        for error in testdriver::remove_made(&manager, test) {
            eprintln!("ncsh: {error}");
        }
    }
}

/// The REPL's variables for `--interactive`: each Test of the script's scope, and its nodes
/// by name.
fn bindings(scope: &Scope) -> Vec<(String, Dynamic)> {
    let mut out: Vec<(String, Dynamic)> = Vec::new();
    for (name, _, value) in scope.iter() {
        if value.is::<testdriver::Test>() {
            out.push((name.to_string(), value.clone()));
            if let Some(nodes) = value
                .clone()
                .try_cast::<testdriver::Test>()
                .map(|t| t.node_map())
            {
                for (node, container) in nodes {
                    out.push((node.to_string(), container));
                }
            }
        }
    }
    out
}

fn report_kept(test: &Kept) {
    let mut lines = vec!["kept the failed test's nodes:".to_string()];
    for (node, name) in &test.nodes {
        lines.push(format!(
            "  {node}: container {name}: enter it with `ncsh root-login {name}`"
        ));
    }
    let destroys: Vec<String> = test
        .nodes
        .iter()
        .map(|(_, name)| format!("ncsh destroy {name}"))
        .collect();
    lines.push(format!(
        "  remove them with: {}; ip link del {}; rm -r {}",
        destroys.join("; "),
        test.bridge,
        test.scratch.display()
    ));
    testdriver::report(&lines.join("\n"));
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 has no other control characters.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// A JUnit XML report: a testsuite per file, a testcase per subtest.
fn junit(reports: &[FileReport]) -> String {
    let total: usize = reports.iter().map(|r| r.cases.len()).sum();
    let failed: usize = reports.iter().map(FileReport::failed).sum();
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"ncsh test\" tests=\"{total}\" failures=\"{failed}\">\n"
    );
    for report in reports {
        let seconds: f64 = report.cases.iter().map(|c| c.seconds).sum();
        xml.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" time=\"{seconds:.3}\">\n",
            xml_escape(&report.file),
            report.cases.len(),
            report.failed()
        ));
        for case in &report.cases {
            let head = format!(
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                xml_escape(&report.file),
                xml_escape(&case.name),
                case.seconds
            );
            match &case.failure {
                None => xml.push_str(&format!("{head}/>\n")),
                Some(text) => {
                    let first = text.lines().next().unwrap_or_default();
                    xml.push_str(&format!(
                        "{head}>\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                        xml_escape(first),
                        xml_escape(text)
                    ));
                }
            }
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_has_a_testcase_per_subtest_and_escapes_text() {
        let reports = [FileReport {
            file: "a<b>.rhai".into(),
            cases: vec![
                SubtestResult {
                    name: "ok".into(),
                    seconds: 1.5,
                    failure: None,
                },
                SubtestResult {
                    name: "bad \"one\"".into(),
                    seconds: 0.25,
                    failure: Some("x.rhai:3:5: boom & <more>\nline 2".into()),
                },
            ],
        }];
        let xml = junit(&reports);
        assert!(
            xml.contains("<testsuites name=\"ncsh test\" tests=\"2\" failures=\"1\">"),
            "{xml}"
        );
        assert!(
            xml.contains(
                "<testsuite name=\"a&lt;b&gt;.rhai\" tests=\"2\" failures=\"1\" time=\"1.750\">"
            ),
            "{xml}"
        );
        assert!(xml.contains("name=\"ok\" time=\"1.500\"/>"), "{xml}");
        assert!(xml.contains("name=\"bad &quot;one&quot;\" time=\"0.250\">\n      <failure message=\"x.rhai:3:5: boom &amp; &lt;more&gt;\">x.rhai:3:5: boom &amp; &lt;more&gt;\nline 2</failure>"), "{xml}");
    }

    #[test]
    fn options_are_checked() {
        let mut opts = Map::new();
        opts.insert("jobs".into(), Dynamic::from("0"));
        let e = Options::new(&["a.rhai".into()], &opts).unwrap_err();
        assert!(e.to_string().contains("-j 0"), "{e}");
        let e = Options::new(&[], &Map::new()).unwrap_err();
        assert!(e.to_string().contains("no test file"), "{e}");
        let mut opts = Map::new();
        opts.insert("timeout".into(), Dynamic::from("2.5"));
        opts.insert("keep".into(), Dynamic::from(true));
        let o = Options::new(&["a.rhai".into()], &opts).unwrap();
        assert_eq!(o.timeout, Duration::from_millis(2500));
        assert!(o.keep && !o.interactive && o.jobs == 1);
    }
}
