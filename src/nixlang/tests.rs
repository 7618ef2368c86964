//! Unit tests of the evaluator; the differential corpus (tests/nix) compares it with Nix.

use std::path::Path;

use super::eval_json;

fn eval(text: &str) -> Result<serde_json::Value, String> {
    eval_json(text, Path::new("/tmp")).map_err(|e| e.to_string())
}

fn ok(text: &str) -> String {
    match eval(text) {
        Ok(v) => v.to_string(),
        Err(e) => panic!("{text}: {e}"),
    }
}

#[test]
fn basics() {
    assert_eq!(ok("1 + 2 * 3"), "7");
    assert_eq!(ok("let a = 1; b = a + 1; in [ a b ]"), "[1,2]");
    assert_eq!(ok("rec { a = 1; b = a + 1; }"), r#"{"a":1,"b":2}"#);
    assert_eq!(
        ok("let f = { a, b ? a * 2, ... }@args: a + b + args.c; in f { a = 1; c = 10; }"),
        "13"
    );
    assert_eq!(ok("with { x = 1; }; let y = 2; in x + y"), "3");
    assert_eq!(ok("let x = 5; in with { x = 1; }; x"), "5");
    assert_eq!(ok(r#""a${toString 1}b""#), r#""a1b""#);
    assert_eq!(ok("''\n  a\n    b\n  ''"), r#""a\n  b\n""#);
    assert_eq!(ok("{ a.b = 1; a.c = 2; }.a"), r#"{"b":1,"c":2}"#);
    assert_eq!(ok("{ a = { b = 1; }; a.c = 2; }.a.c"), "2");
    assert_eq!(ok("{ x = 1; } // { y = 2; }"), r#"{"x":1,"y":2}"#);
    assert_eq!(ok("[ 1 ] ++ [ 2 ]"), "[1,2]");
    assert_eq!(ok("{ a.b = 1; } ? a.b"), "true");
    assert_eq!(ok("{ }.a or 3"), "3");
    assert_eq!(ok("let inherit (builtins) length; in length [ 1 2 ]"), "2");
    assert_eq!(ok("builtins.map (x: x * 2) [ 1 2 ]"), "[2,4]");
    assert_eq!(
        ok("builtins.tryEval (throw \"x\")"),
        r#"{"success":false,"value":false}"#
    );
    assert_eq!(ok("let x = throw \"never\"; in 1"), "1");
    assert_eq!(ok("builtins.length [ (throw \"x\") ]"), "1");
    assert_eq!(
        ok("builtins.replaceStrings [ \"\" ] [ \"-\" ] \"ab\""),
        r#""-a-b-""#
    );
    assert_eq!(
        ok("builtins.toJSON { a = [ 1 \"x\" null ]; }"),
        r#""{\"a\":[1,\"x\",null]}""#
    );
    assert_eq!(ok("builtins.match \"a(b)?c\" \"ac\""), "[null]");
    assert_eq!(ok("builtins.split \",\" \"a,b\""), r#"["a",[],"b"]"#);
    assert_eq!(ok("builtins.compareVersions \"1.10\" \"1.9\""), "1");
    assert_eq!(ok("builtins.sort builtins.lessThan [ 3 1 2 ]"), "[1,2,3]");
    assert_eq!(ok("toString [ 1 null true \"a\" ]"), r#""1  1 a""#);
}

#[test]
fn errors_have_positions() {
    let e = eval("let x = x; in x").unwrap_err();
    assert!(e.contains("infinite recursion"), "{e}");
    let e = eval("\n  undefinedThing").unwrap_err();
    assert!(
        e.starts_with("<expr>:2:3: undefined variable 'undefinedThing'"),
        "{e}"
    );
    let e = eval("{ a = 1; }.b").unwrap_err();
    assert!(e.contains("attribute 'b' missing"), "{e}");
    let e = eval("let f = x: f x; in f 1").unwrap_err();
    assert!(e.contains("nested more than"), "{e}");
    let e = eval("{ a = 1; a = 2; }").unwrap_err();
    assert!(e.contains("already defined"), "{e}");
    let e = eval(&"[".repeat(100_000)).unwrap_err();
    assert!(e.contains("nested too deeply"), "{e}");
}

/// A shipped `let` evaluated binding by binding gives what it gives compiled whole, `inherit`
/// in the `let` taking the name from around it and in a set bound there from the `let`.
#[test]
fn a_shipped_let_evaluated_lazily_is_the_same_let() {
    use super::{Evaluator, SourceMap};
    let text = "let\n  inherit toString;\n  n = 2;\n  \
                set = { inherit n; inherit (builtins) length; m = n * 3; deep = { k = set.m; }; };\n\
                in [ (toString 1) set.n (set.length [ 1 ]) set.m set.deep.k (builtins.attrNames set) ]";
    let run = |lazy: bool| {
        let mut ev = Evaluator::new();
        let src = SourceMap::new(Path::new("t"), text, 0);
        let v = if lazy {
            ev.eval_shipped_lazily(text, src, Path::new("/"))
        } else {
            ev.eval_shipped(text, src, Path::new("/"))
        };
        let v = v.map_err(|e| e.to_string())?;
        ev.force_deep(&v).map_err(|e| e.to_string())?;
        super::json::to_serde(&mut ev, &v)
            .map(|j| j.to_string())
            .map_err(|e| e.to_string())
    };
    let split = super::split::split_let(text).unwrap();
    assert!(matches!(
        &split.bindings[2],
        super::split::Binding::Value { set: Some(_), .. }
    ));
    assert_eq!(run(true), run(false));
    assert_eq!(
        run(true).unwrap(),
        r#"["1",2,1,6,6,["deep","length","m","n"]]"#
    );
}

/// A file imported again in the same thread is compiled again once its text changed, also to
/// the same length; its kept compilation serves only the text it was made from.
#[test]
fn an_imported_file_is_read_again_after_it_changed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.nix");
    let import = |dir: &Path| super::eval_json("import ./m.nix", dir).map_err(|e| e.to_string());
    std::fs::write(&file, "{ a = 1; }").unwrap();
    assert_eq!(import(dir.path()).unwrap().to_string(), r#"{"a":1}"#);
    assert_eq!(import(dir.path()).unwrap().to_string(), r#"{"a":1}"#);
    std::fs::write(&file, "{ a = 2; }").unwrap();
    assert_eq!(import(dir.path()).unwrap().to_string(), r#"{"a":2}"#);
    std::fs::write(&file, "{ a = 2 +; }").unwrap();
    assert!(import(dir.path()).unwrap_err().contains("m.nix"));
    std::fs::write(&file, "{ a = 2; }").unwrap();
    assert_eq!(import(dir.path()).unwrap().to_string(), r#"{"a":2}"#);
}

#[test]
fn a_chain_of_updates_fails_where_nested_updates_would() {
    // One merge for `a // b // c`, but the same errors at the same places as one `//` per
    // operator would give (a `//`'s place is where its left operand starts).
    let e = eval("{ a = 1; } // 2 // { }").unwrap_err();
    assert!(
        e.contains("1:15") && e.contains("cannot update an integer with a set"),
        "{e}"
    );
    let e = eval("{ } // { } // [ ]").unwrap_err();
    assert!(
        e.contains("1:8") && e.contains("cannot update a set with a list"),
        "{e}"
    );
    let e = eval("1 // { } // { }").unwrap_err();
    assert!(
        e.contains("1:1:") && e.contains("cannot update an integer with a set"),
        "{e}"
    );
}

#[test]
fn a_set_makes_the_names_it_does_not_hold_when_one_is_looked_up() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::value::{PrimOp, PrimOpApp};
    use super::{Attrs, Evaluator, LOOKUP_ATTR, SourceMap, Value};

    static LOOKUPS: AtomicUsize = AtomicUsize::new(0);
    static LOOKUP: PrimOp = PrimOp {
        name: "lookup",
        arity: 1,
        run: |ev, a| {
            LOOKUPS.fetch_add(1, Ordering::Relaxed);
            let name = ev.force_str(&a[0])?;
            Ok(match &*name {
                "made" => Value::list(vec![Value::Int(7).into()]),
                "bad" => Value::Int(0),
                _ => Value::list(Vec::new()),
            })
        },
    };
    let mut set = Attrs::new();
    set.insert("own".into(), Value::Int(1).into());
    let lookup = Value::PrimOp(std::rc::Rc::new(PrimOpApp {
        op: &LOOKUP,
        args: Vec::new(),
    }));
    set.insert(LOOKUP_ATTR.into(), lookup.into());
    let run = |text: &str| {
        let mut ev = Evaluator::new();
        ev.set_global("s", Value::attrs(set.clone()));
        let v = ev.eval_text(
            text,
            SourceMap::new(Path::new("<t>"), text, 0),
            Path::new("/"),
        );
        let v = v.and_then(|v| {
            ev.force_deep(&v)?;
            super::json::to_serde(&mut ev, &v)
        });
        v.map(|v| v.to_string()).map_err(|e| e.to_string())
    };
    LOOKUPS.store(0, Ordering::Relaxed);
    assert_eq!(
        run(
            "[ s.own s.made (s ? made) (s ? none) (s.none or 2) (s.made or 3) \
             (builtins.getAttr \"made\" s) (builtins.hasAttr \"none\" s) (with s; made) \
             (({ made, none ? 4, ... }: made + none) s) (let inherit (s) made; in made) ]"
        ),
        Ok("[1,7,true,false,2,7,7,false,7,11,7]".into())
    );
    assert_eq!(LOOKUPS.load(Ordering::Relaxed), 2, "each name is made once");
    // What lists the names sees only those the set holds.
    assert_eq!(
        run("builtins.filter (n: n != \"__ncshLookup\") (builtins.attrNames s)"),
        Ok(r#"["own"]"#.into())
    );
    let e = run("s.none").unwrap_err();
    assert!(
        e.starts_with("<t>:1:") && e.contains("attribute 'none' missing"),
        "{e}"
    );
    let e = run("s.bad").unwrap_err();
    assert!(e.contains("gave an integer for ‘bad’"), "{e}");
}
