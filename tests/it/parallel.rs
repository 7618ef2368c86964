//! Creates from separate processes at once get distinct names and addresses and intact confs.

use std::collections::HashSet;
use std::process::Stdio;

use crate::common::*;

#[test]
fn twenty_parallel_creates() {
    let env = Env::new();
    let base = unique_name("par");
    let children: Vec<_> = (0..20)
        .map(|_| {
            env.command(&["create", &base, "--ensure-unique-name"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut names = HashSet::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_ok(&out, "create");
        let name = stdout(&out).trim().to_string();
        env.track(&name);
        assert!(names.insert(name.clone()), "name {name} given twice");
    }
    let mut pairs = HashSet::new();
    for name in &names {
        let conf = std::fs::read_to_string(env.conf_path(name)).unwrap();
        // The automatic IPv6 pair, on a host with IPv6, is not what this test is about.
        let lines: Vec<&str> = conf
            .lines()
            .filter(|l| !l.starts_with("HOST_ADDRESS6=") && !l.starts_with("LOCAL_ADDRESS6="))
            .collect();
        assert_eq!(lines.len(), 6, "{name}: {conf}");
        assert!(
            lines[0] == "PRIVATE_NETWORK=1" && lines[5] == "AUTO_START=0",
            "{name}: {conf}"
        );
        let host = lines[1].strip_prefix("HOST_ADDRESS=").unwrap().to_string();
        let local = lines[2].strip_prefix("LOCAL_ADDRESS=").unwrap().to_string();
        assert!(
            pairs.insert(host.clone()) && pairs.insert(local),
            "{name}: address {host} given twice"
        );
        assert!(env.root_path(name).join("etc/os-release").exists());
    }
    assert_eq!(names.len(), 20);
}
