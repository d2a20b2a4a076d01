//! The protocol library: every `.tingu` protocol of the system, compiled at build time into message types and observers.
