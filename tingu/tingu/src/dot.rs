//! DOT back end: one statechart per protocol, drawn like the paper's
//! figures: superstates as clusters, `?`/`!` triggers, guards in brackets,
//! actions after a slash, timeouts in the state label.

use std::fmt::Write as _;

use crate::ast::*;

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn node(p: &Protocol, s: usize) -> String {
    quote(&format!("s_{}", p.states[s].name.name))
}

fn label(t: &Transition) -> String {
    let mut l = format!("{}{}", t.dir.sigil(), t.msg.name);
    if let Some(g) = &t.guard {
        let _ = write!(l, " [{}]", g.text());
    }
    if !t.actions.is_empty() {
        let acts: Vec<String> = t
            .actions
            .iter()
            .map(|(v, e)| format!("{} = {}", v.name, e.text()))
            .collect();
        let _ = write!(l, " / {}", acts.join(", "));
    }
    l
}

/// Renders the statechart of `p`.
pub fn protocol(p: &Protocol) -> String {
    // States by name, once: a protocol may have very many.
    let index: std::collections::HashMap<&str, usize> = p
        .states
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.name.as_str(), i))
        .collect();
    let mut out = format!("digraph {} {{\n", quote(&p.name.name));
    out.push_str("  compound=true;\n  rankdir=LR;\n  fontname=\"Helvetica\";\n");
    out.push_str("  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\", fontsize=10];\n");
    let _ = writeln!(
        out,
        "  label={};\n  labelloc=t;",
        quote(&format!("protocol {}", p.name.name))
    );
    if !p.vars.is_empty() || !p.consts.is_empty() {
        let mut decls: Vec<String> = p
            .vars
            .iter()
            .map(|v| format!("var {}: {} = {}", v.name.name, v.ty.rust(), v.init.text()))
            .collect();
        decls.extend(
            p.consts
                .iter()
                .map(|c| format!("const {}{} = {}", c.name.name, c.type_text(), c.value)),
        );
        let text: String = decls.iter().map(|d| format!("{d}\\l")).collect();
        let _ = writeln!(
            out,
            "  decls [shape=note, label=\"{}\"];",
            text.replace('"', "\\\"")
        );
    }
    out.push_str("  init [shape=point, width=0.15];\n");
    emit_states(&mut out, p, None, 1);
    let _ = writeln!(out, "  init -> {};", node(p, p.initial()));
    for (si, s) in p.states.iter().enumerate() {
        for t in s.transitions.iter().filter(|t| t.target.is_some()) {
            // A transition from a superstate is drawn from the cluster's
            // border, anchored on its first leaf.
            let (tail, ltail) = if s.is_super {
                let anchor = p.leaves().find(|&l| p.within(l, si)).unwrap_or(si);
                let target_inside = t
                    .target
                    .as_ref()
                    .and_then(|n| index.get(n.name.as_str()).copied())
                    .is_some_and(|ti| p.within(ti, si));
                let ltail = if target_inside {
                    String::new()
                } else {
                    format!(", ltail={}", quote(&format!("cluster_{}", s.name.name)))
                };
                (anchor, ltail)
            } else {
                (si, String::new())
            };
            let head = t
                .target
                .as_ref()
                .and_then(|n| index.get(n.name.as_str()).copied())
                .unwrap_or(tail);
            let _ = writeln!(
                out,
                "  {} -> {} [label={}{ltail}];",
                node(p, tail),
                node(p, head),
                quote(&label(t))
            );
        }
    }
    out.push_str("}\n");
    out
}

/// Internal transitions (no target) are listed inside their state, as in
/// UML, rather than drawn as loops: a loop cannot leave a cluster border.
fn internal(s: &State) -> String {
    s.transitions
        .iter()
        .filter(|t| t.target.is_none())
        .map(|t| format!("{}\\l", escape(&label(t))))
        .collect()
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn emit_states(out: &mut String, p: &Protocol, parent: Option<usize>, depth: usize) {
    let pad = "  ".repeat(depth);
    for (si, s) in p
        .states
        .iter()
        .enumerate()
        .filter(|(_, s)| s.parent == parent)
    {
        if s.is_super {
            let _ = writeln!(
                out,
                "{pad}subgraph {} {{",
                quote(&format!("cluster_{}", s.name.name))
            );
            let _ = writeln!(
                out,
                "{pad}  label={};\n{pad}  style=rounded;",
                quote(&s.name.name)
            );
            let inner = internal(s);
            if !inner.is_empty() {
                let _ = writeln!(
                    out,
                    "{pad}  {} [shape=plaintext, fontsize=10, label=\"{inner}\"];",
                    quote(&format!("i_{}", s.name.name))
                );
            }
            emit_states(out, p, Some(si), depth + 1);
            let _ = writeln!(out, "{pad}}}");
        } else {
            let mut text = escape(&s.name.name);
            if let Some(ms) = s.timeout_ms {
                let _ = write!(text, "\\n[timeout {ms} ms]");
            }
            let inner = internal(s);
            if !inner.is_empty() {
                let _ = write!(text, "\\n\\l{inner}");
            }
            let shape = if s.is_final {
                ", shape=doublecircle, style=bold"
            } else {
                ""
            };
            let _ = writeln!(out, "{pad}{} [label=\"{text}\"{shape}];", node(p, si));
        }
    }
}
