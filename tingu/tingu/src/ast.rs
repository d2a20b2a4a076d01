//! The syntax tree of Tingu files. States are kept flat, each pointing at
//! its enclosing superstate, because every later pass walks them that way.

use crate::diag::Pos;
pub use tingu_rt::Direction;

/// A name and where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ident {
    /// The text.
    pub name: String,
    /// Where it starts.
    pub pos: Pos,
}

/// A fixed-size field or variable type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    /// Unsigned integer of 8, 16, 32 or 64 bits.
    U(u8),
    /// Signed integer of 8, 16, 32 or 64 bits.
    I(u8),
    /// One byte on the wire, 0 or 1.
    Bool,
}

impl Ty {
    /// Bytes on the wire.
    pub fn size(self) -> usize {
        match self {
            Ty::U(bits) | Ty::I(bits) => usize::from(bits / 8),
            Ty::Bool => 1,
        }
    }

    /// The Rust (and Tingu) spelling.
    pub fn rust(self) -> String {
        match self {
            Ty::U(bits) => format!("u{bits}"),
            Ty::I(bits) => format!("i{bits}"),
            Ty::Bool => "bool".into(),
        }
    }

    /// Parses a type name.
    pub fn parse(name: &str) -> Option<Ty> {
        Some(match name {
            "u8" => Ty::U(8),
            "u16" => Ty::U(16),
            "u32" => Ty::U(32),
            "u64" => Ty::U(64),
            "i8" => Ty::I(8),
            "i16" => Ty::I(16),
            "i32" => Ty::I(32),
            "i64" => Ty::I(64),
            "bool" => Ty::Bool,
            _ => return None,
        })
    }
}

/// A parsed file.
#[derive(Clone, Debug, Default)]
pub struct File {
    /// Protocols, in file order.
    pub protocols: Vec<Protocol>,
    /// Components, in file order.
    pub components: Vec<Component>,
}

/// A message argument.
#[derive(Clone, Debug)]
pub struct Arg {
    /// Field name.
    pub name: Ident,
    /// Field type.
    pub ty: Ty,
}

/// `in name(args);` or `out name(args);`
#[derive(Clone, Debug)]
pub struct MessageDecl {
    /// Declared direction.
    pub dir: Direction,
    /// Name.
    pub name: Ident,
    /// Arguments, in wire order.
    pub args: Vec<Arg>,
}

impl MessageDecl {
    /// Bytes of its encoding: the 16-bit id, then the fields.
    pub fn wire_bytes(&self) -> usize {
        2 + self.args.iter().map(|a| a.ty.size()).sum::<usize>()
    }
}

/// `var name: ty = init;`
#[derive(Clone, Debug)]
pub struct VarDecl {
    /// Name.
    pub name: Ident,
    /// Type.
    pub ty: Ty,
    /// Initial value (a literal).
    pub init: Expr,
}

/// `const NAME = value;` or `const NAME: type = value;`
#[derive(Clone, Debug)]
pub struct ConstDecl {
    /// Name.
    pub name: Ident,
    /// The type written out, if any (otherwise it is inferred from the
    /// constant's uses).
    pub ty: Option<Ty>,
    /// Value.
    pub value: i128,
    /// Where the value is written.
    pub value_pos: Pos,
}

impl ConstDecl {
    /// `: type` when the type is written out, as the spec writes it.
    pub fn type_text(&self) -> String {
        self.ty
            .map(|t| format!(": {}", t.rust()))
            .unwrap_or_default()
    }
}

/// A state or superstate.
#[derive(Clone, Debug)]
pub struct State {
    /// Name.
    pub name: Ident,
    /// Index of the enclosing superstate.
    pub parent: Option<usize>,
    /// A superstate groups states and contributes transitions to all of them.
    pub is_super: bool,
    /// Marked `initial`.
    pub initial: bool,
    /// Marked `final`.
    pub is_final: bool,
    /// `timeout N ms`.
    pub timeout_ms: Option<u64>,
    /// Transitions written inside this state, in order.
    pub transitions: Vec<Transition>,
}

/// `?msg [guard] / var = expr, ... -> target;` (no target: stay).
#[derive(Clone, Debug)]
pub struct Transition {
    /// Direction written (`?` or `!`).
    pub dir: Direction,
    /// Message name.
    pub msg: Ident,
    /// Guard, if any.
    pub guard: Option<Expr>,
    /// Assignments, evaluated on the values before the transition.
    pub actions: Vec<(Ident, Expr)>,
    /// Target state; `None` is an internal transition.
    pub target: Option<Ident>,
}

/// Binary operators, loosest binding first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    /// `||`
    Or,
    /// `&&`
    And,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `+`
    Add,
    /// `-`
    Sub,
}

impl BinOp {
    /// Binding strength: higher binds tighter.
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And => 2,
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => 3,
            BinOp::Add | BinOp::Sub => 4,
        }
    }

    /// The operator as written.
    pub fn text(self) -> &'static str {
        match self {
            BinOp::Or => "||",
            BinOp::And => "&&",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Add => "+",
            BinOp::Sub => "-",
        }
    }
}

/// A guard or action expression.
#[derive(Clone, Debug)]
pub enum Expr {
    /// Integer literal.
    Int(i128, Pos),
    /// `true` / `false`.
    Bool(bool, Pos),
    /// A message argument, variable or constant.
    Name(Ident),
    /// `!e`
    Not(Box<Expr>, Pos),
    /// `-e`
    Neg(Box<Expr>, Pos),
    /// `a op b`
    Bin(BinOp, Box<Expr>, Box<Expr>, Pos),
}

impl Expr {
    /// Where the expression starts.
    pub fn pos(&self) -> Pos {
        match self {
            Expr::Int(_, p) | Expr::Bool(_, p) | Expr::Not(_, p) | Expr::Neg(_, p) => *p,
            Expr::Bin(_, a, _, _) => a.pos(),
            Expr::Name(i) => i.pos,
        }
    }

    /// Canonical text, used for labels and to compare guards.
    pub fn text(&self) -> String {
        match self {
            Expr::Int(v, _) => v.to_string(),
            Expr::Bool(b, _) => b.to_string(),
            Expr::Name(i) => i.name.clone(),
            Expr::Not(e, _) => format!("!{}", e.text_under(u8::MAX)),
            Expr::Neg(e, _) => format!("-{}", e.text_under(u8::MAX)),
            Expr::Bin(op, a, b, _) => {
                // Left-associative: the right operand needs parentheses at equal precedence.
                format!(
                    "{} {} {}",
                    a.text_under(op.precedence()),
                    op.text(),
                    b.text_under(op.precedence() + 1)
                )
            }
        }
    }

    /// Text, parenthesised if it binds looser than `min`.
    fn text_under(&self, min: u8) -> String {
        match self {
            Expr::Bin(op, ..) if op.precedence() < min => format!("({})", self.text()),
            _ => self.text(),
        }
    }
}

/// `port name: [mirror] Protocol;`
#[derive(Clone, Debug)]
pub struct Port {
    /// Port name.
    pub name: Ident,
    /// Client side of the protocol.
    pub mirror: bool,
    /// Protocol name.
    pub protocol: Ident,
}

/// `depend p.m, q.* on port in {states};`
#[derive(Clone, Debug)]
pub struct Depend {
    /// Constrained messages: port and message (`None` for `*`).
    pub targets: Vec<(Ident, Option<Ident>)>,
    /// The port whose state decides.
    pub on: Ident,
    /// States (or superstates) of `on` in which the messages are allowed.
    pub states: Vec<Ident>,
}

/// `subport name: [mirror] Protocol max N spawned by port.msg(key);`
#[derive(Clone, Debug)]
pub struct Subport {
    /// Name of the subport array.
    pub name: Ident,
    /// Client side of the protocol.
    pub mirror: bool,
    /// Protocol of every instance.
    pub protocol: Ident,
    /// Capacity.
    pub max: u64,
    /// Position of the capacity.
    pub max_pos: Pos,
    /// Port carrying the spawning message.
    pub port: Ident,
    /// Spawning message.
    pub msg: Ident,
    /// Argument of the spawning message that names the instance.
    pub key: Ident,
}

/// A component: ports, dependencies and subports.
#[derive(Clone, Debug)]
pub struct Component {
    /// Name.
    pub name: Ident,
    /// Fixed ports.
    pub ports: Vec<Port>,
    /// Dependencies.
    pub depends: Vec<Depend>,
    /// Dynamically spawned subports.
    pub subports: Vec<Subport>,
}

/// A protocol.
#[derive(Clone, Debug)]
pub struct Protocol {
    /// Name.
    pub name: Ident,
    /// Messages; the wire id of message `i` is `i + 1`.
    pub messages: Vec<MessageDecl>,
    /// Variables.
    pub vars: Vec<VarDecl>,
    /// Constants.
    pub consts: Vec<ConstDecl>,
    /// States in declaration order (parents before children).
    pub states: Vec<State>,
}
