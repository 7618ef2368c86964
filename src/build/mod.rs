//! Builders: what runs inside a container. Today the native base system (the host's `/usr`
//! read-only, a private `/etc`, the host's systemd as PID 1); realizing NixOS options comes next.

pub mod base;
pub mod configuration_nix;
pub mod nixexpr;
