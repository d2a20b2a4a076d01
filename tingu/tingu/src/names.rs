//! Which Tingu names can become Rust names. Every name in a spec ends up in
//! the generated Rust (a module, an enum variant, a field, a constant, a
//! method); the checker uses these rules so that every spec it accepts
//! compiles, and the back end may rely on them. A back end that binds new
//! local names next to message fields, or adds items to the generated
//! modules, lists them here.

/// Rust 2024's strict and reserved keywords (raw identifiers are not
/// generated, so none of these can name anything).
const KEYWORDS: [&str; 52] = [
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub",
    "ref", "return", "self", "Self", "static", "struct", "super", "trait", "true", "type",
    "unsafe", "use", "where", "while", "abstract", "become", "box", "do", "final", "gen", "macro",
    "override", "priv", "try", "typeof", "unsized", "virtual", "yield",
];

/// Whether `name` is a Rust keyword.
pub fn is_keyword(name: &str) -> bool {
    KEYWORDS.contains(&name)
}

/// Names a message argument cannot have: the generated code binds
/// arguments as local variables next to these (`encode` writes into `slot`
/// through `w`, `Display` writes to `f`, actions build `next`), and the
/// protocol observer's own fields.
pub const ARGUMENT_RESERVED: [&str; 7] =
    ["slot", "w", "f", "next", "state", "entered_ns", "history"];

/// Names a variable cannot have: the protocol observer's own fields.
pub const VARIABLE_RESERVED: [&str; 3] = ["state", "entered_ns", "history"];

/// Items every generated protocol module defines, which a constant must
/// not shadow.
pub const MODULE_ITEMS: [&str; 8] = [
    "NAME",
    "HASH",
    "WIRE_BYTES",
    "COUNT",
    "Msg",
    "State",
    "Vars",
    "Observer",
];

/// Methods every generated component observer has besides the per-port
/// and per-subport ones.
pub const COMPONENT_METHODS: [&str; 2] = ["new", "check_timeouts"];

/// Whether `name` is an identifier Rust accepts as it is: ASCII letters,
/// digits and `_`, not starting with a digit, not `_` alone, no keyword.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name != "_"
        && !is_keyword(name)
}

/// snake_case as rustc's `non_snake_case` lint reads it: no upper-case
/// letters and no doubled `_` between words (leading and trailing `_`
/// are fine).
pub fn is_snake_case(name: &str) -> bool {
    !name.chars().any(|c| c.is_ascii_uppercase()) && !name.trim_matches('_').contains("__")
}

/// UPPER_CASE as rustc's `non_upper_case_globals` lint reads it.
pub fn is_upper_case(name: &str) -> bool {
    !name.chars().any(|c| c.is_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        for ok in ["a", "_a", "a1", "max_packet", "union", "Go"] {
            assert!(is_identifier(ok), "{ok}");
        }
        for bad in ["", "_", "1a", "self", "Self", "gen", "a-b", "é"] {
            assert!(!is_identifier(bad), "{bad}");
        }
    }

    #[test]
    fn cases() {
        assert!(is_snake_case("max_packet") && is_snake_case("_x_") && is_snake_case("a1"));
        assert!(!is_snake_case("maxPacket") && !is_snake_case("a__b"));
        assert!(is_upper_case("REJECT_FULL") && is_upper_case("D0"));
        assert!(!is_upper_case("Limit"));
    }
}
