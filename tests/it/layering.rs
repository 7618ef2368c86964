//! The layering of ARCHITECTURE.md, checked: a module may use the layers below it and its own,
//! never one above, except for the exceptions listed there (and here). A new top-level module
//! must be given a layer.

use std::path::Path;

/// Top-level modules by layer, bottom first.
const LAYERS: [&[&str]; 9] = [
    &["error"],
    &["files"],
    &["container"],
    &["builder"],
    &["host"],
    &["manager"],
    &["engine", "api"],
    &["flags"],
    &["cli", "repl"],
];

/// Upward uses still to be untangled (ARCHITECTURE.md, "Layers").
const KNOWN_EXCEPTIONS: [(&str, &str); 2] = [
    // The store writes the base system and configuration.nix of a new root.
    ("container", "builder"),
    // The switch plan runs inside through host::enter.
    ("builder", "host"),
];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// The top-level modules `crate::X` that the Rust files at `path` name.
fn uses(path: &Path, out: &mut std::collections::BTreeSet<String>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap().flatten() {
            uses(&entry.path(), out);
        }
        return;
    }
    if path.extension().is_none_or(|e| e != "rs") {
        return;
    }
    let text = std::fs::read_to_string(path).unwrap();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
}

#[test]
fn no_layer_uses_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap().flatten() {
        let path = entry.path();
        let module = path.file_stem().unwrap().to_string_lossy().into_owned();
        if matches!(module.as_str(), "lib" | "main") {
            continue;
        }
        let own = layer(&module)
            .unwrap_or_else(|| panic!("src/{module}: give it a layer in ARCHITECTURE.md and here"));
        let mut used = std::collections::BTreeSet::new();
        uses(&path, &mut used);
        for dep in used.iter().filter(|d| **d != module) {
            let Some(theirs) = layer(dep) else {
                continue; // a name below crate:: that is not a module (e.g. a macro)
            };
            if theirs > own && !KNOWN_EXCEPTIONS.contains(&(module.as_str(), dep.as_str())) {
                violations.push(format!("{module} uses {dep}, a layer above it"));
            }
        }
    }
    assert!(violations.is_empty(), "{violations:#?}");
}
