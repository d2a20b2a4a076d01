//! The protocol hash: 64-bit FNV-1a ([`tingu_rt::fnv1a64`]) of a
//! protocol's normalised definition. Everything that changes what the
//! protocol means or how its messages look on the wire is in that text
//! (messages with their argument names, types and order, variables with
//! their initial values, constants, states with their nesting, flags and
//! timeouts, transitions in order with their guards, actions and targets);
//! comments, layout and the file it came from are not. Ports publish the
//! hash so that PDs built from different versions of a protocol refuse to
//! talk to each other.

use std::fmt::Write as _;

use crate::ast::*;

/// The protocol's definition as one canonical text (one declaration a line).
pub fn normalised(p: &Protocol) -> String {
    let mut out = format!("protocol {}\n", p.name.name);
    for m in &p.messages {
        let dir = match m.dir {
            Direction::In => "in",
            Direction::Out => "out",
        };
        let args: Vec<String> = m
            .args
            .iter()
            .map(|a| format!("{}: {}", a.name.name, a.ty.rust()))
            .collect();
        let _ = writeln!(out, "{dir} {}({})", m.name.name, args.join(", "));
    }
    for v in &p.vars {
        let _ = writeln!(
            out,
            "var {}: {} = {}",
            v.name.name,
            v.ty.rust(),
            v.init.text()
        );
    }
    for c in &p.consts {
        let _ = writeln!(out, "const {}{} = {}", c.name.name, c.type_text(), c.value);
    }
    for s in &p.states {
        let kind = if s.is_super { "superstate" } else { "state" };
        let _ = write!(out, "{kind} {}", s.name.name);
        if let Some(parent) = s.parent {
            let _ = write!(out, " in {}", p.states[parent].name.name);
        }
        if s.initial {
            out.push_str(" initial");
        }
        if s.is_final {
            out.push_str(" final");
        }
        if let Some(ms) = s.timeout_ms {
            let _ = write!(out, " timeout {ms} ms");
        }
        out.push('\n');
        for t in &s.transitions {
            let _ = write!(out, "  {}{}", t.dir.sigil(), t.msg.name);
            if let Some(g) = &t.guard {
                let _ = write!(out, " [{}]", g.text());
            }
            if !t.actions.is_empty() {
                let actions: Vec<String> = t
                    .actions
                    .iter()
                    .map(|(v, e)| format!("{} = {}", v.name, e.text()))
                    .collect();
                let _ = write!(out, " / {}", actions.join(", "));
            }
            if let Some(target) = &t.target {
                let _ = write!(out, " -> {}", target.name);
            }
            out.push('\n');
        }
    }
    out
}

/// The protocol hash: never 0, which ports use for "none published".
pub fn protocol_hash(p: &Protocol) -> u64 {
    tingu_rt::fnv1a64(normalised(p).as_bytes()).max(1)
}
