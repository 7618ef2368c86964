//! nixos-container's flags, the same for every verb (options anywhere, `--` ends them), and
//! the `opts` map a verb sees. The command line and the REPL's `:VERB ARGS` both read them here.

use clap::Parser;
use rhai::{Dynamic, Map};

/// nixos-container's flags, accepted by every verb (irrelevant ones are ignored, as there).
#[derive(Debug, Default, Parser)]
#[command(
    name = "ncsh",
    disable_help_flag = true,
    disable_version_flag = true,
    args_override_self = true
)]
pub struct Flags {
    #[arg(long)]
    pub help: bool,
    #[arg(long)]
    pub version: bool,
    /// The host driver (`systemd` or `standalone`); the command line reads it before parsing.
    #[arg(long)]
    pub driver: Option<String>,
    /// Take NAME as a stem: the first free NAME, NAME-1, … (create prints the one it took).
    #[arg(long)]
    pub ensure_unique_name: bool,
    /// Start the container when the host boots (AUTO_START=1).
    #[arg(long)]
    pub auto_start: bool,
    /// Attach the container's veth to this host bridge instead of a point-to-point link.
    #[arg(long)]
    pub bridge: Option<String>,
    /// Forward host ports: [tcp|udp:]HOST[:CONTAINER], comma-separated.
    #[arg(long)]
    pub port: Option<String>,
    /// ncsh's: a bridge of ncsh's own the container is on (`create --network NAME`).
    #[arg(long)]
    pub network: Option<String>,
    /// ncsh's limits (`create`/`update`): memory (bytes, or with K, M, G, T), CPU (percent of
    /// one CPU) and tasks.
    #[arg(long)]
    pub memory_max: Option<String>,
    #[arg(long)]
    pub cpu_quota: Option<String>,
    #[arg(long)]
    pub tasks_max: Option<String>,
    /// ncsh's: `start --all-auto` starts every container whose conf has AUTO_START=1.
    #[arg(long)]
    pub all_auto: bool,
    /// ncsh's `logs` flags: `-n N`/`--lines N`, `-f`/`--follow`, `-u UNIT`/`--unit UNIT`.
    #[arg(long = "n")]
    pub n: Option<String>,
    #[arg(long)]
    pub lines: Option<String>,
    #[arg(long = "f")]
    pub f: bool,
    #[arg(long)]
    pub follow: bool,
    #[arg(long = "u")]
    pub u: Option<String>,
    #[arg(long)]
    pub unit: Option<String>,
    /// Use this built system (a Nix store path; Nix hosts).
    #[arg(long)]
    pub system_path: Option<String>,
    /// Accepted for nixos-container's sake and ignored.
    #[arg(long)]
    pub signal: Option<String>,
    /// The NixOS source to build with (Nix hosts).
    #[arg(long)]
    pub nixos_path: Option<String>,
    /// The configuration, as the text of a NixOS module.
    #[arg(long)]
    pub config: Option<String>,
    /// The configuration, as a NixOS module file.
    #[arg(long)]
    pub config_file: Option<String>,
    /// The host end's address (with --local-address).
    #[arg(long)]
    pub host_address: Option<String>,
    /// The container's address (with --host-address).
    #[arg(long)]
    pub local_address: Option<String>,
    /// Build from a flake: REF[#ATTR] (Nix hosts).
    #[arg(long)]
    pub flake: Option<String>,
    /// ncsh's (nixpkgs PR #478888's): `HOST[:CONTAINER]`, repeatable.
    #[arg(long, action = clap::ArgAction::Append)]
    pub bind: Vec<String>,
    #[arg(long, action = clap::ArgAction::Append)]
    pub bind_ro: Vec<String>,
    #[arg(long, action = clap::ArgAction::Append)]
    pub capability: Vec<String>,
    #[arg(long, action = clap::ArgAction::Append)]
    pub tmpfs: Vec<String>,
    #[arg(long)]
    pub extra_flags: Option<String>,
    #[arg(long)]
    pub ephemeral: bool,
    /// `apply --start`, `apply --destroy`.
    #[arg(long)]
    pub start: bool,
    #[arg(long)]
    pub destroy: bool,
    #[arg(long)]
    pub host_address6: Option<String>,
    #[arg(long)]
    pub local_address6: Option<String>,
    /// Nix pass-through flags, for the Nix builder (refused without Nix).
    #[arg(long, num_args = 2, value_names = ["NAME", "VALUE"], action = clap::ArgAction::Append, allow_hyphen_values = true)]
    pub option: Vec<String>,
    #[arg(long, num_args = 2, value_names = ["INPUT", "FLAKE"], action = clap::ArgAction::Append, allow_hyphen_values = true)]
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
    /// ncsh's, for run: the user to run as (a name or UID of the container's /etc/passwd).
    #[arg(long)]
    pub user: Option<String>,
    /// ncsh's, for run: the working directory inside the container.
    #[arg(long)]
    pub chdir: Option<String>,
    /// ncsh's, for run: set NAME=VALUE in the command's environment (repeatable).
    #[arg(long, value_name = "NAME=VALUE", action = clap::ArgAction::Append)]
    pub setenv: Vec<String>,
    /// ncsh's, for run: run on a terminal allocated inside the container.
    #[arg(long, overrides_with = "no_pty")]
    pub pty: bool,
    /// ncsh's, for run: pass stdin, stdout and stderr through (the default).
    #[arg(long, overrides_with = "pty")]
    pub no_pty: bool,
    /// ncsh's: no progress line on a terminal (create, start, update).
    #[arg(long)]
    pub quiet: bool,
    /// ncsh's: JSON output (`ncsh options --json`).
    #[arg(long)]
    pub json: bool,
    /// ncsh's, for `ncsh test`: a JUnit XML report to write.
    #[arg(long)]
    pub junit: Option<String>,
    /// ncsh's, for `ncsh test`: leave a failed test's nodes.
    #[arg(long)]
    pub keep: bool,
    /// ncsh's, for `ncsh test`: set the nodes up, then the REPL.
    #[arg(long)]
    pub interactive: bool,
    /// ncsh's, for `ncsh test`: files run at once (`-j N`).
    #[arg(long = "j")]
    pub jobs: Option<String>,
    /// ncsh's, for `ncsh test`: the default timeout of every `wait_*`, in seconds.
    #[arg(long)]
    pub timeout: Option<String>,
    /// The action and its arguments.
    #[arg(allow_hyphen_values = false)]
    pub words: Vec<String>,
}

/// Why a command line's options could not be read.
#[derive(Debug)]
pub enum FlagsError {
    /// Refused by the Getopt::Long grammar ([`getopt_argv`]); the message is the original's
    /// (`Unknown option: x`, `Option conf is ambiguous (config, config-file)`, …).
    Getopt(String),
    /// Refused by clap, on the canonical form.
    Clap(clap::Error),
}

impl FlagsError {
    pub fn message(&self) -> String {
        match self {
            FlagsError::Getopt(message) => message.clone(),
            FlagsError::Clap(e) => clap_message(e),
        }
    }
}

impl Flags {
    /// The flags of a command line's words (those after the program name), read with
    /// nixos-container's grammar ([`getopt_argv`]). The last of a repeated option wins.
    pub fn from_words(words: &[String]) -> Result<Flags, FlagsError> {
        let canonical = getopt_argv(words).map_err(FlagsError::Getopt)?;
        // Words alone (`list`, `show-ip web`) are all `words` to clap: made so without building
        // its parser, an eighth of a read verb's instructions (callgrind).
        if canonical.iter().all(|w| !w.starts_with('-')) {
            return Ok(Flags {
                words: canonical,
                ..Flags::default()
            });
        }
        let argv = std::iter::once("ncsh".to_string()).chain(canonical);
        Flags::try_parse_from(argv).map_err(FlagsError::Clap)
    }

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

    /// The flags a verb sees as `opts`: only those given, snake_case keys. An empty value is
    /// not given: nixos-container tests its values for truth where it uses them (it tests
    /// them for `defined` only in its checks of the command line, which `cli.rs` keeps).
    pub fn to_map(&self) -> Map {
        let mut map = Map::new();
        let mut text = |key: &str, value: &Option<String>| {
            if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
                map.insert(key.into(), v.clone().into());
            }
        };
        text("bridge", &self.bridge);
        text("port", &self.port);
        text("network", &self.network);
        text("memory_max", &self.memory_max);
        text("cpu_quota", &self.cpu_quota);
        text("tasks_max", &self.tasks_max);
        text("lines", &self.lines);
        text("lines", &self.n);
        text("unit", &self.unit);
        text("unit", &self.u);
        text("system_path", &self.system_path);
        text("signal", &self.signal);
        text("nixos_path", &self.nixos_path);
        text("config", &self.config);
        text("host_address", &self.host_address);
        text("local_address", &self.local_address);
        text("flake", &self.flake);
        text("config_file", &self.config_file);
        text("extra_flags", &self.extra_flags);
        text("host_address6", &self.host_address6);
        text("local_address6", &self.local_address6);
        text("user", &self.user);
        text("chdir", &self.chdir);
        for (key, values) in [
            ("bind", &self.bind),
            ("bind_ro", &self.bind_ro),
            ("capability", &self.capability),
            ("tmpfs", &self.tmpfs),
        ] {
            let given: rhai::Array = values
                .iter()
                .filter(|v| !v.is_empty())
                .cloned()
                .map(Dynamic::from)
                .collect();
            if !given.is_empty() {
                map.insert(key.into(), given.into());
            }
        }
        for (key, on) in [
            ("ephemeral", self.ephemeral),
            ("start", self.start),
            ("destroy", self.destroy),
        ] {
            if on {
                map.insert(key.into(), true.into());
            }
        }
        if self.ensure_unique_name {
            map.insert("ensure_unique_name".into(), true.into());
        }
        if self.auto_start {
            map.insert("auto_start".into(), true.into());
        }
        if self.all_auto {
            map.insert("all_auto".into(), true.into());
        }
        if self.f || self.follow {
            map.insert("follow".into(), true.into());
        }
        let nix_flags = self.nix_flags();
        if !nix_flags.is_empty() {
            let array: rhai::Array = nix_flags.into_iter().map(Dynamic::from).collect();
            map.insert("nix_flags".into(), array.into());
        }
        if self.refresh {
            map.insert("refresh".into(), true.into());
        }
        if self.json {
            map.insert("json".into(), true.into());
        }
        for (key, value) in [
            ("junit", &self.junit),
            ("jobs", &self.jobs),
            ("timeout", &self.timeout),
        ] {
            if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
                map.insert(key.into(), v.clone().into());
            }
        }
        for (key, on) in [("keep", self.keep), ("interactive", self.interactive)] {
            if on {
                map.insert(key.into(), true.into());
            }
        }
        if !self.setenv.is_empty() {
            let array: rhai::Array = self.setenv.iter().cloned().map(Dynamic::from).collect();
            map.insert("setenv".into(), array.into());
        }
        if self.pty || self.no_pty {
            map.insert("pty".into(), self.pty.into());
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

/// nixos-container's own long options (its Getopt::Long specification). Every other long option
/// is ncsh's, and never makes an abbreviation of the original's ambiguous: `--host` is still
/// `--host-address`, `--b` `--bridge`, `-i` `--impure`, `--u` `--update-input`.
const ORIGINAL: [&str; 24] = [
    "config",
    "config-file",
    "system-path",
    "nixos-path",
    "flake",
    "update-input",
    "override-input",
    "option",
    "impure",
    "commit-lock-file",
    "no-registries",
    "no-update-lock-file",
    "no-write-lock-file",
    "no-allow-dirty",
    "recreate-lock-file",
    "refresh",
    "log-format",
    "host-address",
    "local-address",
    "bridge",
    "port",
    "auto-start",
    "ensure-unique-name",
    "signal",
];

/// nixos-container's option grammar turned into the canonical form clap reads. The original
/// parses with Perl's Getopt::Long configured `gnu_getopt no_bundling`: `permute`,
/// `auto_abbrev`, `ignore_case`, `gnu_compat`, no bundling, no `getopt_compat`.
///
/// - An option starts with `--` or `-` (`-auto-start` is `--auto-start`); `-` alone is a word.
/// - Its name is case-insensitive and may be any unique prefix of a long name (`--ensure`,
///   `-p 80`); an exact name wins over longer ones (`--config` is not `--config-file`).
///   An ambiguous prefix is refused with the original's message.
/// - `--name=value` (after `--` only: `-name=value` is an unknown option, as there) or
///   `--name value`. A value is the next word whatever it looks like (`--config --x`,
///   `--port -1`); `--name=` gives the empty value.
/// - `--` ends the options: it and every word after it are passed on untouched.
///
/// The result has `--long-name=value` for options with one value, `--long-name V1 V2` for
/// those with two, `--long-name` for flags, and the other words in their places. Like
/// Getopt::Long, it reads on after an error; the error is all the messages, one a line.
/// ncsh's own options that are never abbreviated, so that the original's abbreviations stay
/// unique (`-p` is `--port`, `--u` is `--update-input`).
const EXACT_ONLY: [&str; 5] = ["user", "chdir", "setenv", "pty", "no-pty"];

/// `logs`'s short options (`-n N`, `-f`, `-u UNIT`, as journalctl's): options of that verb
/// only, since elsewhere they are the original's abbreviations (`-n` is `--nixos-path`, `-f`
/// `--flake`, `--u` `--update-input`).
const LOGS_ONLY: [&str; 3] = ["n", "f", "u"];

/// Each long name of [`Flags`] and how many values it takes, sorted: what [`getopt_argv`]
/// reads a command line with. Written out rather than read from clap's `Command`, whose
/// building was a fifth of a read-only verb's instructions (a command line is read twice: the
/// driver flag first, then the flags); `long_names_are_the_flags` checks it is the same.
const LONG_NAMES: &[(&str, usize)] = &[
    ("all-auto", 0),
    ("auto-start", 0),
    ("bind", 1),
    ("bind-ro", 1),
    ("bridge", 1),
    ("capability", 1),
    ("chdir", 1),
    ("commit-lock-file", 0),
    ("config", 1),
    ("config-file", 1),
    ("cpu-quota", 1),
    ("destroy", 0),
    ("driver", 1),
    ("ensure-unique-name", 0),
    ("ephemeral", 0),
    ("extra-flags", 1),
    ("f", 0),
    ("flake", 1),
    ("follow", 0),
    ("help", 0),
    ("host-address", 1),
    ("host-address6", 1),
    ("impure", 0),
    ("interactive", 0),
    ("j", 1),
    ("json", 0),
    ("junit", 1),
    ("keep", 0),
    ("lines", 1),
    ("local-address", 1),
    ("local-address6", 1),
    ("log-format", 1),
    ("memory-max", 1),
    ("n", 1),
    ("network", 1),
    ("nixos-path", 1),
    ("no-allow-dirty", 0),
    ("no-pty", 0),
    ("no-registries", 0),
    ("no-update-lock-file", 0),
    ("no-write-lock-file", 0),
    ("option", 2),
    ("override-input", 2),
    ("port", 1),
    ("pty", 0),
    ("quiet", 0),
    ("recreate-lock-file", 0),
    ("refresh", 0),
    ("setenv", 1),
    ("signal", 1),
    ("start", 0),
    ("system-path", 1),
    ("tasks-max", 1),
    ("timeout", 1),
    ("tmpfs", 1),
    ("u", 1),
    ("unit", 1),
    ("update-input", 1),
    ("user", 1),
    ("version", 0),
];

/// [`LONG_NAMES`] as clap's `Command` of [`Flags`] has them.
#[cfg(test)]
fn long_names_of_flags() -> Vec<(String, usize)> {
    use clap::CommandFactory;
    let mut cmd = Flags::command();
    cmd.build();
    let mut names: Vec<(String, usize)> = cmd
        .get_arguments()
        .filter_map(|arg| {
            let long = arg.get_long()?;
            let values = if arg.get_action().takes_values() {
                arg.get_num_args().map_or(1, |n| n.min_values())
            } else {
                0
            };
            Some((long.to_string(), values))
        })
        .collect();
    names.sort();
    names
}

pub fn getopt_argv(words: &[String]) -> Result<Vec<String>, String> {
    let names = LONG_NAMES;
    let mut out = Vec::with_capacity(words.len());
    let mut errors: Vec<String> = Vec::new();
    // The first word that is not an option or its value.
    let mut verb: Option<&str> = None;
    let mut words = words.iter();
    while let Some(word) = words.next() {
        let names: Vec<&(&str, usize)> = names
            .iter()
            .filter(|(n, _)| verb == Some("logs") || !LOGS_ONLY.contains(n))
            .collect();
        if word == "--" {
            out.push(word.clone());
            out.extend(words.cloned());
            break;
        }
        let (body, long_prefix) = match word.strip_prefix("--") {
            Some(body) => (body, true),
            None => match word.strip_prefix('-') {
                Some(body) => (body, false),
                None => ("", false),
            },
        };
        if body.is_empty() {
            verb = verb.or(Some(word.as_str()));
            out.push(word.clone());
            continue;
        }
        let (given, inline) = match body.find('=') {
            Some(at) if at > 0 && long_prefix => (&body[..at], Some(&body[at + 1..])),
            _ => (body, None),
        };
        let given = given.to_lowercase();
        let (name, values) = match names.iter().find(|(n, _)| *n == given.as_str()) {
            Some(exact) => **exact,
            None => {
                let mut hits: Vec<&(&str, usize)> = names
                    .iter()
                    .copied()
                    .filter(|(n, _)| n.starts_with(&given) && !EXACT_ONLY.contains(n))
                    .collect();
                if hits.iter().any(|(n, _)| ORIGINAL.contains(n)) {
                    hits.retain(|(n, _)| ORIGINAL.contains(n));
                }
                match hits.as_slice() {
                    [] => {
                        errors.push(format!("Unknown option: {given}"));
                        continue;
                    }
                    [hit] => **hit,
                    _ => {
                        let hits: Vec<&str> = hits.iter().map(|(n, _)| *n).collect();
                        errors.push(format!("Option {given} is ambiguous ({})", hits.join(", ")));
                        continue;
                    }
                }
            }
        };
        match (values, inline) {
            (0, None) => out.push(format!("--{name}")),
            (0, Some(_)) => errors.push(format!("Option {name} does not take an argument")),
            (1, Some(value)) => out.push(format!("--{name}={value}")),
            (1, None) => match words.next() {
                Some(value) => out.push(format!("--{name}={value}")),
                None => errors.push(format!("Option {name} requires an argument")),
            },
            (n, inline) => {
                let mut taken: Vec<String> = inline.map(str::to_string).into_iter().collect();
                taken.extend(words.by_ref().take(n - taken.len()).cloned());
                if taken.len() < n {
                    errors.push(format!("Option {name} requires an argument"));
                } else {
                    out.push(format!("--{name}"));
                    out.extend(taken);
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors.join("\n"))
    }
}

/// A verb's words (those after the verb) read as the command line reads them: the positional
/// arguments and the `opts` map the verb sees, with `help` in it for `--help`. The REPL's
/// `:VERB ARGS` uses it, so it accepts the same flags as the command line.
pub fn verb_args(words: Vec<String>) -> Result<(Vec<String>, Map), String> {
    let flags = Flags::from_words(&words).map_err(|e| e.message())?;
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
    fn words_alone_are_what_clap_makes_of_them() {
        for words in [
            &["list"][..],
            &["show-ip", "web"],
            &["run", "web", "true"],
            &["create", "a", "b", "c"],
            &[],
        ] {
            let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
            let fast = Flags::from_words(&words).unwrap();
            let argv = std::iter::once("ncsh".to_string()).chain(words.iter().cloned());
            let clap = Flags::try_parse_from(argv).unwrap();
            assert_eq!(format!("{fast:?}"), format!("{clap:?}"), "{words:?}");
        }
    }

    #[test]
    fn long_names_are_the_flags() {
        let table: Vec<(String, usize)> = LONG_NAMES
            .iter()
            .map(|(n, v)| (n.to_string(), *v))
            .collect();
        let flags = long_names_of_flags();
        assert!(
            table == flags,
            "LONG_NAMES differs from Flags; it should be:\n{}",
            flags
                .iter()
                .map(|(n, v)| format!("    (\"{n}\", {v}),"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

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

#[cfg(test)]
mod grammar_tests {
    use super::*;

    fn canon(words: &[&str]) -> Result<Vec<String>, String> {
        getopt_argv(&words.iter().map(|w| w.to_string()).collect::<Vec<_>>())
    }

    fn flags(words: &[&str]) -> Flags {
        Flags::from_words(&words.iter().map(|w| w.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn unique_prefixes_name_their_option() {
        assert_eq!(
            canon(&[
                "create", "a", "--ensure", "--host", "1", "--local", "2", "--auto"
            ])
            .unwrap(),
            [
                "create",
                "a",
                "--ensure-unique-name",
                "--host-address=1",
                "--local-address=2",
                "--auto-start"
            ]
        );
        assert_eq!(
            canon(&["--br", "br0", "--po", "8080", "-p", "80"]).unwrap(),
            ["--bridge=br0", "--port=8080", "--port=80"]
        );
        // ncsh's run options are never abbreviated: the original's prefixes stay unique.
        assert_eq!(
            canon(&["-p", "80", "--u", "x"]).unwrap(),
            ["--port=80", "--update-input=x"]
        );
        // ncsh's options never make the original's abbreviations ambiguous.
        assert_eq!(canon(&["-i"]).unwrap(), ["--impure"]);
        assert_eq!(canon(&["--net", "x"]).unwrap(), ["--network=x"]);
        // logs's -n, -f and -u are the original's abbreviations in every other verb.
        assert_eq!(
            canon(&["update", "a", "-f", "x", "-u", "i"]).unwrap(),
            ["update", "a", "--flake=x", "--update-input=i"]
        );
        assert!(
            canon(&["update", "a", "-n", "/p"])
                .unwrap_err()
                .starts_with("Option n is ambiguous (nixos-path, no-allow-dirty")
        );
        assert_eq!(
            canon(&["logs", "a", "-n", "5", "-f", "-u", "sshd.service"]).unwrap(),
            ["logs", "a", "--n=5", "--f", "--u=sshd.service"]
        );
        assert_eq!(
            canon(&["--pty", "--user", "a"]).unwrap(),
            ["--pty", "--user=a"]
        );
        // An exact name wins over a longer one it is a prefix of.
        assert_eq!(canon(&["--config", "x"]).unwrap(), ["--config=x"]);
    }

    #[test]
    fn an_ambiguous_prefix_is_refused_as_the_original_does() {
        assert_eq!(
            canon(&["--conf", "x"]).unwrap_err(),
            "Option conf is ambiguous (config, config-file)"
        );
        assert_eq!(canon(&["--bogus"]).unwrap_err(), "Unknown option: bogus");
        assert_eq!(canon(&["--BOGUS"]).unwrap_err(), "Unknown option: bogus");
        assert_eq!(
            canon(&["--port"]).unwrap_err(),
            "Option port requires an argument"
        );
        // gnu_compat: `--port=` is the empty value; no bundling: `-port=1` is a name.
        assert_eq!(canon(&["--port="]).unwrap(), ["--port="]);
        assert_eq!(canon(&["-port=1"]).unwrap_err(), "Unknown option: port=1");
        assert_eq!(
            canon(&["--auto-start=1"]).unwrap_err(),
            "Option auto-start does not take an argument"
        );
        // Like Getopt::Long, every error is reported; an unknown option takes no value.
        assert_eq!(
            canon(&["--bogus", "x", "-la", "--conf"]).unwrap_err(),
            "Unknown option: bogus\nUnknown option: la\nOption conf is ambiguous (config, config-file)"
        );
    }

    #[test]
    fn single_dash_and_any_case() {
        assert_eq!(
            canon(&["-auto-start", "-host-address", "a", "-local-address", "b"]).unwrap(),
            ["--auto-start", "--host-address=a", "--local-address=b"]
        );
        assert_eq!(
            canon(&["--ENSURE-unique-name", "--Auto-Start", "--PO", "1"]).unwrap(),
            ["--ensure-unique-name", "--auto-start", "--port=1"]
        );
    }

    #[test]
    fn values_and_the_end_of_options_are_left_alone() {
        assert_eq!(
            canon(&[
                "run", "-", "--config", "--x", "--port", "-1", "--", "--auto", "-p"
            ])
            .unwrap(),
            [
                "run",
                "-",
                "--config=--x",
                "--port=-1",
                "--",
                "--auto",
                "-p"
            ]
        );
        assert_eq!(
            canon(&[
                "--opt",
                "max-jobs",
                "-1",
                "--override-input=nixpkgs",
                "/src"
            ])
            .unwrap(),
            [
                "--option",
                "max-jobs",
                "-1",
                "--override-input",
                "nixpkgs",
                "/src"
            ]
        );
        let f = flags(&[
            "run", "a", "-", "--config", "--x", "--opt", "k", "-1", "--", "--auto", "-p",
        ]);
        assert_eq!(f.config.as_deref(), Some("--x"));
        assert_eq!(f.option, ["k", "-1"]);
        assert!(!f.auto_start);
        assert_eq!(f.words, ["run", "a", "-", "--auto", "-p"]);
    }

    #[test]
    fn the_last_of_a_repeated_option_wins() {
        let f = flags(&["create", "a", "--port", "80", "--port", "81"]);
        assert_eq!(f.port.as_deref(), Some("81"));
        let f = flags(&["create", "a", "--auto-start", "--auto-start"]);
        assert!(f.auto_start);
        // Options with two values still add up.
        let f = flags(&["--option", "a", "1", "--option", "b", "2"]);
        assert_eq!(f.option, ["a", "1", "b", "2"]);
    }

    #[test]
    fn ncsh_options_repeat_and_leave_the_originals_abbreviations_alone() {
        let f = flags(&[
            "create",
            "a",
            "--bind",
            "/x:/y",
            "--bind=/z",
            "--bind-ro",
            "/r",
            "--capability",
            "CAP_NET_ADMIN",
            "--cap=CAP_MKNOD",
            "--tmpfs",
            "/var",
            "--ephemeral",
            "--extra-flags=--private-users=pick",
            "--host-address6",
            "fc00::1",
            "--local-address6",
            "fc00::2",
            "--host",
            "10.1.1.1",
            "--b",
            "br0",
        ]);
        assert_eq!(f.bind, ["/x:/y", "/z"]);
        assert_eq!(f.bind_ro, ["/r"]);
        assert_eq!(f.capability, ["CAP_NET_ADMIN", "CAP_MKNOD"]);
        assert_eq!(f.host_address.as_deref(), Some("10.1.1.1"));
        assert_eq!(f.bridge.as_deref(), Some("br0"));
        let map = f.to_map();
        assert_eq!(map["bind"].clone().into_array().unwrap().len(), 2);
        assert_eq!(map["tmpfs"].clone().into_array().unwrap().len(), 1);
        assert!(map["ephemeral"].as_bool().unwrap());
        assert_eq!(
            map["host_address6"].clone().into_string().unwrap(),
            "fc00::1"
        );
        assert_eq!(
            map["extra_flags"].clone().into_string().unwrap(),
            "--private-users=pick"
        );
        // Among ncsh's own options a prefix must still be unique.
        assert_eq!(
            canon(&["--bi", "/x"]).unwrap_err(),
            "Option bi is ambiguous (bind, bind-ro)"
        );
    }

    #[test]
    fn an_empty_value_is_not_given() {
        let map = flags(&[
            "create",
            "a",
            "--bridge",
            "",
            "--port=",
            "--config-file",
            "",
        ])
        .to_map();
        for key in ["bridge", "port", "config_file"] {
            assert!(!map.contains_key(key), "{key}");
        }
        let map = flags(&["update", "a", "--config", ""]).to_map();
        assert!(!map.contains_key("config"));
    }
}
