//! Name resolution, type checking and the protocol checks: undeclared
//! messages, unreachable states, non-deterministic transitions and states
//! that cannot reach a final state. Produces the [`Model`] the back ends use.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::ast::*;
use crate::diag::{Error, Pos};

/// A checked set of protocols and components.
#[derive(Debug)]
pub struct Model {
    /// Every protocol of every file.
    pub protocols: Vec<Protocol>,
    /// Every component of every file.
    pub components: Vec<Component>,
}

impl Model {
    /// Looks a protocol up by name.
    pub fn protocol(&self, name: &str) -> Option<&Protocol> {
        self.protocols.iter().find(|p| p.name.name == name)
    }
}

impl Protocol {
    /// Index of a message by name.
    pub fn message(&self, name: &str) -> Option<usize> {
        self.messages.iter().position(|m| m.name.name == name)
    }

    /// Index of a state by name.
    pub fn state(&self, name: &str) -> Option<usize> {
        self.states.iter().position(|s| s.name.name == name)
    }

    /// The initial state (the checker guarantees exactly one).
    pub fn initial(&self) -> usize {
        self.states.iter().position(|s| s.initial).unwrap_or(0)
    }

    /// Indices of the leaf states, in declaration order.
    pub fn leaves(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.states.len()).filter(|&i| !self.states[i].is_super)
    }

    /// `s` followed by its enclosing superstates, innermost first.
    pub fn ancestry(&self, s: usize) -> Vec<usize> {
        let mut out = vec![s];
        while let Some(p) = self.states[*out.last().unwrap_or(&s)].parent {
            out.push(p);
        }
        out
    }

    /// Whether `leaf` is `state` or nested inside it.
    pub fn within(&self, leaf: usize, state: usize) -> bool {
        self.ancestry(leaf).contains(&state)
    }

    /// Transitions on message `msg` that apply in `leaf`, in priority
    /// order: the state's own, then each enclosing superstate's.
    pub fn candidates(&self, leaf: usize, msg: usize) -> Vec<&Transition> {
        let name = &self.messages[msg].name.name;
        self.ancestry(leaf)
            .into_iter()
            .flat_map(|s| self.states[s].transitions.iter())
            .filter(|t| &t.msg.name == name)
            .collect()
    }

    fn successors(&self, leaf: usize) -> Vec<usize> {
        self.ancestry(leaf)
            .into_iter()
            .flat_map(|s| self.states[s].transitions.iter())
            .filter_map(|t| t.target.as_ref().and_then(|n| self.state(&n.name)))
            .collect()
    }
}

/// Rust keywords cannot name fields of generated structs.
const RESERVED: [&str; 38] = [
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub",
    "ref", "return", "self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use",
    "where", "while", "yield",
];

/// Items of a generated protocol module that constants live beside.
const GENERATED_ITEMS: [&str; 2] = ["NAME", "HASH"];

/// Helper names used by generated code; fields must not shadow them.
const GENERATED: [&str; 3] = ["state", "entered_ns", "history"];

/// `EthernetController` -> `ethernet_controller`.
pub fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `tx_packet` or `txPacket` -> `TxPacket`.
pub fn pascal(name: &str) -> String {
    name.split('_')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Int,
    Bool,
}

fn kind_of(ty: Ty) -> Kind {
    if ty == Ty::Bool {
        Kind::Bool
    } else {
        Kind::Int
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Int => "an integer",
        Kind::Bool => "a bool",
    }
}

struct Scope<'a> {
    proto: &'a Protocol,
    msg: Option<&'a MessageDecl>,
}

impl Scope<'_> {
    fn lookup(&self, name: &Ident) -> Result<Kind, Error> {
        if let Some(a) = self
            .msg
            .and_then(|m| m.args.iter().find(|a| a.name.name == name.name))
        {
            return Ok(kind_of(a.ty));
        }
        if let Some(v) = self.proto.vars.iter().find(|v| v.name.name == name.name) {
            return Ok(kind_of(v.ty));
        }
        if self.proto.consts.iter().any(|c| c.name.name == name.name) {
            return Ok(Kind::Int);
        }
        let what = match self.msg {
            Some(m) => format!("an argument of `{}`, a variable or a constant", m.name.name),
            None => "a variable or a constant".to_string(),
        };
        Err(Error::new(
            name.pos,
            format!("unknown name `{}`: not {what}", name.name),
        ))
    }

    fn expr(&self, e: &Expr) -> Result<Kind, Error> {
        let want = |e: &Expr, k: Kind, ctx: &str| -> Result<(), Error> {
            let got = self.expr(e)?;
            if got == k {
                Ok(())
            } else {
                Err(Error::new(
                    e.pos(),
                    format!(
                        "{ctx} needs {}, but `{}` is {}",
                        kind_name(k),
                        e.text(),
                        kind_name(got)
                    ),
                ))
            }
        };
        Ok(match e {
            Expr::Int(..) => Kind::Int,
            Expr::Bool(..) => Kind::Bool,
            Expr::Name(n) => self.lookup(n)?,
            Expr::Not(a, _) => {
                want(a, Kind::Bool, "`!`")?;
                Kind::Bool
            }
            Expr::Neg(a, _) => {
                want(a, Kind::Int, "`-`")?;
                Kind::Int
            }
            Expr::Bin(op, a, b, _) => {
                let ctx = format!("`{}`", op.text());
                match op {
                    BinOp::Or | BinOp::And => {
                        want(a, Kind::Bool, &ctx)?;
                        want(b, Kind::Bool, &ctx)?;
                        Kind::Bool
                    }
                    BinOp::Eq | BinOp::Ne => {
                        let k = self.expr(a)?;
                        want(b, k, &ctx)?;
                        Kind::Bool
                    }
                    BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                        want(a, Kind::Int, &ctx)?;
                        want(b, Kind::Int, &ctx)?;
                        Kind::Bool
                    }
                    BinOp::Add | BinOp::Sub => {
                        want(a, Kind::Int, &ctx)?;
                        want(b, Kind::Int, &ctx)?;
                        Kind::Int
                    }
                }
            }
        })
    }
}

fn dup_check<'a>(names: impl Iterator<Item = &'a Ident>, what: &str, errs: &mut Vec<Error>) {
    let mut seen: HashMap<&str, Pos> = HashMap::new();
    for n in names {
        if let Some(first) = seen.get(n.name.as_str()) {
            errs.push(Error::new(
                n.pos,
                format!(
                    "duplicate {what} `{}` (first declared at {}:{})",
                    n.name, first.line, first.col
                ),
            ));
        } else {
            seen.insert(&n.name, n.pos);
        }
    }
}

fn field_name_check(n: &Ident, what: &str, errs: &mut Vec<Error>) {
    if RESERVED.contains(&n.name.as_str()) || GENERATED.contains(&n.name.as_str()) {
        errs.push(Error::new(
            n.pos,
            format!("`{}` is reserved and cannot name a {what}", n.name),
        ));
    }
}

fn literal(e: &Expr) -> Option<i128> {
    match e {
        Expr::Int(v, _) => Some(*v),
        Expr::Neg(a, _) => literal(a).map(|v| -v),
        _ => None,
    }
}

fn fits(v: i128, ty: Ty) -> bool {
    match ty {
        Ty::U(bits) => v >= 0 && v < (1i128 << bits),
        Ty::I(bits) => v >= -(1i128 << (bits - 1)) && v < (1i128 << (bits - 1)),
        Ty::Bool => false,
    }
}

/// Checks one protocol, appending every problem found.
fn check_protocol(p: &Protocol, errs: &mut Vec<Error>) {
    let before = errs.len();
    dup_check(p.messages.iter().map(|m| &m.name), "message", errs);
    dup_check(p.states.iter().map(|s| &s.name), "state", errs);
    dup_check(
        p.vars
            .iter()
            .map(|v| &v.name)
            .chain(p.consts.iter().map(|c| &c.name)),
        "variable or constant",
        errs,
    );
    for m in &p.messages {
        dup_check(m.args.iter().map(|a| &a.name), "argument", errs);
        let size = 2 + m.args.iter().map(|a| a.ty.size()).sum::<usize>();
        if size > tingu_rt::SLOT {
            errs.push(Error::new(
                m.name.pos,
                format!(
                    "message `{}` needs {size} bytes but a slot holds {}",
                    m.name.name,
                    tingu_rt::SLOT
                ),
            ));
        }
        for a in &m.args {
            field_name_check(&a.name, "message argument", errs);
            let clash = p
                .vars
                .iter()
                .map(|v| &v.name)
                .chain(p.consts.iter().map(|c| &c.name))
                .find(|n| n.name == a.name.name);
            if let Some(v) = clash {
                errs.push(Error::new(
                    a.name.pos,
                    format!(
                        "argument `{}` has the name of the variable or constant declared at {}:{}",
                        a.name.name, v.pos.line, v.pos.col
                    ),
                ));
            }
        }
    }
    for c in p
        .consts
        .iter()
        .filter(|c| GENERATED_ITEMS.contains(&c.name.name.as_str()))
    {
        errs.push(Error::new(
            c.name.pos,
            format!(
                "constant `{}` would clash with the generated `{}` of the protocol's module",
                c.name.name, c.name.name
            ),
        ));
    }
    for v in &p.vars {
        field_name_check(&v.name, "variable", errs);
        let ok = match (v.ty, &v.init) {
            (Ty::Bool, Expr::Bool(..)) => true,
            (Ty::Bool, _) => false,
            (ty, e) => literal(e).is_some_and(|x| fits(x, ty)),
        };
        if !ok {
            errs.push(Error::new(
                v.init.pos(),
                format!(
                    "initial value of `{}` must be a {} literal in range",
                    v.name.name,
                    v.ty.rust()
                ),
            ));
        }
    }

    let initials: Vec<&State> = p.states.iter().filter(|s| s.initial).collect();
    match initials.as_slice() {
        [] => errs.push(Error::new(
            p.name.pos,
            format!("protocol `{}` has no initial state", p.name.name),
        )),
        [_] => {}
        [_, second, ..] => errs.push(Error::new(
            second.name.pos,
            format!(
                "second initial state `{}` (protocol `{}` may have only one)",
                second.name.name, p.name.name
            ),
        )),
    }

    for (si, s) in p.states.iter().enumerate() {
        if s.is_super && !p.states.iter().any(|c| c.parent == Some(si)) {
            errs.push(Error::new(
                s.name.pos,
                format!("superstate `{}` contains no states", s.name.name),
            ));
        }
        if s.is_final && !s.transitions.is_empty() {
            errs.push(Error::new(
                s.transitions[0].msg.pos,
                format!(
                    "final state `{}` cannot have transitions: the protocol ends there",
                    s.name.name
                ),
            ));
        }
        for t in &s.transitions {
            check_transition(p, t, errs);
        }
        check_determinism(s, errs);
    }
    if errs.len() > before {
        // Graph checks on a broken protocol would only repeat the errors.
        return;
    }
    check_graph(p, errs);
}

/// Index of the message `name` in `p`, or an "undeclared message" error at
/// the place that names it.
fn declared_message(p: &Protocol, name: &Ident, errs: &mut Vec<Error>) -> Option<usize> {
    let found = p.message(&name.name);
    if found.is_none() {
        errs.push(Error::new(
            name.pos,
            format!(
                "undeclared message `{}` in protocol `{}`",
                name.name, p.name.name
            ),
        ));
    }
    found
}

fn check_transition(p: &Protocol, t: &Transition, errs: &mut Vec<Error>) {
    let Some(mi) = declared_message(p, &t.msg, errs) else {
        return;
    };
    let m = &p.messages[mi];
    if m.dir != t.dir {
        let (word, sigil) = match m.dir {
            Direction::In => ("in", '?'),
            Direction::Out => ("out", '!'),
        };
        errs.push(Error::new(
            t.msg.pos,
            format!(
                "message `{}` is declared `{word}`, so write `{sigil}{}`",
                m.name.name, m.name.name
            ),
        ));
    }
    let scope = Scope {
        proto: p,
        msg: Some(m),
    };
    if let Some(g) = &t.guard {
        match scope.expr(g) {
            Ok(Kind::Bool) => {}
            Ok(Kind::Int) => errs.push(Error::new(
                g.pos(),
                format!("guard `{}` is an integer, expected a bool", g.text()),
            )),
            Err(e) => errs.push(e),
        }
    }
    let mut assigned = HashSet::new();
    for (var, e) in &t.actions {
        let Some(v) = p.vars.iter().find(|v| v.name.name == var.name) else {
            errs.push(Error::new(
                var.pos,
                format!(
                    "cannot assign `{}`: not a variable of `{}`",
                    var.name, p.name.name
                ),
            ));
            continue;
        };
        if !assigned.insert(&var.name) {
            errs.push(Error::new(
                var.pos,
                format!("variable `{}` assigned twice in one transition", var.name),
            ));
        }
        match scope.expr(e) {
            Ok(k) if k != kind_of(v.ty) => errs.push(Error::new(
                e.pos(),
                format!(
                    "`{}` is {}, but `{}` is {}",
                    e.text(),
                    kind_name(k),
                    v.name.name,
                    v.ty.rust()
                ),
            )),
            Ok(_) => {}
            Err(err) => errs.push(err),
        }
    }
    if let Some(target) = &t.target {
        match p.state(&target.name) {
            None => errs.push(Error::new(
                target.pos,
                format!(
                    "unknown state `{}` in protocol `{}`",
                    target.name, p.name.name
                ),
            )),
            Some(ti) if p.states[ti].is_super => errs.push(Error::new(
                target.pos,
                format!(
                    "`{}` is a superstate; a transition must target one of its states",
                    target.name
                ),
            )),
            Some(_) => {}
        }
    }
}

fn check_determinism(s: &State, errs: &mut Vec<Error>) {
    for (i, t) in s.transitions.iter().enumerate() {
        for u in &s.transitions[..i] {
            if u.msg.name != t.msg.name {
                continue;
            }
            let why = match (&u.guard, &t.guard) {
                (None, _) | (_, None) => "at least one of them is unguarded",
                (Some(a), Some(b)) if a.text() == b.text() => "their guards are identical",
                _ => continue,
            };
            errs.push(Error::new(
                t.msg.pos,
                format!(
                    "non-deterministic transitions on `{}` in state `{}`: this one and the one at {}:{} can both fire ({why})",
                    t.msg.name, s.name.name, u.msg.pos.line, u.msg.pos.col
                ),
            ));
        }
    }
}

fn check_graph(p: &Protocol, errs: &mut Vec<Error>) {
    let n = p.states.len();
    let init = p.initial();
    let mut reached = vec![false; n];
    let mut queue = VecDeque::from([init]);
    reached[init] = true;
    while let Some(s) = queue.pop_front() {
        for t in p.successors(s) {
            if !reached[t] {
                reached[t] = true;
                queue.push_back(t);
            }
        }
    }
    for s in p.leaves() {
        if !reached[s] {
            errs.push(Error::new(
                p.states[s].name.pos,
                format!(
                    "state `{}` is unreachable from the initial state `{}`",
                    p.states[s].name.name, p.states[init].name.name
                ),
            ));
        }
    }
    if !p.states.iter().any(|s| s.is_final) {
        return;
    }
    // Backwards closure from the final states.
    let mut can_end: Vec<bool> = p.states.iter().map(|s| s.is_final).collect();
    loop {
        let mut changed = false;
        for s in p.leaves() {
            if !can_end[s] && p.successors(s).iter().any(|&t| can_end[t]) {
                can_end[s] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    for s in p.leaves() {
        if reached[s] && !can_end[s] {
            errs.push(Error::new(
                p.states[s].name.pos,
                format!(
                    "no final state of `{}` can be reached from state `{}`",
                    p.name.name, p.states[s].name.name
                ),
            ));
        }
    }
}

fn check_component(c: &Component, protocols: &[Protocol], errs: &mut Vec<Error>) {
    let find = |n: &Ident, errs: &mut Vec<Error>| {
        let p = protocols.iter().find(|p| p.name.name == n.name);
        if p.is_none() {
            errs.push(Error::new(n.pos, format!("unknown protocol `{}`", n.name)));
        }
        p
    };
    dup_check(
        c.ports
            .iter()
            .map(|p| &p.name)
            .chain(c.subports.iter().map(|s| &s.name)),
        "port",
        errs,
    );
    let mut port_proto: HashMap<&str, Option<&Protocol>> = HashMap::new();
    let mut fixed = HashSet::new();
    for p in &c.ports {
        field_name_check(&p.name, "port", errs);
        port_proto.insert(&p.name.name, find(&p.protocol, errs));
        fixed.insert(p.name.name.as_str());
    }
    for s in &c.subports {
        field_name_check(&s.name, "subport", errs);
        port_proto.insert(&s.name.name, find(&s.protocol, errs));
        if !fixed.contains(s.port.name.as_str()) {
            errs.push(Error::new(
                s.port.pos,
                format!("`{}` is not a port of `{}`", s.port.name, c.name.name),
            ));
            continue;
        }
        let Some(Some(proto)) = port_proto.get(s.port.name.as_str()) else {
            continue;
        };
        let Some(mi) = declared_message(proto, &s.msg, errs) else {
            continue;
        };
        match proto.messages[mi]
            .args
            .iter()
            .find(|a| a.name.name == s.key.name)
        {
            None => errs.push(Error::new(
                s.key.pos,
                format!("`{}` is not an argument of `{}`", s.key.name, s.msg.name),
            )),
            Some(a) if !matches!(a.ty, Ty::U(_)) => errs.push(Error::new(
                s.key.pos,
                format!(
                    "subport key `{}` must be an unsigned integer, not {}",
                    s.key.name,
                    a.ty.rust()
                ),
            )),
            Some(_) => {}
        }
    }
    for d in &c.depends {
        for (port, msg) in &d.targets {
            if !fixed.contains(port.name.as_str()) && port_proto.contains_key(port.name.as_str()) {
                errs.push(Error::new(
                    port.pos,
                    format!(
                        "`{}` is a subport; dependencies constrain fixed ports only",
                        port.name
                    ),
                ));
                continue;
            }
            match port_proto.get(port.name.as_str()) {
                None => errs.push(Error::new(
                    port.pos,
                    format!("`{}` is not a port of `{}`", port.name, c.name.name),
                )),
                Some(Some(proto)) => {
                    if let Some(m) = msg {
                        declared_message(proto, m, errs);
                    }
                }
                Some(None) => {}
            }
        }
        if !fixed.contains(d.on.name.as_str()) {
            errs.push(Error::new(
                d.on.pos,
                format!(
                    "`{}` is not a (non-sub)port of `{}`",
                    d.on.name, c.name.name
                ),
            ));
            continue;
        }
        if let Some(Some(proto)) = port_proto.get(d.on.name.as_str()) {
            for st in d.states.iter().filter(|st| proto.state(&st.name).is_none()) {
                errs.push(Error::new(
                    st.pos,
                    format!(
                        "unknown state `{}` in protocol `{}`",
                        st.name, proto.name.name
                    ),
                ));
            }
        }
    }
}

/// Checks everything; on success the model is ready for the back ends.
pub fn check(files: Vec<File>) -> Result<Model, Vec<Error>> {
    let mut errs = Vec::new();
    let protocols: Vec<Protocol> = files
        .iter()
        .flat_map(|f| f.protocols.iter().cloned())
        .collect();
    let components: Vec<Component> = files.into_iter().flat_map(|f| f.components).collect();
    dup_check(
        protocols
            .iter()
            .map(|p| &p.name)
            .chain(components.iter().map(|c| &c.name)),
        "protocol or component",
        &mut errs,
    );
    let mut modules: HashMap<String, &Ident> = HashMap::new();
    for n in protocols
        .iter()
        .map(|p| &p.name)
        .chain(components.iter().map(|c| &c.name))
    {
        match modules.get(&snake(&n.name)) {
            Some(first) if first.name != n.name => errs.push(Error::new(
                n.pos,
                format!(
                    "`{}` maps to the same Rust module as `{}` at {}:{}",
                    n.name, first.name, first.pos.line, first.pos.col
                ),
            )),
            Some(_) => {}
            None => {
                modules.insert(snake(&n.name), n);
            }
        }
    }
    for p in &protocols {
        check_protocol(p, &mut errs);
    }
    for c in &components {
        check_component(c, &protocols, &mut errs);
    }
    if errs.is_empty() {
        Ok(Model {
            protocols,
            components,
        })
    } else {
        Err(errs)
    }
}
