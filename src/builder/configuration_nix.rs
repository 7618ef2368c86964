//! `etc/nixos/configuration.nix` exactly as nixos-container writes it (ARCHITECTURE.md, "NixOS's start script and the conf").

use crate::container::ConfigSource;
use crate::error::Result;
use crate::files::Root;

/// Where a container's `configuration.nix` is, relative to its root.
pub const PATH: &str = "etc/nixos/configuration.nix";

/// The file for container `name`: a `--config` snippet inserted verbatim, a `--config-file`
/// imported by its absolute path, nothing more for [`ConfigSource::Existing`].
pub fn render(name: &str, source: &ConfigSource) -> String {
    let extra = match source {
        ConfigSource::Existing => String::new(),
        ConfigSource::Snippet(s) => s.to_string(),
        ConfigSource::File(p) => format!("imports = [ {} ];", p.display()),
    };
    format!(
        "{{ config, lib, pkgs, ... }}:\n\n{{\n  boot.isContainer = true;\n  \
         networking.hostName = lib.mkDefault \"{name}\";\n  networking.useDHCP = false;\n  {extra}\n}}\n"
    )
}

/// Write the file into a container root.
pub fn write(root: &Root, name: &str, source: &ConfigSource) -> Result<()> {
    root.write(PATH, render(name, source).as_bytes(), 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn matches_nixos_container() {
        assert_eq!(
            render(
                "foo",
                &ConfigSource::Snippet("services.openssh.enable = true;".into())
            ),
            "{ config, lib, pkgs, ... }:\n\n{\n  boot.isContainer = true;\n  networking.hostName = \
             lib.mkDefault \"foo\";\n  networking.useDHCP = false;\n  services.openssh.enable = true;\n}\n"
        );
        assert!(
            render("foo", &ConfigSource::File(Path::new("/x/t.nix").into()))
                .contains("  imports = [ /x/t.nix ];\n}")
        );
        assert!(
            render("foo", &ConfigSource::Existing)
                .ends_with("networking.useDHCP = false;\n  \n}\n")
        );
    }
}
