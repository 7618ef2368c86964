//! ncsh: a scriptable shell for NixOS-style imperative containers, and a drop-in
//! `nixos-container`. See DESIGN.md in the repository for the layers:
//! `container` (the domain), `host` (drivers), `build` (what runs inside), `manager` (the
//! operations), `api` + `engine` (Rhai), `cli` (the command line).

pub mod api;
pub mod build;
pub mod cli;
pub mod container;
pub mod engine;
pub mod error;
pub mod host;
pub mod manager;
pub mod repl;

#[cfg(test)]
mod fuzz;
