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
//! A system is built for one [`Board`]: `pc` (x86_64; the default) or
//! `sabrelite` (32-bit ARM), which decides the address-space layout, the
//! program format and which interrupt sources, I/O ports and page sizes
//! system.xml may use. For ARM boards [`boot_image`] also wraps the kernel
//! and the image into the loader that boots them.
//!
//! Microkit features that this seL4 5.0.0 target cannot honour are
//! never dropped silently: passive PDs, child PDs, virtual machines, SMC and
//! other CPUs are errors; a non-default budget or period is a warning.

pub mod boot_image;
mod check;
mod diag;
mod elf;
pub mod image;
mod model;
pub mod plan;
pub mod report;
mod wiring;
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
///
/// The Dingo wiring file beside it (`<name>.dingo.toml`, see
/// [`wiring_path`]) is read too when it exists: it binds the roles of PDs
/// whose programs declare them in a `pd.toml`.
pub fn load_file(path: &Path, search_paths: &[PathBuf]) -> Result<Loaded, Vec<Diagnostic>> {
    load_file_for(Board::Pc, path, search_paths)
}

/// As [`load_file`], for `board`.
pub fn load_file_for(
    board: Board,
    path: &Path,
    search_paths: &[PathBuf],
) -> Result<Loaded, Vec<Diagnostic>> {
    let name = path.display().to_string();
    let wiring_file = wiring_path(path);
    let wiring = match std::fs::read_to_string(&wiring_file) {
        Ok(text) => Some((wiring_file.display().to_string(), text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(vec![Diagnostic {
                severity: Severity::Error,
                file: wiring_file.display().to_string(),
                pos: SourcePos { line: 1, col: 1 },
                message: format!("cannot read the wiring file: {e}"),
                expected: "a readable file, or none".into(),
            }]);
        }
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            return Err(vec![Diagnostic {
                severity: Severity::Error,
                file: name,
                pos: SourcePos { line: 1, col: 1 },
                message: format!("cannot read the system description: {e}"),
                expected: "a readable system.xml file".into(),
            }]);
        }
    };
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let bad = e.utf8_error().valid_up_to();
            let good = std::str::from_utf8(&e.as_bytes()[..bad]).expect("valid up to here");
            let line = good.matches('\n').count() as u32 + 1;
            let col = good.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u32 + 1;
            return Err(vec![Diagnostic {
                severity: Severity::Error,
                file: name,
                pos: SourcePos { line, col },
                message: format!("byte {:#04x} is not UTF-8 text", e.as_bytes()[bad]),
                expected: "a system description in UTF-8 (as XML declares by default)".into(),
            }]);
        }
    };
    load_for(
        board,
        &name,
        &text,
        wiring.as_ref().map(|(f, t)| (f.as_str(), t.as_str())),
        search_paths,
    )
}

/// The wiring file of system description `path`: `system.xml` ->
/// `system.dingo.toml`, beside it.
pub fn wiring_path(path: &Path) -> PathBuf {
    path.with_extension("dingo.toml")
}

/// As [`load_file`], for text already in memory, without a wiring file;
/// `file_name` is what the diagnostics call it.
pub fn load_str(
    file_name: &str,
    xml: &str,
    search_paths: &[PathBuf],
) -> Result<Loaded, Vec<Diagnostic>> {
    load_with_wiring(file_name, xml, None, search_paths)
}

/// As [`load_str`], with a wiring file (name, text).
pub fn load_with_wiring(
    file_name: &str,
    xml: &str,
    wiring: Option<(&str, &str)>,
    search_paths: &[PathBuf],
) -> Result<Loaded, Vec<Diagnostic>> {
    load_for(Board::Pc, file_name, xml, wiring, search_paths)
}

/// As [`load_with_wiring`], for `board`.
pub fn load_for(
    board: Board,
    file_name: &str,
    xml: &str,
    wiring: Option<(&str, &str)>,
    search_paths: &[PathBuf],
) -> Result<Loaded, Vec<Diagnostic>> {
    let mut d = diag::Diags::new(file_name);
    let mut system = xml::parse(xml, board, &mut d)
        .and_then(|draft| check::check(draft, search_paths, &mut d, file_name, board));
    let mut diagnostics = d.into_sorted();
    if let Some(system) = &mut system
        && !diagnostics.iter().any(Diagnostic::is_error)
    {
        let mut more = wiring::wire(system, wiring);
        more.sort_by(|a, b| (&a.file, a.pos).cmp(&(&b.file, b.pos)));
        diagnostics.extend(more);
        // The region of the monitor's clock is used, though no PD maps it.
        if let Some(t) = &system.tick {
            let unmapped = format!(
                "memory region '{}' is not mapped by any protection domain",
                system.memory_regions[t.hpet].name
            );
            diagnostics.retain(|d| d.is_error() || d.message != unmapped);
        }
    }
    match system {
        Some(system) if !diagnostics.iter().any(Diagnostic::is_error) => Ok(Loaded {
            system,
            warnings: diagnostics,
        }),
        _ => Err(diagnostics),
    }
}
