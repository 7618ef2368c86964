//! Limits (issue 12, item 7): `--memory-max`, `--cpu-quota`, `--tasks-max` on create and
//! update, in the container's cgroup under both drivers; `status --json` and `c.usage` show what
//! it uses.

use std::path::Path;

use crate::common::*;
use crate::testhost::TestHost;

/// The value of the first of `files` (below the container's cgroup `ncsh-NAME`, v2 or v1
/// names) that exists.
fn cgroup_value(name: &str, files: &[&str]) -> String {
    for file in files {
        let path = Path::new("/sys/fs/cgroup").join(file.replace("NAME", &format!("ncsh-{name}")));
        if let Ok(text) = std::fs::read_to_string(&path) {
            return text.trim().to_string();
        }
    }
    panic!("none of {files:?} exists for ncsh-{name}");
}

/// Fork up to 100 children that wait for the parent; how many forks succeeded.
const FORK_100: &str = "import os
r, w = os.pipe()
n = 0
for i in range(100):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        os.close(w)
        os.read(r, 1)
        os._exit(0)
    n += 1
print(n)
os.close(w)
";

#[test]
fn limits_hold_in_the_cgroup_and_usage_is_shown() {
    require_root();
    let env = Env::new();
    let name = unique_name("lim");
    env.create_booting_with(
        &name,
        &[
            "--tasks-max",
            "50",
            "--memory-max",
            "200M",
            "--cpu-quota",
            "50%",
        ],
    );
    let conf = std::fs::read_to_string(env.conf_path(&name)).unwrap();
    assert!(
        conf.ends_with("NCSH_MEMORY_MAX=209715200\nNCSH_CPU_QUOTA=50%\nNCSH_TASKS_MAX=50\n"),
        "{conf}"
    );
    assert_ok(&env.run(&["start", &name]), "start");
    assert_eq!(
        cgroup_value(
            &name,
            &["NAME/memory.max", "memory/NAME/memory.limit_in_bytes"]
        ),
        "209715200"
    );
    assert_eq!(
        cgroup_value(&name, &["NAME/pids.max", "pids/NAME/pids.max"]),
        "50"
    );
    let cpu = cgroup_value(&name, &["NAME/cpu.max", "cpu/NAME/cpu.cfs_quota_us"]);
    assert!(cpu == "50000 100000" || cpu == "50000", "{cpu}");

    let out = env.run_inside(&name, &["python3", "-c", FORK_100]);
    let forked: u32 = stdout(&out)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{out:?}"));
    assert!(
        forked > 0 && forked < 50,
        "{forked} of 100 forks succeeded under --tasks-max 50"
    );

    // What it uses.
    let out = env.run(&["status", &name, "--json"]);
    assert_ok(&out, "status --json");
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["state"], "up");
    assert!(
        status["memory"].as_u64().is_some_and(|m| m > 1 << 20),
        "{status}"
    );
    assert!(
        status["cpu_usec"].as_u64().is_some_and(|c| c > 0),
        "{status}"
    );
    assert!(
        status["tasks"].as_u64().is_some_and(|t| t > 0 && t <= 50),
        "{status}"
    );
    assert_eq!(status["limits"]["tasks_max"], 50);
    assert_eq!(stdout(&env.run(&["status", &name])), "up\n");
    let script = env.prefix().join("usage.rhai");
    std::fs::write(
        &script,
        format!(
            "let c = container(\"{name}\");\n\
             print(c.usage.memory > 0);\nprint(c.limits.cpu_quota);\n\
             c.update(#{{ tasks_max: 80 }});\nprint(c.limits.tasks_max);"
        ),
    )
    .unwrap();
    let out = env.run(&[script.to_str().unwrap()]);
    assert_ok(&out, "usage script");
    assert_eq!(stdout(&out), "true\n50\n80\n");
    // Applied live.
    assert_eq!(
        cgroup_value(&name, &["NAME/pids.max", "pids/NAME/pids.max"]),
        "80"
    );
    assert_ok(
        &env.run(&["update", &name, "--memory-max", "300M"]),
        "update",
    );
    assert_eq!(
        cgroup_value(
            &name,
            &["NAME/memory.max", "memory/NAME/memory.limit_in_bytes"]
        ),
        (300u64 << 20).to_string()
    );

    // Bad values change nothing.
    let before = std::fs::read_to_string(env.conf_path(&name)).unwrap();
    for (flag, value) in [
        ("--memory-max", "12"),
        ("--tasks-max", "5"),
        ("--cpu-quota", "0%"),
    ] {
        let out = env.run(&["update", &name, flag, value]);
        assert!(
            !out.status.success() && stderr(&out).contains(&format!("for {flag}")),
            "{}",
            stderr(&out)
        );
        let out = env.run(&["create", "x1", flag, value]);
        assert!(
            !out.status.success() && stderr(&out).contains(&format!("for {flag}")),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(
        std::fs::read_to_string(env.conf_path(&name)).unwrap(),
        before
    );
    assert!(!env.conf_path("x1").exists());
    assert_ok(&env.run(&["stop", &name]), "stop");
    let out = env.run(&["status", &name, "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        status["state"] == "down" && status["memory"].is_null(),
        "{status}"
    );
    // A bad value written by hand: start says which key, and nothing starts.
    std::fs::write(
        env.conf_path(&name),
        format!("{before}NCSH_TASKS_MAX=lots\n"),
    )
    .unwrap();
    let out = env.run(&["start", &name]);
    assert!(
        !out.status.success() && stderr(&out).contains("for NCSH_TASKS_MAX"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&env.run(&["status", &name])), "down\n");
    std::fs::write(env.conf_path(&name), &before).unwrap();
}

fn systemd_limits(template: bool) {
    require_root();
    let th = TestHost::boot(if template { "lmt" } else { "lmn" }, template);
    crate::systemd::create(
        &th,
        "lim",
        &[
            "--tasks-max",
            "50",
            "--memory-max",
            "200M",
            "--cpu-quota",
            "50%",
        ],
    );
    assert_ok(&th.ncsh(&["start", "lim"]), "start");
    let show = |p: &str| {
        stdout(&th.exec(&[
            "systemctl",
            "show",
            "--value",
            "-p",
            p,
            "container@lim.service",
        ]))
        .trim()
        .to_string()
    };
    assert_eq!(show("TasksMax"), "50");
    assert_eq!(show("MemoryMax"), "209715200");
    assert_eq!(show("CPUQuotaPerSecUSec"), "500ms");
    assert_ok(&th.ncsh(&["update", "lim", "--tasks-max", "80"]), "update");
    assert_eq!(show("TasksMax"), "80");
    let out = th.ncsh(&["status", "lim", "--json"]);
    assert_ok(&out, "status --json");
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["limits"]["tasks_max"], 80);
    assert!(
        status["cpu_usec"].as_u64().is_some_and(|c| c > 0),
        "{status}"
    );
    // systemd accounts memory and tasks only where the test host's cgroups have those
    // controllers (on a hybrid machine the unified hierarchy it gets has none).
    let controllers = stdout(&th.exec(&["cat", "/sys/fs/cgroup/cgroup.controllers"]));
    for (controller, key) in [("pids", "tasks"), ("memory", "memory")] {
        if controllers.split_whitespace().any(|c| c == controller) {
            assert!(status[key].as_u64().is_some_and(|t| t > 0), "{status}");
        } else {
            assert!(status[key].is_null(), "{status}");
        }
    }
    assert_ok(&th.ncsh(&["destroy", "lim"]), "destroy");
}

#[test]
fn systemd_driver_limits_with_transient_units() {
    systemd_limits(false);
}

#[test]
fn systemd_driver_limits_with_the_template() {
    systemd_limits(true);
}
