//! The layering of ARCHITECTURE.md, checked: a module may use the layers below it and its own,
//! never one above, and no top-level modules use each other in a cycle. A new top-level module
//! must be given a layer.

use std::path::Path;

/// Top-level modules by layer, bottom first.
const LAYERS: [&[&str]; 11] = [
    &["error"],
    // The Nix language: a leaf beside the rest, which the builder evaluates configurations with.
    &["nixlang"],
    &["files"],
    &["container"],
    &["builder"],
    &["host"],
    &["manager"],
    &["engine", "api"],
    &["flags"],
    &["cli", "repl", "testrun"],
    // Test-only: property tests over the parsers of several layers.
    &["fuzz"],
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

/// Each top-level module of `src` and the other top-level modules it uses.
fn graph() -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap().flatten() {
        let path = entry.path();
        let module = path.file_stem().unwrap().to_string_lossy().into_owned();
        if matches!(module.as_str(), "lib" | "main") {
            continue;
        }
        let mut used = std::collections::BTreeSet::new();
        uses(&path, &mut used);
        used.retain(|d| *d != module && layer(d).is_some());
        out.insert(module, used);
    }
    out
}

#[test]
fn no_layer_uses_one_above_it() {
    let mut violations = Vec::new();
    for (module, used) in graph() {
        let own = layer(&module)
            .unwrap_or_else(|| panic!("src/{module}: give it a layer in ARCHITECTURE.md and here"));
        for dep in used {
            if layer(&dep).is_some_and(|theirs| theirs > own) {
                violations.push(format!("{module} uses {dep}, a layer above it"));
            }
        }
    }
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn no_top_level_modules_use_each_other_in_a_cycle() {
    let graph = graph();
    // Depth-first from every module; a module met again on the current path closes a cycle.
    fn visit(
        graph: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        module: &str,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|m| m == module) {
            let mut cycle = path[start..].to_vec();
            cycle.push(module.to_string());
            return Some(cycle);
        }
        path.push(module.to_string());
        for dep in graph.get(module).into_iter().flatten() {
            if let Some(cycle) = visit(graph, dep, path) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    for module in graph.keys() {
        if let Some(cycle) = visit(&graph, module, &mut Vec::new()) {
            panic!("an import cycle: {}", cycle.join(" -> "));
        }
    }
}
