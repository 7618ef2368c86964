//! Finding options: the declared options under a prefix, and their types in NixOS's words
//! (`ncsh options`, the API's `options()`, the REPL's `:options` and completion).

use super::{Declarations, OptType, OptionDecl, closest, component_distance};
use crate::builder::plain::parse_path;
use crate::error::Error;

impl OptType {
    /// The name of the `lib.types` type this is (a type's `name` in Nix).
    pub fn nix_name(&self) -> &'static str {
        match self {
            OptType::Bool => "bool",
            OptType::Int => "int",
            OptType::Str => "str",
            OptType::Port => "unsignedInt16",
            OptType::Path => "path",
            OptType::Attrs => "attrs",
            OptType::Any | OptType::Opaque => "anything",
            OptType::Package => "package",
            OptType::PortRange => "submodule",
            OptType::HostName => "strMatching",
            OptType::ListOf(_) => "listOf",
            OptType::AttrsOf(_) => "attrsOf",
            OptType::NullOr(_) => "nullOr",
            OptType::Enum(_) => "enum",
        }
    }

    /// The type as NixOS's manual writes it: `boolean`, `list of port`, `null or signed
    /// integer`, `one of "yes", "no"`, `attribute set of string`.
    pub fn describe(&self) -> String {
        match self {
            OptType::Bool => "boolean".into(),
            OptType::Int => "signed integer".into(),
            OptType::Str => "string".into(),
            OptType::Port => "port".into(),
            OptType::Path => "absolute path".into(),
            OptType::Attrs => "attribute set".into(),
            OptType::Any | OptType::Opaque => "anything".into(),
            OptType::Package => "package".into(),
            OptType::PortRange => "port range { from; to; }".into(),
            // NixOS's `networking.hostName` is a `strMatching` of this pattern.
            OptType::HostName => {
                "string matching the pattern ^$|^[[:alnum:]]([[:alnum:]_-]{0,61}[[:alnum:]])?$"
                    .into()
            }
            OptType::ListOf(t) => format!("list of {}", t.describe()),
            OptType::AttrsOf(t) => format!("attribute set of {}", t.describe()),
            OptType::NullOr(t) => format!("null or {}", t.describe()),
            OptType::Enum(items) => format!(
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

/// The components of a prefix as typed (`services.openssh`, `users.users."a.b"`); `""` is
/// none, and a trailing `.` an empty last component.
fn components(prefix: &str) -> Vec<String> {
    if prefix.is_empty() {
        return Vec::new();
    }
    parse_path(prefix).unwrap_or_else(|| prefix.split('.').map(String::from).collect())
}

/// Does the declared `path` start with `typed` at a component boundary, the last typed
/// component possibly only the start of one (`services.open`)? A `<name>` matches any name.
pub fn starts_with(path: &[String], typed: &[String]) -> bool {
    let Some((last, whole)) = typed.split_last() else {
        return true;
    };
    path.len() >= typed.len()
        && whole.iter().zip(path).all(|(t, p)| p == "<name>" || p == t)
        && (path[whole.len()] == "<name>" || path[whole.len()].starts_with(last))
}

impl Declarations {
    /// The options whose path starts with `prefix` ([`starts_with`]), sorted by path; every
    /// option for `""`. No option there is an error that suggests close prefixes.
    pub fn under(&self, prefix: &str) -> Result<Vec<&OptionDecl>, Error> {
        let typed = components(prefix);
        let mut found: Vec<&OptionDecl> = self
            .options
            .iter()
            .filter(|o| starts_with(&o.path, &typed))
            .collect();
        if found.is_empty() {
            return Err(Error::UnknownOption {
                prefix: prefix.to_string(),
                suggestions: self.suggest_prefix(&typed),
            });
        }
        found.sort_by_key(|o| o.dotted());
        Ok(found)
    }

    /// The declared prefixes as long as `typed` that are close to it in every component.
    fn suggest_prefix(&self, typed: &[String]) -> Vec<String> {
        let scored = self
            .options
            .iter()
            .filter(|o| o.path.len() >= typed.len())
            .filter_map(|o| {
                let declared = &o.path[..typed.len()];
                let distance: Option<usize> = typed
                    .iter()
                    .zip(declared)
                    .map(|(t, d)| component_distance(t, d))
                    .sum();
                distance.map(|d| (d, declared.join(".")))
            })
            .collect();
        closest(scored, 5)
    }

    /// Every declared option path (with its `<name>` segments), sorted: what completion offers.
    pub fn paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self.options.iter().map(OptionDecl::dotted).collect();
        paths.sort();
        paths
    }
}

/// Complete `typed` (a dotted path being written, e.g. `users.users.alice.isN`) against the
/// declared `paths`: each full path that starts with it ([`starts_with`]), the typed names in
/// place of the `<name>` segments they stand for. A `<name>` is never completed (the name is
/// the user's), so a partial last component only completes declared names.
pub fn complete(paths: &[String], typed: &str) -> Vec<String> {
    let typed_parts = components(typed);
    let mut out: Vec<String> = paths
        .iter()
        .filter_map(|path| {
            let parts: Vec<String> = path.split('.').map(String::from).collect();
            if !starts_with(&parts, &typed_parts)
                || typed_parts
                    .last()
                    .is_some_and(|_| parts[typed_parts.len() - 1] == "<name>")
            {
                return None;
            }
            let filled: Vec<&str> = parts
                .iter()
                .enumerate()
                .map(|(i, p)| match typed_parts.get(i) {
                    Some(t) if p == "<name>" => t.as_str(),
                    _ => p.as_str(),
                })
                .collect();
            Some(filled.join("."))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::plain::Value;

    fn decls() -> Declarations {
        let mut d = Declarations::default();
        for (path, ty) in [
            ("services.openssh.enable", "bool"),
            ("services.openssh.ports", "listOf port"),
            ("services.openssh.settings.PermitRootLogin", "enum(yes, no)"),
            ("services.httpd.enable", "bool"),
            ("users.users.<name>.isNormalUser", "bool"),
            ("users.users.<name>.uid", "nullOr int"),
            ("users.groups.<name>.gid", "nullOr int"),
            ("environment.variables", "attrsOf str"),
        ] {
            d.add(OptionDecl {
                path: path.split('.').map(String::from).collect(),
                ty: OptType::parse(ty).unwrap(),
                default: Value::Null,
                description: String::new(),
                module: "test".into(),
                default_by_name: None,
            })
            .unwrap();
        }
        d
    }

    fn under(prefix: &str) -> Vec<String> {
        decls()
            .under(prefix)
            .unwrap()
            .iter()
            .map(|o| o.dotted())
            .collect()
    }

    #[test]
    fn types_in_nixos_words() {
        let t = |s: &str| OptType::parse(s).unwrap().describe();
        assert_eq!(t("bool"), "boolean");
        assert_eq!(t("listOf port"), "list of port");
        assert_eq!(t("nullOr int"), "null or signed integer");
        assert_eq!(t("enum(yes, no)"), "one of \"yes\", \"no\"");
        assert_eq!(t("attrsOf str"), "attribute set of string");
        assert_eq!(
            t("listOf attrsOf nullOr path"),
            "list of attribute set of null or absolute path"
        );
    }

    #[test]
    fn prefixes_end_at_a_component_or_inside_the_last() {
        assert_eq!(
            under("services.openssh"),
            [
                "services.openssh.enable",
                "services.openssh.ports",
                "services.openssh.settings.PermitRootLogin"
            ]
        );
        assert_eq!(under("services.open"), under("services.openssh"));
        assert_eq!(under("services.openssh."), under("services.openssh"));
        assert_eq!(under("services.openssh.p"), ["services.openssh.ports"]);
        assert_eq!(under("services.openssh.ports"), ["services.openssh.ports"]);
        // A component is whole unless it is the last: `serv.openssh` is not `services.openssh`.
        assert!(decls().under("serv.openssh").is_err());
        // `<name>` is any name.
        assert_eq!(
            under("users.users.alice"),
            ["users.users.<name>.isNormalUser", "users.users.<name>.uid"]
        );
        assert_eq!(under("users.users.alice.u"), ["users.users.<name>.uid"]);
        assert_eq!(under("users.users.\"a.b\".u"), ["users.users.<name>.uid"]);
        assert_eq!(under("").len(), 8);
        // Sorted.
        assert_eq!(under("")[0], "environment.variables");
    }

    #[test]
    fn an_unknown_prefix_suggests_close_ones() {
        let suggestions = |prefix: &str| match decls().under(prefix) {
            Err(Error::UnknownOption { suggestions, .. }) => suggestions,
            other => panic!("{prefix}: {other:?}"),
        };
        assert_eq!(
            suggestions("services.opensh.enable"),
            ["services.openssh.enable"]
        );
        assert_eq!(suggestions("servics.openssh"), ["services.openssh"]);
        assert_eq!(suggestions("user.users"), ["users.users"]);
        assert_eq!(suggestions("nix.settings"), Vec::<String>::new());
        let e = decls().under("nix").unwrap_err();
        assert_eq!(e.to_string(), "there is no option ‘nix’ nor any below it");
        assert!(e.hint().unwrap().contains("ncsh options"), "{e:?}");
    }

    #[test]
    fn completion_fills_in_typed_names() {
        let paths = decls().paths();
        assert_eq!(
            complete(&paths, "services.open"),
            [
                "services.openssh.enable",
                "services.openssh.ports",
                "services.openssh.settings.PermitRootLogin"
            ]
        );
        assert_eq!(
            complete(&paths, "users.users.alice.isN"),
            ["users.users.alice.isNormalUser"]
        );
        assert_eq!(
            complete(&paths, "users.users.alice."),
            ["users.users.alice.isNormalUser", "users.users.alice.uid"]
        );
        // The name itself is the user's to write.
        assert_eq!(complete(&paths, "users.users.al"), Vec::<String>::new());
        assert_eq!(complete(&paths, "nope.x"), Vec::<String>::new());
    }
}
