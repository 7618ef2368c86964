//! Splits ncsh's own Nix `lib` into its bindings once, at build time, so that an evaluation
//! does not tokenize all of it (ARCHITECTURE.md, "The Nix language").

#[allow(dead_code)]
#[path = "src/nixlang/lexer.rs"]
mod lexer;
#[allow(dead_code)]
#[path = "src/nixlang/split.rs"]
mod split;

fn main() {
    const LIB: &str = "stdlib/nix/lib.nix";
    println!("cargo::rerun-if-changed={LIB}");
    println!("cargo::rerun-if-changed=src/nixlang/split.rs");
    println!("cargo::rerun-if-changed=src/nixlang/lexer.rs");
    // The binary's 30k relative relocations packed (DT_RELR, glibc 2.36+): .rela.dyn goes
    // from 731 KB to 9 KB, less for the loader to read at every start. PIE and BIND_NOW stay
    // (ASLR; a read-only GOT): a non-PIE binary saves the relocations themselves (a sixth of a
    // read-only verb's instructions) but gives up ASLR for a program that runs as root.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu")
    {
        println!("cargo::rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    let text = std::fs::read_to_string(LIB).expect("stdlib/nix/lib.nix is readable");
    // `None` when lib is not of the simple form: it is then compiled whole.
    let source = match split::split_let(&text) {
        Some(s) => format!("Some({})", s.to_rust()),
        None => "None".to_string(),
    };
    let out = std::path::Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("lib-split.rs");
    std::fs::write(out, source).expect("OUT_DIR is writable");
}
