//! Option declarations and the typed configuration built from an evaluated option tree.
//!
//! Option modules declare options as (path, type, default, description); a path may contain
//! `<name>` for one attribute of any name (`users.users.<name>.uid`). Every leaf the user defined
//! must belong to a declared option, and its value must have the declared type; the result is a
//! complete configuration (every declared option present, defaults filled in) that modules read.

use std::collections::BTreeMap;
use std::fmt;

use super::nixexpr::{EvalError, Location, OptionTree, Value, parse_path};

/// The types an option can have (a small subset of NixOS's `lib.types`).
#[derive(Debug, Clone, PartialEq)]
pub enum OptType {
    Bool,
    Int,
    Str,
    /// A TCP/UDP port, 1–65535.
    Port,
    /// A path (a string starting with `/`, or a Nix path literal).
    Path,
    /// Any attribute set, unchecked inside (e.g. `serviceConfig`).
    Attrs,
    /// Anything.
    Any,
    ListOf(Box<OptType>),
    AttrsOf(Box<OptType>),
    NullOr(Box<OptType>),
    Enum(Vec<String>),
    /// `{ from = PORT; to = PORT; }`.
    PortRange,
    /// A host name as NixOS's `networking.hostName` takes it: empty, or one DNS label of
    /// letters, digits, `-` and `_`, at most 63 characters, starting and ending alphanumeric.
    HostName,
    /// A package: an attribute set whose `type` is "derivation" (what `pkgs.NAME` evaluates to).
    Package,
}

/// Is `name` a [`OptType::HostName`]?
fn is_host_name(name: &str) -> bool {
    let b = name.as_bytes();
    let inner = |c: &u8| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_';
    b.is_empty()
        || (b.len() <= 63
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(inner))
}

impl OptType {
    /// Parse `bool`, `int`, `str`, `port`, `path`, `attrs`, `any`, `portRange`, `hostName`, `package`, `listOf T`,
    /// `attrsOf T`, `nullOr T`, `enum(a, b, c)`.
    pub fn parse(text: &str) -> Result<OptType, String> {
        let text = text.trim();
        let simple = match text {
            "bool" => Some(OptType::Bool),
            "int" => Some(OptType::Int),
            "str" | "lines" => Some(OptType::Str),
            "port" => Some(OptType::Port),
            "path" => Some(OptType::Path),
            "attrs" => Some(OptType::Attrs),
            "any" => Some(OptType::Any),
            "portRange" => Some(OptType::PortRange),
            "hostName" => Some(OptType::HostName),
            "package" => Some(OptType::Package),
            _ => None,
        };
        if let Some(t) = simple {
            return Ok(t);
        }
        for (prefix, make) in [
            ("listOf ", OptType::ListOf as fn(Box<OptType>) -> OptType),
            ("attrsOf ", OptType::AttrsOf),
            ("nullOr ", OptType::NullOr),
        ] {
            if let Some(rest) = text.strip_prefix(prefix) {
                return Ok(make(Box::new(OptType::parse(rest)?)));
            }
        }
        if let Some(items) = text.strip_prefix("enum(").and_then(|r| r.strip_suffix(')')) {
            let items: Vec<String> = items
                .split(',')
                .map(|s| s.trim().trim_matches('"').to_string())
                .filter(|s| !s.is_empty())
                .collect();
            if !items.is_empty() {
                return Ok(OptType::Enum(items));
            }
        }
        Err(format!("unknown option type ‘{text}’"))
    }

    /// Is a value of this type (when not null) an attribute set, whose leaves are defined below it?
    fn is_attribute_set(&self) -> bool {
        match self {
            OptType::Attrs | OptType::AttrsOf(_) | OptType::Any | OptType::Package => true,
            OptType::NullOr(t) => t.is_attribute_set(),
            _ => false,
        }
    }

    /// Does `value` have this type? `Err` says what is wrong.
    pub fn check(&self, value: &Value) -> Result<(), String> {
        let ok = match (self, value) {
            (OptType::Any, _) => true,
            (OptType::Bool, Value::Bool(_))
            | (OptType::Int, Value::Int(_))
            | (OptType::Attrs, Value::Attrs(_)) => true,
            (OptType::Str, Value::String(_)) => true,
            (OptType::HostName, Value::String(s)) => is_host_name(s),
            (OptType::Package, Value::Attrs(map)) => {
                matches!(map.get("type"), Some(Value::String(t)) if t == "derivation")
            }
            (OptType::Path, Value::Path(_)) => true,
            (OptType::Path, Value::String(s)) => s.starts_with('/'),
            (OptType::Port, Value::Int(n)) => (1..=65535).contains(n),
            (OptType::NullOr(_), Value::Null) => true,
            (OptType::NullOr(t), v) => return t.check(v),
            (OptType::Enum(items), Value::String(s)) => items.contains(s),
            (OptType::ListOf(t), Value::List(items)) => {
                for (i, item) in items.iter().enumerate() {
                    t.check(item)
                        .map_err(|e| format!("element {}: {e}", i + 1))?;
                }
                true
            }
            (OptType::AttrsOf(t), Value::Attrs(map)) => {
                for (k, v) in map {
                    t.check(v).map_err(|e| format!("attribute ‘{k}’: {e}"))?;
                }
                true
            }
            (OptType::PortRange, Value::Attrs(map)) => {
                let port =
                    |k: &str| matches!(map.get(k), Some(Value::Int(n)) if (1..=65535).contains(n));
                if !(port("from") && port("to") && map.len() == 2) {
                    return Err("expected { from = PORT; to = PORT; }".into());
                }
                true
            }
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(format!("expected {self}, found {}", describe(value)))
        }
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Int(n) => format!("the integer {n}"),
        Value::String(s) => format!("the string \"{}\"", s.escape_debug()),
        Value::Path(p) => format!("the path {}", p.display()),
        Value::List(_) => "a list".into(),
        Value::Attrs(_) => "an attribute set".into(),
    }
}

impl fmt::Display for OptType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptType::Bool => write!(f, "a boolean"),
            OptType::Int => write!(f, "an integer"),
            OptType::Str => write!(f, "a string"),
            OptType::Port => write!(f, "a port (1-65535)"),
            OptType::Path => write!(f, "an absolute path"),
            OptType::Attrs => write!(f, "an attribute set"),
            OptType::Any => write!(f, "anything"),
            OptType::PortRange => write!(f, "a port range {{ from; to; }}"),
            OptType::HostName => write!(
                f,
                "a host name (letters, digits, ‘-’ and ‘_’, at most 63, starting and ending \
                 with a letter or digit)"
            ),
            OptType::Package => write!(f, "a package"),
            OptType::ListOf(t) => write!(f, "a list of {t}"),
            OptType::AttrsOf(t) => write!(f, "an attribute set of {t}"),
            OptType::NullOr(t) => write!(f, "null or {t}"),
            OptType::Enum(items) => write!(
                f,
                "one of {}",
                items
                    .iter()
                    .map(|i| format!("\"{i}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// One declared option.
#[derive(Debug, Clone)]
pub struct OptionDecl {
    pub path: Vec<String>,
    pub ty: OptType,
    pub default: Value,
    pub description: String,
    /// The module that declared it.
    pub module: String,
}

impl OptionDecl {
    pub fn dotted(&self) -> String {
        self.path.join(".")
    }

    /// Does this declaration cover `leaf` (a defined path)? Attribute-set-valued options also
    /// cover every path below them.
    fn covers(&self, leaf: &[String]) -> bool {
        let below_allowed = self.ty.is_attribute_set();
        if leaf.len() < self.path.len() || (leaf.len() > self.path.len() && !below_allowed) {
            return false;
        }
        self.path
            .iter()
            .zip(leaf)
            .all(|(p, l)| p == "<name>" || p == l)
    }
}

/// All declared options.
#[derive(Debug, Clone, Default)]
pub struct Declarations {
    pub options: Vec<OptionDecl>,
    /// Option sets (`services.nextcloud`) that only a Nix host builds: defining an option
    /// below one is an error that says so, not "does not exist".
    pub nix_only: Vec<NixOnly>,
}

/// An option set the native builder does not realize (see [`Declarations::nix_only`]).
#[derive(Debug, Clone)]
pub struct NixOnly {
    pub path: Vec<String>,
    /// Why (e.g. what Debian lacks), for the message.
    pub why: String,
    pub module: String,
}

/// A configuration error: where, and what.
pub fn error_at(tree: &OptionTree, path: &str, message: String) -> EvalError {
    let loc = tree.location(path).unwrap_or(Location {
        file: "<config>".into(),
        line: 0,
        column: 0,
    });
    EvalError::at(&loc, message)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}

impl Declarations {
    pub fn add(&mut self, decl: OptionDecl) -> Result<(), String> {
        if let Some(other) = self.options.iter().find(|o| o.path == decl.path) {
            return Err(format!(
                "option {} is declared twice (modules {} and {})",
                decl.dotted(),
                other.module,
                decl.module
            ));
        }
        self.options.push(decl);
        Ok(())
    }

    fn find(&self, leaf: &[String]) -> Option<&OptionDecl> {
        // The most specific declaration wins (longest path).
        self.options
            .iter()
            .filter(|o| o.covers(leaf))
            .max_by_key(|o| o.path.len())
    }

    fn has_below(&self, prefix: &[String]) -> bool {
        self.options.iter().any(|o| {
            o.path.len() > prefix.len()
                && o.path
                    .iter()
                    .zip(prefix)
                    .all(|(p, l)| p == "<name>" || p == l)
        })
    }

    /// The declared options closest to an unknown one, for "did you mean".
    pub fn suggest(&self, unknown: &[String]) -> Vec<String> {
        let wanted = unknown.join(".");
        let mut scored: Vec<(usize, String)> = self
            .options
            .iter()
            .map(|o| {
                // Compare with the `<name>` parts filled in from the unknown path.
                let concrete: Vec<&str> = o
                    .path
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        if p == "<name>" {
                            unknown.get(i).map_or("<name>", String::as_str)
                        } else {
                            p
                        }
                    })
                    .collect();
                (edit_distance(&wanted, &concrete.join(".")), o.dotted())
            })
            .collect();
        scored.sort();
        let best = scored.first().map_or(0, |s| s.0);
        scored
            .into_iter()
            .filter(|(d, _)| *d <= best + 2 && *d <= wanted.len() / 2 + 3)
            .take(3)
            .map(|s| s.1)
            .collect()
    }

    /// Check every defined leaf of `tree` and build the full configuration.
    pub fn configure(&self, tree: &OptionTree) -> Result<Value, EvalError> {
        // 1. Every leaf belongs to a declaration.
        let mut checked: Vec<(Vec<String>, &OptionDecl)> = Vec::new();
        for (dotted, value) in tree.leaves() {
            // Leaf paths are shown with quoted names (`users.users."a.b"`): split them back.
            let leaf = parse_path(&dotted).unwrap_or_else(|| vec![dotted.clone()]);
            // `users.users.root = { };` defines a name with every default: fine if options exist below.
            if matches!(value, Value::Attrs(m) if m.is_empty()) && self.has_below(&leaf) {
                continue;
            }
            let Some(decl) = self.find(&leaf) else {
                if let Some(only) = self.nix_only.iter().find(|n| leaf.starts_with(&n.path)) {
                    // `enable = false` asks for nothing, as on NixOS.
                    if leaf.len() == only.path.len() + 1
                        && leaf.last().is_some_and(|l| l == "enable")
                        && *value == Value::Bool(false)
                    {
                        continue;
                    }
                    let set = only.path.join(".");
                    let why = if only.why.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", only.why)
                    };
                    return Err(error_at(
                        tree,
                        &dotted,
                        format!(
                            "the option ‘{dotted}’ is built only by a Nix host: the native builder \
                             does not realize {set}{why}; build this container on a host with Nix \
                             (NCSH_BUILDER=nix, with nix-env and <nixpkgs/nixos>)"
                        ),
                    ));
                }
                let hint = self.suggest(&leaf);
                let hint = if hint.is_empty() {
                    String::new()
                } else {
                    format!("; did you mean {}?", hint.join(", "))
                };
                return Err(error_at(
                    tree,
                    &dotted,
                    format!("the option ‘{dotted}’ does not exist{hint}"),
                ));
            };
            let at: Vec<String> = leaf[..decl.path.len()].to_vec();
            if !checked.iter().any(|(p, _)| *p == at) {
                checked.push((at, decl));
            }
        }
        // 2. Each defined option's value has its type.
        for (at, decl) in &checked {
            let value = tree.get_path(at).cloned().unwrap_or(Value::Null);
            decl.ty.check(&value).map_err(|why| {
                let dotted = at.join(".");
                error_at(
                    tree,
                    &dotted,
                    format!("the option ‘{dotted}’ has a wrong type: {why}"),
                )
            })?;
        }
        // 3. The configuration: defaults, overridden by definitions.
        let mut config = Value::Attrs(BTreeMap::new());
        for decl in &self.options {
            fill(
                &mut config,
                &decl.path,
                &decl.default,
                tree,
                &mut Vec::new(),
            );
        }
        Ok(config)
    }
}

/// Set the option at `pattern` in `config`: for `<name>` segments, once per name the user
/// defined there; the value is the user's or the default.
fn fill(
    config: &mut Value,
    pattern: &[String],
    default: &Value,
    tree: &OptionTree,
    at: &mut Vec<String>,
) {
    let Some((first, rest)) = pattern.split_first() else {
        return;
    };
    let Value::Attrs(map) = config else { return };
    let names: Vec<String> = if first == "<name>" {
        match tree.get_path(at) {
            Some(Value::Attrs(defined)) => defined.keys().cloned().collect(),
            _ => Vec::new(),
        }
    } else {
        vec![first.clone()]
    };
    for name in names {
        at.push(name.clone());
        if rest.is_empty() {
            let value = tree
                .get_path(at)
                .cloned()
                .unwrap_or_else(|| default.clone());
            map.insert(name, value);
        } else {
            let child = map
                .entry(name)
                .or_insert_with(|| Value::Attrs(BTreeMap::new()));
            fill(child, rest, default, tree, at);
        }
        at.pop();
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::builder::nixexpr;

    fn decls() -> Declarations {
        let mut d = Declarations::default();
        for (path, ty, default) in [
            ("services.openssh.enable", "bool", Value::Bool(false)),
            (
                "services.openssh.ports",
                "listOf port",
                Value::List(vec![Value::Int(22)]),
            ),
            (
                "users.users.<name>.isNormalUser",
                "bool",
                Value::Bool(false),
            ),
            ("users.users.<name>.uid", "nullOr int", Value::Null),
            (
                "users.users.<name>.openssh.authorizedKeys.keys",
                "listOf str",
                Value::List(vec![]),
            ),
            (
                "systemd.services.<name>.serviceConfig",
                "attrs",
                Value::Attrs(BTreeMap::new()),
            ),
            (
                "services.openssh.settings.PermitRootLogin",
                "enum(yes, no, prohibit-password)",
                Value::String("prohibit-password".into()),
            ),
        ] {
            d.add(OptionDecl {
                path: path.split('.').map(String::from).collect(),
                ty: OptType::parse(ty).unwrap(),
                default,
                description: String::new(),
                module: "test".into(),
            })
            .unwrap();
        }
        d
    }

    fn configure(text: &str) -> Result<Value, EvalError> {
        let tree = nixexpr::eval_str(text, Path::new("<config>"), Path::new("/")).unwrap();
        decls().configure(&tree)
    }

    fn get<'a>(v: &'a Value, path: &str) -> &'a Value {
        path.split('.').fold(v, |v, k| match v {
            Value::Attrs(m) => m.get(k).unwrap_or_else(|| panic!("no {k} in {path}")),
            _ => panic!("{path}"),
        })
    }

    #[test]
    fn defaults_and_definitions() {
        let c = configure("services.openssh.enable = true; users.users.alice.isNormalUser = true;")
            .unwrap();
        assert_eq!(get(&c, "services.openssh.enable"), &Value::Bool(true));
        assert_eq!(
            get(&c, "services.openssh.ports"),
            &Value::List(vec![Value::Int(22)])
        );
        assert_eq!(get(&c, "users.users.alice.uid"), &Value::Null);
        assert_eq!(
            get(&c, "users.users.alice.openssh.authorizedKeys.keys"),
            &Value::List(vec![])
        );
        let Value::Attrs(users) = get(&c, "users.users") else {
            panic!()
        };
        assert_eq!(users.keys().collect::<Vec<_>>(), ["alice"]);
    }

    #[test]
    fn attrs_options_take_anything_below() {
        let c = configure(
            "systemd.services.web.serviceConfig = { Type = \"simple\"; Restart = \"always\"; };",
        )
        .unwrap();
        assert_eq!(
            get(&c, "systemd.services.web.serviceConfig.Type"),
            &Value::String("simple".into())
        );
    }

    #[test]
    fn wrong_types_say_where_and_what() {
        let e = configure("services.openssh.enable = \"yes\";").unwrap_err();
        assert_eq!((e.line, e.column), (1, 1));
        assert!(e.message.contains("‘services.openssh.enable’ has a wrong type: expected a boolean, found the string \"yes\""), "{}", e.message);
        let e = configure("services.openssh.ports = [ 22 70000 ];").unwrap_err();
        assert!(e.message.contains("element 2"), "{}", e.message);
        let e = configure("services.openssh.settings.PermitRootLogin = \"maybe\";").unwrap_err();
        assert!(
            e.message.contains("one of \"yes\", \"no\""),
            "{}",
            e.message
        );
    }

    #[test]
    fn unknown_options_suggest_the_nearest() {
        let e = configure("services.openssh.enabel = true;").unwrap_err();
        assert!(
            e.message.contains(
                "‘services.openssh.enabel’ does not exist; did you mean services.openssh.enable"
            ),
            "{}",
            e.message
        );
        let e = configure("users.users.bob.isNormaluser = true;").unwrap_err();
        assert!(
            e.message.contains("users.users.<name>.isNormalUser"),
            "{}",
            e.message
        );
        let e = configure("\n  services.nginx.enable = true;").unwrap_err();
        assert_eq!((e.line, e.column), (2, 3));
    }

    #[test]
    fn types_parse() {
        assert_eq!(
            OptType::parse("listOf nullOr port").unwrap(),
            OptType::ListOf(Box::new(OptType::NullOr(Box::new(OptType::Port))))
        );
        assert_eq!(
            OptType::parse("nullOr package").unwrap(),
            OptType::NullOr(Box::new(OptType::Package))
        );
        let package = |t: &str| {
            Value::Attrs(BTreeMap::from([
                ("type".to_string(), Value::String(t.into())),
                ("version".to_string(), Value::String("15.10".into())),
            ]))
        };
        assert!(OptType::Package.check(&package("derivation")).is_ok());
        let e = OptType::Package.check(&package("other")).unwrap_err();
        assert_eq!(e, "expected a package, found an attribute set");
        assert!(OptType::parse("float").is_err());
        assert!(OptType::parse("enum()").is_err());
    }
}
