//! Tingu protocol compiler: parses `.tingu` protocol and component specs,
//! checks them, and emits Rust message types and runtime observers (for
//! `tingu-rt`) and DOT statecharts. The language is described, with its
//! grammar, in this crate's README. Use [`build::compile`] from a build
//! script, or the `tingu` binary (`check`, `dot`, `rust`, and `verify`,
//! which model-checks protocols and components with SPIN).

pub mod ast;
pub mod build;
pub mod check;
pub mod diag;
pub mod dot;
pub mod hash;
mod lexer;
pub mod names;
mod parser;
pub mod promela;
pub mod rust;
pub mod verify;

use std::path::Path;

pub use check::Model;
pub use diag::Diagnostic;

/// A set of source files compiled together (components may use protocols
/// from any of them).
pub struct Sources {
    files: Vec<(String, String)>,
}

impl Sources {
    /// Reads files from disk.
    pub fn load<P: AsRef<Path>>(paths: &[P]) -> Result<Sources, String> {
        let mut files = Vec::new();
        for p in paths {
            let p = p.as_ref();
            let bytes =
                std::fs::read(p).map_err(|e| format!("{}: cannot read: {e}", p.display()))?;
            let path = p.display().to_string();
            let text = utf8(&path, bytes).map_err(|d| d.to_string())?;
            files.push((path, text));
        }
        Ok(Sources { files })
    }

    /// Sources from memory, as `(path, text)` pairs.
    pub fn from_strings(files: &[(&str, &str)]) -> Sources {
        Sources {
            files: files
                .iter()
                .map(|(p, t)| (p.to_string(), t.to_string()))
                .collect(),
        }
    }

    fn diag(&self, e: diag::Error) -> Diagnostic {
        Diagnostic {
            path: self
                .files
                .get(e.pos.file)
                .map(|f| f.0.clone())
                .unwrap_or_default(),
            line: e.pos.line,
            col: e.pos.col,
            message: e.message,
        }
    }

    /// Parses and checks every file; all problems are reported, sorted by place.
    pub fn check(&self) -> Result<Model, Vec<Diagnostic>> {
        let mut parsed = Vec::new();
        let mut diags = Vec::new();
        for (i, (_, text)) in self.files.iter().enumerate() {
            match parser::parse(text, i) {
                Ok(f) => parsed.push(f),
                Err(e) => diags.push(self.diag(e)),
            }
        }
        if !diags.is_empty() {
            return Err(diags);
        }
        let paths: Vec<&str> = self.files.iter().map(|f| f.0.as_str()).collect();
        check::check(parsed, &paths).map_err(|errs| {
            let mut errs = errs;
            errs.sort_by_key(|e| (e.pos.file, e.pos.line, e.pos.col));
            errs.into_iter().map(|e| self.diag(e)).collect()
        })
    }

    /// Checks, then generates the Rust source for everything.
    pub fn rust(&self) -> Result<String, Vec<Diagnostic>> {
        let model = self.check()?;
        let names: Vec<&str> = self
            .files
            .iter()
            .map(|(p, _)| {
                Path::new(p)
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or(p)
            })
            .collect();
        Ok(rust::generate(&model, &names.join(", ")))
    }

    /// Checks, then model-checks every protocol and every group of ports a
    /// component's dependencies couple (see [`verify`]).
    pub fn verify(
        &self,
        opts: &verify::Options,
    ) -> Result<Result<Vec<verify::Outcome>, String>, Vec<Diagnostic>> {
        let model = self.check()?;
        let paths: Vec<String> = self.files.iter().map(|f| f.0.clone()).collect();
        Ok(verify::jobs(&model, &paths)
            .and_then(|jobs| verify::verify(&jobs, opts))
            .map(|mut outcomes| {
                outcomes.extend(verify::subports(&model));
                outcomes
            }))
    }

    /// Checks, then renders one DOT statechart per protocol, as `(name, dot)`.
    pub fn dot(&self) -> Result<Vec<(String, String)>, Vec<Diagnostic>> {
        let model = self.check()?;
        Ok(model
            .protocols
            .iter()
            .map(|p| (p.name.name.clone(), dot::protocol(p)))
            .collect())
    }
}

/// The file's text, or an error at the first byte that is not UTF-8.
fn utf8(path: &str, bytes: Vec<u8>) -> Result<String, Diagnostic> {
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        // Everything before `at` is valid, so lines and columns (counted
        // in characters, as the lexer does) can be read off that prefix.
        let before = std::str::from_utf8(&bytes[..at]).unwrap_or_default();
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line = before.matches('\n').count() + 1;
        let first_line = line_start == 0;
        let bom = first_line && before.starts_with('\u{feff}');
        let col = before[line_start..].chars().count() + 1 - usize::from(bom);
        Diagnostic {
            path: path.to_string(),
            line: u32::try_from(line).unwrap_or(u32::MAX),
            col: u32::try_from(col).unwrap_or(u32::MAX),
            message: format!(
                "byte 0x{:02x} is not valid UTF-8; Tingu files are UTF-8 text",
                bytes[at]
            ),
        }
    })
}
