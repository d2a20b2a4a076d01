//! Recursive-descent parser for the grammar in the crate README.

use crate::ast::*;
use crate::diag::{Error, Pos};
use crate::lexer::{Tok, Token, lex};

/// Deepest expression tree accepted: operands of operands, counting each
/// operator, `!`, `-` and parenthesised group once. The checker and the
/// back ends walk expressions recursively, so this bounds their stack use
/// (a build script's debug build included) with a wide margin; real guards
/// stay far below it.
pub const MAX_EXPR_DEPTH: u32 = 128;

/// Deepest nesting of superstates accepted. Every leaf's candidate
/// transitions are looked up through its ancestors, so this also bounds
/// that walk.
pub const MAX_STATE_DEPTH: u32 = 32;

/// Parses one file; `file` is its index in the source set.
pub fn parse(src: &str, file: usize) -> Result<File, Error> {
    let mut p = Parser {
        toks: lex(src, file)?,
        i: 0,
        nest: 0,
    };
    let mut out = File::default();
    loop {
        match &p.peek().tok {
            Tok::Eof => return Ok(out),
            Tok::Ident(k) if k == "protocol" => {
                p.i += 1;
                out.protocols.push(p.protocol()?);
            }
            Tok::Ident(k) if k == "component" => {
                p.i += 1;
                out.components.push(p.component()?);
            }
            _ => return Err(p.expected("`protocol` or `component`")),
        }
    }
}

struct Parser {
    toks: Vec<Token>,
    i: usize,
    /// `!`, `-` and `(` around the expression being parsed.
    nest: u32,
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("`{s}`"),
        Tok::Int(v) => format!("`{v}`"),
        Tok::Punct(p) => format!("`{p}`"),
        Tok::Eof => "end of file".into(),
    }
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.toks[self.i]
    }

    fn pos(&self) -> Pos {
        self.peek().pos
    }

    fn expected(&self, what: &str) -> Error {
        Error::new(
            self.pos(),
            format!("expected {what}, found {}", describe(&self.peek().tok)),
        )
    }

    fn is_punct(&self, p: &str) -> bool {
        matches!(&self.peek().tok, Tok::Punct(q) if *q == p)
    }

    fn eat_punct(&mut self, p: &str) -> bool {
        let hit = self.is_punct(p);
        if hit {
            self.i += 1;
        }
        hit
    }

    fn punct(&mut self, p: &str) -> Result<(), Error> {
        if self.eat_punct(p) {
            Ok(())
        } else {
            Err(self.expected(&format!("`{p}`")))
        }
    }

    fn is_kw(&self, k: &str) -> bool {
        matches!(&self.peek().tok, Tok::Ident(s) if s == k)
    }

    fn eat_kw(&mut self, k: &str) -> bool {
        let hit = self.is_kw(k);
        if hit {
            self.i += 1;
        }
        hit
    }

    fn kw(&mut self, k: &str) -> Result<(), Error> {
        if self.eat_kw(k) {
            Ok(())
        } else {
            Err(self.expected(&format!("`{k}`")))
        }
    }

    fn ident(&mut self, what: &str) -> Result<Ident, Error> {
        let t = &mut self.toks[self.i];
        match &mut t.tok {
            Tok::Ident(name) => {
                // Tokens are read once and never revisited once taken.
                let name = std::mem::take(name);
                let pos = t.pos;
                self.i += 1;
                Ok(Ident { name, pos })
            }
            _ => Err(self.expected(what)),
        }
    }

    fn int(&mut self, what: &str) -> Result<(u64, Pos), Error> {
        let t = self.peek();
        match t.tok {
            Tok::Int(v) => {
                let pos = t.pos;
                self.i += 1;
                Ok((v, pos))
            }
            _ => Err(self.expected(what)),
        }
    }

    fn ty(&mut self) -> Result<Ty, Error> {
        let id = self.ident("a type")?;
        Ty::parse(&id.name).ok_or_else(|| {
            Error::new(
                id.pos,
                format!(
                    "unknown type `{}`; expected u8..u64, i8..i64 or bool",
                    id.name
                ),
            )
        })
    }

    fn protocol(&mut self) -> Result<Protocol, Error> {
        let name = self.ident("a protocol name")?;
        self.punct("{")?;
        let mut p = Protocol {
            name,
            messages: vec![],
            vars: vec![],
            consts: vec![],
            states: vec![],
        };
        while !self.eat_punct("}") {
            if self.is_kw("in") || self.is_kw("out") {
                let dir = if self.eat_kw("in") {
                    Direction::In
                } else {
                    self.kw("out").map(|_| Direction::Out)?
                };
                let name = self.ident("a message name")?;
                self.punct("(")?;
                let mut args = Vec::new();
                while !self.eat_punct(")") {
                    if !args.is_empty() {
                        self.punct(",")?;
                    }
                    let name = self.ident("an argument name")?;
                    self.punct(":")?;
                    args.push(Arg {
                        name,
                        ty: self.ty()?,
                    });
                }
                self.punct(";")?;
                p.messages.push(MessageDecl { dir, name, args });
            } else if self.eat_kw("var") {
                let name = self.ident("a variable name")?;
                self.punct(":")?;
                let ty = self.ty()?;
                self.punct("=")?;
                let init = self.expr()?;
                self.punct(";")?;
                p.vars.push(VarDecl { name, ty, init });
            } else if self.eat_kw("const") {
                let name = self.ident("a constant name")?;
                let ty = if self.eat_punct(":") {
                    Some(self.ty()?)
                } else {
                    None
                };
                self.punct("=")?;
                let neg_pos = self.peek().pos;
                let neg = self.eat_punct("-");
                let (v, pos) = self.int("an integer")?;
                self.punct(";")?;
                let value = if neg { -i128::from(v) } else { i128::from(v) };
                let value_pos = if neg { neg_pos } else { pos };
                p.consts.push(ConstDecl {
                    name,
                    ty,
                    value,
                    value_pos,
                });
            } else {
                self.state(&mut p.states, None, 0)?;
            }
        }
        Ok(p)
    }

    /// `[initial] [final] state NAME [timeout N ms] ({ ... } | ;)` or `superstate NAME { ... }`
    fn state(
        &mut self,
        states: &mut Vec<State>,
        parent: Option<usize>,
        depth: u32,
    ) -> Result<(), Error> {
        let initial = self.eat_kw("initial");
        let is_final = self.eat_kw("final");
        let is_super = if self.eat_kw("superstate") {
            true
        } else if self.eat_kw("state") {
            false
        } else {
            let what = if initial || is_final {
                "`state`"
            } else {
                "a message (`in`/`out`), `var`, `const`, `state`, `superstate` or `}`"
            };
            return Err(self.expected(what));
        };
        let name = self.ident("a state name")?;
        if is_super && depth >= MAX_STATE_DEPTH {
            return Err(Error::new(
                name.pos,
                format!(
                    "superstate `{}` is nested {} levels deep; at most {MAX_STATE_DEPTH} are allowed",
                    name.name,
                    depth + 1
                ),
            ));
        }
        if is_super && (initial || is_final) {
            return Err(Error::new(
                name.pos,
                "a superstate cannot be initial or final; mark one of its states",
            ));
        }
        let mut timeout_ms = None;
        if self.eat_kw("timeout") {
            let (v, pos) = self.int("a timeout in milliseconds")?;
            if v == 0 {
                return Err(Error::new(pos, "a timeout must be at least 1 ms"));
            }
            self.kw("ms")?;
            timeout_ms = Some(v);
        }
        let me = states.len();
        states.push(State {
            name,
            parent,
            is_super,
            initial,
            is_final,
            timeout_ms,
            transitions: vec![],
        });
        if !is_super && self.eat_punct(";") {
            return Ok(());
        }
        self.punct("{")?;
        while !self.eat_punct("}") {
            if self.is_punct("?") || self.is_punct("!") {
                let t = self.transition()?;
                states[me].transitions.push(t);
            } else if is_super {
                self.state(states, Some(me), depth + 1)?;
            } else {
                return Err(self.expected("a transition (`?msg` or `!msg`) or `}`"));
            }
        }
        Ok(())
    }

    fn transition(&mut self) -> Result<Transition, Error> {
        let dir = if self.eat_punct("?") {
            Direction::In
        } else {
            self.punct("!").map(|_| Direction::Out)?
        };
        let msg = self.ident("a message name")?;
        let guard = if self.eat_punct("[") {
            let g = self.expr()?;
            self.punct("]")?;
            Some(g)
        } else {
            None
        };
        let mut actions = Vec::new();
        if self.eat_punct("/") {
            loop {
                let var = self.ident("a variable to assign")?;
                self.punct("=")?;
                actions.push((var, self.expr()?));
                if !self.eat_punct(",") {
                    break;
                }
            }
        }
        let target = if self.eat_punct("->") {
            Some(self.ident("a target state")?)
        } else {
            None
        };
        if !self.is_punct(";") {
            let what = match (&guard, actions.is_empty(), &target) {
                (_, _, Some(_)) => "`;`",
                (None, true, None) => "`[`, `/`, `->` or `;`",
                (_, true, None) => "`/`, `->` or `;`",
                (_, false, None) => "`,`, `->` or `;`",
            };
            return Err(self.expected(what));
        }
        self.i += 1;
        Ok(Transition {
            dir,
            msg,
            guard,
            actions,
            target,
        })
    }

    fn expr(&mut self) -> Result<Expr, Error> {
        self.binary(0).map(|(e, _)| e)
    }

    /// Refuses an expression tree deeper than [`MAX_EXPR_DEPTH`], at the
    /// token that would make it so.
    fn deeper(&self, depth: u32, pos: Pos) -> Result<u32, Error> {
        if depth > MAX_EXPR_DEPTH {
            Err(Error::new(
                pos,
                format!("expression nested more than {MAX_EXPR_DEPTH} levels deep; split it"),
            ))
        } else {
            Ok(depth)
        }
    }

    /// An expression and the depth of its tree.
    fn binary(&mut self, level: usize) -> Result<(Expr, u32), Error> {
        const LEVELS: [&[(&str, BinOp)]; 4] = [
            &[("||", BinOp::Or)],
            &[("&&", BinOp::And)],
            &[
                ("==", BinOp::Eq),
                ("!=", BinOp::Ne),
                ("<=", BinOp::Le),
                (">=", BinOp::Ge),
                ("<", BinOp::Lt),
                (">", BinOp::Gt),
            ],
            &[("+", BinOp::Add), ("-", BinOp::Sub)],
        ];
        if level == LEVELS.len() {
            return self.unary();
        }
        let (mut lhs, mut depth) = self.binary(level + 1)?;
        loop {
            let pos = self.pos();
            let Some(&(_, op)) = LEVELS[level].iter().find(|(t, _)| self.is_punct(t)) else {
                return Ok((lhs, depth));
            };
            self.i += 1;
            let (rhs, rhs_depth) = self.binary(level + 1)?;
            // A chain `a || b || ...` nests to the left without recursing
            // here, but every later pass recurses through it.
            depth = self.deeper(depth.max(rhs_depth) + 1, pos)?;
            lhs = Expr::Bin(op, Box::new(lhs), Box::new(rhs), pos);
            // Comparisons do not chain: `a < b < c` is an error, not a surprise.
            if level == 2 && LEVELS[level].iter().any(|(t, _)| self.is_punct(t)) {
                return Err(Error::new(
                    self.pos(),
                    "comparisons cannot be chained; use `&&`",
                ));
            }
        }
    }

    fn unary(&mut self) -> Result<(Expr, u32), Error> {
        let pos = self.pos();
        if self.is_punct("!") || self.is_punct("-") || self.is_punct("(") {
            // The parser recurses here: refuse before the stack runs out,
            // not only once the (deeper) tree is built.
            self.nest += 1;
            let e = self.deeper(self.nest, pos).and_then(|_| self.prefixed(pos));
            self.nest -= 1;
            return e;
        }
        match &self.peek().tok {
            &Tok::Int(v) => {
                self.i += 1;
                Ok((Expr::Int(i128::from(v), pos), 1))
            }
            Tok::Ident(s) if s == "true" || s == "false" => {
                let value = s == "true";
                self.i += 1;
                Ok((Expr::Bool(value, pos), 1))
            }
            Tok::Ident(_) => Ok((Expr::Name(self.ident("a name")?), 1)),
            _ => Err(self.expected("an expression")),
        }
    }

    /// `!e`, `-e` or `(e)`, the first token not yet taken.
    fn prefixed(&mut self, pos: Pos) -> Result<(Expr, u32), Error> {
        if self.eat_punct("!") {
            let (e, d) = self.unary()?;
            return Ok((Expr::Not(Box::new(e), pos), self.deeper(d + 1, pos)?));
        }
        if self.eat_punct("-") {
            let (e, d) = self.unary()?;
            return Ok((Expr::Neg(Box::new(e), pos), self.deeper(d + 1, pos)?));
        }
        self.punct("(")?;
        let (e, d) = self.binary(0)?;
        self.punct(")")?;
        Ok((e, self.deeper(d + 1, pos)?))
    }

    fn component(&mut self) -> Result<Component, Error> {
        let name = self.ident("a component name")?;
        self.punct("{")?;
        let mut c = Component {
            name,
            ports: vec![],
            depends: vec![],
            subports: vec![],
        };
        while !self.eat_punct("}") {
            if self.eat_kw("port") {
                let name = self.ident("a port name")?;
                self.punct(":")?;
                let mirror = self.eat_kw("mirror");
                let protocol = self.ident("a protocol name")?;
                self.punct(";")?;
                c.ports.push(Port {
                    name,
                    mirror,
                    protocol,
                });
            } else if self.eat_kw("depend") {
                let mut targets = Vec::new();
                loop {
                    let port = self.ident("a port name")?;
                    self.punct(".")?;
                    let msg = if self.eat_punct("*") {
                        None
                    } else {
                        Some(self.ident("a message name or `*`")?)
                    };
                    targets.push((port, msg));
                    if !self.eat_punct(",") {
                        break;
                    }
                }
                self.kw("on")?;
                let on = self.ident("a port name")?;
                self.kw("in")?;
                let mut states = Vec::new();
                if self.eat_punct("{") {
                    loop {
                        states.push(self.ident("a state name")?);
                        if !self.eat_punct(",") {
                            break;
                        }
                    }
                    self.punct("}")?;
                } else {
                    states.push(self.ident("a state name or `{`")?);
                }
                self.punct(";")?;
                c.depends.push(Depend {
                    targets,
                    on,
                    states,
                });
            } else if self.eat_kw("subport") {
                let name = self.ident("a subport name")?;
                self.punct(":")?;
                let mirror = self.eat_kw("mirror");
                let protocol = self.ident("a protocol name")?;
                self.kw("max")?;
                let (max, max_pos) = self.int("the maximum number of subports")?;
                if max == 0 {
                    return Err(Error::new(max_pos, "a subport maximum must be at least 1"));
                }
                self.kw("spawned")?;
                self.kw("by")?;
                let port = self.ident("a port name")?;
                self.punct(".")?;
                let msg = self.ident("a message name")?;
                self.punct("(")?;
                let key = self.ident("the key argument")?;
                self.punct(")")?;
                self.punct(";")?;
                c.subports.push(Subport {
                    name,
                    mirror,
                    protocol,
                    max,
                    max_pos,
                    port,
                    msg,
                    key,
                });
            } else {
                return Err(self.expected("`port`, `depend`, `subport` or `}`"));
            }
        }
        Ok(c)
    }
}
