//! Entry point for `build.rs` scripts.

use std::path::Path;

/// Compiles `.tingu` files into one Rust source at `out`, for `include!`.
///
/// Prints `cargo:rerun-if-changed` for every input. On failure the error
/// lists every problem as `file:line:col: error: ...`, one per line; pass
/// it to `panic!` or print it and exit so cargo shows it.
pub fn compile<P: AsRef<Path>>(paths: &[P], out: impl AsRef<Path>) -> Result<(), String> {
    for p in paths {
        println!("cargo:rerun-if-changed={}", p.as_ref().display());
    }
    let sources = crate::Sources::load(paths)?;
    let code = sources.rust().map_err(|d| crate::diag::render(&d))?;
    std::fs::write(out.as_ref(), code)
        .map_err(|e| format!("{}: cannot write: {e}", out.as_ref().display()))
}
