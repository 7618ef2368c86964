//! The one integration test binary: it runs the real `ncsh`. Tests that boot containers need
//! root and systemd-nspawn (CI has both); each cleans up after itself, even on failure.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod autostart;
mod binds;
mod boot;
mod common;
mod compat;
mod completions;
mod copy;
mod debris;
mod declarative;
mod declcuts;
mod enter;
mod everyday;
mod extremes;
mod hostile;
mod layering;
mod lifecycle;
mod limits;
mod login;
mod login_piped;
mod logs;
mod networking;
mod nginx;
mod nix;
mod nixdecl;
mod nixos_modules;
mod options;
mod parallel;
mod published_options;
mod raw_values;
mod recovery;
mod redis;
mod repl;
mod repl_burst;
mod rhai_errors;
mod run_status;
mod scripts;
mod seccomp;
mod services_data;
mod setup_script;
mod shell_env;
mod system_files;
mod systemd;
mod testdriver;
mod testhost;
mod units;
mod update_feedback;
mod verbs;
mod walkthrough;
