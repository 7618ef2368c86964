//! Splits ncsh's own Nix `lib` into its bindings once, at build time, so that an evaluation
//! does not tokenize all of it (ARCHITECTURE.md, "The Nix language").

#[allow(dead_code)]
#[path = "src/nixlang/split.rs"]
mod split;

fn main() {
    const LIB: &str = "stdlib/nix/lib.nix";
    println!("cargo::rerun-if-changed={LIB}");
    println!("cargo::rerun-if-changed=src/nixlang/split.rs");
    let text = std::fs::read_to_string(LIB).expect("stdlib/nix/lib.nix is readable");
    // An empty file when lib is not of the simple form: it is then compiled whole.
    let encoded = split::split_let(&text)
        .map(|s| s.encode())
        .unwrap_or_default();
    let out = std::path::Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("lib-split.txt");
    std::fs::write(out, encoded).expect("OUT_DIR is writable");
}
