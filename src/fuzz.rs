//! Property tests over the parsers: the conf parser, the address parser, the Nix evaluator and
//! the option-tree merge never panic on arbitrary input (text from each grammar's alphabet and
//! arbitrary bytes), conf render/parse round-trips, and evaluation ends (bounded nesting).
//!
//! 256 cases per target by default (a few seconds); `PROPTEST_CASES=N` runs more, e.g.
//! `PROPTEST_CASES=10000000 cargo test --release --lib fuzz::`.

use std::path::Path;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use crate::builder::options::{Declarations, OptType, OptionDecl};
use crate::builder::plain::Value;
use crate::container::Conf;
use crate::container::address::{UsedAddresses, bare, check_explicit_with, parse_address};
use crate::nixlang::EvalError;

/// No single input may take this long (a hang shows as a failure, not a stuck run).
const SLOW: Duration = Duration::from_secs(2);

fn bytes_as_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<u8>(), 0..200)
        .prop_map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Text from `pieces` (tokens of a grammar), joined with or without separators.
fn from_pieces(pieces: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        (
            proptest::sample::select(pieces),
            proptest::sample::select(&["", " ", "\n", ""][..]),
        ),
        0..max,
    )
    .prop_map(|parts| parts.into_iter().map(|(p, s)| format!("{p}{s}")).collect())
}

const CONF_PIECES: &[&str] = &[
    "HOST_ADDRESS",
    "LOCAL_ADDRESS",
    "PRIVATE_NETWORK",
    "KEY",
    "A_1",
    "=",
    "\"",
    "'",
    "\\",
    "\n",
    " ",
    "\t",
    "#",
    ";",
    "x",
    "10.233.1.1",
    "/24",
    "\\\n",
    "\\\"",
    "$",
    "`",
    "\r",
    "\0",
    "é",
];

const ADDR_PIECES: &[&str] = &[
    "0",
    "1",
    "10",
    "255",
    "256",
    "4294967296",
    ".",
    ":",
    "::",
    "/",
    "/0",
    "/24",
    "/32",
    "/33",
    "/128",
    "fc00",
    "ffff",
    "%",
    " ",
    "-",
    "+",
    "x",
    "::ffff:",
    "1e3",
];

const NIX_PIECES: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    ";",
    "=",
    ".",
    ":",
    ",",
    "?",
    "@",
    "...",
    "+",
    "-",
    "*",
    "/",
    "++",
    "//",
    "==",
    "!=",
    "<",
    ">",
    "&&",
    "||",
    "->",
    "!",
    "\"",
    "''",
    "${",
    "$",
    "\\",
    "let",
    "in",
    "rec",
    "inherit",
    "if",
    "then",
    "else",
    "assert",
    "with",
    "or",
    "true",
    "false",
    "null",
    "x",
    "a",
    "config",
    "lib",
    "pkgs",
    "services.openssh.enable",
    "networking.hostName",
    "users.users.a.uid",
    "imports",
    "mkForce",
    "mkDefault",
    "lib.mkIf",
    "0",
    "1",
    "-1",
    "9999999999999999999999",
    "1.5",
    "./x",
    "<nixpkgs>",
    "~/x",
    "#",
    "/*",
    "*/",
    "\n",
    "a-b",
    "\"a\"",
    "''a''",
    "\"${x}\"",
];

fn nix_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => from_pieces(NIX_PIECES, 40),
        1 => bytes_as_text(),
        1 => any::<String>(),
    ]
}

/// Nix values (as source) for the option-tree targets.
fn nix_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("true".to_string()),
        Just("null".to_string()),
        any::<i64>().prop_map(|i| i.to_string()),
        "[a-z/ .\\\\$\"{}]{0,8}".prop_map(|s| format!("{s:?}")),
        Just("./x".to_string()),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4)
                .prop_map(|v| format!("[ {} ]", v.join(" "))),
            proptest::collection::vec(("[a-z<>\"]{1,4}", inner.clone()), 0..4).prop_map(|v| {
                let body: String = v.iter().map(|(k, x)| format!("{k:?} = {x}; ")).collect();
                format!("{{ {body}}}")
            }),
            inner.clone().prop_map(|x| format!("lib.mkForce ({x})")),
            inner.prop_map(|x| format!("lib.mkDefault ({x})")),
        ]
    })
}

/// `path = value;` bindings over the declared paths below, and some undeclared ones.
fn bindings() -> impl Strategy<Value = String> {
    let path = proptest::sample::select(
        &[
            "services.openssh.enable",
            "services.openssh.ports",
            "users.users.a.uid",
            "users.users.\"a.b\".uid",
            "users.users.a",
            "networking.hostName",
            "networking.firewall",
            "systemd.services.x.serviceConfig",
            "systemd.services.x",
            "services",
            "x",
            "environment.etc",
        ][..],
    );
    proptest::collection::vec((path, nix_value()), 0..6)
        .prop_map(|v| v.iter().map(|(p, x)| format!("{p} = {x};\n")).collect())
}

fn declarations() -> Declarations {
    let mut d = Declarations::default();
    for (path, ty, default) in [
        ("services.openssh.enable", "bool", Value::Bool(false)),
        ("services.openssh.ports", "listOf port", Value::List(vec![])),
        ("users.users.<name>.uid", "nullOr int", Value::Null),
        ("networking.hostName", "str", Value::String(String::new())),
        ("networking.firewall", "attrs", Value::Null),
        (
            "systemd.services.<name>.serviceConfig",
            "attrsOf any",
            Value::Null,
        ),
        ("environment.etc", "attrsOf str", Value::Null),
        ("x", "enum(a, b)", Value::String("a".into())),
    ] {
        let ty = OptType::parse(ty).unwrap_or(OptType::Any);
        let _ = d.add(OptionDecl {
            path: path.split('.').map(String::from).collect(),
            ty,
            default,
            description: String::new(),
            module: "fuzz".into(),
            default_by_name: None,
        });
    }
    d
}

fn timed<T>(what: &str, input: &str, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    assert!(
        started.elapsed() < SLOW,
        "{what} took {:?} on {input:?}",
        started.elapsed()
    );
    out
}

fn eval_here(text: &str) -> Result<serde_json::Value, EvalError> {
    // A directory without files: relative paths and imports resolve to nothing.
    crate::nixlang::eval_json(text, Path::new("/nonexistent/fuzz"))
}

/// `snippets` as `--config` modules of one configuration, against `decls`.
fn configure(decls: &Declarations, snippets: &[&str]) -> Result<Value, Vec<EvalError>> {
    let named: Vec<(&str, &str)> = snippets.iter().map(|s| (*s, "<fuzz>")).collect();
    crate::builder::native::evaluate_snippets(decls, &named, Path::new("/nonexistent/fuzz"))
}

proptest! {
    #[test]
    fn conf_parse_never_panics(text in prop_oneof![from_pieces(CONF_PIECES, 60), bytes_as_text()]) {
        let parsed = timed("conf parse", &text, || Conf::parse(&text, Path::new("f.conf")));
        if let Ok(conf) = parsed {
            // Whatever parses can be rendered and parsed again.
            let _ = Conf::parse(&conf.render(), Path::new("f.conf"));
        }
    }

    #[test]
    fn conf_render_parse_round_trips(
        entries in proptest::collection::vec(
            ("[A-Z_][A-Z0-9_]{0,12}", "([a-zA-Z0-9./:,@+=-]([a-zA-Z0-9./:,@+= -]{0,20}[a-zA-Z0-9./:,@+=-])?)?"),
            0..8,
        )
    ) {
        let mut conf = Conf::new();
        for (k, v) in &entries {
            conf.push(k, v.as_str());
        }
        let text = conf.render();
        let back = Conf::parse(&text, Path::new("f.conf"));
        prop_assert_eq!(back.ok(), Some(conf), "{}", text);
    }

    #[test]
    fn address_checks_never_panic(
        host in prop_oneof![from_pieces(ADDR_PIECES, 12), bytes_as_text(),
            (any::<u32>(), 0u8..40).prop_map(|(a, p)| format!("{}/{p}", std::net::Ipv4Addr::from(a)))],
        local in prop_oneof![from_pieces(ADDR_PIECES, 12),
            (any::<u32>(), 0u8..40).prop_map(|(a, p)| format!("{}/{p}", std::net::Ipv4Addr::from(a))),
            (any::<u128>(), 0u8..140).prop_map(|(a, p)| format!("{}/{p}", std::net::Ipv6Addr::from(a)))],
        other in prop_oneof![from_pieces(ADDR_PIECES, 12),
            (any::<u32>(), 0u8..40).prop_map(|(a, p)| format!("{}/{p}", std::net::Ipv4Addr::from(a)))],
    ) {
        timed("address check", &host, || {
            let _ = parse_address(&host);
            let _ = bare(&local);
            let mut conf = Conf::new();
            conf.push("HOST_ADDRESS", other.as_str());
            conf.push("LOCAL_ADDRESS6", local.as_str());
            let used = UsedAddresses::from_confs([("o", &conf)]);
            let own = [std::net::IpAddr::from([10, 0, 0, 1])];
            let _ = check_explicit_with(&host, &local, &used, &own);
            let _ = check_explicit_with(&local, &other, &UsedAddresses::default(), &own);
            let _ = used.allocate();
        });
    }

    #[test]
    fn nix_eval_never_panics(text in nix_text()) {
        timed("nix eval", &text, || {
            let _ = eval_here(&text);
            let _ = configure(&Declarations::default(), &[&text]);
        });
    }

    #[test]
    fn option_tree_merge_never_panics(a in bindings(), b in bindings()) {
        let decls = declarations();
        timed("option merge", &format!("{a}\n--\n{b}"), || {
            let _ = configure(&decls, &[&a]);
            let _ = configure(&decls, &[&a, &b]);
        });
    }
}

/// Deep nesting of every bracket kind ends with an error, not a stack overflow.
#[test]
fn deep_nesting_is_refused_not_overflowed() {
    for (open, close) in [
        ("[", "]"),
        ("(", ")"),
        ("{ a = ", "; }"),
        ("''${", "}''"),
        ("\"${", "}\""),
    ] {
        for depth in [1000, 100_000] {
            let text = format!("{}1{}", open.repeat(depth), close.repeat(depth));
            let started = Instant::now();
            let out = eval_here(&format!("{{ x = {text}; }}"));
            assert!(out.is_err(), "{open}×{depth} evaluated");
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{open}×{depth} is slow"
            );
        }
    }
}
