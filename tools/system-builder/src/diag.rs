//! Diagnostics in the one format every system.xml problem is reported in:
//! `<file>:<line>:<col>: error: <what is wrong>; expected <what is expected>`.

use std::fmt;

use crate::model::SourcePos;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Warning,
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: String,
    pub pos: SourcePos,
    /// What is wrong.
    pub message: String,
    /// What would have been right.
    pub expected: String,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}; expected {}",
            self.file, self.pos.line, self.pos.col, self.severity, self.message, self.expected
        )
    }
}

/// Collects the diagnostics of one system description.
pub(crate) struct Diags {
    file: String,
    list: Vec<Diagnostic>,
}

impl Diags {
    pub(crate) fn new(file: &str) -> Diags {
        Diags {
            file: file.to_string(),
            list: Vec::new(),
        }
    }

    pub(crate) fn error(&mut self, pos: SourcePos, message: String, expected: String) {
        self.push(Severity::Error, pos, message, expected);
    }

    pub(crate) fn warning(&mut self, pos: SourcePos, message: String, expected: String) {
        self.push(Severity::Warning, pos, message, expected);
    }

    fn push(&mut self, severity: Severity, pos: SourcePos, message: String, expected: String) {
        self.list.push(Diagnostic {
            severity,
            file: self.file.clone(),
            pos,
            message,
            expected,
        });
    }

    pub(crate) fn error_count(&self) -> usize {
        self.list.iter().filter(|d| d.is_error()).count()
    }

    /// All diagnostics in file order, so the output reads top to bottom.
    pub(crate) fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.list.sort_by_key(|d| d.pos);
        self.list
    }
}
