//! Promela back end of `tingu verify`: one closed model per [`Job`], in
//! which every view of every port is a process and every ring a bounded
//! FIFO. The model prints each transition it takes (`E pre | event | post`)
//! so that the verifier can judge properties SPIN's LTL cannot state
//! ("from every state a final state can be reached").
//!
//! State lives in globals only (each view's leaf state and variables, each
//! FIFO as an array kept packed at index 0, the violation code), and every
//! transition is one `d_step` from the loop head back to it, so the
//! printed globals identify a state exactly.

use std::fmt::Write as _;

use crate::ast::{BinOp, Expr, Transition, Ty};
use crate::verify::{Job, Packet, RecvError, View};

/// Integers the model may hold: SPIN computes in 32-bit `int`.
pub const INT_MAX: i128 = i32::MAX as i128;

/// Value range of a variable or argument type, cut to SPIN's `int`.
pub fn type_range(ty: Ty) -> (i128, i128) {
    let (lo, hi) = match ty {
        Ty::U(bits) => (0, (1i128 << bits) - 1),
        Ty::I(bits) => (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1),
        Ty::Bool => (0, 1),
    };
    (lo.max(-INT_MAX), hi.min(INT_MAX))
}

/// Whether an expression computes a new value (and so can grow without
/// limit), rather than copying a name or a literal.
pub fn is_arithmetic(e: &Expr) -> bool {
    matches!(e, Expr::Neg(..) | Expr::Bin(BinOp::Add | BinOp::Sub, ..))
}

/// The expression in Promela, for view `v` evaluating a transition on
/// packet `pkt` (whose argument values are literals here).
fn expr(job: &Job, v: View, pkt: &Packet, e: &Expr) -> String {
    let proto = job.ports[v.port].proto;
    match e {
        Expr::Int(x, _) => x.to_string(),
        Expr::Bool(b, _) => u8::from(*b).to_string(),
        Expr::Name(n) => {
            let m = &proto.messages[pkt.msg];
            if let Some(ai) = m.args.iter().position(|a| a.name.name == n.name) {
                // Arguments no guard or action reads are not carried.
                pkt.args
                    .iter()
                    .find(|(i, _)| *i == ai)
                    .map(|(_, x)| x.to_string())
                    .unwrap_or_else(|| "0".into())
            } else if let Some(vi) = proto.vars.iter().position(|x| x.name.name == n.name) {
                var_name(job, v, vi)
            } else {
                proto
                    .consts
                    .iter()
                    .find(|c| c.name.name == n.name)
                    .map(|c| c.value.to_string())
                    .unwrap_or_else(|| "0".into())
            }
        }
        Expr::Not(a, _) => format!("(!{})", expr(job, v, pkt, a)),
        Expr::Neg(a, _) => format!("(-{})", expr(job, v, pkt, a)),
        Expr::Bin(op, a, b, _) => format!(
            "({} {} {})",
            expr(job, v, pkt, a),
            op.text(),
            expr(job, v, pkt, b)
        ),
    }
}

fn var_name(job: &Job, v: View, var: usize) -> String {
    format!("v{}_{}", job.view_index(v), var)
}

fn state_name(job: &Job, v: View) -> String {
    format!("s{}", job.view_index(v))
}

/// Conditions on the values an action computes: inside its type (else the
/// observer reports an overflow) and, for arithmetic, inside the bound.
struct ActionChecks {
    type_ok: String,
    bound_ok: String,
}

fn action_checks(job: &Job, v: View, pkt: &Packet, t: &Transition, bound: i128) -> ActionChecks {
    let proto = job.ports[v.port].proto;
    let mut type_ok = vec!["1".to_string()];
    let mut bound_ok = vec!["1".to_string()];
    for (var, e) in &t.actions {
        let decl = proto.vars.iter().find(|x| x.name.name == var.name);
        let Some(decl) = decl else { continue };
        let val = expr(job, v, pkt, e);
        let (lo, hi) = type_range(decl.ty);
        type_ok.push(format!("({val} >= {lo} && {val} <= {hi})"));
        if is_arithmetic(e) {
            bound_ok.push(format!("({val} >= {} && {val} <= {bound})", -bound));
        }
    }
    ActionChecks {
        type_ok: type_ok.join(" && "),
        bound_ok: bound_ok.join(" && "),
    }
}

/// Assigns every action (all read the values from before) and the target.
fn apply(job: &Job, v: View, pkt: &Packet, t: &Transition, out: &mut String, indent: &str) {
    let proto = job.ports[v.port].proto;
    let mut temps = Vec::new();
    for (k, (var, e)) in t.actions.iter().enumerate() {
        if let Some(vi) = proto.vars.iter().position(|x| x.name.name == var.name) {
            let _ = writeln!(out, "{indent}t{k} = {};", expr(job, v, pkt, e));
            temps.push((k, vi));
        }
    }
    for (k, vi) in &temps {
        let _ = writeln!(out, "{indent}{} = t{k}; t{k} = 0;", var_name(job, v, *vi));
    }
    if let Some(target) = &t.target
        && let Some(si) = proto.state(&target.name)
    {
        let _ = writeln!(out, "{indent}{} = {si};", state_name(job, v));
    }
}

/// The condition under which view `v`'s dependencies allow message `msg`
/// of its port, and the rules that name it.
fn deps(job: &Job, v: View, msg: usize) -> Vec<(usize, String)> {
    job.deps_of(v.port, msg)
        .map(|(di, d)| {
            let on = job.same_party(v, d.on);
            let s = state_name(job, on);
            let alts: Vec<String> = d.allowed.iter().map(|x| format!("{s} == {x}")).collect();
            (di, format!("({})", alts.join(" || ")))
        })
        .collect()
}

fn state_fmt(job: &Job, slots: usize) -> (String, String) {
    let mut fmt = Vec::new();
    let mut args = Vec::new();
    for v in job.views() {
        fmt.push("%d".to_string());
        args.push(state_name(job, v));
        for vi in 0..job.ports[v.port].proto.vars.len() {
            fmt.push("%d".into());
            args.push(var_name(job, v, vi));
        }
    }
    for c in 0..job.ports.len() * 2 {
        fmt.push("%c".repeat(slots));
        for k in 0..slots {
            args.push(format!("q{c}[{k}] + 48"));
        }
    }
    fmt.push("%d".into());
    args.push("err".into());
    (fmt.join(" "), args.join(", "))
}

/// The whole model.
pub fn model(job: &Job, slots: usize, bound: i128) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "/* tingu verify: {} */", job.title);
    let _ = writeln!(out, "#define SLOTS {slots}");
    out.push_str("int err = 0;\n");
    for v in job.views() {
        let proto = job.ports[v.port].proto;
        let _ = writeln!(out, "byte {} = {};", state_name(job, v), proto.initial());
        for (vi, var) in proto.vars.iter().enumerate() {
            let init = match &var.init {
                Expr::Bool(b, _) => i128::from(*b),
                Expr::Int(x, _) => *x,
                Expr::Neg(a, _) => match a.as_ref() {
                    Expr::Int(x, _) => -*x,
                    _ => 0,
                },
                _ => 0,
            };
            let _ = writeln!(out, "int {} = {init};", var_name(job, v, vi));
        }
    }
    for c in 0..job.ports.len() * 2 {
        let _ = writeln!(out, "byte q{c}[SLOTS]; byte n{c} = 0;");
    }
    let (fmt, args) = state_fmt(job, slots);
    let pre = format!("printf(\"E {fmt} |\", {args});");
    let post = |ev: &str, ev_args: &str| format!("printf(\" {ev} | {fmt}\\n\", {ev_args}{args});");
    let temps = job
        .ports
        .iter()
        .flat_map(|p| p.proto.states.iter().flat_map(|s| s.transitions.iter()))
        .map(|t| t.actions.len())
        .max()
        .unwrap_or(0);

    for v in job.views() {
        let vi = job.view_index(v);
        let port = &job.ports[v.port];
        let proto = port.proto;
        let (cin, cout) = job.channels(v);
        let s = state_name(job, v);
        let _ = writeln!(out, "\nproctype V{vi}() {{");
        out.push_str("  byte h = 0; byte i = 0; int ek = 0; int ec = 0; int ed = 0;\n");
        for k in 0..temps {
            let _ = writeln!(out, "  int t{k} = 0;");
        }
        out.push_str("end_loop:\n  do\n");
        // Sends: every transition this side may take by sending.
        for leaf in proto.leaves() {
            for (code, pkt) in port.packets.iter().enumerate() {
                let code = code + 1;
                if proto.messages[pkt.msg].dir != v.sends() {
                    continue;
                }
                let cands = proto.candidates(leaf, pkt.msg);
                let dep_conds: Vec<String> =
                    deps(job, v, pkt.msg).into_iter().map(|d| d.1).collect();
                let mut prior: Vec<String> = Vec::new();
                for (ci, t) in cands.iter().enumerate() {
                    let g = t
                        .guard
                        .as_ref()
                        .map(|g| expr(job, v, pkt, g))
                        .unwrap_or_else(|| "1".into());
                    let mut guard = vec!["err == 0".to_string(), format!("{s} == {leaf}")];
                    guard.extend(dep_conds.iter().cloned());
                    guard.extend(prior.iter().map(|p| format!("!{p}")));
                    guard.push(g.clone());
                    let checks = action_checks(job, v, pkt, t, bound);
                    let guard = guard.join(" && ");
                    let _ = writeln!(
                        out,
                        "  :: d_step {{ {guard} && n{cout} < SLOTS && {} && {} ->",
                        checks.type_ok, checks.bound_ok
                    );
                    let _ = writeln!(out, "       {pre}");
                    apply(job, v, pkt, t, &mut out, "       ");
                    let _ = writeln!(out, "       q{cout}[n{cout}] = {code}; n{cout}++;");
                    let _ = writeln!(
                        out,
                        "       {} }}",
                        post(&format!("0 {vi} {code} {ci} -1"), "")
                    );
                    // Within the protocol but beyond the variable bound: not
                    // explored, but the side is not stuck either (a self-loop
                    // the verifier reads as "may go on").
                    if checks.bound_ok != "1" {
                        let _ = writeln!(
                            out,
                            "  :: d_step {{ {guard} && n{cout} < SLOTS && {} && !({}) ->",
                            checks.type_ok, checks.bound_ok
                        );
                        let _ = writeln!(out, "       {pre}");
                        let _ = writeln!(
                            out,
                            "       {} }}",
                            post(&format!("3 {vi} {code} {ci} -1"), "")
                        );
                    }
                    if t.guard.is_none() {
                        break;
                    }
                    prior.push(g);
                }
            }
        }
        // Receive: the head of the incoming FIFO, accepted or not.
        let _ = writeln!(out, "  :: d_step {{ err == 0 && n{cin} > 0 ->");
        let _ = writeln!(out, "       {pre}");
        let _ = writeln!(
            out,
            "       h = q{cin}[0]; i = 0;\n       do :: i + 1 < n{cin} -> q{cin}[i] = q{cin}[i + 1]; i++ :: else -> break od;\n       q{cin}[n{cin} - 1] = 0; n{cin}--; i = 0; ek = 1; ec = 0; ed = -1;"
        );
        out.push_str("       if\n");
        for leaf in proto.leaves() {
            for (code, pkt) in port.packets.iter().enumerate() {
                let code = code + 1;
                if proto.messages[pkt.msg].dir == v.sends() {
                    continue;
                }
                let cands = proto.candidates(leaf, pkt.msg);
                if cands.is_empty() {
                    continue;
                }
                let _ = writeln!(out, "       :: h == {code} && {s} == {leaf} ->");
                out.push_str("         if\n");
                let mut prior: Vec<String> = Vec::new();
                for (ci, t) in cands.iter().enumerate() {
                    let g = t
                        .guard
                        .as_ref()
                        .map(|g| expr(job, v, pkt, g))
                        .unwrap_or_else(|| "1".into());
                    let mut cond: Vec<String> = prior.iter().map(|p| format!("!{p}")).collect();
                    cond.push(g.clone());
                    let checks = action_checks(job, v, pkt, t, bound);
                    let _ = writeln!(out, "         :: {} -> ec = {ci};", cond.join(" && "));
                    let _ = writeln!(
                        out,
                        "           if\n           :: !({}) -> ek = 2; ec = {}\n           :: else -> if\n             :: !({}) -> ek = 2; ec = {}\n             :: else -> skip\n             fi\n           fi;",
                        checks.type_ok,
                        RecvError::Overflow as u8,
                        checks.bound_ok,
                        RecvError::Bound as u8
                    );
                    if job.checks_receptions(v) {
                        for (di, c) in deps(job, v, pkt.msg) {
                            let _ = writeln!(
                                out,
                                "           if :: ek == 1 && ed < 0 && !{c} -> ek = 2; ec = {}; ed = {di} :: else -> skip fi;",
                                RecvError::Blocked as u8
                            );
                        }
                    }
                    out.push_str("           if\n           :: ek == 1 ->\n");
                    apply(job, v, pkt, t, &mut out, "             ");
                    out.push_str("           :: else -> err = 1\n           fi\n");
                    if t.guard.is_none() {
                        break;
                    }
                    prior.push(g);
                }
                if prior.len() == cands.len() {
                    let _ = writeln!(
                        out,
                        "         :: else -> ek = 2; ec = {}; err = 1",
                        RecvError::GuardFailed as u8
                    );
                }
                out.push_str("         fi\n");
            }
        }
        let _ = writeln!(
            out,
            "       :: else -> ek = 2; ec = {}; err = 1",
            RecvError::Unexpected as u8
        );
        out.push_str("       fi;\n");
        let _ = writeln!(
            out,
            "       {}",
            post(&format!("%d {vi} %d %d %d"), "ek, h, ec, ed, ")
        );
        out.push_str("       h = 0; ek = 0; ec = 0; ed = 0 }\n");
        out.push_str("  od\n}\n");
    }
    let _ = writeln!(
        out,
        "\ninit {{\n  printf(\"I {fmt}\\n\", {args});\n  atomic {{"
    );
    for v in job.views() {
        let _ = writeln!(out, "    run V{}();", job.view_index(v));
    }
    out.push_str("  }\n}\n");
    out
}
