//! Applying a generation to a container root (the file part of NixOS's activation): managed
//! files written or removed, units and their `.wants` links, users and groups merged into the
//! container's own `/etc/passwd`, `group` and `shadow` (lines the container added itself, e.g.
//! by systemd-sysusers, are kept). What changed for units is returned, so a running container
//! can be switched live.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::generation::{Generation, ManagedFile, check_container_path};
use crate::error::{Error, Result};
use crate::files::{Entry, Root};

/// Units a switch has to act on.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct UnitChanges {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    /// Was a unit file or a `.wants` link written or removed (systemd must reload)? Not when
    /// only restart triggers changed.
    pub files_changed: bool,
}

/// Write a managed file unless it is there as it should be; true if something was written.
fn write_file(root: &Root, container_path: &str, file: &ManagedFile) -> Result<bool> {
    check_container_path(container_path)?;
    match file {
        ManagedFile::Text { text, mode } => {
            let entry = root.entry(container_path)?;
            if entry == Some(Entry::Dir) {
                return Err(Error::Usage(format!(
                    "{container_path} is a directory in the container"
                )));
            }
            let same = entry == Some(Entry::File { mode: *mode })
                && root
                    .read(container_path)
                    .ok()
                    .flatten()
                    .is_some_and(|t| t == text.as_bytes());
            if !same {
                root.write(container_path, text.as_bytes(), *mode)?;
            }
            Ok(!same)
        }
        ManagedFile::Symlink { target } => {
            let same = root.read_link(container_path)?.as_deref() == Some(Path::new(target));
            if !same {
                root.symlink(target, container_path)?;
            }
            Ok(!same)
        }
    }
}

/// The marker of a unit's restart trigger (a digest of the files it reads, as NixOS's
/// `restartTriggers`): in the generation's unit text, so a changed file restarts the unit, but
/// not in the unit file, so systemd has nothing to reload when only the trigger changed.
pub const RESTART_TRIGGER: &str = "# restart trigger:";

/// What is written to the unit file: the unit's text without its restart-trigger lines.
pub fn unit_file_text(text: &str) -> String {
    text.split_inclusive('\n')
        .filter(|l| !l.starts_with(RESTART_TRIGGER))
        .collect()
}

/// Remove a path a generation managed.
fn remove(root: &Root, container_path: &str) -> Result<()> {
    check_container_path(container_path)?;
    root.remove(container_path)
}

const UNIT_DIR: &str = "/etc/systemd/system";

fn wants_link(target: &str, unit: &str) -> String {
    format!("{UNIT_DIR}/{target}.wants/{unit}")
}

/// Apply `new` to `root`, replacing what `old` (the active generation, if any) put there.
pub fn apply(root: &Root, new: &Generation, old: Option<&Generation>) -> Result<UnitChanges> {
    let empty = Generation::default();
    let old = old.unwrap_or(&empty);
    for (path, file) in &new.files {
        write_file(root, path, file)?;
    }
    for path in old.files.keys().filter(|p| !new.files.contains_key(*p)) {
        remove(root, path)?;
    }

    let mut changes = UnitChanges::default();
    for (name, unit) in &new.units {
        let unit_path = format!("{UNIT_DIR}/{name}");
        changes.files_changed |= write_file(
            root,
            &unit_path,
            &ManagedFile::Text {
                text: unit_file_text(&unit.text),
                mode: 0o644,
            },
        )?;
        for target in &unit.wanted_by {
            changes.files_changed |= write_file(
                root,
                &wants_link(target, name),
                &ManagedFile::Symlink {
                    target: format!("../{name}"),
                },
            )?;
        }
        let Some(before) = old.units.get(name) else {
            changes.added.push(name.clone());
            continue;
        };
        if before.text != unit.text {
            changes.changed.push(name.clone());
        }
        // The unit may be wanted by fewer targets now, whether its text changed or not.
        for target in before
            .wanted_by
            .iter()
            .filter(|t| !unit.wanted_by.contains(t))
        {
            remove(root, &wants_link(target, name))?;
            changes.files_changed = true;
        }
    }
    for (name, unit) in old
        .units
        .iter()
        .filter(|(n, _)| !new.units.contains_key(*n))
    {
        for target in &unit.wanted_by {
            remove(root, &wants_link(target, name))?;
        }
        remove(root, &format!("{UNIT_DIR}/{name}"))?;
        changes.removed.push(name.clone());
        changes.files_changed = true;
    }

    apply_users(root, new, old)?;
    Ok(changes)
}

/// Remove the temporary files an interrupted [`apply`] of these generations may have left.
pub fn remove_temporaries(root: &Root, generations: &[&Generation]) -> Result<()> {
    let mut paths: BTreeSet<String> = ["/etc/passwd", "/etc/group", "/etc/shadow"]
        .map(String::from)
        .into();
    for generation in generations {
        paths.extend(generation.files.keys().cloned());
        for (name, unit) in &generation.units {
            paths.insert(format!("{UNIT_DIR}/{name}"));
            paths.extend(unit.wanted_by.iter().map(|t| wants_link(t, name)));
        }
    }
    for path in paths {
        check_container_path(&path)?;
        root.remove_temporaries(&path)?;
    }
    Ok(())
}

/// `/etc/passwd`-style file as (name, fields) lines, in order.
struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    fn read(root: &Root, path: &str) -> Result<Table> {
        let text = root.read_string(path)?.unwrap_or_default();
        Ok(Table {
            rows: text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| l.split(':').map(String::from).collect())
                .collect(),
        })
    }

    fn get(&mut self, name: &str) -> Option<&mut Vec<String>> {
        self.rows
            .iter_mut()
            .find(|r| r.first().is_some_and(|n| n == name))
    }

    fn remove(&mut self, name: &str) {
        self.rows.retain(|r| r.first().is_none_or(|n| n != name));
    }

    fn ids(&self, column: usize) -> BTreeSet<u32> {
        self.rows
            .iter()
            .filter_map(|r| r.get(column)?.parse().ok())
            .collect()
    }

    fn render(&self) -> String {
        self.rows
            .iter()
            .map(|r| format!("{}\n", r.join(":")))
            .collect()
    }
}

/// A free id: system ones counting down from 999, normal ones up from 1000.
fn allocate(used: &BTreeSet<u32>, system: bool) -> Result<u32> {
    let found = if system {
        (400..=999).rev().find(|i| !used.contains(i))
    } else {
        (1000..60000).find(|i| !used.contains(i))
    };
    found.ok_or_else(|| Error::Usage("no free user or group id left".into()))
}

fn check_field(what: &str, value: &str) -> Result<()> {
    if value.contains([':', '\n']) {
        return Err(Error::Usage(format!(
            "{what} ‘{value}’ may not contain ‘:’ or a newline"
        )));
    }
    Ok(())
}

/// Add `user` to (or remove it from) the members of `name` in the group table.
fn set_member(group: &mut Table, name: &str, user: &str, member: bool) {
    let Some(row) = group.get(name) else { return };
    while row.len() < 4 {
        row.push(String::new());
    }
    let mut members: Vec<String> = row[3]
        .split(',')
        .filter(|m| !m.is_empty() && (member || *m != user))
        .map(String::from)
        .collect();
    if member && !members.iter().any(|m| m == user) {
        members.push(user.to_string());
    }
    row[3] = members.join(",");
}

fn apply_users(root: &Root, new: &Generation, old: &Generation) -> Result<()> {
    if new.users.is_empty()
        && new.groups.is_empty()
        && old.users.is_empty()
        && old.groups.is_empty()
    {
        return Ok(());
    }
    let mut passwd = Table::read(root, "/etc/passwd")?;
    let mut group = Table::read(root, "/etc/group")?;
    let mut shadow = Table::read(root, "/etc/shadow")?;

    for name in old
        .users
        .keys()
        .filter(|n| !new.users.contains_key(*n) && n.as_str() != "root")
    {
        passwd.remove(name);
        shadow.remove(name);
        for row in &mut group.rows {
            if let Some(members) = row.get_mut(3) {
                *members = members
                    .split(',')
                    .filter(|m| !m.is_empty() && m != name)
                    .collect::<Vec<_>>()
                    .join(",");
            }
        }
    }
    for name in old.groups.keys().filter(|n| !new.groups.contains_key(*n)) {
        group.remove(name);
    }

    // Groups: the declared ones, plus any a user names.
    let mut wanted: BTreeMap<String, (Option<u32>, bool)> = new
        .groups
        .iter()
        .map(|(n, g)| (n.clone(), (g.gid, g.system)))
        .collect();
    for user in new.users.values() {
        for g in std::iter::once(&user.group).chain(&user.extra_groups) {
            wanted.entry(g.clone()).or_insert((None, true));
        }
    }
    for (name, (gid, system)) in &wanted {
        check_field("group name", name)?;
        let used = group.ids(2);
        match group.get(name) {
            Some(row) => {
                if let Some(gid) = gid {
                    row[2] = gid.to_string();
                }
            }
            None => {
                let gid = match gid {
                    Some(g) => *g,
                    None => allocate(&used, *system)?,
                };
                group.rows.push(vec![
                    name.clone(),
                    "x".into(),
                    gid.to_string(),
                    String::new(),
                ]);
            }
        }
    }

    let mut homes: Vec<(String, u32, u32, u32)> = Vec::new();
    for (name, user) in &new.users {
        for (what, value) in [
            ("user name", name),
            ("description", &user.description),
            ("home", &user.home),
            ("shell", &user.shell),
        ] {
            check_field(what, value)?;
        }
        let gid: u32 = group
            .get(&user.group)
            .and_then(|r| r.get(2)?.parse().ok())
            .ok_or_else(|| {
                Error::Usage(format!(
                    "group ‘{}’ of user ‘{name}’ does not exist",
                    user.group
                ))
            })?;
        let used = passwd.ids(2);
        let existed = passwd.get(name).is_some();
        if name == "root" {
            // root keeps its identity; only its password can be set.
        } else {
            let uid = match (
                user.uid,
                passwd.get(name).and_then(|r| r.get(2)?.parse::<u32>().ok()),
            ) {
                (Some(uid), _) | (None, Some(uid)) => uid,
                (None, None) => allocate(&used, user.system)?,
            };
            let row = vec![
                name.clone(),
                "x".into(),
                uid.to_string(),
                gid.to_string(),
                user.description.clone(),
                user.home.clone(),
                user.shell.clone(),
            ];
            match passwd.get(name) {
                Some(existing) => *existing = row,
                None => passwd.rows.push(row),
            }
            if user.create_home {
                homes.push((user.home.clone(), user.home_mode, uid, gid));
            }
        }
        let password = match (&user.hashed_password, existed || shadow.get(name).is_some()) {
            (Some(hash), _) => Some(hash.clone()),
            (None, false) => Some(
                user.initial_hashed_password
                    .clone()
                    .unwrap_or_else(|| "*".into()),
            ),
            (None, true) => None,
        };
        if let Some(hash) = password {
            check_field("password hash", &hash)?;
            match shadow.get(name) {
                Some(row) if row.len() > 1 => row[1] = hash,
                _ => shadow.rows.push(vec![
                    name.clone(),
                    hash,
                    "19000".into(),
                    "0".into(),
                    "99999".into(),
                    "7".into(),
                    String::new(),
                    String::new(),
                    String::new(),
                ]),
            }
        }
        for g in &user.extra_groups {
            set_member(&mut group, g, name, true);
        }
    }
    // users.groups.NAME.members: added; those an older generation listed and this one does
    // not (nor the user's extra_groups) removed.
    for (name, g) in &old.groups {
        let Some(now) = new.groups.get(name) else {
            continue;
        };
        for member in g.members.iter().filter(|m| !now.members.contains(m)) {
            let still = new
                .users
                .get(member)
                .is_some_and(|u| u.extra_groups.contains(name));
            if !still {
                set_member(&mut group, name, member, false);
            }
        }
    }
    for (name, g) in &new.groups {
        for member in &g.members {
            check_field("group member", member)?;
            set_member(&mut group, name, member, true);
        }
    }
    root.write("/etc/group", group.render().as_bytes(), 0o644)?;
    root.write("/etc/passwd", passwd.render().as_bytes(), 0o644)?;
    root.write("/etc/shadow", shadow.render().as_bytes(), 0o600)?;
    for (home, mode, uid, gid) in homes {
        check_container_path(&home)?;
        root.create_dir_owned(&home, mode, (uid, gid))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::generation::{Group, Unit, User};
    use std::fs;
    use std::path::Path;

    fn root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("etc")).unwrap();
        fs::write(dir.path().join("etc/passwd"), "root:x:0:0:root:/root:/bin/bash\nmessagebus:x:100:102::/nonexistent:/usr/sbin/nologin\n").unwrap();
        fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nmessagebus:x:102:\n",
        )
        .unwrap();
        fs::write(dir.path().join("etc/shadow"), "root:*:19000:0:99999:7:::\n").unwrap();
        dir
    }

    fn alice() -> User {
        User {
            uid: None,
            group: "users".into(),
            extra_groups: vec!["wheel".into()],
            description: "Alice".into(),
            home: "/home/alice".into(),
            create_home: true,
            home_mode: 0o750,
            shell: "/bin/bash".into(),
            hashed_password: None,
            initial_hashed_password: Some("$6$salt$hash".into()),
            system: false,
        }
    }

    #[test]
    fn a_changed_restart_trigger_restarts_without_a_unit_file_change() {
        let dir = root();
        let r = Root::open(dir.path()).unwrap();
        let unit = |trigger: &str| Unit {
            text: format!("[Service]\nExecStart=/bin/true\n{RESTART_TRIGGER} {trigger}\n"),
            wanted_by: vec!["multi-user.target".into()],
        };
        let mut g1 = Generation::default();
        g1.units.insert("web.service".into(), unit("1111"));
        let first = apply(&r, &g1, None).unwrap();
        assert!(first.files_changed);
        let file = "etc/systemd/system/web.service";
        let on_disk = fs::read_to_string(dir.path().join(file)).unwrap();
        assert_eq!(on_disk, "[Service]\nExecStart=/bin/true\n");

        let mut g2 = g1.clone();
        g2.units.insert("web.service".into(), unit("2222"));
        let changes = apply(&r, &g2, Some(&g1)).unwrap();
        assert_eq!(changes.changed, vec!["web.service".to_string()]);
        assert!(!changes.files_changed, "only the trigger changed");
        let plan = crate::builder::switch::Plan::new(&g2, &changes);
        assert_eq!(plan.restart, vec!["web.service".to_string()]);
        assert!(!plan.daemon_reload);

        // The same apply again: nothing changed at all.
        let again = apply(&r, &g2, Some(&g2)).unwrap();
        assert_eq!(again, UnitChanges::default());
    }

    #[test]
    fn files_units_and_their_removal() {
        let dir = root();
        let mut g1 = Generation::default();
        g1.files.insert(
            "/etc/motd".into(),
            ManagedFile::Text {
                text: "hi\n".into(),
                mode: 0o644,
            },
        );
        g1.files.insert(
            "/etc/localtime".into(),
            ManagedFile::Symlink {
                target: "/usr/share/zoneinfo/UTC".into(),
            },
        );
        g1.units.insert(
            "a.service".into(),
            Unit {
                text: "[Service]\n".into(),
                wanted_by: vec!["multi-user.target".into()],
            },
        );
        g1.units.insert(
            "b.service".into(),
            Unit {
                text: "[Service]\n".into(),
                wanted_by: vec![],
            },
        );
        let changes = apply(&Root::open(dir.path()).unwrap(), &g1, None).unwrap();
        assert_eq!(changes.added, ["a.service", "b.service"]);
        let r = dir.path();
        assert_eq!(fs::read_to_string(r.join("etc/motd")).unwrap(), "hi\n");
        assert_eq!(
            fs::read_link(r.join("etc/systemd/system/multi-user.target.wants/a.service")).unwrap(),
            Path::new("../a.service")
        );

        let mut g2 = g1.clone();
        g2.files.remove("/etc/motd");
        g2.units.remove("a.service");
        g2.units.get_mut("b.service").unwrap().text = "[Service]\nType=oneshot\n".into();
        let changes = apply(&Root::open(r).unwrap(), &g2, Some(&g1)).unwrap();
        assert_eq!(
            changes,
            UnitChanges {
                added: vec![],
                changed: vec!["b.service".into()],
                removed: vec!["a.service".into()],
                files_changed: true,
            }
        );
        assert!(!r.join("etc/motd").exists());
        assert!(!r.join("etc/systemd/system/a.service").exists());
        assert!(
            fs::symlink_metadata(r.join("etc/systemd/system/multi-user.target.wants/a.service"))
                .is_err()
        );

        // A unit whose text and targets both change loses the link of the target it left.
        let mut g3 = g2.clone();
        let b = g3.units.get_mut("b.service").unwrap();
        b.wanted_by = vec!["multi-user.target".into()];
        let changes = apply(&Root::open(r).unwrap(), &g3, Some(&g2)).unwrap();
        assert!(changes.changed.is_empty());
        let b_link = r.join("etc/systemd/system/multi-user.target.wants/b.service");
        assert!(fs::symlink_metadata(&b_link).is_ok());
        let mut g4 = g3.clone();
        let b = g4.units.get_mut("b.service").unwrap();
        b.text = "[Service]\nType=simple\n".into();
        b.wanted_by = vec![];
        let changes = apply(&Root::open(r).unwrap(), &g4, Some(&g3)).unwrap();
        assert_eq!(changes.changed, ["b.service"]);
        assert!(
            fs::symlink_metadata(&b_link).is_err(),
            "the old .wants link stays"
        );
    }

    #[test]
    fn users_are_merged_and_removed() {
        let dir = root();
        let r = dir.path();
        let mut g = Generation::default();
        g.users.insert("alice".into(), alice());
        g.groups.insert(
            "users".into(),
            Group {
                gid: Some(100),
                system: true,
                members: Vec::new(),
            },
        );
        g.groups.insert(
            "admins".into(),
            Group {
                gid: None,
                system: true,
                members: vec!["root".into(), "alice".into()],
            },
        );
        apply(&Root::open(r).unwrap(), &g, None).unwrap();
        let passwd = fs::read_to_string(r.join("etc/passwd")).unwrap();
        assert!(
            passwd.contains("alice:x:1000:100:Alice:/home/alice:/bin/bash\n"),
            "{passwd}"
        );
        assert!(passwd.starts_with("root:x:0:0:root:/root:/bin/bash\nmessagebus"));
        let group = fs::read_to_string(r.join("etc/group")).unwrap();
        assert!(
            group.contains("users:x:100:\n") && group.contains("wheel:x:998:alice\n"),
            "{group}"
        );
        assert!(group.contains("admins:x:999:root,alice\n"), "{group}");
        // A member no longer listed leaves the group.
        let mut fewer = g.clone();
        fewer.groups.get_mut("admins").unwrap().members = vec!["alice".into()];
        apply(&Root::open(r).unwrap(), &fewer, Some(&g)).unwrap();
        let group = fs::read_to_string(r.join("etc/group")).unwrap();
        assert!(group.contains("admins:x:999:alice\n"), "{group}");
        assert!(
            fs::read_to_string(r.join("etc/shadow"))
                .unwrap()
                .contains("alice:$6$salt$hash:")
        );
        assert!(r.join("home/alice").is_dir());
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(r.join("home/alice"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o7777, 0o750);
        }

        // The initial password is not reapplied; a hashed password is.
        let mut g2 = g.clone();
        g2.users.get_mut("alice").unwrap().initial_hashed_password = Some("$6$other$x".into());
        apply(&Root::open(r).unwrap(), &g2, Some(&g)).unwrap();
        assert!(
            fs::read_to_string(r.join("etc/shadow"))
                .unwrap()
                .contains("alice:$6$salt$hash:")
        );
        g2.users.get_mut("alice").unwrap().hashed_password = Some("$6$new$y".into());
        apply(&Root::open(r).unwrap(), &g2, Some(&g)).unwrap();
        assert!(
            fs::read_to_string(r.join("etc/shadow"))
                .unwrap()
                .contains("alice:$6$new$y:")
        );

        let g3 = Generation::default();
        apply(&Root::open(r).unwrap(), &g3, Some(&g2)).unwrap();
        let passwd = fs::read_to_string(r.join("etc/passwd")).unwrap();
        assert!(!passwd.contains("alice"), "{passwd}");
        assert!(
            !fs::read_to_string(r.join("etc/group"))
                .unwrap()
                .contains("alice")
        );
    }

    #[test]
    fn bad_fields_and_paths_are_refused() {
        let dir = root();
        let mut g = Generation::default();
        let mut bad = alice();
        bad.description = "a:b".into();
        g.users.insert("alice".into(), bad);
        assert!(apply(&Root::open(dir.path()).unwrap(), &g, None).is_err());
        let mut g = Generation::default();
        g.files.insert(
            "/../escape".into(),
            ManagedFile::Text {
                text: String::new(),
                mode: 0o644,
            },
        );
        assert!(apply(&Root::open(dir.path()).unwrap(), &g, None).is_err());
    }
}
