//! Finding options from scripts: `options()` and `options(prefix)` list the declared options
//! of the native builder's option modules, and `to_nix` and `json` write values as Nix and
//! JSON (what `ncsh options` prints). Also the conversions between Nix and Rhai values the
//! option modules use.

use std::collections::BTreeMap;
use std::rc::Rc;

use rhai::{Array, Dynamic, Engine, EvalAltResult, Map};

use super::docs::{api_doc, function};
use super::error::to_rhai;
use crate::builder::options::{Declarations, OptionDecl};
use crate::builder::plain::Value;
use crate::error::{Error, Result as CrateResult};

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// Where the declared options come from (loaded when a script asks for them).
pub type DeclarationSource = Rc<dyn Fn() -> CrateResult<Declarations>>;

/// One option as scripts see it: `#{name, type, default, description, declaredIn}`, the type
/// in NixOS's words, and `defaultText` (as NixOS's options have it) for a default computed from
/// the attribute's name: the Nix function that computes it.
pub fn option_map(decl: &OptionDecl) -> Map {
    let mut map = Map::new();
    map.insert("name".into(), decl.dotted().into());
    map.insert("type".into(), decl.ty.describe().into());
    map.insert("default".into(), to_dynamic(&decl.default));
    if let Some(text) = &decl.default_by_name {
        map.insert("defaultText".into(), text.clone().into());
    }
    map.insert("description".into(), decl.description.clone().into());
    map.insert("declaredIn".into(), decl.module.clone().into());
    map
}

fn list(source: &DeclarationSource, prefix: &str) -> RhaiResult<Array> {
    let declarations = source().map_err(to_rhai)?;
    let found = declarations.under(prefix).map_err(to_rhai)?;
    Ok(found
        .into_iter()
        .map(|d| Dynamic::from_map(option_map(d)))
        .collect())
}

pub fn register(engine: &mut Engine, source: DeclarationSource) {
    let s = source.clone();
    function(
        "options",
        api_doc!(
            "options() -> array",
            "Every NixOS option the native builder knows (built-in and your option modules),",
            "sorted, each #{name, type, default, description, declaredIn}."
        ),
    )
    .register_into_engine(engine, move || list(&s, ""));
    let s = source;
    function(
        "options",
        api_doc!(
            "options(prefix: string) -> array",
            "The options whose path starts with prefix (\"services.openssh\", or \"services.open\");",
            "an error that suggests close names when there are none."
        ),
    )
    .register_into_engine(engine, move |prefix: &str| list(&s, prefix));
    function(
        "to_nix",
        api_doc!(
            "to_nix(value) -> string",
            "The value in Nix syntax: () is null, an array a list, a map an attribute set."
        ),
    )
    .register_into_engine(engine, |value: Dynamic| -> RhaiResult<String> {
        from_dynamic(&value)
            .map(|v| v.to_string())
            .map_err(|why| to_rhai(Error::Usage(format!("to_nix: {why}"))))
    });
    function(
        "json",
        api_doc!(
            "json(value) -> string",
            "The value as JSON, indented: () is null."
        ),
    )
    .register_into_engine(engine, |value: Dynamic| -> RhaiResult<String> {
        let value =
            from_dynamic(&value).map_err(|why| to_rhai(Error::Usage(format!("json: {why}"))))?;
        serde_json::to_string_pretty(&to_json(&value))
            .map_err(|e| to_rhai(Error::Usage(format!("json: {e}"))))
    });
}

/// A Nix value as scripts see it: `null` is `()`, a path its string, a list an array, an
/// attribute set a map.
pub fn to_dynamic(value: &Value) -> Dynamic {
    match value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => (*b).into(),
        Value::Int(n) => (*n).into(),
        Value::String(s) => s.clone().into(),
        Value::Path(p) => p.display().to_string().into(),
        Value::List(items) => items.iter().map(to_dynamic).collect::<Array>().into(),
        Value::Attrs(map) => map
            .iter()
            .map(|(k, v)| (k.as_str().into(), to_dynamic(v)))
            .collect::<Map>()
            .into(),
    }
}

/// A Nix value as JSON (a path is its string).
pub fn to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(n) => (*n).into(),
        Value::String(s) => s.clone().into(),
        Value::Path(p) => p.display().to_string().into(),
        Value::List(items) => items.iter().map(to_json).collect(),
        Value::Attrs(map) => map.iter().map(|(k, v)| (k.clone(), to_json(v))).collect(),
    }
}

/// A script's value as a Nix value (the reverse of [`to_dynamic`]); `Err` says what cannot be one.
pub fn from_dynamic(value: &Dynamic) -> Result<Value, String> {
    if value.is_unit() {
        return Ok(Value::Null);
    }
    if let Ok(b) = value.as_bool() {
        return Ok(Value::Bool(b));
    }
    if let Ok(n) = value.as_int() {
        return Ok(Value::Int(n));
    }
    if let Some(s) = value.clone().try_cast::<rhai::ImmutableString>() {
        return Ok(Value::String(s.to_string()));
    }
    if let Some(items) = value.clone().try_cast::<Array>() {
        return items
            .iter()
            .map(from_dynamic)
            .collect::<Result<_, _>>()
            .map(Value::List);
    }
    if let Some(map) = value.clone().try_cast::<Map>() {
        let mut out = BTreeMap::new();
        for (k, v) in &map {
            out.insert(k.to_string(), from_dynamic(v)?);
        }
        return Ok(Value::Attrs(out));
    }
    Err(format!("a {} cannot be an option value", value.type_name()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::options::OptType;

    fn engine() -> Engine {
        let source = || {
            let mut d = Declarations::default();
            for (path, ty, default) in [
                ("services.openssh.enable", "bool", Value::Bool(false)),
                (
                    "services.openssh.ports",
                    "listOf port",
                    Value::List(vec![Value::Int(22)]),
                ),
                ("users.users.<name>.uid", "nullOr int", Value::Null),
            ] {
                d.add(OptionDecl {
                    path: path.split('.').map(String::from).collect(),
                    ty: OptType::parse(ty).map_err(Error::Build)?,
                    default,
                    description: format!("about {path}"),
                    module: "test".into(),
                    default_by_name: None,
                })
                .map_err(Error::Build)?;
            }
            Ok(d)
        };
        let mut engine = Engine::new();
        register(&mut engine, Rc::new(source));
        engine
    }

    #[test]
    fn options_are_maps_in_path_order() {
        let e = engine();
        let names: Array = e.eval("options().map(|o| o.name)").unwrap();
        let names: Vec<String> = names.into_iter().map(|n| n.to_string()).collect();
        assert_eq!(
            names,
            [
                "services.openssh.enable",
                "services.openssh.ports",
                "users.users.<name>.uid"
            ]
        );
        let o: Map = e.eval(r#"options("services.openssh.p")[0]"#).unwrap();
        assert_eq!(o["type"].to_string(), "list of port");
        assert_eq!(o["description"].to_string(), "about services.openssh.ports");
        assert_eq!(o["declaredIn"].to_string(), "test");
        let default: Array = o["default"].clone().into_array().unwrap();
        assert_eq!(default[0].as_int().unwrap(), 22);
    }

    #[test]
    fn an_unknown_prefix_is_an_error_scripts_can_catch() {
        let kind: String = engine()
            .eval(
                r#"let r = ""; try { options("services.opensh"); } catch (e) { r = e.kind + ": " + e.hint; } r"#,
            )
            .unwrap();
        assert_eq!(kind, "UnknownOption: did you mean services.openssh?");
    }

    #[test]
    fn values_in_nix_and_json() {
        let e = engine();
        let nix: String = e
            .eval(r#"to_nix(#{ a: [1, "x", ()], "b c": true })"#)
            .unwrap();
        assert_eq!(nix, "{ a = [ 1 \"x\" null ]; \"b c\" = true; }");
        let json: String = e.eval(r#"json([#{ a: () }, 2])"#).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed, serde_json::json!([{ "a": null }, 2]));
        assert!(e.eval::<String>("to_nix(1.5)").is_err());
    }
}
