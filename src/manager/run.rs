//! `run` with options: who the command runs as, resolved from the container's own
//! /etc/passwd and /etc/group (read through `files::Root`: the root is the container's).

use std::process::Output;

use super::{Manager, require_root};
use crate::container::ContainerName;
use crate::error::{Error, Result};
use crate::files::Root;
use crate::host::enter::{self, Identity, ROOT_COMMAND, RunOptions};
use crate::host::pty;

/// `user` (a name, or a UID) as the container's /etc/passwd and /etc/group have it.
pub fn resolve_user(root: &Root, container: &str, user: &str) -> Result<Identity> {
    let passwd = root.read_string("etc/passwd")?.unwrap_or_default();
    let by_uid = user.parse::<u32>().ok();
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 7)
        .find(|f| f[0] == user || (by_uid.is_some() && f[2].parse::<u32>().ok() == by_uid));
    let Some(f) = entry else {
        return Err(Error::Usage(format!(
            "no user ‘{user}’ in container {container}'s /etc/passwd: give a user it has (users.users in its configuration)"
        )));
    };
    let number = |field: &str, what: &str| -> Result<u32> {
        field.parse().map_err(|_| {
            Error::Usage(format!(
                "container {container}'s /etc/passwd has a bad {what} for ‘{}’: ‘{field}’",
                f[0]
            ))
        })
    };
    let (uid, gid) = (number(f[2], "UID")?, number(f[3], "GID")?);
    let group = root.read_string("etc/group")?.unwrap_or_default();
    let mut groups: Vec<u32> = vec![gid];
    for line in group.lines() {
        let g: Vec<&str> = line.split(':').collect();
        if g.len() >= 4
            && g[3].split(',').any(|m| m == f[0])
            && let Ok(n) = g[2].parse::<u32>()
            && !groups.contains(&n)
        {
            groups.push(n);
        }
    }
    Ok(Identity {
        name: f[0].to_string(),
        uid,
        gid,
        groups,
        home: if f[5].is_empty() {
            "/".into()
        } else {
            f[5].to_string()
        },
        shell: f[6].to_string(),
    })
}

/// `--setenv K=V` words as pairs; a word without `=` or with an empty or NUL-holding key is
/// refused.
pub fn env_pairs(words: &[String]) -> Result<Vec<(String, String)>> {
    words
        .iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() && !k.contains('\0') && !v.contains('\0') => {
                Ok((k.to_string(), v.to_string()))
            }
            _ => Err(Error::Usage(format!(
                "--setenv ‘{w}’ is not NAME=VALUE (a non-empty NAME, no NUL bytes)"
            ))),
        })
        .collect()
}

impl Manager {
    fn identity(&self, name: &ContainerName, opts: &RunOptions) -> Result<Option<Identity>> {
        match &opts.user {
            None => Ok(None),
            Some(user) => {
                let root = Root::open(&self.paths.root(name))?;
                resolve_user(&root, name, user).map(Some)
            }
        }
    }

    /// `run` with options, stdio passed through (or on a terminal inside with `pty`); the
    /// command's exit code.
    pub fn run_with(
        &self,
        name: &ContainerName,
        argv: &[String],
        opts: &RunOptions,
    ) -> Result<i32> {
        require_root()?;
        let leader = self.leader(name)?;
        let identity = self.identity(name, opts)?;
        if opts.pty {
            return pty::run_command(leader, argv, opts, identity);
        }
        let mut cmd = enter::command_for(leader, argv, opts, identity, ROOT_COMMAND)?;
        let status = cmd.status().map_err(|e| enter::spawn_error(&argv[0], e))?;
        Ok(enter::exit_code(status))
    }

    /// The same with the output captured and `stdin` fed to it (closed when None).
    pub fn run_captured_with(
        &self,
        name: &ContainerName,
        argv: &[String],
        stdin: Option<&[u8]>,
        opts: &RunOptions,
    ) -> Result<Output> {
        require_root()?;
        let leader = self.leader(name)?;
        let identity = self.identity(name, opts)?;
        let mut cmd = enter::command_for(leader, argv, opts, identity, ROOT_COMMAND)?;
        enter::capture(&mut cmd, argv, stdin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_resolve_by_name_or_uid_with_their_groups() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::create(dir.path(), 0o755).unwrap();
        root.write(
            "etc/passwd",
            b"root:x:0:0::/root:/bin/bash\nalice:x:1000:100::/home/alice:/bin/sh\n",
            0o644,
        )
        .unwrap();
        root.write("etc/group", b"users:x:100:\nwheel:x:1:alice,bob\n", 0o644)
            .unwrap();
        let alice = resolve_user(&root, "c", "alice").unwrap();
        assert_eq!(
            (alice.uid, alice.gid, alice.groups.clone()),
            (1000, 100, vec![100, 1])
        );
        assert_eq!(alice.home, "/home/alice");
        assert_eq!(resolve_user(&root, "c", "1000").unwrap(), alice);
        let err = resolve_user(&root, "c", "mallory").unwrap_err().to_string();
        assert!(err.contains("no user ‘mallory’"), "{err}");
    }

    #[test]
    fn setenv_words_must_be_name_equals_value() {
        assert_eq!(
            env_pairs(&["A=1".into(), "B==x".into(), "C=".into()]).unwrap(),
            [
                ("A".into(), "1".into()),
                ("B".into(), "=x".into()),
                ("C".into(), "".into())
            ]
        );
        assert!(env_pairs(&["=1".into()]).is_err());
        assert!(env_pairs(&["NOVALUE".into()]).is_err());
    }
}
