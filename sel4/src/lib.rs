//! seL4 bindings.
