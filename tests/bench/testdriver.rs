//! `cargo bench --bench testdriver` (as root): `ncsh test` against plain container operations,
//! in the same run, interleaved, as medians and ratios.
//!
//! - a two-node test (make both nodes, boot them, one `succeed` each, remove everything: the
//!   whole `ncsh test` process) against one container's `ncsh start` + `ncsh stop`;
//! - ten nodes booted by `t.start_all()` (timed inside the script) against one `ncsh start`.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_ncsh");

/// Networks of this benchmark's own, clear of the tests' claims (10.233.200+).
const NETWORKS: &str = "10.233.150.0/24,10.233.151.0/24,10.233.152.0/24";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn ncsh(prefix: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("NCSH_PREFIX", prefix)
        .env("NCSH_BUILDER", "native")
        .env("NCSH_TEST_NETWORKS", NETWORKS)
        .env("TMPDIR", prefix)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

fn timed(mut cmd: Command) -> f64 {
    let t = Instant::now();
    let status = cmd.status().unwrap();
    assert!(status.success(), "{cmd:?} failed");
    t.elapsed().as_secs_f64()
}

/// Run test script `file`; the number it prints after `start_all=` (seconds), if any.
fn run_test(prefix: &Path, file: &Path) -> Option<f64> {
    let out = ncsh(prefix, &["test", file.to_str().unwrap()])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ncsh test {}: {text}", file.display());
    text.lines()
        .find_map(|l| l.strip_prefix("start_all="))
        .map(|s| s.trim().parse().unwrap())
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("the testdriver benchmark boots containers: run it as root");
        std::process::exit(1);
    }
    let rounds: usize = std::env::var("NCSH_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path();
    let range = "10.233.0.0/16";
    let shown = Command::new("ip")
        .args(["route", "show", "type", "unreachable", range])
        .output()
        .unwrap();
    if shown.stdout.is_empty() {
        Command::new("ip")
            .args(["route", "add", "unreachable", range])
            .status()
            .unwrap();
    }
    let name = format!("tdb{}", std::process::id() % 10000);
    let mut create = ncsh(
        prefix,
        &[
            "create",
            &name,
            "--host-address",
            "10.233.160.1",
            "--local-address",
            "10.233.160.2",
        ],
    );
    create.stderr(Stdio::null());
    timed(create);
    let two = prefix.join("two.rhai");
    std::fs::write(
        &two,
        "let t = test(#{ nodes: #{ server: \"\", client: \"\" } });\nt.start_all();\n\
         t.nodes.server.succeed(\"true\");\nt.nodes.client.succeed(\"getent hosts server\");\n",
    )
    .unwrap();
    let ten = prefix.join("ten.rhai");
    let nodes: Vec<String> = (0..10).map(|i| format!("n{i}: \"\"")).collect();
    std::fs::write(
        &ten,
        format!(
            "let t = test(#{{ nodes: #{{ {} }} }});\nlet s = timestamp();\nt.start_all();\n\
             print(`start_all=${{s.elapsed}}`);\n",
            nodes.join(", ")
        ),
    )
    .unwrap();
    // One warm-up of each, so page caches are equal.
    timed(ncsh(prefix, &["start", &name]));
    timed(ncsh(prefix, &["stop", &name]));
    run_test(prefix, &two);

    let (mut tests, mut cycles, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let cycle = timed(ncsh(prefix, &["start", &name])) + timed(ncsh(prefix, &["stop", &name]));
        let t = Instant::now();
        run_test(prefix, &two);
        let test = t.elapsed().as_secs_f64();
        cycles.push(cycle);
        tests.push(test);
        ratios.push(test / cycle);
    }
    println!("a two-node test ({rounds} rounds, interleaved)");
    println!(
        "  ncsh start + ncsh stop (one container)   median {:7.1} ms",
        median(cycles) * 1e3
    );
    println!(
        "  ncsh test two.rhai (create 2, boot, succeed, remove) median {:7.1} ms",
        median(tests) * 1e3
    );
    println!(
        "  ratio test/(start+stop)                  median {:7.3}",
        median(ratios)
    );

    let (mut alls, mut boots, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let boot = timed(ncsh(prefix, &["start", &name]));
        timed(ncsh(prefix, &["stop", &name]));
        let all = run_test(prefix, &ten).unwrap();
        boots.push(boot);
        alls.push(all);
        ratios.push(all / boot);
    }
    println!("ten nodes ({rounds} rounds, interleaved)");
    println!(
        "  ncsh start (one boot)                    median {:7.1} ms",
        median(boots) * 1e3
    );
    println!(
        "  t.start_all() of ten nodes               median {:7.1} ms",
        median(alls) * 1e3
    );
    println!(
        "  ratio start_all/one boot                 median {:7.3}",
        median(ratios)
    );
    timed(ncsh(prefix, &["destroy", &name]));
}
