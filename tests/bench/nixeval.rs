//! `cargo bench --bench nixeval` (as root): the native evaluation of a NixOS configuration
//! against Nix's own evaluator, in the same run, interleaved, as medians and ratios.
//!
//! The configuration is a 300-line module with imports, `let`, `with`, `mkIf` and five services
//! (sshd, nginx, Redis, PostgreSQL, Apache) plus users and units of its own:
//! - eval: ncsh's evaluation of the configuration in this process (`lib`, the modules
//!   collected, merged and type-checked against the option modules' declarations, forced to
//!   plain data) against `nix-instantiate --eval --strict` of the same module files applied to
//!   the same `lib` and a stub `config`/`pkgs` and forced deeply (less work: no merging), and
//!   against `nix-instantiate --eval` of `1` (Nix's start-up alone);
//! - create: `ncsh create NAME --config-file main.nix` (evaluation, type checks, realizing the
//!   options, writing the root) until it returns, with `/bin/true` as the spawn floor; and the
//!   same with ncsh's state on a tmpfs (no file system's inode search in the figure).
#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_ncsh");
const LIB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/stdlib/nix/lib.nix");

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn timed(mut cmd: Command) -> f64 {
    let t = Instant::now();
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed().as_secs_f64()
}

/// Writes main.nix (imports users.nix and units.nix); about 300 lines in all.
fn write_module(dir: &Path) {
    let mut users = String::from("{ lib, ... }:\nwith lib;\nlet\n  names = [\n");
    for i in 0..40 {
        let _ = writeln!(users, "    \"user{i}\"");
    }
    users.push_str(
        "  ];\nin {\n  users.users = genAttrs names (n: {\n    isNormalUser = true;\n    \
         description = \"the user ${n}\";\n    extraGroups = optional (hasSuffix \"0\" n) \"wheel\";\n  });\n\
         \x20 users.groups.staff = { };\n}\n",
    );
    let mut units = String::from("{ config, lib, pkgs, ... }:\nlet\n  cfg = config.demo;\nin\n{\n");
    for i in 0..30 {
        let _ = write!(
            units,
            "  systemd.services.job{i} = lib.mkIf cfg.enable {{\n    description = \"job {i} on ${{config.networking.hostName}}\";\n    \
             wantedBy = [ \"multi-user.target\" ];\n    serviceConfig.ExecStart = \"${{pkgs.coreutils}}/bin/sleep {i}\";\n    \
             environment.JOB = toString ({i} * 2);\n  }};\n"
        );
    }
    units.push_str("}\n");
    let main = r#"{ config, lib, pkgs, ... }:
with lib;
let
  cfg = config.demo;
  ports = [ 80 443 ];
  vhost = name: {
    root = "/srv/${name}";
    locations."/".return = "200 '${name}'";
  };
in
{
  imports = [ ./users.nix ./units.nix ];

  options.demo = {
    enable = mkEnableOption "the demo";
    name = mkOption { type = types.str; default = "demo"; };
  };

  config = mkMerge [
    { demo.enable = true; }
    (mkIf cfg.enable {
      networking.hostName = cfg.name;
      networking.firewall.allowedTCPPorts = ports ++ [ 22 6379 5432 ];
      environment.systemPackages = with pkgs; [ curl git vim ];
      services.openssh.enable = true;
      services.openssh.settings.PermitRootLogin = "no";
      services.nginx = {
        enable = true;
        recommendedGzipSettings = true;
        virtualHosts = genAttrs [ "a" "b" "c" "d" ] vhost;
      };
      services.redis.servers.cache = { enable = true; port = 6379; };
      services.postgresql = {
        enable = true;
        ensureDatabases = [ "shop" "blog" ];
        ensureUsers = map (n: { name = n; ensureDBOwnership = true; }) [ "shop" "blog" ];
      };
      services.httpd = {
        enable = true;
        adminAddr = "admin@example.org";
      };
      environment.etc = listToAttrs (map (i: nameValuePair "demo/${toString i}" {
        text = concatStringsSep "\n" (genList (j: "line ${toString j} of ${toString i}") 10);
      }) (range 1 20));
    })
  ];
}
"#;
    std::fs::write(dir.join("main.nix"), main).unwrap();
    std::fs::write(dir.join("users.nix"), users).unwrap();
    std::fs::write(dir.join("units.nix"), units).unwrap();
}

/// The same files as one expression both evaluators can evaluate: each module applied to `lib`
/// and stubs, forced deeply.
fn expression(dir: &Path) -> String {
    format!(
        r#"let
  lib = import {LIB};
  pkg = n: {{ type = "derivation"; name = n; outPath = "/usr"; }};
  pkgs = lib.genAttrs [ "coreutils" "curl" "git" "vim" ] pkg;
  config = {{ demo = {{ enable = true; name = "demo"; }}; networking.hostName = "demo"; }};
  args = {{ inherit lib pkgs config; options = {{ }}; }};
  modules = map (f: import f args) [ {d}/main.nix {d}/users.nix {d}/units.nix ];
in builtins.deepSeq modules (builtins.length modules)"#,
        d = dir.display()
    )
}

/// The option modules' declarations, as `create` loads them.
fn load_declarations() -> ncsh::builder::options::Declarations {
    use ncsh::builder::native::OptionModules;
    ncsh::engine::nixos::RhaiModules::default()
        .declarations()
        .unwrap()
}

/// A native build of the configuration file `main`.
fn build_request(main: std::path::PathBuf) -> ncsh::builder::BuildRequest {
    ncsh::builder::BuildRequest::new(
        "demo",
        std::path::PathBuf::from("/nonexistent/demo"),
        ncsh::container::ConfigSource::File(main),
    )
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: run as root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write_module(dir.path());
    // For profiling: NCSH_BENCH_KEEP=DIR keeps the modules and the expression (expr.nix) there.
    if let Ok(keep) = std::env::var("NCSH_BENCH_KEEP") {
        let keep = Path::new(&keep);
        std::fs::create_dir_all(keep).unwrap();
        write_module(keep);
        std::fs::write(keep.join("expr.nix"), expression(keep)).unwrap();
    }
    let lines: usize = ["main.nix", "users.nix", "units.nix"]
        .iter()
        .map(|f| {
            std::fs::read_to_string(dir.path().join(f))
                .unwrap()
                .lines()
                .count()
        })
        .sum();
    let expr = expression(dir.path());
    let nix = |e: &str| {
        let mut cmd = Command::new("nix-instantiate");
        cmd.args([
            "--eval", "--strict", "--json", "--store", "dummy://", "-E", e,
        ])
        .stdout(Stdio::null());
        cmd
    };
    let rounds = 21;
    let declarations = load_declarations();
    let request = build_request(dir.path().join("main.nix"));
    // For profiling: NCSH_BENCH_EVAL_ONLY=N runs ncsh's evaluation N times and nothing else.
    if let Some(n) = std::env::var("NCSH_BENCH_EVAL_ONLY")
        .ok()
        .and_then(|n| n.parse::<u32>().ok())
    {
        for _ in 0..n {
            ncsh::builder::native::evaluate(&request, &declarations).unwrap();
        }
        return;
    }
    // The first evaluation of a thread: nothing made once per thread is there yet (the
    // globals, `lib`'s compiled bindings, compiled files, dpkg's status), as in a
    // `create`. The option modules' declarations are loaded before the clock starts.
    let first_in_thread = || {
        let main = dir.path().join("main.nix");
        std::thread::spawn(move || {
            let (request, declarations) = (build_request(main), load_declarations());
            let t = Instant::now();
            ncsh::builder::native::evaluate(&request, &declarations).unwrap();
            t.elapsed().as_secs_f64()
        })
        .join()
        .unwrap()
    };
    let (mut ours, mut cold, mut theirs, mut floor) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        let config = ncsh::builder::native::evaluate(&request, &declarations)
            .unwrap()
            .config;
        ours.push(t.elapsed().as_secs_f64());
        assert!(config.to_string().contains("job29"));
        cold.push(first_in_thread());
        theirs.push(timed(nix(&expr)));
        floor.push(timed(nix("1")));
    }
    let (ours, cold, theirs, floor) = (median(ours), median(cold), median(theirs), median(floor));
    println!("nixeval: {lines} lines of modules, medians of {rounds} interleaved rounds");
    println!(
        "  eval   ncsh {:7.2} ms   nix-instantiate {:7.2} ms   ratio {:5.1}×   (nix-instantiate of `1`: {:.2} ms)",
        ours * 1e3,
        theirs * 1e3,
        theirs / ours,
        floor * 1e3
    );
    println!(
        "  eval, first in a thread   ncsh {:7.2} ms   ratio {:5.1}×",
        cold * 1e3,
        theirs / cold
    );

    let main = dir.path().join("main.nix");
    let on_disk = tempfile::tempdir().unwrap();
    let (creates, trues) = create_rounds(on_disk.path(), &main, rounds);
    // The same on a tmpfs: a new inode there costs no search. (On an ext4 without a journal,
    // as on these machines, a new inode skips every one deleted in the last minutes, which the
    // destroys of the rounds before, and any other work on the host, provide.)
    let in_memory = Tmpfs::new();
    let (in_memory_creates, _) = create_rounds(in_memory.dir.path(), &main, rounds);
    drop(in_memory);
    println!(
        "  create --config-file   ncsh {:7.1} ms   root on a tmpfs {:7.1} ms   (/bin/true {:.2} ms)",
        median(creates) * 1e3,
        median(in_memory_creates) * 1e3,
        median(trues) * 1e3
    );
}

/// `rounds` of `ncsh create NAME --config-file main` (each destroyed after it is timed) with
/// the state below `prefix`, each followed by a `/bin/true`: the times of both.
fn create_rounds(prefix: &Path, main: &Path, rounds: usize) -> (Vec<f64>, Vec<f64>) {
    let (mut creates, mut trues) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        let name = format!("ev{}x{i}", std::process::id() % 10_000);
        let mut cmd = Command::new(BIN);
        cmd.args(["create", &name, "--config-file", main.to_str().unwrap()])
            .env("NCSH_PREFIX", prefix)
            .env("NCSH_BUILDER", "native")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        creates.push(timed(cmd));
        let mut destroy = Command::new(BIN);
        destroy
            .args(["destroy", &name])
            .env("NCSH_PREFIX", prefix)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        timed(destroy);
        trues.push(timed(Command::new("/bin/true")));
    }
    (creates, trues)
}

/// A temporary directory with a tmpfs mounted on it, unmounted when dropped (also when a
/// round panics).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn new() -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            dir.path(),
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some("mode=0755"),
        )
        .unwrap();
        Tmpfs { dir }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(self.dir.path(), nix::mount::MntFlags::MNT_DETACH);
    }
}
