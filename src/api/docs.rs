//! The API's docs live where its functions are registered, in the engine's metadata: each has a
//! doc comment whose first line is its signature as scripts write it (`c.run(argv: array) ->
//! map`) and whose other lines say what it does. `:help` and any listing read them back here.

use rhai::{Engine, FuncRegistration};
use serde::Deserialize;

/// A doc comment for [`function`] or `TypeBuilder::and_comments`: the signature line, then the
/// description (its lines are joined with spaces when shown).
macro_rules! api_doc {
    ($signature:literal, $($line:literal),+ $(,)?) => {
        concat!("/// ", $signature, $("\n/// ", $line),+)
    };
}
pub(crate) use api_doc;

/// A function to register with its doc (made by [`api_doc!`]).
pub(crate) fn function(name: &str, doc: &'static str) -> FuncRegistration {
    FuncRegistration::new(name).with_comments([doc])
}

/// One registered API function, property or method, as its doc describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    /// The name scripts use (`ip` for the property `c.ip`).
    pub name: String,
    /// The number of parameters, the receiver included.
    pub params: usize,
    /// A property getter (`c.ip`).
    pub property: bool,
    /// How scripts write it, e.g. `create(name: string) -> Container`.
    pub signature: String,
    /// What it does.
    pub text: String,
}

impl Doc {
    /// A property or method of a `Container` (`c.…`) or a `Test` (`t.…`).
    pub fn is_member(&self) -> bool {
        self.is_container_member() || self.is_test_member()
    }

    /// A property or method of a `Container` (`c.…`).
    pub fn is_container_member(&self) -> bool {
        self.signature.starts_with("c.")
    }

    /// A property or method of a `Test` (`t.…`, see `testdriver`).
    pub fn is_test_member(&self) -> bool {
        self.signature.starts_with("t.")
    }
}

/// The part of `Engine::gen_fn_metadata_to_json` read here.
#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    functions: Vec<Registered>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Registered {
    name: String,
    num_params: usize,
    #[serde(default)]
    doc_comments: Vec<String>,
}

/// The functions registered beyond Rhai's packages (the API, and `to_string` and `to_debug`
/// of its types).
fn registered(engine: &Engine) -> Vec<Registered> {
    engine
        .gen_fn_metadata_to_json(false)
        .ok()
        .and_then(|json| serde_json::from_str::<Metadata>(&json).ok())
        .map_or_else(Vec::new, |m| m.functions)
}

/// The lines of doc comments, without their `///` markers.
fn doc_lines(comments: &[String]) -> Vec<String> {
    comments
        .iter()
        .flat_map(|c| c.lines())
        .map(|l| {
            let text = l.trim_start().trim_start_matches("///");
            text.strip_prefix(' ')
                .unwrap_or(text)
                .trim_end()
                .to_string()
        })
        .collect()
}

/// The order listings show the API in, the way a script uses it; a name not here follows, in
/// alphabetical order.
#[rustfmt::skip]
const ORDER: &[&str] = &[
    "create", "apply", "container", "containers", "auto_start_containers", "exists", "driver", "sleep", "exit", "eprint",
    "name_arg", "wait_tcp", "tcp_request", "http_get",
    "name", "ip", "host_ip", "status", "usage", "limits", "leader", "host_key", "start", "stop", "restart",
    "terminate", "destroy", "run", "attach", "exec", "root_login", "login", "logs", "follow_logs", "update",
    "options",
];

/// Every documented function of the engine, one per registration: functions first, then
/// `Container`'s properties and methods, each in `ORDER` and by number of parameters.
pub fn docs(engine: &Engine) -> Vec<Doc> {
    let mut docs: Vec<Doc> = registered(engine)
        .into_iter()
        .filter_map(|f| {
            let lines = doc_lines(&f.doc_comments);
            let (signature, text) = lines.split_first()?;
            let (name, property) = match f.name.strip_prefix("get$") {
                Some(name) => (name.to_string(), true),
                None => (f.name.clone(), false),
            };
            Some(Doc {
                name,
                params: f.num_params,
                property,
                signature: signature.clone(),
                text: text.join(" "),
            })
        })
        .collect();
    let rank = |d: &Doc| ORDER.iter().position(|n| *n == d.name);
    docs.sort_by_key(|d| {
        (
            d.is_member(),
            rank(d).unwrap_or(ORDER.len()),
            d.name.clone(),
            d.params,
            // The engine gives overloads in no fixed order.
            d.signature.clone(),
        )
    });
    docs
}

/// [`docs`] with the overloads that share a description (`sleep` of an int or a float) as one
/// entry, shown with the signature that takes the most parameters.
pub fn listing(engine: &Engine) -> Vec<Doc> {
    let mut out: Vec<Doc> = Vec::new();
    for doc in docs(engine) {
        match out.last_mut() {
            Some(last) if last.name == doc.name && last.text == doc.text => {
                if doc.params > last.params {
                    *last = doc;
                }
            }
            _ => out.push(doc),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;
    use crate::container::Paths;
    use crate::manager::{Manager, Personality};

    fn engine() -> (tempfile::TempDir, Engine) {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path());
        let no_builder = || {
            Err(crate::error::Error::Unsupported(
                "no builder in this test".into(),
            ))
        };
        let manager = Manager::new(
            paths.clone(),
            Personality::Ncsh,
            Box::new(no_builder),
            Box::new(crate::host::standalone::Standalone::new(paths)),
        );
        let mut engine = Engine::new();
        super::super::register(&mut engine, Rc::new(manager));
        let no_options = || Ok(crate::builder::options::Declarations::default());
        super::super::options::register(&mut engine, Rc::new(no_options));
        (dir, engine)
    }

    /// The number of parameters a doc's signature shows, the receiver `c` included.
    fn signature_params(signature: &str) -> usize {
        let member = signature
            .strip_prefix("c.")
            .or_else(|| signature.strip_prefix("t."));
        let (receiver, rest) = match member {
            Some(rest) => (1, rest),
            None => (0, signature),
        };
        match (rest.find('('), rest.find(')')) {
            (Some(open), Some(close)) if close > open + 1 => {
                receiver + rest[open + 1..close].split(',').count()
            }
            _ => receiver,
        }
    }

    /// Every function and property the API registers has a doc: a signature and a description.
    #[test]
    fn every_api_function_is_documented() {
        let (_dir, engine) = engine();
        let functions = registered(&engine);
        assert!(functions.iter().any(|f| f.name == "create"));
        let mut missing: Vec<String> = functions
            .iter()
            .filter(|f| !["to_string", "to_debug"].contains(&f.name.as_str()))
            .filter(|f| doc_lines(&f.doc_comments).len() < 2)
            .map(|f| format!("{}/{}", f.name, f.num_params))
            .collect();
        missing.sort();
        assert!(missing.is_empty(), "registered without a doc: {missing:?}");
    }

    /// A doc's signature names its function, shows how it is called (a property without
    /// parentheses) and has as many parameters as the function takes.
    #[test]
    fn signatures_match_the_registrations() {
        let (_dir, engine) = engine();
        for doc in docs(&engine) {
            let call = doc
                .signature
                .strip_prefix("c.")
                .or_else(|| doc.signature.strip_prefix("t."))
                .unwrap_or(&doc.signature);
            assert!(call.starts_with(&doc.name), "{doc:?}");
            let rest = &call[doc.name.len()..];
            if doc.property {
                assert!(doc.is_member() && rest.starts_with(": "), "{doc:?}");
                assert_eq!(doc.params, 1, "{doc:?}");
            } else {
                assert!(rest.starts_with('('), "{doc:?}");
                assert_eq!(signature_params(&doc.signature), doc.params, "{doc:?}");
            }
        }
    }

    #[test]
    fn overloads_with_one_description_are_listed_once() {
        let (_dir, engine) = engine();
        let listing = listing(&engine);
        let shown = |name: &str| -> Vec<String> {
            listing
                .iter()
                .filter(|d| d.name == name)
                .map(|d| d.signature.clone())
                .collect()
        };
        assert_eq!(shown("exit"), ["exit(code: int)"]);
        assert_eq!(shown("sleep"), ["sleep(seconds: int|float)"]);
        assert_eq!(
            shown("create"),
            [
                "create(name: string) -> Container",
                "create(name: string, opts: map) -> Container"
            ]
        );
        let members: Vec<&str> = listing
            .iter()
            .skip_while(|d| !d.is_member())
            .map(|d| d.name.as_str())
            .collect();
        assert_eq!(members.first(), Some(&"name"));
        assert!(!members.contains(&"create"));
    }

    /// The names that order listings are the API's.
    #[test]
    fn the_order_names_documented_functions() {
        let (_dir, engine) = engine();
        let docs = docs(&engine);
        for name in ORDER {
            assert!(docs.iter().any(|d| d.name == *name), "{name}");
        }
    }
}
