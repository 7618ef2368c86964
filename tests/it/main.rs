//! The one integration test binary: runs the real `ncsh`.

mod repl;
