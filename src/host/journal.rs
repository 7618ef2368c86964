//! A container's journal, read on the host (`ncsh logs`): journald inside keeps it in the
//! root's `/var/log/journal/MACHINE-ID/` (the skeleton makes the directory, so it is persistent),
//! there while the container runs and after it stopped. The root is the container's: every
//! file is opened through [`Root`] (links resolved inside it, regular files only) and handed
//! to the host's `journalctl` as `--file=/proc/self/fd/N`, so journalctl opens no path of the
//! container's itself. A container that never booted, or booted before the directory existed,
//! has no journal files: that is an empty answer, not an error. Following (`-f`) runs the
//! container's own `journalctl -f` inside it instead (journalctl does not follow files given
//! with `--file`), so it needs the container running.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};
use crate::files::Root;

const JOURNALCTL: &str = "/usr/bin/journalctl";
pub const JOURNAL_DIR: &str = "var/log/journal";

/// What to show: like `journalctl -u UNIT -n LINES -f`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    pub unit: Option<String>,
    pub lines: Option<u64>,
}

/// The journal files of the root, opened.
fn journal_files(root: &Root) -> Result<Vec<File>> {
    let mut files = Vec::new();
    let mut dirs = vec![Path::new(JOURNAL_DIR).to_path_buf()];
    for sub in root.list(JOURNAL_DIR)? {
        dirs.push(Path::new(JOURNAL_DIR).join(sub));
    }
    for dir in dirs {
        let Ok(names) = root.list(&dir) else {
            continue; // a file where a machine directory would be
        };
        let mut names: Vec<_> = names
            .into_iter()
            .filter(|n| {
                let n = n.to_string_lossy();
                n.ends_with(".journal") || n.ends_with(".journal~")
            })
            .collect();
        names.sort();
        for name in names {
            // Anything but a regular file (a FIFO the container planted) is left out.
            if let Ok(Some(file)) = root.open_file(dir.join(name)) {
                files.push(file);
            }
        }
    }
    Ok(files)
}

fn journalctl_command(files: &[File], query: &LogQuery) -> Result<Command> {
    if !Path::new(JOURNALCTL).exists() {
        return Err(Error::MissingTool {
            tool: "journalctl".into(),
            package: "systemd",
        });
    }
    let mut cmd = Command::new(JOURNALCTL);
    cmd.arg("--no-pager").arg("--quiet");
    if let Some(unit) = &query.unit {
        cmd.arg(format!("--unit={unit}"));
    }
    if let Some(lines) = query.lines {
        cmd.arg(format!("--lines={lines}"));
    }
    let fds: Vec<i32> = files.iter().map(AsRawFd::as_raw_fd).collect();
    for fd in &fds {
        cmd.arg(format!("--file=/proc/self/fd/{fd}"));
    }
    // SAFETY: fcntl is async-signal-safe; it only clears close-on-exec on our own descriptors,
    // which journalctl then opens by their /proc/self/fd names.
    unsafe {
        cmd.pre_exec(move || {
            for fd in &fds {
                if libc::fcntl(*fd, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    cmd.stdin(Stdio::null());
    Ok(cmd)
}

/// The journal's lines (journalctl's short format); empty when it has none.
pub fn read(root: &Root, query: &LogQuery) -> Result<String> {
    let files = journal_files(root)?;
    if files.is_empty() {
        return Ok(String::new());
    }
    let out = journalctl_command(&files, query)?
        .output()
        .map_err(|e| Error::io("running journalctl", e))?;
    if !out.status.success() {
        return Err(Error::Usage(format!(
            "journalctl failed on {}: {}",
            root.host_path(JOURNAL_DIR).display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The command that follows the journal inside the running container (its own journalctl on
/// its own journal, volatile part included): `journalctl -f` with the query.
pub fn follow_argv(query: &LogQuery) -> Vec<String> {
    let mut argv = vec![
        "journalctl".to_string(),
        "--no-pager".into(),
        "--follow".into(),
    ];
    if let Some(unit) = &query.unit {
        argv.push(format!("--unit={unit}"));
    }
    if let Some(lines) = query.lines {
        argv.push(format!("--lines={lines}"));
    }
    argv
}
