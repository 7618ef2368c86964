use std::collections::BTreeMap;
use std::fs;

use super::*;
use crate::builder::configuration_nix::render;
use crate::container::ConfigSource;

fn cfg(text: &str) -> Result<OptionTree, EvalError> {
    eval_str(text, Path::new("<config>"), Path::new("/base"))
}

fn ok(text: &str) -> OptionTree {
    match cfg(text) {
        Ok(t) => t,
        Err(e) => panic!("{text:?} failed: {e}"),
    }
}

fn err(text: &str) -> EvalError {
    match cfg(text) {
        Ok(t) => panic!("{text:?} evaluated to {:?}", t.root()),
        Err(e) => e,
    }
}

/// Asserts the error's position and that its message contains every one of `words`.
fn assert_err(text: &str, line: usize, column: usize, words: &[&str]) {
    let e = err(text);
    assert_eq!((e.line, e.column), (line, column), "{text:?}: {e}");
    assert_eq!(e.file, PathBuf::from("<config>"), "{e}");
    for w in words {
        assert!(e.message.contains(w), "{text:?}: {e:?} lacks {w:?}");
    }
    assert_eq!(
        e.to_string(),
        format!("<config>:{line}:{column}: {}", e.message)
    );
}

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

fn i(v: i64) -> Value {
    Value::Int(v)
}

fn attrs(pairs: &[(&str, Value)]) -> Value {
    Value::Attrs(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
    )
}

// ---------------------------------------------------------------- the snippets users write

#[test]
fn snippet_openssh_keys() {
    let t = ok("services.openssh.enable = true; \
                users.users.root.openssh.authorizedKeys.keys = [\"ssh-ed25519 AAAAC3Nza x@y\"];");
    assert_eq!(t.get("services.openssh.enable"), Some(&Value::Bool(true)));
    assert_eq!(
        t.get("users.users.root.openssh.authorizedKeys.keys"),
        Some(&Value::List(vec![s("ssh-ed25519 AAAAC3Nza x@y")]))
    );
    let leaves: Vec<String> = t.leaves().into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        leaves,
        vec![
            "services.openssh.enable",
            "users.users.root.openssh.authorizedKeys.keys"
        ]
    );
    assert_eq!(
        t.location("services.openssh.enable"),
        Some(Location::new("<config>", 1, 1))
    );
    assert_eq!(
        t.location("users.users.root.openssh.authorizedKeys.keys"),
        Some(Location::new("<config>", 1, 33))
    );
    assert_eq!(t.priority("services.openssh.enable"), Some(PRIORITY_PLAIN));
}

#[test]
fn snippet_httpd() {
    let t = ok(
        "services.httpd.enable = true; services.httpd.adminAddr = \"foo@example.org\"; \
                networking.firewall.allowedTCPPorts = [ 80 ];",
    );
    assert_eq!(t.get("services.httpd.enable"), Some(&Value::Bool(true)));
    assert_eq!(
        t.get("services.httpd.adminAddr"),
        Some(&s("foo@example.org"))
    );
    assert_eq!(
        t.get("networking.firewall.allowedTCPPorts"),
        Some(&Value::List(vec![i(80)]))
    );
    assert_eq!(
        t.get("services.httpd"),
        Some(&attrs(&[
            ("adminAddr", s("foo@example.org")),
            ("enable", Value::Bool(true))
        ]))
    );
}

#[test]
fn snippet_user_set() {
    let t = ok("users.users.alice = { isNormalUser = true; password = \"wonderland\"; };");
    assert_eq!(
        t.get("users.users.alice.isNormalUser"),
        Some(&Value::Bool(true))
    );
    assert_eq!(t.get("users.users.alice.password"), Some(&s("wonderland")));
    assert_eq!(
        t.location("users.users.alice.password"),
        Some(Location::new("<config>", 1, 44))
    );
    assert_eq!(
        t.location("users.users.alice"),
        Some(Location::new("<config>", 1, 1))
    );
}

#[test]
fn snippet_multiline_with_comments() {
    let t = ok(
        "# comment\nservices.openssh.enable = true;\n/* block */\nnetworking.hostName = lib.mkForce \"x\";\n",
    );
    assert_eq!(
        t.location("networking.hostName"),
        Some(Location::new("<config>", 4, 1))
    );
    assert_eq!(t.priority("networking.hostName"), Some(PRIORITY_FORCE));
}

#[test]
fn empty_snippet_and_empty_set() {
    assert!(ok("").is_empty());
    assert!(ok("  # nothing\n").is_empty());
    assert!(ok("{ }").is_empty());
    let t = ok("users.users.root = { };");
    assert_eq!(t.get("users.users.root"), Some(&attrs(&[])));
    assert_eq!(
        t.leaves(),
        vec![("users.users.root".to_string(), &attrs(&[]))]
    );
}

#[test]
fn generated_file_as_nixos_container_writes_it() {
    let dir = tempfile::tempdir().unwrap();
    let extra = dir.path().join("test-container.nix");
    fs::write(
        &extra,
        "{ services.openssh.enable = true; networking.hostName = \"bar\"; }\n",
    )
    .unwrap();
    let text = format!(
        "{{ config, lib, pkgs, ... }}:\n\n{{\n  boot.isContainer = true;\n  \
         networking.hostName = lib.mkDefault \"foo\";\n  networking.useDHCP = false;\n  \
         imports = [ {} ];\n}}\n",
        extra.display()
    );
    let conf = dir.path().join("configuration.nix");
    fs::write(&conf, &text).unwrap();
    assert_eq!(text, render("foo", &ConfigSource::File(extra.clone())));
    let t = eval_file(&conf).unwrap();
    assert_eq!(t.get("boot.isContainer"), Some(&Value::Bool(true)));
    assert_eq!(t.get("networking.useDHCP"), Some(&Value::Bool(false)));
    assert_eq!(t.get("services.openssh.enable"), Some(&Value::Bool(true)));
    // the imported plain definition beats the generated mkDefault
    assert_eq!(t.get("networking.hostName"), Some(&s("bar")));
    assert_eq!(
        t.location("networking.hostName"),
        Some(Location::new(&extra, 1, 35))
    );
    assert_eq!(
        t.location("boot.isContainer"),
        Some(Location::new(&conf, 4, 3))
    );
}

#[test]
fn generated_file_with_raw_snippet() {
    let text = render(
        "web",
        &ConfigSource::Snippet(
            "services.httpd.enable = true; networking.firewall.allowedTCPPorts = [ 80 ];".into(),
        ),
    );
    let t = eval_str(
        &text,
        Path::new("/var/lib/nixos-containers/web/etc/nixos/configuration.nix"),
        Path::new("/"),
    )
    .unwrap();
    assert_eq!(t.get("networking.hostName"), Some(&s("web")));
    assert_eq!(t.priority("networking.hostName"), Some(PRIORITY_DEFAULT));
    assert_eq!(t.get("services.httpd.enable"), Some(&Value::Bool(true)));
    assert_eq!(
        t.location("services.httpd.enable")
            .map(|l| (l.line, l.column)),
        Some((7, 3))
    );
    assert_eq!(t.leaves().len(), 5);

    // the snippet overriding the generated hostName is a duplicate in one set, as in Nix
    let text = render(
        "web",
        &ConfigSource::Snippet("networking.hostName = \"other\";".into()),
    );
    let e = eval_str(&text, Path::new("/c.nix"), Path::new("/")).unwrap_err();
    assert_eq!((e.line, e.column), (7, 3));
    assert_eq!(
        e.message,
        "attribute 'networking.hostName' already defined at /c.nix:5:3"
    );

    let t = eval_str(
        &render("web", &ConfigSource::Existing),
        Path::new("/c.nix"),
        Path::new("/"),
    )
    .unwrap();
    assert_eq!(t.leaves().len(), 3);
}

// ---------------------------------------------------------------- data

#[test]
fn sets_merge_within_a_file() {
    let t = ok("a.b = { c = 1; }; a.b.d = 2; a = { e = 3; };");
    assert_eq!(
        t.get("a"),
        Some(&attrs(&[
            ("b", attrs(&[("c", i(1)), ("d", i(2))])),
            ("e", i(3))
        ]))
    );
    assert_eq!(t.location("a.b.d"), Some(Location::new("<config>", 1, 19)));
    assert_eq!(t.definitions("a").len(), 3);
}

#[test]
fn duplicate_definitions() {
    assert_err(
        "a.b = 1;\na.b = 1;",
        2,
        1,
        &["attribute 'a.b' already defined at <config>:1:1"],
    );
    assert_err(
        "a = 1; a.b = 2;",
        1,
        8,
        &["attribute 'a' already defined at <config>:1:1"],
    );
    assert_err(
        "a.b = 2; a = 1;",
        1,
        10,
        &["attribute 'a' already defined at <config>:1:1"],
    );
    assert_err(
        "a = { b = lib.mkDefault 1; };\na.b = lib.mkForce 2;",
        2,
        1,
        &["attribute 'a.b' already defined at <config>:1:7"],
    );
    assert_err(
        "{ x = { y = [ ]; }; x.y = [ 1 ]; }",
        1,
        21,
        &["attribute 'x.y' already defined at <config>:1:9"],
    );
    // inside a list's sets too
    assert_err(
        "l = [ { a = 1; a = 2; } ];",
        1,
        16,
        &["attribute 'a' already defined at <config>:1:9"],
    );
}

#[test]
fn quoted_attribute_names() {
    let t = ok(
        "\"foo.bar\" = 1; users.users.\"alice\".isNormalUser = true; \
                environment.etc.\"ssh/ssh_config\".text = \"x\"; a.\"\" = 2;",
    );
    assert_eq!(t.get("\"foo.bar\""), Some(&i(1)));
    assert_eq!(t.get_path(&["foo.bar"]), Some(&i(1)));
    assert_eq!(t.get("foo.bar"), None);
    assert_eq!(
        t.get("users.users.alice.isNormalUser"),
        Some(&Value::Bool(true))
    );
    assert_eq!(
        t.get("environment.etc.\"ssh/ssh_config\".text"),
        Some(&s("x"))
    );
    let leaves: Vec<String> = t.leaves().into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        leaves,
        vec![
            "\"foo.bar\"",
            "a.\"\"",
            "environment.etc.\"ssh/ssh_config\".text",
            "users.users.alice.isNormalUser"
        ]
    );
    assert_eq!(
        t.location("\"foo.bar\""),
        Some(Location::new("<config>", 1, 1))
    );
}

#[test]
fn strings() {
    let t = ok(r#"a = "x\ny\t\"q\" \\ \$ $${y} ok"; b = ''
      first
        second ''$ ''' ''\n ''\t
      $${z}
    ''; c = ''one''; d = "é${"\u{1}"}";"#
        .replace("${\"\\u{1}\"}", "")
        .as_str());
    assert_eq!(t.get("a"), Some(&s("x\ny\t\"q\" \\ $ $${y} ok")));
    assert_eq!(t.get("b"), Some(&s("first\n  second $ '' \n\t\n$${z}\n")));
    assert_eq!(t.get("c"), Some(&s("one")));
    assert_eq!(t.get("d"), Some(&s("é")));
    let t = ok("script = ''\n  #!/bin/sh\n\n    echo hi\n  '';");
    assert_eq!(t.get("script"), Some(&s("#!/bin/sh\n\n  echo hi\n")));
    let t = ok("x = ''  \n  a\n  b'';");
    assert_eq!(t.get("x"), Some(&s("a\nb")));
    // a URI is a string
    assert_eq!(
        ok("u = https://example.org/x;").get("u"),
        Some(&s("https://example.org/x"))
    );
}

#[test]
fn scalars() {
    let t = ok(
        "a = 1; b = -42; c = true; d = false; e = null; f = (7); g = -9223372036854775808; \
                h = 9223372036854775807; j = - 3;",
    );
    assert_eq!(t.get("a"), Some(&i(1)));
    assert_eq!(t.get("b"), Some(&i(-42)));
    assert_eq!(t.get("c"), Some(&Value::Bool(true)));
    assert_eq!(t.get("d"), Some(&Value::Bool(false)));
    assert_eq!(t.get("e"), Some(&Value::Null));
    assert_eq!(t.get("f"), Some(&i(7)));
    assert_eq!(t.get("g"), Some(&i(i64::MIN)));
    assert_eq!(t.get("h"), Some(&i(i64::MAX)));
    assert_eq!(t.get("j"), Some(&i(-3)));
    assert_err(
        "a = 9223372036854775808;",
        1,
        5,
        &["invalid integer '9223372036854775808'"],
    );
}

#[test]
fn lists() {
    let t = ok("l = [ 1 \"two\" [ 3 ] { four = 4; } null (5) ./six ];");
    assert_eq!(
        t.get("l"),
        Some(&Value::List(vec![
            i(1),
            s("two"),
            Value::List(vec![i(3)]),
            attrs(&[("four", i(4))]),
            Value::Null,
            i(5),
            Value::Path(PathBuf::from("/base/six")),
        ]))
    );
    assert_eq!(ok("l = [ ];").get("l"), Some(&Value::List(vec![])));
}

#[test]
fn paths() {
    let t = ok("a = ./x.conf; b = ../up/y; c = /etc/z; d = ./.; e = x/y;");
    assert_eq!(
        t.get("a"),
        Some(&Value::Path(PathBuf::from("/base/x.conf")))
    );
    assert_eq!(t.get("b"), Some(&Value::Path(PathBuf::from("/up/y"))));
    assert_eq!(t.get("c"), Some(&Value::Path(PathBuf::from("/etc/z"))));
    assert_eq!(t.get("d"), Some(&Value::Path(PathBuf::from("/base"))));
    assert_eq!(t.get("e"), Some(&Value::Path(PathBuf::from("/base/x/y"))));
}

// ---------------------------------------------------------------- priorities

#[test]
fn overrides() {
    let t = ok(
        "a = lib.mkDefault 1; b = lib.mkForce [ 2 ]; c = lib.mkOverride 10 \"c\"; \
                d = (lib.mkOverride (900) (lib.mkDefault true)); e = lib.mkOptionDefault null;",
    );
    assert_eq!(t.priority("a"), Some(PRIORITY_DEFAULT));
    assert_eq!(t.priority("b"), Some(PRIORITY_FORCE));
    assert_eq!(t.get("b"), Some(&Value::List(vec![i(2)])));
    assert_eq!(t.priority("c"), Some(10));
    assert_eq!(t.get("d"), Some(&Value::Bool(true)));
    assert_eq!(t.priority("d"), Some(900), "the outermost override counts");
    assert_eq!(t.priority("e"), Some(PRIORITY_OPTION_DEFAULT));
    // pushed down into a set
    let t = ok("services.x = lib.mkDefault { enable = true; port = 1; };");
    assert_eq!(t.priority("services.x.enable"), Some(PRIORITY_DEFAULT));
    assert_eq!(t.priority("services.x.port"), Some(PRIORITY_DEFAULT));
    assert_eq!(
        t.location("services.x.port"),
        Some(Location::new("<config>", 1, 45))
    );
    // in a module function binding lib
    let t = ok("{ lib, ... }: { a = lib.mkForce 1; }");
    assert_eq!(t.priority("a"), Some(PRIORITY_FORCE));
}

#[test]
fn override_errors() {
    assert_err(
        "{ a = lib.mkDefault 1; }",
        1,
        7,
        &["undefined variable 'lib'"],
    );
    assert_err(
        "{ config, ... }: { a = lib.mkDefault 1; }",
        1,
        24,
        &["undefined variable 'lib'"],
    );
    assert_err(
        "a = mkDefault 1;",
        1,
        5,
        &["undefined variable 'mkDefault'", "lib.mkDefault"],
    );
    assert_err("a = mkForce 1;", 1, 5, &["undefined variable 'mkForce'"]);
    assert_err(
        "a = lib.mkOverride \"x\" 1;",
        1,
        20,
        &["must be an integer"],
    );
    assert_err(
        "a = lib.mkDefault 1 2;",
        1,
        5,
        &["lib.mkDefault takes 1 argument"],
    );
    assert_err(
        "a = lib.mkOverride 10;",
        1,
        5,
        &["lib.mkOverride takes 2 argument"],
    );
    assert_err("a = [ (lib.mkDefault 1) ];", 1, 8, &["inside a list"]);
    assert_err(
        "a = lib.mkIf true 1;",
        1,
        5,
        &["function application 'lib.mkIf true 1'", "Nix-enabled host"],
    );
    assert_err(
        "a = lib.mkDefault;",
        1,
        5,
        &["reference to 'lib.mkDefault'", "Nix-enabled host"],
    );
}

#[test]
fn merge_api() {
    let mut a = ok("x = lib.mkDefault 1; l = [ 1 ]; s.t = \"a\"; same = true;");
    let b = eval_str(
        "{ x = 2; l = [ 2 ]; s.u = \"b\"; same = true; }",
        Path::new("/b.nix"),
        Path::new("/"),
    )
    .unwrap();
    a.merge(b).unwrap();
    assert_eq!(a.get("x"), Some(&i(2)));
    assert_eq!(a.location("x"), Some(Location::new("/b.nix", 1, 3)));
    assert_eq!(a.get("l"), Some(&Value::List(vec![i(1), i(2)])));
    assert_eq!(a.definitions("l").len(), 2);
    assert_eq!(a.get("s"), Some(&attrs(&[("t", s("a")), ("u", s("b"))])));
    assert_eq!(a.definitions("same").len(), 2);

    let c = eval_str("{ same = false; }", Path::new("/c.nix"), Path::new("/")).unwrap();
    let e = a.merge(c).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/c.nix:1:3: the option 'same' has conflicting definitions at the same \
         priority (100): true at <config>:1:44 and false at /c.nix:1:3"
    );

    // a set against a leaf: the stronger wins, equal strength conflicts
    let mut a = ok("s.t = 1;");
    a.merge(ok("s = lib.mkForce null;")).unwrap();
    assert_eq!(a.get("s"), Some(&Value::Null));
    let mut a = ok("s.t = 1;");
    let e = a.merge(ok("s = null;")).unwrap_err();
    assert!(e.message.contains("conflicting definitions"), "{e}");
    let mut a = ok("s = lib.mkDefault null;");
    a.merge(ok("s.t = 1;")).unwrap();
    assert_eq!(a.get("s.t"), Some(&i(1)));
}

// ---------------------------------------------------------------- modules and imports

#[test]
fn module_forms() {
    let t = ok("{ config, lib, pkgs, ... }: { a = 1; }");
    assert_eq!(t.get("a"), Some(&i(1)));
    let t = ok("{ ... }: { a = 1; }");
    assert_eq!(t.get("a"), Some(&i(1)));
    let t = ok("args@{ pkgs ? null, ... }: ({ a = 1; })");
    assert_eq!(t.get("a"), Some(&i(1)));
    let t = ok(
        "{ lib, ... }: { imports = [ ]; config = { a = lib.mkDefault 1; }; meta.x = 1; _file = \"f\"; }",
    );
    assert_eq!(t.get("a"), Some(&i(1)));
    assert_eq!(t.leaves().len(), 1);
    assert_eq!(t.location("a"), Some(Location::new("<config>", 1, 43)));
    let t = ok("{ config.a = 1; config.b = 2; }");
    assert_eq!(t.leaves().len(), 2);
}

#[test]
fn module_form_errors() {
    assert_err("{ config, lib }: { }", 1, 1, &["must end with '...'"]);
    assert_err("args: { }", 1, 1, &["single argument", "Nix-enabled host"]);
    assert_err(
        "{ ... }: 1",
        1,
        10,
        &["not an attribute set", "Nix-enabled host"],
    );
    assert_err("[ 1 ]", 1, 1, &["not an attribute set", "a list"]);
    assert_err(
        "{ options.foo = 1; }",
        1,
        3,
        &["'options'", "Nix-enabled host"],
    );
    assert_err(
        "{ config.a = 1; b = 2; }",
        1,
        17,
        &["both 'config' (at <config>:1:3)", "'b'"],
    );
    assert_err(
        "{ config = 1; }",
        1,
        3,
        &["'config' must be an attribute set"],
    );
    assert_err(
        "{ imports = ./a.nix; }",
        1,
        13,
        &["'imports' given as a path"],
    );
    assert_err(
        "imports = [ \"a.nix\" ];",
        1,
        13,
        &["must be an absolute path"],
    );
    assert_err(
        "imports = [ (import ./a.nix) ];",
        1,
        14,
        &["importing the function application"],
    );
    assert_err("imports.x = [ ];", 1, 1, &["'imports' must be a list"]);
    assert_err(
        "imports = [ ]; imports = [ ];",
        1,
        16,
        &["attribute 'imports' already defined at <config>:1:1"],
    );
    assert_err(
        "imports = [ <nixpkgs/nixos/x.nix> ];",
        1,
        13,
        &["importing a search path"],
    );
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(&p, text).unwrap();
    p
}

#[test]
fn imports_relative_and_absolute() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let abs = write(
        d,
        "abs/b.nix",
        "{ lib, ... }: { b = lib.mkDefault 1; x = lib.mkDefault \"b\"; l = [ \"b\" ]; }",
    );
    write(
        d,
        "sub/default.nix",
        "{ imports = [ ../c.nix ]; sub = ./here; l = [ \"sub\" ]; }",
    );
    write(d, "c.nix", "{ c = true; l = [ \"c\" ]; }");
    let main = write(
        d,
        "main.nix",
        &format!(
            "{{ lib, ... }}:\n{{\n  imports = [ ./sub {} ];\n  x = \"main\";\n  l = [ \"main\" ];\n}}\n",
            abs.display()
        ),
    );
    let t = eval_file(&main).unwrap();
    assert_eq!(t.get("b"), Some(&i(1)));
    assert_eq!(t.get("c"), Some(&Value::Bool(true)));
    assert_eq!(t.get("x"), Some(&s("main")));
    assert_eq!(t.get("sub"), Some(&Value::Path(d.join("sub/here"))));
    // the importing module first, then its imports in order, depth first
    assert_eq!(
        t.get("l"),
        Some(&Value::List(vec![s("main"), s("sub"), s("c"), s("b")]))
    );
    assert_eq!(t.location("c").map(|l| l.file), Some(d.join("c.nix")));
    assert_eq!(t.location("b"), Some(Location::new(&abs, 1, 17)));

    // a snippet's imports resolve against the base directory
    let t = eval_str("imports = [ ./c.nix ]; z = 1;", Path::new("<config>"), d).unwrap();
    assert_eq!(t.get("c"), Some(&Value::Bool(true)));
    let t = eval_source(&Source {
        path: main.clone(),
        text: "{ imports = [ ./c.nix ]; }".into(),
    })
    .unwrap();
    assert_eq!(t.get("c"), Some(&Value::Bool(true)));
}

#[test]
fn diamond_imports_count_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "common.nix", "{ l = [ 1 ]; }");
    write(d, "a.nix", "{ imports = [ ./common.nix ]; }");
    write(d, "b.nix", "{ imports = [ ./common.nix ]; }");
    let main = write(
        d,
        "main.nix",
        "{ imports = [ ./a.nix ./b.nix ./common.nix ]; }",
    );
    let t = eval_file(&main).unwrap();
    assert_eq!(t.get("l"), Some(&Value::List(vec![i(1)])));
}

#[test]
fn import_conflicts_name_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let other = write(d, "other.nix", "{\n  networking.hostName = \"b\";\n}\n");
    let main = write(
        d,
        "main.nix",
        "{\n  imports = [ ./other.nix ];\n  networking.hostName = \"a\";\n}\n",
    );
    let e = eval_file(&main).unwrap_err();
    assert_eq!((e.file.clone(), e.line, e.column), (other.clone(), 2, 3));
    assert!(
        e.message
            .contains(&format!("\"a\" at {}:3:3", main.display())),
        "{e}"
    );
    assert!(
        e.message
            .contains(&format!("\"b\" at {}:2:3", other.display())),
        "{e}"
    );
}

#[test]
fn import_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let d = std::fs::canonicalize(dir.path()).unwrap();
    let a = write(&d, "a.nix", "{\n  imports = [ ./b.nix ];\n  a = 1;\n}\n");
    let b = write(
        &d,
        "b.nix",
        "{ lib, ... }:\n{\n  b = 1;\n  imports = [\n    ./c.nix\n  ];\n}\n",
    );
    let c = write(&d, "c.nix", "{ imports = [ ./a.nix ]; }");
    let e = eval_file(&a).unwrap_err();
    assert_eq!((e.file.clone(), e.line, e.column), (c.clone(), 1, 15));
    assert_eq!(
        e.message,
        format!(
            "import cycle: {} -> {} -> {} -> {}",
            a.display(),
            b.display(),
            c.display(),
            a.display()
        )
    );
    // a file importing itself
    let s = write(&d, "self.nix", "{ imports = [ ./self.nix ]; }");
    let e = eval_file(&s).unwrap_err();
    assert!(e.message.starts_with("import cycle"), "{e}");
    assert_eq!((e.line, e.column), (1, 15));
}

#[test]
fn missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let main = write(d, "main.nix", "{\n  imports = [\n    ./nope.nix\n  ];\n}\n");
    let e = eval_file(&main).unwrap_err();
    assert_eq!((e.file.clone(), e.line, e.column), (main.clone(), 3, 5));
    assert!(
        e.message.contains("cannot import") && e.message.contains("nope.nix"),
        "{e}"
    );

    let e = eval_file(&d.join("absent.nix")).unwrap_err();
    assert_eq!((e.line, e.column), (0, 0));
    assert!(e.to_string().starts_with(&format!(
        "{}: cannot import",
        d.join("absent.nix").display()
    )));

    let e = eval_str("imports = [ ./nope.nix ];", Path::new("<config>"), d).unwrap_err();
    assert_eq!((e.line, e.column), (1, 13));
}

#[test]
fn errors_inside_imported_files_point_there() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bad = write(d, "bad.nix", "{\n  x = let y = 1; in y;\n}\n");
    let main = write(d, "main.nix", "{ imports = [ ./bad.nix ]; }");
    let e = eval_file(&main).unwrap_err();
    assert_eq!((e.file.clone(), e.line, e.column), (bad, 2, 7));
    assert!(e.message.contains("'let … in'"), "{e}");
}

// ---------------------------------------------------------------- refused constructs

#[test]
fn unsupported_constructs() {
    let host = "a Nix-enabled host builds it for real";
    let cases: &[(&str, usize, usize, &str)] = &[
        ("a = let x = 1; in x;", 1, 5, "'let … in'"),
        ("a = let { body = 1; };", 1, 5, "'let { … }'"),
        ("{ lib, ... }: with lib; { a = 1; }", 1, 15, "'with'"),
        ("a = with lib; mkDefault 1;", 1, 5, "'with'"),
        ("a = rec { x = 1; };", 1, 5, "recursive attribute set"),
        ("rec { a = 1; }", 1, 1, "recursive attribute set"),
        ("a = x: x;", 1, 5, "a function (lambda)"),
        ("a = { x }: x;", 1, 5, "a function (lambda)"),
        ("a = foo 1;", 1, 5, "undefined variable 'foo'"),
        (
            "{ pkgs, ... }: { a = pkgs.hello; }",
            1,
            22,
            "reference to 'pkgs.hello'",
        ),
        (
            "environment.systemPackages = [ pkgs.vim ];",
            1,
            32,
            "reference to 'pkgs.vim'",
        ),
        (
            "a = config.networking.hostName;",
            1,
            5,
            "reference to 'config.networking.hostName'",
        ),
        (
            "a = import ./x.nix;",
            1,
            5,
            "function application 'import ./x.nix'",
        ),
        (
            "a = builtins.readFile ./x;",
            1,
            5,
            "function application 'builtins.readFile ./x'",
        ),
        (
            "a = builtins.currentSystem;",
            1,
            5,
            "'builtins.currentSystem'",
        ),
        ("inherit (lib) foo;", 1, 1, "'inherit'"),
        ("a = { inherit b; };", 1, 7, "'inherit'"),
        ("a = if true then 1 else 2;", 1, 5, "'if … then … else'"),
        ("a = assert true; 1;", 1, 5, "'assert'"),
        ("a = 1 + 2;", 1, 5, "the operator '+'"),
        ("a = { } // { };", 1, 5, "the operator '//'"),
        ("a = [ 1 ] ++ [ 2 ];", 1, 5, "the operator '++'"),
        ("a = !true;", 1, 5, "the operator '!'"),
        ("a = 1 == 1;", 1, 5, "the operator '=='"),
        ("a = -x;", 1, 5, "the operator '-'"),
        ("a = { } ? b;", 1, 5, "the operator '?'"),
        ("a = lib.x or 1;", 1, 11, "'or'"),
        ("a = b;", 1, 5, "undefined variable 'b'"),
        ("a = \"x ${b} y\";", 1, 8, "string interpolation"),
        ("a = ''\n  x ${b}\n'';", 2, 5, "string interpolation"),
        ("\"a${b}\" = 1;", 1, 3, "string interpolation"),
        ("a.${b} = 1;", 1, 3, "dynamic attribute name"),
        ("a = ./${b}.nix;", 1, 7, "path interpolation"),
        ("a = 1.5;", 1, 5, "the floating-point number 1.5"),
        ("a = <nixpkgs>;", 1, 5, "the search path <nixpkgs>"),
        ("a = { b = [ (c: c) ]; };", 1, 14, "a function (lambda)"),
        ("a = x.y.z;", 1, 5, "undefined variable 'x'"),
        (
            "a = (import <nixpkgs> { }).hello;",
            1,
            5,
            "the attribute selection",
        ),
        ("a = __curPos;", 1, 5, "__curPos"),
        ("a = lib;", 1, 5, "reference to 'lib'"),
    ];
    for (text, line, column, what) in cases {
        let e = err(text);
        assert_eq!((e.line, e.column), (*line, *column), "{text:?}: {e}");
        assert!(e.message.contains(what), "{text:?}: {e} lacks {what:?}");
        let unbound = e.message.contains("undefined variable");
        assert!(unbound || e.message.contains(host), "{text:?}: {e}");
    }
}

#[test]
fn syntax_errors() {
    let cases: &[(&str, usize, usize)] = &[
        ("a = ;", 1, 5),
        ("a = 1", 1, 6),
        ("a = 1;\nb = [ 1 2;\n", 2, 10),
        ("{ a = 1;", 1, 9),
        ("a = \"unterminated;", 1, 6),
        ("a = ''x", 1, 7),
        ("{ a = 1; } }", 1, 12),
        ("a = { b = 1 };", 1, 13),
        ("a.b. = 1;", 1, 6),
        ("{ x, x, ... }: { }", 1, 6),
        ("a = 1; = 2;", 1, 8),
        ("{\n  a = 1;\n  b = ]\n}", 3, 7),
    ];
    for (text, line, column) in cases {
        let e = err(text);
        assert!(e.message.starts_with("syntax error"), "{text:?}: {e}");
        if text.contains("unterminated") || text.ends_with("''x") {
            assert!(e.message.contains("unterminated string"), "{e}");
        }
        assert_eq!((e.line, e.column), (*line, *column), "{text:?}: {e}");
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!("a = {}1{};", "[".repeat(300), "]".repeat(300));
    assert!(err(&deep).message.contains("nested too deeply"));
    let deeper = format!("a = {}1{};", "(".repeat(5000), ")".repeat(5000));
    let e = err(&deeper);
    assert!(e.message.contains("too deeply"), "{e}");
    let sets = format!("a = {} 1; {}", "{ b = ".repeat(300), "}; ".repeat(300));
    assert!(cfg(&sets).is_err());
}

/// rnix's parser recurses into lists without a limit: 20000 `[` overflowed the stack.
#[test]
fn deeply_nested_lists_and_strings_are_refused_before_parsing() {
    for (open, close) in [("[", "]"), ("\"${", "}\""), ("''${", "}''"), ("(", ")")] {
        let deep = format!("a = {}1{};", open.repeat(100_000), close.repeat(100_000));
        let e = std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(move || err(&deep))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(
            e.message, "syntax error: expression nested too deeply",
            "{open}"
        );
    }
    // Brackets inside strings and comments are not nesting.
    let many = "[".repeat(2000);
    let text = format!("a = \"{many}\"; b = ''{many}''; # {many}\n/* {many} */");
    assert_eq!(ok(&text).leaves().len(), 2);
}

#[test]
fn long_attribute_paths_are_bounded() {
    let long = format!("a{} = 1;", ".a".repeat(1_000));
    assert_err(&long, 1, 1, &["nested too deeply"]);
    let nested = format!("a = {}1{};", "{ a.a.a.a = ".repeat(60), "; }".repeat(60));
    assert!(err(&nested).message.contains("nested too deeply"));
    let ok_depth = format!("a{} = 1;", ".a".repeat(100));
    assert_eq!(ok(&ok_depth).leaves().len(), 1);
}

#[test]
fn no_panic_on_token_soup() {
    let pieces = [
        "{",
        "}",
        "[",
        "]",
        "(",
        ")",
        "a",
        "b.c",
        "=",
        ";",
        ":",
        "...",
        ",",
        "\"",
        "''",
        "${",
        "1",
        "-",
        "lib.mkDefault",
        "lib.mkOverride",
        "./x",
        "/y",
        "<n>",
        "rec",
        "let",
        "in",
        "with",
        "inherit",
        "if",
        "then",
        "else",
        "or",
        "?",
        "@",
        "//",
        "++",
        "#c\n",
        "/*",
        "*/",
        "\n",
        " ",
        "imports",
        "config",
        "\\",
        "'",
        "$",
        "1.5",
        "~/h",
        "true",
        "null",
        "é",
    ];
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..3000 {
        let mut text = String::new();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 24) as usize;
        for _ in 0..len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            text.push_str(pieces[(seed % pieces.len() as u64) as usize]);
            if seed.is_multiple_of(3) {
                text.push(' ');
            }
        }
        let _ = cfg(&text);
        let _ = cfg(&format!("{{ lib, ... }}: {{ {text} }}"));
    }
}

#[test]
fn relative_base_dir_is_made_absolute() {
    let t = eval_str("a = ./x;", Path::new("<config>"), Path::new("rel")).unwrap();
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(t.get("a"), Some(&Value::Path(cwd.join("rel/x"))));
}

#[test]
fn no_panic_on_any_prefix_or_mangling() {
    let sample = "{ config, lib, pkgs, ... }:\n{\n  imports = [ ./x.nix ];\n  a.\"b c\" = \
                  lib.mkOverride 10 { d = [ 1 -2 \"e\\n\" ''\n    f ''$ '''\n  '' ./g null ]; };\n  \
                  h = let i = 1; in i + 2;\n  j = \"${k}\";\n  l = rec { m = 1.5; };\n}\n";
    let chars: Vec<char> = sample.chars().collect();
    for n in 0..=chars.len() {
        let prefix: String = chars[..n].iter().collect();
        let _ = cfg(&prefix);
        let mangled: String = chars
            .iter()
            .enumerate()
            .filter(|(k, _)| *k != n)
            .map(|(_, c)| c)
            .collect();
        let _ = cfg(&mangled);
        let suffix: String = chars[n..].iter().collect();
        let _ = cfg(&suffix);
    }
    for weird in [
        "\u{0}", "''", "\"", "${", "}", "{", "a.", "a =", ";", "é = 1;", "a = é;", "\r\n", "''\\",
    ] {
        let _ = cfg(weird);
    }
}

#[test]
fn display_and_locations() {
    let e = err("\n\n   a = b;");
    assert_eq!(
        e.to_string(),
        "<config>:3:8: undefined variable 'b' (a Nix-enabled host would reject it too)"
    );
    // columns count characters, not bytes
    let e = err("a = \"ü\"; x = y;");
    assert_eq!((e.line, e.column), (1, 14));
    assert_eq!(ok("a = 1;").location("nope"), None);
    assert_eq!(ok("a = 1;").get("a.b"), None);
    assert_eq!(ok("a = 1;").get("a..b"), None);
}

/// `/dev/zero` was read until memory ran out, a FIFO blocked for ever.
#[test]
fn importing_a_device_or_fifo_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    for path in [Path::new("/dev/zero"), fifo.as_path()] {
        let e = err(&format!("imports = [ {} ];", path.display()));
        assert!(
            e.message.starts_with(&format!(
                "cannot import '{}': not a regular file",
                path.display()
            )),
            "{e}"
        );
    }
}
