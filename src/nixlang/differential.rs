//! The differential test: every case in `tests/nix/corpus/*.cases` is evaluated by ncsh's
//! evaluator ([`eval_json`]) and by `nix-instantiate --eval --strict --json`, and the two must
//! agree: the same JSON value, or both an error (messages are not compared). The format of the
//! corpus and how to run one case are in `tests/nix/README.md`.
//!
//! The Nix side runs in a few threads beside the ncsh side, so the whole corpus takes seconds.
//! Every difference is collected and reported at the end, with the count.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};
use std::thread;
use std::time::Duration;

use serde_json::{Number, Value};

use super::eval_json;

/// Runs only the cases whose name contains this variable's value.
const FILTER_VAR: &str = "NCSH_CORPUS_FILTER";
/// When set (to anything), names each case on stderr before ncsh evaluates it: a crash that
/// takes the test process down (a stack overflow) then shows which case it was.
const VERBOSE_VAR: &str = "NCSH_CORPUS_VERBOSE";
const NIX_INSTANTIATE: &str = "nix-instantiate";
/// Threads that run `nix-instantiate` (the machine is small and shared).
const NIX_THREADS: usize = 3;
/// A case that takes longer than this in ncsh is reported as a difference (and left running).
const NCSH_TIMEOUT: Duration = Duration::from_secs(10);
/// Stack for the thread that evaluates one case in ncsh (deep but finite recursion must not
/// overflow where Nix, with its 8 MiB main stack and heap-allocated thunks, succeeds).
const NCSH_STACK: usize = 64 * 1024 * 1024;
/// How much of a value or message a report shows.
const SHOW_CHARS: usize = 300;
/// How many lines of an expression a report shows.
const SHOW_LINES: usize = 3;

/// One case of the corpus.
#[derive(Debug, Clone, PartialEq)]
struct Case {
    /// The file name (`strings.cases`).
    file: String,
    /// The case's name, from its `#== NAME` line.
    name: String,
    /// The line of the `#== NAME` line (1-based).
    line: usize,
    /// The expression: every line after the `#==` line up to the next one or the end.
    expr: String,
}

/// What one evaluator made of one case.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// It succeeded with this JSON value.
    Value(Value),
    /// It failed (the message, shown in the report only).
    Failed(String),
    /// The harness could not get an answer: ncsh panicked or hung, nix printed something that
    /// is not JSON. Always a difference.
    Broken(String),
}

/// Splits one `.cases` file into its cases. `#== NAME` starts a case; lines before the first
/// one are a comment. A malformed file is an error naming the file and line.
fn parse_cases(file: &str, text: &str) -> Result<Vec<Case>, String> {
    let mut cases: Vec<Case> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        if let Some(name) = line.strip_prefix("#== ") {
            let name = name.trim();
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(format!(
                    "{file}:{line_no}: a case name must be one word without spaces, not {name:?}"
                ));
            }
            cases.push(Case {
                file: file.to_string(),
                name: name.to_string(),
                line: line_no,
                expr: String::new(),
            });
        } else if line.starts_with("#==") {
            return Err(format!(
                "{file}:{line_no}: a case starts with \"#== NAME\" (one space after #==), not {line:?}"
            ));
        } else if let Some(case) = cases.last_mut() {
            case.expr.push_str(line);
            case.expr.push('\n');
        }
    }
    if cases.is_empty() {
        return Err(format!(
            "{file}: no case in it (a case starts with a \"#== NAME\" line)"
        ));
    }
    if let Some(empty) = cases.iter().find(|c| c.expr.trim().is_empty()) {
        return Err(format!(
            "{file}:{}: case {} has no expression",
            empty.line, empty.name
        ));
    }
    Ok(cases)
}

/// Reads every `*.cases` file of `dir` (sorted by name). Problems (an unreadable or malformed
/// file, a name used twice in the corpus) are collected in the second list.
fn load_corpus(dir: &Path) -> Result<(Vec<Case>, Vec<String>), String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "cases"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    let mut problems = Vec::new();
    let mut seen: HashMap<String, (String, usize)> = HashMap::new();
    for path in &files {
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                problems.push(format!("{file}: cannot read it: {e}"));
                continue;
            }
        };
        match parse_cases(&file, &text) {
            Ok(parsed) => {
                for case in parsed {
                    if let Some((other_file, other_line)) = seen.get(&case.name) {
                        problems.push(format!(
                            "{}:{}: case name {} is already used at {other_file}:{other_line}",
                            case.file, case.line, case.name
                        ));
                        continue;
                    }
                    seen.insert(case.name.clone(), (case.file.clone(), case.line));
                    cases.push(case);
                }
            }
            Err(problem) => problems.push(problem),
        }
    }
    Ok((cases, problems))
}

/// Formats `x` as C's `printf("%g")` does (6 significant digits, trailing zeros dropped,
/// exponent form below 1e-4 and from 1e6): Nix 2.8 prints floats in its JSON output that way
/// (1.0 as `1`, 1.0/3 as `0.333333`).
fn format_g(x: f64) -> String {
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    if !x.is_finite() {
        return x.to_string();
    }
    fn trim(s: &str) -> &str {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.')
        } else {
            s
        }
    }
    let sci = format!("{x:.5e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if !(-4..6).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exponent.abs())
    } else {
        let decimals = usize::try_from(5 - exponent).unwrap_or(0);
        trim(&format!("{x:.decimals$}")).to_string()
    }
}

/// `value` with every float replaced by the number Nix's JSON output would show for it: Nix 2.8
/// prints a float with `%g`, so in its output a float with an integral value (`1.0`) is the
/// integer `1`, and only 6 significant digits are kept. Both sides are compared in this form.
fn as_nix_prints(value: &Value) -> Value {
    match value {
        Value::Number(n) if n.is_f64() => {
            let printed = n.as_f64().map(format_g).unwrap_or_default();
            serde_json::from_str::<Number>(&printed)
                .map(Value::Number)
                .unwrap_or_else(|_| value.clone())
        }
        Value::Array(items) => Value::Array(items.iter().map(as_nix_prints).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), as_nix_prints(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The text given to `nix-instantiate -E`: its argument parser takes a leading `-` for a flag
/// (and knows no `--`), so such an expression gets a leading space.
fn nix_argument(expr: &str) -> String {
    if expr.starts_with('-') {
        format!(" {expr}")
    } else {
        expr.to_string()
    }
}

/// A `nix-instantiate` command for `expr`: argv only, run in `dir`, without `NIX_PATH`, with a
/// store that needs nothing written.
fn nix_command(expr: &str, dir: &Path) -> Command {
    let mut command = Command::new(NIX_INSTANTIATE);
    command
        .args(["--eval", "--strict", "--json", "--store", "dummy://", "-E"])
        .arg(nix_argument(expr))
        .current_dir(dir)
        .env_remove("NIX_PATH")
        .stdin(Stdio::null());
    command
}

/// The first line of Nix's error (its stderr also has warnings and a source excerpt).
fn nix_error_line(stderr: &str) -> String {
    stderr
        .lines()
        .find(|l| l.starts_with("error"))
        .or_else(|| stderr.lines().find(|l| !l.trim().is_empty()))
        .unwrap_or("(no message)")
        .to_string()
}

/// Evaluates `expr` with nix-instantiate. `Err` only when nix-instantiate cannot be run at all.
fn run_nix(expr: &str, dir: &Path) -> Result<Outcome, String> {
    let output = nix_command(expr, dir)
        .output()
        .map_err(|e| format!("cannot run {NIX_INSTANTIATE}: {e}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Ok(Outcome::Failed(nix_error_line(&stderr)));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    Ok(match serde_json::from_str::<Value>(&stdout) {
        Ok(value) => Outcome::Value(value),
        Err(e) => Outcome::Broken(format!(
            "nix printed something that is not JSON ({e}): {stdout}"
        )),
    })
}

/// Fails the test unless nix-instantiate can be run: without it nothing is compared, and a
/// test that compares nothing must not pass.
fn check_nix_installed() {
    let found = Command::new(NIX_INSTANTIATE)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if let Err(e) = found {
        panic!(
            "the differential test needs {NIX_INSTANTIATE} (Nix 2.8) and cannot run it ({e}); \
             scripts/setup-debian.sh installs it (Debian package nix-bin)"
        );
    }
}

/// The text of a panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_string()
    }
}

/// Evaluates `case` with ncsh in a thread of its own (a big stack, a panic caught, a hang cut
/// off after [`NCSH_TIMEOUT`]).
fn run_ncsh(case: &Case, dir: &Path) -> Outcome {
    let (sender, receiver) = mpsc::channel();
    let expr = case.expr.clone();
    let base = dir.to_path_buf();
    let spawned = thread::Builder::new()
        .name(format!("ncsh {}", case.name))
        .stack_size(NCSH_STACK)
        .spawn(move || {
            let result = panic::catch_unwind(AssertUnwindSafe(|| eval_json(&expr, &base)));
            let outcome = match result {
                Ok(Ok(value)) => Outcome::Value(value),
                Ok(Err(e)) => Outcome::Failed(e.to_string()),
                Err(payload) => {
                    Outcome::Broken(format!("ncsh panicked: {}", panic_message(&*payload)))
                }
            };
            // The receiver is gone only after a timeout; then nobody wants the answer.
            let _ = sender.send(outcome);
        });
    if let Err(e) = spawned {
        return Outcome::Broken(format!("cannot start a thread for ncsh: {e}"));
    }
    match receiver.recv_timeout(NCSH_TIMEOUT) {
        Ok(outcome) => outcome,
        Err(_) => Outcome::Broken(format!(
            "ncsh did not finish within {} s (the evaluation is left running)",
            NCSH_TIMEOUT.as_secs()
        )),
    }
}

/// Whether the two outcomes agree: equal values (as Nix prints them), or both failed.
fn agree(nix: &Outcome, ncsh: &Outcome) -> bool {
    match (nix, ncsh) {
        (Outcome::Value(a), Outcome::Value(b)) => as_nix_prints(a) == as_nix_prints(b),
        (Outcome::Failed(_), Outcome::Failed(_)) => true,
        _ => false,
    }
}

fn shorten(text: &str) -> String {
    let mut chars = text.chars();
    let shown: String = chars.by_ref().take(SHOW_CHARS).collect();
    if chars.next().is_some() {
        format!("{shown}…")
    } else {
        shown
    }
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Value(value) => shorten(&serde_json::to_string(value).unwrap_or_default()),
        Outcome::Failed(message) => shorten(&format!("fails: {message}")),
        Outcome::Broken(message) => shorten(message),
    }
}

/// One entry of the final report.
fn report_difference(out: &mut String, case: &Case, nix: &Outcome, ncsh: &Outcome) {
    let _ = writeln!(out, "--- {}:{} {}", case.file, case.line, case.name);
    let lines: Vec<&str> = case.expr.lines().collect();
    for (i, line) in lines.iter().take(SHOW_LINES).enumerate() {
        let label = if i == 0 { "expr:" } else { "     " };
        let _ = writeln!(out, "    {label} {line}");
    }
    if lines.len() > SHOW_LINES {
        let _ = writeln!(out, "          … ({} lines in all)", lines.len());
    }
    let _ = writeln!(out, "    nix:  {}", describe(nix));
    let _ = writeln!(out, "    ncsh: {}", describe(ncsh));
}

/// Runs the cases through nix-instantiate in [`NIX_THREADS`] threads and through ncsh in this
/// one, at the same time. `Err` when nix-instantiate could not be run.
fn evaluate_all(cases: &[Case], dir: &Path) -> Result<Vec<(Outcome, Outcome)>, String> {
    let next = AtomicUsize::new(0);
    let nix_results: Mutex<Vec<Option<Result<Outcome, String>>>> =
        Mutex::new(vec![None; cases.len()]);
    let verbose = std::env::var_os(VERBOSE_VAR).is_some();
    let ncsh_results: Vec<Outcome> = thread::scope(|scope| {
        for _ in 0..NIX_THREADS.min(cases.len()) {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(case) = cases.get(index) else { break };
                    let result = run_nix(&case.expr, dir);
                    if let Ok(mut results) = nix_results.lock() {
                        results[index] = Some(result);
                    }
                }
            });
        }
        cases
            .iter()
            .map(|case| {
                if verbose {
                    // Straight to stderr, not through the test's captured output: it must be
                    // seen even when the process dies.
                    let _ = writeln!(
                        std::io::stderr(),
                        "differential: ncsh evaluates {}",
                        case.name
                    );
                }
                run_ncsh(case, dir)
            })
            .collect()
    });
    let nix_results = nix_results
        .into_inner()
        .map_err(|_| "a nix-instantiate thread panicked".to_string())?;
    nix_results
        .into_iter()
        .zip(ncsh_results)
        .map(|(nix, ncsh)| match nix {
            Some(Ok(nix)) => Ok((nix, ncsh)),
            Some(Err(e)) => Err(e),
            None => Err("a case was not run through nix-instantiate".to_string()),
        })
        .collect()
}

#[test]
fn corpus_agrees_with_nix() {
    check_nix_installed();
    let declared = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nix/corpus");
    // Both sides see the same absolute paths (nix-instantiate resolves its current directory).
    let dir = declared
        .canonicalize()
        .unwrap_or_else(|e| panic!("the corpus {} is not there: {e}", declared.display()));
    let (all_cases, problems) = load_corpus(&dir).unwrap_or_else(|e| panic!("{e}"));
    let filter = std::env::var(FILTER_VAR).unwrap_or_default();
    let cases: Vec<Case> = all_cases
        .into_iter()
        .filter(|case| case.name.contains(filter.as_str()))
        .collect();
    if cases.is_empty() {
        let mut message = format!(
            "no case to run in {} (filter {FILTER_VAR}={filter:?})",
            dir.display()
        );
        for problem in &problems {
            let _ = write!(message, "\n{problem}");
        }
        panic!("{message}");
    }
    let results = evaluate_all(&cases, &dir).unwrap_or_else(|e| panic!("{e}"));

    let mut report = String::new();
    let mut differ = 0;
    for (case, (nix, ncsh)) in cases.iter().zip(&results) {
        if !agree(nix, ncsh) {
            differ += 1;
            report_difference(&mut report, case, nix, ncsh);
        }
    }
    if !problems.is_empty() {
        let _ = writeln!(report, "--- the corpus itself:");
        for problem in &problems {
            let _ = writeln!(report, "    {problem}");
        }
    }
    if differ > 0 || !problems.is_empty() {
        panic!(
            "{report}\n{differ} of {} cases differ between nix-instantiate and ncsh; \
             {} problems in the corpus files (see tests/nix/README.md)",
            cases.len(),
            problems.len()
        );
    }
}

#[test]
fn case_file_parsing() {
    let cases = parse_cases("t.cases", "# comment\n#== one\n1 +\n2\n#== two\n\"x\"\n").unwrap();
    assert_eq!(cases.len(), 2);
    assert_eq!(
        (
            cases[0].name.as_str(),
            cases[0].line,
            cases[0].expr.as_str()
        ),
        ("one", 2, "1 +\n2\n")
    );
    assert_eq!(
        (cases[1].name.as_str(), cases[1].expr.as_str()),
        ("two", "\"x\"\n")
    );
    for bad in [
        "",
        "# only a comment\n",
        "#== a\n\n",
        "#==a\n1\n",
        "#== a b\n1\n",
        "#== \n1\n",
    ] {
        assert!(
            parse_cases("t.cases", bad).is_err(),
            "{bad:?} must be malformed"
        );
    }
}

#[test]
fn duplicate_names_are_problems() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.cases"), "#== same\n1\n").unwrap();
    std::fs::write(dir.path().join("b.cases"), "#== same\n2\n#== other\n3\n").unwrap();
    std::fs::write(dir.path().join("c.cases"), "#==broken\n").unwrap();
    std::fs::write(dir.path().join("ignored.txt"), "#== not a case file\n").unwrap();
    let (cases, problems) = load_corpus(dir.path()).unwrap();
    let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["same", "other"]);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("b.cases:1") && problems[0].contains("a.cases:1"));
    assert!(problems[1].starts_with("c.cases:1"));
}

#[test]
fn floats_compare_as_nix_prints_them() {
    let cases = [
        (1.0, "1"),
        (2.5, "2.5"),
        (0.1, "0.1"),
        (1.0 / 3.0, "0.333333"),
        (1e20, "1e+20"),
        (123456789.0, "1.23457e+08"),
        (1234567.0, "1.23457e+06"),
        (123456.0, "123456"),
        (1e-7, "1e-07"),
        (0.0001, "0.0001"),
        (0.00001234, "1.234e-05"),
        (-2.5, "-2.5"),
        (1500.0, "1500"),
    ];
    for (x, printed) in cases {
        assert_eq!(format_g(x), printed, "{x}");
    }
    let from_ncsh = serde_json::json!({ "a": [1.0, 0.1, 1.0e20], "b": 1.0 / 3.0 });
    let from_nix: Value = serde_json::from_str(r#"{"a":[1,0.1,1e+20],"b":0.333333}"#).unwrap();
    assert!(agree(
        &Outcome::Value(from_nix.clone()),
        &Outcome::Value(from_ncsh)
    ));
    let wrong = serde_json::json!({ "a": [2, 0.1, 1.0e20], "b": 1.0 / 3.0 });
    assert!(!agree(&Outcome::Value(from_nix), &Outcome::Value(wrong)));
}

#[test]
fn outcomes_agree_only_when_they_should() {
    let one = || Outcome::Value(serde_json::json!(1));
    let failed = |m: &str| Outcome::Failed(m.to_string());
    assert!(agree(&one(), &one()));
    assert!(agree(&failed("a"), &failed("b")));
    assert!(!agree(&one(), &failed("x")));
    assert!(!agree(&failed("x"), &one()));
    assert!(!agree(&one(), &Outcome::Value(serde_json::json!("1"))));
    assert!(!agree(
        &failed("x"),
        &Outcome::Broken("ncsh panicked".into())
    ));
    assert!(!agree(
        &Outcome::Broken("not JSON".into()),
        &Outcome::Broken("same".into())
    ));
    assert_eq!(nix_argument("-7"), " -7");
    assert_eq!(nix_argument("1 - 2"), "1 - 2");
}
