//! Why building the system failed.

use core::fmt;

/// A failed step: what the monitor was doing, and the kernel's answer.
#[derive(Debug)]
pub struct SetupError {
    pub what: &'static str,
    pub kernel: Option<sel4::Error>,
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kernel {
            Some(e) => write!(f, "{}: kernel error {e:?}", self.what),
            None => write!(f, "{}", self.what),
        }
    }
}

pub type Setup<T> = Result<T, SetupError>;

/// Names the step for a kernel invocation's result.
pub trait Context<T> {
    fn ctx(self, what: &'static str) -> Setup<T>;
}

impl<T> Context<T> for sel4::Result<T> {
    fn ctx(self, what: &'static str) -> Setup<T> {
        self.map_err(|e| SetupError {
            what,
            kernel: Some(e),
        })
    }
}

/// A failure the monitor detected itself.
pub fn fail<T>(what: &'static str) -> Setup<T> {
    Err(SetupError { what, kernel: None })
}
