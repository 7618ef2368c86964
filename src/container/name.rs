//! Container name rules.
//!
//! A name must be a valid systemd machine name (machined and nspawn reject anything else,
//! underscores included) and a valid nixos-container name (`^[a-zA-Z0-9_-]+$`): so letters,
//! digits and `-`, not starting with `-`. nixos-container's `create` also limits names to 11
//! characters (its host link is `ve-NAME`); ncsh finds nspawn's shortened link by its altname, so
//! it allows up to systemd's 64.

use crate::error::{Error, Result};

/// systemd's limit for machine (host) names.
pub const MAX_NAME_LEN: usize = 64;
/// nixos-container's limit at create time (IFNAMSIZ minus `ve-`).
pub const NIXOS_CONTAINER_MAX_LEN: usize = 11;

/// A container name, checked once where it comes in (the Rhai API, the command line) and never
/// again below: the operations take one. It is made one of two ways:
///
/// - [`ContainerName::parse`], for a name to create: the rules above.
/// - [`ContainerName::existing`], for a name that may be an existing conf's: nixos-container's
///   own rule, `[A-Za-z0-9_-]+` not starting with `-`, so that a container the original made
///   with `_` in its name can still be shown, queried and destroyed. It names no path outside
///   the conf and state directories either.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContainerName(String);

impl ContainerName {
    /// `name`, if it follows the rules (see [`validate`]).
    pub fn parse(name: &str) -> Result<ContainerName> {
        validate(name)?;
        Ok(ContainerName(name.to_string()))
    }

    /// `name`, if an existing container may have it (see the type's doc); whether a conf
    /// exists is for the operations to find out.
    pub fn existing(name: &str) -> Result<ContainerName> {
        let nixos_container_name = !name.is_empty()
            && !name.starts_with('-')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if nixos_container_name {
            return Ok(ContainerName(name.to_string()));
        }
        // The reason as for a new name (an underscore is no reason here).
        validate(name)?;
        Ok(ContainerName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for ContainerName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ContainerName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Check a name against the rules above (not the create-time length limit).
pub fn validate(name: &str) -> Result<()> {
    let invalid = |reason: &str| {
        Err(Error::InvalidName {
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() {
        return invalid("the name is empty");
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        let why = if bad == '_' {
            "‘_’ is not allowed (systemd rejects it in machine names); use ‘-’".to_string()
        } else {
            format!("‘{bad}’ is not allowed; use letters, digits and ‘-’")
        };
        return invalid(&why);
    }
    if name.starts_with('-') {
        return invalid("a name cannot start with ‘-’");
    }
    if name.len() > MAX_NAME_LEN {
        return invalid(&format!("at most {MAX_NAME_LEN} characters are allowed"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_name_is_a_valid_one() {
        assert_eq!(ContainerName::parse("web-1").unwrap().as_str(), "web-1");
        for bad in ["", "a_b", "-a", "a b", "a/b"] {
            assert_eq!(ContainerName::parse(bad).unwrap_err().kind(), "InvalidName");
        }
    }

    #[test]
    fn an_existing_conf_may_have_an_underscore() {
        assert_eq!(
            ContainerName::existing("my_box").unwrap().as_str(),
            "my_box"
        );
        assert_eq!(ContainerName::existing("web-1").unwrap().as_str(), "web-1");
        for bad in ["", "-a", "_x/y", "a b", "a.b", "..", "a/b", "föö"] {
            assert_eq!(
                ContainerName::existing(bad).unwrap_err().kind(),
                "InvalidName",
                "{bad}"
            );
        }
        // Create still refuses it.
        assert!(ContainerName::parse("my_box").is_err());
    }

    #[test]
    fn accepts_plain_names() {
        for n in ["foo", "a", "web-1", "ABC123", "x".repeat(64).as_str()] {
            assert!(validate(n).is_ok(), "{n}");
        }
    }

    #[test]
    fn rejects_what_systemd_rejects() {
        for n in [
            "",
            "a_b",
            "a.b",
            "a b",
            "-foo",
            "föö",
            "a/b",
            &"x".repeat(65),
        ] {
            let err = validate(n).unwrap_err();
            assert_eq!(err.kind(), "InvalidName", "{n}");
        }
    }

    #[test]
    fn underscore_hint_names_the_reason() {
        let hint = validate("my_box").unwrap_err().hint().unwrap();
        assert!(hint.contains("systemd rejects"), "{hint}");
    }
}
