//! nspawn's seccomp filter compiled once (ARCHITECTURE.md, "nspawn's seccomp filter, compiled
//! once"): the first start with a set of options lets nspawn build its filter and a probe keep
//! it; later starts install exactly those programs and tell nspawn not to build its own. The
//! filters are read here with this test's own ptrace code, not ncsh's.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::common::*;

const PTRACE_SECCOMP_GET_FILTER: libc::c_uint = 0x420c;

/// Programs as (code, jt, jf, k) instructions.
type Programs = Vec<Vec<(u16, u8, u8, u32)>>;

/// The seccomp programs of `pid`, in the order the kernel lists them, as raw instructions.
fn filters_of(pid: i32) -> Programs {
    let none = std::ptr::null_mut::<libc::sock_filter>();
    // SAFETY: ptrace requests on a process we may trace; the buffers hold what the kernel
    // said each program's length is.
    unsafe {
        assert_eq!(
            libc::ptrace(libc::PTRACE_SEIZE, pid, 0, none),
            0,
            "seize {pid}"
        );
        assert_eq!(libc::ptrace(libc::PTRACE_INTERRUPT, pid, 0, none), 0);
        let mut status = 0;
        assert_eq!(libc::waitpid(pid, &mut status, libc::__WALL), pid);
        let mut out = Vec::new();
        for index in 0..32usize {
            let n = libc::ptrace(PTRACE_SECCOMP_GET_FILTER, pid, index, none);
            if n < 0 {
                break;
            }
            let mut program = vec![
                libc::sock_filter {
                    code: 0,
                    jt: 0,
                    jf: 0,
                    k: 0
                };
                n as usize
            ];
            let got = libc::ptrace(PTRACE_SECCOMP_GET_FILTER, pid, index, program.as_mut_ptr());
            assert_eq!(got, n);
            out.push(program.iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect());
        }
        libc::ptrace(libc::PTRACE_DETACH, pid, 0, none);
        out
    }
}

/// Whether nspawn (the leader's parent) was told not to build its own filter.
fn nspawn_was_spared(leader: i32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{leader}/status")).unwrap();
    let parent = status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .unwrap()
        .trim()
        .to_string();
    let environ = std::fs::read(format!("/proc/{parent}/environ")).unwrap();
    environ
        .split(|b| *b == 0)
        .any(|var| var == b"SYSTEMD_SECCOMP=0")
}

fn cached_programs(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().extension().is_none())
                .count()
        })
        .unwrap_or(0)
}

fn cached_texts(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_none())
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect()
}

struct Cached<'a> {
    env: &'a Env,
    dir: std::path::PathBuf,
}

impl Cached<'_> {
    fn run(&self, args: &[&str]) -> Output {
        self.env
            .command(args)
            .env("NCSH_SECCOMP_DIR", &self.dir)
            .output()
            .unwrap()
    }

    /// Start `name`; its leader's filters and whether nspawn was spared building them.
    fn boot(&self, name: &str) -> (Programs, bool) {
        assert_ok(&self.run(&["start", name]), "start");
        let pid = leader(self.env, name);
        let spared = nspawn_was_spared(pid);
        let filters = filters_of(pid);
        (filters, spared)
    }

    fn stop(&self, name: &str) {
        assert_ok(&self.run(&["stop", name]), "stop");
    }
}

#[test]
fn the_filter_nspawn_builds_is_the_one_installed_from_the_cache() {
    require_root();
    let env = Env::new();
    // nspawn splits the cgroup it starts in: the probe's must be its own, not the host's.
    let hierarchies = [
        "/sys/fs/cgroup",
        "/sys/fs/cgroup/unified",
        "/sys/fs/cgroup/systemd",
    ];
    let split_before: Vec<bool> = hierarchies
        .iter()
        .map(|h| Path::new(h).join("payload").exists())
        .collect();
    let t = Cached {
        env: &env,
        dir: env.prefix().join("seccomp"),
    };
    let plain = unique_name("scp");
    let timed = unique_name("sct");
    env.create_booting(&plain);
    env.create_booting_with(&timed, &["--capability", "CAP_SYS_TIME"]);

    // First start: nothing cached, nspawn builds its filter; the probe keeps it after READY.
    let (built, spared) = t.boot(&plain);
    assert!(!spared, "nothing was cached yet");
    assert!(
        built.len() >= 2,
        "nspawn installs several filters: {}",
        built.len()
    );
    assert!(
        eventually(Duration::from_secs(10), || cached_programs(&t.dir) == 1),
        "the probe kept no filter in {}",
        t.dir.display()
    );
    t.stop(&plain);
    // The libraries nspawn built it with are recorded: an upgrade of one makes it stale.
    let kept = cached_texts(&t.dir).join("");
    assert!(
        kept.lines()
            .any(|l| l.starts_with("lib ") && l.contains("libseccomp")),
        "libseccomp is not among the recorded libraries:\n{}",
        kept.lines().take(12).collect::<Vec<_>>().join("\n")
    );

    // Second start: the same programs, installed by ncsh; nspawn built none.
    let (installed, spared) = t.boot(&plain);
    assert_eq!(installed.len(), built.len(), "another number of filters");
    assert!(spared, "nspawn was not told the filter is there");
    assert_eq!(
        installed, built,
        "the cached filter differs from nspawn's own"
    );
    let running = env.run_inside(&plain, &["systemctl", "is-system-running"]);
    assert_eq!(stdout(&running).trim(), "running");
    t.stop(&plain);

    // Another capability means another filter: built by nspawn first, then cached apart.
    let (timed_built, spared) = t.boot(&timed);
    assert!(!spared, "a filter for other capabilities was used");
    assert_ne!(
        timed_built, built,
        "CAP_SYS_TIME did not change nspawn's filter"
    );
    assert!(
        eventually(Duration::from_secs(10), || cached_programs(&t.dir) == 2),
        "the second probe kept nothing"
    );
    t.stop(&timed);
    let (timed_installed, spared) = t.boot(&timed);
    assert!(spared);
    assert_eq!(timed_installed, timed_built);
    t.stop(&timed);

    // The probes left nothing behind: no root of their own, no nspawn files.
    let left: Vec<_> = std::fs::read_dir(&t.dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ncsh-seccomp-"))
        .collect();
    assert!(left.is_empty(), "probe leftovers: {left:?}");
    let propagate: Vec<_> = std::fs::read_dir("/run/systemd/nspawn/propagate")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("ncsh-seccomp-"))
                .collect()
        })
        .unwrap_or_default();
    assert!(propagate.is_empty(), "probe leftovers: {propagate:?}");
    for (h, before) in hierarchies.iter().zip(split_before) {
        let payload = Path::new(h).join("payload");
        assert!(
            before || !payload.exists(),
            "the probe split {h}: {}",
            payload.display()
        );
        let probes: Vec<_> = std::fs::read_dir(h)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("ncsh-.seccomp-probe-"))
                    .collect()
            })
            .unwrap_or_default();
        assert!(probes.is_empty(), "probe cgroups left in {h}: {probes:?}");
    }
    for name in [&plain, &timed] {
        assert_ok(&env.run(&["destroy", name]), "destroy");
        assert_no_debris(&env, name);
    }
}

#[test]
fn an_empty_cache_setting_leaves_the_filter_to_nspawn() {
    require_root();
    let env = Env::new();
    let name = unique_name("scn");
    env.create_booting(&name);
    for _ in 0..2 {
        let out = env
            .command(&["start", &name])
            .env("NCSH_SECCOMP_DIR", "")
            .output()
            .unwrap();
        assert_ok(&out, "start");
        assert!(!nspawn_was_spared(leader(&env, &name)));
        assert_ok(&env.run(&["stop", &name]), "stop");
    }
    assert_ok(&env.run(&["destroy", &name]), "destroy");
}
