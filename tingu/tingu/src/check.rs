//! Name resolution, type checking and the protocol checks: undeclared
//! messages, unreachable states, non-deterministic transitions and states
//! that cannot reach a final state; names that have no Rust spelling
//! (see [`crate::names`]). Produces the [`Model`] the back ends use.
//!
//! Every check is linear in the size of the input (or N log N): lookups go
//! through one name index per protocol, and the graph checks are single
//! traversals, so generated specs with 100,000s of states check in well
//! under a second.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::ast::*;
use crate::diag::{Error, Pos};
use crate::names;

/// Messages a protocol can have: wire ids are 16 bits, and 0 is not one.
pub const MAX_MESSAGES: usize = u16::MAX as usize;

/// Instances a subport can have. Each open instance keeps its protocol
/// observer inside the component's observer (no heap), so the array must
/// stay small enough for a PD's memory.
pub const MAX_SUBPORTS: u64 = 1024;

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
}

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

/// Names other places in messages: `line:col` in the same file,
/// `path:line:col` in another one.
struct Places<'a> {
    paths: &'a [&'a str],
}

impl Places<'_> {
    fn at(&self, here: Pos, there: Pos) -> String {
        if here.file == there.file {
            format!("{}:{}", there.line, there.col)
        } else {
            let path = self.paths.get(there.file).copied().unwrap_or("?");
            format!("{path}:{}:{}", there.line, there.col)
        }
    }
}

/// The names of one protocol, looked up in constant time (the first
/// declaration wins; later ones are reported as duplicates).
struct Index<'a> {
    messages: HashMap<&'a str, usize>,
    states: HashMap<&'a str, usize>,
    /// Variables (with their type) and constants (`None`).
    values: HashMap<&'a str, (Option<Ty>, &'a Ident)>,
}

impl<'a> Index<'a> {
    fn new(p: &'a Protocol) -> Self {
        let mut messages = HashMap::new();
        for (i, m) in p.messages.iter().enumerate() {
            messages.entry(m.name.name.as_str()).or_insert(i);
        }
        let mut states = HashMap::new();
        for (i, s) in p.states.iter().enumerate() {
            states.entry(s.name.name.as_str()).or_insert(i);
        }
        let mut values = HashMap::new();
        for v in &p.vars {
            values
                .entry(v.name.name.as_str())
                .or_insert((Some(v.ty), &v.name));
        }
        for c in &p.consts {
            values
                .entry(c.name.name.as_str())
                .or_insert((None, &c.name));
        }
        Index {
            messages,
            states,
            values,
        }
    }

    fn var(&self, name: &str) -> Option<Ty> {
        self.values.get(name).and_then(|(ty, _)| *ty)
    }
}

struct Scope<'a> {
    index: &'a Index<'a>,
    msg: Option<&'a MessageDecl>,
}

impl Scope<'_> {
    fn arg(&self, name: &str) -> Option<&Arg> {
        self.msg
            .and_then(|m| m.args.iter().find(|a| a.name.name == name))
    }

    fn lookup(&self, name: &Ident) -> Result<Kind, Error> {
        if let Some(a) = self.arg(&name.name) {
            return Ok(kind_of(a.ty));
        }
        if let Some((ty, _)) = self.index.values.get(name.name.as_str()) {
            return Ok(ty.map_or(Kind::Int, kind_of));
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

    /// Whether `e` reads an argument or a variable (constants and literals
    /// are fixed when the spec is compiled).
    fn varies(&self, e: &Expr) -> bool {
        match e {
            Expr::Int(..) | Expr::Bool(..) => false,
            Expr::Name(n) => self.arg(&n.name).is_some() || self.index.var(&n.name).is_some(),
            Expr::Not(a, _) | Expr::Neg(a, _) => self.varies(a),
            Expr::Bin(_, a, b, _) => self.varies(a) || self.varies(b),
        }
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
        // Rust types an integer comparison of two constants as i32, where
        // a large literal does not fit; such a comparison never changes
        // anyway, so it is a mistake in the spec.
        let compared = |a: &Expr, b: &Expr| -> Result<(), Error> {
            if self.varies(a) || self.varies(b) {
                return Ok(());
            }
            Err(Error::new(
                e.pos(),
                format!(
                    "`{}` compares constants only, so it never changes; compare an argument or a variable",
                    e.text()
                ),
            ))
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
                        if k == Kind::Int {
                            compared(a, b)?;
                        }
                        Kind::Bool
                    }
                    BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                        want(a, Kind::Int, &ctx)?;
                        want(b, Kind::Int, &ctx)?;
                        compared(a, b)?;
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

fn dup_check<'a>(
    names: impl Iterator<Item = &'a Ident>,
    what: &str,
    places: &Places,
    errs: &mut Vec<Error>,
) {
    let mut seen: HashMap<&str, Pos> = HashMap::new();
    for n in names {
        if let Some(first) = seen.get(n.name.as_str()) {
            errs.push(Error::new(
                n.pos,
                format!(
                    "duplicate {what} `{}` (first declared at {})",
                    n.name,
                    places.at(n.pos, *first)
                ),
            ));
        } else {
            seen.insert(&n.name, n.pos);
        }
    }
}

/// A name that becomes a Rust field (arguments, variables, ports): an
/// identifier in snake_case, and none the generated code uses itself.
fn field_name_check(n: &Ident, what: &str, reserved: &[&str], errs: &mut Vec<Error>) {
    let name = n.name.as_str();
    let problem = if names::is_keyword(name) {
        format!("`{name}` is a Rust keyword and cannot name a {what}")
    } else if !names::is_identifier(name) {
        format!("`{name}` cannot name a {what}: it is not a Rust identifier")
    } else if reserved.contains(&name) {
        format!("`{name}` is reserved and cannot name a {what}")
    } else if !names::is_snake_case(name) {
        let words: Vec<&str> = name.split('_').filter(|w| !w.is_empty()).collect();
        let fixed = snake(&words.join("_"));
        format!(
            "{what} `{name}` must be written in snake_case (it becomes a Rust field): `{fixed}`"
        )
    } else {
        return;
    };
    errs.push(Error::new(n.pos, problem));
}

/// Names that become Rust enum variants through [`pascal`] (messages,
/// states): each must give an identifier, and no two the same one.
fn variant_names<'a>(
    idents: impl Iterator<Item = &'a Ident>,
    what: &str,
    places: &Places,
    errs: &mut Vec<Error>,
) {
    let mut seen: HashMap<String, &Ident> = HashMap::new();
    for n in idents {
        let rust = pascal(&n.name);
        if !rust.starts_with(|c: char| c.is_ascii_alphabetic()) {
            errs.push(Error::new(
                n.pos,
                format!(
                    "`{}` cannot name a {what}: its Rust name would be `{rust}`, which is not an identifier; start it with a letter",
                    n.name
                ),
            ));
        } else if names::is_keyword(&rust) {
            errs.push(Error::new(
                n.pos,
                format!(
                    "`{}` cannot name a {what}: its Rust name `{rust}` is a keyword",
                    n.name
                ),
            ));
        } else {
            match seen.get(&rust) {
                // The same name twice is reported as a duplicate.
                Some(first) if first.name != n.name => errs.push(Error::new(
                    n.pos,
                    format!(
                        "{what} `{}` and {what} `{}` at {} both become the Rust name `{rust}`; rename one",
                        n.name,
                        first.name,
                        places.at(n.pos, first.pos)
                    ),
                )),
                Some(_) => {}
                None => {
                    seen.insert(rust, n);
                }
            }
        }
    }
}

/// The checks of an initial value: a plain literal of the type, so that
/// the generated Rust initialiser is valid as written.
fn initial_value_ok(ty: Ty, e: &Expr) -> bool {
    match (ty, e) {
        (Ty::Bool, Expr::Bool(..)) => true,
        (Ty::Bool, _) => false,
        (ty, Expr::Int(v, _)) => fits(*v, ty),
        (Ty::I(_), Expr::Neg(a, _)) => matches!(**a, Expr::Int(v, _) if fits(-v, ty)),
        _ => false,
    }
}

fn range_text(ty: Ty) -> String {
    match ty {
        Ty::U(bits) => format!("from 0 to {}", (1u128 << bits) - 1),
        Ty::I(bits) => format!(
            "from -{} to {}",
            1u128 << (bits - 1),
            (1u128 << (bits - 1)) - 1
        ),
        Ty::Bool => "`true` or `false`".into(),
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
fn check_protocol(p: &Protocol, index: &Index, places: &Places, errs: &mut Vec<Error>) {
    let before = errs.len();
    dup_check(p.messages.iter().map(|m| &m.name), "message", places, errs);
    dup_check(p.states.iter().map(|s| &s.name), "state", places, errs);
    dup_check(
        p.vars
            .iter()
            .map(|v| &v.name)
            .chain(p.consts.iter().map(|c| &c.name)),
        "variable or constant",
        places,
        errs,
    );
    variant_names(p.messages.iter().map(|m| &m.name), "message", places, errs);
    variant_names(p.states.iter().map(|s| &s.name), "state", places, errs);
    if p.messages.is_empty() {
        errs.push(Error::new(
            p.name.pos,
            format!(
                "protocol `{}` declares no messages; declare at least one with `in` or `out`",
                p.name.name
            ),
        ));
    }
    if let Some(m) = p.messages.get(MAX_MESSAGES) {
        errs.push(Error::new(
            m.name.pos,
            format!(
                "protocol `{}` has more than {MAX_MESSAGES} messages: wire ids are 16 bits",
                p.name.name
            ),
        ));
    }
    for m in &p.messages {
        dup_check(m.args.iter().map(|a| &a.name), "argument", places, errs);
        let size = m.wire_bytes();
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
            field_name_check(&a.name, "message argument", &names::ARGUMENT_RESERVED, errs);
            if let Some((_, v)) = index.values.get(a.name.name.as_str()) {
                errs.push(Error::new(
                    a.name.pos,
                    format!(
                        "argument `{}` has the name of the variable or constant declared at {}",
                        a.name.name,
                        places.at(a.name.pos, v.pos)
                    ),
                ));
            }
        }
    }
    for v in &p.vars {
        field_name_check(&v.name, "variable", &names::VARIABLE_RESERVED, errs);
        if !initial_value_ok(v.ty, &v.init) {
            errs.push(Error::new(
                v.init.pos(),
                format!(
                    "initial value of `{}` must be a plain {} literal {} (found `{}`)",
                    v.name.name,
                    v.ty.rust(),
                    range_text(v.ty),
                    v.init.text()
                ),
            ));
        }
    }
    for c in &p.consts {
        let name = c.name.name.as_str();
        let problem = if !names::is_identifier(name) {
            format!("`{name}` cannot name a constant: it is not a Rust identifier")
        } else if names::MODULE_ITEMS.contains(&name) {
            format!(
                "`{name}` cannot name a constant: the generated module of `{}` defines `{name}` itself",
                p.name.name
            )
        } else if !names::is_upper_case(name) {
            format!(
                "constant `{name}` must be written in UPPER_CASE (it becomes a Rust constant): `{}`",
                name.to_ascii_uppercase()
            )
        } else {
            continue;
        };
        errs.push(Error::new(c.name.pos, problem));
    }
    for c in &p.consts {
        let Some(ty) = c.ty else { continue };
        if ty == Ty::Bool {
            errs.push(Error::new(
                c.value_pos,
                format!(
                    "constant `{}` cannot be a bool: constants are integers",
                    c.name.name
                ),
            ));
        } else if !fits(c.value, ty) {
            errs.push(Error::new(
                c.value_pos,
                format!(
                    "constant `{}` = {} does not fit its type {}, which holds values {}",
                    c.name.name,
                    c.value,
                    ty.rust(),
                    range_text(ty)
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

    let mut children = vec![0usize; p.states.len()];
    for s in &p.states {
        if let Some(parent) = s.parent {
            children[parent] += 1;
        }
    }
    for (si, s) in p.states.iter().enumerate() {
        if s.is_super && children[si] == 0 {
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
            check_transition(p, index, t, errs);
        }
        check_determinism(s, places, errs);
    }
    if errs.len() > before {
        // Graph checks on a broken protocol would only repeat the errors.
        return;
    }
    check_graph(p, index, errs);
}

/// Index of the message `name` in `p`, or an "undeclared message" error at
/// the place that names it.
fn declared_message(
    p: &Protocol,
    index: &Index,
    name: &Ident,
    errs: &mut Vec<Error>,
) -> Option<usize> {
    let found = index.messages.get(name.name.as_str()).copied();
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

fn check_transition(p: &Protocol, index: &Index, t: &Transition, errs: &mut Vec<Error>) {
    let Some(mi) = declared_message(p, index, &t.msg, errs) else {
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
        index,
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
        let Some(ty) = index.var(&var.name) else {
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
            Ok(k) if k != kind_of(ty) => errs.push(Error::new(
                e.pos(),
                format!(
                    "`{}` is {}, but `{}` is {}",
                    e.text(),
                    kind_name(k),
                    var.name,
                    ty.rust()
                ),
            )),
            Ok(_) => {}
            Err(err) => errs.push(err),
        }
    }
    if let Some(target) = &t.target {
        match index.states.get(target.name.as_str()) {
            None => errs.push(Error::new(
                target.pos,
                format!(
                    "unknown state `{}` in protocol `{}`",
                    target.name, p.name.name
                ),
            )),
            Some(&ti) if p.states[ti].is_super => errs.push(Error::new(
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

/// Two transitions of one state on one message conflict when either is
/// unguarded or their guards read the same. Each transition is reported
/// once, against the first earlier one it conflicts with.
fn check_determinism(s: &State, places: &Places, errs: &mut Vec<Error>) {
    #[derive(Default)]
    struct Seen<'a> {
        first: Option<&'a Transition>,
        unguarded: Option<&'a Transition>,
        guards: HashMap<String, &'a Transition>,
    }
    if s.transitions.len() < 2 {
        return;
    }
    let mut by_msg: HashMap<&str, Seen> = HashMap::new();
    for t in &s.transitions {
        let seen = by_msg.entry(t.msg.name.as_str()).or_default();
        let guard = t.guard.as_ref().map(Expr::text);
        let clash = match &guard {
            None => seen.first.map(|u| (u, "at least one of them is unguarded")),
            Some(g) => {
                let unguarded = seen.unguarded;
                let same = seen.guards.get(g).copied();
                let earliest = match (unguarded, same) {
                    (Some(u), Some(v)) if v.msg.pos < u.msg.pos => Some(v),
                    (Some(u), _) => Some(u),
                    (None, v) => v,
                };
                earliest.map(|u| {
                    if u.guard.is_none() {
                        (u, "at least one of them is unguarded")
                    } else {
                        (u, "their guards are identical")
                    }
                })
            }
        };
        if let Some((u, why)) = clash {
            errs.push(Error::new(
                t.msg.pos,
                format!(
                    "non-deterministic transitions on `{}` in state `{}`: this one and the one at {} can both fire ({why})",
                    t.msg.name,
                    s.name.name,
                    places.at(t.msg.pos, u.msg.pos)
                ),
            ));
        }
        seen.first.get_or_insert(t);
        match guard {
            None => {
                seen.unguarded.get_or_insert(t);
            }
            Some(g) => {
                seen.guards.entry(g).or_insert(t);
            }
        }
    }
}

/// Reachability from the initial state, and (with final states) whether
/// each reachable state can still end. States and superstates are the
/// nodes; a transition is an edge from the state that declares it, and
/// every state has an edge to its superstate (whose transitions it
/// inherits), so each pass is one linear traversal.
fn check_graph(p: &Protocol, index: &Index, errs: &mut Vec<Error>) {
    let n = p.states.len();
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (si, s) in p.states.iter().enumerate() {
        edges[si].extend(
            s.transitions
                .iter()
                .filter_map(|t| t.target.as_ref())
                .filter_map(|t| index.states.get(t.name.as_str()).copied()),
        );
        edges[si].extend(s.parent);
    }
    let init = p.initial();
    let mut reached = vec![false; n];
    let mut queue = VecDeque::from([init]);
    reached[init] = true;
    while let Some(s) = queue.pop_front() {
        for &t in &edges[s] {
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
    // Backwards from the final states along the reversed edges.
    let mut back: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (s, out) in edges.iter().enumerate() {
        for &t in out {
            back[t].push(s);
        }
    }
    let mut can_end: Vec<bool> = p.states.iter().map(|s| s.is_final).collect();
    let mut queue: VecDeque<usize> = (0..n).filter(|&s| can_end[s]).collect();
    while let Some(t) = queue.pop_front() {
        for &s in &back[t] {
            if !can_end[s] {
                can_end[s] = true;
                queue.push_back(s);
            }
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

fn check_component(
    c: &Component,
    protocols: &HashMap<&str, (&Protocol, Index)>,
    places: &Places,
    errs: &mut Vec<Error>,
) {
    let find = |n: &Ident, errs: &mut Vec<Error>| {
        let p = protocols.get(n.name.as_str());
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
        places,
        errs,
    );
    component_methods(c, places, errs);
    // Each fixed port is also a type of the component's `ports` module.
    variant_names(c.ports.iter().map(|p| &p.name), "port", places, errs);
    let mut port_proto: HashMap<&str, Option<&(&Protocol, Index)>> = HashMap::new();
    let mut fixed = HashSet::new();
    for p in &c.ports {
        field_name_check(&p.name, "port", &[], errs);
        port_proto.insert(&p.name.name, find(&p.protocol, errs));
        fixed.insert(p.name.name.as_str());
    }
    for s in &c.subports {
        field_name_check(&s.name, "subport", &[], errs);
        if s.max > MAX_SUBPORTS {
            errs.push(Error::new(
                s.max_pos,
                format!(
                    "subport `{}` may have at most {MAX_SUBPORTS} instances: each open one keeps a protocol observer inside the component's observer",
                    s.name.name
                ),
            ));
        }
        port_proto.insert(&s.name.name, find(&s.protocol, errs));
        if !fixed.contains(s.port.name.as_str()) {
            errs.push(Error::new(
                s.port.pos,
                format!("`{}` is not a port of `{}`", s.port.name, c.name.name),
            ));
            continue;
        }
        let Some(Some((proto, index))) = port_proto.get(s.port.name.as_str()) else {
            continue;
        };
        let Some(mi) = declared_message(proto, index, &s.msg, errs) else {
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
                Some(Some((proto, index))) => {
                    if let Some(m) = msg {
                        declared_message(proto, index, m, errs);
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
        if let Some(Some((proto, index))) = port_proto.get(d.on.name.as_str()) {
            for st in d
                .states
                .iter()
                .filter(|st| !index.states.contains_key(st.name.as_str()))
            {
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

/// The generated component observer has a method per port
/// (`observe_<port>`) and three per subport (`observe_<sub>`, `<sub>`,
/// `<sub>_open`) besides its own; no two may share a name.
fn component_methods(c: &Component, places: &Places, errs: &mut Vec<Error>) {
    let mut owners: Vec<(&Ident, Vec<String>)> = c
        .ports
        .iter()
        .map(|p| (&p.name, vec![format!("observe_{}", p.name.name)]))
        .collect();
    owners.extend(c.subports.iter().map(|s| {
        let n = &s.name.name;
        (
            &s.name,
            vec![format!("observe_{n}"), n.clone(), format!("{n}_open")],
        )
    }));
    owners.sort_by_key(|(n, _)| n.pos);
    let mut taken: HashMap<String, Option<&Ident>> = names::COMPONENT_METHODS
        .iter()
        .map(|m| (m.to_string(), None))
        .collect();
    let mut dups = HashSet::new();
    for (owner, methods) in owners {
        for m in methods {
            match taken.get(&m) {
                // Two ports of one name are reported as duplicates.
                Some(Some(first)) if first.name == owner.name => {}
                Some(first) if dups.insert(&owner.name) => {
                    let other = match first {
                        Some(f) => format!(" for `{}` at {}", f.name, places.at(owner.pos, f.pos)),
                        None => " of its own".into(),
                    };
                    errs.push(Error::new(
                        owner.pos,
                        format!(
                            "`{}` would give the observer of `{}` a method `{m}`, which it already has{other}; rename it",
                            owner.name, c.name.name
                        ),
                    ));
                }
                Some(_) => {}
                None => {
                    taken.insert(m, Some(owner));
                }
            }
        }
    }
}

/// Checks everything; on success the model is ready for the back ends.
/// `paths[i]` names file `i`, for messages that point into another file.
pub fn check(files: Vec<File>, paths: &[&str]) -> Result<Model, Vec<Error>> {
    let places = Places { paths };
    let mut errs = Vec::new();
    let mut protocols: Vec<Protocol> = Vec::new();
    let mut components: Vec<Component> = Vec::new();
    for f in files {
        protocols.extend(f.protocols);
        components.extend(f.components);
    }
    dup_check(
        protocols
            .iter()
            .map(|p| &p.name)
            .chain(components.iter().map(|c| &c.name)),
        "protocol or component",
        &places,
        &mut errs,
    );
    let mut modules: HashMap<String, &Ident> = HashMap::new();
    for n in protocols
        .iter()
        .map(|p| &p.name)
        .chain(components.iter().map(|c| &c.name))
    {
        let module = snake(&n.name);
        if !names::is_identifier(&module) || !names::is_snake_case(&module) {
            errs.push(Error::new(
                n.pos,
                format!(
                    "`{}` cannot name a protocol or component: its Rust module would be `{module}`, which is {}",
                    n.name,
                    if names::is_keyword(&module) {
                        "a keyword"
                    } else {
                        "not a snake_case identifier"
                    }
                ),
            ));
            continue;
        }
        match modules.get(&module) {
            Some(first) if first.name != n.name => errs.push(Error::new(
                n.pos,
                format!(
                    "`{}` maps to the same Rust module as `{}` at {}",
                    n.name,
                    first.name,
                    places.at(n.pos, first.pos)
                ),
            )),
            Some(_) => {}
            None => {
                modules.insert(module, n);
            }
        }
    }
    let mut by_name: HashMap<&str, (&Protocol, Index)> = HashMap::new();
    for p in &protocols {
        let index = Index::new(p);
        check_protocol(p, &index, &places, &mut errs);
        by_name.entry(p.name.name.as_str()).or_insert((p, index));
    }
    for c in &components {
        check_component(c, &by_name, &places, &mut errs);
    }
    drop(by_name);
    if errs.is_empty() {
        Ok(Model {
            protocols,
            components,
        })
    } else {
        Err(errs)
    }
}
