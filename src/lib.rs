//! ncsh: a scriptable shell for NixOS-style imperative containers, and a drop-in
//! `nixos-container`. See ARCHITECTURE.md in the repository for the layers:
//! `container` (the domain), `host` (drivers), `build` (what runs inside), `manager` (the
//! operations), `api` + `engine` (Rhai), `flags` (nixos-container's flags), `cli` (the command
//! line) and `repl`.

pub mod api;
pub mod builder;
pub mod cli;
pub mod container;
pub mod engine;
pub mod error;
pub mod files;
pub mod flags;
pub mod host;
pub mod manager;
pub mod nixlang;
pub mod repl;
pub mod testrun;

/// mimalloc for every binary made with this library (ncsh, its tests and benches): an
/// evaluation of a configuration makes tens of thousands of small, short-lived objects (rnix's
/// syntax nodes, thunks, sets) and glibc's malloc and free were a quarter of its instructions.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(test)]
mod fuzz;
