//! Host tool: reads a Microkit 2.3.0 system description (system.xml),
//! validates it and packs the monitor, the PD ELFs and a boot plan into one
//! bootable image. The library turns system.xml into a validated [`System`]
//! (with every PD's ELF segments, entry point and setvar symbol addresses
//! already read), or into a list of [`Diagnostic`]s of the form
//! `<file>:<line>:<col>: error: <what is wrong>; expected <what is expected>`;
//! [`plan`] turns a `System` into the monitor's boot plan, [`image`] appends
//! that plan to the monitor ELF, and [`report`] writes the human-readable
//! report. The `system-builder` binary chains all four.
//!
//! Microkit features that this seL4 5.0.0 x86_64 target cannot honour are
//! never dropped silently: passive PDs, child PDs, virtual machines, SMC and
//! other CPUs are errors; a non-default budget or period is a warning.

mod check;
mod diag;
mod elf;
pub mod image;
mod model;
pub mod plan;
pub mod report;
mod xml;

use std::path::{Path, PathBuf};

pub use diag::{Diagnostic, Severity};
pub use model::*;

/// A system that passed every check, with the warnings it produced.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub system: System,
    pub warnings: Vec<Diagnostic>,
}

/// Reads and validates the system description at `path`. Program images
/// are looked up in `search_paths` in order (absolute image paths are used
/// as they are), like Microkit's `--search-path`; the caller decides whether
/// the current directory is one of them.
///
/// On failure, the error holds every diagnostic (errors and warnings) in
/// file order.
pub fn load_file(path: &Path, search_paths: &[PathBuf]) -> Result<Loaded, Vec<Diagnostic>> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(&name, &text, search_paths),
        Err(e) => Err(vec![Diagnostic {
            severity: Severity::Error,
            file: name,
            pos: SourcePos { line: 1, col: 1 },
            message: format!("cannot read the system description: {e}"),
            expected: "a readable system.xml file".into(),
        }]),
    }
}

/// As [`load_file`], for text already in memory; `file_name` is what the
/// diagnostics call it.
pub fn load_str(
    file_name: &str,
    xml: &str,
    search_paths: &[PathBuf],
) -> Result<Loaded, Vec<Diagnostic>> {
    let mut d = diag::Diags::new(file_name);
    let system = xml::parse(xml, &mut d)
        .and_then(|draft| check::check(draft, search_paths, &mut d, file_name));
    let diagnostics = d.into_sorted();
    match system {
        Some(system) if !diagnostics.iter().any(Diagnostic::is_error) => Ok(Loaded {
            system,
            warnings: diagnostics,
        }),
        _ => Err(diagnostics),
    }
}
