//! nixos-container's flags, the same for every verb (options anywhere, `--` ends them), and
//! the `opts` map a verb sees. The command line and the REPL's `:VERB ARGS` both read them here.

use std::path::PathBuf;

use clap::Parser;
use rhai::{Dynamic, Map};

/// nixos-container's flags, accepted by every verb (irrelevant ones are ignored, as there).
#[derive(Debug, Parser)]
#[command(name = "ncsh", disable_help_flag = true, disable_version_flag = true)]
pub struct Flags {
    #[arg(long)]
    pub help: bool,
    #[arg(long)]
    pub version: bool,
    /// The host driver (`systemd` or `standalone`); the command line reads it before parsing.
    #[arg(long)]
    pub driver: Option<String>,
    #[arg(long)]
    pub ensure_unique_name: bool,
    #[arg(long)]
    pub auto_start: bool,
    #[arg(long)]
    pub bridge: Option<String>,
    #[arg(long)]
    pub port: Option<String>,
    #[arg(long)]
    pub system_path: Option<String>,
    #[arg(long)]
    pub signal: Option<String>,
    #[arg(long)]
    pub nixos_path: Option<String>,
    #[arg(long)]
    pub config: Option<String>,
    #[arg(long)]
    pub config_file: Option<PathBuf>,
    #[arg(long)]
    pub host_address: Option<String>,
    #[arg(long)]
    pub local_address: Option<String>,
    #[arg(long)]
    pub flake: Option<String>,
    /// Nix pass-through flags, for the Nix builder (refused without Nix).
    #[arg(long, num_args = 2, value_names = ["NAME", "VALUE"])]
    pub option: Vec<String>,
    #[arg(long, num_args = 2, value_names = ["INPUT", "FLAKE"])]
    pub override_input: Vec<String>,
    #[arg(long)]
    pub log_format: Option<String>,
    #[arg(long)]
    pub update_input: Option<String>,
    #[arg(long)]
    pub impure: bool,
    #[arg(long)]
    pub commit_lock_file: bool,
    #[arg(long)]
    pub no_registries: bool,
    #[arg(long)]
    pub no_update_lock_file: bool,
    #[arg(long)]
    pub no_write_lock_file: bool,
    #[arg(long)]
    pub no_allow_dirty: bool,
    #[arg(long)]
    pub recreate_lock_file: bool,
    #[arg(long)]
    pub refresh: bool,
    /// The action and its arguments.
    #[arg(allow_hyphen_values = false)]
    pub words: Vec<String>,
}

impl Flags {
    /// The Nix pass-through flags as nix-env and nix build take them (pairs kept together).
    fn nix_flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        for (flag, values) in [
            ("--option", &self.option),
            ("--override-input", &self.override_input),
        ] {
            for pair in values.chunks(2) {
                flags.push(flag.to_string());
                flags.extend(pair.iter().cloned());
            }
        }
        for (flag, value) in [
            ("--log-format", &self.log_format),
            ("--update-input", &self.update_input),
        ] {
            if let Some(v) = value {
                flags.push(flag.to_string());
                flags.push(v.clone());
            }
        }
        for (flag, on) in [
            ("--impure", self.impure),
            ("--commit-lock-file", self.commit_lock_file),
            ("--no-registries", self.no_registries),
            ("--no-update-lock-file", self.no_update_lock_file),
            ("--no-write-lock-file", self.no_write_lock_file),
            ("--no-allow-dirty", self.no_allow_dirty),
            ("--recreate-lock-file", self.recreate_lock_file),
        ] {
            if on {
                flags.push(flag.to_string());
            }
        }
        flags
    }

    /// The flags a verb sees as `opts`: only those given, snake_case keys.
    pub fn to_map(&self) -> Map {
        let mut map = Map::new();
        let mut text = |key: &str, value: &Option<String>| {
            if let Some(v) = value {
                map.insert(key.into(), v.clone().into());
            }
        };
        text("bridge", &self.bridge);
        text("port", &self.port);
        text("system_path", &self.system_path);
        text("signal", &self.signal);
        text("nixos_path", &self.nixos_path);
        text("config", &self.config);
        text("host_address", &self.host_address);
        text("local_address", &self.local_address);
        text("flake", &self.flake);
        if let Some(file) = &self.config_file {
            map.insert("config_file".into(), file.display().to_string().into());
        }
        if self.ensure_unique_name {
            map.insert("ensure_unique_name".into(), true.into());
        }
        if self.auto_start {
            map.insert("auto_start".into(), true.into());
        }
        let nix_flags = self.nix_flags();
        if !nix_flags.is_empty() {
            let array: rhai::Array = nix_flags.into_iter().map(Dynamic::from).collect();
            map.insert("nix_flags".into(), array.into());
        }
        if self.refresh {
            map.insert("refresh".into(), true.into());
        }
        map
    }
}

/// The first line of clap's message, without its `error: `.
pub fn clap_message(e: &clap::Error) -> String {
    let text = e.to_string();
    text.lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_string()
}

/// A verb's words (those after the verb) read as the command line reads them: the positional
/// arguments and the `opts` map the verb sees, with `help` in it for `--help`. The REPL's
/// `:VERB ARGS` uses it, so it accepts the same flags as the command line.
pub fn verb_args(words: Vec<String>) -> Result<(Vec<String>, Map), String> {
    let argv = std::iter::once("ncsh".to_string()).chain(words);
    let flags = Flags::try_parse_from(argv).map_err(|e| clap_message(&e))?;
    let mut opts = flags.to_map();
    if flags.help {
        opts.insert("help".into(), true.into());
    }
    Ok((flags.words, opts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nix_flags_keep_pairs() {
        let flags = Flags::try_parse_from([
            "ncsh",
            "create",
            "foo",
            "--option",
            "max-jobs",
            "1",
            "--impure",
            "--override-input",
            "nixpkgs",
            "/src",
            "--option",
            "cores",
            "2",
            "--log-format",
            "raw",
            "--refresh",
        ])
        .unwrap();
        assert_eq!(
            flags.nix_flags(),
            [
                "--option",
                "max-jobs",
                "1",
                "--option",
                "cores",
                "2",
                "--override-input",
                "nixpkgs",
                "/src",
                "--log-format",
                "raw",
                "--impure"
            ]
        );
        let map = flags.to_map();
        assert_eq!(map["nix_flags"].clone().into_array().unwrap().len(), 12);
        assert!(map["refresh"].as_bool().unwrap());
        assert_eq!(flags.words, ["create", "foo"]);
    }
}
