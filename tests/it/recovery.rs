//! An `update` killed while it applies a generation: the next `start` (or `update`) undoes it,
//! so the container is back on its previous generation with no half-applied files, no orphan
//! generation, no temporary files and its old `configuration.nix`.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{Env, assert_ok, require_root, unique_name};

/// Files below `dir` whose name marks a temporary file of ncsh's.
fn temporaries(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.contains(".ncsh-tmp-") || name.contains(".ncsh-link-") {
                out.push(e.path().display().to_string());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    out
}

#[test]
fn an_update_killed_while_applying_is_undone_by_the_next_start() {
    require_root();
    let env = Env::new();
    let name = unique_name("rec");
    env.create_booting(&name);
    let root = env.root_path(&name);
    let generations = root.join("var/lib/ncsh/generations");
    let numbers = || {
        let mut names: Vec<String> = std::fs::read_dir(&generations)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json"))
            .collect();
        names.sort();
        names
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();

    // Enough files that the apply takes a while; killed once its record and a first file exist.
    let big: String = (0..4000)
        .map(|i| format!("environment.etc.\"crash/f{i:04}\".text = \"{i}\";\n"))
        .collect();
    let big_file = env.prefix().join("big.nix");
    std::fs::write(&big_file, format!("{{ ... }}: {{\n{big}}}\n")).unwrap();
    let mut killed = false;
    let mut before = (Vec::new(), String::new(), String::new());
    for attempt in 0..5 {
        before = (
            numbers(),
            read(&generations.join("current")),
            read(&root.join("etc/nixos/configuration.nix")),
        );
        let update = ["update", &name, "--config-file", big_file.to_str().unwrap()];
        let mut child = env.command(&update).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if root.join("var/lib/ncsh/activating.json").exists()
                && root.join("etc/crash/f0000").exists()
            {
                let _ = child.kill();
                break;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = child.wait();
        if root.join("var/lib/ncsh/activating.json").exists() {
            killed = true;
            break;
        }
        // It finished first: back to a small configuration, and again.
        let small = format!("environment.etc.small.text = \"{attempt}\";");
        assert_ok(
            &env.run(&["update", &name, "--config", &small]),
            "update back",
        );
    }
    assert!(killed, "could not kill the update while it applied");
    assert!(
        std::fs::read_dir(root.join("etc/crash")).unwrap().count() < 4000,
        "the apply was not cut short"
    );

    assert_ok(&env.run(&["start", &name]), "start after the crash");
    assert!(!root.join("var/lib/ncsh/activating.json").exists());
    assert_eq!(numbers(), before.0, "an orphan generation is left");
    assert_eq!(read(&generations.join("current")), before.1);
    let left: Vec<_> = std::fs::read_dir(root.join("etc/crash"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "half-applied files are left: {}",
        left.len()
    );
    assert_eq!(temporaries(&root), Vec::<String>::new());
    assert_eq!(read(&root.join("etc/nixos/configuration.nix")), before.2);
    assert_ok(&env.run(&["stop", &name]), "stop");
}
