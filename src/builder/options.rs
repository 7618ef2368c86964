//! Option declarations and the typed configuration built from an evaluated option tree.
//!
//! Option modules declare options as (path, type, default, description); a path may contain
//! `<name>` for one attribute of any name (`users.users.<name>.uid`). Every leaf the user defined
//! must belong to a declared option, and its value must have the declared type; the result is a
//! complete configuration (every declared option present, defaults filled in) that modules read.

use std::fmt;
use std::rc::Rc;

use super::plain::{Value, show_path};

pub mod listing;

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
    /// A package: an attribute set whose `type` is `"derivation"` (what `pkgs.NAME` evaluates
    /// to; here a package of the host's /usr).
    Package,
    /// A host name as NixOS's `networking.hostName` takes it: empty, or one DNS label of
    /// letters, digits, `-` and `_`, at most 63 characters, starting and ending alphanumeric.
    HostName,
    /// A value only Nix would use (`nixpkgs.overlays`, functions): merged as `anything`, and
    /// the option modules get only whether it holds something (`true`: not null, not empty).
    Opaque,
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
            "opaque" => Some(OptType::Opaque),
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

    /// Whether a value of this type is a set with names of its own below the option
    /// (`serviceConfig.ExecStart` below `serviceConfig`).
    pub fn takes_names_below(&self) -> bool {
        matches!(self, OptType::Attrs | OptType::AttrsOf(_) | OptType::Any)
    }

    /// Does `value` have this type? `Err` says what is wrong.
    pub fn check(&self, value: &Value) -> Result<(), String> {
        let ok = match (self, value) {
            (OptType::Any | OptType::Opaque, _) => true,
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
            OptType::Opaque => write!(f, "anything"),
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
#[derive(Debug, Clone, PartialEq)]
pub struct OptionDecl {
    pub path: Vec<String>,
    pub ty: OptType,
    pub default: Value,
    pub description: String,
    /// The module that declared it.
    pub module: String,
    /// A default that depends on the name of the attribute the option is in (the last
    /// `<name>` of its path): the text of a Nix function of that name
    /// (`name: if name == "" then "redis" else "redis-${name}"`).
    pub default_by_name: Option<String>,
}

impl OptionDecl {
    pub fn dotted(&self) -> String {
        self.path.join(".")
    }
}

/// All declared options.
#[derive(Debug, Clone, Default)]
pub struct Declarations {
    /// Shared, so that a copy of the declarations is cheap and known to be the same as the
    /// one it was copied from (the module system keeps the tree it made of them per thread).
    pub options: Rc<Vec<OptionDecl>>,
    /// Option sets (`services.nextcloud`) that only a Nix host builds: defining an option
    /// below one is an error that says so, not "does not exist".
    pub nix_only: Vec<NixOnly>,
    /// Options NixOS renamed (`services.openssh.passwordAuthentication`): a definition of the
    /// old name is one of the new (as `lib.mkRenamedOptionModule` makes it), with a warning.
    pub renamed: Vec<Renamed>,
    /// Options NixOS removed: a definition is an error that says what to write instead.
    pub removed: Vec<Removed>,
}

/// An option's old name and its new one (see [`Declarations::renamed`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Renamed {
    pub from: Vec<String>,
    pub to: Vec<String>,
}

/// A removed option and what to do instead (see [`Declarations::removed`]).
#[derive(Debug, Clone)]
pub struct Removed {
    pub path: Vec<String>,
    pub instead: String,
}

/// An option set the native builder does not realize (see [`Declarations::nix_only`]).
#[derive(Debug, Clone)]
pub struct NixOnly {
    pub path: Vec<String>,
    /// Why (e.g. what Debian lacks), for the message.
    pub why: String,
    pub module: String,
}

/// The optimal-string-alignment distance: insertions, deletions, substitutions and swaps of
/// two neighbours (`enabel` is 1 from `enable`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j]: the distance between a[..i] and b[..j].
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// How far a typed path component is from a declared one, if it is close enough to be what was
/// meant: the same (0; `<name>` is any name), the same but for case, within an edit distance of
/// max(1, len/4), or one a prefix of the other that is at least half its length (`isNormal`,
/// `isNormalUser`). `None`: unrelated.
pub(crate) fn component_distance(typed: &str, declared: &str) -> Option<usize> {
    if typed == declared || declared == "<name>" {
        return Some(0);
    }
    let (t, d) = (typed.to_lowercase(), declared.to_lowercase());
    if t == d {
        return Some(1);
    }
    let distance = edit_distance(typed, declared);
    if distance <= (typed.chars().count() / 4).max(1) {
        return Some(distance);
    }
    let (short, long) = if t.len() <= d.len() {
        (&t, &d)
    } else {
        (&d, &t)
    };
    let (short_n, long_n) = (short.chars().count(), long.chars().count());
    if long.starts_with(short.as_str()) && short_n >= 3 && 2 * short_n >= long_n {
        return Some(long_n - short_n);
    }
    None
}

/// The distance between a typed path and a declared one compared component by component, if
/// every component is close ([`component_distance`]); `None` when the lengths differ.
pub(crate) fn path_distance(typed: &[String], declared: &[String]) -> Option<usize> {
    if typed.len() != declared.len() {
        return None;
    }
    typed
        .iter()
        .zip(declared)
        .map(|(t, d)| component_distance(t, d))
        .sum()
}

/// The best of `scored` (distance, name): those within one of the closest, at most `n`.
pub(crate) fn closest(mut scored: Vec<(usize, String)>, n: usize) -> Vec<String> {
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    let best = scored.first().map_or(0, |s| s.0);
    scored
        .into_iter()
        .filter(|(d, _)| *d <= best + 1)
        .take(n)
        .map(|s| s.1)
        .collect()
}

/// What the unknown-option error says when nothing declared is close.
pub const HOW_TO_FIND_OPTIONS: &str = "ncsh options PREFIX lists the options there are";

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
        Rc::make_mut(&mut self.options).push(decl);
        Ok(())
    }

    /// The declared options close to an unknown one, for "did you mean": compared component
    /// by component, every component must be close ([`component_distance`]); an option whose
    /// type takes anything below it (`serviceConfig`) is compared on its length. None when
    /// nothing is close.
    pub fn suggest(&self, unknown: &[String]) -> Vec<String> {
        let scored = self
            .options
            .iter()
            .filter_map(|o| {
                let typed = if o.ty.takes_names_below() && unknown.len() > o.path.len() {
                    &unknown[..o.path.len()]
                } else {
                    unknown
                };
                path_distance(typed, &o.path).map(|d| (d, o.dotted()))
            })
            .collect();
        closest(scored, 3)
    }

    /// The option set only a Nix host builds that `path` is in or is, by its dotted name.
    pub fn nix_only_set(&self, path: &[String]) -> Option<String> {
        self.nix_only
            .iter()
            .find(|n| path.starts_with(&n.path) || n.path.starts_with(path))
            .map(|n| n.path.join("."))
    }

    /// What the error about the unknown option `leaf` says: where to look, or that only a
    /// Nix host builds it; `None` when it asks for nothing (`enable = false` of an option set
    /// only a Nix host builds, as on NixOS).
    pub fn unknown_message(&self, leaf: &[String], value: &Value) -> Option<String> {
        let dotted = show_path(leaf);
        if let Some(only) = self.nix_only.iter().find(|n| leaf.starts_with(&n.path)) {
            if leaf.len() == only.path.len() + 1
                && leaf.last().is_some_and(|l| l == "enable")
                && *value == Value::Bool(false)
            {
                return None;
            }
            let set = only.path.join(".");
            let why = if only.why.is_empty() {
                String::new()
            } else {
                format!(" ({})", only.why)
            };
            return Some(format!(
                "the option ‘{dotted}’ is built only by a Nix host: the native builder does not \
                 realize {set}{why}; build this container on a host with Nix (NCSH_BUILDER=nix, \
                 with nix-env and <nixpkgs/nixos>)"
            ));
        }
        let hint = self.suggest(leaf);
        let hint = if hint.is_empty() {
            format!(" ({HOW_TO_FIND_OPTIONS})")
        } else {
            format!("; did you mean {}?", hint.join(", "))
        };
        Some(format!("the option ‘{dotted}’ does not exist{hint}"))
    }
}

#[cfg(test)]
impl Declarations {
    /// An option of any type at every top-level name: for tests of the layers above the
    /// builder, with option modules of their own.
    pub fn accepting_anything() -> Declarations {
        Declarations {
            options: Rc::new(vec![OptionDecl {
                path: vec!["<name>".into()],
                ty: OptType::Any,
                default: Value::Null,
                description: String::new(),
                module: "test".into(),
                default_by_name: None,
            }]),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;
    use crate::nixlang::EvalError;

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
            (
                "networking.firewall.allowedTCPPorts",
                "listOf port",
                Value::List(vec![]),
            ),
            (
                "networking.firewall.allowedUDPPorts",
                "listOf port",
                Value::List(vec![]),
            ),
            (
                "networking.firewall.allowedTCPPortRanges",
                "listOf portRange",
                Value::List(vec![]),
            ),
        ] {
            d.add(OptionDecl {
                path: path.split('.').map(String::from).collect(),
                ty: OptType::parse(ty).unwrap(),
                default,
                description: String::new(),
                module: "test".into(),
                default_by_name: None,
            })
            .unwrap();
        }
        d
    }

    fn configure(text: &str) -> Result<Value, EvalError> {
        crate::builder::native::evaluate_snippets(&decls(), &[(text, "<config>")], Path::new("/"))
            .map_err(|mut errors| errors.remove(0))
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

    fn suggest(path: &str) -> Vec<String> {
        decls().suggest(&path.split('.').map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn suggestions_are_close_in_every_component() {
        assert_eq!(
            suggest("services.openssh.enabel"),
            ["services.openssh.enable"]
        );
        assert_eq!(
            suggest("services.opensh.enable"),
            ["services.openssh.enable"]
        );
        assert_eq!(
            suggest("users.users.bob.isNormaluser"),
            ["users.users.<name>.isNormalUser"]
        );
        assert_eq!(
            suggest("users.users.bob.isNormal"),
            ["users.users.<name>.isNormalUser"]
        );
        assert_eq!(
            suggest("networking.firewall.allowedTCPPort"),
            ["networking.firewall.allowedTCPPorts"]
        );
        assert_eq!(
            suggest("systemd.services.web.serviceConfg.Type"),
            ["systemd.services.<name>.serviceConfig"]
        );
        // Nothing close: no suggestion rather than an unrelated one.
        for unrelated in [
            "nix.settings.experimental-features",
            "services.nginx.enable",
            "services.openssh.listenAddresses",
            "users.users.bob.shell",
        ] {
            assert_eq!(suggest(unrelated), Vec::<String>::new(), "{unrelated}");
        }
    }

    #[test]
    fn unknown_options_without_a_suggestion_say_how_to_find_options() {
        let e = configure("nix.settings.experimental-features = [ \"flakes\" ];").unwrap_err();
        assert!(
            e.message.ends_with(
                "‘nix.settings.experimental-features’ does not exist \
                 (ncsh options PREFIX lists the options there are)"
            ),
            "{}",
            e.message
        );
    }

    #[test]
    fn component_distances() {
        assert_eq!(edit_distance("enabel", "enable"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(component_distance("x", "<name>"), Some(0));
        assert_eq!(component_distance("Enable", "enable"), Some(1));
        assert_eq!(component_distance("nix", "nixpkgs"), None);
        assert_eq!(component_distance("nix", "networking"), None);
        assert_eq!(component_distance("networ", "networking"), Some(4));
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
        let package = OptType::parse("listOf package").unwrap();
        let drv = |t: &str| {
            Value::Attrs(BTreeMap::from([(
                "type".to_string(),
                Value::String(t.into()),
            )]))
        };
        assert!(package.check(&Value::List(vec![drv("derivation")])).is_ok());
        let e = package.check(&Value::List(vec![drv("x")])).unwrap_err();
        assert!(e.contains("expected a package"), "{e}");
        assert!(OptType::parse("enum()").is_err());
    }
}
