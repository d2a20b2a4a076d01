//! Tingu protocol compiler: parses `.tingu` protocol and component specs, checks them, and emits Rust message types, observers and DOT statecharts.
