//! The host's `sysusers.d` realized when the base system is written, so the container's
//! `systemd-sysusers.service` has nothing to do at boot (ARCHITECTURE.md, "The trimmed boot").
//! The format is sysusers.d(5)'s: `u`, `g` and `m` lines; `r` ranges and lines with `%`
//! specifiers are skipped (the host's own files use neither). Names already in the tables are
//! left as they are, as systemd-sysusers leaves them; groups are made first, then users, then
//! memberships, as systemd-sysusers does.

use std::collections::BTreeSet;

/// The `passwd`, `group` and `shadow` lines, as `:`-separated fields.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tables {
    pub passwd: Vec<Vec<String>>,
    pub group: Vec<Vec<String>>,
    pub shadow: Vec<Vec<String>>,
}

fn parse_table(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(':').map(String::from).collect())
        .collect()
}

fn render_table(rows: &[Vec<String>]) -> String {
    rows.iter().map(|r| format!("{}\n", r.join(":"))).collect()
}

impl Tables {
    pub fn parse(passwd: &str, group: &str, shadow: &str) -> Tables {
        Tables {
            passwd: parse_table(passwd),
            group: parse_table(group),
            shadow: parse_table(shadow),
        }
    }

    /// The three files' texts, in the order of [`Tables::parse`]'s arguments.
    pub fn render(&self) -> [String; 3] {
        [
            render_table(&self.passwd),
            render_table(&self.group),
            render_table(&self.shadow),
        ]
    }

    fn has(rows: &[Vec<String>], name: &str) -> bool {
        rows.iter().any(|r| r.first().is_some_and(|n| n == name))
    }

    fn ids(rows: &[Vec<String>]) -> BTreeSet<u32> {
        rows.iter().filter_map(|r| r.get(2)?.parse().ok()).collect()
    }

    fn gid_of(&self, name: &str) -> Option<String> {
        self.group
            .iter()
            .find(|r| r.first().is_some_and(|n| n == name))
            .and_then(|r| r.get(2).cloned())
    }

    /// A system id free in `rows` (and `also`), counting down from 999 as systemd-sysusers does.
    fn free_id(rows: &[Vec<String>], also: &[Vec<String>]) -> Option<u32> {
        let (used, more) = (Self::ids(rows), Self::ids(also));
        (1..=999)
            .rev()
            .find(|i| !used.contains(i) && !more.contains(i))
    }

    fn add_group(&mut self, name: &str, gid: Option<u32>) -> Option<String> {
        if let Some(gid) = self.gid_of(name) {
            return Some(gid);
        }
        let gid = match gid {
            Some(g) if !Self::ids(&self.group).contains(&g) => g,
            _ => Self::free_id(&self.group, &[])?,
        };
        self.group.push(vec![
            name.into(),
            "x".into(),
            gid.to_string(),
            String::new(),
        ]);
        Some(gid.to_string())
    }

    fn add_user(&mut self, user: &Line) {
        if Self::has(&self.passwd, &user.name) {
            return;
        }
        let (uid, gid) = match user.id.split_once(':') {
            Some((uid, gid)) => (uid.parse().ok(), Some(gid)),
            None => (user.id.parse().ok(), None),
        };
        let uid = match uid {
            Some(u) if !Self::ids(&self.passwd).contains(&u) => u,
            // The same number for the user and its group, where both are free.
            _ => match Self::free_id(&self.passwd, &self.group) {
                Some(u) => u,
                None => return,
            },
        };
        let gid = match gid {
            Some(g) if g.parse::<u32>().is_ok() => g.to_string(),
            Some(group) => match self.gid_of(group) {
                Some(g) => g,
                None => return,
            },
            None => match self.add_group(&user.name, Some(uid)) {
                Some(g) => g,
                None => return,
            },
        };
        let home = user.home.clone().unwrap_or_else(|| "/".into());
        let shell = user.shell.clone().unwrap_or_else(|| {
            if uid == 0 {
                "/bin/sh".into()
            } else {
                "/usr/sbin/nologin".into()
            }
        });
        self.passwd.push(vec![
            user.name.clone(),
            "x".into(),
            uid.to_string(),
            gid,
            user.gecos.clone().unwrap_or_default(),
            home,
            shell,
        ]);
        if !Self::has(&self.shadow, &user.name) {
            let mut row = vec![user.name.clone(), "!*".into()];
            row.resize(9, String::new());
            self.shadow.push(row);
        }
    }

    fn add_member(&mut self, user: &str, group: &str) {
        if self.add_group(group, None).is_none() {
            return;
        }
        let Some(row) = self
            .group
            .iter_mut()
            .find(|r| r.first().is_some_and(|n| n == group))
        else {
            return;
        };
        row.resize(row.len().max(4), String::new());
        let members = &mut row[3];
        if !members.split(',').any(|m| m == user) {
            if !members.is_empty() {
                members.push(',');
            }
            members.push_str(user);
        }
    }

    /// Add what `configs` (sysusers.d texts, in the order systemd reads them) declare.
    pub fn apply<'a>(&mut self, configs: impl IntoIterator<Item = &'a str>) {
        let lines: Vec<Line> = configs.into_iter().flat_map(parse).collect();
        for line in lines.iter().filter(|l| l.kind == 'g') {
            let _ = self.add_group(&line.name, line.id.parse().ok());
        }
        for line in lines.iter().filter(|l| l.kind == 'u') {
            self.add_user(line);
        }
        for line in lines.iter().filter(|l| l.kind == 'm') {
            self.add_member(&line.name, &line.id);
        }
    }
}

/// One `u`, `g` or `m` line (for `m`, `id` is the group).
#[derive(Debug, PartialEq, Eq)]
struct Line {
    kind: char,
    name: String,
    id: String,
    gecos: Option<String>,
    home: Option<String>,
    shell: Option<String>,
}

/// Split a line into fields: whitespace-separated, `"…"` quoting a field with spaces.
fn fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&first) = chars.peek() else {
            return out;
        };
        let mut field = String::new();
        if first == '"' {
            chars.next();
            for c in chars.by_ref() {
                if c == '"' {
                    break;
                }
                field.push(c);
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                field.push(c);
            }
        }
        out.push(field);
    }
}

/// A field's value; `-` (or nothing) is "not given".
fn given(field: Option<&String>) -> Option<String> {
    field.filter(|f| !f.is_empty() && *f != "-").cloned()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 31
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        && !name.starts_with('-')
}

fn parse(text: &str) -> Vec<Line> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.contains('%'))
        .filter_map(|l| {
            let f = fields(l);
            let kind = match f.first()?.as_str() {
                "u" | "u!" => 'u',
                "g" => 'g',
                "m" => 'm',
                _ => return None,
            };
            let name = f.get(1)?.clone();
            let id = given(f.get(2)).unwrap_or_default();
            // A path as the id (the owner of a file) is not followed: allocated instead.
            let id = if id.starts_with('/') {
                String::new()
            } else {
                id
            };
            if !valid_name(&name) || (kind == 'm' && !valid_name(&id)) {
                return None;
            }
            if [&name, &id].iter().any(|v| v.contains(['\n', ','])) {
                return None;
            }
            let no_colon = |v: Option<String>| v.filter(|v| !v.contains(':'));
            Some(Line {
                kind,
                name,
                id,
                gecos: no_colon(given(f.get(3))),
                home: no_colon(given(f.get(4))),
                shell: no_colon(given(f.get(5))),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: (&str, &str, &str) = (
        "root:x:0:0:System administrator:/root:/bin/bash\nmessagebus:x:100:102::/nonexistent:/usr/sbin/nologin\n",
        "root:x:0:\nmessagebus:x:102:\nnogroup:x:65534:\n",
        "root:*:19000:0:99999:7:::\n",
    );

    fn tables() -> Tables {
        Tables::parse(BASE.0, BASE.1, BASE.2)
    }

    #[test]
    fn fixed_ids_named_groups_and_defaults() {
        let mut t = tables();
        t.apply([
            "g tty 5 -\ng games 60\n# comment\nu www-data 33 - /var/www /usr/sbin/nologin\n\
             u games 5:60 - /usr/games\nu _apt 42:nogroup - /nonexistent\n",
        ]);
        let [passwd, group, shadow] = t.render();
        assert!(group.contains("tty:x:5:\n"), "{group}");
        assert!(group.contains("games:x:60:\n"), "{group}");
        assert!(
            passwd.contains("www-data:x:33:33::/var/www:/usr/sbin/nologin\n"),
            "{passwd}"
        );
        assert!(group.contains("www-data:x:33:\n"), "{group}");
        assert!(
            passwd.contains("games:x:5:60::/usr/games:/usr/sbin/nologin\n"),
            "{passwd}"
        );
        assert!(
            passwd.contains("_apt:x:42:65534::/nonexistent:"),
            "{passwd}"
        );
        assert!(shadow.contains("www-data:!*:::::::\n"), "{shadow}");
    }

    #[test]
    fn allocated_ids_count_down_and_existing_names_stay() {
        let mut t = tables();
        t.apply([
            "u messagebus - \"System Message Bus\"\nu polkitd - \"polkit\" /nonexistent\n\
             g systemd-journal - -\nu systemd-network - \"systemd Network Management\"\n",
        ]);
        let [passwd, group, _] = t.render();
        // messagebus was there: unchanged.
        assert!(
            passwd.contains("messagebus:x:100:102::/nonexistent:"),
            "{passwd}"
        );
        assert_eq!(passwd.matches("messagebus:").count(), 1);
        // Groups first (systemd-journal gets 999), then users: polkitd takes 998 for both.
        assert!(group.contains("systemd-journal:x:999:\n"), "{group}");
        assert!(
            passwd.contains("polkitd:x:998:998:polkit:/nonexistent:/usr/sbin/nologin\n"),
            "{passwd}"
        );
        assert!(passwd.contains("systemd-network:x:997:997:systemd Network Management:/:"));
    }

    #[test]
    fn members_and_lines_it_does_not_take() {
        let mut t = tables();
        t.apply([
            "u alice 1000\nm alice wheel\nm alice wheel\nr - 500-900\nu %b-x 12\n\
             u bad:name 13\nu evil 14 \"a:b\" /x:y\nu owned /etc/passwd\n",
        ]);
        let [passwd, group, _] = t.render();
        // Users before memberships: the group made for the membership comes last.
        assert!(group.contains("wheel:x:998:alice\n"), "{group}");
        assert!(!passwd.contains("%b"), "{passwd}");
        assert!(!passwd.contains("bad:name"), "{passwd}");
        assert!(
            passwd.contains("evil:x:14:14::/:/usr/sbin/nologin\n"),
            "{passwd}"
        );
        // A path as the id is not looked up on the host: an id is allocated.
        assert!(passwd.contains("owned:x:999:999::/:"), "{passwd}");
    }
}
