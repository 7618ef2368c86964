//! The option tree: attribute names → values, with where and at which priority each node was
//! defined, and NixOS-like merging of definitions.

use std::collections::BTreeMap;

use super::error::{EvalError, Location};
use super::value::{Value, parse_path, show_path};

/// The priority of a plain definition (`lib.mkOverride 100`).
pub const PRIORITY_PLAIN: i64 = 100;
/// `lib.mkDefault`.
pub const PRIORITY_DEFAULT: i64 = 1000;
/// `lib.mkForce`.
pub const PRIORITY_FORCE: i64 = 50;
/// `lib.mkOptionDefault`.
pub const PRIORITY_OPTION_DEFAULT: i64 = 1500;

/// Where and how strongly a node of the tree was defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Meta {
    pub priority: i64,
    /// Every definition that contributed, in merge order (more than one for merged sets, for
    /// concatenated lists and for equal values defined twice).
    pub locations: Vec<Location>,
}

/// How two definitions of the same attribute combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Inside one attribute set literal: sets merge, anything else defined twice is an error
    /// (`attribute 'x' already defined at …`), as in Nix.
    Strict,
    /// Across modules: the lowest priority number wins; at equal priority lists concatenate,
    /// equal values agree and different values conflict, as in the NixOS module system.
    Priority,
}

/// The merged result of evaluating a configuration: a tree of attribute names → values.
///
/// Attribute sets are nested nodes ([`Value::Attrs`]); everything else (lists, scalars, paths)
/// is a leaf. An empty set is a leaf too (`users.users.root = { };` defines something). Each
/// node remembers where it was defined and at which priority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionTree {
    pub(crate) root: Value,
    pub(crate) meta: BTreeMap<Vec<String>, Meta>,
}

impl Default for OptionTree {
    fn default() -> Self {
        OptionTree {
            root: Value::Attrs(BTreeMap::new()),
            meta: BTreeMap::new(),
        }
    }
}

fn is_leaf(v: &Value) -> bool {
    match v {
        Value::Attrs(a) => a.is_empty(),
        _ => true,
    }
}

fn under(key: &[String], prefix: &[String]) -> bool {
    key.len() >= prefix.len() && key[..prefix.len()] == *prefix
}

/// Moves every meta entry at or under `prefix` from `src` to `dst`.
fn move_metas(
    src: &mut BTreeMap<Vec<String>, Meta>,
    dst: &mut BTreeMap<Vec<String>, Meta>,
    prefix: &[String],
) {
    let keys: Vec<Vec<String>> = src
        .range(prefix.to_vec()..)
        .take_while(|(k, _)| under(k, prefix))
        .map(|(k, _)| k.clone())
        .collect();
    for k in keys {
        if let Some(m) = src.remove(&k) {
            dst.insert(k, m);
        }
    }
}

fn remove_metas(meta: &mut BTreeMap<Vec<String>, Meta>, prefix: &[String]) {
    meta.retain(|k, _| !under(k, prefix));
}

fn first_location(meta: &BTreeMap<Vec<String>, Meta>, path: &[String]) -> Location {
    meta.get(path)
        .and_then(|m| m.locations.first().cloned())
        .unwrap_or_else(|| Location::new("<unknown>", 0, 0))
}

/// The priority a node competes with: its own for a leaf, the strongest (lowest) of its leaves
/// for a non-empty set.
fn effective_priority(
    v: &Value,
    meta: &BTreeMap<Vec<String>, Meta>,
    path: &mut Vec<String>,
) -> i64 {
    match v {
        Value::Attrs(a) if !a.is_empty() => {
            let mut best = i64::MAX;
            for (k, child) in a {
                path.push(k.clone());
                best = best.min(effective_priority(child, meta, path));
                path.pop();
            }
            best
        }
        _ => meta
            .get(path.as_slice())
            .map(|m| m.priority)
            .unwrap_or(PRIORITY_PLAIN),
    }
}

/// Shortens a value's rendering for messages.
fn brief(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        let cut: String = s.chars().take(77).collect();
        format!("{cut}...")
    } else {
        s
    }
}

impl OptionTree {
    pub fn new() -> Self {
        Self::default()
    }

    /// The value at a dotted path (`"services.openssh.enable"`, `users.users."a.b".uid`): a leaf
    /// or a nested set. The empty path is the whole tree.
    pub fn get(&self, path: &str) -> Option<&Value> {
        self.get_path(&parse_path(path)?)
    }

    /// The value at a path given as attribute names (names may contain dots).
    pub fn get_path<S: AsRef<str>>(&self, path: &[S]) -> Option<&Value> {
        let mut v = &self.root;
        for seg in path {
            v = v.as_attrs()?.get(seg.as_ref())?;
        }
        Some(v)
    }

    /// The whole tree as one set.
    pub fn root(&self) -> &Value {
        &self.root
    }

    /// Whether nothing is defined.
    pub fn is_empty(&self) -> bool {
        self.root.as_attrs().is_none_or(|a| a.is_empty())
    }

    /// Every defined leaf (anything but a non-empty set) with its dotted path, sorted by path.
    pub fn leaves(&self) -> Vec<(String, &Value)> {
        fn walk<'a>(v: &'a Value, path: &mut Vec<String>, out: &mut Vec<(String, &'a Value)>) {
            match v {
                Value::Attrs(a) if !a.is_empty() => {
                    for (k, child) in a {
                        path.push(k.clone());
                        walk(child, path, out);
                        path.pop();
                    }
                }
                _ => {
                    if !path.is_empty() {
                        out.push((show_path(path), v));
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &mut Vec::new(), &mut out);
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Where the node at `path` was (first) defined.
    pub fn location(&self, path: &str) -> Option<Location> {
        let path = parse_path(path)?;
        self.meta
            .get(&path)
            .and_then(|m| m.locations.first().cloned())
    }

    /// Every definition that contributed to the node at `path`, in merge order.
    pub fn definitions(&self, path: &str) -> Vec<Location> {
        parse_path(path)
            .and_then(|p| self.meta.get(&p))
            .map(|m| m.locations.clone())
            .unwrap_or_default()
    }

    /// The priority of the node at `path` (for a set: the one its own definition carried;
    /// its leaves carry their own).
    pub fn priority(&self, path: &str) -> Option<i64> {
        let path = parse_path(path)?;
        self.get_path(&path)?;
        Some(
            self.meta
                .get(&path)
                .map(|m| m.priority)
                .unwrap_or(PRIORITY_PLAIN),
        )
    }

    /// Merges the definitions of `other` (a later module) into this tree, as NixOS merges the
    /// definitions of modules: sets merge attribute by attribute; for a leaf the lowest priority
    /// number wins; at equal priority lists concatenate (this tree's items first), equal values
    /// agree and different values are a conflict naming both definitions.
    pub fn merge(&mut self, other: OptionTree) -> Result<(), EvalError> {
        self.merge_mode(other, Mode::Priority)
    }

    pub(crate) fn merge_mode(&mut self, other: OptionTree, mode: Mode) -> Result<(), EvalError> {
        let OptionTree { root, mut meta } = other;
        let mut path = Vec::new();
        merge_rec(
            &mut self.root,
            &mut self.meta,
            root,
            &mut meta,
            &mut path,
            mode,
        )
    }

    /// Sets the priority of every node (for `lib.mkOverride` on a set: NixOS pushes it down to
    /// the attributes).
    pub(crate) fn set_priority(&mut self, priority: i64) {
        self.meta.entry(Vec::new()).or_insert_with(|| Meta {
            priority,
            locations: Vec::new(),
        });
        for m in self.meta.values_mut() {
            m.priority = priority;
        }
    }

    /// Puts this tree under `path` (`a.b = { … }`), every new intermediate node being defined
    /// at `loc`.
    pub(crate) fn nest(self, path: &[String], loc: &Location) -> OptionTree {
        let OptionTree { mut root, meta } = self;
        let mut new_meta = BTreeMap::new();
        for (k, mut m) in meta {
            if k.is_empty() && m.locations.is_empty() {
                m.locations.push(loc.clone());
            }
            let mut full = path.to_vec();
            full.extend(k);
            new_meta.insert(full, m);
        }
        new_meta.entry(path.to_vec()).or_insert_with(|| Meta {
            priority: PRIORITY_PLAIN,
            locations: vec![loc.clone()],
        });
        for i in (0..path.len()).rev() {
            let mut m = BTreeMap::new();
            m.insert(path[i].clone(), root);
            root = Value::Attrs(m);
            if i > 0 {
                new_meta.insert(
                    path[..i].to_vec(),
                    Meta {
                        priority: PRIORITY_PLAIN,
                        locations: vec![loc.clone()],
                    },
                );
            }
        }
        OptionTree {
            root,
            meta: new_meta,
        }
    }

    /// A tree holding one leaf at `path`.
    pub(crate) fn leaf(path: &[String], value: Value, priority: i64, loc: &Location) -> OptionTree {
        let mut meta = BTreeMap::new();
        meta.insert(
            Vec::new(),
            Meta {
                priority,
                locations: vec![loc.clone()],
            },
        );
        OptionTree { root: value, meta }.nest(path, loc)
    }

    /// Removes the top-level attribute `key` and returns it as a tree of its own.
    pub(crate) fn take(&mut self, key: &str) -> Option<OptionTree> {
        let Value::Attrs(a) = &mut self.root else {
            return None;
        };
        let value = a.remove(key)?;
        let prefix = vec![key.to_string()];
        let mut sub = BTreeMap::new();
        move_metas(&mut self.meta, &mut sub, &prefix);
        let meta = sub.into_iter().map(|(k, m)| (k[1..].to_vec(), m)).collect();
        Some(OptionTree { root: value, meta })
    }

    /// The top-level attribute names.
    pub(crate) fn top_names(&self) -> Vec<String> {
        self.root
            .as_attrs()
            .map(|a| a.keys().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn first_location(&self, path: &[String]) -> Location {
        first_location(&self.meta, path)
    }
}

fn merge_rec(
    dst: &mut Value,
    dmeta: &mut BTreeMap<Vec<String>, Meta>,
    src: Value,
    smeta: &mut BTreeMap<Vec<String>, Meta>,
    path: &mut Vec<String>,
    mode: Mode,
) -> Result<(), EvalError> {
    if let (Value::Attrs(d), Value::Attrs(_)) = (&mut *dst, &src) {
        let Value::Attrs(s) = src else { return Ok(()) };
        if let Some(sm) = smeta.remove(path.as_slice()) {
            match dmeta.get_mut(path.as_slice()) {
                Some(dm) => {
                    dm.locations.extend(sm.locations);
                    dm.priority = dm.priority.min(sm.priority);
                }
                None => {
                    dmeta.insert(path.clone(), sm);
                }
            }
        }
        for (k, v) in s {
            path.push(k.clone());
            match d.get_mut(&k) {
                Some(dv) => merge_rec(dv, dmeta, v, smeta, path, mode)?,
                None => {
                    move_metas(smeta, dmeta, path);
                    d.insert(k, v);
                }
            }
            path.pop();
        }
        return Ok(());
    }

    let dloc = first_location(dmeta, path);
    let sloc = first_location(smeta, path);
    let shown = show_path(path);
    if mode == Mode::Strict {
        return Err(EvalError::at(
            &sloc,
            format!("attribute '{shown}' already defined at {dloc}"),
        ));
    }
    let dp = effective_priority(dst, dmeta, path);
    let sp = effective_priority(&src, smeta, path);
    if sp < dp {
        remove_metas(dmeta, path);
        move_metas(smeta, dmeta, path);
        *dst = src;
        return Ok(());
    }
    if sp > dp {
        return Ok(());
    }
    let agree = match (&mut *dst, &src) {
        (Value::List(d), Value::List(s)) => {
            d.extend(s.iter().cloned());
            true
        }
        (d, s) => is_leaf(d) && is_leaf(s) && *d == *s,
    };
    if agree {
        if let Some(sm) = smeta.remove(path.as_slice())
            && let Some(dm) = dmeta.get_mut(path.as_slice())
        {
            dm.locations.extend(sm.locations);
        }
        return Ok(());
    }
    Err(EvalError::at(
        &sloc,
        format!(
            "the option '{shown}' has conflicting definitions at the same priority ({dp}): \
             {} at {dloc} and {} at {sloc}",
            brief(dst),
            brief(&src)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(line: usize) -> Location {
        Location::new("/f.nix", line, 1)
    }

    fn p(s: &str) -> Vec<String> {
        parse_path(s).unwrap_or_default()
    }

    #[test]
    fn leaf_and_nest() {
        let t = OptionTree::leaf(&p("a.b.c"), Value::Int(1), 100, &loc(1));
        assert_eq!(t.get("a.b.c"), Some(&Value::Int(1)));
        assert!(matches!(t.get("a.b"), Some(Value::Attrs(_))));
        assert_eq!(t.location("a.b.c"), Some(loc(1)));
        assert_eq!(t.location("a"), Some(loc(1)));
        assert_eq!(t.priority("a.b.c"), Some(100));
        assert_eq!(t.leaves().len(), 1);
    }

    #[test]
    fn priority_merge() {
        let mut t = OptionTree::leaf(&p("x"), Value::Int(1), PRIORITY_DEFAULT, &loc(1));
        t.merge(OptionTree::leaf(
            &p("x"),
            Value::Int(2),
            PRIORITY_PLAIN,
            &loc(2),
        ))
        .unwrap();
        assert_eq!(t.get("x"), Some(&Value::Int(2)));
        assert_eq!(t.location("x"), Some(loc(2)));
        t.merge(OptionTree::leaf(
            &p("x"),
            Value::Int(3),
            PRIORITY_DEFAULT,
            &loc(3),
        ))
        .unwrap();
        assert_eq!(t.get("x"), Some(&Value::Int(2)));
        t.merge(OptionTree::leaf(
            &p("x"),
            Value::Int(2),
            PRIORITY_PLAIN,
            &loc(4),
        ))
        .unwrap();
        assert_eq!(t.definitions("x"), vec![loc(2), loc(4)]);
        let e = t.merge(OptionTree::leaf(
            &p("x"),
            Value::Int(5),
            PRIORITY_PLAIN,
            &loc(5),
        ));
        let e = e.unwrap_err();
        assert_eq!(e.line, 5);
        assert!(e.message.contains("/f.nix:2:1"), "{e}");
        assert!(e.message.contains("/f.nix:5:1"), "{e}");
    }

    #[test]
    fn lists_concatenate() {
        let l = |v: i64| Value::List(vec![Value::Int(v)]);
        let mut t = OptionTree::leaf(&p("l"), l(1), PRIORITY_PLAIN, &loc(1));
        t.merge(OptionTree::leaf(&p("l"), l(2), PRIORITY_PLAIN, &loc(2)))
            .unwrap();
        t.merge(OptionTree::leaf(&p("l"), l(3), PRIORITY_DEFAULT, &loc(3)))
            .unwrap();
        assert_eq!(
            t.get("l"),
            Some(&Value::List(vec![Value::Int(1), Value::Int(2)]))
        );
        t.merge(OptionTree::leaf(&p("l"), l(4), PRIORITY_FORCE, &loc(4)))
            .unwrap();
        assert_eq!(t.get("l"), Some(&l(4)));
    }

    #[test]
    fn strict_duplicates() {
        let mut t = OptionTree::leaf(&p("a.b"), Value::Int(1), PRIORITY_PLAIN, &loc(1));
        t.merge_mode(
            OptionTree::leaf(&p("a.c"), Value::Int(1), PRIORITY_PLAIN, &loc(2)),
            Mode::Strict,
        )
        .unwrap();
        let e = t
            .merge_mode(
                OptionTree::leaf(&p("a.b"), Value::Int(1), PRIORITY_PLAIN, &loc(3)),
                Mode::Strict,
            )
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "/f.nix:3:1: attribute 'a.b' already defined at /f.nix:2:1".replace(":2:", ":1:")
        );
    }

    #[test]
    fn take_subtree() {
        let mut t = OptionTree::leaf(&p("config.a"), Value::Int(1), PRIORITY_PLAIN, &loc(1));
        let sub = t.take("config").unwrap();
        assert!(t.is_empty());
        assert_eq!(sub.get("a"), Some(&Value::Int(1)));
        assert_eq!(sub.location("a"), Some(loc(1)));
    }
}
