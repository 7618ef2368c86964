//! `etc/nixos/configuration.nix` exactly as nixos-container writes it (ARCHITECTURE.md, "NixOS's start script and the conf").

use std::path::Path;

/// The extra line of the generated file.
pub enum Extra<'a> {
    None,
    /// A `--config` snippet, inserted verbatim.
    Snippet(&'a str),
    /// A `--config-file`, already made absolute (symlinks resolved).
    Import(&'a Path),
}

pub fn render(name: &str, extra: Extra<'_>) -> String {
    let extra = match extra {
        Extra::None => String::new(),
        Extra::Snippet(s) => s.to_string(),
        Extra::Import(p) => format!("imports = [ {} ];", p.display()),
    };
    format!(
        "{{ config, lib, pkgs, ... }}:\n\n{{\n  boot.isContainer = true;\n  \
         networking.hostName = lib.mkDefault \"{name}\";\n  networking.useDHCP = false;\n  {extra}\n}}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_nixos_container() {
        assert_eq!(
            render("foo", Extra::Snippet("services.openssh.enable = true;")),
            "{ config, lib, pkgs, ... }:\n\n{\n  boot.isContainer = true;\n  networking.hostName = \
             lib.mkDefault \"foo\";\n  networking.useDHCP = false;\n  services.openssh.enable = true;\n}\n"
        );
        assert!(
            render("foo", Extra::Import(Path::new("/x/t.nix")))
                .contains("  imports = [ /x/t.nix ];\n}")
        );
        assert!(render("foo", Extra::None).ends_with("networking.useDHCP = false;\n  \n}\n"));
    }
}
