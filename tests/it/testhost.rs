//! A throw-away systemd "test host": Debian's own systemd booted as PID 1 with
//! `systemd-nspawn -b` on this machine (whose PID 1 is not systemd), with a system bus and
//! systemd-machined, so the systemd driver runs for real inside it (the ncsh binary is bound in
//! read-only at /opt/ncsh). Its root is a fresh temporary directory sharing the machine's /usr;
//! it runs in a private cgroup and a private network. Dropping it tears everything down, also
//! when a test failed: poweroff, kill on timeout, cgroups, nspawn's files and the root.

use std::ffi::CString;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::common::BIN;

const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
const HALT_TIMEOUT: Duration = Duration::from_secs(15);
const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Where the ncsh binary is inside the test host.
pub const NCSH: &str = "/opt/ncsh/ncsh";

/// A NixOS-like `container@.service` (ARCHITECTURE.md, "NixOS's start script and the conf"): the conf as EnvironmentFile, nspawn with
/// the container init, the host side of the veth in ExecStartPost. On NixOS the template's
/// ExecReload runs `switch-to-configuration test` through `nixos-container run`; this one boots
/// native containers, whose switch is ncsh's (`ncsh __reload NAME`).
const TEMPLATE: &str = "\
[Unit]
Description=Container '%i'
RequiresMountsFor=/var/lib/nixos-containers/%i

[Service]
Type=notify
EnvironmentFile=-/etc/nixos-containers/%i.conf
Environment=SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1
ExecStart=/usr/bin/systemd-nspawn --keep-unit -M %i -D /var/lib/nixos-containers/%i \
 --private-network --network-veth --notify-ready=yes --kill-signal=SIGRTMIN+3 --bind-ro=/usr \
 --link-journal=no --timezone=off --setenv=HOST_ADDRESS=${HOST_ADDRESS} \
 --setenv=LOCAL_ADDRESS=${LOCAL_ADDRESS} \
 --setenv=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /etc/ncsh/container-init
ExecStartPost=/usr/sbin/ip link set dev ve-%i up
ExecStartPost=/usr/sbin/ip addr add ${HOST_ADDRESS} dev ve-%i
ExecStartPost=/usr/sbin/ip route add ${LOCAL_ADDRESS} dev ve-%i
ExecReload=/opt/ncsh/ncsh __reload %i
KillMode=mixed
Slice=machine.slice
Delegate=yes
RestartForceExitStatus=133
SuccessExitStatus=133
TimeoutStartSec=1min
";

pub struct TestHost {
    pub name: String,
    base: PathBuf,
    root: PathBuf,
    child: Option<Child>,
    leader: Option<i32>,
    cgroups: Vec<PathBuf>,
    /// The root's inode, for nspawn's lock file in /run/systemd/nspawn/locks.
    root_inode: Option<(u64, u64)>,
}

/// The cgroup hierarchies a private cgroup is needed in (hybrid here; pure v2 elsewhere).
fn hierarchies() -> Vec<PathBuf> {
    let hybrid = ["/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"];
    let found: Vec<PathBuf> = hybrid
        .iter()
        .map(PathBuf::from)
        .filter(|p| p.join("cgroup.procs").exists())
        .collect();
    if found.is_empty() {
        vec![PathBuf::from("/sys/fs/cgroup")]
    } else {
        found
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A minimal root: /usr is bound from the machine, the rest links into it.
fn make_root(root: &Path, hostname: &str) {
    for dir in [
        "usr",
        "etc/pam.d",
        "var",
        "tmp",
        "root",
        "run",
        "proc",
        "sys",
        "dev",
        "opt/ncsh",
    ] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    for dir in ["bin", "sbin", "lib", "lib64"] {
        std::os::unix::fs::symlink(format!("usr/{dir}"), root.join(dir)).unwrap();
    }
    std::fs::copy("/usr/lib/os-release", root.join("etc/os-release")).unwrap();
    write(
        &root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/bash\n\
         messagebus:x:100:102::/nonexistent:/usr/sbin/nologin\n\
         systemd-network:x:998:998::/:/usr/sbin/nologin\n\
         polkitd:x:996:996::/nonexistent:/usr/sbin/nologin\n\
         nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    );
    write(
        &root.join("etc/group"),
        "root:x:0:\nsystemd-journal:x:999:\nsystemd-network:x:998:\nmessagebus:x:102:\n\
         polkitd:x:996:\nnogroup:x:65534:\n",
    );
    write(&root.join("etc/shadow"), "root::19000:0:99999:7:::\n");
    // Empty: systemd derives a machine ID from the container's UUID.
    write(&root.join("etc/machine-id"), "");
    write(&root.join("etc/hostname"), &format!("{hostname}\n"));
    write(
        &root.join("etc/pam.d/other"),
        "auth required pam_permit.so\naccount required pam_permit.so\n\
         password required pam_permit.so\nsession required pam_permit.so\n",
    );
    // machined starts at boot, so the first call does not wait for bus activation.
    let wants = root.join("etc/systemd/system/multi-user.target.wants");
    std::fs::create_dir_all(&wants).unwrap();
    std::os::unix::fs::symlink(
        "/usr/lib/systemd/system/systemd-machined.service",
        wants.join("systemd-machined.service"),
    )
    .unwrap();
}

impl TestHost {
    /// Boot a test host; with `template`, a NixOS-like `container@.service` is installed.
    pub fn boot(tag: &str, template: bool) -> TestHost {
        Self::boot_with(tag, template, &[])
    }

    /// The same, with more nspawn `--bind` options (e.g. `--bind=/nix` for a Nix host).
    pub fn boot_with(tag: &str, template: bool, binds: &[&str]) -> TestHost {
        let name = crate::common::unique_name(tag);
        let base = std::env::temp_dir().join(format!("sdh-{name}"));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("root");
        let cgroups: Vec<PathBuf> = hierarchies()
            .into_iter()
            .map(|h| h.join(format!("sdh-{name}")))
            .collect();
        // From here on, Drop cleans up whatever exists.
        let mut host = TestHost {
            name: name.clone(),
            base: base.clone(),
            root: root.clone(),
            child: None,
            leader: None,
            cgroups: cgroups.clone(),
            root_inode: None,
        };
        make_root(&root, &name);
        if template {
            write(
                &root.join("etc/systemd/system/container@.service"),
                TEMPLATE,
            );
        }
        {
            use std::os::unix::fs::MetadataExt;
            let meta = std::fs::metadata(&root).unwrap();
            host.root_inode = Some((meta.dev(), meta.ino()));
        }
        for cg in &cgroups {
            std::fs::create_dir_all(cg).unwrap();
        }
        let notify_path = base.join("notify");
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let console = std::fs::File::create(base.join("console.log")).unwrap();
        // NCSH_TESTHOST_BIN_DIR binds another build (e.g. target/release) for measurements.
        let bin_dir = std::env::var_os("NCSH_TESTHOST_BIN_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(BIN).parent().unwrap().to_path_buf());
        let procs: Vec<CString> = cgroups
            .iter()
            .map(|cg| CString::new(cg.join("cgroup.procs").to_str().unwrap()).unwrap())
            .collect();
        let mut cmd = Command::new("/usr/bin/systemd-nspawn");
        // --register=no and --keep-unit: there is no machined or systemd out here (caveat C1).
        cmd.args(["--register=no", "--keep-unit", "-M", &name, "-D"])
            .arg(&root)
            .args([
                "--bind-ro=/usr",
                "--private-network",
                "--notify-ready=yes",
                "-b",
            ])
            .arg(format!("--bind-ro={}:/opt/ncsh", bin_dir.display()))
            .args(binds)
            .env("NOTIFY_SOCKET", &notify_path)
            // cgroup2 inside, like a NixOS host (caveat C3).
            .env("SYSTEMD_NSPAWN_UNIFIED_HIERARCHY", "1")
            .stdin(Stdio::null())
            .stdout(console.try_clone().unwrap())
            .stderr(console);
        // SAFETY: only open/write/close on strings prepared before the fork. Moving into a
        // private cgroup keeps nspawn's payload/supervisor split away from others' (caveat C2).
        unsafe {
            cmd.pre_exec(move || {
                for path in &procs {
                    let fd = libc::open(path.as_ptr(), libc::O_WRONLY);
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    let n = libc::write(fd, b"0".as_ptr().cast(), 1);
                    libc::close(fd);
                    if n != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        host.child = Some(cmd.spawn().expect("running systemd-nspawn"));
        let deadline = Instant::now() + BOOT_TIMEOUT;
        let mut buf = [0u8; 4096];
        let mut ready = false;
        while !ready {
            if Instant::now() > deadline {
                panic!(
                    "test host {name} not ready after {BOOT_TIMEOUT:?}:\n{}",
                    host.console()
                );
            }
            if let Some(Ok(Some(status))) = host.child.as_mut().map(Child::try_wait) {
                panic!(
                    "test host {name}: nspawn exited ({status}):\n{}",
                    host.console()
                );
            }
            let Ok(n) = notify.recv(&mut buf) else {
                continue;
            };
            for field in String::from_utf8_lossy(&buf[..n]).lines() {
                if let Some(pid) = field.strip_prefix("X_NSPAWN_LEADER_PID=") {
                    host.leader = pid.trim().parse().ok();
                } else if field == "READY=1" {
                    ready = true;
                }
            }
        }
        assert!(host.leader.is_some(), "nspawn did not report the leader");
        host
    }

    fn console(&self) -> String {
        std::fs::read_to_string(self.base.join("console.log")).unwrap_or_default()
    }

    /// A path of the test host's file system (files written here show up inside at once,
    /// except below /run, /usr, /proc, /sys and /dev).
    pub fn path(&self, inside: &str) -> PathBuf {
        self.root.join(inside.trim_start_matches('/'))
    }

    /// A command run inside all of the test host's namespaces, with a clean environment.
    pub fn command(&self, argv: &[&str]) -> Command {
        let leader = self.leader.expect("booted").to_string();
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &leader, "-a", "--", "/usr/bin/env", "-i", PATH])
            .args(["HOME=/root", "TERM=dumb", "NO_COLOR=1"])
            .args(argv)
            .stdin(Stdio::null());
        cmd
    }

    pub fn exec(&self, argv: &[&str]) -> Output {
        self.command(argv).output().expect("nsenter")
    }

    /// `ncsh ARGS` inside the test host.
    pub fn ncsh(&self, args: &[&str]) -> Output {
        let mut argv = vec![NCSH];
        argv.extend_from_slice(args);
        self.exec(&argv)
    }

    fn nspawn_pid(&self) -> Option<Pid> {
        self.child.as_ref().map(|c| Pid::from_raw(c.id() as i32))
    }

    fn wait_child(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.child.as_mut().map(Child::try_wait) {
                Some(Ok(None)) => std::thread::sleep(Duration::from_millis(20)),
                _ => return true,
            }
        }
        false
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        if let Some(pid) = self.nspawn_pid() {
            // nspawn turns SIGTERM into a clean halt of the test host (nested containers too).
            let _ = kill(pid, Signal::SIGTERM);
            if !self.wait_child(HALT_TIMEOUT) {
                eprintln!("test host {}: halt timed out, killing it", self.name);
                // SIGKILL of its PID 1 kills its whole PID namespace (caveat C6).
                if let Some(leader) = self.leader {
                    let _ = kill(Pid::from_raw(leader), Signal::SIGKILL);
                }
                if !self.wait_child(Duration::from_secs(5)) {
                    let _ = kill(pid, Signal::SIGKILL);
                }
            }
            if let Some(child) = self.child.as_mut() {
                let _ = child.wait();
            }
        }
        // Depth-first: nspawn leaves payload/ and supervisor/ below ours.
        for cg in &self.cgroups {
            let mut dirs = Vec::new();
            let mut stack = vec![cg.clone()];
            while let Some(dir) = stack.pop() {
                if let Ok(entries) = std::fs::read_dir(&dir) {
                    for e in entries.flatten() {
                        if e.file_type().is_ok_and(|t| t.is_dir()) {
                            stack.push(e.path());
                        }
                    }
                }
                dirs.push(dir);
            }
            for dir in dirs.iter().rev() {
                let _ = std::fs::remove_dir(dir);
            }
        }
        let nspawn_run = Path::new("/run/systemd/nspawn");
        let _ = std::fs::remove_dir_all(nspawn_run.join("propagate").join(&self.name));
        if let Some((dev, ino)) = self.root_inode {
            let _ = std::fs::remove_file(nspawn_run.join(format!("locks/inode-{dev}:{ino}")));
        }
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// Nothing of the test host is left on this machine.
pub fn assert_gone(name: &str) {
    let mut left = Vec::new();
    for h in hierarchies() {
        let cg = h.join(format!("sdh-{name}"));
        if cg.exists() {
            left.push(cg.display().to_string());
        }
    }
    for path in [
        PathBuf::from("/run/systemd/nspawn/propagate").join(name),
        std::env::temp_dir().join(format!("sdh-{name}")),
    ] {
        if path.exists() {
            left.push(path.display().to_string());
        }
    }
    assert!(left.is_empty(), "test host {name} left debris: {left:?}");
}
