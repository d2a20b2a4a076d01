//! Tingu protocol compiler: parses `.tingu` protocol and component specs,
//! checks them, and emits Rust message types and runtime observers (for
//! `tingu-rt`) and DOT statecharts. The language is described, with its
//! grammar, in this crate's README. Use [`build::compile`] from a build
//! script, or the `tingu` binary (`check`, `dot`, `rust`).

pub mod ast;
pub mod build;
pub mod check;
pub mod diag;
pub mod dot;
pub mod hash;
mod lexer;
mod parser;
pub mod rust;

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
            let text = std::fs::read_to_string(p)
                .map_err(|e| format!("{}: cannot read: {e}", p.display()))?;
            files.push((p.display().to_string(), text));
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
        check::check(parsed).map_err(|errs| {
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
